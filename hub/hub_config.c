/* SPDX-License-Identifier: Apache-2.0 */
/* topohubd's configuration; see hub_config.h. */
#include "hub/hub_config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <ini.h>

#include "common/th_buf.h"
#include "hub/hub_log.h"

enum ktype {
	K_STR,      /* char * */
	K_U32,      /* uint32_t */
	K_SIZE,     /* uint64_t bytes, with K/M/G suffixes */
	K_MODE,     /* unsigned, octal */
	K_BOOL,     /* bool */
	K_UIDS,     /* allow_uids */
	K_GIDS,     /* allow_gids */
	K_LEVEL,    /* log_level */
	K_SOURCES,  /* sources list */
	K_MS_NS,    /* uint64_t nanoseconds, given in milliseconds */
	K_US_NS,    /* uint64_t nanoseconds, given in microseconds */
};

struct key {
	const char *section;
	const char *name;
	enum ktype type;
	size_t off;
	const char *def;    /* default as text; NULL: none */
	const char *help;
	bool live;          /* SIGHUP applies it to the running hub (LIVE) */
};

#define LIVE true
#define RESTART false

#define OFF(f) offsetof(struct th_hub_config, f)

static const struct key keys[] = {
	{ "hub", "socket", K_STR, OFF(socket_path), "/run/topohub/topohub.sock",
	  "control socket path (SOCK_SEQPACKET)", RESTART },
	{ "hub", "socket_mode", K_MODE, OFF(socket_mode), "0660", "control socket file mode (octal)", RESTART },
	{ "hub", "socket_group", K_STR, OFF(socket_group), NULL,
	  "group (name or number) of the control socket file; its members may connect", RESTART },
	{ "hub", "allow_uids", K_UIDS, 0, NULL,
	  "users (names or numbers, comma-separated) allowed on the socket, besides root and the hub's own", LIVE },
	{ "hub", "allow_gids", K_GIDS, 0, NULL,
	  "groups allowed on the socket (peer's primary gid); socket_group is always allowed", LIVE },
	{ "hub", "ring_capacity", K_SIZE, OFF(ring_capacity), "64M", "ring size in bytes, a power of two (K, M, G)", RESTART },
	{ "hub", "max_readers", K_U32, OFF(max_readers), "1024", "most attached readers", RESTART },
	{ "hub", "max_clients", K_U32, OFF(max_clients), "4096",
	  "most open control connections (clamped at start to what the open-file limit allows)", RESTART },
	{ "hub", "max_clients_per_uid", K_U32, OFF(max_clients_per_uid), "1024",
	  "most open control connections of one uid", LIVE },
	{ "hub", "idle_timeout_ms", K_U32, OFF(idle_timeout_ms), "60000",
	  "close a connection that is not attached and sent no request for this long (0: never)", LIVE },
	{ "hub", "snapshot_bytes_max", K_SIZE, OFF(snapshot_bytes_max), "256M",
	  "most bytes of SNAPSHOT/GET replies one uid holds (beyond it the hub takes the oldest back) and is sent "
	  "per snapshot_window_ms (K, M, G)", LIVE },
	{ "hub", "snapshot_window_ms", K_U32, OFF(snapshot_window_ms), "10000",
	  "the window of snapshot_bytes_max", LIVE },
	{ "hub", "snapshot_hold_ms", K_U32, OFF(snapshot_hold_ms), "10000",
	  "how long a client may take to read a SNAPSHOT/GET reply: then the hub takes its memory back (0: only "
	  "snapshot_bytes_max does)", LIVE },
	{ "hub", "reader_timeout_min_ms", K_MS_NS, OFF(reader_timeout_min_ns), "10",
	  "smallest slow-consumer timeout a reader may ask for", LIVE },
	{ "hub", "reader_timeout_max_ms", K_MS_NS, OFF(reader_timeout_max_ns), "60000",
	  "largest slow-consumer timeout a reader may ask for", LIVE },
	{ "hub", "reader_timeout_default_ms", K_MS_NS, OFF(reader_timeout_default_ns), "5000",
	  "timeout of a reader that asks for none (0)", LIVE },
	{ "hub", "monitor_interval_us", K_US_NS, OFF(monitor_interval_ns), "1000",
	  "the shortest sleep of the monitor (it wakes at the earliest moment a reader can be late): how late an eviction can be", RESTART },
	{ "hub", "wake_delay_max_us", K_US_NS, OFF(wake_delay_max_ns), "40000",
	  "under load, the longest a busy subscriber's wake-up may be held back to take several commits in one "
	  "(moderation; the hub picks the delay from what waking costs, a subscriber may ask for less; 0: never)",
	  RESTART },
	{ "hub", "monitor_realtime", K_BOOL, OFF(monitor_realtime), "true",
	  "run the monitor at the lowest SCHED_FIFO priority (needs CAP_SYS_NICE or RLIMIT_RTPRIO)", RESTART },
	{ "hub", "publisher_realtime", K_BOOL, OFF(publisher_realtime), "true",
	  "run the publisher (binlog to ring, and the wake-ups) at the lowest SCHED_FIFO priority, so that the subscribers it wakes do not preempt it (needs CAP_SYS_NICE or RLIMIT_RTPRIO)", RESTART },
	{ "hub", "log_level", K_LEVEL, OFF(log_level), "info", "error, warn, info or debug", LIVE },
	{ "hub", "metrics_listen", K_STR, OFF(metrics_listen), NULL,
	  "loopback address:port for Prometheus (GET /metrics, 127.0.0.0/8 or [::1]); unset: no HTTP", RESTART },
	{ "hub", "bench_socket_fanout", K_BOOL, OFF(bench_socket_fanout), "false",
	  "benchmark only: also send every record over the socket of each client that asks (STREAM)", RESTART },

	{ "mysql", "sources", K_SOURCES, 0, NULL,
	  "servers in order, comma-separated: host:port, [v6addr]:port, or a Unix socket path (--source adds one)", RESTART },
	{ "mysql", "user", K_STR, OFF(user), "topohub", "MySQL user", RESTART },
	{ "mysql", "password_file", K_STR, OFF(password_file), NULL,
	  "file whose first line is the MySQL password", RESTART },
	{ "mysql", "password_env", K_STR, OFF(password_env), "TOPOHUB_MYSQL_PASSWORD",
	  "environment variable holding the password (when no password_file); removed after reading", RESTART },
	{ "mysql", "tls", K_BOOL, OFF(tls), "false", "require TLS (TCP sources)", RESTART },
	{ "mysql", "tls_verify", K_BOOL, OFF(tls_verify), "false",
	  "verify the server certificate against tls_ca and the host name", RESTART },
	{ "mysql", "tls_ca", K_STR, OFF(tls_ca), NULL, "CA certificate file (PEM)", RESTART },
	{ "mysql", "tls_cert", K_STR, OFF(tls_cert), NULL, "client certificate file (PEM)", RESTART },
	{ "mysql", "tls_key", K_STR, OFF(tls_key), NULL, "client key file (PEM)", RESTART },
	{ "mysql", "server_id", K_U32, OFF(server_id), "0", "replica server_id the hub uses; 0: random >= 2^31", RESTART },
	{ "mysql", "heartbeat_ms", K_U32, OFF(heartbeat_ms), "1000",
	  "server heartbeat period; silence for 2x + 0.5 s means a dead connection", RESTART },
	{ "mysql", "connect_timeout_ms", K_U32, OFF(connect_timeout_ms), "5000", "connect timeout", RESTART },
	{ "mysql", "reconnect_min_ms", K_U32, OFF(reconnect_min_ms), "50", "first reconnect delay", RESTART },
	{ "mysql", "reconnect_max_ms", K_U32, OFF(reconnect_max_ms), "5000",
	  "reconnect delay cap (the delay doubles per failed round of sources)", RESTART },
	{ "mysql", "schema", K_STR, OFF(schema), "topo", "schema of the watched tables", RESTART },
	{ "mysql", "check_grants", K_BOOL, OFF(check_grants), "true",
	  "check REPLICATION SLAVE/CLIENT in SHOW GRANTS (disable when grants come through roles)", RESTART },
};

