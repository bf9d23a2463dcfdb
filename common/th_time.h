/* SPDX-License-Identifier: Apache-2.0 */
/* th_time.h: CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
#ifndef TH_TIME_H
#define TH_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t th_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t th_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline struct timespec th_ns_to_timespec(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };
	return ts;
}

#endif
