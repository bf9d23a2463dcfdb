/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny MySQL-protocol server that replays a binlog file; see replay_server.h. */
#include "tests/support/replay_server.h"
#include "tests/support/support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <arpa/inet.h>

#include "readers/gtid.h"
#include "common/th_buf.h"
#include "common/th_bytes.h"
#include "common/th_time.h"

/* Capability flags we offer: 4.1 protocol, plugin auth, no TLS, classic EOF. */
#define CLIENT_LONG_PASSWORD      0x00000001u /* also tells Connector/C "MySQL, not MariaDB" */
#define CLIENT_LONG_FLAG          0x00000004u
#define CLIENT_CONNECT_WITH_DB    0x00000008u
#define CLIENT_PROTOCOL_41        0x00000200u
#define CLIENT_TRANSACTIONS       0x00002000u
#define CLIENT_SECURE_CONNECTION  0x00008000u
#define CLIENT_MULTI_RESULTS      0x00020000u
#define CLIENT_PLUGIN_AUTH        0x00080000u
#define CLIENT_CONNECT_ATTRS      0x00100000u
#define CLIENT_PLUGIN_AUTH_LENENC 0x00200000u
#define SERVER_CAPS (CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41 | \
		     CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | \
		     CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH_LENENC)
#define STATUS_AUTOCOMMIT 0x0002

#define COM_QUIT 0x01
#define COM_QUERY 0x03
#define COM_PING 0x0e
#define COM_BINLOG_DUMP 0x12
#define COM_BINLOG_DUMP_GTID 0x1e
#define DUMP_NON_BLOCK 0x0001

#define EV_ROTATE 4
#define EV_STOP 3
#define EV_HEARTBEAT 27
#define EV_GTID 33
#define EV_ANONYMOUS_GTID 34
#define LOG_EVENT_ARTIFICIAL_F 0x20

struct th_replay {
	struct th_replay_options opts;
	char version[64];
	char file_name[256];         /* basename, for ROTATE and heartbeats */
	uint8_t *binlog;
	size_t binlog_len;
	int listen_fd;
	int stop_pipe[2];            /* a byte in [0] stops everything */
	unsigned port;
	pthread_t thread;
	pthread_mutex_t lock;        /* guards req */
	struct th_replay_request req;
};

struct conn {
	struct th_replay *rs;
	int fd;
	uint8_t seq;                 /* next sequence number to send */
};

static void buf_le(struct th_buf *b, uint64_t v, int n)
{
	uint8_t t[8];
	th_put_le(t, v, n);
	th_buf_append(b, t, (size_t)n);
}

static void buf_lenenc_str(struct th_buf *b, const char *s)
{
	size_t n = strlen(s);
	th_buf_putc(b, (char)n); /* our strings are short (< 251) */
	th_buf_append(b, s, n);
}

/* Waits until fd is readable; false when stopping or on timeout_ms (-1: none). */
static bool wait_readable(struct th_replay *rs, int fd, int timeout_ms)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = rs->stop_pipe[0], .events = POLLIN } };
	for (;;) {
		int r = poll(p, 2, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		return r > 0 && !(p[1].revents & POLLIN) && (p[0].revents & (POLLIN | POLLHUP | POLLERR));
	}
}

static bool stopping(struct th_replay *rs)
{
	struct pollfd p = { .fd = rs->stop_pipe[0], .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

static bool read_full(struct conn *c, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		if (!wait_readable(c->rs, c->fd, -1))
			return false;
		ssize_t r = recv(c->fd, p, n, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return false;
		}
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static bool write_full(struct conn *c, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += r;
		n -= (size_t)r;
	}
	return true;
}

/* Reads one client packet (commands are small: no multi-packet support). */
static bool read_packet(struct conn *c, struct th_buf *out)
{
	uint8_t h[4];
	if (!read_full(c, h, 4))
		return false;
	size_t len = th_le24(h);
	c->seq = (uint8_t)(h[3] + 1);
	th_buf_reset(out);
	if (len == 0xffffff || th_buf_reserve(out, len + 1) != 0)
		return false;
	if (!read_full(c, out->data, len))
		return false;
	out->len = len;
	return true;
}

/* Sends one payload as one or more packets (split at 2^24-1 bytes). */
static bool write_packet(struct conn *c, const void *payload, size_t len)
{
	const uint8_t *p = payload;
	for (;;) {
		size_t n = len < 0xffffff ? len : 0xffffff;
		uint8_t h[4] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), c->seq++ };
		if (!write_full(c, h, 4) || !write_full(c, p, n))
			return false;
		p += n;
		len -= n;
		if (n < 0xffffff)
			return true;
	}
}