#define NKEYS (sizeof keys / sizeof keys[0])

static char *own(struct th_hub_config *cfg, const char *s, size_t n)
{
	if (th_grow((void **)&cfg->owned, &cfg->cap_owned, cfg->nowned + 1, sizeof *cfg->owned))
		return NULL;
	char *c = malloc(n + 1);
	if (!c)
		return NULL;
	memcpy(c, s, n);
	c[n] = '\0';
	cfg->owned[cfg->nowned++] = c;
	return c;
}

static char *own_str(struct th_hub_config *cfg, const char *s)
{
	return own(cfg, s, strlen(s));
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = x;
	return 0;
}

static int parse_size(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end || x > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)x << shift;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Parses one source: "host:port", "[v6]:port", "host" (3306), or a path with '/'. */
static int add_source(struct th_hub_config *cfg, const char *v, size_t n, char *msg, size_t msg_len)
{
	while (n && isspace((unsigned char)*v))
		v++, n--;
	while (n && isspace((unsigned char)v[n - 1]))
		n--;
	if (!n)
		return 0;
	if (cfg->nsources == TH_HUB_MAX_SOURCES) {
		snprintf(msg, msg_len, "more than %d sources", TH_HUB_MAX_SOURCES);
		return -EINVAL;
	}
	struct th_hub_source *s = &cfg->sources[cfg->nsources];
	memset(s, 0, sizeof *s);
	s->name = own(cfg, v, n);
	if (!s->name)
		return -ENOMEM;
	if (memchr(v, '/', n)) {
		s->socket = s->name;
	} else {
		const char *host = v, *colon;
		size_t hl = n;
		s->port = 3306;
		if (*v == '[') {
			const char *rb = memchr(v, ']', n);
			if (!rb) {
				snprintf(msg, msg_len, "source '%.*s': missing ']'", (int)n, v);
				return -EINVAL;
			}
			host = v + 1;
			hl = (size_t)(rb - host);
			colon = rb + 1 < v + n && rb[1] == ':' ? rb + 1 : NULL;
		} else {
			colon = memchr(v, ':', n);
			if (colon)
				hl = (size_t)(colon - v);
		}
		if (colon) {
			char port[16];
			size_t pl = (size_t)(v + n - colon - 1);
			uint64_t p;
			if (pl == 0 || pl >= sizeof port) {
				snprintf(msg, msg_len, "source '%.*s': bad port", (int)n, v);
				return -EINVAL;
			}
			memcpy(port, colon + 1, pl);
			port[pl] = '\0';
			if (parse_u64(port, &p) || p == 0 || p > 65535) {
				snprintf(msg, msg_len, "source '%.*s': bad port", (int)n, v);
				return -EINVAL;
			}
			s->port = (unsigned)p;
		}
		if (hl == 0) {
			snprintf(msg, msg_len, "source '%.*s': no host", (int)n, v);
			return -EINVAL;
		}
		s->host = own(cfg, host, hl);
		if (!s->host)
			return -ENOMEM;
	}
	cfg->nsources++;
	return 0;
}

