/*
 * client.c: connections, the watch registry, dispatch, stitching and resync.
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
#include "common/th_tsan.h"
#include "common/th_time.h"
#include "common/th_trace.h"

#define PUBLIC __attribute__((visibility("default")))

/* TSan cannot see liburcu's barriers (it is not instrumented). Tell it what
 * a grace period means: every read-side section that ended before
 * synchronize_rcu() returned happens-before what follows it. */
#define tsan_acquire(p) TH_TSAN_ACQUIRE(p)
#define tsan_release(p) TH_TSAN_RELEASE(p)

#define NTABLES_MAX 256u
#define SLICE_FUTEX_NS 10000000ull  /* futex mode re-checks registrations and the hub this often */
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
	struct watcher *prev, *next;
	struct watcher *reclaim_next;
	char path[];       /* path_len bytes + NUL, trimmed for recursive watches */
};

struct th_conn {
	/* settings, immutable after open */
	char *socket_path;
	char name[32];
	uint64_t timeout_ns, spin_ns;
	uint32_t wait_mode, flags;

	/* registry: any thread */
	struct cds_lfht *paths, *ids;
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

static void stat_add(th_atomic_u64 *s, uint64_t n)
{
	th_store_relaxed(s, th_load_relaxed(s) + n); /* one writer: the dispatcher */
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	/* FNV-1a, then a final mix: lfht splits on the low-order bits reversed. */
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t hash_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static uint64_t path_hash(bool recursive, uint32_t table, const char *p, uint32_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned char k[5] = { recursive, (unsigned char)table, (unsigned char)(table >> 8),
			       (unsigned char)(table >> 16), (unsigned char)(table >> 24) };
	h = hash_bytes(h, k, sizeof k);
	return hash_mix(hash_bytes(h, p, n));
}

struct path_key {
	bool recursive;
	uint32_t table;
	const char *p;
	uint32_t n;
};

static int match_path(struct cds_lfht_node *node, const void *key)
{
	const struct path_key *k = key;
	struct watcher *w = caa_container_of(node, struct watcher, path_node);
	/* Pairs with the store-release of ready in register_watch(): the
	 * fields below were set before the node was published. */
	if (!th_load_acquire(&w->ready))
		return 0;
	return w->recursive == k->recursive && w->table == k->table && w->path_len == k->n &&
	       memcmp(w->path, k->p, k->n) == 0;
}

static int match_id(struct cds_lfht_node *node, const void *key)
{
	struct watcher *w = caa_container_of(node, struct watcher, id_node);
	if (!th_load_acquire(&w->ready)) /* pairs with the store-release in register_watch() */
		return 0;
	return w->id == *(const uint64_t *)key;
}

static void rcu_lock(void)
{
	rcu_read_lock();
}

static void rcu_unlock(struct th_conn *c)
{
	tsan_release(&c->tsan_rcu);
	rcu_read_unlock();
}

static void grace_period(struct th_conn *c)
{
	synchronize_rcu();
	tsan_acquire(&c->tsan_rcu);
}

static void wake(struct th_conn *c)
{
	uint64_t one = 1;
	if (write(c->wake_fd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is full, so the dispatcher will wake anyway. */
	}
	/* After the write: a dispatcher that sees the flag finds the counter
	 * set (or drained by an earlier round). Pairs with the exchange in
	 * dispatch_round(). */
	th_store_release(&c->wake_pending, 1);
}

static void drain_fd(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof v) > 0) {
	}
}

/* ---- delivering ---------------------------------------------------------- */

static void call(struct th_conn *c, struct watcher *w, struct th_event *ev)
{
	ev->size = sizeof *ev;
	ev->watch = w->id;
	ev->table = w->table;
	if (!ev->deliver_ns)
		ev->deliver_ns = th_realtime_ns();
	TH_TRACE_CALLBACK_ENTER(ev->revision, w->id, ev->kind);
	w->cb(ev, w->arg);
	TH_TRACE_CALLBACK_RETURN(ev->revision, w->id, ev->kind);
	c->delivered++;
	stat_add(&c->st_events, 1);
}

static void deliver(struct th_conn *c, struct watcher *w, struct th_event *ev)
{
	/* Pairs with the exchange in unwatch (both seq_cst): if unwatch came
	 * first we see it and stay silent; otherwise the call had begun. */
	if (th_load_seq_cst(&w->dead))
		return;
	call(c, w, ev);
}

static void event_from_entry(struct th_event *ev, uint16_t kind, const struct th__entry *e)
{
	memset(ev, 0, sizeof *ev);
	ev->kind = kind;
	ev->flags = (e->flags & TH_CHANGE_F_VALUE_NULL) ? TH_EVENT_F_VALUE_NULL : 0;
	ev->key = e->key;
	ev->key_len = e->key_len;
	ev->value = kind == TH_EVENT_DELETE ? "" : e->value;
	ev->value_len = kind == TH_EVENT_DELETE ? 0 : e->value_len;
	ev->version = e->version;
	ev->revision = e->revision;
	ev->commit_us = e->commit_us;
	ev->gtid = e->gtid;
	ev->gtid_len = e->gtid_len;
}

static void deliver_marker(struct th_conn *c, struct watcher *w, uint16_t kind, uint32_t reason)
{
	struct th_event ev = { .kind = kind, .reason = reason, .revision = c->revision, .value = "", .gtid = "" };
	deliver(c, w, &ev);
}

/* Every add to or removal from c->paths, after it: the dispatcher's memo of
 * recursive watchers is stale from then on. A removal's bump precedes the
 * watcher's hand-over for reclaim (store-release of unlinked, or the
 * dispatcher's own thread), so no memo that holds a freed watcher is valid. */
static void paths_changed(struct th_conn *c)
{
	/* Pairs with the load-acquire in collect_matches(). */
	th_fetch_add_release(&c->paths_gen, 1);
}

/* Unlink a watcher from the registry; the caller won the exchange of dead. */
static void unlink_watcher(struct th_conn *c, struct watcher *w)
{
	rcu_lock();
	cds_lfht_del(c->paths, &w->path_node);
	cds_lfht_del(c->ids, &w->id_node);
	rcu_unlock(c);
	paths_changed(c);
}

/* The watch ends by itself (exact path deleted or never there). */
static void end_watch(struct th_conn *c, struct watcher *w, uint32_t reason)
{
	if (th_exchange_seq_cst(&w->dead, 1))
		return; /* unwatched meanwhile: it asked for silence */
	struct th_event ev = { .kind = TH_EVENT_ENDED, .reason = reason, .revision = c->revision, .value = "", .gtid = "" };
	call(c, w, &ev);
	unlink_watcher(c, w);
	th_store_relaxed(&w->unlinked, 1); /* our own thread frees it: no pairing needed */
	w->reclaim_next = c->reclaim;
	c->reclaim = w;
}

/* ---- coverage ------------------------------------------------------------ */

/* Append to *v every watcher of the given kind registered for
 * (table, key[0:cut]). */
static int lookup_path(struct th_conn *c, bool recursive, uint32_t table, const char *key, uint32_t cut,
		       struct watcher ***v, size_t *n, size_t *cap)
{
	struct cds_lfht_iter it;
	struct path_key k = { recursive, table, key, cut };
	cds_lfht_lookup(c->paths, path_hash(recursive, table, key, cut), match_path, &k, &it);
	for (struct cds_lfht_node *nd = cds_lfht_iter_get_node(&it); nd;
	     cds_lfht_next_duplicate(c->paths, match_path, &k, &it), nd = cds_lfht_iter_get_node(&it)) {
		if (th__grow((void **)v, cap, *n + 1, sizeof **v))
			return -ENOMEM;
		(*v)[(*n)++] = caa_container_of(nd, struct watcher, path_node);
	}
	return 0;
}

/* Recursive watchers of "" and of each prefix of key[0:len] that ends
 * before a '/', and of key[0:len] itself, into c->memo. */
static int fill_memo(struct th_conn *c, uint32_t table, const char *key, uint32_t len)
{
	c->nmemo = 0;
	for (uint32_t cut = 0;;) {
		if (lookup_path(c, true, table, key, cut, &c->memo, &c->nmemo, &c->capmemo))
			return -ENOMEM;
		if (cut == len)
			return 0;
		uint32_t next = cut + 1;
		while (next < len && key[next] != '/')
			next++;
		cut = next;
	}
}

/* Collect into c->match every watcher whose path covers (table, key):
 * exact watchers of key, then recursive ones of "", of each component
 * prefix, and of the key itself (shortest first). */
static int collect_matches(struct th_conn *c, uint32_t table, const char *key, uint32_t klen)
{
	c->nmatch = 0;
	/* The parent: the last '/' after the first byte (the prefixes that end
	 * before it are exactly the parent's own, and the parent itself). */
	uint32_t plen = klen;
	while (plen > 1 && key[plen - 1] != '/')
		plen--;
	plen = plen > 1 ? plen - 1 : 0;
	int rc = 0;
	rcu_lock();
	uint64_t gen = th_load_acquire(&c->paths_gen);
	if (gen != c->memo_gen || table != c->memo_table || plen != c->memo_len ||
	    (plen && memcmp(key, c->memo_parent, plen) != 0)) {
		c->memo_gen = UINT64_MAX; /* invalid until filled */
		if (th__grow((void **)&c->memo_parent, &c->memo_cap, plen + 1, 1) == 0 &&
		    fill_memo(c, table, key, plen) == 0) {
			memcpy(c->memo_parent, key, plen);
			c->memo_len = plen;
			c->memo_table = table;
			c->memo_gen = gen;
		} else {
			rc = -ENOMEM;
		}
	}
	if (!rc)
		rc = lookup_path(c, false, table, key, klen, &c->match, &c->nmatch, &c->capmatch);
	if (!rc && th__grow((void **)&c->match, &c->capmatch, c->nmatch + c->nmemo, sizeof *c->match))
		rc = -ENOMEM;
	if (!rc) {
		if (c->nmemo) /* both may still be NULL */
			memcpy(c->match + c->nmatch, c->memo, c->nmemo * sizeof *c->memo);
		c->nmatch += c->nmemo;
		if (plen != klen)
			rc = lookup_path(c, true, table, key, klen, &c->match, &c->nmatch, &c->capmatch);
	}
	rcu_unlock(c);
	return rc;
}

/* Some adopted watcher (other than the ones being reclaimed, which are
 * unlinked already) covers (table, key). */
static bool covered(struct th_conn *c, uint32_t table, const char *key, uint32_t klen, int *err)
{
	*err = collect_matches(c, table, key, klen);
	for (size_t i = 0; i < c->nmatch; i++)
		if (c->match[i]->phase != PH_NEW)
			return true;
	return false;
}

/* ---- adoption and reclaim ------------------------------------------------ */

static void list_add(struct th_conn *c, struct watcher *w)
{
	w->prev = NULL;
	w->next = c->list;
	if (c->list)
		c->list->prev = w;
	c->list = w;
	w->listed = true;
}

static void list_del(struct th_conn *c, struct watcher *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		c->list = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->listed = false;
}

/* An adopted, fetched watcher already covers w's whole path. */
static bool already_covered(struct th_conn *c, const struct watcher *w)
{
	for (struct watcher *o = c->list; o; o = o->next) {
		if (o == w || o->need_fetch || o->table != w->table || th_load_relaxed(&o->dead))
			continue;
		if (c->table_resync[o->table] && c->fetch_table[o->table])
			continue;
		if (o->recursive ? th__prefix_matches(o->path, o->path_len, w->path, w->path_len)
				 : (!w->recursive && o->path_len == w->path_len &&
				    memcmp(o->path, w->path, w->path_len) == 0))
			return true;
	}
	return false;
}

static void adopt_new(struct th_conn *c)
{
	struct cds_wfcq_node *n;
	while ((n = __cds_wfcq_dequeue_blocking(&c->adopt_head, &c->adopt_tail)) != NULL) {
		struct watcher *w = caa_container_of(n, struct watcher, adopt_node);
		/* Pairs with the store-release in register_watch(). */
		while (!th_load_acquire(&w->ready))
			th_cpu_relax();
		if (th_load_seq_cst(&w->dead))
			continue; /* unwatched before we saw it: its end_node frees it */
		list_add(c, w);
		w->need_fetch = !already_covered(c, w);
		w->phase = PH_STITCH;
		c->pending = true;
		if (w->need_fetch) {
			c->fetch_any = true;
			c->ready_pos = UINT64_MAX;
		} else if (c->ready_pos == UINT64_MAX && !c->fetch_any) {
			c->ready_pos = c->ring ? th_ring_reader_pos(c->ring) : UINT64_MAX;
		}
	}
}

/* Drop the entries of the local copy that no adopted watcher covers any more,
 * under the path of a reclaimed watcher. */
static void prune(struct th_conn *c, const struct watcher *w)
{
	struct th__entry **v;
	size_t n;
	if (th__mirror_list(&c->mirror, false, w->table, w->path, w->path_len, !w->recursive, &v, &n))
		return; /* out of memory: keeping extra entries is harmless */
	for (size_t i = 0; i < n; i++) {
		int err;
		if (!covered(c, v[i]->table, v[i]->key, v[i]->key_len, &err) && !err)
			th__mirror_remove(&c->mirror, v[i]->table, v[i]->key, v[i]->key_len);
	}
	free(v);
	th_store_relaxed(&c->st_entries, c->mirror.count);
}

/* Free every ended watcher: unlinked by its ender, then one grace period,
 * then its free function. Dispatcher only, never inside a callback. */
static void reclaim(struct th_conn *c)
{
	struct cds_wfcq_node *n;
	bool any = c->reclaim != NULL;
	while ((n = __cds_wfcq_dequeue_blocking(&c->end_head, &c->end_tail)) != NULL) {
		struct watcher *w = caa_container_of(n, struct watcher, end_node);
		/* Pairs with the store-release in unwatch: its accesses are over. */
		while (!th_load_acquire(&w->unlinked))
			th_cpu_relax();
		w->reclaim_next = c->reclaim;
		c->reclaim = w;
		any = true;
	}
	if (!any)
		return;
	/* Its adopt_node may still be queued (watch, then unwatch, both after
	 * our last adoption): take it out before freeing. */
	adopt_new(c);
	grace_period(c);
	struct watcher *list = c->reclaim;
	c->reclaim = NULL;
	for (struct watcher *w = list; w; w = w->reclaim_next)
		if (w->listed)
			list_del(c, w);
	while (list) {
		struct watcher *w = list;
		list = w->reclaim_next;
		if (w->phase != PH_NEW)
			prune(c, w);
		if (w->free_arg)
			w->free_arg(w->arg);
		free(w);
		th_fetch_add_relaxed(&c->st_watches, (uint64_t)-1); /* a counter: no ordering */
	}
}

/* ---- connecting ---------------------------------------------------------- */

static void epoll_set(struct th_conn *c, int fd, bool add)
{
	if (c->epoll_fd < 0 || fd < 0)
		return;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	epoll_ctl(c->epoll_fd, add ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev);
}

static void disconnect(struct th_conn *c)
{
	if (c->ring) {
		epoll_set(c, th_ring_reader_event_fd(c->ring), false);
		th_ring_reader_close(c->ring);
		c->ring = NULL;
	}
	if (c->ctl) {
		epoll_set(c, th_ctl_fd(c->ctl), false);
		th_ctl_close(c->ctl);
		c->ctl = NULL;
	}
	c->connected = false;
}

/* Connect and attach. 0, or a negative code with nothing left open. */
static int attach(struct th_conn *c)
{
	struct th_ctl *ctl;
	int rc = th_ctl_connect(c->socket_path, &ctl);
	if (rc)
		return rc;
	struct th_msg_attach_reply rep;
	struct th_ring_reader_fds rf = { -1, -1, -1 };
	char name[sizeof ((struct th_msg_attach *)0)->name + 1] = { 0 };
	memcpy(name, c->name, sizeof name - 1);
	rc = th_ctl_attach(ctl, c->timeout_ns, (uint32_t)getpid(), name, &rep, &rf, 10000);
	struct th_ring_reader *r = NULL;
	if (rc == 0) {
		rc = th_ring_reader_open(&rf, &r, NULL, 0);
		close(rf.ring_fd);
		close(rf.slot_fd);
		close(rf.event_fd);
	}
	if (rc) {
		th_ctl_close(ctl);
		return rc;
	}
	th_ring_reader_set_timeout(r, c->timeout_ns);
	c->ctl = ctl;
	c->ring = r;
	c->generation = rep.generation;
	c->connected = true;
	th_store_relaxed(&c->ntables, rep.ntables < NTABLES_MAX ? rep.ntables : NTABLES_MAX);
	th_store_relaxed(&c->st_generation, rep.generation);
	if (rep.revision > c->revision)
		c->revision = rep.revision;
	epoll_set(c, th_ring_reader_event_fd(r), true);
	epoll_set(c, th_ctl_fd(ctl), true);
	return 0;
}

static void schedule_retry(struct th_conn *c)
{
	c->backoff_ns = c->backoff_ns ? c->backoff_ns * 2 : BACKOFF_MIN_NS;
	if (c->backoff_ns > BACKOFF_MAX_NS)
		c->backoff_ns = BACKOFF_MAX_NS;
	c->retry_at_ns = th_now_ns() + c->backoff_ns;
	if (c->timer_fd >= 0) {
		struct itimerspec its = { .it_value = th_ns_to_timespec(c->retry_at_ns) };
		timerfd_settime(c->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
	}
}

/* ---- losing and regaining continuity -------------------------------------- */

/* Continuity of table (UINT32_MAX: all) is lost: tell its live watches, set
 * the copy aside (what they were told, for the diff), and ask for a fetch. */
static void lose(struct th_conn *c, uint32_t table, uint32_t cause)
{
	TH_TRACE_RESYNC_START(c, cause);
	bool all = table == UINT32_MAX;
	for (struct watcher *w = c->list; w; w = w->next) {
		if (!all && w->table != table)
			continue;
		if (w->phase == PH_LIVE) {
			w->phase = PH_RESYNC;
			deliver_marker(c, w, TH_EVENT_RESYNC, cause);
		}
	}
	uint32_t lo = all ? 0 : table, hi = all ? NTABLES_MAX : table + 1;
	/* A table set aside already keeps what its watches were told; what the
	 * copy holds of it now was never told to anyone. */
	for (uint32_t t = lo; t < hi; t++)
		if (c->table_resync[t])
			th__mirror_move_table(&c->mirror, NULL, t);
	if (all && c->old.count == 0) {
		/* The common case: swap, nothing to allocate. */
		th__mirror_clear(&c->old); /* its (empty) table */
		c->old = c->mirror;
		c->mirror = (struct th__mirror){ 0 };
	} else if (th__mirror_move_table(&c->mirror, &c->old, table) != 0) {
		/* Out of memory half-way: what did not move is dropped, so the
		 * diff will report those entries as new puts, not their deletes. */
		th__mirror_move_table(&c->mirror, NULL, table);
	}
	for (uint32_t t = lo; t < hi; t++) {
		c->table_resync[t] = true;
		c->fetch_table[t] = true;
	}
	c->fetch_any = true;
	c->pending = true;
	c->ready_pos = UINT64_MAX;
	stat_add(&c->st_resyncs, 1);
	if (cause == TH_RESYNC_EVICTED)
		stat_add(&c->st_evictions, 1);
	else if (cause == TH_RESYNC_LAPPED)
		stat_add(&c->st_laps, 1);
	else if (cause == TH_RESYNC_HUB_LOST)
		stat_add(&c->st_reconnects, 1);
	th_store_relaxed(&c->st_entries, c->mirror.count);
}

static void hub_lost(struct th_conn *c)
{
	if (!c->connected)
		return;
	lose(c, UINT32_MAX, TH_RESYNC_HUB_LOST);
	disconnect(c);
	c->backoff_ns = 0;
	schedule_retry(c);
}

/* Held exactly already: in the copy, or covered by a watch whose entries
 * were fetched before this round (a key it covers may be absent: deleted). */
static bool covered_before(struct th_conn *c, uint32_t table, const char *key, uint32_t klen)
{
	if (th__mirror_find(&c->mirror, table, key, klen))
		return true;
	if (collect_matches(c, table, key, klen))
		return true; /* out of memory: keeping the copy's view is the safe side */
	for (size_t i = 0; i < c->nmatch; i++)
		if (c->match[i]->phase != PH_NEW && !c->match[i]->need_fetch)
			return true;
	return false;
}

/* Fetch one watch's entries into the copy. fresh: the table was set aside,
 * take the newest of overlapping snapshots; else keep keys already held (the
 * ring brings their changes). */
static int fetch_one(struct th_conn *c, uint32_t table, bool recursive, const char *path, uint32_t plen, bool fresh)
{
	struct th_ctl_snapshot s;
	int rc = th_ctl_snapshot(c->ctl, recursive ? TH_MSG_SNAPSHOT : TH_MSG_GET, table, path, plen, &s, 30000);
	if (rc)
		return rc;
	struct th_snap_iter it = th_ctl_snapshot_iter(&s);
	struct th_snap_entry se;
	const uint8_t *k, *v;
	while ((rc = th_snap_next(&it, &se, &k, &v)) == 1) {
		const char *key = (const char *)k;
		if (recursive ? !th__prefix_matches(path, plen, key, se.key_len)
			      : (se.key_len != plen || memcmp(key, path, plen) != 0))
			continue; /* the hub matches bytes; we match components */
		if (!fresh && covered_before(c, table, key, se.key_len))
			continue; /* exact already: the ring from here brings its changes */
		struct th__entry *e = th__entry_new(table, key, se.key_len, (const char *)v, se.value_len, se.flags,
						    se.version, se.revision, 0, "", 0);
		if (!e) {
			rc = -ENOMEM;
			break;
		}
		rc = th__mirror_put_newer(&c->mirror, e);
		if (rc < 0)
			break;
	}
	if (s.reply.revision > c->revision)
		c->revision = s.reply.revision;
	th_ctl_snapshot_free(&s);
	return rc < 0 ? rc : 0;
}

/* Is w's path inside another watch's recursive prefix (so fetching that one
 * fetches w's entries)? Ties between equal prefixes go to the earlier one. */
static bool fetched_by_other(struct th_conn *c, struct watcher *w)
{
	for (struct watcher *o = c->list; o; o = o->next) {
		if (o == w || !o->recursive || o->table != w->table || th_load_relaxed(&o->dead))
			continue;
		if (!th__prefix_matches(o->path, o->path_len, w->path, w->path_len))
			continue;
		if (w->recursive && o->path_len == w->path_len) {
			/* Equal prefixes: the one nearer the list head fetches. */
			for (struct watcher *p = c->list; p; p = p->next) {
				if (p == o)
					return true;
				if (p == w)
					break;
			}
			continue;
		}
		return true;
	}
	return false;
}

/* Fetch what adoption and resync need, then note where the copy is exact. */
static int fetch(struct th_conn *c)
{
	if (!c->fetch_any || !c->connected)
		return 0;
	for (struct watcher *w = c->list; w; w = w->next) {
		if (th_load_relaxed(&w->dead))
			continue;
		bool fresh = c->fetch_table[w->table];
		if (!fresh && !w->need_fetch)
			continue;
		if (fetched_by_other(c, w))
			continue; /* a recursive watch fetched this round covers it */
		int rc = fetch_one(c, w->table, w->recursive, w->path, w->path_len, fresh);
		if (rc == -ENOMEM) {
			lose(c, w->table, RESYNC_NOMEM);
			return rc;
		}
		if (rc) {
			hub_lost(c);
			return rc;
		}
	}
	for (struct watcher *w = c->list; w; w = w->next)
		w->need_fetch = false;
	memset(c->fetch_table, 0, sizeof c->fetch_table);
	c->fetch_any = false;
	/* Every change up to the snapshots' revisions is before the head now. */
	c->ready_pos = th_ring_reader_head(c->ring);
	th_store_relaxed(&c->st_entries, c->mirror.count);
	return 0;
}

static int reconnect(struct th_conn *c)
{
	if (th_now_ns() < c->retry_at_ns)
		return -EAGAIN;
	int rc = attach(c);
	if (rc) {
		schedule_retry(c);
		return rc;
	}
	c->backoff_ns = 0;
	return fetch(c);
}

/* ---- reading the ring ----------------------------------------------------- */

static void put_event(void *ctx, const struct th__entry *e);
static void del_event(void *ctx, const struct th__entry *e);

struct diff_ctx {
	struct th_conn *c;
	struct watcher *w;
	bool ended;
};

static void put_event(void *ctx, const struct th__entry *e)
{
	struct diff_ctx *d = ctx;
	struct th_event ev;
	event_from_entry(&ev, TH_EVENT_PUT, e);
	deliver(d->c, d->w, &ev);
}

static void del_event(void *ctx, const struct th__entry *e)
{
	struct diff_ctx *d = ctx;
	struct th_event ev;
	event_from_entry(&ev, TH_EVENT_DELETE, e);
	ev.revision = d->c->revision;
	deliver(d->c, d->w, &ev);
	if (!d->w->recursive)
		d->ended = true;
}

static void initial_events(struct th_conn *c, struct watcher *w)
{
	struct th_event ev;
	if (!w->recursive) {
		struct th__entry *e = th__mirror_find(&c->mirror, w->table, w->path, w->path_len);
		if (!e) {
			struct th_event nf = { .kind = TH_EVENT_NOT_FOUND, .revision = c->revision, .key = w->path,
					       .key_len = w->path_len, .value = "", .gtid = "" };
			deliver(c, w, &nf);
			end_watch(c, w, TH_END_NOT_FOUND);
			return;
		}
		event_from_entry(&ev, TH_EVENT_INITIAL, e);
		deliver(c, w, &ev);
		return;
	}
	struct th__entry **v;
	size_t n;
	if (th__mirror_list(&c->mirror, false, w->table, w->path, w->path_len, false, &v, &n)) {
		/* Cannot list them: say so the only way that is never silent. */
		deliver_marker(c, w, TH_EVENT_RESYNC, RESYNC_NOMEM);
		w->phase = PH_RESYNC;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		event_from_entry(&ev, TH_EVENT_INITIAL, v[i]);
		deliver(c, w, &ev);
	}
	free(v);
	deliver_marker(c, w, TH_EVENT_SYNCED, 0);
}

/* The copy is exact at a transaction boundary at or past ready_pos: hand out
 * what the waiting watches need. */
static void finish_pending(struct th_conn *c)
{
	if (!c->pending || c->fetch_any || !c->connected || th_ring_reader_pos(c->ring) < c->ready_pos)
		return;
	c->pending = false;
	c->ready_pos = UINT64_MAX;
	for (struct watcher *w = c->list; w; w = w->next) {
		if (th_load_relaxed(&w->dead) || w->phase == PH_NEW || w->phase == PH_LIVE)
			continue;
		if (w->phase == PH_STITCH) {
			w->phase = PH_LIVE;
			initial_events(c, w);
			continue;
		}
		/* PH_RESYNC: from what it was told (old) to the state (mirror). */
		w->phase = PH_LIVE;
		struct diff_ctx d = { c, w, false };
		if (th__mirror_diff(&c->old, &c->mirror, w->table, w->path, w->path_len, !w->recursive, put_event,
				    del_event, &d)) {
			w->phase = PH_RESYNC;
			c->pending = true; /* try again at the next boundary */
			continue;
		}
		if (d.ended)
			end_watch(c, w, TH_END_DELETED);
		else
			deliver_marker(c, w, TH_EVENT_SYNCED, 0);
	}
	if (!c->pending) {
		th__mirror_clear(&c->old);
		TH_TRACE_RESYNC_DONE(c, c->revision, c->mirror.count);
		memset(c->table_resync, 0, sizeof c->table_resync);
	} else {
		c->ready_pos = th_ring_reader_pos(c->ring);
	}
}

static int scratch_fit(struct th_conn *c, size_t n)
{
	return th__grow((void **)&c->scratch, &c->scratchlen, n, 1);
}

static void handle_change(struct th_conn *c, const struct th_ring_record *rec, const char *p)
{
	struct th_rec_change ch;
	if (rec->len < sizeof ch)
		return;
	memcpy(&ch, p, sizeof ch);
	TH_TRACE_READER_RECORD(ch.revision, rec->pos, rec->type);
	if ((uint64_t)sizeof ch + ch.key_len + ch.value_len + ch.gtid_len > rec->len)
		return; /* malformed: the ring's framing is intact, the payload is not ours to guess */
	const char *key = p + sizeof ch, *value = key + ch.key_len, *gtid = value + ch.value_len;
	uint64_t mono_now = th_now_ns();
	int err;
	if (!covered(c, ch.table, key, ch.key_len, &err)) {
		if (err)
			lose(c, ch.table, RESYNC_NOMEM);
		return;
	}
	struct th_event ev = { .kind = ch.op == TH_OP_DELETE ? TH_EVENT_DELETE : TH_EVENT_PUT,
			       .flags = (ch.flags & TH_CHANGE_F_VALUE_NULL) ? TH_EVENT_F_VALUE_NULL : 0,
			       .version = ch.version, .revision = ch.revision, .commit_us = ch.commit_us,
			       .publish_ns = ch.publish_ns, .key_len = ch.key_len, .gtid_len = ch.gtid_len };
	ev.latency_ns = mono_now > rec->publish_ns ? mono_now - rec->publish_ns : 0;
	/* A snapshot already had this change (or a later one): told already. */
	struct th__entry **slot = th__mirror_slot(&c->mirror, ch.table, key, ch.key_len);
	struct th__entry *old = slot ? *slot : NULL;
	if (th__change_is_known(old, ch.revision))
		return;
	if (ch.op == TH_OP_DELETE) {
		if (!old)
			return; /* never had it: nothing to tell */
		old = th__mirror_take(&c->mirror, ch.table, key, ch.key_len);
		ev.key = old->key;
		ev.value = "";
		ev.gtid = "";
		if (scratch_fit(c, (size_t)ch.gtid_len + 1) == 0) {
			memcpy(c->scratch, gtid, ch.gtid_len);
			c->scratch[ch.gtid_len] = 0;
			ev.gtid = c->scratch;
		} else {
			ev.gtid_len = 0;
		}
	} else {
		struct th__entry *e = th__entry_new(ch.table, key, ch.key_len, value, ch.value_len, ch.flags, ch.version,
						    ch.revision, ch.commit_us, gtid, ch.gtid_len);
		if (!e || (!slot && th__mirror_put(&c->mirror, e))) {
			lose(c, ch.table, RESYNC_NOMEM);
			return;
		}
		if (slot)
			*slot = e; /* the same key, the same slot; old is freed below */
		ev.key = e->key;
		ev.value = e->value;
		ev.value_len = e->value_len;
		ev.gtid = e->gtid;
	}
	th_store_relaxed(&c->st_entries, c->mirror.count);
	ev.deliver_ns = th_realtime_ns();
	for (size_t i = 0; i < c->nmatch; i++) {
		struct watcher *w = c->match[i];
		if (w->phase != PH_LIVE)
			continue;
		struct th_event e = ev;
		deliver(c, w, &e);
		if (!w->recursive && ch.op == TH_OP_DELETE)
			end_watch(c, w, TH_END_DELETED);
	}
	free(old);
}

/* Read and handle records up to the head (whole transactions). Returns the
 * number of records read, or a negative code for "stop reading now". */
static int read_ring(struct th_conn *c)
{
	int nrec = 0;
	for (;;) {
		struct th_ring_record rec;
		int rc = th_ring_read(c->ring, &rec, c->buf, c->buflen);
		if (rc == 0) {
			finish_pending(c);
			return nrec;
		}
		if (rc == -ENOBUFS) {
			void *nb = realloc(c->buf, rec.len);
			if (!nb) {
				lose(c, UINT32_MAX, RESYNC_NOMEM);
				uint64_t pos;
				th_ring_reader_rejoin(c->ring, &pos);
				return nrec;
			}
			c->buf = nb;
			c->buflen = rec.len;
			continue;
		}
		if (rc == -TH_EEVICTED && th_ring_reader_evict_reason(c->ring) == TH_RING_EVICT_SHUTDOWN) {
			hub_lost(c); /* the hub is going away: reconnect to the next one */
			return rc;
		}
		if (rc == -TH_EEVICTED || rc == -TH_ELAPPED) {
			/* The hub evicts a reader it lapped: name the cause, not the messenger. */
			bool lapped = rc == -TH_ELAPPED || th_ring_reader_evict_reason(c->ring) == TH_RING_EVICT_LAPPED;
			lose(c, UINT32_MAX, lapped ? TH_RESYNC_LAPPED : TH_RESYNC_EVICTED);
			uint64_t pos;
			th_ring_reader_rejoin(c->ring, &pos);
			struct th_ctl_reply rep;
			int wr = th_ctl_call(c->ctl, TH_MSG_REJOIN, NULL, 0, &rep, 10000);
			if (wr == 0)
				th_ctl_reply_free(&rep);
			if (wr == -ECONNRESET || wr == -EPIPE || wr == -ETIMEDOUT) {
				hub_lost(c);
				return -ECONNRESET;
			}
			if (fetch(c))
				return -ECONNRESET;
			return nrec;
		}
		if (rc < 0) {
			/* -TH_ECLOSED: the hub stopped. -TH_ECORRUPT: a hub bug; start over. */
			hub_lost(c);
			return rc;
		}
		nrec++;
		stat_add(&c->st_records, 1);
		if (rec.publish_ns != c->last_batch_ns) { /* a transaction's records share its time */
			c->batch_gap_ns = rec.publish_ns > c->last_batch_ns ? rec.publish_ns - c->last_batch_ns : 0;
			c->last_batch_ns = rec.publish_ns;
		}
		if (rec.type == TH_REC_CHANGE) {
			/* First: an ENDED or RESYNC it causes carries its revision. */
			if (rec.len >= sizeof(struct th_rec_change)) {
				uint64_t r;
				memcpy(&r, c->buf, sizeof r);
				if (r > c->revision)
					c->revision = r;
			}
			handle_change(c, &rec, c->buf);
		} else if (rec.type == TH_REC_RESYNC && rec.len >= sizeof(struct th_rec_resync)) {
			struct th_rec_resync rs;
			memcpy(&rs, c->buf, sizeof rs);
			TH_TRACE_READER_RECORD(rs.revision, rec.pos, rec.type);
			lose(c, rs.table >= NTABLES_MAX ? UINT32_MAX : rs.table, TH_RESYNC_HUB);
			if (fetch(c))
				return -ECONNRESET;
		}
		if (rec.flags & TH_RING_F_BATCH_END) {
			th_store_relaxed(&c->st_revision, c->revision);
			finish_pending(c);
			/* Let adoptions and reclaims in between transactions. */
			if (nrec >= 4096)
				return nrec;
		}
	}
}

/* Is the control socket closed (the hub died without closing the ring)?
 * Anything the hub sends unasked is read and dropped (none is defined yet). */
static bool ctl_dead(struct th_conn *c)
{
	for (;;) {
		char b[256];
		ssize_t n = recv(th_ctl_fd(c->ctl), b, sizeof b, MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0)
			return true;
		return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
	}
}

/* One round: registrations, connection, ring. Returns records + events, >= 0. */
static int dispatch_round(struct th_conn *c)
{
	int work = 0;
	/* A read() per round would be a system call per record for nothing:
	 * drain only when wake() said it wrote. */
	if (th_load_relaxed(&c->wake_pending) && th_exchange_seq_cst(&c->wake_pending, 0))
		drain_fd(c->wake_fd);
	adopt_new(c);
	reclaim(c);
	if (!c->connected) {
		if (reconnect(c) != 0 && !c->connected)
			goto out;
	}
	if (c->fetch_any && fetch(c) != 0)
		goto out;
	int n = read_ring(c);
	if (n > 0)
		work += n;
out:
	reclaim(c);
	return work + c->delivered;
}

/* TH_WAIT_FD: take the epoll set's events without waiting, so that a closed
 * control socket or an expired backoff timer is handled even by a
 * dispatch(c, 0), and the caller's level-triggered epoll does not spin. */
static void poll_events(struct th_conn *c, int timeout_ms)
{
	struct epoll_event evs[4];
	int n = epoll_wait(c->epoll_fd, evs, 4, timeout_ms);
	for (int i = 0; i < n; i++) {
		if (evs[i].data.fd == c->timer_fd)
			drain_fd(c->timer_fd);
		else if (c->connected && evs[i].data.fd == th_ctl_fd(c->ctl) && ctl_dead(c))
			hub_lost(c);
	}
}

static int wait_work(struct th_conn *c, uint64_t deadline)
{
	uint64_t now = th_now_ns();
	if (now >= deadline)
		return 0;
	uint64_t left = deadline - now;
	if (c->wait_mode == TH_WAIT_FD) {
		if (c->connected && th_ring_reader_arm(c->ring) == 1)
			return 1;
		struct epoll_event evs[4];
		int ms = deadline == UINT64_MAX ? -1 : (int)((left + 999999) / 1000000);
		int n = epoll_wait(c->epoll_fd, evs, 4, ms);
		TH_TRACE_READER_WOKEN(c, c->wait_mode);
		if (c->connected)
			th_ring_reader_disarm(c->ring);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == c->timer_fd)
				drain_fd(c->timer_fd);
			else if (c->connected && evs[i].data.fd == th_ctl_fd(c->ctl) && ctl_dead(c))
				hub_lost(c);
		}
		return n > 0;
	}
	if (!c->connected || !cds_wfcq_empty(&c->adopt_head, &c->adopt_tail) ||
	    !cds_wfcq_empty(&c->end_head, &c->end_tail)) {
		uint64_t until = c->connected ? now : c->retry_at_ns;
		if (until > deadline)
			until = deadline;
		if (until > now) {
			struct pollfd p = { .fd = c->wake_fd, .events = POLLIN };
			poll(&p, 1, (int)((until - now + 999999) / 1000000));
		}
		return 1;
	}
	uint64_t slice = c->wait_mode == TH_WAIT_SPIN ? SLICE_SPIN_NS : SLICE_FUTEX_NS;
	int r = th_ring_wait(c->ring, c->wait_mode == TH_WAIT_SPIN ? TH_RING_WAIT_SPIN : TH_RING_WAIT_FUTEX,
			     (int64_t)(left < slice ? left : slice), c->spin_cur);
	/* Adaptive spin: spinning pays only while the hub publishes
	 * transactions closer together than spin_ns; otherwise every wait burns
	 * spin_ns of CPU for nothing, and with many subscribers on few cores
	 * that CPU is the others' latency. Judged by the stream's own pace (the
	 * publication times of the last two transactions), not by how long this
	 * wait took: a subscriber that runs late on a busy machine finds records
	 * waiting, which says nothing of the pace and would turn spinning on
	 * exactly when the cores are short. Full spin at a fast pace, halved
	 * after each slower gap or empty wait. */
	if (r == 1 && c->batch_gap_ns <= c->spin_ns)
		c->spin_cur = c->spin_ns;
	else
		c->spin_cur /= 2;
	TH_TRACE_READER_WOKEN(c, c->wait_mode);
	if (r == 0 && ctl_dead(c)) {
		hub_lost(c);
		return 1;
	}
	return r;
}

