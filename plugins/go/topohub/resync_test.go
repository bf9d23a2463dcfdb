// SPDX-License-Identifier: Apache-2.0

package topohub

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/topohub/topohub/plugins/go/internal/testenv"
)

// collector drains a watch channel in its own goroutine (it ends when the
// channel closes) and keeps every event.
type collector struct {
	mu     sync.Mutex
	events []Event
	closed bool
	gate   chan struct{} // closed: drain; until then the channel is left full
}

func collect(ch <-chan Event, draining bool) *collector {
	k := &collector{gate: make(chan struct{})}
	if draining {
		close(k.gate)
	}
	go func() {
		<-k.gate
		for ev := range ch {
			k.mu.Lock()
			k.events = append(k.events, ev)
			k.mu.Unlock()
		}
		k.mu.Lock()
		k.closed = true
		k.mu.Unlock()
	}()
	return k
}

func (k *collector) drain() { close(k.gate) }

func (k *collector) snapshot() []Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Event(nil), k.events...)
}

// waitFor polls until pred holds over the events so far.
func (k *collector) waitFor(t *testing.T, what string, pred func([]Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs := k.snapshot()
		if pred(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			n := len(evs)
			if n > 20 {
				evs = evs[n-20:]
			}
			t.Fatalf("%s: not within 20 s; %d events, the last: %s", what, n, describeAll(evs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// resyncedBy: a RESYNC with that reason, then a SYNCED after it.
func resyncedBy(reason uint32) func([]Event) bool {
	return func(evs []Event) bool {
		seen := false
		for _, ev := range evs {
			if ev.Kind == EventResync && ev.Reason == reason {
				seen = true
			} else if seen && ev.Kind == EventSynced {
				return true
			}
		}
		return false
	}
}

// view applies a recursive watch's events: what it was told is the state.
func view(evs []Event) map[string]string {
	m := map[string]string{}
	for _, ev := range evs {
		switch ev.Kind {
		case EventInitial, EventPut:
			m[ev.Key] = string(ev.Value)
		case EventDelete:
			delete(m, ev.Key)
		}
	}
	return m
}

func tableContents(t *testing.T, e *testenv.Env, prefix string) map[string]string {
	out := e.DB.MustExec(t, "SELECT path, data FROM topo.topo_data")
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		kv := strings.SplitN(line, "\t", 2)
		if len(kv) == 2 && prefixMatches(prefix, kv[0]) {
			m[kv[0]] = kv[1]
		}
	}
	return m
}

// converges: after everything written so far is dispatched, the watch's
// view equals the table.
func converges(t *testing.T, e *testenv.Env, c *Client, k *collector, prefix string) {
	t.Helper()
	syncAll(t, e, c)
	want := tableContents(t, e, prefix)
	k.waitFor(t, "the view equals the table", func(evs []Event) bool {
		return fmt.Sprint(view(evs)) == fmt.Sprint(want)
	})
}

func manyWrites(prefix string, n, valueLen int) string {
	var b strings.Builder
	v := strings.Repeat("x", valueLen)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "INSERT INTO topo.topo_data (path, data) VALUES ('%s/%04d', '%s%d') ON DUPLICATE KEY UPDATE data=VALUES(data), version=version+1;\n",
			prefix, i%97, v, i)
	}
	return b.String()
}

func TestSlowConsumer_is_evicted_gets_resync_and_converges(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/s/gone", "soon deleted")
	c := openClient(t, e, Options{Timeout: 50 * time.Millisecond, Buffer: 4})
	ch, _ := c.WatchRecursive(context.Background(), TableData, "/s")
	expect(t, ch, "INITIAL /s/gone=soon deleted", "SYNCED")
	other, _ := c.Watch(context.Background(), TableData, "/s/gone")
	expect(t, other, "INITIAL /s/gone=soon deleted")
	ko := collect(other, true)
	k := collect(ch, false) // not drained: the client's reader stops at a full channel
	e.DB.MustExec(t, manyWrites("/s", 300, 10)+"DELETE FROM topo.topo_data WHERE path='/s/gone';")
	time.Sleep(500 * time.Millisecond) // well past the 50 ms timeout
	k.drain()
	k.waitFor(t, "RESYNC (evicted) then SYNCED", resyncedBy(ResyncEvicted))
	converges(t, e, c, k, "/s")
	if st := c.Stats(); st.Evictions == 0 || st.Resyncs == 0 {
		t.Fatalf("stats: %+v", st)
	}
	// The exact watch was told too, and its key's delete ended it.
	evs := ko.waitFor(t, "the exact watch ends", func(evs []Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Kind == EventEnded
	})
	if evs[len(evs)-1].Reason != EndDeleted || evs[len(evs)-2].Kind != EventDelete {
		t.Fatalf("exact watch: %s", describeAll(evs))
	}
}

func TestHubKilled_and_restarted_resyncs_every_watch_and_converges(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/h/a", "1")
	put(t, e, "/h/b", "2")
	for _, mode := range []WaitMode{WaitFutex, WaitFD} {
		c := openClient(t, e, Options{Wait: mode})
		ch, _ := c.WatchRecursive(context.Background(), TableData, "/h")
		k := collect(ch, true)
		k.waitFor(t, "initial", func(evs []Event) bool { return len(evs) > 0 && evs[len(evs)-1].Kind == EventSynced })
		gen := c.Stats().Generation
		if _, err := c.Get(context.Background(), TableData, "/h/a"); err != nil { // opens the query connection
			t.Fatal(err)
		}
		e.Hub.Kill()
		k.waitFor(t, "RESYNC (hub lost)", func(evs []Event) bool {
			return evs[len(evs)-1].Kind == EventResync && evs[len(evs)-1].Reason == ResyncHubLost
		})
		gctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := c.Get(gctx, TableData, "/h/a"); err == nil {
			t.Fatalf("Get with the hub down succeeded")
		}
		cancel()
		put(t, e, "/h/c", "3-"+strconv.Itoa(int(mode))) // while the hub is down
		del(t, e, "/h/a")
		put(t, e, "/h/a", "again")
		del(t, e, "/h/b")
		e.Hub.Restart(t)
		k.waitFor(t, "SYNCED after the restart", resyncedBy(ResyncHubLost))
		converges(t, e, c, k, "/h")
		if got, err := c.Get(context.Background(), TableData, "/h/a"); err != nil || string(got.Value) != "again" {
			t.Fatalf("Get after the restart: %+v %v", got, err)
		}
		if st := c.Stats(); st.Reconnects == 0 || st.Generation == gen {
			t.Fatalf("stats after the restart: %+v (generation before %d)", st, gen)
		}
		put(t, e, "/h/b", "back")
		converges(t, e, c, k, "/h")
		c.Close()
	}
}

func TestHubStopped_closes_its_ring_and_the_client_resyncs(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/t/a", "1")
	c := openClient(t, e, Options{})
	ch, _ := c.Watch(context.Background(), TableData, "/t/a")
	expect(t, ch, "INITIAL /t/a=1")
	e.Hub.Stop()
	ev := next(t, ch)
	if ev.Kind != EventResync || ev.Reason != ResyncHubLost {
		t.Fatalf("after SIGTERM: %q reason %d", describe(ev), ev.Reason)
	}
	put(t, e, "/t/a", "2")
	e.Hub.Restart(t)
	expect(t, ch, "PUT /t/a=2", "SYNCED")
}

func TestLappedReader_resyncs_as_lapped_and_converges(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{RingCapacity: "64K"})
	// A long slow-consumer timeout: the ring, not the clock, overtakes it.
	c := openClient(t, e, Options{Timeout: 30 * time.Second, Buffer: 2})
	ch, _ := c.WatchRecursive(context.Background(), TableData, "/l")
	expect(t, ch, "SYNCED")
	k := collect(ch, false)
	e.DB.MustExec(t, manyWrites("/l", 200, 1000)) // 200 KB through a 64 KB ring
	syncAll0(t, e, c)
	k.drain()
	k.waitFor(t, "RESYNC (lapped) then SYNCED", resyncedBy(ResyncLapped))
	converges(t, e, c, k, "/l")
	if st := c.Stats(); st.Laps == 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// syncAll0 waits for the hub (not the client) to publish everything written.
func syncAll0(t *testing.T, e *testenv.Env, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Sync(ctx, e.DB.GTID(t)); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func TestStitching_under_concurrent_writes_misses_nothing_and_repeats_nothing(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/st/k", "0")
	c := openClient(t, e, Options{})
	var sql strings.Builder
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&sql, "UPDATE topo.topo_data SET data='%d', version=version+1 WHERE path='/st/k';\n", i)
	}
	done := make(chan error, 1)
	go func() { _, err := e.DB.Exec(sql.String()); done <- err }()
	type w struct {
		k         *collector
		recursive bool
	}
	var ws []w
	for i := 0; i < 30; i++ {
		var ch <-chan Event
		if i%2 == 0 {
			ch, _ = c.Watch(context.Background(), TableData, "/st/k")
		} else {
			ch, _ = c.WatchRecursive(context.Background(), TableData, "/st")
		}
		ws = append(ws, w{collect(ch, true), i%2 == 1})
		time.Sleep(3 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	syncAll(t, e, c)
	for i, x := range ws {
		evs := x.k.waitFor(t, "the last version", func(evs []Event) bool {
			for _, ev := range evs { // a recursive watch may end on SYNCED (its INITIAL was the last version)
				if ev.Version == 301 {
					return true
				}
			}
			return false
		})
		last := int64(0)
		for _, ev := range evs {
			if ev.Kind == EventSynced {
				continue
			}
			if (last == 0 && ev.Kind != EventInitial) || (last != 0 && (ev.Kind != EventPut || ev.Version != last+1)) {
				t.Fatalf("watch %d (recursive %v): %q version %d after version %d: %s", i, x.recursive,
					describe(ev), ev.Version, last, describeAll(evs))
			}
			if string(ev.Value) != strconv.FormatInt(ev.Version-1, 10) {
				t.Fatalf("watch %d: version %d with value %q", i, ev.Version, ev.Value)
			}
			last = ev.Version
		}
	}
}

func TestDDL_on_a_watched_table_resyncs_its_watches_and_converges(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/d/a", "1")
	c := openClient(t, e, Options{})
	ch, _ := c.WatchRecursive(context.Background(), TableData, "/d")
	k := collect(ch, true)
	locks, _ := c.WatchRecursive(context.Background(), TableLocks, "")
	kl := collect(locks, true)
	k.waitFor(t, "initial", func(evs []Event) bool { return len(evs) == 2 })
	kl.waitFor(t, "initial", func(evs []Event) bool { return len(evs) == 1 })
	e.DB.MustExec(t, "ALTER TABLE topo.topo_data ADD COLUMN extra INT NULL")
	put(t, e, "/d/b", "2")
	k.waitFor(t, "RESYNC (the hub's) then SYNCED", resyncedBy(ResyncHub))
	converges(t, e, c, k, "/d")
	// The locks table was not touched: its watch was not disturbed... unless
	// the hub resynced every table, which it may; either way it converges.
	for _, ev := range kl.snapshot() {
		if ev.Kind == EventResync && ev.Reason != ResyncHub {
			t.Fatalf("locks watch: %s", describeAll(kl.snapshot()))
		}
	}
}
