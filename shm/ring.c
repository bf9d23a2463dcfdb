/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ring.c: the shared-memory ring. Read ring.h first for what is promised.
 *
 * Layout of the ring memfd:
 *
 *   page 0   struct ring_header: constants (magic, format, generation, sizes),
 *            then one cache line the writer stores on publish (head, reclaim),
 *            then one line it stores rarely (the closed flag, the wake-up
 *            delay).
 *   page 1.. data: capacity bytes, an array of 64-bit words. Record at position
 *            p starts at word (p / 8) & (capacity / 8 - 1).
 *
 * A record is two header words then the payload words:
 *   word 0: len (bits 0-31) | type (32-47) | flags (48-63)
 *   word 1: publish time (CLOCK_MONOTONIC ns)
 *
 * Every word of the data area is read and written with relaxed atomic
 * operations: the bytes are racy by design (a lapped reader may read words
 * the writer is overwriting, and throws the copy away), and atomics make that
 * race defined behaviour and keep TSan quiet, at no cost on x86.
 *
 * Layout of a slot page (one per reader, shared only with that reader):
 *   line 0  written by the reader on every read: read_pos
 *   line 1  written by the reader when it sleeps, rejoins or changes what it
 *           wants: sleep_word, evict_ack, timeout_ns, filter_word, wake_any
 *   line 2  written by the reader when its watches change: filter (the tags
 *           of the batches it wants to be woken for)
 *   line 3  written by the writer: evict_seq (the futex word an eviction
 *           wakes), evict_reason, evictions, wake_seq (the futex word a
 *           commit wakes)
 *   line 4  written by the writer for each batch the reader is not woken
 *           for (a seqlock): skip_from, skip_to, skip_note
 *   line 5  constants: magic, ring generation
 * Lines are separate so that the reader's frequent read_pos stores do not
 * disturb the line the writer polls on every commit (sleep_word).
 *
 * Targeted wake-ups. A batch may carry tags (TH_RING_TAG_WORDS words of bits
 * the publisher chose, e.g. hashes of the paths it changes) and a note (e.g.
 * its revision). A reader whose filter is on is woken only for batches whose
 * tags meet its filter (false positives are the publisher's hashing, never
 * false negatives), or for every batch while its wake_any count is above
 * zero. For the batches a reader was not woken for, the writer keeps on its
 * own side the range [skip_from, skip_to) of consecutive such batches, and
 * mirrors it into the slot: the reader jumps over the range without reading
 * it (and learns the note of its last batch), and the writer computes the
 * reader's lag from the range's end, so a reader is neither judged slow nor
 * lapped for records it never needed. A new range starts only once the
 * reader has passed the old one (its read_pos, untrusted: a lie costs only
 * the liar its own hint).
 *
 * Moderation. Each wake-up costs a system call here and a context switch in
 * the reader, so waking n readers on every commit costs n x the commit rate:
 * past what the cores can do, every reader falls behind together. Like a
 * network card's interrupt moderation, while the host is behind (three
 * quarters of the readers a batch is for are still awake when it comes, not
 * done with the ones before, or waking them all takes the writer nearly all
 * the time between batches), the writer publishes in the header a delay,
 * wake_delay_ns = WAKE_BUDGET x (its measured cost of one wake-up) x (the
 * readers a batch is for), capped by th_ring_set_wake_delay_max() (0
 * otherwise, and below 50 us): readers that each wake at most once per delay
 * cost it at most 1/WAKE_BUDGET of its time. A reader that was woken again
 * within that delay of its previous wake-up (a busy stream) does not set its
 * sleeping flag after the next round: it naps until its previous wake-up
 * plus the delay, not woken by commits (it can be by its eviction), and
 * reads what came meanwhile in one round. A stream slower than the delay
 * wakes a reader at once, as without moderation, and a reader may ask for a
 * smaller bound or none (th_ring_reader_set_max_delay). The delay is only
 * when: the reader reads the same records. Its inputs are the writer's clock
 * and its reader set, and each reader's sleeping flag: a reader can move it
 * by at most its own share of the counts, within the cap.
 *
 * What a reader can never do (doc/DESIGN.md). The slot page and the
 * wake-up descriptor are in the reader's hands; nothing it writes there may
 * block, slow or mislead the writer or the control side:
 * - The writer's truth about evictions (sequence, evicted or not, count) is
 *   in struct slot, on the writer's side; line 2 only mirrors it. A reader
 *   that copies evict_seq into evict_ack has rejoined, and its position is
 *   taken as no older than the head at the moment the writer saw that
 *   (slot->floor): an acknowledgment without moving is not a new eviction.
 * - Lag is computed only from what the writer wrote itself: read_pos is
 *   accepted only when it is the head or the start of a record still intact,
 *   which the writer knows from its own bitmap of record starts (starts[]);
 *   the age is the publish time in that record's header. A position inside a
 *   record, beyond the head or misaligned is reported as invalid, never read
 *   as a header.
 * - Wake-ups for fd mode go through a pipe, not an eventfd: an eventfd is
 *   one open file description, so a dup given to the reader shares
 *   O_NONBLOCK with the writer's, and a reader that cleared it and filled
 *   the counter made the writer's write() block. A pipe's two ends are two
 *   open file descriptions: the reader gets (a dup of) the read end only,
 *   and the write end, O_NONBLOCK, is the writer's alone, so nothing the
 *   reader does to its descriptor changes how the writer's write() behaves.
 *   The writer also keeps a read end open, so a write never meets a pipe
 *   without readers (no EPIPE, no SIGPIPE in a process that did not ignore
 *   it). A reader that never drains fills its pipe (one page,
 *   F_SETPIPE_SZ) and the writer's writes fail with EAGAIN: it is readable
 *   already. Why not a Unix datagram socket pair with MSG_DONTWAIT, which is
 *   per-call non-blocking: a send and receive cost three times a pipe's on
 *   this kind of machine (6 us against 2 us), paid by the publisher per fd
 *   sleeper per commit; the pipe gives the same guarantee at the eventfd's
 *   cost, for one more descriptor per reader in the writer.
 * - A wake-up reaches only the reader concerned: a futex reader sleeps with
 *   futex_waitv() on two words of its own slot, wake_seq (a commit it wants)
 *   and evict_seq (its eviction), and the writer wakes those words only,
 *   never a word every reader sleeps on. Wake-ups are made with no lock held.
 * - A filter is the reader's own: a reader that changes it on every commit
 *   costs the writer one 64-byte copy per commit, and a forged one (or a
 *   forged skip hint in its slot) misleads only its owner.
 */
#include "shm/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/th_atomic.h"
#include "common/th_error.h"
#include "common/th_time.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the ring's futex watches the low half of the 64-bit head: little-endian only"
#endif

#define RING_MAGIC 0x31474e4952485423ull /* "#THRING1" */
#define SLOT_MAGIC 0x31544f4c53485423ull /* "#THSLOT1" */
#define RING_VERSION 2u /* 2: targeted wake-ups (filter, wake_seq, skip hints in the slot) */
#define RECORD_HEADER 16u
#define PAGE 4096u
#define DEFAULT_MAX_READERS 1024u
/* Moderation: the delay is this many times the cost of waking every reader
 * a batch is for, so that waking takes at most 1/WAKE_BUDGET of the writer's
 * time; below WAKE_DELAY_MIN_NS it is not worth a timer (0 is published). */
#define WAKE_BUDGET 8u
#define WAKE_DELAY_MIN_NS 50000ull
#define DEFAULT_WAKE_DELAY_MAX_NS 40000000ull

/* The format word: incompatible builds refuse each other's segments. */
#define RING_FORMAT                                                                        \
	((uint64_t)RING_VERSION << 48 | (uint64_t)RECORD_HEADER << 32 |                         \
	 (uint64_t)sizeof(struct ring_header) << 16 | (uint64_t)sizeof(struct slot_page) << 4 | \
	 (uint64_t)(sizeof(void *) == 8))

struct ring_header {
	/* Constant after creation. */
	uint64_t magic;
	uint64_t format;
	uint64_t generation;
	uint64_t capacity;
	uint64_t data_offset;
	uint64_t initial_pos;
	uint32_t max_record;
	uint32_t reserved0;
	uint64_t reserved1;
	/* Written by the writer on publish; read by every reader on every read. */
	_Alignas(TH_CACHELINE) th_atomic_u64 head;
	th_atomic_u64 reclaim;
	/* Written by the writer rarely: closed set once, when it goes away;
	 * wake_delay_ns when its wake-up moderation changes (see Moderation). */
	_Alignas(TH_CACHELINE) th_atomic_u32 closed;
	uint32_t reserved2;
	th_atomic_u64 wake_delay_ns;
};

