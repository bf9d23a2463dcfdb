"""topohub: Python binding (ctypes) of libtopohub.so, the topohub client ABI.

    import topohub
    with topohub.Hub("/run/topohub/topohub.sock") as hub:
        hub.watch_recursive("/vt/keyspaces", lambda ev: print(ev))
        while True:
            hub.dispatch(1.0)

Semantics are those of plugins/topohub.h (Vitess Watch / WatchRecursive):
a watch first gets the current value (INITIAL, or NOT_FOUND then ENDED), a
recursive watch the current entries then SYNCED; then every change in
revision order. When continuity is lost the watch gets RESYNC, the changes
that bring it to the current state, then SYNCED.

Threads: callbacks run inside dispatch() on the calling thread, or on the
library's own thread with Hub(..., thread=True) (ctypes takes the GIL for
them). watch/unwatch/get/sync may be called from any thread and from inside
callbacks. A callback that raises has its exception printed and dropped: it
must not unwind through C.

The library is found at $TOPOHUB_LIB, else next to this file's build tree
(../../build/libtopohub.so), else by the dynamic linker ("libtopohub.so").
"""

import ctypes
import os
import sys
import threading
import traceback

ABI_MAJOR = 1
ABI_MINOR = 0

TABLE_DATA, TABLE_LOCKS, TABLE_ELECTIONS = 0, 1, 2
WAIT_FUTEX, WAIT_SPIN, WAIT_FD = 0, 1, 2
OPEN_F_THREAD = 0x1

INITIAL, PUT, DELETE, NOT_FOUND, RESYNC, SYNCED, ENDED = range(1, 8)
KIND_NAMES = {INITIAL: "INITIAL", PUT: "PUT", DELETE: "DELETE", NOT_FOUND: "NOT_FOUND",
              RESYNC: "RESYNC", SYNCED: "SYNCED", ENDED: "ENDED"}
RESYNC_EVICTED, RESYNC_LAPPED, RESYNC_HUB_LOST, RESYNC_HUB = 1, 2, 3, 4
END_DELETED, END_NOT_FOUND = 1, 2
EVENT_F_VALUE_NULL = 0x1

TH_ENOTFOUND = 4014


class _OpenOpts(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("socket_path", ctypes.c_char_p), ("timeout_ns", ctypes.c_uint64),
                ("spin_ns", ctypes.c_uint64), ("wait_mode", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32), ("name", ctypes.c_char_p)]


class _Event(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("kind", ctypes.c_uint16), ("flags", ctypes.c_uint16),
                ("watch", ctypes.c_uint64), ("table", ctypes.c_uint32), ("reason", ctypes.c_uint32),
                ("key", ctypes.c_void_p), ("value", ctypes.c_void_p),
                ("key_len", ctypes.c_uint32), ("value_len", ctypes.c_uint32),
                ("version", ctypes.c_int64), ("revision", ctypes.c_uint64),
                ("commit_us", ctypes.c_uint64), ("publish_ns", ctypes.c_uint64),
                ("deliver_ns", ctypes.c_uint64), ("latency_ns", ctypes.c_uint64),
                ("gtid", ctypes.c_void_p), ("gtid_len", ctypes.c_uint32), ("reserved", ctypes.c_uint32)]


_WATCH_FN = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Event), ctypes.c_void_p)
_FREE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _WatchOpts(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("table", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32), ("path", ctypes.c_char_p),
                ("callback", _WATCH_FN), ("arg", ctypes.c_void_p), ("free_arg", _FREE_FN)]


