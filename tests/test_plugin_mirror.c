/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests for the client library's local state (plugins/mirror.c), on synthetic
 * entries: path-component prefix matching, the stitching rule (a change
 * applies only when newer than what is held), and the resync difference.
 * The file is compiled in here whole: its functions are internal to
 * libtopohub.so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/mirror.c"

static bool m(const char *prefix, const char *key)
{
	uint32_t plen = th__path_trim(prefix, (uint32_t)strlen(prefix));
	return th__prefix_matches(prefix, plen, key, (uint32_t)strlen(key));
}

static void test_plugin_mirror__prefix_matches_on_component_boundaries(void **state)
{
	(void)state;
	assert_true(m("/a/b", "/a/b"));
	assert_true(m("/a/b", "/a/b/c"));
	assert_true(m("/a/b", "/a/b/c/d"));
	assert_false(m("/a/b", "/a/bc"));
	assert_false(m("/a/b", "/a/bc/d"));
	assert_false(m("/a/b", "/a"));
	assert_false(m("/a/b", "/a/"));
	assert_false(m("/a/b", "/x/a/b"));
	/* A trailing slash is the same prefix. */
	assert_true(m("/a/b/", "/a/b"));
	assert_true(m("/a/b/", "/a/b/c"));
	assert_false(m("/a/b/", "/a/bc"));
	/* Empty and "/" match everything. */
	assert_true(m("", "anything"));
	assert_true(m("/", "/a"));
	assert_true(m("/", "a"));
	/* Relative keys, as mysqltopo stores them. */
	assert_true(m("keyspaces/ks1", "keyspaces/ks1/Keyspace"));
	assert_false(m("keyspaces/ks1", "keyspaces/ks10/Keyspace"));
}

static struct th__entry *ent(uint32_t table, const char *key, const char *value, uint64_t rev)
{
	struct th__entry *e = th__entry_new(table, key, (uint32_t)strlen(key), value, (uint32_t)strlen(value), 0, 1, rev,
					    0, "", 0);
	assert_non_null(e);
	return e;
}

static int apply_put(struct th__mirror *mi, uint32_t table, const char *key, const char *value, uint64_t rev)
{
	return th__mirror_apply(mi, table, key, (uint32_t)strlen(key), rev, ent(table, key, value, rev));
}

static int apply_del(struct th__mirror *mi, uint32_t table, const char *key, uint64_t rev)
{
	return th__mirror_apply(mi, table, key, (uint32_t)strlen(key), rev, NULL);
}

static const char *val(struct th__mirror *mi, uint32_t table, const char *key)
{
	struct th__entry *e = th__mirror_find(mi, table, key, (uint32_t)strlen(key));
	return e ? e->value : NULL;
}

/* protocol.h's stitching: snapshot at R, then ring changes; a change applies
 * only if newer than the key's snapshot revision. */
static void test_plugin_mirror__stitching_applies_only_newer_changes(void **state)
{
	(void)state;
	struct th__mirror mi = { 0 };
	/* Snapshot: a@10, b@20 (b was changed while the walk ran, at 20 > R=15). */
	assert_int_equal(th__mirror_put(&mi, ent(0, "/a", "a10", 10)), 0);
	assert_int_equal(th__mirror_put(&mi, ent(0, "/b", "b20", 20)), 0);
	/* Ring from the attach position: older changes are already folded in. */
	assert_int_equal(apply_put(&mi, 0, "/a", "a5", 5), 0);
	assert_string_equal(val(&mi, 0, "/a"), "a10");
	/* The snapshot saw transaction 20 (racing the walk): its change of b is
	 * already the initial value and is not told again. The hub publishes
	 * one change per key per transaction, so b@20 is exactly "b20". */
	assert_int_equal(apply_put(&mi, 0, "/b", "b20", 20), 0);
	assert_string_equal(val(&mi, 0, "/b"), "b20");
	assert_int_equal(apply_del(&mi, 0, "/b", 20), 0);
	assert_string_equal(val(&mi, 0, "/b"), "b20");
	/* A key the walk missed (created at 14, racing the walk): applied. */
	assert_int_equal(apply_put(&mi, 0, "/c", "c14", 14), 1);
	/* Created and deleted before the walk: put then delete, nothing left. */
	assert_int_equal(apply_put(&mi, 0, "/d", "d3", 3), 1);
	assert_int_equal(apply_del(&mi, 0, "/d", 4), 1);
	assert_null(val(&mi, 0, "/d"));
	/* A delete of a key never held is nothing to tell. */
	assert_int_equal(apply_del(&mi, 0, "/zz", 30), 0);
	/* Later changes apply, deletes included. */
	assert_int_equal(apply_put(&mi, 0, "/a", "a31", 31), 1);
	assert_int_equal(apply_del(&mi, 0, "/b", 32), 1);
	assert_string_equal(val(&mi, 0, "/a"), "a31");
	assert_null(val(&mi, 0, "/b"));
	assert_int_equal(mi.count, 2);
	/* Tables are separate key spaces. */
	assert_int_equal(apply_put(&mi, 2, "/a", "elected", 33), 1);
	assert_string_equal(val(&mi, 0, "/a"), "a31");
	assert_string_equal(val(&mi, 2, "/a"), "elected");
	th__mirror_clear(&mi);
}

