/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_config.h: topohubd's configuration: an INI file (libinih) and a
 * command-line flag for every key.
 *
 * Sections and keys (README "The hub" documents each; `topohubd --help`
 * prints the same table):
 *   [hub]     socket, socket_mode, socket_group, allow_uids, allow_gids,
 *             ring_capacity, max_readers, max_clients, max_clients_per_uid,
 *             idle_timeout_ms, snapshot_bytes_max, snapshot_window_ms,
 *             snapshot_hold_ms, reader_timeout_min_ms,
 *             reader_timeout_max_ms, reader_timeout_default_ms,
 *             monitor_interval_us, monitor_realtime, log_level,
 *             metrics_listen (loopback HTTP for Prometheus, hub_metrics_http.c),
 *             bench_socket_fanout (benchmark only: protocol.h STREAM)
 *   [mysql]   sources, user, password_file, password_env, tls, tls_verify,
 *             tls_ca, tls_cert, tls_key, server_id, heartbeat_ms,
 *             connect_timeout_ms, reconnect_min_ms, reconnect_max_ms,
 *             schema, check_grants
 *   [table NAME]  schema, key, value, version (replaces the default mysqltopo
 *             tables when any is given; order = table index)
 * A flag is the key with '-' for '_' (`--reader-timeout-max-ms 5000`,
 * `--reader-timeout-max-ms=5000`); `--config FILE` is read first, flags
 * override it. `--source X` adds one source; `--table NAME:KEY:V1[+V2..][:VERSION]`
 * one table.
 *
 * The password is never a key or a flag: it comes from password_file (first
 * line) or from the environment variable named by password_env (default
 * TOPOHUB_MYSQL_PASSWORD), which is then removed from the environment. It is
 * never printed; th_hub_config_free() wipes it.
 *
 * SIGHUP (hub.c) re-reads the same flags and file into a new struct
 * (th_hub_config_reread) and applies the keys `topohubd --help` marks
 * (SIGHUP): log_level, allow_uids, allow_gids, max_clients_per_uid,
 * idle_timeout_ms, snapshot_bytes_max, snapshot_window_ms, snapshot_hold_ms and the three
 * reader_timeout_*_ms; th_hub_config_diff names every key that changed, and
 * the hub logs the others as needing a restart.
 *
 * Threads: parse on one thread at start-up; the result is read-only after.
 * A re-read makes a new struct; the running one is never written.
 */
#ifndef TH_HUB_CONFIG_H
#define TH_HUB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "readers/txn.h"

#define TH_HUB_MAX_SOURCES 16
#define TH_HUB_MAX_TABLES 64
#define TH_HUB_MAX_IDS 64

struct th_hub_source {
	char *name;         /* as written: "host:port" or "/path/to.sock" */
	char *host;         /* TCP host, NULL for a socket */
	unsigned port;
	char *socket;       /* Unix socket path, or NULL */
};

struct th_hub_config {
	/* [hub] */
	char *socket_path;
	unsigned socket_mode;
	char *socket_group;               /* name or number; NULL: keep the hub's */
	gid_t socket_gid;                 /* resolved; (gid_t)-1 when none */
	uid_t allow_uids[TH_HUB_MAX_IDS];
	size_t n_allow_uids;
	gid_t allow_gids[TH_HUB_MAX_IDS];
	size_t n_allow_gids;
	uint64_t ring_capacity;
	uint32_t max_readers;
	uint32_t max_clients;
	uint32_t max_clients_per_uid;
	uint32_t idle_timeout_ms;
	uint64_t snapshot_bytes_max;
	uint32_t snapshot_window_ms;
	uint32_t snapshot_hold_ms;
	uint64_t reader_timeout_min_ns, reader_timeout_max_ns, reader_timeout_default_ns;
	uint64_t monitor_interval_ns;
	uint64_t wake_delay_max_ns;
	bool monitor_realtime;
	bool publisher_realtime;
	int log_level;
	bool bench_socket_fanout;         /* benchmark only: serve STREAM (hub_fanout.c) */
	char *metrics_listen;             /* NULL or "": no HTTP endpoint */
	struct sockaddr_storage metrics_addr; /* resolved (loopback only) */

	/* [mysql] */
	struct th_hub_source sources[TH_HUB_MAX_SOURCES];
	size_t nsources;
	char *user;
	char *password_file;
	char *password_env;
	char *password;                   /* loaded by th_hub_config_load_password */
	bool tls, tls_verify;
	char *tls_ca, *tls_cert, *tls_key;
	uint32_t server_id;
	uint32_t heartbeat_ms;
	uint32_t connect_timeout_ms;
	uint32_t reconnect_min_ms, reconnect_max_ms;
	char *schema;
	bool check_grants;

	/* [table NAME]; the mysqltopo tables when none is configured */
	struct th_txn_table tables[TH_HUB_MAX_TABLES];
	size_t ntables;
	bool custom_tables;
	int argc;                         /* (internal) what was parsed, for a re-read */
	char **argv;
	char **owned;                     /* (internal) every string above, freed together */
	size_t nowned, cap_owned;
};

/* Result of parsing: run, or stop at once with this exit status. */
enum th_hub_config_result {
	TH_HUB_CONFIG_RUN = 0,
	TH_HUB_CONFIG_EXIT_OK = 1,   /* --help or --version was printed */
	TH_HUB_CONFIG_EXIT_USAGE = 2 /* an error was printed to err */
};

/*
 * Parse argv (and the --config file it names) into *cfg (zeroed first; free
 * with th_hub_config_free even on error). Prints help to out, errors to err.
 * Loads the password (file or environment). Returns enum th_hub_config_result.
 */
int th_hub_config_parse(struct th_hub_config *cfg, int argc, char **argv, FILE *out, FILE *err);

/*
 * SIGHUP: parse cur's flags (and the --config file they name, read again)
 * into *next (free with th_hub_config_free). Prints nothing, loads no
 * password (the running hub keeps its own) and leaves the log level alone.
 * 0, or -EINVAL with the reason in err.
 */
int th_hub_config_reread(const struct th_hub_config *cur, struct th_hub_config *next, char *err, size_t err_len);

/*
 * Calls fn (when not NULL) for every key whose value differs between a and b,
 * with live true when a SIGHUP applies it; the watched tables count as one
 * key of section "table". Returns how many differ. The password is not
 * compared (it is read at start only).
 */
size_t th_hub_config_diff(const struct th_hub_config *a, const struct th_hub_config *b,
			  void (*fn)(void *arg, const char *section, const char *key, bool live), void *arg);

/* Writes the flag/key table (for --help). */
void th_hub_config_usage(FILE *out);

/* Frees every string and wipes the password. */
void th_hub_config_free(struct th_hub_config *cfg);

#endif
