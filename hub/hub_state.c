/* SPDX-License-Identifier: Apache-2.0 */
/* The hub's state table; see hub_state.h. */
#include "hub/hub_state.h"
#include "common/th_tsan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct th_state {
	struct cds_lfht *ht;
	th_atomic_u64 count;   /* written by the publisher only; relaxed readers (stats) */
};

struct lookup_key {
	uint32_t table;
	uint32_t len;
	const void *key;
};

/* FNV-1a 64, table index folded in first: keys are short paths. */
static unsigned long hash_key(uint32_t table, const void *key, uint32_t len)
{
	uint64_t h = 1469598103934665603ull ^ table;
	h *= 1099511628211ull;
	const uint8_t *p = key;
	for (uint32_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return (unsigned long)(h ^ (h >> 29));
}

static int match(struct cds_lfht_node *node, const void *arg)
{
	const struct th_state_entry *e = caa_container_of(node, struct th_state_entry, node);
	const struct lookup_key *k = arg;
	return e->table == k->table && e->key_len == k->len && memcmp(e->bytes, k->key, k->len) == 0;
}

static void free_entry_rcu(struct rcu_head *head)
{
	struct th_state_entry *e = caa_container_of(head, struct th_state_entry, rcu);
	TH_TSAN_ACQUIRE(e); /* pairs with retire(): the publisher's writes happen before the free */
	free(e);
}

/* Free e after a grace period. call_rcu hands e to liburcu's thread through
 * uninstrumented atomics: say so to TSan, or every free is a (suppressed)
 * race report with the publisher's writes of e, which TSan matches against
 * its suppressions at a cost that made a hub under TSan take minutes to stop
 * after 100,000 replaced values. */
static void retire(struct th_state_entry *e)
{
	TH_TSAN_RELEASE(e);
	call_rcu(&e->rcu, free_entry_rcu);
}

int th_state_new(struct th_state **out)
{
	struct th_state *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->ht = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (!s->ht) {
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void th_state_free(struct th_state *s)
{
	if (!s)
		return;
	/* Pending call_rcu frees run first; then nobody else uses the table. */
	rcu_barrier();
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	rcu_read_lock();
	cds_lfht_first(s->ht, &it);
	while ((n = cds_lfht_iter_get_node(&it)) != NULL) {
		cds_lfht_next(s->ht, &it);
		if (cds_lfht_del(s->ht, n) == 0)
			free(caa_container_of(n, struct th_state_entry, node));
	}
	rcu_read_unlock();
	cds_lfht_destroy(s->ht, NULL);
	free(s);
}

static bool same(const struct th_state_entry *e, const void *value, uint32_t value_len, uint32_t flags,
		 int64_t version)
{
	return e->value_len == value_len && e->flags == flags && e->version == version &&
	       memcmp(th_state_value(e), value, value_len) == 0;
}

int th_state_put(struct th_state *s, uint32_t table, const void *key, uint32_t key_len, const void *value,
		 uint32_t value_len, uint32_t flags, int64_t version, uint64_t revision, uint64_t mark,
		 bool *changed)
{
	struct lookup_key k = { table, key_len, key };
	unsigned long hash = hash_key(table, key, key_len);
	if (changed)
		*changed = true;
	if (mark) {
		struct cds_lfht_iter it;
		cds_lfht_lookup(s->ht, hash, match, &k, &it);
		struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
		if (n) {
			struct th_state_entry *old = caa_container_of(n, struct th_state_entry, node);
			if (same(old, value, value_len, flags, version)) {
				/* Only the publisher reads or writes mark. */
				old->mark = mark;
				if (changed)
					*changed = false;
				return 0;
			}
		}
	}
	struct th_state_entry *e = malloc(sizeof *e + (size_t)key_len + value_len);
	if (!e)
		return -ENOMEM;
	cds_lfht_node_init(&e->node);
	e->hash = hash;
	e->revision = revision;
	e->version = version;
	e->mark = mark;
	e->table = table;
	e->flags = flags;
	e->key_len = key_len;
	e->value_len = value_len;
	memcpy(e->bytes, key, key_len);
	if (value_len)
		memcpy(e->bytes + key_len, value, value_len);
	/* add_replace publishes e with rcu_assign_pointer semantics: its fields
	 * above are visible to any reader that finds it. */
	TH_TSAN_RELEASE(e); /* cds_lfht_add_replace publishes e with rcu_assign_pointer */
	struct cds_lfht_node *old = cds_lfht_add_replace(s->ht, hash, match, &k, &e->node);
	if (old)
		retire(caa_container_of(old, struct th_state_entry, node));
	else
		th_store_relaxed(&s->count, th_load_relaxed(&s->count) + 1);
	return 0;
}

int th_state_delete(struct th_state *s, uint32_t table, const void *key, uint32_t key_len)
{
	struct lookup_key k = { table, key_len, key };
	struct cds_lfht_iter it;
	cds_lfht_lookup(s->ht, hash_key(table, key, key_len), match, &k, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (!n || cds_lfht_del(s->ht, n) != 0)
		return 0;
	retire(caa_container_of(n, struct th_state_entry, node));
	th_store_relaxed(&s->count, th_load_relaxed(&s->count) - 1);
	return 1;
}

uint64_t th_state_sweep(struct th_state *s, uint64_t mark)
{
	uint64_t n = 0;
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	cds_lfht_for_each(s->ht, &it, node) {
		struct th_state_entry *e = caa_container_of(node, struct th_state_entry, node);
		if (e->mark != mark && cds_lfht_del(s->ht, node) == 0) {
			retire(e);
			n++;
		}
	}
	th_store_relaxed(&s->count, th_load_relaxed(&s->count) - n);
	return n;
}

/* A looked-up node's entry; the acquire pairs with the TH_TSAN_RELEASE before
 * cds_lfht_add_replace in th_state_put (liburcu's own pairing is invisible to TSan). */
static const struct th_state_entry *entry_of(struct cds_lfht_node *n)
{
	if (!n)
		return NULL;
	const struct th_state_entry *e = caa_container_of(n, struct th_state_entry, node);
	TH_TSAN_ACQUIRE(e);
	return e;
}

const struct th_state_entry *th_state_get(struct th_state *s, uint32_t table, const void *key, uint32_t key_len)
{
	struct lookup_key k = { table, key_len, key };
	struct cds_lfht_iter it;
	cds_lfht_lookup(s->ht, hash_key(table, key, key_len), match, &k, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	return entry_of(n);
}

const struct th_state_entry *th_state_first(struct th_state *s, struct cds_lfht_iter *iter)
{
	cds_lfht_first(s->ht, iter);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(iter);
	return entry_of(n);
}

const struct th_state_entry *th_state_next(struct th_state *s, struct cds_lfht_iter *iter)
{
	cds_lfht_next(s->ht, iter);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(iter);
	return entry_of(n);
}

uint64_t th_state_count(const struct th_state *s)
{
	return th_load_relaxed(&s->count);
}
