/* SPDX-License-Identifier: Apache-2.0 */
/* A private MariaDB server for tests; see mariadb.h. */
#include "tests/support/mariadb.h"
#include "tests/support/support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "common/th_error.h"
#include "common/th_time.h"

/* Bump when the template's install options change, so old templates are not reused. */
#define TEMPLATE_FORMAT 1
#define MAX_ARGS 64

/* Options shared by mariadb-install-db and the server: InnoDB refuses to start
 * on files made with other sizes, and small files copy fast. */
static const char *const innodb_args[] = {
	"--innodb-buffer-pool-size=16M",
	"--innodb-log-file-size=8M",
	"--innodb-log-buffer-size=2M",
	"--innodb-data-file-path=ibdata1:4M:autoextend",
	"--innodb-autoextend-increment=1",
	"--innodb-undo-tablespaces=0",
	"--performance-schema=OFF",
	NULL,
};

/* Finds an executable: $env, then the usual Debian folders, then $PATH. */
static bool find_program(const char *env, const char *name, char *out, size_t out_len)
{
	const char *e = getenv(env);
	if (e && *e) {
		snprintf(out, out_len, "%s", e);
		return access(out, X_OK) == 0;
	}
	static const char *const dirs[] = { "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin" };
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(out, out_len, "%s/%s", dirs[i], name);
		if (access(out, X_OK) == 0)
			return true;
	}
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);
		if (n > 0 && (size_t)snprintf(out, out_len, "%.*s/%s", (int)n, path, name) < out_len &&
		    access(out, X_OK) == 0)
			return true;
		path = colon ? colon + 1 : NULL;
	}
	return false;
}

/* Copies a tree of folders and regular files (what a MariaDB data dir holds). */
static int copy_tree(const char *from, const char *to)
{
	if (mkdir(to, 0700) != 0)
		return -errno;
	DIR *d = opendir(from);
	if (!d)
		return -errno;
	int rc = 0;
	struct dirent *e;
	char src[1024], dst[1024];
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(src, sizeof src, "%s/%s", from, e->d_name);
		snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
		struct stat st;
		if (lstat(src, &st) != 0)
			rc = -errno;
		else if (S_ISDIR(st.st_mode))
			rc = copy_tree(src, dst);
		else if (S_ISREG(st.st_mode))
			rc = th_test_copy_file(src, dst, st.st_mode);
	}
	closedir(d);
	return rc;
}

/* Last part of a log file, for error messages. */
static void tail_file(const char *path, char *out, size_t out_len)
{
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	size_t want = out_len - 1;
	off_t start = end > (off_t)want ? end - (off_t)want : 0;
	ssize_t n = pread(fd, out, want, start);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
}

struct child_io {
	int in_fd;  /* /dev/null */
	int out_fd; /* log file */
};

/* fork + exec with the death signal set. Only async-signal-safe calls after
 * fork(): the test program may have threads. */
static pid_t spawn(const char *path, char *const argv[], const struct child_io *io)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid != 0)
		return pid < 0 ? -errno : pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) /* the parent died before prctl took effect */
		_exit(127);
	dup2(io->in_fd, 0);
	dup2(io->out_fd, 1);
	dup2(io->out_fd, 2);
	/* Do not let the server inherit the test's sockets: a client connection
	 * held open by a server child would hide a dead peer from the test. */
	if (close_range(3, ~0u, 0) != 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	execv(path, argv);
	_exit(127);
}

