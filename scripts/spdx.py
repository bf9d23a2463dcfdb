#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Every source file says its license in its first lines (SPDX). `--check`
(run by make test) lists the files without one; without it, the line is added.

The project is Apache-2.0 (LICENSE), as Vitess is, so code and users move
between the two. The one exception is the BPF program of the tracer, which
the kernel only loads under a GPL-compatible license: it is dual BSD/GPL, as
its LICENSE section says.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "SPDX-License-Identifier:"
EXCEPTIONS = {"bench/trace/topohub_trace.bpf.c": "(BSD-2-Clause OR GPL-2.0-only)"}
COMMENT = {".c": ("/* ", " */"), ".h": ("/* ", " */"), ".go": ("// ", ""), ".py": ("# ", ""),
           ".sh": ("# ", ""), ".mk": ("# ", ""), ".gp": ("# ", ""), ".service": ("# ", ""),
           ".supp": ("# ", ""), "Makefile": ("# ", ""), "run": ("# ", "")}


def sources():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout.split()
    for f in out:
        if f.startswith(("bench/results/", "plugins/go/topohub/testdata/")) or not os.path.exists(
                os.path.join(ROOT, f)):
            continue
        base = os.path.basename(f)
        ext = os.path.splitext(base)[1] or base
        if ext in COMMENT:
            yield f, COMMENT[ext]


def main():
    check = sys.argv[1:] == ["--check"]
    missing = []
    for f, (open_, close) in sources():
        path = os.path.join(ROOT, f)
        with open(path) as fh:
            text = fh.read()
        if TAG in "\n".join(text.splitlines()[:3]):
            continue
        if check:
            missing.append(f)
            continue
        line = f"{open_}{TAG} {EXCEPTIONS.get(f, 'Apache-2.0')}{close}\n"
        if f.endswith(".go"):
            line += "\n"  # not part of the package's doc comment
        if text.startswith("#!"):
            first, _, rest = text.partition("\n")
            text = first + "\n" + line + rest
        else:
            text = line + text
        with open(path, "w") as fh:
            fh.write(text)
    if missing:
        for f in missing:
            print(f"{f}: no {TAG} line (run scripts/spdx.py)", file=sys.stderr)
        return 1
    if check:
        print("spdx: every source file names its license")
    return 0


if __name__ == "__main__":
    sys.exit(main())
