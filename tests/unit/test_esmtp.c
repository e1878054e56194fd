/* Unit tests for mail/esmtp.c: verbs, MAIL/RCPT parameters, replies. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "esmtp.h"
#include "unit.h"

static void test_split(void)
{
	struct esmtp_command c;
	esmtp_split_command("mail FROM:<a@b> SIZE=1", &c);
	CHECK_STR(c.verb, "MAIL");
	CHECK_STR(c.arg, "FROM:<a@b> SIZE=1");
	esmtp_split_command("QUIT", &c);
	CHECK_STR(c.verb, "QUIT");
	CHECK_STR(c.arg, "");
	esmtp_split_command("EHLO   client.example  ", &c);
	CHECK_STR(c.verb, "EHLO");
	CHECK_STR(c.arg, "client.example  ");
	esmtp_split_command("AVERYLONGVERBINDEED x", &c);
	CHECK_STR(c.verb, "");
	esmtp_split_command("", &c);
	CHECK_STR(c.verb, "");
	CHECK_STR(c.arg, "");
	esmtp_split_command(" NOOP", &c);
	CHECK_STR(c.verb, "");
}

#define ALL (ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME | ESMTP_EXT_SMTPUTF8 | \
    ESMTP_EXT_DSN | ESMTP_EXT_CHUNKING | ESMTP_EXT_BINARYMIME)

struct mail_case {
	const char *text;
	unsigned ext;
	int code;		/* 0: accepted */
};

static const struct mail_case mail_cases[] = {
	{ "", ALL, 0 },
	{ " ", ALL, 0 },
	{ "SIZE=1000", ALL, 0 },
	{ "size=0", ALL, 0 },
	{ "SIZE=99999999999999999999", ALL, 501 },	/* overflows */
	{ "SIZE=", ALL, 501 },
	{ "SIZE", ALL, 501 },
	{ "SIZE=12a", ALL, 501 },
	{ "SIZE=-1", ALL, 501 },
	{ "SIZE=1 SIZE=2", ALL, 501 },
	{ "SIZE=1", 0, 555 },
	{ "BODY=7BIT", ALL, 0 },
	{ "BODY=8bitmime", ALL, 0 },
	{ "BODY=BINARYMIME", ALL, 0 },
	{ "BODY=BINARYMIME", ALL & ~ESMTP_EXT_CHUNKING, 555 },
	{ "BODY=BINARYMIME", ALL & ~ESMTP_EXT_BINARYMIME, 555 },
	{ "BODY=9BIT", ALL, 555 },
	{ "BODY", ALL, 501 },
	{ "SMTPUTF8", ALL, 0 },
	{ "SMTPUTF8=yes", ALL, 501 },
	{ "SMTPUTF8", ALL & ~ESMTP_EXT_SMTPUTF8, 555 },
	/* RFC 8689: a keyword without value, only where offered (TLS). */
	{ "REQUIRETLS", ALL | ESMTP_EXT_REQUIRETLS, 0 },
	{ "requiretls", ALL | ESMTP_EXT_REQUIRETLS, 0 },
	{ "REQUIRETLS=yes", ALL | ESMTP_EXT_REQUIRETLS, 501 },
	{ "REQUIRETLS REQUIRETLS", ALL | ESMTP_EXT_REQUIRETLS, 501 },
	{ "REQUIRETLS", ALL, 555 },
	{ "RET=FULL", ALL, 0 },
	{ "RET=hdrs", ALL, 0 },
	{ "RET=ALL", ALL, 501 },
	{ "RET=FULL", ALL & ~ESMTP_EXT_DSN, 555 },
	{ "ENVID=abc+2Bdef", ALL, 0 },
	{ "ENVID=a+0Ab", ALL, 501 },
	{ "ENVID=a+", ALL, 501 },
	{ "ENVID=", ALL, 501 },
	{ "AUTH=<>", ALL, 555 },		/* AUTH not offered */
	{ "AUTH=<>", ALL | ESMTP_EXT_AUTH, 0 },
	{ "XFOO=bar", ALL, 555 },
	{ "X-FOO", ALL, 555 },
	{ "-FOO", ALL, 501 },
	{ "SIZE=1\tBODY=7BIT", ALL, 501 },
	{ "SIZE=1 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x", ALL, 0 },
	{ "SIZE=1  BODY=8BITMIME ", ALL, 0 },
	{ "FOO==", ALL, 501 },
	{ "SIZE=1=2", ALL, 501 },
	{ "ENVID=\xc3\xa9", ALL, 501 },
};

static void test_mail_params(void)
{
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		const struct mail_case *c = &mail_cases[i];
		struct esmtp_mail_params p;
		int code = 0;
		const char *enh = NULL, *why = NULL;
		bool ok = esmtp_parse_mail_params(c->text, c->ext, &p, &code,
		    &enh, &why);
		if (ok != (c->code == 0) || (!ok && code != c->code))
			printf("# mail case %zu \"%s\": ok=%d code=%d\n", i,
			    c->text, ok, code);
		CHECK(ok == (c->code == 0));
		if (!ok) {
			CHECK_INT(code, c->code);
			CHECK_STR(enh, "5.5.4");
			CHECK(why != NULL);
		} else {
			esmtp_mail_params_free(&p);
		}
	}
}

