/* A blocking client of the control socket; see hub_client.h. */
#include "hub_client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "th_error.h"
#include "th_time.h"

struct th_hubc {
	int fd;
	uint32_t next_id;
	uint8_t *buf;
	char err[512];
};

static void set_err(struct th_hubc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct th_hubc *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
}

int th_hubc_connect(const char *path, struct th_hubc **out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof a.sun_path)
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	struct th_hubc *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->buf = malloc(TH_MSG_MAX);
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (!c->buf || c->fd < 0) {
		int e = c->buf ? -errno : -ENOMEM;
		th_hubc_close(c);
		return e;
	}
	if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
		int e = -errno;
		th_hubc_close(c);
		return e;
	}
	*out = c;
	return 0;
}

void th_hubc_close(struct th_hubc *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

int th_hubc_fd(const struct th_hubc *c)
{
	return c->fd;
}

const char *th_hubc_error(const struct th_hubc *c)
{
	return c->err;
}

void th_hubc_reply_free(struct th_hubc_reply *rep)
{
	free(rep->body);
	rep->body = NULL;
	for (int i = 0; i < rep->nfds; i++)
		if (rep->fds[i] >= 0)
			close(rep->fds[i]);
	rep->nfds = 0;
}

/* Receives one message into rep; 0 or negative. */
static int recv_one(struct th_hubc *c, struct th_hubc_reply *rep, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? 0 : th_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int wait = -1;
		if (timeout_ms >= 0) {
			uint64_t now = th_now_ns();
			if (now >= deadline) {
				set_err(c, "no reply within %d ms", timeout_ms);
				return -ETIMEDOUT;
			}
			wait = (int)((deadline - now + 999999) / 1000000);
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int n = poll(&p, 1, wait);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			break;
	}
	struct iovec iov = { c->buf, TH_MSG_MAX };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	ssize_t n;
	do
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	memset(rep, 0, sizeof *rep);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t j = 0; j < k; j++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + j * sizeof(int), sizeof fd);
			if (rep->nfds < 4)
				rep->fds[rep->nfds++] = fd;
			else
				close(fd);
		}
	}
	if (n == 0) {
		th_hubc_reply_free(rep);
		set_err(c, "the hub closed the connection");
		return -ECONNRESET;
	}
	struct th_msg_hdr h;
	if ((size_t)n < sizeof h) {
		th_hubc_reply_free(rep);
		set_err(c, "short reply (%zd bytes)", n);
		return -TH_EPROTO;
	}
	memcpy(&h, c->buf, sizeof h);
	if (h.magic != TH_PROTO_MAGIC || h.len != (size_t)n) {
		th_hubc_reply_free(rep);
		set_err(c, "malformed reply");
		return -TH_EPROTO;
	}
	rep->type = h.type;
	rep->request_id = h.request_id;
	rep->len = (size_t)n - sizeof h;
	rep->body = malloc(rep->len + 1);
	if (!rep->body) {
		th_hubc_reply_free(rep);
		return -ENOMEM;
	}
	memcpy(rep->body, c->buf + sizeof h, rep->len);
	rep->body[rep->len] = '\0';
	return 0;
}

