/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket (one epoll thread): connections, credentials, the
 * requests of protocol.h and their replies; see hub.h. The monitor thread
 * is hub_monitor.c.
 *
 * Every message is checked before use: size (at most TH_MSG_MAX; a longer
 * one is cut by the kernel and answered -EMSGSIZE), header magic, version,
 * length equal to the bytes received, type, and each body field against the
 * bytes that carry it. Descriptors a client sends are closed unread. A
 * malformed request gets an ERROR reply and the connection stays; a client
 * that does not read its replies (send would block) is disconnected: the
 * hub never waits for a client.
 *
 * Limits that hold against any peer (issue 13):
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
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "readers/gtid.h"
#include "hub/hub_internal.h"
#include "hub/hub_log.h"
#include "protocol/protocol.h"
#include "common/th_buf.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "common/th_trace.h"

#define BATCH_PER_WAKE 64
#define LINGER_MAX 64
#define LINGER_MS 250
#define OPERATOR_RESERVE 16
#define EMFILE_PAUSE_MS 100
#define TICK_MS 100

/* Per uid: open connections and the snapshot budget of the current window. */
struct uid_ent {
	uid_t uid;
	uint32_t conns;
	uint64_t win_start;          /* CLOCK_MONOTONIC ns */
	uint64_t bytes;              /* snapshot bytes sent in the window */
	struct uid_ent *next;
};

static struct th_log_limit lim_refused = TH_LOG_LIMIT_INIT(1000, 5);
static struct th_log_limit lim_full = TH_LOG_LIMIT_INIT(1000, 5);
static struct th_log_limit lim_accept = TH_LOG_LIMIT_INIT(1000, 5);
static struct th_log_limit lim_snap = TH_LOG_LIMIT_INIT(1000, 5);
static struct th_log_limit lim_attach = TH_LOG_LIMIT_INIT(1000, 20);
static struct th_log_limit lim_misc = TH_LOG_LIMIT_INIT(1000, 10);

struct conn {
	int fd;
	uint32_t cid;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int reader;                 /* index in h->readers, or -1 */
	struct th__hub_stream *stream; /* benchmark mode: a STREAM subscriber (owns fd since) */
	bool refused;               /* credentials not allowed: answered -EACCES, closed after the first request */
	uint64_t last_ns;           /* accept or last request (CLOCK_MONOTONIC); for refused: the linger deadline */
	struct uid_ent *u;          /* NULL for refused connections (not counted) */
	/* one pending SYNC */
	bool sync;
	uint32_t sync_req;
	uint64_t sync_deadline;     /* CLOCK_MONOTONIC ns */
	struct th_gtid_set *want_set;
	struct th_maria_gtid *want_maria;
	size_t n_want_maria;
	struct conn *prev, *next;
};

struct ctl {
	struct th_hub *h;
	int epfd;
	int listen_fd;
	uint32_t next_cid;
	struct conn *conns;
	struct conn *dead;           /* closed in this round; freed after it */
	uint8_t *buf;                /* TH_MSG_MAX + 1 */
	struct th_buf out;
	uint32_t nsync;
	struct uid_ent *uids;
	uint32_t nlinger;            /* refused connections waiting for their request */
	int reserve_fd;              /* closed to shed a connection on EMFILE */
	uint64_t listen_paused_until; /* 0: the listen socket is polled */
	uint64_t next_scan;          /* idle and linger checks */
	struct th__hub_live live;    /* what a SIGHUP may change (taken over in take_reload) */
};

/* Markers for the non-connection descriptors in epoll. */
static char mark_listen, mark_stop, mark_pub, mark_reload;

/* ---- socket setup -------------------------------------------------------- */

