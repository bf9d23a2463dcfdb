#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make demo: a private MariaDB with the mysqltopo schema, topohubd reading its
# binlog, three watcher processes (an exact watch in topohubctl, a recursive
# watch in the C example host, a recursive watch of the elections in Python),
# and a scripted series of topology changes through SQL. After each change it
# shows what each watcher received, with the hub-to-callback latency in us.
# Everything runs as the current user in a temporary folder, and stops at the
# end (or on Ctrl-C). Exit 0 when every watcher saw what it should.
#
# Environment: BUILD (default build), CC (default cc), TOPOHUB_DEMO_KEEP=1
# keeps the folder (logs, config) for a look afterwards.
set -eu
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
CC="${CC:-cc}"

for f in "$BUILD/topohubd" "$BUILD/topohubctl" "$BUILD/libtopohub.so"; do
	[ -x "$f" ] || [ -f "$f" ] || { echo "demo: $f is missing; run make first" >&2; exit 1; }
done
for p in mariadbd mariadb-install-db mariadb python3; do
	command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] ||
		{ echo "demo: $p is missing (scripts/install-deps.sh test)" >&2; exit 1; }
done
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

dir=$(mktemp -d "${TMPDIR:-/tmp}/topohub-demo-XXXXXX")
sock="$dir/mysql.sock"
hubsock="$dir/hub.sock"
pids=""
db_pid="" hub_pid=""

if [ -t 1 ]; then
	say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi

cleanup() {
	status=$?
	trap - EXIT INT TERM
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	[ -n "$hub_pid" ] && kill -TERM "$hub_pid" 2>/dev/null || true
	for p in $pids $hub_pid; do wait "$p" 2>/dev/null || true; done
	if [ -n "$db_pid" ]; then
		kill -TERM "$db_pid" 2>/dev/null || true
		i=0
		while kill -0 "$db_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$db_pid" 2>/dev/null || true
		wait "$db_pid" 2>/dev/null || true
	fi
	if [ "${TOPOHUB_DEMO_KEEP:-0}" = 1 ]; then
		echo "demo: kept $dir"
	else
		rm -rf "$dir"
	fi
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- MariaDB -----------------------------------------------------------------
say "1. A private MariaDB (binlog in ROW format, GTIDs) in $dir"
user_arg=""
[ "$(id -u)" -eq 0 ] && user_arg="--user=root"
small="--innodb-buffer-pool-size=16M --innodb-log-file-size=8M --innodb-log-buffer-size=2M
 --innodb-data-file-path=ibdata1:4M:autoextend --innodb-undo-tablespaces=0 --performance-schema=OFF"
# shellcheck disable=SC2086
mariadb-install-db --no-defaults $user_arg --datadir="$dir/data" --auth-root-authentication-method=normal \
	--skip-test-db --skip-name-resolve $small >"$dir/install.log" 2>&1 ||
	{ cat "$dir/install.log" >&2; exit 1; }
# shellcheck disable=SC2086
"$MARIADBD" --no-defaults $user_arg --datadir="$dir/data" --socket="$sock" --skip-networking \
	--pid-file="$dir/mariadbd.pid" --log-error="$dir/mariadbd.err" --tmpdir="$dir" \
	--server-id=1 --log-bin="$dir/data/binlog" --binlog-format=ROW --binlog-row-image=FULL \
	--binlog-row-metadata=FULL --binlog-checksum=CRC32 --gtid-strict-mode=ON \
	--innodb-flush-log-at-trx-commit=2 --sync-binlog=0 --innodb-doublewrite=0 --innodb-use-native-aio=0 \
	--loose-feedback=OFF $small >/dev/null 2>&1 &
db_pid=$!
i=0
until mariadb -S "$sock" -u root -e "SELECT 1" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 300 ] && { echo "demo: MariaDB did not start:" >&2; tail -20 "$dir/mariadbd.err" >&2; exit 1; }
	kill -0 "$db_pid" 2>/dev/null || { tail -20 "$dir/mariadbd.err" >&2; exit 1; }
	sleep 0.1
