/* SPDX-License-Identifier: Apache-2.0 */
/* trace_synth.c: see trace_synth.h. */
#include "tests/support/trace_synth.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol/protocol.h"
#include "shm/ring.h"
#include "common/th_time.h"
#include "common/th_trace.h"

/* Stands in for work between probes, so that stages have non-zero lengths. */
static void busy_ns(uint64_t ns)
{
	uint64_t end = th_now_ns() + ns;
	while (th_now_ns() < end)
		;
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	size_t put = 0;
	while (put < len) {
		ssize_t n = write(fd, (const char *)buf + put, len - put);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		put += (size_t)n;
	}
	return 0;
}

static void wait_go(int go_fd)
{
	char c;
	/* A byte or EOF: either means go. */
	while (read(go_fd, &c, 1) < 0 && errno == EINTR)
		;
}

static int run_hub(const struct th_trace_synth *s, int go_fd, int to_reader, unsigned gap_us, pid_t reader)
{
	wait_go(go_fd);
	uint64_t log_pos = 256;
	for (unsigned i = 1; i <= s->changes; i++) {
		uint64_t rev = s->base_revision + i;
		static const uint32_t types[] = { 162, 19, 30, 16 }; /* GTID, TABLE_MAP, WRITE_ROWS, XID */
		for (unsigned e = 0; e < 4; e++) {
			log_pos += 40;
			TH_TRACE_HUB_BINLOG_EVENT(types[e], log_pos);
			busy_ns(500);
		}
		uint64_t commit_us = th_realtime_ns() / 1000;
		TH_TRACE_HUB_TXN_COMMIT(rev, 1, commit_us);
		busy_ns(1000);
		TH_TRACE_HUB_BATCH_PUBLISH(rev, 64, 1);
		if (write_full(to_reader, &rev, sizeof rev) != 0)
			return 1;
		if (gap_us)
			usleep(gap_us);
	}
	TH_TRACE_HUB_READER_EVICTED(reader, 1, TH_RING_EVICT_SLOW);
	uint64_t end = 0; /* revision 0: no more changes */
	return write_full(to_reader, &end, sizeof end) != 0;
}

static int run_reader(const struct th_trace_synth *s, int go_fd, int from_hub)
{
	wait_go(go_fd);
	uint64_t pos = 4096;
	for (;;) {
		uint64_t rev;
		if (read_full(from_hub, &rev, sizeof rev) != 0)
			return 1;
		if (rev == 0)
			break;
		TH_TRACE_READER_WOKEN(s, TH_RING_WAIT_FUTEX);
		busy_ns(300);
		TH_TRACE_READER_RECORD(rev, pos, TH_REC_CHANGE);
		pos += 112;
		busy_ns(300);
		TH_TRACE_CALLBACK_ENTER(rev, 1, 2); /* TH_EVENT_PUT */
		busy_ns(2000);
		TH_TRACE_CALLBACK_RETURN(rev, 1, 2);
	}
	TH_TRACE_RESYNC_START(s, 1); /* TH_RESYNC_EVICTED */
	busy_ns(5000);
	TH_TRACE_RESYNC_DONE(s, s->base_revision + s->changes, 3);
	return 0;
}

static pid_t fork_child(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
	}
	return pid;
}

int th_trace_synth_start(struct th_trace_synth *s, unsigned changes, unsigned gap_us)
{
	int go[2], data[2];
	memset(s, 0, sizeof *s);
	s->go_fd = -1;
	s->changes = changes;
	/* Revisions as a hub makes them: microseconds of the clock at start. */
	s->base_revision = th_realtime_ns() / 1000;
	if (pipe2(go, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(data, O_CLOEXEC) != 0) {
		int e = -errno;
		close(go[0]);
		close(go[1]);
		return e;
	}
	s->reader = fork_child();
	if (s->reader == 0) {
		close(go[1]);
		close(data[1]);
		_exit(run_reader(s, go[0], data[0]));
	}
	if (s->reader > 0)
		s->hub = fork_child();
	if (s->hub == 0) {
		close(go[1]);
		close(data[0]);
		_exit(run_hub(s, go[0], data[1], gap_us, s->reader));
	}
	int e = (s->reader < 0 || s->hub < 0) ? -errno : 0;
	close(go[0]);
	close(data[0]);
	close(data[1]);
	s->go_fd = go[1];
	if (e) {
		th_trace_synth_kill(s);
		return e;
	}
	return 0;
}

int th_trace_synth_go(struct th_trace_synth *s)
{
	/* EOF on the go pipe starts both children. */
	int rc = close(s->go_fd) == 0 ? 0 : -errno;
	s->go_fd = -1;
	return rc;
}

static int reap(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -ECHILD;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

int th_trace_synth_wait(struct th_trace_synth *s)
{
	int a = s->hub > 0 ? reap(s->hub) : -ECHILD;
	int b = s->reader > 0 ? reap(s->reader) : -ECHILD;
	s->hub = s->reader = 0;
	return a ? a : b;
}

void th_trace_synth_kill(struct th_trace_synth *s)
{
	if (s->go_fd >= 0)
		close(s->go_fd);
	s->go_fd = -1;
	if (s->hub > 0) {
		kill(s->hub, SIGKILL);
		reap(s->hub);
	}
	if (s->reader > 0) {
		kill(s->reader, SIGKILL);
		reap(s->reader);
	}
	s->hub = s->reader = 0;
}
