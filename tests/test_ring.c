/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for shm/ring.h: framing, wrap-around, positions past 2^32, batch
 * visibility, laps, eviction, format checks, waiting, and real reader
 * processes (fork) that read, die, stop and misbehave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ring.h"
#include "common/th_atomic.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "tests/support/support.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* ---- helpers ------------------------------------------------------------ */

struct fixture {
	struct th_ring_writer *w;
	uint32_t id;
	struct th_ring_reader *r;
};

static void fixture_open(struct fixture *f, uint64_t capacity, uint64_t initial_pos)
{
	struct th_ring_config cfg = { .capacity = capacity, .initial_pos = initial_pos };
	assert_int_equal(th_ring_writer_create(&cfg, &f->w), 0);
	struct th_ring_reader_fds fds;
	assert_int_equal(th_ring_add_reader(f->w, &f->id, &fds), 0);
	char err[200] = "";
	int rc = th_ring_reader_open(&fds, &f->r, err, sizeof err);
	if (rc)
		fail_msg("reader_open: %s: %s", th_strerror(rc), err);
	close(fds.ring_fd);
	close(fds.slot_fd);
	close(fds.event_fd);
}

static void fixture_close(struct fixture *f)
{
	th_ring_reader_close(f->r);
	th_ring_writer_destroy(f->w);
}

/* Deterministic payload for a sequence number: any torn or misplaced word shows. */
static inline uint64_t pattern_word(uint64_t seq, uint64_t k)
{
	uint64_t x = seq * 0x9E3779B97F4A7C15ull ^ (k + 1) * 0xBF58476D1CE4E5B9ull;
	return x ^ (x >> 31);
}

static uint32_t pattern_len(uint64_t seq, uint32_t min, uint32_t max)
{
	return min + (uint32_t)(pattern_word(seq, 977) % (max - min + 1));
}

static void pattern_fill(uint8_t *buf, uint64_t seq, uint32_t len)
{
	memcpy(buf, &seq, 8);
	for (uint32_t off = 8, k = 0; off < len; off += 8, k++) {
		uint64_t v = pattern_word(seq, k);
		memcpy(buf + off, &v, len - off < 8 ? len - off : 8);
	}
}

/* Returns the sequence number, or UINT64_MAX when the payload is not intact. */
static uint64_t pattern_check(const uint8_t *buf, uint32_t len)
{
	if (len < 8)
		return UINT64_MAX;
	uint64_t seq;
	memcpy(&seq, buf, 8);
	for (uint32_t off = 8, k = 0; off < len; off += 8, k++) {
		uint64_t v = pattern_word(seq, k);
		if (memcmp(buf + off, &v, len - off < 8 ? len - off : 8))
			return UINT64_MAX;
	}
	return seq;
}

/* ---- unit tests --------------------------------------------------------- */

static void test_ring__record_round_trips_with_type_flags_and_time(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, 0);
	uint64_t before = th_now_ns();
	assert_int_equal(th_ring_append(f.w, 7, "hello", 5), 0);
	assert_int_equal(th_ring_commit(f.w), 1);
	struct th_ring_record rec;
	char buf[64] = "";
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 1);
	assert_int_equal(rec.len, 5);
	assert_int_equal(rec.type, 7);
	assert_int_equal(rec.flags, TH_RING_F_BATCH_END);
	assert_int_equal(rec.pos, 0);
	assert_true(rec.publish_ns >= before && rec.publish_ns <= th_now_ns());
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 0);
	/* Header 16 bytes + 5 payload, padded to 8: the next record starts at 24. */
	assert_int_equal(th_ring_reader_pos(f.r), 24);
	assert_int_equal(th_ring_head(f.w), 24);
	fixture_close(&f);
}

static void test_ring__batch_is_invisible_until_commit_then_visible_at_once(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, 0);
	struct th_ring_record rec;
	char buf[64];
	for (int i = 0; i < 5; i++)
		assert_int_equal(th_ring_append(f.w, 1, &i, sizeof i), 0);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 0);
	assert_int_equal(th_ring_reader_head(f.r), 0);
	assert_int_equal(th_ring_commit(f.w), 5);
	assert_int_equal(th_ring_reader_head(f.r), 5 * 24);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 1);
		int v;
		memcpy(&v, buf, sizeof v);
		assert_int_equal(v, i);
		assert_int_equal(rec.flags, i == 4 ? TH_RING_F_BATCH_END : 0);
	}
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 0);
	/* An aborted batch is never seen. */
	assert_int_equal(th_ring_append(f.w, 1, "x", 1), 0);
	th_ring_abort(f.w);
	assert_int_equal(th_ring_commit(f.w), 0);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 0);
	fixture_close(&f);
}

/* Records of every size wrap over the end of a small ring many times. */
static void run_wrap(uint64_t initial_pos)
{
	struct fixture f;
	fixture_open(&f, 4096, initial_pos);
	uint8_t in[1024], out[1024];
	struct th_ring_record rec;
	uint64_t wrapped = 0;
	for (uint64_t seq = 0; seq < 20000; seq++) {
		uint32_t len = pattern_len(seq, 8, 1000);
		pattern_fill(in, seq, len);
		assert_int_equal(th_ring_append(f.w, (uint16_t)seq, in, len), 0);
		assert_int_equal(th_ring_commit(f.w), 1);
		assert_int_equal(th_ring_read(f.r, &rec, out, sizeof out), 1);
		assert_int_equal(rec.len, len);
		assert_int_equal(rec.type, (uint16_t)seq);
		assert_int_equal(pattern_check(out, len), seq);
		if ((rec.pos % 4096) + 16 + len > 4096)
			wrapped++;
	}
	assert_true(wrapped > 1000);
	assert_true(th_ring_head(f.w) > initial_pos + 100 * 4096);
	fixture_close(&f);
}

static void test_ring__records_wrap_around_the_end_of_the_buffer(void **state)
{
	(void)state;
	run_wrap(0);
}

static void test_ring__positions_beyond_capacity_and_beyond_2_to_the_32_work(void **state)
{
	(void)state;
	run_wrap((1ull << 32) - 4096 * 3); /* crosses 2^32 during the run */
	run_wrap((1ull << 52) + 8);        /* far beyond; not capacity-aligned */
}

static void test_ring__reader_detects_lap_and_rejoins(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, (1ull << 32) - 64);
	uint8_t buf[256];
	struct th_ring_record rec;
	/* One record read, then the writer goes round the ring twice. */
	assert_int_equal(th_ring_append(f.w, 1, buf, 100), 0);
	th_ring_commit(f.w);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 1);
	for (uint64_t seq = 0; seq < 100; seq++) {
		pattern_fill(buf, seq, 200);
		assert_int_equal(th_ring_append(f.w, 2, buf, 200), 0);
		th_ring_commit(f.w);
	}
	struct th_ring_lag lag;
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_true(lag.lapped);
	assert_int_equal(lag.age_ns, UINT64_MAX);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), -TH_ELAPPED);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), -TH_ELAPPED); /* sticky */
	/* Rejoining at the oldest intact record gives intact, consecutive records. */
	uint64_t pos;
	assert_int_equal(th_ring_reader_rejoin_oldest(f.r, &pos), 0);
	assert_int_equal(pos, th_ring_oldest(f.w));
	uint64_t expect = UINT64_MAX, n = 0;
	int rc;
	while ((rc = th_ring_read(f.r, &rec, buf, sizeof buf)) == 1) {
		uint64_t seq = pattern_check(buf, rec.len);
		assert_int_not_equal(seq, UINT64_MAX);
		if (expect != UINT64_MAX)
			assert_int_equal(seq, expect);
		expect = seq + 1;
		n++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(expect, 100);
	assert_true(n >= 4096 / 216 - 1);
	/* Rejoining at the head: nothing older is delivered. */
	assert_int_equal(th_ring_reader_rejoin(f.r, &pos), 0);
	assert_int_equal(pos, th_ring_head(f.w));
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 0);
	fixture_close(&f);
}

