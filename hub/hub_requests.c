/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The requests of protocol.h and their replies, on the control thread; see
 * hub_control.h. ATTACH hands out the reader's descriptors, SNAPSHOT and
 * GET a sealed memfd of entries, SYNC waits for a GTID set, STATS, READERS
 * and TABLES answer JSON.
 *
 * Every message is checked before use: size (at most TH_MSG_MAX; a longer
 * one is cut by the kernel and answered -EMSGSIZE), header magic, version,
 * length equal to the bytes received, type, and each body field against the
 * bytes that carry it. Descriptors a client sends are closed unread (when
 * received, hub_control.c). A malformed request gets an ERROR reply and the
 * connection stays.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "readers/gtid.h"
#include "hub/hub_control.h"
#include "hub/hub_internal.h"
#include "hub/hub_log.h"
#include "protocol/protocol.h"
#include "common/th_buf.h"
#include "common/th_error.h"
#include "common/th_time.h"

static struct th_log_limit lim_attach = TH_LOG_LIMIT_INIT(1000, 20);
static struct th_log_limit lim_misc = TH_LOG_LIMIT_INIT(1000, 10);

/* ---- connections --------------------------------------------------------- */

void th__request_sync_clear(struct th__control *x, struct th__conn *cn)
{
	if (!cn->sync)
		return;
	cn->sync = false;
	th_gtid_set_free(cn->want_set);
	cn->want_set = NULL;
	free(cn->want_maria);
	cn->want_maria = NULL;
	cn->n_want_maria = 0;
	x->nsync--;
	th_store_relaxed(&x->h->sync_waiters, x->nsync);
}

void th__request_detach(struct th__control *x, struct th__conn *cn)
{
	struct th_hub *h = x->h;
	if (cn->reader < 0)
		return;
	pthread_mutex_lock(&h->readers_lock);
	struct th__hub_reader *r = &h->readers[cn->reader];
	th_ring_remove_reader(h->ring, r->id);
	th_log_limited(&lim_attach, TH_LOG_INFO, "reader %u (pid %d, %s) detached", r->id, (int)r->pid, r->name);
	r->used = false;
	pthread_mutex_unlock(&h->readers_lock);
	cn->reader = -1;
}

/* ---- ATTACH and STREAM ------------------------------------------------------ */

/* ---- requests -------------------------------------------------------------- */

