/*
 * Unit tests for util/sock.c: endpoint parsing and formatting, and the
 * mynetworks decision (sock_addr_in_networks) for IPv4, IPv6 and
 * IPv4-mapped clients, prefixes 0, 8, 32, odd bit counts and out of
 * range ones, with bad entries skipped.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock.h"
#include "unit.h"

static void test_endpoint_parse(void)
{
	static const struct {
		const char *text;
		int default_port;
		bool ok;
		enum endpoint_kind kind;
		const char *host;	/* or the path, for unix: */
		int port;
		bool bracketed;
		const char *formatted;
	} cases[] = {
		{ "127.0.0.1:25", 0, true, ENDPOINT_INET, "127.0.0.1", 25,
		  false, "127.0.0.1:25" },
		{ "mx.example.org", 25, true, ENDPOINT_INET, "mx.example.org",
		  25, false, "mx.example.org:25" },
		{ "mx.example.org", 0, true, ENDPOINT_INET, "mx.example.org",
		  0, false, "mx.example.org:0" },
		{ "[::1]:2525", 0, true, ENDPOINT_INET, "::1", 2525, true,
		  "[::1]:2525" },
		{ "[smtp.example.com]:587", 25, true, ENDPOINT_INET,
		  "smtp.example.com", 587, true, "[smtp.example.com]:587" },
		{ "[smtp.example.com]", 25, true, ENDPOINT_INET,
		  "smtp.example.com", 25, true, "[smtp.example.com]:25" },
		{ "host:65535", 0, true, ENDPOINT_INET, "host", 65535, false,
		  "host:65535" },
		{ "host:1", 0, true, ENDPOINT_INET, "host", 1, false,
		  "host:1" },
		{ "unix:/run/postern/lmtp", 0, true, ENDPOINT_UNIX,
		  "/run/postern/lmtp", 0, false, "unix:/run/postern/lmtp" },
		{ "unix:run/lmtp", 0, false, 0, NULL, 0, false, NULL },
		{ "unix:", 0, false, 0, NULL, 0, false, NULL },
		{ "::1:25", 0, false, 0, NULL, 0, false, NULL },
		{ "2001:db8::1", 25, false, 0, NULL, 0, false, NULL },
		{ "[::1", 0, false, 0, NULL, 0, false, NULL },
		{ "[]:25", 0, false, 0, NULL, 0, false, NULL },
		{ "[::1]25", 0, false, 0, NULL, 0, false, NULL },
		{ "[::1]:", 0, false, 0, NULL, 0, false, NULL },
		{ "host:0", 0, false, 0, NULL, 0, false, NULL },
		{ "host:65536", 0, false, 0, NULL, 0, false, NULL },
		{ "host:-25", 0, false, 0, NULL, 0, false, NULL },
		{ "host:+25", 0, false, 0, NULL, 0, false, NULL },
		{ "host: 25", 0, false, 0, NULL, 0, false, NULL },
		{ "host:", 0, false, 0, NULL, 0, false, NULL },
		{ "host:2a", 0, false, 0, NULL, 0, false, NULL },
		{ ":25", 0, false, 0, NULL, 0, false, NULL },
		{ "", 25, false, 0, NULL, 0, false, NULL },
		{ "a b:25", 0, false, 0, NULL, 0, false, NULL },
		{ "a/b:25", 0, false, 0, NULL, 0, false, NULL },
		{ "a]b:25", 0, false, 0, NULL, 0, false, NULL },
		{ "a\tb", 25, false, 0, NULL, 0, false, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct endpoint ep;
		char err[256] = "", out[300];
		bool ok = endpoint_parse(cases[i].text, cases[i].default_port,
		    &ep, err, sizeof(err));
		CHECK_INT(ok, cases[i].ok);
		if (ok != cases[i].ok)
			printf("# case \"%s\"\n", cases[i].text);
		if (!ok) {
			CHECK(err[0] != '\0');
			continue;
		}
		CHECK_INT(ep.kind, cases[i].kind);
		CHECK_STR(ep.kind == ENDPOINT_UNIX ? ep.path : ep.host,
		    cases[i].host);
		CHECK_INT(ep.port, cases[i].port);
		CHECK_INT(ep.bracketed, cases[i].bracketed);
		endpoint_format(&ep, out, sizeof(out));
		CHECK_STR(out, cases[i].formatted);
	}
}

static void test_endpoint_lengths(void)
{
	char text[400], err[256];
	struct endpoint ep;

	/* A host of 255 octets fits, 256 do not. */
	memset(text, 'h', 255);
	strcpy(text + 255, ":25");
	CHECK(endpoint_parse(text, 0, &ep, err, sizeof(err)));
	CHECK_INT(strlen(ep.host), 255);
	memset(text, 'h', 256);
	strcpy(text + 256, ":25");
	CHECK(!endpoint_parse(text, 0, &ep, err, sizeof(err)));
	text[0] = '[';
	memset(text + 1, 'h', 256);
	strcpy(text + 257, "]:25");
	CHECK(!endpoint_parse(text, 0, &ep, err, sizeof(err)));

	/* A Unix path must fit sun_path with its NUL. */
	size_t room = sizeof(((struct sockaddr_un *)0)->sun_path);
	strcpy(text, "unix:/");
	memset(text + 6, 'p', room - 2);
	text[6 + room - 2] = '\0';
	CHECK(endpoint_parse(text, 0, &ep, err, sizeof(err)));
	CHECK_INT(strlen(ep.path), room - 1);
	strcpy(text + 6 + room - 2, "p");
	CHECK(!endpoint_parse(text, 0, &ep, err, sizeof(err)));
}

