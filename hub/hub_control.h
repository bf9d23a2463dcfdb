/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_control.h: what the control thread's files share. Not for the other
 * threads (hub_internal.h is what all of them share).
 *
 *   hub_control.c   the thread: the socket, its epoll loop, connections
 *                   (accept, read, reply, close) and the periodic scan
 *   hub_limits.c    what holds against any peer: credentials, connection
 *                   caps, the EMFILE back-off, idle and lingering
 *                   connections, snapshot memory per uid
 *   hub_requests.c  the requests of protocol.h and their replies
 *
 * Everything here runs on the control thread, on its struct th__control.
 */
#ifndef TH_HUB_CONTROL_H
#define TH_HUB_CONTROL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/th_buf.h"
#include "hub/hub_internal.h"
#include "protocol/protocol.h"
#include "readers/gtid.h"

#define TH__CONTROL_TICK_MS 100   /* the longest the loop sleeps: the scan's period */

/* Per uid (hub_limits.c): open connections and the snapshot accounting. */
struct th__uid {
	uid_t uid;
	uint32_t conns;
	uint64_t win_start;          /* CLOCK_MONOTONIC ns */
	uint64_t bytes;              /* snapshot bytes sent in the window */
	uint32_t held;               /* snapshot memfds of this uid the hub holds */
	uint64_t held_bytes;         /* and their memory (bytes in whole pages) */
	struct th__uid *next;
};

/* A snapshot memfd sent and held (hub_limits.c): the hub keeps a descriptor
 * of its own, so that it can take the memory back (truncate it) while the
 * client still holds its own. */
struct th__held {
	int fd;
	uint64_t bytes;              /* its memory: the contents in whole pages */
	uint64_t sent_ns;            /* CLOCK_MONOTONIC */
	struct th__uid *u;
	struct th__held *prev, *next; /* x->held, oldest first */
};

/* One control connection. */
struct th__conn {
	int fd;
	uint32_t cid;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int reader;                 /* index in h->readers, or -1 */
	struct th__hub_stream *stream; /* benchmark mode: a STREAM subscriber (owns fd since) */
	bool refused;               /* credentials not allowed: answered -EACCES, closed after the first request */
	uint64_t last_ns;           /* accept or last request (CLOCK_MONOTONIC); for refused: the linger deadline */
	struct th__uid *u;          /* NULL for refused connections (not counted) */
	/* one pending SYNC */
	bool sync;
	uint32_t sync_req;
	uint64_t sync_deadline;     /* CLOCK_MONOTONIC ns */
	struct th_gtid_set *want_set;
	struct th_maria_gtid *want_maria;
	size_t n_want_maria;
	struct th__conn *prev, *next;
};

/* The control thread's state. */
struct th__control {
	struct th_hub *h;
	int epfd;
	int listen_fd;
	uint32_t next_cid;
	struct th__conn *conns;
	struct th__conn *dead;       /* closed in this round; freed after it */
	uint8_t *buf;                /* TH_MSG_MAX + 1 */
	struct th_buf out;
	uint32_t nsync;
	struct th__uid *uids;
	struct th__held *held, *held_last; /* oldest first */
	uint32_t nheld;
	uint64_t held_bytes;
	uint32_t nlinger;            /* refused connections waiting for their request */
	int reserve_fd;              /* closed to shed a connection on EMFILE */
	uint64_t listen_paused_until; /* 0: the listen socket is polled */
	uint64_t next_scan;          /* idle and linger checks */
	struct th__hub_live live;    /* what a SIGHUP may change (taken over in th__limit_reload) */
};

/* ---- hub_control.c: connections ----------------------------------------- */

/* Registers an accepted socket (cr its peer) as a connection: counted
 * against u (NULL: a refused one, not counted), last_ns as struct th__conn
 * says. NULL when out of memory or epoll refuses it: the socket is closed. */
struct th__conn *th__control_conn_add(struct th__control *x, int fd, const struct ucred *cr, struct th__uid *u,
				      bool refused, uint64_t last_ns);
/* Closes a connection: its reader, SYNC and counts go at once; the struct
 * is freed after the current batch of epoll events. */
void th__control_close(struct th__control *x, struct th__conn *cn);
/* Sends one message without blocking; on failure (the client is not
 * reading, or gone) closes the connection and returns -1, else 0. */
int th__control_send(struct th__control *x, struct th__conn *cn, uint16_t type, uint32_t req, const void *body,
		     size_t len, const int *fds, int nfds);
/* An ERROR message's body with a formatted text (at most 255 bytes of it):
 * fills b, returns the bytes to send. */
struct th__error_body {
	struct th_msg_error e;
	char text[256];
};
size_t th__error_body(struct th__error_body *b, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* An ERROR reply with a formatted text; as th__control_send. */
int th__control_error(struct th__control *x, struct th__conn *cn, uint32_t req, int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Polls the listen socket again (on) or not. */
void th__control_listen_poll(struct th__control *x, bool on);

/* ---- hub_limits.c: what holds against any peer -------------------------- */

/* A SIGHUP changed the live settings: take them over; close the peers they
 * no longer allow. */
void th__limit_reload(struct th__control *x);
/* An accepted socket: refused (answered, then closed or lingering), over a
 * connection cap (answered and closed), or added as a connection. */
void th__limit_admit(struct th__control *x, int fd, const struct ucred *cr);
/* accept() failed with err (EMFILE and kin): shed one connection and pause
 * the listen socket. */
void th__limit_accept_emfile(struct th__control *x, int err);
/* Every tick: lingering refused and idle connections closed, snapshots past
 * snapshot_hold_ms (or over a bound a SIGHUP lowered) taken back, uid
 * entries no longer needed freed. */
void th__limit_scan(struct th__control *x, uint64_t now);
/* Takes every held snapshot back and frees every uid entry (at the
 * thread's end). */
void th__limit_free(struct th__control *x);
/* Before a SNAPSHOT/GET reply is built: 0 when the uid may be sent one, or
 * -1 after an -ENOBUFS reply. */
int th__limit_snapshot_admit(struct th__control *x, struct th__conn *cn, uint32_t req);
/* A reply's memfd fd of bytes was sent to a connection of u: charged to the
 * uid's window, and held (the fd is the callee's: closed when taken back, or
 * at once when there is nothing to hold). */
void th__limit_snapshot_sent(struct th__control *x, struct th__uid *u, int fd, uint64_t bytes);

/* ---- hub_requests.c: the requests of protocol.h ------------------------- */

/* One received message (n bytes at m; truncated: longer than TH_MSG_MAX).
 * -1 when the connection was closed. */
int th__request_handle(struct th__control *x, struct th__conn *cn, const uint8_t *m, size_t n, bool truncated);
/* The connection's reader goes (its end, or a revoked peer). */
void th__request_detach(struct th__control *x, struct th__conn *cn);
/* The connection's pending SYNC goes. */
void th__request_sync_clear(struct th__control *x, struct th__conn *cn);
/* Answers the pending SYNCs reached or past their deadline; returns the
 * nearest deadline still pending (0: none). */
uint64_t th__request_sync_check(struct th__control *x);
/* Readers as JSON into b (NULL: none), their count and largest lags; with
 * sample, every lag the ring could check also goes into h->reader_lag. */
void th__request_readers_json(struct th_hub *h, struct th_buf *b, uint64_t *n_out, uint64_t *max_lag_ns,
			      uint64_t *max_lag_bytes, bool sample);

#endif
