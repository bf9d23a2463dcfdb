/* SPDX-License-Identifier: Apache-2.0 */
/*
 * every_type.h: a MariaDB table with a column of every type, rows of edge
 * values for it, and the text the server's SELECT gives for a value, to check
 * what the decoder made of the binlog against what the server stored. Shared by
 * test_rows.c (the row decoder alone) and test_live_decode.c (files, live
 * stream, assembler).
 *
 * The table is (id INT PRIMARY KEY, then te_cols in order), CHARACTER SET
 * utf8mb4: its column k + 1 is te_cols[k]. The rows need sql_mode '' (zero
 * dates) and compare in time_zone '+00:00'; the caller sets both on the admin
 * session before te_create_table().
 *
 * Test support: functions fail the running cmocka test rather than return errors.
 */
#ifndef TH_TEST_EVERY_TYPE_H
#define TH_TEST_EVERY_TYPE_H

#include <stdbool.h>
#include <stddef.h>

#include "tests/support/mariadb.h"
#include "readers/rows.h"

/* How the server's text for a column compares with the decoded value. */
enum te_cmp {
	TE_TEXT,    /* the decoder's text (DECIMAL, dates, times) */
	TE_NUM,     /* the value's JSON: integers, BIT (SELECT col+0) */
	TE_FLOAT,   /* as floats: the server prints fewer digits */
	TE_DOUBLE,  /* as doubles */
	TE_HEX,     /* bytes, as HEX(col) */
	TE_HEXPAD,  /* HEX(col) of BINARY(n), whose trailing 0x00 padding the binlog omits */
	TE_YEAR,    /* four digits */
	TE_NAME,    /* ENUM and SET names */
};

struct te_col {
	const char *name, *sql;
	enum te_cmp cmp;
	bool is_unsigned, binary;   /* what the TABLE_MAP's full metadata would say */
};

#define TE_NCOLS 42
#define TE_NROWS 5
/* SELECT text of NULL: the tests select IFNULL(expr, '<NULL>'). */
#define TE_NULL "<NULL>"

extern const struct te_col te_cols[TE_NCOLS];
/* VALUES tuples for ids 1..5: minima, maxima, zeros, NULLs, ordinary values. */
extern const char *const te_rows[TE_NROWS];

/* Creates the table (e.g. "topo.alltypes") and inserts te_rows. */
void te_create_table(struct th_mariadb *db, const char *table);

/* The expression to SELECT for a column, e.g. "HEX(vb)", into out. */
void te_select_expr(const struct te_col *c, char *out, size_t len);

/*
 * The decoded value v of column c (col its TABLE_MAP column) as the server
 * prints SELECT IFNULL(te_select_expr, '<NULL>'), up to te_same(); the
 * caller frees it.
 */
char *te_decoded_text(const struct te_col *c, const struct th_column *col, const struct th_value *v);

/* Whether the server's text and te_decoded_text()'s agree for column c. */
bool te_same(const struct te_col *c, const char *server, const char *decoded);

#endif
