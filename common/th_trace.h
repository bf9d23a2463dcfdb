/* SPDX-License-Identifier: Apache-2.0 */
/*
 * th_trace.h: topohub's USDT probes, the one place they are defined.
 *
 * What for. When a watch arrives late, an operator runs build/topohub-trace
 * (bench/trace/) against the live hub and its clients and sees which stage of
 * a change's life took the time, without restarting anything. The probes
 * below mark those stages; this header is the contract between the code that
 * fires them (hub/, plugins/) and the tracer that reads them.
 *
 * Guarantees.
 * - With <sys/sdt.h> (Debian: systemtap-sdt-dev, header only) each probe is
 *   one `nop` plus an ELF note (.note.stapsdt, provider "topohub") until a
 *   tracer attaches; nothing is called, no memory is touched. Without the
 *   header, or with -DTH_NO_TRACE, a probe compiles to nothing and its
 *   arguments are not evaluated.
 * - Arguments are integers converted to the fixed types shown, passed in
 *   registers or as constants (STAP_SDT_ARG_CONSTRAINT=nr, set below when the
 *   build did not): libbpf 1.1 rejects the memory operand forms sys/sdt.h
 *   would otherwise allow.
 * - Probe names and argument order are append-only: tracers in the field
 *   depend on them. A new argument goes last; a changed meaning gets a new
 *   probe name.
 *
 * Correlation. Every stage after the binlog carries the revision (the hub's
 * transaction number, protocol.h), so a tracer can follow one change across
 * the hub and every reader process. Time stamps are the tracer's
 * (bpf_ktime_get_ns, i.e. CLOCK_MONOTONIC), taken when the probe fires.
 *
 * The probes, in the order a change meets them (provider "topohub"):
 *
 *   fired by topohubd
 *   hub_binlog_event(u32 type, u64 log_pos)
 *       a binlog event was received and framed (any type, heartbeats too);
 *       log_pos is the event header's next-position field.
 *   hub_txn_commit(u64 revision, u32 nrows, u64 commit_us)
 *       the transaction's commit event was decoded and the transaction was
 *       given its revision; nrows watched row changes; commit_us is the
 *       server's commit time from the binlog (CLOCK_REALTIME us; 0 unknown).
 *   hub_batch_publish(u64 revision, u64 bytes, u32 records)
 *       fired immediately BEFORE th_ring_commit() makes the batch visible, so
 *       that no reader can see the revision before the tracer has stamped it;
 *       bytes is the payload bytes of the batch's records.
 *   hub_reader_evicted(s32 pid, u32 reader_id, u32 reason)
 *       the hub evicted a reader (pid from SO_PEERCRED; reason is
 *       enum th_ring_evict_reason).
 *
 *   fired by libtopohub.so, in the thread that runs the dispatch; conn names
 *   the connection (its handle's address) when a process has several
 *   reader_woken(u64 conn, u32 mode)
 *       a wait for ring data returned (mode: the caller's waiting mode,
 *       enum th_wait_mode of plugins/topohub.h for libtopohub); fired
 *       after a real wait, not when data was there already (a wait that
 *       timed out fires it too: the tracer only counts a wake that came after
 *       the publication of the next record read).
 *   reader_record(u64 revision, u64 pos, u32 type)
 *       a record was copied out of the ring and validated (type: enum
 *       th_rec_type).
 *   callback_enter(u64 revision, u64 watch_id, u32 kind)
 *   callback_return(u64 revision, u64 watch_id, u32 kind)
 *       around each user callback; revision and kind (enum th_event_kind of
 *       plugins/topohub.h) are the event's; watch_id names the watch within
 *       its process. Only PUT (2) and DELETE (3) events are changes whose
 *       stages the tracer follows; every callback counts for its duration.
 *   resync_start(u64 conn, s32 reason)
 *       continuity was lost (reason: enum th_resync_cause of plugins/topohub.h,
 *       or a library-internal cause); may fire again before resync_done when
 *       more is lost meanwhile: the first one starts the resync.
 *   resync_done(u64 conn, u64 revision, u64 entries)
 *       every watch is whole again, the state exact at revision, with entries
 *       entries in the library's copy. Also fires when new watches finish
 *       their initial stitching (no resync_start before it).
 *
 * Caveats.
 * - Arguments are evaluated even when no tracer is attached (they must be in
 *   registers at the nop): pass values the code has at hand, never a call.
 * - Under -DTH_NO_TRACE a variable used only by probes stays "used" (the
 *   macros take its sizeof), so builds with and without probes are both
 *   warning-free.
 * - A USDT probe that a tracer has attached costs a trap into the kernel
 *   (about a microsecond) per hit: see bench/trace/README.md for figures.
 */
