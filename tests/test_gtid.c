/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for readers/gtid.h: MySQL GTID sets and MariaDB GTID positions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "readers/gtid.h"
#include "common/th_bytes.h"
#include "common/th_error.h"
#include "tests/support/support.h"

#define U1 "3e11fa47-71ca-11e1-9e33-c80aa9429562"
#define U2 "5a1f0000-0000-4000-8000-000000000001"

static struct th_gtid_set *set_of(const char *text)
{
	struct th_gtid_set *s;
	char why[200];
	assert_int_equal(th_gtid_set_new(&s), 0);
	int rc = th_gtid_set_parse(s, text, why, sizeof why);
	if (rc != 0)
		fail_msg("parse '%s': %s", text, why);
	return s;
}

/* Parses text and checks its canonical form. */
static void expect_canonical(const char *text, const char *want)
{
	struct th_gtid_set *s = set_of(text);
	struct th_buf b = TH_BUF_INIT;
	assert_int_equal(th_gtid_set_format(s, &b), 0);
	if (strcmp(th_buf_cstr(&b), want) != 0)
		fail_msg("'%s' -> '%s', want '%s'", text, th_buf_cstr(&b), want);
	th_buf_free(&b);
	th_gtid_set_free(s);
}

static void expect_bad(const char *text, const char *msg_part)
{
	struct th_gtid_set *s;
	char why[200] = "";
	assert_int_equal(th_gtid_set_new(&s), 0);
	assert_int_equal(th_gtid_set_parse(s, U1 ":1", NULL, 0), 0);
	int rc = th_gtid_set_parse(s, text, why, sizeof why);
	if (rc != -TH_EGTID)
		fail_msg("'%s' parsed (rc %d)", text, rc);
	if (msg_part && !strstr(why, msg_part))
		fail_msg("'%s': message '%s' lacks '%s'", text, why, msg_part);
	/* A failed parse leaves the set as it was. */
	struct th_buf b = TH_BUF_INIT;
	th_gtid_set_format(s, &b);
	assert_string_equal(th_buf_cstr(&b), U1 ":1");
	th_buf_free(&b);
	th_gtid_set_free(s);
}

static void test_gtid__set_merges_adjacent_and_overlapping_intervals(void **state)
{
	(void)state;
	expect_canonical(U1 ":1-5:6-9", U1 ":1-9");
	expect_canonical(U1 ":7:1-5:6", U1 ":1-7");
	expect_canonical(U1 ":1-5:3-8:20-30:25", U1 ":1-8:20-30");
	expect_canonical(U1 ":1-3:5-7:4", U1 ":1-7");
	expect_canonical(U1 ":10-20:1-100", U1 ":1-100");
	expect_canonical(U1 ":1:3:5", U1 ":1:3:5");
	expect_canonical(U1 ":1-2," U1 ":3-4", U1 ":1-4");
}

static void test_gtid__set_text_is_canonical_sorted_lowercase(void **state)
{
	(void)state;
	expect_canonical(U2 ":1-9," U1 ":1-5:7", U1 ":1-5:7," U2 ":1-9");
	expect_canonical("3E11FA47-71CA-11E1-9E33-C80AA9429562:1", U1 ":1");
	expect_canonical("3e11fa4771ca11e19e33c80aa9429562:1", U1 ":1");
	expect_canonical("", "");
	expect_canonical("  \n ", "");
	expect_canonical(",," U1 ":1,,", U1 ":1"); /* MySQL allows empty entries */
}

static void test_gtid__set_reads_mysql_printed_whitespace_and_newlines(void **state)
{
	(void)state;
	/* @@gtid_executed as the mysql client prints it. */
	expect_canonical(U1 ":1-5,\n" U2 ":1-9\n", U1 ":1-5," U2 ":1-9");
	expect_canonical(" " U1 " : 1 - 5 : 7 ,\r\n\t" U2 ":1", U1 ":1-5:7," U2 ":1");
}