/* metrics_listen: "127.x.y.z:PORT" or "[::1]:PORT", numeric; nothing that
 * another host could reach (the endpoint has no authentication). */
static int parse_loopback(const char *v, struct sockaddr_storage *ss, char *msg, size_t msg_len)
{
	char host[64];
	const char *colon = strrchr(v, ':');
	uint64_t port;
	size_t hl = colon ? (size_t)(colon - v) : 0;
	if (!colon || hl == 0 || hl >= sizeof host || parse_u64(colon + 1, &port) || port == 0 || port > 65535) {
		snprintf(msg, msg_len, "metrics_listen '%s': want 127.0.0.1:PORT or [::1]:PORT", v);
		return -EINVAL;
	}
	memcpy(host, v, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		if ((ntohl(in->sin_addr.s_addr) >> 24) != 127) {
			snprintf(msg, msg_len, "metrics_listen '%s': not a loopback address (127.0.0.0/8 or [::1])", v);
			return -EINVAL;
		}
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1) {
			if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
				snprintf(msg, msg_len, "metrics_listen '%s': not a loopback address (127.0.0.0/8 or [::1])", v);
				return -EINVAL;
			}
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			return 0;
		}
	}
	snprintf(msg, msg_len, "metrics_listen '%s': want a numeric loopback address, 127.0.0.1:PORT or [::1]:PORT", v);
	return -EINVAL;
}

