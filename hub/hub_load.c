/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The consistent load of the watched tables (publisher thread; see
 * hub_publisher.h, and README "The hub").
 *
 * Consistent load (no change lost, none applied twice):
 *   MariaDB: one connection, REPEATABLE READ,
 *              START TRANSACTION WITH CONSISTENT SNAPSHOT;
 *              SHOW STATUS LIKE 'binlog_snapshot_%';   -- file, position
 *              SELECT ... FROM each watched table;
 *              COMMIT; SELECT BINLOG_GTID_POS(file, position);
 *            MariaDB takes the InnoDB read view and the binlog position
 *            under the same commit lock, so the snapshot holds exactly the
 *            transactions before that position: no lock on writers.
 *   MySQL 8: a second connection takes LOCK TABLES <watched> READ (it waits
 *            for writers of those tables to commit and holds new ones off),
 *            reads @@global.gtid_executed, the first connection starts
 *            START TRANSACTION WITH CONSISTENT SNAPSHOT, the second UNLOCKs.
 *            Writers to other tables are never blocked; writers to the
 *            watched tables for the length of two round trips. (Not tested
 *            here: no MySQL server in the test environment.)
 * The stream then starts at that GTID position: every transaction after the
 * snapshot is in the stream, none before it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/th_buf.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "hub/hub_log.h"
#include "hub/hub_publisher.h"
#include "readers/gtid.h"

/* ---- consistent load ----------------------------------------------------- */

/* Ordinal positions of the configured columns (for servers that log no
 * column names). A missing table is fine (empty; its CREATE will resync);
 * a table lacking a configured column is -TH_ESCHEMA. */
static int fetch_positions(struct th__pub *p, MYSQL *m, const struct th_hub_source *s, bool *exists, char *err,
			   size_t len)
{
	for (size_t i = 0; i < p->cfg->ntables; i++) {
		struct th_txn_table *t = &p->tables[i];
		*t = p->cfg->tables[i];
		struct th_buf q = TH_BUF_INIT;
		char esc_s[256], esc_t[256];
		const char *schema = th__pub_table_schema(p, i);
		if (strlen(schema) > 120 || strlen(t->table) > 120) {
			snprintf(err, len, "%s: schema or table name too long", s->name);
			return -EINVAL;
		}
		mysql_real_escape_string(m, esc_s, schema, (unsigned long)strlen(schema));
		mysql_real_escape_string(m, esc_t, t->table, (unsigned long)strlen(t->table));
		th_buf_printf(&q,
			      "SELECT COLUMN_NAME, ORDINAL_POSITION FROM information_schema.COLUMNS "
			      "WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s'",
			      esc_s, esc_t);
		if (th_buf_failed(&q) || mysql_query(m, th_buf_cstr(&q)) != 0) {
			snprintf(err, len, "%s: information_schema.COLUMNS: %s (%u)", s->name, mysql_error(m),
				 mysql_errno(m));
			th_buf_free(&q);
			return -TH_EMYSQL;
		}
		th_buf_free(&q);
		MYSQL_RES *r = mysql_store_result(m);
		MYSQL_ROW row;
		exists[i] = false;
		while (r && (row = mysql_fetch_row(r)) != NULL) {
			if (!row[0] || !row[1])
				continue;
			exists[i] = true;
			uint32_t pos = (uint32_t)strtoul(row[1], NULL, 10);
			if (!strcasecmp(row[0], t->key))
				t->key_pos = pos;
			for (int k = 0; k < TH_TXN_MAX_VALUE_COLS; k++)
				if (t->value[k] && !strcasecmp(row[0], t->value[k]))
					t->value_pos[k] = pos;
			if (t->version && !strcasecmp(row[0], t->version))
				t->version_pos = pos;
		}
		if (r)
			mysql_free_result(r);
		if (!exists[i])
			continue;
		const char *missing = !t->key_pos ? t->key : NULL;
		for (int k = 0; !missing && k < TH_TXN_MAX_VALUE_COLS; k++)
			if (t->value[k] && !t->value_pos[k])
				missing = t->value[k];
		if (!missing && t->version && !t->version_pos)
			missing = t->version;
		if (missing) {
			snprintf(err, len, "%s: table %s.%s has no column '%s' (configured in [table %s])", s->name,
				 schema, t->table, missing, t->table);
			return -TH_ESCHEMA;
		}
	}
	return 0;
}

