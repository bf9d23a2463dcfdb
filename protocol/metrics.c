/* SPDX-License-Identifier: Apache-2.0 */
/* STATS and READERS as Prometheus text; see metrics.h. */
#include "protocol/metrics.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/th_buf.h"

/* A tiny reader for the hub's own flat JSON: the value after "key": in
 * [p, end). Numbers as text; strings without their quotes (escapes kept). */
bool th_json_field(const char *p, const char *end, const char *key, char *out, size_t out_len)
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


/* Calls fn for each object of the "readers" array. */
void th_json_each_reader(const char *json, void (*fn)(const char *b, const char *e, void *arg), void *arg)
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
	{ "snapshots_held", "topohub_snapshots_held", "gauge", 0,
	  "Snapshot memfds the hub holds to take their memory back." },
	{ "snapshot_bytes_held", "topohub_snapshot_held_bytes", "gauge", 0,
	  "Memory of the snapshot memfds the hub holds (whole pages)." },
	{ "snapshots_reclaimed", "topohub_snapshots_reclaimed_total", "counter", 0,
	  "Snapshots taken back before snapshot_hold_ms: their uid held more than its bound." },
	{ "ring_capacity", "topohub_ring_capacity_bytes", "gauge", 0, "Size of the ring." },
	{ "wake_delay_ns", "topohub_wake_delay_seconds", "gauge", 1e-9,
	  "Wake-up moderation: how long a busy subscriber naps to take several commits per wake-up (0: none)." },
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
	th_json_field(b, e, "sum_ns", sum, sizeof sum);
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
	th_json_field(b, e, "pid", pid, sizeof pid);
	th_json_field(b, e, "name", name, sizeof name);
	th_json_field(b, e, f->field, v, sizeof v);
	th_buf_printf(f->out, "%s{", f->name);
	label(f->out, "pid", pid, true);
	label(f->out, "name", name, false);
	th_buf_puts(f->out, "} ");
	value(f->out, v, f->scale);
	th_buf_putc(f->out, '\n');
}

void th_metrics_text(const char *stats, const char *readers, struct th_buf *out)
{
	const char *end = stats + strlen(stats);
	family(out, "topohub_up", "gauge", "1 when the hub answered.");
	th_buf_puts(out, "topohub_up 1\n");
	for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
		char v[256];
		if (!th_json_field(stats, end, metrics[i].field, v, sizeof v))
			continue;
		family(out, metrics[i].name, metrics[i].type, metrics[i].help);
		th_buf_printf(out, "%s ", metrics[i].name);
		value(out, v, metrics[i].scale);
		th_buf_putc(out, '\n');
	}
	histogram(out, stats, end, "publish_latency", "topohub_publish_latency_seconds",
		  "From reading a transaction's commit event to its publication in the ring.");
	histogram(out, stats, end, "reader_lag", "topohub_reader_lag_sampled_seconds",
		  "Every attached reader's lag (age of its oldest unread record, 0 when caught up), sampled every 100 ms.");
	char head[32] = "", oldest[32] = "";
	if (th_json_field(stats, end, "ring_head", head, sizeof head) &&
	    th_json_field(stats, end, "ring_oldest", oldest, sizeof oldest)) {
		uint64_t h = strtoull(head, NULL, 10), o = strtoull(oldest, NULL, 10);
		family(out, "topohub_ring_retained_bytes", "gauge", "Bytes of records still in the ring (head - oldest).");
		th_buf_printf(out, "topohub_ring_retained_bytes %" PRIu64 "\n", h > o ? h - o : 0);
	}
	char file[256] = "", pos[32] = "0", src[256] = "", flavor[32] = "", version[128] = "";
	th_json_field(stats, end, "binlog_file", file, sizeof file);
	th_json_field(stats, end, "binlog_pos", pos, sizeof pos);
	th_json_field(stats, end, "source", src, sizeof src);
	th_json_field(stats, end, "flavor", flavor, sizeof flavor);
	th_json_field(stats, end, "server_version", version, sizeof version);
	family(out, "topohub_source_info", "gauge", "The source streamed from (labels: source, flavor, server_version).");
	th_buf_puts(out, "topohub_source_info{");
	label(out, "source", src, true);
	label(out, "flavor", flavor, false);
	label(out, "server_version", version, false);
	th_buf_puts(out, "} 1\n");
	/* The position as a labelled family: rules compare it per source. */
	family(out, "topohub_binlog_position_bytes", "gauge",
	       "Binlog file offset after the last transaction read (labels: source, file).");
	th_buf_puts(out, "topohub_binlog_position_bytes{");
	label(out, "source", src, true);
	label(out, "file", file, false);
	th_buf_printf(out, "} %s\n", pos);
	for (size_t i = 0; i < sizeof reader_families / sizeof reader_families[0]; i++) {
		struct reader_family f = reader_families[i];
		f.out = out;
		family(out, f.name, f.type, f.help);
		th_json_each_reader(readers, metric_reader, &f);
	}
}
