/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connecting to a source server and checking that it can be streamed from:
 * the settings topohub needs, the grants, and that it holds every
 * transaction the hub already published. Publisher thread; see
 * hub_publisher.h.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/th_buf.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "hub/hub_log.h"
#include "hub/hub_publisher.h"
#include "readers/gtid.h"
#include "readers/source.h"

void th__hub_interrupt_mysql(void)
{
	/* The connector offers no way to interrupt a blocking read and retries
	 * on EINTR; shutdown(2) of the socket makes the read return at once.
	 * Every SOCK_STREAM socket of this process is a MySQL connection (the
	 * control socket is SOCK_SEQPACKET, the notify socket SOCK_DGRAM).
	 * shutdown, not close: the descriptor stays the connector's. */
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		int fd = atoi(e->d_name);
		if (fd == dirfd(d))
			continue;
		int type;
		socklen_t len = sizeof type;
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM)
			shutdown(fd, SHUT_RDWR);
	}
	closedir(d);
}
void th__pub_set_src_error(struct th__pub *p, const char *msg)
{
	pthread_mutex_lock(&p->h->src_lock);
	snprintf(p->h->src.last_error, sizeof p->h->src.last_error, "%s", msg);
	pthread_mutex_unlock(&p->h->src_lock);
}

MYSQL *th__pub_sql_connect(struct th__pub *p, const struct th_hub_source *s, char *err, size_t len)
{
	const struct th_hub_config *c = p->cfg;
	MYSQL *m = mysql_init(NULL);
	if (!m) {
		snprintf(err, len, "%s: out of memory", s->name);
		return NULL;
	}
	unsigned connect_s = (c->connect_timeout_ms + 999) / 1000, rw_s = 60;
	my_bool off = 0, on = 1;
	mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
	mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &rw_s);
	mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &rw_s);
	mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);
	unsigned long max_packet = 1ul << 30;
	mysql_optionsv(m, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
	unsigned proto = s->socket ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
	mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
	/* Never the password in clear text (readers/source.h). */
	mysql_optionsv(m, MARIADB_OPT_RESTRICTED_AUTH, th_source_auth_plugins(c->tls, c->tls_verify, s->socket));
	if (c->tls && !s->socket) {
		mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &on);
		if (c->tls_ca)
			mysql_optionsv(m, MYSQL_OPT_SSL_CA, c->tls_ca);
		if (c->tls_cert)
			mysql_optionsv(m, MYSQL_OPT_SSL_CERT, c->tls_cert);
		if (c->tls_key)
			mysql_optionsv(m, MYSQL_OPT_SSL_KEY, c->tls_key);
		my_bool verify = c->tls_verify;
		mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
	}
	if (!mysql_real_connect(m, s->socket ? "localhost" : s->host, c->user, c->password ? c->password : "",
				NULL, s->socket ? 0 : s->port, s->socket, 0)) {
		snprintf(err, len, "%s: connect as %s: %s (%u)", s->name, c->user, mysql_error(m), mysql_errno(m));
		mysql_close(m);
		return NULL;
	}
	return m;
}

int th__pub_sql_exec(MYSQL *m, const char *name, const char *sql, char *err, size_t len)
{
	if (mysql_query(m, sql) != 0) {
		snprintf(err, len, "%s: %.160s: %s (%u)", name, sql, mysql_error(m), mysql_errno(m));
		return -TH_EMYSQL;
	}
	MYSQL_RES *r = mysql_store_result(m);
	if (r)
		mysql_free_result(r);
	else if (mysql_field_count(m) != 0) {
		snprintf(err, len, "%s: %.160s: %s (%u)", name, sql, mysql_error(m), mysql_errno(m));
		return -TH_EMYSQL;
	}
	return 0;
}

/* Runs a query returning one row; copies up to n columns (NULL -> is_null). */
int th__pub_sql_row(MYSQL *m, const char *name, const char *sql, char (*vals)[256], bool *is_null, unsigned n,
		   char *err, size_t len)
{
	if (mysql_query(m, sql) != 0) {
		snprintf(err, len, "%s: %.160s: %s (%u)", name, sql, mysql_error(m), mysql_errno(m));
		return -TH_EMYSQL;
	}
	MYSQL_RES *r = mysql_store_result(m);
	if (!r) {
		snprintf(err, len, "%s: %.160s: no result: %s (%u)", name, sql, mysql_error(m), mysql_errno(m));
		return -TH_EMYSQL;
	}
	MYSQL_ROW row = mysql_fetch_row(r);
	if (!row || mysql_num_fields(r) < n) {
		mysql_free_result(r);
		snprintf(err, len, "%s: %.160s: no row", name, sql);
		return -ENOENT;
	}
	unsigned long *lens = mysql_fetch_lengths(r);
	for (unsigned i = 0; i < n; i++) {
		size_t l = row[i] ? lens[i] : 0;
		if (l > 255)
			l = 255;
		if (l)
			memcpy(vals[i], row[i], l);
		vals[i][l] = '\0';
		if (is_null)
			is_null[i] = row[i] == NULL;
	}
	mysql_free_result(r);
	return 0;
}

