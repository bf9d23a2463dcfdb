/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohub-bench ring: the ring against the physical floor, in one run.
 *
 *   floor_ping    one-way latency of a raw cross-process cache-line store seen
 *                 by a spinning process (the best any shared-memory handoff can do)
 *   floor_futex   latency of one raw FUTEX_WAKE to 1, 8 or 64 processes asleep
 *                 in FUTEX_WAIT on one word (the best any sleeping handoff to
 *                 that many processes can do)
 *   floor_wake    one raw FUTEX_WAKE at 1,000/s to one process, or to one of
 *                 256 in turn (each asleep 256 ms: the sparse scenario's floor)
 *   ring_latency  publish (stamp taken just before th_ring_commit) to the moment
 *                 each reader process has copied the record out, per wait mode
 *                 (spin, futex, fd) and reader count (1, 8, 64)
 *   ring_publish  records per second a writer publishes with no sleeping reader
 *
 * Each floor and the ring modes compared with it are measured in rounds,
 * interleaved (floor, ring, floor, ring, ...; ABAB) and merged: measured one
 * after the other, a floor swung 0.3x-1.7x between runs on a shared host, and
 * a ratio of two measurements minutes apart measured the host.
 *
 * Latency samples are taken one publication at a time: the writer waits until
 * every reader has the record (and, in the sleeping modes, until every reader
 * is asleep again) before the next, so that each sample measures a wake-up,
 * not a queue. "wake_all" is, per publication, the time until the last reader
 * had it.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "shm/ring.h"
#include "common/th_atomic.h"
#include "common/th_error.h"
#include "common/th_time.h"

struct opts {
	bool json;
	bool quick;
	double scale; /* multiplies sample counts and durations */
	bool wake_only; /* only the sparse stream's floor (floor_wake) */
};

static void emit(const struct opts *o, const char *name, const char *extra, const struct th_hist *h)
{
	th_hist_print_json(stdout, name, extra, h);
	if (!o->json)
		return;
	fprintf(stderr, "%-14s %-28s p50 %7.2f us  p99 %8.2f us  max %9.2f us  (%llu samples)\n", name,
		extra ? extra : "", th_hist_quantile(h, 0.5) / 1e3, th_hist_quantile(h, 0.99) / 1e3, h->max / 1e3,
		(unsigned long long)h->count);
}

static void *shared_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, 0, n);
	return p;
}

static long futex_call(_Atomic uint32_t *w, int op, uint32_t val)
{
	return syscall(SYS_futex, (uint32_t *)w, op, val, NULL, NULL, 0);
}

static void pause_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };
	nanosleep(&ts, NULL);
}

/* One measurement's rounds, merged: every sample, and per publication the
 * time until the last reader had it. */
struct acc {
	struct th_hist all, wake_all;
	uint64_t sent;
	int rounds;
};

static void acc_init(struct acc *a)
{
	memset(a, 0, sizeof *a);
	th_hist_init(&a->all);
	th_hist_init(&a->wake_all);
}

static void acc_round(struct acc *a, const struct th_hist *samples, const _Atomic uint64_t *slowest, uint64_t sent)
{
	th_hist_merge(&a->all, samples);
	for (uint64_t i = 0; slowest && i < sent; i++)
		th_hist_add(&a->wake_all, atomic_load(&slowest[i]));
	a->sent += sent;
	a->rounds++;
}

/* extra: the record's own fields, then the merged wake-all quantiles. */
static void acc_emit(const struct opts *o, const char *name, const char *extra, const struct acc *a)
{
	char buf[320];
	int n = snprintf(buf, sizeof buf, "%s%s\"rounds\":%d", extra ? extra : "", extra ? "," : "", a->rounds);
	if (a->wake_all.count)
		snprintf(buf + n, sizeof buf - (size_t)n, ",\"publications\":%llu,\"wake_all_p50_ns\":%llu,\"wake_all_p99_ns\":%llu",
			 (unsigned long long)a->sent, (unsigned long long)th_hist_quantile(&a->wake_all, 0.5),
			 (unsigned long long)th_hist_quantile(&a->wake_all, 0.99));
	emit(o, name, buf, &a->all);
}

/* ---- floors ---------------------------------------------------------- */

struct ping_area {
	_Alignas(64) th_atomic_u64 stamp; /* written by the sender */
	_Alignas(64) th_atomic_u64 ack;   /* written by the receiver */
	struct th_hist hist;
};

