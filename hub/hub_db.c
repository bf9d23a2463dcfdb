/*
 * The publisher thread: MySQL in, state table and ring out. See hub.h for
 * the threads and README "The hub" for the consistent-load method.
 *
 * Consistent load (no change lost, none applied twice):
 *   MariaDB: one connection, REPEATABLE READ,
 *              START TRANSACTION WITH CONSISTENT SNAPSHOT;
 *              SHOW STATUS LIKE 'binlog_snapshot_%';   -- file, position
 *              SELECT ... FROM each watched table;
 *              COMMIT; SELECT BINLOG_GTID_POS(file, position);
 *            MariaDB takes the InnoDB read view and the binlog position
 *            under the same commit lock, so the snapshot holds exactly the
 *            transactions before that position: no lock on writers.
 *   MySQL 8: a second connection takes LOCK TABLES <watched> READ (it waits
 *            for writers of those tables to commit and holds new ones off),
 *            reads @@global.gtid_executed, the first connection starts
 *            START TRANSACTION WITH CONSISTENT SNAPSHOT, the second UNLOCKs.
 *            Writers to other tables are never blocked; writers to the
 *            watched tables for the length of two round trips. (Not tested
 *            here: no MySQL server in the test environment.)
 * The stream then starts at that GTID position: every transaction after the
 * snapshot is in the stream, none before it.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mysql.h>

#include "hub_internal.h"
#include "hub_log.h"
#include "protocol.h"
#include "source.h"
#include "th_buf.h"
#include "th_error.h"
#include "th_time.h"
#include "th_trace.h"
#include "txn.h"
#include "gtid.h"

/* Why a stream ended. */
enum stream_end {
	END_STOP = 0,       /* stopping */
	END_RETRY,          /* connection trouble: next source, resume by GTID */
	END_RELOAD,         /* continuity lost: reload the tables from a server */
};

