/*
 * tls_policy.h - the SMTP client's TLS security levels and per-destination
 * policy entries, in Postfix's words (smtp_tls_security_level,
 * smtp_tls_policy_maps), and the check of a peer's certificate against
 * them after the handshake.
 *
 * Trusts the config and OpenSSL's chain verification against the CA
 * store the caller loaded; the peer's certificate is untrusted input,
 * judged here and never echoed beyond what OpenSSL's error strings say.
 */
#ifndef POSTERN_TLS_POLICY_H
#define POSTERN_TLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "tls.h"

/* Postfix's levels, weakest first (the order means nothing beyond that). */
enum tls_level {
	TLS_LEVEL_NONE,		/* never STARTTLS */
	TLS_LEVEL_MAY,		/* opportunistic: plain text on failure */
	TLS_LEVEL_DANE,		/* DANE where DNSSEC says so, else may */
	TLS_LEVEL_ENCRYPT,	/* TLS required, any certificate */
	TLS_LEVEL_FINGERPRINT,	/* TLS required, a pinned certificate */
	TLS_LEVEL_DANE_ONLY,	/* TLS required, matching DNSSEC TLSA */
	TLS_LEVEL_VERIFY,	/* TLS required, CA chain and the MX name */
	TLS_LEVEL_SECURE,	/* TLS required, CA chain and the next hop */
};

bool tls_level_parse(const char *name, enum tls_level *level);
const char *tls_level_name(enum tls_level level);
/* May the client carry on in plain text at this level? */
bool tls_level_optional(enum tls_level level);
/* Does this level authenticate the server (not just encrypt)? */
bool tls_level_authenticates(enum tls_level level);

#define TLS_MATCH_MAX 16

/*
 * One destination's policy: a smtp_tls_policy_maps entry ("secure
 * match=.example.com protocols=>=TLSv1.3 ciphers=high") or the global
 * default. match holds names (verify, secure; the tokens "hostname",
 * "nexthop" and "dot-nexthop" included) or, at fingerprint, SHA-256
 * digests as 64 lowercase hex digits.
 */
struct tls_dest_policy {
	enum tls_level level;
	char *match[TLS_MATCH_MAX];
	size_t nmatch;
	bool has_protocols;	/* protocols= or ciphers= was given */
	struct tls_policy protocols;
	bool from_map;		/* an entry of smtp_tls_policy_maps */
};

/*
 * Parse a policy map entry. A missing match= leaves nmatch 0 (the
 * caller's defaults apply); fingerprint without one is an error.
 */
bool tls_dest_policy_parse(const char *entry, struct tls_dest_policy *p,
    char *err, size_t errsize);
/* Add one match= item (a name, or a fingerprint at that level). */
bool tls_dest_policy_add_match(struct tls_dest_policy *p, const char *item,
    char *err, size_t errsize);
void tls_dest_policy_free(struct tls_dest_policy *p);

/* Does cert name this host (RFC 6125 6.4: no partial wildcards), or with
 * a leading dot any subdomain, or is it this IP literal's? */
bool tls_cert_names(X509 *cert, const char *name);

/* How far the peer's certificate was found trustworthy, as logged. */
enum tls_trust {
	TLS_TRUST_ANONYMOUS,	/* no certificate */
	TLS_TRUST_UNTRUSTED,	/* chain not verified, or no fingerprint hit */
	TLS_TRUST_TRUSTED,	/* chain verified, names not (or no) match */
	TLS_TRUST_VERIFIED,	/* chain and a name, or a fingerprint */
};

/* "Anonymous", "Untrusted", "Trusted", "Verified". */
const char *tls_trust_name(enum tls_trust trust);

/*
 * Judge ssl's peer certificate after a handshake. With fingerprints
 * (64-hex SHA-256 of the certificate or of its public key) only those
 * count; else the chain as OpenSSL verified it against the context's CA
 * store, then names (RFC 6125 6.4 with X509_check_host: no partial
 * wildcards; a leading dot matches any subdomain; an IP literal matches
 * an iPAddress entry). why says what fell short.
 */
enum tls_trust tls_peer_trust(SSL *ssl, char *const *names, size_t nnames,
    char *const *fingerprints, size_t nfingerprints, char *why,
    size_t whysize);

#endif
