/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace_synth.h: synthetic changes that fire topohub's USDT probes
 * (common/th_trace.h) in the order a real change does, from two processes, so
 * that the tracer (bench/trace/) can be tested without a hub or a server.
 *
 * th_trace_synth_start() forks a "hub" and a "reader" process that wait for
 * th_trace_synth_go(). Then, for each of k changes (revisions base+1 ..
 * base+k), the hub fires four hub_binlog_event (a MariaDB GTID, TABLE_MAP,
 * WRITE_ROWS and XID event), hub_txn_commit(rev, 1, now), and
 * hub_batch_publish(rev, 64, 1), and passes the revision to the reader over
 * a pipe, the pipe standing in for the ring's futex wake. The reader blocks
 * in read() (so every change wakes it), then fires reader_woken,
 * reader_record(rev), and callback_enter/callback_return(rev, watch 1)
 * around a few microseconds of work. After the last change the hub fires one
 * hub_reader_evicted(reader pid, 1, TH_RING_EVICT_SLOW) and the reader one
 * resync_start/resync_done pair.
 *
 * So a tracer attached to both pids must count k of every stage, 4k binlog
 * events, one eviction and one resync.
 *
 * Caveats: test support, not product. Both children die with the caller's
 * thread (PR_SET_PDEATHSIG). With TH_TRACE_ENABLED 0 they run but fire
 * nothing.
 */
#ifndef TH_TEST_TRACE_SYNTH_H
#define TH_TEST_TRACE_SYNTH_H

#include <stdint.h>
#include <sys/types.h>

struct th_trace_synth {
	pid_t hub;
	pid_t reader;
	int go_fd; /* write end: closing or writing starts both */
	uint64_t base_revision;
	unsigned changes;
};

/* Fork both processes; gap_us is the pause between changes. 0 or -errno. */
int th_trace_synth_start(struct th_trace_synth *s, unsigned changes, unsigned gap_us);
/* Let both processes run. 0 or -errno. */
int th_trace_synth_go(struct th_trace_synth *s);
/* Wait for both; 0 when both exited with status 0, else -ECHILD or -EIO. */
int th_trace_synth_wait(struct th_trace_synth *s);
/* Kill and reap both (after a failure). */
void th_trace_synth_kill(struct th_trace_synth *s);

#endif
