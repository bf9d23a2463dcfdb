/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn.h: what the files of a connection share: struct th_conn, its watchers,
 * and the functions that cross files. Nothing here crosses the ABI.
 *
 *   registry.c  delivering, coverage, adoption and reclaim of watchers
 *   resync.c    connecting to the hub, losing and regaining continuity
 *   dispatch.c  reading the ring, waiting, the dispatch round
 *   api.c       the function table of topohub.h
 *
 * Who touches what:
 *
 *   | state                                  | threads                               |
 *   |----------------------------------------|---------------------------------------|
 *   | registry (two cds_lfht: paths, ids)    | any: add (watch), del (unwatch, end), |
 *   |                                        |   lookup (dispatch, unwatch) under RCU |
 *   | adopt / end queues (wfcqueue)          | any thread enqueues; the dispatcher   |
 *   |                                        |   dequeues                             |
 *   | watcher->dead                          | exchanged once by whoever ends it;    |
 *   |                                        |   read by the dispatcher before a call |
 *   | everything under "dispatcher only"     | the one thread inside dispatch()      |
 *   | the query connection (get)             | any thread, under qlock               |
 *   | stats                                  | dispatcher writes, any thread reads   |
 *
 * A watcher lives from watch() to its reclaim in the dispatcher, which alone
 * frees it, after unlinking it from the registry and one RCU grace period, and
 * only between two callbacks: so the dispatcher can hold plain pointers to
 * watchers across the callbacks of one change, with no lock and no count.
 *
 * Stitching (protocol.h): a new watch is adopted by the dispatcher between two
 * transactions, at ring position D. If what it watches is already covered by
 * adopted watches, the local copy is exact at D and the initial events come
 * from it at once. Otherwise the dispatcher asks the hub for a snapshot (or a
 * get), adds the entries whose keys it did not hold, notes the ring head H
 * after the reply, and goes on reading from D, applying each change only when
 * it is newer than the key's revision. When it reaches H at a transaction
 * boundary the copy is exact and the new watch gets its initial events; it
 * gets nothing before that, and every later change after them.
 *
 * Resync: when continuity is lost, every live watch of the affected tables
 * gets TH_EVENT_RESYNC at once, the local copy of those tables moves aside
 * (it is what those watches were told), the state is fetched again as above,
 * and at H each watch gets the difference between what it was told and the
 * state, then TH_EVENT_SYNCED.
 */
#ifndef TH_PLUGINS_CONN_H
#define TH_PLUGINS_CONN_H

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <urcu-bp.h>
#include <urcu/rculfhash.h>
#include <urcu/wfcqueue.h>

#include "common/th_error.h"
#include "plugins/topohub.h"
#include "plugins/client_int.h"
#include "protocol/protocol.h"
#include "shm/ring.h"
#include "common/th_atomic.h"
#include "common/th_buf.h"
#include "common/th_tsan.h"
#include "common/th_time.h"
#include "common/th_trace.h"


/* TSan cannot see liburcu's barriers (it is not instrumented). Tell it what
 * a grace period means: every read-side section that ended before
 * synchronize_rcu() returned happens-before what follows it. */
#define tsan_acquire(p) TH_TSAN_ACQUIRE(p)
#define tsan_release(p) TH_TSAN_RELEASE(p)

#define NTABLES_MAX 256u
#define PATH_BITS 4096u
#define SLICE_FUTEX_NS 10000000ull  /* futex mode: the shortest interval between checks that the hub is alive */
#define SLICE_FUTEX_MAX_NS 500000000ull /* ... doubling while idle up to this, halving on a busy stream */
#define SLICE_SPIN_NS 1000000ull
#define BACKOFF_MIN_NS 10000000ull
#define BACKOFF_MAX_NS 1000000000ull
#define DEFAULT_TIMEOUT_NS 1000000000ull
#define DEFAULT_SPIN_NS 20000ull
#define RESYNC_NOMEM 5u /* th_resync_cause: the library ran out of memory and dropped a change */

enum phase {
	PH_NEW,     /* registered; the dispatcher has not seen it */
	PH_STITCH,  /* adopted; initial events when the copy is exact */
	PH_RESYNC,  /* told RESYNC; the difference when the copy is exact */
	PH_LIVE,    /* gets every change */
};

struct watcher {
	struct cds_lfht_node path_node;  /* in c->paths: (recursive, table, path) */
	struct cds_lfht_node id_node;    /* in c->ids: id */
	struct cds_wfcq_node adopt_node;
	struct cds_wfcq_node end_node;
	th_atomic_u32 ready;    /* 1 once every field below is set; store-release before publication */
	th_atomic_u32 dead;     /* exchanged to 1 by whoever ends the watch, once */
	th_atomic_u32 unlinked; /* store-release by the ender after its last access, before end_node */
	uint64_t id;
	uint32_t table;
	bool recursive;
	uint32_t path_len;
	uint64_t path_hash;
	th_watch_fn *cb;
	void *arg;
	th_free_fn *free_arg;
	/* dispatcher only */
	enum phase phase;
	bool listed;       /* in c->list */
	bool need_fetch;   /* adopted, its entries not yet fetched */
	bool round_live;   /* (th__fetch) alive when the round's fetches were chosen */
	struct watcher *prev, *next;
	struct watcher *reclaim_next;
	char path[];       /* path_len bytes + NUL, trimmed for recursive watches */
};

