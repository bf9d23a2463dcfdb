/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ring.h: a single-writer, many-reader ring of records in shared memory.
 *
 * One writer process publishes variable-length records; any number of reader
 * processes consume them at their own pace. The writer never waits for a
 * reader and never takes a lock; a reader that falls a whole ring behind is
 * overtaken ("lapped") and learns so with certainty on its next read.
 *
 * Memory. The ring is a memfd, sealed against resizing and against any new
 * writable mapping (F_SEAL_FUTURE_WRITE). Readers get a read-only descriptor
 * and map it PROT_READ: a reader cannot corrupt the ring or disturb the other
 * readers. Each reader also gets a slot page of its own (a separate memfd,
 * shared read-write with the writer only) where it keeps its read position,
 * its sleeping flag and its requested slow-consumer timeout, and where the
 * writer marks it evicted. The writer treats everything in a slot page as
 * untrusted input.
 *
 * Records. A record is a 16-byte header (length, type, flags, publish time)
 * and up to max_record payload bytes, padded to 8 bytes. Positions are 64-bit
 * byte offsets that only grow; the capacity is a power of two, and a record
 * may wrap around the end of the buffer (readers copy it out in two pieces).
 *
 * Publication has RCU semantics. Records are appended to a batch that is
 * invisible until th_ring_commit() publishes the whole batch with one
 * store-release of the head position. Space is reclaimed by overwriting: before
 * the writer overwrites bytes it advances the "reclaim" position past them.
 * A reader copies a record out, then checks (copy-then-check, as a seqlock
 * reader does) that the reclaim position has not passed the record; if it has,
 * the copy may be torn and is thrown away and the reader is told -TH_ELAPPED.
 * So a reader never hands out bytes the writer may be overwriting, and the
 * grace period a reader is owed is bounded by the ring's size and by its own
 * slow-consumer timeout (enforced by the hub through th_ring_evict()), never by
 * the writer's patience.
 *
 * Waiting. A reader with nothing to read can spin (lowest latency, one core
 * burnt), spin briefly then sleep on a futex on the head word (the default),
 * or sleep in its own event loop on a descriptor (th_ring_reader_event_fd()).
 * The writer makes a system call on commit only for a reader that sleeps and
 * wants the batch: one FUTEX_WAKE on that reader's own slot word, or one
 * byte into its pipe in fd mode.
 * The fd is the read end of a pipe, not an eventfd: an eventfd has one open
 * file description, so a reader holding a dup of the writer's could clear
 * O_NONBLOCK on it, fill the counter and make the writer's write() block for
 * good. A pipe's write end is a description of its own, non-blocking and
 * the writer's alone (ring.c, "What a reader can never do"). Level-triggered
 * until the reader drains it (disarm). An eviction wakes only the reader
 * concerned (a futex sleeper waits on its slot's word too, with
 * futex_waitv). bench/ measures the fd mode's cost against the futex mode.
 *
 * Targeted wake-ups. A batch may carry tags, TH_RING_TAG_WORDS words of bits
 * (th_ring_commit_tagged(): e.g. hashes of what it changes), and a note (e.g.
 * its revision). A reader that sets a filter (th_ring_reader_set_filter) is
 * woken only for batches whose tags meet it, and for every batch while its
 * wake_any count (th_ring_reader_wake_any) is above zero. The batches it was
 * not woken for it does not read at all: th_ring_read() jumps over them, and
 * th_ring_reader_skips() tells the note of the last one jumped; the writer
 * keeps their range on its own side, so the reader's lag starts after them
 * (neither slow nor lapped for records it never needed). The tags are the
 * writer's promise: a batch that might matter to a filter must meet it.
 *
 * Hostile readers. Nothing a reader writes into its slot page or does with
 * its descriptors blocks or slows the writer or the control side, or changes
 * what the writer reports about other readers: eviction state and counts are
 * the writer's own (the slot mirrors them; an acknowledgment without moving
 * is not a second eviction), and lag is computed only from record headers at
 * positions the writer knows are record starts (th_ring_lag.invalid
 * otherwise). A reader's read_pos is only its report to the writer: one that
 * shows the head without reading is taken as caught up (no lag, no
 * eviction), which harms only itself: it reads on from its own position,
 * and its next read past what the writer reclaimed is -TH_ELAPPED.
 *
 * Who may call what concurrently:
 *
 *   | call                                   | from                                 |
 *   |----------------------------------------|--------------------------------------|
 *   | th_ring_append/appendv/abort/commit    | the publishing thread, one at a time |
 *   | th_ring_add_reader, remove_reader,     | any thread, concurrently with the    |
 *   |   reader_lag, evict                    |   publisher (serialised internally)  |
 *   | th_ring_head, th_ring_writer_*(info)   | any thread                           |
 *   | th_ring_writer_destroy                 | once, after every other call ended   |
 *   | th_ring_read/wait/arm/... on a reader  | one thread per reader handle         |
 *
 * Caveats.
 * - fork(): a child inherits mappings; a reader handle must be used by one
 *   process only (its slot records one read position). A writer handle must
 *   not be used in a forked child.
 * - A reader killed mid-read leaves nothing to clean in the ring; its slot is
 *   reclaimed by th_ring_remove_reader() (the hub does this when the reader's
 *   control socket closes).
 * - Records are at most capacity/4 bytes; a batch at most capacity/2 bytes, so
 *   that a reader that keeps up with whole batches is never lapped by one.
 * - Little-endian only (record header words are read as little-endian).
 */
