/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mariadb.h: a private MariaDB server for tests.
 *
 * th_mariadb_start() runs `mariadbd` as the current user in a fresh temporary
 * folder, listening on 127.0.0.1 at a free port and on a Unix socket in that
 * folder, configured as topohub needs its source: log_bin, binlog_format=ROW,
 * binlog_row_image=FULL, binlog_row_metadata=FULL, binlog_checksum=CRC32,
 * gtid_strict_mode=ON, with small memory settings so that it starts in well
 * under a second. Grants are enforced: the instance has a user `topohub` with a
 * random password and the grants a replica needs (REPLICATION SLAVE,
 * REPLICATION CLIENT, BINLOG MONITOR, SLAVE MONITOR, SELECT). The setup itself
 * is not written to the binlog: a fresh instance has an empty binlog position.
 *
 * Guarantees:
 * - The server never outlives the test program: the child asks the kernel to
 *   SIGKILL it when its parent thread exits (PR_SET_PDEATHSIG), so a crashed or
 *   timed-out test leaves no server behind. th_mariadb_stop() kills it, reaps it
 *   and removes the folder; folders left by killed test programs are removed by
 *   the next th_mariadb_start() of the same user.
 * - When the server binary is missing, th_mariadb_start() says so
 *   (TH_MARIADB_UNAVAILABLE and a reason): tests skip with that reason, never
 *   pass in silence.
 * - `mariadb-install-db` runs once per user and server binary: its output is
 *   kept as a template under $TMPDIR (default /tmp) and copied for each instance.
 *
 * Caveats:
 * - Start the server from the thread that will outlive it (normally the main
 *   thread): PR_SET_PDEATHSIG fires when the *thread* that forked exits.
 * - A handle belongs to one thread at a time. After fork(), only the parent may
 *   use or stop it.
 * - The admin connection (th_mariadb_sql) is root over the Unix socket; the
 *   `topohub` account is the one tests hand to the code under test.
 * - Test support, not product: errors are reported as text for test output.
 *
 * Environment: TH_MARIADBD and TH_MARIADB_INSTALL_DB override the binaries;
 * TH_MARIADB_KEEP=1 keeps the folder on stop (for post-mortems).
 */
#ifndef TH_TEST_MARIADB_H
#define TH_TEST_MARIADB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <mysql.h>

/* th_mariadb_start() result when no server binary is installed (positive on purpose). */
#define TH_MARIADB_UNAVAILABLE 1

struct th_mariadb_options {
	uint32_t server_id;            /* 0: 1 */
	uint32_t gtid_domain_id;       /* gtid_domain_id of the server (default 0) */
	/* Extra mariadbd options, NULL-terminated, appended last so that they win,
	 * e.g. { "--binlog-row-metadata=MINIMAL", NULL }. NULL: none. */
	const char *const *extra_args;
	unsigned start_timeout_ms;     /* 0: 30000 */
	/* TLS: a fresh self-signed certificate for 127.0.0.1 only (not
	 * "localhost", so that tests can dial a name it does not cover), made
	 * with the openssl tool (TH_MARIADB_UNAVAILABLE without it); and the
	 * `topohub` account REQUIRE SSL, so a plain connection is refused. */
	bool tls;
};

/* A running instance. Every field is read-only for callers and lives until
 * th_mariadb_stop(). */
struct th_mariadb {
	char host[16];                 /* "127.0.0.1" */
	unsigned port;
	char socket[256];              /* Unix socket path */
	char user[16];                 /* "topohub" */
	char password[40];             /* random, per instance */
	char dir[200];                 /* the temporary folder */
	char datadir[256];             /* dir + "/data"; binlogs are datadir/binlog.NNNNNN */
	char binlog_basename[256];     /* datadir + "/binlog" */
	char error_log[256];           /* the server's error log */
	char tls_ca[256];              /* with opts->tls: the certificate to trust; else "" */
	char version[96];              /* SELECT VERSION() */
	uint32_t server_id;
	pid_t pid;                     /* of mariadbd; tests may SIGSTOP/SIGKILL it */
	uint64_t startup_ns;           /* th_mariadb_start() wall time, template included */
	MYSQL *admin;                  /* lazily opened root connection for th_mariadb_sql */
	char err[512];                 /* last th_mariadb_sql() error */
};

/*
 * Starts an instance. opts may be NULL (defaults). On success *out is a new
 * instance (stop it with th_mariadb_stop). Returns 0; TH_MARIADB_UNAVAILABLE
 * when mariadbd or mariadb-install-db is not installed (why says which and how
 * to fix it); or a negative errno / -TH_ESERVER when the server would not
 * start (why holds the reason and the tail of the server's error log).
 * why may be NULL. Call from the thread that will outlive the server.
 */
int th_mariadb_start(const struct th_mariadb_options *opts, struct th_mariadb **out,
		     char *why, size_t why_len);

/* Kills the server (SIGKILL, also when stopped), reaps it, removes the folder
 * (unless TH_MARIADB_KEEP=1) and frees db. NULL is a no-op. Never fails. */
void th_mariadb_stop(struct th_mariadb *db);

/* Sends sig to the server (SIGSTOP, SIGCONT, SIGKILL for dead-server tests).
 * 0 or -errno. After SIGKILL the server is gone; th_mariadb_stop still cleans. */
int th_mariadb_signal(struct th_mariadb *db, int sig);

/* Runs one or more SQL statements (printf format) on the admin connection,
 * discarding results. 0, or -TH_EMYSQL with the server's message in db->err.
 * The admin connection writes to the binlog like any client. */
int th_mariadb_sql(struct th_mariadb *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Runs a query on the admin connection and copies the first column of its first
 * row into out (NUL-terminated; "" for SQL NULL). 0, -ENOENT when there is no
 * row, -ERANGE when out is too small, -TH_EMYSQL (message in db->err). */
int th_mariadb_query_value(struct th_mariadb *db, char *out, size_t out_len,
			   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A new connection as `topohub` over TCP (tcp != 0) or the Unix socket, with
 * the given database (may be NULL). NULL on failure with the reason in db->err.
 * The caller closes it with mysql_close(). */
MYSQL *th_mariadb_connect_user(struct th_mariadb *db, int tcp, const char *database);

/* Creates the schema (default "topo" when NULL) and the three mysqltopo tables
 * of DESIGN.md in it, through the admin connection (so the DDL is in the
 * binlog). 0 or -TH_EMYSQL. */
int th_mariadb_create_topo_schema(struct th_mariadb *db, const char *schema);

#endif