#define SLEEPING 1u
#define SLEEP_FD 2u
#define SLEEP_GEN 4u /* the generation counts in the bits above the flags */
#define FILTER_ON 1u /* filter_word: the filter applies (the changes count above it) */

struct slot_page {
	/* Reader-written, every read. */
	_Alignas(TH_CACHELINE) th_atomic_u64 read_pos;
	/* Reader-written, rarely. */
	_Alignas(TH_CACHELINE) th_atomic_u32 sleep_word; /* gen | SLEEP_FD? | SLEEPING? */
	th_atomic_u32 evict_ack;                         /* the evict_seq the reader rejoined after */
	th_atomic_u64 timeout_ns;
	th_atomic_u32 filter_word;                       /* changes << 1 | FILTER_ON? */
	th_atomic_u32 wake_any;                          /* > 0: wake me for every batch */
	/* Reader-written when its watches change. */
	_Alignas(TH_CACHELINE) th_atomic_u64 filter[TH_RING_TAG_WORDS];
	/* Writer-written, rarely. */
	_Alignas(TH_CACHELINE) th_atomic_u32 evict_seq;
	th_atomic_u32 evict_reason;
	th_atomic_u32 evictions;
	th_atomic_u32 wake_seq;                          /* bumped (and futex-woken) to wake this reader */
	/* Writer-written, for each batch this reader is not woken for. */
	_Alignas(TH_CACHELINE) th_atomic_u32 skip_seq;   /* odd while the writer updates the three below */
	th_atomic_u64 skip_from;
	th_atomic_u64 skip_to;
	th_atomic_u64 skip_note;
	/* Constant. */
	_Alignas(TH_CACHELINE) uint64_t magic;
	uint64_t generation;
};

_Static_assert(sizeof(struct ring_header) <= PAGE, "ring header fits its page");
_Static_assert(sizeof(struct slot_page) <= PAGE, "slot fits a page");

/* ---- small helpers ------------------------------------------------------ */

static inline uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

static inline uint64_t rec_word0(uint32_t len, uint16_t type, uint16_t flags)
{
	return (uint64_t)len | (uint64_t)type << 32 | (uint64_t)flags << 48;
}

/* A non-private futex (it works across processes) on one 32-bit word of a
 * slot page. */
static long futex32(th_atomic_u32 *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, (uint32_t *)(void *)word, op, val, ts, NULL, 0);
}

/* Wake a reader in fd mode: one byte into its pipe, on the writer's own
 * O_NONBLOCK write end (see the opening comment). Never blocks, never
 * signals (the writer holds a read end too). */
static void wake_send(int fd)
{
	static const char one = 1;
	if (write(fd, &one, 1) < 0) {
		/* EAGAIN: the pipe is full of unread wake-ups (it is readable already). */
	}
}

/* Copy n bytes out of the ring's words, starting at byte offset off (8-aligned). */
static void words_to_bytes(th_atomic_u64 *data, uint64_t mask_words, uint64_t word, uint8_t *dst,
			   size_t n)
{
	while (n >= 8) {
		uint64_t v = th_load_relaxed(&data[word & mask_words]);
		memcpy(dst, &v, 8);
		dst += 8;
		n -= 8;
		word++;
	}
	if (n) {
		uint64_t v = th_load_relaxed(&data[word & mask_words]);
		memcpy(dst, &v, n);
	}
}

/* ---- writer ------------------------------------------------------------- */

struct slot {
	uint32_t id;
	struct slot_page *page; /* mapped read-write in the writer */
	int event_fd;           /* the write end of the reader's wake-up pipe (O_NONBLOCK, ours alone) */
	int event_rd;           /* a read end, kept so that a write never meets a pipe without readers */
	uint32_t woken_word;    /* sleep_word we last woke; publisher-only */
	/* The writer's own truth (ctl_lock); the slot page only mirrors it. */
	uint32_t evict_seq;     /* evictions so far, as a sequence */
	uint32_t evictions;
	bool evicted;           /* evicted and the rejoin not yet seen */
	uint64_t floor;         /* the reader is at least here: head when added or when its rejoin was seen */
	uint64_t invalid_since; /* CLOCK_MONOTONIC ns since its position is invalid; 0 while valid */
	uint32_t refs;          /* evictions waking it with ctl_lock released */
	bool removed;           /* removed while refs > 0: the last waker frees it */
	/* Publisher-only: the reader's filter as last copied, and its wake_seq. */
	uint32_t filter_seen;   /* the filter_word the copy is of */
	uint32_t wake_seq;
	uint64_t filter[TH_RING_TAG_WORDS];
	/* The batches it was not woken for, [skip_from, skip_to): written by
	 * the publisher, read by th_ring_reader_lag() (a seqlock: skip_seq odd
	 * while the publisher writes). */
	th_atomic_u32 skip_seq;
	th_atomic_u64 skip_from, skip_to;
};

/* The set of readers the publisher scans on commit. Immutable once published;
 * replaced as a whole on add/remove and freed after a grace period. */
struct reader_set {
	uint32_t n;
	struct slot *slots[];
};

struct th_ring_writer {
	struct ring_header *hdr;
	th_atomic_u64 *data;
	uint64_t capacity;
	uint64_t mask_words;
	size_t map_len;
	int ring_fd;    /* read-write memfd, sealed */
	int ring_ro_fd; /* read-only descriptor handed to readers */
	uint32_t max_record;
	/* One bit per 8-byte word of data: set where a record starts, cleared
	 * when it is reclaimed (or aborted). Written by the publisher only
	 * (relaxed load + store, no read-modify-write needed), read by
	 * th_ring_reader_lag() with copy-then-check against reclaim. */
	th_atomic_u64 *starts;

	/* Publisher-private. */
	uint64_t pos;          /* end of the batch being built */
	uint64_t batch_start;  /* == head when the batch is empty */
	uint64_t batch_ns;
	bool batch_time_set;   /* th_ring_set_batch_time() gave this batch's time */
	uint64_t last_rec;     /* position of the last record appended to this batch */
	uint32_t batch_count;
	uint64_t oldest;       /* == hdr->reclaim, kept privately */
	/* Moderation: moving averages (x 16) of one wake-up's cost, of the
	 * readers a batch is for, of those still awake and of the time between
	 * batches; the last batch's time; whether the delay is on. */
	uint64_t wake_cost_x16, wanted_x16, awake_x16, gap_x16;
	uint64_t last_batch_ns;
	bool moderating;
	th_atomic_u64 wake_delay_max_ns; /* any thread */

	/* Grace period for reader-set changes: odd while the publisher scans. */
	_Alignas(TH_CACHELINE) th_atomic_u64 scan_seq;
	_Atomic(struct reader_set *) readers;

	/* Control side: add/remove/lag/evict. Never taken by the publisher. */
	_Alignas(TH_CACHELINE) pthread_mutex_t ctl_lock;
	uint32_t max_readers;
	uint32_t next_id;
};

