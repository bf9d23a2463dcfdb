#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make package-test: build the Debian packages from a copy of the tree in a
# temporary folder, check them with lintian, install them, run what they
# installed as an operator would (the topohub user from the sysusers entry,
# /run/topohub from the tmpfiles entry, /usr/sbin/topohubd as that user
# against a private MariaDB, /usr/bin/topohubctl, a C host built through
# pkg-config against libtopohub-dev, the Python binding as installed, the
# metrics through promtool), then remove and purge them and check that
# nothing is left behind: after `dpkg -r` only the configuration, after
# `dpkg --purge` nothing.
#
# About 1.5 minutes on two cores (the package build compiles the tree again),
# so it is a target of its own, not part of make test. It installs and
# removes system packages: it needs root and a machine where none of the four
# is installed already; otherwise it says why it skips and exits 0.
# Environment: TOPOHUB_PKG_KEEP=1 keeps the temporary folder.
set -eu
cd "$(dirname "$0")/.."
PKGS="topohubd libtopohub1 libtopohub-dev python3-topohub"

skip() { echo "check-package: skipped: $*"; exit 0; }
fail() { echo "check-package: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root (it installs and removes packages)"
for p in dpkg-buildpackage dpkg-checkbuilddeps apt-get lintian setpriv cc; do
	command -v "$p" >/dev/null 2>&1 || skip "$p is missing (scripts/install-deps.sh package)"
done
dpkg-checkbuilddeps debian/control 2>/dev/null || skip "build dependencies are missing: $(dpkg-checkbuilddeps debian/control 2>&1 | sed 's/.*Unmet build dependencies: //') (scripts/install-deps.sh package)"
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)
[ -x "$MARIADBD" ] && command -v mariadb-install-db >/dev/null 2>&1 || skip "MariaDB is missing (scripts/install-deps.sh test)"
for p in $PKGS; do
	case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" in
	*"ok installed"* | *config-files*) skip "$p is already installed here: this check would remove it" ;;
	esac
done

version=$(sed -n 's/^VERSION *:= *//p' Makefile)
[ "$(dpkg-parsechangelog -S Version)" = "$version" ] ||
	fail "debian/changelog is at $(dpkg-parsechangelog -S Version), the Makefile's VERSION at $version: add a changelog entry (dch -v $version)"

