#!/bin/sh
# make bench: runs every benchmark and writes JSON lines to bench/results/.
# Usage: bench/run.sh BUILD_DIR     (QUICK=1 for a short run)
set -eu
build="${1:-build}"
cd "$(dirname "$0")/.."
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
quick=""
[ "${QUICK:-0}" = 1 ] && quick="--quick"

echo "== ring (floors, latency per wait mode, publish throughput)" >&2
"$build/topohub-bench" ring --json $quick > "bench/results/ring-$stamp.jsonl"
cp "bench/results/ring-$stamp.jsonl" bench/results/ring-latest.jsonl

if [ -x bench/gen-topo-binlog.sh ]; then
	echo "== decode" >&2
	data=bench/data/topo-updates.binlog
	[ -f "$data" ] || bench/gen-topo-binlog.sh 1000000 "$data" >&2
	"$build/topohub-bench" decode --json "$data" > "bench/results/decode-$stamp.jsonl"
	cp "bench/results/decode-$stamp.jsonl" bench/results/decode-latest.jsonl
fi
echo "== end to end (topohub against its peers; bench/e2e/run.py)" >&2
bench/e2e/run.py --build "$build" $quick --out "bench/results/e2e-$stamp.jsonl"
cp "bench/results/e2e-$stamp.jsonl" bench/results/e2e-latest.jsonl

echo "== report: bench/RESULTS.md and bench/plots/" >&2
bench/e2e/report.py --command "make bench${quick:+ QUICK=1}"
echo "results: bench/results/*-$stamp.jsonl" >&2