struct pub {
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
	uint32_t reload_table;
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

/* ---- helpers ----------------------------------------------------------- */

static void wake_fd(int fd)
{
	uint64_t one = 1;
	ssize_t r = write(fd, &one, sizeof one);
	(void)r; /* an eventfd at its maximum is already readable */
}

/* Sleeps ms, or less when stopping. */
static void nap(struct pub *p, unsigned ms)
{
	struct pollfd pfd = { .fd = p->h->stop_fd, .events = POLLIN };
	poll(&pfd, 1, (int)ms);
}

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

static void set_src_error(struct pub *p, const char *msg)
{
	pthread_mutex_lock(&p->h->src_lock);
	snprintf(p->h->src.last_error, sizeof p->h->src.last_error, "%s", msg);
	pthread_mutex_unlock(&p->h->src_lock);
}

static MYSQL *sql_connect(struct pub *p, const struct th_hub_source *s, char *err, size_t len)
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

static int sql_exec(MYSQL *m, const char *name, const char *sql, char *err, size_t len)
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
static int sql_row(MYSQL *m, const char *name, const char *sql, char (*vals)[256], bool *is_null, unsigned n,
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
static void put_ident(struct th_buf *b, const char *ident)
{
	th_buf_putc(b, '`');
	for (const char *s = ident; *s; s++) {
		if (*s == '`')
			th_buf_putc(b, '`');
		th_buf_putc(b, *s);
	}
	th_buf_putc(b, '`');
}

static const char *table_schema(const struct pub *p, size_t i)
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
static int validate(struct pub *p, MYSQL *m, const struct th_hub_source *s, bool *mariadb, char *err, size_t len)
{
	const char *version = mysql_get_server_info(m);
	*mariadb = version && strstr(version, "MariaDB") != NULL;
	char v[4][256];
	int rc = sql_row(m, s->name,
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
static const char *resume_gtid(struct pub *p)
{
	th_buf_reset(&p->gtid);
	if (!p->asm_ || th_txn_resume_gtid(p->asm_, &p->gtid) < 0 || th_buf_failed(&p->gtid))
		return NULL;
	return th_buf_cstr(&p->gtid);
}

/* Does the server's binlog hold every transaction of our position? (pos is
 * the server's @@gtid_binlog_pos or @@gtid_executed.) */
static bool server_has_position(struct pub *p, const char *server)
{
	const char *ours = resume_gtid(p);
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

/*
 * Connects and validates server s before streaming from it: after a
 * failover or a restart it may not be configured as the last one was, and
 * it may lack transactions we have published (a lagging or diverged
 * replica, a RESET MASTER): then 1, continuity is lost and we reload from
 * it. 0 when fine, negative (message in err) when not usable.
 */
static int check_server(struct pub *p, const struct th_hub_source *s, char *err, size_t len)
{
	MYSQL *m = sql_connect(p, s, err, len);
	if (!m)
		return -TH_EMYSQL;
	bool mariadb;
	int rc = validate(p, m, s, &mariadb, err, len);
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
			th_log_warn("%s lacks transactions the hub has published (its position '%s', ours '%s'): "
				    "reloading from it",
				    s->name, server, resume_gtid(p) ? th_buf_cstr(&p->gtid) : "?");
			rc = 1;
		}
		free(server);
	}
	mysql_close(m);
	return rc;
}

/* ---- publication (the order of protocol.h: state, ring, revision) ------- */

static void free_pos_rcu(struct rcu_head *head)
{
	free(caa_container_of(head, struct th__hub_pos, rcu));
}

static void publish_pos(struct pub *p, uint64_t revision)
{
	struct th_hub *h = p->h;
	th_buf_reset(&p->scratch);
	if (th_txn_resume_gtid(p->asm_, &p->scratch) < 0)
		return;
	const char *gtid = th_buf_cstr(&p->scratch);
	size_t n = strlen(gtid);
	struct th__hub_pos *pos = malloc(sizeof *pos + n + 1);
	if (!pos)
		return; /* the previous position stays: SYNC answers later, never wrongly */
	pos->revision = revision;
	pos->flavor = p->flavor;
	const char *file;
	th_txn_resume_file(p->asm_, &file, &pos->end_pos);
	snprintf(pos->file, sizeof pos->file, "%s", file ? file : "");
	memcpy(pos->gtid, gtid, n + 1);
	/* The exchange orders pos's fields before the pointer (seq_cst, so
	 * release); pairs with the acquire loads of the control thread. */
	struct th__hub_pos *old = th_exchange_seq_cst(&h->pos, pos);
	if (old)
		call_rcu(&old->rcu, free_pos_rcu);
	if (th_load_relaxed(&h->sync_waiters))
		wake_fd(h->pub_fd);
}

static void publish_resync(struct pub *p, uint64_t rev, enum th_resync_reason reason, uint32_t table)
{
	struct th_hub *h = p->h;
	struct th_rec_resync r = { .revision = rev, .reason = reason, .table = table };
	th_ring_set_batch_time(h->ring, th_now_ns());
	TH_TRACE_HUB_BATCH_PUBLISH(rev, sizeof r, 1);
	if (th_ring_append(h->ring, TH_REC_RESYNC, &r, sizeof r) == 0 && th_ring_commit(h->ring) > 0) {
		th_fetch_add_relaxed(&h->st_records, 1);
		th_fetch_add_relaxed(&h->st_bytes, sizeof r);
	}
	if (h->cfg->bench_socket_fanout) {
		struct iovec iov = { &r, sizeof r };
		struct mmsghdr m = { .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };
		th__hub_fanout_send(h, &m, 1);
	}
	th_fetch_add_relaxed(&h->st_resyncs, 1);
}

/* The ring record of change c of t: rec, and iov[4] = rec, key, value, gtid. */
static void change_record(const struct th_txn *t, const struct th_txn_change *c, uint64_t rev, uint64_t real,
			  uint16_t gtid_len, struct th_rec_change *rec, struct iovec *iov)
{
	*rec = (struct th_rec_change){
		.revision = rev,
		.version = c->version,
		.commit_us = t->commit_us,
		.publish_ns = real,
		.key_len = c->key_len,
		.value_len = c->op == TH_TXN_DELETE ? 0 : c->value_len,
		.gtid_len = gtid_len,
		.table = (uint8_t)c->table,
		.op = c->op == TH_TXN_DELETE ? TH_OP_DELETE : TH_OP_PUT,
		.flags = c->op != TH_TXN_DELETE && !c->has_value ? TH_CHANGE_F_VALUE_NULL : 0,
	};
	iov[0] = (struct iovec){ rec, sizeof *rec };
	iov[1] = (struct iovec){ (void *)c->key, c->key_len };
	iov[2] = (struct iovec){ (void *)c->value, rec->value_len };
	iov[3] = (struct iovec){ (void *)t->gtid, gtid_len };
}

/* Benchmark mode: the committed transaction to every stream subscriber, the
 * same bytes as its ring records (the ring's copies may be overwritten by
 * the time a subscriber would read them, so they are built again here). */
static void fanout_txn(struct pub *p, const struct th_txn *t, uint64_t rev, uint64_t real, uint16_t gtid_len)
{
	size_t n = t->nchanges;
	if (n > p->fo_cap) {
		size_t cap = n < 64 ? 64 : n;
		struct th_rec_change *r = realloc(p->fo_recs, cap * sizeof *r);
		if (r)
			p->fo_recs = r;
		struct iovec *v = r ? realloc(p->fo_iov, cap * 4 * sizeof *v) : NULL;
		if (v)
			p->fo_iov = v;
		struct mmsghdr *m = v ? realloc(p->fo_msgs, cap * sizeof *m) : NULL;
		if (m) {
			p->fo_msgs = m;
			p->fo_cap = cap;
		} else {
			th__hub_fanout_send(p->h, NULL, 0); /* drops every subscriber: no silent gap */
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		change_record(t, &t->changes[i], rev, real, gtid_len, &p->fo_recs[i], &p->fo_iov[4 * i]);
		p->fo_msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &p->fo_iov[4 * i], .msg_iovlen = 4 } };
	}
	th__hub_fanout_send(p->h, p->fo_msgs, (unsigned)n);
}

static int change_key_cmp(const void *a, const void *b, void *arg)
{
	const struct th_txn_change *c = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct th_txn_change *x = &c[i], *y = &c[j];
	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	int r = memcmp(x->key, y->key, x->key_len);
	if (r)
		return r;
	return i < j ? -1 : i > j; /* stable: the last change of a key sorts last */
}

/*
 * A transaction's intermediate values are invisible to every other
 * transaction (MySQL's isolation), so readers get each key's last change in
 * it, nothing before. This also makes (key, revision) name exactly one value,
 * which stitching a snapshot to the ring relies on (protocol.h): a snapshot
 * that runs while the publisher applies a transaction sees each key either
 * before it or at its final value. Returns t itself when no key repeats, else
 * *view (changes in their original order, earlier changes of a key dropped).
 * -ENOMEM leaves nothing changed.
 */
static int last_changes(struct pub *p, const struct th_txn *t, struct th_txn *view, const struct th_txn **out)
{
	size_t n = t->nchanges;
	*out = t;
	if (n < 2)
		return 0;
	if (n > p->lc_cap) {
		size_t *o = realloc(p->lc_order, n * sizeof *o);
		if (!o)
			return -ENOMEM;
		p->lc_order = o;
		struct th_txn_change *c = realloc(p->lc_changes, n * sizeof *c);
		if (!c)
			return -ENOMEM;
		p->lc_changes = c;
		bool *d = realloc(p->lc_drop, n * sizeof *d);
		if (!d)
			return -ENOMEM;
		p->lc_drop = d;
		p->lc_cap = n;
	}
	for (size_t i = 0; i < n; i++)
		p->lc_order[i] = i;
	qsort_r(p->lc_order, n, sizeof *p->lc_order, change_key_cmp, (void *)t->changes);
	/* Mark every change that a later change of the same key supersedes. */
	bool any = false;
	bool *drop = p->lc_drop;
	memset(drop, 0, n * sizeof *drop);
	for (size_t k = 0; k + 1 < n; k++) {
		const struct th_txn_change *x = &t->changes[p->lc_order[k]], *y = &t->changes[p->lc_order[k + 1]];
		if (x->table == y->table && x->key_len == y->key_len && !memcmp(x->key, y->key, x->key_len)) {
			drop[p->lc_order[k]] = true;
			any = true;
		}
	}
	if (!any)
		return 0;
	/* The survivors, in transaction order. */
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!drop[i])
			p->lc_changes[m++] = t->changes[i];
	*view = *t;
	view->changes = p->lc_changes;
	view->nchanges = m;
	*out = view;
	return 0;
}

/* One delivered transaction: (a) state, (b) ring, (c) revision + position. */
static int apply_txn(struct pub *p, const struct th_txn *whole)
{
	struct th_hub *h = p->h;
	struct th_txn view;
	const struct th_txn *t;
	int lrc = last_changes(p, whole, &view, &t);
	if (lrc < 0) {
		snprintf(p->err, sizeof p->err, "coalescing a transaction: %s", th_strerror(lrc));
		return lrc;
	}
	th_fetch_add_relaxed(&h->st_txns_seen, 1);
	if (t->nchanges == 0) {
		publish_pos(p, th_load_relaxed(&h->published_revision));
		return 0;
	}
	uint64_t rev = p->next_rev++;
	uint64_t mono = th_now_ns(), real = th_realtime_ns();
	TH_TRACE_HUB_TXN_COMMIT(rev, t->nchanges, t->commit_us);
	int rc = 0;
	rcu_read_lock();
	for (size_t i = 0; i < t->nchanges && rc == 0; i++) {
		const struct th_txn_change *c = &t->changes[i];
		if (c->op == TH_TXN_DELETE)
			th_state_delete(h->state, c->table, c->key, c->key_len);
		else
			rc = th_state_put(h->state, c->table, c->key, c->key_len, c->value, c->value_len,
					  c->has_value ? 0 : TH_CHANGE_F_VALUE_NULL, c->version, rev, 0, NULL);
	}
	rcu_read_unlock();
	if (rc < 0) {
		/* Out of memory half-way: the state is not what the binlog says. */
		snprintf(p->err, sizeof p->err, "state table: %s", th_strerror(rc));
		p->next_rev--;
		return rc;
	}

	th_ring_set_batch_time(h->ring, mono);
	uint16_t gtid_len = (uint16_t)strnlen(t->gtid, sizeof t->gtid);
	uint64_t bytes = 0;
	for (size_t i = 0; i < t->nchanges; i++) {
		const struct th_txn_change *c = &t->changes[i];
		struct th_rec_change rec;
		struct iovec iov[4];
		change_record(t, c, rev, real, gtid_len, &rec, iov);
		rc = th_ring_appendv(h->ring, TH_REC_CHANGE, iov, 4);
		if (rc < 0)
			break;
		bytes += sizeof rec + c->key_len + rec.value_len + gtid_len;
	}
	if (rc < 0) {
		/* Too big for the ring: the state has it; readers fetch it by snapshot. */
		th_ring_abort(h->ring);
		th_log_warn("transaction %s (revision %" PRIu64 ", %zu changes) exceeds the ring's limits (%s): "
			    "published as a resync",
			    t->gtid, rev, t->nchanges, th_strerror(rc));
		th_fetch_add_relaxed(&h->st_too_big, 1);
		publish_resync(p, rev, TH_RESYNC_TOO_BIG, UINT32_MAX);
	} else {
		TH_TRACE_HUB_BATCH_PUBLISH(rev, bytes, t->nchanges);
		int n = th_ring_commit(h->ring);
		th_fetch_add_relaxed(&h->st_records, (uint64_t)n);
		th_fetch_add_relaxed(&h->st_bytes, bytes);
		/* Off (the product): a load of the read-only configuration and a branch. */
		if (h->cfg->bench_socket_fanout)
			fanout_txn(p, t, rev, real, gtid_len);
	}
	/* (c): release pairs with the control thread's acquire loads: a reader
	 * that sees rev also sees the state entries and the ring head of it. */
	th_store_release(&h->published_revision, rev);
	th_fetch_add_relaxed(&h->st_txns, 1);
	th_fetch_add_relaxed(&h->st_changes, t->nchanges);
	th_store_relaxed(&h->st_last_commit_us, t->commit_us);
	th_store_relaxed(&h->st_last_publish_ns, real);
	publish_pos(p, rev);
	return 0;
}

/* ---- consistent load ----------------------------------------------------- */

/* Ordinal positions of the configured columns (for servers that log no
 * column names). A missing table is fine (empty; its CREATE will resync);
 * a table lacking a configured column is -TH_ESCHEMA. */
static int fetch_positions(struct pub *p, MYSQL *m, const struct th_hub_source *s, bool *exists, char *err,
			   size_t len)
{
	for (size_t i = 0; i < p->cfg->ntables; i++) {
		struct th_txn_table *t = &p->tables[i];
		*t = p->cfg->tables[i];
		struct th_buf q = TH_BUF_INIT;
		char esc_s[256], esc_t[256];
		const char *schema = table_schema(p, i);
		if (strlen(schema) > 120 || strlen(t->table) > 120) {
			snprintf(err, len, "%s: schema or table name too long", s->name);
			return -EINVAL;
		}
		mysql_real_escape_string(m, esc_s, schema, (unsigned long)strlen(schema));
		mysql_real_escape_string(m, esc_t, t->table, (unsigned long)strlen(t->table));
		th_buf_printf(&q,
			      "SELECT COLUMN_NAME, ORDINAL_POSITION FROM information_schema.COLUMNS "
			      "WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s'",
			      esc_s, esc_t);
		if (th_buf_failed(&q) || mysql_query(m, th_buf_cstr(&q)) != 0) {
			snprintf(err, len, "%s: information_schema.COLUMNS: %s (%u)", s->name, mysql_error(m),
				 mysql_errno(m));
			th_buf_free(&q);
			return -TH_EMYSQL;
		}
		th_buf_free(&q);
		MYSQL_RES *r = mysql_store_result(m);
		MYSQL_ROW row;
		exists[i] = false;
		while (r && (row = mysql_fetch_row(r)) != NULL) {
			if (!row[0] || !row[1])
				continue;
			exists[i] = true;
			uint32_t pos = (uint32_t)strtoul(row[1], NULL, 10);
			if (!strcasecmp(row[0], t->key))
				t->key_pos = pos;
			for (int k = 0; k < TH_TXN_MAX_VALUE_COLS; k++)
				if (t->value[k] && !strcasecmp(row[0], t->value[k]))
					t->value_pos[k] = pos;
			if (t->version && !strcasecmp(row[0], t->version))
				t->version_pos = pos;
		}
		if (r)
			mysql_free_result(r);
		if (!exists[i])
			continue;
		const char *missing = !t->key_pos ? t->key : NULL;
		for (int k = 0; !missing && k < TH_TXN_MAX_VALUE_COLS; k++)
			if (t->value[k] && !t->value_pos[k])
				missing = t->value[k];
		if (!missing && t->version && !t->version_pos)
			missing = t->version;
		if (missing) {
			snprintf(err, len, "%s: table %s.%s has no column '%s' (configured in [table %s])", s->name,
				 schema, t->table, missing, t->table);
			return -TH_ESCHEMA;
		}
	}
	return 0;
}

/* SELECTs one table inside the snapshot transaction into the state. */
static int load_table(struct pub *p, MYSQL *m, const struct th_hub_source *s, size_t ti, uint64_t rev,
		      uint64_t *rows, uint64_t *changed, char *err, size_t len)
{
	const struct th_txn_table *t = &p->tables[ti];
	struct th_buf q = TH_BUF_INIT;
	int nval = 0;
	th_buf_puts(&q, "SELECT ");
	put_ident(&q, t->key);
	for (; nval < TH_TXN_MAX_VALUE_COLS && t->value[nval]; nval++) {
		th_buf_puts(&q, ", ");
		put_ident(&q, t->value[nval]);
	}
	if (t->version) {
		th_buf_puts(&q, ", ");
		put_ident(&q, t->version);
	}
	th_buf_puts(&q, " FROM ");
	put_ident(&q, table_schema(p, ti));
	th_buf_putc(&q, '.');
	put_ident(&q, t->table);
	if (th_buf_failed(&q)) {
		th_buf_free(&q);
		return -ENOMEM;
	}
	int rc = 0;
	if (mysql_query(m, th_buf_cstr(&q)) != 0) {
		snprintf(err, len, "%s: %.200s: %s (%u)", s->name, th_buf_cstr(&q), mysql_error(m), mysql_errno(m));
		th_buf_free(&q);
		return -TH_EMYSQL;
	}
	th_buf_free(&q);
	/* Streamed row by row: tables may be large; values up to 16 MiB. */
	MYSQL_RES *r = mysql_use_result(m);
	if (!r) {
		snprintf(err, len, "%s: reading %s: %s (%u)", s->name, t->table, mysql_error(m), mysql_errno(m));
		return -TH_EMYSQL;
	}
	struct th_buf val = TH_BUF_INIT;
	MYSQL_ROW row;
	rcu_read_lock();
	while ((row = mysql_fetch_row(r)) != NULL) {
		unsigned long *lens = mysql_fetch_lengths(r);
		if (!row[0] || lens[0] > UINT32_MAX)
			continue;
		const void *value;
		size_t value_len;
		uint32_t flags = 0;
		if (nval == 1) {
			value = row[1] ? row[1] : "";
			value_len = row[1] ? lens[1] : 0;
			if (!row[1])
				flags = TH_CHANGE_F_VALUE_NULL;
		} else {
			/* The serialisation of txn.h: per column u32 LE length
			 * (0xffffffff for NULL), then the bytes. */
			th_buf_reset(&val);
			for (int k = 0; k < nval; k++) {
				uint32_t l = row[1 + k] ? (uint32_t)lens[1 + k] : 0xffffffffu;
				uint8_t le[4] = { (uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24) };
				th_buf_append(&val, le, 4);
				if (row[1 + k])
					th_buf_append(&val, row[1 + k], lens[1 + k]);
			}
			if (th_buf_failed(&val)) {
				rc = -ENOMEM;
				break;
			}
			value = val.data;
			value_len = val.len;
		}
		if (value_len > UINT32_MAX) {
			rc = -TH_ETOOBIG;
			break;
		}
		int64_t version = t->version && row[1 + nval] ? strtoll(row[1 + nval], NULL, 10) : 0;
		bool ch;
		rc = th_state_put(p->h->state, (uint32_t)ti, row[0], (uint32_t)lens[0], value, (uint32_t)value_len,
				  flags, version, rev, p->mark, &ch);
		if (rc < 0)
			break;
		(*rows)++;
		*changed += ch;
	}
	rcu_read_unlock();
	th_buf_free(&val);
	if (rc == 0 && mysql_errno(m)) {
		snprintf(err, len, "%s: reading %s: %s (%u)", s->name, t->table, mysql_error(m), mysql_errno(m));
		rc = -TH_EMYSQL;
	}
	mysql_free_result(r);
	if (rc < 0 && !err[0])
		snprintf(err, len, "%s: loading %s: %s", s->name, t->table, th_strerror(rc));
	return rc;
}

/* MySQL 8: hold the watched tables still while the snapshot starts. */
static int mysql_snapshot_start(struct pub *p, MYSQL *m, const struct th_hub_source *s, const bool *exists,
				char *gtid, size_t gtid_len, char *err, size_t len)
{
	MYSQL *lk = sql_connect(p, s, err, len);
	if (!lk)
		return -TH_EMYSQL;
	struct th_buf q = TH_BUF_INIT;
	th_buf_puts(&q, "LOCK TABLES ");
	bool any = false;
	for (size_t i = 0; i < p->cfg->ntables; i++) {
		if (!exists[i])
			continue;
		if (any)
			th_buf_puts(&q, ", ");
		put_ident(&q, table_schema(p, i));
		th_buf_putc(&q, '.');
		put_ident(&q, p->tables[i].table);
		th_buf_puts(&q, " READ");
		any = true;
	}
	int rc = th_buf_failed(&q) ? -ENOMEM : 0;
	if (!rc && any)
		rc = sql_exec(lk, s->name, th_buf_cstr(&q), err, len);
	th_buf_free(&q);
	if (!rc) {
		/* gtid_executed can be long; read it whole. */
		if (mysql_query(lk, "SELECT @@global.gtid_executed") != 0) {
			snprintf(err, len, "%s: gtid_executed: %s", s->name, mysql_error(lk));
			rc = -TH_EMYSQL;
		} else {
			MYSQL_RES *r = mysql_store_result(lk);
			MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
			unsigned long *lens = row ? mysql_fetch_lengths(r) : NULL;
			if (!row || !row[0] || lens[0] >= gtid_len) {
				snprintf(err, len, "%s: gtid_executed unreadable or longer than %zu", s->name, gtid_len);
				rc = -TH_EMYSQL;
			} else {
				memcpy(gtid, row[0], lens[0]);
				gtid[lens[0]] = '\0';
			}
			if (r)
				mysql_free_result(r);
		}
	}
	if (!rc)
		rc = sql_exec(m, s->name, "START TRANSACTION WITH CONSISTENT SNAPSHOT", err, len);
	if (any)
		sql_exec(lk, s->name, "UNLOCK TABLES", err, len);
	mysql_close(lk);
	return rc;
}

/*
 * Validate server s and load the watched tables and the binlog position
 * consistently into the state (changed rows get a new revision, vanished rows
 * are deleted), publish a RESYNC record, and make the loaded position the
 * resume position. 0, -TH_ESERVER / -TH_ESCHEMA (misconfigured), or another
 * negative code (try again later). Message in err.
 */
static int load(struct pub *p, const struct th_hub_source *s, char *err, size_t len)
{
	struct th_hub *h = p->h;
	uint64_t t0 = th_now_ns();
	MYSQL *m = sql_connect(p, s, err, len);
	if (!m)
		return -TH_EMYSQL;
	bool mariadb = false;
	bool exists[TH_HUB_MAX_TABLES];
	char gtid[65536];
	char file[256] = "";
	uint64_t fpos = 0;
	int rc = validate(p, m, s, &mariadb, err, len);
	if (!rc)
		rc = fetch_positions(p, m, s, exists, err, len);
	/* Bytes as stored (no charset conversion: they must equal the binlog's),
	 * temporal values in UTC (as the binlog decoder renders them). */
	if (!rc)
		rc = sql_exec(m, s->name,
			      "SET SESSION character_set_results = binary, SESSION time_zone = '+00:00'", err, len);
	if (!rc)
		rc = sql_exec(m, s->name, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", err, len);
	if (rc)
		goto out;
	if (mariadb) {
		rc = sql_exec(m, s->name, "START TRANSACTION WITH CONSISTENT SNAPSHOT", err, len);
		char v[2][256];
		if (!rc)
			rc = sql_row(m, s->name,
				     "SELECT (SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE "
				     "VARIABLE_NAME = 'BINLOG_SNAPSHOT_FILE'), (SELECT VARIABLE_VALUE FROM "
				     "information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'BINLOG_SNAPSHOT_POSITION')",
				     v, NULL, 2, err, len);
		if (!rc) {
			snprintf(file, sizeof file, "%s", v[0]);
			fpos = strtoull(v[1], NULL, 10);
		}
	} else {
		rc = mysql_snapshot_start(p, m, s, exists, gtid, sizeof gtid, err, len);
	}
	if (rc)
		goto out;

	uint64_t rev = p->next_rev++;
	uint64_t rows = 0, changed = 0, deleted;
	p->mark++;
	for (size_t i = 0; i < p->cfg->ntables && rc == 0; i++) {
		if (!exists[i])
			continue;
		rc = load_table(p, m, s, i, rev, &rows, &changed, err, len);
	}
	if (!rc)
		rc = sql_exec(m, s->name, "COMMIT", err, len);
	if (rc) {
		/* The state may hold part of this load with revision rev: publish
		 * nothing (readers never saw rev), and reload again later. */
		goto out;
	}
	if (mariadb) {
		struct th_buf q = TH_BUF_INIT;
		char esc[600];
		mysql_real_escape_string(m, esc, file, (unsigned long)strlen(file));
		th_buf_printf(&q, "SELECT BINLOG_GTID_POS('%s', %" PRIu64 ")", esc, fpos);
		char v[1][256];
		bool null;
		rc = sql_row(m, s->name, th_buf_cstr(&q), v, &null, 1, err, len);
		th_buf_free(&q);
		if (!rc && null) {
			snprintf(err, len, "%s: BINLOG_GTID_POS('%s', %" PRIu64 ") is NULL", s->name, file, fpos);
			rc = -TH_EMYSQL;
		}
		if (rc)
			goto out;
		snprintf(gtid, sizeof gtid, "%s", v[0]);
	}
	rcu_read_lock();
	deleted = th_state_sweep(h->state, p->mark);
	rcu_read_unlock();

	/* A new assembler: the tables' ordinal positions may have changed. */
	struct th_txn_config tc = {
		.size = sizeof tc, .schema = p->cfg->schema, .tables = p->tables, .ntables = p->cfg->ntables
	};
	struct th_txn_asm *a;
	rc = th_txn_asm_new(&a, &tc);
	if (!rc && (rc = th_txn_set_position(a, gtid, file[0] ? file : NULL, fpos)) < 0)
		th_txn_free(a);
	if (rc) {
		snprintf(err, len, "%s: position '%.200s': %s", s->name, gtid, th_strerror(rc));
		goto out;
	}
	th_txn_free(p->asm_);
	p->asm_ = a;
	p->flavor = mariadb ? TH_BINLOG_FLAVOR_MARIADB : TH_BINLOG_FLAVOR_MYSQL;

	/* (b) and (c): readers learn that continuity was lost at rev. */
	publish_resync(p, rev, p->reload_reason, p->reload_table);
	th_store_release(&h->published_revision, rev);
	publish_pos(p, rev);
	th_fetch_add_relaxed(&h->st_reloads, 1);
	th_log_info("loaded %" PRIu64 " rows from %s (%" PRIu64 " changed, %" PRIu64
		    " deleted) at revision %" PRIu64 ", GTID position '%s' (%s:%" PRIu64 ") in %.1f ms",
		    rows, s->name, changed, deleted, rev, gtid, file[0] ? file : "-", fpos,
		    (double)(th_now_ns() - t0) / 1e6);
out:
	mysql_close(m);
	return rc;
}

/* ---- streaming ----------------------------------------------------------- */

static int feed(struct pub *p, const struct th_binlog_event *ev, enum stream_end *end)
{
	const struct th_txn *t;
	int rc = th_txn_feed(p->asm_, ev, &t);
	if (rc < 0) {
		snprintf(p->err, sizeof p->err, "%s", th_txn_error(p->asm_));
		*end = rc == -ENOMEM ? END_RETRY : END_RELOAD;
		p->reload_reason = TH_RESYNC_RELOAD;
		p->reload_table = UINT32_MAX;
		return rc;
	}
	if (rc == 0)
		return 0;
	if (t->resync) {
		th_log_info("transaction %s: %s on a watched table: reloading", t->gtid[0] ? t->gtid : "(no gtid)",
			    th_txn_resync_reason_name(t->reason));
		p->reload_reason = t->reason == TH_TXN_RESYNC_DDL ? TH_RESYNC_DDL : TH_RESYNC_RELOAD;
		p->reload_table = t->resync_table >= 0 ? (uint32_t)t->resync_table : UINT32_MAX;
		*end = END_RELOAD;
		return 1;
	}
	if ((rc = apply_txn(p, t)) < 0) {
		*end = END_RELOAD;
		p->reload_reason = TH_RESYNC_RELOAD;
		p->reload_table = UINT32_MAX;
		return rc;
	}
	return 0;
}

/* Streams from source s until an error, a resync or stop. */
static enum stream_end stream(struct pub *p, const struct th_hub_source *s, bool *healthy)
{
	struct th_hub *h = p->h;
	const struct th_hub_config *c = p->cfg;
	char err[1024] = "";
	const char *gtid = resume_gtid(p);
	if (!gtid) {
		th_log_error("out of memory formatting the resume position");
		return END_RETRY;
	}
	struct th_source_config sc = {
		.host = s->host, .port = s->port, .socket = s->socket, .user = c->user, .password = c->password,
		.tls = c->tls && !s->socket, .tls_verify = c->tls_verify, .tls_ca = c->tls_ca,
		.tls_cert = c->tls_cert, .tls_key = c->tls_key, .server_id = c->server_id,
		.heartbeat_ms = c->heartbeat_ms, .connect_timeout_ms = c->connect_timeout_ms, .gtid = gtid,
		.name = s->name,
	};
	struct th_source *src = NULL;
	int rc = th_source_live_open(&sc, &src, err, sizeof err);
	if (rc < 0) {
		th_log_warn("%s", err);
		set_src_error(p, err);
		return rc == -TH_EGTID ? END_RELOAD : END_RETRY;
	}
	th_binlog_decoder_reset(p->dec, s->name);
	th_binlog_decoder_set_checksum(p->dec, (enum th_binlog_checksum)th_source_checksum(src));
	th_txn_reset(p->asm_);
	pthread_mutex_lock(&h->src_lock);
	h->src.connected = true;
	h->src.index = p->cur;
	snprintf(h->src.version, sizeof h->src.version, "%s", th_source_server_version(src));
	pthread_mutex_unlock(&h->src_lock);
	th_log_info("streaming from %s (%s) after GTID position '%s'", s->name, th_source_server_version(src), gtid);
	if (!p->ready) {
		p->ready = true;
		wake_fd(h->ready_fd);
	}

	enum stream_end end = END_RETRY;
	const uint8_t *bytes;
	size_t len;
	struct th_binlog_event ev;
	uint64_t events = 0;
	while (!th__hub_stopping(h)) {
		rc = th_source_next_event(src, &bytes, &len);
		if (rc <= 0) {
			const char *e = rc == 0 ? "the server ended the stream" : th_source_error(src);
			snprintf(err, sizeof err, "%s", e);
			/* 1236: the server cannot continue from our position (purged,
			 * diverged, or a replica behind us): reload from it. */
			if (rc == -TH_EMYSQL && th_source_server_errno(src) == 1236) {
				end = END_RELOAD;
				p->reload_reason = TH_RESYNC_RELOAD;
				p->reload_table = UINT32_MAX;
			}
			break;
		}
		const char *file;
		uint64_t pos;
		th_source_position(src, &file, &pos);
		rc = th_binlog_decode(p->dec, bytes, len, pos >= len ? pos - len : 0, &ev);
		if (rc < 0) {
			snprintf(err, sizeof err, "%s", th_binlog_decoder_error(p->dec));
			break;
		}
		TH_TRACE_HUB_BINLOG_EVENT(ev.type, ev.log_pos);
		if (++events > 3)
			*healthy = true;
		th_fetch_add_relaxed(&h->st_events, 1);
		rc = feed(p, &ev, &end);
		if (rc == 0 && ev.kind == TH_EVK_TRANSACTION_PAYLOAD) {
			while (rc == 0 && (rc = th_binlog_payload_next(p->dec, &ev)) == 1)
				rc = feed(p, &ev, &end);
			if (rc < 0 && !p->err[0])
				snprintf(p->err, sizeof p->err, "%s", th_binlog_decoder_error(p->dec));
		}
		if (rc != 0) {
			if (rc < 0)
				snprintf(err, sizeof err, "%s", p->err);
			else
				err[0] = '\0';
			break;
		}
	}
	if (th__hub_stopping(h))
		end = END_STOP;
	else if (err[0]) {
		th_log_warn("%s: stream ended: %s", s->name, err);
		set_src_error(p, err);
	}
	pthread_mutex_lock(&h->src_lock);
	h->src.connected = false;
	pthread_mutex_unlock(&h->src_lock);
	th_source_close(src);
	return end;
}

/* ---- the thread ---------------------------------------------------------- */

static void fatal(struct pub *p, int code)
{
	p->h->exit_code = code;
	uint64_t two = 2;
	ssize_t r = write(p->h->ready_fd, &two, sizeof two);
	(void)r;
}

void *th__hub_publisher_main(void *arg)
{
	struct th_hub *h = arg;
	struct pub *p = calloc(1, sizeof *p);
	rcu_register_thread();
	if (!p || th_binlog_decoder_new(&p->dec, NULL) < 0) {
		th_log_error("publisher: out of memory");
		if (p)
			p->h = h;
		h->exit_code = TH_HUB_EXIT_FAILURE;
		uint64_t two = 2;
		ssize_t r = write(h->ready_fd, &two, sizeof two);
		(void)r;
		free(p);
		rcu_unregister_thread();
		return NULL;
	}
	p->h = h;
	p->cfg = h->cfg;
	/* Revisions grow across restarts: start at the clock in microseconds. */
	uint64_t now_us = th_realtime_ns() / 1000u;
	p->next_rev = now_us > 0 ? now_us : 1;
	p->reload_reason = TH_RESYNC_RELOAD;
	p->reload_table = UINT32_MAX;
	bool need_load = true;
	unsigned backoff = p->cfg->reconnect_min_ms;
	uint64_t streams = 0;
	unsigned reloads_in_row = 0;

	while (!th__hub_stopping(h)) {
		const struct th_hub_source *s = &p->cfg->sources[p->cur];
		char err[1024] = "";
		bool healthy = false;
		enum stream_end end = END_RETRY;
		bool checked = false;
		if (need_load) {
			int rc = load(p, s, err, sizeof err);
			if (rc == 0) {
				need_load = false;
				checked = true;
			} else if (th__hub_stopping(h)) {
				break;
			} else if ((rc == -TH_ESERVER || rc == -TH_ESCHEMA) && !p->ready) {
				th_log_error("%s", err);
				fatal(p, TH_HUB_EXIT_SERVER);
				break;
			} else {
				th_log_warn("load from %s failed: %s", s->name, err);
				set_src_error(p, err);
			}
		}
		/* Every (re)connection checks the server first: after a failover or
		 * a restart it may not be configured as the last one was. */
		int ck = !need_load && !checked ? check_server(p, s, err, sizeof err) : 0;
		if (ck == 1) {
			need_load = true;
			p->reload_reason = TH_RESYNC_RELOAD;
			p->reload_table = UINT32_MAX;
			if (reloads_in_row++ < 3)
				continue;
		} else if (ck < 0) {
			if (th__hub_stopping(h))
				break;
			th_log_warn("%s", err);
			set_src_error(p, err);
		} else if (!need_load) {
			if (streams++ > 0)
				th_fetch_add_relaxed(&h->st_reconnects, 1);
			p->err[0] = '\0';
			end = stream(p, s, &healthy);
			if (end == END_STOP)
				break;
			if (end == END_RELOAD) {
				need_load = true;
				/* Reload from the same server at once (it is alive), unless
				 * reloads keep failing to give a stream that works. */
				if (healthy || reloads_in_row++ < 3) {
					if (healthy)
						reloads_in_row = 0;
					continue;
				}
			}
		}
		if (healthy)
			reloads_in_row = 0;
		if (healthy)
			backoff = p->cfg->reconnect_min_ms;
		/* Next source, after a pause that doubles up to the cap. */
		p->cur = (p->cur + 1) % (int)p->cfg->nsources;
		nap(p, backoff);
		backoff = backoff * 2 > p->cfg->reconnect_max_ms ? p->cfg->reconnect_max_ms : backoff * 2;
	}
	th_txn_free(p->asm_);
	th_binlog_decoder_free(p->dec);
	th_buf_free(&p->gtid);
	th_buf_free(&p->scratch);
	free(p->fo_recs);
	free(p->fo_iov);
	free(p->fo_msgs);
	free(p->lc_changes);
	free(p->lc_order);
	free(p->lc_drop);
	free(p);
	rcu_unregister_thread();
	return NULL;
}
