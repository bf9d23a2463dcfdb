/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of libtopohub.so against the real topohubd and a private MariaDB:
 * the semantics of Watch and WatchRecursive (initial state, changes, deletes,
 * prefix boundaries, transactions, stitching under concurrent writes),
 * unwatch inside a callback, the free function once, the three wait modes
 * and the library's own thread, get and sync, eviction of a stopped reader
 * process and hub restarts (resync, convergence), and watch/unwatch from four
 * threads while dispatching (run it under TSan: make test SAN=thread).
 *
 * The library is loaded with dlopen, as hosts load it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plugins/topohub.h"
#include "tests/support/hub_proc.h"
#include "tests/support/mariadb.h"

/* ---- fixture: one MariaDB and one hub for the program -------------------- */

static struct th_mariadb *db;
static struct th_hub_proc *hub;
static const struct th_api *api;
static void *lib;
static char skip_reason[512];

static void find_library(char *out, size_t len)
{
	const char *env = getenv("TH_LIBTOPOHUB");
	if (env) {
		snprintf(out, len, "%s", env);
		return;
	}
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

static int group_setup(void **state)
{
	(void)state;
	char so[PATH_MAX];
	find_library(so, sizeof so);
	lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen %s: %s\n", so, dlerror());
		return -1;
	}
	th_api_get_fn *get = (th_api_get_fn *)dlsym(lib, TH_API_SYMBOL);
	if (!get || get(TH_ABI_MAJOR, TH_ABI_MINOR, &api) != 0)
		return -1;
	char why[1024] = "";
	int rc = th_mariadb_start(NULL, &db, why, sizeof why);
	if (rc == TH_MARIADB_UNAVAILABLE) {
		snprintf(skip_reason, sizeof skip_reason, "%s", why);
		return 0;
	}
	if (rc) {
		fprintf(stderr, "mariadb: %s\n", why);
		return -1;
	}
	if (th_mariadb_create_topo_schema(db, NULL)) {
		fprintf(stderr, "schema: %s\n", db->err);
		return -1;
	}
	struct th_mariadb *srcs[] = { db };
	struct th_hub_proc_options o = { .sources = srcs, .nsources = 1 };
	rc = th_hub_proc_start(&o, &hub, why, sizeof why);
	if (rc) {
		fprintf(stderr, "topohubd: %s\n", why);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (hub && th_hub_proc_sanitizer_report(hub)) {
		char tail[4096];
		fprintf(stderr, "topohubd sanitizer report:\n%s\n", th_hub_proc_log_tail(hub, tail, sizeof tail));
	}
	th_hub_proc_free(hub);
	th_mariadb_stop(db);
	if (lib)
		dlclose(lib);
	return 0;
}

#define NEED_SERVER()                                                                   \
	do {                                                                            \
		if (!db) {                                                              \
			print_message("skipped: %s\n", skip_reason);                    \
			skip();                                                         \
		}                                                                       \
	} while (0)

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sql(const char *fmt, ...)
{
	char q[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	if (th_mariadb_sql(db, "%s", q))
		fail_msg("SQL %s: %s", q, db->err);
}

static struct th_conn *open_conn(uint32_t wait_mode, uint32_t flags, uint64_t timeout_ns)
{
	struct th_open_opts o = { .size = sizeof o, .socket_path = hub->socket, .wait_mode = wait_mode,
				  .flags = flags, .timeout_ns = timeout_ns, .name = "test_plugin_live" };
	struct th_conn *c = NULL;
	int rc = api->open(&o, &c);
	if (rc)
		fail_msg("open: %s", api->strerror(rc));
	return c;
}

/* Wait until the hub has published everything committed so far: a watch
 * registered after this sees those rows (the hub is a replica: without it, a
 * watch may start from a state just before them, which is correct too). */
static void catch_up(struct th_conn *c)
{
	char gtid[512];
	assert_int_equal(th_mariadb_query_value(db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	int rc = api->sync(c, gtid, 10000000000ll, NULL);
	if (rc)
		fail_msg("sync %s: %s", gtid, api->strerror(rc));
}

/* ---- recording events ----------------------------------------------------- */

#define MAXEV 8192
#define MAXVIEW 512

struct ev {
	uint16_t kind;
	uint32_t reason;
	uint64_t revision;
	int64_t version;
	char key[96];
	char value[96];
	char raw[96];       /* the value's first bytes, NULs included */
	uint32_t value_len;
};

struct rec {
	pthread_mutex_t mu;
	struct ev ev[MAXEV];
	size_t n;
	atomic_int frees;
	/* unwatch from inside the callback on the first event of this kind */
	uint16_t unwatch_on;
	th_watch_id id;
	struct th_conn *conn;
	int unwatch_rc;
	int unwatch_again_rc;
	/* the watcher's view, from its events */
	char vkey[MAXVIEW][96];
	char vval[MAXVIEW][96];
	int nview;
	int resyncs, synced, ended;
	bool in_resync;
};

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->mu, NULL);
}

static void view_set(struct rec *r, const char *k, const char *v)
{
	for (int i = 0; i < r->nview; i++)
		if (!strcmp(r->vkey[i], k)) {
			snprintf(r->vval[i], sizeof r->vval[i], "%s", v);
			return;
		}
	if (r->nview < MAXVIEW) {
		snprintf(r->vkey[r->nview], sizeof r->vkey[0], "%s", k);
		snprintf(r->vval[r->nview], sizeof r->vval[0], "%s", v);
		r->nview++;
	}
}

static void view_del(struct rec *r, const char *k)
{
	for (int i = 0; i < r->nview; i++)
		if (!strcmp(r->vkey[i], k)) {
			r->nview--;
			memcpy(r->vkey[i], r->vkey[r->nview], sizeof r->vkey[i]);
			memcpy(r->vval[i], r->vval[r->nview], sizeof r->vval[i]);
			return;
		}
}

static void on_event(const struct th_event *e, void *arg)
{
	struct rec *r = arg;
	assert_true(e->size >= sizeof *e);
	pthread_mutex_lock(&r->mu);
	if (r->n < MAXEV) {
		struct ev *x = &r->ev[r->n++];
		x->kind = e->kind;
		x->reason = e->reason;
		x->revision = e->revision;
		x->version = e->version;
		snprintf(x->key, sizeof x->key, "%s", e->key ? e->key : "");
		snprintf(x->value, sizeof x->value, "%s", e->value ? e->value : "");
		x->value_len = e->value_len;
		memcpy(x->raw, e->value ? e->value : "", e->value_len < sizeof x->raw ? e->value_len : sizeof x->raw);
	}
	switch (e->kind) {
	case TH_EVENT_INITIAL:
	case TH_EVENT_PUT:
		view_set(r, e->key, e->value);
		break;
	case TH_EVENT_DELETE:
		view_del(r, e->key);
		break;
	case TH_EVENT_RESYNC:
		r->resyncs++;
		r->in_resync = true;
		break;
	case TH_EVENT_SYNCED:
		r->synced++;
		r->in_resync = false;
		break;
	case TH_EVENT_ENDED:
		r->ended++;
		break;
	}
	bool unwatch = r->unwatch_on && e->kind == r->unwatch_on;
	pthread_mutex_unlock(&r->mu);
	if (unwatch) {
		r->unwatch_on = 0;
		r->unwatch_rc = api->unwatch(r->conn, e->watch);
		r->unwatch_again_rc = api->unwatch(r->conn, e->watch);
	}
}

static void on_free(void *arg)
{
	struct rec *r = arg;
	atomic_fetch_add(&r->frees, 1);
}

static th_watch_id watch(struct th_conn *c, bool recursive, uint32_t table, const char *path, struct rec *r)
{
	struct th_watch_opts o = { .size = sizeof o, .table = table, .path = path, .callback = on_event, .arg = r,
				   .free_arg = on_free };
	th_watch_id id = 0;
	int rc = recursive ? api->watch_recursive(c, &o, &id) : api->watch(c, &o, &id);
	if (rc)
		fail_msg("watch %s: %s", path, api->strerror(rc));
	r->conn = c;
	r->id = id;
	return id;
}

/* A counter of r, read under its lock (callbacks may run on another thread). */
static int locked(struct rec *r, const int *field)
{
	pthread_mutex_lock(&r->mu);
	int v = *field;
	pthread_mutex_unlock(&r->mu);
	return v;
}

static size_t count(struct rec *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Dispatch (or, with the library's thread, wait) until r holds n events. */
static void pump(struct th_conn *c, struct rec *r, size_t n, bool threaded)
{
	uint64_t end = ms_now() + 10000;
	while (count(r) < n && ms_now() < end) {
		if (threaded) {
			usleep(1000);
		} else {
			int rc = api->dispatch(c, 20000000);
			assert_true(rc >= 0);
		}
	}
	if (count(r) < n) {
		for (size_t i = 0; i < r->n; i++)
			print_message("  ev %zu: kind %u key %s value %s rev %llu\n", i, r->ev[i].kind, r->ev[i].key,
				      r->ev[i].value, (unsigned long long)r->ev[i].revision);
		fail_msg("waited for %zu events, got %zu", n, count(r));
	}
}

/* Dispatch for ms milliseconds (to show that nothing more comes). */
static void pump_for(struct th_conn *c, int ms)
{
	uint64_t end = ms_now() + (uint64_t)ms;
	while (ms_now() < end)
		assert_true(api->dispatch(c, 5000000) >= 0);
}

static void expect(struct rec *r, size_t i, uint16_t kind, const char *key, const char *value)
{
	if (i >= r->n)
		fail_msg("event %zu missing", i);
	struct ev *e = &r->ev[i];
	if (e->kind != kind || (key && strcmp(e->key, key)) || (value && strcmp(e->value, value)))
		fail_msg("event %zu: kind %u key '%s' value '%s'; expected kind %u key '%s' value '%s'", i, e->kind,
			 e->key, e->value, kind, key ? key : "*", value ? value : "*");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "key\x01value;" items sorted by key bytes (\x01 sorts before any key
 * byte), joined with '=' in place of \x01. */
static void join_sorted(char **items, int n, char *out, size_t len)
{
	qsort(items, (size_t)n, sizeof items[0], cmp_str);
	out[0] = 0;
	for (int i = 0; i < n; i++) {
		size_t k = strlen(out);
		snprintf(out + k, len - k, "%s", items[i]);
		for (char *p = out + k; *p; p++)
			if (*p == 1)
				*p = '=';
	}
}

/* The table's rows under prefix as "k=v;" in key order, and the view's. */
static void table_text(const char *prefix, char *out, size_t len)
{
	sql("SELECT 1"); /* opens the admin connection */
	char q[512];
	snprintf(q, sizeof q, "SELECT path, data FROM topo.topo_data WHERE path = '%s' OR path LIKE '%s/%%' ORDER BY path",
		 prefix, prefix);
	assert_int_equal(mysql_query(db->admin, q), 0);
	MYSQL_RES *res = mysql_store_result(db->admin);
	assert_non_null(res);
	static char buf[MAXVIEW][200];
	char *items[MAXVIEW];
	int n = 0;
	MYSQL_ROW row;
	while ((row = mysql_fetch_row(res)) != NULL && n < MAXVIEW) {
		snprintf(buf[n], sizeof buf[n], "%s\x01%s;", row[0], row[1] ? row[1] : "");
		items[n] = buf[n];
		n++;
	}
	mysql_free_result(res);
	join_sorted(items, n, out, len);
}


static void view_text(struct rec *r, char *out, size_t len)
{
	char *items[MAXVIEW];
	static char buf[MAXVIEW][200];
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->nview; i++) {
		snprintf(buf[i], sizeof buf[i], "%s\x01%s;", r->vkey[i], r->vval[i]);
		items[i] = buf[i];
	}
	int n = r->nview;
	pthread_mutex_unlock(&r->mu);
	join_sorted(items, n, out, len);
}

/* ---- semantics ------------------------------------------------------------ */

static void test_plugin_live__watch_initial_changes_then_delete_ends(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data, version) VALUES ('/w1/a', 'one', 1)");
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	static struct rec r;
	rec_init(&r);
	watch(c, false, TH_TABLE_DATA, "/w1/a", &r);
	pump(c, &r, 1, false);
	expect(&r, 0, TH_EVENT_INITIAL, "/w1/a", "one");
	assert_int_equal(r.ev[0].version, 1);
	assert_true(r.ev[0].revision > 0);
	sql("UPDATE topo.topo_data SET data = 'two', version = version + 1 WHERE path = '/w1/a'");
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w1/a/child', 'not mine')");
	sql("UPDATE topo.topo_data SET data = 'three', version = version + 1 WHERE path = '/w1/a'");
	sql("DELETE FROM topo.topo_data WHERE path = '/w1/a'");
	pump(c, &r, 5, false);
	expect(&r, 1, TH_EVENT_PUT, "/w1/a", "two");
	assert_int_equal(r.ev[1].version, 2);
	expect(&r, 2, TH_EVENT_PUT, "/w1/a", "three");
	expect(&r, 3, TH_EVENT_DELETE, "/w1/a", "");
	expect(&r, 4, TH_EVENT_ENDED, NULL, NULL);
	assert_int_equal(r.ev[4].reason, TH_END_DELETED);
	for (int i = 1; i < 4; i++)
		assert_true(r.ev[i].revision > r.ev[i - 1].revision);
	/* A re-create does not revive an ended watch. */
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w1/a', 'again')");
	pump_for(c, 100);
	assert_int_equal(count(&r), 5);
	assert_int_equal(atomic_load(&r.frees), 1);
	assert_int_equal(api->unwatch(c, r.id), -ENOENT);
	api->close(c);
	assert_int_equal(atomic_load(&r.frees), 1);
}

static void test_plugin_live__watch_of_missing_path_is_not_found(void **state)
{
	(void)state;
	NEED_SERVER();
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	static struct rec r;
	rec_init(&r);
	watch(c, false, TH_TABLE_DATA, "/w2/none", &r);
	pump(c, &r, 2, false);
	expect(&r, 0, TH_EVENT_NOT_FOUND, "/w2/none", NULL);
	expect(&r, 1, TH_EVENT_ENDED, NULL, NULL);
	assert_int_equal(r.ev[1].reason, TH_END_NOT_FOUND);
	pump_for(c, 20);
	assert_int_equal(atomic_load(&r.frees), 1);
	api->close(c);
	assert_int_equal(atomic_load(&r.frees), 1);
}

static void test_plugin_live__recursive_initial_changes_deletes_and_boundaries(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w3/ks', 'root'), ('/w3/ks/s1', 'shard1'), "
	    "('/w3/ksx', 'sibling'), ('/w3/ks2/s', 'other'), ('/w3/ks/s0/t', 'deep')");
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/w3/ks/", &r);
	pump(c, &r, 4, false);
	expect(&r, 0, TH_EVENT_INITIAL, "/w3/ks", "root");
	expect(&r, 1, TH_EVENT_INITIAL, "/w3/ks/s0/t", "deep");
	expect(&r, 2, TH_EVENT_INITIAL, "/w3/ks/s1", "shard1");
	expect(&r, 3, TH_EVENT_SYNCED, NULL, NULL);
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w3/ksy', 'no')");
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w3/ks/s2', 'shard2')");
	sql("UPDATE topo.topo_data SET data = 'no' WHERE path = '/w3/ksx'");
	sql("DELETE FROM topo.topo_data WHERE path = '/w3/ks/s1'");
	sql("UPDATE topo.topo_data SET data = 'root2' WHERE path = '/w3/ks'");
	sql("DELETE FROM topo.topo_data WHERE path = '/w3/ks'");
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w3/ks', 'back')");
	pump(c, &r, 9, false);
	expect(&r, 4, TH_EVENT_PUT, "/w3/ks/s2", "shard2");
	expect(&r, 5, TH_EVENT_DELETE, "/w3/ks/s1", "");
	expect(&r, 6, TH_EVENT_PUT, "/w3/ks", "root2");
	expect(&r, 7, TH_EVENT_DELETE, "/w3/ks", "");
	expect(&r, 8, TH_EVENT_PUT, "/w3/ks", "back"); /* a recursive watch goes on */
	pump_for(c, 50);
	assert_int_equal(count(&r), 9);
	char want[2048], got[2048];
	table_text("/w3/ks", want, sizeof want);
	view_text(&r, got, sizeof got);
	assert_string_equal(got, want);
	assert_int_equal(api->unwatch(c, r.id), 0);
	assert_int_equal(api->unwatch(c, r.id), -ENOENT);
	pump_for(c, 10);
	assert_int_equal(atomic_load(&r.frees), 1);
	api->close(c);
}

/* The dispatcher remembers the recursive watchers of the last key's parent;
 * a watch added or removed under that very parent must count at once. */
static void test_plugin_live__watches_added_and_removed_under_the_parent_of_the_last_change(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w9/a/b/k1', 'v1'), ('/w9/a/b/k2', 'v2'), "
	    "('/w9/a/c/k3', 'v3')");
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	static struct rec ra, rb, rc;
	rec_init(&ra);
	rec_init(&rb);
	rec_init(&rc);
	watch(c, true, TH_TABLE_DATA, "/w9", &ra);
	pump(c, &ra, 4, false); /* three INITIAL, SYNCED */
	sql("UPDATE topo.topo_data SET data = 'v1b' WHERE path = '/w9/a/b/k1'");
	pump(c, &ra, 5, false);
	expect(&ra, 4, TH_EVENT_PUT, "/w9/a/b/k1", "v1b");

	/* Added under the parent of the last change. */
	watch(c, true, TH_TABLE_DATA, "/w9/a/b", &rb);
	pump(c, &rb, 3, false);
	expect(&rb, 0, TH_EVENT_INITIAL, "/w9/a/b/k1", "v1b");
	expect(&rb, 1, TH_EVENT_INITIAL, "/w9/a/b/k2", "v2");
	expect(&rb, 2, TH_EVENT_SYNCED, NULL, NULL);
	sql("UPDATE topo.topo_data SET data = 'v2b' WHERE path = '/w9/a/b/k2'");
	pump(c, &rb, 4, false);
	pump(c, &ra, 6, false);
	expect(&rb, 3, TH_EVENT_PUT, "/w9/a/b/k2", "v2b");
	expect(&ra, 5, TH_EVENT_PUT, "/w9/a/b/k2", "v2b");

	/* An exact watch, then changes that alternate between two parents. */
	watch(c, false, TH_TABLE_DATA, "/w9/a/b/k1", &rc);
	pump(c, &rc, 1, false);
	expect(&rc, 0, TH_EVENT_INITIAL, "/w9/a/b/k1", "v1b");
	sql("UPDATE topo.topo_data SET data = 'v3b' WHERE path = '/w9/a/c/k3'");
	sql("UPDATE topo.topo_data SET data = 'v1c' WHERE path = '/w9/a/b/k1'");
	pump(c, &ra, 8, false);
	pump(c, &rb, 5, false);
	pump(c, &rc, 2, false);
	expect(&ra, 6, TH_EVENT_PUT, "/w9/a/c/k3", "v3b");
	expect(&ra, 7, TH_EVENT_PUT, "/w9/a/b/k1", "v1c");
	expect(&rb, 4, TH_EVENT_PUT, "/w9/a/b/k1", "v1c");
	expect(&rc, 1, TH_EVENT_PUT, "/w9/a/b/k1", "v1c");

	/* Removed under the parent of the last change: silent from then on. */
	assert_int_equal(api->unwatch(c, rb.id), 0);
	sql("UPDATE topo.topo_data SET data = 'v2c' WHERE path = '/w9/a/b/k2'");
	pump(c, &ra, 9, false);
	expect(&ra, 8, TH_EVENT_PUT, "/w9/a/b/k2", "v2c");
	pump_for(c, 50);
	assert_int_equal(count(&rb), 5);
	assert_int_equal(count(&rc), 2);
	assert_int_equal(count(&ra), 9);
	api->close(c);
}

static void test_plugin_live__transaction_is_one_revision(void **state)
{
	(void)state;
	NEED_SERVER();
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/w4", &r);
	pump(c, &r, 1, false); /* SYNCED of an empty prefix */
	expect(&r, 0, TH_EVENT_SYNCED, NULL, NULL);
	sql("BEGIN; INSERT INTO topo.topo_data (path, data) VALUES ('/w4/a', '1'); "
	    "INSERT INTO topo.topo_data (path, data) VALUES ('/w4/b', '2'); "
	    "UPDATE topo.topo_data SET data = '1b' WHERE path = '/w4/a'; COMMIT");
	/* One revision, and each key's last change only: '/w4/a' = '1' never
	 * existed for any other transaction, so no watcher hears of it. */
	pump(c, &r, 3, false);
	expect(&r, 1, TH_EVENT_PUT, "/w4/b", "2");
	expect(&r, 2, TH_EVENT_PUT, "/w4/a", "1b");
	assert_int_equal(r.ev[1].revision, r.ev[2].revision);
	pump_for(c, 50);
	assert_int_equal(r.n, 3);
	/* Other tables: an election row changing leader. Its value is the
	 * hub's serialisation of (leader_id, contents): u32 length + bytes each. */
	static struct rec e;
	rec_init(&e);
	sql("INSERT INTO topo.topo_elections (name, leader_id, contents, expires_at) "
	    "VALUES ('/w4/election', 'tablet-1', 'x', NOW() + INTERVAL 1 HOUR)");
	catch_up(c);
	watch(c, false, TH_TABLE_ELECTIONS, "/w4/election", &e);
	pump(c, &e, 1, false);
	expect(&e, 0, TH_EVENT_INITIAL, "/w4/election", NULL);
	assert_non_null(memmem(e.ev[0].raw, e.ev[0].value_len, "tablet-1", 8));
	sql("UPDATE topo.topo_elections SET leader_id = 'tablet-2' WHERE name = '/w4/election'");
	pump(c, &e, 2, false);
	expect(&e, 1, TH_EVENT_PUT, "/w4/election", NULL);
	assert_non_null(memmem(e.ev[1].raw, e.ev[1].value_len, "tablet-2", 8));
	api->close(c);
}

struct writer {
	int n;
	const char *key;
	atomic_int done;
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	for (int i = 1; i <= w->n; i++)
		sql("UPDATE topo.topo_data SET data = '%d', version = %d WHERE path = '%s'", i, i + 1, w->key);
	atomic_store(&w->done, 1);
	return NULL;
}

/* Watches registered while the key changes fast: each sees one initial value
 * and then exactly the later values, in order, none twice, none missing. */
static void test_plugin_live__stitching_under_concurrent_writes(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data, version) VALUES ('/w5/k', '0', 1)");
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	enum { NW = 6, N = 300 };
	static struct rec r[NW];
	struct writer w = { .n = N, .key = "/w5/k" };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, write_loop, &w), 0);
	for (int i = 0; i < NW; i++) {
		rec_init(&r[i]);
		usleep(20000);
		watch(c, i % 2, TH_TABLE_DATA, i % 2 ? "/w5" : "/w5/k", &r[i]);
		pump_for(c, 10);
	}
	while (!atomic_load(&w.done))
		pump_for(c, 10);
	pthread_join(t, NULL);
	pump_for(c, 200);
	for (int i = 0; i < NW; i++) {
		struct rec *x = &r[i];
		int last = -1;
		uint64_t rev = 0;
		for (size_t j = 0; j < x->n; j++) {
			if (x->ev[j].kind == TH_EVENT_SYNCED)
				continue;
			if (x->ev[j].kind != (j == 0 ? TH_EVENT_INITIAL : TH_EVENT_PUT)) {
				for (size_t k = 0; k < x->n && k < 12; k++)
					fprintf(stderr, "  watch %d event %zu: kind %d value '%s' revision %llu\n", i, k,
						(int)x->ev[k].kind, x->ev[k].value, (unsigned long long)x->ev[k].revision);
				fail_msg("watch %d (%s): event %zu of %zu is kind %d, value '%s', revision %llu", i,
					 i % 2 ? "recursive" : "exact", j, x->n, (int)x->ev[j].kind, x->ev[j].value,
					 (unsigned long long)x->ev[j].revision);
			}
			int v = atoi(x->ev[j].value);
			if (last >= 0 && v != last + 1) {
				for (size_t k = j > 5 ? j - 5 : 0; k < x->n && k < j + 3; k++)
					fprintf(stderr, "  watch %d event %zu: kind %d value '%s' revision %llu\n", i, k,
						(int)x->ev[k].kind, x->ev[k].value, (unsigned long long)x->ev[k].revision);
				fail_msg("watch %d: value %d after %d (event %zu)", i, v, last, j);
			}
			assert_true(x->ev[j].revision > rev || j == 0);
			rev = x->ev[j].revision;
			last = v;
		}
		assert_int_equal(last, N);
	}
	api->close(c);
	for (int i = 0; i < NW; i++)
		assert_int_equal(atomic_load(&r[i].frees), 1);
}

