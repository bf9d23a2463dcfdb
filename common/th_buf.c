/* SPDX-License-Identifier: Apache-2.0 */
#include "common/th_buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void th_buf_free(struct th_buf *b)
{
	free(b->data);
	*b = (struct th_buf)TH_BUF_INIT;
}

void th_buf_reset(struct th_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

bool th_buf_failed(const struct th_buf *b)
{
	return b->oom;
}

int th_buf_reserve(struct th_buf *b, size_t extra)
{
	if (b->oom)
		return -ENOMEM;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return -ENOMEM;
		}
		cap *= 2;
	}
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return -ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

void th_buf_append(struct th_buf *b, const void *p, size_t n)
{
	if (th_buf_reserve(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void th_buf_putc(struct th_buf *b, char c)
{
	th_buf_append(b, &c, 1);
}

void th_buf_puts(struct th_buf *b, const char *s)
{
	th_buf_append(b, s, strlen(s));
}

void th_buf_printf(struct th_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char tmp[256];
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof tmp) {
		th_buf_append(b, tmp, (size_t)n);
		return;
	}
	if (th_buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void th_buf_json_string(struct th_buf *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	th_buf_putc(b, '"');
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		th_buf_append(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': th_buf_puts(b, "\\\""); break;
		case '\\': th_buf_puts(b, "\\\\"); break;
		case '\n': th_buf_puts(b, "\\n"); break;
		case '\r': th_buf_puts(b, "\\r"); break;
		case '\t': th_buf_puts(b, "\\t"); break;
		case '\b': th_buf_puts(b, "\\b"); break;
		case '\f': th_buf_puts(b, "\\f"); break;
		default: th_buf_printf(b, "\\u%04x", c); break;
		}
	}
	th_buf_append(b, s + run, n - run);
	th_buf_putc(b, '"');
}

void th_buf_base64(struct th_buf *b, const void *p, size_t n)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = p;
	if (th_buf_reserve(b, (n + 2) / 3 * 4))
		return;
	char *o = b->data + b->len;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = '=';
	}
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
}

bool th_utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		static const uint32_t min_for_len[5] = { 0, 0, 0x80, 0x800, 0x10000 };
		if (cp < min_for_len[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

const char *th_buf_cstr(struct th_buf *b)
{
	return b->data && !b->oom ? b->data : "";
}

int th_grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 16;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	if (elem && n > SIZE_MAX / elem)
		return -ENOMEM;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

int th_grow32(void **p, uint32_t *cap, size_t need, size_t elem)
{
	if (need > UINT32_MAX)
		return -ENOMEM;
	size_t c = *cap;
	int rc = th_grow(p, &c, need, elem);
	if (rc == 0)
		*cap = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
	return rc;
}
