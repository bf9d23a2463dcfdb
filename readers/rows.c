/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rows.c: row images to values (th_row_decode) and values to JSON
 * (th_value_to_json). Binary JSON documents are in rows_json.c.
 *
 * Layouts follow MySQL's Field::pack() of each type and the TABLE_MAP metadata
 * that Field::save_field_metadata() writes; where MySQL's own printer
 * (log_event_print_value) and the storage format disagree, the storage format
 * wins (signed 24-bit TIME, for instance).
 *
 * The hot path is th_row_decode: one switch per column, no allocation, no
 * stdio. Text renderings (DECIMAL, temporals) are written digit by digit into
 * the value's own text[] so that the caller's bytes are the only input.
 */
#include "readers/rows.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/th_bytes.h"
#include "common/th_error.h"

/* ---- byte assembly: common/th_bytes.h ---- */

/* ---- text ---- */

static const uint32_t pow10_u32[10] = {
	1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
};

static inline char *put_digits(char *o, uint32_t v, unsigned n)
{
	for (unsigned i = n; i > 0; i--) {
		o[i - 1] = (char)('0' + v % 10);
		v /= 10;
	}
	return o + n;
}

/* v without leading zeros ("0" for 0). */
static char *put_u64(char *o, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*o++ = tmp[--n];
	return o;
}

/* ".ffffff" cut to fsp digits; nothing when fsp is 0. */
static char *put_frac(char *o, uint32_t usec, unsigned fsp)
{
	if (!fsp)
		return o;
	*o++ = '.';
	return put_digits(o, usec / pow10_u32[6 - fsp], fsp);
}

size_t th__format_date(char *o, unsigned year, unsigned month, unsigned day)
{
	char *s = o;
	o = put_digits(o, year, 4);
	*o++ = '-';
	o = put_digits(o, month, 2);
	*o++ = '-';
	o = put_digits(o, day, 2);
	*o = '\0';
	return (size_t)(o - s);
}

size_t th__format_datetime(char *o, unsigned year, unsigned month, unsigned day, unsigned hour,
			   unsigned minute, unsigned second, uint32_t usec, unsigned fsp)
{
	char *s = o;
	o += th__format_date(o, year, month, day);
	*o++ = ' ';
	o = put_digits(o, hour, 2);
	*o++ = ':';
	o = put_digits(o, minute, 2);
	*o++ = ':';
	o = put_digits(o, second, 2);
	o = put_frac(o, usec, fsp);
	*o = '\0';
	return (size_t)(o - s);
}

size_t th__format_time(char *o, bool neg, unsigned hour, unsigned minute, unsigned second,
		       uint32_t usec, unsigned fsp)
{
	char *s = o;
	if (neg)
		*o++ = '-';
	o = put_digits(o, hour, hour >= 100 ? (hour >= 1000 ? 4 : 3) : 2);
	*o++ = ':';
	o = put_digits(o, minute, 2);
	*o++ = ':';
	o = put_digits(o, second, 2);
	o = put_frac(o, usec, fsp);
	*o = '\0';
	return (size_t)(o - s);
}

/* ---- DECIMAL: MySQL's decimal2bin format ---- */

/* Bytes for a group of 0..9 leftover digits (decimal.c dig2bytes). */
static const uint8_t dig2bytes[10] = { 0, 1, 1, 2, 2, 3, 3, 4, 4, 4 };

int th__decimal_size(unsigned precision, unsigned scale, size_t *size)
{
	/* 65 and 38 are the widest MySQL (65,30) and MariaDB (65,38) allow. */
	if (precision == 0 || precision > 65 || scale > 38 || scale > precision)
		return -TH_EBINLOG;
	unsigned intg = precision - scale;
	*size = (size_t)(intg / 9) * 4 + dig2bytes[intg % 9] + (size_t)(scale / 9) * 4 + dig2bytes[scale % 9];
	return 0;
}