/* SELECTs one table inside the snapshot transaction into the state. */
static int load_table(struct th__pub *p, MYSQL *m, const struct th_hub_source *s, size_t ti, uint64_t rev,
		      uint64_t *rows, uint64_t *changed, char *err, size_t len)
{
	const struct th_txn_table *t = &p->tables[ti];
	struct th_buf q = TH_BUF_INIT;
	int nval = 0;
	th_buf_puts(&q, "SELECT ");
	th__pub_put_ident(&q, t->key);
	for (; nval < TH_TXN_MAX_VALUE_COLS && t->value[nval]; nval++) {
		th_buf_puts(&q, ", ");
		th__pub_put_ident(&q, t->value[nval]);
	}
	if (t->version) {
		th_buf_puts(&q, ", ");
		th__pub_put_ident(&q, t->version);
	}
	th_buf_puts(&q, " FROM ");
	th__pub_put_ident(&q, th__pub_table_schema(p, ti));
	th_buf_putc(&q, '.');
	th__pub_put_ident(&q, t->table);
	if (th_buf_failed(&q)) {
		th_buf_free(&q);
		return -ENOMEM;
	}
	int rc = 0;
	if (mysql_query(m, th_buf_cstr(&q)) != 0) {
		snprintf(err, len, "%s: %.200s: %s (%u)", s->name, th_buf_cstr(&q), mysql_error(m), mysql_errno(m));
		th_buf_free(&q);
		return -TH_EMYSQL;
	}
	th_buf_free(&q);
	/* Streamed row by row: tables may be large; values up to 16 MiB. */
	MYSQL_RES *r = mysql_use_result(m);
	if (!r) {
		snprintf(err, len, "%s: reading %s: %s (%u)", s->name, t->table, mysql_error(m), mysql_errno(m));
		return -TH_EMYSQL;
	}
	struct th_buf val = TH_BUF_INIT;
	MYSQL_ROW row;
	rcu_read_lock();
	while ((row = mysql_fetch_row(r)) != NULL) {
		unsigned long *lens = mysql_fetch_lengths(r);
		if (!row[0] || lens[0] > UINT32_MAX)
			continue;
		const void *value;
		size_t value_len;
		uint32_t flags = 0;
		if (nval == 1) {
			value = row[1] ? row[1] : "";
			value_len = row[1] ? lens[1] : 0;
			if (!row[1])
				flags = TH_CHANGE_F_VALUE_NULL;
		} else {
			/* The serialisation of txn.h: per column u32 LE length
			 * (0xffffffff for NULL), then the bytes. */
			th_buf_reset(&val);
			for (int k = 0; k < nval; k++) {
				uint32_t l = row[1 + k] ? (uint32_t)lens[1 + k] : 0xffffffffu;
				uint8_t le[4] = { (uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24) };
				th_buf_append(&val, le, 4);
				if (row[1 + k])
					th_buf_append(&val, row[1 + k], lens[1 + k]);
			}
			if (th_buf_failed(&val)) {
				rc = -ENOMEM;
				break;
			}
			value = val.data;
			value_len = val.len;
		}
		if (value_len > UINT32_MAX) {
			rc = -TH_ETOOBIG;
			break;
		}
		int64_t version = t->version && row[1 + nval] ? strtoll(row[1 + nval], NULL, 10) : 0;
		bool ch;
		rc = th_state_put(p->h->state, (uint32_t)ti, row[0], (uint32_t)lens[0], value, (uint32_t)value_len,
				  flags, version, rev, p->mark, &ch);
		if (rc < 0)
			break;
		(*rows)++;
		*changed += ch;
	}
	rcu_read_unlock();
	th_buf_free(&val);
	if (rc == 0 && mysql_errno(m)) {
		snprintf(err, len, "%s: reading %s: %s (%u)", s->name, t->table, mysql_error(m), mysql_errno(m));
		rc = -TH_EMYSQL;
	}
	mysql_free_result(r);
	if (rc < 0 && !err[0])
		snprintf(err, len, "%s: loading %s: %s", s->name, t->table, th_strerror(rc));
	return rc;
}

