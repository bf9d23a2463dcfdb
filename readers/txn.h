/* SPDX-License-Identifier: Apache-2.0 */
/*
 * txn.h: decoded binlog events in, whole transactions of topo changes out.
 *
 * The transaction assembler (struct th_txn_asm) is fed every event of a
 * stream in order (from th_binlog_file_next(), or from th_binlog_decode() and
 * th_binlog_payload_next() on a live source's packets). It groups them into
 * transactions and maps the row changes of the watched tables to topo
 * changes: {table, key, value, version, put | delete}. A transaction is
 * delivered whole, at its commit, never before:
 *
 *   begins with  MySQL GTID / ANONYMOUS_GTID, MariaDB GTID, or a BEGIN query
 *   ends with    XID, a COMMIT (or ROLLBACK) query, a non-one-phase XA
 *                prepare (delivered without its changes, see caveats), or,
 *                when no BEGIN opened a body (MySQL DDL after its GTID,
 *                MariaDB standalone GTID, pre-GTID servers), the single
 *                QUERY that is the whole transaction.
 * Events inside a TRANSACTION_PAYLOAD belong to the transaction that the
 * payload carries (feed them like any other: th_binlog_file_next() yields
 * them; a live caller iterates th_binlog_payload_next()).
 *
 * Mapping (struct th_txn_table): a watched table is schema.table with a key
 * column, zero to four value columns and an optional version column.
 *   - Columns are found by name (case-insensitive) in the TABLE_MAP's
 *     optional metadata (binlog_row_metadata=FULL). When the server logs no
 *     names (MINIMAL), by their ordinal positions given in the config
 *     (1-based, as information_schema.COLUMNS.ORDINAL_POSITION: the hub
 *     fetches them from information_schema at startup and after each
 *     resync). A watched table whose columns cannot be found is -TH_ESCHEMA.
 *   - Key and value bytes: strings and blobs as stored (binary JSON for a
 *     MySQL JSON column), DECIMAL and temporal values as MySQL's text,
 *     numbers as decimal text.
 *   - Value with one value column: its bytes; SQL NULL gives has_value false.
 *     With two or more (topo_elections: leader_id, contents) the value is a
 *     small serialisation, per column in order: a u32 little-endian length
 *     (0xffffffff for SQL NULL, then no bytes) followed by the bytes. So a
 *     watcher of an election sees the leader and the contents change
 *     together, and can tell "no contents" from "empty contents".
 *   - Version: the integer column's value, 0 with no version column or NULL.
 *   - WRITE -> put; DELETE -> delete (key and version of the before image,
 *     no value); UPDATE -> put, or, when it changes the key, a delete of the
 *     old key and then a put of the new one.
 * Row events of tables not watched are skipped by schema.table (one compare
 * per row event, cached per TABLE_MAP); their images are not decoded.
 *
 * Resync: a transaction may come with resync set (and why): the state of a
 * watched table changed in a way row images do not describe. Reasons: DDL
 * naming a watched table (ALTER, RENAME, TRUNCATE, DROP, CREATE; with or
 * without schema and backquotes, any case; comments skipped, MySQL's
 * executable version comments read) or DROP/CREATE DATABASE of a watched schema; a DML statement
 * logged as a QUERY (binlog_format STATEMENT/MIXED) naming a watched table;
 * an INCIDENT event (the server says events were lost); row events met
 * outside any transaction (the stream started mid-transaction); an after
 * image without a value column (binlog_row_image=NOBLOB/MINIMAL); the commit
 * of an XA transaction while a prepared XA with watched changes is pending.
 * The signal travels in order with the transactions: it is the transaction
 * itself (a DDL transaction has a GTID and no changes). The match errs on the
 * safe side: an identifier equal to a watched table's name anywhere in a DDL
 * statement (a column named topo_data) is a match; `topo_data2` and text in
 * comments or string literals are not.
 *
 * Resume position: the GTID set (MySQL) or GTID position (MariaDB) and the
 * file:pos after the last delivered transaction. They advance only when a
 * transaction is delivered (and file:pos also at a ROTATE between
 * transactions), so they never include a half-seen transaction; PREVIOUS_GTIDS
 * and GTID_LIST events seen between transactions are merged in (they name
 * transactions before the stream).
 *
 * Memory: a delivered transaction, its changes and the bytes they point to
 * belong to the assembler and stay valid until the next th_txn_feed(),
 * th_txn_reset() or th_txn_free(). Key and value bytes are copied out of the
 * events (the decoder reuses its buffers), into buffers that are kept and
 * grown: no allocation per row once they are big enough.
 *
 * Caveats:
 *   - XA: the changes of a prepared XA transaction are dropped at the prepare
 *     (its GTID is delivered, without changes); if it touched a watched
 *     table, every later XA COMMIT is delivered with resync set (sticky: XA
 *     ids are not matched), so the hub rereads the tables after the commit.
 *   - DDL matching reads the statement text; a watched table changed by a
 *     stored routine or view that the DDL does not name is not seen.
 *   - Statement-based DML is not decoded: it is a resync.
 *
 * Threads: an assembler is used by one thread at a time (the reader thread);
 * it shares nothing with other assemblers. Read the resume position between
 * th_txn_feed() calls from that thread and hand it on with the transaction.
 * After fork(), only one process may go on using a handle.
 */