int th__decimal_to_text(const uint8_t *p, size_t len, unsigned precision, unsigned scale,
			char *out, size_t *used)
{
	size_t size;
	int r = th__decimal_size(precision, scale, &size);
	if (r)
		return r;
	if (len < size)
		return -TH_EBINLOG;

	/*
	 * Positive numbers are stored with the top bit of the first byte set;
	 * negative ones are the same bytes all inverted, so that the encoding
	 * sorts as memcmp. Undo both into a local copy, then read big-endian
	 * groups of 9 digits in 4 bytes, with shorter groups at the outer ends.
	 */
	uint8_t b[32];
	uint8_t mask = (p[0] & 0x80) ? 0 : 0xff;
	for (size_t i = 0; i < size; i++)
		b[i] = p[i] ^ mask;
	b[0] ^= 0x80;

	unsigned intg = precision - scale;
	unsigned intg0 = intg / 9, intg0x = intg % 9, frac0 = scale / 9, frac0x = scale % 9;
	char *o = out;
	if (mask)
		*o++ = '-';
	bool zero = true, leading = true;
	size_t pos = 0;
	if (intg0x) {
		uint32_t x = (uint32_t)th_be(b, dig2bytes[intg0x]);
		pos += dig2bytes[intg0x];
		if (x >= pow10_u32[intg0x])
			return -TH_EBINLOG;
		if (x) {
			o = put_u64(o, x);
			leading = zero = false;
		}
	}
	for (unsigned g = 0; g < intg0; g++, pos += 4) {
		uint32_t x = (uint32_t)th_be(b + pos, 4);
		if (x >= 1000000000u)
			return -TH_EBINLOG;
		if (leading) {
			if (x) {
				o = put_u64(o, x);
				leading = zero = false;
			}
		} else {
			o = put_digits(o, x, 9);
		}
	}
	if (leading)
		*o++ = '0';
	if (scale)
		*o++ = '.';
	for (unsigned g = 0; g < frac0; g++, pos += 4) {
		uint32_t x = (uint32_t)th_be(b + pos, 4);
		if (x >= 1000000000u)
			return -TH_EBINLOG;
		zero = zero && !x;
		o = put_digits(o, x, 9);
	}
	if (frac0x) {
		uint32_t x = (uint32_t)th_be(b + pos, dig2bytes[frac0x]);
		if (x >= pow10_u32[frac0x])
			return -TH_EBINLOG;
		zero = zero && !x;
		o = put_digits(o, x, frac0x);
	}
	*o = '\0';
	/* MySQL has no negative zero: decimal2string never prints "-0.00". */
	if (mask && zero)
		memmove(out, out + 1, (size_t)(o - out));
	*used = size;
	return 0;
}

/* ---- temporal ---- */

/* Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm). */
static void civil_from_days(int64_t z, unsigned *year, unsigned *month, unsigned *day)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*day = doy - (153 * mp + 2) / 5 + 1;
	*month = mp < 10 ? mp + 3 : mp - 9;
	*year = (unsigned)(y + (*month <= 2));
}

/* Epoch seconds in UTC; 0 is MySQL's zero timestamp. */
static void format_timestamp(struct th_value *v, uint32_t sec, uint32_t usec, unsigned fsp)
{
	v->kind = TH_VAL_TEXT;
	v->i = sec;
	v->u = usec;
	if (sec == 0) {
		th__format_datetime(v->text, 0, 0, 0, 0, 0, 0, usec, fsp);
		return;
	}
	unsigned y, mo, d;
	civil_from_days(sec / 86400, &y, &mo, &d);
	uint32_t s = sec % 86400;
	th__format_datetime(v->text, y, mo, d, s / 3600, s / 60 % 60, s % 60, usec, fsp);
}

/*
 * Fractional seconds of TIME2/DATETIME2/TIMESTAMP2: (fsp + 1) / 2 big-endian
 * bytes holding the fraction in units of 10^-(2 * bytes) seconds.
 */
static inline size_t frac_bytes(unsigned fsp) { return (fsp + 1) / 2; }

