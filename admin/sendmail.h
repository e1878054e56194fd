/*
 * sendmail.h - the files of sendmail, one job each:
 *
 *   sendmail.c          main, options, the modes (mailq, newaliases, -q)
 *   sendmail_message.c  addresses a user gives, the message from stdin,
 *                       its header fields, -t
 *   sendmail_queue.c    one message into maildrop/ (sendmail_enqueue)
 *   sendmail_smtp.c     sendmail -bs: SMTP on standard input and output,
 *                       on the server core (mail/smtp_server.h)
 */
#ifndef POSTERN_SENDMAIL_H
#define POSTERN_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>

#include "queue.h"
#include "str.h"

/* Envelope recipients, canonical and each once. */
struct rcpt_list {
	char **items;
	size_t count, cap;
	bool utf8;		/* one of them has a UTF-8 address */
};

/* Add one (canonical) address; duplicates go once. */
void sendmail_rcpt_add(struct rcpt_list *l, const char *address);
void sendmail_rcpt_list_free(struct rcpt_list *l);

/* ---- sendmail.c ---- */

/* Tell the caller and syslog, then exit with a sysexits code. */
void sendmail_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
/* Untrusted text, made safe for a message or a log line (4 at a time). */
const char *sendmail_esc(const char *s);

/* ---- sendmail_message.c ---- */

/*
 * Check one address as a user typed it: brackets optional, "user" alone
 * gets @myhostname (a local user, as in every sendmail). Returns the
 * canonical form (caller frees) or NULL with *why; sets *utf8 for a UTF-8
 * address.
 */
char *sendmail_canonical_address(const char *text, bool *utf8,
    const char **why);

/*
 * An RFC 5322 3.4 address list ("Name <a@b>, c@d, group: e@f;") into l;
 * a bad address ends the program (EX_DATAERR), where says where it was.
 */
void sendmail_parse_address_list(struct rcpt_list *l, const char *text,
    const char *where);

struct smtp_message;
/*
 * Read the message from stdin into msg with CRLF line ends (an LF alone
 * becomes CRLF; CRLF stays). Without -i a line "." alone ends it. The
 * header fields are counted into hops as they pass (hopcount_limit).
 * Past message_size_limit the program ends (EX_DATAERR).
 */
void sendmail_read_message(struct str *msg, bool ignore_dots,
    struct smtp_message *hops);

/* The header section of a message held in a str. */
struct header {
	size_t start, len;	/* in msg, all lines with their CRLFs */
	size_t name_len;
};

struct headers {
	struct header *items;
	size_t count;
	size_t body_start;	/* first byte of the body in msg */
	bool separator;		/* an empty line ended the headers */
};

void sendmail_split_headers(const struct str *msg, struct headers *h);
bool sendmail_header_is(const struct str *msg, const struct header *hd,
    const char *name);
/* -t: To, Cc, Bcc; or Resent-To, -Cc, -Bcc when the message is resent. */
void sendmail_extract_recipients(const struct str *msg,
    const struct headers *h, struct rcpt_list *l);

/* ---- sendmail_queue.c ---- */

/* One message for maildrop/. */
struct local_submission {
	const char *sender;	/* canonical; "" for the null sender */
	const char *fullname;	/* for an added From:, or NULL */
	const struct rcpt_list *rcpts;
	unsigned notify;	/* QUEUE_NOTIFY_* for every recipient */
	enum queue_ret ret;
	const char *envid;	/* or NULL */
	int body;		/* enum queue_body, or -1 to look */
	bool smtputf8;		/* the sender or the client asked for it */
	const char *helo;	/* -bs: the HELO/EHLO name, else NULL */
	const char *protocol;	/* -bs: "SMTP" or "ESMTP", else NULL */
};

/*
 * Queue msg (CRLF line ends, no size check here) for m into maildrop/:
 * our Received header first, the message's headers but Bcc, Resent-Bcc,
 * Return-Path and Content-Length, then the Date, Message-ID and From
 * that RFC 5322 3.6 requires and it lacks. True once committed, with the
 * queue ID in id; false with err.
 */
bool sendmail_enqueue(const struct local_submission *m, const struct str *msg,
    char *id, size_t idsize, char *err, size_t errsize);

/* ---- sendmail_smtp.c ---- */

/* sendmail -bs: the whole conversation; returns the exit status. */
int sendmail_smtp(void);

#endif
