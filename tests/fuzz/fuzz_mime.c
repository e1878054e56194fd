/*
 * fuzz_mime.c - libFuzzer harness for deliver's 8-bit to 7-bit MIME
 * conversion (deliver/deliver_mime.c). For any bytes it must not crash
 * or read out of bounds, must give back content without 8-bit bytes
 * unchanged (but for a composite part's "8bit" label, which becomes
 * "7bit" on purpose), and must be idempotent: converting its own output
 * again changes nothing (what it re-encoded is labelled
 * quoted-printable, and a soft line break never makes a boundary
 * delimiter).
 *
 * `make fuzz` builds it into build/fuzz/fuzz_mime (with
 * deliver/deliver_mime.c); `make fuzz-smoke` runs it briefly over
 * tests/fuzz/corpus_mime; for a longer run:
 *
 *   mkdir -p /tmp/corpus && build/fuzz/fuzz_mime -max_total_time=600 \
 *       -dict=tests/fuzz/mime.dict /tmp/corpus tests/fuzz/corpus_mime
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Does the text name the 8bit encoding anywhere (any case)? */
static bool says_8bit(const char *p, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++)
		if (p[i] == '8' && strncasecmp(p + i + 1, "bit", 3) == 0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct growbuf once = { 0 }, twice = { 0 };
	const char *msg = (const char *)data;

	deliver_mime_downgrade(msg, size, collect, &once);
	if (!deliver_mime_has_8bit(msg, size) && !says_8bit(msg, size) &&
	    (once.len != size ||
	    (size > 0 && memcmp(once.data, msg, size) != 0)))
		abort();
	if (!deliver_mime_has_8bit(msg, size) && once.len > 0 &&
	    deliver_mime_has_8bit(once.data, once.len))
		abort();
	/* Empty output has no buffer; deliver never converts nothing. */
	deliver_mime_downgrade(once.data ? once.data : "", once.len, collect, &twice);
	if (twice.len != once.len ||
	    (once.len > 0 && memcmp(twice.data, once.data, once.len) != 0))
		abort();
	free(once.data);
	free(twice.data);
	return 0;
}
