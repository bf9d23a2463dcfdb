// SPDX-License-Identifier: Apache-2.0

package topohub

// The reader goroutine (one per Client): adoption, fetches, the ring,
// resyncs, waiting. Everything here runs on it alone.
//
// Stitching (protocol/protocol.h): a new watch is adopted between two records at
// ring position D. If adopted watches already cover its path, the local copy
// is exact and its initial events come at the next boundary. Otherwise the
// reader asks the hub for a snapshot (or a get), adds the entries whose keys
// it did not hold, notes the ring head H, and reads on from D, applying each
// change only when it is newer than the key's revision. At a transaction
// boundary at or past H the copy is exact: the new watch gets its initial
// events, then every later change.
//
// Resync: when continuity is lost (evicted, lapped, hub lost, a RESYNC
// record), every live watch of the affected tables gets EventResync at once,
// the copy of those tables moves aside (what the watches were told), the
// state is fetched again, and at H each watch gets the difference, then
// EventSynced (an exact watch whose key vanished: EventDelete, EventEnded).

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"syscall"
	"time"
	"unsafe"
)

// ---- the reader goroutine ---------------------------------------------------

func (c *Client) run() {
	defer c.wg.Done()
	defer c.shutdown()
	for c.step() {
	}
}

// step is one round of the reader: registrations, connecting, fetches, the
// ring, then a wait if it had nothing. false once the client stops.
func (c *Client) step() bool {
	if c.stop() {
		return false
	}
	c.takeRegistrations()
	if !c.connected {
		if !time.Now().Before(c.retryAt) {
			c.reconnect()
		}
		if !c.connected {
			c.sleepUntil(c.retryAt)
			return true
		}
	}
	if c.fetchAny && c.fetch() != nil {
		return true
	}
	n := c.readRing()
	c.updateFilter()
	if n == 0 && c.connected && !c.stop() && (!c.inline || len(c.queue) == 0) {
		c.wait()
	}
	return true
}

func (c *Client) stop() bool {
	if !c.stopping {
		select {
		case <-c.done:
			c.stopping = true
		default:
		}
	}
	return c.stopping
}

func (c *Client) shutdown() {
	c.mu.Lock()
	incoming := c.incoming
	c.incoming = nil
	c.cancelled = nil
	c.mu.Unlock()
	for _, w := range append(c.list, incoming...) {
		if !w.ended {
			w.ended = true
			w.stopAfter()
			c.stWatches.Add(^uint64(0))
			close(w.ch)
		}
	}
	c.list = nil
	c.disconnect()
}

func (c *Client) sleepUntil(t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-c.kickCh:
	case <-c.done:
	}
}

// takeRegistrations adopts new watches and ends cancelled ones.
func (c *Client) takeRegistrations() {
	select {
	case <-c.kickCh:
	default:
	}
	c.mu.Lock()
	incoming, cancelled := c.incoming, c.cancelled
	c.incoming, c.cancelled = nil, nil
	c.mu.Unlock()
	for _, w := range incoming {
		if w.ctx.Err() != nil {
			w.ended = true
			w.stopAfter()
			c.stWatches.Add(^uint64(0))
			close(w.ch)
			continue
		}
		c.adopt(w)
	}
	for _, w := range cancelled {
		c.removeWatch(w)
	}
}

func (c *Client) adopt(w *watch) {
	c.filterDirty = true
	w.phase = phaseStitch
	w.needFetch = !c.alreadyCovered(w)
	c.list = append(c.list, w)
	k := mkey{w.table, w.path}
	if w.recursive {
		c.rec[k] = append(c.rec[k], w)
	} else {
		c.exact[k] = append(c.exact[k], w)
	}
	c.reindex(w.table)
	c.pending = true
	if w.needFetch {
		c.fetchAny = true
		c.readyPos = math.MaxUint64
	} else if c.readyPos == math.MaxUint64 && !c.fetchAny && c.ring != nil {
		c.readyPos = c.ring.pos
	}
}

