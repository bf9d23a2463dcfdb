/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for the binlog event layer (readers/binlog.h): hand-built events of
 * every type we decode, the real binlogs of tests/fixtures/binlog and of
 * Debian's mariadb-test-data, a cross-check against mariadb-binlog, and
 * random mutations of real files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "tests/support/binlog_build.h"
#include "tests/support/support.h"
#include "readers/binlog.h"
#include "common/th_buf.h"
#include "common/th_error.h"

/* Events are built with tests/support/binlog_build.h and fed to a tb_stream. */

/* The event as JSON, for the caller to free. */
static char *event_json(const struct th_binlog_event *ev)
{
	struct th_buf o = TH_BUF_INIT;
	assert_int_equal(th_binlog_event_to_json(ev, &o), 0);
	char *s = strdup(th_buf_cstr(&o));
	th_buf_free(&o);
	return s;
}

static void assert_json_has(const struct th_binlog_event *ev, const char *part)
{
	char *js = event_json(ev);
	if (!strstr(js, part))
		fail_msg("%s not in %s", part, js);
	free(js);
}

/* An XID event (xid 42 in `bytes` bytes: 8, or a malformed 7) in c->ev, built, not decoded. */
static void build_xid(struct tb_stream *c, unsigned bytes)
{
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 42, bytes);
	c->n = tb_event(c->ev, TH_BINLOG_XID, 0, 1000, &b, true);
}

/* ---- framing, format, checksums -------------------------------------------- */

static void test_binlog__format_description_sets_crc32_and_flavour(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	const struct th_ev_format_description *f = th_binlog_decoder_format(c->dec);
	assert_non_null(f);
	assert_int_equal(f->checksum_alg, 1);
	assert_int_equal(f->flavor, TH_BINLOG_FLAVOR_MYSQL);
	assert_string_equal(f->server_version, "8.0.45");
	tb_stream_free(c);
	c = tb_stream_new(true, false, NULL);
	assert_int_equal(th_binlog_decoder_format(c->dec)->flavor, TH_BINLOG_FLAVOR_MARIADB);
	assert_int_equal(th_binlog_decoder_format(c->dec)->checksum_alg, 0);
	tb_stream_free(c);
}

static void test_binlog__rejects_bad_crc32(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	build_xid(c, 8);
	struct th_binlog_event ev;
	c->ev[20] ^= 1;
	assert_int_equal(th_binlog_decode(c->dec, c->ev, c->n, 500, &ev), -TH_ECHECKSUM);
	assert_non_null(strstr(th_binlog_decoder_error(c->dec), "test at 500"));
	assert_non_null(strstr(th_binlog_decoder_error(c->dec), "CRC32"));
	/* the same event, intact, decodes */
	c->ev[20] ^= 1;
	assert_int_equal(th_binlog_decode(c->dec, c->ev, c->n, 500, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_XID);
	assert_int_equal(ev.u.xid.xid, 42);
	/* a corrupted FORMAT_DESCRIPTION is caught too */
	uint8_t fde[512];
	size_t n = tb_format_description(fde, false, true);
	fde[30] ^= 0x40;
	assert_int_equal(th_binlog_decode(c->dec, fde, n, 4, &ev), -TH_ECHECKSUM);
	tb_stream_free(c);
}

static void test_binlog__format_description_crc_ignores_in_use_flag(void **state)
{
	(void)state;
	struct th_binlog_decoder *dec;
	assert_int_equal(th_binlog_decoder_new(&dec, NULL), 0);
	uint8_t fde[512];
	size_t n = tb_format_description(fde, false, true);
	fde[17] |= TH_BINLOG_F_IN_USE; /* set after checksumming, as a server does */
	struct th_binlog_event ev;
	assert_int_equal(th_binlog_decode(dec, fde, n, 4, &ev), 0);
	assert_json_has(&ev, "\"in_use\":true");
	th_binlog_decoder_free(dec);
}

static void test_binlog__rejects_truncated_and_inconsistent_sizes(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	build_xid(c, 8);
	struct th_binlog_event ev;
	assert_int_equal(th_binlog_decode(c->dec, c->ev, c->n - 1, 9, &ev), -TH_ETRUNCATED);
	assert_int_equal(th_binlog_decode(c->dec, c->ev, 10, 9, &ev), -TH_ETRUNCATED);
	c->ev[c->n] = 0;
	assert_int_equal(th_binlog_decode(c->dec, c->ev, c->n + 1, 9, &ev), -TH_EBINLOG);
	/* XID body one byte short of its 8 bytes (CRC made to match) */
	build_xid(c, 7);
	assert_int_equal(th_binlog_decode(c->dec, c->ev, c->n, 9, &ev), -TH_EBINLOG);
	assert_non_null(strstr(th_binlog_decoder_error(c->dec), "XID"));
	tb_stream_free(c);
}

static void test_binlog__fake_rotate_before_format_description(void **state)
{
	(void)state;
	struct th_binlog_decoder_opts o = { .size = sizeof o, .initial_checksum = TH_BINLOG_CHECKSUM_CRC32 };
	struct th_binlog_decoder *dec;
	assert_int_equal(th_binlog_decoder_new(&dec, &o), 0);
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 4, 8);
	tb_str(&b, "binlog.000042");
	uint8_t buf[256];
	size_t n = tb_event(buf, TH_BINLOG_ROTATE, TH_BINLOG_F_ARTIFICIAL, 0, &b, true);
	memset(buf, 0, 4); /* timestamp 0 */
	uint32_t c = (uint32_t)crc32(0, buf, (uInt)(n - 4));
	for (int i = 0; i < 4; i++) buf[n - 4 + i] = (uint8_t)(c >> (8 * i));
	struct th_binlog_event ev;
	assert_int_equal(th_binlog_decode(dec, buf, n, 0, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_ROTATE);
	assert_true(ev.u.rotate.fake);
	assert_int_equal(ev.u.rotate.position, 4);
	assert_int_equal(ev.u.rotate.name_len, 13);
	assert_memory_equal(ev.u.rotate.name, "binlog.000042", 13);
	/* before the format event, other events are refused, not guessed at */
	struct tb_bytes x = { .n = 0 };
	tb_le(&x, 1, 8);
	n = tb_event(buf, TH_BINLOG_XID, 0, 100, &x, true);
	assert_int_equal(th_binlog_decode(dec, buf, n, 0, &ev), -TH_EBINLOG);
	th_binlog_decoder_free(dec);
}

static void test_binlog__stop_and_heartbeats(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_STOP, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_STOP);
	tb_str(&b, "binlog.000007");
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_HEARTBEAT, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_HEARTBEAT);
	assert_int_equal(ev.u.heartbeat.version, 1);
	assert_int_equal(ev.u.heartbeat.log_name_len, 13);
	struct tb_bytes v2 = { .n = 0 };
	tb_packed(&v2, 1); tb_packed(&v2, 13); tb_str(&v2, "binlog.000007");
	tb_packed(&v2, 2); tb_packed(&v2, 4); tb_packed(&v2, 123456);
	tb_packed(&v2, 0);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_HEARTBEAT_V2, 0, &v2, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_HEARTBEAT);
	assert_int_equal(ev.u.heartbeat.version, 2);
	assert_int_equal(ev.u.heartbeat.log_pos, 123456);
	assert_memory_equal(ev.u.heartbeat.log_name, "binlog.000007", 13);
	tb_stream_free(c);
}

/* ---- QUERY ----------------------------------------------------------------- */

