/*
 * postern_spf.c - "postern spf check IP SENDER [HELO]": the SPF result
 * (RFC 7208) for a client address and a MAIL FROM address, as postern
 * evaluates it (mail/spf_check.c), through dns_servers. With an empty
 * SENDER ("" or "<>") the HELO identity is checked (RFC 7208 2.3).
 * Prints "RESULT (reason)"; exits 0 for pass, 1 for any other result, 2
 * for a usage error. A tool for administrators and for the SPF tests;
 * trusts its invoking user.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cfg.h"
#include "dns.h"
#include "mem.h"
#include "spf.h"

static int spf_usage(void)
{
	fprintf(stderr, "usage: postern spf check IP SENDER [HELO]\n");
	return 2;
}

int admin_spf_main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	char err[512];

	if (argc < 4 || argc > 5 || strcmp(argv[1], "check") != 0)
		return spf_usage();
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, argv[2], &s4->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, argv[2], &s6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return spf_usage();
	const char *helo = argc == 5 ? argv[4] : "unknown";
	const char *sender = argv[3];
	if (strcmp(sender, "<>") == 0)
		sender = "";
	if (!dns_init(&cfg.dns_servers, err, sizeof(err))) {
		fprintf(stderr, "postern spf: %s\n", err);
		return 2;
	}
	/* RFC 7208 2.4: an empty MAIL FROM is postmaster@HELO. */
	char *who = sender[0] ? xstrdup(sender) :
	    xasprintf("postmaster@%s", helo);
	const char *at = strrchr(who, '@');
	struct spf_check c = {
		.client = (const struct sockaddr *)&ss,
		.sender = who,
		.helo = helo,
	};
	enum spf_result r = spf_check_host(&c, at ? at + 1 : who);
	printf("%s (%s)\n", spf_result_name(r), c.why);
	free(who);
	dns_close();
	return r == SPF_PASS ? 0 : 1;
}
