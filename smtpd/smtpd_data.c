/*
 * smtpd_data.c - the message: DATA (RFC 5321 4.1.1.4, dot-stuffing 4.5.2)
 * and BDAT (RFC 3030), the Received header (RFC 5321 4.4, RFC 3848), and
 * queueing (doc/architecture.md, "The flow of one message").
 *
 * The message is written into the queue while it arrives: envelope first,
 * then our Received header, then the content (CRLF line ends, dots
 * unstuffed), through a descriptor the door passed (smtpd_door.c: the
 * file is open for writing only). Nothing is acknowledged before the
 * door has renamed the file and fsync'd it and its directory; any failure, a message over
 * message_size_limit, a bare CR or LF in the text, too many hops, or a
 * client that goes away leaves no file behind.
 *
 * The text itself is read by the server core (mail/smtp_server_data.c),
 * which holds the smuggling rule (only CRLF "." CRLF ends DATA; a bare CR
 * or LF refuses the message) and counts the hops; this file decides what
 * to do with what it hands over.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "idna.h"
#include "log.h"
#include "mem.h"
#include "msgid.h"
#include "rfc5322.h"
#include "smtpd.h"
#include "smtpd_metrics.h"
#include "smtpd_milter.h"

/* ---- the queue file ---- */

/*
 * RFC 5321 4.4: "from" the HELO name and the TCP-info, "by" us, "with"
 * the RFC 3848 protocol keyword, "id" the queue ID, "for" the recipient
 * when there is only one (naming several would disclose Bcc recipients).
 */
void smtpd_received_header(struct smtpd_session *s, struct str *h)
{
	struct smtpd_txn *t = s->txn;
	char date[RFC5322_DATE_SIZE];

	rfc5322_date(time(NULL), date, sizeof(date));
	/* Pieces, not printf: once per message in every worker. */
	str_append_cstrs(h, "Received: from ", s->helo ? s->helo : "", " (",
	    s->client_name, strchr(s->client_addr, ':') ? " [IPv6:" : " [",
	    s->client_addr, "])\r\n", (char *)NULL);
	/* As Postfix writes it, so that readers of headers know it. */
	if (s->tls_active && s->tls_info[0] != '\0')
		str_append_cstrs(h, "\t(using ", s->tls_info, ")\r\n",
		    (char *)NULL);
	str_append_cstrs(h, "\tby ", cfg.myhostname, " (postern) with ",
	    smtpd_protocol_name(s), " id ", t->queue_id, (char *)NULL);
	if (t->nrcpts == 1) {
		/* A UTF-8 domain as A-labels: an ASCII header section can
		 * still go to a next hop without SMTPUTF8 (RFC 6531 3.2). */
		char *ascii = idna_address_to_ascii(t->rcpts[0].address);
		str_append_cstrs(h, "\r\n\tfor <", ascii ? ascii :
		    t->rcpts[0].address, ">", (char *)NULL);
		free(ascii);
	}
	str_append_cstrs(h, "; ", date, "\r\n", (char *)NULL);
}

static bool write_received(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	struct str h;

	str_init(&h, STR_NO_MAX);
	smtpd_received_header(s, &h);
	bool ok = queue_writer_write(t->writer, h.data, h.len);
	str_free(&h);
	return ok;
}

/* Create the queue file with the envelope; false on a local error. */
/*
 * Open the queue file for the message about to come. On failure the
 * reply to give: a full file system (no blocks or no inodes) is 452
 * 4.3.1, which tells the client to try later (RFC 3463 X.3.1); anything
 * else 451 4.3.0.
 */
struct open_failure {
	int code;
	const char *enhanced, *text;
};