// updateFilter keeps the slot's filter true to the watches (client.go,
// "Targeted wake-ups"). Bits are added before any snapshot of what they
// stand for is asked for (fetch calls this first, turning the filter off):
// a batch the hub judged by the old filter is then one the snapshot covers.
func (c *Client) updateFilter() {
	if !c.connected {
		return
	}
	if c.pending || c.fetchAny {
		if !c.filterOff {
			c.ring.setFilter(nil)
		}
		c.filterOff, c.filterDirty = true, true
		return
	}
	if !c.filterDirty {
		return
	}
	var bits [tagWords]uint64
	all := false
	for _, w := range c.list {
		if w.ended {
			continue
		}
		if w.recursive && w.path == "" {
			all = true // every key: every batch
			break
		}
		b := tagBit(w.table, w.path)
		bits[b/64] |= 1 << (b % 64)
	}
	if all {
		if !c.filterOff {
			c.ring.setFilter(nil)
		}
	} else {
		c.ring.setFilter(&bits)
	}
	c.filterOff, c.filterDirty = all, false
}

// foldSkips: the ring jumped over batches the hub did not wake us for (none
// holds a change under a watch): they count as read, up to the last one's
// revision.
func (c *Client) foldSkips() {
	if c.ring.skips == c.skipsSeen {
		return
	}
	c.skipsSeen = c.ring.skips
	if n := c.ring.skipNote; n > c.revision {
		c.revision = n
	}
	if n := c.ring.skipNote; n > c.ringRevision {
		c.ringRevision = n
	}
}

// alreadyCovered: an adopted, fetched watch covers w's whole path.
func (c *Client) alreadyCovered(w *watch) bool {
	for _, o := range c.list {
		if o.ended || o.needFetch || o.table != w.table || (c.tableResync[o.table] && c.fetchTable[o.table]) {
			continue
		}
		if o.recursive && prefixMatches(o.path, w.path) || !o.recursive && !w.recursive && o.path == w.path {
			return true
		}
	}
	return false
}

// removeWatch ends w without a word (its context ended, or the client closes).
func (c *Client) removeWatch(w *watch) {
	if w.ended {
		return
	}
	w.ended = true
	w.stopAfter()
	c.filterDirty = true
	k := mkey{w.table, w.path}
	idx := c.exact
	if w.recursive {
		idx = c.rec
	}
	idx[k] = without(idx[k], w)
	if len(idx[k]) == 0 {
		delete(idx, k)
	}
	c.list = without(c.list, w)
	c.reindex(w.table)
	c.stWatches.Add(^uint64(0)) // before the close: whoever sees it closed sees the count
	close(w.ch)
	c.prune(w)
}

func without(ws []*watch, w *watch) []*watch {
	out := ws[:0]
	for _, o := range ws {
		if o != w {
			out = append(out, o)
		}
	}
	for i := len(out); i < len(ws); i++ {
		ws[i] = nil
	}
	return out
}

// prune drops the entries under w's path that no adopted watch covers any
// more: a copy no watch keeps current must not pass for exact later.
func (c *Client) prune(w *watch) {
	for k := range c.mirror {
		if k.table == w.table && w.covers(k.key) && !c.anyMatch(k.table, k.key, nil) {
			delete(c.mirror, k)
		}
	}
	c.stEntries.Store(uint64(len(c.mirror)))
}

// matches appends to out every adopted watch covering (table, key): exact
// watches of key, then recursive ones of "", of each component prefix, and
// of key itself. Only the prefix lengths that some recursive watch of the
// table has are looked up (c.index), and key is looked up in place (Go
// converts string(b) in a map index without a copy): a change under no
// watch costs no allocation.
func (c *Client) matches(out []*watch, table uint32, key []byte) []*watch {
	ix := &c.index[table]
	if ix.exact > 0 {
		out = append(out, c.exact[mkey{table, string(key)}]...)
	}
	for _, n := range ix.recLens {
		if n > len(key) {
			break
		}
		if n == 0 || n == len(key) || key[n] == '/' {
			out = append(out, c.rec[mkey{table, string(key[:n])}]...)
		}
	}
	return out
}

// anyMatch: some adopted watch covering (table, key) passes ok (nil: any).
func (c *Client) anyMatch(table uint32, key string, ok func(*watch) bool) bool {
	c.scratch = c.matches(c.scratch[:0], table, unsafe.Slice(unsafe.StringData(key), len(key)))
	defer clear(c.scratch) // no watch kept alive by the buffer
	for _, w := range c.scratch {
		if ok == nil || ok(w) {
			return true
		}
	}
	return false
}

