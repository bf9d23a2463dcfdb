/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohubd against MariaDB misfortunes: the server killed mid-stream and
 * restarted, a hub started while a writer runs flat out, failover to a GTID
 * replica, misconfigured servers. Real processes throughout: the hub binary
 * (tests/support/hub_proc.h), private MariaDB instances, a reader in this
 * process that attaches through the control socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol/protocol.h"
#include "common/th_atomic.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "tests/support/hub_check.h"
#include "tests/support/hub_proc.h"
#include "tests/support/mariadb.h"

struct shared {
	struct th_mariadb *db;   /* the primary */
	char why[2048];
};

static int setup(void **state)
{
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return -1;
	*state = sh;
	int rc = th_mariadb_start(NULL, &sh->db, sh->why, sizeof sh->why);
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "th_mariadb_start: %s: %s\n", th_errname(rc), sh->why);
		sh->db = NULL;
		return 0;
	}
	if (th_mariadb_create_topo_schema(sh->db, NULL) != 0) {
		fprintf(stderr, "topo schema: %s\n", sh->db->err);
		th_mariadb_stop(sh->db);
		sh->db = NULL;
	}
	return 0;
}

static int teardown(void **state)
{
	struct shared *sh = *state;
	th_mariadb_stop(sh->db);
	free(sh);
	return 0;
}

static struct shared *need(void **state)
{
	struct shared *sh = *state;
	if (!sh->db) {
		print_message("skip: %s\n", sh->why[0] ? sh->why : "no MariaDB");
		skip();
	}
	return sh;
}

static struct th_hub_proc *start_hub(struct th_mariadb *const *src, size_t n)
{
	struct th_hub_proc *h;
	char why[2048];
	struct th_hub_proc_options o = { .sources = src, .nsources = n };
	if (th_hub_proc_start(&o, &h, why, sizeof why) != 0)
		fail_msg("hub: %s", why);
	return h;
}

static void stop_hub(struct th_hub_proc *h)
{
	int st = th_hub_proc_stop(h);
	bool bad = th_hub_proc_sanitizer_report(h) || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	if (bad) {
		char tail[4000];
		print_message("hub log: %s\n", th_hub_proc_log_tail(h, tail, sizeof tail));
	}
	th_hub_proc_free(h);
	if (bad)
		fail_msg("the hub ended with status 0x%x or a sanitizer report", st);
}

static void check_state(struct th_hub_proc *h, struct th_mariadb *db, size_t *n)
{
	char why[1024];
	if (th_hub_check_state(h->socket, db, NULL, 20000, n, why, sizeof why) != 0)
		fail_msg("state differs: %s", why);
}

/* ---- a writer thread with its own connection (reconnects on errors) ----- */

enum writer_mode { W_INSERT_SEQ, W_CHURN };

struct writer {
	struct th_mariadb *db;
	enum writer_mode mode;
	const char *prefix;
	th_atomic_u32 stop;      /* main -> writer: release/acquire */
	th_atomic_u64 attempts;  /* writer -> main: relaxed progress counter */
	uint64_t errors;
	pthread_t thread;
};

static MYSQL *writer_connect(struct th_mariadb *db)
{
	MYSQL *m = mysql_init(NULL);
	unsigned proto = MYSQL_PROTOCOL_SOCKET, timeout = 2;
	my_bool off = 0;
	mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
	mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);
	if (!mysql_real_connect(m, "localhost", "root", "", NULL, 0, db->socket, CLIENT_MULTI_STATEMENTS)) {
		mysql_close(m);
		return NULL;
	}
	return m;
}

