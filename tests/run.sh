#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the test programs given as arguments, each under a time limit, and prints
# one closing line: "N passed, N failed, N skipped" counted over all cmocka tests.
# Environment: SAN names the sanitizer build, for the log only. The tests find
# their binlog fixtures in tests/fixtures/binlog (from here, the repository
# root; TH_FIXTURES overrides).
set -u
cd "$(dirname "$0")/.."
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$(pwd)/tests/tsan.supp}"
limit="${TEST_TIMEOUT:-600}"

passed=0 failed=0 skipped=0 broken=""
log=$(mktemp)
for t in "$@"; do
	name=$(basename "$t")
	echo "=== $name${SAN:+ (SAN=$SAN)}"
	start=$(date +%s)
	timeout --signal=KILL "$limit" "$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# The program died (sanitizer, signal, time limit) without cmocka counting it.
		failed=$((failed + 1))
	fi
	[ "$rc" -ne 0 ] && broken="$broken $name(rc=$rc)"
	echo "=== $name: rc=$rc, $(( $(date +%s) - start ))s"
done
rm -f "$log"
[ -n "$broken" ] && echo "failing programs:$broken"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ -z "$broken" ]