static void test_gtid__set_accepts_huge_and_rejects_out_of_range_numbers(void **state)
{
	(void)state;
	expect_canonical(U1 ":9223372036854775806", U1 ":9223372036854775806");
	expect_canonical(U1 ":1-9223372036854775806", U1 ":1-9223372036854775806");
	expect_bad(U1 ":9223372036854775807", "2^63");
	expect_bad(U1 ":18446744073709551616", "transaction number");
	expect_bad(U1 ":0", "start at 1");
	expect_bad(U1 ":5-3", "before it starts");
}

static void test_gtid__set_rejects_malformed_text_with_a_clear_message(void **state)
{
	(void)state;
	expect_bad("3e11fa47-71ca-11e1-9e33:1", "malformed uuid");
	expect_bad("zz11fa47-71ca-11e1-9e33-c80aa9429562:1", "malformed uuid");
	expect_bad(U1, "expected ':'");
	expect_bad(U1 ":", "transaction number");
	expect_bad(U1 ":1-", "end of the interval");
	expect_bad(U1 ":1 x", "expected ','");
	expect_bad(U1 ":-1", "transaction number");
	expect_bad(U1 ":tag:1-5", "tagged");
}

static void test_gtid__set_contains_gtids_and_subsets(void **state)
{
	(void)state;
	struct th_gtid_set *a = set_of(U1 ":1-5:7:10-20," U2 ":1");
	uint8_t u1[16], u2[16];
	assert_int_equal(th_gtid_uuid_parse(U1, strlen(U1), u1), 0);
	assert_int_equal(th_gtid_uuid_parse(U2, strlen(U2), u2), 0);
	assert_true(th_gtid_set_contains_gtid(a, u1, 1));
	assert_true(th_gtid_set_contains_gtid(a, u1, 5));
	assert_false(th_gtid_set_contains_gtid(a, u1, 6));
	assert_true(th_gtid_set_contains_gtid(a, u1, 7));
	assert_true(th_gtid_set_contains_gtid(a, u1, 20));
	assert_false(th_gtid_set_contains_gtid(a, u1, 21));
	assert_false(th_gtid_set_contains_gtid(a, u1, 0));
	assert_false(th_gtid_set_contains_gtid(a, u2, 2));

	struct th_gtid_set *sub = set_of(U1 ":2-4:12-15," U2 ":1");
	struct th_gtid_set *notsub = set_of(U1 ":4-7");
	struct th_gtid_set *empty = set_of("");
	assert_true(th_gtid_set_contains(a, sub));
	assert_false(th_gtid_set_contains(a, notsub));
	assert_true(th_gtid_set_contains(a, empty));
	assert_true(th_gtid_set_contains(a, a));
	assert_false(th_gtid_set_contains(empty, sub));
	assert_true(th_gtid_set_is_empty(empty));
	assert_int_equal(th_gtid_set_count(a), 5 + 1 + 11 + 1);
	th_gtid_set_free(a);
	th_gtid_set_free(sub);
	th_gtid_set_free(notsub);
	th_gtid_set_free(empty);
}

static void test_gtid__set_add_and_union_grow_canonically(void **state)
{
	(void)state;
	struct th_gtid_set *s = set_of("");
	uint8_t u1[16];
	assert_int_equal(th_gtid_uuid_parse(U1, strlen(U1), u1), 0);
	for (uint64_t g = 10; g >= 1; g--)
		assert_int_equal(th_gtid_set_add(s, u1, g), 0);
	assert_int_equal(th_gtid_set_add(s, u1, 0), -TH_EGTID);
	assert_int_equal(th_gtid_set_add(s, u1, TH_GTID_GNO_MAX + 1), -TH_EGTID);
	struct th_gtid_set *want = set_of(U1 ":1-10");
	assert_true(th_gtid_set_equal(s, want));

	struct th_gtid_set *other = set_of(U1 ":12-15," U2 ":3");
	assert_int_equal(th_gtid_set_union(s, other), 0);
	struct th_gtid_set *want2 = set_of(U2 ":3," U1 ":1-10:12-15");
	assert_true(th_gtid_set_equal(s, want2));
	assert_false(th_gtid_set_equal(s, want));
	assert_int_equal(th_gtid_set_add(s, u1, 11), 0);
	struct th_gtid_set *want3 = set_of(U1 ":1-15," U2 ":3");
	assert_true(th_gtid_set_equal(s, want3));

	struct th_gtid_set *copy = set_of(U1 ":99");
	assert_int_equal(th_gtid_set_copy(copy, s), 0);
	assert_true(th_gtid_set_equal(copy, s));
	th_gtid_set_clear(copy);
	assert_true(th_gtid_set_is_empty(copy));
	th_gtid_set_free(s);
	th_gtid_set_free(want);
	th_gtid_set_free(other);
	th_gtid_set_free(want2);
	th_gtid_set_free(want3);
	th_gtid_set_free(copy);
}