static void do_attach(struct th__control *x, struct th__conn *cn, uint32_t req, const uint8_t *body, size_t len)
{
	struct th_hub *h = x->h;
	struct th_msg_attach a = { 0 };
	if (len < offsetof(struct th_msg_attach, reserved)) {
		th__control_error(x, cn, req, -TH_EPROTO, "ATTACH body is %zu bytes; at least %zu", len,
				  offsetof(struct th_msg_attach, reserved));
		return;
	}
	memcpy(&a, body, len < sizeof a ? len : sizeof a);
	if (cn->reader >= 0) {
		th__control_error(x, cn, req, -EALREADY, "this connection is attached already");
		return;
	}
	uint32_t id;
	struct th_ring_reader_fds fds;
	int rc = th_ring_add_reader(h->ring, &id, &fds);
	if (rc < 0) {
		th__control_error(x, cn, req, rc, "cannot add a reader: %s", th_strerror(rc));
		return;
	}
	struct th_ring_lag lag = { 0 };
	th_ring_reader_lag(h->ring, id, &lag);
	struct th_msg_attach_reply rep = {
		.generation = th_ring_generation(h->ring),
		.start_pos = lag.read_pos,
		/* Pairs with the publisher's release of (c). */
		.revision = th_load_acquire(&h->published_revision),
		.timeout_ns = th__hub_clamp_timeout(h, a.timeout_ns),
		.reader_id = id,
		.ntables = (uint32_t)h->cfg->ntables,
	};
	pthread_mutex_lock(&h->readers_lock);
	size_t slot = h->readers_cap;
	for (size_t i = 0; i < h->readers_cap; i++)
		if (!h->readers[i].used) {
			slot = i;
			break;
		}
	if (slot == h->readers_cap) {
		size_t old = h->readers_cap;
		if (th_grow((void **)&h->readers, &h->readers_cap, old + 1, sizeof *h->readers) == 0)
			memset(h->readers + old, 0, (h->readers_cap - old) * sizeof *h->readers);
		else
			slot = SIZE_MAX;
	}
	if (slot != SIZE_MAX) {
		struct th__hub_reader *r = &h->readers[slot];
		memset(r, 0, sizeof *r);
		r->used = true;
		r->id = id;
		r->pid = cn->pid;
		r->uid = cn->uid;
		r->gid = cn->gid;
		r->timeout_ns = rep.timeout_ns;
		r->attached_ns = th_realtime_ns();
		/* Names are informational and go into JSON and logs: printable ASCII only. */
		for (size_t i = 0; i < sizeof a.name && a.name[i]; i++)
			r->name[i] = a.name[i] >= 0x20 && a.name[i] < 0x7f && a.name[i] != '"' && a.name[i] != '\\'
					     ? a.name[i]
					     : '?';
		cn->reader = (int)slot;
	}
	pthread_mutex_unlock(&h->readers_lock);
	if (slot == SIZE_MAX) {
		th_ring_remove_reader(h->ring, id);
		close(fds.ring_fd);
		close(fds.slot_fd);
		close(fds.event_fd);
		th__control_error(x, cn, req, -ENOMEM, "out of memory");
		return;
	}
	int out[3] = { fds.ring_fd, fds.slot_fd, fds.event_fd };
	th_fetch_add_relaxed(&h->st_attaches, 1);
	th__hub_monitor_replan(h);
	th_log_limited(&lim_attach, TH_LOG_INFO, "reader %u attached: pid %d uid %u (%s), timeout %.1f ms", id,
		    (int)cn->pid, (unsigned)cn->uid,
		    h->readers[slot].name, (double)rep.timeout_ns / 1e6);
	th__control_send(x, cn, TH_MSG_ATTACH | TH_MSG_REPLY, req, &rep, sizeof rep, out, 3);
	close(out[0]);
	close(out[1]);
	close(out[2]);
}

/* STREAM (benchmark mode; protocol.h): the reply first, then the subscriber
 * is added, so that no record can precede the reply. */
static void do_stream(struct th__control *x, struct th__conn *cn, uint32_t req)
{
	struct th_hub *h = x->h;
	if (!h->cfg->bench_socket_fanout) {
		th__control_error(x, cn, req, -ENOTSUP, "STREAM is a benchmark mode; this hub runs without bench_socket_fanout");
		return;
	}
	if (cn->reader >= 0 || cn->stream) {
		th__control_error(x, cn, req, -EALREADY, "this connection is attached or streaming already");
		return;
	}
	struct th_msg_stream_reply rep = {
		/* Pairs with the publisher's release of (c). */
		.revision = th_load_acquire(&h->published_revision),
		.sndbuf = th__hub_stream_sndbuf(cn->fd, cn->pid),
	};
	if (th__control_send(x, cn, TH_MSG_STREAM | TH_MSG_REPLY, req, &rep, sizeof rep, NULL, 0) < 0)
		return;
	if (th__hub_stream_add(h, cn->fd, cn->pid, cn->cid, &cn->stream) < 0) {
		th_log_limited(&lim_misc, TH_LOG_WARN,
			       "client %u (pid %d): out of memory adding a stream subscriber: disconnecting", cn->cid,
			    (int)cn->pid);
		th__control_close(x, cn);
		return;
	}
	th_log_limited(&lim_attach, TH_LOG_INFO,
		       "stream subscriber %u added: pid %d uid %u, send buffer %" PRIu64 " bytes, %zu streaming",
		    cn->cid, (int)cn->pid, (unsigned)cn->uid, rep.sndbuf, h->nstreams);
}

/* ---- SNAPSHOT and GET ------------------------------------------------------- */