static int dispatch_locked(struct th_conn *c, int64_t timeout_ns)
{
	c->delivered = 0;
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : th_now_ns() + (uint64_t)timeout_ns;
	if (c->wait_mode == TH_WAIT_FD && c->connected)
		th_ring_reader_disarm(c->ring);
	if (c->wait_mode == TH_WAIT_FD)
		poll_events(c, 0);
	int work = dispatch_round(c);
	while (work == 0 && !th_load_relaxed(&c->stop)) {
		if (!wait_work(c, deadline) && th_now_ns() >= deadline)
			break;
		work = dispatch_round(c);
	}
	if (c->wait_mode == TH_WAIT_FD) {
		/* Leave the fd meaning "call dispatch": armed, or signalled. */
		if (c->connected && (th_ring_reader_arm(c->ring) == 1 || !cds_wfcq_empty(&c->adopt_head, &c->adopt_tail) ||
				     !cds_wfcq_empty(&c->end_head, &c->end_tail)))
			wake(c);
	}
	return c->delivered;
}

/* ---- the API -------------------------------------------------------------- */

/* Copy a caller's size-prefixed struct: a smaller one gets zeros (defaults)
 * past its end, a larger one must be zero past ours. */
static int copy_in(void *dst, size_t dsize, const void *src, size_t min)
{
	uint32_t ssize;
	memcpy(&ssize, src, sizeof ssize);
	if (ssize < min)
		return -EINVAL;
	memset(dst, 0, dsize);
	memcpy(dst, src, ssize < dsize ? ssize : dsize);
	for (size_t i = dsize; i < ssize; i++)
		if (((const unsigned char *)src)[i])
			return -E2BIG;
	return 0;
}

