// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"vitess.io/vitess/go/vt/log"
	"vitess.io/vitess/go/vt/topo"

	"github.com/topohub/topohub/plugins/go/topohub"
)

// Lock is part of topo.Conn.
func (s *Server) Lock(ctx context.Context, dirPath, contents string) (topo.LockDescriptor, error) {
	return s.lock(ctx, dirPath, contents, s.cfg.LockTTL, true, false)
}

// LockWithTTL is part of topo.Conn. A TTL of zero or less is the default's.
func (s *Server) LockWithTTL(ctx context.Context, dirPath, contents string, ttl time.Duration) (topo.LockDescriptor, error) {
	if ttl <= 0 {
		ttl = s.cfg.LockTTL
	}
	return s.lock(ctx, dirPath, contents, ttl, true, false)
}

// LockName is part of topo.Conn: no file need exist under dirPath.
func (s *Server) LockName(ctx context.Context, dirPath, contents string) (topo.LockDescriptor, error) {
	return s.lock(ctx, dirPath, contents, topo.NamedLockTTL, false, false)
}

// TryLock is part of topo.Conn: NodeExists at once when the lock is held.
func (s *Server) TryLock(ctx context.Context, dirPath, contents string) (topo.LockDescriptor, error) {
	return s.lock(ctx, dirPath, contents, s.cfg.LockTTL, true, true)
}

// lock inserts the lock's row. A row already there is the holder's, unless
// past its expires_at: then it is deleted and the insert tried again.
func (s *Server) lock(ctx context.Context, dirPath, contents string, ttl time.Duration, mustExist, try bool) (topo.LockDescriptor, error) {
	key := s.fullPath(dirPath)
	if s.isClosed() {
		return nil, s.errClosed(key)
	}
	if mustExist {
		ok, err := s.dirExists(ctx, s.dirPrefix(dirPath))
		if err != nil {
			return nil, ctxError(ctx, err, key)
		}
		if !ok {
			return nil, topo.NewError(topo.NoNode, key)
		}
	}
	secs := ttlSeconds(ttl)
	var w *rowWaiter
	defer func() {
		if w != nil {
			w.stop()
		}
	}()
	for {
		created, err := s.tryInsertLock(ctx, key, contents, secs)
		if err == nil {
			return s.newLockDescriptor(key, contents, created, secs), nil
		}
		if isContention(err) && ctx.Err() == nil {
			continue
		}
		if !isDup(err) {
			return nil, ctxError(ctx, err, key)
		}
		// Held. Take it over if it expired.
		res, err := s.db.ExecContext(ctx, s.q.lockExpire, key)
		if isContention(err) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return nil, ctxError(ctx, err, key)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			log.Warn(fmt.Sprintf("topohubtopo: lock %s expired; taking it over", key))
			continue
		}
		if try {
			return nil, topo.NewError(topo.NodeExists, fmt.Sprintf("lock already exists at path %s", key))
		}
		if w == nil {
			w = s.newRowWaiter(ctx, topohub.TableLocks, key)
			continue // look again: the holder may have left while we subscribed
		}
		if err := w.wait(ctx, s.closed); err != nil {
			if errors.Is(err, errServerClosed) {
				return nil, s.errClosed(key)
			}
			return nil, convertError(err, key)
		}
	}
}

// tryInsertLock inserts the row and reads back its created_at, which with the
// path and contents identifies this holding of the lock.
func (s *Server) tryInsertLock(ctx context.Context, key, contents string, secs int64) (created string, err error) {
	err = s.write(ctx, key, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q.lockInsert, key, contents, secs); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, s.q.lockSelect, key).Scan(&created)
	})
	return created, err
}

// lockDescriptor is a held lock; a goroutine renews its row until Unlock.
type lockDescriptor struct {
	s        *Server
	key      string
	contents string
	created  string
	secs     int64

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	mu   sync.Mutex
	lost error
}

func (s *Server) newLockDescriptor(key, contents, created string, secs int64) *lockDescriptor {
	ld := &lockDescriptor{s: s, key: key, contents: contents, created: created, secs: secs,
		stop: make(chan struct{}), done: make(chan struct{})}
	if !s.goTracked(ld.renew) {
		close(ld.done)
	}
	return ld
}

// renew pushes expires_at forward every third of the TTL. The lock is lost
// when its row is gone or changed hands, or when no renewal succeeded for a
// whole TTL.
func (ld *lockDescriptor) renew() {
	defer close(ld.done)
	every := time.Duration(ld.secs) * time.Second / 3
	lastOK := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ld.stop:
			return
		case <-ld.s.closed:
			return
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), min(every, renewTimeout))
		res, err := ld.s.db.ExecContext(ctx, ld.s.q.lockRenew, ld.secs, ld.key, ld.contents, ld.created)
		cancel()
		if err == nil {
			if n, _ := res.RowsAffected(); n == 0 {
				ld.setLost(fmt.Errorf("topohubtopo: lock %s lost: its row was removed or taken over", ld.key))
				return
			}
			lastOK = sent
			continue
		}
		if time.Since(lastOK) > safeTTL(ld.secs) {
			ld.setLost(fmt.Errorf("topohubtopo: lock %s lost: not renewed for its TTL: %w", ld.key, err))
			return
		}
	}
}

func (ld *lockDescriptor) setLost(err error) {
	ld.mu.Lock()
	if ld.lost == nil {
		ld.lost = err
	}
	ld.mu.Unlock()
	log.Error(fmt.Sprintf("%v", err))
}

// Check is part of topo.LockDescriptor.
func (ld *lockDescriptor) Check(ctx context.Context) error {
	ld.mu.Lock()
	lost := ld.lost
	ld.mu.Unlock()
	if lost != nil {
		return lost
	}
	var n int
	if err := ld.s.db.QueryRowContext(ctx, ld.s.q.lockHeld, ld.key, ld.contents, ld.created).Scan(&n); err != nil {
		return ctxError(ctx, err, ld.key)
	}
	if n == 0 {
		return fmt.Errorf("topohubtopo: lock %s is no longer held", ld.key)
	}
	return nil
}

// Unlock is part of topo.LockDescriptor.
func (ld *lockDescriptor) Unlock(ctx context.Context) error {
	ld.stopOnce.Do(func() { close(ld.stop) })
	<-ld.done
	var n int64
	err := ld.s.write(ctx, ld.key, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, ld.s.q.lockDelete, ld.key, ld.contents, ld.created)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("topohubtopo: unlock %s: the lock is not held (released already, or expired and taken over)", ld.key)
	}
	return nil
}
