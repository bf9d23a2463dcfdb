/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The publisher thread: MySQL in, state table and ring out. See hub.h for
 * the threads, hub_load.c for the consistent load, hub_source.c for the
 * checks of a source server.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/th_buf.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "hub/hub_log.h"
#include "hub/hub_publisher.h"
#include "common/th_trace.h"
#include "readers/gtid.h"

/* How long sources that are replicas behind the hub are waited for (the
 * others tried meanwhile) before the hub reloads from one. */
#define BEHIND_WAIT_NS (10ull * 1000000000u)

static void wake_fd(int fd)
{
	uint64_t one = 1;
	ssize_t r = write(fd, &one, sizeof one);
	(void)r; /* an eventfd at its maximum is already readable */
}

/* Sleeps ms, or less when stopping. */
static void nap(struct th__pub *p, unsigned ms)
{
	struct pollfd pfd = { .fd = p->h->stop_fd, .events = POLLIN };
	poll(&pfd, 1, (int)ms);
}
/* ---- publication (the order of protocol.h: state, ring, revision) ------- */

static void free_pos_rcu(struct rcu_head *head)
{
	free(caa_container_of(head, struct th__hub_pos, rcu));
}

void th__pub_publish_pos(struct th__pub *p, uint64_t revision)
{
	struct th_hub *h = p->h;
	th_buf_reset(&p->scratch);
	if (th_txn_resume_gtid(p->asm_, &p->scratch) < 0)
		return;
	const char *gtid = th_buf_cstr(&p->scratch);
	size_t n = strlen(gtid);
	struct th__hub_pos *pos = malloc(sizeof *pos + n + 1);
	if (!pos)
		return; /* the previous position stays: SYNC answers later, never wrongly */
	pos->revision = revision;
	pos->flavor = p->flavor;
	const char *file;
	th_txn_resume_file(p->asm_, &file, &pos->end_pos);
	snprintf(pos->file, sizeof pos->file, "%s", file ? file : "");
	memcpy(pos->gtid, gtid, n + 1);
	/* The exchange orders pos's fields before the pointer (seq_cst, so
	 * release); pairs with the acquire loads of the control thread. */
	struct th__hub_pos *old = th_exchange_seq_cst(&h->pos, pos);
	if (old)
		call_rcu(&old->rcu, free_pos_rcu);
	if (th_load_relaxed(&h->sync_waiters))
		wake_fd(h->pub_fd);
}

void th__pub_publish_resync(struct th__pub *p, uint64_t rev, enum th_resync_reason reason, uint32_t table)
{
	struct th_hub *h = p->h;
	struct th_rec_resync r = { .revision = rev, .reason = reason, .table = table };
	th_ring_set_batch_time(h->ring, th_now_ns());
	TH_TRACE_HUB_BATCH_PUBLISH(rev, sizeof r, 1);
	if (th_ring_append(h->ring, TH_REC_RESYNC, &r, sizeof r) == 0 && th_ring_commit(h->ring) > 0) {
		th_fetch_add_relaxed(&h->st_records, 1);
		th_fetch_add_relaxed(&h->st_bytes, sizeof r);
	}
	if (h->cfg->bench_socket_fanout) {
		struct iovec iov = { &r, sizeof r };
		struct mmsghdr m = { .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };
		th__hub_fanout_send(h, &m, 1);
	}
	th_fetch_add_relaxed(&h->st_resyncs, 1);
}

/* The ring record of change c of t: rec, and iov[4] = rec, key, value, gtid. */
static void change_record(const struct th_txn *t, const struct th_txn_change *c, uint64_t rev, uint64_t real,
			  uint16_t gtid_len, struct th_rec_change *rec, struct iovec *iov)
{
	*rec = (struct th_rec_change){
		.revision = rev,
		.version = c->version,
		.commit_us = t->commit_us,
		.publish_ns = real,
		.key_len = c->key_len,
		.value_len = c->op == TH_TXN_DELETE ? 0 : c->value_len,
		.gtid_len = gtid_len,
		.table = (uint8_t)c->table,
		.op = c->op == TH_TXN_DELETE ? TH_OP_DELETE : TH_OP_PUT,
		.flags = c->op != TH_TXN_DELETE && !c->has_value ? TH_CHANGE_F_VALUE_NULL : 0,
	};
	iov[0] = (struct iovec){ rec, sizeof *rec };
	iov[1] = (struct iovec){ (void *)c->key, c->key_len };
	iov[2] = (struct iovec){ (void *)c->value, rec->value_len };
	iov[3] = (struct iovec){ (void *)t->gtid, gtid_len };
}

