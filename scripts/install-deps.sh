#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages topohub needs, when any is missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
# Usage: scripts/install-deps.sh [build|test|package|bench|trace]...   (default: build test)
set -eu

groups="${*:-build test}"
pkgs=""
for g in $groups; do
	case "$g" in
	build) pkgs="$pkgs gcc make pkg-config liburcu-dev libmariadb-dev libmariadb-dev-compat libzstd-dev zlib1g-dev libisal-dev libinih-dev libcmocka-dev systemtap-sdt-dev libcurl4-openssl-dev libmicrohttpd-dev" ;;
	test)  pkgs="$pkgs clang libclang-rt-14-dev mariadb-server mariadb-client mariadb-test-data python3 python3-pymysql prometheus" ;;
	package) pkgs="$pkgs dpkg-dev debhelper dh-python lintian python3-setuptools python3-wheel python3-venv python3-pip" ;;
	bench) pkgs="$pkgs etcd-server etcd-client gnuplot-nox" ;;
	trace) pkgs="$pkgs clang libbpf-dev bpftool systemtap-sdt-dev linux-libc-dev" ;;
	*) echo "install-deps: unknown group '$g' (build, test, package, bench, trace)" >&2; exit 2 ;;
	esac
done

missing=""
for p in $pkgs; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "topohub needs these Debian packages:$missing" >&2
	echo "run as root: apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# mariadb-server must not start a system instance: tests run their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null