#ifndef TH_RING_H
#define TH_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "common/th_atomic.h"

/* Words of a batch's tags and of a reader's filter (512 bits, one cache line). */
#define TH_RING_TAG_WORDS 8

/* Flags carried by records. */
#define TH_RING_F_BATCH_END 0x0001u /* last record of its batch (transaction) */

/* The reason a reader was evicted, as the writer records it in the slot. */
enum th_ring_evict_reason {
	TH_RING_EVICT_NONE = 0,
	TH_RING_EVICT_SLOW = 1,     /* oldest unread record older than its timeout */
	TH_RING_EVICT_LAPPED = 2,   /* the writer overtook it */
	TH_RING_EVICT_ADMIN = 3,    /* asked for by an operator */
	TH_RING_EVICT_SHUTDOWN = 4, /* the writer is going away */
	TH_RING_EVICT_INVALID = 5,  /* its slot showed a position that is no record start */
};

enum th_ring_wait_mode {
	TH_RING_WAIT_SPIN = 0,  /* spin until data or timeout */
	TH_RING_WAIT_FUTEX = 1, /* spin for spin_ns, then sleep on the head futex */
	TH_RING_WAIT_FD = 2,    /* sleep in the caller's poll/epoll on the event fd */
};

struct th_ring_config {
	uint64_t capacity;    /* bytes of record space: a power of two, >= 4096 */
	uint32_t max_record;  /* largest payload; 0 = capacity/4; at most capacity/4 */
	uint32_t max_readers; /* 0 = 1024 */
	uint64_t initial_pos; /* first record position, a multiple of 8 (tests start near 2^32 and beyond) */
	uint64_t generation;  /* 0 = made from the clock and pid; changes each time a hub starts */
	const char *name;     /* memfd name shown in /proc/PID/maps; NULL = "topohub-ring" */
};

/* What a reader needs: pass all three to th_ring_reader_open() (or over SCM_RIGHTS). */
struct th_ring_reader_fds {
	int ring_fd;  /* the ring, read-only */
	int slot_fd;  /* this reader's slot page, read-write */
	int event_fd; /* readable when the writer wakes this reader in fd mode (a pipe's read end; see Waiting) */
};