int th_ring_writer_create(const struct th_ring_config *cfg, struct th_ring_writer **out)
{
	uint64_t cap = cfg->capacity;
	if (cap < PAGE || (cap & (cap - 1)) || cap > (1ull << 40))
		return -EINVAL;
	uint64_t max_record = cfg->max_record ? cfg->max_record : cap / 4;
	if (max_record > cap / 4 || max_record > UINT32_MAX - RECORD_HEADER)
		return -EINVAL;
	if (cfg->initial_pos % 8 || cfg->initial_pos > UINT64_MAX / 2)
		return -EINVAL;

	struct th_ring_writer *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->ring_fd = w->ring_ro_fd = -1;
	int rc;
	const char *name = cfg->name ? cfg->name : "topohub-ring";
	w->ring_fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (w->ring_fd < 0) {
		rc = -errno;
		goto fail;
	}
	w->map_len = PAGE + cap;
	if (ftruncate(w->ring_fd, (off_t)w->map_len) < 0) {
		rc = -errno;
		goto fail;
	}
	void *map = mmap(NULL, w->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, w->ring_fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		map = NULL;
		goto fail;
	}
	/* After this no one can grow, shrink or map the ring writable again,
	 * whatever descriptor they hold; our own mapping stays writable. */
	if (fcntl(w->ring_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0) {
		rc = -errno;
		munmap(map, w->map_len);
		goto fail;
	}
	/* A read-only open file description for readers: even the write() call
	 * is refused on it. Falls back to the sealed fd where /proc is absent. */
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", w->ring_fd);
	w->ring_ro_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (w->ring_ro_fd < 0)
		w->ring_ro_fd = fcntl(w->ring_fd, F_DUPFD_CLOEXEC, 0);

	w->hdr = map;
	w->data = (th_atomic_u64 *)(void *)((char *)map + PAGE);
	w->capacity = cap;
	w->mask_words = cap / 8 - 1;
	w->max_record = (uint32_t)max_record;
	w->max_readers = cfg->max_readers ? cfg->max_readers : DEFAULT_MAX_READERS;
	w->starts = calloc(cap / 8 / 64 ? cap / 8 / 64 : 1, sizeof *w->starts);
	if (!w->starts) {
		rc = -ENOMEM;
		munmap(map, w->map_len);
		goto fail;
	}
	w->pos = w->batch_start = w->oldest = cfg->initial_pos;
	w->next_id = 1;
	th_store_relaxed(&w->wake_delay_max_ns, DEFAULT_WAKE_DELAY_MAX_NS);
	pthread_mutex_init(&w->ctl_lock, NULL);
	struct reader_set *empty = calloc(1, sizeof *empty);
	if (!empty) {
		rc = -ENOMEM;
		munmap(map, w->map_len);
		goto fail;
	}
	atomic_init(&w->readers, empty);

	struct ring_header *h = w->hdr;
	h->magic = RING_MAGIC;
	h->format = RING_FORMAT;
	h->generation = cfg->generation ? cfg->generation : (th_realtime_ns() ^ ((uint64_t)getpid() << 40)) | 1;
	h->capacity = cap;
	h->data_offset = PAGE;
	h->initial_pos = cfg->initial_pos;
	h->max_record = w->max_record;
	th_store_relaxed(&h->reclaim, cfg->initial_pos);
	/* Pairs with the reader's load-acquire of head in th_ring_reader_open():
	 * the constants above are visible to anyone who sees the head. */
	th_store_release(&h->head, cfg->initial_pos);
	*out = w;
	return 0;
fail:
	if (w->ring_fd >= 0)
		close(w->ring_fd);
	if (w->ring_ro_fd >= 0)
		close(w->ring_ro_fd);
	free(w->starts);
	free(w);
	return rc;
}

/* The record-start bitmap (publisher only writes it). */
static inline void start_mark(struct th_ring_writer *w, uint64_t pos, bool on)
{
	uint64_t i = (pos / 8) & w->mask_words;
	th_atomic_u64 *word = &w->starts[i / 64];
	uint64_t bit = 1ull << (i % 64), v = th_load_relaxed(word);
	th_store_relaxed(word, on ? v | bit : v & ~bit);
}

static inline bool start_marked(const struct th_ring_writer *w, uint64_t pos)
{
	uint64_t i = (pos / 8) & w->mask_words;
	return (th_load_relaxed(&w->starts[i / 64]) >> (i % 64)) & 1;
}

/* Wake one reader that sleeps in futex mode: its own slot word. */
static void wake_futex(struct slot *s)
{
	/* Pairs with the reader's load of wake_seq before it set its sleeping
	 * flag (reader_prepare_sleep): its futex_waitv sees the new value. */
	th_store_release(&s->page->wake_seq, ++s->wake_seq);
	futex32(&s->page->wake_seq, FUTEX_WAKE, INT_MAX, NULL);
}

static void wake_all(struct reader_set *set)
{
	for (uint32_t i = 0; i < set->n; i++) {
		wake_futex(set->slots[i]);
		wake_send(set->slots[i]->event_fd);
	}
}

static void slot_free(struct slot *s)
{
	munmap(s->page, PAGE);
	close(s->event_fd);
	close(s->event_rd);
	free(s);
}

void th_ring_writer_destroy(struct th_ring_writer *w)
{
	if (!w)
		return;
	struct reader_set *set = th_load_relaxed(&w->readers);
	/* Pairs with the reader's load-acquire of closed after it found nothing
	 * at head: everything published before is visible to it. */
	th_store_release(&w->hdr->closed, 1);
	th_fence_seq_cst(); /* the closed flag before the sleep-word scan, as in commit */
	wake_all(set);
	for (uint32_t i = 0; i < set->n; i++)
		slot_free(set->slots[i]);
	free(set);
	munmap(w->hdr, w->map_len);
	close(w->ring_fd);
	close(w->ring_ro_fd);
	pthread_mutex_destroy(&w->ctl_lock);
	free(w->starts);
	free(w);
}

/* Make room for size bytes at w->pos: advance the reclaim position past every
 * record that the new bytes will overwrite, and publish it before writing. */
static void reclaim_for(struct th_ring_writer *w, uint64_t size)
{
	uint64_t end = w->pos + size;
	if (end - w->oldest <= w->capacity)
		return;
	uint64_t need = end - w->capacity;
	uint64_t p = w->oldest;
	while (p < need) {
		/* Our own words: no one else writes them. */
		uint64_t w0 = th_load_relaxed(&w->data[(p / 8) & w->mask_words]);
		start_mark(w, p, false);
		p += align8(RECORD_HEADER + (uint32_t)w0);
	}
	w->oldest = p;
	th_store_relaxed(&w->hdr->reclaim, p);
	/* Orders the reclaim store before the data stores that follow: a reader
	 * that reads any of the new words (then fences acquire in th_ring_read)
	 * sees this reclaim value or a later one and discards its copy. */
	th_fence_release();
}

static int append_begin(struct th_ring_writer *w, uint64_t len, uint64_t *size)
{
	if (len > w->max_record)
		return -TH_ETOOBIG;
	*size = align8(RECORD_HEADER + len);
	if (w->pos + *size - w->batch_start > w->capacity / 2)
		return -TH_ETOOBIG;
	if (w->batch_count == 0 && !w->batch_time_set)
		w->batch_ns = th_now_ns();
	reclaim_for(w, *size);
	return 0;
}

/* Store n payload bytes at word index `word`, zero-padding the last word. */
static uint64_t bytes_to_words(struct th_ring_writer *w, uint64_t word, const uint8_t *src, size_t n,
			       uint64_t *carry, size_t *carry_len)
{
	/* carry holds up to 7 bytes left over from the previous iov piece. */
	while (n) {
		size_t take = 8 - *carry_len;
		if (take > n)
			take = n;
		if (*carry_len == 0 && n >= 8) {
			/* Fast path: whole words straight from the source. */
			while (n >= 8) {
				uint64_t v;
				memcpy(&v, src, 8);
				th_store_relaxed(&w->data[word & w->mask_words], v);
				word++;
				src += 8;
				n -= 8;
			}
			continue;
		}
		memcpy((uint8_t *)carry + *carry_len, src, take);
		*carry_len += take;
		src += take;
		n -= take;
		if (*carry_len == 8) {
			th_store_relaxed(&w->data[word & w->mask_words], *carry);
			word++;
			*carry = 0;
			*carry_len = 0;
		}
	}
	return word;
}

int th_ring_appendv(struct th_ring_writer *w, uint16_t type, const struct iovec *iov, int iovcnt)
{
	uint64_t len = 0;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	uint64_t size;
	int rc = append_begin(w, len, &size);
	if (rc)
		return rc;
	uint64_t word = w->pos / 8;
	th_store_relaxed(&w->data[word & w->mask_words], rec_word0((uint32_t)len, type, 0));
	th_store_relaxed(&w->data[(word + 1) & w->mask_words], w->batch_ns);
	start_mark(w, w->pos, true);
	word += 2;
	uint64_t carry = 0;
	size_t carry_len = 0;
	for (int i = 0; i < iovcnt; i++)
		word = bytes_to_words(w, word, iov[i].iov_base, iov[i].iov_len, &carry, &carry_len);
	if (carry_len)
		th_store_relaxed(&w->data[word & w->mask_words], carry);
	w->last_rec = w->pos;
	w->pos += size;
	w->batch_count++;
	return 0;
}

int th_ring_append(struct th_ring_writer *w, uint16_t type, const void *data, uint32_t len)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	return th_ring_appendv(w, type, &iov, 1);
}

void th_ring_abort(struct th_ring_writer *w)
{
	/* The aborted records' starts are no boundaries of what comes next. */
	for (uint64_t p = w->batch_start; p < w->pos;) {
		uint64_t w0 = th_load_relaxed(&w->data[(p / 8) & w->mask_words]);
		start_mark(w, p, false);
		p += align8(RECORD_HEADER + (uint32_t)w0);
	}
	w->pos = w->batch_start;
	w->batch_count = 0;
	w->batch_time_set = false;
}

void th_ring_set_batch_time(struct th_ring_writer *w, uint64_t monotonic_ns)
{
	if (w->batch_count == 0) {
		w->batch_ns = monotonic_ns;
		w->batch_time_set = true;
	}
}

