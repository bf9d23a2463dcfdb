# SPDX-License-Identifier: Apache-2.0
"""Tests of the Python binding through the real hub and MariaDB.

Run by tests/test_plugin_python.c (make test), which starts a private
MariaDB and topohubd and sets:
  TOPOHUB_SOCKET   the hub's control socket
  TOPOHUB_LIB      the libtopohub.so under test
  MARIADB_SOCKET   the server's Unix socket (root, no password)
  MARIADB_CLIENT   the mariadb command-line client
  TOPOHUB_C_LAYOUT every ABI struct's size and field offsets, as C sees them
Alone: python3 plugins/python/test_topohub.py (skips without those).
"""

import ctypes
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import topohub  # noqa: E402

SOCKET = os.environ.get("TOPOHUB_SOCKET")
# Slow-consumer timeout for the tests that are not about eviction: they stop
# dispatching while they run the mariadb client between steps, which on a
# loaded host can take longer than the library's default of 1 s, and the hub
# would rightly evict them. The eviction test sets its own.
SLACK = 30.0
DB_SOCKET = os.environ.get("MARIADB_SOCKET")


def sql(statement):
    subprocess.run([os.environ.get("MARIADB_CLIENT", "mariadb"), "-S", DB_SOCKET, "-u", "root", "topo",
                    "-e", statement], check=True)


def catch_up(hub):
    """Wait until the hub has published everything committed so far, so that
    a watch registered next sees it (the hub is a replica)."""
    out = subprocess.run([os.environ.get("MARIADB_CLIENT", "mariadb"), "-S", DB_SOCKET, "-u", "root", "-N", "-B",
                          "-e", "SELECT @@gtid_binlog_pos"], check=True, capture_output=True, text=True).stdout
    return hub.sync(out.strip(), timeout=10)