static int read_frac(const uint8_t *p, unsigned fsp, uint32_t *usec)
{
	size_t n = frac_bytes(fsp);
	uint32_t x = (uint32_t)th_be(p, n);
	static const uint32_t unit[4] = { 0, 10000, 100, 1 };
	if (x >= pow10_u32[2 * n])
		return -TH_EBINLOG;
	*usec = x * unit[n];
	return 0;
}

int th__datetime_packed_to_text(int64_t packed, char *out, bool date_only, unsigned fsp)
{
	/* MySQL's longlong datetime packing: ((ym*32+d)<<5 | h)<<12 | m<<6 | s, <<24 | usec. */
	if (packed < 0)
		return -TH_EBINLOG;
	uint64_t t = (uint64_t)packed;
	uint32_t usec = (uint32_t)(t & 0xffffff);
	uint64_t ymdhms = t >> 24;
	uint64_t ymd = ymdhms >> 17, ym = ymd >> 5;
	unsigned hms = (unsigned)(ymdhms & 0x1ffff);
	unsigned day = (unsigned)(ymd & 31), month = (unsigned)(ym % 13);
	uint64_t year = ym / 13;
	unsigned second = hms & 63, minute = (hms >> 6) & 63, hour = hms >> 12;
	if (year > 9999 || hour > 23 || minute > 59 || second > 59 || usec > 999999)
		return -TH_EBINLOG;
	if (date_only)
		th__format_date(out, (unsigned)year, month, day);
	else
		th__format_datetime(out, (unsigned)year, month, day, hour, minute, second, usec, fsp);
	return 0;
}

int th__time_packed_to_text(int64_t packed, char *out, unsigned fsp)
{
	bool neg = packed < 0;
	if (packed == INT64_MIN)
		return -TH_EBINLOG;
	uint64_t t = (uint64_t)(neg ? -packed : packed);
	uint32_t usec = (uint32_t)(t & 0xffffff);
	uint64_t hms = t >> 24;
	unsigned hour = (unsigned)((hms >> 12) & 1023), minute = (unsigned)((hms >> 6) & 63);
	unsigned second = (unsigned)(hms & 63);
	if ((hms >> 22) || minute > 59 || second > 59 || usec > 999999)
		return -TH_EBINLOG;
	th__format_time(out, neg, hour, minute, second, usec, fsp);
	return 0;
}

/* TIME2: 3 bytes of int part offset by 2^23, then the fraction (my_time_packed_from_binary). */
static int decode_time2(const uint8_t *p, unsigned fsp, struct th_value *v)
{
	int64_t intpart = (int64_t)th_be(p, 3) - 0x800000;
	int64_t frac = 0;
	switch (fsp) {
	case 0:
		break;
	case 1:
	case 2:
		frac = p[3];
		/* Negative values keep their fraction complemented so they sort as memcmp. */
		if (intpart < 0 && frac) {
			intpart++;
			frac -= 0x100;
		}
		frac *= 10000;
		break;
	case 3:
	case 4:
		frac = (int64_t)th_be(p + 3, 2);
		if (intpart < 0 && frac) {
			intpart++;
			frac -= 0x10000;
		}
		frac *= 100;
		break;
	default: {
		/* 6 bytes as one number offset by 2^47: int part and fraction together. */
		int64_t packed = (int64_t)th_be(p, 6) - ((int64_t)1 << 47);
		v->kind = TH_VAL_TEXT;
		return th__time_packed_to_text(packed, v->text, fsp);
	}
	}
	/* Validate the fraction's magnitude before it is folded into the packed form. */
	if (frac > 999999 || frac < -999999)
		return -TH_EBINLOG;
	int64_t packed = intpart * ((int64_t)1 << 24) + frac;
	v->kind = TH_VAL_TEXT;
	return th__time_packed_to_text(packed, v->text, fsp);
}

