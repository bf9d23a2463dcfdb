/* SPDX-License-Identifier: Apache-2.0 */
/* The live binlog source: a replica connection to MySQL or MariaDB; see source.h. */
#include "readers/source.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <errmsg.h>
#include <mysql.h>

#include "readers/gtid.h"
#include "common/th_buf.h"
#include "common/th_bytes.h"
#include "common/th_error.h"
#include "common/th_time.h"

/* Replication commands (enum_server_command) and their flags. */
#define CMD_BINLOG_DUMP        0x12
#define CMD_BINLOG_DUMP_GTID   0x1e
#define DUMP_NON_BLOCK         0x0001 /* EOF at the end instead of waiting */
#define DUMP_THROUGH_POSITION  0x0002 /* COM_BINLOG_DUMP_GTID: name and 8-byte pos are meaningful */
#define DUMP_THROUGH_GTID      0x0004 /* COM_BINLOG_DUMP_GTID: a GTID set follows */
/* MariaDB: the replica understands GTID events (MARIA_SLAVE_CAPABILITY_GTID). */
#define MARIA_SLAVE_CAPABILITY_GTID 4

#define EV_HEADER_LEN   19
#define EV_ROTATE       4
#define EV_HEARTBEAT    27
#define EV_HEARTBEAT_V2 41

struct th_source {
	MYSQL *mysql;
	enum th_source_flavor flavor;
	int checksum;                  /* 0 none, 1 CRC32 */
	uint32_t server_id;
	uint32_t deadline_ms;
	bool pass_heartbeats;
	bool tls;
	bool eof;
	int failed;                    /* sticky negative result */
	unsigned server_errno;         /* the server's error code behind -TH_EMYSQL */
	char name[280];
	char version[128];
	char file[512];                /* current binlog file, from ROTATE */
	uint64_t pos;
	struct th_source_stats stats;
	char err[768];
};

static void set_err(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *buf, size_t len, const char *fmt, ...)
{
	if (!buf || !len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* The connector's one-time global setup is not thread-safe; mysql_init() would
 * run it implicitly on first use, from whichever thread comes first. */
static pthread_once_t library_once = PTHREAD_ONCE_INIT;

static void library_init(void)
{
	mysql_library_init(0, NULL, NULL);
}

/* Lost connection and gone-away: the peer closed, or the read timed out. */
static bool is_dead_conn(unsigned err)
{
	return err == CR_SERVER_LOST || err == CR_SERVER_GONE_ERROR;
}

/* Runs one session statement; a result set (if any) is read into value. */
static int session_query(struct th_source *src, const char *sql, char *value, size_t value_len, char *err,
			 size_t err_len)
{
	MYSQL *m = src->mysql;
	if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) != 0)
		goto fail;
	MYSQL_RES *res = mysql_store_result(m);
	if (!res) {
		if (mysql_field_count(m) != 0)
			goto fail;
		return 0;
	}
	MYSQL_ROW row = mysql_fetch_row(res);
	if (value && value_len) {
		unsigned long *lens = row ? mysql_fetch_lengths(res) : NULL;
		size_t n = row && row[0] ? lens[0] : 0;
		if (n >= value_len)
			n = value_len - 1;
		if (n)
			memcpy(value, row[0], n);
		value[n] = '\0';
	}
	mysql_free_result(res);
	return 0;
fail:;
	unsigned e = mysql_errno(m);
	set_err(err, err_len, "%s: %s failed: %s (%u)", src->name, sql, mysql_error(m), e);
	return is_dead_conn(e) ? -TH_EDEADCONN : -TH_EMYSQL;
}

static uint32_t random_server_id(void)
{
	uint32_t id = 0;
	if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
		id = (uint32_t)th_now_ns();
	return id | 0x80000000u;
}

const char *th_source_auth_plugins(bool tls, bool tls_verify, const char *socket)
{
	/* Over a Unix socket TLS is not used at all (the connector skips it). */
	bool verified_tls = tls && tls_verify && !(socket && *socket);
	return verified_tls ? TH_SOURCE_AUTH_PLUGINS_VERIFIED_TLS : TH_SOURCE_AUTH_PLUGINS;
}