/* Benchmark mode: the committed transaction to every stream subscriber, the
 * same bytes as its ring records (the ring's copies may be overwritten by
 * the time a subscriber would read them, so they are built again here). */
static void fanout_txn(struct th__pub *p, const struct th_txn *t, uint64_t rev, uint64_t real, uint16_t gtid_len)
{
	size_t n = t->nchanges;
	if (n > p->fo_cap) {
		size_t cap = n < 64 ? 64 : n;
		struct th_rec_change *r = realloc(p->fo_recs, cap * sizeof *r);
		if (r)
			p->fo_recs = r;
		struct iovec *v = r ? realloc(p->fo_iov, cap * 4 * sizeof *v) : NULL;
		if (v)
			p->fo_iov = v;
		struct mmsghdr *m = v ? realloc(p->fo_msgs, cap * sizeof *m) : NULL;
		if (m) {
			p->fo_msgs = m;
			p->fo_cap = cap;
		} else {
			th__hub_fanout_send(p->h, NULL, 0); /* drops every subscriber: no silent gap */
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		change_record(t, &t->changes[i], rev, real, gtid_len, &p->fo_recs[i], &p->fo_iov[4 * i]);
		p->fo_msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &p->fo_iov[4 * i], .msg_iovlen = 4 } };
	}
	th__hub_fanout_send(p->h, p->fo_msgs, (unsigned)n);
}

static int change_key_cmp(const void *a, const void *b, void *arg)
{
	const struct th_txn_change *c = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct th_txn_change *x = &c[i], *y = &c[j];
	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	int r = memcmp(x->key, y->key, x->key_len);
	if (r)
		return r;
	return i < j ? -1 : i > j; /* stable: the last change of a key sorts last */
}

/*
 * A transaction's intermediate values are invisible to every other
 * transaction (MySQL's isolation), so readers get each key's last change in
 * it, nothing before. This also makes (key, revision) name exactly one value,
 * which stitching a snapshot to the ring relies on (protocol.h): a snapshot
 * that runs while the publisher applies a transaction sees each key either
 * before it or at its final value. Returns t itself when no key repeats, else
 * *view (changes in their original order, earlier changes of a key dropped).
 * -ENOMEM leaves nothing changed.
 */
static int last_changes(struct th__pub *p, const struct th_txn *t, struct th_txn *view, const struct th_txn **out)
{
	size_t n = t->nchanges;
	*out = t;
	if (n < 2)
		return 0;
	if (n > p->lc_cap) {
		size_t *o = realloc(p->lc_order, n * sizeof *o);
		if (!o)
			return -ENOMEM;
		p->lc_order = o;
		struct th_txn_change *c = realloc(p->lc_changes, n * sizeof *c);
		if (!c)
			return -ENOMEM;
		p->lc_changes = c;
		bool *d = realloc(p->lc_drop, n * sizeof *d);
		if (!d)
			return -ENOMEM;
		p->lc_drop = d;
		p->lc_cap = n;
	}
	for (size_t i = 0; i < n; i++)
		p->lc_order[i] = i;
	qsort_r(p->lc_order, n, sizeof *p->lc_order, change_key_cmp, (void *)t->changes);
	/* Mark every change that a later change of the same key supersedes. */
	bool any = false;
	bool *drop = p->lc_drop;
	memset(drop, 0, n * sizeof *drop);
	for (size_t k = 0; k + 1 < n; k++) {
		const struct th_txn_change *x = &t->changes[p->lc_order[k]], *y = &t->changes[p->lc_order[k + 1]];
		if (x->table == y->table && x->key_len == y->key_len && !memcmp(x->key, y->key, x->key_len)) {
			drop[p->lc_order[k]] = true;
			any = true;
		}
	}
	if (!any)
		return 0;
	/* The survivors, in transaction order. */
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!drop[i])
			p->lc_changes[m++] = t->changes[i];
	*view = *t;
	view->changes = p->lc_changes;
	view->nchanges = m;
	*out = view;
	return 0;
}