static bool run(MYSQL *m, const char *q)
{
	if (mysql_query(m, q) != 0)
		return false;
	do {
		MYSQL_RES *r = mysql_store_result(m);
		if (r)
			mysql_free_result(r);
	} while (mysql_next_result(m) == 0);
	return mysql_errno(m) == 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	MYSQL *m = NULL;
	uint64_t seq = 0, x = 88172645463325252ull;
	char q[512];
	while (!th_load_acquire(&w->stop)) { /* pairs with the release in writer_stop */
		if (!m && !(m = writer_connect(w->db))) {
			usleep(20000);
			continue;
		}
		seq++;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (w->mode == W_INSERT_SEQ) {
			/* One new key per transaction, and a counter row: a two-row batch. */
			snprintf(q, sizeof q,
				 "BEGIN; INSERT INTO topo.topo_data (path, data) VALUES ('%s/%06" PRIu64 "', '%" PRIu64 "');"
				 "INSERT INTO topo.topo_data (path, data) VALUES ('%s-counter', '%" PRIu64 "') "
				 "ON DUPLICATE KEY UPDATE data = VALUES(data), version = version + 1; COMMIT",
				 w->prefix, seq, seq, w->prefix, seq);
		} else {
			unsigned k = (unsigned)(x % 40);
			switch ((x >> 20) % 4) {
			case 0:
				snprintf(q, sizeof q, "DELETE FROM topo.topo_data WHERE path = '%s/%u'", w->prefix, k);
				break;
			case 1:
				snprintf(q, sizeof q,
					 "BEGIN; UPDATE topo.topo_data SET data = '%" PRIu64 "', version = version + 1 "
					 "WHERE path = '%s/%u'; UPDATE topo.topo_locks SET contents = '%" PRIu64
					 "' WHERE path = '%s/%u'; COMMIT",
					 seq, w->prefix, k, seq, w->prefix, (k + 1) % 40);
				break;
			default:
				snprintf(q, sizeof q,
					 "INSERT INTO topo.topo_data (path, data) VALUES ('%s/%u', '%" PRIu64 "') "
					 "ON DUPLICATE KEY UPDATE data = VALUES(data), version = version + 1;"
					 "REPLACE INTO topo.topo_locks (path, contents, expires_at) VALUES ('%s/%u', 'l%" PRIu64
					 "', NOW())",
					 w->prefix, k, seq, w->prefix, k, seq);
				break;
			}
		}
		if (!run(m, q)) {
			w->errors++;
			mysql_close(m);
			m = NULL;
		}
		th_fetch_add_relaxed(&w->attempts, 1);
	}
	if (m)
		mysql_close(m);
	return NULL;
}

static void writer_start(struct writer *w, struct th_mariadb *db, enum writer_mode mode, const char *prefix)
{
	memset(w, 0, sizeof *w);
	w->db = db;
	w->mode = mode;
	w->prefix = prefix;
	assert_int_equal(pthread_create(&w->thread, NULL, writer_main, w), 0);
}

static void writer_wait(struct writer *w, uint64_t attempts)
{
	uint64_t t0 = th_now_ns();
	while (th_load_relaxed(&w->attempts) < attempts && th_now_ns() - t0 < 30000000000ull)
		usleep(1000);
}

