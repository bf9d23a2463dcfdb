/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_log.h: the daemon's log: one line per event on stderr, with a UTC
 * timestamp, the pid and a level ("2026-11-21T03:11:35.123456Z topohubd[42]
 * warn: ..."). Under systemd stderr goes to the journal.
 *
 * Guarantees: a line is written with one write(2), so lines of different
 * threads never interleave; a line is at most 2 KiB (longer text is cut).
 * Nothing in the hub ever passes a password to these functions.
 *
 * Threads: any thread. th_hub_log_set_level() is meant for start-up, before
 * threads exist; the level is a relaxed atomic so a later change is safe too.
 */
#ifndef TH_HUB_LOG_H
#define TH_HUB_LOG_H

enum th_log_level {
	TH_LOG_ERROR = 0,
	TH_LOG_WARN = 1,
	TH_LOG_INFO = 2,
	TH_LOG_DEBUG = 3,
};

/* "error", "warn", "info", "debug" -> level; -EINVAL for anything else. */
int th_hub_log_parse_level(const char *name);
void th_hub_log_set_level(enum th_log_level level);
/* Is a message of this level written? (to skip building expensive ones) */
int th_hub_log_enabled(enum th_log_level level);

void th_hub_log(enum th_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Rate-limited logging, for every line a peer can cause (a refused or
 * flooding client, an evicted reader, accept errors): at most `burst` lines
 * per `interval_ms` per limiter; the first line after a suppressed stretch
 * says how many were dropped. One static limiter per call site:
 *   static struct th_log_limit lim = TH_LOG_LIMIT_INIT(1000, 10);
 *   th_log_limited(&lim, TH_LOG_WARN, "refused ...", ...);
 * Any thread (the limiter is atomics only; two threads racing at the edge of
 * an interval may both write a line: harmless).
 */
struct th_log_limit {
	_Atomic unsigned long long window_ns; /* CLOCK_MONOTONIC start of the current interval */
	_Atomic unsigned lines;               /* written in the current interval */
	_Atomic unsigned long long dropped;   /* suppressed since the last line written */
	unsigned interval_ms;
	unsigned burst;
};
#define TH_LOG_LIMIT_INIT(interval_ms_, burst_) { 0, 0, 0, (interval_ms_), (burst_) }

void th_log_limited(struct th_log_limit *lim, enum th_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define th_log_error(...) th_hub_log(TH_LOG_ERROR, __VA_ARGS__)
#define th_log_warn(...) th_hub_log(TH_LOG_WARN, __VA_ARGS__)
#define th_log_info(...) th_hub_log(TH_LOG_INFO, __VA_ARGS__)
#define th_log_debug(...) th_hub_log(TH_LOG_DEBUG, __VA_ARGS__)

#endif