/* One delivered transaction: (a) state, (b) ring, (c) revision + position. */
static int apply_txn(struct th__pub *p, const struct th_txn *whole)
{
	struct th_hub *h = p->h;
	uint64_t start = th_now_ns(); /* its commit event just decoded: publish_latency counts from here */
	struct th_txn view;
	const struct th_txn *t;
	int lrc = last_changes(p, whole, &view, &t);
	if (lrc < 0) {
		snprintf(p->err, sizeof p->err, "coalescing a transaction: %s", th_strerror(lrc));
		return lrc;
	}
	th_fetch_add_relaxed(&h->st_txns_seen, 1);
	if (t->nchanges == 0) {
		th__pub_publish_pos(p, th_load_relaxed(&h->published_revision));
		return 0;
	}
	uint64_t rev = p->next_rev++;
	uint64_t mono = th_now_ns(), real = th_realtime_ns();
	TH_TRACE_HUB_TXN_COMMIT(rev, t->nchanges, t->commit_us);
	int rc = 0;
	/* Before (a): a snapshot that sees any of it names rev as pending. */
	th_store_relaxed(&h->applying_revision, rev);
	th_fence_seq_cst();
	rcu_read_lock();
	for (size_t i = 0; i < t->nchanges && rc == 0; i++) {
		const struct th_txn_change *c = &t->changes[i];
		if (c->op == TH_TXN_DELETE)
			th_state_delete(h->state, c->table, c->key, c->key_len);
		else
			rc = th_state_put(h->state, c->table, c->key, c->key_len, c->value, c->value_len,
					  c->has_value ? 0 : TH_CHANGE_F_VALUE_NULL, c->version, rev, 0, NULL);
	}
	rcu_read_unlock();
	if (rc < 0) {
		/* Out of memory half-way: the state is not what the binlog says. */
		snprintf(p->err, sizeof p->err, "state table: %s", th_strerror(rc));
		p->next_rev--;
		return rc;
	}

	th_ring_set_batch_time(h->ring, mono);
	uint16_t gtid_len = (uint16_t)strnlen(t->gtid, sizeof t->gtid);
	uint64_t bytes = 0;
	uint64_t tags[TH_RING_TAG_WORDS] = { 0 }; /* whom it may be for (protocol.h, batch tags) */
	for (size_t i = 0; i < t->nchanges; i++) {
		const struct th_txn_change *c = &t->changes[i];
		struct th_rec_change rec;
		struct iovec iov[4];
		change_record(t, c, rev, real, gtid_len, &rec, iov);
		rc = th_ring_appendv(h->ring, TH_REC_CHANGE, iov, 4);
		if (rc < 0)
			break;
		th_tag_key(tags, c->table, c->key, c->key_len);
		bytes += sizeof rec + c->key_len + rec.value_len + gtid_len;
	}
	if (rc < 0) {
		/* Too big for the ring: the state has it; readers fetch it by snapshot. */
		th_ring_abort(h->ring);
		th_log_warn("transaction %s (revision %" PRIu64 ", %zu changes) exceeds the ring's limits (%s): "
			    "published as a resync",
			    t->gtid, rev, t->nchanges, th_strerror(rc));
		th_fetch_add_relaxed(&h->st_too_big, 1);
		th__pub_publish_resync(p, rev, TH_RESYNC_TOO_BIG, UINT32_MAX);
	} else {
		TH_TRACE_HUB_BATCH_PUBLISH(rev, bytes, t->nchanges);
		int n = th_ring_commit_tagged(h->ring, tags, rev);
		th_fetch_add_relaxed(&h->st_records, (uint64_t)n);
		th_fetch_add_relaxed(&h->st_bytes, bytes);
		/* Off (the product): a load of the read-only configuration and a branch. */
		if (h->cfg->bench_socket_fanout)
			fanout_txn(p, t, rev, real, gtid_len);
	}
	/* (c): release pairs with the control thread's acquire loads: a reader
	 * that sees rev also sees the state entries and the ring head of it. */
	th_store_release(&h->published_revision, rev);
	th_fetch_add_relaxed(&h->st_txns, 1);
	th_fetch_add_relaxed(&h->st_changes, t->nchanges);
	th_store_relaxed(&h->st_last_commit_us, t->commit_us);
	th_store_relaxed(&h->st_last_publish_ns, real);
	th__pub_publish_pos(p, rev);
	th__hub_hist_add(&h->publish_latency, th_now_ns() - start);
	return 0;
}