static void writer_stop(struct writer *w)
{
	th_store_release(&w->stop, 1u); /* pairs with the acquire in writer_main */
	pthread_join(w->thread, NULL);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_hub__resumes_after_mariadb_sigkill_mid_stream_no_gap_no_duplicate(void **state)
{
	struct shared *sh = need(state);
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc *h = start_hub(src, 1);
	struct th_test_reader tr;
	char why[1024];
	if (th_test_reader_open(&tr, h->socket, 60ull * 1000000000u, "crash", why, sizeof why) != 0)
		fail_msg("%s", why);
	struct writer w;
	writer_start(&w, sh->db, W_INSERT_SEQ, "/crash");
	writer_wait(&w, 150);
	uint64_t t0 = th_now_ns();
	if (th_hub_mariadb_restart(sh->db, why, sizeof why) != 0)
		fail_msg("%s", why);
	print_message("mariadb killed and restarted in %.0f ms, after %" PRIu64 " writes\n",
		      (double)(th_now_ns() - t0) / 1e6, th_load_relaxed(&w.attempts));
	writer_wait(&w, th_load_relaxed(&w.attempts) + 150);
	writer_stop(&w);
	size_t rows;
	check_state(h, sh->db, &rows);

	/* Every committed insert is in the ring exactly once, revisions strictly
	 * growing per transaction, and no resync. */
	char *seen = calloc(w.attempts + 2, 1);
	uint64_t last_rev = 0, puts = 0;
	struct th_test_rec r;
	int rc;
	while ((rc = th_test_reader_next(&tr, &r, 200)) == 1) {
		if (r.type == TH_REC_RESYNC)
			fail_msg("unexpected resync (reason %u)", r.rs.reason);
		assert_true(r.ch.revision >= last_rev);
		if (r.ch.revision == last_rev)
			assert_true(last_rev != 0);
		unsigned long long n;
		if (sscanf(r.key, "/crash/%llu", &n) == 1) {
			assert_true(n <= w.attempts);
			if (seen[n])
				fail_msg("%s published twice", r.key);
			seen[n] = 1;
			puts++;
			/* A new key starts a new transaction: a larger revision. */
			assert_true(r.ch.revision > last_rev);
		}
		last_rev = r.ch.revision;
		th_test_rec_free(&r);
	}
	assert_int_equal(rc, 0);
	char count[32];
	assert_int_equal(th_mariadb_query_value(sh->db, count, sizeof count,
						"SELECT COUNT(*) FROM topo.topo_data WHERE path LIKE '/crash/%%'"),
			 0);
	print_message("%" PRIu64 " inserts in the ring, %s in the table, %" PRIu64 " write errors, %zu rows compared\n",
		      puts, count, w.errors, rows);
	assert_int_equal(puts, strtoull(count, NULL, 10));
	free(seen);
	th_test_reader_close(&tr);
	assert_true(th_hub_proc_log_contains(h, "streaming from"));
	stop_hub(h);
}

static void test_hub__started_while_a_writer_runs_flat_out_converges_to_the_tables(void **state)
{
	struct shared *sh = need(state);
	struct writer w;
	writer_start(&w, sh->db, W_CHURN, "/churn");
	writer_wait(&w, 300);
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc *h = start_hub(src, 1);
	uint64_t at_ready = th_load_relaxed(&w.attempts);
	writer_wait(&w, at_ready + 600);
	writer_stop(&w);
	print_message("%" PRIu64 " writes before the hub was ready, %" PRIu64 " after\n", at_ready,
		      th_load_relaxed(&w.attempts) - at_ready);
	size_t rows;
	check_state(h, sh->db, &rows);
	assert_true(rows > 0);
	stop_hub(h);
}

static void test_hub__maps_columns_by_position_when_the_binlog_has_no_names(void **state)
{
	struct shared *sh = need(state);
	/* New sessions (the hub's dump) log TABLE_MAPs without column names. */
	assert_int_equal(th_mariadb_sql(sh->db, "SET GLOBAL binlog_row_metadata = 'MINIMAL'"), 0);
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc *h = start_hub(src, 1);
	MYSQL *m = writer_connect(sh->db);
	assert_non_null(m);
	assert_true(run(m, "INSERT INTO topo.topo_data (path, data) VALUES ('/minimal/1', 'm1');"
			   "INSERT INTO topo.topo_elections (name, leader_id, contents, expires_at) "
			   "VALUES ('/minimal/e', 'lead', 'c', NOW())"));
	mysql_close(m);
	size_t rows;
	check_state(h, sh->db, &rows);
	stop_hub(h);
	assert_int_equal(th_mariadb_sql(sh->db, "SET GLOBAL binlog_row_metadata = 'FULL'"), 0);
}

static void expect_exit_3(struct th_hub_proc_options *o, const char *needle)
{
	struct th_hub_proc *h;
	char why[2048];
	o->no_wait = true;
	if (th_hub_proc_start(o, &h, why, sizeof why) != 0)
		fail_msg("%s", why);
	int st = 0;
	if (th_hub_proc_wait(h, 20000, &st) != 0) {
		th_hub_proc_free(h);
		fail_msg("the hub did not stop on a misconfigured server (%s)", needle);
	}
	char tail[2000];
	th_hub_proc_log_tail(h, tail, sizeof tail);
	bool found = th_hub_proc_log_contains(h, needle);
	th_hub_proc_free(h);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 3)
		fail_msg("status 0x%x, want exit 3; log: %s", st, tail);
	if (!found)
		fail_msg("log lacks '%s': %s", needle, tail);
}

