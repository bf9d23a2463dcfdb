/* SPDX-License-Identifier: Apache-2.0 */
/* topohubd: the hub daemon (hub.h). `topohubd --help` lists every key. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "hub/hub.h"
#include "hub/hub_config.h"

int main(int argc, char **argv)
{
	/* The MySQL password lives in this process's memory (ours, and the
	 * connector's copies): no core dump, and no ptrace or /proc/PID/mem by
	 * other processes of our uid. PR_SET_DUMPABLE 0 also makes the files in /proc/PID
	 * owned by root: nothing in the hub reads another process's /proc, and
	 * its own /proc/self/fd stays open to it; SO_PEERCRED is unaffected
	 * (the kernel's credentials of the socket peer). Sanitizers that need
	 * ptrace (LeakSanitizer) set it back for themselves. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	struct rlimit no_core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &no_core);

	/* Signals are taken by the main thread through a signalfd (hub.c): block
	 * them before any thread exists so that every thread inherits the mask.
	 * SIGPIPE: a client that went away is an error return, not a death. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct th_hub_config cfg;
	int r = th_hub_config_parse(&cfg, argc, argv, stdout, stderr);
	if (r != TH_HUB_CONFIG_RUN) {
		th_hub_config_free(&cfg);
		return r == TH_HUB_CONFIG_EXIT_OK ? 0 : TH_HUB_EXIT_USAGE;
	}
	int code = th_hub_run(&cfg);
	th_hub_config_free(&cfg);
	return code;
}
