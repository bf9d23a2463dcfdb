/* SPDX-License-Identifier: Apache-2.0 */
/* topohubd's life cycle: start-up, readiness, signals, orderly stop; see hub.h. */
#include "hub/hub.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hub/hub_internal.h"
#include "hub/hub_log.h"
#include "common/th_error.h"
#include "common/th_time.h"

/*
 * sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path,
 * or an abstract name written with a leading '@'). Does nothing when not
 * run by systemd (or by a test that listens in its place).
 */
static void notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	memcpy(a.sun_path, path, n);
	if (a.sun_path[0] == '@')
		a.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&a, len) < 0)
		th_log_warn("sd_notify to %s: %s", path, strerror(errno));
	close(fd);
}

static void stop_request(struct th_hub *h)
{
	/* Release pairs with th__hub_stopping()'s acquire in every loop. */
	th_store_release(&h->stopping, 1u);
	uint64_t one = 1;
	ssize_t r = write(h->stop_fd, &one, sizeof one);
	(void)r;
}

/* Joins the publisher, shutting its MySQL sockets down until it returns. */
static void join_publisher(pthread_t t)
{
	for (;;) {
		th__hub_interrupt_mysql();
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_timedjoin_np(t, NULL, &ts) == 0)
			return;
	}
}

/* ---- SIGHUP ------------------------------------------------------------- */

struct change_list {
	char live[512], restart[512];
	size_t nlive, nrestart;
};

static void add_name(char *list, size_t cap, const char *name)
{
	size_t n = strlen(list);
	snprintf(list + n, cap - n, "%s%s", n ? ", " : "", name);
}

static void note_live(void *arg, const char *section, const char *key, bool live)
{
	struct change_list *c = arg;
	if (live) {
		add_name(c->live, sizeof c->live, key);
		c->nlive++;
	}
}

static void note_restart(void *arg, const char *section, const char *key, bool live)
{
	struct change_list *c = arg;
	if (!live) {
		add_name(c->restart, sizeof c->restart, key);
		c->nrestart++;
	}
}

static void set_live_timeouts(struct th_hub *h, const struct th_hub_config *c)
{
	th_store_relaxed(&h->timeout_min_ns, c->reader_timeout_min_ns);
	th_store_relaxed(&h->timeout_max_ns, c->reader_timeout_max_ns);
	th_store_relaxed(&h->timeout_default_ns, c->reader_timeout_default_ns);
}

/*
 * Re-read the flags and the file (hub_config.h). What may change at run time
 * is applied: the log level and the reader timeout bounds here (readers
 * attached keep the timeout they have), the rest by the control thread
 * (take_reload). What needs a restart is named and kept as it runs. A file
 * that does not parse changes nothing. *applied is the last configuration
 * applied (NULL: the one started with), owned by the main thread.
 */
static void reload(struct th_hub *h, struct th_hub_config **applied)
{
	struct th_hub_config *next = calloc(1, sizeof *next);
	char err[512];
	if (!next) {
		th_log_error("SIGHUP: out of memory: the running configuration stays");
		return;
	}
	if (th_hub_config_reread(h->cfg, next, err, sizeof err) < 0) {
		th_log_error("SIGHUP: %s: the running configuration stays", err);
		th_hub_config_free(next);
		free(next);
		return;
	}
	struct change_list c = { 0 };
	th_hub_config_diff(*applied ? *applied : h->cfg, next, note_live, &c);
	th_hub_config_diff(h->cfg, next, note_restart, &c);
	if (c.nlive) {
		th_hub_log_set_level((enum th_log_level)next->log_level);
		set_live_timeouts(h, next);
		pthread_mutex_lock(&h->live_lock);
		th__hub_live_from(&h->live_next, next);
		pthread_mutex_unlock(&h->live_lock);
		uint64_t one = 1;
		if (write(h->reload_fd, &one, sizeof one) < 0)
			th_log_warn("SIGHUP: waking the control thread: %s", strerror(errno));
		th_fetch_add_relaxed(&h->st_config_reloads, 1);
		th_log_info("SIGHUP: applied %s", c.live);
	}
	if (c.nrestart)
		th_log_warn("SIGHUP: changed but needs a restart (running as started): %s", c.restart);
	if (!c.nlive && !c.nrestart)
		th_log_info("SIGHUP: the configuration is unchanged");
	if (*applied) {
		th_hub_config_free(*applied);
		free(*applied);
	}
	*applied = next;
}

