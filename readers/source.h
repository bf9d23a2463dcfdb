/* SPDX-License-Identifier: Apache-2.0 */
/*
 * source.h: a live binlog stream from a MySQL or MariaDB server, as a replica.
 *
 * th_source_live_open() connects through libmysqlclient (MariaDB Connector/C)
 * over TCP or a Unix socket, with TLS when asked, authenticates, tells the
 * flavour from the server's version string, prepares the session as a replica
 * does, and asks for the binlog:
 *   - both:    SET @master_binlog_checksum = @@global.binlog_checksum (events
 *              arrive with their CRC32), SET @master_heartbeat_period = <ns>
 *              (MySQL 8.4 also reads @source_heartbeat_period: both are set);
 *   - MariaDB: SET @mariadb_slave_capability = 4 (GTID events as they are),
 *              and to resume by GTID @slave_connect_state = '<position>' with
 *              @slave_gtid_strict_mode = 1 and @slave_gtid_ignore_duplicates = 0,
 *              so that a position the server's binlog cannot continue is an
 *              error, never a silent skip; then COM_BINLOG_DUMP;
 *   - MySQL:   COM_BINLOG_DUMP_GTID with the encoded GTID set (gtid.h), or
 *              COM_BINLOG_DUMP from a file and position.
 * The dump commands are built here and sent as raw packets; the library only
 * connects and reads packets (its mariadb_rpl_* API cannot ask MySQL 8 for a
 * GTID dump and decodes rows wrongly). Events are not decoded here: each
 * th_source_next_event() hands back the bytes of one event (v4 header, body,
 * checksum) for the decoder (binlog.h). The stream begins with the server's
 * fake ROTATE (and, on MariaDB, a fake GTID_LIST), then FORMAT_DESCRIPTION.
 *
 * Liveness: the server sends a heartbeat when it has nothing else to send for
 * heartbeat_ms. A source that receives nothing for the deadline (2 x the
 * heartbeat period + 500 ms, rounded up to whole seconds because the
 * connector's read timeout counts seconds) reports -TH_EDEADCONN; so does a
 * connection the server or the network closed. A SIGSTOPped or unplugged
 * server is noticed within the deadline, never as a hang.
 *
 * Credentials: the password is read from the config during open and handed to
 * the connector; topohub never prints or logs it, and no message here contains
 * it.
 *
 * Signals: nothing here raises SIGPIPE. Over TLS the connector's writes could
 * (OpenSSL writes with write()), so TLS calls run with SIGPIPE blocked in the
 * calling thread and swallow one they caused; SIGPIPE from elsewhere stays
 * pending as before.
 *
 * Threads: one thread at a time per source; different sources are
 * independent and may be opened concurrently (the connector's global init is
 * done once, under pthread_once). th_source_next_event() blocks up to the
 * deadline. After fork(), only one of the processes may use a source; the
 * other must not even close it (closing sends COM_QUIT on the shared socket):
 * let it leak or exit.
 */
#ifndef TH_SOURCE_H
#define TH_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Authentication plugins the connector may use (MARIADB_OPT_RESTRICTED_AUTH):
 * only those that never put the password on the wire in clear text. A server
 * (or anyone who can pose as one: TLS is optional) that asks for
 * mysql_clear_password, dialog or anything else gets nothing; the connection
 * fails. mysql_clear_password is added only over TLS with the certificate
 * verified (tls and tls_verify), where the server is known. Both the binlog
 * connection (source_live.c) and the hub's query connections use these.
 */
#define TH_SOURCE_AUTH_PLUGINS "mysql_native_password,caching_sha2_password,client_ed25519"
#define TH_SOURCE_AUTH_PLUGINS_VERIFIED_TLS TH_SOURCE_AUTH_PLUGINS ",mysql_clear_password"

/* Which of the two lists a connection gets: the one with clear text only to
 * a TCP server (socket NULL or "") with tls and tls_verify both set. Any
 * thread. */
const char *th_source_auth_plugins(bool tls, bool tls_verify, const char *socket);

/* Same values as enum th_binlog_flavor in binlog.h. */
enum th_source_flavor {
	TH_SOURCE_FLAVOR_UNKNOWN = 0,
	TH_SOURCE_FLAVOR_MYSQL = 1,
	TH_SOURCE_FLAVOR_MARIADB = 2,
};

