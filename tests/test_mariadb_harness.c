/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for the private-MariaDB test harness (tests/support/mariadb.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/mariadb.h"
#include "common/th_error.h"
#include "common/th_time.h"

/* Starts an instance or skips the test with the harness's reason. */
static struct th_mariadb *start_or_skip(const struct th_mariadb_options *o)
{
	struct th_mariadb *db = NULL;
	char why[1024];
	int rc = th_mariadb_start(o, &db, why, sizeof why);
	if (rc == TH_MARIADB_UNAVAILABLE) {
		print_message("skip: %s\n", why);
		skip();
	}
	if (rc != 0)
		fail_msg("th_mariadb_start: %s: %s", th_errname(rc), why);
	return db;
}

static void expect_var(struct th_mariadb *db, const char *sql, const char *want)
{
	char v[256];
	int rc = th_mariadb_query_value(db, v, sizeof v, "%s", sql);
	if (rc != 0)
		fail_msg("%s: %s %s", sql, th_errname(rc), db->err);
	if (strcmp(v, want) != 0)
		fail_msg("%s = '%s', want '%s'", sql, v, want);
}

static void test_mariadb__starts_configured_as_a_binlog_source(void **state)
{
	(void)state;
	struct th_mariadb *db = start_or_skip(NULL);
	print_message("mariadb %s started in %.3f s on port %u, socket %s\n", db->version,
		      (double)db->startup_ns / 1e9, db->port, db->socket);
	expect_var(db, "SELECT @@log_bin", "1");
	expect_var(db, "SELECT @@binlog_format", "ROW");
	expect_var(db, "SELECT @@binlog_row_image", "FULL");
	expect_var(db, "SELECT @@binlog_row_metadata", "FULL");
	expect_var(db, "SELECT @@binlog_checksum", "CRC32");
	expect_var(db, "SELECT @@gtid_strict_mode", "1");
	expect_var(db, "SELECT @@server_id", "1");
	expect_var(db, "SELECT @@performance_schema", "0");
	/* The account setup stayed out of the binlog. */
	expect_var(db, "SELECT @@gtid_binlog_pos", "");
	assert_non_null(strstr(db->version, "MariaDB"));
	assert_true(db->port > 0);
	assert_int_equal(access(db->socket, F_OK), 0);
	th_mariadb_stop(db);
}

static void test_mariadb__topohub_user_authenticates_over_tcp_and_socket(void **state)
{
	(void)state;
	struct th_mariadb *db = start_or_skip(NULL);
	assert_int_equal(th_mariadb_create_topo_schema(db, NULL), 0);
	assert_int_equal(th_mariadb_sql(db, "INSERT INTO topo.topo_data (path, data) VALUES ('/a', 'x')"), 0);
	expect_var(db, "SELECT @@gtid_binlog_pos", "0-1-5"); /* CREATE DATABASE, 3 tables, 1 insert */

	for (int tcp = 0; tcp <= 1; tcp++) {
		MYSQL *m = th_mariadb_connect_user(db, tcp, "topo");
		if (!m)
			fail_msg("%s", db->err);
		assert_int_equal(mysql_query(m, "SELECT data FROM topo_data WHERE path = '/a'"), 0);
		MYSQL_RES *r = mysql_store_result(m);
		assert_non_null(r);
		MYSQL_ROW row = mysql_fetch_row(r);
		assert_non_null(row);
		assert_string_equal(row[0], "x");
		mysql_free_result(r);
		/* Grants: read, and the replica's status queries, but no writes. */
		assert_int_equal(mysql_query(m, "SHOW BINARY LOGS"), 0);
		mysql_free_result(mysql_store_result(m));
		assert_int_not_equal(mysql_query(m, "DELETE FROM topo_data"), 0);
		mysql_close(m);
	}
	th_mariadb_stop(db);
}

static void test_mariadb__stop_removes_the_folder_and_the_server(void **state)
{
	(void)state;
	struct th_mariadb *db = start_or_skip(NULL);
	char dir[sizeof db->dir];
	snprintf(dir, sizeof dir, "%s", db->dir);
	pid_t pid = db->pid;
	/* A stopped server must not make teardown hang. */
	assert_int_equal(th_mariadb_signal(db, SIGSTOP), 0);
	th_mariadb_stop(db);
	struct stat st;
	assert_int_not_equal(stat(dir, &st), 0);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
}

static bool process_alive(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

static void test_mariadb__server_dies_with_the_test_program(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* A test program that crashes without teardown. */
		close(p[0]);
		struct th_mariadb *db = NULL;
		char why[512];
		long pid = th_mariadb_start(NULL, &db, why, sizeof why) == 0 ? (long)db->pid : 0;
		if (write(p[1], &pid, sizeof pid) != (ssize_t)sizeof pid)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	long server = 0;
	assert_int_equal(read(p[0], &server, sizeof server), (ssize_t)sizeof server);
	close(p[0]);
	waitpid(child, NULL, 0);
	if (server == 0)
		skip(); /* no server (the other tests say why) */
	/* The server was our grandchild: once the kernel killed it, it is gone or
	 * a zombie waiting for init to reap it. */
	uint64_t deadline = th_now_ns() + 10ull * 1000000000u;
	while (process_alive((pid_t)server) && th_now_ns() < deadline) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	assert_false(process_alive((pid_t)server));
	/* The next start cleans the orphaned folder (checked by not growing /tmp
	 * forever; here it is enough that starting still works). */
	struct th_mariadb *db = start_or_skip(NULL);
	th_mariadb_stop(db);
}

static void test_mariadb__missing_server_binary_is_a_skip_with_a_reason(void **state)
{
	(void)state;
	setenv("TH_MARIADBD", "/nonexistent/mariadbd", 1);
	struct th_mariadb *db = (struct th_mariadb *)1;
	char why[512] = "";
	int rc = th_mariadb_start(NULL, &db, why, sizeof why);
	unsetenv("TH_MARIADBD");
	assert_int_equal(rc, TH_MARIADB_UNAVAILABLE);
	assert_null(db);
	assert_non_null(strstr(why, "mariadbd"));
	assert_non_null(strstr(why, "mariadb-server"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mariadb__starts_configured_as_a_binlog_source),
		cmocka_unit_test(test_mariadb__topohub_user_authenticates_over_tcp_and_socket),
		cmocka_unit_test(test_mariadb__stop_removes_the_folder_and_the_server),
		cmocka_unit_test(test_mariadb__server_dies_with_the_test_program),
		cmocka_unit_test(test_mariadb__missing_server_binary_is_a_skip_with_a_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
