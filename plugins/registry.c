/* SPDX-License-Identifier: Apache-2.0 */
/*
 * registry.c: The watch registry: delivering events, which watches cover which keys,
 * adopting new watches and reclaiming ended ones. See conn.h.
 */
#include "plugins/conn.h"

/* ---- delivering ---------------------------------------------------------- */

void th__call(struct th_conn *c, struct watcher *w, struct th_event *ev)
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
	th__stat_add(&c->st_events, 1);
}

void th__deliver(struct th_conn *c, struct watcher *w, struct th_event *ev)
{
	/* Pairs with the exchange in unwatch (both seq_cst): if unwatch came
	 * first we see it and stay silent; otherwise the call had begun. */
	if (th_load_seq_cst(&w->dead))
		return;
	th__call(c, w, ev);
}

void th__event_from_entry(struct th_event *ev, uint16_t kind, const struct th__entry *e)
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

void th__deliver_marker(struct th_conn *c, struct watcher *w, uint16_t kind, uint32_t reason)
{
	struct th_event ev = { .kind = kind, .reason = reason, .revision = c->revision, .value = "", .gtid = "" };
	th__deliver(c, w, &ev);
}

/* Every add to or removal from c->paths, after it: the dispatcher's memo of
 * recursive watchers is stale from then on. A removal's bump precedes the
 * watcher's hand-over for reclaim (store-release of unlinked, or the
 * dispatcher's own thread), so no memo that holds a freed watcher is valid. */
void th__paths_changed(struct th_conn *c)
{
	/* Pairs with the load-acquire in th__collect_matches(). */
	th_fetch_add_release(&c->paths_gen, 1);
}

/* Unlink a watcher from the registry; the caller won the exchange of dead. */
static void unlink_watcher(struct th_conn *c, struct watcher *w)
{
	th__rcu_lock();
	cds_lfht_del(c->paths, &w->path_node);
	cds_lfht_del(c->ids, &w->id_node);
	th__rcu_unlock(c);
	th__paths_changed(c);
}

/* The watch ends by itself (exact path deleted or never there). */
void th__end_watch(struct th_conn *c, struct watcher *w, uint32_t reason)
{
	if (th_exchange_seq_cst(&w->dead, 1))
		return; /* unwatched meanwhile: it asked for silence */
	struct th_event ev = { .kind = TH_EVENT_ENDED, .reason = reason, .revision = c->revision, .value = "", .gtid = "" };
	th__call(c, w, &ev);
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
	uint64_t h = th__path_hash(recursive, table, key, cut);
	if (!(th_load_relaxed(&c->path_bits[(h % PATH_BITS) / 64]) & (1ull << (h % 64))))
		return 0; /* no watch was ever registered for this path (conn.h) */
	cds_lfht_lookup(c->paths, h, th__match_path, &k, &it);
	for (struct cds_lfht_node *nd = cds_lfht_iter_get_node(&it); nd;
	     cds_lfht_next_duplicate(c->paths, th__match_path, &k, &it), nd = cds_lfht_iter_get_node(&it)) {
		if (th_grow((void **)v, cap, *n + 1, sizeof **v))
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
int th__collect_matches(struct th_conn *c, uint32_t table, const char *key, uint32_t klen)
{
	c->nmatch = 0;
	/* The parent: the last '/' after the first byte (the prefixes that end
	 * before it are exactly the parent's own, and the parent itself). */
	uint32_t plen = klen;
	while (plen > 1 && key[plen - 1] != '/')
		plen--;
	plen = plen > 1 ? plen - 1 : 0;
	int rc = 0;
	th__rcu_lock();
	uint64_t gen = th_load_acquire(&c->paths_gen);
	if (gen != c->memo_gen || table != c->memo_table || plen != c->memo_len ||
	    (plen && memcmp(key, c->memo_parent, plen) != 0)) {
		c->memo_gen = UINT64_MAX; /* invalid until filled */
		if (th_grow((void **)&c->memo_parent, &c->memo_cap, plen + 1, 1) == 0 &&
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
	if (!rc && th_grow((void **)&c->match, &c->capmatch, c->nmatch + c->nmemo, sizeof *c->match))
		rc = -ENOMEM;
	if (!rc) {
		if (c->nmemo) /* both may still be NULL */
			memcpy(c->match + c->nmatch, c->memo, c->nmemo * sizeof *c->memo);
		c->nmatch += c->nmemo;
		if (plen != klen)
			rc = lookup_path(c, true, table, key, klen, &c->match, &c->nmatch, &c->capmatch);
	}
	th__rcu_unlock(c);
	return rc;
}

/* Some adopted watcher (other than the ones being reclaimed, which are
 * unlinked already) covers (table, key). */
bool th__covered(struct th_conn *c, uint32_t table, const char *key, uint32_t klen, int *err)
{
	*err = th__collect_matches(c, table, key, klen);
	for (size_t i = 0; i < c->nmatch; i++)
		if (c->match[i]->phase != PH_NEW)
			return true;
	return false;
}

/* ---- whom the hub wakes us for -------------------------------------------- */

/* Keep the slot's filter true to the watches (conn.h, "Targeted wake-ups").
 * Bits are added before any snapshot of what they stand for is asked for
 * (th__fetch calls this first, with the filter going off): a batch the hub
 * judged by the old filter is then one the snapshot covers. Dispatcher only. */
void th__update_filter(struct th_conn *c)
{
	if (!c->connected)
		return;
	if (c->pending || c->fetch_any) {
		if (!c->filter_off)
			th_ring_reader_set_filter(c->ring, NULL);
		c->filter_off = true;
		c->filter_gen = UINT64_MAX;
		return;
	}
	uint64_t gen = th_load_acquire(&c->paths_gen); /* pairs with th__paths_changed() */
	if (gen == c->filter_gen)
		return;
	uint64_t bits[TH_RING_TAG_WORDS] = { 0 };
	bool all = false;
	for (struct watcher *w = c->list; w && !all; w = w->next) {
		if (th_load_relaxed(&w->dead))
			continue;
		if (w->recursive && w->path_len == 0) {
			all = true; /* every key: every batch */
			break;
		}
		unsigned b = th_tag_bit(w->table, w->path, w->path_len);
		bits[b / 64] |= 1ull << (b % 64);
	}
	if (!all || !c->filter_off)
		th_ring_reader_set_filter(c->ring, all ? NULL : bits);
	c->filter_off = all;
	c->filter_gen = gen;
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

void th__adopt_new(struct th_conn *c)
{
	struct cds_wfcq_node *n;
	while ((n = __cds_wfcq_dequeue_blocking(&c->adopt_head, &c->adopt_tail)) != NULL) {
		struct watcher *w = caa_container_of(n, struct watcher, adopt_node);
		/* Pairs with the store-release in th__register_watch(). */
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
		if (!th__covered(c, v[i]->table, v[i]->key, v[i]->key_len, &err) && !err)
			th__mirror_remove(&c->mirror, v[i]->table, v[i]->key, v[i]->key_len);
	}
	free(v);
	th_store_relaxed(&c->st_entries, c->mirror.count);
}

/* Free every ended watcher: unlinked by its ender, then one grace period,
 * then its free function. Dispatcher only, never inside a callback. */
void th__reclaim(struct th_conn *c)
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
	th__adopt_new(c);
	th__grace_period(c);
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

