/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_e2e.h: the pieces shared by the programs of the end-to-end benchmark
 * (`topohub-bench e2e ...`, driven by bench/e2e/run.py; see bench/README.md).
 *
 * One run of one scenario point shares a file (the "run file", in /dev/shm)
 * between the driver, the writer and N subscriber processes:
 *
 *   offset 0       struct e2e_hdr     (the driver reads it by these offsets too)
 *   offset 4096    struct e2e_sub_stat[nsubs], 128 bytes each, written only by
 *                  subscriber i
 *   commit_off     uint64_t commit_ns[max_seq + 1][2]: CLOCK_MONOTONIC just before
 *                  the writer sent update seq, and when its commit returned
 *                  (written by the writer)
 *   deliver_off    per subscriber, a page-aligned slice of max_seq + 1 uint64_t:
 *                  CLOCK_MONOTONIC when its callback first saw update seq
 *                  (written only by that subscriber; 0 = never)
 *
 * Latency of a delivery = deliver_ns[i][seq] - commit_ns[seq], computed after
 * the run by `e2e collect`, so that no subscriber waits for the writer's
 * stamp. All processes are on one host: CLOCK_MONOTONIC is one clock for all.
 *
 * A value is an ASCII header "e2e <seq:12> <pre-commit ns:19> " (E2E_VALUE_HDR
 * bytes) padded with '.' to the value size; seq 0 is the setup value, which
 * subscribers ignore. One writer updates keys "<prefix>/k%05u" round-robin,
 * so every subscriber of the prefix must see seq 1, 2, 3, ... in order.
 *
 * The sparse scenario (groups G > 1): key k is "<prefix>/g%04u/k%05u" with
 * g = k mod G, and subscriber i watches "<prefix>/g%04u" for g = i mod G
 * only: it must see, in order, exactly the seqs of its group
 * (th__e2e_mine), and nothing else.
 */
#ifndef TH_BENCH_E2E_H
#define TH_BENCH_E2E_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define E2E_MAGIC 0x31455f4255484f54ull /* "TOHUB_E1" little-endian */
#define E2E_VALUE_HDR 37
#define E2E_STATS_OFF 4096u
#define E2E_MAX_SUBS 1024u

struct e2e_hdr {
	uint64_t magic;                /* 0 */
	uint32_t nsubs;                /* 8 */
	uint32_t groups;               /* 12: sparse scenario: G groups of keys (0 or 1: one prefix for all) */
	uint64_t max_seq;              /* 16 */
	_Atomic uint64_t total;        /* 24: updates the writer committed (final when writer_done) */
	_Atomic uint64_t writer_done;  /* 32 */
	_Atomic uint64_t stop;         /* 40: set by the driver: subscribers exit */
	_Atomic uint64_t ready;        /* 48: subscribers ready (watch established) */
	_Atomic uint64_t writer_start_ns; /* 56 */
	_Atomic uint64_t writer_end_ns;   /* 64 */
	uint64_t commit_off;           /* 72 */
	uint64_t deliver_off;          /* 80 */
	uint64_t deliver_stride;       /* 88 */
	_Atomic uint64_t fault_cont_ns;   /* 96: driver: when it sent SIGCONT to the stopped one */
	_Atomic uint64_t committed_seq;   /* 104: last seq whose commit returned */
	uint64_t keys;                 /* 112: keys the writer updates round-robin (seq s: key (s-1) mod keys) */
};

/* Per subscriber; offsets are read by the driver. */
struct e2e_sub_stat {
	_Atomic uint64_t received;     /* 0: deliveries of seq > 0 */
	_Atomic uint64_t last_seq;     /* 8 */
	_Atomic uint64_t gaps;         /* 16: seqs skipped (when a later one came) without a resync notice */
	_Atomic uint64_t announced;    /* 24: seqs skipped after a resync notice */
	_Atomic uint64_t out_of_order; /* 32: seq <= last (duplicates included) */
	_Atomic uint64_t resyncs;      /* 40 */
	_Atomic uint64_t errors;       /* 48: unparsable values, source errors */
	_Atomic uint64_t ready;        /* 56 */
	_Atomic uint64_t pid;          /* 64 */
	_Atomic uint64_t resync_ns;    /* 72: first resync notice seen */
	_Atomic uint64_t synced_ns;    /* 80: caught up again after it (SYNCED) */
	_Atomic uint64_t evicted_reason; /* 88: library's resync cause */
	_Atomic uint64_t backlog_bytes;  /* 96: peer's own backlog measure, if any */
	_Atomic uint64_t selects;      /* 104: mysqltopo-style: table re-reads */
	uint64_t pad[2];
};

_Static_assert(sizeof(struct e2e_sub_stat) == 128, "e2e_sub_stat layout");
_Static_assert(offsetof(struct e2e_hdr, committed_seq) == 104, "e2e_hdr layout");
_Static_assert(offsetof(struct e2e_hdr, keys) == 112, "e2e_hdr layout");

/* Is update seq one that subscriber idx must see? (Every one, unless sparse.) */
static inline bool th__e2e_mine(const struct e2e_hdr *h, unsigned idx, uint64_t seq)
{
	if (h->groups <= 1 || !h->keys)
		return true;
	return ((seq - 1) % h->keys) % h->groups == idx % h->groups;
}

