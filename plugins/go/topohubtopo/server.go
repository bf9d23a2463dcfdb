// SPDX-License-Identifier: Apache-2.0

package topohubtopo

// database/sql with github.com/go-sql-driver/mysql rather than Vitess's own
// go/mysql client: vitess already requires the driver (no new dependency),
// database/sql gives a pool, contexts that cancel a running statement, and
// transactions with an isolation level; go/mysql's client is a single
// connection made for replication and tests.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"vitess.io/vitess/go/vt/topo"
)

// Factory is the topo.Factory registered as "topohub".
type Factory struct{}

// HasGlobalReadOnlyCell is part of topo.Factory: there is no read-only copy.
func (Factory) HasGlobalReadOnlyCell(serverAddr, root string) bool { return false }

// Create is part of topo.Factory.
func (Factory) Create(cell, serverAddr, root string) (topo.Conn, error) {
	c, err := configFromFlags()
	if err != nil {
		return nil, err
	}
	return NewServer(serverAddr, root, c)
}

// Server is a topo.Conn on one root of one database.
type Server struct {
	db     *sql.DB
	root   string // cleaned, absolute
	schema string
	cfg    Config
	gtids  *gtidTracker
	q      queries

	flavorMu sync.Mutex
	mariadb  *bool // nil until known

	hubMu  sync.Mutex
	hub    *hubRef // acquired by the first watch, released by Close
	closed chan struct{}
	once   sync.Once
	goMu   sync.Mutex     // orders wg.Add against Close
	wg     sync.WaitGroup // every goroutine the Server starts
}

var _ topo.Conn = (*Server)(nil)

// NewServer opens a Server on serverAddr (see doc.go) at root. It does not
// connect: the first operation does.
func NewServer(serverAddr, root string, c Config) (*Server, error) {
	c = c.withDefaults()
	cfg, schema, err := parseServerAddr(serverAddr, c)
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("topohubtopo: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	s := &Server{
		db:     db,
		root:   path.Clean("/" + root),
		schema: schema,
		cfg:    c,
		gtids:  trackerFor(cfg.Net + "(" + cfg.Addr + ")"),
		q:      newQueries(schema),
		closed: make(chan struct{}),
	}
	return s, nil
}

// Close is part of topo.Conn. It ends this Server's watches, lock renewals
// and elections and waits for their goroutines.
func (s *Server) Close() {
	s.once.Do(func() {
		s.goMu.Lock()
		close(s.closed)
		s.goMu.Unlock()
		s.wg.Wait()
		s.hubMu.Lock()
		h := s.hub
		s.hub = nil
		s.hubMu.Unlock()
		if h != nil {
			h.release()
		}
		_ = s.db.Close()
	})
}