static int set_options(struct th_source *src, const struct th_source_config *cfg, unsigned read_timeout_s)
{
	MYSQL *m = src->mysql;
	unsigned connect_s = ((cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000) + 999) / 1000;
	my_bool off = 0, on = 1;
	/* Events can be as large as the server's max_allowed_packet (1 GiB at most). */
	unsigned long max_packet = 1ul << 30;
	int rc = 0;
	rc |= mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
	rc |= mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &read_timeout_s);
	rc |= mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &read_timeout_s);
	/* A silent reconnect would restart the dump at the wrong place. */
	rc |= mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);
	rc |= mysql_optionsv(m, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
	unsigned proto = cfg->socket && *cfg->socket ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
	rc |= mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
	rc |= mysql_optionsv(m, MARIADB_OPT_RESTRICTED_AUTH, th_source_auth_plugins(cfg->tls, cfg->tls_verify, cfg->socket));
	if (cfg->tls) {
		rc |= mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &on);
		if (cfg->tls_ca)
			rc |= mysql_optionsv(m, MYSQL_OPT_SSL_CA, cfg->tls_ca);
		if (cfg->tls_cert)
			rc |= mysql_optionsv(m, MYSQL_OPT_SSL_CERT, cfg->tls_cert);
		if (cfg->tls_key)
			rc |= mysql_optionsv(m, MYSQL_OPT_SSL_KEY, cfg->tls_key);
		my_bool verify = cfg->tls_verify;
		rc |= mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
	}
	return rc ? -EINVAL : 0;
}

/* Session variables of a replica, per flavour (see source.h). */
static int prepare_session(struct th_source *src, const struct th_source_config *cfg, uint64_t heartbeat_ns,
			   char *err, size_t err_len)
{
	char value[64], sql[160];
	int rc = session_query(src, "SELECT @@global.binlog_checksum", value, sizeof value, err, err_len);
	if (rc < 0)
		return rc;
	src->checksum = strcmp(value, "CRC32") == 0 ? 1 : 0;
	if (src->checksum == 0 && strcmp(value, "NONE") != 0) {
		set_err(err, err_len, "%s: unknown binlog_checksum '%s'", src->name, value);
		return -TH_ESERVER;
	}
	rc = session_query(src, "SET @master_binlog_checksum = @@global.binlog_checksum", NULL, 0, err, err_len);
	if (rc < 0)
		return rc;
	snprintf(sql, sizeof sql, "SET @master_heartbeat_period = %llu", (unsigned long long)heartbeat_ns);
	if ((rc = session_query(src, sql, NULL, 0, err, err_len)) < 0)
		return rc;
	if (src->flavor == TH_SOURCE_FLAVOR_MYSQL) {
		snprintf(sql, sizeof sql, "SET @source_heartbeat_period = %llu", (unsigned long long)heartbeat_ns);
		return session_query(src, sql, NULL, 0, err, err_len);
	}
	snprintf(sql, sizeof sql, "SET @mariadb_slave_capability = %d", MARIA_SLAVE_CAPABILITY_GTID);
	if ((rc = session_query(src, sql, NULL, 0, err, err_len)) < 0)
		return rc;
	if (!cfg->gtid)
		return 0;

	struct th_gtid_pos *pos = NULL;
	struct th_buf text = TH_BUF_INIT, q = TH_BUF_INIT;
	char why[200];
	rc = th_gtid_pos_new(&pos);
	if (rc == 0) {
		rc = th_gtid_pos_parse(pos, cfg->gtid, why, sizeof why);
		if (rc == -TH_EGTID)
			set_err(err, err_len, "%s is MariaDB; the start position is not a MariaDB GTID position: %s",
				src->name, why);
	}
	if (rc == 0)
		rc = th_gtid_pos_format(pos, &text);
	if (rc == 0) {
		/* The canonical text holds only digits, '-' and ',': nothing to quote. */
		th_buf_printf(&q, "SET @slave_connect_state = '%s'", th_buf_cstr(&text));
		rc = th_buf_failed(&q) ? -ENOMEM : session_query(src, th_buf_cstr(&q), NULL, 0, err, err_len);
	}
	if (rc == 0)
		rc = session_query(src, "SET @slave_gtid_strict_mode = 1", NULL, 0, err, err_len);
	if (rc == 0)
		rc = session_query(src, "SET @slave_gtid_ignore_duplicates = 0", NULL, 0, err, err_len);
	th_gtid_pos_free(pos);
	th_buf_free(&text);
	th_buf_free(&q);
	return rc;
}

