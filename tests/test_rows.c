/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for readers/rows.c and rows_json.c: row images and binary JSON.
 *
 * Most expected bytes are built by small encoders below that follow MySQL's
 * writers (decimal2bin, my_*_packed_to_binary, json_binary::serialize) and are
 * anchored by vectors from MySQL's documentation; every decode also checks
 * that each truncation of the image is -TH_EBINLOG (run under ASan, the
 * truncated copies are exact-size allocations, so an over-read is caught).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/support/every_type.h"
#include "tests/support/mariadb.h"
#include "readers/rows.h"
#include "common/th_buf.h"
#include "common/th_error.h"

/* ---- helpers ---- */

static struct th_column mkcol(uint8_t type, uint16_t meta)
{
	struct th_column c;
	memset(&c, 0, sizeof c);
	c.type = type;
	c.meta = meta;
	c.nullable = true;
	return c;
}

static void wr_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[n - 1 - i] = (uint8_t)(v >> (8 * i));
}

/* Every strict prefix of a valid image must be rejected, and never over-read. */
static void assert_prefixes_rejected(const struct th_table_map *tm, const uint8_t *present,
				     const uint8_t *img, size_t n, size_t step)
{
	struct th_value *tv = calloc(tm->ncols ? tm->ncols : 1, sizeof *tv);
	for (size_t k = 0; k < n; k += step) {
		uint8_t *t = malloc(k ? k : 1);
		memcpy(t, img, k);
		size_t used = 0;
		int r = th_row_decode(tm, present, t, k, tv, &used);
		if (r != -TH_EBINLOG)
			fail_msg("prefix of %zu of %zu bytes: got %d", k, n, r);
		free(t);
	}
	free(tv);
}

/*
 * The image behind the last decode_one(): values point into it, so it lives
 * until the next decode_one() or the end of the test (free_last_image).
 */
static uint8_t *last_image;

static int free_last_image(void **state)
{
	(void)state;
	free(last_image);
	last_image = NULL;
	return 0;
}

/* b as the only column of an image (null bitmap 0x00 first); returns the decoder's result. */
static int decode_one_ex(const struct th_column *c, const uint8_t *b, size_t n,
			 struct th_value *v, size_t step)
{
	free_last_image(NULL);
	uint8_t *img = malloc(n + 1);
	last_image = img;
	img[0] = 0;
	memcpy(img + 1, b, n);
	struct th_table_map tm = { .ncols = 1, .cols = (struct th_column *)c };
	uint8_t present = 1;
	size_t used = 0;
	int r = th_row_decode(&tm, &present, img, n + 1, v, &used);
	if (r == 0) {
		assert_int_equal(used, n + 1);
		assert_prefixes_rejected(&tm, &present, img, n + 1, step);
	}
	return r;
}

static int decode_one(const struct th_column *c, const uint8_t *b, size_t n, struct th_value *v)
{
	return decode_one_ex(c, b, n, v, 1);
}

/* The JSON rendering of v, as a string the caller frees. */
static char *json_of(const struct th_column *c, const struct th_value *v)
{
	struct th_buf b = TH_BUF_INIT;
	int r = th_value_to_json(c, v, &b);
	if (r)
		fail_msg("th_value_to_json: %d", r);
	char *s = strdup(th_buf_cstr(&b));
	th_buf_free(&b);
	return s;
}

static void expect_json(const struct th_column *c, const uint8_t *b, size_t n, const char *want)
{
	struct th_value v;
	int r = decode_one(c, b, n, &v);
	if (r)
		fail_msg("decode (type %u meta 0x%x, want %s): %d", c->type, c->meta, want, r);
	char *got = json_of(c, &v);
	if (strcmp(got, want))
		fail_msg("type %u meta 0x%x: got %s, want %s", c->type, c->meta, got, want);
	free(got);
}

static void expect_text(const struct th_column *c, const uint8_t *b, size_t n, const char *want)
{
	struct th_value v;
	int r = decode_one(c, b, n, &v);
	if (r)
		fail_msg("decode (type %u meta 0x%x, want %s): %d", c->type, c->meta, want, r);
	assert_int_equal(v.kind, TH_VAL_TEXT);
	if (strcmp(v.text, want))
		fail_msg("type %u meta 0x%x: got %s, want %s", c->type, c->meta, v.text, want);
	char quoted[128];
	snprintf(quoted, sizeof quoted, "\"%s\"", want);
	char *got = json_of(c, &v);
	assert_string_equal(got, quoted);
	free(got);
}

static void expect_error(const struct th_column *c, const uint8_t *b, size_t n, int err)
{
	struct th_value v;
	int r = decode_one(c, b, n, &v);
	if (r != err)
		fail_msg("type %u meta 0x%x: got %d, want %d", c->type, c->meta, r, err);
}

/* ---- integers ---- */

static void expect_int(uint8_t type, size_t w, bool is_unsigned, uint64_t raw, const char *want)
{
	struct th_column c = mkcol(type, 0);
	c.is_unsigned = is_unsigned;
	uint8_t b[8];
	wr_le(b, raw, w);
	expect_json(&c, b, w, want);
	struct th_value v;
	assert_int_equal(decode_one(&c, b, w, &v), 0);
	assert_int_equal(v.kind, is_unsigned ? TH_VAL_UINT : TH_VAL_INT);
}

static void test_rows__decodes_integer_limits_signed_and_unsigned(void **state)
{
	(void)state;
	expect_int(TH_COL_TINY, 1, false, 0x80, "-128");
	expect_int(TH_COL_TINY, 1, false, 0x7f, "127");
	expect_int(TH_COL_TINY, 1, false, 0xff, "-1");
	expect_int(TH_COL_TINY, 1, true, 0xff, "255");
	expect_int(TH_COL_TINY, 1, true, 0, "0");
	expect_int(TH_COL_SHORT, 2, false, 0x8000, "-32768");
	expect_int(TH_COL_SHORT, 2, false, 0x7fff, "32767");
	expect_int(TH_COL_SHORT, 2, true, 0xffff, "65535");
	expect_int(TH_COL_INT24, 3, false, 0x800000, "-8388608");
	expect_int(TH_COL_INT24, 3, false, 0x7fffff, "8388607");
	expect_int(TH_COL_INT24, 3, false, 0xffffff, "-1");
	expect_int(TH_COL_INT24, 3, true, 0xffffff, "16777215");
	expect_int(TH_COL_INT24, 3, true, 0x800000, "8388608");
	expect_int(TH_COL_LONG, 4, false, 0x80000000u, "-2147483648");
	expect_int(TH_COL_LONG, 4, false, 0x7fffffffu, "2147483647");
	expect_int(TH_COL_LONG, 4, true, 0xffffffffu, "4294967295");
	expect_int(TH_COL_LONG, 4, false, 0xfffffffeu, "-2");
	expect_int(TH_COL_LONGLONG, 8, false, 0x8000000000000000ull, "-9223372036854775808");
	expect_int(TH_COL_LONGLONG, 8, false, 0x7fffffffffffffffull, "9223372036854775807");
	expect_int(TH_COL_LONGLONG, 8, false, 0xffffffffffffffffull, "-1");
	expect_int(TH_COL_LONGLONG, 8, true, 0xffffffffffffffffull, "18446744073709551615");
	expect_int(TH_COL_LONGLONG, 8, true, 0x0102030405060708ull, "72623859790382856");
}

/* ---- FLOAT / DOUBLE ---- */

static void expect_double(double d, const char *want)
{
	struct th_column c = mkcol(TH_COL_DOUBLE, 8);
	uint8_t b[8];
	uint64_t x;
	memcpy(&x, &d, 8);
	wr_le(b, x, 8);
	expect_json(&c, b, 8, want);
}

static void expect_float(float f, const char *want)
{
	struct th_column c = mkcol(TH_COL_FLOAT, 4);
	uint8_t b[4];
	uint32_t x;
	memcpy(&x, &f, 4);
	wr_le(b, x, 4);
	expect_json(&c, b, 4, want);
}

static void test_rows__renders_floats_as_shortest_round_trip_and_nan_as_null(void **state)
{
	(void)state;
	expect_double(0.1, "0.1");
	expect_double(1.0 / 3, "0.3333333333333333");
	expect_double(-2.5, "-2.5");
	expect_double(1e300, "1e+300");
	expect_double(5e-324, "4.94065645841247e-324");
	expect_double(-0.0, "-0");
	expect_double(123456789012345678.0, "1.2345678901234568e+17");
	expect_double(NAN, "null");
	expect_double(INFINITY, "null");
	expect_double(-INFINITY, "null");
	expect_float(1.1f, "1.1");
	expect_float(-0.3f, "-0.3");
	expect_float(3.4028235e38f, "3.4028235e+38");
	expect_float(16777216.0f, "16777216");
	expect_float(NAN, "null");

	/* Without the column, a FLOAT's value is rendered as the double it widens to. */
	struct th_value v = { .kind = TH_VAL_DOUBLE, .d = 1.1f };
	char *s = json_of(NULL, &v);
	assert_string_equal(s, "1.100000023841858");
	free(s);
}

/* ---- DECIMAL ---- */

/* The next n (0..9) of *digits as one big-endian group of decimal2bin's size; returns the size. */
static size_t dec_group(const char **digits, unsigned n, uint8_t *out)
{
	static const uint8_t d2b[10] = { 0, 1, 1, 2, 2, 3, 3, 4, 4, 4 };
	uint32_t x = 0;
	for (unsigned k = 0; k < n; k++)
		x = x * 10 + (uint32_t)(*(*digits)++ - '0');
	wr_be(out, x, d2b[n]);
	return d2b[n];
}

