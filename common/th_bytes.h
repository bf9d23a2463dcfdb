/* SPDX-License-Identifier: Apache-2.0 */
/*
 * th_bytes.h: integers from and to byte strings (binlog events, protocol
 * values), one copy for the whole tree. No unaligned loads, no signed shifts,
 * no implementation-defined casts: every byte is assembled explicitly.
 */
#ifndef TH_BYTES_H
#define TH_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* n (0..8) bytes, least significant first. */
static inline uint64_t th_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i > 0; i--)
		v = v << 8 | p[i - 1];
	return v;
}

/* n (0..8) bytes, most significant first. */
static inline uint64_t th_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static inline uint32_t th_le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static inline uint32_t th_le24(const uint8_t *p) { return th_le16(p) | (uint32_t)p[2] << 16; }
static inline uint32_t th_le32(const uint8_t *p) { return th_le24(p) | (uint32_t)p[3] << 24; }
static inline uint64_t th_le64(const uint8_t *p) { return th_le32(p) | (uint64_t)th_le32(p + 4) << 32; }

/* The low n (0..8) bytes of v, least significant first. */
static inline void th_put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void th_put_le16(uint8_t *p, uint16_t v) { th_put_le(p, v, 2); }
static inline void th_put_le32(uint8_t *p, uint32_t v) { th_put_le(p, v, 4); }
static inline void th_put_le64(uint8_t *p, uint64_t v) { th_put_le(p, v, 8); }

/* The low `bits` (1..64) bits of v as a two's complement number; bits above
 * them are ignored. */
static inline int64_t th_sext(uint64_t v, unsigned bits)
{
	if (bits < 64) {
		uint64_t sign = (uint64_t)1 << (bits - 1);
		v &= (sign << 1) - 1;
		return (int64_t)(v ^ sign) - (int64_t)sign;
	}
	int64_t r;
	memcpy(&r, &v, sizeof r);
	return r;
}

#endif
