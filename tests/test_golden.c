/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Golden vectors: one truth for the wire and the ring, shared with the Go
 * client (plugins/go/topohub). This program builds them from the real C code
 * (shm/ring.c's writer and reader, hub/protocol.h's structs) and compares them
 * with the committed files in plugins/go/topohub/testdata/golden, which the Go
 * tests parse with the Go decoders, field by field. A format change on either
 * side fails a test: here when the C bytes move, there when the Go decoding does.
 *
 *   build/tests/test_golden                 compare (what make test runs)
 *   build/tests/test_golden --write DIR     regenerate into DIR (then commit)
 *
 * Files: ring.bin (the ring memfd: header page and data), slot.bin (the slot
 * page of a reader that read everything and was armed and disarmed once),
 * slot-armed.bin (the same reader armed in fd mode), slot-evicted.bin (then
 * evicted as lapped), slot-rejoined.bin (then rejoined), snapshot.bin (a
 * SNAPSHOT memfd as the hub writes it), msg-*.bin (whole control messages,
 * header and body, every protocol.h struct with distinct field values),
 * ring-moderated-header.bin (the header page of a writer advising a wake-up
 * delay) and
 * golden.txt (every field and record as the C side knows it, "name = value").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol/protocol.h"
#include "shm/ring.h"
#include "common/th_error.h"
#include "tests/support/support.h"

#define COMMITTED_DIR "plugins/go/topohub/testdata/golden"
#define RING_CAPACITY 4096u
#define PAGE 4096u
/* Past 2^32 and 1536 bytes before the end of the buffer: records wrap. */
#define INITIAL_POS ((1ull << 32) - 1536u)
#define GENERATION 0x0123456789abcdefull

/* ---- output --------------------------------------------------------------- */

struct out {
	const char *dir;
	FILE *txt; /* golden.txt */
};

static void write_file(const struct out *o, const char *name, const void *data, size_t len)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", o->dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void field(const struct out *o, const char *obj, const char *name, uint64_t v)
{
	fprintf(o->txt, "%s.%s = %llu\n", obj, name, (unsigned long long)v);
}

static void field_hex(const struct out *o, const char *obj, const char *name, const void *p, size_t n)
{
	fprintf(o->txt, "%s.%s = ", obj, name);
	for (size_t i = 0; i < n; i++)
		fprintf(o->txt, "%02x", ((const uint8_t *)p)[i]);
	fprintf(o->txt, "\n");
}

/* A whole message as it crosses the socket: header, then body. */
static void message(const struct out *o, const char *name, uint16_t type, uint32_t req, const void *body, size_t len)
{
	uint8_t buf[TH_MSG_MAX];
	struct th_msg_hdr h = { .magic = TH_PROTO_MAGIC, .version = TH_PROTO_VERSION, .type = type, .flags = 0,
				.len = (uint32_t)(sizeof h + len), .request_id = req };
	memcpy(buf, &h, sizeof h);
	if (len)
		memcpy(buf + sizeof h, body, len);
	char file[100], obj[100];
	snprintf(file, sizeof file, "msg-%s.bin", name);
	snprintf(obj, sizeof obj, "msg-%s", name);
	write_file(o, file, buf, sizeof h + len);
	field(o, obj, "type", type);
	field(o, obj, "request_id", req);
	field(o, obj, "len", h.len);
}

/* ---- the ring ------------------------------------------------------------- */

struct built_change {
	struct th_rec_change ch;
	char key[64];
	char value[300];
	char gtid[32];
};

