/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_publisher.h: what the publisher thread's files share. Not for the
 * other threads (hub_internal.h is what all of them share).
 *
 *   hub_publisher.c  the thread: streaming, publication (state, ring, revision)
 *   hub_source.c     connecting to a source server and checking it
 *   hub_load.c       the consistent load of the watched tables
 *
 * Everything here runs on the publisher thread.
 */
#ifndef TH_HUB_PUBLISHER_H
#define TH_HUB_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mysql.h>

#include "common/th_buf.h"
#include "hub/hub_internal.h"
#include "protocol/protocol.h"
#include "readers/source.h"
#include "readers/txn.h"


/* Why a stream ended. */
enum stream_end {
	END_STOP = 0,       /* stopping */
	END_RETRY,          /* connection trouble: next source, resume by GTID */
	END_RELOAD,         /* continuity lost: reload the tables from a server */
};

struct th__pub {
	struct th_hub *h;
	const struct th_hub_config *cfg;
	struct th_binlog_decoder *dec;
	struct th_txn_asm *asm_;
	struct th_txn_table tables[TH_HUB_MAX_TABLES];   /* cfg tables + ordinal positions */
	struct th_buf gtid;             /* resume position text, made by resume_gtid() */
	struct th_buf scratch;
	enum th_binlog_flavor flavor;
	uint64_t next_rev;
	uint64_t mark;                  /* reload counter, for the state sweep */
	int cur;                        /* source index */
	bool ready;                     /* main was told we are streaming */
	enum th_resync_reason reload_reason;
	uint32_t reload_table;          /* the table the cause named (the RESYNC names all: hub_load.c) */
	uint64_t behind_since_ns;       /* first found only replicas behind us (0: not now) */
	char err[1024];
	/* Benchmark mode only: one transaction's records as messages for
	 * th__hub_fanout_send, grown as needed. */
	struct th_rec_change *fo_recs;
	struct iovec *fo_iov;
	struct mmsghdr *fo_msgs;
	size_t fo_cap;
	/* last_changes(): a transaction reduced to each key's last change. */
	struct th_txn_change *lc_changes;
	size_t *lc_order;
	bool *lc_drop;
	size_t lc_cap;
};

int th__pub_check_server(struct th__pub *p, const struct th_hub_source *s, char *err, size_t len);
int th__pub_load(struct th__pub *p, const struct th_hub_source *s, char *err, size_t len);
void th__pub_publish_pos(struct th__pub *p, uint64_t revision);
void th__pub_publish_resync(struct th__pub *p, uint64_t rev, enum th_resync_reason reason, uint32_t table);
void th__pub_put_ident(struct th_buf *b, const char *ident);
const char *th__pub_resume_gtid(struct th__pub *p);
void th__pub_set_src_error(struct th__pub *p, const char *msg);
MYSQL *th__pub_sql_connect(struct th__pub *p, const struct th_hub_source *s, char *err, size_t len);
int th__pub_sql_exec(MYSQL *m, const char *name, const char *sql, char *err, size_t len);
int th__pub_sql_row(MYSQL *m, const char *name, const char *sql, char (*vals)[256], bool *is_null, unsigned n,
		   char *err, size_t len);
const char *th__pub_table_schema(const struct th__pub *p, size_t i);
int th__pub_validate(struct th__pub *p, MYSQL *m, const struct th_hub_source *s, bool *mariadb, char *err, size_t len);

#endif