static int parse_ids(struct th_hub_config *cfg, const char *v, bool groups, char *msg, size_t msg_len)
{
	size_t *n = groups ? &cfg->n_allow_gids : &cfg->n_allow_uids;
	*n = 0;
	const char *p = v;
	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *e = p;
		while (*e && *e != ',' && !isspace((unsigned char)*e))
			e++;
		char name[256];
		size_t len = (size_t)(e - p);
		if (len >= sizeof name) {
			snprintf(msg, msg_len, "name too long in '%s'", v);
			return -EINVAL;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		uint64_t id;
		if (parse_u64(name, &id) == 0) {
			if (id >= UINT32_MAX) {
				snprintf(msg, msg_len, "id %s out of range", name);
				return -EINVAL;
			}
		} else if (groups) {
			struct group *g = getgrnam(name);
			if (!g) {
				snprintf(msg, msg_len, "no group '%s'", name);
				return -EINVAL;
			}
			id = g->gr_gid;
		} else {
			struct passwd *pw = getpwnam(name);
			if (!pw) {
				snprintf(msg, msg_len, "no user '%s'", name);
				return -EINVAL;
			}
			id = pw->pw_uid;
		}
		if (*n == TH_HUB_MAX_IDS) {
			snprintf(msg, msg_len, "more than %d ids", TH_HUB_MAX_IDS);
			return -EINVAL;
		}
		if (groups)
			cfg->allow_gids[(*n)++] = (gid_t)id;
		else
			cfg->allow_uids[(*n)++] = (uid_t)id;
		p = e;
	}
	return 0;
}

static int set_key(struct th_hub_config *cfg, const struct key *k, const char *v, bool append, char *msg,
		   size_t msg_len)
{
	void *field = (char *)cfg + k->off;
	uint64_t x;
	int rc = 0;
	switch (k->type) {
	case K_STR:
		if (!(*(char **)field = *v ? own_str(cfg, v) : NULL) && *v)
			return -ENOMEM;
		return 0;
	case K_U32:
		if (parse_u64(v, &x) || x > UINT32_MAX)
			rc = -EINVAL;
		else
			*(uint32_t *)field = (uint32_t)x;
		break;
	case K_SIZE:
		rc = parse_size(v, (uint64_t *)field);
		break;
	case K_MODE: {
		char *end;
		unsigned long m = strtoul(v, &end, 8);
		if (!*v || *end || m > 07777)
			rc = -EINVAL;
		else
			*(unsigned *)field = (unsigned)m;
		break;
	}
	case K_BOOL:
		rc = parse_bool(v, (bool *)field);
		break;
	case K_UIDS:
	case K_GIDS:
		return parse_ids(cfg, v, k->type == K_GIDS, msg, msg_len);
	case K_LEVEL:
		rc = th_hub_log_parse_level(v);
		if (rc >= 0) {
			*(int *)field = rc;
			rc = 0;
		}
		break;
	case K_SOURCES: {
		if (!append)
			cfg->nsources = 0;
		const char *p = v;
		for (;;) {
			const char *c = strchr(p, ',');
			size_t n = c ? (size_t)(c - p) : strlen(p);
			if ((rc = add_source(cfg, p, n, msg, msg_len)) < 0)
				return rc;
			if (!c)
				break;
			p = c + 1;
		}
		return 0;
	}
	case K_MS_NS:
	case K_US_NS:
		if (parse_u64(v, &x) || x > UINT64_MAX / 1000000u)
			rc = -EINVAL;
		else
			*(uint64_t *)field = x * (k->type == K_MS_NS ? 1000000u : 1000u);
		break;
	}
	if (rc < 0)
		snprintf(msg, msg_len, "%s: bad value '%s'", k->name, v);
	return rc;
}

/* "a+b" or "a,b" -> value columns. */
static int set_values(struct th_hub_config *cfg, struct th_txn_table *t, const char *v, char *msg, size_t msg_len)
{
	memset(t->value, 0, sizeof t->value);
	size_t n = 0;
	const char *p = v;
	while (*p) {
		const char *e = p + strcspn(p, "+,");
		if (e > p) {
			if (n == TH_TXN_MAX_VALUE_COLS) {
				snprintf(msg, msg_len, "more than %d value columns in '%s'", TH_TXN_MAX_VALUE_COLS, v);
				return -EINVAL;
			}
			if (!(t->value[n++] = own(cfg, p, (size_t)(e - p))))
				return -ENOMEM;
		}
		p = *e ? e + 1 : e;
	}
	return 0;
}

