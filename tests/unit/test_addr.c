/* Unit tests for mail/addr.c: RFC 5321 4.1.2 paths, domains, xtext. */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "unit.h"

struct path_case {
	const char *input;
	unsigned flags;
	const char *address;	/* canonical form; NULL: must be rejected */
	const char *rest;	/* what follows the path */
};

#define N ADDR_ALLOW_NULL
#define U ADDR_ALLOW_UTF8
#define P ADDR_ALLOW_POSTMASTER

static const struct path_case path_cases[] = {
	/* plain and parameters after */
	{ "<alice@example.org>", 0, "alice@example.org", "" },
	{ "<alice@example.org> SIZE=10", 0, "alice@example.org", " SIZE=10" },
	{ "<a.b-c+tag@sub.example.org>", 0, "a.b-c+tag@sub.example.org", "" },
	{ "<!#$%&'*+-/=?^_`{|}~@x.org>", 0, "!#$%&'*+-/=?^_`{|}~@x.org", "" },
	{ "<A@EXAMPLE.ORG>", 0, "A@EXAMPLE.ORG", "" },
	{ "<a@b>", 0, "a@b", "" },
	{ "<a@1.2.3.example>", 0, "a@1.2.3.example", "" },
	/* null path and postmaster */
	{ "<>", N, "", "" },
	{ "<>", 0, NULL, NULL },
	{ "<postmaster>", P, "postmaster", "" },
	{ "<PostMaster>", P, "postmaster", "" },
	{ "<postmaster>", 0, NULL, NULL },
	{ "<postmaster@example.org>", P, "postmaster@example.org", "" },
	/* quoted local parts: quotes dropped when not needed */
	{ "<\"alice\"@example.org>", 0, "alice@example.org", "" },
	{ "<\"a b\"@example.org>", 0, "\"a b\"@example.org", "" },
	{ "<\"a\\\"b\"@example.org>", 0, "\"a\\\"b\"@example.org", "" },
	{ "<\"a\\\\b\"@example.org>", 0, "\"a\\\\b\"@example.org", "" },
	{ "<\"a@b\"@example.org>", 0, "\"a@b\"@example.org", "" },
	{ "<\"a..b\"@example.org>", 0, "\"a..b\"@example.org", "" },
	{ "<\"\\x\"@example.org>", 0, "x@example.org", "" },
	{ "<\"\"@example.org>", 0, "\"\"@example.org", "" },
	{ "<\"a\x01\"@example.org>", 0, NULL, NULL },
	{ "<\"abc@example.org>", 0, NULL, NULL },
	/* address literals */
	{ "<a@[192.0.2.1]>", 0, "a@[192.0.2.1]", "" },
	{ "<a@[IPv6:2001:db8::1]>", 0, "a@[IPv6:2001:db8::1]", "" },
	{ "<a@[ipv6:::1]>", 0, "a@[ipv6:::1]", "" },
	{ "<a@[256.0.0.1]>", 0, NULL, NULL },
	{ "<a@[1.2.3]>", 0, NULL, NULL },
	{ "<a@[1.2.3.4.5]>", 0, NULL, NULL },
	{ "<a@[0001.2.3.4]>", 0, NULL, NULL },
	{ "<a@[IPv6:2001:db8::g]>", 0, NULL, NULL },
	{ "<a@[x-tag:foo]>", 0, NULL, NULL },
	{ "<a@[192.0.2.1>", 0, NULL, NULL },
	/* source routes are accepted and dropped */
	{ "<@relay.example:a@example.org>", 0, "a@example.org", "" },
	{ "<@r1.example,@r2.example:a@example.org>", 0, "a@example.org", "" },
	{ "<@r1.example,r2.example:a@example.org>", 0, NULL, NULL },
	{ "<@:a@example.org>", 0, NULL, NULL },
	/* syntax errors */
	{ "alice@example.org", 0, NULL, NULL },
	{ "<alice@example.org", 0, NULL, NULL },
	{ "<alice>", 0, NULL, NULL },
	{ "<alice@>", 0, NULL, NULL },
	{ "<@example.org>", 0, NULL, NULL },
	{ "<.alice@example.org>", 0, NULL, NULL },
	{ "<alice.@example.org>", 0, NULL, NULL },
	{ "<al..ice@example.org>", 0, NULL, NULL },
	{ "<al ice@example.org>", 0, NULL, NULL },
	{ "<alice@exa mple.org>", 0, NULL, NULL },
	{ "<alice@example..org>", 0, NULL, NULL },
	{ "<alice@.example.org>", 0, NULL, NULL },
	{ "<alice@example.org.>", 0, NULL, NULL },
	{ "<alice@-example.org>", 0, NULL, NULL },
	{ "<alice@example-.org>", 0, NULL, NULL },
	{ "<alice@exa_mple.org>", 0, NULL, NULL },
	{ "<alice@example.org>>", 0, "alice@example.org", ">" },
	{ "<a@b@example.org>", 0, NULL, NULL },
	{ "<alice@example.org\r>", 0, NULL, NULL },
	{ "<ali(ce)@example.org>", 0, NULL, NULL },
	{ "", 0, NULL, NULL },
	{ "<", 0, NULL, NULL },
	/* UTF-8 only with SMTPUTF8, and well-formed */
	{ "<j\xc3\xb6rg@example.org>", 0, NULL, NULL },
	{ "<j\xc3\xb6rg@example.org>", U, "j\xc3\xb6rg@example.org", "" },
	{ "<user@b\xc3\xbc" "cher.example>", U, "user@b\xc3\xbc" "cher.example", "" },
	{ "<user@b\xc3\xbc" "cher.example>", 0, NULL, NULL },
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>",
	    U, "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", "" },
	{ "<j\xc3rg@example.org>", U, NULL, NULL },	/* truncated seq */
	{ "<j\xc0\xafrg@example.org>", U, NULL, NULL },	/* overlong */
	{ "<j\xed\xa0\x80@example.org>", U, NULL, NULL }, /* surrogate */
	{ "<j\xf4\x90\x80\x80@example.org>", U, NULL, NULL }, /* > U+10FFFF */
	{ "<j\xff@example.org>", U, NULL, NULL },
};

