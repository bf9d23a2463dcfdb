// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * topohub_trace.bpf.c: the in-kernel half of topohub-trace.
 *
 * One USDT program per probe of common/th_trace.h. Hub stages are stamped
 * per revision in an LRU map; reader stages look the revision up there, so a
 * change is followed from the binlog to every reader's callback across
 * processes. Time is bpf_ktime_get_ns() (CLOCK_MONOTONIC), one clock for all.
 *
 * Per-thread state (a transaction being decoded, a pending wake, a callback
 * in progress, a resync in progress) is keyed by thread id: the probes of one
 * stage pair always fire in one thread. Every map that grows with traffic is
 * an LRU map, so an entry whose end never comes (a process killed mid-stage,
 * a revision no reader reads) ages out instead of filling the map.
 *
 * Nothing here blocks or loops over data; each handler is a few map
 * operations.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "bench/trace/topohub_trace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The tracer's pid namespace, so that pids match its /proc (0: use global pids). */
const volatile __u64 pidns_dev = 0;
const volatile __u64 pidns_ino = 0;

/* Changes whose end-to-end time is below this are not sent (user space raises it). */
__u64 slow_threshold_ns = 0;
/* Slow-change records lost because the ring buffer was full. */
__u64 slow_lost = 0;

/* What the hub stamped for one revision. */
struct rev_info {
	__u64 start_ns;
	__u64 commit_ns;
	__u64 publish_ns;
	__u64 commit_us;
	__u32 hub_pid;
	__u32 nrows;
};

struct reader_key {
	__u32 pid;
	__u32 pad;
	__u64 revision;
};

/* What one reader process did with one revision. */
struct reader_info {
	__u64 read_ns;
	__u64 woken_ns;
};

struct callback_info {
	__u64 enter_ns;
	__u64 revision;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct th_trace_hist_key);
	__type(value, struct th_trace_hist);
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TH_PROBE_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} probe_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct th_trace_evict_key);
	__type(value, __u64);
} evictions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct rev_info);
} revs SEC(".maps");

/* Per hub thread: when the transaction being decoded began (0: none yet). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} txn_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct reader_key);
	__type(value, struct reader_info);
} readers SEC(".maps");

/* Per reader thread: time of a wake not yet matched to a record. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} woken SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct callback_info);
} callbacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} resyncs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} slow SEC(".maps");

static const struct th_trace_hist zero_hist;

struct ids {
	__u32 pid;
	__u32 tid;
};

static __always_inline struct ids current_ids(void)
{
	struct ids ids;
	__u64 pt = bpf_get_current_pid_tgid();

	if (pidns_ino) {
		struct bpf_pidns_info ns;

		if (bpf_get_ns_current_pid_tgid(pidns_dev, pidns_ino, &ns, sizeof ns) == 0) {
			ids.pid = ns.tgid;
			ids.tid = ns.pid;
			return ids;
		}
	}
	ids.pid = pt >> 32;
	ids.tid = (__u32)pt;
	return ids;
}

static __always_inline void hit(__u32 probe)
{
	__u64 *n = bpf_map_lookup_elem(&probe_hits, &probe);

	if (n)
		*n += 1; /* per-CPU: no other writer */
}

/* slot = number of significant bits of ns, capped. */
static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { v >>= 1; r += 1; }
	r += (__u32)v;
	return r < TH_TRACE_SLOTS ? r : TH_TRACE_SLOTS - 1;
}

static __always_inline void record(__u32 stage, __u32 pid, __u64 ns)
{
	struct th_trace_hist_key key = { .stage = stage, .pid = pid };
	struct th_trace_hist *h = bpf_map_lookup_elem(&hists, &key);

	if (!h) {
		/* NOEXIST: a racing first insert on another CPU wins and we add to it. */
		bpf_map_update_elem(&hists, &key, &zero_hist, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &key);
		if (!h)
			return;
		bpf_get_current_comm(h->comm, sizeof h->comm);
	}
	__u32 s = log2_slot(ns);
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum_ns, ns);
	__sync_fetch_and_add(&h->slots[s], 1);
	/* max: a lost race only under-reports by one concurrent sample. */
	if (ns > h->max_ns)
		h->max_ns = ns;
}

