/* SPDX-License-Identifier: Apache-2.0 */
/* topohubd as a child process for tests; see hub_proc.h. */
#include "tests/support/hub_proc.h"
#include "tests/support/support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/th_error.h"
#include "common/th_time.h"

extern char **environ;

/* Folders of test programs that died without freeing their hub. */
static void remove_stale(void)
{
	DIR *d = opendir(th_test_tmp_root());
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "topohub-hub-", 12) != 0)
			continue;
		char path[600], pidfile[700];
		snprintf(path, sizeof path, "%s/%s", th_test_tmp_root(), e->d_name);
		struct stat st;
		if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
			continue;
		snprintf(pidfile, sizeof pidfile, "%s/owner.pid", path);
		FILE *f = fopen(pidfile, "re");
		long owner = 0;
		if (f) {
			if (fscanf(f, "%ld", &owner) != 1)
				owner = 0;
			fclose(f);
		}
		if (owner > 0 && (kill((pid_t)owner, 0) == 0 || errno == EPERM))
			continue;
		if (owner == 0 && time(NULL) - st.st_mtime < 600)
			continue;
		th_test_rm_rf(path);
	}
	closedir(d);
}

/* fork + exec with the death signal; only async-signal-safe calls in the child. */
static pid_t spawn(const char *path, char *const argv[], char *const envp[], int out_fd, unsigned nofile,
		   uid_t uid, gid_t gid)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid < 0 ? -errno : pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (nofile) {
		/* Soft and hard: the hub cannot raise it (prlimit --nofile=N). */
		struct rlimit rl = { nofile, nofile };
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(126);
	}
	if (uid) {
		if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
			_exit(125);
		/* A change of credentials clears the death signal: again. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
	}
	int null = open("/dev/null", O_RDONLY);
	if (null >= 0)
		dup2(null, 0);
	dup2(out_fd, 1);
	dup2(out_fd, 2);
	if (close_range(3, ~0u, 0) != 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	if (envp)
		execve(path, argv, envp);
	else
		execv(path, argv);
	_exit(127);
}

static int write_config(struct th_hub_proc *h, const struct th_hub_proc_options *o, char *why, size_t why_len)
{
	FILE *f = fopen(h->config, "we");
	if (!f) {
		th_test_say(why, why_len, "%s: %s", h->config, strerror(errno));
		return -errno;
	}
	fprintf(f, "; written by tests/support/hub_proc.c\n[hub]\nsocket = %s\nsocket_mode = 0666\n"
		   "ring_capacity = 4M\nlog_level = info\n\n[mysql]\nuser = %s\nsources = ",
		h->socket, o->user ? o->user : o->sources[0]->user);
	for (size_t i = 0; i < o->nsources; i++) {
		struct th_mariadb *db = o->sources[i];
		if (o->tcp)
			fprintf(f, "%s%s:%u", i ? "," : "", db->host, db->port);
		else
			fprintf(f, "%s%s", i ? "," : "", db->socket);
	}
	fprintf(f, "\nheartbeat_ms = 500\nreconnect_min_ms = 20\nreconnect_max_ms = 500\n"
		   "connect_timeout_ms = 2000\n\n");
	if (o->extra_config)
		fprintf(f, "%s\n", o->extra_config);
	if (fclose(f) != 0) {
		th_test_say(why, why_len, "%s: %s", h->config, strerror(errno));
		return -EIO;
	}
	return 0;
}

static int launch(struct th_hub_proc *h, bool no_wait, char *why, size_t why_len)
{
	static const char *const no_args[] = { NULL };
	const char *const *extra = h->extra_args ? (const char *const *)h->extra_args : no_args;
	size_t nextra = 0;
	while (extra[nextra])
		nextra++;
	char **argv = calloc(nextra + 4, sizeof *argv);
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	char **envp = calloc(nenv + 4, sizeof *envp);
	char notify_env[300];
	snprintf(notify_env, sizeof notify_env, "NOTIFY_SOCKET=%s", h->notify);
	if (!argv || !envp) {
		free(argv);
		free(envp);
		return -ENOMEM;
	}
	size_t a = 0;
	argv[a++] = h->binary;
	argv[a++] = "--config";
	argv[a++] = h->config;
	for (size_t i = 0; i < nextra; i++)
		argv[a++] = (char *)extra[i];
	argv[a] = NULL;
	/* A hub run as another uid may not read the sanitizer's suppressions in
	 * a private checkout (a mktemp -d folder, /root): a copy in its own
	 * folder, and TSAN_OPTIONS naming it. */
	char tsan_env[PATH_MAX * 2] = "";
	const char *tsan = getenv("TSAN_OPTIONS");
	const char *at = tsan ? strstr(tsan, "suppressions=") : NULL;
	if (h->run_as_uid && at) {
		char from[PATH_MAX], copy[PATH_MAX];
		snprintf(from, sizeof from, "%.*s", (int)strcspn(at + 13, " :"), at + 13);
		snprintf(copy, sizeof copy, "%s/tsan.supp", h->dir);
		if (th_test_copy_file(from, copy, 0644) == 0)
			snprintf(tsan_env, sizeof tsan_env, "TSAN_OPTIONS=%.*ssuppressions=%s%s", (int)(at - tsan), tsan,
				 copy, at + 13 + strcspn(at + 13, " :"));
	}
	size_t e = 0;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) && strncmp(environ[i], "TOPOHUB_MYSQL_PASSWORD=", 23) &&
		    (!tsan_env[0] || strncmp(environ[i], "TSAN_OPTIONS=", 13)))
			envp[e++] = environ[i];
	if (tsan_env[0])
		envp[e++] = tsan_env;
	envp[e++] = notify_env;
	envp[e++] = h->env_password;
	envp[e] = NULL;
	int out = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (out < 0) {
		free(argv);
		free(envp);
		th_test_say(why, why_len, "%s: %s", h->log, strerror(errno));
		return -errno;
	}
	/* Drain stale notifications of a previous run. */
	char junk[256];
	while (recv(h->notify_fd, junk, sizeof junk, MSG_DONTWAIT) > 0)
		;
	uint64_t t0 = th_now_ns();
	pid_t pid = spawn(h->binary, argv, envp, out, h->nofile_limit, h->run_as_uid, h->run_as_gid);
	close(out);
	free(argv);
	free(envp);
	if (pid < 0) {
		th_test_say(why, why_len, "cannot start %s: %s", h->binary, strerror((int)-pid));
		return (int)pid;
	}
	h->pid = pid;
	if (no_wait)
		return 0;
	unsigned limit = h->ready_timeout_ms ? h->ready_timeout_ms : 30000;
	uint64_t deadline = t0 + (uint64_t)limit * 1000000u;
	for (;;) {
		struct pollfd p = { .fd = h->notify_fd, .events = POLLIN };
		int n = poll(&p, 1, 20);
		if (n > 0) {
			char msg[512];
			ssize_t r = recv(h->notify_fd, msg, sizeof msg - 1, MSG_DONTWAIT);
			if (r > 0) {
				msg[r] = '\0';
				if (strstr(msg, "READY=1")) {
					h->ready_ns = th_now_ns() - t0;
					return 0;
				}
			}
		}
		int status;
		if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
			h->pid = 0;
			h->last_status = status;
			char tail[600];
			th_hub_proc_log_tail(h, tail, sizeof tail);
			th_test_say(why, why_len, "topohubd exited before READY (status %s %d): ...%s",
			    WIFEXITED(status) ? "exit" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail);
			return -ECHILD;
		}
		if (th_now_ns() > deadline) {
			char tail[600];
			th_hub_proc_log_tail(h, tail, sizeof tail);
			th_test_say(why, why_len, "topohubd not READY within %u ms: ...%s", limit, tail);
			return -ETIMEDOUT;
		}
	}
}

