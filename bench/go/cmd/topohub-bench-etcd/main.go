// SPDX-License-Identifier: Apache-2.0

// topohub-bench-etcd sub --system etcd-grpc ...: one subscriber process of the
// end-to-end benchmark through etcd's own Go client (go.etcd.io/etcd/client/v3,
// gRPC): a watch of the key range [prefix/, prefix0), as the JSON-gateway
// peer's (bench/bench_e2e_etcd.c), ready when etcd says the watch is created;
// every put's value through the C subscribers' checks.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/topohub/topohub/bench/go/e2e"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "sub" {
		fmt.Fprintln(os.Stderr, "usage: topohub-bench-etcd sub --system etcd-grpc --file F --index I --etcd URL [--prefix P]")
		os.Exit(2)
	}
	var o e2e.SubFlags
	fs := flag.NewFlagSet("sub", flag.ExitOnError)
	o.Register(fs)
	fs.Parse(os.Args[2:])
	if o.File == "" || o.Etcd == "" {
		fmt.Fprintln(os.Stderr, "topohub-bench-etcd sub: --file F and --etcd URL required")
		os.Exit(2)
	}
	s, err := e2e.NewSub(o.File, uint32(o.Index), o.Prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e sub:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.StopWatcher(cancel)
	os.Exit(run(ctx, s, &o))
}

func run(ctx context.Context, s *e2e.Sub, o *e2e.SubFlags) int {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{o.Etcd}, DialTimeout: 10 * time.Second})
	if err != nil {
		s.Error("etcd: %v", err)
		return 1
	}
	defer cli.Close()
	wch := cli.Watch(ctx, s.Prefix+"/", clientv3.WithRange(s.Prefix+"0"), clientv3.WithCreatedNotify())
	for resp := range wch {
		if resp.Created {
			s.Ready()
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				s.Error("etcd watch: %v", err)
				return 1
			}
			return 0
		}
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypePut {
				s.Value(ev.Kv.Value)
			}
		}
	}
	if ctx.Err() == nil {
		s.Error("etcd watch stream ended")
		return 1
	}
	return 0
}
