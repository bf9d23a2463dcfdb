// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"vitess.io/vitess/go/vt/topo"
)

// Version is the topo.Version of this backend: the row's version column.
type Version int64

// String is part of topo.Version.
func (v Version) String() string { return strconv.FormatInt(int64(v), 10) }

// versionOf reads a topo.Version given back by a caller.
func versionOf(v topo.Version) (int64, bool) {
	switch x := v.(type) {
	case Version:
		return int64(x), true
	case nil:
		return 0, false
	}
	n, err := strconv.ParseInt(v.String(), 10, 64)
	if err != nil {
		return -1, true // matches no row's version: BadVersion
	}
	return n, true
}

// write runs fn in a READ COMMITTED transaction on a pinned connection,
// commits, and records the transaction's GTID for read-your-writes. Deadlocks
// and lock wait timeouts are retried a few times: two creators of one new row
// can deadlock on its index gap.
func (s *Server) write(ctx context.Context, p string, fn func(tx *sql.Tx) error) error {
	if s.isClosed() {
		return s.errClosed(p)
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = s.writeOnce(ctx, fn)
		if isContention(err) && ctx.Err() == nil {
			continue
		}
		break
	}
	if err == nil {
		return nil // committed, even if ctx ended since
	}
	return ctxError(ctx, err, p)
}

func (s *Server) writeOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.recordWrite(ctx, conn)
	return nil
}

// lockedVersion reads the row's version under a row lock; found is false
// when there is no row with exactly that path (the column may compare case
// insensitively).
func (s *Server) lockedVersion(ctx context.Context, tx *sql.Tx, key string) (version int64, found bool, err error) {
	rows, err := tx.QueryContext(ctx, s.q.getForUpdate, key)
	if err != nil {
		return 0, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		var v int64
		if err := rows.Scan(&p, &v); err != nil {
			return 0, false, err
		}
		if p == key {
			version, found = v, true
		}
	}
	return version, found, rows.Err()
}

// Create is part of topo.Conn.
func (s *Server) Create(ctx context.Context, filePath string, contents []byte) (topo.Version, error) {
	key := s.fullPath(filePath)
	if contents == nil {
		contents = []byte{}
	}
	err := s.write(ctx, key, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q.insert, key, contents)
		if mysqlErrno(err) == erDupEntry {
			return topo.NewError(topo.NodeExists, key)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return Version(1), nil
}

// Update is part of topo.Conn.
func (s *Server) Update(ctx context.Context, filePath string, contents []byte, version topo.Version) (topo.Version, error) {
	key := s.fullPath(filePath)
	if contents == nil {
		contents = []byte{}
	}
	want, checked := versionOf(version)
	var newVersion int64
	fn := func(tx *sql.Tx) error {
		cur, found, err := s.lockedVersion(ctx, tx, key)
		if err != nil {
			return err
		}
		switch {
		case !found && checked:
			return topo.NewError(topo.NoNode, key)
		case !found:
			if _, err := tx.ExecContext(ctx, s.q.insert, key, contents); err != nil {
				return err
			}
			newVersion = 1
			return nil
		case checked && cur != want:
			return topo.NewError(topo.BadVersion, key)
		}
		newVersion = cur + 1
		_, err = tx.ExecContext(ctx, s.q.update, contents, newVersion, key)
		return err
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		// Two unconditional updates of a missing row both insert; the
		// loser's duplicate key means the row now exists: update it.
		if err = s.write(ctx, key, fn); !isDup(err) || checked {
			break
		}
	}
	if isDup(err) && checked {
		err = topo.NewError(topo.BadVersion, key)
	}
	if err != nil {
		return nil, err
	}
	return Version(newVersion), nil
}

func isDup(err error) bool { return mysqlErrno(err) == erDupEntry }

// isContention: InnoDB gave up on a row lock (deadlock, lock wait timeout);
// the statement is safe to run again.
func isContention(err error) bool {
	n := mysqlErrno(err)
	return n == erLockDeadlock || n == erLockWait
}

// Get is part of topo.Conn.
func (s *Server) Get(ctx context.Context, filePath string) ([]byte, topo.Version, error) {
	key := s.fullPath(filePath)
	if s.isClosed() {
		return nil, nil, s.errClosed(key)
	}
	rows, err := s.db.QueryContext(ctx, s.q.get, key)
	if err != nil {
		return nil, nil, ctxError(ctx, err, key)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		var data []byte
		var v int64
		if err := rows.Scan(&p, &data, &v); err != nil {
			return nil, nil, ctxError(ctx, err, key)
		}
		if p == key {
			if data == nil {
				data = []byte{}
			}
			return data, Version(v), nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, ctxError(ctx, err, key)
	}
	return nil, nil, topo.NewError(topo.NoNode, key)
}

// GetVersion is part of topo.Conn. The tables keep no history.
func (s *Server) GetVersion(ctx context.Context, filePath string, version int64) ([]byte, error) {
	return nil, topo.NewError(topo.NoImplementation, "GetVersion: topohubtopo keeps no history")
}

// List is part of topo.Conn: every file whose whole key starts with the
// prefix (a plain string prefix, as etcd2topo), keys in full.
func (s *Server) List(ctx context.Context, filePathPrefix string) ([]topo.KVInfo, error) {
	prefix := s.fullPath(filePathPrefix)
	if strings.HasSuffix(filePathPrefix, "/") && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if s.isClosed() {
		return nil, s.errClosed(prefix)
	}
	rows, err := s.db.QueryContext(ctx, s.q.listLike, likePrefix(prefix))
	if err != nil {
		return nil, ctxError(ctx, err, prefix)
	}
	defer rows.Close()
	var out []topo.KVInfo
	for rows.Next() {
		var p string
		var data []byte
		var v int64
		if err := rows.Scan(&p, &data, &v); err != nil {
			return nil, ctxError(ctx, err, prefix)
		}
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		if data == nil {
			data = []byte{}
		}
		out = append(out, topo.KVInfo{Key: []byte(p), Value: data, Version: Version(v)})
	}
	if err := rows.Err(); err != nil {
		return nil, ctxError(ctx, err, prefix)
	}
	if len(out) == 0 {
		return nil, topo.NewError(topo.NoNode, prefix)
	}
	return out, nil
}

// Delete is part of topo.Conn.
func (s *Server) Delete(ctx context.Context, filePath string, version topo.Version) error {
	key := s.fullPath(filePath)
	want, checked := versionOf(version)
	return s.write(ctx, key, func(tx *sql.Tx) error {
		cur, found, err := s.lockedVersion(ctx, tx, key)
		if err != nil {
			return err
		}
		if !found {
			return topo.NewError(topo.NoNode, key)
		}
		if checked && cur != want {
			return topo.NewError(topo.BadVersion, key)
		}
		_, err = tx.ExecContext(ctx, s.q.delete, key)
		return err
	})
}

// errTopo reports whether err is a topo.Error of code c.
func errTopo(err error, c topo.ErrorCode) bool {
	var te topo.Error
	return errors.As(err, &te) && topo.IsErrType(err, c)
}