dir=$(mktemp -d "${TMPDIR:-/tmp}/topohub-pkg-XXXXXX")
chmod 0755 "$dir" # the topohub user reaches MariaDB's socket and the configuration here
db_pid="" hub_pid="" installed=""
cleanup() {
	status=$?
	trap - EXIT INT TERM
	set +e
	[ -n "$hub_pid" ] && kill -TERM "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
	if [ -n "$db_pid" ]; then
		kill -TERM "$db_pid" 2>/dev/null || true
		i=0
		while kill -0 "$db_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$db_pid" 2>/dev/null || true
		wait "$db_pid" 2>/dev/null || true
	fi
	# Never leave the packages installed, even after a failure.
	[ -n "$installed" ] && dpkg --purge $PKGS >/dev/null 2>&1
	if [ "${TOPOHUB_PKG_KEEP:-0}" = 1 ]; then echo "check-package: kept $dir"; else rm -rf "$dir"; fi
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { echo "check-package: $*"; }

# ---- build, from a copy: dpkg-buildpackage writes its results into ../ -------
step "building the packages in $dir"
src="$dir/topohub-$version"
mkdir "$src"
{ git ls-files; git ls-files --others --exclude-standard; } | sort -u |
	while read -r f; do [ -e "$f" ] && printf '%s\n' "$f"; done | tar -cf - -T - | tar -xf - -C "$src"
(cd "$src" && dpkg-buildpackage -us -uc -b >"$dir/build.log" 2>&1) ||
	{ tail -40 "$dir/build.log" >&2; fail "dpkg-buildpackage failed (log above)"; }
debs=""
for p in $PKGS; do
	f=$(ls "$dir/${p}_"*.deb 2>/dev/null | head -1)
	[ -n "$f" ] || fail "no package $p was built"
	debs="$debs $f"
done
changes=$(ls "$dir"/topohub_*.changes)

# ---- lintian: errors and warnings fail (the overrides say why each is kept) --
step "lintian"
rc=0
lintian --fail-on error,warning "$changes" >"$dir/lintian.log" 2>&1 || rc=$?
grep -v 'running with root privileges' "$dir/lintian.log" | sed 's/^/  lintian: /' || true
[ "$rc" -eq 0 ] || fail "lintian (exit $rc)"

# ---- install -----------------------------------------------------------------
step "installing$(for d in $debs; do printf ' %s' "${d##*/}"; done)"
installed=1
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $debs >"$dir/install.log" 2>&1 ||
	{ cat "$dir/install.log" >&2; fail "apt-get install"; }
for p in $PKGS; do dpkg -L "$p" >"$dir/$p.list"; done
getent passwd topohub >/dev/null || fail "no user topohub after install (sysusers entry)"
[ "$(stat -c %U:%G "/run/topohub" 2>/dev/null)" = topohub:topohub ] || fail "no /run/topohub owned by topohub (tmpfiles entry)"
[ -x /usr/sbin/topohubd ] && [ -x /usr/bin/topohubctl ] || fail "topohubd or topohubctl not installed"
doc=$(sed -n 's|^Documentation=file://||p' /lib/systemd/system/topohubd.service)
[ -f "$doc" ] || fail "the unit's Documentation= names $doc, which is not installed"
case "$(systemctl is-enabled topohubd.service 2>/dev/null || true)" in
enabled) fail "topohubd.service was enabled on install (it cannot run before it is configured)" ;;
esac

# ---- a private MariaDB ---------------------------------------------------------
step "starting a private MariaDB"
sock="$dir/mysql.sock"
small="--innodb-buffer-pool-size=16M --innodb-log-file-size=8M --innodb-log-buffer-size=2M
 --innodb-data-file-path=ibdata1:4M:autoextend --innodb-undo-tablespaces=0 --performance-schema=OFF"
# shellcheck disable=SC2086
mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --auth-root-authentication-method=normal \
	--skip-test-db --skip-name-resolve $small >"$dir/mariadb-install.log" 2>&1 ||
	{ cat "$dir/mariadb-install.log" >&2; fail "mariadb-install-db"; }
# shellcheck disable=SC2086
"$MARIADBD" --no-defaults --user=root --datadir="$dir/data" --socket="$sock" --skip-networking \
	--pid-file="$dir/mariadbd.pid" --log-error="$dir/mariadbd.err" --tmpdir="$dir" \
	--server-id=1 --log-bin="$dir/data/binlog" --binlog-format=ROW --binlog-row-image=FULL \
	--binlog-row-metadata=FULL --binlog-checksum=CRC32 --gtid-strict-mode=ON \
	--innodb-flush-log-at-trx-commit=2 --sync-binlog=0 --innodb-doublewrite=0 --innodb-use-native-aio=0 \
	--loose-feedback=OFF $small >/dev/null 2>&1 &
db_pid=$!
i=0
until mariadb -S "$sock" -u root -e "SELECT 1" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 300 ] && { tail -20 "$dir/mariadbd.err" >&2; fail "MariaDB did not start"; }
	kill -0 "$db_pid" 2>/dev/null || { tail -20 "$dir/mariadbd.err" >&2; fail "MariaDB exited"; }
	sleep 0.1
done
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
mariadb -S "$sock" -u root -e "
CREATE DATABASE topo;
CREATE TABLE topo.topo_data (path VARCHAR(512) NOT NULL PRIMARY KEY, data MEDIUMBLOB,
  version BIGINT NOT NULL DEFAULT 1, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=InnoDB;
CREATE TABLE topo.topo_locks (path VARCHAR(512) NOT NULL PRIMARY KEY, contents TEXT,
  expires_at TIMESTAMP NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  INDEX expires_idx (expires_at)) ENGINE=InnoDB;
CREATE TABLE topo.topo_elections (name VARCHAR(512) NOT NULL PRIMARY KEY, leader_id VARCHAR(255) NOT NULL,
  contents TEXT, expires_at TIMESTAMP NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  INDEX expires_idx (expires_at)) ENGINE=InnoDB;
CREATE USER 'topohub'@'localhost' IDENTIFIED BY '$password';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SLAVE MONITOR, SELECT ON *.* TO 'topohub'@'localhost';
INSERT INTO topo.topo_data (path, data) VALUES ('/keyspaces/pkg/Keyspace', 'installed');"
sql() { mariadb -S "$sock" -u root topo -e "$1"; }
gtid() { mariadb -S "$sock" -u root -N -e 'SELECT @@gtid_binlog_pos'; }

# ---- the installed hub, as the topohub user ---------------------------------------
step "starting /usr/sbin/topohubd as user topohub"
hubsock=/run/topohub/check-package.sock
# The password file as an operator would keep it: mode 0600, owner topohub.
printf '%s\n' "$password" >"$dir/password"
chown topohub:topohub "$dir/password"
chmod 0600 "$dir/password"
cat >"$dir/topohubd.ini" <<EOF
[hub]
socket = $hubsock
socket_mode = 0660
socket_group = topohub
ring_capacity = 4M
[mysql]
user = topohub
password_file = $dir/password
sources = $sock
EOF
setpriv --reuid=topohub --regid=topohub --init-groups /usr/sbin/topohubd --config "$dir/topohubd.ini" 2>"$dir/topohubd.log" &
hub_pid=$!
i=0
until topohubctl --socket "$hubsock" status >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 200 ] && { cat "$dir/topohubd.log" >&2; fail "the installed topohubd did not become ready"; }
	kill -0 "$hub_pid" 2>/dev/null || { cat "$dir/topohubd.log" >&2; fail "the installed topohubd exited"; }
	sleep 0.05