static void test_ring__evicted_reader_sees_eviction_reason_then_rejoins(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, 0);
	uint8_t buf[64];
	struct th_ring_record rec;
	th_ring_append(f.w, 1, "a", 1);
	th_ring_commit(f.w);
	assert_int_equal(th_ring_evict(f.w, f.id, TH_RING_EVICT_SLOW), 0);
	assert_int_equal(th_ring_evict(f.w, 999, TH_RING_EVICT_SLOW), -ENOENT);
	struct th_ring_lag lag;
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_true(lag.evicted);
	assert_int_equal(lag.evictions, 1);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), -TH_EEVICTED);
	assert_int_equal(th_ring_reader_evict_reason(f.r), TH_RING_EVICT_SLOW);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), -TH_EEVICTED);
	uint64_t pos;
	assert_int_equal(th_ring_reader_rejoin(f.r, &pos), 0);
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_false(lag.evicted);
	th_ring_append(f.w, 1, "b", 1);
	th_ring_commit(f.w);
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 1);
	assert_int_equal(buf[0], 'b');
	fixture_close(&f);
}

/* A reader's own writes into its slot (ring.c's layout, as a hostile reader knows it). */
struct raw_reader {
	struct th_ring_reader_fds fds;
	uint32_t id;
	uint8_t *slot;
};

static void raw_open(struct th_ring_writer *w, struct raw_reader *rr)
{
	assert_int_equal(th_ring_add_reader(w, &rr->id, &rr->fds), 0);
	rr->slot = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rr->fds.slot_fd, 0);
	assert_true(rr->slot != MAP_FAILED);
}

static void raw_close(struct raw_reader *rr)
{
	munmap(rr->slot, 4096);
	close(rr->fds.ring_fd), close(rr->fds.slot_fd), close(rr->fds.event_fd);
}

#define RAW_U64(rr, off) ((_Atomic uint64_t *)(void *)((rr)->slot + (off)))
#define RAW_U32(rr, off) ((_Atomic uint32_t *)(void *)((rr)->slot + (off)))

static void test_ring__a_position_inside_a_record_is_invalid_never_read_as_a_time(void **state)
{
	(void)state;
	struct th_ring_config cfg = { .capacity = 1 << 16, .initial_pos = 1 << 20 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct raw_reader rr;
	raw_open(w, &rr);
	uint64_t start = th_ring_head(w);
	static uint8_t zeros[4000];
	assert_int_equal(th_ring_append(w, 1, zeros, sizeof zeros), 0);
	th_ring_commit(w);
	struct th_ring_lag lag;
	/* At the record: a true age. */
	assert_int_equal(th_ring_reader_lag(w, rr.id, &lag), 0);
	assert_false(lag.invalid);
	assert_true(lag.age_ns < 10ull * 1000000000u);
	/* Inside it (zeros: "published at boot" if read as a header), past the
	 * head, misaligned: invalid, no lag. */
	const uint64_t bogus[] = { start + 1024, th_ring_head(w) + 8, start + 3 };
	for (size_t i = 0; i < 3; i++) {
		atomic_store(RAW_U64(&rr, 0), bogus[i]);
		assert_int_equal(th_ring_reader_lag(w, rr.id, &lag), 0);
		assert_true(lag.invalid);
		assert_int_equal(lag.lag_bytes, 0);
		assert_true(lag.age_ns < 10ull * 1000000000u);
	}
	/* Behind where it was added: taken as no older than that. */
	atomic_store(RAW_U64(&rr, 0), start - 4096);
	assert_int_equal(th_ring_reader_lag(w, rr.id, &lag), 0);
	assert_false(lag.invalid);
	assert_int_equal(lag.read_pos, start);
	raw_close(&rr);
	th_ring_writer_destroy(w);
}

static void test_ring__an_eviction_counts_once_until_a_rejoin_and_the_slot_only_mirrors_it(void **state)
{
	(void)state;
	struct th_ring_config cfg = { .capacity = 1 << 16 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct raw_reader rr;
	raw_open(w, &rr);
	th_ring_append(w, 1, "a", 1);
	th_ring_commit(w);
	assert_int_equal(th_ring_evict(w, rr.id, TH_RING_EVICT_SLOW), 0);
	assert_int_equal(th_ring_evict(w, rr.id, TH_RING_EVICT_SLOW), -EALREADY);
	/* The reader scribbles over the writer's mirror: the writer's count stands. */
	atomic_store(RAW_U32(&rr, 200), 999);
	struct th_ring_lag lag;
	assert_int_equal(th_ring_reader_lag(w, rr.id, &lag), 0);
	assert_true(lag.evicted);
	assert_int_equal(lag.evictions, 1);
	/* It acknowledges without moving: rejoined at the writer's head. */
	atomic_store(RAW_U32(&rr, 68), atomic_load(RAW_U32(&rr, 192)));
	assert_int_equal(th_ring_reader_lag(w, rr.id, &lag), 0);
	assert_false(lag.evicted);
	assert_int_equal(lag.lag_bytes, 0);
	assert_int_equal(lag.read_pos, th_ring_head(w));
	assert_int_equal(th_ring_evict(w, rr.id, TH_RING_EVICT_SLOW), 0);
	assert_int_equal(th_ring_reader_lag(w, rr.id, &lag), 0);
	assert_int_equal(lag.evictions, 2);
	raw_close(&rr);
	th_ring_writer_destroy(w);
}

static void test_ring__a_reader_that_blocks_its_wakeup_fd_cannot_block_the_writer(void **state)
{
	(void)state;
	struct th_ring_config cfg = { .capacity = 1 << 16 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct th_ring_reader_fds fds;
	uint32_t id;
	assert_int_equal(th_ring_add_reader(w, &id, &fds), 0);
	struct th_ring_reader *r;
	char err[200];
	assert_int_equal(th_ring_reader_open(&fds, &r, err, sizeof err), 0);
	int fl = fcntl(fds.event_fd, F_GETFL);
	assert_int_equal(fcntl(fds.event_fd, F_SETFL, fl & ~O_NONBLOCK), 0);
	uint64_t max = 0xfffffffffffffffeull;
	ssize_t wr = write(fds.event_fd, &max, sizeof max);
	(void)wr;
	/* Armed and never drained, 10,000 commits and evictions: none blocks. */
	uint8_t buf[64];
	struct th_ring_record rec;
	for (int i = 0; i < 10000; i++) {
		while (th_ring_read(r, &rec, buf, sizeof buf) == 1)
			;
		if (th_ring_read(r, &rec, buf, sizeof buf) == -TH_EEVICTED) {
			uint64_t pos;
			th_ring_reader_rejoin(r, &pos);
		}
		th_ring_reader_arm(r);
		th_ring_append(w, 1, "x", 1);
		th_ring_commit(w);
		if (i % 100 == 0)
			th_ring_evict(w, id, TH_RING_EVICT_ADMIN);
	}
	/* The fd is readable (woken), and disarm drains it. */
	struct pollfd p = { .fd = th_ring_reader_event_fd(r), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 1);
	assert_int_equal(fcntl(th_ring_reader_event_fd(r), F_SETFL, fl | O_NONBLOCK), 0);
	th_ring_reader_disarm(r);
	th_ring_reader_close(r);
	close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	th_ring_writer_destroy(w);
}

static void test_ring__lag_reports_bytes_age_and_requested_timeout(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 1 << 16, 0);
	th_ring_reader_set_timeout(f.r, 250000000);
	struct th_ring_lag lag;
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_int_equal(lag.lag_bytes, 0);
	assert_int_equal(lag.age_ns, 0);
	assert_int_equal(lag.timeout_ns, 250000000);
	th_ring_append(f.w, 1, "abc", 3);
	th_ring_commit(f.w);
	struct timespec ts = { 0, 2000000 };
	nanosleep(&ts, NULL);
	th_ring_append(f.w, 1, "def", 3);
	th_ring_commit(f.w);
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_int_equal(lag.lag_bytes, 48);
	assert_true(lag.age_ns >= 2000000);
	assert_false(lag.lapped);
	char buf[8];
	struct th_ring_record rec;
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 1);
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_int_equal(lag.lag_bytes, 24);
	assert_true(lag.age_ns < 2000000 + (th_now_ns() - rec.publish_ns));
	fixture_close(&f);
}

static void test_ring__refuses_oversize_record_and_batch(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 1 << 16, 0);
	static uint8_t big[(1 << 16) / 4 + 1];
	assert_int_equal(th_ring_max_record(f.w), (1 << 16) / 4);
	assert_int_equal(th_ring_append(f.w, 1, big, sizeof big), -TH_ETOOBIG);
	assert_int_equal(th_ring_append(f.w, 1, big, sizeof big - 1), 0);
	/* A second quarter-ring record fits a half-ring batch only just not. */
	assert_int_equal(th_ring_append(f.w, 1, big, sizeof big - 1), -TH_ETOOBIG);
	assert_int_equal(th_ring_commit(f.w), 1);
	struct th_ring_config bad = { .capacity = 1 << 16, .max_record = (1 << 16) / 4 + 8 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&bad, &w), -EINVAL);
	bad = (struct th_ring_config){ .capacity = 3 << 12 };
	assert_int_equal(th_ring_writer_create(&bad, &w), -EINVAL);
	bad = (struct th_ring_config){ .capacity = 1 << 12, .initial_pos = 4 };
	assert_int_equal(th_ring_writer_create(&bad, &w), -EINVAL);
	fixture_close(&f);
}