static void test_binlog__decodes_query_with_status_vars_and_db(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	tb_query(&b, "topo", "INSERT INTO t VALUES (1)", 9);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_QUERY, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_QUERY);
	assert_int_equal(ev.u.query.thread_id, 11);
	assert_int_equal(ev.u.query.status_vars_len, 9);
	assert_int_equal(ev.u.query.db_len, 4);
	assert_memory_equal(ev.u.query.db, "topo", 4);
	assert_int_equal(ev.u.query.query_len, 24);
	assert_json_has(&ev, "\"db\":\"topo\",\"query\":\"INSERT INTO t VALUES (1)\"");
	/* zero-length query, empty db */
	b.n = 0;
	tb_query(&b, "", "", 0);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_QUERY, 0, &b, &ev), 0);
	assert_int_equal(ev.u.query.query_len, 0);
	assert_int_equal(ev.u.query.db_len, 0);
	/* status vars longer than the event */
	b.n = 0;
	tb_query(&b, "db", "x", 0);
	b.b[11] = 200;
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_QUERY, 0, &b, &ev), -TH_EBINLOG);
	tb_stream_free(c);
}

/* MariaDB's compressed field: 0x80|lenlen, big-endian length, zlib. */
static void maria_compress(struct tb_bytes *b, const void *p, size_t n)
{
	uLongf cl = compressBound((uLong)n);
	uint8_t *tmp = malloc(cl);
	assert_non_null(tmp);
	assert_int_equal(compress(tmp, &cl, p, (uLong)n), Z_OK);
	if (n < 256) {
		tb_le(b, 0x81, 1);
		tb_le(b, n, 1);
	} else {
		tb_le(b, 0x82, 1);
		tb_le(b, n >> 8, 1);
		tb_le(b, n & 0xff, 1);
	}
	tb_put(b, tmp, cl);
	free(tmp);
}

static void test_binlog__mariadb_compressed_query(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(true, true, NULL);
	struct th_binlog_event ev;
	char q[600];
	memset(q, 'x', sizeof q);
	memcpy(q, "SELECT '", 8);
	q[sizeof q - 1] = '\'';
	struct tb_bytes b = { .n = 0 };
	tb_query(&b, "test", "", 0);
	maria_compress(&b, q, sizeof q);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_QUERY_COMPRESSED, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_QUERY);
	assert_true(ev.u.query.compressed);
	assert_int_equal(ev.u.query.query_len, sizeof q);
	assert_memory_equal(ev.u.query.query, q, sizeof q);
	/* a stated length that disagrees with the stream */
	struct tb_bytes bad = { .n = 0 };
	tb_query(&bad, "test", "", 0);
	size_t at = bad.n;
	maria_compress(&bad, q, sizeof q);
	bad.b[at + 2] ^= 1; /* length low byte */
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_QUERY_COMPRESSED, 0, &bad, &ev), -TH_EBINLOG);
	/* an unknown algorithm bit */
	bad.b[at + 2] ^= 1;
	bad.b[at] |= 0x10;
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_QUERY_COMPRESSED, 0, &bad, &ev), -TH_EBINLOG);
	tb_stream_free(c);
}

/* ---- GTIDs ----------------------------------------------------------------- */

static void test_binlog__decodes_mysql_gtid_with_commit_timestamps(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	tb_mysql_gtid(&b, tb_uuid1, 23, true);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_GTID, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_GTID);
	const struct th_ev_gtid *g = &ev.u.gtid;
	assert_int_equal(g->gno, 23);
	assert_int_equal(g->last_committed, 5);
	assert_int_equal(g->sequence_number, 6);
	assert_true(g->has_commit_ts);
	assert_int_equal(g->immediate_commit_us, 1700000000123456ull);
	assert_int_equal(g->original_commit_us, 1600000000654321ull);
	assert_int_equal(g->transaction_length, 1234);
	assert_int_equal(g->immediate_server_version, 80045);
	assert_int_equal(g->original_server_version, 80036);
	char s[64];
	th_binlog_gtid_format(g, s, sizeof s);
	assert_string_equal(s, "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
	assert_json_has(&ev, "\"gtid\":\"3e11fa47-71ca-11e1-9e33-c80aa9429562:23\"");

	/* one timestamp: original equals immediate */
	b.n = 0;
	tb_mysql_gtid(&b, tb_uuid1, 24, false);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_GTID, 0, &b, &ev), 0);
	assert_int_equal(ev.u.gtid.original_commit_us, ev.u.gtid.immediate_commit_us);
	/* anonymous */
	static const uint8_t zero[16];
	b.n = 0;
	tb_mysql_gtid(&b, zero, 0, false);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_ANONYMOUS_GTID, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_ANONYMOUS_GTID);
	/* a GTID with sequence number 0 is malformed */
	b.n = 0;
	tb_mysql_gtid(&b, tb_uuid1, 0, false);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_GTID, 0, &b, &ev), -TH_EBINLOG);
	/* the tagged GTIDs of 8.4 are refused clearly */
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_GTID_TAGGED, 0, &b, &ev), -TH_EUNSUPPORTED);
	tb_stream_free(c);
}

static void test_binlog__decodes_previous_gtids(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 1, 8);
	tb_put(&b, tb_uuid1, 16);
	tb_le(&b, 2, 8);
	tb_le(&b, 1, 8); tb_le(&b, 6, 8);   /* 1-5 */
	tb_le(&b, 7, 8); tb_le(&b, 8, 8);   /* 7 */
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_PREVIOUS_GTIDS, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_PREVIOUS_GTIDS);
	assert_int_equal(ev.u.prev_gtids.n_sids, 1);
	assert_json_has(&ev, "\"gtid_set\":\"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7\"");
	b.n -= 8; /* interval cut in half */
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_PREVIOUS_GTIDS, 0, &b, &ev), -TH_EBINLOG);
	tb_stream_free(c);
}

static void test_binlog__decodes_mariadb_gtid_list_checkpoint_annotate(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(true, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 42, 8);        /* seq */
	tb_le(&b, 3, 4);         /* domain */
	tb_le(&b, TH_MARIA_GTID_STANDALONE | TH_MARIA_GTID_COMMIT_ID, 1);
	tb_le(&b, 99, 8);        /* commit id */
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_GTID, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_GTID);
	assert_true(ev.u.gtid.mariadb);
	assert_int_equal(ev.u.gtid.commit_id, 99);
	char s[64];
	th_binlog_gtid_format(&ev.u.gtid, s, sizeof s);
	assert_string_equal(s, "3-7-42");
	/* without commit id: 6 bytes of padding */
	b.n = 0;
	tb_le(&b, 43, 8); tb_le(&b, 3, 4); tb_le(&b, 0, 1); tb_le(&b, 0, 6);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_GTID, 0, &b, &ev), 0);
	assert_int_equal(ev.u.gtid.seq_no, 43);
	/* XA id longer than 64 bytes: refused (cf. MDEV-39404) */
	b.n = 0;
	tb_le(&b, 44, 8); tb_le(&b, 0, 4); tb_le(&b, TH_MARIA_GTID_PREPARED_XA, 1);
	tb_le(&b, 1, 4); tb_le(&b, 170, 1); tb_le(&b, 187, 1);
	for (int i = 0; i < 357; i++) tb_le(&b, 0, 1);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_GTID, 0, &b, &ev), -TH_EBINLOG);

	b.n = 0;
	tb_le(&b, 2, 4);
	tb_le(&b, 0, 4); tb_le(&b, 1, 4); tb_le(&b, 10, 8);
	tb_le(&b, 1, 4); tb_le(&b, 2, 4); tb_le(&b, 20, 8);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_GTID_LIST, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_GTID_LIST);
	assert_int_equal(ev.u.gtid_list.count, 2);
	assert_json_has(&ev, "\"gtid_list\":[\"0-1-10\",\"1-2-20\"]");
	b.n -= 1;
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_GTID_LIST, 0, &b, &ev), -TH_EBINLOG);

	b.n = 0;
	tb_le(&b, 13, 4);
	tb_str(&b, "mysql-bin.001");
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_BINLOG_CHECKPOINT, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_BINLOG_CHECKPOINT);
	assert_int_equal(ev.u.text.len, 13);

	b.n = 0;
	tb_str(&b, "INSERT INTO t VALUES (1)");
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_ANNOTATE_ROWS, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_ANNOTATE_ROWS);
	assert_int_equal(ev.u.text.len, 24);
	tb_stream_free(c);
}