static struct th_txn_table *table_named(struct th_hub_config *cfg, const char *name, char *msg, size_t msg_len)
{
	if (!cfg->custom_tables) {
		cfg->custom_tables = true;
		cfg->ntables = 0;
	}
	for (size_t i = 0; i < cfg->ntables; i++)
		if (!strcmp(cfg->tables[i].table, name))
			return &cfg->tables[i];
	if (cfg->ntables == TH_HUB_MAX_TABLES) {
		snprintf(msg, msg_len, "more than %d tables", TH_HUB_MAX_TABLES);
		return NULL;
	}
	struct th_txn_table *t = &cfg->tables[cfg->ntables];
	memset(t, 0, sizeof *t);
	if (!(t->table = own_str(cfg, name)))
		return NULL;
	cfg->ntables++;
	return t;
}

static int set_table_key(struct th_hub_config *cfg, const char *table, const char *name, const char *v,
			 char *msg, size_t msg_len)
{
	struct th_txn_table *t = table_named(cfg, table, msg, msg_len);
	if (!t)
		return -EINVAL;
	const char **f = NULL;
	if (!strcmp(name, "schema"))
		f = &t->schema;
	else if (!strcmp(name, "key"))
		f = &t->key;
	else if (!strcmp(name, "version"))
		f = &t->version;
	else if (!strcmp(name, "value"))
		return set_values(cfg, t, v, msg, msg_len);
	else {
		snprintf(msg, msg_len, "[table %s]: unknown key '%s' (schema, key, value, version)", table, name);
		return -EINVAL;
	}
	if (!(*f = *v ? own_str(cfg, v) : NULL) && *v)
		return -ENOMEM;
	return 0;
}

/* --table NAME:KEY:V1[+V2..][:VERSION] */
static int table_spec(struct th_hub_config *cfg, const char *spec, char *msg, size_t msg_len)
{
	char buf[1024];
	if (strlen(spec) >= sizeof buf) {
		snprintf(msg, msg_len, "--table spec too long");
		return -EINVAL;
	}
	strcpy(buf, spec);
	char *parts[4] = { 0 };
	int n = 0;
	char *save = NULL;
	for (char *p = strtok_r(buf, ":", &save); p && n < 4; p = strtok_r(NULL, ":", &save))
		parts[n++] = p;
	if (n < 3) {
		snprintf(msg, msg_len, "--table '%s': want NAME:KEY:VALUE[+VALUE...][:VERSION]", spec);
		return -EINVAL;
	}
	int rc = set_table_key(cfg, parts[0], "key", parts[1], msg, msg_len);
	if (!rc)
		rc = set_table_key(cfg, parts[0], "value", parts[2], msg, msg_len);
	if (!rc && n == 4)
		rc = set_table_key(cfg, parts[0], "version", parts[3], msg, msg_len);
	return rc;
}

struct ini_ctx {
	struct th_hub_config *cfg;
	char msg[400];
	int rc;
};

static int on_ini_key(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *c = user;
	if (c->rc)
		return 0;
	if (!strcmp(name, "password")) {
		snprintf(c->msg, sizeof c->msg,
			 "[%s] password: passwords are not read from the configuration; use password_file or password_env",
			 section);
		c->rc = -EINVAL;
		return 0;
	}
	if (!strncmp(section, "table ", 6)) {
		const char *t = section + 6;
		while (*t == ' ')
			t++;
		c->rc = set_table_key(c->cfg, t, name, value, c->msg, sizeof c->msg);
		return c->rc == 0;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name)) {
			c->rc = set_key(c->cfg, &keys[i], value, false, c->msg, sizeof c->msg);
			return c->rc == 0;
		}
	}
	snprintf(c->msg, sizeof c->msg, "unknown key '%s' in section [%s]", name, section);
	c->rc = -EINVAL;
	return 0;
}