static void test_ring__sixteen_mib_record_in_a_big_ring(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 64ull << 20, 0);
	uint32_t len = 16u << 20;
	uint8_t *in = malloc(len), *out = malloc(len);
	assert_non_null(in);
	assert_non_null(out);
	pattern_fill(in, 42, len);
	assert_int_equal(th_ring_append(f.w, 3, in, len), 0);
	assert_int_equal(th_ring_commit(f.w), 1);
	struct th_ring_record rec;
	assert_int_equal(th_ring_read(f.r, &rec, out, 100), -ENOBUFS);
	assert_int_equal(rec.len, len);
	assert_int_equal(th_ring_read(f.r, &rec, out, len), 1);
	assert_int_equal(pattern_check(out, len), 42);
	free(in);
	free(out);
	fixture_close(&f);
}

static void test_ring__gathers_payload_from_iovecs_of_odd_sizes(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, 0);
	uint8_t in[300], out[300];
	pattern_fill(in, 7, sizeof in);
	struct iovec iov[] = { { in, 3 }, { in + 3, 0 }, { in + 3, 13 }, { in + 16, 200 }, { in + 216, 84 } };
	assert_int_equal(th_ring_appendv(f.w, 9, iov, 5), 0);
	th_ring_commit(f.w);
	struct th_ring_record rec;
	assert_int_equal(th_ring_read(f.r, &rec, out, sizeof out), 1);
	assert_int_equal(rec.len, 300);
	assert_memory_equal(in, out, 300);
	fixture_close(&f);
}

static void test_ring__reader_refuses_incompatible_segment(void **state)
{
	(void)state;
	char err[256] = "";
	struct th_ring_reader *r;
	int fd = memfd_create("not-a-ring", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8192), 0);
	struct th_ring_reader_fds fds = { fd, fd, -1 };
	assert_int_equal(th_ring_reader_open(&fds, &r, err, sizeof err), -TH_EFORMAT);
	assert_non_null(strstr(err, "not a topohub ring"));

	/* A real ring whose format word differs (another version or layout). */
	struct fixture f;
	fixture_open(&f, 4096, 0);
	struct th_ring_reader_fds good;
	uint32_t id;
	assert_int_equal(th_ring_add_reader(f.w, &id, &good), 0);
	uint8_t page[4096];
	assert_int_equal(pread(good.ring_fd, page, sizeof page, 0), (ssize_t)sizeof page);
	page[8 + 6] ^= 0x01; /* the version byte of the format word */
	assert_int_equal(pwrite(fd, page, sizeof page, 0), (ssize_t)sizeof page);
	fds.slot_fd = good.slot_fd;
	assert_int_equal(th_ring_reader_open(&fds, &r, err, sizeof err), -TH_EFORMAT);
	assert_non_null(strstr(err, "format"));

	/* The right ring with a slot of another ring (another generation). */
	struct fixture g;
	fixture_open(&g, 4096, 0);
	struct th_ring_reader_fds other;
	assert_int_equal(th_ring_add_reader(g.w, &id, &other), 0);
	fds = (struct th_ring_reader_fds){ good.ring_fd, other.slot_fd, -1 };
	assert_int_equal(th_ring_reader_open(&fds, &r, err, sizeof err), -TH_EFORMAT);
	assert_non_null(strstr(err, "generation"));
	/* And the ring's geometry must fit the file. */
	assert_int_equal(ftruncate(fd, 100), 0);
	fds = (struct th_ring_reader_fds){ fd, good.slot_fd, -1 };
	assert_int_equal(th_ring_reader_open(&fds, &r, err, sizeof err), -TH_EFORMAT);

	close(fd);
	close(good.ring_fd), close(good.slot_fd), close(good.event_fd);
	close(other.ring_fd), close(other.slot_fd), close(other.event_fd);
	fixture_close(&f);
	fixture_close(&g);
}

static void test_ring__ring_fd_cannot_be_written_or_mapped_writable(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, 0);
	struct th_ring_reader_fds fds;
	uint32_t id;
	assert_int_equal(th_ring_add_reader(f.w, &id, &fds), 0);
	assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds.ring_fd, 0) == MAP_FAILED);
	assert_int_equal(write(fds.ring_fd, "x", 1), -1);
	assert_int_equal(ftruncate(fds.ring_fd, 0), -1);
	void *ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fds.ring_fd, 0);
	assert_true(ro != MAP_FAILED);
	assert_int_equal(mprotect(ro, 4096, PROT_READ | PROT_WRITE), -1);
	munmap(ro, 4096);
	close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	fixture_close(&f);
}

static void test_ring__closed_ring_reports_closed_after_everything_is_read(void **state)
{
	(void)state;
	struct th_ring_config cfg = { .capacity = 4096 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct th_ring_reader_fds fds;
	uint32_t id;
	assert_int_equal(th_ring_add_reader(w, &id, &fds), 0);
	struct th_ring_reader *r;
	assert_int_equal(th_ring_reader_open(&fds, &r, NULL, 0), 0);
	th_ring_append(w, 1, "last", 4);
	th_ring_commit(w);
	th_ring_writer_destroy(w);
	char buf[8];
	struct th_ring_record rec;
	assert_int_equal(th_ring_read(r, &rec, buf, sizeof buf), 1);
	assert_memory_equal(buf, "last", 4);
	assert_int_equal(th_ring_read(r, &rec, buf, sizeof buf), -TH_ECLOSED);
	assert_int_equal(th_ring_wait(r, TH_RING_WAIT_FUTEX, 1000000000, 0), 1);
	th_ring_reader_close(r);
	close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
}

struct waiter_args {
	struct th_ring_reader *r;
	enum th_ring_wait_mode mode;
	int result;
	_Atomic int started;
};

static void *waiter_thread(void *p)
{
	struct waiter_args *a = p;
	atomic_store(&a->started, 1);
	if (a->mode == TH_RING_WAIT_FD) {
		if (th_ring_reader_arm(a->r) == 0) {
			struct pollfd pfd = { th_ring_reader_event_fd(a->r), POLLIN, 0 };
			a->result = poll(&pfd, 1, 10000);
			th_ring_reader_disarm(a->r);
		} else {
			a->result = 1;
		}
	} else {
		a->result = th_ring_wait(a->r, a->mode, 10ll * 1000000000, 0);
	}
	return NULL;
}

static void wait_until_sleeping(struct th_ring_writer *w, uint32_t id)
{
	struct th_ring_lag lag;
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(th_ring_reader_lag(w, id, &lag), 0);
		if (lag.sleeping)
			return;
		usleep(100);
	}
	fail_msg("reader never went to sleep");
}

static void run_wake(enum th_ring_wait_mode mode, bool by_eviction)
{
	struct fixture f;
	fixture_open(&f, 4096, 0);
	struct waiter_args a = { .r = f.r, .mode = mode };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, waiter_thread, &a), 0);
	wait_until_sleeping(f.w, f.id);
	if (by_eviction) {
		assert_int_equal(th_ring_evict(f.w, f.id, TH_RING_EVICT_ADMIN), 0);
	} else {
		th_ring_append(f.w, 1, "x", 1);
		th_ring_commit(f.w);
	}
	pthread_join(t, NULL);
	assert_int_equal(a.result, 1);
	char buf[8];
	struct th_ring_record rec;
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), by_eviction ? -TH_EEVICTED : 1);
	fixture_close(&f);
}

static void test_ring__futex_sleeper_is_woken_by_commit(void **state)
{
	(void)state;
	run_wake(TH_RING_WAIT_FUTEX, false);
}

