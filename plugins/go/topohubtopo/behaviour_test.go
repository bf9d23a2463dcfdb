// SPDX-License-Identifier: Apache-2.0

package topohubtopo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"vitess.io/vitess/go/vt/topo"

	"github.com/topohub/topohub/plugins/go/topohub"
)

// next reads one record or fails after d.
func next[T any](t *testing.T, ch <-chan T, d time.Duration) (T, bool) {
	t.Helper()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-time.After(d):
		var zero T
		t.Fatalf("no watch record within %v", d)
		return zero, false
	}
}

// drainToEnd reads a watch channel to its close and returns its last error.
func drainToEnd(t *testing.T, ch <-chan *topo.WatchData) error {
	t.Helper()
	var last error
	for {
		wd, ok := next(t, ch, 15*time.Second)
		if !ok {
			return last
		}
		last = wd.Err
	}
}

func TestWatch__initial_value_is_the_processs_own_last_write(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	writer := db.newServer(t)
	// A second Conn on the same server and root, as a topo.Server's global
	// and cell Conns are: it shares the record of the process's writes.
	watcher, err := NewServer(db.addr, writer.root, db.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()

	if _, err := writer.Create(ctx, "ks/SrvKeyspace", []byte("v0")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 30; i++ {
		want := fmt.Sprintf("v%d", i)
		if _, err := writer.Update(ctx, "ks/SrvKeyspace", []byte(want), nil); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Server{writer, watcher} {
			wctx, cancel := context.WithCancel(ctx)
			cur, ch, err := s.Watch(wctx, "ks/SrvKeyspace")
			if err != nil {
				cancel()
				t.Fatalf("Watch after write %d: %v", i, err)
			}
			if string(cur.Contents) != want || cur.Version.String() != fmt.Sprint(i+1) {
				t.Fatalf("after writing %s (version %d) the watch starts at %q version %v", want, i+1, cur.Contents, cur.Version)
			}
			cancel()
			if err := drainToEnd(t, ch); !topo.IsErrType(err, topo.Interrupted) {
				t.Fatalf("cancelled watch ended with %v, want Interrupted", err)
			}
		}
	}
}

func TestWatchRecursive__a_delete_is_a_NoNode_record_and_the_watch_goes_on(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	for _, p := range []string{"a/x", "a/y", "ab/z"} {
		if _, err := s.Create(ctx, p, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	initial, ch, err := s.WatchRecursive(wctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, wd := range initial {
		got = append(got, strings.TrimPrefix(wd.Path, s.root+"/")+"="+string(wd.Contents))
	}
	if strings.Join(got, " ") != "a/x=a/x a/y=a/y" {
		t.Fatalf("initial entries %v, want a/x and a/y only (not ab/z: component boundaries)", got)
	}

	if err := s.Delete(ctx, "a/x", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "ab/z", []byte("outside"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "a/y", []byte("y2"), nil); err != nil {
		t.Fatal(err)
	}
	wd, _ := next(t, ch, 10*time.Second)
	if wd.Path != s.fullPath("a/x") || !topo.IsErrType(wd.Err, topo.NoNode) {
		t.Fatalf("after the delete: %+v, want path %s with NoNode", wd, s.fullPath("a/x"))
	}
	wd, _ = next(t, ch, 10*time.Second)
	if wd.Err != nil || wd.Path != s.fullPath("a/y") || string(wd.Contents) != "y2" {
		t.Fatalf("after the update: %+v, want a/y = y2 (and nothing of ab/z)", wd)
	}
	cancel()
	for {
		wd, ok := next(t, ch, 10*time.Second)
		if !ok {
			t.Fatal("channel closed without the Interrupted record")
		}
		if wd.Err != nil {
			if !topo.IsErrType(wd.Err, topo.Interrupted) {
				t.Fatalf("cancelled recursive watch ended with %v", wd.Err)
			}
			break
		}
	}
	if _, ok := next(t, ch, 10*time.Second); ok {
		t.Fatal("a record after the last one")
	}
}

func TestWatch__a_lost_hub_ends_watches_with_a_hub_error_not_Interrupted(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "ks/SrvKeyspace", []byte("one")); err != nil {
		t.Fatal(err)
	}
	_, ch, err := s.Watch(ctx, "ks/SrvKeyspace")
	if err != nil {
		t.Fatal(err)
	}
	_, rch, err := s.WatchRecursive(ctx, "ks")
	if err != nil {
		t.Fatal(err)
	}

	db.env.Hub.Kill()

	checkHubErr := func(what string, err error) {
		t.Helper()
		if err == nil || topo.IsErrType(err, topo.Interrupted) || !errors.Is(err, topohub.ErrHubLost) {
			t.Fatalf("%s ended with %v; want an error wrapping topohub.ErrHubLost, never Interrupted", what, err)
		}
	}
	checkHubErr("the watch", drainToEnd(t, ch))
	var last error
	for {
		wd, ok := next(t, rch, 15*time.Second)
		if !ok {
			break
		}
		last = wd.Err
	}
	checkHubErr("the recursive watch", last)

	// The database alone still serves everything but watches.
	if _, err := s.Update(ctx, "ks/SrvKeyspace", []byte("two"), nil); err != nil {
		t.Fatalf("Update with the hub down: %v", err)
	}
	if b, _, err := s.Get(ctx, "ks/SrvKeyspace"); err != nil || string(b) != "two" {
		t.Fatalf("Get with the hub down: %q %v", b, err)
	}
	if _, _, err := s.Watch(ctx, "ks/SrvKeyspace"); err == nil || topo.IsErrType(err, topo.Interrupted) || topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("Watch with the hub down: %v; want a hub error", err)
	}

	// Once the hub is back, a new watch (what srvtopo does next) sees the
	// write made while it was down.
	db.env.Hub.Restart(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		wctx, cancel := context.WithCancel(ctx)
		cur, ch, err := s.Watch(wctx, "ks/SrvKeyspace")
		if err == nil {
			if string(cur.Contents) != "two" {
				t.Fatalf("after the hub's restart the watch starts at %q, want two", cur.Contents)
			}
			cancel()
			drainToEnd(t, ch)
			break
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("no watch 30 s after the hub's restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestLock__an_expired_row_is_taken_over(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "keyspaces/ks/Keyspace", nil); err != nil {
		t.Fatal(err)
	}
	db.env.DB.MustExec(t, fmt.Sprintf("INSERT INTO topo.topo_locks (path, contents, expires_at) VALUES ('%s', 'dead holder', NOW() - INTERVAL 5 SECOND)", s.fullPath("keyspaces/ks")))
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ld, err := s.Lock(lctx, "keyspaces/ks", "me")
	if err != nil {
		t.Fatalf("Lock over an expired row: %v", err)
	}
	if err := ld.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ld.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLock__Check_and_Unlock_report_a_lock_whose_row_was_taken(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "keyspaces/ks/Keyspace", nil); err != nil {
		t.Fatal(err)
	}
	ld, err := s.Lock(ctx, "keyspaces/ks", "me")
	if err != nil {
		t.Fatal(err)
	}
	db.env.DB.MustExec(t, fmt.Sprintf("DELETE FROM topo.topo_locks WHERE path = '%s'", s.fullPath("keyspaces/ks")))
	if err := ld.Check(ctx); err == nil {
		t.Fatal("Check of a lock whose row is gone: no error")
	}
	if err := ld.Unlock(ctx); err == nil {
		t.Fatal("Unlock of a lock whose row is gone: no error")
	}
}

func TestLock__on_a_directory_with_no_file_is_NoNode_and_LockName_needs_none(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Lock(ctx, "keyspaces/none", "x"); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("Lock of an empty directory: %v, want NoNode", err)
	}
	ld, err := s.LockName(ctx, "named/thing", "x")
	if err != nil {
		t.Fatalf("LockName: %v", err)
	}
	if _, err := s.TryLock(ctx, "named/thing", "y"); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("TryLock of a directory with no file: %v, want NoNode", err)
	}
	if err := ld.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestElection__a_dead_leaders_row_expires_and_a_lost_row_ends_the_leadership(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	mp, err := s.NewLeaderParticipation("vtctld", "me")
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Stop()
	name := s.fullPath("elections/vtctld")
	db.env.DB.MustExec(t, fmt.Sprintf("INSERT INTO topo.topo_elections (name, leader_id, contents, expires_at) VALUES ('%s', 'ghost', 'ghost', NOW() - INTERVAL 5 SECOND)", name))
	if id, err := mp.GetCurrentLeaderID(ctx); err != nil || id != "" {
		t.Fatalf("leader of an expired row: %q %v, want none", id, err)
	}
	done := make(chan error, 1)
	var lctx context.Context
	go func() {
		var err error
		lctx, err = mp.WaitForLeadership()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no leadership over an expired row within 10 s")
	}
	if id, err := mp.GetCurrentLeaderID(ctx); err != nil || id != "me" {
		t.Fatalf("leader: %q %v", id, err)
	}
	db.env.DB.MustExec(t, fmt.Sprintf("DELETE FROM topo.topo_elections WHERE name = '%s'", name))
	select {
	case <-lctx.Done():
	case <-time.After(3 * db.cfg.ElectionTTL):
		t.Fatal("the leadership's context outlived its row")
	}
}

func TestPaths__match_exactly_on_a_case_insensitive_column(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "dir/File", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "dir/file"); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("Get of another case: %v, want NoNode", err)
	}
	if _, err := s.List(ctx, "dir/f"); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("List of another case: %v, want NoNode", err)
	}
	if _, err := s.ListDir(ctx, "DIR", false); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("ListDir of another case: %v, want NoNode", err)
	}
	if _, err := s.Update(ctx, "dir/file", []byte("b"), Version(1)); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("Update of another case: %v, want NoNode", err)
	}
	if err := s.Delete(ctx, "dir/file", nil); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("Delete of another case: %v, want NoNode", err)
	}
}

