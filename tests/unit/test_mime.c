/*
 * Unit tests for deliver's 8-bit to 7-bit MIME conversion
 * (deliver/deliver_mime.c), compiled in here: it is not part of
 * libmail.
 */
#include <stdlib.h>
#include <string.h>

#include "../../deliver/deliver_mime.c"
#include "unit.h"

struct outbuf {
	char data[16384];
	size_t len;
};

static void collect(void *ctx, const char *data, size_t len)
{
	struct outbuf *o = ctx;
	if (o->len + len < sizeof(o->data)) {
		memcpy(o->data + o->len, data, len);
		o->len += len;
		o->data[o->len] = '\0';
	}
}

static const char *downgrade(const char *msg)
{
	static struct outbuf o;
	o.len = 0;
	o.data[0] = '\0';
	deliver_mime_downgrade(msg, strlen(msg), collect, &o);
	return o.data;
}

/* Every byte 7-bit and every line at most 78 characters plus CRLF? */
static bool seven_bit_short_lines(const char *s)
{
	size_t col = 0;
	for (; *s; s++) {
		if ((unsigned char)*s >= 0x80)
			return false;
		col = *s == '\n' ? 0 : col + 1;
		if (col > 78)
			return false;
	}
	return true;
}

static void test_single_part_8bit_becomes_quoted_printable(void)
{
	const char *in =
	    "Subject: caf\xc3\xa9\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    "Gr\xc3\xbc\xc3\x9f" "e = 100%\r\n"
	    "trailing space \r\n"
	    ".dot\r\n";
	CHECK_STR(downgrade(in),
	    "Subject: caf\xc3\xa9\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "Gr=C3=BC=C3=9Fe =3D 100%\r\n"
	    "trailing space=20\r\n"
	    ".dot\r\n");
}

static void test_seven_bit_message_is_untouched(void)
{
	const char *in =
	    "Subject: plain\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    "a = b\r\n";
	CHECK_STR(downgrade(in), in);
	/* Base64 is already 7-bit; so is a message without a body. */
	const char *b64 =
	    "MIME-Version: 1.0\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "w6k=\r\n";
	CHECK_STR(downgrade(b64), b64);
	CHECK_STR(downgrade("Subject: x\r\n"), "Subject: x\r\n");
	/* A multipart whose header ends without a blank line (found by
	 * tests/fuzz/fuzz_mime.c): nothing added. */
	const char *odd =
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n"
	    "\f\n--b\r\n\r\nx\r\n";
	CHECK_STR(downgrade(odd), odd);
}

static void test_non_mime_message_gains_mime_version(void)
{
	const char *in =
	    "Subject: old style\r\n"
	    "\r\n"
	    "na\xefve\r\n";
	CHECK_STR(downgrade(in),
	    "Subject: old style\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "na=EFve\r\n");
}

static void test_long_lines_get_soft_breaks(void)
{
	char in[600];
	strcpy(in, "MIME-Version: 1.0\r\n\r\n\xe9");
	for (int i = 0; i < 200; i++)
		strcat(in, "x");
	strcat(in, "\r\n");
	const char *out = downgrade(in);
	CHECK(seven_bit_short_lines(out));
	CHECK(strstr(out, "=E9xxxx") != NULL);
	CHECK(strstr(out, "=\r\n") != NULL);
	/* Undo the soft breaks: the x's are all there, in one line. */
	char joined[600] = "";
	const char *body = strstr(out, "\r\n\r\n") + 4;
	for (const char *p = body; *p; p++) {
		if (p[0] == '=' && p[1] == '\r' && p[2] == '\n') {
			p += 2;
			continue;
		}
		strncat(joined, p, 1);
	}
	CHECK_INT(strspn(joined + 3, "x"), 200);
}

static void test_soft_break_never_makes_a_delimiter(void)
{
	/* 73 x's: the soft break falls just before "--b--". */
	char in[600];
	strcpy(in, "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\n\r\n\xe9");
	for (int i = 0; i < 72; i++)
		strcat(in, "x");
	strcat(in, "--b--\r\n--b--\r\n");
	const char *out = downgrade(in);
	CHECK(strstr(out, "=\r\n=2D-b--\r\n--b--\r\n") != NULL);
	CHECK(seven_bit_short_lines(out));
}

static void test_multipart_converts_only_the_8bit_parts(void)
{
	const char *in =
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed;\r\n"
	    "\tboundary=\"=_b1\"\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    "preamble\r\n"
	    "--=_b1\r\n"
	    "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "\r\n"
	    "\xe9t\xe9\r\n"
	    "--=_b1\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "ascii only\r\n"
	    "--=_b1\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "Subject: inner\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    "\xfc\r\n"
	    "--=_b1--\r\n"
	    "epilogue\r\n";
	CHECK_STR(downgrade(in),
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed;\r\n"
	    "\tboundary=\"=_b1\"\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n"
	    "preamble\r\n"
	    "--=_b1\r\n"
	    "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "=E9t=E9\r\n"
	    "--=_b1\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "ascii only\r\n"
	    "--=_b1\r\n"
	    "Content-Type: message/rfc822\r\n"
	    "\r\n"
	    "Subject: inner\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "=FC\r\n"
	    "--=_b1--\r\n"
	    "epilogue\r\n");
}

static void test_nested_multipart_and_missing_close(void)
{
	const char *in =
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=outer\r\n"
	    "\r\n"
	    "--outer\r\n"
	    "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
	    "\r\n"
	    "--inner\r\n"
	    "\r\n"
	    "\xe4\r\n"
	    "--inner--\r\n"
	    "--outer\r\n"
	    "Content-Type: text/html\r\n"
	    "\r\n"
	    "<p>\xf6</p>\r\n";
	const char *out = downgrade(in);
	CHECK(seven_bit_short_lines(out));
	CHECK(strstr(out, "--inner\r\nContent-Transfer-Encoding: "
	    "quoted-printable\r\n\r\n=E4\r\n--inner--\r\n") != NULL);
	CHECK(strstr(out, "Content-Type: text/html\r\nContent-Transfer-"
	    "Encoding: quoted-printable\r\n\r\n<p>=F6</p>\r\n") != NULL);
}

static void test_binary_and_unknown_encodings_are_left_alone(void)
{
	const char *in =
	    "MIME-Version: 1.0\r\n"
	    "Content-Transfer-Encoding: x-strange\r\n"
	    "\r\n"
	    "\xff\r\n";
	CHECK_STR(downgrade(in), in);
}

static void test_deep_nesting_stops(void)
{
	static char in[8192];
	char *p = in;
	p += sprintf(p, "MIME-Version: 1.0\r\n");
	for (int i = 0; i < MIME_MAX_DEPTH + 5; i++)
		p += sprintf(p, "Content-Type: message/rfc822\r\n\r\n");
	sprintf(p, "\r\n\xe9\r\n");
	const char *out = downgrade(in);
	/* Past the limit the rest goes as it is: no loop, no crash. */
	CHECK(strlen(out) == strlen(in));
}

int main(void)
{
	RUN(test_single_part_8bit_becomes_quoted_printable);
	RUN(test_seven_bit_message_is_untouched);
	RUN(test_non_mime_message_gains_mime_version);
	RUN(test_long_lines_get_soft_breaks);
	RUN(test_soft_break_never_makes_a_delimiter);
	RUN(test_multipart_converts_only_the_8bit_parts);
	RUN(test_nested_multipart_and_missing_close);
	RUN(test_binary_and_unknown_encodings_are_left_alone);
	RUN(test_deep_nesting_stops);
	return unit_done();
}
