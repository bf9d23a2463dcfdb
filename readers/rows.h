/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rows.h: MySQL row images, decoded.
 *
 * A ROWS event (WRITE/UPDATE/DELETE, v1 and v2) carries row images in MySQL's
 * binlog row format; how to read each column follows from the TABLE_MAP event
 * that precedes it (column types, their metadata, nullability, and, with
 * binlog_row_metadata=FULL, signedness, names and enum/set strings).
 *
 * This decoder reads every column type MySQL and MariaDB write, not only those
 * the topo tables use. It never reads past the bytes it is given: a short or
 * inconsistent image is -TH_EBINLOG, never a crash and never a guess.
 *
 * Values point into the caller's event bytes (no copies); they are valid as long
 * as those bytes are. Thread-safety: all functions are pure; any thread may call
 * them on its own data.
 */
#ifndef TH_ROWS_H
#define TH_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/th_buf.h"

/* Column types as they appear in TABLE_MAP (enum_field_types). */
enum th_coltype {
	TH_COL_DECIMAL = 0, TH_COL_TINY = 1, TH_COL_SHORT = 2, TH_COL_LONG = 3,
	TH_COL_FLOAT = 4, TH_COL_DOUBLE = 5, TH_COL_NULL = 6, TH_COL_TIMESTAMP = 7,
	TH_COL_LONGLONG = 8, TH_COL_INT24 = 9, TH_COL_DATE = 10, TH_COL_TIME = 11,
	TH_COL_DATETIME = 12, TH_COL_YEAR = 13, TH_COL_NEWDATE = 14, TH_COL_VARCHAR = 15,
	TH_COL_BIT = 16, TH_COL_TIMESTAMP2 = 17, TH_COL_DATETIME2 = 18, TH_COL_TIME2 = 19,
	TH_COL_TYPED_ARRAY = 20,
	TH_COL_VECTOR = 242, TH_COL_JSON = 245, TH_COL_NEWDECIMAL = 246, TH_COL_ENUM = 247,
	TH_COL_SET = 248, TH_COL_TINY_BLOB = 249, TH_COL_MEDIUM_BLOB = 250,
	TH_COL_LONG_BLOB = 251, TH_COL_BLOB = 252, TH_COL_VAR_STRING = 253,
	TH_COL_STRING = 254, TH_COL_GEOMETRY = 255,
};

/* One column of a table, as a TABLE_MAP event describes it. */
struct th_column {
	uint8_t type;        /* enum th_coltype, as written in the TABLE_MAP column list */
	uint16_t meta;       /* type metadata from TABLE_MAP (0 for types without) */
	bool nullable;
	bool is_unsigned;    /* from optional metadata SIGNEDNESS; false when absent */
	bool binary;         /* string column with the binary charset (63), when known */
	uint16_t charset;    /* collation id when known from optional metadata, else 0 */
	const char *name;    /* COLUMN_NAME optional metadata, or NULL */
	uint32_t name_len;
	/* ENUM_STR_VALUE / SET_STR_VALUE optional metadata, or NULL/0 */
	const char *const *strs;
	const uint32_t *str_lens;
	uint32_t nstrs;
};

/* A table as of its TABLE_MAP event. Owned by whoever parsed the TABLE_MAP. */
struct th_table_map {
	uint64_t table_id;
	const char *schema;  /* NUL-terminated */
	const char *table;   /* NUL-terminated */
	uint32_t ncols;
	struct th_column *cols;
	bool has_names;      /* optional metadata carried COLUMN_NAME */
};

enum th_value_kind {
	TH_VAL_ABSENT = 0,   /* column not in this image (bitmap bit clear) */
	TH_VAL_NULL,
	TH_VAL_INT,          /* i: signed integer types, YEAR */
	TH_VAL_UINT,         /* u: unsigned integers, BIT (as number), ENUM index, SET bits */
	TH_VAL_DOUBLE,       /* d: FLOAT and DOUBLE */
	TH_VAL_TEXT,         /* text: DECIMAL, dates, times, timestamps in MySQL's text form */
	TH_VAL_STRING,       /* bytes: CHAR/VARCHAR/TEXT (charset not binary) */
	TH_VAL_BYTES,        /* bytes: BINARY/VARBINARY/BLOB/GEOMETRY/VECTOR */
	TH_VAL_JSON,         /* bytes: MySQL binary JSON (MariaDB stores JSON as TEXT) */
	TH_VAL_ENUM,         /* u: index (1-based, 0 = ''); name via column strs */
	TH_VAL_SET,          /* u: bitmask; names via column strs */
	TH_VAL_BIT,          /* u: the bits as a number; bytes: raw big-endian */
};

struct th_value {
	enum th_value_kind kind;
	int64_t i;
	uint64_t u;
	double d;
	const uint8_t *bytes;
	uint32_t len;
	char text[80];       /* for TH_VAL_TEXT: NUL-terminated */
};

/*
 * Decode one row image starting at p.
 *   tm       the table (from the TABLE_MAP with the event's table_id)
 *   present  the event's columns-present bitmap (bit i = column i in the image),
 *            ceil(tm->ncols / 8) bytes
 *   p, len   bytes from the start of this image to the end of the rows data
 *   out      tm->ncols values; absent columns get TH_VAL_ABSENT
 *   used     set to the number of bytes this image takes
 * Returns 0, or -TH_EBINLOG (short or inconsistent image, with no partial
 * result worth using), or -TH_EUNSUPPORTED (a column type this build cannot read).
 */
