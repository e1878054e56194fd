/*
 * proxy_proto.c - parser for the HAProxy PROXY protocol header, v1 and
 * v2 (haproxy's doc/proxy-protocol.txt; sections cited below).
 *
 * Trusts nothing in the buffer: it comes off the network, from whatever
 * connected to a listener marked "proxy". The listener's marking is the
 * only trust: a header is taken at all only where the administrator put
 * a proxy in front. No I/O here (tests/fuzz/fuzz_proxy.c drives it).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy_proto.h"

static const unsigned char v1_sig[] = "PROXY ";
#define V1_SIG_LEN 6
/* 2.2: "\r\n\r\n\0\r\nQUIT\n" */
static const unsigned char v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

static enum proxy_result bad(const char **why, const char *text)
{
	*why = text;
	return PROXY_BAD;
}

/* A port of v1: decimal, 0 to 65535, no sign, no leading zero (2.1). */
static bool v1_port(const char *s, unsigned short *port)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (unsigned short)v;
	return true;
}

static bool v1_address(int family, const char *text, unsigned short port,
    struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	*len = sizeof(*sin6);
	return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
}

/*
 * 2.1: "PROXY TCP4 SRC DST SPORT DPORT\r\n", single spaces, at most 107
 * octets; "PROXY UNKNOWN" with anything up to the CRLF keeps the
 * connection's own addresses.
 */
static enum proxy_result parse_v1(const unsigned char *buf, size_t len,
    struct proxy_header *h, const char **why)
{
	size_t end = 0;
	size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;

	for (size_t i = 0; i < scan; i++) {
		if (buf[i] == '\n') {
			if (i == 0 || buf[i - 1] != '\r')
				return bad(why, "v1 header with a bare LF");
			end = i + 1;
			break;
		}
		if (buf[i] == '\0' || (buf[i] == '\r' && i + 1 < scan &&
		    buf[i + 1] != '\n'))
			return bad(why, "v1 header with a NUL or a bare CR");
	}
	if (end == 0)
		return len < PROXY_V1_MAX ? PROXY_INCOMPLETE :
		    bad(why, "v1 header longer than 107 octets");

	/* The line without "PROXY " and CRLF: at most 99 octets. */
	char line[PROXY_V1_MAX];
	size_t n = end - 2 - V1_SIG_LEN;
	memcpy(line, buf + V1_SIG_LEN, n);
	line[n] = '\0';

	char *field[6];
	size_t nfields = 0;
	char *p = line;
	for (;;) {
		if (nfields == 6)
			return bad(why, "v1 header with too many fields");
		field[nfields++] = p;
		char *sp = strchr(p, ' ');
		if (sp == NULL)
			break;
		*sp = '\0';
		p = sp + 1;
		if (nfields == 1 && strcmp(field[0], "UNKNOWN") == 0)
			break;	/* the rest is ignored (2.1) */
	}
	h->version = 1;
	h->length = end;
	if (strcmp(field[0], "UNKNOWN") == 0) {
		h->has_addresses = false;
		return PROXY_OK;
	}
	int family;
	if (strcmp(field[0], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(field[0], "TCP6") == 0)
		family = AF_INET6;
	else
		return bad(why, "v1 header with an unknown protocol");
	if (nfields != 5)
		return bad(why, "v1 header without its four address fields");
	unsigned short sport, dport;
	if (!v1_port(field[3], &sport) || !v1_port(field[4], &dport))
		return bad(why, "v1 header with a bad port");
	if (!v1_address(family, field[1], sport, &h->source, &h->source_len) ||
	    !v1_address(family, field[2], dport, &h->destination,
	    &h->destination_len))
		return bad(why, "v1 header with a bad address");
	h->has_addresses = true;
	return PROXY_OK;
}

/* 2.2: the signature, version and command, family, length, addresses. */
static enum proxy_result parse_v2(const unsigned char *buf, size_t len,
    struct proxy_header *h, const char **why)
{
	if (len < PROXY_V2_FIXED)
		return PROXY_INCOMPLETE;
	unsigned version = buf[12] >> 4, command = buf[12] & 0x0F;
	unsigned family = buf[13] >> 4, transport = buf[13] & 0x0F;
	size_t body = (size_t)buf[14] << 8 | buf[15];

	if (version != 2)
		return bad(why, "v2 header with an unknown version");
	if (command > 1)
		return bad(why, "v2 header with an unknown command");
	if (family > 3 || transport > 2)
		return bad(why, "v2 header with an unknown address family");
	if (PROXY_V2_FIXED + body > PROXY_MAX_HEADER)
		return bad(why, "v2 header longer than 4096 octets");
	if (len < PROXY_V2_FIXED + body)
		return PROXY_INCOMPLETE;

	h->version = 2;
	h->length = PROXY_V2_FIXED + body;
	h->has_addresses = false;
	/* LOCAL: the proxy's own connection; the block is ignored. UNSPEC:
	 * the receiver may use the real endpoints. */
	if (command == 0 || family == 0)
		return PROXY_OK;
	if (family == 3)
		return bad(why, "v2 header for a Unix socket client");
	if (transport != 1)
		return bad(why, "v2 header for a connection other than TCP");

	const unsigned char *a = buf + PROXY_V2_FIXED;
	memset(&h->source, 0, sizeof(h->source));
	memset(&h->destination, 0, sizeof(h->destination));
	if (family == 1) {
		if (body < 12)
			return bad(why, "v2 header too short for IPv4 addresses");
		struct sockaddr_in *src = (struct sockaddr_in *)&h->source;
		struct sockaddr_in *dst = (struct sockaddr_in *)&h->destination;
		src->sin_family = dst->sin_family = AF_INET;
		memcpy(&src->sin_addr, a, 4);
		memcpy(&dst->sin_addr, a + 4, 4);
		memcpy(&src->sin_port, a + 8, 2);
		memcpy(&dst->sin_port, a + 10, 2);
		h->source_len = h->destination_len = sizeof(*src);
	} else {
		if (body < 36)
			return bad(why, "v2 header too short for IPv6 addresses");
		struct sockaddr_in6 *src = (struct sockaddr_in6 *)&h->source;
		struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&h->destination;
		src->sin6_family = dst->sin6_family = AF_INET6;
		memcpy(&src->sin6_addr, a, 16);
		memcpy(&dst->sin6_addr, a + 16, 16);
		memcpy(&src->sin6_port, a + 32, 2);
		memcpy(&dst->sin6_port, a + 34, 2);
		h->source_len = h->destination_len = sizeof(*src);
	}
	/* TLVs after the addresses (2.2.7) carry nothing we use. */
	h->has_addresses = true;
	return PROXY_OK;
}

enum proxy_result proxy_parse(const unsigned char *buf, size_t len,
    struct proxy_header *h, const char **why)
{
	memset(h, 0, sizeof(*h));
	*why = "";
	if (len == 0)
		return PROXY_INCOMPLETE;
	/* Each signature must match as far as the bytes go. */
	if (buf[0] == v1_sig[0]) {
		size_t n = len < V1_SIG_LEN ? len : V1_SIG_LEN;
		if (memcmp(buf, v1_sig, n) != 0)
			return bad(why, "no PROXY protocol header");
		return len < V1_SIG_LEN ? PROXY_INCOMPLETE :
		    parse_v1(buf, len, h, why);
	}
	if (buf[0] == v2_sig[0]) {
		size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
		if (memcmp(buf, v2_sig, n) != 0)
			return bad(why, "no PROXY protocol header");
		return parse_v2(buf, len, h, why);
	}
	return bad(why, "no PROXY protocol header");
}
