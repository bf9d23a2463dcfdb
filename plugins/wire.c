/*
 * wire.c: the client side of the control socket (hub/protocol.h).
 *
 * Calls are strictly request-then-reply on one connection; the caller
 * serialises them. Every reply is checked against the limits of protocol.h
 * before anything in it is used: the hub is trusted to be correct, not to be
 * bug-free.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_int.h"
#include "protocol.h"
#include "th_error.h"

int th__wire_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Receive one message with up to 4 descriptors; extra ones are closed. */
static int recv_msg(int fd, void *buf, uint32_t cap, uint32_t *len, int *fds, int nfds, int *got, int timeout_ms)
{
	*got = 0;
	if (timeout_ms >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int pr;
		do
			pr = poll(&p, 1, timeout_ms);
		while (pr < 0 && errno == EINTR);
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
	}
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
	ssize_t n;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;
	int recvd[4], nrecvd = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && nrecvd < 4; i++)
			memcpy(&recvd[nrecvd++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (n == 0) {
		close_fds(recvd, nrecvd);
		return -ECONNRESET; /* the hub closed the connection */
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		close_fds(recvd, nrecvd);
		return -TH_EPROTO;
	}
	for (int i = 0; i < nrecvd; i++) {
		if (i < nfds)
			fds[(*got)++] = recvd[i];
		else
			close(recvd[i]);
	}
	*len = (uint32_t)n;
	return 0;
}

int th__wire_call(int fd, uint16_t type, uint32_t request_id, const void *body, uint32_t len,
		  void *reply, uint32_t *replen, int *fds, int nfds, int *got, int timeout_ms)
{
	*got = 0;
	if (len > TH_MSG_MAX - sizeof(struct th_msg_hdr))
		return -EMSGSIZE;
	struct th_msg_hdr h = { .magic = TH_PROTO_MAGIC, .version = TH_PROTO_VERSION, .type = type,
				.len = (uint32_t)sizeof h + len, .request_id = request_id };
	struct iovec iov[2] = { { &h, sizeof h }, { (void *)body, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	ssize_t n;
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;

	/* Whole message: header + body, at most TH_MSG_MAX. */
	char *buf = malloc(TH_MSG_MAX);
	if (!buf)
		return -ENOMEM;
	uint32_t mlen = 0;
	int rc = recv_msg(fd, buf, TH_MSG_MAX, &mlen, fds, nfds, got, timeout_ms);
	if (rc)
		goto out;
	struct th_msg_hdr rh;
	if (mlen < sizeof rh) {
		rc = -TH_EPROTO;
		goto fail;
	}
	memcpy(&rh, buf, sizeof rh);
	if (rh.magic != TH_PROTO_MAGIC || rh.len != mlen || rh.request_id != request_id) {
		rc = -TH_EPROTO;
		goto fail;
	}
	if (rh.version != TH_PROTO_VERSION) {
		rc = -TH_EVERSION;
		goto fail;
	}
	if (rh.type == TH_MSG_ERROR) {
		struct th_msg_error e;
		if (mlen < sizeof rh + sizeof e) {
			rc = -TH_EPROTO;
			goto fail;
		}
		memcpy(&e, buf + sizeof rh, sizeof e);
		rc = e.code < 0 ? e.code : -TH_EPROTO;
		goto fail;
	}
	if (rh.type != (type | TH_MSG_REPLY)) {
		rc = -TH_EPROTO;
		goto fail;
	}
	uint32_t blen = mlen - (uint32_t)sizeof rh;
	uint32_t cap = *replen;
	/* A longer reply than we know is fine (fields appended); copy our prefix. */
	memcpy(reply, buf + sizeof rh, blen < cap ? blen : cap);
	*replen = blen;
	goto out;
fail:
	close_fds(fds, *got);
	*got = 0;
out:
	free(buf);
	return rc;
}

int th__wire_snapshot(int fd, uint32_t request_id, bool get, uint32_t table, const char *key,
		      uint32_t key_len, struct th__snapshot *out)
{
	memset(out, 0, sizeof *out);
	if (key_len > TH_KEY_MAX)
		return -ENAMETOOLONG;
	char body[8 + TH_KEY_MAX];
	/* th_msg_snapshot and th_msg_get have the same layout: table, length, bytes. */
	struct th_msg_snapshot req = { .table = table, .prefix_len = key_len };
	memcpy(body, &req, sizeof req);
	if (key_len)
		memcpy(body + sizeof req, key, key_len);
	struct th_msg_snapshot_reply rep;
	uint32_t replen = sizeof rep;
	int mfd = -1, got = 0;
	int rc = th__wire_call(fd, get ? TH_MSG_GET : TH_MSG_SNAPSHOT, request_id, body,
			       (uint32_t)sizeof req + key_len, &rep, &replen, &mfd, 1, &got, 30000);
	if (rc)
		return rc;
	if (replen < sizeof rep || (got != 1 && rep.bytes > 0)) {
		if (got)
			close(mfd);
		return -TH_EPROTO;
	}
	out->revision = rep.revision;
	out->count = rep.count;
	out->bytes = rep.bytes;
	if (rep.bytes > 0) {
		struct stat st;
		if (fstat(mfd, &st) < 0 || (uint64_t)st.st_size < rep.bytes) {
			close(mfd);
			return -TH_EPROTO;
		}
		void *map = mmap(NULL, rep.bytes, PROT_READ, MAP_SHARED, mfd, 0);
		if (map == MAP_FAILED) {
			rc = -errno;
			close(mfd);
			return rc;
		}
		out->map = map;
	}
	if (got)
		close(mfd);
	return 0;
}

int th__snapshot_next(const struct th__snapshot *s, uint64_t *off, uint64_t *index, struct th__snap_item *it)
{
	if (*index >= s->count)
		return 0;
	struct th_snap_entry e;
	if (*off > s->bytes || s->bytes - *off < sizeof e)
		return -TH_EPROTO;
	memcpy(&e, (const char *)s->map + *off, sizeof e);
	uint64_t need = sizeof e + (uint64_t)e.key_len + e.value_len;
	if (s->bytes - *off < need || e.key_len > TH_KEY_MAX)
		return -TH_EPROTO;
	it->revision = e.revision;
	it->version = e.version;
	it->flags = e.flags;
	it->key_len = e.key_len;
	it->value_len = e.value_len;
	it->key = (const char *)s->map + *off + sizeof e;
	it->value = it->key + e.key_len;
	*off += (need + 7) & ~(uint64_t)7;
	(*index)++;
	return 1;
}

void th__snapshot_free(struct th__snapshot *s)
{
	if (s->map)
		munmap(s->map, s->bytes);
	s->map = NULL;
}
