/*
 * fuzz_spf.c - libFuzzer harness for the SPF record parser and macro
 * expander (mail/spf.c): TXT records from any DNS zone, and the sender
 * and HELO of any SMTP client.
 *
 * Input: a record. Besides crashes and sanitizer reports it checks that
 * - a record that parses has at most SPF_MAX_TERMS terms, prefix lengths
 *   within 0..32 and 0..128, and a domain-spec on every include and
 *   exists;
 * - every domain-spec that parsed also expands, to at most 253 octets
 *   once it has a dot to cut at;
 * - the input as a macro-string, with the input's first line as sender
 *   too, expands or fails without harm.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spf.h"
#include "str.h"

static void expand(const char *spec, const struct spf_macro_ctx *ctx,
    bool must)
{
	struct str out;
	char err[200];
	str_init(&out, STR_NO_MAX);
	bool ok = spf_macro_expand(spec, ctx, false, &out, err, sizeof(err));
	if (must && !ok)
		abort();
	if (ok && out.len > 253 && memchr(out.data, '.', out.len) != NULL)
		abort();
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *txt = malloc(size + 1);
	memcpy(txt, data, size);
	txt[size] = '\0';

	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "2001:db8::cb01", &v6.sin6_addr);
	struct spf_macro_ctx ctx = {
		.sender = txt, .domain = "example.com", .helo = txt,
		.client = (const struct sockaddr *)&v6,
	};
	struct spf_record rec;
	char err[200];
	if (spf_record_parse(txt, strlen(txt), &rec, err, sizeof(err))) {
		if (rec.nterms > SPF_MAX_TERMS)
			abort();
		for (size_t i = 0; i < rec.nterms; i++) {
			const struct spf_term *t = &rec.terms[i];
			if (t->cidr4 < 0 || t->cidr4 > 32 || t->cidr6 < 0 ||
			    t->cidr6 > 128)
				abort();
			if ((t->mech == SPF_INCLUDE || t->mech == SPF_EXISTS) &&
			    t->domain_spec == NULL)
				abort();
			if (t->domain_spec)
				expand(t->domain_spec, &ctx, true);
		}
		if (rec.redirect)
			expand(rec.redirect, &ctx, true);
		spf_record_free(&rec);
	}
	expand(txt, &ctx, false);
	free(txt);
	return 0;
}
