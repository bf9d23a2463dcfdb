/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket (one epoll thread): the socket, connections, reading
 * requests and sending replies; see hub.h and hub_control.h. The requests
 * themselves are hub_requests.c, the limits every peer is held to
 * hub_limits.c, the monitor thread hub_monitor.c.
 *
 * The hub never waits for a client: every send is non-blocking, and a client
 * that does not read its replies (a send would block) is disconnected. A
 * connection is read a bounded number of messages per wake-up, and the
 * listen socket a bounded number of accepts, so that one peer cannot starve
 * the others. The loop sleeps at most TH__CONTROL_TICK_MS: the scan (idle
 * and lingering connections, the reader-lag sample) and the EMFILE pause
 * need the tick.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hub/hub_control.h"
#include "hub/hub_internal.h"
#include "hub/hub_log.h"
#include "protocol/protocol.h"
#include "common/th_buf.h"
#include "common/th_error.h"
#include "common/th_time.h"

#define BATCH_PER_WAKE 64

static struct th_log_limit lim_misc = TH_LOG_LIMIT_INIT(1000, 10);
static struct th_log_limit lim_accept = TH_LOG_LIMIT_INIT(1000, 5);

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

/* ---- connections ---------------------------------------------------------- */

int th__control_send(struct th__control *x, struct th__conn *cn, uint16_t type, uint32_t req, const void *body,
		     size_t len, const int *fds, int nfds)
{
	int rc = th_proto_send(cn->fd, type, req, body, len, fds, nfds, MSG_DONTWAIT);
	if (rc < 0) {
		th_log_limited(&lim_misc, TH_LOG_DEBUG,
			       "client %u (pid %d): reply not sent (%s): disconnecting", cn->cid, (int)cn->pid,
			     rc == -EAGAIN ? "would block" : strerror(-rc));
		th__control_close(x, cn);
		return -1;
	}
	return 0;
}

size_t th__error_body(struct th__error_body *b, int code, const char *fmt, va_list ap)
{
	b->e.code = code;
	b->e.reserved = 0;
	int n = vsnprintf(b->text, sizeof b->text, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof b->text)
		n = sizeof b->text - 1;
	return sizeof b->e + (size_t)n;
}

int th__control_error(struct th__control *x, struct th__conn *cn, uint32_t req, int code, const char *fmt, ...)
{
	struct th__error_body b;
	va_list ap;
	va_start(ap, fmt);
	size_t len = th__error_body(&b, code, fmt, ap);
	va_end(ap);
	return th__control_send(x, cn, TH_MSG_ERROR, req, &b, len, NULL, 0);
}

void th__control_close(struct th__control *x, struct th__conn *cn)
{
	/* A closed connection is a dead (or finished) reader: reclaim at once. */
	th__request_detach(x, cn);
	th__request_sync_clear(x, cn);
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

static void free_dead(struct th__control *x)
{
	while (x->dead) {
		struct th__conn *cn = x->dead;
		x->dead = cn->next;
		free(cn);
	}
}

void th__control_listen_poll(struct th__control *x, bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.ptr = &mark_listen };
	epoll_ctl(x->epfd, EPOLL_CTL_MOD, x->listen_fd, &ev);
}

struct th__conn *th__control_conn_add(struct th__control *x, int fd, const struct ucred *cr, struct th__uid *u,
				      bool refused, uint64_t last_ns)
{
	struct th__conn *cn = calloc(1, sizeof *cn);
	if (!cn) {
		close(fd);
		return NULL;
	}
	cn->fd = fd;
	cn->cid = ++x->next_cid;
	cn->uid = cr->uid;
	cn->gid = cr->gid;
	cn->pid = cr->pid;
	cn->reader = -1;
	cn->refused = refused;
	cn->last_ns = last_ns;
	if (refused) {
		x->nlinger++;
	} else {
		cn->u = u;
		u->conns++;
		th_store_relaxed(&x->h->st_clients, th_load_relaxed(&x->h->st_clients) + 1);
	}
	cn->next = x->conns;
	if (x->conns)
		x->conns->prev = cn;
	x->conns = cn;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = cn };
	if (epoll_ctl(x->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		th__control_close(x, cn);
		return NULL;
	}
	return cn;
}