/* ---- a snapshot taken while a large transaction is being published -------- */

struct whole {
	int initial, synced, puts;
	int lo, hi;                /* lowest and highest INITIAL value */
	uint64_t max_initial_rev;  /* newest revision among the INITIAL events */
	uint64_t synced_rev;
	uint64_t bad_put_rev;      /* a PUT at or below the SYNCED revision */
	atomic_int frees;
};

static void whole_cb(const struct th_event *e, void *arg)
{
	struct whole *w = arg;
	if (e->kind == TH_EVENT_INITIAL) {
		int v = atoi(e->value);
		if (w->initial++ == 0 || v < w->lo)
			w->lo = v;
		if (w->initial == 1 || v > w->hi)
			w->hi = v;
		if (e->revision > w->max_initial_rev)
			w->max_initial_rev = e->revision;
	} else if (e->kind == TH_EVENT_SYNCED) {
		w->synced++;
		w->synced_rev = e->revision;
	} else if (e->kind == TH_EVENT_PUT) {
		w->puts++;
		if (w->synced && e->revision <= w->synced_rev && !w->bad_put_rev)
			w->bad_put_rev = e->revision;
	}
}

static void whole_free(void *arg)
{
	struct whole *w = arg;
	atomic_fetch_add(&w->frees, 1);
}