int th__hub_control_open(struct th_hub *h, int *listen_fd)
{
	const struct th_hub_config *c = h->cfg;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", c->socket_path);
	/* A socket file left by a killed hub is removed; a live hub's is not. */
	struct stat st;
	if (lstat(c->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			th_log_error("socket %s: exists and is not a socket", c->socket_path);
			return -EEXIST;
		}
		int t = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (t >= 0 && connect(t, (struct sockaddr *)&a, sizeof a) == 0) {
			close(t);
			th_log_error("socket %s: another hub is listening there", c->socket_path);
			return -EADDRINUSE;
		}
		if (t >= 0)
			close(t);
		unlink(c->socket_path);
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Created 0600, then opened up to the configured mode and group: no
	 * moment where it is more open than asked. */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
	umask(old);
	if (rc != 0) {
		rc = -errno;
		th_log_error("socket %s: bind: %s", c->socket_path, strerror(-rc));
		close(fd);
		return rc;
	}
	if (c->socket_gid != (gid_t)-1 && chown(c->socket_path, (uid_t)-1, c->socket_gid) != 0)
		th_log_warn("socket %s: chown to gid %u: %s", c->socket_path, (unsigned)c->socket_gid, strerror(errno));
	if (chmod(c->socket_path, c->socket_mode) != 0)
		th_log_warn("socket %s: chmod %o: %s", c->socket_path, c->socket_mode, strerror(errno));
	if (listen(fd, 512) != 0) {
		rc = -errno;
		close(fd);
		unlink(c->socket_path);
		return rc;
	}
	*listen_fd = fd;
	return 0;
}

/* ---- replies --------------------------------------------------------------- */

static void conn_close(struct ctl *x, struct conn *cn);
static void json_readers(struct th_hub *h, struct th_buf *b, uint64_t *n_out, uint64_t *max_lag_ns,
			 uint64_t *max_lag_bytes, bool sample);

/* Sends one message; on failure (the client is not reading, or gone) closes the
 * connection and returns -1. Never blocks. */
static int send_msg(struct ctl *x, struct conn *cn, uint16_t type, uint32_t req, const void *body, size_t len,
		    const int *fds, int nfds)
{
	int rc = th_proto_send(cn->fd, type, req, body, len, fds, nfds, MSG_DONTWAIT);
	if (rc < 0) {
		th_log_limited(&lim_misc, TH_LOG_DEBUG,
			       "client %u (pid %d): reply not sent (%s): disconnecting", cn->cid, (int)cn->pid,
			     rc == -EAGAIN ? "would block" : strerror(-rc));
		conn_close(x, cn);
		return -1;
	}
	return 0;
}

static int send_error(struct ctl *x, struct conn *cn, uint32_t req, int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int send_error(struct ctl *x, struct conn *cn, uint32_t req, int code, const char *fmt, ...)
{
	struct {
		struct th_msg_error e;
		char text[256];
	} b;
	b.e.code = code;
	b.e.reserved = 0;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b.text, sizeof b.text, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof b.text)
		n = sizeof b.text - 1;
	return send_msg(x, cn, TH_MSG_ERROR, req, &b, sizeof b.e + (size_t)n, NULL, 0);
}

/* ---- connections --------------------------------------------------------- */

static void sync_clear(struct ctl *x, struct conn *cn)
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

static void reader_remove(struct ctl *x, struct conn *cn)
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

static void conn_close(struct ctl *x, struct conn *cn)
{
	/* A closed connection is a dead (or finished) reader: reclaim at once. */
	reader_remove(x, cn);
	sync_clear(x, cn);
	epoll_ctl(x->epfd, EPOLL_CTL_DEL, cn->fd, NULL);
	if (cn->stream) {
		/* The publisher may be sending on it: closed after a grace period. */
		th__hub_stream_remove(x->h, cn->stream);
		cn->stream = NULL;
	} else {
		close(cn->fd);
	}
	cn->fd = -1;
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		x->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	if (cn->u) {
		cn->u->conns--;
		cn->u = NULL;
		th_store_relaxed(&x->h->st_clients, th_load_relaxed(&x->h->st_clients) - 1);
	}
	if (cn->refused)
		x->nlinger--;
	/* Freed after the current batch of epoll events, which may still name it. */
	cn->next = x->dead;
	x->dead = cn;
}

static void free_dead(struct ctl *x)
{
	while (x->dead) {
		struct conn *cn = x->dead;
		x->dead = cn->next;
		free(cn);
	}
}

static bool peer_allowed(const struct ctl *x, uid_t uid, gid_t gid)
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

/* A SIGHUP changed the live settings (hub.c): take them over, and close the
 * connections of peers they no longer allow, readers included (a revoked
 * uid keeps nothing it was handed but the read-only mappings it has). */
static void take_reload(struct ctl *x)
{
	uint64_t v;
	if (read(x->h->reload_fd, &v, sizeof v) < 0) {
		/* EAGAIN: nothing new */
	}
	pthread_mutex_lock(&x->h->live_lock);
	x->live = x->h->live_next;
	pthread_mutex_unlock(&x->h->live_lock);
	for (struct conn *cn = x->conns, *nx; cn; cn = nx) {
		nx = cn->next;
		if (cn->refused || peer_allowed(x, cn->uid, cn->gid))
			continue;
		th_log_warn("client %u (pid %d uid %u gid %u): no longer allowed (allow_uids/allow_gids, SIGHUP): closed",
			    cn->cid, (int)cn->pid, (unsigned)cn->uid, (unsigned)cn->gid);
		conn_close(x, cn);
	}
}

static struct uid_ent *uid_get(struct ctl *x, uid_t uid)
{
	for (struct uid_ent *u = x->uids; u; u = u->next)
		if (u->uid == uid)
			return u;
	struct uid_ent *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->uid = uid;
	u->next = x->uids;
	x->uids = u;
	return u;
}

/* Entries of uids with no connection and no live snapshot window. */
static void uid_gc(struct ctl *x, uint64_t now)
{
	uint64_t win = (uint64_t)x->live.snapshot_window_ms * 1000000u;
	for (struct uid_ent **pp = &x->uids; *pp;) {
		struct uid_ent *u = *pp;
		if (u->conns == 0 && now - u->win_start >= win) {
			*pp = u->next;
			free(u);
		} else {
			pp = &u->next;
		}
	}
}

static void listen_poll(struct ctl *x, bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.ptr = &mark_listen };
	epoll_ctl(x->epfd, EPOLL_CTL_MOD, x->listen_fd, &ev);
}

