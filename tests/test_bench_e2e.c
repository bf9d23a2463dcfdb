/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The end-to-end benchmark harness, in a configuration of a few seconds:
 * every available system (topohub, the per-process peers, etcd when it is
 * installed) with 2 subscribers, every delivery checked. So that the
 * harness cannot rot between benchmark runs; it measures nothing here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_bench_e2e__self_check_runs_every_system_and_loses_nothing(void **state)
{
	(void)state;
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	char bench[512];
	snprintf(bench, sizeof bench, "%s/topohub-bench", build);
	if (access(bench, X_OK) != 0 || access("/usr/sbin/mariadbd", X_OK) != 0) {
		print_message("skip: needs %s and mariadbd\n", bench);
		skip();
	}
	const char *san = getenv("SAN");
	if (san && !strcmp(san, "thread")) {
		/* TSan cannot see across processes, and this harness is processes;
		 * the threads inside them have their own TSan suites. Under TSan it
		 * would only cost minutes of CI. */
		print_message("skip: the harness's self-check runs in the plain and ASan builds\n");
		skip();
	}
	if (system("command -v python3 >/dev/null 2>&1") != 0) {
		print_message("skip: needs python3 for bench/e2e/run.py\n");
		skip();
	}
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "python3 bench/e2e/run.py --build '%s' --self-check > /dev/null", build);
	int status = system(cmd);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bench_e2e__self_check_runs_every_system_and_loses_nothing),
	};
	return cmocka_run_group_tests_name("bench_e2e", tests, NULL, NULL);
}
