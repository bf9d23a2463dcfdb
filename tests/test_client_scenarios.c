/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared client scenarios (the .txt files of plugins/go/topohub/testdata/scenarios,
 * described in the README.md there), run by the C library: the same SQL steps
 * and the same expected events the Go client's scenario_test.go runs, so a
 * behaviour change in one client fails in the other. Each scenario gets a
 * fresh MariaDB and topohubd, as in Go.
 *
 * The commands map to calls of plugins/topohub.h; `list` has no call there
 * (the C ABI reads one entry with get), so it reads the hub's snapshot through
 * protocol/'s client and matches components as the library does. A watch's
 * channel "closes" when the library has run its free function.
 *
 * Clients ask for a 30 s slow-consumer timeout: the runner dispatches only
 * inside expect/quiet/sync, and runs SQL in between; the scenarios are not
 * about eviction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/th_time.h"
#include "plugins/topohub.h"
#include "protocol/protocol.h"
#include "tests/support/hub_proc.h"
#include "tests/support/mariadb.h"

#define SCENARIOS "plugins/go/topohub/testdata/scenarios"
#define MAX_NAMES 16
#define MAX_EVENTS 256

static const struct th_api *api;
static void *lib;

struct watch {
	char name[32];
	struct th_conn *conn;
	th_watch_id id;
	char *events[MAX_EVENTS]; /* described as the scenarios write them, oldest first */
	int head, n;
	bool freed;
	bool overflow;
};

struct client {
	char name[32];
	struct th_conn *conn;
};

struct run {
	const char *file;
	int line;
	struct th_mariadb *db;
	struct th_hub_proc *hub;
	struct client clients[MAX_NAMES];
	struct watch *watches[MAX_NAMES];
	int nclients, nwatches;
};

