/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for the USDT probes (common/th_trace.h) and the tracer
 * build/topohub-trace (bench/trace/, built by `make trace`).
 *
 * The tracer tests run the real tracer against real processes and check that
 * it counts every stage of every change exactly once: a synthetic hub and
 * reader (tests/support/trace_synth.h), then the real topohubd on a private
 * MariaDB and this process as a libtopohub.so subscriber during a write
 * burst. They need root and a
 * kernel with BPF and uprobes, and the tracer built: otherwise they skip and
 * say why. The tracer is looked for at $BUILD/topohub-trace (tests/run.sh
 * runs with BUILD set by make; default "build").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/th_time.h"
#include "common/th_trace.h"
#include "plugins/topohub.h"
#include "tests/support/hub_proc.h"
#include "tests/support/support.h"
#include "tests/support/mariadb.h"
#include "tests/support/trace_synth.h"

static const char *const probe_names[] = {
	"hub_binlog_event", "hub_txn_commit", "hub_batch_publish", "hub_reader_evicted", "reader_woken",
	"reader_record",    "callback_enter", "callback_return",   "resync_start",       "resync_done",
};

/* ---- helpers ------------------------------------------------------------ */

static void tracer_path(char *out, size_t size)
{
	const char *b = getenv("BUILD");
	snprintf(out, size, "%s/topohub-trace", b && *b ? b : "build");
}

/* Skip (with the reason) unless the tracer can run here. */
static bool tracer_or_skip(char *path, size_t size)
{
	if (!TH_TRACE_ENABLED) {
		print_message("skip: built without sys/sdt.h (or with -DTH_NO_TRACE): no probes to trace\n");
		return false;
	}
	if (geteuid() != 0) {
		print_message("skip: the tracer needs root (BPF and uprobes)\n");
		return false;
	}
	tracer_path(path, size);
	if (access(path, X_OK) != 0) {
		print_message("skip: %s not built (run `make trace`; needs clang, bpftool, libbpf, kernel BTF)\n",
			      path);
		return false;
	}
	return true;
}

struct child {
	pid_t pid;
	int out_fd; /* its stdout */
	int err_fd; /* its stderr */
};

static int spawn(struct child *c, char *const argv[], uid_t as_uid)
{
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
		return -errno;
	pid_t parent = getpid();
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (as_uid != (uid_t)-1 && (setgid(as_uid) != 0 || setuid(as_uid) != 0))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	c->out_fd = out[0];
	c->err_fd = err[0];
	return 0;
}

/* Appends what fd has to buf (NUL-terminated) until `until` appears, EOF, or
 * the deadline. Returns true when `until` was seen (or, with until NULL, at EOF). */
static bool read_until(int fd, char *buf, size_t size, const char *until, uint64_t timeout_ms)
{
	size_t len = strlen(buf);
	uint64_t deadline = th_now_ns() + timeout_ms * 1000000u;
	for (;;) {
		if (until && strstr(buf, until))
			return true;
		uint64_t now = th_now_ns();
		if (now >= deadline || len + 1 >= size)
			return false;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return until == NULL;
		len += (size_t)n;
		buf[len] = '\0';
	}
}

/* Like read_until(), for a whole line that starts with prefix (the tracer
 * writes its "tracing ..." line in more than one piece). */
static bool read_line(int fd, char *buf, size_t size, const char *prefix, uint64_t timeout_ms)
{
	size_t len = strlen(buf);
	uint64_t deadline = th_now_ns() + timeout_ms * 1000000u;
	for (;;) {
		const char *p = strstr(buf, prefix);
		if (p && strchr(p, '\n'))
			return true;
		uint64_t now = th_now_ns();
		if (now >= deadline || len + 1 >= size)
			return false;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int r = poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = '\0';
	}
}

