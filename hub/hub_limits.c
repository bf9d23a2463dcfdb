/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The limits that hold against any peer of the control socket (issue 13;
 * doc/DESIGN.md, "What a reader can never do"); see hub_control.h.
 *
 * - A refused peer (credentials) gets its -EACCES reply and is closed after
 *   its first request is answered, or after LINGER_MS; at most LINGER_MAX
 *   wait so at once (the others are closed right after the reply). Refused
 *   connections never count against max_clients.
 * - max_clients (clamped to the open-file limit, hub.c) and
 *   max_clients_per_uid; root and the hub's own uid may use OPERATOR_RESERVE
 *   connections beyond max_clients, so an operator gets in when others
 *   filled it. Over a limit: an -EMFILE reply, then closed.
 * - accept() failing with EMFILE/ENFILE (descriptors used elsewhere) does not
 *   spin: a reserve descriptor is closed to accept and shed one connection
 *   with an -EMFILE reply, and the listen socket is not polled for 100 ms.
 * - A connection that is not attached, not streaming, without a pending
 *   SYNC and silent for idle_timeout_ms is closed.
 * - Snapshot memory: a SNAPSHOT/GET reply is a memfd charged to the hub for
 *   as long as the client keeps it, and the hub cannot see when the client
 *   closes it. What is bounded is what the hub hands out: at most
 *   snapshot_bytes_max bytes of replies per uid per snapshot_window_ms (a
 *   request when the uid's window is spent gets -ENOBUFS; the one that
 *   crosses the bound is still served, so a single snapshot larger than the
 *   bound works). Per uid, not per connection, so that more connections buy
 *   nothing. A uid can so pin at most snapshot_bytes_max (plus one snapshot)
 *   per window it keeps hoarding; the honest client maps and closes its
 *   memfd at once.
 * - Every line a peer can cause is logged through th_log_limited().
 *
 * The settings a SIGHUP may change (allow_uids, allow_gids and the keys
 * above) are the thread's own copy, x->live, taken over in th__limit_reload.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hub/hub_control.h"
#include "hub/hub_internal.h"
#include "hub/hub_log.h"
#include "protocol/protocol.h"
#include "common/th_time.h"

#define LINGER_MAX 64
#define LINGER_MS 250
#define OPERATOR_RESERVE 16
#define EMFILE_PAUSE_MS 100

static struct th_log_limit lim_refused = TH_LOG_LIMIT_INIT(1000, 5);
static struct th_log_limit lim_full = TH_LOG_LIMIT_INIT(1000, 5);
static struct th_log_limit lim_accept = TH_LOG_LIMIT_INIT(1000, 5);
static struct th_log_limit lim_snap = TH_LOG_LIMIT_INIT(1000, 5);
static struct th_log_limit lim_idle = TH_LOG_LIMIT_INIT(1000, 10);

/* ---- who may connect ------------------------------------------------------ */

static bool peer_allowed(const struct th__control *x, uid_t uid, gid_t gid)
{
	const struct th__hub_live *l = &x->live;
	gid_t socket_gid = x->h->cfg->socket_gid;
	if (uid == 0 || uid == geteuid())
		return true;
	if (socket_gid != (gid_t)-1 && gid == socket_gid)
		return true;
	for (size_t i = 0; i < l->n_allow_uids; i++)
		if (l->allow_uids[i] == uid)
			return true;
	for (size_t i = 0; i < l->n_allow_gids; i++)
		if (l->allow_gids[i] == gid)
			return true;
	return false;
}

void th__hub_live_from(struct th__hub_live *l, const struct th_hub_config *c)
{
	memset(l, 0, sizeof *l);
	memcpy(l->allow_uids, c->allow_uids, sizeof l->allow_uids);
	l->n_allow_uids = c->n_allow_uids;
	memcpy(l->allow_gids, c->allow_gids, sizeof l->allow_gids);
	l->n_allow_gids = c->n_allow_gids;
	l->max_clients_per_uid = c->max_clients_per_uid;
	l->idle_timeout_ms = c->idle_timeout_ms;
	l->snapshot_window_ms = c->snapshot_window_ms;
	l->snapshot_bytes_max = c->snapshot_bytes_max;
}

/* A SIGHUP changed the live settings (hub.c): the connections of peers they
 * no longer allow are closed, readers included (a revoked uid keeps nothing
 * it was handed but the read-only mappings it has). */
