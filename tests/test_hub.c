/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for topohubd (hub/): the real binary against a private MariaDB, a
 * minimal reader attached through the control socket, and topohubctl.
 * One MariaDB and one hub serve the tests of this file, in order; tests
 * that stop or kill the hub start it again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol/protocol.h"
#include "protocol/protocol.h"
#include "shm/ring.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "tests/support/hub_check.h"
#include "tests/support/hub_proc.h"
#include "tests/support/mariadb.h"
#include "tests/support/support.h"

struct shared {
	struct th_mariadb *db;
	struct th_hub_proc *hub;
	char why[2048];
};

static const char *const hub_args[] = {
	"--reader-timeout-min-ms=5",
	"--monitor-interval-us=500",
	NULL,
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
		return 0;
	}
	/* Rows before the hub starts: the initial load must see them. */
	th_mariadb_sql(sh->db, "INSERT INTO topo.topo_data (path, data) VALUES ('/pre/a', 'A'), ('/pre/b', NULL);"
			       "INSERT INTO topo.topo_elections (name, leader_id, contents, expires_at) VALUES "
			       "('/pre/e', 'leader-1', NULL, NOW())");
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .extra_args = hub_args };
	rc = th_hub_proc_start(&o, &sh->hub, sh->why, sizeof sh->why);
	if (rc < 0) {
		fprintf(stderr, "th_hub_proc_start: %s\n", sh->why);
		sh->hub = NULL;
	} else {
		fprintf(stderr, "hub ready in %.1f ms (mariadb %s)\n", (double)sh->hub->ready_ns / 1e6, sh->db->version);
	}
	return 0;
}

static int teardown(void **state)
{
	struct shared *sh = *state;
	if (sh->hub) {
		int st = th_hub_proc_stop(sh->hub);
		if (th_hub_proc_sanitizer_report(sh->hub) || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			char tail[4000];
			fprintf(stderr, "hub ended badly (status 0x%x): %s\n", st,
				th_hub_proc_log_tail(sh->hub, tail, sizeof tail));
			th_hub_proc_free(sh->hub);
			th_mariadb_stop(sh->db);
			free(sh);
			return -1;
		}
		th_hub_proc_free(sh->hub);
	}
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
	if (!sh->hub)
		fail_msg("no hub: %s", sh->why);
	if (sh->hub->pid <= 0)
		fail_msg("the hub is not running");
	return sh;
}

static void sql(struct shared *sh, const char *q)
{
	if (th_mariadb_sql(sh->db, "%s", q) != 0)
		fail_msg("%s: %s", q, sh->db->err);
}

static void check_state(struct shared *sh)
{
	char why[1024];
	size_t n;
	int rc = th_hub_check_state(sh->hub->socket, sh->db, NULL, 10000, &n, why, sizeof why);
	if (rc != 0)
		fail_msg("state differs: %s", why);
}

/* Next record or fail. */
static void next_rec(struct th_test_reader *tr, struct th_test_rec *r)
{
	int rc = th_test_reader_next(tr, r, 5000);
	if (rc != 1)
		fail_msg("no record from the ring: %s", rc ? th_strerror(rc) : "timeout");
}

static void open_reader(struct shared *sh, struct th_test_reader *tr, uint64_t timeout_ns, const char *name)
{
	char why[512];
	if (th_test_reader_open(tr, sh->hub->socket, timeout_ns, name, why, sizeof why) != 0)
		fail_msg("%s", why);
}

static void test_hub__initial_load_equals_tables(void **state)
{
	struct shared *sh = need(state);
	check_state(sh);
}

static void test_hub__commits_arrive_in_order_one_batch_per_transaction(void **state)
{
	struct shared *sh = need(state);
	struct th_test_reader tr;
	open_reader(sh, &tr, 10ull * 1000000000u, "order");
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/o/a', 'one')");
	sql(sh, "BEGIN; INSERT INTO topo.topo_data (path, data) VALUES ('/o/b', 'two');"
		"INSERT INTO topo.topo_data (path, data) VALUES ('/o/c', 'three');"
		"UPDATE topo.topo_data SET data = 'uno', version = version + 1 WHERE path = '/o/a'; COMMIT");
	sql(sh, "DELETE FROM topo.topo_data WHERE path = '/o/b'");
	sql(sh, "INSERT INTO topo.topo_locks (path, contents, expires_at) VALUES ('/o/lock', 'held', NOW())");
	sql(sh, "INSERT INTO topo.topo_elections (name, leader_id, contents, expires_at) VALUES ('/o/e', 'L', 'c', NOW())");

	struct th_test_rec r[7];
	for (int i = 0; i < 7; i++)
		next_rec(&tr, &r[i]);
	/* 1: one-row transaction. */
	assert_int_equal(r[0].type, TH_REC_CHANGE);
	assert_string_equal(r[0].key, "/o/a");
	assert_int_equal(r[0].ch.op, TH_OP_PUT);
	assert_int_equal(r[0].ch.value_len, 3);
	assert_memory_equal(r[0].value, "one", 3);
	assert_int_equal(r[0].ch.version, 1);
	assert_true(r[0].ring_flags & TH_RING_F_BATCH_END);
	assert_true(r[0].ch.revision > tr.att.revision);
	assert_true(r[0].gtid[0] != '\0');
	assert_true(r[0].ch.commit_us > 0 && r[0].ch.publish_ns > 0);
	/* 2-4: one batch, one revision, in statement order. */
	assert_string_equal(r[1].key, "/o/b");
	assert_string_equal(r[2].key, "/o/c");
	assert_string_equal(r[3].key, "/o/a");
	assert_memory_equal(r[3].value, "uno", 3);
	assert_int_equal(r[3].ch.version, 2);
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(r[i].ch.revision, r[1].ch.revision);
		assert_int_equal(!!(r[i].ring_flags & TH_RING_F_BATCH_END), i == 3);
		assert_string_equal(r[i].gtid, r[1].gtid);
	}
	assert_true(r[1].ch.revision == r[0].ch.revision + 1);
	/* 5: delete. */
	assert_string_equal(r[4].key, "/o/b");
	assert_int_equal(r[4].ch.op, TH_OP_DELETE);
	assert_int_equal(r[4].ch.revision, r[1].ch.revision + 1);
	/* 6: another table. */
	assert_int_equal(r[5].ch.table, 1);
	assert_string_equal(r[5].key, "/o/lock");
	assert_int_equal(r[5].ch.revision, r[4].ch.revision + 1);
	/* 7: two value columns, serialised (u32 length + bytes each). */
	assert_int_equal(r[6].ch.table, 2);
	assert_int_equal(r[6].ch.value_len, 4 + 1 + 4 + 1);
	assert_memory_equal(r[6].value, "\x01\0\0\0L\x01\0\0\0c", 10);
	for (int i = 0; i < 7; i++)
		th_test_rec_free(&r[i]);
	th_test_reader_close(&tr);
	check_state(sh);
}

