/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The monitor thread: evicts the readers past their slow-consumer timeout or
 * lapped; see hub.h.
 *
 * It sleeps until the earliest moment a reader can become late, not a fixed
 * tick: a reader behind is late at (publish time of its oldest unread record)
 * + its timeout; one caught up cannot be late before now + its timeout (the
 * next record is published after now). So with every reader keeping up it
 * looks every timeout, not every millisecond, and its cost does not grow
 * with idle readers (a round is O(n log n); 1,000 rounds a second at 1,024
 * readers was a core's worth of cache misses). monitor_interval is the
 * shortest sleep: the bound on how late an eviction can be when deadlines
 * crowd together. A new reader wakes it (th__hub_monitor_replan): its
 * timeout may be shorter than anything planned for. A reader that lowers
 * its own timeout in its slot is judged by it from the next round on: only
 * its own eviction can come later than asked.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/th_time.h"
#include "common/th_trace.h"
#include "hub/hub_internal.h"
#include "hub/hub_log.h"

uint64_t th__hub_clamp_timeout(struct th_hub *h, uint64_t t)
{
	if (t == 0)
		return th_load_relaxed(&h->timeout_default_ns);
	uint64_t lo = th_load_relaxed(&h->timeout_min_ns), hi = th_load_relaxed(&h->timeout_max_ns);
	if (t > hi)
		t = hi;
	return t < lo ? lo : t; /* lo wins if a reload is half-way (lo > hi for a moment) */
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

void th__hub_monitor_replan(struct th_hub *h)
{
	uint64_t one = 1;
	if (write(h->monitor_fd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is full, so the monitor is due to look anyway. */
	}
}

void *th__hub_monitor_main(void *arg)
{
	struct th_hub *h = arg;
	const struct th_hub_config *c = h->cfg;
	pthread_setname_np(pthread_self(), "th-monitor"); /* top -H, /proc/PID/task/TID/comm */
	struct pollfd pfd[2] = { { .fd = h->stop_fd, .events = POLLIN }, { .fd = h->monitor_fd, .events = POLLIN } };
	uint64_t sleep_ns = c->monitor_interval_ns;
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
		/* ppoll: sub-millisecond sleeps; stop and a new reader wake it. */
		struct timespec ts = th_ns_to_timespec(sleep_ns);
		if (ppoll(pfd, 2, &ts, NULL) > 0 && (pfd[1].revents & POLLIN)) {
			uint64_t v;
			if (read(h->monitor_fd, &v, sizeof v) < 0) {
				/* EAGAIN: another round drained it. */
			}
		}
		th_fetch_add_relaxed(&h->st_monitor_rounds, 1);
		uint64_t now = th_now_ns();
		/* Nobody can be late before the longest timeout a reader may have. */
		uint64_t next = now + th_load_relaxed(&h->timeout_max_ns);
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
			if (th_ring_reader_lag(h->ring, r->id, &lag) < 0)
				continue;
			/* The slot's timeout is the reader's current wish; clamp it. */
			uint64_t tmo = lag.timeout_ns ? th__hub_clamp_timeout(h, lag.timeout_ns) : r->timeout_ns;
			if (lag.evicted) {
				/* Once it rejoins it is at the head: like one caught up. */
				if (now + tmo < next)
					next = now + tmo;
				continue;
			}
			/* An invalid position counts as lag from when it was first
			 * seen (ring.c): evicted after the timeout, like a stall. */
			if (!lag.lapped && lag.age_ns <= tmo) {
				/* age 0: caught up. Taken before the lag was, now makes
				 * the deadline early if anything: one round too many. */
				uint64_t due = now + (tmo - lag.age_ns);
				if (due < next)
					next = due;
				continue;
			}
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
		uint64_t after = th_now_ns();
		sleep_ns = next > after ? next - after : 0;
		if (sleep_ns < c->monitor_interval_ns)
			sleep_ns = c->monitor_interval_ns;
	}
	free(list);
	return NULL;
}
