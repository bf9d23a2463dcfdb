// SPDX-License-Identifier: Apache-2.0

package topohub

// The client: one goroutine (run) per Client reads the ring, adopts and ends
// watches, stitches snapshots to the stream and resyncs, as plugins/client.c's
// dispatcher does; everything under "reader only" is touched by it alone.
// Other goroutines register watches through c.mu and wake it with kick().
// What the reader does is in reader.go.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	ntablesMax = 256
	// futex mode: how soon a hub that died without closing its ring is
	// noticed, and the longest futex sleep. Under 10 ms on purpose: a
	// goroutine in a blocking syscall for 10 ms has its P retaken by the
	// runtime's sysmon, which then polls every 20 us for a millisecond: an
	// idle watcher cost 500 context switches a second so.
	sliceFutex = 8 * time.Millisecond
	// futex mode: a stream with no record for this long is waited for in
	// Go's poller instead (fd mode for that sleep): no thread in a syscall,
	// so an idle process is idle (sysmon sleeps); the first record after the
	// quiet comes through the wake-up pipe, tens of us later than a futex.
	quietAfter = 4 * time.Millisecond
	sliceSpin  = time.Millisecond
	// fd mode (Go's poller): the longest sleep. Nothing needs it shorter: a
	// commit for us, our eviction (th_ring_evict writes the pipe), a kick
	// (the read deadline) and the hub's exit (the pipe's write end closes:
	// EOF, then ctl.dead) all end it, and a hub that hangs keeps its socket
	// open: no slice would notice it. Each slice is a wake-up of an idle
	// process, which in Go costs far more than the wake-up itself (threads,
	// sysmon): at 1 s, 64 idle Vitess-shaped processes on topohub cost 19
	// ms/s against 10 on etcd2topo; at 10 s the two are even (bench/README.md).
	sliceFD         = 10 * time.Second
	backoffMin      = 10 * time.Millisecond
	backoffMax      = time.Second
	defaultTimeout  = time.Second
	defaultSpin     = 20 * time.Microsecond
	defaultBuffer   = 256
	callTimeout     = 30 * time.Second
	recordsPerRound = 4096
	resyncNoMem     = ResyncNoMem
)

type phase int

const (
	phaseStitch phase = iota // adopted; initial events when the copy is exact
	phaseResync              // told EventResync; the difference when the copy is exact
	phaseLive                // gets every change
)

type mkey struct {
	table uint32
	key   string
}

type entry struct {
	key      string // the map's key, for the events: one string per key held
	revision uint64
	version  int64
	commitUs uint64
	flags    uint32
	value    []byte
	gtid     string
}

// tableIndex says which lookups can find a table's watches.
type tableIndex struct {
	exact   int   // exact watches adopted
	recLens []int // the distinct lengths of the recursive watches' paths, ascending
}

type watch struct {
	id        uint64
	ctx       context.Context
	stopAfter func() bool
	table     uint32
	path      string // trimmed for recursive watches
	recursive bool
	ch        chan Event

	// reader only
	phase     phase
	needFetch bool
	ended     bool
}

