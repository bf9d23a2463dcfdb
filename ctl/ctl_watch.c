/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topohubctl watch: print each change of a path (or, with -r, of every path
 * under a prefix) as the client library delivers it, with its revision and
 * two latencies: hub publish to callback, and binlog commit to callback.
 *
 * It loads libtopohub.so with dlopen, as any host does (from $TOPOHUB_LIB,
 * else next to the topohubctl binary, else libtopohub.so.1 where the system
 * looks), so it also checks the ABI in the field. --table is resolved by asking the hub, as every command does.
 *
 *   topohubctl [--socket PATH] [--json] [--table NAME|N] watch [-r] [--json]
 *              [--count N] [--socket PATH] [--table NAME|N] [--mode futex|spin|fd] PATH
 *
 * The options after `watch` are the global ones again, for scripts that put
 * them there; they win.
 *
 * Exit: 0 when stopped by SIGINT/SIGTERM, after --count changes, or when an
 * exact watch ended; 1 on failure; 2 on usage errors.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/th_buf.h"
#include "common/th_error.h"
#include "common/th_time.h"
#include "ctl/ctl.h"
#include "plugins/topohub.h"
#include "protocol/protocol.h"

struct watch_ctx {
	const struct th_api *api;
	struct th_conn *conn;
	bool json;
	bool recursive;
	long count;          /* changes still to print before exiting; < 0: no limit */
	bool done;
	struct th_buf out;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static const char *kind_name(uint16_t k)
{
	static const char *const names[] = { "?", "INITIAL", "PUT", "DELETE", "NOT_FOUND", "RESYNC", "SYNCED", "ENDED" };
	return k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static const char *resync_name(uint32_t r)
{
	switch (r) {
	case TH_RESYNC_EVICTED: return "evicted";
	case TH_RESYNC_LAPPED: return "lapped";
	case TH_RESYNC_HUB_LOST: return "hub lost";
	case TH_RESYNC_HUB: return "hub resync";
	case TH_RESYNC_NOMEM: return "out of memory";
	default: return "other";
	}
}

/* Commit time is whole seconds on MariaDB (the binlog header's timestamp):
 * say so instead of printing a latency that is not one. */
static bool commit_is_coarse(uint64_t commit_us)
{
	return commit_us % 1000000u == 0;
}

static void print_text(struct watch_ctx *w, const struct th_event *ev)
{
	struct th_buf *b = &w->out;
	th_buf_printf(b, "rev %" PRIu64 " %-9s", ev->revision, kind_name(ev->kind));
	if (ev->key)
		th_buf_printf(b, " %s", ev->key);
	if (ev->kind == TH_EVENT_INITIAL || ev->kind == TH_EVENT_PUT) {
		th_buf_puts(b, " = ");
		if (ev->flags & TH_EVENT_F_VALUE_NULL)
			th_buf_puts(b, "NULL");
		else if (th_utf8_valid(ev->value, ev->value_len) && ev->value_len <= 200)
			th_buf_json_string(b, ev->value, ev->value_len);
		else
			th_buf_printf(b, "<%u bytes>", ev->value_len);
		th_buf_printf(b, " (version %" PRId64 ")", ev->version);
	}
	if (ev->kind == TH_EVENT_RESYNC)
		th_buf_printf(b, " (%s)", resync_name(ev->reason));
	if (ev->kind == TH_EVENT_ENDED)
		th_buf_puts(b, ev->reason == TH_END_DELETED ? " (deleted)" : " (not found)");
	if (ev->latency_ns) {
		th_buf_printf(b, "  latency: hub->callback %.1f us", (double)ev->latency_ns / 1000.0);
		if (ev->commit_us && !commit_is_coarse(ev->commit_us))
			th_buf_printf(b, ", commit->callback %.1f us",
				      (double)((int64_t)(ev->deliver_ns / 1000) - (int64_t)ev->commit_us));
		else if (ev->commit_us)
			th_buf_puts(b, ", commit->callback n/a (binlog commit time in whole seconds)");
	}
	th_buf_putc(b, '\n');
}

static void print_json(struct watch_ctx *w, const struct th_event *ev)
{
	struct th_buf *b = &w->out;
	th_buf_printf(b, "{\"event\":\"%s\",\"watch\":%" PRIu64 ",\"table\":%u,\"revision\":%" PRIu64, kind_name(ev->kind),
		      ev->watch, ev->table, ev->revision);
	if (ev->key) {
		th_buf_puts(b, ",\"key\":");
		th_buf_json_string(b, ev->key, ev->key_len);
	}
	if (ev->kind == TH_EVENT_INITIAL || ev->kind == TH_EVENT_PUT) {
		if (ev->flags & TH_EVENT_F_VALUE_NULL) {
			th_buf_puts(b, ",\"value\":null");
		} else if (th_utf8_valid(ev->value, ev->value_len)) {
			th_buf_puts(b, ",\"value\":");
			th_buf_json_string(b, ev->value, ev->value_len);
		} else {
			th_buf_puts(b, ",\"value_base64\":\"");
			th_buf_base64(b, ev->value, ev->value_len);
			th_buf_putc(b, '"');
		}
		th_buf_printf(b, ",\"version\":%" PRId64, ev->version);
	}
	if (ev->kind == TH_EVENT_RESYNC || ev->kind == TH_EVENT_ENDED)
		th_buf_printf(b, ",\"reason\":%u", ev->reason);
	if (ev->gtid_len) {
		th_buf_puts(b, ",\"gtid\":");
		th_buf_json_string(b, ev->gtid, ev->gtid_len);
	}
	th_buf_printf(b, ",\"commit_us\":%" PRIu64 ",\"publish_ns\":%" PRIu64 ",\"deliver_ns\":%" PRIu64, ev->commit_us,
		      ev->publish_ns, ev->deliver_ns);
	if (ev->latency_ns)
		th_buf_printf(b, ",\"hub_to_callback_us\":%.1f", (double)ev->latency_ns / 1000.0);
	if (ev->commit_us)
		th_buf_printf(b, ",\"commit_to_callback_us\":%" PRId64 ",\"commit_time_coarse\":%s",
			      (int64_t)(ev->deliver_ns / 1000) - (int64_t)ev->commit_us,
			      commit_is_coarse(ev->commit_us) ? "true" : "false");
	th_buf_puts(b, "}\n");
}

static void on_event(const struct th_event *ev, void *arg)
{
	struct watch_ctx *w = arg;
	th_buf_reset(&w->out);
	if (w->json)
		print_json(w, ev);
	else
		print_text(w, ev);
	if (!th_buf_failed(&w->out)) {
		fwrite(w->out.data, 1, w->out.len, stdout);
		fflush(stdout); /* one line per event, as it happens: for pipes and logs */
	}
	if ((ev->kind == TH_EVENT_PUT || ev->kind == TH_EVENT_DELETE) && w->count > 0 && --w->count == 0)
		w->done = true;
	if (ev->kind == TH_EVENT_ENDED)
		w->done = true;
}

static void *load_library(char *why, size_t len)
{
	why[0] = '\0';
	char path[PATH_MAX];
	const char *env = getenv("TOPOHUB_LIB");
	if (env && *env) {
		snprintf(path, sizeof path, "%s", env);
	} else {
		char exe[PATH_MAX - 32];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		exe[n > 0 ? n : 0] = 0;
		char *s = strrchr(exe, '/');
		if (s)
			*s = 0;
		snprintf(path, sizeof path, "%s/libtopohub.so", exe);
	}
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h && !(env && *env)) {
		/* Installed: the library is where the system looks, by its SONAME. */
		snprintf(why, len, "%s", dlerror());
		h = dlopen("libtopohub.so.1", RTLD_NOW | RTLD_LOCAL);
	}
	if (!h) {
		size_t n = strlen(why);
		snprintf(why + n, len - n, "%s%s (set TOPOHUB_LIB to the library)", n ? "; " : "", dlerror());
	}
	return h;
}

int ctl_cmd_watch(const struct ctl_options *global, int argc, char **argv)
{
	struct ctl_options opt = *global;
	const char *mode_s = "futex";
	struct watch_ctx w = { .count = -1, .out = TH_BUF_INIT, .json = opt.json };
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-r") || !strcmp(a, "--recursive"))
			w.recursive = true;
		else if (!strcmp(a, "--json"))
			w.json = true;
		else if (!strcmp(a, "--count") && i + 1 < argc)
			w.count = strtol(argv[++i], NULL, 10);
		else if (!strcmp(a, "--socket") && i + 1 < argc)
			opt.socket = argv[++i];
		else if (!strcmp(a, "--table") && i + 1 < argc)
			opt.table = argv[++i];
		else if (!strcmp(a, "--mode") && i + 1 < argc)
			mode_s = argv[++i];
		else {
			fprintf(stderr, "topohubctl watch: unknown option '%s'\n", a);
			return 2;
		}
	}
	uint32_t table, mode;
	if (i + 1 != argc) {
		fprintf(stderr, "usage: topohubctl watch [-r] [--json] [--count N] [--socket PATH] "
				"[--table NAME|N] [--mode futex|spin|fd] PATH\n");
		return 2;
	}
	if (!strcmp(mode_s, "futex"))
		mode = TH_WAIT_FUTEX;
	else if (!strcmp(mode_s, "spin"))
		mode = TH_WAIT_SPIN;
	else if (!strcmp(mode_s, "fd"))
		mode = TH_WAIT_FD;
	else {
		fprintf(stderr, "topohubctl watch: --mode is futex, spin or fd\n");
		return 2;
	}
	struct th_ctl *c = ctl_connect(&opt);
	int nvalues;
	int resolved = c ? ctl_table_index(&opt, c, &table, &nvalues) : -1;
	th_ctl_close(c);
	if (resolved < 0)
		return 1;
	char why[PATH_MAX + 128];
	void *lib = load_library(why, sizeof why);
	if (!lib) {
		fprintf(stderr, "topohubctl watch: cannot load libtopohub.so: %s\n", why);
		return 1;
	}
	th_api_get_fn *get = (th_api_get_fn *)dlsym(lib, TH_API_SYMBOL);
	int rc = get ? get(TH_ABI_MAJOR, TH_ABI_MINOR, &w.api) : -TH_EVERSION;
	if (rc) {
		fprintf(stderr, "topohubctl watch: the library refuses ABI %d.%d: %s\n", TH_ABI_MAJOR, TH_ABI_MINOR,
			th_strerror(rc));
		dlclose(lib);
		return 1;
	}
	struct th_open_opts oo = { .size = sizeof oo, .socket_path = opt.socket, .wait_mode = mode, .name = "topohubctl" };
	rc = w.api->open(&oo, &w.conn);
	if (rc) {
		fprintf(stderr, "topohubctl watch: %s: %s\n", opt.socket, w.api->strerror(rc));
		dlclose(lib);
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct th_watch_opts wo = { .size = sizeof wo, .table = table, .path = argv[i], .callback = on_event, .arg = &w };
	th_watch_id id;
	rc = w.recursive ? w.api->watch_recursive(w.conn, &wo, &id) : w.api->watch(w.conn, &wo, &id);
	if (rc) {
		fprintf(stderr, "topohubctl watch: %s: %s\n", argv[i], w.api->strerror(rc));
		w.api->close(w.conn);
		dlclose(lib);
		return 1;
	}
	int status = 0;
	while (!stop_requested && !w.done) {
		rc = w.api->dispatch(w.conn, 100000000); /* wake for signals at least every 100 ms */
		if (rc < 0) {
			fprintf(stderr, "topohubctl watch: dispatch: %s\n", w.api->strerror(rc));
			status = 1;
			break;
		}
	}
	w.api->close(w.conn);
	dlclose(lib);
	th_buf_free(&w.out);
	return status;
}