struct bulk_writer {
	int rounds;
	atomic_int done;
};

static void *bulk_write_loop(void *arg)
{
	struct bulk_writer *w = arg;
	for (int i = 1; i <= w->rounds; i++)
		sql("UPDATE topo.topo_data SET data = '%d', version = version + 1 WHERE path LIKE '/whole/%%'", i);
	atomic_store(&w->done, 1);
	return NULL;
}

struct cycler {
	struct bulk_writer *bw;
	unsigned seed;
	int cycles;
	char err[512];
};

/* Watch, wait for SYNCED, unwatch, again, until the writer is done. */
static void *watch_cycles(void *arg)
{
	struct cycler *cy = arg;
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	struct whole *w = calloc(1, sizeof *w);
	while (!cy->err[0] && !atomic_load(&cy->bw->done)) {
		memset(w, 0, sizeof *w);
		/* SYNCED comes at a transaction's end: start the next watch at a
		 * random moment of the writer's cycle, not right after one. */
		usleep((useconds_t)(rand_r(&cy->seed) % 8000));
		struct th_watch_opts wo = { .size = sizeof wo, .table = TH_TABLE_DATA, .path = "/whole",
					    .callback = whole_cb, .arg = w, .free_arg = whole_free };
		th_watch_id id = 0;
		int rc = api->watch_recursive(c, &wo, &id);
		if (rc) {
			snprintf(cy->err, sizeof cy->err, "watch: %s", api->strerror(rc));
			break;
		}
		uint64_t end = ms_now() + 10000;
		while (!w->synced && ms_now() < end)
			api->dispatch(c, 20000000);
		pump_for(c, 2); /* a few live changes after SYNCED, if any come */
		api->unwatch(c, id);
		pump_for(c, 1);
		if (!w->synced)
			snprintf(cy->err, sizeof cy->err, "cycle %d: no SYNCED in 10 s (%d INITIAL)", cy->cycles,
				 w->initial);
		else if (w->initial != 400 || w->lo != w->hi || w->max_initial_rev > w->synced_rev || w->bad_put_rev)
			snprintf(cy->err, sizeof cy->err,
				 "cycle %d: %d INITIAL events with values %d..%d, newest INITIAL revision %llu, SYNCED at "
				 "%llu, a PUT after SYNCED at revision %llu: the snapshot is not one transaction's state",
				 cy->cycles, w->initial, w->lo, w->hi, (unsigned long long)w->max_initial_rev,
				 (unsigned long long)w->synced_rev, (unsigned long long)w->bad_put_rev);
		else if (atomic_load(&w->frees) != 1)
			snprintf(cy->err, sizeof cy->err, "cycle %d: free function called %d times", cy->cycles,
				 atomic_load(&w->frees));
		cy->cycles++;
	}
	api->close(c);
	free(w);
	return NULL;
}

