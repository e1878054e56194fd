/*
 * qmgr_bounce.c - delivery status notifications (RFC 3464): bounces,
 * delay notices and success reports, written as new queue files in
 * incoming/ from the null sender.
 *
 * Who gets one: ordinary mail reports to its envelope sender. Mail from
 * <> and DSNs themselves never report back to their (null) sender; a
 * non-delivery of such mail goes to postmaster once, as kind DOUBLE, and
 * a DOUBLE that fails is dropped with a log line: no bounce loops.
 *
 * What is returned: the full message or only its headers as RET asks
 * (RFC 3461 4.3); without RET, the full message when it is small, else the
 * headers. Delay and success reports carry only the headers. BINARYMIME
 * content cannot travel inside a MIME part of an 8BITMIME message, so it
 * is returned as headers only. Mail that used SMTPUTF8 gets the RFC 6533
 * types (message/global-delivery-status, message/global).
 *
 * REQUIRETLS (RFC 8689 5): a report about a message that came with
 * REQUIRETLS may hold what the sender wanted kept off clear-text links,
 * so the report is queued with REQUIRETLS too (the Q record: deliver then
 * sends it only over authenticated TLS to a server that offers
 * REQUIRETLS, or not at all), and it returns the header section only,
 * never the body, whatever RET asked. A postmaster copy of such a report
 * keeps both rules. The report's text says what is attached, and when the
 * body of a non-delivery report is left out, why.
 *
 * Trusts the queue file; every text taken from it or from a peer's reply
 * is reduced to printable ASCII before it goes into the report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <fcntl.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "qmgr.h"

/* Diagnostics longer than this are cut (RFC 5322 2.1.1 line limit). */
#define DIAG_MAX 900

/* Printable ASCII only: peer replies and addresses may hold anything. */
static void append_clean(struct str *s, const char *text, size_t max)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)text;
	    *p && n < max; p++, n++) {
		if (*p >= 0x20 && *p < 0x7f)
			str_append_char(s, (char)*p);
		else if (*p >= 0x80)
			str_append_char(s, '?');
		else
			str_append_char(s, ' ');
	}
}

/* Addresses may be UTF-8 (SMTPUTF8 mail): kept when utf8 is allowed. */
static void append_address(struct str *s, const char *addr, bool utf8)
{
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
		if ((*p >= 0x20 && *p < 0x7f) || (utf8 && *p >= 0x80))
			str_append_char(s, (char)*p);
		else
			str_append_char(s, '?');
	}
}

/* Does text begin with an SMTP reply code ("550 ...", "450-...")? */
static bool is_smtp_reply(const char *text)
{
	return text[0] >= '2' && text[0] <= '5' && text[1] >= '0' &&
	    text[1] <= '9' && text[2] >= '0' && text[2] <= '9' &&
	    (text[3] == ' ' || text[3] == '-' || text[3] == '\0');
}

static void rfc5322_date(struct str *s, time_t t)
{
	char buf[64];
	qmgr_rfc5322_date(t, buf, sizeof(buf));
	str_append_cstr(s, buf);
}

static const char *subject_of(enum qdsn_kind kind, bool double_bounce)
{
	if (double_bounce)
		return "Postmaster Copy: Undelivered Mail";
	switch (kind) {
	case QDSN_DELAYED:
		return "Delayed Mail (still being retried)";
	case QDSN_DELIVERED:
	case QDSN_RELAYED:
		return "Successful Mail Delivery Report";
	default:
		return "Undelivered Mail Returned to Sender";
	}
}

static const char *action_of(enum qdsn_kind kind)
{
	switch (kind) {
	case QDSN_DELAYED:
		return "delayed";
	case QDSN_DELIVERED:
		return "delivered";
	case QDSN_RELAYED:
		return "relayed";
	default:
		return "failed";
	}
}