int th_hubc_call(struct th_hubc *c, uint16_t type, const void *body, size_t len, struct th_hubc_reply *rep,
		 int timeout_ms)
{
	c->err[0] = '\0';
	if (len > TH_MSG_MAX - sizeof(struct th_msg_hdr))
		return -EMSGSIZE;
	uint32_t id = ++c->next_id;
	struct th_msg_hdr h = {
		.magic = TH_PROTO_MAGIC, .version = TH_PROTO_VERSION, .type = type,
		.len = (uint32_t)(sizeof h + len), .request_id = id,
	};
	struct iovec iov[2] = { { &h, sizeof h }, { (void *)body, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	ssize_t n;
	do
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	int send_err = n < 0 ? -errno : 0;
	for (;;) {
		/* After a failed send the hub may have said why before it closed
		 * (a refused uid): read that first. */
		int rc = recv_one(c, rep, send_err ? 100 : timeout_ms);
		if (rc < 0 && send_err)
			return send_err;
		if (rc < 0)
			return rc;
		if (rep->request_id != id && rep->request_id != 0) {
			th_hubc_reply_free(rep); /* a late reply to an earlier request */
			continue;
		}
		if (rep->type == TH_MSG_ERROR) {
			struct th_msg_error e = { .code = -TH_EPROTO };
			if (rep->len >= sizeof e)
				memcpy(&e, rep->body, sizeof e);
			set_err(c, "%.*s", (int)(rep->len >= sizeof e ? rep->len - sizeof e : 0),
				(const char *)rep->body + sizeof e);
			th_hubc_reply_free(rep);
			return e.code < 0 ? e.code : -TH_EPROTO;
		}
		if (rep->type != (type | TH_MSG_REPLY)) {
			set_err(c, "reply of type 0x%x to a request of type %u", rep->type, type);
			th_hubc_reply_free(rep);
			return -TH_EPROTO;
		}
		return 0;
	}
}

int th_hubc_attach(struct th_hubc *c, uint64_t timeout_ns, const char *name, struct th_msg_attach_reply *out,
		   struct th_ring_reader_fds *fds)
{
	struct th_msg_attach a = { .timeout_ns = timeout_ns, .pid = (uint32_t)getpid() };
	if (name)
		memcpy(a.name, name, strnlen(name, sizeof a.name));
	struct th_hubc_reply rep;
	int rc = th_hubc_call(c, TH_MSG_ATTACH, &a, sizeof a, &rep, 5000);
	if (rc < 0)
		return rc;
	if (rep.len < sizeof *out || rep.nfds != 3) {
		set_err(c, "ATTACH reply of %zu bytes with %d descriptors", rep.len, rep.nfds);
		th_hubc_reply_free(&rep);
		return -TH_EPROTO;
	}
	memcpy(out, rep.body, sizeof *out);
	fds->ring_fd = rep.fds[0];
	fds->slot_fd = rep.fds[1];
	fds->event_fd = rep.fds[2];
	rep.fds[0] = rep.fds[1] = rep.fds[2] = -1;
	th_hubc_reply_free(&rep);
	return 0;
}

int th_hubc_snapshot(struct th_hubc *c, uint16_t type, uint32_t table, const void *key, uint32_t key_len,
		     struct th_msg_snapshot_reply *out, const uint8_t **map, size_t *map_len)
{
	uint8_t body[sizeof(struct th_msg_snapshot) + TH_KEY_MAX];
	if (key_len > TH_KEY_MAX)
		return -ENAMETOOLONG;
	struct th_msg_snapshot s = { .table = table, .prefix_len = key_len };
	memcpy(body, &s, sizeof s);
	if (key_len)
		memcpy(body + sizeof s, key, key_len);
	struct th_hubc_reply rep;
	int rc = th_hubc_call(c, type, body, sizeof s + key_len, &rep, 30000);
	if (rc < 0)
		return rc;
	if (rep.len < sizeof *out || rep.nfds != 1) {
		set_err(c, "snapshot reply of %zu bytes with %d descriptors", rep.len, rep.nfds);
		th_hubc_reply_free(&rep);
		return -TH_EPROTO;
	}
	memcpy(out, rep.body, sizeof *out);
	*map = NULL;
	*map_len = 0;
	struct stat st;
	if (fstat(rep.fds[0], &st) != 0 || (uint64_t)st.st_size != out->bytes) {
		set_err(c, "snapshot memfd size disagrees with the reply");
		th_hubc_reply_free(&rep);
		return -TH_EPROTO;
	}
	if (out->bytes) {
		void *p = mmap(NULL, out->bytes, PROT_READ, MAP_SHARED, rep.fds[0], 0);
		if (p == MAP_FAILED) {
			rc = -errno;
			th_hubc_reply_free(&rep);
			return rc;
		}
		*map = p;
		*map_len = out->bytes;
	}
	th_hubc_reply_free(&rep);
	return 0;
}

int th_hubc_snap_next(const uint8_t *map, size_t len, size_t *off, struct th_snap_entry *e, const uint8_t **key,
		      const uint8_t **value)
{
	if (*off >= len)
		return 0;
	if (len - *off < sizeof *e)
		return -TH_EPROTO;
	memcpy(e, map + *off, sizeof *e);
	size_t need = sizeof *e + (size_t)e->key_len + e->value_len;
	if (need > len - *off)
		return -TH_EPROTO;
	*key = map + *off + sizeof *e;
	*value = *key + e->key_len;
	*off += (need + 7) & ~(size_t)7;
	return 1;
}

int th_hubc_sync(struct th_hubc *c, const char *gtid, uint64_t timeout_ns, uint64_t *revision)
{
	size_t n = strlen(gtid);
	if (n > TH_MSG_MAX - 64)
		return -E2BIG;
	uint8_t *body = malloc(sizeof(struct th_msg_sync) + n);
	if (!body)
		return -ENOMEM;
	struct th_msg_sync s = { .timeout_ns = timeout_ns, .gtid_len = (uint32_t)n };
	memcpy(body, &s, sizeof s);
	memcpy(body + sizeof s, gtid, n);
	struct th_hubc_reply rep;
	int wait = (int)(timeout_ns / 1000000u) + 5000;
	int rc = th_hubc_call(c, TH_MSG_SYNC, body, sizeof s + n, &rep, wait);
	free(body);
	if (rc < 0)
		return rc;
	if (rep.len < sizeof(struct th_msg_sync_reply)) {
		th_hubc_reply_free(&rep);
		return -TH_EPROTO;
	}
	struct th_msg_sync_reply r;
	memcpy(&r, rep.body, sizeof r);
	*revision = r.revision;
	th_hubc_reply_free(&rep);
	return 0;
}

int th_hubc_json(struct th_hubc *c, uint16_t type, char **json)
{
	struct th_hubc_reply rep;
	int rc = th_hubc_call(c, type, NULL, 0, &rep, 5000);
	if (rc < 0)
		return rc;
	*json = (char *)rep.body; /* NUL-terminated by recv_one */
	rep.body = NULL;
	th_hubc_reply_free(&rep);
	return 0;
}