// reindex recounts table's watches for matches after an adoption or a removal.
func (c *Client) reindex(table uint32) {
	ix := tableIndex{}
	for _, w := range c.list {
		if w.ended || w.table != table {
			continue
		}
		if !w.recursive {
			ix.exact++
		} else if i, found := slices.BinarySearch(ix.recLens, len(w.path)); !found {
			ix.recLens = slices.Insert(ix.recLens, i, len(w.path))
		}
	}
	c.index[table] = ix
}

// deliver sends ev to w. A full channel holds the reader up (that is the
// back-pressure: past its timeout the hub evicts this client). false when
// the watch ended meanwhile (its context) or the client is closing.
func (c *Client) deliver(w *watch, ev Event) bool {
	if w.ended || c.stopping {
		return false
	}
	ev.Table = w.table
	if c.inline {
		c.queue = append(c.queue, ev) // the loop body gets it after this round (follow.go)
		c.stEvents.Add(1)
		return true
	}
	select {
	case w.ch <- ev:
		c.stEvents.Add(1)
		return true
	default:
	}
	select {
	case w.ch <- ev:
		c.stEvents.Add(1)
		return true
	case <-w.ctx.Done():
		c.removeWatch(w)
	case <-c.done:
		c.stopping = true
	}
	return false
}

func (c *Client) marker(w *watch, kind EventKind, reason uint32) {
	c.deliver(w, Event{Kind: kind, Reason: reason, Revision: c.revision})
}

// endWatch: the watch ends by itself (an exact key deleted or absent).
func (c *Client) endWatch(w *watch, reason uint32) {
	if w.ended {
		return
	}
	c.marker(w, EventEnded, reason)
	c.removeWatch(w)
}

func eventFromEntry(kind EventKind, key string, e *entry) Event {
	ev := Event{Kind: kind, Key: key, ValueNull: e.flags&changeFlagValueNull != 0, Version: e.version,
		Revision: e.revision, GTID: e.gtid}
	if kind != EventDelete {
		ev.Value = append([]byte(nil), e.value...)
	}
	if e.commitUs != 0 {
		ev.Commit = time.UnixMicro(int64(e.commitUs))
	}
	return ev
}

// ---- connecting -------------------------------------------------------------