/* Does reader s want a batch with these tags? Refreshes the publisher's copy
 * of its filter when the reader changed it. */
static bool slot_wants(struct slot *s, const uint64_t *tags)
{
	struct slot_page *pg = s->page;
	/* Pairs with the store-release of filter_word in
	 * th_ring_reader_set_filter(): the words are the ones it announced. */
	uint32_t fw = th_load_acquire(&pg->filter_word);
	if (fw != s->filter_seen) {
		for (unsigned i = 0; i < TH_RING_TAG_WORDS; i++)
			s->filter[i] = th_load_relaxed(&pg->filter[i]);
		s->filter_seen = fw;
	}
	if (!(fw & FILTER_ON) || th_load_relaxed(&pg->wake_any))
		return true;
	uint64_t meet = 0;
	for (unsigned i = 0; i < TH_RING_TAG_WORDS; i++)
		meet |= s->filter[i] & tags[i];
	return meet != 0;
}

static void seq_begin(th_atomic_u32 *seq, uint32_t *v)
{
	*v = th_load_relaxed(seq) | 1;
	th_store_relaxed(seq, *v);
	th_fence_release(); /* the odd sequence before the data: pairs with the reader's acquire fence */
}

static void seq_end(th_atomic_u32 *seq, uint32_t v)
{
	th_store_release(seq, v + 1); /* pairs with the load-acquire in seq_read_begin() */
}

/* A seqlock read: v = seq_read_begin(), the loads, then seq_read_retry(v)
 * says whether they may be torn (a write ran meanwhile) and must be redone. */
static uint32_t seq_read_begin(th_atomic_u32 *seq)
{
	return th_load_acquire(seq); /* pairs with seq_end() */
}

static bool seq_read_retry(th_atomic_u32 *seq, uint32_t v)
{
	th_fence_acquire(); /* the data loads before the re-check; pairs with the release fence in seq_begin() */
	return (v & 1) || th_load_relaxed(seq) != v;
}

/* Batch [start, end) is not for reader s: extend its range of batches it
 * was not woken for, or start a new one once it has passed the old one. */
static void slot_skip(struct slot *s, uint64_t start, uint64_t end, uint64_t note)
{
	struct slot_page *pg = s->page;
	uint64_t from = th_load_relaxed(&s->skip_from), to = th_load_relaxed(&s->skip_to);
	if (to != start) {
		/* Untrusted: a reader that lies about its position loses only its
		 * own hint (it reads, or is lapped, as without filtering). */
		if (th_load_relaxed(&pg->read_pos) < to)
			return;
		from = start;
	}
	uint32_t v;
	seq_begin(&s->skip_seq, &v);
	th_store_relaxed(&s->skip_from, from);
	th_store_relaxed(&s->skip_to, end);
	seq_end(&s->skip_seq, v);
	seq_begin(&pg->skip_seq, &v);
	th_store_relaxed(&pg->skip_from, from);
	th_store_relaxed(&pg->skip_to, end);
	th_store_relaxed(&pg->skip_note, note);
	seq_end(&pg->skip_seq, v);
}

static void moderate(struct th_ring_writer *w, uint32_t wanted, uint32_t awake, uint32_t woken, uint64_t wake_ns);

int th_ring_commit(struct th_ring_writer *w)
{
	return th_ring_commit_tagged(w, NULL, 0);
}

int th_ring_commit_tagged(struct th_ring_writer *w, const uint64_t *tags, uint64_t note)
{
	uint32_t count = w->batch_count;
	if (count == 0)
		return 0;
	uint64_t start = w->batch_start;
	th_atomic_u64 *w0p = &w->data[(w->last_rec / 8) & w->mask_words];
	uint64_t w0 = th_load_relaxed(w0p);
	th_store_relaxed(w0p, w0 | (uint64_t)TH_RING_F_BATCH_END << 48);

	/* Publishes the batch: pairs with the load-acquire of head in
	 * th_ring_read(); every record word above is visible to a reader that
	 * sees the new head. */
	th_store_release(&w->hdr->head, w->pos);
	w->batch_start = w->pos;
	w->batch_count = 0;
	w->batch_time_set = false;

	uint64_t seq = th_load_relaxed(&w->scan_seq);
	th_store_relaxed(&w->scan_seq, seq + 1);
	/* One full fence serves two Dekker handshakes:
	 * - with a reader going to sleep (sleep_word store; fence; head load in
	 *   reader_prepare_sleep()): we store head, fence, load its sleep_word, so
	 *   either it sees our head or we see it sleeping;
	 * - with remove_reader() (readers store; fence; scan_seq load): either it
	 *   sees our odd scan_seq and waits for us, or we load the new set. */
	th_fence_seq_cst();
	struct reader_set *set = th_load_acquire(&w->readers); /* pairs with the store-release in set_replace() */
	uint32_t wanted = 0, awake = 0, woken = 0;
	uint64_t t0 = 0, t1 = 0; /* the first wake-up's start, the last one's end */
	for (uint32_t i = 0; i < set->n; i++) {
		struct slot *s = set->slots[i];
		if (tags && !slot_wants(s, tags)) {
			slot_skip(s, start, w->pos, note);
			continue;
		}
		wanted++;
		uint32_t sw = th_load_relaxed(&s->page->sleep_word);
		awake += !(sw & SLEEPING);
		if (!(sw & SLEEPING) || sw == s->woken_word)
			continue;
		if (woken++ == 0)
			t0 = th_now_ns();
		s->woken_word = sw;
		if (sw & SLEEP_FD)
			wake_send(s->event_fd);
		else
			wake_futex(s);
		t1 = th_now_ns();
	}
	/* Pairs with the load-acquire in wait_for_publisher(): our reads of the
	 * old set and its slots happen before the remover frees them. */
	th_store_release(&w->scan_seq, seq + 2);
	moderate(w, wanted, awake, woken, t1 - t0);
	return (int)count;
}

/* Moderation (see the top of this file): follow the cost of a wake-up, the
 * readers a batch is for, how many of them were still awake (not done with
 * the batches before) and the time between batches. The host is behind when
 * three quarters of the readers are still awake, or when waking them all
 * takes the writer nearly all the time between batches (the writer is the
 * one that wakes, so a saturated writer's batches come one wake loop apart);
 * it has caught up when a quarter are awake and waking takes under half that
 * time. Publish the delay when it moved by more than an eighth. One clock
 * read per wake-up (and one more per commit that woke someone), none
 * otherwise: the batch's time is the writer's. */
static void moderate(struct th_ring_writer *w, uint32_t wanted, uint32_t awake, uint32_t woken, uint64_t wake_ns)
{
	if (w->last_batch_ns && w->batch_ns > w->last_batch_ns)
		w->gap_x16 += (w->batch_ns - w->last_batch_ns) * 16 / 8 - w->gap_x16 / 8;
	w->last_batch_ns = w->batch_ns;
	w->wanted_x16 += (uint64_t)wanted * 16 / 8 - w->wanted_x16 / 8;
	w->awake_x16 += (uint64_t)awake * 16 / 8 - w->awake_x16 / 8;
	if (woken) {
		uint64_t cost = wake_ns / woken;
		if (cost > 1000000)
			cost = 1000000; /* the writer was preempted mid-loop: not a wake-up's cost */
		w->wake_cost_x16 += cost * 16 / 8 - w->wake_cost_x16 / 8;
	}
	uint64_t all = (w->wake_cost_x16 / 16) * (w->wanted_x16 / 16), gap = w->gap_x16 / 16;
	if (!w->moderating && (w->awake_x16 * 4 > w->wanted_x16 * 3 || all * 10 > gap * 9))
		w->moderating = true;
	else if (w->moderating && w->awake_x16 * 4 < w->wanted_x16 && all * 2 < gap)
		w->moderating = false;
	uint64_t d = w->moderating ? WAKE_BUDGET * all : 0;
	uint64_t max = th_load_relaxed(&w->wake_delay_max_ns);
	if (d > max)
		d = max;
	if (d < WAKE_DELAY_MIN_NS)
		d = 0;
	uint64_t old = th_load_relaxed(&w->hdr->wake_delay_ns); /* ours: only the writer stores it */
	if (d == old || (d && old && d - old + old / 8 <= old / 4))
		return;
	th_store_relaxed(&w->hdr->wake_delay_ns, d); /* advisory: no ordering needed */
}

void th_ring_set_wake_delay_max(struct th_ring_writer *w, uint64_t max_ns)
{
	th_store_relaxed(&w->wake_delay_max_ns, max_ns);
}