static void test_mail_values(void)
{
	struct esmtp_mail_params p;
	int code;
	const char *enh, *why;

	CHECK(esmtp_parse_mail_params("", ALL, &p, &code, &enh, &why));
	CHECK_INT(p.size, -1);
	CHECK_INT(p.body, QUEUE_BODY_7BIT);
	CHECK(!p.body_given && !p.smtputf8);
	CHECK(p.envid == NULL);
	esmtp_mail_params_free(&p);

	CHECK(esmtp_parse_mail_params("size=20971520 BODY=BINARYMIME SMTPUTF8 "
	    "RET=HDRS ENVID=QQ+2B1", ALL, &p, &code, &enh, &why));
	CHECK_INT(p.size, 20971520);
	CHECK_INT(p.body, QUEUE_BODY_BINARYMIME);
	CHECK(p.body_given && p.smtputf8);
	CHECK_INT(p.ret, QUEUE_RET_HDRS);
	CHECK_STR(p.envid, "QQ+1");
	esmtp_mail_params_free(&p);
}

struct rcpt_case {
	const char *text;
	unsigned notify;
	const char *orcpt;
	int code;
};

static const struct rcpt_case rcpt_cases[] = {
	{ "", 0, NULL, 0 },
	{ "NOTIFY=NEVER", QUEUE_NOTIFY_NEVER, NULL, 0 },
	{ "NOTIFY=success,FAILURE", QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE,
	    NULL, 0 },
	{ "NOTIFY=DELAY", QUEUE_NOTIFY_DELAY, NULL, 0 },
	{ "NOTIFY=NEVER,SUCCESS", 0, NULL, 501 },
	{ "NOTIFY=SUCCESS,SUCCESS", 0, NULL, 501 },
	{ "NOTIFY=SUCCESS,", 0, NULL, 501 },
	{ "NOTIFY=", 0, NULL, 501 },
	{ "NOTIFY=SOMETIMES", 0, NULL, 501 },
	{ "NOTIFY=DELAY NOTIFY=DELAY", 0, NULL, 501 },
	{ "ORCPT=rfc822;bob+2Btag@example.org", 0, "rfc822;bob+tag@example.org",
	    0 },
	{ "ORCPT=rfc822;bob@example.org NOTIFY=FAILURE", QUEUE_NOTIFY_FAILURE,
	    "rfc822;bob@example.org", 0 },
	{ "ORCPT=utf-8;j\xc3\xb6rg@example.org", 0,
	    "utf-8;j\xc3\xb6rg@example.org", 0 },
	{ "ORCPT=bob@example.org", 0, NULL, 501 },
	{ "ORCPT=;bob@example.org", 0, NULL, 501 },
	{ "ORCPT=rfc822;", 0, NULL, 501 },
	{ "ORCPT=rfc822;a+0Db", 0, NULL, 501 },
	{ "ORCPT=rf(c;a", 0, NULL, 501 },
	{ "XFOO=1", 0, NULL, 555 },
	{ "SIZE=1", 0, NULL, 555 },
};

static void test_rcpt_params(void)
{
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct esmtp_rcpt_params p;
		int code = 0;
		const char *enh = NULL, *why = NULL;
		bool ok = esmtp_parse_rcpt_params(c->text, ALL, &p, &code, &enh,
		    &why);
		if (ok != (c->code == 0) || (!ok && code != c->code))
			printf("# rcpt case %zu \"%s\": ok=%d code=%d\n", i,
			    c->text, ok, code);
		CHECK(ok == (c->code == 0));
		if (ok) {
			CHECK_INT(p.notify, c->notify);
			CHECK_STR(p.orcpt, c->orcpt);
			esmtp_rcpt_params_free(&p);
		} else {
			CHECK_INT(code, c->code);
			CHECK_STR(enh, "5.5.4");
		}
	}
	/* without DSN, NOTIFY is unknown */
	struct esmtp_rcpt_params p;
	int code;
	const char *enh, *why;
	CHECK(!esmtp_parse_rcpt_params("NOTIFY=NEVER", 0, &p, &code, &enh,
	    &why));
	CHECK_INT(code, 555);
}

/* Replies go through a real pipe, as they would through a socket. */
static void test_reply(void)
{
	int fds[2];
	CHECK(pipe(fds) == 0);
	struct bio b;
	bio_init(&b, fds[1], 1000);
	esmtp_reply(&b, 250, NULL, false, "mx.example");
	esmtp_reply(&b, 250, NULL, true, "PIPELINING");
	esmtp_reply(&b, 550, "5.1.1", true, "<%s>: unknown", "x\r\ny@z");
	esmtp_reply(&b, 999, "4.0.0", true, "bad code");
	/* No printf for "%s" or a text without conversions: still
	 * filtered; "%%" still formatted. */
	esmtp_reply(&b, 554, "5.7.1", true, "%s", "a\tb\x80" "c");
	esmtp_reply(&b, 452, "4.3.1", true, "100%% full");
	esmtp_reply_text(&b, 250, "2.0.0", true, "Ok\r\n250 x");
	char big[2000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	esmtp_reply(&b, 500, "5.5.2", true, "%s", big);
	CHECK(bio_flush(&b) == BIO_OK);
	bio_free(&b);
	close(fds[1]);

	char buf[4096];
	size_t got = 0;
	ssize_t n;
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fds[0]);
	const char *want = "250-mx.example\r\n250 PIPELINING\r\n"
	    "550 5.1.1 <x??y@z>: unknown\r\n451 4.0.0 bad code\r\n"
	    "554 5.7.1 a?b?c\r\n452 4.3.1 100% full\r\n"
	    "250 2.0.0 Ok??250 x\r\n";
	CHECK(strncmp(buf, want, strlen(want)) == 0);
	const char *last = buf + strlen(want);
	CHECK(strncmp(last, "500 5.5.2 aaaa", 14) == 0);
	CHECK(strlen(last) <= 512);
	CHECK(strcmp(last + strlen(last) - 2, "\r\n") == 0);
}

int main(void)
{
	RUN(test_split);
	RUN(test_mail_params);
	RUN(test_mail_values);
	RUN(test_rcpt_params);
	RUN(test_reply);
	return unit_done();
}
