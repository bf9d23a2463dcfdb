// SPDX-License-Identifier: Apache-2.0

package topohub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/topohub/topohub/plugins/go/internal/testenv"
)

func TestWatch_exact_gets_initial_then_changes_and_a_delete_ends_it(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/ks/a", "v1")
	c := openClient(t, e, Options{})
	syncAll(t, e, c)
	ch, err := c.Watch(context.Background(), TableData, "/ks/a")
	if err != nil {
		t.Fatal(err)
	}
	evs := expect(t, ch, "INITIAL /ks/a=v1")
	if evs[0].Version != 1 || evs[0].Revision == 0 || evs[0].Table != TableData {
		t.Fatalf("initial event: %+v", evs[0])
	}
	put(t, e, "/ks/a", "v2")
	evs = expect(t, ch, "PUT /ks/a=v2")
	if evs[0].Version != 2 || evs[0].GTID == "" || evs[0].Published.IsZero() || evs[0].Commit.IsZero() {
		t.Fatalf("put event: %+v", evs[0])
	}
	// Clocks, not speed: the latency is measured on the hub's CLOCK_MONOTONIC,
	// the times are wall clock.
	if ev := evs[0]; ev.Latency <= 0 || ev.Latency > time.Minute || time.Since(ev.Published).Abs() > time.Minute ||
		time.Since(ev.Commit).Abs() > time.Minute {
		t.Fatalf("put event clocks: latency %v, published %v, commit %v", ev.Latency, ev.Published, ev.Commit)
	}
	put(t, e, "/ks/ab", "other") // not this key
	del(t, e, "/ks/a")
	expect(t, ch, "DELETE /ks/a", "ENDED")
	expectClosed(t, ch)
}

func TestWatch_missing_key_is_not_found_then_ended(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	c := openClient(t, e, Options{})
	ch, err := c.Watch(context.Background(), TableData, "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	evs := expect(t, ch, "NOT_FOUND /nothing", "ENDED")
	if evs[1].Reason != EndNotFound {
		t.Fatalf("ended reason %d", evs[1].Reason)
	}
	expectClosed(t, ch)
}

func TestWatchRecursive_matches_whole_components_and_gets_deletes(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/a/b", "1")
	put(t, e, "/a/b/c", "2")
	put(t, e, "/a/bc", "no")
	put(t, e, "/a", "no")
	c := openClient(t, e, Options{})
	ch, err := c.WatchRecursive(context.Background(), TableData, "/a/b/")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "INITIAL /a/b=1", "INITIAL /a/b/c=2", "SYNCED")
	put(t, e, "/a/bc", "still no")
	put(t, e, "/a/b/d", "3")
	del(t, e, "/a/b")
	put(t, e, "/a/bcd/e", "no")
	expect(t, ch, "PUT /a/b/d=3", "DELETE /a/b")
	syncAll(t, e, c)
	expectQuiet(t, ch, 100*time.Millisecond)
}

func TestWatchRecursive_empty_prefix_sees_every_key_in_order(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/z", "1")
	put(t, e, "/b", "2")
	c := openClient(t, e, Options{Wait: WaitFD})
	ch, err := c.WatchRecursive(context.Background(), TableData, "/")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "INITIAL /b=2", "INITIAL /z=1", "SYNCED")
	e.DB.MustExec(t, "BEGIN; INSERT INTO topo.topo_data (path, data) VALUES ('/m','3'),('/c','4'); COMMIT")
	evs := expect(t, ch, "PUT /m=3", "PUT /c=4")
	if evs[0].Revision != evs[1].Revision {
		t.Fatalf("one transaction, two revisions: %d %d", evs[0].Revision, evs[1].Revision)
	}
}

func TestGet_List_Sync_WaitRevision_read_your_writes_on_a_fresh_connection(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	c := openClient(t, e, Options{})
	ctx := context.Background()
	put(t, e, "/x/1", "one")
	put(t, e, "/x/2", "two")
	put(t, e, "/x2", "no")
	// No watch and no batch after the attach: the revision must still reach Sync's.
	rev := syncAll(t, e, c)
	if st := c.Stats(); st.Revision < rev {
		t.Fatalf("stats revision %d < %d", st.Revision, rev)
	}
	got, err := c.Get(ctx, TableData, "/x/1")
	if err != nil || string(got.Value) != "one" || got.Version != 1 || got.Key != "/x/1" {
		t.Fatalf("Get: %+v %v", got, err)
	}
	if _, err := c.Get(ctx, TableData, "/x/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	list, lrev, err := c.List(ctx, TableData, "/x")
	if err != nil || len(list) != 2 || list[0].Key != "/x/1" || list[1].Key != "/x/2" || lrev < rev {
		t.Fatalf("List: %+v rev %d (sync %d) %v", list, lrev, rev, err)
	}
	// A second client opened after the writes: Sync then WaitRevision return at once.
	c2 := openClient(t, e, Options{})
	rev2 := syncAll(t, e, c2)
	if rev2 != rev {
		t.Fatalf("sync revision %d then %d with no write between", rev, rev2)
	}
	if _, err := c.Sync(ctx, "not a gtid"); !errors.Is(err, ErrGTID) {
		t.Fatalf("Sync of garbage: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := c.Sync(tctx, "0-1-999999"); !errors.Is(err, syscall.ETIMEDOUT) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync of the future: %v", err)
	}
	if _, err := c.Get(ctx, 99, "/x"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Get of table 99: %v", err)
	}
}

func TestOpen_without_a_hub_fails_with_the_errno(t *testing.T) {
	checkGoroutines(t)
	_, err := Open(context.Background(), Options{Socket: t.TempDir() + "/none.sock"})
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Open: %v", err)
	}
}

