/*
 * dns.c - MX and address lookups for the SMTP client, DNS blocklist
 * lookups for smtpd, through libresolv.
 *
 * Trusts nothing in an answer: every record is parsed with ns_parserr,
 * names are expanded with bounds, and records of unexpected types or
 * classes are skipped. One resolver state per process (deliver and smtpd
 * are single threaded). dns_servers replaces the name servers of resolv.conf; with it
 * the retry timers are short, because such servers are local (tests,
 * split DNS) and a dead one should defer mail quickly, not hang a job.
 *
 * A new UDP socket per query, on purpose (issue 20 asked; left as it is):
 * glibc's res_nquery without RES_STAYOPEN opens, connects and closes one
 * per query, so the kernel picks a new random ephemeral port each time.
 * RES_STAYOPEN would save 3 of its 7 system calls, but would fix the
 * source port for the life of the process (max_use sessions of smtpd or
 * deliver, many queries), leaving the query ID as the only guess an
 * off-path forger of an answer has to make: 16 bits, and glibc 2.36
 * draws it from the monotonic clock, not from a random source. RFC 5452
 * 9.2 wants an unpredictable source port per query as well as an
 * unpredictable ID (about 31 bits together); mail routing (MX, the
 * DANE and MTA-STS lookups, DNSBLs) trusts these answers when the
 * resolver is not on this host, and no lookup here is hot enough to pay
 * for the weakening (none on the benchmark's paths).
 */
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/stdlib.h>
#include <bsd/string.h>

#include "dns.h"
#include "log.h"
#include "mem.h"
#include "sock.h"

/* Short resolver timers when dns_servers names our own servers. */
#define DNS_OVERRIDE_RETRANS 2	/* seconds per try */
#define DNS_OVERRIDE_RETRY 2	/* tries per server */

static struct __res_state dns_res;
static bool dns_ready;

/* "192.0.2.1", "192.0.2.1:5353", "[::1]:53" (the endpoint syntax). */
static bool dns_parse_server(const char *text, struct sockaddr_storage *ss)
{
	struct endpoint ep;
	socklen_t len;
	char err[256];

	return endpoint_parse(text, NAMESERVER_PORT, &ep, err, sizeof(err)) &&
	    ep.kind == ENDPOINT_INET &&
	    sock_addr_parse(ep.host, ep.port, ss, &len);
}

bool dns_init(const struct cfg_list *servers, char *err, size_t errsize)
{
	struct sockaddr_storage ss[MAXNS];
	size_t n = servers != NULL ? servers->count : 0;

	if (n > MAXNS) {
		snprintf(err, errsize, "dns_servers: at most %d servers", MAXNS);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!dns_parse_server(servers->items[i], &ss[i])) {
			snprintf(err, errsize, "dns_servers: bad server \"%s\" "
			    "(want an address, address:port or [address]:port)",
			    servers->items[i]);
			return false;
		}
	}

	dns_close();	/* res_nclose frees _u._ext.nsaddrs too */
	memset(&dns_res, 0, sizeof(dns_res));
	if (res_ninit(&dns_res) != 0) {
		snprintf(err, errsize, "cannot initialise the resolver");
		return false;
	}
	/* We ask for exact names; no search list, no default domain. */
	dns_res.options &= ~(unsigned long)(RES_DEFNAMES | RES_DNSRCH);
	dns_res.options |= RES_USE_EDNS0;

	if (n > 0) {
		dns_res.nscount = (int)n;
		for (size_t i = 0; i < n; i++) {
			memset(&dns_res.nsaddr_list[i], 0,
			    sizeof(dns_res.nsaddr_list[i]));
			if (ss[i].ss_family == AF_INET) {
				memcpy(&dns_res.nsaddr_list[i], &ss[i],
				    sizeof(struct sockaddr_in));
				dns_res._u._ext.nsaddrs[i] = NULL;
			} else {
				/*
				 * glibc: family 0 here means "see nsaddrs";
				 * it owns that memory (res_nclose frees it).
				 */
				struct sockaddr_in6 *sin6 =
				    xmalloc(sizeof(*sin6));
				memcpy(sin6, &ss[i], sizeof(*sin6));
				dns_res._u._ext.nsaddrs[i] = sin6;
			}
		}
		dns_res.retrans = DNS_OVERRIDE_RETRANS;
		dns_res.retry = DNS_OVERRIDE_RETRY;
	}
	dns_ready = true;
	return true;
}