static bool send_ok(struct conn *c)
{
	static const uint8_t ok[] = { 0x00, 0, 0, STATUS_AUTOCOMMIT, 0, 0, 0 };
	return write_packet(c, ok, sizeof ok);
}

static bool send_eof(struct conn *c)
{
	static const uint8_t eof[] = { 0xfe, 0, 0, STATUS_AUTOCOMMIT, 0 };
	return write_packet(c, eof, sizeof eof);
}

static bool send_err(struct conn *c, uint16_t code, const char *state, const char *msg)
{
	struct th_buf b = TH_BUF_INIT;
	th_buf_putc(&b, (char)0xff);
	buf_le(&b, code, 2);
	th_buf_putc(&b, '#');
	th_buf_append(&b, state, 5);
	th_buf_puts(&b, msg);
	bool ok = !th_buf_failed(&b) && write_packet(c, b.data, b.len);
	th_buf_free(&b);
	return ok;
}

/* A result set of one string column and one row. */
static bool send_value(struct conn *c, const char *column, const char *value)
{
	struct th_buf b = TH_BUF_INIT;
	bool ok = write_packet(c, "\x01", 1);
	th_buf_reset(&b);
	buf_lenenc_str(&b, "def");
	buf_lenenc_str(&b, "");
	buf_lenenc_str(&b, "");
	buf_lenenc_str(&b, "");
	buf_lenenc_str(&b, column);
	buf_lenenc_str(&b, column);
	th_buf_putc(&b, 0x0c);
	buf_le(&b, 33, 2);         /* utf8 */
	buf_le(&b, 256, 4);        /* column length */
	th_buf_putc(&b, (char)0xfd); /* VAR_STRING */
	buf_le(&b, 0, 2);          /* flags */
	th_buf_putc(&b, 0x1f);     /* decimals: dynamic */
	buf_le(&b, 0, 2);
	ok = ok && !th_buf_failed(&b) && write_packet(c, b.data, b.len) && send_eof(c);
	th_buf_reset(&b);
	buf_lenenc_str(&b, value);
	ok = ok && !th_buf_failed(&b) && write_packet(c, b.data, b.len) && send_eof(c);
	th_buf_free(&b);
	return ok;
}

static bool handshake(struct conn *c, struct th_buf *pkt)
{
	struct th_replay *rs = c->rs;
	struct th_buf b = TH_BUF_INIT;
	uint8_t scramble[20];
	for (int i = 0; i < 20; i++)
		scramble[i] = (uint8_t)(0x21 + (th_now_ns() >> (i % 16)) % 90); /* printable, no NUL */
	th_buf_putc(&b, 10);
	th_buf_append(&b, rs->version, strlen(rs->version) + 1);
	buf_le(&b, 1, 4);                       /* connection id */
	th_buf_append(&b, scramble, 8);
	th_buf_putc(&b, 0);
	buf_le(&b, SERVER_CAPS & 0xffff, 2);
	th_buf_putc(&b, 45);                    /* utf8mb4_general_ci */
	buf_le(&b, STATUS_AUTOCOMMIT, 2);
	buf_le(&b, SERVER_CAPS >> 16, 2);
	th_buf_putc(&b, 21);                    /* auth data length, NUL included */
	th_buf_append(&b, "\0\0\0\0\0\0\0\0\0\0", 10);
	th_buf_append(&b, scramble + 8, 12);
	th_buf_putc(&b, 0);
	th_buf_append(&b, "mysql_native_password", 22);
	c->seq = 0;
	bool ok = !th_buf_failed(&b) && write_packet(c, b.data, b.len);
	th_buf_free(&b);
	if (!ok || !read_packet(c, pkt))
		return false;

	/* HandshakeResponse41: caps 4, max packet 4, charset 1, 23 zero, user NUL... */
	const uint8_t *p = (const uint8_t *)pkt->data;
	if (pkt->len < 33 || !(th_le32(p) & CLIENT_PROTOCOL_41))
		return send_err(c, 1043, "08S01", "replay server: bad handshake"), false;
	const char *user = (const char *)p + 32;
	size_t ulen = strnlen(user, pkt->len - 32);
	pthread_mutex_lock(&rs->lock);
	snprintf(rs->req.user, sizeof rs->req.user, "%.*s", (int)ulen, user);
	pthread_mutex_unlock(&rs->lock);
	if (rs->opts.user && (strlen(rs->opts.user) != ulen || memcmp(rs->opts.user, user, ulen) != 0)) {
		char msg[160];
		snprintf(msg, sizeof msg, "Access denied for user '%.*s'@'127.0.0.1' (using password: YES)",
			 (int)(ulen < 64 ? ulen : 64), user);
		send_err(c, 1045, "28000", msg);
		return false;
	}
	return send_ok(c);
}

