// SPDX-License-Identifier: Apache-2.0

// The Vitess-shaped scenario (bench/README.md, "Vitess-shaped"): N processes
// on one host watch what vtgate and vttablet watch, through topo.Conn of one
// backend; a writer replays what a reparent and a reshard do to the topology,
// in bursts, with values of 1-50 KiB of random bytes.
//
// The topology, under root /vt (one cell, zone1):
//
//	global/keyspaces/ks<k>/shards/<shard>/Shard   K x S shard records
//	zone1/keyspaces/ks<k>/SrvKeyspace             K serving graphs
//	zone1/SrvVSchema                              the cell's serving VSchema
//	zone1/tablets/zone1-<uid>/Tablet              3 tablets per shard
//
// The processes (i of N):
//
//	i = N-1, N > 1: a recursive watch of global/keyspaces/ks0/shards (as vtorc
//	                and vtctld keep one)
//	even i:         vtgate: Watch SrvVSchema and every SrvKeyspace
//	odd i:          vttablet of shard (i/2) mod (K x S): Watch its Shard record
//	                and its keyspace's SrvKeyspace
//
// The bursts, alternating:
//
//	reparent(ks, shard): the old primary's and the new primary's Tablet
//	                     records, then the Shard record (PrimaryAlias)
//	reshard(ks):         every Shard record of ks (IsPrimaryServing), then its
//	                     SrvKeyspace (partitions) and the SrvVSchema
//
// Each write is one Update with no version (unconditional) and carries a
// sequence number in its first bytes (bench_e2e.h's header); the writer
// stamps its send and its return in the run file and writes the plan (seq,
// path, burst) for vcollect, which knows from the layout who watches what.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path"
	"sort"
	"sync"
	"syscall"
	"time"

	"vitess.io/vitess/go/vt/topo"

	"github.com/topohub/topohub/bench/go/e2e"
)

const (
	vKeyspaces = 2
	vShards    = 4 // per keyspace
	vTablets   = 3 // per shard
	vRoot      = "/vt"
)

var shardNames = [vShards]string{"-40", "40-80", "80-c0", "c0-"}

func shardPath(k, s int) string {
	return fmt.Sprintf("global/keyspaces/ks%d/shards/%s/Shard", k, shardNames[s])
}
func srvKeyspacePath(k int) string { return fmt.Sprintf("zone1/keyspaces/ks%d/SrvKeyspace", k) }

const srvVSchemaPath = "zone1/SrvVSchema"
const recursiveDir = "global/keyspaces/ks0/shards"

func tabletPath(k, s, t int) string {
	return fmt.Sprintf("zone1/tablets/zone1-%010d/Tablet", 100+((k*vShards+s)*vTablets+t))
}

// Sizes in bytes of each kind of record (uniform in [lo, hi]).
func sizeOf(p string) (int, int) {
	switch {
	case p == srvVSchemaPath:
		return 20 << 10, 50 << 10
	case len(p) > 11 && p[len(p)-11:] == "SrvKeyspace":
		return 4 << 10, 16 << 10
	default: // Shard, Tablet
		return 1 << 10, 2 << 10
	}
}

// allPaths: every file of the layout (what vsetup creates).
func allPaths() []string {
	var ps []string
	for k := 0; k < vKeyspaces; k++ {
		ps = append(ps, srvKeyspacePath(k))
		for s := 0; s < vShards; s++ {
			ps = append(ps, shardPath(k, s))
			for t := 0; t < vTablets; t++ {
				ps = append(ps, tabletPath(k, s, t))
			}
		}
	}
	return append(ps, srvVSchemaPath)
}

// role of process i of n: its exact watches, and its recursive one ("" if none).
func role(i, n int) (string, []string, string) {
	if n > 1 && i == n-1 {
		return "recursive", nil, recursiveDir
	}
	if i%2 == 0 {
		ws := []string{srvVSchemaPath}
		for k := 0; k < vKeyspaces; k++ {
			ws = append(ws, srvKeyspacePath(k))
		}
		return "vtgate", ws, ""
	}
	sh := (i / 2) % (vKeyspaces * vShards)
	k, s := sh/vShards, sh%vShards
	return "vttablet", []string{shardPath(k, s), srvKeyspacePath(k)}, ""
}

// watches reports whether process i of n watches file p.
func watches(i, n int, p string) bool {
	_, ws, dir := role(i, n)
	for _, w := range ws {
		if w == p {
			return true
		}
	}
	return dir != "" && len(p) > len(dir) && p[:len(dir)+1] == dir+"/"
}