/* Recursive watches registered while one statement after another rewrites
 * 400 rows at once: each watch's INITIAL events are one transaction's state
 * (all rows at the same value), none newer than the SYNCED revision, and
 * what comes after SYNCED is newer than it. (Found by the chaos checker: the
 * hub's snapshot walk saw the state of a transaction whose ring records were
 * not committed yet, so SYNCED named the revision before it and the rest of
 * it came live.) The race is a matter of timing: four connections watch at
 * random moments, so that hundreds of snapshots meet the writer mid-way. */
static void test_plugin_live__snapshot_during_a_large_transaction_is_whole(void **state)
{
	(void)state;
	NEED_SERVER();
	enum { ROWS = 400, ROUNDS = 250, NCYCLERS = 4 };
	char q[64 * ROWS];
	size_t o = (size_t)snprintf(q, sizeof q, "INSERT INTO topo.topo_data (path, data, version) VALUES ");
	for (int i = 0; i < ROWS; i++)
		o += (size_t)snprintf(q + o, sizeof q - o, "%s('/whole/k%03d', '0', 1)", i ? "," : "", i);
	if (th_mariadb_sql(db, "%s", q))
		fail_msg("inserting %d rows: %s", ROWS, db->err);
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	api->close(c);
	struct bulk_writer bw = { .rounds = ROUNDS };
	static struct cycler cy[NCYCLERS];
	pthread_t t, ct[NCYCLERS];
	for (int i = 0; i < NCYCLERS; i++) {
		cy[i] = (struct cycler){ .bw = &bw, .seed = (unsigned)time(NULL) + (unsigned)i };
		assert_int_equal(pthread_create(&ct[i], NULL, watch_cycles, &cy[i]), 0);
	}
	assert_int_equal(pthread_create(&t, NULL, bulk_write_loop, &bw), 0);
	pthread_join(t, NULL);
	int cycles = 0;
	for (int i = 0; i < NCYCLERS; i++) {
		pthread_join(ct[i], NULL);
		if (cy[i].err[0])
			fail_msg("connection %d: %s", i, cy[i].err);
		cycles += cy[i].cycles;
	}
	print_message("  %d watch cycles over %d transactions of %d rows\n", cycles, ROUNDS, ROWS);
	sql("DELETE FROM topo.topo_data WHERE path LIKE '/whole/%%'");
}

struct quiet_watch {
	atomic_int events, frees;
};

static void quiet_cb(const struct th_event *e, void *arg)
{
	(void)e;
	atomic_fetch_add(&((struct quiet_watch *)arg)->events, 1);
}

static void quiet_free(void *arg)
{
	atomic_fetch_add(&((struct quiet_watch *)arg)->frees, 1);
}

struct late_unwatch {
	struct th_conn *c;
	struct rec *covered;         /* its RESYNC starts the clock */
	th_watch_id cover;           /* unwatched from this thread */
	unsigned delay_us;
	int rc;
};

/* Waits for the covered watch's RESYNC, then unwatches the cover a moment
 * later, while the library's thread fetches. */
static void *unwatch_later(void *arg)
{
	struct late_unwatch *u = arg;
	uint64_t end = ms_now() + 10000;
	while (!locked(u->covered, &u->covered->resyncs) && ms_now() < end)
		usleep(50);
	usleep(u->delay_us);
	u->rc = api->unwatch(u->c, u->cover);
	return NULL;
}

/* A recursive watch inside another one's prefix is not fetched on a resync
 * (the cover's fetch brings its entries). With the library's thread running
 * callbacks, an unwatch() of the cover from another thread while the
 * library fetches must not take that away: the covered watch's view stays
 * the table's. (Found by the chaos checker: every key of a covered watch
 * reported deleted after a DDL reload, and put again after the next; the
 * cover was unwatched between the covered watch's turn and its own.) Thirty
 * watches between the two give the race a few milliseconds to land in. */
static void test_plugin_live__unwatch_on_another_thread_during_a_resync_keeps_covered_watches_whole(void **state)
{
	(void)state;
	NEED_SERVER();
	enum { ROWS = 10, FILLERS = 30, ROUNDS = 12 };
	for (int i = 0; i < ROWS; i++)
		sql("INSERT INTO topo.topo_data (path, data) VALUES ('/cov/in/k%02d', 'v%d')", i, i);
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, TH_OPEN_F_THREAD, 0);
	catch_up(c);
	static struct rec cover, covered;
	static struct quiet_watch fill[FILLERS];
	for (int round = 0; round < ROUNDS; round++) {
		rec_init(&cover);
		rec_init(&covered);
		/* The list is newest first: covered, the fillers, then the cover. */
		th_watch_id cover_id = watch(c, true, TH_TABLE_DATA, "/cov", &cover);
		th_watch_id fill_id[FILLERS];
		for (int i = 0; i < FILLERS; i++) {
			char path[32];
			snprintf(path, sizeof path, "/fill%02d", i);
			memset(&fill[i], 0, sizeof fill[i]);
			struct th_watch_opts o = { .size = sizeof o, .table = TH_TABLE_DATA, .path = path,
						   .callback = quiet_cb, .arg = &fill[i], .free_arg = quiet_free };
			assert_int_equal(api->watch_recursive(c, &o, &fill_id[i]), 0);
		}
		watch(c, true, TH_TABLE_DATA, "/cov/in", &covered);
		pump(c, &covered, ROWS + 1, true);
		pump(c, &cover, ROWS + 1, true);
		struct late_unwatch u = { .c = c, .covered = &covered, .cover = cover_id,
					  .delay_us = (unsigned)(round % 4) * 500 };
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, unwatch_later, &u), 0);
		/* DDL on a watched table: the hub reloads; every watch resyncs. */
		sql("ALTER TABLE topo.topo_data COMMENT = 'round %d'", round);
		pthread_join(t, NULL);
		assert_int_equal(u.rc, 0);
		uint64_t end = ms_now() + 10000;
		while (locked(&covered, &covered.synced) < 2 && ms_now() < end)
			usleep(1000);
		pthread_mutex_lock(&covered.mu);
		int nview = covered.nview, synced = covered.synced;
		pthread_mutex_unlock(&covered.mu);
		if (synced < 2)
			fail_msg("round %d: the covered watch did not sync after the resync", round);
		if (nview != ROWS)
			fail_msg("round %d: the covered watch holds %d of the %d rows after the resync (the cover was "
				 "unwatched %u us after its RESYNC)", round, nview, ROWS, u.delay_us);
		api->unwatch(c, covered.id);
		for (int i = 0; i < FILLERS; i++)
			api->unwatch(c, fill_id[i]);
		end = ms_now() + 5000;
		while ((atomic_load(&covered.frees) < 1 || atomic_load(&cover.frees) < 1) && ms_now() < end)
			usleep(1000);
		assert_int_equal(atomic_load(&cover.frees), 1);
		assert_int_equal(atomic_load(&covered.frees), 1);
	}
	api->close(c);
	sql("DELETE FROM topo.topo_data WHERE path LIKE '/cov/%%'");
}

