/*
 * fuzz_addr.c - libFuzzer harness for the RFC 5321 address parser and
 * xtext (mail/addr.c). `make fuzz` builds it into build/fuzz/fuzz_addr;
 * `make fuzz-smoke` runs it briefly over tests/fuzz/corpus_addr; for a
 * longer run (tests/fuzz/README):
 *
 *   mkdir -p /tmp/corpus && build/fuzz/fuzz_addr -max_total_time=600 \
 *       /tmp/corpus tests/fuzz/corpus_addr
 *
 * Besides crashes and sanitizer reports it checks two properties: the
 * canonical address the parser returns parses again to itself, and xtext
 * encoding round-trips through decoding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

static void roundtrip(const struct addr *a, unsigned flags)
{
	if (a->is_null || a->domain == NULL)
		return;
	size_t n = strlen(a->address);
	char *again = malloc(n + 3);
	again[0] = '<';
	memcpy(again + 1, a->address, n);
	again[n + 1] = '>';
	again[n + 2] = '\0';
	struct addr b;
	const char *end, *why;
	if (!addr_parse_path(again, flags, &b, &end, &why)) {
		fprintf(stderr, "canonical form does not parse: %s (%s)\n",
		    again, why);
		abort();
	}
	if (strcmp(a->address, b.address) != 0 || *end != '\0') {
		fprintf(stderr, "canonical form changes: %s -> %s\n",
		    a->address, b.address);
		abort();
	}
	addr_free(&b);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned flags = data[0] & 0x0f;
	char *text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';

	struct addr a;
	const char *end, *why;
	if (addr_parse_path(text, flags, &a, &end, &why)) {
		if (end < text || end > text + strlen(text))
			abort();
		roundtrip(&a, flags & ~ADDR_ALLOW_NO_BRACKETS);
		addr_free(&a);
	}
	if (addr_parse_mailbox(text, flags, &a, &why))
		addr_free(&a);
	(void)addr_domain_valid(text, flags & ADDR_ALLOW_UTF8);

	char *decoded = addr_xtext_decode(text);
	free(decoded);
	char *enc = addr_xtext_encode(text);
	char *dec = addr_xtext_decode(enc);
	/* Everything printable encodes and decodes back to itself. */
	bool printable = true;
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			printable = false;
	if (printable && (dec == NULL || strcmp(dec, text) != 0))
		abort();
	free(dec);
	free(enc);
	free(text);
	return 0;
}
