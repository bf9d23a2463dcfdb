/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_internal.h: what the hub's threads share (hub.c, hub_publisher.c,
 * hub_load.c, hub_source.c, hub_control.c, hub_requests.c, hub_limits.c,
 * hub_monitor.c, hub_fanout.c). Not for other components.
 *
 * Sharing, field by field:
 *
 *   | what                    | written by        | read by                  | how               |
 *   |-------------------------|-------------------|--------------------------|-------------------|
 *   | ring (publish calls)    | publisher         | -                        | ring.h rules      |
 *   | ring (reader mgmt)      | control, monitor  | -                        | ring.h: any thread|
 *   | state                   | publisher         | control (RCU)            | hub_state.h       |
 *   | published_revision      | publisher         | control                  | release/acquire   |
 *   | applying_revision       | publisher         | control                  | seq_cst fences    |
 *   | pos (RCU pointer)       | publisher         | control                  | rcu_xchg/deref    |
 *   | stat_* counters         | their one writer  | control (stats)          | relaxed           |
 *   | timeout_*_ns            | main (SIGHUP)     | control, monitor         | relaxed           |
 *   | live_next               | main (SIGHUP)     | control                  | live_lock         |
 *   | source_info             | publisher         | control                  | src_lock (rare)   |
 *   | readers[]               | control           | monitor, control         | readers_lock      |
 *   | stopping                | main              | all                      | release/acquire   |
 *   | streams (RCU pointer)   | control           | publisher                | xchg/acquire, RCU |
 *   | th__hub_stream.dropped  | publisher         | publisher                | (one thread)      |
 *   | nstreams                | control           | control                  | (one thread)      |
 */
#ifndef TH_HUB_INTERNAL_H
#define TH_HUB_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <urcu.h>

#include "readers/binlog.h"
#include "hub/hub.h"
#include "hub/hub_state.h"
#include "shm/ring.h"
#include "common/th_atomic.h"

/* The position the hub has published through: replaced whole per transaction. */
struct th__hub_pos {
	struct rcu_head rcu;
	uint64_t revision;            /* published revision when this position was reached */
	enum th_binlog_flavor flavor;
	uint64_t end_pos;             /* binlog file position after the transaction */
	char file[128];               /* binlog file name ("" unknown) */
	char gtid[];                  /* GTID set / position text, NUL-terminated */
};

/* One attached reader, as the control and monitor threads know it. */
struct th__hub_reader {
	bool used;
	uint32_t id;                  /* ring reader id */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t timeout_ns;          /* granted (clamped) */
	uint64_t attached_ns;         /* CLOCK_REALTIME */
	char name[33];                /* (evictions: the ring's own count, th_ring_lag) */
};

/*
 * Benchmark mode (bench_socket_fanout, protocol.h STREAM; hub_fanout.c): the
 * clients that asked for records over their socket. Why RCU and not a mutex:
 * the publisher must never wait, not even for a control thread preempted
 * while it holds a lock; and the hub already runs liburcu. The control thread
 * (the only writer) replaces the whole array on every add and remove and
 * frees the old one after a grace period; a removed subscriber's socket is
 * closed after a grace period too, so that the publisher never sends to a
 * descriptor number reused for something else.
 */
struct th__hub_stream {
	struct rcu_head rcu;
	struct th_hub *h;
	int fd;                       /* the connection's socket; closed by the RCU callback */
	pid_t pid;
	uint32_t cid;                 /* control connection id, for logs */
	bool dropped;                 /* (publisher) shut down after a failed send; skipped since */
};
struct th__hub_streams {
	struct rcu_head rcu;
	struct th_hub *h;
	size_t n;
	struct th__hub_stream *s[];
};

/* Source status for STATS (under src_lock: written at connect time only). */
struct th__hub_source_info {
	int index;                    /* into cfg->sources; -1 before the first */
	bool connected;               /* streaming now */
	char version[128];
	char last_error[512];
};

/* What a SIGHUP may change for the control thread (hub_config.h): it keeps
 * its own copy and takes live_next over when reload_fd fires. */
struct th__hub_live {
	uid_t allow_uids[TH_HUB_MAX_IDS];
	size_t n_allow_uids;
	gid_t allow_gids[TH_HUB_MAX_IDS];
	size_t n_allow_gids;
	uint32_t max_clients_per_uid;
	uint32_t idle_timeout_ms;
	uint32_t snapshot_window_ms;
	uint64_t snapshot_bytes_max;
	uint32_t snapshot_hold_ms;
};
void th__hub_live_from(struct th__hub_live *l, const struct th_hub_config *c); /* hub_limits.c */