/* DATETIME2: 5 bytes offset by 2^39: sign, year*13+month (17), day (5), h (5), m (6), s (6). */
static int decode_datetime2(const uint8_t *p, unsigned fsp, struct th_value *v)
{
	uint64_t raw = th_be(p, 5);
	if (raw < 0x8000000000ull)
		return -TH_EBINLOG; /* negative DATETIME: no server writes one */
	uint64_t x = raw - 0x8000000000ull;
	uint32_t usec = 0;
	if (fsp) {
		int r = read_frac(p + 5, fsp, &usec);
		if (r)
			return r;
	}
	uint64_t ym = x >> 22;
	unsigned year = (unsigned)(ym / 13), month = (unsigned)(ym % 13);
	unsigned day = (unsigned)(x >> 17) & 31, hour = (unsigned)(x >> 12) & 31;
	unsigned minute = (unsigned)(x >> 6) & 63, second = (unsigned)x & 63;
	if (year > 9999 || hour > 23 || minute > 59 || second > 59)
		return -TH_EBINLOG;
	v->kind = TH_VAL_TEXT;
	th__format_datetime(v->text, year, month, day, hour, minute, second, usec, fsp);
	return 0;
}

/* ---- one column ---- */

static inline bool is_binary(const struct th_column *c)
{
	return c->binary || c->charset == 63;
}

/* A length-prefixed string or blob: nprefix little-endian length bytes, then the bytes. */
static inline int take_prefixed(const uint8_t *p, size_t avail, size_t nprefix, uint64_t max,
				struct th_value *v, enum th_value_kind kind, size_t *n)
{
	if (avail < nprefix)
		return -TH_EBINLOG;
	uint64_t l = th_le(p, nprefix);
	if (l > max || l > avail - nprefix)
		return -TH_EBINLOG;
	v->kind = kind;
	v->bytes = p + nprefix;
	v->len = (uint32_t)l;
	*n = nprefix + (size_t)l;
	return 0;
}

/*
 * STRING columns (CHAR, BINARY, ENUM, SET) pack their real type and length in
 * two metadata bytes: byte0 = real type, byte1 = length. A CHAR longer than
 * 255 bytes keeps length bits 8-9 in byte0's bits 4-5, inverted (MySQL bug
 * #37426), which is why a real type with those bits not both set is a CHAR.
 */
static void string_real_type(uint16_t meta, unsigned *type, unsigned *len)
{
	if (meta < 256) {
		*type = TH_COL_STRING;
		*len = meta;
		return;
	}
	unsigned b0 = meta >> 8, b1 = meta & 0xff;
	if ((b0 & 0x30) != 0x30) {
		*len = b1 | (((b0 & 0x30) ^ 0x30) << 4);
		*type = b0 | 0x30;
	} else {
		*len = b1;
		*type = b0;
	}
}

static int decode_enum_set(unsigned type, unsigned size, const uint8_t *p, size_t avail,
			   struct th_value *v, size_t *n)
{
	if (type == TH_COL_ENUM ? (size != 1 && size != 2) : (size < 1 || size > 8))
		return -TH_EBINLOG;
	if (avail < size)
		return -TH_EBINLOG;
	v->kind = type == TH_COL_ENUM ? TH_VAL_ENUM : TH_VAL_SET;
	v->u = th_le(p, size);
	*n = size;
	return 0;
}

static int blob_prefix(const struct th_column *c, size_t *nprefix)
{
	unsigned m = c->meta;
	if (m == 0) {
		/* These three never appear in TABLE_MAP (BLOB with meta does), but mean one size. */
		switch (c->type) {
		case TH_COL_TINY_BLOB: m = 1; break;
		case TH_COL_MEDIUM_BLOB: m = 3; break;
		case TH_COL_LONG_BLOB: m = 4; break;
		default: break;
		}
	}
	if (m < 1 || m > 4)
		return -TH_EBINLOG;
	*nprefix = m;
	return 0;
}

