/*
 * dns.h - the DNS lookups postern needs, through libresolv: MX records
 * (RFC 5321 5.1, RFC 7505 null MX) and A/AAAA addresses for the SMTP
 * client; DNS blocklists (RFC 5782) for smtpd.
 * dns_servers (config) replaces the system resolver's name servers, for
 * tests and split DNS ("127.0.0.1:5353", "[::1]:53").
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cfg.h"

enum dns_result {
	DNS_OK,
	DNS_NOTFOUND,	/* NXDOMAIN, or no records of that type */
	DNS_TEMPFAIL,	/* SERVFAIL, timeout: try again later */
	DNS_NULLMX,	/* RFC 7505: the domain accepts no mail */
	DNS_FAIL,	/* permanent error (malformed name, bad answer) */
};

struct dns_mx {
	char host[256];
	int preference;
};

struct dns_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
};

/* Configure the resolver from dns_servers (empty list: system default). */
bool dns_init(const struct cfg_list *servers, char *err, size_t errsize);
/* Release the resolver state (sockets, glibc's resolv.conf copy). */
void dns_close(void);
/*
 * MX records sorted by preference, equal preferences shuffled. *mx is
 * malloc'd. DNS_NOTFOUND when the domain exists but has no MX (caller
 * falls back to its address records, RFC 5321 5.1).
 */
enum dns_result dns_lookup_mx(const char *domain, struct dns_mx **mx,
    size_t *count, char *err, size_t errsize);
/* A and AAAA records of host (port set in each); *addrs malloc'd. */
enum dns_result dns_lookup_addrs(const char *host, int port,
    struct dns_addr **addrs, size_t *count, char *err, size_t errsize);

/*
 * A DNS blocklist from smtpd_dnsbl_sites: "zone" or "zone=filter". The
 * filter is matched against the list's A records, octet by octet, each a
 * number, "[lo..hi]" or "[a;b;c]", as Postfix writes it:
 * "zen.spamhaus.org=127.0.0.[2..11]". Without a filter any A record in
 * 127.0.0.0/8 but 127.255.255.0/24 (the lists' own error codes, such as
 * "query refused") means listed.
 */
struct dns_dnsbl {
	char zone[256];
	bool filtered;
	unsigned char octet_ok[4][32];	/* bit n of octet i: value n matches */
};

bool dns_dnsbl_parse(const char *spec, struct dns_dnsbl *list, char *err,
    size_t errsize);

/*
 * Is client (IPv4 or IPv6) on list? DNS_OK: listed, with the list's TXT
 * record, if any, in reason ("" if none); DNS_NOTFOUND: not listed;
 * DNS_TEMPFAIL or DNS_FAIL (err says why): could not tell.
 */
enum dns_result dns_dnsbl_lookup(const struct dns_dnsbl *list,
    const struct sockaddr *client, char *reason, size_t reasonsize,
    char *err, size_t errsize);

/*
 * A weighted site of screen_dnsbl_sites: "zone[=filter][*weight]"
 * (Postfix's postscreen_dnsbl_sites syntax); *weight is 1 when none is
 * written, from -1000 to 1000.
 */
bool dns_dnsbl_parse_weighted(const char *spec, struct dns_dnsbl *list,
    int *weight, char *err, size_t errsize);

/*
 * The name to ask list about client: the address's octets (IPv6: its
 * nibbles) reversed, then the zone (RFC 5782 2.1, 2.4). For screen,
 * which sends its own queries from its event loop.
 */
bool dns_dnsbl_name(const struct dns_dnsbl *list,
    const struct sockaddr *client, char *name, size_t namesize);

/* The first TXT record of name, its strings joined, in out (truncated
 * to fit); for DKIM key records (postern dkim check). */
enum dns_result dns_lookup_txt(const char *name, char *out, size_t outsize,
    char *err, size_t errsize);