done
[ "$(stat -c %U "$hubsock")" = topohub ] || fail "the control socket is not the topohub user's"
[ "$(ps -o user= -p "$(topohubctl --socket "$hubsock" --json status | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')")" = topohub ] ||
	fail "the hub does not run as topohub"
topohubctl --socket "$hubsock" status | sed 's/^/  status: /'

# ---- watchers through the installed library ------------------------------------------
step "a C host built through pkg-config against libtopohub-dev"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror $(pkg-config --cflags topohub) plugins/examples/watch_prefix.c -o "$dir/watch_prefix" ||
	fail "the example host does not build against the installed libtopohub-dev"
TOPOHUB_SOCKET="$hubsock" timeout 20 "$dir/watch_prefix" --count 1 /keyspaces >"$dir/watch.log" 2>&1 &
watch_pid=$!
i=0
until grep -q SYNCED "$dir/watch.log" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 200 ] && { cat "$dir/watch.log" >&2; fail "the C host did not sync"; }
	sleep 0.05
done
sql "INSERT INTO topo_data (path, data) VALUES ('/keyspaces/pkg/shards/0/Shard', 'from the package test')"
wait "$watch_pid" || { cat "$dir/watch.log" >&2; fail "the C host did not see the change"; }
grep -q 'PUT.*/keyspaces/pkg/shards/0/Shard' "$dir/watch.log" || { cat "$dir/watch.log" >&2; fail "the C host saw another change"; }

# Debian's interpreter, the one python3-topohub is for (not a python3 earlier in PATH).
step "the installed Python binding (python3-topohub, /usr/bin/python3)"
(cd / && TOPOHUB_SOCKET="$hubsock" /usr/bin/python3 - "$hubsock" "$(gtid)" <<'EOF') || fail "the installed Python binding"
import sys, topohub
assert topohub.__file__ == "/usr/lib/python3/dist-packages/topohub.py", topohub.__file__
with topohub.Hub(sys.argv[1]) as h:
    h.sync(sys.argv[2])
    value, version, revision = h.get("/keyspaces/pkg/shards/0/Shard")
    assert value == b"from the package test", value
print("  python: get after sync:", value.decode(), "revision", revision)
EOF

step "the installed topohubctl's metrics: scripts/check-monitoring.sh"
TOPOHUB_SOCKET="$hubsock" TOPOHUB_CTL=/usr/bin/topohubctl scripts/check-monitoring.sh >"$dir/monitoring.log" 2>&1 ||
	{ cat "$dir/monitoring.log" >&2; fail "scripts/check-monitoring.sh on the installed hub"; }
sed 's/^/  /' "$dir/monitoring.log"

step "stopping the hub (SIGTERM: exit 0)"
kill -TERM "$hub_pid"
wait "$hub_pid" || { cat "$dir/topohubd.log" >&2; fail "topohubd exit $? on SIGTERM"; }
hub_pid=""

# ---- remove, then purge ------------------------------------------------------------------
step "dpkg -r: only the configuration stays"
dpkg -r $PKGS >"$dir/remove.log" 2>&1 || { cat "$dir/remove.log" >&2; fail "dpkg -r"; }
conffiles="/etc/topohub/topohubd.ini.example"
for p in $PKGS; do
	while read -r f; do
		if [ -d "$f" ]; then continue; fi # (/lib: a symlink to a folder)
		case " $conffiles " in *" $f "*) continue ;; esac
		if [ -e "$f" ] || [ -L "$f" ]; then fail "dpkg -r $p left $f"; fi
	done <"$dir/$p.list"
done
for f in $conffiles; do [ -e "$f" ] || fail "dpkg -r removed the configuration $f"; done
step "dpkg --purge: nothing stays"
dpkg --purge $PKGS >"$dir/purge.log" 2>&1 || { cat "$dir/purge.log" >&2; fail "dpkg --purge"; }
installed=""
for p in $PKGS; do
	case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" in
	*" ok installed"* | *config-files* | *half-*) fail "$p is still known to dpkg after purge" ;;
	esac
	while read -r f; do
		if [ -d "$f" ] && [ "$f" != /etc/topohub ]; then continue; fi
		if [ -e "$f" ] || [ -L "$f" ]; then fail "dpkg --purge $p left $f"; fi
	done <"$dir/$p.list"
done
left=$(find /usr/lib/python3/dist-packages -maxdepth 2 -name 'topohub*' 2>/dev/null)
[ -z "$left" ] || fail "left in dist-packages: $left"
echo "check-package: built, lintian clean, installed, run, removed and purged"
