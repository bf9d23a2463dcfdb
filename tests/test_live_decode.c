/* SPDX-License-Identifier: Apache-2.0 */
/*
 * End-to-end decoding against a private MariaDB (tests/support/mariadb.h):
 * a table with every column type and the mysqltopo tables, written with
 * INSERT / UPDATE / DELETE of edge values, then read back three ways that
 * must agree:
 *   - the binlog FILES through the file reader (binlog.h) and the assembler
 *     (txn.h), every decoded value compared with the server's own text for
 *     it (SELECT) and, for the rows that were deleted or overwritten, with
 *     the image that preceded them;
 *   - the LIVE stream (source.h -> decoder -> assembler): the same row images
 *     and the same transactions as the files;
 *   - mariadb-binlog --verbose --base64-output=decode-rows on the same files,
 *     an independent decoder: the same row counts per table and operation and
 *     the same integer values.
 * And under concurrent writes, the live stream's transactions come out
 * whole, in order, with consecutive GTIDs. Skips with the reason when
 * mariadbd is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/every_type.h"
#include "tests/support/mariadb.h"
#include "readers/binlog.h"
#include "readers/rows.h"
#include "readers/source.h"
#include "common/th_buf.h"
#include "common/th_error.h"
#include "readers/txn.h"

/* ---- what is written: the every-type table (tests/support/every_type.h), topo rows ---- */

/* After the inserts: updates (one changes the key), deletes, NULLs set and cleared. */
static const char *const live_changes[] = {
	"UPDATE topo.alltypes SET vc = 'upd\xc3\xa9\xe2\x82\xac', dec1 = -0.0001, lb = '', ti = NULL WHERE id = 5",
	"UPDATE topo.alltypes SET dtm6 = '2001-01-01 00:00:00.000001', ts4 = '1999-12-31 23:59:59.9999', bi = -9223372036854775807 WHERE id = 1",
	"DELETE FROM topo.alltypes WHERE id = 3",
	"UPDATE topo.alltypes SET id = 6 WHERE id = 4",
	"UPDATE topo.alltypes SET ti = 7, lb = REPEAT('z', 70000) WHERE id = 6",
};

static const char *const topo_sql[] = {
	"INSERT INTO topo.topo_data (path, data, version) VALUES ('/keyspaces/ks1', 'v1', 1), ('/keyspaces/ks2', '', 1), ('/keyspaces/\xc3\xa9t\xc3\xa9', NULL, 1)",
	"UPDATE topo.topo_data SET data = REPEAT('d', 100000), version = version + 1 WHERE path = '/keyspaces/ks1'",
	"UPDATE topo.topo_data SET path = '/keyspaces/ks3', version = 1 WHERE path = '/keyspaces/ks2'",
	"DELETE FROM topo.topo_data WHERE path = '/keyspaces/\xc3\xa9t\xc3\xa9'",
	"INSERT INTO topo.topo_locks (path, contents, expires_at) VALUES ('/locks/a', 'holder', '2030-01-01')",
	"INSERT INTO topo.topo_elections (name, leader_id, contents, expires_at) VALUES ('e1', 'zone1-1', NULL, '2030-01-01')",
};

/* The topo changes those make, in order: "table op key version value-or-<none>". */
static const char *const topo_expected[] = {
	"0 put /keyspaces/ks1 1 v1",
	"0 put /keyspaces/ks2 1 ",
	"0 put /keyspaces/\xc3\xa9t\xc3\xa9 1 <none>",
	"0 put /keyspaces/ks1 2 <100000 x d>",
	"0 del /keyspaces/ks2 1 <none>",
	"0 put /keyspaces/ks3 1 ",
	"0 del /keyspaces/\xc3\xa9t\xc3\xa9 1 <none>",
	"1 put /locks/a 0 holder",
	"2 put e1 0 \\x07\\x00\\x00\\x00zone1-1\\xff\\xff\\xff\\xff",
};
#define TOPO_NEXPECTED (sizeof topo_expected / sizeof topo_expected[0])