static void floor_ping(uint64_t n, struct acc *acc)
{
	struct ping_area *a = shared_alloc(sizeof *a);
	th_hist_init(&a->hist);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		for (uint64_t i = 1; i <= n; i++) {
			uint64_t s;
			/* Pairs with the sender's store-release of the stamp. */
			while ((s = th_load_acquire(&a->stamp)) == 0)
				th_cpu_relax();
			th_hist_add(&a->hist, th_now_ns() - s);
			th_store_relaxed(&a->stamp, 0);
			th_store_release(&a->ack, i);
		}
		_exit(0);
	}
	for (uint64_t i = 1; i <= n; i++) {
		/* A few hundred ns of jitter so the two sides do not fall in lockstep. */
		uint64_t until = th_now_ns() + 200 + (i * 7919) % 400;
		while (th_now_ns() < until)
			th_cpu_relax();
		th_store_release(&a->stamp, th_now_ns());
		while (th_load_acquire(&a->ack) != i)
			th_cpu_relax();
	}
	waitpid(pid, NULL, 0);
	acc_round(acc, &a->hist, NULL, n);
	munmap(a, sizeof *a);
}

/* How the writer waits for its readers' acknowledgements, in the floor and
 * in the ring alike. One reader: yielding, not sleeping (a sender whose CPU
 * goes idle changes where and how fast the wakee runs, and the floor must not
 * differ in that). Several sleeping readers: sleeping, as the hub's writer
 * sleeps in its binlog read; a yielding writer would take a share of the two
 * cores the readers need, and measure itself. */
static void wait_acks(_Atomic uint64_t *acks, uint64_t want, int nreaders, bool spin_mode)
{
	while (atomic_load_explicit(acks, memory_order_acquire) < want) {
		if (nreaders == 1 && spin_mode)
			th_cpu_relax();
		else if (nreaders == 1 || spin_mode)
			sched_yield();
		else
			pause_us(20);
	}
}

static void atomic_max(_Atomic uint64_t *p, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(p, memory_order_relaxed);
	while (cur < v && !atomic_compare_exchange_weak_explicit(p, &cur, v, memory_order_relaxed,
								 memory_order_relaxed))
		;
}

/* The floor of every sleeping handoff: N processes asleep in FUTEX_WAIT on one
 * word, one FUTEX_WAKE for all of them, each stamping when it runs. Nothing
 * else: no ring, no copy. */
struct futex_area {
	_Alignas(64) _Atomic uint32_t word;
	_Alignas(64) th_atomic_u64 stamp;
	_Alignas(64) _Atomic uint64_t acks;
	_Atomic int ready;
};

struct asleep_flag {
	_Alignas(64) _Atomic uint32_t v; /* one cache line per reader, like the ring's slots */
};

static void floor_futex(int nreaders, uint64_t samples, struct acc *acc)
{
	struct futex_area *a = shared_alloc(sizeof *a);
	struct asleep_flag *asleep = shared_alloc((size_t)nreaders * sizeof *asleep);
	struct th_hist *hist = shared_alloc((size_t)nreaders * sizeof *hist);
	_Atomic uint64_t *slowest = shared_alloc(samples * sizeof *slowest);
	pid_t *pids = calloc((size_t)nreaders, sizeof *pids);
	for (int i = 0; i < nreaders; i++) {
		th_hist_init(&hist[i]);
		fflush(NULL);
		pids[i] = fork();
		if (pids[i] == 0) {
			atomic_fetch_add(&a->ready, 1);
			for (uint64_t k = 1; k <= samples; k++) {
				for (;;) {
					uint32_t seen = atomic_load(&a->word);
					if (seen == (uint32_t)k)
						break;
					atomic_store(&asleep[i].v, 1);
					futex_call(&a->word, FUTEX_WAIT, seen);
				}
				uint64_t lat = th_now_ns() - th_load_relaxed(&a->stamp);
				th_hist_add(&hist[i], lat);
				atomic_max(&slowest[k - 1], lat);
				atomic_fetch_add_explicit(&a->acks, 1, memory_order_release);
			}
			_exit(0);
		}
	}
	while (atomic_load(&a->ready) < nreaders)
		pause_us(100);
	for (uint64_t k = 1; k <= samples; k++) {
		for (int i = 0; i < nreaders; i++)
			while (!atomic_load(&asleep[i].v))
				pause_us(20);
		for (int i = 0; i < nreaders; i++)
			atomic_store(&asleep[i].v, 0);
		pause_us(30); /* let them reach the kernel's wait queue */
		th_store_relaxed(&a->stamp, th_now_ns());
		atomic_store(&a->word, (uint32_t)k);
		futex_call(&a->word, FUTEX_WAKE, INT_MAX);
		wait_acks(&a->acks, k * (uint64_t)nreaders, nreaders, false);
	}
	struct th_hist all;
	th_hist_init(&all);
	for (int i = 0; i < nreaders; i++) {
		waitpid(pids[i], NULL, 0);
		th_hist_merge(&all, &hist[i]);
	}
	acc_round(acc, &all, slowest, samples);
	free(pids);
	munmap(slowest, samples * sizeof *slowest);
	munmap(hist, (size_t)nreaders * sizeof *hist);
	munmap(asleep, (size_t)nreaders * sizeof *asleep);
	munmap(a, sizeof *a);
}

