/* SPDX-License-Identifier: Apache-2.0 */
/*
 * binlog_event.c: one event's bytes -> struct th_binlog_event (binlog.h).
 *
 * Every read goes through struct rd, a cursor whose reads past its end set a
 * sticky flag and return zeros, so a field list reads straight and is checked
 * once. Layouts follow the servers' writers (MySQL libbinlogevents, MariaDB
 * log_event*.cc); where the two differ the comment says so.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "readers/binlog.h"
#include "common/th_buf.h"
#include "common/th_bytes.h"
#include "common/th_crc32.h"
#include "common/th_error.h"

/* ---- byte cursor ------------------------------------------------------- */

struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static inline struct rd rd_make(const uint8_t *p, size_t n)
{
	return (struct rd){ p, p + n, false };
}

static inline size_t rd_left(const struct rd *r)
{
	return r->bad ? 0 : (size_t)(r->end - r->p);
}

static inline const uint8_t *rd_take(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *q = r->p;
	r->p += n;
	return q;
}

static inline uint64_t rd_uint(struct rd *r, unsigned n)
{
	const uint8_t *q = rd_take(r, n);
	return q ? th_le(q, n) : 0;
}

static inline uint8_t rd_u8(struct rd *r) { return (uint8_t)rd_uint(r, 1); }
static inline uint16_t rd_u16(struct rd *r) { return (uint16_t)rd_uint(r, 2); }
static inline uint32_t rd_u32(struct rd *r) { return (uint32_t)rd_uint(r, 4); }
static inline uint64_t rd_u64(struct rd *r) { return rd_uint(r, 8); }

/* MySQL's length-encoded integer; 251 (SQL NULL) and 255 are malformed here. */
static uint64_t rd_packed(struct rd *r)
{
	uint8_t b = rd_u8(r);
	if (b < 251)
		return b;
	switch (b) {
	case 252: return rd_uint(r, 2);
	case 253: return rd_uint(r, 3);
	case 254: return rd_uint(r, 8);
	default: r->bad = true; return 0;
	}
}

/* ---- decoder state ----------------------------------------------------- */

/* A cached TABLE_MAP: a copy of its body and everything th_table_map points to. */
struct tm_entry {
	struct th_table_map tm;
	uint64_t gen;               /* statement generation it was last mapped in */
	uint8_t *raw;               /* copy of the TABLE_MAP body */
	size_t raw_len, raw_cap;
	struct th_column *cols;
	uint32_t cols_cap;
	const char **strs;          /* enum/set strings of all columns */
	uint32_t *str_lens;
	uint32_t strs_cap, lens_cap;
	uint32_t njson;             /* JSON columns (partial-update bitmaps) */
};

struct th_binlog_decoder {
	char source[256];
	char err[512];

	bool have_format;
	struct th_ev_format_description fmt;
	uint8_t header_len;         /* common header length of events after the format event */
	uint8_t post_len[256];      /* post-header length by type - 1 */
	unsigned n_post;            /* types 1..n_post have one */
	enum th_binlog_checksum checksum, initial_checksum;
	size_t max_inflated;

	/* table_id -> entry, open addressing, linear probing; see tm_insert() */
	struct tm_entry **slots;
	size_t nslots, nused;
	uint64_t stmt_gen;
	uint32_t *scratch;          /* column ordinals while parsing optional metadata */
	size_t scratch_cap;

	/* the TRANSACTION_PAYLOAD being iterated */
	uint8_t *pl;
	size_t pl_cap, pl_len, pl_off;
	uint64_t pl_pos;
	bool pl_active;
	ZSTD_DCtx *zd;

	/* MariaDB-compressed bodies */
	uint8_t *unz;
	size_t unz_cap;
	z_stream zs;
	bool zs_ready;
};

static int fail(struct th_binlog_decoder *dec, uint64_t pos, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct th_binlog_decoder *dec, uint64_t pos, int code, const char *fmt, ...)
{
	int n = snprintf(dec->err, sizeof dec->err, "%s at %llu: ",
			 dec->source[0] ? dec->source : "binlog", (unsigned long long)pos);
	if (n < 0 || (size_t)n >= sizeof dec->err)
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dec->err + n, sizeof dec->err - (size_t)n, fmt, ap);
	va_end(ap);
	return -code;
}

static const char *type_name_for_msg(uint8_t type);

int th_binlog_decoder_new(struct th_binlog_decoder **out, const struct th_binlog_decoder_opts *opts)
{
	if (!out || (opts && opts->size < sizeof *opts))
		return -EINVAL;
	struct th_binlog_decoder *dec = calloc(1, sizeof *dec);
	if (!dec)
		return -ENOMEM;
	dec->max_inflated = (opts && opts->max_inflated) ? opts->max_inflated : (size_t)1 << 30;
	dec->initial_checksum = opts ? opts->initial_checksum : TH_BINLOG_CHECKSUM_OFF;
	dec->checksum = dec->initial_checksum;
	*out = dec;
	return 0;
}

static void tm_entry_free(struct tm_entry *e)
{
	if (!e)
		return;
	free(e->raw);
	free(e->cols);
	free(e->strs);
	free(e->str_lens);
	free(e);
}

static void tm_clear(struct th_binlog_decoder *dec)
{
	for (size_t i = 0; i < dec->nslots; i++) {
		tm_entry_free(dec->slots[i]);
		dec->slots[i] = NULL;
	}
	dec->nused = 0;
}

void th_binlog_decoder_free(struct th_binlog_decoder *dec)
{
	if (!dec)
		return;
	tm_clear(dec);
	free(dec->slots);
	free(dec->scratch);
	free(dec->pl);
	free(dec->unz);
	if (dec->zd)
		ZSTD_freeDCtx(dec->zd);
	if (dec->zs_ready)
		inflateEnd(&dec->zs);
	free(dec);
}

void th_binlog_decoder_reset(struct th_binlog_decoder *dec, const char *source)
{
	snprintf(dec->source, sizeof dec->source, "%s", source ? source : "");
	dec->err[0] = 0;
	dec->have_format = false;
	memset(&dec->fmt, 0, sizeof dec->fmt);
	dec->n_post = 0;
	dec->checksum = dec->initial_checksum;
	dec->pl_active = false;
	tm_clear(dec);
}

void th_binlog_decoder_set_checksum(struct th_binlog_decoder *dec, enum th_binlog_checksum alg)
{
	dec->checksum = alg;
}

const char *th_binlog_decoder_error(const struct th_binlog_decoder *dec)
{
	return dec->err;
}

const struct th_ev_format_description *th_binlog_decoder_format(const struct th_binlog_decoder *dec)
{
	return dec->have_format ? &dec->fmt : NULL;
}

/* ---- table-map cache --------------------------------------------------- */

static inline size_t tm_hash(uint64_t id, size_t mask)
{
	id *= 0x9E3779B97F4A7C15ull; /* Fibonacci hashing: ids are often sequential */
	return (size_t)(id >> 32) & mask;
}

static struct tm_entry *tm_find(const struct th_binlog_decoder *dec, uint64_t id)
{
	if (!dec->nslots)
		return NULL;
	size_t mask = dec->nslots - 1;
	for (size_t i = tm_hash(id, mask);; i = (i + 1) & mask) {
		struct tm_entry *e = dec->slots[i];
		if (!e)
			return NULL;
		if (e->tm.table_id == id)
			return e;
	}
}

const struct th_table_map *th_binlog_decoder_table(const struct th_binlog_decoder *dec, uint64_t table_id)
{
	struct tm_entry *e = tm_find(dec, table_id);
	return e && e->raw_len ? &e->tm : NULL;
}

static int tm_rehash(struct th_binlog_decoder *dec, size_t nslots, bool drop_stale)
{
	struct tm_entry **slots = calloc(nslots, sizeof *slots);
	if (!slots)
		return -ENOMEM;
	size_t used = 0;
	for (size_t i = 0; i < dec->nslots; i++) {
		struct tm_entry *e = dec->slots[i];
		if (!e)
			continue;
		if (drop_stale && e->gen < dec->stmt_gen) {
			tm_entry_free(e);
			continue;
		}
		size_t j = tm_hash(e->tm.table_id, nslots - 1);
		while (slots[j])
			j = (j + 1) & (nslots - 1);
		slots[j] = e;
		used++;
	}
	free(dec->slots);
	dec->slots = slots;
	dec->nslots = nslots;
	dec->nused = used;
	return 0;
}

/*
 * Find or make the entry for id. Table ids only grow on a server that reopens
 * tables, so the cache would grow without bound; when it fills, entries not
 * mapped since the last end of statement are dropped (a statement always maps
 * its tables again before its row events), and only then does it grow.
 */
static int tm_slot(struct th_binlog_decoder *dec, uint64_t id, struct tm_entry **out)
{
	struct tm_entry *e = tm_find(dec, id);
	if (e) {
		*out = e;
		return 0;
	}
	if (!dec->nslots || (dec->nused + 1) * 2 > dec->nslots) {
		int rc = 0;
		if (dec->nslots)
			rc = tm_rehash(dec, dec->nslots, true);
		if (!rc && (!dec->nslots || (dec->nused + 1) * 4 > dec->nslots))
			rc = tm_rehash(dec, dec->nslots ? dec->nslots * 2 : 64, false);
		if (rc)
			return rc;
	}
	e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	e->tm.table_id = id;
	size_t mask = dec->nslots - 1, j = tm_hash(id, mask);
	while (dec->slots[j])
		j = (j + 1) & mask;
	dec->slots[j] = e;
	dec->nused++;
	*out = e;
	return 0;
}

/* ---- TABLE_MAP --------------------------------------------------------- */

enum {
	OPT_SIGNEDNESS = 1, OPT_DEFAULT_CHARSET, OPT_COLUMN_CHARSET, OPT_COLUMN_NAME,
	OPT_SET_STR_VALUE, OPT_ENUM_STR_VALUE, OPT_GEOMETRY_TYPE, OPT_SIMPLE_PRIMARY_KEY,
	OPT_PRIMARY_KEY_WITH_PREFIX, OPT_ENUM_AND_SET_DEFAULT_CHARSET,
	OPT_ENUM_AND_SET_COLUMN_CHARSET, OPT_COLUMN_VISIBILITY,
};

