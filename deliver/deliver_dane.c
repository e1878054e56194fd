/*
 * deliver_dane.c - DANE for the SMTP client (RFC 7672): the part of a
 * session's TLS policy that DNSSEC decides, at the levels "dane" and
 * "dane-only", kept apart from deliver_tls_policy.c (which picks the
 * level) and from deliver_tls.c (which runs the handshake).
 *
 * Per server, after the level is known: were the MX and the address
 * records of this host DNSSEC-validated (deliver_dest.c asked with the
 * AD bit), then the TLSA records at _PORT._tcp.HOST (at its CNAME
 * target first when HOST is a validated alias). The outcomes
 * (RFC 7672 2.2): usable records make TLS mandatory and authenticated
 * by them (OpenSSL's DANE verifier: SSL_dane_enable, SSL_dane_tlsa_add);
 * validated but unusable records make it mandatory without
 * authentication ("encrypt"); no records, or an unsigned zone, leave
 * "dane" opportunistic ("may") and defer at "dane-only"; a failed or
 * bogus lookup defers this host, never falls back to plain text.
 *
 * Trusts the AD bit only from the resolvers in
 * smtp_dnssec_trusted_resolvers, and only with smtp_dns_support_level
 * = dnssec (Postfix's key); the records and the certificate are the
 * network's and only compared.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <bsd/string.h>

#include "cfg.h"
#include "dane.h"
#include "dns.h"
#include "deliver.h"
#include "log.h"
#include "sock.h"

static bool dnssec_on;		/* DNSSEC lookups, and their AD bit believed */
static char dnssec_off_why[300];
static const char *job_queue_id = "NOQUEUE";	/* deliver_dane_job */

void deliver_dane_init(void)
{
	dnssec_on = false;
	if (strcmp(cfg.smtp_dns_support_level, "dnssec") != 0) {
		snprintf(dnssec_off_why, sizeof(dnssec_off_why),
		    "smtp_dns_support_level is not dnssec");
		return;
	}
	if (!dane_resolvers_trusted(&cfg.smtp_dnssec_trusted_resolvers,
	    dnssec_off_why, sizeof(dnssec_off_why))) {
		log_warning("DNSSEC is not trusted: %s: no DANE",
		    dnssec_off_why);
		return;
	}
	dnssec_on = true;
}

bool deliver_dane_dnssec(void)
{
	return dnssec_on;
}

void deliver_dane_job(const struct deliver_job *job)
{
	job_queue_id = job->j.queue_id;
}

/*
 * One address family of an MX host failed to resolve with DNSSEC (a
 * bogus or indeterminate answer, or a resolver failure) while the other
 * answered: the host is used with the family that answered, and keeps
 * DANE when that family validated (mail/dns.c). Said in the log, since
 * an attacker forging one family's answers would show up here.
 */
void deliver_dane_address_note(const char *host, const char *what,
    bool secure)
{
	log_info("%s: %s: only the other address family of %s is used (%s)",
	    job_queue_id, what, host, secure ? "DNSSEC-validated" :
	    "not DNSSEC-validated");
}

/* Is the session's level one of DANE's? */
static bool dane_level(const struct deliver_session *s)
{
	return s->tls_policy.level == TLS_LEVEL_DANE ||
	    s->tls_policy.level == TLS_LEVEL_DANE_ONLY;
}

/* No DANE for this server: "dane" is "may" (RFC 7672 2.2), "dane-only"
 * keeps its level and defers in deliver_tls.c with why. */
static void dane_not_applied(struct deliver_session *s, enum tls_level to,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void dane_not_applied(struct deliver_session *s, enum tls_level to,
    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->dane_why, sizeof(s->dane_why), fmt, ap);
	va_end(ap);
	if (s->tls_policy.level == TLS_LEVEL_DANE)
		s->tls_policy.level = to;
}

/*
 * The TLSA records of s->host's server (RFC 7672 2.2.2): when the host
 * name is an alias and its whole CNAME chain validated, the fully
 * expanded name is the TLSA base domain first; without records there (a
 * validated denial, or an unsigned zone), the name the MX record gave.
 * s->dane_base says which one answered.
 */
static enum dane_status dane_lookup_base(struct deliver_session *s,
    const struct deliver_job *job, char *err, size_t errsize)
{
	char expanded[256];
	bool chain_secure;

	strlcpy(s->dane_base, s->host, sizeof(s->dane_base));
	if (dns_cname_expand_dnssec(s->host, expanded, sizeof(expanded),
	    &chain_secure, err, errsize) == DNS_OK && chain_secure &&
	    strcasecmp(expanded, s->host) != 0) {
		enum dane_status st = dane_lookup(expanded, s->port,
		    &s->dane_tlsa, err, errsize);
		if (st != DANE_NO_TLSA && st != DANE_INSECURE) {
			strlcpy(s->dane_base, expanded, sizeof(s->dane_base));
			if (st == DANE_USABLE)
				log_info("%s: TLSA records of %s:%d found at its "
				    "alias target %s", job->j.queue_id, s->host,
				    s->port, expanded);
			return st;
		}
		dane_tlsa_set_free(&s->dane_tlsa);
	}
	return dane_lookup(s->host, s->port, &s->dane_tlsa, err, errsize);
}

