/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dispatch.c: Reading the ring: records to changes to callbacks, waiting in each
 * wait mode, the dispatch round. See conn.h.
 */
#include "plugins/conn.h"

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
	th__event_from_entry(&ev, TH_EVENT_PUT, e);
	th__deliver(d->c, d->w, &ev);
}

static void del_event(void *ctx, const struct th__entry *e)
{
	struct diff_ctx *d = ctx;
	struct th_event ev;
	th__event_from_entry(&ev, TH_EVENT_DELETE, e);
	ev.revision = d->c->revision;
	th__deliver(d->c, d->w, &ev);
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
			th__deliver(c, w, &nf);
			th__end_watch(c, w, TH_END_NOT_FOUND);
			return;
		}
		th__event_from_entry(&ev, TH_EVENT_INITIAL, e);
		th__deliver(c, w, &ev);
		return;
	}
	struct th__entry **v;
	size_t n;
	if (th__mirror_list(&c->mirror, false, w->table, w->path, w->path_len, false, &v, &n)) {
		/* Cannot list them: say so the only way that is never silent. */
		th__deliver_marker(c, w, TH_EVENT_RESYNC, TH_RESYNC_NOMEM);
		w->phase = PH_RESYNC;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		th__event_from_entry(&ev, TH_EVENT_INITIAL, v[i]);
		th__deliver(c, w, &ev);
	}
	free(v);
	th__deliver_marker(c, w, TH_EVENT_SYNCED, 0);
}

/* The copy is exact at a transaction boundary at or past ready_pos, once the
 * ring has brought the snapshots' pending revision: hand out what the waiting
 * watches need. */
static void finish_pending(struct th_conn *c)
{
	if (!c->pending || c->fetch_any || !c->connected || th_ring_reader_pos(c->ring) < c->ready_pos ||
	    c->ring_revision < c->snap_pending)
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
			th__end_watch(c, w, TH_END_DELETED);
		else
			th__deliver_marker(c, w, TH_EVENT_SYNCED, 0);
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
	return th_grow((void **)&c->scratch, &c->scratchlen, n, 1);
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
	if (!th__covered(c, ch.table, key, ch.key_len, &err)) {
		if (err)
			th__lose(c, ch.table, TH_RESYNC_NOMEM);
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
			th__lose(c, ch.table, TH_RESYNC_NOMEM);
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
		th__deliver(c, w, &e);
		if (!w->recursive && ch.op == TH_OP_DELETE)
			th__end_watch(c, w, TH_END_DELETED);
	}
	free(old);
}

/* The ring jumped over batches the hub did not wake us for (none holds a
 * change under a watch): they count as read, up to the last one's revision. */
static void fold_skips(struct th_conn *c)
{
	uint64_t note;
	uint64_t k = th_ring_reader_skips(c->ring, &note);
	if (k == c->skips_seen)
		return;
	c->skips_seen = k;
	if (note > c->revision)
		c->revision = note;
	if (note > c->ring_revision)
		c->ring_revision = note;
}

/* Read and handle records up to the head (whole transactions). Returns the
 * number of records read, or a negative code for "stop reading now". */
