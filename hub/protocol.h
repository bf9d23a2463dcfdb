/*
 * protocol.h: what topohubd and its clients say to each other.
 *
 * Two channels:
 *   1. The ring (shm/ring.h): the hub publishes one batch of records per
 *      committed transaction; readers map it read-only.
 *   2. The control socket: a Unix SOCK_SEQPACKET socket (message boundaries
 *      kept, peer credentials checked) for attach, snapshots, gets, syncs and
 *      operator queries.
 *
 * Everything here is fixed-width and little-endian, with explicit padding;
 * structs are sent as they are laid out (both ends are on one host, and the
 * format word of the ring already refuses a foreign build). Fields are only
 * ever appended; a receiver accepts a longer message than it knows (it reads
 * the prefix it knows) and a shorter one only down to the documented minimum.
 *
 * Revisions. The hub numbers every transaction it publishes with the next
 * revision: a 64-bit number that only grows, across hub restarts too (a hub
 * starts at max(its clock in microseconds, 1)), so a reader can order any two
 * changes it was ever told about. All records of one transaction carry the
 * same revision, and a batch is exactly one transaction. A batch carries each
 * key's last change in the transaction only: no other transaction could see
 * the values before it, and so (key, revision) names exactly one value.
 *
 * Stitching a snapshot to the stream (what the client library does):
 *   1. ATTACH: the reply says the ring position P at which this reader starts.
 *   2. SNAPSHOT(table, prefix): entries, each with the revision of its last
 *      change, and the revision R the hub had published when it finished.
 *      Every change with a revision > R is in the ring at or after P.
 *   3. Read the ring from P: apply a change to key k only if its revision is
 *      greater than the revision k had in the snapshot (or k was absent): an
 *      equal revision is the very change the snapshot already had;
 *      fold everything up to revision R into the initial state. The result
 *      is the exact state at R: nothing missing, nothing twice. Then deliver
 *      changes with revisions > R as they come.
 * The hub guarantees this by its order of work per transaction: (a) update
 * the state table, (b) publish the ring batch, (c) advance the published
 * revision. A snapshot walks the state table under RCU; a change it misses
 * (a-b racing the walk) has a revision > the published revision at the walk's
 * start and so is in the ring after P.
 */
#ifndef TH_PROTOCOL_H
#define TH_PROTOCOL_H

#include <stdint.h>

/* ---- ring records ------------------------------------------------------- */

/* Ring record types (the ring's 16-bit type). */
enum th_rec_type {
	TH_REC_CHANGE = 1, /* struct th_rec_change + key + value + gtid */
	TH_REC_RESYNC = 2, /* struct th_rec_resync: continuity lost; snapshot again */
};

enum th_change_op {
	TH_OP_PUT = 1,
	TH_OP_DELETE = 2,
};

#define TH_CHANGE_F_VALUE_NULL 0x1u /* the value column is SQL NULL (value_len 0) */

/* One row change. Followed by key_len bytes of key, value_len bytes of value,
 * gtid_len bytes of the transaction's GTID text ("uuid:n" or "d-s-n"), no NULs. */
struct th_rec_change {
	uint64_t revision;
	int64_t version;      /* the row's version column; 0 when the table has none */
	uint64_t commit_us;   /* commit time from the binlog, CLOCK_REALTIME microseconds */
	uint64_t publish_ns;  /* when the hub published it, CLOCK_REALTIME nanoseconds */
	uint32_t key_len;
	uint32_t value_len;
	uint16_t gtid_len;
	uint8_t table;        /* index in the hub's watched tables (0 topo_data, 1 topo_locks, 2 topo_elections by default) */
	uint8_t op;           /* enum th_change_op */
	uint32_t flags;       /* TH_CHANGE_F_* */
};
_Static_assert(sizeof(struct th_rec_change) == 48, "th_rec_change layout");

enum th_resync_reason {
	TH_RESYNC_DDL = 1,       /* DDL on a watched table */
	TH_RESYNC_RELOAD = 2,    /* the hub reloaded its tables (reconnect without GTID continuity) */
	TH_RESYNC_TOO_BIG = 3,   /* a transaction too large for the ring; its changes are in the state */
};

struct th_rec_resync {
	uint64_t revision;    /* state at this revision must be fetched by snapshot */
	uint32_t reason;      /* enum th_resync_reason */
	uint32_t table;       /* affected table, or UINT32_MAX for all */
};

/* ---- control socket ----------------------------------------------------- */

#define TH_PROTO_MAGIC 0x4854u   /* "TH" */
#define TH_PROTO_VERSION 1u
#define TH_MSG_MAX 65536u        /* hard limit on one message, header included */
#define TH_KEY_MAX 4096u         /* longest key or prefix in a request */

enum th_msg_type {
	/* requests (client -> hub) */
	TH_MSG_ATTACH = 1,
	TH_MSG_SNAPSHOT = 2,
	TH_MSG_GET = 3,
	TH_MSG_SYNC = 4,
	TH_MSG_STATS = 5,
	TH_MSG_READERS = 6,
	TH_MSG_REJOIN = 7,
	TH_MSG_TABLES = 8,
	TH_MSG_STREAM = 9,    /* benchmark only: records over this socket (see below) */
	/* replies (hub -> client): request type | 0x8000, or ERROR */
	TH_MSG_REPLY = 0x8000,
	TH_MSG_ERROR = 0xffff,
};

