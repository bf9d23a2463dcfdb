/* SPDX-License-Identifier: Apache-2.0 */
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
 * One implementation of both ends. protocol.c holds what the hub and its
 * clients both do with these bytes (framing a message, sending it with
 * descriptors, laying out and walking snapshot entries); ctl_client.c is the
 * one client of the control socket, used by libtopohub.so (plugins/), by
 * topohubctl (ctl/) and by the tests. Neither depends on the hub or on the
 * library: both sides depend on this component.
 *
 * Stitching a snapshot to the stream (what the client library does):
 *   1. ATTACH: the reply says the ring position P at which this reader starts.
 *   2. SNAPSHOT(table, prefix): entries, each with the revision of its last
 *      change, the revision R the hub had published when it finished, and a
 *      pending revision Q: 0, or a revision > R the walk may hold part of.
 *      Every change with a revision > R is in the ring at or after P.
 *   3. Read the ring from P: apply a change to key k only if its revision is
 *      greater than the revision k had in the snapshot (or k was absent): an
 *      equal revision is the very change the snapshot already had;
 *      fold everything up to revision R into the initial state, and when Q is
 *      not 0 read on until a record of revision >= Q has been read. The result
 *      is the exact state at a transaction boundary: nothing missing, nothing
 *      twice. Then deliver changes with later revisions as they come.
 * The hub guarantees this by its order of work per transaction: (a) update
 * the state table, (b) publish the ring batch, (c) advance the published
 * revision. A snapshot walks the state table under RCU; a change it misses
 * (a-b racing the walk) has a revision > the published revision at the walk's
 * start and so is in the ring after P. A change it sees may be between (a)
 * and (c): the walk holds part of a transaction, or of a reload, whose batch
 * may not be in the ring yet. Its revision is Q; its batch (or the RESYNC
 * record of the reload) comes after P. Stopping at the ring head seen after
 * the reply would deliver the rest of that transaction as changes after
 * SYNCED and lose the part the walk held.
 */
#ifndef TH_PROTOCOL_H
#define TH_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/ring.h"

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

/* ---- batch tags: whom a batch may be for -------------------------------- */

/*
 * A change batch is committed with tags (shm/ring.h, targeted wake-ups): for
 * every key it changes, th_tag_bit() of each component prefix of the key
 * (key[0:i] for every i > 0 with key[i] == '/') and of the whole key. Its
 * note is its revision. A client's filter holds th_tag_bit() of each exact
 * watch's key and of each recursive watch's prefix (trailing '/' trimmed):
 * any change under a watch meets the filter, a change elsewhere meets it
 * only by a collision of the 9-bit hash. A recursive watch of "" (every key)
 * turns the filter off. A RESYNC batch is untagged: for every reader.
 * The Go client computes the same bits (golden vectors pin them).
 */
#define TH_TAG_BITS (TH_RING_TAG_WORDS * 64)

/* FNV-1a over the table number (4 bytes, little-endian), then the key. */
static inline uint64_t th_tag_hash_start(uint32_t table)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (int i = 0; i < 4; i++) {
		h ^= (table >> (8 * i)) & 0xff;
		h *= 0x100000001b3ull;
	}
	return h;
}

static inline uint64_t th_tag_hash_byte(uint64_t h, uint8_t b)
{
	return (h ^ b) * 0x100000001b3ull;
}

/* The bit of a hash: its top 9 bits after a multiplicative mix. */
static inline unsigned th_tag_bit_of(uint64_t h)
{
	return (unsigned)((h * 0x9E3779B97F4A7C15ull) >> (64 - 9));
}

/* The bit that stands for (table, path[0:len]). */
unsigned th_tag_bit(uint32_t table, const void *path, uint32_t len);

/* Set in tags (TH_RING_TAG_WORDS words) the bits of every prefix of key. */
void th_tag_key(uint64_t *tags, uint32_t table, const void *key, uint32_t len);

