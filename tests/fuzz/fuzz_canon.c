/*
 * fuzz_canon.c - libFuzzer harness for DKIM canonicalization
 * (mail/dkim_canon.c) and the signer's header parsing (mail/dkim_sign.c):
 * message content, which deliver signs.
 *
 * Input: one byte choosing simple or relaxed and a split step, then the
 * bytes. Besides crashes and sanitizer reports it checks that
 * - the canonical body does not depend on how the body is split into
 *   pieces (fed whole, then in pieces of the chosen step);
 * - canonicalizing a canonical body changes nothing (both forms);
 * - a relaxed header field has a lowercase name and no WSP run, no
 *   WSP before its CRLF;
 * - the signer's From: domain, when it finds one, is lowercase and has
 *   no space, '<', '>' or '@'.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_canon.h"
#include "dkim_sign.h"
#include "str.h"

static void collect(void *ctx, const char *data, size_t len)
{
	if (!str_append(ctx, data, len))
		abort();
}

static void canon_body(enum dkim_canon c, const char *p, size_t len,
    size_t step, struct str *out)
{
	struct dkim_body_canon b;
	dkim_body_canon_init(&b, c, collect, out);
	for (size_t i = 0; i < len; i += step)
		dkim_body_canon_update(&b, p + i, len - i < step ? len - i : step);
	dkim_body_canon_final(&b);
}

static void check_body(enum dkim_canon c, const char *p, size_t len,
    size_t step)
{
	struct str whole, pieces, again;
	str_init(&whole, STR_NO_MAX);
	str_init(&pieces, STR_NO_MAX);
	str_init(&again, STR_NO_MAX);
	canon_body(c, p, len, len ? len : 1, &whole);
	canon_body(c, p, len, step, &pieces);
	if (whole.len != pieces.len ||
	    memcmp(str_cstr(&whole), str_cstr(&pieces), whole.len) != 0) {
		fprintf(stderr, "split at %zu changes the canonical body\n",
		    step);
		abort();
	}
	canon_body(c, str_cstr(&whole), whole.len, whole.len ? whole.len : 1,
	    &again);
	if (whole.len != again.len ||
	    memcmp(str_cstr(&whole), str_cstr(&again), whole.len) != 0) {
		fprintf(stderr, "canonical body is not a fixed point\n");
		abort();
	}
	str_free(&whole);
	str_free(&pieces);
	str_free(&again);
}

static void check_header(const char *p, size_t len)
{
	struct str out;
	str_init(&out, STR_NO_MAX);
	if (!dkim_canon_header(DKIM_CANON_RELAXED, p, len, &out))
		abort();
	const char *h = str_cstr(&out);
	const char *colon = memchr(h, ':', out.len);
	for (const char *q = h; colon && q < colon; q++)
		if (isupper((unsigned char)*q))
			abort();
	if (colon != NULL) {
		/* The value: no WSP run, none at the end. */
		for (const char *q = colon + 1; q + 2 < h + out.len; q++)
			if ((*q == ' ' || *q == '\t') && (q[1] == ' ' ||
			    q[1] == '\t' || q + 3 == h + out.len))
				abort();
	}
	str_free(&out);
	str_init(&out, STR_NO_MAX);
	if (!dkim_canon_header(DKIM_CANON_SIMPLE, p, len, &out) ||
	    out.len != len + 2)
		abort();
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum dkim_canon c = data[0] & 1 ? DKIM_CANON_RELAXED :
	    DKIM_CANON_SIMPLE;
	size_t step = (size_t)(data[0] >> 1) + 1;
	const char *p = (const char *)data + 1;
	size_t len = size - 1;

	check_body(c, p, len, step);
	check_header(p, len);

	struct dkim_signer *s = dkim_signer_new();
	dkim_signer_update(s, p, len);
	const char *d = dkim_signer_from_domain(s);
	for (; d && *d; d++)
		if (isupper((unsigned char)*d) || *d == ' ' || *d == '<' ||
		    *d == '>' || *d == '@')
			abort();
	dkim_signer_free(s);
	return 0;
}