static void *dispatch_thread(void *arg);
static void api_close(struct th_conn *c);

static int api_open(const struct th_open_opts *uopts, struct th_conn **out)
{
	if (!out)
		return -EINVAL;
	struct th_open_opts o = { .size = sizeof o };
	if (uopts) {
		int rc = copy_in(&o, sizeof o, uopts, offsetof(struct th_open_opts, socket_path));
		if (rc)
			return rc;
	}
	if (o.flags & ~TH_OPEN_F_ALL || o.wait_mode > TH_WAIT_FD || o.reserved)
		return -EINVAL;
	struct th_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->wake_fd = c->epoll_fd = c->timer_fd = -1;
	c->ready_pos = UINT64_MAX;
	c->wait_mode = o.wait_mode;
	c->flags = o.flags;
	c->timeout_ns = o.timeout_ns ? o.timeout_ns : DEFAULT_TIMEOUT_NS;
	c->spin_ns = o.spin_ns ? o.spin_ns : DEFAULT_SPIN_NS;
	c->spin_cur = c->spin_ns;
	snprintf(c->name, sizeof c->name, "%s", o.name ? o.name : "libtopohub");
	th_store_relaxed(&c->next_id, 1);
	pthread_mutex_init(&c->qlock, NULL);
	__cds_wfcq_init(&c->adopt_head, &c->adopt_tail);
	__cds_wfcq_init(&c->end_head, &c->end_tail);
	int rc = -ENOMEM;
	c->socket_path = strdup(o.socket_path ? o.socket_path : TH_DEFAULT_SOCKET);
	c->buflen = 65536;
	c->buf = malloc(c->buflen);
	/* No CDS_LFHT_AUTO_RESIZE: that would start liburcu's resize thread in
	 * the caller's process. 1024 buckets keep chains short for thousands. */
	c->paths = cds_lfht_new(1024, 1024, 0, 0, NULL);
	c->ids = cds_lfht_new(1024, 1024, 0, 0, NULL);
	c->memo_gen = UINT64_MAX; /* no memo yet */
	if (!c->socket_path || !c->buf || !c->paths || !c->ids)
		goto fail;
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (c->wait_mode == TH_WAIT_FD) {
		c->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
		c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (c->epoll_fd < 0 || c->timer_fd < 0) {
			rc = -errno;
			goto fail;
		}
		epoll_set(c, c->wake_fd, true);
		epoll_set(c, c->timer_fd, true);
	}
	rc = attach(c);
	if (rc)
		goto fail;
	if (c->flags & TH_OPEN_F_THREAD) {
		rc = -pthread_create(&c->thread, NULL, dispatch_thread, c);
		if (rc)
			goto fail;
		c->have_thread = true;
	}
	*out = c;
	return 0;
fail:
	api_close(c);
	return rc;
}