/* MariaDB's compressed-column types (10.3+), written as such in TABLE_MAP. */
#define COL_VARCHAR_COMPRESSED 140
#define COL_BLOB_COMPRESSED 141

/* ENUM and SET columns are written as STRING with the real type in meta's high byte. */
static inline unsigned real_type(const struct th_column *c)
{
	if (c->type == TH_COL_STRING && ((c->meta >> 8) == TH_COL_ENUM || (c->meta >> 8) == TH_COL_SET))
		return c->meta >> 8;
	return c->type;
}

/* The column categories the optional metadata is indexed by (MySQL's log_event.cc). */
static bool is_numeric(unsigned t)
{
	switch (t) {
	case TH_COL_TINY: case TH_COL_SHORT: case TH_COL_INT24: case TH_COL_LONG:
	case TH_COL_LONGLONG: case TH_COL_NEWDECIMAL: case TH_COL_FLOAT: case TH_COL_DOUBLE:
		return true;
	default:
		return false;
	}
}

static bool is_character(unsigned t)
{
	switch (t) {
	case TH_COL_STRING: case TH_COL_VAR_STRING: case TH_COL_VARCHAR: case TH_COL_BLOB:
	case TH_COL_GEOMETRY: /* a BLOB underneath: it has a charset entry (binary) */
	case COL_VARCHAR_COMPRESSED: case COL_BLOB_COMPRESSED:
		return true;
	default:
		return false;
	}
}

static bool is_enum_or_set(unsigned t) { return t == TH_COL_ENUM || t == TH_COL_SET; }

/* Bytes of TABLE_MAP metadata per column type, or -1 for a type we cannot frame. */
static int meta_bytes(unsigned type)
{
	switch (type) {
	case TH_COL_FLOAT: case TH_COL_DOUBLE: case TH_COL_BLOB: case TH_COL_TINY_BLOB:
	case TH_COL_MEDIUM_BLOB: case TH_COL_LONG_BLOB: case TH_COL_GEOMETRY: case TH_COL_JSON:
	case TH_COL_TIME2: case TH_COL_DATETIME2: case TH_COL_TIMESTAMP2: case COL_BLOB_COMPRESSED:
	case TH_COL_VECTOR:
		return 1;
	case TH_COL_VARCHAR: case TH_COL_VAR_STRING: case TH_COL_BIT: case TH_COL_NEWDECIMAL:
	case TH_COL_STRING: case TH_COL_ENUM: case TH_COL_SET: case COL_VARCHAR_COMPRESSED:
		return 2;
	case TH_COL_DECIMAL: case TH_COL_TINY: case TH_COL_SHORT: case TH_COL_LONG:
	case TH_COL_NULL: case TH_COL_TIMESTAMP: case TH_COL_LONGLONG: case TH_COL_INT24:
	case TH_COL_DATE: case TH_COL_TIME: case TH_COL_DATETIME: case TH_COL_YEAR:
	case TH_COL_NEWDATE:
		return 0;
	default:
		return -1; /* TYPED_ARRAY and anything newer */
	}
}

/* Column ordinals of one category: list[k] = index of the k-th such column. */
static int category_list(struct th_binlog_decoder *dec, const struct th_table_map *tm,
			 bool (*pred)(unsigned), uint32_t **list, uint32_t *n)
{
	if (th_grow((void **)&dec->scratch, &dec->scratch_cap, tm->ncols + 1, sizeof *dec->scratch))
		return -ENOMEM;
	uint32_t k = 0;
	for (uint32_t i = 0; i < tm->ncols; i++)
		if (pred(real_type(&tm->cols[i])))
			dec->scratch[k++] = i;
	*list = dec->scratch;
	*n = k;
	return 0;
}

static void set_charset(struct th_column *c, uint64_t coll)
{
	c->charset = (uint16_t)coll;
	c->binary = coll == 63;
}

/* DEFAULT_CHARSET-style field: a default, then (ordinal, collation) pairs. */
static int opt_default_charset(struct th_binlog_decoder *dec, struct th_table_map *tm, struct rd *r,
			       bool (*pred)(unsigned))
{
	uint32_t *list, n;
	if (category_list(dec, tm, pred, &list, &n))
		return -ENOMEM;
	uint64_t def = rd_packed(r);
	if (r->bad || def > UINT16_MAX)
		return -TH_EBINLOG;
	for (uint32_t k = 0; k < n; k++)
		set_charset(&tm->cols[list[k]], def);
	while (rd_left(r)) {
		uint64_t idx = rd_packed(r), coll = rd_packed(r);
		if (r->bad || idx >= n || coll > UINT16_MAX)
			return -TH_EBINLOG;
		set_charset(&tm->cols[list[idx]], coll);
	}
	return r->bad ? -TH_EBINLOG : 0;
}

static int opt_column_charset(struct th_binlog_decoder *dec, struct th_table_map *tm, struct rd *r,
			      bool (*pred)(unsigned))
{
	uint32_t *list, n;
	if (category_list(dec, tm, pred, &list, &n))
		return -ENOMEM;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t coll = rd_packed(r);
		if (r->bad || coll > UINT16_MAX)
			return -TH_EBINLOG;
		set_charset(&tm->cols[list[k]], coll);
	}
	return rd_left(r) ? -TH_EBINLOG : 0;
}

/* ENUM_STR_VALUE / SET_STR_VALUE: per column of that type, a count then strings. */
static int opt_strs(struct th_binlog_decoder *dec, struct tm_entry *e, struct rd *r, unsigned want,
		    uint32_t *next_str)
{
	struct th_table_map *tm = &e->tm;
	for (uint32_t i = 0; i < tm->ncols; i++) {
		struct th_column *c = &tm->cols[i];
		if (real_type(c) != want)
			continue;
		uint64_t cnt = rd_packed(r);
		uint32_t room = (e->strs_cap < e->lens_cap ? e->strs_cap : e->lens_cap) - *next_str;
		if (r->bad || cnt > rd_left(r) || cnt > room)
			return -TH_EBINLOG;
		c->strs = &e->strs[*next_str];
		c->str_lens = &e->str_lens[*next_str];
		c->nstrs = (uint32_t)cnt;
		for (uint64_t k = 0; k < cnt; k++) {
			uint64_t len = rd_packed(r);
			const uint8_t *s = (len <= UINT32_MAX) ? rd_take(r, (size_t)len) : NULL;
			if (!s)
				return -TH_EBINLOG;
			e->strs[*next_str] = (const char *)s;
			e->str_lens[*next_str] = (uint32_t)len;
			(*next_str)++;
		}
	}
	(void)dec;
	return rd_left(r) ? -TH_EBINLOG : 0;
}

/* Upper bound of enum/set strings in the optional metadata, for one allocation. */
static int count_strs(const uint8_t *p, size_t n, size_t *total)
{
	struct rd r = rd_make(p, n);
	*total = 0;
	while (rd_left(&r)) {
		uint8_t t = rd_u8(&r);
		uint64_t len = rd_packed(&r);
		if (r.bad || len > rd_left(&r))
			return -TH_EBINLOG;
		rd_take(&r, (size_t)len);
		if (t == OPT_SET_STR_VALUE || t == OPT_ENUM_STR_VALUE)
			*total += (size_t)len; /* each string takes at least one byte */
	}
	return 0;
}

static int parse_optional_metadata(struct th_binlog_decoder *dec, struct tm_entry *e,
				   const uint8_t *p, size_t n, const char **what)
{
	struct th_table_map *tm = &e->tm;
	size_t nstrs;
	*what = "optional metadata framing";
	if (count_strs(p, n, &nstrs))
		return -TH_EBINLOG;
	if (th_grow32((void **)&e->strs, &e->strs_cap, nstrs, sizeof *e->strs) ||
	    th_grow32((void **)&e->str_lens, &e->lens_cap, nstrs, sizeof *e->str_lens))
		return -ENOMEM;
	uint32_t next_str = 0;
	struct rd r = rd_make(p, n);
	while (rd_left(&r)) {
		uint8_t t = rd_u8(&r);
		uint64_t len = rd_packed(&r);
		const uint8_t *v = rd_take(&r, (size_t)len);
		if (!v)
			return -TH_EBINLOG;
		struct rd f = rd_make(v, (size_t)len);
		int rc = 0;
		switch (t) {
		case OPT_SIGNEDNESS: {
			*what = "SIGNEDNESS";
			uint32_t k = 0;
			for (uint32_t i = 0; i < tm->ncols; i++) {
				if (!is_numeric(tm->cols[i].type))
					continue;
				if (k / 8 >= len)
					return -TH_EBINLOG;
				tm->cols[i].is_unsigned = (f.p[k / 8] >> (7 - k % 8)) & 1;
				k++;
			}
			if ((k + 7) / 8 != len)
				return -TH_EBINLOG;
			break;
		}
		case OPT_DEFAULT_CHARSET:
			*what = "DEFAULT_CHARSET";
			rc = opt_default_charset(dec, tm, &f, is_character);
			break;
		case OPT_COLUMN_CHARSET:
			*what = "COLUMN_CHARSET";
			rc = opt_column_charset(dec, tm, &f, is_character);
			break;
		case OPT_ENUM_AND_SET_DEFAULT_CHARSET:
			*what = "ENUM_AND_SET_DEFAULT_CHARSET";
			rc = opt_default_charset(dec, tm, &f, is_enum_or_set);
			break;
		case OPT_ENUM_AND_SET_COLUMN_CHARSET:
			*what = "ENUM_AND_SET_COLUMN_CHARSET";
			rc = opt_column_charset(dec, tm, &f, is_enum_or_set);
			break;
		case OPT_COLUMN_NAME:
			*what = "COLUMN_NAME";
			for (uint32_t i = 0; i < tm->ncols; i++) {
				uint64_t l = rd_packed(&f);
				const uint8_t *s = l <= UINT32_MAX ? rd_take(&f, (size_t)l) : NULL;
				if (!s)
					return -TH_EBINLOG;
				tm->cols[i].name = (const char *)s;
				tm->cols[i].name_len = (uint32_t)l;
			}
			if (rd_left(&f))
				return -TH_EBINLOG;
			tm->has_names = true;
			break;
		case OPT_SET_STR_VALUE:
			*what = "SET_STR_VALUE";
			rc = opt_strs(dec, e, &f, TH_COL_SET, &next_str);
			break;
		case OPT_ENUM_STR_VALUE:
			*what = "ENUM_STR_VALUE";
			rc = opt_strs(dec, e, &f, TH_COL_ENUM, &next_str);
			break;
		case OPT_GEOMETRY_TYPE:
		case OPT_SIMPLE_PRIMARY_KEY:
		case OPT_PRIMARY_KEY_WITH_PREFIX:
			/* lists of packed integers; checked for framing, not kept */
			*what = t == OPT_GEOMETRY_TYPE ? "GEOMETRY_TYPE" : "PRIMARY_KEY";
			while (rd_left(&f)) {
				uint64_t x = rd_packed(&f);
				if (t == OPT_PRIMARY_KEY_WITH_PREFIX)
					rd_packed(&f);
				if (!f.bad && t != OPT_GEOMETRY_TYPE && x >= tm->ncols)
					return -TH_EBINLOG;
			}
			if (f.bad)
				return -TH_EBINLOG;
			break;
		default:
			/* COLUMN_VISIBILITY and fields newer than this code: framed, skipped */
			break;
		}
		if (rc)
			return rc;
	}
	return 0;
}

