/*
 * Unit tests for mail/msgid.c: the Message-ID found in a header section
 * fed whole or a byte at a time (as smtpd's sink gets long lines in
 * pieces), folded, with odd case and blanks, absent, or only in the body.
 */
#include <string.h>

#include "msgid.h"
#include "unit.h"

static const struct {
	const char *text;
	const char *want;
} cases[] = {
	{ "From: a@b\r\nMessage-ID: <x1@example.org>\r\n\r\nbody\r\n",
	    "<x1@example.org>" },
	{ "message-id:<lower@x>\r\n\r\n", "<lower@x>" },
	{ "MESSAGE-ID :  <obs@x>  \r\n\r\n", "<obs@x>" },
	{ "Subject: s\nMessage-Id:\n  <folded@x>\nTo: t\n\n", "<folded@x>" },
	{ "Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n",
	    "<first@x>" },
	{ "Subject: none\r\n\r\nMessage-ID: <in-body@x>\r\n", "" },
	{ "Message-IDs: <not@x>\r\nX-Message-ID: <no@x>\r\n\r\n", "" },
	/* A line with no colon ends the header section (RFC 5322 2.2). */
	{ "Subject: s\r\nnot a field\r\nMessage-ID: <late@x>\r\n", "" },
	{ "", "" },
};

static void test_whole(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msgid_scan m;
		msgid_scan_init(&m);
		msgid_scan_text(&m, cases[i].text, strlen(cases[i].text));
		CHECK_STR(msgid_scan_value(&m), cases[i].want);
	}
}

/* The same cases, each line handed over a byte at a time. */
static void test_byte_pieces(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msgid_scan m;
		const char *p = cases[i].text;
		msgid_scan_init(&m);
		while (*p != '\0') {
			const char *nl = strchr(p, '\n');
			size_t len = nl ? (size_t)(nl - p) : strlen(p);
			size_t line = len;
			if (nl != NULL && line > 0 && p[line - 1] == '\r')
				line--;
			for (size_t k = 0; k < line; k++)
				msgid_scan_put(&m, p + k, 1, false);
			msgid_scan_put(&m, "", 0, nl != NULL);
			p += len + (nl != NULL);
		}
		CHECK_STR(msgid_scan_value(&m), cases[i].want);
	}
}

/* A huge value is cut, never overflows. */
static void test_long_value(void)
{
	char text[2048];
	struct msgid_scan m;

	strcpy(text, "Message-ID: <");
	memset(text + 13, 'a', 1500);
	strcpy(text + 1513, ">\r\n\r\n");
	msgid_scan_init(&m);
	msgid_scan_text(&m, text, strlen(text));
	CHECK_INT(strlen(msgid_scan_value(&m)), MSGID_VALUE_MAX);
}

int main(void)
{
	RUN(test_whole);
	RUN(test_byte_pieces);
	RUN(test_long_value);
	return unit_done();
}