// goTracked runs f in a goroutine that Close waits for; false (and f not
// run) when the Server is closed already.
func (s *Server) goTracked(f func()) bool {
	s.goMu.Lock()
	defer s.goMu.Unlock()
	if s.isClosed() {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// untilClosed is ctx, also cancelled when the Server closes.
func (s *Server) untilClosed(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() { // ends with ctx: the caller's cancel, or this one
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (s *Server) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// errClosed is what operations on a closed Server return.
func (s *Server) errClosed(p string) error {
	return topo.NewError(topo.Interrupted, p+": topohubtopo connection closed")
}

// fullPath maps a path relative to the root to the key column.
func (s *Server) fullPath(p string) string {
	return path.Join(s.root, p)
}

// isMariaDB tells the server's flavour, asked once.
func (s *Server) isMariaDB(ctx context.Context) (bool, error) {
	s.flavorMu.Lock()
	defer s.flavorMu.Unlock()
	if s.mariadb != nil {
		return *s.mariadb, nil
	}
	var v string
	if err := s.db.QueryRowContext(ctx, "SELECT @@version").Scan(&v); err != nil {
		return false, err
	}
	m := strings.Contains(strings.ToLower(v), "mariadb")
	s.mariadb = &m
	return m, nil
}

// queries are the statements, with the schema in them.
type queries struct {
	get, getForUpdate, insert, update, delete, listLike, anyUnder       string
	lockInsert, lockSelect, lockExpire, lockRenew, lockDelete, lockHeld string
	elecInsert, elecExpire, elecRenew, elecDelete, elecLeader           string
}

func newQueries(schema string) queries {
	d := "`" + schema + "`.topo_data"
	l := "`" + schema + "`.topo_locks"
	e := "`" + schema + "`.topo_elections"
	return queries{
		get:          "SELECT path, data, version FROM " + d + " WHERE path = ?",
		getForUpdate: "SELECT path, version FROM " + d + " WHERE path = ? FOR UPDATE",
		insert:       "INSERT INTO " + d + " (path, data, version) VALUES (?, ?, 1)",
		update:       "UPDATE " + d + " SET data = ?, version = ? WHERE path = ?",
		delete:       "DELETE FROM " + d + " WHERE path = ?",
		listLike:     "SELECT path, data, version FROM " + d + " WHERE path LIKE ? ESCAPE '!' ORDER BY path",
		anyUnder:     "SELECT path FROM " + d + " WHERE path LIKE ? ESCAPE '!'",

		lockInsert: "INSERT INTO " + l + " (path, contents, expires_at) VALUES (?, ?, NOW() + INTERVAL ? SECOND)",
		lockSelect: "SELECT created_at FROM " + l + " WHERE path = ?",
		lockExpire: "DELETE FROM " + l + " WHERE path = ? AND expires_at < NOW()",
		lockRenew:  "UPDATE " + l + " SET expires_at = NOW() + INTERVAL ? SECOND WHERE path = ? AND contents = ? AND created_at = ?",
		lockDelete: "DELETE FROM " + l + " WHERE path = ? AND contents = ? AND created_at = ?",
		lockHeld:   "SELECT COUNT(*) FROM " + l + " WHERE path = ? AND contents = ? AND created_at = ? AND expires_at >= NOW()",

		elecInsert: "INSERT INTO " + e + " (name, leader_id, contents, expires_at) VALUES (?, ?, ?, NOW() + INTERVAL ? SECOND)",
		elecExpire: "DELETE FROM " + e + " WHERE name = ? AND expires_at < NOW()",
		elecRenew:  "UPDATE " + e + " SET expires_at = NOW() + INTERVAL ? SECOND WHERE name = ? AND leader_id = ?",
		elecDelete: "DELETE FROM " + e + " WHERE name = ? AND leader_id = ?",
		elecLeader: "SELECT leader_id FROM " + e + " WHERE name = ? AND expires_at >= NOW()",
	}
}

// likePrefix is a LIKE pattern for "starts with p" (escape character '!').
func likePrefix(p string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(p) + "%"
}

// ttlSeconds rounds a TTL up to the whole seconds of a TIMESTAMP column.
func ttlSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// renewTimeout bounds one renewal statement (Close waits for the renewer).
const renewTimeout = 5 * time.Second

// safeTTL is how long a holder may count on a row it last renewed: the server
// truncates NOW() to the second of the TIMESTAMP, so the row may expire up to
// a second before secs have passed since the renewal was sent.
func safeTTL(secs int64) time.Duration {
	return time.Duration(secs)*time.Second - time.Second
}

// MySQL error numbers this package tells apart.
const (
	erDupEntry     = 1062
	erLockDeadlock = 1213
	erLockWait     = 1205
)

func mysqlErrno(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// convertError turns context errors into topo errors; other errors pass
// through with the path added.
func convertError(err error, p string) error {
	if err == nil {
		return nil
	}
	var te topo.Error
	if errors.As(err, &te) {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return topo.NewError(topo.Interrupted, p)
	case errors.Is(err, context.DeadlineExceeded):
		return topo.NewError(topo.Timeout, p)
	}
	return fmt.Errorf("topohubtopo: %s: %w", p, err)
}

// ctxError is convertError of a failure: ctx's own error when ctx is done
// (the driver's error is then only its consequence), else err.
func ctxError(ctx context.Context, err error, p string) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return convertError(ctx.Err(), p)
	}
	return convertError(err, p)
}
