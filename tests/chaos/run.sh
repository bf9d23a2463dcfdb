#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The topohub chaos run: tests/chaos/run.sh [--duration S] [--build DIR] [--seed N] [--faults LIST] ...
# (see tests/chaos/chaos.py). Exit 0 clean, 1 violations, 2 setup failure.
# Under SAN=thread it is skipped (exit 0, reason printed): the subscribers
# are python3 processes and CPython is not built for TSan. Under
# SAN=address the hubs are the ASan build and the subscribers get the ASan
# runtime preloaded (leak checks off: CPython keeps its arenas).
set -eu
cd "$(dirname "$0")/../.."
if [ "${SAN:-}" = thread ]; then
	echo "chaos: skipped under SAN=thread: the subscribers are python3 processes, and CPython is not built for TSan (the hub and library run under TSan in the cmocka suite)"
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
