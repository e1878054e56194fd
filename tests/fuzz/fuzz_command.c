/*
 * fuzz_command.c - libFuzzer harness for smtpd's command grammar: verb
 * splitting, MAIL/RCPT paths and parameters (mail/esmtp.c, addr.c), and
 * the reply writer. `make fuzz` builds it into build/fuzz/fuzz_command;
 * `make fuzz-smoke` runs it briefly; for a longer run:
 *
 *   mkdir -p /tmp/corpus && build/fuzz/fuzz_command -max_total_time=600 \
 *       -dict=tests/fuzz/command.dict /tmp/corpus tests/fuzz/corpus_command
 *
 * Checks, besides memory safety: whatever a parser returns on failure is
 * a 501 or 555 with 5.5.4, and a reply never holds a CR or LF inside its
 * line nor runs past 512 octets (RFC 5321 4.5.3.1.5).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "esmtp.h"

#define ALL_EXT (ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME | ESMTP_EXT_SMTPUTF8 | \
    ESMTP_EXT_DSN | ESMTP_EXT_CHUNKING | ESMTP_EXT_AUTH)

static void check_failure(int code, const char *enh, const char *why)
{
	if ((code != 501 && code != 555) || enh == NULL ||
	    strcmp(enh, "5.5.4") != 0 || why == NULL)
		abort();
}

/* The reply for the parsed command, written to a pipe and checked. */
static void check_reply(const char *verb, const char *why)
{
	static int fds[2] = { -1, -1 };
	if (fds[0] < 0 && pipe(fds) != 0)
		abort();
	struct bio b;
	bio_init(&b, fds[1], 1000);
	esmtp_reply(&b, 501, "5.5.4", true, "%s: %s", verb, why);
	if (b.wlen > 512 || b.wlen < 2 || b.wbuf[b.wlen - 2] != '\r' ||
	    b.wbuf[b.wlen - 1] != '\n')
		abort();
	for (size_t i = 0; i + 2 < b.wlen; i++)
		if (b.wbuf[i] == '\r' || b.wbuf[i] == '\n')
			abort();
	bio_free(&b);
}

static void path_command(const char *arg, const char *keyword,
    unsigned flags, bool mail)
{
	size_t k = strlen(keyword);
	if (strncasecmp(arg, keyword, k) != 0)
		return;
	arg += k;
	while (*arg == ' ')
		arg++;
	struct addr a;
	const char *end, *why, *enh;
	int code;
	if (!addr_parse_path(arg, flags, &a, &end, &why)) {
		check_reply(keyword, why);
		return;
	}
	if (mail) {
		struct esmtp_mail_params p;
		if (esmtp_parse_mail_params(end, ALL_EXT, &p, &code, &enh,
		    &why))
			esmtp_mail_params_free(&p);
		else
			check_failure(code, enh, why);
	} else {
		struct esmtp_rcpt_params p;
		if (esmtp_parse_rcpt_params(end, ALL_EXT, &p, &code, &enh,
		    &why))
			esmtp_rcpt_params_free(&p);
		else
			check_failure(code, enh, why);
	}
	addr_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A command line as smtpd sees it: bounded, no NUL inside. */
	if (size > 512 || memchr(data, 0, size) != NULL)
		return 0;
	char *line = malloc(size + 1);
	memcpy(line, data, size);
	line[size] = '\0';

	struct esmtp_command cmd;
	esmtp_split_command(line, &cmd);
	if (strlen(cmd.verb) >= sizeof(cmd.verb))
		abort();
	if (cmd.arg < line || cmd.arg > line + size)
		abort();
	if (strcmp(cmd.verb, "MAIL") == 0)
		path_command(cmd.arg, "FROM:", ADDR_ALLOW_NULL |
		    ADDR_ALLOW_UTF8, true);
	else if (strcmp(cmd.verb, "RCPT") == 0)
		path_command(cmd.arg, "TO:", ADDR_ALLOW_POSTMASTER |
		    ADDR_ALLOW_UTF8, false);
	else
		check_reply(cmd.verb, cmd.arg);
	free(line);
	return 0;
}
