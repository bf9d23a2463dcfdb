#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `pip install plugins/python` in a fresh venv, offline (--no-index,
# --no-build-isolation: the interpreter's own setuptools, Debian's
# python3-setuptools and python3-wheel): the wheel is pure Python (py3-none-any) with the one
# module, the installed module loads libtopohub.so.1 through the dynamic
# loader (LD_LIBRARY_PATH here, as libtopohub1 or make install would place
# it), its version is the Makefile's, and pip uninstall removes it.
# Usage: scripts/check-pip.sh [BUILD]
# PYTHON: the interpreter (default Debian's /usr/bin/python3, else python3).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
py=${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)}
fail() { echo "check-pip: FAIL: $*" >&2; exit 1; }
skip() { echo "check-pip: skipped: $*"; exit 0; }
"$py" -c 'import venv, ensurepip' 2>/dev/null || skip "$py has no venv/ensurepip (Debian: python3-venv)"
"$py" -c 'import setuptools, wheel' 2>/dev/null || skip "$py has no setuptools or wheel (Debian: python3-setuptools python3-wheel)"
[ -f "$build/libtopohub.so" ] || fail "$build/libtopohub.so is missing (make)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A copy: an in-tree setuptools build leaves build/ and *.egg-info behind.
cp -r plugins/python "$tmp/src"
rm -rf "$tmp/src/__pycache__"
"$py" -m venv --system-site-packages "$tmp/venv"
vpy="$tmp/venv/bin/python"
"$vpy" -m pip wheel -q --no-deps --no-index --no-build-isolation -w "$tmp/wheel" "$tmp/src" >"$tmp/log" 2>&1 ||
	{ cat "$tmp/log" >&2; fail "pip wheel"; }
whl=$(ls "$tmp/wheel"/*.whl)
version=$(sed -n 's/^VERSION *:= *//p' Makefile)
[ "${whl##*/}" = "topohub-$version-py3-none-any.whl" ] || fail "wheel ${whl##*/}: not topohub-$version-py3-none-any"
files=$("$vpy" -c 'import sys, zipfile; print(" ".join(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if ".dist-info/" not in n))' "$whl")
[ "$files" = topohub.py ] || fail "the wheel holds $files, not just topohub.py"
"$vpy" -m pip install -q --no-deps --no-index --no-build-isolation "$tmp/src" >"$tmp/log" 2>&1 ||
	{ cat "$tmp/log" >&2; fail "pip install plugins/python"; }
mkdir "$tmp/lib"
ln -s "$(cd "$build" && pwd)/libtopohub.so" "$tmp/lib/libtopohub.so.1"
(cd "$tmp" && env -u TOPOHUB_LIB LD_LIBRARY_PATH="$tmp/lib" "$vpy" -c '
import sys, topohub
assert topohub.__file__.startswith(sys.prefix), topohub.__file__
topohub.api()
from importlib.metadata import version
print(version("topohub"))') >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "the pip-installed module cannot load libtopohub.so.1"; }
[ "$(cat "$tmp/out")" = "$version" ] || fail "installed version $(cat "$tmp/out"), Makefile $version"
"$vpy" -m pip uninstall -q -y topohub >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "pip uninstall"; }
left=$(find "$tmp/venv" -name 'topohub*' | head -3)
[ -z "$left" ] || fail "pip uninstall left $left"
echo "check-pip: pip install plugins/python: a pure-Python wheel, loads libtopohub.so.1, uninstalls cleanly"
