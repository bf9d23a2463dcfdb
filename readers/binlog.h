/* SPDX-License-Identifier: Apache-2.0 */
/*
 * binlog.h: the binlog event layer. Bytes in, decoded events out.
 *
 * Reads the event stream MySQL (5.0 to 8.4) and MariaDB (5.5 to 11.x) write to
 * their binary logs and send to replicas: the v4 framing (and the v3 framing of
 * MySQL 4.x files), FORMAT_DESCRIPTION (checksum algorithm, post-header
 * lengths), CRC32 checksums, GTIDs of both flavours, TABLE_MAP with its
 * optional metadata, row events (v1, v2, MariaDB-compressed, MySQL partial
 * JSON updates), MySQL TRANSACTION_PAYLOAD (zstd) and the control events.
 *
 * Two layers:
 *   - th_binlog_decoder: one event's bytes at a time (a live source hands it
 *     each packet; the file source below hands it slices of a mapped file).
 *     It keeps the state the stream carries: the format description and the
 *     table-map cache (table_id -> struct th_table_map, see rows.h).
 *   - th_binlog_file: opens a binlog file, checks the magic, yields the events
 *     one at a time with their positions (the events inside a
 *     TRANSACTION_PAYLOAD included, marked in_payload), and optionally follows
 *     the closing ROTATE to the next file of the same folder.
 *
 * Guarantees: the decoder never reads outside the bytes it is given, never
 * guesses. A bad checksum, a truncated or inconsistent event, an unknown event
 * type without the LOG_EVENT_IGNORABLE_F flag is a negative TH_E* code (see
 * th_error.h) with a message naming the source, the position and what is
 * wrong (th_binlog_decoder_error()). An unknown ignorable event is returned
 * with kind TH_EVK_UNKNOWN and ev->skipped set. Events topohub has no use for
 * (LOAD DATA family, VIEW_CHANGE, TRANSACTION_CONTEXT, ...) are framed and
 * checksummed, and returned skipped with their kind; nothing else is decoded.
 * No allocation on the hot path: buffers are kept and grown, a TABLE_MAP whose
 * bytes equal the cached one is not parsed again.
 *
 * Caveats:
 *   - An encrypted binlog (MariaDB START_ENCRYPTION in a file) is
 *     -TH_EUNSUPPORTED: we do not decrypt.
 *   - MySQL 8.4 tagged GTIDs (GTID_TAGGED, 42) and tagged PREVIOUS_GTIDS are
 *     -TH_EUNSUPPORTED for now.
 *   - PARTIAL_UPDATE_ROWS (39): the before image is decoded fully; in the
 *     after image a JSON column written as a partial update holds MySQL's
 *     binary JSON diff, not a document: th_binlog_row_is_partial_json() says
 *     which, and the bytes are left opaque.
 *   - Before the first FORMAT_DESCRIPTION the decoder assumes the checksum
 *     setting it was given (th_binlog_decoder_set_checksum(); a replication
 *     stream starts with a fake ROTATE checksummed per @master_binlog_checksum).
 *
 * Threads: a decoder or a file is used by one thread at a time; different
 * handles are independent. After fork() a child may use a copy of a handle
 * only if the parent no longer does (nothing is shared but the mapping,
 * which is read-only).
 */
#ifndef TH_BINLOG_H
#define TH_BINLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "readers/rows.h"
#include "common/th_buf.h"

