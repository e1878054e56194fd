/*
 * test_idna.c - the two spellings of a domain (mail/idna.c): IDNA 2008
 * conversion as libidn2 does it, the address forms deliver sends to a
 * peer without SMTPUTF8, and the mydomains comparison.
 */
#include <stdlib.h>

#include "idna.h"
#include "unit.h"

static void test_domain_to_ascii(void)
{
	static const struct {
		const char *in;
		const char *want;	/* NULL: not a valid name */
	} cases[] = {
		{ "example.org", "example.org" },
		{ "Example.ORG", "example.org" },
		{ "bücher.example", "xn--bcher-kva.example" },
		{ "BÜCHER.example", "xn--bcher-kva.example" },
		/* IDNA 2008, non-transitional: sharp s stays (UTS #46). */
		{ "faß.de", "xn--fa-hia.de" },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
		{ "пример.испытание", "xn--e1afmkfd.xn--80akhbyknj4f" },
		/* Not a name: a symbol IDNA 2008 disallows. */
		{ "\xe2\x98\x83.example", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = idna_domain_to_ascii(cases[i].in);
		CHECK_STR(got, cases[i].want);
		free(got);
	}
}

static void test_domain_to_unicode(void)
{
	char *got = idna_domain_to_unicode("xn--bcher-kva.example");
	CHECK_STR(got, "bücher.example");
	free(got);
}

static void test_address_to_ascii(void)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{ "user@bücher.example", "user@xn--bcher-kva.example" },
		{ "User@Example.org", "User@example.org" },
		{ "postmaster", "postmaster" },
		/* A UTF-8 local part needs SMTPUTF8: no ASCII form. */
		{ "jörg@example.net", NULL },
		{ "jörg@bücher.example", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = idna_address_to_ascii(cases[i].in);
		CHECK_STR(got, cases[i].want);
		free(got);
	}
}

static void test_other_spelling(void)
{
	char *got = idna_address_other_spelling("a@bücher.example");
	CHECK_STR(got, "a@xn--bcher-kva.example");
	free(got);
	got = idna_address_other_spelling("a@xn--bcher-kva.example");
	CHECK_STR(got, "a@bücher.example");
	free(got);
	got = idna_address_other_spelling("a@example.org");
	CHECK_STR(got, NULL);
	free(got);
}

static void test_domain_in_list(void)
{
	char *items_a[] = { "localhost", "xn--bcher-kva.example", NULL };
	char *items_u[] = { "bücher.example", NULL };
	struct cfg_list a = { items_a, 2 }, u = { items_u, 1 };

	CHECK(idna_domain_in_list(&a, "localhost"));
	CHECK(idna_domain_in_list(&a, "LOCALHOST"));
	CHECK(idna_domain_in_list(&a, "bücher.example"));
	CHECK(idna_domain_in_list(&a, "BÜCHER.example"));
	CHECK(idna_domain_in_list(&a, "XN--BCHER-KVA.example"));
	CHECK(!idna_domain_in_list(&a, "bucher.example"));
	CHECK(!idna_domain_in_list(&a, "\xe2\x98\x83.example"));
	CHECK(idna_domain_in_list(&u, "xn--bcher-kva.example"));
	CHECK(idna_domain_in_list(&u, "bücher.example"));
	CHECK(!idna_domain_in_list(&u, "example.org"));
}

int main(void)
{
	RUN(test_domain_to_ascii);
	RUN(test_domain_to_unicode);
	RUN(test_address_to_ascii);
	RUN(test_other_spelling);
	RUN(test_domain_in_list);
	return unit_done();
}