struct th_conn {
	/* settings, immutable after open */
	char *socket_path;
	char name[32];
	uint64_t timeout_ns, spin_ns;
	uint64_t max_wake_delay_ns; /* 0: the hub's */
	uint32_t wait_mode, flags;

	/* registry: any thread */
	struct cds_lfht *paths, *ids;
	/* One bit per path hash (mod PATH_BITS) of every watch ever registered:
	 * the dispatcher looks a path up in paths only when its bit is set (most
	 * changes have no watch of their exact key nor a recursive one of it).
	 * Bits are never cleared: a stale one costs a lookup, never a miss. */
	th_atomic_u64 path_bits[PATH_BITS / 64];
	struct __cds_wfcq_head adopt_head;
	struct cds_wfcq_tail adopt_tail;
	struct __cds_wfcq_head end_head;
	struct cds_wfcq_tail end_tail;
	th_atomic_u64 next_id;
	th_atomic_u64 paths_gen;    /* bumped after every add to or removal from paths */
	th_atomic_u32 ntables;     /* from the last attach; relaxed: a bound for argument checks */
	th_atomic_u32 closing;
	th_atomic_u32 dispatching; /* 0/1: one dispatch at a time */
	th_atomic_u32 stop;        /* the library's thread should return */
	int wake_fd;               /* eventfd: new registrations, stop */
	th_atomic_u32 wake_pending; /* set after each write to wake_fd: drain only then */
	th_atomic_u32 kick_word;    /* moved after wake_pending: ends a futex-mode wait (th_ring_wait_or) */
	int epoll_fd;              /* TH_WAIT_FD: wake_fd, ring event fd, ctl's socket, timer_fd */
	int timer_fd;              /* TH_WAIT_FD: reconnect backoff */
	char tsan_rcu;             /* TSan's name for "a grace period" */

	/* the query connection, for get() */
	pthread_mutex_t qlock;
	struct th_ctl *q;

	/* dispatcher only */
	struct th_ctl *ctl;        /* the attached connection; NULL when not connected */
	struct th_ring_reader *ring;
	uint64_t generation;
	bool connected;
	uint64_t retry_at_ns, backoff_ns;
	struct th__mirror mirror;   /* entries under every adopted watch */
	struct th__mirror old;      /* what watches of resyncing tables were told */
	bool table_resync[NTABLES_MAX];
	bool fetch_table[NTABLES_MAX];
	bool fetch_any;
	bool pending;               /* watches in PH_STITCH or PH_RESYNC wait for ready_pos */
	uint64_t ready_pos;
	/* ... and for the ring to reach snap_pending: a snapshot may hold part
	 * of a transaction whose batch was not in the ring yet (protocol.h). */
	uint64_t ring_revision;     /* the newest revision read from the ring (or told at attach) */
	uint64_t snap_pending;      /* the newest pending revision of a snapshot since attach */
	/* Targeted wake-ups (shm/ring.h): the slot's filter holds the tag bit
	 * of every watch (protocol.h, batch tags), off while anything is being
	 * fetched or stitched (a pending revision may be in a batch for no
	 * watch) or a watch covers every key. */
	bool filter_off;            /* the slot's filter is off (NULL was written last) */
	uint64_t filter_gen;        /* paths_gen the filter was computed at; UINT64_MAX: recompute */
	uint64_t skips_seen;        /* th_ring_reader_skips() already folded into revision */
	struct watcher *list;       /* adopted watches */
	struct watcher *reclaim;    /* ended by the dispatcher, to free */
	struct watcher **match;
	size_t nmatch, capmatch;
	/* The recursive watchers covering the last key's parent (every prefix
	 * up to its last '/'), valid while paths_gen is memo_gen: consecutive
	 * keys mostly share a parent, so a record costs two hash lookups
	 * instead of one per path component. */
	struct watcher **memo;
	size_t nmemo, capmemo;
	uint64_t memo_gen;
	uint32_t memo_table;
	char *memo_parent;
	size_t memo_cap;
	uint32_t memo_len;
	void *buf;
	size_t buflen;
	char *scratch;
	size_t scratchlen;
	uint64_t revision;          /* of the last transaction read */
	uint64_t spin_cur;          /* this wait's spin (adaptive, at most spin_ns) */
	uint64_t slice_cur;         /* this futex wait's longest sleep (doubles while idle, halves on a busy stream) */
	uint32_t kick_seen;         /* kick_word loaded before the round that found no work */
	uint64_t last_batch_ns;     /* publication time of the last transaction read */
	uint64_t batch_gap_ns;      /* ... and the gap between it and the one before */
	int delivered;
	bool have_thread;
	pthread_t thread;

	/* counters: the dispatcher adds, any thread reads (relaxed: no ordering implied) */
	th_atomic_u64 st_events, st_records, st_resyncs, st_evictions, st_laps, st_reconnects;
	th_atomic_u64 st_watches, st_entries, st_revision, st_generation;
};


