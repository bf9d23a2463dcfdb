/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for topohubd against hostile peers (issue 13; doc/DESIGN.md,
 * "What a reader can never do"): a reader that abuses what it was handed
 * (slot page, wake-up descriptor, control socket), clients that flood the
 * socket or hoard snapshots, a server that asks for the password in clear
 * text. The real hub binary against a private MariaDB; every test starts a
 * hub of its own, so that one a test wedges cannot fail the next.
 *
 * The slot page layout below is ring.c's (private to the ring; a hostile
 * reader knows it anyway): the tests write into it as an attacker would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol/protocol.h"
#include "shm/ring.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "tests/support/hub_check.h"
#include "tests/support/hub_proc.h"
#include "tests/support/mariadb.h"

/* ring.c's slot page (see its layout comment). */
#define SLOT_READ_POS 0
#define SLOT_SLEEP_WORD 64
#define SLOT_EVICT_ACK 68
#define SLOT_TIMEOUT_NS 72
#define SLOT_FILTER_WORD 80
#define SLOT_WAKE_ANY 84
#define SLOT_FILTER 128
#define SLOT_EVICT_SEQ 192
#define SLOT_WAKE_SEQ 204
#define SLOT_SKIP_SEQ 256
#define SLOT_SKIP_TO 272

struct shared {
	struct th_mariadb *db;
	char why[2048];
};

static int setup(void **state)
{
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return -1;
	*state = sh;
	int rc = th_mariadb_start(NULL, &sh->db, sh->why, sizeof sh->why);
	if (rc != 0) {
		if (rc < 0)
			fprintf(stderr, "th_mariadb_start: %s: %s\n", th_errname(rc), sh->why);
		sh->db = NULL;
		return 0;
	}
	if (th_mariadb_create_topo_schema(sh->db, NULL) != 0) {
		snprintf(sh->why, sizeof sh->why, "topo schema: %s", sh->db->err);
		th_mariadb_stop(sh->db);
		sh->db = NULL;
	}
	return 0;
}

static int teardown(void **state)
{
	struct shared *sh = *state;
	th_mariadb_stop(sh->db);
	free(sh);
	return 0;
}

static struct shared *need(void **state)
{
	struct shared *sh = *state;
	if (!sh->db) {
		print_message("skip: %s\n", sh->why[0] ? sh->why : "no MariaDB");
		skip();
	}
	return sh;
}

static void sql(struct shared *sh, const char *q)
{
	if (th_mariadb_sql(sh->db, "%s", q) != 0)
		fail_msg("%s: %s", q, sh->db->err);
}

static const char *const base_args[] = { "--reader-timeout-min-ms=5", "--monitor-interval-us=500", NULL };

static struct th_hub_proc *hub_start(struct shared *sh, const char *const *args, const char *extra_config)
{
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .extra_args = args ? args : base_args,
					 .extra_config = extra_config };
	struct th_hub_proc *h;
	char why[2048];
	if (th_hub_proc_start(&o, &h, why, sizeof why) < 0)
		fail_msg("hub: %s", why);
	return h;
}

/* SIGTERM, and the hub must be gone within 10 s with status 0 (then freed). */
static void hub_stop_checked(struct th_hub_proc *h)
{
	assert_int_equal(kill(h->pid, SIGTERM), 0);
	int st = 0;
	int rc = th_hub_proc_wait(h, 10000, &st);
	char tail[3000];
	if (rc != 0)
		fail_msg("the hub did not stop within 10 s of SIGTERM: %s", th_hub_proc_log_tail(h, tail, sizeof tail));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || th_hub_proc_sanitizer_report(h))
		fail_msg("hub ended badly (status 0x%x): %s", st, th_hub_proc_log_tail(h, tail, sizeof tail));
	th_hub_proc_free(h);
}

static void open_reader(struct th_hub_proc *h, struct th_test_reader *tr, uint64_t timeout_ns, const char *name)
{
	char why[512];
	if (th_test_reader_open(tr, h->socket, timeout_ns, name, why, sizeof why) != 0)
		fail_msg("%s", why);
}

static void next_rec(struct th_test_reader *tr, struct th_test_rec *r, int wait_ms)
{
	int rc = th_test_reader_next(tr, r, wait_ms);
	if (rc != 1)
		fail_msg("no record from the ring within %d ms: %s", wait_ms, rc ? th_strerror(rc) : "timeout");
}

/* A JSON number after "key": in text (first occurrence after from), or UINT64_MAX. */
static uint64_t json_u64(const char *text, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(text, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
}

static uint64_t stat_u64(struct th_hub_proc *h, const char *key)
{
	struct th_ctl *c;
	if (th_ctl_connect(h->socket, &c) != 0)
		fail_msg("connect %s", h->socket);
	char *json;
	if (th_ctl_json(c, TH_MSG_STATS, &json) != 0)
		fail_msg("STATS: %s", th_ctl_error(c));
	uint64_t v = json_u64(json, key);
	free(json);
	th_ctl_close(c);
	if (v == UINT64_MAX)
		fail_msg("no %s in STATS", key);
	return v;
}

/* An attacker: the three descriptors as handed over, the slot mapped by hand. */
struct attacker {
	struct th_ctl *c;
	struct th_msg_attach_reply att;
	struct th_ring_reader_fds fds;
	struct th_ring_reader *r;        /* a ring reader on the same descriptors */
	uint8_t *slot;                   /* read-write */
};

/* 0, or a negative code with why (no cmocka calls: used from threads too). */
static int attacker_try_open(struct th_hub_proc *h, struct attacker *a, uint64_t timeout_ns, char *why, size_t len)
{
	memset(a, 0, sizeof *a);
	int rc = th_ctl_connect(h->socket, &a->c);
	if (rc != 0) {
		snprintf(why, len, "connect: %s", th_strerror(rc));
		return rc;
	}
	rc = th_ctl_attach(a->c, timeout_ns, (uint32_t)getpid(), "attacker", &a->att, &a->fds, 5000);
	if (rc != 0) {
		snprintf(why, len, "ATTACH: %s", th_strerror(rc));
		th_ctl_close(a->c);
		return rc;
	}
	char err[200];
	if ((rc = th_ring_reader_open(&a->fds, &a->r, err, sizeof err)) != 0) {
		snprintf(why, len, "open: %.200s", err);
		return rc;
	}
	a->slot = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, a->fds.slot_fd, 0);
	if (a->slot == MAP_FAILED) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void attacker_open(struct th_hub_proc *h, struct attacker *a, uint64_t timeout_ns)
{
	char why[256];
	if (attacker_try_open(h, a, timeout_ns, why, sizeof why) != 0)
		fail_msg("attacker: %s", why);
}

static void attacker_close(struct attacker *a)
{
	th_ring_reader_close(a->r);
	munmap(a->slot, 4096);
	close(a->fds.ring_fd);
	close(a->fds.slot_fd);
	close(a->fds.event_fd);
	th_ctl_close(a->c);
}

static _Atomic uint32_t *slot32(struct attacker *a, size_t off)
{
	return (_Atomic uint32_t *)(void *)(a->slot + off);
}

static _Atomic uint64_t *slot64(struct attacker *a, size_t off)
{
	return (_Atomic uint64_t *)(void *)(a->slot + off);
}

/* ---- 1: a wake-up descriptor the reader made blocking ------------------- */

/* The attacker's thread: from armed to armed again after every commit,
 * never draining its wake-up descriptor, so that each commit the hub sees
 * it asleep writes one more byte into it. */
struct arming {
	struct attacker *a;
	_Atomic int stop;
	_Atomic unsigned long arms;
};

static void *arming_main(void *arg)
{
	struct arming *m = arg;
	static uint8_t b[1 << 16];
	struct th_ring_record rr;
	while (!atomic_load(&m->stop)) {
		while (th_ring_read(m->a->r, &rr, b, sizeof b) == 1)
			;
		if (th_ring_reader_arm(m->a->r) != 0)
			continue; /* a commit came meanwhile: read it first */
		atomic_fetch_add(&m->arms, 1);
		/* Armed: wait for the next commit (it wrote a byte), not reading the fd. */
		while (!atomic_load(&m->stop) && th_ring_read(m->a->r, &rr, b, sizeof b) == 0)
			sched_yield();
	}
	return NULL;
}

static void test_hostile__a_reader_that_blocks_its_wakeup_fd_stops_nothing(void **state)
{
	struct shared *sh = need(state);
	struct th_hub_proc *h = hub_start(sh, NULL, NULL);
	sql(sh, "DELETE FROM topo.topo_data WHERE path LIKE '/blockfd/%'");
	struct th_test_reader honest;
	open_reader(h, &honest, 120ull * 1000000000u, "honest");
	struct attacker a;
	attacker_open(h, &a, 120ull * 1000000000u);
	/* What the issue did: clear O_NONBLOCK on the shared description and
	 * fill an eventfd's counter to its maximum, then sleep in fd mode and
	 * never read. (On a descriptor that is not an eventfd the write fails;
	 * the flag change is still made.) */
	int fl = fcntl(a.fds.event_fd, F_GETFL);
	assert_true(fl >= 0);
	assert_int_equal(fcntl(a.fds.event_fd, F_SETFL, fl & ~O_NONBLOCK), 0);
	uint64_t max = 0xfffffffffffffffeull;
	ssize_t wr = write(a.fds.event_fd, &max, sizeof max);
	(void)wr;
	/* Then more than a pipe's worth of wake-ups, never drained: commits in
	 * batches (each statement is its own transaction), the attacker armed
	 * again after each, until its descriptor holds a full pipe (a page)
	 * and more commits found it so. */
	struct arming m = { .a = &a };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, arming_main, &m), 0);
	enum { BATCH = 500 };
	static char q[BATCH * 160];
	int full_at = -1, commits = 0;
	uint64_t until = th_now_ns() + 60000ull * 1000000;
	for (int round = 0; th_now_ns() < until && (full_at < 0 || round < full_at + 2); round++) {
		size_t off = 0;
		for (int i = 0; i < BATCH; i++, commits++)
			off += (size_t)snprintf(q + off, sizeof q - off,
						"INSERT INTO topo.topo_data (path, data) VALUES ('/blockfd/%d', 'v') "
						"ON DUPLICATE KEY UPDATE data = '%d';",
						commits % 64, commits);
		sql(sh, q);
		/* The honest reader keeps up with everything. */
		struct th_test_rec r;
		while (th_test_reader_next(&honest, &r, 0) == 1)
			th_test_rec_free(&r);
		int queued = 0;
		assert_int_equal(ioctl(a.fds.event_fd, FIONREAD, &queued), 0);
		if (full_at < 0 && queued >= 4096)
			full_at = round;
	}
	atomic_store(&m.stop, 1);
	pthread_join(t, NULL);
	int queued = 0;
	assert_int_equal(ioctl(a.fds.event_fd, FIONREAD, &queued), 0);
	print_message("%d commits, the attacker armed %lu times; %d wake-up bytes wait unread in its descriptor "
		      "(full after round %d)\n", commits, atomic_load(&m.arms), queued, full_at);
	if (full_at < 0)
		fail_msg("the wake-up pipe never filled (%d bytes after %d commits): the test proves nothing", queued,
			 commits);
	/* The hub goes on publishing to the honest reader... */
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/blockfd/last', 'v')");
	struct th_test_rec r;
	for (;;) {
		next_rec(&honest, &r, 5000);
		bool last = !strcmp(r.key, "/blockfd/last");
		th_test_rec_free(&r);
		if (last)
			break;
	}
	/* ...the control thread answers, the monitor too (READERS takes its lock)... */
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(h->socket, &c), 0);
	char *json;
	assert_int_equal(th_ctl_json(c, TH_MSG_READERS, &json), 0);
	assert_non_null(strstr(json, "\"attacker\""));
	free(json);
	assert_int_equal(th_ctl_json(c, TH_MSG_STATS, &json), 0);
	assert_true(json_u64(json, "transactions") >= (uint64_t)commits);
	free(json);
	th_ctl_close(c);
	th_test_reader_close(&honest);
	/* ...and SIGTERM stops it within its bound. */
	hub_stop_checked(h);
	attacker_close(&a);
}

