/*
 * tls_policy.c - TLS security levels, smtp_tls_policy_maps entries and
 * the judgement of a server certificate (see tls_policy.h).
 *
 * The entry syntax is Postfix's (postconf(5), smtp_tls_policy_maps): a
 * level, then attributes separated by white space; match= names are
 * separated by ":" and fingerprints by "|", as there, since a
 * fingerprint is written with colons. Trusts the config; the
 * certificate is the peer's and only ever compared, never believed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "cfg.h"
#include "mem.h"
#include "tls_policy.h"

bool tls_level_optional(enum tls_level level)
{
	/* dane: RFC 7672 2.2, without usable TLSA records it is "may". */
	return level == TLS_LEVEL_NONE || level == TLS_LEVEL_MAY ||
	    level == TLS_LEVEL_DANE;
}

bool tls_level_authenticates(enum tls_level level)
{
	return level == TLS_LEVEL_FINGERPRINT || level == TLS_LEVEL_DANE_ONLY ||
	    level == TLS_LEVEL_VERIFY || level == TLS_LEVEL_SECURE;
}

/* "SHA256:AB:CD:..", "ab:cd..." or "abcd..." to 64 lowercase hex digits. */
static bool fingerprint_normalize(const char *in, char out[65])
{
	size_t n = 0;
	if (strncasecmp(in, "sha256:", 7) == 0)
		in += 7;
	for (; *in != '\0'; in++) {
		if (*in == ':')
			continue;
		if (!isxdigit((unsigned char)*in) || n == 64)
			return false;
		out[n++] = (char)tolower((unsigned char)*in);
	}
	out[n] = '\0';
	return n == 64;
}

bool tls_dest_policy_add_match(struct tls_dest_policy *p, const char *item,
    char *err, size_t errsize)
{
	if (*item == '\0')
		return true;
	if (p->nmatch == TLS_MATCH_MAX) {
		snprintf(err, errsize, "more than %d match= items", TLS_MATCH_MAX);
		return false;
	}
	if (p->level == TLS_LEVEL_FINGERPRINT) {
		char hex[65];
		if (!fingerprint_normalize(item, hex)) {
			snprintf(err, errsize, "\"%.80s\" is not a SHA-256 "
			    "fingerprint (64 hex digits, colons allowed)", item);
			return false;
		}
		p->match[p->nmatch++] = xstrdup(hex);
	} else {
		p->match[p->nmatch++] = xstrdup(item);
	}
	return true;
}

/* match=a:b:c (names) or match=x|y (fingerprints). */
static bool parse_match(struct tls_dest_policy *p, const char *value,
    char *err, size_t errsize)
{
	const char *sep = p->level == TLS_LEVEL_FINGERPRINT ? "|" : ":";
	char *copy = xstrdup(value), *save = NULL;
	bool ok = true;
	for (char *tok = strtok_r(copy, sep, &save); tok != NULL && ok;
	    tok = strtok_r(NULL, sep, &save))
		ok = tls_dest_policy_add_match(p, tok, err, errsize);
	free(copy);
	return ok;
}

bool tls_dest_policy_parse(const char *entry, struct tls_dest_policy *p,
    char *err, size_t errsize)
{
	char *copy = xstrdup(entry), *save = NULL;
	char *protocols = NULL, *ciphers = NULL;
	bool ok = true;

	memset(p, 0, sizeof(*p));
	p->from_map = true;
	char *tok = strtok_r(copy, " \t,", &save);
	if (tok == NULL || !tls_level_parse(tok, &p->level)) {
		snprintf(err, errsize, "\"%.40s\" is not a TLS security level "
		    "(none, may, encrypt, dane, dane-only, fingerprint, "
		    "verify, secure)", tok ? tok : "");
		free(copy);
		return false;
	}
	while (ok && (tok = strtok_r(NULL, " \t,", &save)) != NULL) {
		char *eq = strchr(tok, '=');
		if (eq == NULL) {
			snprintf(err, errsize, "\"%.80s\" is not name=value", tok);
			ok = false;
			break;
		}
		*eq = '\0';
		const char *value = eq + 1;
		if (strcasecmp(tok, "match") == 0)
			ok = parse_match(p, value, err, errsize);
		else if (strcasecmp(tok, "protocols") == 0)
			protocols = xstrdup(value);
		else if (strcasecmp(tok, "ciphers") == 0)
			ciphers = xstrdup(value);
		else {
			snprintf(err, errsize, "unknown attribute \"%.40s\" (use "
			    "match, protocols or ciphers)", tok);
			ok = false;
		}
	}
	if (ok && p->level == TLS_LEVEL_FINGERPRINT && p->nmatch == 0) {
		snprintf(err, errsize, "fingerprint needs match=SHA256 digest");
		ok = false;
	}
	if (ok && (protocols != NULL || ciphers != NULL)) {
		/* Postfix separates protocols by ":" inside an entry. */
		for (char *c = protocols; c != NULL && *c != '\0'; c++)
			if (*c == ':')
				*c = ' ';
		/* What the entry leaves out comes from smtp_tls_*. */
		struct cfg_list l = { 0 };
		if (protocols != NULL) {
			l = cfg_split_list(protocols);
		} else {
			/* NULL-terminated, as cfg_list_free expects. */
			l.items = xcalloc(cfg.smtp_tls_protocols.count + 1,
			    sizeof(*l.items));
			for (size_t i = 0; i < cfg.smtp_tls_protocols.count; i++)
				l.items[l.count++] =
				    xstrdup(cfg.smtp_tls_protocols.items[i]);
		}
		ok = tls_policy_parse(&l, ciphers ? ciphers :
		    cfg.smtp_tls_ciphers, &p->protocols, err, errsize);
		p->has_protocols = ok;
		cfg_list_free(&l);
	}
	free(protocols);
	free(ciphers);
	free(copy);
	if (!ok)
		tls_dest_policy_free(p);
	return ok;
}