/* Out of descriptors: shed one pending connection with a reason (through the
 * reserve descriptor) and stop polling the listen socket for a while,
 * instead of spinning on a socket that stays readable. */
static void accept_emfile(struct ctl *x, int err)
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
			close(fd);
		}
		x->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	x->listen_paused_until = th_now_ns() + EMFILE_PAUSE_MS * 1000000ull;
	listen_poll(x, false);
	th_log_limited(&lim_accept, TH_LOG_WARN,
		       "accept: %s: not accepting for %d ms (%" PRIu64 " clients; raise the open-file limit or lower "
		       "max_clients)",
		       strerror(err), EMFILE_PAUSE_MS, th_load_relaxed(&x->h->st_clients));
}

/* An ERROR on a socket that has no struct conn (yet). */
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

static void accept_all(struct ctl *x)
{
	struct th_hub *h = x->h;
	/* Bounded per wake-up, so that a flood cannot starve the other work. */
	for (int round = 0; round < 256; round++) {
		int fd = accept4(x->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_emfile(x, errno);
			else if (errno != EAGAIN)
				th_log_limited(&lim_accept, TH_LOG_WARN, "accept: %s", strerror(errno));
			return;
		}
		struct ucred cr;
		socklen_t cl = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0) {
			close(fd);
			continue;
		}
		uint64_t now = th_now_ns();
		if (!peer_allowed(x, cr.uid, cr.gid)) {
			th_fetch_add_relaxed(&h->st_refused, 1);
			th_log_limited(&lim_refused, TH_LOG_WARN,
				       "refused control connection from pid %d uid %u gid %u: not in allow_uids/allow_gids",
				       (int)cr.pid, (unsigned)cr.uid, (unsigned)cr.gid);
			refuse_fd(fd, -EACCES, "uid %u gid %u is not allowed on this hub", (unsigned)cr.uid,
				  (unsigned)cr.gid);
			/* Closing with its request unread would reset the connection
			 * and lose the reason on the way: a few wait for their first
			 * request (LINGER_MS), uncounted; beyond that, closed now. */
			struct conn *cn = x->nlinger < LINGER_MAX ? calloc(1, sizeof *cn) : NULL;
			if (!cn) {
				close(fd);
				continue;
			}
			cn->fd = fd;
			cn->cid = ++x->next_cid;
			cn->uid = cr.uid;
			cn->gid = cr.gid;
			cn->pid = cr.pid;
			cn->reader = -1;
			cn->refused = true;
			cn->last_ns = now + LINGER_MS * 1000000ull;
			x->nlinger++;
			cn->next = x->conns;
			if (x->conns)
				x->conns->prev = cn;
			x->conns = cn;
			struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = cn };
			if (epoll_ctl(x->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
				conn_close(x, cn);
			continue;
		}
		struct uid_ent *u = uid_get(x, cr.uid);
		bool operator = cr.uid == 0 || cr.uid == geteuid();
		uint64_t limit = (uint64_t)h->max_clients + (operator ? OPERATOR_RESERVE : 0);
		if (!u || th_load_relaxed(&h->st_clients) >= limit || u->conns >= x->live.max_clients_per_uid) {
			bool per_uid = u && u->conns >= x->live.max_clients_per_uid;
			th_log_limited(&lim_full, TH_LOG_WARN,
				       "refused control connection from pid %d uid %u: %s (%u) reached",
				       (int)cr.pid, (unsigned)cr.uid, per_uid ? "max_clients_per_uid" : "max_clients",
				       per_uid ? x->live.max_clients_per_uid : h->max_clients);
			refuse_fd(fd, -EMFILE, "too many connections (%s)", per_uid ? "max_clients_per_uid" : "max_clients");
			close(fd);
			continue;
		}
		struct conn *cn = calloc(1, sizeof *cn);
		if (!cn) {
			close(fd);
			continue;
		}
		cn->fd = fd;
		cn->cid = ++x->next_cid;
		cn->uid = cr.uid;
		cn->gid = cr.gid;
		cn->pid = cr.pid;
		cn->reader = -1;
		cn->last_ns = now;
		cn->u = u;
		u->conns++;
		cn->next = x->conns;
		if (x->conns)
			x->conns->prev = cn;
		x->conns = cn;
		th_store_relaxed(&h->st_clients, th_load_relaxed(&h->st_clients) + 1);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = cn };
		if (epoll_ctl(x->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
			conn_close(x, cn);
	}
}

/* Every TICK_MS: lingering refused connections past their deadline, idle
 * connections past idle_timeout_ms, the listen socket after an EMFILE pause,
 * uid entries no longer needed. */
static void scan(struct ctl *x)
{
	uint64_t now = th_now_ns();
	if (x->listen_paused_until && now >= x->listen_paused_until) {
		x->listen_paused_until = 0;
		listen_poll(x, true);
	}
	if (now < x->next_scan)
		return;
	x->next_scan = now + TICK_MS * 1000000ull;
	uint64_t nr, lag_ns, lag_bytes;
	json_readers(x->h, NULL, &nr, &lag_ns, &lag_bytes, true); /* the reader_lag sample */
	uint64_t idle = (uint64_t)x->live.idle_timeout_ms * 1000000u;
	for (struct conn *cn = x->conns, *nx; cn; cn = nx) {
		nx = cn->next;
		if (cn->refused) {
			if (now >= cn->last_ns)
				conn_close(x, cn);
		} else if (idle && cn->reader < 0 && !cn->stream && !cn->sync && now - cn->last_ns >= idle) {
			th_log_limited(&lim_misc, TH_LOG_INFO,
				       "client %u (pid %d uid %u): idle for %u ms: closed", cn->cid,
				       (int)cn->pid, (unsigned)cn->uid, x->live.idle_timeout_ms);
			conn_close(x, cn);
		}
	}
	uid_gc(x, now);
}

/* ---- requests -------------------------------------------------------------- */

static void do_attach(struct ctl *x, struct conn *cn, uint32_t req, const uint8_t *body, size_t len)
{
	struct th_hub *h = x->h;
	struct th_msg_attach a = { 0 };
	if (len < offsetof(struct th_msg_attach, reserved)) {
		send_error(x, cn, req, -TH_EPROTO, "ATTACH body is %zu bytes; at least %zu", len,
			   offsetof(struct th_msg_attach, reserved));
		return;
	}
	memcpy(&a, body, len < sizeof a ? len : sizeof a);
	if (cn->reader >= 0) {
		send_error(x, cn, req, -EALREADY, "this connection is attached already");
		return;
	}
	uint32_t id;
	struct th_ring_reader_fds fds;
	int rc = th_ring_add_reader(h->ring, &id, &fds);
	if (rc < 0) {
		send_error(x, cn, req, rc, "cannot add a reader: %s", th_strerror(rc));
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
		send_error(x, cn, req, -ENOMEM, "out of memory");
		return;
	}
	int out[3] = { fds.ring_fd, fds.slot_fd, fds.event_fd };
	th_fetch_add_relaxed(&h->st_attaches, 1);
	th__hub_monitor_replan(h);
	th_log_limited(&lim_attach, TH_LOG_INFO, "reader %u attached: pid %d uid %u (%s), timeout %.1f ms", id,
		    (int)cn->pid, (unsigned)cn->uid,
		    h->readers[slot].name, (double)rep.timeout_ns / 1e6);
	send_msg(x, cn, TH_MSG_ATTACH | TH_MSG_REPLY, req, &rep, sizeof rep, out, 3);
	close(out[0]);
	close(out[1]);
	close(out[2]);
}

/* STREAM (benchmark mode; protocol.h): the reply first, then the subscriber
 * is added, so that no record can precede the reply. */
static void do_stream(struct ctl *x, struct conn *cn, uint32_t req)
{
	struct th_hub *h = x->h;
	if (!h->cfg->bench_socket_fanout) {
		send_error(x, cn, req, -ENOTSUP, "STREAM is a benchmark mode; this hub runs without bench_socket_fanout");
		return;
	}
	if (cn->reader >= 0 || cn->stream) {
		send_error(x, cn, req, -EALREADY, "this connection is attached or streaming already");
		return;
	}
	struct th_msg_stream_reply rep = {
		/* Pairs with the publisher's release of (c). */
		.revision = th_load_acquire(&h->published_revision),
		.sndbuf = th__hub_stream_sndbuf(cn->fd, cn->pid),
	};
	if (send_msg(x, cn, TH_MSG_STREAM | TH_MSG_REPLY, req, &rep, sizeof rep, NULL, 0) < 0)
		return;
	if (th__hub_stream_add(h, cn->fd, cn->pid, cn->cid, &cn->stream) < 0) {
		th_log_limited(&lim_misc, TH_LOG_WARN,
			       "client %u (pid %d): out of memory adding a stream subscriber: disconnecting", cn->cid,
			    (int)cn->pid);
		conn_close(x, cn);
		return;
	}
	th_log_limited(&lim_attach, TH_LOG_INFO,
		       "stream subscriber %u added: pid %d uid %u, send buffer %" PRIu64 " bytes, %zu streaming",
		    cn->cid, (int)cn->pid, (unsigned)cn->uid, rep.sndbuf, h->nstreams);
}

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
	/* Sealed: the client may map it and trust that nobody changes it. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
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
static void do_snapshot(struct ctl *x, struct conn *cn, uint16_t type, uint32_t req, const uint8_t *body, size_t len)
{
	struct th_hub *h = x->h;
	struct th_msg_snapshot s; /* same layout as struct th_msg_get */
	_Static_assert(sizeof(struct th_msg_snapshot) == sizeof(struct th_msg_get), "snapshot/get layout");
	if (len < sizeof s) {
		send_error(x, cn, req, -TH_EPROTO, "body is %zu bytes; at least %zu", len, sizeof s);
		return;
	}
	memcpy(&s, body, sizeof s);
	if (s.prefix_len > TH_KEY_MAX || s.prefix_len > len - sizeof s) {
		send_error(x, cn, req, -TH_EPROTO, "key length %u: over %u or beyond the message", s.prefix_len,
			   TH_KEY_MAX);
		return;
	}
	if (s.table >= h->cfg->ntables) {
		send_error(x, cn, req, -EINVAL, "no table %u (the hub has %zu)", s.table, h->cfg->ntables);
		return;
	}
	const uint8_t *key = body + sizeof s;
	/* The uid's snapshot budget (see the opening comment). */
	struct uid_ent *u = cn->u;
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
		send_error(x, cn, req, -ENOBUFS,
			   "uid %u was sent %" PRIu64 " snapshot bytes in this window (snapshot_bytes_max); retry in %" PRIu64
			   " ms",
			   (unsigned)cn->uid, u->bytes, left_ms);
		return;
	}
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
		send_error(x, cn, req, -ENOMEM, "out of memory building the snapshot");
		return;
	}
	rep.bytes = b->len;
	if (u)
		u->bytes += b->len;
	int fd = sealed_memfd(b->data, b->len);
	if (b->cap > (1u << 20))
		th_buf_free(b); /* do not keep a huge buffer around */
	if (fd < 0) {
		send_error(x, cn, req, fd, "snapshot memfd: %s", th_strerror(fd));
		return;
	}
	send_msg(x, cn, type | TH_MSG_REPLY, req, &rep, sizeof rep, &fd, 1);
	close(fd);
}

