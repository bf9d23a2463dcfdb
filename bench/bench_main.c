/* SPDX-License-Identifier: Apache-2.0 */
/* topohub-bench: benchmarks. See bench/README.md. */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *what;
} commands[] = {
	{ "ring", th__bench_ring, "ring latency and throughput against the floors (futex, cache-line ping)" },
	{ "decode", th__bench_decode, "binlog decoding speed against mariadb-binlog" },
	{ "e2e", th__bench_e2e, "end to end: SQL commit to callback, topohub against its peers (bench/e2e/run.py)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: topohub-bench COMMAND [--json] [ARGS]\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].what);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "topohub-bench: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