/* decimal2bin, written from MySQL's description; s is "[-]digits[.digits]". */
static size_t enc_decimal(const char *s, unsigned prec, unsigned scale, uint8_t *out)
{
	bool neg = *s == '-';
	if (neg)
		s++;
	const char *dot = strchr(s, '.');
	size_t il = dot ? (size_t)(dot - s) : strlen(s);
	unsigned intg0 = prec - scale;
	while (il > intg0 && *s == '0') {
		s++;
		il--;
	}
	const char *fr = dot ? dot + 1 : "";
	unsigned intg = prec - scale;
	char digits[160];
	size_t nd = 0;
	for (size_t k = il; k < intg; k++)
		digits[nd++] = '0';
	memcpy(digits + nd, s, il);
	nd += il;
	size_t fl = strlen(fr);
	for (size_t k = 0; k < scale; k++)
		digits[nd++] = k < fl ? fr[k] : '0';
	const char *next = digits;
	size_t pos = 0;
	/* integer part: leading partial group, full groups; fraction: full groups, partial group */
	pos += dec_group(&next, intg % 9, out + pos);
	for (unsigned g = 0; g < intg / 9; g++)
		pos += dec_group(&next, 9, out + pos);
	for (unsigned g = 0; g < scale / 9; g++)
		pos += dec_group(&next, 9, out + pos);
	pos += dec_group(&next, scale % 9, out + pos);
	out[0] ^= 0x80;
	if (neg)
		for (size_t k = 0; k < pos; k++)
			out[k] ^= 0xff;
	return pos;
}

static void expect_decimal(const char *in, unsigned prec, unsigned scale, const char *want)
{
	struct th_column c = mkcol(TH_COL_NEWDECIMAL, (uint16_t)(prec << 8 | scale));
	uint8_t b[40];
	size_t n = enc_decimal(in, prec, scale, b);
	expect_text(&c, b, n, want);
}

static void test_rows__decodes_decimal_reference_vector(void **state)
{
	(void)state;
	/* MySQL's decimal2bin comment: 1234567890.1234 as DECIMAL(14,4), and its negation. */
	static const uint8_t pos[] = { 0x81, 0x0d, 0xfb, 0x38, 0xd2, 0x04, 0xd2 };
	static const uint8_t neg[] = { 0x7e, 0xf2, 0x04, 0xc7, 0x2d, 0xfb, 0x2d };
	struct th_column c = mkcol(TH_COL_NEWDECIMAL, 14 << 8 | 4);
	expect_text(&c, pos, sizeof pos, "1234567890.1234");
	expect_text(&c, neg, sizeof neg, "-1234567890.1234");
	uint8_t b[40];
	assert_int_equal(enc_decimal("1234567890.1234", 14, 4, b), sizeof pos);
	assert_memory_equal(b, pos, sizeof pos);
	assert_int_equal(enc_decimal("-1234567890.1234", 14, 4, b), sizeof neg);
	assert_memory_equal(b, neg, sizeof neg);
}

static void test_rows__decodes_negative_decimal(void **state)
{
	(void)state;
	expect_decimal("-1234.56", 10, 4, "-1234.5600");
	expect_decimal("-0.01", 5, 2, "-0.01");
	expect_decimal("-9", 1, 0, "-9");
	expect_decimal("-123456789", 9, 0, "-123456789");
	expect_decimal("-1", 18, 9, "-1.000000000");
	expect_decimal("-0.000000001", 18, 9, "-0.000000001");
}

static void test_rows__decodes_decimal_of_various_precisions(void **state)
{
	(void)state;
	expect_decimal("0", 5, 2, "0.00");
	expect_decimal("0", 10, 0, "0");
	expect_decimal("0.5", 5, 5, "0.50000");
	expect_decimal("0.123456789", 9, 9, "0.123456789");
	expect_decimal("99999", 5, 0, "99999");
	expect_decimal("12345678901234567890", 20, 0, "12345678901234567890");
	expect_decimal("1000000000", 10, 0, "1000000000");
	expect_decimal("1.5", 10, 1, "1.5");
	expect_decimal("3.14159", 6, 5, "3.14159");
	expect_decimal("7", 65, 0, "7");
	char nines[80], want[96];
	memset(nines, '9', 35);
	nines[35] = '.';
	memset(nines + 36, '9', 30);
	nines[66] = '\0';
	expect_decimal(nines, 65, 30, nines);
	snprintf(want, sizeof want, "-%s", nines);
	expect_decimal(want, 65, 30, want);
	memset(nines, '9', 65);
	nines[65] = '\0';
	expect_decimal(nines, 65, 0, nines);
	expect_decimal("-0.000000000000000000000000000001", 65, 30,
		       "-0.000000000000000000000000000001");
	/* MariaDB allows 38 fraction digits. */
	expect_decimal("0.12345678901234567890123456789012345678", 38, 38,
		       "0.12345678901234567890123456789012345678");
}

static void test_rows__decimal_zero_has_no_negative_sign(void **state)
{
	(void)state;
	/* A negative zero as some writers produce it: all bytes inverted. */
	struct th_column c = mkcol(TH_COL_NEWDECIMAL, 5 << 8 | 2);
	uint8_t b[8];
	size_t n = enc_decimal("0", 5, 2, b);
	for (size_t k = 0; k < n; k++)
		b[k] ^= 0xff;
	expect_text(&c, b, n, "0.00");
}

static void test_rows__rejects_inconsistent_decimals(void **state)
{
	(void)state;
	uint8_t b[40];
	/* A 9-digit group of 10^9. */
	struct th_column c = mkcol(TH_COL_NEWDECIMAL, 9 << 8 | 0);
	wr_be(b, 1000000000u, 4);
	b[0] ^= 0x80;
	expect_error(&c, b, 4, -TH_EBINLOG);
	/* A 2-digit leading group of 100. */
	c.meta = 2 << 8 | 0;
	b[0] = 0x80 | 100;
	expect_error(&c, b, 1, -TH_EBINLOG);
	memset(b, 0x80, sizeof b);
	c.meta = 0 << 8 | 0;
	expect_error(&c, b, 8, -TH_EBINLOG);
	c.meta = 66 << 8 | 0;
	expect_error(&c, b, 32, -TH_EBINLOG);
	c.meta = 5 << 8 | 6;
	expect_error(&c, b, 8, -TH_EBINLOG);
}

/* ---- BIT, YEAR, DATE ---- */

static void test_rows__decodes_bit_of_every_width(void **state)
{
	(void)state;
	for (unsigned bits = 1; bits <= 64; bits++) {
		struct th_column c = mkcol(TH_COL_BIT, (uint16_t)((bits / 8) << 8 | (bits % 8)));
		size_t w = (bits + 7) / 8;
		uint64_t all = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
		uint64_t vals[3] = { 0, all, (uint64_t)1 << (bits - 1) };
		for (int k = 0; k < 3; k++) {
			uint8_t b[8];
			wr_be(b, vals[k], w);
			struct th_value v;
			assert_int_equal(decode_one(&c, b, w, &v), 0);
			assert_int_equal(v.kind, TH_VAL_BIT);
			assert_true(v.u == vals[k]);
			assert_int_equal(v.len, w);
			char want[32];
			snprintf(want, sizeof want, "%llu", (unsigned long long)vals[k]);
			char *got = json_of(&c, &v);
			assert_string_equal(got, want);
			free(got);
		}
	}
	struct th_column c = mkcol(TH_COL_BIT, 0);
	uint8_t b[9] = { 0 };
	expect_error(&c, b, 1, -TH_EBINLOG);
	c.meta = 8 << 8 | 1; /* 65 bits */
	expect_error(&c, b, 9, -TH_EBINLOG);
}

static void test_rows__decodes_year_and_date(void **state)
{
	(void)state;
	struct th_column y = mkcol(TH_COL_YEAR, 0);
	expect_json(&y, (const uint8_t[]){ 0 }, 1, "0");
	expect_json(&y, (const uint8_t[]){ 1 }, 1, "1901");
	expect_json(&y, (const uint8_t[]){ 124 }, 1, "2024");
	expect_json(&y, (const uint8_t[]){ 255 }, 1, "2155");

	struct th_column d = mkcol(TH_COL_DATE, 0);
	uint8_t b[3];
	wr_le(b, 2024u << 9 | 2u << 5 | 29u, 3);
	expect_text(&d, b, 3, "2024-02-29");
	wr_le(b, 0, 3);
	expect_text(&d, b, 3, "0000-00-00");
	wr_le(b, 9999u << 9 | 12u << 5 | 31u, 3);
	expect_text(&d, b, 3, "9999-12-31");
	wr_le(b, 1000u << 9 | 1u << 5 | 1u, 3);
	d.type = TH_COL_NEWDATE;
	expect_text(&d, b, 3, "1000-01-01");
	wr_le(b, 2024u << 9 | 13u << 5 | 1u, 3);
	expect_error(&d, b, 3, -TH_EBINLOG);
}

/* ---- MySQL 5.5 TIME, DATETIME, TIMESTAMP ---- */

static void test_rows__decodes_old_time_datetime_and_timestamp(void **state)
{
	(void)state;
	uint8_t b[8];
	struct th_column t = mkcol(TH_COL_TIME, 0);
	wr_le(b, 8385959, 3);
	expect_text(&t, b, 3, "838:59:59");
	wr_le(b, (uint32_t)-8385959 & 0xffffff, 3);
	expect_text(&t, b, 3, "-838:59:59");
	wr_le(b, 0, 3);
	expect_text(&t, b, 3, "00:00:00");
	wr_le(b, 123456, 3);
	expect_text(&t, b, 3, "12:34:56");
	wr_le(b, 6000, 3); /* 00:60:00 */
	expect_error(&t, b, 3, -TH_EBINLOG);
	t.meta = 3;
	expect_error(&t, b, 3, -TH_EUNSUPPORTED);

	struct th_column dt = mkcol(TH_COL_DATETIME, 0);
	wr_le(b, 20240229123456ull, 8);
	expect_text(&dt, b, 8, "2024-02-29 12:34:56");
	wr_le(b, 0, 8);
	expect_text(&dt, b, 8, "0000-00-00 00:00:00");
	wr_le(b, 99991231235959ull, 8);
	expect_text(&dt, b, 8, "9999-12-31 23:59:59");
	wr_le(b, 20241301000000ull, 8);
	expect_error(&dt, b, 8, -TH_EBINLOG);

	struct th_column ts = mkcol(TH_COL_TIMESTAMP, 0);
	wr_le(b, 0, 4);
	expect_text(&ts, b, 4, "0000-00-00 00:00:00");
	wr_le(b, 1709210096u, 4);
	expect_text(&ts, b, 4, "2024-02-29 12:34:56");
	wr_le(b, 1, 4);
	expect_text(&ts, b, 4, "1970-01-01 00:00:01");
	wr_le(b, 0xffffffffu, 4);
	expect_text(&ts, b, 4, "2106-02-07 06:28:15");
}

/* ---- TIME2, DATETIME2, TIMESTAMP2 ---- */