/* ---- 2: eviction ping-pong ------------------------------------------------ */

struct sleeper {
	struct th_test_reader *tr;
	pid_t tid;
	_Atomic int started;
	long switches;   /* voluntary context switches during the wait */
	int rc;
};

static long ctxt_switches(pid_t tid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "re");
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void *sleeper_main(void *arg)
{
	struct sleeper *s = arg;
	s->tid = (pid_t)syscall(SYS_gettid);
	long before = ctxt_switches(s->tid);
	atomic_store(&s->started, 1);
	s->rc = th_ring_wait(s->tr->r, TH_RING_WAIT_FUTEX, 1500ll * 1000000, 0);
	s->switches = ctxt_switches(s->tid) - before;
	return NULL;
}

static void test_hostile__reacknowledging_an_eviction_without_moving_counts_once_and_wakes_no_one(void **state)
{
	struct shared *sh = need(state);
	struct th_hub_proc *h = hub_start(sh, NULL, NULL);
	struct th_test_reader honest;
	open_reader(h, &honest, 10ull * 1000000000u, "honest");
	struct attacker a;
	attacker_open(h, &a, 10ull * 1000000);
	uint64_t ev0 = stat_u64(h, "evictions");
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/pingpong', 'v')");
	struct th_test_rec r;
	next_rec(&honest, &r, 5000);
	th_test_rec_free(&r);
	/* The attacker reads nothing: evicted after 10 ms. */
	for (int i = 0; i < 3000 && atomic_load(slot32(&a, SLOT_EVICT_SEQ)) == 0; i++)
		usleep(1000);
	assert_int_not_equal(atomic_load(slot32(&a, SLOT_EVICT_SEQ)), 0);
	/* The honest reader sleeps on the futex while the attacker, for 1.5 s,
	 * acknowledges every eviction it sees without moving. */
	struct sleeper s = { .tr = &honest };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, sleeper_main, &s), 0);
	while (!atomic_load(&s.started))
		usleep(100);
	uint64_t end = th_now_ns() + 1500ull * 1000000;
	unsigned acks = 0;
	while (th_now_ns() < end) {
		uint32_t seq = atomic_load(slot32(&a, SLOT_EVICT_SEQ));
		if (atomic_load(slot32(&a, SLOT_EVICT_ACK)) != seq) {
			atomic_store(slot32(&a, SLOT_EVICT_ACK), seq);
			acks++;
		}
		usleep(100);
	}
	pthread_join(t, NULL);
	uint64_t evictions = stat_u64(h, "evictions") - ev0;
	print_message("acknowledgments %u, evictions %" PRIu64 ", the sleeper's voluntary context switches %ld "
		      "(wait returned %d)\n", acks, evictions, s.switches, s.rc);
	assert_int_equal(evictions, 1);
	assert_int_equal(s.rc, 0);
	assert_true(s.switches >= 0 && s.switches <= 5);
	/* READERS counts its evictions from the hub's side, not from the slot. */
	atomic_store(slot32(&a, SLOT_EVICT_SEQ + 8), 777777); /* the slot's "evictions" mirror */
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(h->socket, &c), 0);
	char *json;
	assert_int_equal(th_ctl_json(c, TH_MSG_READERS, &json), 0);
	assert_null(strstr(json, "777777"));
	free(json);
	th_ctl_close(c);
	th_test_reader_close(&honest);
	attacker_close(&a);
	hub_stop_checked(h);
}

/* ---- 8: lag from a position the reader chose ------------------------------- */

static void test_hostile__a_read_position_inside_a_record_changes_no_ones_lag(void **state)
{
	struct shared *sh = need(state);
	struct th_hub_proc *h = hub_start(sh, NULL, NULL);
	struct th_test_reader honest;
	open_reader(h, &honest, 10ull * 1000000000u, "honest");
	struct attacker a;
	attacker_open(h, &a, 60ull * 1000000000u);
	/* A record whose payload is mostly zero bytes: read as a publish time,
	 * any word of it is "published at boot". */
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/lag/zeros', REPEAT(CHAR(0), 8192))");
	struct th_test_rec r;
	next_rec(&honest, &r, 5000);
	th_test_rec_free(&r);
	/* Inside the record, 8-aligned, deep in the zeros. */
	atomic_store(slot64(&a, SLOT_READ_POS), a.att.start_pos + 4096);
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(h->socket, &c), 0);
	for (int i = 0; i < 20; i++) {
		char *json;
		assert_int_equal(th_ctl_json(c, TH_MSG_STATS, &json), 0);
		uint64_t max_lag = json_u64(json, "max_lag_ns");
		free(json);
		assert_int_equal(th_ctl_json(c, TH_MSG_READERS, &json), 0);
		/* Every reader's lag_ns is bounded by the test's own duration. */
		for (const char *p = strstr(json, "\"lag_ns\":"); p; p = strstr(p + 1, "\"lag_ns\":")) {
			uint64_t v = strtoull(p + 9, NULL, 10);
			if (v > 10ull * 1000000000u)
				fail_msg("a reader shows a lag of %.1f s: %s", (double)v / 1e9, json);
		}
		free(json);
		if (max_lag > 10ull * 1000000000u)
			fail_msg("max_lag_ns %.1f s from a bogus position", (double)max_lag / 1e9);
		usleep(10000);
	}
	th_ctl_close(c);
	/* The honest reader is unaffected and still served. */
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/lag/after', 'x')");
	next_rec(&honest, &r, 5000);
	assert_string_equal(r.key, "/lag/after");
	th_test_rec_free(&r);
	th_test_reader_close(&honest);
	attacker_close(&a);
	hub_stop_checked(h);
}

/* ---- 8: a reader that hides its own lag ------------------------------------- */