static void test_hub__misconfigured_servers_stop_it_with_exit_3_and_the_setting(void **state)
{
	struct shared *sh = need(state);
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1 };
	assert_int_equal(th_mariadb_sql(sh->db, "SET GLOBAL binlog_format = 'STATEMENT'"), 0);
	expect_exit_3(&o, "binlog_format is STATEMENT; topohub needs binlog_format=ROW");
	assert_int_equal(th_mariadb_sql(sh->db, "SET GLOBAL binlog_format = 'ROW'; SET GLOBAL binlog_row_image = 'MINIMAL'"), 0);
	expect_exit_3(&o, "binlog_row_image is MINIMAL; topohub needs binlog_row_image=FULL");
	assert_int_equal(th_mariadb_sql(sh->db, "SET GLOBAL binlog_row_image = 'FULL'"), 0);
	assert_int_equal(th_mariadb_sql(sh->db, "SET SESSION sql_log_bin = 0; CREATE USER 'weak'@'%%' IDENTIFIED BY 'weakpw';"
						"GRANT SELECT, BINLOG MONITOR ON *.* TO 'weak'@'%%'; SET SESSION sql_log_bin = 1"),
			 0);
	struct th_hub_proc_options weak = { .sources = src, .nsources = 1, .user = "weak", .password = "weakpw" };
	expect_exit_3(&weak, "lacks the REPLICATION SLAVE privilege");

	/* Binary log off: a server of its own. */
	static const char *const nolog[] = { "--skip-log-bin", NULL };
	struct th_mariadb_options mo = { .extra_args = nolog };
	struct th_mariadb *db2;
	char why[1024];
	int rc = th_mariadb_start(&mo, &db2, why, sizeof why);
	if (rc != 0)
		fail_msg("%s", why);
	struct th_mariadb *src2[1] = { db2 };
	struct th_hub_proc_options o2 = { .sources = src2, .nsources = 1 };
	expect_exit_3(&o2, "log_bin is OFF; topohub needs log_bin=ON");
	th_mariadb_stop(db2);
}

static void test_hub__streams_over_verified_tls(void **state)
{
	(void)need(state);
	struct th_mariadb_options mo = { .tls = true };
	struct th_mariadb *db;
	char why[1024];
	int rc = th_mariadb_start(&mo, &db, why, sizeof why);
	if (rc == TH_MARIADB_UNAVAILABLE) {
		print_message("skip: %s\n", why);
		skip();
	}
	if (rc != 0)
		fail_msg("%s", why);
	assert_int_equal(th_mariadb_create_topo_schema(db, NULL), 0);
	assert_int_equal(th_mariadb_sql(db, "INSERT INTO topo.topo_data (path, data) VALUES ('/tls/1', 'secret')"), 0);
	char extra[600];
	snprintf(extra, sizeof extra, "tls = true\ntls_verify = true\ntls_ca = %s\n", db->tls_ca);
	struct th_mariadb *src[1] = { db };
	/* The `topohub` account REQUIRE SSL: only a TLS connection gets in. */
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .tcp = true, .extra_config = extra };
	struct th_hub_proc *h;
	if (th_hub_proc_start(&o, &h, why, sizeof why) != 0)
		fail_msg("hub over TLS: %s", why);
	assert_int_equal(th_mariadb_sql(db, "INSERT INTO topo.topo_data (path, data) VALUES ('/tls/2', 'more')"), 0);
	size_t rows;
	check_state(h, db, &rows);
	assert_int_equal(rows, 2);
	stop_hub(h);
	th_mariadb_stop(db);
}

/* Found by the chaos harness (seed 1002): the hub streamed from the primary,
 * the primary stopped answering, and the next source, a replica a few
 * transactions behind the hub, was taken for a diverged server: the hub
 * reloaded from it, so its state went back to the replica's older one
 * (readers got a RESYNC to values they had seen replaced), and then it
 * published again the transactions it had already published. A replica that
 * is behind may catch up: the hub must try the other sources meanwhile and
 * reload from it only when it stays behind. */
