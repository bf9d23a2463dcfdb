/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohub-trace-emit: fires topohub's USDT probes without a hub, to try the
 * tracer and to measure what a probe costs.
 *
 *   topohub-trace-emit changes K [GAP_US [DELAY_MS]]
 *       forks a synthetic hub and reader (tests/support/trace_synth.h), prints
 *       their pids, waits DELAY_MS (default 2000: time to start
 *       `topohub-trace --pid HUB --pid READER`), then runs K changes GAP_US
 *       apart (default 100).
 *   topohub-trace-emit bench [N [PROBE]]
 *       N (default 20000000) iterations of a small loop body with one probe
 *       site (PROBE: record (default), binlog, callback, or none for the
 *       same loop without it); prints ns per iteration, best of 7 runs.
 *       Build it with and without -DTH_NO_TRACE (make trace builds both:
 *       topohub-trace-emit and topohub-trace-emit-noprobes) for the cost of
 *       an unattached probe; run it under topohub-trace for the attached cost.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/th_time.h"
#include "common/th_trace.h"
#include "tests/support/trace_synth.h"

/*
 * One probe site in a loop whose body does a little dependent work of its
 * own (a multiply-add chain, ~1 ns), the way a probe sits in the reader's
 * record loop. One noinline function per probe, so each has its own site and
 * the loop without a probe is the same code minus the site.
 */
#define PROBE_LOOP(name, site)                                          \
	static __attribute__((noinline)) uint64_t name(uint64_t n)      \
	{                                                               \
		uint64_t acc = 1;                                       \
		for (uint64_t i = 0; i < n; i++) {                      \
			acc = acc * 6364136223846793005u + i;           \
			site;                                           \
		}                                                       \
		return acc;                                             \
	}
PROBE_LOOP(loop_none, (void)0)
PROBE_LOOP(loop_record, TH_TRACE_READER_RECORD(i, acc, 1))
PROBE_LOOP(loop_binlog, TH_TRACE_HUB_BINLOG_EVENT(30, acc))
PROBE_LOOP(loop_callback, TH_TRACE_CALLBACK_ENTER(i, acc, 2))

static int bench(uint64_t n, uint64_t (*loop)(uint64_t), const char *name)
{
	double best = 1e30;
	uint64_t acc = 0;
	for (int rep = 0; rep < 7; rep++) {
		uint64_t t0 = th_now_ns();
		acc += loop(n);
		double per = (double)(th_now_ns() - t0) / (double)n;
		if (per < best)
			best = per;
	}
	printf("{\"probe\":\"%s\",\"probes_compiled\":%s,\"iterations\":%llu,\"ns_per_iter\":%.3f,\"acc\":%llu}\n",
	       name, TH_TRACE_ENABLED ? "true" : "false", (unsigned long long)n, best,
	       (unsigned long long)(acc & 0xff));
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: topohub-trace-emit changes K [GAP_US [DELAY_MS]]\n"
			"       topohub-trace-emit bench [N [record|binlog|callback|none]]\n");
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "changes") == 0) {
		unsigned k = (unsigned)strtoul(argv[2], NULL, 10);
		unsigned gap = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 100;
		unsigned delay = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 2000;
		struct th_trace_synth s;
		if (th_trace_synth_start(&s, k, gap) != 0) {
			perror("topohub-trace-emit: fork");
			return 1;
		}
		printf("hub %d reader %d\n", (int)s.hub, (int)s.reader);
		fflush(stdout);
		usleep(delay * 1000u);
		th_trace_synth_go(&s);
		int rc = th_trace_synth_wait(&s);
		printf("done: %u changes, revisions %llu..%llu\n", k, (unsigned long long)s.base_revision + 1,
		       (unsigned long long)(s.base_revision + k));
		return rc ? 1 : 0;
	}
	if (argc >= 2 && strcmp(argv[1], "bench") == 0) {
		uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000000;
		const char *p = argc > 3 ? argv[3] : "record";
		uint64_t (*loop)(uint64_t) = !strcmp(p, "none")	     ? loop_none
					     : !strcmp(p, "binlog")   ? loop_binlog
					     : !strcmp(p, "callback") ? loop_callback
								      : loop_record;
		return bench(n ? n : 1, loop, p);
	}
	usage();
	return 2;
}
