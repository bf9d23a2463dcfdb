#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generates bench/RESULTS.md and its plots from the JSON lines of the last run.

Usage: bench/e2e/report.py [--results bench/results] [--out bench/RESULTS.md]
                           [--plots bench/plots] [--command "make bench"]
Reads ring-latest.jsonl, decode-latest.jsonl and e2e-latest.jsonl (any may be
missing); never edit RESULTS.md by hand: run this again.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys

SYSTEMS = ["topohub", "topohub-go", "topohub-go-chan", "topohub-nospin", "socket", "decoder", "mysqltopo", "etcd-json", "etcd-grpc",
           "vitess-etcd2topo", "vitess-topohub"]
DESC = {
    "topohub": "topohubd + libtopohub.so (shared-memory ring), library defaults (spin 20 us, then futex)",
    "topohub-nospin": "the same, sleeping on the futex at once (spin_ns = 1)",
    "socket": "topohubd delivering over one Unix socket per subscriber",
    "decoder": "per-process binlog dump + our row decoder",
    "mysqltopo": "per-process binlog dump + full SELECT per row event (mysqltopo today)",
    "etcd-json": "etcd watch through its v3 JSON gateway (libcurl; was `etcd`)",
    "etcd-grpc": "etcd watch through etcd's own Go client over gRPC (go.etcd.io/etcd/client/v3)",
    "topohub-go": "topohubd + the pure-Go client (plugins/go/topohub), Follow: the loop body on the reading goroutine",
    "topohub-go-chan": "the same client, Open + WatchRecursive: every event over the watch's channel",
    "vitess-etcd2topo": "Vitess's etcd2topo backend, topo.Conn WatchRecursive (the etcd peers' writer)",
    "vitess-topohub": "the topohubtopo Vitess backend, topo.Conn WatchRecursive (watches from topohubd)",
}
HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def latest_per_point(recs):
    """A point run again (its first run lost too much CPU to the host) is
    reported by its later record; the first is left out, its steal noted."""
    def key(r):
        return (r.get("system"), r.get("subs"), r.get("rate"), r.get("size"), r.get("groups", 1), r.get("fault"),
                r.get("repeat"), r.get("ref"))
    last = {key(r): i for i, r in enumerate(recs) if r.get("name") == "e2e"}
    return [r for i, r in enumerate(recs) if r.get("name") != "e2e" or last[key(r)] == i]


def us(ns):
    if ns is None:
        return "-"
    v = ns / 1e3
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def pct(v):
    return "-" if v is None else f"{v * 100:.0f}%"


def steal_cell(r):
    s = pct(r.get("host_steal"))
    if r.get("rerun_after_steal") is not None:
        s += f" (re-run: {pct(r['rerun_after_steal'])} the first time)"
    return s


def size_name(b):
    return f"{b // (1 << 20)} MiB" if b >= 1 << 20 else f"{b // 1024} KiB" if b >= 1024 else f"{b} B"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) // 1024} MiB"
    except OSError:
        pass
    etcd = "-"
    if shutil.which("etcd"):
        r = subprocess.run(["etcd", "--version"], capture_output=True, text=True)
        etcd = r.stdout.splitlines()[0] if r.stdout else "-"
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "mem": mem, "etcd": etcd,
            "commit": rev or "?"}


def point_key(r):
    return (r["subs"], r["rate"], r["size"], r.get("groups", 1))


def e2e_tables(recs):
    """One table per scenario (subscribers, rate, size), every system side by side."""
    out = []
    scen = {}
    for r in recs:
        if r.get("name") == "e2e" and not r.get("fault"):
            scen.setdefault(point_key(r), {})[r["system"]] = r
    for key in sorted(scen, key=lambda k: (k[3], k[2], k[1], k[0])):
        n, rate, size, groups = key
        rows = scen[key]
        base = rows.get("topohub")
        sparse = (f", sparse: {groups} groups of keys, subscriber i watches group i mod {groups} only"
                  if groups > 1 else "")
        out.append(f"\n#### {n} subscriber{'s' if n > 1 else ''}, {rate:,} updates/s, {size_name(size)} values"
                   f"{sparse}\n")
        out.append("| system | p50 us | p99 us | p99.9 us | max us | p99 / topohub | delivered / expected | lost | "
                   "out of order | backlog | deliveries/s | writer rate | CPU hub s | CPU server s | CPU subs s | "
                   "CPU total s | CPU us / update | CPU / update vs topohub | dump threads | RSS KiB/sub | PSS KiB/sub | "
                   "host steal | ok |")
        out.append("|" + "---|" * 23)
        for s in SYSTEMS:
            r = rows.get(s)
            if not r:
                continue
            if r.get("skipped") or r.get("error"):
                out.append(f"| {s} | " + " | ".join(["-"] * 21) + f" | {r.get('skipped') or r.get('error')} |")
                continue
            ratio = "-"
            cratio = "-"
            if base and base.get("p99_ns") and s != "topohub" and r.get("p99_ns") is not None:
                ratio = f"{r['p99_ns'] / base['p99_ns']:.1f}x"
            if base and base.get("cpu_us_per_update") and s != "topohub" and r.get("cpu_us_per_update"):
                cratio = f"{r['cpu_us_per_update'] / base['cpu_us_per_update']:.1f}x"
            w = r.get("writer", {})
            flags = "yes" if r.get("ok") else "**NO**"
            out.append(
                f"| {s} | {us(r.get('p50_ns'))} | {us(r.get('p99_ns'))} | {us(r.get('p999_ns'))} | "
                f"{us(r.get('max_ns'))} | {ratio} | {r.get('delivered')} / {r.get('expected')} | {r.get('lost')} | "
                f"{r.get('out_of_order')} | {r.get('backlog')} | {fmt(r.get('deliveries_per_s'), 0)} | "
                f"{fmt(w.get('achieved_rate'), 0)} | {fmt(r.get('cpu_hub_s'))} | {fmt(r.get('cpu_server_s'))} | "
                f"{fmt(r.get('cpu_subs_s'))} | {fmt(r.get('cpu_total_s'))} | {fmt(r.get('cpu_us_per_update'), 0)} | {cratio} | {fmt(r.get('dump_threads'))} | "
                f"{fmt(r.get('rss_kb_per_sub'))} | {fmt(r.get('pss_kb_per_sub'))} | {steal_cell(r)} | "
                f"{flags} |")
    return out


