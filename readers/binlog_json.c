/* SPDX-License-Identifier: Apache-2.0 */
/*
 * binlog_json.c: one decoded event as one JSON object (th_binlog_event_to_json,
 * the format of `topohubctl decode`). Not on the hot path: clarity first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "readers/binlog.h"
#include "common/th_bytes.h"
#include "common/th_error.h"

/* Text that may not be UTF-8 (queries in latin1, file names): a string or {"base64":...}. */
static void text(struct th_buf *o, const void *p, size_t n)
{
	if (!p)
		n = 0;
	if (th_utf8_valid(p ? p : "", n)) {
		th_buf_json_string(o, p ? p : "", n);
	} else {
		th_buf_puts(o, "{\"base64\":\"");
		th_buf_base64(o, p, n);
		th_buf_puts(o, "\"}");
	}
}

static void key(struct th_buf *o, const char *k)
{
	th_buf_printf(o, ",\"%s\":", k);
}

static void kv_u(struct th_buf *o, const char *k, unsigned long long v)
{
	th_buf_printf(o, ",\"%s\":%llu", k, v);
}

static void kv_i(struct th_buf *o, const char *k, long long v)
{
	th_buf_printf(o, ",\"%s\":%lld", k, v);
}

static void kv_b(struct th_buf *o, const char *k, bool v)
{
	th_buf_printf(o, ",\"%s\":%s", k, v ? "true" : "false");
}

static void uuid_text(struct th_buf *o, const uint8_t *u)
{
	th_buf_printf(o, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		      u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		      u[13], u[14], u[15]);
}

/* PREVIOUS_GTIDS as MySQL prints a GTID set: uuid:1-5:7,uuid2:3 (intervals are [start, end)). */
static void prev_gtids(struct th_buf *o, const struct th_ev_previous_gtids *pg)
{
	const uint8_t *p = pg->data;
	th_buf_putc(o, '"');
	for (uint64_t i = 0; i < pg->n_sids; i++) {
		if (i)
			th_buf_putc(o, ',');
		uuid_text(o, p);
		uint64_t n = th_le64(p + 16);
		p += 24;
		for (uint64_t j = 0; j < n; j++, p += 16) {
			uint64_t a = th_le64(p), b = th_le64(p + 8) - 1;
			if (a == b)
				th_buf_printf(o, ":%llu", (unsigned long long)a);
			else
				th_buf_printf(o, ":%llu-%llu", (unsigned long long)a, (unsigned long long)b);
		}
	}
	th_buf_putc(o, '"');
}

static void image(struct th_buf *o, const struct th_binlog_row_iter *it, const struct th_table_map *tm,
		  const struct th_value *v, bool after, int *err)
{
	th_buf_putc(o, '{');
	bool first = true;
	for (uint32_t i = 0; i < tm->ncols; i++) {
		if (v[i].kind == TH_VAL_ABSENT)
			continue;
		if (!first)
			th_buf_putc(o, ',');
		first = false;
		const struct th_column *c = &tm->cols[i];
		if (c->name) {
			text(o, c->name, c->name_len);
		} else {
			th_buf_printf(o, "\"@%u\"", i + 1);
		}
		th_buf_putc(o, ':');
		if (after && th_binlog_row_is_partial_json(it, i)) {
			/* MySQL's binary JSON diff: kept opaque, clearly marked */
			th_buf_puts(o, "{\"partial_json_diff_base64\":\"");
			th_buf_base64(o, v[i].bytes, v[i].len);
			th_buf_puts(o, "\"}");
			continue;
		}
		size_t mark = o->len;
		int rc = th_value_to_json(c, &v[i], o);
		if (rc) {
			o->len = mark;
			th_buf_puts(o, "null");
			if (!*err)
				*err = rc;
		}
	}
	th_buf_putc(o, '}');
}