/* Event types as written in the common header (Log_event_type). */
enum th_binlog_type {
	TH_BINLOG_UNKNOWN = 0, TH_BINLOG_START_V3 = 1, TH_BINLOG_QUERY = 2, TH_BINLOG_STOP = 3,
	TH_BINLOG_ROTATE = 4, TH_BINLOG_INTVAR = 5, TH_BINLOG_LOAD = 6, TH_BINLOG_SLAVE = 7,
	TH_BINLOG_CREATE_FILE = 8, TH_BINLOG_APPEND_BLOCK = 9, TH_BINLOG_EXEC_LOAD = 10,
	TH_BINLOG_DELETE_FILE = 11, TH_BINLOG_NEW_LOAD = 12, TH_BINLOG_RAND = 13,
	TH_BINLOG_USER_VAR = 14, TH_BINLOG_FORMAT_DESCRIPTION = 15, TH_BINLOG_XID = 16,
	TH_BINLOG_BEGIN_LOAD_QUERY = 17, TH_BINLOG_EXECUTE_LOAD_QUERY = 18,
	TH_BINLOG_TABLE_MAP = 19, TH_BINLOG_PRE_GA_WRITE_ROWS = 20,
	TH_BINLOG_PRE_GA_UPDATE_ROWS = 21, TH_BINLOG_PRE_GA_DELETE_ROWS = 22,
	TH_BINLOG_WRITE_ROWS_V1 = 23, TH_BINLOG_UPDATE_ROWS_V1 = 24, TH_BINLOG_DELETE_ROWS_V1 = 25,
	TH_BINLOG_INCIDENT = 26, TH_BINLOG_HEARTBEAT = 27, TH_BINLOG_IGNORABLE = 28,
	TH_BINLOG_ROWS_QUERY = 29, TH_BINLOG_WRITE_ROWS = 30, TH_BINLOG_UPDATE_ROWS = 31,
	TH_BINLOG_DELETE_ROWS = 32, TH_BINLOG_GTID = 33, TH_BINLOG_ANONYMOUS_GTID = 34,
	TH_BINLOG_PREVIOUS_GTIDS = 35, TH_BINLOG_TRANSACTION_CONTEXT = 36,
	TH_BINLOG_VIEW_CHANGE = 37, TH_BINLOG_XA_PREPARE = 38, TH_BINLOG_PARTIAL_UPDATE_ROWS = 39,
	TH_BINLOG_TRANSACTION_PAYLOAD = 40, TH_BINLOG_HEARTBEAT_V2 = 41, TH_BINLOG_GTID_TAGGED = 42,
	/* MariaDB */
	TH_BINLOG_MARIA_ANNOTATE_ROWS = 160, TH_BINLOG_MARIA_BINLOG_CHECKPOINT = 161,
	TH_BINLOG_MARIA_GTID = 162, TH_BINLOG_MARIA_GTID_LIST = 163,
	TH_BINLOG_MARIA_START_ENCRYPTION = 164, TH_BINLOG_MARIA_QUERY_COMPRESSED = 165,
	TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED_V1 = 166, TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED_V1 = 167,
	TH_BINLOG_MARIA_DELETE_ROWS_COMPRESSED_V1 = 168, TH_BINLOG_MARIA_WRITE_ROWS_COMPRESSED = 169,
	TH_BINLOG_MARIA_UPDATE_ROWS_COMPRESSED = 170, TH_BINLOG_MARIA_DELETE_ROWS_COMPRESSED = 171,
};

/*
 * What an event is, with the flavours and versions folded together: a MariaDB
 * compressed v1 WRITE_ROWS and a MySQL v2 WRITE_ROWS are both TH_EVK_WRITE_ROWS.
 * th_binlog_kind_name() gives the lower-case name used in JSON ("write_rows").
 */
enum th_binlog_kind {
	TH_EVK_UNKNOWN = 0, TH_EVK_FORMAT_DESCRIPTION, TH_EVK_START_V3, TH_EVK_ROTATE,
	TH_EVK_STOP, TH_EVK_QUERY, TH_EVK_XID, TH_EVK_TABLE_MAP, TH_EVK_WRITE_ROWS,
	TH_EVK_UPDATE_ROWS, TH_EVK_DELETE_ROWS, TH_EVK_PARTIAL_UPDATE_ROWS, TH_EVK_GTID,
	TH_EVK_ANONYMOUS_GTID, TH_EVK_PREVIOUS_GTIDS, TH_EVK_HEARTBEAT,
	TH_EVK_TRANSACTION_PAYLOAD, TH_EVK_GTID_LIST, TH_EVK_BINLOG_CHECKPOINT,
	TH_EVK_ANNOTATE_ROWS, TH_EVK_ROWS_QUERY, TH_EVK_INTVAR, TH_EVK_RAND, TH_EVK_USER_VAR,
	TH_EVK_INCIDENT, TH_EVK_XA_PREPARE, TH_EVK_START_ENCRYPTION, TH_EVK_IGNORABLE,
	TH_EVK_TRANSACTION_CONTEXT, TH_EVK_VIEW_CHANGE, TH_EVK_LOAD, TH_EVK_GTID_TAGGED,
	TH_EVK__COUNT
};

