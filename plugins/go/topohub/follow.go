// SPDX-License-Identifier: Apache-2.0

package topohub

import (
	"context"
	"iter"
)

// Follow is WatchRecursive read on the calling goroutine: it opens a client
// of its own (opts as for Open) and runs the client's reader inside the
// range loop, so that each event reaches the loop body with no goroutine
// hand-off. A watch channel costs one: while the process is otherwise idle,
// every wake-up then wakes a second thread for the channel's receiver, about
// twice the CPU per event (bench/RESULTS.md). Follow is for a process whose
// one job is to follow a prefix; Open's channels serve any number of
// watches and the other calls (Get, List, Sync, Stats).
//
// The events are WatchRecursive's, in its order: EventInitial for each
// entry, EventSynced, then every change; EventResync then what brings the
// view back to the hub's state after an eviction, a lap or a lost hub
// (reconnected with backoff, as by Open's client). The loop body holds up
// the reader as a full channel does: past Options.Timeout the hub evicts
// the client, and EventResync follows.
//
// The iteration ends when the loop breaks, or with ctx's error when ctx
// ends. If the hub cannot be reached at the start, the error is the only
// value (Open's).
func Follow(ctx context.Context, opts Options, table uint32, prefix string) iter.Seq2[Event, error] {
	return follow(ctx, opts, table, trimPath(prefix), true)
}

// FollowKey is Watch read on the calling goroutine (see Follow): the
// iteration also ends after EventEnded (the key was deleted, or absent).
func FollowKey(ctx context.Context, opts Options, table uint32, key string) iter.Seq2[Event, error] {
	return follow(ctx, opts, table, key, false)
}

func follow(ctx context.Context, opts Options, table uint32, path string, recursive bool) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		c, err := newClient(ctx, opts)
		if err != nil {
			yield(Event{}, err)
			return
		}
		c.inline = true
		defer func() {
			c.Close() // no reader goroutine to wait for
			c.shutdown()
		}()
		if _, err := c.register(ctx, table, path, recursive); err != nil {
			yield(Event{}, err)
			return
		}
		for c.step() {
			for _, ev := range c.queue {
				if !yield(ev, nil) || ev.Kind == EventEnded {
					return
				}
			}
			clear(c.queue) // let the values go
			c.queue = c.queue[:0]
			if err := ctx.Err(); err != nil {
				yield(Event{}, err)
				return
			}
		}
	}
}
