/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohub-trace: where does the time of a change go? Attaches BPF programs to
 * the USDT probes of common/th_trace.h in a running topohubd and in every
 * process that has libtopohub.so loaded, and prints per-stage latency
 * histograms (log2 buckets, per process), eviction and resync counts, and
 * the slowest changes with their stage breakdown.
 *
 * usage: topohub-trace [--pid PID]... [--path FILE]... [--duration S]
 *                      [--interval S] [--top N] [--json] [--verbose]
 *
 * Targets. Without --pid or --path it scans /proc: the executable of every
 * process named topohubd, and every mapped file named libtopohub.so*, each
 * attached for all processes that use that file (so clients that start later
 * are traced too). --pid traces only that process (its executable and its
 * libtopohub.so); --path traces every process that runs or maps FILE.
 *
 * Reports. Each report covers the time since the previous one: every
 * --interval seconds, and once at the end (--duration, SIGINT or SIGTERM).
 * --json writes each report as one line of JSON on stdout instead of text.
 * Progress and errors go to stderr; the line "topohub-trace: tracing ..."
 * says the probes are attached.
 *
 * Exit status: 0 done; 1 error; 2 usage; 3 not permitted (needs root);
 * 4 BPF or uprobes unavailable in this kernel; 5 nothing to trace.
 *
 * Caveats. An attached probe costs a trap per hit (see bench/trace/README.md):
 * fine for diagnosis, not for leaving on at full load. Stage times are taken
 * when the probes fire, so a stage includes the cost of its own probes.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bench/trace/topohub_trace.h"
#include "topohub_trace.skel.h"

enum {
	EXIT_USAGE = 2,
	EXIT_PERM = 3,
	EXIT_NOBPF = 4,
	EXIT_NOTARGET = 5,
};

#define MAX_TARGETS 64
#define MAX_TOP 1000
#define MAX_HISTS 4096

static const char *const stage_names[TH_STAGE_COUNT] = {
	[TH_STAGE_HUB_DECODE] = "hub_decode",
	[TH_STAGE_HUB_PUBLISH] = "hub_publish",
	[TH_STAGE_WAKE] = "wake",
	[TH_STAGE_DELIVER] = "deliver",
	[TH_STAGE_DISPATCH] = "dispatch",
	[TH_STAGE_CALLBACK] = "callback",
	[TH_STAGE_END_TO_END] = "end_to_end",
	[TH_STAGE_RESYNC] = "resync",
};

static const char *const stage_what[TH_STAGE_COUNT] = {
	[TH_STAGE_HUB_DECODE] = "first binlog event -> commit decoded",
	[TH_STAGE_HUB_PUBLISH] = "commit decoded -> batch published",
	[TH_STAGE_WAKE] = "batch published -> reader woken",
	[TH_STAGE_DELIVER] = "batch published -> record read",
	[TH_STAGE_DISPATCH] = "record read -> callback entered",
	[TH_STAGE_CALLBACK] = "callback entered -> returned",
	[TH_STAGE_END_TO_END] = "first binlog event -> callback returned",
	[TH_STAGE_RESYNC] = "resync started -> done",
};

/* Probe names as in common/th_trace.h, indexed by enum th_trace_probe. */
static const char *const probe_names[TH_PROBE_COUNT] = {
	[TH_PROBE_HUB_BINLOG_EVENT] = "hub_binlog_event",
	[TH_PROBE_HUB_TXN_COMMIT] = "hub_txn_commit",
	[TH_PROBE_HUB_BATCH_PUBLISH] = "hub_batch_publish",
	[TH_PROBE_HUB_READER_EVICTED] = "hub_reader_evicted",
	[TH_PROBE_READER_WOKEN] = "reader_woken",
	[TH_PROBE_READER_RECORD] = "reader_record",
	[TH_PROBE_CALLBACK_ENTER] = "callback_enter",
	[TH_PROBE_CALLBACK_RETURN] = "callback_return",
	[TH_PROBE_RESYNC_START] = "resync_start",
	[TH_PROBE_RESYNC_DONE] = "resync_done",
};

static const char *const evict_reasons[] = { "none", "slow", "lapped", "admin", "shutdown" };

