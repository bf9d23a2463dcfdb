/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for the transaction assembler and topo mapping (readers/txn.h):
 * hand-built event sequences of both flavours fed through the real decoder,
 * the DDL matcher, and the real binlogs of tests/fixtures/binlog with one
 * of their tables configured as the watched one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/support/binlog_build.h"
#include "tests/support/support.h"
#include "readers/binlog.h"
#include "common/th_buf.h"
#include "common/th_error.h"
#include "readers/txn.h"

/* ---- a stream of built events (tests/support/binlog_build.h) ---------------- */

/* A stream: decoder + assembler, events built and fed one at a time. */
struct ctx {
	struct tb_stream *s;
	struct th_txn_asm *a;
	bool mariadb;
	const struct th_txn *last; /* the last delivered transaction */
	int delivered;
};

static struct ctx *ctx_new(bool mariadb, const struct th_txn_config *cfg)
{
	struct ctx *c = calloc(1, sizeof *c);
	assert_non_null(c);
	assert_int_equal(th_txn_asm_new(&c->a, cfg), 0);
	assert_int_equal(th_txn_set_position(c->a, NULL, "binlog.000001", 4), 0);
	c->mariadb = mariadb;
	struct th_binlog_event ev;
	c->s = tb_stream_new(mariadb, true, &ev);
	const struct th_txn *t;
	assert_int_equal(th_txn_feed(c->a, &ev, &t), 0);
	return c;
}

static void ctx_free(struct ctx *c)
{
	th_txn_free(c->a);
	tb_stream_free(c->s);
	free(c);
}

/* Build, decode and feed one event; returns th_txn_feed's result. */
static int feed(struct ctx *c, uint8_t type, const struct tb_bytes *body)
{
	struct th_binlog_event ev;
	if (tb_stream_decode(c->s, type, 0, body, &ev))
		fail_msg("decode type %u: %s", type, th_binlog_decoder_error(c->s->dec));
	const struct th_txn *t = NULL;
	int rc = th_txn_feed(c->a, &ev, &t);
	if (rc == 1) {
		assert_non_null(t);
		c->last = t;
		c->delivered++;
	}
	return rc;
}

/* What tb_mysql_gtid() writes as the immediate commit time. */
#define COMMIT_US 1700000000123456ull

/* A MariaDB GTID event 0-7-seq with the flags and no commit id. */
static void maria_gtid(struct ctx *c, uint64_t seq, uint8_t flags)
{
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, seq, 8);
	tb_le(&b, 0, 4);
	tb_le(&b, flags, 1);
	tb_le(&b, 0, 6);
	assert_int_equal(feed(c, TH_BINLOG_MARIA_GTID, &b), 0);
}

/* A MySQL GTID event for TB_UUID1:gno. */
static void mysql_gtid(struct ctx *c, uint64_t gno)
{
	struct tb_bytes b = { .n = 0 };
	tb_mysql_gtid(&b, tb_uuid1, (int64_t)gno, false);
	assert_int_equal(feed(c, TH_BINLOG_GTID, &b), 0);
}

/* A QUERY event in db; returns feed's result. */
static int query(struct ctx *c, const char *db, const char *q)
{
	struct tb_bytes b = { .n = 0 };
	tb_query(&b, db, q, 0);
	return feed(c, TH_BINLOG_QUERY, &b);
}

/* Start a transaction: MySQL GTID + BEGIN, or MariaDB GTID (transactional). */
static void begin(struct ctx *c, uint64_t n)
{
	if (c->mariadb) {
		maria_gtid(c, n, TH_MARIA_GTID_TRANSACTIONAL);
		return;
	}
	mysql_gtid(c, n);
	assert_int_equal(query(c, "topo", "BEGIN"), 0);
}

static int xid(struct ctx *c)
{
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 42, 8);
	return feed(c, TH_BINLOG_XID, &b);
}

/* A DDL transaction: MySQL GTID + query, or MariaDB standalone GTID + query. */
static int ddl(struct ctx *c, uint64_t n, const char *db, const char *q)
{
	if (c->mariadb)
		maria_gtid(c, n, TH_MARIA_GTID_STANDALONE | TH_MARIA_GTID_DDL);
	else
		mysql_gtid(c, n);
	return query(c, db, q);
}

/*
 * TABLE_MAP of a mysqltopo table. kind 0 topo_data (path VARCHAR(512),
 * data MEDIUMBLOB, version BIGINT, created_at, modified_at TIMESTAMP);
 * 1 topo_locks (path, contents TEXT, expires_at); 2 topo_elections (name,
 * leader_id VARCHAR(255), contents TEXT, expires_at); 3 "other" (topo.topo_data2
 * with topo_data's columns).
 */