/* ---- TABLE_MAP and rows ------------------------------------------------------ */

/*
 * Table test.t: id INT UNSIGNED, name VARCHAR(64) utf8mb4, doc JSON, bin
 * VARBINARY(8), color ENUM('red','green'), tags SET('a','b','c').
 */
static void table_map_body(struct tb_bytes *b, uint64_t table_id, bool metadata)
{
	tb_le(b, table_id, 6);
	tb_le(b, 1, 2);
	tb_le(b, 4, 1); tb_str(b, "test"); tb_le(b, 0, 1);
	tb_le(b, 1, 1); tb_str(b, "t"); tb_le(b, 0, 1);
	tb_packed(b, 6);
	uint8_t types[6] = { TH_COL_LONG, TH_COL_VARCHAR, TH_COL_JSON, TH_COL_VARCHAR, TH_COL_STRING, TH_COL_STRING };
	tb_put(b, types, 6);
	tb_packed(b, 0 + 2 + 1 + 2 + 2 + 2);
	tb_le(b, 256, 2);                                /* VARCHAR(64) utf8mb4: 256 bytes */
	tb_le(b, 4, 1);                                  /* JSON: 4-byte length */
	tb_le(b, 8, 2);                                  /* VARBINARY(8) */
	tb_le(b, TH_COL_ENUM, 1); tb_le(b, 1, 1);        /* ENUM, 1 byte */
	tb_le(b, TH_COL_SET, 1); tb_le(b, 1, 1);         /* SET, 1 byte */
	tb_le(b, 0x3e, 1);                               /* nullable: all but id */
	if (!metadata)
		return;
	/* SIGNEDNESS: one numeric column, unsigned */
	tb_le(b, 1, 1); tb_packed(b, 1); tb_le(b, 0x80, 1);
	/* DEFAULT_CHARSET 255, character column #1 (bin) is binary */
	tb_le(b, 2, 1); tb_packed(b, 5); tb_packed(b, 255); tb_packed(b, 1); tb_packed(b, 63);
	/* COLUMN_NAME */
	struct tb_bytes n = { .n = 0 };
	const char *names[6] = { "id", "name", "doc", "bin", "color", "tags" };
	for (int i = 0; i < 6; i++) {
		tb_packed(&n, strlen(names[i]));
		tb_str(&n, names[i]);
	}
	tb_le(b, 4, 1); tb_packed(b, n.n); tb_put(b, n.b, n.n);
	/* SET_STR_VALUE, ENUM_STR_VALUE */
	tb_le(b, 5, 1); tb_packed(b, 7);
	tb_packed(b, 3); tb_packed(b, 1); tb_str(b, "a"); tb_packed(b, 1); tb_str(b, "b"); tb_packed(b, 1); tb_str(b, "c");
	tb_le(b, 6, 1); tb_packed(b, 11);
	tb_packed(b, 2); tb_packed(b, 3); tb_str(b, "red"); tb_packed(b, 5); tb_str(b, "green");
	/* ENUM_AND_SET_DEFAULT_CHARSET */
	tb_le(b, 10, 1); tb_packed(b, 1); tb_packed(b, 8);
	/* SIMPLE_PRIMARY_KEY (id), COLUMN_VISIBILITY, and an unknown field 99 */
	tb_le(b, 8, 1); tb_packed(b, 1); tb_packed(b, 0);
	tb_le(b, 12, 1); tb_packed(b, 1); tb_le(b, 0xfc, 1);
	tb_le(b, 99, 1); tb_packed(b, 2); tb_le(b, 0xabcd, 2);
}

/* A TABLE_MAP of table t, decoded; it must be accepted. */
static void map_table(struct tb_stream *c, uint64_t table_id, bool metadata)
{
	struct tb_bytes b = { .n = 0 };
	struct th_binlog_event ev;
	table_map_body(&b, table_id, metadata);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_TABLE_MAP, 0, &b, &ev), 0);
}

static void test_binlog__table_map_with_optional_metadata(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	table_map_body(&b, 77, true);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_TABLE_MAP, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_TABLE_MAP);
	const struct th_table_map *tm = ev.u.table_map.tm;
	assert_ptr_equal(tm, th_binlog_decoder_table(c->dec, 77));
	assert_string_equal(tm->schema, "test");
	assert_string_equal(tm->table, "t");
	assert_int_equal(tm->ncols, 6);
	assert_true(tm->has_names);
	assert_true(tm->cols[0].is_unsigned);
	assert_false(tm->cols[0].nullable);
	assert_true(tm->cols[1].nullable);
	assert_int_equal(tm->cols[1].meta, 256);
	assert_int_equal(tm->cols[1].charset, 255);
	assert_false(tm->cols[1].binary);
	assert_true(tm->cols[3].binary);
	assert_int_equal(tm->cols[4].meta, TH_COL_ENUM << 8 | 1);
	assert_int_equal(tm->cols[4].nstrs, 2);
	assert_memory_equal(tm->cols[4].strs[1], "green", 5);
	assert_int_equal(tm->cols[4].charset, 8);
	assert_int_equal(tm->cols[5].nstrs, 3);
	assert_memory_equal(tm->cols[5].strs[2], "c", 1);
	assert_int_equal(tm->cols[2].name_len, 3);
	assert_memory_equal(tm->cols[2].name, "doc", 3);
	/* the same map again is not parsed again: the same entry comes back */
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_TABLE_MAP, 0, &b, &ev), 0);
	assert_ptr_equal(ev.u.table_map.tm, tm);
	tb_stream_free(c);
}

static void test_binlog__table_map_without_metadata_and_malformed(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	table_map_body(&b, 78, false);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_TABLE_MAP, 0, &b, &ev), 0);
	assert_false(ev.u.table_map.tm->has_names);
	assert_null(ev.u.table_map.tm->cols[0].name);
	/* names for 5 of 6 columns */
	struct tb_bytes bad = b;
	tb_le(&bad, 4, 1); tb_packed(&bad, 5);
	for (int i = 0; i < 5; i++) { tb_packed(&bad, 0); }
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_TABLE_MAP, 0, &bad, &ev), -TH_EBINLOG);
	assert_non_null(strstr(th_binlog_decoder_error(c->dec), "COLUMN_NAME"));
	/* and the failed map is forgotten, not half-used */
	assert_null(th_binlog_decoder_table(c->dec, 78));
	/* metadata length that disagrees with the column types */
	bad = b;
	bad.b[6 + 2 + 6 + 3 + 1 + 6] = 8;
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_TABLE_MAP, 0, &bad, &ev), -TH_EBINLOG);
	/* a table name without its NUL */
	bad = b;
	bad.b[8 + 1 + 4] = 'x';
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_TABLE_MAP, 0, &bad, &ev), -TH_EBINLOG);
	tb_stream_free(c);
}

/* One row image of table t: present bitmap all six columns. */
static void row_image(struct tb_bytes *b, uint32_t id, const char *name, bool with_json)
{
	tb_le(b, with_json ? 0x08 : 0x0c, 1); /* null bits: bin always null; doc null unless with_json */
	tb_le(b, id, 4);
	tb_le(b, strlen(name), 2);            /* VARCHAR(256 bytes): 2-byte length */
	tb_str(b, name);
	if (with_json) {
		tb_le(b, 2, 4);
		tb_le(b, 0x04, 1); tb_le(b, 0x01, 1); /* JSON literal true */
	}
	tb_le(b, 2, 1);                        /* color = green */
	tb_le(b, 5, 1);                        /* tags = a,c */
}