static void find_library(char *out, size_t len)
{
	char exe[PATH_MAX - 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	for (int i = 0; i < 2; i++) {
		char *s = strrchr(exe, '/');
		if (s)
			*s = 0;
	}
	snprintf(out, len, "%s/libtopohub.so", exe);
}

/* "INITIAL /a=1", "DELETE /a", "RESYNC reason=3", "SYNCED": as the files say them. */
static char *describe(const struct th_event *ev)
{
	static const char *const kinds[] = { "?", "INITIAL", "PUT", "DELETE", "NOT_FOUND", "RESYNC", "SYNCED", "ENDED" };
	const char *k = ev->kind < sizeof kinds / sizeof kinds[0] ? kinds[ev->kind] : "?";
	char *s = NULL;
	int rc;
	switch (ev->kind) {
	case TH_EVENT_INITIAL:
	case TH_EVENT_PUT:
		rc = asprintf(&s, "%s %.*s=%.*s", k, (int)ev->key_len, ev->key, (int)ev->value_len, ev->value);
		break;
	case TH_EVENT_DELETE:
	case TH_EVENT_NOT_FOUND:
		rc = asprintf(&s, "%s %.*s", k, (int)ev->key_len, ev->key);
		break;
	case TH_EVENT_RESYNC:
	case TH_EVENT_ENDED:
		rc = asprintf(&s, "%s reason=%u", k, ev->reason);
		break;
	default:
		rc = asprintf(&s, "%s", k);
	}
	return rc < 0 ? NULL : s;
}

static void on_event(const struct th_event *ev, void *arg)
{
	struct watch *w = arg;
	if (w->n == MAX_EVENTS) {
		w->overflow = true;
		return;
	}
	w->events[(w->head + w->n++) % MAX_EVENTS] = describe(ev);
}

static void on_free(void *arg)
{
	((struct watch *)arg)->freed = true;
}

#define FAIL(r, ...)                                                                    \
	do {                                                                            \
		char m_[16384];                                                          \
		snprintf(m_, sizeof m_, __VA_ARGS__);                                   \
		fail_msg("%s:%d: %s", (r)->file, (r)->line, m_);                        \
	} while (0)

static struct client *client_of(struct run *r, const char *name)
{
	for (int i = 0; i < r->nclients; i++)
		if (!strcmp(r->clients[i].name, name))
			return &r->clients[i];
	FAIL(r, "no client %s", name);
	return NULL;
}

static struct watch *watch_of(struct run *r, const char *name)
{
	for (int i = 0; i < r->nwatches; i++)
		if (!strcmp(r->watches[i]->name, name))
			return r->watches[i];
	FAIL(r, "no watch %s", name);
	return NULL;
}

/* Dispatches every client's connection once (up to slice_ns each). */
static void dispatch_all(struct run *r, int64_t slice_ns)
{
	for (int i = 0; i < r->nclients; i++) {
		int rc = api->dispatch(r->clients[i].conn, slice_ns);
		if (rc < 0)
			FAIL(r, "dispatch: %s", api->strerror(rc));
	}
}

/* The watch's next event, dispatching up to timeout_ms; NULL when none came. */
static char *next_event(struct run *r, struct watch *w, uint64_t timeout_ms)
{
	uint64_t deadline = th_now_ns() + timeout_ms * 1000000u;
	while (w->n == 0 && th_now_ns() < deadline)
		dispatch_all(r, 10000000);
	if (w->overflow)
		FAIL(r, "watch %s: more than %d events undelivered", w->name, MAX_EVENTS);
	if (w->n == 0)
		return NULL;
	char *e = w->events[w->head];
	w->head = (w->head + 1) % MAX_EVENTS;
	w->n--;
	return e;
}

static void do_sync(struct run *r, struct client *c)
{
	char gtid[4096];
	if (th_mariadb_query_value(r->db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"))
		FAIL(r, "gtid_binlog_pos: %s", r->db->err);
	uint64_t rev = 0;
	int rc = api->sync(c->conn, gtid, 10000000000ll, &rev);
	if (rc)
		FAIL(r, "sync %s: %s", gtid, api->strerror(rc));
	/* Read-your-writes: the connection's dispatched revision reaches it. */
	uint64_t deadline = th_now_ns() + 10000000000ull;
	for (;;) {
		struct th_stats st = { .size = sizeof st };
		api->stats(c->conn, &st);
		if (st.revision >= rev)
			return;
		if (th_now_ns() >= deadline)
			FAIL(r, "stats().revision %" PRIu64 " never reached sync()'s %" PRIu64, st.revision, rev);
		dispatch_all(r, 10000000);
	}
}

/* `list`: the hub's entries under prefix on component boundaries, in key
 * order, as "k1,k2" ("-" for none). */
static void do_list(struct run *r, uint32_t table, const char *prefix, const char *want)
{
	struct th_ctl *ctl;
	int rc = th_ctl_connect(r->hub->socket, &ctl);
	if (rc)
		FAIL(r, "connect: %s", api->strerror(rc));
	size_t plen = strlen(prefix);
	while (plen && prefix[plen - 1] == '/')
		plen--;
	struct th_ctl_snapshot s;
	rc = th_ctl_snapshot(ctl, TH_MSG_SNAPSHOT, table, prefix, (uint32_t)plen, &s, 30000);
	if (rc)
		FAIL(r, "snapshot: %s: %s", api->strerror(rc), th_ctl_error(ctl));
	char got[8192] = "";
	size_t n = 0;
	struct th_snap_iter it = th_ctl_snapshot_iter(&s);
	struct th_snap_entry e;
	const uint8_t *k, *v;
	while ((rc = th_snap_next(&it, &e, &k, &v)) == 1) {
		if (e.key_len > plen && k[plen] != '/')
			continue; /* the hub matches bytes; a prefix ends at a component */
		n += (size_t)snprintf(got + n, sizeof got - n, "%s%.*s", n ? "," : "", (int)e.key_len, (const char *)k);
	}
	th_ctl_snapshot_free(&s);
	th_ctl_close(ctl);
	if (rc < 0)
		FAIL(r, "snapshot walk: %s", api->strerror(rc));
	/* The memfd is in the hub's hash order: sort the keys. */
	char *keys[256];
	int nk = 0;
	for (char *p = strtok(got, ","); p && nk < 256; p = strtok(NULL, ","))
		keys[nk++] = p;
	for (int i = 1; i < nk; i++)
		for (int j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
			char *t = keys[j];
			keys[j] = keys[j - 1];
			keys[j - 1] = t;
		}
	char sorted[8192] = "";
	size_t m = 0;
	for (int i = 0; i < nk; i++)
		m += (size_t)snprintf(sorted + m, sizeof sorted - m, "%s%s", i ? "," : "", keys[i]);
	if (strcmp(nk ? sorted : "-", want))
		FAIL(r, "list %s: got %s, want %s", prefix, nk ? sorted : "-", want);
}

static void run_line(struct run *r, char *text)
{
	char *rest = text;
	char *cmd = strsep(&rest, " ");
	if (!strcmp(cmd, "sql")) {
		if (th_mariadb_sql(r->db, "%s", rest))
			FAIL(r, "SQL: %s", r->db->err);
	} else if (!strcmp(cmd, "open")) {
		if (r->nclients == MAX_NAMES)
			FAIL(r, "too many clients");
		struct client *c = &r->clients[r->nclients];
		snprintf(c->name, sizeof c->name, "%s", rest);
		struct th_open_opts o = { .size = sizeof o, .socket_path = r->hub->socket,
					  .timeout_ns = 30000000000ull, .name = "scenarios" };
		int rc = api->open(&o, &c->conn);
		if (rc)
			FAIL(r, "open: %s", api->strerror(rc));
		r->nclients++;
		/* As the Go runner's openClient: what the scenario wrote before is
		 * in the hub's tables before a watch asks for it (a row still on
		 * its way through the binlog made a watch SYNCED alone). */
		do_sync(r, c);
	} else if (!strcmp(cmd, "watch")) {
		char *cname = strsep(&rest, " "), *wname = strsep(&rest, " "), *kind = strsep(&rest, " ");
		char *table = strsep(&rest, " "), *path = rest;
		if (!cname || !wname || !kind || !table || !path)
			FAIL(r, "watch: CLIENT WATCH exact|recursive TABLE PATH");
		struct client *c = client_of(r, cname);
		if (r->nwatches == MAX_NAMES)
			FAIL(r, "too many watches");
		struct watch *w = calloc(1, sizeof *w);
		assert_non_null(w);
		snprintf(w->name, sizeof w->name, "%s", wname);
		w->conn = c->conn;
		struct th_watch_opts o = { .size = sizeof o, .table = (uint32_t)strtoul(table, NULL, 10),
					   .path = !strcmp(path, "-") ? "" : path, .callback = on_event, .arg = w,
					   .free_arg = on_free };
		int rc = !strcmp(kind, "exact") ? api->watch(c->conn, &o, &w->id) : api->watch_recursive(c->conn, &o, &w->id);
		if (rc) {
			free(w);
			FAIL(r, "watch %s: %s", path, api->strerror(rc));
		}
		r->watches[r->nwatches++] = w;
	} else if (!strcmp(cmd, "expect")) {
		struct watch *w = watch_of(r, strsep(&rest, " "));
		char *got = next_event(r, w, 10000);
		if (!got || strcmp(got, rest)) {
			char g[512];
			snprintf(g, sizeof g, "%s", got ? got : "nothing within 10 s");
			free(got);
			FAIL(r, "watch %s: got %s, want %s", w->name, g, rest);
		}
		free(got);
	} else if (!strcmp(cmd, "closed")) {
		struct watch *w = watch_of(r, rest);
		uint64_t deadline = th_now_ns() + 10000000000ull;
		while (!w->freed && w->n == 0 && th_now_ns() < deadline)
			dispatch_all(r, 10000000);
		if (w->n) {
			char *e = next_event(r, w, 0);
			char g[512];
			snprintf(g, sizeof g, "%s", e ? e : "?");
			free(e);
			FAIL(r, "watch %s: %s before its end", w->name, g);
		}
		if (!w->freed)
			FAIL(r, "watch %s did not end within 10 s", w->name);
	} else if (!strcmp(cmd, "quiet")) {
		struct watch *w = watch_of(r, strsep(&rest, " "));
		char *got = next_event(r, w, strtoull(rest, NULL, 10));
		if (got) {
			char g[512];
			snprintf(g, sizeof g, "%s", got);
			free(got);
			FAIL(r, "watch %s: %s, want quiet", w->name, g);
		}
	} else if (!strcmp(cmd, "cancel")) {
		struct watch *w = watch_of(r, rest);
		int rc = api->unwatch(w->conn, w->id);
		if (rc)
			FAIL(r, "unwatch: %s", api->strerror(rc));
	} else if (!strcmp(cmd, "sync")) {
		do_sync(r, client_of(r, rest));
	} else if (!strcmp(cmd, "get")) {
		char *cname = strsep(&rest, " "), *table = strsep(&rest, " "), *key = strsep(&rest, " ");
		if (!cname || !table || !key || !rest)
			FAIL(r, "get: CLIENT TABLE KEY VALUE");
		struct th_entry *e = NULL;
		int rc = api->get(client_of(r, cname)->conn, (uint32_t)strtoul(table, NULL, 10), key, &e);
		if (!strcmp(rest, "NOT_FOUND")) {
			if (rc != -TH_ENOTFOUND)
				FAIL(r, "get %s: %s, want not found", key, rc ? api->strerror(rc) : e->value);
		} else if (rc || strcmp(e->value, rest)) {
			FAIL(r, "get %s: %s, want %s", key, rc ? api->strerror(rc) : e->value, rest);
		}
		if (e)
			api->entry_free(e);
	} else if (!strcmp(cmd, "list")) {
		strsep(&rest, " "); /* the client: the snapshot comes from the hub itself */
		char *table = strsep(&rest, " "), *prefix = strsep(&rest, " ");
		if (!table || !prefix || !rest)
			FAIL(r, "list: CLIENT TABLE PREFIX KEYS");
		do_list(r, (uint32_t)strtoul(table, NULL, 10), prefix, rest);
	} else if (!strcmp(cmd, "kill-hub")) {
		if (th_hub_proc_kill(r->hub))
			FAIL(r, "kill-hub failed");
	} else if (!strcmp(cmd, "stop-hub")) {
		if (th_hub_proc_stop(r->hub))
			FAIL(r, "stop-hub failed");
	} else if (!strcmp(cmd, "restart-hub")) {
		char why[1024];
		if (th_hub_proc_restart(r->hub, why, sizeof why))
			FAIL(r, "restart-hub: %s", why);
	} else {
		FAIL(r, "unknown command %s", cmd);
	}
}

static void run_scenario(void **state)
{
	struct run r = { .file = *state };
	char why[1024] = "";
	int rc = th_mariadb_start(NULL, &r.db, why, sizeof why);
	if (rc == TH_MARIADB_UNAVAILABLE) {
		print_message("skipped: %s\n", why);
		skip();
	}
	if (rc)
		fail_msg("mariadb: %s", why);
	if (th_mariadb_create_topo_schema(r.db, NULL))
		fail_msg("schema: %s", r.db->err);
	struct th_mariadb *srcs[] = { r.db };
	struct th_hub_proc_options o = { .sources = srcs, .nsources = 1 };
	if (th_hub_proc_start(&o, &r.hub, why, sizeof why))
		fail_msg("topohubd: %s", why);
	FILE *f = fopen(r.file, "r");
	if (!f)
		fail_msg("%s: %s", r.file, strerror(errno));
	char text[8192];
	while (fgets(text, sizeof text, f)) {
		r.line++;
		text[strcspn(text, "\n")] = 0;
		if (!*text || *text == '#')
			continue;
		run_line(&r, text);
	}
	fclose(f);
	for (int i = 0; i < r.nclients; i++)
		api->close(r.clients[i].conn); /* runs the free functions still owed */
	for (int i = 0; i < r.nwatches; i++) {
		struct watch *w = r.watches[i];
		assert_true(w->freed);
		while (w->n)
			free(next_event(&r, w, 0));
		free(w);
	}
	th_hub_proc_free(r.hub);
	th_mariadb_stop(r.db);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct CMUnitTest *)a)->name, ((const struct CMUnitTest *)b)->name);
}

