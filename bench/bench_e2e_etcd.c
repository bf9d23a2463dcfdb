/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The etcd peer of the end-to-end benchmark: Debian's etcd-server on loopback,
 * spoken to through its v3 JSON gateway with libcurl (bench/README.md says why
 * this client).
 *
 *   writer   POST /v3/kv/put {"key": b64, "value": b64} on one kept-alive
 *            connection; the commit has returned when the response has.
 *   watcher  POST /v3/watch {"create_request": {"key", "range_end"}} and read
 *            the stream: one JSON object per line; the first says
 *            "created": true (the watch is in place), the others carry
 *            "events": [{"kv": {..., "value": b64}}, ...] in revision order.
 *            Every value is base64-decoded whole, as a real client would.
 */
#include "bench/bench_e2e.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/th_buf.h"

/* ---- base64 ------------------------------------------------------------------ */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(char *out, const uint8_t *in, size_t n)
{
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = 0;
	return o;
}

static int b64_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes n chars (padding allowed at the end) into out; returns the bytes, or -1. */
static long b64_decode(uint8_t *out, const char *in, size_t n)
{
	while (n && in[n - 1] == '=')
		n--;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)o;
}

static void curl_init_once(void)
{
	static int done;
	if (!done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		done = 1;
	}
}

/* ---- writer ------------------------------------------------------------------- */

struct e2e_etcd_writer {
	CURL *c;
	struct curl_slist *hdrs;
	char *url_put, *url_del;
	char *body;
	size_t body_cap;
	char resp[4096];
	size_t resp_len;
};

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
	struct e2e_etcd_writer *w = arg;
	size_t len = sz * n, room = sizeof w->resp - 1 - w->resp_len;
	memcpy(w->resp + w->resp_len, p, len < room ? len : room);
	w->resp_len += len < room ? len : room;
	w->resp[w->resp_len] = 0;
	return len;
}