static void tm_entry_blank_cols(struct tm_entry *e)
{
	memset(e->cols, 0, e->tm.ncols * sizeof *e->cols);
}

/*
 * Parse a TABLE_MAP body into the cache. The body is copied first so that the
 * names and strings the entry points to live as long as the entry.
 */
static int decode_table_map(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	const uint8_t *b = ev->body;
	size_t n = ev->body_len;
	if (ph != 6 && ph != 8)
		return fail(dec, ev->pos, TH_EBINLOG, "TABLE_MAP post-header length %u (want 6 or 8)", ph);
	if (n < ph)
		return fail(dec, ev->pos, TH_EBINLOG, "TABLE_MAP shorter than its post-header");
	uint64_t id = ph == 6 ? th_le(b, 4) : th_le(b, 6);
	ev->u.table_map.flags = (uint16_t)th_le(b + ph - 2, 2);

	struct tm_entry *e = tm_find(dec, id);
	if (e && e->raw_len == n && !memcmp(e->raw, b, n)) {
		/* the same table again (every transaction maps its tables): nothing to parse */
		e->gen = dec->stmt_gen;
		ev->u.table_map.tm = &e->tm;
		return 0;
	}
	int rc = tm_slot(dec, id, &e);
	if (rc)
		return fail(dec, ev->pos, -rc, "out of memory caching TABLE_MAP");
	if (th_grow((void **)&e->raw, &e->raw_cap, n ? n : 1, 1)) {
		e->raw_len = 0; /* never matches: the next TABLE_MAP parses again */
		return fail(dec, ev->pos, ENOMEM, "out of memory caching TABLE_MAP");
	}
	memcpy(e->raw, b, n);
	e->raw_len = 0; /* set once parsed: a failed parse must not be reused */
	e->gen = dec->stmt_gen;

	struct th_table_map *tm = &e->tm;
	struct rd r = rd_make(e->raw + ph, n - ph);
	const char *what = "names";
	uint8_t slen = rd_u8(&r);
	const uint8_t *schema = rd_take(&r, (size_t)slen + 1);
	uint8_t tlen = rd_u8(&r);
	const uint8_t *table = rd_take(&r, (size_t)tlen + 1);
	if (r.bad || schema[slen] != 0 || table[tlen] != 0)
		goto bad;
	what = "column count";
	uint64_t ncols = rd_packed(&r);
	if (r.bad || ncols > rd_left(&r))
		goto bad;
	what = "column types";
	const uint8_t *types = rd_take(&r, (size_t)ncols);
	uint64_t mlen = rd_packed(&r);
	what = "column metadata";
	if (r.bad || mlen > rd_left(&r))
		goto bad;
	const uint8_t *meta = rd_take(&r, (size_t)mlen);
	what = "null bitmap";
	const uint8_t *nulls = rd_take(&r, (size_t)(ncols + 7) / 8);
	if (r.bad)
		goto bad;
	if (th_grow32((void **)&e->cols, &e->cols_cap, ncols ? ncols : 1, sizeof *e->cols)) {
		e->tm.ncols = 0;
		return fail(dec, ev->pos, ENOMEM, "out of memory caching TABLE_MAP");
	}
	tm->table_id = id;
	tm->schema = (const char *)schema;
	tm->table = (const char *)table;
	tm->ncols = (uint32_t)ncols;
	tm->cols = e->cols;
	tm->has_names = false;
	tm_entry_blank_cols(e);
	e->njson = 0;

	struct rd m = rd_make(meta, (size_t)mlen);
	for (uint32_t i = 0; i < tm->ncols; i++) {
		struct th_column *c = &tm->cols[i];
		c->type = types[i];
		c->nullable = (nulls[i / 8] >> (i % 8)) & 1;
		int mb = meta_bytes(c->type);
		if (mb < 0) {
			tm->ncols = 0;
			return fail(dec, ev->pos, TH_EUNSUPPORTED,
				    "TABLE_MAP %s.%s: column %u has type %u, which this decoder cannot read",
				    tm->schema, tm->table, i + 1, c->type);
		}
		if (mb == 1) {
			c->meta = rd_u8(&m);
		} else if (mb == 2) {
			const uint8_t *q = rd_take(&m, 2);
			if (!q)
				break;
			/* NEWDECIMAL and STRING/ENUM/SET store (precision|real type) first */
			if (c->type == TH_COL_NEWDECIMAL || c->type == TH_COL_STRING ||
			    c->type == TH_COL_ENUM || c->type == TH_COL_SET)
				c->meta = (uint16_t)th_be(q, 2);
			else
				c->meta = (uint16_t)th_le16(q);
		}
		if (c->type == TH_COL_JSON)
			e->njson++;
	}
	what = "column metadata length";
	if (m.bad || rd_left(&m))
		goto bad;
	rc = parse_optional_metadata(dec, e, r.p, rd_left(&r), &what);
	if (rc == -ENOMEM)
		return fail(dec, ev->pos, ENOMEM, "out of memory caching TABLE_MAP");
	if (rc)
		goto bad;
	e->raw_len = n;
	ev->u.table_map.tm = tm;
	return 0;
bad:
	tm->ncols = 0;
	return fail(dec, ev->pos, TH_EBINLOG, "TABLE_MAP for table_id %llu: malformed %s",
		    (unsigned long long)id, what);
}

/* ---- inflating --------------------------------------------------------- */

/* MariaDB's compressed field: 0x80|lenlen, big-endian length, zlib stream. */
static int maria_inflate(struct th_binlog_decoder *dec, uint64_t pos, const uint8_t *p, size_t n,
			 const uint8_t **out, size_t *outlen)
{
	/* bits 4-6 name the algorithm: only 0 (zlib) exists */
	if (n < 1 || (p[0] & 0xf0) != 0x80)
		return fail(dec, pos, TH_EBINLOG, "compressed field: bad header byte %02x", n ? p[0] : 0);
	unsigned lenlen = p[0] & 7;
	if (lenlen < 1 || lenlen > 4 || n < 1 + (size_t)lenlen)
		return fail(dec, pos, TH_EBINLOG, "compressed field: bad length-of-length %u", lenlen);
	uint64_t want = 0;
	for (unsigned i = 0; i < lenlen; i++)
		want = want << 8 | p[1 + i];
	if (want > dec->max_inflated)
		return fail(dec, pos, TH_ETOOBIG, "compressed field inflates to %llu bytes, over the limit",
			    (unsigned long long)want);
	if (!dec->zs_ready) {
		memset(&dec->zs, 0, sizeof dec->zs);
		if (inflateInit(&dec->zs) != Z_OK)
			return fail(dec, pos, ENOMEM, "zlib: cannot initialise");
		dec->zs_ready = true;
	} else if (inflateReset(&dec->zs) != Z_OK) {
		return fail(dec, pos, TH_EBINLOG, "zlib: cannot reset");
	}
	/* grow as the data proves itself: a lying length costs no memory */
	size_t first = want < 65536 + 8 * n ? (size_t)want : 65536 + 8 * n;
	if (th_grow((void **)&dec->unz, &dec->unz_cap, first ? first : 1, 1))
		return fail(dec, pos, ENOMEM, "out of memory inflating");
	z_stream *zs = &dec->zs;
	zs->next_in = (Bytef *)(p + 1 + lenlen);
	zs->avail_in = (uInt)(n - 1 - lenlen);
	size_t done = 0;
	for (;;) {
		size_t room = (dec->unz_cap < want ? dec->unz_cap : (size_t)want) - done;
		zs->next_out = dec->unz + done;
		zs->avail_out = (uInt)(room > UINT32_MAX ? UINT32_MAX : room);
		uInt before = zs->avail_out;
		int zr = inflate(zs, Z_NO_FLUSH);
		done += before - zs->avail_out;
		if (zr == Z_STREAM_END)
			break;
		if (zr == Z_BUF_ERROR && zs->avail_out == 0 && done < want) {
			/* fall through to grow */
		} else if (zr != Z_OK) {
			return fail(dec, pos, TH_EBINLOG, "compressed field: zlib says %s",
				    zs->msg ? zs->msg : "data error");
		}
		if (zs->avail_in == 0 && zs->avail_out != 0)
			return fail(dec, pos, TH_EBINLOG, "compressed field: zlib stream is truncated");
		if (done == want) {
			return fail(dec, pos, TH_EBINLOG,
				    "compressed field inflates to more than its stated %llu bytes",
				    (unsigned long long)want);
		}
		if (zs->avail_out == 0 && done < want &&
		    th_grow((void **)&dec->unz, &dec->unz_cap, dec->unz_cap * 2 < want ? dec->unz_cap * 2 : (size_t)want, 1))
			return fail(dec, pos, ENOMEM, "out of memory inflating");
	}
	if (done != want || zs->avail_in != 0)
		return fail(dec, pos, TH_EBINLOG, "compressed field: %zu bytes inflated, %llu stated%s", done,
			    (unsigned long long)want, zs->avail_in ? ", trailing bytes" : "");
	*out = dec->unz;
	*outlen = done;
	return 0;
}