void dns_close(void)
{
	if (dns_ready)
		res_nclose(&dns_res);
	dns_ready = false;
}

static bool dns_ensure_ready(char *err, size_t errsize)
{
	return dns_ready || dns_init(NULL, err, errsize);
}

/* Words for a failed query, from the resolver's h_errno. */
static enum dns_result dns_query_failed(const char *name, const char *type,
    char *err, size_t errsize)
{
	switch (dns_res.res_h_errno) {
	case HOST_NOT_FOUND:
		snprintf(err, errsize, "Host or domain name not found. "
		    "Name service error for name=%s type=%s: Host not found",
		    name, type);
		return DNS_NOTFOUND;
	case NO_DATA:
		snprintf(err, errsize, "no %s record for %s", type, name);
		return DNS_NOTFOUND;
	case TRY_AGAIN:
		snprintf(err, errsize, "Host or domain name not found. "
		    "Name service error for name=%s type=%s: Host not found, "
		    "try again", name, type);
		return DNS_TEMPFAIL;
	default:
		/*
		 * NO_RECOVERY: FORMERR, REFUSED, NOTIMP from every server,
		 * or no server answered at all. A lame or misconfigured
		 * resolver is no reason to bounce mail: try again later.
		 */
		snprintf(err, errsize, "Name service error for name=%s "
		    "type=%s: %s", name, type,
		    dns_res.res_h_errno == NO_RECOVERY ?
		    "Non-recoverable error" : "resolver failure");
		return DNS_TEMPFAIL;
	}
}

/*
 * Send one query; on DNS_OK answer holds *len bytes of a reply whose
 * header parses (the dns_parse_* functions read its records). With
 * secure, the query carries the AD bit and *secure says whether the
 * resolver set it in its answer, a denial (DNS_NOTFOUND) included
 * (RFC 6840 5.7; glibc keeps the bit only under RES_TRUSTAD). The
 * caller decides whether that resolver is to be believed.
 */
static enum dns_result dns_query_ad(const char *name, int type,
    const char *type_name, unsigned char *answer, int answer_size,
    int *lenp, bool *secure, char *err, size_t errsize)
{
	if (secure != NULL)
		*secure = false;
	if (!dns_ensure_ready(err, errsize))
		return DNS_TEMPFAIL;
	if (name[0] == '\0' || strlen(name) > NS_MAXDNAME - 2) {
		snprintf(err, errsize, "bad domain name \"%s\"", name);
		return DNS_FAIL;
	}
	dns_res.res_h_errno = 0;
	unsigned long options = dns_res.options;
	if (secure != NULL) {
		dns_res.options |= RES_TRUSTAD;
		memset(answer, 0, answer_size < HFIXEDSZ ? (size_t)answer_size :
		    HFIXEDSZ);
	}
	int len = res_nquery(&dns_res, name, ns_c_in, type, answer,
	    answer_size);
	dns_res.options = options;
	if (len < 0) {
		enum dns_result r = dns_query_failed(name, type_name, err,
		    errsize);
		/* glibc leaves the NXDOMAIN or NODATA reply in answer. */
		if (secure != NULL && r == DNS_NOTFOUND &&
		    answer_size >= HFIXEDSZ)
			*secure = ((const HEADER *)answer)->ad != 0;
		return r;
	}
	if (secure != NULL && len >= HFIXEDSZ)
		*secure = ((const HEADER *)answer)->ad != 0;
	if (len > answer_size)
		len = answer_size;	/* truncated: parse what we have */
	ns_msg msg;
	if (ns_initparse(answer, len, &msg) < 0) {
		snprintf(err, errsize, "malformed DNS answer for name=%s "
		    "type=%s", name, type_name);
		return DNS_TEMPFAIL;
	}
	*lenp = len;
	return DNS_OK;
}

