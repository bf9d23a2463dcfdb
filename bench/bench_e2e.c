/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohub-bench e2e: the programs of the end-to-end benchmark. The driver
 * (bench/e2e/run.py) runs them as separate processes; see bench_e2e.h for the
 * run file they share, bench/README.md for what is measured.
 *
 *   e2e mariadb   start a private MariaDB (tests/support/mariadb.h), print its
 *                 address as JSON, run until stdin closes, then stop it
 *   e2e create    make a run file for N subscribers and at most M updates
 *   e2e setup     reset the keys of a prefix (MySQL topo_data, or etcd)
 *   e2e writer    update the keys at a fixed rate (open loop), stamping each
 *                 commit's return in the run file
 *   e2e sub       one subscriber process of a system: topohub, socket,
 *                 mysqltopo, decoder, etcd
 *   e2e collect   latency over all deliveries and the checks, as JSON
 *
 * The MySQL password travels in TOPOHUB_MYSQL_PASSWORD, never on a command line.
 */
#include "bench/bench_e2e.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "bench/bench.h"
#include "common/th_time.h"
#include "tests/support/mariadb.h"

/* ---- run file ----------------------------------------------------------- */

static size_t page_round(size_t n)
{
	return (n + 4095u) & ~(size_t)4095u;
}

int th__e2e_run_map(const char *path, struct e2e_run *r)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "e2e: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	struct stat sb;
	if (fstat(fd, &sb) || sb.st_size < (off_t)E2E_STATS_OFF) {
		close(fd);
		fprintf(stderr, "e2e: %s: not a run file\n", path);
		return -EINVAL;
	}
	void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	r->h = p;
	r->len = (size_t)sb.st_size;
	if (r->h->magic != E2E_MAGIC) {
		fprintf(stderr, "e2e: %s: bad magic\n", path);
		munmap(p, r->len);
		return -EINVAL;
	}
	r->commit = (_Atomic uint64_t *)((char *)p + r->h->commit_off);
	return 0;
}

struct e2e_sub_stat *th__e2e_stat(const struct e2e_run *r, unsigned idx)
{
	return (struct e2e_sub_stat *)((char *)r->h + E2E_STATS_OFF) + idx;
}

uint64_t *th__e2e_deliver(const struct e2e_run *r, unsigned idx)
{
	return (uint64_t *)((char *)r->h + r->h->deliver_off + (size_t)idx * r->h->deliver_stride);
}