static void test_hub__snapshot_and_get(void **state)
{
	struct shared *sh = need(state);
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/s/x/1', 'a'), ('/s/x/2', 'b'), ('/s/xy', 'c'),"
		" ('/s/y', 'd')");
	check_state(sh); /* syncs too */
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(sh->hub->socket, &c), 0);
	struct th_ctl_snapshot s;
	assert_int_equal(th_ctl_snapshot(c, TH_MSG_SNAPSHOT, 0, "/s/x", 4, &s, 30000), 0);
	assert_int_equal(s.reply.count, 3); /* byte prefix: /s/x/1, /s/x/2, /s/xy */
	assert_true(s.reply.revision >= s.reply.start_revision);
	th_ctl_snapshot_free(&s);
	/* The memfd is sealed: the client can trust it. */
	assert_int_equal(th_ctl_snapshot(c, TH_MSG_GET, 0, "/s/y", 4, &s, 30000), 0);
	assert_int_equal(s.reply.count, 1);
	struct th_snap_iter it = th_ctl_snapshot_iter(&s);
	struct th_snap_entry e;
	const uint8_t *k, *v;
	assert_int_equal(th_snap_next(&it, &e, &k, &v), 1);
	assert_int_equal(e.key_len, 4);
	assert_memory_equal(k, "/s/y", 4);
	assert_int_equal(e.value_len, 1);
	assert_memory_equal(v, "d", 1);
	assert_int_equal(e.version, 1);
	th_ctl_snapshot_free(&s);
	assert_int_equal(th_ctl_snapshot(c, TH_MSG_GET, 0, "/s/none", 7, &s, 30000), 0);
	assert_int_equal(s.reply.count, 0);
	/* NULL value and a bad table. */
	assert_int_equal(th_ctl_snapshot(c, TH_MSG_GET, 0, "/pre/b", 6, &s, 30000), 0);
	assert_int_equal(s.reply.count, 1);
	it = th_ctl_snapshot_iter(&s);
	assert_int_equal(th_snap_next(&it, &e, &k, &v), 1);
	assert_true(e.flags & TH_CHANGE_F_VALUE_NULL);
	th_ctl_snapshot_free(&s);
	assert_int_equal(th_ctl_snapshot(c, TH_MSG_GET, 7, "/x", 2, &s, 30000), -EINVAL);
	th_ctl_close(c);
}

static void test_hub__sync_answers_the_revision_after_a_gtid(void **state)
{
	struct shared *sh = need(state);
	struct th_test_reader tr;
	open_reader(sh, &tr, 10ull * 1000000000u, "sync");
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/sync/1', 'x')");
	char gtid[256];
	assert_int_equal(th_mariadb_query_value(sh->db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	uint64_t rev;
	assert_int_equal(th_ctl_sync(tr.c, gtid, 5000000000ull, &rev), 0);
	struct th_test_rec r;
	next_rec(&tr, &r);
	assert_string_equal(r.key, "/sync/1");
	assert_true(rev >= r.ch.revision);
	th_test_rec_free(&r);
	/* A position the server has not reached: times out. */
	char far[64];
	unsigned d, s;
	unsigned long long n;
	assert_int_equal(sscanf(gtid, "%u-%u-%llu", &d, &s, &n), 3);
	snprintf(far, sizeof far, "%u-%u-%llu", d, s, n + 1000);
	uint64_t t0 = th_now_ns();
	assert_int_equal(th_ctl_sync(tr.c, far, 50000000ull, &rev), -ETIMEDOUT);
	assert_true(th_now_ns() - t0 >= 45000000ull);
	/* A SYNC waits for a commit that comes later (made by a child, 100 ms on). */
	snprintf(far, sizeof far, "%u-%u-%llu", d, s, n + 1);
	pid_t child = fork();
	if (child == 0) {
		usleep(100000);
		execlp("mariadb", "mariadb", "--no-defaults", "-uroot", "-S", sh->db->socket, "-e",
		       "INSERT INTO topo.topo_data (path, data) VALUES ('/sync/2', 'later')", (char *)NULL);
		_exit(127);
	}
	t0 = th_now_ns();
	int rc = th_ctl_sync(tr.c, far, 5000000000ull, &rev);
	uint64_t waited = th_now_ns() - t0;
	int st;
	waitpid(child, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(rc, 0);
	assert_true(waited >= 50000000ull);
	next_rec(&tr, &r);
	assert_string_equal(r.key, "/sync/2");
	assert_int_equal(rev, r.ch.revision);
	th_test_rec_free(&r);
	assert_int_equal(th_ctl_sync(tr.c, "not-a-gtid", 1000000ull, &rev), -TH_EGTID);
	th_test_reader_close(&tr);
}

static void test_hub__refuses_a_uid_that_is_not_allowed(void **state)
{
	struct shared *sh = need(state);
	if (geteuid() != 0) {
		print_message("skip: needs root to connect as another uid\n");
		skip();
	}
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		int code = 1;
		if (setgid(65534) == 0 && setuid(65534) == 0) {
			struct th_ctl *c;
			int rc = th_ctl_connect(sh->hub->socket, &c);
			if (rc == 0) {
				struct th_msg_attach_reply rep;
				struct th_ring_reader_fds fds;
				rc = th_ctl_attach(c, 0, (uint32_t)getpid(), "intruder", &rep, &fds, 5000);
				th_ctl_close(c);
			}
			code = rc == -EACCES ? 0 : 2;
			if (write(pipefd[1], &rc, sizeof rc) != sizeof rc)
				code = 3;
		}
		_exit(code);
	}
	close(pipefd[1]);
	int rc = 0, st;
	ssize_t n = read(pipefd[0], &rc, sizeof rc);
	close(pipefd[0]);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("child: status 0x%x, attach returned %s", st, n == sizeof rc ? th_errname(rc) : "?");
	assert_true(th_hub_proc_log_contains(sh->hub, "refused control connection"));
}

/* Sends len random bytes (or a plausible header with a random body). */
static void fuzz_message(int fd, uint64_t *seed, uint8_t *buf)
{
	uint64_t x = *seed;
	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	*seed = x;
	size_t len = (size_t)(x % 160);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (uint8_t)(x >> 24);
	}
	if ((x & 3) != 0 && len >= sizeof(struct th_msg_hdr)) {
		/* A header that passes the first checks, to reach the bodies. */
		struct th_msg_hdr h = { .magic = TH_PROTO_MAGIC, .version = TH_PROTO_VERSION,
					.type = (uint16_t)(1 + (x >> 40) % 9), .len = (uint32_t)len,
					.request_id = (uint32_t)x };
		if ((x >> 50) % 8 == 0)
			h.len = (uint32_t)(x >> 8); /* wrong length */
		memcpy(buf, &h, sizeof h);
		if (h.type == TH_MSG_SYNC && len >= sizeof h + 8)
			memset(buf + sizeof h, 0, 8); /* a zero timeout: no pending sync */
	}
	if (len == 0)
		len = 1; /* an empty SEQPACKET message reads as the peer's end */
	send(fd, buf, len, MSG_NOSIGNAL);
}

static int raw_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		fail_msg("connect %s: %s", path, strerror(errno));
	return fd;
}

/* Reads replies for up to wait_ms; returns how many. */
static int drain(int fd, int want, int wait_ms, uint8_t *buf)
{
	int got = 0;
	while (got < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, wait_ms) <= 0)
			break;
		ssize_t n = recv(fd, buf, TH_MSG_MAX, MSG_DONTWAIT);
		if (n <= 0)
			return n == 0 ? -1 : got;
		got++;
	}
	return got;
}