/* The floor of a sparse stream (the e2e sparse scenario): N processes, each
 * asleep on a word of its own; at a steady rate (1,000/s) the writer wakes
 * one of them, in turn, with one FUTEX_WAKE, and it stamps when it runs. With
 * N = 1 the process is woken every millisecond; with N = 256 each sleeps a
 * quarter of a second between wake-ups, and its cache, its TLB and its CPU's
 * idle state are cold: what that costs any sleeping handoff, nothing else. */
struct cold_word {
	_Alignas(64) _Atomic uint32_t word;
	_Atomic uint32_t asleep;
};

static void floor_wake(int nprocs, unsigned rate_hz, uint64_t samples, struct acc *acc)
{
	struct cold_word *w = shared_alloc((size_t)nprocs * sizeof *w);
	struct futex_area *a = shared_alloc(sizeof *a); /* stamp, acks, ready */
	struct th_hist *hist = shared_alloc((size_t)nprocs * sizeof *hist);
	pid_t *pids = calloc((size_t)nprocs, sizeof *pids);
	for (int i = 0; i < nprocs; i++) {
		th_hist_init(&hist[i]);
		fflush(NULL);
		pids[i] = fork();
		if (pids[i] == 0) {
			atomic_fetch_add(&a->ready, 1);
			for (uint32_t k = 1;; k++) {
				for (;;) {
					uint32_t seen = atomic_load(&w[i].word);
					if (seen == k || seen == UINT32_MAX)
						break;
					atomic_store(&w[i].asleep, 1);
					futex_call(&w[i].word, FUTEX_WAIT, seen);
				}
				if (atomic_load(&w[i].word) == UINT32_MAX)
					_exit(0);
				th_hist_add(&hist[i], th_now_ns() - th_load_relaxed(&a->stamp));
				atomic_fetch_add_explicit(&a->acks, 1, memory_order_release);
			}
		}
	}
	while (atomic_load(&a->ready) < nprocs)
		pause_us(100);
	uint64_t period = 1000000000ull / rate_hz, next = th_now_ns() + period;
	uint32_t *turns = calloc((size_t)nprocs, sizeof *turns);
	for (uint64_t k = 0; k < samples; k++) {
		int i = (int)(k % (uint64_t)nprocs);
		struct timespec ts = { (time_t)(next / 1000000000ull), (long)(next % 1000000000ull) };
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		next += period;
		/* Still busy with its previous turn (not at this rate, but never
		 * stamp a wake-up the process does not sleep for). */
		while (!atomic_load(&w[i].asleep) || atomic_load(&a->acks) < k)
			pause_us(20);
		atomic_store(&w[i].asleep, 0);
		th_store_relaxed(&a->stamp, th_now_ns());
		atomic_store(&w[i].word, ++turns[i]);
		futex_call(&w[i].word, FUTEX_WAKE, 1);
	}
	while (atomic_load(&a->acks) < samples)
		pause_us(100);
	struct th_hist all;
	th_hist_init(&all);
	for (int i = 0; i < nprocs; i++) {
		atomic_store(&w[i].word, UINT32_MAX);
		futex_call(&w[i].word, FUTEX_WAKE, 1);
		waitpid(pids[i], NULL, 0);
		th_hist_merge(&all, &hist[i]);
	}
	acc_round(acc, &all, NULL, samples);
	free(turns);
	free(pids);
	munmap(hist, (size_t)nprocs * sizeof *hist);
	munmap(a, sizeof *a);
	munmap(w, (size_t)nprocs * sizeof *w);
}

