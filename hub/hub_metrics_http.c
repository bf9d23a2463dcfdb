/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The optional Prometheus endpoint (metrics_listen): GET /metrics on a
 * loopback address. libmicrohttpd parses HTTP and runs the connections on a
 * thread of its own; the handler is a client of the hub like topohubctl
 * metrics (the control socket, STATS then READERS) and formats with
 * protocol/metrics.h, so that the two never differ and this thread touches
 * no hub state. Off unless configured; hub_config.c accepts only loopback
 * addresses, since the endpoint has no authentication. Limits against a
 * local peer that misbehaves: 16 connections, 5 s per connection, 16 KiB of
 * request memory; a request is never read beyond its headers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "common/th_buf.h"
#include "common/th_error.h"
#include "hub/hub_internal.h"
#include "hub/hub_log.h"
#include "protocol/metrics.h"
#include "protocol/protocol.h"

static struct th_log_limit lim_http = TH_LOG_LIMIT_INIT(1000, 5);

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body, size_t len, bool owned)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, owned ? MHD_RESPMEM_MUST_FREE
										   : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				status == MHD_HTTP_OK || status == MHD_HTTP_SERVICE_UNAVAILABLE
					? "text/plain; version=0.0.4; charset=utf-8"
					: "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* STATS and READERS from the hub's own socket, as metrics.h text; NULL when
 * the hub does not answer. */
static char *scrape(const struct th_hub *h, size_t *len)
{
	struct th_ctl *c;
	char *stats = NULL, *readers = NULL;
	int rc = th_ctl_connect(h->cfg->socket_path, &c);
	if (rc == 0) {
		rc = th_ctl_json(c, TH_MSG_STATS, &stats);
		if (rc == 0)
			rc = th_ctl_json(c, TH_MSG_READERS, &readers);
		if (rc < 0)
			th_log_limited(&lim_http, TH_LOG_WARN, "metrics_listen: asking the control socket: %s: %s",
				       th_strerror(rc), th_ctl_error(c));
		th_ctl_close(c);
	} else {
		th_log_limited(&lim_http, TH_LOG_WARN, "metrics_listen: control socket %s: %s", h->cfg->socket_path,
			       th_strerror(rc));
	}
	char *text = NULL;
	if (rc == 0) {
		struct th_buf out = TH_BUF_INIT;
		th_metrics_text(stats, readers, &out);
		if (!th_buf_failed(&out)) {
			text = (char *)out.data;
			*len = out.len;
		} else {
			th_buf_free(&out);
		}
	}
	free(stats);
	free(readers);
	return text;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static char not_found[] = "not found: the metrics are at /metrics\n";
	static char not_allowed[] = "only GET and HEAD\n";
	static char down[] = TH_METRICS_DOWN;
	(void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, sizeof not_allowed - 1, false);
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, not_found, sizeof not_found - 1, false);
	size_t len = 0;
	char *text = scrape(cls, &len);
	if (!text)
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, down, sizeof down - 1, false);
	return reply(conn, MHD_HTTP_OK, text, len, true);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	th_log_limited(&lim_http, TH_LOG_WARN, "metrics_listen: %s", line);
}

int th__hub_metrics_http_start(struct th_hub *h, void **out)
{
	*out = NULL;
	const struct th_hub_config *c = h->cfg;
	if (!c->metrics_listen || !*c->metrics_listen)
		return 0;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (c->metrics_addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, handle, h,
						MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&c->metrics_addr,
						MHD_OPTION_CONNECTION_LIMIT, 16u,
						MHD_OPTION_CONNECTION_TIMEOUT, 5u,
						MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
						MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
						MHD_OPTION_END);
	if (!d)
		return errno ? -errno : -EADDRNOTAVAIL;
	th_log_info("metrics: http://%s/metrics", c->metrics_listen);
	*out = d;
	return 0;
}

void th__hub_metrics_http_stop(void *d)
{
	if (d)
		MHD_stop_daemon(d);
}