void th_hub_config_usage(FILE *out)
{
	fprintf(out,
		"usage: topohubd [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
		"\n"
		"Reads the MySQL/MariaDB binlog of the watched tables and publishes every\n"
		"committed change to a shared-memory ring; serves readers on a control socket.\n"
		"Every configuration key is also a flag: the key with '-' for '_'. The file\n"
		"(INI) is read first; flags override it.\n"
		"\n"
		"  --config FILE        INI file with [hub], [mysql] and [table NAME] sections\n"
		"  --source SOURCE      add a source (host:port or socket path); repeatable\n"
		"  --table NAME:KEY:VALUE[+VALUE...][:VERSION]\n"
		"                       watch a table (replaces the default mysqltopo tables)\n"
		"  --help               this text\n"
		"\n");
	const char *section = "";
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(section, keys[i].section)) {
			section = keys[i].section;
			fprintf(out, "[%s]\n", section);
		}
		char flag[64];
		snprintf(flag, sizeof flag, "--%s", keys[i].name);
		for (char *p = flag + 2; *p; p++)
			if (*p == '_')
				*p = '-';
		fprintf(out, "  %-28s %s%s%s%s%s\n", flag, keys[i].help, keys[i].def ? " [" : "",
			keys[i].def ? keys[i].def : "", keys[i].def ? "]" : "", keys[i].live ? " (SIGHUP)" : "");
	}
	fprintf(out,
		"[table NAME]                 (default: topo_data, topo_locks, topo_elections)\n"
		"  schema, key, value (columns joined by '+' or ','), version\n"
		"\n"
		"Keys marked (SIGHUP) take effect on SIGHUP, which re-reads the file and the\n"
		"flags; the others need a restart (the log names each one that changed).\n"
		"The password is read from password_file or the environment variable named by\n"
		"password_env; never from flags. Exit status: 0 stopped by SIGTERM/SIGINT,\n"
		"1 failure, 2 bad configuration, 3 the server is not configured as topohub needs.\n");
}

static int load_password(struct th_hub_config *cfg, char *msg, size_t msg_len)
{
	if (cfg->password_file) {
		FILE *f = fopen(cfg->password_file, "re");
		if (!f) {
			snprintf(msg, msg_len, "password_file %s: %s", cfg->password_file, strerror(errno));
			return -errno;
		}
		struct stat st;
		if (fstat(fileno(f), &st) == 0 && (st.st_mode & 004))
			th_log_warn("password_file %s is readable by everyone", cfg->password_file);
		char line[1024];
		size_t n = fread(line, 1, sizeof line - 1, f);
		fclose(f);
		line[n] = '\0';
		n = strcspn(line, "\r\n");
		cfg->password = own(cfg, line, n);
		memset(line, 0, sizeof line);
		return cfg->password ? 0 : -ENOMEM;
	}
	if (cfg->password_env) {
		char *p = getenv(cfg->password_env);
		if (p) {
			cfg->password = own_str(cfg, p);
			if (!cfg->password)
				return -ENOMEM;
			/* Children (none today) and /proc/PID/environ readers need not
			 * see it. unsetenv() only drops the pointer from environ; the
			 * bytes stay where the kernel put them at exec, and that block
			 * is what /proc/PID/environ shows. So overwrite them in place
			 * (the "NAME=" prefix too), then drop the entry. */
			size_t name_len = strlen(cfg->password_env);
			char *entry = p - name_len - 1;
			size_t vlen = strlen(p);
			unsetenv(cfg->password_env);
			volatile char *v = entry;
			for (size_t i = 0; i < name_len + 1 + vlen; i++)
				v[i] = '\0';
		}
	}
	return 0;
}