/* Common-header flags. */
#define TH_BINLOG_F_IN_USE      0x0001 /* FORMAT_DESCRIPTION: file not closed cleanly */
#define TH_BINLOG_F_ARTIFICIAL  0x0020 /* made up by the sender (fake ROTATE) */
#define TH_BINLOG_F_IGNORABLE   0x0080 /* a reader that does not know it may skip it */

/* Row-event flags. */
#define TH_ROWS_F_STMT_END      0x0001

/* MariaDB GTID flags2. */
#define TH_MARIA_GTID_STANDALONE  0x01
#define TH_MARIA_GTID_COMMIT_ID   0x02
#define TH_MARIA_GTID_TRANSACTIONAL 0x04
#define TH_MARIA_GTID_ALLOW_PARALLEL 0x08
#define TH_MARIA_GTID_WAITED      0x10
#define TH_MARIA_GTID_DDL         0x20
#define TH_MARIA_GTID_PREPARED_XA 0x40
#define TH_MARIA_GTID_COMPLETED_XA 0x80

enum th_binlog_checksum {
	TH_BINLOG_CHECKSUM_OFF = 0,
	TH_BINLOG_CHECKSUM_CRC32 = 1,
};

enum th_binlog_flavor {
	TH_BINLOG_FLAVOR_UNKNOWN = 0, TH_BINLOG_FLAVOR_MYSQL, TH_BINLOG_FLAVOR_MARIADB,
};

/* An XA transaction id (MariaDB GTID with XA flags, XA_PREPARE). */
struct th_binlog_xid {
	int32_t format_id;
	uint8_t gtrid_len, bqual_len;  /* each <= 64 */
	const uint8_t *data;           /* gtrid then bqual */
};

struct th_ev_format_description {
	uint16_t binlog_version;     /* 4 (or 3, 2 from START_V3) */
	char server_version[51];     /* NUL-terminated */
	uint32_t create_timestamp;
	uint8_t header_len;
	uint8_t checksum_alg;        /* enum th_binlog_checksum; 0 when not checksum-aware */
	enum th_binlog_flavor flavor;
};

struct th_ev_rotate {
	uint64_t position;           /* where the next file's events start (4) */
	const char *name;            /* not NUL-terminated */
	uint32_t name_len;
	bool fake;                   /* log_pos 0: sent at the start of a dump / relay log */
};

struct th_ev_query {
	uint32_t thread_id, exec_time;
	uint16_t error_code;
	const char *db;              /* not NUL-terminated */
	uint32_t db_len;
	const char *query;           /* not NUL-terminated; may be empty */
	size_t query_len;
	const uint8_t *status_vars;  /* raw, undecoded */
	uint16_t status_vars_len;
	bool compressed;             /* MariaDB QUERY_COMPRESSED (165) */
};

/* GTID of either flavour; mariadb tells which fields are set. */
struct th_ev_gtid {
	bool mariadb;
	/* MySQL GTID (33) / ANONYMOUS_GTID (34) */
	uint8_t uuid[16];
	int64_t gno;
	uint8_t gtid_flags;           /* bit 0: may have dependencies (commit flag) */
	bool has_logical_clock;
	int64_t last_committed, sequence_number;
	bool has_commit_ts;
	uint64_t immediate_commit_us, original_commit_us; /* microseconds since the epoch */
	bool has_transaction_length;
	uint64_t transaction_length;
	bool has_server_version;
	uint32_t immediate_server_version, original_server_version;
	/* MariaDB GTID (162) */
	uint32_t domain_id;
	uint32_t server_id;           /* the header's server_id: the GTID's */
	uint64_t seq_no;
	uint8_t flags2;               /* TH_MARIA_GTID_* */
	uint64_t commit_id;           /* when flags2 & TH_MARIA_GTID_COMMIT_ID */
	struct th_binlog_xid xid;     /* when flags2 & (PREPARED_XA | COMPLETED_XA) */
	uint8_t flags_extra;
};