#ifndef TH_TXN_H
#define TH_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "readers/binlog.h"
#include "readers/gtid.h"
#include "common/th_buf.h"

#define TH_TXN_MAX_VALUE_COLS 4

/* One watched table. Strings are copied by th_txn_asm_new(). */
struct th_txn_table {
	const char *schema;          /* NULL: th_txn_config.schema */
	const char *table;
	const char *key;             /* key column name */
	const char *value[TH_TXN_MAX_VALUE_COLS]; /* value column names; unused NULL */
	const char *version;         /* version column name, or NULL */
	/* Ordinal positions (1-based; 0 = unknown) used only when the TABLE_MAP
	   carries no column names: key_pos, value_pos[i] for value[i], version_pos. */
	uint32_t key_pos;
	uint32_t value_pos[TH_TXN_MAX_VALUE_COLS];
	uint32_t version_pos;
};

struct th_txn_config {
	size_t size;                 /* sizeof(struct th_txn_config) */
	const char *schema;          /* NULL: "topo" */
	/* Watched tables; NULL: the three mysqltopo tables (th_txn_mysqltopo_tables). */
	const struct th_txn_table *tables;
	size_t ntables;              /* at most 64 */
};

/*
 * The mysqltopo tables of DESIGN.md, indexes 0, 1, 2:
 *   0 topo_data       key path, value data, version version
 *   1 topo_locks      key path, value contents
 *   2 topo_elections  key name, value (leader_id, contents) serialised
 * with schema NULL (the config's) and no ordinal positions. Static, read-only.
 */
const struct th_txn_table *th_txn_mysqltopo_tables(size_t *ntables);

enum th_txn_op {
	TH_TXN_PUT = 1,
	TH_TXN_DELETE = 2,
};

/* One change to one watched row. */
struct th_txn_change {
	uint32_t table;              /* index into the config's tables */
	uint8_t op;                  /* enum th_txn_op */
	bool has_value;              /* false: delete, or a SQL NULL single value */
	int64_t version;             /* 0 when none */
	const uint8_t *key;
	uint32_t key_len;
	const uint8_t *value;        /* has_value: value_len bytes; else NULL */
	uint32_t value_len;
};

enum th_txn_resync_reason {
	TH_TXN_RESYNC_NONE = 0,
	TH_TXN_RESYNC_DDL,           /* DDL naming a watched table or its schema */
	TH_TXN_RESYNC_STATEMENT,     /* DML logged as a statement, naming a watched table */
	TH_TXN_RESYNC_INCIDENT,      /* INCIDENT event: the server lost events */
	TH_TXN_RESYNC_PARTIAL,       /* rows before any transaction start (mid-transaction start) */
	TH_TXN_RESYNC_IMAGE,         /* an after image lacks a value column */
	TH_TXN_RESYNC_XA,            /* XA COMMIT with a watched prepared XA pending */
};

/* A delivered transaction (see Memory above for lifetimes). */
struct th_txn {
	uint64_t seq;                /* 1, 2, ... in delivery order */
	enum th_binlog_flavor flavor;
	bool has_gtid;               /* false: ANONYMOUS_GTID, pre-GTID server, incident */
	char gtid[64];               /* "uuid:gno" or "domain-server-seq"; "" without */
	uint8_t uuid[16];            /* MySQL */
	uint64_t gno;
	struct th_maria_gtid maria;  /* MariaDB */
	uint64_t commit_us;          /* microseconds since the epoch: MySQL's immediate commit
					timestamp; else the commit event's timestamp */
	const struct th_txn_change *changes;
	size_t nchanges;
	uint32_t rows;               /* row images of watched tables in it */
	bool resync;
	enum th_txn_resync_reason reason;
	int32_t resync_table;        /* config index for DDL/STATEMENT, else -1 */
	const char *file;            /* resume position after this transaction */
	uint64_t end_pos;
};