static void test_hub__survives_garbage_oversized_and_100k_fuzz_messages(void **state)
{
	struct shared *sh = need(state);
	uint8_t *buf = malloc(80000);
	assert_non_null(buf);
	int fd = raw_connect(sh->hub->socket);
	/* Truncated header, bad magic, bad version, oversized. */
	assert_int_equal(send(fd, "\x54\x48\x01", 3, 0), 3);
	struct th_msg_hdr h = { .magic = 0xdead, .version = 1, .type = TH_MSG_STATS, .len = 16, .request_id = 7 };
	assert_int_equal(send(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	h.magic = TH_PROTO_MAGIC;
	h.version = 99;
	assert_int_equal(send(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	memset(buf, 0x41, 70000);
	h.version = TH_PROTO_VERSION;
	h.len = 70000;
	memcpy(buf, &h, sizeof h);
	assert_int_equal(send(fd, buf, 70000, 0), 70000);
	int codes[4] = { 0 };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(drain(fd, 1, 2000, buf), 1);
		struct th_msg_hdr rh;
		memcpy(&rh, buf, sizeof rh);
		assert_int_equal(rh.type, TH_MSG_ERROR);
		struct th_msg_error e;
		memcpy(&e, buf + sizeof rh, sizeof e);
		codes[i] = e.code;
	}
	assert_int_equal(codes[0], -TH_EPROTO);
	assert_int_equal(codes[1], -TH_EPROTO);
	assert_int_equal(codes[2], -TH_EVERSION);
	assert_int_equal(codes[3], -EMSGSIZE);
	/* Descriptors sent to the hub are closed by it, never used. */
	{
		int pfd[2];
		assert_int_equal(pipe(pfd), 0);
		union {
			char b[CMSG_SPACE(sizeof(int) * 2)];
			struct cmsghdr al;
		} u;
		memset(&u, 0, sizeof u);
		struct th_msg_hdr sh2 = { .magic = TH_PROTO_MAGIC, .version = 1, .type = TH_MSG_STATS, .len = 16 };
		struct iovec iov = { &sh2, sizeof sh2 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * 2);
		memcpy(CMSG_DATA(cm), pfd, sizeof pfd);
		assert_int_equal(sendmsg(fd, &m, 0), (ssize_t)sizeof sh2);
		assert_int_equal(drain(fd, 1, 2000, buf), 1);
		close(pfd[0]);
		close(pfd[1]);
	}
	close(fd);

	/* The fuzz run: 100,000 messages over 4 connections, pipelined. */
	uint64_t seed = 0x9e3779b97f4a7c15ull, t0 = th_now_ns();
	int fds[4];
	for (int i = 0; i < 4; i++)
		fds[i] = raw_connect(sh->hub->socket);
	long sent = 0, replies = 0, reconnects = 0;
	while (sent < 100000) {
		for (int i = 0; i < 4; i++) {
			for (int k = 0; k < 16; k++)
				fuzz_message(fds[i], &seed, buf);
			sent += 16;
		}
		for (int i = 0; i < 4; i++) {
			int got = drain(fds[i], 16, 200, buf);
			if (got < 0) {
				close(fds[i]);
				fds[i] = raw_connect(sh->hub->socket);
				reconnects++;
			} else {
				replies += got;
			}
		}
	}
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	print_message("fuzz: %ld messages, %ld replies, %ld reconnects in %.2f s\n", sent, replies, reconnects,
		      (double)(th_now_ns() - t0) / 1e9);
	assert_true(replies > sent / 2);
	free(buf);
	/* Still serving, still correct. */
	assert_int_equal(kill(sh->hub->pid, 0), 0);
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(sh->hub->socket, &c), 0);
	char *json;
	assert_int_equal(th_ctl_json(c, TH_MSG_STATS, &json), 0);
	assert_non_null(strstr(json, "\"bad_messages\":"));
	free(json);
	th_ctl_close(c);
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/after/fuzz', 'ok')");
	check_state(sh);
}

static uint64_t stat_u64(struct th_ctl *c, const char *key)
{
	char *json;
	if (th_ctl_json(c, TH_MSG_STATS, &json) != 0)
		fail_msg("STATS: %s", th_ctl_error(c));
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(json, pat);
	uint64_t v = p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
	free(json);
	if (v == UINT64_MAX)
		fail_msg("no %s in STATS", key);
	return v;
}

/* The time (CLOCK_REALTIME us) of the hub's "evicted reader ID" log line; 0 if none. */
/* The hub's log time of its nth eviction of reader id (1-based), waiting up
 * to about three seconds for the line. 0 when it never comes. */
static uint64_t evict_log_time_us(struct shared *sh, uint32_t id, unsigned nth)
{
	char needle[64];
	snprintf(needle, sizeof needle, "evicted reader %u (", id);
	for (int tries = 0; tries < 3000; tries++) {
		FILE *f = fopen(sh->hub->log, "re");
		if (!f)
			return 0;
		char line[2048];
		unsigned seen = 0;
		uint64_t t = 0;
		while (fgets(line, sizeof line, f)) {
			if (!strstr(line, needle) || ++seen != nth)
				continue;
			struct tm tm = { 0 };
			unsigned long us = 0;
			if (sscanf(line, "%d-%d-%dT%d:%d:%d.%luZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				   &tm.tm_min, &tm.tm_sec, &us) == 7) {
				tm.tm_year -= 1900;
				tm.tm_mon -= 1;
				t = (uint64_t)timegm(&tm) * 1000000u + us;
			}
		}
		fclose(f);
		if (t)
			return t;
		usleep(1000);
	}
	return 0;
}

/* The monitor sleeps until a reader can first be late: readers that keep up
 * (here: idle ones with a 10 s timeout) cost it a round per timeout, not a
 * round per monitor_interval (1 ms), however many there are. */
static void test_hub__monitor_does_not_poll_idle_readers_every_interval(void **state)
{
	struct shared *sh = need(state);
	enum { N = 8 };
	struct th_test_reader rd[N];
	for (int i = 0; i < N; i++)
		open_reader(sh, &rd[i], 10ull * 1000000000u, "idle");
	uint64_t r0 = stat_u64(rd[0].c, "monitor_rounds");
	usleep(300 * 1000);
	uint64_t rounds = stat_u64(rd[0].c, "monitor_rounds") - r0;
	print_message("monitor rounds in 300 ms with %d idle readers: %" PRIu64 "\n", N, rounds);
	/* A 1 ms tick would be about 300; other tests' readers may still be
	 * attached with shorter timeouts (at least 30 ms here), so a few. */
	assert_true(rounds < 30);
	for (int i = 0; i < N; i++)
		th_test_reader_close(&rd[i]);
}

/* The publisher (whose wake-ups put subscribers on the CPUs) and the
 * monitor run at real-time priority, so that the processes they wake do not
 * preempt them; when the hub may not (no CAP_SYS_NICE, RLIMIT_RTPRIO 0), it
 * says so in its log, which is what this test then checks. */
static void test_hub__the_publisher_and_the_monitor_run_at_real_time_priority(void **state)
{
	struct shared *sh = need(state);
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)sh->hub->pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	int fifo = 0, threads = 0;
	bool publisher = false, monitor = false, control = true;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char cpath[400], comm[32] = "";
		snprintf(cpath, sizeof cpath, "%s/%s/comm", path, e->d_name);
		FILE *f = fopen(cpath, "r");
		if (f) {
			if (!fgets(comm, sizeof comm, f))
				comm[0] = 0;
			fclose(f);
		}
		comm[strcspn(comm, "\n")] = 0;
		bool rt = sched_getscheduler(atoi(e->d_name)) == SCHED_FIFO;
		threads++;
		fifo += rt;
		print_message("  thread %s %s%s\n", e->d_name, comm, rt ? " SCHED_FIFO" : "");
		if (!strcmp(comm, "th-publisher"))
			publisher = rt;
		else if (!strcmp(comm, "th-monitor"))
			monitor = rt;
		else if (!strcmp(comm, "th-control"))
			control = !rt;
	}
	closedir(d);
	assert_true(control); /* what answers clients runs as they do */
	char tail[8000];
	th_hub_proc_log_tail(sh->hub, tail, sizeof tail);
	bool refused = strstr(tail, "publisher: no real-time priority") != NULL;
	print_message("  %d of %d hub threads SCHED_FIFO%s\n", fifo, threads,
		      refused ? " (the hub logged that it may not)" : "");
	if (refused) {
		assert_non_null(strstr(tail, "monitor: no real-time priority"));
	} else {
		assert_true(publisher);
		assert_true(monitor);
		assert_int_equal(fifo, 2); /* and no thread they made inherited it */
	}
}

static void test_hub__evicts_a_stopped_reader_within_its_timeout_plus_10ms(void **state)
{
	struct shared *sh = need(state);
	struct th_test_reader slow, fast;
	const uint64_t timeout = 30ull * 1000000u;
	const double bound_ms = (double)(timeout + 10000000ull) / 1e6;
	open_reader(sh, &slow, timeout, "slow");
	open_reader(sh, &fast, 10ull * 1000000000u, "fast");
	uint64_t ev0 = stat_u64(fast.c, "evictions");
	/* Every attempt must be a correct eviction (never early, the right
	 * reason, counted, logged). Up to three attempts for the time bound:
	 * this machine is a VM on a shared host, and a monitor that the host
	 * did not schedule for a while is not a hub that waits; a broken
	 * monitor fails all three. */
	double best_ms = 1e9;
	for (unsigned attempt = 1; attempt <= 3 && best_ms > bound_ms; attempt++) {
		char q[128];
		snprintf(q, sizeof q, "INSERT INTO topo.topo_data (path, data) VALUES ('/evict/%u', 'x')", attempt);
		sql(sh, q);
		struct th_test_rec r;
		next_rec(&fast, &r);
		uint64_t published = r.publish_mono_ns, publish_real = r.ch.publish_ns;
		th_test_rec_free(&r);
		/* The slow reader reads nothing. The hub's own time of the
		 * eviction (its log line, written right after it), against the
		 * record's publish time, both CLOCK_REALTIME: the test's polling
		 * may be late on a busy machine, the hub must not be. */
		uint64_t evicted_us = evict_log_time_us(sh, slow.att.reader_id, attempt);
		assert_true(evicted_us != 0);
		double hub_ms = ((double)evicted_us * 1e3 - (double)publish_real) / 1e6;
		print_message("attempt %u: evicted %.2f ms after the record was published (timeout %.0f ms; seen by the "
			      "test %.2f ms after)\n", attempt, hub_ms, (double)timeout / 1e6,
			      (double)(th_now_ns() - published) / 1e6);
		assert_int_equal(th_ring_reader_evict_reason(slow.r), TH_RING_EVICT_SLOW);
		assert_true(hub_ms >= (double)timeout / 1e6 - 0.01);
		if (hub_ms < best_ms)
			best_ms = hub_ms;
		struct th_ring_record rr;
		uint8_t b[256];
		assert_int_equal(th_ring_read(slow.r, &rr, b, sizeof b), -TH_EEVICTED);
		assert_int_equal(stat_u64(fast.c, "evictions"), ev0 + attempt);
		uint64_t pos;
		assert_int_equal(th_ring_reader_rejoin(slow.r, &pos), 0);
		/* The fast reader keeps up: nothing of this attempt left for it. */
		while (th_ring_reader_pos(fast.r) < th_ring_reader_head(fast.r)) {
			next_rec(&fast, &r);
			th_test_rec_free(&r);
		}
	}
	assert_true(best_ms <= bound_ms);
	char needle[64];
	snprintf(needle, sizeof needle, "(pid %d, slow)", (int)getpid());
	assert_true(th_hub_proc_log_contains(sh->hub, needle));
	/* After its rejoin it reads again. */
	struct th_test_rec r;
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/evict/after', 'y')");
	next_rec(&slow, &r);
	assert_string_equal(r.key, "/evict/after");
	th_test_rec_free(&r);
	th_test_reader_close(&slow);
	th_test_reader_close(&fast);
}

static void test_hub__reclaims_the_slot_of_a_killed_reader_within_100ms(void **state)
{
	struct shared *sh = need(state);
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(sh->hub->socket, &c), 0);
	uint64_t before = stat_u64(c, "readers");
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct th_test_reader tr;
		char why[256];
		char ok = th_test_reader_open(&tr, sh->hub->socket, 1000000000ull, "victim", why, sizeof why) == 0;
		if (write(pipefd[1], &ok, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char ok = 0;
	assert_int_equal(read(pipefd[0], &ok, 1), 1);
	assert_true(ok);
	close(pipefd[0]);
	close(pipefd[1]);
	assert_int_equal(stat_u64(c, "readers"), before + 1);
	kill(pid, SIGKILL);
	uint64_t t0 = th_now_ns();
	waitpid(pid, NULL, 0);
	uint64_t t1 = 0;
	while (th_now_ns() - t0 < 1000000000ull) {
		if (stat_u64(c, "readers") == before) {
			t1 = th_now_ns();
			break;
		}
		usleep(500);
	}
	assert_true(t1 != 0);
	print_message("slot reclaimed %.2f ms after SIGKILL\n", (double)(t1 - t0) / 1e6);
	assert_true(t1 - t0 <= 100000000ull);
	th_ctl_close(c);
}

static void test_hub__ddl_on_a_watched_table_publishes_a_resync(void **state)
{
	struct shared *sh = need(state);
	struct th_test_reader tr;
	open_reader(sh, &tr, 10ull * 1000000000u, "ddl");
	sql(sh, "ALTER TABLE topo.topo_locks ADD COLUMN note INT NULL");
	struct th_test_rec r;
	next_rec(&tr, &r);
	assert_int_equal(r.type, TH_REC_RESYNC);
	assert_int_equal(r.rs.reason, TH_RESYNC_DDL);
	/* Every table: the reload's snapshot also holds what committed on the
	 * others after the DDL, which the ring never carried (issue 14). */
	assert_int_equal(r.rs.table, UINT32_MAX);
	assert_true(r.rs.revision > tr.att.revision);
	sql(sh, "INSERT INTO topo.topo_locks (path, contents, expires_at, note) VALUES ('/ddl/l', 'c', NOW(), 3)");
	next_rec(&tr, &r);
	assert_int_equal(r.type, TH_REC_CHANGE);
	assert_string_equal(r.key, "/ddl/l");
	th_test_rec_free(&r);
	sql(sh, "ALTER TABLE topo.topo_locks DROP COLUMN note");
	next_rec(&tr, &r);
	assert_int_equal(r.type, TH_REC_RESYNC);
	th_test_reader_close(&tr);
	check_state(sh);
}

static void test_hub__a_position_the_server_lost_is_a_reload_and_a_resync(void **state)
{
	struct shared *sh = need(state);
	struct th_test_reader tr;
	open_reader(sh, &tr, 10ull * 1000000000u, "lost");
	/* The server forgets its binary log; the hub's dump connection is cut.
	 * Its GTID position is no longer there: it must reload, never skip. */
	sql(sh, "RESET MASTER");
	char id[32];
	assert_int_equal(th_mariadb_query_value(sh->db, id, sizeof id,
						"SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%%'"),
			 0);
	if (th_mariadb_sql(sh->db, "KILL %s", id) != 0)
		print_message("KILL %s: %s\n", id, sh->db->err);
	struct th_test_rec r;
	next_rec(&tr, &r);
	assert_int_equal(r.type, TH_REC_RESYNC);
	assert_int_equal(r.rs.reason, TH_RESYNC_RELOAD);
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/after/reset', 'r')");
	next_rec(&tr, &r);
	assert_int_equal(r.type, TH_REC_CHANGE);
	assert_string_equal(r.key, "/after/reset");
	th_test_rec_free(&r);
	th_test_reader_close(&tr);
	assert_true(th_hub_proc_log_contains(sh->hub, "lacks transactions the hub has published"));
	check_state(sh);
}

static void test_hub__a_transaction_too_big_for_the_ring_is_a_resync(void **state)
{
	struct shared *sh = need(state);
	struct th_test_reader tr;
	open_reader(sh, &tr, 10ull * 1000000000u, "big");
	/* The test hub's ring is 4 MiB: records are at most 1 MiB. */
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/big', REPEAT('z', 2000000))");
	struct th_test_rec r;
	next_rec(&tr, &r);
	assert_int_equal(r.type, TH_REC_RESYNC);
	assert_int_equal(r.rs.reason, TH_RESYNC_TOO_BIG);
	struct th_ctl_snapshot s;
	assert_int_equal(th_ctl_snapshot(tr.c, TH_MSG_GET, 0, "/big", 4, &s, 30000), 0);
	assert_int_equal(s.reply.count, 1);
	/* The state has it at the resync's revision; the reply's revision may
	 * still be the one before: a reader can see the record (b) before the
	 * revision advances (c), and stitching allows for that. */
	assert_true(s.reply.revision + 1 >= r.rs.revision);
	struct th_snap_iter it = th_ctl_snapshot_iter(&s);
	struct th_snap_entry e;
	const uint8_t *k, *v;
	assert_int_equal(th_snap_next(&it, &e, &k, &v), 1);
	assert_int_equal(e.revision, r.rs.revision);
	assert_int_equal(e.value_len, 2000000);
	assert_int_equal(v[1999999], 'z');
	th_ctl_snapshot_free(&s);
	sql(sh, "DELETE FROM topo.topo_data WHERE path = '/big'");
	next_rec(&tr, &r);
	assert_int_equal(r.type, TH_REC_CHANGE);
	assert_int_equal(r.ch.op, TH_OP_DELETE);
	th_test_reader_close(&tr);
	check_state(sh);
}

/* ---- benchmark mode: records over the control socket (STREAM) ------------- */

static void test_hub__stream_is_refused_when_the_fanout_mode_is_off(void **state)
{
	struct shared *sh = need(state);
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(sh->hub->socket, &c), 0);
	struct th_ctl_reply rep;
	assert_int_equal(th_ctl_call(c, TH_MSG_STREAM, NULL, 0, &rep, 5000), -ENOTSUP);
	stat_u64(c, "evictions"); /* the connection stays usable */
	th_ctl_close(c);
}

/* The next message of a stream subscriber: its length, 0 at the end of the
 * stream, -ETIMEDOUT. */
static ssize_t stream_next(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return -errno;
	assert_true((size_t)n <= cap);
	return n;
}

/* A change record of a stream: its fixed part, and key and value in buf. */
static struct th_rec_change stream_change(int fd, uint8_t *buf, size_t cap, const char *key, const char *value)
{
	ssize_t n = stream_next(fd, buf, cap, 5000);
	if (n <= 0)
		fail_msg("no record for %s from the stream: %s", key, n == 0 ? "end of stream" : th_strerror((int)n));
	struct th_rec_change c;
	assert_true((size_t)n >= sizeof c);
	memcpy(&c, buf, sizeof c);
	assert_int_equal((size_t)n, sizeof c + c.key_len + c.value_len + c.gtid_len);
	assert_int_equal(c.key_len, strlen(key));
	assert_memory_equal(buf + sizeof c, key, c.key_len);
	if (value) {
		assert_int_equal(c.value_len, strlen(value));
		assert_memory_equal(buf + sizeof c + c.key_len, value, c.value_len);
	}
	assert_true(c.gtid_len > 0);
	return c;
}

static int stream_open(const char *socket, struct th_msg_stream_reply *out)
{
	struct th_ctl *c;
	assert_int_equal(th_ctl_connect(socket, &c), 0);
	struct th_ctl_reply rep;
	int rc = th_ctl_call(c, TH_MSG_STREAM, NULL, 0, &rep, 5000);
	if (rc)
		fail_msg("STREAM: %s (%s)", th_strerror(rc), th_ctl_error(c));
	assert_true(rep.len >= sizeof *out);
	memcpy(out, rep.body, sizeof *out);
	th_ctl_reply_free(&rep);
	/* Keep the socket, drop the client's bookkeeping. */
	int fd = dup(th_ctl_fd(c));
	th_ctl_close(c);
	assert_true(fd >= 0);
	return fd;
}

static void test_hub__stream_fanout_in_order_and_a_subscriber_that_never_reads_is_dropped(void **state)
{
	struct shared *sh = need(state);
	/* A hub of its own, in the benchmark mode, on the same server. */
	static const char *const args[] = { "--bench-socket-fanout=true", NULL };
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .extra_args = args };
	struct th_hub_proc *hub;
	char why[2048];
	if (th_hub_proc_start(&o, &hub, why, sizeof why) < 0)
		fail_msg("fan-out hub: %s", why);
	struct th_ctl *ctl_c;
	assert_int_equal(th_ctl_connect(hub->socket, &ctl_c), 0);
	struct th_msg_stream_reply ra, rb;
	int a = stream_open(hub->socket, &ra);
	int b = stream_open(hub->socket, &rb); /* never read until the end */
	assert_true(ra.revision > 0 && ra.sndbuf > 0);
	assert_int_equal(stat_u64(ctl_c, "streams"), 2);
	const size_t cap = 2u << 20;
	uint8_t *buf = malloc(cap);
	assert_non_null(buf);

	/* Every record of a few transactions, in order, one message each. */
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/fan/a', 'one')");
	sql(sh, "BEGIN; INSERT INTO topo.topo_data (path, data) VALUES ('/fan/b', 'two');"
		"INSERT INTO topo.topo_data (path, data) VALUES ('/fan/c', 'three');"
		"UPDATE topo.topo_data SET data = 'uno', version = version + 1 WHERE path = '/fan/a'; COMMIT");
	sql(sh, "DELETE FROM topo.topo_data WHERE path = '/fan/b'");
	struct th_rec_change c1 = stream_change(a, buf, cap, "/fan/a", "one");
	assert_true(c1.revision > ra.revision);
	assert_int_equal(c1.op, TH_OP_PUT);
	struct th_rec_change c2 = stream_change(a, buf, cap, "/fan/b", "two");
	struct th_rec_change c3 = stream_change(a, buf, cap, "/fan/c", "three");
	struct th_rec_change c4 = stream_change(a, buf, cap, "/fan/a", "uno");
	assert_int_equal(c2.revision, c1.revision + 1);
	assert_int_equal(c3.revision, c2.revision);
	assert_int_equal(c4.revision, c2.revision);
	assert_int_equal(c4.version, 2);
	struct th_rec_change c5 = stream_change(a, buf, cap, "/fan/b", NULL);
	assert_int_equal(c5.op, TH_OP_DELETE);
	assert_int_equal(c5.revision, c2.revision + 1);

	/* Fill b's buffer: 1.5 times it in 256 KiB values, one transaction
	 * each. a reads as they come; b never does. The publisher must not wait
	 * for b (it would never see the rest of them, nor would a). */
	const unsigned big = 256u << 10;
	unsigned nbig = (unsigned)(rb.sndbuf * 3 / 2 / big) + 2;
	uint64_t worst = 0;
	for (unsigned i = 0; i < nbig; i++) {
		char q[200], key[32];
		snprintf(key, sizeof key, "/fan/big%02u", i);
		snprintf(q, sizeof q, "INSERT INTO topo.topo_data (path, data) VALUES ('%s', REPEAT('b', %u))", key, big);
		uint64_t t0 = th_now_ns();
		sql(sh, q);
		struct th_rec_change c = stream_change(a, buf, cap, key, NULL);
		uint64_t dt = th_now_ns() - t0;
		worst = dt > worst ? dt : worst;
		assert_int_equal(c.value_len, big);
		assert_int_equal(buf[sizeof c + c.key_len + big - 1], 'b');
	}
	print_message("%u records of 256 KiB: the reading subscriber had each within %.1f ms of its commit; "
		      "send buffer %" PRIu64 " bytes\n",
		      nbig, (double)worst / 1e6, rb.sndbuf);
	assert_true(worst < 2000000000ull);
	uint64_t t0 = th_now_ns();
	while (stat_u64(ctl_c, "stream_drops") < 1 && th_now_ns() - t0 < 2000000000ull)
		usleep(1000);
	assert_int_equal(stat_u64(ctl_c, "stream_drops"), 1);
	assert_true(stat_u64(ctl_c, "evictions") >= 1);
	assert_true(th_hub_proc_log_contains(hub, "dropped stream subscriber"));
	/* b gets what was queued, in order (a prefix), then the end. */
	stream_change(b, buf, cap, "/fan/a", "one");
	stream_change(b, buf, cap, "/fan/b", "two");
	stream_change(b, buf, cap, "/fan/c", "three");
	stream_change(b, buf, cap, "/fan/a", "uno");
	stream_change(b, buf, cap, "/fan/b", NULL);
	unsigned got = 0;
	ssize_t n;
	while ((n = stream_next(b, buf, cap, 2000)) > 0) {
		char key[32];
		snprintf(key, sizeof key, "/fan/big%02u", got++);
		assert_true((size_t)n > sizeof(struct th_rec_change) + strlen(key));
		assert_memory_equal(buf + sizeof(struct th_rec_change), key, strlen(key));
	}
	assert_int_equal(n, 0);
	assert_true(got > 0 && got < nbig);
	print_message("the subscriber that never read had %u of them queued when it was dropped\n", got);

	/* A subscriber that closes is removed; so was the dropped one. */
	close(a);
	close(b);
	t0 = th_now_ns();
	while (stat_u64(ctl_c, "streams") != 0 && th_now_ns() - t0 < 2000000000ull)
		usleep(1000);
	assert_int_equal(stat_u64(ctl_c, "streams"), 0);
	th_ctl_close(ctl_c);
	free(buf);
	sql(sh, "DELETE FROM topo.topo_data WHERE path LIKE '/fan/%'");
	int st = th_hub_proc_stop(hub);
	bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0 && !th_hub_proc_sanitizer_report(hub);
	if (!clean) {
		char tail[4000];
		fprintf(stderr, "fan-out hub ended badly (status 0x%x): %s\n", st,
			th_hub_proc_log_tail(hub, tail, sizeof tail));
	}
	th_hub_proc_free(hub);
	assert_true(clean);
	check_state(sh);
}