static void test_plugin_live__unwatch_inside_callback(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w6/a', 'x')");
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	static struct rec r, r2;
	rec_init(&r);
	rec_init(&r2);
	r.unwatch_on = TH_EVENT_PUT;
	watch(c, true, TH_TABLE_DATA, "/w6", &r);
	watch(c, true, TH_TABLE_DATA, "/w6", &r2);
	pump(c, &r, 2, false);
	pump(c, &r2, 2, false);
	sql("BEGIN; UPDATE topo.topo_data SET data = 'y' WHERE path = '/w6/a'; "
	    "INSERT INTO topo.topo_data (path, data) VALUES ('/w6/b', 'z'); COMMIT");
	sql("UPDATE topo.topo_data SET data = 'w' WHERE path = '/w6/a'");
	pump(c, &r2, 5, false);
	pump_for(c, 50);
	/* The first put reached it; it unwatched there; nothing after. */
	assert_int_equal(count(&r), 3);
	expect(&r, 2, TH_EVENT_PUT, "/w6/a", "y");
	assert_int_equal(r.unwatch_rc, 0);
	assert_int_equal(r.unwatch_again_rc, -ENOENT);
	assert_int_equal(atomic_load(&r.frees), 1);
	assert_int_equal(atomic_load(&r2.frees), 0);
	api->close(c);
	assert_int_equal(atomic_load(&r.frees), 1);
	assert_int_equal(atomic_load(&r2.frees), 1);
}

static void test_plugin_live__older_caller_and_bad_flags(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w7/a', 'old')");
	/* An older caller: open opts without name, watch opts without arg/free. */
	struct th_open_opts oo = { .size = offsetof(struct th_open_opts, name), .socket_path = hub->socket };
	struct th_conn *c = NULL;
	assert_int_equal(api->open(&oo, &c), 0);
	static struct rec r;
	rec_init(&r);
	struct th_watch_opts o = { .size = offsetof(struct th_watch_opts, arg), .path = "/w7/a", .callback = on_event,
				   .arg = &r /* beyond size: must be ignored */ };
	th_watch_id id;
	assert_int_equal(api->watch(c, &o, &id), -0); /* accepted, arg defaults to NULL */
	/* NULL arg: the callback would crash on it; unwatch before dispatching. */
	assert_int_equal(api->unwatch(c, id), 0);
	o.size = sizeof o;
	o.flags = 0x40;
	assert_int_equal(api->watch(c, &o, &id), -EINVAL);
	o.flags = 0;
	o.table = 1000;
	assert_int_equal(api->watch(c, &o, &id), -EINVAL);
	o.table = 0;
	o.callback = NULL;
	assert_int_equal(api->watch(c, &o, &id), -EINVAL);
	assert_int_equal(api->fd(c), -EINVAL); /* not in fd mode */
	pump_for(c, 10);
	api->close(c);
}

static void test_plugin_live__fd_mode_in_epoll(void **state)
{
	(void)state;
	NEED_SERVER();
	struct th_conn *c = open_conn(TH_WAIT_FD, 0, 0);
	int fd = api->fd(c);
	assert_true(fd >= 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ee = { .events = EPOLLIN };
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ee), 0);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/w8", &r);
	uint64_t end = ms_now() + 10000;
	bool inserted = false;
	while (count(&r) < 2 && ms_now() < end) {
		if (!inserted && count(&r) == 1) {
			expect(&r, 0, TH_EVENT_SYNCED, NULL, NULL);
			sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w8/a', 'fd')");
			inserted = true;
		}
		struct epoll_event out;
		if (epoll_wait(ep, &out, 1, 1000) == 1)
			assert_true(api->dispatch(c, 0) >= 0);
	}
	assert_true(count(&r) >= 2);
	expect(&r, r.n - 1, TH_EVENT_PUT, "/w8/a", "fd");
	close(ep);
	api->close(c);
}

static void test_plugin_live__library_thread_runs_callbacks(void **state)
{
	(void)state;
	NEED_SERVER();
	for (uint32_t mode = TH_WAIT_FUTEX; mode <= TH_WAIT_FD; mode++) {
		struct th_conn *c = open_conn(mode, TH_OPEN_F_THREAD, 0);
		assert_int_equal(api->dispatch(c, 0), -EINVAL);
		static struct rec r;
		rec_init(&r);
		char path[32];
		snprintf(path, sizeof path, "/w9/%u", mode);
		watch(c, true, TH_TABLE_DATA, path, &r);
		pump(c, &r, 1, true);
		sql("INSERT INTO topo.topo_data (path, data) VALUES ('%s/x', 'threaded')", path);
		pump(c, &r, 2, true);
		expect(&r, 1, TH_EVENT_PUT, NULL, "threaded");
		api->close(c);
		assert_int_equal(atomic_load(&r.frees), 1);
	}
}

