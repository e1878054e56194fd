/*
 * test_dmarc.c - DMARC (mail/dmarc.c): the organizational domain from
 * Debian's Public Suffix List (co.uk style suffixes, wildcards and
 * exceptions), identifier alignment as RFC 7489 B.2 shows it, the policy
 * record (6.3) and verdicts over RFC 7489 appendix B's records (B.2, B.3),
 * with a table of TXT records standing in for DNS; the From: domain, and
 * the Authentication-Results writer and forgery test (mail/authres.c).
 */
#include <stdlib.h>
#include <string.h>

#include "authres.h"
#include "dmarc.h"
#include "str.h"
#include "unit.h"

#define PSL "/usr/share/publicsuffix/public_suffix_list.dat"

static void test_org_domain_psl(void)
{
	char err[256];
	CHECK(dmarc_psl_load(PSL, err, sizeof(err)));
	static const struct {
		const char *domain, *org;
	} cases[] = {
		{ "example.com", "example.com" },
		{ "mail.example.com", "example.com" },
		{ "a.b.c.Example.COM.", "example.com" },
		{ "example.co.uk", "example.co.uk" },
		{ "mail.example.co.uk", "example.co.uk" },
		{ "co.uk", "co.uk" },
		{ "uk", "uk" },
		{ "www.city.kawasaki.jp", "city.kawasaki.jp" },	/* !exception */
		{ "a.b.kawasaki.jp", "a.b.kawasaki.jp" },	/* *.kawasaki.jp */
		{ "x.a.b.kawasaki.jp", "a.b.kawasaki.jp" },
		{ "mail.example.com.au", "example.com.au" },
		{ "foo.bar.example.unknowntld", "example.unknowntld" },
		{ "user.github.io", "user.github.io" },	/* private section */
		{ "mail.example.xn--p1ai", "example.xn--p1ai" },	/* .рф */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char out[256];
		dmarc_org_domain(cases[i].domain, out, sizeof(out));
		CHECK_STR(out, cases[i].org);
	}
	CHECK(!dmarc_psl_load("/nonexistent/psl.dat", err, sizeof(err)));
}

