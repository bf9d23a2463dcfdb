# SPDX-License-Identifier: Apache-2.0
"""binlog_truth.py: what committed, according to the servers' own binlogs.

Independent of readers/: it runs `mariadb-binlog --base64-output=decode-rows
-vv` over a server's binlog files and parses that text. Per GTID it keeps
either the row changes of the three topo tables, reduced to each key's last
change (the hub publishes exactly that: a transaction's intermediate values
are invisible), or, when the transaction holds a statement that touches a
topo table (DDL, statement-logged DML), `opaque`: its row effects are not in
the log, so the hub must reload and resync.

Values as the client library delivers them: topo_data.data and
topo_locks.contents are the column bytes (None for SQL NULL); topo_elections
is leader_id + contents serialised as readers/txn.h does (per column a
little-endian u32 length, 0xffffffff for NULL, then the bytes).

mariadb-binlog prints a string's bytes raw except bytes below 0x20, which it
prints as \\xHH; a backslash is printed raw too, so the workload never writes
a backslash (then \\xHH is unambiguous). Each column is one line:
"###   @N='...' /* TYPE meta=... */".
"""

import re
import struct
import subprocess

TABLES = {"topo_data": 0, "topo_locks": 1, "topo_elections": 2}
# column positions (1-based, as mariadb-binlog numbers them): key, value columns
COLS = {0: (1, (2,)), 1: (1, (2,)), 2: (1, (2, 3))}

_GTID = re.compile(rb"\tGTID (\d+-\d+-\d+)")
_ROWHDR = re.compile(rb"^### (INSERT INTO|UPDATE|DELETE FROM) `([^`]*)`\.`([^`]*)`")
_COL = re.compile(rb"^###   @(\d+)=(.*)$")
_HEX = re.compile(rb"\\x([0-9a-fA-F]{2})")
_TOPO = re.compile(rb"topo_(data|locks|elections)", re.I)
_BORING = (b"START TRANSACTION", b"BEGIN", b"COMMIT", b"SET TIMESTAMP", b"SET @@session", b"DELIMITER",
           b"ROLLBACK", b"use ", b"SET INSERT_ID", b"SAVEPOINT", b"SET @", b"/*", b"SET NAMES", b"# ")


def _unquote(raw):
    """The value of one @N= line: bytes, None for NULL, or an int/other text."""
    if raw.startswith(b"NULL"):
        return None
    if raw.startswith(b"'"):
        end = raw.rfind(b"' /* ")
        if end < 0:
            end = raw.rfind(b"'")
        body = raw[1:end]
        return _HEX.sub(lambda m: bytes([int(m.group(1), 16)]), body)
    return raw.split(b" ", 1)[0]


def serialise(table, cols):
    """The value bytes the library delivers, and whether it is SQL NULL."""
    if table == 2:
        out = b""
        for v in cols:
            out += struct.pack("<I", 0xFFFFFFFF if v is None else len(v)) + (v or b"")
        return out, False
    v = cols[0]
    return (b"" if v is None else v), v is None


class Txn:
    __slots__ = ("gtid", "domain", "server", "seq", "changes", "opaque", "tables", "literals")

    def __init__(self, gtid):
        self.gtid = gtid
        d, s, q = gtid.split("-")
        self.domain, self.server, self.seq = int(d), int(s), int(q)
        self.changes = {}      # (table, key bytes) -> ("put", value, null) | ("del",)
        self.opaque = False
        self.tables = set()
        self.literals = set()  # quoted literals of an opaque statement: values a reload may bring

    def _set(self, table, key, change):
        self.changes.pop((table, key), None)  # re-insert: the last change orders last
        self.changes[(table, key)] = change


def _row_image(lines, i):
    """Columns of one image starting at lines[i] (after SET/WHERE): dict, next i."""
    cols = {}
    while i < len(lines):
        m = _COL.match(lines[i])
        if not m:
            break
        cols[int(m.group(1))] = _unquote(m.group(2))
        i += 1
    return cols, i