static void test_plugin_live__get_and_sync(void **state)
{
	(void)state;
	NEED_SERVER();
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/w10", &r);
	pump(c, &r, 1, false);
	sql("INSERT INTO topo.topo_data (path, data, version) VALUES ('/w10/a', 'got', 3)");
	char gtid[256];
	assert_int_equal(th_mariadb_query_value(db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	uint64_t rev = 0;
	int rc = api->sync(c, gtid, 5000000000ll, &rev);
	if (rc)
		fail_msg("sync %s: %s", gtid, api->strerror(rc));
	assert_true(rev > 0);
	/* Once dispatch reaches that revision, the insert has been delivered. */
	struct th_stats st = { .size = sizeof st };
	uint64_t end = ms_now() + 5000;
	do {
		api->dispatch(c, 1000000);
		api->stats(c, &st);
	} while (st.revision < rev && ms_now() < end);
	assert_true(st.revision >= rev);
	expect(&r, 1, TH_EVENT_PUT, "/w10/a", "got");
	struct th_entry *e = NULL;
	assert_int_equal(api->get(c, TH_TABLE_DATA, "/w10/a", &e), 0);
	assert_string_equal(e->value, "got");
	assert_int_equal(e->version, 3);
	assert_true(e->size >= sizeof *e);
	api->entry_free(e);
	assert_int_equal(api->get(c, TH_TABLE_DATA, "/w10/none", &e), -TH_ENOTFOUND);
	assert_int_equal(api->sync(c, "not a gtid", 1000000, NULL), -TH_EGTID);
	api->close(c);
}

static int threads_now(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static void test_plugin_live__no_hidden_threads(void **state)
{
	(void)state;
	NEED_SERVER();
	int before = threads_now();
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/w11", &r);
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/w11/a', 't')");
	pump(c, &r, 2, false);
	assert_int_equal(api->unwatch(c, r.id), 0);
	pump_for(c, 10);
	assert_int_equal(threads_now(), before);
	api->close(c);
	assert_int_equal(threads_now(), before);
}

/* ---- four threads registering while one dispatches ------------------------ */

struct churn {
	struct th_conn *c;
	int seed;
	atomic_int *made, *freed, *calls;
	atomic_int *updates_done;
};

static void churn_cb(const struct th_event *e, void *arg)
{
	struct churn *ch = arg;
	atomic_fetch_add(ch->calls, 1);
	/* Now and then, end the watch from inside its own callback. */
	if (e->kind == TH_EVENT_PUT && (e->revision & 3) == 0)
		api->unwatch(ch->c, e->watch);
}

static void churn_free(void *arg)
{
	struct churn *ch = arg;
	atomic_fetch_add(ch->freed, 1);
	free(ch);
}

static void *churn_thread(void *arg)
{
	struct churn *base = arg;
	unsigned seed = (unsigned)base->seed;
	th_watch_id live[16] = { 0 };
	/* At least 400 rounds, and on until the writer is done and callbacks
	 * have run while we churn: on a slow (sanitized, loaded) machine the
	 * rounds alone can all pass before the dispatcher delivers anything,
	 * and the test would then prove nothing about churn during dispatch. */
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0;; i++) {
		if (i >= 400 && atomic_load(base->updates_done) && atomic_load(base->calls) > 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 60)
			break; /* the calls > 0 assertion below then fails, not a hang */
		int slot = rand_r(&seed) % 16;
		if (live[slot]) {
			int rc = api->unwatch(base->c, live[slot]);
			assert_true(rc == 0 || rc == -ENOENT); /* it may have ended itself */
			live[slot] = 0;
		}
		struct churn *ch = malloc(sizeof *ch);
		*ch = *base;
		char path[64];
		int k = rand_r(&seed) % 8;
		snprintf(path, sizeof path, k < 3 ? "/cc" : "/cc/k%d", k);
		struct th_watch_opts o = { .size = sizeof o, .path = path, .callback = churn_cb, .arg = ch,
					   .free_arg = churn_free };
		int rc = (k & 1) ? api->watch(base->c, &o, &live[slot]) : api->watch_recursive(base->c, &o, &live[slot]);
		assert_int_equal(rc, 0);
		atomic_fetch_add(base->made, 1);
		if (i % 50 == 0)
			usleep(1000);
	}
	for (int s = 0; s < 16; s++)
		if (live[s])
			api->unwatch(base->c, live[s]);
	return NULL;
}

static atomic_int stop_dispatch;

static void *dispatch_until_stopped(void *arg)
{
	struct th_conn *c = arg;
	while (!atomic_load(&stop_dispatch))
		assert_true(api->dispatch(c, 2000000) >= 0);
	return NULL;
}

static void test_plugin_live__watch_unwatch_from_four_threads_while_dispatching(void **state)
{
	(void)state;
	NEED_SERVER();
	for (int k = 0; k < 8; k++)
		sql("INSERT INTO topo.topo_data (path, data) VALUES ('/cc/k%d', '0')", k);
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	atomic_int made = 0, freed = 0, calls = 0, updates_done = 0;
	atomic_store(&stop_dispatch, 0);
	pthread_t d, t[4];
	assert_int_equal(pthread_create(&d, NULL, dispatch_until_stopped, c), 0);
	struct churn base[4];
	for (int i = 0; i < 4; i++) {
		base[i] = (struct churn){ c, i + 1, &made, &freed, &calls, &updates_done };
		assert_int_equal(pthread_create(&t[i], NULL, churn_thread, &base[i]), 0);
	}
	for (int i = 0; i < 60; i++)
		sql("UPDATE topo.topo_data SET data = '%d' WHERE path = '/cc/k%d'", i, i % 8);
	atomic_store(&updates_done, 1);
	/* Keep changes coming until the churners have seen callbacks. */
	for (int i = 60; i < 6000 && atomic_load(&calls) == 0; i++)
		sql("UPDATE topo.topo_data SET data = '%d' WHERE path = '/cc/k%d'", i, i % 8);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* A second dispatcher is refused while the first runs. */
	int rc = api->dispatch(c, 0);
	assert_true(rc == -EBUSY || rc >= 0);
	usleep(100000);
	atomic_store(&stop_dispatch, 1);
	pthread_join(d, NULL);
	pump_for(c, 20);
	assert_true(atomic_load(&made) >= 1600);
	assert_int_equal(atomic_load(&freed), atomic_load(&made)); /* every free function, once */
	assert_true(atomic_load(&calls) > 0);
	struct th_stats st = { .size = sizeof st };
	api->stats(c, &st);
	assert_int_equal(st.watches, 0);
	assert_int_equal(st.entries, 0); /* nothing watched, nothing kept */
	api->close(c);
	assert_int_equal(atomic_load(&freed), atomic_load(&made));
}

/* ---- losing continuity ------------------------------------------------------ */

/* Read from a child until EOF or timeout_ms. On timeout the child is stuck
 * (a library call that ignores its timeout): print its threads' stacks with
 * gdb when there is one, kill it, and fail, instead of hanging the suite. */
static void fail_stuck_child(pid_t pid, int timeout_ms)
{
	char cmd[160];
	fprintf(stderr, "child %d stuck for %d ms; its stacks:\n", (int)pid, timeout_ms);
	snprintf(cmd, sizeof cmd, "gdb -q -batch -p %d -ex 'thread apply all bt' >&2 2>/dev/null", (int)pid);
	if (system(cmd) != 0)
		fprintf(stderr, "(no gdb)\n");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fail_msg("child %d did not answer within %d ms", (int)pid, timeout_ms);
}

static size_t read_child_or_fail(int fd, char *buf, size_t cap, pid_t pid, int timeout_ms)
{
	size_t got = 0;
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	while (got < cap - 1) {
		uint64_t now = ms_now();
		if (now >= end)
			fail_stuck_child(pid, timeout_ms);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)(end - now)) <= 0)
			continue;
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n <= 0)
			break; /* EOF: the child is done */
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

/* A reader process stopped past its slow-consumer timeout is evicted; when it
 * continues it gets RESYNC, the changes, SYNCED, and its view equals the
 * table. */
static void test_plugin_live__stopped_reader_is_evicted_and_resyncs(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/ev/a', '1'), ('/ev/b', '2'), ('/ev/c', '3')");
	struct th_conn *cu = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(cu);
	api->close(cu);
	int to_parent[2], to_child[2];
	assert_int_equal(pipe(to_parent), 0);
	assert_int_equal(pipe(to_child), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The reader process: a fresh connection, a 50 ms timeout. */
		struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 50000000);
		static struct rec r;
		rec_init(&r);
		watch(c, true, TH_TABLE_DATA, "/ev", &r);
		close(to_parent[0]);
		uint64_t end = ms_now() + 20000;
		while (r.synced < 1 && ms_now() < end)
			api->dispatch(c, 10000000);
		if (write(to_parent[1], "R", 1) != 1)
			_exit(2);
		while (r.synced < 2 && ms_now() < end)
			api->dispatch(c, 10000000);
		char out[8192];
		view_text(&r, out, sizeof out);
		struct th_stats st = { .size = sizeof st };
		api->stats(c, &st);
		int reason = -1;
		for (size_t i = 0; i < r.n && reason < 0; i++)
			if (r.ev[i].kind == TH_EVENT_RESYNC)
				reason = (int)r.ev[i].reason;
		char msg[8400];
		int n = snprintf(msg, sizeof msg, "%d %d %llu %s", r.resyncs, reason, (unsigned long long)st.evictions, out);
		if (write(to_parent[1], msg, (size_t)n + 1) < 0)
			_exit(2);
		_exit(0);
	}
	close(to_parent[1]);
	to_parent[1] = -1;
	char b[2];
	/* The child writes one byte when it is synced, then keeps the pipe open. */
	struct pollfd pr = { .fd = to_parent[0], .events = POLLIN };
	if (poll(&pr, 1, 30000) != 1)
		fail_stuck_child(pid, 30000);
	assert_int_equal(read(to_parent[0], b, 1), 1);
	kill(pid, SIGSTOP);
	sql("UPDATE topo.topo_data SET data = '1b' WHERE path = '/ev/a'");
	sql("DELETE FROM topo.topo_data WHERE path = '/ev/b'");
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/ev/d', '4')");
	usleep(300000); /* well past the 50 ms timeout */
	sql("UPDATE topo.topo_data SET data = '3b' WHERE path = '/ev/c'");
	usleep(100000);
	kill(pid, SIGCONT);
	char msg[8400] = "";
	/* The child gives up on its own after 20 s; 60 s means it is stuck. */
	read_child_or_fail(to_parent[0], msg, sizeof msg, pid, 60000);
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	int resyncs = 0, reason = 0;
	unsigned long long evictions = 0;
	char view[8192] = "";
	sscanf(msg, "%d %d %llu %8191s", &resyncs, &reason, &evictions, view);
	char want[2048];
	table_text("/ev", want, sizeof want);
	assert_string_equal(view, want);
	assert_int_equal(resyncs, 1);
	assert_int_equal(reason, TH_RESYNC_EVICTED);
	assert_int_equal(evictions, 1);
	close(to_parent[0]);
	close(to_child[0]);
	close(to_child[1]);
}

/* A reader with a long timeout that the ring overtakes (a small ring, a burst
 * of writes) learns it, resyncs, and converges. A hub of its own, so that the
 * small ring troubles no other test. */
static void test_plugin_live__lapped_reader_resyncs(void **state)
{
	(void)state;
	NEED_SERVER();
	struct th_mariadb *srcs[] = { db };
	const char *args[] = { "--ring-capacity=65536", "--reader-timeout-max-ms=600000", NULL };
	struct th_hub_proc_options o = { .sources = srcs, .nsources = 1, .extra_args = args };
	struct th_hub_proc *small = NULL;
	char why[1024];
	if (th_hub_proc_start(&o, &small, why, sizeof why))
		fail_msg("topohubd: %s", why);
	struct th_open_opts oo = { .size = sizeof oo, .socket_path = small->socket, .timeout_ns = 600000000000ull };
	struct th_conn *c = NULL;
	assert_int_equal(api->open(&oo, &c), 0);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/lap", &r);
	pump(c, &r, 1, false);
	/* About 300 KB of changes, over four ring capacities, while we do not read. */
	for (int i = 0; i < 150; i++)
		sql("INSERT INTO topo.topo_data (path, data) VALUES ('/lap/k%03d', REPEAT('x', 2000)) "
		    "ON DUPLICATE KEY UPDATE data = REPEAT('y', 2000)", i % 40);
	sql("DELETE FROM topo.topo_data WHERE path = '/lap/k007'");
	usleep(200000);
	uint64_t end = ms_now() + 10000;
	while (r.synced < 2 && ms_now() < end)
		api->dispatch(c, 10000000);
	assert_int_equal(r.synced, 2);
	assert_int_equal(r.resyncs, 1);
	int reason = -1;
	for (size_t i = 0; i < r.n && reason < 0; i++)
		if (r.ev[i].kind == TH_EVENT_RESYNC)
			reason = (int)r.ev[i].reason;
	assert_int_equal(reason, TH_RESYNC_LAPPED);
	/* The view: 39 keys, the last values. */
	assert_int_equal(r.nview, 39);
	struct th_stats st = { .size = sizeof st };
	api->stats(c, &st);
	assert_int_equal(st.laps, 1);
	api->close(c);
	th_hub_proc_free(small);
}

