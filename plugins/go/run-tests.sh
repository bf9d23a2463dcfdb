#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The Go client's tests, as make test runs them (from the repository root or
# anywhere): vet and build with CGO_ENABLED=0 (the client must need no cgo),
# the tests under the race detector (which needs cgo), then a short fuzz run
# of every Fuzz target. The tests start a private MariaDB and $BUILD/topohubd
# (they skip, saying why, when either is missing).
#
# Environment: BUILD (the C build folder, default build, relative to the
# repository root), FUZZTIME (per target, default 3s), GO (default go).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build="$root/$build" ;; esac
GO=${GO:-go}
fuzztime=${FUZZTIME:-3s}

if ! command -v "$GO" >/dev/null 2>&1; then
	echo "plugins/go: SKIPPED: no Go toolchain ($GO not found; apt-get install golang, or set GO)"
	exit 0
fi
export TOPOHUB_BUILD="$build"
cd "$here"
start=$(date +%s)

echo "=== go vet (CGO_ENABLED=0)"
CGO_ENABLED=0 "$GO" vet ./...
echo "=== go build (CGO_ENABLED=0)"
CGO_ENABLED=0 "$GO" build ./...

echo "=== go test -race"
if CGO_ENABLED=1 "$GO" test -race -count=1 ./... ; then :; else
	echo "plugins/go: go test -race FAILED"
	exit 1
fi

for pkg in $(CGO_ENABLED=0 "$GO" list ./...); do
	for target in $(CGO_ENABLED=0 "$GO" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "=== fuzz $pkg $target ($fuzztime)"
		CGO_ENABLED=0 "$GO" test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg"
	done
done
echo "plugins/go: all passed in $(( $(date +%s) - start ))s"
