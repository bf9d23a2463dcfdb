#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end benchmark driver: topohub against its peers, same workload, same run.

Starts a private MariaDB (through `topohub-bench e2e mariadb`, the test harness),
etcd on loopback when an etcd point runs, topohubd when a topohub point runs; for
each point of the matrix it resets the keys, starts N subscriber processes of one
system, waits until every one has its watch in place, runs the writer at a fixed
rate, waits for the subscribers to catch up (or not), and measures: latency from
each commit's return to each callback (`e2e collect`), CPU of hub, server and
subscribers (/proc/PID/stat), binlog dump threads on the server (PROCESSLIST),
RSS and PSS per subscriber (/proc/PID/smaps_rollup). One JSON object per line on
stdout (or --out). See bench/README.md for the definitions.

Usage: bench/e2e/run.py --build BUILD [--quick] [--out FILE] [--only SYSTEMS]
                        [--self-check]
"""
import argparse
import json
import mmap
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The Go client right after topohub: adjacent points see the same host.
SYSTEMS = ["topohub", "topohub-go", "topohub-go-chan", "topohub-nospin", "socket", "decoder", "mysqltopo", "etcd-json", "etcd-grpc",
           "vitess-etcd2topo", "vitess-topohub"]
C_HUB = ("topohub", "topohub-nospin")              # build/topohub-bench e2e sub --system topohub
ETCD_SYSTEMS = ("etcd-json", "etcd-grpc", "vitess-etcd2topo")
GO_CLIENT = ("topohub-go", "topohub-go-chan")      # build/topohub-bench-go: Follow, WatchRecursive's channel
HUB_SYSTEMS = C_HUB + ("socket", "vitess-topohub") + GO_CLIENT
NEW = GO_CLIENT + ("etcd-grpc", "vitess-etcd2topo", "vitess-topohub")
# The Go subscribers (bench/go), one binary each so that a process links only what it uses.
GO_BIN = {"topohub-go": "topohub-bench-go", "topohub-go-chan": "topohub-bench-go", "etcd-grpc": "topohub-bench-etcd",
          "vitess-etcd2topo": "topohub-bench-vitess", "vitess-topohub": "topohub-bench-vitess"}
PREFIX = "/bench/e2e"
GRACE_S = 2.0          # after the writer: how long subscribers may take to catch up
SOCKET_HUB_ARGS = ("--bench-socket-fanout", "true")


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def log(*a):
    print("e2e:", *a, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_times():
    """(all, idle + iowait, steal) jiffies of the whole machine, from the
    first line of /proc/stat (user .. steal; guest time is inside user)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]] + [0] * 8
    return sum(v[:8]), v[3] + v[4], v[7]


def cpu_busy_fraction(window_s=0.2):
    """Share of all CPUs busy over a short window."""
    t0, i0, _ = cpu_times()
    time.sleep(window_s)
    t1, i1, _ = cpu_times()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


# A point with more host steal than this is run once more (the variable: to try the re-runs).
RERUN_STEAL = float(os.environ.get("TOPOHUB_BENCH_RERUN_STEAL", "0.05"))


def steal_share(a, b):
    """Share of CPU time the hypervisor gave to other guests between two
    cpu_times() samples: time this VM wanted to run and could not. A point
    measured under a lot of it measured the host, not the systems."""
    return round((b[2] - a[2]) / max(1, b[0] - a[0]), 3)


def settle(max_s=20.0, busy=0.15):
    """Wait until the machine is idle again: the previous point's processes
    and the server's queued work (a peer that re-reads tables leaves the
    server busy after its subscribers are gone) must not run into the next
    point's measurement. Returns (seconds waited, busy fraction reached)."""
    t0 = time.time()
    b = cpu_busy_fraction()
    while b > busy and time.time() - t0 < max_s:
        b = cpu_busy_fraction()
    return round(time.time() - t0, 2), round(b, 3)