struct e2e_run {
	struct e2e_hdr *h;
	size_t len;
	_Atomic uint64_t *commit;
};

/* Maps an existing run file read-write. 0 or -errno (message on stderr). */
int th__e2e_run_map(const char *path, struct e2e_run *r);
struct e2e_sub_stat *th__e2e_stat(const struct e2e_run *r, unsigned idx);
uint64_t *th__e2e_deliver(const struct e2e_run *r, unsigned idx);

/* One subscriber's checker: every delivered value goes through th__e2e_value. */
struct e2e_sub {
	struct e2e_run run;
	unsigned idx;
	struct e2e_sub_stat *st;
	uint64_t *deliver;
	const char *prefix;            /* without a trailing '/'; its group's in the sparse scenario */
	size_t prefix_len;
	char group_prefix[512];
	bool after_resync;             /* a gap after this is announced */
	uint64_t last_seq;
};

#define E2E_MAX_WATCHES 8

/* Common subscriber options, parsed by th__e2e_sub_main. */
struct e2e_sub_opts {
	const char *file;
	unsigned idx;
	const char *prefix;
	const char *lib;               /* topohub: path of libtopohub.so */
	const char *hub_socket;        /* topohub, socket: the hub's control socket */
	const char *etcd;              /* etcd: base URL */
	unsigned timeout_ms;           /* topohub: slow-consumer timeout asked */
	const char *wait;              /* topohub: futex (default), spin, fd */
	uint64_t spin_ns;              /* topohub: spin before sleeping (0: the library's default) */
	/* topohub, the Vitess-shaped scenario: these exact keys and this
	 * directory instead of the prefix (see th__e2e_deliver_only). */
	const char *watch[E2E_MAX_WATCHES];
	unsigned nwatch;
	const char *watch_dir;
};

int th__e2e_sub_init(struct e2e_sub *s, const struct e2e_sub_opts *o);
/* Does key (klen bytes) lie under the prefix, on a component boundary? */
bool th__e2e_under_prefix(const struct e2e_sub *s, const char *key, size_t klen);
/* A delivered put of one value (any key under the prefix). */
void th__e2e_value(struct e2e_sub *s, const char *val, size_t vlen);
/* A delivered value in the Vitess-shaped scenario, where a process sees only
 * the writes of its own files: the first delivery of each sequence number is
 * stamped, no order or gap check (vcollect knows who watches what);
 * bench/go/e2e's DeliverOnly. */
void th__e2e_deliver_only(struct e2e_sub *s, const char *val, size_t vlen);
/* A continuity notice (the next gap is announced, not a loss). */
void th__e2e_resync(struct e2e_sub *s, uint32_t reason);
/* Caught up after a resync. */
void th__e2e_synced(struct e2e_sub *s);
void th__e2e_ready(struct e2e_sub *s);
bool th__e2e_stopping(const struct e2e_sub *s);
void th__e2e_error(struct e2e_sub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses the seq of a value; -1 when it is not an e2e value. */
int64_t th__e2e_parse_seq(const char *val, size_t vlen);
/* Writes the value of update seq (size bytes, size >= E2E_VALUE_HDR) into buf. */
void th__e2e_make_value(char *buf, size_t size, uint64_t seq, uint64_t stamp_ns);

/* Subscribers, one per system (return an exit code). */
int th__e2e_sub_mysqltopo(struct e2e_sub *s, const struct e2e_sub_opts *o);
int th__e2e_sub_decoder(struct e2e_sub *s, const struct e2e_sub_opts *o);
int th__e2e_sub_etcd(struct e2e_sub *s, const struct e2e_sub_opts *o);
int th__e2e_sub_topohub(struct e2e_sub *s, const struct e2e_sub_opts *o);
/* The hub's benchmark mode: records over the control socket (protocol.h STREAM). */
int th__e2e_sub_socket(struct e2e_sub *s, const struct e2e_sub_opts *o);

/* MySQL connection details from the environment (E2E_MYSQL_SOCKET or
 * E2E_MYSQL_HOST/E2E_MYSQL_PORT, E2E_MYSQL_USER, TOPOHUB_MYSQL_PASSWORD). */
struct e2e_mysql_env {
	const char *host, *socket, *user, *password;
	unsigned port;
};
int th__e2e_mysql_env(struct e2e_mysql_env *e);
/* A connected MYSQL * (as void * to keep mysql.h out of this header), database "topo". */
void *th__e2e_mysql_connect(const struct e2e_mysql_env *e, char *err, size_t errlen);

/* etcd writer pieces (bench_e2e_etcd.c). */
struct e2e_etcd_writer;
int th__e2e_etcd_writer_new(const char *url, struct e2e_etcd_writer **out);
int th__e2e_etcd_put(struct e2e_etcd_writer *w, const char *key, const char *val, size_t vlen);
int th__e2e_etcd_delete_prefix(struct e2e_etcd_writer *w, const char *prefix);
void th__e2e_etcd_writer_free(struct e2e_etcd_writer *w);


#endif