def parse_text(text, schema=b"topo"):
    """{gtid: Txn} from mariadb-binlog -vv output (bytes)."""
    lines = text.split(b"\n")
    txns = {}
    cur = None
    i = 0
    n = len(lines)
    while i < n:
        ln = lines[i]
        m = _GTID.search(ln) if ln.startswith(b"#") else None
        if m:
            cur = Txn(m.group(1).decode())
            txns[cur.gtid] = cur
            i += 1
            continue
        m = _ROWHDR.match(ln)
        if m and cur is not None:
            op, db, tbl = m.group(1), m.group(2), m.group(3).decode()
            i += 1
            if db != schema or tbl not in TABLES:
                continue
            t = TABLES[tbl]
            kpos, vpos = COLS[t]
            cur.tables.add(t)
            before = after = None
            while i < n and lines[i] in (b"### SET", b"### WHERE"):
                which = lines[i]
                cols, i = _row_image(lines, i + 1)
                if which == b"### WHERE":
                    before = cols
                else:
                    after = cols
            if op == b"DELETE FROM" and before:
                cur._set(t, before[kpos], ("del",))
            elif op == b"INSERT INTO" and after:
                v, null = serialise(t, [after.get(p) for p in vpos])
                cur._set(t, after[kpos], ("put", v, null))
            elif op == b"UPDATE" and before and after:
                if before[kpos] != after[kpos]:
                    cur._set(t, before[kpos], ("del",))
                v, null = serialise(t, [after.get(p) for p in vpos])
                cur._set(t, after[kpos], ("put", v, null))
            continue
        if cur is not None and ln and not ln.startswith(b"#") and not ln.startswith(b"###"):
            s = ln.strip()
            if not s.startswith(_BORING) and _TOPO.search(s):
                cur.opaque = True
                cur.literals.update(re.findall(rb"'([^'\\]*)'", s))
                for name, t in TABLES.items():
                    if name.encode() in s.lower():
                        cur.tables.add(t)
        i += 1
    return txns


def read_server(files, binary="mariadb-binlog"):
    """{gtid: Txn} of one server's binlog files (in index order)."""
    if not files:
        return {}
    r = subprocess.run([binary, "--base64-output=decode-rows", "-vv"] + list(files), capture_output=True)
    if r.returncode != 0 and not r.stdout:
        raise RuntimeError("mariadb-binlog failed: %s" % r.stderr.decode(errors="replace"))
    return parse_text(r.stdout)


class Truth:
    """Every server's transactions, merged by GTID. versions[gtid] lists the
    distinct versions the servers logged (a replica may log rows where its
    primary logged a statement); order is by (domain, seq)."""

    def __init__(self):
        self.versions = {}
        self.disagree = []

    def add(self, txns):
        for g, t in txns.items():
            vs = self.versions.setdefault(g, [])
            if not any(v.opaque == t.opaque and v.changes == t.changes for v in vs):
                if vs and not t.opaque and not any(v.opaque for v in vs):
                    self.disagree.append(g)
                vs.append(t)

    def add_skipped(self, per_server):
        """A replica logs no transaction for a statement that changed no row
        there: where a server's binlog skips a GTID inside its own range, a
        hub reading it saw an empty transaction."""
        for txns in per_server:
            seqs = sorted((t.domain, t.seq) for t in txns.values())
            if not seqs:
                continue
            lo, hi = seqs[0], seqs[-1]
            for g, vs in self.versions.items():
                t = vs[0]
                if lo < (t.domain, t.seq) < hi and g not in txns and not any(not v.opaque and not v.changes
                                                                              for v in vs):
                    vs.append(Txn(g))

    def ordered(self):
        return sorted(self.versions, key=lambda g: tuple(int(x) for x in (g.split("-")[0], g.split("-")[2])))

    def committed_values(self):
        """{(table, key): set of (value, null)} ever committed by row events."""
        out = {}
        for vs in self.versions.values():
            for t in vs:
                for k, ch in t.changes.items():
                    if ch[0] == "put":
                        out.setdefault(k, set()).add((ch[1], ch[2]))
        return out