/* Appends `ident` with backquotes doubled. */
void th__pub_put_ident(struct th_buf *b, const char *ident)
{
	th_buf_putc(b, '`');
	for (const char *s = ident; *s; s++) {
		if (*s == '`')
			th_buf_putc(b, '`');
		th_buf_putc(b, *s);
	}
	th_buf_putc(b, '`');
}

const char *th__pub_table_schema(const struct th__pub *p, size_t i)
{
	return p->tables[i].schema ? p->tables[i].schema : p->cfg->schema;
}

/* ---- validation -------------------------------------------------------- */

static bool is_on(const char *v)
{
	return !strcmp(v, "1") || !strcasecmp(v, "ON");
}

/* Does a SHOW GRANTS text grant priv on *.* (or ALL)? */
static bool grants_have(const char *grants, const char *priv)
{
	return strstr(grants, priv) != NULL || strstr(grants, "ALL PRIVILEGES ON *.*") != NULL;
}

/*
 * The settings topohub needs. -TH_ESERVER with a message naming the setting
 * and the value it needs; -TH_EMYSQL when a query failed.
 */
int th__pub_validate(struct th__pub *p, MYSQL *m, const struct th_hub_source *s, bool *mariadb, char *err, size_t len)
{
	const char *version = mysql_get_server_info(m);
	*mariadb = version && strstr(version, "MariaDB") != NULL;
	char v[4][256];
	int rc = th__pub_sql_row(m, s->name,
			 *mariadb ? "SELECT @@global.log_bin, @@global.binlog_format, @@global.binlog_row_image, 'ON'"
				  : "SELECT @@global.log_bin, @@global.binlog_format, @@global.binlog_row_image, "
				    "@@global.gtid_mode",
			 v, NULL, 4, err, len);
	if (rc < 0)
		return rc;
	if (!is_on(v[0])) {
		snprintf(err, len, "%s: log_bin is OFF; topohub needs log_bin=ON (start the server with --log-bin)",
			 s->name);
		return -TH_ESERVER;
	}
	if (strcasecmp(v[1], "ROW")) {
		snprintf(err, len,
			 "%s: binlog_format is %s; topohub needs binlog_format=ROW "
			 "(SET GLOBAL binlog_format=ROW and binlog_format=ROW in the server's configuration)",
			 s->name, v[1]);
		return -TH_ESERVER;
	}
	if (strcasecmp(v[2], "FULL")) {
		snprintf(err, len,
			 "%s: binlog_row_image is %s; topohub needs binlog_row_image=FULL "
			 "(SET GLOBAL binlog_row_image=FULL and in the server's configuration)",
			 s->name, v[2]);
		return -TH_ESERVER;
	}
	if (!*mariadb && strcasecmp(v[3], "ON")) {
		snprintf(err, len, "%s: gtid_mode is %s; topohub needs gtid_mode=ON (with enforce_gtid_consistency=ON)",
			 s->name, v[3]);
		return -TH_ESERVER;
	}
	if (!p->cfg->check_grants)
		return 0;
	if (mysql_query(m, "SHOW GRANTS FOR CURRENT_USER()") != 0) {
		snprintf(err, len, "%s: SHOW GRANTS: %s (%u)", s->name, mysql_error(m), mysql_errno(m));
		return -TH_EMYSQL;
	}
	MYSQL_RES *r = mysql_store_result(m);
	struct th_buf g = TH_BUF_INIT;
	MYSQL_ROW row;
	while (r && (row = mysql_fetch_row(r)) != NULL) {
		if (row[0])
			th_buf_puts(&g, row[0]);
		th_buf_putc(&g, '\n');
	}
	if (r)
		mysql_free_result(r);
	const char *gt = th_buf_cstr(&g);
	rc = 0;
	if (!grants_have(gt, "REPLICATION SLAVE")) {
		snprintf(err, len,
			 "%s: user %s lacks the REPLICATION SLAVE privilege; topohub needs "
			 "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO <user>",
			 s->name, p->cfg->user);
		rc = -TH_ESERVER;
	} else if (!grants_have(gt, "REPLICATION CLIENT") && !grants_have(gt, "BINLOG MONITOR") &&
		   !grants_have(gt, "SUPER")) {
		snprintf(err, len,
			 "%s: user %s lacks the REPLICATION CLIENT privilege (BINLOG MONITOR on MariaDB); topohub "
			 "needs GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO <user>",
			 s->name, p->cfg->user);
		rc = -TH_ESERVER;
	}
	th_buf_free(&g);
	return rc;
}

/*
 * The resume position as text: the assembler's, which advances only when a
 * transaction is delivered, and every delivered transaction is published
 * before the next event is fed (or the stream ends in a reload). NULL when
 * out of memory.
 */
