/*
 * fuzz_dns.c - libFuzzer harness for the DNS reply parsers (mail/dns.c:
 * dns_parse_mx, dns_parse_addrs, dns_parse_txt, dns_dnsbl_listed), fed
 * the reply packet as a name server, or anyone who can spoof one, would
 * send it; and for the blocklist syntax (dns_dnsbl_parse) on the same
 * bytes. Built by `make fuzz`, run briefly by `make fuzz-smoke`.
 *
 * Besides memory safety: MX hosts are non-empty names that fit struct
 * dns_mx, sorted by preference, no more than the answer count; every
 * address is of the family asked for; a TXT reason always fits and ends
 * in its NUL.
 */
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_dns: %s\n", what);
	abort();
}

static void check_mx(const unsigned char *p, int len)
{
	struct dns_mx *mx;
	size_t count;
	char err[256];

	enum dns_result r = dns_parse_mx(p, len, "example.org", &mx, &count,
	    err, sizeof(err));
	if (r != DNS_OK) {
		if (mx != NULL || count != 0 || err[0] == '\0')
			fail("MX failure without its error or with records");
		return;
	}
	if (count == 0 || len < NS_HFIXEDSZ ||
	    count > (size_t)(p[6] << 8 | p[7]))
		fail("MX count outside the answer count");
	for (size_t i = 0; i < count; i++) {
		size_t n = strnlen(mx[i].host, sizeof(mx[i].host));
		if (n == 0 || n == sizeof(mx[i].host))
			fail("MX host empty or unterminated");
		if (i > 0 && mx[i].preference < mx[i - 1].preference)
			fail("MX records not sorted by preference");
	}
	free(mx);
}

static void check_addrs(const unsigned char *p, int len)
{
	struct dns_addr *addrs = NULL;
	size_t count = 0, cap = 0;

	dns_parse_addrs(p, len, ns_t_aaaa, 25, &addrs, &count, &cap);
	size_t v6 = count;
	dns_parse_addrs(p, len, ns_t_a, 25, &addrs, &count, &cap);
	if (count > cap)
		fail("more addresses than room");
	for (size_t i = 0; i < count; i++) {
		int want = i < v6 ? AF_INET6 : AF_INET;
		if (addrs[i].sa.ss_family != want)
			fail("address of the wrong family");
	}
	free(addrs);
}

static void check_txt(const unsigned char *p, int len)
{
	static const size_t sizes[] = { 1, 2, 64, 512 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		char *reason = malloc(sizes[k]);
		dns_parse_txt(p, len, reason, sizes[k]);
		if (memchr(reason, '\0', sizes[k]) == NULL)
			fail("TXT reason not terminated within its buffer");
		free(reason);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65535)
		return 0;
	int len = (int)size;

	check_mx(data, len);
	check_addrs(data, len);
	check_txt(data, len);

	struct dns_dnsbl any, filtered;
	char err[256];
	if (!dns_dnsbl_parse("bl.example", &any, err, sizeof(err)) ||
	    !dns_dnsbl_parse("bl.example=127.0.[0..1].[2;4;10..11]", &filtered,
	    err, sizeof(err)))
		fail("fixed blocklist specs do not parse");
	(void)dns_dnsbl_listed(&any, data, len);
	(void)dns_dnsbl_listed(&filtered, data, len);

	/* The same bytes as a smtpd_dnsbl_sites entry. */
	char *spec = malloc(size + 1);
	memcpy(spec, data, size);
	spec[size] = '\0';
	struct dns_dnsbl list;
	if (dns_dnsbl_parse(spec, &list, err, sizeof(err)) &&
	    strnlen(list.zone, sizeof(list.zone)) == sizeof(list.zone))
		fail("blocklist zone unterminated");
	free(spec);
	return 0;
}