/* ---- event bodies ------------------------------------------------------ */

static int post_len(struct th_binlog_decoder *dec, const struct th_binlog_event *ev, unsigned *ph)
{
	if (!dec->have_format)
		return fail(dec, ev->pos, TH_EBINLOG, "%s event before any FORMAT_DESCRIPTION",
			    type_name_for_msg(ev->type));
	if (ev->type == 0 || ev->type > dec->n_post)
		return fail(dec, ev->pos, TH_EBINLOG,
			    "FORMAT_DESCRIPTION gives no post-header length for event type %u", ev->type);
	*ph = dec->post_len[ev->type - 1];
	if (*ph > ev->body_len)
		return fail(dec, ev->pos, TH_ETRUNCATED, "%s event shorter than its %u-byte post-header",
			    type_name_for_msg(ev->type), *ph);
	return 0;
}

static bool version_at_least(const char *v, unsigned a, unsigned b, unsigned c)
{
	unsigned x[3] = { 0, 0, 0 };
	for (int i = 0; i < 3; i++) {
		unsigned n = 0;
		bool any = false;
		while (*v >= '0' && *v <= '9' && n < 100000) {
			n = n * 10 + (unsigned)(*v++ - '0');
			any = true;
		}
		if (!any)
			break;
		x[i] = n;
		if (*v == '.')
			v++;
		else
			break;
	}
	unsigned long have = ((unsigned long)x[0] << 32) | ((unsigned long)x[1] << 16) | x[2];
	unsigned long want = ((unsigned long)a << 32) | ((unsigned long)b << 16) | c;
	return have >= want;
}

/* FORMAT_DESCRIPTION: it decides its own checksum, so it is given the whole event. */
static int decode_fde(struct th_binlog_decoder *dec, struct th_binlog_event *ev, const uint8_t *p, size_t len)
{
	const size_t fixed = 2 + 50 + 4 + 1;
	if (ev->in_payload)
		return fail(dec, ev->pos, TH_EBINLOG, "FORMAT_DESCRIPTION inside a TRANSACTION_PAYLOAD");
	if (len < TH_BINLOG_HEADER_LEN + fixed)
		return fail(dec, ev->pos, TH_EBINLOG, "FORMAT_DESCRIPTION too short (%zu bytes)", len);
	const uint8_t *b = p + TH_BINLOG_HEADER_LEN;
	size_t n = len - TH_BINLOG_HEADER_LEN;
	struct th_ev_format_description f;
	memset(&f, 0, sizeof f);
	f.binlog_version = (uint16_t)th_le(b, 2);
	memcpy(f.server_version, b + 2, 50);
	f.server_version[50] = 0;
	f.create_timestamp = (uint32_t)th_le(b + 52, 4);
	f.header_len = b[56];
	f.flavor = strstr(f.server_version, "MariaDB") ? TH_BINLOG_FLAVOR_MARIADB : TH_BINLOG_FLAVOR_MYSQL;
	if (f.binlog_version != 4)
		return fail(dec, ev->pos, TH_EUNSUPPORTED, "FORMAT_DESCRIPTION of binlog version %u",
			    f.binlog_version);
	/* Longer headers (Google's 5.1 patches) carry extra fields we skip; the
	   format event itself is always written with the 19-byte header. */
	if (f.header_len < TH_BINLOG_HEADER_LEN)
		return fail(dec, ev->pos, TH_EBINLOG, "common header length %u (< 19)", f.header_len);
	/* Servers from MySQL 5.6.1 / MariaDB 5.3 end it with the checksum algorithm
	   and a 4-byte checksum, present even when the algorithm is OFF. */
	bool aware = f.flavor == TH_BINLOG_FLAVOR_MARIADB ? version_at_least(f.server_version, 5, 3, 0)
							  : version_at_least(f.server_version, 5, 6, 1);
	size_t npost = n - fixed;
	if (aware) {
		if (npost < 5)
			return fail(dec, ev->pos, TH_EBINLOG, "FORMAT_DESCRIPTION has no room for its checksum");
		npost -= 5;
		f.checksum_alg = b[n - 5];
		if (f.checksum_alg == 1) {
			/* The server sets the in-use flag after checksumming and clears it
			   at close: the checksum is over the event with the flag clear. */
			uint8_t flags[2] = { (uint8_t)(p[17] & ~TH_BINLOG_F_IN_USE), p[18] };
			uint32_t want = (uint32_t)th_le(p + len - 4, 4);
			uint32_t got = th_crc32(0, p, 17);
			got = th_crc32(got, flags, 2);
			got = th_crc32(got, p + 19, len - 4 - 19);
			if (want != got)
				return fail(dec, ev->pos, TH_ECHECKSUM,
					    "FORMAT_DESCRIPTION CRC32 is %08x, computed %08x", want, (uint32_t)got);
		} else if (f.checksum_alg != 0) {
			return fail(dec, ev->pos, TH_EUNSUPPORTED, "checksum algorithm %u", f.checksum_alg);
		}
	}
	if (npost > 255)
		return fail(dec, ev->pos, TH_EBINLOG, "FORMAT_DESCRIPTION lists %zu post-header lengths", npost);
	/* the table must at least describe itself consistently */
	if (npost < TH_BINLOG_FORMAT_DESCRIPTION || b[fixed + TH_BINLOG_FORMAT_DESCRIPTION - 1] != fixed + npost)
		return fail(dec, ev->pos, TH_EBINLOG,
			    "FORMAT_DESCRIPTION post-header table is inconsistent with its length");
	dec->have_format = true;
	dec->fmt = f;
	dec->header_len = f.header_len;
	memset(dec->post_len, 0, sizeof dec->post_len);
	memcpy(dec->post_len, b + fixed, npost);
	dec->n_post = (unsigned)npost;
	dec->checksum = f.checksum_alg == 1 ? TH_BINLOG_CHECKSUM_CRC32 : TH_BINLOG_CHECKSUM_OFF;
	ev->kind = TH_EVK_FORMAT_DESCRIPTION;
	ev->body = b;
	ev->body_len = n - (aware ? 5 : 0);
	ev->u.fde = f;
	return 0;
}

/* START_V3 (MySQL 4.x, binlog versions 2 and 3): fixed post-header lengths. */
static int decode_start_v3(struct th_binlog_decoder *dec, struct th_binlog_event *ev)
{
	static const uint8_t v3_post[13] = { 56, 11, 0, 8, 0, 18, 0, 4, 4, 4, 4, 18, 0 };
	if (ev->in_payload || ev->body_len < 56)
		return fail(dec, ev->pos, TH_EBINLOG, "malformed START_V3");
	struct th_ev_format_description f;
	memset(&f, 0, sizeof f);
	f.binlog_version = (uint16_t)th_le(ev->body, 2);
	memcpy(f.server_version, ev->body + 2, 50);
	f.create_timestamp = (uint32_t)th_le(ev->body + 52, 4);
	f.header_len = TH_BINLOG_HEADER_LEN;
	f.flavor = TH_BINLOG_FLAVOR_MYSQL;
	if (f.binlog_version != 2 && f.binlog_version != 3)
		return fail(dec, ev->pos, TH_EUNSUPPORTED, "binlog version %u (MySQL 3.23) is not supported",
			    f.binlog_version);
	dec->have_format = true;
	dec->fmt = f;
	dec->header_len = TH_BINLOG_HEADER_LEN;
	memset(dec->post_len, 0, sizeof dec->post_len);
	memcpy(dec->post_len, v3_post, sizeof v3_post);
	dec->n_post = sizeof v3_post;
	dec->checksum = TH_BINLOG_CHECKSUM_OFF;
	ev->kind = TH_EVK_START_V3;
	ev->u.fde = f;
	return 0;
}

static int decode_query(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	struct th_ev_query *q = &ev->u.query;
	if (ph < 11)
		return fail(dec, ev->pos, TH_EBINLOG, "QUERY post-header length %u (want >= 11)", ph);
	struct rd r = rd_make(ev->body, ev->body_len);
	q->thread_id = rd_u32(&r);
	q->exec_time = rd_u32(&r);
	uint8_t db_len = rd_u8(&r);
	q->error_code = rd_u16(&r);
	q->status_vars_len = ph >= 13 ? rd_u16(&r) : 0;
	r = rd_make(ev->body + ph, ev->body_len - ph);
	q->status_vars = rd_take(&r, q->status_vars_len);
	q->db = (const char *)rd_take(&r, db_len);
	q->db_len = db_len;
	if (!rd_take(&r, 1) || r.bad)
		return fail(dec, ev->pos, TH_EBINLOG, "QUERY: status variables (%u bytes) and db name (%u) "
			    "overrun the event", q->status_vars_len, db_len);
	if (ev->type == TH_BINLOG_MARIA_QUERY_COMPRESSED) {
		const uint8_t *t;
		size_t tl;
		int rc = maria_inflate(dec, ev->pos, r.p, rd_left(&r), &t, &tl);
		if (rc)
			return rc;
		q->query = (const char *)t;
		q->query_len = tl;
		q->compressed = true;
	} else {
		q->query = (const char *)r.p;
		q->query_len = rd_left(&r);
	}
	ev->kind = TH_EVK_QUERY;
	return 0;
}