// Client is a connection to the host's hub: one ring reader, one control
// socket, any number of watches. Its methods may be called from any goroutine.
type Client struct {
	opts   Options
	ctx    context.Context // ends at Close: interrupts the reader's calls to the hub
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup
	kickCh chan struct{}
	// kickWord is a third futex word the futex-mode reader sleeps on beside
	// the ring's two (process-private): kick() bumps it and wakes the reader
	// at once when kickWait says it sleeps, so registrations, Close and
	// WaitRevision never wait out a slice. (A quiet reader sleeps in the
	// poller instead, woken by kick() through the read deadline.)
	kickWord atomic.Uint32
	kickWait atomic.Bool

	mu        sync.Mutex // registrations
	closed    bool
	incoming  []*watch
	cancelled []*watch
	nextID    uint64
	evFile    *os.File // the wake-up pipe in WaitFD mode, for kick(); under mu
	ntables   atomic.Uint32

	qmu sync.Mutex // the query connection (Get, List)
	q   *ctlConn

	revMu sync.Mutex
	revCh chan struct{} // closed when the dispatched revision advances

	stRevision, stEvents, stRecords, stResyncs, stEvictions, stLaps atomic.Uint64
	stReconnects, stWatches, stEntries, stGeneration                atomic.Uint64
	wantRev                                                         atomic.Uint64 // the highest revision a WaitRevision waits for

	monoBase int64 // CLOCK_MONOTONIC at timeBase: latencies against the ring's clock
	timeBase time.Time

	// reader only
	ctl         *ctlConn
	ring        *ringReader
	ev          *os.File
	inline      bool            // Follow's: no reader goroutine, events go to queue
	queue       []Event         // inline: this round's events, for the loop body
	evRaw       syscall.RawConn // ev's, for drainWakeups
	connected   bool
	stopping    bool
	retryAt     time.Time
	backoff     time.Duration
	mirror      map[mkey]*entry        // entries under every adopted watch
	old         map[mkey]*entry        // what watches of resyncing tables were told
	index       [ntablesMax]tableIndex // the watches by table, for matches
	delivering  []*watch               // handleChange's matches, reused
	scratch     []*watch               // anyMatch's
	tableResync [ntablesMax]bool
	fetchTable  [ntablesMax]bool
	fetchAny    bool
	pending     bool
	readyPos    uint64
	// ... and for the ring to reach snapPending: a snapshot may hold part of
	// a transaction whose batch was not in the ring yet (protocol.h).
	ringRevision uint64 // the newest revision read from the ring (or told at attach)
	snapPending  uint64 // the newest pending revision of a snapshot since attach
	// Targeted wake-ups (shm/ring.h): the slot's filter holds the tag bit of
	// every watch (protocol.h, batch tags), off while anything is fetched or
	// stitched, or while a watch covers every key.
	filterOff   bool     // the slot's filter is off (nil was written last)
	filterDirty bool     // the watches changed since the filter was written
	skipsSeen   uint64   // ring.skips already folded into the revision
	list        []*watch // adopted, in adoption order
	exact       map[mkey][]*watch
	rec         map[mkey][]*watch
	revision    uint64        // of the last transaction read, snapshot or attach
	spinCur     time.Duration // this wait's spin (adaptive, at most Options.Spin)
	lastBatchNs uint64        // publication time (CLOCK_MONOTONIC) of the last transaction read; quietAfter counts from it
	batchGapNs  uint64        // ... and the gap between it and the one before
	gapAvgNs    uint64        // ... its moving average (over 8), for wait's choice of futex or poller
	askedRev    uint64        // the wantRev the hub was last asked about
	hubRev      uint64        // the hub's published revision as last asked, to count after a drain
}

// Open connects to the hub and attaches as a reader of its ring.
func Open(ctx context.Context, opts Options) (*Client, error) {
	c, err := newClient(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.run()
	return c, nil
}

// newClient is Open without the reader goroutine: connected, the revision
// published; Open starts the reader, Follow runs it itself.
func newClient(ctx context.Context, opts Options) (*Client, error) {
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Name == "" {
		opts.Name = "topohub-go"
	}
	if opts.Spin <= 0 {
		opts.Spin = defaultSpin
	}
	if opts.Buffer <= 0 {
		opts.Buffer = defaultBuffer
	}
	if opts.Wait < WaitFutex || opts.Wait > WaitFD {
		return nil, fmt.Errorf("topohub: wait mode %d: %w", opts.Wait, syscall.EINVAL)
	}
	c := &Client{opts: opts, done: make(chan struct{}), kickCh: make(chan struct{}, 1), revCh: make(chan struct{}),
		mirror: map[mkey]*entry{}, old: map[mkey]*entry{}, exact: map[mkey][]*watch{}, rec: map[mkey][]*watch{},
		readyPos: math.MaxUint64, nextID: 1}
	c.spinCur = opts.Spin
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.monoBase, c.timeBase = monotonicNow(), time.Now()
	if err := c.attach(ctx); err != nil {
		c.cancel()
		return nil, err
	}
	c.publishRevision()
	return c, nil
}

func monotonicNow() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func (c *Client) monoNow() uint64 { return uint64(c.monoBase + int64(time.Since(c.timeBase))) }

// Close ends every watch (their channels close), detaches and disconnects.
// It waits for the client's goroutines to end.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	c.cancel()
	c.kick()
	c.wg.Wait()
	c.qmu.Lock()
	if c.q != nil {
		c.q.Close()
		c.q = nil
	}
	c.qmu.Unlock()
	return nil
}

// Watch follows one key: first EventInitial (or EventNotFound then
// EventEnded, and the channel closes), then every change in revision order;
// a delete delivers EventDelete, EventEnded, and the channel closes. The
// channel also closes after ctx is cancelled or the client is closed.
func (c *Client) Watch(ctx context.Context, table uint32, key string) (<-chan Event, error) {
	return c.register(ctx, table, key, false)
}

