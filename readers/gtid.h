/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gtid.h: GTID sets (MySQL) and GTID positions (MariaDB).
 *
 * MySQL names a transaction uuid:gno and a replica's position is a set of them,
 * "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,5a1f...:1-9" (th_gtid_set).
 * MariaDB names a transaction domain-server-seq and a replica's position is the
 * last GTID of each replication domain, "0-1-100,1-2-7" (th_gtid_pos).
 *
 * th_gtid_set reads the text MySQL prints (upper- or lowercase uuids, with or
 * without hyphens, whitespace and newlines between tokens as in
 * @@gtid_executed, intervals in any order, overlapping or adjacent, empty
 * entries between commas as MySQL allows), keeps it canonical (uuids sorted,
 * intervals sorted, disjoint and non-adjacent) and writes the canonical text
 * ("uuid:1-5:7,uuid2:1-9", lowercase, no spaces). It also reads and writes the
 * binary encoding of COM_BINLOG_DUMP_GTID and PREVIOUS_GTIDS events:
 *   n_sids u64, then per uuid: 16 bytes, n_intervals u64, n_intervals x
 *   (start u64, end u64) with end exclusive; all little-endian.
 *
 * Errors: malformed text or bytes are -TH_EGTID, and the functions that parse
 * say what and where in an optional message buffer. A function that fails
 * leaves its output set as it was. -ENOMEM is the only other failure.
 *
 * Caveats:
 *   - Transaction numbers are 1 .. 2^63-2 (MySQL's limit); a larger one is
 *     -TH_EGTID, never wrapped.
 *   - MySQL 8.3+ tagged GTIDs ("uuid:tag:1-5") and their binary format are
 *     -TH_EGTID with a message saying so: not supported yet.
 *   - th_gtid_pos keeps one GTID per domain, as @@gtid_slave_pos and
 *     @slave_connect_state do; it does not keep per-server history.
 *
 * Threads: a set or position is owned by one thread at a time; the const
 * functions may run concurrently on the same object while nobody modifies it.
 * Nothing is shared between objects.
 */
#ifndef TH_GTID_H
#define TH_GTID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/th_buf.h"

/* Largest transaction number (MySQL's GNO_END - 1). */
#define TH_GTID_GNO_MAX ((uint64_t)INT64_MAX - 1)
/* Text length of a uuid, without the NUL. */
#define TH_GTID_UUID_TEXT_LEN 36

/* ---- uuids ---------------------------------------------------------------- */

/* Parses a uuid from text[0..len): 36 characters with hyphens (8-4-4-4-12) or 32
 * hex digits; either case. 0 or -TH_EGTID. */
int th_gtid_uuid_parse(const char *text, size_t len, uint8_t uuid[16]);
/* Writes the lowercase hyphenated form and a NUL into out (37 bytes). */
void th_gtid_uuid_format(const uint8_t uuid[16], char out[TH_GTID_UUID_TEXT_LEN + 1]);

/* ---- MySQL GTID sets ------------------------------------------------------ */

struct th_gtid_set;

/* A new empty set in *out. 0 or -ENOMEM. Free with th_gtid_set_free(). */
int th_gtid_set_new(struct th_gtid_set **out);
/* Frees the set; NULL is fine. */
void th_gtid_set_free(struct th_gtid_set *set);
/* Empties the set (keeps its memory). */
void th_gtid_set_clear(struct th_gtid_set *set);
/* Makes dst equal to src. 0 or -ENOMEM (dst unchanged). */
int th_gtid_set_copy(struct th_gtid_set *dst, const struct th_gtid_set *src);

/*
 * Adds the GTIDs of text (NUL-terminated; "" and whitespace-only are the empty
 * set) to set. 0, -TH_EGTID (why says what and at which offset; set
 * unchanged) or -ENOMEM. why may be NULL.
 */
int th_gtid_set_parse(struct th_gtid_set *set, const char *text, char *why, size_t why_len);

/* Adds one GTID. 0, -TH_EGTID (gno 0 or above TH_GTID_GNO_MAX), -ENOMEM. */
int th_gtid_set_add(struct th_gtid_set *set, const uint8_t uuid[16], uint64_t gno);
/* Adds the GTIDs uuid:first..last (inclusive). Same results as th_gtid_set_add. */
int th_gtid_set_add_range(struct th_gtid_set *set, const uint8_t uuid[16], uint64_t first, uint64_t last);
/* dst |= src. 0 or -ENOMEM (dst unchanged). */
int th_gtid_set_union(struct th_gtid_set *dst, const struct th_gtid_set *src);

bool th_gtid_set_is_empty(const struct th_gtid_set *set);
bool th_gtid_set_contains_gtid(const struct th_gtid_set *set, const uint8_t uuid[16], uint64_t gno);
/* Is every GTID of sub in set? (The empty set is in every set.) */
bool th_gtid_set_contains(const struct th_gtid_set *set, const struct th_gtid_set *sub);
bool th_gtid_set_equal(const struct th_gtid_set *a, const struct th_gtid_set *b);
/* Number of GTIDs in the set, saturating at UINT64_MAX. */
uint64_t th_gtid_set_count(const struct th_gtid_set *set);

/* Appends the canonical text ("" for the empty set). 0 or -ENOMEM. */
int th_gtid_set_format(const struct th_gtid_set *set, struct th_buf *out);

/* Bytes th_gtid_set_encode() appends. */
size_t th_gtid_set_encoded_size(const struct th_gtid_set *set);
/* Appends the binary encoding (see the top of this file). 0 or -ENOMEM. */
int th_gtid_set_encode(const struct th_gtid_set *set, struct th_buf *out);
/*
 * Adds the GTIDs of the binary encoding at p[0..len) to set; *used (may be
 * NULL) receives the bytes it took, which may be fewer than len (a
 * PREVIOUS_GTIDS body is followed by the checksum). 0, -TH_EGTID (truncated,
 * impossible counts or intervals, tagged format; set unchanged) or -ENOMEM.
 */
int th_gtid_set_decode(struct th_gtid_set *set, const uint8_t *p, size_t len, size_t *used);

/* ---- MariaDB GTID positions ----------------------------------------------- */

struct th_maria_gtid {
	uint32_t domain_id;
	uint32_t server_id;
	uint64_t seq_no;
};

/* Parses one MariaDB GTID "D-S-N" (whitespace around it allowed). 0 or -TH_EGTID. */
int th_maria_gtid_parse(const char *text, struct th_maria_gtid *out);

struct th_gtid_pos;

/* A new empty position in *out. 0 or -ENOMEM. Free with th_gtid_pos_free(). */
int th_gtid_pos_new(struct th_gtid_pos **out);
void th_gtid_pos_free(struct th_gtid_pos *pos);
void th_gtid_pos_clear(struct th_gtid_pos *pos);
int th_gtid_pos_copy(struct th_gtid_pos *dst, const struct th_gtid_pos *src);

/*
 * Replaces pos with the position in text: "D-S-N" entries separated by commas,
 * whitespace and newlines allowed between them, at most one per domain (as
 * MariaDB requires of @slave_connect_state); "" is the empty position. 0,
 * -TH_EGTID (why says what and where; pos unchanged) or -ENOMEM.
 */
int th_gtid_pos_parse(struct th_gtid_pos *pos, const char *text, char *why, size_t why_len);

/* Makes g the position's GTID for g->domain_id (a transaction committed). 0 or -ENOMEM. */
int th_gtid_pos_update(struct th_gtid_pos *pos, const struct th_maria_gtid *g);
/* The GTID of a domain: true and *out, or false when the domain is absent. */
bool th_gtid_pos_get(const struct th_gtid_pos *pos, uint32_t domain_id, struct th_maria_gtid *out);
/* Has the position reached g: the domain is present with seq_no >= g->seq_no?
 * (MariaDB's sequence numbers grow within a domain in gtid_strict_mode.) */
bool th_gtid_pos_contains(const struct th_gtid_pos *pos, const struct th_maria_gtid *g);
size_t th_gtid_pos_count(const struct th_gtid_pos *pos);
bool th_gtid_pos_equal(const struct th_gtid_pos *a, const struct th_gtid_pos *b);
/* Appends "D-S-N,D-S-N" sorted by domain ("" when empty). 0 or -ENOMEM. */
int th_gtid_pos_format(const struct th_gtid_pos *pos, struct th_buf *out);

#endif