const char *th__pub_resume_gtid(struct th__pub *p)
{
	th_buf_reset(&p->gtid);
	if (!p->asm_ || th_txn_resume_gtid(p->asm_, &p->gtid) < 0 || th_buf_failed(&p->gtid))
		return NULL;
	return th_buf_cstr(&p->gtid);
}

/* Does the server's binlog hold every transaction of our position? (pos is
 * the server's @@gtid_binlog_pos or @@gtid_executed.) */
static bool server_has_position(struct th__pub *p, const char *server)
{
	const char *ours = th__pub_resume_gtid(p);
	bool yes = false;
	if (!ours)
		return true; /* no memory to check: the server's own check (1236) remains */
	if (p->flavor == TH_BINLOG_FLAVOR_MYSQL) {
		struct th_gtid_set *sv = NULL, *us = NULL;
		if (th_gtid_set_new(&sv) == 0 && th_gtid_set_new(&us) == 0 &&
		    th_gtid_set_parse(sv, server, NULL, 0) == 0 && th_gtid_set_parse(us, ours, NULL, 0) == 0)
			yes = th_gtid_set_contains(sv, us);
		th_gtid_set_free(sv);
		th_gtid_set_free(us);
		return yes;
	}
	struct th_gtid_pos *sv;
	if (th_gtid_pos_new(&sv) < 0)
		return true; /* no memory to check: let the server decide */
	if (th_gtid_pos_parse(sv, server, NULL, 0) == 0) {
		yes = true;
		const char *c = ours;
		while (yes && *c) {
			char one[80];
			size_t n = strcspn(c, ",");
			if (n > 0 && n < sizeof one) {
				memcpy(one, c, n);
				one[n] = '\0';
				struct th_maria_gtid g;
				if (th_maria_gtid_parse(one, &g) == 0)
					yes = th_gtid_pos_contains(sv, &g);
			}
			c += n + (c[n] == ',');
		}
	}
	th_gtid_pos_free(sv);
	return yes;
}

/* Does the server replicate from another (MariaDB: a connection in SHOW ALL
 * SLAVES STATUS)? false when it does not, or when we may not ask (no SLAVE
 * MONITOR grant): then a server behind the hub is reloaded from, as before. */
static bool is_replica(MYSQL *m)
{
	if (mysql_query(m, "SHOW ALL SLAVES STATUS") != 0)
		return false;
	MYSQL_RES *r = mysql_store_result(m);
	bool yes = r && mysql_num_rows(r) > 0;
	if (r)
		mysql_free_result(r);
	return yes;
}

/*
 * Connects and validates server s before streaming from it: after a
 * failover or a restart it may not be configured as the last one was, and
 * it may lack transactions we have published (a lagging or diverged
 * replica, a RESET MASTER): then 1, continuity is lost and we reload from
 * it; or 2 when it is a replica that may still catch up (message in err):
 * reloading from it would take the state back to its older one and publish
 * again what readers have seen, so the publisher tries the other sources
 * first (hub_publisher.c, BEHIND_WAIT_NS). 0 when fine, negative (message in
 * err) when not usable.
 */
int th__pub_check_server(struct th__pub *p, const struct th_hub_source *s, char *err, size_t len)
{
	MYSQL *m = th__pub_sql_connect(p, s, err, len);
	if (!m)
		return -TH_EMYSQL;
	bool mariadb;
	int rc = th__pub_validate(p, m, s, &mariadb, err, len);
	if (rc == 0 && (mariadb ? TH_BINLOG_FLAVOR_MARIADB : TH_BINLOG_FLAVOR_MYSQL) != p->flavor) {
		/* A GTID position of one flavour means nothing to the other. */
		snprintf(err, len, "%s is %s, the position is %s's: not a failover target", s->name,
			 mariadb ? "MariaDB" : "MySQL", mariadb ? "MySQL" : "MariaDB");
		rc = -TH_ESERVER;
	}
	if (rc == 0) {
		char *server = NULL;
		if (mysql_query(m, mariadb ? "SELECT @@global.gtid_binlog_pos" : "SELECT @@global.gtid_executed") == 0) {
			MYSQL_RES *r = mysql_store_result(m);
			MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
			if (row && row[0])
				server = strdup(row[0]);
			if (r)
				mysql_free_result(r);
		}
		if (server && !server_has_position(p, server)) {
			if (mariadb && is_replica(m)) {
				/* Behind, and replicating: it may catch up. */
				snprintf(err, len,
					 "%s is a replica behind the hub (its position '%s', ours '%s'): trying the "
					 "other sources meanwhile",
					 s->name, server, th__pub_resume_gtid(p) ? th_buf_cstr(&p->gtid) : "?");
				rc = 2;
			} else {
				th_log_warn("%s lacks transactions the hub has published (its position '%s', ours '%s'): "
					    "reloading from it",
					    s->name, server, th__pub_resume_gtid(p) ? th_buf_cstr(&p->gtid) : "?");
				rc = 1;
			}
		}
		free(server);
	}
	mysql_close(m);
	return rc;
}

/* ---- publication (the order of protocol.h: state, ring, revision) ------- */
