/* SPDX-License-Identifier: Apache-2.0 */
/*
 * resync.c: Connecting to the hub and losing and regaining continuity: RESYNC, the
 * fetch, the difference each watch is owed. See conn.h.
 */
#include "plugins/conn.h"

/* ---- connecting ---------------------------------------------------------- */

void th__epoll_set(struct th_conn *c, int fd, bool add)
{
	if (c->epoll_fd < 0 || fd < 0)
		return;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	epoll_ctl(c->epoll_fd, add ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev);
}

void th__disconnect(struct th_conn *c)
{
	if (c->ring) {
		th__epoll_set(c, th_ring_reader_event_fd(c->ring), false);
		th_ring_reader_close(c->ring);
		c->ring = NULL;
	}
	if (c->ctl) {
		th__epoll_set(c, th_ctl_fd(c->ctl), false);
		th_ctl_close(c->ctl);
		c->ctl = NULL;
	}
	c->connected = false;
}

/* Connect and attach. 0, or a negative code with nothing left open. */
int th__attach(struct th_conn *c)
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
	if (c->max_wake_delay_ns)
		th_ring_reader_set_max_delay(r, c->max_wake_delay_ns);
	c->ctl = ctl;
	c->ring = r;
	c->generation = rep.generation;
	c->connected = true;
	th_store_relaxed(&c->ntables, rep.ntables < NTABLES_MAX ? rep.ntables : NTABLES_MAX);
	th_store_relaxed(&c->st_generation, rep.generation);
	if (rep.revision > c->revision)
		c->revision = rep.revision;
	c->ring_revision = rep.revision;
	c->snap_pending = 0;
	c->filter_off = true; /* a new slot's filter is off */
	c->filter_gen = UINT64_MAX;
	c->skips_seen = 0;
	th__epoll_set(c, th_ring_reader_event_fd(r), true);
	th__epoll_set(c, th_ctl_fd(ctl), true);
	th__publish_revision(c); /* a fresh connection owes nothing: open() returns at the hub's revision */
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
void th__lose(struct th_conn *c, uint32_t table, uint32_t cause)
{
	TH_TRACE_RESYNC_START(c, cause);
	bool all = table == UINT32_MAX;
	for (struct watcher *w = c->list; w; w = w->next) {
		if (!all && w->table != table)
			continue;
		if (w->phase == PH_LIVE) {
			w->phase = PH_RESYNC;
			th__deliver_marker(c, w, TH_EVENT_RESYNC, cause);
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
	th__stat_add(&c->st_resyncs, 1);
	if (cause == TH_RESYNC_EVICTED)
		th__stat_add(&c->st_evictions, 1);
	else if (cause == TH_RESYNC_LAPPED)
		th__stat_add(&c->st_laps, 1);
	else if (cause == TH_RESYNC_HUB_LOST)
		th__stat_add(&c->st_reconnects, 1);
	th_store_relaxed(&c->st_entries, c->mirror.count);
}

void th__hub_lost(struct th_conn *c)
{
	if (!c->connected)
		return;
	th__lose(c, UINT32_MAX, TH_RESYNC_HUB_LOST);
	th__disconnect(c);
	c->backoff_ns = 0;
	schedule_retry(c);
}

/* Held exactly already: in the copy, or covered by a watch whose entries
 * were fetched before this round (a key it covers may be absent: deleted). */
static bool covered_before(struct th_conn *c, uint32_t table, const char *key, uint32_t klen)
{
	if (th__mirror_find(&c->mirror, table, key, klen))
		return true;
	if (th__collect_matches(c, table, key, klen))
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
	uint16_t type = recursive ? TH_MSG_SNAPSHOT : TH_MSG_GET;
	int rc = th_ctl_snapshot(c->ctl, type, table, path, plen, &s, 30000);
	if (rc == -ESTALE) /* taken back before it was read (protocol.h): once more, else a reconnect */
		rc = th_ctl_snapshot(c->ctl, type, table, path, plen, &s, 30000);
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
	if (s.reply.pending_revision > c->snap_pending)
		c->snap_pending = s.reply.pending_revision;
	th_ctl_snapshot_free(&s);
	return rc < 0 ? rc : 0;
}

/* Is w's path inside another watch's recursive prefix (so fetching that one
 * fetches w's entries)? Ties between equal prefixes go to the earlier one. */
static bool fetched_by_other(struct th_conn *c, struct watcher *w)
{
	for (struct watcher *o = c->list; o; o = o->next) {
		if (o == w || !o->recursive || o->table != w->table || !o->round_live)
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

/* Fetch what adoption and resync need, then note where the copy is exact.
 * Which watches fetch is decided once, on one view of which are alive: a
 * watch skipped because a recursive one covers it must not lose that cover
 * to an unwatch() on another thread before the cover's own turn (the chaos
 * checker saw a whole prefix reported deleted so). A watch that ends after
 * the choice still fetches; its entries go with it at its reclaim. */
int th__fetch(struct th_conn *c)
{
	if (!c->fetch_any || !c->connected)
		return 0;
	th__update_filter(c); /* off before the snapshots are asked for */
	for (struct watcher *w = c->list; w; w = w->next)
		w->round_live = !th_load_relaxed(&w->dead);
	for (struct watcher *w = c->list; w; w = w->next) {
		if (!w->round_live)
			continue;
		bool fresh = c->fetch_table[w->table];
		if (!fresh && !w->need_fetch)
			continue;
		if (fetched_by_other(c, w))
			continue; /* a recursive watch fetched this round covers it */
		int rc = fetch_one(c, w->table, w->recursive, w->path, w->path_len, fresh);
		if (rc == -ENOMEM) {
			th__lose(c, w->table, TH_RESYNC_NOMEM);
			return rc;
		}
		if (rc) {
			th__hub_lost(c);
			return rc;
		}
	}
	for (struct watcher *w = c->list; w; w = w->next)
		w->need_fetch = false;
	memset(c->fetch_table, 0, sizeof c->fetch_table);
	c->fetch_any = false;
	/* Every change the ring had when the snapshots were taken is before the
	 * head now; finish_pending() also waits for snap_pending (protocol.h). */
	c->ready_pos = th_ring_reader_head(c->ring);
	th_store_relaxed(&c->st_entries, c->mirror.count);
	return 0;
}

int th__reconnect(struct th_conn *c)
{
	if (th_now_ns() < c->retry_at_ns)
		return -EAGAIN;
	int rc = th__attach(c);
	if (rc) {
		schedule_retry(c);
		return rc;
	}
	c->backoff_ns = 0;
	return th__fetch(c);
}