static void change_text(const struct th_txn_change *c, struct th_buf *out)
{
	th_buf_printf(out, "%u %s ", c->table, c->op == TH_TXN_PUT ? "put" : "del");
	th_buf_append(out, c->key, c->key_len);
	th_buf_printf(out, " %lld ", (long long)c->version);
	if (!c->has_value) {
		th_buf_puts(out, "<none>");
		return;
	}
	bool same = c->value_len > 1000;
	for (uint32_t i = 1; same && i < c->value_len; i++)
		same = c->value[i] == c->value[0];
	if (same) {
		th_buf_printf(out, "<%u x %c>", c->value_len, c->value[0]);
		return;
	}
	/* bytes that are never text (the elections value's lengths) as \xNN */
	for (uint32_t i = 0; i < c->value_len; i++) {
		uint8_t b = c->value[i];
		if (b < 0x20 || b == 0x7f || b >= 0xf8)
			th_buf_printf(out, "\\x%02x", b);
		else
			th_buf_putc(out, (char)b);
	}
}

/* ---- what a stream decodes to ----------------------------------------------- */

enum { MAX_IDS = 8, NCOLS = TE_NCOLS + 1 };

struct decoded {
	/* every row image of topo.alltypes, all columns as JSON, in stream order */
	struct th_buf images;
	/* per op and table: counts ("alltypes.write" ...) as text lines */
	unsigned writes, updates, deletes;           /* alltypes row images by op */
	unsigned topo_rows;                          /* row images of topo_data */
	/* the last image of each id (server text form), and whether it was deleted */
	char *last[MAX_IDS + 1][NCOLS];
	bool present[MAX_IDS + 1];
	bool deleted[MAX_IDS + 1];
	/* ids, INT i and BIGINT bi of each image, for the mariadb-binlog check */
	struct th_buf ints;
	/* the assembler's view */
	struct th_buf changes;                       /* change_text lines of topo tables */
	struct th_buf txns;                          /* "gtid nchanges resync" lines */
	unsigned ntxns, resyncs;
	char resume[256];
};

static void decoded_free(struct decoded *d)
{
	th_buf_free(&d->images);
	th_buf_free(&d->ints);
	th_buf_free(&d->changes);
	th_buf_free(&d->txns);
	for (int i = 0; i <= MAX_IDS; i++)
		for (int k = 0; k < NCOLS; k++)
			free(d->last[i][k]);
}

/* Column ci of an image (0 the id) as the server's text for it. */
static char *server_form(size_t ci, const struct th_column *col, const struct th_value *v)
{
	if (ci > 0)
		return te_decoded_text(&te_cols[ci - 1], col, v);
	char id[24];
	snprintf(id, sizeof id, "%lld", (long long)v->i);
	return strdup(id);
}

static void record_image(struct decoded *d, const struct th_table_map *tm, const struct th_value *v, char op,
			 bool before)
{
	assert_int_equal(tm->ncols, NCOLS);
	assert_int_equal(v[0].kind, TH_VAL_INT);
	int id = (int)v[0].i;
	assert_true(id >= 1 && id <= MAX_IDS);
	th_buf_printf(&d->images, "%c%s id=%d", op, before ? "<" : ">", id);
	for (uint32_t k = 0; k < NCOLS; k++) {
		th_buf_putc(&d->images, ' ');
		assert_int_equal(th_value_to_json(&tm->cols[k], &v[k], &d->images), 0);
	}
	th_buf_putc(&d->images, '\n');
	/* @1 id, @8 i, @10 bi as mariadb-binlog prints signed integers */
	th_buf_printf(&d->ints, "%d ", id);
	for (int k = 7; k <= 9; k += 2) {
		if (v[k].kind == TH_VAL_NULL)
			th_buf_puts(&d->ints, "NULL ");
		else
			th_buf_printf(&d->ints, "%lld ", (long long)v[k].i);
	}
	th_buf_putc(&d->ints, '\n');
	char *text[NCOLS];
	for (uint32_t k = 0; k < NCOLS; k++)
		text[k] = server_form(k, &tm->cols[k], &v[k]);
	if (before && d->present[id]) {
		/* a before image is what the last after image left */
		for (uint32_t k = 0; k < NCOLS; k++)
			if (strcmp(text[k], d->last[id][k]))
				fail_msg("id %d column %u: before image '%.80s', last after image '%.80s'", id, k,
					 text[k], d->last[id][k]);
	}
	if (before) {
		for (uint32_t k = 0; k < NCOLS; k++)
			free(text[k]);
		return;
	}
	for (uint32_t k = 0; k < NCOLS; k++) {
		free(d->last[id][k]);
		d->last[id][k] = text[k];
	}
	d->present[id] = true;
	d->deleted[id] = false;
}

