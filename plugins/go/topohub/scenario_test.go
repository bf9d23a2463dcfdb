// SPDX-License-Identifier: Apache-2.0

package topohub

// The shared scenarios (testdata/scenarios/*.txt, described in its
// README.md): SQL steps and the events each watch must get, run here by the
// Go client against a real MariaDB and topohubd.

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/topohub/topohub/plugins/go/internal/testenv"
)

// describeFull is describe with the reason of RESYNC and ENDED.
func describeFull(ev Event) string {
	if ev.Kind == EventResync || ev.Kind == EventEnded {
		return describe(ev) + " reason=" + strconv.Itoa(int(ev.Reason))
	}
	return describe(ev)
}

type scenarioWatch struct {
	ch     <-chan Event
	cancel context.CancelFunc
}

func TestScenarios(t *testing.T) {
	runScenarios(t, false)
}

// runScenarios: with follow, every watch is a Follow or FollowKey of its
// own (the client named only syncs the hub first), whose events must be
// the channel watch's.
func runScenarios(t *testing.T, follow bool) {
	files, _ := filepath.Glob("testdata/scenarios/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			checkGoroutines(t)
			runScenario(t, f, follow)
		})
	}
}

func runScenario(t *testing.T, file string, follow bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, testenv.HubOptions{})
	clients := map[string]*Client{}
	watches := map[string]*scenarioWatch{}
	client := func(line int, name string) *Client {
		c := clients[name]
		if c == nil {
			t.Fatalf("line %d: no client %q", line, name)
		}
		return c
	}
	watchOf := func(line int, name string) *scenarioWatch {
		w := watches[name]
		if w == nil {
			t.Fatalf("line %d: no watch %q", line, name)
		}
		return w
	}
	table := func(line int, s string) uint32 {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			t.Fatalf("line %d: table %q", line, s)
		}
		return uint32(n)
	}
	ctx := context.Background()
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		cmd, rest, _ := strings.Cut(text, " ")
		f := strings.Split(rest, " ")
		need := func(n int) {
			if len(f) < n {
				t.Fatalf("line %d: %q needs %d fields", line, text, n)
			}
		}
		switch cmd {
		case "sql":
			e.DB.MustExec(t, rest)
		case "open":
			need(1)
			clients[f[0]] = openClient(t, e, Options{})
		case "watch":
			need(5)
			c := client(line, f[0])
			wctx, cancel := context.WithCancel(ctx)
			path := f[4]
			if path == "-" {
				path = ""
			}
			var ch <-chan Event
			var err error
			switch {
			case follow && (f[2] == "exact" || f[2] == "recursive"):
				// The hub has what the SQL before wrote (the client's sync),
				// so that the first events are INITIAL as for a watch.
				syncAll(t, e, c)
				ch = followInto(wctx, Options{Socket: e.Hub.Socket}, table(line, f[3]), path, f[2] == "recursive")
			case f[2] == "exact":
				ch, err = c.Watch(wctx, table(line, f[3]), path)
			case f[2] == "recursive":
				ch, err = c.WatchRecursive(wctx, table(line, f[3]), path)
			default:
				t.Fatalf("line %d: watch kind %q", line, f[2])
			}
			if err != nil {
				cancel()
				t.Fatalf("line %d: %v", line, err)
			}
			watches[f[1]] = &scenarioWatch{ch, cancel}
			t.Cleanup(cancel)
		case "expect":
			need(2)
			want := strings.TrimPrefix(rest, f[0]+" ")
			ev := next(t, watchOf(line, f[0]).ch)
			if got := describeFull(ev); got != want {
				t.Fatalf("line %d: watch %s got %q, want %q", line, f[0], got, want)
			}
		case "closed":
			need(1)
			expectClosed(t, watchOf(line, f[0]).ch)
		case "quiet":
			need(2)
			ms, _ := strconv.Atoi(f[1])
			expectQuiet(t, watchOf(line, f[0]).ch, time.Duration(ms)*time.Millisecond)
		case "sync":
			need(1)
			syncAll(t, e, client(line, f[0]))
		case "get":
			need(4)
			got, err := client(line, f[0]).Get(ctx, table(line, f[1]), f[2])
			want := strings.Join(f[3:], " ")
			if want == "NOT_FOUND" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("line %d: Get: %+v %v, want NOT_FOUND", line, got, err)
				}
			} else if err != nil || string(got.Value) != want {
				t.Fatalf("line %d: Get: %q %v, want %q", line, got.Value, err, want)
			}
		case "list":
			need(4)
			prefix := f[2]
			if prefix == "-" {
				prefix = ""
			}
			list, _, err := client(line, f[0]).List(ctx, table(line, f[1]), prefix)
			if err != nil {
				t.Fatalf("line %d: List: %v", line, err)
			}
			var keys []string
			for _, en := range list {
				keys = append(keys, en.Key)
			}
			got := strings.Join(keys, ",")
			if got == "" {
				got = "-"
			}
			if got != f[3] {
				t.Fatalf("line %d: List(%q) = %s, want %s", line, prefix, got, f[3])
			}
		case "cancel":
			need(1)
			watchOf(line, f[0]).cancel()
		case "kill-hub":
			e.Hub.Kill()
		case "stop-hub":
			e.Hub.Stop()
		case "restart-hub":
			e.Hub.Restart(t)
		default:
			t.Fatalf("line %d: unknown command %q", line, cmd)
		}
	}
}