static uint32_t change_payload(struct built_change *b, int i, int j, uint8_t *out)
{
	memset(b, 0, sizeof *b);
	snprintf(b->key, sizeof b->key, "/golden/key/%d/%d", i, j);
	uint32_t vlen = (uint32_t)((i * 37 + j * 11) % 200);
	for (uint32_t k = 0; k < vlen; k++)
		b->value[k] = (char)('a' + (i + j + (int)k) % 26);
	snprintf(b->gtid, sizeof b->gtid, "0-1-%d", 1000 + i);
	bool del = (i % 4 == 3 && j == 1);
	bool null = (i % 5 == 2 && j == 0);
	if (del || null)
		vlen = 0;
	b->ch = (struct th_rec_change){
		.revision = 0x1000000000000000ull + (uint64_t)i,
		.version = -(int64_t)(0x0200000000000000ll + i * 16 + j), /* negative: the sign is carried */
		.commit_us = 0x0300000000000000ull + (uint64_t)(i * 16 + j),
		.publish_ns = 0x0400000000000000ull + (uint64_t)(i * 16 + j),
		.key_len = (uint32_t)strlen(b->key),
		.value_len = vlen,
		.gtid_len = (uint16_t)strlen(b->gtid),
		.table = (uint8_t)(j % 3),
		.op = del ? TH_OP_DELETE : TH_OP_PUT,
		.flags = null ? TH_CHANGE_F_VALUE_NULL : 0,
	};
	uint32_t n = 0;
	memcpy(out + n, &b->ch, sizeof b->ch);
	n += sizeof b->ch;
	memcpy(out + n, b->key, b->ch.key_len);
	n += b->ch.key_len;
	memcpy(out + n, b->value, vlen);
	n += vlen;
	memcpy(out + n, b->gtid, b->ch.gtid_len);
	n += b->ch.gtid_len;
	return n;
}

struct seen {
	struct th_ring_record rec;
	uint8_t payload[1024];
	int i, j; /* batch, record; j < 0: the resync record */
};