static void test_hostile__a_reader_that_hides_its_lag_is_not_evicted_and_finds_itself_lapped(void **state)
{
	struct shared *sh = need(state);
	struct th_hub_proc *h = hub_start(sh, NULL, NULL);
	sql(sh, "DELETE FROM topo.topo_data WHERE path LIKE '/hide/%'");
	struct th_test_reader honest;
	open_reader(h, &honest, 30ull * 1000000000u, "honest");
	struct attacker a;
	attacker_open(h, &a, 50ull * 1000000); /* a 50 ms timeout, and it never reads */
	uint64_t ev0 = stat_u64(h, "evictions");
	/* 5 MB through a ring of 4 MB while the attacker writes the head as its
	 * position (the hub's lag reports read it; its reader keeps its own). */
	static char q[1 << 10];
	for (int i = 0; i < 6; i++) {
		snprintf(q, sizeof q,
			 "INSERT INTO topo.topo_data (path, data) VALUES ('/hide/%d', REPEAT('x', 900000))", i);
		sql(sh, q);
		for (int k = 0; k < 20; k++) {
			atomic_store(slot64(&a, SLOT_READ_POS), th_ring_reader_head(a.r));
			usleep(10000);
		}
		struct th_test_rec r;
		next_rec(&honest, &r, 5000);
		th_test_rec_free(&r);
	}
	/* Shown caught up, never evicted: 1.2 s without reading, past 24 of its timeouts. */
	atomic_store(slot64(&a, SLOT_READ_POS), th_ring_reader_head(a.r));
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(h->socket, &c), 0);
	char *json;
	assert_int_equal(th_ctl_json(c, TH_MSG_READERS, &json), 0);
	const char *me = strstr(json, "\"attacker\"");
	assert_non_null(me);
	uint64_t lag_bytes = json_u64(me, "lag_bytes");
	free(json);
	th_ctl_close(c);
	uint64_t evictions = stat_u64(h, "evictions") - ev0;
	/* Its own reader finds what it skipped overwritten: lapped, with certainty. */
	struct th_ring_record rr;
	static uint8_t b[1 << 20];
	int rc = th_ring_read(a.r, &rr, b, sizeof b);
	print_message("the liar: lag_bytes %" PRIu64 " in READERS, %" PRIu64 " evictions; its next read: %s\n", lag_bytes,
		      evictions, th_strerror(rc));
	assert_int_equal(lag_bytes, 0);
	assert_int_equal(evictions, 0);
	assert_int_equal(rc, -TH_ELAPPED);
	/* The honest reader was served all along and still is. */
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/hide/after', 'v')");
	struct th_test_rec r;
	next_rec(&honest, &r, 5000);
	assert_string_equal(r.key, "/hide/after");
	th_test_rec_free(&r);
	th_test_reader_close(&honest);
	attacker_close(&a);
	hub_stop_checked(h);
}

/* ---- 3: the open-file limit ----------------------------------------------- */

static double hub_cpu_s(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long ut = 0, st = 0;
	/* after ") ": state(3) ... utime is field 14, stime 15 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* kill(SIGSTOP) returns before the process has stopped: its threads stop
 * as each is next scheduled. Wait until every one is in state 'T'. */
static void wait_all_stopped(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
	for (int tries = 0; tries < 5000; tries++) {
		DIR *d = opendir(dir);
		assert_non_null(d);
		bool all = true;
		struct dirent *e;
		while (all && (e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char path[400], buf[512];
			snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
			FILE *f = fopen(path, "re");
			if (!f)
				continue; /* a thread that just ended */
			size_t n = fread(buf, 1, sizeof buf - 1, f);
			fclose(f);
			buf[n] = '\0';
			const char *p = strrchr(buf, ')');
			all = p && (p[2] == 'T' || p[2] == 't');
		}
		closedir(d);
		if (all)
			return;
		usleep(1000);
	}
	fail_msg("process %d did not stop within 5 s of SIGSTOP", (int)pid);
}

static int nb_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un ad = { .sun_family = AF_UNIX };
	snprintf(ad.sun_path, sizeof ad.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&ad, sizeof ad) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* The test opens n descriptors: its soft limit is raised to the hard one
 * first (a shell's 1024 is common), and the test skips, saying why, when even
 * the hard limit is below n. */
static void need_nofile(rlim_t n)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < n && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	if (rl.rlim_cur < n) {
		print_message("skip: the test needs %llu descriptors; the hard open-file limit is %llu (ulimit -Hn)\n",
			      (unsigned long long)n, (unsigned long long)rl.rlim_max);
		skip();
	}
}

/* An allowed client gets STATS within wait_ms (retrying). */
static bool served_within(struct th_hub_proc *h, int wait_ms)
{
	uint64_t end = th_now_ns() + (uint64_t)wait_ms * 1000000u;
	do {
		struct th_ctl *c;
		if (th_ctl_connect(h->socket, &c) == 0) {
			char *json;
			int rc = th_ctl_json(c, TH_MSG_STATS, &json);
			th_ctl_close(c);
			if (rc == 0) {
				free(json);
				return true;
			}
		}
		usleep(20000);
	} while (th_now_ns() < end);
	return false;
}

static void test_hostile__1100_connections_under_an_open_file_limit_of_1024_make_no_busy_loop(void **state)
{
	struct shared *sh = need(state);
	need_nofile(1300);
	static const char *const args[] = { "--reader-timeout-min-ms=5", "--idle-timeout-ms=500", NULL };
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .extra_args = args, .nofile_limit = 1024 };
	struct th_hub_proc *h;
	char why[2048];
	if (th_hub_proc_start(&o, &h, why, sizeof why) < 0)
		fail_msg("hub: %s", why);
	int fds[1100], n = 0;
	/* The backlog (512) fills faster than any hub accepts: retry on EAGAIN. */
	uint64_t until = th_now_ns() + 3000ull * 1000000;
	while (n < 1100 && th_now_ns() < until) {
		int fd = nb_connect(h->socket);
		if (fd >= 0)
			fds[n++] = fd;
		else if (fd == -EAGAIN)
			usleep(1000);
		else
			fail_msg("connect: %s", strerror(-fd));
	}
	usleep(300000);
	double c0 = hub_cpu_s(h->pid);
	usleep(1000000);
	double used = hub_cpu_s(h->pid) - c0;
	print_message("%d connections made; the hub used %.3f s of CPU in 1 s\n", n, used);
	assert_true(c0 >= 0);
	assert_true(used < 0.3);
	assert_true(served_within(h, 5000));
	for (int i = 0; i < n; i++)
		close(fds[i]);
	hub_stop_checked(h);
}

/* ---- 4: refused peers ------------------------------------------------------ */

/* An ERROR reply with code, then the end of the connection, on fd within
 * the deadline (CLOCK_MONOTONIC ns)? */
static bool answered_then_closed(int fd, int code, uint64_t deadline)
{
	uint8_t b[512];
	for (int step = 0; step < 2; step++) {
		uint64_t now = th_now_ns();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) != 1)
			return false;
		ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
		if (step == 1)
			return n == 0; /* the hub closed it */
		struct th_msg_hdr hdr;
		struct th_msg_error e;
		if (n < (ssize_t)(sizeof hdr + sizeof e))
			return false;
		memcpy(&hdr, b, sizeof hdr);
		memcpy(&e, b + sizeof hdr, sizeof e);
		if (hdr.type != TH_MSG_ERROR || e.code != code)
			return false;
	}
	return false;
}