static void test_ring__fd_sleeper_is_woken_through_its_pipe(void **state)
{
	(void)state;
	run_wake(TH_RING_WAIT_FD, false);
}

static void test_ring__eviction_wakes_a_sleeping_reader(void **state)
{
	(void)state;
	run_wake(TH_RING_WAIT_FUTEX, true);
	run_wake(TH_RING_WAIT_FD, true);
}

static void test_ring__wait_times_out_when_nothing_arrives(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, 0);
	uint64_t t0 = th_now_ns();
	assert_int_equal(th_ring_wait(f.r, TH_RING_WAIT_FUTEX, 20000000, 1000), 0);
	assert_true(th_now_ns() - t0 >= 20000000);
	assert_int_equal(th_ring_wait(f.r, TH_RING_WAIT_SPIN, 1000000, 0), 0);
	assert_int_equal(th_ring_reader_arm(f.r), 0);
	struct pollfd pfd = { th_ring_reader_event_fd(f.r), POLLIN, 0 };
	assert_int_equal(poll(&pfd, 1, 10), 0);
	th_ring_reader_disarm(f.r);
	fixture_close(&f);
}

/* th_ring_wait_or(): another thread's kick ends a wait that no commit,
 * eviction or timeout would end; a kick before the wait is not slept through. */
struct kick_args {
	struct th_ring_reader *r;
	th_atomic_u32 word;
	uint32_t seen;
	int result;
};

static void *kick_waiter(void *p)
{
	struct kick_args *a = p;
	a->result = th_ring_wait_or(a->r, TH_RING_WAIT_FUTEX, -1, 0, &a->word, a->seen);
	return NULL;
}

static void test_ring__a_kick_ends_a_wait_that_nothing_else_would(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, 0);
	struct kick_args a = { .r = f.r };
	a.seen = th_load_acquire(&a.word);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, kick_waiter, &a), 0);
	wait_until_sleeping(f.w, f.id);
	th_ring_kick(&a.word);
	pthread_join(t, NULL);
	assert_int_equal(a.result, 1);
	struct th_ring_lag lag;
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_false(lag.sleeping); /* it left its sleep properly */
	/* Kicked between loading the word and waiting: returns at once. */
	th_ring_kick(&a.word);
	assert_int_equal(th_ring_wait_or(f.r, TH_RING_WAIT_FUTEX, -1, 0, &a.word, a.seen), 1);
	fixture_close(&f);
}

/*
 * Wake-up moderation. The writer's delay grows with its measured cost of a
 * wake-up times the readers a batch is for, so a writer with a thousand
 * (idle, never-reading) readers besides ours advises one well above the
 * 50 us floor; the reader under test sleeps in futex mode and is fed a
 * commit every ~50 us.
 */
#define MOD_IDLE_READERS 1000
#define MOD_RECORDS 2000

struct mod_reader {
	struct th_ring_reader *r;
	uint64_t want, got, rounds, naps_after_busy;
	int64_t timeout_ns; /* of each wait; 0: 10 s */
	bool in_order;
};

static void *mod_reader_thread(void *p)
{
	struct mod_reader *m = p;
	m->in_order = true;
	uint64_t give_up = th_now_ns() + 20ull * 1000000000;
	while (m->got < m->want && th_now_ns() < give_up) {
		if (th_ring_wait(m->r, TH_RING_WAIT_FUTEX, m->timeout_ns ? m->timeout_ns : 10ll * 1000000000, 0) != 1)
			continue;
		struct th_ring_record rec;
		uint64_t seq;
		int n = 0;
		while (th_ring_read(m->r, &rec, &seq, sizeof seq) == 1) {
			m->in_order &= rec.len == sizeof seq && seq == m->got;
			m->got++, n++;
		}
		m->rounds += n > 0;
		if (m->got == MOD_RECORDS)
			m->naps_after_busy = th_ring_reader_naps(m->r);
	}
	return NULL;
}

static void mod_open_n(struct fixture *f, uint32_t *idle_ids, int n_idle)
{
	/* The writer keeps two descriptors per reader. */
	if (th_test_raise_nofile(2u * (unsigned)n_idle + 64) != 0)
		fail_msg("this test needs an open-file limit of %d (ulimit -Hn is lower)", 2 * n_idle + 64);
	struct th_ring_config cfg = { .capacity = 1u << 20, .max_readers = (uint32_t)n_idle + 1 };
	assert_int_equal(th_ring_writer_create(&cfg, &f->w), 0);
	struct th_ring_reader_fds fds;
	for (int i = 0; i < n_idle; i++) {
		assert_int_equal(th_ring_add_reader(f->w, &idle_ids[i], &fds), 0);
		close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	}
	assert_int_equal(th_ring_add_reader(f->w, &f->id, &fds), 0);
	assert_int_equal(th_ring_reader_open(&fds, &f->r, NULL, 0), 0);
	close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
}

static void mod_open(struct fixture *f, uint32_t *idle_ids)
{
	mod_open_n(f, idle_ids, MOD_IDLE_READERS);
}

/* Publish n records one per commit, gap_us apart; return the largest delay advised. */
static uint64_t mod_publish(struct th_ring_writer *w, uint64_t n, unsigned gap_us)
{
	uint64_t delay = 0;
	for (uint64_t seq = 0; seq < n; seq++) {
		th_ring_append(w, 1, &seq, sizeof seq);
		th_ring_commit(w);
		uint64_t d = th_ring_wake_delay(w);
		delay = d > delay ? d : delay;
		usleep(gap_us);
	}
	return delay;
}

static uint64_t mod_publish_busy(struct th_ring_writer *w)
{
	return mod_publish(w, MOD_RECORDS, 50);
}

static void test_ring__a_busy_stream_is_read_in_rounds_of_the_writers_delay_and_an_idle_one_wakes_at_once(
	void **state)
{
	(void)state;
	static uint32_t idle[MOD_IDLE_READERS];
	struct fixture f;
	mod_open(&f, idle);
	struct mod_reader m = { .r = f.r, .want = MOD_RECORDS + 1 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, mod_reader_thread, &m), 0);
	uint64_t delay = mod_publish_busy(f.w);
	assert_true(delay >= 50000); /* the writer did advise a delay */
	/* Quiet: the reader naps once more, finds nothing, and goes back to the
	 * sleep that a commit ends (its sleeping flag is what the writer sees). */
	usleep(3 * delay / 1000 + 1000);
	wait_until_sleeping(f.w, f.id);
	uint64_t seq = MOD_RECORDS;
	th_ring_append(f.w, 1, &seq, sizeof seq);
	th_ring_commit(f.w);
	pthread_join(t, NULL);
	assert_int_equal(m.got, MOD_RECORDS + 1);
	assert_true(m.in_order);
	uint64_t naps = th_ring_reader_naps(f.r);
	/* Woken again within the delay, the reader napped and read many commits
	 * per round instead of being woken by each. */
	assert_true(naps > 0);
	assert_true(m.rounds < MOD_RECORDS / 2);
	/* The quiet period ended the napping: at most the one nap that found
	 * nothing, none for the commit after it. */
	assert_true(naps - m.naps_after_busy <= 1);
	fixture_close(&f);
}

/* A caller that waits in slices shorter than the nap (as the client does,
 * to look at its hub now and then) does not end the nap: a wait cut short
 * by its timeout returns 0 and the nap goes on in the next wait (ending it
 * there would have the writer wake the reader for the next commit). */
struct cut_probe {
	struct mod_reader m;
	uint64_t left_before, left_after;
	int cut;
};

static void *cut_probe_thread(void *p)
{
	struct cut_probe *c = p;
	mod_reader_thread(&c->m);
	c->left_before = th_ring_reader_nap_left(c->m.r, th_now_ns());
	c->cut = th_ring_wait(c->m.r, TH_RING_WAIT_FUTEX, 1000000, 0);
	c->left_after = th_ring_reader_nap_left(c->m.r, th_now_ns());
	return NULL;
}