#ifndef TH_TRACE_H
#define TH_TRACE_H

#include <stdint.h>

#if !defined(TH_NO_TRACE) && defined(__has_include)
#if __has_include(<sys/sdt.h>)
#ifndef STAP_SDT_ARG_CONSTRAINT
#define STAP_SDT_ARG_CONSTRAINT nr
#endif
#include <sys/sdt.h>
#define TH_TRACE_ENABLED 1
#endif
#endif

#ifndef TH_TRACE_ENABLED
#define TH_TRACE_ENABLED 0
#endif

#if TH_TRACE_ENABLED
#define TH__PROBE2(n, a, b) DTRACE_PROBE2(topohub, n, a, b)
#define TH__PROBE3(n, a, b, c) DTRACE_PROBE3(topohub, n, a, b, c)
#else
/* sizeof: arguments count as used but are never evaluated. */
#define TH__PROBE2(n, a, b) ((void)sizeof(a), (void)sizeof(b))
#define TH__PROBE3(n, a, b, c) ((void)sizeof(a), (void)sizeof(b), (void)sizeof(c))
#endif

/* hub (topohubd) */
#define TH_TRACE_HUB_BINLOG_EVENT(type, log_pos) \
	TH__PROBE2(hub_binlog_event, (uint32_t)(type), (uint64_t)(log_pos))
#define TH_TRACE_HUB_TXN_COMMIT(revision, nrows, commit_us) \
	TH__PROBE3(hub_txn_commit, (uint64_t)(revision), (uint32_t)(nrows), (uint64_t)(commit_us))
#define TH_TRACE_HUB_BATCH_PUBLISH(revision, bytes, records) \
	TH__PROBE3(hub_batch_publish, (uint64_t)(revision), (uint64_t)(bytes), (uint32_t)(records))
#define TH_TRACE_HUB_READER_EVICTED(pid, reader_id, reason) \
	TH__PROBE3(hub_reader_evicted, (int32_t)(pid), (uint32_t)(reader_id), (uint32_t)(reason))

/* client (libtopohub.so) */
#define TH_TRACE_READER_WOKEN(conn, mode) \
	TH__PROBE2(reader_woken, (uint64_t)(uintptr_t)(conn), (uint32_t)(mode))
#define TH_TRACE_READER_RECORD(revision, pos, type) \
	TH__PROBE3(reader_record, (uint64_t)(revision), (uint64_t)(pos), (uint32_t)(type))
#define TH_TRACE_CALLBACK_ENTER(revision, watch_id, kind) \
	TH__PROBE3(callback_enter, (uint64_t)(revision), (uint64_t)(watch_id), (uint32_t)(kind))
#define TH_TRACE_CALLBACK_RETURN(revision, watch_id, kind) \
	TH__PROBE3(callback_return, (uint64_t)(revision), (uint64_t)(watch_id), (uint32_t)(kind))
#define TH_TRACE_RESYNC_START(conn, reason) \
	TH__PROBE2(resync_start, (uint64_t)(uintptr_t)(conn), (int32_t)(reason))
#define TH_TRACE_RESYNC_DONE(conn, revision, entries) \
	TH__PROBE3(resync_done, (uint64_t)(uintptr_t)(conn), (uint64_t)(revision), (uint64_t)(entries))

#endif