static void test_hostile__4200_refused_connections_leave_room_for_an_allowed_client(void **state)
{
	struct shared *sh = need(state);
	if (geteuid() != 0) {
		print_message("skip: needs root to connect as another uid\n");
		skip();
	}
	struct th_hub_proc *h = hub_start(sh, NULL, NULL);
	/* One allowed connection, open throughout: the only one counted. */
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(h->socket, &c), 0);
	char *json;
	assert_int_equal(th_ctl_json(c, TH_MSG_STATS, &json), 0);
	free(json);
	int go[2], done[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe2(done, O_NONBLOCK), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit lim = { 8192, 8192 };
		setrlimit(RLIMIT_NOFILE, &lim);
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(1);
		static int fds[4200];
		int n = 0;
		uint64_t until = th_now_ns() + 20000ull * 1000000;
		while (n < 4200 && th_now_ns() < until) {
			int fd = nb_connect(h->socket);
			if (fd >= 0)
				fds[n++] = fd;
			else if (fd == -EAGAIN)
				usleep(1000); /* the backlog is full: let the hub accept */
			else
				break;
		}
		/* Each one is answered -EACCES and then closed by the hub. */
		int closed = 0;
		uint64_t deadline = th_now_ns() + 10000ull * 1000000;
		for (int i = 0; i < n; i++)
			closed += answered_then_closed(fds[i], -EACCES, deadline);
		int out[2] = { n, closed };
		if (write(done[1], out, sizeof out) != sizeof out)
			_exit(2);
		char b;
		if (read(go[0], &b, 1) < 0)
			_exit(3);
		_exit(0); /* holds every descriptor until told */
	}
	/* While the flood lasts, the hub counts one client: this one. */
	int got[2] = { -1, -1 };
	uint64_t clients_max = 0, samples = 0;
	uint64_t until = th_now_ns() + 30000ull * 1000000;
	while (th_now_ns() < until && read(done[0], got, sizeof got) != (ssize_t)sizeof got) {
		assert_int_equal(th_ctl_json(c, TH_MSG_STATS, &json), 0);
		uint64_t n = json_u64(json, "clients");
		free(json);
		if (n > clients_max)
			clients_max = n;
		samples++;
		usleep(20000);
	}
	assert_int_equal(th_ctl_json(c, TH_MSG_STATS, &json), 0);
	uint64_t clients = json_u64(json, "clients"), refused = json_u64(json, "refused");
	free(json);
	bool ok = served_within(h, 5000);
	print_message("%d refused connections made, %d of them answered -EACCES and closed; clients %" PRIu64
		      " (at most %" PRIu64 " in %" PRIu64 " samples during the flood), refused %" PRIu64 "\n",
		      got[0], got[1], clients, clients_max, samples, refused);
	assert_int_equal(write(go[1], "x", 1), 1);
	int st;
	waitpid(pid, &st, 0);
	close(go[0]), close(go[1]), close(done[0]), close(done[1]);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(got[0], 4200);
	assert_int_equal(got[1], got[0]);
	assert_int_equal(refused, (uint64_t)got[0]);
	assert_int_equal(clients, 1);
	assert_true(clients_max <= 1);
	assert_true(ok);
	th_ctl_close(c);
	hub_stop_checked(h);
}

/* ---- the control socket's other limits --------------------------------------- */

/* Has the peer closed fd (end of file now, without waiting)? Replies are
 * skipped. */
static bool peer_closed(int fd)
{
	uint8_t b[512];
	for (;;) {
		ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
		if (n == 0)
			return true;
		if (n < 0)
			return errno != EAGAIN && errno != EINTR;
	}
}

static void test_hostile__an_idle_connection_is_closed_and_a_busy_or_attached_one_is_not(void **state)
{
	struct shared *sh = need(state);
	static const char *const args[] = { "--reader-timeout-min-ms=5", "--idle-timeout-ms=300", NULL };
	struct th_hub_proc *h = hub_start(sh, args, NULL);
	uint64_t t0 = th_now_ns();
	int idle = nb_connect(h->socket);
	assert_true(idle >= 0);
	struct th_ctl *busy;
	assert_int_equal(th_ctl_connect(h->socket, &busy), 0);
	struct th_test_reader attached; /* silent on its socket, but a reader */
	open_reader(h, &attached, 60ull * 1000000000u, "attached");
	uint64_t closed_after = 0;
	while (th_now_ns() - t0 < 1500ull * 1000000) {
		char *json;
		assert_int_equal(th_ctl_json(busy, TH_MSG_STATS, &json), 0);
		free(json);
		if (!closed_after && peer_closed(idle))
			closed_after = th_now_ns() - t0;
		usleep(100000);
	}
	print_message("the idle connection was closed after %.0f ms (idle_timeout_ms 300)\n", (double)closed_after / 1e6);
	assert_true(closed_after >= 300ull * 1000000);
	/* Within the timeout and two of the scan's ticks (100 ms each), and our own 100 ms poll. */
	assert_true(closed_after <= 300ull * 1000000 + 300ull * 1000000 + 200ull * 1000000);
	/* The busy one and the attached reader stay, after 1.5 s of the attached one's silence. */
	assert_false(peer_closed(th_ctl_fd(busy)));
	assert_false(peer_closed(th_ctl_fd(attached.c)));
	char *json;
	assert_int_equal(th_ctl_json(busy, TH_MSG_READERS, &json), 0);
	assert_non_null(strstr(json, "\"attached\""));
	free(json);
	close(idle);
	th_ctl_close(busy);
	th_test_reader_close(&attached);
	hub_stop_checked(h);
}

/* Connects and asks STATS: 0, or the hub's code (its text in why). */
static int stats_once(const char *socket, struct th_ctl **keep, char *why, size_t len)
{
	struct th_ctl *c;
	int rc = th_ctl_connect(socket, &c);
	if (rc != 0) {
		snprintf(why, len, "connect: %s", th_strerror(rc));
		return rc;
	}
	char *json;
	rc = th_ctl_json(c, TH_MSG_STATS, &json);
	if (rc == 0) {
		free(json);
		*keep = c;
		return 0;
	}
	snprintf(why, len, "%s", th_ctl_error(c));
	th_ctl_close(c);
	return rc;
}

static void test_hostile__max_clients_per_uid_refuses_one_more_of_a_uid_and_not_another_uid(void **state)
{
	struct shared *sh = need(state);
	if (geteuid() != 0) {
		print_message("skip: needs root to connect as another uid\n");
		skip();
	}
	static const char *const args[] = { "--reader-timeout-min-ms=5", "--max-clients-per-uid=4",
					    "--allow-uids=65534", NULL };
	struct th_hub_proc *h = hub_start(sh, args, NULL);
	struct th_ctl *mine[5] = { 0 };
	char why[300];
	for (int i = 0; i < 4; i++)
		if (stats_once(h->socket, &mine[i], why, sizeof why) != 0)
			fail_msg("connection %d of 4: %s", i + 1, why);
	/* The fifth of this uid (root: its reserve is beyond max_clients, not per uid). */
	assert_int_equal(stats_once(h->socket, &mine[4], why, sizeof why), -EMFILE);
	assert_non_null(strstr(why, "max_clients_per_uid"));
	/* Also when its request is there before the hub accepts (the hub
	 * stopped meanwhile): the reply still reaches it, then the end. */
	assert_int_equal(kill(h->pid, SIGSTOP), 0);
	wait_all_stopped(h->pid); /* else the hub may still accept, refuse and close it */
	int early = nb_connect(h->socket);
	assert_true(early >= 0);
	assert_int_equal(th_proto_send(early, TH_MSG_STATS, 1, NULL, 0, NULL, 0, 0), 0);
	assert_int_equal(kill(h->pid, SIGCONT), 0);
	assert_true(answered_then_closed(early, -EMFILE, th_now_ns() + 5000ull * 1000000));
	close(early);
	/* Another uid still gets its own four, and not a fifth. */
	int res[2];
	assert_int_equal(pipe(res), 0);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(1);
		struct th_ctl *theirs[5] = { 0 };
		char w[300];
		int out[2] = { 0, 0 };
		for (int i = 0; i < 4; i++)
			out[0] += stats_once(h->socket, &theirs[i], w, sizeof w) == 0;
		out[1] = stats_once(h->socket, &theirs[4], w, sizeof w);
		_exit(write(res[1], out, sizeof out) == sizeof out ? 0 : 2);
	}
	int out[2] = { -1, -1 }, st;
	assert_int_equal(read(res[0], out, sizeof out), (ssize_t)sizeof out);
	waitpid(pid, &st, 0);
	close(res[0]), close(res[1]);
	print_message("uid 65534 got %d of 4, then %s\n", out[0], th_strerror(out[1]));
	assert_int_equal(out[0], 4);
	assert_int_equal(out[1], -EMFILE);
	/* A connection that goes gives its place back. */
	th_ctl_close(mine[0]);
	uint64_t until = th_now_ns() + 2000ull * 1000000;
	int rc;
	while ((rc = stats_once(h->socket, &mine[0], why, sizeof why)) != 0 && th_now_ns() < until)
		usleep(20000);
	assert_int_equal(rc, 0);
	assert_true(th_hub_proc_log_contains(h, "max_clients_per_uid (4) reached"));
	for (int i = 0; i < 4; i++)
		th_ctl_close(mine[i]);
	hub_stop_checked(h);
}

static void test_hostile__an_open_file_limit_below_max_clients_clamps_it_and_says_so(void **state)
{
	struct shared *sh = need(state);
	need_nofile(1200);
	struct th_mariadb *src[1] = { sh->db };
	/* The defaults (max_clients 4096, max_readers 1024) need 6,208 descriptors. */
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .extra_args = base_args, .nofile_limit = 1024 };
	struct th_hub_proc *h;
	char why[2048];
	if (th_hub_proc_start(&o, &h, why, sizeof why) < 0)
		fail_msg("hub: %s", why);
	FILE *f = fopen(h->log, "re");
	assert_non_null(f);
	char line[1024];
	unsigned clients = 0, readers = 0;
	while (fgets(line, sizeof line, f)) {
		const char *p = strstr(line, "open-file limit is 1024 (hard): max_clients clamped from 4096 to ");
		if (p && sscanf(p, "open-file limit is 1024 (hard): max_clients clamped from 4096 to %u and max_readers "
				   "from 1024 to %u", &clients, &readers) == 2)
			break;
	}
	fclose(f);
	print_message("the hub says: max_clients %u, max_readers %u under 1024 descriptors\n", clients, readers);
	if (!clients)
		fail_msg("no clamp warning in the hub's log");
	/* 64 of its own descriptors and 256 for the snapshot memfds it may hold (hub.c). */
	assert_true(clients + 2 * readers + 320 <= 1024);
	/* The clamp holds: this uid (the hub's operator: 16 beyond max_clients)
	 * gets exactly clients + 16 connections, and the next is refused. */
	static struct th_ctl *cs[1100];
	int n = 0, rc = 0;
	while (n < 1100 && (rc = stats_once(h->socket, &cs[n], why, sizeof why)) == 0)
		n++;
	print_message("%d connections served, then %s (%s)\n", n, th_strerror(rc), why);
	assert_int_equal(n, (int)clients + 16);
	assert_int_equal(rc, -EMFILE);
	assert_non_null(strstr(why, "max_clients"));
	for (int i = 0; i < n; i++)
		th_ctl_close(cs[i]);
	hub_stop_checked(h);
}

