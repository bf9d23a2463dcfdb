/* SPDX-License-Identifier: Apache-2.0 */
/* Hand-built binlog events for tests; see binlog_build.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "tests/support/binlog_build.h"

const uint8_t tb_uuid1[16] = { 0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1,
			       0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62 };

void tb_put(struct tb_bytes *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof b->b);
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

void tb_le(struct tb_bytes *b, uint64_t v, unsigned n)
{
	assert_true(b->n + n <= sizeof b->b);
	for (unsigned i = 0; i < n; i++)
		b->b[b->n++] = (uint8_t)(v >> (8 * i));
}

void tb_packed(struct tb_bytes *b, uint64_t v)
{
	if (v < 251) {
		tb_le(b, v, 1);
	} else if (v < 65536) {
		tb_le(b, 252, 1);
		tb_le(b, v, 2);
	} else if (v < (1u << 24)) {
		tb_le(b, 253, 1);
		tb_le(b, v, 3);
	} else {
		tb_le(b, 254, 1);
		tb_le(b, v, 8);
	}
}

void tb_str(struct tb_bytes *b, const char *s)
{
	tb_put(b, s, strlen(s));
}

size_t tb_event(uint8_t *out, uint8_t type, uint16_t flags, uint32_t log_pos, const struct tb_bytes *body,
		bool crc)
{
	size_t n = 19 + body->n + (crc ? 4 : 0);
	uint8_t h[19] = { 0 };
	for (int i = 0; i < 4; i++) h[i] = (uint8_t)(TB_TIMESTAMP >> (8 * i));
	h[4] = type;
	h[5] = 7; /* server_id 7 */
	for (int i = 0; i < 4; i++) h[9 + i] = (uint8_t)(n >> (8 * i));
	for (int i = 0; i < 4; i++) h[13 + i] = (uint8_t)(log_pos >> (8 * i));
	h[17] = (uint8_t)flags; h[18] = (uint8_t)(flags >> 8);
	memcpy(out, h, 19);
	memcpy(out + 19, body->b, body->n);
	if (crc) {
		uint32_t c = (uint32_t)crc32(0, out, (uInt)(n - 4));
		for (int i = 0; i < 4; i++) out[n - 4 + i] = (uint8_t)(c >> (8 * i));
	}
	return n;
}

void tb_append_event(struct tb_bytes *to, uint8_t type, const struct tb_bytes *body)
{
	assert_true(to->n + 19 + body->n <= sizeof to->b);
	to->n += tb_event(to->b + to->n, type, 0, 0, body, false);
}

/* MySQL 8.0's post-header lengths (types 1..41), as its FORMAT_DESCRIPTION lists them. */
static const uint8_t mysql80_post[41] = { 0, 13, 0, 8, 0, 0, 0, 0, 4, 0, 4, 0, 0, 0, 98, 0, 4, 26, 8, 0, 0, 0,
					  8, 8, 8, 2, 0, 0, 0, 10, 10, 10, 42, 42, 0, 18, 52, 0, 10, 40, 0 };

size_t tb_format_description(uint8_t *out, bool mariadb, bool crc)
{
	struct tb_bytes b = { .n = 0 };
	uint8_t post[171] = { 0 };
	size_t npost;
	char ver[50] = { 0 };
	if (mariadb) {
		npost = 171;
		post[1] = 13; post[3] = 8; post[16] = 4; post[17] = 26; post[18] = 8;
		post[22] = post[23] = post[24] = 8; post[25] = 2;
		post[160] = 4; post[161] = 19; post[162] = 4; post[163] = 10; post[164] = 13;
		post[165] = post[166] = post[167] = 8; post[168] = post[169] = post[170] = 10;
		strcpy(ver, "10.11.6-MariaDB-log");
	} else {
		npost = 41;
		memcpy(post, mysql80_post, 41);
		strcpy(ver, "8.0.45");
	}
	post[14] = (uint8_t)(57 + npost);
	tb_le(&b, 4, 2);
	tb_put(&b, ver, 50);
	tb_le(&b, 0x5000, 4);
	tb_le(&b, 19, 1);
	tb_put(&b, post, npost);
	tb_le(&b, crc ? 1 : 0, 1);
	if (!crc)
		tb_le(&b, 0, 4); /* a checksum-aware server leaves the 4 bytes even when OFF */
	return tb_event(out, TH_BINLOG_FORMAT_DESCRIPTION, 0, 0, &b, crc);
}