void th__limit_reload(struct th__control *x)
{
	uint64_t v;
	if (read(x->h->reload_fd, &v, sizeof v) < 0) {
		/* EAGAIN: nothing new */
	}
	pthread_mutex_lock(&x->h->live_lock);
	x->live = x->h->live_next;
	pthread_mutex_unlock(&x->h->live_lock);
	for (struct th__conn *cn = x->conns, *nx; cn; cn = nx) {
		nx = cn->next;
		if (cn->refused || peer_allowed(x, cn->uid, cn->gid))
			continue;
		th_log_warn("client %u (pid %d uid %u gid %u): no longer allowed (allow_uids/allow_gids, SIGHUP): closed",
			    cn->cid, (int)cn->pid, (unsigned)cn->uid, (unsigned)cn->gid);
		th__control_close(x, cn);
	}
}

/* ---- connection counts ---------------------------------------------------- */

static struct th__uid *uid_get(struct th__control *x, uid_t uid)
{
	for (struct th__uid *u = x->uids; u; u = u->next)
		if (u->uid == uid)
			return u;
	struct th__uid *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->uid = uid;
	u->next = x->uids;
	x->uids = u;
	return u;
}

/* Entries of uids with no connection and no live snapshot window. */
static void uid_gc(struct th__control *x, uint64_t now)
{
	uint64_t win = (uint64_t)x->live.snapshot_window_ms * 1000000u;
	for (struct th__uid **pp = &x->uids; *pp;) {
		struct th__uid *u = *pp;
		if (u->conns == 0 && now - u->win_start >= win) {
			*pp = u->next;
			free(u);
		} else {
			pp = &u->next;
		}
	}
}

/* Closes a socket whose refusal was just sent so that the reply reaches the
 * peer: closing a Unix socket with messages of the peer unread sets the
 * peer's error (ECONNRESET), which its next recv returns before the queued
 * reply. So first shut reading down (the peer's further sends fail with
 * EPIPE, and a client then reads the reply), drop what it sent before (a
 * few messages: the socket is new; their descriptors are closed with them),
 * then close. */
static void close_refused(int fd)
{
	shutdown(fd, SHUT_RD);
	char b[256];
	for (int i = 0; i < 64 && recv(fd, b, sizeof b, MSG_DONTWAIT | MSG_TRUNC) > 0; i++)
		; /* 0: nothing left (read is shut down) */
	close(fd);
}

/* An ERROR on a socket that has no struct th__conn (yet). */
static void refuse_fd(int fd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse_fd(int fd, int code, const char *fmt, ...)
{
	struct {
		struct th_msg_error e;
		char text[200];
	} b = { { code, 0 }, { 0 } };
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b.text, sizeof b.text, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof b.text)
		n = sizeof b.text - 1;
	th_proto_send(fd, TH_MSG_ERROR, 0, &b, sizeof b.e + (size_t)n, NULL, 0, MSG_DONTWAIT);
}

void th__limit_admit(struct th__control *x, int fd, const struct ucred *cr)
{
	struct th_hub *h = x->h;
	uint64_t now = th_now_ns();
	if (!peer_allowed(x, cr->uid, cr->gid)) {
		th_fetch_add_relaxed(&h->st_refused, 1);
		th_log_limited(&lim_refused, TH_LOG_WARN,
			       "refused control connection from pid %d uid %u gid %u: not in allow_uids/allow_gids",
			       (int)cr->pid, (unsigned)cr->uid, (unsigned)cr->gid);
		refuse_fd(fd, -EACCES, "uid %u gid %u is not allowed on this hub", (unsigned)cr->uid,
			  (unsigned)cr->gid);
		/* Closing with its request unread would reset the connection
		 * and lose the reason on the way: a few wait for their first
		 * request (LINGER_MS), uncounted; beyond that, closed now. */
		if (x->nlinger < LINGER_MAX)
			th__control_conn_add(x, fd, cr, NULL, true, now + LINGER_MS * 1000000ull);
		else
			close_refused(fd);
		return;
	}
	struct th__uid *u = uid_get(x, cr->uid);
	bool operator = cr->uid == 0 || cr->uid == geteuid();
	uint64_t limit = (uint64_t)h->max_clients + (operator ? OPERATOR_RESERVE : 0);
	if (!u || th_load_relaxed(&h->st_clients) >= limit || u->conns >= x->live.max_clients_per_uid) {
		bool per_uid = u && u->conns >= x->live.max_clients_per_uid;
		th_log_limited(&lim_full, TH_LOG_WARN,
			       "refused control connection from pid %d uid %u: %s (%u) reached",
			       (int)cr->pid, (unsigned)cr->uid, per_uid ? "max_clients_per_uid" : "max_clients",
			       per_uid ? x->live.max_clients_per_uid : h->max_clients);
		refuse_fd(fd, -EMFILE, "too many connections (%s)", per_uid ? "max_clients_per_uid" : "max_clients");
		close_refused(fd);
		return;
	}
	th__control_conn_add(x, fd, cr, u, false, now);
}

