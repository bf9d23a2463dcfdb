// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"vitess.io/vitess/go/vt/log"

	"github.com/topohub/topohub/plugins/go/topohub"
)

// hubRef is one topohub client shared by every Server of the process on one
// socket: one ring reader per process, however many Conns and watches.
type hubRef struct {
	socket string
	client *topohub.Client
	refs   int
}

var (
	hubsMu sync.Mutex
	hubs   = map[string]*hubRef{}
)

func acquireHub(ctx context.Context, socket string) (*hubRef, error) {
	hubsMu.Lock()
	defer hubsMu.Unlock()
	if h := hubs[socket]; h != nil {
		h.refs++
		return h, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := topohub.Open(ctx, topohub.Options{Socket: socket, Name: "vitess-topohubtopo"})
	if err != nil {
		return nil, err
	}
	h := &hubRef{socket: socket, client: c, refs: 1}
	hubs[socket] = h
	return h, nil
}

func (h *hubRef) release() {
	hubsMu.Lock()
	h.refs--
	last := h.refs == 0
	if last {
		delete(hubs, h.socket)
	}
	hubsMu.Unlock()
	if last {
		_ = h.client.Close()
	}
}

// hubClient returns the process's client of the hub, connecting on first use.
// The Server holds one reference until Close.
func (s *Server) hubClient(ctx context.Context) (*topohub.Client, error) {
	s.hubMu.Lock()
	defer s.hubMu.Unlock()
	if s.isClosed() {
		return nil, topohub.ErrClosed
	}
	if s.hub != nil {
		return s.hub.client, nil
	}
	h, err := acquireHub(ctx, s.cfg.Socket)
	if err != nil {
		return nil, err
	}
	s.hub = h
	return h.client, nil
}

// hubError is the error of a watch that cannot reach the hub, or lost it. It
// wraps topohub.ErrHubLost and is not a topo.Error: srvtopo re-watches after
// it and keeps serving its cached value meanwhile, where topo.Interrupted
// would stop it for good.
func hubError(p string, err error) error {
	if err == nil || errors.Is(err, topohub.ErrHubLost) {
		return fmt.Errorf("topohubtopo: watch %s: %w", p, topohub.ErrHubLost)
	}
	return fmt.Errorf("topohubtopo: watch %s: %w: %v", p, topohub.ErrHubLost, err)
}

// readYourWrites waits until the hub and this client have delivered every
// write this process made to the database, so a watch started now sees them.
// It gives up after SyncTimeout (a hub far behind, or reading another
// server): the watch then starts with what the hub has, as Vitess allows.
func (s *Server) readYourWrites(ctx context.Context, c *topohub.Client) error {
	pos := s.gtids.position()
	if pos == "" {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.SyncTimeout)
	defer cancel()
	rev, err := c.Sync(sctx, pos)
	if err == nil {
		err = c.WaitRevision(sctx, rev)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		log.Warn(fmt.Sprintf("topohubtopo: the hub did not confirm this process's writes up to %s (%v); the watch starts with what the hub has", pos, err))
	}
	return err
}

// rowWaiter wakes a lock or election waiter when the hub reports a change of
// its row, and otherwise every poll interval (rows also expire, which no
// binlog event announces). Without a hub it only polls, faster.
type rowWaiter struct {
	key    string
	events <-chan topohub.Event
	cancel context.CancelFunc
	poll   time.Duration
}

func (s *Server) newRowWaiter(ctx context.Context, table uint32, key string) *rowWaiter {
	w := &rowWaiter{key: key, poll: s.cfg.PollInterval / 4}
	c, err := s.hubClient(ctx)
	if err != nil {
		return w
	}
	wctx, cancel := context.WithCancel(ctx)
	// The parent, recursively: an exact watch of a row that does not exist
	// yet ends at once.
	ev, err := c.WatchRecursive(wctx, table, path.Dir(key))
	if err != nil {
		cancel()
		return w
	}
	w.events, w.cancel, w.poll = ev, cancel, s.cfg.PollInterval
	return w
}

func (w *rowWaiter) stop() {
	if w.cancel != nil {
		w.cancel()
	}
}

// wait returns nil when it is time to look at the row again, or ctx's error,
// or errClosed when the server closes.
func (w *rowWaiter) wait(ctx context.Context, closed <-chan struct{}) error {
	t := time.NewTimer(w.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return errServerClosed
		case <-t.C:
			return nil
		case ev, ok := <-w.events:
			if !ok {
				w.events = nil // the hub went away: poll only
				w.poll = w.poll / 4
				return nil
			}
			if ev.Key == w.key || ev.Kind == topohub.EventResync {
				return nil
			}
		}
	}
}

var errServerClosed = fmt.Errorf("topohubtopo: connection closed")
