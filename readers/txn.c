/* SPDX-License-Identifier: Apache-2.0 */
/*
 * txn.c: the transaction assembler and the topo mapping (txn.h).
 *
 * Hot path: a row event of a watched table. Its table is resolved once per
 * TABLE_MAP (a one-entry cache keyed by the map the decoder returns), its
 * images are decoded with th_binlog_rows_next() into value arrays kept here,
 * and each change's key and value bytes are appended to one arena. Changes
 * hold arena offsets while the transaction grows (the arena may move) and
 * get their pointers at delivery.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/th_buf.h"
#include "common/th_bytes.h"
#include "common/th_error.h"
#include "readers/txn.h"

#define MAX_TABLES 64
#define FILE_MAX 512

/* A watched table's columns as resolved against one TABLE_MAP. */
/* Rows of tables up to this wide decode only their mapped columns. */
#define TH_TXN_WANTED_MAX_COLS 4096

struct mapping {
	uint64_t table_id;
	const struct th_table_map *tm;
	int32_t table;               /* config index; -1: not watched */
	uint32_t key;
	uint32_t value[TH_TXN_MAX_VALUE_COLS];
	uint32_t nvalue;
	int64_t version;             /* column or -1 */
};

struct tcfg {
	char *schema, *table, *key, *version;
	char *value[TH_TXN_MAX_VALUE_COLS];
	uint32_t nvalue;
	uint32_t key_pos, value_pos[TH_TXN_MAX_VALUE_COLS], version_pos;
};

struct th_txn_asm {
	struct tcfg tables[MAX_TABLES];
	size_t ntables;

	enum th_binlog_flavor flavor;

	/* the transaction being assembled */
	bool in_txn;
	bool body;                   /* BEGIN seen (or MariaDB transactional GTID): a lone
					QUERY does not end it */
	bool partial;                /* started by a row event: its start was not seen */
	bool xa_prepare;             /* MariaDB GTID with PREPARED_XA */
	bool delivered;              /* txn out: clear it at the next feed */
	struct th_txn txn;
	struct th_txn_change *changes;
	size_t nchanges, changes_cap;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	bool xa_watched_pending;     /* a prepared XA touched a watched table (sticky) */

	/* table mappings: watched ones by table_id, and a one-entry cache */
	struct mapping *maps;
	size_t nmaps, maps_cap;
	const struct th_table_map *last_tm;
	uint64_t last_table_id;
	struct mapping *last_map;    /* NULL with last_tm set: not watched */

	/* row values */
	struct th_value *before, *after;
	uint32_t values_cap;

	/* positions */
	char cur_file[FILE_MAX];     /* the file the events come from */
	uint64_t outer_end;          /* end of the last event outside a payload */
	char resume_file[FILE_MAX];
	uint64_t resume_pos;
	struct th_gtid_set *gset;
	struct th_gtid_pos *gpos;

	struct th_txn_stats stats;
	char err[512];
};

/* ---- the mysqltopo defaults ----------------------------------------------- */

static const struct th_txn_table mysqltopo_tables[] = {
	{ .table = "topo_data", .key = "path", .value = { "data" }, .version = "version" },
	{ .table = "topo_locks", .key = "path", .value = { "contents" } },
	{ .table = "topo_elections", .key = "name", .value = { "leader_id", "contents" } },
};

const struct th_txn_table *th_txn_mysqltopo_tables(size_t *ntables)
{
	*ntables = sizeof mysqltopo_tables / sizeof mysqltopo_tables[0];
	return mysqltopo_tables;
}

const char *th_txn_resync_reason_name(enum th_txn_resync_reason r)
{
	switch (r) {
	case TH_TXN_RESYNC_NONE: return "none";
	case TH_TXN_RESYNC_DDL: return "ddl";
	case TH_TXN_RESYNC_STATEMENT: return "statement";
	case TH_TXN_RESYNC_INCIDENT: return "incident";
	case TH_TXN_RESYNC_PARTIAL: return "partial";
	case TH_TXN_RESYNC_IMAGE: return "image";
	case TH_TXN_RESYNC_XA: return "xa";
	}
	return "unknown";
}