func value(rng *rand.Rand, p string, seq, stamp uint64) []byte {
	lo, hi := sizeOf(p)
	b := make([]byte, lo+rng.Intn(hi-lo+1))
	rng.Read(b[e2e.ValueHdr:])
	e2e.MakeHeader(b, seq, stamp)
	return b
}

type vflags struct {
	system, file, plan, etcd, hubSocket string
	index, subs                         int
	seconds, bursts                     float64
	exclude                             string
}

func (o *vflags) parse(name string, args []string) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&o.system, "system", "", "vitess-etcd2topo or vitess-topohub")
	fs.StringVar(&o.file, "file", "", "run file")
	fs.StringVar(&o.plan, "plan", "", "plan file (vwriter writes it, vcollect reads it)")
	fs.StringVar(&o.etcd, "etcd", "", "etcd client URL")
	fs.StringVar(&o.hubSocket, "hub-socket", "", "topohubd's control socket")
	fs.IntVar(&o.index, "index", 0, "process index")
	fs.IntVar(&o.subs, "subs", 1, "processes")
	fs.Float64Var(&o.seconds, "seconds", 3, "writer's run")
	fs.Float64Var(&o.bursts, "bursts-per-s", 5, "bursts per second")
	fs.StringVar(&o.exclude, "exclude", "", "vcollect: a process left out of the latency (the stopped one)")
	fs.Parse(args)
}

func (o *vflags) conn() (topo.Conn, error) { return openConn(o.system, o.etcd, o.hubSocket, vRoot) }

// ---- vroles ---------------------------------------------------------------------

