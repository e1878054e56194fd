/*
 * test_dkim.c - DKIM canonicalization (mail/dkim_canon.c) against
 * RFC 6376 3.4.6's example and edge cases, the body fed whole and split
 * at every byte; the From: domain the signer picks (mail/dkim_sign.c).
 */
#include <stdlib.h>
#include <string.h>

#include "dkim_canon.h"
#include "dkim_sign.h"
#include "dkim_tags.h"
#include "str.h"
#include "unit.h"

static void collect(void *ctx, const char *data, size_t len)
{
	str_append(ctx, data, len);
}

/* The canonical body, fed in pieces of `step` bytes (0: whole). */
static char *body(enum dkim_canon c, const char *in, size_t step)
{
	struct str out;
	struct dkim_body_canon b;
	size_t len = strlen(in);

	str_init(&out, STR_NO_MAX);
	dkim_body_canon_init(&b, c, collect, &out);
	if (step == 0)
		step = len ? len : 1;
	for (size_t i = 0; i < len; i += step)
		dkim_body_canon_update(&b, in + i, len - i < step ? len - i : step);
	dkim_body_canon_final(&b);
	char *r = strdup(str_cstr(&out));
	str_free(&out);
	return r;
}

static void test_body(void)
{
	static const struct {
		enum dkim_canon c;
		const char *in, *want;
	} cases[] = {
		/* RFC 6376 3.4.6 */
		{ DKIM_CANON_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
		{ DKIM_CANON_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n" },
		/* 3.4.3, 3.4.4: empty bodies; a missing last CRLF */
		{ DKIM_CANON_RELAXED, "", "" },
		{ DKIM_CANON_SIMPLE, "", "\r\n" },
		{ DKIM_CANON_RELAXED, "\r\n\r\n", "" },
		{ DKIM_CANON_SIMPLE, "\r\n\r\n", "\r\n" },
		{ DKIM_CANON_RELAXED, " \t \r\n  \r\n", "" },
		{ DKIM_CANON_SIMPLE, " \r\n", " \r\n" },
		{ DKIM_CANON_RELAXED, "abc", "abc\r\n" },
		{ DKIM_CANON_SIMPLE, "abc", "abc\r\n" },
		/* empty lines inside stay; WSP before a line end goes */
		{ DKIM_CANON_RELAXED, "a\r\n\r\n\r\nb  \r\n", "a\r\n\r\n\r\nb\r\n" },
		{ DKIM_CANON_RELAXED, "\r\n\r\na\r\n", "\r\n\r\na\r\n" },
		/* a bare CR or LF is a byte, not a line end */
		{ DKIM_CANON_RELAXED, "a\rb\nc\r\n", "a\rb\nc\r\n" },
		{ DKIM_CANON_RELAXED, "a \r", "a \r\r\n" },
		{ DKIM_CANON_SIMPLE, "a\r\r\n", "a\r\r\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);
		for (size_t step = 0; step <= len; step++) {
			char *got = body(cases[i].c, cases[i].in, step);
			if (strcmp(got, cases[i].want) != 0)
				printf("# case %zu step %zu\n", i, step);
			CHECK_STR(got, cases[i].want);
			free(got);
		}
	}
}

static void test_header(void)
{
	static const struct {
		enum dkim_canon c;
		const char *in, *want;
	} cases[] = {
		/* RFC 6376 3.4.6 */
		{ DKIM_CANON_RELAXED, "A: X", "a:X\r\n" },
		{ DKIM_CANON_RELAXED, "B : Y\t\r\n\tZ  ", "b:Y Z\r\n" },
		{ DKIM_CANON_SIMPLE, "B : Y\t\r\n\tZ  ", "B : Y\t\r\n\tZ  \r\n" },
		{ DKIM_CANON_RELAXED, "Subject:\t  hello   world \t", "subject:hello world\r\n" },
		{ DKIM_CANON_RELAXED, "X-Empty:", "x-empty:\r\n" },
		{ DKIM_CANON_RELAXED, "X-Empty: \r\n ", "x-empty:\r\n" },
		{ DKIM_CANON_RELAXED, "DKIM-Signature: a=1;\r\n\tb=", "dkim-signature:a=1; b=\r\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct str out;
		str_init(&out, STR_NO_MAX);
		CHECK(dkim_canon_header(cases[i].c, cases[i].in,
		    strlen(cases[i].in), &out));
		CHECK_STR(str_cstr(&out), cases[i].want);
		str_free(&out);
	}
}

static void test_from_domain(void)
{
	static const struct {
		const char *msg, *want;
	} cases[] = {
		{ "From: a@Example.ORG\r\nTo: b@x\r\n\r\nbody\r\n", "example.org" },
		{ "From: \"A, B\" <a@d.example> (c)\r\n\r\n", "d.example" },
		{ "To: b@x\r\nfrom :\r\n Al <al@f.example>\r\n\r\n", "f.example" },
		{ "From: a@x.example, b@y.example\r\n\r\n", NULL },
		{ "From: a@x.example\r\nFrom: b@y.example\r\n\r\n", NULL },
		{ "To: b@x\r\n\r\nFrom: a@x.example\r\n", NULL },
		{ "\r\nFrom: a@x.example\r\n\r\n", NULL },
		{ "From: nobody\r\n\r\n", NULL },
		{ "From: <a@x.example>", "x.example" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dkim_signer *s = dkim_signer_new();
		dkim_signer_update(s, cases[i].msg, strlen(cases[i].msg));
		CHECK_STR(dkim_signer_from_domain(s), cases[i].want);
		dkim_signer_free(s);
	}
}

static void test_tags(void)
{
	static const struct {
		const char *in;
		bool ok;
		const char *name, *want;
	} cases[] = {
		{ "v=1; a=rsa-sha256; d=example.net; s=brisbane;", true, "d", "example.net" },
		{ "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", true, "k", "ed25519" },
		{ " v = 1 ;\r\n\tb=ab cd\r\n ef ", true, "b", "ab cd\r\n ef" },
		{ "v=1;;a=b", false, NULL, NULL },
		{ "v=1; v=2", false, NULL, NULL },
		{ "1v=1", false, NULL, NULL },
		{ "v", false, NULL, NULL },
		{ "v=a\x01b", false, NULL, NULL },
		{ "", true, "v", NULL },
		{ "t=", true, "t", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dkim_tags t;
		char err[128];
		bool ok = dkim_tags_parse(cases[i].in, strlen(cases[i].in), &t,
		    err, sizeof(err));
		CHECK(ok == cases[i].ok);
		if (ok) {
			CHECK_STR(dkim_tags_get(&t, cases[i].name), cases[i].want);
			dkim_tags_free(&t);
		}
	}
	char *s = dkim_tags_strip_wsp("ab cd\r\n ef");
	CHECK_STR(s, "abcdef");
	free(s);
}

int main(void)
{
	RUN(test_tags);
	RUN(test_body);
	RUN(test_header);
	RUN(test_from_domain);
	return unit_done();
}