static int reap_status(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Sum of "count" over the stage entries named stage in a report line. */
static long long stage_count(const char *json, const char *stage)
{
	char pat[64];
	long long sum = 0;
	snprintf(pat, sizeof pat, "{\"stage\":\"%s\"", stage);
	for (const char *p = strstr(json, pat); p; p = strstr(p + 1, pat)) {
		const char *c = strstr(p, "\"count\":");
		if (c)
			sum += strtoll(c + 8, NULL, 10);
	}
	return sum;
}

/* The value of "name":N after the key "section". */
static long long field_after(const char *json, const char *section, const char *name)
{
	char pat[64];
	const char *s = strstr(json, section);
	if (!s)
		return -1;
	snprintf(pat, sizeof pat, "\"%s\":", name);
	const char *p = strstr(s, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* ---- tests -------------------------------------------------------------- */

/* The contract of th_trace.h is in the binary: a note per probe, provider topohub. */
static void test_trace__probes_are_compiled_in(void **state)
{
	(void)state;
	if (!TH_TRACE_ENABLED) {
		print_message("skip: built without sys/sdt.h (or with -DTH_NO_TRACE)\n");
		skip();
	}
	FILE *f = fopen("/proc/self/exe", "rb");
	assert_non_null(f);
	size_t cap = 64u << 20, len;
	char *buf = malloc(cap);
	assert_non_null(buf);
	len = fread(buf, 1, cap, f);
	fclose(f);
	for (size_t i = 0; i < sizeof probe_names / sizeof probe_names[0]; i++) {
		char needle[64];
		int n = snprintf(needle, sizeof needle, "topohub%c%s%c", 0, probe_names[i], 0);
		assert_non_null(memmem(buf, len, needle, (size_t)n));
	}
	free(buf);
}

/* Without root the tracer stops at once and says what it needs. */
static void test_trace__tracer_refuses_without_root_and_says_why(void **state)
{
	(void)state;
	char path[512];
	tracer_path(path, sizeof path);
	if (access(path, X_OK) != 0) {
		print_message("skip: %s not built (run `make trace`)\n", path);
		skip();
	}
	/* As root, drop to nobody for the run; otherwise we are the unprivileged
	 * user. nobody may not be able to read the checkout (a clone under
	 * /root, a mktemp -d folder): run a copy from a folder it can read, with
	 * the sanitizer's suppressions copied beside it. */
	bool as_nobody = geteuid() == 0;
	char dir[] = "/tmp/topohub-nobody.XXXXXX", copy[PATH_MAX] = "", supp[PATH_MAX] = "";
	char *saved_tsan = NULL;
	if (as_nobody) {
		assert_non_null(mkdtemp(dir));
		assert_int_equal(chmod(dir, 0755), 0);
		snprintf(copy, sizeof copy, "%s/topohub-trace", dir);
		assert_int_equal(th_test_copy_file(path, copy, 0755), 0);
		const char *tsan = getenv("TSAN_OPTIONS");
		const char *at = tsan ? strstr(tsan, "suppressions=") : NULL;
		if (at) {
			char from[PATH_MAX];
			snprintf(from, sizeof from, "%.*s", (int)strcspn(at + 13, " :"), at + 13);
			snprintf(supp, sizeof supp, "%s/tsan.supp", dir);
			assert_int_equal(th_test_copy_file(from, supp, 0644), 0);
			saved_tsan = strdup(tsan);
			char opts[PATH_MAX * 2];
			snprintf(opts, sizeof opts, "%.*ssuppressions=%s%s", (int)(at - tsan), tsan, supp,
				 at + 13 + strcspn(at + 13, " :"));
			setenv("TSAN_OPTIONS", opts, 1);
		}
	}
	char *argv[] = { as_nobody ? copy : path, "--duration", "1", NULL };
	struct child c;
	int spawned = spawn(&c, argv, as_nobody ? 65534 : (uid_t)-1);
	if (saved_tsan) {
		setenv("TSAN_OPTIONS", saved_tsan, 1);
		free(saved_tsan);
	}
	assert_int_equal(spawned, 0);
	char err[4096] = "";
	read_until(c.err_fd, err, sizeof err, NULL, 10000);
	int rc = reap_status(c.pid);
	close(c.out_fd);
	close(c.err_fd);
	if (as_nobody) {
		unlink(copy);
		if (*supp)
			unlink(supp);
		rmdir(dir);
	}
	assert_int_equal(rc, 3);
	assert_non_null(strstr(err, "needs root"));
}

/* Against a synthetic hub and reader (two processes): every stage counted once per change. */
static void test_trace__counts_every_stage_of_every_change(void **state)
{
	(void)state;
	char path[512];
	if (!tracer_or_skip(path, sizeof path))
		skip();
	enum { K = 300 };
	struct th_trace_synth s;
	assert_int_equal(th_trace_synth_start(&s, K, 200), 0);
	char hub[16], reader[16];
	snprintf(hub, sizeof hub, "%d", (int)s.hub);
	snprintf(reader, sizeof reader, "%d", (int)s.reader);
	char *argv[] = { path, "--pid", hub, "--pid", reader, "--json", "--top", "5", "--duration", "120", NULL };
	struct child c;
	assert_int_equal(spawn(&c, argv, (uid_t)-1), 0);

	static char err[16384], out[1 << 20];
	err[0] = out[0] = '\0';
	if (!read_line(c.err_fd, err, sizeof err, "topohub-trace: tracing", 60000)) {
		kill(c.pid, SIGKILL);
		int rc = reap_status(c.pid);
		th_trace_synth_kill(&s);
		if (rc == 4) { /* BPF or uprobes unavailable in this kernel */
			print_message("skip: %s", err);
			skip();
		}
		fail_msg("tracer did not attach (exit %d): %s", rc, err);
	}
	assert_int_equal(th_trace_synth_go(&s), 0);
	assert_int_equal(th_trace_synth_wait(&s), 0);
	kill(c.pid, SIGINT);
	assert_true(read_until(c.out_fd, out, sizeof out, NULL, 30000));
	int rc = reap_status(c.pid);
	read_until(c.err_fd, err, sizeof err, NULL, 1000);
	close(c.out_fd);
	close(c.err_fd);
	if (rc != 0)
		fail_msg("tracer exit %d: %s", rc, err);

	static const char *const per_change[] = { "hub_decode", "hub_publish", "wake",      "deliver",
						  "dispatch",   "callback",    "end_to_end" };
	for (size_t i = 0; i < sizeof per_change / sizeof per_change[0]; i++) {
		long long n = stage_count(out, per_change[i]);
		if (n != K) {
			fputs(out, stderr);
			fail_msg("stage %s: %lld, expected %d (the tracer's report is above)", per_change[i], n, K);
		}
	}
	assert_int_equal(stage_count(out, "resync"), 1);
	assert_int_equal(field_after(out, "\"probes\":", "hub_binlog_event"), 4 * K);
	assert_int_equal(field_after(out, "\"probes\":", "reader_record"), K);
	assert_int_equal(field_after(out, "\"probes\":", "callback_return"), K);
	assert_int_equal(field_after(out, "\"evictions_since_start\":", "count"), 1);
	/* The slowest list is full and each has a whole breakdown. */
	assert_int_equal(field_after(out, "\"slowest\":", "revision") > 0, 1);
	assert_null(strstr(out, "\"deliver_ns\":-1"));
	assert_null(strstr(out, "\"decode_ns\":-1"));
}

/* ---- against the real hub ----------------------------------------------- */

struct live {
	struct th_mariadb *db;
	struct th_hub_proc *hub;
	void *lib;
	const struct th_api *api;
	struct th_conn *conn;
	struct child tracer;
	atomic_int puts, synced, others;
	atomic_int slow_entered; /* the callback for /trace/slow has begun (it sleeps) */
	char err[16384];         /* the tracer's stderr */
	char out[1 << 20];       /* its report */
};

static struct live live_fx;

static void on_live_event(const struct th_event *e, void *arg)
{
	struct live *l = arg;
	if (e->kind == TH_EVENT_PUT && e->key && strcmp(e->key, "/trace/slow") == 0) {
		/* A callback that outlives the slow-consumer timeout. */
		atomic_store(&l->slow_entered, 1);
		usleep(300000);
	} else if (e->kind == TH_EVENT_PUT) {
		atomic_fetch_add(&l->puts, 1);
	}
	else if (e->kind == TH_EVENT_SYNCED)
		atomic_fetch_add(&l->synced, 1);
	else
		atomic_fetch_add(&l->others, 1);
}

static int live_teardown(void **state)
{
	(void)state;
	struct live *l = &live_fx;
	if (l->tracer.pid > 0) {
		kill(l->tracer.pid, SIGKILL);
		reap_status(l->tracer.pid);
		close(l->tracer.out_fd);
		close(l->tracer.err_fd);
	}
	if (l->conn)
		l->api->close(l->conn);
	if (l->lib)
		dlclose(l->lib);
	th_hub_proc_free(l->hub);
	th_mariadb_stop(l->db);
	l->tracer.pid = 0;
	l->conn = NULL;
	l->lib = NULL;
	l->hub = NULL;
	l->db = NULL;
	atomic_store(&l->puts, 0);
	atomic_store(&l->synced, 0);
	atomic_store(&l->others, 0);
	atomic_store(&l->slow_entered, 0);
	return 0;
}

static bool wait_for(atomic_int *v, int want, unsigned timeout_ms)
{
	uint64_t end = th_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (atomic_load(v) < want) {
		if (th_now_ns() > end)
			return false;
		usleep(1000);
	}
	return true;
}

/* Starts MariaDB, topohubd, a subscriber in this process (libtopohub.so,
 * its own dispatch thread, a recursive watch on /trace, slow-consumer
 * timeout timeout_ns) and the tracer on the hub and this process, in that
 * order: the tracer sees nothing of the setup. false: skipped (said why). */
static bool live_start(struct live *l, uint64_t timeout_ns)
{
	char path[512], so[600], hubbin[600], why[1024] = "";
	if (!tracer_or_skip(path, sizeof path))
		return false;
	const char *b = getenv("BUILD");
	b = b && *b ? b : "build";
	snprintf(so, sizeof so, "%s/libtopohub.so", b);
	snprintf(hubbin, sizeof hubbin, "%s/topohubd", b);
	if (access(so, R_OK) != 0 || access(hubbin, X_OK) != 0) {
		print_message("skip: %s or %s not built\n", so, hubbin);
		return false;
	}
	int rc = th_mariadb_start(NULL, &l->db, why, sizeof why);
	if (rc == TH_MARIADB_UNAVAILABLE) {
		print_message("skip: %s\n", why);
		return false;
	}
	if (rc)
		fail_msg("mariadb: %s", why);
	if (th_mariadb_create_topo_schema(l->db, NULL))
		fail_msg("schema: %s", l->db->err);
	struct th_mariadb *srcs[] = { l->db };
	struct th_hub_proc_options ho = { .sources = srcs, .nsources = 1 };
	if (th_hub_proc_start(&ho, &l->hub, why, sizeof why))
		fail_msg("topohubd: %s", why);

	l->lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!l->lib)
		fail_msg("dlopen %s: %s", so, dlerror());
	th_api_get_fn *get = (th_api_get_fn *)dlsym(l->lib, TH_API_SYMBOL);
	assert_non_null(get);
	assert_int_equal(get(TH_ABI_MAJOR, TH_ABI_MINOR, &l->api), 0);
	struct th_open_opts oo = { .size = sizeof oo, .flags = TH_OPEN_F_THREAD, .socket_path = l->hub->socket,
				   .timeout_ns = timeout_ns, .wait_mode = TH_WAIT_FUTEX, .name = "test_trace" };
	rc = l->api->open(&oo, &l->conn);
	if (rc)
		fail_msg("open: %s", l->api->strerror(rc));
	struct th_watch_opts wo = { .size = sizeof wo, .table = TH_TABLE_DATA, .path = "/trace",
				    .callback = on_live_event, .arg = l };
	th_watch_id wid;
	assert_int_equal(l->api->watch_recursive(l->conn, &wo, &wid), 0);
	assert_true(wait_for(&l->synced, 1, 10000));

	char hubpid[16], self[16];
	snprintf(hubpid, sizeof hubpid, "%d", (int)l->hub->pid);
	snprintf(self, sizeof self, "%d", (int)getpid());
	char *argv[] = { path, "--pid", hubpid, "--pid", self, "--json", "--top", "3", "--duration", "120", NULL };
	assert_int_equal(spawn(&l->tracer, argv, (uid_t)-1), 0);
	l->err[0] = l->out[0] = '\0';
	if (!read_line(l->tracer.err_fd, l->err, sizeof l->err, "topohub-trace: tracing", 60000))
		fail_msg("tracer did not attach: %s", l->err);
	if (!strstr(l->err, "libtopohub.so") || !strstr(l->err, "topohubd"))
		fail_msg("tracer did not find both the hub and the library: %s", l->err);
	return true;
}

/* Stops the tracer (SIGINT: final report) and leaves its report in l->out. */
static void live_report(struct live *l)
{
	kill(l->tracer.pid, SIGINT);
	assert_true(read_until(l->tracer.out_fd, l->out, sizeof l->out, NULL, 30000));
	int rc = reap_status(l->tracer.pid);
	l->tracer.pid = 0;
	close(l->tracer.out_fd);
	close(l->tracer.err_fd);
	if (rc != 0)
		fail_msg("tracer exit %d: %s", rc, l->err);
	if (getenv("TH_TRACE_SHOW"))
		fputs(l->out, stdout); /* print_message would cut it at 1 KiB */
}

/* The real topohubd and this process as a subscriber: every stage of each
 * of K single-row transactions is counted once, hub and reader stages
 * joined by revision. */
static void test_trace__counts_every_stage_against_live_hub_and_subscriber(void **state)
{
	(void)state;
	struct live *l = &live_fx;
	if (!live_start(l, 0))
		skip();
	enum { K = 200 };
	for (int i = 0; i < K; i++)
		if (th_mariadb_sql(l->db, "INSERT INTO topo.topo_data (path, data) VALUES ('/trace/k%d', 'v%d')", i, i))
			fail_msg("insert: %s", l->db->err);
	if (!wait_for(&l->puts, K, 30000))
		fail_msg("subscriber saw %d of %d changes", atomic_load(&l->puts), K);

	live_report(l);
	const char *out = l->out;

	static const char *const per_change[] = { "hub_decode", "hub_publish", "deliver",
						  "dispatch",   "callback",    "end_to_end" };
	for (size_t i = 0; i < sizeof per_change / sizeof per_change[0]; i++) {
		long long n = stage_count(out, per_change[i]);
		if (n != K) {
			fputs(out, stderr);
			fail_msg("stage %s: %lld, expected %d (the tracer's report is above)", per_change[i], n, K);
		}
	}
	/* A reader that is busy when the next change comes reads it without waiting. */
	long long wakes = stage_count(out, "wake");
	if (wakes < 1 || wakes > K) {
		fputs(out, stderr);
		fail_msg("wake: %lld, expected 1..%d (the tracer's report is above)", wakes, K);
	}
	assert_int_equal(field_after(out, "\"probes\":", "hub_txn_commit"), K);
	assert_int_equal(field_after(out, "\"probes\":", "hub_batch_publish"), K);
	assert_int_equal(field_after(out, "\"probes\":", "reader_record"), K);
	assert_true(field_after(out, "\"probes\":", "hub_binlog_event") >= 3 * K);
	assert_int_equal(stage_count(out, "resync"), 0);
	/* The slowest changes have every stage, hub and reader joined by revision. */
	assert_true(field_after(out, "\"slowest\":", "revision") > 0);
	assert_null(strstr(out, "\"decode_ns\":-1"));
	assert_null(strstr(out, "\"deliver_ns\":-1"));
	assert_null(strstr(out, "\"dispatch_ns\":-1"));
}

/* A callback that sleeps past the reader's 50 ms timeout while the next
 * change waits: the hub evicts the reader, the library resyncs; the tracer
 * counts one eviction (this pid, reason slow) and one resync. */
static void test_trace__counts_a_live_eviction_and_resync(void **state)
{
	(void)state;
	struct live *l = &live_fx;
	if (!live_start(l, 50000000))
		skip();
	if (th_mariadb_sql(l->db, "INSERT INTO topo.topo_data (path, data) VALUES ('/trace/slow', 's')"))
		fail_msg("insert: %s", l->db->err);
	assert_true(wait_for(&l->slow_entered, 1, 10000));
	if (th_mariadb_sql(l->db, "INSERT INTO topo.topo_data (path, data) VALUES ('/trace/after', 'a')"))
		fail_msg("insert: %s", l->db->err);
	/* RESYNC, then the missed change by diff, then SYNCED. */
	if (!wait_for(&l->synced, 2, 10000))
		fail_msg("no resync after the slow callback (synced %d, puts %d)", atomic_load(&l->synced),
			 atomic_load(&l->puts));
	live_report(l);
	const char *out = l->out;
	if (field_after(out, "\"probes\":", "hub_reader_evicted") != 1 ||
	    field_after(out, "\"evictions_since_start\":", "count") != 1 || stage_count(out, "resync") != 1) {
		fputs(out, stderr);
		fail_msg("expected one eviction and one resync (the tracer's report is above)");
	}
	char self[64];
	snprintf(self, sizeof self, "{\"pid\":%d,\"reason\":\"slow\"", (int)getpid());
	assert_non_null(strstr(out, self));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace__probes_are_compiled_in),
		cmocka_unit_test(test_trace__tracer_refuses_without_root_and_says_why),
		cmocka_unit_test(test_trace__counts_every_stage_of_every_change),
		cmocka_unit_test_teardown(test_trace__counts_every_stage_against_live_hub_and_subscriber, live_teardown),
		cmocka_unit_test_teardown(test_trace__counts_a_live_eviction_and_resync, live_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