/* RFC 7489 B.2.1 (SPF) and B.2.2 (DKIM): the same shapes. */
static void test_alignment_b2(void)
{
	static const struct {
		const char *id, *from;
		bool relaxed, strict;
	} cases[] = {
		{ "example.com", "example.com", true, true },
		{ "child.example.com", "example.com", true, false },
		{ "example.com", "child.example.com", true, false },
		{ "example.org", "example.com", false, false },
		{ "EXAMPLE.com", "example.COM", true, true },
		{ "a.example.co.uk", "b.example.co.uk", true, false },
		{ "example.co.uk", "other.co.uk", false, false },
		{ "co.uk", "example.co.uk", false, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		CHECK_INT(dmarc_aligned(cases[i].id, cases[i].from, false),
		    cases[i].relaxed);
		CHECK_INT(dmarc_aligned(cases[i].id, cases[i].from, true),
		    cases[i].strict);
	}
}

static void test_record_parse(void)
{
	static const struct {
		const char *txt;
		bool ok;
		enum dmarc_policy p, sp;
		int pct;
		bool adkim_s, aspf_s;
	} cases[] = {
		{ "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
		    true, DMARC_POLICY_NONE, DMARC_POLICY_NONE, 100, false,
		    false },
		{ "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@"
		    "example.com; ruf=mailto:auth-reports@thirdparty.example.net; "
		    "pct=25", true, DMARC_POLICY_QUARANTINE,
		    DMARC_POLICY_QUARANTINE, 25, false, false },
		{ "v=DMARC1; p=reject; sp=none; adkim=s; aspf=s", true,
		    DMARC_POLICY_REJECT, DMARC_POLICY_NONE, 100, true, true },
		{ "v=DMARC1;p=reject;pct=bad", true, DMARC_POLICY_REJECT,
		    DMARC_POLICY_REJECT, 100, false, false },
		/* 6.6.3 step 6: bad p= with rua= is p=none, without it nothing. */
		{ "v=DMARC1; p=bogus; rua=mailto:a@example.com", true,
		    DMARC_POLICY_NONE, DMARC_POLICY_NONE, 100, false, false },
		{ "v=DMARC1; p=bogus", false, 0, 0, 0, false, false },
		{ "v=DMARC1", false, 0, 0, 0, false, false },
		{ "v=spf1 -all", false, 0, 0, 0, false, false },
		{ "p=reject; v=DMARC1", false, 0, 0, 0, false, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct dmarc_record r;
		bool ok = dmarc_record_parse(cases[i].txt, &r);
		CHECK_INT(ok, cases[i].ok);
		if (!ok || !cases[i].ok)
			continue;
		CHECK_INT(r.p, cases[i].p);
		CHECK_INT(r.sp, cases[i].sp);
		CHECK_INT(r.pct, cases[i].pct);
		CHECK_INT(r.adkim_strict, cases[i].adkim_s);
		CHECK_INT(r.aspf_strict, cases[i].aspf_s);
	}
}

/* DNS as a table: name, record ("" = NXDOMAIN, "TEMP" = SERVFAIL). */
static const struct {
	const char *name, *txt;
} zone[] = {
	/* B.3.1 / B.3.2: the Domain Owner's records */
	{ "_dmarc.example.com", "v=DMARC1; p=none; "
	    "rua=mailto:dmarc-feedback@example.com" },
	{ "_dmarc.example.net", "v=DMARC1; p=quarantine; "
	    "rua=mailto:dmarc-feedback@example.net; pct=25" },
	{ "_dmarc.example.org", "v=DMARC1; p=reject; sp=quarantine; "
	    "aspf=s" },
	{ "_dmarc.strict.example", "v=DMARC1; p=reject; adkim=s" },
	{ "_dmarc.example.co.uk", "v=DMARC1; p=reject" },
	{ "_dmarc.temp.example", "TEMP" },
};

static enum dns_result table_lookup(void *ctx, const char *name, char *txt,
    size_t txtsize)
{
	int *lookups = ctx;
	(*lookups)++;
	for (size_t i = 0; i < sizeof(zone) / sizeof(*zone); i++) {
		if (strcmp(zone[i].name, name) != 0)
			continue;
		if (strcmp(zone[i].txt, "TEMP") == 0)
			return DNS_TEMPFAIL;
		snprintf(txt, txtsize, "%s", zone[i].txt);
		return DNS_OK;
	}
	return DNS_NOTFOUND;
}

static void test_verdicts(void)
{
	static const struct {
		const char *from, *spf_domain;
		bool spf_pass;
		const char *dkim_d;	/* a passing signature's d=, or NULL */
		int roll;
		enum dmarc_result result;
		enum dmarc_policy disposition;
		bool used_sp;
		int lookups;
	} cases[] = {
		/* B.3.1: p=none - a failure is only reported */
		{ "example.com", "example.com", true, NULL, 0, DMARC_PASS,
		    DMARC_POLICY_NONE, false, 1 },
		{ "example.com", "spammer.example", true, NULL, 0, DMARC_FAIL,
		    DMARC_POLICY_NONE, false, 1 },
		/* B.2.1: relaxed SPF alignment of a child domain */
		{ "example.com", "child.example.com", true, NULL, 0,
		    DMARC_PASS, DMARC_POLICY_NONE, false, 1 },
		/* B.3.2: quarantine for pct=25 of the failures */
		{ "example.net", "other.example", true, NULL, 10, DMARC_FAIL,
		    DMARC_POLICY_QUARANTINE, false, 1 },
		{ "example.net", "other.example", true, NULL, 60, DMARC_FAIL,
		    DMARC_POLICY_NONE, false, 1 },
		/* B.2.2: DKIM alone passes, relaxed */
		{ "example.net", "other.example", false, "mail.example.net",
		    90, DMARC_PASS, DMARC_POLICY_NONE, false, 1 },
		/* reject; aspf=s: a child's SPF is not aligned, DKIM is */
		{ "example.org", "child.example.org", true, NULL, 0,
		    DMARC_FAIL, DMARC_POLICY_REJECT, false, 1 },
		{ "example.org", "child.example.org", true, "example.org", 0,
		    DMARC_PASS, DMARC_POLICY_NONE, false, 1 },
		/* a subdomain without a record: the org domain's sp= */
		{ "news.example.org", "spammer.example", true, NULL, 0,
		    DMARC_FAIL, DMARC_POLICY_QUARANTINE, true, 2 },
		/* adkim=s: a child's signature is not aligned */
		{ "strict.example", "x.example", false, "a.strict.example", 0,
		    DMARC_FAIL, DMARC_POLICY_REJECT, false, 1 },
		/* a co.uk registration: its own record; another is not aligned */
		{ "mail.example.co.uk", "example.co.uk", true, NULL, 0,
		    DMARC_PASS, DMARC_POLICY_NONE, true, 2 },
		{ "example.co.uk", "other.co.uk", true, "co.uk", 0,
		    DMARC_FAIL, DMARC_POLICY_REJECT, false, 1 },
		/* no record anywhere; DNS failure */
		{ "nothing.example", "nothing.example", true, NULL, 0,
		    DMARC_NONE, DMARC_POLICY_NONE, false, 1 },
		{ "temp.example", "temp.example", true, NULL, 0,
		    DMARC_TEMPERROR, DMARC_POLICY_NONE, false, 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const char *d[1] = { cases[i].dkim_d };
		struct dmarc_input in = {
			.from_domain = cases[i].from,
			.spf_pass = cases[i].spf_pass,
			.spf_domain = cases[i].spf_domain,
			.dkim_pass_domains = d,
			.ndkim = cases[i].dkim_d ? 1 : 0,
			.pct_roll = cases[i].roll,
		};
		struct dmarc_verdict v;
		int lookups = 0;
		dmarc_evaluate(&in, table_lookup, &lookups, &v);
		if (v.result != cases[i].result)
			printf("# case %zu (%s)\n", i, cases[i].from);
		CHECK_INT(v.result, cases[i].result);
		CHECK_INT(v.disposition, cases[i].disposition);
		CHECK_INT(v.used_sp, cases[i].used_sp);
		CHECK_INT(lookups, cases[i].lookups);
	}
}

static void test_from_domain(void)
{
	static const struct {
		const char *headers, *want;	/* want NULL: no domain */
	} cases[] = {
		{ "From: a@Example.COM\r\n\r\n", "example.com" },
		{ "Subject: x\r\nfrom:\r\n \"Doe, John\" <j@d.example>\r\n\r\n",
		    "d.example" },
		{ "From: (c@comment.example) Joe <j@real.example> (x)\r\n",
		    "real.example" },
		{ "From: a@one.example, b@two.example\r\n\r\n", NULL },
		{ "From: a@one.example\r\nFrom: b@two.example\r\n\r\n", NULL },
		{ "To: a@b.example\r\n\r\nFrom: x@body.example\r\n", NULL },
		{ "From: undisclosed:;\r\n\r\n", NULL },
		{ "From: nobody\r\n\r\n", NULL },
		/* found by fuzz_dmarc: control bytes are not a domain */
		{ "From: v@ex\013ample.org\r\n\r\n", NULL },
		{ "From: v@b\xc3\xbc" "cher.example\r\n\r\n", "b\xc3\xbc" "cher.example" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char out[256];
		bool ok = dmarc_from_domain(cases[i].headers,
		    strlen(cases[i].headers), out, sizeof(out));
		CHECK_INT(ok, cases[i].want != NULL);
		if (ok && cases[i].want)
			CHECK_STR(out, cases[i].want);
	}
}

static void test_authres(void)
{
	struct str h;
	str_init(&h, STR_NO_MAX);
	authres_start(&h, "mx.example");
	authres_method(&h, "spf", "pass", "client (1.2.3.4) is allowed");
	authres_prop(&h, "smtp.mailfrom", "a.b@example.org");
	authres_method(&h, "dkim", "fail", NULL);
	authres_prop(&h, "header.d", "ex;ample\r\nX: y");
	authres_end(&h, 2);
	CHECK_STR(str_cstr(&h), "Authentication-Results: mx.example;\r\n"
	    "\tspf=pass (client  1.2.3.4  is allowed) "
	    "smtp.mailfrom=a.b@example.org;\r\n"
	    "\tdkim=fail header.d=\"ex;ampleX: y\"\r\n");
	str_clear(&h);
	authres_start(&h, "mx.example");
	authres_end(&h, 0);
	CHECK_STR(str_cstr(&h), "Authentication-Results: mx.example; none\r\n");
	str_free(&h);

	static const struct {
		const char *value;
		bool ours;
	} cases[] = {
		{ " mx.example; spf=pass", true },
		{ " MX.Example;\r\n\tdkim=pass", true },
		{ " (forged) mx.example 1; none", true },
		{ " \"mx.example\"; none", true },
		{ " mx.example.evil; none", false },
		{ " other.example; spf=pass (mx.example)", false },
		{ " ", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		CHECK_INT(authres_claims_id(cases[i].value,
		    strlen(cases[i].value), "mx.example"), cases[i].ours);
}

int main(void)
{
	RUN(test_org_domain_psl);
	RUN(test_alignment_b2);
	RUN(test_record_parse);
	RUN(test_verdicts);
	RUN(test_from_domain);
	RUN(test_authres);
	dmarc_psl_free();
	return unit_done();
}