/*
 * Why a non-delivery report returns the header section only, or NULL
 * when it returns the whole message (and for delay and success notices,
 * which never return more than the headers). RFC 3461 4.3, RFC 8689 5.
 */
static const char *body_left_out(const struct queue_envelope *env,
    enum qdsn_kind kind)
{
	if (kind != QDSN_FAILED)
		return NULL;	/* a notice: the headers, always */
	if (env->requiretls)
		return "it was sent with REQUIRETLS";
	if (env->body == QUEUE_BODY_BINARYMIME)
		return "its binary content cannot be attached";
	if (env->ret == QUEUE_RET_HDRS)
		return "the headers only were asked for (RET=HDRS)";
	if (env->ret == QUEUE_RET_DEFAULT &&
	    env->content_length > QMGR_BOUNCE_FULL_LIMIT)
		return "the message is too large to return";
	return NULL;
}

/* What is attached, as the last sentences of the text: never "your
 * message" when only its headers are (left_out: body_left_out's). */
static void attachment_text(struct str *s, bool headers_only,
    const char *left_out, const char *what)
{
	if (!headers_only)
		str_appendf(s, "A copy of %s is attached.\r\n\r\n", what);
	else if (left_out == NULL)
		str_appendf(s, "The header section of %s is attached.\r\n"
		    "\r\n", what);
	else
		str_appendf(s, "The header section of %s is attached.\r\n"
		    "Its body is not: %s.\r\n\r\n", what, left_out);
}

static void human_text(struct str *s, const struct qmsg *msg,
    enum qdsn_kind kind, bool double_bounce, bool headers_only,
    const struct qdsn_rcpt *rcpts, size_t count)
{
	bool utf8 = msg->env.smtputf8;
	const char *left_out = body_left_out(&msg->env, kind);

	str_appendf(s, "This is the mail system at %s.\r\n\r\n",
	    cfg.myhostname);
	switch (kind) {
	case QDSN_DELAYED: {
		long long hours = (long long)qmgr_message_delay(msg) / 3600;
		long long days = cfg.maximal_queue_lifetime / 86400;
		str_appendf(s, "This is only a notice, not an error: your "
		    "message has not been\r\ndelivered yet after %lld "
		    "hour%s to the recipients below. The mail\r\nsystem "
		    "keeps trying", hours, hours == 1 ? "" : "s");
		if (days > 0)
			str_appendf(s, " until the message is %lld day%s old",
			    days, days == 1 ? "" : "s");
		str_append_cstr(s, ".\r\nYou do not need to send it "
		    "again.\r\n");
		attachment_text(s, headers_only, left_out, "your message");
		break;
	}
	case QDSN_DELIVERED:
	case QDSN_RELAYED:
		str_append_cstr(s, "Your message was delivered to the "
		    "recipients below, as you asked\r\nto be told.\r\n");
		attachment_text(s, headers_only, left_out, "your message");
		break;
	default:
		if (double_bounce) {
			str_append_cstr(s, "A delivery status notification "
			    "could not be delivered. Its report\r\nis "
			    "below.\r\n");
			attachment_text(s, headers_only, left_out,
			    "the notification");
		} else {
			str_append_cstr(s, "Your message could not be "
			    "delivered to the recipients below,\r\nfor the "
			    "reasons given with each.\r\n");
			attachment_text(s, headers_only, left_out,
			    "your message");
		}
		break;
	}
	for (size_t k = 0; k < count; k++) {
		const struct queue_rcpt *r = &msg->env.rcpts[rcpts[k].index];
		str_append_cstr(s, "<");
		append_address(s, r->address, utf8);
		str_append_cstr(s, ">: ");
		append_clean(s, rcpts[k].text ? rcpts[k].text : "", DIAG_MAX);
		str_append_cstr(s, "\r\n");
	}
}

static void report_fields(struct str *s, const struct qmsg *msg,
    enum qdsn_kind kind, const struct qdsn_rcpt *rcpts, size_t count)
{
	const struct queue_envelope *env = &msg->env;
	bool utf8 = env->smtputf8;
	const char *addr_type = utf8 ? "utf-8" : "rfc822";
	time_t now = time(NULL);

