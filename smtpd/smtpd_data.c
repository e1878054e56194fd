/*
 * smtpd_data.c - the message: DATA (RFC 5321 4.1.1.4, dot-stuffing 4.5.2)
 * and BDAT (RFC 3030), the Received header (RFC 5321 4.4, RFC 3848), and
 * queueing (doc/architecture.md, "The flow of one message").
 *
 * The message is written into the queue while it arrives: envelope first,
 * then our Received header, then the content (CRLF line ends, dots
 * unstuffed). Nothing is acknowledged before queue_writer_commit() has
 * fsync'd the file and its directory; any failure, a message over
 * message_size_limit, a bare CR or LF in the text, or a client that goes
 * away leaves no file behind.
 *
 * SMTP smuggling (CVE-2023-51764 class): only CRLF "." CRLF ends DATA.
 * bio.c never ends a line at a bare CR or LF, so <LF>.<LF>, <LF>.<CR><LF>
 * and <CR>.<CR> stay inside the message; and a message that holds a bare
 * CR or LF anywhere is refused whole, as Postfix's
 * smtpd_forbid_bare_newline does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "smtpd.h"

/* How much of a text line or a BDAT chunk is held in memory at once. */
#define SMTPD_DATA_PIECE 65536

/* ---- the queue file ---- */