int th_hub_proc_start(const struct th_hub_proc_options *o, struct th_hub_proc **out, char *why, size_t why_len)
{
	*out = NULL;
	if (!o || !o->sources || o->nsources == 0) {
		th_test_say(why, why_len, "no source");
		return -EINVAL;
	}
	remove_stale();
	struct th_hub_proc *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->notify_fd = -1;
	h->last_status = -1;
	const char *build = getenv("BUILD");
	snprintf(h->binary, sizeof h->binary, "%s/topohubd", build && *build ? build : "build");
	if (access(h->binary, X_OK) != 0) {
		th_test_say(why, why_len, "%s: %s (build it first: make all)", h->binary, strerror(errno));
		free(h);
		return -ENOENT;
	}
	snprintf(h->dir, sizeof h->dir, "%s/topohub-hub-XXXXXX", th_test_tmp_root());
	if (!mkdtemp(h->dir)) {
		int e = -errno;
		th_test_say(why, why_len, "mkdtemp: %s", strerror(errno));
		free(h);
		return e;
	}
	/* Searchable by all: tests connect as other uids to exercise SO_PEERCRED
	 * (the files inside stay private; the socket is 0666). */
	chmod(h->dir, 0711);
	snprintf(h->socket, sizeof h->socket, "%s/hub.sock", h->dir);
	snprintf(h->config, sizeof h->config, "%s/topohubd.ini", h->dir);
	snprintf(h->log, sizeof h->log, "%s/topohubd.log", h->dir);
	snprintf(h->notify, sizeof h->notify, "%s/notify.sock", h->dir);
	char path[300];
	snprintf(path, sizeof path, "%s/owner.pid", h->dir);
	FILE *f = fopen(path, "we");
	if (f) {
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
	const char *pw = o->password ? o->password : o->sources[0]->password;
	size_t n = strlen(pw) + 32;
	h->env_password = malloc(n);
	int rc = -ENOMEM;
	if (!h->env_password)
		goto fail;
	snprintf(h->env_password, n, "TOPOHUB_MYSQL_PASSWORD=%s", pw);
	h->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(h->notify) >= sizeof a.sun_path) {
		rc = -ENAMETOOLONG;
		th_test_say(why, why_len, "notify socket path too long: %s", h->notify);
		goto fail;
	}
	memcpy(a.sun_path, h->notify, strlen(h->notify));
	if (h->notify_fd < 0 || bind(h->notify_fd, (struct sockaddr *)&a, sizeof a) != 0) {
		rc = -errno;
		th_test_say(why, why_len, "notify socket %s: %s", h->notify, strerror(errno));
		goto fail;
	}
	if ((rc = write_config(h, o, why, why_len)) < 0)
		goto fail;
	h->ready_timeout_ms = o->ready_timeout_ms;
	h->nofile_limit = o->nofile_limit;
	h->run_as_uid = o->run_as_uid;
	h->run_as_gid = o->run_as_gid;
	if (h->run_as_uid && (chown(h->dir, h->run_as_uid, h->run_as_gid) != 0 ||
			      chown(h->config, h->run_as_uid, h->run_as_gid) != 0 ||
			      chown(h->notify, h->run_as_uid, h->run_as_gid) != 0)) {
		rc = -errno;
		th_test_say(why, why_len, "handing %s to uid %u: %s", h->dir, (unsigned)h->run_as_uid, strerror(errno));
		goto fail;
	}
	rc = -ENOMEM;
	if (o->extra_args) {
		size_t k = 0;
		while (o->extra_args[k])
			k++;
		h->extra_args = calloc(k + 1, sizeof *h->extra_args);
		for (size_t i = 0; h->extra_args && i < k; i++)
			if (!(h->extra_args[i] = strdup(o->extra_args[i])))
				goto fail;
		if (!h->extra_args)
			goto fail;
	}
	if ((rc = launch(h, o->no_wait, why, why_len)) < 0)
		goto fail;
	*out = h;
	return 0;
fail:
	th_hub_proc_free(h);
	return rc;
}

