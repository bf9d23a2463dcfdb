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
echo "results: bench/results/*-$stamp.jsonl" >&2
