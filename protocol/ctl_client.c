/* SPDX-License-Identifier: Apache-2.0 */
/* The one client of the control socket; see protocol.h. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/th_error.h"
#include "common/th_time.h"
#include "protocol/protocol.h"

struct th_ctl {
	int fd;
	uint32_t next_id;
	uint8_t *buf; /* TH_MSG_MAX */
	char err[512];
};

static void set_err(struct th_ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct th_ctl *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
}

int th_ctl_connect(const char *path, struct th_ctl **out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof a.sun_path)
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, n + 1);
	struct th_ctl *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->buf = malloc(TH_MSG_MAX);
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (!c->buf || c->fd < 0) {
		int e = c->buf ? -errno : -ENOMEM;
		th_ctl_close(c);
		return e;
	}
	if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
		int e = -errno;
		th_ctl_close(c);
		return e;
	}
	*out = c;
	return 0;
}

void th_ctl_close(struct th_ctl *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

int th_ctl_fd(const struct th_ctl *c)
{
	return c->fd;
}

const char *th_ctl_error(const struct th_ctl *c)
{
	return c->err;
}

void th_ctl_reply_free(struct th_ctl_reply *rep)
{
	free(rep->body);
	rep->body = NULL;
	for (int i = 0; i < rep->nfds; i++)
		if (rep->fds[i] >= 0)
			close(rep->fds[i]);
	rep->nfds = 0;
}

/* Waits for the socket to be readable until deadline (0: none). */
static int wait_readable(struct th_ctl *c, uint64_t deadline, int timeout_ms)
{
	for (;;) {
		int wait = -1;
		if (deadline) {
			uint64_t now = th_now_ns();
			if (now >= deadline) {
				set_err(c, "no reply within %d ms", timeout_ms);
				return -ETIMEDOUT;
			}
			uint64_t ms = (deadline - now + 999999) / 1000000;
			wait = ms > INT_MAX ? INT_MAX : (int)ms;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int n = poll(&p, 1, wait);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			return 0;
	}
}

/* Receives one message into rep; 0 or negative. */
static int recv_one(struct th_ctl *c, struct th_ctl_reply *rep, uint64_t deadline, int timeout_ms)
{
	int rc = wait_readable(c, deadline, timeout_ms);
	if (rc)
		return rc;
	memset(rep, 0, sizeof *rep);
	size_t n = 0;
	rc = th_proto_recv(c->fd, c->buf, TH_MSG_MAX, &n, rep->fds, 4, &rep->nfds, 0);
	if (rc == -ECONNRESET) {
		set_err(c, "the hub closed the connection");
		return rc;
	}
	if (rc == -EMSGSIZE) {
		set_err(c, "reply over %u bytes or with too many descriptors", TH_MSG_MAX);
		return -TH_EPROTO;
	}
	if (rc)
		return rc;
	struct th_msg_hdr h;
	if (n < sizeof h) {
		th_ctl_reply_free(rep);
		set_err(c, "short reply (%zu bytes)", n);
		return -TH_EPROTO;
	}
	memcpy(&h, c->buf, sizeof h);
	if (h.magic != TH_PROTO_MAGIC || h.len != n) {
		th_ctl_reply_free(rep);
		set_err(c, "malformed reply");
		return -TH_EPROTO;
	}
	if (h.version != TH_PROTO_VERSION) {
		th_ctl_reply_free(rep);
		set_err(c, "the hub speaks protocol version %u; this client %u", h.version, TH_PROTO_VERSION);
		return -TH_EVERSION;
	}
	rep->type = h.type;
	rep->request_id = h.request_id;
	rep->len = n - sizeof h;
	rep->body = malloc(rep->len + 1);
	if (!rep->body) {
		th_ctl_reply_free(rep);
		return -ENOMEM;
	}
	memcpy(rep->body, c->buf + sizeof h, rep->len);
	rep->body[rep->len] = '\0';
	return 0;
}

int th_ctl_call(struct th_ctl *c, uint16_t type, const void *body, size_t len, struct th_ctl_reply *rep,
		int timeout_ms)
{
	c->err[0] = '\0';
	uint32_t id = ++c->next_id;
	if (id == 0)
		id = c->next_id = 1; /* 0 is the hub's unasked message (a refusal) */
	int send_err = th_proto_send(c->fd, type, id, body, len, NULL, 0, 0);
	if (send_err == -EMSGSIZE)
		return send_err;
	/* After a failed send the hub may have said why before it closed (a
	 * refused uid): read that first, briefly. */
	int wait_ms = send_err ? 100 : timeout_ms;
	uint64_t deadline = wait_ms < 0 ? 0 : th_now_ns() + (uint64_t)wait_ms * 1000000u;
	for (;;) {
		int rc = recv_one(c, rep, deadline, wait_ms);
		if (rc < 0)
			return send_err ? send_err : rc;
		if (rep->request_id != id && rep->request_id != 0) {
			th_ctl_reply_free(rep); /* a late reply to an earlier request */
			continue;
		}
		if (rep->type == TH_MSG_ERROR) {
			struct th_msg_error e = { .code = -TH_EPROTO };
			if (rep->len >= sizeof e)
				memcpy(&e, rep->body, sizeof e);
			set_err(c, "%.*s", (int)(rep->len >= sizeof e ? rep->len - sizeof e : 0),
				(const char *)rep->body + sizeof e);
			th_ctl_reply_free(rep);
			return e.code < 0 ? e.code : -TH_EPROTO;
		}
		if (send_err) {
			th_ctl_reply_free(rep);
			return send_err;
		}
		if (rep->type != (type | TH_MSG_REPLY)) {
			set_err(c, "reply of type 0x%x to a request of type %u", rep->type, type);
			th_ctl_reply_free(rep);
			return -TH_EPROTO;
		}
		return 0;
	}
}

int th_ctl_attach(struct th_ctl *c, uint64_t timeout_ns, uint32_t pid, const char *name,
		  struct th_msg_attach_reply *out, struct th_ring_reader_fds *fds, int timeout_ms)
{
	struct th_msg_attach a = { .timeout_ns = timeout_ns, .pid = pid };
	if (name)
		memcpy(a.name, name, strnlen(name, sizeof a.name));
	struct th_ctl_reply rep;
	int rc = th_ctl_call(c, TH_MSG_ATTACH, &a, sizeof a, &rep, timeout_ms);
	if (rc < 0)
		return rc;
	if (rep.len < sizeof *out || rep.nfds != 3) {
		set_err(c, "ATTACH reply of %zu bytes with %d descriptors", rep.len, rep.nfds);
		th_ctl_reply_free(&rep);
		return -TH_EPROTO;
	}
	memcpy(out, rep.body, sizeof *out);
	fds->ring_fd = rep.fds[0];
	fds->slot_fd = rep.fds[1];
	fds->event_fd = rep.fds[2];
	rep.fds[0] = rep.fds[1] = rep.fds[2] = -1;
	th_ctl_reply_free(&rep);
	return 0;
}

int th_ctl_snapshot(struct th_ctl *c, uint16_t type, uint32_t table, const void *key, uint32_t key_len,
		    struct th_ctl_snapshot *out, int timeout_ms)
{
	memset(out, 0, sizeof *out);
	uint8_t body[sizeof(struct th_msg_snapshot) + TH_KEY_MAX];
	if (key_len > TH_KEY_MAX)
		return -ENAMETOOLONG;
	/* th_msg_snapshot and th_msg_get have the same layout: table, length, bytes. */
	struct th_msg_snapshot s = { .table = table, .prefix_len = key_len };
	memcpy(body, &s, sizeof s);
	if (key_len)
		memcpy(body + sizeof s, key, key_len);
	struct th_ctl_reply rep;
	int rc = th_ctl_call(c, type, body, sizeof s + key_len, &rep, timeout_ms);
	if (rc < 0)
		return rc;
	if (rep.len < TH_SNAPSHOT_REPLY_MIN || rep.nfds != 1) {
		set_err(c, "snapshot reply of %zu bytes with %d descriptors", rep.len, rep.nfds);
		th_ctl_reply_free(&rep);
		return -TH_EPROTO;
	}
	memset(&out->reply, 0, sizeof out->reply);
	memcpy(&out->reply, rep.body, rep.len < sizeof out->reply ? rep.len : sizeof out->reply);
	rc = th_snap_read(rep.fds[0], out->reply.bytes, &out->data);
	if (rc == -ESTALE)
		set_err(c, "snapshot memfd of %llu bytes ended early: the hub took it back before it was read "
			   "(snapshot_hold_ms, or this uid held more than snapshot_bytes_max)",
			(unsigned long long)out->reply.bytes);
	else if (rc == -TH_EPROTO)
		set_err(c, "snapshot memfd larger than the %llu bytes of the reply", (unsigned long long)out->reply.bytes);
	else if (rc < 0)
		set_err(c, "snapshot memfd: %s", strerror(-rc));
	else
		out->len = (size_t)out->reply.bytes;
	th_ctl_reply_free(&rep);
	return rc;
}

struct th_snap_iter th_ctl_snapshot_iter(const struct th_ctl_snapshot *s)
{
	return (struct th_snap_iter){ .map = s->data, .len = s->len, .count = s->reply.count };
}

void th_ctl_snapshot_free(struct th_ctl_snapshot *s)
{
	free(s->data);
	s->data = NULL;
	s->len = 0;
}

int th_ctl_sync(struct th_ctl *c, const char *gtid, int64_t timeout_ns, uint64_t *revision)
{
	size_t n = strnlen(gtid, TH_MSG_MAX);
	if (n > TH_MSG_MAX - sizeof(struct th_msg_hdr) - sizeof(struct th_msg_sync))
		return -E2BIG;
	uint8_t *body = malloc(sizeof(struct th_msg_sync) + n);
	if (!body)
		return -ENOMEM;
	struct th_msg_sync s = { .timeout_ns = timeout_ns < 0 ? UINT64_MAX : (uint64_t)timeout_ns,
				 .gtid_len = (uint32_t)n };
	memcpy(body, &s, sizeof s);
	memcpy(body + sizeof s, gtid, n);
	/* The hub answers at its deadline; wait a little longer for the answer. */
	int64_t ms64 = timeout_ns < 0 ? -1 : timeout_ns / 1000000 + 5000;
	int wait = ms64 > INT_MAX ? -1 : (int)ms64;
	struct th_ctl_reply rep;
	int rc = th_ctl_call(c, TH_MSG_SYNC, body, sizeof s + n, &rep, wait);
	free(body);
	if (rc < 0)
		return rc;
	if (rep.len < sizeof(struct th_msg_sync_reply)) {
		set_err(c, "SYNC reply of %zu bytes", rep.len);
		th_ctl_reply_free(&rep);
		return -TH_EPROTO;
	}
	struct th_msg_sync_reply r;
	memcpy(&r, rep.body, sizeof r);
	if (revision)
		*revision = r.revision;
	th_ctl_reply_free(&rep);
	return 0;
}

int th_ctl_json(struct th_ctl *c, uint16_t type, char **json)
{
	struct th_ctl_reply rep;
	int rc = th_ctl_call(c, type, NULL, 0, &rep, 5000);
	if (rc < 0)
		return rc;
	*json = (char *)rep.body; /* NUL-terminated by recv_one */
	rep.body = NULL;
	th_ctl_reply_free(&rep);
	return 0;
}