/* Builds the dump command's arguments (everything after the command byte). */
static int build_dump(struct th_source *src, const struct th_source_config *cfg, struct th_buf *out,
		      uint8_t *command, char *err, size_t err_len)
{
	const char *file = cfg->binlog_file ? cfg->binlog_file : "";
	uint64_t pos = cfg->binlog_pos ? cfg->binlog_pos : 4;
	uint16_t flags = cfg->non_blocking ? DUMP_NON_BLOCK : 0;
	size_t name_len = strlen(file);
	uint8_t b[16];

	bool mysql_gtid = src->flavor == TH_SOURCE_FLAVOR_MYSQL && cfg->gtid;
	if (mysql_gtid || (src->flavor == TH_SOURCE_FLAVOR_MYSQL && pos > UINT32_MAX)) {
		/* COM_BINLOG_DUMP_GTID: flags 2, server_id 4, name_len 4, name,
		 * pos 8, data_size 4, encoded set. */
		struct th_gtid_set *set = NULL;
		struct th_buf enc = TH_BUF_INIT;
		char why[200];
		int rc = th_gtid_set_new(&set);
		if (rc == 0 && mysql_gtid) {
			rc = th_gtid_set_parse(set, cfg->gtid, why, sizeof why);
			if (rc == -TH_EGTID)
				set_err(err, err_len, "%s is MySQL; the start position is not a GTID set: %s",
					src->name, why);
		}
		if (rc == 0)
			rc = th_gtid_set_encode(set, &enc);
		if (rc == 0) {
			*command = CMD_BINLOG_DUMP_GTID;
			if (mysql_gtid) {
				flags |= DUMP_THROUGH_GTID;
				name_len = 0; /* the set alone says where to start */
				pos = 4;
			} else {
				flags |= DUMP_THROUGH_POSITION;
			}
			th_put_le16(b, flags);
			th_put_le32(b + 2, src->server_id);
			th_put_le32(b + 6, (uint32_t)name_len);
			th_buf_append(out, b, 10);
			th_buf_append(out, file, name_len);
			th_put_le64(b, pos);
			th_buf_append(out, b, 8);
			/* The server reads data_size and the set whatever the flags say. */
			th_put_le32(b, (uint32_t)enc.len);
			th_buf_append(out, b, 4);
			th_buf_append(out, enc.data, enc.len);
			rc = th_buf_failed(out) ? -ENOMEM : 0;
		}
		th_gtid_set_free(set);
		th_buf_free(&enc);
		return rc;
	}
	if (pos > UINT32_MAX) {
		set_err(err, err_len, "%s: binlog position %llu does not fit COM_BINLOG_DUMP", src->name,
			(unsigned long long)pos);
		return -EINVAL;
	}
	/* COM_BINLOG_DUMP: pos 4, flags 2, server_id 4, file name to the end.
	 * MariaDB with @slave_connect_state ignores file and pos. */
	*command = CMD_BINLOG_DUMP;
	if (src->flavor == TH_SOURCE_FLAVOR_MARIADB && cfg->gtid) {
		file = "";
		name_len = 0;
		pos = 4;
	}
	th_put_le32(b, (uint32_t)pos);
	th_put_le16(b + 4, flags);
	th_put_le32(b + 6, src->server_id);
	th_buf_append(out, b, 10);
	th_buf_append(out, file, name_len);
	return th_buf_failed(out) ? -ENOMEM : 0;
}