static void ring_vectors(const struct out *o)
{
	struct th_ring_config cfg = { .capacity = RING_CAPACITY, .initial_pos = INITIAL_POS, .generation = GENERATION };
	struct th_ring_writer *w;
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	uint32_t id;
	struct th_ring_reader_fds fds;
	assert_int_equal(th_ring_add_reader(w, &id, &fds), 0);
	struct th_ring_reader *r;
	assert_int_equal(th_ring_reader_open(&fds, &r, NULL, 0), 0);
	th_ring_reader_set_timeout(r, 0x1122334455667788ull);

	static struct seen seen[64];
	int nseen = 0;
	for (int i = 0; i < 14; i++) {
		th_ring_set_batch_time(w, 0x0500000000000000ull + (uint64_t)i * 1000);
		int nrec = 1 + i % 3;
		for (int j = 0; j < nrec; j++) {
			uint8_t p[1024];
			struct built_change b;
			uint32_t n = change_payload(&b, i, j, p);
			assert_int_equal(th_ring_append(w, TH_REC_CHANGE, p, n), 0);
		}
		if (i == 6) {
			struct th_rec_resync rs = { .revision = 0x0600000000000000ull, .reason = TH_RESYNC_TOO_BIG,
						    .table = 0x07000002u };
			assert_int_equal(th_ring_append(w, TH_REC_RESYNC, &rs, sizeof rs), 0);
		}
		assert_true(th_ring_commit(w) > 0);
		/* The reader keeps up, batch by batch. */
		int jj = 0;
		for (;;) {
			struct seen *s = &seen[nseen];
			int rc = th_ring_read(r, &s->rec, s->payload, sizeof s->payload);
			if (rc == 0)
				break;
			assert_int_equal(rc, 1);
			s->i = i;
			s->j = s->rec.type == TH_REC_RESYNC ? -1 : jj++;
			nseen++;
		}
	}
	assert_true(th_ring_oldest(w) > INITIAL_POS); /* some records were overwritten */
	assert_true(th_ring_head(w) > (1ull << 32));

	/* The ring: its whole memfd. */
	size_t ring_len = PAGE + RING_CAPACITY;
	uint8_t *ring = malloc(ring_len);
	assert_non_null(ring);
	assert_int_equal(pread(fds.ring_fd, ring, ring_len, 0), (ssize_t)ring_len);
	write_file(o, "ring.bin", ring, ring_len);
	free(ring);
	field(o, "ring", "capacity", RING_CAPACITY);
	field(o, "ring", "max_record", th_ring_max_record(w));
	field(o, "ring", "generation", th_ring_generation(w));
	field(o, "ring", "initial_pos", INITIAL_POS);
	field(o, "ring", "head", th_ring_head(w));
	field(o, "ring", "oldest", th_ring_oldest(w));
	field(o, "ring", "records", (uint64_t)nseen);
	for (int k = 0; k < nseen; k++) {
		char obj[32];
		snprintf(obj, sizeof obj, "record%d", k);
		struct seen *s = &seen[k];
		field(o, obj, "pos", s->rec.pos);
		field(o, obj, "intact", s->rec.pos >= th_ring_oldest(w));
		field(o, obj, "type", s->rec.type);
		field(o, obj, "flags", s->rec.flags);
		field(o, obj, "len", s->rec.len);
		field(o, obj, "publish_ns", s->rec.publish_ns);
		field_hex(o, obj, "payload", s->payload, s->rec.len);
		if (s->rec.type == TH_REC_RESYNC) {
			struct th_rec_resync rs;
			memcpy(&rs, s->payload, sizeof rs);
			field(o, obj, "resync.revision", rs.revision);
			field(o, obj, "resync.reason", rs.reason);
			field(o, obj, "resync.table", rs.table);
			continue;
		}
		struct built_change b;
		uint8_t again[1024];
		change_payload(&b, s->i, s->j, again);
		assert_memory_equal(again, s->payload, s->rec.len); /* what was written is what was read */
		field(o, obj, "change.revision", b.ch.revision);
		field(o, obj, "change.version", (uint64_t)b.ch.version);
		field(o, obj, "change.commit_us", b.ch.commit_us);
		field(o, obj, "change.publish_ns", b.ch.publish_ns);
		field(o, obj, "change.key_len", b.ch.key_len);
		field(o, obj, "change.value_len", b.ch.value_len);
		field(o, obj, "change.gtid_len", b.ch.gtid_len);
		field(o, obj, "change.table", b.ch.table);
		field(o, obj, "change.op", b.ch.op);
		field(o, obj, "change.flags", b.ch.flags);
		field_hex(o, obj, "change.key", b.key, b.ch.key_len);
		field_hex(o, obj, "change.value", b.value, b.ch.value_len);
		field_hex(o, obj, "change.gtid", b.gtid, b.ch.gtid_len);
	}

	/* The slot page through a reader's life: caught up and disarmed once,
	 * armed (fd mode), evicted, rejoined. */
	uint8_t slot[PAGE];
	assert_int_equal(th_ring_reader_arm(r), 0);
	th_ring_reader_disarm(r);
	assert_int_equal(pread(fds.slot_fd, slot, PAGE, 0), (ssize_t)PAGE);
	write_file(o, "slot.bin", slot, PAGE);
	assert_int_equal(th_ring_reader_arm(r), 0);
	assert_int_equal(pread(fds.slot_fd, slot, PAGE, 0), (ssize_t)PAGE);
	write_file(o, "slot-armed.bin", slot, PAGE);
	th_ring_reader_disarm(r);
	assert_int_equal(th_ring_evict(w, id, TH_RING_EVICT_LAPPED), 0);
	assert_int_equal(pread(fds.slot_fd, slot, PAGE, 0), (ssize_t)PAGE);
	write_file(o, "slot-evicted.bin", slot, PAGE);
	struct th_ring_record rec;
	uint8_t buf[16];
	assert_int_equal(th_ring_read(r, &rec, buf, sizeof buf), -TH_EEVICTED);
	uint64_t pos;
	assert_int_equal(th_ring_reader_rejoin(r, &pos), 0);
	assert_int_equal(pread(fds.slot_fd, slot, PAGE, 0), (ssize_t)PAGE);
	write_file(o, "slot-rejoined.bin", slot, PAGE);
	field(o, "slot", "timeout_ns", 0x1122334455667788ull);
	field(o, "slot", "evict_reason", TH_RING_EVICT_LAPPED);
	field(o, "slot", "read_pos", th_ring_reader_pos(r));

	/* Targeted wake-ups: a filter of two watches' bits, a futex wake-up for
	 * a batch that meets it, then two batches that do not (jumped over). */
	uint64_t filter[TH_RING_TAG_WORDS] = { 0 }, tags[TH_RING_TAG_WORDS] = { 0 };
	filter[1] = 0x8000000000000001ull;
	filter[7] = 0x10ull;
	th_ring_reader_set_filter(r, filter);
	tags[7] = 0x10ull;
	th_ring_set_batch_time(w, 0x0900000000000000ull + th_ring_head(w)); /* fixed bytes: no clock */
	th_ring_append(w, TH_REC_CHANGE, "for it", 6);
	th_ring_commit_tagged(w, tags, 0x0800000000000001ull);
	assert_int_equal(th_ring_read(r, &rec, buf, sizeof buf), 1);
	tags[7] = 0x20ull;
	uint64_t skip_from = th_ring_head(w);
	th_ring_set_batch_time(w, 0x0900000000000000ull + th_ring_head(w)); /* fixed bytes: no clock */
	th_ring_append(w, TH_REC_CHANGE, "not 1", 5);
	th_ring_commit_tagged(w, tags, 0x0800000000000002ull);
	th_ring_set_batch_time(w, 0x0900000000000000ull + th_ring_head(w)); /* fixed bytes: no clock */
	th_ring_append(w, TH_REC_CHANGE, "not 2", 5);
	th_ring_commit_tagged(w, tags, 0x0800000000000003ull);
	assert_int_equal(pread(fds.slot_fd, slot, PAGE, 0), (ssize_t)PAGE);
	write_file(o, "slot-filtered.bin", slot, PAGE);
	uint8_t *ring2 = malloc(PAGE + RING_CAPACITY);
	assert_non_null(ring2);
	assert_int_equal(pread(fds.ring_fd, ring2, PAGE + RING_CAPACITY, 0), (ssize_t)(PAGE + RING_CAPACITY));
	write_file(o, "ring-filtered.bin", ring2, PAGE + RING_CAPACITY);
	free(ring2);
	field(o, "slot-filtered", "filter1", filter[1]);
	field(o, "slot-filtered", "filter7", filter[7]);
	field(o, "slot-filtered", "skip_from", skip_from);
	field(o, "slot-filtered", "skip_to", th_ring_head(w));
	field(o, "slot-filtered", "skip_note", 0x0800000000000003ull);
	assert_int_equal(th_ring_read(r, &rec, buf, sizeof buf), 0);
	uint64_t note;
	assert_int_equal(th_ring_reader_skips(r, &note), 1);
	assert_int_equal(note, 0x0800000000000003ull);
	assert_int_equal(th_ring_reader_pos(r), th_ring_head(w));

	th_ring_reader_close(r);
	close(fds.ring_fd);
	close(fds.slot_fd);
	close(fds.event_fd);
	th_ring_writer_destroy(w);
}