static void test_plugin_mirror__list_is_in_key_order_under_prefix(void **state)
{
	(void)state;
	struct th__mirror mi = { 0 };
	const char *keys[] = { "/k/b", "/k", "/kx", "/k/a/1", "/j", "/k/a", "/l/k" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		assert_int_equal(th__mirror_put(&mi, ent(0, keys[i], "v", i + 1)), 0);
	assert_int_equal(th__mirror_put(&mi, ent(1, "/k/other-table", "v", 9)), 0);
	struct th__entry **v;
	size_t n;
	assert_int_equal(th__mirror_list(&mi, false, 0, "/k", 2, false, &v, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0]->key, "/k");
	assert_string_equal(v[1]->key, "/k/a");
	assert_string_equal(v[2]->key, "/k/a/1");
	assert_string_equal(v[3]->key, "/k/b");
	free(v);
	assert_int_equal(th__mirror_list(&mi, false, 0, "/k/a", 4, true, &v, &n), 0);
	assert_int_equal(n, 1);
	free(v);
	assert_int_equal(th__mirror_list(&mi, true, 0, "", 0, false, &v, &n), 0);
	assert_int_equal(n, 8);
	free(v);
	th__mirror_clear(&mi);
}

struct diff_log {
	char text[1024];
};

static void log_put(void *ctx, const struct th__entry *e)
{
	struct diff_log *d = ctx;
	size_t n = strlen(d->text);
	snprintf(d->text + n, sizeof d->text - n, "put %s=%s;", e->key, e->value);
}

static void log_del(void *ctx, const struct th__entry *e)
{
	struct diff_log *d = ctx;
	size_t n = strlen(d->text);
	snprintf(d->text + n, sizeof d->text - n, "del %s;", e->key);
}

/* Resync: what a watcher was told (old) against the state (new). */
static void test_plugin_mirror__resync_diff_puts_changes_and_deletes_vanished(void **state)
{
	(void)state;
	struct th__mirror old = { 0 }, cur = { 0 };
	th__mirror_put(&old, ent(0, "/ks/a", "1", 10));
	th__mirror_put(&old, ent(0, "/ks/b", "2", 11));
	th__mirror_put(&old, ent(0, "/ks/c", "3", 12));
	th__mirror_put(&old, ent(0, "/ksx", "out of prefix", 13));
	/* New state: a unchanged (even under a new revision, as after a hub
	 * restart), b changed, c gone, d new. */
	th__mirror_put(&cur, ent(0, "/ks/a", "1", 90));
	th__mirror_put(&cur, ent(0, "/ks/b", "2b", 91));
	th__mirror_put(&cur, ent(0, "/ks/d", "4", 92));
	th__mirror_put(&cur, ent(0, "/ksy", "out of prefix", 93));
	struct diff_log d = { "" };
	assert_int_equal(th__mirror_diff(&old, &cur, 0, "/ks", 3, false, log_put, log_del, &d), 0);
	assert_string_equal(d.text, "put /ks/b=2b;del /ks/c;put /ks/d=4;");
	/* An exact path. */
	d.text[0] = 0;
	assert_int_equal(th__mirror_diff(&old, &cur, 0, "/ks/c", 5, true, log_put, log_del, &d), 0);
	assert_string_equal(d.text, "del /ks/c;");
	d.text[0] = 0;
	assert_int_equal(th__mirror_diff(&old, &cur, 0, "/ks/a", 5, true, log_put, log_del, &d), 0);
	assert_string_equal(d.text, "");
	th__mirror_clear(&old);
	th__mirror_clear(&cur);
}

static void test_plugin_mirror__move_table_sets_one_table_aside(void **state)
{
	(void)state;
	struct th__mirror mi = { 0 }, aside = { 0 };
	for (int i = 0; i < 100; i++) {
		char k[32];
		snprintf(k, sizeof k, "/k/%03d", i);
		th__mirror_put(&mi, ent((uint32_t)(i % 3), k, "v", (uint64_t)i + 1));
	}
	assert_int_equal(th__mirror_move_table(&mi, &aside, 1), 0);
	assert_int_equal(aside.count, 33);
	assert_int_equal(mi.count, 67);
	assert_int_equal(th__mirror_move_table(&mi, NULL, UINT32_MAX), 0);
	assert_int_equal(mi.count, 0);
	assert_null(th__mirror_find(&mi, 0, "/k/000", 6));
	th__mirror_clear(&mi); /* its (empty) table */
	th__mirror_clear(&aside);
}

/* Thousands of puts and removals in a pseudo-random order, checked against a
 * plain array after each round: removals in the middle of probe runs must not
 * lose the entries behind them. */
static void test_plugin_mirror__mirror_keeps_every_entry_through_puts_and_removals(void **state)
{
	(void)state;
	enum { N = 3000 };
	static bool present[N];
	static uint64_t revs[N];
	memset(present, 0, sizeof present);
	struct th__mirror mi = { 0 };
	uint64_t x = 88172645463325252ull, rev = 0;
	for (int round = 0; round < 6; round++) {
		for (int k = 0; k < N; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			int i = (int)(x % N);
			char key[32];
			snprintf(key, sizeof key, "/r/%d/k%d", i % 7, i);
			if (present[i] && (x >> 32) % 3 == 0) {
				assert_true(th__mirror_remove(&mi, (uint32_t)(i % 2), key, (uint32_t)strlen(key)));
				present[i] = false;
			} else {
				revs[i] = ++rev;
				assert_int_equal(th__mirror_put(&mi, ent((uint32_t)(i % 2), key, "v", revs[i])), 0);
				present[i] = true;
			}
		}
		uint64_t want = 0;
		for (int i = 0; i < N; i++) {
			char key[32];
			snprintf(key, sizeof key, "/r/%d/k%d", i % 7, i);
			struct th__entry *e = th__mirror_find(&mi, (uint32_t)(i % 2), key, (uint32_t)strlen(key));
			if (present[i]) {
				assert_non_null(e);
				assert_int_equal(e->revision, revs[i]);
				want++;
			} else {
				assert_null(e);
			}
			/* The other table never holds it. */
			assert_null(th__mirror_find(&mi, (uint32_t)(i % 2) ^ 1, key, (uint32_t)strlen(key)));
		}
		assert_int_equal(mi.count, want);
		struct th__entry **v;
		size_t n;
		assert_int_equal(th__mirror_list(&mi, true, 0, "", 0, false, &v, &n), 0);
		assert_int_equal(n, want);
		for (size_t j = 1; j < n; j++)
			assert_true(v[j - 1]->table < v[j]->table ||
				    (v[j - 1]->table == v[j]->table && strcmp(v[j - 1]->key, v[j]->key) < 0));
		free(v);
	}
	th__mirror_clear(&mi);
	assert_int_equal(mi.count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plugin_mirror__prefix_matches_on_component_boundaries),
		cmocka_unit_test(test_plugin_mirror__mirror_keeps_every_entry_through_puts_and_removals),
		cmocka_unit_test(test_plugin_mirror__stitching_applies_only_newer_changes),
		cmocka_unit_test(test_plugin_mirror__list_is_in_key_order_under_prefix),
		cmocka_unit_test(test_plugin_mirror__resync_diff_puts_changes_and_deletes_vanished),
		cmocka_unit_test(test_plugin_mirror__move_table_sets_one_table_aside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