/* One event of either stream. */
static void on_event(struct decoded *d, struct th_txn_asm *a, const struct th_binlog_event *ev)
{
	if (ev->kind == TH_EVK_WRITE_ROWS || ev->kind == TH_EVK_UPDATE_ROWS || ev->kind == TH_EVK_DELETE_ROWS) {
		const struct th_table_map *tm = ev->u.rows.tm;
		if (tm && !strcmp(tm->schema, "topo") && !strcmp(tm->table, "topo_data")) {
			struct th_binlog_row_iter it;
			struct th_value b[8], af[8];
			th_binlog_rows_begin(&it, ev);
			while (th_binlog_rows_next(&it, b, af) == 1)
				d->topo_rows++;
		}
		if (tm && !strcmp(tm->schema, "topo") && !strcmp(tm->table, "alltypes")) {
			struct th_binlog_row_iter it;
			struct th_value b[NCOLS], af[NCOLS];
			th_binlog_rows_begin(&it, ev);
			int rc;
			while ((rc = th_binlog_rows_next(&it, b, af)) == 1) {
				if (ev->kind == TH_EVK_WRITE_ROWS) {
					d->writes++;
					record_image(d, tm, af, 'w', false);
				} else if (ev->kind == TH_EVK_UPDATE_ROWS) {
					d->updates++;
					record_image(d, tm, b, 'u', true);
					if (af[0].i != b[0].i) {
						d->present[b[0].i] = false;
						d->deleted[b[0].i] = true;
					}
					record_image(d, tm, af, 'u', false);
				} else {
					d->deletes++;
					record_image(d, tm, b, 'd', true);
					d->present[b[0].i] = false;
					d->deleted[b[0].i] = true;
				}
			}
			if (rc)
				fail_msg("alltypes row: %s", th_strerror(rc));
		}
	}
	const struct th_txn *t;
	int rc = th_txn_feed(a, ev, &t);
	if (rc < 0)
		fail_msg("th_txn_feed: %s", th_txn_error(a));
	if (rc == 1) {
		d->ntxns++;
		d->resyncs += t->resync;
		th_buf_printf(&d->txns, "%s %zu %d\n", t->gtid, t->nchanges, t->resync);
		for (size_t i = 0; i < t->nchanges; i++) {
			change_text(&t->changes[i], &d->changes);
			th_buf_putc(&d->changes, '\n');
		}
	}
}

static void finish(struct decoded *d, struct th_txn_asm *a)
{
	struct th_buf g = TH_BUF_INIT;
	assert_int_equal(th_txn_resume_gtid(a, &g), 0);
	snprintf(d->resume, sizeof d->resume, "%s", th_buf_cstr(&g));
	th_buf_free(&g);
	assert_false(th_txn_in_progress(a));
}

static void decode_files(struct th_mariadb *db, struct decoded *d)
{
	char path[600];
	snprintf(path, sizeof path, "%s/binlog.000001", db->datadir);
	struct th_binlog_file_opts fo = { .size = sizeof fo, .follow_rotate = true };
	fo.decoder.size = sizeof fo.decoder;
	struct th_binlog_file *f;
	assert_int_equal(th_binlog_file_open(&f, path, &fo), 0);
	struct th_txn_asm *a;
	assert_int_equal(th_txn_asm_new(&a, NULL), 0);
	struct th_binlog_event ev;
	int rc;
	while ((rc = th_binlog_file_next(f, &ev)) == 1)
		on_event(d, a, &ev);
	if (rc)
		fail_msg("%s", th_binlog_file_error(f));
	finish(d, a);
	th_txn_free(a);
	th_binlog_file_close(f);
}

