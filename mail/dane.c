/*
 * dane.c - TLSA records for DANE in SMTP (see dane.h).
 *
 * The DNS work is mail/dns.c's (the AD bit, RFC 6840 5.7); this file
 * judges what came back, by RFC 7672 2.2: validated records are used,
 * a validated denial or an unsigned answer means no DANE, and a failed
 * lookup (a validating resolver answers SERVFAIL for bogus data) means
 * the server cannot be trusted now, never that TLS may be dropped.
 */
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dane.h"
#include "dns.h"
#include "mem.h"
#include "sock.h"

bool dane_tlsa_parse(const unsigned char *rdata, size_t len,
    struct dane_tlsa *out)
{
	memset(out, 0, sizeof(*out));
	/* RFC 6698 2.1: three octets, then at least one of data. */
	if (len < 4)
		return false;
	out->usage = rdata[0];
	out->selector = rdata[1];
	out->mtype = rdata[2];
	out->len = len - 3;
	out->data = xmalloc(out->len);
	memcpy(out->data, rdata + 3, out->len);
	return true;
}

bool dane_tlsa_usable(const struct dane_tlsa *t)
{
	if (t->usage != DANE_USAGE_DANE_TA && t->usage != DANE_USAGE_DANE_EE)
		return false;
	if (t->selector != DANE_SELECTOR_CERT &&
	    t->selector != DANE_SELECTOR_SPKI)
		return false;
	switch (t->mtype) {
	case DANE_MTYPE_FULL:
		return t->len > 0;
	case DANE_MTYPE_SHA256:
		return t->len == 32;
	case DANE_MTYPE_SHA512:
		return t->len == 64;
	default:
		return false;
	}
}

void dane_tlsa_format(uint8_t usage, uint8_t selector, uint8_t mtype,
    const unsigned char *data, size_t len, char *out, size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	int n = snprintf(out, outsize, "%u %u %u ", usage, selector, mtype);
	if (n < 0 || (size_t)n >= outsize)
		return;
	size_t k = (size_t)n;
	/* A full certificate is long: its first and last 8 octets say
	 * which one it is. */
	size_t head = len > 32 ? 8 : len;
	for (size_t i = 0; i < head && k + 3 < outsize; i++) {
		out[k++] = hex[data[i] >> 4];
		out[k++] = hex[data[i] & 15];
	}
	if (len > 32 && k + 20 < outsize) {
		out[k++] = '.';
		out[k++] = '.';
		out[k++] = '.';
		for (size_t i = len - 8; i < len; i++) {
			out[k++] = hex[data[i] >> 4];
			out[k++] = hex[data[i] & 15];
		}
	}
	out[k] = '\0';
}

void dane_tlsa_set_free(struct dane_tlsa_set *set)
{
	for (size_t i = 0; i < set->count; i++)
		free(set->v[i].data);
	free(set->v);
	memset(set, 0, sizeof(*set));
}

enum dane_status dane_lookup(const char *host, int port,
    struct dane_tlsa_set *set, char *err, size_t errsize)
{
	char name[NS_MAXDNAME];
	struct dns_rr *rrs;
	size_t n;
	bool secure;

	memset(set, 0, sizeof(*set));
	/* RFC 7672 2.2.3: the TLSA base domain is the MX host. */
	int len = snprintf(name, sizeof(name), "_%d._tcp.%s", port, host);
	if (len < 0 || (size_t)len >= sizeof(name)) {
		snprintf(err, errsize, "host name too long for a TLSA lookup");
		return DANE_LOOKUP_FAILED;
	}
	enum dns_result r = dns_lookup_rr_dnssec(name, ns_t_tlsa, &rrs, &n,
	    &secure, err, errsize);
	switch (r) {
	case DNS_OK:
		break;
	case DNS_NOTFOUND:
		return secure ? DANE_NO_TLSA : DANE_INSECURE;
	default:
		return DANE_LOOKUP_FAILED;
	}
	if (!secure) {
		dns_rr_free(rrs, n);
		return DANE_INSECURE;
	}
	set->v = xcalloc(n, sizeof(*set->v));
	for (size_t i = 0; i < n; i++) {
		struct dane_tlsa t;
		if (!dane_tlsa_parse(rrs[i].data, rrs[i].len, &t)) {
			set->unusable++;
			continue;
		}
		if (!dane_tlsa_usable(&t)) {
			free(t.data);
			set->unusable++;
			continue;
		}
		set->v[set->count++] = t;
	}
	dns_rr_free(rrs, n);
	if (set->count == 0) {
		dane_tlsa_set_free(set);
		set->unusable = n;
		return DANE_UNUSABLE;
	}
	return DANE_USABLE;
}

bool dane_resolvers_trusted(const struct cfg_list *trusted, char *why,
    size_t whysize)
{
	struct sockaddr_storage ss[8];
	size_t n = dns_server_addrs(ss, sizeof(ss) / sizeof(*ss));
	if (n == 0) {
		snprintf(why, whysize, "no resolver is configured");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!sock_addr_in_networks((const struct sockaddr *)&ss[i],
		    trusted->items, trusted->count)) {
			char addr[64];
			int port;
			sock_addr_format((const struct sockaddr *)&ss[i], addr,
			    sizeof(addr), &port);
			snprintf(why, whysize, "resolver %s is not in "
			    "smtp_dnssec_trusted_resolvers", addr);
			return false;
		}
	}
	return true;
}