struct target {
	char path[PATH_MAX];
	pid_t pid; /* -1: every process using path */
	int probes;
};

/* A histogram as last reported, to print the difference. */
struct hist_prev {
	struct th_trace_hist_key key;
	struct th_trace_hist h;
};

struct tracer {
	/* options */
	double duration_s, interval_s;
	unsigned top;
	bool json, verbose;
	/* state */
	struct topohub_trace *skel;
	struct target targets[MAX_TARGETS];
	int ntargets;
	struct bpf_link *links[MAX_TARGETS * TH_PROBE_COUNT];
	int nlinks;
	struct hist_prev *prev;
	int nprev;
	uint64_t prev_probes[TH_PROBE_COUNT];
	struct th_trace_slow *slowest; /* descending total_ns, ntop of top */
	unsigned ntop;
	uint64_t prev_slow_lost;
	int64_t realtime_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC */
	double last_report_s, start_s;
};

/* Set by the signal handler; the program's only global. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t ts_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static int libbpf_verbose(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: topohub-trace [OPTIONS]\n"
		"Traces topohubd and libtopohub.so clients through their USDT probes and prints\n"
		"per-stage latency histograms, evictions, resyncs and the slowest changes.\n"
		"  --pid PID       trace this process only (repeatable)\n"
		"  --path FILE     trace every process running or mapping FILE (repeatable)\n"
		"                  default: topohubd and every process with libtopohub.so mapped\n"
		"  --duration S    stop after S seconds (default: at SIGINT/SIGTERM)\n"
		"  --interval S    print a report every S seconds (each covers its interval)\n"
		"  --top N         list the N slowest changes per report (default 10, 0: none)\n"
		"  --json          one JSON object per report on stdout\n"
		"  --verbose       show libbpf's warnings\n"
		"Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN). Exit: 0 ok, 1 error, 2 usage,\n"
		"3 not permitted, 4 BPF unavailable, 5 nothing to trace.\n");
}

/* ---- targets ------------------------------------------------------------ */

static void add_target(struct tracer *t, const char *path, pid_t pid)
{
	for (int i = 0; i < t->ntargets; i++) {
		struct target *o = &t->targets[i];
		if (strcmp(o->path, path) == 0 && (o->pid == -1 || o->pid == pid))
			return;
	}
	if (t->ntargets == MAX_TARGETS) {
		fprintf(stderr, "topohub-trace: more than %d targets; ignoring %s\n", MAX_TARGETS, path);
		return;
	}
	struct target *n = &t->targets[t->ntargets++];
	snprintf(n->path, sizeof n->path, "%s", path);
	n->pid = pid;
	n->probes = 0;
}

static bool read_exe(pid_t pid, char *out, size_t size)
{
	char link[64];
	snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(link, out, size - 1);
	if (n <= 0)
		return false;
	out[n] = '\0';
	/* A replaced binary: the magic link still opens the running one. */
	if (n > 10 && strcmp(out + n - 10, " (deleted)") == 0)
		snprintf(out, size, "%s", link);
	return true;
}

static void read_comm(pid_t pid, char *out, size_t size)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(p, "r");
	out[0] = '\0';
	if (f) {
		if (fgets(out, (int)size, f))
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
}

/* Every mapped file of pid named libtopohub.so*, added with attach pid `as`. */
static void add_mapped_libs(struct tracer *t, pid_t pid, pid_t as)
{
	char p[64], line[PATH_MAX + 256];
	snprintf(p, sizeof p, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *path = strchr(line, '/');
		if (!path)
			continue;
		const char *base = strrchr(path, '/') + 1;
		if (strncmp(base, "libtopohub.so", 13) != 0)
			continue;
		size_t n = strlen(path);
		if (n > 10 && strcmp(path + n - 10, " (deleted)") == 0) {
			/* Replaced on disk: the mapping's own file, by its range. */
			char range[128], alt[192];
			sscanf(line, "%127s", range);
			snprintf(alt, sizeof alt, "/proc/%d/map_files/%s", (int)pid, range);
			add_target(t, alt, pid);
			continue;
		}
		add_target(t, path, as);
	}
	fclose(f);
}