/* A client address as accept(2) gives it. */
static struct sockaddr_storage client(const char *text, bool v4_mapped)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (v4_mapped) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr.s6_addr[10] = 0xff;
		sin6->sin6_addr.s6_addr[11] = 0xff;
		if (inet_pton(AF_INET, text, &sin6->sin6_addr.s6_addr[12]) != 1)
			abort();
	} else if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
	} else {
		abort();
	}
	return ss;
}

static void test_in_networks(void)
{
	static const struct {
		const char *addr;
		bool mapped;		/* as ::ffff:addr on an IPv6 socket */
		const char *networks[4];
		bool in;
	} cases[] = {
		/* IPv4 */
		{ "192.0.2.7", false, { "192.0.2.0/24" }, true },
		{ "192.0.3.7", false, { "192.0.2.0/24" }, false },
		{ "192.0.2.7", false, { "192.0.2.7" }, true },
		{ "192.0.2.8", false, { "192.0.2.7" }, false },
		{ "192.0.2.7", false, { "192.0.2.7/32" }, true },
		{ "192.0.2.8", false, { "192.0.2.7/32" }, false },
		{ "10.255.1.1", false, { "10.0.0.0/8" }, true },
		{ "11.0.0.1", false, { "10.0.0.0/8" }, false },
		{ "203.0.113.9", false, { "0.0.0.0/0" }, true },
		{ "255.255.255.255", false, { "1.2.3.4/0" }, true },
		{ "192.0.2.7", false, { "[192.0.2.0]/24" }, true },
		/* odd bit counts */
		{ "192.0.2.127", false, { "192.0.2.0/25" }, true },
		{ "192.0.2.128", false, { "192.0.2.0/25" }, false },
		{ "10.127.255.255", false, { "10.0.0.0/9" }, true },
		{ "10.128.0.0", false, { "10.0.0.0/9" }, false },
		{ "127.0.0.1", false, { "0.0.0.0/1" }, true },
		{ "128.0.0.1", false, { "0.0.0.0/1" }, false },
		{ "192.0.2.6", false, { "192.0.2.7/31" }, true },
		{ "192.0.2.5", false, { "192.0.2.7/31" }, false },
		{ "192.0.2.255", false, { "192.0.2.240/28" }, true },
		{ "192.0.2.239", false, { "192.0.2.240/28" }, false },
		/* out of range prefixes are not networks: skipped */
		{ "192.0.2.7", false, { "192.0.2.7/33" }, false },
		{ "192.0.2.7", false, { "192.0.2.7/33", "192.0.2.0/24" }, true },
		{ "::1", false, { "[::1]/129" }, false },
		/* IPv6 */
		{ "::1", false, { "[::1]/128" }, true },
		{ "::1", false, { "::1" }, true },
		{ "::2", false, { "[::1]/128" }, false },
		{ "2001:db8::1", false, { "[2001:db8::]/32" }, true },
		{ "2001:db9::1", false, { "[2001:db8::]/32" }, false },
		{ "2001:db8::1", false, { "2001:db8::/32" }, true },
		{ "2001:db8::1", false, { "[::]/0" }, true },
		{ "2001:db8:0:0:7fff::1", false, { "[2001:db8::]/65" }, true },
		{ "2001:db8:0:0:8000::1", false, { "[2001:db8::]/65" }, false },
		{ "2001:db8::3", false, { "[2001:db8::2]/127" }, true },
		{ "2001:db8::4", false, { "[2001:db8::2]/127" }, false },
		/* families do not mix, except IPv4-mapped clients */
		{ "192.0.2.7", false, { "[::]/0" }, false },
		{ "::1", false, { "0.0.0.0/0" }, false },
		{ "192.0.2.7", true, { "192.0.2.0/24" }, true },
		{ "192.0.3.7", true, { "192.0.2.0/24" }, false },
		{ "127.0.0.1", true, { "127.0.0.0/8", "[::1]/128" }, true },
		{ "::ffff:192.0.2.7", false, { "192.0.2.7/32" }, true },
		/* bad entries are skipped, the good ones still count */
		{ "192.0.2.7", false, { "garbage", "", "192.0.2.0/24" }, true },
		{ "192.0.2.7", false, { "192.0.2.0/", "192.0.2.0/x" }, false },
		{ "192.0.2.7", false, { "192.0.2.0/-1", "300.0.2.0/8" }, false },
		{ "192.0.2.7", false, { "192.0.2.0/24x", "[192.0.2.0/24" },
		  false },
		{ "::1", false, { "[::1", "[::1]x", "[::1]/", "[::1]" }, true },
		{ "192.0.2.7", false, { NULL }, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss = client(cases[i].addr,
		    cases[i].mapped);
		size_t n = 0;
		while (n < 4 && cases[i].networks[n] != NULL)
			n++;
		bool in = sock_addr_in_networks((struct sockaddr *)&ss,
		    (char *const *)cases[i].networks, n);
		CHECK_INT(in, cases[i].in);
		if (in != cases[i].in)
			printf("# case %zu: %s%s\n", i,
			    cases[i].mapped ? "::ffff:" : "", cases[i].addr);
	}

	/* Only IP clients are in a network. */
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *any[] = { "0.0.0.0/0", "[::]/0" };
	CHECK(!sock_addr_in_networks((struct sockaddr *)&sun, any, 2));
}

static void test_network_valid(void)
{
	static const struct {
		const char *text;
		bool valid;
	} cases[] = {
		{ "127.0.0.0/8", true },
		{ "[::1]/128", true },
		{ "::1", true },
		{ "192.0.2.7", true },
		{ "0.0.0.0/0", true },
		{ "10.0.0.0/32", true },
		{ "[2001:db8::]/32", true },
		{ "2001:db8::/32", true },
		{ "10.0.0.0/33", false },
		{ "[::]/129", false },
		{ "10.0.0.0/", false },
		{ "10.0.0.0/x", false },
		{ "10.0.0.0/8x", false },
		{ "10.0.0.0/-1", false },
		{ "10.0.0.0/+8", false },
		{ "10.0.0.0/ 8", false },
		{ "10.0.0/8", false },
		{ "example.org", false },
		{ "", false },
		{ "[", false },
		{ "[]", false },
		{ "[::1", false },
		{ "[::1]x", false },
		{ "fe80::1%eth0", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool valid = sock_network_valid(cases[i].text);
		CHECK_INT(valid, cases[i].valid);
		if (valid != cases[i].valid)
			printf("# \"%s\"\n", cases[i].text);
	}
}

static void test_addr_parse_format(void)
{
	static const struct {
		const char *text;
		bool ok;
		const char *formatted;
	} cases[] = {
		{ "192.0.2.7", true, "192.0.2.7" },
		{ "::1", true, "::1" },
		{ "IPv6:2001:db8::1", true, "2001:db8::1" },
		{ "ipv6:::1", true, "::1" },
		{ "::ffff:192.0.2.7", true, "192.0.2.7" },
		{ "192.0.2", false, NULL },
		{ "IPv6:192.0.2.7", false, NULL },
		{ "mx.example.org", false, NULL },
		{ "", false, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		bool ok = sock_addr_parse(cases[i].text, 2525, &ss, &len);
		CHECK_INT(ok, cases[i].ok);
		if (!ok || !cases[i].ok)
			continue;
		char out[64];
		int port = 0;
		sock_addr_format((struct sockaddr *)&ss, out, sizeof(out),
		    &port);
		CHECK_STR(out, cases[i].formatted);
		CHECK_INT(port, 2525);
		CHECK_INT(len, ss.ss_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	}
}

/* One accepted connection on a listener of sock_listen(): TCP_NODELAY on
 * the listener and on what it accepts (Linux copies it), so that no
 * reply waits for the peer's delayed ACK (util/sock.c). */
static void check_nodelay_listener(const char *host)
{
	/* Port 0: the kernel picks a free one (endpoint_parse() would
	 * refuse it in a configuration). */
	struct endpoint ep = { .kind = ENDPOINT_INET, .port = 0 };
	char err[256];
	int on = 0;
	socklen_t len = sizeof(on);

	snprintf(ep.host, sizeof(ep.host), "%s", host);
	int l = sock_listen(&ep, 4, 0600, err, sizeof(err));
	if (l < 0) {
		/* No IPv6 on this host: nothing to check there. */
		printf("# %s: %s\n", host, err);
		CHECK(strchr(host, ':') != NULL);
		return;
	}
	CHECK(getsockopt(l, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 &&
	    on == 1);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	CHECK(getsockname(l, (struct sockaddr *)&ss, &sslen) == 0);
	int c = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c >= 0 && connect(c, (struct sockaddr *)&ss, sslen) == 0);
	struct pollfd pfd = { .fd = l, .events = POLLIN };
	CHECK(poll(&pfd, 1, 5000) == 1);
	int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(a >= 0);
	on = 0;
	len = sizeof(on);
	CHECK(getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 &&
	    on == 1);
	close(a);
	close(c);
	close(l);
}

static void test_listener_nodelay(void)
{
	check_nodelay_listener("127.0.0.1");
	check_nodelay_listener("::1");
}

int main(void)
{
	RUN(test_endpoint_parse);
	RUN(test_endpoint_lengths);
	RUN(test_in_networks);
	RUN(test_network_valid);
	RUN(test_addr_parse_format);
	RUN(test_listener_nodelay);
	return unit_done();
}
