/* Unit tests for util/str.c and log_escape(). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "str.h"
#include "unit.h"

static void test_append_and_max(void)
{
	struct str s;
	str_init(&s, 10);
	CHECK_STR(str_cstr(&s), "");
	CHECK(str_append_cstr(&s, "hello"));
	CHECK(str_append(&s, " wor", 4));
	CHECK_INT(s.len, 9);
	CHECK(!str_append_cstr(&s, "ld"));	/* would pass max */
	CHECK_STR(str_cstr(&s), "hello wor");	/* unchanged */
	CHECK(str_append_char(&s, 'l'));
	CHECK(!str_append_char(&s, 'd'));
	CHECK_INT(s.len, 10);
	str_free(&s);
}

static void test_binary_safe(void)
{
	struct str s;
	str_init(&s, STR_NO_MAX);
	CHECK(str_append(&s, "a\0b", 3));
	CHECK_INT(s.len, 3);
	CHECK(memcmp(s.data, "a\0b", 4) == 0);	/* spare NUL after */
	str_free(&s);
}

static void test_appendf_grows(void)
{
	struct str s;
	str_init(&s, STR_NO_MAX);
	for (int i = 0; i < 1000; i++)
		CHECK(str_appendf(&s, "%04d", i));
	CHECK_INT(s.len, 4000);
	CHECK(strncmp(s.data + 3996, "0999", 4) == 0);
	char big[1000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	str_clear(&s);
	CHECK(str_appendf(&s, "<%s>", big));
	CHECK_INT(s.len, 1001);
	str_free(&s);
}

static void test_appendf_respects_max(void)
{
	struct str s;
	str_init(&s, 5);
	CHECK(!str_appendf(&s, "%s", "123456"));
	CHECK_INT(s.len, 0);
	CHECK(str_appendf(&s, "%d", 12345));
	str_free(&s);
}

/* str_append_uint: what "%llu" gives, at both ends of the range. */
static void test_append_uint(void)
{
	static const struct {
		unsigned long long n;
		const char *text;
	} cases[] = {
		{ 0, "0" }, { 7, "7" }, { 10, "10" }, { 4294967295u, "4294967295" },
		{ 18446744073709551615ull, "18446744073709551615" },
	};
	struct str s;
	str_init(&s, STR_NO_MAX);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		str_set(&s, "n=");
		CHECK(str_append_uint(&s, cases[i].n));
		CHECK(strcmp(str_cstr(&s) + 2, cases[i].text) == 0);
		CHECK_INT(s.len, 2 + strlen(cases[i].text));
	}
	str_free(&s);
	str_init(&s, 3);
	CHECK(str_append_uint(&s, 123));
	CHECK(!str_append_uint(&s, 4));		/* would pass max */
	CHECK_STR(str_cstr(&s), "123");
	str_free(&s);
}

/* str_append_cstrs: the pieces in order; stops at the max. */
static void test_append_cstrs(void)
{
	struct str s;
	str_init(&s, STR_NO_MAX);
	str_set(&s, ">");
	CHECK(str_append_cstrs(&s, "a", "", "bc", "d", (char *)NULL));
	CHECK_STR(str_cstr(&s), ">abcd");
	CHECK(str_append_cstrs(&s, (char *)NULL));
	CHECK_INT(s.len, 5);
	str_free(&s);
	str_init(&s, 4);
	CHECK(!str_append_cstrs(&s, "ab", "cde", "f", (char *)NULL));
	CHECK_STR(str_cstr(&s), "ab");
	str_free(&s);
}

static void test_consume_truncate_steal(void)
{
	struct str s;
	str_init(&s, 100);
	str_set(&s, "abcdef");
	str_consume(&s, 2);
	CHECK_STR(str_cstr(&s), "cdef");
	str_truncate(&s, 2);
	CHECK_STR(str_cstr(&s), "cd");
	str_consume(&s, 10);
	CHECK_STR(str_cstr(&s), "");
	str_set(&s, "xyz");
	char *p = str_steal(&s);
	CHECK_STR(p, "xyz");
	CHECK_STR(str_cstr(&s), "");
	free(p);
	str_free(&s);
}

static void test_log_escape(void)
{
	char out[32];
	CHECK_STR(log_escape(out, sizeof(out), "plain text", 10), "plain text");
	CHECK_STR(log_escape(out, sizeof(out), "a\r\nb\x01", 5), "a\\r\\nb\\x01");
	CHECK_STR(log_escape(out, sizeof(out), "back\\slash", 10),
	    "back\\\\slash");
	char small[8];
	CHECK_STR(log_escape(small, sizeof(small), "0123456789", 10), "0123...");
	CHECK_STR(log_escape(small, sizeof(small), "0123456", 7), "0123456");
	CHECK_STR(log_escape(small, sizeof(small), "\x01\x02", 2), "\\x01...");
}

/* RFC 3629 4: shortest form only, no surrogates, nothing past U+10FFFF. */
static void test_utf8_len(void)
{
	static const struct {
		const char *in;
		size_t len;
	} cases[] = {
		{ "a", 1 },
		{ "\xc3\xb6", 2 },		/* U+00F6 */
		{ "\xc2\x9b", 2 },		/* U+009B: a C1 control, valid */
		{ "\xe2\x82\xac", 3 },	/* U+20AC */
		{ "\xf0\x9f\x93\xa7", 4 },	/* U+1F4E7 */
		{ "\xc0\xaf", 0 },		/* overlong "/" */
		{ "\xe0\x80\xaf", 0 },	/* overlong, three bytes */
		{ "\xed\xa0\x80", 0 },	/* U+D800, a surrogate */
		{ "\xf4\x90\x80\x80", 0 },	/* U+110000 */
		{ "\x80", 0 },			/* a lone continuation byte */
		{ "\xe2\x82", 0 },		/* cut short */
		{ "\xc3(", 0 },			/* no continuation byte */
		{ "\xf8\x88\x80\x80\x80", 0 },	/* five bytes */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = cases[i].in;
		size_t got = str_utf8_len((const unsigned char *)in, strlen(in));
		if (got != cases[i].len)
			printf("# case %zu: %zu\n", i, got);
		CHECK_INT(got, cases[i].len);
	}
}

int main(void)
{
	RUN(test_append_and_max);
	RUN(test_binary_safe);
	RUN(test_appendf_grows);
	RUN(test_appendf_respects_max);
	RUN(test_append_uint);
	RUN(test_append_cstrs);
	RUN(test_consume_truncate_steal);
	RUN(test_log_escape);
	RUN(test_utf8_len);
	return unit_done();
}
