/*
 * Unit tests for mail/tls_policy.c: security level names, Postfix's
 * smtp_tls_policy_maps entry syntax (match= with ":" or "|", fingerprints
 * normalised, protocols= and ciphers=, errors), and RFC 6125 name
 * matching on certificates made here (no partial wildcards, a leading
 * dot for subdomains, the common name only without DNS names).
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "cfg.h"
#include "tls_policy.h"
#include "unit.h"

static const struct {
	const char *entry;
	bool ok;
	enum tls_level level;
	size_t nmatch;
	const char *match0;	/* the first match= item, or NULL */
	int min_version;	/* 0: no protocols= or ciphers= */
	const char *err;	/* a piece of the error text */
} entries[] = {
	{ "secure", true, TLS_LEVEL_SECURE, 0, NULL, 0, NULL },
	{ "SECURE match=.example.com", true, TLS_LEVEL_SECURE, 1,
	    ".example.com", 0, NULL },
	{ "verify match=hostname:nexthop:mx.example.net", true,
	    TLS_LEVEL_VERIFY, 3, "hostname", 0, NULL },
	{ "verify match=a.example match=b.example", true, TLS_LEVEL_VERIFY, 2,
	    "a.example", 0, NULL },
	{ "encrypt protocols=>=TLSv1.3", true, TLS_LEVEL_ENCRYPT, 0, NULL,
	    TLS1_3_VERSION, NULL },
	{ "encrypt protocols=!TLSv1:!TLSv1.1 ciphers=high", true,
	    TLS_LEVEL_ENCRYPT, 0, NULL, TLS1_2_VERSION, NULL },
	{ "fingerprint match=SHA256:3D:95:34:00:00:00:00:00:00:00:00:00:00:00:"
	    "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:AB", true,
	    TLS_LEVEL_FINGERPRINT, 1,
	    "3d95340000000000000000000000000000000000000000000000000000000"
	    "0ab", 0, NULL },
	{ "fingerprint match=" "0000000000000000000000000000000000000000000000"
	    "000000000000000001|" "000000000000000000000000000000000000000000"
	    "0000000000000000000002", true, TLS_LEVEL_FINGERPRINT, 2,
	    "0000000000000000000000000000000000000000000000000000000000000001",
	    0, NULL },
	{ "none", true, TLS_LEVEL_NONE, 0, NULL, 0, NULL },
	{ "dane-only", true, TLS_LEVEL_DANE_ONLY, 0, NULL, 0, NULL },
	{ "fingerprint", false, 0, 0, NULL, 0, "needs match=" },
	{ "fingerprint match=3D:95", false, 0, 0, NULL, 0,
	    "not a SHA-256 fingerprint" },
	{ "verfy", false, 0, 0, NULL, 0, "\"verfy\" is not a TLS security level" },
	{ "", false, 0, 0, NULL, 0, "is not a TLS security level" },
	{ "secure mach=x", false, 0, 0, NULL, 0, "unknown attribute \"mach\"" },
	{ "secure match", false, 0, 0, NULL, 0, "is not name=value" },
	{ "encrypt protocols=TLSv1.4", false, 0, 0, NULL, 0,
	    "unknown protocol" },
	{ "encrypt ciphers=export", false, 0, 0, NULL, 0,
	    "unknown cipher grade" },
};

static void test_entries(void)
{
	cfg.smtp_tls_protocols = cfg_split_list(">=TLSv1.2");
	cfg.smtp_tls_ciphers = "medium";
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		struct tls_dest_policy p;
		char err[256] = "";
		bool ok = tls_dest_policy_parse(entries[i].entry, &p, err,
		    sizeof(err));
		CHECK_INT(ok, entries[i].ok);
		if (!ok) {
			if (strstr(err, entries[i].err) == NULL)
				CHECK_STR(err, entries[i].err);
			continue;
		}
		CHECK_INT(p.level, entries[i].level);
		CHECK_INT(p.from_map, true);
		CHECK_INT(p.nmatch, entries[i].nmatch);
		if (entries[i].match0 != NULL && p.nmatch > 0)
			CHECK_STR(p.match[0], entries[i].match0);
		CHECK_INT(p.has_protocols, entries[i].min_version != 0);
		if (p.has_protocols)
			CHECK_INT(p.protocols.min_version,
			    entries[i].min_version);
		tls_dest_policy_free(&p);
	}
	cfg_list_free(&cfg.smtp_tls_protocols);
}

static void test_levels(void)
{
	enum tls_level l;
	CHECK(tls_level_parse("dane-only", &l) && l == TLS_LEVEL_DANE_ONLY);
	CHECK(!tls_level_parse("dane_only", &l));
	CHECK_STR(tls_level_name(TLS_LEVEL_FINGERPRINT), "fingerprint");
	CHECK(tls_level_optional(TLS_LEVEL_MAY));
	CHECK(tls_level_optional(TLS_LEVEL_DANE));
	CHECK(!tls_level_optional(TLS_LEVEL_ENCRYPT));
	CHECK(!tls_level_authenticates(TLS_LEVEL_ENCRYPT));
	CHECK(tls_level_authenticates(TLS_LEVEL_SECURE));
	CHECK_STR(tls_trust_name(TLS_TRUST_VERIFIED), "Verified");
}

/* A throwaway certificate with this CN and subjectAltName (or none). */
static X509 *make_cert(const char *cn, const char *san)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (san != NULL) {
		X509V3_CTX ctx;
		X509V3_set_ctx_nodb(&ctx);
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx,
		    NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(x, key, EVP_sha256());
	EVP_PKEY_free(key);
	return x;
}

static const struct {
	const char *cn, *san, *name;
	bool match;
} names[] = {
	{ "x", "DNS:mx.example.com", "mx.example.com", true },
	{ "x", "DNS:mx.example.com", "MX.Example.COM", true },
	{ "x", "DNS:mx.example.com", "example.com", false },
	{ "x", "DNS:mx.example.com", ".example.com", true },
	{ "x", "DNS:example.com", ".example.com", false },
	{ "x", "DNS:*.example.com", "mx.example.com", true },
	{ "x", "DNS:*.example.com", "a.mx.example.com", false },
	{ "x", "DNS:*.example.com", "example.com", false },
	/* RFC 6125 6.4.3: no partial wildcards. */
	{ "x", "DNS:mx*.example.com", "mx1.example.com", false },
	{ "x", "DNS:*x.example.com", "mx.example.com", false },
	/* The CN counts only without DNS names (RFC 6125 6.4.4). */
	{ "mx.example.com", "DNS:other.example", "mx.example.com", false },
	{ "mx.example.com", NULL, "mx.example.com", true },
	{ "x", "IP:192.0.2.1", "192.0.2.1", true },
	{ "x", "DNS:192.0.2.1", "192.0.2.2", false },
};

static void test_names(void)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		X509 *x = make_cert(names[i].cn, names[i].san);
		CHECK(x != NULL);
		if (tls_cert_names(x, names[i].name) != names[i].match)
			CHECK_STR(names[i].name, names[i].match ? "matched" :
			    "not matched");
		X509_free(x);
	}
}

int main(void)
{
	RUN(test_levels);
	RUN(test_entries);
	RUN(test_names);
	return unit_done();
}