static bool wait_log(const struct th_hub_proc *hp, const char *needle, unsigned ms)
{
	for (unsigned i = 0; i < ms / 10; i++) {
		if (th_hub_proc_log_contains(hp, needle))
			return true;
		usleep(10000);
	}
	return th_hub_proc_log_contains(hp, needle);
}

static void append_config(const struct th_hub_proc *hp, const char *text)
{
	FILE *f = fopen(hp->config, "ae");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		fail_msg("%s: %s", hp->config, strerror(errno));
}

/* A child as uid 65534 attaches, says 'A', then says 'C' once the hub closes
 * its connection (or 'T' after 20 s, 'E' if it could not attach). */
static pid_t spawn_nobody_reader(const char *socket, int *rd)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		char c = 'E';
		struct th_ctl *ctl;
		struct th_msg_attach_reply rep;
		struct th_ring_reader_fds fds;
		if (setgid(65534) == 0 && setuid(65534) == 0 && th_ctl_connect(socket, &ctl) == 0 &&
		    th_ctl_attach(ctl, 0, (uint32_t)getpid(), "nobody", &rep, &fds, 5000) == 0) {
			c = 'A';
			if (write(p[1], &c, 1) != 1)
				_exit(3);
			struct pollfd pf = { .fd = th_ctl_fd(ctl), .events = POLLIN | POLLRDHUP };
			char b[64];
			c = poll(&pf, 1, 20000) == 1 && recv(pf.fd, b, sizeof b, MSG_DONTWAIT) == 0 ? 'C' : 'T';
		}
		if (write(p[1], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	*rd = p[0];
	return pid;
}

static char read_child(int fd, int ms)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char c = '?';
	if (poll(&pf, 1, ms) == 1 && read(fd, &c, 1) != 1)
		c = '?';
	return c;
}