/* A live stream with its decoder and assembler. */
struct live {
	struct th_source *src;
	struct th_binlog_decoder *dec;
	struct th_txn_asm *a;
};

/* Dumps from gtid ("": the first binlog); non_blocking ends at the last event. */
static void live_open(struct th_mariadb *db, const char *gtid, bool non_blocking, struct live *l)
{
	struct th_source_config c = {
		.host = db->host, .port = db->port, .user = db->user, .password = db->password,
		.heartbeat_ms = 1000, .gtid = gtid, .non_blocking = non_blocking,
	};
	char err[512];
	if (th_source_live_open(&c, &l->src, err, sizeof err))
		fail_msg("th_source_live_open: %s", err);
	assert_int_equal(th_binlog_decoder_new(&l->dec, NULL), 0);
	th_binlog_decoder_reset(l->dec, "live");
	th_binlog_decoder_set_checksum(l->dec, (enum th_binlog_checksum)th_source_checksum(l->src));
	assert_int_equal(th_txn_asm_new(&l->a, NULL), 0);
}

static void live_close(struct live *l)
{
	th_txn_free(l->a);
	th_binlog_decoder_free(l->dec);
	th_source_close(l->src);
}

/* The live stream from the first binlog to its end (non-blocking dump). */
static void decode_live(struct th_mariadb *db, struct decoded *d)
{
	struct live l;
	live_open(db, "", true, &l);
	const uint8_t *p;
	size_t n;
	int rc;
	while ((rc = th_source_next_event(l.src, &p, &n)) == 1) {
		struct th_binlog_event ev;
		uint32_t log_pos = (uint32_t)(p[13] | p[14] << 8 | p[15] << 16 | (uint32_t)p[16] << 24);
		rc = th_binlog_decode(l.dec, p, n, log_pos >= n ? log_pos - n : 0, &ev);
		if (rc)
			fail_msg("live decode: %s", th_binlog_decoder_error(l.dec));
		on_event(d, l.a, &ev);
		while (ev.kind == TH_EVK_TRANSACTION_PAYLOAD && th_binlog_payload_next(l.dec, &ev) == 1)
			on_event(d, l.a, &ev);
	}
	if (rc)
		fail_msg("live source: %s", th_source_error(l.src));
	finish(d, l.a);
	live_close(&l);
}

/* ---- the server's own view ------------------------------------------------------ */

static MYSQL *root_connect(struct th_mariadb *db)
{
	MYSQL *m = mysql_init(NULL);
	assert_non_null(m);
	if (!mysql_real_connect(m, "localhost", "root", "", NULL, 0, db->socket, 0))
		fail_msg("root connect: %s", mysql_error(m));
	if (mysql_query(m, "SET time_zone = '+00:00'"))
		fail_msg("%s", mysql_error(m));
	return m;
}

static void check_against_server(struct th_mariadb *db, const struct decoded *d)
{
	MYSQL *m = root_connect(db);
	struct th_buf q = TH_BUF_INIT;
	th_buf_puts(&q, "SELECT id");
	for (size_t k = 0; k < TE_NCOLS; k++) {
		char e[64];
		te_select_expr(&te_cols[k], e, sizeof e);
		th_buf_printf(&q, ", IFNULL(%s, '" TE_NULL "')", e);
	}
	th_buf_puts(&q, " FROM topo.alltypes ORDER BY id");
	if (mysql_query(m, th_buf_cstr(&q)))
		fail_msg("%s", mysql_error(m));
	MYSQL_RES *res = mysql_store_result(m);
	assert_non_null(res);
	MYSQL_ROW row;
	unsigned seen = 0;
	while ((row = mysql_fetch_row(res))) {
		unsigned long *lens = mysql_fetch_lengths(res);
		int id = atoi(row[0]);
		assert_true(id >= 1 && id <= MAX_IDS);
		if (!d->present[id])
			fail_msg("id %d is in the table but not in the decoded stream", id);
		seen++;
		for (size_t k = 1; k < NCOLS; k++) {
			const struct te_col *lc = &te_cols[k - 1];
			const char *ours = d->last[id][k];
			char *server = strndup(row[k], lens[k]);
			if (!te_same(lc, server, ours))
				fail_msg("id %d %s (%s): server '%.120s', decoded '%.120s'", id, lc->name, lc->sql,
					 server, ours);
			free(server);
		}
	}
	mysql_free_result(res);
	unsigned want = 0;
	for (int i = 1; i <= MAX_IDS; i++)
		want += d->present[i];
	assert_int_equal(seen, want);
	th_buf_free(&q);
	mysql_close(m);
}