/* MySQL 8: hold the watched tables still while the snapshot starts. */
static int mysql_snapshot_start(struct th__pub *p, MYSQL *m, const struct th_hub_source *s, const bool *exists,
				char *gtid, size_t gtid_len, char *err, size_t len)
{
	MYSQL *lk = th__pub_sql_connect(p, s, err, len);
	if (!lk)
		return -TH_EMYSQL;
	struct th_buf q = TH_BUF_INIT;
	th_buf_puts(&q, "LOCK TABLES ");
	bool any = false;
	for (size_t i = 0; i < p->cfg->ntables; i++) {
		if (!exists[i])
			continue;
		if (any)
			th_buf_puts(&q, ", ");
		th__pub_put_ident(&q, th__pub_table_schema(p, i));
		th_buf_putc(&q, '.');
		th__pub_put_ident(&q, p->tables[i].table);
		th_buf_puts(&q, " READ");
		any = true;
	}
	int rc = th_buf_failed(&q) ? -ENOMEM : 0;
	if (!rc && any)
		rc = th__pub_sql_exec(lk, s->name, th_buf_cstr(&q), err, len);
	th_buf_free(&q);
	if (!rc) {
		/* gtid_executed can be long; read it whole. */
		if (mysql_query(lk, "SELECT @@global.gtid_executed") != 0) {
			snprintf(err, len, "%s: gtid_executed: %s", s->name, mysql_error(lk));
			rc = -TH_EMYSQL;
		} else {
			MYSQL_RES *r = mysql_store_result(lk);
			MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
			unsigned long *lens = row ? mysql_fetch_lengths(r) : NULL;
			if (!row || !row[0] || lens[0] >= gtid_len) {
				snprintf(err, len, "%s: gtid_executed unreadable or longer than %zu", s->name, gtid_len);
				rc = -TH_EMYSQL;
			} else {
				memcpy(gtid, row[0], lens[0]);
				gtid[lens[0]] = '\0';
			}
			if (r)
				mysql_free_result(r);
		}
	}
	if (!rc)
		rc = th__pub_sql_exec(m, s->name, "START TRANSACTION WITH CONSISTENT SNAPSHOT", err, len);
	if (any)
		th__pub_sql_exec(lk, s->name, "UNLOCK TABLES", err, len);
	mysql_close(lk);
	return rc;
}

/*
 * Validate server s and load the watched tables and the binlog position
 * consistently into the state (changed rows get a new revision, vanished rows
 * are deleted), publish a RESYNC record, and make the loaded position the
 * resume position. 0, -TH_ESERVER / -TH_ESCHEMA (misconfigured), or another
 * negative code (try again later). Message in err.
 */
