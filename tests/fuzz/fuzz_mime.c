/*
 * fuzz_mime.c - libFuzzer harness for deliver's 8-bit to 7-bit MIME
 * conversion (deliver/deliver_mime.c). For any bytes it must not crash
 * or read out of bounds, must give back content without 8-bit bytes
 * unchanged, and must be idempotent: converting its own output again
 * changes nothing (what it re-encoded is labelled quoted-printable, and a
 * soft line break never makes a boundary delimiter).
 *
 * Not part of `make`. Build and run from the top of the tree:
 *
 *   clang -g -O1 -D_GNU_SOURCE -Iutil -Imail -Ideliver \
 *       -fsanitize=fuzzer,address,undefined \
 *       tests/fuzz/fuzz_mime.c deliver/deliver_mime.c -o build/fuzz_mime
 *   mkdir -p build/fuzz-mime-corpus
 *   build/fuzz_mime -max_total_time=300 build/fuzz-mime-corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver_mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct growbuf {
	char *data;
	size_t len, cap;
};

static void collect(void *ctx, const char *data, size_t len)
{
	struct growbuf *b = ctx;
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->data = realloc(b->data, b->cap);
		if (b->data == NULL)
			abort();
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct growbuf once = { 0 }, twice = { 0 };
	const char *msg = (const char *)data;

	deliver_mime_downgrade(msg, size, collect, &once);
	if (!deliver_mime_has_8bit(msg, size) &&
	    (once.len != size || memcmp(once.data, msg, size) != 0))
		abort();
	deliver_mime_downgrade(once.data, once.len, collect, &twice);
	if (twice.len != once.len ||
	    (once.len > 0 && memcmp(twice.data, once.data, once.len) != 0))
		abort();
	free(once.data);
	free(twice.data);
	return 0;
}
