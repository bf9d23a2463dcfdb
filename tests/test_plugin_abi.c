/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for the ABI of libtopohub.so (plugins/topohub.h), through dlopen as
 * real hosts load it: one exported symbol, the version handshake, layouts,
 * size-prefixed structs from older and newer callers, unknown flags, error
 * names. What needs a running hub is in test_plugin_live.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The project's table first: the public header then skips its copy of the
 * enum, and the test compares its generated table with the source. */
#include "common/th_error.h"
#include "plugins/topohub.h"

/* The layout is part of the ABI: these numbers never change (LP64). */
/* Structures grow only at their end, with a minor: 1.1 appended max_wake_delay_ns (48 bytes in 1.0). */
_Static_assert(sizeof(struct th_open_opts) == 56, "open opts");
_Static_assert(offsetof(struct th_open_opts, max_wake_delay_ns) == 48, "open opts");
_Static_assert(offsetof(struct th_open_opts, wait_mode) == 32, "open opts");
_Static_assert(sizeof(struct th_watch_opts) == 48, "watch opts");
_Static_assert(offsetof(struct th_watch_opts, callback) == 24, "watch opts");
_Static_assert(offsetof(struct th_watch_opts, arg) == 32, "watch opts");
_Static_assert(sizeof(struct th_event) == 112, "event");
_Static_assert(offsetof(struct th_event, watch) == 8, "event");
_Static_assert(offsetof(struct th_event, value) == 32, "event");
_Static_assert(offsetof(struct th_event, latency_ns) == 88, "event");
_Static_assert(sizeof(struct th_entry) == 56, "entry");
_Static_assert(sizeof(struct th_stats) == 88, "stats");
_Static_assert(offsetof(struct th_api, open) == 24, "api");
_Static_assert(offsetof(struct th_api, dispatch) == 96, "api");
_Static_assert(sizeof(struct th_api) == 112, "api");

static char so_path[PATH_MAX];