static void accept_all(struct th__control *x)
{
	/* Bounded per wake-up, so that a flood cannot starve the other work. */
	for (int round = 0; round < 256; round++) {
		int fd = accept4(x->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				th__limit_accept_emfile(x, errno);
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
		th__limit_admit(x, fd, &cr);
	}
}

/* Every TH__CONTROL_TICK_MS: the listen socket after an EMFILE pause, the
 * reader-lag sample, and the limits' scan. */
static void scan(struct th__control *x)
{
	uint64_t now = th_now_ns();
	if (x->listen_paused_until && now >= x->listen_paused_until) {
		x->listen_paused_until = 0;
		th__control_listen_poll(x, true);
	}
	if (now < x->next_scan)
		return;
	x->next_scan = now + TH__CONTROL_TICK_MS * 1000000ull;
	uint64_t nr, lag_ns, lag_bytes;
	th__request_readers_json(x->h, NULL, &nr, &lag_ns, &lag_bytes, true); /* the reader_lag sample */
	th__limit_scan(x, now);
}

/* Drains a connection (a bounded number of messages per wake-up, for fairness). */
static void conn_read(struct th__control *x, struct th__conn *cn)
{
	for (int i = 0; i < BATCH_PER_WAKE; i++) {
		/* Descriptors from a client are never used: all closed here. */
		size_t n = 0;
		int none = 0;
		int rc = th_proto_recv(cn->fd, x->buf, TH_MSG_MAX, &n, NULL, 0, &none, MSG_DONTWAIT | MSG_TRUNC);
		if (rc == -EAGAIN)
			return;
		if (rc < 0 && rc != -EMSGSIZE && rc != -ECONNRESET) {
			th__control_close(x, cn);
			return;
		}
		if (rc == -ECONNRESET || cn->stream) {
			/* SOCK_SEQPACKET: 0 is the peer's end (an empty message cannot
			 * be told apart; none of ours is empty). A stream connection
			 * carries nothing from the client after STREAM (protocol.h):
			 * a reply now could land between records. */
			th__control_close(x, cn);
			return;
		}
		bool truncated = rc == -EMSGSIZE || n > TH_MSG_MAX;
		if (th__request_handle(x, cn, x->buf, truncated ? TH_MSG_MAX : n, truncated) < 0)
			return;
		if (cn->fd < 0)
			return;
	}
}

void *th__hub_control_main(void *arg)
{
	struct th__hub_control_arg *a = arg;
	pthread_setname_np(pthread_self(), "th-control"); /* top -H, /proc/PID/task/TID/comm */
	struct th_hub *h = a->h;
	struct th__control x = { .h = h, .listen_fd = a->listen_fd, .epfd = -1 };
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
		int timeout = TH__CONTROL_TICK_MS;
		scan(&x);
		if (x.nsync) {
			uint64_t next = th__request_sync_check(&x);
			if (next) {
				uint64_t now = th_now_ns();
				uint64_t ms = next > now ? (next - now + 999999) / 1000000 : 0;
				/* Also a tick, in case a wake-up from the publisher was missed. */
				timeout = ms > 10 ? 10 : (int)ms;
			} else {
				timeout = TH__CONTROL_TICK_MS;
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
				th__limit_reload(&x);
			} else if (p == &mark_pub) {
				uint64_t v;
				ssize_t r = read(h->pub_fd, &v, sizeof v);
				(void)r;
			} else {
				struct th__conn *cn = p;
				if (cn->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
					conn_read(&x, cn); /* reads to the end (0) of a closed peer, and closes */
				if (cn->fd >= 0 && (evs[i].events & (EPOLLHUP | EPOLLERR)))
					th__control_close(&x, cn);
			}
		}
	}
out:
	while (x.conns)
		th__control_close(&x, x.conns);
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
	th__limit_free(&x);
	free(x.buf);
	th_buf_free(&x.out);
	rcu_unregister_thread();
	return NULL;
}
