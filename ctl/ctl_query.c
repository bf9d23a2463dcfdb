/* SPDX-License-Identifier: Apache-2.0 */
/* topohubctl's questions to the hub: status, readers, tables, get, list,
 * sync, metrics; see ctl.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/th_buf.h"
#include "common/th_bytes.h"
#include "common/th_error.h"
#include "ctl/ctl.h"
#include "protocol/protocol.h"

struct th_ctl *ctl_connect(const struct ctl_options *opt)
{
	struct th_ctl *c;
	int rc = th_ctl_connect(opt->socket, &c);
	if (rc < 0) {
		fprintf(stderr, "topohubctl: %s: %s\n", opt->socket, th_strerror(rc));
		return NULL;
	}
	return c;
}

static int hub_json(const struct ctl_options *opt, uint16_t type, char **json)
{
	struct th_ctl *c = ctl_connect(opt);
	if (!c)
		return 1;
	int rc = th_ctl_json(c, type, json);
	if (rc < 0)
		fprintf(stderr, "topohubctl: %s: %s\n", th_strerror(rc), th_ctl_error(c));
	th_ctl_close(c);
	return rc < 0 ? 1 : 0;
}

/* A tiny reader for the hub's own flat JSON: the value after "key": in
 * [p, end). Numbers as text; strings without their quotes (escapes kept). */
static bool json_field(const char *p, const char *end, const char *key, char *out, size_t out_len)
{
	char pat[80];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	size_t pl = strlen(pat);
	for (const char *q = p; q + pl <= end; q++) {
		if (memcmp(q, pat, pl))
			continue;
		q += pl;
		size_t n = 0;
		if (*q == '"') {
			q++;
			while (q < end && *q != '"' && n + 1 < out_len) {
				if (*q == '\\' && q + 1 < end)
					out[n++] = *q++;
				out[n++] = *q++;
			}
		} else {
			while (q < end && *q != ',' && *q != '}' && *q != ']' && n + 1 < out_len)
				out[n++] = *q++;
		}
		out[n] = '\0';
		return true;
	}
	return false;
}

static const char *status_fields[] = {
	"pid", "uptime_s", "generation", "revision", "source", "connected", "flavor", "server_version", "gtid",
	"binlog_file", "binlog_pos", "transactions", "transactions_seen", "changes", "records", "bytes",
	"reconnects", "reloads", "resyncs", "too_big", "readers", "evictions", "max_lag_ns", "entries",
	"clients", "refused", "bad_messages", "last_error",
};

int ctl_cmd_status(const struct ctl_options *opt, int argc, char **argv)
{
	(void)opt, (void)argc, (void)argv;
	char *json;
	if (hub_json(opt, TH_MSG_STATS, &json))
		return 1;
	if (opt->json) {
		printf("%s\n", json);
	} else {
		const char *end = json + strlen(json);
		for (size_t i = 0; i < sizeof status_fields / sizeof status_fields[0]; i++) {
			char v[4096];
			if (json_field(json, end, status_fields[i], v, sizeof v))
				printf("%-18s %s\n", status_fields[i], v);
		}
	}
	free(json);
	return 0;
}

int ctl_cmd_tables(const struct ctl_options *opt, int argc, char **argv)
{
	(void)opt, (void)argc, (void)argv;
	char *json;
	if (hub_json(opt, TH_MSG_TABLES, &json))
		return 1;
	printf("%s\n", json);
	free(json);
	return 0;
}

/* Calls fn for each object of the "readers" array. */
static void each_reader(const char *json, void (*fn)(const char *b, const char *e, void *arg), void *arg)
{
	const char *p = strstr(json, "\"readers\":[");
	if (!p)
		return;
	p += 11;
	while (*p == '{' || *p == ',') {
		if (*p == ',') {
			p++;
			continue;
		}
		const char *e = strchr(p, '}');
		if (!e)
			return;
		fn(p, e, arg);
		p = e + 1;
	}
}