/* The owner of /proc/PID/environ, and errno of opening it as uid (0 when it
 * opens): a process that is not dumpable has its /proc/PID files owned by
 * root, and another process of its uid (without CAP_SYS_PTRACE) cannot
 * open them. */
static void environ_as(pid_t target, uid_t uid, uid_t *owner, int *err)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)target);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	*owner = st.st_uid;
	pid_t pid = fork();
	if (pid == 0) {
		if (uid != geteuid() && (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 ||
					 setresuid(uid, uid, uid) != 0))
			_exit(100);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		_exit(fd >= 0 ? 0 : errno & 0x7f);
	}
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 100);
	*err = WEXITSTATUS(status);
}

static void test_hostile__the_hub_is_not_dumpable_and_has_no_core_limit(void **state)
{
	struct shared *sh = need(state);
	/* As another uid than root's, where dumpability shows (root may open anything). */
	uid_t uid = geteuid() == 0 ? 65534 : geteuid();
	gid_t gid = geteuid() == 0 ? 65534 : getegid();
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .tcp = true, .extra_args = base_args };
	if (geteuid() == 0)
		o.run_as_uid = uid, o.run_as_gid = gid;
	struct th_hub_proc *h;
	char why[2048];
	if (th_hub_proc_start(&o, &h, why, sizeof why) < 0)
		fail_msg("hub: %s", why);
	/* RLIMIT_CORE 0, soft and hard. */
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/limits", (int)h->pid);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	char soft[32] = "", hard[32] = "";
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Max core file size %31s %31s", soft, hard) == 2)
			break;
	fclose(f);
	/* Not dumpable; beside it, a process of the same uid that is (so that
	 * what is seen is the flag, not the uid). */
	pid_t dumpable = fork();
	if (dumpable == 0) {
		if (uid != geteuid() && (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
					 setresuid(uid, uid, uid) != 0))
			_exit(1);
		execlp("sleep", "sleep", "30", (char *)NULL);
		_exit(1);
	}
	usleep(100000); /* exec'd */
	uid_t hub_owner, other_owner;
	int hub_err, other_err;
	environ_as(h->pid, uid, &hub_owner, &hub_err);
	environ_as(dumpable, uid, &other_owner, &other_err);
	kill(dumpable, SIGKILL);
	waitpid(dumpable, NULL, 0);
	print_message("the hub (uid %u): core file size soft %s hard %s; /proc/PID/environ owned by uid %u, opened by "
		      "uid %u: %s; a dumpable process of uid %u: owned by %u, %s\n",
		      (unsigned)uid, soft, hard, (unsigned)hub_owner, (unsigned)uid, hub_err ? strerror(hub_err) : "yes",
		      (unsigned)uid, (unsigned)other_owner, other_err ? strerror(other_err) : "opens");
	assert_string_equal(soft, "0");
	assert_string_equal(hard, "0");
	assert_int_equal(other_owner, uid);
	assert_int_equal(other_err, 0);
	assert_int_equal(hub_owner, 0);
	assert_int_equal(hub_err, EACCES);
	hub_stop_checked(h);
}

/* Lines of the hub's log that contain what, and the sum of their
 * "(N similar lines suppressed)" counts. */
static unsigned log_lines(const struct th_hub_proc *h, const char *what, unsigned long long *suppressed)
{
	FILE *f = fopen(h->log, "re");
	assert_non_null(f);
	char line[4096];
	unsigned n = 0;
	*suppressed = 0;
	while (fgets(line, sizeof line, f)) {
		if (!strstr(line, what))
			continue;
		n++;
		const char *p = strstr(line, " similar lines suppressed)");
		while (p && p > line && p[-1] >= '0' && p[-1] <= '9')
			p--;
		if (p && p > line && p[-1] == '(')
			*suppressed += strtoull(p, NULL, 10);
	}
	fclose(f);
	return n;
}

static void test_hostile__a_flood_of_refusals_and_bad_messages_logs_a_bounded_number_of_lines(void **state)
{
	struct shared *sh = need(state);
	need_nofile(200);
	static const char *const args[] = { "--reader-timeout-min-ms=5", "--max-clients-per-uid=2", NULL };
	struct th_hub_proc *h = hub_start(sh, args, NULL);
	struct th_ctl *a, *b;
	char why[300];
	assert_int_equal(stats_once(h->socket, &a, why, sizeof why), 0);
	assert_int_equal(stats_once(h->socket, &b, why, sizeof why), 0);
	/* 3,000 malformed messages on a, each answered. */
	uint8_t junk[64], reply[512];
	memset(junk, 0xa5, sizeof junk);
	for (int i = 0; i < 3000; i++) {
		assert_int_equal(send(th_ctl_fd(a), junk, sizeof junk, MSG_NOSIGNAL), (ssize_t)sizeof junk);
		assert_true(recv(th_ctl_fd(a), reply, sizeof reply, 0) > 0);
	}
	/* 2,000 connections over max_clients_per_uid, each refused with a line to log. */
	uint64_t t0 = th_now_ns();
	int made = 0;
	while (made < 2000) {
		int fd = nb_connect(h->socket);
		if (fd == -EAGAIN) {
			usleep(1000); /* the backlog is full: let the hub accept */
			continue;
		}
		assert_true(fd >= 0);
		assert_true(answered_then_closed(fd, -EMFILE, th_now_ns() + 5000ull * 1000000));
		close(fd);
		made++;
	}
	double secs = (double)(th_now_ns() - t0) / 1e9;
	/* One more in a later interval: its line says how many were suppressed. */
	usleep(1100000);
	int fd = nb_connect(h->socket);
	assert_true(fd >= 0 && answered_then_closed(fd, -EMFILE, th_now_ns() + 5000ull * 1000000));
	close(fd);
	unsigned long long suppressed = 0;
	unsigned lines = 0;
	uint64_t until = th_now_ns() + 2000ull * 1000000;
	do {
		lines = log_lines(h, "refused control connection from pid", &suppressed);
		if (lines + suppressed >= (unsigned long long)made + 1)
			break;
		usleep(20000);
	} while (th_now_ns() < until);
	char *json;
	assert_int_equal(th_ctl_json(b, TH_MSG_STATS, &json), 0); /* a third connection would be refused */
	unsigned long long bad = json_u64(json, "bad_messages");
	free(json);
	unsigned long long junk_lines = 0;
	unsigned any_lines = log_lines(h, "", &junk_lines);
	print_message("3000 bad messages (%llu counted) and %d refusals in %.2f s: %u refusal lines, %llu suppressed; "
		      "%u lines in the whole log\n", bad, made + 1, secs, lines, suppressed, any_lines);
	assert_int_equal(bad, 3000);
	/* Every refusal is a line or counted as suppressed, and lines are at most
	 * the limiter's 5 per second. */
	assert_int_equal(lines + suppressed, (unsigned long long)made + 1);
	assert_true(lines <= 5 * ((unsigned)secs + 2) + 5);
	assert_true(any_lines < 200);
	th_ctl_close(a);
	th_ctl_close(b);
	hub_stop_checked(h);
}

/* ---- 5: the password in /proc/PID/environ ---------------------------------- */

static void test_hostile__the_password_is_not_in_the_hubs_environ(void **state)
{
	struct shared *sh = need(state);
	struct th_hub_proc *h = hub_start(sh, NULL, NULL);
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)h->pid);
	FILE *f = fopen(path, "re");
	if (!f) {
		/* Not readable by us at all (a non-dumpable hub, not root): fine. */
		assert_int_equal(errno, EACCES);
	} else {
		static char buf[1 << 16];
		size_t n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		assert_true(n > 0);
		assert_null(memmem(buf, n, sh->db->password, strlen(sh->db->password)));
	}
	hub_stop_checked(h);
}

/* ---- 6: a server that asks for mysql_clear_password ------------------------ */

struct fake_server {
	int listen_fd;
	unsigned port;
	_Atomic int conns;      /* connections that got as far as the auth switch */
	_Atomic int leaked;     /* connections after whose switch the password arrived */
	_Atomic int stop;
	const char *password;
	pthread_t t;
};