/* ---- mariadb-binlog, the independent decoder ---------------------------------- */

struct peer {
	unsigned writes, updates, deletes, topo_rows;
	struct th_buf ints;   /* as struct decoded's */
};

/* Value of "###   @N=..." as our ints line prints it: the signed number or NULL. */
static void peer_value(const char *v, struct th_buf *out)
{
	if (!strncmp(v, "NULL", 4)) {
		th_buf_puts(out, "NULL ");
		return;
	}
	th_buf_printf(out, "%lld ", strtoll(v, NULL, 10));
}

static bool run_peer(struct th_mariadb *db, struct peer *p)
{
	char cmd[800];
	snprintf(cmd, sizeof cmd,
		 "mariadb-binlog --no-defaults --verbose --base64-output=decode-rows %s/binlog.000001 2>&1",
		 db->datadir);
	FILE *f = popen(cmd, "r");
	if (!f)
		return false;
	static char line[1 << 20];
	enum { NONE, ALL, TOPO } table = NONE;
	char id[32] = "", i8[32] = "", i10[32] = "";
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "### INSERT INTO `topo`.`alltypes`", 33)) {
			table = ALL; p->writes++;
		} else if (!strncmp(line, "### UPDATE `topo`.`alltypes`", 28)) {
			table = ALL; p->updates++;
		} else if (!strncmp(line, "### DELETE FROM `topo`.`alltypes`", 33)) {
			table = ALL; p->deletes++;
		} else if (!strncmp(line, "### INSERT INTO `topo`.`topo_data`", 34)
			   || !strncmp(line, "### UPDATE `topo`.`topo_data`", 29)
			   || !strncmp(line, "### DELETE FROM `topo`.`topo_data`", 34)) {
			table = TOPO; p->topo_rows++;
		} else if (!strncmp(line, "### INSERT", 10) || !strncmp(line, "### UPDATE", 10)
			   || !strncmp(line, "### DELETE", 10)) {
			table = NONE;
		}
		if (table != ALL)
			continue;
		if (!strncmp(line, "###   @", 7)) {
			int n = atoi(line + 7);
			const char *v = strchr(line, '=');
			if (!v)
				continue;
			v++;
			char *dst = n == 1 ? id : n == 8 ? i8 : n == 10 ? i10 : NULL;
			if (dst) {
				snprintf(dst, 32, "%s", v);
				dst[strcspn(dst, " \n")] = '\0';
			}
			if (n == NCOLS) {
				/* the image's last column: emit it */
				th_buf_printf(&p->ints, "%lld ", strtoll(id, NULL, 10));
				peer_value(i8, &p->ints);
				peer_value(i10, &p->ints);
				th_buf_putc(&p->ints, '\n');
			}
		}
	}
	return pclose(f) == 0;
}

/* ---- the tests ------------------------------------------------------------------- */

static struct th_mariadb *start_or_skip(const struct th_mariadb_options *o)
{
	struct th_mariadb *db = NULL;
	char why[512] = "";
	int r = th_mariadb_start(o, &db, why, sizeof why);
	if (r == TH_MARIADB_UNAVAILABLE) {
		print_message("skipped: %s\n", why);
		skip();
	}
	if (r)
		fail_msg("th_mariadb_start: %d %s", r, why);
	return db;
}

