# SPDX-License-Identifier: Apache-2.0
"""chaos.py: the topohub chaos harness (make chaos; tests/chaos/run.sh).

A primary and two GTID replicas (private mariadbd servers), a topohubd on
each of them (its own socket and subscribers; each hub's source list names
the others after its own), N subscriber processes per hub (subscriber.py,
the Python binding) with random churning watches, a seeded random workload
on the primary, and seeded faults; a primary failover in the middle (a
replica promoted, the other re-pointed, the old primary gone).

Checked, without trusting the code under test:
  online, in every subscriber: subscriber.py's sequence checks;
  at the end: every live watch's view equals the tables (after sync and the
    read-your-writes wait of topohub.h);
  the gap check: per continuity session (a watch's events between its
    initial state or a SYNCED and the next RESYNC, its end or the run's end),
    every committed transaction between the session's first and last
    delivered transactions (GTID order of the servers' binlogs, read by
    binlog_truth.py with mariadb-binlog) that changed a key under the watch
    was delivered, with its value and GTID; no transaction in there was a
    statement the hub cannot decode (DDL, statement-logged DML) without a
    RESYNC; every delivered change was committed (its GTID holds that key's
    last change with that value); every value a snapshot delivered was
    committed for that key at some point.

A failing run prints its seed and fault list; `--seed S --faults LIST`
repeats the run's choices (workload statements, fault kinds and times;
process scheduling is not repeatable). Exit 0 clean, 1 violations, 2 setup.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import binlog_truth  # noqa: E402
import cluster  # noqa: E402

ALL_FAULTS = ["sub_stop", "sub_kill", "hub_kill", "hub_term", "db_kill", "both", "ddl", "stmt", "lap", "failover"]


def vhash(b):
    return hashlib.blake2b(b, digest_size=8).hexdigest()


def under(path, recursive, key):
    if not recursive:
        return key == path
    p = path.rstrip("/")
    return p == "" or key == p or key.startswith(p + "/")


def make_keys():
    keys = []
    for a in ("ks0", "ks1", "ks10", "ks2"):
        keys.append("/" + a)
        for b in ("s0", "s1", "s1x"):
            keys.append("/%s/%s" % (a, b))
            for c in ("n0", "n1", "n2"):
                keys.append("/%s/%s/%s" % (a, b, c))
    return keys


def log(msg):
    print("[chaos %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Workload(threading.Thread):
    """Seeded random transactions on the current primary."""

    TABLES = ("topo_data", "topo_locks", "topo_elections")

    def __init__(self, run, seed):
        super().__init__(daemon=True)
        self.run_ = run
        self.rng = random.Random(seed)
        self.keys = make_keys()
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.idle = threading.Event()
        self.committed = 0
        self.rolled_back = 0
        self.errors = 0
        self.big = 0
        self.conn = None
        self.conn_of = None

    def value(self, table, allow_big=True):
        r = self.rng.random()
        if r < 0.08:
            return None
        if r < 0.16:
            return b""
        if table == 0 and allow_big and r < 0.17:
            self.big += 1
            return bytes([0x41 + self.rng.randrange(26)]) * self.rng.randint(300000, 400000)
        n = self.rng.randint(1, 40)
        if table == 0:
            alphabet = [b for b in range(256) if b != 0x5C]  # no backslash (binlog_truth.py)
        else:
            alphabet = [b for b in range(1, 128) if b != 0x5C]  # TEXT: valid utf8
        return bytes(self.rng.choice(alphabet) for _ in range(n))

    def key(self):
        return self.rng.choice(self.keys)

    def stmt(self, cur):
        t = self.rng.randrange(3)
        tbl = "topo." + self.TABLES[t]
        kc = "name" if t == 2 else "path"
        k = self.key()
        r = self.rng.random()
        if t == 0:
            cols, vals = "(path, data, version)", (k, self.value(0), 1)
            ph = "(%s, %s, %s)"
            upd = "data = VALUES(data), version = version + 1"
            setv = "data = %s, version = version + 1"
        elif t == 1:
            cols, vals = "(path, contents, expires_at)", (k, self.value(1), )
            ph = "(%s, %s, NOW())"
            upd = "contents = VALUES(contents)"
            setv = "contents = %s"
        else:
            cols, vals = "(name, leader_id, contents, expires_at)", (k, self.value(2, False) or b"L", self.value(2))
            ph = "(%s, %s, %s, NOW())"
            upd = "leader_id = VALUES(leader_id), contents = VALUES(contents)"
            setv = "contents = %s"
        if r < 0.2:
            cur.execute("INSERT INTO %s %s VALUES %s" % (tbl, cols, ph), vals)
        elif r < 0.3:
            cur.execute("INSERT IGNORE INTO %s %s VALUES %s" % (tbl, cols, ph), vals)
        elif r < 0.45:
            cur.execute("INSERT INTO %s %s VALUES %s ON DUPLICATE KEY UPDATE %s" % (tbl, cols, ph, upd), vals)
        elif r < 0.55:
            cur.execute("REPLACE INTO %s %s VALUES %s" % (tbl, cols, ph), vals)
        elif r < 0.7:
            cur.execute("UPDATE %s SET %s WHERE %s = %%s" % (tbl, setv, kc), (self.value(t, t == 0), k))
        elif r < 0.8:
            cur.execute("DELETE FROM %s WHERE %s = %%s OR %s LIKE %%s" % (tbl, kc, kc), (k, k + "/%"))
        elif r < 0.88:
            cur.execute("UPDATE IGNORE %s SET %s = %%s WHERE %s = %%s" % (tbl, kc, kc), (self.key(), k))
        elif r < 0.94:
            # several rows, the same key more than once in the transaction
            for _ in range(self.rng.randint(2, 4)):
                cur.execute("INSERT INTO %s %s VALUES %s ON DUPLICATE KEY UPDATE %s" % (tbl, cols, ph, upd), vals)
                vals = (vals[0],) + tuple(self.value(t, False) if isinstance(v, (bytes, type(None))) and i > 0
                                          else v for i, v in enumerate(vals[1:], 1))
                if t == 2:
                    vals = (vals[0], vals[1] or b"L", vals[2])
        else:
            cur.execute("DELETE FROM %s WHERE %s = %%s" % (tbl, kc), (k,))

    def txn(self, conn):
        cur = conn.cursor()
        cur.execute("BEGIN")
        n = self.rng.randint(1, 6)
        sp = self.rng.random() < 0.15
        for i in range(n):
            if sp and i == n // 2:
                cur.execute("SAVEPOINT sp1")
            try:
                self.stmt(cur)
            except Exception as e:
                if not _sql_user_error(e):
                    raise
        if sp and self.rng.random() < 0.6:
            cur.execute("ROLLBACK TO SAVEPOINT sp1")
        if self.rng.random() < 0.1:
            cur.execute("ROLLBACK")
            self.rolled_back += 1
        else:
            cur.execute("COMMIT")
            self.committed += 1

    def run(self):
        backoff = 0.05
        while not self.stop.is_set():
            if self.paused.is_set():
                self.idle.set()
                time.sleep(0.02)
                continue
            self.idle.clear()
            prim = self.run_.primary
            try:
                if self.conn is None or self.conn_of is not prim:
                    if self.conn is not None:
                        try:
                            self.conn.close()
                        except Exception:
                            pass
                    self.conn = prim.connect()
                    self.conn_of = prim
                self.txn(self.conn)
                backoff = 0.05
                time.sleep(self.rng.random() * 0.02)
            except Exception:
                self.errors += 1
                try:
                    self.conn.close()
                except Exception:
                    pass
                self.conn = None
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
        self.idle.set()


def _sql_user_error(e):
    import pymysql
    return isinstance(e, (pymysql.err.IntegrityError, pymysql.err.DataError)) or (
        isinstance(e, pymysql.err.OperationalError) and e.args and e.args[0] in (1048, 1364, 1406))


class SubProc:
    def __init__(self, run, hub, sid):
        self.run_ = run
        self.hub = hub
        self.id = sid
        self.inc = 0
        self.proc = None

    def start(self):
        r = self.run_
        seed = (r.seed * 1000003 + self.id * 7919 + self.inc) & 0x7FFFFFFF
        errf = open(os.path.join(r.out, "sub-%d-%d.err" % (self.id, self.inc)), "w")
        self.proc = subprocess.Popen(
            [r.python, os.path.join(HERE, "subscriber.py"), "--socket", self.hub.socket, "--seed", str(seed),
             "--id", str(self.id), "--incarnation", str(self.inc), "--out", r.out,
             "--final", os.path.join(r.out, "final.json"), "--timeout-ms", str(r.timeouts[self.id]),
             "--keys", ",".join(make_keys())] + [[], ["--fd"], ["--thread"]][self.id % 3],
            stdout=errf, stderr=errf, env=r.sub_env)
        errf.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Run:
    def __init__(self, a):
        self.a = a
        self.seed = a.seed
        self.build = os.path.abspath(a.build)
        self.python = sys.executable
        self.faults = [f for f in a.faults.split(",") if f] if a.faults else list(ALL_FAULTS)
        self.out = a.dir or "/tmp/topohub-chaos-%d-%d" % (self.seed, os.getpid())
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        self.violations = []
        self.injected = []
        self.servers = []
        self.hubs = []
        self.subs = []
        self.primary = None
        self.failed_over = False
        self.frng = random.Random(self.seed ^ 0x5EED)
        crng = random.Random(self.seed ^ 0xC0F)
        self.ring = a.ring or crng.choice(("256K", "1M", "1M", "4M"))
        self.timeouts = [crng.choice((100, 300, 300, 1000)) for _ in range(64)]
        self.sub_env = dict(os.environ, TOPOHUB_LIB=os.path.join(self.build, "libtopohub.so"),
                            PYTHONDONTWRITEBYTECODE="1")
        if os.environ.get("SAN") == "address":
            asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                                  text=True).stdout.strip()
            self.sub_env.update(LD_PRELOAD=asan, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0")

    def viol(self, msg):
        self.violations.append(msg)
        log("VIOLATION " + msg)

    # ---- setup ----
    def setup(self):
        tmpl = cluster.template(os.environ.get("TMPDIR", "/tmp"))
        nrep = self.a.replicas
        for i in range(1 + nrep):
            s = cluster.Server(self.out, "db%d" % i, i + 1, tmpl)
            s.start()
            s.setup_accounts()
            self.servers.append(s)
        self.primary = self.servers[0]
        for q in cluster.SCHEMA_SQL:
            self.primary.sql(q)
        for r in self.servers[1:]:
            r.replicate_from(self.primary)
        self.wait_replicas()
        for i, s in enumerate(self.servers):
            srcs = [s] + [x for x in self.servers if x is not s]
            h = cluster.Hub(self.out, "hub%d" % i, self.build, srcs, ring=self.ring)
            h.start()
            self.hubs.append(h)
        sid = 0
        for h in self.hubs:
            for _ in range(self.a.subs):
                sp = SubProc(self, h, sid)
                sp.start()
                self.subs.append(sp)
                sid += 1

    def wait_replicas(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            try:
                want = self.primary.gtid_pos()
                if all(r.gtid_pos() == want for r in self.servers if r is not self.primary and r.alive()):
                    return True
            except Exception:
                pass
            time.sleep(0.1)
        self.viol("replicas did not catch up with the primary in %ds (not topohub's fault; the run is void)" %
                  timeout)
        return False

    # ---- faults ----
    def check_alive(self):
        for h in self.hubs:
            if not h.alive():
                self.viol("%s exited by itself (status %s); see %s" % (h.name, h.proc.returncode, h.log))
                h.start()
        for s in self.subs:
            if not s.alive():
                self.viol("subscriber %d.%d exited by itself (status %s)" % (s.id, s.inc, s.proc.returncode))
                s.inc += 1
                s.start()

    @staticmethod
    def kill(proc, sig):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass  # it died by itself: check_alive() reports it

    def fault(self, kind):
        rng = self.frng
        self.injected.append(kind)
        if kind == "sub_stop":
            s = rng.choice(self.subs)
            self.kill(s.proc, signal.SIGSTOP)
            time.sleep(self.timeouts[s.id] / 1000.0 + rng.uniform(0.1, 1.0))
            self.kill(s.proc, signal.SIGCONT)
        elif kind == "sub_kill":
            s = rng.choice(self.subs)
            s.proc.kill()
            s.proc.wait()
            s.inc += 1
            s.start()
        elif kind in ("hub_kill", "hub_term"):
            h = rng.choice(self.hubs)
            if kind == "hub_kill":
                h.kill9()
            else:
                st = h.term()
                if st not in (0, None):
                    self.viol("%s: SIGTERM exit status %s" % (h.name, st))
            time.sleep(rng.uniform(0, 1.0))
            h.start()
        elif kind == "db_kill":
            s = rng.choice([x for x in self.servers if x.alive()])
            s.kill9()
            time.sleep(rng.uniform(0.2, 1.5))
            s.start()
        elif kind == "both":
            i = rng.randrange(len(self.hubs))
            h, s = self.hubs[i], self.servers[i]
            h.kill9()
            if s.alive():
                s.kill9()
            time.sleep(rng.uniform(0.2, 1.0))
            if s is not self.dead_primary():
                s.start()
            h.start()
        elif kind == "ddl":
            t = rng.choice(("topo_data", "topo_locks", "topo_elections"))
            r = rng.random()
            col = "chaos_%d" % rng.randrange(1000)
            if r < 0.3 and t != "topo_data":
                q = ["TRUNCATE topo.%s" % t]
            elif r < 0.15:
                q = ["TRUNCATE topo.%s" % t]
            else:
                q = ["ALTER TABLE topo.%s ADD COLUMN %s INT NULL" % (t, col),
                     "ALTER TABLE topo.%s DROP COLUMN %s" % (t, col)]
            for x in q:
                self.primary_sql([x])
                time.sleep(rng.uniform(0, 0.5))
        elif kind == "stmt":
            p = rng.choice(make_keys())
            n = rng.randrange(100000)
            if rng.random() < 0.5:
                q = "UPDATE topo.topo_data SET data = 'stmt-%d' WHERE path = '%s' OR path LIKE '%s/%%'" % (n, p, p)
            else:
                q = "DELETE FROM topo.topo_locks WHERE path = '%s' OR path LIKE '%s/%%'" % (p, p)
            self.primary_sql(["SET SESSION binlog_format = STATEMENT", q])
        elif kind == "lap":
            # a subscriber stopped for less than its timeout while more than
            # the ring's worth of changes is written: overtaken, not evicted
            s = rng.choice(self.subs)
            self.kill(s.proc, signal.SIGSTOP)
            try:
                big = b"L" * 200000
                qs = []
                for i in range(8):
                    qs.append(("INSERT INTO topo.topo_data (path, data) VALUES (%s, %s) "
                               "ON DUPLICATE KEY UPDATE data = VALUES(data)", ("/lap/%d" % i, big + bytes([65 + i]))))
                self.primary_sql(qs)
            finally:
                time.sleep(0.05)
                self.kill(s.proc, signal.SIGCONT)
        elif kind == "failover":
            self.failover()

    def dead_primary(self):
        return self.servers[0] if self.failed_over else None

    def primary_sql(self, qs):
        for attempt in range(50):
            try:
                c = self.primary.connect()
                try:
                    with c.cursor() as cur:
                        for q in qs:
                            if isinstance(q, tuple):
                                cur.execute(q[0], q[1])
                            else:
                                cur.execute(q)
                finally:
                    c.close()
                return
            except Exception as e:
                if _sql_user_error(e):
                    return
                time.sleep(0.1)

    def failover(self):
        if self.failed_over or len(self.servers) < 3:
            return
        log("failover: pausing the workload")
        self.work.paused.set()
        self.work.idle.wait(30)
        for s in self.servers:
            if not s.alive():
                s.start()
        self.wait_replicas()
        old, new, other = self.servers[0], self.servers[1], self.servers[2]
        old.kill9()
        new.promote()
        other.replicate_from(new)
        self.primary = new
        self.failed_over = True
        self.work.paused.clear()
        log("failover: %s is the primary, %s replicates from it, %s is gone" % (new.name, other.name, old.name))

    # ---- the run ----
    def go(self):
        t0 = time.time()
        self.setup()
        log("set up in %.1fs: %d servers, %d hubs, %d subscribers; run folder %s" %
            (time.time() - t0, len(self.servers), len(self.hubs), len(self.subs), self.out))
        self.work = Workload(self, self.seed)
        self.work.start()
        start = time.time()
        end = start + self.a.duration
        fo_at = start + self.a.duration * 0.5 if "failover" in self.faults and self.a.replicas >= 2 else None
        others = [f for f in self.faults if f != "failover"]
        next_at = start + self.frng.uniform(1.0, 3.0)
        while time.time() < end:
            time.sleep(0.05)
            self.check_alive()
            if fo_at and time.time() >= fo_at:
                fo_at = None
                self.fault("failover")
                continue
            if others and time.time() >= next_at:
                k = self.frng.choice(others)
                log("fault %s" % k)
                try:
                    self.fault(k)
                except Exception:
                    self.viol("harness: fault %s raised %s" % (k, traceback.format_exc()))
                next_at = time.time() + self.frng.uniform(1.0, 4.0)
        self.work.stop.set()
        self.work.join(30)
        log("workload: %d committed, %d rolled back, %d errors (server down), %d big values" %
            (self.work.committed, self.work.rolled_back, self.work.errors, self.work.big))
        self.finish()

    def finish(self):
        for s in self.servers:
            if not s.alive() and s is not self.dead_primary():
                s.start()
        for h in self.hubs:
            if not h.alive():
                h.start()
        self.check_alive()
        self.wait_replicas()
        gtid = self.primary.gtid_pos()
        with open(os.path.join(self.out, "final.json.tmp"), "w") as f:
            json.dump({"gtid": gtid}, f)
        os.rename(os.path.join(self.out, "final.json.tmp"), os.path.join(self.out, "final.json"))
        # The subscribers see final.json (a file, not a signal: one restarted
        # a moment ago may not have installed a handler yet).
        for s in self.subs:
            try:
                s.proc.wait(150)
            except subprocess.TimeoutExpired:
                self.viol("subscriber %d did not finish in 150 s" % s.id)
                s.proc.kill()
            if s.proc.returncode not in (0, None):
                self.viol("subscriber %d exited %s; see %s/sub-%d-%d.err" % (s.id, s.proc.returncode, self.out,
                                                                             s.id, s.inc))
        for fn in sorted(os.listdir(self.out)):
            if fn.startswith("sub-") and fn.endswith(".err"):
                t = open(os.path.join(self.out, fn), errors="replace").read()
                for needle in ("Traceback", "Sanitizer", "runtime error:"):
                    if needle in t:
                        self.viol("%s holds a %s report: %s" % (fn, needle, t[t.index(needle):][:300]))
                        break
        self.tables = self.read_tables()
        for h in self.hubs:
            st = h.term()
            if st not in (0, None):
                self.viol("%s: SIGTERM exit status %s at the end" % (h.name, st))
            if h.sanitizer_report():
                self.viol("%s: sanitizer report in %s" % (h.name, h.log))
        with open(os.path.join(self.out, "tables.json"), "w") as f:
            json.dump([[t, k, v] for (t, k), v in self.tables.items()], f)
        for s in self.servers:
            s.stop()
        self.check(self.read_truth([s.binlog_files() for s in self.servers]))

    @staticmethod
    def read_truth(file_lists):
        truth = binlog_truth.Truth()
        per = [binlog_truth.read_server(fl) for fl in file_lists]
        for txns in per:
            truth.add(txns)
        truth.add_skipped(per)
        return truth

    def recheck(self, folder):
        """The offline checks again on a kept run folder (debugging the checker)."""
        self.out = folder
        self.tables = {(t, k): tuple(v) for t, k, v in json.load(open(os.path.join(folder, "tables.json")))}
        lists = []
        for d in sorted(os.listdir(folder)):
            idx = os.path.join(folder, d, "data", "binlog.index")
            if os.path.exists(idx):
                lists.append([os.path.join(folder, d, "data", os.path.basename(x.strip()))
                              for x in open(idx) if x.strip()])
        self.check(self.read_truth(lists))

    def read_tables(self):
        c = self.primary.connect(use_unicode=False)
        out = {}
        try:
            with c.cursor() as cur:
                cur.execute("SET SESSION character_set_results = binary")
                cur.execute("SELECT path, data FROM topo.topo_data")
                for k, v in cur.fetchall():
                    out[(0, k.decode())] = (vhash(v or b""), 1 if v is None else 0)
                cur.execute("SELECT path, contents FROM topo.topo_locks")
                for k, v in cur.fetchall():
                    out[(1, k.decode())] = (vhash(v or b""), 1 if v is None else 0)
                cur.execute("SELECT name, leader_id, contents FROM topo.topo_elections")
                for k, l, v in cur.fetchall():
                    b, _ = binlog_truth.serialise(2, [l, v])
                    out[(2, k.decode())] = (vhash(b), 0)
        finally:
            c.close()
        return out

    # ---- the offline checks ----
    def check(self, truth):
        order = truth.ordered()
        pos = {g: i for i, g in enumerate(order)}
        committed = truth.committed_values()
        chash = {}
        for k, vals in committed.items():
            chash[(k[0], k[1].decode(errors="replace"))] = {(vhash(v), 1 if n else 0) for v, n in vals}
        for g in truth.disagree:
            self.viol("binlogs disagree on the rows of %s" % g)
        self.n_txns = len(order)
        self.rev_of = {}
        self.anchored = 0
        self.gtid_of = {}
        self.resync_causes = {}
        nsess = nchecked = 0
        online = 0
        # Anchors: the GTID of each revision some subscriber of a hub saw on
        # its ring (a revision names one transaction of one hub). A session
        # that starts at SYNCED revision R whose GTID is known holds every
        # transaction after it, not only those after its first delivery.
        self.anchors = {}
        for fn in sorted(os.listdir(self.out)):
            if fn.startswith("events-"):
                self.collect_anchors(os.path.join(self.out, fn))
        for fn in sorted(os.listdir(self.out)):
            if not fn.startswith("events-"):
                continue
            sess, chk, on = self.check_file(os.path.join(self.out, fn), truth, order, pos, chash)
            nsess += sess
            nchecked += chk
            online += on
        # final views
        nviews = 0
        for fn in sorted(os.listdir(self.out)):
            if not fn.startswith("final-"):
                continue
            d = json.load(open(os.path.join(self.out, fn)))
            for v in d["views"]:
                nviews += 1
                want = {k: tuple(x) for (t, k), x in self.tables.items() if t == v["t"] and under(v["p"], v["rec"], k)}
                got = {k: tuple(x) for k, x in v["view"].items()}
                if want != got:
                    miss = sorted(set(want) - set(got))[:5]
                    extra = sorted(set(got) - set(want))[:5]
                    diff = sorted(k for k in set(want) & set(got) if want[k] != got[k])[:5]
                    self.viol("%s watch %s (%s%s t%d): final view differs from the table: missing %s, extra %s, "
                              "different %s" % (fn, v["w"], v["p"], "/..." if v["rec"] else "", v["t"], miss, extra,
                                                diff))
        for fn in sorted(os.listdir(self.out)):
            if fn.startswith("viol-"):
                for m in json.load(open(os.path.join(self.out, fn))):
                    if not any(m in x for x in self.violations):
                        self.viol("online: " + m)
        names = {1: "evicted", 2: "lapped", 3: "hub_lost", 4: "hub", 5: "nomem"}
        causes = ", ".join("%s %d" % (names.get(c, c), n) for c, n in sorted(self.resync_causes.items()))
        self.summary = ("%d transactions in the binlogs, %d sessions gap-checked, %d changes matched, "
                        "%d final views compared; %d sessions checked from their SYNCED revision; RESYNC events by cause: %s" % (
                            self.n_txns, nsess, nchecked, nviews, self.anchored, causes or "none"))
        log(self.summary)

    def collect_anchors(self, path):
        hub = None
        live = {}
        for ln in open(path):
            try:
                r = json.loads(ln)
            except ValueError:
                continue
            if r.get("hdr"):
                hub = r["socket"]
            elif r.get("new"):
                live[r["w"]] = "start"
            elif "k" in r:
                k = r["k"]
                st = live.get(r["w"])
                if k == 5:
                    live[r["w"]] = "resync"
                elif k == 6:
                    live[r["w"]] = "live"
                elif r.get("g") and hub and (k in (1, 2) or (k == 3 and st == "live")):
                    self.anchors.setdefault((hub, r["r"]), r["g"])

    def check_file(self, path, truth, order, pos, chash):
        """Online violations logged, sessions and gap checks of one events file."""
        watches = {}
        nsess = nchk = 0
        online = 0
        name = os.path.basename(path)
        with open(path) as f:
            lines = f.readlines()
        recs = []
        for ln in lines:
            try:
                recs.append(json.loads(ln))
            except ValueError:
                pass  # the last line of a killed subscriber
        hub = None
        for r in recs:
            if r.get("hdr"):
                hub = r["socket"]
                continue
            if "viol" in r:
                online += 1
                if not any(r["viol"] in x for x in self.violations):
                    self.viol("online: " + r["viol"])
                continue
            if r.get("final"):
                continue
            w = r.get("w")
            if r.get("new"):
                watches[w] = {"t": r["t"], "p": r["p"], "rec": r["rec"], "sess": [], "state": "start",
                              "view": {}}
                continue
            ws = watches.get(w)
            if ws is None:
                continue
            if r.get("unw"):
                nsess += self.gap(name, w, ws, truth, order, pos, truncated=True)
                ws["sess"] = []
                ws["start_g"] = None
                continue
            if "k" not in r:
                continue  # {"late": 1}: a callback begun before unwatch() returned (thread mode)
            k = r["k"]
            key = r.get("key")
            if k == 5:
                self.resync_causes[r.get("rs", 0)] = self.resync_causes.get(r.get("rs", 0), 0) + 1
            # one hub publishes a transaction once, at one revision
            g = r.get("g")
            if g and hub and (k in (1, 2) or (k == 3 and ws["state"] == "live")):
                rv = self.rev_of.setdefault((hub, g), r["r"])
                if rv != r["r"]:
                    self.viol("%s watch %d: GTID %s at revision %d, and at %d before (the hub at %s "
                              "published it twice)" % (name, w, g, r["r"], rv, hub))
                gv = self.gtid_of.setdefault((hub, r["r"]), g)
                if gv != g:
                    self.viol("%s watch %d: revision %d names GTID %s and %s" % (name, w, r["r"], g, gv))
            # value checks: nothing delivered that did not commit
            if k in (1, 2):
                hv = (r["h"], r["n"])
                g = r.get("g")
                if g:
                    vs = truth.versions.get(g)
                    if not vs:
                        self.viol("%s watch %d: %s of %s carries GTID %s, which no binlog holds" %
                                  (name, w, "PUT" if k == 2 else "INITIAL", key, g))
                    else:
                        ok = False
                        for t in vs:
                            ch = t.changes.get((ws["t"], key.encode()))
                            if ch and ch[0] == "put" and (vhash(ch[1]), 1 if ch[2] else 0) == hv:
                                ok = True
                        if not ok and not any(t.opaque for t in vs):
                            self.viol("%s watch %d: %s %s with GTID %s: that transaction's last change of the "
                                      "key is not this value" % (name, w, "PUT" if k == 2 else "INITIAL", key, g))
                        nchk += 1
                elif hv not in chash.get((ws["t"], key), ()) and not self.from_statement(truth, ws["t"], key, hv):
                    self.viol("%s watch %d: %s %s delivered a value never committed for that key" %
                              (name, w, "PUT" if k == 2 else "INITIAL", key))
            if k == 3 and r.get("g") and ws["state"] == "live":
                vs = truth.versions.get(r["g"], [])
                if not any(t.opaque or t.changes.get((ws["t"], key.encode()), ("",))[0] == "del" for t in vs):
                    self.viol("%s watch %d: DELETE %s with GTID %s, which does not delete it" %
                              (name, w, key, r["g"]))
            # sessions
            st = ws["state"]
            if k == 5:  # RESYNC: it may cut a transaction (evicted or lapped between its records);
                # the rest is announced by the RESYNC
                nsess += self.gap(name, w, ws, truth, order, pos, truncated=True)
                ws["sess"] = []
                ws["start_g"] = None
                ws["state"] = "resync"
            elif k == 6:  # SYNCED
                ws["state"] = "live"
                ws["sess"] = []
                ws["base"] = dict(ws["view"])
                ws["start_g"] = self.anchors.get((hub, r["r"]))
            elif k == 7:
                nsess += self.gap(name, w, ws, truth, order, pos)
                ws["sess"] = []
                ws["state"] = "done"
            elif k == 1:
                ws["view"][key] = 1
                if not ws["rec"]:
                    ws["state"] = "live"
                    ws["base"] = dict(ws["view"])
            elif k in (2, 3):
                if st == "live" and r.get("g"):
                    ws["sess"].append((r["g"], k, key, (r.get("h"), r.get("n"))))
                if k == 2:
                    ws["view"][key] = 1
                else:
                    ws["view"].pop(key, None)
        for w, ws in watches.items():
            nsess += self.gap(name, w, ws, truth, order, pos, truncated=True)
        return nsess, nchk, online

    def from_statement(self, truth, table, key, hv):
        """Could a statement the binlog holds only as text have set this
        value (a literal of it)? The reload after it brings in values no row
        event carries."""
        if not hasattr(self, "_lits"):
            self._lits = {}
            for vs in truth.versions.values():
                for t in vs:
                    if t.opaque:
                        for tb in t.tables:
                            self._lits.setdefault(tb, set()).update((vhash(x), 0) for x in t.literals)
        return hv in self._lits.get(table, ())

    def gap(self, name, w, ws, truth, order, pos, truncated=False):
        """The gap check of one continuity session: 1 if checked, else 0.
        truncated: the session ended by unwatch (maybe inside a callback, in
        the middle of a transaction's changes), by a RESYNC (an eviction or a
        lap found between two records of a transaction) or by the end of the
        log (a killed subscriber): its last transaction may be incomplete."""
        sess = ws["sess"]
        if truncated and sess:
            lastg = sess[-1][0]
            sess = [x for x in sess if x[0] != lastg]
        if not sess:
            return 0
        table, path, rec = ws["t"], ws["p"], ws["rec"]
        got = {}
        last_i = -1
        for g, k, key, hv in sess:
            i = pos.get(g)
            if i is None:
                self.viol("%s watch %d: delivered GTID %s, which no binlog holds" % (name, w, g))
                return 1
            if i < last_i:
                self.viol("%s watch %d: GTID %s delivered after %s (binlog order goes back)" %
                          (name, w, g, order[last_i]))
            last_i = max(last_i, i)
            if (g, key) in got:
                self.viol("%s watch %d: %s of GTID %s delivered twice in one session" % (name, w, key, g))
            got[(g, key)] = (k, hv)
        lo, hi = pos[sess[0][0]], pos[sess[-1][0]]
        sg = ws.get("start_g")
        if sg in pos and pos[sg] < lo:
            lo = pos[sg] + 1  # the snapshot held sg and everything before it
            self.anchored += 1
        # the view before the session's first transaction: replay from base
        view = dict(ws.get("base", {}))
        for i in range(lo, hi + 1):
            g = order[i]
            vs = truth.versions[g]
            if all(t.opaque and t.tables for t in vs):
                self.viol("%s watch %d (%s t%d): GTID %s is a statement on a watched table (DDL or "
                          "statement-logged DML) inside a continuity session: no RESYNC came" %
                          (name, w, path, table, g))
                continue
            t = max((x for x in vs if not x.opaque), key=lambda x: len(x.changes))
            for (tb, kb), ch in t.changes.items():
                key = kb.decode(errors="replace")
                if tb != table or not under(path, rec, key):
                    continue
                d = got.pop((g, key), None)
                if ch[0] == "put":
                    if d is None:
                        self.viol("%s watch %d (%s%s t%d): GTID %s put %s, never delivered in the session "
                                  "(between %s and %s) and no RESYNC" % (name, w, path, "/..." if rec else "",
                                                                          table, g, key, order[lo], order[hi]))
                    elif d[0] != 2 or d[1] != (vhash(ch[1]), 1 if ch[2] else 0):
                        self.viol("%s watch %d: GTID %s %s delivered as %s with another value" %
                                  (name, w, g, key, d[0]))
                    view[key] = 1
                else:
                    if key in view and d is None:
                        self.viol("%s watch %d (%s t%d): GTID %s deleted %s, never delivered in the session" %
                                  (name, w, path, table, g, key))
                    view.pop(key, None)
        for (g, key), d in got.items():
            self.viol("%s watch %d: GTID %s %s delivered, but that transaction has no such change" %
                      (name, w, g, key))
        return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--build", default="build")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--faults", default=None, help="comma list of " + ",".join(ALL_FAULTS) + " (default all)")
    ap.add_argument("--subs", type=int, default=2, help="subscriber processes per hub")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--ring", default=None, help="ring_capacity of the hubs (default: 256K, 1M or 4M by the seed)")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--record", default=None, help="append a row to this RUNS.md")
    ap.add_argument("--recheck", default=None, help="run the offline checks again on a kept run folder")
    a = ap.parse_args()
    if a.recheck:
        a.seed = a.seed or 0
        run = Run.__new__(Run)
        run.violations = []
        run.recheck(a.recheck)
        sys.exit(1 if run.violations else 0)
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    run = Run(a)
    log("seed %d, duration %gs, faults %s, ring %s, subscriber timeouts %s ms" % (
        a.seed, a.duration, ",".join(run.faults), run.ring,
        ",".join(str(t) for t in run.timeouts[:a.subs * (1 + a.replicas)])))
    rc = 0
    try:
        run.go()
    except Exception:
        traceback.print_exc()
        run.viol("harness error: %s" % traceback.format_exc().splitlines()[-1])
        rc = 2
    finally:
        for s in run.subs:
            if s.alive():
                s.proc.kill()
        for h in run.hubs:
            h.kill9()
        for s in run.servers:
            s.stop()
    from collections import Counter
    inj = Counter(run.injected)
    injs = ", ".join("%s %d" % (k, v) for k, v in sorted(inj.items())) or "none"
    txns = getattr(run, "work", None).committed if getattr(run, "work", None) else 0
    if run.violations:
        rc = rc or 1
        log("FAILED: %d violations; seed %d, faults %s; repeat: tests/chaos/run.sh --seed %d --duration %g "
            "--faults %s; run folder kept: %s" % (len(run.violations), a.seed, ",".join(run.faults), a.seed,
                                                  a.duration, ",".join(run.faults), run.out))
        for v in run.violations[:30]:
            print("  " + v.splitlines()[0][:400])
    else:
        log("PASSED: seed %d, %gs, %d transactions committed, faults injected: %s" % (a.seed, a.duration, txns,
                                                                                      injs))
        if not a.keep:
            shutil.rmtree(run.out, ignore_errors=True)
    if a.record:
        with open(a.record, "a") as f:
            f.write("| %s | %d | %gs | %d | %s | %d | %s |\n" % (
                time.strftime("%Y-%m-%d %H:%M"), a.seed, a.duration, txns, injs, len(run.violations),
                getattr(run, "summary", "") + ("; " + "; ".join(v.splitlines()[0][:150] for v in
                                                               run.violations[:3]) if run.violations else "")))
    sys.exit(rc)


if __name__ == "__main__":
    main()
