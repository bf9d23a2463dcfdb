#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fails on an #include that points up the layers, or that names a header of
the project without its folder (run by `make test`).

Layers, lowest first; a file may include headers of its own component and of
lower layers only. Components on one layer do not include each other (the hub
and the client library know the protocol, never each other).

  0 common     error codes, atomics, buffers, probes
  1 shm        the ring
  2 readers    binlog decoding
  3 protocol   what the hub and its clients say; the one control-socket client
  4 hub        topohubd              | plugins  libtopohub.so and its bindings
  5 ctl        topohubctl            | tests/support  private servers, the hub's process, checkers
  6 bench      benchmarks and the tracer (they start servers through tests/support)
  7 tests      everything may be tested

An include names its folder from the repository root ("shm/ring.h", one -I.),
so that whose header it is can be judged: a bare "ring.h" that is the name of
a header in the tree fails. Headers not in the tree (generated into the build
folder, such as the tracer's vmlinux.h and skeleton) are not the project's.

Usage: check-layers.py [ROOT]    (default: the repository this script is in)
       check-layers.py --self-test
"""
import os
import re
import sys
import tempfile

LAYERS = {"common": 0, "shm": 1, "readers": 2, "protocol": 3, "hub": 4, "plugins": 4,
          "ctl": 5, "tests/support": 5, "bench": 6, "tests": 7}
INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', re.M)


def component(path):
    if path.startswith("tests/support/"):
        return "tests/support"
    top = path.split("/", 1)[0]
    return top if top in LAYERS else None


def sources(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("build", "go")]
        for name in filenames:
            if name.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def check(root):
    bad = []
    paths = list(sources(root))
    headers = {os.path.basename(p) for p in paths if p.endswith(".h")}
    for path in paths:
        own = component(path)
        if own is None:
            continue
        with open(os.path.join(root, path), errors="replace") as f:
            text = f.read()
        for m in INCLUDE.finditer(text):
            line = text.count("\n", 0, m.start(1)) + 1
            if "/" not in m.group(1) and m.group(1) in headers:
                bad.append(f"{path}:{line}: includes {m.group(1)} without its folder (a header of the tree)")
                continue
            target = component(m.group(1))
            if target is None or target == own:
                continue
            if LAYERS[target] > LAYERS[own]:
                bad.append(f"{path}:{line}: includes {m.group(1)}: {target} is above {own}")
            elif LAYERS[target] == LAYERS[own]:
                bad.append(f"{path}:{line}: includes {m.group(1)}: {target} and {own} are on one layer")
    return bad


def self_test():
    with tempfile.TemporaryDirectory() as d:
        for rel, text in {"shm/ring.c": '#include "common/x.h"\n',
                          "plugins/client.c": '#include "protocol/protocol.h"\n'}.items():
            os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
            open(os.path.join(d, rel), "w").write(text)
        assert check(d) == [], check(d)
        open(os.path.join(d, "shm/ring.c"), "a").write('#include "hub/hub.h"\n')
        open(os.path.join(d, "plugins/client.c"), "a").write('#include "hub/hub_internal.h"\n')
        got = check(d)
        assert len(got) == 2 and "hub is above shm" in got[0] + got[1], got
        assert "on one layer" in got[0] + got[1], got
    with tempfile.TemporaryDirectory() as d:
        # A bare include of a header of the tree fails; one the build generates passes.
        for rel, text in {"shm/ring.h": "", "shm/ring.c": '#include "ring.h"\n#include "vmlinux.h"\n',
                          "plugins/examples/host.c": '#include "ring.h"\n'}.items():
            os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
            open(os.path.join(d, rel), "w").write(text)
        got = check(d)
        assert len(got) == 2 and all("ring.h without its folder" in g for g in got), got
    print("check-layers: self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bad = check(root)
    for b in bad:
        print(b, file=sys.stderr)
    if bad:
        print(f"check-layers: {len(bad)} include(s) point up the layers or name no folder (see scripts/check-layers.py)",
              file=sys.stderr)
        return 1
    print("check-layers: every include names its folder and points down the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