/* RFC 5322 3.3 date-time for the Received header. */
static void rfc5322_date(char *out, size_t outsize, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	if (strftime(out, outsize, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		out[0] = '\0';
}

/*
 * RFC 5321 4.4: "from" the HELO name and the TCP-info, "by" us, "with"
 * the RFC 3848 protocol keyword, "id" the queue ID, "for" the recipient
 * when there is only one (naming several would disclose Bcc recipients).
 */
static bool write_received(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	char date[64];
	struct str h;

	rfc5322_date(date, sizeof(date), time(NULL));
	str_init(&h, STR_NO_MAX);
	str_appendf(&h, "Received: from %s (%s [%s%s])\r\n", s->helo,
	    s->client_name, strchr(s->client_addr, ':') ? "IPv6:" : "",
	    s->client_addr);
	/* As Postfix writes it, so that readers of headers know it. */
	if (s->tls_active && s->tls_info[0] != '\0')
		str_appendf(&h, "\t(using %s)\r\n", s->tls_info);
	str_appendf(&h, "\tby %s (postern) with %s id %s", cfg.myhostname,
	    smtpd_protocol_name(s), t->queue_id);
	if (t->nrcpts == 1)
		str_appendf(&h, "\r\n\tfor <%s>", t->rcpts[0].address);
	str_appendf(&h, "; %s\r\n", date);
	bool ok = queue_writer_write(t->writer, h.data, h.len);
	str_free(&h);
	return ok;
}

/* Create the queue file with the envelope; false on a local error. */
static bool open_message(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	struct queue_envelope *env = &t->env;
	struct timeval tv;
	char err[512];

	queue_envelope_init(env);
	gettimeofday(&tv, NULL);
	env->arrival_sec = tv.tv_sec;
	env->arrival_usec = tv.tv_usec;
	env->sender = xstrdup(t->sender);
	env->body = t->params.body;
	env->smtputf8 = t->params.smtputf8;
	env->envid = t->params.envid ? xstrdup(t->params.envid) : NULL;
	env->ret = t->params.ret;
	env->kind = QUEUE_KIND_MAIL;
	queue_envelope_set_attr(env, "client_name", s->client_name);
	queue_envelope_set_attr(env, "client_addr", s->client_addr);
	queue_envelope_set_attr(env, "helo", s->helo);
	queue_envelope_set_attr(env, "protocol", smtpd_protocol_name(s));
	if (s->auth_user != NULL)
		queue_envelope_set_attr(env, "sasl_user", s->auth_user);
	for (size_t i = 0; i < t->nrcpts; i++) {
		/* The queue's R record has no room for an ORCPT holding a
		 * space (a quoted local part); ORCPT is informational, so
		 * such a one is dropped rather than the message. */
		const char *orcpt = t->rcpts[i].orcpt;
		if (orcpt != NULL && strchr(orcpt, ' ') != NULL)
			orcpt = NULL;
		queue_envelope_add_rcpt(env, t->rcpts[i].address,
		    t->rcpts[i].notify, orcpt);
	}
	t->writer = queue_writer_open(cfg.queue_directory, QUEUE_INCOMING,
	    env, err, sizeof(err));
	if (t->writer == NULL) {
		log_warning("NOQUEUE: cannot create queue file: %s", err);
		queue_envelope_free(env);
		return false;
	}
	memcpy(t->queue_id, env->id, sizeof(t->queue_id));
	if (!write_received(s))
		t->write_failed = true;
	return true;
}

/* Throw the half-written message away; its queue ID is no more. */
static void discard_message(struct smtpd_txn *t)
{
	if (t->writer != NULL) {
		queue_writer_abort(t->writer);
		t->writer = NULL;
		queue_envelope_free(&t->env);
	}
	t->queue_id[0] = '\0';
}

/* Append content octets, enforcing message_size_limit. */
static void append_content(struct smtpd_txn *t, const char *p, size_t n,
    size_t counted)
{
	t->size += counted;
	if (cfg.message_size_limit > 0 &&
	    t->size > (unsigned long long)cfg.message_size_limit)
		t->too_big = true;
	if (t->too_big || t->write_failed || t->bare_newline ||
	    t->writer == NULL)
		return;
	if (!queue_writer_write(t->writer, p, n))
		t->write_failed = true;
}

/*
 * The end of a message: refuse it or commit it, reply, and end the
 * transaction. stage names it in the log ("END-OF-MESSAGE", "BDAT").
 */
static void finish_message(struct smtpd_session *s, const char *stage)
{
	struct smtpd_txn *t = s->txn;
	char err[512];
	int code = 0;
	const char *enh = NULL, *text = NULL;

	if (t->bare_newline) {
		code = 550;
		enh = "5.5.2";
		text = "Error: bare <CR> or <LF> received in message text";
	} else if (t->too_big) {
		/* RFC 1870 6.2 */
		code = 552;
		enh = "5.3.4";
		text = "Error: message file too big";
	} else if (t->write_failed) {
		code = 452;
		enh = "4.3.1";
		text = "Error: insufficient system storage";
		log_warning("%s: queue file write error: %m", t->queue_id);
	}
	if (code != 0) {
		discard_message(t);
		smtpd_reply(s, code, enh, "%s", text);
		smtpd_log_reject(s, stage, NULL, code, enh, text);
		smtpd_txn_end(s, false);
		return;
	}
	struct queue_writer *w = t->writer;
	t->writer = NULL;
	bool committed = queue_writer_commit(w, err, sizeof(err));
	queue_envelope_free(&t->env);
	if (!committed) {
		log_warning("%s: cannot queue message: %s", t->queue_id, err);
		smtpd_reply(s, 452, "4.3.1", "Error: insufficient system "
		    "storage");
		smtpd_txn_end(s, false);
		return;
	}
	/* On disk, with its directory entry: now it may be acknowledged. */
	if (s->auth_user != NULL) {
		char user[300];
		log_escape(user, sizeof(user), s->auth_user,
		    strlen(s->auth_user));
		log_info("%s: client=%s, sasl_method=%s, sasl_username=%s",
		    t->queue_id, s->client_log, s->auth_method, user);
	} else {
		log_info("%s: client=%s", t->queue_id, s->client_log);
	}
	smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", t->queue_id);
	smtpd_txn_end(s, true);
	/* No wake-up call: qmgr watches incoming/ for the rename. */
}

/* ---- DATA ---- */

/*
 * Read the text up to CRLF "." CRLF, unstuffing dots (RFC 5321 4.5.2).
 * Lines are taken in pieces of at most SMTPD_DATA_PIECE octets, so a long
 * line costs no memory; only the first piece of a line can be "." or
 * start with a stuffed dot.
 */
static enum bio_status receive_text(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	struct str piece;
	bool line_start = true;
	bool dot_pending = false;	/* a line began with "." not yet known
					 * to be the end or a stuffed dot */
	enum bio_status st;

	str_init(&piece, SMTPD_DATA_PIECE + 2);
	for (;;) {
		unsigned flags = 0;
		str_clear(&piece);
		st = bio_readline_part(&s->bio, &piece, SMTPD_DATA_PIECE,
		    &flags);
		if (st != BIO_OK)
			break;
		bool complete = !(flags & BIO_LINE_PARTIAL);
		const char *p = str_cstr(&piece);
		size_t n = piece.len;
		if (flags & (BIO_LINE_BARE_CR | BIO_LINE_BARE_LF))
			t->bare_newline = true;
		if (dot_pending) {
			dot_pending = false;
			if (complete && n == 0)
				break;		/* "." CRLF after all */
		} else if (line_start && n > 0 && p[0] == '.') {
			if (complete && n == 1)
				break;		/* end of data */
			if (n == 1) {
				dot_pending = true;
				line_start = false;
				continue;
			}
			p++;
			n--;
		}
		if (complete)
			str_append(&piece, "\r\n", 2);
		append_content(t, p, n + (complete ? 2 : 0),
		    n + (complete ? 2 : 0));
		line_start = complete;
	}
	str_free(&piece);
	if (st == BIO_OK && t->bare_newline)
		log_info("%s: warning: bare <CR> or <LF> in message text from "
		    "%s", t->queue_id[0] ? t->queue_id : "NOQUEUE",
		    s->client_log);
	return st;
}

void smtpd_cmd_data(struct smtpd_session *s, const char *arg)
{
	struct smtpd_txn *t = s->txn;

	if (*arg != '\0') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (s->state == SMTPD_STATE_CONNECTED) {
		smtpd_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	if (t == NULL) {
		smtpd_reply(s, 503, "5.5.1", "Error: need RCPT command");
		return;
	}
	if (s->state == SMTPD_STATE_BDAT) {
		/* RFC 3030 2: DATA and BDAT do not mix in one message. */
		smtpd_reply(s, 503, "5.5.1", "Error: DATA after BDAT");
		return;
	}
	if (t->nrcpts == 0) {
		/* RFC 2920 3.1: after pipelined RCPTs all failed. */
		smtpd_reply(s, t->rcpt_rejected ? 554 : 503, "5.5.1",
		    t->rcpt_rejected ? "Error: no valid recipients" :
		    "Error: need RCPT command");
		return;
	}
	if (!open_message(s)) {
		smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
		smtpd_txn_end(s, false);
		return;
	}
	esmtp_reply(&s->bio, 354, NULL, true, "End data with <CR><LF>.<CR><LF>");
	if (!smtpd_flush(s)) {
		discard_message(t);
		smtpd_io_failed(s, BIO_ERROR);
		return;
	}
	enum bio_status st = receive_text(s);
	if (st != BIO_OK) {
		/* Client gone or too slow mid-DATA: nothing is queued. */
		discard_message(t);
		smtpd_io_failed(s, st);
		return;
	}
	finish_message(s, "END-OF-MESSAGE");
}

/* ---- BDAT ---- */

/* Track CRLF pairs across chunk boundaries (RFC 3030 chunks are not
 * lines); a CR not followed by LF, or an LF without CR, is bare. */
static void scan_newlines(struct smtpd_txn *t, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (t->bdat_prev_cr && c != '\n')
			t->bare_newline = true;
		else if (!t->bdat_prev_cr && c == '\n')
			t->bare_newline = true;
		t->bdat_prev_crlf = t->bdat_prev_cr && c == '\n';
		t->bdat_prev_cr = c == '\r';
	}
}

/* "BDAT" SP chunk-size [ SP end-marker ] (RFC 3030 2). */
static bool parse_bdat(const char *arg, unsigned long long *size, bool *last)
{
	unsigned long long v = 0;
	const char *p = arg;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (p - arg >= 19)
			return false;
		v = v * 10 + (unsigned)(*p - '0');
	}
	*last = false;
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "LAST", 4) != 0)
			return false;
		p += 4;
		*last = true;
		while (*p == ' ')
			p++;
	}
	if (*p != '\0')
		return false;
	*size = v;
	return true;
}

