/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench.h: the pieces of topohub-bench shared between its subcommands:
 * latency histograms with log-linear buckets, and JSON-lines output.
 *
 * Every subcommand prints one JSON object per line on stdout (with --json)
 * and a human summary on stderr. Times come from CLOCK_MONOTONIC.
 */
#ifndef TH_BENCH_H
#define TH_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Log-linear histogram of nanosecond values: 2^SUB buckets per power of two,
 * so every bucket is within 1/2^SUB (3%) of the values in it. Lives in plain
 * memory; to collect across processes, put it in a MAP_SHARED mapping and
 * give each process its own.
 */
#define TH_HIST_SUB 5
#define TH_HIST_BUCKETS (64 << TH_HIST_SUB)

struct th_hist {
	uint64_t count;
	uint64_t min, max;
	double sum;
	uint64_t buckets[TH_HIST_BUCKETS];
};

void th_hist_init(struct th_hist *h);
void th_hist_add(struct th_hist *h, uint64_t ns);
void th_hist_merge(struct th_hist *into, const struct th_hist *from);
/* The value at quantile q (0..1): the upper bound of its bucket, clamped to max. */
uint64_t th_hist_quantile(const struct th_hist *h, double q);

/* Print `{"name":..., <extra>, "count":..,"p50_ns":..,"p99_ns":..,"p999_ns":..,"max_ns":..,"mean_ns":..}`. */
void th_hist_print_json(FILE *f, const char *name, const char *extra, const struct th_hist *h);

/* Subcommands: each is main()-like and returns an exit code. */
int th__bench_ring(int argc, char **argv);
int th__bench_decode(int argc, char **argv);
int th__bench_e2e(int argc, char **argv);

#endif