	/* Per-message fields, RFC 3464 2.2. */
	str_appendf(s, "Reporting-MTA: dns; %s\r\n", cfg.myhostname);
	str_appendf(s, "X-Postern-Queue-ID: %s\r\n", msg->id);
	str_appendf(s, "X-Postern-Sender: %s; ", addr_type);
	append_address(s, env->sender, utf8);
	str_append_cstr(s, "\r\n");
	if (env->envid != NULL) {
		str_append_cstr(s, "Original-Envelope-Id: ");
		append_clean(s, env->envid, 100);
		str_append_cstr(s, "\r\n");
	}
	str_append_cstr(s, "Arrival-Date: ");
	rfc5322_date(s, (time_t)env->arrival_sec);
	str_append_cstr(s, "\r\n");

	/* Per-recipient fields, RFC 3464 2.3. */
	for (size_t k = 0; k < count; k++) {
		const struct queue_rcpt *r = &env->rcpts[rcpts[k].index];
		const char *text = rcpts[k].text ? rcpts[k].text : "";
		str_append_cstr(s, "\r\n");
		str_appendf(s, "Final-Recipient: %s; ", addr_type);
		append_address(s, r->address, utf8);
		str_append_cstr(s, "\r\n");
		if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL) {
			/* Stored as "type;address", xtext-decoded. */
			str_append_cstr(s, "Original-Recipient: ");
			append_address(s, r->orcpt, utf8);
			str_append_cstr(s, "\r\n");
		}
		str_appendf(s, "Action: %s\r\n", action_of(kind));
		str_append_cstr(s, "Status: ");
		append_clean(s, rcpts[k].dsn ? rcpts[k].dsn :
		    kind == QDSN_DELAYED ? "4.0.0" :
		    kind == QDSN_FAILED ? "5.0.0" : "2.0.0", 16);
		str_append_cstr(s, "\r\n");
		if (rcpts[k].remote_mta != NULL) {
			str_append_cstr(s, "Remote-MTA: dns; ");
			append_clean(s, rcpts[k].remote_mta, 255);
			str_append_cstr(s, "\r\n");
		}
		if (*text != '\0') {
			str_appendf(s, "Diagnostic-Code: %s; ",
			    is_smtp_reply(text) ? "smtp" : "X-Postern");
			append_clean(s, text, DIAG_MAX);
			str_append_cstr(s, "\r\n");
		}
		str_append_cstr(s, "Last-Attempt-Date: ");
		rfc5322_date(s, now);
		str_append_cstr(s, "\r\n");
		if (kind == QDSN_DELAYED) {
			str_append_cstr(s, "Will-Retry-Until: ");
			rfc5322_date(s, (time_t)(env->arrival_sec +
			    cfg.maximal_queue_lifetime));
			str_append_cstr(s, "\r\n");
		}
	}
}

/* Headers returned in a headers-only report are cut beyond this. */
#define HEADERS_MAX (1024 * 1024)

/*
 * Copy the original content (or its header section) into the writer.
 * The stored content has CRLF line ends and is not dot-stuffed.
 */
