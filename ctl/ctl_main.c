/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohubctl: the operator's tool, a client of the hub's control socket
 * (protocol/) and of libtopohub.so (watch). Each subcommand is one function
 * and one row in the table below; add yours there and in ctl.h.
 *
 * Global options (before the command): --socket PATH (default
 * $TOPOHUB_SOCKET, else /run/topohub/topohub.sock), --json, --table NAME or
 * index (default 0: topo_data; names are the hub's, see `tables`),
 * --timeout MS (sync; default 10000).
 * Exit status: 0 done, 1 failed or not found, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

struct command {
	const char *name;
	const char *args;
	const char *summary;
	int (*run)(const struct ctl_options *opt, int argc, char **argv); /* argv[0] is the command name */
};

static int cmd_help(const struct ctl_options *opt, int argc, char **argv);

static const struct command commands[] = {
	{ "help", "", "this text", cmd_help },
	{ "decode", "[--json] [--follow-rotate] FILE...",
	  "print each binlog event as one JSON object per line", ctl_cmd_decode },
	{ "status", "", "the hub's state: revision, source, GTID position, counters", ctl_cmd_status },
	{ "readers", "", "attached readers: pid, uid, lag in bytes and time, timeout, evictions", ctl_cmd_readers },
	{ "get", "KEY", "one entry of --table (value, revision, version)", ctl_cmd_get },
	{ "list", "[PREFIX]", "the entries of --table whose keys start with PREFIX", ctl_cmd_list },
	{ "sync", "GTIDSET", "wait until the hub published past GTIDSET; print that revision", ctl_cmd_sync },
	{ "metrics", "", "Prometheus text format metrics", ctl_cmd_metrics },
	{ "tables", "", "the watched tables and their indexes (JSON)", ctl_cmd_tables },
	{ "watch", "[-r] [--json] [--count N] PATH", "print each change with its revision and latency", ctl_cmd_watch },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: topohubctl [--socket PATH] [--json] [--table NAME|INDEX] [--timeout MS] COMMAND [ARGS]\n"
		   "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s %s\n      %s\n", commands[i].name, commands[i].args, commands[i].summary);
}

static int cmd_help(const struct ctl_options *opt, int argc, char **argv)
{
	(void)opt;
	(void)argc;
	(void)argv;
	usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl_options opt = { 0 };
	const char *env = getenv("TOPOHUB_SOCKET");
	opt.socket = env && *env ? env : "/run/topohub/topohub.sock";
	opt.table = "0";
	opt.timeout_ms = 10000;
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help"))
			return cmd_help(&opt, argc - i, argv + i);
		if (!strcmp(a, "--json")) {
			opt.json = true;
			continue;
		}
		const char **dst = NULL;
		const char *t = NULL;
		if (!strcmp(a, "--socket"))
			dst = &opt.socket;
		else if (!strcmp(a, "--table"))
			dst = &opt.table;
		else if (!strcmp(a, "--timeout"))
			dst = &t;
		if (!dst || i + 1 >= argc) {
			fprintf(stderr, "topohubctl: unknown option or missing value: %s\n", a);
			usage(stderr);
			return 2;
		}
		*dst = argv[++i];
		if (t)
			opt.timeout_ms = (unsigned)strtoul(t, NULL, 10);
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t k = 0; k < NCOMMANDS; k++)
		if (!strcmp(argv[i], commands[k].name))
			return commands[k].run(&opt, argc - i, argv + i);
	fprintf(stderr, "topohubctl: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return 2;
}