// cmdVRoles prints, for each of the --subs processes, the full keys of its
// exact watches and its recursive one: what topohub's C subscriber watches
// in this scenario (topohub-bench e2e sub --watch K ... --watch-dir D), so
// that the layout lives here only.
func cmdVRoles(args []string) int {
	var o vflags
	o.parse("vroles", args)
	type roleOut struct {
		Role  string   `json:"role"`
		Exact []string `json:"exact"`
		Dir   string   `json:"dir"`
	}
	out := make([]roleOut, o.subs)
	for i := range out {
		r, exact, dir := role(i, o.subs)
		out[i].Role = r
		for _, p := range exact {
			out[i].Exact = append(out[i].Exact, path.Join(vRoot, p))
		}
		if dir != "" {
			out[i].Dir = path.Join(vRoot, dir)
		}
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// ---- vsetup ---------------------------------------------------------------------

func cmdVSetup(args []string) int {
	var o vflags
	o.parse("vsetup", args)
	conn, err := o.conn()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsetup:", err)
		return 1
	}
	defer conn.Close()
	rng := rand.New(rand.NewSource(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range allPaths() {
		if _, err := conn.Update(ctx, p, value(rng, p, 0, 0), nil); err != nil {
			fmt.Fprintln(os.Stderr, "vsetup:", p, err)
			return 1
		}
	}
	return 0
}

// ---- vwriter --------------------------------------------------------------------

type planEntry struct {
	Seq   uint64 `json:"seq"`
	Path  string `json:"path"`
	Burst int    `json:"burst"`
	Kind  string `json:"kind"`
}

func burstPaths(b int) (string, []string) {
	if b%2 == 0 {
		sh := (b / 2) % (vKeyspaces * vShards)
		k, s := sh/vShards, sh%vShards
		old, nw := (b/2)%vTablets, (b/2+1)%vTablets
		return "reparent", []string{tabletPath(k, s, old), tabletPath(k, s, nw), shardPath(k, s)}
	}
	k := (b / 2) % vKeyspaces
	var ps []string
	for s := 0; s < vShards; s++ {
		ps = append(ps, shardPath(k, s))
	}
	return "reshard", append(ps, srvKeyspacePath(k), srvVSchemaPath)
}

func cpuSelfNs() uint64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return uint64(ru.Utime.Nano() + ru.Stime.Nano())
}

func cmdVWriter(args []string) int {
	var o vflags
	o.parse("vwriter", args)
	run, err := e2e.Map(o.file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vwriter:", err)
		return 1
	}
	conn, err := o.conn()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vwriter:", err)
		return 1
	}
	defer conn.Close()
	if !run.WaitReady(120 * time.Second) {
		fmt.Fprintln(os.Stderr, "vwriter: not every process is ready")
		return 1
	}
	rng := rand.New(rand.NewSource(2))
	nb := int(o.seconds * o.bursts)
	period := time.Duration(float64(time.Second) / o.bursts)
	var plan []planEntry
	var commits []uint64
	cpu0 := cpuSelfNs()
	t0 := time.Now().Add(time.Millisecond)
	run.SetWriterStart(e2e.NowNs())
	seq, errs := uint64(0), 0
	var last uint64
	ctx := context.Background()
	for b := 0; b < nb; b++ {
		if d := time.Until(t0.Add(time.Duration(b) * period)); d > 0 {
			time.Sleep(d)
		}
		kind, ps := burstPaths(b)
		for _, p := range ps {
			if seq+1 > run.MaxSeq() {
				break
			}
			s := seq + 1
			before := e2e.NowNs()
			v := value(rng, p, s, before)
			_, err := conn.Update(ctx, p, v, nil)
			after := e2e.NowNs()
			if err != nil {
				if errs++; errs < 5 {
					fmt.Fprintln(os.Stderr, "vwriter: update", p, err)
				}
				continue
			}
			seq = s
			run.Committed(s, before, after)
			commits = append(commits, after-before)
			plan = append(plan, planEntry{s, p, b, kind})
			last = after
		}
	}
	cpu := cpuSelfNs() - cpu0
	run.WriterDone(seq, last)
	f, err := os.Create(o.plan)
	if err == nil {
		json.NewEncoder(f).Encode(plan)
		f.Close()
	}
	sort.Slice(commits, func(i, j int) bool { return commits[i] < commits[j] })
	q := func(x float64) uint64 {
		if len(commits) == 0 {
			return 0
		}
		return commits[int(math.Min(float64(len(commits)-1), x*float64(len(commits))))]
	}
	out, _ := json.Marshal(map[string]any{"name": "vitess_writer", "system": o.system, "bursts": nb,
		"committed": seq, "errors": errs, "writer_cpu_ns": cpu, "commit_p50_ns": q(0.5), "commit_p99_ns": q(0.99)})
	fmt.Println(string(out))
	if errs > 0 && seq == 0 {
		return 1
	}
	return 0
}

// ---- vsub -----------------------------------------------------------------------

func cmdVSub(args []string) int {
	var o vflags
	o.parse("vsub", args)
	s, err := e2e.NewSub(o.file, uint32(o.index), vRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsub:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.StopWatcher(cancel)
	conn, err := o.conn()
	if err != nil {
		s.Error("open %s: %v", o.system, err)
		return 1
	}
	defer conn.Close()
	_, exact, dir := role(o.index, o.subs)
	var mu sync.Mutex
	deliver := func(v []byte) {
		mu.Lock()
		s.DeliverOnly(v)
		mu.Unlock()
	}
	// A watch that ends with an error is started again (srvtopo and the
	// tablet's shard watcher do), its current value counted as a delivery:
	// that is how a process converges. Counted in resyncs.
	var wg sync.WaitGroup
	ready := make(chan error, len(exact)+1)
	for _, p := range exact {
		wg.Add(1)
		go func(p string) {
			defer wg.Done()
			first := true
			for ctx.Err() == nil {
				cur, ch, err := conn.Watch(ctx, p)
				if err != nil {
					if first {
						ready <- fmt.Errorf("Watch %s: %w", p, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				deliver(cur.Contents)
				if first {
					ready <- nil
					first = false
				}
				for wd := range ch {
					if wd.Err == nil {
						deliver(wd.Contents)
					}
				}
				if ctx.Err() == nil {
					mu.Lock()
					s.Resync(0)
					mu.Unlock()
				}
			}
		}(p)
	}
	if dir != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for ctx.Err() == nil {
				cur, ch, err := conn.WatchRecursive(ctx, dir)
				if err != nil {
					if first {
						ready <- fmt.Errorf("WatchRecursive %s: %w", dir, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				for _, wd := range cur {
					deliver(wd.Contents)
				}
				if first {
					ready <- nil
					first = false
				}
				for wd := range ch {
					if wd.Err == nil {
						deliver(wd.Contents)
					}
				}
				if ctx.Err() == nil {
					mu.Lock()
					s.Resync(0)
					mu.Unlock()
				}
			}
		}()
	}
	n := len(exact)
	if dir != "" {
		n++
	}
	for i := 0; i < n; i++ {
		if err := <-ready; err != nil {
			s.Error("%v", err)
			return 1
		}
	}
	s.Ready()
	wg.Wait()
	return 0
}

// ---- vcollect ------------------------------------------------------------------

func quantiles(v []uint64) map[string]any {
	if len(v) == 0 {
		return map[string]any{"count": 0}
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	q := func(x float64) uint64 { return v[int(math.Min(float64(len(v)-1), math.Ceil(x*float64(len(v)))-1))] }
	return map[string]any{"count": len(v), "p50_ns": q(0.5), "p99_ns": q(0.99), "max_ns": v[len(v)-1]}
}

func cmdVCollect(args []string) int {
	var o vflags
	o.parse("vcollect", args)
	run, err := e2e.Map(o.file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcollect:", err)
		return 1
	}
	var plan []planEntry
	b, err := os.ReadFile(o.plan)
	if err == nil {
		err = json.Unmarshal(b, &plan)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vcollect: plan:", err)
		return 1
	}
	n := o.subs
	excl := -1
	if o.exclude != "" {
		fmt.Sscan(o.exclude, &excl)
	}
	// Per path, its writes in order: a process has seen write w once it has
	// seen w or any later write of the same path (a watch may coalesce).
	byPath := map[string][]planEntry{}
	for _, e := range plan {
		byPath[e.Path] = append(byPath[e.Path], e)
	}
	deliv := make([][]uint64, n)
	for i := range deliv {
		deliv[i] = run.Deliver(uint32(i))
	}
	seenAt := func(i int, e planEntry) uint64 {
		var best uint64
		for _, f := range byPath[e.Path] {
			if f.Seq < e.Seq {
				continue
			}
			if t := deliv[i][f.Seq]; t != 0 && (best == 0 || t < best) {
				best = t
			}
		}
		return best
	}
	var lat, first []uint64
	burstLast := map[int]uint64{} // burst -> its worst commit-to-last-watcher
	watched, missing, deliveries, unwatched, early := 0, 0, 0, 0, 0
	for _, e := range plan {
		send, commit := run.CommitTimes(e.Seq)
		var last, firstSeen uint64
		nw := 0
		miss := false
		for i := 0; i < n; i++ {
			if i == excl || !watches(i, n, e.Path) {
				continue
			}
			nw++
			t := seenAt(i, e)
			if t == 0 {
				miss = true
				missing++
				continue
			}
			if t < send {
				// Seen before the writer sent it: a stale value of an earlier
				// run with the same sequence number, not this write.
				early++
			}
			deliveries++
			if t > last {
				last = t
			}
			if firstSeen == 0 || t < firstSeen {
				firstSeen = t
			}
		}
		if nw == 0 {
			unwatched++
			continue
		}
		watched++
		if miss || last == 0 {
			continue
		}
		l := uint64(0)
		if last > commit {
			l = last - commit
		}
		lat = append(lat, l)
		fl := uint64(0)
		if firstSeen > commit {
			fl = firstSeen - commit
		}
		first = append(first, fl)
		if l > burstLast[e.Burst] {
			burstLast[e.Burst] = l
		}
	}
	var bursts []uint64
	for _, v := range burstLast {
		bursts = append(bursts, v)
	}
	rec := map[string]any{"name": "vitess_latency", "writes": len(plan), "watched_writes": watched,
		"unwatched_writes": unwatched, "deliveries": deliveries, "missing": missing, "seen_before_sent": early,
		"last_watcher": quantiles(lat), "first_watcher": quantiles(first), "per_burst": quantiles(bursts)}
	// The stopped process: from SIGCONT until it has seen, for each file it
	// watches, the last write committed before SIGCONT.
	if excl >= 0 {
		cont := run.ContNs()
		var worst uint64
		conv := true
		lastBefore := map[string]planEntry{}
		for _, e := range plan {
			if _, c := run.CommitTimes(e.Seq); c < cont && watches(excl, n, e.Path) {
				lastBefore[e.Path] = e
			}
		}
		for _, e := range lastBefore {
			t := seenAt(excl, e)
			if t == 0 {
				conv = false
				break
			}
			if t > cont && t-cont > worst {
				worst = t - cont
			}
		}
		rec["victim_converged"] = conv
		if conv && cont != 0 {
			rec["converge_ms"] = float64(worst) / 1e6
		}
		rec["victim_rewatches"] = run.StatResyncs(uint32(excl))
	}
	var rewatch uint64
	for i := 0; i < n; i++ {
		if i != excl {
			rewatch += run.StatResyncs(uint32(i))
		}
	}
	rec["rewatches"] = rewatch
	out, _ := json.Marshal(rec)
	fmt.Println(string(out))
	return 0
}