/*
 * Every record of type (ns_t_txt, ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_ptr)
 * for name: a TXT record's strings joined, an address's 4 or 16 bytes,
 * an MX's exchange or a PTR's name (each NUL-terminated too). For SPF's
 * lookups (mail/spf_check.c): DNS_NOTFOUND when the name does not exist
 * or has no such record, which SPF counts as a void lookup.
 */
struct dns_rr {
	unsigned char *data;
	size_t len;
};
enum dns_result dns_lookup_rr(const char *name, int type, struct dns_rr **rrs,
    size_t *count, char *err, size_t errsize);
void dns_rr_free(struct dns_rr *rrs, size_t count);

/*
 * The parsers of one reply packet (len bytes as res_nquery returned
 * them), which the lookups above use; apart so that tests and
 * tests/fuzz/fuzz_dns.c reach them without a name server. Nothing in the
 * packet is trusted: records of other types or classes, bad lengths and
 * names that do not expand within the packet are skipped.
 *
 * dns_parse_mx: the MX records, as dns_lookup_mx returns them (domain
 * only names the query in err). dns_parse_addrs: append the A (type
 * ns_t_a) or AAAA (ns_t_aaaa) records, with port, to *addrs (*count used
 * of *cap, grown as needed). dns_parse_txt: the first TXT record's
 * strings joined into reason, truncated to fit ("" if none).
 * dns_dnsbl_listed: does an A record of the answer match list?
 */
enum dns_result dns_parse_mx(const unsigned char *answer, int len,
    const char *domain, struct dns_mx **mx, size_t *count, char *err,
    size_t errsize);
void dns_parse_addrs(const unsigned char *answer, int len, int type,
    int port, struct dns_addr **addrs, size_t *count, size_t *cap);
void dns_parse_txt(const unsigned char *answer, int len, char *reason,
    size_t reasonsize);
bool dns_dnsbl_listed(const struct dns_dnsbl *list,
    const unsigned char *answer, int len);

/*
 * DNSSEC for DANE (RFC 7672 2.1): the same lookups with the AD bit asked
 * for, and *secure set when the resolver said the answer (or the denial,
 * for DNS_NOTFOUND) was validated. Whether the resolver is to be trusted
 * is the caller's decision (dns_server_addrs). An address lookup is
 * secure when both the AAAA and the A answers are; an IP literal never
 * is. A family whose lookup failed for now (SERVFAIL: with a validating
 * resolver, a bogus or indeterminate answer) gives no address and has
 * no say in *secure: the host's other family is returned alone with its
 * own verdict (RFC 7672 2.1.1, 2.2), and err says what failed even
 * though the result is DNS_OK (empty when nothing did).
 * dns_lookup_rr_dnssec returns the raw RDATA of each record of type
 * (TLSA: usage, selector, matching type, data).
 */
enum dns_result dns_lookup_mx_dnssec(const char *domain, struct dns_mx **mx,
    size_t *count, bool *secure, char *err, size_t errsize);
enum dns_result dns_lookup_addrs_dnssec(const char *host, int port,
    struct dns_addr **addrs, size_t *count, bool *secure, char *err,
    size_t errsize);
enum dns_result dns_lookup_rr_dnssec(const char *name, int type,
    struct dns_rr **rrs, size_t *count, bool *secure, char *err,
    size_t errsize);

/*
 * The name host stands for at the end of its CNAME chain (RFC 7672 2.2.2:
 * the TLSA base domain of a CNAME'd MX host), from the answer to its
 * address query: out is host itself when it is no alias. *secure says
 * whether the resolver validated the whole answer (the AD bit).
 */
enum dns_result dns_cname_expand_dnssec(const char *host, char *out,
    size_t outsize, bool *secure, char *err, size_t errsize);
/* The resolvers queries go to (dns_servers or resolv.conf), at most max. */
size_t dns_server_addrs(struct sockaddr_storage *out, size_t max);

#endif
