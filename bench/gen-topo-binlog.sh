#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# gen-topo-binlog.sh: make a large binlog of topo row events for
# `topohub-bench decode`, written by a real MariaDB server.
#
#   bench/gen-topo-binlog.sh [UPDATES] [OUT]
#
# UPDATES (default 1000000) row updates of ~300-byte rows of topo.topo_data
# (path ~57 bytes, data 200 bytes, version, two timestamps), as UPDATE
# statements of KEYS rows each (default 10000: one multi-row transaction per
# statement, so generating takes seconds, not hours), after KEYS inserts.
# The server is private: its own temporary folder, a Unix socket, no TCP,
# binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL,
# binlog_checksum=CRC32 (as topohub's sources are configured). It is stopped
# and its folder removed on exit. OUT (default bench/data/topo-updates.binlog)
# is a single binlog file. Prints OUT's path on stdout.
set -eu
UPDATES=${1:-1000000}
cd "$(dirname "$0")/.."
OUT=${2:-bench/data/topo-updates.binlog}
KEYS=${KEYS:-10000}
MARIADBD=${TH_MARIADBD:-$(command -v mariadbd || echo /usr/sbin/mariadbd)}
INSTALL_DB=${TH_MARIADB_INSTALL_DB:-$(command -v mariadb-install-db || echo /usr/bin/mariadb-install-db)}
CLIENT=$(command -v mariadb || command -v mysql || true)
for b in "$MARIADBD" "$INSTALL_DB" "$CLIENT"; do
	if [ -z "$b" ] || [ ! -x "$b" ]; then
		echo "gen-topo-binlog: needs mariadbd, mariadb-install-db and the mariadb client (apt-get install mariadb-server mariadb-client)" >&2
		exit 2
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/topohub-gen-XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

userarg=
[ "$(id -u)" -eq 0 ] && userarg="--user=$(id -un)"
"$INSTALL_DB" --no-defaults $userarg --datadir="$tmp/data" --auth-root-authentication-method=normal \
	--skip-test-db --skip-name-resolve >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log" >&2
	exit 1
}

"$MARIADBD" --no-defaults $userarg --datadir="$tmp/data" --socket="$tmp/sock" --skip-networking \
	--pid-file="$tmp/pid" --log-error="$tmp/error.log" --tmpdir="$tmp" \
	--server-id=1 --log-bin="$tmp/data/binlog" --max-binlog-size=1073741824 \
	--binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL --binlog-checksum=CRC32 \
	--innodb-buffer-pool-size=256M --innodb-log-file-size=256M --innodb-flush-log-at-trx-commit=0 \
	--sync-binlog=0 --innodb-doublewrite=0 --performance-schema=OFF --skip-name-resolve \
	--character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --loose-feedback=OFF 2>>"$tmp/error.log" &
pid=$!

i=0
until "$CLIENT" --no-defaults -uroot --socket="$tmp/sock" -e 'SELECT 1' >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "gen-topo-binlog: the server did not start:" >&2
		tail -20 "$tmp/error.log" >&2
		exit 1
	fi
	sleep 0.1
done

sql() { "$CLIENT" --no-defaults -uroot --socket="$tmp/sock" -e "$1"; }

# The binlog file the following statements go to.
file=$("$CLIENT" --no-defaults -uroot --socket="$tmp/sock" -N -e 'SHOW MASTER STATUS' | cut -f1)

sql "CREATE DATABASE topo;
CREATE TABLE topo.topo_data (path VARCHAR(512) NOT NULL PRIMARY KEY, data MEDIUMBLOB,
  version BIGINT NOT NULL DEFAULT 1, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=InnoDB;
INSERT INTO topo.topo_data (path, data)
  SELECT CONCAT('/keyspaces/commerce/shards/-80/tablets/zone1-', LPAD(seq, 10, '0')), REPEAT('a', 200)
  FROM topo.seq_1_to_$KEYS;"

rounds=$(( (UPDATES + KEYS - 1) / KEYS ))
r=1
while [ "$r" -le "$rounds" ]; do
	sql "UPDATE topo.topo_data SET version = version + 1,
	  data = REPEAT(CHAR(65 + $r % 26), 200), modified_at = FROM_UNIXTIME(1700000000 + $r)"
	r=$((r + 1))
done
sql "FLUSH BINARY LOGS"

mkdir -p "$(dirname "$OUT")"
cp "$tmp/data/$file" "$OUT"
echo "gen-topo-binlog: $OUT: $KEYS inserts + $((rounds * KEYS)) updates of topo.topo_data, $(stat -c %s "$OUT") bytes" >&2
echo "$OUT"
