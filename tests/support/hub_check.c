/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers around a running hub; see hub_check.h. */
#include "tests/support/hub_check.h"
#include "tests/support/support.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/th_buf.h"
#include "common/th_error.h"
#include "common/th_time.h"

struct row {
	uint8_t *key;
	uint32_t key_len;
	uint8_t *value;
	uint32_t value_len;
	bool null;
	int64_t version;
};

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	uint32_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static void free_rows(struct row *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].key);
		free(r[i].value);
	}
	free(r);
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

/* The mysqltopo tables: SELECT list and the number of value columns. */
static const struct {
	const char *select;
	int nval;
	bool version;
} tables[3] = {
	{ "SELECT path, data, version FROM `%s`.topo_data", 1, true },
	{ "SELECT path, contents FROM `%s`.topo_locks", 1, false },
	{ "SELECT name, leader_id, contents FROM `%s`.topo_elections", 2, false },
};

static int sql_rows(MYSQL *m, const char *schema, int t, struct row **out, size_t *n_out, char *why, size_t why_len)
{
	char q[256];
	snprintf(q, sizeof q, tables[t].select, schema);
	if (mysql_query(m, q) != 0) {
		th_test_say(why, why_len, "%s: %s", q, mysql_error(m));
		return -TH_EMYSQL;
	}
	MYSQL_RES *res = mysql_store_result(m);
	if (!res) {
		th_test_say(why, why_len, "%s: %s", q, mysql_error(m));
		return -TH_EMYSQL;
	}
	size_t n = mysql_num_rows(res), i = 0;
	struct row *rows = calloc(n ? n : 1, sizeof *rows);
	MYSQL_ROW r;
	while (rows && (r = mysql_fetch_row(res)) != NULL) {
		unsigned long *l = mysql_fetch_lengths(res);
		struct row *x = &rows[i++];
		x->key = dup_bytes(r[0], l[0]);
		x->key_len = (uint32_t)l[0];
		if (tables[t].nval == 1) {
			x->null = r[1] == NULL;
			x->value = dup_bytes(r[1] ? r[1] : "", r[1] ? l[1] : 0);
			x->value_len = r[1] ? (uint32_t)l[1] : 0;
		} else {
			struct th_buf b = TH_BUF_INIT;
			for (int k = 0; k < tables[t].nval; k++) {
				uint32_t len = r[1 + k] ? (uint32_t)l[1 + k] : 0xffffffffu;
				uint8_t le[4] = { (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24) };
				th_buf_append(&b, le, 4);
				if (r[1 + k])
					th_buf_append(&b, r[1 + k], l[1 + k]);
			}
			x->value = dup_bytes(b.data, b.len);
			x->value_len = (uint32_t)b.len;
			th_buf_free(&b);
		}
		x->version = tables[t].version && r[2] ? strtoll(r[2], NULL, 10) : 0;
	}
	mysql_free_result(res);
	if (!rows)
		return -ENOMEM;
	qsort(rows, n, sizeof *rows, cmp_row);
	*out = rows;
	*n_out = n;
	return 0;
}

static int hub_rows(struct th_ctl *c, int t, struct row **out, size_t *n_out, uint64_t *rev, char *why,
		    size_t why_len)
{
	struct th_ctl_snapshot s;
	int rc = th_ctl_snapshot(c, TH_MSG_SNAPSHOT, (uint32_t)t, "", 0, &s, 30000);
	if (rc < 0) {
		th_test_say(why, why_len, "SNAPSHOT table %d: %s: %s", t, th_strerror(rc), th_ctl_error(c));
		return rc;
	}
	*rev = s.reply.revision;
	struct row *rows = calloc(s.reply.count ? s.reply.count : 1, sizeof *rows);
	size_t n = 0;
	struct th_snap_iter it = th_ctl_snapshot_iter(&s);
	struct th_snap_entry e;
	const uint8_t *k, *v;
	while (rows && (rc = th_snap_next(&it, &e, &k, &v)) == 1) {
		struct row *x = &rows[n++];
		x->key = dup_bytes(k, e.key_len);
		x->key_len = e.key_len;
		x->value = dup_bytes(v, e.value_len);
		x->value_len = e.value_len;
		x->null = e.flags & TH_CHANGE_F_VALUE_NULL;
		x->version = e.version;
	}
	th_ctl_snapshot_free(&s);
	if (!rows)
		return -ENOMEM;
	if (rc < 0 || n != s.reply.count) {
		free_rows(rows, n);
		th_test_say(why, why_len, "snapshot memfd malformed (%zu of %" PRIu64 " entries)", n, s.reply.count);
		return -TH_EPROTO;
	}
	qsort(rows, n, sizeof *rows, cmp_row);
	*out = rows;
	*n_out = n;
	return 0;
}