static int cmd_create(int argc, char **argv)
{
	const char *path = NULL;
	unsigned nsubs = 0, groups = 1;
	uint64_t max_seq = 0, keys = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--file") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--groups") && i + 1 < argc)
			groups = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--keys") && i + 1 < argc)
			keys = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--subs") && i + 1 < argc)
			nsubs = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--max-seq") && i + 1 < argc)
			max_seq = strtoull(argv[++i], NULL, 10);
	}
	if (!path || !nsubs || nsubs > E2E_MAX_SUBS || !max_seq) {
		fprintf(stderr, "usage: topohub-bench e2e create --file F --subs N --max-seq M [--keys K --groups G]\n");
		return 2;
	}
	size_t stats = page_round(E2E_STATS_OFF + (size_t)nsubs * sizeof(struct e2e_sub_stat));
	size_t slice = page_round((size_t)(max_seq + 1) * 8);
	size_t commits = page_round((size_t)(max_seq + 1) * 16);
	size_t len = stats + commits + (size_t)nsubs * slice;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)len)) {
		fprintf(stderr, "e2e create: %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct e2e_hdr h = {
		.magic = E2E_MAGIC,
		.nsubs = nsubs,
		.groups = groups,
		.keys = keys,
		.max_seq = max_seq,
		.commit_off = stats,
		.deliver_off = stats + commits,
		.deliver_stride = slice,
	};
	if (pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
		fprintf(stderr, "e2e create: %s: %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}

/* ---- values and the subscriber's checks ------------------------------------ */

void th__e2e_make_value(char *buf, size_t size, uint64_t seq, uint64_t stamp_ns)
{
	char hdr[E2E_VALUE_HDR + 1];
	snprintf(hdr, sizeof hdr, "e2e %012" PRIu64 " %019" PRIu64 " ", seq, stamp_ns);
	memcpy(buf, hdr, E2E_VALUE_HDR);
	memset(buf + E2E_VALUE_HDR, '.', size - E2E_VALUE_HDR);
}

int64_t th__e2e_parse_seq(const char *val, size_t vlen)
{
	if (vlen < E2E_VALUE_HDR || memcmp(val, "e2e ", 4))
		return -1;
	int64_t seq = 0;
	for (int i = 4; i < 16; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -1;
		seq = seq * 10 + (val[i] - '0');
	}
	return seq;
}

int th__e2e_sub_init(struct e2e_sub *s, const struct e2e_sub_opts *o)
{
	memset(s, 0, sizeof *s);
	int rc = th__e2e_run_map(o->file, &s->run);
	if (rc)
		return rc;
	if (o->idx >= s->run.h->nsubs) {
		fprintf(stderr, "e2e sub: index %u out of range\n", o->idx);
		return -EINVAL;
	}
	s->idx = o->idx;
	s->st = th__e2e_stat(&s->run, o->idx);
	s->deliver = th__e2e_deliver(&s->run, o->idx);
	/* Touch our deliver stamps' pages now: a first write to a page of the
	 * run file is a page fault (and in /dev/shm an allocation), which would
	 * count in the latency of the delivery that makes it. A sparse
	 * subscriber, whose sequence numbers are far apart, met one every other
	 * delivery (~10 us in its callback, topohub-trace). */
	for (uint64_t q = 0; q <= s->run.h->max_seq; q += 512)
		((volatile uint64_t *)s->deliver)[q] = 0;
	((volatile uint64_t *)s->deliver)[s->run.h->max_seq] = 0; /* the last page, if partly past the stride */
	s->prefix = o->prefix;
	s->prefix_len = strlen(o->prefix);
	while (s->prefix_len && s->prefix[s->prefix_len - 1] == '/')
		s->prefix_len--;
	if (s->run.h->groups > 1) {
		/* Sparse: this subscriber's own group (bench_e2e.h). */
		snprintf(s->group_prefix, sizeof s->group_prefix, "%.*s/g%04u", (int)s->prefix_len, s->prefix,
			 o->idx % s->run.h->groups);
		s->prefix = s->group_prefix;
		s->prefix_len = strlen(s->group_prefix);
	}
	atomic_store(&s->st->pid, (uint64_t)getpid());
	return 0;
}

bool th__e2e_under_prefix(const struct e2e_sub *s, const char *key, size_t klen)
{
	return klen >= s->prefix_len && !memcmp(key, s->prefix, s->prefix_len) &&
	       (klen == s->prefix_len || key[s->prefix_len] == '/');
}

void th__e2e_deliver_only(struct e2e_sub *s, const char *val, size_t vlen)
{
	uint64_t now = th_now_ns();
	int64_t seq = th__e2e_parse_seq(val, vlen);
	if (seq < 0)
		atomic_fetch_add_explicit(&s->st->errors, 1, memory_order_relaxed);
	if (seq <= 0 || (uint64_t)seq > s->run.h->max_seq)
		return; /* not a value, or the setup's */
	if (!s->deliver[seq])
		s->deliver[seq] = now;
	atomic_fetch_add_explicit(&s->st->received, 1, memory_order_relaxed);
	if ((uint64_t)seq > s->last_seq) {
		s->last_seq = (uint64_t)seq;
		atomic_store_explicit(&s->st->last_seq, (uint64_t)seq, memory_order_release);
	}
}

void th__e2e_value(struct e2e_sub *s, const char *val, size_t vlen)
{
	uint64_t now = th_now_ns();
	int64_t seq = th__e2e_parse_seq(val, vlen);
	if (seq < 0) {
		atomic_fetch_add_explicit(&s->st->errors, 1, memory_order_relaxed);
		return;
	}
	if (seq == 0)
		return; /* the setup value */
	if ((uint64_t)seq > s->run.h->max_seq) {
		atomic_fetch_add_explicit(&s->st->errors, 1, memory_order_relaxed);
		return;
	}
	if ((uint64_t)seq <= s->last_seq) {
		/* Out of order (or a duplicate): counted; a first delivery still
		 * counts as delivered, late. */
		atomic_fetch_add_explicit(&s->st->out_of_order, 1, memory_order_relaxed);
		if (!s->deliver[seq])
			s->deliver[seq] = now;
		return;
	}
	if (!th__e2e_mine(s->run.h, s->idx, (uint64_t)seq)) {
		atomic_fetch_add_explicit(&s->st->errors, 1, memory_order_relaxed); /* not its group's */
		return;
	}
	uint64_t skipped = 0;
	for (uint64_t q = s->last_seq + 1; q < (uint64_t)seq; q++)
		skipped += th__e2e_mine(s->run.h, s->idx, q);
	if (skipped) {
		if (s->after_resync)
			atomic_fetch_add_explicit(&s->st->announced, skipped, memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&s->st->gaps, skipped, memory_order_relaxed);
	}
	s->after_resync = false;
	s->deliver[seq] = now;
	s->last_seq = (uint64_t)seq;
	atomic_fetch_add_explicit(&s->st->received, 1, memory_order_relaxed);
	/* The driver polls last_seq to see when everyone has caught up. */
	atomic_store_explicit(&s->st->last_seq, (uint64_t)seq, memory_order_release);
}

void th__e2e_resync(struct e2e_sub *s, uint32_t reason)
{
	s->after_resync = true;
	uint64_t zero = 0;
	atomic_compare_exchange_strong(&s->st->resync_ns, &zero, th_now_ns());
	atomic_store(&s->st->evicted_reason, reason);
	atomic_fetch_add(&s->st->resyncs, 1);
}

void th__e2e_synced(struct e2e_sub *s)
{
	uint64_t zero = 0;
	if (atomic_load(&s->st->resync_ns))
		atomic_compare_exchange_strong(&s->st->synced_ns, &zero, th_now_ns());
}

void th__e2e_ready(struct e2e_sub *s)
{
	if (atomic_exchange(&s->st->ready, 1) == 0)
		atomic_fetch_add(&s->run.h->ready, 1);
}

bool th__e2e_stopping(const struct e2e_sub *s)
{
	return atomic_load_explicit(&s->run.h->stop, memory_order_acquire) != 0;
}

void th__e2e_error(struct e2e_sub *s, const char *fmt, ...)
{
	atomic_fetch_add(&s->st->errors, 1);
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "e2e sub %u: ", s->idx);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- MySQL ------------------------------------------------------------------ */

int th__e2e_mysql_env(struct e2e_mysql_env *e)
{
	memset(e, 0, sizeof *e);
	e->socket = getenv("E2E_MYSQL_SOCKET");
	e->host = getenv("E2E_MYSQL_HOST");
	const char *port = getenv("E2E_MYSQL_PORT");
	e->port = port ? (unsigned)atoi(port) : 0;
	e->user = getenv("E2E_MYSQL_USER");
	e->password = getenv("TOPOHUB_MYSQL_PASSWORD");
	if (!e->user)
		e->user = "topohub";
	if (!e->socket && !e->host) {
		fprintf(stderr, "e2e: set E2E_MYSQL_SOCKET or E2E_MYSQL_HOST/E2E_MYSQL_PORT\n");
		return -EINVAL;
	}
	return 0;
}

void *th__e2e_mysql_connect(const struct e2e_mysql_env *e, char *err, size_t errlen)
{
	MYSQL *m = mysql_init(NULL);
	if (!m) {
		snprintf(err, errlen, "mysql_init failed");
		return NULL;
	}
	if (!mysql_real_connect(m, e->socket ? NULL : e->host, e->user, e->password, "topo",
				e->socket ? 0 : e->port, e->socket, 0)) {
		snprintf(err, errlen, "connect: %s", mysql_error(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

/* ---- e2e mariadb: a private server for the whole run ------------------------- */

static int cmd_mariadb(int argc, char **argv)
{
	/* Many subscribers of the per-process peers hold two connections each. */
	const char *extra[] = { "--max-connections=1200", "--open-files-limit=8192",
				"--innodb-buffer-pool-size=256M", "--thread-cache-size=600", NULL };
	struct th_mariadb_options o = { .extra_args = extra, .start_timeout_ms = 60000 };
	struct th_mariadb *db;
	char why[1024];
	int rc = th_mariadb_start(&o, &db, why, sizeof why);
	if (rc) {
		fprintf(stderr, "e2e mariadb: %s\n", why);
		return rc == TH_MARIADB_UNAVAILABLE ? 3 : 1;
	}
	if (th_mariadb_create_topo_schema(db, "topo") ||
	    th_mariadb_sql(db, "GRANT INSERT, UPDATE, DELETE ON topo.* TO 'topohub'@'%%'")) {
		fprintf(stderr, "e2e mariadb: %s\n", db->err);
		th_mariadb_stop(db);
		return 1;
	}
	/* The password goes in the same line as the rest: the driver reads it
	 * from our stdout (a pipe), never from a command line. */
	printf("{\"pid\":%d,\"host\":\"%s\",\"port\":%u,\"socket\":\"%s\",\"user\":\"%s\",\"password\":\"%s\","
	       "\"dir\":\"%s\",\"version\":\"%s\",\"startup_ms\":%.1f}\n",
	       (int)db->pid, db->host, db->port, db->socket, db->user, db->password, db->dir, db->version,
	       db->startup_ns / 1e6);
	fflush(stdout);
	char buf[256];
	while (read(0, buf, sizeof buf) > 0)
		;
	th_mariadb_stop(db);
	return 0;
}

/* ---- e2e setup ------------------------------------------------------------- */

struct wopts {
	const char *file;
	const char *prefix;
	const char *etcd;
	unsigned keys;
	unsigned groups;
	size_t size;
	double rate;
	double seconds;
	bool json;
};

static void parse_wopts(int argc, char **argv, struct wopts *o)
{
	memset(o, 0, sizeof *o);
	o->prefix = "/bench/e2e";
	o->keys = 100;
	o->size = 100;
	o->rate = 1000;
	o->seconds = 5;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--json")) {
			o->json = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "e2e: %s needs a value\n", a);
			exit(2);
		}
		i++;
		if (!strcmp(a, "--file"))
			o->file = v;
		else if (!strcmp(a, "--prefix"))
			o->prefix = v;
		else if (!strcmp(a, "--etcd"))
			o->etcd = v;
		else if (!strcmp(a, "--keys"))
			o->keys = (unsigned)atoi(v);
		else if (!strcmp(a, "--groups"))
			o->groups = (unsigned)atoi(v);
		else if (!strcmp(a, "--size"))
			o->size = (size_t)strtoull(v, NULL, 10);
		else if (!strcmp(a, "--rate"))
			o->rate = atof(v);
		else if (!strcmp(a, "--seconds"))
			o->seconds = atof(v);
		else {
			fprintf(stderr, "e2e: unknown option %s\n", a);
			exit(2);
		}
	}
	if (o->size < E2E_VALUE_HDR)
		o->size = E2E_VALUE_HDR;
	if (!o->keys)
		o->keys = 1;
}

static void key_name(char *out, size_t n, const struct wopts *o, unsigned k)
{
	if (o->groups > 1)
		snprintf(out, n, "%s/g%04u/k%05u", o->prefix, k % o->groups, k);
	else
		snprintf(out, n, "%s/k%05u", o->prefix, k);
}

static int setup_mysql(const struct wopts *o)
{
	struct e2e_mysql_env env;
	if (th__e2e_mysql_env(&env))
		return 2;
	char err[512];
	MYSQL *m = th__e2e_mysql_connect(&env, err, sizeof err);
	if (!m) {
		fprintf(stderr, "e2e setup: %s\n", err);
		return 1;
	}
	/* Start from an empty table: the mysqltopo-style peer re-reads all of it. */
	if (mysql_query(m, "DELETE FROM topo_data")) {
		fprintf(stderr, "e2e setup: %s\n", mysql_error(m));
		return 1;
	}
	MYSQL_STMT *st = mysql_stmt_init(m);
	const char *q = "INSERT INTO topo_data (path, data, version) VALUES (?, ?, 1)";
	if (!st || mysql_stmt_prepare(st, q, strlen(q))) {
		fprintf(stderr, "e2e setup: %s\n", mysql_error(m));
		return 1;
	}
	char *val = malloc(o->size);
	char key[512];
	unsigned long klen, vlen = (unsigned long)o->size;
	MYSQL_BIND b[2];
	memset(b, 0, sizeof b);
	b[0].buffer_type = MYSQL_TYPE_STRING;
	b[0].buffer = key;
	b[0].length = &klen;
	b[1].buffer_type = MYSQL_TYPE_BLOB;
	b[1].buffer = val;
	b[1].length = &vlen;
	th__e2e_make_value(val, o->size, 0, 0);
	mysql_stmt_bind_param(st, b);
	for (unsigned k = 0; k < o->keys; k++) {
		key_name(key, sizeof key, o, k);
		klen = strlen(key);
		if (mysql_stmt_execute(st)) {
			fprintf(stderr, "e2e setup: %s\n", mysql_stmt_error(st));
			return 1;
		}
	}
	mysql_stmt_close(st);
	mysql_close(m);
	free(val);
	return 0;
}

static int setup_etcd(const struct wopts *o)
{
	struct e2e_etcd_writer *w;
	if (th__e2e_etcd_writer_new(o->etcd, &w))
		return 1;
	int rc = th__e2e_etcd_delete_prefix(w, "/");
	char *val = malloc(o->size);
	th__e2e_make_value(val, o->size, 0, 0);
	char key[512];
	for (unsigned k = 0; !rc && k < o->keys; k++) {
		key_name(key, sizeof key, o, k);
		rc = th__e2e_etcd_put(w, key, val, o->size);
	}
	free(val);
	th__e2e_etcd_writer_free(w);
	return rc ? 1 : 0;
}

static int cmd_setup(int argc, char **argv)
{
	struct wopts o;
	parse_wopts(argc, argv, &o);
	return o.etcd ? setup_etcd(&o) : setup_mysql(&o);
}

/* ---- e2e writer ------------------------------------------------------------ */

static void sleep_until(uint64_t t)
{
	struct timespec ts = th_ns_to_timespec(t);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint64_t cpu_ns_self(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static int cmd_writer(int argc, char **argv)
{
	struct wopts o;
	parse_wopts(argc, argv, &o);
	if (!o.file) {
		fprintf(stderr, "usage: topohub-bench e2e writer --file F [--etcd URL] --rate R --seconds T "
				"--size S --keys K --prefix P\n");
		return 2;
	}
	struct e2e_run run;
	if (th__e2e_run_map(o.file, &run))
		return 1;
	uint64_t planned = (uint64_t)(o.rate * o.seconds);
	if (planned > run.h->max_seq)
		planned = run.h->max_seq;

	MYSQL *m = NULL;
	MYSQL_STMT *st = NULL;
	struct e2e_etcd_writer *ew = NULL;
	char *val = malloc(o.size);
	char key[512];
	unsigned long klen = 0, vlen = (unsigned long)o.size;
	if (o.etcd) {
		if (th__e2e_etcd_writer_new(o.etcd, &ew))
			return 1;
	} else {
		struct e2e_mysql_env env;
		char err[512];
		if (th__e2e_mysql_env(&env))
			return 2;
		m = th__e2e_mysql_connect(&env, err, sizeof err);
		if (!m) {
			fprintf(stderr, "e2e writer: %s\n", err);
			return 1;
		}
		/* One autocommit statement per update: its return is the commit's. */
		const char *q = "UPDATE topo_data SET data = ?, version = version + 1 WHERE path = ?";
		st = mysql_stmt_init(m);
		if (!st || mysql_stmt_prepare(st, q, strlen(q))) {
			fprintf(stderr, "e2e writer: %s\n", mysql_error(m));
			return 1;
		}
		MYSQL_BIND b[2];
		memset(b, 0, sizeof b);
		b[0].buffer_type = MYSQL_TYPE_BLOB;
		b[0].buffer = val;
		b[0].length = &vlen;
		b[1].buffer_type = MYSQL_TYPE_STRING;
		b[1].buffer = key;
		b[1].length = &klen;
		mysql_stmt_bind_param(st, b);
	}

	/* Wait for every subscriber to have its watch in place. */
	uint64_t wait_until = th_now_ns() + 120ull * 1000000000u;
	while (atomic_load(&run.h->ready) < run.h->nsubs) {
		if (th_now_ns() > wait_until) {
			fprintf(stderr, "e2e writer: only %" PRIu64 " of %u subscribers ready\n",
				(uint64_t)atomic_load(&run.h->ready), run.h->nsubs);
			atomic_store(&run.h->writer_done, 2);
			return 1;
		}
		sleep_until(th_now_ns() + 1000000);
	}

	struct th_hist commit_lat, late;
	th_hist_init(&commit_lat);
	th_hist_init(&late);
	uint64_t period = (uint64_t)(1e9 / o.rate);
	/* A writer the machine cannot keep at the rate stops at 2x its time (+2 s):
	 * it reports the rate it reached. */
	uint64_t cpu0 = cpu_ns_self();
	uint64_t t0 = th_now_ns() + 1000000;
	uint64_t hard_end = t0 + (uint64_t)(o.seconds * 2e9) + 2000000000u;
	atomic_store(&run.h->writer_start_ns, t0);
	uint64_t seq = 0, errors = 0, last_end = t0;
	for (uint64_t i = 0; i < planned; i++) {
		uint64_t due = t0 + i * period;
		uint64_t now = th_now_ns();
		if (now < due)
			sleep_until(due);
		else
			th_hist_add(&late, now - due);
		if (now > hard_end)
			break;
		uint64_t s = seq + 1;
		key_name(key, sizeof key, &o, (unsigned)(i % o.keys));
		klen = strlen(key);
		uint64_t before = th_now_ns();
		th__e2e_make_value(val, o.size, s, before);
		int rc;
		if (ew)
			rc = th__e2e_etcd_put(ew, key, val, o.size);
		else
			rc = mysql_stmt_execute(st) ? -1 : (mysql_stmt_affected_rows(st) == 1 ? 0 : -2);
		uint64_t after = th_now_ns();
		if (rc) {
			if (errors++ < 5)
				fprintf(stderr, "e2e writer: update %" PRIu64 " failed: %s\n", s,
					ew ? "etcd put" : rc == -2 ? "no row" : mysql_stmt_error(st));
			continue;
		}
		seq = s;
		/* Relaxed is enough: collect reads these after the writer exited. */
		atomic_store_explicit(&run.commit[2 * s], before, memory_order_relaxed);
		atomic_store_explicit(&run.commit[2 * s + 1], after, memory_order_relaxed);
		atomic_store_explicit(&run.h->committed_seq, s, memory_order_release);
		th_hist_add(&commit_lat, after - before);
		last_end = after;
	}
	uint64_t cpu = cpu_ns_self() - cpu0;
	atomic_store(&run.h->total, seq);
	atomic_store(&run.h->writer_end_ns, last_end);
	atomic_store_explicit(&run.h->writer_done, 1, memory_order_release);
	double span = (double)(last_end - t0) / 1e9;
	char extra[512];
	snprintf(extra, sizeof extra,
		 "\"system\":\"%s\",\"rate\":%.0f,\"size\":%zu,\"planned\":%" PRIu64 ",\"committed\":%" PRIu64
		 ",\"errors\":%" PRIu64 ",\"achieved_rate\":%.1f,\"late_count\":%" PRIu64
		 ",\"late_p99_ns\":%" PRIu64 ",\"late_max_ns\":%" PRIu64 ",\"writer_cpu_ns\":%" PRIu64,
		 o.etcd ? "etcd" : "mysql", o.rate, o.size, planned, seq, errors, span > 0 ? seq / span : 0.0,
		 late.count, th_hist_quantile(&late, 0.99), late.count ? late.max : 0, cpu);
	th_hist_print_json(stdout, "e2e_writer", extra, &commit_lat);
	if (st)
		mysql_stmt_close(st);
	if (m)
		mysql_close(m);
	th__e2e_etcd_writer_free(ew);
	free(val);
	return errors && !seq ? 1 : 0;
}

/* ---- e2e sub ---------------------------------------------------------------- */

static int cmd_sub(int argc, char **argv)
{
	struct e2e_sub_opts o = { .prefix = "/bench/e2e", .timeout_ms = 0, .wait = "futex" };
	const char *system = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *v = argv[i + 1];
		if (!strcmp(a, "--system"))
			system = v;
		else if (!strcmp(a, "--file"))
			o.file = v;
		else if (!strcmp(a, "--index"))
			o.idx = (unsigned)atoi(v);
		else if (!strcmp(a, "--prefix"))
			o.prefix = v;
		else if (!strcmp(a, "--lib"))
			o.lib = v;
		else if (!strcmp(a, "--hub-socket"))
			o.hub_socket = v;
		else if (!strcmp(a, "--etcd"))
			o.etcd = v;
		else if (!strcmp(a, "--timeout-ms"))
			o.timeout_ms = (unsigned)atoi(v);
		else if (!strcmp(a, "--wait"))
			o.wait = v;
		else if (!strcmp(a, "--spin-ns"))
			o.spin_ns = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--watch") && o.nwatch < E2E_MAX_WATCHES)
			o.watch[o.nwatch++] = v;
		else if (!strcmp(a, "--watch-dir"))
			o.watch_dir = v;
		else {
			fprintf(stderr, "e2e sub: unknown option %s\n", a);
			return 2;
		}
	}
	if (!system || !o.file) {
		fprintf(stderr, "usage: topohub-bench e2e sub --system topohub|socket|mysqltopo|decoder|etcd --file F "
				"--index I [--prefix P] [--lib SO --hub-socket S --timeout-ms T] [--etcd URL]\n"
				"       topohub only: [--watch KEY]... [--watch-dir DIR] instead of the prefix\n");
		return 2;
	}
	struct e2e_sub s;
	if (th__e2e_sub_init(&s, &o))
		return 1;
	/* The driver stops subscribers with the run file's stop flag; SIGTERM is its
	 * fallback for one that is stuck. */
	if (!strcmp(system, "mysqltopo"))
		return th__e2e_sub_mysqltopo(&s, &o);
	if (!strcmp(system, "decoder"))
		return th__e2e_sub_decoder(&s, &o);
	if (!strcmp(system, "etcd"))
		return th__e2e_sub_etcd(&s, &o);
	if (!strcmp(system, "topohub"))
		return th__e2e_sub_topohub(&s, &o);
	if (!strcmp(system, "socket"))
		return th__e2e_sub_socket(&s, &o);
	fprintf(stderr, "e2e sub: unknown system %s\n", system);
	return 2;
}

/* ---- e2e collect ------------------------------------------------------------- */

static int cmd_collect(int argc, char **argv)
{
	const char *path = NULL, *label = NULL;
	bool exclude[E2E_MAX_SUBS] = { false };
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--file"))
			path = argv[i + 1];
		else if (!strcmp(argv[i], "--label"))
			label = argv[i + 1];
		else if (!strcmp(argv[i], "--exclude")) {
			char *p = argv[i + 1];
			while (*p) {
				unsigned long x = strtoul(p, &p, 10);
				if (x < E2E_MAX_SUBS)
					exclude[x] = true;
				if (*p == ',')
					p++;
				else
					break;
			}
		}
	}
	if (!path) {
		fprintf(stderr, "usage: topohub-bench e2e collect --file F [--exclude I,J] [--label JSON-FIELDS]\n");
		return 2;
	}
	struct e2e_run run;
	if (th__e2e_run_map(path, &run))
		return 1;
	const struct e2e_hdr *h = run.h;
	uint64_t total = atomic_load(&run.h->total);
	struct th_hist *hist = malloc(sizeof *hist), *hsend = malloc(sizeof *hsend);
	th_hist_init(hist);
	th_hist_init(hsend);
	uint64_t subs = 0, expected = 0, delivered = 0, missing = 0, before_commit = 0, lost = 0, announced = 0, ooo = 0,
		 errors = 0, resyncs = 0, backlog = 0, caught_up = 0, selects = 0;
	uint64_t first_commit = UINT64_MAX, last_deliver = 0;
	for (uint64_t s = 1; s <= total; s++) {
		uint64_t c = atomic_load(&run.commit[2 * s + 1]);
		if (c && c < first_commit)
			first_commit = c;
	}
	for (unsigned i = 0; i < h->nsubs; i++) {
		if (exclude[i])
			continue;
		subs++;
		const struct e2e_sub_stat *st = th__e2e_stat(&run, i);
		const uint64_t *d = th__e2e_deliver(&run, i);
		uint64_t last = atomic_load(&st->last_seq);
		uint64_t ann = atomic_load(&st->announced), holes = 0;
		announced += ann;
		ooo += atomic_load(&st->out_of_order);
		errors += atomic_load(&st->errors);
		resyncs += atomic_load(&st->resyncs);
		selects += atomic_load(&st->selects);
		uint64_t owed = 0, owed_after = 0; /* the seqs it must see; of them, after its last */
		for (uint64_t s = 1; s <= total; s++)
			if (th__e2e_mine(h, i, s)) {
				owed++;
				owed_after += s > last;
			}
		expected += owed;
		backlog += owed_after;
		caught_up += owed_after == 0;
		for (uint64_t s = 1; s <= total; s++) {
			if (!th__e2e_mine(h, i, s))
				continue;
			if (!d[s]) {
				missing++;
				holes += s <= last;
				continue;
			}
			delivered++;
			uint64_t sent = atomic_load(&run.commit[2 * s]);
			uint64_t c = atomic_load(&run.commit[2 * s + 1]);
			th_hist_add(hsend, d[s] > sent ? d[s] - sent : 0);
			if (d[s] > last_deliver)
				last_deliver = d[s];
			if (d[s] < c) {
				/* The change reached the subscriber before the writer's
				 * COMMIT call returned to it: latency 0. */
				before_commit++;
				th_hist_add(hist, 0);
			} else {
				th_hist_add(hist, d[s] - c);
			}
		}
		/* Holes before the last delivered update that no resync notice
		 * announced: lost. */
		lost += holes > ann ? holes - ann : 0;
	}
	double span = last_deliver > first_commit ? (last_deliver - first_commit) / 1e9 : 0;
	/* Missing = never delivered: lost (without notice), announced skips
	 * (after a resync notice: a resync delivers the current value, not every
	 * step) and the backlog (not yet delivered when the run stopped). */
	bool ok = !lost && !ooo && !errors && !backlog;
	char extra[2048];
	int n = snprintf(extra, sizeof extra,
			 "%s%s\"subs\":%" PRIu64 ",\"updates\":%" PRIu64 ",\"expected\":%" PRIu64
			 ",\"delivered\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"lost\":%" PRIu64
			 ",\"announced_skips\":%" PRIu64 ",\"backlog\":%" PRIu64 ",\"out_of_order\":%" PRIu64
			 ",\"errors\":%" PRIu64 ",\"resyncs\":%" PRIu64 ",\"caught_up\":%" PRIu64
			 ",\"before_commit_return\":%" PRIu64 ",\"selects\":%" PRIu64
			 ",\"deliveries_per_s\":%.1f,\"from_send_p50_ns\":%" PRIu64 ",\"from_send_p99_ns\":%" PRIu64
			 ",\"ok\":%s,\"cdf\":[",
			 label ? label : "", label ? "," : "", subs, total, expected, delivered, missing, lost,
			 announced, backlog, ooo, errors, resyncs, caught_up, before_commit, selects,
			 span > 0 ? delivered / span : 0.0, th_hist_quantile(hsend, 0.5), th_hist_quantile(hsend, 0.99),
			 ok ? "true" : "false");
	static const double qs[] = { 0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
				     0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0 };
	for (size_t i = 0; i < sizeof qs / sizeof qs[0] && n > 0 && (size_t)n < sizeof extra; i++)
		n += snprintf(extra + n, sizeof extra - (size_t)n, "%s[%g,%" PRIu64 "]", i ? "," : "", qs[i],
			      qs[i] >= 1.0 ? hist->max : th_hist_quantile(hist, qs[i]));
	if (n > 0 && (size_t)n < sizeof extra)
		snprintf(extra + n, sizeof extra - (size_t)n, "]");
	th_hist_print_json(stdout, "e2e_latency", extra, hist);
	/* Per subscriber, for the fault scenarios. */
	for (unsigned i = 0; i < h->nsubs; i++) {
		if (!exclude[i])
			continue;
		const struct e2e_sub_stat *st = th__e2e_stat(&run, i);
		printf("{\"name\":\"e2e_sub\",%s%s\"index\":%u,\"last_seq\":%" PRIu64 ",\"received\":%" PRIu64
		       ",\"gaps\":%" PRIu64 ",\"announced_skips\":%" PRIu64 ",\"out_of_order\":%" PRIu64
		       ",\"resyncs\":%" PRIu64 ",\"resync_ns\":%" PRIu64 ",\"synced_ns\":%" PRIu64
		       ",\"resync_reason\":%" PRIu64 ",\"updates\":%" PRIu64 "}\n",
		       label ? label : "", label ? "," : "", i, (uint64_t)atomic_load(&st->last_seq),
		       (uint64_t)atomic_load(&st->received), (uint64_t)atomic_load(&st->gaps),
		       (uint64_t)atomic_load(&st->announced), (uint64_t)atomic_load(&st->out_of_order),
		       (uint64_t)atomic_load(&st->resyncs), (uint64_t)atomic_load(&st->resync_ns),
		       (uint64_t)atomic_load(&st->synced_ns), (uint64_t)atomic_load(&st->evicted_reason), total);
	}
	free(hist);
	free(hsend);
	return 0;
}

/* ---- dispatcher -------------------------------------------------------------- */

int th__bench_e2e(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int, char **);
	} cmds[] = {
		{ "mariadb", cmd_mariadb }, { "create", cmd_create }, { "setup", cmd_setup },
		{ "writer", cmd_writer },   { "sub", cmd_sub },       { "collect", cmd_collect },
	};
	if (argc >= 2)
		for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
			if (!strcmp(argv[1], cmds[i].name))
				return cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "usage: topohub-bench e2e mariadb|create|setup|writer|sub|collect ...\n"
			"  the end-to-end suite is run by bench/e2e/run.py (see bench/README.md)\n");
	return 2;
}