static int live_open(const struct th_source_config *cfg, struct th_source **out, char *err, size_t err_len)
{
	*out = NULL;
	set_err(err, err_len, "%s", "");
	if (!cfg || !cfg->user) {
		set_err(err, err_len, "source: no user configured");
		return -EINVAL;
	}
	pthread_once(&library_once, library_init);
	struct th_source *src = calloc(1, sizeof *src);
	if (!src)
		return -ENOMEM;
	bool unix_socket = cfg->socket && *cfg->socket;
	const char *host = cfg->host && *cfg->host ? cfg->host : "127.0.0.1";
	unsigned port = cfg->port ? cfg->port : 3306;
	if (cfg->name)
		snprintf(src->name, sizeof src->name, "%s", cfg->name);
	else if (unix_socket)
		snprintf(src->name, sizeof src->name, "%s", cfg->socket);
	else
		snprintf(src->name, sizeof src->name, "%s:%u", host, port);
	src->server_id = cfg->server_id ? cfg->server_id : random_server_id();
	src->pass_heartbeats = cfg->pass_heartbeats;
	src->tls = cfg->tls;
	uint64_t heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
	/* Two missed heartbeats and some slack; the connector counts whole seconds. */
	unsigned timeout_s = (unsigned)((2 * heartbeat_ms + 500 + 999) / 1000);
	src->deadline_ms = timeout_s * 1000;

	int rc;
	src->mysql = mysql_init(NULL);
	if (!src->mysql) {
		free(src);
		return -ENOMEM;
	}
	if ((rc = set_options(src, cfg, timeout_s)) < 0) {
		set_err(err, err_len, "%s: the connector refused an option", src->name);
		goto fail;
	}
	if (!mysql_real_connect(src->mysql, unix_socket ? "localhost" : host, cfg->user,
				cfg->password ? cfg->password : "", NULL, unix_socket ? 0 : port,
				unix_socket ? cfg->socket : NULL, 0)) {
		unsigned e = mysql_errno(src->mysql);
		set_err(err, err_len, "%s: cannot connect as %s: %s (%u)", src->name, cfg->user,
			mysql_error(src->mysql), e);
		rc = is_dead_conn(e) ? -TH_EDEADCONN : -TH_EMYSQL;
		goto fail;
	}
	snprintf(src->version, sizeof src->version, "%s", mysql_get_server_info(src->mysql));
	src->flavor = strstr(src->version, "MariaDB") ? TH_SOURCE_FLAVOR_MARIADB : TH_SOURCE_FLAVOR_MYSQL;

	rc = prepare_session(src, cfg, heartbeat_ms * 1000000u, err, err_len);
	if (rc < 0)
		goto fail;
	struct th_buf cmd = TH_BUF_INIT;
	uint8_t command = 0;
	rc = build_dump(src, cfg, &cmd, &command, err, err_len);
	if (rc == 0) {
		/* Sent raw, without reading an answer (skip_check): the answer is
		 * the event stream, read by th_source_next_event. */
		if (src->mysql->methods->db_command(src->mysql, (enum enum_server_command)command, cmd.data,
						    cmd.len, 1, NULL) != 0) {
			unsigned e = mysql_errno(src->mysql);
			set_err(err, err_len, "%s: sending the dump command: %s (%u)", src->name,
				mysql_error(src->mysql), e);
			rc = is_dead_conn(e) ? -TH_EDEADCONN : -TH_EMYSQL;
		}
	}
	th_buf_free(&cmd);
	if (rc < 0)
		goto fail;
	*out = src;
	return 0;
fail:
	mysql_close(src->mysql);
	free(src);
	return rc;
}

static int fail_with(struct th_source *src, int rc)
{
	src->failed = rc;
	return rc;
}

/* Follows the binlog position: ROTATE names the file, headers the end position. */
static void track_position(struct th_source *src, const uint8_t *ev, size_t len)
{
	size_t fixed = EV_HEADER_LEN + 8 + (src->checksum ? 4u : 0u); /* header, position, CRC32 */
	if (ev[4] == EV_ROTATE) {
		if (len < fixed)
			return;
		size_t name_len = len - fixed;
		if (name_len >= sizeof src->file)
			name_len = sizeof src->file - 1;
		memcpy(src->file, ev + EV_HEADER_LEN + 8, name_len);
		src->file[name_len] = '\0';
		src->pos = (uint64_t)th_le32(ev + EV_HEADER_LEN) | (uint64_t)th_le32(ev + EV_HEADER_LEN + 4) << 32;
		return;
	}
	uint32_t log_pos = th_le32(ev + 13);
	if (log_pos)
		src->pos = log_pos;
}