static void table_map(struct tb_bytes *b, uint64_t id, int kind, bool names)
{
	static const char *const tnames[] = { "topo_data", "topo_locks", "topo_elections", "topo_data2" };
	static const char *const cols[3][5] = {
		{ "path", "data", "version", "created_at", "modified_at" },
		{ "path", "contents", "expires_at" },
		{ "name", "leader_id", "contents", "expires_at" },
	};
	int k = kind == 3 ? 0 : kind;
	tb_le(b, id, 6);
	tb_le(b, 1, 2);
	tb_le(b, 4, 1); tb_str(b, "topo"); tb_le(b, 0, 1);
	tb_le(b, strlen(tnames[kind]), 1); tb_str(b, tnames[kind]); tb_le(b, 0, 1);
	struct tb_bytes meta = { .n = 0 };
	uint8_t types[5];
	uint32_t n = 0;
	if (k == 0) {
		types[n++] = TH_COL_VARCHAR; tb_le(&meta, 2048, 2);
		types[n++] = TH_COL_BLOB; tb_le(&meta, 3, 1);
		types[n++] = TH_COL_LONGLONG;
		types[n++] = TH_COL_TIMESTAMP2; tb_le(&meta, 0, 1);
		types[n++] = TH_COL_TIMESTAMP2; tb_le(&meta, 0, 1);
	} else if (k == 1) {
		types[n++] = TH_COL_VARCHAR; tb_le(&meta, 2048, 2);
		types[n++] = TH_COL_BLOB; tb_le(&meta, 2, 1);
		types[n++] = TH_COL_TIMESTAMP2; tb_le(&meta, 0, 1);
	} else {
		types[n++] = TH_COL_VARCHAR; tb_le(&meta, 2048, 2);
		types[n++] = TH_COL_VARCHAR; tb_le(&meta, 1020, 2);
		types[n++] = TH_COL_BLOB; tb_le(&meta, 2, 1);
		types[n++] = TH_COL_TIMESTAMP2; tb_le(&meta, 0, 1);
	}
	tb_packed(b, n);
	tb_put(b, types, n);
	tb_packed(b, meta.n);
	tb_put(b, meta.b, meta.n);
	tb_le(b, 0x1e, 1); /* nullable: all but the key */
	if (!names)
		return;
	struct tb_bytes nm = { .n = 0 };
	for (uint32_t i = 0; i < n; i++) {
		tb_packed(&nm, strlen(cols[k][i]));
		tb_str(&nm, cols[k][i]);
	}
	tb_le(b, 4, 1); tb_packed(b, nm.n); tb_put(b, nm.b, nm.n);
}

/* Header of a rows event (v2 for MySQL, v1 for MariaDB) over all ncols columns. */
static void rows_header(struct ctx *c, struct tb_bytes *b, uint64_t id, uint32_t ncols, bool update)
{
	tb_rows_header(b, id, ncols, !c->mariadb, update);
}

static uint8_t rows_type(struct ctx *c, char op)
{
	if (c->mariadb)
		return op == 'w' ? TH_BINLOG_WRITE_ROWS_V1 : op == 'u' ? TH_BINLOG_UPDATE_ROWS_V1 : TH_BINLOG_DELETE_ROWS_V1;
	return op == 'w' ? TH_BINLOG_WRITE_ROWS : op == 'u' ? TH_BINLOG_UPDATE_ROWS : TH_BINLOG_DELETE_ROWS;
}

static void varstr(struct tb_bytes *b, const char *s, unsigned lenbytes)
{
	tb_le(b, strlen(s), lenbytes);
	tb_str(b, s);
}

/* One topo_data image; data NULL is SQL NULL. */
static void data_row(struct tb_bytes *b, const char *path, const char *data, int64_t version)
{
	tb_le(b, data ? 0 : 0x02, 1);
	varstr(b, path, 2);
	if (data)
		varstr(b, data, 3);
	tb_le(b, (uint64_t)version, 8);
	/* TIMESTAMP2: big-endian seconds */
	uint8_t ts[4] = { 0x65, 0x5a, 0x00, 0x01 };
	tb_put(b, ts, 4);
	tb_put(b, ts, 4);
}

static void election_row(struct tb_bytes *b, const char *name, const char *leader, const char *contents)
{
	tb_le(b, contents ? 0 : 0x04, 1);
	varstr(b, name, 2);
	varstr(b, leader, 2);
	if (contents)
		varstr(b, contents, 2);
	uint8_t ts[4] = { 0x65, 0x5a, 0x00, 0x01 };
	tb_put(b, ts, 4);
}

/* A TABLE_MAP of table_map()'s kind as table id; it must be accepted. */
static void map_table(struct ctx *c, uint64_t id, int kind, bool names)
{
	struct tb_bytes b = { .n = 0 };
	table_map(&b, id, kind, names);
	assert_int_equal(feed(c, TH_BINLOG_TABLE_MAP, &b), 0);
}

/* A WRITE_ROWS of one topo_data row into table id; returns feed's result. */
static int write_data_row(struct ctx *c, uint64_t id, const char *path, const char *data, int64_t version)
{
	struct tb_bytes b = { .n = 0 };
	rows_header(c, &b, id, 5, false);
	data_row(&b, path, data, version);
	return feed(c, rows_type(c, 'w'), &b);
}

static void assert_change(const struct th_txn_change *ch, uint32_t table, int op, const char *key,
			  const char *value, int64_t version)
{
	assert_int_equal(ch->table, table);
	assert_int_equal(ch->op, op);
	assert_int_equal(ch->key_len, strlen(key));
	assert_memory_equal(ch->key, key, ch->key_len);
	if (value) {
		assert_true(ch->has_value);
		assert_int_equal(ch->value_len, strlen(value));
		assert_memory_equal(ch->value, value, ch->value_len);
	} else {
		assert_false(ch->has_value);
		assert_null(ch->value);
	}
	assert_int_equal(ch->version, version);
}

static char *resume_gtid(struct ctx *c)
{
	struct th_buf b = TH_BUF_INIT;
	assert_int_equal(th_txn_resume_gtid(c->a, &b), 0);
	static char s[256];
	snprintf(s, sizeof s, "%s", th_buf_cstr(&b));
	th_buf_free(&b);
	return s;
}

/* ---- transactions ---------------------------------------------------------- */