static void test_live_decode__files_live_stream_server_and_mariadb_binlog_agree(void **state)
{
	(void)state;
	struct th_mariadb *db = start_or_skip(NULL);
	if (th_mariadb_sql(db, "SET SESSION sql_mode = ''") || th_mariadb_sql(db, "SET time_zone = '+00:00'")
	    || th_mariadb_create_topo_schema(db, NULL))
		fail_msg("setup: %s", db->err);
	te_create_table(db, "topo.alltypes");
	for (size_t k = 0; k < sizeof live_changes / sizeof live_changes[0]; k++)
		if (th_mariadb_sql(db, "%s", live_changes[k]))
			fail_msg("%s: %s", live_changes[k], db->err);
	for (size_t k = 0; k < sizeof topo_sql / sizeof topo_sql[0]; k++)
		if (th_mariadb_sql(db, "%s", topo_sql[k]))
			fail_msg("%s: %s", topo_sql[k], db->err);
	/* a second binlog file: the file reader follows the rotate, the live stream too */
	if (th_mariadb_sql(db, "FLUSH BINARY LOGS")
	    || th_mariadb_sql(db, "UPDATE topo.topo_data SET version = 9 WHERE path = '/keyspaces/ks3'"))
		fail_msg("%s", db->err);

	struct decoded file = { .images = TH_BUF_INIT }, live = { .images = TH_BUF_INIT };
	decode_files(db, &file);
	decode_live(db, &live);

	/* files: every value as the server has it; every before image as the stream left it */
	assert_int_equal(file.writes, TE_NROWS);
	assert_int_equal(file.updates, 4);
	assert_int_equal(file.deletes, 1);
	check_against_server(db, &file);
	assert_true(file.deleted[3] && file.deleted[4] && file.present[6]);

	/* the topo mapping */
	struct th_buf want = TH_BUF_INIT;
	for (size_t k = 0; k < TOPO_NEXPECTED; k++) {
		th_buf_puts(&want, topo_expected[k]);
		th_buf_putc(&want, '\n');
	}
	th_buf_puts(&want, "0 put /keyspaces/ks3 9 \n");
	assert_string_equal(th_buf_cstr(&file.changes), th_buf_cstr(&want));
	th_buf_free(&want);
	/* CREATE DATABASE topo and the three CREATE TABLEs came as resyncs, alltypes' did not */
	assert_int_equal(file.resyncs, 4);
	char gtid_now[256];
	assert_int_equal(th_mariadb_query_value(db, gtid_now, sizeof gtid_now, "SELECT @@gtid_binlog_pos"), 0);
	assert_string_equal(file.resume, gtid_now);

	/* live: the same images and the same transactions */
	assert_string_equal(th_buf_cstr(&live.images), th_buf_cstr(&file.images));
	assert_string_equal(th_buf_cstr(&live.txns), th_buf_cstr(&file.txns));
	assert_string_equal(th_buf_cstr(&live.changes), th_buf_cstr(&file.changes));
	assert_string_equal(live.resume, gtid_now);

	/* mariadb-binlog */
	struct peer p = { .ints = TH_BUF_INIT };
	if (!run_peer(db, &p)) {
		print_message("mariadb-binlog did not run; its cross-check is skipped\n");
	} else {
		assert_int_equal(p.writes, file.writes);
		assert_int_equal(p.updates, file.updates);
		assert_int_equal(p.deletes, file.deletes);
		/* the first file only: the last UPDATE is in the second */
		assert_int_equal(p.topo_rows + 1, file.topo_rows);
		assert_true(p.ints.len > 0);
		assert_string_equal(th_buf_cstr(&p.ints), th_buf_cstr(&file.ints));
	}
	print_message("%u images of %zu columns: files, live stream, server and mariadb-binlog agree (%s)\n",
		      file.writes + 2 * file.updates + file.deletes, (size_t)NCOLS, db->version);
	th_buf_free(&p.ints);
	decoded_free(&file);
	decoded_free(&live);
	th_mariadb_stop(db);
}

/* ---- concurrent writes ------------------------------------------------------------ */

enum { WRITER_TXNS = 300 };

struct writer {
	struct th_mariadb *db;
	int failed;
	char err[256];
};

