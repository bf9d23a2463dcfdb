/* SPDX-License-Identifier: Apache-2.0 */
/*
 * th_error.h: topohub's error codes.
 *
 * Every topohub function that can fail returns 0 (or a count) on success and a
 * negative number on failure: either -errno (-ENOMEM, -EINVAL, ...) or one of the
 * -TH_E* codes below for failures errno has no word for. errno itself is never
 * the channel. th_strerror() and th_errname() take either kind.
 *
 * The table is the single source of the codes, their names and their messages.
 * Codes are part of the plugin ABI: append only, never renumber.
 */
#ifndef TH_ERROR_H
#define TH_ERROR_H

#define TH_ERROR_BASE 4000

/*       name            value                 message */
#define TH_ERROR_TABLE(X)                                                                        \
	X(TH_ELAPPED,      TH_ERROR_BASE + 1,  "reader was overtaken by the writer; records were lost to it") \
	X(TH_EEVICTED,     TH_ERROR_BASE + 2,  "reader was evicted as a slow consumer")                  \
	X(TH_EFORMAT,      TH_ERROR_BASE + 3,  "shared-memory segment has an incompatible format")       \
	X(TH_ECLOSED,      TH_ERROR_BASE + 4,  "the writer closed the ring (hub stopped or restarted)")   \
	X(TH_ECORRUPT,     TH_ERROR_BASE + 5,  "data is inconsistent (corrupt record or header)")        \
	X(TH_ETOOBIG,      TH_ERROR_BASE + 6,  "record or batch is larger than the ring allows")         \
	X(TH_EBINLOG,      TH_ERROR_BASE + 7,  "malformed binlog event")                                 \
	X(TH_ECHECKSUM,    TH_ERROR_BASE + 8,  "binlog event checksum mismatch")                         \
	X(TH_EUNSUPPORTED, TH_ERROR_BASE + 9,  "unsupported binlog event or column type")                \
	X(TH_ETRUNCATED,   TH_ERROR_BASE + 10, "binlog ends in the middle of an event")                  \
	X(TH_ESERVER,      TH_ERROR_BASE + 11, "MySQL server is not configured as topohub needs")        \
	X(TH_EPROTO,       TH_ERROR_BASE + 12, "protocol error (malformed or unexpected message)")       \
	X(TH_ERESYNC,      TH_ERROR_BASE + 13, "continuity lost; a resync is needed")                    \
	X(TH_ENOTFOUND,    TH_ERROR_BASE + 14, "no such entry")                                          \
	X(TH_EVERSION,     TH_ERROR_BASE + 15, "incompatible ABI or protocol version")                   \
	X(TH_EMYSQL,       TH_ERROR_BASE + 16, "MySQL client error")                                     \
	X(TH_EDEADCONN,    TH_ERROR_BASE + 17, "connection is dead (no heartbeat before the deadline)")  \
	X(TH_EGTID,        TH_ERROR_BASE + 18, "malformed GTID or GTID set")                             \
	X(TH_ESCHEMA,      TH_ERROR_BASE + 19, "watched table lacks a configured column")

enum th_error {
#define TH__ERROR_ENUM(name, value, msg) name = (value),
	TH_ERROR_TABLE(TH__ERROR_ENUM)
#undef TH__ERROR_ENUM
};

/* Message for a result code (negative or positive, errno or TH_E*); never NULL. */
const char *th_strerror(int code);
/* Symbolic name ("TH_ELAPPED", "ENOMEM"); never NULL. */
const char *th_errname(int code);

#endif
