/* SPDX-License-Identifier: Apache-2.0 */
/* topohubctl decode: binlog files as JSON, one event per line; see ctl.h. */
#include <stdio.h>
#include <string.h>

#include "common/th_buf.h"
#include "common/th_error.h"
#include "ctl/ctl.h"
#include "readers/binlog.h"

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

int ctl_cmd_decode(const struct ctl_options *opt, int argc, char **argv)
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
		fprintf(stderr, "usage: topohubctl decode [--json] [--follow-rotate] FILE...\n");
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
