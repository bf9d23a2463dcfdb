/* SPDX-License-Identifier: Apache-2.0 */
/* The every-type table for server cross-checks; see every_type.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/every_type.h"
#include "common/th_buf.h"

const struct te_col te_cols[] = {
	{ "ti", "TINYINT", TE_NUM, false, false },
	{ "tiu", "TINYINT UNSIGNED", TE_NUM, true, false },
	{ "si", "SMALLINT", TE_NUM, false, false },
	{ "siu", "SMALLINT UNSIGNED", TE_NUM, true, false },
	{ "mi", "MEDIUMINT", TE_NUM, false, false },
	{ "miu", "MEDIUMINT UNSIGNED", TE_NUM, true, false },
	{ "i", "INT", TE_NUM, false, false },
	{ "iu", "INT UNSIGNED", TE_NUM, true, false },
	{ "bi", "BIGINT", TE_NUM, false, false },
	{ "biu", "BIGINT UNSIGNED", TE_NUM, true, false },
	{ "f", "FLOAT", TE_FLOAT, false, false },
	{ "d", "DOUBLE", TE_DOUBLE, false, false },
	{ "dec1", "DECIMAL(10,4)", TE_TEXT, false, false },
	{ "dec2", "DECIMAL(65,30)", TE_TEXT, false, false },
	{ "dec3", "DECIMAL(5,0)", TE_TEXT, false, false },
	{ "dec4", "DECIMAL(38,38)", TE_TEXT, false, false },
	{ "b1", "BIT(1)", TE_NUM, false, false },
	{ "b13", "BIT(13)", TE_NUM, false, false },
	{ "b64", "BIT(64)", TE_NUM, false, false },
	{ "y", "YEAR", TE_YEAR, false, false },
	{ "dt", "DATE", TE_TEXT, false, false },
	{ "t0", "TIME", TE_TEXT, false, false },
	{ "t3", "TIME(3)", TE_TEXT, false, false },
	{ "t6", "TIME(6)", TE_TEXT, false, false },
	{ "dtm0", "DATETIME", TE_TEXT, false, false },
	{ "dtm2", "DATETIME(2)", TE_TEXT, false, false },
	{ "dtm6", "DATETIME(6)", TE_TEXT, false, false },
	{ "ts0", "TIMESTAMP NULL", TE_TEXT, false, false },
	{ "ts4", "TIMESTAMP(4) NULL", TE_TEXT, false, false },
	{ "c10", "CHAR(10)", TE_HEX, false, false },
	{ "c255", "CHAR(255)", TE_HEX, false, false },
	{ "bin4", "BINARY(4)", TE_HEXPAD, false, true },
	{ "vc", "VARCHAR(300)", TE_HEX, false, false },
	{ "vb", "VARBINARY(20)", TE_HEX, false, true },
	{ "tt", "TINYTEXT", TE_HEX, false, false },
	{ "tb", "TINYBLOB", TE_HEX, false, true },
	{ "mt", "MEDIUMTEXT", TE_HEX, false, false },
	{ "lb", "LONGBLOB", TE_HEX, false, true },
	{ "e", "ENUM('a','bb','ccc')", TE_NAME, false, false },
	{ "s", "SET('x','yy','zzz')", TE_NAME, false, false },
	{ "j", "JSON", TE_HEX, false, false },
	{ "g", "GEOMETRY", TE_HEX, false, true },
};
_Static_assert(sizeof te_cols / sizeof te_cols[0] == TE_NCOLS, "TE_NCOLS");

const char *const te_rows[] = {
	"(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, -1.5, -2.25e-300,"
	" -1234.56, -99999999999999999999999999999999999.999999999999999999999999999999, -99999,"
	" -0.12345678901234567890123456789012345678, 0, 0, 0, 1901, '1000-01-01', '-838:59:59',"
	" '-00:00:01.5', '-12:34:56.000001', '1000-01-01 00:00:00', '2000-02-29 23:59:59.99',"
	" '1970-01-01 00:00:00.000001', '1970-01-01 00:00:01', '2000-01-01 00:00:00.0001', '',"
	" REPEAT('\xc3\xa9', 255), 'a', '', '', '', '', '', '', 'a', '', '{}', POINT(1, -2))",
	"(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,"
	" 18446744073709551615, 3.40282e38, 1.7976931348623157e308, 999999.9999,"
	" 99999999999999999999999999999999999.999999999999999999999999999999, 99999,"
	" 0.99999999999999999999999999999999999999, 1, b'1111111111111', 18446744073709551615, 2155,"
	" '9999-12-31', '838:59:59', '838:59:59.999', '-838:59:59.999999', '9999-12-31 23:59:59',"
	" '9999-12-31 23:59:59.99', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07',"
	" '2038-01-19 03:14:07.9999', 'abcdefghij', REPEAT('\xf0\x9f\x98\x80', 255), 0xfffefdfc,"
	" REPEAT('\xc3\xbc', 300), 0x00ff, REPEAT('t', 255), 0x00c3, REPEAT('m', 70000),"
	" REPEAT('x', 100000), 'ccc', 'x,yy,zzz', '{\"a\": [1, 2.5, \"\xc3\xa9\"]}', POINT(0, 0))",
	"(3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '0000-00-00', '00:00:00',"
	" '00:00:00', '00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00',"
	" 0, 0, 'x ', 'y', 0x00, 'z ', 0xc3, 'tt', '', 'mm', '', '', 'yy', 'null', POINT(0.5, 0.25))",
	"(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
	" NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
	" NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
	"(5, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5, 1.1, 0.1, -0.01, 0.000000000000000000000000000001,"
	" -1, 0.5, 1, 4097, 9223372036854775808, 2024, '2024-02-29', '12:34:56', '12:34:56.789',"
	" '-00:00:00.000001', '2024-02-29 12:34:56', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56.123456',"
	" '2024-02-29 12:34:56', '2024-02-29 12:34:56.1234', 'h\xc3\xa9', 'caf\xc3\xa9', 'ab', 'v',"
	" 0xdeadbeef, 'txt', 0x01, 'mid', 0x02, 'bb', 'x,zzz', '[1, {\"k\": null}]', NULL)",
};
_Static_assert(sizeof te_rows / sizeof te_rows[0] == TE_NROWS, "TE_NROWS");

void te_create_table(struct th_mariadb *db, const char *table)
{
	struct th_buf sql = TH_BUF_INIT;
	th_buf_printf(&sql, "CREATE TABLE %s (id INT PRIMARY KEY", table);
	for (size_t k = 0; k < TE_NCOLS; k++)
		th_buf_printf(&sql, ", %s %s", te_cols[k].name, te_cols[k].sql);
	th_buf_puts(&sql, ") CHARACTER SET utf8mb4");
	if (th_mariadb_sql(db, "%s", th_buf_cstr(&sql)))
		fail_msg("setup: %s", db->err);
	th_buf_free(&sql);
	for (size_t k = 0; k < TE_NROWS; k++)
		if (th_mariadb_sql(db, "INSERT INTO %s VALUES %s", table, te_rows[k]))
			fail_msg("insert %zu: %s", k + 1, db->err);
}

void te_select_expr(const struct te_col *c, char *out, size_t len)
{
	const char *fmt = c->cmp == TE_HEX || c->cmp == TE_HEXPAD ? "HEX(%s)"
		: c->cmp == TE_NUM && !strncmp(c->sql, "BIT", 3) ? "%s+0" : "%s";
	snprintf(out, len, fmt, c->name);
}

char *te_decoded_text(const struct te_col *c, const struct th_column *col, const struct th_value *v)
{
	struct th_buf o = TH_BUF_INIT;
	if (v->kind == TH_VAL_NULL) {
		th_buf_puts(&o, TE_NULL);
	} else {
		switch (c->cmp) {
		case TE_TEXT:
			assert_int_equal(v->kind, TH_VAL_TEXT);
			th_buf_puts(&o, v->text);
			break;
		case TE_NUM:
		case TE_NAME:
			assert_int_equal(th_value_to_json(col, v, &o), 0);
			if (c->cmp == TE_NAME) {
				/* Strip the quotes: names here need no escaping. */
				memmove(o.data, o.data + 1, o.len - 2);
				o.len -= 2;
				o.data[o.len] = '\0';
			}
			break;
		case TE_FLOAT:
			assert_int_equal(v->kind, TH_VAL_DOUBLE);
			th_buf_printf(&o, "%.9g", v->d);
			break;
		case TE_DOUBLE:
			assert_int_equal(v->kind, TH_VAL_DOUBLE);
			th_buf_printf(&o, "%.17g", v->d);
			break;
		case TE_HEX:
		case TE_HEXPAD:
			for (uint32_t k = 0; k < v->len; k++)
				th_buf_printf(&o, "%02X", v->bytes[k]);
			break;
		case TE_YEAR:
			assert_int_equal(v->kind, TH_VAL_INT);
			th_buf_printf(&o, "%04lld", (long long)v->i);
			break;
		}
	}
	char *s = strdup(th_buf_cstr(&o));
	th_buf_free(&o);
	return s;
}

bool te_same(const struct te_col *c, const char *server, const char *decoded)
{
	if (!strcmp(server, TE_NULL) || !strcmp(decoded, TE_NULL))
		return !strcmp(server, decoded);
	size_t n = strlen(decoded);
	switch (c->cmp) {
	case TE_FLOAT:
		/* %.9g reads back as the same float; the server's shorter text too */
		return (float)strtod(server, NULL) == (float)strtod(decoded, NULL);
	case TE_DOUBLE:
		return strtod(server, NULL) == strtod(decoded, NULL);
	case TE_HEXPAD:
		return !strncmp(decoded, server, n) && strspn(server + n, "0") == strlen(server + n);
	default:
		return !strcmp(server, decoded);
	}
}
