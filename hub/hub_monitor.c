/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The monitor thread: reads every reader's lag each monitor_interval and
 * evicts the ones past their slow-consumer timeout or lapped; see hub.h.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "common/th_time.h"
#include "common/th_trace.h"
#include "hub/hub_internal.h"
#include "hub/hub_log.h"

uint64_t th__hub_clamp_timeout(const struct th_hub_config *c, uint64_t t)
{
	if (t == 0)
		return c->reader_timeout_default_ns;
	if (t < c->reader_timeout_min_ns)
		return c->reader_timeout_min_ns;
	if (t > c->reader_timeout_max_ns)
		return c->reader_timeout_max_ns;
	return t;
}

struct mon_reader {
	uint32_t id;
	pid_t pid;
	uint64_t timeout_ns;
	char name[33];
};

/* Evictions are logged, at most 20 lines a second (a reader can get itself
 * evicted over and over; the count in STATS is exact). */
static struct th_log_limit evict_log = TH_LOG_LIMIT_INIT(1000, 20);

void *th__hub_monitor_main(void *arg)
{
	struct th_hub *h = arg;
	const struct th_hub_config *c = h->cfg;
	struct timespec ts = th_ns_to_timespec(c->monitor_interval_ns);
	struct pollfd pfd = { .fd = h->stop_fd, .events = POLLIN };
	if (c->monitor_realtime) {
		/* A late monitor is a late eviction: on a busy host a normal thread
		 * can wait tens of milliseconds for a CPU. The lowest real-time
		 * priority; it sleeps between rounds of microseconds. Needs
		 * CAP_SYS_NICE or RLIMIT_RTPRIO >= 1 (LimitRTPRIO=1 in the unit). */
		struct sched_param sp = { .sched_priority = 1 };
		int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
		if (rc)
			th_log_info("monitor: no real-time priority (%s); evictions may be late on a busy host",
				    strerror(rc));
	}
	/* The readers are copied under readers_lock and examined without it:
	 * lag and evict take the ring's own lock only, and never wait on a
	 * reader (no wake-up under a lock, ring.c). */
	struct mon_reader *list = NULL;
	size_t cap = 0;
	while (!th__hub_stopping(h)) {
		/* ppoll: sub-millisecond intervals, and stop wakes it. */
		ppoll(&pfd, 1, &ts, NULL);
		size_t n = 0;
		pthread_mutex_lock(&h->readers_lock);
		if (cap < h->readers_cap) {
			struct mon_reader *nl = realloc(list, h->readers_cap * sizeof *nl);
			if (nl) {
				list = nl;
				cap = h->readers_cap;
			}
		}
		for (size_t i = 0; i < h->readers_cap && n < cap; i++) {
			struct th__hub_reader *r = &h->readers[i];
			if (!r->used)
				continue;
			list[n].id = r->id;
			list[n].pid = r->pid;
			list[n].timeout_ns = r->timeout_ns;
			memcpy(list[n].name, r->name, sizeof list[n].name);
			n++;
		}
		pthread_mutex_unlock(&h->readers_lock);
		for (size_t i = 0; i < n && !th__hub_stopping(h); i++) {
			struct mon_reader *r = &list[i];
			struct th_ring_lag lag;
			if (th_ring_reader_lag(h->ring, r->id, &lag) < 0 || lag.evicted)
				continue;
			/* The slot's timeout is the reader's current wish; clamp it. */
			uint64_t tmo = lag.timeout_ns ? th__hub_clamp_timeout(c, lag.timeout_ns) : r->timeout_ns;
			/* An invalid position counts as lag from when it was first
			 * seen (ring.c): evicted after the timeout, like a stall. */
			if (!lag.lapped && lag.age_ns <= tmo)
				continue;
			enum th_ring_evict_reason why = lag.invalid  ? TH_RING_EVICT_INVALID
							: lag.lapped ? TH_RING_EVICT_LAPPED
								     : TH_RING_EVICT_SLOW;
			/* -EALREADY: evicted and not rejoined; counted once. */
			if (th_ring_evict(h->ring, r->id, why) != 0)
				continue;
			TH_TRACE_HUB_READER_EVICTED(r->pid, r->id, why);
			th_fetch_add_relaxed(&h->st_evictions, 1);
			if (lag.invalid)
				th_log_limited(&evict_log, TH_LOG_WARN,
					       "evicted reader %u (pid %d, %s): its slot has shown a position that is no "
					       "record start (%" PRIu64 ") for %.1f ms, timeout %.1f ms",
					       r->id, (int)r->pid, r->name, lag.read_pos, (double)lag.age_ns / 1e6,
					       (double)tmo / 1e6);
			else if (lag.lapped)
				th_log_limited(&evict_log, TH_LOG_WARN, "evicted reader %u (pid %d, %s): lapped by the writer",
					       r->id, (int)r->pid, r->name);
			else
				th_log_limited(&evict_log, TH_LOG_WARN,
					       "evicted reader %u (pid %d, %s): oldest unread record is %.1f ms "
					       "old, timeout %.1f ms, %" PRIu64 " bytes behind",
					       r->id, (int)r->pid, r->name, (double)lag.age_ns / 1e6, (double)tmo / 1e6,
					       lag.lag_bytes);
		}
	}
	free(list);
	return NULL;
}