func TestClose_ends_every_watch_and_leaves_no_goroutine(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/k", "v")
	for _, mode := range []WaitMode{WaitFutex, WaitSpin, WaitFD} {
		c := openClient(t, e, Options{Wait: mode})
		ch1, _ := c.WatchRecursive(context.Background(), TableData, "")
		ch2, _ := c.Watch(context.Background(), TableData, "/k")
		expect(t, ch1, "INITIAL /k=v", "SYNCED")
		expect(t, ch2, "INITIAL /k=v")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, ch1)
		expectClosed(t, ch2)
		if _, err := c.Watch(context.Background(), TableData, "/k"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Watch after Close: %v", err)
		}
		if err := c.WaitRevision(context.Background(), 1<<62); !errors.Is(err, ErrClosed) {
			t.Fatalf("WaitRevision after Close: %v", err)
		}
	}
}

func TestWatch_context_cancel_closes_the_channel_and_leaves_no_goroutine(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/k", "v")
	c := openClient(t, e, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ch, _ := c.WatchRecursive(ctx, TableData, "/")
	expect(t, ch, "INITIAL /k=v", "SYNCED")
	cancel()
	expectClosed(t, ch)
	if st := c.Stats(); st.Watches != 0 {
		t.Fatalf("watches %d after cancel", st.Watches)
	}
	// The copy no watch keeps current is dropped: a new watch sees the change.
	put(t, e, "/k", "v2")
	syncAll(t, e, c)
	ch2, _ := c.Watch(context.Background(), TableData, "/k")
	expect(t, ch2, "INITIAL /k=v2")
}

func TestList_and_a_recursive_watch_of_a_snapshot_larger_than_a_message(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	var rows []string
	for i := 0; i < 1500; i++ {
		rows = append(rows, fmt.Sprintf("('/big/%04d', '%s')", i, strings.Repeat("v", 100)))
	}
	e.DB.MustExec(t, "INSERT INTO topo.topo_data (path, data) VALUES "+strings.Join(rows, ","))
	c := openClient(t, e, Options{Buffer: 2000})
	syncAll(t, e, c)
	list, _, err := c.List(context.Background(), TableData, "/big")
	if err != nil || len(list) != 1500 || list[1499].Key != "/big/1499" || len(list[7].Value) != 100 {
		t.Fatalf("List: %d entries, %v", len(list), err)
	}
	ch, _ := c.WatchRecursive(context.Background(), TableData, "/big")
	for i := 0; i < 1500; i++ {
		if ev := next(t, ch); ev.Kind != EventInitial || ev.Key != fmt.Sprintf("/big/%04d", i) {
			t.Fatalf("initial %d: %q", i, describe(ev))
		}
	}
	expect(t, ch, "SYNCED")
	if st := c.Stats(); st.Entries != 1500 {
		t.Fatalf("entries %d", st.Entries)
	}
}

// Issue 15: the reader is woken only for what its watches cover. Transactions
// elsewhere are never read (Records does not move), yet WaitRevision reaches
// the hub's revision through the ring's jump over them, and a change under
// the watch still arrives. Each wait mode.
func TestWatch_a_client_is_not_woken_for_changes_outside_its_watches(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	for i, mode := range []WaitMode{WaitFutex, WaitFD} {
		c := openClient(t, e, Options{Wait: mode})
		ctx, cancel := context.WithCancel(context.Background())
		mine := fmt.Sprintf("/tw/%d/a", i)
		ch, err := c.WatchRecursive(ctx, TableData, mine)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, ch, "SYNCED")
		syncAll(t, e, c)
		before := c.Stats()
		for k := 0; k < 40; k++ {
			put(t, e, fmt.Sprintf("/tw/%d/b/%d", i, k%5), fmt.Sprint(k))
		}
		syncAll(t, e, c)
		after := c.Stats()
		if after.Records != before.Records || after.Resyncs != before.Resyncs {
			t.Fatalf("mode %d: read %d records and resynced %d times for changes it does not watch",
				mode, after.Records-before.Records, after.Resyncs-before.Resyncs)
		}
		put(t, e, mine+"/x", "mine")
		expect(t, ch, "PUT "+mine+"/x=mine")
		cancel()
		c.Close()
	}
}
