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
#include "protocol/metrics.h"
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
			if (th_json_field(json, end, status_fields[i], v, sizeof v))
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

static void print_reader(const char *b, const char *e, void *arg)
{
	(void)arg;
	char id[32], pid[32], uid[32], name[64], lagb[32], lagns[32], tmo[32], ev[32], evicted[16];
	th_json_field(b, e, "id", id, sizeof id);
	th_json_field(b, e, "pid", pid, sizeof pid);
	th_json_field(b, e, "uid", uid, sizeof uid);
	th_json_field(b, e, "name", name, sizeof name);
	th_json_field(b, e, "lag_bytes", lagb, sizeof lagb);
	th_json_field(b, e, "lag_ns", lagns, sizeof lagns);
	th_json_field(b, e, "timeout_ns", tmo, sizeof tmo);
	th_json_field(b, e, "evictions", ev, sizeof ev);
	th_json_field(b, e, "evicted", evicted, sizeof evicted);
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
		th_json_each_reader(json, print_reader, NULL);
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
		th_json_field(p, e, "name", name, sizeof name);
		th_json_field(p, e, "index", idx, sizeof idx);
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
int ctl_cmd_metrics(const struct ctl_options *opt, int argc, char **argv)
{
	(void)opt, (void)argc, (void)argv;
	char *stats, *readers;
	/* A hub that does not answer is a sample too: topohub_up 0 (and exit 1),
	 * for a collector that writes the output to a file (README, Installing). */
	stats = readers = NULL;
	if (hub_json(opt, TH_MSG_STATS, &stats) || hub_json(opt, TH_MSG_READERS, &readers)) {
		free(stats);
		fputs(TH_METRICS_DOWN, stdout);
		return 1;
	}
	struct th_buf out = TH_BUF_INIT;
	th_metrics_text(stats, readers, &out);
	fwrite(out.data ? out.data : "", 1, out.len, stdout);
	th_buf_free(&out);
	free(stats);
	free(readers);
	return 0;
}