int th_hub_check_state(const char *socket, struct th_mariadb *db, const char *schema, unsigned timeout_ms,
		       size_t *entries, char *why, size_t why_len)
{
	if (!schema)
		schema = "topo";
	if (entries)
		*entries = 0;
	char gtid[1024];
	int rc = th_mariadb_query_value(db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos");
	if (rc < 0) {
		th_test_say(why, why_len, "gtid_binlog_pos: %s", db->err);
		return rc;
	}
	struct th_ctl *c;
	if ((rc = th_ctl_connect(socket, &c)) < 0) {
		th_test_say(why, why_len, "connect %s: %s", socket, th_strerror(rc));
		return rc;
	}
	uint64_t rev;
	rc = th_ctl_sync(c, gtid, (uint64_t)timeout_ms * 1000000u, &rev);
	if (rc < 0) {
		th_test_say(why, why_len, "SYNC '%s': %s: %s", gtid, th_strerror(rc), th_ctl_error(c));
		th_ctl_close(c);
		return rc;
	}
	/* As root over the Unix socket: tests may change the topohub account. */
	MYSQL *m = mysql_init(NULL);
	unsigned proto = MYSQL_PROTOCOL_SOCKET;
	mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
	if (!mysql_real_connect(m, "localhost", "root", "", NULL, 0, db->socket, 0)) {
		th_test_say(why, why_len, "connect as root: %s", mysql_error(m));
		mysql_close(m);
		th_ctl_close(c);
		return -TH_EMYSQL;
	}
	mysql_query(m, "SET SESSION character_set_results = binary");
	for (int t = 0; t < 3 && rc == 0; t++) {
		struct row *a = NULL, *b = NULL;
		size_t na = 0, nb = 0;
		uint64_t srev = 0;
		rc = sql_rows(m, schema, t, &a, &na, why, why_len);
		if (!rc)
			rc = hub_rows(c, t, &b, &nb, &srev, why, why_len);
		for (size_t i = 0; rc == 0 && i < na && i < nb; i++) {
			if (cmp_row(&a[i], &b[i]) != 0) {
				const struct row *x = cmp_row(&a[i], &b[i]) < 0 ? &a[i] : &b[i];
				th_test_say(why, why_len, "table %d: key '%.*s' only in the %s", t, (int)x->key_len,
				    (const char *)x->key, x == &a[i] ? "database" : "hub");
				rc = -ERANGE;
			} else if (a[i].null != b[i].null || a[i].value_len != b[i].value_len ||
				   memcmp(a[i].value, b[i].value, a[i].value_len) || a[i].version != b[i].version) {
				th_test_say(why, why_len,
				    "table %d key '%.*s': database has %s%u bytes version %" PRId64
				    ", hub has %s%u bytes version %" PRId64,
				    t, (int)a[i].key_len, (const char *)a[i].key, a[i].null ? "NULL " : "", a[i].value_len,
				    a[i].version, b[i].null ? "NULL " : "", b[i].value_len, b[i].version);
				rc = -ERANGE;
			}
		}
		if (rc == 0 && na != nb) {
			th_test_say(why, why_len, "table %d: %zu rows in the database, %zu in the hub (revision %" PRIu64 ")", t,
			    na, nb, srev);
			rc = -ERANGE;
		}
		if (entries)
			*entries += na;
		free_rows(a, na);
		free_rows(b, nb);
	}
	mysql_close(m);
	th_ctl_close(c);
	return rc;
}

/* ---- a minimal reader --------------------------------------------------- */

int th_test_reader_open(struct th_test_reader *tr, const char *socket, uint64_t timeout_ns, const char *name,
			char *why, size_t why_len)
{
	memset(tr, 0, sizeof *tr);
	int rc = th_ctl_connect(socket, &tr->c);
	if (rc < 0) {
		th_test_say(why, why_len, "connect %s: %s", socket, th_strerror(rc));
		return rc;
	}
	struct th_ring_reader_fds fds;
	rc = th_ctl_attach(tr->c, timeout_ns, (uint32_t)getpid(), name, &tr->att, &fds, 5000);
	if (rc < 0) {
		th_test_say(why, why_len, "ATTACH: %s: %s", th_strerror(rc), th_ctl_error(tr->c));
		th_ctl_close(tr->c);
		tr->c = NULL;
		return rc;
	}
	char err[256] = "";
	rc = th_ring_reader_open(&fds, &tr->r, err, sizeof err);
	close(fds.ring_fd);
	close(fds.slot_fd);
	close(fds.event_fd);
	if (rc < 0) {
		th_test_say(why, why_len, "th_ring_reader_open: %s %s", th_strerror(rc), err);
		th_ctl_close(tr->c);
		tr->c = NULL;
		return rc;
	}
	th_ring_reader_set_timeout(tr->r, timeout_ns);
	tr->buf_len = 1 << 16;
	tr->buf = malloc(tr->buf_len);
	return tr->buf ? 0 : -ENOMEM;
}

int th_test_reader_next(struct th_test_reader *tr, struct th_test_rec *rec, int wait_ms)
{
	memset(rec, 0, sizeof *rec);
	uint64_t deadline = th_now_ns() + (uint64_t)(wait_ms > 0 ? wait_ms : 0) * 1000000u;
	struct th_ring_record rr;
	for (;;) {
		int rc = th_ring_read(tr->r, &rr, tr->buf, tr->buf_len);
		if (rc == -ENOBUFS) {
			size_t n = rr.len;
			uint8_t *b = realloc(tr->buf, n);
			if (!b)
				return -ENOMEM;
			tr->buf = b;
			tr->buf_len = n;
			continue;
		}
		if (rc < 0)
			return rc;
		if (rc == 1)
			break;
		uint64_t now = th_now_ns();
		if (now >= deadline)
			return 0;
		th_ring_wait(tr->r, TH_RING_WAIT_FUTEX, (int64_t)(deadline - now), 20000);
	}
	{
		rec->type = rr.type;
		rec->ring_flags = rr.flags;
		rec->publish_mono_ns = rr.publish_ns;
		if (rr.type == TH_REC_RESYNC) {
			if (rr.len < sizeof rec->rs)
				return -TH_EPROTO;
			memcpy(&rec->rs, tr->buf, sizeof rec->rs);
			return 1;
		}
		if (rr.type != TH_REC_CHANGE || rr.len < sizeof rec->ch)
			return -TH_EPROTO;
		memcpy(&rec->ch, tr->buf, sizeof rec->ch);
		const struct th_rec_change *c = &rec->ch;
		if ((uint64_t)sizeof *c + c->key_len + c->value_len + c->gtid_len != rr.len)
			return -TH_EPROTO;
		const uint8_t *p = tr->buf + sizeof *c;
		size_t kl = c->key_len < sizeof rec->key - 1 ? c->key_len : sizeof rec->key - 1;
		memcpy(rec->key, p, kl);
		rec->key[kl] = '\0';
		p += c->key_len;
		if (c->value_len) {
			rec->value = malloc(c->value_len);
			if (!rec->value)
				return -ENOMEM;
			memcpy(rec->value, p, c->value_len);
		}
		p += c->value_len;
		size_t gl = c->gtid_len < sizeof rec->gtid - 1 ? c->gtid_len : sizeof rec->gtid - 1;
		memcpy(rec->gtid, p, gl);
		rec->gtid[gl] = '\0';
		return 1;
	}
}

void th_test_rec_free(struct th_test_rec *rec)
{
	free(rec->value);
	rec->value = NULL;
}

void th_test_reader_close(struct th_test_reader *tr)
{
	if (tr->r)
		th_ring_reader_close(tr->r);
	th_ctl_close(tr->c);
	free(tr->buf);
	memset(tr, 0, sizeof *tr);
}