_Static_assert(TH_TAG_BITS == 512, "th_tag_bit_of yields 9 bits");

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
 * descriptor: a memfd holding `count` entries, each struct th_snap_entry +
 * key + value, 8-byte aligned. It is sealed against writing and growing, not
 * against shrinking: the hub takes its memory back by truncating it, after
 * snapshot_hold_ms, or earlier when the client's uid holds more than
 * snapshot_bytes_max of them (a client that keeps them holds empty files).
 * So a client reads it at once, with read(2)/pread(2) into memory of its
 * own (th_snap_read; a mapping would fault with SIGBUS once it is cut), and
 * a read that ends before `bytes` means it was taken back: that snapshot
 * fails (-ESTALE) and the client asks again. What it did read is the hub's,
 * byte for byte (nobody can write the memfd). */
struct th_msg_snapshot {
	uint32_t table;
	uint32_t prefix_len;  /* followed by prefix bytes */
};
struct th_msg_snapshot_reply {
	uint64_t revision;     /* R: the published revision when the walk finished */
	uint64_t start_revision; /* published revision when the walk started */
	uint64_t count;
	uint64_t bytes;        /* size of the memfd's contents */
	/* Q: 0, or the revision the hub was applying when the walk finished: read
	 * the ring to a record of revision >= Q before the copy is exact. Hubs
	 * before it send the first 32 bytes only (TH_SNAPSHOT_REPLY_MIN): Q = 0. */
	uint64_t pending_revision;
};
#define TH_SNAPSHOT_REPLY_MIN 32u
_Static_assert(sizeof(struct th_msg_snapshot_reply) == 40, "th_msg_snapshot_reply layout");
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

/* ---- what both ends do (protocol.c) -------------------------------------- */

struct th_buf;

/*
 * Send one message: a header made here (magic, version, type, length,
 * request_id), then len bytes of body, with nfds descriptors (at most 4) by
 * SCM_RIGHTS. flags go to sendmsg (MSG_NOSIGNAL is always added; the hub adds
 * MSG_DONTWAIT). 0, -EMSGSIZE (body over TH_MSG_MAX), -EAGAIN (would block, or
 * a short send), -ECONNRESET (the peer is gone), -errno. Retries on EINTR.
 */
int th_proto_send(int fd, uint16_t type, uint32_t request_id, const void *body, size_t len, const int *fds,
		  int nfds, int flags);

/*
 * Receive one message into buf (cap bytes) with its descriptors: up to
 * maxfds go to fds (close-on-exec; *nfds says how many), further ones are
 * closed (maxfds 0: all of them, as the hub does with what clients send).
 * 0 with *len set, -ECONNRESET (end of file), -EMSGSIZE (the message was
 * longer than cap: its descriptors are closed; with MSG_TRUNC in flags *len
 * is its real length), -errno. flags go to recvmsg. Retries on EINTR.
 */
int th_proto_recv(int fd, void *buf, size_t cap, size_t *len, int *fds, int maxfds, int *nfds, int flags);

/* Snapshot entries (SNAPSHOT and GET replies): the hub lays them out with
 * th_snap_put, clients walk them with th_snap_next. */
void th_snap_put(struct th_buf *b, const struct th_snap_entry *e, const void *key, const void *value);

struct th_snap_iter {
	const uint8_t *map;  /* the memfd's contents */
	uint64_t len;        /* its bytes (the reply's .bytes) */
	uint64_t count;      /* entries the reply announced */
	uint64_t off;        /* start at 0 */
	uint64_t index;      /* start at 0 */
};
/* The next entry: 1 with *e, *key and *value (pointers into the map) set, 0
 * after count entries, -TH_EPROTO when an entry does not fit the map, its
 * key is longer than TH_KEY_MAX, or its revision is 0 (none is: zeros are
 * not a snapshot). */
int th_snap_next(struct th_snap_iter *it, struct th_snap_entry *e, const uint8_t **key, const uint8_t **value);

/* A snapshot memfd (fd, of the bytes its reply announced) read into a
 * malloc'ed copy *out (NULL when bytes is 0; the caller frees it): 0,
 * -ESTALE when it ends before bytes (the hub took it back before it was
 * read), -TH_EPROTO when it is longer, -ENOMEM, or -errno. */
