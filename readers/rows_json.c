/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rows_json.c: MySQL binary JSON (json_binary.cc's format) to JSON text.
 *
 * A document is a type byte and a value. Objects and arrays come in a small
 * form (2-byte counts, sizes and offsets) and a large one (4-byte); they start
 * with the element count and their own byte size, then key entries (objects:
 * offset, 2-byte length), then value entries (type byte, then either an
 * offset from the container's start or, for small scalars, the value itself),
 * then the keys and values. Strings carry a base-128 length (low bits first).
 * Opaque values carry a MySQL column type, a length and that type's bytes.
 *
 * Everything read is checked against the enclosing container's size, nesting
 * is limited to MySQL's own maximum, and the output may not grow past a fixed
 * multiple of the input: offsets can be made to share a subtree, and a
 * corrupt document must not turn a few bytes into gigabytes of text.
 */
#include "readers/rows.h"

#include <errno.h>
#include <string.h>

#include "common/th_bytes.h"
#include "common/th_error.h"

enum {
	JB_SMALL_OBJECT = 0x0, JB_LARGE_OBJECT = 0x1, JB_SMALL_ARRAY = 0x2, JB_LARGE_ARRAY = 0x3,
	JB_LITERAL = 0x4, JB_INT16 = 0x5, JB_UINT16 = 0x6, JB_INT32 = 0x7, JB_UINT32 = 0x8,
	JB_INT64 = 0x9, JB_UINT64 = 0xa, JB_DOUBLE = 0xb, JB_STRING = 0xc, JB_OPAQUE = 0xf,
};

/* JSON_DOCUMENT_MAX_DEPTH in MySQL: no server writes a deeper document. */
#define JB_MAX_DEPTH 100

struct jb {
	struct th_buf *out;
	size_t limit; /* out->len may not pass this */
};

/* read_variable_length(): at most 5 bytes, the value must fit 32 bits. */
static int varlen(const uint8_t *p, size_t len, uint32_t *val, size_t *n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < len && i < 5; i++) {
		v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			if (v > UINT32_MAX)
				return -TH_EBINLOG;
			*val = (uint32_t)v;
			*n = i + 1;
			return 0;
		}
	}
	return -TH_EBINLOG;
}

static int jb_string(struct jb *c, const uint8_t *p, size_t n)
{
	if (!th_utf8_valid(p, n))
		return -TH_EBINLOG; /* MySQL keeps JSON text in utf8mb4 */
	th_buf_json_string(c->out, p, n);
	return 0;
}

/* MySQL's base64_encode() breaks lines after 76 characters; MySQL prints that newline. */
static void jb_opaque_base64(struct jb *c, unsigned type, const uint8_t *p, size_t n)
{
	struct th_buf b = TH_BUF_INIT;
	th_buf_base64(&b, p, n);
	th_buf_printf(c->out, "\"base64:type%u:", type);
	for (size_t i = 0; i < b.len; i += 76) {
		if (i)
			th_buf_puts(c->out, "\\n");
		th_buf_append(c->out, b.data + i, b.len - i < 76 ? b.len - i : 76);
	}
	th_buf_putc(c->out, '"');
	if (th_buf_failed(&b))
		c->out->oom = true;
	th_buf_free(&b);
}

static int jb_opaque(struct jb *c, const uint8_t *p, size_t len)
{
	if (len < 1)
		return -TH_EBINLOG;
	unsigned type = p[0];
	uint32_t dlen;
	size_t n;
	int r = varlen(p + 1, len - 1, &dlen, &n);
	if (r)
		return r;
	if (dlen > len - 1 - n)
		return -TH_EBINLOG;
	const uint8_t *d = p + 1 + n;
	char text[80];
	switch (type) {
	case TH_COL_NEWDECIMAL: {
		/* precision, scale, then decimal2bin bytes; printed as a JSON number. */
		if (dlen < 2)
			return -TH_EBINLOG;
		size_t used;
		r = th__decimal_to_text(d + 2, dlen - 2, d[0], d[1], text, &used);
		if (r)
			return r;
		th_buf_puts(c->out, text);
		return 0;
	}
	case TH_COL_DATETIME:
	case TH_COL_TIMESTAMP:
	case TH_COL_DATE:
	case TH_COL_TIME: {
		/* The 8-byte packed longlong (Json_datetime::PACKED_SIZE), little-endian. */
		if (dlen != 8)
			return -TH_EBINLOG;
		int64_t packed = th_sext(th_le(d, 8), 64);
		r = type == TH_COL_TIME ? th__time_packed_to_text(packed, text, 6)
			: th__datetime_packed_to_text(packed, text, type == TH_COL_DATE, 6);
		if (r)
			return r;
		th_buf_putc(c->out, '"');
		th_buf_puts(c->out, text);
		th_buf_putc(c->out, '"');
		return 0;
	}
	case TH_COL_VAR_STRING:
		/* MySQL prints strings kept as opaque VAR_STRING as plain strings. */
		return jb_string(c, d, dlen);
	default:
		jb_opaque_base64(c, type, d, dlen);
		return 0;
	}
}

static int jb_value(struct jb *c, unsigned type, const uint8_t *p, size_t len, int depth);

/* A scalar stored inline in a value entry (the entry's offset field holds it). */
static int jb_inline(struct jb *c, unsigned type, const uint8_t *p, bool large)
{
	switch (type) {
	case JB_LITERAL: {
		uint64_t v = th_le(p, large ? 4 : 2);
		if (v == 0)
			th_buf_puts(c->out, "null");
		else if (v == 1)
			th_buf_puts(c->out, "true");
		else if (v == 2)
			th_buf_puts(c->out, "false");
		else
			return -TH_EBINLOG;
		return 0;
	}
	case JB_INT16:
		th__json_number_i64(c->out, th_sext(th_le(p, 2), 16));
		return 0;
	case JB_UINT16:
		th__json_number_u64(c->out, th_le(p, 2));
		return 0;
	case JB_INT32:
		th__json_number_i64(c->out, th_sext(th_le(p, 4), 32));
		return 0;
	case JB_UINT32:
		th__json_number_u64(c->out, th_le(p, 4));
		return 0;
	default:
		return -TH_EBINLOG;
	}
}