def table(prefix):
    out = subprocess.run([os.environ.get("MARIADB_CLIENT", "mariadb"), "-S", DB_SOCKET, "-u", "root", "topo",
                          "-N", "-B", "-e",
                          f"SELECT path, data FROM topo_data WHERE path = '{prefix}' OR path LIKE '{prefix}/%'"],
                         check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        k, _, v = line.partition("\t")
        rows[k] = v.encode()
    return rows


class Recorder:
    def __init__(self):
        self.events = []
        self.view = {}
        self.lock = threading.Lock()

    def __call__(self, ev):
        with self.lock:
            self.events.append(ev)
            if ev.kind in (topohub.INITIAL, topohub.PUT):
                self.view[ev.key] = ev.value
            elif ev.kind == topohub.DELETE:
                self.view.pop(ev.key, None)

    def kinds(self):
        with self.lock:
            return [e.kind_name for e in self.events]

    def count(self, kind):
        with self.lock:
            return sum(1 for e in self.events if e.kind == kind)


def pump(hub, cond, timeout=10.0, threaded=False):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        if threaded:
            time.sleep(0.005)
        else:
            hub.dispatch(0.02)
    if not cond():
        raise AssertionError("condition not reached")


@unittest.skipUnless(SOCKET and DB_SOCKET, "needs TOPOHUB_SOCKET and MARIADB_SOCKET (run by make test)")
class TestBinding(unittest.TestCase):
    def test_watch_exact_initial_put_delete(self):
        sql("INSERT INTO topo_data (path, data, version) VALUES ('/py1/a', 'one', 1)")
        with topohub.Hub(SOCKET, timeout=SLACK) as hub:
            catch_up(hub)
            r = Recorder()
            wid = hub.watch("/py1/a", r)
            self.assertGreater(wid, 0)
            pump(hub, lambda: len(r.events) >= 1)
            self.assertEqual(r.events[0].kind, topohub.INITIAL)
            self.assertEqual(r.events[0].value, b"one")
            self.assertEqual(r.events[0].version, 1)
            sql("UPDATE topo_data SET data = 'two', version = 2 WHERE path = '/py1/a'")
            sql("DELETE FROM topo_data WHERE path = '/py1/a'")
            pump(hub, lambda: len(r.events) >= 4)
            self.assertEqual(r.kinds(), ["INITIAL", "PUT", "DELETE", "ENDED"])
            self.assertEqual(r.events[1].value, b"two")
            self.assertGreater(r.events[1].revision, r.events[0].revision)
            self.assertGreaterEqual(r.events[1].latency_ns, 0)
            self.assertNotEqual(r.events[1].gtid, "")
            self.assertFalse(hub.unwatch(wid))

    def test_watch_missing_is_not_found(self):
        with topohub.Hub(SOCKET, timeout=SLACK) as hub:
            r = Recorder()
            hub.watch("/py2/none", r)
            pump(hub, lambda: len(r.events) >= 2)
            self.assertEqual(r.kinds(), ["NOT_FOUND", "ENDED"])

    def test_recursive_boundaries_and_changes(self):
        sql("INSERT INTO topo_data (path, data) VALUES ('/py3/ks', 'r'), ('/py3/ks/s1', 'a'), ('/py3/ksx', 'no')")
        with topohub.Hub(SOCKET, timeout=SLACK) as hub:
            catch_up(hub)
            r = Recorder()
            wid = hub.watch_recursive("/py3/ks", r)
            pump(hub, lambda: r.count(topohub.SYNCED) >= 1)
            self.assertEqual(r.kinds(), ["INITIAL", "INITIAL", "SYNCED"])
            self.assertEqual([e.key for e in r.events[:2]], ["/py3/ks", "/py3/ks/s1"])
            sql("INSERT INTO topo_data (path, data) VALUES ('/py3/ksy', 'no'), ('/py3/ks/s2', 'b')")
            sql("DELETE FROM topo_data WHERE path = '/py3/ks/s1'")
            pump(hub, lambda: len(r.events) >= 5)
            time.sleep(0.05)
            hub.dispatch(0)
            self.assertEqual(r.kinds(), ["INITIAL", "INITIAL", "SYNCED", "PUT", "DELETE"])
            self.assertEqual(r.view, table("/py3/ks"))
            self.assertTrue(hub.unwatch(wid))
            self.assertFalse(hub.unwatch(wid))

    def test_unwatch_inside_callback(self):
        sql("INSERT INTO topo_data (path, data) VALUES ('/py4/a', '0')")
        with topohub.Hub(SOCKET, timeout=SLACK) as hub:
            seen = []

            def cb(ev):
                seen.append(ev.kind)
                if ev.kind == topohub.PUT:
                    self.assertTrue(hub.unwatch(ev.watch))

            hub.watch_recursive("/py4", cb)
            pump(hub, lambda: topohub.SYNCED in seen)
            sql("UPDATE topo_data SET data = '1' WHERE path = '/py4/a'")
            sql("UPDATE topo_data SET data = '2' WHERE path = '/py4/a'")
            pump(hub, lambda: topohub.PUT in seen)
            for _ in range(10):
                hub.dispatch(0.01)
            self.assertEqual(seen.count(topohub.PUT), 1)
            self.assertEqual(hub.stats()["watches"], 0)

    def test_library_thread_and_get(self):
        sql("INSERT INTO topo_data (path, data, version) VALUES ('/py5/a', 'x', 7)")
        with topohub.Hub(SOCKET, thread=True, timeout=SLACK) as hub:
            catch_up(hub)
            r = Recorder()
            hub.watch_recursive("/py5", r)
            pump(hub, lambda: r.count(topohub.SYNCED) >= 1, threaded=True)
            self.assertEqual(hub.get("/py5/a")[:2], (b"x", 7))
            self.assertIsNone(hub.get("/py5/none"))
            with self.assertRaises(topohub.Error):
                hub.dispatch(0)

    def test_fd_mode(self):
        import select
        with topohub.Hub(SOCKET, wait_mode=topohub.WAIT_FD, timeout=SLACK) as hub:
            r = Recorder()
            hub.watch_recursive("/py6", r)
            sql("INSERT INTO topo_data (path, data) VALUES ('/py6/a', 'fd')")
            end = time.monotonic() + 10
            while r.count(topohub.PUT) + r.count(topohub.INITIAL) < 1 and time.monotonic() < end:
                ready, _, _ = select.select([hub], [], [], 1.0)
                if ready:
                    hub.dispatch(0)
            self.assertEqual(r.view, {"/py6/a": b"fd"})

    def test_resync_after_eviction(self):
        """Not dispatching past the timeout is what a stopped reader does:
        the hub evicts it; it resyncs by itself and converges."""
        sql("INSERT INTO topo_data (path, data) VALUES ('/py7/a', '1'), ('/py7/b', '2')")
        # 100 ms: long enough that a loaded host's scheduling stalls rarely
        # evict the reader outside the deliberate 0.5 s stop below (a stall
        # that does is a real eviction too, and the checks allow for it).
        with topohub.Hub(SOCKET, timeout=0.1) as hub:
            catch_up(hub)
            r = Recorder()
            hub.watch_recursive("/py7", r)
            pump(hub, lambda: r.count(topohub.SYNCED) >= 1)
            sql("UPDATE topo_data SET data = '1b' WHERE path = '/py7/a'")
            sql("DELETE FROM topo_data WHERE path = '/py7/b'")
            sql("INSERT INTO topo_data (path, data) VALUES ('/py7/c', '3')")
            time.sleep(0.5)
            pump(hub, lambda: r.count(topohub.RESYNC) >= 1 and r.count(topohub.SYNCED) > r.count(topohub.RESYNC))
            resync = [e for e in r.events if e.kind == topohub.RESYNC]
            self.assertGreaterEqual(len(resync), 1)
            self.assertTrue(all(e.reason == topohub.RESYNC_EVICTED for e in resync))
            self.assertEqual(r.view, table("/py7"))
            self.assertEqual(hub.stats()["evictions"], len(resync))


class Layout(unittest.TestCase):
    """The ctypes structs are the C structs, field for field (no hub needed)."""

    CLASSES = {"th_open_opts": "_OpenOpts", "th_event": "_Event", "th_watch_opts": "_WatchOpts",
               "th_entry": "_Entry", "th_stats": "_Stats", "th_api": "_Api"}

    @unittest.skipUnless(os.environ.get("TOPOHUB_C_LAYOUT"), "TOPOHUB_C_LAYOUT is set by tests/test_plugin_python.c")
    def test_ctypes_layouts_match_the_c_header(self):
        seen = set()
        for item in os.environ["TOPOHUB_C_LAYOUT"].split(","):
            name, value = item.split("=")
            struct, _, field = name.partition(".")
            cls = getattr(topohub, self.CLASSES[struct])
            if field:
                self.assertEqual(getattr(cls, field).offset, int(value), name)
                seen.add((struct, field))
            else:
                self.assertEqual(ctypes.sizeof(cls), int(value), struct)
        # Every ctypes field is one the C side listed: nothing unchecked.
        for struct, cname in self.CLASSES.items():
            for field in getattr(topohub, cname)._fields_:
                self.assertIn((struct, field[0]), seen, f"{cname}.{field[0]} is not in the C list")

    def test_error_names_are_the_librarys(self):
        if not os.environ.get("TOPOHUB_LIB"):
            self.skipTest("TOPOHUB_LIB is set by tests/test_plugin_python.c")
        for code, (name, message) in topohub.ERRORS.items():
            self.assertEqual(topohub.errname(-code), name)
            self.assertEqual(topohub.strerror(-code), message)
        self.assertEqual(topohub.RESYNC_NAMES[topohub.RESYNC_NOMEM], "nomem")


if __name__ == "__main__":
    unittest.main(verbosity=2)
