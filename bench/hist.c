/* SPDX-License-Identifier: Apache-2.0 */
#include "bench/bench.h"

#include <string.h>

void th_hist_init(struct th_hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << TH_HIST_SUB))
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned sub = (unsigned)(v >> (msb - TH_HIST_SUB)) & ((1u << TH_HIST_SUB) - 1);
	return ((msb - TH_HIST_SUB + 1) << TH_HIST_SUB) + sub;
}

static uint64_t bucket_upper(unsigned b)
{
	if (b < (1u << TH_HIST_SUB))
		return b;
	unsigned e = (b >> TH_HIST_SUB) - 1 + TH_HIST_SUB;
	uint64_t sub = b & ((1u << TH_HIST_SUB) - 1);
	uint64_t base = (1ull << e) | (sub << (e - TH_HIST_SUB));
	return base + (1ull << (e - TH_HIST_SUB)) - 1;
}

void th_hist_add(struct th_hist *h, uint64_t ns)
{
	h->buckets[bucket_of(ns)]++;
	h->count++;
	h->sum += (double)ns;
	if (ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
}

void th_hist_merge(struct th_hist *into, const struct th_hist *from)
{
	for (unsigned i = 0; i < TH_HIST_BUCKETS; i++)
		into->buckets[i] += from->buckets[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->count && from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t th_hist_quantile(const struct th_hist *h, double q)
{
	if (!h->count)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < TH_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen > rank) {
			uint64_t v = bucket_upper(i);
			return v > h->max ? h->max : v < h->min ? h->min : v;
		}
	}
	return h->max;
}

void th_hist_print_json(FILE *f, const char *name, const char *extra, const struct th_hist *h)
{
	fprintf(f,
		"{\"name\":\"%s\"%s%s,\"count\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,"
		"\"max_ns\":%llu,\"min_ns\":%llu,\"mean_ns\":%.0f}\n",
		name, extra && *extra ? "," : "", extra ? extra : "", (unsigned long long)h->count,
		(unsigned long long)th_hist_quantile(h, 0.50), (unsigned long long)th_hist_quantile(h, 0.99),
		(unsigned long long)th_hist_quantile(h, 0.999), (unsigned long long)h->max,
		(unsigned long long)(h->count ? h->min : 0), h->count ? h->sum / (double)h->count : 0.0);
	fflush(f);
}
