/* SPDX-License-Identifier: Apache-2.0 */
/* Fixed-bound latency histograms for STATS and `topohubctl metrics`; see
 * struct th__hub_hist in hub_internal.h. */
#include <inttypes.h>

#include "hub/hub_internal.h"

/* Upper bounds, 10 us to 10 s: a ring read is microseconds, an eviction
 * seconds; Prometheus's le values (topohubctl divides by 1e9). */
const uint64_t th__hub_hist_bounds_ns[TH_HUB_HIST_N] = {
	10000,     25000,     50000,      100000,     250000,     500000,     1000000,
	2500000,   5000000,   10000000,   25000000,   50000000,   100000000,  250000000,
	500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};

void th__hub_hist_add(struct th__hub_hist *hh, uint64_t ns)
{
	size_t i = 0;
	while (i < TH_HUB_HIST_N && ns > th__hub_hist_bounds_ns[i])
		i++;
	/* One writer per histogram: a load and a store, not a locked add. */
	th_store_relaxed(&hh->bucket[i], th_load_relaxed(&hh->bucket[i]) + 1);
	th_store_relaxed(&hh->sum_ns, th_load_relaxed(&hh->sum_ns) + ns);
}

void th__hub_hist_json(struct th__hub_hist *hh, struct th_buf *b, const char *name)
{
	th_buf_printf(b, ",\"%s\":{\"le_ns\":[", name);
	for (size_t i = 0; i < TH_HUB_HIST_N; i++)
		th_buf_printf(b, "%s%" PRIu64, i ? "," : "", th__hub_hist_bounds_ns[i]);
	th_buf_printf(b, "],\"buckets\":[");
	for (size_t i = 0; i <= TH_HUB_HIST_N; i++)
		th_buf_printf(b, "%s%" PRIu64, i ? "," : "", th_load_relaxed(&hh->bucket[i]));
	th_buf_printf(b, "],\"sum_ns\":%" PRIu64 "}", th_load_relaxed(&hh->sum_ns));
}