static void test_paths(void)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct addr a;
		const char *end = NULL, *why = NULL;
		bool ok = addr_parse_path(c->input, c->flags, &a, &end, &why);
		if (c->address == NULL) {
			if (ok)
				printf("# case %zu accepted: %s -> %s\n", i,
				    c->input, a.address);
			CHECK(!ok);
			CHECK(why != NULL && *why != '\0');
		} else {
			if (!ok)
				printf("# case %zu rejected (%s): %s\n", i,
				    why, c->input);
			CHECK(ok);
			if (ok) {
				CHECK_STR(a.address, c->address);
				CHECK_STR(end, c->rest);
			}
		}
		if (ok)
			addr_free(&a);
	}
}

static void test_path_fields(void)
{
	struct addr a;
	const char *end, *why;

	CHECK(addr_parse_path("<\"Al\"@Example.ORG>", 0, &a, &end, &why));
	CHECK_STR(a.local, "\"Al\"");
	CHECK_STR(a.domain, "Example.ORG");
	CHECK(!a.is_null && !a.has_utf8 && !a.domain_is_literal);
	addr_free(&a);

	CHECK(addr_parse_path("<>", ADDR_ALLOW_NULL, &a, &end, &why));
	CHECK(a.is_null);
	CHECK(a.domain == NULL);
	addr_free(&a);

	CHECK(addr_parse_path("<postmaster>", ADDR_ALLOW_POSTMASTER, &a, &end,
	    &why));
	CHECK(a.domain == NULL);
	CHECK(!a.is_null);
	addr_free(&a);

	CHECK(addr_parse_path("<x@[10.0.0.1]>", 0, &a, &end, &why));
	CHECK(a.domain_is_literal);
	CHECK_STR(a.domain, "[10.0.0.1]");
	addr_free(&a);

	CHECK(addr_parse_path("<\xc3\xa9@example.org>", ADDR_ALLOW_UTF8, &a,
	    &end, &why));
	CHECK(a.has_utf8);
	addr_free(&a);

	/* without brackets only when asked */
	CHECK(addr_parse_path("bob@example.org SIZE=1", ADDR_ALLOW_NO_BRACKETS,
	    &a, &end, &why));
	CHECK_STR(a.address, "bob@example.org");
	CHECK_STR(end, " SIZE=1");
	addr_free(&a);
}