static void test_txn__changes_delivered_only_at_commit(void **state)
{
	(void)state;
	for (int m = 0; m < 2; m++) {
		struct ctx *c = ctx_new(m == 1, NULL);
		begin(c, 5);
		map_table(c, 70, 0, true);
		struct tb_bytes b = { .n = 0 };
		rows_header(c, &b, 70, 5, false);
		data_row(&b, "/keyspaces/ks1", "hello", 1);
		data_row(&b, "/keyspaces/ks2", NULL, 1);
		assert_int_equal(feed(c, rows_type(c, 'w'), &b), 0);
		assert_true(th_txn_in_progress(c->a));
		assert_int_equal(c->delivered, 0);
		assert_int_equal(xid(c), 1);
		const struct th_txn *t = c->last;
		assert_int_equal(t->nchanges, 2);
		assert_int_equal(t->rows, 2);
		assert_change(&t->changes[0], 0, TH_TXN_PUT, "/keyspaces/ks1", "hello", 1);
		assert_change(&t->changes[1], 0, TH_TXN_PUT, "/keyspaces/ks2", NULL, 1);
		assert_false(t->resync);
		assert_true(t->has_gtid);
		assert_int_equal(t->seq, 1);
		if (m) {
			assert_string_equal(t->gtid, "0-7-5");
			assert_int_equal(t->flavor, TH_BINLOG_FLAVOR_MARIADB);
			assert_int_equal(t->commit_us, 1700000100ull * 1000000); /* the header's TB_TIMESTAMP */
		} else {
			assert_string_equal(t->gtid, TB_UUID1 ":5");
			assert_int_equal(t->flavor, TH_BINLOG_FLAVOR_MYSQL);
			assert_int_equal(t->commit_us, COMMIT_US);
		}
		assert_false(th_txn_in_progress(c->a));
		ctx_free(c);
	}
}

static void test_txn__resume_position_never_includes_a_half_seen_transaction(void **state)
{
	(void)state;
	for (int m = 0; m < 2; m++) {
		struct ctx *c = ctx_new(m == 1, NULL);
		const char *file;
		uint64_t pos;
		assert_string_equal(resume_gtid(c), "");
		begin(c, 1);
		map_table(c, 70, 0, true);
		assert_int_equal(write_data_row(c, 70, "/a", "1", 1), 0);
		/* mid-transaction: nothing of it in the position */
		assert_string_equal(resume_gtid(c), "");
		th_txn_resume_file(c->a, &file, &pos);
		assert_string_equal(file, "binlog.000001");
		assert_int_equal(pos, 4);
		assert_int_equal(xid(c), 1);
		assert_string_equal(resume_gtid(c), m ? "0-7-1" : TB_UUID1 ":1");
		th_txn_resume_file(c->a, &file, &pos);
		assert_int_equal(pos, c->s->pos);
		assert_int_equal(c->last->end_pos, c->s->pos);
		uint64_t committed = c->s->pos;
		/* the next transaction, cut off by a reconnect: dropped, position kept */
		begin(c, 2);
		map_table(c, 70, 0, true);
		assert_int_equal(write_data_row(c, 70, "/b", "2", 1), 0);
		assert_string_equal(resume_gtid(c), m ? "0-7-1" : TB_UUID1 ":1");
		th_txn_reset(c->a);
		assert_false(th_txn_in_progress(c->a));
		th_txn_resume_file(c->a, &file, &pos);
		assert_int_equal(pos, committed);
		struct th_txn_stats st;
		th_txn_stats(c->a, &st);
		assert_int_equal(st.dropped, 1);
		/* a GTID without the previous commit also drops the cut transaction */
		begin(c, 2);
		map_table(c, 70, 0, true);
		assert_int_equal(write_data_row(c, 70, "/c", "3", 1), 0);
		begin(c, 3);
		assert_int_equal(xid(c), 1);
		assert_int_equal(c->last->nchanges, 0);
		assert_string_equal(resume_gtid(c), m ? "0-7-3" : TB_UUID1 ":1:3");
		ctx_free(c);
	}
}

static void test_txn__update_that_changes_the_key_is_delete_then_put(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(false, NULL);
	begin(c, 1);
	map_table(c, 70, 0, true);
	struct tb_bytes b = { .n = 0 };
	rows_header(c, &b, 70, 5, true);
	data_row(&b, "/same", "old", 3);
	data_row(&b, "/same", "new", 4);
	data_row(&b, "/old/key", "v", 7);
	data_row(&b, "/new/key", "v", 8);
	assert_int_equal(feed(c, rows_type(c, 'u'), &b), 0);
	b.n = 0;
	rows_header(c, &b, 70, 5, false);
	data_row(&b, "/gone", "x", 9);
	assert_int_equal(feed(c, rows_type(c, 'd'), &b), 0);
	assert_int_equal(xid(c), 1);
	const struct th_txn *t = c->last;
	assert_int_equal(t->rows, 3);
	assert_int_equal(t->nchanges, 4);
	assert_change(&t->changes[0], 0, TH_TXN_PUT, "/same", "new", 4);
	assert_change(&t->changes[1], 0, TH_TXN_DELETE, "/old/key", NULL, 7);
	assert_change(&t->changes[2], 0, TH_TXN_PUT, "/new/key", "v", 8);
	assert_change(&t->changes[3], 0, TH_TXN_DELETE, "/gone", NULL, 9);
	ctx_free(c);
}