/* Issue 14 (1): DDL on one table reloads every table from a new snapshot,
 * which takes in what committed on the other tables in the meantime; those
 * changes are not in the ring, so the watches of the other tables must be
 * told (RESYNC and the difference), not left without them. TRUNCATE
 * topo_locks, then at once an insert into topo_data: the topo_data watch
 * must see the insert, whichever side of the reload it landed on. */
static void test_plugin_live__reload_after_ddl_on_one_table_tells_the_other_tables(void **state)
{
	(void)state;
	NEED_SERVER();
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/rl", &r);
	pump(c, &r, 1, false); /* SYNCED */
	for (int round = 0; round < 5; round++) {
		sql("INSERT INTO topo.topo_locks (path, contents, expires_at) VALUES ('/rl/lock%d', 'x', NOW())", round);
		sql("TRUNCATE topo.topo_locks");
		sql("INSERT INTO topo.topo_data (path, data) VALUES ('/rl/k%d', 'v%d')", round, round);
		char want[1024], got[1024];
		table_text("/rl", want, sizeof want);
		uint64_t end = ms_now() + 5000;
		do {
			api->dispatch(c, 10000000);
			view_text(&r, got, sizeof got);
		} while (strcmp(got, want) && ms_now() < end);
		if (strcmp(got, want))
			fail_msg("round %d: the topo_data watch holds '%s', the table '%s' (resyncs %d)", round, got, want,
				 r.resyncs);
	}
	api->close(c);
}

/* Wait (dispatching) until stats().revision reaches rev; false after 5 s. */
static bool revision_reaches(struct th_conn *c, uint64_t rev, uint64_t *seen)
{
	struct th_stats st = { .size = sizeof st };
	uint64_t end = ms_now() + 5000;
	do {
		api->dispatch(c, 10000000);
		api->stats(c, &st);
	} while (st.revision < rev && ms_now() < end);
	*seen = st.revision;
	return st.revision >= rev;
}

static uint64_t sync_now(struct th_conn *c)
{
	char gtid[512];
	assert_int_equal(th_mariadb_query_value(db, gtid, sizeof gtid, "SELECT @@gtid_binlog_pos"), 0);
	uint64_t rev = 0;
	int rc = api->sync(c, gtid, 10000000000ll, &rev);
	if (rc)
		fail_msg("sync %s: %s", gtid, api->strerror(rc));
	assert_true(rev > 0);
	return rev;
}

/* Issue 14 (2): the read-your-writes wait of topohub.h (sync, then dispatch
 * until stats().revision reaches its revision) ends on a connection that no
 * ring batch reached since it attached, after a hub reload that published
 * only its RESYNC, and after a hub restart. */
static void test_plugin_live__stats_revision_reaches_sync_without_a_ring_batch(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/rv/a', '1')");
	struct th_conn *w = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(w); /* the hub has the insert: no batch comes after the next attach */
	api->close(w);
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	uint64_t seen, rev = sync_now(c);
	if (!revision_reaches(c, rev, &seen))
		fail_msg("fresh connection: stats().revision %llu never reached sync's %llu", (unsigned long long)seen,
			 (unsigned long long)rev);
	/* A reload (DDL) publishes a RESYNC at a new revision and no change. */
	sql("TRUNCATE topo.topo_locks");
	uint64_t end = ms_now() + 5000;
	while ((rev = sync_now(c)) <= seen && ms_now() < end)
		usleep(10000);
	if (!revision_reaches(c, rev, &seen))
		fail_msg("after a reload: stats().revision %llu never reached sync's %llu", (unsigned long long)seen,
			 (unsigned long long)rev);
	/* A restarted hub starts at a new revision: nothing comes on the ring. */
	assert_int_equal(th_hub_proc_kill(hub), 0);
	char why[1024];
	if (th_hub_proc_restart(hub, why, sizeof why))
		fail_msg("restart: %s", why);
	rev = sync_now(c);
	if (!revision_reaches(c, rev, &seen))
		fail_msg("after a hub restart: stats().revision %llu never reached sync's %llu",
			 (unsigned long long)seen, (unsigned long long)rev);
	/* And with a watch that resynced across the restart. */
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/rv", &r);
	pump(c, &r, 2, false); /* INITIAL, SYNCED */
	assert_int_equal(th_hub_proc_kill(hub), 0);
	if (th_hub_proc_restart(hub, why, sizeof why))
		fail_msg("restart: %s", why);
	rev = sync_now(c);
	if (!revision_reaches(c, rev, &seen))
		fail_msg("after a hub restart with a watch: stats().revision %llu never reached sync's %llu",
			 (unsigned long long)seen, (unsigned long long)rev);
	assert_int_equal(locked(&r, &r.resyncs), 1);
	assert_int_equal(locked(&r, &r.synced), 2);
	api->close(c);
}

/* Issue 15: a subscriber is woken only for what it watches. A connection
 * that watches /tw/M/a, with a 100 ms slow-consumer timeout, sleeps through
 * half a second of transactions under /tw/M/b without dispatching: it reads
 * none of their records, the hub never judges it slow for them (it would
 * be evicted without the skip range), its
 * stats().revision still reaches the hub's, and a change under /tw/M/a then
 * reaches it. Each wait mode. */
static void test_plugin_live__a_subscriber_sleeps_through_changes_it_does_not_watch(void **state)
{
	(void)state;
	NEED_SERVER();
	const uint32_t modes[] = { TH_WAIT_FUTEX, TH_WAIT_FD };
	for (size_t m = 0; m < 2; m++) {
		struct th_conn *c = open_conn(modes[m], 0, 100000000);
		catch_up(c);
		static struct rec r;
		rec_init(&r);
		char mine[32];
		snprintf(mine, sizeof mine, "/tw/%zu/a", m);
		watch(c, true, TH_TABLE_DATA, mine, &r);
		pump(c, &r, 1, false); /* SYNCED: nothing there yet */
		pump_for(c, 50);        /* the filter is on once the watch is stitched */
		struct th_stats st0 = { .size = sizeof st0 };
		api->stats(c, &st0);
		for (int i = 0; i < 50; i++) {
			sql("INSERT INTO topo.topo_data (path, data) VALUES ('/tw/%zu/b/%d', 'x') "
			    "ON DUPLICATE KEY UPDATE data = CONCAT(data, 'x')", m, i % 7);
			usleep(10000);
		}
		uint64_t seen, rev = sync_now(c);
		if (!revision_reaches(c, rev, &seen))
			fail_msg("stats().revision %llu never reached sync's %llu", (unsigned long long)seen,
				 (unsigned long long)rev);
		struct th_stats st = { .size = sizeof st };
		api->stats(c, &st);
		assert_int_equal(st.evictions, st0.evictions);
		assert_int_equal(st.resyncs, st0.resyncs);
		assert_int_equal(st.records, st0.records); /* not one /tw/b record read */
		assert_int_equal(count(&r), 1);
		sql("INSERT INTO topo.topo_data (path, data) VALUES ('%s/x', 'mine')", mine);
		pump(c, &r, 2, false);
		expect(&r, 1, TH_EVENT_PUT, NULL, "mine");
		api->close(c);
	}
}

/* An idle dispatcher in futex mode sleeps: it does not wake every 10 ms to
 * look for registrations (a thousand idle subscribers would wake the host
 * 100,000 times a second); a watch registered from another thread ends its
 * sleep instead (a 10 s dispatch returns with the watch's first event). */
struct idle_dispatch {
	struct th_conn *c;
	int rc;
	long switches;
};

static void *idle_dispatch_thread(void *p)
{
	struct idle_dispatch *d = p;
	struct rusage ru0, ru1;
	getrusage(RUSAGE_THREAD, &ru0);
	d->rc = api->dispatch(d->c, 10000000000ll);
	getrusage(RUSAGE_THREAD, &ru1);
	d->switches = ru1.ru_nvcsw - ru0.ru_nvcsw;
	return NULL;
}

static void test_plugin_live__an_idle_futex_dispatcher_sleeps_until_a_watch_is_registered(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/idle/a', 'there') "
	    "ON DUPLICATE KEY UPDATE data = 'there'");
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	pump_for(c, 20);
	struct idle_dispatch d = { .c = c };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, idle_dispatch_thread, &d), 0);
	usleep(2000000);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/idle", &r);
	pthread_join(t, NULL);
	assert_true(d.rc > 0);
	expect(&r, 0, TH_EVENT_INITIAL, "/idle/a", "there");
	print_message("  idle dispatcher: %ld wake-ups in 2 s\n", d.switches);
	/* 10 ms slices would be ~200 wake-ups in those 2 s. */
	if (d.switches >= 60)
		fail_msg("the idle dispatcher woke %ld times in 2 s", d.switches);
	api->close(c);
}

