/*
 * Unit tests for mail/tls.c's policy parser: Postfix's protocol syntax
 * (bare names, !name, >=name, <=name) to one OpenSSL version range, and
 * the cipher grades to cipher lists that hold no static-RSA or CBC-SHA1
 * suite at "high".
 */
#include <string.h>

#include <openssl/ssl.h>

#include "cfg.h"
#include "tls.h"
#include "unit.h"

static const struct {
	const char *protocols;
	const char *grade;
	bool ok;
	int min, max;
	const char *err;	/* a piece of the error text */
} cases[] = {
	{ ">=TLSv1.2", "high", true, TLS1_2_VERSION, 0, NULL },
	{ ">=TLSv1.3", "high", true, TLS1_3_VERSION, 0, NULL },
	{ "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", "medium", true, TLS1_2_VERSION,
	    0, NULL },
	{ "!SSLv2 !SSLv3", "medium", true, TLS1_VERSION, 0, NULL },
	{ ">=TLSv1.2, <=TLSv1.2", "high", true, TLS1_2_VERSION,
	    TLS1_2_VERSION, NULL },
	{ "TLSv1.2 TLSv1.3", "HIGH", true, TLS1_2_VERSION, 0, NULL },
	{ "TLSv1.2", "high", true, TLS1_2_VERSION, TLS1_2_VERSION, NULL },
	{ "", "high", true, TLS1_VERSION, 0, NULL },
	{ "SSLv3", "high", false, 0, 0, "no protocol left" },
	{ "TLSv1.1, TLSv1.3", "high", false, 0, 0, "unbroken range" },
	{ "!TLSv1.2", "high", false, 0, 0, "unbroken range" },
	{ ">=TLSv1.4", "high", false, 0, 0, "unknown protocol \"TLSv1.4\"" },
	{ ">=TLSv1.2", "low", false, 0, 0, "unknown cipher grade \"low\"" },
	{ ">=TLSv1.2", "AES128-SHA", false, 0, 0, "unknown cipher grade" },
};

static void test_policy_table(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg_list l = cfg_split_list(cases[i].protocols);
		struct tls_policy p = { 0 };
		char err[256] = "";
		bool ok = tls_policy_parse(&l, cases[i].grade, &p, err,
		    sizeof(err));
		CHECK_INT(ok, cases[i].ok);
		if (ok && cases[i].ok) {
			CHECK_INT(p.min_version, cases[i].min);
			CHECK_INT(p.max_version, cases[i].max);
		}
		if (!cases[i].ok && strstr(err, cases[i].err) == NULL)
			CHECK_STR(err, cases[i].err);
		cfg_list_free(&l);
	}
}

/* What each grade lets OpenSSL offer for TLS 1.2. */
static bool grade_offers(const char *grade, const char *cipher)
{
	struct cfg_list l = cfg_split_list(">=TLSv1.2");
	struct tls_policy p;
	char err[256];
	bool found = false;

	CHECK(tls_policy_parse(&l, grade, &p, err, sizeof(err)));
	cfg_list_free(&l);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	CHECK(SSL_CTX_set_cipher_list(ctx, p.ciphers) == 1);
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
	for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++)
		if (strcmp(SSL_CIPHER_get_name(sk_SSL_CIPHER_value(sk, i)),
		    cipher) == 0)
			found = true;
	SSL_CTX_free(ctx);
	return found;
}

static void test_grades(void)
{
	CHECK(grade_offers("high", "ECDHE-RSA-AES128-GCM-SHA256"));
	CHECK(grade_offers("high", "ECDHE-ECDSA-CHACHA20-POLY1305"));
	CHECK(!grade_offers("high", "AES128-SHA"));
	CHECK(!grade_offers("high", "AES256-GCM-SHA384"));
	CHECK(!grade_offers("high", "ECDHE-RSA-AES128-SHA"));
	CHECK(!grade_offers("high", "DHE-RSA-AES128-GCM-SHA256"));
	CHECK(grade_offers("medium", "ECDHE-RSA-AES128-SHA"));
	CHECK(grade_offers("medium", "DHE-RSA-AES128-GCM-SHA256"));
	CHECK(!grade_offers("medium", "AES128-SHA"));
	CHECK(!grade_offers("medium", "DES-CBC3-SHA"));
}

int main(void)
{
	RUN(test_policy_table);
	RUN(test_grades);
	return unit_done();
}