/* Has the published position reached the connection's SYNC target? On yes,
 * *rev is the revision to answer. */
static bool sync_reached(struct ctl *x, struct conn *cn, uint64_t *rev)
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

static void do_sync(struct ctl *x, struct conn *cn, uint32_t req, const uint8_t *body, size_t len)
{
	struct th_hub *h = x->h;
	struct th_msg_sync s;
	if (len < sizeof s) {
		send_error(x, cn, req, -TH_EPROTO, "SYNC body is %zu bytes; at least %zu", len, sizeof s);
		return;
	}
	memcpy(&s, body, sizeof s);
	if (s.gtid_len > len - sizeof s || s.gtid_len > TH_MSG_MAX) {
		send_error(x, cn, req, -TH_EPROTO, "GTID length %u beyond the message", s.gtid_len);
		return;
	}
	if (cn->sync) {
		send_error(x, cn, req, -EBUSY, "a SYNC is pending on this connection");
		return;
	}
	char *text = malloc(s.gtid_len + 1);
	if (!text) {
		send_error(x, cn, req, -ENOMEM, "out of memory");
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
		sync_clear(x, cn);
		send_error(x, cn, req, rc, "bad GTID set: %s", why[0] ? why : th_strerror(rc));
		return;
	}
	cn->sync_req = req;
	cn->sync_deadline = th_now_ns() + (s.timeout_ns > (1ull << 62) ? (1ull << 62) : s.timeout_ns);
	th_store_relaxed(&h->sync_waiters, x->nsync);
	uint64_t rev;
	if (sync_reached(x, cn, &rev)) {
		struct th_msg_sync_reply r = { rev };
		sync_clear(x, cn);
		send_msg(x, cn, TH_MSG_SYNC | TH_MSG_REPLY, req, &r, sizeof r, NULL, 0);
	} else if (s.timeout_ns == 0) {
		sync_clear(x, cn);
		send_error(x, cn, req, -ETIMEDOUT, "not reached");
	}
}