/* One record as read: header fields; the payload went to the caller's buffer. */
struct th_ring_record {
	uint64_t pos;        /* position of the record */
	uint64_t publish_ns; /* CLOCK_MONOTONIC time its batch was started by the writer */
	uint32_t len;        /* payload bytes */
	uint16_t type;       /* the writer's record type */
	uint16_t flags;      /* TH_RING_F_* */
};

/* A reader's state, as the writer sees it. Eviction fields are the writer's
 * own; the position is the reader's, taken only where the writer can check
 * it (never older than the head when the reader was added or last rejoined). */
struct th_ring_lag {
	uint64_t read_pos;    /* the reader's position as it last stored it (at least its floor) */
	uint64_t lag_bytes;   /* head - read_pos (0 when caught up or invalid) */
	uint64_t age_ns;      /* age of the oldest unread record; 0 when caught up; UINT64_MAX when lapped;
			       * when invalid: how long its position has been invalid */
	uint64_t timeout_ns;  /* the slow-consumer timeout the reader asked for (0 = none given) */
	uint32_t evictions;   /* times evicted (the writer's count) */
	bool lapped;          /* its position is older than the oldest record still intact */
	bool evicted;         /* evicted and not yet rejoined */
	bool sleeping;        /* its sleeping flag is set */
	bool invalid;         /* its position is no record start: misaligned, beyond the head, or inside a record */
};

struct th_ring_writer;
struct th_ring_reader;

/* ---- writer ------------------------------------------------------------- */

/*
 * Create a ring. Errors: -EINVAL (capacity not a power of two or < 4096,
 * max_record > capacity/4, initial_pos not aligned), -ENOMEM, or -errno from
 * memfd_create/ftruncate/mmap. Any thread; the handle belongs to the caller.
 */
int th_ring_writer_create(const struct th_ring_config *cfg, struct th_ring_writer **out);

/*
 * Mark the ring closed (readers get -TH_ECLOSED once they have read
 * everything published), wake every sleeper, unmap and free. Reader processes
 * keep their own mappings until they close. No other call may be running.
 */
void th_ring_writer_destroy(struct th_ring_writer *w);

/*
 * Append a record to the current batch; it stays invisible until
 * th_ring_commit(). Errors: -TH_ETOOBIG (len > max_record, or the batch would
 * exceed capacity/2; the batch so far is kept). Publishing thread only.
 */
int th_ring_append(struct th_ring_writer *w, uint16_t type, const void *data, uint32_t len);
/* The same, with the payload gathered from iov (total at most max_record). */
int th_ring_appendv(struct th_ring_writer *w, uint16_t type, const struct iovec *iov, int iovcnt);

/*
 * Publish the current batch: every record appended since the last commit
 * becomes visible to readers at once, the last one flagged
 * TH_RING_F_BATCH_END. Wakes sleeping readers. Returns the number of records
 * published (0 for an empty batch). Never blocks; makes a system call only
 * when some reader sleeps. Publishing thread only.
 */
int th_ring_commit(struct th_ring_writer *w);

/*
 * The same, for a batch with tags (TH_RING_TAG_WORDS words; NULL: for every
 * reader, as th_ring_commit): a reader with a filter on is woken only when
 * its filter meets the tags (or its wake_any count is above zero), and
 * otherwise jumps over the batch without reading it, learning note.
 * Publishing thread only.
 */
int th_ring_commit_tagged(struct th_ring_writer *w, const uint64_t *tags, uint64_t note);

/*
 * Give the current batch's publish time (CLOCK_MONOTONIC ns) instead of
 * letting the ring read the clock at the batch's first append. For callers
 * that already hold a timestamp: a clock read costs more than publishing a
 * small record. Call before the batch's first append; ignored after it.
 * Publishing thread only.
 */
void th_ring_set_batch_time(struct th_ring_writer *w, uint64_t monotonic_ns);

/*
 * Wake-up moderation: the longest delay the writer may advise readers to
 * batch their wake-ups by (0: none; 40 ms by default), and the delay it
 * advises now (see Moderation in ring.c). Any thread.
 */