static void discover(struct tracer *t)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();
	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == self)
			continue;
		char comm[32], exe[PATH_MAX];
		read_comm((pid_t)pid, comm, sizeof comm);
		if (read_exe((pid_t)pid, exe, sizeof exe)) {
			const char *base = strrchr(exe, '/');
			base = base ? base + 1 : exe;
			if (strcmp(comm, "topohubd") == 0 || strcmp(base, "topohubd") == 0)
				add_target(t, exe, strncmp(exe, "/proc/", 6) == 0 ? (pid_t)pid : -1);
		}
		add_mapped_libs(t, (pid_t)pid, -1);
	}
	closedir(d);
}

/* ---- attach ------------------------------------------------------------- */

static struct bpf_program *probe_prog(struct topohub_trace *s, int probe)
{
	switch (probe) {
	case TH_PROBE_HUB_BINLOG_EVENT: return s->progs.hub_binlog_event;
	case TH_PROBE_HUB_TXN_COMMIT: return s->progs.hub_txn_commit;
	case TH_PROBE_HUB_BATCH_PUBLISH: return s->progs.hub_batch_publish;
	case TH_PROBE_HUB_READER_EVICTED: return s->progs.hub_reader_evicted;
	case TH_PROBE_READER_WOKEN: return s->progs.reader_woken;
	case TH_PROBE_READER_RECORD: return s->progs.reader_record;
	case TH_PROBE_CALLBACK_ENTER: return s->progs.callback_enter;
	case TH_PROBE_CALLBACK_RETURN: return s->progs.callback_return;
	case TH_PROBE_RESYNC_START: return s->progs.resync_start;
	case TH_PROBE_RESYNC_DONE: return s->progs.resync_done;
	}
	return NULL;
}

/* Returns the number of probes attached over all targets; *perm_err set on EPERM/EACCES. */
static int attach_all(struct tracer *t, bool *perm_err, int *last_err)
{
	int total = 0;
	for (int i = 0; i < t->ntargets; i++) {
		struct target *tg = &t->targets[i];
		for (int p = 0; p < TH_PROBE_COUNT; p++) {
			struct bpf_link *l = bpf_program__attach_usdt(probe_prog(t->skel, p), tg->pid, tg->path,
								      "topohub", probe_names[p], NULL);
			if (!l) {
				/* A probe this file does not have (hub probes in the
				 * library, say) is normal; anything else is kept. */
				int e = errno;
				if (e == EPERM || e == EACCES)
					*perm_err = true;
				if (e != ENOENT && e != ESRCH)
					*last_err = e;
				if (t->verbose)
					fprintf(stderr, "topohub-trace: %s in %s: %s\n", probe_names[p], tg->path,
						strerror(e));
				continue;
			}
			t->links[t->nlinks++] = l;
			tg->probes++;
			total++;
		}
	}
	return total;
}

/* ---- reports ------------------------------------------------------------ */

