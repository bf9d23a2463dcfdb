// SPDX-License-Identifier: Apache-2.0

// Package topohub is a pure-Go client of topohubd (no cgo): it speaks the
// hub's control protocol (protocol/protocol.h) and reads the hub's shared-memory
// ring (shm/ring.h) itself, with the semantics of the C library
// (plugins/topohub.h): Watch and WatchRecursive with snapshot stitching at one
// revision, component-boundary prefixes, RESYNC and convergence after an
// eviction, a lap or a hub restart, reconnection with backoff.
//
// Lifetimes are contexts: a watch ends when its context is cancelled (its
// channel is closed after a last event, if any), a client when Close is
// called. No goroutine outlives the Client that started it.
//
// Guarantees:
//   - Each watch's events come in revision order, nothing missing, nothing
//     twice; continuity lost (evicted, lapped, hub gone) is never silent:
//     EventResync, the puts and deletes to the current state, EventSynced.
//   - One goroutine per Client reads the ring and sends on the watch
//     channels; nothing runs on a thread the caller did not start, no signal
//     is used, nothing is logged. A full channel holds that goroutine up:
//     past Options.Timeout the hub evicts the client (every watch resyncs).
//   - Everything from the hub (messages, descriptors, the ring and slot) is
//     checked before use: bad input is an error (ErrProto, ErrFormat,
//     ErrVersion), never a panic.
//   - WaitRevision(Sync(gtid)) returns once every change of those
//     transactions was sent to the watches, with or without later traffic.
//
// Caveats:
//   - A new watch (or a cancelled one) interrupts the reader's wait at once
//     in every mode: futex mode sleeps on a word of its own beside the
//     hub's (waking the hub's would wake every reader on the host).
//   - The client keeps a copy of every entry under its watches (for
//     stitching and for the differences after a resync).
//   - Event.Value is the receiver's own copy; Entry.Value too.
//   - A hub that hangs without closing its socket (SIGSTOP) is waited for:
//     the client sees no change until it runs again or dies.
package topohub

import (
	"errors"
	"time"
)

// Tables as the hub numbers them by default (the hub's TABLES query lists them).
const (
	TableData      uint32 = 0 // topo_data: key path, value data, version
	TableLocks     uint32 = 1 // topo_locks
	TableElections uint32 = 2 // topo_elections: key name, value leader_id + contents
)

// DefaultSocket is the hub's socket when Options.Socket is empty.
const DefaultSocket = "/run/topohub/topohub.sock"

// WaitMode says how the client's reader waits for the ring.
type WaitMode int

const (
	WaitFutex WaitMode = iota // spin briefly, then sleep on the ring's futex; after 4 ms without records, in Go's poller (default)
	WaitSpin                  // spin: lowest latency, burns a core
	WaitFD                    // sleep on the reader's wake-up fd (a pipe's read end; shm/ring.h) through Go's poller
)

// Options for Open. The zero value is usable.
type Options struct {
	Socket  string        // "" = DefaultSocket
	Timeout time.Duration // slow-consumer timeout asked of the hub (it clamps); 0 = 1 s
	Name    string        // shown by `topohubctl readers`; "" = "topohub-go"
	Wait    WaitMode
	Spin    time.Duration // WaitFutex: spin at most this long before sleeping; 0 = 20 us
	// MaxWakeDelay bounds, in WaitFutex, the delay by which the hub batches
	// wake-ups under load (a busy stream wakes the client at most once per
	// delay; the hub chooses it, 40 ms at most by default). 0: as the hub
	// says; negative or below 50 us: every commit wakes.
	MaxWakeDelay time.Duration
	// Buffer is each watch channel's capacity (0 = 256). A consumer that
	// leaves its channel full holds up the client's reader; past Timeout the
	// hub evicts it and every watch of the client gets EventResync.
	Buffer int
}

// EventKind is what an Event says (the values of enum th_event_kind).
type EventKind uint16

const (
	EventInitial  EventKind = 1 // an entry as it is when the watch starts
	EventPut      EventKind = 2 // created or updated
	EventDelete   EventKind = 3 // deleted
	EventNotFound EventKind = 4 // Watch on a path with no entry; EventEnded follows
	EventResync   EventKind = 5 // continuity lost (Reason: ResyncCause); changes follow, then EventSynced
	EventSynced   EventKind = 6 // the watch's view is the hub's state at Revision
	EventEnded    EventKind = 7 // the watch ended by itself (Reason: EndReason); its last event
)

// Resync causes (enum th_resync_cause) and end reasons (enum th_end_reason),
// carried in Event.Reason.
const (
	ResyncEvicted = 1 // this client was too slow; the hub evicted it
	ResyncLapped  = 2 // the ring overtook this client
	ResyncHubLost = 3 // the hub stopped or restarted
	ResyncHub     = 4 // the hub itself resynced its tables (DDL, reload)
	ResyncNoMem   = 5 // the client ran out of memory and dropped a change

	EndDeleted  = 1 // the watched path was deleted
	EndNotFound = 2 // the watched path did not exist
)

// Event is one thing a watch is told. Value is the client's own copy.
type Event struct {
	Kind      EventKind
	Reason    uint32 // EventResync: Resync*; EventEnded: End*
	Table     uint32
	Key       string // "" for Resync, Synced, Ended
	Value     []byte
	ValueNull bool   // the value column is SQL NULL
	Version   int64  // the row's version column (0 when the table has none)
	Revision  uint64 // hub revision of this change (INITIAL: of the entry's last change; SYNCED: the state's)
	Commit    time.Time
	Published time.Time     // when the hub published it; zero if not from the ring
	Latency   time.Duration // hub publish to delivery on CLOCK_MONOTONIC; 0 if not from the ring
	GTID      string
}

// Entry is one row of the hub's state, as Get and List return it.
type Entry struct {
	Table     uint32
	Key       string
	Value     []byte
	ValueNull bool
	Version   int64
	Revision  uint64
}

// Stats are the client's counters (struct th_stats).
type Stats struct {
	Revision   uint64 // last revision dispatched
	Events     uint64
	Records    uint64
	Resyncs    uint64
	Evictions  uint64
	Laps       uint64
	Reconnects uint64
	Watches    uint64
	Entries    uint64
	Generation uint64
}

// Sentinel errors, for errors.Is. Errors from the hub wrap the matching
// sentinel or syscall.Errno.
var (
	ErrClosed   = errors.New("topohub: client closed")
	ErrNotFound = errors.New("topohub: no such entry")
	ErrProto    = errors.New("topohub: malformed or unexpected message from the hub")
	ErrVersion  = errors.New("topohub: incompatible protocol or ring version")
	ErrFormat   = errors.New("topohub: shared memory of an incompatible format")
	ErrGTID     = errors.New("topohub: malformed GTID set")
	ErrHubLost  = errors.New("topohub: connection to the hub lost")
	ErrEvicted  = errors.New("topohub: evicted by the hub as a slow consumer")
	ErrLapped   = errors.New("topohub: overtaken by the ring's writer")
	// ErrNotImplemented was the skeleton's answer; kept for callers that name it, never returned.
	ErrNotImplemented = errors.New("topohub: not implemented yet")
)