/* SIGHUP re-reads the file: the keys `topohubd --help` marks (SIGHUP) take
 * effect in the running hub, a reader attached before reads on without a
 * resync, a peer that is no longer allowed is disconnected, a key that needs
 * a restart is named and kept as it runs, and a file that does not parse
 * changes nothing. */
static void test_hub__sighup_applies_what_can_change_and_names_the_rest(void **state)
{
	struct shared *sh = need(state);
	struct th_mariadb *src[1] = { sh->db };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1,
					 .extra_config = "[hub]\nallow_uids = 65534\nreader_timeout_max_ms = 60000\n" };
	struct th_hub_proc *hp = NULL;
	char why[1024];
	if (th_hub_proc_start(&o, &hp, why, sizeof why))
		fail_msg("topohubd: %s", why);
	const uint64_t s30 = 30ull * 1000000000u;
	struct th_test_reader before, after;
	if (th_test_reader_open(&before, hp->socket, s30, "before", why, sizeof why))
		fail_msg("%s", why);
	assert_int_equal(before.att.timeout_ns, s30);
	bool root = geteuid() == 0;
	int child_fd = -1;
	pid_t child = root ? spawn_nobody_reader(hp->socket, &child_fd) : -1;
	if (root && read_child(child_fd, 10000) != 'A')
		fail_msg("uid 65534 could not attach while allowed");

	append_config(hp, "\n[hub]\nallow_uids = 12345\nreader_timeout_max_ms = 2000\nlog_level = debug\n"
			  "ring_capacity = 8M\n");
	kill(hp->pid, SIGHUP);
	if (!wait_log(hp, "SIGHUP: applied", 5000))
		fail_msg("no reload in the log: %s", th_hub_proc_log_tail(hp, why, sizeof why));
	if (!th_hub_proc_log_contains(hp, "SIGHUP: applied allow_uids, reader_timeout_max_ms, reader_timeout_default_ms, log_level"))
		fail_msg("the reload names other keys: %s", th_hub_proc_log_tail(hp, why, sizeof why));
	assert_true(wait_log(hp, "needs a restart (running as started): ring_capacity", 1000));
	/* (The default, 5000 ms, is clamped to the new maximum.) Applied: a new
	 * reader's timeout is within the new bound. */
	if (th_test_reader_open(&after, hp->socket, s30, "after", why, sizeof why))
		fail_msg("%s", why);
	assert_int_equal(after.att.timeout_ns, 2000000000ull);
	th_test_reader_close(&after);
	/* Revoked: the hub closed the connection of uid 65534. */
	if (root) {
		char c = read_child(child_fd, 10000);
		int st;
		waitpid(child, &st, 0);
		close(child_fd);
		if (c != 'C')
			fail_msg("uid 65534 kept its connection after it was removed from allow_uids (child said '%c')", c);
		assert_true(th_hub_proc_log_contains(hp, "no longer allowed"));
	}
	/* Kept: the reader from before reads on, with no resync between. */
	if (th_mariadb_sql(sh->db, "INSERT INTO topo.topo_data (path, data) VALUES ('/hup/a', '1')"))
		fail_msg("%s", sh->db->err);
	struct th_test_rec r;
	next_rec(&before, &r);
	assert_int_equal(r.type, TH_REC_CHANGE);
	assert_string_equal(r.key, "/hup/a");
	th_test_rec_free(&r);
	th_test_reader_close(&before);

	/* A file that does not parse: said, and nothing changes. */
	append_config(hp, "\n[hub]\nreader_timeout_max_ms = 500\nno_such_key = 1\n");
	kill(hp->pid, SIGHUP);
	if (!wait_log(hp, "the running configuration stays", 5000))
		fail_msg("no reload error in the log: %s", th_hub_proc_log_tail(hp, why, sizeof why));
	assert_true(th_hub_proc_log_contains(hp, "unknown key 'no_such_key'"));
	if (th_test_reader_open(&after, hp->socket, s30, "after2", why, sizeof why))
		fail_msg("%s", why);
	assert_int_equal(after.att.timeout_ns, 2000000000ull);
	th_test_reader_close(&after);
	int st = th_hub_proc_stop(hp);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_false(th_hub_proc_sanitizer_report(hp));
	th_hub_proc_free(hp);
}

