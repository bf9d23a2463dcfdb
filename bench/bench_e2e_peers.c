/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-process peers of the end-to-end benchmark: each subscriber process
 * opens its own binlog dump connection to the server.
 *
 *   mysqltopo  what the mysqltopo backend does today (doc/DESIGN.md, "Why it
 *              exists"): on every row event of topo_data, re-read the
 *              whole table (SELECT path, data, version FROM topo_data) on a
 *              second connection and diff it against what it knew, by version;
 *              each changed row under the prefix is a delivery, in the order the
 *              SELECT returns rows (by path).
 *   decoder    decode the row images with our decoder (readers/binlog.h,
 *              txn.h): each topo_data change under the prefix is a delivery,
 *              at its transaction's commit.
 *
 * Both start the dump at the server's @@gtid_binlog_pos when they start (the
 * setup is before it), with the hub's 1 s heartbeat (they see the stop flag at
 * least once a second).
 */
#include "bench/bench_e2e.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "readers/binlog.h"
#include "readers/source.h"
#include "common/th_error.h"
#include "readers/txn.h"

struct dump {
	MYSQL *sql;
	struct th_source *src;
	struct th_binlog_decoder *dec;
};

static int dump_open(struct e2e_sub *s, struct dump *d)
{
	memset(d, 0, sizeof *d);
	struct e2e_mysql_env env;
	if (th__e2e_mysql_env(&env))
		return -EINVAL;
	char err[512];
	d->sql = th__e2e_mysql_connect(&env, err, sizeof err);
	if (!d->sql) {
		th__e2e_error(s, "%s", err);
		return -TH_EMYSQL;
	}
	char pos[1024] = "";
	MYSQL_RES *res;
	MYSQL_ROW row;
	if (mysql_query(d->sql, "SELECT @@gtid_binlog_pos") || !(res = mysql_store_result(d->sql))) {
		th__e2e_error(s, "gtid_binlog_pos: %s", mysql_error(d->sql));
		return -TH_EMYSQL;
	}
	if ((row = mysql_fetch_row(res)) && row[0])
		snprintf(pos, sizeof pos, "%s", row[0]);
	mysql_free_result(res);

	struct th_source_config c = {
		.host = env.host,
		.port = env.port,
		.socket = env.socket,
		.user = env.user,
		.password = env.password,
		/* The hub's default: on 2 loaded cores a 100 ms heartbeat (a 1 s
		 * deadline) kills healthy connections. */
		.heartbeat_ms = 1000,
		.pass_heartbeats = true,
		.gtid = pos,
		.name = "e2e-peer",
	};
	int rc = th_source_live_open(&c, &d->src, err, sizeof err);
	if (rc) {
		th__e2e_error(s, "dump: %s", err);
		return rc;
	}
	rc = th_binlog_decoder_new(&d->dec, NULL);
	if (rc)
		return rc;
	th_binlog_decoder_reset(d->dec, "live");
	th_binlog_decoder_set_checksum(d->dec, (enum th_binlog_checksum)th_source_checksum(d->src));
	return 0;
}

/* The next decoded event: 1, or <= 0 when the stream ended or failed. */
static int dump_next(struct e2e_sub *s, struct dump *d, struct th_binlog_event *ev)
{
	const uint8_t *p;
	size_t n;
	int rc = th_source_next_event(d->src, &p, &n);
	if (rc != 1) {
		if (rc < 0 && !th__e2e_stopping(s))
			th__e2e_error(s, "dump: %s", th_source_error(d->src));
		return rc;
	}
	uint32_t log_pos = (uint32_t)(p[13] | p[14] << 8 | p[15] << 16 | (uint32_t)p[16] << 24);
	rc = th_binlog_decode(d->dec, p, n, log_pos >= n ? log_pos - n : 0, ev);
	if (rc) {
		th__e2e_error(s, "decode: %s", th_binlog_decoder_error(d->dec));
		return rc;
	}
	return 1;
}

static int dump_done(struct dump *d, int code)
{
	th_binlog_decoder_free(d->dec);
	th_source_close(d->src);
	if (d->sql)
		mysql_close(d->sql);
	return code;
}

/* ---- decoder peer ----------------------------------------------------------- */

static void on_txn(struct e2e_sub *s, const struct th_txn *t)
{
	for (size_t i = 0; i < t->nchanges; i++) {
		const struct th_txn_change *c = &t->changes[i];
		if (c->table != 0 || c->op != TH_TXN_PUT || !c->has_value)
			continue;
		if (th__e2e_under_prefix(s, (const char *)c->key, c->key_len))
			th__e2e_value(s, (const char *)c->value, c->value_len);
	}
}

