// SPDX-License-Identifier: Apache-2.0

// topohub-bench-vitess: the end-to-end benchmark's programs that go through
// Vitess's topo.Conn (vitess.io/vitess/go/vt/topo), with one of two backends:
// vitess-etcd2topo (Vitess's own etcd2topo) and vitess-topohub
// (plugins/go/topohubtopo: MySQL tables, watches from the host's hub).
//
//	sub --system vitess-etcd2topo|vitess-topohub ...   a subscriber of the
//	    synthetic matrix: WatchRecursive of the prefix's directory
//	vroles / vsetup / vwriter / vsub / vcollect        the Vitess-shaped
//	    scenario (vitess.go)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path"
	"runtime/pprof"
	"strings"

	"vitess.io/vitess/go/vt/topo"
	"vitess.io/vitess/go/vt/topo/etcd2topo"

	"github.com/topohub/topohub/bench/go/e2e"
	"github.com/topohub/topohub/plugins/go/topohubtopo"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	// TOPOHUB_BENCH_CPUPROFILE=DIR: each program writes a Go CPU profile
	// there (DIR/<command>-<pid>.pprof), for looking at one point.
	if dir := os.Getenv("TOPOHUB_BENCH_CPUPROFILE"); dir != "" {
		f, err := os.Create(path.Join(dir, fmt.Sprintf("%s-%d.pprof", os.Args[1], os.Getpid())))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	var rc int
	switch os.Args[1] {
	case "sub":
		rc = cmdSub(os.Args[2:])
	case "vroles":
		rc = cmdVRoles(os.Args[2:])
	case "vsetup":
		rc = cmdVSetup(os.Args[2:])
	case "vwriter":
		rc = cmdVWriter(os.Args[2:])
	case "vsub":
		rc = cmdVSub(os.Args[2:])
	case "vcollect":
		rc = cmdVCollect(os.Args[2:])
	default:
		usage()
	}
	if rc != 0 {
		os.Exit(rc)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: topohub-bench-vitess sub|vroles|vsetup|vwriter|vsub|vcollect ... (run by bench/e2e/run.py; see bench/README.md)")
	os.Exit(2)
}

// openConn opens a topo.Conn of one of the two Vitess backends at root.
// vitess-topohub: reads, writes and locks go to MySQL (E2E_MYSQL_SOCKET,
// E2E_MYSQL_USER, TOPOHUB_MYSQL_PASSWORD, as for the C programs), watches to
// the hub at hubSocket.
func openConn(system, etcdURL, hubSocket, root string) (topo.Conn, error) {
	switch system {
	case "vitess-etcd2topo":
		return etcd2topo.NewServer(strings.TrimPrefix(etcdURL, "http://"), root)
	case "vitess-topohub":
		sock, user := os.Getenv("E2E_MYSQL_SOCKET"), os.Getenv("E2E_MYSQL_USER")
		if sock == "" || user == "" {
			return nil, fmt.Errorf("E2E_MYSQL_SOCKET and E2E_MYSQL_USER are required")
		}
		addr := fmt.Sprintf("%s@unix(%s)/topo", user, sock)
		return topohubtopo.NewServer(addr, root, topohubtopo.Config{
			User: user, Password: os.Getenv("TOPOHUB_MYSQL_PASSWORD"), Socket: hubSocket,
		})
	}
	return nil, fmt.Errorf("unknown system %q", system)
}

func cmdSub(args []string) int {
	var o e2e.SubFlags
	fs := flag.NewFlagSet("sub", flag.ExitOnError)
	o.Register(fs)
	fs.Parse(args)
	if o.File == "" || o.System == "" {
		fmt.Fprintln(os.Stderr, "usage: topohub-bench-vitess sub --system S --file F --index I [--prefix P] [--hub-socket S] [--etcd URL]")
		return 2
	}
	s, err := e2e.NewSub(o.File, uint32(o.Index), o.Prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e sub:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.StopWatcher(cancel)
	// Root "/bench", directory "e2e": a file's full path is the key the
	// writers update (/bench/e2e/k00000: topo_data.path, or the etcd key).
	conn, err := openConn(o.System, o.Etcd, o.HubSocket, path.Dir(s.Prefix))
	if err != nil {
		s.Error("open %s: %v", o.System, err)
		return 1
	}
	defer conn.Close()
	return watchRecursive(ctx, s, conn, path.Base(s.Prefix))
}

// A recursive watch through topo.Conn, as vtctld, vtorc and vtgate's keyspace
// events watcher use one: the current values first (the setup values, which
// the checks ignore), then every change. The watch is in place once
// WatchRecursive has returned.
func watchRecursive(ctx context.Context, s *e2e.Sub, conn topo.Conn, dir string) int {
	initial, ch, err := conn.WatchRecursive(ctx, dir)
	if err != nil {
		s.Error("WatchRecursive %s: %v", dir, err)
		return 1
	}
	for _, wd := range initial {
		if wd.Err == nil {
			s.Value(wd.Contents)
		}
	}
	s.Ready()
	for wd := range ch {
		if wd.Err != nil {
			if topo.IsErrType(wd.Err, topo.NoNode) {
				continue // a recursive watch's delete (topo.Conn); the watch goes on
			}
			if ctx.Err() == nil && !topo.IsErrType(wd.Err, topo.Interrupted) {
				s.Error("watch %s: %v", dir, wd.Err)
				return 1
			}
			continue
		}
		s.Value(wd.Contents)
	}
	return 0
}
