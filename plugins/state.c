/*
 * state.c: path-component matching and the library's local copy of entries.
 *
 * The local copy (a "mirror") is owned by the dispatching thread only, so it
 * needs no synchronisation; it is an ordered tree (glibc tsearch, a red-black
 * tree) because recursive watches and resync diffs read it by key order.
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

uint32_t th__path_trim(const char *path, uint32_t len)
{
	while (len > 0 && path[len - 1] == '/')
		len--;
	return len;
}

bool th__prefix_matches(const char *prefix, uint32_t plen, const char *key, uint32_t klen)
{
	if (plen == 0)
		return true;
	if (klen < plen || memcmp(prefix, key, plen) != 0)
		return false;
	return klen == plen || key[plen] == '/';
}

struct th__entry *th__entry_new(uint32_t table, const char *key, uint32_t key_len, const char *value,
				uint32_t value_len, uint32_t flags, int64_t version, uint64_t revision,
				uint64_t commit_us, const char *gtid, uint32_t gtid_len)
{
	size_t n = sizeof(struct th__entry) + (size_t)key_len + 1 + (size_t)value_len + 1 + (size_t)gtid_len + 1;
	struct th__entry *e = malloc(n);
	if (!e)
		return NULL;
	e->revision = revision;
	e->version = version;
	e->commit_us = commit_us;
	e->table = table;
	e->flags = flags;
	e->key_len = key_len;
	e->value_len = value_len;
	e->gtid_len = gtid_len;
	e->key = (char *)(e + 1);
	e->value = e->key + key_len + 1;
	e->gtid = e->value + value_len + 1;
	if (key_len)
		memcpy(e->key, key, key_len);
	e->key[key_len] = 0;
	if (value_len)
		memcpy(e->value, value, value_len);
	e->value[value_len] = 0;
	if (gtid_len)
		memcpy(e->gtid, gtid, gtid_len);
	e->gtid[gtid_len] = 0;
	return e;
}

bool th__entry_same_value(const struct th__entry *a, const struct th__entry *b)
{
	return a->flags == b->flags && a->version == b->version && a->value_len == b->value_len &&
	       memcmp(a->value, b->value, a->value_len) == 0;
}

/* Order: table, then key bytes, then length (a prefix sorts first). */
static int entry_cmp(const void *pa, const void *pb)
{
	const struct th__entry *a = pa, *b = pb;
	if (a->table != b->table)
		return a->table < b->table ? -1 : 1;
	uint32_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = n ? memcmp(a->key, b->key, n) : 0;
	if (c)
		return c;
	return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

static struct th__entry probe_of(uint32_t table, const char *key, uint32_t key_len)
{
	struct th__entry p = { .table = table, .key_len = key_len, .key = (char *)key };
	return p;
}

struct th__entry **th__mirror_slot(const struct th__mirror *m, uint32_t table, const char *key,
				   uint32_t key_len)
{
	struct th__entry p = probe_of(table, key, key_len);
	return (struct th__entry **)tfind(&p, &m->root, entry_cmp);
}

struct th__entry *th__mirror_find(const struct th__mirror *m, uint32_t table, const char *key,
				  uint32_t key_len)
{
	struct th__entry **slot = th__mirror_slot(m, table, key, key_len);
	return slot ? *slot : NULL;
}

int th__mirror_put(struct th__mirror *m, struct th__entry *e)
{
	void **node = tsearch(e, &m->root, entry_cmp);
	if (!node) {
		free(e);
		return -ENOMEM;
	}
	if (*node != e) {
		/* Same key: the tree keeps its node; swap the payload. */
		free(*node);
		*node = e;
	} else {
		m->count++;
	}
	return 0;
}

int th__mirror_put_newer(struct th__mirror *m, struct th__entry *e)
{
	struct th__entry *old = th__mirror_find(m, e->table, e->key, e->key_len);
	if (old && old->revision >= e->revision) {
		free(e);
		return 0;
	}
	int rc = th__mirror_put(m, e);
	return rc ? rc : 1;
}

struct th__entry *th__mirror_take(struct th__mirror *m, uint32_t table, const char *key, uint32_t key_len)
{
	struct th__entry p = probe_of(table, key, key_len);
	void **node = tfind(&p, &m->root, entry_cmp);
	if (!node)
		return NULL;
	struct th__entry *e = *node;
	tdelete(&p, &m->root, entry_cmp);
	m->count--;
	return e;
}

bool th__mirror_remove(struct th__mirror *m, uint32_t table, const char *key, uint32_t key_len)
{
	struct th__entry *e = th__mirror_take(m, table, key, key_len);
	free(e);
	return e != NULL;
}

int th__mirror_apply(struct th__mirror *m, uint32_t table, const char *key, uint32_t key_len,
		     uint64_t revision, struct th__entry *e)
{
	struct th__entry *old = th__mirror_find(m, table, key, key_len);
	if (th__change_is_known(old, revision)) {
		free(e);
		return 0;
	}
	if (!e) {
		if (!old)
			return 0; /* a delete of something we never had: nothing to tell */
		th__mirror_remove(m, table, key, key_len);
		return 1;
	}
	int rc = th__mirror_put(m, e);
	return rc ? rc : 1;
}

/* ---- walks -------------------------------------------------------------- */

struct collect {
	bool all_tables, exact;
	uint32_t table;
	const char *prefix;
	uint32_t plen;
	struct th__entry **v;
	size_t n, cap;
	bool oom;
};

static void collect_visit(const void *nodep, VISIT which, void *closure)
{
	if (which != postorder && which != leaf)
		return; /* in-order: each node once, between its subtrees */
	struct collect *c = closure;
	struct th__entry *e = *(struct th__entry *const *)nodep;
	if (c->oom)
		return;
	if (!c->all_tables) {
		if (e->table != c->table)
			return;
		if (c->exact ? (e->key_len != c->plen || memcmp(e->key, c->prefix, c->plen) != 0)
			     : !th__prefix_matches(c->prefix, c->plen, e->key, e->key_len))
			return;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct th__entry **v = realloc(c->v, cap * sizeof *v);
		if (!v) {
			c->oom = true;
			return;
		}
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = e;
}

static int list_entries(const struct th__mirror *m, bool all_tables, uint32_t table, const char *prefix,
			uint32_t plen, bool exact, struct th__entry ***out, size_t *n)
{
	struct collect c = { .all_tables = all_tables, .exact = exact, .table = table, .prefix = prefix, .plen = plen };
	if (exact) {
		/* One key: a lookup, not a walk. */
		struct th__entry *e = th__mirror_find(m, table, prefix, plen);
		*out = NULL;
		*n = 0;
		if (!e)
			return 0;
		*out = malloc(sizeof **out);
		if (!*out)
			return -ENOMEM;
		(*out)[0] = e;
		*n = 1;
		return 0;
	}
	if (m->root)
		twalk_r(m->root, collect_visit, &c);
	if (c.oom) {
		free(c.v);
		return -ENOMEM;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}

int th__mirror_list(const struct th__mirror *m, bool all_tables, uint32_t table, const char *prefix,
		    uint32_t plen, bool exact, struct th__entry ***out, size_t *n)
{
	return list_entries(m, all_tables, table, prefix, plen, exact, out, n);
}

int th__mirror_move_table(struct th__mirror *src, struct th__mirror *dst, uint32_t table)
{
	struct th__entry **v;
	size_t n;
	int rc = list_entries(src, table == UINT32_MAX, table, "", 0, false, &v, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct th__entry *e = th__mirror_take(src, v[i]->table, v[i]->key, v[i]->key_len);
		if (!dst) {
			free(e);
			continue;
		}
		rc = th__mirror_put(dst, e);
		if (rc) {
			/* e was freed by the failed put; the rest stays in src. */
			break;
		}
	}
	free(v);
	return rc;
}

static void free_node(void *p)
{
	free(p);
}

void th__mirror_clear(struct th__mirror *m)
{
	tdestroy(m->root, free_node);
	m->root = NULL;
	m->count = 0;
}

int th__mirror_diff(const struct th__mirror *old, const struct th__mirror *new_, uint32_t table,
		    const char *path, uint32_t plen, bool exact,
		    void (*put)(void *ctx, const struct th__entry *e),
		    void (*del)(void *ctx, const struct th__entry *e), void *ctx)
{
	struct th__entry **a = NULL, **b = NULL;
	size_t na = 0, nb = 0;
	int rc = list_entries(old, false, table, path, plen, exact, &a, &na);
	if (rc)
		return rc;
	rc = list_entries(new_, false, table, path, plen, exact, &b, &nb);
	if (rc) {
		free(a);
		return rc;
	}
	size_t i = 0, j = 0;
	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 : entry_cmp(a[i], b[j]);
		if (c < 0) {
			del(ctx, a[i++]);
		} else if (c > 0) {
			put(ctx, b[j++]);
		} else {
			if (!th__entry_same_value(a[i], b[j]))
				put(ctx, b[j]);
			i++;
			j++;
		}
	}
	free(a);
	free(b);
	return 0;
}
