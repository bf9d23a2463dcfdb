/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the binlog event layer: the input is a binlog file
 * (the magic is optional: it is prepended when absent, so that the fuzzer
 * need not find it). Every event is decoded, payloads iterated, rows decoded
 * and rendered as JSON, exactly as `topohubctl decode` does.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -I. tests/fuzz/fuzz_binlog.c readers/binlog_event.c \
 *     readers/binlog_json.c readers/rows.c readers/rows_json.c common/th_buf.c \
 *     common/th_error.c -lzstd -lz -lisal -lm -o build/fuzz_binlog
 *   mkdir -p build/fuzz-corpus && cp tests/fixtures/binlog/mysql-8.0.45-gtid.00000[12] build/fuzz-corpus/
 *   build/fuzz_binlog -max_total_time=60 -max_len=65536 build/fuzz-corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "readers/binlog.h"
#include "common/th_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t magic[4] = { 0xfe, 0x62, 0x69, 0x6e };
	uint8_t *copy = NULL;
	if (size < 4 || memcmp(data, magic, 4)) {
		copy = malloc(size + 4);
		if (!copy)
			return 0;
		memcpy(copy, magic, 4);
		memcpy(copy + 4, data, size);
		data = copy;
		size += 4;
	}
	struct th_binlog_decoder_opts o = { .size = sizeof o, .max_inflated = 1 << 20 };
	struct th_binlog_decoder *dec;
	if (th_binlog_decoder_new(&dec, &o)) {
		free(copy);
		return 0;
	}
	/* the first input byte after the magic also picks the pre-format checksum */
	th_binlog_decoder_set_checksum(dec, size > 4 && (data[4] & 1) ? TH_BINLOG_CHECKSUM_CRC32
								      : TH_BINLOG_CHECKSUM_OFF);
	struct th_buf js = TH_BUF_INIT;
	struct th_binlog_event ev;
	size_t pos = 4;
	while (size - pos >= 19) {
		uint32_t n = (uint32_t)data[pos + 9] | (uint32_t)data[pos + 10] << 8 |
			     (uint32_t)data[pos + 11] << 16 | (uint32_t)data[pos + 12] << 24;
		if (n > size - pos)
			break;
		if (th_binlog_decode(dec, data + pos, n, pos, &ev))
			break;
		pos += n;
		int rc = 1;
		do {
			th_buf_reset(&js);
			th_binlog_event_to_json(&ev, &js);
			if (ev.kind != TH_EVK_TRANSACTION_PAYLOAD && !ev.in_payload)
				break;
		} while ((rc = th_binlog_payload_next(dec, &ev)) == 1);
	}
	th_buf_free(&js);
	th_binlog_decoder_free(dec);
	free(copy);
	return 0;
}