done
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
sql() { mariadb -S "$sock" -u root topo -e "$1"; }
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
GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SLAVE MONITOR, SELECT ON *.* TO 'topohub'@'localhost';"
echo "   MariaDB $(mariadb -S "$sock" -u root -N -e 'SELECT VERSION()'), schema topo created"

# ---- the hub -------------------------------------------------------------------
say "2. topohubd: one binlog stream for the whole host"
cat >"$dir/topohubd.ini" <<EOF
[hub]
socket = $hubsock
socket_mode = 0600
ring_capacity = 4M
log_level = info

[mysql]
user = topohub
sources = $sock
EOF
TOPOHUB_MYSQL_PASSWORD="$password" "$BUILD/topohubd" --config "$dir/topohubd.ini" 2>"$dir/topohubd.log" &
hub_pid=$!
i=0
until "$BUILD/topohubctl" --socket "$hubsock" status >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 200 ] && { echo "demo: topohubd did not become ready:" >&2; cat "$dir/topohubd.log" >&2; exit 1; }
	kill -0 "$hub_pid" 2>/dev/null || { cat "$dir/topohubd.log" >&2; exit 1; }
	sleep 0.05
done
sed 's/^/   hub: /' "$dir/topohubd.log"

# ---- watchers -----------------------------------------------------------------------
mkdir -p "$BUILD/examples"
"$CC" -std=c11 -O2 -Wall -Wextra -Werror -Iplugins plugins/examples/watch_prefix.c -o "$BUILD/examples/watch_prefix"
export TOPOHUB_LIB="$BUILD/libtopohub.so" TOPOHUB_SOCKET="$hubsock" PYTHONDONTWRITEBYTECODE=1

say "3. Two watcher processes start (the third, an exact watch, once its path exists)"
"$BUILD/examples/watch_prefix" --name "C host, recursive /keyspaces" /keyspaces >"$dir/w2.log" 2>&1 &
w2=$!
python3 plugins/python/watch.py --name "Python, recursive elections" --table 2 -r / >"$dir/w3.log" 2>&1 &
w3=$!
pids="$w2 $w3"
echo "   [C host, recursive /keyspaces]        examples/watch_prefix (dlopen, its own poll loop, fd mode)"
echo "   [Python, recursive elections]         plugins/python/watch.py (ctypes), table topo_elections"

# Print what each watcher logged since the last call, once they are quiet.
shown_w1=0 shown_w2=0 shown_w3=0
show() {
	sleep 0.3
	for w in w1 w2 w3; do
		f="$dir/$w.log"
		[ -f "$f" ] || continue
		eval "n=\$shown_$w"
		total=$(wc -l <"$f")
		if [ "$total" -gt "$n" ]; then
			label=""
			[ "$w" = w1 ] && label="[topohubctl, exact /keyspaces/commerce/Keyspace] "
			tail -n +"$((n + 1))" "$f" | head -n "$((total - n))" | sed "s|^|   $label|"
			eval "shown_$w=$total"
		fi
	done
}
step() {
	say "$1"
	echo "   SQL> $2" | sed 's/; /;\n   SQL> /g'
	sql "$2"
	show
}
show

step "4. Create keyspace commerce" \
	"INSERT INTO topo_data (path, data) VALUES ('/keyspaces/commerce/Keyspace', '{\"sharding\":\"unsharded\"}')"

say "5. The third watcher: an exact watch of /keyspaces/commerce/Keyspace (topohubctl watch)"
# The hub is a replica: wait until it has published the keyspace, so that the
# watch starts from a state that has it (else: NOT_FOUND, and the watch ends).
"$BUILD/topohubctl" --socket "$hubsock" sync "$(mariadb -S "$sock" -u root -N -e 'SELECT @@gtid_binlog_pos')" >/dev/null
"$BUILD/topohubctl" --socket "$hubsock" watch /keyspaces/commerce/Keyspace >"$dir/w1.log" 2>&1 &
w1=$!
pids="$pids $w1"
show

step "6. Create shard commerce/0" \
	"INSERT INTO topo_data (path, data) VALUES ('/keyspaces/commerce/shards/0/Shard', '{\"primary\":\"zone1-100\"}')"

