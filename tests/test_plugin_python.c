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
