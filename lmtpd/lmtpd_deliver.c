/*
 * lmtpd_deliver.c - after the message (DATA's final dot or BDAT LAST):
 * one copy per accepted recipient, each succeeding or failing on its own,
 * and one reply for each in RCPT order (RFC 2033 4.2); our trace fields
 * (Return-Path, Delivered-To, Received) and the delivery log lines.
 *
 * Trusts the session's checked envelope; the message bytes are the
 * client's and are refused whole when the server core marked them (bare
 * CR or LF, too many hops) before anything is stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "esmtp.h"
#include "lmtpd.h"
#include "lmtpd_metrics.h"
#include "metrics.h"
#include "log.h"
#include "rfc5322.h"
#include "str.h"

/* Our trace fields for one recipient's copy: LF line ends, as stored. */
static void build_header(struct lmtpd_session *s, const struct lmtpd_rcpt *r,
    struct str *h)
{
	char date[RFC5322_DATE_SIZE];
	const char *proto = s->txn.params.smtputf8 ? "UTF8LMTP" : "LMTP";

	rfc5322_date(time(NULL), date, sizeof(date));
	str_clear(h);
	/* RFC 5321 4.4: Return-Path at delivery, the envelope sender. */
	str_appendf(h, "Return-Path: <%s>\n", s->txn.sender);
	str_appendf(h, "Delivered-To: %s\n", r->address);
	/* RFC 5321 4.4 trace field; RFC 3848 / 6531 protocol keyword. */
	str_appendf(h, "Received: from %s (%s)\n\tby %s (postern) with %s "
	    "id %s\n\tfor <%s>; %s\n", s->lhlo ? s->lhlo : "unknown", s->peer,
	    lmtpd_settings.hostname, proto, s->txn.id, r->address, date);
}

static double elapsed_since(const struct timeval *start)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_usec - start->tv_usec) / 1e6;
}

/* Addresses came from the client: escaped before they are logged. */
static const char *log_addr(char *buf, size_t size, const char *address)
{
	return log_escape(buf, size, address, strlen(address));
}

/*
 * One line per recipient, in a shape of its own: deliver logs the same
 * delivery as "to=..., status=sent", and log readers (pflogsumm, a grep
 * for status=sent) must count it once (doc/logging.md). result is what
 * this server did: "stored", "tempfail" (4xx) or "refused" (5xx).
 */
static void log_delivery(struct lmtpd_session *s, const struct lmtpd_rcpt *r,
    const char *dsn, const char *result, const char *why)
{
	char addr[600];
	log_info("%s: rcpt=<%s>, maildir=%s, delay=%.2f, dsn=%s, "
	    "result=%s (%s)", s->txn.id,
	    log_addr(addr, sizeof(addr), r->address), r->maildir,
	    elapsed_since(&s->txn.start), dsn, result, why);
	lmtpd_metrics_rcpt(result);
}

/* Store one recipient's copy and queue its reply (RFC 2033 4.2). */
static void deliver_one(struct lmtpd_session *s, const struct lmtpd_rcpt *r,
    struct str *header)
{
	const char *shown = lmtpd_printable_address(r->address);
	struct lmtpd_spool *sp = &s->spool;
	char name[512], err[600];

	if (sp->too_big) {
		/* RFC 1870 6.3 */
		log_delivery(s, r, "5.3.4", "refused", "message too big");
		esmtp_reply(&s->bio, 552, "5.3.4", true,
		    "<%s>: Message size exceeds fixed limit", shown);
		return;
	}
	if (s->txn.msg.bare_newline) {
		/* The same smuggling rule as smtpd (mail/smtp_server_data.c). */
		log_delivery(s, r, "5.5.2", "refused", "bare <CR> or <LF> in "
		    "message text");
		esmtp_reply(&s->bio, 550, "5.5.2", true, "<%s>: Error: bare "
		    "<CR> or <LF> received in message text", shown);
		return;
	}
	if (smtp_message_too_many_hops(&s->txn.msg)) {
		/* RFC 5321 6.3; Postfix's hopcount_limit. */
		log_delivery(s, r, "5.4.6", "refused", "too many hops");
		esmtp_reply(&s->bio, 554, "5.4.6", true, "<%s>: Error: Too "
		    "many hops", shown);
		return;
	}
	if ((long long)s->txn.msg.delivered_to >
	    lmtpd_settings.max_delivered_to) {
		/* RFC 5321 6.3: a message that keeps coming back is a loop. */
		log_delivery(s, r, "5.4.6", "refused", "mail forwarding loop: "
		    "too many Delivered-To header fields");
		esmtp_reply(&s->bio, 554, "5.4.6", true,
		    "<%s>: Mail forwarding loop detected", shown);
		return;
	}
	if (sp->write_failed) {
		log_delivery(s, r, "4.3.0", "tempfail",
		    "temporary spool file not writable");
		esmtp_reply(&s->bio, 451, "4.3.0", true,
		    "<%s>: Temporary failure, try again later", shown);
		return;
	}

	build_header(s, r, header);
	err[0] = '\0';
	enum lmtpd_store_result res = lmtpd_maildir_store(r->maildir,
	    str_cstr(header), header->len, sp, lmtpd_settings.quota, name,
	    sizeof(name), err, sizeof(err));
	switch (res) {
	case LMTPD_STORE_OK:
		log_delivery(s, r, "2.0.0", "stored", "delivered to maildir");
		esmtp_reply(&s->bio, 250, "2.0.0", true, "<%s> Delivered (%s)",
		    shown, s->txn.id);
		return;
	case LMTPD_STORE_QUOTA:
		if (lmtpd_settings.quota_tempfail) {
			log_delivery(s, r, "4.2.2", "tempfail", err);
			esmtp_reply(&s->bio, 452, "4.2.2", true,
			    "<%s>: Mailbox full", shown);
		} else {
			log_delivery(s, r, "5.2.2", "refused", err);
			esmtp_reply(&s->bio, 552, "5.2.2", true,
			    "<%s>: Mailbox full", shown);
		}
		return;
	case LMTPD_STORE_NOSPACE:
		log_delivery(s, r, "4.3.1", "tempfail", err);
		esmtp_reply(&s->bio, 452, "4.3.1", true,
		    "<%s>: Insufficient system storage", shown);
		return;
	case LMTPD_STORE_TEMPFAIL:
		log_delivery(s, r, "4.3.0", "tempfail", err);
		esmtp_reply(&s->bio, 451, "4.3.0", true,
		    "<%s>: Cannot store the message, try again later", shown);
		return;
	}
}

void lmtpd_deliver_all(struct lmtpd_session *s)
{
	struct str header;
	char sender[600];
	double end = metrics_now();

	lmtpd_spool_finish(&s->spool);
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu, client=%s", s->txn.id,
	    log_addr(sender, sizeof(sender), s->txn.sender),
	    s->txn.msg.size, s->txn.nrcpts, s->peer);
	str_init(&header, STR_NO_MAX);
	for (size_t i = 0; i < s->txn.nrcpts; i++)
		deliver_one(s, &s->txn.rcpts[i], &header);
	str_free(&header);
	lmtpd_metrics_message(end);
	s->messages++;
}