/* "SELECT @@global.x" -> "x"; NULL when it is not a single variable. */
static const char *selected_variable(const char *q)
{
	while (*q == ' ')
		q++;
	if (strncasecmp(q, "SELECT", 6) != 0)
		return NULL;
	q += 6;
	while (*q == ' ')
		q++;
	if (strncmp(q, "@@", 2) != 0)
		return NULL;
	q += 2;
	if (strncasecmp(q, "global.", 7) == 0)
		q += 7;
	return q;
}

static bool handle_query(struct conn *c, const char *q)
{
	struct th_replay *rs = c->rs;
	pthread_mutex_lock(&rs->lock);
	rs->req.queries++;
	unsigned long long ns;
	if (sscanf(q, "SET @master_heartbeat_period = %llu", &ns) == 1)
		rs->req.heartbeat_ns = ns;
	if (strncmp(q, "SET @master_binlog_checksum = ", 30) == 0)
		snprintf(rs->req.checksum, sizeof rs->req.checksum, "%s",
			 strstr(q + 30, "binlog_checksum") ? "CRC32" : q + 30);
	pthread_mutex_unlock(&rs->lock);

	if (strncasecmp(q, "SET ", 4) == 0)
		return send_ok(c);
	const char *var = selected_variable(q);
	char sid[16];
	snprintf(sid, sizeof sid, "%u", rs->opts.server_id);
	static const char *const names[] = { "binlog_checksum", "version", "server_uuid", "server_id", "gtid_mode" };
	const char *values[] = { "CRC32", rs->version, "396e294c-1ca4-11f1-9ae7-00155da79c6b", sid, "ON" };
	for (size_t i = 0; var && i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(var, names[i]) == 0)
			return send_value(c, q + 7, values[i]);
	return send_err(c, 1064, "42000", "replay server: unsupported query");
}

/* A fake event (ROTATE or HEARTBEAT) with its CRC32, as one stream packet. */
static bool send_fake_event(struct conn *c, uint8_t type, uint32_t log_pos, bool with_pos)
{
	struct th_replay *rs = c->rs;
	struct th_buf b = TH_BUF_INIT;
	size_t name_len = strlen(rs->file_name);
	uint32_t size = (uint32_t)(19 + (with_pos ? 8 : 0) + name_len + 4);
	th_buf_putc(&b, 0x00);                   /* OK byte before every event */
	buf_le(&b, 0, 4);                        /* timestamp */
	th_buf_putc(&b, (char)type);
	buf_le(&b, rs->opts.server_id, 4);
	buf_le(&b, size, 4);
	buf_le(&b, log_pos, 4);
	buf_le(&b, LOG_EVENT_ARTIFICIAL_F, 2);
	if (with_pos)
		buf_le(&b, 4, 8);
	th_buf_append(&b, rs->file_name, name_len);
	bool ok = !th_buf_failed(&b);
	if (ok) {
		buf_le(&b, crc32(0, (const Bytef *)b.data + 1, (uInt)(b.len - 1)), 4);
		ok = !th_buf_failed(&b) && write_packet(c, b.data, b.len);
	}
	th_buf_free(&b);
	return ok;
}