int main(void)
{
	char so[PATH_MAX];
	find_library(so, sizeof so);
	lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen %s: %s\n", so, dlerror());
		return 1;
	}
	th_api_get_fn *get = (th_api_get_fn *)dlsym(lib, TH_API_SYMBOL);
	if (!get || get(TH_ABI_MAJOR, TH_ABI_MINOR, &api) != 0)
		return 1;
	DIR *d = opendir(SCENARIOS);
	if (!d) {
		fprintf(stderr, "%s: %s\n", SCENARIOS, strerror(errno));
		return 1;
	}
	struct CMUnitTest tests[64];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < sizeof tests / sizeof tests[0]) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".txt"))
			continue;
		char *path, *name;
		if (asprintf(&path, "%s/%s", SCENARIOS, e->d_name) < 0 ||
		    asprintf(&name, "test_client_scenarios__%.*s", (int)(l - 4), e->d_name) < 0)
			return 1;
		tests[n++] = (struct CMUnitTest){ .name = name, .test_func = run_scenario, .initial_state = path };
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "no scenarios in %s\n", SCENARIOS);
		return 1;
	}
	qsort(tests, n, sizeof tests[0], by_name);
	int failed = _cmocka_run_group_tests("test_client_scenarios", tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		free((void *)tests[i].name);
		free(tests[i].initial_state);
	}
	dlclose(lib);
	return failed;
}