int th_snap_read(int fd, uint64_t bytes, uint8_t **out);

/* ---- the client of the control socket (ctl_client.c) --------------------- */

/*
 * One connection (struct th_ctl) carries one request at a time: send, then
 * wait for the reply with the same request id (replies to earlier requests
 * that timed out are skipped). Replies' descriptors are received
 * close-on-exec and handed to the caller. No global state, nothing printed:
 * the text of the last failure is kept in the handle (th_ctl_error()), so a
 * library may use it in someone else's process.
 *
 * Errors: 0 or a negative code: -errno from the socket calls, -ECONNRESET
 * (the hub went away), -ETIMEDOUT, -TH_EPROTO (a reply that does not parse),
 * -TH_EVERSION (a hub of another protocol version), or the hub's own code
 * from an ERROR reply.
 *
 * Threads: a connection is used by one thread at a time.
 */
struct th_ctl;

/* A raw reply. body is malloc'ed and NUL-terminated (free with
 * th_ctl_reply_free, which also closes the descriptors the caller did not
 * take: set them to -1 to keep). */
struct th_ctl_reply {
	uint16_t type;
	uint32_t request_id;
	uint8_t *body;
	size_t len;
	int fds[4];
	int nfds;
};

/* Connects to the socket at path. 0 and *out, or -errno (-ENAMETOOLONG,
 * -ENOENT, -ECONNREFUSED, -EACCES, -ENOMEM). */
int th_ctl_connect(const char *path, struct th_ctl **out);
/* Closes the connection (an attached reader's slot is reclaimed by the hub). NULL: no-op. */
void th_ctl_close(struct th_ctl *c);
int th_ctl_fd(const struct th_ctl *c);
/* Text of the last failure or ERROR reply ("" when none). */
const char *th_ctl_error(const struct th_ctl *c);

/*
 * Sends one request (body of len bytes) and waits up to timeout_ms (< 0:
 * forever) for its reply. An ERROR reply is returned as its code (the reply
 * freed, its text in th_ctl_error()); a reply of the request's type fills
 * *rep; any other type is -TH_EPROTO.
 */
int th_ctl_call(struct th_ctl *c, uint16_t type, const void *body, size_t len, struct th_ctl_reply *rep,
		int timeout_ms);
void th_ctl_reply_free(struct th_ctl_reply *rep);

/* ATTACH: on success *out is the reply and *fds holds the three descriptors
 * (the caller's). pid and name (NULL: none) are informational. */
int th_ctl_attach(struct th_ctl *c, uint64_t timeout_ns, uint32_t pid, const char *name,
		  struct th_msg_attach_reply *out, struct th_ring_reader_fds *fds, int timeout_ms);

/* A snapshot's entries as received: a copy of the memfd's, the memfd closed. */
struct th_ctl_snapshot {
	struct th_msg_snapshot_reply reply;
	uint8_t *data;       /* malloc'ed; NULL when reply.bytes is 0 */
	size_t len;
};
/* SNAPSHOT (type TH_MSG_SNAPSHOT, key = prefix) or GET (TH_MSG_GET). Walk the
 * entries with th_ctl_snapshot_iter() and th_snap_next(); release with
 * th_ctl_snapshot_free(). -ESTALE: the hub took the memfd back before it was
 * read (th_snap_read); ask again. */
int th_ctl_snapshot(struct th_ctl *c, uint16_t type, uint32_t table, const void *key, uint32_t key_len,
		    struct th_ctl_snapshot *out, int timeout_ms);
struct th_snap_iter th_ctl_snapshot_iter(const struct th_ctl_snapshot *s);
void th_ctl_snapshot_free(struct th_ctl_snapshot *s);

/* SYNC: the revision at which the hub published past gtid. timeout_ns < 0:
 * no limit (the hub's own limit is then the largest it has). */
int th_ctl_sync(struct th_ctl *c, const char *gtid, int64_t timeout_ns, uint64_t *revision);

/* STATS / READERS / TABLES: the JSON text, malloc'ed and NUL-terminated. */
int th_ctl_json(struct th_ctl *c, uint16_t type, char **json);

#endif