static size_t enc_frac(uint8_t *p, uint32_t usec, unsigned fsp)
{
	switch ((fsp + 1) / 2) {
	case 1: p[0] = (uint8_t)(usec / 10000); return 1;
	case 2: wr_be(p, usec / 100, 2); return 2;
	case 3: wr_be(p, usec, 3); return 3;
	default: return 0;
	}
}

static size_t enc_datetime2(uint8_t *p, unsigned y, unsigned mo, unsigned d, unsigned h,
			    unsigned mi, unsigned s, uint32_t usec, unsigned fsp)
{
	uint64_t ym = (uint64_t)y * 13 + mo;
	uint64_t x = ((ym << 5 | d) << 17) | (uint64_t)h << 12 | (uint64_t)mi << 6 | s;
	wr_be(p, x + 0x8000000000ull, 5);
	return 5 + enc_frac(p + 5, usec, fsp);
}

static size_t enc_timestamp2(uint8_t *p, uint32_t sec, uint32_t usec, unsigned fsp)
{
	wr_be(p, sec, 4);
	return 4 + enc_frac(p + 4, usec, fsp);
}

/* The fraction cut to fsp digits: MySQL stores it already truncated. */
static uint32_t cut(uint32_t usec, unsigned fsp)
{
	static const uint32_t p10[7] = { 1000000, 100000, 10000, 1000, 100, 10, 1 };
	return usec / p10[fsp] * p10[fsp];
}

static void test_rows__decodes_datetime2_with_every_fsp(void **state)
{
	(void)state;
	static const char *want[7] = {
		"2024-02-29 12:34:56", "2024-02-29 12:34:56.1", "2024-02-29 12:34:56.12",
		"2024-02-29 12:34:56.123", "2024-02-29 12:34:56.1234", "2024-02-29 12:34:56.12345",
		"2024-02-29 12:34:56.123456",
	};
	static const char *zero[7] = {
		"0000-00-00 00:00:00", "0000-00-00 00:00:00.0", "0000-00-00 00:00:00.00",
		"0000-00-00 00:00:00.000", "0000-00-00 00:00:00.0000", "0000-00-00 00:00:00.00000",
		"0000-00-00 00:00:00.000000",
	};
	for (unsigned fsp = 0; fsp <= 6; fsp++) {
		struct th_column c = mkcol(TH_COL_DATETIME2, (uint16_t)fsp);
		uint8_t b[8];
		size_t n = enc_datetime2(b, 2024, 2, 29, 12, 34, 56, cut(123456, fsp), fsp);
		assert_int_equal(n, 5 + (fsp + 1) / 2);
		expect_text(&c, b, n, want[fsp]);
		n = enc_datetime2(b, 0, 0, 0, 0, 0, 0, 0, fsp);
		expect_text(&c, b, n, zero[fsp]);
	}
	struct th_column c = mkcol(TH_COL_DATETIME2, 6);
	uint8_t b[8];
	size_t n = enc_datetime2(b, 9999, 12, 31, 23, 59, 59, 999999, 6);
	expect_text(&c, b, n, "9999-12-31 23:59:59.999999");
	n = enc_datetime2(b, 1000, 1, 1, 0, 0, 0, 1, 6);
	expect_text(&c, b, n, "1000-01-01 00:00:00.000001");
	/* '2015-01-15 23:24:25' as DATETIME(0), the bit layout worked out by hand. */
	c.meta = 0;
	expect_text(&c, (const uint8_t[]){ 0x99, 0x95, 0x1f, 0x76, 0x19 }, 5, "2015-01-15 23:24:25");
	/* 24:00:00 and a fraction of 10^6 are not values. */
	n = enc_datetime2(b, 2024, 1, 1, 24, 0, 0, 0, 0);
	expect_error(&c, b, n, -TH_EBINLOG);
	c.meta = 6;
	n = enc_datetime2(b, 2024, 1, 1, 0, 0, 0, 1000000, 6);
	expect_error(&c, b, n, -TH_EBINLOG);
	c.meta = 2;
	n = enc_datetime2(b, 2024, 1, 1, 0, 0, 0, 0, 2);
	b[5] = 100;
	expect_error(&c, b, n, -TH_EBINLOG);
}

static void test_rows__decodes_timestamp2_with_every_fsp_in_utc(void **state)
{
	(void)state;
	static const char *want[7] = {
		"2024-02-29 12:34:56", "2024-02-29 12:34:56.9", "2024-02-29 12:34:56.98",
		"2024-02-29 12:34:56.987", "2024-02-29 12:34:56.9876", "2024-02-29 12:34:56.98765",
		"2024-02-29 12:34:56.987654",
	};
	for (unsigned fsp = 0; fsp <= 6; fsp++) {
		struct th_column c = mkcol(TH_COL_TIMESTAMP2, (uint16_t)fsp);
		uint8_t b[8];
		size_t n = enc_timestamp2(b, 1709210096u, cut(987654, fsp), fsp);
		expect_text(&c, b, n, want[fsp]);
		struct th_value v;
		assert_int_equal(decode_one(&c, b, n, &v), 0);
		assert_int_equal(v.i, 1709210096);
		assert_int_equal(v.u, cut(987654, fsp));
		n = enc_timestamp2(b, 0, 0, fsp);
		assert_int_equal(decode_one(&c, b, n, &v), 0);
		assert_memory_equal(v.text, "0000-00-00 00:00:00", 19);
		assert_int_equal(strlen(v.text), 19 + (fsp ? fsp + 1 : 0));
	}
	struct th_column c = mkcol(TH_COL_TIMESTAMP2, 0);
	uint8_t b[8];
	size_t n = enc_timestamp2(b, 2147483647u, 0, 0);
	expect_text(&c, b, n, "2038-01-19 03:14:07");
	n = enc_timestamp2(b, 951782400u, 0, 0); /* leap day of a century leap year */
	expect_text(&c, b, n, "2000-02-29 00:00:00");
	n = enc_timestamp2(b, 4107542399u, 0, 0);
	expect_text(&c, b, n, "2100-02-28 23:59:59");
}

static void test_rows__decodes_time2_with_every_fsp(void **state)
{
	(void)state;
	static const char *want[7] = {
		"12:34:56", "12:34:56.1", "12:34:56.12", "12:34:56.123", "12:34:56.1234",
		"12:34:56.12345", "12:34:56.123456",
	};
	for (unsigned fsp = 0; fsp <= 6; fsp++) {
		struct th_column c = mkcol(TH_COL_TIME2, (uint16_t)fsp);
		uint8_t b[8];
		uint64_t hms = 12u << 12 | 34u << 6 | 56u;
		size_t n;
		if (fsp >= 5) {
			wr_be(b, (hms << 24 | cut(123456, fsp)) + 0x800000000000ull, 6);
			n = 6;
		} else {
			wr_be(b, hms + 0x800000, 3);
			n = 3 + enc_frac(b + 3, cut(123456, fsp), fsp);
		}
		expect_text(&c, b, n, want[fsp]);
	}
	struct th_column c = mkcol(TH_COL_TIME2, 0);
	expect_text(&c, (const uint8_t[]){ 0xb4, 0x6e, 0xfb }, 3, "838:59:59");
	expect_text(&c, (const uint8_t[]){ 0x80, 0x00, 0x00 }, 3, "00:00:00");
	c.meta = 7;
	expect_error(&c, (const uint8_t[]){ 0x80, 0, 0, 0, 0, 0, 0 }, 7, -TH_EBINLOG);
}

static void test_rows__decodes_negative_time2(void **state)
{
	(void)state;
	/* Vectors from my_time_packed_to_binary's arithmetic (see the file comment). */
	struct {
		unsigned fsp;
		uint8_t b[6];
		size_t n;
		const char *want;
	} cases[] = {
		{ 6, { 0x4b, 0x91, 0x05, 0x00, 0x00, 0x00 }, 6, "-838:59:59.000000" },
		{ 0, { 0x4b, 0x91, 0x05 }, 3, "-838:59:59" },
		{ 1, { 0x7f, 0xff, 0xfe, 0xce }, 4, "-00:00:01.5" },
		{ 2, { 0x7f, 0xff, 0xff, 0xff }, 4, "-00:00:00.01" },
		{ 3, { 0x7f, 0x37, 0x47, 0xe1, 0x2e }, 5, "-12:34:56.789" },
		{ 4, { 0x7f, 0xef, 0x7c, 0xee, 0x6c }, 5, "-01:02:03.4500" },
		{ 5, { 0x7f, 0xef, 0x7c, 0xf9, 0x07, 0xb4 }, 6, "-01:02:03.45678" },
		{ 6, { 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff }, 6, "-01:00:00.000001" },
		{ 6, { 0x80, 0xc8, 0xb8, 0x01, 0xe2, 0x40 }, 6, "12:34:56.123456" },
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct th_column c = mkcol(TH_COL_TIME2, (uint16_t)cases[k].fsp);
		expect_text(&c, cases[k].b, cases[k].n, cases[k].want);
	}
}

/* ---- strings ---- */

static void test_rows__decodes_varchar_with_one_and_two_byte_lengths(void **state)
{
	(void)state;
	uint8_t b[600];
	struct th_column c = mkcol(TH_COL_VARCHAR, 255);
	b[0] = 3;
	memcpy(b + 1, "abc", 3);
	expect_json(&c, b, 4, "\"abc\"");
	c.meta = 256;
	wr_le(b, 3, 2);
	memcpy(b + 2, "xyz", 3);
	expect_json(&c, b, 5, "\"xyz\"");
	/* VARCHAR(512) utf8mb4: 2048 bytes at most, 2-byte length. */
	c.meta = 2048;
	wr_le(b, 500, 2);
	memset(b + 2, 'p', 500);
	struct th_value v;
	assert_int_equal(decode_one(&c, b, 502, &v), 0);
	assert_int_equal(v.kind, TH_VAL_STRING);
	assert_int_equal(v.len, 500);
	assert_ptr_not_equal(v.bytes, NULL);
	/* Empty string. */
	wr_le(b, 0, 2);
	expect_json(&c, b, 2, "\"\"");
	/* Longer than the column can hold: inconsistent. */
	c.meta = 4;
	b[0] = 5;
	expect_error(&c, b, 6, -TH_EBINLOG);
	/* VARBINARY is bytes. */
	c = mkcol(TH_COL_VARCHAR, 10);
	c.binary = true;
	b[0] = 2;
	b[1] = 0xff;
	b[2] = 0x00;
	assert_int_equal(decode_one(&c, b, 3, &v), 0);
	assert_int_equal(v.kind, TH_VAL_BYTES);
	char *got = json_of(&c, &v);
	assert_string_equal(got, "{\"base64\":\"/wA=\"}");
	free(got);
}

