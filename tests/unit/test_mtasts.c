/* Unit tests for mail/mtasts.c and mail/tlsrpt.c: the MTA-STS TXT
 * record, policy and MX patterns (RFC 8461), the cache files, the TLS-RPT
 * record, store, JSON and gzip (RFC 8460). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "mtasts.h"
#include "tlsrpt.h"
#include "unit.h"

struct txt_case {
	const char *record;
	bool ok;
	const char *id;
};

static const struct txt_case txt_cases[] = {
	{ "v=STSv1; id=20160831085700Z;", true, "20160831085700Z" },
	{ "v=STSv1;id=abc", true, "abc" },
	{ "v=STSv1; id=abc; ext=1", true, "abc" },
	{ "v=STSv1 ;  id=A1  ;", true, "A1" },
	{ "v=STSv1", false, "" },			/* no id */
	{ "id=abc; v=STSv1", false, "" },		/* v not first */
	{ "v=STSv2; id=abc", false, "" },
	{ "v=STSv1; id=ab-c", false, "" },		/* not alnum */
	{ "v=STSv1; id=123456789012345678901234567890123", false, "" },
	{ "v=STSv1; id=", false, "" },
	{ "v=STSv1; junk", false, "" },
};

static void test_txt(void)
{
	for (size_t i = 0; i < sizeof(txt_cases) / sizeof(txt_cases[0]); i++) {
		char id[MTASTS_ID_MAX + 1];
		bool ok = mtasts_txt_parse(txt_cases[i].record, id, sizeof(id));
		CHECK_INT(ok, txt_cases[i].ok);
		if (ok)
			CHECK_STR(id, txt_cases[i].id);
	}
}

struct policy_case {
	const char *text;
	bool ok;
	enum mtasts_mode mode;
	long max_age;
	size_t nmx;
};