int th_row_decode(const struct th_table_map *tm, const uint8_t *present,
		  const uint8_t *p, size_t len, struct th_value *out, size_t *used);

/*
 * th_row_decode, decoding only the columns whose bit is set in `wanted`
 * (ceil(ncols / 8) bytes; NULL = all). Present columns that are not wanted
 * are stepped over by their length without being rendered, and come out as
 * TH_VAL_ABSENT (NULLs still come out as TH_VAL_NULL). For callers that read
 * a few columns of wide rows: the temporal and decimal columns cost most of
 * the decoding time, in text formatting.
 */
int th_row_decode_wanted(const struct th_table_map *tm, const uint8_t *present, const uint8_t *wanted,
			 const uint8_t *p, size_t len, struct th_value *out, size_t *used);

/*
 * Append a value as JSON: numbers for integers and floats, strings for
 * DECIMAL and temporal types (MySQL text format), JSON strings for text when
 * valid UTF-8 else {"base64":"..."}, JSON documents as JSON (binary JSON
 * rendered as text), null for NULL. Returns 0 or a negative error (a malformed
 * binary JSON document is -TH_EBINLOG; nothing is appended then).
 */
int th_value_to_json(const struct th_column *col, const struct th_value *v, struct th_buf *out);

/*
 * MySQL binary JSON (the JSON column's storage format) to JSON text.
 * Returns 0 or -TH_EBINLOG; never reads outside [p, p+len).
 */
int th_json_binary_to_text(const uint8_t *p, size_t len, struct th_buf *out);

/* ---- Appended with the decoder (compatible additions) ----
 *
 * What each value kind sets beyond `kind` (other fields are left as they were):
 *   TH_VAL_INT i; TH_VAL_UINT u; TH_VAL_DOUBLE d (FLOAT widened exactly);
 *   TH_VAL_TEXT text, and for TIMESTAMP/TIMESTAMP2 also i = seconds since the
 *   epoch and u = microseconds; TH_VAL_STRING/BYTES/JSON bytes, len;
 *   TH_VAL_ENUM/SET u; TH_VAL_BIT u and bytes, len (big-endian, as stored).
 *
 * Renderings, in MySQL's text form: DECIMAL exactly `scale` fraction digits,
 * no negative zero; DATE "YYYY-MM-DD"; DATETIME/TIMESTAMP "YYYY-MM-DD
 * HH:MM:SS[.f]" with exactly fsp fraction digits, TIMESTAMP in UTC, 0 as
 * "0000-00-00 00:00:00"; TIME "[-]HH:MM:SS[.f]" (hours may take 3 digits);
 * YEAR as an integer (0 for the zero year).
 *
 * th_value_to_json: FLOAT/DOUBLE as the shortest text that reads back as the
 * same float/double; NaN and infinities (which MySQL does not store) as null.
 * Strings and bytes alike: a JSON string when valid UTF-8 (no transcoding from
 * other charsets), else {"base64":"..."}. BINARY(n) values are as the server
 * logged them, i.e. without their trailing 0x00 padding. ENUM 0 is "" and an
 * index or bit with no name renders the whole value as a number. A MySQL JSON
 * column with an empty value (which MySQL reads as JSON null) renders as null.
 * Binary JSON renders as MySQL prints it (", " and ": " separators; datetimes
 * with 6 fraction digits; doubles keep a ".0"; other opaque values as
 * "base64:typeN:..."). col may be NULL: FLOAT then renders with double
 * precision and ENUM/SET as numbers.
 *
 * Errors of th_row_decode: -EINVAL for NULL arguments. -TH_EUNSUPPORTED for
 * pre-5.0 DECIMAL (TABLE_MAP gives no length for it), TYPED_ARRAY, unknown
 * types, and MariaDB 5.3's fractional TIME/DATETIME/TIMESTAMP (old types with
 * non-zero metadata). -TH_EBINLOG also for values no server writes (month 13,
 * minute 60, a DECIMAL group >= 10^9, a length above the column's maximum).
 * th_value_to_json: -EINVAL for TH_VAL_ABSENT, -ENOMEM when the buffer failed.
 */

/* Internal (th__): shared by rows.c and rows_json.c; not for other components. */
int th__decimal_size(unsigned precision, unsigned scale, size_t *size);
/* out needs 70 bytes; used = bytes of p consumed. 0 or -TH_EBINLOG. */
int th__decimal_to_text(const uint8_t *p, size_t len, unsigned precision, unsigned scale,
			char *out, size_t *used);
/* MySQL's in-memory packed temporal longlongs (my_time.h); out needs 32 bytes. */
int th__datetime_packed_to_text(int64_t packed, char *out, bool date_only, unsigned fsp);
int th__time_packed_to_text(int64_t packed, char *out, unsigned fsp);
size_t th__format_date(char *o, unsigned year, unsigned month, unsigned day);
size_t th__format_datetime(char *o, unsigned year, unsigned month, unsigned day, unsigned hour,
			   unsigned minute, unsigned second, uint32_t usec, unsigned fsp);
size_t th__format_time(char *o, bool neg, unsigned hour, unsigned minute, unsigned second,
		       uint32_t usec, unsigned fsp);
void th__json_number_u64(struct th_buf *out, uint64_t u);
void th__json_number_i64(struct th_buf *out, int64_t i);
/* single: shortest float text; mark_float: append ".0" to integral text. */
int th__json_number_double(struct th_buf *out, double d, bool single, bool mark_float);

#endif