/* ---- streaming ----------------------------------------------------------- */

static int feed(struct th__pub *p, const struct th_binlog_event *ev, enum stream_end *end)
{
	const struct th_txn *t;
	int rc = th_txn_feed(p->asm_, ev, &t);
	if (rc < 0) {
		snprintf(p->err, sizeof p->err, "%s", th_txn_error(p->asm_));
		*end = rc == -ENOMEM ? END_RETRY : END_RELOAD;
		p->reload_reason = TH_RESYNC_RELOAD;
		p->reload_table = UINT32_MAX;
		return rc;
	}
	if (rc == 0)
		return 0;
	if (t->resync) {
		th_log_info("transaction %s: %s on a watched table: reloading", t->gtid[0] ? t->gtid : "(no gtid)",
			    th_txn_resync_reason_name(t->reason));
		p->reload_reason = t->reason == TH_TXN_RESYNC_DDL ? TH_RESYNC_DDL : TH_RESYNC_RELOAD;
		p->reload_table = t->resync_table >= 0 ? (uint32_t)t->resync_table : UINT32_MAX;
		*end = END_RELOAD;
		return 1;
	}
	if ((rc = apply_txn(p, t)) < 0) {
		*end = END_RELOAD;
		p->reload_reason = TH_RESYNC_RELOAD;
		p->reload_table = UINT32_MAX;
		return rc;
	}
	return 0;
}

/* Streams from source s until an error, a resync or stop. */
static enum stream_end stream(struct th__pub *p, const struct th_hub_source *s, bool *healthy)
{
	struct th_hub *h = p->h;
	const struct th_hub_config *c = p->cfg;
	char err[1024] = "";
	const char *gtid = th__pub_resume_gtid(p);
	if (!gtid) {
		th_log_error("out of memory formatting the resume position");
		return END_RETRY;
	}
	struct th_source_config sc = {
		.host = s->host, .port = s->port, .socket = s->socket, .user = c->user, .password = c->password,
		.tls = c->tls && !s->socket, .tls_verify = c->tls_verify, .tls_ca = c->tls_ca,
		.tls_cert = c->tls_cert, .tls_key = c->tls_key, .server_id = c->server_id,
		.heartbeat_ms = c->heartbeat_ms, .connect_timeout_ms = c->connect_timeout_ms, .gtid = gtid,
		.name = s->name,
	};
	struct th_source *src = NULL;
	int rc = th_source_live_open(&sc, &src, err, sizeof err);
	if (rc < 0) {
		th_log_warn("%s", err);
		th__pub_set_src_error(p, err);
		return rc == -TH_EGTID ? END_RELOAD : END_RETRY;
	}
	th_binlog_decoder_reset(p->dec, s->name);
	th_binlog_decoder_set_checksum(p->dec, (enum th_binlog_checksum)th_source_checksum(src));
	th_txn_reset(p->asm_);
	pthread_mutex_lock(&h->src_lock);
	h->src.connected = true;
	h->src.index = p->cur;
	snprintf(h->src.version, sizeof h->src.version, "%s", th_source_server_version(src));
	pthread_mutex_unlock(&h->src_lock);
	th_log_info("streaming from %s (%s) after GTID position '%s'", s->name, th_source_server_version(src), gtid);
	if (!p->ready) {
		p->ready = true;
		wake_fd(h->ready_fd);
	}