static bool open_message(struct smtpd_session *s, struct open_failure *why)
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
	env->requiretls = t->params.requiretls;
	env->envid = t->params.envid ? xstrdup(t->params.envid) : NULL;
	env->ret = t->params.ret;
	env->kind = QUEUE_KIND_MAIL;
	queue_envelope_set_attr(env, "client_name", s->client_name);
	queue_envelope_set_attr(env, "client_addr", s->client_addr);
	queue_envelope_set_attr(env, "helo", s->helo);
	queue_envelope_set_attr(env, "protocol", smtpd_protocol_name(s));
	if (s->auth_user != NULL)
		queue_envelope_set_attr(env, "sasl_user", s->auth_user);
	/* Whose mail deliver may sign (deliver/deliver_dkim.c). */
	if (s->auth_user != NULL)
		queue_envelope_set_attr(env, "trust", "sasl");
	else if (s->client_trusted)
		queue_envelope_set_attr(env, "trust", "mynetworks");
	const char *auth_param = smtpd_sender_auth_param(s);
	if (auth_param != NULL)
		queue_envelope_set_attr(env, "auth", auth_param);
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
	/* Trusted clients' addresses through the canonical maps. */
	if (!smtpd_rewrite_envelope(s, env)) {
		queue_envelope_free(env);
		*why = (struct open_failure){ 451, "4.3.0",
		    "Error: address rewriting table unavailable" };
		return false;
	}
	/* The door makes the file; this process may only write it. */
	char id[QUEUE_ID_SIZE];
	off_t size;
	int fd = smtpd_door_open(id, &size);
	if (fd < 0) {
		bool full = errno == ENOSPC;
		log_warning("NOQUEUE: cannot create queue file: %s",
		    full ? "no space in the queue file system" :
		    "the door refused or is gone");
		queue_envelope_free(env);
		*why = full ? (struct open_failure){ 452, "4.3.1",
		    "Error: insufficient system storage" } :
		    (struct open_failure){ 451, "4.3.0",
		    "Error: queue file write error" };
		return false;
	}
	if (s->milter != NULL) {
		/* The filters speak first (smtpd_milter.c): the message is
		 * spooled aside, the queue file written at its end. */
		memcpy(t->queue_id, id, sizeof(t->queue_id));
		memcpy(env->id, id, sizeof(env->id));
		t->milter_msg = smtpd_milter_msg_new(fd);
		/* With the checks, smtpd_authcheck.c spools the text and
		 * hands the filters theirs at the end. */
		if (t->milter_msg == NULL || (t->auth != NULL &&
		    !smtpd_authcheck_spool(t->auth, -1))) {
			if (t->milter_msg != NULL)
				fd = -1;	/* the spool's now */
			smtpd_milter_msg_free(t->milter_msg);
			t->milter_msg = NULL;
			close(fd);
			smtpd_door_abort(id);
			queue_envelope_free(env);
			t->queue_id[0] = '\0';
			*why = (struct open_failure){ 451, "4.3.0",
			    "Error: queue file write error" };
			return false;
		}
		return true;
	}
	if (t->auth != NULL) {
		/* The checks speak first (smtpd_authcheck.c): the text is
		 * spooled, the queue file written at its end. */
		memcpy(t->queue_id, id, sizeof(t->queue_id));
		memcpy(env->id, id, sizeof(env->id));
		msgid_scan_init(&t->msgid);
		if (!smtpd_authcheck_spool(t->auth, fd)) {
			close(fd);
			smtpd_door_abort(id);
			queue_envelope_free(env);
			t->queue_id[0] = '\0';
			*why = (struct open_failure){ 451, "4.3.0",
			    "Error: queue file write error" };
			return false;
		}
		smtpd_rewrite_hold_start(s, t);
		return true;
	}
	t->writer = queue_writer_attach_sized(fd, id, size, env, err,
	    sizeof(err));
	if (t->writer == NULL) {
		bool full = errno == ENOSPC || errno == EDQUOT;
		log_warning("%s: cannot write queue file: %s", id, err);
		smtpd_door_abort(id);
		queue_envelope_free(env);
		*why = full ? (struct open_failure){ 452, "4.3.1",
		    "Error: insufficient system storage" } :
		    (struct open_failure){ 451, "4.3.0",
		    "Error: queue file write error" };
		return false;
	}
	memcpy(t->queue_id, env->id, sizeof(t->queue_id));
	msgid_scan_init(&t->msgid);
	if (!write_received(s))
		t->write_failed = true;
	smtpd_rewrite_hold_start(s, t);
	return true;
}

/* Throw the half-written message away; its queue ID is no more. */
void smtpd_message_discard(struct smtpd_txn *t)
{
	if (t->writer != NULL || t->milter_msg != NULL ||
	    smtpd_authcheck_spooling(t->auth)) {
		if (t->writer != NULL)
			queue_writer_abort(t->writer);	/* closes it */
		t->writer = NULL;
		smtpd_authcheck_spool_end(t->auth);	/* closes its */
		smtpd_milter_msg_free(t->milter_msg);	/* closes its */
		t->milter_msg = NULL;
		if (t->held_headers != NULL) {
			str_free(t->held_headers);
			free(t->held_headers);
			t->held_headers = NULL;
		}
		queue_envelope_free(&t->env);
		smtpd_door_abort(t->queue_id);	/* removes it */
	}
	t->queue_id[0] = '\0';
}

