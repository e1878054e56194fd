/*
 * fuzz_proxy.c - libFuzzer harness for the PROXY protocol header parser
 * (mail/proxy_proto.c), which reads the first bytes of every connection
 * on a listener marked "proxy". `make fuzz` builds it into
 * build/fuzz/fuzz_proxy; `make fuzz-smoke` runs it over
 * tests/fuzz/corpus_proxy.
 *
 * Besides crashes and sanitizer reports it checks what smtpd's reader
 * relies on: an OK header lies within the bytes given and is at most
 * PROXY_MAX_HEADER long; every proper prefix of an OK header is
 * INCOMPLETE (so the reader may consume it and wait); a BAD result
 * says why; an address it returns is IPv4 or IPv6.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_header h;
	const char *why;
	enum proxy_result r = proxy_parse(data, size, &h, &why);

	if (r == PROXY_BAD && (why == NULL || *why == '\0'))
		abort();
	if (r != PROXY_OK)
		return 0;
	if (h.length == 0 || h.length > size || h.length > PROXY_MAX_HEADER) {
		fprintf(stderr, "header length %zu of %zu bytes\n", h.length,
		    size);
		abort();
	}
	if (h.has_addresses && h.source.ss_family != AF_INET &&
	    h.source.ss_family != AF_INET6)
		abort();
	for (size_t n = 0; n < h.length; n++) {
		struct proxy_header p;
		if (proxy_parse(data, n, &p, &why) != PROXY_INCOMPLETE) {
			fprintf(stderr, "prefix of %zu bytes is not incomplete\n",
			    n);
			abort();
		}
	}
	return 0;
}