static void test_binlog__write_update_delete_rows_v2_through_row_decoder(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	map_table(c, 77, true);
	struct tb_bytes b = { .n = 0 };
	tb_rows_header(&b, 77, 6, true, false);
	row_image(&b, 1, "a/b", true);
	row_image(&b, 2, "c", false);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_WRITE_ROWS, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_WRITE_ROWS);
	assert_int_equal(ev.u.rows.version, 2);
	struct th_value after[6], before[6];
	struct th_binlog_row_iter it;
	th_binlog_rows_begin(&it, &ev);
	assert_int_equal(th_binlog_rows_next(&it, NULL, after), 1);
	assert_int_equal(after[0].kind, TH_VAL_UINT);
	assert_int_equal(after[0].u, 1);
	assert_int_equal(after[1].len, 3);
	assert_int_equal(after[3].kind, TH_VAL_NULL);
	assert_int_equal(th_binlog_rows_next(&it, NULL, after), 1);
	assert_int_equal(after[2].kind, TH_VAL_NULL);
	assert_int_equal(th_binlog_rows_next(&it, NULL, after), 0);
	assert_json_has(&ev, "\"db\":\"test\",\"table\":\"t\"");
	assert_json_has(&ev, "{\"after\":{\"id\":1,\"name\":\"a/b\",\"doc\":true,\"bin\":null,"
				   "\"color\":\"green\",\"tags\":\"a,c\"}}");

	/* UPDATE v2: different before and after bitmaps (minimal-style after image) */
	b.n = 0;
	tb_le(&b, 77, 6); tb_le(&b, 1, 2); tb_le(&b, 2, 2);
	tb_packed(&b, 6);
	tb_le(&b, 0x01, 1); /* before: id only */
	tb_le(&b, 0x02, 1); /* after: name only */
	tb_le(&b, 0, 1); tb_le(&b, 5, 4);                        /* before: id=5 */
	tb_le(&b, 0, 1); tb_le(&b, 2, 2); tb_str(&b, "zz");       /* after: name='zz' */
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_UPDATE_ROWS, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_UPDATE_ROWS);
	assert_non_null(ev.u.rows.present_after);
	th_binlog_rows_begin(&it, &ev);
	assert_int_equal(th_binlog_rows_next(&it, before, after), 1);
	assert_int_equal(before[0].u, 5);
	assert_int_equal(before[1].kind, TH_VAL_ABSENT);
	assert_int_equal(after[0].kind, TH_VAL_ABSENT);
	assert_memory_equal(after[1].bytes, "zz", 2);
	assert_json_has(&ev, "\"rows\":[{\"before\":{\"id\":5},\"after\":{\"name\":\"zz\"}}]");

	/* DELETE v2 with extra row info (partition id) */
	b.n = 0;
	tb_le(&b, 77, 6); tb_le(&b, 1, 2); tb_le(&b, 5, 2);
	tb_le(&b, 1, 1); tb_le(&b, 3, 2);  /* RW_V_TAG_PARTITION_INFO, partition 3 */
	tb_packed(&b, 6); tb_le(&b, 0x3f, 1);
	row_image(&b, 9, "gone", false);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_DELETE_ROWS, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_DELETE_ROWS);
	assert_int_equal(ev.u.rows.extra_len, 3);
	assert_json_has(&ev, "{\"before\":{\"id\":9,\"name\":\"gone\"");

	/* rows for a table never mapped: an error, not a guess */
	b.n = 0;
	tb_rows_header(&b, 555, 6, true, false);
	row_image(&b, 1, "x", false);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_WRITE_ROWS, 0, &b, &ev), -TH_EBINLOG);
	assert_non_null(strstr(th_binlog_decoder_error(c->dec), "no TABLE_MAP"));
	/* a column count that disagrees with the map */
	b.n = 0;
	tb_le(&b, 77, 6); tb_le(&b, 1, 2); tb_le(&b, 2, 2); tb_packed(&b, 5); tb_le(&b, 0x1f, 1);
	tb_le(&b, 0, 1);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_WRITE_ROWS, 0, &b, &ev), -TH_EBINLOG);
	/* a row image cut short: the iterator reports it */
	b.n = 0;
	tb_rows_header(&b, 77, 6, true, false);
	row_image(&b, 1, "abc", false);
	b.n -= 3;
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_WRITE_ROWS, 0, &b, &ev), 0);
	th_binlog_rows_begin(&it, &ev);
	assert_int_equal(th_binlog_rows_next(&it, NULL, after), -TH_EBINLOG);
	tb_stream_free(c);
}

static void test_binlog__mariadb_rows_v1_and_compressed_v1_v2(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(true, true, NULL);
	struct th_binlog_event ev;
	map_table(c, 12, false);
	struct tb_bytes img = { .n = 0 };
	for (int i = 0; i < 40; i++)
		row_image(&img, (uint32_t)i, "some repeated text", false);

	struct tb_bytes b = { .n = 0 };
	tb_rows_header(&b, 12, 6, false, false);
	tb_put(&b, img.b, img.n);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_WRITE_ROWS_V1, 0, &b, &ev), 0);
	assert_int_equal(ev.u.rows.version, 1);
	char *plain = event_json(&ev);
	assert_non_null(strstr(plain, "\"@1\":39"));

	for (int v = 1; v <= 2; v++) {
		b.n = 0;
		tb_rows_header(&b, 12, 6, v == 2, false);
		maria_compress(&b, img.b, img.n);
		uint8_t type = v == 1 ? TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED_V1 : TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED;
		assert_int_equal(tb_stream_decode(c, type, 0, &b, &ev), 0);
		assert_int_equal(ev.kind, TH_EVK_WRITE_ROWS);
		assert_true(ev.u.rows.compressed);
		assert_int_equal(ev.u.rows.rows_len, img.n);
		char *js = event_json(&ev);
		/* same rows as the plain event */
		assert_string_equal(strstr(js, "\"rows\""), strstr(plain, "\"rows\""));
		free(js);
	}
	/* compressed UPDATE v1: before and after both inside the zlib stream */
	struct tb_bytes two = { .n = 0 };
	row_image(&two, 1, "old", false);
	row_image(&two, 1, "new", false);
	b.n = 0;
	tb_rows_header(&b, 12, 6, false, true);
	maria_compress(&b, two.b, two.n);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED_V1, 0, &b, &ev), 0);
	assert_json_has(&ev, "\"before\":{\"@1\":1,\"@2\":\"old\"");
	assert_json_has(&ev, "\"after\":{\"@1\":1,\"@2\":\"new\"");
	/* corrupt zlib data */
	b.n = 0;
	tb_rows_header(&b, 12, 6, false, false);
	maria_compress(&b, img.b, img.n);
	b.b[b.n - 6] ^= 0xff;
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED_V1, 0, &b, &ev), -TH_EBINLOG);
	free(plain);
	tb_stream_free(c);
}

static void test_binlog__partial_update_rows_marks_json_diff(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	map_table(c, 77, true);
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 77, 6); tb_le(&b, 1, 2); tb_le(&b, 2, 2);
	tb_packed(&b, 6);
	tb_le(&b, 0x05, 1);  /* before: id, doc */
	tb_le(&b, 0x05, 1);  /* after: id, doc */
	tb_le(&b, 0, 1); tb_le(&b, 1, 4); tb_le(&b, 2, 4); tb_le(&b, 0x04, 1); tb_le(&b, 0x02, 1); /* doc false */
	tb_packed(&b, 1);    /* value_options: PARTIAL_JSON_UPDATES */
	tb_le(&b, 0x01, 1);  /* the one JSON column is partial */
	tb_le(&b, 0, 1); tb_le(&b, 1, 4);
	uint8_t diff[] = { 0x00, 0x03, '$', '.', 'a', 0x02, 0x04, 0x01 }; /* REPLACE $.a true */
	tb_le(&b, sizeof diff, 4); tb_put(&b, diff, sizeof diff);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_PARTIAL_UPDATE_ROWS, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_PARTIAL_UPDATE_ROWS);
	struct th_value before[6], after[6];
	struct th_binlog_row_iter it;
	th_binlog_rows_begin(&it, &ev);
	assert_int_equal(th_binlog_rows_next(&it, before, after), 1);
	assert_true(th_binlog_row_is_partial_json(&it, 2));
	assert_false(th_binlog_row_is_partial_json(&it, 0));
	assert_int_equal(after[2].len, sizeof diff);
	assert_int_equal(th_binlog_rows_next(&it, before, after), 0);
	assert_json_has(&ev, "\"before\":{\"id\":1,\"doc\":false}");
	assert_json_has(&ev, "\"after\":{\"id\":1,\"doc\":{\"partial_json_diff_base64\":");
	tb_stream_free(c);
}

