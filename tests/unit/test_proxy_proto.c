/*
 * test_proxy_proto.c - the PROXY protocol header parser
 * (mail/proxy_proto.c), table-driven: whole headers of both versions,
 * every prefix of a good header (which must be INCOMPLETE, never BAD),
 * and the malformed headers that must cut the connection; and the
 * "proxy" word of the listen keys in postern.conf (mail/cfg.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "cfg.h"
#include "proxy_proto.h"
#include "sock.h"
#include "unit.h"

#define V2SIG "\r\n\r\n\0\r\nQUIT\n"

struct proxy_case {
	const char *name;
	const char *bytes;
	size_t len;		/* 0: strlen(bytes) */
	enum proxy_result want;
	size_t length;		/* header length when OK */
	const char *source;	/* NULL: no addresses */
	int port;
};

static const struct proxy_case cases[] = {
	{ "v1 TCP4", "PROXY TCP4 127.0.0.2 127.0.0.1 40000 25\r\nEHLO",
	  0, PROXY_OK, 41, "127.0.0.2", 40000 },
	{ "v1 TCP6", "PROXY TCP6 2001:db8::7 ::1 65535 25\r\n",
	  0, PROXY_OK, 37, "2001:db8::7", 65535 },
	{ "v1 UNKNOWN", "PROXY UNKNOWN\r\n", 0, PROXY_OK, 15, NULL, 0 },
	{ "v1 UNKNOWN with fields", "PROXY UNKNOWN a b c d e f\r\n", 0,
	  PROXY_OK, 27, NULL, 0 },
	{ "v1 port 0", "PROXY TCP4 1.2.3.4 5.6.7.8 0 25\r\n", 0, PROXY_OK,
	  33, "1.2.3.4", 0 },
	{ "v1 prefix", "PROX", 0, PROXY_INCOMPLETE, 0, NULL, 0 },
	{ "v1 no CRLF yet", "PROXY TCP4 1.2.3.4 5.6", 0, PROXY_INCOMPLETE,
	  0, NULL, 0 },
	{ "v1 ends in CR", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", 0,
	  PROXY_INCOMPLETE, 0, NULL, 0 },
	{ "no header", "EHLO client.example\r\n", 0, PROXY_BAD, 0, NULL, 0 },
	{ "wrong case", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, PROXY_BAD,
	  0, NULL, 0 },
	{ "v1 bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 0, PROXY_BAD,
	  0, NULL, 0 },
	{ "v1 bare CR", "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", 0, PROXY_BAD,
	  0, NULL, 0 },
	{ "v1 unknown protocol", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", 0,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v1 IPv6 under TCP4", "PROXY TCP4 ::1 ::1 1 2\r\n", 0, PROXY_BAD,
	  0, NULL, 0 },
	{ "v1 bad address", "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", 0,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v1 port too big", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 0,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v1 leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 025 2\r\n", 0,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v1 signed port", "PROXY TCP4 1.2.3.4 5.6.7.8 +25 2\r\n", 0,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v1 double space", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 0,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v1 missing field", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 0,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v1 extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 0,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v1 empty", "PROXY \r\n", 0, PROXY_BAD, 0, NULL, 0 },
	{ "v1 NUL", "PROXY TCP4\0", 11, PROXY_BAD, 0, NULL, 0 },
	{ "v1 longer than 107",
	  "PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", 0, PROXY_BAD,
	  0, NULL, 0 },
	/* v2: TCP over IPv4, 127.0.0.2:40000 -> 127.0.0.1:25 */
	{ "v2 TCP4", V2SIG "\x21\x11\x00\x0c" "\x7f\x00\x00\x02\x7f\x00\x00\x01"
	  "\x9c\x40\x00\x19", 28, PROXY_OK, 28, "127.0.0.2", 40000 },
	{ "v2 TCP4 with a TLV", V2SIG "\x21\x11\x00\x10"
	  "\x0a\x00\x00\x09\x7f\x00\x00\x01\x00\x50\x00\x19" "\x04\x00\x01\x00"
	  "EHLO", 36, PROXY_OK, 32, "10.0.0.9", 80 },
	{ "v2 TCP6", V2SIG "\x21\x21\x00\x24"
	  "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07"
	  "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01" "\x00\x01\x00\x19", 52,
	  PROXY_OK, 52, "2001:db8::7", 1 },
	{ "v2 LOCAL", V2SIG "\x20\x00\x00\x00", 16, PROXY_OK, 16, NULL, 0 },
	{ "v2 LOCAL ignores the block", V2SIG "\x20\x11\x00\x02" "ab", 18,
	  PROXY_OK, 18, NULL, 0 },
	{ "v2 PROXY UNSPEC", V2SIG "\x21\x00\x00\x00", 16, PROXY_OK, 16,
	  NULL, 0 },
	{ "v2 signature prefix", V2SIG, 9, PROXY_INCOMPLETE, 0, NULL, 0 },
	{ "v2 fixed part only", V2SIG "\x21\x11\x00\x0c", 16,
	  PROXY_INCOMPLETE, 0, NULL, 0 },
	{ "v2 wrong signature", "\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x00", 16,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v2 version 1", V2SIG "\x11\x11\x00\x0c", 16, PROXY_BAD, 0, NULL,
	  0 },
	{ "v2 command 2", V2SIG "\x22\x11\x00\x0c", 16, PROXY_BAD, 0, NULL,
	  0 },
	{ "v2 family 4", V2SIG "\x21\x41\x00\x0c", 16, PROXY_BAD, 0, NULL,
	  0 },
	{ "v2 UDP", V2SIG "\x21\x12\x00\x0c" "\x7f\x00\x00\x02\x7f\x00\x00\x01"
	  "\x9c\x40\x00\x19", 28, PROXY_BAD, 0, NULL, 0 },
	{ "v2 Unix", V2SIG "\x21\x31\x00\x00", 16, PROXY_BAD, 0, NULL, 0 },
	{ "v2 IPv4 block too short", V2SIG "\x21\x11\x00\x08" "12345678", 24,
	  PROXY_BAD, 0, NULL, 0 },
	{ "v2 IPv6 block too short", V2SIG "\x21\x21\x00\x0c"
	  "123456789012", 28, PROXY_BAD, 0, NULL, 0 },
	{ "v2 too long", V2SIG "\x21\x11\x10\x00", 16, PROXY_BAD, 0, NULL, 0 },
};

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct proxy_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->bytes);
		struct proxy_header h;
		const char *why;
		enum proxy_result r = proxy_parse((const unsigned char *)c->bytes,
		    len, &h, &why);
		if (r != c->want)
			printf("# case \"%s\": result %d (%s)\n", c->name, r, why);
		CHECK_INT(r, c->want);
		if (r == PROXY_BAD)
			CHECK(why != NULL && *why != '\0');
		if (r != PROXY_OK || c->want != PROXY_OK)
			continue;
		CHECK_INT(h.length, c->length);
		CHECK_INT(h.has_addresses, c->source != NULL);
		if (c->source == NULL)
			continue;
		char addr[64];
		int port;
		sock_addr_format((struct sockaddr *)&h.source, addr, sizeof(addr),
		    &port);
		CHECK_STR(addr, c->source);
		CHECK_INT(port, c->port);
	}
}