static void *dispatch_thread(void *arg)
{
	struct th_conn *c = arg;
	while (!th_load_acquire(&c->stop)) /* pairs with the store-release in close */
		dispatch_locked(c, 100000000);
	return NULL;
}

static void api_close(struct th_conn *c)
{
	if (!c)
		return;
	th_store_relaxed(&c->closing, 1);
	if (c->have_thread) {
		th_store_release(&c->stop, 1); /* pairs with the load-acquire in dispatch_thread */
		wake(c);
		pthread_join(c->thread, NULL);
	}
	if (c->paths && c->ids) {
		/* No other call runs now: end everything, free once. */
		adopt_new(c);
		struct cds_wfcq_node *n;
		while ((n = __cds_wfcq_dequeue_blocking(&c->end_head, &c->end_tail)) != NULL) {
			struct watcher *w = caa_container_of(n, struct watcher, end_node);
			while (!th_load_acquire(&w->unlinked)) /* pairs with the store-release in unwatch */
				th_cpu_relax();
			w->reclaim_next = c->reclaim;
			c->reclaim = w;
		}
		struct cds_lfht_iter it;
		struct watcher *live = NULL;
		rcu_lock();
		cds_lfht_first(c->ids, &it);
		for (struct cds_lfht_node *nd; (nd = cds_lfht_iter_get_node(&it)) != NULL; cds_lfht_next(c->ids, &it)) {
			struct watcher *w = caa_container_of(nd, struct watcher, id_node);
			cds_lfht_del(c->ids, &w->id_node);
			cds_lfht_del(c->paths, &w->path_node);
			paths_changed(c);
			w->reclaim_next = live;
			live = w;
		}
		rcu_unlock(c);
		grace_period(c);
		for (struct watcher *lists[2] = { c->reclaim, live }, **l = lists; l < lists + 2; l++) {
			while (*l) {
				struct watcher *w = *l;
				*l = w->reclaim_next;
				if (w->free_arg)
					w->free_arg(w->arg);
				free(w);
			}
		}
		c->reclaim = NULL;
	}
	if (c->paths)
		cds_lfht_destroy(c->paths, NULL);
	if (c->ids)
		cds_lfht_destroy(c->ids, NULL);
	disconnect(c);
	th_ctl_close(c->q);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	if (c->epoll_fd >= 0)
		close(c->epoll_fd);
	if (c->timer_fd >= 0)
		close(c->timer_fd);
	th__mirror_clear(&c->mirror);
	th__mirror_clear(&c->old);
	pthread_mutex_destroy(&c->qlock);
	free(c->match);
	free(c->memo);
	free(c->memo_parent);
	free(c->buf);
	free(c->scratch);
	free(c->socket_path);
	free(c);
}