/*
 * A latency histogram (hub_hist.c): TH_HUB_HIST_N upper bounds and a last
 * bucket above them, counts per bucket (not cumulative) and the sum. One
 * writer each; STATS reads relaxed (a scrape may see the sum and the
 * buckets one observation apart).
 */
#define TH_HUB_HIST_N 19
extern const uint64_t th__hub_hist_bounds_ns[TH_HUB_HIST_N];
struct th__hub_hist {
	th_atomic_u64 bucket[TH_HUB_HIST_N + 1];
	th_atomic_u64 sum_ns;
};
void th__hub_hist_add(struct th__hub_hist *hh, uint64_t ns);
struct th_buf;
/* Appends ,"name":{"le_ns":[...],"buckets":[...],"sum_ns":N} */
void th__hub_hist_json(struct th__hub_hist *hh, struct th_buf *b, const char *name);

struct th_hub {
	const struct th_hub_config *cfg; /* as started; a SIGHUP changes what follows, never this */
	/* Effective limits (main, before any thread): cfg's, clamped to what
	 * the open-file limit allows (hub.c, fd_budget()). */
	uint32_t max_clients;
	uint32_t max_readers;
	struct th_ring_writer *ring;
	struct th_state *state;
	uint64_t start_ns;            /* CLOCK_REALTIME at start */

	/* Publisher -> all. Release after the ring commit (step c); pairs with
	 * the acquire loads of the control thread (snapshot start and end). */
	th_atomic_u64 published_revision;
	/* Publisher -> control. The revision whose changes the publisher is
	 * writing into the state (a transaction or a load), stored before the
	 * first of them and followed by a seq_cst fence; the control thread
	 * fences after a walk and loads it: a walk that saw any of them names it
	 * as pending (protocol.h). Not reset when (c) is done: then it equals
	 * published_revision. */
	th_atomic_u64 applying_revision;
	/* The published position: exchanged (seq_cst, so release) by the
	 * publisher, loaded with acquire by the control thread inside
	 * rcu_read_lock(); the old one is freed by call_rcu(). C11 atomics
	 * rather than rcu_xchg_pointer/rcu_dereference: same cost on x86, and
	 * visible to ThreadSanitizer. */
	struct th__hub_pos *_Atomic pos;

	/* main -> all: release in th__hub_stop_request, acquire in the loops. */
	th_atomic_u32 stopping;
	int stop_fd;                  /* eventfd, readable once stopping */
	/* control -> monitor: a reader attached, so the monitor's plan (it
	 * sleeps until the earliest deadline it knows of) is redone. */
	int monitor_fd;               /* eventfd */
	/* control -> publisher: how many SYNCs wait; when non-zero the publisher
	 * writes pub_fd after each published position (relaxed: a missed wake
	 * is caught by the control loop's next deadline tick, within 10 ms). */
	th_atomic_u32 sync_waiters;
	int pub_fd;                   /* eventfd the control loop polls */
	int ready_fd;                 /* eventfd: publisher -> main, once: loaded or fatal */
	int exit_code;                /* set by the publisher before a fatal ready_fd write */
	bool loaded;                  /* (main) the first load succeeded */

	/* Counters: one writer each (publisher unless noted), relaxed. */
	th_atomic_u64 st_txns;        /* transactions with watched changes published */
	th_atomic_u64 st_txns_seen;   /* all transactions delivered by the assembler */
	th_atomic_u64 st_records;
	th_atomic_u64 st_bytes;
	th_atomic_u64 st_changes;
	th_atomic_u64 st_reconnects;
	th_atomic_u64 st_reloads;
	th_atomic_u64 st_resyncs;
	th_atomic_u64 st_too_big;
	th_atomic_u64 st_events;
	th_atomic_u64 st_last_commit_us;
	th_atomic_u64 st_last_publish_ns;
	th_atomic_u64 st_monitor_rounds; /* monitor: rounds over the readers (its cost) */
	th_atomic_u64 st_evictions;   /* monitor; and the publisher in benchmark mode (fetch_add: two writers) */
	th_atomic_u64 st_attaches;    /* control */
	th_atomic_u64 st_refused;     /* control: peers refused by credentials */
	th_atomic_u64 st_bad_msgs;    /* control */
	th_atomic_u64 st_clients;     /* control: open connections */
	th_atomic_u64 st_snap_held;   /* control: snapshot memfds the hub holds (hub_limits.c) */
	th_atomic_u64 st_snap_held_bytes; /* control: their bytes */
	th_atomic_u64 st_snap_reclaimed; /* control: taken back before snapshot_hold_ms (over a bound) */
	th_atomic_u64 st_config_reloads; /* main: SIGHUPs that applied a change */
	/* publisher: a transaction, its commit event decoded, to its publication (c) */
	struct th__hub_hist publish_latency;
	/* control: every attached reader's lag (age of its oldest unread
	 * record, 0 when it has read all), sampled each TICK_MS: the share of
	 * time readers spend at each lag */
	struct th__hub_hist reader_lag;

