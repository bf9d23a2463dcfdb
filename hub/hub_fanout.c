/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Benchmark mode (bench_socket_fanout): the hub sends every record it
 * publishes over the socket of each client that asked with STREAM
 * (protocol.h), instead of the client reading the ring. It exists to measure
 * what the ring is worth (bench/README.md, system `socket`); nothing else
 * uses it, and with the mode off the publisher pays one load of its
 * read-only configuration and a branch per transaction.
 *
 * Who calls what (struct th__hub_stream in hub_internal.h has the why):
 *
 *   | function               | thread    | concurrent with            |
 *   |------------------------|-----------|----------------------------|
 *   | th__hub_stream_sndbuf  | control   | (its own socket only)      |
 *   | th__hub_stream_add     | control   | th__hub_fanout_send        |
 *   | th__hub_stream_remove  | control   | th__hub_fanout_send        |
 *   | th__hub_stream_finish  | control   | th__hub_fanout_send (1)    |
 *   | th__hub_fanout_send    | publisher | add, remove                |
 *
 * (1) At exit the control thread may finish before the publisher is joined;
 * by then the array is empty, and rcu_barrier() waits out any send still
 * holding an old one.
 *
 * Drop policy: the publisher never waits. A send that would block (EAGAIN:
 * the subscriber's socket buffer is full) drops the subscriber: the socket
 * is shut down both ways (the client reads what was queued, then end of
 * file), the drop counts as an eviction in STATS, and the control thread,
 * woken by the hang-up, removes it. A record larger than the socket buffer
 * (EMSGSIZE) drops it the same way. A send that fails because the client
 * closed (EPIPE, ECONNRESET) just ends it: the control thread removes it.
 *
 * Buffer: each subscriber's socket gets TH__HUB_STREAM_SNDBUF (asked with
 * SO_SNDBUFFORCE when the hub may, else SO_SNDBUF, which the kernel caps at
 * net.core.wmem_max; the kernel doubles either for its bookkeeping). 1 MiB
 * asked holds about 1,600 records of 100 B values (each message costs its
 * bytes plus about 1 KiB of kernel overhead; measured) before a subscriber is
 * dropped: 1.6 s at 1,000 updates/s, so a subscriber that is merely scheduled
 * late keeps up, and one that stopped is dropped within seconds, as a ring
 * reader with the 1 s timeout of the benchmark would be evicted. With the
 * default wmem_max (208 KiB) the buffer is 416 KiB; records larger than the
 * buffer cannot be streamed (EMSGSIZE: the subscriber is dropped).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hub/hub_internal.h"
#include "hub/hub_log.h"

/* Subscribers can cause these lines: rate-limited (hub_log.h). */
static struct th_log_limit lim_fanout = TH_LOG_LIMIT_INIT(1000, 10);
#include "common/th_tsan.h"

/* What each subscriber's socket asks for; see the opening comment. */
#define TH__HUB_STREAM_SNDBUF (1 << 20)

/*
 * RCU callbacks (the call_rcu thread, after a grace period: no publisher
 * still holds the array or the subscriber). The acquire pairs with the
 * publisher's TH_TSAN_RELEASE after its last use, which ThreadSanitizer
 * cannot see liburcu's grace period provide.
 */
static void free_streams_rcu(struct rcu_head *head)
{
	struct th__hub_streams *a = caa_container_of(head, struct th__hub_streams, rcu);
	TH_TSAN_ACQUIRE(&a->h->streams);
	free(a);
}

static void free_stream_rcu(struct rcu_head *head)
{
	struct th__hub_stream *s = caa_container_of(head, struct th__hub_stream, rcu);
	TH_TSAN_ACQUIRE(&s->h->streams);
	close(s->fd);
	free(s);
}

/* Publishes a new array (NULL when empty) and frees the old one later. */
static void streams_replace(struct th_hub *h, struct th__hub_streams *a)
{
	/* seq_cst, so release: orders the array's contents (and the subscribers
	 * it points to) before the pointer; pairs with the publisher's acquire
	 * load in th__hub_fanout_send. */
	struct th__hub_streams *old = th_exchange_seq_cst(&h->streams, a);
	h->nstreams = a ? a->n : 0;
	if (old)
		call_rcu(&old->rcu, free_streams_rcu);
}

uint64_t th__hub_stream_sndbuf(int fd, pid_t pid)
{
	int want = TH__HUB_STREAM_SNDBUF, got = 0;
	socklen_t l = sizeof got;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) != 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want) != 0)
		th_log_limited(&lim_fanout, TH_LOG_WARN,
			       "stream subscriber (pid %d): SO_SNDBUF %d: %s", (int)pid, want, strerror(errno));
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &l) != 0 || got < 0)
		got = 0;
	return (uint64_t)got;
}