static int register_watch(struct th_conn *c, const struct th_watch_opts *uopts, th_watch_id *id, bool recursive)
{
	if (!c || !uopts || !id)
		return -EINVAL;
	struct th_watch_opts o;
	int rc = copy_in(&o, sizeof o, uopts, offsetof(struct th_watch_opts, arg));
	if (rc)
		return rc;
	if (o.flags || o.reserved || !o.callback || !o.path)
		return -EINVAL;
	uint32_t nt = th_load_relaxed(&c->ntables);
	if (o.table >= (nt ? nt : NTABLES_MAX))
		return -EINVAL;
	size_t len = strnlen(o.path, TH_KEY_MAX + 1);
	if (len > TH_KEY_MAX)
		return -ENAMETOOLONG;
	if (th_load_relaxed(&c->closing))
		return -ESHUTDOWN;
	uint32_t plen = recursive ? th__path_trim(o.path, (uint32_t)len) : (uint32_t)len;
	struct watcher *w = calloc(1, sizeof *w + plen + 1);
	if (!w)
		return -ENOMEM;
	memcpy(w->path, o.path, plen);
	w->path[plen] = 0;
	w->path_len = plen;
	w->recursive = recursive;
	w->table = o.table;
	w->cb = o.callback;
	w->arg = o.arg;
	w->free_arg = o.free_arg;
	w->phase = PH_NEW;
	w->id = th_fetch_add_relaxed(&c->next_id, 1); /* uniqueness only */
	w->path_hash = path_hash(recursive, o.table, w->path, plen);
	cds_lfht_node_init(&w->path_node);
	cds_lfht_node_init(&w->id_node);
	cds_wfcq_node_init(&w->adopt_node);
	cds_wfcq_node_init(&w->end_node);
	*id = w->id; /* before publication: once published, it may be gone */
	/* Pairs with the load-acquire in match_path/match_id/adopt_new. */
	th_store_release(&w->ready, 1);
	uint64_t idh = hash_mix(hash_bytes(0xcbf29ce484222325ull, &w->id, sizeof w->id));
	rcu_lock();
	cds_lfht_add(c->ids, idh, &w->id_node);
	cds_lfht_add(c->paths, w->path_hash, &w->path_node);
	rcu_unlock(c);
	paths_changed(c);
	th_fetch_add_relaxed(&c->st_watches, 1); /* a counter: no ordering */
	cds_wfcq_enqueue(&c->adopt_head, &c->adopt_tail, &w->adopt_node);
	wake(c);
	return 0;
}