/* Checks pending SYNCs; returns the nearest deadline (0 when none). */
static uint64_t sync_check(struct ctl *x)
{
	uint64_t now = th_now_ns(), next = 0;
	struct conn *cn = x->conns;
	while (cn) {
		struct conn *nx = cn->next;
		if (cn->sync) {
			uint64_t rev;
			if (sync_reached(x, cn, &rev)) {
				struct th_msg_sync_reply r = { rev };
				uint32_t req = cn->sync_req;
				sync_clear(x, cn);
				send_msg(x, cn, TH_MSG_SYNC | TH_MSG_REPLY, req, &r, sizeof r, NULL, 0);
			} else if (now >= cn->sync_deadline) {
				uint32_t req = cn->sync_req;
				sync_clear(x, cn);
				send_error(x, cn, req, -ETIMEDOUT, "the hub has not published past that GTID set yet");
			} else if (!next || cn->sync_deadline < next) {
				next = cn->sync_deadline;
			}
		}
		cn = nx;
	}
	return next;
}

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
		      ",\"ntables\":%zu,\"monitor_rounds\":%" PRIu64 ",\"config_reloads\":%" PRIu64,
		      th_load_relaxed(&h->st_txns), th_load_relaxed(&h->st_txns_seen), th_load_relaxed(&h->st_changes),
		      th_load_relaxed(&h->st_records), th_load_relaxed(&h->st_bytes), th_load_relaxed(&h->st_events),
		      th_load_relaxed(&h->st_reconnects), th_load_relaxed(&h->st_reloads),
		      th_load_relaxed(&h->st_resyncs), th_load_relaxed(&h->st_too_big),
		      th_load_relaxed(&h->st_evictions), th_load_relaxed(&h->st_attaches),
		      th_load_relaxed(&h->st_refused), th_load_relaxed(&h->st_bad_msgs),
		      th_load_relaxed(&h->st_clients), th_state_count(h->state),
		      th_load_relaxed(&h->st_last_commit_us), last_pub, th_ring_head(h->ring), th_ring_oldest(h->ring),
		      th_ring_capacity(h->ring), c->ntables, th_load_relaxed(&h->st_monitor_rounds),
		      th_load_relaxed(&h->st_config_reloads));
	th__hub_hist_json(&h->publish_latency, b, "publish_latency");
	th__hub_hist_json(&h->reader_lag, b, "reader_lag");
}