/* build/X/tests/test_plugin_abi -> build/X/libtopohub.so, or $TH_LIBTOPOHUB. */
static void find_library(void)
{
	const char *env = getenv("TH_LIBTOPOHUB");
	if (env) {
		snprintf(so_path, sizeof so_path, "%s", env);
		return;
	}
	char exe[PATH_MAX - 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	assert_true(n > 0);
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	*slash = 0;
	slash = strrchr(exe, '/');
	*slash = 0;
	snprintf(so_path, sizeof so_path, "%s/libtopohub.so", exe);
}

struct lib {
	void *h;
	th_api_get_fn *get;
	const struct th_api *api;
};

static void lib_open(struct lib *l)
{
	find_library();
	l->h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
	if (!l->h)
		fail_msg("dlopen %s: %s", so_path, dlerror());
	l->get = (th_api_get_fn *)dlsym(l->h, TH_API_SYMBOL);
	assert_non_null(l->get);
	assert_int_equal(l->get(TH_ABI_MAJOR, TH_ABI_MINOR, &l->api), 0);
}

static void lib_close(struct lib *l)
{
	dlclose(l->h);
}

static void test_plugin_abi__exports_exactly_one_symbol(void **state)
{
	(void)state;
	find_library();
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s' 2>/dev/null", so_path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	char line[512];
	int symbols = 0, ours = 0;
	while (fgets(line, sizeof line, f)) {
		char addr[64], type[8], name[400];
		if (sscanf(line, "%63s %7s %399s", addr, type, name) != 3)
			continue;
		if (!strcmp(type, "A"))
			continue; /* the version node TOPOHUB_1 itself */
		symbols++;
		if (!strcmp(name, "th_api_get@@TOPOHUB_1"))
			ours++;
		else
			print_error("unexpected export: %s", line);
	}
	int st = pclose(f);
	if (st != 0 && symbols == 0)
		skip(); /* nm (binutils) not installed */
	assert_int_equal(symbols, 1);
	assert_int_equal(ours, 1);
}

static void test_plugin_abi__refuses_another_major_or_newer_minor(void **state)
{
	(void)state;
	struct lib l;
	lib_open(&l);
	const struct th_api *api = NULL;
	assert_int_equal(l.get(TH_ABI_MAJOR + 1, 0, &api), -TH_EVERSION);
	assert_null(api);
	assert_int_equal(l.get(0, 0, &api), -TH_EVERSION);
	assert_int_equal(l.get(TH_ABI_MAJOR, TH_ABI_MINOR + 1, &api), -TH_EVERSION);
	assert_int_equal(l.get(TH_ABI_MAJOR, TH_ABI_MINOR, NULL), -EINVAL);
	/* An older minor of the same major is served. */
	assert_int_equal(l.get(TH_ABI_MAJOR, 0, &api), 0);
	assert_int_equal(api->major, TH_ABI_MAJOR);
	assert_int_equal(api->minor, TH_ABI_MINOR);
	assert_true(api->size >= sizeof(struct th_api));
	lib_close(&l);
}

static void test_plugin_abi__table_is_complete(void **state)
{
	(void)state;
	struct lib l;
	lib_open(&l);
	const struct th_api *a = l.api;
	void (*const fns[])(void) = {
		(void (*)(void))a->strerror, (void (*)(void))a->errname, (void (*)(void))a->open,
		(void (*)(void))a->close, (void (*)(void))a->watch, (void (*)(void))a->watch_recursive,
		(void (*)(void))a->unwatch, (void (*)(void))a->get, (void (*)(void))a->entry_free,
		(void (*)(void))a->sync, (void (*)(void))a->fd, (void (*)(void))a->dispatch,
		(void (*)(void))a->stats,
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
		assert_non_null(fns[i]);
	lib_close(&l);
}

static void test_plugin_abi__error_names_match_the_header(void **state)
{
	(void)state;
	struct lib l;
	lib_open(&l);
	struct code {
		int code;
		const char *name;
		const char *msg;
	};
#define AS_CODE(name, value, msg) { (value), #name, (msg) },
	static const struct code abi[] = { TH_ABI_ERROR_TABLE(AS_CODE) };
	static const struct code source[] = { TH_ERROR_TABLE(AS_CODE) };
#undef AS_CODE
	/* The public header's table is the project's, code for code. */
	assert_int_equal(sizeof abi / sizeof abi[0], sizeof source / sizeof source[0]);
	for (size_t i = 0; i < sizeof abi / sizeof abi[0]; i++) {
		assert_int_equal(abi[i].code, source[i].code);
		assert_string_equal(abi[i].name, source[i].name);
		assert_string_equal(abi[i].msg, source[i].msg);
		/* And the library names and describes every one of them. */
		assert_string_equal(l.api->errname(-abi[i].code), abi[i].name);
		assert_string_equal(l.api->strerror(-abi[i].code), abi[i].msg);
	}
	assert_string_equal(l.api->errname(-ENOMEM), "ENOMEM");
	assert_non_null(l.api->strerror(-123456));
	lib_close(&l);
}

static void test_plugin_abi__unknown_flags_are_refused(void **state)
{
	(void)state;
	struct lib l;
	lib_open(&l);
	struct th_conn *c = NULL;
	struct th_open_opts o = { .size = sizeof o, .flags = 0x80, .socket_path = "/nonexistent/topohub.sock" };
	assert_int_equal(l.api->open(&o, &c), -EINVAL);
	o.flags = 0;
	o.wait_mode = 9;
	assert_int_equal(l.api->open(&o, &c), -EINVAL);
	o.wait_mode = TH_WAIT_FD;
	o.reserved = 1;
	assert_int_equal(l.api->open(&o, &c), -EINVAL);
	assert_null(c);
	lib_close(&l);
}

static void test_plugin_abi__older_caller_gets_defaults(void **state)
{
	(void)state;
	struct lib l;
	lib_open(&l);
	/* A caller that knows only size and flags: every other field takes its
	 * default (the default socket), so the failure is the socket's, not the
	 * struct's. */
	struct th_open_opts o = { .size = 8, .socket_path = "/ignored/beyond/size" };
	struct th_conn *c = NULL;
	int rc = l.api->open(&o, &c);
	assert_int_not_equal(rc, -EINVAL);
	assert_int_not_equal(rc, -E2BIG);
	if (rc == 0)
		l.api->close(c); /* a hub runs at the default socket on this host */
	/* Shorter than size + flags: refused. */
	o.size = 4;
	assert_int_equal(l.api->open(&o, &c), -EINVAL);
	lib_close(&l);
}

static void test_plugin_abi__newer_caller_with_unknown_fields(void **state)
{
	(void)state;
	struct lib l;
	lib_open(&l);
	struct {
		struct th_open_opts o;
		uint64_t future;
	} big = { .o = { .size = sizeof big, .socket_path = "/nonexistent/topohub.sock" }, .future = 1 };
	struct th_conn *c = NULL;
	assert_int_equal(l.api->open(&big.o, &c), -E2BIG);
	big.future = 0; /* zero: a default, so accepted; then no hub there */
	assert_int_equal(l.api->open(&big.o, &c), -ENOENT);
	lib_close(&l);
}

static void test_plugin_abi__null_arguments(void **state)
{
	(void)state;
	struct lib l;
	lib_open(&l);
	const struct th_api *a = l.api;
	th_watch_id id;
	assert_int_equal(a->open(NULL, NULL), -EINVAL);
	assert_int_equal(a->watch(NULL, NULL, &id), -EINVAL);
	assert_int_equal(a->unwatch(NULL, 1), -EINVAL);
	assert_int_equal(a->dispatch(NULL, 0), -EINVAL);
	assert_int_equal(a->fd(NULL), -EINVAL);
	assert_int_equal(a->get(NULL, 0, "x", NULL), -EINVAL);
	assert_int_equal(a->sync(NULL, "", 0, NULL), -EINVAL);
	struct th_stats st = { .size = sizeof st };
	assert_int_equal(a->stats(NULL, &st), -EINVAL);
	a->close(NULL);
	a->entry_free(NULL);
	lib_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plugin_abi__exports_exactly_one_symbol),
		cmocka_unit_test(test_plugin_abi__refuses_another_major_or_newer_minor),
		cmocka_unit_test(test_plugin_abi__table_is_complete),
		cmocka_unit_test(test_plugin_abi__error_names_match_the_header),
		cmocka_unit_test(test_plugin_abi__unknown_flags_are_refused),
		cmocka_unit_test(test_plugin_abi__older_caller_gets_defaults),
		cmocka_unit_test(test_plugin_abi__newer_caller_with_unknown_fields),
		cmocka_unit_test(test_plugin_abi__null_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