static void fmt_ns(char *buf, size_t size, double ns)
{
	if (ns < 1e3)
		snprintf(buf, size, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(buf, size, "%.1fus", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, size, "%.2fms", ns / 1e6);
	else
		snprintf(buf, size, "%.2fs", ns / 1e9);
}

/* Upper bound of log2 slot s (exclusive): values in slot s are < 2^s. */
static uint64_t slot_hi(int s)
{
	return s == 0 ? 1 : (uint64_t)1 << s;
}

static uint64_t hist_quantile(const struct th_trace_hist *h, double q)
{
	if (!h->count)
		return 0;
	uint64_t want = (uint64_t)(q * (double)h->count + 0.999999);
	uint64_t seen = 0;
	for (int s = 0; s < TH_TRACE_SLOTS; s++) {
		seen += h->slots[s];
		if (seen >= want)
			return slot_hi(s);
	}
	return slot_hi(TH_TRACE_SLOTS - 1);
}

static struct th_trace_hist *prev_of(struct tracer *t, const struct th_trace_hist_key *k)
{
	for (int i = 0; i < t->nprev; i++)
		if (t->prev[i].key.stage == k->stage && t->prev[i].key.pid == k->pid)
			return &t->prev[i].h;
	if (t->nprev == MAX_HISTS)
		return NULL;
	struct hist_prev *n = &t->prev[t->nprev++];
	memset(n, 0, sizeof *n);
	n->key = *k;
	return &n->h;
}

struct hist_row {
	struct th_trace_hist_key key;
	struct th_trace_hist d; /* difference since the last report; comm and max as now */
};

static int row_cmp(const void *a, const void *b)
{
	const struct hist_row *x = a, *y = b;
	if (x->key.stage != y->key.stage)
		return x->key.stage < y->key.stage ? -1 : 1;
	return x->key.pid < y->key.pid ? -1 : x->key.pid > y->key.pid;
}

/* Reads the histograms map; fills rows with differences to the previous report. */
static int collect_hists(struct tracer *t, struct hist_row *rows, int max)
{
	int fd = bpf_map__fd(t->skel->maps.hists), n = 0;
	struct th_trace_hist_key key, next;
	bool first = true;
	while (n < max && bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		first = false;
		key = next;
		struct th_trace_hist now;
		if (bpf_map_lookup_elem(fd, &key, &now) != 0)
			continue;
		struct th_trace_hist *p = prev_of(t, &key);
		if (!p)
			continue;
		struct hist_row *r = &rows[n];
		r->key = key;
		r->d.count = now.count - p->count;
		r->d.sum_ns = now.sum_ns - p->sum_ns;
		r->d.max_ns = now.max_ns;
		for (int s = 0; s < TH_TRACE_SLOTS; s++)
			r->d.slots[s] = now.slots[s] - p->slots[s];
		memcpy(r->d.comm, now.comm, sizeof r->d.comm);
		r->d.comm[sizeof r->d.comm - 1] = '\0';
		*p = now;
		if (r->d.count)
			n++;
	}
	qsort(rows, (size_t)n, sizeof rows[0], row_cmp);
	return n;
}

static void collect_probes(struct tracer *t, uint64_t out[TH_PROBE_COUNT])
{
	int fd = bpf_map__fd(t->skel->maps.probe_hits);
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof *vals);
	for (uint32_t p = 0; p < TH_PROBE_COUNT; p++) {
		uint64_t sum = 0;
		if (vals && ncpu > 0 && bpf_map_lookup_elem(fd, &p, vals) == 0)
			for (int c = 0; c < ncpu; c++)
				sum += vals[c];
		out[p] = sum - t->prev_probes[p];
		t->prev_probes[p] = sum;
	}
	free(vals);
}

static void print_text_hist(const struct hist_row *r)
{
	char avg[32], p50[32], p99[32], mx[32];
	fmt_ns(avg, sizeof avg, (double)r->d.sum_ns / (double)r->d.count);
	fmt_ns(p50, sizeof p50, (double)hist_quantile(&r->d, 0.5));
	fmt_ns(p99, sizeof p99, (double)hist_quantile(&r->d, 0.99));
	fmt_ns(mx, sizeof mx, (double)r->d.max_ns);
	printf("%s  pid %u (%s)  [%s]\n  count %llu  avg %s  p50 <%s  p99 <%s  max %s (since start)\n",
	       stage_names[r->key.stage], r->key.pid, r->d.comm, stage_what[r->key.stage],
	       (unsigned long long)r->d.count, avg, p50, p99, mx);
	int lo = -1, hi = -1;
	uint64_t most = 0;
	for (int s = 0; s < TH_TRACE_SLOTS; s++)
		if (r->d.slots[s]) {
			if (lo < 0)
				lo = s;
			hi = s;
			if (r->d.slots[s] > most)
				most = r->d.slots[s];
		}
	printf("  %24s : %-8s %s\n", "ns", "count", "distribution");
	for (int s = lo; s >= 0 && s <= hi; s++) {
		char range[48], bar[41];
		uint64_t from = s == 0 ? 0 : slot_hi(s - 1);
		snprintf(range, sizeof range, "%llu -> %llu", (unsigned long long)from,
			 (unsigned long long)(slot_hi(s) - 1));
		int w = (int)(r->d.slots[s] * 40 / most);
		memset(bar, '*', (size_t)w);
		memset(bar + w, ' ', (size_t)(40 - w));
		bar[40] = '\0';
		printf("  %24s : %-8llu |%s|\n", range, (unsigned long long)r->d.slots[s], bar);
	}
}

