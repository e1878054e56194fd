/*
 * test_dns.c - mail/dns.c against a real dnsmasq on a free loopback port.
 *
 * The zone the test serves (all under .test, answered only by dnsmasq):
 *   order.test    MX 30 mx3, 10 mx1, 20 mx2
 *   equal.test    MX 10 e1..e4, MX 5 first, MX 50 last
 *   plain.test    no MX; A 127.0.0.2, AAAA ::2
 *   v4only.test   no MX; A 127.0.0.3
 *   nullmx.test   MX 0 . (RFC 7505), written as raw rdata
 *   nullmx2.test  MX 0 . through --mx-host with target "."
 *   bl.test       a DNS blocklist: 127.0.0.2 listed (A 127.0.0.2 and a
 *                 TXT), 127.0.0.3 listed with code 127.0.0.10, 127.0.0.4
 *                 answered 127.255.255.254 (an error code), ::1 listed
 *   anything else NXDOMAIN (--local=/test/)
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "sock.h"
#include "unit.h"
#include "unit_dnsmasq.h"

static void use_servers(const char *server)
{
	char text[64], err[256];
	char *items[2] = { text, NULL };
	struct cfg_list list = { items, 1 };

	snprintf(text, sizeof(text), "%s", server);
	if (!dns_init(&list, err, sizeof(err))) {
		printf("# dns_init: %s\n", err);
		exit(1);
	}
}

/* ::1 on bl.test: 31 zero nibbles after the 1, reversed. */
static char v6_listed[200] = "--host-record=1.";

static const char *dns_zone[] = {
	"--listen-address=::1",
	"--mx-host=order.test,mx3.order.test,30",
	"--mx-host=order.test,mx1.order.test,10",
	"--mx-host=order.test,mx2.order.test,20",
	"--mx-host=equal.test,first.equal.test,5",
	"--mx-host=equal.test,e1.equal.test,10",
	"--mx-host=equal.test,e2.equal.test,10",
	"--mx-host=equal.test,e3.equal.test,10",
	"--mx-host=equal.test,e4.equal.test,10",
	"--mx-host=equal.test,last.equal.test,50",
	"--host-record=plain.test,127.0.0.2,::2",
	"--host-record=v4only.test,127.0.0.3",
	"--dns-rr=nullmx.test,15,0000:00",
	"--mx-host=nullmx2.test,.,0",
	"--host-record=2.0.0.127.bl.test,127.0.0.2",
	"--txt-record=2.0.0.127.bl.test,listed: see https://bl.test/?127.0.0.2",
	"--host-record=3.0.0.127.bl.test,127.0.0.10",
	"--host-record=4.0.0.127.bl.test,127.255.255.254",
	v6_listed,
	NULL,
};

static bool start_dnsmasq(void)
{
	for (int i = 0; i < 31; i++)
		strcat(v6_listed, "0.");
	strcat(v6_listed, "bl.test,127.0.0.4");
	return unit_dnsmasq_start(dns_zone, "2.0.0.127.bl.test");
}

static void use_ipv4_server(void)
{
	char server[64];
	snprintf(server, sizeof(server), "127.0.0.1:%d", unit_dnsmasq_port);
	use_servers(server);
}

static void test_mx_sorted_by_preference(void)
{
	struct dns_mx *mx;
	size_t count;
	char err[256];

	use_ipv4_server();
	CHECK_INT(dns_lookup_mx("order.test", &mx, &count, err, sizeof(err)),
	    DNS_OK);
	CHECK_INT(count, 3);
	if (count == 3) {
		CHECK_STR(mx[0].host, "mx1.order.test");
		CHECK_INT(mx[0].preference, 10);
		CHECK_STR(mx[1].host, "mx2.order.test");
		CHECK_STR(mx[2].host, "mx3.order.test");
		CHECK_INT(mx[2].preference, 30);
	}
	free(mx);
}

