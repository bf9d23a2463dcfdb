/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.c: The function table of topohub.h and its argument checks. See conn.h.
 */
#include "plugins/conn.h"

#define PUBLIC __attribute__((visibility("default")))

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
	c->slice_cur = SLICE_FUTEX_NS;
	c->max_wake_delay_ns = o.max_wake_delay_ns;
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
		th__epoll_set(c, c->wake_fd, true);
		th__epoll_set(c, c->timer_fd, true);
	}
	rc = th__attach(c);
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
		th__dispatch_locked(c, 100000000);
	return NULL;
}

static void api_close(struct th_conn *c)
{
	if (!c)
		return;
	th_store_relaxed(&c->closing, 1);
	if (c->have_thread) {
		th_store_release(&c->stop, 1); /* pairs with the load-acquire in dispatch_thread */
		th__wake(c);
		pthread_join(c->thread, NULL);
	}
	if (c->paths && c->ids) {
		/* No other call runs now: end everything, free once. */
		th__adopt_new(c);
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
		th__rcu_lock();
		cds_lfht_first(c->ids, &it);
		for (struct cds_lfht_node *nd; (nd = cds_lfht_iter_get_node(&it)) != NULL; cds_lfht_next(c->ids, &it)) {
			struct watcher *w = caa_container_of(nd, struct watcher, id_node);
			cds_lfht_del(c->ids, &w->id_node);
			cds_lfht_del(c->paths, &w->path_node);
			th__paths_changed(c);
			w->reclaim_next = live;
			live = w;
		}
		th__rcu_unlock(c);
		th__grace_period(c);
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
	th__disconnect(c);
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

int th__register_watch(struct th_conn *c, const struct th_watch_opts *uopts, th_watch_id *id, bool recursive)
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
	w->path_hash = th__path_hash(recursive, o.table, w->path, plen);
	cds_lfht_node_init(&w->path_node);
	cds_lfht_node_init(&w->id_node);
	cds_wfcq_node_init(&w->adopt_node);
	cds_wfcq_node_init(&w->end_node);
	*id = w->id; /* before publication: once published, it may be gone */
	/* Pairs with the load-acquire in th__match_path/th__match_id/adopt_new. */
	th_store_release(&w->ready, 1);
	uint64_t idh = th__hash_mix(th__hash_bytes(0xcbf29ce484222325ull, &w->id, sizeof w->id));
	/* Before the node is findable: the dispatcher delivers to a watch only
	 * once it has adopted it, after the enqueue below (a full barrier), so
	 * its lookups then see the bit. */
	th_fetch_or_relaxed(&c->path_bits[(w->path_hash % PATH_BITS) / 64], 1ull << (w->path_hash % 64));
	th__rcu_lock();
	cds_lfht_add(c->ids, idh, &w->id_node);
	cds_lfht_add(c->paths, w->path_hash, &w->path_node);
	th__rcu_unlock(c);
	th__paths_changed(c);
	th_fetch_add_relaxed(&c->st_watches, 1); /* a counter: no ordering */
	cds_wfcq_enqueue(&c->adopt_head, &c->adopt_tail, &w->adopt_node);
	th__wake(c);
	return 0;
}

static int api_watch(struct th_conn *c, const struct th_watch_opts *o, th_watch_id *id)
{
	return th__register_watch(c, o, id, false);
}

static int api_watch_recursive(struct th_conn *c, const struct th_watch_opts *o, th_watch_id *id)
{
	return th__register_watch(c, o, id, true);
}

static int api_unwatch(struct th_conn *c, th_watch_id id)
{
	if (!c)
		return -EINVAL;
	uint64_t idh = th__hash_mix(th__hash_bytes(0xcbf29ce484222325ull, &id, sizeof id));
	struct cds_lfht_iter it;
	th__rcu_lock();
	cds_lfht_lookup(c->ids, idh, th__match_id, &id, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	struct watcher *w = n ? caa_container_of(n, struct watcher, id_node) : NULL;
	/* Pairs with the seq_cst load in th__deliver(). */
	if (!w || th_exchange_seq_cst(&w->dead, 1)) {
		th__rcu_unlock(c);
		return -ENOENT;
	}
	cds_lfht_del(c->paths, &w->path_node);
	cds_lfht_del(c->ids, &w->id_node);
	th__paths_changed(c); /* before it can be reclaimed: no memo holds it then */
	/* Pairs with the load-acquire in th__reclaim(): our accesses end here. */
	th_store_release(&w->unlinked, 1);
	cds_wfcq_enqueue(&c->end_head, &c->end_tail, &w->end_node);
	th__rcu_unlock(c);
	th__wake(c);
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
	/* Again after a lost connection, or a snapshot taken back before it was read (protocol.h). */
	for (int attempt = 0; attempt < 2 && (rc == -ECONNRESET || rc == -ESTALE); attempt++) {
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
	int rc = th__dispatch_locked(c, timeout_ns);
	th_store_release(&c->dispatching, 0);
	return rc;
}

static int api_stats(struct th_conn *c, struct th_stats *st)
{
	if (!c || !st || st->size < 8)
		return -EINVAL;
	struct th_stats s = {
		.size = sizeof s,
		.revision = th_load_acquire(&c->st_revision), /* pairs with th__publish_revision() */
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