	/* main -> control and monitor: the reader timeout bounds (cfg's, then
	 * a SIGHUP's), relaxed: each is a bound of its own, and an attach that
	 * races a reload gets the old or the new. */
	th_atomic_u64 timeout_min_ns, timeout_max_ns, timeout_default_ns;
	/* main -> control: the live settings of the last SIGHUP, under
	 * live_lock; reload_fd (eventfd) says they changed. */
	pthread_mutex_t live_lock;
	struct th__hub_live live_next;
	int reload_fd;

	pthread_mutex_t src_lock;
	struct th__hub_source_info src;

	pthread_mutex_t readers_lock;
	struct th__hub_reader *readers;
	size_t readers_cap;

	/* Benchmark mode only (cfg->bench_socket_fanout); NULL while no client
	 * streams. Exchanged (seq_cst, so release) by the control thread, loaded
	 * with acquire by the publisher inside rcu_read_lock(). */
	struct th__hub_streams *_Atomic streams;
	size_t nstreams;              /* (control) subscribers in the array */
	th_atomic_u64 st_stream_drops; /* publisher: subscribers dropped on a full socket buffer */
};

/* True once a stop was asked for. Pairs with the release in th__hub_stop_request. */
static inline bool th__hub_stopping(const struct th_hub *h)
{
	return th_load_acquire(&h->stopping) != 0;
}

/* The publisher thread (hub_publisher.c). */
void *th__hub_publisher_main(void *arg);
/* Shut down (not close) every MySQL connection of this process so that a
 * blocked read returns; see hub_source.c. Any thread. */
void th__hub_interrupt_mysql(void);

/* The control socket (hub_control.c, hub_control.h) and the monitor (hub_monitor.c). */
int th__hub_control_open(struct th_hub *h, int *listen_fd);
void *th__hub_control_main(void *arg);   /* arg: struct th__hub_control_arg */
void *th__hub_monitor_main(void *arg);   /* arg: struct th_hub */
void th__hub_monitor_replan(struct th_hub *h); /* any thread: a reader came; look again now */

/* Benchmark mode (hub_fanout.c); see struct th__hub_stream.
 * Control thread: size a socket's send buffer (before the reply); add a
 * subscriber on socket fd, which it owns from then on (closed after a grace
 * period once removed); remove it (at the connection's end); finish (at
 * exit, every subscriber removed: runs the deferred closes). add: 0 or
 * -ENOMEM. Publisher: send these messages (one record each) to every
 * subscriber, never blocking: one whose send would block is dropped;
 * msgs NULL drops every subscriber (the records could not be built). */
uint64_t th__hub_stream_sndbuf(int fd, pid_t pid); /* sets the buffer, returns it as granted */
int th__hub_stream_add(struct th_hub *h, int fd, pid_t pid, uint32_t cid, struct th__hub_stream **out);
void th__hub_stream_remove(struct th_hub *h, struct th__hub_stream *s);
void th__hub_stream_finish(struct th_hub *h);
struct mmsghdr;
void th__hub_fanout_send(struct th_hub *h, struct mmsghdr *msgs, unsigned n);

/* The most snapshot memfds the control thread holds at once (hub_limits.c),
 * in the open-file budget of hub.c. */
#define TH__HUB_SNAP_HELD_MAX 256u

/* The optional Prometheus endpoint (hub_metrics_http.c): main thread, once
 * the control socket serves; *handle stays NULL when metrics_listen is not
 * set. 0, or a negative errno (the address is taken, ...). */
int th__hub_metrics_http_start(struct th_hub *h, void **handle);
void th__hub_metrics_http_stop(void *handle);

struct th__hub_control_arg {
	struct th_hub *h;
	int listen_fd;
};

/* A reader's slow-consumer timeout wish (0: none) within the configured
 * bounds (hub_monitor.c). Any thread. */
uint64_t th__hub_clamp_timeout(struct th_hub *h, uint64_t t);

#endif