/*
 * The core's sink: one line or piece at a time into the queue file, with
 * CRLF line ends, until message_size_limit is passed or something failed
 * (the rest is still read, to answer once at the end).
 */
void smtpd_store_content(struct smtpd_txn *t, const char *p, size_t n)
{
	if (n == 0)
		return;
	/* The checks' spool (smtpd_authcheck.c) sees what is stored. */
	if (smtpd_authcheck_spooling(t->auth) && !t->too_big &&
	    !t->msg.bare_newline && !t->write_failed &&
	    !smtpd_authcheck_write(t->auth, p, n, false))
		t->write_failed = true;
	if (t->milter_msg != NULL) {
		/* With the checks, their spool feeds the filters' at the end
		 * (smtpd_authcheck_eom), without forged fields. */
		if (!t->too_big && !t->msg.bare_newline && t->auth == NULL &&
		    !smtpd_milter_msg_write(t->milter_msg, p, n))
			t->write_failed = true;
		return;
	}
	if (t->too_big || t->write_failed || t->msg.bare_newline ||
	    t->writer == NULL)
		return;
	if (!queue_writer_write(t->writer, p, n))
		t->write_failed = true;
}

static void put_line(struct smtpd_txn *t, const char *p, size_t n,
    bool line_end);

static void put_content(void *ctx, const char *p, size_t n, bool line_end)
{
	struct smtpd_txn *t = ctx;
	const char *crlf;

	/*
	 * A piece holding a CRLF is several body lines at once
	 * (msg.sink_takes_blocks). The Message-ID scan and a held header
	 * block look at lines: while either still does (a header section
	 * that ended without its empty line), they get one line at a time.
	 */
	while ((!t->msgid.done || t->held_headers != NULL) && line_end &&
	    (crlf = memmem(p, n, "\r\n", 2)) != NULL) {
		size_t first = (size_t)(crlf - p);
		unsigned long long size = t->msg.size;
		t->msg.size = size - (n - first);	/* as at that line's end */
		put_line(t, p, first, true);
		t->msg.size = size;
		p = crlf + 2;
		n -= first + 2;
	}
	put_line(t, p, n, line_end);
}

static void put_line(struct smtpd_txn *t, const char *p, size_t n,
    bool line_end)
{
	t->size = t->msg.size;
	msgid_scan_put(&t->msgid, p, n, line_end);
	if (cfg.message_size_limit > 0 &&
	    t->size > (unsigned long long)cfg.message_size_limit)
		t->too_big = true;
	/* A trusted client's header block waits for its rewriting. */
	if (t->held_headers != NULL && smtpd_rewrite_hold(t, p, n, line_end))
		return;
	smtpd_store_content(t, p, n);
	if (line_end)
		smtpd_store_content(t, "\r\n", 2);
}

static struct smtp_message_sink sink_of(struct smtpd_txn *t)
{
	return (struct smtp_message_sink){ .put = put_content, .ctx = t };
}

/* Postfix's line for a message a filter sent to hold/. */
static void milter_log_hold(struct smtpd_session *s, const char *stage,
    const char *reason)
{
	char why[300], from[300];
	struct smtpd_txn *t = s->txn;

	log_escape_line(why, sizeof(why), reason);
	log_escape(from, sizeof(from), t->sender, strlen(t->sender));
	log_info("%s: milter-hold: %s from %s: milter triggers HOLD action "
	    "(%s); from=<%s> proto=%s helo=<%s>", t->queue_id, stage,
	    s->client_log, why, from, smtpd_protocol_name(s),
	    s->helo ? s->helo : "");
}

/*
 * The filters' end of message (smtpd_milter.c): true when the queue
 * file is written and may be committed (into hold/ when *hold_reason
 * is set); otherwise the message is gone and the client answered.
 */