type oddVersion string

func (v oddVersion) String() string { return string(v) }

func TestFile__a_version_of_another_backend_is_BadVersion_and_GetVersion_is_not_implemented(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "f", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "f", []byte("b"), oddVersion("not a number")); !topo.IsErrType(err, topo.BadVersion) {
		t.Fatalf("Update with a foreign version: %v", err)
	}
	if v, err := s.Update(ctx, "f", []byte("b"), oddVersion("1")); err != nil || v.String() != "2" {
		t.Fatalf("Update with a version that reads as 1: %v %v", v, err)
	}
	if _, err := s.GetVersion(ctx, "f", 1); !topo.IsErrType(err, topo.NoImplementation) {
		t.Fatalf("GetVersion: %v", err)
	}
}

func TestClose__ends_watches_renewals_and_elections_and_leaves_no_goroutine(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db.useConfig(t)
	ts := db.newTopoServer(t)
	conn, err := ts.ConnForCell(ctx, topo.GlobalCell)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Create(ctx, "keyspaces/ks/Keyspace", []byte("k")); err != nil {
		t.Fatal(err)
	}
	_, ch, err := conn.Watch(ctx, "keyspaces/ks/Keyspace")
	if err != nil {
		t.Fatal(err)
	}
	_, rch, err := conn.WatchRecursive(ctx, "keyspaces")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Lock(ctx, "keyspaces/ks", "held"); err != nil {
		t.Fatal(err)
	}
	mp, err := conn.NewLeaderParticipation("x", "me")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mp.WaitForLeadership(); err != nil {
		t.Fatal(err)
	}
	leaders, err := mp.WaitForNewLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts.Close()
	for range ch {
	}
	for range rch {
	}
	for range leaders {
	}
	if _, _, err := conn.Get(ctx, "keyspaces/ks/Keyspace"); err == nil {
		t.Fatal("Get on a closed Conn worked")
	}
}