static void test_mx_equal_preference_shuffled(void)
{
	bool seen_first[4] = { false, false, false, false };
	bool order_ok = true;

	use_ipv4_server();
	/* 4 equal hosts, 60 lookups: the chance one never leads is ~1e-7. */
	for (int round = 0; round < 60; round++) {
		struct dns_mx *mx;
		size_t count;
		char err[256];
		if (dns_lookup_mx("equal.test", &mx, &count, err,
		    sizeof(err)) != DNS_OK || count != 6) {
			order_ok = false;
			break;
		}
		if (strcmp(mx[0].host, "first.equal.test") != 0 ||
		    strcmp(mx[5].host, "last.equal.test") != 0)
			order_ok = false;
		for (size_t i = 1; i < 5; i++)
			if (mx[i].preference != 10)
				order_ok = false;
		if (strncmp(mx[1].host, "e", 1) == 0 && mx[1].host[1] >= '1' &&
		    mx[1].host[1] <= '4')
			seen_first[mx[1].host[1] - '1'] = true;
		free(mx);
	}
	CHECK(order_ok);
	for (int i = 0; i < 4; i++)
		CHECK(seen_first[i]);
}

static void test_no_mx_falls_back_to_addresses(void)
{
	struct dns_mx *mx;
	struct dns_addr *addrs;
	size_t count;
	char err[256];

	use_ipv4_server();
	CHECK_INT(dns_lookup_mx("plain.test", &mx, &count, err, sizeof(err)),
	    DNS_NOTFOUND);
	CHECK_INT(count, 0);
	CHECK_INT(dns_lookup_addrs("plain.test", 2525, &addrs, &count, err,
	    sizeof(err)), DNS_OK);
	CHECK_INT(count, 2);
	bool v4 = false, v6 = false;
	for (size_t i = 0; i < count; i++) {
		char text[64];
		if (addrs[i].sa.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&addrs[i].sa;
			inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
			v4 = strcmp(text, "127.0.0.2") == 0 &&
			    ntohs(sin->sin_port) == 2525 &&
			    addrs[i].salen == sizeof(*sin);
		} else if (addrs[i].sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 =
			    (struct sockaddr_in6 *)&addrs[i].sa;
			inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
			v6 = strcmp(text, "::2") == 0 &&
			    ntohs(sin6->sin6_port) == 2525;
		}
	}
	CHECK(v4);
	CHECK(v6);
	free(addrs);

	CHECK_INT(dns_lookup_addrs("v4only.test", 25, &addrs, &count, err,
	    sizeof(err)), DNS_OK);
	CHECK_INT(count, 1);
	free(addrs);
}

static void test_null_mx(void)
{
	struct dns_mx *mx;
	size_t count;
	char err[256];

	use_ipv4_server();
	CHECK_INT(dns_lookup_mx("nullmx.test", &mx, &count, err, sizeof(err)),
	    DNS_NULLMX);
	CHECK(strstr(err, "nullmx.test") != NULL);
	CHECK_INT(dns_lookup_mx("nullmx2.test", &mx, &count, err, sizeof(err)),
	    DNS_NULLMX);
}

static void test_nxdomain(void)
{
	struct dns_mx *mx;
	struct dns_addr *addrs;
	size_t count;
	char err[256];

	use_ipv4_server();
	CHECK_INT(dns_lookup_mx("nosuch.test", &mx, &count, err, sizeof(err)),
	    DNS_NOTFOUND);
	CHECK(strstr(err, "nosuch.test") != NULL);
	CHECK_INT(dns_lookup_addrs("nosuch.test", 25, &addrs, &count, err,
	    sizeof(err)), DNS_NOTFOUND);
	CHECK_INT(count, 0);
}