static int sealed_memfd(const void *data, size_t len)
{
	int fd = memfd_create("topohub-snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	const uint8_t *p = data;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			close(fd);
			return e;
		}
		done += (size_t)n;
	}
	/* Sealed: nobody writes it or makes it longer, so the client may trust
	 * what it reads. It may be made shorter: the hub takes the memory back
	 * by truncating it (hub_limits.c), and a reader sees that as a short
	 * read (protocol.h). */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static void put_entry(struct th_buf *b, const struct th_state_entry *e)
{
	struct th_snap_entry se = {
		.revision = e->revision, .version = e->version, .key_len = e->key_len,
		.value_len = e->value_len, .flags = e->flags,
	};
	th_snap_put(b, &se, th_state_key(e), th_state_value(e));
}

/* SNAPSHOT and GET: same reply form (protocol.h). */
static void do_snapshot(struct th__control *x, struct th__conn *cn, uint16_t type, uint32_t req, const uint8_t *body,
			size_t len)
{
	struct th_hub *h = x->h;
	struct th_msg_snapshot s; /* same layout as struct th_msg_get */
	_Static_assert(sizeof(struct th_msg_snapshot) == sizeof(struct th_msg_get), "snapshot/get layout");
	if (len < sizeof s) {
		th__control_error(x, cn, req, -TH_EPROTO, "body is %zu bytes; at least %zu", len, sizeof s);
		return;
	}
	memcpy(&s, body, sizeof s);
	if (s.prefix_len > TH_KEY_MAX || s.prefix_len > len - sizeof s) {
		th__control_error(x, cn, req, -TH_EPROTO, "key length %u: over %u or beyond the message", s.prefix_len,
				  TH_KEY_MAX);
		return;
	}
	if (s.table >= h->cfg->ntables) {
		th__control_error(x, cn, req, -EINVAL, "no table %u (the hub has %zu)", s.table, h->cfg->ntables);
		return;
	}
	const uint8_t *key = body + sizeof s;
	if (th__limit_snapshot_admit(x, cn, req) < 0)
		return;
	struct th_buf *b = &x->out;
	th_buf_reset(b);
	struct th_msg_snapshot_reply rep = { 0 };
	/* Pairs with the publisher's release of (c): a change with a later
	 * revision than this is in the ring after the reader's start. */
	rep.start_revision = th_load_acquire(&h->published_revision);
	rcu_read_lock();
	if (type == TH_MSG_GET) {
		const struct th_state_entry *e = th_state_get(h->state, s.table, key, s.prefix_len);
		if (e) {
			put_entry(b, e);
			rep.count = 1;
		}
	} else {
		struct cds_lfht_iter it;
		for (const struct th_state_entry *e = th_state_first(h->state, &it); e; e = th_state_next(h->state, &it)) {
			if (e->table == s.table && e->key_len >= s.prefix_len && !memcmp(e->bytes, key, s.prefix_len)) {
				put_entry(b, e);
				rep.count++;
			}
		}
	}
	rcu_read_unlock();
	/* R: acquire pairs with the publisher's release of (c); every change up
	 * to R is in the walk or in the ring after the reader's start. The walk
	 * may have seen part of a transaction between (a) and (c), a put or a
	 * delete (protocol.h): Q names it, so that the client reads on to its
	 * batch. The fence pairs with the publisher's after it names the
	 * revision it applies: a walk that saw any of its state changes sees
	 * that revision here. */
	th_fence_seq_cst();
	uint64_t applying = th_load_relaxed(&h->applying_revision);
	rep.revision = th_load_acquire(&h->published_revision);
	rep.pending_revision = applying > rep.revision ? applying : 0;
	if (th_buf_failed(b)) {
		th_buf_free(b);
		th__control_error(x, cn, req, -ENOMEM, "out of memory building the snapshot");
		return;
	}
	rep.bytes = b->len;
	int fd = sealed_memfd(b->data, b->len);
	if (b->cap > (1u << 20))
		th_buf_free(b); /* do not keep a huge buffer around */
	if (fd < 0) {
		th__control_error(x, cn, req, fd, "snapshot memfd: %s", th_strerror(fd));
		return;
	}
	/* The hub keeps its descriptor: the memory is charged to it for as long
	 * as anyone holds the memfd, so the limits take it back in time. */
	struct th__uid *u = cn->u;
	if (th__control_send(x, cn, type | TH_MSG_REPLY, req, &rep, sizeof rep, &fd, 1) == 0)
		th__limit_snapshot_sent(x, u, fd, rep.bytes);
	else
		close(fd);
}