static void test_rows__decodes_char_longer_than_255_bytes(void **state)
{
	(void)state;
	/* CHAR(255) utf8mb4 = 1020 bytes: 0x3fc; bits 8-9 go inverted into byte0 bits 4-5. */
	uint16_t meta = (uint16_t)((0xfe ^ ((1020 & 0x300) >> 4)) << 8 | (1020 & 0xff));
	assert_int_equal(meta, 0xcefc);
	struct th_column c = mkcol(TH_COL_STRING, meta);
	uint8_t b[400];
	wr_le(b, 300, 2);
	memset(b + 2, 'c', 300);
	struct th_value v;
	assert_int_equal(decode_one(&c, b, 302, &v), 0);
	assert_int_equal(v.kind, TH_VAL_STRING);
	assert_int_equal(v.len, 300);
	assert_int_equal(v.bytes[0], 'c');
	/* CHAR(10): one length byte. */
	c.meta = 0xfe0a;
	b[0] = 2;
	memcpy(b + 1, "hi", 2);
	expect_json(&c, b, 3, "\"hi\"");
	/* CHAR(64) utf8mb4 = 256 bytes: the smallest with 2 length bytes. */
	c.meta = (uint16_t)((0xfe ^ ((256 & 0x300) >> 4)) << 8 | (256 & 0xff));
	assert_int_equal(c.meta, 0xee00);
	wr_le(b, 1, 2);
	b[2] = 'z';
	expect_json(&c, b, 3, "\"z\"");
	/* A real type this decoder does not know is not guessed at. */
	c.meta = 0xfd0a;
	expect_error(&c, b, 3, -TH_EUNSUPPORTED);
}

static void test_rows__renders_multibyte_utf8_as_string(void **state)
{
	(void)state;
	const char *s = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \"q\"\n";
	size_t n = strlen(s);
	struct th_column c = mkcol(TH_COL_VARCHAR, 100);
	c.charset = 45;
	uint8_t b[64];
	b[0] = (uint8_t)n;
	memcpy(b + 1, s, n);
	expect_json(&c, b, n + 1, "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \\\"q\\\"\\n\"");
}

static void test_rows__renders_invalid_utf8_as_base64(void **state)
{
	(void)state;
	struct th_column c = mkcol(TH_COL_VARCHAR, 100);
	/* Truncated sequence, overlong, surrogate: none is UTF-8. */
	expect_json(&c, (const uint8_t[]){ 2, 'a', 0xc3 }, 3, "{\"base64\":\"YcM=\"}");
	expect_json(&c, (const uint8_t[]){ 2, 0xc0, 0xaf }, 3, "{\"base64\":\"wK8=\"}");
	expect_json(&c, (const uint8_t[]){ 3, 0xed, 0xa0, 0x80 }, 4, "{\"base64\":\"7aCA\"}");
	/* latin1 'é' is not transcoded. */
	c.charset = 8;
	expect_json(&c, (const uint8_t[]){ 1, 0xe9 }, 2, "{\"base64\":\"6Q==\"}");
}

static void test_rows__decodes_blobs_of_every_length_size(void **state)
{
	(void)state;
	uint8_t b[16];
	for (unsigned m = 1; m <= 4; m++) {
		struct th_column c = mkcol(TH_COL_BLOB, (uint16_t)m);
		wr_le(b, 3, m);
		memcpy(b + m, "a\0b", 3);
		struct th_value v;
		assert_int_equal(decode_one(&c, b, m + 3, &v), 0);
		assert_int_equal(v.kind, TH_VAL_STRING); /* charset unknown: TEXT */
		assert_int_equal(v.len, 3);
		char *got = json_of(&c, &v);
		assert_string_equal(got, "\"a\\u0000b\"");
		free(got);
		c.binary = true;
		assert_int_equal(decode_one(&c, b, m + 3, &v), 0);
		assert_int_equal(v.kind, TH_VAL_BYTES);
		c.binary = false;
		c.charset = 63;
		assert_int_equal(decode_one(&c, b, m + 3, &v), 0);
		assert_int_equal(v.kind, TH_VAL_BYTES);
		/* Empty. */
		wr_le(b, 0, m);
		assert_int_equal(decode_one(&c, b, m, &v), 0);
		assert_int_equal(v.len, 0);
		char *e = json_of(&c, &v);
		assert_string_equal(e, "\"\"");
		free(e);
	}
	struct th_column c = mkcol(TH_COL_BLOB, 0);
	expect_error(&c, b, 4, -TH_EBINLOG);
	c.meta = 5;
	expect_error(&c, b, 8, -TH_EBINLOG);
	/* The sized BLOB types imply their length size when meta is absent. */
	c = mkcol(TH_COL_MEDIUM_BLOB, 0);
	wr_le(b, 1, 3);
	b[3] = 'm';
	expect_json(&c, b, 4, "\"m\"");
}

static void test_rows__decodes_16_mib_blob(void **state)
{
	(void)state;
	size_t n = 16u << 20;
	uint8_t *b = malloc(n + 4);
	for (size_t k = 0; k < n; k++)
		b[k + 4] = (uint8_t)(k * 131);
	wr_le(b, n, 4);
	struct th_column c = mkcol(TH_COL_BLOB, 4);
	c.binary = true;
	struct th_value v;
	/* Prefixes at a coarse step: each copy is 16 MiB. */
	assert_int_equal(decode_one_ex(&c, b, n + 4, &v, (n + 4) / 5), 0);
	assert_int_equal(v.kind, TH_VAL_BYTES);
	assert_int_equal(v.len, n);
	assert_int_equal(v.bytes[n - 1], (uint8_t)((n - 1) * 131));
	/* MEDIUMBLOB's maximum, 16 MiB - 1, with a 3-byte length. */
	c.meta = 3;
	wr_le(b + 1, n - 1, 3);
	assert_int_equal(decode_one_ex(&c, b + 1, n + 2, &v, 1 << 20), 0);
	assert_int_equal(v.len, n - 1);
	/* One byte short of the length it claims. */
	assert_int_equal(decode_one_ex(&c, b + 1, n + 1, &v, 1), -TH_EBINLOG);
	free(b);
}