/* The header of a writer that moderates its wake-ups: a thousand readers a
 * batch is for and one woken (armed in fd mode) on each commit make its
 * computed delay far above the cap, so the delay it publishes is the cap. */
#define MODERATED_DELAY_NS 77777ull

static void moderated_vectors(const struct out *o)
{
	struct th_ring_config cfg = { .capacity = RING_CAPACITY, .initial_pos = INITIAL_POS,
				      .generation = GENERATION + 1, .max_readers = 1001 };
	struct th_ring_writer *w;
	assert_int_equal(th_test_raise_nofile(2 * 1001 + 64), 0); /* two descriptors per reader */
	assert_int_equal(th_ring_writer_create(&cfg, &w), 0);
	th_ring_set_wake_delay_max(w, MODERATED_DELAY_NS);
	struct th_ring_reader_fds fds;
	uint32_t id;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(th_ring_add_reader(w, &id, &fds), 0);
		close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	}
	assert_int_equal(th_ring_add_reader(w, &id, &fds), 0);
	struct th_ring_reader *r;
	assert_int_equal(th_ring_reader_open(&fds, &r, NULL, 0), 0);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(th_ring_reader_arm(r), 0);
		th_ring_set_batch_time(w, 0x0a00000000000000ull + (uint64_t)i); /* fixed bytes: no clock */
		th_ring_append(w, TH_REC_CHANGE, "moderated", 9);
		assert_int_equal(th_ring_commit(w), 1);
		th_ring_reader_disarm(r);
		struct th_ring_record rec;
		uint8_t buf[16];
		assert_int_equal(th_ring_read(r, &rec, buf, sizeof buf), 1);
	}
	assert_int_equal(th_ring_wake_delay(w), MODERATED_DELAY_NS);
	uint8_t hdr[PAGE];
	assert_int_equal(pread(fds.ring_fd, hdr, PAGE, 0), (ssize_t)PAGE);
	write_file(o, "ring-moderated-header.bin", hdr, PAGE);
	field(o, "ring-moderated", "wake_delay_ns", th_ring_wake_delay(w));
	th_ring_reader_close(r);
	close(fds.ring_fd), close(fds.slot_fd), close(fds.event_fd);
	th_ring_writer_destroy(w);
}