static int read_ring(struct th_conn *c)
{
	int nrec = 0;
	for (;;) {
		struct th_ring_record rec;
		int rc = th_ring_read(c->ring, &rec, c->buf, c->buflen);
		fold_skips(c);
		if (rc == 0) {
			finish_pending(c);
			return nrec;
		}
		if (rc == -ENOBUFS) {
			void *nb = realloc(c->buf, rec.len);
			if (!nb) {
				th__lose(c, UINT32_MAX, TH_RESYNC_NOMEM);
				uint64_t pos;
				th_ring_reader_rejoin(c->ring, &pos);
				return nrec;
			}
			c->buf = nb;
			c->buflen = rec.len;
			continue;
		}
		if (rc == -TH_EEVICTED && th_ring_reader_evict_reason(c->ring) == TH_RING_EVICT_SHUTDOWN) {
			th__hub_lost(c); /* the hub is going away: reconnect to the next one */
			return rc;
		}
		if (rc == -TH_EEVICTED || rc == -TH_ELAPPED) {
			/* The hub evicts a reader it lapped: name the cause, not the messenger. */
			bool lapped = rc == -TH_ELAPPED || th_ring_reader_evict_reason(c->ring) == TH_RING_EVICT_LAPPED;
			th__lose(c, UINT32_MAX, lapped ? TH_RESYNC_LAPPED : TH_RESYNC_EVICTED);
			uint64_t pos;
			th_ring_reader_rejoin(c->ring, &pos);
			struct th_ctl_reply rep;
			int wr = th_ctl_call(c->ctl, TH_MSG_REJOIN, NULL, 0, &rep, 10000);
			if (wr == 0)
				th_ctl_reply_free(&rep);
			if (wr == -ECONNRESET || wr == -EPIPE || wr == -ETIMEDOUT) {
				th__hub_lost(c);
				return -ECONNRESET;
			}
			if (th__fetch(c))
				return -ECONNRESET;
			return nrec;
		}
		if (rc < 0) {
			/* -TH_ECLOSED: the hub stopped. -TH_ECORRUPT: a hub bug; start over. */
			th__hub_lost(c);
			return rc;
		}
		nrec++;
		th__stat_add(&c->st_records, 1);
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
				if (r > c->ring_revision)
					c->ring_revision = r;
			}
			handle_change(c, &rec, c->buf);
		} else if (rec.type == TH_REC_RESYNC && rec.len >= sizeof(struct th_rec_resync)) {
			struct th_rec_resync rs;
			memcpy(&rs, c->buf, sizeof rs);
			TH_TRACE_READER_RECORD(rs.revision, rec.pos, rec.type);
			if (rs.revision > c->revision)
				c->revision = rs.revision; /* the state's revision after the hub's reload */
			if (rs.revision > c->ring_revision)
				c->ring_revision = rs.revision;
			th__lose(c, rs.table >= NTABLES_MAX ? UINT32_MAX : rs.table, TH_RESYNC_HUB);
			if (th__fetch(c))
				return -ECONNRESET;
		}
		if (rec.flags & TH_RING_F_BATCH_END) {
			finish_pending(c);
			th__publish_revision(c);
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
int th__dispatch_round(struct th_conn *c)
{
	int work = 0;
	/* A read() per round would be a system call per record for nothing:
	 * drain only when th__wake() said it wrote. */
	if (th_load_relaxed(&c->wake_pending) && th_exchange_seq_cst(&c->wake_pending, 0))
		th__drain_fd(c->wake_fd);
	th__adopt_new(c);
	th__reclaim(c);
	if (!c->connected) {
		if (th__reconnect(c) != 0 && !c->connected)
			goto out;
	}
	if (c->fetch_any && th__fetch(c) != 0)
		goto out;
	int n = read_ring(c);
	if (n > 0)
		work += n;
	th__update_filter(c);
out:
	th__reclaim(c);
	th__publish_revision(c);
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
			th__drain_fd(c->timer_fd);
		else if (c->connected && evs[i].data.fd == th_ctl_fd(c->ctl) && ctl_dead(c))
			th__hub_lost(c);
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
				th__drain_fd(c->timer_fd);
			else if (c->connected && evs[i].data.fd == th_ctl_fd(c->ctl) && ctl_dead(c))
				th__hub_lost(c);
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
	/* A registration from another thread kicks the wait (th__wake); what
	 * only a slice finds is a hub that died without closing its ring, and
	 * the slice doubles while nothing comes, so that a thousand idle
	 * subscribers do not wake a hundred times a second each. */
	uint64_t slice = c->wait_mode == TH_WAIT_SPIN ? SLICE_SPIN_NS : c->slice_cur;
	if (c->wait_mode == TH_WAIT_FUTEX) {
		/* A moderated nap in one sleep, not cut into slices (each a wake-up). */
		uint64_t nap = th_ring_reader_nap_left(c->ring, now);
		if (nap > slice)
			slice = nap;
	}
	int r = th_ring_wait_or(c->ring, c->wait_mode == TH_WAIT_SPIN ? TH_RING_WAIT_SPIN : TH_RING_WAIT_FUTEX,
				(int64_t)(left < slice ? left : slice), c->spin_cur, &c->kick_word, c->kick_seen);
	if (r == 0 && left >= slice && c->slice_cur < SLICE_FUTEX_MAX_NS)
		c->slice_cur *= 2;
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
		th__hub_lost(c);
		return 1;
	}
	return r;
}

int th__dispatch_locked(struct th_conn *c, int64_t timeout_ns)
{
	c->delivered = 0;
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : th_now_ns() + (uint64_t)timeout_ns;
	if (c->wait_mode == TH_WAIT_FD && c->connected)
		th_ring_reader_disarm(c->ring);
	if (c->wait_mode == TH_WAIT_FD)
		poll_events(c, 0);
	c->kick_seen = th_load_acquire(&c->kick_word); /* before the round: pairs with th_ring_kick() */
	int work = th__dispatch_round(c);
	while (work == 0 && !th_load_relaxed(&c->stop)) {
		if (!wait_work(c, deadline) && th_now_ns() >= deadline) {
			if (c->connected && c->ring)
				fold_skips(c); /* the wait may have jumped over batches for others */
			break;
		}
		c->kick_seen = th_load_acquire(&c->kick_word);
		work = th__dispatch_round(c);
	}
	/* Work halves the hub check's interval only on a busy stream (its
	 * transactions closer together than a quarter of the interval), so that
	 * a dead hub is noticed within 10 ms there; a sparse one keeps its long
	 * interval. Restarting at 10 ms after each change had a subscriber with a
	 * change every 250 ms wake five times in between; halving at each change,
	 * 2.5 times (each a cold wake-up: ~60 us of CPU in the sparse scenario). */
	if (work > 0 && c->slice_cur > SLICE_FUTEX_NS && c->batch_gap_ns < c->slice_cur / 4)
		c->slice_cur = c->slice_cur / 2 < SLICE_FUTEX_NS ? SLICE_FUTEX_NS : c->slice_cur / 2;
	if (c->wait_mode == TH_WAIT_FD) {
		/* Leave the fd meaning "call dispatch": armed, or signalled. */
		if (c->connected && (th_ring_reader_arm(c->ring) == 1 || !cds_wfcq_empty(&c->adopt_head, &c->adopt_tail) ||
				     !cds_wfcq_empty(&c->end_head, &c->end_tail)))
			th__wake(c);
	}
	return c->delivered;
}