void th_ring_set_wake_delay_max(struct th_ring_writer *w, uint64_t max_ns);
uint64_t th_ring_wake_delay(const struct th_ring_writer *w);

/* Drop the unpublished batch (its space is reused). Publishing thread only. */
void th_ring_abort(struct th_ring_writer *w);

/* Head: the position after the last published record. Any thread. */
uint64_t th_ring_head(const struct th_ring_writer *w);
/* The oldest position still intact. Any thread. */
uint64_t th_ring_oldest(const struct th_ring_writer *w);
uint64_t th_ring_generation(const struct th_ring_writer *w);
uint64_t th_ring_capacity(const struct th_ring_writer *w);
uint32_t th_ring_max_record(const struct th_ring_writer *w);

/*
 * Add a reader: creates its slot page and wake-up pipe, starting it at the
 * current head. On success *id names it for the calls below and *fds holds
 * three new descriptors (close-on-exec) that the caller owns and passes to
 * the reader process, then closes. Errors: -ENOSPC (max_readers reached),
 * -ENOMEM, -errno. Any thread.
 */
int th_ring_add_reader(struct th_ring_writer *w, uint32_t *id, struct th_ring_reader_fds *fds);

/*
 * Forget a reader (it closed, died or was evicted for good): its slot is
 * unmapped once the publisher is no longer looking at it. The reader
 * process's own mappings stay valid until it closes them. -ENOENT for an
 * unknown id. Any thread; may spin for the length of one commit.
 */
int th_ring_remove_reader(struct th_ring_writer *w, uint32_t id);

/* How far behind reader id is. -ENOENT for an unknown id. Any thread. */
int th_ring_reader_lag(struct th_ring_writer *w, uint32_t id, struct th_ring_lag *lag);

/*
 * Evict reader id: its next read returns -TH_EEVICTED, and it is woken if it
 * sleeps (only it). It comes back with th_ring_reader_rejoin(). -ENOENT for
 * an unknown id, -EALREADY when it is evicted and has not rejoined (nothing
 * is counted or woken). Never blocks; wakes with no lock held. Any thread.
 */
int th_ring_evict(struct th_ring_writer *w, uint32_t id, enum th_ring_evict_reason reason);

/* ---- reader ------------------------------------------------------------- */

/*
 * Map a ring and a slot for reading. The descriptors are not consumed (the
 * caller closes them; the reader dups the event fd it keeps). Errors:
 * -TH_EFORMAT (not a topohub ring, or one of another version or layout; a
 * message is written to errbuf when errbuf is not NULL), -errno from mmap.
 */
int th_ring_reader_open(const struct th_ring_reader_fds *fds, struct th_ring_reader **out,
			char *errbuf, size_t errlen);
void th_ring_reader_close(struct th_ring_reader *r);

/*
 * Copy the next record's payload into buf. Returns 1 (a record; *rec filled
 * and the reader moved past it), 0 (nothing new), or:
 *   -TH_EEVICTED  the writer evicted this reader (see th_ring_reader_evict_reason)
 *   -TH_ELAPPED   the writer overtook this reader; what it had not read is lost
 *   -TH_ECLOSED   the writer closed the ring and everything was read
 *   -ENOBUFS      buf is smaller than the record; rec->len says how big it is
 *   -TH_ECORRUPT  a record header is inconsistent while intact (a writer bug)
 * The first three are sticky until th_ring_reader_rejoin().
 */
int th_ring_read(struct th_ring_reader *r, struct th_ring_record *rec, void *buf, size_t buflen);

/*
 * Wait until there may be something to read (a record, an eviction, the
 * ring closed) or until timeout_ns passes (< 0: no limit). Returns 1 when
 * something may be ready, 0 on timeout. Mode TH_RING_WAIT_FD is not valid
 * here (use arm/disarm and your own poll). spin_ns bounds the spinning before
 * a futex sleep.
 */
