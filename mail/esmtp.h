/*
 * esmtp.h - the SMTP/LMTP grammar shared by smtpd and lmtpd: splitting a
 * command line into verb and argument, parsing and validating MAIL and
 * RCPT parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT,
 * AUTH=, REQUIRETLS), and writing replies that always pair the basic code with its
 * RFC 3463 enhanced status code.
 */
#ifndef POSTERN_ESMTP_H
#define POSTERN_ESMTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "bio.h"
#include "queue.h"

/* "MAIL FROM:<a@b> SIZE=10" -> verb "MAIL", arg "FROM:<a@b> SIZE=10". */
struct esmtp_command {
	char verb[16];		/* upper-cased; "" if the verb is too long */
	const char *arg;	/* points into the line; "" if none */
};
void esmtp_split_command(const char *line, struct esmtp_command *cmd);

/* Parameters of MAIL FROM (RFC 1870, 6152, 3030, 6531, 3461, 4954). */
struct esmtp_mail_params {
	long long size;		/* -1 if not given */
	enum queue_body body;
	bool body_given;
	bool smtputf8;
	enum queue_ret ret;
	char *envid;		/* xtext-decoded, NULL if not given */
	char *auth;		/* AUTH= value, decoded, NULL if not given */
	bool requiretls;	/* REQUIRETLS (RFC 8689) */
};

/* Parameters of RCPT TO (RFC 3461). */
struct esmtp_rcpt_params {
	unsigned notify;	/* QUEUE_NOTIFY_* bits, 0 if not given */
	char *orcpt;		/* "rfc822;addr" decoded, NULL if not given */
};

/*
 * Parse the text after the path. On failure returns false and sets
 * *code, *enhanced and *why for the reply: 555 5.5.4 for an unknown parameter,
 * 501 5.5.4 for a malformed value (RFC 5321 4.1.1.11, RFC 3461 4).
 * Which extensions are enabled is given by the ESMTP_EXT_* bits.
 */
#define ESMTP_EXT_SIZE 0x01
#define ESMTP_EXT_8BITMIME 0x02
#define ESMTP_EXT_SMTPUTF8 0x04
#define ESMTP_EXT_DSN 0x08
#define ESMTP_EXT_CHUNKING 0x10
#define ESMTP_EXT_AUTH 0x20
#define ESMTP_EXT_BINARYMIME 0x40	/* BODY=BINARYMIME, with CHUNKING */
#define ESMTP_EXT_REQUIRETLS 0x80	/* RFC 8689: only inside TLS */
bool esmtp_parse_mail_params(const char *text, unsigned ext,
    struct esmtp_mail_params *out, int *code, const char **enhanced,
    const char **why);
bool esmtp_parse_rcpt_params(const char *text, unsigned ext,
    struct esmtp_rcpt_params *out, int *code, const char **enhanced,
    const char **why);
void esmtp_mail_params_free(struct esmtp_mail_params *p);
void esmtp_rcpt_params_free(struct esmtp_rcpt_params *p);

/*
 * The path of MAIL FROM: / RCPT TO: (rcpt says which), one grammar for
 * smtpd, lmtpd and sendmail -bs: the keyword, optional spaces after the
 * colon (RFC 5321 has none; clients send them and Postfix allows them),
 * the path parsed by addr_parse_path() with addr_flags, then SP or the
 * end. On success *params points at the parameters. On failure *code,
 * *enhanced and text hold the reply, as Postfix answers: no keyword or
 * no path is 501 5.5.4 (a command syntax error), a bad address 501 5.1.7
 * (sender) or 5.1.3 (recipient).
 */
bool esmtp_parse_path_arg(const char *arg, bool rcpt, unsigned addr_flags,
    struct addr *out, const char **params, int *code, const char **enhanced,
    char *text, size_t textsize);

/*
 * RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ], with
 * chunk-size = 1*DIGIT and end-marker = "LAST" (any case): the argument
 * after the verb and its one SP. A size that does not fit 63 bits is a
 * syntax error.
 */
bool esmtp_parse_bdat(const char *arg, unsigned long long *size, bool *last);

/* The body types' names (RFC 6152, RFC 3030): "7BIT", "8BITMIME"... */
const char *esmtp_body_name(enum queue_body body);
/* Name (any case, as ESMTP keywords) to type; false if unknown. */
bool esmtp_body_from_name(const char *name, enum queue_body *body);

/*
 * Queue one reply line "CODE X.Y.Z text" (enhanced may be NULL for 220/
 * 221 greetings where it is optional; never for errors). last=false
 * writes "CODE-" for multi-line replies. The text is ours, never raw
 * client bytes. Output is buffered in b; the caller flushes.
 */
void esmtp_reply(struct bio *b, int code, const char *enhanced, bool last,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same with the text as it is (still filtered and cut to length). */
void esmtp_reply_text(struct bio *b, int code, const char *enhanced,
    bool last, const char *text);
/*
 * A reply's text from its format: the format itself when it has no
 * conversion, the one string when it is "%s", else vsnprintf into buf.
 * Most replies are one of the first two and need no printf (each reply
 * passes through smtpd's, the server core's and this helper).
 */
const char *esmtp_reply_format(char *buf, size_t size, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));

#endif
