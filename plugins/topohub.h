/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohub.h: the client ABI of libtopohub.so.
 *
 * What it is for. A process that needs topology changes (vtgate, vttablet,
 * vtorc, your daemon) loads libtopohub.so, connects to the host's topohubd and
 * watches paths of the topology tables. Changes arrive in callbacks, in
 * microseconds, read from a shared-memory ring the hub publishes into; the
 * process never opens a binlog connection of its own and never re-reads tables.
 *
 * The ABI. libtopohub.so exports one symbol, th_api_get(). It hands out a
 * table of function pointers (struct th_api) for one ABI major version;
 * everything else crosses the boundary as an opaque handle (struct th_conn,
 * th_watch_id) or as a struct that starts with its own size. Rules that keep
 * old callers working:
 *   - Structs and the function table only ever grow at the end.
 *   - A caller passes sizeof(its struct) in .size. A smaller struct (an older
 *     caller) gets the defaults for the fields it did not pass; a larger one
 *     (a newer caller) is accepted when the fields this library does not know
 *     are zero, and refused with -E2BIG otherwise.
 *   - Structs the library fills (struct th_event, th_entry, th_stats) say in
 *     .size how much of them is valid: check it before reading a field added
 *     after your minor version.
 *   - A caller built for another major version is refused (-TH_EVERSION), and
 *     so is a caller built for a newer minor than the library provides.
 *   - Unknown flag bits are refused with -EINVAL, never ignored.
 * Every function returns 0 (or a count) on success and a negative errno or
 * -TH_E* code on failure, and never touches errno; api->strerror() and
 * api->errname() describe any code.
 *
 * Semantics (those of Vitess topo.Conn Watch and WatchRecursive):
 *   - watch(path): first the current value (TH_EVENT_INITIAL) or, when there
 *     is none, TH_EVENT_NOT_FOUND and the end of the watch; then every change
 *     of that path in revision order. A delete ends the watch
 *     (TH_EVENT_DELETE, then TH_EVENT_ENDED).
 *   - watch_recursive(prefix): the current entries under the prefix (one
 *     TH_EVENT_INITIAL each, in key order, then TH_EVENT_SYNCED), then every
 *     change under it, deletes included. It goes on until unwatched.
 *     Prefixes match on path-component boundaries: "/a/b" matches "/a/b" and
 *     "/a/b/c", never "/a/bc". A trailing '/' is ignored; "" (or "/") matches
 *     every key.
 *   - Snapshot and stream are stitched at one exact revision (the hub's
 *     number for each committed transaction): nothing is missing, nothing
 *     comes twice. All events of one watch come in revision order.
 *   - Continuity is never lost in silence. When this process falls behind
 *     (evicted as a slow consumer, lapped) or the hub restarts, every affected
 *     watch gets TH_EVENT_RESYNC at once, then, when the library has fetched
 *     the current state again, the puts and deletes that bring it from what it
 *     was told to the current state, then TH_EVENT_SYNCED. The library does
 *     this by itself, reconnecting with backoff when the hub is gone.
 *
 * Threads.
 *   - Callbacks run only inside dispatch() on the thread that calls it, or on
 *     the library's own dispatch thread when the connection was opened with
 *     TH_OPEN_F_THREAD. One dispatch runs at a time per connection; no library
 *     lock is held while a callback runs.
 *   - watch(), watch_recursive(), unwatch(), get(), sync() and stats() may be
 *     called from any thread, concurrently with each other and with dispatch(),
 *     including from inside a callback. Registration never blocks dispatch: the
 *     dispatch path takes no lock (an RCU hash table holds the watches).
 *   - unwatch() never blocks. No callback of the watch starts after it
 *     returns, except one that another thread's dispatch had already begun; the
 *     watch's free function runs exactly once, after its last callback, on the
 *     dispatching thread (or in close()).
 *   - close() must not race with any other call on the connection.
 *   - A new watch is taken in by the next dispatch, at once in every mode (a
 *     dispatch sleeping on the futex is woken by the registration). A hub
 *     that died without closing its ring is noticed within 10 ms on a busy
 *     connection (1 ms spinning): the check's interval doubles while nothing
 *     comes, up to 0.5 s, and halves with each wait that a busy stream ends
 *     (transactions closer together than a quarter of it), so that idle and
 *     sparse subscribers stay asleep. A
 *     watch whose path no other watch covers costs one round trip to the hub
 *     (snapshot or get) inside that dispatch.
 *
 * Caveats.
 *   - fork(): a child must not use a connection it inherited (the ring slot
 *     and the control socket belong to the parent's reader); it may open its
 *     own. Do not close the inherited one in the child either: close() would
 *     join a thread that does not exist there. Use exec, or leak it.
 *   - The library uses liburcu's "bulletproof" flavour (urcu-bp), which
 *     registers threads by itself; it sends no signals, installs no handlers,
 *     and writes nothing to stdout or stderr. Its only threads are the
 *     optional dispatch thread.
 *   - A value pointer in an event is valid only during the callback; copy
 *     what you keep.
 *   - Watch handles are numbers, never reused within a connection: unwatching
 *     a watch that already ended returns -ENOENT and does no harm.
 */
#ifndef TOPOHUB_H
#define TOPOHUB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TH_ABI_MAJOR 1
/* Minor 1: th_open_opts.max_wake_delay_ns. */
#define TH_ABI_MINOR 1

/* The one exported symbol, for dlsym(). */
#define TH_API_SYMBOL "th_api_get"

/* The hub's socket when the caller gives none. */
#define TH_DEFAULT_SOCKET "/run/topohub/topohub.sock"

/* Error codes besides negative errno values: TH_ABI_ERROR_TABLE(X) lists each
 * as X(name, value, message), and enum th_error names them. The numbers are
 * part of the ABI and never change. The block below is generated from the
 * project's one table (common/th_error.h); make test fails when they differ. */
// BEGIN generated by scripts/gen-abi.py; edit the source table, then run it
#define TH_ABI_ERROR_TABLE(X) \
	X(TH_ELAPPED,      4001, "reader was overtaken by the writer; records were lost to it") \
	X(TH_EEVICTED,     4002, "reader was evicted as a slow consumer") \
	X(TH_EFORMAT,      4003, "shared-memory segment has an incompatible format") \
	X(TH_ECLOSED,      4004, "the writer closed the ring (hub stopped or restarted)") \
	X(TH_ECORRUPT,     4005, "data is inconsistent (corrupt record or header)") \
	X(TH_ETOOBIG,      4006, "record or batch is larger than the ring allows") \
	X(TH_EBINLOG,      4007, "malformed binlog event") \
	X(TH_ECHECKSUM,    4008, "binlog event checksum mismatch") \
	X(TH_EUNSUPPORTED, 4009, "unsupported binlog event or column type") \
	X(TH_ETRUNCATED,   4010, "binlog ends in the middle of an event") \
	X(TH_ESERVER,      4011, "MySQL server is not configured as topohub needs") \
	X(TH_EPROTO,       4012, "protocol error (malformed or unexpected message)") \
	X(TH_ERESYNC,      4013, "continuity lost; a resync is needed") \
	X(TH_ENOTFOUND,    4014, "no such entry") \
	X(TH_EVERSION,     4015, "incompatible ABI or protocol version") \
	X(TH_EMYSQL,       4016, "MySQL client error") \
	X(TH_EDEADCONN,    4017, "connection is dead (no heartbeat before the deadline)") \
	X(TH_EGTID,        4018, "malformed GTID or GTID set") \
	X(TH_ESCHEMA,      4019, "watched table lacks a configured column")

#ifndef TH_ERROR_H /* common/th_error.h defines the same enum inside the project */
enum th_error {
#define TH__ABI_ERROR_ENUM(name, value, msg) name = (value),
	TH_ABI_ERROR_TABLE(TH__ABI_ERROR_ENUM)
#undef TH__ABI_ERROR_ENUM
};
#endif
// END generated

/* Tables, as the hub numbers them by default (its configuration may differ;
 * the hub's "tables" query lists them). */
#define TH_TABLE_DATA 0u      /* topo_data: key path, value data, version */
#define TH_TABLE_LOCKS 1u     /* topo_locks */
#define TH_TABLE_ELECTIONS 2u /* topo_elections: key name, value leader_id */

/* A connection to the hub: opaque. */
struct th_conn;

/* A watch: a number, unique within its connection, never 0. */
typedef uint64_t th_watch_id;

/* ---- opening ------------------------------------------------------------ */

enum th_wait_mode {
	TH_WAIT_FUTEX = 0, /* spin for spin_ns, then sleep on a futex (default) */
	TH_WAIT_SPIN = 1,  /* spin while waiting: lowest latency, burns a core */
	TH_WAIT_FD = 2,    /* sleep in your own poll/epoll on api->fd() */
};

/* The library runs a dispatch thread of its own; callbacks run there and
 * dispatch() is refused (-EINVAL). */
#define TH_OPEN_F_THREAD 0x1u
#define TH_OPEN_F_ALL 0x1u

struct th_open_opts {
	uint32_t size;           /* sizeof(struct th_open_opts) */
	uint32_t flags;          /* TH_OPEN_F_* */
	const char *socket_path; /* NULL: TH_DEFAULT_SOCKET */
	uint64_t timeout_ns;     /* slow-consumer timeout asked of the hub (it clamps); 0: 1 s */
	uint64_t spin_ns;        /* TH_WAIT_FUTEX: spin at most this long before sleeping; 0: 20 us.
	                          * Adaptive: the library spins only while records arrive within
	                          * this window, so a slow stream costs no spinning CPU */
	uint32_t wait_mode;      /* enum th_wait_mode */
	uint32_t reserved;       /* 0 */
	const char *name;        /* shown by `topohubctl readers`; NULL: "libtopohub" */
	uint64_t max_wake_delay_ns; /* TH_WAIT_FUTEX: under load the hub batches wake-ups, so that a
	                          * busy stream wakes each subscriber at most once per delay (it
	                          * chooses, 40 ms at most by default); bound that delay (0: as the
	                          * hub says; below 50 us: never batched, every commit wakes) */
};

/* ---- events ------------------------------------------------------------- */

enum th_event_kind {
	TH_EVENT_INITIAL = 1,   /* an entry as it is when the watch starts */
	TH_EVENT_PUT = 2,       /* created or updated */
	TH_EVENT_DELETE = 3,    /* deleted (value empty) */
	TH_EVENT_NOT_FOUND = 4, /* watch(path) on a path with no entry; TH_EVENT_ENDED follows */
	TH_EVENT_RESYNC = 5,    /* continuity lost (reason: enum th_resync_cause); changes that
				 * bring the watch to the current state follow, then SYNCED */
	TH_EVENT_SYNCED = 6,    /* the watch's view is the hub's state at .revision */
	TH_EVENT_ENDED = 7,     /* the watch ended by itself (reason: enum th_end_reason); its last event */
};

enum th_resync_cause {
	TH_RESYNC_EVICTED = 1,    /* this process was too slow; the hub evicted it */
	TH_RESYNC_LAPPED = 2,     /* the ring overtook this process */
	TH_RESYNC_HUB_LOST = 3,   /* the hub stopped or restarted */
	TH_RESYNC_HUB = 4,        /* the hub itself resynced its tables (DDL, reload) */
	TH_RESYNC_NOMEM = 5,      /* this process ran out of memory and dropped a change */
};

enum th_end_reason {
	TH_END_DELETED = 1,   /* the watched path was deleted */
	TH_END_NOT_FOUND = 2, /* the watched path did not exist */
};

#define TH_EVENT_F_VALUE_NULL 0x1u /* the value column is SQL NULL */

struct th_event {
	uint32_t size;        /* bytes of this struct that are valid */
	uint16_t kind;        /* enum th_event_kind */
	uint16_t flags;       /* TH_EVENT_F_* */
	th_watch_id watch;    /* the watch this event is for */
	uint32_t table;
	uint32_t reason;      /* RESYNC: enum th_resync_cause; ENDED: enum th_end_reason */
	const char *key;      /* key_len bytes and a NUL; NULL for RESYNC, SYNCED, ENDED */
	const char *value;    /* value_len bytes and a NUL; "" when none */
	uint32_t key_len;
	uint32_t value_len;
	int64_t version;      /* the row's version column (0 when the table has none) */
	uint64_t revision;    /* hub revision of this change (of the entry's last change for
			       * INITIAL; the state's revision for SYNCED) */
	uint64_t commit_us;   /* commit time in the binlog, CLOCK_REALTIME us; 0 if unknown */
	uint64_t publish_ns;  /* when the hub published it, CLOCK_REALTIME ns; 0 if unknown */
	uint64_t deliver_ns;  /* when the library handed it out, CLOCK_REALTIME ns */
	uint64_t latency_ns;  /* hub publish to delivery, measured on CLOCK_MONOTONIC; 0 if not from the ring */
	const char *gtid;     /* the transaction's GTID and a NUL; "" if unknown */
	uint32_t gtid_len;
	uint32_t reserved;
};

/* Called for each event. Runs in dispatch() (or the library's thread); may
 * call any function of the API except close() and dispatch(). ev and the
 * memory it points to are valid until the callback returns. */
typedef void th_watch_fn(const struct th_event *ev, void *arg);
/* Called once when the library is done with a watch's arg. */
typedef void th_free_fn(void *arg);

struct th_watch_opts {
	uint32_t size;          /* sizeof(struct th_watch_opts) */
	uint32_t flags;         /* none defined yet: 0 */
	uint32_t table;         /* TH_TABLE_* */
	uint32_t reserved;      /* 0 */
	const char *path;       /* NUL-terminated; at most 4096 bytes */
	th_watch_fn *callback;  /* required */
	void *arg;              /* handed to callback and free_arg */
	th_free_fn *free_arg;   /* may be NULL */
};

/* ---- reading ------------------------------------------------------------ */

/* One entry as get() returns it; free it with api->entry_free(). */
struct th_entry {
	uint32_t size;          /* bytes of this struct that are valid */
	uint32_t flags;         /* TH_EVENT_F_VALUE_NULL */
	uint32_t table;
	uint32_t key_len;
	uint32_t value_len;
	uint32_t reserved;
	const char *key;        /* key_len bytes and a NUL */
	const char *value;      /* value_len bytes and a NUL */
	int64_t version;
	uint64_t revision;
};

struct th_stats {
	uint32_t size;          /* in: the caller's sizeof; out: bytes filled */
	uint32_t reserved;
	uint64_t revision;      /* every change owed to this connection's watches is dispatched up to it */
	uint64_t events;        /* callbacks made */
	uint64_t records;       /* ring records read */
	uint64_t resyncs;       /* times continuity was lost and restored */
	uint64_t evictions;     /* of which: evicted */
	uint64_t laps;          /* of which: lapped */
	uint64_t reconnects;    /* of which: hub lost */
	uint64_t watches;       /* watches alive */
	uint64_t entries;       /* entries held in the local copy */
	uint64_t generation;    /* the hub ring's generation */
};

/* ---- the function table -------------------------------------------------- */

struct th_api {
	uint32_t size;          /* sizeof(struct th_api) in the library */
	uint16_t major;         /* TH_ABI_MAJOR of the library */
	uint16_t minor;         /* TH_ABI_MINOR of the library */

	/* Message and symbolic name ("TH_ELAPPED", "ENOMEM") for any result code;
	 * never NULL, static storage. Any thread. */
	const char *(*strerror)(int code);
	const char *(*errname)(int code);

	/*
	 * Connect to the hub, become a reader of its ring. opts may be NULL
	 * (defaults). On success *out is a new connection: the caller owns it and
	 * closes it with close(). Errors: -EINVAL (bad flags or wait mode),
	 * -E2BIG (a newer caller's fields), -ENOENT / -ECONNREFUSED / -EACCES
	 * (no hub at the socket, or not allowed), -TH_EVERSION (a hub of another
	 * protocol), -TH_EPROTO, -TH_EFORMAT, -ENOMEM. Any thread.
	 */
	int (*open)(const struct th_open_opts *opts, struct th_conn **out);

	/*
	 * Stop the dispatch thread if any, end every watch (each free function
	 * runs, here, with no callback after it), disconnect, free. NULL is a
	 * no-op. Never from a callback, never concurrently with another call.
	 */
	void (*close)(struct th_conn *c);

	/*
	 * Watch one path (watch) or every path under a prefix (watch_recursive);
	 * see the semantics above. The initial events come from a following
	 * dispatch(). On success *id names the watch and the library owns
	 * opts->arg until it calls opts->free_arg (exactly once). On failure
	 * nothing was registered and free_arg is not called. Errors: -EINVAL
	 * (unknown flags, NULL callback or path, table out of range),
	 * -ENAMETOOLONG, -E2BIG, -ENOMEM, -ESHUTDOWN (the connection is closing).
	 * Any thread, including callbacks.
	 */
	int (*watch)(struct th_conn *c, const struct th_watch_opts *opts, th_watch_id *id);
	int (*watch_recursive)(struct th_conn *c, const struct th_watch_opts *opts, th_watch_id *id);

	/*
	 * End a watch: no callback of it starts after this returns (one already
	 * begun by another thread's dispatch may finish); its free function runs
	 * later, once, in dispatch (or close). Returns 0, or -ENOENT when no such
	 * watch is alive (it ended, or was unwatched). Never blocks. Any thread,
	 * including the watch's own callback.
	 */
	int (*unwatch)(struct th_conn *c, th_watch_id id);

	/*
	 * Read one entry from the hub's state now (a round trip on the control
	 * socket, not the local copy). *out is allocated; free it with
	 * entry_free(). Errors: -TH_ENOTFOUND, -EINVAL, -ENOMEM, -ECONNRESET,
	 * -TH_EPROTO, -ENOBUFS (the uid's snapshot budget is spent: the hub's
	 * snapshot_bytes_max), -ESTALE (the hub took the reply back before it was
	 * read, twice: the uid holds more than snapshot_bytes_max). Any thread;
	 * blocks for the round trip.
	 */
	int (*get)(struct th_conn *c, uint32_t table, const char *key, struct th_entry **out);
	void (*entry_free)(struct th_entry *e);

	/*
	 * Wait until the hub has published every transaction of gtid_set (MySQL
	 * "uuid:1-5,..." or MariaDB "0-1-100,...", as the hub's source speaks) or
	 * until timeout_ns passes (< 0: no limit). *revision (may be NULL) gets
	 * the hub's revision then: once this connection's stats().revision reaches
	 * it, every change of those transactions has been dispatched. Errors:
	 * -ETIMEDOUT, -TH_EGTID, -ECONNREFUSED. Any thread; blocks.
	 */
	int (*sync)(struct th_conn *c, const char *gtid_set, int64_t timeout_ns, uint64_t *revision);

	/*
	 * For event loops (TH_WAIT_FD): a descriptor that becomes readable when
	 * dispatch() has work. Put it in your epoll for EPOLLIN; when it fires,
	 * call dispatch(c, 0). It stays the same for the connection's life (across
	 * hub restarts). -EINVAL in the other wait modes.
	 */
	int (*fd)(struct th_conn *c);

	/*
	 * Run callbacks: take in new watches, read the ring, resync if needed,
	 * deliver. When nothing is ready, wait up to timeout_ns (0: do not wait,
	 * < 0: no limit) in the connection's wait mode, then deliver what came.
	 * Returns the number of callbacks made (>= 0), or -EBUSY (another
	 * dispatch is running, or called from a callback), -EINVAL
	 * (TH_OPEN_F_THREAD). Problems with the hub are not errors here: the
	 * library resyncs and tells the watches.
	 */
	int (*dispatch)(struct th_conn *c, int64_t timeout_ns);

	/* Counters; st->size must be set by the caller. Any thread. 0 or -EINVAL. */
	int (*stats)(struct th_conn *c, struct th_stats *st);
};

/*
 * The one exported function. A caller asks for the major and minor it was
 * built with (TH_ABI_MAJOR, TH_ABI_MINOR) and gets the library's table
 * (static storage; never freed). Errors: -TH_EVERSION for another major or a
 * newer minor, -EINVAL for a NULL out.
 */
typedef int th_api_get_fn(uint32_t major, uint32_t minor, const struct th_api **out);
th_api_get_fn th_api_get;

/* ---- layout, fixed (LP64) ------------------------------------------------ */
#if defined(__LP64__) && !defined(__cplusplus)
_Static_assert(sizeof(struct th_open_opts) == 56, "th_open_opts layout");
_Static_assert(offsetof(struct th_open_opts, max_wake_delay_ns) == 48, "th_open_opts layout");
_Static_assert(offsetof(struct th_open_opts, timeout_ns) == 16, "th_open_opts layout");
_Static_assert(offsetof(struct th_open_opts, name) == 40, "th_open_opts layout");
_Static_assert(sizeof(struct th_watch_opts) == 48, "th_watch_opts layout");
_Static_assert(offsetof(struct th_watch_opts, path) == 16, "th_watch_opts layout");
_Static_assert(offsetof(struct th_watch_opts, free_arg) == 40, "th_watch_opts layout");
_Static_assert(sizeof(struct th_event) == 112, "th_event layout");
_Static_assert(offsetof(struct th_event, key) == 24, "th_event layout");
_Static_assert(offsetof(struct th_event, revision) == 56, "th_event layout");
_Static_assert(offsetof(struct th_event, gtid) == 96, "th_event layout");
_Static_assert(sizeof(struct th_entry) == 56, "th_entry layout");
_Static_assert(sizeof(struct th_stats) == 88, "th_stats layout");
_Static_assert(offsetof(struct th_api, strerror) == 8, "th_api layout");
_Static_assert(offsetof(struct th_api, stats) == 8 + 12 * 8, "th_api layout");
#endif

#ifdef __cplusplus
}
#endif

#endif