static enum dns_result dns_query(const char *name, int type,
    const char *type_name, unsigned char *answer, int answer_size,
    int *lenp, char *err, size_t errsize)
{
	return dns_query_ad(name, type, type_name, answer, answer_size, lenp,
	    NULL, err, errsize);
}

static int dns_mx_compare(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;
	return x->preference - y->preference;
}

/* RFC 5321 5.1: equal preferences are tried in random order. */
static void dns_mx_shuffle_equal(struct dns_mx *mx, size_t count)
{
	size_t start = 0;
	while (start < count) {
		size_t end = start + 1;
		while (end < count && mx[end].preference == mx[start].preference)
			end++;
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + arc4random_uniform(
			    (uint32_t)(i - start + 1));
			struct dns_mx tmp = mx[i];
			mx[i] = mx[j];
			mx[j] = tmp;
		}
		start = end;
	}
}

enum dns_result dns_lookup_mx(const char *domain, struct dns_mx **mxp,
    size_t *countp, char *err, size_t errsize)
{
	return dns_lookup_mx_dnssec(domain, mxp, countp, NULL, err, errsize);
}

enum dns_result dns_lookup_mx_dnssec(const char *domain, struct dns_mx **mxp,
    size_t *countp, bool *secure, char *err, size_t errsize)
{
	unsigned char answer[8192];
	int len;
	enum dns_result r;

	*mxp = NULL;
	*countp = 0;
	r = dns_query_ad(domain, ns_t_mx, "MX", answer, sizeof(answer), &len,
	    secure, err, errsize);
	if (r != DNS_OK)
		return r;
	return dns_parse_mx(answer, len, domain, mxp, countp, err, errsize);
}

enum dns_result dns_parse_mx(const unsigned char *answer, int len,
    const char *domain, struct dns_mx **mxp, size_t *countp, char *err,
    size_t errsize)
{
	ns_msg msg;

	*mxp = NULL;
	*countp = 0;
	if (ns_initparse(answer, len, &msg) < 0) {
		snprintf(err, errsize, "malformed DNS answer for name=%s "
		    "type=MX", domain);
		return DNS_TEMPFAIL;
	}
	int nanswers = ns_msg_count(msg, ns_s_an);
	struct dns_mx *mx = xcalloc(nanswers > 0 ? (size_t)nanswers : 1,
	    sizeof(*mx));
	size_t count = 0;
	bool null_mx = false;

	for (int i = 0; i < nanswers; i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			break;		/* truncated: keep what parsed */
		/* CNAMEs in the chain come first; take only MX records. */
		if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in ||
		    ns_rr_rdlen(rr) < 3)
			continue;
		const unsigned char *rd = ns_rr_rdata(rr);
		char host[NS_MAXDNAME];
		if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg),
		    rd + 2, host, sizeof(host)) < 0)
			continue;
		/* RFC 7505 3: "MX 0 ." means the domain accepts no mail. */
		if (host[0] == '\0' || strcmp(host, ".") == 0) {
			null_mx = true;
			continue;
		}
		if (strlen(host) >= sizeof(mx[count].host))
			continue;
		strlcpy(mx[count].host, host, sizeof(mx[count].host));
		mx[count].preference = ns_get16(rd);
		count++;
	}

	if (null_mx) {
		free(mx);
		snprintf(err, errsize, "Domain %s does not accept mail "
		    "(nullMX)", domain);
		return DNS_NULLMX;
	}
	if (count == 0) {
		free(mx);
		snprintf(err, errsize, "no MX record for %s", domain);
		return DNS_NOTFOUND;
	}
	qsort(mx, count, sizeof(*mx), dns_mx_compare);
	dns_mx_shuffle_equal(mx, count);
	*mxp = mx;
	*countp = count;
	return DNS_OK;
}