def proc_cpu_s(pid):
    """CPU time of a whole process. /proc/PID/stat counts dead threads too but
    in whole clock ticks (10 ms, truncated): 64 subscribers that each use a few
    ms would be undercounted by up to 0.6 s in all. The scheduler's own count
    (/proc/PID/task/*/schedstat, ns) is exact but only for live threads. The
    larger of the two is the better lower bound."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None
    exact = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    exact += int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                pass  # the thread ended meanwhile
    except OSError:
        pass
    return max(ticks, exact / 1e9)


def proc_mem_kb(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("Rss", "Pss"):
                    out[k.lower()] = int(rest.split()[0])
    except OSError:
        pass
    return out


class RunFile:
    """The run file shared with the C programs (layout in bench/bench_e2e.h)."""

    def __init__(self, bench, path, nsubs, max_seq, keys=0, groups=1):
        subprocess.run([bench, "e2e", "create", "--file", path, "--subs", str(nsubs),
                        "--max-seq", str(max_seq), "--keys", str(keys), "--groups", str(groups)], check=True)
        self.keys, self.groups = keys, groups
        self.path = path
        self.nsubs = nsubs
        self.fd = os.open(path, os.O_RDWR)
        self.m = mmap.mmap(self.fd, 4096 + nsubs * 128)

    def u64(self, off):
        return struct.unpack_from("<Q", self.m, off)[0]

    def set_u64(self, off, v):
        struct.pack_into("<Q", self.m, off, v)

    def total(self):
        return self.u64(24)

    def writer_done(self):
        return self.u64(32)

    def ready(self):
        return self.u64(48)

    def last_seq(self, i):
        return self.u64(4096 + i * 128 + 8)

    def last_owed(self, i, total):
        """The last update subscriber i must see (th__e2e_mine in bench_e2e.h)."""
        if self.groups <= 1 or not self.keys:
            return total
        for s in range(total, max(0, total - self.keys) - 1, -1):
            if s >= 1 and ((s - 1) % self.keys) % self.groups == i % self.groups:
                return s
        return 0

    def errors(self, i):
        return self.u64(4096 + i * 128 + 48)

    def stop(self):
        self.set_u64(40, 1)

    def set_cont(self, ns):
        self.set_u64(96, ns)

    def close(self):
        self.m.close()
        os.close(self.fd)
        try:
            os.unlink(self.path)
        except OSError:
            pass


class MariaDB:
    def __init__(self, bench):
        self.p = subprocess.Popen([bench, "e2e", "mariadb"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("private MariaDB did not start (see above)")
        self.info = json.loads(line)
        self.pid = self.info["pid"]

    def env(self):
        e = dict(os.environ)
        e["E2E_MYSQL_SOCKET"] = self.info["socket"]
        e["E2E_MYSQL_USER"] = self.info["user"]
        e["TOPOHUB_MYSQL_PASSWORD"] = self.info["password"]
        return e

    def query(self, q):
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.info["socket"], "-uroot", "-N", "-B",
                            "-e", q], capture_output=True, text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None

    def dump_threads(self):
        v = self.query("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                       "WHERE COMMAND LIKE 'Binlog Dump%'")
        return int(v) if v and v.isdigit() else None

    def stop(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Etcd:
    """Debian's etcd-server on loopback, data on tmpfs (the MariaDB does not
    fsync either: innodb_flush_log_at_trx_commit=2, sync_binlog=0)."""

    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(prefix="topohub-e2e-etcd-", dir="/dev/shm")
        cport, pport = free_port(), free_port()
        self.url = f"http://127.0.0.1:{cport}"
        peer = f"http://127.0.0.1:{pport}"
        self.logf = open(os.path.join(workdir, "etcd.log"), "w")
        self.p = subprocess.Popen(
            ["etcd", "--name", "e2e", "--data-dir", self.dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"e2e={peer}", "--max-request-bytes", str(16 << 20),
             "--quota-backend-bytes", str(8 << 30), "--auto-compaction-mode", "revision",
             "--auto-compaction-retention", "1000", "--log-level", "error"],
            stdout=self.logf, stderr=subprocess.STDOUT)
        self.pid = self.p.pid
        deadline = time.time() + 30
        while time.time() < deadline:
            r = subprocess.run(["curl", "-s", "-m", "1", self.url + "/health"], capture_output=True, text=True)
            if '"true"' in r.stdout:
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not start; see etcd.log")

    def dump_threads(self):
        return 0

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Hub:
    def __init__(self, build, db, workdir, extra=()):
        self.extra = tuple(extra)
        self.socket = os.path.join(workdir, "hub.sock")
        self.ctl = os.path.join(build, "topohubctl")
        notify = os.path.join(workdir, "notify.sock")
        try:
            os.unlink(notify)
        except OSError:
            pass
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(notify)
        env = db.env()
        env["NOTIFY_SOCKET"] = notify
        self.logf = open(os.path.join(workdir, "hub.log"), "a")
        self.p = subprocess.Popen(
            [os.path.join(build, "topohubd"), "--source", db.info["socket"], "--user", db.info["user"],
             "--socket", self.socket, "--socket-mode", "0666", "--reader-timeout-min-ms", "10",
             "--log-level", "warn", *extra, *shlex.split(os.environ.get("TOPOHUB_BENCH_HUB_ARGS", ""))],
            env=env, stdout=self.logf, stderr=subprocess.STDOUT)
        self.pid = self.p.pid
        ns.settimeout(30)
        try:
            while b"READY=1" not in ns.recv(4096):
                pass
        except socket.timeout:
            self.stop()
            raise RuntimeError("topohubd did not become ready; see hub.log")
        finally:
            ns.close()

    def readers(self):
        r = subprocess.run([self.ctl, "--socket", self.socket, "--json", "readers"], capture_output=True,
                           text=True, timeout=10)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def catch_up(self, db):
        """Wait until the hub has published every transaction the server has
        logged (topohubctl sync): subscribers started after the setup then
        begin from its state, not from the previous point's keys (which the
        setup's DELETE removes: a watch that started before would see the
        old values and then their deletes)."""
        gtid = db.query("SELECT @@gtid_binlog_pos")
        if gtid:
            subprocess.run([self.ctl, "--socket", self.socket, "--timeout", "30000", "sync", gtid],
                           capture_output=True, timeout=40)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Env:
    """The long-lived processes of a run: MariaDB always; etcd and the hub on demand."""

    def __init__(self, args):
        self.args = args
        self.bench = os.path.join(args.build, "topohub-bench")
        self.workdir = tempfile.mkdtemp(prefix="topohub-e2e-")
        self.db = MariaDB(self.bench)
        self.etcd = None
        self.hub = None

    def want_etcd(self, on):
        if on and not self.etcd:
            self.etcd = Etcd(self.workdir)
        if not on and self.etcd:
            self.etcd.stop()
            self.etcd = None

    def want_hub(self, on, extra=()):
        # A hub started with other flags (the socket peer's benchmark mode) is
        # restarted: the topohub points run on a hub with the mode off.
        if self.hub and (not on or self.hub.extra != tuple(extra)):
            self.hub.stop()
            self.hub = None
        if on and not self.hub:
            self.hub = Hub(self.args.build, self.db, self.workdir, extra)

    def close(self):
        self.want_hub(False)
        self.want_etcd(False)
        self.db.stop()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def sub_argv(env, system, runfile, i, timeout_ms):
    if system in GO_BIN:
        a = [os.path.join(env.args.build, GO_BIN[system]), "sub", "--system", system, "--file", runfile,
             "--index", str(i), "--prefix", PREFIX, "--timeout-ms", str(timeout_ms)]
        if system in HUB_SYSTEMS:
            a += ["--hub-socket", env.hub.socket]
        if system in ETCD_SYSTEMS:
            a += ["--etcd", env.etcd.url]
        return a
    hub = system in C_HUB
    # etcd-json: the C subscriber's system "etcd" (libcurl on the JSON gateway).
    csys = "topohub" if hub else "etcd" if system == "etcd-json" else system
    a = [env.bench, "e2e", "sub", "--system", csys, "--file", runfile,
         "--index", str(i), "--prefix", PREFIX]
    if hub:
        a += ["--lib", os.path.join(env.args.build, "libtopohub.so"), "--hub-socket", env.hub.socket,
              "--timeout-ms", str(timeout_ms)]
        # topohub-nospin: sleep on the futex at once (1 ns of spin; 0 is the default 20 us).
        spin = 1 if system == "topohub-nospin" else env.args.spin_ns
        if spin is not None:
            a += ["--spin-ns", str(spin)]
    if system == "socket":
        a += ["--hub-socket", env.hub.socket]
    if system == "etcd-json":
        a += ["--etcd", env.etcd.url]
    return a


def run_point(env, pt, fault=None):
    """One point: pt = {system, subs, rate, size, keys, seconds}. fault: None;
    'none' (a baseline: subscriber 0 left out of the latency, like in the others);
    'stop' (SIGSTOP subscriber 0 for a while, then SIGCONT) or 'kill' (SIGKILL it)."""
    system, n = pt["system"], pt["subs"]
    active = fault in ("stop", "kill")
    label = {k: pt[k] for k in ("system", "subs", "rate", "size", "keys", "seconds")}
    groups = pt.get("groups", 1)
    if groups > 1:
        label["groups"] = groups  # the sparse scenario (bench_e2e.h)
    if fault:
        label["fault"] = fault
    if pt.get("ref"):
        label["ref"] = pt["ref"]  # a reference point for one target (report.py)
    rec = {"name": "e2e", **label}
    if groups > 1 and system in GO_BIN:
        rec.update(ok=False, skipped="the sparse scenario runs the C subscribers only")
        return rec
    env.want_etcd(system in ETCD_SYSTEMS)
    # socket: the same hub in its benchmark mode, records over each subscriber's
    # control connection instead of the ring (hub/protocol.h STREAM).
    env.want_hub(system in HUB_SYSTEMS, SOCKET_HUB_ARGS if system == "socket" else ())
    server = env.etcd if system in ETCD_SYSTEMS else env.db
    penv = env.db.env()
    wargs = ["--prefix", PREFIX, "--keys", str(pt["keys"]), "--size", str(pt["size"]), "--groups", str(groups)]
    if system in ETCD_SYSTEMS:
        # Every etcd peer is written by the same C writer (a PUT through the
        # JSON gateway per update, its response the commit's return).
        wargs += ["--etcd", env.etcd.url]
    subprocess.run([env.bench, "e2e", "setup", *wargs], env=penv, check=True)
    if env.hub and system in HUB_SYSTEMS:
        env.hub.catch_up(env.db)

    max_seq = int(pt["rate"] * pt["seconds"]) + 16
    path = f"/dev/shm/topohub-e2e-{os.getpid()}.run"
    rf = RunFile(env.bench, path, n, max_seq, pt["keys"], groups)
    errpath = os.path.join(env.workdir, "subs.log")
    errlog = open(errpath, "a")
    errlog_off = errlog.tell()
    timeout_ms = pt.get("timeout_ms", 1000)
    subs = []
    fault_log = {}
    t_spawn = time.time()
    try:
        for i in range(n):
            # The victim of a fault run asks for the short timeout; the others keep 1 s.
            tmo = timeout_ms if i == 0 else 1000
            argv = sub_argv(env, system, path, i, tmo)
            if i == 0 and os.environ.get("TOPOHUB_BENCH_SUB0_WRAP"):
                # A developer's knob: run subscriber 0 under a profiler, e.g.
                # "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p".
                argv = shlex.split(os.environ["TOPOHUB_BENCH_SUB0_WRAP"]) + argv
            subs.append(subprocess.Popen(argv, env=penv,
                                         stdout=subprocess.DEVNULL, stderr=errlog))
        deadline = time.time() + 60 + n * 0.2
        while rf.ready() < n:
            dead = [s for s in subs if s.poll() is not None]
            if dead or time.time() > deadline:
                rec.update(ok=False, error=f"{rf.ready()} of {n} subscribers ready"
                           + (f", {len(dead)} exited" if dead else "") + sub_errors(errpath, errlog_off))
                return rec
            time.sleep(0.01)
        rec["subs_ready_s"] = round(time.time() - t_spawn, 3)

        pids = [s.pid for s in subs]
        rec["settle_s"], rec["busy_before"] = settle()
        if active and env.hub:
            env.hub.logf.flush()
            fault_log["hub_log_off"] = os.path.getsize(env.hub.logf.name)
        cpu0 = {"hub": proc_cpu_s(env.hub.pid) if env.hub else None, "server": proc_cpu_s(server.pid),
                "subs": [proc_cpu_s(p) for p in pids], "machine": cpu_times()}
        w = subprocess.Popen([env.bench, "e2e", "writer", "--file", path, "--rate", str(pt["rate"]),
                              "--seconds", str(pt["seconds"]), *wargs], env=penv, stdout=subprocess.PIPE)
        # Mid-run samples: dump threads and memory per subscriber.
        t0 = time.time()
        sampled = False
        while w.poll() is None:
            el = time.time() - t0
            if not sampled and el > pt["seconds"] * 0.5:
                rec["dump_threads"] = server.dump_threads()
                mem = [proc_mem_kb(p) for p in pids[: min(n, 64)]]
                mem = [m for m in mem if m]
                if mem:
                    rec["rss_kb_per_sub"] = round(sum(m["rss"] for m in mem) / len(mem))
                    rec["pss_kb_per_sub"] = round(sum(m["pss"] for m in mem) / len(mem))
                sampled = True
            if active:
                fault_step(env, fault, pt, subs, rf, el, fault_log)
            # The baseline of the fault runs is driven like them (the same 2 ms
            # polls of this process), so that only the fault differs.
            time.sleep(0.002 if fault else 0.02)
        wout = w.stdout.read().decode()
        try:
            wrec = json.loads(wout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            rec.update(ok=False, error="writer failed")
            return rec
        if active:
            fault_finish(env, fault, pt, subs, rf, fault_log)
        total = rf.total()
        # Catch-up: every subscriber (but a killed one) has the last update, or the grace ran out.
        t_end = time.time()
        live = [i for i in range(n) if not (fault == "kill" and i == 0)]
        owed = {i: rf.last_owed(i, total) for i in live}  # once: the poll below runs every 5 ms
        while time.time() - t_end < GRACE_S + (2.0 if active else 0):
            if all(rf.last_seq(i) >= owed[i] for i in live):
                break
            time.sleep(0.005)
        rec["catch_up_s"] = round(time.time() - t_end, 3)
        cpu1 = {"hub": proc_cpu_s(env.hub.pid) if env.hub else None, "server": proc_cpu_s(server.pid),
                "subs": [proc_cpu_s(p) for p in pids], "machine": cpu_times()}
        rec["host_steal"] = steal_share(cpu0["machine"], cpu1["machine"])
        rec["cpu_hub_s"] = round(cpu1["hub"] - cpu0["hub"], 3) if env.hub else 0.0
        rec["cpu_server_s"] = round(cpu1["server"] - cpu0["server"], 3)
        rec["cpu_subs_s"] = round(sum((b or 0) - (a or 0) for a, b in zip(cpu0["subs"], cpu1["subs"])), 3)
        rec["cpu_writer_s"] = round(wrec.get("writer_cpu_ns", 0) / 1e9, 3)
        rec["cpu_total_s"] = round(rec["cpu_hub_s"] + rec["cpu_server_s"] + rec["cpu_subs_s"], 3)
        # Per committed update: a peer that slows the writer down does less work in the same time.
        rec["cpu_us_per_update"] = round(rec["cpu_total_s"] * 1e6 / max(1, wrec.get("committed", 0)), 1)
        rec["writer"] = {k: wrec[k] for k in ("planned", "committed", "errors", "achieved_rate", "late_count",
                                             "late_p99_ns", "late_max_ns", "p50_ns", "p99_ns", "max_ns")}
        rec.update({k: v for k, v in fault_log.items() if not k.startswith(("t_", "hub_log"))})
    finally:
        rf.stop()
        t_stop = time.time()
        for s in subs:
            try:
                s.send_signal(signal.SIGCONT)
                if system in GO_BIN or system in C_HUB:
                    s.send_signal(signal.SIGTERM)  # their stop (e2e.StopWatcher; bench_e2e_topohub.c)
            except OSError:
                pass
        for s in subs:
            try:
                s.wait(timeout=max(0.1, 3 - (time.time() - t_stop)))
            except subprocess.TimeoutExpired:
                s.kill()
                s.wait()
        errlog.close()
    if any(rf.errors(i) for i in range(n)):
        rec["sub_errors"] = sub_errors(errpath, errlog_off)[2:]
    excl = ["--exclude", "0"] if fault else []
    c = subprocess.run([env.bench, "e2e", "collect", "--file", path, *excl], capture_output=True, text=True)
    rf.close()
    for line in c.stdout.splitlines():
        o = json.loads(line)
        if o["name"] == "e2e_latency":
            o.pop("name")
            rec.update(o)
        elif o["name"] == "e2e_sub":
            rec["faulted_sub"] = {k: o[k] for k in o if k != "name"}
            if fault == "stop" and o.get("synced_ns") and fault_log.get("t_cont"):
                # Converged: the library's SYNCED after the resync notice.
                rec["converge_ms"] = round((o["synced_ns"] - fault_log["t_cont"]) / 1e6, 3)
    return rec


# ---- the Vitess-shaped scenario (bench/go/cmd/topohub-bench-vitess/vitess.go) ----

# topohub: the C library's processes on the same files, hub and writer as
# vitess-topohub's (what the backend adds is the difference).
VITESS_SYSTEMS = ("topohub", "vitess-topohub", "vitess-etcd2topo")
VITESS_SHARDS = 4     # per keyspace, as vitess.go: a reshard burst writes this + 2 files


def vitess_go_system(system):
    """The backend of a Vitess-shaped point's Go programs (setup, writer,
    collector): topohub's C processes are fed by vitess-topohub's."""
    return "vitess-topohub" if system == "topohub" else system


def proc_threads(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def tcp_conns(port):
    """Established TCP connections whose local port is port (the server's side)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "01" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except (OSError, StopIteration):
            pass
    return n


def run_vitess_point(env, vp, fault=None):
    """One point of the Vitess-shaped scenario: vp = {system, subs, seconds,
    bursts_per_s}. fault 'stop': process 0 (a vtgate) is stopped with SIGSTOP
    at 25% of the writer's run and continued at 60%; the others' latency is
    measured without it, and its convergence after SIGCONT."""
    system, n = vp["system"], vp["subs"]
    rec = {"name": "vitess", **{k: vp[k] for k in ("system", "subs", "seconds", "bursts_per_s")}}
    if fault:
        rec["fault"] = fault
    # topohub: the C library's processes watch the same files (vroles) from
    # the same hub; the writer, the setup and the collector are vitess-topohub's.
    csubs = system == "topohub"
    gosys = vitess_go_system(system)
    vbin = os.path.join(env.args.build, GO_BIN[gosys])
    env.want_etcd(system == "vitess-etcd2topo")
    env.want_hub(gosys == "vitess-topohub")
    server = env.etcd if system == "vitess-etcd2topo" else env.db
    penv = env.db.env()
    conn = ["--system", gosys]
    if system == "vitess-etcd2topo":
        conn += ["--etcd", env.etcd.url]
    else:
        conn += ["--hub-socket", env.hub.socket]
    r = subprocess.run([vbin, "vsetup", *conn], env=penv, capture_output=True, text=True)
    if r.returncode:
        rec.update(ok=False, error="vsetup failed: " + r.stderr.strip()[-300:])
        return rec
    if gosys == "vitess-topohub":
        # As for the matrix: the processes' first values must be the setup's,
        # not the previous point's (whose sequence numbers this point reuses:
        # a stale first value read as a delivery before the write was sent).
        env.hub.catch_up(env.db)
    nb = int(vp["seconds"] * vp["bursts_per_s"])
    max_seq = nb * (VITESS_SHARDS + 2) + 16
    path = f"/dev/shm/topohub-e2e-{os.getpid()}.vrun"
    plan = os.path.join(env.workdir, "vitess-plan.json")
    rf = RunFile(env.bench, path, n, max_seq)
    errpath = os.path.join(env.workdir, "subs.log")
    errlog = open(errpath, "a")
    errlog_off = errlog.tell()
    subs = []
    t_spawn = time.time()
    try:
        roles = []
        if csubs:
            r = subprocess.run([vbin, "vroles", "--subs", str(n)], capture_output=True, text=True)
            roles = json.loads(r.stdout) if r.returncode == 0 else []
            if len(roles) != n:
                rec.update(ok=False, error="vroles failed: " + r.stderr.strip()[-300:])
                return rec
        for i in range(n):
            argv = [vbin, "vsub", *conn, "--file", path, "--index", str(i), "--subs", str(n)]
            if csubs:
                argv = [env.bench, "e2e", "sub", "--system", "topohub", "--file", path, "--index", str(i),
                        "--lib", os.path.join(env.args.build, "libtopohub.so"), "--hub-socket", env.hub.socket]
                for k in roles[i]["exact"] or []:
                    argv += ["--watch", k]
                if roles[i]["dir"]:
                    argv += ["--watch-dir", roles[i]["dir"]]
            if i == 0 and os.environ.get("TOPOHUB_BENCH_SUB0_WRAP"):
                argv = shlex.split(os.environ["TOPOHUB_BENCH_SUB0_WRAP"]) + argv  # as in the matrix
            subs.append(subprocess.Popen(argv, env=penv, stdout=subprocess.DEVNULL, stderr=errlog))
        deadline = time.time() + 60 + n * 0.5
        while rf.ready() < n:
            dead = [x for x in subs if x.poll() is not None]
            if dead or time.time() > deadline:
                rec.update(ok=False, error=f"{rf.ready()} of {n} processes ready"
                           + (f", {len(dead)} exited" if dead else "") + sub_errors(errpath, errlog_off))
                return rec
            time.sleep(0.01)
        rec["subs_ready_s"] = round(time.time() - t_spawn, 3)
        pids = [x.pid for x in subs]
        rec["settle_s"], rec["busy_before"] = settle()

        def cpu_now():
            return {"hub": proc_cpu_s(env.hub.pid) if env.hub else 0.0, "server": proc_cpu_s(server.pid),
                    "subs": [proc_cpu_s(p) for p in pids], "machine": cpu_times()}

        # One second with nothing written: what the watching costs when the
        # topology does not change (Vitess's usual state), per second.
        i0 = cpu_now()
        time.sleep(1.0)
        i1 = cpu_now()
        rec["idle_cpu_s_per_s"] = {"hub": round(i1["hub"] - i0["hub"], 4),
                                   "server": round(i1["server"] - i0["server"], 4),
                                   "subs": round(sum((b or 0) - (a or 0) for a, b in zip(i0["subs"], i1["subs"])), 4)}
        cpu0 = {"hub": proc_cpu_s(env.hub.pid) if env.hub else None, "server": proc_cpu_s(server.pid),
                "subs": [proc_cpu_s(p) for p in pids], "machine": cpu_times()}
        w = subprocess.Popen([vbin, "vwriter", *conn, "--file", path, "--plan", plan, "--seconds",
                              str(vp["seconds"]), "--bursts-per-s", str(vp["bursts_per_s"])],
                             env=penv, stdout=subprocess.PIPE)
        t0 = time.time()
        sampled, flog = False, {}
        while w.poll() is None:
            el = time.time() - t0
            if not sampled and el > vp["seconds"] * 0.5:
                rec["server_threads"] = proc_threads(server.pid)
                if system == "vitess-etcd2topo":
                    rec["server_conns"] = tcp_conns(int(env.etcd.url.rsplit(":", 1)[1]))
                else:  # MariaDB, for topohub and vitess-topohub
                    v = env.db.query("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                     "WHERE VARIABLE_NAME = 'THREADS_CONNECTED'")
                    rec["server_conns"] = int(v) if v and v.isdigit() else None
                    rec["hub_threads"] = proc_threads(env.hub.pid)
                mem = [proc_mem_kb(p) for p in pids[: min(n, 64)]]
                mem = [m for m in mem if m]
                if mem:
                    rec["rss_kb_per_sub"] = round(sum(m["rss"] for m in mem) / len(mem))
                    rec["pss_kb_per_sub"] = round(sum(m["pss"] for m in mem) / len(mem))
                sampled = True
            if fault == "stop":
                if "t_fault" not in flog and el > vp["seconds"] * 0.25:
                    flog["t_fault"] = now_ns()
                    subs[0].send_signal(signal.SIGSTOP)
                if "t_fault" in flog and "t_cont" not in flog and el > vp["seconds"] * 0.6:
                    flog["t_cont"] = now_ns()
                    rf.set_cont(flog["t_cont"])
                    subs[0].send_signal(signal.SIGCONT)
            time.sleep(0.005)
        if fault == "stop" and "t_cont" not in flog:
            flog["t_cont"] = now_ns()
            rf.set_cont(flog["t_cont"])
            subs[0].send_signal(signal.SIGCONT)
        try:
            wrec = json.loads(w.stdout.read().decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            rec.update(ok=False, error="vwriter failed" + sub_errors(errpath, errlog_off))
            return rec
        # Catch-up: a fixed second (each process watches its own files: there is
        # no single last sequence number to wait for), two after a stop.
        time.sleep(1.0 if not fault else 2.0)
        cpu1 = {"hub": proc_cpu_s(env.hub.pid) if env.hub else None, "server": proc_cpu_s(server.pid),
                "subs": [proc_cpu_s(p) for p in pids], "machine": cpu_times()}
        rec["host_steal"] = steal_share(cpu0["machine"], cpu1["machine"])
        rec["cpu_hub_s"] = round(cpu1["hub"] - cpu0["hub"], 3) if env.hub else 0.0
        rec["cpu_server_s"] = round(cpu1["server"] - cpu0["server"], 3)
        rec["cpu_subs_s"] = round(sum((b or 0) - (a or 0) for a, b in zip(cpu0["subs"], cpu1["subs"])), 3)
        rec["cpu_writer_s"] = round(wrec.get("writer_cpu_ns", 0) / 1e9, 3)
        rec["cpu_total_s"] = round(rec["cpu_hub_s"] + rec["cpu_server_s"] + rec["cpu_subs_s"], 3)
        rec["changes"] = wrec.get("committed", 0)
        rec["cpu_us_per_change"] = round(rec["cpu_total_s"] * 1e6 / max(1, rec["changes"]), 1)
        rec["writer"] = {k: wrec.get(k) for k in ("bursts", "committed", "errors", "commit_p50_ns", "commit_p99_ns")}
        if fault == "stop":
            rec["stopped_ms"] = round((flog["t_cont"] - flog["t_fault"]) / 1e6, 3)
    finally:
        rf.stop()
        t_stop = time.time()
        for x in subs:
            try:
                x.send_signal(signal.SIGCONT)
                x.send_signal(signal.SIGTERM)  # their stop (e2e.StopWatcher; bench_e2e_topohub.c)
            except OSError:
                pass
        for x in subs:
            try:
                x.wait(timeout=max(0.1, 3 - (time.time() - t_stop)))
            except subprocess.TimeoutExpired:
                x.kill()
                x.wait()
        errlog.close()
    if any(rf.errors(i) for i in range(n)):
        rec["sub_errors"] = sub_errors(errpath, errlog_off)[2:]
    c = subprocess.run([vbin, "vcollect", "--file", path, "--plan", plan, "--subs", str(n),
                        *(["--exclude", "0"] if fault else [])], capture_output=True, text=True)
    rf.close()
    try:
        o = json.loads(c.stdout.strip().splitlines()[-1])
        o.pop("name")
        rec.update(o)
    except (ValueError, IndexError):
        rec.update(ok=False, error="vcollect failed: " + c.stderr.strip()[-300:])
        return rec
    rec["ok"] = rec.get("missing") == 0 and not rec.get("seen_before_sent") and \
        not any(rf_err for rf_err in [rec.get("sub_errors")])
    return rec


def vitess_points(quick, only, self_check=False, just=()):
    """The Vitess-shaped scenario: each N, the systems alternating (the C
    library, vitess-topohub, etcd2topo at one N, the reverse at the next; not
    the C library with --quick); at the largest N a run with a vtgate-like
    process stopped, per Vitess backend. just: only these N, no stop
    (--vitess, for looking at one size)."""
    systems = [s for s in VITESS_SYSTEMS if not only or s in only]
    if quick:
        systems = [s for s in systems if s != "topohub"]  # 120 s: the new peers only
    if self_check:
        return [({"system": s, "subs": 2, "seconds": 1, "bursts_per_s": 5}, None) for s in systems]
    ns, secs = ((8,), 1.5) if quick else ((1, 8, 64), 4)
    if just:
        return [({"system": s, "subs": n, "seconds": secs, "bursts_per_s": 10}, None)
                for j, n in enumerate(just) for s in (systems if j % 2 == 0 else systems[::-1])]
    # At the largest N, three rounds in alternating order: one run's p99 of
    # etcd2topo moved 12.7-36.8 ms between runs on this host; the targets
    # compare medians (as the faults table does).
    pts = []
    rounds = 1 if quick else 3
    for j, n in enumerate(ns):
        for r in range(rounds if n == ns[-1] else 1):
            for s in (systems if (j + r) % 2 == 0 else systems[::-1]):
                pts.append(({"system": s, "subs": n, "seconds": secs, "bursts_per_s": 10}, None))
    if not quick:  # the C library's stopped reader: the faults table
        for s in systems:
            if s != "topohub":
                pts.append(({"system": s, "subs": ns[-1], "seconds": secs, "bursts_per_s": 10}, "stop"))
    return pts


def sub_errors(path, off):
    """The first distinct error lines the subscribers wrote in this point."""
    try:
        with open(path, errors="replace") as f:
            f.seek(off)
            seen = []
            for line in f:
                line = line.strip()
                key = line.split(":", 1)[-1][:80]
                if line and key not in [s.split(":", 1)[-1][:80] for s in seen]:
                    seen.append(line[:200])
                if len(seen) == 3:
                    break
        return (": " + " | ".join(seen)) if seen else ""
    except OSError:
        return ""


def fault_step(env, fault, pt, subs, rf, el, log_):
    """Called every ~2 ms while the writer runs. Nothing here may load the
    machine while the others are measured: the stopped reader's eviction is
    read from the hub's log afterwards, not polled."""
    victim = subs[0]
    if "t_fault" not in log_ and el > pt["seconds"] * 0.25:
        log_["t_fault"] = now_ns()
        victim.send_signal(signal.SIGSTOP if fault == "stop" else signal.SIGKILL)
        return
    if "t_fault" not in log_:
        return
    if fault == "kill" and "t_gone" not in log_ and env.hub:
        # A closed socket means a dead reader: poll the reader table until
        # the victim's slot is gone (each poll is one topohubctl process).
        rd = env.hub.readers()
        if isinstance(rd, dict):
            rd = rd.get("readers")
        if isinstance(rd, list) and not any(r.get("pid") == victim.pid for r in rd):
            log_["t_gone"] = now_ns()
            log_["reclaim_ms"] = round((log_["t_gone"] - log_["t_fault"]) / 1e6, 3)
        elif (now_ns() - log_["t_fault"]) > 5e9:
            log_["t_gone"] = 0
            log_["reclaim_ms"] = None
    if fault == "stop" and "t_cont" not in log_ and el > pt["seconds"] * 0.6:
        log_["t_cont"] = now_ns()
        rf.set_cont(log_["t_cont"])
        victim.send_signal(signal.SIGCONT)


def fault_finish(env, fault, pt, subs, rf, log_):
    if fault == "stop" and "t_cont" not in log_:
        log_["t_cont"] = now_ns()
        rf.set_cont(log_["t_cont"])
        subs[0].send_signal(signal.SIGCONT)
    if fault == "stop":
        log_["stopped_ms"] = round((log_["t_cont"] - log_["t_fault"]) / 1e6, 3)
        # The hub logs each eviction with the age of the oldest unread record
        # and the reader's timeout.
        pid = subs[0].pid
        try:
            with open(env.hub.logf.name) as f:
                f.seek(log_.get("hub_log_off", 0))
                for line in f:
                    m = re.search(r"evicted reader \d+ \(pid (\d+),.*oldest unread record is ([0-9.]+) ms "
                                  r"old, timeout ([0-9.]+) ms", line)
                    if m and int(m.group(1)) == pid:
                        log_["evict_age_ms"] = float(m.group(2))
                        log_["evict_timeout_ms"] = float(m.group(3))
                        log_["evict_over_timeout_ms"] = round(float(m.group(2)) - float(m.group(3)), 3)
                        break
        except OSError:
            pass


def build_go(build):
    """Builds the Go subscribers (bench/go, CGO_ENABLED=0 as a Go user of the
    client builds them) into BUILD; go's own cache makes a warm build take a
    second or two, a cold one (module cache empty) a minute or more. Returns
    the set of systems that could not be built, with the reason logged."""
    gobin = shutil.which(os.environ.get("GO", "go"))
    if not gobin:
        log("no Go toolchain: the Go systems are skipped")
        return set(GO_BIN)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "go")
    env = dict(os.environ, CGO_ENABLED="0")
    missing = set()
    t = time.time()
    for binary in sorted(set(GO_BIN.values())):
        r = subprocess.run([gobin, "build", "-o", os.path.abspath(os.path.join(build, binary)),
                            "./cmd/" + binary], cwd=src, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            log(f"go build {binary} failed: {r.stderr.strip()[-500:]}")
            missing |= {s for s, b in GO_BIN.items() if b == binary}
    log(f"Go subscribers built in {time.time() - t:.1f} s")
    return missing


def matrix(quick, only):
    pts = []

    def add(system, subs, rate, size, seconds, keys=100, why=None, groups=1, ref=None):
        if only and system not in only:
            return
        pts.append({"system": system, "subs": subs, "rate": rate, "size": size, "keys": keys,
                    "seconds": seconds, "group": why, "groups": groups, **({"ref": ref} if ref else {})})

    # The systems that came before the Go peers keep their points; the Go
    # peers (NEW) run at fewer, so that make bench stays within 15 minutes.
    old = [s for s in SYSTEMS if s not in NEW]
    if quick:
        for n in (1, 64):
            for s in old:
                add(s, n, 1000, 100, 2, why="quick")
                # The Go client right after the C library, at both points
                # (its channel API at 64: make bench QUICK=1 within 120 s).
                if s == "topohub":
                    for g in GO_CLIENT:
                        if g == "topohub-go" or n == 64:
                            add(g, n, 1000, 100, 2, why="quick")
        # One point of each other new peer.
        for s in NEW:
            if s not in GO_CLIENT:
                add(s, 64, 1000, 100, 1, why="quick")
        return pts
    # The default run must fit in 15 minutes on 2 cores (make bench); the
    # points below take about 9 minutes with settling between them.
    # 100 B: the full N sweep at 1,000/s, for every system (the Go peers to 64:
    # 256 Go processes start for tens of seconds on 2 cores).
    for n in (1, 8, 64, 256):
        for s in SYSTEMS:
            if n <= 64 or s not in NEW:
                add(s, n, 1000, 100, 3, why="n_sweep")
    # 100 B: the rate sweep at N = 64 (topohub-nospin only in the N sweep:
    # it shows what the library's spin costs, once; the Go peers at 10,000/s).
    for rate, secs in ((100, 5), (10000, 2)):
        for s in SYSTEMS:
            if s != "topohub-nospin" and (rate > 1000 or s not in NEW):
                add(s, 64, rate, 100, secs, why="rate_sweep")
    # 100 B: the ends of the N x rate grid, topohub only; 1,024 subscribers at 100/s.
    for rate, secs in ((100, 5), (10000, 2)):
        add("topohub", 256, rate, 100, secs, why="grid")
    add("topohub", 1024, 100, 100, 5, why="many")
    # The sparse scenario: 256 subscribers, each watching its own group of
    # keys (bench_e2e.h), against the per-process decoders (C subscribers).
    # Its reference, the 1-subscriber point, again right before it (the
    # report's target takes this one): the N sweep's ran minutes earlier, and
    # the heavy points between change the host. 6 s: each subscriber has 4
    # updates a second, and its first wake-ups must not be its p99.
    add("topohub", 1, 1000, 100, 6, why="sparse", ref="sparse")
    for s in ("topohub", "decoder"):
        add(s, 256, 1000, 100, 6, keys=512, why="sparse", groups=256)
    # Larger values: fewer points (of the Go peers, the client and etcd's).
    for s in SYSTEMS:
        if s != "topohub-nospin" and s not in ("vitess-etcd2topo", "vitess-topohub"):
            add(s, 64, 1000, 10240, 3, why="size_10k")
    for s in old:
        if s != "topohub-nospin":
            add(s, 8, 100, 1 << 20, 3, keys=16, why="size_1m")
    return pts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="-")
    ap.add_argument("--only", default="", help="comma-separated systems")
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--faults-only", action="store_true")
    ap.add_argument("--spin-ns", type=int, default=None,
                    help="topohub subscribers: spin this long before sleeping (default: the library's)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    ap.add_argument("--point", action="append", default=[],
                    help="only this point of the matrix, SYSTEM:SUBS:RATE[:SIZE[:SECONDS[:GROUPS]]] (repeatable), "
                         "no faults; GROUPS > 1: the sparse scenario")
    ap.add_argument("--vitess", default="",
                    help="only the Vitess-shaped scenario, at these process counts (comma-separated), no faults")
    ap.add_argument("--self-check", action="store_true",
                    help="a few seconds: 2 subscribers of each available system; exit 1 on any failure")
    args = ap.parse_args()
    only = set(x for x in args.only.split(",") if x)
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    have_hub = os.path.exists(os.path.join(args.build, "topohubd")) and \
        os.path.exists(os.path.join(args.build, "libtopohub.so"))
    have_etcd = shutil.which("etcd") is not None
    no_go = build_go(args.build)
    if args.self_check:
        pts = [{"system": s, "subs": 2, "rate": 200, "size": 100, "keys": 10, "seconds": 1, "group": "self_check"}
               for s in SYSTEMS if not only or s in only]
    elif args.point:
        pts = []
        for spec in args.point:
            f = spec.split(":")
            g = int(f[5]) if len(f) > 5 else 1
            pts.append({"system": f[0], "subs": int(f[1]), "rate": int(f[2]), "size": int(f[3]) if len(f) > 3 else 100,
                        "keys": max(100, 2 * g), "seconds": float(f[4]) if len(f) > 4 else 3, "groups": g,
                        "group": "point"})
    elif args.faults_only or args.vitess:
        pts = []
    else:
        pts = matrix(args.quick, only)
    if not have_hub:
        pts = [p for p in pts if p["system"] not in HUB_SYSTEMS]
        log("no topohubd/libtopohub.so in", args.build, ": topohub and socket points skipped")
    if not have_etcd:
        pts = [p for p in pts if p["system"] not in ETCD_SYSTEMS]
        log("no etcd binary: etcd points skipped")
    pts = [p for p in pts if p["system"] not in no_go]
    t_start = time.time()
    env = Env(args)
    failures = 0

    def emit(rec):
        out.write(json.dumps(rec) + "\n")
        out.flush()

    def timed_point(pt, group, fault=None, **extra):
        t = time.time()
        rec = run_point(env, pt, fault=fault)
        rec.update(group=group, **extra)
        rec["wall_s"] = round(time.time() - t, 2)
        return rec

    run_cpu0 = cpu_times()
    try:
        emit({"name": "e2e_run", "quick": args.quick, "server": env.db.info["version"], "loadavg": loadavg(),
              "mysql_startup_ms": env.db.info["startup_ms"], "grace_s": GRACE_S})
        if have_hub and not args.self_check:
            # The first point of a run pays for cold caches (the server's buffer
            # pool, the hub's first ring pages, the page cache of the binaries):
            # one unreported point first, so that it is nobody's result.
            run_point(env, {"system": "topohub", "subs": 8, "rate": 1000, "size": 100, "keys": 100,
                            "seconds": 1, "group": "warmup"})
        measured = []  # (point, fault, record), for the re-runs below
        for pt in pts:
            rec = timed_point(pt, pt["group"])
            emit(rec)
            measured.append((pt, None, rec))
            if args.self_check:
                # The harness itself must work: every update delivered to every
                # subscriber (the mysqltopo-style peer may reorder and coalesce:
                # its semantics; it must deliver something).
                if pt["system"] == "mysqltopo":
                    bad = rec.get("error") or not rec.get("delivered") or rec.get("errors")
                else:
                    bad = rec.get("error") or rec.get("delivered") != rec.get("expected") or rec.get("errors") \
                        or not rec.get("ok")
            else:
                bad = not rec.get("ok") and not rec.get("skipped")
            failures += 1 if bad else 0
            log(f"{pt['system']:9} n={pt['subs']:<3} rate={pt['rate']:<5} size={pt['size']:<7} "
                f"p99={rec.get('p99_ns', 0) / 1e3:9.1f} us  delivered={rec.get('delivered', 0)}/"
                f"{rec.get('expected', 0)} ok={rec.get('ok')} {rec.get('error', rec.get('skipped', ''))}"
                f" ({rec['wall_s']} s)")
        just = tuple(int(x) for x in args.vitess.split(",") if x)
        for vp, fault in ([] if args.point else vitess_points(args.quick, only, args.self_check, just)):
            gosys = vitess_go_system(vp["system"])
            if gosys in no_go or (gosys == "vitess-etcd2topo" and not have_etcd) or \
                    (gosys == "vitess-topohub" and not have_hub) or args.faults_only:
                continue
            t = time.time()
            rec = run_vitess_point(env, vp, fault)
            rec.update(group="vitess", wall_s=round(time.time() - t, 2))
            emit(rec)
            failures += 0 if rec.get("ok") else 1
            lw, pb = rec.get("last_watcher", {}), rec.get("per_burst", {})
            log(f"vitess {vp['system']:16} n={vp['subs']:<3} {fault or '':4} last-watcher p50/p99/max="
                f"{lw.get('p50_ns', 0) / 1e3:.0f}/{lw.get('p99_ns', 0) / 1e3:.0f}/{lw.get('max_ns', 0) / 1e3:.0f} us "
                f"CPU/change={rec.get('cpu_us_per_change')} us missing={rec.get('missing')} ok={rec.get('ok')} "
                f"{rec.get('error', '')} ({rec['wall_s']} s)")
        if have_hub and not args.no_faults and not args.self_check and not args.vitess and not args.point and \
                (not only or "topohub" in only):
            n = 8 if args.quick else 64
            secs = 3 if args.quick else 6
            base = {"system": "topohub", "subs": n, "rate": 1000, "size": 100, "keys": 100, "seconds": secs,
                    "timeout_ms": 100}
            # A p99 moves by tens of percent from one run to the next on this
            # machine: "the stop moves the others' p99 by at most 10%" is judged
            # on alternating runs with and without the stop (medians), not on
            # one pair.
            pairs = 1 if args.quick else 3
            order = [f for _ in range(pairs) for f in (None, "stop")] + ["kill"]

            def fault_trio(first=None):
                # The fault runs compare with each other: they are re-run together.
                seen = {}
                for fault in order:
                    seen[fault] = seen.get(fault, -1) + 1
                    again = {} if first is None else {"rerun_after_steal": first}
                    rec = timed_point(base, "faults", fault=fault or "none", repeat=seen[fault], timeout_ms=100,
                                      **again)
                    emit(rec)
                    measured.append((base, fault or "none", rec))
                    log(f"fault={fault or 'none':5} p99(others)={rec.get('p99_ns', 0) / 1e3:.1f} us "
                        f"rate={rec.get('writer', {}).get('achieved_rate')} evict_age={rec.get('evict_age_ms')} ms "
                        f"converge={rec.get('converge_ms')} ms reclaim={rec.get('reclaim_ms')} ms "
                        f"steal={rec.get('host_steal')}")
            fault_trio()
        if not args.self_check:
            # Points the host took a lot of CPU from (steal) measured the host:
            # run each once more while the time budget allows. Both records stay
            # in the JSON lines; the report uses the later one and says so.
            budget_s = 65 if args.quick else 690
            trio = [m for m in measured if m[1]]
            for pt, fault, rec in [m for m in measured if not m[1]]:
                if time.time() - t_start > budget_s:
                    break
                if rec.get("host_steal", 0) > RERUN_STEAL:
                    again = timed_point(pt, pt["group"], rerun_after_steal=rec["host_steal"])
                    emit(again)
                    log(f"re-run (host steal {rec['host_steal']:.0%}): {pt['system']} n={pt['subs']} "
                        f"rate={pt['rate']} size={pt['size']} p99={again.get('p99_ns', 0) / 1e3:.1f} us "
                        f"steal={again.get('host_steal')}")
            worst = max((m[2].get("host_steal", 0) for m in trio), default=0)
            if worst > RERUN_STEAL and time.time() - t_start < budget_s:
                fault_trio(first=worst)
    finally:
        env.close()
    emit({"name": "e2e_done", "wall_s": round(time.time() - t_start, 1), "points": len(pts), "loadavg": loadavg(),
          "failures": failures, "host_steal": steal_share(run_cpu0, cpu_times())})
    if args.self_check and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