/* Readers as JSON (b), their count and largest lags: the table copied under
 * the lock, then the ring asked. With sample, every lag the ring could check
 * also goes into h->reader_lag. */
static void json_readers(struct th_hub *h, struct th_buf *b, uint64_t *n_out, uint64_t *max_lag_ns,
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

static void do_json(struct ctl *x, struct conn *cn, uint16_t type, uint32_t req)
{
	struct th_hub *h = x->h;
	struct th_buf *b = &x->out;
	th_buf_reset(b);
	if (type == TH_MSG_STATS) {
		uint64_t n, lag_ns, lag_bytes;
		json_common(h, b);
		json_readers(h, NULL, &n, &lag_ns, &lag_bytes, false);
		th_buf_printf(b, ",\"readers\":%" PRIu64 ",\"max_lag_ns\":%" PRIu64 ",\"max_lag_bytes\":%" PRIu64,
			      n, lag_ns, lag_bytes);
		if (h->cfg->bench_socket_fanout)
			th_buf_printf(b, ",\"streams\":%zu,\"stream_drops\":%" PRIu64, h->nstreams,
				      th_load_relaxed(&h->st_stream_drops));
		th_buf_putc(b, '}');
	} else if (type == TH_MSG_READERS) {
		uint64_t n, lag_ns, lag_bytes;
		th_buf_puts(b, "{\"readers\":");
		json_readers(h, b, &n, &lag_ns, &lag_bytes, false);
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
		send_error(x, cn, req, -E2BIG, "reply too large");
		return;
	}
	send_msg(x, cn, type | TH_MSG_REPLY, req, b->data, b->len, NULL, 0);
}

/* One received message; returns -1 when the connection was closed. */
static int handle(struct ctl *x, struct conn *cn, const uint8_t *m, size_t n, bool truncated)
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
		return send_error(x, cn, req, -EMSGSIZE, "message over %u bytes", TH_MSG_MAX);
	}
	if (n < sizeof hdr) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return send_error(x, cn, 0, -TH_EPROTO, "message of %zu bytes: shorter than a header", n);
	}
	if (hdr.magic != TH_PROTO_MAGIC) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return send_error(x, cn, req, -TH_EPROTO, "bad magic 0x%04x", hdr.magic);
	}
	if (hdr.version != TH_PROTO_VERSION) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return send_error(x, cn, req, -TH_EVERSION, "protocol version %u; this hub speaks %u", hdr.version,
				  TH_PROTO_VERSION);
	}
	if (hdr.len != n) {
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return send_error(x, cn, req, -TH_EPROTO, "header says %u bytes, %zu received", hdr.len, n);
	}
	const uint8_t *body = m + sizeof hdr;
	size_t blen = n - sizeof hdr;
	if (cn->refused) {
		/* Answered (again, with its request id), then closed: nothing of
		 * it is left unread, so the reply reaches it. */
		if (send_error(x, cn, req, -EACCES, "uid %u gid %u is not allowed on this hub", (unsigned)cn->uid,
			       (unsigned)cn->gid) == 0)
			conn_close(x, cn);
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
		send_msg(x, cn, TH_MSG_REJOIN | TH_MSG_REPLY, req, &r, sizeof r, NULL, 0);
		break;
	}
	default:
		th_fetch_add_relaxed(&h->st_bad_msgs, 1);
		return send_error(x, cn, req, -EOPNOTSUPP, "unknown message type %u", hdr.type);
	}
	return 0;
}