static bool jb_inlined(unsigned type, bool large)
{
	return type == JB_LITERAL || type == JB_INT16 || type == JB_UINT16
		|| (large && (type == JB_INT32 || type == JB_UINT32));
}

static int jb_container(struct jb *c, const uint8_t *p, size_t len, bool large, bool object, int depth)
{
	if (depth >= JB_MAX_DEPTH)
		return -TH_EBINLOG;
	size_t osz = large ? 4 : 2;
	if (len < 2 * osz)
		return -TH_EBINLOG;
	uint64_t count = th_le(p, osz), size = th_le(p + osz, osz);
	if (size > len || size < 2 * osz)
		return -TH_EBINLOG;
	size_t kent = object ? osz + 2 : 0, vent = 1 + osz;
	/* count < 2^32 and entries are at most 11 bytes: no overflow in 64 bits. */
	uint64_t header = 2 * osz + count * (kent + vent);
	if (header > size)
		return -TH_EBINLOG;

	th_buf_putc(c->out, object ? '{' : '[');
	for (uint64_t i = 0; i < count; i++) {
		if (c->out->len > c->limit)
			return -TH_EBINLOG;
		if (i)
			th_buf_puts(c->out, ", ");
		if (object) {
			const uint8_t *ke = p + 2 * osz + i * kent;
			uint64_t koff = th_le(ke, osz), klen = th_le(ke + osz, 2);
			if (koff > size || klen > size - koff)
				return -TH_EBINLOG;
			int r = jb_string(c, p + koff, (size_t)klen);
			if (r)
				return r;
			th_buf_puts(c->out, ": ");
		}
		const uint8_t *ve = p + 2 * osz + count * kent + i * vent;
		unsigned t = ve[0];
		int r;
		if (jb_inlined(t, large)) {
			r = jb_inline(c, t, ve + 1, large);
		} else {
			uint64_t off = th_le(ve + 1, osz);
			if (off >= size)
				return -TH_EBINLOG;
			r = jb_value(c, t, p + off, (size_t)(size - off), depth + 1);
		}
		if (r)
			return r;
	}
	th_buf_putc(c->out, object ? '}' : ']');
	return 0;
}

static int jb_value(struct jb *c, unsigned type, const uint8_t *p, size_t len, int depth)
{
	if (c->out->len > c->limit)
		return -TH_EBINLOG;
	switch (type) {
	case JB_SMALL_OBJECT:
	case JB_LARGE_OBJECT:
	case JB_SMALL_ARRAY:
	case JB_LARGE_ARRAY:
		return jb_container(c, p, len, type == JB_LARGE_OBJECT || type == JB_LARGE_ARRAY,
				    type == JB_SMALL_OBJECT || type == JB_LARGE_OBJECT, depth);
	case JB_LITERAL:
		if (len < 1)
			return -TH_EBINLOG;
		return jb_inline(c, JB_LITERAL, (const uint8_t[2]){ p[0], 0 }, false);
	case JB_INT16:
	case JB_UINT16:
		if (len < 2)
			return -TH_EBINLOG;
		return jb_inline(c, type, p, false);
	case JB_INT32:
	case JB_UINT32:
		if (len < 4)
			return -TH_EBINLOG;
		return jb_inline(c, type, p, true);
	case JB_INT64:
	case JB_UINT64:
		if (len < 8)
			return -TH_EBINLOG;
		if (type == JB_INT64)
			th__json_number_i64(c->out, th_sext(th_le(p, 8), 64));
		else
			th__json_number_u64(c->out, th_le(p, 8));
		return 0;
	case JB_DOUBLE: {
		if (len < 8)
			return -TH_EBINLOG;
		uint64_t x = th_le(p, 8);
		double d;
		memcpy(&d, &x, sizeof d);
		return th__json_number_double(c->out, d, false, true);
	}
	case JB_STRING: {
		uint32_t n;
		size_t h;
		int r = varlen(p, len, &n, &h);
		if (r)
			return r;
		if (n > len - h)
			return -TH_EBINLOG;
		return jb_string(c, p + h, n);
	}
	case JB_OPAQUE:
		return jb_opaque(c, p, len);
	default:
		return -TH_EBINLOG;
	}
}

int th_json_binary_to_text(const uint8_t *p, size_t len, struct th_buf *out)
{
	if (!out || (!p && len))
		return -EINVAL;
	if (th_buf_failed(out))
		return -ENOMEM;
	size_t start = out->len;
	if (len == 0) {
		/* What MySQL reads an empty JSON value as (e.g. after a non-strict insert). */
		th_buf_puts(out, "null");
		return th_buf_failed(out) ? -ENOMEM : 0;
	}
	/*
	 * A valid document never expands more than about 8x (a control character
	 * in a string becomes \u00XX); 16x plus slack leaves room for every real
	 * document and still bounds what sharing offsets can produce.
	 */
	struct jb c = { .out = out, .limit = start + 16 * len + 256 };
	int r = jb_value(&c, p[0], p + 1, len - 1, 0);
	if (!r && c.out->len > c.limit)
		r = -TH_EBINLOG;
	if (!r && th_buf_failed(out))
		r = -ENOMEM;
	if (r && !th_buf_failed(out)) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return r;
}