static int decode_column(const struct th_column *c, const uint8_t *p, size_t avail,
			 struct th_value *v, size_t *n)
{
	unsigned meta = c->meta;
	switch (c->type) {
	case TH_COL_TINY:
	case TH_COL_SHORT:
	case TH_COL_INT24:
	case TH_COL_LONG:
	case TH_COL_LONGLONG: {
		static const uint8_t width[] = {
			[TH_COL_TINY] = 1, [TH_COL_SHORT] = 2, [TH_COL_INT24] = 3,
			[TH_COL_LONG] = 4, [TH_COL_LONGLONG] = 8,
		};
		size_t w = width[c->type];
		if (avail < w)
			return -TH_EBINLOG;
		uint64_t x = w == 8 ? th_le64(p) : w == 4 ? th_le32(p) : th_le(p, w);
		if (c->is_unsigned) {
			v->kind = TH_VAL_UINT;
			v->u = x;
		} else {
			v->kind = TH_VAL_INT;
			v->i = th_sext(x, (unsigned)w * 8);
		}
		*n = w;
		return 0;
	}
	case TH_COL_FLOAT: {
		if (avail < 4)
			return -TH_EBINLOG;
		uint32_t x = th_le32(p);
		float f;
		memcpy(&f, &x, sizeof f);
		v->kind = TH_VAL_DOUBLE;
		v->d = f;
		*n = 4;
		return 0;
	}
	case TH_COL_DOUBLE: {
		if (avail < 8)
			return -TH_EBINLOG;
		uint64_t x = th_le64(p);
		memcpy(&v->d, &x, sizeof v->d);
		v->kind = TH_VAL_DOUBLE;
		*n = 8;
		return 0;
	}
	case TH_COL_NULL:
		v->kind = TH_VAL_NULL;
		*n = 0;
		return 0;
	case TH_COL_YEAR:
		if (avail < 1)
			return -TH_EBINLOG;
		v->kind = TH_VAL_INT;
		v->i = p[0] ? 1900 + p[0] : 0;
		*n = 1;
		return 0;
	case TH_COL_DATE:
	case TH_COL_NEWDATE: {
		if (avail < 3)
			return -TH_EBINLOG;
		uint32_t x = th_le24(p);
		unsigned month = (x >> 5) & 15;
		if (month > 12)
			return -TH_EBINLOG;
		v->kind = TH_VAL_TEXT;
		th__format_date(v->text, x >> 9, month, x & 31);
		*n = 3;
		return 0;
	}
	case TH_COL_TIME: {
		/* MariaDB's pre-10.0 fractional TIME carries meta; its layout is not this one. */
		if (meta)
			return -TH_EUNSUPPORTED;
		if (avail < 3)
			return -TH_EBINLOG;
		int64_t x = th_sext(th_le24(p), 24);
		bool neg = x < 0;
		uint32_t a = (uint32_t)(neg ? -x : x);
		unsigned h = a / 10000, m = a / 100 % 100, s = a % 100;
		if (m > 59 || s > 59)
			return -TH_EBINLOG;
		v->kind = TH_VAL_TEXT;
		th__format_time(v->text, neg, h, m, s, 0, 0);
		*n = 3;
		return 0;
	}
	case TH_COL_DATETIME: {
		if (meta)
			return -TH_EUNSUPPORTED;
		if (avail < 8)
			return -TH_EBINLOG;
		/* YYYYMMDDhhmmss as a decimal number. */
		uint64_t x = th_le64(p);
		uint64_t d = x / 1000000, t = x % 1000000;
		unsigned mo = (unsigned)(d / 100 % 100), dd = (unsigned)(d % 100);
		unsigned h = (unsigned)(t / 10000), mi = (unsigned)(t / 100 % 100), s = (unsigned)(t % 100);
		if (d / 10000 > 9999 || mo > 12 || dd > 31 || h > 23 || mi > 59 || s > 59)
			return -TH_EBINLOG;
		v->kind = TH_VAL_TEXT;
		th__format_datetime(v->text, (unsigned)(d / 10000), mo, dd, h, mi, s, 0, 0);
		*n = 8;
		return 0;
	}
	case TH_COL_TIMESTAMP:
		if (meta)
			return -TH_EUNSUPPORTED;
		if (avail < 4)
			return -TH_EBINLOG;
		format_timestamp(v, th_le32(p), 0, 0);
		*n = 4;
		return 0;
	case TH_COL_TIMESTAMP2: {
		if (meta > 6)
			return -TH_EBINLOG;
		size_t w = 4 + frac_bytes(meta);
		if (avail < w)
			return -TH_EBINLOG;
		uint32_t usec = 0;
		if (meta) {
			int r = read_frac(p + 4, meta, &usec);
			if (r)
				return r;
		}
		format_timestamp(v, (uint32_t)th_be(p, 4), usec, meta);
		*n = w;
		return 0;
	}
	case TH_COL_DATETIME2: {
		if (meta > 6)
			return -TH_EBINLOG;
		size_t w = 5 + frac_bytes(meta);
		if (avail < w)
			return -TH_EBINLOG;
		*n = w;
		return decode_datetime2(p, meta, v);
	}
	case TH_COL_TIME2: {
		if (meta > 6)
			return -TH_EBINLOG;
		size_t w = 3 + frac_bytes(meta);
		if (avail < w)
			return -TH_EBINLOG;
		*n = w;
		return decode_time2(p, meta, v);
	}
	case TH_COL_NEWDECIMAL: {
		int r = th__decimal_to_text(p, avail, meta >> 8, meta & 0xff, v->text, n);
		v->kind = TH_VAL_TEXT;
		return r;
	}
	case TH_COL_BIT: {
		/* meta: bits beyond whole bytes in the low byte, whole bytes in the high byte. */
		unsigned bits = (meta >> 8) * 8 + (meta & 0xff);
		if (bits < 1 || bits > 64)
			return -TH_EBINLOG;
		size_t w = (bits + 7) / 8;
		if (avail < w)
			return -TH_EBINLOG;
		v->kind = TH_VAL_BIT;
		v->u = th_be(p, w);
		v->bytes = p;
		v->len = (uint32_t)w;
		*n = w;
		return 0;
	}
	case TH_COL_VARCHAR:
	case TH_COL_VAR_STRING:
		return take_prefixed(p, avail, meta < 256 ? 1 : 2, meta, v,
				     is_binary(c) ? TH_VAL_BYTES : TH_VAL_STRING, n);
	case TH_COL_STRING: {
		unsigned type, size;
		string_real_type((uint16_t)meta, &type, &size);
		if (type == TH_COL_ENUM || type == TH_COL_SET)
			return decode_enum_set(type, size, p, avail, v, n);
		if (type != TH_COL_STRING)
			return -TH_EUNSUPPORTED;
		return take_prefixed(p, avail, size < 256 ? 1 : 2, size, v,
				     is_binary(c) ? TH_VAL_BYTES : TH_VAL_STRING, n);
	}
	case TH_COL_ENUM:
	case TH_COL_SET:
		return decode_enum_set(c->type, meta & 0xff, p, avail, v, n);
	case TH_COL_TINY_BLOB:
	case TH_COL_MEDIUM_BLOB:
	case TH_COL_LONG_BLOB:
	case TH_COL_BLOB:
	case TH_COL_GEOMETRY:
	case TH_COL_JSON:
	case TH_COL_VECTOR: {
		size_t np;
		int r = blob_prefix(c, &np);
		if (r)
			return r;
		enum th_value_kind kind = c->type == TH_COL_JSON ? TH_VAL_JSON
			: c->type == TH_COL_GEOMETRY || c->type == TH_COL_VECTOR || is_binary(c)
			? TH_VAL_BYTES : TH_VAL_STRING;
		return take_prefixed(p, avail, np, UINT32_MAX, v, kind, n);
	}
	case TH_COL_DECIMAL:
		/* Pre-5.0 DECIMAL: TABLE_MAP carries no length for it, so it cannot be delimited. */
	case TH_COL_TYPED_ARRAY:
	default:
		return -TH_EUNSUPPORTED;
	}
}

