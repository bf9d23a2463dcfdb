/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for readers/source.h: the live binlog source, against a private MariaDB
 * (tests/support/mariadb.h) and against the MySQL 8 replay server
 * (tests/support/replay_server.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "readers/source.h"
#include "readers/gtid.h"
#include "common/th_bytes.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "tests/support/mariadb.h"
#include "tests/support/replay_server.h"
#include "tests/support/support.h"

enum {
	EV_QUERY = 2, EV_ROTATE = 4, EV_FORMAT_DESCRIPTION = 15, EV_XID = 16, EV_TABLE_MAP = 19,
	EV_WRITE_ROWS_V1 = 23, EV_UPDATE_ROWS_V1 = 24, EV_DELETE_ROWS_V1 = 25, EV_HEARTBEAT = 27,
	EV_MARIA_GTID = 162, EV_MARIA_GTID_LIST = 163,
};
#define LOG_EVENT_ARTIFICIAL_F 0x20

struct shared {
	struct th_mariadb *db; /* NULL when no server: tests skip with why */
	char why[1024];
};

/* A server for the tests that share it: with the topo schema, or (tls) with a
 * TLS-only account and nothing else. No server is a skip, not a failure. */
static int start_server(void **state, bool tls)
{
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return -1;
	struct th_mariadb_options o = { .tls = tls };
	int rc = th_mariadb_start(&o, &sh->db, sh->why, sizeof sh->why);
	if (rc != 0)
		sh->db = NULL;
	if (rc < 0)
		fprintf(stderr, "th_mariadb_start%s failed: %s: %s\n", tls ? " (TLS)" : "", th_errname(rc), sh->why);
	else if (sh->db && !tls && th_mariadb_create_topo_schema(sh->db, NULL) != 0)
		fprintf(stderr, "topo schema: %s\n", sh->db->err);
	*state = sh;
	return 0;
}

static int server_setup(void **state)
{
	return start_server(state, false);
}

static int server_teardown(void **state)
{
	struct shared *sh = *state;
	th_mariadb_stop(sh->db);
	free(sh);
	return 0;
}

static struct th_mariadb *shared_db(void **state)
{
	struct shared *sh = *state;
	if (!sh->db) {
		print_message("skip: %s\n", sh->why[0] ? sh->why : "no MariaDB server");
		skip();
	}
	return sh->db;
}

static struct th_source_config config_for(const struct th_mariadb *db)
{
	struct th_source_config c = {
		.host = db->host, .port = db->port, .user = db->user, .password = db->password,
		.heartbeat_ms = 1000,
	};
	return c;
}

static struct th_source *open_or_fail(const struct th_source_config *c)
{
	struct th_source *src = NULL;
	char err[512];
	int rc = th_source_live_open(c, &src, err, sizeof err);
	if (rc != 0)
		fail_msg("th_source_live_open: %s: %s", th_errname(rc), err);
	return src;
}

/* The event's CRC32 (zlib's, the one binlogs use) matches its last 4 bytes. */
static bool crc_ok(const uint8_t *ev, size_t len)
{
	return len >= 23 && crc32(0, ev, (uInt)(len - 4)) == th_le32(ev + len - 4);
}

struct stream {
	uint8_t types[512];
	size_t n;
	bool all_crc_ok;
	bool saw_path[4];          /* WRITE_ROWS carrying "/s0".."/s3" */
	uint64_t gtid_seq[64];     /* MariaDB GTID seq_no in order */
	size_t n_gtid;
};

static void note_event(struct stream *s, const uint8_t *ev, size_t len)
{
	if (s->n < sizeof s->types)
		s->types[s->n++] = ev[4];
	if (!crc_ok(ev, len))
		s->all_crc_ok = false;
	if (ev[4] == EV_MARIA_GTID && s->n_gtid < 64)
		s->gtid_seq[s->n_gtid++] = th_le64(ev + 19);
	if (ev[4] == EV_WRITE_ROWS_V1)
		for (int i = 0; i < 4; i++) {
			char path[8];
			snprintf(path, sizeof path, "/s%d", i);
			if (memmem(ev, len, path, 3))
				s->saw_path[i] = true;
		}
}

/* Reads a non-blocking stream to its end. */
static void drain(struct th_source *src, struct stream *s)
{
	memset(s, 0, sizeof *s);
	s->all_crc_ok = true;
	const uint8_t *ev;
	size_t len;
	int rc;
	while ((rc = th_source_next_event(src, &ev, &len)) == 1)
		note_event(s, ev, len);
	if (rc != 0)
		fail_msg("th_source_next_event: %s: %s", th_errname(rc), th_source_error(src));
}

static bool has_type(const struct stream *s, uint8_t t)
{
	return memchr(s->types, t, s->n) != NULL;
}

static void test_source__streams_row_events_from_the_start_with_crc32(void **state)
{
	struct th_mariadb *db = shared_db(state);
	assert_int_equal(th_mariadb_sql(db, "INSERT INTO topo.topo_data (path, data) VALUES ('/s0', 'v1');"
					    "UPDATE topo.topo_data SET data = 'v2', version = version + 1 WHERE path = '/s0';"
					    "DELETE FROM topo.topo_data WHERE path = '/s0'"), 0);
	for (int over_socket = 0; over_socket <= 1; over_socket++) {
		struct th_source_config c = config_for(db);
		c.non_blocking = true;
		if (over_socket)
			c.socket = db->socket;
		struct th_source *src = open_or_fail(&c);
		assert_int_equal(th_source_flavor(src), TH_SOURCE_FLAVOR_MARIADB);
		assert_non_null(strstr(th_source_server_version(src), "MariaDB"));
		assert_int_equal(th_source_checksum(src), 1);

		const uint8_t *ev;
		size_t len;
		/* The stream opens with the server's fake ROTATE, then the format. */
		assert_int_equal(th_source_next_event(src, &ev, &len), 1);
		assert_int_equal(ev[4], EV_ROTATE);
		assert_true(ev[17] & LOG_EVENT_ARTIFICIAL_F);
		assert_true(crc_ok(ev, len));
		assert_int_equal(th_source_next_event(src, &ev, &len), 1);
		assert_int_equal(ev[4], EV_FORMAT_DESCRIPTION);

		struct stream s;
		drain(src, &s);
		assert_true(s.all_crc_ok);
		assert_true(has_type(&s, EV_MARIA_GTID));
		assert_true(has_type(&s, EV_QUERY));
		assert_true(has_type(&s, EV_TABLE_MAP));
		assert_true(has_type(&s, EV_WRITE_ROWS_V1));
		assert_true(has_type(&s, EV_UPDATE_ROWS_V1));
		assert_true(has_type(&s, EV_DELETE_ROWS_V1));
		assert_true(has_type(&s, EV_XID));
		assert_true(s.saw_path[0]);
		/* At the end: 0 again, and the position is the binlog's end. */
		assert_int_equal(th_source_next_event(src, &ev, &len), 0);
		const char *file;
		uint64_t pos;
		th_source_position(src, &file, &pos);
		assert_string_equal(file, "binlog.000001");
		assert_true(pos > 4);
		struct th_source_stats st;
		th_source_stats(src, &st);
		assert_int_equal(st.events, s.n + 2);
		th_source_close(src);
	}
}

static void test_source__resumes_from_gtid_position(void **state)
{
	struct th_mariadb *db = shared_db(state);
	char before[128], after[128];
	assert_int_equal(th_mariadb_sql(db, "INSERT INTO topo.topo_data (path, data) VALUES ('/s1', 'a')"), 0);
	assert_int_equal(th_mariadb_query_value(db, before, sizeof before, "SELECT @@gtid_binlog_pos"), 0);
	assert_int_equal(th_mariadb_sql(db, "INSERT INTO topo.topo_data (path, data) VALUES ('/s2', 'b')"), 0);
	assert_int_equal(th_mariadb_query_value(db, after, sizeof after, "SELECT @@gtid_binlog_pos"), 0);

	struct th_maria_gtid b, a;
	assert_int_equal(th_maria_gtid_parse(before, &b), 0);
	assert_int_equal(th_maria_gtid_parse(after, &a), 0);
	assert_int_equal(a.seq_no, b.seq_no + 1);

	struct th_source_config c = config_for(db);
	c.non_blocking = true;
	c.gtid = before;
	struct th_source *src = open_or_fail(&c);
	struct stream s;
	drain(src, &s);
	/* Only the later transaction arrives. */
	assert_int_equal(s.n_gtid, 1);
	assert_int_equal(s.gtid_seq[0], a.seq_no);
	assert_true(s.saw_path[2]);
	assert_false(s.saw_path[1]);
	assert_true(s.all_crc_ok);
	th_source_close(src);

	/* At the current position: nothing but the preamble. */
	c.gtid = after;
	src = open_or_fail(&c);
	drain(src, &s);
	assert_int_equal(s.n_gtid, 0);
	assert_false(has_type(&s, EV_WRITE_ROWS_V1));
	th_source_close(src);
}

static void test_source__blocking_stream_delivers_heartbeats_and_new_transactions(void **state)
{
	struct th_mariadb *db = shared_db(state);
	char now[128];
	assert_int_equal(th_mariadb_query_value(db, now, sizeof now, "SELECT @@gtid_binlog_pos"), 0);
	struct th_source_config c = config_for(db);
	c.gtid = now;
	c.heartbeat_ms = 100;
	c.pass_heartbeats = true;
	struct th_source *src = open_or_fail(&c);
	const uint8_t *ev;
	size_t len;
	int rc, heartbeats = 0;
	uint64_t t0 = th_now_ns();
	while (heartbeats < 2 && (rc = th_source_next_event(src, &ev, &len)) == 1)
		if (ev[4] == EV_HEARTBEAT)
			heartbeats++;
	assert_int_equal(heartbeats, 2);
	assert_true(th_now_ns() - t0 < 3000000000ull);

	assert_int_equal(th_mariadb_sql(db, "INSERT INTO topo.topo_data (path, data) VALUES ('/s3', 'c')"), 0);
	struct stream s;
	memset(&s, 0, sizeof s);
	s.all_crc_ok = true;
	while (!has_type(&s, EV_XID) && (rc = th_source_next_event(src, &ev, &len)) == 1)
		note_event(&s, ev, len);
	assert_true(s.saw_path[3]);
	assert_true(s.all_crc_ok);
	struct th_source_stats st;
	th_source_stats(src, &st);
	assert_true(st.heartbeats >= 2);
	th_source_close(src);
}

static void test_source__bad_password_is_a_clear_mysql_error(void **state)
{
	struct th_mariadb *db = shared_db(state);
	struct th_source_config c = config_for(db);
	c.password = "not-the-password";
	struct th_source *src = (struct th_source *)1;
	char err[512];
	assert_int_equal(th_source_live_open(&c, &src, err, sizeof err), -TH_EMYSQL);
	assert_null(src);
	assert_non_null(strstr(err, "Access denied"));
	assert_non_null(strstr(err, "1045"));
	assert_null(strstr(err, "not-the-password"));
	print_message("message: %s\n", err);
}

static void test_source__gtid_of_the_other_flavour_is_rejected(void **state)
{
	struct th_mariadb *db = shared_db(state);
	struct th_source_config c = config_for(db);
	c.gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5";
	struct th_source *src = NULL;
	char err[512];
	assert_int_equal(th_source_live_open(&c, &src, err, sizeof err), -TH_EGTID);
	assert_non_null(strstr(err, "MariaDB"));
}

static void test_source__dump_refused_by_the_server_is_reported_with_its_message(void **state)
{
	struct th_mariadb *db = shared_db(state);
	struct th_source_config c = config_for(db);
	c.binlog_file = "no-such-binlog.000042";
	struct th_source *src = open_or_fail(&c);
	const uint8_t *ev;
	size_t len;
	assert_int_equal(th_source_next_event(src, &ev, &len), -TH_EMYSQL);
	assert_non_null(strstr(th_source_error(src), "1236"));
	assert_int_equal(th_source_server_errno(src), 1236);
	print_message("message: %s\n", th_source_error(src));
	/* Sticky. */
	assert_int_equal(th_source_next_event(src, &ev, &len), -TH_EMYSQL);
	th_source_close(src);

	/* A GTID position the server never wrote (strict mode): an error, not a skip. */
	c.binlog_file = NULL;
	c.gtid = "0-1-999999";
	src = open_or_fail(&c);
	int rc;
	while ((rc = th_source_next_event(src, &ev, &len)) == 1)
		;
	assert_int_equal(rc, -TH_EMYSQL);
	print_message("message: %s\n", th_source_error(src));
	th_source_close(src);
}

/* Reads until the source is idle (a heartbeat), so it waits on the socket. */
static void read_until_heartbeat(struct th_source *src)
{
	const uint8_t *ev;
	size_t len;
	int rc;
	while ((rc = th_source_next_event(src, &ev, &len)) == 1 && ev[4] != EV_HEARTBEAT)
		;
	if (rc != 1)
		fail_msg("before the heartbeat: %s: %s", th_errname(rc), th_source_error(src));
}

/*
 * A blocking stream with 200 ms heartbeats, read until idle; then sig to the
 * server and the stream read until the source gives up, which must be
 * -TH_EDEADCONN. Returns how long that took (ms) and the source in *out.
 */
static uint64_t ms_to_dead_connection(struct th_mariadb *db, int sig, struct th_source **out)
{
	struct th_source_config c = config_for(db);
	c.heartbeat_ms = 200;
	c.pass_heartbeats = true;
	struct th_source *src = open_or_fail(&c);
	read_until_heartbeat(src);
	assert_int_equal(th_mariadb_signal(db, sig), 0);
	const uint8_t *ev;
	size_t len;
	uint64_t t0 = th_now_ns();
	int rc;
	while ((rc = th_source_next_event(src, &ev, &len)) == 1)
		;
	uint64_t ms = (th_now_ns() - t0) / 1000000u;
	assert_int_equal(rc, -TH_EDEADCONN);
	*out = src;
	return ms;
}

static void test_source__killed_server_is_a_dead_connection(void **state)
{
	struct th_source *src;
	uint64_t ms = ms_to_dead_connection(shared_db(state), SIGKILL, &src);
	assert_true(ms <= th_source_deadline_ms(src) + 500);
	print_message("after %llu ms: %s\n", (unsigned long long)ms, th_source_error(src));
	th_source_close(src);
}

static void test_source__stopped_server_is_a_dead_connection_within_the_deadline(void **state)
{
	struct th_source *src;
	uint64_t ms = ms_to_dead_connection(shared_db(state), SIGSTOP, &src);
	uint32_t deadline = th_source_deadline_ms(src);
	assert_true(deadline >= 2 * 200);
	assert_true(ms + 300 >= deadline); /* not before the deadline (less a heartbeat in flight) */
	assert_true(ms <= deadline + 1500);
	assert_non_null(strstr(th_source_error(src), "heartbeat deadline"));
	print_message("after %llu ms (deadline %u): %s\n", (unsigned long long)ms, deadline,
		      th_source_error(src));
	th_source_close(src);
	/* server_teardown kills the stopped server (SIGKILL works on it). */
}

/* ---- MySQL 8, through the replay server ---- */

#define MYSQL8_FILE "mysql-8.0.45-gtid.000001"
#define MYSQL8_UUID "396e294c-1ca4-11f1-9ae7-00155da79c6b"
#define EV_GTID 33

struct replay_fixture {
	struct th_replay *rs;
	uint8_t *file;            /* the binlog, for comparison */
	size_t file_len;
};

static void fixture_path(char *out, size_t len)
{
	if (th_test_fixture(MYSQL8_FILE, out, len) != 0)
		fail_msg("fixture %s not found: run the tests from the repository root (or set TH_FIXTURES)", out);
}

static struct replay_fixture *replay_open(bool stall)
{
	char path[512], why[512];
	fixture_path(path, sizeof path);
	struct th_replay_options o = { .binlog_path = path, .user = "topohub", .stall = stall };
	struct replay_fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	int rc = th_replay_start(&o, &f->rs, why, sizeof why);
	if (rc != 0)
		fail_msg("th_replay_start: %s", why);
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	f->file_len = (size_t)ftell(fp);
	fseek(fp, 0, SEEK_SET);
	f->file = malloc(f->file_len);
	assert_non_null(f->file);
	assert_int_equal(fread(f->file, 1, f->file_len, fp), f->file_len);
	fclose(fp);
	return f;
}

static void replay_free(struct replay_fixture *f)
{
	th_replay_stop(f->rs);
	free(f->file);
	free(f);
}

static struct th_source_config replay_config(const struct replay_fixture *f)
{
	struct th_source_config c = {
		.host = "127.0.0.1", .port = th_replay_port(f->rs), .user = "topohub",
		.password = "secret", .heartbeat_ms = 1000,
	};
	return c;
}

static void test_source__mysql8_binlog_streams_end_to_end_byte_for_byte(void **state)
{
	(void)state;
	struct replay_fixture *f = replay_open(false);
	struct th_source_config c = replay_config(f);
	c.gtid = ""; /* GTID dump from the beginning */
	c.non_blocking = true;
	struct th_source *src = open_or_fail(&c);
	assert_int_equal(th_source_flavor(src), TH_SOURCE_FLAVOR_MYSQL);
	assert_string_equal(th_source_server_version(src), "8.0.45-replay");
	assert_int_equal(th_source_checksum(src), 1);

	const uint8_t *ev;
	size_t len;
	assert_int_equal(th_source_next_event(src, &ev, &len), 1);
	assert_int_equal(ev[4], EV_ROTATE);
	assert_true(crc_ok(ev, len));
	const char *file;
	th_source_position(src, &file, NULL);
	assert_string_equal(file, MYSQL8_FILE);

	/* Every event of the file, in order, byte for byte. */
	size_t off = 4, n = 0;
	int rc;
	while ((rc = th_source_next_event(src, &ev, &len)) == 1) {
		assert_true(off + 19 <= f->file_len);
		uint32_t size = th_le32(f->file + off + 9);
		assert_int_equal(len, size);
		assert_memory_equal(ev, f->file + off, size);
		off += size;
		n++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(off, f->file_len);
	print_message("%zu events streamed\n", n);

	struct th_replay_request r;
	th_replay_last_request(f->rs, &r);
	assert_int_equal(r.command, 0x1e);
	assert_int_equal(r.flags, 0x0004 | 0x0001); /* through GTID, non-blocking */
	assert_int_equal(r.server_id, th_source_server_id(src));
	assert_int_equal(r.heartbeat_ns, 1000000000ull);
	assert_string_equal(r.checksum, "CRC32");
	assert_string_equal(r.user, "topohub");
	assert_int_equal(r.gtid_len, 8); /* the empty set */
	th_source_close(src);
	replay_free(f);
}

static void test_source__mysql8_resumes_from_gtid_set(void **state)
{
	(void)state;
	struct replay_fixture *f = replay_open(false);
	struct th_source_config c = replay_config(f);
	c.gtid = MYSQL8_UUID ":1-2";
	c.non_blocking = true;
	struct th_source *src = open_or_fail(&c);
	const uint8_t *ev;
	size_t len;
	int rc;
	uint64_t gnos[8];
	size_t n = 0;
	while ((rc = th_source_next_event(src, &ev, &len)) == 1)
		if (ev[4] == EV_GTID && n < 8)
			gnos[n++] = th_le64(ev + 36);
	assert_int_equal(rc, 0);
	assert_int_equal(n, 2);
	assert_int_equal(gnos[0], 3);
	assert_int_equal(gnos[1], 4);

	/* The set went over the wire in the binary encoding. */
	struct th_replay_request r;
	th_replay_last_request(f->rs, &r);
	struct th_gtid_set *sent, *want;
	assert_int_equal(th_gtid_set_new(&sent), 0);
	assert_int_equal(th_gtid_set_new(&want), 0);
	assert_int_equal(th_gtid_set_decode(sent, r.gtid, r.gtid_len, NULL), 0);
	assert_int_equal(th_gtid_set_parse(want, MYSQL8_UUID ":1-2", NULL, 0), 0);
	assert_true(th_gtid_set_equal(sent, want));
	th_gtid_set_free(sent);
	th_gtid_set_free(want);
	th_source_close(src);
	replay_free(f);
}

static void test_source__mysql8_dump_by_file_and_position(void **state)
{
	(void)state;
	struct replay_fixture *f = replay_open(false);
	struct th_source_config c = replay_config(f);
	c.binlog_file = MYSQL8_FILE;
	c.binlog_pos = 4;
	c.non_blocking = true;
	struct th_source *src = open_or_fail(&c);
	struct stream s;
	drain(src, &s);
	assert_true(s.all_crc_ok);
	struct th_replay_request r;
	th_replay_last_request(f->rs, &r);
	assert_int_equal(r.command, 0x12);
	assert_string_equal(r.file, MYSQL8_FILE);
	assert_int_equal(r.pos, 4);
	th_source_close(src);

	/* MariaDB GTID text is refused before anything is sent. */
	c.binlog_file = NULL;
	c.gtid = "0-1-5";
	char err[512];
	assert_int_equal(th_source_live_open(&c, &src, err, sizeof err), -TH_EGTID);
	assert_non_null(strstr(err, "MySQL"));
	replay_free(f);
}

static void test_source__mysql8_idle_stream_gets_heartbeats(void **state)
{
	(void)state;
	struct replay_fixture *f = replay_open(false);
	struct th_source_config c = replay_config(f);
	c.gtid = "";
	c.heartbeat_ms = 100;
	c.pass_heartbeats = true;
	struct th_source *src = open_or_fail(&c);
	const uint8_t *ev;
	size_t len;
	int rc, heartbeats = 0;
	while (heartbeats < 3 && (rc = th_source_next_event(src, &ev, &len)) == 1)
		if (ev[4] == EV_HEARTBEAT) {
			assert_true(crc_ok(ev, len));
			heartbeats++;
		}
	assert_int_equal(heartbeats, 3);
	th_source_close(src);
	replay_free(f);
}

static void test_source__mysql8_silent_server_is_a_dead_connection(void **state)
{
	(void)state;
	struct replay_fixture *f = replay_open(true);
	struct th_source_config c = replay_config(f);
	c.gtid = "";
	c.heartbeat_ms = 200;
	struct th_source *src = open_or_fail(&c);
	const uint8_t *ev;
	size_t len;
	int rc;
	uint64_t t0 = 0;
	size_t n = 0;
	while ((rc = th_source_next_event(src, &ev, &len)) == 1) {
		t0 = th_now_ns();
		n++;
	}
	uint64_t ms = (th_now_ns() - t0) / 1000000u;
	assert_int_equal(rc, -TH_EDEADCONN);
	assert_true(n > 10);
	assert_true(ms + 100 >= th_source_deadline_ms(src));
	assert_true(ms <= th_source_deadline_ms(src) + 1500);
	th_source_close(src);
	replay_free(f);
}

static void test_source__mysql8_refused_login_is_a_clear_mysql_error(void **state)
{
	(void)state;
	struct replay_fixture *f = replay_open(false);
	struct th_source_config c = replay_config(f);
	c.user = "intruder";
	struct th_source *src = NULL;
	char err[512];
	assert_int_equal(th_source_live_open(&c, &src, err, sizeof err), -TH_EMYSQL);
	assert_null(src);
	assert_non_null(strstr(err, "Access denied"));
	assert_non_null(strstr(err, "1045"));
	assert_null(strstr(err, "secret"));
	replay_free(f);
}

static int tls_server_setup(void **state)
{
	return start_server(state, true);
}

static void test_source__tls_connection_verifies_the_server_and_streams(void **state)
{
	struct th_mariadb *db = shared_db(state);
	assert_int_equal(th_mariadb_sql(db, "CREATE DATABASE t; CREATE TABLE t.t (id INT PRIMARY KEY);"
					    "INSERT INTO t.t VALUES (1)"), 0);
	struct th_source_config c = config_for(db);
	c.non_blocking = true;
	c.tls = true;
	c.tls_verify = true;
	c.tls_ca = db->tls_ca;
	struct th_source *src = open_or_fail(&c);
	struct stream s;
	drain(src, &s);
	assert_true(has_type(&s, EV_WRITE_ROWS_V1));
	assert_true(s.all_crc_ok);
	th_source_close(src);

	/* The account requires TLS: without it the server refuses. */
	c.tls = false;
	char err[512];
	assert_int_equal(th_source_live_open(&c, &src, err, sizeof err), -TH_EMYSQL);
	assert_non_null(strstr(err, "Access denied"));

	/* Verification on: a certificate not made for the name we dial is refused... */
	c.tls = true;
	c.host = "localhost"; /* resolves to 127.0.0.1; the certificate names only the IP */
	int rc = th_source_live_open(&c, &src, err, sizeof err);
	if (rc == 0) {
		th_source_close(src);
		fail_msg("a certificate for 127.0.0.1 was accepted for localhost");
	}
	assert_int_equal(rc, -TH_EMYSQL);
	print_message("refused: %s\n", err);
	/* ...and accepted, still encrypted, when verification is off. */
	c.tls_verify = false;
	src = open_or_fail(&c);
	th_source_close(src);

	/* Closing a TLS source whose server died writes to a dead socket: that
	 * must not raise SIGPIPE (which would kill this program). */
	c.host = "127.0.0.1";
	c.tls_verify = true;
	c.non_blocking = false;
	c.heartbeat_ms = 200;
	c.pass_heartbeats = true;
	src = open_or_fail(&c);
	read_until_heartbeat(src);
	assert_int_equal(th_mariadb_signal(db, SIGKILL), 0);
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	th_source_close(src);
}

/* The password goes in clear text only where the server is known: TCP with
 * TLS and its certificate verified; a Unix socket never has TLS. */
static void test_source__clear_text_password_only_to_a_verified_tls_server_by_tcp(void **state)
{
	(void)state;
	const char *clear = TH_SOURCE_AUTH_PLUGINS_VERIFIED_TLS, *never = TH_SOURCE_AUTH_PLUGINS;
	assert_non_null(strstr(clear, "mysql_clear_password"));
	assert_null(strstr(never, "mysql_clear_password"));
	assert_null(strstr(never, "dialog"));
	assert_string_equal(th_source_auth_plugins(true, true, NULL), clear);
	assert_string_equal(th_source_auth_plugins(true, true, ""), clear);
	assert_string_equal(th_source_auth_plugins(true, false, NULL), never);
	assert_string_equal(th_source_auth_plugins(false, true, NULL), never);
	assert_string_equal(th_source_auth_plugins(false, false, NULL), never);
	assert_string_equal(th_source_auth_plugins(true, true, "/run/mysqld/mysqld.sock"), never);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_source__clear_text_password_only_to_a_verified_tls_server_by_tcp),
		cmocka_unit_test(test_source__streams_row_events_from_the_start_with_crc32),
		cmocka_unit_test(test_source__resumes_from_gtid_position),
		cmocka_unit_test(test_source__blocking_stream_delivers_heartbeats_and_new_transactions),
		cmocka_unit_test(test_source__bad_password_is_a_clear_mysql_error),
		cmocka_unit_test(test_source__gtid_of_the_other_flavour_is_rejected),
		cmocka_unit_test(test_source__dump_refused_by_the_server_is_reported_with_its_message),
		cmocka_unit_test(test_source__mysql8_binlog_streams_end_to_end_byte_for_byte),
		cmocka_unit_test(test_source__mysql8_resumes_from_gtid_set),
		cmocka_unit_test(test_source__mysql8_dump_by_file_and_position),
		cmocka_unit_test(test_source__mysql8_idle_stream_gets_heartbeats),
		cmocka_unit_test(test_source__mysql8_silent_server_is_a_dead_connection),
		cmocka_unit_test(test_source__mysql8_refused_login_is_a_clear_mysql_error),
		cmocka_unit_test_setup_teardown(test_source__tls_connection_verifies_the_server_and_streams,
						tls_server_setup, server_teardown),
		/* These two break their server: each gets its own. */
		cmocka_unit_test_setup_teardown(test_source__killed_server_is_a_dead_connection,
						server_setup, server_teardown),
		cmocka_unit_test_setup_teardown(test_source__stopped_server_is_a_dead_connection_within_the_deadline,
						server_setup, server_teardown),
	};
	if (getenv("TH_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TH_TEST_FILTER"));
	return cmocka_run_group_tests(tests, server_setup, server_teardown);
}