struct th_txn_stats {
	uint64_t events;             /* fed */
	uint64_t txns;               /* delivered */
	uint64_t rows;               /* row images of watched tables decoded */
	uint64_t changes;            /* topo changes delivered */
	uint64_t skipped_row_events; /* row events of unwatched tables (not decoded) */
	uint64_t resyncs;            /* transactions delivered with resync */
	uint64_t dropped;            /* half-seen transactions discarded (new GTID, reset) */
};

struct th_txn_asm;

/*
 * A new assembler. cfg may be NULL (schema "topo", the mysqltopo tables).
 * Returns 0 and *out, -EINVAL (no tables / table without name or key, more
 * than 64 tables), or -ENOMEM. Free with th_txn_free().
 */
int th_txn_asm_new(struct th_txn_asm **out, const struct th_txn_config *cfg);
/* Frees it and everything it owns; NULL is fine. */
void th_txn_free(struct th_txn_asm *a);

/*
 * Feed the next event of the stream (every event, in order: TABLE_MAP and
 * ROTATE included). Returns 1 with *out set when this event completed a
 * transaction (valid until the next feed/reset/free), 0 when not, or a
 * negative code with a message in th_txn_error(): -TH_ESCHEMA (a watched
 * table's configured columns are not in its TABLE_MAP), -TH_EBINLOG /
 * -TH_EUNSUPPORTED (a row image of a watched table does not decode), -ENOMEM.
 * After an error the transaction being assembled is dropped (positions stay
 * where they were): restart the stream from the resume position.
 */
int th_txn_feed(struct th_txn_asm *a, const struct th_binlog_event *ev, const struct th_txn **out);

/*
 * Forget any half-seen transaction and the table mappings (a reconnect, or a
 * new file not continuing the last); the resume position is kept.
 */
void th_txn_reset(struct th_txn_asm *a);

/*
 * Set the resume position (where the stream about to be fed starts): gtid is
 * a MySQL GTID set or a MariaDB GTID position (NULL: keep; the flavour is
 * told by the text: "d-s-n" entries are MariaDB); file/pos name the binlog
 * file (NULL: keep). 0, -TH_EGTID (gtid malformed; nothing changed),
 * -EINVAL (file name over 511 bytes), -ENOMEM.
 */
int th_txn_set_position(struct th_txn_asm *a, const char *gtid, const char *file, uint64_t pos);

/*
 * Append the resume GTID position as text: the MySQL GTID set, or the MariaDB
 * GTID position, whichever flavour the stream is ("" when none known yet).
 * 0 or -ENOMEM.
 */
int th_txn_resume_gtid(const struct th_txn_asm *a, struct th_buf *out);
/* The resume file ("" when unknown) and position (end of the last delivered
   transaction or ROTATE). The string is valid until the next feed. */
void th_txn_resume_file(const struct th_txn_asm *a, const char **file, uint64_t *pos);
/* The MySQL GTID set and MariaDB position themselves (never NULL; read-only). */
const struct th_gtid_set *th_txn_resume_gtid_set(const struct th_txn_asm *a);
const struct th_gtid_pos *th_txn_resume_gtid_pos(const struct th_txn_asm *a);
/* Flavour of the stream, from its FORMAT_DESCRIPTION or GTID events. */
enum th_binlog_flavor th_txn_flavor(const struct th_txn_asm *a);
/* Is a transaction being assembled (events seen since its start, no commit yet)? */
bool th_txn_in_progress(const struct th_txn_asm *a);

void th_txn_stats(const struct th_txn_asm *a, struct th_txn_stats *out);
/* Message of the last error ("" when none); valid until the next call. */
const char *th_txn_error(const struct th_txn_asm *a);
/* "ddl", "statement", ...; never NULL. */
const char *th_txn_resync_reason_name(enum th_txn_resync_reason r);

/*
 * Does the statement q[0..len) (default schema db[0..db_len)) change the
 * definition or, as a logged statement, the data of table schema.table or drop
 * the schema? The test th_txn_feed() applies to QUERY events, exposed for
 * tests and tools. Pure; any thread.
 */
bool th_txn_query_names_table(const char *q, size_t len, const char *db, size_t db_len,
			      const char *schema, const char *table);

#endif