static void put3(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16);
}

static ssize_t read_some(int fd, uint8_t *buf, size_t cap, int wait_ms)
{
	size_t got = 0;
	uint64_t end = th_now_ns() + (uint64_t)wait_ms * 1000000u;
	while (got < cap) {
		uint64_t now = th_now_ns();
		if (now >= end)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)((end - now) / 1000000u) + 1) <= 0)
			break;
		ssize_t n = recv(fd, buf + got, cap - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= 4 && got >= 4 + (size_t)(buf[0] | buf[1] << 8 | buf[2] << 16))
			break; /* one whole packet */
	}
	return (ssize_t)got;
}

static void fake_one(struct fake_server *fs, int fd)
{
	/* Protocol 10 handshake, mysql_native_password, 20-byte scramble. */
	uint8_t pkt[256], *p = pkt + 4;
	*p++ = 10;
	memcpy(p, "5.7.99-fake", 12), p += 12;
	memset(p, 0, 4), p += 4;                    /* connection id */
	memcpy(p, "abcdefgh", 8), p += 8;           /* scramble part 1 */
	*p++ = 0;
	/* LONG_PASSWORD, LONG_FLAG, PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH,
	 * PLUGIN_AUTH_LENENC_CLIENT_DATA */
	uint32_t caps = 0x0001 | 0x0004 | 0x0200 | 0x8000 | 0x00080000 | 0x00200000;
	*p++ = (uint8_t)caps, *p++ = (uint8_t)(caps >> 8);
	*p++ = 33;                                  /* charset */
	*p++ = 2, *p++ = 0;                         /* status */
	*p++ = (uint8_t)(caps >> 16), *p++ = (uint8_t)(caps >> 24);
	*p++ = 21;                                  /* auth data length */
	memset(p, 0, 10), p += 10;
	memcpy(p, "ijklmnopqrst", 12), p += 12;     /* scramble part 2 */
	*p++ = 0;
	memcpy(p, "mysql_native_password", 22), p += 22;
	put3(pkt, (uint32_t)(p - pkt - 4));
	pkt[3] = 0;
	if (send(fd, pkt, (size_t)(p - pkt), MSG_NOSIGNAL) < 0)
		return;
	uint8_t in[4096];
	if (read_some(fd, in, sizeof in, 3000) <= 4)
		return;
	/* Auth switch request to mysql_clear_password. */
	p = pkt + 4;
	*p++ = 0xfe;
	memcpy(p, "mysql_clear_password", 21), p += 21;
	put3(pkt, (uint32_t)(p - pkt - 4));
	pkt[3] = 2;
	if (send(fd, pkt, (size_t)(p - pkt), MSG_NOSIGNAL) < 0)
		return;
	atomic_fetch_add(&fs->conns, 1);
	ssize_t n = read_some(fd, in, sizeof in, 2000);
	if (n > 0 && memmem(in, (size_t)n, fs->password, strlen(fs->password)))
		atomic_fetch_add(&fs->leaked, 1);
	/* Whatever it sent: access denied. */
	static const uint8_t deny[] = { 0x17, 0, 0, 4, 0xff, 0x15, 0x04, '#', '2', '8', '0', '0', '0',
					'A', 'c', 'c', 'e', 's', 's', ' ', 'd', 'e', 'n', 'i', 'e', 'd' };
	if (send(fd, deny, sizeof deny, MSG_NOSIGNAL) < 0)
		return;
}

static void *fake_main(void *arg)
{
	struct fake_server *fs = arg;
	while (!atomic_load(&fs->stop)) {
		struct pollfd p = { .fd = fs->listen_fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept4(fs->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		fake_one(fs, fd);
		close(fd);
	}
	return NULL;
}

static void test_hostile__a_server_asking_for_mysql_clear_password_gets_nothing(void **state)
{
	struct shared *sh = need(state);
	struct fake_server fs = { .password = "hostile-Clear-Text-pw-4711" };
	fs.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fs.listen_fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t al = sizeof a;
	assert_int_equal(getsockname(fs.listen_fd, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(listen(fs.listen_fd, 16), 0);
	fs.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&fs.t, NULL, fake_main, &fs), 0);
	/* A source that is the fake server: a copy of the real one with its port. */
	struct th_mariadb fake = *sh->db;
	fake.port = fs.port;
	struct th_mariadb *src[1] = { &fake };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .tcp = true, .password = fs.password,
					 .no_wait = true, .extra_args = base_args };
	struct th_hub_proc *h;
	char why[2048];
	if (th_hub_proc_start(&o, &h, why, sizeof why) < 0)
		fail_msg("hub: %s", why);
	for (int i = 0; i < 500 && atomic_load(&fs.conns) < 2; i++)
		usleep(10000);
	/* The hub may have given up already (a server that refuses it); either way. */
	th_hub_proc_kill(h);
	th_hub_proc_free(h);
	atomic_store(&fs.stop, 1);
	pthread_join(fs.t, NULL);
	close(fs.listen_fd);
	print_message("%d connections were asked for the clear-text password; %d sent it\n",
		      atomic_load(&fs.conns), atomic_load(&fs.leaked));
	assert_true(atomic_load(&fs.conns) >= 1);
	assert_int_equal(atomic_load(&fs.leaked), 0);
}

/* ---- 7: a snapshot hoarder -------------------------------------------------- */

/* SNAPSHOT of prefix in table 0 as a hoarder asks for it: the reply's memfd
 * kept, unread. 0 with *fd and *rep, or the hub's code. */
static int hoard(struct th_ctl *c, const char *prefix, int *fd, struct th_msg_snapshot_reply *rep)
{
	uint8_t body[sizeof(struct th_msg_snapshot) + 64];
	struct th_msg_snapshot s = { .table = 0, .prefix_len = (uint32_t)strlen(prefix) };
	memcpy(body, &s, sizeof s);
	memcpy(body + sizeof s, prefix, s.prefix_len);
	struct th_ctl_reply r;
	int rc = th_ctl_call(c, TH_MSG_SNAPSHOT, body, sizeof s + s.prefix_len, &r, 5000);
	if (rc)
		return rc;
	if (r.nfds != 1 || r.len < sizeof *rep) {
		th_ctl_reply_free(&r);
		return -TH_EPROTO;
	}
	memcpy(rep, r.body, sizeof *rep);
	*fd = r.fds[0];
	r.fds[0] = -1;
	th_ctl_reply_free(&r);
	return 0;
}

/* The memory (st_blocks) of the memfds in fds[0..n). */
static uint64_t memfd_memory(const int *fds, int n)
{
	uint64_t sum = 0;
	for (int i = 0; i < n; i++) {
		struct stat st;
		if (fstat(fds[i], &st) == 0)
			sum += (uint64_t)st.st_blocks * 512;
	}
	return sum;
}

/* The memory of the snapshot memfds the hub process holds, seen through
 * /proc/PID/fd; -1 when that folder cannot be read (not root: the hub is
 * not dumpable). */
static long long hub_snapshot_memory(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	long long sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char path[384], target[256];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		ssize_t n = readlink(path, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		struct stat st;
		if (strstr(target, "memfd:topohub-snapshot") && stat(path, &st) == 0)
			sum += (long long)st.st_blocks * 512;
	}
	closedir(d);
	return sum;
}

static void test_hostile__a_snapshot_hoarder_is_cut_off_at_its_bound(void **state)
{
	struct shared *sh = need(state);
	static const char *const args[] = { "--reader-timeout-min-ms=5", "--snapshot-bytes-max=1M",
					    "--snapshot-window-ms=60000", NULL };
	sql(sh, "DELETE FROM topo.topo_data WHERE path LIKE '/hoard/%'");
	for (int i = 0; i < 8; i++) {
		char q[160];
		snprintf(q, sizeof q,
			 "INSERT INTO topo.topo_data (path, data) VALUES ('/hoard/%d', REPEAT('h', 16000))", i);
		sql(sh, q);
	}
	struct th_hub_proc *h = hub_start(sh, args, NULL);
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(h->socket, &c), 0);
	static int kept[400];
	uint64_t bytes = 0, one = 0;
	int n = 0, rc = 0;
	for (n = 0; n < 400; n++) {
		struct th_msg_snapshot_reply rep;
		rc = hoard(c, "/hoard/", &kept[n], &rep);
		if (rc != 0)
			break;
		one = rep.bytes;
		bytes += one;
	}
	print_message("%d snapshots of %" PRIu64 " bytes kept (%" PRIu64 " in all), then %s\n", n, one, bytes,
		      rc ? th_strerror(rc) : "no refusal");
	assert_int_equal(rc, -ENOBUFS);
	assert_true(one >= 128000);
	assert_true(bytes <= (1u << 20) + one);
	/* A new connection of the same uid is cut off too (the bound is per uid). */
	struct th_ctl *c2;
	assert_int_equal(th_ctl_connect(h->socket, &c2), 0);
	struct th_ctl_snapshot s2;
	assert_int_equal(th_ctl_snapshot(c2, TH_MSG_SNAPSHOT, 0, "/hoard/", 7, &s2, 5000), -ENOBUFS);
	/* Everything else still works for it. */
	char *json;
	assert_int_equal(th_ctl_json(c2, TH_MSG_STATS, &json), 0);
	free(json);
	th_ctl_close(c2);
	for (int i = 0; i < n; i++)
		close(kept[i]);
	th_ctl_close(c);
	hub_stop_checked(h);
}