class _Entry(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("table", ctypes.c_uint32),
                ("key_len", ctypes.c_uint32), ("value_len", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("key", ctypes.c_void_p), ("value", ctypes.c_void_p),
                ("version", ctypes.c_int64), ("revision", ctypes.c_uint64)]


class _Stats(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("reserved", ctypes.c_uint32)] + [
        (n, ctypes.c_uint64) for n in ("revision", "events", "records", "resyncs", "evictions", "laps",
                                       "reconnects", "watches", "entries", "generation")]


_c = ctypes.c_void_p
_API_FIELDS = [
    ("size", ctypes.c_uint32), ("major", ctypes.c_uint16), ("minor", ctypes.c_uint16),
    ("strerror", ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_int)),
    ("errname", ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_int)),
    ("open", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_OpenOpts), ctypes.POINTER(_c))),
    ("close", ctypes.CFUNCTYPE(None, _c)),
    ("watch", ctypes.CFUNCTYPE(ctypes.c_int, _c, ctypes.POINTER(_WatchOpts), ctypes.POINTER(ctypes.c_uint64))),
    ("watch_recursive", ctypes.CFUNCTYPE(ctypes.c_int, _c, ctypes.POINTER(_WatchOpts),
                                         ctypes.POINTER(ctypes.c_uint64))),
    ("unwatch", ctypes.CFUNCTYPE(ctypes.c_int, _c, ctypes.c_uint64)),
    ("get", ctypes.CFUNCTYPE(ctypes.c_int, _c, ctypes.c_uint32, ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(_Entry)))),
    ("entry_free", ctypes.CFUNCTYPE(None, ctypes.POINTER(_Entry))),
    ("sync", ctypes.CFUNCTYPE(ctypes.c_int, _c, ctypes.c_char_p, ctypes.c_int64, ctypes.POINTER(ctypes.c_uint64))),
    ("fd", ctypes.CFUNCTYPE(ctypes.c_int, _c)),
    ("dispatch", ctypes.CFUNCTYPE(ctypes.c_int, _c, ctypes.c_int64)),
    ("stats", ctypes.CFUNCTYPE(ctypes.c_int, _c, ctypes.POINTER(_Stats))),
]


class _Api(ctypes.Structure):
    _fields_ = _API_FIELDS


class Error(Exception):
    """A libtopohub error: .code is the negative code, .name its symbol."""

    def __init__(self, code, name, message, what):
        super().__init__(f"{what}: {message} ({name})")
        self.code = code
        self.name = name


class Event:
    """One callback's event, copied out of the library's memory."""

    __slots__ = ("kind", "watch", "table", "reason", "key", "value", "value_null", "version", "revision",
                 "commit_us", "publish_ns", "deliver_ns", "latency_ns", "gtid")

    def __init__(self, e):
        self.kind = e.kind
        self.watch = e.watch
        self.table = e.table
        self.reason = e.reason
        self.key = ctypes.string_at(e.key, e.key_len).decode("utf-8", "replace") if e.key else None
        self.value = ctypes.string_at(e.value, e.value_len) if e.value else b""
        self.value_null = bool(e.flags & EVENT_F_VALUE_NULL)
        self.version = e.version
        self.revision = e.revision
        self.commit_us = e.commit_us
        self.publish_ns = e.publish_ns
        self.deliver_ns = e.deliver_ns
        self.latency_ns = e.latency_ns
        self.gtid = ctypes.string_at(e.gtid, e.gtid_len).decode("ascii", "replace") if e.gtid else ""

    @property
    def kind_name(self):
        return KIND_NAMES.get(self.kind, str(self.kind))

    def __repr__(self):
        return (f"Event({self.kind_name}, key={self.key!r}, value={self.value!r}, "
                f"version={self.version}, revision={self.revision})")


def _find_library():
    env = os.environ.get("TOPOHUB_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    cand = os.path.join(here, "..", "..", "build", "libtopohub.so")
    return cand if os.path.exists(cand) else "libtopohub.so"


_lock = threading.Lock()
_api = None


def api():
    """The library's function table (loaded once per process)."""
    global _api
    with _lock:
        if _api is None:
            lib = ctypes.CDLL(_find_library(), mode=ctypes.RTLD_LOCAL)
            get = lib.th_api_get
            get.argtypes = [ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.POINTER(_Api))]
            get.restype = ctypes.c_int
            p = ctypes.POINTER(_Api)()
            rc = get(ABI_MAJOR, ABI_MINOR, ctypes.byref(p))
            if rc:
                raise OSError(f"libtopohub: ABI {ABI_MAJOR}.{ABI_MINOR} refused ({rc})")
            _api = (lib, p.contents)
        return _api[1]


def _check(rc, what):
    if rc < 0:
        a = api()
        raise Error(rc, a.errname(rc).decode(), a.strerror(rc).decode(), what)
    return rc


