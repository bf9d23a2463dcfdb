/* SPDX-License-Identifier: Apache-2.0 */
/*
 * watch_prefix: an example host for libtopohub.so.
 *
 * What an existing daemon does to follow topology changes: load the library
 * with dlopen (no link-time dependency), ask for the ABI it was built
 * against, connect, watch a prefix recursively, and put the connection's
 * descriptor in its own event loop (here poll(); epoll, libuv or libevent the
 * same way). Only plugins/topohub.h is needed to build it:
 *
 *   cc -std=c11 -Wall -Iplugins plugins/examples/watch_prefix.c -o watch_prefix
 *   ./watch_prefix --lib build/libtopohub.so --socket /run/topohub/topohub.sock /vt/keyspaces
 *
 * It prints one line per event with its revision and the hub-to-callback
 * latency, and exits on SIGINT/SIGTERM or after --count changes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The installed header, as a host outside this tree includes it (-Iplugins
 * here, pkg-config topohub against an installed library). */
#include <topohub.h>

struct host {
	const struct th_api *api;
	const char *name;
	long changes_left; /* < 0: run until a signal */
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Runs inside dispatch(), on our thread: keep it short, copy what you keep. */
static void on_event(const struct th_event *ev, void *arg)
{
	struct host *h = arg;
	static const char *const kinds[] = { "?", "INITIAL", "PUT", "DELETE", "NOT_FOUND", "RESYNC", "SYNCED", "ENDED" };
	const char *kind = ev->kind < 8 ? kinds[ev->kind] : "?";
	switch (ev->kind) {
	case TH_EVENT_INITIAL:
	case TH_EVENT_PUT:
		printf("[%s] rev %" PRIu64 " %-7s %s = %.*s (version %" PRId64 ")", h->name, ev->revision, kind, ev->key,
		       (int)(ev->value_len > 120 ? 120 : ev->value_len), ev->value, ev->version);
		break;
	case TH_EVENT_DELETE:
		printf("[%s] rev %" PRIu64 " %-7s %s", h->name, ev->revision, kind, ev->key);
		break;
	case TH_EVENT_RESYNC:
		printf("[%s] rev %" PRIu64 " RESYNC (reason %u): the changes that bring us up to date follow", h->name,
		       ev->revision, ev->reason);
		break;
	default:
		printf("[%s] rev %" PRIu64 " %s", h->name, ev->revision, kind);
		break;
	}
	/* Only events read from the ring carry a latency (not the initial state). */
	if (ev->latency_ns)
		printf("  latency %.1f us", (double)ev->latency_ns / 1000.0);
	printf("\n");
	fflush(stdout);
	if ((ev->kind == TH_EVENT_PUT || ev->kind == TH_EVENT_DELETE) && h->changes_left > 0)
		h->changes_left--;
}

int main(int argc, char **argv)
{
	const char *lib_path = getenv("TOPOHUB_LIB"), *socket = getenv("TOPOHUB_SOCKET");
	struct host host = { .name = "watch_prefix", .changes_left = -1 };
	uint32_t table = TH_TABLE_DATA;
	int i = 1;
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--lib"))
			lib_path = argv[i + 1];
		else if (!strcmp(argv[i], "--socket"))
			socket = argv[i + 1];
		else if (!strcmp(argv[i], "--count"))
			host.changes_left = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--table"))
			table = (uint32_t)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--name"))
			host.name = argv[i + 1];
		else
			break;
	}
	if (i + 1 != argc) {
		fprintf(stderr, "usage: %s [--lib PATH] [--socket PATH] [--count N] [--table N] [--name NAME] PREFIX\n",
			argv[0]);
		return 2;
	}
	const char *prefix = argv[i];

	/* 1. Load the library and ask for the ABI this program was built with. */
	void *lib = dlopen(lib_path ? lib_path : "libtopohub.so", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	th_api_get_fn *get_api = (th_api_get_fn *)dlsym(lib, TH_API_SYMBOL);
	if (!get_api || get_api(TH_ABI_MAJOR, TH_ABI_MINOR, &host.api) != 0) {
		fprintf(stderr, "libtopohub.so does not offer ABI %d.%d\n", TH_ABI_MAJOR, TH_ABI_MINOR);
		dlclose(lib);
		return 1;
	}
	const struct th_api *api = host.api;

	/* 2. Connect. TH_WAIT_FD: we sleep in our own loop, not in the library. */
	struct th_open_opts oo = { .size = sizeof oo, .socket_path = socket, .wait_mode = TH_WAIT_FD,
				   .timeout_ns = 2000000000, .name = host.name };
	struct th_conn *conn;
	int rc = api->open(&oo, &conn);
	if (rc) {
		fprintf(stderr, "open %s: %s (%s)\n", socket ? socket : TH_DEFAULT_SOCKET, api->strerror(rc),
			api->errname(rc));
		dlclose(lib);
		return 1;
	}

	/* 3. Watch. The initial entries arrive from the first dispatch. */
	struct th_watch_opts wo = { .size = sizeof wo, .table = table, .path = prefix, .callback = on_event, .arg = &host };
	th_watch_id id;
	rc = api->watch_recursive(conn, &wo, &id);
	if (rc) {
		fprintf(stderr, "watch %s: %s\n", prefix, api->strerror(rc));
		api->close(conn);
		dlclose(lib);
		return 1;
	}

	/* 4. The event loop: poll our descriptors and the library's together. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct pollfd pfd = { .fd = api->fd(conn), .events = POLLIN };
	int status = 0;
	rc = api->dispatch(conn, 0); /* take in the watch; from now on the fd says when */
	while (!stopping && host.changes_left != 0 && rc >= 0) {
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
			perror("poll");
			status = 1;
			break;
		}
		rc = api->dispatch(conn, 0);
	}
	if (rc < 0) {
		fprintf(stderr, "dispatch: %s\n", api->strerror(rc));
		status = 1;
	}
	api->unwatch(conn, id);
	api->close(conn);
	dlclose(lib);
	return status;
}
