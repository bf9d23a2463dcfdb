/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohub_trace.h: what the BPF side of topohub-trace (topohub_trace.bpf.c)
 * and its loader (topohub_trace.c) share: stage and probe numbers, map keys
 * and values, the record of a slow change.
 *
 * Both sides are built from this one file, by clang -target bpf (types from
 * vmlinux.h) and by the host compiler (types from <linux/types.h>); so only
 * fixed-width __uNN types, no pointers, explicit padding.
 */
#ifndef TH_TOPOHUB_TRACE_H
#define TH_TOPOHUB_TRACE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/*
 * Stages: intervals of one change's life, each counted once per change (per
 * reader for reader stages, per watch for callbacks).
 */
enum th_trace_stage {
	TH_STAGE_HUB_DECODE = 0,  /* hub: transaction's first binlog event -> commit decoded */
	TH_STAGE_HUB_PUBLISH = 1, /* hub: commit decoded -> batch about to be published */
	TH_STAGE_WAKE = 2,        /* batch published -> reader woken (only when it slept) */
	TH_STAGE_DELIVER = 3,     /* batch published -> record read by the reader */
	TH_STAGE_DISPATCH = 4,    /* record read -> callback entered (changes only) */
	TH_STAGE_CALLBACK = 5,    /* callback entered -> returned (every callback) */
	TH_STAGE_END_TO_END = 6,  /* first binlog event -> callback returned */
	TH_STAGE_RESYNC = 7,      /* resync started -> done */
	TH_STAGE_COUNT = 8,
};

/* Probes, for hit counts (the same names as in common/th_trace.h). */
enum th_trace_probe {
	TH_PROBE_HUB_BINLOG_EVENT = 0,
	TH_PROBE_HUB_TXN_COMMIT,
	TH_PROBE_HUB_BATCH_PUBLISH,
	TH_PROBE_HUB_READER_EVICTED,
	TH_PROBE_READER_WOKEN,
	TH_PROBE_READER_RECORD,
	TH_PROBE_CALLBACK_ENTER,
	TH_PROBE_CALLBACK_RETURN,
	TH_PROBE_RESYNC_START,
	TH_PROBE_RESYNC_DONE,
	TH_PROBE_COUNT,
};

/* log2 buckets of nanoseconds: slot s holds [2^(s-1), 2^s), slot 0 holds 0. */
#define TH_TRACE_SLOTS 40 /* up to 2^39 ns = 9 minutes; longer goes to the last */

struct th_trace_hist_key {
	__u32 stage; /* enum th_trace_stage */
	__u32 pid;   /* the process the stage ran in (the hub for hub stages) */
};

struct th_trace_hist {
	__u64 count;
	__u64 sum_ns;
	__u64 max_ns;
	__u64 slots[TH_TRACE_SLOTS];
	char comm[16]; /* name of the thread that made the entry (the process may be gone) */
};

struct th_trace_evict_key {
	__u32 pid;    /* the evicted reader */
	__u32 reason; /* enum th_ring_evict_reason */
};

/*
 * One change as one reader's callback saw it, sent to user space when its
 * end-to-end time reaches the current threshold (the smallest of the slowest
 * N so far). Times are bpf_ktime_get_ns(); 0 means the tracer did not see
 * that stage (it attached late, or the hub is not traced).
 */
struct th_trace_slow {
	__u64 revision;
	__u64 watch_id;
	__u64 total_ns;   /* from the earliest stage seen to callback return */
	__u64 start_ns;   /* the transaction's first binlog event (hub) */
	__u64 commit_ns;  /* commit decoded (hub) */
	__u64 publish_ns; /* batch publish (hub) */
	__u64 woken_ns;   /* reader woken, when that woke it for this change */
	__u64 read_ns;    /* record read */
	__u64 enter_ns;   /* callback entered */
	__u64 return_ns;  /* callback returned */
	__u64 commit_us;  /* server commit time from the binlog, CLOCK_REALTIME us */
	__u32 pid;        /* reader process */
	__u32 hub_pid;
	__u32 nrows;
	__u32 pad;
};

#endif