static void test_ring__a_nap_cut_short_by_the_callers_timeout_goes_on_in_the_next_wait(void **state)
{
	(void)state;
	/* Four times the idle readers: the delay (4 x a wake-up's cost x
	 * readers) reaches the 8 ms cap for any wake-up dearer than 500 ns. */
	static uint32_t idle[4 * MOD_IDLE_READERS];
	struct fixture f;
	mod_open_n(&f, idle, 4 * MOD_IDLE_READERS);
	th_ring_set_wake_delay_max(f.w, 8000000);
	enum { N = 200 };
	struct cut_probe c = { .m = { .r = f.r, .want = N } };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cut_probe_thread, &c), 0);
	uint64_t delay = mod_publish(f.w, N, 1000); /* then nothing: the probe's wait finds nothing */
	pthread_join(t, NULL);
	assert_int_equal(c.m.got, N);
	assert_true(c.m.in_order);
	if (delay < 4000000)
		fail_msg("the writer advised %llu ns, below the 4 ms this test needs", (unsigned long long)delay);
	if (c.left_before <= 2000000)
		fail_msg("the reader was not napping after a busy stream (%llu ns left)",
			 (unsigned long long)c.left_before);
	assert_int_equal(c.cut, 0);
	if (c.left_after == 0)
		fail_msg("a wait cut short by its timeout ended the nap");
	fixture_close(&f);
}

/* A busy stream with moderation turned off at the reader (its bound 0) or
 * at the writer (its cap 0): every record, in order, and never a nap. */
static void run_unmoderated(bool at_reader)
{
	static uint32_t idle[MOD_IDLE_READERS];
	struct fixture f;
	mod_open(&f, idle);
	if (at_reader)
		th_ring_reader_set_max_delay(f.r, 0);
	else
		th_ring_set_wake_delay_max(f.w, 0);
	struct mod_reader m = { .r = f.r, .want = MOD_RECORDS };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, mod_reader_thread, &m), 0);
	uint64_t delay = mod_publish_busy(f.w);
	pthread_join(t, NULL);
	if (at_reader)
		assert_true(delay >= 50000); /* the writer did advise one */
	else
		assert_int_equal(delay, 0);
	assert_int_equal(m.got, MOD_RECORDS);
	assert_true(m.in_order);
	assert_int_equal(th_ring_reader_naps(f.r), 0);
	fixture_close(&f);
}

static void test_ring__a_reader_that_bounds_the_delay_at_zero_never_naps(void **state)
{
	(void)state;
	run_unmoderated(true);
}

static void test_ring__a_writer_capped_at_zero_advises_no_delay(void **state)
{
	(void)state;
	run_unmoderated(false);
}

/*
 * The writer's publish path makes no system call unless a reader sleeps:
 * a child process under a seccomp filter that kills it on any system call but
 * exit publishes with awake readers attached and survives; the same with a
 * sleeping reader dies of SIGSYS (so the check can fail).
 */
static void publish_under_seccomp(struct th_ring_writer *w, int records)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = { sizeof filter / sizeof filter[0], filter };
	uint8_t payload[64] = { 0 };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		_exit(3);
	for (int i = 0; i < records; i++) {
		th_ring_append(w, 1, payload, sizeof payload);
		th_ring_commit(w);
	}
	syscall(SYS_exit_group, 0);
}

static void test_ring__publish_makes_no_syscall_unless_a_reader_sleeps(void **state)
{
	(void)state;
	if (UNDER_TSAN)
		skip(); /* TSan's runtime makes system calls of its own inside atomics */
	struct fixture f;
	fixture_open(&f, 1 << 16, 0);
	th_ring_append(f.w, 1, "warm", 4); /* first clock read, page faults */
	th_ring_commit(f.w);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		publish_under_seccomp(f.w, 10000);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
		skip(); /* seccomp unavailable here */
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* The same with the reader asleep: the wake-up is a syscall, and it shows. */
	th_ring_reader_rejoin(f.r, NULL);
	assert_int_equal(th_ring_reader_arm(f.r), 0);
	pid = fork();
	if (pid == 0)
		publish_under_seccomp(f.w, 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
	th_ring_reader_disarm(f.r);
	fixture_close(&f);
}

/* ---- targeted wake-ups: tags, filters, skipped batches ------------------ */

static void tags_bit(uint64_t *t, unsigned bit)
{
	memset(t, 0, TH_RING_TAG_WORDS * sizeof *t);
	t[bit / 64] |= 1ull << (bit % 64);
}

static void publish_tagged_under_seccomp(struct th_ring_writer *w, int records, unsigned bit)
{
	uint64_t tags[TH_RING_TAG_WORDS];
	tags_bit(tags, bit);
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = { sizeof filter / sizeof filter[0], filter };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		_exit(3);
	for (int i = 0; i < records; i++) {
		th_ring_append(w, 1, "tagged", 6);
		th_ring_commit_tagged(w, tags, 1000 + (uint64_t)i);
	}
	syscall(SYS_exit_group, 0);
}

/* A sleeper with a filter is not woken (no system call at all) for batches
 * its filter does not meet, in either wait mode; one that meets it is. */
static void test_ring__a_filtered_sleeper_is_woken_only_for_batches_that_meet_its_filter(void **state)
{
	(void)state;
	if (UNDER_TSAN)
		skip(); /* TSan's runtime makes system calls of its own inside atomics */
	for (int fd_mode = 0; fd_mode < 2; fd_mode++) {
		struct fixture f;
		fixture_open(&f, 1 << 16, 0);
		uint64_t filter[TH_RING_TAG_WORDS];
		tags_bit(filter, 300);
		th_ring_reader_set_filter(f.r, filter);
		th_ring_append(f.w, 1, "warm", 4);
		th_ring_commit(f.w);
		char buf[16];
		struct th_ring_record rec;
		assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 1);
		struct waiter_args a = { .r = f.r, .mode = fd_mode ? TH_RING_WAIT_FD : TH_RING_WAIT_FUTEX };
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, waiter_thread, &a), 0);
		wait_until_sleeping(f.w, f.id);
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0)
			publish_tagged_under_seccomp(f.w, 500, 301); /* another bit: no wake-up */
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
			skip(); /* seccomp unavailable here */
		}
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		pid = fork();
		if (pid == 0)
			publish_tagged_under_seccomp(f.w, 1, 300); /* its bit: a wake-up, a system call */
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS);
		/* The child's commit did publish before it was killed in the wake-up. */
		uint64_t tags[TH_RING_TAG_WORDS];
		tags_bit(tags, 300);
		th_ring_append(f.w, 1, "mine", 4);
		th_ring_commit_tagged(f.w, tags, 2000);
		pthread_join(t, NULL);
		assert_int_equal(a.result, 1);
		fixture_close(&f);
	}
}

/* Batches a reader was not woken for are jumped over, never read, whatever
 * their volume: the reader is neither lapped nor slow for them, learns the
 * last one's note, and reads the next batch that is for it. */
/* A wait does not end on batches the reader was not woken for: it jumps
 * over them (as a read would) and sleeps on, to its timeout. Before, a
 * subscriber filtered away from a busy ring returned from every timeout as
 * if there were work (the head had moved), and woke 100 times a second. */
static void test_ring__a_wait_is_not_ended_by_batches_for_others(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 1u << 16, 0);
	uint64_t filter[TH_RING_TAG_WORDS], other[TH_RING_TAG_WORDS], mine[TH_RING_TAG_WORDS];
	tags_bit(filter, 7);
	tags_bit(other, 8);
	tags_bit(mine, 7);
	th_ring_reader_set_filter(f.r, filter);
	for (int i = 0; i < 3; i++) {
		th_ring_append(f.w, 1, "other", 5);
		th_ring_commit_tagged(f.w, other, 100 + (uint64_t)i);
	}
	assert_int_equal(th_ring_wait(f.r, TH_RING_WAIT_FUTEX, 20000000, 0), 0);
	uint64_t note = 0;
	assert_int_equal(th_ring_reader_skips(f.r, &note), 1);
	assert_int_equal(note, 102);
	assert_int_equal(th_ring_reader_pos(f.r), th_ring_head(f.w));
	/* One for it: the wait ends, and the read returns it. */
	th_ring_append(f.w, 1, "mine", 4);
	th_ring_commit_tagged(f.w, mine, 200);
	assert_int_equal(th_ring_wait(f.r, TH_RING_WAIT_FUTEX, 20000000, 0), 1);
	char buf[16];
	struct th_ring_record rec;
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 1);
	assert_memory_equal(buf, "mine", 4);
	fixture_close(&f);
}