/*
 * The size of a column the caller does not want, without rendering it: the
 * temporal and decimal types spend most of their decoding on text. Other
 * types are cheap to decode (numbers, or pointers into the image), so they go
 * through decode_column into a scratch value and keep its checks.
 */
static int skip_column(const struct th_column *c, const uint8_t *p, size_t avail, size_t *n)
{
	size_t w;
	switch (c->type) {
	case TH_COL_TIMESTAMP2:
	case TH_COL_DATETIME2:
	case TH_COL_TIME2:
		if (c->meta > 6)
			return -TH_EBINLOG;
		w = (c->type == TH_COL_TIMESTAMP2 ? 4 : c->type == TH_COL_DATETIME2 ? 5 : 3) + frac_bytes(c->meta);
		break;
	case TH_COL_NEWDECIMAL:
		if (th__decimal_size(c->meta >> 8, c->meta & 0xff, &w))
			return -TH_EBINLOG;
		break;
	default: {
		struct th_value scratch;
		scratch.kind = TH_VAL_NULL;
		return decode_column(c, p, avail, &scratch, n);
	}
	}
	if (avail < w)
		return -TH_EBINLOG;
	*n = w;
	return 0;
}

int th_row_decode(const struct th_table_map *tm, const uint8_t *present,
		  const uint8_t *p, size_t len, struct th_value *out, size_t *used)
{
	return th_row_decode_wanted(tm, present, NULL, p, len, out, used);
}