bool deliver_dane_prepare(struct deliver_session *s,
    const struct deliver_job *job, bool host_secure,
    struct deliver_outcome *out)
{
	char err[512], text[900];

	s->dane_active = false;
	s->dane_why[0] = '\0';
	if (s->lmtp || !dane_level(s))
		return true;
	if (!dnssec_on) {
		static bool warned;
		if (!warned && s->tls_policy.level == TLS_LEVEL_DANE)
			log_warning("TLS level dane without DNSSEC (%s): "
			    "opportunistic TLS instead", dnssec_off_why);
		warned = true;
		dane_not_applied(s, TLS_LEVEL_MAY, "%s", dnssec_off_why);
		return true;
	}
	if (!host_secure) {
		/* RFC 7672 2.2.1, 2.2.2: an unsigned MX or address record
		 * makes the host name worthless as a reference. */
		dane_not_applied(s, TLS_LEVEL_MAY, "the MX or address records "
		    "of %s are not DNSSEC-validated", s->host);
		return true;
	}
	enum dane_status st = dane_lookup_base(s, job, err, sizeof(err));
	switch (st) {
	case DANE_USABLE:
		s->dane_active = true;
		return true;
	case DANE_UNUSABLE:
		/* RFC 7672 2.2: TLS is still a must, just unauthenticated. */
		log_info("%s: TLSA records of %s:%d are all unusable: TLS "
		    "without authentication", job->j.queue_id, s->host, s->port);
		dane_not_applied(s, TLS_LEVEL_ENCRYPT, "the TLSA records of %s "
		    "are all unusable", s->host);
		return true;
	case DANE_NO_TLSA:
		dane_not_applied(s, TLS_LEVEL_MAY, "%s publishes no TLSA "
		    "records", s->host);
		return true;
	case DANE_INSECURE:
		dane_not_applied(s, TLS_LEVEL_MAY, "the TLSA answer for %s is "
		    "not DNSSEC-validated", s->host);
		return true;
	case DANE_LOOKUP_FAILED:
		break;
	}
	/* Bogus or unreachable: this host may not be used now. */
	snprintf(text, sizeof(text), "TLSA lookup error for %s:%d: %s",
	    s->host, s->port, err);
	log_info("%s: %s", job->j.queue_id, text);
	deliver_outcome_set(out, 'D', "4.7.5", text, text);
	return false;
}

bool deliver_dane_ssl(struct deliver_session *s, SSL *ssl,
    const char *nexthop)
{
	/* The TLSA base domain is the reference identifier and SNI
	 * (RFC 7672 3.2.2, 8.1); a validated MX makes the next-hop domain
	 * one too, and so is the MX host name when its alias target is the
	 * base domain. */
	const char *base = s->dane_base[0] != '\0' ? s->dane_base : s->host;
	if (SSL_dane_enable(ssl, base) <= 0)
		goto fail;
	if (strcasecmp(base, s->host) != 0 &&
	    (SSL_set_tlsext_host_name(ssl, base) != 1 ||
	    SSL_add1_host(ssl, s->host) != 1))
		goto fail;
	if (nexthop != NULL && nexthop[0] != '\0' &&
	    strcasecmp(nexthop, s->host) != 0 && SSL_add1_host(ssl, nexthop) != 1)
		goto fail;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	/* RFC 7672 3.1.1: DANE-EE(3) binds the key, never names. */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	size_t added = 0;
	for (size_t i = 0; i < s->dane_tlsa.count; i++) {
		const struct dane_tlsa *t = &s->dane_tlsa.v[i];
		int r = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype,
		    t->data, t->len);
		if (r > 0)
			added++;
		else
			ERR_clear_error();	/* unusable to OpenSSL: skip */
	}
	if (added > 0)
		return true;
fail:
	ERR_clear_error();
	return false;
}

enum tls_trust deliver_dane_trust(struct deliver_session *s, SSL *ssl,
    char *matched, size_t matchedsize, char *why, size_t whysize)
{
	matched[0] = '\0';
	why[0] = '\0';
	if (SSL_get0_peer_certificate(ssl) == NULL) {
		snprintf(why, whysize, "the server sent no certificate");
		return TLS_TRUST_ANONYMOUS;
	}
	long verify = SSL_get_verify_result(ssl);
	int depth = SSL_get0_dane_authority(ssl, NULL, NULL);
	if (verify != X509_V_OK || depth < 0) {
		snprintf(why, whysize, "no TLSA record of %s matches its "
		    "certificate chain: %s", s->dane_base[0] != '\0' ?
		    s->dane_base : s->host,
		    X509_verify_cert_error_string(verify));
		return TLS_TRUST_UNTRUSTED;
	}
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t dlen;
	if (SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data,
	    &dlen) >= 0) {
		char rec[200];
		dane_tlsa_format(usage, selector, mtype, data, dlen, rec,
		    sizeof(rec));
		snprintf(matched, matchedsize, "TLSA %s matched the certificate "
		    "at depth %d", rec, depth);
	}
	return TLS_TRUST_VERIFIED;
}

void deliver_dane_free(struct deliver_session *s)
{
	dane_tlsa_set_free(&s->dane_tlsa);
	s->dane_active = false;
}