int th_ring_wait(struct th_ring_reader *r, enum th_ring_wait_mode mode, int64_t timeout_ns,
		 uint64_t spin_ns);

/*
 * The same, and also return 1 when *kick is not (or stops being) kick_val:
 * a word of the reader's own process that another of its threads moves with
 * th_ring_kick() when it has work for the waiting one (load kick_val before
 * looking for that work, so that a kick in between is not slept through).
 */
int th_ring_wait_or(struct th_ring_reader *r, enum th_ring_wait_mode mode, int64_t timeout_ns,
		    uint64_t spin_ns, th_atomic_u32 *kick, uint32_t kick_val);
void th_ring_kick(th_atomic_u32 *kick);

/*
 * Moderation (ring.c explains it): in TH_RING_WAIT_FUTEX, a reader woken
 * again within the writer's wake-up delay naps for that delay instead of
 * being woken by each commit. Bound that delay (0: never nap; the default
 * is the writer's). th_ring_reader_naps() counts the naps taken.
 */
void th_ring_reader_set_max_delay(struct th_ring_reader *r, uint64_t max_ns);
uint64_t th_ring_reader_naps(const struct th_ring_reader *r);
/* How long the next futex wait would nap at now_ns (0: it would not): a
 * caller that waits in slices gives the wait at least this, so that one nap
 * is one sleep. */
uint64_t th_ring_reader_nap_left(const struct th_ring_reader *r, uint64_t now_ns);

/*
 * For event loops: the fd becomes readable when the writer publishes while
 * this reader is armed. th_ring_reader_arm() returns 0 when armed (now wait
 * for the fd), or 1 when there is something to read already (do not wait).
 * Call th_ring_reader_disarm() after the fd fired (it drains the fd).
 */
int th_ring_reader_event_fd(const struct th_ring_reader *r);
int th_ring_reader_arm(struct th_ring_reader *r);
void th_ring_reader_disarm(struct th_ring_reader *r);

/*
 * Start over after -TH_ELAPPED or -TH_EEVICTED: acknowledge the eviction and
 * move to the head (nothing older will be delivered). Returns the new
 * position in *pos. Used by a reader that resyncs from a snapshot.
 */
int th_ring_reader_rejoin(struct th_ring_reader *r, uint64_t *pos);
/* Move to the oldest record still intact instead (tests, tools). */
int th_ring_reader_rejoin_oldest(struct th_ring_reader *r, uint64_t *pos);

/*
 * Be woken only for batches whose tags meet filter (TH_RING_TAG_WORDS words),
 * or for every batch (filter NULL, the default). Adding bits takes effect
 * for every batch whose commit comes after the head this reader loads next:
 * call it before asking for a snapshot of what the new bits stand for.
 * The reader's thread.
 */
void th_ring_reader_set_filter(struct th_ring_reader *r, const uint64_t *filter);

/*
 * Count up (+1) or down (-1) the reasons to be woken for every batch
 * whatever the filter (a revision awaited, a snapshot to stitch). Any thread.
 */
void th_ring_reader_wake_any(struct th_ring_reader *r, int delta);

/*
 * How many times th_ring_read() jumped over batches it was not woken for,
 * and (note) the note of the last batch of the last jump. The reader's thread.
 */
uint64_t th_ring_reader_skips(const struct th_ring_reader *r, uint64_t *note);

/* Ask for a slow-consumer timeout (the hub clamps it to its bounds). */
void th_ring_reader_set_timeout(struct th_ring_reader *r, uint64_t timeout_ns);

uint64_t th_ring_reader_pos(const struct th_ring_reader *r);
/* The ring's head as last seen by the writer's publication. */
uint64_t th_ring_reader_head(const struct th_ring_reader *r);
uint64_t th_ring_reader_generation(const struct th_ring_reader *r);
enum th_ring_evict_reason th_ring_reader_evict_reason(const struct th_ring_reader *r);

#endif
