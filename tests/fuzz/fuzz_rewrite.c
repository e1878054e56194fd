/*
 * fuzz_rewrite.c - libFuzzer harness for the header field parser of
 * mail/rewrite.c, which reads the address fields of local users' and
 * trusted clients' messages (pickup, smtpd) and of everything deliver
 * sends with smtp_generic_maps. The config masquerades example.org, so
 * that addresses are found and replaced (no table is needed for that).
 *
 * Besides crashes and sanitizer reports it checks what the callers rely
 * on: a rewritten block has exactly as many CRLFs as the input (only
 * addresses change: no field is added, split or joined), and the end
 * of the header block lies within the bytes given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "rewrite.h"

static size_t count_crlf(const char *p, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '\r' && p[i + 1] == '\n')
			c++;
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rewrite *rw;
	if (rw == NULL) {
		static const char text[] = "myhostname = mx.example.org\n"
		    "masquerade_domains = !keep.example.org, example.org\n";
		char err[256];
		if (!cfg_load_text("/nonexistent", "fuzz", text,
		    sizeof(text) - 1, err, sizeof(err)))
			abort();
		rw = rewrite_open(REWRITE_CANONICAL, err, sizeof(err));
		if (rw == NULL)
			abort();
	}
	const char *p = (const char *)data;
	size_t end = rewrite_header_end(p, size);
	if (end > size)
		abort();
	bool failed = false;
	size_t n = 0;
	char *out = rewrite_header_block(rw, p, size, &n, &failed);
	if (out != NULL) {
		if (count_crlf(out, n) != count_crlf(p, size)) {
			fprintf(stderr, "CRLFs changed\n");
			abort();
		}
		free(out);
	}
	return 0;
}