func TestParseServerAddr__forms_and_bad_input(t *testing.T) {
	c := Config{User: "u", Password: "p"}
	for _, tc := range []struct {
		addr, netAddr, user, schema, err string
	}{
		{addr: "db1", netAddr: "tcp(db1:3306)", user: "u", schema: "topo"},
		{addr: "db1:3307/vt_topo", netAddr: "tcp(db1:3307)", user: "u", schema: "vt_topo"},
		{addr: "[::1]:3306", netAddr: "tcp([::1]:3306)", user: "u", schema: "topo"},
		{addr: "admin@tcp(10.0.0.1:3306)/t2?tls=false", netAddr: "tcp(10.0.0.1:3306)", user: "admin", schema: "t2"},
		{addr: "unix(/run/mysqld/mysqld.sock)/topo", netAddr: "unix(/run/mysqld/mysqld.sock)", user: "u", schema: "topo"},
		{addr: "", err: "empty"},
		{addr: "db1:3306/bad-name", err: "schema name"},
		{addr: "u@tcp(db1:3306/x", err: "DSN"},
	} {
		cfg, schema, err := parseServerAddr(tc.addr, c)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one saying %q", tc.addr, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.addr, err)
			continue
		}
		if got := cfg.Net + "(" + cfg.Addr + ")"; got != tc.netAddr || cfg.User != tc.user || schema != tc.schema || cfg.Passwd != "p" || cfg.DBName != "" {
			t.Errorf("%q: %s user %q schema %q db %q, want %s %q %q", tc.addr, got, cfg.User, schema, cfg.DBName, tc.netAddr, tc.user, tc.schema)
		}
	}
	if _, _, err := parseServerAddr("db1", Config{}); err == nil || !strings.Contains(err.Error(), "user") {
		t.Errorf("no user anywhere: %v", err)
	}
}