/* ---- TRANSACTION_PAYLOAD --------------------------------------------------- */

static void test_binlog__transaction_payload_events_are_iterable(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	/* inside: QUERY BEGIN, TABLE_MAP, WRITE_ROWS, XID, no checksums */
	struct tb_bytes inner = { .n = 0 }, b = { .n = 0 };
	uint8_t tmp[4096];
	tb_query(&b, "test", "BEGIN", 0);
	tb_append_event(&inner, TH_BINLOG_QUERY, &b);
	b.n = 0;
	table_map_body(&b, 5, true);
	tb_append_event(&inner, TH_BINLOG_TABLE_MAP, &b);
	b.n = 0;
	tb_rows_header(&b, 5, 6, true, false);
	row_image(&b, 7, "in payload", false);
	tb_append_event(&inner, TH_BINLOG_WRITE_ROWS, &b);
	b.n = 0;
	tb_le(&b, 77, 8);
	tb_append_event(&inner, TH_BINLOG_XID, &b);

	for (int z = 0; z < 2; z++) {
		size_t n = tb_transaction_payload(tmp, &inner, 9999, z == 0, true);
		assert_int_equal(th_binlog_decode(c->dec, tmp, n, 1000, &ev), 0);
		assert_int_equal(ev.kind, TH_EVK_TRANSACTION_PAYLOAD);
		assert_int_equal(ev.u.payload.uncompressed_size, inner.n);
		enum th_binlog_kind want[] = { TH_EVK_QUERY, TH_EVK_TABLE_MAP, TH_EVK_WRITE_ROWS, TH_EVK_XID };
		for (int i = 0; i < 4; i++) {
			assert_int_equal(th_binlog_payload_next(c->dec, &ev), 1);
			assert_int_equal(ev.kind, want[i]);
			assert_true(ev.in_payload);
			assert_int_equal(ev.pos, 1000);
			if (ev.kind == TH_EVK_WRITE_ROWS) {
				assert_json_has(&ev, "\"in_payload\":true");
				assert_json_has(&ev, "\"name\":\"in payload\"");
			}
		}
		assert_int_equal(th_binlog_payload_next(c->dec, &ev), 0);
	}
	/* a payload whose inner event overruns it */
	struct tb_bytes cut = inner;
	cut.n -= 3;
	size_t n = tb_transaction_payload(tmp, &cut, 9999, true, true);
	assert_int_equal(th_binlog_decode(c->dec, tmp, n, 2000, &ev), 0);
	int rc;
	while ((rc = th_binlog_payload_next(c->dec, &ev)) == 1)
		;
	assert_int_equal(rc, -TH_EBINLOG);
	assert_non_null(strstr(th_binlog_decoder_error(c->dec), "inside TRANSACTION_PAYLOAD"));
	/* corrupt zstd data (no checksum here, so the zstd decoder sees it) */
	struct tb_stream *c2 = tb_stream_new(false, false, NULL);
	n = tb_transaction_payload(tmp, &inner, 9999, true, false);
	tmp[n - 3] ^= 0x55;
	assert_int_equal(th_binlog_decode(c2->dec, tmp, n, 3000, &ev), -TH_EBINLOG);
	tb_stream_free(c2);
	tb_stream_free(c);
}

/* ---- recognised and skipped, unknown ---------------------------------------- */

static void test_binlog__skips_known_control_events(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 2, 1); tb_le(&b, 1000, 8);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_INTVAR, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_INTVAR);
	assert_int_equal(ev.u.intvar.value, 1000);
	b.n = 0;
	tb_le(&b, 1, 8); tb_le(&b, 2, 8);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_RAND, 0, &b, &ev), 0);
	assert_int_equal(ev.u.rand.seed2, 2);
	b.n = 0;
	tb_le(&b, 1, 4); tb_str(&b, "x"); tb_le(&b, 1, 1);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_USER_VAR, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_USER_VAR);
	assert_true(ev.skipped);
	b.n = 0;
	tb_le(&b, 1, 2); tb_le(&b, 4, 1); tb_str(&b, "lost");
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_INCIDENT, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_INCIDENT);
	assert_int_equal(ev.u.text.incident, 1);
	b.n = 0;
	tb_le(&b, 3, 1); tb_str(&b, "abc");
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_ROWS_QUERY, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_ROWS_QUERY);
	assert_int_equal(ev.u.text.len, 3);
	b.n = 0;
	tb_le(&b, 0, 1); tb_le(&b, 1, 4); tb_le(&b, 2, 4); tb_le(&b, 1, 4); tb_str(&b, "gtb");
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_XA_PREPARE, 0, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_XA_PREPARE);
	assert_int_equal(ev.u.xa_prepare.xid.gtrid_len, 2);
	b.n = 0;
	for (int i = 0; i < 60; i++) tb_le(&b, 0, 1);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_VIEW_CHANGE, 0, &b, &ev), 0);
	assert_true(ev.skipped);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_IGNORABLE, TH_BINLOG_F_IGNORABLE, &b, &ev), 0);
	assert_true(ev.skipped);
	tb_stream_free(c);
}