static void print_reader(const char *b, const char *e, void *arg)
{
	(void)arg;
	char id[32], pid[32], uid[32], name[64], lagb[32], lagns[32], tmo[32], ev[32], evicted[16];
	json_field(b, e, "id", id, sizeof id);
	json_field(b, e, "pid", pid, sizeof pid);
	json_field(b, e, "uid", uid, sizeof uid);
	json_field(b, e, "name", name, sizeof name);
	json_field(b, e, "lag_bytes", lagb, sizeof lagb);
	json_field(b, e, "lag_ns", lagns, sizeof lagns);
	json_field(b, e, "timeout_ns", tmo, sizeof tmo);
	json_field(b, e, "evictions", ev, sizeof ev);
	json_field(b, e, "evicted", evicted, sizeof evicted);
	printf("%-6s %-8s %-6s %-16s %12s %10.3f %10.1f %9s %s\n", id, pid, uid, name, lagb,
	       strtod(lagns, NULL) / 1e6, strtod(tmo, NULL) / 1e6, ev, !strcmp(evicted, "true") ? "evicted" : "");
}

int ctl_cmd_readers(const struct ctl_options *opt, int argc, char **argv)
{
	(void)opt, (void)argc, (void)argv;
	char *json;
	if (hub_json(opt, TH_MSG_READERS, &json))
		return 1;
	if (opt->json) {
		printf("%s\n", json);
	} else {
		printf("%-6s %-8s %-6s %-16s %12s %10s %10s %9s\n", "id", "pid", "uid", "name", "lag_bytes", "lag_ms",
		       "timeout_ms", "evictions");
		each_reader(json, print_reader, NULL);
	}
	free(json);
	return 0;
}

int ctl_table_index(const struct ctl_options *opt, struct th_ctl *c, uint32_t *index, int *nvalues)
{
	char *json;
	int rc = th_ctl_json(c, TH_MSG_TABLES, &json);
	if (rc < 0) {
		fprintf(stderr, "topohubctl: TABLES: %s\n", th_strerror(rc));
		return -1;
	}
	char *endp;
	unsigned long want = strtoul(opt->table, &endp, 10);
	bool by_index = *opt->table && !*endp;
	int found = -1;
	const char *p = json;
	for (int i = 0; (p = strstr(p, "{\"index\":")) != NULL; i++) {
		const char *e = strstr(p, "]");
		e = e ? strchr(e, '}') : NULL;
		if (!e)
			break;
		char name[256], idx[16];
		json_field(p, e, "name", name, sizeof name);
		json_field(p, e, "index", idx, sizeof idx);
		if ((by_index && strtoul(idx, NULL, 10) == want) || (!by_index && !strcmp(name, opt->table))) {
			found = (int)strtoul(idx, NULL, 10);
			const char *v = strstr(p, "\"value\":[");
			*nvalues = 0;
			for (const char *q = v ? v + 9 : e; q < e && *q != ']'; q++)
				if (*q == '"')
					(*nvalues)++;
			*nvalues /= 2;
			break;
		}
		p = e;
	}
	free(json);
	if (found < 0) {
		fprintf(stderr, "topohubctl: no table '%s' (see topohubctl tables)\n", opt->table);
		return -1;
	}
	*index = (uint32_t)found;
	return 0;
}

/* Writes a value: text when it is valid UTF-8 without control bytes, else base64. */
static void put_value(struct th_buf *b, const uint8_t *v, size_t n, bool json)
{
	bool text = th_utf8_valid(v, n);
	for (size_t i = 0; text && i < n; i++)
		if (v[i] < 0x20 && v[i] != '\n' && v[i] != '\t')
			text = false;
	if (json) {
		if (text) {
			th_buf_json_string(b, v, n);
		} else {
			th_buf_puts(b, "{\"base64\":\"");
			th_buf_base64(b, v, n);
			th_buf_puts(b, "\"}");
		}
	} else if (text) {
		th_buf_append(b, v, n);
	} else {
		th_buf_puts(b, "base64:");
		th_buf_base64(b, v, n);
	}
}

/* A value of a table with several value columns: u32 length (0xffffffff NULL) + bytes each. */
static void put_columns(struct th_buf *b, const uint8_t *v, size_t n, bool json)
{
	size_t off = 0;
	th_buf_puts(b, json ? "[" : "");
	for (int i = 0; off + 4 <= n; i++) {
		uint32_t l = th_le32(v + off);
		off += 4;
		if (i)
			th_buf_puts(b, json ? "," : " | ");
		if (l == 0xffffffffu) {
			th_buf_puts(b, json ? "null" : "NULL");
			continue;
		}
		if (l > n - off)
			break;
		put_value(b, v + off, l, json);
		off += l;
	}
	th_buf_puts(b, json ? "]" : "");
}