static int decode_gtid_mysql(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	struct th_ev_gtid *g = &ev->u.gtid;
	if (ph < 25)
		return fail(dec, ev->pos, TH_EBINLOG, "GTID post-header length %u (want >= 25)", ph);
	struct rd r = rd_make(ev->body, ph);
	g->gtid_flags = rd_u8(&r);
	memcpy(g->uuid, rd_take(&r, 16), 16);
	g->gno = th_sext(rd_u64(&r), 64);
	if (ph >= 42) {
		uint8_t lt = rd_u8(&r);
		if (lt != 2)
			return fail(dec, ev->pos, TH_EBINLOG, "GTID: logical clock type %u (want 2)", lt);
		g->has_logical_clock = true;
		g->last_committed = th_sext(rd_u64(&r), 64);
		g->sequence_number = th_sext(rd_u64(&r), 64);
	}
	if (ev->type == TH_BINLOG_GTID && (g->gno < 1 || g->gno == INT64_MAX))
		return fail(dec, ev->pos, TH_EBINLOG, "GTID with sequence number %lld out of range",
			    (long long)g->gno);
	/* Fields added by later servers follow, each present only if there is room. */
	r = rd_make(ev->body + ph, ev->body_len - ph);
	if (rd_left(&r) >= 7) {
		uint64_t t = rd_uint(&r, 7);
		g->has_commit_ts = true;
		g->immediate_commit_us = t & ~(1ull << 55);
		g->original_commit_us = g->immediate_commit_us;
		if (t & (1ull << 55)) {
			g->original_commit_us = rd_uint(&r, 7);
			if (r.bad)
				return fail(dec, ev->pos, TH_EBINLOG, "GTID: original commit timestamp cut short");
		}
	}
	if (rd_left(&r)) {
		g->transaction_length = rd_packed(&r);
		g->has_transaction_length = !r.bad;
		if (r.bad)
			return fail(dec, ev->pos, TH_EBINLOG, "GTID: malformed transaction length");
	}
	if (rd_left(&r) >= 4) {
		uint32_t v = rd_u32(&r);
		g->has_server_version = true;
		g->immediate_server_version = v & 0x7fffffffu;
		g->original_server_version = g->immediate_server_version;
		if (v & 0x80000000u) {
			g->original_server_version = rd_u32(&r);
			if (r.bad)
				return fail(dec, ev->pos, TH_EBINLOG, "GTID: original server version cut short");
		}
	}
	ev->kind = ev->type == TH_BINLOG_GTID ? TH_EVK_GTID : TH_EVK_ANONYMOUS_GTID;
	return 0;
}

static int decode_gtid_maria(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	struct th_ev_gtid *g = &ev->u.gtid;
	(void)ph; /* MariaDB reads its fields from the body start whatever the table says */
	struct rd r = rd_make(ev->body, ev->body_len);
	g->mariadb = true;
	g->server_id = ev->server_id;
	g->seq_no = rd_u64(&r);
	g->domain_id = rd_u32(&r);
	g->flags2 = rd_u8(&r);
	if (r.bad || ev->body_len < 19)
		return fail(dec, ev->pos, TH_EBINLOG, "MariaDB GTID shorter than 19 bytes");
	if (g->flags2 & TH_MARIA_GTID_COMMIT_ID) {
		g->commit_id = rd_u64(&r);
		if (r.bad)
			return fail(dec, ev->pos, TH_EBINLOG, "MariaDB GTID: commit id cut short");
	}
	if (g->flags2 & (TH_MARIA_GTID_PREPARED_XA | TH_MARIA_GTID_COMPLETED_XA)) {
		g->xid.format_id = (int32_t)th_sext(rd_u32(&r), 32);
		g->xid.gtrid_len = rd_u8(&r);
		g->xid.bqual_len = rd_u8(&r);
		if (r.bad || g->xid.gtrid_len > 64 || g->xid.bqual_len > 64)
			return fail(dec, ev->pos, TH_EBINLOG, "MariaDB GTID: XA id lengths %u+%u (max 64 each)",
				    g->xid.gtrid_len, g->xid.bqual_len);
		g->xid.data = rd_take(&r, (size_t)g->xid.gtrid_len + g->xid.bqual_len);
		if (r.bad)
			return fail(dec, ev->pos, TH_EBINLOG, "MariaDB GTID: XA id cut short");
	}
	if (rd_left(&r))
		g->flags_extra = rd_u8(&r); /* later fields (engines, ALTER seq) not kept */
	ev->kind = TH_EVK_GTID;
	return 0;
}

static int decode_prev_gtids(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	struct rd r = rd_make(ev->body + ph, ev->body_len - ph);
	uint64_t n = rd_u64(&r);
	if (r.bad)
		return fail(dec, ev->pos, TH_EBINLOG, "PREVIOUS_GTIDS cut short");
	if (n >> 56)
		return fail(dec, ev->pos, TH_EUNSUPPORTED, "PREVIOUS_GTIDS in the tagged-GTID format");
	ev->u.prev_gtids.n_sids = n;
	ev->u.prev_gtids.data = r.p;
	ev->u.prev_gtids.len = rd_left(&r);
	for (uint64_t i = 0; i < n && !r.bad; i++) {
		rd_take(&r, 16);
		uint64_t k = rd_u64(&r);
		if (k > rd_left(&r) / 16)
			r.bad = true;
		for (uint64_t j = 0; j < k && !r.bad; j++) {
			int64_t a = th_sext(rd_u64(&r), 64), b = th_sext(rd_u64(&r), 64);
			if (a < 1 || b <= a)
				r.bad = true;
		}
	}
	if (r.bad || rd_left(&r))
		return fail(dec, ev->pos, TH_EBINLOG, "PREVIOUS_GTIDS: malformed GTID set");
	ev->kind = TH_EVK_PREVIOUS_GTIDS;
	return 0;
}

static bool is_update(uint8_t t)
{
	return t == TH_BINLOG_UPDATE_ROWS_V1 || t == TH_BINLOG_UPDATE_ROWS ||
	       t == TH_BINLOG_PARTIAL_UPDATE_ROWS || t == TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED_V1 ||
	       t == TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED;
}

static int decode_rows(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	struct th_ev_rows *rw = &ev->u.rows;
	uint8_t t = ev->type;
	bool v2 = (t >= TH_BINLOG_WRITE_ROWS && t <= TH_BINLOG_DELETE_ROWS) ||
		  t == TH_BINLOG_PARTIAL_UPDATE_ROWS || t >= TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED;
	rw->compressed = t >= TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED_V1;
	rw->partial = t == TH_BINLOG_PARTIAL_UPDATE_ROWS;
	rw->version = v2 ? 2 : 1;
	switch (t) {
	case TH_BINLOG_WRITE_ROWS_V1: case TH_BINLOG_WRITE_ROWS:
	case TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED_V1: case TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED:
		ev->kind = TH_EVK_WRITE_ROWS;
		break;
	case TH_BINLOG_DELETE_ROWS_V1: case TH_BINLOG_DELETE_ROWS:
	case TH_BINLOG_MARIA_DELETE_ROWS_COMPRESSED_V1: case TH_BINLOG_MARIA_DELETE_ROWS_COMPRESSED:
		ev->kind = TH_EVK_DELETE_ROWS;
		break;
	case TH_BINLOG_PARTIAL_UPDATE_ROWS:
		ev->kind = TH_EVK_PARTIAL_UPDATE_ROWS;
		break;
	default:
		ev->kind = TH_EVK_UPDATE_ROWS;
		break;
	}
	if (v2 ? ph != 10 : (ph != 6 && ph != 8))
		return fail(dec, ev->pos, TH_EBINLOG, "%s post-header length %u (want %s)",
			    type_name_for_msg(t), ph, v2 ? "10" : "6 or 8");
	struct rd r = rd_make(ev->body, ev->body_len);
	rw->table_id = rd_uint(&r, ph == 6 ? 4 : 6);
	rw->flags = rd_u16(&r);
	if (v2) {
		/* the variable header's length counts its own two bytes */
		uint16_t vl = rd_u16(&r);
		if (vl < 2)
			return fail(dec, ev->pos, TH_EBINLOG, "rows event extra-data length %u (< 2)", vl);
		rw->extra_len = (uint16_t)(vl - 2);
		rw->extra = rd_take(&r, rw->extra_len);
		if (!rw->extra_len)
			rw->extra = NULL;
	}
	uint64_t ncols = rd_packed(&r);
	if (r.bad || ncols > (uint64_t)rd_left(&r) * 8)
		return fail(dec, ev->pos, TH_EBINLOG, "rows event: malformed header (extra data or column count)");
	rw->ncols = (uint32_t)ncols;
	rw->present = rd_take(&r, (size_t)(ncols + 7) / 8);
	if (is_update(t))
		rw->present_after = rd_take(&r, (size_t)(ncols + 7) / 8);
	if (r.bad)
		return fail(dec, ev->pos, TH_EBINLOG, "rows event: column bitmaps overrun the event");
	if (rw->compressed && rd_left(&r)) {
		int rc = maria_inflate(dec, ev->pos, r.p, rd_left(&r), &rw->rows, &rw->rows_len);
		if (rc)
			return rc;
	} else {
		rw->rows = r.p;
		rw->rows_len = rd_left(&r);
	}
	struct tm_entry *e = tm_find(dec, rw->table_id);
	if (!e || !e->raw_len) {
		/* the dummy end-of-statement event some servers write has no table and no rows */
		if (rw->rows_len == 0) {
			rw->tm = NULL;
			goto done;
		}
		return fail(dec, ev->pos, TH_EBINLOG, "%s for table_id %llu with no TABLE_MAP before it",
			    type_name_for_msg(t), (unsigned long long)rw->table_id);
	}
	if (e->tm.ncols != ncols)
		return fail(dec, ev->pos, TH_EBINLOG, "%s for %s.%s has %llu columns, its TABLE_MAP %u",
			    type_name_for_msg(t), e->tm.schema, e->tm.table, (unsigned long long)ncols,
			    e->tm.ncols);
	rw->tm = &e->tm;
done:
	if (rw->flags & TH_ROWS_F_STMT_END)
		dec->stmt_gen++;
	return 0;
}