def ring_worth(recs):
    """socket (the hub sending over one Unix socket per subscriber) against
    topohub (the ring) and topohub-nospin (the ring, sleeping at once like the
    socket subscribers), point by point."""
    scen = {}
    for r in recs:
        if r.get("name") == "e2e" and not r.get("fault") and r.get("system") in ("topohub", "topohub-nospin", "socket"):
            scen.setdefault(point_key(r), {})[r["system"]] = r
    keys = [k for k in sorted(scen, key=lambda k: (k[2], k[1], k[0])) if "socket" in scen[k] and "topohub" in scen[k]]
    if not keys:
        return []

    def ratio(a, b, k):
        if not a or not b or a.get(k) is None or not b.get(k):
            return "-"
        return f"{a[k] / b[k]:.1f}x"

    out = ["### What the ring is worth", "",
           "`socket` is the same hub with the ring replaced by one Unix socket per subscriber (its benchmark "
           "mode): everything upstream of delivery is the same, so these ratios are the ring's contribution. "
           "Ratios are socket / topohub (above 1: the ring is better); `nospin` is topohub with its subscribers "
           "sleeping at once, as the socket subscribers do.", "",
           "| subs | rate/s | size | p50 us topohub / nospin / socket | p99 us topohub / nospin / socket | "
           "p99 socket / topohub | p99 socket / nospin | CPU hub s topohub / socket | CPU hub ratio | "
           "CPU subs s topohub / socket | CPU us / update topohub / socket | CPU / update ratio | socket ok |",
           "|" + "---|" * 13]
    for k in keys:
        t, ns, so = scen[k].get("topohub"), scen[k].get("topohub-nospin"), scen[k]["socket"]
        if so.get("skipped") or so.get("error"):
            out.append(f"| {k[0]} | {k[1]:,} | {size_name(k[2])} | " + " | ".join(["-"] * 9)
                       + f" | {so.get('skipped') or so.get('error')} |")
            continue
        nsv = lambda key: us(ns.get(key)) if ns else "-"
        out.append(
            f"| {k[0]} | {k[1]:,} | {size_name(k[2])} | {us(t.get('p50_ns'))} / {nsv('p50_ns')} / {us(so.get('p50_ns'))} | "
            f"{us(t.get('p99_ns'))} / {nsv('p99_ns')} / {us(so.get('p99_ns'))} | {ratio(so, t, 'p99_ns')} | "
            f"{ratio(so, ns, 'p99_ns')} | {fmt(t.get('cpu_hub_s'))} / {fmt(so.get('cpu_hub_s'))} | "
            f"{ratio(so, t, 'cpu_hub_s')} | {fmt(t.get('cpu_subs_s'))} / {fmt(so.get('cpu_subs_s'))} | "
            f"{fmt(t.get('cpu_us_per_update'), 0)} / {fmt(so.get('cpu_us_per_update'), 0)} | "
            f"{ratio(so, t, 'cpu_us_per_update')} | {'yes' if so.get('ok') else '**NO**'} |")
    return out + [""]


def find(recs, system, n, rate, size, fault=None, groups=1):
    for r in recs:
        if (r.get("name") == "e2e" and r.get("system") == system and r.get("subs") == n and r.get("rate") == rate
                and r.get("size") == size and r.get("fault") == fault and r.get("groups", 1) == groups):
            return r
    return None


def ring_rec(ring, name, readers, mode=None):
    return next((r for r in ring if r.get("name") == name and r.get("readers", 1) == readers
                 and (mode is None or r.get("mode") == mode)), None)


def ring_targets(ring, dec, line):
    for floor, mode, bound, what in (("floor_ping", "spin", 1.5, "one spinning reader: p50 within 1.5x of the raw "
                                      "cache-line ping"),
                                     ("floor_futex", "futex", 1.3, "one sleeping reader: p50 within 1.3x of the raw "
                                      "futex wake")):
        f, m = ring_rec(ring, floor, 1), ring_rec(ring, "ring_latency", 1, mode)
        if f and m:
            r = m["p50_ns"] / f["p50_ns"]
            line("ring, " + what, f"{m['p50_ns']} ns / floor {f['p50_ns']} ns = {r:.3f}x", r <= bound)
    f64 = ring_rec(ring, "floor_futex", 64)
    r64 = ring_rec(ring, "ring_latency", 64, "futex")
    if r64 and r64.get("wake_all_p99_ns") is not None:
        fl = (f"; the floor (one FUTEX_WAKE to 64 processes, nothing else) {us(f64['wake_all_p99_ns'])} us, "
              f"ratio {r64['wake_all_p99_ns'] / f64['wake_all_p99_ns']:.2f}x") if f64 and f64.get("wake_all_p99_ns") else ""
        line("ring, 64 sleeping reader processes all woken: p99 < 500 us",
             f"{us(r64['wake_all_p99_ns'])} us over {r64['publications']} publications (p50 "
             f"{us(r64.get('wake_all_p50_ns'))} us){fl}", r64["wake_all_p99_ns"] < 500e3)
    pub = {(r.get("batch"), r.get("batch_time", "ring_clock")): r["records_per_s"] for r in ring
           if r.get("name") == "ring_publish" and r.get("record_bytes") == 64}
    if pub:
        w1, c1, c4 = pub.get((1, "writer")), pub.get((1, "ring_clock")), pub.get((4, "ring_clock"))
        m = lambda v: f"{v / 1e6:.1f} M/s" if v else "-"
        line("publish 64 B records, no sleeper: 20 M records/s, no syscall",
             f"one record per commit: {m(w1)} with the time given by the writer (as topohubd gives each "
             f"transaction's), {m(c1)} with the ring reading the clock per commit; 4 per commit: {m(c4)} "
             f"(clock per commit); no syscall on the path (the only one is FUTEX_WAKE, for sleepers)",
             (w1 or 0) >= 20e6)
    d = next((r for r in dec if r.get("name") == "decode"), None)
    peer = next((r for r in dec if r.get("name") == "decode_peer"), None)
    if d:
        line("decoder: 3 M topo row events/s per core from a binlog file",
             f"{d['topo_rows_per_s'] / 1e6:.2f} M/s ({d['topo_rows']} rows, {d['bytes'] / 1e6:.0f} MB)"
             + (f"; `{peer['tool']}` on the same file {peer['ratio']:.1f}x slower" if peer else ""),
             d["topo_rows_per_s"] >= 3e6)