static bool stream_binlog(struct conn *c, const struct th_buf *pkt)
{
	struct th_replay *rs = c->rs;
	const uint8_t *p = (const uint8_t *)pkt->data;
	size_t n = pkt->len;
	struct th_replay_request r;
	pthread_mutex_lock(&rs->lock);
	r = rs->req;
	pthread_mutex_unlock(&rs->lock);
	r.command = p[0];
	r.file[0] = '\0';
	r.gtid_len = 0;
	struct th_gtid_set *skip = NULL;
	if (th_gtid_set_new(&skip) != 0)
		return false;
	bool ok = true;
	if (p[0] == COM_BINLOG_DUMP && n >= 11) {
		r.pos = th_le32(p + 1);
		r.flags = (uint16_t)th_le16(p + 5);
		r.server_id = th_le32(p + 7);
		snprintf(r.file, sizeof r.file, "%.*s", (int)(n - 11), (const char *)p + 11);
	} else if (p[0] == COM_BINLOG_DUMP_GTID && n >= 11) {
		r.flags = (uint16_t)th_le16(p + 1);
		r.server_id = th_le32(p + 3);
		uint32_t name_len = th_le32(p + 7);
		ok = n >= 11 + (size_t)name_len + 12;
		if (ok) {
			snprintf(r.file, sizeof r.file, "%.*s", (int)name_len, (const char *)p + 11);
			r.pos = th_le64(p + 11 + name_len);
			uint32_t data_len = th_le32(p + 19 + name_len);
			ok = n == 23 + (size_t)name_len + data_len && data_len <= sizeof r.gtid;
			if (ok) {
				memcpy(r.gtid, p + 23 + name_len, data_len);
				r.gtid_len = data_len;
				ok = th_gtid_set_decode(skip, r.gtid, data_len, NULL) == 0;
			}
		}
	} else {
		ok = false;
	}
	pthread_mutex_lock(&rs->lock);
	rs->req = r;
	pthread_mutex_unlock(&rs->lock);
	if (!ok) {
		th_gtid_set_free(skip);
		return send_err(c, 1236, "HY000", "replay server: malformed dump request");
	}

	ok = send_fake_event(c, EV_ROTATE, 0, true);
	bool skipping = false;
	for (size_t off = 4; ok && off + 19 <= rs->binlog_len;) {
		const uint8_t *ev = rs->binlog + off;
		uint32_t size = th_le32(ev + 9);
		if (size < 19 || size > rs->binlog_len - off)
			break;
		uint8_t type = ev[4];
		/* MySQL sends no event of a transaction the replica already has. */
		if (type == EV_GTID && size >= 19 + 25)
			skipping = th_gtid_set_contains_gtid(skip, ev + 20, th_le64(ev + 36));
		else if (type == EV_ANONYMOUS_GTID || type == EV_ROTATE || type == EV_STOP)
			skipping = false;
		if (!skipping) {
			uint8_t zero = 0;
			/* The OK byte and the event go out as one packet. */
			struct th_buf b = TH_BUF_INIT;
			th_buf_append(&b, &zero, 1);
			th_buf_append(&b, ev, size);
			ok = !th_buf_failed(&b) && write_packet(c, b.data, b.len);
			th_buf_free(&b);
		}
		off += size;
	}
	th_gtid_set_free(skip);
	if (!ok)
		return false;
	if (r.flags & DUMP_NON_BLOCK)
		return send_eof(c) && false; /* the server ends the dump connection too */
	uint64_t hb_ms = r.heartbeat_ns / 1000000u;
	for (;;) {
		int timeout = rs->opts.stall || hb_ms == 0 ? -1 : (int)hb_ms;
		if (wait_readable(rs, c->fd, timeout))
			return false; /* the client spoke (COM_QUIT) or closed */
		if (stopping(rs))
			return false;
		if (!send_fake_event(c, EV_HEARTBEAT, (uint32_t)rs->binlog_len, false))
			return false;
	}
}

static void serve(struct conn *c)
{
	struct th_buf pkt = TH_BUF_INIT;
	if (!handshake(c, &pkt))
		goto out;
	while (read_packet(c, &pkt) && pkt.len > 0) {
		uint8_t cmd = (uint8_t)pkt.data[0];
		bool ok;
		if (cmd == COM_QUIT)
			break;
		if (cmd == COM_QUERY) {
			pkt.data[pkt.len] = '\0'; /* read_packet reserved the room */
			ok = handle_query(c, pkt.data + 1);
		} else if (cmd == COM_PING) {
			ok = send_ok(c);
		} else if (cmd == COM_BINLOG_DUMP || cmd == COM_BINLOG_DUMP_GTID) {
			ok = stream_binlog(c, &pkt);
		} else {
			ok = send_err(c, 1047, "08S01", "replay server: unknown command");
		}
		if (!ok)
			break;
	}
out:
	th_buf_free(&pkt);
}