struct th_msg_hdr {
	uint16_t magic;       /* TH_PROTO_MAGIC */
	uint16_t version;     /* TH_PROTO_VERSION */
	uint16_t type;        /* enum th_msg_type */
	uint16_t flags;       /* 0 */
	uint32_t len;         /* whole message, header included, <= TH_MSG_MAX */
	uint32_t request_id;  /* echoed in the reply */
};
_Static_assert(sizeof(struct th_msg_hdr) == 16, "th_msg_hdr layout");

/* ERROR reply: hdr, then this, then message text (no NUL). */
struct th_msg_error {
	int32_t code;         /* negative errno or -TH_E* */
	uint32_t reserved;
};

/* ATTACH: become a reader. Reply carries three descriptors (SCM_RIGHTS), in
 * order: ring (read-only), slot page, eventfd; see th_ring_reader_fds. One
 * attach per connection; the connection's end is the reader's end: its slot is
 * reclaimed at once. */
struct th_msg_attach {
	uint64_t timeout_ns;  /* slow-consumer timeout asked for; clamped to the hub's bounds */
	uint32_t pid;         /* informational; the hub trusts SO_PEERCRED */
	uint32_t reserved;
	char name[32];        /* informational, NUL-padded: "vtgate", "topohubctl" */
};
struct th_msg_attach_reply {
	uint64_t generation;  /* ring generation: changes when the hub restarts */
	uint64_t start_pos;   /* ring position this reader starts at */
	uint64_t revision;    /* published revision when the reader was added */
	uint64_t timeout_ns;  /* the timeout granted */
	uint32_t reader_id;
	uint32_t ntables;
};

/* SNAPSHOT: the entries of a table whose keys start with prefix (on the bytes;
 * component-boundary matching is the client's). The reply carries one
 * descriptor: a sealed memfd holding `count` entries, each struct
 * th_snap_entry + key + value, 8-byte aligned. */
struct th_msg_snapshot {
	uint32_t table;
	uint32_t prefix_len;  /* followed by prefix bytes */
};
struct th_msg_snapshot_reply {
	uint64_t revision;     /* R: the state is exact at R once ring changes up to R are folded in */
	uint64_t start_revision; /* published revision when the walk started */
	uint64_t count;
	uint64_t bytes;        /* size of the memfd's contents */
};
struct th_snap_entry {
	uint64_t revision;     /* of the entry's last change */
	int64_t version;
	uint32_t key_len;
	uint32_t value_len;
	uint32_t flags;        /* TH_CHANGE_F_* */
	uint32_t reserved;
};
_Static_assert(sizeof(struct th_snap_entry) == 32, "th_snap_entry layout");

/* GET: one entry; reply is a snapshot reply with count 0 or 1 (same memfd form). */
struct th_msg_get {
	uint32_t table;
	uint32_t key_len;     /* followed by key bytes */
};

/* SYNC: wait until the hub has published every transaction in the GTID set
 * (MySQL "uuid:1-5" or MariaDB "0-1-100" per the source's flavour) or the
 * timeout. Reply: the revision at which it had. -ETIMEDOUT on timeout,
 * -TH_EGTID on a malformed set. */
struct th_msg_sync {
	uint64_t timeout_ns;
	uint32_t gtid_len;    /* followed by GTID text */
	uint32_t reserved;
};
struct th_msg_sync_reply {
	uint64_t revision;
};

/* REJOIN: after eviction or a lap, a reader asks where to start again.
 * The hub acknowledges nothing itself (the reader's slot does): the reply
 * only gives the current published revision, for logs and stitching. */
struct th_msg_rejoin_reply {
	uint64_t revision;
};

/* STATS, READERS, TABLES: no request body. Reply body: JSON text (for
 * operators and tools; fields documented in the README), no NUL, at most
 * TH_MSG_MAX - header. */

/* STREAM (benchmark only: the hub answers -ENOTSUP unless started with
 * bench_socket_fanout = true). The peer of the end-to-end benchmark that
 * shows what the ring is worth: the hub sends every record it publishes over
 * this socket instead of the subscriber reading the ring.
 * Body: as ATTACH's (every field informational; any length is accepted).
 * Reply: struct th_msg_stream_reply. After it, the connection carries only
 * records, hub to client, in publication order, one SOCK_SEQPACKET message
 * per record, no header: exactly the bytes of the ring record's payload. The
 * type is the length: sizeof(struct th_rec_resync) (16) bytes is a resync;
 * a change is struct th_rec_change + key + value + gtid (48 bytes or more).
 * The hub adds the subscriber right after it sent the reply (so the reply
 * comes first): transactions published from then on are streamed; one being
 * published at that moment may be or not (benchmarks start writing after
 * every subscriber has its reply).
 * The hub never waits for a subscriber: a send that would block (the socket
 * buffer, reply.sndbuf bytes, is full) drops the subscriber: its connection
 * is shut down (the client reads what was queued, then end of file) and the
 * drop counts as an eviction in STATS. Anything the client sends after
 * STREAM closes the connection. One STREAM per connection, and not on an
 * attached one (-EALREADY). */
struct th_msg_stream_reply {
	uint64_t revision;    /* published revision when the subscriber was added */
	uint64_t sndbuf;      /* the hub's send buffer for this socket, bytes (SO_SNDBUF as granted) */
};

#endif
