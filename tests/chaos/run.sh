#!/bin/sh
# The topohub chaos run: tests/chaos/run.sh [--duration S] [--build DIR] [--seed N] [--faults LIST] ...
# (see tests/chaos/chaos.py). Exit 0 clean, 1 violations, 2 setup failure.
# Under SAN=address/thread it is skipped (exit 0, reason printed): the
# subscribers are Python processes that load libtopohub.so, and a sanitizer
# runtime cannot be loaded into an uninstrumented interpreter after start.
set -eu
cd "$(dirname "$0")/../.."
if [ -n "${SAN:-}" ]; then
	echo "chaos: skipped under SAN=$SAN: the subscribers are python3 processes loading libtopohub.so, and the $SAN runtime must come first in an uninstrumented interpreter (LD_PRELOAD of it breaks python3's own allocations)"
	exit 0
fi
PY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import pymysql' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
	echo "chaos: python3 with pymysql is missing (scripts/install-deps.sh test installs python3-pymysql)" >&2
	exit 2
fi
exec "$PY" tests/chaos/chaos.py "$@"