static const struct policy_case policy_cases[] = {
	{ "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	  "mx: *.example.net\r\nmax_age: 604800\r\n", true, MTASTS_ENFORCE,
	  604800, 2 },
	{ "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 86400",
	  true, MTASTS_TESTING, 86400, 1 },
	{ "version: STSv1\nmode: none\nmax_age: 0\n", true, MTASTS_NONE, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999\n"
	  "future: x\n", true, MTASTS_ENFORCE, MTASTS_MAX_AGE_MAX, 1 },
	{ "version:STSv1\nmode:enforce\nmx:a.example\nmax_age:1\n", true,
	  MTASTS_ENFORCE, 1, 1 },
	{ "mode: enforce\nmx: a.example\nmax_age: 1\n", false, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmax_age: 1\n", false, 0, 0, 0 },
	{ "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n", false, 0, 0, 0 },
	{ "version: STSv1\nmode: enforce\nmx: a\nmax_age: -1\n", false, 0, 0,
	  0 },
	{ "version: STSv1\nmode: enforce\nmx: a\nmax_age: 1x\n", false, 0, 0,
	  0 },
	{ "version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n", false, 0, 0,
	  0 },
	{ "version: STSv1\nmode: enforce\nmx: a.example\n", false, 0, 0, 0 },
	{ "<html>not a policy</html>", false, 0, 0, 0 },
};

static void test_policy(void)
{
	for (size_t i = 0; i < sizeof(policy_cases) / sizeof(policy_cases[0]);
	    i++) {
		const struct policy_case *c = &policy_cases[i];
		struct mtasts_policy p;
		char err[200];
		bool ok = mtasts_policy_parse(c->text, strlen(c->text), &p, err,
		    sizeof(err));
		CHECK_INT(ok, c->ok);
		if (ok) {
			CHECK_INT(p.mode, c->mode);
			CHECK_INT(p.max_age, c->max_age);
			CHECK_INT(p.nmx, c->nmx);
		}
		mtasts_policy_free(&p);
	}
}

struct mx_case {
	const char *host;
	bool match;
};

/* RFC 8461 4.1's examples, with "mail.example.com" and "*.example.net". */
static const struct mx_case mx_cases[] = {
	{ "mail.example.com", true },
	{ "MAIL.Example.COM.", true },
	{ "mx.mail.example.com", false },
	{ "example.com", false },
	{ "mx1.example.net", true },
	{ "mx1.example.net.", true },
	{ "example.net", false },
	{ "a.b.example.net", false },
	{ ".example.net", false },
	{ "xexample.net", false },
};

static void test_mx(void)
{
	struct mtasts_policy p;
	char err[200];
	const char *text = "version: STSv1\nmode: enforce\nmx: mail.example.com"
	    "\nmx: *.example.net\nmax_age: 60\n";
	CHECK(mtasts_policy_parse(text, strlen(text), &p, err, sizeof(err)));
	for (size_t i = 0; i < sizeof(mx_cases) / sizeof(mx_cases[0]); i++) {
		bool m = mtasts_mx_match(&p, mx_cases[i].host);
		if (m != mx_cases[i].match)
			printf("# mx %s\n", mx_cases[i].host);
		CHECK_INT(m, mx_cases[i].match);
	}
	mtasts_policy_free(&p);
}

static void test_cache(void)
{
	char dir[] = "/tmp/test_mtasts.XXXXXX", err[200], id[40];
	CHECK(mkdtemp(dir) != NULL);
	const char *text = "version: STSv1\nmode: none\nmax_age: 5\n";
	CHECK(mtasts_cache_write(dir, "Example.COM", "id7", 1234, text,
	    strlen(text), err, sizeof(err)));
	time_t when;
	char *got;
	size_t len;
	CHECK(mtasts_cache_read(dir, "example.com", id, sizeof(id), &when, &got,
	    &len));
	CHECK_STR(id, "id7");
	CHECK_INT(when, 1234);
	CHECK_INT(len, strlen(text));
	CHECK_STR(got, text);
	free(got);
	CHECK(!mtasts_cache_read(dir, "other.example", id, sizeof(id), &when,
	    &got, &len));
	/* Not a name fit for a file. */
	CHECK(!mtasts_cache_write(dir, "../x", "id", 1, "", 0, err,
	    sizeof(err)));
	CHECK(!mtasts_cache_read(dir, "a/b", id, sizeof(id), &when, &got,
	    &len));
	char path[200];
	snprintf(path, sizeof(path), "%s/example.com", dir);
	unlink(path);
	rmdir(dir);
}

/* The negative cache: one step each, in order, on one domain's record. */
struct claim_case {
	const char *what;	/* release: NULL claim only; "ok"; or a reason */
	const char *id;
	long now, until;	/* the claim's now; the release's until */
	enum mtasts_claim want;
	bool hold;		/* keep the lock across the next step */
	bool kept;		/* "+down.example" is there after the step */
};

static const struct claim_case claim_cases[] = {
	{ "nothing remembered: fetch", "d1", 100, 0, MTASTS_CLAIM_FETCH, true,
	    true },
	{ "held by another: busy", "d1", 100, 0, MTASTS_CLAIM_BUSY, false,
	    false },
	{ "fetch failed", "d1", 101, 400, MTASTS_CLAIM_FETCH, false, true },
	{ "remembered", "d1", 399, 0, MTASTS_CLAIM_FAILED, false, true },
	{ "another id: fetch", "d2", 200, 0, MTASTS_CLAIM_FETCH, false,
	    false },
	{ "the window is over: fetch", "d1", 400, 0, MTASTS_CLAIM_FETCH,
	    false, false },
	{ "fetch failed again", "d1", 401, 700, MTASTS_CLAIM_FETCH, false,
	    true },
	{ "fetch worked", "d1", 700, 0, MTASTS_CLAIM_FETCH, false, false },
	{ "nothing remembered after success", "d1", 701, 0,
	    MTASTS_CLAIM_FETCH, false, false },
};

static void test_fetch_claim(void)
{
	char dir[] = "/tmp/test_mtasts.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[200];
	snprintf(path, sizeof(path), "%s/+down.example", dir);
	int held = -1;
	for (size_t i = 0; i < sizeof(claim_cases) / sizeof(claim_cases[0]);
	    i++) {
		const struct claim_case *c = &claim_cases[i];
		struct mtasts_failure f = { 0 };
		int fd = -1;
		enum mtasts_claim got = mtasts_fetch_claim(dir, "Down.Example",
		    c->id, (time_t)c->now, &fd, &f);
		if (got != c->want)
			fprintf(stderr, "case %zu (%s): claim %d, want %d\n", i,
			    c->what, (int)got, (int)c->want);
		CHECK_INT(got, c->want);
		CHECK(got == MTASTS_CLAIM_FETCH ? fd >= 0 : fd == -1);
		if (got == MTASTS_CLAIM_FAILED) {
			CHECK_INT(f.until, 400);
			CHECK_STR(f.why, "connect: refused");
		}
		if (!c->hold) {
			if (held >= 0) {
				mtasts_fetch_release(dir, "Down.Example", held,
				    c->id, 0, NULL);
				held = -1;
			}
			const char *why = strstr(c->what, "failed") ?
			    "connect: refused" : NULL;
			mtasts_fetch_release(dir, "Down.Example", fd, c->id,
			    (time_t)c->until, why);
		} else {
			held = fd;
		}
		/* Only a failure leaves a file behind (issue 20). */
		if ((access(path, F_OK) == 0) != c->kept)
			fprintf(stderr, "case %zu (%s): the file is %s\n", i,
			    c->what, c->kept ? "gone" : "still there");
		CHECK((access(path, F_OK) == 0) == c->kept);
	}
	/* A process that opened the file before a finished fetch removed
	 * it, and locks it after, holds a file with no name: that blocks
	 * no claim, which takes the name anew. */
	int first = -1, second = -1;
	struct mtasts_failure nf;
	CHECK_INT(mtasts_fetch_claim(dir, "down.example", "d3", 800, &first,
	    &nf), MTASTS_CLAIM_FETCH);
	int stale = open(path, O_RDWR | O_CLOEXEC);
	CHECK(stale >= 0);
	mtasts_fetch_release(dir, "down.example", first, "d3", 0, NULL);
	CHECK(flock(stale, LOCK_EX | LOCK_NB) == 0);
	CHECK_INT(mtasts_fetch_claim(dir, "down.example", "d3", 801, &second,
	    &nf), MTASTS_CLAIM_FETCH);
	CHECK(second >= 0);
	mtasts_fetch_release(dir, "down.example", second, "d3", 0, NULL);
	close(stale);
	/* A name not fit for a file: fetch, unguarded. */
	int fd = 0;
	struct mtasts_failure f;
	CHECK_INT(mtasts_fetch_claim(dir, "../x", "d1", 1, &fd, &f),
	    MTASTS_CLAIM_FETCH);
	CHECK_INT(fd, -1);
	CHECK(access(path, F_OK) != 0);
	CHECK(rmdir(dir) == 0);
}

static void test_rua(void)
{
	char rua[4][256];
	size_t n;
	CHECK(tlsrpt_txt_parse("v=TLSRPTv1; rua=mailto:a@example.com,"
	    "https://r.example/x, mailto:b@example.net?subject=x", rua, 4, &n));
	CHECK_INT(n, 2);
	CHECK_STR(rua[0], "a@example.com");
	CHECK_STR(rua[1], "b@example.net");
	CHECK(!tlsrpt_txt_parse("v=TLSRPTv2; rua=mailto:a@b", rua, 4, &n));
	CHECK(!tlsrpt_txt_parse("v=spf1 -all", rua, 4, &n));
	CHECK(tlsrpt_txt_parse("v=TLSRPTv1;rua=https://only.example/", rua, 4,
	    &n));
	CHECK_INT(n, 0);
}

/* The store, added up, into JSON; and the gzip wrapping. */
static void test_store_json_gzip(void)
{
	char dir[] = "/tmp/test_tlsrpt.XXXXXX", err[200], path[300];
	CHECK(mkdtemp(dir) != NULL);
	time_t day = 1796428800;	/* 2026-12-05T00:00:00Z */
	struct tlsrpt_event ok = { "sts", "d.example", "success", "mx.d.example",
		"192.0.2.1", "198.51.100.1", "" };
	struct tlsrpt_event bad = { "sts", "d.example",
		"certificate-expired", "mx.d.example", "192.0.2.1",
		"198.51.100.1", "tab\there \"quoted\"" };
	CHECK(tlsrpt_record(dir, day + 10, &ok, err, sizeof(err)));
	CHECK(tlsrpt_record(dir, day + 20, &ok, err, sizeof(err)));
	CHECK(tlsrpt_record(dir, day + 30, &bad, err, sizeof(err)));
	CHECK(tlsrpt_record(dir, day + 40, &bad, err, sizeof(err)));
	tlsrpt_day_path(path, sizeof(path), dir, day + 5);
	CHECK(strstr(path, "/2026-12-05") != NULL);
	struct tlsrpt_day d;
	CHECK(tlsrpt_day_read(path, &d));
	CHECK_INT(d.count, 1);
	CHECK_INT(d.v[0].successes, 2);
	CHECK_INT(d.v[0].failures, 2);
	CHECK_INT(d.v[0].nfail, 1);
	CHECK_INT(d.v[0].fail[0].count, 2);
	/* The tab is gone from the stored text; quotes are escaped. */
	CHECK_STR(d.v[0].fail[0].info, "tab?here \"quoted\"");
	struct tlsrpt_meta meta = { "Org", "c@example", "rid", day,
		day + 86399 };
	struct str json;
	str_init(&json, 1 << 20);
	tlsrpt_json(&json, &meta, d.v, d.count,
	    "version: STSv1\r\nmode: enforce\r\nmx: mx.d.example\r\n"
	    "max_age: 60\r\n");
	const char *j = str_cstr(&json);
	CHECK(strstr(j, "\"start-datetime\":\"2026-12-05T00:00:00Z\"") != NULL);
	CHECK(strstr(j, "\"end-datetime\":\"2026-12-05T23:59:59Z\"") != NULL);
	CHECK(strstr(j, "\"policy-string\":[\"version: STSv1\",\"mode: "
	    "enforce\",\"mx: mx.d.example\",\"max_age: 60\"]") != NULL);
	CHECK(strstr(j, "\"mx-host\":[\"mx.d.example\"]") != NULL);
	CHECK(strstr(j, "\"total-successful-session-count\":2,"
	    "\"total-failure-session-count\":2") != NULL);
	CHECK(strstr(j, "\"additional-information\":\"tab?here "
	    "\\\"quoted\\\"\"") != NULL);
	tlsrpt_day_free(&d);
	unlink(path);
	rmdir(dir);

	/* RFC 1952: the CRC-32 of "123456789" is cbf43926. */
	struct str gz;
	str_init(&gz, 1 << 20);
	tlsrpt_gzip(&gz, "123456789", 9, 0);
	const unsigned char *g = (const unsigned char *)gz.data;
	CHECK_INT(gz.len, 10 + 5 + 9 + 8);
	CHECK(g[0] == 0x1f && g[1] == 0x8b && g[2] == 8);
	CHECK(g[10] == 1 && g[11] == 9 && g[12] == 0 && g[13] == 0xf6);
	CHECK(memcmp(g + 15, "123456789", 9) == 0);
	CHECK(g[24] == 0x26 && g[25] == 0x39 && g[26] == 0xf4 && g[27] == 0xcb);
	CHECK(g[28] == 9 && g[29] == 0);
	/* Over 65535 octets: two stored blocks, the last one final. */
	str_clear(&gz);
	char *big = calloc(1, 70000);
	tlsrpt_gzip(&gz, big, 70000, 0);
	CHECK_INT(gz.len, 10 + 5 + 65535 + 5 + (70000 - 65535) + 8);
	CHECK(gz.data[10] == 0 && gz.data[10 + 5 + 65535] == 1);
	free(big);
	str_free(&gz);
	str_free(&json);
}

int main(void)
{
	RUN(test_txt);
	RUN(test_policy);
	RUN(test_mx);
	RUN(test_cache);
	RUN(test_fetch_claim);
	RUN(test_rua);
	RUN(test_store_json_gzip);
	return unit_done();
}