	enum stream_end end = END_RETRY;
	const uint8_t *bytes;
	size_t len;
	struct th_binlog_event ev;
	uint64_t events = 0;
	while (!th__hub_stopping(h)) {
		rc = th_source_next_event(src, &bytes, &len);
		if (rc <= 0) {
			const char *e = rc == 0 ? "the server ended the stream" : th_source_error(src);
			snprintf(err, sizeof err, "%s", e);
			/* 1236: the server cannot continue from our position (purged,
			 * diverged, or a replica behind us): reload from it. */
			if (rc == -TH_EMYSQL && th_source_server_errno(src) == 1236) {
				end = END_RELOAD;
				p->reload_reason = TH_RESYNC_RELOAD;
				p->reload_table = UINT32_MAX;
			}
			break;
		}
		const char *file;
		uint64_t pos;
		th_source_position(src, &file, &pos);
		rc = th_binlog_decode(p->dec, bytes, len, pos >= len ? pos - len : 0, &ev);
		if (rc < 0) {
			snprintf(err, sizeof err, "%s", th_binlog_decoder_error(p->dec));
			break;
		}
		TH_TRACE_HUB_BINLOG_EVENT(ev.type, ev.log_pos);
		if (++events > 3)
			*healthy = true;
		th_fetch_add_relaxed(&h->st_events, 1);
		rc = feed(p, &ev, &end);
		if (rc == 0 && ev.kind == TH_EVK_TRANSACTION_PAYLOAD) {
			while (rc == 0 && (rc = th_binlog_payload_next(p->dec, &ev)) == 1)
				rc = feed(p, &ev, &end);
			if (rc < 0 && !p->err[0])
				snprintf(p->err, sizeof p->err, "%s", th_binlog_decoder_error(p->dec));
		}
		if (rc != 0) {
			if (rc < 0)
				snprintf(err, sizeof err, "%s", p->err);
			else
				err[0] = '\0';
			break;
		}
	}
	if (th__hub_stopping(h))
		end = END_STOP;
	else if (err[0]) {
		th_log_warn("%s: stream ended: %s", s->name, err);
		th__pub_set_src_error(p, err);
	}
	pthread_mutex_lock(&h->src_lock);
	h->src.connected = false;
	pthread_mutex_unlock(&h->src_lock);
	th_source_close(src);
	return end;
}

/* ---- the thread ---------------------------------------------------------- */

static void fatal(struct th__pub *p, int code)
{
	p->h->exit_code = code;
	uint64_t two = 2;
	ssize_t r = write(p->h->ready_fd, &two, sizeof two);
	(void)r;
}