void tls_dest_policy_free(struct tls_dest_policy *p)
{
	for (size_t i = 0; i < p->nmatch; i++)
		free(p->match[i]);
	p->nmatch = 0;
}

const char *tls_trust_name(enum tls_trust trust)
{
	static const char *const names[] = {
		[TLS_TRUST_ANONYMOUS] = "Anonymous",
		[TLS_TRUST_UNTRUSTED] = "Untrusted",
		[TLS_TRUST_TRUSTED] = "Trusted",
		[TLS_TRUST_VERIFIED] = "Verified",
	};
	return names[trust];
}

/* SHA-256 of the DER certificate and of its public key, as hex. */
static bool cert_digests(X509 *cert, char cert_hex[65], char key_hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (X509_digest(cert, EVP_sha256(), md, &len) != 1 || len != 32)
		return false;
	for (unsigned i = 0; i < len; i++)
		snprintf(cert_hex + 2 * i, 3, "%02x", md[i]);
	if (X509_pubkey_digest(cert, EVP_sha256(), md, &len) != 1 || len != 32)
		return false;
	for (unsigned i = 0; i < len; i++)
		snprintf(key_hex + 2 * i, 3, "%02x", md[i]);
	return true;
}

bool tls_cert_names(X509 *cert, const char *name)
{
	/* RFC 6125 6.4.3: "*" only as a whole left-most label. */
	unsigned flags = X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
	if (X509_check_ip_asc(cert, name, 0) == 1)
		return true;
	return X509_check_host(cert, name, strlen(name), flags, NULL) == 1;
}

enum tls_trust tls_peer_trust(SSL *ssl, char *const *names, size_t nnames,
    char *const *fingerprints, size_t nfingerprints, char *why,
    size_t whysize)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	snprintf(why, whysize, "%s", "");
	if (cert == NULL) {
		snprintf(why, whysize, "the server sent no certificate");
		return TLS_TRUST_ANONYMOUS;
	}
	if (nfingerprints > 0) {
		char cert_hex[65], key_hex[65];
		if (!cert_digests(cert, cert_hex, key_hex)) {
			snprintf(why, whysize, "cannot compute the certificate "
			    "fingerprint");
			return TLS_TRUST_UNTRUSTED;
		}
		for (size_t i = 0; i < nfingerprints; i++)
			if (strcmp(fingerprints[i], cert_hex) == 0 ||
			    strcmp(fingerprints[i], key_hex) == 0)
				return TLS_TRUST_VERIFIED;
		snprintf(why, whysize, "certificate fingerprint %s matches no "
		    "match= fingerprint", cert_hex);
		return TLS_TRUST_UNTRUSTED;
	}
	long verify = SSL_get_verify_result(ssl);
	if (verify != X509_V_OK) {
		snprintf(why, whysize, "untrusted issuer or chain: %s",
		    X509_verify_cert_error_string(verify));
		return TLS_TRUST_UNTRUSTED;
	}
	if (nnames == 0)
		return TLS_TRUST_TRUSTED;
	for (size_t i = 0; i < nnames; i++)
		if (tls_cert_names(cert, names[i]))
			return TLS_TRUST_VERIFIED;
	size_t used = (size_t)snprintf(why, whysize, "the certificate names "
	    "none of");
	for (size_t i = 0; i < nnames && used < whysize; i++)
		used += (size_t)snprintf(why + used, whysize - used, " %s",
		    names[i]);
	return TLS_TRUST_TRUSTED;
}