def ring_floor_table(ring):
    """The ring beside the floor measured the same way in the same run."""
    out = ["| mode | readers | ring p50 us | floor p50 us | ratio | ring p99 us | floor p99 us | "
           "all woken p50 us (ring / floor) | all woken p99 us (ring / floor) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in ring:
        if r.get("name") != "ring_latency":
            continue
        mode, n = r["mode"], r["readers"]
        f = ring_rec(ring, "floor_ping", 1) if mode == "spin" and n == 1 else \
            ring_rec(ring, "floor_futex", n) if mode != "spin" else None
        ratio = f"{r['p50_ns'] / f['p50_ns']:.2f}x" if f else "-"
        fw = (lambda k: us(f.get(k)) if f and f.get(k) is not None else "-")
        out.append(f"| {mode} | {n} | {us(r['p50_ns'])} | {us(f['p50_ns']) if f else '-'} | {ratio} | "
                   f"{us(r['p99_ns'])} | {us(f['p99_ns']) if f else '-'} | "
                   f"{us(r.get('wake_all_p50_ns'))} / {fw('wake_all_p50_ns')} | "
                   f"{us(r.get('wake_all_p99_ns'))} / {fw('wake_all_p99_ns')} |")
    return out


def wake_floor(ring):
    """The sparse stream's floor (topohub-bench ring, floor_wake): one raw
    FUTEX_WAKE at 1,000/s to one process, against one of 256 in turn."""
    hot, cold = ring_rec(ring, "floor_wake", 1), ring_rec(ring, "floor_wake", 256)
    if not hot or not cold or not hot.get("p99_ns"):
        return ""
    return (f"; the floor of a cold wake-up (a raw FUTEX_WAKE at 1,000/s to one of 256 processes in turn, "
            f"each asleep 256 ms, against to one process): p99 {us(cold['p99_ns'])} / {us(hot['p99_ns'])} us = "
            f"{cold['p99_ns'] / hot['p99_ns']:.2f}x, p50 {us(cold['p50_ns'])} / {us(hot['p50_ns'])} us")


def targets(recs, ring=(), dec=(), refs=()):
    out = ["| target | measured | verdict |", "|---|---|---|"]

    def line(t, m, ok):
        out.append(f"| {t} | {m} | {'met' if ok else '**not met**' if ok is not None else 'not measured'} |")

    ring_targets(ring, dec, line)

    th = find(recs, "topohub", 64, 1000, 100)
    et = find(recs, "etcd-json", 64, 1000, 100)
    eg = find(recs, "etcd-grpc", 64, 1000, 100)
    mt = find(recs, "mysqltopo", 64, 1000, 100)
    de = find(recs, "decoder", 64, 1000, 100)
    if th and th.get("p99_ns") is not None:
        line("SQL commit to callback in 64 subscribers, 1,000 updates/s of 100 B: p99 < 1 ms",
             f"p99 {us(th['p99_ns'])} us (p50 {us(th['p50_ns'])}, p99.9 {us(th['p999_ns'])}); "
             f"{th['delivered']}/{th['expected']} delivered, ok={th.get('ok')}",
             th["p99_ns"] < 1e6 and th.get("ok"))
    else:
        line("SQL commit to callback in 64 subscribers: p99 < 1 ms", "no topohub point", None)
    ns = find(recs, "topohub-nospin", 64, 1000, 100)
    if ns and ns.get("p99_ns") is not None:
        line("... the same with the subscribers sleeping at once (spin_ns = 1)",
             f"p99 {us(ns['p99_ns'])} us (p50 {us(ns['p50_ns'])}); subscribers' CPU {ns['cpu_subs_s']:.2f} s "
             f"against {th['cpu_subs_s']:.2f} s with the default spin" if th else f"p99 {us(ns['p99_ns'])} us",
             ns["p99_ns"] < 1e6 and ns.get("ok"))
    if th and et and th.get("p99_ns") and et.get("p99_ns") is not None:
        r = et["p99_ns"] / th["p99_ns"]
        line("p99 at least 5x lower than etcd watch, 64 watchers, same workload (JSON gateway)",
             f"etcd-json p99 {us(et['p99_ns'])} us / topohub {us(th['p99_ns'])} us = {r:.1f}x", r >= 5)
    else:
        line("p99 at least 5x lower than etcd watch (JSON gateway)", "missing point", None)
    if th and eg and th.get("p99_ns") and eg.get("p99_ns") is not None:
        r = eg["p99_ns"] / th["p99_ns"]
        line("... against etcd's own Go client (gRPC watch), 64 watchers, same workload",
             f"etcd-grpc p99 {us(eg['p99_ns'])} us / topohub {us(th['p99_ns'])} us = {r:.1f}x", r >= 5)
    go_targets(recs, line)
    many_targets(recs, line, refs, ring)
    if th:
        per = [f"{s} {x.get('dump_threads')}" for s, x in (("decoder", de), ("mysqltopo", mt)) if x]
        line("one binlog dump thread on the server instead of N (N = 64)",
             f"topohub {th.get('dump_threads')}; " + ", ".join(per), th.get("dump_threads") == 1)
    if th and mt and th.get("cpu_us_per_update") and mt.get("cpu_us_per_update"):
        r = mt["cpu_us_per_update"] / th["cpu_us_per_update"]
        line("at least 10x less total CPU (hub + server + subscribers) than the mysqltopo-style peer, N = 64",
             f"per committed update: mysqltopo {mt['cpu_us_per_update']:.0f} us / topohub "
             f"{th['cpu_us_per_update']:.0f} us = {r:.1f}x (raw: {mt['cpu_total_s']:.2f} s / "
             f"{th['cpu_total_s']:.2f} s; the writer reached {mt['writer']['achieved_rate']:.0f}/s with mysqltopo, "
             f"{th['writer']['achieved_rate']:.0f}/s with topohub)", r >= 10)
    def runs(fault):
        return [r for r in recs if r.get("name") == "e2e" and r.get("fault") == fault and r.get("p99_ns")]

    def median(v):
        v = sorted(v)
        return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2 if v else None

    bases, stops = runs("none"), runs("stop")
    kill = next(iter(runs("kill")), None)
    if bases and stops:
        n = f" (medians of {len(bases)} runs without and {len(stops)} with the stop, alternating)" \
            if len(bases) > 1 else ""
        wb = median([r["writer"]["achieved_rate"] for r in bases])
        ws = median([r["writer"]["achieved_rate"] for r in stops])
        dw = (ws - wb) / wb * 100
        pb, ps = median([r["p99_ns"] for r in bases]), median([r["p99_ns"] for r in stops])
        dp = (ps - pb) / pb * 100
        line("a SIGSTOPped subscriber moves the writer's throughput by at most 10%",
             f"{wb:.0f} -> {ws:.0f} updates/s ({dw:+.1f}%){n}", abs(dw) <= 10)
        line("... and the other subscribers' p99 by at most 10%",
             f"{us(pb)} -> {us(ps)} us ({dp:+.1f}%){n}; each run: without "
             + ", ".join(us(r["p99_ns"]) for r in bases) + "; with " + ", ".join(us(r["p99_ns"]) for r in stops),
             dp <= 10)
        ev = [r for r in stops if r.get("evict_age_ms") is not None]
        if len(ev) == len(stops):
            worst = max(ev, key=lambda r: r["evict_over_timeout_ms"])
            line("... and is evicted within its timeout + 10 ms",
                 f"oldest unread record at eviction, worst of {len(ev)}: {worst['evict_age_ms']:.1f} ms, timeout "
                 f"{worst['evict_timeout_ms']:.0f} ms (+{worst['evict_over_timeout_ms']:.1f} ms)",
                 worst["evict_over_timeout_ms"] <= 10)
        else:
            line("... and is evicted within its timeout + 10 ms",
                 f"no eviction found in the hub's log in {len(stops) - len(ev)} of {len(stops)} runs", False)
        stop = stops[0]
        fs = stop.get("faulted_sub", {})
        out.append(f"| after SIGCONT: converged (resync notice, then SYNCED) | "
                   + ", ".join(f"{fmt(r.get('converge_ms'))}" for r in stops)
                   + f" ms after SIGCONT (first run: stopped {fmt(stop.get('stopped_ms'), 0)} ms; "
                   f"{fs.get('announced_skips')} updates announced as skipped, {fs.get('gaps')} lost) | reported |")
    if kill:
        out.append(f"| SIGKILLed subscriber: slot reclaimed | {fmt(kill.get('reclaim_ms'))} ms after SIGKILL "
                   f"(polled with topohubctl readers); others' p99 {us(kill.get('p99_ns'))} us, "
                   f"ok={kill.get('ok')} | reported |")
    return out


def many_targets(recs, line, refs=(), ring=()):
    """Issue 15: many processes per host, and only the ones that care."""
    th, de = find(recs, "topohub", 256, 1000, 100), find(recs, "decoder", 256, 1000, 100)
    if th and de and th.get("p99_ns") and de.get("p99_ns") and th.get("cpu_us_per_update"):
        all_in = th.get("delivered") == th.get("expected") and th.get("ok")
        line("256 subscribers, 1,000/s, one prefix: every update to every subscriber, p99 at most half the "
             "per-process decoders', CPU per update at most half theirs",
             f"{th['delivered']}/{th['expected']} delivered; p99 {us(th['p99_ns'])} / {us(de['p99_ns'])} us = "
             f"{th['p99_ns'] / de['p99_ns']:.2f}x; CPU {th['cpu_us_per_update']:.0f} / "
             f"{de['cpu_us_per_update']:.0f} us = {th['cpu_us_per_update'] / de['cpu_us_per_update']:.2f}x",
             bool(all_in and 2 * th["p99_ns"] <= de["p99_ns"]
                  and 2 * th["cpu_us_per_update"] <= de["cpu_us_per_update"]))
    big = find(recs, "topohub", 1024, 100, 100)
    if big and big.get("p99_ns") is not None:
        line("1,024 subscribers at 100/s: every update delivered, p99 < 100 ms (PSS per subscriber reported)",
             f"{big['delivered']}/{big['expected']} delivered, p99 {us(big['p99_ns'])} us, PSS "
             f"{big.get('pss_kb_per_sub')} KiB per subscriber",
             bool(big.get("ok") and big["delivered"] == big["expected"] and big["p99_ns"] < 100e6))
    # The 1-subscriber point run right before the sparse one (ref "sparse"),
    # else the N sweep's: adjacent points see the same host.
    sp = find(recs, "topohub", 256, 1000, 100, groups=256)
    one = find(refs, "topohub", 1, 1000, 100) or find(recs, "topohub", 1, 1000, 100)
    if sp and one and sp.get("p99_ns") and one.get("p99_ns") and one.get("cpu_us_per_update"):
        line("sparse: 256 subscribers, each watching its own keyspace, 1,000/s spread evenly: total CPU per "
             "update within 3x of one subscriber's, p99 within 2x of the 1-subscriber point"
             + (" (run right before it)" if one.get("ref") else ""),
             f"CPU {sp['cpu_us_per_update']:.0f} / {one['cpu_us_per_update']:.0f} us = "
             f"{sp['cpu_us_per_update'] / one['cpu_us_per_update']:.2f}x; p99 {us(sp['p99_ns'])} / "
             f"{us(one['p99_ns'])} us = {sp['p99_ns'] / one['p99_ns']:.2f}x; "
             f"{sp['delivered']}/{sp['expected']} delivered" + wake_floor(ring),
             bool(sp.get("ok") and sp["cpu_us_per_update"] <= 3 * one["cpu_us_per_update"]
                  and sp["p99_ns"] <= 2 * one["p99_ns"]))


def per_delivery_ns(r):
    """Subscribers' CPU per delivery: what each delivery costs the watching process."""
    if not r or not r.get("delivered") or r.get("cpu_subs_s") is None:
        return None
    return r["cpu_subs_s"] * 1e9 / r["delivered"]


GO_APIS = (("topohub-go", "Follow"), ("topohub-go-chan", "watch channels"))


def p50_ratio(c, g):
    """Go's p50 over C's, and what it is of. Below 10 us the C library's
    deliveries come as the writer's COMMIT call returns (the latency counts
    from its return, 0 when before): a ratio of such numbers says nothing,
    so the ratio is then of the latency from the COMMIT's send."""
    if c["p50_ns"] >= 10000 or not c.get("from_send_p50_ns") or not g.get("from_send_p50_ns"):
        return max(g["p50_ns"], 1000) / max(c["p50_ns"], 1000), f"p50 {us(g['p50_ns'])} us / {us(c['p50_ns'])} us"
    return (g["from_send_p50_ns"] / c["from_send_p50_ns"],
            f"p50 from the COMMIT's send {us(g['from_send_p50_ns'])} us / {us(c['from_send_p50_ns'])} us "
            f"(from its return {us(g['p50_ns'])} / {us(c['p50_ns'])} us)")


def go_targets(recs, line):
    """The Go client against the C library, point by point (DESIGN.md: p50
    within 1.5x, CPU per delivery within 2x). Measured, not asserted."""
    for system, api in GO_APIS:
        for n in (1, 64):
            c, g = find(recs, "topohub", n, 1000, 100), find(recs, system, n, 1000, 100)
            if not c or not g or c.get("p50_ns") is None or g.get("p50_ns") is None:
                continue
            rp, basis = p50_ratio(c, g)
            cc, cg = per_delivery_ns(c), per_delivery_ns(g)
            rc = cg / cc if cc and cg else None
            subs = f"{n} subscriber{'s' if n > 1 else ''}"
            line(f"Go client ({api}) within 1.5x of the C library's p50, {subs}",
                 f"{basis} = {rp:.2f}x (p99 {us(g.get('p99_ns'))} / {us(c.get('p99_ns'))} us); ok={g.get('ok')}",
                 rp <= 1.5 and g.get("ok"))
            if rc is not None:
                line(f"... and within 2x of its CPU per delivery, {subs}",
                     f"{cg / 1e3:.1f} us / {cc / 1e3:.1f} us per delivery = {rc:.2f}x (subscribers' CPU "
                     f"{g['cpu_subs_s']:.2f} s / {c['cpu_subs_s']:.2f} s, all threads of each process)", rc <= 2)


def go_table(recs):
    """The Go client (both APIs) beside topohub (C) at every point both ran."""
    scen = {}
    for r in recs:
        if r.get("name") == "e2e" and not r.get("fault") and r.get("system") in ("topohub",) + tuple(
                s for s, _ in GO_APIS):
            scen.setdefault(point_key(r), {})[r["system"]] = r
    rows = [(k, s, api) for k in sorted(scen, key=lambda k: (k[2], k[1], k[0]))
            for s, api in GO_APIS if "topohub" in scen[k] and s in scen[k]]
    if not rows:
        return []
    out = ["### The Go client beside the C library", "",
           "A Go process using plugins/go/topohub (no cgo) watches the prefix recursively in the default wait "
           "mode, on the same hub, right after the C point: `topohub-go` with `Follow` (the range loop's body "
           "runs on the goroutine that reads the ring, as the C subscriber's callback runs on the library's "
           "thread), `topohub-go-chan` with `Open` and `WatchRecursive` (each event handed over the watch's "
           "channel to the consuming goroutine: in a process otherwise idle, the Go runtime wakes a second "
           "thread for it at every wake-up). CPU per delivery is the subscribers' CPU (every thread of each "
           "process, the Go runtime's included) over the deliveries. Where the C p50 is under 10 us (deliveries as "
           "the writer's COMMIT call returns), the p50 ratio is of the latency from the COMMIT's send.", "",
           "| subs | rate/s | size | Go API | p50 us C / Go | ratio | p99 us C / Go | ratio | "
           "CPU per delivery us C / Go | ratio | RSS KiB/sub C / Go | Go ok |", "|" + "---|" * 12]
    for k, system, api in rows:
        c, g = scen[k]["topohub"], scen[k][system]
        if g.get("error") or c.get("error"):
            out.append(f"| {k[0]} | {k[1]:,} | {size_name(k[2])} | {api} | " + " | ".join(["-"] * 7)
                       + f" | {g.get('error') or c.get('error')} |")
            continue
        cc, cg = per_delivery_ns(c), per_delivery_ns(g)
        rp = f"{p50_ratio(c, g)[0]:.2f}x"
        r9 = f"{g['p99_ns'] / c['p99_ns']:.2f}x" if c.get("p99_ns") else "-"
        rc = f"{cg / cc:.2f}x" if cc and cg else "-"
        out.append(f"| {k[0]} | {k[1]:,} | {size_name(k[2])} | {api} | {us(c['p50_ns'])} / {us(g['p50_ns'])} | "
                   f"{rp} | {us(c['p99_ns'])} / {us(g['p99_ns'])} | {r9} | "
                   f"{fmt(cc / 1e3 if cc else None, 1)} / {fmt(cg / 1e3 if cg else None, 1)} | {rc} | "
                   f"{fmt(c.get('rss_kb_per_sub'))} / {fmt(g.get('rss_kb_per_sub'))} | "
                   f"{'yes' if g.get('ok') else '**NO**'} |")
    return out + [""]


def vfind(recs, system, n, fault=None):
    return next(iter(vall(recs, system, n, fault)), None)


def vall(recs, system, n, fault=None):
    """Every run of one system at one N, in run order."""
    return [r for r in recs if r.get("name") == "vitess" and r.get("system") == system and r.get("subs") == n
            and r.get("fault") == fault]


VITESS_SYSTEMS = ("topohub", "vitess-topohub", "vitess-etcd2topo")


def vrounds(recs, n):
    """The runs at N, by round: round k has each system's k-th run."""
    runs = [vall(recs, s, n) for s in VITESS_SYSTEMS]
    return [[v[k] for v in runs if k < len(v)] for k in range(max(map(len, runs)))]


def vmedian(runs, get):
    """The median of get(run) over runs that have it (the middle one of an
    odd count, the lower middle of an even one), and the values in run order."""
    v = [get(r) for r in runs if not r.get("error") and get(r) is not None]
    return (sorted(v)[(len(v) - 1) // 2] if v else None), v


def idle_cell(r):
    i = r.get("idle_cpu_s_per_s")
    if not i:
        return "-"
    return " / ".join(f"{i[k] * 1e3:.1f}" for k in ("hub", "server", "subs"))


def vitess_section(recs, e2e_recs, line=None):
    """The Vitess-shaped scenario's table, its fault runs and its targets."""
    vs = [r for r in recs if r.get("name") == "vitess"]
    if not vs:
        return [], []
    ns = sorted({r["subs"] for r in vs})
    out = ["### Vitess-shaped scenario", "",
           "N processes on the host watch what vtgate (SrvVSchema and every SrvKeyspace: `Watch`) and vttablet "
           "(its Shard record and its keyspace's SrvKeyspace: `Watch`) watch, one of them a recursive watch of a "
           "keyspace's shards (`WatchRecursive`), through Vitess's topo.Conn of each backend; a writer process "
           "replays reparents (two Tablet records, the Shard record) and reshards (every Shard record of a "
           "keyspace, its SrvKeyspace, the SrvVSchema) in bursts (10 a second), through the same backend's "
           "Update, with values of 1-50 KiB of random bytes (Shard and Tablet 1-2 KiB, SrvKeyspace 4-16 KiB, "
           "SrvVSchema 20-50 KiB). Latency of a write: from its Update's return to the moment the *last* process "
           "that watches the file has it (or a later value of it); per burst: the worst write of the burst. CPU: "
           "hub + server + the N processes (all threads) over the writer's run and 1 s after, per committed "
           "change (the writer's own CPU apart). Server threads and connections: mid-run (etcd: its threads, "
           "established TCP connections to its client port; MariaDB: its threads, Threads_connected; hub: "
           "topohubd's threads). Idle CPU: hub, server and the N processes over one second before the writer "
           "starts (nothing written), per second: what watching costs while the topology does not change. Tablet records have no watcher here (vtgate's health check does not watch "
           "them): they count as changes and in the CPU, not in the latency. `topohub`: the C library's processes "
           "(libtopohub.so, watch and watch_recursive) on the same files, fed by the same hub from the same "
           "writer (vitess-topohub's Update): what topohubtopo and the Go runtime add is the difference.", "",
           "| processes | system | last watcher p50 / p99 / max us | per burst p50 / p99 / max us | first watcher "
           "p50 us | p99 etcd2topo / topohub | writes (watched) | missing | CPU hub / server / processes s | "
           "CPU us / change | CPU etcd2topo / topohub | idle CPU ms/s hub / server / processes | writer commit p50 us | "
           "server threads / conns | hub threads | RSS KiB/process | host steal | ok |", "|" + "---|" * 18]
    for n, rnd, r in [(n, rnd, r) for n in ns for rnd in vrounds(vs, n) for r in rnd]:
        # Ratios against the vitess-topohub run of the same round.
        t = next((x for x in rnd if x["system"] == "vitess-topohub"), None)
        if r.get("error"):
            out.append(f"| {n} | {r['system']} | " + " | ".join(["-"] * 15) + f" | {r['error']} |")
            continue
        lw, pb, fw = r.get("last_watcher", {}), r.get("per_burst", {}), r.get("first_watcher", {})
        rp = rc = "-"
        if r["system"] == "vitess-etcd2topo" and t and not t.get("error") and t.get("last_watcher", {}).get("p99_ns"):
            rp = f"{lw.get('p99_ns', 0) / t['last_watcher']['p99_ns']:.1f}x"
            if t.get("cpu_us_per_change"):
                rc = f"{r['cpu_us_per_change'] / t['cpu_us_per_change']:.1f}x"
        out.append(
            f"| {n} | {r['system']} | {us(lw.get('p50_ns'))} / {us(lw.get('p99_ns'))} / {us(lw.get('max_ns'))} | "
            f"{us(pb.get('p50_ns'))} / {us(pb.get('p99_ns'))} / {us(pb.get('max_ns'))} | {us(fw.get('p50_ns'))} | "
            f"{rp} | {r.get('writes')} ({r.get('watched_writes')}) | {r.get('missing')} | "
            f"{fmt(r.get('cpu_hub_s'))} / {fmt(r.get('cpu_server_s'))} / {fmt(r.get('cpu_subs_s'))} | "
            f"{fmt(r.get('cpu_us_per_change'), 0)} | {rc} | {idle_cell(r)} | {us(r.get('writer', {}).get('commit_p50_ns'))} | "
            f"{fmt(r.get('server_threads'))} / {fmt(r.get('server_conns'))} | {fmt(r.get('hub_threads'))} | "
            f"{fmt(r.get('rss_kb_per_sub'))} | {steal_cell(r)} | {'yes' if r.get('ok') else '**NO**'} |")
    stops = [r for r in vs if r.get("fault") == "stop"]
    if stops:
        out += ["", "A vtgate-like process (process 0) stopped with SIGSTOP at 25% of the writer's run and continued "
                "at 60%, against the run without the stop just before (same N): the others' latency (process 0 left "
                "out), and the time from SIGCONT until process 0 had, for every file it watches, the last value "
                "written before SIGCONT (converged).", "",
                "| system | processes | others' last watcher p99 us, without / with the stop | others' missing | "
                "stopped ms | converged after SIGCONT ms | process 0 re-watches | ok |", "|---|---|---|---|---|---|---|---|"]
        for r in stops:
            b = vfind(vs, r["system"], r["subs"])
            out.append(f"| {r['system']} | {r['subs']} | {us((b or {}).get('last_watcher', {}).get('p99_ns'))} / "
                       f"{us(r.get('last_watcher', {}).get('p99_ns'))} | {r.get('missing')} | {fmt(r.get('stopped_ms'), 0)} | "
                       f"{fmt(r.get('converge_ms'))}{'' if r.get('victim_converged') else ' (**not converged**)'} | "
                       f"{r.get('victim_rewatches')} | {'yes' if r.get('ok') else '**NO**'} |")
    targets = []
    nmax = 64 if 64 in ns else ns[-1]
    tl = lambda r: (r or {}).get("last_watcher", {}).get("p99_ns")
    cpu = lambda r: r.get("cpu_us_per_change") or None
    (cp, cps), (tp, tps), (ep, eps) = (vmedian(vall(vs, s, nmax), tl) for s in VITESS_SYSTEMS)
    (cc, ccs), (tc, tcs), (ec, ecs) = (vmedian(vall(vs, s, nmax), cpu) for s in VITESS_SYSTEMS)
    runs = lambda v, f: ", ".join(f(x) for x in v)
    med = f"median of {len(tps)} runs, alternating" if len(tps) > 1 else "one run"
    if tp and ep is not None:
        r = ep / tp
        targets.append((f"Vitess-shaped, {nmax} processes: commit-to-last-watcher p99 at least 5x lower than "
                        "vitess-etcd2topo", f"{us(ep)} us / {us(tp)} us = {r:.1f}x ({med}; each run: "
                        f"etcd2topo {runs(eps, us)}, topohub {runs(tps, us)} us)", r >= 5))
    if tc and ec:
        r = ec / tc
        targets.append((f"Vitess-shaped, {nmax} processes: total host CPU per change at least 5x lower than "
                        "vitess-etcd2topo", f"{ec:.0f} us / {tc:.0f} us = {r:.1f}x (hub + server + processes; "
                        f"{med}; each run: etcd2topo {runs(ecs, lambda x: f'{x:.0f}')}, topohub "
                        f"{runs(tcs, lambda x: f'{x:.0f}')} us)", r >= 5))
    if tp and cp:
        r = tp / cp
        targets.append((f"vitess-topohub within 1.5x of topohub (C)'s p99, Vitess-shaped, {nmax} processes (the C "
                        "library's processes watching the same files)", f"{us(tp)} us / {us(cp)} us = {r:.2f}x ({med}"
                        + (f"; CPU per change {tc:.0f} / {cc:.0f} us = {tc / cc:.2f}x" if tc and cc else "")
                        + (f"; etcd2topo / topohub (C): {ec / cc:.1f}x" if ec and cc else "") + ")", r <= 1.5))
    th, vt = find(e2e_recs, "topohub", 64, 1000, 100), find(e2e_recs, "vitess-topohub", 64, 1000, 100)
    if th and vt and th.get("p99_ns") and vt.get("p99_ns") is not None:
        r = vt["p99_ns"] / th["p99_ns"]
        targets.append(("vitess-topohub within 1.5x of topohub (C)'s p99 (the synthetic point both run: 64 "
                        "subscribers, 1,000/s, 100 B)", f"{us(vt['p99_ns'])} us / {us(th['p99_ns'])} us = {r:.2f}x; "
                        f"ok={vt.get('ok')}", r <= 1.5 and vt.get("ok")))
    return out + [""], targets


def plots(recs, plotdir, datadir):
    os.makedirs(plotdir, exist_ok=True)
    os.makedirs(datadir, exist_ok=True)
    made = []
    if not shutil.which("gnuplot"):
        return made

    def gp(script, out, systems, ttl):
        if not systems:
            return
        r = subprocess.run(["gnuplot", "-e", f"dir='{datadir}'; out='{out}'; systems='{' '.join(systems)}'; "
                            f"ttl='{ttl}'", os.path.join(HERE, script)], capture_output=True, text=True)
        if r.returncode == 0:
            made.append(out)
        else:
            print("report: gnuplot:", r.stderr, file=sys.stderr)

    e2e = [r for r in recs if r.get("name") == "e2e" and not r.get("fault") and r.get("count")]
    # CDF: the headline scenario (64 subscribers, 1,000/s, 100 B), or the largest one measured.
    cands = [point_key(r) for r in e2e if r["size"] == 100]
    head = (64, 1000, 100) if (64, 1000, 100) in cands else (max(cands) if cands else None)
    if head:
        systems = []
        for s in SYSTEMS:
            r = find(recs, s, *head)
            if r and r.get("cdf"):
                with open(os.path.join(datadir, f"cdf_{s}.dat"), "w") as f:
                    for q, ns in r["cdf"]:
                        f.write(f"{max(ns, 100) / 1e3} {q}\n")
                systems.append(s)
        gp("cdf.gp", os.path.join(plotdir, "latency-cdf.png"), systems,
           f"Latency CDF: {head[0]} subscribers, {head[1]:,} updates/s, {size_name(head[2])} "
           "(0 plotted as 0.1 us)")
    systems = []
    for s in SYSTEMS:
        pts = sorted((r["subs"], r["p99_ns"]) for r in e2e if r["system"] == s and r["rate"] == 1000
                     and r["size"] == 100)
        if len(pts) > 1:
            with open(os.path.join(datadir, f"p99_{s}.dat"), "w") as f:
                for n, p in pts:
                    f.write(f"{n} {max(p, 100) / 1e3}\n")
            systems.append(s)
    gp("p99_subs.gp", os.path.join(plotdir, "p99-vs-subscribers.png"), systems,
       "p99 latency against subscribers (1,000 updates/s, 100 B)")
    systems = []
    for s in SYSTEMS:
        pts = sorted((r["rate"], r["deliveries_per_s"]) for r in e2e if r["system"] == s and r["subs"] == 64
                     and r["size"] == 100)
        if len(pts) > 1:
            with open(os.path.join(datadir, f"rate_{s}.dat"), "w") as f:
                for x, y in pts:
                    f.write(f"{x} {max(y, 1)}\n")
            systems.append(s)
    gp("rate.gp", os.path.join(plotdir, "deliveries-vs-rate.png"), systems,
       "Delivered events per second against the update rate (64 subscribers, 100 B)")
    systems = []
    for s in VITESS_SYSTEMS:
        runs = [r for r in recs if r.get("name") == "vitess" and r.get("system") == s and not r.get("fault")
                and r.get("last_watcher", {}).get("p99_ns") is not None and r.get("cpu_us_per_change")]
        pts = sorted((n, vmedian([r for r in runs if r["subs"] == n], lambda r: r["last_watcher"]["p99_ns"])[0],
                      vmedian([r for r in runs if r["subs"] == n], lambda r: r["cpu_us_per_change"])[0])
                     for n in {r["subs"] for r in runs})  # the median of the runs at each N
        if pts:
            with open(os.path.join(datadir, f"vitess_{s}.dat"), "w") as f:
                for n, p, c in pts:
                    f.write(f"{n} {max(p, 100) / 1e3} {c}\n")
            systems.append(s)
    gp("vitess.gp", os.path.join(plotdir, "vitess-shaped.png"), systems,
       "Vitess-shaped scenario: reparent and reshard bursts, 1-50 KiB values (0 plotted as 0.1 us)")
    return made


def generic_table(recs, skip=("cdf",)):
    if not recs:
        return ["(not run)"]
    keys = []
    for r in recs:
        for k in r:
            if k not in keys and k not in skip and not isinstance(r[k], (dict, list)):
                keys.append(k)
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in recs:
        cells = []
        for k in keys:
            v = r.get(k, "")
            if isinstance(v, float):
                v = f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
            cells.append(str(v))
        out.append("| " + " | ".join(cells) + " |")
    return out


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(HERE))
    ap.add_argument("--results", default=os.path.join(root, "bench", "results"))
    ap.add_argument("--out", default=os.path.join(root, "bench", "RESULTS.md"))
    ap.add_argument("--plots", default=os.path.join(root, "bench", "plots"))
    ap.add_argument("--command", default="make bench")
    args = ap.parse_args()
    ring = load(os.path.join(args.results, "ring-latest.jsonl"))
    dec = load(os.path.join(args.results, "decode-latest.jsonl"))
    steal = {k: next((r["host_steal"] for r in v if r.get("name") == "host"), None)
             for k, v in (("ring", ring), ("decode", dec))}
    ring = [r for r in ring if r.get("name") != "host"]
    dec = [r for r in dec if r.get("name") != "host"]
    e2e = latest_per_point(load(os.path.join(args.results, "e2e-latest.jsonl")))
    # Reference points (a point run again beside the one it is the reference
    # of) are for their target only, not the tables.
    refs = [r for r in e2e if r.get("ref")]
    e2e = [r for r in e2e if not r.get("ref")]
    m = machine()
    run = next((r for r in e2e if r.get("name") == "e2e_run"), {})
    done = next((r for r in e2e if r.get("name") == "e2e_done"), {})
    made = plots(e2e, args.plots, os.path.join(args.results, "plotdata"))
    rel = os.path.relpath(args.plots, os.path.dirname(args.out))

    L = ["# Benchmark results", "",
         "Generated by `bench/e2e/report.py` from the JSON lines of the last `" + args.command + "` "
         "(`bench/results/*-latest.jsonl`); do not edit by hand. What each number means: "
         "`bench/README.md`.", "",
         "## Machine", "",
         f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['mem']}; kernel {m['kernel']}",
         f"- MariaDB {run.get('server', '?')} (private instance, loopback, binlog ROW/FULL, no fsync per commit); "
         f"{m['etcd']} (data on tmpfs)",
         f"- topohub commit {m['commit']}; command: `{args.command}`"
         + (" (QUICK=1)" if run.get("quick") else ""),
         f"- load average before the end-to-end suite: {run.get('loadavg', '?')}, after: {done.get('loadavg', '?')}"
         f"; the machine is shared with other work (builds, test suites): compare systems within one table, "
         f"never across runs.",
         f"- end-to-end suite: {done.get('points', '?')} points plus the fault runs in {done.get('wall_s', '?')} s; "
         f"{done.get('failures', '?')} points not ok (see the tables).",
         f"- host steal (CPU time this VM wanted and the hypervisor gave to others, /proc/stat) over the end-to-end "
         f"suite: {pct(done.get('host_steal'))}, ring benchmark: {pct(steal['ring'])}, decode: "
         f"{pct(steal['decode'])}; per end-to-end point in the tables' `host steal` column. Latency at a point with "
         f"more than a few percent is the host's as much as the systems': `make bench` runs every point that lost more "
         f"than 5% once more while its 15 minutes allow (the fault runs as a trio) and reports the later run "
         f"(both are in the JSON lines).", ""]
    vsec, vtargets = vitess_section(e2e, e2e)
    L += ["## Targets (DESIGN.md)", ""] + targets(e2e, ring, dec, refs) + [
        f"| {t} | {m} | {'met' if ok else '**not met**'} |" for t, m, ok in vtargets] + [""]
    L += ["## End to end", "",
          "Latency is from the return of the writer's COMMIT (an autocommit UPDATE, or an etcd PUT) to the "
          "subscriber's callback, over every delivery to every subscriber, CLOCK_MONOTONIC on one host. "
          "`lost`: updates a subscriber never received and was not told about; `out of order`: deliveries "
          "older than one already delivered; `backlog`: updates not yet delivered when the run stopped "
          f"({run.get('grace_s', 2)} s after the writer finished). A point is ok only when all three and the "
          "errors are zero. CPU is from /proc (the scheduler's exact time per thread, or utime+stime where that is larger) over the writer's run plus the catch-up; `CPU us / update` "
          "divides hub + server + subscribers by the updates committed (a system that slows the writer down does "
          "less work in the same time, so ratios use this); "
          "`dump threads`: `Binlog Dump` threads in the server's PROCESSLIST mid-run; RSS/PSS: "
          "/proc/PID/smaps_rollup mid-run, mean over up to 64 subscribers.", ""]
    L += ["Systems: " + "; ".join(f"`{s}`: {DESC[s]}" for s in SYSTEMS) + ".", ""]
    for p in made:
        L.append(f"![{os.path.basename(p)}]({os.path.join(rel, os.path.basename(p))})")
        L.append("")
    L += e2e_tables(e2e)
    L += [""] + ring_worth(e2e)
    L += go_table(e2e)
    L += vsec
    skipped = [r for r in e2e if r.get("name") == "e2e" and (r.get("skipped") or r.get("error"))]
    L += ["", "### Points skipped or failed", ""]
    if skipped:
        for r in skipped:
            L.append(f"- {r['system']}, {r['subs']} subscribers, {r['rate']}/s, {size_name(r['size'])}: "
                     f"{r.get('skipped') or r.get('error')}")
    L += ["- Not in the matrix, by choice (2 cores, 15 minutes): 8, 64 and 256 subscribers at 100 and 10,000 "
          "updates/s for the peers other than at 64 subscribers (topohub runs the whole 100 B grid); "
          "10 KiB values only at 64 subscribers and 1,000/s; 1 MiB values only at 8 subscribers and 100/s "
          "with 16 keys (the mysqltopo-style peer re-reads 16 MiB per row event). The Go peers (topohub-go, "
          "etcd-grpc, vitess-etcd2topo, vitess-topohub) up to 64 subscribers, at 10,000/s and not at 100/s; "
          "10 KiB for topohub-go and etcd-grpc only; no 1 MiB point. "
          "`bench/e2e/run.py` `matrix()` is the list.", ""]
    faults = [r for r in e2e if r.get("name") == "e2e" and r.get("fault")]
    if faults:
        L += ["### Faults under load", "",
              "topohub, the same workload in every run, in the order below: no fault (baseline) and subscriber 0 "
              "stopped with SIGSTOP at 25% of the run and continued at 60%, alternating (a p99 moves by tens of "
              "percent from run to run here, so the targets compare medians), then subscriber 0 killed with SIGKILL "
              "at 25%. Subscriber 0 asks for a 100 ms slow-consumer timeout, the others for 1 s. Latency columns "
              "are over the other subscribers in every run.", "",
              "| fault | subs | writer rate | p50 us | p99 us | p99.9 us | max us | others ok | eviction: age of oldest "
              "unread record / timeout (ms) | converged after SIGCONT (ms) | slot reclaimed after SIGKILL (ms) | "
              "host steal |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in faults:
            ev = (f"{r['evict_age_ms']:.1f} / {r['evict_timeout_ms']:.0f}" if r.get("evict_age_ms") is not None
                  else "-")
            L.append(f"| {r['fault']}{' #' + str(r['repeat'] + 1) if r.get('repeat') else ''} | {r['subs']} | {fmt(r.get('writer', {}).get('achieved_rate'), 0)} | "
                     f"{us(r.get('p50_ns'))} | {us(r.get('p99_ns'))} | {us(r.get('p999_ns'))} | {us(r.get('max_ns'))} | "
                     f"{r.get('ok')} | {ev} | {fmt(r.get('converge_ms'))} | {fmt(r.get('reclaim_ms'))} | "
                     f"{steal_cell(r)} |")
        L.append("")
    L += ["## Ring (`topohub-bench ring`)", "",
          "Each ring figure beside its floor, measured the same way in the same run: `spin` against the raw "
          "cache-line ping, `futex` and `fd` against one raw FUTEX_WAKE to the same number of processes asleep "
          "on one word. \"All woken\": per publication, the time until the last reader had it. Spin mode with "
          "more readers than cores measures the scheduler (no floor).", ""] + ring_floor_table(ring) + [
          "", "All fields:", ""] + generic_table(ring) + [""]
    L += ["## Decoding (`topohub-bench decode`)", ""] + generic_table(dec) + [""]
    L += ["## Commands", "", "```sh",
          "make bench                      # everything: ring, decode, end to end, this file",
          "make bench QUICK=1              # about 90 s",
          "bench/e2e/run.py --build build --out bench/results/e2e-latest.jsonl   # end to end only",
          "bench/e2e/run.py --build build --only topohub,etcd                     # some systems",
          "bench/e2e/report.py             # this file and bench/plots/ from bench/results/*-latest.jsonl",
          "```", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(L))
    print(f"report: {args.out}, {len(made)} plots in {args.plots}", file=sys.stderr)


if __name__ == "__main__":
    main()