static void put_entry(const struct ctl_options *opt, struct th_buf *b, const struct th_snap_entry *e, const uint8_t *k, const uint8_t *v,
		      int nvalues, bool first)
{
	bool null = e->flags & TH_CHANGE_F_VALUE_NULL;
	if (opt->json) {
		th_buf_puts(b, first ? "" : ",");
		th_buf_puts(b, "{\"key\":");
		put_value(b, k, e->key_len, true);
		th_buf_printf(b, ",\"revision\":%" PRIu64 ",\"version\":%" PRId64 ",\"value\":", e->revision, e->version);
		if (null)
			th_buf_puts(b, "null");
		else if (nvalues > 1)
			put_columns(b, v, e->value_len, true);
		else
			put_value(b, v, e->value_len, true);
		th_buf_putc(b, '}');
	} else {
		put_value(b, k, e->key_len, false);
		th_buf_printf(b, "\trevision=%" PRIu64 "\tversion=%" PRId64 "\t", e->revision, e->version);
		if (null)
			th_buf_puts(b, "NULL");
		else if (nvalues > 1)
			put_columns(b, v, e->value_len, false);
		else
			put_value(b, v, e->value_len, false);
		th_buf_putc(b, '\n');
	}
}

static int snapshot_cmd(const struct ctl_options *opt, uint16_t type, const char *key)
{
	struct th_ctl *c = ctl_connect(opt);
	if (!c)
		return 1;
	uint32_t table;
	int nvalues = 1;
	if (ctl_table_index(opt, c, &table, &nvalues) < 0) {
		th_ctl_close(c);
		return 1;
	}
	struct th_ctl_snapshot s;
	int rc = th_ctl_snapshot(c, type, table, key, (uint32_t)strlen(key), &s, 30000);
	if (rc < 0) {
		fprintf(stderr, "topohubctl: %s: %s\n", th_strerror(rc), th_ctl_error(c));
		th_ctl_close(c);
		return 1;
	}
	th_ctl_close(c);
	struct th_buf out = TH_BUF_INIT;
	if (opt->json)
		th_buf_printf(&out, "{\"revision\":%" PRIu64 ",\"entries\":[", s.reply.revision);
	struct th_snap_iter it = th_ctl_snapshot_iter(&s);
	struct th_snap_entry e;
	const uint8_t *k, *v;
	uint64_t n = 0;
	while ((rc = th_snap_next(&it, &e, &k, &v)) == 1)
		put_entry(opt, &out, &e, k, v, nvalues, n++ == 0);
	if (opt->json)
		th_buf_puts(&out, "]}\n");
	th_ctl_snapshot_free(&s);
	fwrite(out.data ? out.data : "", 1, out.len, stdout);
	th_buf_free(&out);
	if (rc < 0) {
		fprintf(stderr, "topohubctl: malformed snapshot\n");
		return 1;
	}
	if (type == TH_MSG_GET && n == 0) {
		fprintf(stderr, "topohubctl: %s: not found\n", key);
		return 1;
	}
	return 0;
}

int ctl_cmd_get(const struct ctl_options *opt, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: topohubctl [--table T] get KEY\n");
		return 2;
	}
	return snapshot_cmd(opt, TH_MSG_GET, argv[1]);
}

int ctl_cmd_list(const struct ctl_options *opt, int argc, char **argv)
{
	if (argc > 2) {
		fprintf(stderr, "usage: topohubctl [--table T] list [PREFIX]\n");
		return 2;
	}
	return snapshot_cmd(opt, TH_MSG_SNAPSHOT, argc == 2 ? argv[1] : "");
}

