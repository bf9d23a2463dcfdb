// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"vitess.io/vitess/go/vt/log"
	"vitess.io/vitess/go/vt/topo"

	"github.com/topohub/topohub/plugins/go/topohub"
)

// NewLeaderParticipation is part of topo.Conn.
func (s *Server) NewLeaderParticipation(name, id string) (topo.LeaderParticipation, error) {
	if s.isClosed() {
		return nil, s.errClosed(name)
	}
	return &leaderParticipation{
		s:    s,
		name: path.Join(s.root, "elections", name),
		id:   id,
		stop: make(chan struct{}),
	}, nil
}

// leaderParticipation is one candidate. The leader is whoever holds the
// election's row in topo_elections, renewed every third of the TTL; a row
// past its expires_at is removed by the next candidate that looks.
type leaderParticipation struct {
	s    *Server
	name string
	id   string

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}  // closed by Stop
	calls   sync.WaitGroup // WaitForLeadership calls and the leaderships they won
}

func (mp *leaderParticipation) secs() int64 { return ttlSeconds(mp.s.cfg.ElectionTTL) }

// interrupted is the context of Stop: it ends waits when Stop is called or
// the Server closes.
func (mp *leaderParticipation) interrupted() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-mp.stop:
		case <-mp.s.closed:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// WaitForLeadership is part of topo.LeaderParticipation.
func (mp *leaderParticipation) WaitForLeadership() (context.Context, error) {
	mp.mu.Lock()
	if mp.stopped {
		mp.mu.Unlock()
		return nil, topo.NewError(topo.Interrupted, mp.name)
	}
	mp.calls.Add(1)
	mp.mu.Unlock()

	ctx, cancel := mp.interrupted()
	defer cancel()
	var w *rowWaiter
	defer func() {
		if w != nil {
			w.stop()
		}
	}()
	for {
		err := mp.s.write(ctx, mp.name, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, mp.s.q.elecInsert, mp.name, mp.id, mp.id, mp.secs())
			return err
		})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			mp.calls.Done()
			return nil, topo.NewError(topo.Interrupted, mp.name)
		}
		if isContention(err) {
			continue
		}
		if !isDup(err) {
			// A database error: say so; the caller retries (see topo.LeaderParticipation).
			mp.calls.Done()
			return nil, err
		}
		res, err := mp.s.db.ExecContext(ctx, mp.s.q.elecExpire, mp.name)
		if err == nil {
			if n, _ := res.RowsAffected(); n > 0 {
				log.Warn(fmt.Sprintf("topohubtopo: leadership of %s expired; standing again", mp.name))
				continue
			}
		}
		if w == nil {
			w = mp.s.newRowWaiter(ctx, topohub.TableElections, mp.name)
			continue
		}
		if err := w.wait(ctx, mp.s.closed); err != nil {
			mp.calls.Done()
			return nil, topo.NewError(topo.Interrupted, mp.name)
		}
	}

	// Leader: the returned context lives until Stop, or until the row is lost.
	lctx, lcancel := context.WithCancel(context.Background())
	leading := func() {
		defer mp.calls.Done()
		lost := mp.renew()
		// The leader's work stops before anyone else may lead.
		lcancel()
		if lost {
			return
		}
		// Give the leadership up (Stop, Close).
		ctx, cancel := context.WithTimeout(context.Background(), topo.RemoteOperationTimeout)
		defer cancel()
		err := mp.s.writeOnce(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, mp.s.q.elecDelete, mp.name, mp.id)
			return err
		})
		if err != nil {
			log.Warn(fmt.Sprintf("topohubtopo: giving up leadership of %s: %v (it expires by itself)", mp.name, err))
		}
	}
	select {
	case <-mp.stop:
		// Stop came as the row went in: give it back, say Interrupted.
		leading()
		return nil, topo.NewError(topo.Interrupted, mp.name)
	default:
	}
	if !mp.s.goTracked(leading) {
		lcancel()
		mp.calls.Done()
	}
	return lctx, nil
}

// renew keeps the row alive until Stop or Close (false), or its loss (true).
func (mp *leaderParticipation) renew() (lost bool) {
	every := time.Duration(mp.secs()) * time.Second / 3
	lastOK := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-mp.stop:
			return false
		case <-mp.s.closed:
			return false
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), min(every, renewTimeout))
		res, err := mp.s.db.ExecContext(ctx, mp.s.q.elecRenew, mp.secs(), mp.name, mp.id)
		cancel()
		if err == nil {
			if n, _ := res.RowsAffected(); n == 0 {
				log.Error(fmt.Sprintf("topohubtopo: leadership of %s lost: its row was removed or taken over", mp.name))
				return true
			}
			lastOK = sent
			continue
		}
		if time.Since(lastOK) > safeTTL(mp.secs()) {
			log.Error(fmt.Sprintf("topohubtopo: leadership of %s lost: not renewed for its TTL: %v", mp.name, err))
			return true
		}
	}
}

// Stop is part of topo.LeaderParticipation.
func (mp *leaderParticipation) Stop() {
	mp.mu.Lock()
	if !mp.stopped {
		mp.stopped = true
		close(mp.stop)
	}
	mp.mu.Unlock()
	mp.calls.Wait()
}

// GetCurrentLeaderID is part of topo.LeaderParticipation: "" when there is none.
func (mp *leaderParticipation) GetCurrentLeaderID(ctx context.Context) (string, error) {
	var id string
	err := mp.s.db.QueryRowContext(ctx, mp.s.q.elecLeader, mp.name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", ctxError(ctx, err, mp.name)
	}
	return id, nil
}

// WaitForNewLeader is part of topo.LeaderParticipation: the current leader
// when there is one, then each new one, until ctx ends or the Server closes.
func (mp *leaderParticipation) WaitForNewLeader(ctx context.Context) (<-chan string, error) {
	if mp.s.isClosed() {
		return nil, mp.s.errClosed(mp.name)
	}
	out := make(chan string, 8)
	// Close must not wait for a query stuck on an unreachable server.
	ctx, cancel := mp.s.untilClosed(ctx)
	w := mp.s.newRowWaiter(ctx, topohub.TableElections, mp.name)
	// The leader at the time of the call is read here, not by the goroutine:
	// it is the first thing the caller is told, even if it stops at once.
	last, err := mp.GetCurrentLeaderID(ctx)
	if err != nil {
		w.stop()
		cancel()
		return nil, err
	}
	if last != "" {
		out <- last
	}
	ok := mp.s.goTracked(func() {
		defer close(out)
		defer cancel()
		defer w.stop()
		for {
			if w.wait(ctx, mp.s.closed) != nil {
				return
			}
			id, err := mp.GetCurrentLeaderID(ctx)
			if err == nil && id != "" && id != last {
				last = id
				select {
				case out <- id:
				case <-ctx.Done():
					return
				case <-mp.s.closed:
					return
				}
			}
		}
	})
	if !ok {
		w.stop()
		cancel()
		return nil, mp.s.errClosed(mp.name)
	}
	return out, nil
}