step "7. Create keyspace customer with two shards: one multi-row transaction" \
	"BEGIN; INSERT INTO topo_data (path, data) VALUES ('/keyspaces/customer/Keyspace', '{\"sharding\":\"hash\"}'); INSERT INTO topo_data (path, data) VALUES ('/keyspaces/customer/shards/-80/Shard', '{}'), ('/keyspaces/customer/shards/80-/Shard', '{}'); COMMIT"

step "8. Update keyspace commerce (version 2)" \
	"UPDATE topo_data SET data = '{\"sharding\":\"unsharded\",\"durability\":\"semi_sync\"}', version = version + 1 WHERE path = '/keyspaces/commerce/Keyspace'"

step "9. A primary election for commerce/0: zone1-100 leads" \
	"INSERT INTO topo_elections (name, leader_id, contents, expires_at) VALUES ('/keyspaces/commerce/shards/0', 'zone1-100', 'term 1', NOW() + INTERVAL 1 HOUR)"

step "10. The election row changes leader: zone1-101" \
	"UPDATE topo_elections SET leader_id = 'zone1-101', contents = 'term 2' WHERE name = '/keyspaces/commerce/shards/0'"

step "11. Reshard customer -80 into -40 and 40-80: one transaction" \
	"BEGIN; DELETE FROM topo_data WHERE path = '/keyspaces/customer/shards/-80/Shard'; INSERT INTO topo_data (path, data) VALUES ('/keyspaces/customer/shards/-40/Shard', '{}'), ('/keyspaces/customer/shards/40-80/Shard', '{}'); COMMIT"

step "12. Not under any watch: /keyspacesX (prefixes match whole path components)" \
	"INSERT INTO topo_data (path, data) VALUES ('/keyspacesX/other', 'nobody watches this')"

step "13. Delete keyspace commerce: its exact watch ends" \
	"DELETE FROM topo_data WHERE path LIKE '/keyspaces/commerce/%'"

# ---- checks -------------------------------------------------------------------
say "14. Checks"
fail=0
check() { # file, pattern, expected count, what
	n=$(grep -c -- "$2" "$dir/$1.log" || true)
	if [ "$n" -eq "$3" ]; then
		printf '   ok    %-60s (%s)\n' "$4" "$n"
	else
		printf '   FAIL  %-60s (%s, expected %s)\n' "$4" "$n" "$3"
		fail=1
	fi
}
check w1 " INITIAL " 1 "exact watch: the initial value"
check w1 " PUT " 1 "exact watch: the update"
check w1 " DELETE " 1 "exact watch: the delete"
check w1 " ENDED " 1 "exact watch: ended by the delete"
check w2 " PUT " 8 "recursive /keyspaces: every create and update"
check w2 " DELETE " 3 "recursive /keyspaces: every delete"
check w2 "keyspacesX" 0 "recursive /keyspaces: nothing from /keyspacesX"
check w2 "RESYNC" 0 "recursive /keyspaces: no resync"
check w3 "leader=zone1-100" 1 "elections: the first leader"
check w3 "leader=zone1-101" 1 "elections: the new leader"
lat=$(cat "$dir/w1.log" "$dir/w2.log" "$dir/w3.log" | sed -n 's/.*latency[^0-9]*\([0-9.]*\) us.*/\1/p' | sort -n)
if [ -n "$lat" ]; then
	n=$(echo "$lat" | wc -l)
	echo "   hub->callback latency over $n deliveries: min $(echo "$lat" | head -1) us," \
		"median $(echo "$lat" | sed -n "$(((n + 1) / 2))p") us, max $(echo "$lat" | tail -1) us"
fi

say "15. Stopping the watchers, the hub and MariaDB"
kill -TERM $pids 2>/dev/null || true
for p in $pids; do wait "$p" 2>/dev/null || true; done
pids=""
kill -TERM "$hub_pid"
wait "$hub_pid" && echo "   topohubd stopped cleanly (exit 0)" || { echo "   topohubd exit $?"; fail=1; }
hub_pid=""
[ "$fail" -eq 0 ] && say "demo: every watcher saw every change it should, and nothing else" ||
	say "demo: FAILED (logs: TOPOHUB_DEMO_KEEP=1 make demo)"
exit "$fail"