int ctl_cmd_sync(const struct ctl_options *opt, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: topohubctl [--timeout MS] sync GTIDSET\n");
		return 2;
	}
	struct th_ctl *c = ctl_connect(opt);
	if (!c)
		return 1;
	uint64_t rev;
	int rc = th_ctl_sync(c, argv[1], (uint64_t)opt->timeout_ms * 1000000u, &rev);
	if (rc < 0)
		fprintf(stderr, "topohubctl: sync: %s: %s\n", th_strerror(rc), th_ctl_error(c));
	else if (opt->json)
		printf("{\"revision\":%" PRIu64 "}\n", rev);
	else
		printf("%" PRIu64 "\n", rev);
	th_ctl_close(c);
	return rc < 0 ? 1 : 0;
}

/* `topohubctl metrics`: the Prometheus text format (version 0.0.4), checked
 * by `promtool check metrics` (scripts/check-monitoring.sh). Each family
 * once, its HELP and TYPE first and all its samples together; base units
 * (seconds, bytes) in the name, `_total` on counters. The names are listed
 * in the README; doc/monitoring/ has the alerts and the dashboard on them. */
struct metric {
	const char *field; /* in STATS */
	const char *name;
	const char *type;
	double scale; /* 0: the value as the hub wrote it */
	const char *help;
};

static const struct metric metrics[] = {
	{ "revision", "topohub_revision", "gauge", 0, "Last published revision." },
	{ "generation", "topohub_ring_generation", "gauge", 0, "Ring generation (changes when the hub restarts)." },
	{ "transactions", "topohub_transactions_published_total", "counter", 0,
	  "Transactions with watched changes published." },
	{ "transactions_seen", "topohub_transactions_seen_total", "counter", 0, "Transactions read from the binlog." },
	{ "changes", "topohub_changes_published_total", "counter", 0, "Row changes published." },
	{ "records", "topohub_records_published_total", "counter", 0, "Ring records published." },
	{ "bytes", "topohub_published_bytes_total", "counter", 0, "Ring payload bytes published." },
	{ "events", "topohub_binlog_events_total", "counter", 0, "Binlog events received." },
	{ "readers", "topohub_readers", "gauge", 0, "Attached readers." },
	{ "attaches", "topohub_attaches_total", "counter", 0, "Reader attachments accepted." },
	{ "evictions", "topohub_evictions_total", "counter", 0, "Readers evicted as slow consumers." },
	{ "max_lag_ns", "topohub_reader_max_lag_seconds", "gauge", 1e-9,
	  "Age of the oldest unread record over all readers." },
	{ "max_lag_bytes", "topohub_reader_max_lag_bytes", "gauge", 0, "Largest reader lag in bytes." },
	{ "reconnects", "topohub_reconnects_total", "counter", 0, "Reconnections to a MySQL source." },
	{ "reloads", "topohub_reloads_total", "counter", 0, "Consistent table loads (the first, then one per resync)." },
	{ "resyncs", "topohub_resyncs_total", "counter", 0, "Resync records published." },
	{ "too_big", "topohub_too_big_total", "counter", 0, "Transactions too large for the ring." },
	{ "entries", "topohub_state_entries", "gauge", 0, "Rows in the hub's state table." },
	{ "ntables", "topohub_tables", "gauge", 0, "Tables the hub follows." },
	{ "clients", "topohub_control_clients", "gauge", 0, "Open control connections." },
	{ "refused", "topohub_control_refused_total", "counter", 0, "Control connections refused by credentials." },
	{ "bad_messages", "topohub_control_bad_messages_total", "counter", 0, "Malformed control messages." },
	{ "ring_capacity", "topohub_ring_capacity_bytes", "gauge", 0, "Size of the ring." },
	{ "connected", "topohub_source_connected", "gauge", 0, "1 while streaming from a source." },
	{ "last_commit_us", "topohub_last_commit_timestamp_seconds", "gauge", 1e-6,
	  "Server commit time of the last transaction read (0: none yet)." },
	{ "last_publish_ns", "topohub_last_publish_timestamp_seconds", "gauge", 1e-9,
	  "Time of the last ring publication (0: none yet)." },
	{ "uptime_s", "topohub_uptime_seconds", "gauge", 0, "Seconds since the hub started." },
	{ "config_reloads", "topohub_config_reloads_total", "counter", 0, "SIGHUP reloads that applied a change." },
};