static const struct key *flag_key(const char *flag)
{
	char name[64];
	size_t n = strlen(flag);
	if (n >= sizeof name)
		return NULL;
	for (size_t i = 0; i <= n; i++)
		name[i] = flag[i] == '-' ? '_' : flag[i];
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static int parse(struct th_hub_config *cfg, int argc, char **argv, FILE *out, FILE *err, bool reread)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->argc = argc;
	cfg->argv = argv;
	char msg[1024] = "";
	int rc = 0;
	for (size_t i = 0; i < NKEYS && rc == 0; i++)
		if (keys[i].def)
			rc = set_key(cfg, &keys[i], keys[i].def, false, msg, sizeof msg);
	size_t nt;
	const struct th_txn_table *def = th_txn_mysqltopo_tables(&nt);
	memcpy(cfg->tables, def, nt * sizeof *def);
	cfg->ntables = nt;
	if (rc)
		goto fail;

	/* The file first, wherever --config is on the line: flags override it. */
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			th_hub_config_usage(out);
			return TH_HUB_CONFIG_EXIT_OK;
		}
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			path = argv[++i];
		else if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
		if (path) {
			struct ini_ctx c = { .cfg = cfg };
			int r = ini_parse(path, on_ini_key, &c);
			if (r < 0) {
				snprintf(msg, sizeof msg, "--config %s: %s", path, strerror(errno));
				goto fail;
			}
			if (c.rc || r > 0) {
				snprintf(msg, sizeof msg, "%.500s:%d: %s", path, r, c.msg[0] ? c.msg : "syntax error");
				goto fail;
			}
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2)) {
			snprintf(msg, sizeof msg, "unexpected argument '%s'", a);
			goto fail;
		}
		char flag[96];
		const char *eq = strchr(a, '=');
		size_t fl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (fl >= sizeof flag) {
			snprintf(msg, sizeof msg, "unknown flag '%s'", a);
			goto fail;
		}
		memcpy(flag, a + 2, fl);
		flag[fl] = '\0';
		const char *v = eq ? eq + 1 : NULL;
		if (!v) {
			if (i + 1 >= argc) {
				snprintf(msg, sizeof msg, "--%s needs a value", flag);
				goto fail;
			}
			v = argv[++i];
		}
		if (!strcmp(flag, "config"))
			continue;
		if (!strcmp(flag, "password")) {
			snprintf(msg, sizeof msg, "--password: not accepted on the command line "
				 "(visible to every user); use --password-file or --password-env");
			goto fail;
		}
		if (!strcmp(flag, "source")) {
			if ((rc = add_source(cfg, v, strlen(v), msg, sizeof msg)) < 0)
				goto fail;
			continue;
		}
		if (!strcmp(flag, "table")) {
			if ((rc = table_spec(cfg, v, msg, sizeof msg)) < 0)
				goto fail;
			continue;
		}
		const struct key *k = flag_key(flag);
		if (!k) {
			snprintf(msg, sizeof msg, "unknown flag '--%s' (see --help)", flag);
			goto fail;
		}
		if ((rc = set_key(cfg, k, v, false, msg, sizeof msg)) < 0)
			goto fail;
	}

	/* Whole-configuration checks. */
	if (cfg->nsources == 0) {
		snprintf(msg, sizeof msg, "no MySQL source: set [mysql] sources or --source");
		goto fail;
	}
	if (cfg->ring_capacity < 65536 || (cfg->ring_capacity & (cfg->ring_capacity - 1))) {
		snprintf(msg, sizeof msg, "ring_capacity must be a power of two >= 64K");
		goto fail;
	}
	if (cfg->reader_timeout_min_ns == 0 || cfg->reader_timeout_min_ns > cfg->reader_timeout_max_ns) {
		snprintf(msg, sizeof msg, "need 0 < reader_timeout_min_ms <= reader_timeout_max_ms");
		goto fail;
	}
	if (cfg->reader_timeout_default_ns < cfg->reader_timeout_min_ns)
		cfg->reader_timeout_default_ns = cfg->reader_timeout_min_ns;
	if (cfg->reader_timeout_default_ns > cfg->reader_timeout_max_ns)
		cfg->reader_timeout_default_ns = cfg->reader_timeout_max_ns;
	if (cfg->snapshot_window_ms == 0)
		cfg->snapshot_window_ms = 1;
	if (cfg->max_clients_per_uid == 0 || cfg->max_clients_per_uid > cfg->max_clients)
		cfg->max_clients_per_uid = cfg->max_clients;
	if (cfg->monitor_interval_ns < 100000)
		cfg->monitor_interval_ns = 100000;
	if (cfg->reconnect_min_ms == 0)
		cfg->reconnect_min_ms = 1;
	if (cfg->reconnect_max_ms < cfg->reconnect_min_ms)
		cfg->reconnect_max_ms = cfg->reconnect_min_ms;
	if (!cfg->user) {
		snprintf(msg, sizeof msg, "no MySQL user");
		goto fail;
	}
	if (!cfg->socket_path || strlen(cfg->socket_path) >= 108) {
		snprintf(msg, sizeof msg, "socket path missing or longer than 107 bytes");
		goto fail;
	}
	for (size_t i = 0; i < cfg->ntables; i++) {
		if (!cfg->tables[i].key || !cfg->tables[i].value[0]) {
			snprintf(msg, sizeof msg, "[table %s] needs key and value", cfg->tables[i].table);
			goto fail;
		}
	}
	if (cfg->metrics_listen && *cfg->metrics_listen &&
	    (rc = parse_loopback(cfg->metrics_listen, &cfg->metrics_addr, msg, sizeof msg)) < 0)
		goto fail;
	cfg->socket_gid = (gid_t)-1;
	if (cfg->socket_group) {
		uint64_t g;
		if (parse_u64(cfg->socket_group, &g) == 0) {
			cfg->socket_gid = (gid_t)g;
		} else {
			struct group *gr = getgrnam(cfg->socket_group);
			if (!gr) {
				snprintf(msg, sizeof msg, "socket_group: no group '%s'", cfg->socket_group);
				goto fail;
			}
			cfg->socket_gid = gr->gr_gid;
		}
	}
	if (reread)
		return TH_HUB_CONFIG_RUN; /* the running hub keeps its password and sets its level */
	th_hub_log_set_level((enum th_log_level)cfg->log_level);
	if ((rc = load_password(cfg, msg, sizeof msg)) < 0)
		goto fail;
	return TH_HUB_CONFIG_RUN;