static int api_watch(struct th_conn *c, const struct th_watch_opts *o, th_watch_id *id)
{
	return register_watch(c, o, id, false);
}

static int api_watch_recursive(struct th_conn *c, const struct th_watch_opts *o, th_watch_id *id)
{
	return register_watch(c, o, id, true);
}

static int api_unwatch(struct th_conn *c, th_watch_id id)
{
	if (!c)
		return -EINVAL;
	uint64_t idh = hash_mix(hash_bytes(0xcbf29ce484222325ull, &id, sizeof id));
	struct cds_lfht_iter it;
	rcu_lock();
	cds_lfht_lookup(c->ids, idh, match_id, &id, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	struct watcher *w = n ? caa_container_of(n, struct watcher, id_node) : NULL;
	/* Pairs with the seq_cst load in deliver(). */
	if (!w || th_exchange_seq_cst(&w->dead, 1)) {
		rcu_unlock(c);
		return -ENOENT;
	}
	cds_lfht_del(c->paths, &w->path_node);
	cds_lfht_del(c->ids, &w->id_node);
	paths_changed(c); /* before it can be reclaimed: no memo holds it then */
	/* Pairs with the load-acquire in reclaim(): our accesses end here. */
	th_store_release(&w->unlinked, 1);
	cds_wfcq_enqueue(&c->end_head, &c->end_tail, &w->end_node);
	rcu_unlock(c);
	wake(c);
	return 0;
}

static int api_get(struct th_conn *c, uint32_t table, const char *key, struct th_entry **out)
{
	if (!c || !key || !out || table >= NTABLES_MAX)
		return -EINVAL;
	size_t klen = strnlen(key, TH_KEY_MAX + 1);
	if (klen > TH_KEY_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&c->qlock);
	struct th_ctl_snapshot s;
	int rc = -ECONNRESET;
	for (int attempt = 0; attempt < 2 && rc == -ECONNRESET; attempt++) {
		if (!c->q) {
			rc = th_ctl_connect(c->socket_path, &c->q);
			if (rc)
				break;
		}
		rc = th_ctl_snapshot(c->q, TH_MSG_GET, table, key, (uint32_t)klen, &s, 30000);
		if (rc == -ECONNRESET || rc == -EPIPE || rc == -TH_EPROTO) {
			th_ctl_close(c->q);
			c->q = NULL;
			rc = rc == -TH_EPROTO ? rc : -ECONNRESET;
		}
	}
	pthread_mutex_unlock(&c->qlock);
	if (rc)
		return rc;
	struct th_snap_iter it = th_ctl_snapshot_iter(&s);
	struct th_snap_entry se;
	const uint8_t *k, *v;
	rc = th_snap_next(&it, &se, &k, &v);
	if (rc == 1 && (se.key_len != klen || memcmp(k, key, klen) != 0))
		rc = -TH_EPROTO;
	if (rc <= 0) {
		th_ctl_snapshot_free(&s);
		return rc == 0 ? -TH_ENOTFOUND : rc;
	}
	struct th_entry *e = malloc(sizeof *e + se.key_len + 1 + se.value_len + 1);
	if (!e) {
		th_ctl_snapshot_free(&s);
		return -ENOMEM;
	}
	char *ek = (char *)(e + 1), *ev = ek + se.key_len + 1;
	memcpy(ek, k, se.key_len);
	ek[se.key_len] = 0;
	memcpy(ev, v, se.value_len);
	ev[se.value_len] = 0;
	*e = (struct th_entry){ .size = sizeof *e, .flags = (se.flags & TH_CHANGE_F_VALUE_NULL) ? TH_EVENT_F_VALUE_NULL : 0,
				.table = table, .key_len = se.key_len, .value_len = se.value_len, .key = ek, .value = ev,
				.version = se.version, .revision = se.revision };
	th_ctl_snapshot_free(&s);
	*out = e;
	return 0;
}

static void api_entry_free(struct th_entry *e)
{
	free(e);
}

static int api_sync(struct th_conn *c, const char *gtid_set, int64_t timeout_ns, uint64_t *revision)
{
	if (!c || !gtid_set)
		return -EINVAL;
	size_t n = strnlen(gtid_set, TH_MSG_MAX);
	if (n > TH_MSG_MAX - sizeof(struct th_msg_hdr) - sizeof(struct th_msg_sync))
		return -E2BIG;
	/* A connection of its own: a sync may wait long, and get() must not
	 * queue behind it. */
	struct th_ctl *q;
	int rc = th_ctl_connect(c->socket_path, &q);
	if (rc)
		return rc;
	rc = th_ctl_sync(q, gtid_set, timeout_ns, revision);
	th_ctl_close(q);
	return rc;
}

static int api_fd(struct th_conn *c)
{
	if (!c || c->wait_mode != TH_WAIT_FD || (c->flags & TH_OPEN_F_THREAD))
		return -EINVAL;
	return c->epoll_fd;
}

static int api_dispatch(struct th_conn *c, int64_t timeout_ns)
{
	if (!c || (c->flags & TH_OPEN_F_THREAD))
		return -EINVAL;
	uint32_t zero = 0;
	/* Acquire pairs with the release below: one dispatcher after another
	 * sees everything the previous one wrote. */
	if (!atomic_compare_exchange_strong_explicit(&c->dispatching, &zero, 1, memory_order_acquire,
						     memory_order_relaxed))
		return -EBUSY;
	int rc = dispatch_locked(c, timeout_ns);
	th_store_release(&c->dispatching, 0);
	return rc;
}

static int api_stats(struct th_conn *c, struct th_stats *st)
{
	if (!c || !st || st->size < 8)
		return -EINVAL;
	struct th_stats s = {
		.size = sizeof s,
		.revision = th_load_relaxed(&c->st_revision),
		.events = th_load_relaxed(&c->st_events),
		.records = th_load_relaxed(&c->st_records),
		.resyncs = th_load_relaxed(&c->st_resyncs),
		.evictions = th_load_relaxed(&c->st_evictions),
		.laps = th_load_relaxed(&c->st_laps),
		.reconnects = th_load_relaxed(&c->st_reconnects),
		.watches = th_load_relaxed(&c->st_watches),
		.entries = th_load_relaxed(&c->st_entries),
		.generation = th_load_relaxed(&c->st_generation),
	};
	uint32_t n = st->size < sizeof s ? st->size : (uint32_t)sizeof s;
	memcpy(st, &s, n);
	st->size = n;
	return 0;
}

static const struct th_api api_table = {
	.size = sizeof(struct th_api),
	.major = TH_ABI_MAJOR,
	.minor = TH_ABI_MINOR,
	.strerror = th_strerror,
	.errname = th_errname,
	.open = api_open,
	.close = api_close,
	.watch = api_watch,
	.watch_recursive = api_watch_recursive,
	.unwatch = api_unwatch,
	.get = api_get,
	.entry_free = api_entry_free,
	.sync = api_sync,
	.fd = api_fd,
	.dispatch = api_dispatch,
	.stats = api_stats,
};

PUBLIC int th_api_get(uint32_t major, uint32_t minor, const struct th_api **out)
{
	if (!out)
		return -EINVAL;
	if (major != TH_ABI_MAJOR || minor > TH_ABI_MINOR)
		return -TH_EVERSION;
	*out = &api_table;
	return 0;
}