/* A sparse stream's wake-ups: one process woken 1,000 times a second, and
 * 256 woken in turn at the same rate (each every 256 ms), ABAB. */
static void sparse_wakes(const struct opts *o, int rounds)
{
	struct acc hot, cold;
	acc_init(&hot), acc_init(&cold);
	uint64_t samples = (uint64_t)(8000 * o->scale);
	for (int r = 0; r < rounds; r++) {
		floor_wake(1, 1000, samples / rounds, &hot);
		floor_wake(256, 1000, samples / rounds, &cold);
	}
	acc_emit(o, "floor_wake", "\"readers\":1,\"rate\":1000", &hot);
	acc_emit(o, "floor_wake", "\"readers\":256,\"rate\":1000", &cold);
}

/* ---- ring latency ------------------------------------------------------ */

struct lat_shared {
	_Alignas(64) _Atomic uint64_t acks;
	_Atomic int ready;
	_Atomic int failed;
	_Atomic uint64_t *slowest; /* per publication: the latest reader's latency */
	struct th_hist hist[];     /* one per reader */
};

struct lat_msg {
	uint64_t stamp;
	uint64_t index;
};


static void ring_reader_proc(struct th_ring_reader_fds fds, enum th_ring_wait_mode mode, struct lat_shared *sh,
			     int idx, uint64_t samples)
{
	struct th_ring_reader *r;
	if (th_ring_reader_open(&fds, &r, NULL, 0))
		_exit(1);
	/* Each sample is one wake-up: no moderation (it batches a busy stream,
	 * and a publication here waits for every reader to be asleep). */
	th_ring_reader_set_max_delay(r, 0);
	int ep = -1;
	if (mode == TH_RING_WAIT_FD) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		epoll_ctl(ep, EPOLL_CTL_ADD, th_ring_reader_event_fd(r), &ev);
	}
	atomic_fetch_add(&sh->ready, 1);
	struct th_hist *h = &sh->hist[idx];
	uint64_t got = 0;
	while (got < samples) {
		struct th_ring_record rec;
		struct lat_msg msg;
		int rc = th_ring_read(r, &rec, &msg, sizeof msg);
		if (rc == 1) {
			uint64_t lat = th_now_ns() - msg.stamp;
			th_hist_add(h, lat);
			atomic_max(&sh->slowest[msg.index], lat);
			got++;
			atomic_fetch_add_explicit(&sh->acks, 1, memory_order_release);
			continue;
		}
		if (rc == -TH_ECLOSED)
			break;
		if (rc < 0) {
			atomic_store(&sh->failed, rc);
			break;
		}
		if (mode == TH_RING_WAIT_FD) {
			if (th_ring_reader_arm(r) == 0) {
				struct epoll_event ev;
				epoll_wait(ep, &ev, 1, 1000);
				th_ring_reader_disarm(r);
			}
		} else {
			/* Sleeping mode: no spinning, to measure the wake-up itself. */
			th_ring_wait(r, mode, 1000000000, 0);
		}
	}
	th_ring_reader_close(r);
	_exit(0);
}

static bool all_asleep(struct th_ring_writer *w, const uint32_t *ids, int n)
{
	for (int i = 0; i < n; i++) {
		struct th_ring_lag lag;
		if (th_ring_reader_lag(w, ids[i], &lag) || !lag.sleeping)
			return false;
	}
	return true;
}

static void ring_latency(enum th_ring_wait_mode mode, int nreaders, uint64_t samples, double max_seconds,
			 struct acc *acc)
{
	struct th_ring_config cfg = { .capacity = 1 << 20 };
	struct th_ring_writer *w;
	if (th_ring_writer_create(&cfg, &w)) {
		fprintf(stderr, "ring create failed\n");
		exit(1);
	}
	size_t shsize = sizeof(struct lat_shared) + (size_t)nreaders * sizeof(struct th_hist);
	struct lat_shared *sh = shared_alloc(shsize);
	sh->slowest = shared_alloc(samples * sizeof(uint64_t));
	uint32_t *ids = calloc((size_t)nreaders, sizeof *ids);
	pid_t *pids = calloc((size_t)nreaders, sizeof *pids);
	for (int i = 0; i < nreaders; i++) {
		th_hist_init(&sh->hist[i]);
		struct th_ring_reader_fds fds;
		if (th_ring_add_reader(w, &ids[i], &fds)) {
			fprintf(stderr, "add_reader failed\n");
			exit(1);
		}
		fflush(NULL);
		pids[i] = fork();
		if (pids[i] == 0)
			ring_reader_proc(fds, mode, sh, i, samples);
		close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	}
	while (atomic_load(&sh->ready) < nreaders)
		pause_us(100);