/* Waits for a signal or for fd; returns the signal (0 when fd fired). A
 * SIGHUP reloads and waits on. */
static int wait_signal_or(struct th_hub *h, struct th_hub_config **applied, int sfd, int fd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
		int n = poll(p, fd >= 0 ? 2 : 1, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return SIGTERM;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
				continue;
			if (si.ssi_signo == SIGHUP) {
				reload(h, applied);
				continue;
			}
			th_log_info("signal %d from pid %u: stopping", (int)si.ssi_signo, si.ssi_pid);
			return (int)si.ssi_signo;
		}
		if (fd >= 0 && (p[1].revents & POLLIN))
			return 0;
	}
}

/*
 * The open-file budget. Every control connection holds one descriptor and
 * every attached reader two more (the write end and a read end of its
 * wake-up pipe, shm/ring.c);
 * with max_clients above the open-file limit, accept() failed with EMFILE
 * while the listen socket stayed readable. So: raise the soft limit to the
 * hard one, and if that is still short of max_clients + max_readers plus a
 * reserve (MySQL connections, the log, epoll..., and the snapshot memfds the
 * control thread holds to take their memory back, TH__HUB_SNAP_HELD_MAX),
 * clamp both, and say so.
 */
#define FD_RESERVE (64u + TH__HUB_SNAP_HELD_MAX)
static void fd_budget(struct th_hub *h)
{
	const struct th_hub_config *c = h->cfg;
	h->max_clients = c->max_clients;
	h->max_readers = c->max_readers;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	uint64_t need = (uint64_t)c->max_clients + 2ull * c->max_readers + FD_RESERVE;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return;
	uint64_t room = rl.rlim_cur > FD_RESERVE + 32 ? rl.rlim_cur - FD_RESERVE : 32;
	/* A reader is a client too (its connection) plus two: at most a quarter
	 * of the clients' room each for readers. */
	if (h->max_readers > room / 4)
		h->max_readers = (uint32_t)(room / 4);
	if (h->max_clients > room - 2ull * h->max_readers)
		h->max_clients = (uint32_t)(room - 2ull * h->max_readers);
	th_log_warn("open-file limit is %llu (hard): max_clients clamped from %u to %u and max_readers from %u to "
		    "%u; raise the limit (LimitNOFILE= in the unit) for more",
		    (unsigned long long)rl.rlim_cur, c->max_clients, h->max_clients, c->max_readers, h->max_readers);
}

static void free_pos(struct th_hub *h)
{
	struct th__hub_pos *pos = th_exchange_seq_cst(&h->pos, NULL);
	if (pos) {
		synchronize_rcu();
		free(pos);
	}
}

