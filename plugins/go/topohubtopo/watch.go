// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"errors"
	"strings"
	"time"

	"vitess.io/vitess/go/vt/topo"

	"github.com/topohub/topohub/plugins/go/topohub"
)

// watchBuffer is the capacity of the channels Watch and WatchRecursive
// return (etcd2topo uses 10). The consumer must drain them (topo.Conn).
const watchBuffer = 16

// errNoInitial: the hub did not deliver a watch's initial state in time (it
// is down and the client is reconnecting, or far behind).
var errNoInitial = errors.New("no initial value from the hub in time")

// startWatch is what Watch and WatchRecursive share: a client of the hub,
// read-your-writes, and a context the translation goroutine cancels.
func (s *Server) startWatch(ctx context.Context, key string) (*topohub.Client, context.Context, context.CancelFunc, error) {
	if s.isClosed() {
		return nil, nil, nil, s.errClosed(key)
	}
	c, err := s.hubClient(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, nil, convertError(ctx.Err(), key)
		}
		return nil, nil, nil, hubError(key, err)
	}
	if err := s.readYourWrites(ctx, c); err != nil && ctx.Err() != nil {
		return nil, nil, nil, convertError(ctx.Err(), key)
	}
	wctx, cancel := context.WithCancel(ctx)
	return c, wctx, cancel, nil
}

// endError is the last error of a watch whose event channel closed or whose
// context ended: Interrupted (or Timeout) only for the caller's own context,
// the hub error otherwise.
func (s *Server) endError(ctx context.Context, key string, why error) error {
	if ctx.Err() != nil {
		return convertError(ctx.Err(), key)
	}
	if s.isClosed() {
		return s.errClosed(key)
	}
	return hubError(key, why)
}

// nextInitialEvent is the next event before a watch has its first value:
// one from the hub, or (with the watch cancelled) the server's close, the
// InitialTimeout, or the hub lost.
func (s *Server) nextInitialEvent(ctx context.Context, events <-chan topohub.Event, deadline <-chan time.Time,
	cancel context.CancelFunc, key string) (topohub.Event, error) {
	select {
	case ev, ok := <-events:
		if ok {
			return ev, nil
		}
		cancel()
		return topohub.Event{}, s.endError(ctx, key, topohub.ErrHubLost)
	case <-s.closed:
		cancel()
		return topohub.Event{}, s.errClosed(key)
	case <-deadline:
		cancel()
		return topohub.Event{}, hubError(key, errNoInitial)
	}
}

// Watch is part of topo.Conn.
func (s *Server) Watch(ctx context.Context, filePath string) (*topo.WatchData, <-chan *topo.WatchData, error) {
	key := s.fullPath(filePath)
	c, wctx, cancel, err := s.startWatch(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	events, err := c.Watch(wctx, topohub.TableData, key)
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, nil, convertError(ctx.Err(), key)
		}
		return nil, nil, hubError(key, err)
	}

	// The initial value: EventInitial, or EventNotFound. After a resync
	// before it, a put or a delete says the same.
	deadline := time.NewTimer(s.cfg.InitialTimeout)
	defer deadline.Stop()
	var current *topo.WatchData
	for current == nil {
		ev, err := s.nextInitialEvent(ctx, events, deadline.C, cancel, key)
		if err != nil {
			return nil, nil, err
		}
		switch ev.Kind {
		case topohub.EventInitial, topohub.EventPut:
			current = &topo.WatchData{Contents: value(ev), Version: Version(ev.Version)}
		case topohub.EventNotFound, topohub.EventDelete, topohub.EventEnded:
			cancel()
			return nil, nil, topo.NewError(topo.NoNode, key)
		case topohub.EventResync:
			if ev.Reason == topohub.ResyncHubLost {
				cancel()
				return nil, nil, hubError(key, topohub.ErrHubLost)
			}
		}
	}

	out := make(chan *topo.WatchData, watchBuffer)
	ok := s.goTracked(func() {
		defer close(out)
		defer cancel()
		// send delivers one record; false when the watch must end without it
		// (the Server closes: nobody may be left to drain).
		send := func(wd *topo.WatchData) bool {
			select {
			case out <- wd:
				return true
			case <-wctx.Done():
				return false
			case <-s.closed:
				return false
			}
		}
		final := func(err error) {
			select {
			case out <- &topo.WatchData{Err: err}:
			case <-s.closed:
			}
		}
		for {
			select {
			case <-wctx.Done():
				final(s.endError(ctx, key, nil))
				return
			case <-s.closed:
				return
			case ev, ok := <-events:
				if !ok {
					final(s.endError(ctx, key, topohub.ErrHubLost))
					return
				}
				switch ev.Kind {
				case topohub.EventInitial, topohub.EventPut:
					if !send(&topo.WatchData{Contents: value(ev), Version: Version(ev.Version)}) {
						continue // wctx done or closing: the next turn says which
					}
				case topohub.EventDelete, topohub.EventNotFound, topohub.EventEnded:
					final(topo.NewError(topo.NoNode, key))
					return
				case topohub.EventResync:
					// Evicted, lapped, or the hub's own reload: the client
					// delivers the current value (or the delete) next. A lost
					// hub ends the watch so that the caller watches again.
					if ev.Reason == topohub.ResyncHubLost {
						final(s.endError(ctx, key, topohub.ErrHubLost))
						return
					}
				}
			}
		}
	})
	if !ok {
		cancel()
		return nil, nil, s.errClosed(key)
	}
	return current, out, nil
}

