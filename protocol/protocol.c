/* SPDX-License-Identifier: Apache-2.0 */
/* What the hub and its clients both do with protocol.h's bytes; see protocol.h. */
#include "protocol/protocol.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/th_buf.h"
#include "common/th_error.h"

int th_proto_send(int fd, uint16_t type, uint32_t request_id, const void *body, size_t len, const int *fds,
		  int nfds, int flags)
{
	if (len > TH_MSG_MAX - sizeof(struct th_msg_hdr) || nfds < 0 || nfds > 4)
		return -EMSGSIZE;
	struct th_msg_hdr h = {
		.magic = TH_PROTO_MAGIC, .version = TH_PROTO_VERSION, .type = type,
		.len = (uint32_t)(sizeof h + len), .request_id = request_id,
	};
	struct iovec iov[2] = { { &h, sizeof h }, { (void *)body, len } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	if (nfds > 0) {
		memset(&u, 0, sizeof u);
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	ssize_t n;
	do
		n = sendmsg(fd, &m, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : errno == EWOULDBLOCK ? -EAGAIN : -errno;
	/* SOCK_SEQPACKET sends whole messages; a short one means a full buffer. */
	return (size_t)n == sizeof h + len ? 0 : -EAGAIN;
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int th_proto_recv(int fd, void *buf, size_t cap, size_t *len, int *fds, int maxfds, int *nfds, int flags)
{
	*nfds = 0;
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	ssize_t n;
	do
		n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;
	int got[8], ngot = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int d;
			memcpy(&d, CMSG_DATA(cm) + i * sizeof(int), sizeof d);
			if (ngot < (int)(sizeof got / sizeof got[0]))
				got[ngot++] = d;
			else
				close(d);
		}
	}
	if (n == 0) {
		close_all(got, ngot);
		return -ECONNRESET;
	}
	/* MSG_CTRUNC: the descriptors that did not fit were closed by the
	 * kernel; a caller that needs them sees too few. */
	if (mh.msg_flags & MSG_TRUNC) {
		close_all(got, ngot);
		*len = (size_t)n;
		return -EMSGSIZE;
	}
	for (int i = 0; i < ngot; i++) {
		if (*nfds < maxfds)
			fds[(*nfds)++] = got[i];
		else
			close(got[i]);
	}
	*len = (size_t)n;
	return 0;
}

void th_snap_put(struct th_buf *b, const struct th_snap_entry *e, const void *key, const void *value)
{
	static const uint8_t pad[8];
	th_buf_append(b, e, sizeof *e);
	th_buf_append(b, key, e->key_len);
	th_buf_append(b, value, e->value_len);
	size_t n = (sizeof *e + e->key_len + e->value_len) & 7;
	if (n)
		th_buf_append(b, pad, 8 - n);
}

int th_snap_next(struct th_snap_iter *it, struct th_snap_entry *e, const uint8_t **key, const uint8_t **value)
{
	if (it->index >= it->count)
		return 0;
	if (it->off > it->len || it->len - it->off < sizeof *e)
		return -TH_EPROTO;
	memcpy(e, it->map + it->off, sizeof *e);
	uint64_t need = sizeof *e + (uint64_t)e->key_len + e->value_len;
	if (it->len - it->off < need || e->key_len > TH_KEY_MAX || e->revision == 0)
		return -TH_EPROTO;
	*key = it->map + it->off + sizeof *e;
	*value = *key + e->key_len;
	it->off += (need + 7) & ~(uint64_t)7;
	it->index++;
	return 1;
}

int th_snap_read(int fd, uint64_t bytes, uint8_t **out)
{
	*out = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if ((uint64_t)st.st_size < bytes)
		return -ESTALE;
	if ((uint64_t)st.st_size > bytes || bytes > SIZE_MAX)
		return -TH_EPROTO;
	if (!bytes)
		return 0;
	uint8_t *b = malloc((size_t)bytes);
	if (!b)
		return -ENOMEM;
	/* Not a mapping: a memfd cut short faults a mapping with SIGBUS, and
	 * read(2) sees its end. */
	for (uint64_t off = 0; off < bytes;) {
		ssize_t n = pread(fd, b + off, (size_t)(bytes - off), (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? -errno : -ESTALE;
			free(b);
			return e;
		}
		off += (uint64_t)n;
	}
	*out = b;
	return 0;
}

/* ---- batch tags ---------------------------------------------------------- */

unsigned th_tag_bit(uint32_t table, const void *path, uint32_t len)
{
	const uint8_t *p = path;
	uint64_t h = th_tag_hash_start(table);
	for (uint32_t i = 0; i < len; i++)
		h = th_tag_hash_byte(h, p[i]);
	return th_tag_bit_of(h);
}

void th_tag_key(uint64_t *tags, uint32_t table, const void *key, uint32_t len)
{
	const uint8_t *k = key;
	uint64_t h = th_tag_hash_start(table);
	for (uint32_t i = 0; i < len; i++) {
		if (k[i] == '/' && i > 0) {
			unsigned b = th_tag_bit_of(h); /* of k[0:i] */
			tags[b / 64] |= 1ull << (b % 64);
		}
		h = th_tag_hash_byte(h, k[i]);
	}
	unsigned b = th_tag_bit_of(h);
	tags[b / 64] |= 1ull << (b % 64);
}
