#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make bench: runs every benchmark and writes JSON lines to bench/results/.
# Usage: bench/run.sh BUILD_DIR     (QUICK=1 for a short run)
set -eu
build="${1:-build}"
cd "$(dirname "$0")/.."
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
quick=""
[ "${QUICK:-0}" = 1 ] && quick="--quick"

# A JSON line with the share of CPU time the hypervisor took from this VM
# (steal) between two /proc/stat samples: the host's part in the figures.
steal_line() {
	printf '%s\n%s\n' "$1" "$(head -1 /proc/stat)" | awk '
		{ t = 0; for (i = 2; i <= 9; i++) t += $i; tot[NR] = t; st[NR] = $9 }
		END { d = tot[2] - tot[1]; v = 0; if (d > 0) v = (st[2] - st[1]) / d
		      printf "{\"name\":\"host\",\"host_steal\":%.3f}\n", v }'
}

echo "== ring (floors, latency per wait mode, publish throughput)" >&2
s0=$(head -1 /proc/stat)
"$build/topohub-bench" ring --json $quick > "bench/results/ring-$stamp.jsonl"
steal_line "$s0" >> "bench/results/ring-$stamp.jsonl"
cp "bench/results/ring-$stamp.jsonl" bench/results/ring-latest.jsonl

if [ -x bench/gen-topo-binlog.sh ]; then
	echo "== decode" >&2
	data=bench/data/topo-updates.binlog
	[ -f "$data" ] || bench/gen-topo-binlog.sh 1000000 "$data" >&2
	s0=$(head -1 /proc/stat)
	"$build/topohub-bench" decode --json "$data" > "bench/results/decode-$stamp.jsonl"
	steal_line "$s0" >> "bench/results/decode-$stamp.jsonl"
	cp "bench/results/decode-$stamp.jsonl" bench/results/decode-latest.jsonl
fi
echo "== end to end (topohub against its peers; bench/e2e/run.py)" >&2
bench/e2e/run.py --build "$build" $quick --out "bench/results/e2e-$stamp.jsonl"
cp "bench/results/e2e-$stamp.jsonl" bench/results/e2e-latest.jsonl

echo "== report: bench/RESULTS.md and bench/plots/" >&2
bench/e2e/report.py --command "make bench${quick:+ QUICK=1}"
echo "results: bench/results/*-$stamp.jsonl" >&2