int th_row_decode_wanted(const struct th_table_map *tm, const uint8_t *present, const uint8_t *wanted,
			 const uint8_t *p, size_t len, struct th_value *out, size_t *used)
{
	if (!tm || !used || (tm->ncols && (!present || !out || !tm->cols)) || (!p && len))
		return -EINVAL;
	uint32_t ncols = tm->ncols;

	/* The image's null bitmap has one bit per present column, not per table column. */
	size_t npresent = 0;
	for (uint32_t i = 0; i < ncols / 8; i++)
		npresent += (size_t)__builtin_popcount(present[i]);
	if (ncols % 8)
		npresent += (size_t)__builtin_popcount(present[ncols / 8] & ((1u << (ncols % 8)) - 1));
	size_t pos = (npresent + 7) / 8;
	if (len < pos)
		return -TH_EBINLOG;
	const uint8_t *nulls = p;

	size_t j = 0;
	for (uint32_t i = 0; i < ncols; i++) {
		struct th_value *v = &out[i];
		if (!((present[i >> 3] >> (i & 7)) & 1)) {
			v->kind = TH_VAL_ABSENT;
			continue;
		}
		bool isnull = (nulls[j >> 3] >> (j & 7)) & 1;
		j++;
		if (isnull) {
			v->kind = TH_VAL_NULL;
			continue;
		}
		size_t n = 0;
		int r;
		if (wanted && !((wanted[i >> 3] >> (i & 7)) & 1)) {
			v->kind = TH_VAL_ABSENT;
			r = skip_column(&tm->cols[i], p + pos, len - pos, &n);
		} else {
			r = decode_column(&tm->cols[i], p + pos, len - pos, v, &n);
		}
		if (r)
			return r;
		pos += n;
	}
	*used = pos;
	return 0;
}

/* ---- JSON rendering ---- */

void th__json_number_u64(struct th_buf *out, uint64_t u)
{
	char tmp[24];
	char *e = put_u64(tmp, u);
	th_buf_append(out, tmp, (size_t)(e - tmp));
}

void th__json_number_i64(struct th_buf *out, int64_t i)
{
	char tmp[24];
	char *o = tmp;
	uint64_t u = (uint64_t)i;
	if (i < 0) {
		*o++ = '-';
		u = 0 - u; /* well defined for INT64_MIN too */
	}
	o = put_u64(o, u);
	th_buf_append(out, tmp, (size_t)(o - tmp));
}