/* An honest client of another uid, in its own process: SNAPSHOT after
 * SNAPSHOT for ms, each read whole at once (the client's way). */
static void honest_snapshots(const char *socket, uid_t uid, int ms, int out_fd)
{
	if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)
		_exit(1);
	int got[2] = { 0, 0 }; /* whole and right, anything else */
	struct th_ctl *c;
	if (th_ctl_connect(socket, &c) != 0)
		_exit(2);
	uint64_t until = th_now_ns() + (uint64_t)ms * 1000000u;
	while (th_now_ns() < until) {
		struct th_ctl_snapshot s;
		int rc = th_ctl_snapshot(c, TH_MSG_SNAPSHOT, 0, "/hoard2/", 8, &s, 5000);
		int entries = 0, right = rc == 0;
		if (rc == 0) {
			struct th_snap_iter it = th_ctl_snapshot_iter(&s);
			struct th_snap_entry e;
			const uint8_t *k, *v;
			while ((rc = th_snap_next(&it, &e, &k, &v)) == 1) {
				entries++;
				right &= e.value_len == 16000 && v[0] == 'h' && v[15999] == 'h';
			}
			right &= rc == 0 && entries == 8;
			th_ctl_snapshot_free(&s);
		}
		got[right ? 0 : 1]++;
		usleep(100000);
	}
	th_ctl_close(c);
	_exit(write(out_fd, got, sizeof got) == sizeof got ? 0 : 3);
}

static void test_hostile__a_hoarder_that_keeps_every_snapshot_holds_no_more_than_snapshot_bytes_max(void **state)
{
	struct shared *sh = need(state);
	need_nofile(1200);
	/* Windows of 300 ms: the hoarder is sent 1 MiB (and one more) every one. */
	static const char *const args[] = { "--reader-timeout-min-ms=5", "--snapshot-bytes-max=1M",
					    "--snapshot-window-ms=300", "--snapshot-hold-ms=1500",
					    "--allow-uids=65534", NULL };
	const uint64_t cap = 1u << 20;
	sql(sh, "DELETE FROM topo.topo_data WHERE path LIKE '/hoard2/%'");
	for (int i = 0; i < 8; i++) {
		char q[160];
		snprintf(q, sizeof q,
			 "INSERT INTO topo.topo_data (path, data) VALUES ('/hoard2/%d', REPEAT('h', 16000))", i);
		sql(sh, q);
	}
	struct th_hub_proc *h = hub_start(sh, args, NULL);
	int res[2] = { -1, -1 };
	pid_t honest = -1;
	if (geteuid() == 0) {
		assert_int_equal(pipe(res), 0);
		honest = fork();
		if (honest == 0)
			honest_snapshots(h->socket, 65534, 3000, res[1]);
	} else {
		print_message("not root: no honest client of another uid beside the hoarder\n");
	}
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(h->socket, &c), 0);
	static int kept[1000];
	int n = 0, refused = 0;
	uint64_t asked = 0, one = 0, mine_max = 0, stats_max = 0, snap_mem = 0;
	long long hub_max = -1;
	uint64_t until = th_now_ns() + 3000ull * 1000000;
	while (th_now_ns() < until && n < 1000) {
		struct th_msg_snapshot_reply rep;
		int rc = hoard(c, "/hoard2/", &kept[n], &rep);
		if (rc == -ENOBUFS) {
			refused++;
			usleep(20000); /* the window is spent: the next one comes */
			continue;
		}
		assert_int_equal(rc, 0);
		one = rep.bytes;
		asked += one;
		n++;
		if (!snap_mem)
			snap_mem = memfd_memory(&kept[n - 1], 1);
		/* What every memfd it keeps still holds, and what the hub holds. */
		uint64_t mine = memfd_memory(kept, n);
		if (mine > mine_max)
			mine_max = mine;
		long long hub = hub_snapshot_memory(h->pid);
		if (hub > hub_max)
			hub_max = hub;
		char *json;
		assert_int_equal(th_ctl_json(c, TH_MSG_STATS, &json), 0);
		uint64_t held = json_u64(json, "snapshot_bytes_held");
		free(json);
		if (held > stats_max)
			stats_max = held;
	}
	print_message("the hoarder was sent %d snapshots of %" PRIu64 " bytes (%" PRIu64 " in all, %d refused) and keeps "
		      "every descriptor; at most %" PRIu64 " bytes of memory in them, the hub's memfds at most %lld, "
		      "STATS at most %" PRIu64 " (snapshot_bytes_max %" PRIu64 ")\n",
		      n, one, asked, refused, mine_max, hub_max, stats_max, cap);
	assert_true(asked >= 8 * cap); /* many windows' worth */
	/* Outstanding: the bound, and for a moment the snapshot just sent before
	 * the hub took the oldest back. The hub's figures are of every uid: the
	 * honest one's snapshots are held for snapshot_hold_ms too (the hub
	 * cannot see it close them), within its own bound. */
	uint64_t uids = honest > 0 ? 2 : 1;
	assert_true(mine_max <= cap + snap_mem);
	assert_true(stats_max <= uids * cap);
	if (hub_max >= 0)
		assert_true((uint64_t)hub_max <= uids * cap + snap_mem);
	/* Taken back memfds read short: a client fails them, never reads zeros. */
	uint8_t *copy;
	assert_int_equal(th_snap_read(kept[0], one, &copy), -ESTALE);
	assert_null(copy);
	/* After snapshot_hold_ms nothing is held, whatever the hoarder keeps. */
	usleep(1500000 + 300000);
	char *json;
	assert_int_equal(th_ctl_json(c, TH_MSG_STATS, &json), 0);
	uint64_t held = json_u64(json, "snapshot_bytes_held"), nheld = json_u64(json, "snapshots_held");
	uint64_t reclaimed = json_u64(json, "snapshots_reclaimed");
	free(json);
	uint64_t mine = memfd_memory(kept, n);
	long long hub = hub_snapshot_memory(h->pid);
	print_message("after snapshot_hold_ms: %" PRIu64 " bytes in the hoarder's memfds, %lld in the hub's, STATS %" PRIu64
		      " bytes in %" PRIu64 " memfds, %" PRIu64 " taken back early\n", mine, hub, held, nheld, reclaimed);
	assert_int_equal(mine, 0);
	assert_int_equal(held, 0);
	assert_int_equal(nheld, 0);
	assert_true(reclaimed >= (uint64_t)n - cap / snap_mem - 1);
	if (hub >= 0)
		assert_int_equal(hub, 0);
	if (honest > 0) {
		int got[2] = { -1, -1 }, st;
		assert_int_equal(read(res[0], got, sizeof got), (ssize_t)sizeof got);
		waitpid(honest, &st, 0);
		close(res[0]), close(res[1]);
		print_message("the honest client of uid 65534: %d whole snapshots, %d of anything else\n", got[0], got[1]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		assert_true(got[0] >= 10);
		assert_int_equal(got[1], 0);
	}
	for (int i = 0; i < n; i++)
		close(kept[i]);
	th_ctl_close(c);
	hub_stop_checked(h);
}

/* A memfd of zeros is not a snapshot: the parser says so instead of
 * handing out empty keys. */
