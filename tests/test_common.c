/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for common/: error table, byte buffer, UTF-8 and base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include <errno.h>
#include <string.h>

#include "common/th_buf.h"
#include "common/th_bytes.h"
#include "common/th_error.h"

static void test_error__names_and_messages_cover_errno_and_th_codes(void **state)
{
	(void)state;
	assert_string_equal(th_errname(-TH_ELAPPED), "TH_ELAPPED");
	assert_string_equal(th_errname(-ENOMEM), "ENOMEM");
	assert_string_equal(th_errname(0), "OK");
	assert_non_null(strstr(th_strerror(-TH_EEVICTED), "evicted"));
	assert_string_equal(th_strerror(-EINVAL), "Invalid argument");
	assert_non_null(th_strerror(-99999));
}

static void test_buf__json_string_escapes_controls_and_quotes(void **state)
{
	(void)state;
	struct th_buf b = TH_BUF_INIT;
	th_buf_json_string(&b, "a\"b\\c\n\x01", 7);
	assert_string_equal(th_buf_cstr(&b), "\"a\\\"b\\\\c\\n\\u0001\"");
	th_buf_free(&b);
}

static void test_buf__base64_matches_rfc4648_vectors(void **state)
{
	(void)state;
	static const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	for (size_t i = 0; i < 7; i++) {
		struct th_buf b = TH_BUF_INIT;
		th_buf_base64(&b, in[i], strlen(in[i]));
		assert_string_equal(th_buf_cstr(&b), out[i]);
		th_buf_free(&b);
	}
}

static void test_buf__utf8_validation_rejects_overlong_and_surrogates(void **state)
{
	(void)state;
	assert_true(th_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
	assert_false(th_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
	assert_false(th_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(th_utf8_valid("\xe2\x82", 2));         /* truncated */
	assert_false(th_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void test_buf__printf_grows_past_the_stack_buffer(void **state)
{
	(void)state;
	struct th_buf b = TH_BUF_INIT;
	char big[1000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	th_buf_printf(&b, "<%s>", big);
	assert_int_equal(b.len, 1001);
	assert_false(th_buf_failed(&b));
	th_buf_free(&b);
}

static void test_bytes__sign_extension_ignores_bits_above_the_width(void **state)
{
	(void)state;
	assert_int_equal(th_sext(0x7f, 8), 127);
	assert_int_equal(th_sext(0x80, 8), -128);
	assert_int_equal(th_sext(0xffffff, 24), -1);
	/* Garbage above the width (a wider read) changes nothing. */
	assert_int_equal(th_sext(0xab7f, 8), 127);
	assert_int_equal(th_sext(0xab80, 8), -128);
	assert_true(th_sext(UINT64_MAX, 64) == -1);
	assert_true(th_sext((uint64_t)1 << 63, 64) == INT64_MIN);
	const uint8_t le[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	assert_int_equal(th_le16(le), 0x0201);
	assert_int_equal(th_le24(le), 0x030201);
	assert_int_equal(th_le32(le), 0x04030201);
	assert_true(th_le64(le) == 0x0807060504030201ull);
	assert_true(th_le(le, 5) == 0x0504030201ull);
	assert_true(th_be(le, 3) == 0x010203);
	uint8_t out[8];
	th_put_le64(out, 0x0807060504030201ull);
	assert_memory_equal(out, le, 8);
	memset(out, 0xee, sizeof out);
	th_put_le16(out, 0x0201);
	th_put_le32(out + 2, 0x06050403);
	assert_memory_equal(out, le, 6);
	assert_int_equal(out[6], 0xee); /* nothing beyond the width */
	th_put_le(out, 0x0504030201ull, 5);
	assert_memory_equal(out, le, 5);
	assert_true(th_sext(th_le32((const uint8_t *)"\xfe\xff\xff\xff"), 32) == -2);
}

static void test_buf__grow_doubles_and_refuses_overflow(void **state)
{
	(void)state;
	int *a = NULL;
	size_t cap = 0;
	assert_int_equal(th_grow((void **)&a, &cap, 1, sizeof *a), 0);
	assert_int_equal(cap, 16);
	assert_int_equal(th_grow((void **)&a, &cap, 17, sizeof *a), 0);
	assert_int_equal(cap, 32);
	assert_int_equal(th_grow((void **)&a, &cap, 20, sizeof *a), 0); /* enough already */
	assert_int_equal(cap, 32);
	assert_int_equal(th_grow((void **)&a, &cap, SIZE_MAX / 2, sizeof *a), -ENOMEM);
	assert_int_equal(cap, 32);
	uint32_t c32 = 0;
	assert_int_equal(th_grow32((void **)&a, &c32, (size_t)UINT32_MAX + 1, 1), -ENOMEM);
	assert_int_equal(th_grow32((void **)&a, &c32, 100, sizeof *a), 0);
	assert_int_equal(c32, 128);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error__names_and_messages_cover_errno_and_th_codes),
		cmocka_unit_test(test_buf__json_string_escapes_controls_and_quotes),
		cmocka_unit_test(test_buf__base64_matches_rfc4648_vectors),
		cmocka_unit_test(test_buf__utf8_validation_rejects_overlong_and_surrogates),
		cmocka_unit_test(test_buf__printf_grows_past_the_stack_buffer),
		cmocka_unit_test(test_bytes__sign_extension_ignores_bits_above_the_width),
		cmocka_unit_test(test_buf__grow_doubles_and_refuses_overflow),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
