// SPDX-License-Identifier: Apache-2.0

package topohub

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/topohub/topohub/plugins/go/internal/testenv"
)

const eventWait = 10 * time.Second

// checkGoroutines fails the test when goroutines started during it are still
// running after every cleanup registered later (clients, servers) has run.
// Register it first.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines after the test, %d before:\n%s", n, before, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func startEnv(t *testing.T, o testenv.HubOptions) *testenv.Env {
	t.Helper()
	return testenv.Start(t, o)
}

func openClient(t *testing.T, e *testenv.Env, o Options) *Client {
	t.Helper()
	o.Socket = e.Hub.Socket
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Open(ctx, o)
	if err != nil {
		t.Fatalf("Open: %v\nhub log: %s", err, e.Hub.LogTail(2000))
	}
	t.Cleanup(func() { c.Close() })
	// A row written just before is in MariaDB's binlog but maybe not yet in
	// the hub's tables: wait for it, so a watch's INITIAL events are the
	// rows the test wrote, not whatever the hub had read by then.
	syncAll(t, e, c)
	return c
}

func next(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed, an event expected")
		}
		return ev
	case <-time.After(eventWait):
		t.Fatalf("no event within %v", eventWait)
	}
	return Event{}
}

// expect reads len(want) events; each want is "KIND key=value" or "KIND key" or "KIND".
func expect(t *testing.T, ch <-chan Event, want ...string) []Event {
	t.Helper()
	var got []Event
	for i, w := range want {
		ev := next(t, ch)
		got = append(got, ev)
		if s := describe(ev); s != w {
			t.Fatalf("event %d: got %q, want %q (all so far: %v)", i, s, w, describeAll(got))
		}
	}
	return got
}

func expectClosed(t *testing.T, ch <-chan Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("event %q, the channel should be closed", describe(ev))
		}
	case <-time.After(eventWait):
		t.Fatalf("channel not closed within %v", eventWait)
	}
}

func expectQuiet(t *testing.T, ch <-chan Event, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		t.Fatalf("unexpected event %q (open %v)", describe(ev), ok)
	case <-time.After(d):
	}
}

var kindNames = map[EventKind]string{EventInitial: "INITIAL", EventPut: "PUT", EventDelete: "DELETE",
	EventNotFound: "NOT_FOUND", EventResync: "RESYNC", EventSynced: "SYNCED", EventEnded: "ENDED"}

func describe(ev Event) string {
	s := kindNames[ev.Kind]
	if s == "" {
		s = fmt.Sprint(ev.Kind)
	}
	switch ev.Kind {
	case EventInitial, EventPut:
		return s + " " + ev.Key + "=" + string(ev.Value)
	case EventDelete, EventNotFound:
		return s + " " + ev.Key
	}
	return s
}

func describeAll(evs []Event) string {
	var b []string
	for _, ev := range evs {
		b = append(b, describe(ev))
	}
	return strings.Join(b, ", ")
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func put(t *testing.T, e *testenv.Env, key, value string) {
	t.Helper()
	e.DB.MustExec(t, "INSERT INTO topo.topo_data (path, data, version) VALUES ("+sqlQuote(key)+","+sqlQuote(value)+
		",1) ON DUPLICATE KEY UPDATE data=VALUES(data), version=version+1")
}

func del(t *testing.T, e *testenv.Env, key string) {
	t.Helper()
	e.DB.MustExec(t, "DELETE FROM topo.topo_data WHERE path="+sqlQuote(key))
}

// syncAll waits until c has dispatched every transaction written so far.
func syncAll(t *testing.T, e *testenv.Env, c *Client) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gtid := e.DB.GTID(t)
	rev, err := c.Sync(ctx, gtid)
	if err != nil {
		t.Fatalf("Sync(%q): %v", gtid, err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatalf("WaitRevision(%d): %v (stats %+v)\nhub STATS: %s\nhub log: %s", rev, err, c.Stats(),
			hubStats(e.Hub.Socket), e.Hub.LogTail(3000))
	}
	return rev
}

// hubStats is the hub's STATS reply (JSON), for failure messages.
func hubStats(socket string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc, err := dialCtl(ctx, socket)
	if err != nil {
		return err.Error()
	}
	defer cc.Close()
	body, _, err := cc.call(ctx, msgStats, nil, 0)
	if err != nil {
		return err.Error()
	}
	return string(body)
}
