/* Tests for common/: error table, byte buffer, UTF-8 and base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/th_buf.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error__names_and_messages_cover_errno_and_th_codes),
		cmocka_unit_test(test_buf__json_string_escapes_controls_and_quotes),
		cmocka_unit_test(test_buf__base64_matches_rfc4648_vectors),
		cmocka_unit_test(test_buf__utf8_validation_rejects_overlong_and_surrogates),
		cmocka_unit_test(test_buf__printf_grows_past_the_stack_buffer),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