uint64_t th_ring_wake_delay(const struct th_ring_writer *w)
{
	return th_load_relaxed(&w->hdr->wake_delay_ns);
}

uint64_t th_ring_head(const struct th_ring_writer *w)
{
	return th_load_acquire(&w->hdr->head); /* pairs with the store-release in commit */
}

uint64_t th_ring_oldest(const struct th_ring_writer *w)
{
	return th_load_relaxed(&w->hdr->reclaim);
}

uint64_t th_ring_generation(const struct th_ring_writer *w)
{
	return w->hdr->generation;
}

uint64_t th_ring_capacity(const struct th_ring_writer *w)
{
	return w->capacity;
}

uint32_t th_ring_max_record(const struct th_ring_writer *w)
{
	return w->max_record;
}

/* ---- reader management (control side) ----------------------------------- */

/* Wait until the publisher is not scanning a set older than the one we just
 * published. Called with ctl_lock held, after set_replace(). */
static void wait_for_publisher(struct th_ring_writer *w)
{
	/* Pairs with the fence in commit (see there). */
	th_fence_seq_cst();
	uint64_t seq = th_load_acquire(&w->scan_seq);
	if (!(seq & 1))
		return;
	/* Pairs with the store-release that ends the scan. */
	while (th_load_acquire(&w->scan_seq) == seq)
		sched_yield();
}

static void set_replace(struct th_ring_writer *w, struct reader_set *set)
{
	/* Pairs with the load-acquire in commit: the slots in the set are
	 * initialised before the publisher can see them. */
	th_store_release(&w->readers, set);
}

/* The first index in the set whose reader's id is >= id: the set is kept in
 * id order, so that the control side (the monitor asks for every reader's
 * lag, STATS too) finds a reader in O(log n), not O(n) (O(n^2) a round). */