/* Waits for pid with a deadline; returns the wait status, or -ETIMEDOUT. */
static int wait_child(pid_t pid, uint64_t timeout_ns)
{
	uint64_t deadline = th_now_ns() + timeout_ns;
	for (;;) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (th_now_ns() > deadline)
			return -ETIMEDOUT;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* Run a program to its end, stdin from /dev/null, stdout and stderr to
 * logpath; killed after timeout_ns. Returns its wait status, or a negative
 * error (-ETIMEDOUT when it was killed). */
static int run_logged(const char *prog, char *const argv[], const char *logpath, uint64_t timeout_ns)
{
	struct child_io io = { open("/dev/null", O_RDONLY | O_CLOEXEC),
			       open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) };
	pid_t pid = (io.in_fd >= 0 && io.out_fd >= 0) ? spawn(prog, argv, &io) : -EIO;
	if (io.in_fd >= 0)
		close(io.in_fd);
	if (io.out_fd >= 0)
		close(io.out_fd);
	int status = pid > 0 ? wait_child(pid, timeout_ns) : pid;
	if (status == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return status;
}

static const char *user_name(void)
{
	struct passwd *pw = getpwuid(getuid());
	return pw ? pw->pw_name : "root";
}

/* FNV-1a over what makes a template valid: the server binary and our options. */
static uint64_t template_key(const char *mariadbd)
{
	struct stat st;
	uint64_t h = 1469598103934665603ull;
	char buf[512];
	int n = snprintf(buf, sizeof buf, "%d|%s|", TEMPLATE_FORMAT, mariadbd);
	if (stat(mariadbd, &st) == 0)
		n += snprintf(buf + n, sizeof buf - (size_t)n, "%lld|%lld|%llu", (long long)st.st_size,
			      (long long)st.st_mtime, (unsigned long long)st.st_ino);
	for (int i = 0; i < n && i < (int)sizeof buf; i++)
		h = (h ^ (uint8_t)buf[i]) * 1099511628211ull;
	for (size_t i = 0; innodb_args[i]; i++)
		for (const char *p = innodb_args[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h;
}

/* A folder is ours and safe to trust: a real directory, owned by us, private. */
static bool own_private_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid() &&
	       (st.st_mode & 077) == 0;
}

/* Makes (once, under a lock) the template data dir; returns its path in out. */
static int ensure_template(const char *install_db, const char *mariadbd, char *out, size_t out_len,
			   char *why, size_t why_len)
{
	char lock_path[512];
	uint64_t key = template_key(mariadbd);
	snprintf(out, out_len, "%s/topohub-mdb-template-%u-%016llx", th_test_tmp_root(), (unsigned)getuid(),
		 (unsigned long long)key);
	snprintf(lock_path, sizeof lock_path, "%s/topohub-mdb-template-%u.lock", th_test_tmp_root(), (unsigned)getuid());
	int lock = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lock < 0) {
		int e = -errno;
		th_test_say(why, why_len, "cannot open %s: %s", lock_path, strerror(-e));
		return e;
	}
	while (flock(lock, LOCK_EX) != 0 && errno == EINTR)
		;
	int rc = 0;
	char ready[600];
	snprintf(ready, sizeof ready, "%s/ready", out);
	if (own_private_dir(out) && access(ready, F_OK) == 0)
		goto done;
	th_test_rm_rf(out); /* half-made by a killed run, or not ours to trust */

	char build[512];
	snprintf(build, sizeof build, "%s/topohub-mdb-tbuild-XXXXXX", th_test_tmp_root());
	if (!mkdtemp(build)) {
		rc = -errno;
		th_test_say(why, why_len, "mkdtemp %s: %s", build, strerror(errno));
		goto done;
	}
	char datadir[600], logpath[600], user_arg[128], datadir_arg[640];
	snprintf(datadir, sizeof datadir, "%s/data", build);
	snprintf(logpath, sizeof logpath, "%s/install.log", build);
	snprintf(user_arg, sizeof user_arg, "--user=%s", user_name());
	snprintf(datadir_arg, sizeof datadir_arg, "--datadir=%s", datadir);
	char *argv[MAX_ARGS];
	int argc = 0;
	argv[argc++] = (char *)install_db;
	argv[argc++] = "--no-defaults";
	if (getuid() == 0)
		argv[argc++] = user_arg;
	argv[argc++] = datadir_arg;
	argv[argc++] = "--auth-root-authentication-method=normal";
	argv[argc++] = "--skip-test-db";
	argv[argc++] = "--skip-name-resolve";
	for (size_t i = 0; innodb_args[i]; i++)
		argv[argc++] = (char *)innodb_args[i];
	argv[argc] = NULL;

	int status = run_logged(install_db, argv, logpath, 120ull * 1000000000u);
	if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char tail[300];
		tail_file(logpath, tail, sizeof tail);
		th_test_say(why, why_len, "%s failed (status %d): ...%s", install_db, status, tail);
		th_test_rm_rf(build);
		rc = -TH_ESERVER;
		goto done;
	}
	char marker[600];
	snprintf(marker, sizeof marker, "%s/ready", build);
	int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	if (rename(build, out) != 0) {
		rc = -errno;
		th_test_say(why, why_len, "rename %s -> %s: %s", build, out, strerror(errno));
		th_test_rm_rf(build);
	}
done:
	close(lock);
	return rc;
}