/* PREVIOUS_GTIDS (35): n_sids entries, validated; read with th_binlog_prev_gtids_*(). */
struct th_ev_previous_gtids {
	uint64_t n_sids;
	const uint8_t *data;         /* encoded sids, after the count */
	size_t len;
};

/* MariaDB GTID_LIST (163): count triplets of domain u32, server u32, seq u64 (LE). */
struct th_ev_gtid_list {
	uint32_t count;
	uint8_t flags;               /* top 4 bits of the count word */
	const uint8_t *data;
};

struct th_ev_table_map {
	const struct th_table_map *tm; /* in the decoder's cache; see lifetime below */
	uint16_t flags;
};

/*
 * A row event. The rows region holds one image per row (two for UPDATE:
 * before, then after); iterate with th_binlog_rows_begin()/th_binlog_rows_next().
 */
struct th_ev_rows {
	uint64_t table_id;
	const struct th_table_map *tm;  /* NULL only for the dummy end-of-statement event */
	uint16_t flags;                 /* TH_ROWS_F_* */
	uint8_t version;                /* 1 or 2 */
	bool compressed;                /* MariaDB compressed (rows region was inflated) */
	bool partial;                   /* PARTIAL_UPDATE_ROWS (39) */
	uint32_t ncols;
	const uint8_t *present;         /* ceil(ncols/8) bytes: columns in the (before) image */
	const uint8_t *present_after;   /* UPDATE only, else NULL */
	const uint8_t *extra;           /* v2 extra row info, raw (may be NULL) */
	uint16_t extra_len;
	const uint8_t *rows;
	size_t rows_len;
};

struct th_ev_heartbeat {
	const char *log_name;        /* not NUL-terminated */
	uint32_t log_name_len;
	uint64_t log_pos;            /* v2: the position field; v1: header log_pos */
	uint8_t version;             /* 1 (27) or 2 (41) */
};

struct th_ev_payload {
	uint64_t compressed_size, uncompressed_size;
	uint8_t compression;         /* 0 zstd, 255 none */
	const uint8_t *data;         /* the compressed bytes */
	size_t len;
};

struct th_ev_text {                /* ANNOTATE_ROWS, ROWS_QUERY, BINLOG_CHECKPOINT, INCIDENT */
	const char *text;
	size_t len;
	uint16_t incident;           /* INCIDENT: its number */
};

struct th_ev_intvar { uint8_t type; uint64_t value; };
struct th_ev_rand { uint64_t seed1, seed2; };
struct th_ev_xid { uint64_t xid; };
struct th_ev_xa_prepare { bool one_phase; struct th_binlog_xid xid; };

struct th_binlog_event {
	/* The common header. */
	uint32_t timestamp;
	uint8_t type;                /* enum th_binlog_type */
	uint32_t server_id;
	uint32_t size;               /* event_size: header, body and checksum */
	uint32_t log_pos;            /* end of this event in the writer's file (0: none) */
	uint16_t flags;              /* TH_BINLOG_F_* */

	enum th_binlog_kind kind;
	uint64_t pos;                /* where it starts: as given to the decoder; inner
					events of a payload: the payload event's */
	uint32_t payload_offset;     /* in_payload: offset inside the uncompressed payload */
	bool in_payload;
	bool skipped;                /* framed and checked, body not decoded (see above) */
	const uint8_t *data;         /* the whole event as given (checksum included) */
	const uint8_t *body;         /* after the common header, checksum excluded */
	size_t body_len;
	union {
		struct th_ev_format_description fde;
		struct th_ev_rotate rotate;
		struct th_ev_query query;
		struct th_ev_gtid gtid;
		struct th_ev_previous_gtids prev_gtids;
		struct th_ev_gtid_list gtid_list;
		struct th_ev_table_map table_map;
		struct th_ev_rows rows;
		struct th_ev_heartbeat heartbeat;
		struct th_ev_payload payload;
		struct th_ev_text text;
		struct th_ev_intvar intvar;
		struct th_ev_rand rand;
		struct th_ev_xid xid;
		struct th_ev_xa_prepare xa_prepare;
	} u;
};

/* Events are at least this long (v4 header); the v3 header is the same size. */
#define TH_BINLOG_HEADER_LEN 19
/* The four bytes every binlog file starts with: fe 'b' 'i' 'n'. */
#define TH_BINLOG_MAGIC "\xfe\x62\x69\x6e"