/* ---- the control protocol ------------------------------------------------- */

/* As hub_requests.c's put_entry: entry, key, value, zero padding to 8. */
static size_t snap_put(uint8_t *b, size_t n, const struct th_snap_entry *e, const char *key, const char *value)
{
	memcpy(b + n, e, sizeof *e);
	n += sizeof *e;
	memcpy(b + n, key, e->key_len);
	n += e->key_len;
	memcpy(b + n, value, e->value_len);
	n += e->value_len;
	while (n % 8)
		b[n++] = 0;
	return n;
}

static void protocol_vectors(const struct out *o)
{
	/* Requests (client to hub): the Go client must encode these bytes. */
	struct th_msg_attach at = { .timeout_ns = 0x0102030405060708ull, .pid = 0x11223344u, .reserved = 0 };
	snprintf(at.name, sizeof at.name, "%s", "golden-attach-name");
	message(o, "attach", TH_MSG_ATTACH, 0x01010101u, &at, sizeof at);
	field(o, "attach", "timeout_ns", at.timeout_ns);
	field(o, "attach", "pid", at.pid);
	field_hex(o, "attach", "name", at.name, strlen(at.name));

	uint8_t body[256];
	const char *prefix = "/golden/prefix";
	struct th_msg_snapshot sn = { .table = 0x02020202u, .prefix_len = (uint32_t)strlen(prefix) };
	memcpy(body, &sn, sizeof sn);
	memcpy(body + sizeof sn, prefix, sn.prefix_len);
	message(o, "snapshot", TH_MSG_SNAPSHOT, 0x03030303u, body, sizeof sn + sn.prefix_len);
	field(o, "snapshot", "table", sn.table);
	field_hex(o, "snapshot", "prefix", prefix, sn.prefix_len);

	const char *key = "/golden/get/key";
	struct th_msg_get g = { .table = 0x04040404u, .key_len = (uint32_t)strlen(key) };
	memcpy(body, &g, sizeof g);
	memcpy(body + sizeof g, key, g.key_len);
	message(o, "get", TH_MSG_GET, 0x05050505u, body, sizeof g + g.key_len);
	field(o, "get", "table", g.table);
	field_hex(o, "get", "key", key, g.key_len);

	const char *gtid = "0-1-100,1-2-200";
	struct th_msg_sync sy = { .timeout_ns = 0x0605040302010009ull, .gtid_len = (uint32_t)strlen(gtid) };
	memcpy(body, &sy, sizeof sy);
	memcpy(body + sizeof sy, gtid, sy.gtid_len);
	message(o, "sync", TH_MSG_SYNC, 0x06060606u, body, sizeof sy + sy.gtid_len);
	field(o, "sync", "timeout_ns", sy.timeout_ns);
	field_hex(o, "sync", "gtid", gtid, sy.gtid_len);

	message(o, "rejoin", TH_MSG_REJOIN, 0x07070707u, NULL, 0);
	message(o, "stats", TH_MSG_STATS, 0x08080808u, NULL, 0);

	/* Replies (hub to client): the Go client must decode these. */
	struct th_msg_attach_reply ar = { .generation = 0x1112131415161718ull, .start_pos = 0x2122232425262728ull,
					  .revision = 0x3132333435363738ull, .timeout_ns = 0x4142434445464748ull,
					  .reader_id = 0x51525354u, .ntables = 0x61626364u };
	message(o, "attach-reply", TH_MSG_ATTACH | TH_MSG_REPLY, 0x01010101u, &ar, sizeof ar);
	field(o, "attach-reply", "generation", ar.generation);
	field(o, "attach-reply", "start_pos", ar.start_pos);
	field(o, "attach-reply", "revision", ar.revision);
	field(o, "attach-reply", "timeout_ns", ar.timeout_ns);
	field(o, "attach-reply", "reader_id", ar.reader_id);
	field(o, "attach-reply", "ntables", ar.ntables);

	/* A SNAPSHOT memfd: entries with odd lengths (padding), a NULL value,
	 * an empty value. */
	static uint8_t snap[4096];
	size_t n = 0;
	struct {
		const char *key, *value;
		uint32_t flags;
	} ents[] = { { "/golden/a", "value-one", 0 }, { "/golden/bb", "", TH_CHANGE_F_VALUE_NULL },
		     { "/golden/ccc/d", "", 0 }, { "/golden/e", "0123456789abcdef0123", 0 } };
	for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
		struct th_snap_entry e = { .revision = 0x7100000000000000ull + i, .version = -(int64_t)(0x7200 + i),
					   .key_len = (uint32_t)strlen(ents[i].key),
					   .value_len = (uint32_t)strlen(ents[i].value), .flags = ents[i].flags, .reserved = 0 };
		n = snap_put(snap, n, &e, ents[i].key, ents[i].value);
		char obj[32];
		snprintf(obj, sizeof obj, "entry%zu", i);
		field(o, obj, "revision", e.revision);
		field(o, obj, "version", (uint64_t)e.version);
		field(o, obj, "flags", e.flags);
		field_hex(o, obj, "key", ents[i].key, e.key_len);
		field_hex(o, obj, "value", ents[i].value, e.value_len);
	}
	write_file(o, "snapshot.bin", snap, n);
	struct th_msg_snapshot_reply sr = { .revision = 0x8182838485868788ull, .start_revision = 0x8082838485868788ull,
					    .count = sizeof ents / sizeof ents[0], .bytes = n,
					    .pending_revision = 0x8382838485868788ull };
	message(o, "snapshot-reply", TH_MSG_SNAPSHOT | TH_MSG_REPLY, 0x03030303u, &sr, sizeof sr);
	field(o, "snapshot-reply", "revision", sr.revision);
	field(o, "snapshot-reply", "start_revision", sr.start_revision);
	field(o, "snapshot-reply", "count", sr.count);
	field(o, "snapshot-reply", "bytes", sr.bytes);
	field(o, "snapshot-reply", "pending_revision", sr.pending_revision);

	struct th_msg_sync_reply syr = { .revision = 0x9192939495969798ull };
	message(o, "sync-reply", TH_MSG_SYNC | TH_MSG_REPLY, 0x06060606u, &syr, sizeof syr);
	field(o, "sync-reply", "revision", syr.revision);

	struct th_msg_rejoin_reply rr = { .revision = 0xa1a2a3a4a5a6a7a8ull };
	message(o, "rejoin-reply", TH_MSG_REJOIN | TH_MSG_REPLY, 0x07070707u, &rr, sizeof rr);
	field(o, "rejoin-reply", "revision", rr.revision);

	struct th_msg_stream_reply st = { .revision = 0xb1b2b3b4b5b6b7b8ull, .sndbuf = 0xc1c2c3c4c5c6c7c8ull };
	message(o, "stream-reply", TH_MSG_STREAM | TH_MSG_REPLY, 0x09090909u, &st, sizeof st);
	field(o, "stream-reply", "revision", st.revision);
	field(o, "stream-reply", "sndbuf", st.sndbuf);

	struct {
		struct th_msg_error e;
		char text[64];
	} er = { .e = { .code = -TH_ENOTFOUND, .reserved = 0 } };
	const char *text = "no entry /golden/get/key";
	memcpy(er.text, text, strlen(text));
	message(o, "error", TH_MSG_ERROR, 0x05050505u, &er, sizeof er.e + strlen(text));
	field(o, "error", "code", (uint64_t)(int64_t)er.e.code);
	field_hex(o, "error", "text", text, strlen(text));
}