int th_hub_run(const struct th_hub_config *cfg)
{
	int code = TH_HUB_EXIT_FAILURE;
	struct th_hub *h = calloc(1, sizeof *h);
	if (!h)
		return TH_HUB_EXIT_FAILURE;
	rcu_register_thread();
	/* liburcu's call_rcu thread, made here rather than on the first
	 * call_rcu(): made by the publisher it would inherit its real-time
	 * priority, and frees need none. */
	(void)get_default_call_rcu_data();
	h->cfg = cfg;
	h->start_ns = th_realtime_ns();
	h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->pub_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->monitor_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->reload_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->src.index = -1;
	struct th_hub_config *applied = NULL; /* the last SIGHUP's */
	set_live_timeouts(h, cfg);
	th__hub_live_from(&h->live_next, cfg);
	pthread_mutex_init(&h->live_lock, NULL);
	pthread_mutex_init(&h->src_lock, NULL);
	/* Priority inheritance: the monitor may run real-time and must not wait
	 * behind a preempted control thread that holds the readers' lock. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&h->readers_lock, &ma);
	pthread_mutexattr_destroy(&ma);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (h->stop_fd < 0 || h->pub_fd < 0 || h->ready_fd < 0 || h->monitor_fd < 0 || h->reload_fd < 0 || sfd < 0) {
		th_log_error("eventfd/signalfd: %s", strerror(errno));
		goto out_fds;
	}
	fd_budget(h);
	struct th_ring_config rc = {
		.capacity = cfg->ring_capacity, .max_readers = h->max_readers, .name = "topohub-ring",
	};
	int rc_ = th_ring_writer_create(&rc, &h->ring);
	if (rc_ < 0) {
		th_log_error("ring of %" PRIu64 " bytes: %s", cfg->ring_capacity, th_strerror(rc_));
		goto out_fds;
	}
	if ((rc_ = th_state_new(&h->state)) < 0) {
		th_log_error("state table: %s", th_strerror(rc_));
		goto out_ring;
	}
	th_log_info("starting: ring generation %" PRIu64 " (%" PRIu64 " bytes), %zu source(s), %zu table(s) in schema %s",
		    th_ring_generation(h->ring), cfg->ring_capacity, cfg->nsources, cfg->ntables, cfg->schema);
	th_ring_set_wake_delay_max(h->ring, cfg->wake_delay_max_ns);

	pthread_t pub, ctl, mon;
	void *http = NULL;
	bool ctl_started = false, mon_started = false;
	if ((rc_ = pthread_create(&pub, NULL, th__hub_publisher_main, h)) != 0) {
		th_log_error("publisher thread: %s", strerror(rc_));
		goto out_state;
	}
	/* Serve nobody before the state is loaded and the stream is open. */
	int sig = wait_signal_or(h, &applied, sfd, h->ready_fd);
	uint64_t ready = 0;
	if (sig == 0 && (read(h->ready_fd, &ready, sizeof ready) != (ssize_t)sizeof ready || ready != 1)) {
		stop_request(h);
		join_publisher(pub);
		code = h->exit_code ? h->exit_code : TH_HUB_EXIT_FAILURE;
		goto out_state;
	}
	if (sig != 0) {
		code = TH_HUB_EXIT_OK;
		goto stop;
	}
	struct th__hub_control_arg carg = { .h = h, .listen_fd = -1 };
	if ((rc_ = th__hub_control_open(h, &carg.listen_fd)) < 0) {
		th_log_error("control socket %s: %s", cfg->socket_path, th_strerror(rc_));
		goto stop;
	}
	if ((rc_ = pthread_create(&ctl, NULL, th__hub_control_main, &carg)) != 0) {
		close(carg.listen_fd);
		unlink(cfg->socket_path);
		th_log_error("control thread: %s", strerror(rc_));
		goto stop;
	}
	ctl_started = true;
	if ((rc_ = pthread_create(&mon, NULL, th__hub_monitor_main, h)) != 0) {
		th_log_error("monitor thread: %s", strerror(rc_));
		goto stop;
	}
	mon_started = true;
	if ((rc_ = th__hub_metrics_http_start(h, &http)) < 0) {
		th_log_error("metrics_listen %s: %s", cfg->metrics_listen, th_strerror(rc_));
		goto stop;
	}
	th_log_info("ready: control socket %s", cfg->socket_path);
	notify("READY=1\nSTATUS=streaming");
	wait_signal_or(h, &applied, sfd, -1);
	code = TH_HUB_EXIT_OK;
stop:
	notify("STOPPING=1");
	th__hub_metrics_http_stop(http); /* its scrapes ask the control thread: first */
	stop_request(h);
	join_publisher(pub);
	if (ctl_started)
		pthread_join(ctl, NULL);
	if (mon_started)
		pthread_join(mon, NULL);
	th_log_info("stopped: revision %" PRIu64 ", %" PRIu64 " transactions, %" PRIu64 " records published",
		    th_load_relaxed(&h->published_revision), th_load_relaxed(&h->st_txns),
		    th_load_relaxed(&h->st_records));
out_state:
	free_pos(h);
	th_state_free(h->state);
out_ring:
	/* Readers still mapped see the ring closed (-TH_ECLOSED) after reading all. */
	th_ring_writer_destroy(h->ring);
out_fds:
	if (sfd >= 0)
		close(sfd);
	if (h->stop_fd >= 0)
		close(h->stop_fd);
	if (h->pub_fd >= 0)
		close(h->pub_fd);
	if (h->ready_fd >= 0)
		close(h->ready_fd);
	if (h->monitor_fd >= 0)
		close(h->monitor_fd);
	if (h->reload_fd >= 0)
		close(h->reload_fd);
	if (applied) {
		th_hub_config_free(applied);
		free(applied);
	}
	pthread_mutex_destroy(&h->live_lock);
	free(h->readers);
	pthread_mutex_destroy(&h->src_lock);
	pthread_mutex_destroy(&h->readers_lock);
	rcu_unregister_thread();
	free(h);
	return code;
}