/* ---- SYNC ------------------------------------------------------------------- */

/* Has the published position reached the connection's SYNC target? On yes,
 * *rev is the revision to answer. */
static bool sync_reached(struct th__control *x, struct th__conn *cn, uint64_t *rev)
{
	struct th_hub *h = x->h;
	bool yes = false;
	char *text = NULL;
	enum th_binlog_flavor flavor = TH_BINLOG_FLAVOR_UNKNOWN;
	rcu_read_lock();
	/* Acquire pairs with the publisher's exchange in publish_pos(). */
	struct th__hub_pos *pos = th_load_acquire(&h->pos);
	if (pos) {
		text = strdup(pos->gtid);
		*rev = pos->revision;
		flavor = pos->flavor;
	}
	rcu_read_unlock();
	if (!text)
		return false;
	if (cn->want_set) {
		struct th_gtid_set *cur;
		if (flavor == TH_BINLOG_FLAVOR_MYSQL && th_gtid_set_new(&cur) == 0) {
			if (th_gtid_set_parse(cur, text, NULL, 0) == 0)
				yes = th_gtid_set_contains(cur, cn->want_set);
			th_gtid_set_free(cur);
		}
	} else {
		struct th_gtid_pos *cur;
		if (flavor == TH_BINLOG_FLAVOR_MARIADB && th_gtid_pos_new(&cur) == 0) {
			if (th_gtid_pos_parse(cur, text, NULL, 0) == 0) {
				yes = true;
				for (size_t i = 0; i < cn->n_want_maria && yes; i++)
					yes = th_gtid_pos_contains(cur, &cn->want_maria[i]);
			}
			th_gtid_pos_free(cur);
		}
	}
	free(text);
	return yes;
}