/* ---- batch tags (protocol.h) --------------------------------------------- */

static void tag_vectors(const struct out *o)
{
	static const struct {
		uint32_t table;
		const char *key;
	} keys[] = { { 0, "/vt/global/keyspaces/ks0/shards/-40/Shard" }, { 0, "/vt/zone1/SrvVSchema" },
		     { 1, "/vt/zone1/tablets/zone1-0000000100/Tablet" }, { 2, "a" }, { 0, "" },
		     { 0, "//x//" }, { 0x01020304u, "/bench/e2e/k00042" } };
	field(o, "tags", "count", sizeof keys / sizeof keys[0]);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char obj[32];
		snprintf(obj, sizeof obj, "tags%zu", i);
		uint32_t len = (uint32_t)strlen(keys[i].key);
		uint64_t t[TH_RING_TAG_WORDS] = { 0 };
		th_tag_key(t, keys[i].table, keys[i].key, len);
		field(o, obj, "table", keys[i].table);
		field_hex(o, obj, "key", keys[i].key, len);
		field(o, obj, "bit", th_tag_bit(keys[i].table, keys[i].key, len));
		for (int k = 0; k < TH_RING_TAG_WORDS; k++) {
			char name[16];
			snprintf(name, sizeof name, "word%d", k);
			field(o, obj, name, t[k]);
		}
	}
}

