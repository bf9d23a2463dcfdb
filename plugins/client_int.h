/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client_int.h: what the files of libtopohub.so share with each other (and
 * with their unit tests). Nothing here crosses the ABI; every name is th__.
 *
 * mirror.c  keys and prefixes; the local copy of entries (struct th__mirror)
 * client.c  connections, the watch registry, dispatch, resync, the API table
 */
#ifndef TH_CLIENT_INT_H
#define TH_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


/* ---- keys and prefixes (mirror.c) ----------------------------------------- */

/* Length of path without its trailing '/'s ("/a/b/" -> "/a/b", "/" -> ""). */
uint32_t th__path_trim(const char *path, uint32_t len);

/* True when key lies under prefix on a path-component boundary: prefix is
 * empty, equal to key, or key continues with '/' right after it. prefix must
 * be trimmed (th__path_trim). */
bool th__prefix_matches(const char *prefix, uint32_t plen, const char *key, uint32_t klen);

/* ---- the local copy (mirror.c) -------------------------------------------- */

/* One entry: the newest state of (table, key) the library knows. Immutable
 * once in a mirror except through th__mirror_apply(), which replaces it. */
struct th__entry {
	uint64_t revision;   /* of its last change */
	int64_t version;
	uint64_t commit_us;  /* 0 when it came from a snapshot */
	uint32_t table;
	uint32_t flags;      /* TH_CHANGE_F_* */
	uint32_t key_len;
	uint32_t value_len;
	uint32_t gtid_len;
	char *key;           /* key_len bytes + NUL, inside this allocation */
	char *value;         /* value_len bytes + NUL, inside this allocation */
	char *gtid;          /* gtid_len bytes + NUL, inside this allocation */
};

/* Builds an entry (one allocation). NULL on allocation failure. */
struct th__entry *th__entry_new(uint32_t table, const char *key, uint32_t key_len, const char *value,
				uint32_t value_len, uint32_t flags, int64_t version, uint64_t revision,
				uint64_t commit_us, const char *gtid, uint32_t gtid_len);
/* Same value, flags and version: a watcher would see no difference. */
bool th__entry_same_value(const struct th__entry *a, const struct th__entry *b);

/* A set of entries keyed by (table, key), listed in key order. One owner
 * thread. A hash table; { 0 } is an empty one. */
struct th__slot {
	struct th__entry *e; /* NULL: empty */
	uint64_t hash;
};

struct th__mirror {
	struct th__slot *slots;
	size_t mask; /* capacity - 1 */
	uint64_t count;
};

struct th__entry *th__mirror_find(const struct th__mirror *m, uint32_t table, const char *key,
				  uint32_t key_len);
/* Where the entry of (table, key) is held, or NULL: replacing *slot with an
 * entry of the same key (freeing the old one) updates the mirror without a
 * second lookup. Valid until the next insert or removal. */
struct th__entry **th__mirror_slot(const struct th__mirror *m, uint32_t table, const char *key,
				   uint32_t key_len);
/* Inserts e, replacing (and freeing) an entry of the same key. 0 or -ENOMEM
 * (e is then freed too: the mirror is unchanged). */
int th__mirror_put(struct th__mirror *m, struct th__entry *e);
/* Inserts e only if its key is absent or holds an older revision; otherwise
 * frees e. Returns 1 (inserted), 0 (kept the newer one), -ENOMEM. */
int th__mirror_put_newer(struct th__mirror *m, struct th__entry *e);
/* Removes and frees the entry of (table, key); true when there was one. */
bool th__mirror_remove(struct th__mirror *m, uint32_t table, const char *key, uint32_t key_len);
/* Removes the entry without freeing it; NULL when absent. */
struct th__entry *th__mirror_take(struct th__mirror *m, uint32_t table, const char *key, uint32_t key_len);

/*
 * The stitching rule of protocol.h for one change: applied unless the key
 * holds a newer revision (equal: the same transaction, replayed in order). On a put, e is consumed
 * (inserted, or freed when stale); a delete passes e = NULL. Returns 1 when the
 * mirror changed (deliver it), 0 when the change was stale or a delete of an
 * absent key (drop it), -ENOMEM (mirror unchanged).
 */
int th__mirror_apply(struct th__mirror *m, uint32_t table, const char *key, uint32_t key_len,
		     uint64_t revision, struct th__entry *e);

/*
 * The stitching rule (protocol.h): a ring change of a key is already known
 * when the entry held for that key has its revision or a later one. The hub
 * publishes one change per key per transaction, so an equal revision is this
 * very change (a snapshot that raced the publisher already had it).
 */
static inline bool th__change_is_known(const struct th__entry *held, uint64_t revision)
{
	return held && held->revision >= revision;
}

/* The entries of table under prefix (trimmed), in key order: an array that
 * the caller frees (not the entries, which stay in the mirror). all_tables
 * ignores table and prefix. -ENOMEM, or the count in *n. */
int th__mirror_list(const struct th__mirror *m, bool all_tables, uint32_t table, const char *prefix,
		    uint32_t plen, bool exact, struct th__entry ***out, size_t *n);

/* Moves every entry of table (or of every table when table == UINT32_MAX)
 * from src to dst (dst must hold none of them), or frees them when dst is
 * NULL. -ENOMEM leaves the rest in src. */
int th__mirror_move_table(struct th__mirror *src, struct th__mirror *dst, uint32_t table);
void th__mirror_clear(struct th__mirror *m);

/*
 * What a watcher of (table, path) must be told to go from old to new: calls
 * put(ctx, e) for each entry of new under the path that is absent from old or
 * differs in value, and del(ctx, e_old) for each entry of old under the path
 * that new lacks. Order: key order, puts and deletes interleaved. exact: the
 * path is one key, not a prefix. -ENOMEM, or 0.
 */
int th__mirror_diff(const struct th__mirror *old, const struct th__mirror *new_, uint32_t table,
		    const char *path, uint32_t plen, bool exact,
		    void (*put)(void *ctx, const struct th__entry *e),
		    void (*del)(void *ctx, const struct th__entry *e), void *ctx);

#endif