static int fail(struct th_txn_asm *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct th_txn_asm *a, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->err, sizeof a->err, fmt, ap);
	va_end(ap);
	return code;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void free_tables(struct th_txn_asm *a)
{
	for (size_t i = 0; i < a->ntables; i++) {
		struct tcfg *t = &a->tables[i];
		free(t->schema);
		free(t->table);
		free(t->key);
		free(t->version);
		for (uint32_t k = 0; k < TH_TXN_MAX_VALUE_COLS; k++)
			free(t->value[k]);
	}
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int th_txn_asm_new(struct th_txn_asm **out, const struct th_txn_config *cfg)
{
	*out = NULL;
	const char *schema = cfg && cfg->schema ? cfg->schema : "topo";
	const struct th_txn_table *tables = cfg ? cfg->tables : NULL;
	size_t n = cfg ? cfg->ntables : 0;
	if (!tables)
		tables = th_txn_mysqltopo_tables(&n);
	if (n == 0 || n > MAX_TABLES)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!tables[i].table || !tables[i].key)
			return -EINVAL;
	struct th_txn_asm *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	bool oom = false;
	for (size_t i = 0; i < n; i++) {
		const struct th_txn_table *s = &tables[i];
		struct tcfg *t = &a->tables[i];
		a->ntables = i + 1;
		t->schema = dup_or_null(s->schema ? s->schema : schema, &oom);
		t->table = dup_or_null(s->table, &oom);
		t->key = dup_or_null(s->key, &oom);
		t->version = dup_or_null(s->version, &oom);
		t->key_pos = s->key_pos;
		t->version_pos = s->version_pos;
		for (uint32_t k = 0; k < TH_TXN_MAX_VALUE_COLS && s->value[k]; k++) {
			t->value[k] = dup_or_null(s->value[k], &oom);
			t->value_pos[k] = s->value_pos[k];
			t->nvalue = k + 1;
		}
	}
	if (!oom && (th_gtid_set_new(&a->gset) || th_gtid_pos_new(&a->gpos)))
		oom = true;
	if (oom) {
		th_txn_free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

void th_txn_free(struct th_txn_asm *a)
{
	if (!a)
		return;
	free_tables(a);
	free(a->changes);
	free(a->arena);
	free(a->maps);
	free(a->before);
	free(a->after);
	th_gtid_set_free(a->gset);
	th_gtid_pos_free(a->gpos);
	free(a);
}

static void clear_txn(struct th_txn_asm *a)
{
	a->in_txn = false;
	a->body = false;
	a->partial = false;
	a->xa_prepare = false;
	a->nchanges = 0;
	a->arena_len = 0;
	memset(&a->txn, 0, sizeof a->txn);
	a->txn.resync_table = -1;
}

static void forget_maps(struct th_txn_asm *a)
{
	a->nmaps = 0;
	a->last_tm = NULL;
	a->last_map = NULL;
}

void th_txn_reset(struct th_txn_asm *a)
{
	if (a->in_txn)
		a->stats.dropped++;
	clear_txn(a);
	a->delivered = false;
	forget_maps(a);
}

/* ---- positions ------------------------------------------------------------ */

static int set_name(char *dst, const char *src, size_t len)
{
	if (len >= FILE_MAX)
		return -EINVAL;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/* MariaDB positions are "d-s-n" lists; a MySQL set always has a ':'. */
static bool looks_mariadb(const char *g)
{
	return strchr(g, '-') && !strchr(g, ':');
}

int th_txn_set_position(struct th_txn_asm *a, const char *gtid, const char *file, uint64_t pos)
{
	if (file && strlen(file) >= FILE_MAX)
		return -EINVAL;
	if (gtid) {
		char why[160];
		int rc;
		if (looks_mariadb(gtid)) {
			struct th_gtid_pos *p;
			if ((rc = th_gtid_pos_new(&p)))
				return rc;
			if ((rc = th_gtid_pos_parse(p, gtid, why, sizeof why))) {
				th_gtid_pos_free(p);
				return fail(a, rc, "GTID position '%.100s': %s", gtid, why);
			}
			th_gtid_pos_free(a->gpos);
			a->gpos = p;
			a->flavor = TH_BINLOG_FLAVOR_MARIADB;
		} else {
			struct th_gtid_set *s;
			if ((rc = th_gtid_set_new(&s)))
				return rc;
			if ((rc = th_gtid_set_parse(s, gtid, why, sizeof why))) {
				th_gtid_set_free(s);
				return fail(a, rc, "GTID set '%.100s': %s", gtid, why);
			}
			th_gtid_set_free(a->gset);
			a->gset = s;
			if (!th_gtid_set_is_empty(s))
				a->flavor = TH_BINLOG_FLAVOR_MYSQL;
		}
	}
	if (file) {
		set_name(a->cur_file, file, strlen(file));
		set_name(a->resume_file, file, strlen(file));
		a->resume_pos = pos;
		a->outer_end = pos;
	}
	return 0;
}

int th_txn_resume_gtid(const struct th_txn_asm *a, struct th_buf *out)
{
	if (a->flavor == TH_BINLOG_FLAVOR_MARIADB)
		return th_gtid_pos_format(a->gpos, out);
	return th_gtid_set_format(a->gset, out);
}

void th_txn_resume_file(const struct th_txn_asm *a, const char **file, uint64_t *pos)
{
	*file = a->resume_file;
	*pos = a->resume_pos;
}

const struct th_gtid_set *th_txn_resume_gtid_set(const struct th_txn_asm *a) { return a->gset; }
const struct th_gtid_pos *th_txn_resume_gtid_pos(const struct th_txn_asm *a) { return a->gpos; }
enum th_binlog_flavor th_txn_flavor(const struct th_txn_asm *a) { return a->flavor; }
bool th_txn_in_progress(const struct th_txn_asm *a) { return a->in_txn; }
void th_txn_stats(const struct th_txn_asm *a, struct th_txn_stats *out) { *out = a->stats; }
const char *th_txn_error(const struct th_txn_asm *a) { return a->err; }

/* ---- SQL statements: is a watched table named? ---------------------------- */

enum tok { T_END, T_IDENT, T_DOT, T_OTHER };

struct lex {
	const char *p, *e;
	bool in_exec;                /* inside an executable comment: its close is a no-op */
	char id[130];                /* the identifier, unquoted, truncated */
	size_t id_len;
	bool quoted;
};

static bool ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Copies a quoted identifier or string body; q is the quote; doubled quotes escape. */
static void lex_quoted(struct lex *l, char q, bool backslash)
{
	l->id_len = 0;
	while (l->p < l->e) {
		char c = *l->p++;
		if (backslash && c == '\\' && l->p < l->e) {
			c = *l->p++;
		} else if (c == q) {
			if (l->p < l->e && *l->p == q)
				l->p++;
			else
				break;
		}
		if (l->id_len < sizeof l->id - 1)
			l->id[l->id_len++] = c;
	}
	l->id[l->id_len] = '\0';
}

static enum tok lex_next(struct lex *l)
{
	for (;;) {
		while (l->p < l->e && isspace((unsigned char)*l->p))
			l->p++;
		if (l->p >= l->e)
			return T_END;
		const char *p = l->p;
		size_t left = (size_t)(l->e - p);
		if (p[0] == '/' && left >= 2 && p[1] == '*') {
			/* MySQL executes the body of a bang comment (slash-star-bang NNNNN), MariaDB also slash-star-M-bang: read it as code */
			size_t k = 2;
			if (k < left && p[k] == 'M' && k + 1 < left && p[k + 1] == '!')
				k++;
			if (k < left && p[k] == '!') {
				k++;
				while (k < left && isdigit((unsigned char)p[k]))
					k++;
				l->p = p + k;
				l->in_exec = true;
				continue;
			}
			const char *end = NULL;
			for (size_t j = 2; j + 1 < left; j++)
				if (p[j] == '*' && p[j + 1] == '/') {
					end = p + j + 2;
					break;
				}
			l->p = end ? end : l->e;
			continue;
		}
		if (l->in_exec && p[0] == '*' && left >= 2 && p[1] == '/') {
			l->in_exec = false;
			l->p += 2;
			continue;
		}
		if (p[0] == '#' || (p[0] == '-' && left >= 3 && p[1] == '-' && isspace((unsigned char)p[2]))
		    || (p[0] == '-' && left == 2 && p[1] == '-')) {
			while (l->p < l->e && *l->p != '\n')
				l->p++;
			continue;
		}
		if (p[0] == '`' || p[0] == '"') {
			/* "..." is a string, or an identifier under ANSI_QUOTES: an
			   identifier here, since a false match only costs a resync */
			l->p++;
			lex_quoted(l, p[0], p[0] == '"');
			l->quoted = true;
			return T_IDENT;
		}
		if (p[0] == '\'') {
			l->p++;
			lex_quoted(l, '\'', true);
			return T_OTHER;
		}
		if (p[0] == '.') {
			l->p++;
			return T_DOT;
		}
		if (ident_char((unsigned char)p[0])) {
			l->id_len = 0;
			while (l->p < l->e && ident_char((unsigned char)*l->p)) {
				if (l->id_len < sizeof l->id - 1)
					l->id[l->id_len++] = *l->p;
				l->p++;
			}
			l->id[l->id_len] = '\0';
			l->quoted = false;
			return T_IDENT;
		}
		l->p++;
		return T_OTHER;
	}
}

static bool kw(const struct lex *l, const char *word)
{
	return !l->quoted && !strcasecmp(l->id, word);
}

enum stmt { S_NONE, S_DDL, S_DML };

/* The statement's kind from its first words; leaves l after them. */
static enum stmt classify(struct lex *l, bool *database)
{
	*database = false;
	if (lex_next(l) != T_IDENT || l->quoted)
		return S_NONE;
	enum stmt s;
	if (kw(l, "ALTER") || kw(l, "RENAME") || kw(l, "TRUNCATE") || kw(l, "DROP") || kw(l, "CREATE"))
		s = S_DDL;
	else if (kw(l, "INSERT") || kw(l, "UPDATE") || kw(l, "DELETE") || kw(l, "REPLACE") || kw(l, "LOAD"))
		s = S_DML;
	else
		return S_NONE;
	struct lex peek = *l;
	if (s == S_DDL && lex_next(&peek) == T_IDENT && (kw(&peek, "DATABASE") || kw(&peek, "SCHEMA")))
		*database = true;
	return s;
}

static bool name_eq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && !strncasecmp(a, b, alen);
}

/*
 * Index of the first watched table the statement names (or whose schema it
 * drops), -1 for none; *dml tells a logged DML statement from DDL.
 */
static int query_match(const struct tcfg *tables, size_t ntables, const char *q, size_t len,
		       const char *db, size_t db_len, bool *dml)
{
	struct lex l = { .p = q, .e = q + len };
	bool database;
	enum stmt s = classify(&l, &database);
	*dml = s == S_DML;
	if (s == S_NONE)
		return -1;
	char prev[130];
	size_t prev_len = 0;
	bool have_prev = false, after_dot = false;
	for (;;) {
		enum tok t = lex_next(&l);
		if (t == T_IDENT) {
			for (size_t i = 0; i < ntables; i++) {
				const struct tcfg *c = &tables[i];
				if (database && name_eq(l.id, l.id_len, c->schema))
					return (int)i;
				if (!name_eq(l.id, l.id_len, c->table))
					continue;
				if (after_dot ? have_prev && name_eq(prev, prev_len, c->schema)
					      : name_eq(db, db_len, c->schema))
					return (int)i;
			}
			memcpy(prev, l.id, l.id_len + 1);
			prev_len = l.id_len;
			have_prev = true;
			after_dot = false;
			continue;
		}
		if (t == T_END)
			return -1;
		if (t == T_DOT) {
			after_dot = have_prev;
			continue;
		}
		have_prev = false;
		after_dot = false;
	}
}

bool th_txn_query_names_table(const char *q, size_t len, const char *db, size_t db_len,
			      const char *schema, const char *table)
{
	struct tcfg t = { .schema = (char *)schema, .table = (char *)table };
	bool dml;
	return query_match(&t, 1, q, len, db ? db : "", db ? db_len : 0, &dml) == 0;
}

/* The first word(s) of a query, for BEGIN / COMMIT / XA. */
static bool query_is(const char *q, size_t len, const char *word)
{
	while (len && isspace((unsigned char)*q)) {
		q++;
		len--;
	}
	size_t n = strlen(word);
	if (len < n || strncasecmp(q, word, n))
		return false;
	return len == n || !ident_char((unsigned char)q[n]);
}

/* ---- building the transaction --------------------------------------------- */

static void begin_txn(struct th_txn_asm *a)
{
	if (a->in_txn)
		a->stats.dropped++; /* a start without the previous commit: that one was cut */
	if (a->delivered)
		a->delivered = false;
	clear_txn(a);
	a->in_txn = true;
}

static void set_resync(struct th_txn_asm *a, enum th_txn_resync_reason why, int table)
{
	if (a->txn.resync)
		return;
	a->txn.resync = true;
	a->txn.reason = why;
	a->txn.resync_table = table;
}

/* The bytes of a value as a key or value: appended to the arena. */
static int put_value_bytes(struct th_txn_asm *a, const struct th_value *v)
{
	const void *p;
	size_t n;
	char tmp[32];
	switch (v->kind) {
	case TH_VAL_STRING:
	case TH_VAL_BYTES:
	case TH_VAL_JSON:
		p = v->bytes;
		n = v->len;
		break;
	case TH_VAL_TEXT:
		p = v->text;
		n = strlen(v->text);
		break;
	case TH_VAL_INT:
		n = (size_t)snprintf(tmp, sizeof tmp, "%" PRId64, v->i);
		p = tmp;
		break;
	case TH_VAL_DOUBLE:
		n = (size_t)snprintf(tmp, sizeof tmp, "%.17g", v->d);
		p = tmp;
		break;
	default: /* UINT, ENUM, SET, BIT: the number */
		n = (size_t)snprintf(tmp, sizeof tmp, "%" PRIu64, v->u);
		p = tmp;
		break;
	}
	if (th_grow((void **)&a->arena, &a->arena_cap, a->arena_len + n, 1))
		return -ENOMEM;
	memcpy(a->arena + a->arena_len, p, n);
	a->arena_len += n;
	return 0;
}

static int put_u32(struct th_txn_asm *a, uint32_t x)
{
	if (th_grow((void **)&a->arena, &a->arena_cap, a->arena_len + 4, 1))
		return -ENOMEM;
	uint8_t *o = a->arena + a->arena_len;
	o[0] = (uint8_t)x;
	o[1] = (uint8_t)(x >> 8);
	o[2] = (uint8_t)(x >> 16);
	o[3] = (uint8_t)(x >> 24);
	a->arena_len += 4;
	return 0;
}

static int64_t version_of(const struct mapping *m, const struct th_value *row)
{
	if (m->version < 0)
		return 0;
	const struct th_value *v = &row[m->version];
	switch (v->kind) {
	case TH_VAL_INT: return v->i;
	case TH_VAL_UINT: case TH_VAL_BIT: return (int64_t)v->u;
	case TH_VAL_TEXT: return strtoll(v->text, NULL, 10);
	case TH_VAL_DOUBLE: return (int64_t)v->d;
	default: return 0;
	}
}

static bool value_is_data(const struct th_value *v)
{
	return v->kind != TH_VAL_ABSENT && v->kind != TH_VAL_NULL;
}

/*
 * Appends a change. row is the image the key, value and version come from;
 * with_value: a put (the value columns are read). Offsets go into key/value
 * (pointer-sized fields hold offsets until delivery).
 */
static int add_change(struct th_txn_asm *a, const struct mapping *m, const struct th_value *row,
		      bool with_value)
{
	if (th_grow((void **)&a->changes, &a->changes_cap, a->nchanges + 1, sizeof *a->changes))
		return -ENOMEM;
	struct th_txn_change *c = &a->changes[a->nchanges];
	c->table = (uint32_t)m->table;
	c->op = with_value ? TH_TXN_PUT : TH_TXN_DELETE;
	c->version = version_of(m, row);
	size_t k0 = a->arena_len;
	int rc;
	const struct th_value *key = &row[m->key];
	if (!value_is_data(key))
		return fail(a, -TH_EBINLOG, "%s.%s: row image without a key (column %u %s)",
			    a->tables[m->table].schema, a->tables[m->table].table, m->key + 1,
			    key->kind == TH_VAL_NULL ? "is NULL" : "absent");
	if ((rc = put_value_bytes(a, key)))
		return rc;
	c->key = (const uint8_t *)(uintptr_t)k0;
	c->key_len = (uint32_t)(a->arena_len - k0);
	c->has_value = false;
	c->value = NULL;
	c->value_len = 0;
	if (with_value) {
		size_t v0 = a->arena_len;
		if (m->nvalue == 1) {
			const struct th_value *v = &row[m->value[0]];
			if (v->kind == TH_VAL_ABSENT)
				set_resync(a, TH_TXN_RESYNC_IMAGE, m->table);
			if (value_is_data(v)) {
				if ((rc = put_value_bytes(a, v)))
					return rc;
				c->has_value = true;
			}
		} else if (m->nvalue > 1) {
			for (uint32_t i = 0; i < m->nvalue; i++) {
				const struct th_value *v = &row[m->value[i]];
				if (v->kind == TH_VAL_ABSENT)
					set_resync(a, TH_TXN_RESYNC_IMAGE, m->table);
				if (!value_is_data(v)) {
					if ((rc = put_u32(a, UINT32_MAX)))
						return rc;
					continue;
				}
				size_t lenat = a->arena_len;
				if ((rc = put_u32(a, 0)) || (rc = put_value_bytes(a, v)))
					return rc;
				uint32_t n = (uint32_t)(a->arena_len - lenat - 4);
				uint8_t *o = a->arena + lenat;
				o[0] = (uint8_t)n;
				o[1] = (uint8_t)(n >> 8);
				o[2] = (uint8_t)(n >> 16);
				o[3] = (uint8_t)(n >> 24);
			}
			c->has_value = true;
		}
		if (c->has_value) {
			c->value = (const uint8_t *)(uintptr_t)v0;
			c->value_len = (uint32_t)(a->arena_len - v0);
		}
	}
	a->nchanges++;
	return 0;
}

static bool same_key(const struct th_value *x, const struct th_value *y)
{
	if (!value_is_data(y))
		return true; /* after image without the key: unchanged (MINIMAL image) */
	if (x->kind != y->kind)
		return false;
	switch (x->kind) {
	case TH_VAL_STRING: case TH_VAL_BYTES: case TH_VAL_JSON:
		return x->len == y->len && !memcmp(x->bytes, y->bytes, x->len);
	case TH_VAL_TEXT: return !strcmp(x->text, y->text);
	case TH_VAL_INT: return x->i == y->i;
	case TH_VAL_DOUBLE: return x->d == y->d;
	default: return x->u == y->u;
	}
}

/* ---- table mappings ------------------------------------------------------- */

static int find_col(const struct th_table_map *tm, const char *name, uint32_t pos, uint32_t *out)
{
	if (tm->has_names) {
		size_t n = strlen(name);
		for (uint32_t i = 0; i < tm->ncols; i++)
			if (tm->cols[i].name && tm->cols[i].name_len == n && !strncasecmp(tm->cols[i].name, name, n)) {
				*out = i;
				return 0;
			}
		return -1;
	}
	if (pos == 0 || pos > tm->ncols)
		return -1;
	*out = pos - 1;
	return 0;
}

/* Resolve tm against the config into *m. 0, or -TH_ESCHEMA. */
static int resolve(struct th_txn_asm *a, const struct th_table_map *tm, struct mapping *m)
{
	memset(m, 0, sizeof *m);
	m->table_id = tm->table_id;
	m->tm = tm;
	m->table = -1;
	m->version = -1;
	for (size_t i = 0; i < a->ntables; i++) {
		const struct tcfg *t = &a->tables[i];
		if (strcasecmp(tm->table, t->table) || strcasecmp(tm->schema, t->schema))
			continue;
		const char *how = tm->has_names ? "no column named" : "no column names in TABLE_MAP"
			" (binlog_row_metadata=FULL) and no valid ordinal position for";
		if (find_col(tm, t->key, t->key_pos, &m->key))
			return fail(a, -TH_ESCHEMA, "%s.%s: %s '%s'", t->schema, t->table, how, t->key);
		for (uint32_t k = 0; k < t->nvalue; k++)
			if (find_col(tm, t->value[k], t->value_pos[k], &m->value[k]))
				return fail(a, -TH_ESCHEMA, "%s.%s: %s '%s'", t->schema, t->table, how, t->value[k]);
		m->nvalue = t->nvalue;
		if (t->version) {
			uint32_t v;
			if (find_col(tm, t->version, t->version_pos, &v))
				return fail(a, -TH_ESCHEMA, "%s.%s: %s '%s'", t->schema, t->table, how, t->version);
			m->version = v;
		}
		m->table = (int32_t)i;
		return 0;
	}
	return 0;
}

/* The mapping for a row event's table: NULL when not watched. */
static int lookup(struct th_txn_asm *a, const struct th_table_map *tm, struct mapping **out)
{
	if (tm == a->last_tm && tm->table_id == a->last_table_id) {
		*out = a->last_map;
		return 0;
	}
	struct mapping m;
	int rc = resolve(a, tm, &m);
	if (rc)
		return rc;
	struct mapping *slot = NULL;
	for (size_t i = 0; i < a->nmaps; i++)
		if (a->maps[i].table_id == tm->table_id)
			slot = &a->maps[i];
	if (m.table >= 0) {
		if (!slot) {
			if (th_grow((void **)&a->maps, &a->maps_cap, a->nmaps + 1, sizeof *a->maps))
				return -ENOMEM;
			slot = &a->maps[a->nmaps++];
		}
		*slot = m;
		if (tm->ncols > a->values_cap) {
			struct th_value *q = realloc(a->after, tm->ncols * sizeof *q);
			if (!q)
				return -ENOMEM;
			a->after = q;
			struct th_value *b = realloc(a->before, tm->ncols * sizeof *b);
			if (!b)
				return -ENOMEM;
			a->before = b;
			a->values_cap = tm->ncols;
		}
	} else if (slot) {
		/* the table_id now names an unwatched table */
		*slot = a->maps[--a->nmaps];
		slot = NULL;
	}
	a->last_tm = tm;
	a->last_table_id = tm->table_id;
	a->last_map = slot;
	*out = slot;
	return 0;
}

static int rows_event(struct th_txn_asm *a, const struct th_binlog_event *ev)
{
	const struct th_ev_rows *rw = &ev->u.rows;
	if (!rw->tm)
		return 0; /* the dummy end-of-statement event */
	struct mapping *m;
	int rc = lookup(a, rw->tm, &m);
	if (rc)
		return rc;
	if (!m) {
		a->stats.skipped_row_events++;
		return 0;
	}
	if (!a->in_txn) {
		begin_txn(a);
		a->partial = true;
		a->body = true;
		set_resync(a, TH_TXN_RESYNC_PARTIAL, -1);
	}
	struct th_binlog_row_iter it;
	th_binlog_rows_begin(&it, ev);
	/* Decode only the mapped columns: the rest of a row (timestamps above
	 * all) would cost more to render than everything we keep. */
	uint8_t wanted[(TH_TXN_WANTED_MAX_COLS + 7) / 8];
	if (rw->tm->ncols <= TH_TXN_WANTED_MAX_COLS) {
		memset(wanted, 0, (rw->tm->ncols + 7) / 8);
		wanted[m->key >> 3] |= (uint8_t)(1u << (m->key & 7));
		for (uint32_t k = 0; k < m->nvalue; k++)
			wanted[m->value[k] >> 3] |= (uint8_t)(1u << (m->value[k] & 7));
		if (m->version >= 0)
			wanted[m->version >> 3] |= (uint8_t)(1u << (m->version & 7));
		it.wanted = wanted;
	}
	struct th_value *before = a->before, *after = a->after;
	uint32_t rows = 0;
	for (;;) {
		rc = th_binlog_rows_next(&it, before, after);
		if (rc == 0)
			break;
		if (rc < 0)
			return fail(a, rc, "%s.%s at %" PRIu64 ": row %u does not decode: %s", rw->tm->schema,
				    rw->tm->table, ev->pos, it.index + 1, th_strerror(rc));
		rows++;
		switch (ev->kind) {
		case TH_EVK_WRITE_ROWS:
			rc = add_change(a, m, after, true);
			break;
		case TH_EVK_DELETE_ROWS:
			rc = add_change(a, m, before, false);
			break;
		default: /* UPDATE, PARTIAL_UPDATE */
			if (!same_key(&before[m->key], &after[m->key]) && (rc = add_change(a, m, before, false)))
				break;
			if (!value_is_data(&after[m->key]))
				after[m->key] = before[m->key];
			rc = add_change(a, m, after, true);
			break;
		}
		if (rc)
			return rc;
	}
	a->txn.rows += rows;
	a->stats.rows += rows;
	return 0;
}

/* ---- commit --------------------------------------------------------------- */

static int commit(struct th_txn_asm *a, const struct th_binlog_event *ev, const struct th_txn **out)
{
	struct th_txn *t = &a->txn;
	int rc;
	if (t->has_gtid) {
		if (t->flavor == TH_BINLOG_FLAVOR_MARIADB)
			rc = th_gtid_pos_update(a->gpos, &t->maria);
		else
			rc = th_gtid_set_add(a->gset, t->uuid, t->gno);
		if (rc) {
			clear_txn(a);
			return fail(a, rc, "GTID %s: cannot add it to the resume position", t->gtid);
		}
	}
	if (!t->commit_us)
		t->commit_us = (uint64_t)ev->timestamp * 1000000u;
	if (a->partial && !t->resync)
		set_resync(a, TH_TXN_RESYNC_PARTIAL, -1);
	memcpy(a->resume_file, a->cur_file, sizeof a->resume_file);
	a->resume_pos = a->outer_end;
	t->file = a->resume_file;
	t->end_pos = a->resume_pos;
	if (t->flavor == TH_BINLOG_FLAVOR_UNKNOWN)
		t->flavor = a->flavor;
	for (size_t i = 0; i < a->nchanges; i++) {
		struct th_txn_change *c = &a->changes[i];
		c->key = a->arena + (uintptr_t)c->key;
		if (c->has_value)
			c->value = a->arena + (uintptr_t)c->value;
	}
	t->changes = a->changes;
	t->nchanges = a->nchanges;
	t->seq = ++a->stats.txns;
	a->stats.changes += a->nchanges;
	if (t->resync)
		a->stats.resyncs++;
	a->in_txn = false;
	a->delivered = true;
	*out = t;
	return 1;
}

/* A transaction made of this one event (incident, lone query outside a txn). */
static void begin_lone(struct th_txn_asm *a)
{
	if (!a->in_txn)
		begin_txn(a);
}

static void gtid_event(struct th_txn_asm *a, const struct th_binlog_event *ev)
{
	const struct th_ev_gtid *g = &ev->u.gtid;
	begin_txn(a);
	struct th_txn *t = &a->txn;
	if (g->mariadb) {
		a->flavor = TH_BINLOG_FLAVOR_MARIADB;
		t->flavor = TH_BINLOG_FLAVOR_MARIADB;
		t->has_gtid = true;
		t->maria.domain_id = g->domain_id;
		t->maria.server_id = g->server_id;
		t->maria.seq_no = g->seq_no;
		/* MariaDB writes no BEGIN: a non-standalone GTID opens the body */
		a->body = !(g->flags2 & TH_MARIA_GTID_STANDALONE);
		a->xa_prepare = g->flags2 & TH_MARIA_GTID_PREPARED_XA;
	} else {
		if (a->flavor == TH_BINLOG_FLAVOR_UNKNOWN)
			a->flavor = TH_BINLOG_FLAVOR_MYSQL;
		t->flavor = TH_BINLOG_FLAVOR_MYSQL;
		if (ev->kind == TH_EVK_GTID) {
			t->has_gtid = true;
			memcpy(t->uuid, g->uuid, 16);
			t->gno = (uint64_t)g->gno;
		}
		if (g->has_commit_ts)
			t->commit_us = g->immediate_commit_us;
	}
	if (t->has_gtid)
		th_binlog_gtid_format(g, t->gtid, sizeof t->gtid);
}

static int query_event(struct th_txn_asm *a, const struct th_binlog_event *ev, const struct th_txn **out)
{
	const struct th_ev_query *q = &ev->u.query;
	const char *s = q->query;
	size_t n = q->query_len;
	if (query_is(s, n, "BEGIN") || query_is(s, n, "XA START") || query_is(s, n, "XA BEGIN")) {
		if (!a->in_txn || a->body)
			begin_txn(a); /* pre-GTID servers: BEGIN is the start */
		a->body = true;
		return 0;
	}
	if (query_is(s, n, "COMMIT") || query_is(s, n, "ROLLBACK")) {
		/* ROLLBACK is logged only for a transaction whose non-transactional
		   changes stay: its row events happened */
		if (!a->in_txn)
			return 0;
		return commit(a, ev, out);
	}
	if (query_is(s, n, "XA END") || query_is(s, n, "SAVEPOINT") || query_is(s, n, "ROLLBACK TO"))
		return 0;
	if (query_is(s, n, "XA PREPARE")) {
		/* MariaDB: the prepared part ends here; its changes apply at XA COMMIT */
		if (!a->in_txn)
			return 0;
		if (a->nchanges || a->txn.resync)
			a->xa_watched_pending = true;
		a->nchanges = 0;
		a->arena_len = 0;
		a->txn.rows = 0;
		memset(&a->txn.reason, 0, sizeof a->txn.reason);
		a->txn.resync = false;
		a->txn.resync_table = -1;
		return commit(a, ev, out);
	}
	bool lone = !a->in_txn || !a->body;
	begin_lone(a);
	if (query_is(s, n, "XA COMMIT") && a->xa_watched_pending)
		set_resync(a, TH_TXN_RESYNC_XA, -1);
	bool dml;
	int hit = query_match(a->tables, a->ntables, s, n, q->db ? q->db : "", q->db ? q->db_len : 0, &dml);
	if (hit >= 0)
		set_resync(a, dml ? TH_TXN_RESYNC_STATEMENT : TH_TXN_RESYNC_DDL, hit);
	if (lone)
		return commit(a, ev, out);
	return 0;
}

static void merge_gtid_list(struct th_txn_asm *a, const struct th_ev_gtid_list *gl)
{
	const uint8_t *p = gl->data;
	for (uint32_t i = 0; i < gl->count; i++, p += 16) {
		struct th_maria_gtid g = {
			.domain_id = th_le32(p),
			.server_id = th_le32(p + 4),
			.seq_no = th_le64(p + 8),
		};
		if (!th_gtid_pos_contains(a->gpos, &g))
			(void)th_gtid_pos_update(a->gpos, &g); /* best effort: only widens */
	}
}

int th_txn_feed(struct th_txn_asm *a, const struct th_binlog_event *ev, const struct th_txn **out)
{
	*out = NULL;
	a->stats.events++;
	if (a->delivered) {
		/* the last transaction's memory is released only now (txn.h: Memory) */
		a->delivered = false;
		clear_txn(a);
	}
	if (!ev->in_payload)
		a->outer_end = ev->log_pos ? ev->log_pos : ev->pos + ev->size;
	if (ev->skipped)
		return 0;
	int rc = 0;
	switch (ev->kind) {
	case TH_EVK_WRITE_ROWS:
	case TH_EVK_UPDATE_ROWS:
	case TH_EVK_DELETE_ROWS:
	case TH_EVK_PARTIAL_UPDATE_ROWS:
		rc = rows_event(a, ev);
		break;
	case TH_EVK_TABLE_MAP:
		/* a new map may sit where an old one was: drop the one-entry cache */
		a->last_tm = NULL;
		a->last_map = NULL;
		break;
	case TH_EVK_GTID:
	case TH_EVK_ANONYMOUS_GTID:
		gtid_event(a, ev);
		break;
	case TH_EVK_XID:
		if (a->in_txn)
			return commit(a, ev, out);
		break;
	case TH_EVK_XA_PREPARE:
		if (!a->in_txn)
			break;
		if (!ev->u.xa_prepare.one_phase) {
			if (a->nchanges || a->txn.resync)
				a->xa_watched_pending = true;
			a->nchanges = 0;
			a->arena_len = 0;
			a->txn.rows = 0;
			a->txn.resync = false;
			a->txn.reason = TH_TXN_RESYNC_NONE;
			a->txn.resync_table = -1;
		}
		return commit(a, ev, out);
	case TH_EVK_QUERY:
		return query_event(a, ev, out);
	case TH_EVK_INCIDENT:
		begin_lone(a);
		set_resync(a, TH_TXN_RESYNC_INCIDENT, -1);
		return commit(a, ev, out);
	case TH_EVK_ROTATE:
		if (ev->u.rotate.name_len >= FILE_MAX)
			return fail(a, -TH_EBINLOG, "ROTATE to a file name of %u bytes", ev->u.rotate.name_len);
		set_name(a->cur_file, ev->u.rotate.name, ev->u.rotate.name_len);
		a->outer_end = ev->u.rotate.position;
		if (!a->in_txn) {
			memcpy(a->resume_file, a->cur_file, sizeof a->resume_file);
			a->resume_pos = a->outer_end;
		}
		break;
	case TH_EVK_FORMAT_DESCRIPTION:
		if (ev->u.fde.flavor != TH_BINLOG_FLAVOR_UNKNOWN)
			a->flavor = ev->u.fde.flavor;
		/* a new file or connection: its table ids start afresh */
		forget_maps(a);
		break;
	case TH_EVK_PREVIOUS_GTIDS:
		if (!a->in_txn) {
			const struct th_ev_previous_gtids *pg = &ev->u.prev_gtids;
			struct th_buf enc = TH_BUF_INIT;
			/* th_gtid_set_decode wants the count too: rebuild the encoding */
			uint8_t cnt[8];
			for (int k = 0; k < 8; k++)
				cnt[k] = (uint8_t)(pg->n_sids >> (8 * k));
			th_buf_append(&enc, cnt, 8);
			th_buf_append(&enc, pg->data, pg->len);
			if (th_buf_failed(&enc))
				return -ENOMEM;
			rc = th_gtid_set_decode(a->gset, (const uint8_t *)enc.data, enc.len, NULL);
			th_buf_free(&enc);
			if (rc)
				return fail(a, rc, "PREVIOUS_GTIDS at %" PRIu64 " does not decode", ev->pos);
		}
		break;
	case TH_EVK_GTID_LIST:
		a->flavor = TH_BINLOG_FLAVOR_MARIADB;
		if (!a->in_txn)
			merge_gtid_list(a, &ev->u.gtid_list);
		break;
	default:
		break;
	}
	if (rc < 0) {
		if (a->in_txn)
			a->stats.dropped++;
		clear_txn(a);
	}
	return rc;
}