static bool copy_original(struct queue_writer *w, const struct qmsg *msg,
    bool headers_only)
{
	char path[4096];
	char buf[65536];
	off_t off = msg->env.content_offset;
	off_t left = msg->env.content_length;
	bool ok = true, last_crlf = false;
	struct str head;

	queue_path(path, sizeof(path), cfg.queue_directory, QUEUE_ACTIVE,
	    msg->id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	str_init(&head, HEADERS_MAX + sizeof(buf));
	while (left > 0) {
		size_t want = left > (off_t)sizeof(buf) ? sizeof(buf) :
		    (size_t)left;
		ssize_t n = pread(fd, buf, want, off);
		if (n <= 0) {
			ok = false;
			break;
		}
		off += n;
		left -= n;
		if (!headers_only) {
			ok = queue_writer_write(w, buf, (size_t)n);
			if (!ok)
				break;
			last_crlf = n >= 2 && buf[n - 2] == '\r' &&
			    buf[n - 1] == '\n';
			continue;
		}
		/* Collect the header section: up to the first empty line. */
		size_t from = head.len > 3 ? head.len - 3 : 0;
		str_append(&head, buf, (size_t)n);
		if (head.len >= 2 && memcmp(head.data, "\r\n", 2) == 0) {
			str_truncate(&head, 0);	/* no header at all */
			break;
		}
		char *end = memmem(head.data + from, head.len - from,
		    "\r\n\r\n", 4);
		if (end != NULL) {
			str_truncate(&head, (size_t)(end - head.data) + 2);
			break;
		}
		if (head.len >= HEADERS_MAX) {
			/* Cut at the last complete line. */
			char *nl = memrchr(head.data, '\n', head.len);
			str_truncate(&head, nl ? (size_t)(nl - head.data) + 1 :
			    0);
			break;
		}
	}
	close(fd);
	if (headers_only && ok && head.len > 0) {
		ok = queue_writer_write(w, head.data, head.len);
		last_crlf = head.len >= 2 && head.data[head.len - 1] == '\n';
	} else if (headers_only) {
		last_crlf = true;
	}
	str_free(&head);
	if (ok && !last_crlf && msg->env.content_length > 0)
		ok = queue_writer_write(w, "\r\n", 2);
	return ok;
}

bool qmgr_bounce_write(struct qmsg *msg, enum qdsn_kind kind,
    const struct qdsn_rcpt *rcpts, size_t count)
{
	const struct queue_envelope *env = &msg->env;
	bool to_sender = env->kind == QUEUE_KIND_MAIL && env->sender[0] != '\0';
	bool double_bounce = false;
	char err[256];

	if (count == 0)
		return true;
	if (!to_sender) {
		if (kind != QDSN_FAILED)
			return true;	/* nobody to tell */
		if (env->kind == QUEUE_KIND_DOUBLE) {
			log_info("%s: undeliverable postmaster notification "
			    "discarded", msg->id);
			return true;
		}
		double_bounce = true;
	}

	bool headers_only = kind != QDSN_FAILED ||
	    body_left_out(env, kind) != NULL;
	bool eight_bit = env->body == QUEUE_BODY_8BITMIME ||
	    (env->smtputf8 && headers_only);

	struct queue_envelope out;
	queue_envelope_init(&out);
	out.sender = xstrdup("");
	out.body = eight_bit ? QUEUE_BODY_8BITMIME : QUEUE_BODY_7BIT;
	out.smtputf8 = env->smtputf8 && !double_bounce;
	out.requiretls = env->requiretls;	/* RFC 8689 5 */
	out.kind = double_bounce ? QUEUE_KIND_DOUBLE :
	    kind == QDSN_FAILED ? QUEUE_KIND_BOUNCE :
	    kind == QDSN_DELAYED ? QUEUE_KIND_DELAY : QUEUE_KIND_SUCCESS;
	queue_envelope_set_attr(&out, "origin", "qmgr");
	queue_envelope_add_rcpt(&out, double_bounce ? "postmaster" :
	    env->sender, 0, NULL);

	struct queue_writer *w = queue_writer_open(cfg.queue_directory,
	    QUEUE_INCOMING, &out, err, sizeof(err));
	if (w == NULL) {
		log_warning("%s: cannot create notification: %s", msg->id, err);
		queue_envelope_free(&out);
		return false;
	}

	struct str s;
	struct timeval tv;
	char boundary[128];
	bool utf8 = env->smtputf8;

	str_init(&s, STR_NO_MAX);
	gettimeofday(&tv, NULL);
	snprintf(boundary, sizeof(boundary), "%s.%lld.%06ld/%s", msg->id,
	    (long long)tv.tv_sec, (long)tv.tv_usec, cfg.myhostname);

	/* RFC 5322 3.6 header fields; RFC 3834 Auto-Submitted. */
	str_append_cstr(&s, "Date: ");
	rfc5322_date(&s, tv.tv_sec);
	str_appendf(&s, "\r\nFrom: MAILER-DAEMON@%s (Mail Delivery System)\r\n",
	    cfg.myhostname);
	str_appendf(&s, "Subject: %s\r\n", subject_of(kind, double_bounce));
	if (double_bounce) {
		str_append_cstr(&s, "To: postmaster\r\n");
	} else {
		str_append_cstr(&s, "To: <");
		append_address(&s, env->sender, utf8);
		str_append_cstr(&s, ">\r\n");
	}
	str_append_cstr(&s, "Auto-Submitted: auto-replied\r\n");
	str_appendf(&s, "Message-ID: <%s.%s@%s>\r\n", out.id, msg->id,
	    cfg.myhostname);
	str_append_cstr(&s, "MIME-Version: 1.0\r\n");
	str_appendf(&s, "Content-Type: multipart/report; report-type=%s;\r\n"
	    "\tboundary=\"%s\"\r\n", utf8 ? "global-delivery-status" :
	    "delivery-status", boundary);
	str_appendf(&s, "Content-Transfer-Encoding: %s\r\n\r\n",
	    eight_bit ? "8bit" : "7bit");
	str_append_cstr(&s, "This is a MIME-encapsulated message.\r\n\r\n");

	str_appendf(&s, "--%s\r\n", boundary);
	str_append_cstr(&s, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	human_text(&s, msg, kind, double_bounce, headers_only, rcpts, count);
	str_append_cstr(&s, "\r\n");

	str_appendf(&s, "--%s\r\n", boundary);
	str_appendf(&s, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/%s\r\n\r\n", utf8 ?
	    "global-delivery-status" : "delivery-status");
	report_fields(&s, msg, kind, rcpts, count);
	str_append_cstr(&s, "\r\n");

	str_appendf(&s, "--%s\r\n", boundary);
	str_appendf(&s, "Content-Description: %s%s\r\n",
	    kind == QDSN_FAILED ? "Undelivered Message" : "Message",
	    headers_only ? " Headers" : "");
	str_appendf(&s, "Content-Type: %s\r\n", headers_only ?
	    (utf8 ? "message/global-headers" : "text/rfc822-headers") :
	    (utf8 ? "message/global" : "message/rfc822"));
	if (eight_bit)
		str_append_cstr(&s, "Content-Transfer-Encoding: 8bit\r\n");
	str_append_cstr(&s, "\r\n");

	bool ok = queue_writer_write(w, s.data, s.len) &&
	    copy_original(w, msg, headers_only);
	str_clear(&s);
	str_appendf(&s, "\r\n--%s--\r\n", boundary);
	ok = ok && queue_writer_write(w, s.data, s.len);
	str_free(&s);

	char newid[QUEUE_ID_SIZE];
	memcpy(newid, out.id, sizeof(newid));
	if (!ok) {
		log_warning("%s: cannot write notification: %m", msg->id);
		queue_writer_abort(w);
	} else if (!queue_writer_commit(w, err, sizeof(err))) {
		log_warning("%s: cannot commit notification: %s", msg->id, err);
		ok = false;
	} else {
		qmgr_metrics_notice();
		log_info("%s: %s %s notification: %s%s", msg->id,
		    double_bounce ? "postmaster" : "sender",
		    kind == QDSN_FAILED ? "non-delivery" :
		    kind == QDSN_DELAYED ? "delay" : "delivery status", newid,
		    out.requiretls ? " (REQUIRETLS, headers only)" : "");
		qmgr_scan_wakeup();
	}
	queue_envelope_free(&out);
	return ok;
}
