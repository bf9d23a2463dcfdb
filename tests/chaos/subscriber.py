# SPDX-License-Identifier: Apache-2.0
"""subscriber.py: one chaos subscriber process (the Python binding).

Random watches on the three tables that churn (unwatch and watch again,
re-watch after ENDED, sometimes from inside the callback), every event checked
online against plugins/topohub.h, and logged (one JSON line per event) for
the offline checks of chaos.py (gap check against the binlog, final views).

Online checks: keys under the watch on component boundaries; per path
revisions strictly growing over the watch's life; the event sequences
(recursive: INITIAL* in key order, SYNCED, then PUT/DELETE/RESYNC, after
RESYNC PUT/DELETE* then SYNCED; exact: INITIAL or NOT_FOUND+ENDED, then
PUT, DELETE+ENDED, RESYNC then PUT/DELETE+ENDED/SYNCED); a DELETE only for a
key the watch holds; nothing after ENDED or unwatch; the free function
exactly once per watch, after its last callback.

When the file --final appears (or on SIGUSR1): stop churning, read the GTID position from it, sync to it,
dispatch until stats().revision reaches sync's revision (the read-your-writes
wait of topohub.h) and every watch is synced, write the views, close, check
the free functions, exit.
"""

import argparse
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "plugins", "python"))
import topohub as th  # noqa: E402

INITIAL, PUT, DELETE, NOT_FOUND, RESYNC, SYNCED, ENDED = range(1, 8)


def vhash(b):
    return hashlib.blake2b(b, digest_size=8).hexdigest()


def under(path, recursive, key):
    if not recursive:
        return key == path
    p = path.rstrip("/")
    if p == "":
        return True
    return key == p or key.startswith(p + "/")


class W:
    def __init__(self, wid, table, path, recursive):
        self.id = wid
        self.table = table
        self.path = path
        self.recursive = recursive
        self.state = "start"      # start, live, resync, ended(awaiting ENDED), done
        self.view = {}
        self.lastrev = {}
        self.last_initial = None
        self.synced_rev = 0
        self.dead = False         # unwatched or ENDED: no callback may come
        self.frees = 0
        self.fkey = None
        self.pending_end = False  # exact watch: DELETE seen, ENDED must follow
        self.unw_main = False     # thread mode: unwatched on the main thread
        self.late = False         # ... and the one callback that may have begun before came
        self.enoent = False       # ... and unwatch() said it had ended: ENDED must come