void *th__hub_publisher_main(void *arg)
{
	struct th_hub *h = arg;
	struct th__pub *p = calloc(1, sizeof *p);
	pthread_setname_np(pthread_self(), "th-publisher"); /* top -H, /proc/PID/task/TID/comm */
	rcu_register_thread();
	if (h->cfg->publisher_realtime) {
		/* The publisher is the one serial path to every subscriber on the
		 * host: each wake-up it makes puts a subscriber on a CPU, and at the
		 * subscribers' priority it is preempted by the very processes it
		 * wakes (measured: 1,024 wake-ups took 30-80 ms a commit instead of
		 * ~4). The lowest real-time priority, below the monitor's need for
		 * none: it blocks on its binlog socket between transactions. Needs
		 * CAP_SYS_NICE or RLIMIT_RTPRIO >= 1, as the monitor's. */
		struct sched_param sp = { .sched_priority = 1 };
		int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
		if (rc)
			th_log_info("publisher: no real-time priority (%s); wake-ups may be slow on a busy host",
				    strerror(rc));
	}
	if (!p || th_binlog_decoder_new(&p->dec, NULL) < 0) {
		th_log_error("publisher: out of memory");
		if (p)
			p->h = h;
		h->exit_code = TH_HUB_EXIT_FAILURE;
		uint64_t two = 2;
		ssize_t r = write(h->ready_fd, &two, sizeof two);
		(void)r;
		free(p);
		rcu_unregister_thread();
		return NULL;
	}
	p->h = h;
	p->cfg = h->cfg;
	/* Revisions grow across restarts: start at the clock in microseconds. */
	uint64_t now_us = th_realtime_ns() / 1000u;
	p->next_rev = now_us > 0 ? now_us : 1;
	p->reload_reason = TH_RESYNC_RELOAD;
	p->reload_table = UINT32_MAX;
	bool need_load = true;
	unsigned backoff = p->cfg->reconnect_min_ms;
	uint64_t streams = 0;
	unsigned reloads_in_row = 0;

	while (!th__hub_stopping(h)) {
		const struct th_hub_source *s = &p->cfg->sources[p->cur];
		char err[1024] = "";
		bool healthy = false;
		enum stream_end end = END_RETRY;
		bool checked = false;
		if (need_load) {
			int rc = th__pub_load(p, s, err, sizeof err);
			if (rc == 0) {
				need_load = false;
				checked = true;
			} else if (th__hub_stopping(h)) {
				break;
			} else if ((rc == -TH_ESERVER || rc == -TH_ESCHEMA) && !p->ready) {
				th_log_error("%s", err);
				fatal(p, TH_HUB_EXIT_SERVER);
				break;
			} else {
				th_log_warn("load from %s failed: %s", s->name, err);
				th__pub_set_src_error(p, err);
			}
		}
		/* Every (re)connection checks the server first: after a failover or
		 * a restart it may not be configured as the last one was. */
		int ck = !need_load && !checked ? th__pub_check_server(p, s, err, sizeof err) : 0;
		if (ck == 2) {
			/* A replica behind the hub: the other sources first, for a
			 * while; reload from it only when it stays behind (the
			 * transactions it lacks may be lost for good: a failover
			 * that lost them). */
			uint64_t now = th_now_ns();
			if (!p->behind_since_ns)
				p->behind_since_ns = now;
			if (now - p->behind_since_ns < BEHIND_WAIT_NS) {
				ck = -1;
			} else {
				th_log_warn("%s; behind for %.1f s: reloading from it", err,
					    (double)(now - p->behind_since_ns) / 1e9);
				ck = 1;
			}
		} else if (ck == 0) {
			p->behind_since_ns = 0;
		}
		if (ck == 1) {
			p->behind_since_ns = 0;
			need_load = true;
			p->reload_reason = TH_RESYNC_RELOAD;
			p->reload_table = UINT32_MAX;
			if (reloads_in_row++ < 3)
				continue;
		} else if (ck < 0) {
			if (th__hub_stopping(h))
				break;
			th_log_warn("%s", err);
			th__pub_set_src_error(p, err);
		} else if (!need_load) {
			if (streams++ > 0)
				th_fetch_add_relaxed(&h->st_reconnects, 1);
			p->err[0] = '\0';
			end = stream(p, s, &healthy);
			if (end == END_STOP)
				break;
			if (end == END_RELOAD) {
				need_load = true;
				/* Reload from the same server at once (it is alive), unless
				 * reloads keep failing to give a stream that works. */
				if (healthy || reloads_in_row++ < 3) {
					if (healthy)
						reloads_in_row = 0;
					continue;
				}
			}
		}
		if (healthy)
			reloads_in_row = 0;
		if (healthy)
			backoff = p->cfg->reconnect_min_ms;
		/* Next source, after a pause that doubles up to the cap. */
		p->cur = (p->cur + 1) % (int)p->cfg->nsources;
		nap(p, backoff);
		backoff = backoff * 2 > p->cfg->reconnect_max_ms ? p->cfg->reconnect_max_ms : backoff * 2;
	}
	th_txn_free(p->asm_);
	th_binlog_decoder_free(p->dec);
	th_buf_free(&p->gtid);
	th_buf_free(&p->scratch);
	free(p->fo_recs);
	free(p->fo_iov);
	free(p->fo_msgs);
	free(p->lc_changes);
	free(p->lc_order);
	free(p->lc_drop);
	free(p);
	rcu_unregister_thread();
	return NULL;
}

