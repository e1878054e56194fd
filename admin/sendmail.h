/*
 * sendmail.h - what sendmail.c (the command line) shares with
 * sendmail_smtp.c (sendmail -bs, SMTP on standard input and output):
 * checking an address a local user gave and putting one message into
 * maildrop/.
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

void rcpt_list_add(struct rcpt_list *l, const char *address);
void rcpt_list_free(struct rcpt_list *l);

/*
 * Check one address as a user typed it: brackets optional, "user" alone
 * gets @myhostname (a local user, as in every sendmail). Returns the
 * canonical form (caller frees) or NULL with *why; sets *utf8 for a UTF-8
 * address.
 */
char *sendmail_canonical_address(const char *text, bool *utf8,
    const char **why);

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

/* sendmail -bs: the whole conversation; returns the exit status. */
int sendmail_smtp(void);

#endif