void dns_parse_addrs(const unsigned char *answer, int len, int type,
    int port, struct dns_addr **addrs, size_t *count, size_t *cap)
{
	ns_msg msg;
	if ((type != ns_t_a && type != ns_t_aaaa) ||
	    ns_initparse(answer, len, &msg) < 0)
		return;
	int nanswers = ns_msg_count(msg, ns_s_an);

	for (int i = 0; i < nanswers; i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			break;
		if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in)
			continue;
		struct dns_addr a;
		memset(&a, 0, sizeof(a));
		if (type == ns_t_a) {
			if (ns_rr_rdlen(rr) != 4)
				continue;
			struct sockaddr_in *sin = (struct sockaddr_in *)&a.sa;
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)port);
			memcpy(&sin->sin_addr, ns_rr_rdata(rr), 4);
			a.salen = sizeof(*sin);
		} else {
			if (ns_rr_rdlen(rr) != 16)
				continue;
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.sa;
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)port);
			memcpy(&sin6->sin6_addr, ns_rr_rdata(rr), 16);
			a.salen = sizeof(*sin6);
		}
		if (*count == *cap) {
			*cap = *cap ? *cap * 2 : 8;
			*addrs = xreallocarray(*addrs, *cap, sizeof(**addrs));
		}
		(*addrs)[(*count)++] = a;
	}
}

enum dns_result dns_lookup_addrs(const char *host, int port,
    struct dns_addr **addrsp, size_t *countp, char *err, size_t errsize)
{
	return dns_lookup_addrs_dnssec(host, port, addrsp, countp, NULL, err,
	    errsize);
}

enum dns_result dns_lookup_addrs_dnssec(const char *host, int port,
    struct dns_addr **addrsp, size_t *countp, bool *secure, char *err,
    size_t errsize)
{
	bool secure6 = false, secure4 = false;
	unsigned char answer[8192];
	struct dns_addr *addrs = NULL;
	size_t count = 0, cap = 0;
	int len;
	char err6[256] = "", err4[256] = "";

	*addrsp = NULL;
	*countp = 0;
	if (secure != NULL)
		*secure = false;	/* an IP literal names no TLSA */

	/* An IP literal needs no lookup. */
	struct dns_addr lit;
	if (sock_addr_parse(host, port, &lit.sa, &lit.salen)) {
		*addrsp = xmalloc(sizeof(lit));
		**addrsp = lit;
		*countp = 1;
		return DNS_OK;
	}

	/*
	 * IPv6 first, then IPv4; a caller that cannot reach one address
	 * simply tries the next, so a host without IPv6 loses little.
	 */
	enum dns_result r6 = dns_query_ad(host, ns_t_aaaa, "AAAA", answer,
	    sizeof(answer), &len, secure ? &secure6 : NULL, err6,
	    sizeof(err6));
	if (r6 == DNS_OK)
		dns_parse_addrs(answer, len, ns_t_aaaa, port, &addrs, &count,
		    &cap);
	if (r6 == DNS_FAIL) {
		snprintf(err, errsize, "%s", err6);
		return DNS_FAIL;
	}
	enum dns_result r4 = dns_query_ad(host, ns_t_a, "A", answer,
	    sizeof(answer), &len, secure ? &secure4 : NULL, err4,
	    sizeof(err4));
	if (r4 == DNS_OK)
		dns_parse_addrs(answer, len, ns_t_a, port, &addrs, &count,
		    &cap);

	if (count > 0) {
		*addrsp = addrs;
		*countp = count;
		if (secure == NULL)
			return DNS_OK;
		/*
		 * Both answers validated, a denial of one included. A family
		 * that failed (bogus, indeterminate) gave nothing to use and
		 * has no say: else one forged answer would strip DANE from
		 * the host's validated addresses (RFC 7672 2.1.1, 2.2).
		 */
		bool failed6 = r6 == DNS_TEMPFAIL, failed4 = r4 == DNS_TEMPFAIL;
		*secure = (failed6 || secure6) && (failed4 || secure4);
		if (failed6 || failed4)
			snprintf(err, errsize, "%s", failed6 ? err6 : err4);
		else if (errsize > 0)
			err[0] = '\0';
		return DNS_OK;
	}
	free(addrs);
	/* Nothing found: a temporary failure of either lookup wins. */
	if (r4 == DNS_TEMPFAIL || r6 == DNS_TEMPFAIL) {
		snprintf(err, errsize, "%s", r4 == DNS_TEMPFAIL ? err4 : err6);
		return DNS_TEMPFAIL;
	}
	if (r4 == DNS_FAIL) {
		snprintf(err, errsize, "%s", err4);
		return DNS_FAIL;
	}
	if (r4 == DNS_NOTFOUND)
		snprintf(err, errsize, "%s", err4);
	else
		snprintf(err, errsize, "no address record for %s", host);
	return DNS_NOTFOUND;
}