/* ---- the decoder ------------------------------------------------------- */

struct th_binlog_decoder;

struct th_binlog_decoder_opts {
	size_t size;                 /* sizeof(struct th_binlog_decoder_opts) */
	/* Largest uncompressed TRANSACTION_PAYLOAD or MariaDB-compressed body we
	   inflate; larger is -TH_ETOOBIG. 0: 1 GiB. */
	size_t max_inflated;
	/* Checksum of events before the first FORMAT_DESCRIPTION (fake ROTATE). */
	enum th_binlog_checksum initial_checksum;
};

/*
 * Create a decoder. opts may be NULL (defaults). Returns 0 and *out, or
 * -ENOMEM / -EINVAL. Free with th_binlog_decoder_free().
 */
int th_binlog_decoder_new(struct th_binlog_decoder **out, const struct th_binlog_decoder_opts *opts);
/* Free it and everything it owns (cached table maps, buffers). NULL is fine. */
void th_binlog_decoder_free(struct th_binlog_decoder *dec);

/*
 * Name the source for error messages ("binlog.000042", "mysql1:3306");
 * copied. Also forget the format description and the table maps (a new file
 * or connection starts with its own).
 */
void th_binlog_decoder_reset(struct th_binlog_decoder *dec, const char *source);

/* Checksum to assume until the next FORMAT_DESCRIPTION (see the caveats). */
void th_binlog_decoder_set_checksum(struct th_binlog_decoder *dec, enum th_binlog_checksum alg);

/*
 * Decode one event: p[0..len) is exactly one event (header, body, checksum:
 * len must equal the header's event_size), pos is where it starts (for
 * ev->pos and messages). Fills *ev; its pointers point into p, or into the
 * decoder (inflated bodies, cached table maps), and stay valid until the next
 * th_binlog_decode() or th_binlog_payload_next() on this decoder (and, for p,
 * as long as the caller keeps p).
 *
 * FORMAT_DESCRIPTION and START_V3 change how the following events are read;
 * TABLE_MAP updates the cache; TRANSACTION_PAYLOAD is inflated and checked so
 * that its events can then be read with th_binlog_payload_next().
 *
 * Returns 0, or a negative code with ev->kind/type set as far as known and a
 * message in th_binlog_decoder_error(): -TH_ETRUNCATED (len shorter than the
 * header says), -TH_ECHECKSUM, -TH_EBINLOG (malformed or inconsistent),
 * -TH_EUNSUPPORTED (unknown non-ignorable type, encryption, binlog v1, tagged
 * GTIDs, unknown compression), -TH_ETOOBIG (inflated size over the limit),
 * -ENOMEM. After an error the decoder's state is as before the call, except
 * that a failed TRANSACTION_PAYLOAD leaves no events to iterate and a failed
 * TABLE_MAP forgets that table_id (its row events then fail too).
 */
int th_binlog_decode(struct th_binlog_decoder *dec, const uint8_t *p, size_t len, uint64_t pos,
		     struct th_binlog_event *ev);

/*
 * After th_binlog_decode() returned a TRANSACTION_PAYLOAD: the next event
 * inside it, decoded like any other (no checksums inside; ev->in_payload set,
 * ev->pos the payload's position). Returns 1 with an event, 0 when there is
 * no more (or no payload), or a negative code as th_binlog_decode(), after
 * which the rest of this payload is dropped. Events point into the decoder's
 * payload buffer: valid until the next th_binlog_decode().
 */
int th_binlog_payload_next(struct th_binlog_decoder *dec, struct th_binlog_event *ev);

/* The last error, "SOURCE at POS: what is wrong"; "" when none. Valid until the next call. */
const char *th_binlog_decoder_error(const struct th_binlog_decoder *dec);

/* The current format (checksum algorithm, flavour, server version); NULL before any. */
const struct th_ev_format_description *th_binlog_decoder_format(const struct th_binlog_decoder *dec);

/* The cached table map for table_id, or NULL. Valid as the events are (above). */
const struct th_table_map *th_binlog_decoder_table(const struct th_binlog_decoder *dec, uint64_t table_id);

