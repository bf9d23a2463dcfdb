// SPDX-License-Identifier: Apache-2.0

package topohub

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/topohub/topohub/plugins/go/internal/testenv"
)

// follower runs Follow (or FollowKey) in a goroutine and hands its events
// over a channel, so the watch helpers apply; the channel closes when the
// iteration ends, and err says how. stall, if set, runs in the loop body
// (on the reading goroutine) before an event is handed over.
type follower struct {
	ch    chan Event
	mu    sync.Mutex
	err   error
	stall func(Event)
}

func startFollow(ctx context.Context, o Options, table uint32, path string, recursive bool, stall func(Event)) *follower {
	f := &follower{ch: make(chan Event, 1<<16), stall: stall}
	seq := Follow(ctx, o, table, path)
	if !recursive {
		seq = FollowKey(ctx, o, table, path)
	}
	go func() {
		defer close(f.ch)
		for ev, err := range seq {
			if err != nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
				return
			}
			if f.stall != nil {
				f.stall(ev)
			}
			f.ch <- ev
		}
	}()
	return f
}

// followInto is startFollow's channel, for the scenarios.
func followInto(ctx context.Context, o Options, table uint32, path string, recursive bool) <-chan Event {
	return startFollow(ctx, o, table, path, recursive, nil).ch
}

func (f *follower) error() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func TestFollow_runs_every_shared_scenario(t *testing.T) {
	runScenarios(t, true)
}

func TestFollow_without_a_hub_yields_the_errno_once(t *testing.T) {
	checkGoroutines(t)
	n := 0
	for ev, err := range Follow(context.Background(), Options{Socket: t.TempDir() + "/none.sock"}, TableData, "/") {
		n++
		if !errors.Is(err, syscall.ENOENT) || ev.Kind != 0 {
			t.Fatalf("got %s, %v", describe(ev), err)
		}
	}
	if n != 1 {
		t.Fatalf("%d values", n)
	}
}

func TestFollow_break_and_cancel_end_it_and_leave_no_goroutine_or_reader(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/f/a", "1")
	openClient(t, e, Options{}) // synced: the hub has /f/a
	// The hub's connected clients, this query's included.
	readers := func() uint64 {
		t.Helper()
		var st struct {
			Clients *uint64 `json:"clients"`
		}
		if s := hubStats(e.Hub.Socket); json.Unmarshal([]byte(s), &st) != nil || st.Clients == nil {
			t.Fatalf("hub STATS: %s", s)
		}
		return *st.Clients
	}
	before := readers()
	o := Options{Socket: e.Hub.Socket}
	var got []string
	for ev, err := range Follow(context.Background(), o, TableData, "/f") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, describe(ev))
		if ev.Kind == EventSynced {
			if n := readers(); n != before+1 {
				t.Fatalf("hub readers %d while following, %d before", n, before)
			}
			break
		}
	}
	if strings.Join(got, " ") != "INITIAL /f/a=1 SYNCED" {
		t.Fatalf("events: %v", got)
	}
	waitReaders(t, readers, before)

	ctx, cancel := context.WithCancel(context.Background())
	f := startFollow(ctx, o, TableData, "/f", true, nil)
	expect(t, f.ch, "INITIAL /f/a=1", "SYNCED")
	put(t, e, "/f/b", "2")
	expect(t, f.ch, "PUT /f/b=2")
	cancel()
	expectClosed(t, f.ch)
	if err := f.error(); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
	waitReaders(t, readers, before)
}

// waitReaders: the hub counts a reader gone once it sees its socket close.
func waitReaders(t *testing.T, readers func() uint64, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for readers() != want {
		if time.Now().After(deadline) {
			t.Fatalf("hub readers %d, want %d", readers(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFollow_a_loop_body_past_its_timeout_is_evicted_resyncs_and_converges(t *testing.T) {
	checkGoroutines(t)
	e := startEnv(t, testenv.HubOptions{})
	put(t, e, "/s/gone", "soon deleted")
	c := openClient(t, e, Options{})
	var once sync.Once
	stalled := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := startFollow(ctx, Options{Socket: e.Hub.Socket, Timeout: 50 * time.Millisecond}, TableData, "/s", true,
		func(ev Event) {
			if ev.Kind == EventPut {
				// The reader is this goroutine: nothing reads the ring meanwhile.
				once.Do(func() { time.Sleep(500 * time.Millisecond); close(stalled) })
			}
		})
	expect(t, f.ch, "INITIAL /s/gone=soon deleted", "SYNCED")
	e.DB.MustExec(t, manyWrites("/s", 300, 10)+"DELETE FROM topo.topo_data WHERE path='/s/gone';")
	<-stalled
	k := collect(f.ch, true)
	k.waitFor(t, "RESYNC (evicted) then SYNCED", resyncedBy(ResyncEvicted))
	converges(t, e, c, k, "/s")
	// Only the stalled process paid: the other client was not evicted.
	if st := c.Stats(); st.Evictions != 0 {
		t.Fatalf("the other client's stats: %+v", st)
	}
}
