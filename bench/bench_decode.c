/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohub-bench decode: binlog decoding speed, against mariadb-binlog.
 *
 *   topohub-bench decode [--json] [--runs N] [--no-peer] FILE
 *
 * Decodes FILE through the whole reader pipeline the hub runs: events
 * (framing, CRC32) -> row images of the watched tables -> topo changes
 * grouped per transaction (readers/txn.h, the mysqltopo tables in schema
 * "topo"). The file is read once first so that it is in the page cache; the
 * process is pinned to the CPU it starts on; the best of N runs (default 5)
 * counts. Then, in the same run, `mariadb-binlog --verbose
 * --base64-output=decode-rows FILE > /dev/null` is timed once on the same file
 * (the tool an operator would otherwise use to read row events).
 *
 * Output (--json, one object per line on stdout):
 *   {"name":"decode","file":..,"bytes":..,"events":..,"rows":..,"topo_rows":..,
 *    "txns":..,"seconds":..,"events_per_s":..,"rows_per_s":..,"topo_rows_per_s":..,
 *    "bytes_per_s":..}
 *   {"name":"decode_peer","tool":"mariadb-binlog","file":..,"seconds":..,"ratio":..}
 * rows counts row images of watched tables (an UPDATE is one), topo_rows
 * the topo changes made of them (a key-changing UPDATE makes two); ratio is
 * the peer's time over ours. A human summary goes to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "readers/binlog.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "readers/txn.h"

extern char **environ;

struct decode_result {
	uint64_t events, rows, topo_rows, txns, bytes;
	double seconds;
};

/* Read the whole file once so that every run finds it in the page cache. */
static int warm(const char *path, uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	static char buf[1 << 20];
	ssize_t n;
	uint64_t total = 0;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		total += (uint64_t)n;
	close(fd);
	*size = total;
	return n < 0 ? -errno : 0;
}

static int decode_once(const char *path, struct decode_result *out)
{
	struct th_binlog_file_opts fo = { .size = sizeof fo };
	fo.decoder.size = sizeof fo.decoder;
	struct th_binlog_file *f;
	int rc = th_binlog_file_open(&f, path, &fo);
	if (rc) {
		fprintf(stderr, "topohub-bench decode: %s: %s\n", path, th_strerror(rc));
		return rc;
	}
	struct th_txn_asm *a;
	if ((rc = th_txn_asm_new(&a, NULL))) {
		th_binlog_file_close(f);
		return rc;
	}
	struct th_binlog_event ev;
	const struct th_txn *t;
	uint64_t t0 = th_now_ns();
	while ((rc = th_binlog_file_next(f, &ev)) == 1) {
		rc = th_txn_feed(a, &ev, &t);
		if (rc < 0) {
			fprintf(stderr, "topohub-bench decode: %s\n", th_txn_error(a));
			break;
		}
	}
	uint64_t t1 = th_now_ns();
	if (rc < 0 && rc != -EINTR && th_binlog_file_error(f)[0])
		fprintf(stderr, "topohub-bench decode: %s\n", th_binlog_file_error(f));
	struct th_txn_stats st;
	th_txn_stats(a, &st);
	out->events = st.events;
	out->rows = st.rows;
	out->topo_rows = st.changes;
	out->txns = st.txns;
	out->bytes = th_binlog_file_pos(f);
	out->seconds = (double)(t1 - t0) / 1e9;
	th_txn_free(a);
	th_binlog_file_close(f);
	return rc < 0 ? rc : 0;
}

/* Wall time of `mariadb-binlog --verbose --base64-output=decode-rows FILE > /dev/null`;
   < 0 when the tool is missing or fails. */