static void test_lengths(void)
{
	char buf[400];
	struct addr a;
	const char *end, *why;

	/* a 63-octet label is fine, 64 is not */
	char label[65];
	memset(label, 'a', 64);
	label[63] = '\0';
	snprintf(buf, sizeof(buf), "<x@%s.org>", label);
	CHECK(addr_parse_path(buf, 0, &a, &end, &why));
	addr_free(&a);
	label[63] = 'a';
	label[64] = '\0';
	snprintf(buf, sizeof(buf), "<x@%s.org>", label);
	CHECK(!addr_parse_path(buf, 0, &a, &end, &why));

	/* a long local part (SRS) is accepted; a path over 256 is not */
	char local[200];
	memset(local, 'l', sizeof(local) - 1);
	local[sizeof(local) - 1] = '\0';
	snprintf(buf, sizeof(buf), "<%s@example.org>", local);
	CHECK(addr_parse_path(buf, 0, &a, &end, &why));
	addr_free(&a);
	char longer[260];
	memset(longer, 'l', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	snprintf(buf, sizeof(buf), "<%s@example.org>", longer);
	CHECK(!addr_parse_path(buf, 0, &a, &end, &why));
}

static void test_mailbox(void)
{
	struct addr a;
	const char *why;
	CHECK(addr_parse_mailbox("alice@example.org", 0, &a, &why));
	CHECK_STR(a.address, "alice@example.org");
	addr_free(&a);
	CHECK(!addr_parse_mailbox("<alice@example.org>", 0, &a, &why));
	CHECK(!addr_parse_mailbox("alice@example.org ", 0, &a, &why));
	CHECK(!addr_parse_mailbox("alice", 0, &a, &why));
	CHECK(addr_parse_mailbox("Postmaster", ADDR_ALLOW_POSTMASTER, &a, &why));
	CHECK_STR(a.address, "postmaster");
	addr_free(&a);
}

static void test_domains(void)
{
	CHECK(addr_domain_valid("example.org", false));
	CHECK(addr_domain_valid("localhost", false));
	CHECK(addr_domain_valid("xn--bcher-kva.example", false));
	CHECK(!addr_domain_valid("", false));
	CHECK(!addr_domain_valid("a..b", false));
	CHECK(!addr_domain_valid("a.b.", false));
	CHECK(!addr_domain_valid("a b", false));
	CHECK(!addr_domain_valid("b\xc3\xbc" "cher.example", false));
	CHECK(addr_domain_valid("b\xc3\xbc" "cher.example", true));

	CHECK_STR(addr_domain_of("a@b.c"), "b.c");
	CHECK_STR(addr_domain_of("\"a@x\"@b.c"), "b.c");
	CHECK(addr_domain_of("postmaster") == NULL);
	char *low = addr_domain_lower("Alice@Example.ORG");
	CHECK_STR(low, "example.org");
	free(low);
	CHECK(addr_domain_lower("nodomain") == NULL);
}

static void test_xtext(void)
{
	char *s;
	s = addr_xtext_decode("abc+2Bdef+3D");
	CHECK_STR(s, "abc+def=");
	free(s);
	s = addr_xtext_decode("");
	CHECK_STR(s, "");
	free(s);
	s = addr_xtext_decode("a+2bb");		/* lower case tolerated */
	CHECK_STR(s, "a+b");
	free(s);
	CHECK(addr_xtext_decode("a+2") == NULL);
	CHECK(addr_xtext_decode("a+ZZ") == NULL);
	CHECK(addr_xtext_decode("a=b") == NULL);
	CHECK(addr_xtext_decode("a b") == NULL);
	CHECK(addr_xtext_decode("a+0D+0A") == NULL);	/* no CR LF */
	CHECK(addr_xtext_decode("a+00") == NULL);
	CHECK(addr_xtext_decode("\xc3\xa9") == NULL);

	s = addr_xtext_encode("a+b=c d\xc3\xa9");
	CHECK_STR(s, "a+2Bb+3Dc+20d+C3+A9");
	char *back = addr_xtext_decode(s);
	CHECK(back == NULL);	/* xtext carries US-ASCII only */
	free(back);
	free(s);
	s = addr_xtext_encode("rfc822;user+tag@example.org");
	CHECK_STR(s, "rfc822;user+2Btag@example.org");
	back = addr_xtext_decode(s);
	CHECK_STR(back, "rfc822;user+tag@example.org");
	free(back);
	free(s);
}

int main(void)
{
	RUN(test_paths);
	RUN(test_path_fields);
	RUN(test_lengths);
	RUN(test_mailbox);
	RUN(test_domains);
	RUN(test_xtext);
	return unit_done();
}
