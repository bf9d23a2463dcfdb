/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replay_server.h: a tiny MySQL-protocol server that replays a binlog file.
 *
 * MySQL 8 cannot run on the test machine, so the MySQL path of the live source
 * (readers/source.h) is exercised against this: a thread on 127.0.0.1 at a free
 * port that speaks just enough of the client/server protocol for a replica:
 *   - HandshakeV10 offering mysql_native_password, and OK (the user name is
 *     checked when one is configured; the password is not: test support has no
 *     SHA-1, and the real authentication is tested against MariaDB);
 *   - COM_QUERY: OK for SET statements; a one-row result set for
 *     SELECT @@[global.]binlog_checksum, version, server_uuid, server_id,
 *     gtid_mode; an error for anything else; COM_PING; COM_QUIT;
 *   - COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID: a fake ROTATE (artificial, CRC32)
 *     naming the file, then each event of the file as it is on disk, skipping
 *     the transactions whose GTID is in the requested set as MySQL does; then
 *     an EOF packet when the dump asked for non-blocking, else heartbeats
 *     (HEARTBEAT, 27) at the period the client set with
 *     @master_heartbeat_period, or silence when `stall` is set.
 * It serves one connection at a time, any number in sequence. What each dump
 * request asked for is recorded for the test to check.
 *
 * Test support, not product: small and strict rather than complete. The file
 * must use CRC32 checksums (the fake events carry one) and be small enough to
 * read into memory.
 *
 * Threads: start and stop from one thread; th_replay_last_request() may be
 * called from any thread while the server runs.
 */
#ifndef TH_TEST_REPLAY_SERVER_H
#define TH_TEST_REPLAY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct th_replay_options {
	const char *binlog_path;   /* the file to replay (required) */
	const char *version;       /* NULL: "8.0.45-replay" */
	const char *user;          /* NULL: any user name is accepted */
	uint32_t server_id;        /* in fake events; 0: 1 */
	bool stall;                /* after the file: no heartbeats, no EOF (a hung server) */
};

/* What the last dump command asked for. */
struct th_replay_request {
	uint8_t command;           /* 0x12 COM_BINLOG_DUMP, 0x1e COM_BINLOG_DUMP_GTID, 0 none yet */
	uint16_t flags;
	uint32_t server_id;
	char file[256];
	uint64_t pos;
	uint8_t gtid[2048];        /* the encoded GTID set (COM_BINLOG_DUMP_GTID) */
	size_t gtid_len;
	uint64_t heartbeat_ns;     /* from SET @master_heartbeat_period */
	char checksum[16];         /* from SET @master_binlog_checksum ("CRC32" after @@global) */
	unsigned queries;          /* COM_QUERY count on that connection */
	char user[64];
	unsigned connections;      /* accepted so far */
};

struct th_replay;

/* Starts the server thread. 0, or a negative errno with why (may be NULL) set:
 * -ENOENT when the file is missing (tests skip), -EINVAL when it is not a
 * binlog. */
int th_replay_start(const struct th_replay_options *opts, struct th_replay **out, char *why,
		    size_t why_len);
unsigned th_replay_port(const struct th_replay *rs);
void th_replay_last_request(struct th_replay *rs, struct th_replay_request *out);
/* Closes any connection, stops the thread, frees rs. NULL is fine. */
void th_replay_stop(struct th_replay *rs);

#endif