/* Transaction k writes (k % 4) + 1 rows "/w/k/j"; every 10th updates them instead. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	mysql_thread_init();
	MYSQL *m = mysql_init(NULL);
	if (!m || !mysql_real_connect(m, "localhost", "root", "", "topo", 0, w->db->socket, 0)) {
		snprintf(w->err, sizeof w->err, "connect: %s", m ? mysql_error(m) : "no memory");
		w->failed = 1;
		goto out;
	}
	for (int k = 0; k < WRITER_TXNS && !w->failed; k++) {
		char q[512];
		int rows = k % 4 + 1;
		if (mysql_query(m, "BEGIN")) {
			w->failed = 1;
			break;
		}
		for (int j = 0; j < rows; j++) {
			snprintf(q, sizeof q, "INSERT INTO topo_data (path, data, version) VALUES ('/w/%d/%d', 'x%d', 1)", k, j, k);
			if (mysql_query(m, q)) {
				w->failed = 1;
				break;
			}
		}
		if (w->failed || mysql_query(m, "COMMIT")) {
			snprintf(w->err, sizeof w->err, "txn %d: %s", k, mysql_error(m));
			w->failed = 1;
		}
	}
out:
	if (m)
		mysql_close(m);
	mysql_thread_end();
	return NULL;
}

static void test_live_decode__concurrent_writes_come_out_whole_and_in_order(void **state)
{
	(void)state;
	struct th_mariadb *db = start_or_skip(NULL);
	if (th_mariadb_create_topo_schema(db, NULL))
		fail_msg("%s", db->err);
	char start[128];
	assert_int_equal(th_mariadb_query_value(db, start, sizeof start, "SELECT @@gtid_binlog_pos"), 0);

	/* the live stream first, from the position after the schema: blocking dump */
	struct live l;
	live_open(db, start, false, &l);
	assert_int_equal(th_txn_set_position(l.a, start, NULL, 0), 0);

	struct writer w = { .db = db };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);

	struct th_maria_gtid first;
	assert_int_equal(th_maria_gtid_parse(start, &first), 0);
	uint64_t next_seq = first.seq_no + 1;
	int k = 0, rc = 0;
	const uint8_t *p;
	size_t n;
	while (k < WRITER_TXNS && (rc = th_source_next_event(l.src, &p, &n)) == 1) {
		struct th_binlog_event ev;
		rc = th_binlog_decode(l.dec, p, n, 0, &ev);
		if (rc)
			fail_msg("live decode: %s", th_binlog_decoder_error(l.dec));
		const struct th_txn *t;
		rc = th_txn_feed(l.a, &ev, &t);
		if (rc < 0)
			fail_msg("%s", th_txn_error(l.a));
		if (rc == 0)
			continue;
		/* whole, in order, consecutive GTIDs in domain 0 */
		assert_int_equal(t->maria.domain_id, 0);
		if (t->maria.seq_no != next_seq)
			fail_msg("transaction %d: GTID %s, expected seq %llu", k, t->gtid, (unsigned long long)next_seq);
		next_seq++;
		int rows = k % 4 + 1;
		if (t->nchanges != (size_t)rows)
			fail_msg("transaction %d (%s): %zu changes, wrote %d", k, t->gtid, t->nchanges, rows);
		for (int j = 0; j < rows; j++) {
			char key[64];
			int kl = snprintf(key, sizeof key, "/w/%d/%d", k, j);
			const struct th_txn_change *ch = &t->changes[j];
			if (ch->op != TH_TXN_PUT || ch->key_len != (uint32_t)kl || memcmp(ch->key, key, (size_t)kl))
				fail_msg("transaction %d change %d: %.*s", k, j, (int)ch->key_len, ch->key);
		}
		/* the resume position is exactly this transaction */
		struct th_buf g = TH_BUF_INIT;
		assert_int_equal(th_txn_resume_gtid(l.a, &g), 0);
		assert_string_equal(th_buf_cstr(&g), t->gtid);
		th_buf_free(&g);
		k++;
	}
	pthread_join(th, NULL);
	if (w.failed)
		fail_msg("writer: %s", w.err);
	if (k < WRITER_TXNS)
		fail_msg("stream ended after %d transactions: %d %s", k, rc, th_source_error(l.src));
	print_message("%d concurrent transactions came out whole and in order\n", k);
	live_close(&l);
	th_mariadb_stop(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_decode__files_live_stream_server_and_mariadb_binlog_agree),
		cmocka_unit_test(test_live_decode__concurrent_writes_come_out_whole_and_in_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