static uint32_t set_lower_bound(const struct reader_set *set, uint32_t id)
{
	uint32_t lo = 0, hi = set->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (set->slots[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct slot *find_slot(struct reader_set *set, uint32_t id, uint32_t *index)
{
	uint32_t i = set_lower_bound(set, id);
	if (i == set->n || set->slots[i]->id != id)
		return NULL;
	if (index)
		*index = i;
	return set->slots[i];
}

int th_ring_add_reader(struct th_ring_writer *w, uint32_t *id, struct th_ring_reader_fds *fds)
{
	int rc = 0;
	int slot_fd = -1, pp[2] = { -1, -1 }, keep_rd = -1;
	struct slot *s = NULL;
	struct th_ring_reader_fds out = { -1, -1, -1 };
	pthread_mutex_lock(&w->ctl_lock);
	struct reader_set *old = th_load_relaxed(&w->readers);
	if (old->n >= w->max_readers) {
		rc = -ENOSPC;
		goto out;
	}
	s = calloc(1, sizeof *s);
	struct reader_set *set = calloc(1, sizeof *set + (old->n + 1) * sizeof set->slots[0]);
	if (!s || !set) {
		free(set);
		rc = -ENOMEM;
		goto out;
	}
	slot_fd = memfd_create("topohub-slot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	/* pp[1]: ours, writes only; pp[0]: the reader's, readable when woken.
	 * Two open file descriptions: nothing done to the reader's changes ours. */
	if (slot_fd < 0 || pipe2(pp, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    (keep_rd = fcntl(pp[0], F_DUPFD_CLOEXEC, 0)) < 0 || ftruncate(slot_fd, PAGE) < 0 ||
	    fcntl(slot_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		free(set);
		goto out;
	}
	void *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, slot_fd, 0);
	if (page == MAP_FAILED) {
		rc = -errno;
		free(set);
		goto out;
	}
	s->page = page;
	/* One page of unread wake-ups at most (a failure keeps the default). */
	(void)fcntl(pp[1], F_SETPIPE_SZ, PAGE);
	s->event_fd = pp[1];
	s->event_rd = keep_rd;
	/* Ids grow; after 2^32 of them they wrap, and one still in use is skipped. */
	do {
		s->id = w->next_id++;
	} while (s->id == 0 || find_slot(old, s->id, NULL));
	s->page->magic = SLOT_MAGIC;
	s->page->generation = w->hdr->generation;
	s->floor = th_ring_head(w);
	th_store_relaxed(&s->page->read_pos, s->floor);
	th_store_relaxed(&s->skip_from, s->floor);
	th_store_relaxed(&s->skip_to, s->floor);
	th_store_relaxed(&s->page->skip_from, s->floor);
	th_store_relaxed(&s->page->skip_to, s->floor);

	out.ring_fd = fcntl(w->ring_ro_fd, F_DUPFD_CLOEXEC, 0);
	out.slot_fd = slot_fd;
	out.event_fd = pp[0];
	if (out.ring_fd < 0) {
		rc = -errno;
		munmap(page, PAGE);
		free(set);
		goto out;
	}
	uint32_t at = set_lower_bound(old, s->id); /* old->n but after a wrap */
	memcpy(set->slots, old->slots, at * sizeof old->slots[0]);
	set->slots[at] = s;
	memcpy(set->slots + at + 1, old->slots + at, (old->n - at) * sizeof old->slots[0]);
	set->n = old->n + 1;
	set_replace(w, set);
	wait_for_publisher(w);
	free(old);
	*id = s->id;
	*fds = out;
	pthread_mutex_unlock(&w->ctl_lock);
	return 0;
out:
	pthread_mutex_unlock(&w->ctl_lock);
	if (out.ring_fd >= 0)
		close(out.ring_fd);
	if (slot_fd >= 0)
		close(slot_fd);
	if (pp[0] >= 0)
		close(pp[0]);
	if (pp[1] >= 0)
		close(pp[1]);
	if (keep_rd >= 0)
		close(keep_rd);
	free(s);
	return rc;
}

int th_ring_remove_reader(struct th_ring_writer *w, uint32_t id)
{
	pthread_mutex_lock(&w->ctl_lock);
	struct reader_set *old = th_load_relaxed(&w->readers);
	uint32_t idx;
	struct slot *s = find_slot(old, id, &idx);
	if (!s) {
		pthread_mutex_unlock(&w->ctl_lock);
		return -ENOENT;
	}
	struct reader_set *set = calloc(1, sizeof *set + old->n * sizeof set->slots[0]);
	if (!set) {
		pthread_mutex_unlock(&w->ctl_lock);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < old->n; i++)
		if (i != idx)
			set->slots[set->n++] = old->slots[i];
	set_replace(w, set);
	wait_for_publisher(w);
	/* An eviction may be waking it right now, without the lock: then the
	 * waker frees it when done. */
	bool free_now = s->refs == 0;
	s->removed = true;
	pthread_mutex_unlock(&w->ctl_lock);
	free(old);
	if (free_now)
		slot_free(s);
	return 0;
}

int th_ring_reader_lag(struct th_ring_writer *w, uint32_t id, struct th_ring_lag *lag)
{
	pthread_mutex_lock(&w->ctl_lock);
	struct slot *s = find_slot(th_load_relaxed(&w->readers), id, NULL);
	if (!s) {
		pthread_mutex_unlock(&w->ctl_lock);
		return -ENOENT;
	}
	struct slot_page *pg = s->page;
	memset(lag, 0, sizeof *lag);
	/* The slot is the reader's to write: every value is untrusted. The
	 * position is loaded before the head: an honest reader's is then never
	 * beyond it. */
	uint64_t rp = th_load_relaxed(&pg->read_pos);
	uint64_t head = th_ring_head(w);
	if (s->evicted && th_load_relaxed(&pg->evict_ack) == s->evict_seq) {
		/* It acknowledged: rejoined. Whatever position it shows, it is
		 * no older than this head, so an acknowledgment without moving is
		 * not a second eviction of the same lag. */
		s->evicted = false;
		s->floor = head;
	}
	lag->timeout_ns = th_load_relaxed(&pg->timeout_ns);
	lag->evictions = s->evictions;
	lag->evicted = s->evicted;
	lag->sleeping = th_load_relaxed(&pg->sleep_word) & SLEEPING;
	if (rp < s->floor)
		rp = s->floor;
	/* Within the batches it was not woken for: it has nothing to read
	 * before their end (the writer's own record, not the slot's). */
	uint64_t from, to;
	for (uint32_t v;; sched_yield()) {
		v = seq_read_begin(&s->skip_seq);
		from = th_load_relaxed(&s->skip_from);
		to = th_load_relaxed(&s->skip_to);
		if (!seq_read_retry(&s->skip_seq, v))
			break;
	}
	if (from <= rp && rp < to && to <= head)
		rp = to;
	lag->read_pos = rp;
	if (rp % 8 || rp > head) {
		lag->invalid = true;
	} else if (rp < head) {
		lag->lag_bytes = head - rp;
		/* Copy-then-check, as a reader does: the publisher may be
		 * reclaiming this record right now. The time is read only where
		 * the writer itself marked a record start. */
		bool start = start_marked(w, rp);
		uint64_t t = th_load_relaxed(&w->data[(rp / 8 + 1) & w->mask_words]);
		th_fence_acquire(); /* pairs with the release fence in reclaim_for() */
		if (rp < th_load_relaxed(&w->hdr->reclaim) || head - rp > w->capacity) {
			lag->lapped = true;
			lag->age_ns = UINT64_MAX;
		} else if (!start) {
			lag->invalid = true;
			lag->lag_bytes = 0;
		} else {
			uint64_t now = th_now_ns();
			lag->age_ns = now > t ? now - t : 0;
		}
	}
	/* An invalid position ages from when the writer first saw it: evicted
	 * after the reader's timeout like a stalled reader, never at once, so
	 * that showing garbage costs no more evictions than stalling does. */
	if (lag->invalid) {
		uint64_t now = th_now_ns();
		if (!s->invalid_since)
			s->invalid_since = now;
		lag->age_ns = now - s->invalid_since;
	} else {
		s->invalid_since = 0;
	}
	pthread_mutex_unlock(&w->ctl_lock);
	return 0;
}

int th_ring_evict(struct th_ring_writer *w, uint32_t id, enum th_ring_evict_reason reason)
{
	pthread_mutex_lock(&w->ctl_lock);
	struct slot *s = find_slot(th_load_relaxed(&w->readers), id, NULL);
	if (!s) {
		pthread_mutex_unlock(&w->ctl_lock);
		return -ENOENT;
	}
	if (s->evicted) {
		/* One eviction until the reader rejoins: counted and woken once. */
		pthread_mutex_unlock(&w->ctl_lock);
		return -EALREADY;
	}
	struct slot_page *pg = s->page;
	s->evicted = true;
	s->evict_seq++;
	s->evictions++;
	th_store_relaxed(&pg->evict_reason, (uint32_t)reason);
	th_store_relaxed(&pg->evictions, s->evictions);
	/* Pairs with the load-acquire of evict_seq in th_ring_read(): the reason
	 * is visible with the eviction. */
	th_store_release(&pg->evict_seq, s->evict_seq);
	th_fence_seq_cst(); /* the eviction before the wake-ups, like head in commit */
	s->refs++;
	pthread_mutex_unlock(&w->ctl_lock);
	/* No lock held while waking; the slot stays (refs) until we are done.
	 * Only this reader: its own futex word and its own pipe. */
	futex32(&pg->evict_seq, FUTEX_WAKE, INT_MAX, NULL);
	wake_send(s->event_fd);
	pthread_mutex_lock(&w->ctl_lock);
	bool free_now = --s->refs == 0 && s->removed;
	pthread_mutex_unlock(&w->ctl_lock);
	if (free_now)
		slot_free(s);
	return 0;
}

/* ---- reader ------------------------------------------------------------- */

struct th_ring_reader {
	struct ring_header *hdr; /* mapped PROT_READ: never written */
	th_atomic_u64 *data; /* read-only mapping */
	uint64_t mask_words;
	uint64_t capacity;
	uint32_t max_record;
	size_t map_len;
	struct slot_page *slot;
	int event_fd;

	uint64_t pos;
	uint64_t head;       /* last head loaded */
	uint32_t evict_ack;  /* the evict_seq we rejoined after */
	uint32_t sleep_gen;
	uint32_t wake_seen;  /* wake_seq loaded before the sleeping flag was set */
	uint32_t filter_changes;
	bool at_batch;       /* pos is the start of a batch (or the head) */
	uint64_t skips, skip_note;
	int sticky;          /* -TH_ELAPPED / -TH_EEVICTED until rejoin */
	/* Moderation: our bound on the writer's delay, when we were last woken,
	 * the end of the nap last counted, whether the stream is busy (woken
	 * again within the delay), naps taken. */
	uint64_t max_delay_ns;
	uint64_t woke_ns;
	uint64_t nap_until;
	bool busy;
	uint64_t naps;
};

static int format_error(char *errbuf, size_t errlen, const char *fmt, uint64_t a, uint64_t b)
{
	if (errbuf && errlen)
		snprintf(errbuf, errlen, fmt, (unsigned long long)a, (unsigned long long)b);
	return -TH_EFORMAT;
}

int th_ring_reader_open(const struct th_ring_reader_fds *fds, struct th_ring_reader **out,
			char *errbuf, size_t errlen)
{
	struct stat st;
	if (fstat(fds->ring_fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < PAGE)
		return format_error(errbuf, errlen, "ring segment is %llu bytes, smaller than its header (%llu)",
				    (uint64_t)st.st_size, PAGE);
	const struct ring_header *h = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fds->ring_fd, 0);
	if (h == MAP_FAILED)
		return -errno;
	int rc = 0;
	if (h->magic != RING_MAGIC)
		rc = format_error(errbuf, errlen, "not a topohub ring (magic %#llx, expected %#llx)", h->magic,
				  RING_MAGIC);
	else if (h->format != RING_FORMAT)
		rc = format_error(errbuf, errlen,
				  "ring format %#llx is not this build's %#llx (version, header or slot layout differ)",
				  h->format, RING_FORMAT);
	else if (h->data_offset != PAGE || h->capacity < PAGE || (h->capacity & (h->capacity - 1)) ||
		 h->max_record > h->capacity / 4 || (uint64_t)st.st_size < PAGE + h->capacity)
		rc = format_error(errbuf, errlen, "ring geometry is inconsistent (capacity %llu, file %llu bytes)",
				  h->capacity, (uint64_t)st.st_size);
	uint64_t cap = h->capacity, gen = h->generation;
	uint32_t max_record = h->max_record;
	munmap((void *)h, PAGE);
	if (rc)
		return rc;

	if (fstat(fds->slot_fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < PAGE)
		return format_error(errbuf, errlen, "slot page is %llu bytes, expected %llu", (uint64_t)st.st_size, PAGE);

	struct th_ring_reader *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->event_fd = -1;
	r->map_len = PAGE + cap;
	void *map = mmap(NULL, r->map_len, PROT_READ, MAP_SHARED, fds->ring_fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		free(r);
		return rc;
	}
	void *slot = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fds->slot_fd, 0);
	if (slot == MAP_FAILED) {
		rc = -errno;
		munmap(map, r->map_len);
		free(r);
		return rc;
	}
	r->hdr = map;
	r->data = (th_atomic_u64 *)(void *)((char *)map + PAGE);
	r->capacity = cap;
	r->mask_words = cap / 8 - 1;
	r->max_record = max_record;
	r->slot = slot;
	if (r->slot->magic != SLOT_MAGIC || r->slot->generation != gen) {
		rc = format_error(errbuf, errlen, "slot page does not belong to this ring (generation %llu, ring %llu)",
				  r->slot->generation, gen);
		th_ring_reader_close(r);
		return rc;
	}
	if (fds->event_fd >= 0) {
		r->event_fd = fcntl(fds->event_fd, F_DUPFD_CLOEXEC, 0);
		if (r->event_fd < 0) {
			rc = -errno;
			th_ring_reader_close(r);
			return rc;
		}
	}
	r->pos = th_load_relaxed(&r->slot->read_pos);
	r->head = th_load_acquire(&r->hdr->head); /* pairs with the store-release in create/commit */
	r->evict_ack = th_load_relaxed(&r->slot->evict_ack);
	r->sleep_gen = th_load_relaxed(&r->slot->sleep_word) / SLEEP_GEN;
	r->filter_changes = th_load_relaxed(&r->slot->filter_word) >> 1;
	if (r->pos > r->head || r->pos % 8)
		r->pos = r->head;
	r->at_batch = true; /* a slot is handed over at the head, or where a batch ended */
	r->max_delay_ns = UINT64_MAX;
	*out = r;
	return 0;
}

void th_ring_reader_close(struct th_ring_reader *r)
{
	if (!r)
		return;
	munmap((void *)r->hdr, r->map_len);
	munmap(r->slot, PAGE);
	if (r->event_fd >= 0)
		close(r->event_fd);
	free(r);
}

static inline bool reader_evicted(struct th_ring_reader *r)
{
	/* Pairs with the store-release of evict_seq in th_ring_evict(). */
	return th_load_acquire(&r->slot->evict_seq) != r->evict_ack;
}

/* At a batch start: jump over the batches the writer did not wake us for,
 * when its hint says r->pos is among them. The hint is in our own slot (a
 * forged one misleads only us); its end must be a position the ring has
 * published. Returns whether we moved. */
static bool reader_skip(struct th_ring_reader *r)
{
	struct slot_page *pg = r->slot;
	uint64_t from, to, note;
	for (uint32_t v, tries = 0;; th_cpu_relax()) {
		v = seq_read_begin(&pg->skip_seq);
		from = th_load_relaxed(&pg->skip_from);
		to = th_load_relaxed(&pg->skip_to);
		note = th_load_relaxed(&pg->skip_note);
		if (!seq_read_retry(&pg->skip_seq, v))
			break;
		if (++tries == 1000)
			return false; /* held odd for long: not the writer (it holds it for three stores) */
	}
	if (!(from <= r->pos && r->pos < to) || to % 8)
		return false;
	if (to > r->head)
		r->head = th_load_acquire(&r->hdr->head); /* pairs with the store-release in commit */
	if (to > r->head)
		return false;
	r->pos = to;
	r->skips++;
	r->skip_note = note;
	th_store_relaxed(&r->slot->read_pos, to);
	return true;
}

int th_ring_read(struct th_ring_reader *r, struct th_ring_record *rec, void *buf, size_t buflen)
{
	if (r->sticky)
		return r->sticky;
	if (reader_evicted(r))
		return r->sticky = -TH_EEVICTED;
	uint64_t p = r->pos;
	if (p == r->head) {
		/* Pairs with the store-release of head in th_ring_commit(): the
		 * records before the new head are fully written. */
		r->head = th_load_acquire(&r->hdr->head);
		if (p == r->head) {
			/* Pairs with the store-release of closed in destroy. */
			if (th_load_acquire(&r->hdr->closed) && p == th_load_acquire(&r->hdr->head))
				return -TH_ECLOSED;
			return 0;
		}
	}
	if (r->at_batch && reader_skip(r)) {
		p = r->pos;
		if (p == r->head)
			return 0;
	}
	uint64_t word = p / 8;
	uint64_t w0 = th_load_relaxed(&r->data[word & r->mask_words]);
	uint64_t t = th_load_relaxed(&r->data[(word + 1) & r->mask_words]);
	uint32_t len = (uint32_t)w0;
	uint64_t size = align8(RECORD_HEADER + (uint64_t)len);
	bool sane = len <= r->max_record && size <= r->head - p;
	bool fits = sane && len <= buflen;
	if (fits)
		words_to_bytes(r->data, r->mask_words, word + 2, buf, len);
	/* Orders the loads of the record above before the reclaim load below;
	 * pairs with the release fence in reclaim_for(): if any word we copied
	 * was overwritten, we see the reclaim position that announced it. */
	th_fence_acquire();
	if (p < th_load_relaxed(&r->hdr->reclaim))
		return r->sticky = -TH_ELAPPED;
	if (!sane)
		return -TH_ECORRUPT;
	rec->pos = p;
	rec->len = len;
	rec->type = (uint16_t)(w0 >> 32);
	rec->flags = (uint16_t)(w0 >> 48);
	rec->publish_ns = t;
	if (!fits)
		return -ENOBUFS;
	r->pos = p + size;
	r->at_batch = rec->flags & TH_RING_F_BATCH_END;
	/* For the writer's lag reports only; no ordering needed. */
	th_store_relaxed(&r->slot->read_pos, r->pos);
	return 1;
}

/* Something for a wait to return for: a record, an eviction, a lap, the
 * ring closed. Not the batches the writer did not wake us for: a wait jumps
 * over them as th_ring_read() would, so that a reader filtered away from a
 * busy ring is not woken by every timeout it sets (each found the head moved
 * by others' batches and returned as if there were work). */
static bool reader_ready_for_us(struct th_ring_reader *r)
{
	if (r->sticky || reader_evicted(r) || th_load_relaxed(&r->hdr->closed))
		return true;
	if (th_load_relaxed(&r->hdr->head) == r->pos)
		return false;
	if (r->at_batch && reader_skip(r))
		return th_load_relaxed(&r->hdr->head) != r->pos;
	return true;
}

/* The caller's own word (th_ring_wait_or) moved: it has work for us. */
static inline bool kicked(th_atomic_u32 *kick, uint32_t kick_val)
{
	return kick && th_load_acquire(kick) != kick_val; /* pairs with the fetch-add-release in th_ring_kick() */
}

/* Set the sleeping flag, then re-check: the Dekker handshake with commit.
 * Returns whether there is something to read after all (do not sleep). */
static bool reader_prepare_sleep(struct th_ring_reader *r, uint32_t mode_bit)
{
	r->sleep_gen++;
	uint32_t sw = r->sleep_gen * SLEEP_GEN | mode_bit | SLEEPING;
	/* Before the flag: a wake-up for this sleep bumps it after it sees the
	 * flag, so the futex_waitv below never misses one. */
	r->wake_seen = th_load_acquire(&r->slot->wake_seq); /* pairs with the store-release in wake_futex() */
	th_store_relaxed(&r->slot->sleep_word, sw);
	/* Pairs with the seq_cst fence in th_ring_commit() (head store; fence;
	 * sleep_word load): either the writer sees us sleeping or we see its head. */
	th_fence_seq_cst();
	return th_load_relaxed(&r->hdr->head) != r->pos || r->sticky || reader_evicted(r) ||
	       th_load_relaxed(&r->hdr->closed);
}

static void reader_end_sleep(struct th_ring_reader *r)
{
	th_store_relaxed(&r->slot->sleep_word, r->sleep_gen * SLEEP_GEN);
}

#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX2_PRIVATE
#define FUTEX2_PRIVATE 128
#endif
#define MAX_NAP_NS 100000000ull /* 100 ms */

/*
 * Sleep until our slot's wake_seq moves off the one seen before the sleeping
 * flag was set (a commit we want, or the ring closing), its evict_seq moves
 * off the one we acknowledged, or the deadline (CLOCK_MONOTONIC ns). Two
 * words of our own slot with futex_waitv (Linux 5.16): the writer wakes
 * only the readers a batch is for. Without futex_waitv, wake_seq alone in
 * slices of 10 ms, so that an eviction is seen within 10 ms.
 */
static void sleep_on(struct th_ring_reader *r, bool commits, th_atomic_u32 *kick, uint32_t kick_val,
		     uint64_t deadline, uint64_t now)
{
	struct futex_waitv wv[3] = {
		{ .val = r->evict_ack, .uaddr = (uintptr_t)(void *)&r->slot->evict_seq, .flags = FUTEX2_SIZE_U32 },
	};
	unsigned n = 1;
	if (commits)
		wv[n++] = (struct futex_waitv){ .val = r->wake_seen, .uaddr = (uintptr_t)(void *)&r->slot->wake_seq,
						.flags = FUTEX2_SIZE_U32 };
	if (kick)
		wv[n++] = (struct futex_waitv){ .val = kick_val, .uaddr = (uintptr_t)(const void *)kick,
						.flags = FUTEX2_SIZE_U32 | FUTEX2_PRIVATE };
	struct timespec abs = th_ns_to_timespec(deadline);
	if (syscall(SYS_futex_waitv, wv, n, 0, deadline == UINT64_MAX ? NULL : &abs, CLOCK_MONOTONIC) >= 0 ||
	    errno != ENOSYS)
		return;
	uint64_t left = deadline - now;
	if (left > 10000000)
		left = 10000000;
	struct timespec ts = th_ns_to_timespec(left);
	if (commits)
		futex32(&r->slot->wake_seq, FUTEX_WAIT, r->wake_seen, &ts);
	else
		futex32(&r->slot->evict_seq, FUTEX_WAIT, r->evict_ack, &ts);
}

/* The delay this reader naps for when busy: the writer's, within our bound;
 * 0 when too small to be worth a timer. */
static uint64_t reader_delay(const struct th_ring_reader *r)
{
	uint64_t d = th_load_relaxed(&r->hdr->wake_delay_ns); /* the writer's advice: any value is safe */
	if (d > r->max_delay_ns)
		d = r->max_delay_ns;
	if (d > MAX_NAP_NS)
		d = MAX_NAP_NS; /* a header is the writer's, but a bound costs nothing */
	return d < WAKE_DELAY_MIN_NS ? 0 : d;
}

/* When a busy reader's nap ends (its previous wake-up plus the delay); 0
 * when it would not nap. */
static uint64_t nap_end(const struct th_ring_reader *r)
{
	uint64_t d = r->busy ? reader_delay(r) : 0;
	return d ? r->woke_ns + d : 0;
}

/* A wait ends with something to read: were we woken again within the
 * delay of the previous wake-up (a busy stream, next time we nap)? */
static void reader_woken(struct th_ring_reader *r, uint64_t now)
{
	uint64_t d = reader_delay(r);
	r->busy = d && now - r->woke_ns < d;
	r->woke_ns = now;
}

int th_ring_wait(struct th_ring_reader *r, enum th_ring_wait_mode mode, int64_t timeout_ns, uint64_t spin_ns)
{
	return th_ring_wait_or(r, mode, timeout_ns, spin_ns, NULL, 0);
}

int th_ring_wait_or(struct th_ring_reader *r, enum th_ring_wait_mode mode, int64_t timeout_ns, uint64_t spin_ns,
		    th_atomic_u32 *kick, uint32_t kick_val)
{
	if (reader_ready_for_us(r) || kicked(kick, kick_val))
		return 1;
	/* One clock read when there is nothing to spin for: a woken subscriber
	 * runs on a cold cache, and every read counts (vDSO clock, ~30-60 ns). */
	uint64_t start = th_now_ns();
	uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
	uint64_t now = start;
	if (mode == TH_RING_WAIT_FUTEX && r->busy) {
		/* Moderation: a busy stream, woken again within the delay. Nap
		 * until the previous wake-up plus the delay, with no sleeping flag
		 * (commits do not wake us; our eviction and the caller's word do),
		 * then read what came meanwhile in one round. A nap cut short by
		 * the caller's deadline goes on in its next wait: ending it there
		 * would have the writer wake us for the next commit. */
		uint64_t until = nap_end(r);
		if (until > now && until != r->nap_until) {
			r->nap_until = until;
			r->naps++;
		}
		while (until > now && now < deadline) {
			sleep_on(r, false, kick, kick_val, until < deadline ? until : deadline, now);
			now = th_now_ns();
			if (reader_ready_for_us(r) || kicked(kick, kick_val))
				break;
		}
		if (reader_ready_for_us(r)) {
			r->woke_ns = now; /* still busy: the next wait naps again */
			return 1;
		}
		if (kicked(kick, kick_val))
			return 1;
		if (until > now)
			return 0; /* the deadline came first */
		r->busy = false; /* nothing came: the stream is quiet, sleep until woken */
		if (now >= deadline)
			return 0;
		spin_ns = 0;
	}
	if (mode != TH_RING_WAIT_FUTEX || spin_ns > 0) {
		uint64_t spin_until = mode == TH_RING_WAIT_SPIN ? deadline : start + spin_ns;
		if (spin_until > deadline)
			spin_until = deadline;
		th_atomic_u64 *next = &r->data[(r->pos / 8) & r->mask_words];
		for (unsigned i = 0;; i++) {
			/* Touch the line the next record will be written to: when the
			 * writer publishes, both its line and the head's line miss, and
			 * this load lets the two misses overlap instead of queueing. */
			(void)th_load_relaxed(next);
			if (reader_ready_for_us(r))
				return 1; /* not woken by the writer: a spinning reader never naps */
			if (kicked(kick, kick_val))
				return 1;
			th_cpu_relax();
			if ((i & 63) == 0 && th_now_ns() >= spin_until)
				break;
		}
		if (mode != TH_RING_WAIT_FUTEX)
			return reader_ready_for_us(r);
		now = th_now_ns();
	}
	for (;; now = th_now_ns()) {
		if (reader_prepare_sleep(r, 0)) {
			reader_end_sleep(r);
			return 1;
		}
		if (now >= deadline || kicked(kick, kick_val)) {
			reader_end_sleep(r);
			return now < deadline;
		}
		sleep_on(r, true, kick, kick_val, deadline, now);
		reader_end_sleep(r);
		if (reader_ready_for_us(r)) {
			reader_woken(r, th_now_ns());
			return 1;
		}
		if (kicked(kick, kick_val))
			return 1;
		/* A spurious wake-up, or the timeout. */
	}
}

void th_ring_kick(th_atomic_u32 *kick)
{
	th_fetch_add_release(kick, 1); /* pairs with the load-acquire in kicked() */
	futex32(kick, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL);
}

uint64_t th_ring_reader_nap_left(const struct th_ring_reader *r, uint64_t now_ns)
{
	uint64_t until = nap_end(r);
	return until > now_ns ? until - now_ns : 0;
}

void th_ring_reader_set_max_delay(struct th_ring_reader *r, uint64_t max_ns)
{
	r->max_delay_ns = max_ns;
	if (reader_delay(r) == 0)
		r->busy = false;
}

uint64_t th_ring_reader_naps(const struct th_ring_reader *r)
{
	return r->naps;
}

int th_ring_reader_event_fd(const struct th_ring_reader *r)
{
	return r->event_fd;
}

int th_ring_reader_arm(struct th_ring_reader *r)
{
	if (reader_prepare_sleep(r, SLEEP_FD)) {
		reader_end_sleep(r);
		return 1;
	}
	return 0;
}

void th_ring_reader_disarm(struct th_ring_reader *r)
{
	reader_end_sleep(r);
	/* Drain the wake-up bytes (a page at most). */
	char v[256];
	for (int i = 0; i < 16; i++)
		if (read(r->event_fd, v, sizeof v) < (ssize_t)sizeof v)
			break;
}

static int rejoin_at(struct th_ring_reader *r, uint64_t pos, uint64_t *out)
{
	r->pos = pos;
	r->head = pos;
	r->sticky = 0;
	r->at_batch = true; /* the head, or the oldest record: a batch start (a torn one reads as lapped) */
	th_store_relaxed(&r->slot->read_pos, pos);
	uint32_t seq = th_load_acquire(&r->slot->evict_seq); /* pairs with the store-release in evict */
	r->evict_ack = seq;
	th_store_relaxed(&r->slot->evict_ack, seq);
	if (out)
		*out = pos;
	return 0;
}

int th_ring_reader_rejoin(struct th_ring_reader *r, uint64_t *pos)
{
	/* Pairs with the store-release of head in commit. */
	return rejoin_at(r, th_load_acquire(&r->hdr->head), pos);
}

int th_ring_reader_rejoin_oldest(struct th_ring_reader *r, uint64_t *pos)
{
	uint64_t head = th_load_acquire(&r->hdr->head); /* pairs with the store-release in commit */
	uint64_t oldest = th_load_relaxed(&r->hdr->reclaim);
	/* The oldest record may be overwritten before we read it; th_ring_read
	 * then reports a lap again, which is the truth. */
	return rejoin_at(r, oldest <= head ? oldest : head, pos);
}

void th_ring_reader_set_filter(struct th_ring_reader *r, const uint64_t *filter)
{
	struct slot_page *pg = r->slot;
	if (filter)
		for (unsigned i = 0; i < TH_RING_TAG_WORDS; i++)
			th_store_relaxed(&pg->filter[i], filter[i]);
	r->filter_changes++;
	/* Pairs with the load-acquire in slot_wants(): the words before the word
	 * that announces them. */
	th_store_release(&pg->filter_word, r->filter_changes << 1 | (filter ? FILTER_ON : 0));
	/* Pairs with the fence in commit (filter store; fence; head load here,
	 * head store; fence; filter load there): a batch the writer judged by
	 * the old filter is one this reader sees in the head it loads after
	 * this call (and its caller asks for what it now watches only after). */
	th_fence_seq_cst();
}

void th_ring_reader_wake_any(struct th_ring_reader *r, int delta)
{
	th_fetch_add_relaxed(&r->slot->wake_any, (uint32_t)delta);
	th_fence_seq_cst(); /* as in set_filter: before the caller's head load */
}

uint64_t th_ring_reader_skips(const struct th_ring_reader *r, uint64_t *note)
{
	if (note)
		*note = r->skip_note;
	return r->skips;
}

void th_ring_reader_set_timeout(struct th_ring_reader *r, uint64_t timeout_ns)
{
	th_store_relaxed(&r->slot->timeout_ns, timeout_ns);
}

uint64_t th_ring_reader_pos(const struct th_ring_reader *r)
{
	return r->pos;
}

uint64_t th_ring_reader_head(const struct th_ring_reader *r)
{
	return th_load_acquire(&r->hdr->head); /* pairs with the store-release in commit */
}

uint64_t th_ring_reader_generation(const struct th_ring_reader *r)
{
	return r->hdr->generation;
}

enum th_ring_evict_reason th_ring_reader_evict_reason(const struct th_ring_reader *r)
{
	return (enum th_ring_evict_reason)th_load_relaxed(&r->slot->evict_reason);
}