static void test_binlog__unknown_event_skipped_only_when_ignorable(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(false, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	tb_str(&b, "future");
	assert_int_equal(tb_stream_decode(c, 77, TH_BINLOG_F_IGNORABLE, &b, &ev), 0);
	assert_int_equal(ev.kind, TH_EVK_UNKNOWN);
	assert_true(ev.skipped);
	assert_int_equal(tb_stream_decode(c, 77, 0, &b, &ev), -TH_EUNSUPPORTED);
	assert_non_null(strstr(th_binlog_decoder_error(c->dec), "unknown event type 77"));
	/* also beyond the format event's post-header table */
	assert_int_equal(tb_stream_decode(c, 200, 0, &b, &ev), -TH_EUNSUPPORTED);
	tb_stream_free(c);
}

static void test_binlog__start_encryption_is_unsupported(void **state)
{
	(void)state;
	struct tb_stream *c = tb_stream_new(true, true, NULL);
	struct th_binlog_event ev;
	struct tb_bytes b = { .n = 0 };
	tb_le(&b, 1, 1); tb_le(&b, 1, 4);
	for (int i = 0; i < 12; i++) tb_le(&b, 0, 1);
	assert_int_equal(tb_stream_decode(c, TH_BINLOG_MARIA_START_ENCRYPTION, 0, &b, &ev), -TH_EUNSUPPORTED);
	assert_non_null(strstr(th_binlog_decoder_error(c->dec), "encrypted"));
	tb_stream_free(c);
}

/* ---- real files --------------------------------------------------------------- */

#define STD_DATA "/usr/share/mysql/mysql-test/std_data"

struct stats {
	unsigned events, rows_events, rows, in_payload, payload_rows, skipped, gtids, queries;
	unsigned kinds[TH_EVK__COUNT];
	int rc;
	char err[600];
};

/* Read a whole file through th_binlog_file, rendering every event as JSON. */
static int decode_path(const char *path, struct stats *st, bool follow)
{
	memset(st, 0, sizeof *st);
	struct th_binlog_file_opts o = { .size = sizeof o, .follow_rotate = follow };
	o.decoder.size = sizeof o.decoder;
	struct th_binlog_file *f;
	int rc = th_binlog_file_open(&f, path, &o);
	if (rc)
		return st->rc = rc;
	struct th_binlog_event ev;
	struct th_buf js = TH_BUF_INIT;
	while ((rc = th_binlog_file_next(f, &ev)) == 1) {
		st->events++;
		st->kinds[ev.kind]++;
		st->skipped += ev.skipped;
		st->in_payload += ev.in_payload;
		st->gtids += ev.kind == TH_EVK_GTID;
		st->queries += ev.kind == TH_EVK_QUERY;
		th_buf_reset(&js);
		int jr = th_binlog_event_to_json(&ev, &js);
		if (jr) {
			snprintf(st->err, sizeof st->err, "%s at %llu: rows: %s", path,
				 (unsigned long long)ev.pos, th_strerror(jr));
			rc = jr;
			break;
		}
		if (ev.kind >= TH_EVK_WRITE_ROWS && ev.kind <= TH_EVK_PARTIAL_UPDATE_ROWS) {
			st->rows_events++;
			st->payload_rows += ev.in_payload;
		}
	}
	if (rc < 0 && !st->err[0])
		snprintf(st->err, sizeof st->err, "%s", th_binlog_file_error(f));
	th_buf_free(&js);
	th_binlog_file_close(f);
	return st->rc = rc;
}

static bool exists(const char *p)
{
	return access(p, R_OK) == 0;
}

/* A fixture of the repository (tests/fixtures/binlog) into path: it is part
 * of the tree, so its absence is a failure, not a skip. */
static void fixture(const char *name, char *path, size_t len)
{
	if (th_test_fixture(name, path, len) != 0)
		fail_msg("fixture %s not found: run the tests from the repository root (or set TH_FIXTURES)", path);
}

static void test_binlog__fixture_files_decode_completely(void **state)
{
	(void)state;
	static const struct { const char *name; unsigned min_rows_events, min_payload_rows, min_gtids; } files[] = {
		{ "mysql-8.0.45-gtid.000001", 5, 0, 4 },
		{ "mysql-8.0.45-gtid.000002", 2, 0, 2 },
		{ "mysql-8.0.45-position.000001", 5, 0, 0 },
		{ "mysql-8.0.45-position.000002", 2, 0, 0 },
		{ "mysql-8.0.28-transaction-payload.bin", 1, 1, 0 },
		{ "mysql-8.0.31-gtid-payload.000057", 2, 2, 3 },
		{ "mysql-5.7.21-crc32.bin", 10, 0, 0 },
		{ "mysql-5.7.20-nochecksum.bin", 10, 0, 0 },
	};
	char path[1024];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		fixture(files[i].name, path, sizeof path);
		struct stats st;
		int rc = decode_path(path, &st, false);
		if (rc != 0)
			fail_msg("%s: %s (%s)", files[i].name, st.err, th_errname(rc));
		assert_true(st.kinds[TH_EVK_FORMAT_DESCRIPTION] == 1);
		if (st.rows_events < files[i].min_rows_events || st.payload_rows < files[i].min_payload_rows ||
		    st.gtids < files[i].min_gtids)
			fail_msg("%s: %u row events (%u in payloads), %u gtids", files[i].name, st.rows_events,
				 st.payload_rows, st.gtids);
	}
}

static void test_binlog__mariadb_test_data_decode_or_fail_cleanly(void **state)
{
	(void)state;
	/* rc 0: decodes to the end; else the clean error it must give. */
	static const struct { const char *name; int rc; unsigned min_events; } files[] = {
		{ "binlog-header.binlog", 0, 1 },
		{ "binlog_savepoint.000001", 0, 10 },
		{ "binlog_transaction.000001", 0, 15 },
		{ "bug33029-slave-relay-bin.000001", 0, 40 },
		{ "bug40482-bin.000001", 0, 3 },           /* INCIDENT with an unknown number */
		{ "bug47142_master-bin.000001", 0, 6 },    /* binlog v3 (MySQL 4.1) */
		{ "master-bin.000001", 0, 2 },             /* binlog v2 header (MySQL 4.0.0) */
		{ "trunc_binlog.000001", 0, 3 },           /* an unfinished transaction, whole events */
		{ "mariadb-5.5-binlog.000001", 0, 10 },
		{ "mdev-4645-binlog_checksum.binlog", 0, 4 },       /* 23-byte common headers */
		{ "mdev-4645-binlog_group_id.binlog", 0, 4 },
		{ "mdev-4645-binlog_group_id_checksum.binlog", 0, 4 },
		{ "mdev-4645-binlog_none.binlog", 0, 4 },
		{ "mdev29078-mysql-bin.000001", 0, 10 },
		{ "mdev6020-mysql-bin.000001", 0, 7000 },
		{ "mdev35643_mysql_80_binlog.000001", 0, 200 },    /* MySQL 8.0, payloads inside */
		{ "bug11747416_32228_binlog.000001", -TH_ETRUNCATED, 4 },
		{ "corrupt-relay-bin.000624", -TH_EBINLOG, 800 },
		{ "mdev-39404-binlog.000001", -TH_ECHECKSUM, 1 },  /* oversized XA id, checksum zeroed */
		{ "binlog_before_20574.bin", -TH_EUNSUPPORTED, 1 }, /* encrypted */
	};
	char path[1024];
	unsigned found = 0;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, STD_DATA "/%s", files[i].name);
		if (!exists(path)) {
			print_message("  absent: %s\n", path);
			continue;
		}
		found++;
		struct stats st;
		int rc = decode_path(path, &st, false);
		if (rc != files[i].rc)
			fail_msg("%s: got %s, want %s: %s", files[i].name, th_errname(rc), th_errname(files[i].rc),
				 st.err);
		if (rc)
			assert_non_null(strstr(st.err, files[i].name)); /* the message names the file */
		if (st.events < files[i].min_events)
			fail_msg("%s: only %u events", files[i].name, st.events);
		if (!strcmp(files[i].name, "mdev35643_mysql_80_binlog.000001") &&
		    (st.in_payload == 0 || st.payload_rows == 0))
			fail_msg("%s: no row events found inside its payloads", files[i].name);
	}
	if (!found)
		skip();
}

static int copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	if (!a || !b) {
		if (a) fclose(a);
		if (b) fclose(b);
		return -1;
	}
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, a)) > 0)
		fwrite(buf, 1, n, b);
	fclose(a);
	return fclose(b);
}

static void test_binlog__file_follows_rotate_to_next_file(void **state)
{
	(void)state;
	char a[1024], b[1024], dir[] = "/tmp/th_binlog_XXXXXX", pa[1100], pb[1100];
	fixture("mysql-8.0.45-gtid.000001", a, sizeof a);
	fixture("mysql-8.0.45-gtid.000002", b, sizeof b);
	assert_non_null(mkdtemp(dir));
	/* the first file's ROTATE names binlog.000002 */
	snprintf(pa, sizeof pa, "%s/binlog.000001", dir);
	snprintf(pb, sizeof pb, "%s/binlog.000002", dir);
	assert_int_equal(copy_file(a, pa), 0);
	struct stats one, both;
	assert_int_equal(decode_path(pa, &one, true), 0); /* next file absent: a clean end */
	assert_int_equal(copy_file(b, pb), 0);
	assert_int_equal(decode_path(pa, &both, true), 0);
	assert_int_equal(both.kinds[TH_EVK_FORMAT_DESCRIPTION], 2);
	assert_int_equal(both.kinds[TH_EVK_STOP], 1);
	assert_true(both.events > one.events);
	assert_int_equal(decode_path(pa, &one, false), 0);
	assert_int_equal(one.kinds[TH_EVK_FORMAT_DESCRIPTION], 1);
	unlink(pa);
	unlink(pb);
	rmdir(dir);
}

static void test_binlog__file_rejects_non_binlog(void **state)
{
	(void)state;
	char p[] = "/tmp/th_binlog_bad_XXXXXX";
	int fd = mkstemp(p);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello world", 11), 11);
	close(fd);
	struct th_binlog_file *f;
	assert_int_equal(th_binlog_file_open(&f, p, NULL), -TH_EBINLOG);
	assert_int_equal(th_binlog_file_open(&f, "/nonexistent/x", NULL), -ENOENT);
	/* magic, then half a header */
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "\xfe\x62\x69\x6e\x01\x02\x03", 7), 7);
	close(fd);
	assert_int_equal(th_binlog_file_open(&f, p, NULL), 0);
	struct th_binlog_event ev;
	assert_int_equal(th_binlog_file_next(f, &ev), -TH_ETRUNCATED);
	assert_non_null(strstr(th_binlog_file_error(f), p));
	assert_int_equal(th_binlog_file_next(f, &ev), -TH_ETRUNCATED); /* sticky */
	th_binlog_file_close(f);
	unlink(p);
}

