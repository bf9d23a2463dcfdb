/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_check.h: test helpers around a running hub: compare its state with
 * the tables of a MariaDB instance, and a minimal ring reader that attaches
 * through the control socket (protocol.h + ring.h directly, no client
 * library).
 *
 * Test support, not product: errors are text for test output. One thread
 * per handle.
 */
#ifndef TH_TEST_HUB_CHECK_H
#define TH_TEST_HUB_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/protocol.h"
#include "protocol/protocol.h"
#include "shm/ring.h"
#include "tests/support/mariadb.h"

/*
 * Does the hub's state (SNAPSHOT of every default mysqltopo table) equal the
 * tables of schema (NULL: "topo") in db, key by key (value bytes, NULL-ness,
 * version)? First SYNCs the hub to db's @@gtid_binlog_pos (timeout_ms).
 * 0 when equal; else negative with why describing the first difference.
 * *entries (may be NULL) receives the number of rows compared.
 */
int th_hub_check_state(const char *socket, struct th_mariadb *db, const char *schema, unsigned timeout_ms,
		       size_t *entries, char *why, size_t why_len);

/* One change or resync as read from the ring. */
struct th_test_rec {
	uint16_t type;                 /* TH_REC_CHANGE / TH_REC_RESYNC */
	uint16_t ring_flags;           /* TH_RING_F_BATCH_END */
	uint64_t publish_mono_ns;      /* ring header time */
	struct th_rec_change ch;       /* CHANGE */
	struct th_rec_resync rs;       /* RESYNC */
	char key[600];                 /* NUL-terminated copy (keys are short in tests) */
	uint8_t *value;                /* malloc'ed, value_len bytes (NULL when 0) */
	char gtid[80];
};

struct th_test_reader {
	struct th_ctl *c;
	struct th_ring_reader *r;
	struct th_msg_attach_reply att;
	uint8_t *buf;
	size_t buf_len;
};

/* Attach to the hub at socket with timeout_ns. 0 or negative with why. */
int th_test_reader_open(struct th_test_reader *tr, const char *socket, uint64_t timeout_ns, const char *name,
			char *why, size_t why_len);
/* Next record, waiting up to wait_ms: 1 with *rec (free with th_test_rec_free),
 * 0 on timeout, or the ring's negative code. */
int th_test_reader_next(struct th_test_reader *tr, struct th_test_rec *rec, int wait_ms);
void th_test_rec_free(struct th_test_rec *rec);
void th_test_reader_close(struct th_test_reader *tr);

#endif