static void test_ring__a_reader_jumps_over_batches_it_was_not_woken_for_and_is_never_lapped_by_them(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 4096, 1ull << 32);
	uint64_t filter[TH_RING_TAG_WORDS], other[TH_RING_TAG_WORDS], mine[TH_RING_TAG_WORDS];
	tags_bit(filter, 7);
	tags_bit(other, 8);
	tags_bit(mine, 7);
	th_ring_reader_set_filter(f.r, filter);
	uint8_t payload[200] = { 0 };
	for (int i = 0; i < 1000; i++) { /* 50 laps of a 4 KiB ring */
		th_ring_append(f.w, 1, payload, sizeof payload);
		th_ring_commit_tagged(f.w, other, 10 + (uint64_t)i);
	}
	struct th_ring_lag lag;
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_false(lag.lapped);
	assert_false(lag.invalid);
	assert_int_equal(lag.lag_bytes, 0);
	assert_int_equal(lag.age_ns, 0);
	char buf[256];
	struct th_ring_record rec;
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 0);
	uint64_t note = 0;
	assert_int_equal(th_ring_reader_skips(f.r, &note), 1);
	assert_int_equal(note, 1009);
	assert_int_equal(th_ring_reader_pos(f.r), th_ring_head(f.w));

	/* One for it between others: it reads that one only, and its lag is
	 * that batch's (it was woken for it), not the older others'. */
	for (int i = 0; i < 5; i++) {
		th_ring_append(f.w, 1, payload, sizeof payload);
		th_ring_commit_tagged(f.w, other, 2000 + (uint64_t)i);
	}
	th_ring_append(f.w, 1, "mine", 4);
	uint64_t mine_pos = th_ring_head(f.w);
	th_ring_commit_tagged(f.w, mine, 3000);
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_int_equal(lag.read_pos, mine_pos);
	for (int i = 0; i < 3; i++) {
		th_ring_append(f.w, 1, payload, sizeof payload);
		th_ring_commit_tagged(f.w, other, 4000 + (uint64_t)i);
	}
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 1);
	assert_int_equal(rec.pos, mine_pos);
	assert_int_equal(rec.len, 4);
	assert_int_equal(th_ring_reader_skips(f.r, &note), 2);
	assert_int_equal(note, 2004);
	/* The three after it were judged while it had not passed the first
	 * range: it reads them (they are newer than what it was woken for). */
	int n = 0;
	while (th_ring_read(f.r, &rec, buf, sizeof buf) == 1)
		n++;
	assert_int_equal(n, 3);
	/* Now past every range: the next ones are jumped again. */
	for (int i = 0; i < 100; i++) {
		th_ring_append(f.w, 1, payload, sizeof payload);
		th_ring_commit_tagged(f.w, other, 5000 + (uint64_t)i);
	}
	assert_int_equal(th_ring_read(f.r, &rec, buf, sizeof buf), 0);
	assert_int_equal(th_ring_reader_skips(f.r, &note), 3);
	assert_int_equal(note, 5099);
	fixture_close(&f);
}

/* Without a filter, or while wake_any is counted up, every batch is for the
 * reader; an untagged batch (th_ring_commit) is for every reader. */
static void test_ring__wake_any_and_untagged_batches_reach_a_filtered_reader(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 1 << 16, 0);
	uint64_t filter[TH_RING_TAG_WORDS], other[TH_RING_TAG_WORDS];
	tags_bit(filter, 1);
	tags_bit(other, 2);
	th_ring_reader_set_filter(f.r, filter);
	th_ring_reader_wake_any(f.r, 1);
	th_ring_append(f.w, 1, "a", 1);
	th_ring_commit_tagged(f.w, other, 1);
	th_ring_reader_wake_any(f.r, -1);
	th_ring_append(f.w, 1, "b", 1);
	th_ring_commit(f.w);
	th_ring_append(f.w, 1, "c", 1);
	th_ring_commit_tagged(f.w, other, 3);
	th_ring_reader_set_filter(f.r, NULL);
	th_ring_append(f.w, 1, "d", 1);
	th_ring_commit_tagged(f.w, other, 4);
	char buf[8], got[8] = "";
	struct th_ring_record rec;
	int n = 0;
	while (th_ring_read(f.r, &rec, buf, sizeof buf) == 1)
		got[n++] = buf[0];
	assert_string_equal(got, "abd");
	fixture_close(&f);
}

/* A reader that forges its filter word on every commit, or its skip hint,
 * misleads only itself: the writer goes on, and another reader gets every
 * batch meant for it. */
static void test_ring__a_forged_filter_or_skip_hint_misleads_only_its_owner(void **state)
{
	(void)state;
	struct fixture f;
	fixture_open(&f, 1 << 14, 0);
	struct th_ring_reader_fds fds;
	uint32_t bad_id;
	assert_int_equal(th_ring_add_reader(f.w, &bad_id, &fds), 0);
	uint8_t *slot = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds.slot_fd, 0);
	assert_true(slot != MAP_FAILED);
	uint64_t filter[TH_RING_TAG_WORDS];
	tags_bit(filter, 5);
	th_ring_reader_set_filter(f.r, filter);
	char buf[64];
	struct th_ring_record rec;
	int got = 0;
	for (uint32_t i = 0; i < 20000; i++) {
		atomic_store((_Atomic uint32_t *)(void *)(slot + 80), i * 0x9E3779B1u); /* filter_word */
		atomic_store((_Atomic uint64_t *)(void *)(slot + 128 + 8 * (i % 8)), ~0ull << (i % 64));
		atomic_store((_Atomic uint32_t *)(void *)(slot + 84), i & 1); /* wake_any */
		atomic_store((_Atomic uint32_t *)(void *)(slot + 256), i | 1); /* skip_seq, odd */
		uint64_t tags[TH_RING_TAG_WORDS];
		tags_bit(tags, i % 3 == 0 ? 5 : 6);
		th_ring_append(f.w, 1, "x", 1);
		th_ring_commit_tagged(f.w, tags, i);
		while (th_ring_read(f.r, &rec, buf, sizeof buf) == 1)
			got++;
	}
	assert_int_equal(got, (20000 + 2) / 3);
	struct th_ring_lag lag;
	assert_int_equal(th_ring_reader_lag(f.w, f.id, &lag), 0);
	assert_int_equal(lag.lag_bytes, 0);
	munmap(slot, 4096);
	close(fds.ring_fd);
	close(fds.slot_fd);
	close(fds.event_fd);
	fixture_close(&f);
}

/* ---- threads: torn reads and reader-set changes under a running writer -- */

struct hammer {
	struct th_ring_writer *w;
	_Atomic int stop;
	uint64_t published;
};

static void *hammer_writer(void *p)
{
	struct hammer *h = p;
	uint8_t buf[600];
	uint64_t seq = 0;
	while (!atomic_load_explicit(&h->stop, memory_order_relaxed)) {
		int n = 1 + (int)(pattern_word(seq, 5) % 4);
		for (int i = 0; i < n; i++, seq++) {
			uint32_t len = pattern_len(seq, 8, 600);
			pattern_fill(buf, seq, len);
			th_ring_append(h->w, 1, buf, len);
		}
		th_ring_commit(h->w);
	}
	h->published = seq;
	return NULL;
}

static void test_ring__lapped_reader_thread_never_returns_torn_records(void **state)
{
	(void)state;
	/* Small enough that the writer laps the reader all the time. */
	struct th_ring_config cfg = { .capacity = 8192 };
	struct hammer h = { 0 };
	assert_int_equal(th_ring_writer_create(&cfg, &h.w), 0);
	struct th_ring_reader_fds fds;
	uint32_t id;
	assert_int_equal(th_ring_add_reader(h.w, &id, &fds), 0);
	struct th_ring_reader *r;
	assert_int_equal(th_ring_reader_open(&fds, &r, NULL, 0), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, hammer_writer, &h), 0);
	uint8_t buf[600];
	struct th_ring_record rec;
	uint64_t good = 0, laps = 0, last = 0;
	bool have_last = false;
	uint64_t deadline = th_now_ns() + 1500000000ull;
	while (th_now_ns() < deadline) {
		int rc = th_ring_read(r, &rec, buf, sizeof buf);
		if (rc == 1) {
			uint64_t seq = pattern_check(buf, rec.len);
			if (seq == UINT64_MAX)
				fail_msg("torn record at pos %llu", (unsigned long long)rec.pos);
			if (have_last && seq <= last)
				fail_msg("out of order: %llu after %llu", (unsigned long long)seq, (unsigned long long)last);
			last = seq;
			have_last = true;
			good++;
		} else if (rc == -TH_ELAPPED) {
			laps++;
			th_ring_reader_rejoin_oldest(r, NULL);
		} else {
			assert_int_equal(rc, 0);
		}
	}
	atomic_store(&h.stop, 1);
	pthread_join(t, NULL);
	print_message("      %llu records checked, %llu laps, %llu published\n", (unsigned long long)good,
		      (unsigned long long)laps, (unsigned long long)h.published);
	assert_true(good > 100);
	assert_true(laps > 0);
	th_ring_reader_close(r);
	close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	th_ring_writer_destroy(h.w);
}