static void test_txn__unwatched_tables_are_skipped_without_decoding(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(false, NULL);
	begin(c, 1);
	map_table(c, 71, 3, true); /* topo.topo_data2 */
	struct tb_bytes b = { .n = 0 };
	rows_header(c, &b, 71, 5, false);
	/* garbage where the image should be: decoding it would fail */
	tb_le(&b, 0, 1); tb_le(&b, 0xffff, 2); tb_le(&b, 0xffffffff, 4);
	assert_int_equal(feed(c, rows_type(c, 'w'), &b), 0);
	map_table(c, 70, 0, true);
	assert_int_equal(write_data_row(c, 70, "/x", "y", 1), 0);
	assert_int_equal(xid(c), 1);
	assert_int_equal(c->last->nchanges, 1);
	struct th_txn_stats st;
	th_txn_stats(c->a, &st);
	assert_int_equal(st.skipped_row_events, 1);
	assert_int_equal(st.rows, 1);
	/* a transaction with no watched rows is delivered too (it moves the position) */
	begin(c, 2);
	map_table(c, 71, 3, true);
	assert_int_equal(xid(c), 1);
	assert_int_equal(c->last->nchanges, 0);
	assert_string_equal(resume_gtid(c), TB_UUID1 ":1-2");
	ctx_free(c);
}

static void test_txn__election_value_holds_leader_and_contents(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(true, NULL);
	begin(c, 1);
	map_table(c, 72, 2, true);
	struct tb_bytes b = { .n = 0 };
	rows_header(c, &b, 72, 4, false);
	election_row(&b, "vtorc", "zone1-100", "{\"x\":1}");
	election_row(&b, "vtctld", "zone1-200", NULL);
	assert_int_equal(feed(c, rows_type(c, 'w'), &b), 0);
	assert_int_equal(xid(c), 1);
	const struct th_txn *t = c->last;
	assert_int_equal(t->nchanges, 2);
	static const uint8_t v0[] = { 9, 0, 0, 0, 'z', 'o', 'n', 'e', '1', '-', '1', '0', '0',
				      7, 0, 0, 0, '{', '"', 'x', '"', ':', '1', '}' };
	static const uint8_t v1[] = { 9, 0, 0, 0, 'z', 'o', 'n', 'e', '1', '-', '2', '0', '0',
				      0xff, 0xff, 0xff, 0xff };
	assert_int_equal(t->changes[0].table, 2);
	assert_int_equal(t->changes[0].value_len, sizeof v0);
	assert_memory_equal(t->changes[0].value, v0, sizeof v0);
	assert_int_equal(t->changes[1].value_len, sizeof v1);
	assert_memory_equal(t->changes[1].value, v1, sizeof v1);
	assert_int_equal(t->changes[1].version, 0);
	ctx_free(c);
}

static void test_txn__columns_by_position_when_the_table_map_has_no_names(void **state)
{
	(void)state;
	/* no names, no positions: a clear error */
	struct ctx *c = ctx_new(false, NULL);
	begin(c, 1);
	map_table(c, 70, 0, false);
	assert_int_equal(write_data_row(c, 70, "/x", "y", 1), -TH_ESCHEMA);
	assert_non_null(strstr(th_txn_error(c->a), "topo.topo_data"));
	assert_false(th_txn_in_progress(c->a));
	ctx_free(c);
	/* positions as information_schema gives them (here: version first, key third) */
	struct th_txn_table t = { .table = "topo_data", .key = "path", .value = { "data" },
				  .version = "version", .key_pos = 1, .value_pos = { 2 }, .version_pos = 3 };
	struct th_txn_config cfg = { .size = sizeof cfg, .tables = &t, .ntables = 1 };
	c = ctx_new(false, &cfg);
	begin(c, 1);
	map_table(c, 70, 0, false);
	assert_int_equal(write_data_row(c, 70, "/x", "y", 12), 0);
	assert_int_equal(xid(c), 1);
	assert_change(&c->last->changes[0], 0, TH_TXN_PUT, "/x", "y", 12);
	ctx_free(c);
	/* names win over positions; a configured name the table lacks is an error */
	t.version = "revision";
	c = ctx_new(false, &cfg);
	begin(c, 1);
	map_table(c, 70, 0, true);
	assert_int_equal(write_data_row(c, 70, "/x", "y", 12), -TH_ESCHEMA);
	assert_non_null(strstr(th_txn_error(c->a), "revision"));
	ctx_free(c);
}

static void test_txn__ddl_on_a_watched_table_is_a_resync_in_order(void **state)
{
	(void)state;
	for (int m = 0; m < 2; m++) {
		struct ctx *c = ctx_new(m == 1, NULL);
		assert_int_equal(ddl(c, 1, "topo", "CREATE TABLE other (a INT)"), 1);
		assert_false(c->last->resync);
		assert_int_equal(ddl(c, 2, "topo", "ALTER TABLE topo_data ADD COLUMN x INT"), 1);
		const struct th_txn *t = c->last;
		assert_true(t->resync);
		assert_int_equal(t->reason, TH_TXN_RESYNC_DDL);
		assert_int_equal(t->resync_table, 0);
		assert_int_equal(t->nchanges, 0);
		assert_string_equal(t->gtid, m ? "0-7-2" : TB_UUID1 ":2");
		assert_int_equal(ddl(c, 3, "mysql", "DROP TABLE IF EXISTS `topo`.`topo_locks` /* generated by server */"), 1);
		assert_true(c->last->resync);
		assert_int_equal(c->last->resync_table, 1);
		assert_int_equal(ddl(c, 4, "", "drop database topo"), 1);
		assert_true(c->last->resync);
		assert_int_equal(ddl(c, 5, "topo", "TRUNCATE topo_data2"), 1);
		assert_false(c->last->resync);
		assert_string_equal(resume_gtid(c), m ? "0-7-5" : TB_UUID1 ":1-5");
		struct th_txn_stats st;
		th_txn_stats(c->a, &st);
		assert_int_equal(st.txns, 5);
		assert_int_equal(st.resyncs, 3);
		ctx_free(c);
	}
}