	uint64_t deadline = th_now_ns() + (uint64_t)(max_seconds * 1e9);
	uint64_t sent = 0;
	bool sleeping_mode = mode != TH_RING_WAIT_SPIN;
	for (; sent < samples && th_now_ns() < deadline; sent++) {
		if (sleeping_mode) {
			while (!all_asleep(w, ids, nreaders))
				pause_us(20);
			pause_us(30); /* asleep in the kernel, not on the way there */
		} else {
			uint64_t until = th_now_ns() + 300 + (sent * 7919) % 500;
			while (th_now_ns() < until)
				th_cpu_relax();
		}
		struct lat_msg msg = { th_now_ns(), sent };
		/* As the hub does: one clock read per transaction, given to the ring. */
		th_ring_set_batch_time(w, msg.stamp);
		th_ring_append(w, 1, &msg, sizeof msg);
		th_ring_commit(w);
		wait_acks(&sh->acks, (sent + 1) * (uint64_t)nreaders, nreaders, !sleeping_mode);
	}
	th_ring_writer_destroy(w); /* readers that did not get all samples see the ring closed */
	struct th_hist all;
	th_hist_init(&all);
	for (int i = 0; i < nreaders; i++) {
		waitpid(pids[i], NULL, 0);
		th_hist_merge(&all, &sh->hist[i]);
	}
	if (atomic_load(&sh->failed))
		fprintf(stderr, "ring_latency: a reader failed: %s\n", th_strerror(atomic_load(&sh->failed)));
	acc_round(acc, &all, sh->slowest, sent);
	free(ids);
	free(pids);
	munmap(sh->slowest, samples * sizeof(uint64_t));
	munmap(sh, shsize);
}

/* ---- publish throughput ------------------------------------------------ */

/* writer_time: the writer gives each batch its time (th_ring_set_batch_time),
 * as a writer that stamps a whole socket read of transactions at once can;
 * otherwise the ring reads the clock at each batch's first record, as it does
 * for a writer that gives none (in this VM the vDSO clock costs about 30 ns,
 * as much as the rest of a 64-byte publication). */
static void ring_publish(const struct opts *o, uint32_t bytes, int batch, bool writer_time)
{
	struct th_ring_config cfg = { .capacity = 1 << 24 };
	struct th_ring_writer *w;
	if (th_ring_writer_create(&cfg, &w))
		exit(1);
	uint8_t *payload = calloc(1, bytes);
	/* Warm up: fault the ring's pages in once, as a running hub has. */
	for (uint64_t done = 0; done < cfg.capacity; done += bytes + 16) {
		th_ring_append(w, 1, payload, bytes);
		th_ring_commit(w);
	}
	double seconds = o->quick ? 0.3 : 1.0;
	uint64_t records = 0;
	uint64_t t0 = th_now_ns(), t1 = t0;
	do {
		for (int k = 0; k < 64; k++) {
			if (writer_time)
				th_ring_set_batch_time(w, t1);
			for (int i = 0; i < batch; i++)
				th_ring_append(w, 1, payload, bytes);
			th_ring_commit(w);
		}
		records += 64 * (uint64_t)batch;
		t1 = th_now_ns();
	} while (t1 - t0 < (uint64_t)(seconds * 1e9));
	double s = (double)(t1 - t0) / 1e9;
	printf("{\"name\":\"ring_publish\",\"record_bytes\":%u,\"batch\":%d,\"batch_time\":\"%s\",\"readers\":0,"
	       "\"records_per_s\":%.0f,\"bytes_per_s\":%.0f,\"seconds\":%.3f}\n",
	       bytes, batch, writer_time ? "writer" : "ring_clock", (double)records / s, (double)records * bytes / s, s);
	fflush(stdout);
	if (o->json)
		fprintf(stderr, "ring_publish   %6u B x %-3d %-10s %8.2f M records/s  %8.1f MB/s\n", bytes, batch,
			writer_time ? "writer" : "ring_clock",
			(double)records / s / 1e6, (double)records * bytes / s / 1e6);
	free(payload);
	th_ring_writer_destroy(w);
}

