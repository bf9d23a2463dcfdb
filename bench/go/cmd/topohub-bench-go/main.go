// SPDX-License-Identifier: Apache-2.0

// topohub-bench-go sub --system topohub-go|topohub-go-chan ...: one
// subscriber process of the end-to-end benchmark (bench/e2e/run.py) through
// the pure-Go client plugins/go/topohub, on the C programs' run file
// (bench/bench_e2e.h). The same watch as the C subscriber's
// (bench/bench_e2e_topohub.c), a recursive one of the prefix in the
// client's default wait mode, each put through the same checks: topohub-go
// with Follow (the loop body on the reading goroutine, as the C callback is
// on the library's thread), topohub-go-chan with Open and WatchRecursive's
// channel. Its own binary, so that nothing but the client is linked in (its
// memory and CPU are the client's).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/topohub/topohub/bench/go/e2e"
	"github.com/topohub/topohub/plugins/go/topohub"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "sub" {
		fmt.Fprintln(os.Stderr, "usage: topohub-bench-go sub --system topohub-go|topohub-go-chan --file F --index I --hub-socket S [--prefix P] [--timeout-ms T]")
		os.Exit(2)
	}
	var o e2e.SubFlags
	fs := flag.NewFlagSet("sub", flag.ExitOnError)
	o.Register(fs)
	fs.Parse(os.Args[2:])
	if o.File == "" || (o.System != "" && o.System != "topohub-go" && o.System != "topohub-go-chan") {
		fmt.Fprintln(os.Stderr, "topohub-bench-go sub: --file F (and --system topohub-go or topohub-go-chan) required")
		os.Exit(2)
	}
	s, err := e2e.NewSub(o.File, uint32(o.Index), o.Prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e sub:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.StopWatcher(cancel)
	opts := topohub.Options{
		Socket:  o.HubSocket,
		Timeout: time.Duration(o.TimeoutMs) * time.Millisecond,
		Name:    fmt.Sprintf("e2e-go-%d", s.Idx),
	}
	if o.System == "topohub-go-chan" {
		os.Exit(runChan(ctx, s, opts))
	}
	os.Exit(runFollow(ctx, s, opts))
}

// handle is what both do with an event; false: the watch ended.
func handle(ctx context.Context, s *e2e.Sub, ev topohub.Event) bool {
	switch ev.Kind {
	case topohub.EventPut:
		if s.UnderPrefix(ev.Key) {
			s.Value(ev.Value)
		}
	case topohub.EventSynced:
		s.Ready()
		s.Synced()
	case topohub.EventResync:
		s.Resync(ev.Reason)
	case topohub.EventEnded:
		if ctx.Err() == nil {
			s.Error("watch ended (%d)", ev.Reason)
		}
		return false
	}
	return true
}

func runFollow(ctx context.Context, s *e2e.Sub, opts topohub.Options) int {
	for ev, err := range topohub.Follow(ctx, opts, topohub.TableData, s.Prefix) {
		if err != nil {
			if ctx.Err() == nil {
				s.Error("follow %s: %v", opts.Socket, err)
				return 1
			}
			break
		}
		if !handle(ctx, s, ev) {
			break
		}
	}
	return 0
}

func runChan(ctx context.Context, s *e2e.Sub, opts topohub.Options) int {
	c, err := topohub.Open(ctx, opts)
	if err != nil {
		s.Error("open %s: %v", opts.Socket, err)
		return 1
	}
	defer c.Close()
	ch, err := c.WatchRecursive(ctx, topohub.TableData, s.Prefix)
	if err != nil {
		s.Error("watch_recursive: %v", err)
		return 1
	}
	for ev := range ch {
		handle(ctx, s, ev)
	}
	return 0
}