static int decode_payload(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	struct th_ev_payload *pl = &ev->u.payload;
	if (ev->in_payload)
		return fail(dec, ev->pos, TH_EBINLOG, "TRANSACTION_PAYLOAD inside a TRANSACTION_PAYLOAD");
	struct rd r = rd_make(ev->body + ph, ev->body_len - ph);
	bool have_size = false, have_usize = false, have_ctype = false;
	for (;;) {
		uint64_t type = rd_packed(&r);
		if (r.bad)
			return fail(dec, ev->pos, TH_EBINLOG, "TRANSACTION_PAYLOAD: header without end mark");
		if (type == 0)
			break;
		uint64_t flen = rd_packed(&r);
		const uint8_t *v = flen <= rd_left(&r) ? rd_take(&r, (size_t)flen) : NULL;
		if (!v)
			return fail(dec, ev->pos, TH_EBINLOG, "TRANSACTION_PAYLOAD: header field overruns the event");
		struct rd f = rd_make(v, (size_t)flen);
		uint64_t val = (type >= 1 && type <= 3) ? rd_packed(&f) : 0;
		if (f.bad)
			return fail(dec, ev->pos, TH_EBINLOG, "TRANSACTION_PAYLOAD: malformed header field %llu",
				    (unsigned long long)type);
		if (type == 1) { pl->compressed_size = val; have_size = true; }
		else if (type == 2) { pl->compression = (uint8_t)val; have_ctype = val <= 255; }
		else if (type == 3) { pl->uncompressed_size = val; have_usize = true; }
	}
	pl->data = r.p;
	pl->len = rd_left(&r);
	ev->kind = TH_EVK_TRANSACTION_PAYLOAD;
	if (!have_ctype || (pl->compression != 0 && pl->compression != 255))
		return fail(dec, ev->pos, TH_EUNSUPPORTED, "TRANSACTION_PAYLOAD compression type %u",
			    pl->compression);
	if (have_size && pl->compressed_size != pl->len)
		return fail(dec, ev->pos, TH_EBINLOG, "TRANSACTION_PAYLOAD says %llu bytes, carries %zu",
			    (unsigned long long)pl->compressed_size, pl->len);
	uint64_t limit = have_usize ? pl->uncompressed_size : dec->max_inflated;
	if (limit > dec->max_inflated)
		return fail(dec, ev->pos, TH_ETOOBIG, "TRANSACTION_PAYLOAD of %llu bytes uncompressed, over the limit",
			    (unsigned long long)limit);

	size_t done = 0;
	if (pl->compression == 255) {
		if (th_grow((void **)&dec->pl, &dec->pl_cap, pl->len ? pl->len : 1, 1))
			return fail(dec, ev->pos, ENOMEM, "out of memory for TRANSACTION_PAYLOAD");
		memcpy(dec->pl, pl->data, pl->len);
		done = pl->len;
	} else {
		if (!dec->zd && !(dec->zd = ZSTD_createDCtx()))
			return fail(dec, ev->pos, ENOMEM, "zstd: cannot create a context");
		ZSTD_DCtx_reset(dec->zd, ZSTD_reset_session_only);
		size_t first = limit < 65536 + 8 * (uint64_t)pl->len ? (size_t)limit : 65536 + 8 * pl->len;
		if (th_grow((void **)&dec->pl, &dec->pl_cap, first ? first : 1, 1))
			return fail(dec, ev->pos, ENOMEM, "out of memory for TRANSACTION_PAYLOAD");
		ZSTD_inBuffer in = { pl->data, pl->len, 0 };
		size_t zr = 1;
		while (in.pos < in.size || zr != 0) {
			size_t cap = dec->pl_cap < limit ? dec->pl_cap : (size_t)limit;
			if (done == cap) {
				if (cap == limit)
					return fail(dec, ev->pos, TH_EBINLOG,
						    "TRANSACTION_PAYLOAD inflates past its stated %llu bytes",
						    (unsigned long long)limit);
				size_t want = dec->pl_cap * 2 < limit ? dec->pl_cap * 2 : (size_t)limit;
				if (th_grow((void **)&dec->pl, &dec->pl_cap, want, 1))
					return fail(dec, ev->pos, ENOMEM, "out of memory for TRANSACTION_PAYLOAD");
				cap = dec->pl_cap < limit ? dec->pl_cap : (size_t)limit;
			}
			ZSTD_outBuffer out = { dec->pl, cap, done };
			size_t in_before = in.pos;
			zr = ZSTD_decompressStream(dec->zd, &out, &in);
			if (ZSTD_isError(zr))
				return fail(dec, ev->pos, TH_EBINLOG, "TRANSACTION_PAYLOAD: zstd says %s",
					    ZSTD_getErrorName(zr));
			bool progress = out.pos != done || in.pos != in_before;
			done = out.pos;
			if (!progress && in.pos == in.size && zr != 0)
				return fail(dec, ev->pos, TH_EBINLOG, "TRANSACTION_PAYLOAD: zstd frame is truncated");
		}
	}
	if (have_usize && done != pl->uncompressed_size)
		return fail(dec, ev->pos, TH_EBINLOG, "TRANSACTION_PAYLOAD inflates to %zu bytes, says %llu",
			    done, (unsigned long long)pl->uncompressed_size);
	dec->pl_len = done;
	dec->pl_off = 0;
	dec->pl_pos = ev->pos;
	dec->pl_active = true;
	return 0;
}

static int decode_heartbeat_v2(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	struct th_ev_heartbeat *hb = &ev->u.heartbeat;
	struct rd r = rd_make(ev->body + ph, ev->body_len - ph);
	hb->version = 2;
	while (rd_left(&r)) {
		uint64_t type = rd_packed(&r);
		if (r.bad)
			break;
		if (type == 0)
			break;
		uint64_t flen = rd_packed(&r);
		const uint8_t *v = flen <= rd_left(&r) ? rd_take(&r, (size_t)flen) : NULL;
		if (!v)
			return fail(dec, ev->pos, TH_EBINLOG, "HEARTBEAT_V2: field overruns the event");
		if (type == 1) {
			hb->log_name = (const char *)v;
			hb->log_name_len = (uint32_t)flen;
		} else if (type == 2) {
			struct rd f = rd_make(v, (size_t)flen);
			hb->log_pos = rd_packed(&f);
			if (f.bad || rd_left(&f))
				return fail(dec, ev->pos, TH_EBINLOG, "HEARTBEAT_V2: malformed position");
		}
	}
	if (r.bad)
		return fail(dec, ev->pos, TH_EBINLOG, "HEARTBEAT_V2: malformed field header");
	return 0;
}

static int decode_xa_prepare(struct th_binlog_decoder *dec, struct th_binlog_event *ev, unsigned ph)
{
	struct th_ev_xa_prepare *x = &ev->u.xa_prepare;
	struct rd r = rd_make(ev->body + ph, ev->body_len - ph);
	x->one_phase = rd_u8(&r) != 0;
	x->xid.format_id = (int32_t)th_sext(rd_u32(&r), 32);
	uint32_t g = rd_u32(&r), b = rd_u32(&r);
	if (r.bad || g > 64 || b > 64)
		return fail(dec, ev->pos, TH_EBINLOG, "XA_PREPARE: malformed XA id");
	x->xid.gtrid_len = (uint8_t)g;
	x->xid.bqual_len = (uint8_t)b;
	x->xid.data = rd_take(&r, g + b);
	if (r.bad)
		return fail(dec, ev->pos, TH_EBINLOG, "XA_PREPARE: XA id cut short");
	return 0;
}

/* Known types that are framed and returned skipped. */
static enum th_binlog_kind skipped_kind(uint8_t t)
{
	switch (t) {
	case TH_BINLOG_USER_VAR: return TH_EVK_USER_VAR;
	case TH_BINLOG_IGNORABLE: return TH_EVK_IGNORABLE;
	case TH_BINLOG_TRANSACTION_CONTEXT: return TH_EVK_TRANSACTION_CONTEXT;
	case TH_BINLOG_VIEW_CHANGE: return TH_EVK_VIEW_CHANGE;
	case TH_BINLOG_LOAD: case TH_BINLOG_SLAVE: case TH_BINLOG_CREATE_FILE:
	case TH_BINLOG_APPEND_BLOCK: case TH_BINLOG_EXEC_LOAD: case TH_BINLOG_DELETE_FILE:
	case TH_BINLOG_NEW_LOAD: case TH_BINLOG_BEGIN_LOAD_QUERY: case TH_BINLOG_EXECUTE_LOAD_QUERY:
		return TH_EVK_LOAD;
	default: return TH_EVK_UNKNOWN;
	}
}

