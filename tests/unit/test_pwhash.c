/*
 * Unit tests for mail/pwhash.c: which crypt(3) hashes smtpd_sasl_users
 * may hold, and the cost class that picks smtpd's dummy hash.
 */
#include <string.h>

#include "pwhash.h"
#include "unit.h"

static const struct {
	const char *hash;
	bool ok;
	const char *class_or_why;	/* class when ok, a piece of why if not */
} cases[] = {
	{ "$6$FchWMVGQLVdMJHW6$eHacq0oN6ZzHdApcfCSVx24kEgX7bv0kDhn68pIGZY.npRf"
	    "n3yfbxM.JKjiVbBNhHc7fuA/Dy5umAkKlvMOYm0", true, "$6$" },
	{ "$6$rounds=10000$FchWMVGQLVdMJHW6$eHacq0oN6ZzHdApcfCSVx24kEgX7bv0kD"
	    "hn68pIGZY.npRfn3yfbxM.JKjiVbBNhHc7fuA/Dy5umAkKlvMOYm0", true,
	    "$6$rounds=10000$" },
	{ "$5$ry.9yCYxnlbl9WRv$DfXkDY3yOPF/4LxfHZjmRMWxqYjq9Fpo3a/gEMI49c0",
	    true, "$5$" },
	{ "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$6foLM1JhGupouWKMU70wxK61Kw9ZnecbACj"
	    "JwRadqM2", true, "$y$j9T$" },
	{ "$2b$12$vOnOzae7b.7uDQMgK1ZWQummyCLW3dPqdCsapnE7qgVuQVkYQ3G7S", true,
	    "$2b$12$" },
	{ "$1$xlrX0jhS$ANSZw52NLavda41pRUxU80", false, "MD5-crypt ($1$)" },
	{ "abJnggxhB/yWI", false, "traditional DES crypt" },
	{ "_J9..CCCCXBrJUJV154M", false, "BSDi extended DES" },
	{ "secret", false, "not a crypt(3) password hash" },
	{ "", false, "not a crypt(3) password hash" },
	{ "!", false, "not a crypt(3) password hash" },
	{ "$6$salt$tooshort", false, "malformed sha512-crypt" },
	{ "$6$rounds=$salt$x", false, "malformed sha512-crypt" },
	{ "$y$j9T$", false, "malformed yescrypt" },
	{ "$2b$99$vOnOzae7b.7uDQMgK1ZWQummyCLW3dPqdCsapnE7qgVuQVkYQ3G7S", false,
	    "malformed bcrypt" },
	{ "$9$whatever$x", false, "unknown password hash scheme" },
};

static void test_check_and_class(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char why[256] = "", class[64];
		bool ok = pwhash_check(cases[i].hash, why, sizeof(why));
		CHECK_INT(ok, cases[i].ok);
		pwhash_class(cases[i].hash, class, sizeof(class));
		if (cases[i].ok) {
			CHECK_STR(class, cases[i].class_or_why);
		} else {
			if (strstr(why, cases[i].class_or_why) == NULL)
				CHECK_STR(why, cases[i].class_or_why);
			if (strncmp(cases[i].hash, "$6$", 3) != 0 &&
			    strncmp(cases[i].hash, "$y$", 3) != 0 &&
			    strncmp(cases[i].hash, "$2b$", 4) != 0)
				CHECK_STR(class, "");
		}
	}
}

int main(void)
{
	RUN(test_check_and_class);
	return unit_done();
}
