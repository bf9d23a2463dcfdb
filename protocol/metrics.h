/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h: the hub's STATS and READERS replies (flat JSON, protocol.h) as
 * the Prometheus text format, version 0.0.4: what `topohubctl metrics`
 * prints and the hub's optional loopback HTTP endpoint (metrics_listen)
 * serves, from one implementation. Checked by `promtool check metrics`
 * (scripts/check-monitoring.sh, tests/test_hub.c). Each family once, its
 * HELP and TYPE first and all its samples together; base units (seconds,
 * bytes) in the name, `_total` on counters. The names are listed in the
 * README; doc/monitoring/ has the alerts and the dashboard on them.
 *
 * Threads: none of its own; pure functions of their arguments.
 */
#ifndef TH_PROTOCOL_METRICS_H
#define TH_PROTOCOL_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct th_buf;

/* The value after "key": in [p, end) of the hub's own flat JSON: numbers as
 * text, strings without their quotes (escapes kept). False when absent. */
bool th_json_field(const char *p, const char *end, const char *key, char *out, size_t out_len);

/* Calls fn for each object [b, e) of the "readers" array of json. */
void th_json_each_reader(const char *json, void (*fn)(const char *b, const char *e, void *arg), void *arg);

/* Appends to out the families of a hub that answered: topohub_up 1, then
 * everything STATS (stats) and READERS (readers) hold. */
void th_metrics_text(const char *stats, const char *readers, struct th_buf *out);

/* What a scrape of a hub that does not answer gets. */
#define TH_METRICS_DOWN "# HELP topohub_up 1 when the hub answered.\n# TYPE topohub_up gauge\ntopohub_up 0\n"

#endif