static void test_hostile__a_snapshot_memfd_of_zeros_is_refused_by_the_parser(void **state)
{
	(void)state;
	int fd = memfd_create("zeros", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	uint8_t *copy;
	assert_int_equal(th_snap_read(fd, 4096, &copy), 0);
	struct th_snap_iter it = { .map = copy, .len = 4096, .count = 3 };
	struct th_snap_entry e;
	const uint8_t *k, *v;
	assert_int_equal(th_snap_next(&it, &e, &k, &v), -TH_EPROTO);
	free(copy);
	/* Longer than its reply says: malformed; shorter: taken back. */
	assert_int_equal(th_snap_read(fd, 100, &copy), -TH_EPROTO);
	assert_int_equal(th_snap_read(fd, 8192, &copy), -ESTALE);
	close(fd);
}

/* ---- soak: every slot-page attack at once ----------------------------------- */

struct soak_attacker {
	struct th_hub_proc *h;
	_Atomic int stop;
	unsigned rounds;
	int failed;      /* an attach failed: the hub stopped serving */
	char why[256];
};

static void *soak_main(void *arg)
{
	struct soak_attacker *sa = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)th_now_ns();
	while (!atomic_load(&sa->stop)) {
		struct attacker a;
		if ((sa->failed = attacker_try_open(sa->h, &a, (x & 1) ? 0 : UINT64_MAX, sa->why, sizeof sa->why)) != 0)
			break;
		int fl = fcntl(a.fds.event_fd, F_GETFL);
		fcntl(a.fds.event_fd, F_SETFL, fl & ~O_NONBLOCK);
		uint64_t max = 0xfffffffffffffffeull;
		ssize_t wr = write(a.fds.event_fd, &max, sizeof max); /* fills an eventfd's counter */
		(void)wr;
		uint64_t head = a.att.start_pos;
		for (int i = 0; i < 2000 && !atomic_load(&sa->stop); i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			switch (x % 13) {
			case 0: atomic_store(slot64(&a, SLOT_READ_POS), x); break;            /* garbage */
			case 1: atomic_store(slot64(&a, SLOT_READ_POS), head + (x >> 40) % 4096); break; /* inside */
			case 2: atomic_store(slot64(&a, SLOT_READ_POS), UINT64_MAX - 7); break;
			case 3: atomic_store(slot32(&a, SLOT_SLEEP_WORD), (uint32_t)x | 3); break; /* fd sleeper */
			case 4: atomic_store(slot32(&a, SLOT_SLEEP_WORD), (uint32_t)x | 1); break; /* futex sleeper */
			case 5: atomic_store(slot32(&a, SLOT_EVICT_ACK), atomic_load(slot32(&a, SLOT_EVICT_SEQ))); break;
			case 6: atomic_store(slot64(&a, SLOT_TIMEOUT_NS), (x & 2) ? 1 : UINT64_MAX); break;
			case 7: /* a filter that changes on every commit (the writer copies it each time) */
				atomic_store(slot64(&a, SLOT_FILTER + 8 * (x % 8)), x);
				atomic_store(slot32(&a, SLOT_FILTER_WORD), (uint32_t)(x >> 8));
				break;
			case 8: atomic_store(slot32(&a, SLOT_WAKE_ANY), (uint32_t)x); break;
			case 9: atomic_store(slot32(&a, SLOT_SKIP_SEQ), (uint32_t)x | 1); break; /* a seqlock held odd */
			case 10: atomic_store(slot64(&a, SLOT_SKIP_TO), x); break;
			case 11: atomic_store(slot32(&a, SLOT_WAKE_SEQ), (uint32_t)x); break;
			default: atomic_store(slot32(&a, SLOT_EVICT_SEQ), (uint32_t)x); break; /* 12 */
			}
			if ((i & 63) == 0)
				usleep(500);
		}
		attacker_close(&a);
		sa->rounds++;
	}
	return NULL;
}

static void test_hostile__a_soak_of_every_slot_page_attack_leaves_an_honest_view_equal_to_the_tables(void **state)
{
	struct shared *sh = need(state);
	struct th_hub_proc *h = hub_start(sh, NULL, NULL);
	sql(sh, "DELETE FROM topo.topo_data WHERE path LIKE '/soak/%'");
	struct th_test_reader honest;
	open_reader(h, &honest, 10ull * 1000000000u, "honest");
	struct soak_attacker sa[3];
	pthread_t t[3];
	for (int i = 0; i < 3; i++) {
		sa[i] = (struct soak_attacker){ .h = h };
		assert_int_equal(pthread_create(&t[i], NULL, soak_main, &sa[i]), 0);
	}
	enum { KEYS = 50, WRITES = 300 };
	static char seen[KEYS][32];
	static bool deleted[KEYS];
	memset(seen, 0, sizeof seen);
	uint64_t end = th_now_ns() + 4000ull * 1000000;
	int w = 0;
	while (w < WRITES || th_now_ns() < end) {
		if (w < WRITES) {
			char q[200];
			int k = w % KEYS;
			if (w % 7 == 6)
				snprintf(q, sizeof q, "DELETE FROM topo.topo_data WHERE path = '/soak/%d'", k);
			else
				snprintf(q, sizeof q, "INSERT INTO topo.topo_data (path, data) VALUES ('/soak/%d', 'v%d') "
						      "ON DUPLICATE KEY UPDATE data = 'v%d', version = version + 1", k, w, w);
			sql(sh, q);
			w++;
		}
		struct th_test_rec r;
		int rc;
		while ((rc = th_test_reader_next(&honest, &r, w < WRITES ? 0 : 20)) == 1) {
			int k;
			if (r.type == TH_REC_CHANGE && sscanf(r.key, "/soak/%d", &k) == 1 && k >= 0 && k < KEYS) {
				deleted[k] = r.ch.op == TH_OP_DELETE;
				snprintf(seen[k], sizeof seen[k], "%.*s", (int)r.ch.value_len, r.value ? (char *)r.value : "");
			}
			th_test_rec_free(&r);
		}
		if (rc < 0)
			fail_msg("the honest reader: %s", th_strerror(rc));
	}
	for (int i = 0; i < 3; i++) {
		atomic_store(&sa[i].stop, 1);
		pthread_join(t[i], NULL);
	}
	for (int i = 0; i < 3; i++)
		if (sa[i].failed)
			fail_msg("attacker %d: %s", i, sa[i].why);
	/* Drain to the end, then compare with the table. */
	char gtid[256];
	assert_int_equal(th_mariadb_query_value(sh->db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(h->socket, &c), 0);
	uint64_t rev;
	assert_int_equal(th_ctl_sync(c, gtid, 10ll * 1000000000, &rev), 0);
	th_ctl_close(c);
	struct th_test_rec r;
	while (th_test_reader_next(&honest, &r, 200) == 1) {
		int k;
		if (r.type == TH_REC_CHANGE && sscanf(r.key, "/soak/%d", &k) == 1 && k >= 0 && k < KEYS) {
			deleted[k] = r.ch.op == TH_OP_DELETE;
			snprintf(seen[k], sizeof seen[k], "%.*s", (int)r.ch.value_len, r.value ? (char *)r.value : "");
		}
		th_test_rec_free(&r);
	}
	for (int k = 0; k < KEYS; k++) {
		char v[64] = "", q[128];
		snprintf(q, sizeof q, "SELECT IFNULL((SELECT data FROM topo.topo_data WHERE path = '/soak/%d'), '<none>')", k);
		assert_int_equal(th_mariadb_query_value(sh->db, v, sizeof v, "%s", q), 0);
		const char *mine = deleted[k] || !seen[k][0] ? "<none>" : seen[k];
		if (strcmp(v, mine))
			fail_msg("/soak/%d: table has '%s', the honest reader '%s'", k, v, mine);
	}
	unsigned rounds = sa[0].rounds + sa[1].rounds + sa[2].rounds;
	print_message("%d writes, %u attacker rounds; the honest view equals the table\n", w, rounds);
	char why[1024];
	size_t n;
	assert_int_equal(th_hub_check_state(h->socket, sh->db, NULL, 10000, &n, why, sizeof why), 0);
	th_test_reader_close(&honest);
	hub_stop_checked(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile__a_reader_that_blocks_its_wakeup_fd_stops_nothing),
		cmocka_unit_test(test_hostile__reacknowledging_an_eviction_without_moving_counts_once_and_wakes_no_one),
		cmocka_unit_test(test_hostile__a_read_position_inside_a_record_changes_no_ones_lag),
		cmocka_unit_test(test_hostile__a_reader_that_hides_its_lag_is_not_evicted_and_finds_itself_lapped),
		cmocka_unit_test(test_hostile__1100_connections_under_an_open_file_limit_of_1024_make_no_busy_loop),
		cmocka_unit_test(test_hostile__4200_refused_connections_leave_room_for_an_allowed_client),
		cmocka_unit_test(test_hostile__an_idle_connection_is_closed_and_a_busy_or_attached_one_is_not),
		cmocka_unit_test(test_hostile__max_clients_per_uid_refuses_one_more_of_a_uid_and_not_another_uid),
		cmocka_unit_test(test_hostile__an_open_file_limit_below_max_clients_clamps_it_and_says_so),
		cmocka_unit_test(test_hostile__the_hub_is_not_dumpable_and_has_no_core_limit),
		cmocka_unit_test(test_hostile__a_flood_of_refusals_and_bad_messages_logs_a_bounded_number_of_lines),
		cmocka_unit_test(test_hostile__the_password_is_not_in_the_hubs_environ),
		cmocka_unit_test(test_hostile__a_server_asking_for_mysql_clear_password_gets_nothing),
		cmocka_unit_test(test_hostile__a_snapshot_hoarder_is_cut_off_at_its_bound),
		cmocka_unit_test(test_hostile__a_hoarder_that_keeps_every_snapshot_holds_no_more_than_snapshot_bytes_max),
		cmocka_unit_test(test_hostile__a_snapshot_memfd_of_zeros_is_refused_by_the_parser),
		cmocka_unit_test(test_hostile__a_soak_of_every_slot_page_attack_leaves_an_honest_view_equal_to_the_tables),
	};
	if (getenv("TH_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TH_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
