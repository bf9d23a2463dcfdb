/* SPDX-License-Identifier: Apache-2.0 */
/*
 * th_buf.h: a growable byte buffer, for building text (JSON, messages) and
 * binary messages. Not thread-safe; one owner at a time.
 *
 * Allocation failure is sticky: after it, every append is a no-op and
 * th_buf_failed() returns true, so a long run of appends needs one check.
 */
#ifndef TH_BUF_H
#define TH_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct th_buf {
	char *data;   /* NUL-terminated when len > 0 or after th_buf_cstr() */
	size_t len;
	size_t cap;
	bool oom;
};

#define TH_BUF_INIT { NULL, 0, 0, false }

void th_buf_free(struct th_buf *b);
void th_buf_reset(struct th_buf *b);             /* len = 0, keeps the memory */
bool th_buf_failed(const struct th_buf *b);
int th_buf_reserve(struct th_buf *b, size_t extra); /* 0 or -ENOMEM */
void th_buf_append(struct th_buf *b, const void *p, size_t n);
void th_buf_putc(struct th_buf *b, char c);
void th_buf_puts(struct th_buf *b, const char *s);
void th_buf_printf(struct th_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal, quotes included; the bytes must be valid UTF-8. */
void th_buf_json_string(struct th_buf *b, const void *p, size_t n);
/* Standard base64 (RFC 4648) with padding, no quotes. */
void th_buf_base64(struct th_buf *b, const void *p, size_t n);
/* True when p[0..n) is valid UTF-8 (no overlongs, no surrogates). */
bool th_utf8_valid(const void *p, size_t n);
/* Make *p (an array of *cap elements of elem bytes) hold at least need,
 * doubling from 16. 0, or -ENOMEM with *p and *cap unchanged. The one
 * growing array of the tree. */
int th_grow(void **p, size_t *cap, size_t need, size_t elem);
/* The same for a 32-bit capacity; -ENOMEM when need exceeds UINT32_MAX. */
int th_grow32(void **p, uint32_t *cap, size_t need, size_t elem);
/* The contents as a C string ("" when empty); valid until the next append. */
const char *th_buf_cstr(struct th_buf *b);

#endif