static void test_gtid__set_binary_encoding_round_trips(void **state)
{
	(void)state;
	struct th_gtid_set *s = set_of(U1 ":1-5:7," U2 ":1-9");
	struct th_buf b = TH_BUF_INIT;
	assert_int_equal(th_gtid_set_encode(s, &b), 0);
	assert_int_equal(b.len, th_gtid_set_encoded_size(s));
	assert_int_equal(b.len, 8 + (16 + 8 + 2 * 16) + (16 + 8 + 16));
	const uint8_t *p = (const uint8_t *)b.data;
	assert_int_equal(p[0], 2); /* n_sids, little-endian */
	assert_int_equal(p[1], 0);
	assert_int_equal(p[8], 0x3e); /* first uuid */
	assert_int_equal(p[24], 2);   /* its n_intervals */
	assert_int_equal(p[32], 1);   /* start 1 */
	assert_int_equal(p[40], 6);   /* end 6, exclusive */
	assert_int_equal(p[48], 7);
	assert_int_equal(p[56], 8);

	/* Decoding takes the set's bytes and leaves a trailing checksum alone. */
	th_buf_append(&b, "\xaa\xbb\xcc\xdd", 4);
	struct th_gtid_set *d = set_of("");
	size_t used = 0;
	assert_int_equal(th_gtid_set_decode(d, (const uint8_t *)b.data, b.len, &used), 0);
	assert_int_equal(used, b.len - 4);
	assert_true(th_gtid_set_equal(s, d));

	/* Truncation anywhere is an error, and leaves the set alone. */
	for (size_t cut = 0; cut < b.len - 4; cut++) {
		struct th_gtid_set *t = set_of(U1 ":100");
		assert_int_equal(th_gtid_set_decode(t, (const uint8_t *)b.data, cut, NULL), -TH_EGTID);
		struct th_gtid_set *u = set_of(U1 ":100");
		assert_true(th_gtid_set_equal(t, u));
		th_gtid_set_free(t);
		th_gtid_set_free(u);
	}
	/* The empty set is eight zero bytes. */
	struct th_gtid_set *e = set_of("");
	th_buf_reset(&b);
	assert_int_equal(th_gtid_set_encode(e, &b), 0);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "\0\0\0\0\0\0\0\0", 8);
	th_buf_free(&b);
	th_gtid_set_free(s);
	th_gtid_set_free(d);
	th_gtid_set_free(e);
}

static void test_gtid__set_decode_rejects_impossible_intervals(void **state)
{
	(void)state;
	uint8_t buf[8 + 24 + 16] = { 1 };
	memset(buf + 8, 0x11, 16);
	buf[24] = 1;
	/* start 5, end 5: empty interval */
	buf[32] = 5;
	buf[40] = 5;
	struct th_gtid_set *s = set_of("");
	assert_int_equal(th_gtid_set_decode(s, buf, sizeof buf, NULL), -TH_EGTID);
	buf[40] = 6;
	assert_int_equal(th_gtid_set_decode(s, buf, sizeof buf, NULL), 0);
	buf[32] = 0; /* start 0 */
	assert_int_equal(th_gtid_set_decode(s, buf, sizeof buf, NULL), -TH_EGTID);
	buf[32] = 5;
	buf[7] = 1; /* tagged-format marker in the top byte of n_sids */
	assert_int_equal(th_gtid_set_decode(s, buf, sizeof buf, NULL), -TH_EGTID);
	buf[7] = 0;
	buf[24] = 200; /* more intervals than bytes */
	assert_int_equal(th_gtid_set_decode(s, buf, sizeof buf, NULL), -TH_EGTID);
	assert_int_equal(th_gtid_set_count(s), 1);
	th_gtid_set_free(s);
}

