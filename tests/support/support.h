/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support.h: small helpers shared by the test support code (the MariaDB
 * harness, the hub starter, the replay server, the hub checker).
 */
#ifndef TH_TEST_SUPPORT_H
#define TH_TEST_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

/* Format a reason into why[len]; nothing when why is NULL or len is 0. */
void th_test_say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* $TMPDIR when set and not empty, else /tmp. */
const char *th_test_tmp_root(void);
/* Remove path and everything under it (no links followed); errors ignored. */
void th_test_rm_rf(const char *path);
/* A loopback TCP port nobody listens on now, or a negative errno. */
int th_test_free_port(void);
/* The path of a binlog fixture of the repository (tests/fixtures/binlog/name,
 * under $TH_FIXTURES when set, else relative to the current folder: the
 * repository root, where tests/run.sh runs the tests) into out[len]: 0, or
 * -ENOENT when the file is not there (out still names where it was looked for). */
int th_test_fixture(const char *name, char *out, size_t len);
/* Copy a file (a program, a suppressions list) to `to`, replacing it, with
 * mode (copy_file_range where it works). 0 or -errno. */
int th_test_copy_file(const char *from, const char *to, mode_t mode);
/* Raise this process's open-file soft limit to at least need (up to the
 * hard limit): 0, or -EMFILE when the hard limit is lower (a test that opens
 * thousands of ring readers says so instead of failing on its n-th). */
int th_test_raise_nofile(unsigned need);

#endif