static void test_ring__readers_come_and_go_while_the_writer_publishes(void **state)
{
	(void)state;
	struct th_ring_config cfg = { .capacity = 1 << 16 };
	struct hammer h = { 0 };
	assert_int_equal(th_ring_writer_create(&cfg, &h.w), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, hammer_writer, &h), 0);
	uint32_t ids[8];
	for (int round = 0; round < 300; round++) {
		for (int i = 0; i < 8; i++) {
			struct th_ring_reader_fds fds;
			assert_int_equal(th_ring_add_reader(h.w, &ids[i], &fds), 0);
			struct th_ring_reader *r;
			assert_int_equal(th_ring_reader_open(&fds, &r, NULL, 0), 0);
			/* Asleep, so that the publisher touches this slot on commit. */
			th_ring_reader_arm(r);
			th_ring_reader_close(r);
			close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
		}
		for (int i = 0; i < 8; i++)
			assert_int_equal(th_ring_remove_reader(h.w, ids[(i * 3) % 8]), 0);
	}
	assert_int_equal(th_ring_remove_reader(h.w, ids[0]), -ENOENT);
	atomic_store(&h.stop, 1);
	pthread_join(t, NULL);
	th_ring_writer_destroy(h.w);
}

/* ---- processes ---------------------------------------------------------- */

/* What a reader process reports back through shared memory. */
struct proc_report {
	_Atomic uint64_t records;
	_Atomic uint64_t laps;
	_Atomic uint64_t corrupt;
	_Atomic uint64_t out_of_order;
	_Atomic uint64_t last_seq;
	_Atomic int done;
};