static bool milter_end_of_message(struct smtpd_session *s, const char *stage,
    const char **hold_reason)
{
	struct smtpd_txn *t = s->txn;
	struct milter_verdict v;
	bool ok;

	if (t->milter_discard) {
		memset(&v, 0, sizeof(v));
		v.action = MILTER_VERDICT_DISCARD;
		ok = false;
	} else {
		struct str received;
		str_init(&received, STR_NO_MAX);
		smtpd_received_header(s, &received);
		/* Our Authentication-Results field next to it. */
		str_append_cstr(&received, smtpd_authcheck_header(t->auth));
		ok = smtpd_milter_eom(s, str_cstr(&received), &v, hold_reason);
		str_free(&received);
	}
	if (ok)
		return true;
	char id[QUEUE_ID_SIZE];
	memcpy(id, t->queue_id, sizeof(id));
	smtpd_milter_log(s, stage, NULL, NULL, &v);
	smtpd_message_discard(t);
	if (v.action == MILTER_VERDICT_DISCARD)
		/* As Postfix: the client is told it was queued. */
		smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", id);
	else
		smtpd_milter_reply(s, &v);
	smtpd_txn_end(s, v.action == MILTER_VERDICT_DISCARD);
	return false;
}

/*
 * The lines of a message about to be committed, as Postfix's smtpd and
 * cleanup write them: "client=" (with the AUTH identity) and
 * "message-id=" ("<>" when the message has none).
 */
static void log_accepted(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	char msgid[MSGID_VALUE_MAX + 8];

	if (s->auth_user != NULL) {
		char user[300];
		log_escape(user, sizeof(user), s->auth_user,
		    strlen(s->auth_user));
		log_info("%s: client=%s, sasl_method=%s, sasl_username=%s",
		    t->queue_id, s->client_log, s->auth_method, user);
	} else {
		log_info("%s: client=%s", t->queue_id, s->client_log);
	}
	const char *v = msgid_scan_value(&t->msgid);
	log_escape(msgid, sizeof(msgid), v, strlen(v));
	log_info("%s: message-id=%s", t->queue_id, *v ? msgid : "<>");
}

/*
 * The end of a message: refuse it or commit it, reply, and end the
 * transaction. stage names it in the log ("END-OF-MESSAGE", "BDAT").
 */
static void finish_message(struct smtpd_session *s, const char *stage)
{
	struct smtpd_txn *t = s->txn;
	double end = smtpd_metrics_message_end();
	char err[512];
	int code = 0;
	const char *enh = NULL, *text = NULL;

	smtpd_rewrite_hold_end(t);	/* a message of header fields only */
	if (t->msg.bare_newline) {
		code = 550;
		enh = "5.5.2";
		text = "Error: bare <CR> or <LF> received in message text";
		log_info("%s: warning: bare <CR> or <LF> in message text from "
		    "%s", t->queue_id[0] ? t->queue_id : "NOQUEUE",
		    s->client_log);
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
	} else if (smtp_message_too_many_hops(&t->msg)) {
		/* RFC 5321 6.3: a loop; Postfix's hopcount_limit. */
		code = 554;
		enh = "5.4.6";
		text = "Error: Too many hops";
	}
	if (code != 0) {
		smtpd_message_discard(t);
		smtpd_reply(s, code, enh, "%s", text);
		smtpd_log_reject(s, stage, NULL, code, enh, text);
		smtpd_txn_end(s, false);
		return;
	}
	const char *hold_reason = NULL;
	char auth_why[300];
	enum smtpd_authcheck_action auth = t->auth == NULL ?
	    SMTPD_AUTHCHECK_ACCEPT : smtpd_authcheck_eom(s, auth_why,
	    sizeof(auth_why));
	if (auth == SMTPD_AUTHCHECK_REJECT || auth == SMTPD_AUTHCHECK_FAILED) {
		/* dmarc_enforce = reject (smtpd_authcheck.c), or a local
		 * error: nothing is queued. */
		bool reject = auth == SMTPD_AUTHCHECK_REJECT;
		if (reject)
			smtpd_authcheck_log(s);
		smtpd_message_discard(t);
		smtpd_reply(s, reject ? 550 : 452, reject ? "5.7.1" : "4.3.1",
		    "%s", reject ? auth_why :
		    "Error: insufficient system storage");
		if (reject)
			smtpd_log_reject(s, stage, NULL, 550, "5.7.1",
			    auth_why);
		smtpd_txn_end(s, false);
		return;
	}
	if (t->milter_msg != NULL && !milter_end_of_message(s, stage,
	    &hold_reason))
		return;
	bool auth_hold = auth == SMTPD_AUTHCHECK_HOLD && hold_reason == NULL;
	if (auth_hold)
		hold_reason = auth_why;
	/*
	 * This process completes the file; the door renames it, fsyncs it
	 * and incoming/ (queue_file_publish(), the order and the two fsyncs
	 * of queue_writer_commit()) and answers only then.
	 */
	struct queue_writer *w = t->writer;
	t->writer = NULL;
	/* The filters' spool is done with (the writer owns the file);
	 * the quarantine reason it holds is kept for the log. */
	char hold[300];
	if (hold_reason != NULL) {
		strlcpy(hold, hold_reason, sizeof(hold));
		hold_reason = hold;
	}
	smtpd_milter_msg_free(t->milter_msg);
	t->milter_msg = NULL;
	bool written = queue_writer_finish(w, err, sizeof(err));
	/*
	 * client= and message-id= go out before the commit: the rename
	 * wakes qmgr, whose "from=" line must come after them for log
	 * readers that pair the lines of one ID (pflogsumm counts a sender
	 * only then). A failed commit is logged right after them.
	 */
	if (written) {
		log_accepted(s);
		smtpd_authcheck_log(s);
	}
	bool committed = written && (hold_reason != NULL ?
	    smtpd_door_commit_hold(t->queue_id) :
	    smtpd_door_commit(t->queue_id));
	queue_envelope_free(&t->env);
	if (!written) {
		log_warning("%s: cannot queue message: %s", t->queue_id, err);
		smtpd_door_abort(t->queue_id);
		smtpd_reply(s, 452, "4.3.1", "Error: insufficient system "
		    "storage");
		smtpd_txn_end(s, false);
		return;
	}
	if (!committed) {
		/* The door logged why, or is gone. */
		log_warning("%s: cannot queue message: the door did not "
		    "commit it", t->queue_id);
		smtpd_reply(s, 451, "4.3.0", "Error: queue file write error");
		smtpd_txn_end(s, false);
		return;
	}
	/* On disk, with its directory entry: now it may be acknowledged. */
	if (auth_hold)
		log_info("%s: hold: %s from %s: %s", t->queue_id, stage,
		    s->client_log, hold_reason);
	else if (hold_reason != NULL)
		milter_log_hold(s, stage, hold_reason);
	smtpd_metrics_accepted(s, end);
	smtpd_reply(s, 250, "2.0.0", "Ok: queued as %s", t->queue_id);
	smtpd_txn_end(s, true);
	/* No wake-up call: qmgr watches incoming/ for the rename. */
}

