/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_state.h: the current value of every watched row, in a liburcu
 * lock-free hash table (cds_lfht), keyed by (table index, key bytes).
 *
 * One writer (the publisher thread) changes entries; any number of reader
 * threads (control threads) look them up and walk them under
 * rcu_read_lock(), without locks and without ever waiting for the writer. An
 * entry is immutable once published: a change replaces the whole entry
 * (cds_lfht_add_replace, so a concurrent lookup sees the old or the new one,
 * never neither) and the old one is freed by call_rcu() after a grace period.
 *
 * Who may call what:
 *
 *   | call                                    | from                               |
 *   |-----------------------------------------|------------------------------------|
 *   | th_state_put, th_state_delete,          | the publisher thread only, inside  |
 *   |   th_state_mark, th_state_sweep         |   rcu_read_lock()                  |
 *   | th_state_get, th_state_first/next       | any registered RCU thread, inside  |
 *   |                                         |   rcu_read_lock(); results valid   |
 *   |                                         |   until rcu_read_unlock()          |
 *   | th_state_count                          | any thread                         |
 *   | th_state_new / th_state_free            | once; free after every other call  |
 *   |                                         |   ended (it runs rcu_barrier())    |
 *
 * Threads that call anything here must be registered with liburcu
 * (rcu_register_thread) and use the default flavour (urcu.h).
 */
#ifndef TH_HUB_STATE_H
#define TH_HUB_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urcu.h>
#include <urcu/rculfhash.h>

#include "common/th_atomic.h"

/* One row's current value. Read-only once visible; key then value in bytes[]. */
struct th_state_entry {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	unsigned long hash;
	uint64_t revision;     /* of its last change */
	int64_t version;
	uint64_t mark;         /* publisher-only: the reload that last saw it */
	uint32_t table;
	uint32_t flags;        /* TH_CHANGE_F_* */
	uint32_t key_len;
	uint32_t value_len;
	uint8_t bytes[];
};

static inline const uint8_t *th_state_key(const struct th_state_entry *e)
{
	return e->bytes;
}

static inline const uint8_t *th_state_value(const struct th_state_entry *e)
{
	return e->bytes + e->key_len;
}

struct th_state;

/* 0 and *out, or -ENOMEM. */
int th_state_new(struct th_state **out);
/* Frees every entry (rcu_barrier() first, for pending call_rcu frees). NULL is fine. */
void th_state_free(struct th_state *s);

/*
 * Put (insert or replace) an entry. When mark is non-zero and an equal entry
 * (same value, flags and version) exists, it is kept (its revision too) and
 * only marked; *changed (may be NULL) says whether the table changed.
 * 0 or -ENOMEM (nothing changed). Publisher, in rcu_read_lock().
 */
int th_state_put(struct th_state *s, uint32_t table, const void *key, uint32_t key_len, const void *value,
		 uint32_t value_len, uint32_t flags, int64_t version, uint64_t revision, uint64_t mark,
		 bool *changed);

/* Delete; 1 when it existed, 0 when not. Publisher, in rcu_read_lock(). */
int th_state_delete(struct th_state *s, uint32_t table, const void *key, uint32_t key_len);

/* Delete every entry whose mark is not `mark` (rows a reload did not see); returns how many. */
uint64_t th_state_sweep(struct th_state *s, uint64_t mark);

/* Lookup; NULL when absent. In rcu_read_lock(). */
const struct th_state_entry *th_state_get(struct th_state *s, uint32_t table, const void *key, uint32_t key_len);

/* Walk every entry (any order). In rcu_read_lock(); iter is the caller's. */
const struct th_state_entry *th_state_first(struct th_state *s, struct cds_lfht_iter *iter);
const struct th_state_entry *th_state_next(struct th_state *s, struct cds_lfht_iter *iter);

/* Entries now (relaxed; exact when read by the publisher). Any thread. */
uint64_t th_state_count(const struct th_state *s);

#endif
