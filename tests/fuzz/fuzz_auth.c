/*
 * fuzz_auth.c - libFuzzer harness for the AUTH decoders (smtpd/
 * smtpd_sasl.c): strict base64, the PLAIN message split and the user
 * name rule, on bytes a client sends before it has authenticated.
 * Built by `make fuzz`, run briefly by `make fuzz-smoke`.
 *
 * Besides memory safety:
 *   - whatever the decoder accepts has 3 octets per 4 characters less
 *     the padding, a NUL after them, and encodes back to base64 that
 *     decodes to the same octets;
 *   - any octets, encoded, decode to themselves (the decoder is not
 *     stricter than what a client correctly sends);
 *   - a PLAIN split covers the message exactly: authzid, NUL, authcid,
 *     NUL, password;
 *   - an accepted name has no control octet, space or NUL in it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd_sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_auth: %s\n", what);
	abort();
}

/* Plain RFC 4648 4 encoding, as a client writes it. */
static char *encode(const unsigned char *in, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned long w = (unsigned long)in[i] << 16;
		if (i + 1 < len)
			w |= (unsigned long)in[i + 1] << 8;
		if (i + 2 < len)
			w |= in[i + 2];
		out[o++] = tab[w >> 18 & 63];
		out[o++] = tab[w >> 12 & 63];
		out[o++] = i + 1 < len ? tab[w >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? tab[w & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static void check_plain(const char *msg, size_t len)
{
	struct smtpd_sasl_plain p;
	if (!smtpd_sasl_plain_split(msg, len, &p))
		return;
	size_t zlen = strlen(p.authzid);
	if (p.authzid != msg || p.authcid != msg + zlen + 1 ||
	    p.password != p.authcid + p.authcid_len + 1 ||
	    zlen + 1 + p.authcid_len + 1 + p.password_len != len ||
	    p.authcid[p.authcid_len] != '\0')
		fail("PLAIN split does not cover the message");
	if (smtpd_sasl_name_ok(p.authcid, p.authcid_len)) {
		if (p.authcid_len > SMTPD_SASL_NAME_MAX)
			fail("name longer than SMTPD_SASL_NAME_MAX accepted");
		for (size_t i = 0; i < p.authcid_len; i++)
			if ((unsigned char)p.authcid[i] <= ' ' ||
			    p.authcid[i] == 0x7f)
				fail("name with a control octet accepted");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *dec, *again;
	size_t dlen, alen;

	if (smtpd_sasl_b64_decode(in, size, &dec, &dlen)) {
		size_t pad = size >= 1 && in[size - 1] == '=' ?
		    (size >= 2 && in[size - 2] == '=' ? 2 : 1) : 0;
		if (size % 4 != 0 || dlen != size / 4 * 3 - pad ||
		    dec[dlen] != '\0')
			fail("decoded length or terminator wrong");
		char *enc = encode((const unsigned char *)dec, dlen);
		if (!smtpd_sasl_b64_decode(enc, strlen(enc), &again, &alen) ||
		    alen != dlen || memcmp(again, dec, dlen) != 0)
			fail("re-encoded octets do not decode to themselves");
		free(again);
		free(enc);
		check_plain(dec, dlen);
		free(dec);
	}

	/* Any octets a client encodes correctly must decode back. */
	char *enc = encode(data, size);
	if (!smtpd_sasl_b64_decode(enc, strlen(enc), &again, &alen) ||
	    alen != size || (size > 0 && memcmp(again, data, size) != 0))
		fail("encoded input does not decode to itself");
	check_plain(again, alen);
	free(again);
	free(enc);
	return 0;
}