static void json_hist(const struct hist_row *r, bool comma)
{
	printf("%s{\"stage\":\"%s\",\"pid\":%u,\"comm\":\"", comma ? "," : "", stage_names[r->key.stage],
	       r->key.pid);
	for (const char *c = r->d.comm; *c; c++)
		if (*c >= 0x20 && *c != '"' && *c != '\\')
			putchar(*c);
	printf("\",\"count\":%llu,\"sum_ns\":%llu,\"max_ns_since_start\":%llu,\"p50_ns\":%llu,"
	       "\"p90_ns\":%llu,\"p99_ns\":%llu,\"buckets\":[",
	       (unsigned long long)r->d.count, (unsigned long long)r->d.sum_ns,
	       (unsigned long long)r->d.max_ns, (unsigned long long)hist_quantile(&r->d, 0.5),
	       (unsigned long long)hist_quantile(&r->d, 0.9), (unsigned long long)hist_quantile(&r->d, 0.99));
	bool c2 = false;
	for (int s = 0; s < TH_TRACE_SLOTS; s++)
		if (r->d.slots[s]) {
			printf("%s{\"lt_ns\":%llu,\"count\":%llu}", c2 ? "," : "", (unsigned long long)slot_hi(s),
			       (unsigned long long)r->d.slots[s]);
			c2 = true;
		}
	printf("]}");
}

static int64_t dt(uint64_t from, uint64_t to)
{
	return from && to ? (int64_t)(to - from) : -1;
}

/* Breakdown of one slow change: -1 where a stage was not seen. */
struct breakdown {
	int64_t decode, publish, deliver, wake, dispatch, callback, server_to_hub_us;
};

static struct breakdown breakdown_of(const struct tracer *t, const struct th_trace_slow *s)
{
	struct breakdown b = {
		.decode = dt(s->start_ns, s->commit_ns),
		.publish = dt(s->commit_ns, s->publish_ns),
		.deliver = dt(s->publish_ns, s->read_ns),
		.wake = dt(s->publish_ns, s->woken_ns),
		.dispatch = dt(s->read_ns, s->enter_ns),
		.callback = dt(s->enter_ns, s->return_ns),
		.server_to_hub_us = -1,
	};
	/* Whole seconds mean the binlog's second-resolution event time (MariaDB,
	 * older MySQL): no use at this scale. MySQL 8 gives microseconds. */
	if (s->commit_us % 1000000 && s->commit_ns)
		b.server_to_hub_us = ((int64_t)s->commit_ns + t->realtime_offset_ns) / 1000 - (int64_t)s->commit_us;
	return b;
}

static void print_text_ns(const char *label, int64_t ns)
{
	char b[32];
	if (ns < 0)
		return;
	fmt_ns(b, sizeof b, (double)ns);
	printf(" %s %s", label, b);
}

