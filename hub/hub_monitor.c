/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The monitor thread: reads every reader's lag each monitor_interval and
 * evicts the ones past their slow-consumer timeout or lapped; see hub.h.
 */
#include <inttypes.h>
#include <poll.h>
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
	while (!th__hub_stopping(h)) {
		/* ppoll: sub-millisecond intervals, and stop wakes it. */
		ppoll(&pfd, 1, &ts, NULL);
		pthread_mutex_lock(&h->readers_lock);
		for (size_t i = 0; i < h->readers_cap; i++) {
			struct th__hub_reader *r = &h->readers[i];
			if (!r->used)
				continue;
			struct th_ring_lag lag;
			if (th_ring_reader_lag(h->ring, r->id, &lag) < 0 || lag.evicted)
				continue;
			/* The slot's timeout is the reader's current wish; clamp it. */
			uint64_t tmo = lag.timeout_ns ? th__hub_clamp_timeout(c, lag.timeout_ns) : r->timeout_ns;
			if (!lag.lapped && lag.age_ns <= tmo)
				continue;
			enum th_ring_evict_reason why = lag.lapped ? TH_RING_EVICT_LAPPED : TH_RING_EVICT_SLOW;
			if (th_ring_evict(h->ring, r->id, why) == 0) {
				r->evictions++;
				TH_TRACE_HUB_READER_EVICTED(r->pid, r->id, why);
				th_fetch_add_relaxed(&h->st_evictions, 1);
				if (lag.lapped)
					th_log_warn("evicted reader %u (pid %d, %s): lapped by the writer", r->id,
						    (int)r->pid, r->name);
				else
					th_log_warn("evicted reader %u (pid %d, %s): oldest unread record is %.1f ms "
						    "old, timeout %.1f ms, %" PRIu64 " bytes behind",
						    r->id, (int)r->pid, r->name, (double)lag.age_ns / 1e6,
						    (double)tmo / 1e6, lag.lag_bytes);
			}
		}
		pthread_mutex_unlock(&h->readers_lock);
	}
	return NULL;
}