// WatchRecursive follows every key under prefix (on path-component
// boundaries): the current entries in key order (EventInitial each), then
// EventSynced, then every change, deletes included, until ctx is cancelled.
func (c *Client) WatchRecursive(ctx context.Context, table uint32, prefix string) (<-chan Event, error) {
	return c.register(ctx, table, trimPath(prefix), true)
}

func (c *Client) checkKey(table uint32, key string) error {
	nt := c.ntables.Load()
	if nt == 0 || nt > ntablesMax {
		nt = ntablesMax
	}
	if table >= nt {
		return fmt.Errorf("topohub: table %d (the hub has %d): %w", table, nt, syscall.EINVAL)
	}
	if len(key) > keyMax {
		return fmt.Errorf("topohub: key of %d bytes: %w", len(key), syscall.ENAMETOOLONG)
	}
	return nil
}

func (c *Client) register(ctx context.Context, table uint32, path string, recursive bool) (<-chan Event, error) {
	if err := c.checkKey(table, path); err != nil {
		return nil, err
	}
	buf := c.opts.Buffer
	if c.inline {
		buf = 0 // events go to c.queue; the channel only closes
	}
	w := &watch{ctx: ctx, table: table, path: path, recursive: recursive, ch: make(chan Event, buf)}
	// Before w is published: the reader may end it (and stop this) at once.
	w.stopAfter = context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cancelled = append(c.cancelled, w)
		c.mu.Unlock()
		c.kick()
	})
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		w.stopAfter()
		return nil, ErrClosed
	}
	w.id = c.nextID
	c.nextID++
	c.stWatches.Add(1) // before the reader can see it, and so end it
	c.incoming = append(c.incoming, w)
	c.mu.Unlock()
	c.kick()
	return w.ch, nil
}

