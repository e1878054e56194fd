/*
 * sendmail_queue.c - one local submission into maildrop/ (sendmail and
 * sendmail -bs): the envelope, our Received header, the caller's header
 * fields but the blind ones, the fields RFC 5322 3.6 requires and the
 * message lacks, then the body; committed (fsync'd, renamed) before
 * success is reported.
 *
 * Trusts the envelope it is given (already checked); the message's header
 * fields are the caller's and are copied, not interpreted, except the
 * names it looks for.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "rfc5322.h"
#include "sendmail.h"
#include "str.h"

/* Headers a submission must not carry on (Postfix's message_drop_headers):
 * Bcc would show the blind copies to everyone; Return-Path is added at
 * final delivery (RFC 5321 4.4). */
static bool header_dropped(const struct str *msg, const struct header *hd)
{
	static const char *const names[] = { "Bcc", "Resent-Bcc",
	    "Return-Path", "Content-Length" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (sendmail_header_is(msg, hd, names[i]))
			return true;
	return false;
}

static void append_phrase(struct str *out, const char *name)
{
	bool plain = true;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(" !#$%&'*+-/=?^_`{|}~",
		    *p))
			plain = false;
	if (plain) {
		str_append_cstr(out, name);
		return;
	}
	str_append_char(out, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (*p == '"' || *p == '\\')
			str_append_char(out, '\\');
		str_append_char(out, *p);
	}
	str_append_char(out, '"');
}

static bool has_8bit(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] & 0x80)
			return true;
	return false;
}

/* ---- submission ---- */

/* See sendmail.h. */
bool sendmail_enqueue(const struct local_submission *m, const struct str *msg,
    char *id, size_t idsize, char *err, size_t errsize)
{
	struct queue_envelope env;
	struct headers h;
	struct str head;
	char date[64];
	uid_t uid = getuid();

	sendmail_split_headers(msg, &h);
	queue_envelope_init(&env);
	env.sender = xstrdup(m->sender);
	env.ret = m->ret;
	env.envid = m->envid ? xstrdup(m->envid) : NULL;
	env.body = m->body >= 0 ? (enum queue_body)m->body :
	    has_8bit(msg->data, msg->len) ? QUEUE_BODY_8BITMIME :
	    QUEUE_BODY_7BIT;
	/* UTF-8 in the envelope or the headers needs SMTPUTF8 (RFC 6531,
	 * 6532); Postfix autodetects it the same way for sendmail. */
	env.smtputf8 = m->smtputf8 || m->rcpts->utf8 ||
	    has_8bit(msg->data, h.body_start);
	queue_envelope_set_attr(&env, "origin", "local");
	char uidtext[32];
	snprintf(uidtext, sizeof(uidtext), "%ld", (long)uid);
	queue_envelope_set_attr(&env, "uid", uidtext);
	for (size_t i = 0; i < m->rcpts->count; i++)
		queue_envelope_add_rcpt(&env, m->rcpts->items[i], m->notify,
		    NULL);

	struct queue_writer *w = queue_writer_open(cfg.queue_directory,
	    QUEUE_MAILDROP, &env, err, errsize);
	if (w == NULL) {
		free(h.items);
		queue_envelope_free(&env);
		return false;
	}

	/* Our trace header first, then the caller's headers, then those
	 * RFC 5322 3.6 requires and the message lacks. */
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	rfc5322_date(now, date, sizeof(date));
	str_init(&head, STR_NO_MAX);
	str_append_cstr(&head, "Received: ");
	if (m->helo != NULL)
		str_appendf(&head, "from %s ", sendmail_esc(m->helo));
	str_appendf(&head, "by %s (postern, from userid %ld)\r\n\t",
	    cfg.myhostname, (long)uid);
	if (m->protocol != NULL)
		str_appendf(&head, "with %s ", m->protocol);
	str_appendf(&head, "id %s; %s\r\n", env.id, date);
	bool have_from = false, have_date = false, have_msgid = false;
	for (size_t i = 0; i < h.count; i++) {
		const struct header *hd = &h.items[i];
		have_from |= sendmail_header_is(msg, hd, "From");
		have_date |= sendmail_header_is(msg, hd, "Date");
		have_msgid |= sendmail_header_is(msg, hd, "Message-ID");
		if (!header_dropped(msg, hd))
			str_append(&head, msg->data + hd->start, hd->len);
	}
	if (!have_date)
		str_appendf(&head, "Date: %s\r\n", date);
	if (!have_msgid) {
		char stamp[32];
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		str_appendf(&head, "Message-ID: <%s.%s@%s>\r\n", stamp, env.id,
		    cfg.myhostname);
	}
	if (!have_from) {
		const char *from = m->sender[0] ? m->sender : "MAILER-DAEMON";
		str_append_cstr(&head, "From: ");
		if (m->fullname && m->fullname[0]) {
			append_phrase(&head, m->fullname);
			str_appendf(&head, " <%s>\r\n", from);
		} else {
			str_appendf(&head, "%s\r\n", from);
		}
	}
	str_append_cstr(&head, "\r\n");

	const char *body = msg->data ? msg->data + h.body_start : "";
	size_t body_len = msg->len - h.body_start;
	bool ok = queue_writer_write(w, head.data, head.len) &&
	    queue_writer_write(w, body, body_len);
	if (!ok) {
		snprintf(err, errsize, "write: %s", strerror(errno));
		queue_writer_abort(w);
	} else {
		off_t size = queue_writer_content_length(w);
		ok = queue_writer_commit(w, err, errsize);
		if (ok) {
			log_info("%s: uid=%ld from=<%s> size=%lld nrcpt=%zu",
			    env.id, (long)uid, sendmail_esc(m->sender), (long long)size,
			    m->rcpts->count);
			strlcpy(id, env.id, idsize);
			ipc_wake_qmgr(cfg.run_directory);
		}
	}
	str_free(&head);
	free(h.items);
	queue_envelope_free(&env);	/* frees its sender */
	return ok;
}

