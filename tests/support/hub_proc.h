/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_proc.h: the real topohubd as a child process, for tests.
 *
 * th_hub_proc_start() writes a configuration file in a fresh temporary folder
 * (sources = the given private MariaDB instances, control socket in that
 * folder, mode 0666 so that tests may connect as other users and exercise
 * SO_PEERCRED; ring_capacity 4M, so records up to 1 MiB; heartbeat 500 ms,
 * reconnect backoff 20..500 ms), starts `$BUILD/topohubd --config FILE` (BUILD defaults to
 * "build"; tests/run.sh exports it) with the password in its environment,
 * stderr to a log file in the folder, and waits for readiness: the hub's
 * sd_notify "READY=1" datagram on a NOTIFY_SOCKET this helper listens on.
 * So every test that starts a hub also tests the systemd readiness path.
 *
 * Guarantees:
 * - The hub never outlives the test program (PR_SET_PDEATHSIG), like the
 *   MariaDB harness; th_hub_proc_free() kills it (if running), reaps it and
 *   removes the folder; folders of dead test programs are removed by the
 *   next start.
 * - A hub that exits before it is ready is reported with its exit status and
 *   the tail of its log (why).
 * - th_hub_proc_stop() is the operator's SIGTERM; th_hub_proc_kill() is
 *   SIGKILL; th_hub_proc_restart() starts a new process on the same
 *   configuration and socket (a new ring generation).
 * - th_hub_proc_sanitizer_report() tells whether the hub's log holds an
 *   ASan/UBSan/TSan report: a sanitizer build of the hub is checked too.
 *
 * Also here: th_hub_mariadb_restart(), SIGKILL and restart of a harness
 * MariaDB on the same data, port and socket (for crash tests).
 *
 * Caveats: start from the thread that outlives the hub (PR_SET_PDEATHSIG, as
 * for the MariaDB harness). One thread uses a handle at a time. Test support,
 * not product: errors are text for test output.
 *
 * Environment: BUILD (where topohubd is), TH_HUB_KEEP=1 keeps the folder.
 */
#ifndef TH_TEST_HUB_PROC_H
#define TH_TEST_HUB_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/support/mariadb.h"

struct th_hub_proc_options {
	struct th_mariadb *const *sources; /* in order; at least one */
	size_t nsources;
	bool tcp;                        /* sources by TCP (default: their Unix sockets) */
	/* Extra flags, NULL-terminated, appended last ({"--reader-timeout-min-ms=1", NULL}). */
	const char *const *extra_args;
	const char *extra_config;        /* INI text appended at the end: in [mysql] unless it opens a section */
	const char *password;            /* NULL: sources[0]->password */
	const char *user;                /* NULL: sources[0]->user */
	unsigned ready_timeout_ms;       /* 0: 30000 */
	bool no_wait;                    /* return once started, without waiting for READY */
	unsigned nofile_limit;           /* >0: RLIMIT_NOFILE (soft and hard) of the hub, as prlimit --nofile */
	/* >0: the hub runs as this uid and run_as_gid (the test must be root):
	 * its folder, configuration and notify socket are handed to it. Use tcp
	 * too: the servers' own folders are private. */
	uid_t run_as_uid;
	gid_t run_as_gid;
};

struct th_hub_proc {
	char dir[200];
	char socket[256];                /* control socket */
	char config[256];
	char log[256];                   /* the hub's stderr */
	char notify[256];
	char binary[512];
	pid_t pid;                       /* 0 when not running */
	int notify_fd;
	uint64_t ready_ns;               /* start to READY of the last start */
	int last_status;                 /* wait status of the last exit; -1 none */
	char *env_password;              /* "TOPOHUB_MYSQL_PASSWORD=..." */
	char **extra_args;               /* copies, for restarts */
	unsigned ready_timeout_ms;
	unsigned nofile_limit;           /* 0: inherited */
	uid_t run_as_uid;                /* 0: the test's own */
	gid_t run_as_gid;
};

/* Starts a hub. 0 and *out; a negative code with why otherwise (the handle is
 * freed). With no_wait, returns right after the spawn. */
int th_hub_proc_start(const struct th_hub_proc_options *o, struct th_hub_proc **out, char *why, size_t why_len);

/* Starts the same configuration again (after stop or kill); waits for READY. */
int th_hub_proc_restart(struct th_hub_proc *h, char *why, size_t why_len);

/* Waits up to timeout_ms for the hub to exit: 0 and *status (wait status),
 * -ETIMEDOUT, or -ECHILD when not running. */
int th_hub_proc_wait(struct th_hub_proc *h, unsigned timeout_ms, int *status);

/* SIGTERM and wait (10 s, then SIGKILL). Returns the wait status, or -ECHILD. */
int th_hub_proc_stop(struct th_hub_proc *h);

/* SIGKILL and reap. 0 or -ECHILD. */
int th_hub_proc_kill(struct th_hub_proc *h);

/* Kills (if running), removes the folder (unless TH_HUB_KEEP=1), frees. NULL ok. */
void th_hub_proc_free(struct th_hub_proc *h);

/* The last len-1 bytes of the hub's log, NUL-terminated, in buf. */
const char *th_hub_proc_log_tail(const struct th_hub_proc *h, char *buf, size_t len);
/* Does the log contain needle? */
bool th_hub_proc_log_contains(const struct th_hub_proc *h, const char *needle);
/* Does the log hold a sanitizer report (ASan, UBSan, TSan, LeakSanitizer)? */
bool th_hub_proc_sanitizer_report(const struct th_hub_proc *h);

/* SIGKILL the MariaDB instance and start it again with the same command line
 * (data, port, socket); waits until it accepts connections. 0 or negative
 * with why. The admin connection is reopened lazily. */
int th_hub_mariadb_restart(struct th_mariadb *db, char *why, size_t why_len);

#endif
