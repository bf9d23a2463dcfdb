// SPDX-License-Identifier: Apache-2.0

// Package topohubtopo is a Vitess topology backend (a topo.Factory named
// "topohub") that keeps its data in MySQL or MariaDB, in the tables of the
// mysqltopo backend (topo_data, topo_locks, topo_elections), and takes its
// Watch and WatchRecursive notifications from the host's topohubd, which
// reads the server's binary log once for every process on the host.
//
// A daemon gets it with one blank import in its plugin file:
//
//	import _ "github.com/topohub/topohub/plugins/go/topohubtopo"
//
// and is started with
//
//	--topo-implementation topohub
//	--topo-global-server-address db1.example:3306/topo
//	--topo-global-root /vitess/global
//	--topo-topohub-mysql-user vt_topo
//	--topo-topohub-mysql-password-file /etc/vitess/topo-password
//
// # Server address
//
// The server address (of the global cell and of every CellInfo) is one of
//
//	host[:port][/schema]                 port 3306, schema "topo" when left out
//	a go-sql-driver DSN                  user@tcp(host:port)/schema?tls=true
//	                                     unix(/run/mysqld/mysqld.sock)/topo
//
// The address is stored in the global topology (CellInfo) and shown by every
// tool, so it should carry no password: the user comes from
// --topo-topohub-mysql-user (or $TOPOHUB_MYSQL_USER, or the DSN) and the
// password from the file named by --topo-topohub-mysql-password-file (or
// $TOPOHUB_MYSQL_PASSWORD). A password inside a DSN is accepted, with a
// warning in the log.
//
// # Paths
//
// A Vitess path is relative to the cell's root; the row's key is
// path.Join(root, path) ("/vitess/global" + "keyspaces/ks/Keyspace" is
// "/vitess/global/keyspaces/ks/Keyspace"), in topo_data.path and
// topo_locks.path. An election's row is topo_elections.name =
// path.Join(root, "elections", name). List and WatchRecursive report the
// whole key, as etcd2topo does. The path column compares with the server's
// collation (case-insensitive by default): lookups here match exact bytes,
// but two paths that differ only in case cannot both exist.
//
// Sessions add STRICT_ALL_TABLES to the server's sql_mode: a path longer
// than the column (512 characters) or a value larger than MEDIUMBLOB is an
// error, never a truncated row. Arguments go in the statements' text,
// escaped by the driver (interpolateParams), not through a prepare and a
// close per statement; a DSN's interpolateParams=false, or a charset or
// collation in which escaping is unsafe (big5, gbk, sjis, cp932, gb2312,
// gb18030), keeps prepared statements.
//
// # Versions, locks, elections
//
// Versions are the version column: 1 on create, version+1 on every update,
// checked in the same transaction (SELECT ... FOR UPDATE). A lock is a row
// of topo_locks whose expires_at the holder pushes forward every third of
// its TTL (--topo-topohub-lock-ttl, default 30 s; LockName: 24 h); a row
// past expires_at is taken over by the next locker. A leader is the row of
// topo_elections for its name, renewed the same way
// (--topo-topohub-election-ttl, default 10 s). Waiters wake on the hub's
// notification of the row's change, and poll as a fallback.
//
// # Watches and read-your-writes
//
// Watch and WatchRecursive go through the topohub Go client to the hub's
// socket (--topo-topohub-socket, default /run/topohub/topohub.sock); one
// client per socket is shared by every Conn of the process. After each write
// the Conn reads the write's GTID (MariaDB @@last_gtid, MySQL
// @@global.gtid_executed); a later Watch waits until the hub has published
// past it (Sync, then WaitRevision) before it reads its initial value, so a
// process always watches its own writes.
//
// The hub must watch the same schema with its default tables (topo_data,
// topo_locks, topo_elections as tables 0, 1, 2: topohub.TableData and
// friends), on this database or a replica of it.
//
// When the hub is unreachable, Watch fails with an error that wraps
// topohub.ErrHubLost, and a running watch that loses the hub ends with that
// error: never topo.Interrupted, which srvtopo takes as "do not re-watch".
// Everything else (reads, writes, locks, elections) keeps working on the
// database alone.
package topohubtopo
