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
 *   as long as anyone holds it, and the hub cannot see when the client
 *   closes it. So the hub keeps a descriptor of each one it sent and takes
 *   the memory back itself (truncates the memfd, held_release()): when its
 *   client had snapshot_hold_ms to read it, and, oldest first, when the uid
 *   holds more than snapshot_bytes_max bytes or SNAP_HELD_PER_UID memfds
 *   (never the uid's newest, so a single snapshot larger than the bound
 *   works), or the hub more than TH__HUB_SNAP_HELD_MAX (then from the uid
 *   that holds most). A hoarder that keeps
 *   every descriptor holds nothing but empty files: a uid pins at most
 *   max(snapshot_bytes_max, its largest snapshot), however long it hoards.
 *   An honest client reads its memfd at once and never sees it cut short
 *   unless its own uid asked for more than the bound meanwhile (then it
 *   fails that snapshot and asks again, protocol.h). And what it costs to
 *   build them is bounded too: at most snapshot_bytes_max bytes of replies
 *   per uid per snapshot_window_ms (a request when the uid's window is spent
 *   gets -ENOBUFS; the one that crosses the bound is still served). Per uid,
 *   not per connection, so that more connections buy nothing.
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
	l->snapshot_hold_ms = c->snapshot_hold_ms;
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

/* Entries of uids with no connection, no snapshot held and no live snapshot window. */
static void uid_gc(struct th__control *x, uint64_t now)
{
	uint64_t win = (uint64_t)x->live.snapshot_window_ms * 1000000u;
	for (struct th__uid **pp = &x->uids; *pp;) {
		struct th__uid *u = *pp;
		if (u->conns == 0 && u->held == 0 && now - u->win_start >= win) {
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
	struct th__error_body b;
	va_list ap;
	va_start(ap, fmt);
	size_t len = th__error_body(&b, code, fmt, ap);
	va_end(ap);
	th_proto_send(fd, TH_MSG_ERROR, 0, &b, len, NULL, 0, MSG_DONTWAIT);
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

/* ---- snapshot memory ------------------------------------------------------ */

#define SNAP_HELD_PER_UID 64u

static void held_gauges(struct th__control *x)
{
	th_store_relaxed(&x->h->st_snap_held, x->nheld);
	th_store_relaxed(&x->h->st_snap_held_bytes, x->held_bytes);
}

/* Takes a held snapshot's memory back: truncated to nothing, even while its
 * client still holds it (protocol.h: the client then reads it short, and
 * fails that snapshot). Not a hole punched in it: the seal against writes
 * that the client relies on forbids punching, a hole reads as zeros that a
 * reader cannot tell from a value's, and a mapping's read fault fills a hole
 * again; a file cut short ends before reply.bytes, which no reader can
 * mistake, and F_SEAL_GROW keeps it so. */
static void held_release(struct th__control *x, struct th__held *s)
{
	if (ftruncate(s->fd, 0) != 0)
		th_log_limited(&lim_snap, TH_LOG_WARN, "snapshot memfd of uid %u: truncate: %s", (unsigned)s->u->uid,
			       strerror(errno));
	close(s->fd);
	if (s->prev)
		s->prev->next = s->next;
	else
		x->held = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		x->held_last = s->prev;
	s->u->held--;
	s->u->held_bytes -= s->bytes;
	x->nheld--;
	x->held_bytes -= s->bytes;
	free(s);
}

/* Before its time: the uid (or the hub) holds too much. */
static void held_reclaim(struct th__control *x, struct th__held *s, uint64_t now, const char *why)
{
	th_log_limited(&lim_snap, TH_LOG_WARN,
		       "uid %u: snapshot of %" PRIu64 " bytes sent %" PRIu64 " ms ago taken back (%s)",
		       (unsigned)s->u->uid, s->bytes, (now - s->sent_ns) / 1000000u, why);
	th_fetch_add_relaxed(&x->h->st_snap_reclaimed, 1);
	held_release(x, s);
}

static struct th__held *oldest_of(struct th__control *x, const struct th__uid *u)
{
	for (struct th__held *s = x->held; s; s = s->next)
		if (s->u == u)
			return s;
	return NULL;
}

/* The bounds on what is held, oldest taken back first; never the uid's
 * newest (so that a single snapshot above snapshot_bytes_max is still
 * served): a uid holds at most max(snapshot_bytes_max, its newest) bytes
 * and SNAP_HELD_PER_UID memfds, the hub TH__HUB_SNAP_HELD_MAX memfds (with
 * 64 per uid, only four uids at their bound reach it). */
static void held_enforce(struct th__control *x, struct th__uid *u, uint64_t now)
{
	while (u->held > 1 && (u->held_bytes > x->live.snapshot_bytes_max || u->held > SNAP_HELD_PER_UID))
		held_reclaim(x, oldest_of(x, u), now,
			     u->held > SNAP_HELD_PER_UID ? "more snapshots than the hub keeps per uid"
							 : "snapshot_bytes_max held");
	/* Over the hub's bound (several uids at theirs): from the uid that holds
	 * most, so that an honest one (a snapshot or two) is the last to lose. */
	while (x->nheld > TH__HUB_SNAP_HELD_MAX) {
		struct th__uid *most = u;
		for (struct th__uid *v = x->uids; v; v = v->next)
			if (v->held > most->held)
				most = v;
		if (most->held < 2)
			break;
		held_reclaim(x, oldest_of(x, most), now, "more snapshots than the hub keeps");
	}
}

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

void th__limit_snapshot_sent(struct th__control *x, struct th__uid *u, int fd, uint64_t bytes)
{
	struct th__held *s = bytes && u ? calloc(1, sizeof *s) : NULL;
	if (u)
		u->bytes += bytes;
	if (!s) {
		/* Nothing to take back (no bytes), or no memory to remember it:
		 * the window's budget still bounds what this uid can pin. */
		close(fd);
		return;
	}
	uint64_t now = th_now_ns();
	/* What it costs: memory comes in pages. */
	uint64_t mem = (bytes + 4095) & ~(uint64_t)4095;
	*s = (struct th__held){ .fd = fd, .bytes = mem, .sent_ns = now, .u = u, .prev = x->held_last };
	if (x->held_last)
		x->held_last->next = s;
	else
		x->held = s;
	x->held_last = s;
	u->held++;
	u->held_bytes += mem;
	x->nheld++;
	x->held_bytes += mem;
	held_enforce(x, u, now);
	held_gauges(x);
}

/* Every tick: what its client had snapshot_hold_ms to read, and the bounds
 * again (a SIGHUP may have lowered snapshot_bytes_max). */
static void held_scan(struct th__control *x, uint64_t now)
{
	uint64_t hold = (uint64_t)x->live.snapshot_hold_ms * 1000000u;
	while (hold && x->held && now - x->held->sent_ns >= hold)
		held_release(x, x->held);
	for (struct th__uid *u = x->uids; u; u = u->next)
		if (u->held > 1 && u->held_bytes > x->live.snapshot_bytes_max)
			held_enforce(x, u, now);
	held_gauges(x);
}

/* ---- every tick ------------------------------------------------------------- */

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
	held_scan(x, now);
	uid_gc(x, now);
}

void th__limit_free(struct th__control *x)
{
	while (x->held)
		held_release(x, x->held);
	while (x->uids) {
		struct th__uid *u = x->uids;
		x->uids = u->next;
		free(u);
	}
}