static void family(struct th_buf *out, const char *name, const char *type, const char *help)
{
	th_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as json_field returns it (JSON escapes kept): \" and \\ are
 * Prometheus escapes too; any other escape or control byte becomes '_'. */
static void label(struct th_buf *out, const char *name, const char *v, bool first)
{
	th_buf_printf(out, "%s%s=\"", first ? "" : ",", name);
	for (const char *p = v; *p; p++) {
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
			th_buf_putc(out, '\\');
			th_buf_putc(out, *++p);
		} else if (*p == '\\' && p[1]) {
			th_buf_putc(out, '_');
			p++;
		} else {
			th_buf_putc(out, (unsigned char)*p < 0x20 ? '_' : *p);
		}
	}
	th_buf_putc(out, '"');
}

/* The per-reader families: one pass over the readers for each, so that the
 * samples of a family stay together. */
struct reader_family {
	const char *field;
	const char *name;
	const char *type;
	double scale;
	const char *help;
	struct th_buf *out;
};

static const struct reader_family reader_families[] = {
	{ "lag_bytes", "topohub_reader_lag_bytes", "gauge", 0, "Per reader: bytes behind the ring head.", NULL },
	{ "lag_ns", "topohub_reader_lag_seconds", "gauge", 1e-9, "Per reader: age of its oldest unread record.", NULL },
	{ "timeout_ns", "topohub_reader_timeout_seconds", "gauge", 1e-9,
	  "Per reader: lag after which the hub evicts it.", NULL },
	{ "evictions", "topohub_reader_evictions_total", "counter", 0, "Per reader: times evicted.", NULL },
	{ "evicted", "topohub_reader_evicted", "gauge", 0, "Per reader: 1 while evicted (it must resync).", NULL },
};

static void value(struct th_buf *out, const char *v, double scale)
{
	if (!strcmp(v, "true") || !strcmp(v, "false"))
		th_buf_puts(out, v[0] == 't' ? "1" : "0");
	else if (scale)
		th_buf_printf(out, "%.15g", strtod(v, NULL) * scale);
	else
		th_buf_puts(out, *v ? v : "0");
}

/* The numbers of "key":[n,n,...] in [b, e): how many (0 if none or bad). */
static size_t u64_array(const char *b, const char *e, const char *key, uint64_t *out, size_t max)
{
	char pat[64];
	int pl = snprintf(pat, sizeof pat, "\"%s\":[", key);
	const char *q = memmem(b, (size_t)(e - b), pat, (size_t)pl);
	if (!q)
		return 0;
	q += pl;
	size_t n = 0;
	while (q < e && *q != ']') {
		char *next;
		if (n == max)
			return 0;
		out[n++] = strtoull(q, &next, 10);
		if (next == q)
			return 0;
		q = *next == ',' ? next + 1 : next;
	}
	return n;
}

/* A STATS histogram ("field":{"le_ns":[...],"buckets":[...],"sum_ns":N},
 * counts per bucket) as a Prometheus histogram: cumulative, in seconds. */
static void histogram(struct th_buf *out, const char *stats, const char *end, const char *field, const char *name,
		      const char *help)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":{", field);
	const char *b = strstr(stats, pat);
	const char *e = b ? memchr(b, '}', (size_t)(end - b)) : NULL;
	uint64_t le[64], n[65];
	size_t nle = e ? u64_array(b, e, "le_ns", le, 64) : 0;
	if (!nle || u64_array(b, e, "buckets", n, 65) != nle + 1)
		return; /* an older hub: no family rather than a wrong one */
	char sum[32] = "0";
	json_field(b, e, "sum_ns", sum, sizeof sum);
	family(out, name, "histogram", help);
	uint64_t acc = 0;
	for (size_t i = 0; i < nle; i++) {
		acc += n[i];
		th_buf_printf(out, "%s_bucket{le=\"%.9g\"} %" PRIu64 "\n", name, (double)le[i] * 1e-9, acc);
	}
	acc += n[nle];
	th_buf_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.15g\n%s_count %" PRIu64 "\n", name, acc, name,
		      strtod(sum, NULL) * 1e-9, name, acc);
}