// WatchRecursive is part of topo.Conn. Paths are whole keys, as List's. A
// delete is a record with that path and NoNode; the watch goes on.
func (s *Server) WatchRecursive(ctx context.Context, dirPath string) ([]*topo.WatchDataRecursive, <-chan *topo.WatchDataRecursive, error) {
	prefix := s.fullPath(dirPath)
	c, wctx, cancel, err := s.startWatch(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	events, err := c.WatchRecursive(wctx, topohub.TableData, prefix)
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, nil, convertError(ctx.Err(), prefix)
		}
		return nil, nil, hubError(prefix, err)
	}
	// Strictly under the prefix, on component boundaries, as etcd2topo (which
	// watches prefix+"/"): the prefix itself is a file of its parent.
	under := prefix
	if !strings.HasSuffix(under, "/") {
		under += "/"
	}
	inside := func(k string) bool { return strings.HasPrefix(k, under) }

	// The initial entries, up to EventSynced. Changes seen before it (after
	// a resync) update the map of current values.
	deadline := time.NewTimer(s.cfg.InitialTimeout)
	defer deadline.Stop()
	current := map[string]*topo.WatchDataRecursive{}
	var order []string
	for synced := false; !synced; {
		ev, err := s.nextInitialEvent(ctx, events, deadline.C, cancel, prefix)
		if err != nil {
			return nil, nil, err
		}
		switch ev.Kind {
		case topohub.EventInitial, topohub.EventPut:
			if !inside(ev.Key) {
				continue
			}
			if _, seen := current[ev.Key]; !seen {
				order = append(order, ev.Key)
			}
			current[ev.Key] = &topo.WatchDataRecursive{Path: ev.Key,
				WatchData: topo.WatchData{Contents: value(ev), Version: Version(ev.Version)}}
		case topohub.EventDelete:
			delete(current, ev.Key)
		case topohub.EventSynced:
			synced = true
		case topohub.EventResync:
			if ev.Reason == topohub.ResyncHubLost {
				cancel()
				return nil, nil, hubError(prefix, topohub.ErrHubLost)
			}
		case topohub.EventEnded, topohub.EventNotFound:
			cancel()
			return nil, nil, s.endError(ctx, prefix, topohub.ErrHubLost)
		}
	}
	initial := make([]*topo.WatchDataRecursive, 0, len(current))
	for _, k := range order {
		if wd, ok := current[k]; ok {
			initial = append(initial, wd)
		}
	}

	out := make(chan *topo.WatchDataRecursive, watchBuffer)
	ok := s.goTracked(func() {
		defer close(out)
		defer cancel()
		send := func(wd *topo.WatchDataRecursive) {
			select {
			case out <- wd:
			case <-wctx.Done():
			case <-s.closed:
			}
		}
		final := func(err error) {
			select {
			case out <- &topo.WatchDataRecursive{WatchData: topo.WatchData{Err: err}}:
			case <-s.closed:
			}
		}
		for {
			select {
			case <-wctx.Done():
				final(s.endError(ctx, prefix, nil))
				return
			case <-s.closed:
				return
			case ev, ok := <-events:
				if !ok {
					final(s.endError(ctx, prefix, topohub.ErrHubLost))
					return
				}
				switch ev.Kind {
				case topohub.EventInitial, topohub.EventPut:
					if inside(ev.Key) {
						send(&topo.WatchDataRecursive{Path: ev.Key,
							WatchData: topo.WatchData{Contents: value(ev), Version: Version(ev.Version)}})
					}
				case topohub.EventDelete:
					if inside(ev.Key) {
						send(&topo.WatchDataRecursive{Path: ev.Key,
							WatchData: topo.WatchData{Err: topo.NewError(topo.NoNode, ev.Key)}})
					}
				case topohub.EventResync:
					// The client follows it with the current values and a
					// delete for each entry that vanished: translated above.
					if ev.Reason == topohub.ResyncHubLost {
						final(s.endError(ctx, prefix, topohub.ErrHubLost))
						return
					}
				case topohub.EventEnded:
					final(s.endError(ctx, prefix, topohub.ErrHubLost))
					return
				}
			}
		}
	})
	if !ok {
		cancel()
		return nil, nil, s.errClosed(prefix)
	}
	return initial, out, nil
}

// value is an event's value as topo wants it: never nil for a file.
func value(ev topohub.Event) []byte {
	if ev.Value == nil {
		return []byte{}
	}
	return ev.Value
}