/* Drains a connection (a bounded number of messages per wake-up, for fairness). */
static void conn_read(struct ctl *x, struct conn *cn)
{
	for (int i = 0; i < BATCH_PER_WAKE; i++) {
		/* Descriptors from a client are never used: all closed here. */
		size_t n = 0;
		int none = 0;
		int rc = th_proto_recv(cn->fd, x->buf, TH_MSG_MAX, &n, NULL, 0, &none, MSG_DONTWAIT | MSG_TRUNC);
		if (rc == -EAGAIN)
			return;
		if (rc < 0 && rc != -EMSGSIZE && rc != -ECONNRESET) {
			conn_close(x, cn);
			return;
		}
		if (rc == -ECONNRESET || cn->stream) {
			/* SOCK_SEQPACKET: 0 is the peer's end (an empty message cannot
			 * be told apart; none of ours is empty). A stream connection
			 * carries nothing from the client after STREAM (protocol.h):
			 * a reply now could land between records. */
			conn_close(x, cn);
			return;
		}
		bool truncated = rc == -EMSGSIZE || n > TH_MSG_MAX;
		if (handle(x, cn, x->buf, truncated ? TH_MSG_MAX : n, truncated) < 0)
			return;
		if (cn->fd < 0)
			return;
	}
}

void *th__hub_control_main(void *arg)
{
	struct th__hub_control_arg *a = arg;
	struct th_hub *h = a->h;
	struct ctl x = { .h = h, .listen_fd = a->listen_fd, .epfd = -1 };
	rcu_register_thread();
	x.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	x.buf = malloc(TH_MSG_MAX + 1);
	x.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!x.buf || x.epfd < 0) {
		th_log_error("control: cannot start: %s", strerror(errno));
		goto out;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &mark_listen };
	epoll_ctl(x.epfd, EPOLL_CTL_ADD, x.listen_fd, &ev);
	ev.data.ptr = &mark_stop;
	epoll_ctl(x.epfd, EPOLL_CTL_ADD, h->stop_fd, &ev);
	ev.data.ptr = &mark_pub;
	epoll_ctl(x.epfd, EPOLL_CTL_ADD, h->pub_fd, &ev);
	ev.data.ptr = &mark_reload;
	epoll_ctl(x.epfd, EPOLL_CTL_ADD, h->reload_fd, &ev);
	pthread_mutex_lock(&h->live_lock); /* a SIGHUP may have come during the load */
	x.live = h->live_next;
	pthread_mutex_unlock(&h->live_lock);

	struct epoll_event evs[64];
	while (!th__hub_stopping(h)) {
		/* Bounded: the idle/linger scan and the listen pause need a tick. */
		int timeout = TICK_MS;
		scan(&x);
		if (x.nsync) {
			uint64_t next = sync_check(&x);
			if (next) {
				uint64_t now = th_now_ns();
				uint64_t ms = next > now ? (next - now + 999999) / 1000000 : 0;
				/* Also a tick, in case a wake-up from the publisher was missed. */
				timeout = ms > 10 ? 10 : (int)ms;
			} else {
				timeout = TICK_MS;
			}
		}
		free_dead(&x);
		int n = epoll_wait(x.epfd, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			th_log_error("control: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &mark_listen) {
				accept_all(&x);
			} else if (p == &mark_stop) {
				break;
			} else if (p == &mark_reload) {
				take_reload(&x);
			} else if (p == &mark_pub) {
				uint64_t v;
				ssize_t r = read(h->pub_fd, &v, sizeof v);
				(void)r;
			} else {
				struct conn *cn = p;
				if (cn->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
					conn_read(&x, cn); /* reads to the end (0) of a closed peer, and closes */
				if (cn->fd >= 0 && (evs[i].events & (EPOLLHUP | EPOLLERR)))
					conn_close(&x, cn);
			}
		}
	}
out:
	while (x.conns)
		conn_close(&x, x.conns);
	free_dead(&x);
	th__hub_stream_finish(h);
	if (x.listen_fd >= 0) {
		close(x.listen_fd);
		unlink(h->cfg->socket_path);
	}
	if (x.epfd >= 0)
		close(x.epfd);
	if (x.reserve_fd >= 0)
		close(x.reserve_fd);
	while (x.uids) {
		struct uid_ent *u = x.uids;
		x.uids = u->next;
		free(u);
	}
	free(x.buf);
	th_buf_free(&x.out);
	rcu_unregister_thread();
	return NULL;
}