int th__json_number_double(struct th_buf *out, double d, bool single, bool mark_float)
{
	if (!isfinite(d)) {
		th_buf_puts(out, "null");
		return 0;
	}
	/*
	 * Shortest text that reads back as the same value: FLT_DIG/DBL_DIG digits
	 * always do for numbers that came from decimal text, the longer forms
	 * cover the rest.
	 */
	char tmp[40];
	int n = 0;
	for (int prec = single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
		n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
		if (n <= 0 || (size_t)n >= sizeof tmp)
			return -TH_EBINLOG;
		if (single ? strtof(tmp, NULL) == (float)d : strtod(tmp, NULL) == d)
			break;
	}
	/* A caller's locale may use a decimal comma; JSON may not. */
	bool has_point = false;
	for (int k = 0; k < n; k++) {
		if (tmp[k] == ',')
			tmp[k] = '.';
		if (tmp[k] == '.' || tmp[k] == 'e')
			has_point = true;
	}
	th_buf_append(out, tmp, (size_t)n);
	if (mark_float && !has_point)
		th_buf_puts(out, ".0");
	return 0;
}

/* Bytes as a JSON string when they are UTF-8, else {"base64":"..."}. */
static void json_bytes(struct th_buf *out, const uint8_t *p, size_t n)
{
	if (th_utf8_valid(p, n)) {
		th_buf_json_string(out, p, n);
		return;
	}
	th_buf_puts(out, "{\"base64\":\"");
	th_buf_base64(out, p, n);
	th_buf_puts(out, "\"}");
}

static bool has_strs(const struct th_column *col)
{
	return col && col->strs && col->str_lens && col->nstrs;
}

static void json_enum(struct th_buf *out, const struct th_column *col, uint64_t idx)
{
	if (!has_strs(col) || idx > col->nstrs) {
		th__json_number_u64(out, idx);
		return;
	}
	if (idx == 0) {
		/* The index MySQL stores for a value that was not in the list. */
		th_buf_puts(out, "\"\"");
		return;
	}
	json_bytes(out, (const uint8_t *)col->strs[idx - 1], col->str_lens[idx - 1]);
}

static int json_set(struct th_buf *out, const struct th_column *col, uint64_t bits)
{
	if (!has_strs(col) || (col->nstrs < 64 && (bits >> col->nstrs))) {
		th__json_number_u64(out, bits);
		return 0;
	}
	struct th_buf tmp = TH_BUF_INIT;
	bool first = true;
	for (uint32_t k = 0; k < col->nstrs && k < 64; k++) {
		if (!((bits >> k) & 1))
			continue;
		if (!first)
			th_buf_putc(&tmp, ',');
		first = false;
		th_buf_append(&tmp, col->strs[k], col->str_lens[k]);
	}
	int r = th_buf_failed(&tmp) ? -ENOMEM : 0;
	if (!r)
		json_bytes(out, (const uint8_t *)tmp.data, tmp.len);
	th_buf_free(&tmp);
	return r;
}

int th_value_to_json(const struct th_column *col, const struct th_value *v, struct th_buf *out)
{
	if (!v || !out)
		return -EINVAL;
	if (th_buf_failed(out))
		return -ENOMEM;
	size_t start = out->len;
	int r = 0;
	switch (v->kind) {
	case TH_VAL_NULL:
		th_buf_puts(out, "null");
		break;
	case TH_VAL_INT:
		th__json_number_i64(out, v->i);
		break;
	case TH_VAL_UINT:
	case TH_VAL_BIT:
		th__json_number_u64(out, v->u);
		break;
	case TH_VAL_DOUBLE:
		r = th__json_number_double(out, v->d, col && col->type == TH_COL_FLOAT, false);
		break;
	case TH_VAL_TEXT:
		th_buf_json_string(out, v->text, strnlen(v->text, sizeof v->text));
		break;
	case TH_VAL_STRING:
	case TH_VAL_BYTES:
		json_bytes(out, v->bytes, v->len);
		break;
	case TH_VAL_JSON:
		r = th_json_binary_to_text(v->bytes, v->len, out);
		break;
	case TH_VAL_ENUM:
		json_enum(out, col, v->u);
		break;
	case TH_VAL_SET:
		r = json_set(out, col, v->u);
		break;
	case TH_VAL_ABSENT:
	default:
		return -EINVAL;
	}
	if (!r && th_buf_failed(out))
		r = -ENOMEM;
	if (r && !th_buf_failed(out)) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return r;
}