/* ---- cross-check with mariadb-binlog -------------------------------------------- */

struct ref_event {
	uint64_t pos;
	char what[48];       /* our kind name, from its text */
	char gtid[48];
};

/* Map a mariadb-binlog event line ("#... end_log_pos N <CRC32 x> \tText...") to our kind. */
static const char *ref_kind(const char *t)
{
	static const struct { const char *prefix, *kind; } map[] = {
		{ "Start: binlog v 4", "format_description" }, { "Start:", "start_v3" },
		{ "Query", "query" }, { "Xid", "xid" }, { "Table_map", "table_map" },
		{ "Write_rows", "write_rows" }, { "Update_rows", "update_rows" },
		{ "Delete_rows", "delete_rows" }, { "Rotate", "rotate" }, { "Stop", "stop" },
		{ "Gtid list", "gtid_list" }, { "GTID", "gtid" }, { "Binlog checkpoint", "binlog_checkpoint" },
		{ "Annotate_rows", "annotate_rows" }, { "Intvar", "intvar" }, { "RAND", "rand" },
		{ "User_var", "user_var" }, { "Incident", "incident" }, { "Begin_load_query", "load" },
		{ "Execute_load_query", "load" }, { "Ignorable", NULL },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (!strncmp(t, map[i].prefix, strlen(map[i].prefix)))
			return map[i].kind ? map[i].kind : "";
	return "?";
}

static size_t reference_events(const char *path, struct ref_event *out, size_t max)
{
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "mariadb-binlog --verbose --base64-output=decode-rows '%s' 2>/dev/null", path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return 0;
	char line[8192];
	size_t n = 0;
	/* it prints "# at" for a run of row events first, then their header lines */
	uint64_t at[64];
	size_t nat = 0, next_at = 0;
	while (fgets(line, sizeof line, p)) {
		if (!strncmp(line, "# at ", 5)) {
			if (next_at == nat)
				nat = next_at = 0;
			if (nat < 64)
				at[nat++] = strtoull(line + 5, NULL, 10);
			continue;
		}
		if (next_at < nat && line[0] == '#' && line[1] >= '0' && line[1] <= '9' && strstr(line, "server id")) {
			char *tab = strchr(line, '\t');
			uint64_t pos = at[next_at++];
			if (!tab || n == max)
				continue;
			struct ref_event *r = &out[n++];
			memset(r, 0, sizeof *r);
			r->pos = pos;
			snprintf(r->what, sizeof r->what, "%s", ref_kind(tab + 1));
			if (!strncmp(tab + 1, "GTID ", 5))
				sscanf(tab + 6, "%47s", r->gtid);
		}
	}
	pclose(p);
	return n;
}

static void test_binlog__matches_mariadb_binlog_event_sequence(void **state)
{
	(void)state;
	if (system("command -v mariadb-binlog >/dev/null 2>&1") != 0)
		skip();
	static const char *files[] = {
		"mdev29078-mysql-bin.000001", "mdev6020-mysql-bin.000001", "mariadb-5.5-binlog.000001",
		"binlog-header.binlog", "binlog_savepoint.000001", "binlog_transaction.000001",
		"bug33029-slave-relay-bin.000001", "mdev-4645-binlog_checksum.binlog",
		"mdev-4645-binlog_group_id_checksum.binlog", "mdev-4645-binlog_none.binlog",
		"bug47142_master-bin.000001", "trunc_binlog.000001", "corrupt-relay-bin.000624",
	};
	size_t max = 20000;
	struct ref_event *ref = calloc(max, sizeof *ref);
	assert_non_null(ref);
	unsigned compared = 0, files_done = 0;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char path[1024];
		snprintf(path, sizeof path, STD_DATA "/%s", files[i]);
		if (!exists(path))
			continue;
		size_t nref = reference_events(path, ref, max);
		assert_true(nref > 0);
		struct th_binlog_file *f;
		assert_int_equal(th_binlog_file_open(&f, path, NULL), 0);
		struct th_binlog_event ev;
		size_t k = 0;
		int rc;
		while ((rc = th_binlog_file_next(f, &ev)) == 1) {
			if (ev.in_payload)
				continue;
			if (k >= nref)
				fail_msg("%s: we see an event at %llu that mariadb-binlog does not", files[i],
					 (unsigned long long)ev.pos);
			struct ref_event *r = &ref[k++];
			if (r->pos != ev.pos)
				fail_msg("%s: event %zu at %llu, mariadb-binlog says %llu", files[i], k,
					 (unsigned long long)ev.pos, (unsigned long long)r->pos);
			const char *mine = th_binlog_kind_name(ev.kind);
			if (r->what[0] && strcmp(r->what, "?") && strcmp(r->what, mine))
				fail_msg("%s at %llu: %s, mariadb-binlog says %s", files[i],
					 (unsigned long long)ev.pos, mine, r->what);
			if (ev.kind == TH_EVK_GTID) {
				char g[64];
				th_binlog_gtid_format(&ev.u.gtid, g, sizeof g);
				if (strcmp(g, r->gtid))
					fail_msg("%s at %llu: GTID %s, mariadb-binlog says %s", files[i],
						 (unsigned long long)ev.pos, g, r->gtid);
			}
			compared++;
		}
		/* both stop at the same place: the end, or the same bad event */
		if (k != nref)
			fail_msg("%s: we decoded %zu events (%s), mariadb-binlog %zu", files[i], k,
				 rc ? th_binlog_file_error(f) : "clean end", nref);
		th_binlog_file_close(f);
		files_done++;
	}
	free(ref);
	print_message("  compared %u events in %u files\n", compared, files_done);
	if (!files_done)
		skip();
}

/* The query texts: each of ours appears verbatim in mariadb-binlog's output. */
static void test_binlog__query_texts_match_mariadb_binlog(void **state)
{
	(void)state;
	const char *path = STD_DATA "/mdev29078-mysql-bin.000001";
	if (system("command -v mariadb-binlog >/dev/null 2>&1") != 0 || !exists(path))
		skip();
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "mariadb-binlog '%s' 2>/dev/null", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	struct th_buf all = TH_BUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, p)) > 0)
		th_buf_append(&all, buf, n);
	pclose(p);
	struct th_binlog_file *f;
	assert_int_equal(th_binlog_file_open(&f, path, NULL), 0);
	struct th_binlog_event ev;
	unsigned q = 0;
	while (th_binlog_file_next(f, &ev) == 1) {
		if (ev.kind != TH_EVK_QUERY)
			continue;
		char *s = strndup(ev.u.query.query, ev.u.query.query_len);
		if (!strstr(th_buf_cstr(&all), s))
			fail_msg("query at %llu not in mariadb-binlog's output: %s", (unsigned long long)ev.pos, s);
		free(s);
		q++;
	}
	assert_true(q > 3);
	th_binlog_file_close(f);
	th_buf_free(&all);
}

/* ---- mutations ------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Re-sign each whole event so that a mutation reaches the parsers behind the checksum. */
static void fix_crcs(uint8_t *p, size_t n)
{
	size_t pos = 4;
	while (pos + 23 <= n) {
		uint32_t size = (uint32_t)p[pos + 9] | (uint32_t)p[pos + 10] << 8 | (uint32_t)p[pos + 11] << 16 |
				(uint32_t)p[pos + 12] << 24;
		if (size < 23 || size > n - pos)
			break;
		p[pos + 17] &= (uint8_t)~TH_BINLOG_F_IN_USE;
		uint32_t c = (uint32_t)crc32(0, p + pos, size - 4);
		for (int i = 0; i < 4; i++)
			p[pos + size - 4 + i] = (uint8_t)(c >> (8 * i));
		pos += size;
	}
}