int th__e2e_sub_decoder(struct e2e_sub *s, const struct e2e_sub_opts *o)
{
	struct dump d;
	int rc = dump_open(s, &d);
	if (rc)
		return dump_done(&d, 1);
	struct th_txn_asm *a;
	if (th_txn_asm_new(&a, NULL))
		return dump_done(&d, 1);
	th__e2e_ready(s);
	struct th_binlog_event ev;
	while (!th__e2e_stopping(s) && dump_next(s, &d, &ev) == 1) {
		if (ev.kind == TH_EVK_HEARTBEAT)
			continue;
		const struct th_txn *t;
		for (;;) {
			rc = th_txn_feed(a, &ev, &t);
			if (rc < 0) {
				th__e2e_error(s, "txn: %s", th_txn_error(a));
				break;
			}
			if (rc == 1)
				on_txn(s, t);
			if (ev.kind != TH_EVK_TRANSACTION_PAYLOAD || th_binlog_payload_next(d.dec, &ev) != 1)
				break;
		}
	}
	th_txn_free(a);
	return dump_done(&d, 0);
}

/* ---- mysqltopo-style peer ------------------------------------------------------ */

/* What the watcher knew: path -> version, an open-addressing table. */
struct known {
	char **path;
	long long *version;
	uint32_t *mark;
	size_t cap;
	uint32_t epoch;
};

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
	return h;
}

static size_t known_slot(struct known *k, const char *p, size_t n)
{
	size_t i = (size_t)fnv1a(p, n) & (k->cap - 1);
	while (k->path[i] && (strlen(k->path[i]) != n || memcmp(k->path[i], p, n)))
		i = (i + 1) & (k->cap - 1);
	return i;
}

/* Re-read the table; deliver each row whose version changed. */
static int reread(struct e2e_sub *s, MYSQL *m, struct known *k)
{
	static const char q[] = "SELECT path, data, version FROM topo_data";
	atomic_fetch_add_explicit(&s->st->selects, 1, memory_order_relaxed);
	if (mysql_real_query(m, q, sizeof q - 1)) {
		th__e2e_error(s, "select: %s", mysql_error(m));
		return -1;
	}
	MYSQL_RES *res = mysql_store_result(m);
	if (!res) {
		th__e2e_error(s, "select: %s", mysql_error(m));
		return -1;
	}
	MYSQL_ROW row;
	size_t rows = mysql_num_rows(res);
	if (rows * 2 > k->cap) {
		th__e2e_error(s, "more than %zu rows", k->cap / 2);
		mysql_free_result(res);
		return -1;
	}
	k->epoch++;
	while ((row = mysql_fetch_row(res))) {
		unsigned long *len = mysql_fetch_lengths(res);
		if (!row[0] || !row[2])
			continue;
		long long version = atoll(row[2]);
		size_t i = known_slot(k, row[0], len[0]);
		bool changed = !k->path[i] || k->version[i] != version;
		if (!k->path[i])
			k->path[i] = strndup(row[0], len[0]);
		k->version[i] = version;
		k->mark[i] = k->epoch;
		if (changed && row[1] && th__e2e_under_prefix(s, row[0], len[0]))
			th__e2e_value(s, row[1], len[1]);
	}
	mysql_free_result(res);
	/* Paths that vanished would be deletes; the benchmark deletes nothing. */
	return 0;
}

int th__e2e_sub_mysqltopo(struct e2e_sub *s, const struct e2e_sub_opts *o)
{
	struct dump d;
	if (dump_open(s, &d))
		return dump_done(&d, 1);
	struct known k = { .cap = 1u << 14 };
	k.path = calloc(k.cap, sizeof *k.path);
	k.version = calloc(k.cap, sizeof *k.version);
	k.mark = calloc(k.cap, sizeof *k.mark);
	/* The initial read, as Watch does before it registers. */
	if (reread(s, d.sql, &k))
		return dump_done(&d, 1);
	th__e2e_ready(s);
	struct th_binlog_event ev;
	while (!th__e2e_stopping(s) && dump_next(s, &d, &ev) == 1) {
		bool rows = ev.kind == TH_EVK_WRITE_ROWS || ev.kind == TH_EVK_UPDATE_ROWS ||
			    ev.kind == TH_EVK_DELETE_ROWS;
		if (!rows || !ev.u.rows.tm)
			continue;
		if (strcmp(ev.u.rows.tm->table, "topo_data") || strcmp(ev.u.rows.tm->schema, "topo"))
			continue;
		if (reread(s, d.sql, &k))
			break;
	}
	return dump_done(&d, 0);
}
