/* SPDX-License-Identifier: Apache-2.0 */
/*
 * binlog_file.c: a binlog file as a source of events (binlog.h).
 *
 * The file is mapped read-only and each event is handed to the decoder where
 * it lies: no copy, no per-event allocation, and the page cache does the
 * read-ahead (MADV_SEQUENTIAL). A file that grows after open is read up to
 * its size at open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "readers/binlog.h"
#include "common/th_bytes.h"
#include "common/th_error.h"

struct th_binlog_file {
	char *path;
	const uint8_t *map;
	size_t size;
	uint64_t pos;
	struct th_binlog_decoder *dec;
	bool follow_rotate;
	bool in_payload;
	char *next_name;             /* the ROTATE that ended the file, to follow */
	int sticky;                  /* first error, returned again */
	char err[600];
};

static void unmap(struct th_binlog_file *f)
{
	if (f->map && f->size)
		munmap((void *)f->map, f->size);
	f->map = NULL;
	f->size = 0;
}

/* Map path into f (replacing what was mapped). 0, -errno, or -TH_EBINLOG. */
static int map_file(struct th_binlog_file *f, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(f->err, sizeof f->err, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		snprintf(f->err, sizeof f->err, "%s: cannot stat: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 4) {
		close(fd);
		snprintf(f->err, sizeof f->err, "%s: not a binlog file (%s)", path,
			 S_ISREG(st.st_mode) ? "shorter than its 4-byte magic" : "not a regular file");
		return -TH_EBINLOG;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(f->err, sizeof f->err, "%s: cannot map: %s", path, strerror(e));
		return -e;
	}
	if (memcmp(m, TH_BINLOG_MAGIC, 4)) {
		munmap(m, (size_t)st.st_size);
		snprintf(f->err, sizeof f->err, "%s: not a binlog file (no fe 62 69 6e magic)", path);
		return -TH_EBINLOG;
	}
	madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
	char *p = strdup(path);
	if (!p) {
		munmap(m, (size_t)st.st_size);
		return -ENOMEM;
	}
	unmap(f);
	free(f->path);
	f->path = p;
	f->map = m;
	f->size = (size_t)st.st_size;
	f->pos = 4;
	f->in_payload = false;
	th_binlog_decoder_reset(f->dec, path);
	return 0;
}

int th_binlog_file_open(struct th_binlog_file **out, const char *path, const struct th_binlog_file_opts *opts)
{
	if (!out || !path || (opts && opts->size < sizeof *opts))
		return -EINVAL;
	struct th_binlog_file *f = calloc(1, sizeof *f);
	if (!f)
		return -ENOMEM;
	int rc = th_binlog_decoder_new(&f->dec, opts ? &opts->decoder : NULL);
	if (!rc) {
		f->follow_rotate = opts && opts->follow_rotate;
		rc = map_file(f, path);
	}
	if (rc) {
		th_binlog_file_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void th_binlog_file_close(struct th_binlog_file *f)
{
	if (!f)
		return;
	unmap(f);
	th_binlog_decoder_free(f->dec);
	free(f->path);
	free(f->next_name);
	free(f);
}

static int set_error(struct th_binlog_file *f, int rc, const char *msg)
{
	snprintf(f->err, sizeof f->err, "%s", msg);
	f->sticky = rc;
	return rc;
}

/* The file the closing ROTATE names, in the folder of the current one. */
static int follow(struct th_binlog_file *f)
{
	const char *name = f->next_name;
	if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return set_error(f, -TH_EBINLOG, "ROTATE names a file outside this folder");
	const char *slash = strrchr(f->path, '/');
	size_t dl = slash ? (size_t)(slash - f->path) + 1 : 0;
	size_t nl = strlen(name);
	char *next = malloc(dl + nl + 1);
	if (!next)
		return -ENOMEM;
	memcpy(next, f->path, dl);
	memcpy(next + dl, name, nl + 1);
	free(f->next_name);
	f->next_name = NULL;
	int rc = 0;
	if (access(next, F_OK) == 0) {
		rc = map_file(f, next);
		if (rc)
			f->sticky = rc;
		else
			rc = 1;
	}
	free(next);
	return rc;
}

int th_binlog_file_next(struct th_binlog_file *f, struct th_binlog_event *ev)
{
	if (f->sticky)
		return f->sticky;
	for (;;) {
		if (f->in_payload) {
			int rc = th_binlog_payload_next(f->dec, ev);
			if (rc > 0)
				return 1;
			f->in_payload = false;
			if (rc < 0)
				return set_error(f, rc, th_binlog_decoder_error(f->dec));
		}
		if (f->pos == f->size) {
			if (!f->next_name)
				return 0;
			int rc = follow(f);
			if (rc <= 0)
				return rc;
			continue;
		}
		free(f->next_name);
		f->next_name = NULL;
		size_t left = f->size - (size_t)f->pos;
		const uint8_t *p = f->map + f->pos;
		char msg[600];
		if (left < TH_BINLOG_HEADER_LEN) {
			snprintf(msg, sizeof msg, "%s at %llu: file ends inside an event header (%zu bytes left)",
				 f->path, (unsigned long long)f->pos, left);
			return set_error(f, -TH_ETRUNCATED, msg);
		}
		uint32_t size = th_le32(p + 9);
		if (size > left) {
			snprintf(msg, sizeof msg, "%s at %llu: event of %u bytes, but the file ends %zu bytes on",
				 f->path, (unsigned long long)f->pos, size, left);
			return set_error(f, -TH_ETRUNCATED, msg);
		}
		int rc = th_binlog_decode(f->dec, p, size, f->pos, ev);
		if (rc)
			return set_error(f, rc, th_binlog_decoder_error(f->dec));
		f->pos += size;
		if (ev->kind == TH_EVK_TRANSACTION_PAYLOAD)
			f->in_payload = true;
		if (f->follow_rotate && ev->kind == TH_EVK_ROTATE && !ev->u.rotate.fake &&
		    f->pos == f->size) {
			f->next_name = strndup(ev->u.rotate.name, ev->u.rotate.name_len);
			if (!f->next_name)
				return set_error(f, -ENOMEM, "out of memory");
			if (strlen(f->next_name) != ev->u.rotate.name_len || !ev->u.rotate.name_len) {
				snprintf(msg, sizeof msg, "%s at %llu: ROTATE names no usable file", f->path,
					 (unsigned long long)(f->pos - size));
				return set_error(f, -TH_EBINLOG, msg);
			}
		}
		return 1;
	}
}

const char *th_binlog_file_path(const struct th_binlog_file *f)
{
	return f->path;
}

uint64_t th_binlog_file_pos(const struct th_binlog_file *f)
{
	return f->pos;
}

const char *th_binlog_file_error(const struct th_binlog_file *f)
{
	return f->sticky ? f->err : "";
}

struct th_binlog_decoder *th_binlog_file_decoder(struct th_binlog_file *f)
{
	return f->dec;
}
