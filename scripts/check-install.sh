#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make install into a scratch DESTDIR, then use what was installed as an
# operator and a developer would: the library by its SONAME, the header
# through pkg-config (the example host builds against it), topohubctl, the
# Python binding, the man pages. Then make uninstall leaves nothing behind.
# Usage: scripts/check-install.sh BUILD
set -eu
build=${1:-build}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
fail() { echo "check-install: $*" >&2; exit 1; }
make --no-print-directory -s install BUILD="$build" DESTDIR="$dest" PREFIX=/usr >/dev/null
lib="$dest/usr/lib/libtopohub.so.1"
[ -L "$lib" ] || fail "no libtopohub.so.1 symlink"
readelf -d "$(readlink -f "$lib")" | grep -q 'SONAME.*\[libtopohub.so.1\]' || fail "SONAME is not libtopohub.so.1"
[ "$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}')" = "th_api_get@@TOPOHUB_1" ] ||
	fail "the installed library exports more than th_api_get"
# A host built against the installed header, through pkg-config.
cflags=$(PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_LIBDIR="$dest/usr/lib/pkgconfig" pkg-config --cflags topohub)
${CC:-cc} -std=c11 -Wall -Werror $cflags plugins/examples/watch_prefix.c -o "$dest/watch_prefix" ||
	fail "the example host does not build against the installed header"
# topohubctl and the library as installed (the library found by its SONAME).
LD_LIBRARY_PATH="$dest/usr/lib" "$dest/usr/bin/topohubctl" help >/dev/null || fail "installed topohubctl does not run"
LD_LIBRARY_PATH="$dest/usr/lib" PYTHONPATH="$dest/usr/lib/python3/dist-packages" python3 -c \
	'import topohub; topohub.api(); print("ok")' >/dev/null 2>&1 ||
	fail "the installed Python binding cannot load the installed library"
if command -v groff >/dev/null 2>&1; then
	for m in man8/topohubd.8 man1/topohubctl.1 man3/libtopohub.3; do
		[ -z "$(groff -man -Tutf8 -ww -z "$dest/usr/share/man/$m" 2>&1)" ] || fail "man page $m: groff warns"
	done
else
	echo "check-install: groff is not installed: man pages not rendered" >&2
fi
make --no-print-directory -s uninstall BUILD="$build" DESTDIR="$dest" PREFIX=/usr >/dev/null
left=$(find "$dest/usr" "$dest/etc" -type f -o -type l 2>/dev/null | grep -v '/watch_prefix$' || true)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "check-install: installed, used and uninstalled"