int th__e2e_etcd_writer_new(const char *url, struct e2e_etcd_writer **out)
{
	curl_init_once();
	struct e2e_etcd_writer *w = calloc(1, sizeof *w);
	if (!w || !(w->c = curl_easy_init()))
		return -ENOMEM;
	if (asprintf(&w->url_put, "%s/v3/kv/put", url) < 0 || asprintf(&w->url_del, "%s/v3/kv/deleterange", url) < 0)
		return -ENOMEM;
	w->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(w->c, CURLOPT_HTTPHEADER, w->hdrs);
	curl_easy_setopt(w->c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(w->c, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(w->c, CURLOPT_NOSIGNAL, 1L);
	*out = w;
	return 0;
}

static int post(struct e2e_etcd_writer *w, const char *url, size_t body_len)
{
	w->resp_len = 0;
	w->resp[0] = 0;
	curl_easy_setopt(w->c, CURLOPT_URL, url);
	curl_easy_setopt(w->c, CURLOPT_POSTFIELDS, w->body);
	curl_easy_setopt(w->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	CURLcode rc = curl_easy_perform(w->c);
	long code = 0;
	curl_easy_getinfo(w->c, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK || code != 200) {
		fprintf(stderr, "etcd %s: %s (HTTP %ld) %.200s\n", url, curl_easy_strerror(rc), code, w->resp);
		return -EIO;
	}
	return 0;
}

static int body_room(struct e2e_etcd_writer *w, size_t need)
{
	if (need <= w->body_cap)
		return 0;
	char *b = realloc(w->body, need);
	if (!b)
		return -ENOMEM;
	w->body = b;
	w->body_cap = need;
	return 0;
}

int th__e2e_etcd_put(struct e2e_etcd_writer *w, const char *key, const char *val, size_t vlen)
{
	size_t klen = strlen(key);
	if (body_room(w, 64 + (klen + vlen) * 4 / 3 + 16))
		return -ENOMEM;
	size_t n = (size_t)sprintf(w->body, "{\"key\":\"");
	n += b64_encode(w->body + n, (const uint8_t *)key, klen);
	n += (size_t)sprintf(w->body + n, "\",\"value\":\"");
	n += b64_encode(w->body + n, (const uint8_t *)val, vlen);
	n += (size_t)sprintf(w->body + n, "\"}");
	return post(w, w->url_put, n);
}

/* Deletes every key under prefix (a byte-wise range). */
int th__e2e_etcd_delete_prefix(struct e2e_etcd_writer *w, const char *prefix)
{
	size_t plen = strlen(prefix);
	char end[512];
	if (!plen || plen >= sizeof end)
		return -EINVAL;
	memcpy(end, prefix, plen);
	end[plen - 1]++;
	if (body_room(w, 64 + plen * 3))
		return -ENOMEM;
	size_t n = (size_t)sprintf(w->body, "{\"key\":\"");
	n += b64_encode(w->body + n, (const uint8_t *)prefix, plen);
	n += (size_t)sprintf(w->body + n, "\",\"range_end\":\"");
	n += b64_encode(w->body + n, (const uint8_t *)end, plen);
	n += (size_t)sprintf(w->body + n, "\"}");
	return post(w, w->url_del, n);
}

void th__e2e_etcd_writer_free(struct e2e_etcd_writer *w)
{
	if (!w)
		return;
	curl_easy_cleanup(w->c);
	curl_slist_free_all(w->hdrs);
	free(w->url_put);
	free(w->url_del);
	free(w->body);
	free(w);
}

/* ---- watcher ------------------------------------------------------------------- */

struct watcher {
	struct e2e_sub *s;
	char *buf;          /* bytes of the line being received */
	size_t len, cap;
	uint8_t *val;       /* decoded value */
	size_t val_cap;
	bool failed;
};

static void on_line(struct watcher *w, char *line, size_t n)
{
	line[n] = 0;
	if (strstr(line, "\"created\":true"))
		th__e2e_ready(w->s);
	if (strstr(line, "\"canceled\":true") || strstr(line, "\"error\"")) {
		th__e2e_error(w->s, "etcd watch: %.200s", line);
		w->failed = true;
		return;
	}
	char *p = line;
	while ((p = strstr(p, "\"value\":\""))) {
		p += 9;
		char *q = strchr(p, '"');
		if (!q)
			break;
		size_t len = (size_t)(q - p);
		if (th_grow((void **)&w->val, &w->val_cap, len / 4 * 3 + 3, 1) != 0) {
			th__e2e_error(w->s, "etcd watch: out of memory for a value of %zu base64 bytes", len);
			w->failed = true;
			return;
		}
		long got = b64_decode(w->val, p, len);
		if (got < 0)
			th__e2e_error(w->s, "etcd watch: bad base64");
		else
			th__e2e_value(w->s, (const char *)w->val, (size_t)got);
		p = q + 1;
	}
}

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct watcher *w = arg;
	size_t len = sz * n;
	for (size_t i = 0; i < len;) {
		char *nl = memchr(p + i, '\n', len - i);
		size_t take = nl ? (size_t)(nl - (p + i)) : len - i;
		if (th_grow((void **)&w->buf, &w->cap, w->len + take + 1, 1) != 0) {
			th__e2e_error(w->s, "etcd watch: out of memory for a line of %zu bytes", w->len + take + 1);
			w->failed = true;
			return 0; /* curl ends the transfer */
		}
		memcpy(w->buf + w->len, p + i, take);
		w->len += take;
		i += take;
		if (nl) {
			on_line(w, w->buf, w->len);
			w->len = 0;
			i++;
		}
	}
	return len;
}

int th__e2e_sub_etcd(struct e2e_sub *s, const struct e2e_sub_opts *o)
{
	if (!o->etcd) {
		fprintf(stderr, "e2e sub etcd: --etcd URL is required\n");
		return 2;
	}
	curl_init_once();
	struct watcher w = { .s = s };
	char url[512], key[600], end[600], body[2048];
	snprintf(url, sizeof url, "%s/v3/watch", o->etcd);
	/* The range [prefix/, prefix0): every key under the prefix on a component boundary. */
	int kn = snprintf(key, sizeof key, "%.*s/", (int)s->prefix_len, s->prefix);
	memcpy(end, key, (size_t)kn);
	end[kn - 1] = '0';
	char kb[900], eb[900];
	b64_encode(kb, (const uint8_t *)key, (size_t)kn);
	b64_encode(eb, (const uint8_t *)end, (size_t)kn);
	snprintf(body, sizeof body, "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\"}}", kb, eb);

	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLM *m = curl_multi_init();
	curl_multi_add_handle(m, c);
	int running = 1;
	while (running && !w.failed && !th__e2e_stopping(s)) {
		curl_multi_perform(m, &running);
		if (running)
			curl_multi_poll(m, NULL, 0, 50, NULL);
	}
	int code = 0;
	if (!running && !th__e2e_stopping(s)) {
		th__e2e_error(s, "etcd watch stream ended");
		code = 1;
	}
	curl_multi_remove_handle(m, c);
	curl_easy_cleanup(c);
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	free(w.buf);
	free(w.val);
	return code;
}