class Sub:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.viol = []
        self.log = open(os.path.join(a.out, "events-%d-%d.jsonl" % (a.id, a.incarnation)), "w")
        self.watches = {}
        self.by_fkey = {}
        self.final = False
        self.hub = None
        self.keys = a.keys.split(",")
        self.in_cb = 0
        self.rewatch = []
        self.events = 0
        self.lock = threading.RLock()
        self.closing = False
        self.write({"hdr": 1, "socket": a.socket, "id": a.id, "inc": a.incarnation})

    def v(self, w, msg):
        s = "sub %d.%d watch %s (%s%s t%d): %s" % (self.a.id, self.a.incarnation, w.id if w else "-",
                                                  w.path if w else "", "/..." if w and w.recursive else "",
                                                  w.table if w else -1, msg)
        self.viol.append(s)
        self.write({"viol": s})
        self.log.flush()
        print("VIOLATION " + s, file=sys.stderr, flush=True)

    def write(self, obj):
        self.log.write(json.dumps(obj, separators=(",", ":")) + "\n")

    # ---- opening, with a hub that may be down ----
    def open(self):
        end = time.time() + 120
        while True:
            try:
                hub = SubHub(self, self.a.socket, timeout=self.a.timeout_ms / 1000.0,
                             name="chaos-%d" % self.a.id, wait_mode=th.WAIT_FD if self.a.fd else th.WAIT_FUTEX,
                             thread=self.a.thread)
                self.hub = hub
                return
            except th.Error:
                if time.time() > end:
                    raise
                time.sleep(0.1)

    def random_watch(self):
        table = self.rng.choice((0, 0, 0, 1, 2))
        recursive = self.rng.random() < 0.6
        k = self.rng.choice(self.keys)
        parts = k.split("/")[1:]
        if recursive:
            depth = self.rng.randint(0, len(parts))
            path = "/" + "/".join(parts[:depth])
            if self.rng.random() < 0.2:
                path += "/"
        else:
            path = k
        self.add_watch(table, path, recursive)

    def add_watch(self, table, path, recursive):
        if self.final:
            return
        fn = None
        box = []

        def cb(ev):
            # the library's thread may call before watch() returned: box is
            # filled under the lock, which add_watch's caller holds
            with self.lock:
                self.on_event(box[0], ev)
        fn = cb
        try:
            if recursive:
                wid = self.hub.watch_recursive(path, fn, table)
            else:
                wid = self.hub.watch(path, fn, table)
        except th.Error as e:
            self.v(None, "watch %s failed: %s" % (path, e))
            return
        w = W(wid, table, path, recursive)
        w.fkey = self.hub.last_key
        box.append(w)
        if wid in self.watches:
            self.v(w, "watch id %d reused" % wid)
        self.watches[wid] = w
        self.by_fkey[w.fkey] = w
        self.write({"w": wid, "new": 1, "t": table, "p": path, "rec": recursive, "inc": self.a.incarnation})

    def unwatch(self, w):
        if w.dead:
            rc = self.hub.unwatch(w.id)
            if rc:
                self.v(w, "unwatch of an ended watch returned True")
            return
        w.dead = True
        self.write({"w": w.id, "unw": 1})
        ok = self.hub.unwatch(w.id)
        if self.a.thread and not self.in_cb:
            w.unw_main = True
            if not ok:
                # the library's thread ended it meanwhile: its ENDED is on the
                # way (waiting for the lock); it must come, and be ENDED
                w.enoent = True
                return
        if not ok:
            self.v(w, "unwatch of a live watch returned False")

    def on_free(self, fkey):
        with self.lock:
            self.on_free_locked(fkey)

    def on_free_locked(self, fkey):
        w = self.by_fkey.get(fkey)
        if w is None:
            self.v(None, "free of unknown arg %s" % fkey)
            return
        w.frees += 1
        if w.frees > 1:
            self.v(w, "free function ran %d times" % w.frees)
        if not w.dead:
            self.v(w, "free function ran while the watch was live")
        if self.in_cb:
            pass

    # ---- the online checker ----
    def on_event(self, w, ev):
        with self.lock:
            self.on_event_locked(w, ev)

    def on_event_locked(self, w, ev):
        self.in_cb += 1
        try:
            if w.dead and w.unw_main and not w.late:
                # unwatched on the main thread while the library's thread may
                # have begun this callback (it waits for the GIL and the lock):
                # topohub.h allows that one, never a second
                w.late = True
                self.write({"w": w.id, "late": 1})
                if w.enoent and ev.kind != ENDED:
                    self.v(w, "unwatch found the watch ended, then %s came, not ENDED" %
                           th.KIND_NAMES.get(ev.kind))
                w.enoent = False
                return
            self.check(w, ev)
            if self.a.thread and not self.final and self.rng.random() < 0.05:
                self.churn()
            if not self.final and not w.dead and self.rng.random() < 0.003:
                self.unwatch(w)         # from inside its own callback
            if not self.final and self.rng.random() < 0.002:
                self.random_watch()     # a new watch from inside a callback
        except Exception as e:  # a harness bug must not pass silently
            self.v(w, "checker exception %r" % e)
        finally:
            self.in_cb -= 1

    def check(self, w, ev):
        if self.closing:
            return  # close() ends every watch: a callback the thread had begun may still run
        self.events += 1
        k = ev.kind
        rec = {"w": w.id, "k": k, "r": ev.revision}
        if ev.key is not None and k in (INITIAL, PUT, DELETE, NOT_FOUND):
            rec["key"] = ev.key
        if k in (INITIAL, PUT):
            rec["h"] = vhash(ev.value)
            rec["n"] = 1 if ev.value_null else 0
        if ev.gtid:
            rec["g"] = ev.gtid
        if k in (RESYNC, ENDED):
            rec["rs"] = ev.reason
        self.write(rec)
        if w.dead:
            self.v(w, "event %s after %s" % (th.KIND_NAMES.get(k), "ENDED" if w.state == "done" else "unwatch"))
            return
        if ev.watch != w.id:
            self.v(w, "event for watch %d delivered to %d" % (ev.watch, w.id))
        if ev.table != w.table and k in (INITIAL, PUT, DELETE):
            self.v(w, "event of table %d" % ev.table)
        if k in (INITIAL, PUT, DELETE, NOT_FOUND):
            if not under(w.path, w.recursive, ev.key):
                self.v(w, "key %r is not under the watch" % ev.key)
        if k in (INITIAL, PUT, DELETE):
            last = w.lastrev.get(ev.key)
            if last is not None and ev.revision <= last:
                self.v(w, "%s %s revision %d not above %d" % (th.KIND_NAMES[k], ev.key, ev.revision, last))
            w.lastrev[ev.key] = ev.revision
        if w.pending_end and k != ENDED:
            self.v(w, "%s after the DELETE of an exact watch (ENDED expected)" % th.KIND_NAMES.get(k))
        st = w.state
        if k == INITIAL:
            if st != "start":
                self.v(w, "INITIAL in state %s" % st)
            if w.recursive and w.last_initial is not None and ev.key.encode() <= w.last_initial.encode():
                self.v(w, "INITIAL %s not in key order after %s" % (ev.key, w.last_initial))
            w.last_initial = ev.key
            if ev.key in w.view:
                self.v(w, "INITIAL %s twice" % ev.key)
            w.view[ev.key] = (rec["h"], rec["n"])
            if not w.recursive:
                w.state = "live"
        elif k == SYNCED:
            if not w.recursive and st != "resync":
                self.v(w, "SYNCED on an exact watch in state %s" % st)
            if st not in ("start", "resync"):
                self.v(w, "SYNCED in state %s" % st)
            if ev.revision < w.synced_rev:
                self.v(w, "SYNCED revision %d below %d" % (ev.revision, w.synced_rev))
            w.synced_rev = ev.revision
            w.state = "live"
        elif k == NOT_FOUND:
            if st != "start" or w.recursive:
                self.v(w, "NOT_FOUND in state %s" % st)
            w.pending_end = True
        elif k == RESYNC:
            if st == "resync":
                self.v(w, "RESYNC while resyncing")
            if st == "start" and ev.reason != 5:
                self.v(w, "RESYNC before the initial state (reason %d)" % ev.reason)
            if ev.reason not in (1, 2, 3, 4, 5):
                self.v(w, "RESYNC reason %d" % ev.reason)
            w.state = "resync"
        elif k == PUT:
            if st not in ("live", "resync"):
                self.v(w, "PUT in state %s" % st)
            w.view[ev.key] = (rec["h"], rec["n"])
        elif k == DELETE:
            if st not in ("live", "resync"):
                self.v(w, "DELETE in state %s" % st)
            if ev.key not in w.view:
                self.v(w, "DELETE of %s, which the watch does not hold" % ev.key)
            w.view.pop(ev.key, None)
            if not w.recursive:
                w.pending_end = True
        elif k == ENDED:
            if w.recursive:
                self.v(w, "ENDED on a recursive watch")
            if not w.pending_end:
                self.v(w, "ENDED without DELETE or NOT_FOUND")
            want = 2 if st == "start" else 1
            if ev.reason != want:
                self.v(w, "ENDED reason %d, expected %d" % (ev.reason, want))
            w.dead = True
            w.state = "done"
            w.pending_end = False
            if not self.final:
                # watch it again, at once from inside the callback or later
                if self.rng.random() < 0.5:
                    self.add_watch(w.table, w.path, w.recursive)
                else:
                    self.rewatch.append((w.table, w.path, w.recursive))
        else:
            self.v(w, "unknown event kind %d" % k)

    # ---- the main loop ----
    def churn(self):
        r = self.rng.random()
        live = [w for w in self.watches.values() if not w.dead]
        if len(live) < self.a.watches and r < 0.3:
            self.random_watch()
        elif live and r < 0.36:
            self.unwatch(self.rng.choice(live))
        elif self.rewatch and r < 0.5:
            self.add_watch(*self.rewatch.pop(0))
        elif r < 0.51:
            # unwatch an ended watch: -ENOENT, no harm
            dead = [w for w in self.watches.values() if w.dead]
            if dead:
                self.unwatch(self.rng.choice(dead))

    def run(self):
        self.lock.acquire()  # held except while the library's thread may run callbacks
        self.open()
        for _ in range(self.a.watches):
            self.random_watch()
        last_flush = time.time()
        poller = None
        if self.a.fd:  # an event loop of its own: poll the descriptor, dispatch(0)
            import select
            poller = select.poll()
            poller.register(self.hub.fileno(), select.POLLIN)
        while not self.final:
            if os.path.exists(self.a.final):
                self.final = True
                break
            if self.a.thread:
                # callbacks run on the library's thread (they churn too)
                self.pump(0.02)
                self.churn()
                if time.time() - last_flush > 0.2:
                    self.log.flush()
                    last_flush = time.time()
                continue
            if poller:
                poller.poll(20)
                self.hub.dispatch(0)
            else:
                self.hub.dispatch(0.02)
            self.churn()
            if time.time() - last_flush > 0.2:
                self.log.flush()
                last_flush = time.time()
        self.finish()

    def pump(self, t):
        """dispatch(t), or with the library's thread just wait (callbacks run there)."""
        if self.a.thread:
            self.lock.release()
            try:
                time.sleep(t)
            finally:
                self.lock.acquire()
        else:
            self.hub.dispatch(t)

    def finish(self):
        self.write({"final": 1})
        deadline = time.time() + 120
        target = None
        while time.time() < deadline and target is None:
            try:
                with open(self.a.final) as f:
                    target = json.load(f)["gtid"]
            except (OSError, ValueError, KeyError):
                self.pump(0.05)
        if target is None:
            self.v(None, "no final GTID position")
            return self.exit()
        rev = None
        while time.time() < deadline and rev is None:
            try:
                rev = self.hub.sync(target, timeout=5)
            except th.Error:
                self.pump(0.05)
        if rev is None:
            self.v(None, "sync(%s) never answered" % target)
            return self.exit()
        # The read-your-writes wait of topohub.h: dispatch until stats().revision >= rev.
        while time.time() < deadline and self.hub.stats()["revision"] < rev:
            self.pump(0.05)
        if self.hub.stats()["revision"] < rev:
            self.v(None, "stats().revision %d never reached sync's %d" % (self.hub.stats()["revision"], rev))
        while time.time() < deadline and any(not w.dead and w.state != "live" for w in self.watches.values()):
            self.pump(0.05)
        # a little more: in-flight resyncs after the revision
        t = time.time() + 0.3
        while time.time() < t:
            self.pump(0.05)
        views = []
        for w in self.watches.values():
            if w.dead:
                continue
            if w.state != "live":
                self.v(w, "not synced at the end (state %s)" % w.state)
                continue
            views.append({"w": w.id, "t": w.table, "p": w.path, "rec": w.recursive,
                          "view": {k: list(v) for k, v in w.view.items()}})
        st = self.hub.stats()
        with open(os.path.join(self.a.out, "final-%d.json" % self.a.id), "w") as f:
            json.dump({"views": views, "stats": st, "events": self.events, "rev": rev}, f)
        self.exit()

    def exit(self):
        self.closing = True
        for w in self.watches.values():
            w.dead = True
        if self.a.thread:
            self.lock.release()  # close() joins the library's thread, which may wait for the lock
        self.hub.close()
        for w in self.watches.values():
            if w.frees != 1:
                self.v(w, "free function ran %d times by close()" % w.frees)
            if w.enoent:
                self.v(w, "unwatch found the watch ended, but its ENDED never came")
        with open(os.path.join(self.a.out, "viol-%d-%d.json" % (self.a.id, self.a.incarnation)), "w") as f:
            json.dump(self.viol, f)
        self.log.close()
        sys.exit(0)


class SubHub(th.Hub):
    """The binding's Hub, with the free function observed per watch."""

    def __init__(self, sub, *a, **kw):
        self._sub = sub
        self.last_key = None
        super().__init__(*a, **kw)

    def _watch(self, recursive, path, callback, table):
        with self._wlock:
            self.last_key = self._next_key
        return super()._watch(recursive, path, callback, table)

    def _on_free(self, arg):
        super()._on_free(arg)
        self._sub.on_free(arg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--incarnation", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--final", required=True)
    ap.add_argument("--timeout-ms", type=int, default=300)
    ap.add_argument("--watches", type=int, default=6)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--fd", action="store_true", help="TH_WAIT_FD in a poll loop (default: futex)")
    ap.add_argument("--thread", action="store_true", help="TH_OPEN_F_THREAD: callbacks on the library's thread")
    a = ap.parse_args()
    s = Sub(a)

    def on_usr1(*_):
        s.final = True
    signal.signal(signal.SIGUSR1, on_usr1)
    s.run()


if __name__ == "__main__":
    main()