int th__hub_stream_add(struct th_hub *h, int fd, pid_t pid, uint32_t cid, struct th__hub_stream **out)
{
	struct th__hub_stream *s = calloc(1, sizeof *s);
	/* Only this thread writes h->streams: a relaxed load sees its own last store. */
	struct th__hub_streams *old = th_load_relaxed(&h->streams);
	size_t n = old ? old->n : 0;
	struct th__hub_streams *a = malloc(sizeof *a + (n + 1) * sizeof a->s[0]);
	if (!s || !a) {
		free(s);
		free(a);
		return -ENOMEM;
	}
	s->h = h;
	s->fd = fd;
	s->pid = pid;
	s->cid = cid;
	a->h = h;
	a->n = n + 1;
	if (n)
		memcpy(a->s, old->s, n * sizeof a->s[0]);
	a->s[n] = s;
	streams_replace(h, a);
	*out = s;
	return 0;
}

void th__hub_stream_remove(struct th_hub *h, struct th__hub_stream *s)
{
	struct th__hub_streams *old = th_load_relaxed(&h->streams); /* our own store; see add */
	size_t n = old ? old->n : 0;
	struct th__hub_streams *a = n > 1 ? malloc(sizeof *a + (n - 1) * sizeof a->s[0]) : NULL;
	if (n > 1 && !a) {
		/* No memory for a smaller array: keep the old one with this
		 * subscriber shut down (the publisher fails on it and marks it
		 * dropped); its descriptor and memory are left until exit. */
		shutdown(s->fd, SHUT_RDWR);
		th_log_limited(&lim_fanout, TH_LOG_WARN,
			       "stream subscriber %u (pid %d): out of memory removing it", s->cid, (int)s->pid);
		return;
	}
	if (a) {
		a->h = h;
		a->n = 0;
		for (size_t i = 0; i < n; i++)
			if (old->s[i] != s)
				a->s[a->n++] = old->s[i];
	}
	streams_replace(h, a);
	call_rcu(&s->rcu, free_stream_rcu);
}

void th__hub_stream_finish(struct th_hub *h)
{
	if (!h->cfg->bench_socket_fanout)
		return;
	/* Every connection is closed (so every subscriber removed): run the
	 * deferred closes and frees now rather than after the hub's exit. */
	rcu_barrier();
}

static void drop(struct th_hub *h, struct th__hub_stream *s, int err)
{
	s->dropped = true;
	/* Both ways: the client reads what was queued, then end of file; the
	 * control thread sees the hang-up, removes it and closes the socket. */
	shutdown(s->fd, SHUT_RDWR);
	if (err == EAGAIN || err == EWOULDBLOCK || err == EMSGSIZE || err == ENOMEM) {
		th_fetch_add_relaxed(&h->st_evictions, 1);
		th_fetch_add_relaxed(&h->st_stream_drops, 1);
		int sz = 0;
		socklen_t l = sizeof sz;
		getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sz, &l);
		th_log_limited(&lim_fanout, TH_LOG_WARN,
			       "dropped stream subscriber %u (pid %d): %s (send buffer %d bytes)", s->cid, (int)s->pid,
			    err == EMSGSIZE  ? "a record larger than its socket buffer"
			    : err == ENOMEM ? "out of memory building the records"
					    : "its socket buffer is full",
			    sz);
	} else {
		th_log_limited(&lim_fanout, TH_LOG_DEBUG,
			       "stream subscriber %u (pid %d) gone: %s", s->cid, (int)s->pid, strerror(err));
	}
}

void th__hub_fanout_send(struct th_hub *h, struct mmsghdr *msgs, unsigned n)
{
	rcu_read_lock();
	/* Pairs with the control thread's exchange in streams_replace(). */
	struct th__hub_streams *a = th_load_acquire(&h->streams);
	for (size_t i = 0; a && i < a->n; i++) {
		struct th__hub_stream *s = a->s[i];
		if (s->dropped)
			continue;
		if (!msgs) {
			drop(h, s, ENOMEM); /* the records could not be built: never a silent gap */
			continue;
		}
		/* One call per subscriber and transaction (the kernel takes up to
		 * UIO_MAXIOV messages a call; it returns how many it sent). */
		unsigned done = 0;
		while (done < n) {
			int k = sendmmsg(s->fd, msgs + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (k > 0) {
				done += (unsigned)k;
			} else if (k < 0 && errno == EINTR) {
				continue;
			} else {
				drop(h, s, k < 0 ? errno : EIO);
				break;
			}
		}
	}
	/* Our last use of the array and its subscribers; see free_*_rcu. */
	TH_TSAN_RELEASE(&h->streams);
	rcu_read_unlock();
}