/* Out of descriptors: shed one pending connection with a reason (through the
 * reserve descriptor) and stop polling the listen socket for a while,
 * instead of spinning on a socket that stays readable. */
void th__limit_accept_emfile(struct th__control *x, int err)
{
	if (x->reserve_fd >= 0) {
		close(x->reserve_fd);
		x->reserve_fd = -1;
		int fd = accept4(x->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			static const char msg[] = "the hub is out of file descriptors";
			struct {
				struct th_msg_error e;
				char text[sizeof msg - 1];
			} b = { { -EMFILE, 0 }, { 0 } };
			memcpy(b.text, msg, sizeof b.text);
			th_proto_send(fd, TH_MSG_ERROR, 0, &b, sizeof b, NULL, 0, MSG_DONTWAIT);
			close_refused(fd);
		}
		x->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	x->listen_paused_until = th_now_ns() + EMFILE_PAUSE_MS * 1000000ull;
	th__control_listen_poll(x, false);
	th_log_limited(&lim_accept, TH_LOG_WARN,
		       "accept: %s: not accepting for %d ms (%" PRIu64 " clients; raise the open-file limit or lower "
		       "max_clients)",
		       strerror(err), EMFILE_PAUSE_MS, th_load_relaxed(&x->h->st_clients));
}

void th__limit_scan(struct th__control *x, uint64_t now)
{
	uint64_t idle = (uint64_t)x->live.idle_timeout_ms * 1000000u;
	for (struct th__conn *cn = x->conns, *nx; cn; cn = nx) {
		nx = cn->next;
		if (cn->refused) {
			if (now >= cn->last_ns)
				th__control_close(x, cn);
		} else if (idle && cn->reader < 0 && !cn->stream && !cn->sync && now - cn->last_ns >= idle) {
			th_log_limited(&lim_idle, TH_LOG_INFO,
				       "client %u (pid %d uid %u): idle for %u ms: closed", cn->cid,
				       (int)cn->pid, (unsigned)cn->uid, x->live.idle_timeout_ms);
			th__control_close(x, cn);
		}
	}
	uid_gc(x, now);
}

void th__limit_free(struct th__control *x)
{
	while (x->uids) {
		struct th__uid *u = x->uids;
		x->uids = u->next;
		free(u);
	}
}

/* ---- snapshot memory ------------------------------------------------------ */

int th__limit_snapshot_admit(struct th__control *x, struct th__conn *cn, uint32_t req)
{
	/* The uid's snapshot budget (see the opening comment). */
	struct th__uid *u = cn->u;
	uint64_t now = th_now_ns(), win = (uint64_t)x->live.snapshot_window_ms * 1000000u;
	if (u && now - u->win_start >= win) {
		u->win_start = now;
		u->bytes = 0;
	}
	if (u && u->bytes >= x->live.snapshot_bytes_max) {
		uint64_t left_ms = (u->win_start + win - now) / 1000000u + 1;
		th_log_limited(&lim_snap, TH_LOG_WARN,
			       "client %u (pid %d uid %u): snapshot budget spent (%" PRIu64 " bytes in %u ms): refused",
			       cn->cid, (int)cn->pid, (unsigned)cn->uid, u->bytes, x->live.snapshot_window_ms);
		th__control_error(x, cn, req, -ENOBUFS,
				  "uid %u was sent %" PRIu64
				  " snapshot bytes in this window (snapshot_bytes_max); retry in %" PRIu64 " ms",
				  (unsigned)cn->uid, u->bytes, left_ms);
		return -1;
	}
	return 0;
}

void th__limit_snapshot_sent(struct th__control *x, struct th__conn *cn, uint64_t bytes)
{
	if (cn->u)
		cn->u->bytes += bytes;
}
