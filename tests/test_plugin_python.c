/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runs the Python binding's tests (plugins/python/test_topohub.py) against
 * the real topohubd and a private MariaDB, so that `make test` covers them.
 * Skips, with the reason, when python3 or the server is missing, and under
 * TSan (CPython is not built for it); under ASan the sanitizer runtime is
 * preloaded into python3 (leak checks off: CPython keeps its arenas).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plugins/topohub.h"
#include "tests/support/hub_proc.h"
#include "tests/support/mariadb.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static int have(const char *cmd)
{
	char line[256];
	snprintf(line, sizeof line, "command -v %s >/dev/null 2>&1", cmd);
	return system(line) == 0;
}

/* Every field of every struct that crosses the ABI, for the binding's test
 * to compare its ctypes layouts with (TOPOHUB_C_LAYOUT: "struct=size" and
 * "struct.field=offset", comma-separated). */
#define ABI_FIELDS(X)                                                                                   \
	X(th_open_opts, size) X(th_open_opts, flags) X(th_open_opts, socket_path) X(th_open_opts, timeout_ns) \
	X(th_open_opts, spin_ns) X(th_open_opts, wait_mode) X(th_open_opts, reserved) X(th_open_opts, name)   \
	X(th_open_opts, max_wake_delay_ns)                                                              \
	X(th_event, size) X(th_event, kind) X(th_event, flags) X(th_event, watch) X(th_event, table)          \
	X(th_event, reason) X(th_event, key) X(th_event, value) X(th_event, key_len) X(th_event, value_len)   \
	X(th_event, version) X(th_event, revision) X(th_event, commit_us) X(th_event, publish_ns)             \
	X(th_event, deliver_ns) X(th_event, latency_ns) X(th_event, gtid) X(th_event, gtid_len)              \
	X(th_event, reserved)                                                                                \
	X(th_watch_opts, size) X(th_watch_opts, flags) X(th_watch_opts, table) X(th_watch_opts, reserved)     \
	X(th_watch_opts, path) X(th_watch_opts, callback) X(th_watch_opts, arg) X(th_watch_opts, free_arg)    \
	X(th_entry, size) X(th_entry, flags) X(th_entry, table) X(th_entry, key_len) X(th_entry, value_len)   \
	X(th_entry, reserved) X(th_entry, key) X(th_entry, value) X(th_entry, version) X(th_entry, revision)  \
	X(th_stats, size) X(th_stats, reserved) X(th_stats, revision) X(th_stats, events) X(th_stats, records) \
	X(th_stats, resyncs) X(th_stats, evictions) X(th_stats, laps) X(th_stats, reconnects)                \
	X(th_stats, watches) X(th_stats, entries) X(th_stats, generation)                                    \
	X(th_api, size) X(th_api, major) X(th_api, minor) X(th_api, strerror) X(th_api, errname)              \
	X(th_api, open) X(th_api, close) X(th_api, watch) X(th_api, watch_recursive) X(th_api, unwatch)       \
	X(th_api, get) X(th_api, entry_free) X(th_api, sync) X(th_api, fd) X(th_api, dispatch) X(th_api, stats)
#define ABI_STRUCTS(X) X(th_open_opts) X(th_event) X(th_watch_opts) X(th_entry) X(th_stats) X(th_api)

static void c_layout(char *out, size_t len)
{
	size_t n = 0;
#define FIELD(s, f) n += (size_t)snprintf(out + n, len - n, "%s." #f "=%zu,", #s, offsetof(struct s, f));
#define STRUCT(s) n += (size_t)snprintf(out + n, len - n, "%s=%zu,", #s, sizeof(struct s));
	ABI_FIELDS(FIELD)
	ABI_STRUCTS(STRUCT)
#undef FIELD
#undef STRUCT
	if (n && n < len)
		out[n - 1] = '\0';
}

static void test_plugin_python__binding_tests_pass_against_the_hub(void **state)
{
	(void)state;
#ifdef UNDER_TSAN
	print_message("skipped: CPython under TSan reports its own races; the binding runs in the plain and ASan builds\n");
	skip();
#endif
	if (!have("python3")) {
		print_message("skipped: python3 is not installed (scripts/install-deps.sh test)\n");
		skip();
	}
	struct th_mariadb *db = NULL;
	char why[1024] = "";
	int rc = th_mariadb_start(NULL, &db, why, sizeof why);
	if (rc == TH_MARIADB_UNAVAILABLE) {
		print_message("skipped: %s\n", why);
		skip();
	}
	if (rc)
		fail_msg("mariadb: %s", why);
	assert_int_equal(th_mariadb_create_topo_schema(db, NULL), 0);
	struct th_mariadb *srcs[] = { db };
	struct th_hub_proc_options o = { .sources = srcs, .nsources = 1 };
	struct th_hub_proc *hub = NULL;
	if (th_hub_proc_start(&o, &hub, why, sizeof why))
		fail_msg("topohubd: %s", why);

	char exe[PATH_MAX - 32], lib[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	for (int i = 0; i < 2; i++) {
		char *s = strrchr(exe, '/');
		if (s)
			*s = 0;
	}
	snprintf(lib, sizeof lib, "%s/libtopohub.so", exe);
	setenv("TOPOHUB_LIB", lib, 1);
	setenv("TOPOHUB_SOCKET", hub->socket, 1);
	setenv("MARIADB_SOCKET", db->socket, 1);
	setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
	static char layout[8192];
	c_layout(layout, sizeof layout);
	setenv("TOPOHUB_C_LAYOUT", layout, 1);
#ifdef UNDER_ASAN
	FILE *p = popen("gcc -print-file-name=libasan.so 2>/dev/null", "r");
	char asan[PATH_MAX] = "";
	if (p && fgets(asan, sizeof asan, p))
		asan[strcspn(asan, "\n")] = 0;
	if (p)
		pclose(p);
	setenv("LD_PRELOAD", asan, 1);
	setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
#endif
	fflush(NULL);
	rc = system("python3 plugins/python/test_topohub.py");
	unsetenv("LD_PRELOAD");
	th_hub_proc_free(hub);
	th_mariadb_stop(db);
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plugin_python__binding_tests_pass_against_the_hub),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
