/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `socket` subscriber of the end-to-end benchmark: what the ring is
 * worth. The same hub, started in its benchmark mode (bench_socket_fanout),
 * sends every record it publishes over this process's control connection
 * (protocol.h STREAM), one SOCK_SEQPACKET message per record; this process
 * sleeps in poll(2) on that socket, parses the records as protocol.h lays
 * them out and runs the same checks as the topohub subscriber (sequence,
 * order, commit-to-delivery latency). No library, no snapshot: a peer, not
 * a client (the setup values are in the table before it connects, and the
 * writer starts after every subscriber has its STREAM reply).
 */
#include "bench/bench_e2e.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/protocol.h"
#include "protocol/protocol.h"
#include "common/th_error.h"

/* The largest record: the hub's records are at most a quarter of its ring
 * (64 MiB by default); the buffer is touched only as far as records reach. */
#define SOCK_REC_MAX ((16u << 20) + 65536u)

static void on_record(struct e2e_sub *s, const uint8_t *m, size_t n)
{
	if (n == sizeof(struct th_rec_resync)) {
		struct th_rec_resync r;
		memcpy(&r, m, sizeof r);
		th__e2e_resync(s, r.reason);
		return;
	}
	struct th_rec_change c;
	if (n < sizeof c) {
		th__e2e_error(s, "a message of %zu bytes is no record", n);
		return;
	}
	memcpy(&c, m, sizeof c);
	if ((uint64_t)sizeof c + c.key_len + c.value_len + c.gtid_len != n) {
		th__e2e_error(s, "record of %zu bytes: lengths %u + %u + %u do not add up", n, c.key_len, c.value_len,
			      (unsigned)c.gtid_len);
		return;
	}
	const char *key = (const char *)m + sizeof c;
	/* Table 0 is topo_data with the hub's default tables; no deletes here. */
	if (c.table == 0 && c.op == TH_OP_PUT && th__e2e_under_prefix(s, key, c.key_len))
		th__e2e_value(s, key + c.key_len, c.value_len);
}

int th__e2e_sub_socket(struct e2e_sub *s, const struct e2e_sub_opts *o)
{
	if (!o->hub_socket) {
		th__e2e_error(s, "--hub-socket is needed");
		return 1;
	}
	struct th_ctl *c;
	int rc = th_ctl_connect(o->hub_socket, &c);
	if (rc) {
		th__e2e_error(s, "connect %s: %s", o->hub_socket, th_strerror(rc));
		return 1;
	}
	struct th_msg_attach a = { .pid = (uint32_t)getpid() };
	snprintf(a.name, sizeof a.name, "e2e-sock-%u", s->idx);
	struct th_ctl_reply rep;
	rc = th_ctl_call(c, TH_MSG_STREAM, &a, sizeof a, &rep, 10000);
	if (rc) {
		th__e2e_error(s, "STREAM: %s (%s)%s", th_strerror(rc), th_ctl_error(c),
			      rc == -ENOTSUP ? ": start the hub with --bench-socket-fanout true" : "");
		th_ctl_close(c);
		return 1;
	}
	th_ctl_reply_free(&rep);
	uint8_t *buf = malloc(SOCK_REC_MAX);
	if (!buf) {
		th__e2e_error(s, "out of memory");
		th_ctl_close(c);
		return 1;
	}
	th__e2e_ready(s);
	int fd = th_ctl_fd(c);
	int ret = 0;
	while (!th__e2e_stopping(s)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int k = poll(&p, 1, 50);
		if (k < 0 && errno != EINTR) {
			th__e2e_error(s, "poll: %s", strerror(errno));
			ret = 1;
			break;
		}
		if (k <= 0)
			continue;
		/* Everything queued, then back to sleep. */
		ssize_t n;
		while ((n = recv(fd, buf, SOCK_REC_MAX, MSG_DONTWAIT | MSG_TRUNC)) > 0) {
			if ((size_t)n > SOCK_REC_MAX)
				th__e2e_error(s, "a record of %zd bytes: larger than this subscriber's buffer", n);
			else
				on_record(s, buf, (size_t)n);
		}
		if (n == 0) {
			/* The hub drops a subscriber whose socket buffer is full. */
			th__e2e_error(s, "the hub ended the stream (dropped: too slow, or the hub stopped)");
			ret = 1;
			break;
		}
		if (errno != EAGAIN && errno != EINTR) {
			th__e2e_error(s, "recv: %s", strerror(errno));
			ret = 1;
			break;
		}
	}
	free(buf);
	th_ctl_close(c);
	return ret;
}