struct th_source_config {
	/* Where: a Unix socket when `socket` is set, else TCP to host:port. */
	const char *host;             /* NULL: "127.0.0.1" */
	unsigned port;                /* 0: 3306 */
	const char *socket;
	const char *user;
	const char *password;         /* used during open only; never logged */
	/* TLS (TCP only): tls requires it; tls_verify also checks the server's
	 * certificate against tls_ca and its name against host. */
	bool tls;
	bool tls_verify;
	const char *tls_ca, *tls_cert, *tls_key;

	uint32_t server_id;           /* our replica id; 0: a random one >= 2^31 */
	uint32_t heartbeat_ms;        /* 0: 1000 */
	uint32_t connect_timeout_ms;  /* 0: 10000 (rounded up to seconds) */

	/*
	 * Where to start. With gtid set (even ""): resume after those
	 * transactions. It is read per the server's flavour: a MySQL GTID set
	 * ("uuid:1-5,...") or a MariaDB GTID position ("0-1-100,..."); text of
	 * the other flavour is -TH_EGTID. With gtid NULL: from binlog_file at
	 * binlog_pos (NULL or "": the server's first binlog; 0: 4).
	 */
	const char *gtid;
	const char *binlog_file;
	uint64_t binlog_pos;

	bool non_blocking;            /* at the end of the binlog: EOF (0) instead of waiting */
	bool pass_heartbeats;         /* return HEARTBEAT (27) / HEARTBEAT_V2 (41) events too */
	const char *name;             /* for messages; NULL: "host:port" or the socket path */
};

struct th_source;

/*
 * Connects and starts the dump. On success *out is the new source (close with
 * th_source_close). On failure *out is NULL and err (may be NULL) receives a
 * message naming the server and what failed, with the server's own message:
 *   -EINVAL        config incomplete (no user), or a binlog_pos MariaDB cannot take (> 2^32-1)
 *   -TH_ESERVER    the server's binlog_checksum is neither NONE nor CRC32
 *   -TH_EMYSQL     connection or authentication refused, a session query failed
 *   -TH_EGTID      cfg->gtid is not valid for the server's flavour
 *   -TH_EDEADCONN  the server did not answer within the timeouts
 *   -ENOMEM
 * The server's refusal of the dump itself (unknown file, purged GTIDs) comes
 * from the first th_source_next_event(): the server answers the dump command
 * only when it starts streaming.
 */
int th_source_live_open(const struct th_source_config *cfg, struct th_source **out, char *err,
			size_t err_len);

/*
 * The next event: 1 with *bytes and *len set to exactly one event (header, body,
 * checksum as the server sent them), valid until the next call or close; 0
 * when the server ended the stream (non_blocking at the end of the binlog);
 * or negative, after which the source is finished and every later call returns
 * the same code:
 *   -TH_EDEADCONN  nothing received within the deadline, or the connection closed
 *   -TH_EMYSQL     the server sent an error (message in th_source_error, with its code)
 *   -TH_EPROTO     a malformed packet (size disagrees with the event header)
 */
int th_source_next_event(struct th_source *src, const uint8_t **bytes, size_t *len);

/* Closes the connection and frees src. NULL is fine. */
void th_source_close(struct th_source *src);

/* Message of the last failure ("" when none); valid until the next call on src. */
const char *th_source_error(const struct th_source *src);
/* After -TH_EMYSQL from th_source_next_event: the server's error code (1236:
 * the server cannot continue from the requested position); else 0. */
unsigned th_source_server_errno(const struct th_source *src);
enum th_source_flavor th_source_flavor(const struct th_source *src);
/* The server's version string ("10.11.19-MariaDB-0+deb12u1-log", "8.0.45"). */
const char *th_source_server_version(const struct th_source *src);
/* The server's @@global.binlog_checksum as the events carry it: 0 none, 1 CRC32
 * (enum th_binlog_checksum); what a decoder must assume before the first
 * FORMAT_DESCRIPTION (th_binlog_decoder_set_checksum). */
int th_source_checksum(const struct th_source *src);
/* The replica server_id this source uses. */
uint32_t th_source_server_id(const struct th_source *src);
/* The deadline in milliseconds after which silence means a dead connection. */
uint32_t th_source_deadline_ms(const struct th_source *src);

/* Binlog file and end position of the last event received (from ROTATE events
 * and event headers); "" and 0 before any. Informational: resume by GTID. */
void th_source_position(const struct th_source *src, const char **file, uint64_t *pos);

struct th_source_stats {
	uint64_t events;              /* returned by th_source_next_event */
	uint64_t heartbeats;          /* received (returned or not) */
	uint64_t bytes;               /* event bytes received, heartbeats included */
};
void th_source_stats(const struct th_source *src, struct th_source_stats *out);

#endif