static void report(struct tracer *t, bool final)
{
	static struct hist_row rows[MAX_HISTS];
	uint64_t probes[TH_PROBE_COUNT];
	double now = mono_s();
	int n = collect_hists(t, rows, MAX_HISTS);
	collect_probes(t, probes);
	uint64_t lost = t->skel->bss->slow_lost;
	uint64_t lost_now = lost - t->prev_slow_lost;
	t->prev_slow_lost = lost;

	/* Evictions: cumulative map; printed as totals since start. */
	int efd = bpf_map__fd(t->skel->maps.evictions);
	struct th_trace_evict_key ek, enext;
	bool efirst = true;

	if (t->json) {
		printf("{\"elapsed_s\":%.3f,\"interval_s\":%.3f,\"final\":%s,\"stages\":[", now - t->start_s,
		       now - t->last_report_s, final ? "true" : "false");
		for (int i = 0; i < n; i++)
			json_hist(&rows[i], i > 0);
		printf("],\"probes\":{");
		for (int p = 0; p < TH_PROBE_COUNT; p++)
			printf("%s\"%s\":%llu", p ? "," : "", probe_names[p], (unsigned long long)probes[p]);
		printf("},\"evictions_since_start\":[");
		bool c = false;
		while (bpf_map_get_next_key(efd, efirst ? NULL : &ek, &enext) == 0) {
			uint64_t v;
			efirst = false;
			ek = enext;
			if (bpf_map_lookup_elem(efd, &ek, &v) != 0)
				continue;
			printf("%s{\"pid\":%u,\"reason\":\"%s\",\"count\":%llu}", c ? "," : "", ek.pid,
			       ek.reason < 5 ? evict_reasons[ek.reason] : "?", (unsigned long long)v);
			c = true;
		}
		printf("],\"slowest\":[");
		for (unsigned i = 0; i < t->ntop; i++) {
			const struct th_trace_slow *s = &t->slowest[i];
			struct breakdown b = breakdown_of(t, s);
			printf("%s{\"revision\":%llu,\"pid\":%u,\"hub_pid\":%u,\"watch_id\":%llu,\"nrows\":%u,"
			       "\"total_ns\":%llu,\"decode_ns\":%lld,\"publish_ns\":%lld,\"deliver_ns\":%lld,"
			       "\"wake_ns\":%lld,\"dispatch_ns\":%lld,\"callback_ns\":%lld,\"server_to_hub_us\":%lld}",
			       i ? "," : "", (unsigned long long)s->revision, s->pid, s->hub_pid,
			       (unsigned long long)s->watch_id, s->nrows, (unsigned long long)s->total_ns,
			       (long long)b.decode, (long long)b.publish, (long long)b.deliver, (long long)b.wake,
			       (long long)b.dispatch, (long long)b.callback, (long long)b.server_to_hub_us);
		}
		printf("],\"slow_lost\":%llu}\n", (unsigned long long)lost_now);
	} else {
		printf("=== topohub-trace: %.1f s since start, report covers %.1f s%s\n", now - t->start_s,
		       now - t->last_report_s, final ? " (final)" : "");
		if (!n)
			printf("no completed stages in this period\n");
		for (int i = 0; i < n; i++)
			print_text_hist(&rows[i]);
		printf("probe hits:");
		for (int p = 0; p < TH_PROBE_COUNT; p++)
			printf(" %s=%llu", probe_names[p], (unsigned long long)probes[p]);
		printf("\n");
		for (int i = 0; i < n; i++)
			if (rows[i].key.stage == TH_STAGE_RESYNC)
				printf("resyncs: pid %u (%s) %llu\n", rows[i].key.pid, rows[i].d.comm,
				       (unsigned long long)rows[i].d.count);
		while (bpf_map_get_next_key(efd, efirst ? NULL : &ek, &enext) == 0) {
			uint64_t v;
			efirst = false;
			ek = enext;
			if (bpf_map_lookup_elem(efd, &ek, &v) == 0)
				printf("evictions since start: pid %u reason %s: %llu\n", ek.pid,
				       ek.reason < 5 ? evict_reasons[ek.reason] : "?", (unsigned long long)v);
		}
		if (t->ntop) {
			printf("slowest %u changes (end to end, per reader callback):\n", t->ntop);
			for (unsigned i = 0; i < t->ntop; i++) {
				const struct th_trace_slow *s = &t->slowest[i];
				struct breakdown b = breakdown_of(t, s);
				char tot[32];
				fmt_ns(tot, sizeof tot, (double)s->total_ns);
				printf("  rev %llu pid %u watch %llu: %s =", (unsigned long long)s->revision, s->pid,
				       (unsigned long long)s->watch_id, tot);
				print_text_ns("decode", b.decode);
				print_text_ns("publish", b.publish);
				print_text_ns("deliver", b.deliver);
				if (b.wake >= 0)
					print_text_ns("(wake", b.wake), printf(")");
				print_text_ns("dispatch", b.dispatch);
				print_text_ns("callback", b.callback);
				if (b.server_to_hub_us >= 0)
					printf("; server commit -> hub %lld us", (long long)b.server_to_hub_us);
				printf("\n");
			}
		}
		if (lost_now)
			printf("slow-change records lost (ring buffer full): %llu\n", (unsigned long long)lost_now);
	}
	fflush(stdout);
	t->last_report_s = now;
	t->ntop = 0;
	t->skel->bss->slow_threshold_ns = 0;
}