static void *server_main(void *arg)
{
	struct th_replay *rs = arg;
	while (wait_readable(rs, rs->listen_fd, -1)) {
		int fd = accept4(rs->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&rs->lock);
		unsigned connections = rs->req.connections + 1;
		memset(&rs->req, 0, sizeof rs->req);
		rs->req.connections = connections;
		pthread_mutex_unlock(&rs->lock);
		struct conn c = { .rs = rs, .fd = fd };
		serve(&c);
		close(fd);
	}
	return NULL;
}

int th_replay_start(const struct th_replay_options *opts, struct th_replay **out, char *why, size_t why_len)
{
	*out = NULL;
	struct th_replay *rs = calloc(1, sizeof *rs);
	if (!rs)
		return -ENOMEM;
	rs->opts = *opts;
	if (!rs->opts.server_id)
		rs->opts.server_id = 1;
	snprintf(rs->version, sizeof rs->version, "%s", opts->version ? opts->version : "8.0.45-replay");
	const char *slash = strrchr(opts->binlog_path, '/');
	snprintf(rs->file_name, sizeof rs->file_name, "%s", slash ? slash + 1 : opts->binlog_path);
	rs->listen_fd = rs->stop_pipe[0] = rs->stop_pipe[1] = -1;
	int rc = 0;

	int fd = open(opts->binlog_path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		th_test_say(why, why_len, "%s: %s", opts->binlog_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	rs->binlog_len = (size_t)st.st_size;
	rs->binlog = malloc(rs->binlog_len ? rs->binlog_len : 1);
	if (!rs->binlog || pread(fd, rs->binlog, rs->binlog_len, 0) != (ssize_t)rs->binlog_len) {
		close(fd);
		rc = rs->binlog ? -EIO : -ENOMEM;
		th_test_say(why, why_len, "%s: cannot read", opts->binlog_path);
		goto fail;
	}
	close(fd);
	if (rs->binlog_len < 4 || memcmp(rs->binlog, "\xfe" "bin", 4) != 0) {
		rc = -EINVAL;
		th_test_say(why, why_len, "%s: not a binlog (no magic)", opts->binlog_path);
		goto fail;
	}

	rs->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	if (rs->listen_fd < 0 || bind(rs->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(rs->listen_fd, 8) != 0 || getsockname(rs->listen_fd, (struct sockaddr *)&a, &alen) != 0 ||
	    pipe2(rs->stop_pipe, O_CLOEXEC) != 0) {
		rc = -errno;
		th_test_say(why, why_len, "replay server socket: %s", strerror(errno));
		goto fail;
	}
	rs->port = ntohs(a.sin_port);
	pthread_mutex_init(&rs->lock, NULL);
	rc = -pthread_create(&rs->thread, NULL, server_main, rs);
	if (rc < 0) {
		pthread_mutex_destroy(&rs->lock);
		th_test_say(why, why_len, "pthread_create: %s", strerror(-rc));
		goto fail;
	}
	*out = rs;
	return 0;
fail:
	if (rs->listen_fd >= 0)
		close(rs->listen_fd);
	if (rs->stop_pipe[0] >= 0) {
		close(rs->stop_pipe[0]);
		close(rs->stop_pipe[1]);
	}
	free(rs->binlog);
	free(rs);
	return rc;
}

unsigned th_replay_port(const struct th_replay *rs)
{
	return rs->port;
}

void th_replay_last_request(struct th_replay *rs, struct th_replay_request *out)
{
	pthread_mutex_lock(&rs->lock);
	*out = rs->req;
	pthread_mutex_unlock(&rs->lock);
}

void th_replay_stop(struct th_replay *rs)
{
	if (!rs)
		return;
	/* The pipe stays readable: every wait in the thread returns. */
	while (write(rs->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(rs->thread, NULL);
	pthread_mutex_destroy(&rs->lock);
	close(rs->listen_fd);
	close(rs->stop_pipe[0]);
	close(rs->stop_pipe[1]);
	free(rs->binlog);
	free(rs);
}