// kick wakes the reader at once: in WaitFD mode the wake-up pipe's read is
// interrupted; in futex mode kickWord changes under its sleep (the Dekker
// pair with waitFutex: kickCh, then kickWord, then kickWait here; kickWait,
// then kickWord, then kickCh there; sync/atomic is sequentially consistent).
func (c *Client) kick() {
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
	c.kickWord.Add(1)
	if c.kickWait.Load() {
		futexWakePrivate(&c.kickWord)
	}
	c.mu.Lock()
	if c.evFile != nil {
		c.evFile.SetReadDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
}

func (c *Client) kicked() bool { return len(c.kickCh) > 0 }

// Get reads one entry from the hub's state (a round trip). ErrNotFound when absent.
func (c *Client) Get(ctx context.Context, table uint32, key string) (Entry, error) {
	if err := c.checkKey(table, key); err != nil {
		return Entry{}, err
	}
	_, items, err := c.query(ctx, true, table, key)
	if err != nil {
		return Entry{}, err
	}
	if len(items) == 0 {
		return Entry{}, fmt.Errorf("topohub: %q: %w", key, ErrNotFound)
	}
	it := items[0]
	if it.Key != key {
		return Entry{}, fmt.Errorf("%w: GET %q answered with %q", ErrProto, key, it.Key)
	}
	return Entry{Table: table, Key: it.Key, Value: it.Value, ValueNull: it.Flags&changeFlagValueNull != 0,
		Version: it.Version, Revision: it.Revision}, nil
}

// List reads every entry under prefix (component boundaries), in key order,
// and the revision the list is exact at.
func (c *Client) List(ctx context.Context, table uint32, prefix string) ([]Entry, uint64, error) {
	prefix = trimPath(prefix)
	if err := c.checkKey(table, prefix); err != nil {
		return nil, 0, err
	}
	rep, items, err := c.query(ctx, false, table, prefix)
	if err != nil {
		return nil, 0, err
	}
	var out []Entry
	for _, it := range items {
		if prefixMatches(prefix, it.Key) {
			out = append(out, Entry{Table: table, Key: it.Key, Value: it.Value,
				ValueNull: it.Flags&changeFlagValueNull != 0, Version: it.Version, Revision: it.Revision})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, rep.Revision, nil
}

// query runs SNAPSHOT or GET on the query connection, reconnecting once
// when the hub went away since the last call.
func (c *Client) query(ctx context.Context, get bool, table uint32, key string) (snapshotReply, []snapItem, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	select {
	case <-c.done:
		return snapshotReply{}, nil, ErrClosed
	default:
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if c.q == nil {
			if c.q, err = dialCtl(ctx, c.opts.Socket); err != nil {
				c.q = nil
				return snapshotReply{}, nil, err
			}
		}
		var rep snapshotReply
		var items []snapItem
		rep, items, err = c.q.snapshot(ctx, get, table, key)
		if err == nil {
			return rep, items, nil
		}
		if errors.Is(err, syscall.ESTALE) {
			continue // taken back before it was read: once more, on the same connection
		}
		var he *HubError
		if errors.As(err, &he) {
			return rep, nil, err // the hub answered: the connection is fine
		}
		c.q.Close()
		c.q = nil
		if !errors.Is(err, ErrHubLost) || ctx.Err() != nil {
			break
		}
	}
	return snapshotReply{}, nil, err
}

// Sync waits until the hub has published every transaction of gtidSet (as its
// source speaks: MySQL "uuid:1-5" or MariaDB "0-1-100") and returns the hub's
// revision then. With ctx's deadline as the timeout.
func (c *Client) Sync(ctx context.Context, gtidSet string) (uint64, error) {
	if len(gtidSet) > msgMax-hdrSize-syncReqSize {
		return 0, fmt.Errorf("topohub: GTID set of %d bytes: %w", len(gtidSet), syscall.E2BIG)
	}
	select {
	case <-c.done:
		return 0, ErrClosed
	default:
	}
	timeout := uint64(math.MaxUint64)
	callCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return 0, context.DeadlineExceeded
		}
		timeout = uint64(d)
		// The hub answers -ETIMEDOUT at that deadline: wait a little longer
		// for its answer, but not past the caller's cancellation.
		var cancel context.CancelFunc
		callCtx, cancel = context.WithDeadline(context.WithoutCancel(ctx), dl.Add(5*time.Second))
		defer cancel()
		parent := ctx
		stop := context.AfterFunc(parent, func() {
			if errors.Is(parent.Err(), context.Canceled) {
				cancel()
			}
		})
		defer stop()
	}
	ctx = callCtx
	// A connection of its own: a sync may wait long, and Get must not queue behind it.
	cc, err := dialCtl(ctx, c.opts.Socket)
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	body, _, err := cc.call(ctx, msgSync, encodeSyncRequest(timeout, gtidSet), 0)
	if err != nil {
		return 0, err
	}
	return decodeRevisionReply(body)
}

// WaitRevision returns once this client has dispatched every change up to
// rev (what Sync returned) to its watches: read-your-writes.
func (c *Client) WaitRevision(ctx context.Context, rev uint64) error {
	if c.stRevision.Load() >= rev {
		return nil
	}
	// Tell the reader what is waited for (it may ask the hub: askHubRevision).
	for {
		w := c.wantRev.Load()
		if w >= rev || c.wantRev.CompareAndSwap(w, rev) {
			break
		}
	}
	c.kick()
	for {
		c.revMu.Lock()
		ch := c.revCh
		c.revMu.Unlock()
		if c.stRevision.Load() >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrClosed
		}
	}
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{Revision: c.stRevision.Load(), Events: c.stEvents.Load(), Records: c.stRecords.Load(),
		Resyncs: c.stResyncs.Load(), Evictions: c.stEvictions.Load(), Laps: c.stLaps.Load(),
		Reconnects: c.stReconnects.Load(), Watches: c.stWatches.Load(), Entries: c.stEntries.Load(),
		Generation: c.stGeneration.Load()}
}

// publishRevision: every change up to c.revision has been dispatched.
// Reader only (and Open, before the reader starts).
func (c *Client) publishRevision() {
	if c.revision <= c.stRevision.Load() {
		return
	}
	c.stRevision.Store(c.revision)
	c.revMu.Lock()
	close(c.revCh)
	c.revCh = make(chan struct{})
	c.revMu.Unlock()
}

// ---- paths ------------------------------------------------------------------

// trimPath drops trailing '/'s: "/a/b/" is "/a/b", "/" is "".
func trimPath(p string) string { return strings.TrimRight(p, "/") }

// prefixMatches: key lies under prefix (trimmed) on a component boundary.
func prefixMatches(prefix, key string) bool {
	if prefix == "" {
		return true
	}
	return strings.HasPrefix(key, prefix) && (len(key) == len(prefix) || key[len(prefix)] == '/')
}

// covers: w's path covers key.
func (w *watch) covers(key string) bool {
	if w.recursive {
		return prefixMatches(w.path, key)
	}
	return w.path == key
}