/* promtool check metrics on text: 0 clean, -1 with its findings in lint, 1
 * when promtool is missing (said; make test installs it). */
static int promtool_lint(const char *text, char *lint, size_t lint_len)
{
	lint[0] = '\0';
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("  promtool missing: the text format is not linted here (make test installs it)\n");
		return 1;
	}
	char path[] = "/tmp/topohub-metrics-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(lint, 1, lint_len - 1, p) : 0;
	lint[n] = '\0';
	int st = p ? pclose(p) : -1;
	unlink(path);
	return st != 0 || n ? -1 : 0;
}

/* One HTTP/1.0 request to 127.0.0.1:port; the whole response in out. */
static size_t http(unsigned port, const char *request, char *out, size_t out_len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		fail_msg("connect 127.0.0.1:%u: %s", port, strerror(errno));
	assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
	size_t n = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) != 1)
			fail_msg("no HTTP response within 5 s (%zu bytes so far)", n);
		ssize_t r = recv(fd, out + n, out_len - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == out_len - 1)
			break;
	}
	out[n] = '\0';
	close(fd);
	return n;
}

/* metrics_listen: GET /metrics on loopback serves what topohubctl metrics
 * prints (the same families, promtool-clean), anything else gets 404 or
 * 405, and an address another host could reach is refused at start. */