/* Every proper prefix of a good header is INCOMPLETE: the reader may
 * consume it and wait, and never cuts a header sent in pieces. */
static void test_prefixes(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct proxy_case *c = &cases[i];
		if (c->want != PROXY_OK)
			continue;
		for (size_t n = 0; n < c->length; n++) {
			struct proxy_header h;
			const char *why;
			enum proxy_result r = proxy_parse(
			    (const unsigned char *)c->bytes, n, &h, &why);
			if (r != PROXY_INCOMPLETE)
				printf("# case \"%s\" cut at %zu: %d (%s)\n",
				    c->name, n, r, why);
			CHECK_INT(r, PROXY_INCOMPLETE);
		}
	}
}

/* "ENDPOINT proxy": after a TCP endpoint of smtpd's listen keys only. */
static void test_listen_syntax(void)
{
	static const struct {
		const char *text;
		bool ok;
	} listen_cases[] = {
		{ "smtp_listen = 127.0.0.1:25 proxy\n", true },
		{ "smtp_listen = 127.0.0.1:25 proxy, [::1]:25\n", true },
		{ "submission_listen = 127.0.0.1:587, [::1]:587 proxy\n", true },
		{ "smtps_listen = 127.0.0.1:465 proxy\n", true },
		{ "smtp_listen = proxy 127.0.0.1:25\n", false },
		{ "smtp_listen = 127.0.0.1:25 proxy proxy\n", false },
		{ "smtp_listen = unix:/run/x proxy\n", false },
		{ "lmtp_listen = 127.0.0.1:24 proxy\n", false },
	};
	for (size_t i = 0; i < sizeof(listen_cases) / sizeof(listen_cases[0]); i++) {
		char err[512] = "";
		bool ok = cfg_load_text("/nonexistent", "postern.conf",
		    listen_cases[i].text, strlen(listen_cases[i].text), err, sizeof(err));
		if (ok != listen_cases[i].ok)
			printf("# \"%s\": %s\n", listen_cases[i].text, err);
		CHECK_INT(ok, listen_cases[i].ok);
		if (!ok)
			CHECK(strstr(err, "\"proxy\" must follow a TCP endpoint") !=
			    NULL);
	}
}

int main(void)
{
	RUN(test_cases);
	RUN(test_prefixes);
	RUN(test_listen_syntax);
	return unit_done();
}
