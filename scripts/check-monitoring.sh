#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The monitoring files in doc/monitoring/ against promtool (Debian's
# prometheus package, scripts/install-deps.sh test):
#   - promtool check rules and test rules on the alerting rules;
#   - promtool check metrics on `topohubctl metrics`: from a live hub when
#     TOPOHUB_SOCKET names one (topohubctl: $TOPOHUB_CTL, else BUILD's),
#     else on the saved sample
#     doc/monitoring/metrics-sample.prom;
#   - the sample has exactly the families that protocol/metrics.c writes (so it
#     cannot go stale unnoticed), and the rules and the dashboard use only
#     families that exist;
#   - the dashboard is valid JSON.
# Usage: scripts/check-monitoring.sh [BUILD]   (BUILD: where topohubctl is, default build)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
mon=doc/monitoring
fail() { echo "check-monitoring: FAIL: $*" >&2; exit 1; }
if ! command -v promtool >/dev/null 2>&1; then
	echo "check-monitoring: skipped: promtool is missing (apt-get install prometheus, or scripts/install-deps.sh test)"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

promtool check rules "$mon/topohub-alerts.yml" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "promtool check rules"; }
(cd "$mon" && promtool test rules topohub-alerts.test.yml) >"$tmp/out" 2>&1 ||
	{ cat "$tmp/out" >&2; fail "promtool test rules"; }

sample="$mon/metrics-sample.prom"
what="the saved sample $sample"
if [ -n "${TOPOHUB_SOCKET:-}" ]; then
	"${TOPOHUB_CTL:-$build/topohubctl}" --socket "$TOPOHUB_SOCKET" metrics >"$tmp/metrics.prom" || fail "topohubctl metrics"
	sample="$tmp/metrics.prom"
	what="topohubctl metrics from $TOPOHUB_SOCKET"
fi
# promtool prints its lint findings (and exits non-zero on them).
promtool check metrics <"$sample" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "promtool check metrics on $what"; }
[ -s "$tmp/out" ] && { cat "$tmp/out" >&2; fail "promtool check metrics on $what"; }
# What promtool lets through: a family's samples must follow its own HELP
# and TYPE, all together (the text format's rule; promtool merges them).
awk '/^# TYPE / { fam = $3; if (seen[fam]++) { print "TYPE twice: " fam; bad = 1 } next }
	/^#/ || /^$/ { next }
	{ n = $1; sub(/\{.*/, "", n); b = n; sub(/_(bucket|sum|count)$/, "", b)
	  if (n != fam && b != fam) { print "sample outside its family: " $0; bad = 1 } }
	END { exit bad }' "$sample" >"$tmp/out" || { cat "$tmp/out" >&2; fail "$what: families not grouped"; }

# The families: written by protocol/metrics.c (quoted names), present in the sample.
grep -o '"topohub_[a-z_]*' protocol/metrics.c | tr -d '"' | sort -u >"$tmp/code"
sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p' "$mon/metrics-sample.prom" | sort >"$tmp/sample"
[ -z "$(uniq -d "$tmp/sample")" ] || fail "families declared twice in the sample: $(uniq -d "$tmp/sample")"
diff "$tmp/code" "$tmp/sample" >"$tmp/out" ||
	{ cat "$tmp/out" >&2; fail "$mon/metrics-sample.prom is stale (< in the code only, > in the sample only): save a fresh topohubctl metrics"; }
for f in "$mon/topohub-alerts.yml" "$mon/grafana-topohub.json"; do
	for m in $(grep -o 'topohub_[a-z_]*' "$f" | sort -u); do
		case "$m" in topohub_source) continue ;; esac # mysqld_exporter's label (topohub-alerts.yml)
		# A histogram's series: its family's name and _bucket, _sum or _count.
		case "$m" in *_bucket|*_sum|*_count) b=${m%_*}; grep -qx "$b" "$tmp/sample" && m=$b ;; esac
		grep -qx "$m" "$tmp/sample" || fail "$f uses $m, which topohubctl metrics does not write"
	done
done
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["panels"], "no panels"' \
	"$mon/grafana-topohub.json" || fail "$mon/grafana-topohub.json is not a dashboard"
echo "check-monitoring: rules checked and tested, metrics lint-clean ($what), dashboard valid"
