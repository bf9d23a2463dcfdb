/*
 * topohubctl: the operator's tool. Each subcommand is one function and one
 * row in the table below; add yours there.
 */
#include <stdio.h>
#include <string.h>

#include "binlog.h"
#include "th_buf.h"
#include "th_error.h"

struct command {
	const char *name;
	const char *args;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

static int cmd_help(int argc, char **argv);
static int cmd_decode(int argc, char **argv);
int th__ctl_watch(int argc, char **argv); /* hub/topohubctl_watch.c */

static const struct command commands[] = {
	{ "help", "", "this text", cmd_help },
	{ "decode", "[--json] [--follow-rotate] FILE...",
	  "print each binlog event as one JSON object per line", cmd_decode },
	{ "watch", "[-r] [--json] [--count N] PATH", "print each change with its revision and latency", th__ctl_watch },
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: topohubctl COMMAND [ARGS]\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s %s\n      %s\n", commands[i].name, commands[i].args, commands[i].summary);
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return 0;
}

/* Decode one file; 0, or 1 after printing why to stderr. */
static int decode_file(const char *path, bool follow)
{
	struct th_binlog_file_opts opts = { .size = sizeof opts, .follow_rotate = follow };
	opts.decoder.size = sizeof opts.decoder;
	struct th_binlog_file *f;
	int rc = th_binlog_file_open(&f, path, &opts);
	if (rc) {
		fprintf(stderr, "topohubctl decode: %s: %s\n", path, th_strerror(rc));
		return 1;
	}
	struct th_buf out = TH_BUF_INIT;
	struct th_binlog_event ev;
	int status = 0;
	while ((rc = th_binlog_file_next(f, &ev)) == 1) {
		th_buf_reset(&out);
		int jr = th_binlog_event_to_json(&ev, &out);
		th_buf_putc(&out, '\n');
		if (th_buf_failed(&out)) {
			fprintf(stderr, "topohubctl decode: out of memory\n");
			status = 1;
			break;
		}
		fwrite(out.data, 1, out.len, stdout);
		if (jr) {
			fprintf(stderr, "topohubctl decode: %s at %llu: rows: %s\n", th_binlog_file_path(f),
				(unsigned long long)ev.pos, th_strerror(jr));
			status = 1;
		}
	}
	if (rc < 0) {
		fflush(stdout);
		fprintf(stderr, "topohubctl decode: %s (%s)\n", th_binlog_file_error(f), th_errname(rc));
		status = 1;
	}
	th_buf_free(&out);
	th_binlog_file_close(f);
	return status;
}

static int cmd_decode(int argc, char **argv)
{
	bool follow = false;
	int i = 1, status = 0;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json"))
			continue; /* the default, and for now the only format */
		if (!strcmp(argv[i], "--follow-rotate")) {
			follow = true;
			continue;
		}
		if (!strcmp(argv[i], "--"))  {
			i++;
			break;
		}
		fprintf(stderr, "topohubctl decode: unknown option '%s'\n", argv[i]);
		return 2;
	}
	if (i == argc) {
		fprintf(stderr, "usage: topohubctl decode %s\n", commands[1].args);
		return 2;
	}
	for (; i < argc; i++)
		status |= decode_file(argv[i], follow);
	if (fflush(stdout) != 0) {
		perror("topohubctl decode: stdout");
		status = 1;
	}
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help"))
		return cmd_help(argc - 1, argv + 1);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "topohubctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
