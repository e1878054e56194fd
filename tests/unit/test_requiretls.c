/*
 * Unit tests for mail/requiretls.c: the "TLS-Required: No" header field
 * of RFC 8689 5 in a message's header section (any case, white space
 * and folding; only in the header section; any other value is not No).
 */
#include <string.h>

#include "requiretls.h"
#include "unit.h"

static const struct {
	const char *header;
	bool no;
} cases[] = {
	{ "TLS-Required: No\r\n\r\nbody\r\n", true },
	{ "Subject: x\r\ntls-required:no\r\n\r\n", true },
	{ "TLS-REQUIRED:   NO  \r\n\r\n", true },
	{ "TLS-Required:\r\n No\r\n\r\n", true },	/* folded */
	{ "TLS-Required: Yes\r\n\r\n", false },
	{ "TLS-Required: No thanks\r\n\r\n", false },
	{ "TLS-Required: Nooooooooooo\r\n\r\n", false },
	{ "TLS-Required: No\n", true },		/* LF only, no body */
	{ "X-TLS-Required: No\r\n\r\n", false },
	{ "TLS-Required-X: No\r\n\r\n", false },
	{ "Subject: x\r\n\r\nTLS-Required: No\r\n", false },	/* body */
	{ "\r\nTLS-Required: No\r\n", false },	/* empty header section */
	{ "", false },
	{ "TLS-Required: N", false },
};

static void test_header(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		bool got = requiretls_header_says_no(cases[i].header,
		    strlen(cases[i].header));
		if (got != cases[i].no)
			printf("# case %zu: \"%s\"\n", i, cases[i].header);
		CHECK_INT(got, cases[i].no);
	}
}

int main(void)
{
	RUN(test_header);
	return unit_done();
}
