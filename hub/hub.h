/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub.h: topohubd, the one process per host that reads the binlog and feeds
 * the ring. The contract with clients is protocol.h; this header is the
 * daemon's own (topohubd_main.c runs it; tests run the binary).
 *
 * Threads:
 *   - main:      configuration, start-up, signals (signalfd), orderly stop.
 *   - publisher: the only writer of the ring and of the state table. Connects
 *                to the sources (in order, with capped exponential backoff),
 *                validates the server, loads the tables and the binlog
 *                position consistently, streams the binlog from that position,
 *                and per committed transaction: (a) updates the state table,
 *                (b) publishes one ring batch, (c) advances the published
 *                revision and position. It never waits for a reader or for a
 *                control thread (no lock it shares with them is held on its
 *                path; position hand-off is an RCU pointer).
 *   - control:   one epoll loop: accepts connections on the control socket
 *                (SO_PEERCRED checked), serves ATTACH, SNAPSHOT, GET, SYNC,
 *                STATS, READERS, TABLES, REJOIN; a closed connection removes
 *                its reader at once.
 *   - monitor:   evicts a reader whose oldest unread record is older than
 *                its timeout (or that was lapped); logs it with the reader's
 *                pid. It wakes at the earliest deadline a reader can have,
 *                at least monitor_interval apart (hub_monitor.c).
 *
 * Stopping (SIGTERM/SIGINT): the publisher's MySQL connections are shut down
 * (so a blocking read returns at once), the threads are joined, client
 * connections and the socket file are closed and removed, and the ring is
 * closed (readers get -TH_ECLOSED once they have read everything); the ring
 * is a memfd: nothing to unlink. A restarted hub makes a new ring generation
 * and starts its revisions at max(clock in microseconds, last + 1).
 */
#ifndef TH_HUB_H
#define TH_HUB_H

#include "hub/hub_config.h"

/* Exit statuses of topohubd. */
enum th_hub_exit {
	TH_HUB_EXIT_OK = 0,          /* stopped by a signal */
	TH_HUB_EXIT_FAILURE = 1,     /* could not run (socket, memory, ...) */
	TH_HUB_EXIT_USAGE = 2,       /* bad configuration or flags */
	TH_HUB_EXIT_SERVER = 3,      /* the server is not configured as topohub needs */
};

/*
 * Run the hub until SIGTERM/SIGINT; returns an exit status (enum th_hub_exit).
 * Call from the main thread with SIGTERM, SIGINT, SIGHUP blocked and SIGPIPE
 * ignored (topohubd_main.c does), before any other thread exists.
 */
int th_hub_run(const struct th_hub_config *cfg);

#endif