static void test_ip_literal_needs_no_lookup(void)
{
	struct dns_addr *addrs;
	size_t count;
	char err[256];

	use_servers("127.0.0.1:1");	/* would fail if it were asked */
	CHECK_INT(dns_lookup_addrs("192.0.2.9", 587, &addrs, &count, err,
	    sizeof(err)), DNS_OK);
	CHECK_INT(count, 1);
	CHECK_INT(addrs[0].sa.ss_family, AF_INET);
	free(addrs);
	CHECK_INT(dns_lookup_addrs("2001:db8::1", 25, &addrs, &count, err,
	    sizeof(err)), DNS_OK);
	CHECK_INT(count, 1);
	CHECK_INT(addrs[0].sa.ss_family, AF_INET6);
	free(addrs);
}

static void test_ipv6_server(void)
{
	struct dns_mx *mx;
	size_t count;
	char server[64], err[256];

	snprintf(server, sizeof(server), "[::1]:%d", unit_dnsmasq_port);
	use_servers(server);
	CHECK_INT(dns_lookup_mx("order.test", &mx, &count, err, sizeof(err)),
	    DNS_OK);
	CHECK_INT(count, 3);
	free(mx);
}

/*
 * A port nothing listens on, for as long as the test needs: one below
 * 1024 when we may bind there (root), which neither the kernel's
 * ephemeral ports nor the test servers that run beside the unit tests
 * (tests/helpers/free_port.py) ever take; else a free port of the
 * ephemeral range, which such a server may take meanwhile (a DNS server
 * of another test file once answered NXDOMAIN there).
 */