static void generate(const char *dir)
{
	struct out o = { .dir = dir };
	char path[600];
	snprintf(path, sizeof path, "%s/golden.txt", dir);
	o.txt = fopen(path, "w");
	assert_non_null(o.txt);
	fprintf(o.txt, "# written by tests/test_golden.c: do not edit; regenerate with build/tests/test_golden --write DIR\n");
	ring_vectors(&o);
	moderated_vectors(&o);
	protocol_vectors(&o);
	tag_vectors(&o);
	assert_int_equal(fclose(o.txt), 0);
}

/* ---- the test ------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *b = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			b = realloc(b, cap);
			assert_non_null(b);
		}
		size_t r = fread(b + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	*len = n;
	return b;
}

static void test_golden__committed_vectors_are_what_the_c_code_writes(void **state)
{
	(void)state;
	char dir[512];
	snprintf(dir, sizeof dir, "%s/topohub-golden-XXXXXX", th_test_tmp_root());
	assert_non_null(mkdtemp(dir));
	generate(dir);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	int files = 0, differ = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char fresh[800], committed[800];
		snprintf(fresh, sizeof fresh, "%s/%s", dir, e->d_name);
		snprintf(committed, sizeof committed, "%s/%s", COMMITTED_DIR, e->d_name);
		size_t a = 0, b = 0;
		uint8_t *x = slurp(fresh, &a), *y = slurp(committed, &b);
		if (!y || a != b || memcmp(x, y, a) != 0) {
			print_error("%s: %s (the C layout or encoding changed: regenerate with "
				    "build/tests/test_golden --write %s, commit, and make the Go side agree)\n",
				    committed, y ? "differs" : "missing", COMMITTED_DIR);
			differ++;
		}
		free(x);
		free(y);
		files++;
	}
	closedir(d);
	/* No committed file the generator no longer writes. */
	d = opendir(COMMITTED_DIR);
	assert_non_null(d);
	int committed_files = 0;
	while ((e = readdir(d)) != NULL)
		committed_files += e->d_name[0] != '.';
	closedir(d);
	th_test_rm_rf(dir);
	assert_int_equal(differ, 0);
	assert_int_equal(committed_files, files);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--write") == 0) {
		mkdir(argv[2], 0755);
		generate(argv[2]);
		printf("golden vectors written to %s\n", argv[2]);
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden__committed_vectors_are_what_the_c_code_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