static double time_peer(const char *tool, const char *path)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = { (char *)tool, "--no-defaults", "--verbose", "--base64-output=decode-rows",
			 (char *)path, NULL };
	pid_t pid;
	uint64_t t0 = th_now_ns();
	int rc = posix_spawnp(&pid, tool, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		return -1;
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	uint64_t t1 = th_now_ns();
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	return (double)(t1 - t0) / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: topohub-bench decode [--json] [--runs N] [--no-peer] FILE\n"
			"  FILE: a binlog, e.g. from bench/gen-topo-binlog.sh\n");
}

int th__bench_decode(int argc, char **argv)
{
	bool json = false, peer = true;
	int runs = 5;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--no-peer"))
			peer = false;
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (argv[i][0] == '-') {
			usage();
			return 2;
		} else
			path = argv[i];
	}
	if (!path || runs < 1) {
		usage();
		return 2;
	}
	/* One core: stay on the CPU we start on, away from migrations. */
	int cpu = sched_getcpu();
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		(void)sched_setaffinity(0, sizeof set, &set);
	}
	uint64_t size;
	int rc = warm(path, &size);
	if (rc) {
		fprintf(stderr, "topohub-bench decode: %s: %s\n", path, strerror(-rc));
		return 1;
	}
	struct decode_result best = { .seconds = 0 };
	for (int r = 0; r < runs; r++) {
		struct decode_result d;
		if (decode_once(path, &d))
			return 1;
		fprintf(stderr, "decode run %d: %.3f s, %.2f M topo rows/s\n", r + 1, d.seconds,
			(double)d.topo_rows / d.seconds / 1e6);
		if (r == 0 || d.seconds < best.seconds)
			best = d;
	}
	double s = best.seconds > 0 ? best.seconds : 1e-9;
	if (json)
		printf("{\"name\":\"decode\",\"file\":\"%s\",\"bytes\":%llu,\"events\":%llu,\"rows\":%llu,"
		       "\"topo_rows\":%llu,\"txns\":%llu,\"seconds\":%.6f,\"events_per_s\":%.0f,"
		       "\"rows_per_s\":%.0f,\"topo_rows_per_s\":%.0f,\"bytes_per_s\":%.0f}\n",
		       path, (unsigned long long)best.bytes, (unsigned long long)best.events,
		       (unsigned long long)best.rows, (unsigned long long)best.topo_rows,
		       (unsigned long long)best.txns, best.seconds, (double)best.events / s,
		       (double)best.rows / s, (double)best.topo_rows / s, (double)best.bytes / s);
	fprintf(stderr,
		"decode %s: %llu bytes, %llu events, %llu rows, %llu topo rows in %.3f s (best of %d):\n"
		"  %.2f M events/s, %.2f M rows/s, %.2f M topo rows/s, %.0f MB/s (target 3 M topo rows/s)\n",
		path, (unsigned long long)best.bytes, (unsigned long long)best.events,
		(unsigned long long)best.rows, (unsigned long long)best.topo_rows, best.seconds, runs,
		(double)best.events / s / 1e6, (double)best.rows / s / 1e6, (double)best.topo_rows / s / 1e6,
		(double)best.bytes / s / 1e6);
	if (!peer)
		return 0;
	const char *tool = "mariadb-binlog";
	double ps = time_peer(tool, path);
	if (ps < 0) {
		tool = "mysqlbinlog";
		ps = time_peer(tool, path);
	}
	if (ps < 0) {
		fprintf(stderr, "decode_peer: neither mariadb-binlog nor mysqlbinlog ran; skipped\n");
		if (json)
			printf("{\"name\":\"decode_peer\",\"tool\":null,\"file\":\"%s\",\"skipped\":"
			       "\"mariadb-binlog not available\"}\n", path);
		return 0;
	}
	if (json)
		printf("{\"name\":\"decode_peer\",\"tool\":\"%s\",\"file\":\"%s\",\"seconds\":%.6f,\"ratio\":%.2f}\n",
		       tool, path, ps, ps / s);
	fprintf(stderr, "decode_peer %s --verbose --base64-output=decode-rows: %.3f s, %.1fx our time\n", tool,
		ps, ps / s);
	return 0;
}