static void test_hub__metrics_listen_serves_prometheus_on_loopback_only(void **state)
{
	struct shared *sh = need(state);
	struct th_mariadb *src[1] = { sh->db };
	int fp = th_test_free_port();
	if (fp < 0)
		fail_msg("a free port: %s", strerror(-fp));
	unsigned port = (unsigned)fp;
	char flag[64];
	snprintf(flag, sizeof flag, "--metrics-listen=127.0.0.1:%u", port);
	const char *args[] = { flag, NULL };
	struct th_hub_proc_options o = { .sources = src, .nsources = 1, .extra_args = args };
	struct th_hub_proc *hp = NULL;
	char why[1024];
	if (th_hub_proc_start(&o, &hp, why, sizeof why))
		fail_msg("topohubd: %s", why);
	static char out[131072];
	http(port, "GET /metrics HTTP/1.0\r\n\r\n", out, sizeof out);
	if (strncmp(out, "HTTP/1.0 200", 12) && strncmp(out, "HTTP/1.1 200", 12))
		fail_msg("GET /metrics: %.300s", out);
	assert_non_null(strstr(out, "text/plain; version=0.0.4"));
	char *body = strstr(out, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	assert_non_null(strstr(body, "topohub_up 1\n"));
	assert_non_null(strstr(body, "# TYPE topohub_publish_latency_seconds histogram\n"));
	assert_non_null(strstr(body, "topohub_source_connected 1\n"));
	char lint[4096];
	if (promtool_lint(body, lint, sizeof lint) < 0)
		fail_msg("promtool check metrics on GET /metrics: %s", lint);
	http(port, "GET / HTTP/1.0\r\n\r\n", out, sizeof out);
	assert_non_null(strstr(out, " 404 "));
	http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", out, sizeof out);
	assert_non_null(strstr(out, " 405 "));
	http(port, "garbage\r\n\r\n", out, sizeof out); /* answered or closed; the hub lives on */
	http(port, "GET /metrics HTTP/1.0\r\n\r\n", out, sizeof out);
	assert_non_null(strstr(out, "topohub_up 1\n"));
	int st = th_hub_proc_stop(hp);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_false(th_hub_proc_sanitizer_report(hp));
	th_hub_proc_free(hp);

	/* Not loopback: a usage error at start, saying why. */
	const char *wide[] = { "--metrics-listen=0.0.0.0:9779", NULL };
	o.extra_args = wide;
	o.no_wait = true;
	hp = NULL;
	if (th_hub_proc_start(&o, &hp, why, sizeof why))
		fail_msg("topohubd: %s", why);
	int ws;
	assert_int_equal(th_hub_proc_wait(hp, 10000, &ws), 0);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 2);
	assert_true(th_hub_proc_log_contains(hp, "not a loopback address"));
	th_hub_proc_free(hp);
}

static void test_hub__sigterm_stops_cleanly_and_a_restart_is_a_new_generation(void **state)
{
	struct shared *sh = need(state);
	struct th_test_reader tr;
	open_reader(sh, &tr, 10ull * 1000000000u, "term");
	uint64_t gen = tr.att.generation, rev = tr.att.revision;
	int st = th_hub_proc_stop(sh->hub);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_false(th_hub_proc_sanitizer_report(sh->hub));
	struct stat sst;
	assert_int_not_equal(lstat(sh->hub->socket, &sst), 0); /* socket file removed */
	struct th_test_rec r;
	assert_int_equal(th_test_reader_next(&tr, &r, 1000), -TH_ECLOSED); /* readers told */
	th_test_reader_close(&tr);
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/while/down', '1')");
	char why[1024];
	if (th_hub_proc_restart(sh->hub, why, sizeof why) != 0)
		fail_msg("%s", why);
	open_reader(sh, &tr, 10ull * 1000000000u, "term2");
	assert_int_not_equal(tr.att.generation, gen);
	assert_true(tr.att.revision > rev);
	th_test_reader_close(&tr);
	check_state(sh);
}

static void test_hub__sigkill_and_restart_new_generation_state_equals_tables(void **state)
{
	struct shared *sh = need(state);
	struct th_test_reader tr;
	open_reader(sh, &tr, 10ull * 1000000000u, "kill");
	uint64_t gen = tr.att.generation;
	th_test_reader_close(&tr);
	assert_int_equal(th_hub_proc_kill(sh->hub), 0);
	sql(sh, "UPDATE topo.topo_data SET data = 'changed', version = version + 1 WHERE path = '/pre/a';"
		"DELETE FROM topo.topo_data WHERE path = '/s/y'");
	char why[1024];
	if (th_hub_proc_restart(sh->hub, why, sizeof why) != 0) /* the stale socket file is replaced */
		fail_msg("%s", why);
	open_reader(sh, &tr, 10ull * 1000000000u, "kill2");
	assert_int_not_equal(tr.att.generation, gen);
	th_test_reader_close(&tr);
	check_state(sh);
}