static int decode_body(struct th_binlog_decoder *dec, struct th_binlog_event *ev)
{
	unsigned ph = 0;
	int rc;
	const uint8_t *b = ev->body;
	size_t n = ev->body_len;
	uint8_t t = ev->type;

	/* ROTATE and HEARTBEAT come before the format is known in a replication stream */
	if (t == TH_BINLOG_ROTATE || t == TH_BINLOG_HEARTBEAT) {
		ph = t == TH_BINLOG_ROTATE ? 8 : 0;
		if (dec->have_format && t <= dec->n_post && dec->post_len[t - 1] != ph)
			return fail(dec, ev->pos, TH_EBINLOG, "%s post-header length %u (want %u)",
				    type_name_for_msg(t), dec->post_len[t - 1], ph);
		if (n < ph)
			return fail(dec, ev->pos, TH_EBINLOG, "ROTATE shorter than its position");
		if (ev->in_payload)
			return fail(dec, ev->pos, TH_EBINLOG, "%s inside a TRANSACTION_PAYLOAD",
				    type_name_for_msg(t));
		if (t == TH_BINLOG_ROTATE) {
			ev->kind = TH_EVK_ROTATE;
			ev->u.rotate.position = th_le(b, 8);
			ev->u.rotate.name = (const char *)b + 8;
			ev->u.rotate.name_len = (uint32_t)(n - 8);
			ev->u.rotate.fake = ev->log_pos == 0 || (ev->flags & TH_BINLOG_F_ARTIFICIAL);
		} else {
			ev->kind = TH_EVK_HEARTBEAT;
			ev->u.heartbeat.version = 1;
			ev->u.heartbeat.log_name = (const char *)b;
			ev->u.heartbeat.log_name_len = (uint32_t)n;
			ev->u.heartbeat.log_pos = ev->log_pos;
		}
		return 0;
	}
	if (t == TH_BINLOG_START_V3)
		return decode_start_v3(dec, ev);
	if (t == TH_BINLOG_MARIA_START_ENCRYPTION) {
		ev->kind = TH_EVK_START_ENCRYPTION;
		return fail(dec, ev->pos, TH_EUNSUPPORTED,
			    "START_ENCRYPTION: the rest of this binlog is encrypted, which is not supported");
	}
	if (t == TH_BINLOG_GTID_TAGGED) {
		ev->kind = TH_EVK_GTID_TAGGED;
		return fail(dec, ev->pos, TH_EUNSUPPORTED, "GTID_TAGGED (MySQL 8.4 tagged GTIDs) is not supported");
	}
	if (t >= TH_BINLOG_PRE_GA_WRITE_ROWS && t <= TH_BINLOG_PRE_GA_DELETE_ROWS)
		return fail(dec, ev->pos, TH_EUNSUPPORTED, "pre-GA row event (MySQL 5.1.0-5.1.15) type %u", t);

	bool known = (t >= 2 && t <= 41) || (t >= 160 && t <= 171);
	if (!known) {
		if (ev->flags & TH_BINLOG_F_IGNORABLE) {
			ev->kind = TH_EVK_UNKNOWN;
			ev->skipped = true;
			return 0;
		}
		return fail(dec, ev->pos, TH_EUNSUPPORTED, "unknown event type %u (not marked ignorable)", t);
	}
	switch (t) {
	case TH_BINLOG_TRANSACTION_PAYLOAD:
	case TH_BINLOG_MARIA_GTID:
	case TH_BINLOG_MARIA_GTID_LIST:
	case TH_BINLOG_MARIA_BINLOG_CHECKPOINT:
		/* Their writers list a post-header length (MySQL says 40 for the
		   payload) but put their fields at the start of the body, where
		   their readers look too. */
		if (!dec->have_format)
			return fail(dec, ev->pos, TH_EBINLOG, "%s event before any FORMAT_DESCRIPTION",
				    type_name_for_msg(t));
		break;
	default:
		if ((rc = post_len(dec, ev, &ph)))
			return rc;
	}
	struct rd r = rd_make(b + ph, n - ph);
	switch (t) {
	case TH_BINLOG_QUERY:
	case TH_BINLOG_MARIA_QUERY_COMPRESSED:
		return decode_query(dec, ev, ph);
	case TH_BINLOG_STOP:
		ev->kind = TH_EVK_STOP;
		return 0;
	case TH_BINLOG_XID:
		ev->kind = TH_EVK_XID;
		ev->u.xid.xid = rd_u64(&r);
		break;
	case TH_BINLOG_INTVAR:
		ev->kind = TH_EVK_INTVAR;
		ev->u.intvar.type = rd_u8(&r);
		ev->u.intvar.value = rd_u64(&r);
		break;
	case TH_BINLOG_RAND:
		ev->kind = TH_EVK_RAND;
		ev->u.rand.seed1 = rd_u64(&r);
		ev->u.rand.seed2 = rd_u64(&r);
		break;
	case TH_BINLOG_TABLE_MAP:
		ev->kind = TH_EVK_TABLE_MAP;
		return decode_table_map(dec, ev, ph);
	case TH_BINLOG_WRITE_ROWS_V1: case TH_BINLOG_UPDATE_ROWS_V1: case TH_BINLOG_DELETE_ROWS_V1:
	case TH_BINLOG_WRITE_ROWS: case TH_BINLOG_UPDATE_ROWS: case TH_BINLOG_DELETE_ROWS:
	case TH_BINLOG_PARTIAL_UPDATE_ROWS:
	case TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED_V1: case TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED_V1:
	case TH_BINLOG_MARIA_DELETE_ROWS_COMPRESSED_V1: case TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED:
	case TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED: case TH_BINLOG_MARIA_DELETE_ROWS_COMPRESSED:
		return decode_rows(dec, ev, ph);
	case TH_BINLOG_INCIDENT: {
		ev->kind = TH_EVK_INCIDENT;
		if (ph < 2)
			return fail(dec, ev->pos, TH_EBINLOG, "INCIDENT post-header length %u (want 2)", ph);
		ev->u.text.incident = (uint16_t)th_le(b, 2);
		uint8_t ml = rd_u8(&r);
		ev->u.text.text = (const char *)rd_take(&r, ml);
		ev->u.text.len = ml;
		break;
	}
	case TH_BINLOG_ROWS_QUERY:
		ev->kind = TH_EVK_ROWS_QUERY;
		rd_u8(&r); /* a length truncated to 255: the text runs to the end */
		ev->u.text.text = (const char *)r.p;
		ev->u.text.len = rd_left(&r);
		break;
	case TH_BINLOG_GTID:
	case TH_BINLOG_ANONYMOUS_GTID:
		return decode_gtid_mysql(dec, ev, ph);
	case TH_BINLOG_PREVIOUS_GTIDS:
		return decode_prev_gtids(dec, ev, ph);
	case TH_BINLOG_XA_PREPARE:
		ev->kind = TH_EVK_XA_PREPARE;
		return decode_xa_prepare(dec, ev, ph);
	case TH_BINLOG_TRANSACTION_PAYLOAD:
		return decode_payload(dec, ev, ph);
	case TH_BINLOG_HEARTBEAT_V2:
		ev->kind = TH_EVK_HEARTBEAT;
		return decode_heartbeat_v2(dec, ev, ph);
	case TH_BINLOG_MARIA_ANNOTATE_ROWS:
		ev->kind = TH_EVK_ANNOTATE_ROWS;
		ev->u.text.text = (const char *)r.p;
		ev->u.text.len = rd_left(&r);
		break;
	case TH_BINLOG_MARIA_BINLOG_CHECKPOINT: {
		ev->kind = TH_EVK_BINLOG_CHECKPOINT;
		uint32_t l = rd_u32(&r);
		ev->u.text.text = (const char *)rd_take(&r, l);
		ev->u.text.len = l;
		break;
	}
	case TH_BINLOG_MARIA_GTID:
		return decode_gtid_maria(dec, ev, ph);
	case TH_BINLOG_MARIA_GTID_LIST: {
		ev->kind = TH_EVK_GTID_LIST;
		uint32_t w = rd_u32(&r);
		ev->u.gtid_list.count = w & 0x0fffffffu;
		ev->u.gtid_list.flags = (uint8_t)(w >> 28);
		ev->u.gtid_list.data = rd_take(&r, (size_t)ev->u.gtid_list.count * 16);
		break;
	}
	default:
		ev->kind = skipped_kind(t);
		ev->skipped = true;
		if (ev->kind == TH_EVK_UNKNOWN) /* a MariaDB/MySQL number we do not know yet */
			return (ev->flags & TH_BINLOG_F_IGNORABLE) ? 0 :
				fail(dec, ev->pos, TH_EUNSUPPORTED, "unknown event type %u (not marked ignorable)", t);
		return 0;
	}
	if (r.bad)
		return fail(dec, ev->pos, TH_EBINLOG, "%s event cut short (%zu-byte body)",
			    type_name_for_msg(t), n);
	return 0;
}

/* Header, size, checksum; then the body. has_crc: the event carries a checksum. */
static int decode_framed(struct th_binlog_decoder *dec, const uint8_t *p, size_t len, uint64_t pos,
			 struct th_binlog_event *ev, bool in_payload)
{
	memset(ev, 0, sizeof *ev);
	ev->pos = pos;
	ev->in_payload = in_payload;
	ev->data = p;
	if (len < TH_BINLOG_HEADER_LEN)
		return fail(dec, pos, TH_ETRUNCATED, "%zu bytes, less than an event header", len);
	ev->timestamp = (uint32_t)th_le(p, 4);
	ev->type = p[4];
	ev->server_id = (uint32_t)th_le(p + 5, 4);
	ev->size = (uint32_t)th_le(p + 9, 4);
	ev->log_pos = (uint32_t)th_le(p + 13, 4);
	ev->flags = (uint16_t)th_le(p + 17, 2);
	if (ev->size > len)
		return fail(dec, pos, TH_ETRUNCATED, "%s event of %u bytes, only %zu there",
			    type_name_for_msg(ev->type), ev->size, len);
	if (ev->size != len || ev->size < TH_BINLOG_HEADER_LEN)
		return fail(dec, pos, TH_EBINLOG, "%s event size %u, but %zu bytes given",
			    type_name_for_msg(ev->type), ev->size, len);
	if (ev->type == TH_BINLOG_FORMAT_DESCRIPTION)
		return decode_fde(dec, ev, p, len);
	size_t hl = dec->have_format ? dec->header_len : TH_BINLOG_HEADER_LEN;
	if (len < hl)
		return fail(dec, pos, TH_EBINLOG, "%s event of %zu bytes, shorter than the %zu-byte header",
			    type_name_for_msg(ev->type), len, hl);
	size_t n = len - hl;
	if (!in_payload && dec->checksum == TH_BINLOG_CHECKSUM_CRC32) {
		if (n < 4)
			return fail(dec, pos, TH_EBINLOG, "%s event too short for its checksum",
				    type_name_for_msg(ev->type));
		n -= 4;
		uint32_t want = (uint32_t)th_le(p + len - 4, 4);
		uint32_t got = th_crc32(0, p, len - 4);
		if (want != got)
			return fail(dec, pos, TH_ECHECKSUM, "%s event CRC32 is %08x, computed %08x",
				    type_name_for_msg(ev->type), want, got);
	}
	ev->body = p + hl;
	ev->body_len = n;
	return decode_body(dec, ev);
}

int th_binlog_decode(struct th_binlog_decoder *dec, const uint8_t *p, size_t len, uint64_t pos,
		     struct th_binlog_event *ev)
{
	dec->err[0] = 0;
	dec->pl_active = false;
	if (!p && len)
		return -EINVAL;
	return decode_framed(dec, p, len, pos, ev, false);
}

