/*
 * hub_client.h: a small blocking client of the hub's control socket
 * (protocol.h), for topohubctl and tests. Not the client library
 * (plugins/): no watch registry, no dispatch, no resync logic.
 *
 * One connection (struct th_hubc) carries one request at a time: send, then
 * wait for the reply with the same request id. Replies' descriptors
 * (SCM_RIGHTS) are received close-on-exec and handed to the caller.
 *
 * Errors: 0 or a negative code: -errno from the socket calls, -ETIMEDOUT,
 * -TH_EPROTO (a reply that does not parse), or the hub's own code from an
 * ERROR reply (its text in th_hubc_error()).
 *
 * Threads: a connection is used by one thread at a time.
 */
#ifndef TH_HUB_CLIENT_H
#define TH_HUB_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "ring.h"

struct th_hubc;

/* A raw reply. body is malloc'ed (free with th_hubc_reply_free, which also
 * closes the descriptors the caller did not take: set them to -1 to keep). */
struct th_hubc_reply {
	uint16_t type;
	uint32_t request_id;
	uint8_t *body;
	size_t len;
	int fds[4];
	int nfds;
};

/* Connects to the socket at path. 0 and *out, or -errno. */
int th_hubc_connect(const char *path, struct th_hubc **out);
/* Closes the connection (an attached reader's slot is reclaimed by the hub). */
void th_hubc_close(struct th_hubc *c);
int th_hubc_fd(const struct th_hubc *c);
/* Text of the last ERROR reply or failure ("" when none). */
const char *th_hubc_error(const struct th_hubc *c);

/*
 * Sends one request (header made here, body of len bytes) and waits up to
 * timeout_ms (< 0: forever) for its reply. An ERROR reply is returned as its
 * code (the reply is freed); a reply of another type fills *rep.
 */
int th_hubc_call(struct th_hubc *c, uint16_t type, const void *body, size_t len, struct th_hubc_reply *rep,
		 int timeout_ms);
void th_hubc_reply_free(struct th_hubc_reply *rep);

/* ATTACH: on success *fds holds the three descriptors (the caller's). */
int th_hubc_attach(struct th_hubc *c, uint64_t timeout_ns, const char *name, struct th_msg_attach_reply *out,
		   struct th_ring_reader_fds *fds);

/*
 * SNAPSHOT (type TH_MSG_SNAPSHOT, key = prefix) or GET (TH_MSG_GET): the
 * reply and the entries, mapped read-only at *map (*map_len bytes; unmap with
 * munmap when *map_len > 0). Walk them with th_hubc_snap_next().
 */
int th_hubc_snapshot(struct th_hubc *c, uint16_t type, uint32_t table, const void *key, uint32_t key_len,
		     struct th_msg_snapshot_reply *out, const uint8_t **map, size_t *map_len);

/* The next entry at *off in a snapshot mapping: 1 with e/key/value set and
 * *off advanced, 0 at the end, -TH_EPROTO when malformed. */
int th_hubc_snap_next(const uint8_t *map, size_t len, size_t *off, struct th_snap_entry *e, const uint8_t **key,
		      const uint8_t **value);

/* SYNC: the revision at which the hub published past gtid. */
int th_hubc_sync(struct th_hubc *c, const char *gtid, uint64_t timeout_ns, uint64_t *revision);

/* STATS / READERS / TABLES: the JSON text, malloc'ed and NUL-terminated. */
int th_hubc_json(struct th_hubc *c, uint16_t type, char **json);

#endif