func TestParseServerAddr__arguments_are_interpolated_unless_unsafe_or_refused(t *testing.T) {
	c := Config{User: "u"}
	for addr, want := range map[string]bool{
		"db1":                                  true,
		"u@tcp(db1:3306)/topo":                 true,
		"u@tcp(db1:3306)/topo?charset=utf8mb4": true,
		"u@tcp(db1:3306)/topo?interpolateParams=false":   false,
		"u@tcp(db1:3306)/topo?charset=gbk":               false,
		"u@tcp(db1:3306)/topo?charset=utf8mb4,sjis":      false,
		"u@tcp(db1:3306)/topo?collation=big5_chinese_ci": false,
	} {
		cfg, _, err := parseServerAddr(addr, c)
		if err != nil {
			t.Errorf("%q: %v", addr, err)
			continue
		}
		if cfg.InterpolateParams != want {
			t.Errorf("%q: interpolateParams %v, want %v", addr, cfg.InterpolateParams, want)
		}
	}
}

// With arguments in the statements' text, every byte of a value and a path
// must still reach the server as it was: quotes, backslashes, NUL, 0x80-0xff
// and the sequences an escaping bug would turn into SQL.
func TestUpdate__every_byte_and_quoting_character_round_trips_through_the_server_and_the_hub(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	all := make([]byte, 0, 512)
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	all = append(all, []byte("' OR 1=1; -- \\' \" \x00 ?? ? \\0 `x`")...)
	files := map[string][]byte{
		"q/it's \\ \"quoted\" ? ;--": all,
		"q/plain":                    {},
		"q/nul":                      {0, 0, '\\', 0, '\''},
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, ch, err := s.WatchRecursive(wctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	for p, v := range files {
		if _, err := s.Create(ctx, p, []byte("first")); err != nil {
			t.Fatalf("Create %q: %v", p, err)
		}
		ver, err := s.Update(ctx, p, v, nil)
		if err != nil {
			t.Fatalf("Update %q: %v", p, err)
		}
		if _, err := s.Update(ctx, p, v, ver); err != nil {
			t.Fatalf("Update %q at version %v: %v", p, ver, err)
		}
		got, _, err := s.Get(ctx, p)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get %q: %q, %v; want %q", p, got, err, v)
		}
	}
	seen := map[string]int{}
	for len(seen) < len(files) || func() bool {
		for _, n := range seen {
			if n < 3 {
				return true
			}
		}
		return false
	}() {
		wd, ok := next(t, ch, 10*time.Second)
		if !ok || wd.Err != nil {
			t.Fatalf("watch: %+v", wd)
		}
		p := strings.TrimPrefix(wd.Path, s.root+"/")
		want, known := files[p]
		if !known {
			t.Fatalf("watch: a change of %q, which was never written", wd.Path)
		}
		if seen[p]++; seen[p] > 1 && !bytes.Equal(wd.Contents, want) {
			t.Fatalf("watch: %q = %q, want %q", p, wd.Contents, want)
		}
	}
}

func TestGTIDTracker__keeps_the_highest_GTID_of_each_MariaDB_domain(t *testing.T) {
	tr := &gtidTracker{mariadb: map[uint64]mariaGTID{}}
	if tr.position() != "" {
		t.Fatal("a tracker with no write has a position")
	}
	for _, g := range []string{"0-1-5", "0-1-7", "0-2-6", "3-1-2", "garbage", "1-2", ""} {
		tr.addMariaDB(g)
	}
	if got := tr.position(); got != "0-1-7,3-1-2" {
		t.Fatalf("position %q, want 0-1-7,3-1-2", got)
	}
	tr.setMySQL("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-2")
	if got := tr.position(); got != "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-2" {
		t.Fatalf("MySQL position %q", got)
	}
}

func TestLikePrefix__escapes_LIKEs_wildcards(t *testing.T) {
	if got := likePrefix("/a_b%c!d"); got != "/a!_b!%c!!d%" {
		t.Fatalf("likePrefix: %q", got)
	}
}

func TestWatch__a_consumer_evicted_by_the_hub_converges_to_the_current_values(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	const keys = 10
	for i := 0; i < keys; i++ {
		if _, err := s.Create(ctx, fmt.Sprintf("r/k%d", i), []byte("0")); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, rch, err := s.WatchRecursive(wctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	_, ch, err := s.Watch(wctx, "r/k9")
	if err != nil {
		t.Fatal(err)
	}

	// Read nothing while far more changes come than the channels hold: the
	// client's reader stalls behind them and the hub evicts it (its timeout
	// is the client's default, 1 s).
	want := map[string]string{}
	for n := 1; n <= 60; n++ {
		for i := 0; i < keys; i++ {
			v := fmt.Sprint(n)
			if _, err := s.Update(ctx, fmt.Sprintf("r/k%d", i), []byte(v), nil); err != nil {
				t.Fatal(err)
			}
			want[s.fullPath(fmt.Sprintf("r/k%d", i))] = v
		}
	}
	if err := s.Delete(ctx, "r/k9", nil); err != nil {
		t.Fatal(err)
	}
	want[s.fullPath("r/k9")] = "deleted"
	time.Sleep(3 * time.Second)

	got := map[string]string{}
	deadline := time.After(30 * time.Second)
	for !equalMaps(got, want) {
		select {
		case wd, ok := <-rch:
			if !ok {
				t.Fatal("the recursive watch ended")
			}
			switch {
			case topo.IsErrType(wd.Err, topo.NoNode):
				got[wd.Path] = "deleted"
			case wd.Err != nil:
				t.Fatalf("the recursive watch ended with %v", wd.Err)
			default:
				got[wd.Path] = string(wd.Contents)
			}
		case <-deadline:
			t.Fatalf("after the eviction the recursive watch shows %v, want %v", got, want)
		}
	}
	if err := drainToEnd(t, ch); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("the exact watch of the deleted file ended with %v, want NoNode", err)
	}
	st := s.hub.client.Stats()
	if st.Evictions == 0 && st.Resyncs == 0 {
		t.Fatalf("the client was never evicted (%+v): this test did not test a resync", st)
	}
	t.Logf("client stats: %+v", st)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func TestLock__a_dead_holders_lock_expires_after_its_TTL(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	dead := db.newServer(t)
	if _, err := dead.Create(ctx, "keyspaces/ks/Keyspace", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := dead.LockWithTTL(ctx, "keyspaces/ks", "dies", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	dead.Close() // the holder's renewals stop; its row stays until it expires

	alive, err := NewServer(db.addr, dead.root, db.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	if _, err := alive.TryLock(ctx, "keyspaces/ks", "me"); !topo.IsErrType(err, topo.NodeExists) {
		t.Fatalf("TryLock of a held lock: %v, want NodeExists", err)
	}
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ld, err := alive.Lock(lctx, "keyspaces/ks", "me")
	if err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	if err := ld.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFlags__the_password_comes_from_its_file_without_the_newline(t *testing.T) {
	saved := [...]string{flagUser, flagPasswordFile}
	defer func() { flagUser, flagPasswordFile = saved[0], saved[1] }()
	f := t.TempDir() + "/pw"
	if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flagUser, flagPasswordFile = "vt", f
	c, err := configFromFlags()
	if err != nil || c.User != "vt" || c.Password != "s3cret" {
		t.Fatalf("configFromFlags: %+v %v", c, err)
	}
	flagPasswordFile = f + ".missing"
	if _, err := configFromFlags(); err == nil || !strings.Contains(err.Error(), "password-file") {
		t.Fatalf("a missing password file: %v", err)
	}
	if _, err := (Factory{}).Create("cell", "db1:3306", "/vt"); err == nil {
		t.Fatal("Factory.Create with an unreadable password file worked")
	}
}

// With a poll interval of an hour, only the hub's notification of the row's
// delete can wake the waiters (the bound is generous: not a speed test).
func TestLock__and_elections_waiters_wake_on_the_hubs_notification(t *testing.T) {
	db := openTestDB(t)
	db.cfg.PollInterval = time.Hour
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "keyspaces/ks/Keyspace", nil); err != nil {
		t.Fatal(err)
	}
	ld, err := s.Lock(ctx, "keyspaces/ks", "first")
	if err != nil {
		t.Fatal(err)
	}
	locked := make(chan error, 1)
	go func() {
		l2, err := s.Lock(ctx, "keyspaces/ks", "second")
		if err == nil {
			err = l2.Unlock(ctx)
		}
		locked <- err
	}()
	time.Sleep(300 * time.Millisecond) // let it wait
	if err := ld.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-locked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting Lock was not woken by the unlock")
	}

	mp1, _ := s.NewLeaderParticipation("e", "1")
	mp2, _ := s.NewLeaderParticipation("e", "2")
	defer mp2.Stop()
	if _, err := mp1.WaitForLeadership(); err != nil {
		t.Fatal(err)
	}
	leaders, err := mp2.WaitForNewLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := next(t, leaders, 30*time.Second); id != "1" {
		t.Fatalf("WaitForNewLeader first said %q, want the current leader 1", id)
	}
	won := make(chan error, 1)
	go func() { _, err := mp2.WaitForLeadership(); won <- err }()
	time.Sleep(300 * time.Millisecond)
	mp1.Stop()
	select {
	case err := <-won:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting candidate was not woken when the leader stopped")
	}
	if id, _ := next(t, leaders, 30*time.Second); id != "2" {
		t.Fatalf("WaitForNewLeader then said %q, want 2", id)
	}
}

func TestFile__concurrent_writers_get_one_create_and_every_update_counted(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := s.Create(ctx, "c/once", []byte("x"))
			errs <- err
		}()
	}
	created := 0
	for i := 0; i < n; i++ {
		switch err := <-errs; {
		case err == nil:
			created++
		case !topo.IsErrType(err, topo.NodeExists):
			t.Fatalf("concurrent Create: %v", err)
		}
	}
	if created != 1 {
		t.Fatalf("%d of %d concurrent Creates succeeded", created, n)
	}
	// Unconditional updates of a row that does not exist yet: they race to
	// insert it; every one of them must count.
	for i := 0; i < n; i++ {
		go func() {
			_, err := s.Update(ctx, "c/counted", []byte("x"), nil)
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent unconditional Update: %v", err)
		}
	}
	if _, v, err := s.Get(ctx, "c/counted"); err != nil || v.String() != fmt.Sprint(n) {
		t.Fatalf("after %d updates: version %v, %v", n, v, err)
	}
}

func TestLock__excludes_concurrent_holders(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "keyspaces/ks/Keyspace", nil); err != nil {
		t.Fatal(err)
	}
	var inside, overlaps atomic.Int32
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		go func() {
			for j := 0; j < 3; j++ {
				ld, err := s.Lock(ctx, "keyspaces/ks", fmt.Sprintf("holder %d/%d", i, j))
				if err != nil {
					errs <- err
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
				inside.Add(-1)
				if err := ld.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 6; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if overlaps.Load() != 0 {
		t.Fatalf("%d times two holders held the lock at once", overlaps.Load())
	}
}

func TestFile__a_path_too_long_for_its_column_fails_and_is_not_truncated(t *testing.T) {
	db := openTestDB(t)
	// Even on a server whose default sql_mode is not strict.
	db.env.DB.MustExec(t, "SET GLOBAL sql_mode = ''")
	ctx := t.Context()
	s := db.newServer(t)
	long := strings.Repeat("x", 600)
	if _, err := s.Create(ctx, long, []byte("a")); err == nil || topo.IsErrType(err, topo.NodeExists) {
		t.Fatalf("Create of a 600-byte path: %v, want an error about its length", err)
	}
	if _, err := s.List(ctx, "x"); !topo.IsErrType(err, topo.NoNode) {
		t.Fatalf("something was stored: %v", err)
	}
}

// DDL on a watched table makes the hub reload it and its readers resync
// (ResyncHub): that is not a lost hub, the watches go on.
func TestWatch__goes_on_through_the_hubs_own_resync_after_DDL(t *testing.T) {
	db := openTestDB(t)
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "d/f", []byte("before")); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, ch, err := s.Watch(wctx, "d/f")
	if err != nil {
		t.Fatal(err)
	}
	_, rch, err := s.WatchRecursive(wctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	resyncs := s.hub.client.Stats().Resyncs
	db.env.DB.MustExec(t, "ALTER TABLE topo.topo_data COMMENT 'touched'")
	if _, err := s.Update(ctx, "d/f", []byte("after"), nil); err != nil {
		t.Fatal(err)
	}
	for {
		wd, ok := next(t, ch, 15*time.Second)
		if !ok || wd.Err != nil {
			t.Fatalf("the watch ended through the DDL: %v", wd)
		}
		if string(wd.Contents) == "after" {
			break
		}
	}
	for {
		wd, ok := next(t, rch, 15*time.Second)
		if !ok || wd.Err != nil {
			t.Fatalf("the recursive watch ended through the DDL: %v", wd)
		}
		if string(wd.Contents) == "after" {
			break
		}
	}
	if s.hub.client.Stats().Resyncs == resyncs {
		t.Fatal("the hub did not resync on this DDL: this test did not test a resync")
	}
}

// A daemon may start before its host's hub: watches fail with the hub error
// (srvtopo retries) and work once the hub is up; locks need no hub.
func TestWatch__before_the_hub_starts_is_a_hub_error_and_works_once_it_runs(t *testing.T) {
	db := openTestDB(t)
	db.env.Hub.Stop()
	ctx := t.Context()
	s := db.newServer(t)
	if _, err := s.Create(ctx, "keyspaces/ks/Keyspace", []byte("k")); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Watch(ctx, "keyspaces/ks/Keyspace")
	if err == nil || topo.IsErrType(err, topo.Interrupted) || topo.IsErrType(err, topo.NoNode) || !errors.Is(err, topohub.ErrHubLost) {
		t.Fatalf("Watch with no hub: %v; want an error wrapping topohub.ErrHubLost", err)
	}
	if _, _, err := s.WatchRecursive(ctx, "keyspaces"); !errors.Is(err, topohub.ErrHubLost) {
		t.Fatalf("WatchRecursive with no hub: %v", err)
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ld, err := s.Lock(lctx, "keyspaces/ks", "no hub")
	if err != nil {
		t.Fatalf("Lock with no hub: %v", err)
	}
	if err := ld.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	db.env.Hub.Restart(t)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	cur, ch, err := s.Watch(wctx, "keyspaces/ks/Keyspace")
	if err != nil {
		t.Fatalf("Watch once the hub runs: %v", err)
	}
	if string(cur.Contents) != "k" {
		t.Fatalf("Watch once the hub runs: %q", cur.Contents)
	}
	wcancel()
	if err := drainToEnd(t, ch); !topo.IsErrType(err, topo.Interrupted) {
		t.Fatalf("cancelled watch ended with %v", err)
	}
}