/* A sparse subscriber (a change every 250 ms) does not wake five times
 * between two changes to look at its hub: the check's interval keeps growing
 * (to 500 ms) through changes instead of starting again at 10 ms. Counted as
 * the dispatching thread's voluntary context switches. */
struct sparse_dispatch {
	struct th_conn *c;
	atomic_int stop;
	atomic_long switches; /* from the first change on */
	atomic_int started;
};

static void *sparse_dispatch_thread(void *p)
{
	struct sparse_dispatch *d = p;
	struct rusage ru0, ru;
	bool counting = false;
	while (!atomic_load(&d->stop)) {
		int rc = api->dispatch(d->c, 10000000000ll);
		assert_true(rc >= 0);
		if (rc > 0 && !counting && atomic_load(&d->started)) {
			getrusage(RUSAGE_THREAD, &ru0);
			counting = true;
		}
	}
	getrusage(RUSAGE_THREAD, &ru);
	atomic_store(&d->switches, counting ? ru.ru_nvcsw - ru0.ru_nvcsw : -1);
	return NULL;
}

static void test_plugin_live__a_sparse_subscriber_does_not_wake_between_changes_to_check_its_hub(void **state)
{
	(void)state;
	NEED_SERVER();
	struct th_conn *c = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c);
	static struct rec r;
	rec_init(&r);
	watch(c, true, TH_TABLE_DATA, "/sparse", &r);
	pump(c, &r, 1, false);
	struct sparse_dispatch d = { .c = c };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, sparse_dispatch_thread, &d), 0);
	enum { CHANGES = 12 };
	for (int i = 0; i <= CHANGES; i++) {
		if (i == 1)
			atomic_store(&d.started, 1);
		sql("INSERT INTO topo.topo_data (path, data) VALUES ('/sparse/k', 'v%d') "
		    "ON DUPLICATE KEY UPDATE data = 'v%d'", i, i);
		usleep(250000);
	}
	atomic_store(&d.stop, 1);
	api->unwatch(c, r.id); /* a registration: ends the last wait */
	pthread_join(t, NULL);
	long sw = atomic_load(&d.switches);
	print_message("  %ld wake-ups over %d changes 250 ms apart\n", sw, CHANGES);
	/* Measured: ~2.4 per change; halving the interval at each change: ~3.5;
	 * restarting at 10 ms after each change (10, 20, 40, 80 ms, then the
	 * change): ~6.8. */
	if (sw < 0 || sw > CHANGES * 3)
		fail_msg("%ld wake-ups for %d changes", sw, CHANGES);
	api->close(c);
}

/* The hub killed and started again: every reader (futex and fd modes) gets
 * RESYNC, then what changed while it was away, then SYNCED. */
static void test_plugin_live__hub_restart_every_reader_resyncs(void **state)
{
	(void)state;
	NEED_SERVER();
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/hr/a', '1'), ('/hr/b', '2')");
	struct th_conn *c1 = open_conn(TH_WAIT_FUTEX, 0, 0);
	catch_up(c1);
	struct th_conn *c2 = open_conn(TH_WAIT_FD, TH_OPEN_F_THREAD, 0);
	/* A third in an event loop that only ever calls dispatch(c, 0). */
	struct th_conn *c3 = open_conn(TH_WAIT_FD, 0, 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ee = { .events = EPOLLIN };
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, api->fd(c3), &ee), 0);
	static struct rec r1, r2, r3, x1;
	rec_init(&r1);
	rec_init(&r2);
	rec_init(&r3);
	rec_init(&x1);
	watch(c1, true, TH_TABLE_DATA, "/hr", &r1);
	watch(c1, false, TH_TABLE_DATA, "/hr/b", &x1);
	watch(c2, true, TH_TABLE_DATA, "/hr", &r2);
	watch(c3, true, TH_TABLE_DATA, "/hr", &r3);
	pump(c1, &r1, 3, false);
	pump(c1, &x1, 1, false);
	pump(c2, &r2, 3, true);
	pump(c3, &r3, 3, false);
	assert_int_equal(th_hub_proc_kill(hub), 0);
	pump_for(c1, 100);
	assert_int_equal(r1.resyncs, 1);
	assert_int_equal(x1.resyncs, 1);
	sql("UPDATE topo.topo_data SET data = '1b' WHERE path = '/hr/a'");
	sql("DELETE FROM topo.topo_data WHERE path = '/hr/b'");
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/hr/c', '3')");
	char why[1024];
	if (th_hub_proc_restart(hub, why, sizeof why))
		fail_msg("restart: %s", why);
	uint64_t end = ms_now() + 15000;
	int wakeups = 0;
	while ((r1.synced < 2 || locked(&r2, &r2.synced) < 2 || x1.ended < 1 || r3.synced < 2) && ms_now() < end) {
		api->dispatch(c1, 10000000);
		struct epoll_event out;
		if (epoll_wait(ep, &out, 1, 0) == 1) {
			wakeups++;
			assert_true(api->dispatch(c3, 0) >= 0);
		}
	}
	assert_int_equal(r1.synced, 2);
	assert_int_equal(locked(&r2, &r2.synced), 2);
	assert_int_equal(r3.synced, 2);
	assert_int_equal(r3.resyncs, 1);
	/* The descriptor is readable when there is work, not all the time. */
	assert_true(wakeups < 200);
	char want[1024], got1[1024], got2[1024];
	table_text("/hr", want, sizeof want);
	view_text(&r1, got1, sizeof got1);
	view_text(&r2, got2, sizeof got2);
	assert_string_equal(got1, want);
	assert_string_equal(got2, want);
	/* The exact watch of the deleted path: RESYNC, DELETE, ENDED. */
	expect(&x1, x1.n - 1, TH_EVENT_ENDED, NULL, NULL);
	expect(&x1, x1.n - 2, TH_EVENT_DELETE, "/hr/b", NULL);
	/* And the stream goes on. */
	sql("INSERT INTO topo.topo_data (path, data) VALUES ('/hr/d', '4')");
	size_t n = count(&r1);
	pump(c1, &r1, n + 1, false);
	expect(&r1, n, TH_EVENT_PUT, "/hr/d", "4");
	struct th_stats st = { .size = sizeof st };
	api->stats(c1, &st);
	assert_int_equal(st.reconnects, 1);
	char got3[1024];
	view_text(&r3, got3, sizeof got3);
	assert_string_equal(got3, want);
	api->close(c1);
	api->close(c2);
	api->close(c3);
	close(ep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plugin_live__watch_initial_changes_then_delete_ends),
		cmocka_unit_test(test_plugin_live__watch_of_missing_path_is_not_found),
		cmocka_unit_test(test_plugin_live__recursive_initial_changes_deletes_and_boundaries),
		cmocka_unit_test(test_plugin_live__watches_added_and_removed_under_the_parent_of_the_last_change),
		cmocka_unit_test(test_plugin_live__transaction_is_one_revision),
		cmocka_unit_test(test_plugin_live__stitching_under_concurrent_writes),
		cmocka_unit_test(test_plugin_live__snapshot_during_a_large_transaction_is_whole),
		cmocka_unit_test(test_plugin_live__unwatch_on_another_thread_during_a_resync_keeps_covered_watches_whole),
		cmocka_unit_test(test_plugin_live__unwatch_inside_callback),
		cmocka_unit_test(test_plugin_live__older_caller_and_bad_flags),
		cmocka_unit_test(test_plugin_live__fd_mode_in_epoll),
		cmocka_unit_test(test_plugin_live__library_thread_runs_callbacks),
		cmocka_unit_test(test_plugin_live__get_and_sync),
		cmocka_unit_test(test_plugin_live__no_hidden_threads),
		cmocka_unit_test(test_plugin_live__watch_unwatch_from_four_threads_while_dispatching),
		cmocka_unit_test(test_plugin_live__stopped_reader_is_evicted_and_resyncs),
		cmocka_unit_test(test_plugin_live__lapped_reader_resyncs),
		cmocka_unit_test(test_plugin_live__reload_after_ddl_on_one_table_tells_the_other_tables),
		cmocka_unit_test(test_plugin_live__stats_revision_reaches_sync_without_a_ring_batch),
		cmocka_unit_test(test_plugin_live__a_subscriber_sleeps_through_changes_it_does_not_watch),
		cmocka_unit_test(test_plugin_live__an_idle_futex_dispatcher_sleeps_until_a_watch_is_registered),
		cmocka_unit_test(test_plugin_live__a_sparse_subscriber_does_not_wake_between_changes_to_check_its_hub),
		cmocka_unit_test(test_plugin_live__hub_restart_every_reader_resyncs),
	};
	if (getenv("TH_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TH_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