/* Decode a whole in-memory binlog as a consumer would: events, payloads, rows, JSON. */
static int decode_memory(struct th_binlog_decoder *dec, const uint8_t *p, size_t n, struct th_buf *js)
{
	th_binlog_decoder_reset(dec, "mutant");
	if (n < 4 || memcmp(p, TH_BINLOG_MAGIC, 4))
		return -TH_EBINLOG;
	size_t pos = 4;
	struct th_binlog_event ev;
	while (pos < n) {
		if (n - pos < 19)
			return -TH_ETRUNCATED;
		uint32_t size = (uint32_t)p[pos + 9] | (uint32_t)p[pos + 10] << 8 | (uint32_t)p[pos + 11] << 16 |
				(uint32_t)p[pos + 12] << 24;
		if (size > n - pos)
			return -TH_ETRUNCATED;
		int rc = th_binlog_decode(dec, p + pos, size, pos, &ev);
		if (rc)
			return rc;
		pos += size;
		do {
			th_buf_reset(js);
			rc = th_binlog_event_to_json(&ev, js);
			if (rc == -ENOMEM)
				return rc;
			if (ev.kind != TH_EVK_TRANSACTION_PAYLOAD && !ev.in_payload)
				break;
		} while ((rc = th_binlog_payload_next(dec, &ev)) == 1);
		if (rc < 0 && rc != -TH_EBINLOG && rc != -TH_EUNSUPPORTED && rc != -TH_ETOOBIG)
			return rc;
	}
	return 0;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc((size_t)sz + 1);
	if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*n = (size_t)sz;
	return p;
}

static bool clean_code(int rc)
{
	return rc == 0 || rc == -TH_EBINLOG || rc == -TH_ECHECKSUM || rc == -TH_EUNSUPPORTED ||
	       rc == -TH_ETRUNCATED || rc == -TH_ETOOBIG;
}

static void test_binlog__random_mutations_fail_cleanly(void **state)
{
	(void)state;
	char paths[8][1024];
	size_t np = 0;
	const char *fx[] = { "mysql-8.0.45-gtid.000001", "mysql-8.0.28-transaction-payload.bin",
			     "mysql-8.0.31-gtid-payload.000057", "mysql-8.0.45-position.000002" };
	for (size_t i = 0; i < 4; i++)
		fixture(fx[i], paths[np++], sizeof paths[0]);
	snprintf(paths[np++], sizeof paths[0], STD_DATA "/mdev29078-mysql-bin.000001");
	snprintf(paths[np++], sizeof paths[0], STD_DATA "/mariadb-5.5-binlog.000001");
	snprintf(paths[np++], sizeof paths[0], STD_DATA "/binlog_savepoint.000001");
	uint8_t *files[8];
	size_t sizes[8], nf = 0;
	for (size_t i = 0; i < np; i++) {
		files[nf] = slurp(paths[i], &sizes[nf]);
		if (files[nf])
			nf++;
		else
			print_message("  absent: %s\n", paths[i]);
	}
	if (!nf)
		skip();
	const char *env = getenv("TH_MUTATIONS");
	unsigned long total = env ? strtoul(env, NULL, 10) : 100000;
	struct th_binlog_decoder_opts o = { .size = sizeof o, .max_inflated = 1 << 20 };
	struct th_binlog_decoder *dec;
	assert_int_equal(th_binlog_decoder_new(&dec, &o), 0);
	struct th_buf js = TH_BUF_INIT;
	uint8_t *buf = malloc(1 << 17);
	assert_non_null(buf);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	unsigned long outcomes[6] = { 0 };
	for (unsigned long m = 0; m < total; m++) {
		size_t fi = rng_next(&seed) % nf, n = sizes[fi];
		memcpy(buf, files[fi], n);
		unsigned kind = (unsigned)(rng_next(&seed) % 5), count = 1 + (unsigned)(rng_next(&seed) % 4);
		for (unsigned k = 0; k < count; k++) {
			size_t at = 4 + rng_next(&seed) % (n - 4);
			switch (kind) {
			case 0: /* bit flips */
				buf[at] ^= (uint8_t)(1u << (rng_next(&seed) % 8));
				break;
			case 1: /* truncation */
				n = at;
				break;
			case 2: /* byte insertion */
				if (n + 1 < (1 << 17)) {
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = (uint8_t)rng_next(&seed);
					n++;
				}
				break;
			case 3: { /* a length-like field set to something interesting */
				static const uint32_t vals[] = { 0, 1, 0xff, 0xfb, 0xfc, 0xfe, 0xffff, 0xffffffff, 19, 23 };
				buf[at] = (uint8_t)vals[rng_next(&seed) % 10];
				break;
			}
			default: /* random byte */
				buf[at] = (uint8_t)rng_next(&seed);
				break;
			}
			if (n <= 4)
				break;
		}
		if (rng_next(&seed) % 2)
			fix_crcs(buf, n);
		int rc = decode_memory(dec, buf, n, &js);
		if (!clean_code(rc))
			fail_msg("mutation %lu of %s: %s", m, paths[fi], th_errname(rc));
		outcomes[rc == 0 ? 0 : rc == -TH_EBINLOG ? 1 : rc == -TH_ECHECKSUM ? 2 : rc == -TH_ETRUNCATED ? 3 : 4]++;
	}
	print_message("  %lu mutations: %lu decoded, %lu malformed, %lu checksum, %lu truncated, %lu other\n",
		      total, outcomes[0], outcomes[1], outcomes[2], outcomes[3], outcomes[4]);
	free(buf);
	th_buf_free(&js);
	th_binlog_decoder_free(dec);
	for (size_t i = 0; i < nf; i++)
		free(files[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binlog__format_description_sets_crc32_and_flavour),
		cmocka_unit_test(test_binlog__rejects_bad_crc32),
		cmocka_unit_test(test_binlog__format_description_crc_ignores_in_use_flag),
		cmocka_unit_test(test_binlog__rejects_truncated_and_inconsistent_sizes),
		cmocka_unit_test(test_binlog__fake_rotate_before_format_description),
		cmocka_unit_test(test_binlog__stop_and_heartbeats),
		cmocka_unit_test(test_binlog__decodes_query_with_status_vars_and_db),
		cmocka_unit_test(test_binlog__mariadb_compressed_query),
		cmocka_unit_test(test_binlog__decodes_mysql_gtid_with_commit_timestamps),
		cmocka_unit_test(test_binlog__decodes_previous_gtids),
		cmocka_unit_test(test_binlog__decodes_mariadb_gtid_list_checkpoint_annotate),
		cmocka_unit_test(test_binlog__table_map_with_optional_metadata),
		cmocka_unit_test(test_binlog__table_map_without_metadata_and_malformed),
		cmocka_unit_test(test_binlog__write_update_delete_rows_v2_through_row_decoder),
		cmocka_unit_test(test_binlog__mariadb_rows_v1_and_compressed_v1_v2),
		cmocka_unit_test(test_binlog__partial_update_rows_marks_json_diff),
		cmocka_unit_test(test_binlog__transaction_payload_events_are_iterable),
		cmocka_unit_test(test_binlog__skips_known_control_events),
		cmocka_unit_test(test_binlog__unknown_event_skipped_only_when_ignorable),
		cmocka_unit_test(test_binlog__start_encryption_is_unsupported),
		cmocka_unit_test(test_binlog__fixture_files_decode_completely),
		cmocka_unit_test(test_binlog__mariadb_test_data_decode_or_fail_cleanly),
		cmocka_unit_test(test_binlog__file_follows_rotate_to_next_file),
		cmocka_unit_test(test_binlog__file_rejects_non_binlog),
		cmocka_unit_test(test_binlog__matches_mariadb_binlog_event_sequence),
		cmocka_unit_test(test_binlog__query_texts_match_mariadb_binlog),
		cmocka_unit_test(test_binlog__random_mutations_fail_cleanly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
