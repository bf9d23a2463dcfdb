// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"context"
	"database/sql"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// gtidTracker remembers what the process has written to one database
// server, as a GTID position the hub's Sync understands. It is shared by
// every Server of the process on that server address (a topo.Server's global
// and cell Conns), so a write through one Conn is waited for by a watch
// through another.
type gtidTracker struct {
	mu      sync.Mutex
	mariadb map[uint64]mariaGTID // domain -> the highest GTID written in it
	mysql   string               // the last @@global.gtid_executed read (it only grows)
}

type mariaGTID struct{ server, seq uint64 }

var (
	trackersMu sync.Mutex
	trackers   = map[string]*gtidTracker{}
)

func trackerFor(addr string) *gtidTracker {
	trackersMu.Lock()
	defer trackersMu.Unlock()
	t := trackers[addr]
	if t == nil {
		t = &gtidTracker{mariadb: map[uint64]mariaGTID{}}
		trackers[addr] = t
	}
	return t
}

// addMariaDB records a "domain-server-seq" GTID; anything else is ignored.
func (t *gtidTracker) addMariaDB(g string) {
	parts := strings.Split(strings.TrimSpace(g), "-")
	if len(parts) != 3 {
		return
	}
	var n [3]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return
		}
		n[i] = v
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.mariadb[n[0]]; !ok || n[2] > cur.seq {
		t.mariadb[n[0]] = mariaGTID{n[1], n[2]}
	}
}

func (t *gtidTracker) setMySQL(set string) {
	set = strings.Join(strings.Fields(set), "") // gtid_executed has newlines
	if set == "" {
		return
	}
	t.mu.Lock()
	t.mysql = set
	t.mu.Unlock()
}

// position is the GTID set to Sync on, "" when nothing was written.
func (t *gtidTracker) position() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mysql != "" {
		return t.mysql
	}
	if len(t.mariadb) == 0 {
		return ""
	}
	domains := make([]uint64, 0, len(t.mariadb))
	for d := range t.mariadb {
		domains = append(domains, d)
	}
	sort.Slice(domains, func(i, j int) bool { return domains[i] < domains[j] })
	var b strings.Builder
	for i, d := range domains {
		if i > 0 {
			b.WriteByte(',')
		}
		g := t.mariadb[d]
		b.WriteString(strconv.FormatUint(d, 10) + "-" + strconv.FormatUint(g.server, 10) + "-" + strconv.FormatUint(g.seq, 10))
	}
	return b.String()
}

// recordWrite reads the GTID of the transaction conn just committed. A
// failure only costs read-your-writes for this write, never the write.
func (s *Server) recordWrite(ctx context.Context, conn *sql.Conn) {
	m, err := s.isMariaDB(ctx)
	if err != nil {
		return
	}
	var g sql.NullString
	if m {
		if conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g) == nil && g.Valid {
			s.gtids.addMariaDB(g.String)
		}
		return
	}
	if conn.QueryRowContext(ctx, "SELECT @@global.gtid_executed").Scan(&g) == nil && g.Valid {
		s.gtids.setMySQL(g.String)
	}
}