/* Read a chunk and throw it away; false if the client is gone. */
static bool skip_chunk(struct smtpd_session *s, unsigned long long size)
{
	enum bio_status st = bio_skip_exact(&s->bio, (size_t)size);
	if (st != BIO_OK) {
		if (s->txn != NULL)
			discard_message(s->txn);
		smtpd_io_failed(s, st);
		return false;
	}
	return true;
}

/* Refuse a chunk: read it (to stay in step), reply, remember. */
static void refuse_chunk(struct smtpd_session *s, unsigned long long size,
    bool last, int code, const char *enh, const char *text)
{
	if (!skip_chunk(s, size))
		return;
	smtpd_reply(s, code, enh, "%s", text);
	struct smtpd_txn *t = s->txn;
	if (t == NULL)
		return;
	discard_message(t);
	if (last) {
		smtpd_txn_end(s, false);
	} else {
		/* Later chunks of this message get the same answer. */
		t->bdat_failed = true;
		t->bdat_fail_code = code;
		t->bdat_fail_enh = enh;
		t->bdat_fail_text = text;
		smtpd_enter_state(s, SMTPD_STATE_BDAT);
	}
}

void smtpd_cmd_bdat(struct smtpd_session *s, const char *arg)
{
	struct smtpd_txn *t = s->txn;
	unsigned long long size;
	bool last;

	if (!parse_bdat(arg, &size, &last)) {
		/* Without a size we cannot tell the chunk from commands:
		 * the only safe thing is to stop reading. 521 rather than
		 * 501 says the connection ends with this reply, as Postfix
		 * answers (RFC 7504 3: 521, the server accepts no more). */
		smtpd_reply(s, 521, "5.5.4", "Syntax: BDAT count [LAST]");
		log_info("bad BDAT syntax from %s: disconnecting",
		    s->client_log);
		smtpd_enter_state(s, SMTPD_STATE_CLOSING);
		return;
	}
	if (s->state == SMTPD_STATE_CONNECTED || !s->esmtp) {
		refuse_chunk(s, size, last, 503, "5.5.1",
		    "Error: send EHLO first");
		return;
	}
	if (t == NULL) {
		refuse_chunk(s, size, last, 503, "5.5.1",
		    "Error: need MAIL command");
		return;
	}
	if (t->nrcpts == 0) {
		refuse_chunk(s, size, last, t->rcpt_rejected ? 554 : 503,
		    "5.5.1", t->rcpt_rejected ? "Error: no valid recipients" :
		    "Error: need RCPT command");
		return;
	}
	if (t->bdat_failed) {
		refuse_chunk(s, size, last, t->bdat_fail_code,
		    t->bdat_fail_enh, t->bdat_fail_text);
		return;
	}
	if (cfg.message_size_limit > 0 &&
	    t->size + size > (unsigned long long)cfg.message_size_limit) {
		/* RFC 3030 2: the chunk is still read, then refused. */
		discard_message(t);
		smtpd_log_reject(s, "BDAT", NULL, 552, "5.3.4",
		    "Error: message file too big");
		refuse_chunk(s, size, last, 552, "5.3.4",
		    "Error: message file too big");
		return;
	}
	if (t->writer == NULL) {
		if (!open_message(s)) {
			refuse_chunk(s, size, last, 451, "4.3.0",
			    "Error: queue file write error");
			return;
		}
		t->bdat_prev_crlf = true;	/* an empty text ends well */
	}
	smtpd_enter_state(s, SMTPD_STATE_BDAT);

	struct str piece;
	str_init(&piece, SMTPD_DATA_PIECE);
	unsigned long long left = size;
	while (left > 0) {
		size_t want = left > SMTPD_DATA_PIECE ? SMTPD_DATA_PIECE :
		    (size_t)left;
		str_clear(&piece);
		enum bio_status st = bio_read_exact(&s->bio, &piece, want);
		if (st != BIO_OK) {
			str_free(&piece);
			discard_message(t);
			smtpd_io_failed(s, st);
			return;
		}
		scan_newlines(t, piece.data, piece.len);
		append_content(t, piece.data, piece.len, piece.len);
		left -= want;
	}
	str_free(&piece);

	if (!last) {
		smtpd_reply(s, 250, "2.0.0", "Ok: %llu octets received", size);
		return;
	}
	if (t->bdat_prev_cr)
		t->bare_newline = true;		/* ends in a bare CR */
	else if (!t->bdat_prev_crlf)
		append_content(t, "\r\n", 2, 0);	/* end the last line */
	if (t->bare_newline)
		log_info("%s: warning: bare <CR> or <LF> in message text from "
		    "%s", t->queue_id, s->client_log);
	finish_message(s, "BDAT");
}