static struct proc_report *shared_reports(int n)
{
	void *p = mmap(NULL, sizeof(struct proc_report) * (size_t)n, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

/* The body of a reader process: read until the ring closes, check everything. */
static void reader_process(struct th_ring_reader_fds fds, struct proc_report *rep, uint32_t maxlen)
{
	struct th_ring_reader *r;
	if (th_ring_reader_open(&fds, &r, NULL, 0))
		_exit(10);
	uint8_t *buf = malloc(maxlen);
	struct th_ring_record rec;
	uint64_t next = 0;
	for (;;) {
		int rc = th_ring_read(r, &rec, buf, maxlen);
		if (rc == 1) {
			uint64_t seq = pattern_check(buf, rec.len);
			if (seq == UINT64_MAX) {
				atomic_fetch_add(&rep->corrupt, 1);
			} else {
				if (seq != next && !(seq > next && atomic_load(&rep->laps)))
					atomic_fetch_add(&rep->out_of_order, 1);
				next = seq + 1;
				atomic_store_explicit(&rep->last_seq, seq, memory_order_relaxed);
			}
			atomic_fetch_add_explicit(&rep->records, 1, memory_order_relaxed);
		} else if (rc == 0) {
			th_ring_wait(r, TH_RING_WAIT_FUTEX, 100000000, 20000);
		} else if (rc == -TH_ELAPPED) {
			atomic_fetch_add(&rep->laps, 1);
			th_ring_reader_rejoin_oldest(r, NULL);
		} else if (rc == -TH_ECLOSED) {
			break;
		} else {
			_exit(11);
		}
	}
	atomic_store(&rep->done, 1);
	free(buf);
	th_ring_reader_close(r);
	_exit(0);
}

static pid_t spawn_reader(struct th_ring_writer *w, uint32_t *id, struct proc_report *rep, uint32_t maxlen)
{
	struct th_ring_reader_fds fds;
	assert_int_equal(th_ring_add_reader(w, id, &fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		reader_process(fds, rep, maxlen);
	close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	return pid;
}

/* Publish `count` records of random sizes in random batches. With flow
 * control, wait while any live reader is more than half a ring behind (a
 * test device: the hub never waits). */
static void publish_pattern(struct th_ring_writer *w, uint64_t count, uint32_t maxlen, const uint32_t *ids,
			    int nids, const bool *alive)
{
	uint8_t *buf = malloc(maxlen);
	uint64_t cap = th_ring_capacity(w), checked_at = 0;
	for (uint64_t seq = 0; seq < count;) {
		int n = 1 + (int)(pattern_word(seq, 3) % 8);
		for (int i = 0; i < n && seq < count; i++, seq++) {
			uint32_t len = pattern_len(seq, 8, maxlen);
			pattern_fill(buf, seq, len);
			assert_int_equal(th_ring_append(w, 1, buf, len), 0);
		}
		th_ring_commit(w);
		uint64_t head = th_ring_head(w);
		if (!nids || head - checked_at < cap / 8)
			continue;
		checked_at = head;
		for (int i = 0; i < nids; i++) {
			struct th_ring_lag lag;
			while (alive[i] && th_ring_reader_lag(w, ids[i], &lag) == 0 && lag.lag_bytes > cap / 2)
				sched_yield();
		}
	}
	free(buf);
}

static uint64_t record_count(void)
{
	/* Ten million records in the plain and ASan runs; the count can be
	 * raised from the environment for longer soak runs. Under TSan one
	 * million: TSan cannot see across processes, so these tests only check
	 * each process's own code there, and 10 M records take minutes. */
	const char *e = getenv("TH_RING_RECORDS");
	return e ? strtoull(e, NULL, 10) : UNDER_TSAN ? 1000000ull : 10000000ull;
}

static void test_ring__eight_reader_processes_see_every_record_in_order(void **state)
{
	(void)state;
	enum { N = 8 };
	const uint64_t count = record_count();
	const uint32_t maxlen = 120;
	struct th_ring_config cfg = { .capacity = 1 << 20, .initial_pos = (1ull << 32) - 4096 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct proc_report *rep = shared_reports(N);
	uint32_t ids[N];
	bool alive[N];
	pid_t pids[N];
	for (int i = 0; i < N; i++) {
		pids[i] = spawn_reader(w, &ids[i], &rep[i], maxlen);
		alive[i] = true;
	}
	uint64_t t0 = th_now_ns();
	publish_pattern(w, count, maxlen, ids, N, alive);
	uint64_t t1 = th_now_ns();
	th_ring_writer_destroy(w);
	for (int i = 0; i < N; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		assert_int_equal(rep[i].corrupt, 0);
		assert_int_equal(rep[i].laps, 0);
		assert_int_equal(rep[i].out_of_order, 0);
		assert_int_equal(rep[i].records, count);
		assert_int_equal(rep[i].last_seq, count - 1);
	}
	print_message("      %llu records to %d reader processes in %.2f s\n", (unsigned long long)count, N,
		      (double)(t1 - t0) / 1e9);
	munmap(rep, sizeof *rep * N);
}

static void test_ring__unthrottled_writer_laps_reader_processes_without_corruption(void **state)
{
	(void)state;
	enum { N = 8 };
	const uint64_t count = record_count();
	const uint32_t maxlen = 120;
	struct th_ring_config cfg = { .capacity = 1 << 16 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct proc_report *rep = shared_reports(N);
	uint32_t ids[N];
	pid_t pids[N];
	for (int i = 0; i < N; i++)
		pids[i] = spawn_reader(w, &ids[i], &rep[i], maxlen);
	publish_pattern(w, count, maxlen, NULL, 0, NULL);
	th_ring_writer_destroy(w);
	uint64_t laps = 0;
	for (int i = 0; i < N; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_int_equal(rep[i].corrupt, 0);
		assert_int_equal(rep[i].out_of_order, 0);
		assert_true(rep[i].records > 0);
		laps += rep[i].laps;
	}
	print_message("      %llu laps detected across %d readers\n", (unsigned long long)laps, N);
	munmap(rep, sizeof *rep * N);
}

static void test_ring__reader_process_writing_into_the_ring_dies_with_sigsegv(void **state)
{
	(void)state;
	struct th_ring_config cfg = { .capacity = 4096 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct th_ring_reader_fds fds;
	uint32_t id;
	assert_int_equal(th_ring_add_reader(w, &id, &fds), 0);
	th_ring_append(w, 1, "precious", 8);
	th_ring_commit(w);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* Sanitizers catch SIGSEGV to report it; we want the plain signal. */
		signal(SIGSEGV, SIG_DFL);
		volatile uint64_t *map = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fds.ring_fd, 0);
		if ((void *)map == MAP_FAILED)
			_exit(2);
		map[4096 / 8 + 2] = 0xbad; /* the payload of the first record */
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
	struct th_ring_reader *r;
	assert_int_equal(th_ring_reader_open(&fds, &r, NULL, 0), 0);
	th_ring_reader_rejoin_oldest(r, NULL);
	char buf[16];
	struct th_ring_record rec;
	assert_int_equal(th_ring_read(r, &rec, buf, sizeof buf), 1);
	assert_memory_equal(buf, "precious", 8);
	th_ring_reader_close(r);
	close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	th_ring_writer_destroy(w);
}

static void test_ring__reader_killed_mid_read_leaves_writer_and_others_unaffected(void **state)
{
	(void)state;
	enum { N = 4 };
	const uint64_t count = 2000000;
	const uint32_t maxlen = 120;
	struct th_ring_config cfg = { .capacity = 1 << 18 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct proc_report *rep = shared_reports(N);
	uint32_t ids[N];
	bool alive[N];
	pid_t pids[N];
	for (int i = 0; i < N; i++) {
		pids[i] = spawn_reader(w, &ids[i], &rep[i], maxlen);
		alive[i] = true;
	}
	publish_pattern(w, count / 4, maxlen, ids, N, alive);
	/* Kill one while it is reading, then reclaim its slot as the hub would
	 * when its socket closes. */
	while (atomic_load(&rep[0].records) == 0)
		sched_yield();
	kill(pids[0], SIGKILL);
	int status;
	assert_int_equal(waitpid(pids[0], &status, 0), pids[0]);
	assert_true(WIFSIGNALED(status));
	alive[0] = false;
	assert_int_equal(th_ring_remove_reader(w, ids[0]), 0);
	/* Pick the sequence up where the first part ended. */
	uint8_t *buf = malloc(maxlen);
	for (uint64_t seq = count / 4; seq < count; seq++) {
		uint32_t len = pattern_len(seq, 8, maxlen);
		pattern_fill(buf, seq, len);
		th_ring_append(w, 1, buf, len);
		th_ring_commit(w);
		if (seq % 256 == 0)
			for (int i = 1; i < N; i++) {
				struct th_ring_lag lag;
				while (th_ring_reader_lag(w, ids[i], &lag) == 0 && lag.lag_bytes > cfg.capacity / 2)
					sched_yield();
			}
	}
	free(buf);
	th_ring_writer_destroy(w);
	for (int i = 1; i < N; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_int_equal(rep[i].corrupt, 0);
		assert_int_equal(rep[i].laps, 0);
		assert_int_equal(rep[i].out_of_order, 0);
		assert_int_equal(rep[i].records, count);
	}
	munmap(rep, sizeof *rep * N);
}

static void test_ring__stopped_reader_does_not_hold_up_the_writer(void **state)
{
	(void)state;
	const uint32_t maxlen = 120;
	struct th_ring_config cfg = { .capacity = 1 << 16 };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	struct proc_report *rep = shared_reports(1);
	uint32_t id;
	pid_t pid = spawn_reader(w, &id, rep, maxlen);
	publish_pattern(w, 200, maxlen, NULL, 0, NULL); /* well under the ring's size */
	while (atomic_load(&rep->records) < 200)
		sched_yield();
	kill(pid, SIGSTOP);
	int status;
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	/* Many times the ring's size: the writer must finish without waiting. */
	publish_pattern(w, 200000, maxlen, NULL, 0, NULL);
	struct th_ring_lag lag;
	assert_int_equal(th_ring_reader_lag(w, id, &lag), 0);
	assert_true(lag.lapped);
	assert_int_equal(rep->laps, 0);
	kill(pid, SIGCONT);
	/* Once it runs again it learns it was lapped. */
	for (int i = 0; i < 5000 && atomic_load(&rep->laps) == 0; i++)
		usleep(1000);
	assert_true(rep->laps >= 1);
	th_ring_writer_destroy(w);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(rep->corrupt, 0);
	munmap(rep, sizeof *rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring__record_round_trips_with_type_flags_and_time),
		cmocka_unit_test(test_ring__batch_is_invisible_until_commit_then_visible_at_once),
		cmocka_unit_test(test_ring__records_wrap_around_the_end_of_the_buffer),
		cmocka_unit_test(test_ring__positions_beyond_capacity_and_beyond_2_to_the_32_work),
		cmocka_unit_test(test_ring__reader_detects_lap_and_rejoins),
		cmocka_unit_test(test_ring__evicted_reader_sees_eviction_reason_then_rejoins),
		cmocka_unit_test(test_ring__a_position_inside_a_record_is_invalid_never_read_as_a_time),
		cmocka_unit_test(test_ring__an_eviction_counts_once_until_a_rejoin_and_the_slot_only_mirrors_it),
		cmocka_unit_test(test_ring__a_reader_that_blocks_its_wakeup_fd_cannot_block_the_writer),
		cmocka_unit_test(test_ring__lag_reports_bytes_age_and_requested_timeout),
		cmocka_unit_test(test_ring__refuses_oversize_record_and_batch),
		cmocka_unit_test(test_ring__sixteen_mib_record_in_a_big_ring),
		cmocka_unit_test(test_ring__gathers_payload_from_iovecs_of_odd_sizes),
		cmocka_unit_test(test_ring__reader_refuses_incompatible_segment),
		cmocka_unit_test(test_ring__ring_fd_cannot_be_written_or_mapped_writable),
		cmocka_unit_test(test_ring__closed_ring_reports_closed_after_everything_is_read),
		cmocka_unit_test(test_ring__futex_sleeper_is_woken_by_commit),
		cmocka_unit_test(test_ring__fd_sleeper_is_woken_through_its_pipe),
		cmocka_unit_test(test_ring__a_filtered_sleeper_is_woken_only_for_batches_that_meet_its_filter),
		cmocka_unit_test(test_ring__a_reader_jumps_over_batches_it_was_not_woken_for_and_is_never_lapped_by_them),
		cmocka_unit_test(test_ring__a_wait_is_not_ended_by_batches_for_others),
		cmocka_unit_test(test_ring__wake_any_and_untagged_batches_reach_a_filtered_reader),
		cmocka_unit_test(test_ring__a_forged_filter_or_skip_hint_misleads_only_its_owner),
		cmocka_unit_test(test_ring__eviction_wakes_a_sleeping_reader),
		cmocka_unit_test(test_ring__wait_times_out_when_nothing_arrives),
		cmocka_unit_test(test_ring__a_kick_ends_a_wait_that_nothing_else_would),
		cmocka_unit_test(test_ring__a_busy_stream_is_read_in_rounds_of_the_writers_delay_and_an_idle_one_wakes_at_once),
		cmocka_unit_test(test_ring__a_nap_cut_short_by_the_callers_timeout_goes_on_in_the_next_wait),
		cmocka_unit_test(test_ring__a_reader_that_bounds_the_delay_at_zero_never_naps),
		cmocka_unit_test(test_ring__a_writer_capped_at_zero_advises_no_delay),
		cmocka_unit_test(test_ring__publish_makes_no_syscall_unless_a_reader_sleeps),
		cmocka_unit_test(test_ring__lapped_reader_thread_never_returns_torn_records),
		cmocka_unit_test(test_ring__readers_come_and_go_while_the_writer_publishes),
		cmocka_unit_test(test_ring__eight_reader_processes_see_every_record_in_order),
		cmocka_unit_test(test_ring__unthrottled_writer_laps_reader_processes_without_corruption),
		cmocka_unit_test(test_ring__reader_process_writing_into_the_ring_dies_with_sigsegv),
		cmocka_unit_test(test_ring__reader_killed_mid_read_leaves_writer_and_others_unaffected),
		cmocka_unit_test(test_ring__stopped_reader_does_not_hold_up_the_writer),
	};
	return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