/* Runs topohubctl; returns its exit status and its stdout in out. */
static int ctl(struct shared *sh, char *out, size_t out_len, const char *args)
{
	const char *build = getenv("BUILD");
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s/topohubctl --socket %s %s 2>&1", build && *build ? build : "build",
		 sh->hub->socket, args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, out_len - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The value of the first sample line that starts with prefix, or -1. */
static double metric_value(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, prefix, n) && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

/* The histograms of `topohubctl metrics`: publish latency counts every
 * published transaction, the sampled reader lag sees a reader that stopped
 * reading for 400 ms (a sample every 100 ms above the 100 ms bucket), and
 * the whole output passes promtool where it is installed. */
static void test_hubctl__metrics_histograms(void **state)
{
	struct shared *sh = need(state);
	static char out[65536];
	struct th_test_reader tr;
	open_reader(sh, &tr, 30ull * 1000000000u, "slow");
	assert_int_equal(ctl(sh, out, sizeof out, "metrics"), 0);
	double before = metric_value(out, "topohub_publish_latency_seconds_count");
	double slow_before = metric_value(out, "topohub_reader_lag_sampled_seconds_count") -
			     metric_value(out, "topohub_reader_lag_sampled_seconds_bucket{le=\"0.1\"}");
	assert_true(before >= 0);
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/hist/a', '1')");
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/hist/b', '2')");
	usleep(400000); /* tr reads nothing meanwhile */
	assert_int_equal(ctl(sh, out, sizeof out, "metrics"), 0);
	assert_non_null(strstr(out, "# TYPE topohub_publish_latency_seconds histogram\n"));
	assert_non_null(strstr(out, "# TYPE topohub_reader_lag_sampled_seconds histogram\n"));
	assert_non_null(strstr(out, "topohub_publish_latency_seconds_bucket{le=\"+Inf\"} "));
	assert_true(metric_value(out, "topohub_publish_latency_seconds_count") >= before + 2);
	assert_true(metric_value(out, "topohub_publish_latency_seconds_sum") > 0);
	double slow = metric_value(out, "topohub_reader_lag_sampled_seconds_count") -
		      metric_value(out, "topohub_reader_lag_sampled_seconds_bucket{le=\"0.1\"}");
	if (slow < slow_before + 1)
		fail_msg("no lag sample above 100 ms for a reader 400 ms behind:\n%s", out);
	assert_true(metric_value(out, "topohub_config_reloads_total") == 0);
	struct th_test_rec r;
	next_rec(&tr, &r);
	th_test_rec_free(&r);
	th_test_reader_close(&tr);
	const char *save = getenv("TH_SAVE_METRICS"); /* a fresh doc/monitoring sample's families */
	if (save) {
		FILE *f = fopen(save, "w");
		if (f) {
			fputs(out, f);
			fclose(f);
		}
	}
	char lint[4096];
	if (promtool_lint(out, lint, sizeof lint) < 0)
		fail_msg("promtool check metrics: %s", lint);
}

static void test_hubctl__operator_commands(void **state)
{
	struct shared *sh = need(state);
	char out[16384];
	sql(sh, "INSERT INTO topo.topo_data (path, data) VALUES ('/ctl/a', 'alpha'), ('/ctl/b', 'beta')");
	char gtid[256], args[600];
	assert_int_equal(th_mariadb_query_value(sh->db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	snprintf(args, sizeof args, "sync %s", gtid);
	assert_int_equal(ctl(sh, out, sizeof out, args), 0);
	assert_true(strtoull(out, NULL, 10) > 0);
	assert_int_equal(ctl(sh, out, sizeof out, "get /ctl/a"), 0);
	assert_non_null(strstr(out, "alpha"));
	assert_int_equal(ctl(sh, out, sizeof out, "get /ctl/none"), 1);
	assert_int_equal(ctl(sh, out, sizeof out, "list /ctl"), 0);
	assert_non_null(strstr(out, "/ctl/a"));
	assert_non_null(strstr(out, "/ctl/b"));
	assert_int_equal(ctl(sh, out, sizeof out, "--json list /ctl"), 0);
	assert_non_null(strstr(out, "\"key\":\"/ctl/b\""));
	assert_int_equal(ctl(sh, out, sizeof out, "status"), 0);
	assert_non_null(strstr(out, "revision"));
	assert_int_equal(ctl(sh, out, sizeof out, "--json status"), 0);
	assert_non_null(strstr(out, "\"generation\":"));
	assert_int_equal(ctl(sh, out, sizeof out, "readers"), 0);
	assert_int_equal(ctl(sh, out, sizeof out, "metrics"), 0);
	assert_non_null(strstr(out, "# TYPE topohub_revision gauge"));
	assert_non_null(strstr(out, "topohub_records_published_total "));
	assert_non_null(strstr(out, "topohub_evictions_total "));
	assert_non_null(strstr(out, "topohub_reconnects_total "));
	assert_non_null(strstr(out, "topohub_binlog_position_bytes{source="));
	assert_int_equal(ctl(sh, out, sizeof out, "--table topo_elections get /pre/e"), 0);
	assert_non_null(strstr(out, "leader-1"));
}

static void test_hubd__help_and_bad_flags(void **state)
{
	(void)state;
	const char *build = getenv("BUILD");
	char cmd[600], out[16384];
	snprintf(cmd, sizeof cmd, "%s/topohubd --help", build && *build ? build : "build");
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	const char *keys[] = { "--socket", "--socket-mode", "--allow-uids", "--ring-capacity", "--reader-timeout-max-ms",
			       "--sources", "--password-file", "--password-env", "--tls-ca", "--heartbeat-ms",
			       "--reconnect-max-ms", "--schema", "--monitor-interval-us" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!strstr(out, keys[i]))
			fail_msg("--help does not list %s", keys[i]);
	snprintf(cmd, sizeof cmd, "%s/topohubd --source /x.sock --password secret >/dev/null 2>&1",
		 build && *build ? build : "build");
	int st = system(cmd);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	snprintf(cmd, sizeof cmd, "%s/topohubd --no-such-flag 1 >/dev/null 2>&1", build && *build ? build : "build");
	st = system(cmd);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hubd__help_and_bad_flags),
		cmocka_unit_test(test_hub__initial_load_equals_tables),
		cmocka_unit_test(test_hub__commits_arrive_in_order_one_batch_per_transaction),
		cmocka_unit_test(test_hub__snapshot_and_get),
		cmocka_unit_test(test_hub__sync_answers_the_revision_after_a_gtid),
		cmocka_unit_test(test_hub__refuses_a_uid_that_is_not_allowed),
		cmocka_unit_test(test_hub__survives_garbage_oversized_and_100k_fuzz_messages),
		cmocka_unit_test(test_hub__evicts_a_stopped_reader_within_its_timeout_plus_10ms),
		cmocka_unit_test(test_hub__monitor_does_not_poll_idle_readers_every_interval),
		cmocka_unit_test(test_hub__the_publisher_and_the_monitor_run_at_real_time_priority),
		cmocka_unit_test(test_hub__reclaims_the_slot_of_a_killed_reader_within_100ms),
		cmocka_unit_test(test_hub__ddl_on_a_watched_table_publishes_a_resync),
		cmocka_unit_test(test_hub__a_transaction_too_big_for_the_ring_is_a_resync),
		cmocka_unit_test(test_hub__a_position_the_server_lost_is_a_reload_and_a_resync),
		cmocka_unit_test(test_hub__stream_is_refused_when_the_fanout_mode_is_off),
		cmocka_unit_test(test_hub__stream_fanout_in_order_and_a_subscriber_that_never_reads_is_dropped),
		cmocka_unit_test(test_hubctl__operator_commands),
		cmocka_unit_test(test_hubctl__metrics_histograms),
		cmocka_unit_test(test_hub__sighup_applies_what_can_change_and_names_the_rest),
		cmocka_unit_test(test_hub__metrics_listen_serves_prometheus_on_loopback_only),
		cmocka_unit_test(test_hub__sigterm_stops_cleanly_and_a_restart_is_a_new_generation),
		cmocka_unit_test(test_hub__sigkill_and_restart_new_generation_state_equals_tables),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
