/*
 * fuzz_dmarc.c - libFuzzer harness for the parsers of DMARC and
 * Authentication-Results input (mail/dmarc.c, mail/authres.c): a DMARC
 * TXT record from any DNS zone, a header section's From: field and an
 * arriving Authentication-Results value from any sender, and any value
 * written into our own field.
 *
 * Besides crashes and sanitizer reports it checks that a record that
 * parses has a pct= of 0 to 100 and known policies; that a From: domain
 * is lowered, non-empty, at most 253 octets and free of white space;
 * and that our field, whatever value goes into it, stays one field: no
 * CR or LF but the ones authres_method and authres_end write.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "dmarc.h"
#include "str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	struct dmarc_record rec;
	if (dmarc_record_parse(text, &rec) &&
	    (rec.pct < 0 || rec.pct > 100 || rec.p > DMARC_POLICY_REJECT ||
	    rec.sp > DMARC_POLICY_REJECT))
		abort();

	char dom[256];
	if (dmarc_from_domain((const char *)data, size, dom, sizeof(dom))) {
		size_t n = strlen(dom);
		if (n == 0 || n > 253)
			abort();
		for (const char *p = dom; *p; p++)
			if (isspace((unsigned char)*p) || isupper((unsigned char)*p))
				abort();
		char org[256];
		dmarc_org_domain(dom, org, sizeof(org));
		if (strlen(org) > n)
			abort();
	}
	(void)authres_claims_id((const char *)data, size, "mx.example");

	struct str h;
	str_init(&h, STR_NO_MAX);
	authres_start(&h, "mx.example");
	authres_method(&h, "dkim", "pass", text);
	authres_prop(&h, "header.d", text);
	authres_end(&h, 1);
	/* Exactly the two line breaks we wrote: after "mx.example;" and at
	 * the end. */
	size_t crlf = 0;
	for (size_t i = 0; i < h.len; i++)
		if (h.data[i] == '\r' || h.data[i] == '\n')
			crlf++;
	if (crlf != 4)
		abort();
	str_free(&h);
	free(text);
	return 0;
}