int th__bench_ring(int argc, char **argv)
{
	struct opts o = { .scale = 1.0 };
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			o.json = true;
		else if (!strcmp(argv[i], "--quick"))
			o.quick = true;
		else if (!strcmp(argv[i], "--wake-only"))
			o.wake_only = true;
		else {
			fprintf(stderr, "usage: topohub-bench ring [--json] [--quick] [--wake-only]\n");
			return 2;
		}
	}
	if (o.quick)
		o.scale = 0.2;
	if (!o.json)
		fprintf(stderr, "(plain output is the same JSON lines; --json adds a human summary on stderr)\n");
	const int rounds = o.quick ? 2 : 4;
	char extra[96];
	if (o.wake_only) {
		sparse_wakes(&o, rounds);
		return 0;
	}
	/* The spinning handoff: floor_ping and the ring spinning with one reader, ABAB. */
	struct acc ping, spin1;
	acc_init(&ping), acc_init(&spin1);
	for (int r = 0; r < rounds; r++) {
		floor_ping((uint64_t)(200000 * o.scale) / rounds, &ping);
		ring_latency(TH_RING_WAIT_SPIN, 1, (uint64_t)(100000 * o.scale) / rounds, (o.quick ? 2.0 : 8.0) / rounds,
			     &spin1);
	}
	acc_emit(&o, "floor_ping", NULL, &ping);
	acc_emit(&o, "ring_latency", "\"mode\":\"spin\",\"readers\":1", &spin1);
	/* The sleeping handoffs: floor_futex and the ring's futex and fd modes
	 * to as many readers, interleaved. Several sleeping readers: 1,000
	 * publications even in a quick run, for a p99 of wake-ups that is not
	 * the second-worst of a handful (they are cheap: well under a
	 * millisecond each). */
	static const int counts[] = { 1, 8, 64 };
	for (int c = 0; c < 3; c++) {
		int n = counts[c];
		uint64_t floor_samples = n > 1 ? 1000 : (uint64_t)(10000 * o.scale);
		uint64_t ring_samples = n > 1 ? 1000 : (uint64_t)(10000 * o.scale);
		struct acc fl, fu, fd;
		acc_init(&fl), acc_init(&fu), acc_init(&fd);
		for (int r = 0; r < rounds; r++) {
			floor_futex(n, floor_samples / rounds, &fl);
			ring_latency(TH_RING_WAIT_FUTEX, n, ring_samples / rounds, (o.quick ? 2.0 : 8.0) / rounds, &fu);
			ring_latency(TH_RING_WAIT_FD, n, ring_samples / rounds, (o.quick ? 2.0 : 8.0) / rounds, &fd);
		}
		snprintf(extra, sizeof extra, "\"readers\":%d", n);
		acc_emit(&o, "floor_futex", extra, &fl);
		snprintf(extra, sizeof extra, "\"mode\":\"futex\",\"readers\":%d", n);
		acc_emit(&o, "ring_latency", extra, &fu);
		snprintf(extra, sizeof extra, "\"mode\":\"fd\",\"readers\":%d", n);
		acc_emit(&o, "ring_latency", extra, &fd);
	}
	sparse_wakes(&o, rounds);
	/* Spinning readers beside each other: no floor to interleave with. */
	for (int c = 1; c < 3; c++) {
		struct acc sp;
		acc_init(&sp);
		ring_latency(TH_RING_WAIT_SPIN, counts[c], 10000, o.quick ? 2.0 : 8.0, &sp);
		snprintf(extra, sizeof extra, "\"mode\":\"spin\",\"readers\":%d", counts[c]);
		acc_emit(&o, "ring_latency", extra, &sp);
	}
	static const uint32_t sizes[] = { 64, 1024, 65536 };
	for (int s = 0; s < 3; s++) {
		ring_publish(&o, sizes[s], 1, false);
		ring_publish(&o, sizes[s], 4, false);
		ring_publish(&o, sizes[s], 16, false);
	}
	for (int b = 1; b <= 16; b *= 4)
		ring_publish(&o, 64, b, true);
	return 0;
}