static void test_gtid__uuid_parse_and_format(void **state)
{
	(void)state;
	uint8_t u[16];
	char out[TH_GTID_UUID_TEXT_LEN + 1];
	assert_int_equal(th_gtid_uuid_parse(U1, 36, u), 0);
	th_gtid_uuid_format(u, out);
	assert_string_equal(out, U1);
	assert_int_equal(th_gtid_uuid_parse("3e11fa47_71ca-11e1-9e33-c80aa9429562", 36, u), -TH_EGTID);
	assert_int_equal(th_gtid_uuid_parse(U1, 35, u), -TH_EGTID);
}

/* Reads a fixture binlog of the repository (tests/fixtures/binlog). */
static uint8_t *read_fixture(const char *name, size_t *len)
{
	char path[512];
	th_test_fixture(name, path, sizeof path);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("fixture %s: %s (run the tests from the repository root, or set TH_FIXTURES)", path,
			 strerror(errno));
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void test_gtid__set_decodes_previous_gtids_written_by_mysql(void **state)
{
	(void)state;
	size_t len;
	uint8_t *file = read_fixture("mysql-8.0.45-gtid.000002", &len);
	struct th_gtid_set *s = set_of("");
	bool seen = false;
	for (size_t off = 4; off + 19 <= len;) {
		uint32_t size = th_le32(file + off + 9);
		assert_true(size >= 19 && off + size <= len);
		if (file[off + 4] == 35) { /* PREVIOUS_GTIDS: body, then CRC32 */
			size_t used = 0;
			assert_int_equal(th_gtid_set_decode(s, file + off + 19, size - 19, &used), 0);
			assert_int_equal(used, size - 19 - 4);
			seen = true;
		} else if (file[off + 4] == 33) { /* GTID: flags, uuid, gno */
			uint64_t gno = 0;
			for (int i = 7; i >= 0; i--)
				gno = gno << 8 | file[off + 19 + 17 + i];
			assert_int_equal(th_gtid_set_add(s, file + off + 20, gno), 0);
		}
		off += size;
	}
	assert_true(seen);
	struct th_buf b = TH_BUF_INIT;
	assert_int_equal(th_gtid_set_format(s, &b), 0);
	assert_string_equal(th_buf_cstr(&b), "396e294c-1ca4-11f1-9ae7-00155da79c6b:1-6");
	th_buf_free(&b);
	th_gtid_set_free(s);
	free(file);
}

/* ---- MariaDB ---- */

static struct th_gtid_pos *pos_of(const char *text)
{
	struct th_gtid_pos *p;
	char why[200];
	assert_int_equal(th_gtid_pos_new(&p), 0);
	if (th_gtid_pos_parse(p, text, why, sizeof why) != 0)
		fail_msg("parse '%s': %s", text, why);
	return p;
}

static void expect_pos_text(const struct th_gtid_pos *p, const char *want)
{
	struct th_buf b = TH_BUF_INIT;
	assert_int_equal(th_gtid_pos_format(p, &b), 0);
	assert_string_equal(th_buf_cstr(&b), want);
	th_buf_free(&b);
}

static void test_gtid__mariadb_position_parses_and_formats_sorted(void **state)
{
	(void)state;
	struct th_gtid_pos *p = pos_of("1-2-7,\n 0-1-100");
	expect_pos_text(p, "0-1-100,1-2-7");
	assert_int_equal(th_gtid_pos_count(p), 2);
	struct th_maria_gtid g;
	assert_true(th_gtid_pos_get(p, 1, &g));
	assert_int_equal(g.server_id, 2);
	assert_int_equal(g.seq_no, 7);
	assert_false(th_gtid_pos_get(p, 5, &g));
	th_gtid_pos_free(p);

	p = pos_of("");
	expect_pos_text(p, "");
	th_gtid_pos_free(p);
	p = pos_of("4294967295-4294967295-18446744073709551615");
	expect_pos_text(p, "4294967295-4294967295-18446744073709551615");
	th_gtid_pos_free(p);
}

static void test_gtid__mariadb_position_rejects_malformed_text(void **state)
{
	(void)state;
	static const struct { const char *text, *msg; } bad[] = {
		{ "0-1", "'-' after the server id" },
		{ "0-1-", "sequence number" },
		{ "0-1-5,", "nothing after ','" },
		{ "0-1-5,0-2-6", "appears twice" },
		{ "4294967296-1-1", "domain id" },
		{ "0-4294967296-1", "server id" },
		{ "0-1-18446744073709551616", "sequence number" },
		{ "0-1-5 1-1-1", "expected ','" },
		{ "a-1-1", "domain id" },
		{ "-1-1-1", "domain id" },
	};
	struct th_gtid_pos *p = pos_of("0-1-1");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char why[200] = "";
		assert_int_equal(th_gtid_pos_parse(p, bad[i].text, why, sizeof why), -TH_EGTID);
		if (!strstr(why, bad[i].msg))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].text, why, bad[i].msg);
		expect_pos_text(p, "0-1-1"); /* unchanged */
	}
	th_gtid_pos_free(p);
	struct th_maria_gtid g;
	assert_int_equal(th_maria_gtid_parse(" 0-1-42 ", &g), 0);
	assert_int_equal(g.seq_no, 42);
	assert_int_equal(th_maria_gtid_parse("0-1-42,1-1-1", &g), -TH_EGTID);
}