/* ---- DNS blocklists (RFC 5782) ---- */

static bool dnsbl_matches(const struct dns_dnsbl *list,
    const unsigned char a[4])
{
	if (!list->filtered)
		return a[0] == 127 && !(a[1] == 255 && a[2] == 255);
	for (int i = 0; i < 4; i++)
		if (!(list->octet_ok[i][a[i] / 8] & (1u << (a[i] % 8))))
			return false;
	return true;
}

/* The name to ask: the address's octets (or nibbles) reversed, then zone. */
static bool dnsbl_query_name(const struct dns_dnsbl *list,
    const struct sockaddr *client, char *name, size_t namesize)
{
	const unsigned char *b;
	int n;

	if (client->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)client;
		b = sin6->sin6_addr.s6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			static const char hex[] = "0123456789abcdef";
			size_t k = 0;
			for (int i = 15; i >= 0 && k + 4 < namesize; i--) {
				name[k++] = hex[b[i] & 15];
				name[k++] = '.';
				name[k++] = hex[b[i] >> 4];
				name[k++] = '.';
			}
			n = snprintf(name + k, namesize - k, "%s", list->zone);
			return n > 0 && (size_t)n < namesize - k;
		}
		b += 12;
	} else if (client->sa_family == AF_INET) {
		b = (const unsigned char *)
		    &((const struct sockaddr_in *)client)->sin_addr;
	} else {
		return false;
	}
	n = snprintf(name, namesize, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0],
	    list->zone);
	return n > 0 && (size_t)n < namesize;
}

bool dns_dnsbl_name(const struct dns_dnsbl *list,
    const struct sockaddr *client, char *name, size_t namesize)
{
	return dnsbl_query_name(list, client, name, namesize);
}

/* The first TXT record at name, its strings joined; "" if none. */
static void dnsbl_reason(const char *name, char *reason, size_t reasonsize)
{
	unsigned char answer[4096];
	int len;
	char err[256];

	reason[0] = '\0';
	if (dns_query(name, ns_t_txt, "TXT", answer, sizeof(answer), &len, err,
	    sizeof(err)) != DNS_OK)
		return;
	dns_parse_txt(answer, len, reason, reasonsize);
}

void dns_parse_txt(const unsigned char *answer, int len, char *reason,
    size_t reasonsize)
{
	ns_msg msg;

	reason[0] = '\0';
	if (ns_initparse(answer, len, &msg) < 0)
		return;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return;
		if (ns_rr_type(rr) != ns_t_txt || ns_rr_class(rr) != ns_c_in)
			continue;
		const unsigned char *p = ns_rr_rdata(rr);
		const unsigned char *end = p + ns_rr_rdlen(rr);
		size_t k = 0;
		while (p < end) {
			size_t n = *p++;
			if (n > (size_t)(end - p))
				n = (size_t)(end - p);
			for (size_t j = 0; j < n && k + 1 < reasonsize; j++)
				reason[k++] = (char)p[j];
			p += n;
		}
		reason[k] = '\0';
		return;
	}
}

bool dns_dnsbl_listed(const struct dns_dnsbl *list,
    const unsigned char *answer, int len)
{
	ns_msg msg;

	if (ns_initparse(answer, len, &msg) < 0)
		return false;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			break;
		if (ns_rr_type(rr) != ns_t_a || ns_rr_class(rr) != ns_c_in ||
		    ns_rr_rdlen(rr) != 4)
			continue;
		if (dnsbl_matches(list, ns_rr_rdata(rr)))
			return true;
	}
	return false;
}

