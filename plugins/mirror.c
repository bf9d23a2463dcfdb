/* SPDX-License-Identifier: Apache-2.0 */
/*
 * state.c: path-component matching and the library's local copy of entries.
 *
 * The local copy (a "mirror") is owned by the dispatching thread only, so it
 * needs no synchronisation. It is a hash table (open addressing, linear
 * probing): every change a subscriber receives looks its key up, and on a
 * woken subscriber's cold cache a tree walk cost a miss per level (a sixth of
 * its CPU per delivery with 100 keys). The walks in key order (a recursive
 * watch's first listing, resync diffs) are rare: they collect and sort.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/th_buf.h"
#include "plugins/client_int.h"

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

static int entry_pcmp(const void *pa, const void *pb)
{
	return entry_cmp(*(struct th__entry *const *)pa, *(struct th__entry *const *)pb);
}

static uint64_t key_hash(uint32_t table, const char *key, uint32_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)table << 32 | len);
	for (; len >= 8; key += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, key, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 29;
	}
	uint64_t w = 0;
	memcpy(&w, key, len);
	h = (h ^ w) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static size_t find_pos(const struct th__mirror *m, uint64_t h, uint32_t table, const char *key, uint32_t key_len)
{
	if (!m->slots)
		return SIZE_MAX;
	for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
		const struct th__slot *s = &m->slots[i];
		if (!s->e)
			return SIZE_MAX;
		if (s->hash == h && s->e->table == table && s->e->key_len == key_len &&
		    (key_len == 0 || memcmp(s->e->key, key, key_len) == 0))
			return i;
	}
}

static void place(struct th__slot *slots, size_t mask, struct th__entry *e, uint64_t h)
{
	size_t i = h & mask;
	while (slots[i].e)
		i = (i + 1) & mask;
	slots[i] = (struct th__slot){ e, h };
}

/* Room for one more entry at a load of at most one half. */
static int reserve_one(struct th__mirror *m)
{
	size_t cap = m->slots ? m->mask + 1 : 0;
	if ((m->count + 1) * 2 <= cap)
		return 0;
	size_t ncap = cap ? cap * 2 : 16;
	struct th__slot *ns = calloc(ncap, sizeof *ns);
	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++)
		if (m->slots[i].e)
			place(ns, ncap - 1, m->slots[i].e, m->slots[i].hash);
	free(m->slots);
	m->slots = ns;
	m->mask = ncap - 1;
	return 0;
}

/* Empty slot i, shifting back the entries of its probe run that may move
 * (linear probing without tombstones). */
static void remove_at(struct th__mirror *m, size_t i)
{
	for (size_t j = i;;) {
		j = (j + 1) & m->mask;
		if (!m->slots[j].e)
			break;
		size_t home = m->slots[j].hash & m->mask;
		/* The entry at j may fill i unless its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].e = NULL;
	m->count--;
}

struct th__entry **th__mirror_slot(const struct th__mirror *m, uint32_t table, const char *key,
				   uint32_t key_len)
{
	size_t i = find_pos(m, key_hash(table, key, key_len), table, key, key_len);
	return i == SIZE_MAX ? NULL : &m->slots[i].e;
}

struct th__entry *th__mirror_find(const struct th__mirror *m, uint32_t table, const char *key,
				  uint32_t key_len)
{
	struct th__entry **slot = th__mirror_slot(m, table, key, key_len);
	return slot ? *slot : NULL;
}

int th__mirror_put(struct th__mirror *m, struct th__entry *e)
{
	uint64_t h = key_hash(e->table, e->key, e->key_len);
	size_t i = find_pos(m, h, e->table, e->key, e->key_len);
	if (i != SIZE_MAX) {
		free(m->slots[i].e);
		m->slots[i].e = e;
		return 0;
	}
	if (reserve_one(m)) {
		free(e);
		return -ENOMEM;
	}
	place(m->slots, m->mask, e, h);
	m->count++;
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
	size_t i = find_pos(m, key_hash(table, key, key_len), table, key, key_len);
	if (i == SIZE_MAX)
		return NULL;
	struct th__entry *e = m->slots[i].e;
	remove_at(m, i);
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

static int list_entries(const struct th__mirror *m, bool all_tables, uint32_t table, const char *prefix,
			uint32_t plen, bool exact, struct th__entry ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (exact) {
		/* One key: a lookup, not a walk. */
		struct th__entry *e = th__mirror_find(m, table, prefix, plen);
		if (!e)
			return 0;
		*out = malloc(sizeof **out);
		if (!*out)
			return -ENOMEM;
		(*out)[0] = e;
		*n = 1;
		return 0;
	}
	struct th__entry **v = NULL;
	size_t cnt = 0, cap = 0;
	for (size_t i = 0; m->slots && i <= m->mask; i++) {
		struct th__entry *e = m->slots[i].e;
		if (!e || (!all_tables && (e->table != table || !th__prefix_matches(prefix, plen, e->key, e->key_len))))
			continue;
		if (th_grow((void **)&v, &cap, cnt + 1, sizeof *v)) {
			free(v);
			return -ENOMEM;
		}
		v[cnt++] = e;
	}
	if (cnt > 1)
		qsort(v, cnt, sizeof *v, entry_pcmp);
	*out = v;
	*n = cnt;
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

void th__mirror_clear(struct th__mirror *m)
{
	for (size_t i = 0; m->slots && i <= m->mask; i++)
		free(m->slots[i].e);
	free(m->slots);
	*m = (struct th__mirror){ 0 };
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