int th_binlog_payload_next(struct th_binlog_decoder *dec, struct th_binlog_event *ev)
{
	if (!dec->pl_active)
		return 0;
	size_t left = dec->pl_len - dec->pl_off;
	if (!left) {
		dec->pl_active = false;
		return 0;
	}
	const uint8_t *p = dec->pl + dec->pl_off;
	uint32_t off = (uint32_t)dec->pl_off;
	dec->err[0] = 0;
	int rc;
	if (left < TH_BINLOG_HEADER_LEN) {
		rc = fail(dec, dec->pl_pos, TH_EBINLOG, "TRANSACTION_PAYLOAD: %zu stray bytes at offset %u",
			  left, off);
	} else {
		size_t size = (size_t)th_le(p + 9, 4);
		if (size > left)
			rc = fail(dec, dec->pl_pos, TH_EBINLOG,
				  "TRANSACTION_PAYLOAD: event at offset %u of %zu bytes overruns the payload",
				  off, size);
		else
			rc = decode_framed(dec, p, size, dec->pl_pos, ev, true);
		if (!rc) {
			dec->pl_off += size;
			ev->payload_offset = off;
			return 1;
		}
		/* name the offset: the position alone points at the whole payload */
		size_t l = strlen(dec->err);
		snprintf(dec->err + l, sizeof dec->err - l, " (inside TRANSACTION_PAYLOAD, offset %u)", off);
	}
	dec->pl_active = false;
	return rc;
}

/* ---- rows -------------------------------------------------------------- */

void th_binlog_rows_begin(struct th_binlog_row_iter *it, const struct th_binlog_event *ev)
{
	memset(it, 0, sizeof *it);
	it->ev = ev;
}

static int row_image(struct th_binlog_row_iter *it, const uint8_t *present, struct th_value *out)
{
	const struct th_ev_rows *rw = &it->ev->u.rows;
	size_t used = 0;
	int rc = th_row_decode_wanted(rw->tm, present, it->wanted, rw->rows + it->off, rw->rows_len - it->off,
				      out, &used);
	if (rc)
		return rc;
	if (used == 0 || used > rw->rows_len - it->off)
		return -TH_EBINLOG;
	it->off += used;
	return 0;
}

int th_binlog_rows_next(struct th_binlog_row_iter *it, struct th_value *before, struct th_value *after)
{
	const struct th_binlog_event *ev = it->ev;
	const struct th_ev_rows *rw = &ev->u.rows;
	if (!rw->tm || it->off >= rw->rows_len)
		return 0;
	int rc;
	it->partial_bits = NULL;
	switch (ev->kind) {
	case TH_EVK_WRITE_ROWS:
		if (!after)
			return -EINVAL;
		rc = row_image(it, rw->present, after);
		break;
	case TH_EVK_DELETE_ROWS:
		if (!before)
			return -EINVAL;
		rc = row_image(it, rw->present, before);
		break;
	case TH_EVK_UPDATE_ROWS:
	case TH_EVK_PARTIAL_UPDATE_ROWS:
		if (!before || !after)
			return -EINVAL;
		rc = row_image(it, rw->present, before);
		if (rc)
			break;
		if (rw->partial) {
			/* value_options, then one bit per JSON column of the table (MySQL rpl_record.cc) */
			struct rd r = rd_make(rw->rows + it->off, rw->rows_len - it->off);
			uint64_t opts = rd_packed(&r);
			if (opts & 1) {
				struct tm_entry *e = (struct tm_entry *)(void *)rw->tm; /* tm is e's first member */
				it->partial_bits = rd_take(&r, (e->njson + 7) / 8);
			}
			if (r.bad)
				return -TH_EBINLOG;
			it->off = rw->rows_len - rd_left(&r);
		}
		rc = row_image(it, rw->present_after, after);
		break;
	default:
		return -EINVAL;
	}
	if (rc)
		return rc;
	it->index++;
	return 1;
}

bool th_binlog_row_is_partial_json(const struct th_binlog_row_iter *it, uint32_t col)
{
	if (!it->partial_bits || !it->ev->u.rows.tm || col >= it->ev->u.rows.tm->ncols)
		return false;
	const struct th_table_map *tm = it->ev->u.rows.tm;
	if (tm->cols[col].type != TH_COL_JSON)
		return false;
	uint32_t k = 0;
	for (uint32_t i = 0; i < col; i++)
		k += tm->cols[i].type == TH_COL_JSON;
	/* MySQL's Bit_reader: bit k of the bitmap, least significant bit first */
	return (it->partial_bits[k / 8] >> (k % 8)) & 1;
}

/* ---- names ------------------------------------------------------------- */

static const char *const kind_names[TH_EVK__COUNT] = {
	[TH_EVK_UNKNOWN] = "unknown",
	[TH_EVK_FORMAT_DESCRIPTION] = "format_description",
	[TH_EVK_START_V3] = "start_v3",
	[TH_EVK_ROTATE] = "rotate",
	[TH_EVK_STOP] = "stop",
	[TH_EVK_QUERY] = "query",
	[TH_EVK_XID] = "xid",
	[TH_EVK_TABLE_MAP] = "table_map",
	[TH_EVK_WRITE_ROWS] = "write_rows",
	[TH_EVK_UPDATE_ROWS] = "update_rows",
	[TH_EVK_DELETE_ROWS] = "delete_rows",
	[TH_EVK_PARTIAL_UPDATE_ROWS] = "partial_update_rows",
	[TH_EVK_GTID] = "gtid",
	[TH_EVK_ANONYMOUS_GTID] = "anonymous_gtid",
	[TH_EVK_PREVIOUS_GTIDS] = "previous_gtids",
	[TH_EVK_HEARTBEAT] = "heartbeat",
	[TH_EVK_TRANSACTION_PAYLOAD] = "transaction_payload",
	[TH_EVK_GTID_LIST] = "gtid_list",
	[TH_EVK_BINLOG_CHECKPOINT] = "binlog_checkpoint",
	[TH_EVK_ANNOTATE_ROWS] = "annotate_rows",
	[TH_EVK_ROWS_QUERY] = "rows_query",
	[TH_EVK_INTVAR] = "intvar",
	[TH_EVK_RAND] = "rand",
	[TH_EVK_USER_VAR] = "user_var",
	[TH_EVK_INCIDENT] = "incident",
	[TH_EVK_XA_PREPARE] = "xa_prepare",
	[TH_EVK_START_ENCRYPTION] = "start_encryption",
	[TH_EVK_IGNORABLE] = "ignorable",
	[TH_EVK_TRANSACTION_CONTEXT] = "transaction_context",
	[TH_EVK_VIEW_CHANGE] = "view_change",
	[TH_EVK_LOAD] = "load",
	[TH_EVK_GTID_TAGGED] = "gtid_tagged",
};

const char *th_binlog_kind_name(enum th_binlog_kind kind)
{
	return (unsigned)kind < TH_EVK__COUNT && kind_names[kind] ? kind_names[kind] : "unknown";
}

static const char *type_name_for_msg(uint8_t t)
{
	switch (t) {
	case TH_BINLOG_QUERY: return "QUERY";
	case TH_BINLOG_ROTATE: return "ROTATE";
	case TH_BINLOG_FORMAT_DESCRIPTION: return "FORMAT_DESCRIPTION";
	case TH_BINLOG_XID: return "XID";
	case TH_BINLOG_TABLE_MAP: return "TABLE_MAP";
	case TH_BINLOG_WRITE_ROWS_V1: return "WRITE_ROWS_V1";
	case TH_BINLOG_UPDATE_ROWS_V1: return "UPDATE_ROWS_V1";
	case TH_BINLOG_DELETE_ROWS_V1: return "DELETE_ROWS_V1";
	case TH_BINLOG_WRITE_ROWS: return "WRITE_ROWS";
	case TH_BINLOG_UPDATE_ROWS: return "UPDATE_ROWS";
	case TH_BINLOG_DELETE_ROWS: return "DELETE_ROWS";
	case TH_BINLOG_PARTIAL_UPDATE_ROWS: return "PARTIAL_UPDATE_ROWS";
	case TH_BINLOG_GTID: return "GTID";
	case TH_BINLOG_ANONYMOUS_GTID: return "ANONYMOUS_GTID";
	case TH_BINLOG_PREVIOUS_GTIDS: return "PREVIOUS_GTIDS";
	case TH_BINLOG_TRANSACTION_PAYLOAD: return "TRANSACTION_PAYLOAD";
	case TH_BINLOG_HEARTBEAT: return "HEARTBEAT";
	case TH_BINLOG_HEARTBEAT_V2: return "HEARTBEAT_V2";
	case TH_BINLOG_MARIA_GTID: return "MariaDB GTID";
	case TH_BINLOG_MARIA_GTID_LIST: return "GTID_LIST";
	case TH_BINLOG_MARIA_BINLOG_CHECKPOINT: return "BINLOG_CHECKPOINT";
	case TH_BINLOG_MARIA_ANNOTATE_ROWS: return "ANNOTATE_ROWS";
	case TH_BINLOG_MARIA_QUERY_COMPRESSED: return "QUERY_COMPRESSED";
	case TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED_V1: return "WRITE_ROWS_COMPRESSED_V1";
	case TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED_V1: return "UPDATE_ROWS_COMPRESSED_V1";
	case TH_BINLOG_MARIA_DELETE_ROWS_COMPRESSED_V1: return "DELETE_ROWS_COMPRESSED_V1";
	case TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED: return "WRITE_ROWS_COMPRESSED";
	case TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED: return "UPDATE_ROWS_COMPRESSED";
	case TH_BINLOG_MARIA_DELETE_ROWS_COMPRESSED: return "DELETE_ROWS_COMPRESSED";
	case TH_BINLOG_INCIDENT: return "INCIDENT";
	case TH_BINLOG_XA_PREPARE: return "XA_PREPARE";
	default: return "binlog";
	}
}

size_t th_binlog_gtid_format(const struct th_ev_gtid *g, char *buf, size_t n)
{
	int w;
	if (g->mariadb) {
		w = snprintf(buf, n, "%u-%u-%llu", g->domain_id, g->server_id, (unsigned long long)g->seq_no);
	} else {
		const uint8_t *u = g->uuid;
		w = snprintf(buf, n,
			     "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x:%lld",
			     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
			     u[12], u[13], u[14], u[15], (long long)g->gno);
	}
	return w < 0 ? 0 : (size_t)w + 1;
}