/* ---- rows -------------------------------------------------------------- */

struct th_binlog_row_iter {
	const struct th_binlog_event *ev;
	size_t off;                  /* into ev->u.rows.rows */
	uint32_t index;              /* rows returned so far */
	/* PARTIAL_UPDATE_ROWS: the current after image's partial-JSON bitmap */
	const uint8_t *partial_bits;
	/* Columns to decode (bit per table column), or NULL for all; the others
	 * come out TH_VAL_ABSENT (th_row_decode_wanted). Set after begin. */
	const uint8_t *wanted;
};

/* Start iterating the rows of a row event (kind *_ROWS). */
void th_binlog_rows_begin(struct th_binlog_row_iter *it, const struct th_binlog_event *ev);

/*
 * The next row. before and after are arrays of ev->u.rows.tm->ncols values
 * (caller's); WRITE fills after (before may be NULL), DELETE fills before
 * (after may be NULL), UPDATE fills both. Values point into the event
 * (rows.h). Returns 1 with a row, 0 after the last, or -TH_EBINLOG /
 * -TH_EUNSUPPORTED from th_row_decode() or a malformed partial-update header.
 * Calls th_row_decode() (rows.c).
 */
int th_binlog_rows_next(struct th_binlog_row_iter *it, struct th_value *before, struct th_value *after);

/* In the last after image returned: is column col a partial JSON diff (opaque bytes)? */
bool th_binlog_row_is_partial_json(const struct th_binlog_row_iter *it, uint32_t col);

/* ---- helpers ----------------------------------------------------------- */

/* "write_rows", "gtid", ...; never NULL. */
const char *th_binlog_kind_name(enum th_binlog_kind kind);

/* A GTID as text: "3e11fa47-71ca-11e1-9e33-c80aa9429562:23" or "0-1-42" (MariaDB).
   Returns the length written, NUL included in the room needed (>= 60 is always enough). */
size_t th_binlog_gtid_format(const struct th_ev_gtid *g, char *buf, size_t n);

/*
 * Append one JSON object describing the event (the `topohubctl decode`
 * format): type, pos, server_id, timestamp, and per kind gtid, query and db,
 * db/table/rows (values through th_value_to_json()), ... No newline. Returns
 * 0; a row that fails to decode leaves the JSON complete with "rows_error" and
 * returns that row's negative code; -ENOMEM when out (or scratch) failed.
 * Not on any hot path: it allocates its scratch per call. Pure otherwise.
 */
int th_binlog_event_to_json(const struct th_binlog_event *ev, struct th_buf *out);

/* ---- files ------------------------------------------------------------- */

struct th_binlog_file;

struct th_binlog_file_opts {
	size_t size;                 /* sizeof(struct th_binlog_file_opts) */
	bool follow_rotate;          /* at a ROTATE that ends the file, go on in the
					named file of the same folder if it exists */
	struct th_binlog_decoder_opts decoder;
};

/*
 * Open and map a binlog file, check its magic. opts may be NULL. Returns 0 and
 * *out, -errno from open/mmap, or -TH_EBINLOG (not a binlog: bad magic or
 * shorter than 4 bytes). Close with th_binlog_file_close().
 */
int th_binlog_file_open(struct th_binlog_file **out, const char *path, const struct th_binlog_file_opts *opts);

/*
 * The next event: the payload event itself, then the events inside it. Fills
 * *ev (valid until the next call). Returns 1 with an event, 0 at the clean end
 * of the file (of the last file, when following rotates), or a negative code
 * with a message in th_binlog_file_error(): as th_binlog_decode(), and
 * -TH_ETRUNCATED when the file ends inside an event. After an error, next
 * returns the same error again.
 */
int th_binlog_file_next(struct th_binlog_file *f, struct th_binlog_event *ev);

/* The current file's path and the position of the next event to read. */
const char *th_binlog_file_path(const struct th_binlog_file *f);
uint64_t th_binlog_file_pos(const struct th_binlog_file *f);
const char *th_binlog_file_error(const struct th_binlog_file *f);
struct th_binlog_decoder *th_binlog_file_decoder(struct th_binlog_file *f);
void th_binlog_file_close(struct th_binlog_file *f);

#endif