static void test_txn__ddl_detection_variants(void **state)
{
	(void)state;
	static const struct {
		const char *db, *q;
		bool hit;
	} cases[] = {
		{ "topo", "ALTER TABLE topo_data ADD x INT", true },
		{ "topo", "alter table TOPO_DATA engine=InnoDB", true },
		{ "other", "ALTER TABLE topo.topo_data ADD x INT", true },
		{ "other", "ALTER TABLE `topo`.`topo_data` ADD x INT", true },
		{ "other", "ALTER TABLE `topo` . `topo_data` ADD x INT", true },
		{ "topo", "  \n\tRENAME TABLE topo_data TO topo_data_old, t2 TO topo_data", true },
		{ "", "RENAME TABLE x.a TO topo.topo_data", true },
		{ "topo", "TRUNCATE TABLE `topo_data`", true },
		{ "topo", "TRUNCATE topo_data", true },
		{ "topo", "DROP TABLE `topo_data` /* generated by server */", true },
		{ "topo", "DROP TABLE IF EXISTS a, b, topo_data", true },
		{ "topo", "CREATE TABLE topo_data (path VARCHAR(512) PRIMARY KEY)", true },
		{ "topo", "CREATE OR REPLACE TABLE topo_data (a INT)", true },
		{ "x", "DROP DATABASE topo", true },
		{ "x", "DROP SCHEMA IF EXISTS `topo`", true },
		{ "topo", "/* ALTER */ ALTER TABLE topo_data FORCE", true },
		{ "topo", "/*!40000 ALTER TABLE `topo_data` DISABLE KEYS */", true },
		{ "topo", "/*M!100000 ALTER TABLE topo_data FORCE */", true },
		{ "topo", "# comment\nDROP TABLE topo_data", true },
		{ "topo", "-- comment\nDROP TABLE topo_data", true },
		{ "topo", "INSERT INTO topo_data VALUES ('/a', 'b', 1, NOW(), NOW())", true },
		{ "x", "UPDATE topo.topo_data SET version = version + 1", true },
		{ "x", "DELETE FROM `topo`.topo_data", true },
		/* non-matches */
		{ "topo", "ALTER TABLE topo_data2 ADD x INT", false },
		{ "topo", "ALTER TABLE topo_data_old ADD x INT", false },
		{ "topo", "ALTER TABLE `topo_data2` ADD x INT", false },
		{ "other", "ALTER TABLE topo_data ADD x INT", false },
		{ "topo", "ALTER TABLE other.topo_data ADD x INT", false },
		{ "topo", "ALTER TABLE t /* topo_data */ ADD x INT", false },
		{ "topo", "CREATE TABLE t (a INT) COMMENT 'DROP TABLE topo_data'", false },
		{ "topo", "/* DROP TABLE topo_data */ CREATE TABLE t (a INT)", false },
		{ "topo", "# DROP TABLE topo_data\nCREATE TABLE t (a INT)", false },
		{ "topo", "GRANT SELECT ON topo_data TO x", false },
		{ "topo", "OPTIMIZE TABLE topo_data", false },
		{ "topo", "BEGIN", false },
		{ "topo", "", false },
		{ "x", "DROP DATABASE topo2", false },
		{ "x", "DROP TABLE topo", false },
		{ "topo", "ALTER TABLE topo_datä ADD x INT", false },
		{ "topo", "ALTER TABLE topo_data", true },
		{ "topo", "ALTER TABLE topo_", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool got = th_txn_query_names_table(cases[i].q, strlen(cases[i].q), cases[i].db,
						    strlen(cases[i].db), "topo", "topo_data");
		if (got != cases[i].hit)
			fail_msg("case %zu: db '%s' query '%s': got %d", i, cases[i].db, cases[i].q, got);
	}
	/* a query that ends inside a comment or a quote is read safely */
	static const char *const cut[] = { "ALTER TABLE `topo_da", "ALTER TABLE 'x", "DROP /* x", "/*!5", "ALTER TABLE topo.", "--" };
	for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++)
		(void)th_txn_query_names_table(cut[i], strlen(cut[i]), "topo", 4, "topo", "topo_data");
}

static void test_txn__statement_dml_inside_a_transaction_flags_resync_at_commit(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(false, NULL);
	begin(c, 1);
	assert_int_equal(query(c, "topo", "UPDATE topo_locks SET contents = 'x'"), 0);
	assert_int_equal(c->delivered, 0);
	assert_int_equal(query(c, "topo", "COMMIT"), 1);
	assert_true(c->last->resync);
	assert_int_equal(c->last->reason, TH_TXN_RESYNC_STATEMENT);
	assert_int_equal(c->last->resync_table, 1);
	ctx_free(c);
}

static void test_txn__incident_and_midway_start_are_resyncs(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(false, NULL);
	/* rows before any GTID/BEGIN: we joined mid-transaction */
	map_table(c, 70, 0, true);
	assert_int_equal(write_data_row(c, 70, "/x", "y", 1), 0);
	assert_int_equal(xid(c), 1);
	assert_true(c->last->resync);
	assert_int_equal(c->last->reason, TH_TXN_RESYNC_PARTIAL);
	assert_false(c->last->has_gtid);
	assert_int_equal(c->last->nchanges, 1);
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 1, 2); tb_le(&b, 4, 1); tb_str(&b, "lost");
	assert_int_equal(feed(c, TH_BINLOG_INCIDENT, &b), 1);
	assert_true(c->last->resync);
	assert_int_equal(c->last->reason, TH_TXN_RESYNC_INCIDENT);
	assert_string_equal(th_txn_resync_reason_name(c->last->reason), "incident");
	ctx_free(c);
}

