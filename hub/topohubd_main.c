/* SPDX-License-Identifier: Apache-2.0 */
/* topohubd: the hub daemon (hub.h). `topohubd --help` lists every key. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "hub/hub.h"
#include "hub/hub_config.h"

int main(int argc, char **argv)
{
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