static __always_inline __u64 since(__u64 then, __u64 now)
{
	return now > then ? now - then : 0;
}

/* ---- hub ---------------------------------------------------------------- */

/* Binlog event types that begin a transaction: MySQL GTID, ANONYMOUS_GTID, MariaDB GTID. */
static __always_inline bool begins_txn(__u32 type)
{
	return type == 33 || type == 34 || type == 162;
}

/* Events that belong to no transaction: ROTATE, FORMAT_DESCRIPTION, HEARTBEAT,
 * PREVIOUS_GTIDS, HEARTBEAT_V2, GTID_LIST, BINLOG_CHECKPOINT. */
static __always_inline bool outside_txn(__u32 type)
{
	return type == 4 || type == 15 || type == 27 || type == 35 || type == 41 || type == 163 ||
	       type == 161;
}

SEC("usdt")
int BPF_USDT(hub_binlog_event, __u32 type, __u64 log_pos)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();

	hit(TH_PROBE_HUB_BINLOG_EVENT);
	if (outside_txn(type))
		return 0;
	/* A GTID event starts a transaction; otherwise the first event after a
	 * commit does (servers that write no GTID events). */
	__u64 *t = bpf_map_lookup_elem(&txn_start, &id.tid);
	if (begins_txn(type) || !t || !*t)
		bpf_map_update_elem(&txn_start, &id.tid, &now, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(hub_txn_commit, __u64 revision, __u32 nrows, __u64 commit_us)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();
	struct rev_info ri = {
		.commit_ns = now,
		.commit_us = commit_us,
		.hub_pid = id.pid,
		.nrows = nrows,
	};

	hit(TH_PROBE_HUB_TXN_COMMIT);
	__u64 *t = bpf_map_lookup_elem(&txn_start, &id.tid);
	if (t && *t) {
		ri.start_ns = *t;
		*t = 0;
		record(TH_STAGE_HUB_DECODE, id.pid, since(ri.start_ns, now));
	}
	bpf_map_update_elem(&revs, &revision, &ri, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(hub_batch_publish, __u64 revision, __u64 bytes, __u32 records)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();

	hit(TH_PROBE_HUB_BATCH_PUBLISH);
	struct rev_info *ri = bpf_map_lookup_elem(&revs, &revision);
	if (ri) {
		ri->publish_ns = now;
		record(TH_STAGE_HUB_PUBLISH, id.pid, since(ri->commit_ns, now));
	} else {
		/* Attached between the commit and the publish: start here. */
		struct rev_info fresh = { .publish_ns = now, .hub_pid = id.pid };
		bpf_map_update_elem(&revs, &revision, &fresh, BPF_ANY);
	}
	return 0;
}

SEC("usdt")
int BPF_USDT(hub_reader_evicted, __s32 pid, __u32 reader_id, __u32 reason)
{
	struct th_trace_evict_key key = { .pid = (__u32)pid, .reason = reason };
	__u64 one = 1;

	hit(TH_PROBE_HUB_READER_EVICTED);
	__u64 *n = bpf_map_lookup_elem(&evictions, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&evictions, &key, &one, BPF_NOEXIST);
	return 0;
}

/* ---- readers ------------------------------------------------------------ */

SEC("usdt")
int BPF_USDT(reader_woken, __u64 conn, __u32 mode)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();

	hit(TH_PROBE_READER_WOKEN);
	bpf_map_update_elem(&woken, &id.tid, &now, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(reader_record, __u64 revision, __u64 pos, __u32 type)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();
	struct reader_key rk = { .pid = id.pid, .revision = revision };
	struct reader_info info = { .read_ns = now };

	hit(TH_PROBE_READER_RECORD);
	struct rev_info *ri = bpf_map_lookup_elem(&revs, &revision);
	__u64 *w = bpf_map_lookup_elem(&woken, &id.tid);
	if (w && *w) {
		/* The first record after a wait is what the wait was for, when
		 * it was published before the wake. */
		if (ri && ri->publish_ns && ri->publish_ns <= *w) {
			info.woken_ns = *w;
			record(TH_STAGE_WAKE, id.pid, *w - ri->publish_ns);
		}
		*w = 0;
	}
	if (ri && ri->publish_ns)
		record(TH_STAGE_DELIVER, id.pid, since(ri->publish_ns, now));
	/* The first record of a transaction stands for the transaction. */
	bpf_map_update_elem(&readers, &rk, &info, BPF_NOEXIST);
	return 0;
}

/* Events that carry a change from the ring: th_event_kind PUT and DELETE. */
static __always_inline bool is_change(__u32 kind)
{
	return kind == 2 || kind == 3;
}

SEC("usdt")
int BPF_USDT(callback_enter, __u64 revision, __u64 watch_id, __u32 kind)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();
	struct reader_key rk = { .pid = id.pid, .revision = revision };
	struct callback_info cb = { .enter_ns = now, .revision = revision };

	hit(TH_PROBE_CALLBACK_ENTER);
	struct reader_info *info = is_change(kind) ? bpf_map_lookup_elem(&readers, &rk) : NULL;
	if (info)
		record(TH_STAGE_DISPATCH, id.pid, since(info->read_ns, now));
	bpf_map_update_elem(&callbacks, &id.tid, &cb, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(callback_return, __u64 revision, __u64 watch_id, __u32 kind)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();

	hit(TH_PROBE_CALLBACK_RETURN);
	struct callback_info *cb = bpf_map_lookup_elem(&callbacks, &id.tid);
	if (!cb || !cb->enter_ns || cb->revision != revision)
		return 0; /* attached mid-callback */
	__u64 enter_ns = cb->enter_ns;
	cb->enter_ns = 0;
	record(TH_STAGE_CALLBACK, id.pid, since(enter_ns, now));
	if (!is_change(kind))
		return 0; /* initial values and markers: only the callback's own time */

	struct reader_key rk = { .pid = id.pid, .revision = revision };
	struct reader_info *info = bpf_map_lookup_elem(&readers, &rk);
	struct rev_info *ri = bpf_map_lookup_elem(&revs, &revision);
	/* barrier_var: else clang tests both with one pointer OR, which the verifier refuses. */
	barrier_var(info);
	if (!info && !ri)
		return 0; /* attached after this change was read */

	__u64 first = enter_ns;
	if (info && info->read_ns)
		first = info->read_ns;
	if (ri) {
		if (ri->publish_ns)
			first = ri->publish_ns;
		if (ri->commit_ns)
			first = ri->commit_ns;
		if (ri->start_ns) {
			first = ri->start_ns;
			record(TH_STAGE_END_TO_END, id.pid, since(first, now));
		}
	}
	__u64 total = since(first, now);
	if (total < slow_threshold_ns)
		return 0;
	struct th_trace_slow *s = bpf_ringbuf_reserve(&slow, sizeof(*s), 0);
	if (!s) {
		__sync_fetch_and_add(&slow_lost, 1);
		return 0;
	}
	s->revision = revision;
	s->watch_id = watch_id;
	s->total_ns = total;
	s->start_ns = ri ? ri->start_ns : 0;
	s->commit_ns = ri ? ri->commit_ns : 0;
	s->publish_ns = ri ? ri->publish_ns : 0;
	s->commit_us = ri ? ri->commit_us : 0;
	s->hub_pid = ri ? ri->hub_pid : 0;
	s->nrows = ri ? ri->nrows : 0;
	s->woken_ns = info ? info->woken_ns : 0;
	s->read_ns = info ? info->read_ns : 0;
	s->enter_ns = enter_ns;
	s->return_ns = now;
	s->pid = id.pid;
	s->pad = 0;
	bpf_ringbuf_submit(s, 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(resync_start, __u64 conn, __s32 reason)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();

	hit(TH_PROBE_RESYNC_START);
	/* More lost during a resync extends it: the first start counts. */
	__u64 *t = bpf_map_lookup_elem(&resyncs, &id.tid);
	if (t && *t)
		return 0;
	bpf_map_update_elem(&resyncs, &id.tid, &now, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(resync_done, __u64 conn, __u64 revision, __u64 entries)
{
	struct ids id = current_ids();
	__u64 now = bpf_ktime_get_ns();

	hit(TH_PROBE_RESYNC_DONE);
	__u64 *t = bpf_map_lookup_elem(&resyncs, &id.tid);
	if (t && *t) {
		record(TH_STAGE_RESYNC, id.pid, since(*t, now));
		*t = 0;
	}
	return 0;
}