int th_hub_proc_restart(struct th_hub_proc *h, char *why, size_t why_len)
{
	if (h->pid > 0) {
		th_test_say(why, why_len, "the hub is still running");
		return -EBUSY;
	}
	return launch(h, false, why, why_len);
}

int th_hub_proc_wait(struct th_hub_proc *h, unsigned timeout_ms, int *status)
{
	if (h->pid <= 0)
		return -ECHILD;
	uint64_t deadline = th_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int st;
		pid_t r = waitpid(h->pid, &st, WNOHANG);
		if (r == h->pid) {
			h->pid = 0;
			h->last_status = st;
			if (status)
				*status = st;
			return 0;
		}
		if (r < 0 && errno != EINTR)
			return -errno;
		if (th_now_ns() > deadline)
			return -ETIMEDOUT;
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int th_hub_proc_stop(struct th_hub_proc *h)
{
	if (h->pid <= 0)
		return -ECHILD;
	kill(h->pid, SIGTERM);
	int st;
	if (th_hub_proc_wait(h, 10000, &st) == 0)
		return st;
	th_hub_proc_kill(h);
	return h->last_status;
}

int th_hub_proc_kill(struct th_hub_proc *h)
{
	if (h->pid <= 0)
		return -ECHILD;
	kill(h->pid, SIGKILL);
	int st;
	while (waitpid(h->pid, &st, 0) < 0 && errno == EINTR)
		;
	h->pid = 0;
	h->last_status = st;
	return 0;
}

void th_hub_proc_free(struct th_hub_proc *h)
{
	if (!h)
		return;
	if (h->pid > 0)
		th_hub_proc_kill(h);
	if (h->notify_fd >= 0)
		close(h->notify_fd);
	const char *keep = getenv("TH_HUB_KEEP");
	if (h->dir[0] && !(keep && *keep == '1'))
		th_test_rm_rf(h->dir);
	for (size_t i = 0; h->extra_args && h->extra_args[i]; i++)
		free(h->extra_args[i]);
	free(h->extra_args);
	if (h->env_password) {
		memset(h->env_password, 0, strlen(h->env_password));
		free(h->env_password);
	}
	free(h);
}

const char *th_hub_proc_log_tail(const struct th_hub_proc *h, char *buf, size_t len)
{
	buf[0] = '\0';
	int fd = open(h->log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return buf;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t start = end > (off_t)(len - 1) ? end - (off_t)(len - 1) : 0;
	ssize_t n = pread(fd, buf, len - 1, start);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static char *read_log(const struct th_hub_proc *h)
{
	int fd = open(h->log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	off_t end = lseek(fd, 0, SEEK_END);
	char *buf = end >= 0 ? malloc((size_t)end + 1) : NULL;
	ssize_t n = buf ? pread(fd, buf, (size_t)end, 0) : -1;
	close(fd);
	if (!buf)
		return NULL;
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

bool th_hub_proc_log_contains(const struct th_hub_proc *h, const char *needle)
{
	char *log = read_log(h);
	bool yes = log && strstr(log, needle) != NULL;
	free(log);
	return yes;
}

bool th_hub_proc_sanitizer_report(const struct th_hub_proc *h)
{
	char *log = read_log(h);
	bool yes = log && (strstr(log, "ERROR: AddressSanitizer") || strstr(log, "WARNING: ThreadSanitizer") ||
			   strstr(log, "ERROR: LeakSanitizer") || strstr(log, "runtime error:"));
	free(log);
	return yes;
}

/* ---- MariaDB crash and restart -------------------------------------------- */

int th_hub_mariadb_restart(struct th_mariadb *db, char *why, size_t why_len)
{
	if (db->pid <= 0) {
		th_test_say(why, why_len, "the server is not running");
		return -ESRCH;
	}
	/* The command line the harness used, from /proc. */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)db->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *cmd = malloc(65536);
	ssize_t n = fd >= 0 && cmd ? read(fd, cmd, 65535) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		free(cmd);
		th_test_say(why, why_len, "cannot read %s", path);
		return -EIO;
	}
	cmd[n] = '\0';
	char *argv[128];
	int argc = 0;
	for (char *p = cmd; p < cmd + n && argc < 127; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;

	kill(db->pid, SIGKILL);
	while (waitpid(db->pid, NULL, 0) < 0 && errno == EINTR)
		;
	db->pid = 0;
	if (db->admin) {
		mysql_close(db->admin);
		db->admin = NULL;
	}
	int out = open(db->error_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	pid_t pid = out >= 0 ? spawn(argv[0], argv, NULL, out, 0, 0, 0) : -EIO;
	if (out >= 0)
		close(out);
	free(cmd);
	if (pid < 0) {
		th_test_say(why, why_len, "restart: %s", strerror((int)-pid));
		return (int)pid;
	}
	db->pid = pid;
	uint64_t deadline = th_now_ns() + 60ull * 1000000000u;
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			db->pid = 0;
			th_test_say(why, why_len, "mariadbd exited during restart (status 0x%x); see %s", st, db->error_log);
			return -TH_ESERVER;
		}
		MYSQL *m = mysql_init(NULL);
		unsigned proto = MYSQL_PROTOCOL_SOCKET, timeout = 2;
		mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
		mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
		bool ok = mysql_real_connect(m, "localhost", "root", "", NULL, 0, db->socket, 0) != NULL;
		mysql_close(m);
		if (ok)
			return 0;
		if (th_now_ns() > deadline) {
			th_test_say(why, why_len, "mariadbd did not accept connections within 60 s after restart");
			return -ETIMEDOUT;
		}
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}