static void test_hub__a_replica_behind_the_hub_is_waited_for_not_reloaded_from(void **state)
{
	(void)need(state);
	static const char *const args[] = { "--log-slave-updates=ON", NULL };
	struct th_mariadb_options po = { .server_id = 11, .extra_args = args };
	struct th_mariadb_options ro = { .server_id = 12, .extra_args = args };
	struct th_mariadb *primary, *replica;
	char why[1024];
	if (th_mariadb_start(&po, &primary, why, sizeof why) != 0)
		fail_msg("primary: %s", why);
	if (th_mariadb_start(&ro, &replica, why, sizeof why) != 0)
		fail_msg("replica: %s", why);
	assert_int_equal(th_mariadb_sql(replica, "SET SESSION sql_log_bin = 0; ALTER USER 'topohub'@'%%' IDENTIFIED BY '%s';"
						 "SET SESSION sql_log_bin = 1",
					 primary->password),
			 0);
	assert_int_equal(th_mariadb_sql(primary, "SET SESSION sql_log_bin = 0; CREATE USER 'repl'@'%%' IDENTIFIED BY 'replpw';"
						 "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%%'; SET SESSION sql_log_bin = 1"),
			 0);
	assert_int_equal(th_mariadb_create_topo_schema(primary, NULL), 0);
	if (th_mariadb_sql(replica,
			   "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %u, MASTER_USER = 'repl', "
			   "MASTER_PASSWORD = 'replpw', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1; START SLAVE",
			   primary->port) != 0)
		fail_msg("replication: %s", replica->err);
	char gtid[256], ok[32];
	assert_int_equal(th_mariadb_sql(primary, "INSERT INTO topo.topo_data (path, data) VALUES ('/behind/a', 'old')"), 0);
	assert_int_equal(th_mariadb_query_value(primary, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	if (th_mariadb_query_value(replica, ok, sizeof ok, "SELECT MASTER_GTID_WAIT('%s', 30)", gtid) != 0 ||
	    strcmp(ok, "0") != 0)
		fail_msg("replica did not catch up to %s: %s %s", gtid, ok, replica->err);

	struct th_mariadb *src[2] = { primary, replica };
	struct th_hub_proc *h = start_hub(src, 2);
	struct th_test_reader tr;
	if (th_test_reader_open(&tr, h->socket, 60ull * 1000000000u, "behind", why, sizeof why) != 0)
		fail_msg("%s", why);
	/* The replica falls behind: the hub publishes what it lacks. */
	assert_int_equal(th_mariadb_sql(replica, "STOP SLAVE"), 0);
	assert_int_equal(th_mariadb_sql(primary, "UPDATE topo.topo_data SET data = 'new' WHERE path = '/behind/a'"), 0);
	struct th_test_rec r;
	assert_int_equal(th_test_reader_next(&tr, &r, 10000), 1);
	assert_int_equal(r.type, TH_REC_CHANGE);
	assert_string_equal(r.key, "/behind/a");
	char first_gtid[80];
	snprintf(first_gtid, sizeof first_gtid, "%s", r.gtid);
	th_test_rec_free(&r);
	/* The primary stops answering past the heartbeat deadline: the hub
	 * turns to the replica, which lacks that update. */
	assert_int_equal(th_mariadb_signal(primary, SIGSTOP), 0);
	usleep(4000000);
	assert_int_equal(th_mariadb_signal(primary, SIGCONT), 0);
	assert_int_equal(th_mariadb_sql(replica, "START SLAVE"), 0);
	assert_int_equal(th_mariadb_sql(primary, "INSERT INTO topo.topo_data (path, data) VALUES ('/behind/b', 'after')"), 0);
	bool got_b = false;
	int rc;
	while (!got_b && (rc = th_test_reader_next(&tr, &r, 20000)) == 1) {
		if (r.type == TH_REC_RESYNC)
			fail_msg("the hub reloaded from a replica that was only behind (RESYNC reason %u): its state went back",
				 r.rs.reason);
		if (!strcmp(r.gtid, first_gtid))
			fail_msg("transaction %s published twice", r.gtid);
		got_b |= !strcmp(r.key, "/behind/b");
		th_test_rec_free(&r);
	}
	assert_true(got_b);
	th_test_reader_close(&tr);
	assert_true(th_hub_proc_log_contains(h, "behind"));
	check_state(h, primary, NULL);
	stop_hub(h);
	th_mariadb_stop(replica);
	th_mariadb_stop(primary);
}

static void test_hub__fails_over_to_a_gtid_replica_without_losing_changes(void **state)
{
	struct shared *sh = need(state);
	static const char *const rargs[] = { "--log-slave-updates=ON", NULL };
	struct th_mariadb_options ro = { .server_id = 2, .extra_args = rargs };
	struct th_mariadb *replica;
	char why[1024];
	if (th_mariadb_start(&ro, &replica, why, sizeof why) != 0)
		fail_msg("replica: %s", why);
	/* The same `topohub` password on both, so one hub configuration serves. */
	assert_int_equal(th_mariadb_sql(replica, "SET SESSION sql_log_bin = 0; ALTER USER 'topohub'@'%%' IDENTIFIED BY '%s';"
						 "SET SESSION sql_log_bin = 1",
					 sh->db->password),
			 0);
	assert_int_equal(th_mariadb_sql(sh->db, "SET SESSION sql_log_bin = 0; CREATE USER IF NOT EXISTS 'repl'@'%%' IDENTIFIED BY 'replpw';"
						"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%%'; SET SESSION sql_log_bin = 1"),
			 0);
	if (th_mariadb_sql(replica,
			   "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %u, MASTER_USER = 'repl', "
			   "MASTER_PASSWORD = 'replpw', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1; START SLAVE",
			   sh->db->port) != 0)
		fail_msg("replication: %s", replica->err);
	char gtid[256], ok[32];
	assert_int_equal(th_mariadb_query_value(sh->db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	if (th_mariadb_query_value(replica, ok, sizeof ok, "SELECT MASTER_GTID_WAIT('%s', 30)", gtid) != 0 ||
	    strcmp(ok, "0") != 0)
		fail_msg("replica did not catch up to %s: %s %s", gtid, ok, replica->err);

	struct th_mariadb *src[2] = { sh->db, replica };
	struct th_hub_proc *h = start_hub(src, 2);
	struct th_test_reader tr;
	if (th_test_reader_open(&tr, h->socket, 60ull * 1000000000u, "failover", why, sizeof why) != 0)
		fail_msg("%s", why);
	assert_int_equal(th_mariadb_sql(sh->db, "INSERT INTO topo.topo_data (path, data) VALUES ('/fo/primary', 'p')"), 0);
	assert_int_equal(th_mariadb_query_value(sh->db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	assert_int_equal(th_mariadb_query_value(replica, ok, sizeof ok, "SELECT MASTER_GTID_WAIT('%s', 30)", gtid), 0);
	check_state(h, sh->db, NULL);

	/* The primary dies; the replica is promoted and takes writes. */
	assert_int_equal(th_mariadb_signal(sh->db, SIGKILL), 0);
	assert_int_equal(th_mariadb_sql(replica, "STOP SLAVE; RESET SLAVE ALL"), 0);
	assert_int_equal(th_mariadb_sql(replica, "INSERT INTO topo.topo_data (path, data) VALUES ('/fo/replica', 'r');"
						 "UPDATE topo.topo_data SET data = 'p2', version = version + 1 WHERE path = '/fo/primary'"),
			 0);
	size_t rows;
	check_state(h, replica, &rows);
	struct th_test_rec r;
	bool got_primary = false, got_replica = false;
	int rc;
	while ((rc = th_test_reader_next(&tr, &r, 500)) == 1) {
		if (r.type == TH_REC_RESYNC)
			fail_msg("failover by GTID should not need a resync (reason %u)", r.rs.reason);
		got_primary |= !strcmp(r.key, "/fo/primary");
		got_replica |= !strcmp(r.key, "/fo/replica");
		th_test_rec_free(&r);
	}
	assert_true(got_primary && got_replica);
	th_test_reader_close(&tr);
	assert_true(th_hub_proc_log_contains(h, "streaming from"));
	print_message("failed over; %zu rows equal on the replica\n", rows);
	stop_hub(h);
	th_mariadb_stop(replica);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hub__resumes_after_mariadb_sigkill_mid_stream_no_gap_no_duplicate),
		cmocka_unit_test(test_hub__started_while_a_writer_runs_flat_out_converges_to_the_tables),
		cmocka_unit_test(test_hub__maps_columns_by_position_when_the_binlog_has_no_names),
		cmocka_unit_test(test_hub__misconfigured_servers_stop_it_with_exit_3_and_the_setting),
		cmocka_unit_test(test_hub__streams_over_verified_tls),
		cmocka_unit_test(test_hub__a_replica_behind_the_hub_is_waited_for_not_reloaded_from),
		/* Last: it kills the primary for good. */
		cmocka_unit_test(test_hub__fails_over_to_a_gtid_replica_without_losing_changes),
	};
	if (getenv("TH_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TH_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