static void test_txn__payload_transaction_is_delivered_whole(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(false, NULL);
	mysql_gtid(c, 9);
	struct tb_bytes b = { .n = 0 }, inner = { .n = 0 };
	tb_query(&b, "topo", "BEGIN", 0);
	tb_append_event(&inner, TH_BINLOG_QUERY, &b);
	b.n = 0;
	table_map(&b, 70, 0, true);
	tb_append_event(&inner, TH_BINLOG_TABLE_MAP, &b);
	b.n = 0;
	rows_header(c, &b, 70, 5, false);
	data_row(&b, "/in/payload", "zz", 2);
	tb_append_event(&inner, TH_BINLOG_WRITE_ROWS, &b);
	b.n = 0;
	tb_le(&b, 77, 8);
	tb_append_event(&inner, TH_BINLOG_XID, &b);

	static uint8_t ev[1 << 16];
	size_t n = tb_transaction_payload(ev, &inner, 0, true, true);
	uint32_t end = (uint32_t)(c->s->pos + n);
	n = tb_transaction_payload(ev, &inner, end, true, true);
	struct th_binlog_event e;
	assert_int_equal(th_binlog_decode(c->s->dec, ev, n, c->s->pos, &e), 0);
	const struct th_txn *t = NULL;
	assert_int_equal(th_txn_feed(c->a, &e, &t), 0);
	int got = 0, rc;
	while ((rc = th_binlog_payload_next(c->s->dec, &e)) == 1) {
		rc = th_txn_feed(c->a, &e, &t);
		assert_true(rc >= 0);
		if (rc == 1) {
			got++;
			assert_int_equal(e.kind, TH_EVK_XID);
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(got, 1);
	assert_int_equal(t->nchanges, 1);
	assert_change(&t->changes[0], 0, TH_TXN_PUT, "/in/payload", "zz", 2);
	assert_string_equal(t->gtid, TB_UUID1 ":9");
	assert_int_equal(t->end_pos, end);
	const char *file;
	uint64_t pos;
	th_txn_resume_file(c->a, &file, &pos);
	assert_int_equal(pos, end);
	ctx_free(c);
}

static void test_txn__rotate_moves_the_file_between_transactions(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(true, NULL);
	struct tb_bytes b = { .n = 0 };
	/* MariaDB GTID_LIST: transactions before this file */
	tb_le(&b, 1, 4);
	tb_le(&b, 0, 4); tb_le(&b, 7, 4); tb_le(&b, 41, 8);
	assert_int_equal(feed(c, TH_BINLOG_MARIA_GTID_LIST, &b), 0);
	assert_string_equal(resume_gtid(c), "0-7-41");
	begin(c, 42);
	assert_int_equal(xid(c), 1);
	b.n = 0;
	tb_le(&b, 4, 8);
	tb_str(&b, "binlog.000002");
	assert_int_equal(feed(c, TH_BINLOG_ROTATE, &b), 0);
	const char *file;
	uint64_t pos;
	th_txn_resume_file(c->a, &file, &pos);
	assert_string_equal(file, "binlog.000002");
	assert_int_equal(pos, 4);
	assert_string_equal(resume_gtid(c), "0-7-42");
	/* a position given by the caller */
	assert_int_equal(th_txn_set_position(c->a, "0-7-100,1-2-5", "binlog.000009", 1234), 0);
	assert_string_equal(resume_gtid(c), "0-7-100,1-2-5");
	assert_int_equal(th_txn_set_position(c->a, "0-x", NULL, 0), -TH_EGTID);
	assert_string_equal(resume_gtid(c), "0-7-100,1-2-5");
	ctx_free(c);
}

static void test_txn__xa_prepare_drops_changes_and_commit_resyncs(void **state)
{
	(void)state;
	struct ctx *c = ctx_new(true, NULL);
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 1, 8); tb_le(&b, 0, 4); tb_le(&b, TH_MARIA_GTID_PREPARED_XA, 1);
	tb_le(&b, 1, 4); tb_le(&b, 1, 1); tb_le(&b, 0, 1); tb_str(&b, "x");
	assert_int_equal(feed(c, TH_BINLOG_MARIA_GTID, &b), 0);
	assert_int_equal(query(c, "topo", "XA START 'x'"), 0);
	map_table(c, 70, 0, true);
	assert_int_equal(write_data_row(c, 70, "/xa", "v", 1), 0);
	assert_int_equal(query(c, "topo", "XA END 'x'"), 0);
	assert_int_equal(query(c, "topo", "XA PREPARE 'x'"), 1);
	assert_int_equal(c->last->nchanges, 0);
	assert_false(c->last->resync);
	b.n = 0;
	tb_le(&b, 2, 8); tb_le(&b, 0, 4);
	tb_le(&b, TH_MARIA_GTID_STANDALONE | TH_MARIA_GTID_COMPLETED_XA, 1);
	tb_le(&b, 1, 4); tb_le(&b, 1, 1); tb_le(&b, 0, 1); tb_str(&b, "x");
	assert_int_equal(feed(c, TH_BINLOG_MARIA_GTID, &b), 0);
	assert_int_equal(query(c, "topo", "XA COMMIT 'x'"), 1);
	assert_true(c->last->resync);
	assert_int_equal(c->last->reason, TH_TXN_RESYNC_XA);
	assert_string_equal(resume_gtid(c), "0-7-2");
	ctx_free(c);
}

static void test_txn__changes_stay_valid_until_the_next_feed(void **state)
{
	(void)state;
	/* a large transaction: the arena moves while it grows; pointers are set at delivery */
	struct ctx *c = ctx_new(false, NULL);
	begin(c, 1);
	map_table(c, 70, 0, true);
	char path[64], data[300];
	memset(data, 'd', sizeof data - 1);
	data[sizeof data - 1] = '\0';
	for (int ev = 0; ev < 40; ev++) {
		struct tb_bytes b = { .n = 0 };
		rows_header(c, &b, 70, 5, false);
		for (int r = 0; r < 50; r++) {
			snprintf(path, sizeof path, "/p/%d", ev * 50 + r);
			data[0] = (char)('a' + r % 26);
			data_row(&b, path, data, ev * 50 + r);
		}
		assert_int_equal(feed(c, rows_type(c, 'w'), &b), 0);
	}
	assert_int_equal(xid(c), 1);
	const struct th_txn *t = c->last;
	assert_int_equal(t->nchanges, 2000);
	for (int i = 0; i < 2000; i++) {
		snprintf(path, sizeof path, "/p/%d", i);
		data[0] = (char)('a' + (i % 50) % 26);
		assert_change(&t->changes[i], 0, TH_TXN_PUT, path, data, i);
	}
	ctx_free(c);
}

/* ---- real binlog files ------------------------------------------------------- */

struct file_run {
	size_t txns, changes, resyncs, rows_expected, changes_expected;
	char gtid_after[512];
	char last_gtid[64];
	const char *file;
	uint64_t pos;
};

/*
 * Feeds a file (following rotates) to an assembler watching schema.table by
 * key position key_pos; counts what comes out, and independently the rows
 * of that table (each decoded with th_binlog_rows_next; a key-changing
 * update counts twice).
 */
static void run_file(const char *name, const char *schema, const char *table, uint32_t key_pos,
		     uint32_t value_pos, struct file_run *out)
{
	char path[512];
	if (th_test_fixture(name, path, sizeof path) != 0)
		fail_msg("fixture %s not found: run the tests from the repository root (or set TH_FIXTURES)", path);
	struct th_binlog_file_opts fo = { .size = sizeof fo, .follow_rotate = true };
	fo.decoder.size = sizeof fo.decoder;
	struct th_binlog_file *f;
	assert_int_equal(th_binlog_file_open(&f, path, &fo), 0);
	struct th_txn_table t = { .schema = schema, .table = table, .key = "id", .value = { "v" },
				  .key_pos = key_pos, .value_pos = { value_pos } };
	if (!value_pos)
		t.value[0] = NULL;
	struct th_txn_config cfg = { .size = sizeof cfg, .tables = &t, .ntables = 1 };
	struct th_txn_asm *a;
	assert_int_equal(th_txn_asm_new(&a, &cfg), 0);
	assert_int_equal(th_txn_set_position(a, NULL, name, 4), 0);
	memset(out, 0, sizeof *out);
	struct th_binlog_event ev;
	int rc;
	struct th_value before[64], after[64];
	while ((rc = th_binlog_file_next(f, &ev)) == 1) {
		if ((ev.kind == TH_EVK_WRITE_ROWS || ev.kind == TH_EVK_UPDATE_ROWS || ev.kind == TH_EVK_DELETE_ROWS)
		    && ev.u.rows.tm && !strcmp(ev.u.rows.tm->schema, schema) && !strcmp(ev.u.rows.tm->table, table)) {
			struct th_binlog_row_iter it;
			th_binlog_rows_begin(&it, &ev);
			assert_true(ev.u.rows.tm->ncols <= 64);
			while ((rc = th_binlog_rows_next(&it, before, after)) == 1) {
				out->rows_expected++;
				out->changes_expected++;
				if (ev.kind == TH_EVK_UPDATE_ROWS) {
					const struct th_value *x = &before[key_pos - 1], *y = &after[key_pos - 1];
					bool same = x->kind == y->kind && x->i == y->i && x->u == y->u && x->len == y->len
						&& (!x->len || !memcmp(x->bytes, y->bytes, x->len));
					out->changes_expected += !same;
				}
			}
			assert_int_equal(rc, 0);
		}
		const struct th_txn *tx;
		rc = th_txn_feed(a, &ev, &tx);
		if (rc < 0)
			fail_msg("%s: %s", name, th_txn_error(a));
		if (rc == 1) {
			out->txns++;
			out->changes += tx->nchanges;
			out->resyncs += tx->resync;
			snprintf(out->last_gtid, sizeof out->last_gtid, "%s", tx->gtid);
			/* every change points at bytes of its own */
			for (size_t i = 0; i < tx->nchanges; i++)
				assert_true(tx->changes[i].key_len > 0);
		}
	}
	assert_int_equal(rc, 0);
	struct th_buf g = TH_BUF_INIT;
	assert_int_equal(th_txn_resume_gtid(a, &g), 0);
	snprintf(out->gtid_after, sizeof out->gtid_after, "%s", th_buf_cstr(&g));
	th_buf_free(&g);
	const char *file;
	th_txn_resume_file(a, &file, &out->pos);
	static char fbuf[512];
	snprintf(fbuf, sizeof fbuf, "%s", file);
	out->file = fbuf;
	assert_false(th_txn_in_progress(a));
	th_txn_free(a);
	th_binlog_file_close(f);
}

static void test_txn__real_mysql_gtid_files_map_rows_and_positions(void **state)
{
	(void)state;
	struct file_run r;
	/* test.t1 (id BIGINT UNSIGNED): CREATE TABLE, inserts, then in .000002 an
	   update of three keys (1 -> 101, ...) and deletes */
	run_file("mysql-8.0.45-gtid.000001", "test", "t1", 1, 0, &r);
	assert_int_equal(r.txns, 4);
	assert_int_equal(r.resyncs, 1); /* the CREATE TABLE */
	assert_int_equal(r.rows_expected, 6);
	assert_int_equal(r.changes, 6);
	assert_string_equal(r.gtid_after, "396e294c-1ca4-11f1-9ae7-00155da79c6b:1-4");
	assert_string_equal(r.last_gtid, "396e294c-1ca4-11f1-9ae7-00155da79c6b:4");
	/* the closing ROTATE moves the position to the next file */
	assert_string_equal(r.file, "binlog.000002");
	assert_int_equal(r.pos, 4);
	/* the second file: its PREVIOUS_GTIDS starts the set; keys 1..3 become 101..103 */
	run_file("mysql-8.0.45-gtid.000002", "test", "t1", 1, 0, &r);
	assert_int_equal(r.txns, 2);
	assert_int_equal(r.rows_expected, 6);
	assert_int_equal(r.changes, r.changes_expected);
	assert_int_equal(r.changes, 9);
	assert_string_equal(r.gtid_after, "396e294c-1ca4-11f1-9ae7-00155da79c6b:1-6");
	assert_int_equal(r.pos, 824);
	/* anonymous GTIDs: positions only */
	run_file("mysql-8.0.45-position.000001", "test", "t1", 1, 0, &r);
	assert_int_equal(r.txns, 4);
	assert_int_equal(r.changes, 6);
	assert_string_equal(r.gtid_after, "");
	assert_string_equal(r.last_gtid, "");
}

static void test_txn__real_payload_files_deliver_inner_rows(void **state)
{
	(void)state;
	struct file_run r;
	run_file("mysql-8.0.31-gtid-payload.000057", "a", "test_table_3", 1, 2, &r);
	assert_int_equal(r.txns, 3);
	assert_int_equal(r.resyncs, 0);
	assert_int_equal(r.changes, 2);
	assert_int_equal(r.changes, r.changes_expected);
	assert_string_equal(r.gtid_after, "76f3e7be-6720-11ed-9cad-0242ac110002:1-13");
	assert_int_equal(r.pos, 1283);
	/* the DDL "create table b(id int)" names a.b */
	run_file("mysql-8.0.31-gtid-payload.000057", "a", "b", 1, 0, &r);
	assert_int_equal(r.resyncs, 1);
	assert_int_equal(r.changes, 1);
	run_file("mysql-8.0.28-transaction-payload.bin", "demo", "movies", 1, 2, &r);
	assert_int_equal(r.txns, 1);
	assert_true(r.changes >= 1);
	assert_int_equal(r.changes, r.changes_expected);
	assert_string_equal(r.file, "mysql-bin.000005"); /* the closing ROTATE */
	assert_int_equal(r.pos, 4);
}

static void test_txn__real_mysql57_files_map_every_row_of_the_watched_table(void **state)
{
	(void)state;
	struct file_run r;
	run_file("mysql-5.7.21-crc32.bin", "simu_file_dev", "file", 1, 2, &r);
	assert_int_equal(r.txns, 60);
	assert_true(r.rows_expected >= 30);
	assert_int_equal(r.changes, r.changes_expected);
	run_file("mysql-5.7.20-nochecksum.bin", "account_db", "refresh_token", 1, 2, &r);
	assert_int_equal(r.rows_expected, 24);
	assert_int_equal(r.changes, 24);
	assert_int_equal(r.resyncs, 2); /* CREATE DATABASE account_db, create table refresh_token */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txn__changes_delivered_only_at_commit),
		cmocka_unit_test(test_txn__resume_position_never_includes_a_half_seen_transaction),
		cmocka_unit_test(test_txn__update_that_changes_the_key_is_delete_then_put),
		cmocka_unit_test(test_txn__unwatched_tables_are_skipped_without_decoding),
		cmocka_unit_test(test_txn__election_value_holds_leader_and_contents),
		cmocka_unit_test(test_txn__columns_by_position_when_the_table_map_has_no_names),
		cmocka_unit_test(test_txn__ddl_on_a_watched_table_is_a_resync_in_order),
		cmocka_unit_test(test_txn__ddl_detection_variants),
		cmocka_unit_test(test_txn__statement_dml_inside_a_transaction_flags_resync_at_commit),
		cmocka_unit_test(test_txn__incident_and_midway_start_are_resyncs),
		cmocka_unit_test(test_txn__payload_transaction_is_delivered_whole),
		cmocka_unit_test(test_txn__rotate_moves_the_file_between_transactions),
		cmocka_unit_test(test_txn__xa_prepare_drops_changes_and_commit_resyncs),
		cmocka_unit_test(test_txn__changes_stay_valid_until_the_next_feed),
		cmocka_unit_test(test_txn__real_mysql_gtid_files_map_rows_and_positions),
		cmocka_unit_test(test_txn__real_payload_files_deliver_inner_rows),
		cmocka_unit_test(test_txn__real_mysql57_files_map_every_row_of_the_watched_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