fail:
	fprintf(err, "topohubd: %s\n", msg[0] ? msg : "bad configuration");
	return TH_HUB_CONFIG_EXIT_USAGE;
}

int th_hub_config_parse(struct th_hub_config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
	return parse(cfg, argc, argv, out, err, false);
}

int th_hub_config_reread(const struct th_hub_config *cur, struct th_hub_config *next, char *err, size_t err_len)
{
	err[0] = '\0';
	FILE *e = fmemopen(err, err_len, "w");
	FILE *null = fopen("/dev/null", "we");
	int r = e && null ? parse(next, cur->argc, cur->argv, null, e, true) : TH_HUB_CONFIG_EXIT_USAGE;
	if (e)
		fclose(e);
	if (null)
		fclose(null);
	if (r != TH_HUB_CONFIG_RUN) {
		size_t n = strlen(err);
		while (n && err[n - 1] == '\n')
			err[--n] = '\0';
		if (!n)
			snprintf(err, err_len, "cannot read the configuration");
		return -EINVAL;
	}
	return 0;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool same_key(const struct key *k, const struct th_hub_config *a, const struct th_hub_config *b)
{
	const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
	switch (k->type) {
	case K_STR:
		return same_str(*(char *const *)pa, *(char *const *)pb);
	case K_U32:
		return *(const uint32_t *)pa == *(const uint32_t *)pb;
	case K_SIZE:
	case K_MS_NS:
	case K_US_NS:
		return *(const uint64_t *)pa == *(const uint64_t *)pb;
	case K_MODE:
		return *(const unsigned *)pa == *(const unsigned *)pb;
	case K_BOOL:
		return *(const bool *)pa == *(const bool *)pb;
	case K_LEVEL:
		return *(const int *)pa == *(const int *)pb;
	case K_UIDS:
		return a->n_allow_uids == b->n_allow_uids &&
		       !memcmp(a->allow_uids, b->allow_uids, a->n_allow_uids * sizeof a->allow_uids[0]);
	case K_GIDS:
		return a->n_allow_gids == b->n_allow_gids &&
		       !memcmp(a->allow_gids, b->allow_gids, a->n_allow_gids * sizeof a->allow_gids[0]);
	case K_SOURCES:
		if (a->nsources != b->nsources)
			return false;
		for (size_t i = 0; i < a->nsources; i++)
			if (!same_str(a->sources[i].name, b->sources[i].name))
				return false;
		return true;
	}
	return false;
}

static bool same_tables(const struct th_hub_config *a, const struct th_hub_config *b)
{
	if (a->ntables != b->ntables)
		return false;
	for (size_t i = 0; i < a->ntables; i++) {
		const struct th_txn_table *x = &a->tables[i], *y = &b->tables[i];
		if (!same_str(x->schema, y->schema) || !same_str(x->table, y->table) || !same_str(x->key, y->key) ||
		    !same_str(x->version, y->version))
			return false;
		for (size_t j = 0; j < TH_TXN_MAX_VALUE_COLS; j++)
			if (!same_str(x->value[j], y->value[j]))
				return false;
	}
	return true;
}

size_t th_hub_config_diff(const struct th_hub_config *a, const struct th_hub_config *b,
			  void (*fn)(void *arg, const char *section, const char *key, bool live), void *arg)
{
	size_t n = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		if (same_key(&keys[i], a, b))
			continue;
		n++;
		if (fn)
			fn(arg, keys[i].section, keys[i].name, keys[i].live);
	}
	if (!same_tables(a, b)) {
		n++;
		if (fn)
			fn(arg, "table", "(the watched tables)", false);
	}
	return n;
}

void th_hub_config_free(struct th_hub_config *cfg)
{
	if (cfg->password)
		memset(cfg->password, 0, strlen(cfg->password));
	for (size_t i = 0; i < cfg->nowned; i++)
		free(cfg->owned[i]);
	free(cfg->owned);
	memset(cfg, 0, sizeof *cfg);
}