enum dns_result dns_dnsbl_lookup(const struct dns_dnsbl *list,
    const struct sockaddr *client, char *reason, size_t reasonsize,
    char *err, size_t errsize)
{
	char name[NS_MAXDNAME];
	unsigned char answer[4096];
	int len;

	reason[0] = '\0';
	if (!dnsbl_query_name(list, client, name, sizeof(name))) {
		snprintf(err, errsize, "no DNSBL name for this client in %s",
		    list->zone);
		return DNS_FAIL;
	}
	enum dns_result r = dns_query(name, ns_t_a, "A", answer,
	    sizeof(answer), &len, err, errsize);
	if (r != DNS_OK)
		return r;
	if (dns_dnsbl_listed(list, answer, len)) {
		dnsbl_reason(name, reason, reasonsize);
		return DNS_OK;
	}
	snprintf(err, errsize, "%s: no matching A record", name);
	return DNS_NOTFOUND;
}

enum dns_result dns_lookup_txt(const char *name, char *out, size_t outsize,
    char *err, size_t errsize)
{
	unsigned char answer[8192];
	int len;

	out[0] = '\0';
	enum dns_result r = dns_query(name, ns_t_txt, "TXT", answer,
	    sizeof(answer), &len, err, errsize);
	if (r != DNS_OK)
		return r;
	dns_parse_txt(answer, len, out, outsize);
	if (out[0] == '\0') {
		snprintf(err, errsize, "no TXT record for %s", name);
		return DNS_NOTFOUND;
	}
	return DNS_OK;
}

void dns_rr_free(struct dns_rr *rrs, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(rrs[i].data);
	free(rrs);
}

/*
 * The answer section's records of TYPE (class IN) into a new array. A
 * CNAME on the way is skipped: its target's records count. RAW keeps the
 * RDATA as it came (TLSA for DANE); otherwise TXT strings are joined (RFC
 * 7208 section 3.3), A/AAAA must have their address length, and MX, PTR
 * and the like become the uncompressed host name.
 */
static enum dns_result dns_answer_records(const unsigned char *answer,
    int len, int type, bool raw, struct dns_rr **rrsp, size_t *countp)
{
	ns_msg msg;

	if (ns_initparse(answer, len, &msg) < 0)
		return DNS_TEMPFAIL;
	int n = ns_msg_count(msg, ns_s_an);
	struct dns_rr *rrs = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*rrs));
	size_t count = 0;
	for (int i = 0; i < n; i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			break;
		if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in)
			continue;
		const unsigned char *p = ns_rr_rdata(rr);
		size_t rdlen = ns_rr_rdlen(rr);
		struct dns_rr *out = &rrs[count];
		if (raw || type == ns_t_a || type == ns_t_aaaa) {
			if (!raw && rdlen != (type == ns_t_a ? 4u : 16u))
				continue;
			out->data = xmalloc(rdlen + 1);
			memcpy(out->data, p, rdlen);
			out->len = rdlen;
		} else if (type == ns_t_txt) {
			out->data = xmalloc(rdlen + 1);
			const unsigned char *end = p + rdlen;
			while (p < end) {
				size_t k = *p++;
				if (k > (size_t)(end - p))
					k = (size_t)(end - p);
				memcpy(out->data + out->len, p, k);
				out->len += k;
				p += k;
			}
		} else {
			char host[NS_MAXDNAME];
			if (type == ns_t_mx) {
				if (rdlen < 3)
					continue;
				p += 2;
			}
			if (ns_name_uncompress(ns_msg_base(msg),
			    ns_msg_end(msg), p, host, sizeof(host)) < 0)
				continue;
			out->len = strlen(host);
			out->data = xmalloc(out->len + 1);
			memcpy(out->data, host, out->len);
		}
		out->data[out->len] = '\0';
		count++;
	}
	if (count == 0) {
		free(rrs);
		return DNS_NOTFOUND;
	}
	*rrsp = rrs;
	*countp = count;
	return DNS_OK;
}

enum dns_result dns_lookup_rr(const char *name, int type, struct dns_rr **rrsp,
    size_t *countp, char *err, size_t errsize)
{
	unsigned char answer[8192];
	int len;

	*rrsp = NULL;
	*countp = 0;
	enum dns_result r = dns_query(name, type, type == ns_t_txt ? "TXT" :
	    type == ns_t_a ? "A" : type == ns_t_aaaa ? "AAAA" :
	    type == ns_t_mx ? "MX" : "PTR", answer, sizeof(answer), &len, err,
	    errsize);
	if (r != DNS_OK)
		return r;
	r = dns_answer_records(answer, len, type, false, rrsp, countp);
	if (r == DNS_NOTFOUND)
		snprintf(err, errsize, "no record of that type for %s", name);
	return r;
}