static void test_rows__decodes_enum_and_set_with_and_without_names(void **state)
{
	(void)state;
	static const char *const names[] = { "red", "green", "blue" };
	static const uint32_t lens[] = { 3, 5, 4 };
	struct th_column c = mkcol(TH_COL_STRING, TH_COL_ENUM << 8 | 1);
	expect_json(&c, (const uint8_t[]){ 2 }, 1, "2");
	c.strs = names;
	c.str_lens = lens;
	c.nstrs = 3;
	expect_json(&c, (const uint8_t[]){ 2 }, 1, "\"green\"");
	expect_json(&c, (const uint8_t[]){ 0 }, 1, "\"\"");
	expect_json(&c, (const uint8_t[]){ 9 }, 1, "9");
	struct th_value v;
	assert_int_equal(decode_one(&c, (const uint8_t[]){ 3 }, 1, &v), 0);
	assert_int_equal(v.kind, TH_VAL_ENUM);
	assert_int_equal(v.u, 3);
	c.meta = TH_COL_ENUM << 8 | 2;
	expect_json(&c, (const uint8_t[]){ 0x2c, 0x01 }, 2, "300");
	expect_json(&c, (const uint8_t[]){ 1, 0 }, 2, "\"red\"");
	c.meta = TH_COL_ENUM << 8 | 3;
	expect_error(&c, (const uint8_t[]){ 1, 0, 0 }, 3, -TH_EBINLOG);

	c.meta = TH_COL_SET << 8 | 1;
	expect_json(&c, (const uint8_t[]){ 5 }, 1, "\"red,blue\"");
	expect_json(&c, (const uint8_t[]){ 0 }, 1, "\"\"");
	expect_json(&c, (const uint8_t[]){ 7 }, 1, "\"red,green,blue\"");
	expect_json(&c, (const uint8_t[]){ 8 }, 1, "8");
	c.strs = NULL;
	c.str_lens = NULL;
	c.nstrs = 0;
	expect_json(&c, (const uint8_t[]){ 5 }, 1, "5");
	c.meta = TH_COL_SET << 8 | 8;
	expect_json(&c, (const uint8_t[]){ 0, 0, 0, 0, 0, 0, 0, 0x80 }, 8, "9223372036854775808");
	c.meta = TH_COL_SET << 8 | 9;
	expect_error(&c, (const uint8_t[]){ 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 9, -TH_EBINLOG);
	/* The types themselves, as some writers put them in the column list. */
	c = mkcol(TH_COL_SET, 2);
	expect_json(&c, (const uint8_t[]){ 0x01, 0x01 }, 2, "257");
	c = mkcol(TH_COL_ENUM, 1);
	expect_json(&c, (const uint8_t[]){ 4 }, 1, "4");
}

static void test_rows__decodes_geometry_and_vector_as_bytes(void **state)
{
	(void)state;
	uint8_t b[32];
	wr_le(b, 25, 4);
	memset(b + 4, 0, 25);
	b[8] = 1; /* WKB byte order */
	struct th_column c = mkcol(TH_COL_GEOMETRY, 4);
	struct th_value v;
	assert_int_equal(decode_one(&c, b, 29, &v), 0);
	assert_int_equal(v.kind, TH_VAL_BYTES);
	assert_int_equal(v.len, 25);
	c = mkcol(TH_COL_VECTOR, 4);
	wr_le(b, 8, 4);
	float f[2] = { 1.0f, -2.0f };
	memcpy(b + 4, f, 8);
	assert_int_equal(decode_one(&c, b, 12, &v), 0);
	assert_int_equal(v.kind, TH_VAL_BYTES);
	assert_int_equal(v.len, 8);
	char *got = json_of(&c, &v);
	assert_string_equal(got, "{\"base64\":\"AACAPwAAAMA=\"}");
	free(got);
}

static void test_rows__rejects_types_it_cannot_read(void **state)
{
	(void)state;
	uint8_t b[16] = { 0 };
	struct th_column c = mkcol(TH_COL_DECIMAL, 0);
	expect_error(&c, b, 8, -TH_EUNSUPPORTED);
	c = mkcol(TH_COL_TYPED_ARRAY, 0);
	expect_error(&c, b, 8, -TH_EUNSUPPORTED);
	c = mkcol(100, 0);
	expect_error(&c, b, 8, -TH_EUNSUPPORTED);
	c = mkcol(TH_COL_DATETIME, 6);
	expect_error(&c, b, 8, -TH_EUNSUPPORTED);
	c = mkcol(TH_COL_TIMESTAMP, 6);
	expect_error(&c, b, 8, -TH_EUNSUPPORTED);
	/* TH_COL_NULL takes no bytes and is always NULL. */
	c = mkcol(TH_COL_NULL, 0);
	struct th_value v;
	assert_int_equal(decode_one(&c, b, 0, &v), 0);
	assert_int_equal(v.kind, TH_VAL_NULL);
	/* Absent values are not rendered. */
	struct th_buf out = TH_BUF_INIT;
	v.kind = TH_VAL_ABSENT;
	assert_int_equal(th_value_to_json(&c, &v, &out), -EINVAL);
	assert_int_equal(out.len, 0);
	th_buf_free(&out);
}

/* ---- whole images ---- */

static void test_rows__decodes_nulls_from_the_image_bitmap(void **state)
{
	(void)state;
	/* Ten INT columns, all present; columns 1, 8 and 9 are NULL. */
	struct th_column cols[10];
	for (int k = 0; k < 10; k++)
		cols[k] = mkcol(TH_COL_LONG, 0);
	struct th_table_map tm = { .ncols = 10, .cols = cols };
	uint8_t present[2] = { 0xff, 0x03 };
	uint8_t img[2 + 7 * 4];
	img[0] = 0x02;
	img[1] = 0x03;
	size_t pos = 2;
	for (int k = 0; k < 10; k++) {
		if (k == 1 || k >= 8)
			continue;
		wr_le(img + pos, (uint32_t)(k * 100), 4);
		pos += 4;
	}
	struct th_value v[10];
	size_t used;
	assert_int_equal(th_row_decode(&tm, present, img, pos, v, &used), 0);
	assert_int_equal(used, pos);
	for (int k = 0; k < 10; k++) {
		if (k == 1 || k >= 8) {
			assert_int_equal(v[k].kind, TH_VAL_NULL);
			char *s = json_of(&cols[k], &v[k]);
			assert_string_equal(s, "null");
			free(s);
		} else {
			assert_int_equal(v[k].kind, TH_VAL_INT);
			assert_int_equal(v[k].i, k * 100);
		}
	}
	assert_prefixes_rejected(&tm, present, img, pos, 1);
}

static void test_rows__skips_absent_columns_in_partial_images(void **state)
{
	(void)state;
	/*
	 * Nine columns, only 0, 3 and 8 present (an UPDATE's partial image): the
	 * null bitmap is one byte (three bits), not two; present column 3 is the
	 * second present one and its null bit is bit 1.
	 */
	struct th_column cols[9];
	for (int k = 0; k < 9; k++)
		cols[k] = mkcol(TH_COL_SHORT, 0);
	struct th_table_map tm = { .ncols = 9, .cols = cols };
	uint8_t present[2] = { 0x09, 0x01 };
	uint8_t img[] = { 0x02, 0x11, 0x00, 0x22, 0x00, 0xee };
	struct th_value v[9];
	size_t used;
	assert_int_equal(th_row_decode(&tm, present, img, 5, v, &used), 0);
	assert_int_equal(used, 5);
	assert_int_equal(v[0].kind, TH_VAL_INT);
	assert_int_equal(v[0].i, 0x11);
	assert_int_equal(v[3].kind, TH_VAL_NULL);
	assert_int_equal(v[8].kind, TH_VAL_INT);
	assert_int_equal(v[8].i, 0x22);
	for (int k = 1; k < 8; k++)
		if (k != 3)
			assert_int_equal(v[k].kind, TH_VAL_ABSENT);
	/* Bits past ncols in the present bitmap are ignored. */
	present[1] = 0xff;
	assert_int_equal(th_row_decode(&tm, present, img, 5, v, &used), 0);
	assert_int_equal(used, 5);
	present[1] = 0x01;
	assert_prefixes_rejected(&tm, present, img, 5, 1);
	/* No columns present: an empty null bitmap and nothing else. */
	uint8_t none[2] = { 0, 0 };
	assert_int_equal(th_row_decode(&tm, none, img, 0, v, &used), 0);
	assert_int_equal(used, 0);
	assert_int_equal(th_row_decode(&tm, NULL, img, 5, v, &used), -EINVAL);
}

/* topo_data: path VARCHAR(512) utf8mb4, data MEDIUMBLOB, version BIGINT, two TIMESTAMP(0)s. */
static void topo_table(struct th_column cols[5], struct th_table_map *tm)
{
	cols[0] = mkcol(TH_COL_VARCHAR, 2048);
	cols[0].charset = 45;
	cols[0].nullable = false;
	cols[1] = mkcol(TH_COL_BLOB, 3);
	cols[1].binary = true;
	cols[2] = mkcol(TH_COL_LONGLONG, 0);
	cols[3] = mkcol(TH_COL_TIMESTAMP2, 0);
	cols[4] = mkcol(TH_COL_TIMESTAMP2, 0);
	memset(tm, 0, sizeof *tm);
	tm->ncols = 5;
	tm->cols = cols;
}

static size_t topo_image(uint8_t *img, const char *path, const uint8_t *data, size_t dlen, uint64_t ver)
{
	size_t pos = 0, pl = strlen(path);
	img[pos++] = 0;
	wr_le(img + pos, pl, 2);
	memcpy(img + pos + 2, path, pl);
	pos += 2 + pl;
	wr_le(img + pos, dlen, 3);
	memcpy(img + pos + 3, data, dlen);
	pos += 3 + dlen;
	wr_le(img + pos, ver, 8);
	pos += 8;
	pos += enc_timestamp2(img + pos, 1709210096u, 0, 0);
	pos += enc_timestamp2(img + pos, 1709210097u, 0, 0);
	return pos;
}

static void test_rows__decodes_a_topo_data_row_and_renders_it(void **state)
{
	(void)state;
	struct th_column cols[5];
	struct th_table_map tm;
	topo_table(cols, &tm);
	uint8_t present = 0x1f;
	uint8_t img[256];
	const uint8_t data[] = { 0x0a, 0x03, 'z', 'o', 'n', 0xff };
	size_t n = topo_image(img, "/keyspaces/commerce/shards/-80", data, sizeof data, 42);
	struct th_value v[5];
	size_t used;
	assert_int_equal(th_row_decode(&tm, &present, img, n, v, &used), 0);
	assert_int_equal(used, n);
	struct th_buf out = TH_BUF_INIT;
	for (int k = 0; k < 5; k++) {
		th_buf_putc(&out, k ? ',' : '[');
		assert_int_equal(th_value_to_json(&cols[k], &v[k], &out), 0);
	}
	th_buf_putc(&out, ']');
	assert_string_equal(th_buf_cstr(&out),
			    "[\"/keyspaces/commerce/shards/-80\",{\"base64\":\"CgN6b27/\"},42,"
			    "\"2024-02-29 12:34:56\",\"2024-02-29 12:34:57\"]");
	th_buf_free(&out);
	assert_prefixes_rejected(&tm, &present, img, n, 1);

	/* Several images back to back, as in one ROWS event: each says where it ends. */
	uint8_t many[1024];
	size_t total = 0;
	for (int k = 0; k < 4; k++)
		total += topo_image(many + total, "/a", data, (size_t)k, (uint64_t)k);
	size_t at = 0;
	for (int k = 0; k < 4; k++) {
		assert_int_equal(th_row_decode(&tm, &present, many + at, total - at, v, &used), 0);
		assert_int_equal(v[1].len, k);
		assert_int_equal(v[2].i, k);
		at += used;
	}
	assert_int_equal(at, total);
}

static void test_rows__decodes_only_wanted_columns_and_steps_over_the_rest(void **state)
{
	(void)state;
	struct th_column cols[5];
	struct th_table_map tm;
	topo_table(cols, &tm);
	uint8_t present = 0x1f;
	uint8_t img[256];
	const uint8_t data[] = { 1, 2, 3 };
	size_t n = topo_image(img, "/a/b", data, sizeof data, 7);
	/* Two images back to back: the first's length must come out right
	 * although its timestamps are only stepped over. */
	size_t n2 = topo_image(img + n, "/c", data, 1, 8);
	struct th_value all[5], some[5];
	size_t used_all, used_some;
	uint8_t wanted = 0x05; /* path and version */
	assert_int_equal(th_row_decode(&tm, &present, img, n + n2, all, &used_all), 0);
	assert_int_equal(th_row_decode_wanted(&tm, &present, &wanted, img, n + n2, some, &used_some), 0);
	assert_int_equal(used_some, used_all);
	assert_int_equal(used_some, n);
	assert_int_equal(some[0].kind, TH_VAL_STRING);
	assert_int_equal(some[0].len, 4);
	assert_memory_equal(some[0].bytes, "/a/b", 4);
	assert_int_equal(some[2].i, 7);
	assert_int_equal(some[1].kind, TH_VAL_ABSENT);
	assert_int_equal(some[3].kind, TH_VAL_ABSENT);
	assert_int_equal(some[4].kind, TH_VAL_ABSENT);
	assert_int_equal(th_row_decode_wanted(&tm, &present, &wanted, img + n, n2, some, &used_some), 0);
	assert_int_equal(used_some, n2);
	assert_int_equal(some[2].i, 8);
	/* Stepping over still refuses a short image. */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(th_row_decode_wanted(&tm, &present, &wanted, img, k, some, &used_some), -TH_EBINLOG);
	/* A decimal stepped over by its size alone. */
	struct th_column dcols[2] = { mkcol(TH_COL_NEWDECIMAL, (10 << 8) | 2), mkcol(TH_COL_LONG, 0) };
	struct th_table_map dtm = { .ncols = 2, .cols = dcols };
	uint8_t dimg[16] = { 0 };
	dimg[0] = 0;                /* null bitmap */
	dimg[1] = 0x80;             /* DECIMAL(10,2) zero: 4 bytes for 8 integer digits, 1 for 2 fraction digits */
	wr_le(dimg + 6, 99, 4);
	uint8_t dpresent = 0x03, dwanted = 0x02;
	struct th_value dv[2];
	size_t dused;
	assert_int_equal(th_row_decode_wanted(&dtm, &dpresent, &dwanted, dimg, 10, dv, &dused), 0);
	assert_int_equal(dused, 10);
	assert_int_equal(dv[0].kind, TH_VAL_ABSENT);
	assert_int_equal(dv[1].i, 99);
}

static void test_rows__decodes_topo_rows_fast(void **state)
{
	(void)state;
	/* Reports the rate; the 3M rows/s target is for the optimized, unsanitized build. */
	struct th_column cols[5];
	struct th_table_map tm;
	topo_table(cols, &tm);
	uint8_t present = 0x1f;
	uint8_t img[512];
	uint8_t data[120];
	memset(data, 7, sizeof data);
	size_t n = topo_image(img, "/keyspaces/commerce/shards/-80/tablets/zone1-0000000100", data,
			      sizeof data, 12345);
	struct th_value v[5];
	size_t used, rows = 300000, sum = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t k = 0; k < rows; k++) {
		img[n - 1] = (uint8_t)k; /* keep the work from being hoisted */
		assert_int_equal(th_row_decode(&tm, &present, img, n, v, &used), 0);
		sum += used + (size_t)v[4].text[18];
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("th_row_decode: %.1f M topo rows/s (%zu)\n", (double)rows / s / 1e6, sum % 7);
}

/* ---- binary JSON ---- */

enum { J_SOBJ = 0, J_LOBJ = 1, J_SARR = 2, J_LARR = 3, J_LIT = 4, J_I16 = 5, J_U16 = 6,
       J_I32 = 7, J_U32 = 8, J_I64 = 9, J_U64 = 0xa, J_DBL = 0xb, J_STR = 0xc, J_OPQ = 0xf };

/* An encoded value: its type and bytes (no type byte). */
struct jv {
	uint8_t type;
	size_t n;
	uint8_t b[2048];
};

static struct jv jscalar(uint8_t type, uint64_t raw, size_t n)
{
	struct jv v = { .type = type, .n = n };
	wr_le(v.b, raw, n);
	return v;
}

static struct jv jstr(const char *s, size_t len)
{
	struct jv v = { .type = J_STR };
	size_t l = len;
	do {
		uint8_t ch = l & 0x7f;
		l >>= 7;
		v.b[v.n++] = (uint8_t)(ch | (l ? 0x80 : 0));
	} while (l);
	memcpy(v.b + v.n, s, len);
	v.n += len;
	return v;
}

static struct jv jdouble(double d)
{
	uint64_t x;
	memcpy(&x, &d, 8);
	return jscalar(J_DBL, x, 8);
}

static struct jv jopaque(uint8_t ftype, const uint8_t *d, size_t n)
{
	struct jv v = { .type = J_OPQ };
	v.b[v.n++] = ftype;
	v.b[v.n++] = (uint8_t)n; /* n < 128 in these tests */
	memcpy(v.b + v.n, d, n);
	v.n += n;
	return v;
}

static bool jinlined(uint8_t t, bool large)
{
	return t == J_LIT || t == J_I16 || t == J_U16 || (large && (t == J_I32 || t == J_U32));
}

/* json_binary::serialize's layout for an object (keys != NULL) or array. */
static struct jv jcontainer(bool large, const char *const *keys, size_t count, const struct jv *vals)
{
	struct jv r = { .type = (uint8_t)(keys ? (large ? J_LOBJ : J_SOBJ) : (large ? J_LARR : J_SARR)) };
	size_t osz = large ? 4 : 2, kent = keys ? osz + 2 : 0, vent = 1 + osz;
	size_t pos = 2 * osz + count * (kent + vent);
	for (size_t i = 0; keys && i < count; i++) {
		size_t kl = strlen(keys[i]);
		wr_le(r.b + 2 * osz + i * kent, pos, osz);
		wr_le(r.b + 2 * osz + i * kent + osz, kl, 2);
		memcpy(r.b + pos, keys[i], kl);
		pos += kl;
	}
	for (size_t i = 0; i < count; i++) {
		uint8_t *e = r.b + 2 * osz + count * kent + i * vent;
		e[0] = vals[i].type;
		memset(e + 1, 0, osz);
		if (jinlined(vals[i].type, large)) {
			memcpy(e + 1, vals[i].b, vals[i].n);
		} else {
			wr_le(e + 1, pos, osz);
			memcpy(r.b + pos, vals[i].b, vals[i].n);
			pos += vals[i].n;
		}
	}
	wr_le(r.b, count, osz);
	wr_le(r.b + osz, pos, osz);
	r.n = pos;
	return r;
}

/* The document (type byte + value) rendered, or the error; doc prefixes must all fail. */
static void expect_doc(const struct jv *v, const char *want)
{
	size_t n = v->n + 1;
	uint8_t *doc = malloc(n);
	doc[0] = v->type;
	memcpy(doc + 1, v->b, v->n);
	struct th_buf out = TH_BUF_INIT;
	int r = th_json_binary_to_text(doc, n, &out);
	if (r)
		fail_msg("document for %s: %d", want, r);
	if (strcmp(th_buf_cstr(&out), want))
		fail_msg("got %s, want %s", th_buf_cstr(&out), want);
	/* Through a JSON column too. */
	struct th_column c = mkcol(TH_COL_JSON, 4);
	uint8_t *img = malloc(n + 4);
	wr_le(img, n, 4);
	memcpy(img + 4, doc, n);
	struct th_value val;
	assert_int_equal(decode_one(&c, img, n + 4, &val), 0);
	assert_int_equal(val.kind, TH_VAL_JSON);
	char *s = json_of(&c, &val);
	assert_string_equal(s, want);
	free(s);
	free(img);
	th_buf_free(&out);
	/* Each strict prefix of a document whose scalars are not top-level literals is malformed. */
	for (size_t k = 1; k < n && v->type != J_LIT; k++) {
		uint8_t *t = malloc(k);
		memcpy(t, doc, k);
		struct th_buf o2 = TH_BUF_INIT;
		th_buf_puts(&o2, "keep");
		r = th_json_binary_to_text(t, k, &o2);
		if (r != -TH_EBINLOG)
			fail_msg("prefix %zu of %zu of %s: %d", k, n, want, r);
		assert_string_equal(th_buf_cstr(&o2), "keep");
		th_buf_free(&o2);
		free(t);
	}
	free(doc);
}

static void test_rows__json_renders_nested_object_and_array(void **state)
{
	(void)state;
	struct jv arr_items[4] = { jscalar(J_I16, 1, 2), jstr("x", 1), jscalar(J_LIT, 1, 1),
				   jscalar(J_LIT, 0, 1) };
	struct jv arr = jcontainer(false, NULL, 4, arr_items);
	static const char *const ik[] = { "c" };
	struct jv inner_v[1] = { jscalar(J_LIT, 2, 1) };
	struct jv inner = jcontainer(false, ik, 1, inner_v);
	static const char *const ok[] = { "a", "b" };
	struct jv outer_v[2] = { arr, inner };
	struct jv doc = jcontainer(false, ok, 2, outer_v);
	expect_doc(&doc, "{\"a\": [1, \"x\", true, null], \"b\": {\"c\": false}}");

	struct jv empty_o = jcontainer(false, ok, 0, NULL);
	expect_doc(&empty_o, "{}");
	struct jv empty_a = jcontainer(false, NULL, 0, NULL);
	expect_doc(&empty_a, "[]");
	struct jv nest[1] = { empty_a };
	struct jv deep = jcontainer(false, NULL, 1, nest);
	for (int k = 0; k < 5; k++) {
		nest[0] = deep;
		deep = jcontainer(false, NULL, 1, nest);
	}
	expect_doc(&deep, "[[[[[[[]]]]]]]");
}

static void test_rows__json_renders_all_scalar_kinds(void **state)
{
	(void)state;
	const char *tabs = "tab\there \"q\" \\ \xe2\x82\xac";
	struct jv items[] = {
		jscalar(J_I16, (uint16_t)-32768, 2), jscalar(J_U16, 65535, 2),
		jscalar(J_I32, (uint32_t)INT32_MIN, 4), jscalar(J_U32, UINT32_MAX, 4),
		jscalar(J_I64, (uint64_t)INT64_MIN, 8), jscalar(J_U64, UINT64_MAX, 8),
		jdouble(3.5), jdouble(1.0), jdouble(-0.1), jdouble(1e100),
		jstr(tabs, strlen(tabs)), jstr("", 0),
		jscalar(J_LIT, 0, 1), jscalar(J_LIT, 1, 1), jscalar(J_LIT, 2, 1),
	};
	struct jv arr = jcontainer(false, NULL, sizeof items / sizeof items[0], items);
	expect_doc(&arr, "[-32768, 65535, -2147483648, 4294967295, -9223372036854775808, "
		   "18446744073709551615, 3.5, 1.0, -0.1, 1e+100, "
		   "\"tab\\there \\\"q\\\" \\\\ \xe2\x82\xac\", \"\", null, true, false]");
	/* Scalars as whole documents. */
	struct jv s = jstr("solo", 4);
	expect_doc(&s, "\"solo\"");
	s = jscalar(J_I64, 7, 8);
	expect_doc(&s, "7");
	s = jscalar(J_I16, (uint16_t)-2, 2);
	expect_doc(&s, "-2");
	s = jdouble(2.0);
	expect_doc(&s, "2.0");
	s = jscalar(J_LIT, 1, 1);
	expect_doc(&s, "true");
}

static void test_rows__json_uses_multibyte_string_lengths(void **state)
{
	(void)state;
	char big[20000];
	memset(big, 'w', sizeof big);
	struct jv s = jstr(big, 200);
	assert_int_equal(s.b[0], 0xc8);
	assert_int_equal(s.b[1], 0x01);
	struct th_buf want = TH_BUF_INIT;
	th_buf_putc(&want, '"');
	th_buf_append(&want, big, 200);
	th_buf_putc(&want, '"');
	expect_doc(&s, th_buf_cstr(&want));
	th_buf_free(&want);
	/* Length bytes that never end, or claim more than 32 bits, are malformed. */
	struct th_buf out = TH_BUF_INIT;
	const uint8_t endless[] = { J_STR, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 'a' };
	assert_int_equal(th_json_binary_to_text(endless, sizeof endless, &out), -TH_EBINLOG);
	const uint8_t huge[] = { J_STR, 0xff, 0xff, 0xff, 0xff, 0x7f, 'a' };
	assert_int_equal(th_json_binary_to_text(huge, sizeof huge, &out), -TH_EBINLOG);
	assert_int_equal(out.len, 0);
	th_buf_free(&out);
}

static void test_rows__json_renders_large_format(void **state)
{
	(void)state;
	struct jv items[3] = { jscalar(J_I32, (uint32_t)-70000, 4), jscalar(J_U32, 4000000000u, 4),
			       jstr("big", 3) };
	static const char *const keys[] = { "k1", "k2", "k3" };
	struct jv obj = jcontainer(true, keys, 3, items);
	/* In the large format 32-bit integers are inlined: only the string is stored after. */
	assert_int_equal(obj.n, 8 + 3 * 6 + 3 * 5 + 6 + 4);
	expect_doc(&obj, "{\"k1\": -70000, \"k2\": 4000000000, \"k3\": \"big\"}");
	struct jv arr_items[2] = { obj, jscalar(J_LIT, 0, 1) };
	struct jv arr = jcontainer(true, NULL, 2, arr_items);
	expect_doc(&arr, "[{\"k1\": -70000, \"k2\": 4000000000, \"k3\": \"big\"}, null]");
	/* Small containers store 32-bit integers out of line. */
	struct jv small = jcontainer(false, keys, 2, items);
	expect_doc(&small, "{\"k1\": -70000, \"k2\": 4000000000}");
}

static int64_t packed_datetime(unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi,
			       unsigned s, uint32_t usec)
{
	uint64_t ymd = ((uint64_t)y * 13 + mo) << 5 | d;
	uint64_t hms = (uint64_t)h << 12 | mi << 6 | s;
	return (int64_t)(((ymd << 17 | hms) << 24) + usec);
}

static void test_rows__json_renders_opaque_decimal_and_datetime(void **state)
{
	(void)state;
	uint8_t d[40];
	d[0] = 10;
	d[1] = 4;
	size_t n = enc_decimal("-1234.56", 10, 4, d + 2);
	struct jv dec = jopaque(TH_COL_NEWDECIMAL, d, n + 2);
	expect_doc(&dec, "-1234.5600");
	d[0] = 3;
	d[1] = 2;
	n = enc_decimal("3.14", 3, 2, d + 2);
	struct jv dec2 = jopaque(TH_COL_NEWDECIMAL, d, n + 2);

	uint8_t p[8];
	wr_le(p, (uint64_t)packed_datetime(2015, 1, 15, 23, 24, 25, 0), 8);
	struct jv dt = jopaque(TH_COL_DATETIME, p, 8);
	struct jv ts = jopaque(TH_COL_TIMESTAMP, p, 8);
	wr_le(p, (uint64_t)packed_datetime(2015, 1, 15, 0, 0, 0, 0), 8);
	struct jv date = jopaque(TH_COL_DATE, p, 8);
	int64_t t = -(int64_t)(((uint64_t)12 << 12 | 0 << 6 | 1) << 24 | 500000);
	wr_le(p, (uint64_t)t, 8);
	struct jv tm = jopaque(TH_COL_TIME, p, 8);
	const uint8_t raw[] = { 0x00, 0x01, 0xfe };
	struct jv blob = jopaque(TH_COL_BLOB, raw, 3);
	struct jv vs = jopaque(TH_COL_VAR_STRING, (const uint8_t *)"str", 3);
	struct jv items[] = { dec2, dt, ts, date, tm, blob, vs };
	struct jv arr = jcontainer(false, NULL, sizeof items / sizeof items[0], items);
	expect_doc(&arr, "[3.14, \"2015-01-15 23:24:25.000000\", \"2015-01-15 23:24:25.000000\", "
		   "\"2015-01-15\", \"-12:00:01.500000\", \"base64:type252:AAH+\", \"str\"]");

	/* MySQL's base64 breaks its lines at 76 characters, and prints the newline. */
	uint8_t long_raw[60];
	memset(long_raw, 0, sizeof long_raw);
	struct jv lb = jopaque(TH_COL_BLOB, long_raw, sizeof long_raw);
	char want[200];
	snprintf(want, sizeof want, "\"base64:type252:%.76s\\n%.4s\"",
		 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		 "AAAA");
	expect_doc(&lb, want);

	/* A datetime must be 8 bytes, and 24:00:00 is no time of day. */
	struct jv bad = jopaque(TH_COL_DATETIME, p, 7);
	struct th_buf out = TH_BUF_INIT;
	uint8_t doc[64];
	doc[0] = bad.type;
	memcpy(doc + 1, bad.b, bad.n);
	assert_int_equal(th_json_binary_to_text(doc, bad.n + 1, &out), -TH_EBINLOG);
	wr_le(p, (uint64_t)packed_datetime(2015, 1, 1, 24, 0, 0, 0), 8);
	bad = jopaque(TH_COL_DATETIME, p, 8);
	doc[0] = bad.type;
	memcpy(doc + 1, bad.b, bad.n);
	assert_int_equal(th_json_binary_to_text(doc, bad.n + 1, &out), -TH_EBINLOG);
	assert_int_equal(out.len, 0);
	th_buf_free(&out);
}

static void test_rows__json_rejects_malformed_documents(void **state)
{
	(void)state;
	struct th_buf out = TH_BUF_INIT;
	th_buf_puts(&out, "x");
	/* An unknown type, a bad literal, a value offset past the container. */
	assert_int_equal(th_json_binary_to_text((const uint8_t[]){ 0x0d, 0 }, 2, &out), -TH_EBINLOG);
	assert_int_equal(th_json_binary_to_text((const uint8_t[]){ J_LIT, 3 }, 2, &out), -TH_EBINLOG);
	const uint8_t past[] = { J_SARR, 1, 0, 7, 0, J_STR, 9, 0 };
	assert_int_equal(th_json_binary_to_text(past, sizeof past, &out), -TH_EBINLOG);
	/* A size larger than the document. */
	const uint8_t big[] = { J_SARR, 0, 0, 200, 0 };
	assert_int_equal(th_json_binary_to_text(big, sizeof big, &out), -TH_EBINLOG);
	/* A count whose entries do not fit the size. */
	const uint8_t many[] = { J_SARR, 50, 0, 7, 0, J_LIT, 0, 0 };
	assert_int_equal(th_json_binary_to_text(many, sizeof many, &out), -TH_EBINLOG);
	/* A key past the object's end. */
	const uint8_t key[] = { J_SOBJ, 1, 0, 11, 0, 9, 0, 5, 0, J_LIT, 0, 0 };
	assert_int_equal(th_json_binary_to_text(key, sizeof key, &out), -TH_EBINLOG);
	/* Invalid UTF-8 in a string. */
	const uint8_t bad8[] = { J_STR, 1, 0xff };
	assert_int_equal(th_json_binary_to_text(bad8, sizeof bad8, &out), -TH_EBINLOG);
	/* A document that contains itself recurses only to MySQL's depth limit. */
	const uint8_t self[] = { J_SARR, 1, 0, 7, 0, J_SARR, 0, 0 };
	assert_int_equal(th_json_binary_to_text(self, sizeof self, &out), -TH_EBINLOG);
	assert_string_equal(th_buf_cstr(&out), "x");
	/* Depth 100 is allowed, 101 is not. */
	struct jv d = jcontainer(false, NULL, 0, NULL);
	struct jv one[1];
	for (int k = 1; k < 100; k++) {
		one[0] = d;
		d = jcontainer(false, NULL, 1, one);
	}
	uint8_t *doc = malloc(d.n + 1);
	doc[0] = d.type;
	memcpy(doc + 1, d.b, d.n);
	th_buf_reset(&out);
	assert_int_equal(th_json_binary_to_text(doc, d.n + 1, &out), 0);
	assert_int_equal(out.len, 200);
	free(doc);
	one[0] = d;
	d = jcontainer(false, NULL, 1, one);
	doc = malloc(d.n + 1);
	doc[0] = d.type;
	memcpy(doc + 1, d.b, d.n);
	assert_int_equal(th_json_binary_to_text(doc, d.n + 1, &out), -TH_EBINLOG);
	free(doc);
	/* Empty: what MySQL reads as JSON null. */
	th_buf_reset(&out);
	assert_int_equal(th_json_binary_to_text(NULL, 0, &out), 0);
	assert_string_equal(th_buf_cstr(&out), "null");
	th_buf_free(&out);
}

static void test_rows__json_bounds_output_of_shared_offsets(void **state)
{
	(void)state;
	/*
	 * Twenty levels of arrays whose 100 entries all point at the same child:
	 * 100^20 elements from 12 KB. It must fail fast rather than print them.
	 */
	enum { LEVELS = 20, FAN = 100 };
	size_t per = 4 + FAN * 3;
	size_t n = 1 + LEVELS * per + 4;
	uint8_t *doc = calloc(1, n);
	doc[0] = J_SARR;
	for (size_t l = 0; l < LEVELS; l++) {
		uint8_t *a = doc + 1 + l * per;
		size_t size = n - 1 - l * per;
		wr_le(a, FAN, 2);
		wr_le(a + 2, size > 0xffff ? 0xffff : size, 2);
		for (size_t e = 0; e < FAN; e++) {
			a[4 + e * 3] = J_SARR;
			wr_le(a + 5 + e * 3, per, 2);
		}
	}
	/* The innermost: an empty array. */
	wr_le(doc + 1 + LEVELS * per, 0, 2);
	wr_le(doc + 1 + LEVELS * per + 2, 4, 2);
	struct th_buf out = TH_BUF_INIT;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(th_json_binary_to_text(doc, n, &out), -TH_EBINLOG);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	assert_int_equal(out.len, 0);
	th_buf_free(&out);
	free(doc);
}

/* ---- against a real server ---- */

/*
 * The every-type table (tests/support/every_type.h), rows of edge values
 * written through SQL, the binlog read back (with a minimal reader of its own,
 * so this test depends on nothing but the decoder) and each decoded value
 * compared with the server's own text for it.
 */
/* A length-encoded integer of the client protocol, as TABLE_MAP and ROWS use it. */
static bool lenenc(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	if (*p >= end)
		return false;
	uint8_t b = *(*p)++;
	size_t n = b < 251 ? 0 : b == 252 ? 2 : b == 253 ? 3 : b == 254 ? 8 : 99;
	if (n == 99 || (size_t)(end - *p) < n)
		return false;
	uint64_t x = n ? 0 : b;
	for (size_t k = 0; k < n; k++)
		x |= (uint64_t)(*p)[k] << (8 * k);
	*p += n;
	*v = x;
	return true;
}

/* Column metadata as TABLE_MAP writes it (Field::save_field_metadata per type). */
static bool table_map_meta(uint8_t type, const uint8_t **p, const uint8_t *end, uint16_t *meta)
{
	size_t n;
	switch (type) {
	case TH_COL_FLOAT: case TH_COL_DOUBLE: case TH_COL_BLOB: case TH_COL_GEOMETRY:
	case TH_COL_JSON: case TH_COL_TIME2: case TH_COL_DATETIME2: case TH_COL_TIMESTAMP2:
		n = 1;
		break;
	case TH_COL_VARCHAR: case TH_COL_VAR_STRING: case TH_COL_BIT: case TH_COL_NEWDECIMAL:
	case TH_COL_STRING: case TH_COL_ENUM: case TH_COL_SET:
		n = 2;
		break;
	default:
		n = 0;
		break;
	}
	if ((size_t)(end - *p) < n)
		return false;
	const uint8_t *m = *p;
	*p += n;
	if (n == 1)
		*meta = m[0];
	else if (n == 2 && (type == TH_COL_VARCHAR || type == TH_COL_VAR_STRING || type == TH_COL_BIT))
		*meta = (uint16_t)(m[0] | m[1] << 8);
	else if (n == 2)
		*meta = (uint16_t)(m[0] << 8 | m[1]);
	else
		*meta = 0;
	return true;
}

static void live_check_value(struct th_mariadb *db, int id, size_t ci, const struct th_column *col,
			     const struct th_value *v)
{
	const struct te_col *lc = &te_cols[ci];
	enum { SERVER_MAX = 300000 }; /* HEX of the 100 KB LONGBLOB */
	char *server = malloc(SERVER_MAX);
	char e[64], q[256];
	te_select_expr(lc, e, sizeof e);
	snprintf(q, sizeof q, "SELECT IFNULL(%s, '" TE_NULL "') FROM rt.t WHERE id = %d", e, id);
	int r = th_mariadb_query_value(db, server, SERVER_MAX, "%s", q);
	if (r)
		fail_msg("%s: %d %s", q, r, db->err);
	char *ours = te_decoded_text(lc, col, v);
	if (!te_same(lc, server, ours))
		fail_msg("row %d %s (%s): server '%.200s', decoded '%.200s'", id, lc->name, lc->sql, server, ours);
	free(ours);
	free(server);
}

static void test_rows__decodes_every_type_a_real_server_logs(void **state)
{
	(void)state;
	struct th_mariadb *db = NULL;
	char why[512] = "";
	int r = th_mariadb_start(NULL, &db, why, sizeof why);
	if (r == TH_MARIADB_UNAVAILABLE) {
		print_message("skipped: %s\n", why);
		skip();
	}
	if (r)
		fail_msg("th_mariadb_start: %d %s", r, why);

	if (th_mariadb_sql(db, "SET SESSION sql_mode = ''") || th_mariadb_sql(db, "SET time_zone = '+00:00'")
	    || th_mariadb_sql(db, "CREATE DATABASE rt"))
		fail_msg("setup: %s", db->err);
	te_create_table(db, "rt.t");

	char file[128], path[512];
	if (th_mariadb_query_value(db, file, sizeof file, "SHOW MASTER STATUS"))
		fail_msg("SHOW MASTER STATUS: %s", db->err);
	snprintf(path, sizeof path, "%s/%s", db->datadir, file);
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	struct th_buf bin = TH_BUF_INIT;
	char chunk[65536];
	size_t got;
	while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0)
		th_buf_append(&bin, chunk, got);
	fclose(fp);
	const uint8_t *p = (const uint8_t *)bin.data, *end = p + bin.len;
	assert_true(bin.len > 4 && !memcmp(p, "\xfe" "bin", 4));
	p += 4;

	struct th_column cols[TE_NCOLS + 1];
	static const char *const enames[] = { "a", "bb", "ccc" }, *const snames[] = { "x", "yy", "zzz" };
	static const uint32_t nlens[] = { 1, 2, 3 };
	struct th_table_map tm = { .ncols = 0, .cols = cols };
	uint64_t table_id = UINT64_MAX;
	size_t rows_seen = 0;
	while ((size_t)(end - p) >= 19) {
		uint8_t type = p[4];
		uint32_t size = (uint32_t)(p[9] | p[10] << 8 | p[11] << 16 | (uint32_t)p[12] << 24);
		assert_true(size >= 19 && size <= (size_t)(end - p));
		/* binlog_checksum=CRC32: the last 4 bytes of each event. */
		const uint8_t *b = p + 19, *e = p + size - 4;
		if (type == 19) {
			uint64_t id = 0;
			for (int k = 0; k < 6; k++)
				id |= (uint64_t)b[k] << (8 * k);
			b += 8;
			const uint8_t *schema = b + 1;
			b += 1 + b[0] + 1;
			const uint8_t *name = b + 1;
			bool ours = !memcmp(schema, "rt", 2) && name[0] == 't' && name[1] == 0;
			b += 1 + b[0] + 1;
			uint64_t ncols, mlen;
			assert_true(lenenc(&b, e, &ncols));
			if (ours) {
				assert_int_equal(ncols, TE_NCOLS + 1);
				table_id = id;
				tm.ncols = (uint32_t)ncols;
				const uint8_t *types = b;
				b += ncols;
				assert_true(lenenc(&b, e, &mlen));
				const uint8_t *mend = b + mlen;
				for (size_t k = 0; k < ncols; k++) {
					cols[k] = mkcol(types[k], 0);
					assert_true(table_map_meta(types[k], &b, mend, &cols[k].meta));
					if (k == 0)
						continue;
					const struct te_col *lc = &te_cols[k - 1];
					cols[k].is_unsigned = lc->is_unsigned;
					cols[k].binary = lc->binary;
					if (lc->cmp == TE_NAME) {
						cols[k].strs = lc->name[0] == 'e' ? enames : snames;
						cols[k].str_lens = nlens;
						cols[k].nstrs = 3;
					}
				}
				assert_ptr_equal(b, mend);
			}
		} else if ((type == 23 || type == 30) && table_id != UINT64_MAX) {
			uint64_t id = 0;
			for (int k = 0; k < 6; k++)
				id |= (uint64_t)b[k] << (8 * k);
			b += 8;
			if (type == 30)
				b += b[0] | b[1] << 8; /* v2 extra data, its length included */
			uint64_t ncols;
			assert_true(lenenc(&b, e, &ncols));
			const uint8_t *present = b;
			b += (ncols + 7) / 8;
			while (id == table_id && b < e) {
				struct th_value v[TE_NCOLS + 1];
				size_t used;
				r = th_row_decode(&tm, present, b, (size_t)(e - b), v, &used);
				if (r)
					fail_msg("row %zu: %s", rows_seen + 1, th_strerror(r));
				assert_int_equal(v[0].kind, TH_VAL_INT);
				for (size_t k = 1; k < tm.ncols; k++)
					live_check_value(db, (int)v[0].i, k - 1, &cols[k], &v[k]);
				rows_seen++;
				b += used;
			}
		}
		p += size;
	}
	assert_int_equal(rows_seen, TE_NROWS);
	print_message("%zu rows x %zu columns of %s agree with the server\n", rows_seen, (size_t)TE_NCOLS,
		      db->version);
	th_buf_free(&bin);
	th_mariadb_stop(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_rows__decodes_integer_limits_signed_and_unsigned, free_last_image),
		cmocka_unit_test_teardown(test_rows__renders_floats_as_shortest_round_trip_and_nan_as_null, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_decimal_reference_vector, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_negative_decimal, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_decimal_of_various_precisions, free_last_image),
		cmocka_unit_test_teardown(test_rows__decimal_zero_has_no_negative_sign, free_last_image),
		cmocka_unit_test_teardown(test_rows__rejects_inconsistent_decimals, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_bit_of_every_width, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_year_and_date, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_old_time_datetime_and_timestamp, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_datetime2_with_every_fsp, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_timestamp2_with_every_fsp_in_utc, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_time2_with_every_fsp, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_negative_time2, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_varchar_with_one_and_two_byte_lengths, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_char_longer_than_255_bytes, free_last_image),
		cmocka_unit_test_teardown(test_rows__renders_multibyte_utf8_as_string, free_last_image),
		cmocka_unit_test_teardown(test_rows__renders_invalid_utf8_as_base64, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_blobs_of_every_length_size, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_16_mib_blob, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_enum_and_set_with_and_without_names, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_geometry_and_vector_as_bytes, free_last_image),
		cmocka_unit_test_teardown(test_rows__rejects_types_it_cannot_read, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_nulls_from_the_image_bitmap, free_last_image),
		cmocka_unit_test_teardown(test_rows__skips_absent_columns_in_partial_images, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_a_topo_data_row_and_renders_it, free_last_image),
		cmocka_unit_test(test_rows__decodes_only_wanted_columns_and_steps_over_the_rest),
		cmocka_unit_test_teardown(test_rows__decodes_topo_rows_fast, free_last_image),
		cmocka_unit_test_teardown(test_rows__json_renders_nested_object_and_array, free_last_image),
		cmocka_unit_test_teardown(test_rows__json_renders_all_scalar_kinds, free_last_image),
		cmocka_unit_test_teardown(test_rows__json_uses_multibyte_string_lengths, free_last_image),
		cmocka_unit_test_teardown(test_rows__json_renders_large_format, free_last_image),
		cmocka_unit_test_teardown(test_rows__json_renders_opaque_decimal_and_datetime, free_last_image),
		cmocka_unit_test_teardown(test_rows__json_rejects_malformed_documents, free_last_image),
		cmocka_unit_test_teardown(test_rows__json_bounds_output_of_shared_offsets, free_last_image),
		cmocka_unit_test_teardown(test_rows__decodes_every_type_a_real_server_logs, free_last_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