void tb_query(struct tb_bytes *b, const char *db, const char *q, uint16_t svlen)
{
	tb_le(b, 11, 4);            /* thread id */
	tb_le(b, 2, 4);             /* exec time */
	tb_le(b, strlen(db), 1);
	tb_le(b, 0, 2);             /* error code */
	tb_le(b, svlen, 2);
	for (uint16_t i = 0; i < svlen; i++)
		tb_le(b, 0, 1);
	tb_str(b, db);
	tb_le(b, 0, 1);
	tb_str(b, q);
}

void tb_mysql_gtid(struct tb_bytes *b, const uint8_t uuid[16], int64_t gno, bool two_ts)
{
	tb_le(b, 1, 1);
	tb_put(b, uuid, 16);
	tb_le(b, (uint64_t)gno, 8);
	tb_le(b, 2, 1);
	tb_le(b, 5, 8);
	tb_le(b, 6, 8);
	uint64_t imm = 1700000000123456ull;
	tb_le(b, imm | (two_ts ? 1ull << 55 : 0), 7);
	if (two_ts)
		tb_le(b, 1600000000654321ull, 7);
	tb_packed(b, 1234);
	tb_le(b, 80045 | 0x80000000u, 4);
	tb_le(b, 80036, 4);
}

void tb_rows_header(struct tb_bytes *b, uint64_t table_id, uint32_t ncols, bool v2, bool update)
{
	assert_true(ncols <= 8);
	tb_le(b, table_id, 6);
	tb_le(b, TH_ROWS_F_STMT_END, 2);
	if (v2)
		tb_le(b, 2, 2);
	tb_packed(b, ncols);
	tb_le(b, (1u << ncols) - 1, 1);
	if (update)
		tb_le(b, (1u << ncols) - 1, 1);
}

size_t tb_transaction_payload(uint8_t *out, const struct tb_bytes *inner, uint32_t log_pos, bool zstd, bool crc)
{
	struct tb_bytes b = { .n = 0 }, f = { .n = 0 };
	size_t bound = ZSTD_compressBound(inner->n);
	uint8_t *z = malloc(bound);
	assert_non_null(z);
	size_t zn = inner->n;
	if (zstd) {
		zn = ZSTD_compress(z, bound, inner->b, inner->n, 3);
		assert_false(ZSTD_isError(zn));
	} else {
		memcpy(z, inner->b, inner->n);
	}
	/* fields: compression type (0 zstd, 255 none), uncompressed size, payload size, end */
	tb_packed(&f, zstd ? 0 : 255);
	tb_packed(&b, 2); tb_packed(&b, f.n); tb_put(&b, f.b, f.n);
	f.n = 0; tb_packed(&f, inner->n);
	tb_packed(&b, 3); tb_packed(&b, f.n); tb_put(&b, f.b, f.n);
	f.n = 0; tb_packed(&f, zn);
	tb_packed(&b, 1); tb_packed(&b, f.n); tb_put(&b, f.b, f.n);
	tb_packed(&b, 0);
	tb_put(&b, z, zn);
	free(z);
	return tb_event(out, TH_BINLOG_TRANSACTION_PAYLOAD, 0, log_pos, &b, crc);
}

struct tb_stream *tb_stream_new(bool mariadb, bool crc, struct th_binlog_event *fde)
{
	struct tb_stream *s = calloc(1, sizeof *s);
	assert_non_null(s);
	assert_int_equal(th_binlog_decoder_new(&s->dec, NULL), 0);
	th_binlog_decoder_reset(s->dec, "test");
	s->crc = crc;
	s->pos = 4;
	struct th_binlog_event ev;
	if (!fde)
		fde = &ev;
	s->n = tb_format_description(s->ev, mariadb, crc);
	assert_int_equal(th_binlog_decode(s->dec, s->ev, s->n, s->pos, fde), 0);
	assert_int_equal(fde->kind, TH_EVK_FORMAT_DESCRIPTION);
	s->pos += s->n;
	return s;
}

void tb_stream_free(struct tb_stream *s)
{
	th_binlog_decoder_free(s->dec);
	free(s);
}

int tb_stream_decode(struct tb_stream *s, uint8_t type, uint16_t flags, const struct tb_bytes *body,
		     struct th_binlog_event *ev)
{
	uint32_t end = (uint32_t)(s->pos + 19 + body->n + (s->crc ? 4 : 0));
	s->n = tb_event(s->ev, type, flags, end, body, s->crc);
	int rc = th_binlog_decode(s->dec, s->ev, s->n, s->pos, ev);
	if (rc && getenv("TH_DEBUG"))
		print_message("  (decoder: %s)\n", th_binlog_decoder_error(s->dec));
	s->pos += s->n;
	return rc;
}
