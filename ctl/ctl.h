/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl.h: what the files of topohubctl share. One options struct, set once by
 * main() from the global options and handed to every command; one way to
 * resolve --table (by asking the hub); one file per command group:
 *
 *   ctl_main.c    options, the command table, usage
 *   ctl_query.c   status, readers, tables, get, list, sync, metrics (control socket)
 *   ctl_watch.c   watch (libtopohub.so through dlopen, as any host loads it)
 *   ctl_decode.c  decode (binlog files; no hub needed)
 *
 * Commands return the exit status: 0 done, 1 failed or not found, 2 usage.
 */
#ifndef TH_CTL_H
#define TH_CTL_H

#include <stdbool.h>
#include <stdint.h>

struct th_ctl;

struct ctl_options {
	const char *socket;   /* --socket, $TOPOHUB_SOCKET, or the default */
	bool json;            /* --json */
	const char *table;    /* --table: a name the hub knows, or an index */
	unsigned timeout_ms;  /* --timeout */
};

/* Connects to opt->socket; NULL after saying why on stderr. */
struct th_ctl *ctl_connect(const struct ctl_options *opt);

/* opt->table (a name or an index) as the hub numbers it, asked of the hub
 * (TABLES) over c; *nvalues gets its number of value columns. 0, or -1 after
 * saying why on stderr. */
int ctl_table_index(const struct ctl_options *opt, struct th_ctl *c, uint32_t *index, int *nvalues);

int ctl_cmd_decode(const struct ctl_options *opt, int argc, char **argv);
int ctl_cmd_status(const struct ctl_options *opt, int argc, char **argv);
int ctl_cmd_readers(const struct ctl_options *opt, int argc, char **argv);
int ctl_cmd_tables(const struct ctl_options *opt, int argc, char **argv);
int ctl_cmd_get(const struct ctl_options *opt, int argc, char **argv);
int ctl_cmd_list(const struct ctl_options *opt, int argc, char **argv);
int ctl_cmd_sync(const struct ctl_options *opt, int argc, char **argv);
int ctl_cmd_metrics(const struct ctl_options *opt, int argc, char **argv);
int ctl_cmd_watch(const struct ctl_options *opt, int argc, char **argv);

#endif
