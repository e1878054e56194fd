/*
 * Unit tests for mail/dane.c: TLSA RDATA parsing, which records an SMTP
 * client may use (RFC 7672 3.1.3: DANE-TA and DANE-EE only, known
 * selectors and matching types, digests of the right length), and the
 * form a record takes in the log.
 */
#include <stdlib.h>
#include <string.h>

#include "dane.h"
#include "unit.h"

static const struct {
	unsigned char usage, selector, mtype;
	size_t datalen;		/* 0: a record of three octets only */
	bool parses;
	bool usable;
} records[] = {
	{ 3, 1, 1, 32, true, true },	/* DANE-EE SPKI SHA2-256 */
	{ 2, 0, 1, 32, true, true },	/* DANE-TA Cert SHA2-256 */
	{ 3, 0, 2, 64, true, true },	/* SHA2-512 */
	{ 2, 1, 0, 91, true, true },	/* a whole public key */
	{ 0, 0, 1, 32, true, false },	/* PKIX-TA: unusable in SMTP */
	{ 1, 1, 1, 32, true, false },	/* PKIX-EE: unusable in SMTP */
	{ 4, 1, 1, 32, true, false },	/* unknown usage */
	{ 3, 2, 1, 32, true, false },	/* unknown selector */
	{ 3, 1, 3, 32, true, false },	/* unknown matching type */
	{ 3, 1, 1, 31, true, false },	/* a SHA2-256 digest too short */
	{ 3, 1, 2, 32, true, false },	/* SHA2-512 of SHA2-256's length */
	{ 3, 1, 1, 0, false, false },	/* no data at all */
};

static void test_tlsa_usable(void)
{
	for (size_t i = 0; i < sizeof(records) / sizeof(*records); i++) {
		unsigned char rdata[3 + 128];
		rdata[0] = records[i].usage;
		rdata[1] = records[i].selector;
		rdata[2] = records[i].mtype;
		memset(rdata + 3, 0xab, records[i].datalen);
		struct dane_tlsa t;
		bool parsed = dane_tlsa_parse(rdata, 3 + records[i].datalen, &t);
		CHECK_INT(parsed, records[i].parses);
		if (!parsed)
			continue;
		CHECK_INT(t.usage, records[i].usage);
		CHECK_INT(t.len, records[i].datalen);
		CHECK_INT(dane_tlsa_usable(&t), records[i].usable);
		free(t.data);
	}
	struct dane_tlsa t;
	CHECK(!dane_tlsa_parse((const unsigned char *)"\3\1", 2, &t));
}

static void test_tlsa_format(void)
{
	unsigned char digest[32], cert[40];
	char out[200];
	for (size_t i = 0; i < sizeof(digest); i++)
		digest[i] = (unsigned char)i;
	dane_tlsa_format(3, 1, 1, digest, sizeof(digest), out, sizeof(out));
	CHECK_STR(out, "3 1 1 000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f");
	/* Longer data: its first and last 8 octets. */
	for (size_t i = 0; i < sizeof(cert); i++)
		cert[i] = (unsigned char)(0xf0 + i % 16);
	dane_tlsa_format(2, 0, 0, cert, sizeof(cert), out, sizeof(out));
	CHECK_STR(out, "2 0 0 f0f1f2f3f4f5f6f7...f0f1f2f3f4f5f6f7");
	/* A short buffer is cut, never overrun. */
	dane_tlsa_format(3, 1, 1, digest, sizeof(digest), out, 12);
	CHECK(strlen(out) < 12);
}

int main(void)
{
	RUN(test_tlsa_usable);
	RUN(test_tlsa_format);
	return unit_done();
}
