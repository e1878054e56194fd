/*
 * proxy_proto.h - the HAProxy PROXY protocol header, versions 1 (text)
 * and 2 (binary), as a load balancer puts it in front of a relayed TCP
 * connection to name the real client (haproxy's proxy-protocol.txt).
 *
 * A pure parser over a byte buffer: no I/O, so that smtpd's reader and
 * tests/fuzz/fuzz_proxy.c drive the same code. The caller reads; the
 * parser says whether the bytes so far are a whole header, the start of
 * one, or no header at all.
 */
#ifndef POSTERN_PROXY_PROTO_H
#define POSTERN_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* v1: at most 107 octets with the CRLF (proxy-protocol.txt 2.1). */
#define PROXY_V1_MAX 107
/* v2: 16 octets, then the length the header gives (at most 65535). */
#define PROXY_V2_FIXED 16
/* What we take of a v2 header: addresses and a fair amount of TLVs. */
#define PROXY_MAX_HEADER 4096

enum proxy_result {
	PROXY_OK,		/* a whole header: h->length octets */
	PROXY_INCOMPLETE,	/* every octet so far belongs to a header */
	PROXY_BAD,		/* not a header we take: cut the connection */
};

struct proxy_header {
	int version;			/* 1 or 2 */
	size_t length;			/* octets the header takes */
	/*
	 * false: a v1 UNKNOWN, a v2 LOCAL (the proxy's own health check)
	 * or a v2 UNSPEC: the connection's own endpoints stand.
	 */
	bool has_addresses;
	struct sockaddr_storage source, destination;
	socklen_t source_len, destination_len;
};

/*
 * Parse the first len octets of a connection. PROXY_INCOMPLETE means the
 * header goes on past buf[len - 1], so the caller may consume all len
 * octets and wait for more. On PROXY_BAD, why says what was wrong (our
 * text, never the client's bytes).
 */
enum proxy_result proxy_parse(const unsigned char *buf, size_t len,
    struct proxy_header *h, const char **why);

#endif