/* ---- DNSSEC for DANE (RFC 7672 2.1) ---- */

enum dns_result dns_lookup_rr_dnssec(const char *name, int type,
    struct dns_rr **rrsp, size_t *countp, bool *secure, char *err,
    size_t errsize)
{
	unsigned char answer[8192];
	int len;

	*rrsp = NULL;
	*countp = 0;
	enum dns_result r = dns_query_ad(name, type, type == ns_t_tlsa ?
	    "TLSA" : "RR", answer, sizeof(answer), &len, secure, err, errsize);
	if (r != DNS_OK)
		return r;
	r = dns_answer_records(answer, len, type, true, rrsp, countp);
	if (r == DNS_NOTFOUND)
		snprintf(err, errsize, "no %s record for %s", type == ns_t_tlsa ?
		    "TLSA" : "such", name);
	return r;
}

/* The target of the CNAME record owned by name in msg, if any. */
static bool dns_answer_cname(ns_msg *msg, const char *name, char *target,
    size_t targetsize)
{
	int n = ns_msg_count(*msg, ns_s_an);
	for (int i = 0; i < n; i++) {
		ns_rr rr;
		if (ns_parserr(msg, ns_s_an, i, &rr) < 0)
			return false;
		if (ns_rr_type(rr) != ns_t_cname || ns_rr_class(rr) != ns_c_in ||
		    strcasecmp(ns_rr_name(rr), name) != 0)
			continue;
		return ns_name_uncompress(ns_msg_base(*msg), ns_msg_end(*msg),
		    ns_rr_rdata(rr), target, targetsize) >= 0;
	}
	return false;
}

enum dns_result dns_cname_expand_dnssec(const char *host, char *out,
    size_t outsize, bool *secure, char *err, size_t errsize)
{
	unsigned char answer[8192];
	int len;
	ns_msg msg;

	*secure = false;
	strlcpy(out, host, outsize);
	/* The A query first; a host with only AAAA records answers that. */
	enum dns_result r = dns_query_ad(host, ns_t_a, "A", answer,
	    sizeof(answer), &len, secure, err, errsize);
	if (r == DNS_NOTFOUND)
		r = dns_query_ad(host, ns_t_aaaa, "AAAA", answer,
		    sizeof(answer), &len, secure, err, errsize);
	if (r != DNS_OK)
		return r;
	if (ns_initparse(answer, len, &msg) < 0)
		return DNS_TEMPFAIL;
	/* Follow the chain as the resolver gave it, bounded against loops. */
	char name[NS_MAXDNAME], next[NS_MAXDNAME];
	strlcpy(name, host, sizeof(name));
	size_t hlen = strlen(name);
	if (hlen > 0 && name[hlen - 1] == '.')
		name[hlen - 1] = '\0';
	for (int hops = 0; hops < 16; hops++) {
		if (!dns_answer_cname(&msg, name, next, sizeof(next)))
			break;
		strlcpy(name, next, sizeof(name));
	}
	if (strcasecmp(name, host) != 0)
		strlcpy(out, name, outsize);
	return DNS_OK;
}

size_t dns_server_addrs(struct sockaddr_storage *out, size_t max)
{
	char err[256];
	if (!dns_ensure_ready(err, sizeof(err)))
		return 0;
	size_t n = 0;
	for (int i = 0; i < dns_res.nscount && i < MAXNS && n < max; i++) {
		memset(&out[n], 0, sizeof(out[n]));
		if (dns_res._u._ext.nsaddrs[i] != NULL)
			memcpy(&out[n], dns_res._u._ext.nsaddrs[i],
			    sizeof(struct sockaddr_in6));
		else
			memcpy(&out[n], &dns_res.nsaddr_list[i],
			    sizeof(struct sockaddr_in));
		n++;
	}
	return n;
}
