/*
 * Unit tests for the SMTP/LMTP server core's pieces that have no socket
 * policy in them: the header scan that counts hops (mail/smtp_server_data.c),
 * the DATA and BDAT readers over a socketpair, the FROM:/TO: path grammar
 * and BDAT's arguments (mail/esmtp.c). Table-driven where it reads better.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "cfg.h"
#include "esmtp.h"
#include "smtp_server.h"
#include "str.h"
#include "unit.h"

/* A sink that keeps lines with "|" for each line end. */
static void put_text(void *ctx, const char *p, size_t n, bool line_end)
{
	struct str *out = ctx;
	str_append(out, p, n);
	if (line_end)
		str_append_char(out, '|');
}

static void test_scan_counts_hops(void)
{
	static const char msg[] =
	    "Received: from a\r\n"
	    "\tby b\r\n"
	    "received :from c\r\n"
	    "RECEIVED:x\r\n"
	    "Delivered-To: a@example.org\r\n"
	    "X-Received: no\r\n"
	    "Received-SPF: no\r\n"
	    "Delivered-To-Not: no\r\n"
	    "\r\n"
	    "Received: in the body does not count\r\n";
	struct smtp_message m;

	/* Byte by byte: names split across every boundary. */
	smtp_message_init(&m);
	for (size_t i = 0; i < sizeof(msg) - 1; i++) {
		if (msg[i] == '\r')
			continue;
		if (msg[i] == '\n')
			smtp_message_scan(&m, "", 0, true);
		else
			smtp_message_scan(&m, msg + i, 1, false);
	}
	CHECK_INT(m.received, 3);
	CHECK_INT(m.delivered_to, 1);
	CHECK(m.in_body);
}

/* Scan a message given with "\n" line ends, one call per line. */
static void scan_lines(struct smtp_message *m, const char *text)
{
	smtp_message_init(m);
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		smtp_message_scan(m, text, n, nl != NULL);
		text += n + (nl ? 1 : 0);
	}
}

