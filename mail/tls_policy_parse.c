/*
 * tls_policy_parse.c - smtpd_tls_protocols / smtp_tls_protocols and the
 * cipher grades, read into a struct tls_policy (tls.h), and the names of
 * the TLS security levels (tls_policy.h): string work
 * only, apart from tls.c so that what loads the config (mail/cfg.c)
 * links no OpenSSL: smtpd's door, smtpd-door, is linked statically and
 * maps none (issue 20). Trusts nothing: the values come from the config
 * and every one is checked.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>

#include "tls.h"
#include "tls_policy.h"

/* Protocol versions in order, as Postfix and OpenSSL name them. */
static const struct {
	const char *name;
	int version;
} tls_versions[] = {
	{ "SSLv2", 0 },		/* OpenSSL 3 has none: never offered */
	{ "SSLv3", SSL3_VERSION },
	{ "TLSv1", TLS1_VERSION },
	{ "TLSv1.1", TLS1_1_VERSION },
	{ "TLSv1.2", TLS1_2_VERSION },
	{ "TLSv1.3", TLS1_3_VERSION },
};
#define TLS_NVERSIONS (sizeof(tls_versions) / sizeof(tls_versions[0]))
#define TLS_FIRST_OFFERED 2	/* TLSv1: SSLv2 and SSLv3 are broken */

/*
 * Cipher grades for TLS 1.2 and older (TLS 1.3 has only AEAD suites, and
 * OpenSSL's own list of them is used). Both demand forward secrecy: no
 * static-RSA key exchange, whose recorded sessions a stolen key opens.
 */
static const struct {
	const char *grade;
	const char *ciphers;
} tls_grades[] = {
	/* ECDHE with AES-GCM or ChaCha20-Poly1305 only. */
	{ "high", "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL" },
	/* Also finite-field DHE, and CBC suites after the AEAD ones, for
	 * old peers; still no static RSA, 3DES, RC4 or anonymous suites. */
	{ "medium", "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:"
	    "ECDHE+AES:DHE+AES:!aNULL:!eNULL:!DSS:!3DES:!RC4" },
};

static int version_index(const char *name)
{
	for (size_t i = 0; i < TLS_NVERSIONS; i++)
		if (strcasecmp(name, tls_versions[i].name) == 0)
			return (int)i;
	return -1;
}

bool tls_policy_parse(const struct cfg_list *protocols, const char *grade,
    struct tls_policy *policy, char *err, size_t errsize)
{
	bool allowed[TLS_NVERSIONS];
	bool named = false;

	/* Bare names list what is allowed; without any, all are. */
	for (size_t j = 0; j < protocols->count; j++) {
		const char *p = protocols->items[j];
		if (p[0] != '!' && p[0] != '>' && p[0] != '<')
			named = true;
	}
	for (size_t i = 0; i < TLS_NVERSIONS; i++)
		allowed[i] = !named;
	for (size_t j = 0; j < protocols->count; j++) {
		const char *p = protocols->items[j];
		int op = p[0] == '!' ? '!' : strncmp(p, ">=", 2) == 0 ? '>' :
		    strncmp(p, "<=", 2) == 0 ? '<' : '=';
		const char *name = op == '!' ? p + 1 : op == '=' ? p : p + 2;
		int v = version_index(name);
		if (v < 0) {
			snprintf(err, errsize, "unknown protocol \"%.40s\" (use "
			    "SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, "
			    "with !, >= or <=)", name);
			return false;
		}
		for (int i = 0; i < (int)TLS_NVERSIONS; i++) {
			if ((op == '!' && i == v) || (op == '>' && i < v) ||
			    (op == '<' && i > v))
				allowed[i] = false;
			if (op == '=' && i == v)
				allowed[i] = true;
		}
	}
	int lo = -1, hi = -1;
	for (int i = TLS_FIRST_OFFERED; i < (int)TLS_NVERSIONS; i++) {
		if (!allowed[i])
			continue;
		if (lo < 0)
			lo = i;
		else if (hi != i - 1) {
			snprintf(err, errsize, "%s and %s are allowed but not "
			    "%s: give one unbroken range", tls_versions[lo].name,
			    tls_versions[i].name, tls_versions[hi + 1].name);
			return false;
		}
		hi = i;
	}
	if (lo < 0) {
		snprintf(err, errsize, "no protocol left (SSLv2 and SSLv3 are "
		    "never offered)");
		return false;
	}
	policy->min_version = tls_versions[lo].version;
	policy->max_version = hi == (int)TLS_NVERSIONS - 1 ? 0 :
	    tls_versions[hi].version;
	for (size_t g = 0; g < sizeof(tls_grades) / sizeof(tls_grades[0]); g++) {
		if (strcasecmp(grade, tls_grades[g].grade) == 0) {
			policy->ciphers = tls_grades[g].ciphers;
			return true;
		}
	}
	snprintf(err, errsize, "unknown cipher grade \"%.40s\" (use high or "
	    "medium; export, low and null are not offered)", grade);
	return false;
}

static const char *const level_names[] = {
	[TLS_LEVEL_NONE] = "none",
	[TLS_LEVEL_MAY] = "may",
	[TLS_LEVEL_DANE] = "dane",
	[TLS_LEVEL_ENCRYPT] = "encrypt",
	[TLS_LEVEL_FINGERPRINT] = "fingerprint",
	[TLS_LEVEL_DANE_ONLY] = "dane-only",
	[TLS_LEVEL_VERIFY] = "verify",
	[TLS_LEVEL_SECURE] = "secure",
};

bool tls_level_parse(const char *name, enum tls_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(*level_names); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level = (enum tls_level)i;
			return true;
		}
	}
	return false;
}

const char *tls_level_name(enum tls_level level)
{
	return level_names[level];
}
