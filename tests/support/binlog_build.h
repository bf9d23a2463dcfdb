/* SPDX-License-Identifier: Apache-2.0 */
/*
 * binlog_build.h: hand-built binlog events, for the tests of the event decoder
 * (test_binlog.c) and the transaction assembler (test_txn.c).
 *
 * A byte builder with the little-endian and length-encoded puts the binlog
 * uses; event framing with an optional CRC32; FORMAT_DESCRIPTION events of
 * MySQL 8.0 and MariaDB 10.11 with their real post-header tables; bodies that
 * both tests need (QUERY, MySQL GTID, the head of a rows event,
 * TRANSACTION_PAYLOAD); and a decoder fed one built event at a time.
 *
 * Every event has timestamp TB_TIMESTAMP and server_id 7 (so MariaDB GTIDs read
 * "D-7-N"). Test support, not product: functions fail the running cmocka test
 * when a buffer is too small or a library call fails, rather than return.
 */
#ifndef TH_TEST_BINLOG_BUILD_H
#define TH_TEST_BINLOG_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "readers/binlog.h"

#define TB_TIMESTAMP 1700000100u

/* The GTID source uuid the tests use, as bytes and as text. */
extern const uint8_t tb_uuid1[16];
#define TB_UUID1 "3e11fa47-71ca-11e1-9e33-c80aa9429562"

/* Bytes being built; start with { .n = 0 }, reset with .n = 0. */
struct tb_bytes {
	uint8_t b[1 << 16];
	size_t n;
};

void tb_put(struct tb_bytes *b, const void *p, size_t n);
/* v as n little-endian bytes. */
void tb_le(struct tb_bytes *b, uint64_t v, unsigned n);
/* v as a length-encoded integer (1, 3, 4 or 9 bytes). */
void tb_packed(struct tb_bytes *b, uint64_t v);
/* The characters of s, without its NUL. */
void tb_str(struct tb_bytes *b, const char *s);

/*
 * Writes the event header + body (+ CRC32 when crc) to out, which must hold
 * 19 + body->n + 4 bytes; returns the event's length.
 */
size_t tb_event(uint8_t *out, uint8_t type, uint16_t flags, uint32_t log_pos, const struct tb_bytes *body,
		bool crc);
/* Appends an event without checksum, as events are inside a TRANSACTION_PAYLOAD. */
void tb_append_event(struct tb_bytes *to, uint8_t type, const struct tb_bytes *body);

/*
 * A FORMAT_DESCRIPTION of MySQL 8.0.45 or MariaDB 10.11.6 to out (512 bytes
 * suffice), saying CRC32 or, when !crc, checksums off (with the 4 bytes a
 * checksum-aware server leaves anyway).
 */
size_t tb_format_description(uint8_t *out, bool mariadb, bool crc);

/* QUERY body: thread id 11, exec time 2, error 0, svlen zero bytes of status variables. */
void tb_query(struct tb_bytes *b, const char *db, const char *q, uint16_t svlen);

/*
 * MySQL GTID body: uuid:gno, last_committed 5, sequence_number 6, immediate
 * commit 1700000000123456 us (and original 1600000000654321 us when two_ts),
 * transaction length 1234, server versions 80045 (immediate) and 80036.
 */
void tb_mysql_gtid(struct tb_bytes *b, const uint8_t uuid[16], int64_t gno, bool two_ts);

/*
 * Head of a rows event over the first ncols (<= 8) columns, all present:
 * table id, STMT_END flag, the v2 extra-data length when v2, column count,
 * present bitmap (twice for an UPDATE).
 */
void tb_rows_header(struct tb_bytes *b, uint64_t table_id, uint32_t ncols, bool v2, bool update);

/*
 * A TRANSACTION_PAYLOAD event around inner (events without checksums),
 * zstd-compressed or stored as is, to out (64 KiB suffice).
 */
size_t tb_transaction_payload(uint8_t *out, const struct tb_bytes *inner, uint32_t log_pos, bool zstd, bool crc);

/* A decoder reading built events, as from a file. */
struct tb_stream {
	struct th_binlog_decoder *dec;
	uint8_t ev[1 << 16];    /* the last event built */
	size_t n;               /* its length */
	uint64_t pos;           /* where the next event starts */
	bool crc;
};

/*
 * A decoder named "test" that has decoded a FORMAT_DESCRIPTION of the flavour
 * at position 4, into *fde unless NULL (valid until the next decode). Free
 * with tb_stream_free().
 */
struct tb_stream *tb_stream_new(bool mariadb, bool crc, struct th_binlog_event *fde);
void tb_stream_free(struct tb_stream *s);

/*
 * Builds the next event (log_pos its end), decodes it into *ev and moves on;
 * returns th_binlog_decode's result (with TH_DEBUG set, a failure's message is
 * printed).
 */
int tb_stream_decode(struct tb_stream *s, uint8_t type, uint16_t flags, const struct tb_bytes *body,
		     struct th_binlog_event *ev);

#endif