static void test_gtid__mariadb_position_updates_per_domain_and_contains(void **state)
{
	(void)state;
	struct th_gtid_pos *p = pos_of("0-1-100");
	struct th_maria_gtid g = { .domain_id = 0, .server_id = 2, .seq_no = 101 };
	assert_int_equal(th_gtid_pos_update(p, &g), 0);
	g = (struct th_maria_gtid){ .domain_id = 3, .server_id = 1, .seq_no = 5 };
	assert_int_equal(th_gtid_pos_update(p, &g), 0);
	expect_pos_text(p, "0-2-101,3-1-5");

	struct th_maria_gtid q = { 0, 1, 100 };
	assert_true(th_gtid_pos_contains(p, &q));
	q.seq_no = 101;
	assert_true(th_gtid_pos_contains(p, &q));
	q.seq_no = 102;
	assert_false(th_gtid_pos_contains(p, &q));
	q = (struct th_maria_gtid){ 7, 1, 1 };
	assert_false(th_gtid_pos_contains(p, &q));

	struct th_gtid_pos *c = pos_of("");
	assert_int_equal(th_gtid_pos_copy(c, p), 0);
	assert_true(th_gtid_pos_equal(c, p));
	th_gtid_pos_clear(c);
	assert_false(th_gtid_pos_equal(c, p));
	assert_int_equal(th_gtid_pos_count(c), 0);
	th_gtid_pos_free(c);
	th_gtid_pos_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gtid__set_merges_adjacent_and_overlapping_intervals),
		cmocka_unit_test(test_gtid__set_text_is_canonical_sorted_lowercase),
		cmocka_unit_test(test_gtid__set_reads_mysql_printed_whitespace_and_newlines),
		cmocka_unit_test(test_gtid__set_accepts_huge_and_rejects_out_of_range_numbers),
		cmocka_unit_test(test_gtid__set_rejects_malformed_text_with_a_clear_message),
		cmocka_unit_test(test_gtid__set_contains_gtids_and_subsets),
		cmocka_unit_test(test_gtid__set_add_and_union_grow_canonically),
		cmocka_unit_test(test_gtid__set_binary_encoding_round_trips),
		cmocka_unit_test(test_gtid__set_decode_rejects_impossible_intervals),
		cmocka_unit_test(test_gtid__uuid_parse_and_format),
		cmocka_unit_test(test_gtid__set_decodes_previous_gtids_written_by_mysql),
		cmocka_unit_test(test_gtid__mariadb_position_parses_and_formats_sorted),
		cmocka_unit_test(test_gtid__mariadb_position_rejects_malformed_text),
		cmocka_unit_test(test_gtid__mariadb_position_updates_per_domain_and_contains),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