static int next_event(struct th_source *src, const uint8_t **bytes, size_t *len)
{
	if (src->failed)
		return src->failed;
	if (src->eof)
		return 0;
	for (;;) {
		uint64_t t0 = th_now_ns();
		unsigned long n = mysql_net_read_packet(src->mysql);
		if (n == packet_error) {
			unsigned e = mysql_errno(src->mysql);
			if (is_dead_conn(e)) {
				uint64_t waited_ms = (th_now_ns() - t0) / 1000000u;
				if (waited_ms + 100 >= src->deadline_ms)
					set_err(src->err, sizeof src->err,
						"%s: nothing received for %llu ms (heartbeat deadline %u ms): "
						"connection is dead",
						src->name, (unsigned long long)waited_ms, src->deadline_ms);
				else
					set_err(src->err, sizeof src->err, "%s: connection lost: %s (%u)", src->name,
						mysql_error(src->mysql), e);
				return fail_with(src, -TH_EDEADCONN);
			}
			set_err(src->err, sizeof src->err, "%s: server error %u (%s): %s", src->name, e,
				mysql_sqlstate(src->mysql), mysql_error(src->mysql));
			src->server_errno = e;
			return fail_with(src, -TH_EMYSQL);
		}
		const uint8_t *p = src->mysql->net.read_pos;
		if (n >= 1 && p[0] == 0xfe && n < 9) {
			src->eof = true;
			return 0;
		}
		if (n < 1 + EV_HEADER_LEN || p[0] != 0x00) {
			set_err(src->err, sizeof src->err,
				"%s: unexpected packet in the binlog stream (%lu bytes, first byte 0x%02x)",
				src->name, n, n ? p[0] : 0);
			return fail_with(src, -TH_EPROTO);
		}
		const uint8_t *ev = p + 1;
		size_t ev_len = n - 1;
		if (th_le32(ev + 9) != ev_len) {
			set_err(src->err, sizeof src->err,
				"%s: packet of %zu bytes holds an event whose header says %u bytes", src->name,
				ev_len, th_le32(ev + 9));
			return fail_with(src, -TH_EPROTO);
		}
		src->stats.bytes += ev_len;
		track_position(src, ev, ev_len);
		if (ev[4] == EV_HEARTBEAT || ev[4] == EV_HEARTBEAT_V2) {
			src->stats.heartbeats++;
			if (!src->pass_heartbeats)
				continue;
		}
		src->stats.events++;
		*bytes = ev;
		*len = ev_len;
		return 1;
	}
}

/*
 * The connector hands the socket to OpenSSL (SSL_set_fd), whose writes are
 * plain write()s: writing to a peer that died raises SIGPIPE, which would kill
 * the whole process. Over TLS, calls that may write run with SIGPIPE blocked
 * in this thread, and a SIGPIPE they raised is consumed before unblocking.
 * (Without TLS the connector sends with MSG_NOSIGNAL.)
 */
struct sigpipe_guard {
	bool active;
	bool was_pending;
	sigset_t old;
};

static void sigpipe_block(struct sigpipe_guard *g, bool tls)
{
	g->active = tls;
	if (!tls)
		return;
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigemptyset(&pending);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_unblock(struct sigpipe_guard *g)
{
	if (!g->active)
		return;
	if (!g->was_pending) {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

int th_source_live_open(const struct th_source_config *cfg, struct th_source **out, char *err, size_t err_len)
{
	struct sigpipe_guard g;
	sigpipe_block(&g, cfg && cfg->tls);
	int rc = live_open(cfg, out, err, err_len);
	sigpipe_unblock(&g);
	return rc;
}

int th_source_next_event(struct th_source *src, const uint8_t **bytes, size_t *len)
{
	struct sigpipe_guard g;
	sigpipe_block(&g, src->tls);
	int rc = next_event(src, bytes, len);
	sigpipe_unblock(&g);
	return rc;
}

void th_source_close(struct th_source *src)
{
	if (!src)
		return;
	struct sigpipe_guard g;
	sigpipe_block(&g, src->tls);
	mysql_close(src->mysql);
	sigpipe_unblock(&g);
	free(src);
}

const char *th_source_error(const struct th_source *src)
{
	return src->err;
}

enum th_source_flavor th_source_flavor(const struct th_source *src)
{
	return src->flavor;
}

const char *th_source_server_version(const struct th_source *src)
{
	return src->version;
}

int th_source_checksum(const struct th_source *src)
{
	return src->checksum;
}

unsigned th_source_server_errno(const struct th_source *src)
{
	return src->server_errno;
}

uint32_t th_source_server_id(const struct th_source *src)
{
	return src->server_id;
}

uint32_t th_source_deadline_ms(const struct th_source *src)
{
	return src->deadline_ms;
}

void th_source_position(const struct th_source *src, const char **file, uint64_t *pos)
{
	if (file)
		*file = src->file;
	if (pos)
		*pos = src->pos;
}

void th_source_stats(const struct th_source *src, struct th_source_stats *out)
{
	*out = src->stats;
}