static void test_scan_header_section_ends(void)
{
	static const struct {
		const char *msg;
		unsigned received;
	} cases[] = {
		/* a line that is no header field starts the body */
		{ "Received: a\nno header here\nReceived: b\n", 1 },
		{ "Received: a\n: no name\nReceived: b\n", 1 },
		/* obsolete "Name :" is a field; folded lines continue one */
		{ "Received : a\n\tfolded\n  more\nReceived: b\n", 2 },
		/* a long field name is a field too */
		{ "X-A-Rather-Long-Header-Name: 1\nReceived: b\n", 1 },
		{ "\nReceived: in the body\n", 0 },
		{ "Receivedx: no\nReceived\n", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_message m;
		scan_lines(&m, cases[i].msg);
		if (m.received != cases[i].received)
			printf("# case %zu\n", i);
		CHECK_INT(m.received, cases[i].received);
	}
}

static void test_hopcount_limit(void)
{
	struct smtp_message m;
	smtp_message_init(&m);
	cfg.hopcount_limit = 50;
	m.received = 49;
	m.delivered_to = 1;
	CHECK(!smtp_message_too_many_hops(&m));
	m.received = 50;
	CHECK(smtp_message_too_many_hops(&m));
	cfg.hopcount_limit = 0;
	CHECK(!smtp_message_too_many_hops(&m));
}

/* Feed bytes into a bio through a socketpair; the peer end is closed. */
static void bio_with_input(struct bio *b, int fds[2], const char *in,
    size_t len)
{
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
	CHECK(write(fds[1], in, len) == (ssize_t)len);
	close(fds[1]);
	bio_init(b, fds[0], 2000);
}

static void test_read_data(void)
{
	static const struct {
		const char *in;
		const char *want;	/* lines, "|" for each end */
		bool bare;
		unsigned dialect;
	} cases[] = {
		{ "A: 1\r\n\r\n..x\r\n.\r\nNEXT", "A: 1||.x|", false, 0 },
		{ "a\nb\r\n.\r\n", "a\nb|", true, 0 },
		{ "a\rb\r\n.\r\n", "a\rb|", true, 0 },
		{ "x\n.\n", "x|", false, SMTP_SERVER_LOCAL },
		{ "x\r\n.\n.\r\n.\r\n", "x|\n.|", true, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_server srv;
		struct smtp_message m;
		struct bio b;
		struct str out;
		int fds[2];

		bio_with_input(&b, fds, cases[i].in, strlen(cases[i].in));
		smtp_server_init(&srv, NULL, NULL, 0, cases[i].dialect, &b,
		    &b, "test", "peer");
		smtp_message_init(&m);
		str_init(&out, STR_NO_MAX);
		struct smtp_message_sink sink = { put_text, &out };
		CHECK_INT(smtp_server_read_data(&srv, &m, &sink), BIO_OK);
		CHECK_STR(str_cstr(&out), cases[i].want);
		CHECK_INT(m.bare_newline, cases[i].bare);
		str_free(&out);
		smtp_server_free(&srv);
		bio_free(&b);
		close(fds[0]);
	}
}

static void test_read_chunks(void)
{
	/* CRLF split across chunks; bare CR and LF marked. */
	static const char *const chunks[] = {
		"A: 1\r", "\nB: 2\r\n\r\nbo", "dy\r\nend",
	};
	struct smtp_server srv;
	struct smtp_message m;
	struct bio b;
	struct str out;
	int fds[2];
	char all[64] = "";

	for (size_t i = 0; i < 3; i++)
		strcat(all, chunks[i]);
	bio_with_input(&b, fds, all, strlen(all));
	smtp_server_init(&srv, NULL, NULL, 0, SMTP_SERVER_LMTP, &b, &b,
	    "test", "peer");
	smtp_message_init(&m);
	str_init(&out, STR_NO_MAX);
	struct smtp_message_sink sink = { put_text, &out };
	for (size_t i = 0; i < 3; i++)
		CHECK_INT(smtp_server_read_chunk(&srv, &m, strlen(chunks[i]),
		    &sink), BIO_OK);
	smtp_server_end_chunks(&m, &sink);
	CHECK_STR(str_cstr(&out), "A: 1|B: 2||body|end|");
	CHECK(!m.bare_newline);
	CHECK_INT(m.size, strlen(all));
	str_free(&out);
	smtp_server_free(&srv);
	bio_free(&b);
	close(fds[0]);

	static const char *const bad[] = { "x\ny", "x\ry", "end\r" };
	for (size_t i = 0; i < 3; i++) {
		bio_with_input(&b, fds, bad[i], strlen(bad[i]));
		smtp_server_init(&srv, NULL, NULL, 0, 0, &b, &b, "t", "p");
		smtp_message_init(&m);
		str_init(&out, STR_NO_MAX);
		CHECK_INT(smtp_server_read_chunk(&srv, &m, strlen(bad[i]),
		    &sink), BIO_OK);
		smtp_server_end_chunks(&m, &sink);
		CHECK(m.bare_newline);
		str_free(&out);
		smtp_server_free(&srv);
		bio_free(&b);
		close(fds[0]);
	}
}

static void test_parse_bdat(void)
{
	static const struct {
		const char *arg;
		bool ok;
		unsigned long long size;
		bool last;
	} cases[] = {
		{ "0", true, 0, false },
		{ "10 LAST", true, 10, true },
		{ "10 last", true, 10, true },
		{ "007", true, 7, false },
		{ "9223372036854775807", true, 9223372036854775807ULL, false },
		{ "9223372036854775808", false, 0, false },
		{ "99999999999999999999", false, 0, false },
		{ "", false, 0, false },
		{ "x", false, 0, false },
		{ "10  LAST", false, 0, false },	/* RFC 3030: one SP */
		{ "10 LAST ", false, 0, false },
		{ "10 ", false, 0, false },
		{ "10 LASTX", false, 0, false },
		{ "-1", false, 0, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned long long size = 0;
		bool last = false;
		bool ok = esmtp_parse_bdat(cases[i].arg, &size, &last);
		if (ok != cases[i].ok)
			printf("# BDAT \"%s\"\n", cases[i].arg);
		CHECK_INT(ok, cases[i].ok);
		if (ok) {
			CHECK(size == cases[i].size);
			CHECK_INT(last, cases[i].last);
		}
	}
}

static void test_parse_path_arg(void)
{
	static const struct {
		const char *arg;
		bool rcpt;
		int code;		/* 0: accepted */
		const char *enh;
		const char *address;
	} cases[] = {
		{ "FROM:<a@example.org>", false, 0, NULL, "a@example.org" },
		{ "from: <a@example.org> SIZE=1", false, 0, NULL,
		    "a@example.org" },
		{ "FROM:<>", false, 0, NULL, "" },
		{ "FROM:<\"x>y\"@example.org>", false, 0, NULL,
		    "\"x>y\"@example.org" },
		{ "FROM:", false, 501, "5.5.4", NULL },
		{ "FROM", false, 501, "5.5.4", NULL },
		{ "", false, 501, "5.5.4", NULL },
		{ "TO:<a@example.org>", false, 501, "5.5.4", NULL },
		{ "FROM:<a@@b>", false, 501, "5.1.7", NULL },
		{ "FROM:<a@example.org>x", false, 501, "5.5.4", NULL },
		{ "TO:", true, 501, "5.5.4", NULL },
		{ "TO:<a b@example.org>", true, 501, "5.1.3", NULL },
		{ "TO:<\"a b\"@example.org>", true, 0, NULL,
		    "\"a b\"@example.org" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct addr a;
		const char *params, *enh;
		char text[300];
		int code;
		bool ok = esmtp_parse_path_arg(cases[i].arg, cases[i].rcpt,
		    ADDR_ALLOW_NULL | ADDR_ALLOW_NO_BRACKETS, &a, &params,
		    &code, &enh, text, sizeof(text));
		if (ok != (cases[i].code == 0))
			printf("# path \"%s\": %s\n", cases[i].arg, text);
		CHECK_INT(ok, cases[i].code == 0);
		if (ok) {
			CHECK_STR(a.address, cases[i].address);
			addr_free(&a);
		} else {
			CHECK_INT(code, cases[i].code);
			CHECK_STR(enh, cases[i].enh);
		}
	}
}

static void test_body_names(void)
{
	enum queue_body b = QUEUE_BODY_7BIT;
	CHECK_STR(esmtp_body_name(QUEUE_BODY_7BIT), "7BIT");
	CHECK_STR(esmtp_body_name(QUEUE_BODY_8BITMIME), "8BITMIME");
	CHECK_STR(esmtp_body_name(QUEUE_BODY_BINARYMIME), "BINARYMIME");
	CHECK(esmtp_body_from_name("8bitmime", &b));
	CHECK_INT(b, QUEUE_BODY_8BITMIME);
	CHECK(esmtp_body_from_name("BINARYMIME", &b));
	CHECK_INT(b, QUEUE_BODY_BINARYMIME);
	CHECK(!esmtp_body_from_name("8BIT", &b));
	CHECK(!esmtp_body_from_name("", &b));
}

int main(void)
{
	RUN(test_scan_counts_hops);
	RUN(test_scan_header_section_ends);
	RUN(test_hopcount_limit);
	RUN(test_read_data);
	RUN(test_read_chunks);
	RUN(test_parse_bdat);
	RUN(test_parse_path_arg);
	RUN(test_body_names);
	return unit_done();
}