/* ---- DATA ---- */

void smtpd_cmd_data(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = SMTP_SERVER_SESSION(srv,
	    struct smtpd_session);
	struct smtpd_txn *t = s->txn;

	if (*arg != '\0') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (t->nrcpts == 0) {
		/* RFC 2920 3.1: after pipelined RCPTs all failed. */
		smtpd_reply(s, t->rcpt_rejected ? 554 : 503, "5.5.1",
		    t->rcpt_rejected ? "Error: no valid recipients" :
		    "Error: need RCPT command");
		return;
	}
	struct open_failure why;
	if (!open_message(s, &why)) {
		smtpd_reply(s, why.code, why.enhanced, "%s", why.text);
		smtpd_txn_end(s, false);
		return;
	}
	struct milter_verdict mv;
	smtpd_milter_data(s, &mv);
	if (mv.action == MILTER_VERDICT_REJECT ||
	    mv.action == MILTER_VERDICT_TEMPFAIL) {
		smtpd_milter_log(s, "DATA", NULL, NULL, &mv);
		smtpd_message_discard(t);
		smtpd_milter_reply(s, &mv);
		smtpd_txn_end(s, false);
		return;
	}
	if (mv.action == MILTER_VERDICT_DISCARD)
		t->milter_discard = true;
	esmtp_reply(&s->bio, 354, NULL, true, "End data with <CR><LF>.<CR><LF>");
	/* The whole text, not only each line, within smtpd_data_deadline:
	 * a client that trickles a line every few seconds is cut. */
	if (cfg.smtpd_data_deadline > 0)
		bio_set_deadline(&s->bio, cfg.smtpd_data_deadline * 1000);
	if (!smtpd_flush(s)) {
		smtpd_message_discard(t);
		smtpd_io_failed(s, BIO_ERROR);
		return;
	}
	struct smtp_message_sink sink = sink_of(t);
	t->msg.sink_takes_blocks = true;	/* put_content() splits them */
	enum bio_status st = smtp_server_read_data(srv, &t->msg, &sink);
	bio_set_deadline(&s->bio, -1);
	if (st != BIO_OK) {
		/* Client gone or too slow mid-DATA: nothing is queued. */
		smtpd_message_discard(t);
		smtpd_io_failed(s, st);
		return;
	}
	finish_message(s, "END-OF-MESSAGE");
}

/* ---- BDAT ---- */