func (c *Client) attach(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cc, err := dialCtl(ctx, c.opts.Socket)
	if err != nil {
		return err
	}
	req := attachRequest{TimeoutNs: uint64(c.opts.Timeout), PID: uint32(os.Getpid()), Name: c.opts.Name}
	body, fds, err := cc.call(ctx, msgAttach, req.encode(), 3)
	closeFDs := func() {
		for _, fd := range fds {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	}
	if err == nil && len(fds) != 3 {
		err = fmt.Errorf("%w: ATTACH reply with %d descriptors, 3 expected", ErrProto, len(fds))
	}
	var rep attachReply
	if err == nil {
		rep, err = decodeAttachReply(body)
	}
	var r *ringReader
	if err == nil {
		r, err = openRing(fds[0], fds[1])
	}
	if err != nil {
		closeFDs()
		cc.Close()
		return err
	}
	syscall.Close(fds[0])
	syscall.Close(fds[1])
	r.setTimeout(c.opts.Timeout)
	if d := c.opts.MaxWakeDelay; d < 0 {
		r.setMaxDelay(0)
	} else if d > 0 {
		r.setMaxDelay(uint64(d))
	}
	// Non-blocking (O_NONBLOCK, shared with the hub's end): os.NewFile gives
	// it to Go's poller. Futex mode sleeps on it too when the stream is quiet
	// (wait).
	c.ev = os.NewFile(uintptr(fds[2]), "topohub-wakeup")
	if c.evRaw, err = c.ev.SyscallConn(); err != nil {
		c.ev.Close()
		c.ev = nil
		r.close()
		cc.Close()
		return err
	}
	c.mu.Lock()
	c.evFile = c.ev
	c.mu.Unlock()
	c.ctl, c.ring, c.connected = cc, r, true
	nt := rep.NTables
	if nt > ntablesMax {
		nt = ntablesMax
	}
	c.ntables.Store(nt)
	c.stGeneration.Store(rep.Generation)
	if rep.Revision > c.revision {
		c.revision = rep.Revision
	}
	c.ringRevision, c.snapPending = rep.Revision, 0
	c.filterOff, c.filterDirty, c.skipsSeen = true, true, 0 // a new slot: its filter is off
	return nil
}

func (c *Client) disconnect() {
	if c.ring != nil {
		c.ring.close()
		c.ring = nil
	}
	if c.ev != nil {
		c.mu.Lock()
		c.evFile = nil
		c.mu.Unlock()
		c.ev.Close()
		c.ev = nil
	}
	if c.ctl != nil {
		c.ctl.Close()
		c.ctl = nil
	}
	c.connected = false
}

func (c *Client) scheduleRetry() {
	if c.backoff == 0 {
		c.backoff = backoffMin
	} else if c.backoff *= 2; c.backoff > backoffMax {
		c.backoff = backoffMax
	}
	c.retryAt = time.Now().Add(c.backoff)
}

func (c *Client) reconnect() {
	if err := c.attach(c.ctx); err != nil {
		c.scheduleRetry()
		return
	}
	c.backoff = 0
	c.fetch()
}

// ---- losing and regaining continuity -----------------------------------------

// lose: continuity of table (math.MaxUint32: all) is lost. Tell its live
// watches, set the copy aside (what they were told, for the diff), and ask
// for a fetch.
func (c *Client) lose(table uint32, cause uint32) {
	all := table == math.MaxUint32
	for _, w := range append([]*watch(nil), c.list...) {
		if (all || w.table == table) && w.phase == phaseLive {
			w.phase = phaseResync
			c.marker(w, EventResync, cause)
		}
	}
	lo, hi := table, table+1
	if all {
		lo, hi = 0, ntablesMax
	}
	for k, e := range c.mirror {
		if k.table < lo || k.table >= hi {
			continue
		}
		// A table set aside already keeps what its watches were told; what
		// the copy holds of it now was never told to anyone.
		if !c.tableResync[k.table] {
			c.old[k] = e
		}
		delete(c.mirror, k)
	}
	for t := lo; t < hi; t++ {
		c.tableResync[t] = true
		c.fetchTable[t] = true
	}
	c.fetchAny, c.pending, c.readyPos = true, true, math.MaxUint64
	c.stResyncs.Add(1)
	switch cause {
	case ResyncEvicted:
		c.stEvictions.Add(1)
	case ResyncLapped:
		c.stLaps.Add(1)
	case ResyncHubLost:
		c.stReconnects.Add(1)
	}
	c.stEntries.Store(uint64(len(c.mirror)))
}

// askHubRevision: a WaitRevision waits for more than this client has
// dispatched while its ring is drained. The revision the client knows may
// lag the hub's: the hub stores its published revision after committing to
// the ring, so the revision told at ATTACH or by a snapshot can miss a
// transaction whose record lies before this reader's start, and no later
// record may come to say more. Ask the hub (REJOIN only answers its
// published revision; protocol.h), once per revision wanted. true when
// asked: the caller drains the ring again, then counts c.hubRev.
func (c *Client) askHubRevision() bool {
	want := c.wantRev.Load()
	if want <= c.stRevision.Load() || want <= c.askedRev {
		return false
	}
	c.askedRev = want
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	body, _, err := c.ctl.call(ctx, msgRejoin, nil, 0)
	if err == nil {
		c.hubRev, err = decodeRevisionReply(body)
	}
	if err != nil {
		c.hubLost()
		return false
	}
	return true
}

func (c *Client) hubLost() {
	c.hubRev = 0
	c.askedRev = 0 // a new hub: ask it again
	if !c.connected {
		return
	}
	c.lose(math.MaxUint32, ResyncHubLost)
	c.disconnect()
	c.backoff = 0
	c.scheduleRetry()
}

// coveredBefore: (table, key) is held exactly already: in the copy, or
// covered by a watch whose entries were fetched before this round (a key it
// covers may be absent: deleted).
func (c *Client) coveredBefore(table uint32, key string) bool {
	if _, ok := c.mirror[mkey{table, key}]; ok {
		return true
	}
	return c.anyMatch(table, key, func(w *watch) bool { return !w.needFetch })
}

// fetchOne puts one watch's entries into the copy. fresh: the table was set
// aside, take the newest of overlapping snapshots; else keep keys already
// held (the ring brings their changes).
func (c *Client) fetchOne(w *watch, fresh bool) error {
	ctx, cancel := context.WithTimeout(c.ctx, callTimeout)
	defer cancel()
	rep, items, err := c.ctl.snapshot(ctx, !w.recursive, w.table, w.path)
	if errors.Is(err, syscall.ESTALE) {
		// Taken back before it was read (protocol.h): once more, else a reconnect.
		rep, items, err = c.ctl.snapshot(ctx, !w.recursive, w.table, w.path)
	}
	if err != nil {
		return err
	}
	for _, it := range items {
		if !w.covers(it.Key) {
			continue // the hub matches bytes; we match components
		}
		if !fresh && c.coveredBefore(w.table, it.Key) {
			continue // exact already: the ring from here brings its changes
		}
		k := mkey{w.table, it.Key}
		if held, ok := c.mirror[k]; ok && held.revision >= it.Revision {
			continue
		}
		c.mirror[k] = &entry{key: it.Key, revision: it.Revision, version: it.Version, flags: it.Flags, value: it.Value}
	}
	if rep.Revision > c.revision {
		c.revision = rep.Revision
	}
	if rep.PendingRevision > c.snapPending {
		c.snapPending = rep.PendingRevision
	}
	return nil
}

// fetchedByOther: another recursive watch fetched this round covers w's
// path. Ties between equal prefixes go to the earlier one.
func (c *Client) fetchedByOther(w *watch) bool {
	for i, o := range c.list {
		if o == w || !o.recursive || o.table != w.table || o.ended || !prefixMatches(o.path, w.path) {
			continue
		}
		if w.recursive && o.path == w.path {
			if i < indexOf(c.list, w) {
				return true
			}
			continue
		}
		return true
	}
	return false
}

func indexOf(ws []*watch, w *watch) int {
	for i, o := range ws {
		if o == w {
			return i
		}
	}
	return len(ws)
}

// fetch gets what adoption and resync need, then notes where the copy is exact.
func (c *Client) fetch() error {
	if !c.fetchAny || !c.connected {
		return nil
	}
	c.updateFilter() // off before the snapshots are asked for
	for _, w := range c.list {
		fresh := c.fetchTable[w.table]
		if w.ended || (!fresh && !w.needFetch) || c.fetchedByOther(w) {
			continue
		}
		if err := c.fetchOne(w, fresh); err != nil {
			c.hubLost() // start over from a new connection; the watches were told RESYNC
			return err
		}
	}
	for _, w := range c.list {
		w.needFetch = false
	}
	c.fetchTable = [ntablesMax]bool{}
	c.fetchAny = false
	// Every change the ring had when the snapshots were taken is before the
	// head now; finishPending also waits for snapPending (protocol.h).
	c.readyPos = c.ring.loadHead()
	c.stEntries.Store(uint64(len(c.mirror)))
	return nil
}

// ---- reading the ring ---------------------------------------------------------

// readRing reads and handles records up to the head (whole transactions, at
// most about recordsPerRound). Returns the number of records read.
func (c *Client) readRing() int {
	n := 0
	for !c.stopping && c.connected {
		rec, st := c.ring.read()
		c.foldSkips()
		switch st {
		case readEmpty:
			c.finishPending()
			if c.pending {
				return n
			}
			// Every record up to hubRev was committed before the hub
			// answered it (ring, then revision), so this drain read them.
			if c.hubRev > c.revision {
				c.revision = c.hubRev
			}
			c.hubRev = 0
			c.publishRevision()
			if c.askHubRevision() {
				continue // drain again, then hubRev counts
			}
			return n
		case readEvicted, readLapped:
			reason := c.ring.evictReason()
			if st == readEvicted && reason == evictShutdown {
				c.hubLost() // the hub is going away: reconnect to the next one
				return n
			}
			// The hub evicts a reader it lapped: name the cause, not the messenger.
			cause := uint32(ResyncEvicted)
			if st == readLapped || reason == evictLapped {
				cause = ResyncLapped
			}
			c.lose(math.MaxUint32, cause)
			c.ring.rejoin()
			ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
			_, _, err := c.ctl.call(ctx, msgRejoin, nil, 0)
			cancel()
			if err != nil || c.fetch() != nil {
				c.hubLost()
				return n
			}
			continue // read on to the head, where the copy is exact
		case readClosed, readCorrupt:
			// TH_ECLOSED: the hub stopped. TH_ECORRUPT: a hub bug; start over.
			c.hubLost()
			return n
		}
		n++
		c.stRecords.Add(1)
		if rec.PublishNs != c.lastBatchNs { // a transaction's records share its time
			c.batchGapNs = 0
			if rec.PublishNs > c.lastBatchNs {
				c.batchGapNs = rec.PublishNs - c.lastBatchNs
			}
			// Over 8 batches; a gap counts at most 1 s (the first is since 0).
			c.gapAvgNs += min(c.batchGapNs, uint64(time.Second))/8 - c.gapAvgNs/8
			c.lastBatchNs = rec.PublishNs
		}
		switch rec.Type {
		case recChange:
			if ch, err := decodeChange(rec.Payload); err == nil {
				// First: an ENDED or RESYNC it causes carries its revision.
				if ch.Revision > c.revision {
					c.revision = ch.Revision
				}
				if ch.Revision > c.ringRevision {
					c.ringRevision = ch.Revision
				}
				c.handleChange(&rec, &ch)
			}
		case recResync:
			if rs, err := decodeResync(rec.Payload); err == nil {
				table := rs.Table
				if table >= ntablesMax {
					table = math.MaxUint32
				}
				// The state at rs.Revision is the hub's before this record
				// is visible; a snapshot may still say the revision before
				// (published after the ring): the fetch below makes the copy
				// exact at rs.Revision at least.
				if rs.Revision > c.revision {
					c.revision = rs.Revision
				}
				if rs.Revision > c.ringRevision {
					c.ringRevision = rs.Revision
				}
				c.lose(table, ResyncHub)
				if c.fetch() != nil {
					return n
				}
			}
		}
		if rec.Flags&ringFlagBatchEnd != 0 {
			c.finishPending()
			if !c.pending {
				c.publishRevision()
			}
			if n >= recordsPerRound {
				return n // let registrations in between transactions
			}
		}
	}
	return n
}

func (c *Client) handleChange(rec *ringRecord, ch *change) {
	table := uint32(ch.Table)
	ms := c.matches(c.delivering[:0], table, ch.Key)
	defer func() { clear(ms); c.delivering = ms[:0] }() // no watch kept alive by the buffer
	if len(ms) == 0 {
		return
	}
	old := c.mirror[mkey{table, string(ch.Key)}]
	if old != nil && old.revision >= ch.Revision {
		return // a snapshot already had this change (or a later one): told already
	}
	if ch.Op == opDelete && old == nil {
		return // never had it: nothing to tell
	}
	var key string
	if old != nil {
		key = old.key // the copy's: no new string for a key it holds
	} else {
		key = string(ch.Key)
	}
	ev := Event{Key: key, ValueNull: ch.Flags&changeFlagValueNull != 0, Version: ch.Version,
		Revision: ch.Revision, GTID: string(ch.GTID)}
	if ch.CommitUs != 0 {
		ev.Commit = time.UnixMicro(int64(ch.CommitUs))
	}
	if ch.PublishNs != 0 {
		ev.Published = time.Unix(0, int64(ch.PublishNs))
	}
	if now := c.monoNow(); now > rec.PublishNs {
		ev.Latency = time.Duration(now - rec.PublishNs)
	}
	if ch.Op == opDelete {
		delete(c.mirror, mkey{table, key})
		ev.Kind = EventDelete
	} else {
		if old == nil {
			old = &entry{key: key}
			c.mirror[mkey{table, key}] = old
		}
		// In place: an entry in the copy is the copy's alone (lose moves
		// entries aside, it does not share them; events get copies).
		*old = entry{key: key, revision: ch.Revision, version: ch.Version, commitUs: ch.CommitUs, flags: ch.Flags,
			value: append(old.value[:0], ch.Value...), gtid: ev.GTID}
		ev.Kind = EventPut
	}
	c.stEntries.Store(uint64(len(c.mirror)))
	for _, w := range ms {
		if w.phase != phaseLive {
			continue
		}
		e := ev
		if e.Kind == EventPut {
			e.Value = append([]byte(nil), ch.Value...)
		}
		c.deliver(w, e)
		if !w.recursive && ch.Op == opDelete {
			c.endWatch(w, EndDeleted)
		}
	}
}

// finishPending: the copy is exact at a transaction boundary at or past
// readyPos, once the ring has brought the snapshots' pending revision: hand
// out what the waiting watches need.
func (c *Client) finishPending() {
	if !c.pending || c.fetchAny || !c.connected || c.ring.pos < c.readyPos || c.ringRevision < c.snapPending {
		return
	}
	c.pending = false
	c.readyPos = math.MaxUint64
	for _, w := range append([]*watch(nil), c.list...) {
		if w.ended || w.phase == phaseLive {
			continue
		}
		if w.phase == phaseStitch {
			w.phase = phaseLive
			c.initialEvents(w)
			continue
		}
		w.phase = phaseLive
		if c.diff(w) {
			c.endWatch(w, EndDeleted)
		} else {
			c.marker(w, EventSynced, 0)
		}
	}
	c.old = map[mkey]*entry{}
	c.tableResync = [ntablesMax]bool{}
}

func (c *Client) initialEvents(w *watch) {
	if !w.recursive {
		e := c.mirror[mkey{w.table, w.path}]
		if e == nil {
			c.deliver(w, Event{Kind: EventNotFound, Key: w.path, Revision: c.revision})
			c.endWatch(w, EndNotFound)
			return
		}
		c.deliver(w, eventFromEntry(EventInitial, w.path, e))
		return
	}
	for _, k := range c.keysUnder(c.mirror, w) {
		c.deliver(w, eventFromEntry(EventInitial, k, c.mirror[mkey{w.table, k}]))
	}
	c.marker(w, EventSynced, 0)
}

func (c *Client) keysUnder(m map[mkey]*entry, w *watch) []string {
	var keys []string
	if !w.recursive {
		if _, ok := m[mkey{w.table, w.path}]; ok {
			keys = append(keys, w.path)
		}
		return keys
	}
	for k := range m {
		if k.table == w.table && prefixMatches(w.path, k.key) {
			keys = append(keys, k.key)
		}
	}
	sort.Strings(keys)
	return keys
}

// diff tells w what takes it from what it was told (old) to the state
// (mirror), in key order. true when an exact watch's key was deleted.
func (c *Client) diff(w *watch) bool {
	oldKeys, newKeys := c.keysUnder(c.old, w), c.keysUnder(c.mirror, w)
	deleted := false
	i, j := 0, 0
	for i < len(oldKeys) || j < len(newKeys) {
		switch {
		case j == len(newKeys) || (i < len(oldKeys) && oldKeys[i] < newKeys[j]):
			e := c.old[mkey{w.table, oldKeys[i]}]
			ev := eventFromEntry(EventDelete, oldKeys[i], e)
			ev.Revision = c.revision
			c.deliver(w, ev)
			deleted = deleted || !w.recursive
			i++
		case i == len(oldKeys) || newKeys[j] < oldKeys[i]:
			c.deliver(w, eventFromEntry(EventPut, newKeys[j], c.mirror[mkey{w.table, newKeys[j]}]))
			j++
		default:
			o, n := c.old[mkey{w.table, oldKeys[i]}], c.mirror[mkey{w.table, newKeys[j]}]
			if o.version != n.version || o.flags != n.flags || string(o.value) != string(n.value) {
				c.deliver(w, eventFromEntry(EventPut, newKeys[j], n))
			}
			i++
			j++
		}
	}
	return deleted
}

// ---- waiting -------------------------------------------------------------------

// wait until the ring may have something, a registration came, or a slice
// passed; then check that the hub is still there.
func (c *Client) wait() {
	r := c.ring
	if c.kicked() {
		return
	}
	ready := false
	switch c.opts.Wait {
	case WaitFD:
		ready = c.waitFD()
	case WaitSpin:
		ready = c.spin(sliceSpin)
	default:
		// A busy stream naps instead of spinning (see waitFutex).
		napping := r.napping()
		spin := c.spinCur
		if napping {
			spin = 0
		}
		// A spin that found something was not a wake-up: a spinning client
		// never naps.
		if ready = c.spin(spin); !ready && !c.kicked() {
			// Let what this round readied (a watch's receiver, woken by
			// deliver) run on this P before the thread blocks: left in the
			// P's run queue, it waits for sysmon to take the P from the
			// blocked thread (tens of us to 10 ms) and keeps sysmon polling.
			if !c.inline {
				runtime.Gosched()
			}
			if c.inline || !napping && (c.gapAvgNs >= uint64(quietAfter)/2 ||
				int64(c.monoNow()-c.lastBatchNs) >= int64(quietAfter)) {
				// A quiet stream, or one of bursts (transactions on average
				// 2 ms apart or more): no thread in a syscall (see
				// quietAfter). Inline (Follow), always: its events need no
				// other goroutine woken. The runtime's monitor thread
				// (sysmon) sleeps while every P is idle; a futex wait wakes it
				// (entersyscall), and after taking the P from the blocked
				// thread it polls every 20 us for a millisecond and more:
				// about 60 context switches, once per burst per process.
				ready = c.waitFD()
			} else {
				c.kickWait.Store(true)
				if kw := c.kickWord.Load(); !c.kicked() {
					ready = r.waitFutex(max(sliceFutex, r.napLeft(c.monoNow())), &c.kickWord, kw, c.monoNow)
				}
				c.kickWait.Store(false)
			}
		}
		// Adaptive spin, as client.c's: spinning pays only while the hub
		// publishes transactions closer together than Options.Spin, judged
		// by the stream's own pace (not by how long this wait took, which on
		// a busy host says nothing of the pace); halved after each slower gap
		// or empty wait.
		if ready && c.batchGapNs <= uint64(c.opts.Spin) {
			c.spinCur = c.opts.Spin
		} else {
			c.spinCur /= 2
		}
	}
	if !ready && c.ctl.dead() {
		c.hubLost()
	}
}

// waitFD sleeps in Go's poller on the ring's wake-up pipe (the ring writes
// a byte for a reader whose sleep word says fd mode) until a wake-up, a
// kick (kick() moves the read deadline) or sliceFD.
//
// A busy stream (see Moderation in ring.c, and waitFutex) naps here too:
// until the previous wake-up plus the writer's delay, without the sleeping
// flag, so that commits do not write the pipe; our eviction still does
// (th_ring_evict), and a kick moves the deadline.
func (c *Client) waitFD() bool {
	r := c.ring
	if r.busy {
		t := c.monoNow()
		until := r.napFrom(t)
		if until > t && !r.readyForUs() && !c.kicked() {
			c.ev.SetReadDeadline(time.Now().Add(time.Duration(until - t)))
			c.drainWakeups()
		}
		if ready, cut := r.napOver(until, c.monoNow(), c.kicked()); ready || cut {
			return ready
		}
	}
	if r.prepareSleep(sleepFD) {
		r.endSleep()
		return true
	}
	c.ev.SetReadDeadline(time.Now().Add(sliceFD))
	if !c.kicked() {
		c.drainWakeups()
	}
	r.endSleep()
	if r.readyForUs() {
		r.woken(c.monoNow())
		return true
	}
	return false
}

// drainWakeups parks in Go's poller until the wake-up pipe is readable (or
// the read deadline passes), then empties it (th_ring_reader_disarm). The
// read is raw: the pipe is non-blocking, so it cannot block, and a syscall
// through the runtime's entersyscall wakes the runtime's monitor thread
// (sysmon) from its sleep, two context switches more per wake-up.
func (c *Client) drainWakeups() {
	var b [256]byte
	c.evRaw.Read(func(fd uintptr) bool {
		for {
			n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				return false // wait in the poller
			case e == 0 && n == uintptr(len(b)):
				continue // more may be there
			}
			return true
		}
	})
}

// spin until the ring has something for us (batches the hub did not wake
// us for are jumped over, as in waitFD and waitFutex: a filtered client on a
// busy ring does not end its spin on them), for at most d. A jump is folded
// into the revision by the next readRing, so it ends the spin too.
func (c *Client) spin(d time.Duration) bool {
	r := c.ring
	found := func() bool { return r.readyForUs() || r.skips != c.skipsSeen }
	if d <= 0 {
		return found()
	}
	start := time.Now()
	for i := 0; ; i++ {
		if found() {
			return true
		}
		if c.kicked() {
			return false
		}
		if i&63 == 63 {
			if time.Since(start) >= d {
				return false
			}
			// Let a watch's receiver have this P (with GOMAXPROCS=1 it
			// has no other). Not for Follow: its loop body runs here, and
			// a Gosched with an idle P wakes a thread for nothing.
			if !c.inline {
				runtime.Gosched()
			}
		}
	}
}