class Hub:
    """A connection to topohubd. Close it (or use `with`)."""

    def __init__(self, socket_path=None, timeout=1.0, wait_mode=WAIT_FUTEX, thread=False, name="python"):
        self._api = api()
        o = _OpenOpts(size=ctypes.sizeof(_OpenOpts), flags=OPEN_F_THREAD if thread else 0,
                      socket_path=socket_path.encode() if socket_path else None,
                      timeout_ns=int(timeout * 1e9), wait_mode=wait_mode, name=name.encode())
        self._conn = ctypes.c_void_p()
        # Watches by id; each holds its callback until the library frees it.
        self._watches = {}
        self._wlock = threading.Lock()
        self._next_key = 1
        self._cb = _WATCH_FN(self._on_event)
        self._free = _FREE_FN(self._on_free)
        _check(self._api.open(ctypes.byref(o), ctypes.byref(self._conn)), "open")

    def _on_event(self, ev, arg):
        with self._wlock:
            fn = self._watches.get(arg)
        if fn is None:
            return
        try:
            fn(Event(ev.contents))
        except Exception:  # never unwind through C
            traceback.print_exc(file=sys.stderr)

    def _on_free(self, arg):
        with self._wlock:
            self._watches.pop(arg, None)

    def _watch(self, recursive, path, callback, table):
        with self._wlock:
            key = self._next_key
            self._next_key += 1
            self._watches[key] = callback
        o = _WatchOpts(size=ctypes.sizeof(_WatchOpts), table=table, path=path.encode(),
                       callback=self._cb, arg=key, free_arg=self._free)
        wid = ctypes.c_uint64()
        fn = self._api.watch_recursive if recursive else self._api.watch
        rc = fn(self._conn, ctypes.byref(o), ctypes.byref(wid))
        if rc < 0:
            with self._wlock:
                self._watches.pop(key, None)
        _check(rc, "watch")
        return wid.value

    def watch(self, path, callback, table=TABLE_DATA):
        """Watch one path; returns the watch id. callback(Event)."""
        return self._watch(False, path, callback, table)

    def watch_recursive(self, prefix, callback, table=TABLE_DATA):
        """Watch every path under prefix (path-component boundaries)."""
        return self._watch(True, prefix, callback, table)

    def unwatch(self, watch_id):
        """End a watch. False when it was not alive (already ended)."""
        rc = self._api.unwatch(self._conn, watch_id)
        if rc == -2:  # -ENOENT
            return False
        _check(rc, "unwatch")
        return True

    def dispatch(self, timeout=0.0):
        """Run callbacks; wait up to timeout seconds (None: forever) when idle."""
        ns = -1 if timeout is None else int(timeout * 1e9)
        return _check(self._api.dispatch(self._conn, ns), "dispatch")

    def fileno(self):
        """The descriptor to poll (wait_mode=WAIT_FD); then dispatch(0)."""
        return _check(self._api.fd(self._conn), "fd")

    def get(self, path, table=TABLE_DATA):
        """(value bytes, version, revision), or None when there is no such entry."""
        p = ctypes.POINTER(_Entry)()
        rc = self._api.get(self._conn, table, path.encode(), ctypes.byref(p))
        if rc == -TH_ENOTFOUND:
            return None
        _check(rc, "get")
        e = p.contents
        out = (ctypes.string_at(e.value, e.value_len), e.version, e.revision)
        self._api.entry_free(p)
        return out

    def sync(self, gtid_set, timeout=None):
        """Wait until the hub has published gtid_set; returns its revision."""
        rev = ctypes.c_uint64()
        ns = -1 if timeout is None else int(timeout * 1e9)
        _check(self._api.sync(self._conn, gtid_set.encode(), ns, ctypes.byref(rev)), "sync")
        return rev.value

    def stats(self):
        s = _Stats(size=ctypes.sizeof(_Stats))
        _check(self._api.stats(self._conn, ctypes.byref(s)), "stats")
        return {n: getattr(s, n) for n, _ in _Stats._fields_[2:]}

    def close(self):
        if self._conn:
            self._api.close(self._conn)
            self._conn = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