/* Removes instance folders of test programs that died without stopping them.
 * Their servers died with them (PR_SET_PDEATHSIG). */
static void remove_stale_instances(void)
{
	DIR *d = opendir(th_test_tmp_root());
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "topohub-mdb-", 12) != 0 || strncmp(e->d_name, "topohub-mdb-template", 20) == 0)
			continue;
		char path[600], pidfile[700];
		snprintf(path, sizeof path, "%s/%s", th_test_tmp_root(), e->d_name);
		if (!own_private_dir(path))
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
		if (owner == 0) {
			/* No owner file (a template build, or an instance being made):
			 * only remove it when it is clearly abandoned. */
			struct stat st;
			if (stat(path, &st) != 0 || time(NULL) - st.st_mtime < 600)
				continue;
		}
		th_test_rm_rf(path);
	}
	closedir(d);
}

static MYSQL *connect_admin(struct th_mariadb *db)
{
	MYSQL *m = mysql_init(NULL);
	if (!m)
		return NULL;
	unsigned timeout = 5;
	my_bool off = 0;
	mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);
	unsigned proto = MYSQL_PROTOCOL_SOCKET;
	mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
	if (!mysql_real_connect(m, "localhost", "root", "", NULL, 0, db->socket, CLIENT_MULTI_STATEMENTS)) {
		snprintf(db->err, sizeof db->err, "admin connect: %s (%u)", mysql_error(m), mysql_errno(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

/* Runs SQL text; drains every result so multi-statements finish. */
static int run_sql(struct th_mariadb *db, MYSQL *m, const char *sql)
{
	if (mysql_query(m, sql) != 0)
		goto fail;
	do {
		MYSQL_RES *r = mysql_store_result(m);
		if (r)
			mysql_free_result(r);
		else if (mysql_field_count(m) != 0)
			goto fail;
		int next = mysql_next_result(m);
		if (next > 0)
			goto fail;
		if (next < 0)
			break;
	} while (1);
	return 0;
fail:
	snprintf(db->err, sizeof db->err, "%s (%u) in: %.200s", mysql_error(m), mysql_errno(m), sql);
	return -TH_EMYSQL;
}

/* Starts mariadbd on the prepared folder and waits until it accepts connections.
 * Returns 0, -EADDRINUSE (retry with another port), or another error. */
static int launch(struct th_mariadb *db, const char *mariadbd, const struct th_mariadb_options *o,
		  char *why, size_t why_len)
{
	char a_user[128], a_datadir[300], a_socket[300], a_port[32], a_pid[300], a_log[300], a_tmp[300];
	char a_sid[48], a_dom[48], a_binlog[300], a_ca[300], a_cert[300], a_key[300];
	snprintf(a_user, sizeof a_user, "--user=%s", user_name());
	snprintf(a_datadir, sizeof a_datadir, "--datadir=%s", db->datadir);
	snprintf(a_socket, sizeof a_socket, "--socket=%s", db->socket);
	snprintf(a_port, sizeof a_port, "--port=%u", db->port);
	snprintf(a_pid, sizeof a_pid, "--pid-file=%s/mariadbd.pid", db->dir);
	snprintf(a_log, sizeof a_log, "--log-error=%s", db->error_log);
	snprintf(a_tmp, sizeof a_tmp, "--tmpdir=%s", db->dir);
	snprintf(a_sid, sizeof a_sid, "--server-id=%u", db->server_id);
	snprintf(a_dom, sizeof a_dom, "--gtid-domain-id=%u", o ? o->gtid_domain_id : 0);
	snprintf(a_binlog, sizeof a_binlog, "--log-bin=%s", db->binlog_basename);

	char *argv[MAX_ARGS];
	int argc = 0;
	argv[argc++] = (char *)mariadbd;
	argv[argc++] = "--no-defaults"; /* must be first: ignore /etc/mysql */
	if (getuid() == 0)
		argv[argc++] = a_user;
	argv[argc++] = a_datadir;
	argv[argc++] = a_socket;
	argv[argc++] = a_port;
	argv[argc++] = "--bind-address=127.0.0.1";
	argv[argc++] = a_pid;
	argv[argc++] = a_log;
	argv[argc++] = a_tmp;
	argv[argc++] = a_sid;
	argv[argc++] = a_dom;
	argv[argc++] = a_binlog;
	argv[argc++] = "--binlog-format=ROW";
	argv[argc++] = "--binlog-row-image=FULL";
	argv[argc++] = "--binlog-row-metadata=FULL";
	argv[argc++] = "--binlog-checksum=CRC32";
	argv[argc++] = "--gtid-strict-mode=ON";
	argv[argc++] = "--skip-name-resolve";
	argv[argc++] = "--skip-slave-start";
	argv[argc++] = "--character-set-server=utf8mb4";
	argv[argc++] = "--collation-server=utf8mb4_general_ci";
	argv[argc++] = "--max-connections=64";
	argv[argc++] = "--open-files-limit=4096";
	argv[argc++] = "--table-open-cache=200";
	argv[argc++] = "--key-buffer-size=1M";
	argv[argc++] = "--aria-pagecache-buffer-size=1M";
	argv[argc++] = "--innodb-flush-log-at-trx-commit=2";
	argv[argc++] = "--sync-binlog=0";
	argv[argc++] = "--innodb-doublewrite=0";
	argv[argc++] = "--innodb-use-native-aio=0";
	argv[argc++] = "--innodb-temp-data-file-path=ibtmp1:1M:autoextend";
	argv[argc++] = "--innodb-buffer-pool-load-at-startup=0";
	argv[argc++] = "--innodb-buffer-pool-dump-at-shutdown=0";
	argv[argc++] = "--max-allowed-packet=64M";
	argv[argc++] = "--loose-feedback=OFF";
	for (size_t i = 0; innodb_args[i]; i++)
		argv[argc++] = (char *)innodb_args[i];
	if (db->tls_ca[0]) {
		snprintf(a_ca, sizeof a_ca, "--ssl-ca=%s", db->tls_ca);
		snprintf(a_cert, sizeof a_cert, "--ssl-cert=%s", db->tls_ca);
		snprintf(a_key, sizeof a_key, "--ssl-key=%s/tls-key.pem", db->dir);
		argv[argc++] = a_ca;
		argv[argc++] = a_cert;
		argv[argc++] = a_key;
	}
	for (size_t i = 0; o && o->extra_args && o->extra_args[i] && argc < MAX_ARGS - 1; i++)
		argv[argc++] = (char *)o->extra_args[i];
	argv[argc] = NULL;

	struct child_io io = { open("/dev/null", O_RDONLY | O_CLOEXEC),
			       open(db->error_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) };
	pid_t pid = (io.in_fd >= 0 && io.out_fd >= 0) ? spawn(mariadbd, argv, &io) : -EIO;
	if (io.in_fd >= 0)
		close(io.in_fd);
	if (io.out_fd >= 0)
		close(io.out_fd);
	if (pid < 0) {
		th_test_say(why, why_len, "cannot start %s: %s", mariadbd, strerror((int)-pid));
		return (int)pid;
	}
	db->pid = pid;

	uint64_t deadline = th_now_ns() + (uint64_t)(o && o->start_timeout_ms ? o->start_timeout_ms : 30000) * 1000000u;
	for (;;) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			db->pid = 0;
			char tail[400];
			tail_file(db->error_log, tail, sizeof tail);
			if (strstr(tail, "Address already in use") || strstr(tail, "Can't start server: Bind"))
				return -EADDRINUSE;
			th_test_say(why, why_len, "mariadbd exited (status 0x%x) before accepting connections: ...%s",
			    status, tail);
			return -TH_ESERVER;
		}
		struct stat st;
		if (stat(db->socket, &st) == 0) {
			db->admin = connect_admin(db);
			if (db->admin)
				return 0;
		}
		if (th_now_ns() > deadline) {
			char tail[400];
			tail_file(db->error_log, tail, sizeof tail);
			th_test_say(why, why_len, "mariadbd did not accept connections in time (%s): ...%s", db->err, tail);
			return -ETIMEDOUT;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* A self-signed certificate for 127.0.0.1 (only) that is also its own CA. */
static int make_certificate(struct th_mariadb *db, const char *openssl, char *why, size_t why_len)
{
	char key_arg[300], log[300];
	snprintf(db->tls_ca, sizeof db->tls_ca, "%s/tls-cert.pem", db->dir);
	snprintf(key_arg, sizeof key_arg, "%s/tls-key.pem", db->dir);
	snprintf(log, sizeof log, "%s/openssl.log", db->dir);
	char *argv[] = { (char *)openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
			 "-nodes", "-keyout", key_arg, "-out", db->tls_ca, "-days", "2", "-subj", "/CN=127.0.0.1",
			 "-addext", "subjectAltName=IP:127.0.0.1", NULL };
	int status = run_logged(openssl, argv, log, 30ull * 1000000000u);
	if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char tail[300];
		tail_file(log, tail, sizeof tail);
		th_test_say(why, why_len, "openssl could not make a certificate: %s", tail);
		db->tls_ca[0] = '\0';
		return -TH_ESERVER;
	}
	return 0;
}

static void random_password(char *out, size_t len)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	uint8_t raw[32];
	size_t n = len - 1 < sizeof raw ? len - 1 : sizeof raw;
	if (getrandom(raw, n, 0) != (ssize_t)n) {
		uint64_t x = th_now_ns() ^ (uint64_t)getpid() << 32;
		for (size_t i = 0; i < n; i++, x = x * 6364136223846793005ull + 1442695040888963407ull)
			raw[i] = (uint8_t)(x >> 56);
	}
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[raw[i] % (sizeof alphabet - 1)];
	out[n] = '\0';
}

int th_mariadb_start(const struct th_mariadb_options *opts, struct th_mariadb **out, char *why, size_t why_len)
{
	uint64_t t0 = th_now_ns();
	char mariadbd[512], install_db[512], tmpl[512];
	*out = NULL;
	th_test_say(why, why_len, "%s", "");
	if (!find_program("TH_MARIADBD", "mariadbd", mariadbd, sizeof mariadbd)) {
		th_test_say(why, why_len, "mariadbd is not installed (apt-get install mariadb-server, or set TH_MARIADBD)");
		return TH_MARIADB_UNAVAILABLE;
	}
	if (!find_program("TH_MARIADB_INSTALL_DB", "mariadb-install-db", install_db, sizeof install_db)) {
		th_test_say(why, why_len, "mariadb-install-db is not installed (apt-get install mariadb-server, or set TH_MARIADB_INSTALL_DB)");
		return TH_MARIADB_UNAVAILABLE;
	}
	remove_stale_instances();
	int rc = ensure_template(install_db, mariadbd, tmpl, sizeof tmpl, why, why_len);
	if (rc < 0)
		return rc;

	struct th_mariadb *db = calloc(1, sizeof *db);
	if (!db)
		return -ENOMEM;
	snprintf(db->dir, sizeof db->dir, "%s/topohub-mdb-XXXXXX", th_test_tmp_root());
	if (!mkdtemp(db->dir)) {
		rc = -errno;
		th_test_say(why, why_len, "mkdtemp %s: %s", db->dir, strerror(errno));
		free(db);
		return rc;
	}
	snprintf(db->host, sizeof db->host, "127.0.0.1");
	snprintf(db->user, sizeof db->user, "topohub");
	snprintf(db->socket, sizeof db->socket, "%s/mysqld.sock", db->dir);
	snprintf(db->datadir, sizeof db->datadir, "%s/data", db->dir);
	snprintf(db->binlog_basename, sizeof db->binlog_basename, "%s/data/binlog", db->dir);
	snprintf(db->error_log, sizeof db->error_log, "%s/error.log", db->dir);
	db->server_id = opts && opts->server_id ? opts->server_id : 1;
	random_password(db->password, sizeof db->password);

	char path[600];
	snprintf(path, sizeof path, "%s/owner.pid", db->dir);
	FILE *f = fopen(path, "we");
	if (f) {
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
	if (opts && opts->tls) {
		char openssl[512];
		if (!find_program("TH_OPENSSL", "openssl", openssl, sizeof openssl)) {
			th_test_say(why, why_len, "openssl is not installed (apt-get install openssl): needed for a TLS server");
			th_mariadb_stop(db);
			return TH_MARIADB_UNAVAILABLE;
		}
		if ((rc = make_certificate(db, openssl, why, why_len)) < 0)
			goto fail;
	}
	snprintf(path, sizeof path, "%s/data", tmpl);
	rc = copy_tree(path, db->datadir);
	if (rc < 0) {
		th_test_say(why, why_len, "copying the template data dir %s: %s", path, strerror(-rc));
		goto fail;
	}

	for (int attempt = 0;; attempt++) {
		rc = th_test_free_port();
		if (rc < 0) {
			th_test_say(why, why_len, "no free TCP port: %s", strerror(-rc));
			goto fail;
		}
		db->port = (unsigned)rc;
		rc = launch(db, mariadbd, opts, why, why_len);
		if (rc != -EADDRINUSE || attempt == 4)
			break;
		unlink(db->socket);
	}
	if (rc == -EADDRINUSE)
		th_test_say(why, why_len, "mariadbd: no free TCP port after 5 attempts");
	if (rc < 0)
		goto fail;

	/* The account the code under test uses, kept out of the binlog so that a
	 * fresh instance has an empty GTID position. */
	rc = th_mariadb_sql(db,
			    "SET SESSION sql_log_bin = 0;"
			    "CREATE USER 'topohub'@'%%' IDENTIFIED BY '%s'%s;"
			    "GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, SLAVE MONITOR, SELECT "
			    "ON *.* TO 'topohub'@'%%';"
			    "SET SESSION sql_log_bin = 1",
			    db->password, db->tls_ca[0] ? " REQUIRE SSL" : "");
	if (rc == 0)
		rc = th_mariadb_query_value(db, db->version, sizeof db->version, "SELECT VERSION()");
	if (rc < 0) {
		th_test_say(why, why_len, "setting up the instance: %s", db->err);
		goto fail;
	}
	db->startup_ns = th_now_ns() - t0;
	*out = db;
	return 0;
fail:
	th_mariadb_stop(db);
	return rc;
}

void th_mariadb_stop(struct th_mariadb *db)
{
	if (!db)
		return;
	if (db->admin)
		mysql_close(db->admin);
	if (db->pid > 0) {
		/* SIGKILL works on a SIGSTOPped server too, and nothing here needs a
		 * clean shutdown: the folder goes away. */
		kill(db->pid, SIGKILL);
		while (waitpid(db->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	const char *keep = getenv("TH_MARIADB_KEEP");
	if (db->dir[0] && !(keep && *keep == '1'))
		th_test_rm_rf(db->dir);
	memset(db->password, 0, sizeof db->password);
	free(db);
}

int th_mariadb_signal(struct th_mariadb *db, int sig)
{
	if (db->pid <= 0)
		return -ESRCH;
	return kill(db->pid, sig) == 0 ? 0 : -errno;
}

static int vformat(char **out, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	*out = malloc((size_t)n + 1);
	if (!*out)
		return -ENOMEM;
	vsnprintf(*out, (size_t)n + 1, fmt, ap);
	return 0;
}

static int ensure_admin(struct th_mariadb *db)
{
	if (!db->admin)
		db->admin = connect_admin(db);
	return db->admin ? 0 : -TH_EMYSQL;
}

int th_mariadb_sql(struct th_mariadb *db, const char *fmt, ...)
{
	char *sql;
	va_list ap;
	va_start(ap, fmt);
	int rc = vformat(&sql, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	rc = ensure_admin(db);
	if (rc == 0)
		rc = run_sql(db, db->admin, sql);
	free(sql);
	return rc;
}

int th_mariadb_query_value(struct th_mariadb *db, char *out, size_t out_len, const char *fmt, ...)
{
	char *sql;
	va_list ap;
	va_start(ap, fmt);
	int rc = vformat(&sql, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	rc = ensure_admin(db);
	if (rc < 0)
		goto out;
	if (mysql_query(db->admin, sql) != 0) {
		snprintf(db->err, sizeof db->err, "%s (%u) in: %.200s", mysql_error(db->admin),
			 mysql_errno(db->admin), sql);
		rc = -TH_EMYSQL;
		goto out;
	}
	MYSQL_RES *res = mysql_store_result(db->admin);
	if (!res) {
		snprintf(db->err, sizeof db->err, "no result set from: %.200s", sql);
		rc = -TH_EMYSQL;
		goto out;
	}
	MYSQL_ROW row = mysql_fetch_row(res);
	unsigned long *lens = row ? mysql_fetch_lengths(res) : NULL;
	if (!row || mysql_num_fields(res) < 1) {
		rc = -ENOENT;
	} else if (lens[0] + 1 > out_len) {
		rc = -ERANGE;
	} else {
		if (row[0])
			memcpy(out, row[0], lens[0]);
		out[row[0] ? lens[0] : 0] = '\0';
	}
	mysql_free_result(res);
	while (mysql_next_result(db->admin) == 0) {
		res = mysql_store_result(db->admin);
		if (res)
			mysql_free_result(res);
	}
out:
	free(sql);
	return rc;
}

MYSQL *th_mariadb_connect_user(struct th_mariadb *db, int tcp, const char *database)
{
	MYSQL *m = mysql_init(NULL);
	if (!m) {
		snprintf(db->err, sizeof db->err, "mysql_init: out of memory");
		return NULL;
	}
	unsigned timeout = 5;
	my_bool off = 0;
	unsigned proto = tcp ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
	mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);
	mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
	if (db->tls_ca[0]) {
		my_bool on = 1;
		mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &on);
		mysql_optionsv(m, MYSQL_OPT_SSL_CA, db->tls_ca);
	}
	if (!mysql_real_connect(m, tcp ? db->host : "localhost", db->user, db->password, database,
				tcp ? db->port : 0, tcp ? NULL : db->socket, CLIENT_MULTI_STATEMENTS)) {
		snprintf(db->err, sizeof db->err, "connect as %s: %s (%u)", db->user, mysql_error(m), mysql_errno(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

int th_mariadb_create_topo_schema(struct th_mariadb *db, const char *schema)
{
	if (!schema)
		schema = "topo";
	return th_mariadb_sql(db,
		"CREATE DATABASE IF NOT EXISTS `%s`;"
		"CREATE TABLE `%s`.topo_data (path VARCHAR(512) NOT NULL PRIMARY KEY, data MEDIUMBLOB,"
		" version BIGINT NOT NULL DEFAULT 1, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,"
		" modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=InnoDB;"
		"CREATE TABLE `%s`.topo_locks (path VARCHAR(512) NOT NULL PRIMARY KEY, contents TEXT,"
		" expires_at TIMESTAMP NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,"
		" INDEX expires_idx (expires_at)) ENGINE=InnoDB;"
		"CREATE TABLE `%s`.topo_elections (name VARCHAR(512) NOT NULL PRIMARY KEY,"
		" leader_id VARCHAR(255) NOT NULL, contents TEXT, expires_at TIMESTAMP NOT NULL,"
		" created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,"
		" modified_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,"
		" INDEX expires_idx (expires_at)) ENGINE=InnoDB",
		schema, schema, schema, schema);
}