int th__pub_load(struct th__pub *p, const struct th_hub_source *s, char *err, size_t len)
{
	struct th_hub *h = p->h;
	uint64_t t0 = th_now_ns();
	MYSQL *m = th__pub_sql_connect(p, s, err, len);
	if (!m)
		return -TH_EMYSQL;
	bool mariadb = false;
	bool exists[TH_HUB_MAX_TABLES];
	char gtid[65536];
	char file[256] = "";
	uint64_t fpos = 0;
	int rc = th__pub_validate(p, m, s, &mariadb, err, len);
	if (!rc)
		rc = fetch_positions(p, m, s, exists, err, len);
	/* Bytes as stored (no charset conversion: they must equal the binlog's),
	 * temporal values in UTC (as the binlog decoder renders them). */
	if (!rc)
		rc = th__pub_sql_exec(m, s->name,
			      "SET SESSION character_set_results = binary, SESSION time_zone = '+00:00'", err, len);
	if (!rc)
		rc = th__pub_sql_exec(m, s->name, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", err, len);
	if (rc)
		goto out;
	if (mariadb) {
		rc = th__pub_sql_exec(m, s->name, "START TRANSACTION WITH CONSISTENT SNAPSHOT", err, len);
		char v[2][256];
		if (!rc)
			rc = th__pub_sql_row(m, s->name,
				     "SELECT (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE "
				     "VARIABLE_NAME = 'BINLOG_SNAPSHOT_FILE'), (SELECT VARIABLE_VALUE FROM "
				     "information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'BINLOG_SNAPSHOT_POSITION')",
				     v, NULL, 2, err, len);
		if (!rc) {
			snprintf(file, sizeof file, "%s", v[0]);
			fpos = strtoull(v[1], NULL, 10);
		}
	} else {
		rc = mysql_snapshot_start(p, m, s, exists, gtid, sizeof gtid, err, len);
	}
	if (rc)
		goto out;

	uint64_t rev = p->next_rev++;
	uint64_t rows = 0, changed = 0, deleted;
	p->mark++;
	/* A snapshot that sees any of the load names rev as pending
	 * (hub_internal.h); its client then waits for the RESYNC at rev. */
	th_store_relaxed(&h->applying_revision, rev);
	th_fence_seq_cst();
	for (size_t i = 0; i < p->cfg->ntables && rc == 0; i++) {
		if (!exists[i])
			continue;
		rc = load_table(p, m, s, i, rev, &rows, &changed, err, len);
	}
	if (!rc)
		rc = th__pub_sql_exec(m, s->name, "COMMIT", err, len);
	if (rc) {
		/* The state may hold part of this load with revision rev: publish
		 * nothing (readers never saw rev), and reload again later. */
		goto out;
	}
	if (mariadb) {
		struct th_buf q = TH_BUF_INIT;
		char esc[600];
		mysql_real_escape_string(m, esc, file, (unsigned long)strlen(file));
		th_buf_printf(&q, "SELECT BINLOG_GTID_POS('%s', %" PRIu64 ")", esc, fpos);
		char v[1][256];
		bool null;
		rc = th__pub_sql_row(m, s->name, th_buf_cstr(&q), v, &null, 1, err, len);
		th_buf_free(&q);
		if (!rc && null) {
			snprintf(err, len, "%s: BINLOG_GTID_POS('%s', %" PRIu64 ") is NULL", s->name, file, fpos);
			rc = -TH_EMYSQL;
		}
		if (rc)
			goto out;
		snprintf(gtid, sizeof gtid, "%s", v[0]);
	}
	rcu_read_lock();
	deleted = th_state_sweep(h->state, p->mark);
	rcu_read_unlock();

	/* A new assembler: the tables' ordinal positions may have changed. */
	struct th_txn_config tc = {
		.size = sizeof tc, .schema = p->cfg->schema, .tables = p->tables, .ntables = p->cfg->ntables
	};
	struct th_txn_asm *a;
	rc = th_txn_asm_new(&a, &tc);
	if (!rc && (rc = th_txn_set_position(a, gtid, file[0] ? file : NULL, fpos)) < 0)
		th_txn_free(a);
	if (rc) {
		snprintf(err, len, "%s: position '%.200s': %s", s->name, gtid, th_strerror(rc));
		goto out;
	}
	th_txn_free(p->asm_);
	p->asm_ = a;
	p->flavor = mariadb ? TH_BINLOG_FLAVOR_MARIADB : TH_BINLOG_FLAVOR_MYSQL;

	/* (b) and (c): readers learn that continuity was lost at rev, on every
	 * table: the snapshot holds every transaction that committed before it,
	 * on any table, including those after the event that caused the reload
	 * (DDL or a statement-logged change names one table; writers of the
	 * others went on). Those were never streamed, so they are not in the
	 * ring. Publishing them instead (the rows the load changed or swept)
	 * would fold several transactions into one revision without their
	 * GTIDs and could exceed the ring; a RESYNC of all tables is exact and
	 * costs each watch one snapshot per reload, which is rare (issue 14). */
	th__pub_publish_resync(p, rev, p->reload_reason, UINT32_MAX);
	th_store_release(&h->published_revision, rev);
	th__pub_publish_pos(p, rev);
	th_fetch_add_relaxed(&h->st_reloads, 1);
	th_log_info("loaded %" PRIu64 " rows from %s (%" PRIu64 " changed, %" PRIu64
		    " deleted) at revision %" PRIu64 ", GTID position '%s' (%s:%" PRIu64 ") in %.1f ms",
		    rows, s->name, changed, deleted, rev, gtid, file[0] ? file : "-", fpos,
		    (double)(th_now_ns() - t0) / 1e6);
out:
	mysql_close(m);
	return rc;
}

