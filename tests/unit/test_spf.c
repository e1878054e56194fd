/*
 * test_spf.c - the SPF record parser and macro expander (mail/spf.c):
 * RFC 7208 7.4's macro examples, and records that parse or are a
 * permerror (RFC 7208 4.6, 5, 6, 12); and check_host() (mail/spf_check.c)
 * over records served by a real dnsmasq, for the cases the RFC 7208 test
 * suite (tests/spf_suite.bats) found wrong.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "spf.h"
#include "str.h"
#include "unit.h"
#include "unit_dnsmasq.h"

struct macro_case {
	const char *spec, *want;
};

/* Each spec expands (outside exp=) to its want. */
static void check_expansions(const struct spf_macro_ctx *ctx,
    const struct macro_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct str out;
		char err[128];
		str_init(&out, STR_NO_MAX);
		CHECK(spf_macro_expand(cases[i].spec, ctx, false, &out, err,
		    sizeof(err)));
		CHECK_STR(str_cstr(&out), cases[i].want);
		str_free(&out);
	}
}

static void test_macros_rfc7208_7_4(void)
{
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET, "192.0.2.3", &v4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::cb01", &v6.sin6_addr);
	struct spf_macro_ctx ctx = {
		.sender = "strong-bad@email.example.com",
		.domain = "email.example.com",
		.helo = "mx.example.org",
		.client = (const struct sockaddr *)&v4,
	};
	static const struct macro_case cases[] = {
		{ "%{s}", "strong-bad@email.example.com" },
		{ "%{o}", "email.example.com" },
		{ "%{d}", "email.example.com" },
		{ "%{d4}", "email.example.com" },
		{ "%{d3}", "email.example.com" },
		{ "%{d2}", "example.com" },
		{ "%{d1}", "com" },
		{ "%{dr}", "com.example.email" },
		{ "%{d2r}", "example.email" },
		{ "%{l}", "strong-bad" },
		{ "%{l-}", "strong.bad" },
		{ "%{lr}", "strong-bad" },
		{ "%{lr-}", "bad.strong" },
		{ "%{l1r-}", "strong" },
		{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com" },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com" },
		{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
		  "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
		{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
		  "3.2.0.192.in-addr.strong.lp._spf.example.com" },
		{ "%{d2}.trusted-domains.example.net",
		  "example.com.trusted-domains.example.net" },
		{ "%%%_%-", "% %20" },
		{ "%{S}", "strong-bad%40email.example.com" },
		{ "%{h}", "mx.example.org" },
	};
	check_expansions(&ctx, cases, sizeof(cases) / sizeof(cases[0]));

	struct str out;
	char err[128];
	ctx.client = (const struct sockaddr *)&v6;
	str_init(&out, STR_NO_MAX);
	CHECK(spf_macro_expand("%{ir}.%{v}._spf.%{d2}", &ctx, false, &out, err,
	    sizeof(err)));
	CHECK_STR(str_cstr(&out), "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
	str_free(&out);

	/* Errors: c, r, t outside exp; a 0 transformer; bad syntax. */
	static const char *const bad[] = { "%{c}", "%{d0}", "%{x}", "%{d",
		"%", "%a" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		str_init(&out, STR_NO_MAX);
		CHECK(!spf_macro_expand(bad[i], &ctx, false, &out, err,
		    sizeof(err)));
		str_free(&out);
	}
	str_init(&out, STR_NO_MAX);
	CHECK(spf_macro_expand("%{c} %{r} %{t}", &ctx, true, &out, err,
	    sizeof(err)));
	str_free(&out);
}

static void test_records(void)
{
	static const struct {
		const char *txt;
		bool ok;
		size_t nterms;
		unsigned dns_terms;
	} cases[] = {
		{ "v=spf1", true, 0, 0 },
		{ "v=spf1 -all", true, 1, 0 },
		{ "V=SPF1 +a mx/24 ~ptr ?exists:%{i}.x.example -all", true, 5, 4 },
		{ "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com ~all",
		  true, 4, 1 },
		{ "v=spf1 a:mail.example.com/24//64 mx:example.org//128", true, 2, 2 },
		{ "v=spf1 redirect=_spf.example.com", true, 0, 1 },
		{ "v=spf1 -all exp=explain._spf.%{d} foo=bar", true, 1, 0 },
		{ "v=spf1   a    -all  ", true, 2, 1 },
		/* RFC 7208 7.1: a domain-spec may hold ':' and '/' */
		{ "v=spf1 a:foo:bar/baz.example.com mx:a/b.example.com/24 -all",
		  true, 3, 2 },
		/* permerrors */
		{ "v=spf1 foo", false, 0, 0 },
		{ "v=spf1 ip4:192.0.2.0/33", false, 0, 0 },
		{ "v=spf1 ip4:300.0.0.1", false, 0, 0 },
		{ "v=spf1 ip6:2001:db8::/129", false, 0, 0 },
		{ "v=spf1 include", false, 0, 0 },
		{ "v=spf1 exists:", false, 0, 0 },
		{ "v=spf1 a:foo", false, 0, 0 },
		{ "v=spf1 a:example.123", false, 0, 0 },
		{ "v=spf1 redirect=a.example redirect=b.example", false, 0, 0 },
		{ "v=spf1 all:x", false, 0, 0 },
		{ "v=spf1 a/024", false, 0, 0 },
		{ "v=spf1 a:foo.example.com/33", false, 0, 0 },
		{ "v=spf1 mx:foo.example.com//129", false, 0, 0 },
		{ "v=spf1 include:%{z}.example.com", false, 0, 0 },
		{ "v=spf1 exists:%{d0}.example.com", false, 0, 0 },
		{ "v=spf1 exists:%{d00r}.example.com", false, 0, 0 },
		{ "v=spf10 -all", false, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct spf_record rec;
		char err[200];
		bool ok = spf_record_parse(cases[i].txt, strlen(cases[i].txt),
		    &rec, err, sizeof(err));
		if (ok != cases[i].ok)
			printf("# \"%s\": %s\n", cases[i].txt, ok ? "parsed" :
			    err);
		CHECK(ok == cases[i].ok);
		if (ok) {
			CHECK_INT(rec.nterms, cases[i].nterms);
			CHECK_INT(rec.dns_terms, cases[i].dns_terms);
			spf_record_free(&rec);
		}
	}

	struct spf_record rec;
	char err[200];
	const char *txt = "v=spf1 -a:mx.example.org/28//60 ip6:2001:db8::1 ~all";
	CHECK(spf_record_parse(txt, strlen(txt), &rec, err, sizeof(err)));
	CHECK_INT(rec.nterms, 3);
	if (rec.nterms == 3) {
		CHECK_INT(rec.terms[0].qualifier, SPF_FAIL);
		CHECK_INT(rec.terms[0].mech, SPF_A);
		CHECK_STR(rec.terms[0].domain_spec, "mx.example.org");
		CHECK_INT(rec.terms[0].cidr4, 28);
		CHECK_INT(rec.terms[0].cidr6, 60);
		CHECK_INT(rec.terms[1].mech, SPF_IP6);
		CHECK_INT(rec.terms[1].cidr6, 128);
		CHECK_INT(rec.terms[1].ip[15], 1);
		CHECK_INT(rec.terms[2].qualifier, SPF_SOFTFAIL);
	}
	spf_record_free(&rec);

	/* The dual-cidr-length is split off from the right (7.1, 5.3). */
	txt = "v=spf1 a:foo:bar/baz.example.com/24//64";
	CHECK(spf_record_parse(txt, strlen(txt), &rec, err, sizeof(err)));
	CHECK_INT(rec.nterms, 1);
	if (rec.nterms == 1) {
		CHECK_STR(rec.terms[0].domain_spec, "foo:bar/baz.example.com");
		CHECK_INT(rec.terms[0].cidr4, 24);
		CHECK_INT(rec.terms[0].cidr6, 64);
	}
	spf_record_free(&rec);
}

/* RFC 7208 7.3 sets no limit on a value's parts (there were 128). */
static void test_macro_many_parts(void)
{
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	char sender[1200];
	size_t k = 0;
	for (int i = 0; i < 200; i++)
		k += (size_t)snprintf(sender + k, sizeof(sender) - k, "%sp%d",
		    i ? "-" : "", i);
	snprintf(sender + k, sizeof(sender) - k, "@example.com");
	struct spf_macro_ctx ctx = {
		.sender = sender, .domain = "example.com", .helo = "h.example",
		.client = (const struct sockaddr *)&v4,
	};
	static const struct macro_case cases[] = {
		{ "%{l1-}.x.example", "p199.x.example" },
		{ "%{l1r-}.x.example", "p0.x.example" },
		{ "%{l2r-}.x.example", "p1.p0.x.example" },
	};
	check_expansions(&ctx, cases, sizeof(cases) / sizeof(cases[0]));
}

/* The zone of test_check_host: all under .test. */
static const char *const check_zone[] = {
	/* A target with empty labels is no name: no lookup, no match. */
	"--txt-record=emptylabel.test,v=spf1 a:mail.example...test -all",
	"--txt-record=longlabel.test,v=spf1 a:a1234567890123456789012345678"
	    "901234567890123456789012345678901234.x.test ?all",
	/* %{p}: the client's validated name, the one in the domain first. */
	"--txt-record=p.test,v=spf1 exists:%{p}.ok.p.test -all",
	"--ptr-record=9.2.0.192.in-addr.arpa,mx.other.test",
	"--ptr-record=9.2.0.192.in-addr.arpa,mx.p.test",
	"--host-record=mx.other.test,192.0.2.9",
	"--host-record=mx.p.test,192.0.2.9",
	"--host-record=mx.p.test.ok.p.test,127.0.0.2",
	"--txt-record=pany.test,v=spf1 exists:%{p}.any.pany.test -all",
	"--host-record=mx.other.test.any.pany.test,127.0.0.2",
	"--host-record=mx.p.test.any.pany.test,127.0.0.2",
	"--txt-record=punknown.test,v=spf1 exists:%{p}.pany.test -all",
	"--host-record=unknown.pany.test,127.0.0.2",
	NULL,
};

static void test_check_host(void)
{
	static const struct {
		const char *ip, *domain;
		enum spf_result want;
	} cases[] = {
		/* RFC 7208 4.3, 5 (suite: invalid-domain-empty-label, -long):
		 * was temperror, the resolver refusing the name. */
		{ "192.0.2.9", "emptylabel.test", SPF_FAIL },
		{ "192.0.2.9", "longlabel.test", SPF_NEUTRAL },
		/* RFC 7208 7.3 (suite: p-macro-multiple): %{p} was always
		 * "unknown". */
		{ "192.0.2.9", "p.test", SPF_PASS },
		{ "192.0.2.9", "pany.test", SPF_PASS },
		/* No PTR for .10: "unknown". */
		{ "192.0.2.10", "punknown.test", SPF_PASS },
		{ "192.0.2.9", "punknown.test", SPF_FAIL },
	};
	if (!unit_dnsmasq_start(check_zone, "p.test")) {
		printf("# dnsmasq did not start (/usr/sbin/dnsmasq)\n");
		CHECK(false);
		unit_dnsmasq_stop();
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_in v4 = { .sin_family = AF_INET };
		inet_pton(AF_INET, cases[i].ip, &v4.sin_addr);
		char sender[128];
		snprintf(sender, sizeof(sender), "a@%s", cases[i].domain);
		struct spf_check c = {
			.client = (const struct sockaddr *)&v4,
			.sender = sender,
			.helo = "h.test",
		};
		enum spf_result r = spf_check_host(&c, cases[i].domain);
		if (r != cases[i].want)
			printf("# %s from %s: %s (%s)\n", cases[i].domain,
			    cases[i].ip, spf_result_name(r), c.why);
		CHECK_INT(r, cases[i].want);
	}
	unit_dnsmasq_stop();
}

int main(void)
{
	RUN(test_macros_rfc7208_7_4);
	RUN(test_records);
	RUN(test_macro_many_parts);
	RUN(test_check_host);
	return unit_done();
}