static void do_sync(struct th__control *x, struct th__conn *cn, uint32_t req, const uint8_t *body, size_t len)
{
	struct th_hub *h = x->h;
	struct th_msg_sync s;
	if (len < sizeof s) {
		th__control_error(x, cn, req, -TH_EPROTO, "SYNC body is %zu bytes; at least %zu", len, sizeof s);
		return;
	}
	memcpy(&s, body, sizeof s);
	if (s.gtid_len > len - sizeof s || s.gtid_len > TH_MSG_MAX) {
		th__control_error(x, cn, req, -TH_EPROTO, "GTID length %u beyond the message", s.gtid_len);
		return;
	}
	if (cn->sync) {
		th__control_error(x, cn, req, -EBUSY, "a SYNC is pending on this connection");
		return;
	}
	char *text = malloc(s.gtid_len + 1);
	if (!text) {
		th__control_error(x, cn, req, -ENOMEM, "out of memory");
		return;
	}
	memcpy(text, body + sizeof s, s.gtid_len);
	text[s.gtid_len] = '\0';
	enum th_binlog_flavor flavor = TH_BINLOG_FLAVOR_UNKNOWN;
	rcu_read_lock();
	/* Acquire pairs with the publisher's exchange in publish_pos(). */
	struct th__hub_pos *pos = th_load_acquire(&h->pos);
	if (pos)
		flavor = pos->flavor;
	rcu_read_unlock();
	char why[200] = "";
	int rc = 0;
	if (flavor == TH_BINLOG_FLAVOR_MYSQL) {
		rc = th_gtid_set_new(&cn->want_set);
		if (!rc)
			rc = th_gtid_set_parse(cn->want_set, text, why, sizeof why);
	} else {
		/* A MariaDB position: D-S-N entries; every one must be reached. */
		size_t n = 1;
		for (const char *c = text; *c; c++)
			n += *c == ',';
		cn->want_maria = calloc(n, sizeof *cn->want_maria);
		if (!cn->want_maria)
			rc = -ENOMEM;
		char *save = NULL;
		for (char *t = rc ? NULL : strtok_r(text, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
			const char *q = t;
			while (*q == ' ' || *q == '\n' || *q == '\t')
				q++;
			if (!*q)
				continue;
			rc = th_maria_gtid_parse(t, &cn->want_maria[cn->n_want_maria]);
			if (rc)
				snprintf(why, sizeof why, "'%.60s' is not a MariaDB GTID (domain-server-seq)", t);
			else
				cn->n_want_maria++;
		}
	}
	free(text);
	cn->sync = true; /* so that sync_clear frees what was built */
	x->nsync++;
	if (rc) {
		th__request_sync_clear(x, cn);
		th__control_error(x, cn, req, rc, "bad GTID set: %s", why[0] ? why : th_strerror(rc));
		return;
	}
	cn->sync_req = req;
	cn->sync_deadline = th_now_ns() + (s.timeout_ns > (1ull << 62) ? (1ull << 62) : s.timeout_ns);
	th_store_relaxed(&h->sync_waiters, x->nsync);
	uint64_t rev;
	if (sync_reached(x, cn, &rev)) {
		struct th_msg_sync_reply r = { rev };
		th__request_sync_clear(x, cn);
		th__control_send(x, cn, TH_MSG_SYNC | TH_MSG_REPLY, req, &r, sizeof r, NULL, 0);
	} else if (s.timeout_ns == 0) {
		th__request_sync_clear(x, cn);
		th__control_error(x, cn, req, -ETIMEDOUT, "not reached");
	}
}

/* Checks pending SYNCs; returns the nearest deadline (0 when none). */
uint64_t th__request_sync_check(struct th__control *x)
{
	uint64_t now = th_now_ns(), next = 0;
	struct th__conn *cn = x->conns;
	while (cn) {
		struct th__conn *nx = cn->next;
		if (cn->sync) {
			uint64_t rev;
			if (sync_reached(x, cn, &rev)) {
				struct th_msg_sync_reply r = { rev };
				uint32_t req = cn->sync_req;
				th__request_sync_clear(x, cn);
				th__control_send(x, cn, TH_MSG_SYNC | TH_MSG_REPLY, req, &r, sizeof r, NULL, 0);
			} else if (now >= cn->sync_deadline) {
				uint32_t req = cn->sync_req;
				th__request_sync_clear(x, cn);
				th__control_error(x, cn, req, -ETIMEDOUT, "the hub has not published past that GTID set yet");
			} else if (!next || cn->sync_deadline < next) {
				next = cn->sync_deadline;
			}
		}
		cn = nx;
	}
	return next;
}

/* ---- STATS, READERS, TABLES ------------------------------------------------- */

static void json_common(struct th_hub *h, struct th_buf *b)
{
	const struct th_hub_config *c = h->cfg;
	char version[128], err[512];
	int idx;
	bool connected;
	pthread_mutex_lock(&h->src_lock);
	idx = h->src.index;
	connected = h->src.connected;
	snprintf(version, sizeof version, "%s", h->src.version);
	snprintf(err, sizeof err, "%s", h->src.last_error);
	pthread_mutex_unlock(&h->src_lock);
	uint64_t rev = th_load_acquire(&h->published_revision); /* pairs with the publisher's release */
	char gtid[4096] = "", file[128] = "";
	uint64_t fpos = 0;
	const char *flavor = "unknown";
	rcu_read_lock();
	/* Acquire pairs with the publisher's exchange in publish_pos(). */
	struct th__hub_pos *pos = th_load_acquire(&h->pos);
	if (pos) {
		snprintf(gtid, sizeof gtid, "%s", pos->gtid);
		snprintf(file, sizeof file, "%s", pos->file);
		fpos = pos->end_pos;
		flavor = pos->flavor == TH_BINLOG_FLAVOR_MARIADB ? "mariadb"
			 : pos->flavor == TH_BINLOG_FLAVOR_MYSQL ? "mysql"
								 : "unknown";
	}
	rcu_read_unlock();
	uint64_t now = th_realtime_ns();
	th_buf_printf(b, "{\"pid\":%d,\"uptime_s\":%.3f,\"generation\":%" PRIu64 ",\"revision\":%" PRIu64,
		      (int)getpid(), (double)(now - h->start_ns) / 1e9, th_ring_generation(h->ring), rev);
	th_buf_printf(b, ",\"source\":");
	const char *name = idx >= 0 ? c->sources[idx].name : "";
	th_buf_json_string(b, name, strlen(name));
	th_buf_printf(b, ",\"source_index\":%d,\"connected\":%s,\"flavor\":\"%s\",\"server_version\":", idx,
		      connected ? "true" : "false", flavor);
	th_buf_json_string(b, version, strnlen(version, sizeof version));
	th_buf_printf(b, ",\"gtid\":");
	th_buf_json_string(b, gtid, strlen(gtid));
	th_buf_printf(b, ",\"binlog_file\":");
	th_buf_json_string(b, file, strlen(file));
	th_buf_printf(b, ",\"binlog_pos\":%" PRIu64 ",\"last_error\":", fpos);
	/* Errors quote server messages: keep them valid UTF-8 for JSON. */
	for (char *q = err; *q; q++)
		if ((unsigned char)*q >= 0x80)
			*q = '?';
	th_buf_json_string(b, err, strlen(err));
	uint64_t last_pub = th_load_relaxed(&h->st_last_publish_ns);
	th_buf_printf(b,
		      ",\"transactions\":%" PRIu64 ",\"transactions_seen\":%" PRIu64 ",\"changes\":%" PRIu64
		      ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"events\":%" PRIu64
		      ",\"reconnects\":%" PRIu64 ",\"reloads\":%" PRIu64 ",\"resyncs\":%" PRIu64
		      ",\"too_big\":%" PRIu64 ",\"evictions\":%" PRIu64 ",\"attaches\":%" PRIu64
		      ",\"refused\":%" PRIu64 ",\"bad_messages\":%" PRIu64 ",\"clients\":%" PRIu64
		      ",\"entries\":%" PRIu64 ",\"last_commit_us\":%" PRIu64 ",\"last_publish_ns\":%" PRIu64
		      ",\"ring_head\":%" PRIu64 ",\"ring_oldest\":%" PRIu64 ",\"ring_capacity\":%" PRIu64
		      ",\"ntables\":%zu,\"monitor_rounds\":%" PRIu64 ",\"config_reloads\":%" PRIu64
		      ",\"snapshots_held\":%" PRIu64 ",\"snapshot_bytes_held\":%" PRIu64
		      ",\"snapshots_reclaimed\":%" PRIu64 ",\"wake_delay_ns\":%" PRIu64,
		      th_load_relaxed(&h->st_txns), th_load_relaxed(&h->st_txns_seen), th_load_relaxed(&h->st_changes),
		      th_load_relaxed(&h->st_records), th_load_relaxed(&h->st_bytes), th_load_relaxed(&h->st_events),
		      th_load_relaxed(&h->st_reconnects), th_load_relaxed(&h->st_reloads),
		      th_load_relaxed(&h->st_resyncs), th_load_relaxed(&h->st_too_big),
		      th_load_relaxed(&h->st_evictions), th_load_relaxed(&h->st_attaches),
		      th_load_relaxed(&h->st_refused), th_load_relaxed(&h->st_bad_msgs),
		      th_load_relaxed(&h->st_clients), th_state_count(h->state),
		      th_load_relaxed(&h->st_last_commit_us), last_pub, th_ring_head(h->ring), th_ring_oldest(h->ring),
		      th_ring_capacity(h->ring), c->ntables, th_load_relaxed(&h->st_monitor_rounds),
		      th_load_relaxed(&h->st_config_reloads), th_load_relaxed(&h->st_snap_held),
		      th_load_relaxed(&h->st_snap_held_bytes), th_load_relaxed(&h->st_snap_reclaimed),
		      th_ring_wake_delay(h->ring));
	th__hub_hist_json(&h->publish_latency, b, "publish_latency");
	th__hub_hist_json(&h->reader_lag, b, "reader_lag");
}

/* The table copied under the lock, then the ring asked. */
void th__request_readers_json(struct th_hub *h, struct th_buf *b, uint64_t *n_out, uint64_t *max_lag_ns,
			      uint64_t *max_lag_bytes, bool sample)
{
	pthread_mutex_lock(&h->readers_lock);
	size_t n = 0;
	struct th__hub_reader *copy = h->readers_cap ? malloc(h->readers_cap * sizeof *copy) : NULL;
	for (size_t i = 0; copy && i < h->readers_cap; i++)
		if (h->readers[i].used)
			copy[n++] = h->readers[i];
	pthread_mutex_unlock(&h->readers_lock);
	*n_out = n;
	*max_lag_ns = *max_lag_bytes = 0;
	if (b)
		th_buf_putc(b, '[');
	for (size_t i = 0; i < n; i++) {
		struct th_ring_lag lag = { 0 };
		if (th_ring_reader_lag(h->ring, copy[i].id, &lag) < 0)
			continue;
		/* Only positions the ring could check count (th_ring_lag.invalid). */
		if (!lag.evicted && !lag.invalid && lag.age_ns != UINT64_MAX && lag.age_ns > *max_lag_ns)
			*max_lag_ns = lag.age_ns;
		if (!lag.evicted && !lag.invalid && lag.lag_bytes > *max_lag_bytes)
			*max_lag_bytes = lag.lag_bytes;
		if (sample && !lag.evicted && !lag.invalid && !lag.lapped && lag.age_ns != UINT64_MAX)
			th__hub_hist_add(&h->reader_lag, lag.age_ns);
		if (!b)
			continue;
		uint64_t tmo = lag.timeout_ns ? th__hub_clamp_timeout(h, lag.timeout_ns) : copy[i].timeout_ns;
		th_buf_printf(b,
			      "%s{\"id\":%u,\"pid\":%d,\"uid\":%u,\"gid\":%u,\"name\":\"%s\",\"attached_ns\":%" PRIu64
			      ",\"read_pos\":%" PRIu64 ",\"lag_bytes\":%" PRIu64 ",\"lag_ns\":%" PRIu64
			      ",\"timeout_ns\":%" PRIu64 ",\"evictions\":%u,\"evicted\":%s,\"lapped\":%s,\"sleeping\":%s"
			      ",\"invalid\":%s}",
			      i ? "," : "", copy[i].id, (int)copy[i].pid, (unsigned)copy[i].uid, (unsigned)copy[i].gid,
			      copy[i].name, copy[i].attached_ns, lag.read_pos, lag.lag_bytes,
			      lag.age_ns == UINT64_MAX || lag.invalid ? 0 : lag.age_ns, tmo, lag.evictions, lag.evicted ? "true" : "false",
			      lag.lapped ? "true" : "false", lag.sleeping ? "true" : "false", lag.invalid ? "true" : "false");
	}
	if (b)
		th_buf_putc(b, ']');
	free(copy);
}

static void do_json(struct th__control *x, struct th__conn *cn, uint16_t type, uint32_t req)
{
	struct th_hub *h = x->h;
	struct th_buf *b = &x->out;
	th_buf_reset(b);
	if (type == TH_MSG_STATS) {
		uint64_t n, lag_ns, lag_bytes;
		json_common(h, b);
		th__request_readers_json(h, NULL, &n, &lag_ns, &lag_bytes, false);
		th_buf_printf(b, ",\"readers\":%" PRIu64 ",\"max_lag_ns\":%" PRIu64 ",\"max_lag_bytes\":%" PRIu64,
			      n, lag_ns, lag_bytes);
		if (h->cfg->bench_socket_fanout)
			th_buf_printf(b, ",\"streams\":%zu,\"stream_drops\":%" PRIu64, h->nstreams,
				      th_load_relaxed(&h->st_stream_drops));
		th_buf_putc(b, '}');
	} else if (type == TH_MSG_READERS) {
		uint64_t n, lag_ns, lag_bytes;
		th_buf_puts(b, "{\"readers\":");
		th__request_readers_json(h, b, &n, &lag_ns, &lag_bytes, false);
		th_buf_putc(b, '}');
	} else {
		const struct th_hub_config *c = h->cfg;
		th_buf_puts(b, "{\"tables\":[");
		for (size_t i = 0; i < c->ntables; i++) {
			const struct th_txn_table *t = &c->tables[i];
			const char *schema = t->schema ? t->schema : c->schema;
			th_buf_printf(b, "%s{\"index\":%zu,\"schema\":", i ? "," : "", i);
			th_buf_json_string(b, schema, strlen(schema));
			th_buf_puts(b, ",\"name\":");
			th_buf_json_string(b, t->table, strlen(t->table));
			th_buf_puts(b, ",\"key\":");
			th_buf_json_string(b, t->key, strlen(t->key));
			th_buf_puts(b, ",\"value\":[");
			for (int k = 0; k < TH_TXN_MAX_VALUE_COLS && t->value[k]; k++) {
				if (k)
					th_buf_putc(b, ',');
				th_buf_json_string(b, t->value[k], strlen(t->value[k]));
			}
			th_buf_puts(b, "],\"version\":");
			if (t->version)
				th_buf_json_string(b, t->version, strlen(t->version));
			else
				th_buf_puts(b, "null");
			th_buf_putc(b, '}');
		}
		th_buf_puts(b, "]}");
	}
	if (th_buf_failed(b) || b->len > TH_MSG_MAX - sizeof(struct th_msg_hdr)) {
		th_buf_free(b);
		th__control_error(x, cn, req, -E2BIG, "reply too large");
		return;
	}
	th__control_send(x, cn, type | TH_MSG_REPLY, req, b->data, b->len, NULL, 0);
}

/* ---- dispatch --------------------------------------------------------------- */

int th__request_handle(struct th__control *x, struct th__conn *cn, const uint8_t *m, size_t n, bool truncated)
{
	struct th_hub *h = x->h;
	struct th_msg_hdr hdr;
	uint32_t req = 0;
	if (n >= sizeof hdr) {
		memcpy(&hdr, m, sizeof hdr);
		req = hdr.request_id;
	}
	if (truncated) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return th__control_error(x, cn, req, -EMSGSIZE, "message over %u bytes", TH_MSG_MAX);
	}
	if (n < sizeof hdr) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return th__control_error(x, cn, 0, -TH_EPROTO, "message of %zu bytes: shorter than a header", n);
	}
	if (hdr.magic != TH_PROTO_MAGIC) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return th__control_error(x, cn, req, -TH_EPROTO, "bad magic 0x%04x", hdr.magic);
	}
	if (hdr.version != TH_PROTO_VERSION) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return th__control_error(x, cn, req, -TH_EVERSION, "protocol version %u; this hub speaks %u", hdr.version,
					 TH_PROTO_VERSION);
	}
	if (hdr.len != n) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return th__control_error(x, cn, req, -TH_EPROTO, "header says %u bytes, %zu received", hdr.len, n);
	}
	const uint8_t *body = m + sizeof hdr;
	size_t blen = n - sizeof hdr;
	if (cn->refused) {
		/* Answered (again, with its request id), then closed: nothing of
		 * it is left unread, so the reply reaches it. */
		if (th__control_error(x, cn, req, -EACCES, "uid %u gid %u is not allowed on this hub", (unsigned)cn->uid,
				      (unsigned)cn->gid) == 0)
			th__control_close(x, cn);
		return -1;
	}
	cn->last_ns = th_now_ns();
	switch (hdr.type) {
	case TH_MSG_STREAM:
		do_stream(x, cn, req);
		break;
	case TH_MSG_ATTACH:
		do_attach(x, cn, req, body, blen);
		break;
	case TH_MSG_SNAPSHOT:
	case TH_MSG_GET:
		do_snapshot(x, cn, hdr.type, req, body, blen);
		break;
	case TH_MSG_SYNC:
		do_sync(x, cn, req, body, blen);
		break;
	case TH_MSG_STATS:
	case TH_MSG_READERS:
	case TH_MSG_TABLES:
		do_json(x, cn, hdr.type, req);
		break;
	case TH_MSG_REJOIN: {
		/* Acquire pairs with the publisher's release of (c). */
		struct th_msg_rejoin_reply r = { th_load_acquire(&h->published_revision) };
		th__control_send(x, cn, TH_MSG_REJOIN | TH_MSG_REPLY, req, &r, sizeof r, NULL, 0);
		break;
	}
	default:
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return th__control_error(x, cn, req, -EOPNOTSUPP, "unknown message type %u", hdr.type);
	}
	return 0;
}