static int unit_dead_port(void)
{
	for (int port = 999; port >= 900; port--) {
		struct sockaddr_in sin = { .sin_family = AF_INET,
			.sin_port = htons((uint16_t)port),
			.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		bool free_here = u >= 0 && t >= 0 &&
		    bind(u, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		    bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0;
		int bind_errno = errno;
		if (u >= 0)
			close(u);
		if (t >= 0)
			close(t);
		if (free_here)
			return port;
		if (bind_errno == EACCES)
			break;		/* not root */
	}
	return unit_free_port();
}

static void test_unreachable_server_tempfails_quickly(void)
{
	struct dns_mx *mx;
	struct dns_addr *addrs;
	size_t count;
	char server[64], err[256];
	int port = unit_dead_port();		/* nothing listens there */
	struct timespec t0, t1;

	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	use_servers(server);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_INT(dns_lookup_mx("order.test", &mx, &count, err, sizeof(err)),
	    DNS_TEMPFAIL);
	CHECK_INT(dns_lookup_addrs("plain.test", 25, &addrs, &count, err,
	    sizeof(err)), DNS_TEMPFAIL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Generous bound: the resolver timers, not a hang (2 s x 2 tries). */
	CHECK(t1.tv_sec - t0.tv_sec < 20);
}

static void test_bad_server_config(void)
{
	char err[256];
	const char *bad[] = { "mx.example.net", "127.0.0.1:0", "[::1",
		"127.0.0.1:99999", "" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *items[2] = { (char *)bad[i], NULL };
		struct cfg_list list = { items, 1 };
		CHECK(!dns_init(&list, err, sizeof(err)));
	}
	char *four[5] = { "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4",
		NULL };
	struct cfg_list many = { four, 4 };
	CHECK(!dns_init(&many, err, sizeof(err)));
}

static void test_dnsbl_spec_parse(void)
{
	struct dns_dnsbl l;
	char err[256];

	CHECK(dns_dnsbl_parse("zen.spamhaus.org", &l, err, sizeof(err)));
	CHECK_STR(l.zone, "zen.spamhaus.org");
	CHECK(!l.filtered);
	CHECK(dns_dnsbl_parse("bl.test.=127.0.0.[2..11]", &l, err, sizeof(err)));
	CHECK_STR(l.zone, "bl.test");
	CHECK(l.filtered);
	CHECK(dns_dnsbl_parse("bl.test=127.0.[0;1].[2;4..5]", &l, err,
	    sizeof(err)));
	CHECK(!dns_dnsbl_parse("", &l, err, sizeof(err)));
	CHECK(!dns_dnsbl_parse("=127.0.0.2", &l, err, sizeof(err)));
	CHECK(!dns_dnsbl_parse("bad zone", &l, err, sizeof(err)));
	CHECK(!dns_dnsbl_parse("bl.test=127.0.0", &l, err, sizeof(err)));
	CHECK(!dns_dnsbl_parse("bl.test=127.0.0.256", &l, err, sizeof(err)));
	CHECK(!dns_dnsbl_parse("bl.test=127.0.0.[5..2]", &l, err, sizeof(err)));
	CHECK(!dns_dnsbl_parse("bl.test=127.0.0.[2", &l, err, sizeof(err)));
	CHECK(!dns_dnsbl_parse("bl.test=127.0.0.2x", &l, err, sizeof(err)));
	CHECK(strstr(err, "junk") != NULL);
}

static enum dns_result dnsbl_ask(const char *spec, const char *client,
    char *reason, size_t reasonsize)
{
	struct dns_dnsbl l;
	struct sockaddr_storage ss = { 0 };
	char err[256];

	if (!dns_dnsbl_parse(spec, &l, err, sizeof(err)))
		return DNS_FAIL;
	if (strchr(client, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, client, &sin6->sin6_addr);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, client, &sin->sin_addr);
	}
	enum dns_result r = dns_dnsbl_lookup(&l, (struct sockaddr *)&ss,
	    reason, reasonsize, err, sizeof(err));
	if (r != DNS_OK && r != DNS_NOTFOUND)
		printf("# %s in %s: %s\n", client, spec, err);	/* why */
	return r;
}

static void test_dnsbl_lookup(void)
{
	char reason[256];

	use_ipv4_server();	/* test_ip_literal... pointed it elsewhere */

	CHECK_INT(dnsbl_ask("bl.test", "127.0.0.2", reason, sizeof(reason)),
	    DNS_OK);
	CHECK_STR(reason, "listed: see https://bl.test/?127.0.0.2");
	CHECK_INT(dnsbl_ask("bl.test", "127.0.0.3", reason, sizeof(reason)),
	    DNS_OK);
	CHECK_STR(reason, "");
	/* Not listed; and the lists' own error codes are not a listing. */
	CHECK_INT(dnsbl_ask("bl.test", "127.0.0.9", reason, sizeof(reason)),
	    DNS_NOTFOUND);
	CHECK_INT(dnsbl_ask("bl.test", "127.0.0.4", reason, sizeof(reason)),
	    DNS_NOTFOUND);
	/* A filter picks the codes that count. */
	CHECK_INT(dnsbl_ask("bl.test=127.0.0.[2..9]", "127.0.0.3", reason,
	    sizeof(reason)), DNS_NOTFOUND);
	CHECK_INT(dnsbl_ask("bl.test=127.0.0.[2..11]", "127.0.0.3", reason,
	    sizeof(reason)), DNS_OK);
	CHECK_INT(dnsbl_ask("bl.test=127.255.255.[1..255]", "127.0.0.4",
	    reason, sizeof(reason)), DNS_OK);
	/* IPv6: nibbles; an IPv4-mapped address is asked as IPv4. */
	CHECK_INT(dnsbl_ask("bl.test", "::1", reason, sizeof(reason)), DNS_OK);
	CHECK_INT(dnsbl_ask("bl.test", "::2", reason, sizeof(reason)),
	    DNS_NOTFOUND);
	CHECK_INT(dnsbl_ask("bl.test", "::ffff:127.0.0.2", reason,
	    sizeof(reason)), DNS_OK);
}

/* ---- the reply parsers on hand-built packets (no name server) ---- */

struct packet {
	unsigned char b[512];
	int len;
	int ancount_at;		/* offset of ANCOUNT */
};

static void put8(struct packet *p, unsigned v)
{
	p->b[p->len++] = (unsigned char)v;
}

static void put16(struct packet *p, unsigned v)
{
	put8(p, v >> 8);
	put8(p, v & 0xff);
}

static void put_bytes(struct packet *p, const void *d, size_t n)
{
	memcpy(p->b + p->len, d, n);
	p->len += (int)n;
}

/* "example.org" as labels; a question for it of type qtype. */
static void packet_start(struct packet *p, unsigned qtype, unsigned ancount)
{
	memset(p, 0, sizeof(*p));
	put16(p, 0x1234);
	put16(p, 0x8180);	/* a response, no error */
	put16(p, 1);
	p->ancount_at = p->len;
	put16(p, ancount);
	put16(p, 0);
	put16(p, 0);
	put_bytes(p, "\7example\3org\0", 13);
	put16(p, qtype);
	put16(p, 1);
}

/* One answer for the question's name (pointer to offset 12). */
static void packet_rr(struct packet *p, unsigned type, unsigned class,
    const void *rdata, size_t rdlen)
{
	put16(p, 0xc00c);
	put16(p, type);
	put16(p, class);
	put16(p, 0);
	put16(p, 300);
	put16(p, (unsigned)rdlen);
	put_bytes(p, rdata, rdlen);
}

static void test_parse_packets(void)
{
	struct packet p;
	struct dns_mx *mx;
	size_t count;
	char err[256];

	/* Two MX (one through a compression pointer), a CNAME, an MX of
	 * another class and one too short: two hosts, by preference. */
	packet_start(&p, ns_t_mx, 5);
	packet_rr(&p, ns_t_cname, ns_c_in, "\5alias\300\14", 8);
	packet_rr(&p, ns_t_mx, ns_c_in, "\0\24\3mx2\300\14", 8);
	packet_rr(&p, ns_t_mx, ns_c_in, "\0\12\3mx1\7example\3org\0", 19);
	packet_rr(&p, ns_t_mx, ns_c_chaos, "\0\1\3mx0\300\14", 8);
	packet_rr(&p, ns_t_mx, ns_c_in, "\0\1", 2);
	CHECK_INT(dns_parse_mx(p.b, p.len, "example.org", &mx, &count, err,
	    sizeof(err)), DNS_OK);
	CHECK_INT(count, 2);
	if (count == 2) {
		CHECK_STR(mx[0].host, "mx1.example.org");
		CHECK_INT(mx[0].preference, 10);
		CHECK_STR(mx[1].host, "mx2.example.org");
		CHECK_INT(mx[1].preference, 20);
	}
	free(mx);

	/* ANCOUNT promises more than the packet holds: libresolv's
	 * ns_initparse refuses it whole, a temporary failure. */
	p.b[p.ancount_at + 1] = 9;
	CHECK_INT(dns_parse_mx(p.b, p.len, "example.org", &mx, &count, err,
	    sizeof(err)), DNS_TEMPFAIL);
	CHECK(mx == NULL);

	/* A name pointing at itself is skipped, not followed for ever. */
	packet_start(&p, ns_t_mx, 1);
	put16(&p, 0xc00c);
	put16(&p, ns_t_mx);
	put16(&p, ns_c_in);
	put16(&p, 0);
	put16(&p, 300);
	put16(&p, 4);
	put16(&p, 10);
	put16(&p, 0xc000 | (unsigned)p.len);
	CHECK_INT(dns_parse_mx(p.b, p.len, "example.org", &mx, &count, err,
	    sizeof(err)), DNS_NOTFOUND);
	CHECK(mx == NULL);
	CHECK_STR(err, "no MX record for example.org");

	/* Null MX; a header cut short is malformed (a temporary failure). */
	packet_start(&p, ns_t_mx, 1);
	packet_rr(&p, ns_t_mx, ns_c_in, "\0\0\0", 3);
	CHECK_INT(dns_parse_mx(p.b, p.len, "example.org", &mx, &count, err,
	    sizeof(err)), DNS_NULLMX);
	CHECK_INT(dns_parse_mx(p.b, 7, "example.org", &mx, &count, err,
	    sizeof(err)), DNS_TEMPFAIL);

	/* Addresses: only records of the asked type and the right size. */
	struct dns_addr *addrs = NULL;
	size_t n = 0, cap = 0;
	packet_start(&p, ns_t_a, 4);
	packet_rr(&p, ns_t_a, ns_c_in, "\300\0\2\7", 4);
	packet_rr(&p, ns_t_a, ns_c_in, "\300\0\2\7\1", 5);
	packet_rr(&p, ns_t_aaaa, ns_c_in, "\40\1\15\270\0\0\0\0\0\0\0\0\0\0\0\1",
	    16);
	packet_rr(&p, ns_t_a, ns_c_in, "\177\0\0\2", 4);
	dns_parse_addrs(p.b, p.len, ns_t_a, 25, &addrs, &n, &cap);
	CHECK_INT(n, 2);
	dns_parse_addrs(p.b, p.len, ns_t_aaaa, 587, &addrs, &n, &cap);
	CHECK_INT(n, 3);
	dns_parse_addrs(p.b, p.len, ns_t_mx, 25, &addrs, &n, &cap);
	CHECK_INT(n, 3);
	if (n == 3) {
		char text[64];
		int port;
		sock_addr_format((struct sockaddr *)&addrs[1].sa, text,
		    sizeof(text), &port);
		CHECK_STR(text, "127.0.0.2");
		CHECK_INT(port, 25);
		sock_addr_format((struct sockaddr *)&addrs[2].sa, text,
		    sizeof(text), &port);
		CHECK_STR(text, "2001:db8::1");
		CHECK_INT(port, 587);
	}
	free(addrs);

	/* TXT: strings joined, a length past the record cut at its end,
	 * the reason cut to its buffer. */
	char reason[8];
	packet_start(&p, ns_t_txt, 1);
	packet_rr(&p, ns_t_txt, ns_c_in, "\3abc\2de\11fg", 10);
	dns_parse_txt(p.b, p.len, reason, sizeof(reason));
	CHECK_STR(reason, "abcdefg");
	dns_parse_txt(p.b, p.len, reason, 4);
	CHECK_STR(reason, "abc");
	dns_parse_txt(p.b, 5, reason, sizeof(reason));
	CHECK_STR(reason, "");

	/* Blocklist answers against a filter and without one. */
	struct dns_dnsbl any, some;
	CHECK(dns_dnsbl_parse("bl.test", &any, err, sizeof(err)));
	CHECK(dns_dnsbl_parse("bl.test=127.0.0.[2..4]", &some, err,
	    sizeof(err)));
	packet_start(&p, ns_t_a, 1);
	packet_rr(&p, ns_t_a, ns_c_in, "\177\0\0\12", 4);
	CHECK(dns_dnsbl_listed(&any, p.b, p.len));
	CHECK(!dns_dnsbl_listed(&some, p.b, p.len));
	packet_start(&p, ns_t_a, 1);
	packet_rr(&p, ns_t_a, ns_c_in, "\177\377\377\376", 4);
	CHECK(!dns_dnsbl_listed(&any, p.b, p.len));
	packet_start(&p, ns_t_a, 1);
	packet_rr(&p, ns_t_a, ns_c_in, "\177\0\0\3", 4);
	CHECK(dns_dnsbl_listed(&some, p.b, p.len));
	CHECK(!dns_dnsbl_listed(&some, p.b, 20));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (!start_dnsmasq()) {
		printf("not ok 1 - start dnsmasq (/usr/sbin/dnsmasq)\n1..1\n");
		unit_dnsmasq_stop();
		return 1;
	}
	RUN(test_mx_sorted_by_preference);
	RUN(test_mx_equal_preference_shuffled);
	RUN(test_no_mx_falls_back_to_addresses);
	RUN(test_null_mx);
	RUN(test_nxdomain);
	RUN(test_ip_literal_needs_no_lookup);
	RUN(test_dnsbl_spec_parse);
	RUN(test_dnsbl_lookup);
	RUN(test_ipv6_server);
	RUN(test_unreachable_server_tempfails_quickly);
	RUN(test_bad_server_config);
	RUN(test_parse_packets);
	dns_close();
	unit_dnsmasq_stop();
	return unit_done();
}
