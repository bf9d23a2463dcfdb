/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's log; see hub_log.h. */
#include "hub/hub_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/th_atomic.h"

/*
 * The one mutable global of the hub besides its signal handling: the log
 * level, set from the configuration at start-up. Relaxed: a message logged
 * at the old level right after a change is harmless.
 */
static th_atomic_u32 log_level = TH_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int th_hub_log_parse_level(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(name, level_names[i]))
			return i;
	if (!strcmp(name, "warning"))
		return TH_LOG_WARN;
	return -EINVAL;
}

void th_hub_log_set_level(enum th_log_level level)
{
	th_store_relaxed(&log_level, (uint32_t)level);
}

int th_hub_log_enabled(enum th_log_level level)
{
	return (uint32_t)level <= th_load_relaxed(&log_level);
}

static void log_v(enum th_log_level level, const char *suffix, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

void th_hub_log(enum th_log_level level, const char *fmt, ...)
{
	if (!th_hub_log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_v(level, NULL, fmt, ap);
	va_end(ap);
}

void th_log_limited(struct th_log_limit *lim, enum th_log_level level, const char *fmt, ...)
{
	if (!th_hub_log_enabled(level))
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long now = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
	unsigned long long start = atomic_load_explicit(&lim->window_ns, memory_order_relaxed);
	if (start == 0 || now - start >= (unsigned long long)lim->interval_ms * 1000000ull) {
		atomic_store_explicit(&lim->window_ns, now, memory_order_relaxed);
		atomic_store_explicit(&lim->lines, 0, memory_order_relaxed);
	}
	if (atomic_fetch_add_explicit(&lim->lines, 1, memory_order_relaxed) >= lim->burst) {
		atomic_fetch_add_explicit(&lim->dropped, 1, memory_order_relaxed);
		return;
	}
	unsigned long long dropped = atomic_exchange_explicit(&lim->dropped, 0, memory_order_relaxed);
	char suffix[80] = "";
	if (dropped)
		snprintf(suffix, sizeof suffix, " (%llu similar lines suppressed)", dropped);
	va_list ap;
	va_start(ap, fmt);
	log_v(level, suffix, fmt, ap);
	va_end(ap);
}

static void log_v(enum th_log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ topohubd[%ld] %s: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 ts.tv_nsec / 1000, (long)getpid(), level_names[level & 3]);
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	if (suffix && *suffix) {
		size_t sl = strlen(suffix);
		if (len + sl > sizeof line - 2)
			len = sizeof line - 2 - sl;
		memcpy(line + len, suffix, sl);
		len += sl;
	}
	line[len++] = '\n';
	/* One write per line: lines of different threads never interleave. */
	ssize_t w;
	do
		w = write(STDERR_FILENO, line, len);
	while (w < 0 && errno == EINTR);
}