static void metric_reader(const char *b, const char *e, void *arg)
{
	const struct reader_family *f = arg;
	char pid[32] = "", name[64] = "", v[32] = "0";
	json_field(b, e, "pid", pid, sizeof pid);
	json_field(b, e, "name", name, sizeof name);
	json_field(b, e, f->field, v, sizeof v);
	th_buf_printf(f->out, "%s{", f->name);
	label(f->out, "pid", pid, true);
	label(f->out, "name", name, false);
	th_buf_puts(f->out, "} ");
	value(f->out, v, f->scale);
	th_buf_putc(f->out, '\n');
}

int ctl_cmd_metrics(const struct ctl_options *opt, int argc, char **argv)
{
	(void)opt, (void)argc, (void)argv;
	char *stats, *readers;
	/* A hub that does not answer is a sample too: topohub_up 0 (and exit 1),
	 * for a collector that writes the output to a file (README, Installing). */
	stats = readers = NULL;
	if (hub_json(opt, TH_MSG_STATS, &stats) || hub_json(opt, TH_MSG_READERS, &readers)) {
		free(stats);
		printf("# HELP topohub_up 1 when the hub answered topohubctl.\n# TYPE topohub_up gauge\ntopohub_up 0\n");
		return 1;
	}
	const char *end = stats + strlen(stats);
	struct th_buf out = TH_BUF_INIT;
	family(&out, "topohub_up", "gauge", "1 when the hub answered topohubctl.");
	th_buf_puts(&out, "topohub_up 1\n");
	for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
		char v[256];
		if (!json_field(stats, end, metrics[i].field, v, sizeof v))
			continue;
		family(&out, metrics[i].name, metrics[i].type, metrics[i].help);
		th_buf_printf(&out, "%s ", metrics[i].name);
		value(&out, v, metrics[i].scale);
		th_buf_putc(&out, '\n');
	}
	histogram(&out, stats, end, "publish_latency", "topohub_publish_latency_seconds",
		  "From reading a transaction's commit event to its publication in the ring.");
	histogram(&out, stats, end, "reader_lag", "topohub_reader_lag_sampled_seconds",
		  "Every attached reader's lag (age of its oldest unread record, 0 when caught up), sampled every 100 ms.");
	char head[32] = "", oldest[32] = "";
	if (json_field(stats, end, "ring_head", head, sizeof head) &&
	    json_field(stats, end, "ring_oldest", oldest, sizeof oldest)) {
		uint64_t h = strtoull(head, NULL, 10), o = strtoull(oldest, NULL, 10);
		family(&out, "topohub_ring_retained_bytes", "gauge", "Bytes of records still in the ring (head - oldest).");
		th_buf_printf(&out, "topohub_ring_retained_bytes %" PRIu64 "\n", h > o ? h - o : 0);
	}
	char file[256] = "", pos[32] = "0", src[256] = "", flavor[32] = "", version[128] = "";
	json_field(stats, end, "binlog_file", file, sizeof file);
	json_field(stats, end, "binlog_pos", pos, sizeof pos);
	json_field(stats, end, "source", src, sizeof src);
	json_field(stats, end, "flavor", flavor, sizeof flavor);
	json_field(stats, end, "server_version", version, sizeof version);
	family(&out, "topohub_source_info", "gauge", "The source streamed from (labels: source, flavor, server_version).");
	th_buf_puts(&out, "topohub_source_info{");
	label(&out, "source", src, true);
	label(&out, "flavor", flavor, false);
	label(&out, "server_version", version, false);
	th_buf_puts(&out, "} 1\n");
	/* The position as a labelled family: rules compare it per source. */
	family(&out, "topohub_binlog_position_bytes", "gauge",
	       "Binlog file offset after the last transaction read (labels: source, file).");
	th_buf_puts(&out, "topohub_binlog_position_bytes{");
	label(&out, "source", src, true);
	label(&out, "file", file, false);
	th_buf_printf(&out, "} %s\n", pos);
	for (size_t i = 0; i < sizeof reader_families / sizeof reader_families[0]; i++) {
		struct reader_family f = reader_families[i];
		f.out = &out;
		family(&out, f.name, f.type, f.help);
		each_reader(readers, metric_reader, &f);
	}
	fwrite(out.data ? out.data : "", 1, out.len, stdout);
	th_buf_free(&out);
	free(stats);
	free(readers);
	return 0;
}