static int rows(struct th_buf *o, const struct th_binlog_event *ev)
{
	const struct th_ev_rows *rw = &ev->u.rows;
	const struct th_table_map *tm = rw->tm;
	kv_u(o, "table_id", rw->table_id);
	kv_u(o, "flags", rw->flags);
	if (rw->compressed)
		kv_b(o, "compressed", true);
	if (!tm) {
		th_buf_puts(o, ",\"rows\":[]");
		return 0;
	}
	key(o, "db");
	text(o, tm->schema, strlen(tm->schema));
	key(o, "table");
	text(o, tm->table, strlen(tm->table));
	struct th_value *vals = calloc((size_t)tm->ncols * 2 + 2, sizeof *vals);
	if (!vals)
		return -ENOMEM;
	struct th_value *before = vals, *after = vals + tm->ncols + 1;
	struct th_binlog_row_iter it;
	th_binlog_rows_begin(&it, ev);
	th_buf_puts(o, ",\"rows\":[");
	int rc, err = 0;
	while ((rc = th_binlog_rows_next(&it, before, after)) == 1) {
		if (it.index > 1)
			th_buf_putc(o, ',');
		th_buf_putc(o, '{');
		if (ev->kind != TH_EVK_WRITE_ROWS) {
			th_buf_puts(o, "\"before\":");
			image(o, &it, tm, before, false, &err);
		}
		if (ev->kind != TH_EVK_DELETE_ROWS) {
			if (ev->kind != TH_EVK_WRITE_ROWS)
				th_buf_putc(o, ',');
			th_buf_puts(o, "\"after\":");
			image(o, &it, tm, after, true, &err);
		}
		th_buf_putc(o, '}');
	}
	th_buf_putc(o, ']');
	free(vals);
	if (rc < 0 && !err)
		err = rc;
	if (err) {
		key(o, "rows_error");
		th_buf_json_string(o, th_strerror(err), strlen(th_strerror(err)));
	}
	return err;
}