/* Read a chunk and throw it away; false if the client is gone. */
static bool skip_chunk(struct smtpd_session *s, unsigned long long size)
{
	enum bio_status st = smtp_server_read_chunk(&s->srv, NULL, size,
	    NULL);
	if (st != BIO_OK) {
		if (s->txn != NULL)
			smtpd_message_discard(s->txn);
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
	smtpd_message_discard(t);
	if (last) {
		smtpd_txn_end(s, false);
	} else {
		/* Later chunks of this message get the same answer. */
		t->bdat_failed = true;
		t->bdat_fail_code = code;
		t->bdat_fail_enh = enh;
		t->bdat_fail_text = text;
		smtpd_enter_state(s, SMTP_SERVER_BDAT);
	}
}

void smtpd_cmd_bdat(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = SMTP_SERVER_SESSION(srv,
	    struct smtpd_session);
	struct smtpd_txn *t = s->txn;
	unsigned long long size;
	bool last;

	if (!esmtp_parse_bdat(arg, &size, &last)) {
		/* Without a size we cannot tell the chunk from commands:
		 * the only safe thing is to stop reading. 521 rather than
		 * 501 says the connection ends with this reply, as Postfix
		 * answers (RFC 7504 3: 521, the server accepts no more). */
		smtpd_reply(s, 521, "5.5.4", "Syntax: BDAT count [LAST]");
		log_info("bad BDAT syntax from %s: disconnecting",
		    s->client_log);
		smtpd_enter_state(s, SMTP_SERVER_CLOSING);
		return;
	}
	if (srv->state == SMTP_SERVER_CONNECTED || !s->esmtp) {
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
	    t->msg.size + size > (unsigned long long)cfg.message_size_limit) {
		/* RFC 3030 2: the chunk is still read, then refused. */
		smtpd_message_discard(t);
		smtpd_log_reject(s, "BDAT", NULL, 552, "5.3.4",
		    "Error: message file too big");
		refuse_chunk(s, size, last, 552, "5.3.4",
		    "Error: message file too big");
		return;
	}
	struct open_failure why;
	if (t->writer == NULL && t->milter_msg == NULL &&
	    !smtpd_authcheck_spooling(t->auth)) {
		if (!open_message(s, &why)) {
			refuse_chunk(s, size, last, why.code, why.enhanced,
			    why.text);
			return;
		}
		struct milter_verdict mv;
		smtpd_milter_data(s, &mv);
		if (mv.action == MILTER_VERDICT_REJECT ||
		    mv.action == MILTER_VERDICT_TEMPFAIL) {
			smtpd_milter_log(s, "DATA", NULL, NULL, &mv);
			smtpd_message_discard(t);
			/* The chunk is read and refused with the reply's
			 * first line. */
			char enh[16] = "";
			int code = atoi(mv.reply);
			const char *text = strlen(mv.reply) > 4 ? mv.reply + 4 :
			    "";
			size_t e = strspn(text, "0123456789.");
			if (e >= 5 && e < sizeof(enh) && text[e] == ' ') {
				memcpy(enh, text, e);
				text += e + 1;
			}
			static char saved[512];
			snprintf(saved, sizeof(saved), "%.*s",
			    (int)strcspn(text, "\r"), text);
			static char saved_enh[16];
			strlcpy(saved_enh, enh[0] ? enh : "5.7.1",
			    sizeof(saved_enh));
			refuse_chunk(s, size, last, code, saved_enh, saved);
			return;
		}
		if (mv.action == MILTER_VERDICT_DISCARD)
			t->milter_discard = true;
	}
	/* BDAT: from the first chunk to the last, commands between them
	 * included (smtpd_txn_end lifts it). */
	if (!t->bdat_deadline && cfg.smtpd_data_deadline > 0) {
		/* It replaces the command's own deadline (smtp_server.c). */
		bio_set_deadline(&s->bio, cfg.smtpd_data_deadline * 1000);
		t->bdat_deadline = true;
	}
	smtpd_enter_state(s, SMTP_SERVER_BDAT);

	struct smtp_message_sink sink = sink_of(t);
	enum bio_status st = smtp_server_read_chunk(srv, &t->msg, size, &sink);
	if (st != BIO_OK) {
		smtpd_message_discard(t);
		smtpd_io_failed(s, st);
		return;
	}
	if (!last) {
		smtpd_reply(s, 250, "2.0.0", "Ok: %llu octets received", size);
		return;
	}
	smtp_server_end_chunks(&t->msg, &sink);
	finish_message(s, "BDAT");
}