/* ---- small helpers ------------------------------------------------------- */


static inline void th__stat_add(th_atomic_u64 *s, uint64_t n)
{
	th_store_relaxed(s, th_load_relaxed(s) + n); /* one writer: the dispatcher */
}

static inline uint64_t th__hash_bytes(uint64_t h, const void *p, size_t n)
{
	/* FNV-1a, then a final mix: lfht splits on the low-order bits reversed. */
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static inline uint64_t th__hash_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static inline uint64_t th__path_hash(bool recursive, uint32_t table, const char *p, uint32_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned char k[5] = { recursive, (unsigned char)table, (unsigned char)(table >> 8),
			       (unsigned char)(table >> 16), (unsigned char)(table >> 24) };
	h = th__hash_bytes(h, k, sizeof k);
	return th__hash_mix(th__hash_bytes(h, p, n));
}

struct path_key {
	bool recursive;
	uint32_t table;
	const char *p;
	uint32_t n;
};

static inline int th__match_path(struct cds_lfht_node *node, const void *key)
{
	const struct path_key *k = key;
	struct watcher *w = caa_container_of(node, struct watcher, path_node);
	/* Pairs with the store-release of ready in th__register_watch(): the
	 * fields below were set before the node was published. */
	if (!th_load_acquire(&w->ready))
		return 0;
	return w->recursive == k->recursive && w->table == k->table && w->path_len == k->n &&
	       memcmp(w->path, k->p, k->n) == 0;
}

static inline int th__match_id(struct cds_lfht_node *node, const void *key)
{
	struct watcher *w = caa_container_of(node, struct watcher, id_node);
	if (!th_load_acquire(&w->ready)) /* pairs with the store-release in th__register_watch() */
		return 0;
	return w->id == *(const uint64_t *)key;
}

static inline void th__rcu_lock(void)
{
	rcu_read_lock();
}

static inline void th__rcu_unlock(struct th_conn *c)
{
	tsan_release(&c->tsan_rcu);
	rcu_read_unlock();
}

static inline void th__grace_period(struct th_conn *c)
{
	synchronize_rcu();
	tsan_acquire(&c->tsan_rcu);
}

static inline void th__wake(struct th_conn *c)
{
	uint64_t one = 1;
	if (write(c->wake_fd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is full, so the dispatcher will wake anyway. */
	}
	/* After the write: a dispatcher that sees the flag finds the counter
	 * set (or drained by an earlier round). Pairs with the exchange in
	 * th__dispatch_round(). */
	th_store_release(&c->wake_pending, 1);
	/* After the flag: a dispatcher that loaded the kick word before its
	 * round either sees the flag in the round or the word moved. */
	th_ring_kick(&c->kick_word);
}

/* stats().revision: the revision up to which every change this connection
 * owes its watches has been dispatched. c->revision moves at a batch end,
 * at attach, with a snapshot's revision and with a hub RESYNC; it is told
 * only when nothing is owed (no fetch or resync pending), so that a
 * read-your-writes wait (sync, then stats) also ends when no ring batch
 * comes after an attach, a reconnection or a reload (issue 14). Release
 * pairs with the acquire load in stats(). */
static inline void th__publish_revision(struct th_conn *c)
{
	if (c->connected && !c->pending && !c->fetch_any && th_load_relaxed(&c->st_revision) != c->revision)
		th_store_release(&c->st_revision, c->revision);
}

static inline void th__drain_fd(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof v) > 0) {
	}
}


/* ---- across files -------------------------------------------------------- */

void th__paths_changed(struct th_conn *c);
void th__update_filter(struct th_conn *c);
void th__adopt_new(struct th_conn *c);
int th__attach(struct th_conn *c);
void th__call(struct th_conn *c, struct watcher *w, struct th_event *ev);
int th__collect_matches(struct th_conn *c, uint32_t table, const char *key, uint32_t klen);
bool th__covered(struct th_conn *c, uint32_t table, const char *key, uint32_t klen, int *err);
void th__deliver(struct th_conn *c, struct watcher *w, struct th_event *ev);
void th__deliver_marker(struct th_conn *c, struct watcher *w, uint16_t kind, uint32_t reason);
void th__disconnect(struct th_conn *c);
int th__dispatch_locked(struct th_conn *c, int64_t timeout_ns);
int th__dispatch_round(struct th_conn *c);
void th__end_watch(struct th_conn *c, struct watcher *w, uint32_t reason);
void th__epoll_set(struct th_conn *c, int fd, bool add);
void th__event_from_entry(struct th_event *ev, uint16_t kind, const struct th__entry *e);
int th__fetch(struct th_conn *c);
void th__hub_lost(struct th_conn *c);
void th__lose(struct th_conn *c, uint32_t table, uint32_t cause);
void th__reclaim(struct th_conn *c);
int th__reconnect(struct th_conn *c);
int th__register_watch(struct th_conn *c, const struct th_watch_opts *uopts, th_watch_id *id, bool recursive);

#endif