static int on_slow(void *ctx, void *data, size_t len)
{
	struct tracer *t = ctx;
	const struct th_trace_slow *s = data;
	if (len < sizeof *s || t->top == 0)
		return 0;
	if (t->ntop == t->top && s->total_ns <= t->slowest[t->ntop - 1].total_ns)
		return 0;
	unsigned i = t->ntop < t->top ? t->ntop++ : t->ntop - 1;
	while (i > 0 && t->slowest[i - 1].total_ns < s->total_ns) {
		t->slowest[i] = t->slowest[i - 1];
		i--;
	}
	t->slowest[i] = *s;
	/* Full: only changes slower than the N-th are worth sending now. */
	if (t->ntop == t->top)
		t->skel->bss->slow_threshold_ns = t->slowest[t->ntop - 1].total_ns + 1;
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static int parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || v < 0)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static struct tracer tr = { .top = 10 };
	struct tracer *t = &tr;
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },      { "path", required_argument, NULL, 'f' },
		{ "duration", required_argument, NULL, 'd' }, { "interval", required_argument, NULL, 'i' },
		{ "top", required_argument, NULL, 'n' },      { "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },        { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool explicit_targets = false;
	int c;
	while ((c = getopt_long(argc, argv, "p:f:d:i:n:jvh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			char *end;
			long pid = strtol(optarg, &end, 10);
			char exe[PATH_MAX];
			if (*end || pid <= 0) {
				fprintf(stderr, "topohub-trace: bad pid '%s'\n", optarg);
				return EXIT_USAGE;
			}
			if (!read_exe((pid_t)pid, exe, sizeof exe)) {
				fprintf(stderr, "topohub-trace: no process %ld (or it cannot be inspected: %s)\n", pid,
					strerror(errno));
				return EXIT_NOTARGET;
			}
			add_target(t, exe, (pid_t)pid);
			add_mapped_libs(t, (pid_t)pid, (pid_t)pid);
			explicit_targets = true;
			break;
		}
		case 'f':
			if (access(optarg, R_OK) != 0) {
				fprintf(stderr, "topohub-trace: %s: %s\n", optarg, strerror(errno));
				return EXIT_NOTARGET;
			}
			add_target(t, optarg, -1);
			explicit_targets = true;
			break;
		case 'd':
			if (parse_double(optarg, &t->duration_s) != 0) {
				fprintf(stderr, "topohub-trace: bad --duration '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'i':
			if (parse_double(optarg, &t->interval_s) != 0 || (t->interval_s > 0 && t->interval_s < 0.1)) {
				fprintf(stderr, "topohub-trace: bad --interval '%s' (at least 0.1)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'n': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 0 || n > MAX_TOP) {
				fprintf(stderr, "topohub-trace: bad --top '%s' (0..%d)\n", optarg, MAX_TOP);
				return EXIT_USAGE;
			}
			t->top = (unsigned)n;
			break;
		}
		case 'j': t->json = true; break;
		case 'v': t->verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "topohub-trace: needs root: loading BPF programs and attaching uprobes takes "
				"CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; run it with sudo\n");
		return EXIT_PERM;
	}
	if (!explicit_targets)
		discover(t);
	if (t->ntargets == 0) {
		fprintf(stderr, "topohub-trace: nothing to trace: no process named topohubd and none with "
				"libtopohub.so mapped; start them first, or give --pid or --path\n");
		return EXIT_NOTARGET;
	}

	libbpf_set_print(t->verbose ? libbpf_verbose : libbpf_quiet);
	t->slowest = calloc(t->top ? t->top : 1, sizeof *t->slowest);
	t->prev = calloc(MAX_HISTS, sizeof *t->prev);
	if (!t->slowest || !t->prev) {
		fprintf(stderr, "topohub-trace: out of memory\n");
		return 1;
	}
	t->skel = topohub_trace__open();
	if (!t->skel) {
		fprintf(stderr, "topohub-trace: cannot open the BPF object: %s\n", strerror(errno));
		return EXIT_NOBPF;
	}
	/* Report pids as this tracer's /proc shows them, even inside a container. */
	struct stat ns;
	if (stat("/proc/self/ns/pid", &ns) == 0) {
		t->skel->rodata->pidns_dev = ns.st_dev;
		t->skel->rodata->pidns_ino = ns.st_ino;
	}
	int err = topohub_trace__load(t->skel);
	if (err) {
		int e = -err;
		/* As root, EACCES is the verifier refusing a program, not a permission. */
		if (e == EPERM) {
			fprintf(stderr, "topohub-trace: not permitted to load BPF programs (%s): needs root with "
					"CAP_BPF and CAP_PERFMON, and kernel.unprivileged_bpf_disabled does not matter then; "
					"in a container, the container needs those capabilities\n", strerror(e));
			topohub_trace__destroy(t->skel);
			return EXIT_PERM;
		}
		fprintf(stderr, "topohub-trace: BPF unavailable: loading the programs failed: %s (%s; run with "
				"--verbose for libbpf's log)\n", strerror(e),
			e == EACCES ? "the kernel's verifier refused a program"
				    : "needs a kernel with BPF, BTF and uprobes");
		topohub_trace__destroy(t->skel);
		return EXIT_NOBPF;
	}
	bool perm = false;
	int last_err = 0;
	int attached = attach_all(t, &perm, &last_err);
	int rc = 0;
	if (attached == 0) {
		if (perm) {
			fprintf(stderr, "topohub-trace: not permitted to attach uprobes\n");
			rc = EXIT_PERM;
		} else if (last_err) {
			fprintf(stderr, "topohub-trace: attaching the probes failed: %s (uprobes unavailable?)\n",
				strerror(last_err));
			rc = EXIT_NOBPF;
		} else {
			fprintf(stderr, "topohub-trace: no topohub USDT probes in the targets (built with "
					"-DTH_NO_TRACE or without sys/sdt.h?):");
			for (int i = 0; i < t->ntargets; i++)
				fprintf(stderr, " %s", t->targets[i].path);
			fprintf(stderr, "\n");
			rc = EXIT_NOTARGET;
		}
		goto out;
	}
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(t->skel->maps.slow), on_slow, t, NULL);
	if (!rb) {
		fprintf(stderr, "topohub-trace: ring buffer: %s\n", strerror(errno));
		rc = EXIT_NOBPF;
		goto out;
	}

	/* One write, so that a reader of stderr sees the whole line at once. */
	char line[4096];
	size_t ll = (size_t)snprintf(line, sizeof line, "topohub-trace: tracing");
	for (int i = 0; i < t->ntargets && ll < sizeof line; i++) {
		if (!t->targets[i].probes)
			continue;
		if (t->targets[i].pid > 0)
			ll += (size_t)snprintf(line + ll, sizeof line - ll, " [pid %d %s: %d probes]", (int)t->targets[i].pid,
					       t->targets[i].path, t->targets[i].probes);
		else
			ll += (size_t)snprintf(line + ll, sizeof line - ll, " [%s: %d probes]", t->targets[i].path,
					       t->targets[i].probes);
	}
	if (ll < sizeof line)
		snprintf(line + ll, sizeof line - ll, "; %s\n",
			 t->duration_s > 0 ? "until the duration ends" : "Ctrl-C to stop");
	fputs(line, stderr);
	fflush(stderr);

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	t->realtime_offset_ns = ts_ns(CLOCK_REALTIME) - ts_ns(CLOCK_MONOTONIC);
	t->start_s = t->last_report_s = mono_s();
	while (!stop_requested) {
		double now = mono_s();
		if (t->duration_s > 0 && now - t->start_s >= t->duration_s)
			break;
		if (t->interval_s > 0 && now - t->last_report_s >= t->interval_s)
			report(t, false);
		int r = ring_buffer__poll(rb, 100);
		if (r < 0 && r != -EINTR) {
			fprintf(stderr, "topohub-trace: ring buffer poll: %s\n", strerror(-r));
			rc = 1;
			break;
		}
	}
	ring_buffer__consume(rb);
	report(t, true);
	ring_buffer__free(rb);
out:
	for (int i = 0; i < t->nlinks; i++)
		bpf_link__destroy(t->links[i]);
	topohub_trace__destroy(t->skel);
	free(t->slowest);
	free(t->prev);
	return rc;
}