int th_binlog_event_to_json(const struct th_binlog_event *ev, struct th_buf *o)
{
	int rc = 0;
	char g[64];
	th_buf_puts(o, "{\"type\":");
	th_buf_json_string(o, th_binlog_kind_name(ev->kind), strlen(th_binlog_kind_name(ev->kind)));
	kv_u(o, "event_type", ev->type);
	kv_u(o, "pos", ev->pos);
	if (ev->in_payload) {
		kv_b(o, "in_payload", true);
		kv_u(o, "payload_offset", ev->payload_offset);
	}
	kv_u(o, "log_pos", ev->log_pos);
	kv_u(o, "server_id", ev->server_id);
	kv_u(o, "timestamp", ev->timestamp);
	kv_u(o, "size", ev->size);
	if (ev->skipped) {
		kv_b(o, "skipped", true);
		th_buf_putc(o, '}');
		return th_buf_failed(o) ? -ENOMEM : 0;
	}
	switch (ev->kind) {
	case TH_EVK_FORMAT_DESCRIPTION:
	case TH_EVK_START_V3: {
		const struct th_ev_format_description *f = &ev->u.fde;
		kv_u(o, "binlog_version", f->binlog_version);
		key(o, "server_version");
		text(o, f->server_version, strlen(f->server_version));
		key(o, "checksum");
		th_buf_puts(o, f->checksum_alg == 1 ? "\"crc32\"" : "\"none\"");
		key(o, "flavor");
		th_buf_puts(o, f->flavor == TH_BINLOG_FLAVOR_MARIADB ? "\"mariadb\"" : "\"mysql\"");
		if (ev->flags & TH_BINLOG_F_IN_USE)
			kv_b(o, "in_use", true);
		break;
	}
	case TH_EVK_ROTATE:
		key(o, "next_file");
		text(o, ev->u.rotate.name, ev->u.rotate.name_len);
		kv_u(o, "position", ev->u.rotate.position);
		if (ev->u.rotate.fake)
			kv_b(o, "fake", true);
		break;
	case TH_EVK_QUERY: {
		const struct th_ev_query *q = &ev->u.query;
		key(o, "db");
		text(o, q->db, q->db_len);
		key(o, "query");
		text(o, q->query, q->query_len);
		kv_u(o, "thread_id", q->thread_id);
		kv_u(o, "exec_time", q->exec_time);
		kv_u(o, "error_code", q->error_code);
		if (q->compressed)
			kv_b(o, "compressed", true);
		break;
	}
	case TH_EVK_GTID:
	case TH_EVK_ANONYMOUS_GTID: {
		const struct th_ev_gtid *gt = &ev->u.gtid;
		if (ev->kind == TH_EVK_GTID) {
			th_binlog_gtid_format(gt, g, sizeof g);
			key(o, "gtid");
			th_buf_json_string(o, g, strlen(g));
		}
		if (gt->mariadb) {
			kv_u(o, "domain_id", gt->domain_id);
			kv_u(o, "seq_no", gt->seq_no);
			kv_u(o, "flags2", gt->flags2);
			kv_b(o, "standalone", gt->flags2 & TH_MARIA_GTID_STANDALONE);
			if (gt->flags2 & TH_MARIA_GTID_COMMIT_ID)
				kv_u(o, "commit_id", gt->commit_id);
			if (gt->flags2 & TH_MARIA_GTID_DDL)
				kv_b(o, "ddl", true);
			if (gt->flags2 & (TH_MARIA_GTID_PREPARED_XA | TH_MARIA_GTID_COMPLETED_XA))
				kv_i(o, "xa_format_id", gt->xid.format_id);
			break;
		}
		if (gt->has_logical_clock) {
			kv_i(o, "last_committed", gt->last_committed);
			kv_i(o, "sequence_number", gt->sequence_number);
		}
		if (gt->has_commit_ts) {
			kv_u(o, "immediate_commit_timestamp", gt->immediate_commit_us);
			kv_u(o, "original_commit_timestamp", gt->original_commit_us);
		}
		if (gt->has_transaction_length)
			kv_u(o, "transaction_length", gt->transaction_length);
		if (gt->has_server_version) {
			kv_u(o, "immediate_server_version", gt->immediate_server_version);
			kv_u(o, "original_server_version", gt->original_server_version);
		}
		break;
	}
	case TH_EVK_PREVIOUS_GTIDS:
		key(o, "gtid_set");
		prev_gtids(o, &ev->u.prev_gtids);
		break;
	case TH_EVK_GTID_LIST: {
		key(o, "gtid_list");
		th_buf_putc(o, '[');
		const uint8_t *p = ev->u.gtid_list.data;
		for (uint32_t i = 0; i < ev->u.gtid_list.count; i++, p += 16) {
			uint32_t d = (uint32_t)(th_le64(p) & 0xffffffffu), s = (uint32_t)(th_le64(p) >> 32);
			th_buf_printf(o, "%s\"%u-%u-%llu\"", i ? "," : "", d, s, (unsigned long long)th_le64(p + 8));
		}
		th_buf_putc(o, ']');
		break;
	}
	case TH_EVK_XID:
		kv_u(o, "xid", ev->u.xid.xid);
		break;
	case TH_EVK_TABLE_MAP: {
		const struct th_table_map *tm = ev->u.table_map.tm;
		kv_u(o, "table_id", tm->table_id);
		key(o, "db");
		text(o, tm->schema, strlen(tm->schema));
		key(o, "table");
		text(o, tm->table, strlen(tm->table));
		key(o, "columns");
		th_buf_putc(o, '[');
		for (uint32_t i = 0; i < tm->ncols; i++) {
			const struct th_column *c = &tm->cols[i];
			th_buf_printf(o, "%s{\"type\":%u,\"meta\":%u,\"nullable\":%s", i ? "," : "", c->type,
				      c->meta, c->nullable ? "true" : "false");
			if (c->name) {
				key(o, "name");
				text(o, c->name, c->name_len);
			}
			if (c->is_unsigned)
				kv_b(o, "unsigned", true);
			if (c->charset)
				kv_u(o, "charset", c->charset);
			if (c->nstrs)
				kv_u(o, "nstrs", c->nstrs);
			th_buf_putc(o, '}');
		}
		th_buf_putc(o, ']');
		break;
	}
	case TH_EVK_WRITE_ROWS:
	case TH_EVK_UPDATE_ROWS:
	case TH_EVK_DELETE_ROWS:
	case TH_EVK_PARTIAL_UPDATE_ROWS:
		rc = rows(o, ev);
		break;
	case TH_EVK_HEARTBEAT:
		key(o, "log_name");
		text(o, ev->u.heartbeat.log_name, ev->u.heartbeat.log_name_len);
		kv_u(o, "log_position", ev->u.heartbeat.log_pos);
		kv_u(o, "version", ev->u.heartbeat.version);
		break;
	case TH_EVK_TRANSACTION_PAYLOAD:
		key(o, "compression");
		th_buf_puts(o, ev->u.payload.compression == 0 ? "\"zstd\"" : "\"none\"");
		kv_u(o, "compressed_size", ev->u.payload.len);
		kv_u(o, "uncompressed_size", ev->u.payload.uncompressed_size);
		break;
	case TH_EVK_BINLOG_CHECKPOINT:
		key(o, "file");
		text(o, ev->u.text.text, ev->u.text.len);
		break;
	case TH_EVK_ANNOTATE_ROWS:
	case TH_EVK_ROWS_QUERY:
		key(o, "query");
		text(o, ev->u.text.text, ev->u.text.len);
		break;
	case TH_EVK_INCIDENT:
		kv_u(o, "incident", ev->u.text.incident);
		key(o, "message");
		text(o, ev->u.text.text, ev->u.text.len);
		break;
	case TH_EVK_INTVAR:
		kv_u(o, "intvar_type", ev->u.intvar.type);
		kv_u(o, "value", ev->u.intvar.value);
		break;
	case TH_EVK_RAND:
		kv_u(o, "seed1", ev->u.rand.seed1);
		kv_u(o, "seed2", ev->u.rand.seed2);
		break;
	case TH_EVK_XA_PREPARE:
		kv_b(o, "one_phase", ev->u.xa_prepare.one_phase);
		kv_i(o, "xa_format_id", ev->u.xa_prepare.xid.format_id);
		break;
	default:
		break;
	}
	th_buf_putc(o, '}');
	return th_buf_failed(o) ? -ENOMEM : rc;
}
