/*
 * fuzz_mtasts.c - libFuzzer harness for the MTA-STS parsers of
 * mail/mtasts.c, which read what DNS and a web server send: the policy
 * body (mtasts_policy_parse, up to 64 KiB from any HTTPS server a TXT
 * record points at), the `_mta-sts` TXT record (mtasts_txt_parse), the
 * MX pattern match, and the `_smtp._tls` record (tlsrpt_txt_parse).
 * `make fuzz` builds it into build/fuzz/fuzz_mtasts; `make fuzz-smoke`
 * runs it over tests/fuzz/corpus_mtasts.
 *
 * Besides crashes and sanitizer reports it checks what deliver relies
 * on: an accepted policy has a known mode, 0 <= max_age <= the RFC's
 * cap, at most MTASTS_MX_MAX patterns and at least one unless the mode
 * is none; an accepted TXT id is 1 to 32 letters and digits.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtasts.h"
#include "tlsrpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mtasts_policy p;
	char err[200];

	if (mtasts_policy_parse((const char *)data, size, &p, err,
	    sizeof(err))) {
		if ((p.mode != MTASTS_NONE && p.mode != MTASTS_TESTING &&
		    p.mode != MTASTS_ENFORCE) || p.max_age < 0 ||
		    p.max_age > MTASTS_MAX_AGE_MAX || p.nmx > MTASTS_MX_MAX ||
		    (p.mode != MTASTS_NONE && p.nmx == 0))
			abort();
	}
	/* The input, up to its first NUL or newline, as a host name. */
	char host[300];
	size_t n = 0;
	while (n < size && n + 1 < sizeof(host) && data[n] != '\0' &&
	    data[n] != '\n') {
		host[n] = (char)data[n];
		n++;
	}
	host[n] = '\0';
	(void)mtasts_mx_match(&p, host);
	mtasts_policy_free(&p);

	char id[MTASTS_ID_MAX + 1];
	if (mtasts_txt_parse(host, id, sizeof(id))) {
		size_t len = strlen(id);
		if (len == 0 || len > MTASTS_ID_MAX)
			abort();
		for (size_t i = 0; i < len; i++)
			if (!isalnum((unsigned char)id[i]))
				abort();
	}
	char rua[4][256];
	size_t count;
	if (tlsrpt_txt_parse(host, rua, 4, &count) && count > 4)
		abort();
	return 0;
}
