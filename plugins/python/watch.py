#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""watch.py: follow topology changes from Python through libtopohub.so.

    python3 plugins/python/watch.py [--socket PATH] [--table N] [--name NAME] [-r] PATH

One line per event, with the revision and the hub-to-callback latency. Values
of topo_elections (table 2) are the hub's serialisation of (leader_id,
contents): each column a u32 little-endian length and its bytes; shown
decoded. Stops on SIGINT/SIGTERM.
"""

import argparse
import os
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import topohub  # noqa: E402


def columns(value):
    """Split a multi-column value: [bytes or None, ...]; None if it is not one."""
    out, i = [], 0
    while i < len(value):
        if i + 4 > len(value):
            return None
        (n,) = struct.unpack_from("<I", value, i)
        i += 4
        if n == 0xFFFFFFFF:
            out.append(None)
            continue
        if i + n > len(value):
            return None
        out.append(value[i:i + n])
        i += n
    return out


def show(value, table):
    if table == topohub.TABLE_ELECTIONS:
        cols = columns(value)
        if cols and len(cols) == 2:
            leader = cols[0].decode("utf-8", "replace") if cols[0] is not None else "NULL"
            return f"leader={leader}"
    return value.decode("utf-8", "replace")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", default=os.environ.get("TOPOHUB_SOCKET"))
    p.add_argument("--table", type=int, default=topohub.TABLE_DATA)
    p.add_argument("--name", default="python")
    p.add_argument("-r", "--recursive", action="store_true")
    p.add_argument("path")
    a = p.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    def on_event(ev):
        line = f"[{a.name}] rev {ev.revision} {ev.kind_name:<9}"
        if ev.key is not None:
            line += f" {ev.key}"
        if ev.kind in (topohub.INITIAL, topohub.PUT):
            line += f" = {show(ev.value, a.table)}"
        if ev.kind == topohub.RESYNC:
            line += f" (reason {ev.reason})"
        if ev.latency_ns:
            line += f"  latency {ev.latency_ns / 1000:.1f} us"
        print(line, flush=True)
        if ev.kind == topohub.ENDED:
            stop.append(1)

    with topohub.Hub(a.socket, name=a.name) as hub:
        if a.recursive:
            hub.watch_recursive(a.path, on_event, table=a.table)
        else:
            hub.watch(a.path, on_event, table=a.table)
        while not stop:
            hub.dispatch(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
