/*
 * spf_check.c - SPF's check_host() (RFC 7208 4, 5, 6): is this client
 * allowed to send mail for this domain? Over mail/spf.c's parser and
 * macros and mail/dns.c's lookups (dns_servers).
 *
 * What an attacker controls (the sender, the HELO name, the records of
 * any domain) is bounded here: at most SPF_MAX_DNS_TERMS terms that
 * look up DNS in the whole evaluation, includes and redirects counted
 * (4.6.4), at most SPF_MAX_VOID lookups that find nothing, at most 10
 * names from one MX or PTR lookup. Past a limit the result is permerror.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "spf.h"

/*
 * RFC 7208 4.3: a name SPF may look up: dots, labels of 1 to 63. A
 * mechanism's target may hold any octet but NUL (DNS labels do, RFC 2181
 * 11: a macro can put a space there); an initial domain may not hold
 * white space or control characters.
 */
static bool name_ok(const char *d, bool any_octet)
{
	size_t len = strlen(d), label = 0;
	bool dot = false;
	if (len == 0 || len > 253 || d[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (d[i] == '.') {
			if (label == 0 && i + 1 < len)
				return false;
			dot = true;
			label = 0;
		} else if (++label > 63 ||
		    (!any_octet && (unsigned char)d[i] <= ' ')) {
			return false;
		}
	}
	return dot;
}

static bool domain_ok(const char *d)
{
	return name_ok(d, false);
}

/* Does addr (4 or 16 bytes) fall in the client's network of prefix? */
static bool in_prefix(const struct spf_check *c, const unsigned char *addr,
    size_t alen, int prefix)
{
	if (alen != c->iplen)
		return false;
	int full = prefix / 8, rest = prefix % 8;
	if (memcmp(addr, c->ip, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (addr[full] & mask) == (c->ip[full] & mask);
}

static bool count_dns_term(struct spf_check *c)
{
	if (++c->dns_terms > SPF_MAX_DNS_TERMS) {
		snprintf(c->why, sizeof(c->why), "more than %d DNS lookups",
		    SPF_MAX_DNS_TERMS);
		return false;
	}
	return true;
}

/* A lookup that found nothing (4.6.4): at most SPF_MAX_VOID of them. */
static bool count_void(struct spf_check *c)
{
	if (++c->voids > SPF_MAX_VOID) {
		snprintf(c->why, sizeof(c->why), "more than %d void lookups",
		    SPF_MAX_VOID);
		return false;
	}
	return true;
}

static void validated_name(struct spf_check *c, const char *domain,
    char *out, size_t outsize);

/* Expand a domain-spec, or take the current domain. */
static bool target_of(struct spf_check *c, const char *spec,
    const char *domain, struct str *out)
{
	char err[200], pname[NS_MAXDNAME];
	if (spec == NULL)
		return str_append_cstr(out, domain);
	struct spf_macro_ctx m = {
		.sender = c->sender, .domain = domain, .helo = c->helo,
		.client = c->client,
	};
	/* Its lookups only when the spec asks for %{p}. */
	if (strcasestr(spec, "%{p") != NULL) {
		validated_name(c, domain, pname, sizeof(pname));
		m.validated_name = pname;
	}
	if (!spf_macro_expand(spec, &m, false, out, err, sizeof(err))) {
		snprintf(c->why, sizeof(c->why), "%s", err);
		return false;
	}
	return true;
}

/*
 * Addresses of name in the client's family matching prefix: 1 match,
 * 0 none, -1 temperror, -2 permerror (a void lookup too many).
 */
static int match_addrs(struct spf_check *c, const char *name, int prefix,
    bool count_voids)
{
	struct dns_rr *rrs;
	size_t n;
	char err[300];
	enum dns_result r = dns_lookup_rr(name, c->iplen == 4 ? ns_t_a :
	    ns_t_aaaa, &rrs, &n, err, sizeof(err));
	if (r == DNS_TEMPFAIL) {
		snprintf(c->why, sizeof(c->why), "%s", err);
		return -1;
	}
	if (r != DNS_OK)
		return count_voids && !count_void(c) ? -2 : 0;
	int m = 0;
	for (size_t i = 0; i < n && !m; i++)
		m = in_prefix(c, rrs[i].data, rrs[i].len, prefix);
	dns_rr_free(rrs, n);
	return m;
}

/*
 * RFC 7208 5.5: a validated name of the client (a PTR name, of the first
 * 10, whose addresses hold the client) equal to or under target (any, if
 * target is NULL), copied into out when out is not NULL: 1, or 0 none.
 */
static int ptr_validated(struct spf_check *c, const char *target, char *out,
    size_t outsize)
{
	char rev[128] = "";
	size_t k = 0;
	for (size_t i = c->iplen; i-- > 0;) {
		if (c->iplen == 4)
			k += (size_t)snprintf(rev + k, sizeof(rev) - k, "%u.",
			    c->ip[i]);
		else
			k += (size_t)snprintf(rev + k, sizeof(rev) - k,
			    "%x.%x.", c->ip[i] & 15, c->ip[i] >> 4);
	}
	snprintf(rev + k, sizeof(rev) - k, "%s", c->iplen == 4 ?
	    "in-addr.arpa" : "ip6.arpa");
	struct dns_rr *rrs;
	size_t n;
	char err[300];
	/* A failed PTR lookup is no match (5.5). */
	if (dns_lookup_rr(rev, ns_t_ptr, &rrs, &n, err, sizeof(err)) != DNS_OK)
		return 0;
	int m = 0;
	size_t tl = target != NULL ? strlen(target) : 0;
	for (size_t i = 0; i < n && i < 10 && !m; i++) {
		const char *name = (const char *)rrs[i].data;
		size_t nl = rrs[i].len;
		bool under = target == NULL ||
		    (nl == tl && strcasecmp(name, target) == 0) ||
		    (nl > tl && name[nl - tl - 1] == '.' &&
		    strcasecmp(name + nl - tl, target) == 0);
		if (under && match_addrs(c, name, c->iplen * 8, false) == 1) {
			m = 1;
			if (out != NULL)
				snprintf(out, outsize, "%s", name);
		}
	}
	dns_rr_free(rrs, n);
	return m;
}

static int match_ptr(struct spf_check *c, const char *target)
{
	return ptr_validated(c, target, NULL, 0);
}

/*
 * The %{p} macro (RFC 7208 7.3): a validated name of the client, one in
 * the current domain if there is one, else any, else "unknown".
 */
static void validated_name(struct spf_check *c, const char *domain,
    char *out, size_t outsize)
{
	if (!ptr_validated(c, domain, out, outsize) &&
	    !ptr_validated(c, NULL, out, outsize))
		snprintf(out, outsize, "unknown");
}

static enum spf_result check(struct spf_check *c, const char *domain);

/* One mechanism: 1 match, 0 none, or an error result in *err_r. */
static int mechanism(struct spf_check *c, const struct spf_term *t,
    const char *domain, enum spf_result *err_r)
{
	struct str target;
	int m = 0;

	*err_r = SPF_NONE;
	if (t->mech == SPF_ALL)
		return 1;
	if (t->mech == SPF_IP4 || t->mech == SPF_IP6)
		return in_prefix(c, t->ip, t->mech == SPF_IP4 ? 4 : 16,
		    t->mech == SPF_IP4 ? t->cidr4 : t->cidr6);
	if (!count_dns_term(c)) {
		*err_r = SPF_PERMERROR;
		return 0;
	}
	str_init(&target, 1024);
	if (!target_of(c, t->domain_spec, domain, &target)) {
		*err_r = SPF_PERMERROR;
		goto out;
	}
	const char *name = str_cstr(&target);
	/*
	 * A target that is no domain name (an empty label, a label over 63
	 * octets, RFC 7208 4.3) is looked up nowhere and matches nothing.
	 */
	if (t->mech != SPF_INCLUDE && !name_ok(name, true)) {
		snprintf(c->why, sizeof(c->why), "%s: not a domain name", name);
		goto out;
	}
	int prefix = c->iplen == 4 ? t->cidr4 : t->cidr6;
	switch (t->mech) {
	case SPF_INCLUDE: {
		/* 5.2: pass matches; none is an error of the includer. */
		enum spf_result r = check(c, name);
		if (r == SPF_PASS)
			m = 1;
		else if (r == SPF_TEMPERROR)
			*err_r = SPF_TEMPERROR;
		else if (r == SPF_PERMERROR || r == SPF_NONE)
			*err_r = SPF_PERMERROR;
		break;
	}
	case SPF_A:
	case SPF_EXISTS: {
		bool exists = t->mech == SPF_EXISTS;
		struct spf_check saved = *c;
		if (exists) {	/* 5.7: always an A lookup */
			c->iplen = 4;
			prefix = 0;
		}
		m = match_addrs(c, name, prefix, true);
		if (exists) {
			c->iplen = saved.iplen;
			memcpy(c->ip, saved.ip, sizeof(c->ip));
		}
		break;
	}
	case SPF_MX: {
		struct dns_rr *rrs;
		size_t n;
		char err[300];
		enum dns_result r = dns_lookup_rr(name, ns_t_mx, &rrs, &n, err,
		    sizeof(err));
		if (r == DNS_TEMPFAIL) {
			snprintf(c->why, sizeof(c->why), "%s", err);
			m = -1;
			break;
		}
		if (r != DNS_OK) {
			m = count_void(c) ? 0 : -2;
			break;
		}
		/* 4.6.4: at most 10 MX names to look up. */
		if (n > 10) {
			snprintf(c->why, sizeof(c->why), "more than 10 MX "
			    "records for %s", name);
			m = -2;
		}
		for (size_t i = 0; i < n && m == 0; i++)
			m = match_addrs(c, (const char *)rrs[i].data, prefix,
			    false);
		dns_rr_free(rrs, n);
		break;
	}
	case SPF_PTR:
		m = match_ptr(c, name);
		break;
	default:
		break;
	}
	if (m == -1)
		*err_r = SPF_TEMPERROR;
	else if (m == -2)
		*err_r = SPF_PERMERROR;
out:
	str_free(&target);
	return m > 0;
}

static enum spf_result check(struct spf_check *c, const char *domain)
{
	struct dns_rr *rrs;
	size_t n;
	char err[200];

	if (!domain_ok(domain)) {
		snprintf(c->why, sizeof(c->why), "no valid domain to check");
		return SPF_NONE;
	}
	/* 4.4, 4.5: exactly one v=spf1 TXT record. */
	enum dns_result r = dns_lookup_rr(domain, ns_t_txt, &rrs, &n, err,
	    sizeof(err));
	if (r == DNS_TEMPFAIL) {
		snprintf(c->why, sizeof(c->why), "%s", err);
		return SPF_TEMPERROR;
	}
	if (r != DNS_OK) {
		snprintf(c->why, sizeof(c->why), "no SPF record for %s", domain);
		return SPF_NONE;
	}
	const struct dns_rr *spf = NULL;
	size_t nspf = 0;
	for (size_t i = 0; i < n; i++)
		if (spf_is_record((const char *)rrs[i].data, rrs[i].len)) {
			spf = &rrs[i];
			nspf++;
		}
	if (nspf != 1) {
		snprintf(c->why, sizeof(c->why), nspf ? "more than one SPF "
		    "record for %s" : "no SPF record for %s", domain);
		dns_rr_free(rrs, n);
		return nspf ? SPF_PERMERROR : SPF_NONE;
	}
	struct spf_record rec;
	bool parsed = spf_record_parse((const char *)spf->data, spf->len, &rec,
	    err, sizeof(err));
	dns_rr_free(rrs, n);
	if (!parsed) {
		snprintf(c->why, sizeof(c->why), "%s: %s", domain, err);
		return SPF_PERMERROR;
	}

	enum spf_result result = SPF_NEUTRAL;	/* 4.7: no match, no redirect */
	bool matched = false;
	for (size_t i = 0; i < rec.nterms && !matched; i++) {
		enum spf_result e;
		int m = mechanism(c, &rec.terms[i], domain, &e);
		if (e != SPF_NONE) {
			result = e;
			goto done;
		}
		if (m) {
			matched = true;
			result = rec.terms[i].qualifier;
			snprintf(c->why, sizeof(c->why), "%s: term %zu matched",
			    domain, i + 1);
		}
	}
	if (!matched && rec.redirect != NULL) {
		/* 6.1: the redirect's result, none being permerror. */
		struct str target;
		str_init(&target, 1024);
		if (!count_dns_term(c) || !target_of(c, rec.redirect, domain,
		    &target)) {
			result = SPF_PERMERROR;
		} else {
			result = check(c, str_cstr(&target));
			if (result == SPF_NONE)
				result = SPF_PERMERROR;
		}
		str_free(&target);
	} else if (!matched) {
		snprintf(c->why, sizeof(c->why), "%s: no term matched", domain);
	}
done:
	spf_record_free(&rec);
	return result;
}

enum spf_result spf_check_host(struct spf_check *c, const char *domain)
{
	c->dns_terms = c->voids = 0;
	c->why[0] = '\0';
	if (c->client->sa_family == AF_INET) {
		const struct sockaddr_in *s4 =
		    (const struct sockaddr_in *)c->client;
		memcpy(c->ip, &s4->sin_addr, 4);
		c->iplen = 4;
	} else {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)c->client;
		/* RFC 7208 5: an IPv4-mapped address is the IPv4 one. */
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(c->ip, s6->sin6_addr.s6_addr + 12, 4);
			c->iplen = 4;
		} else {
			memcpy(c->ip, &s6->sin6_addr, 16);
			c->iplen = 16;
		}
	}
	return check(c, domain);
}
