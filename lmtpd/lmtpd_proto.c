/*
 * lmtpd_proto.c - one LMTP session (RFC 2033): lmtpd's command table for
 * the server core (mail/smtp_server.c) and its commands, from the
 * greeting to QUIT.
 *
 * Trusts nothing the client sends. The core bounds command lines, refuses
 * NUL and bare CR/LF, checks the command order and counts errors as smtpd
 * does; MAIL and RCPT paths go through the one grammar of esmtp.c and
 * addr.c; DATA and BDAT through the core's readers, with smtpd's bare
 * CR/LF rule and the hop count. Replies are our own words paired with
 * RFC 3463 codes; the only client-derived text in them is a recipient
 * address that the path parser accepted.
 *
 * LMTP's one real difference from SMTP: after the message (DATA or BDAT
 * LAST) there is one reply per accepted recipient, in RCPT order, and
 * each recipient's copy succeeds or fails on its own (RFC 2033 4.2,
 * lmtpd_deliver.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <bsd/string.h>

#include "addr.h"
#include "bio.h"
#include "cfg.h"
#include "esmtp.h"
#include "lmtpd.h"
#include "lmtpd_metrics.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "str.h"

/*
 * The parameters MAIL and RCPT accept. CHUNKING is announced, but not
 * BINARYMIME: a Maildir stores text with LF line ends, which binary data
 * would not survive, so BODY=BINARYMIME is refused (555) like any
 * parameter we do not offer.
 */
#define LMTP_EXTENSIONS (ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME | \
	ESMTP_EXT_SMTPUTF8)

static struct lmtpd_session *session_of(struct smtp_server *srv)
{
	return SMTP_SERVER_SESSION(srv, struct lmtpd_session);
}

const char *lmtpd_txn_id(const struct lmtpd_session *s)
{
	return s->in_txn ? s->txn.id : "NOQUEUE";
}

const char *lmtpd_printable_address(const char *address)
{
	for (const char *p = address; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return "recipient";
	return address;
}

/* ---- transaction ---- */

static void txn_free(struct lmtpd_session *s)
{
	if (!s->in_txn)
		return;
	free(s->txn.sender);
	esmtp_mail_params_free(&s->txn.params);
	for (size_t i = 0; i < s->txn.nrcpts; i++) {
		free(s->txn.rcpts[i].address);
		free(s->txn.rcpts[i].maildir);
	}
	free(s->txn.rcpts);
	memset(&s->txn, 0, sizeof(s->txn));
	lmtpd_spool_reset(&s->spool);
	s->in_txn = false;
}

/* End the transaction; the session goes back to READY. */
static void txn_end(struct lmtpd_session *s)
{
	txn_free(s);
	if (s->srv.state != SMTP_SERVER_CONNECTED &&
	    s->srv.state != SMTP_SERVER_CLOSING)
		smtp_server_enter_state(&s->srv, SMTP_SERVER_READY);
}

/* Keep a LHLO name only if it looks like a domain or address literal. */
static char *sanitise_lhlo(const char *arg)
{
	size_t n = strcspn(arg, " ");
	if (n == 0 || n > 255)
		return xstrdup("unknown");
	for (size_t i = 0; i < n; i++) {
		char c = arg[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == '_' || c == ':' || c == '[' || c == ']'))
			return xstrdup("unknown");
	}
	return xstrndup(arg, n);
}

/* ---- LHLO ---- */

static void cmd_lhlo(struct smtp_server *srv, const char *arg)
{
	struct lmtpd_session *s = session_of(srv);
	if (*arg == '\0') {
		smtp_server_reply(srv, 501, "5.5.4", "Syntax: LHLO hostname");
		return;
	}
	/* RFC 5321 4.1.4: a new greeting resets the transaction. */
	txn_free(s);
	free(s->lhlo);
	s->lhlo = sanitise_lhlo(arg);
	smtp_server_enter_state(srv, SMTP_SERVER_READY);
	smtp_server_ehlo_reply(srv, LMTP_EXTENSIONS | ESMTP_EXT_CHUNKING,
	    lmtpd_settings.size_limit);
}

/* ---- MAIL ---- */

static void cmd_mail(struct smtp_server *srv, const char *arg)
{
	struct lmtpd_session *s = session_of(srv);
	const char *params, *why, *enh;
	char text[300];
	struct addr sender;
	struct esmtp_mail_params mp;
	int code;

	if (!esmtp_parse_path_arg(arg, false, ADDR_ALLOW_NULL |
	    ADDR_ALLOW_NO_BRACKETS | ADDR_ALLOW_UTF8, &sender, &params, &code,
	    &enh, text, sizeof(text))) {
		smtp_server_reply(srv, code, enh, "%s", text);
		return;
	}
	if (!esmtp_parse_mail_params(params, LMTP_EXTENSIONS, &mp, &code,
	    &enh, &why)) {
		addr_free(&sender);
		smtp_server_reply(srv, code, enh, "%s", why);
		return;
	}
	if (sender.has_utf8 && !mp.smtputf8) {
		/* RFC 6531 3.4: UTF-8 in a path needs the SMTPUTF8 parameter. */
		addr_free(&sender);
		esmtp_mail_params_free(&mp);
		smtp_server_reply(srv, 553, "5.6.7", "Error: non-ASCII sender "
		    "address needs SMTPUTF8");
		return;
	}
	if (lmtpd_settings.size_limit > 0 &&
	    mp.size > lmtpd_settings.size_limit) {
		/* RFC 1870 6.1 */
		addr_free(&sender);
		esmtp_mail_params_free(&mp);
		smtp_server_reply(srv, 552, "5.3.4", "Message size exceeds "
		    "fixed limit");
		return;
	}

	s->in_txn = true;
	queue_id_new(s->txn.id);
	s->txn.sender = xstrdup(sender.address);
	s->txn.params = mp;
	smtp_message_init(&s->txn.msg);
	gettimeofday(&s->txn.start, NULL);
	addr_free(&sender);
	smtp_server_enter_state(srv, SMTP_SERVER_MAIL);
	smtp_server_reply(srv, 250, "2.1.0", "Ok");
}

/* ---- RCPT ---- */

/*
 * Is there room for one more message in this Maildir? Checked at RCPT so
 * that a full mailbox is refused before the data is sent.
 */
static bool rcpt_over_quota(const char *maildir)
{
	if (lmtpd_settings.quota <= 0)
		return false;
	long long used = lmtpd_maildir_usage(maildir);
	return used >= lmtpd_settings.quota;
}

static void cmd_rcpt(struct smtp_server *srv, const char *arg)
{
	struct lmtpd_session *s = session_of(srv);
	const char *params, *why, *enh;
	char text[300];
	struct addr rcpt;
	struct esmtp_rcpt_params rp;
	char *maildir = NULL;
	int code;

	unsigned flags = ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_NO_BRACKETS |
	    (s->txn.params.smtputf8 ? ADDR_ALLOW_UTF8 : 0);
	if (!esmtp_parse_path_arg(arg, true, flags, &rcpt, &params, &code,
	    &enh, text, sizeof(text))) {
		smtp_server_reply(srv, code, enh, "%s", text);
		return;
	}
	if (!esmtp_parse_rcpt_params(params, LMTP_EXTENSIONS, &rp, &code,
	    &enh, &why)) {
		addr_free(&rcpt);
		smtp_server_reply(srv, code, enh, "%s", why);
		return;
	}
	esmtp_rcpt_params_free(&rp);

	const char *shown = lmtpd_printable_address(rcpt.address);
	if ((long long)s->txn.nrcpts >= lmtpd_settings.recipient_limit) {
		/* RFC 5321 4.5.3.1.10: the rest in another transaction;
		 * not an error, as in smtpd. */
		smtp_server_reply(srv, 452, "4.5.3", "Error: too many "
		    "recipients");
		srv->error_excused = true;
		addr_free(&rcpt);
		return;
	}

	switch (lmtpd_rcpt_lookup(rcpt.address, &maildir)) {
	case LMTPD_RCPT_FOUND:
		break;
	case LMTPD_RCPT_UNKNOWN:
		log_info("%s: reject: RCPT from %s: 550 5.1.1 <%s>: "
		    "mailbox unknown", lmtpd_txn_id(s), s->peer, shown);
		smtp_server_reply(srv, 550, "5.1.1", "<%s>: Mailbox unknown",
		    shown);
		addr_free(&rcpt);
		return;
	case LMTPD_RCPT_TEMPFAIL:
		log_warning("%s: RCPT from %s: <%s>: mailbox_maps lookup "
		    "failed", lmtpd_txn_id(s), s->peer, shown);
		smtp_server_reply(srv, 451, "4.3.0", "<%s>: Mailbox lookup "
		    "failed, try again later", shown);
		addr_free(&rcpt);
		return;
	case LMTPD_RCPT_BADMAP:
		smtp_server_reply(srv, 451, "4.3.5", "<%s>: Mailbox "
		    "misconfigured, try again later", shown);
		addr_free(&rcpt);
		return;
	}

	if (rcpt_over_quota(maildir)) {
		bool temp = lmtpd_settings.quota_tempfail;
		log_info("%s: reject: RCPT from %s: %s <%s>: mailbox full",
		    lmtpd_txn_id(s), s->peer, temp ? "452 4.2.2" : "552 5.2.2",
		    shown);
		smtp_server_reply(srv, temp ? 452 : 552, temp ? "4.2.2" :
		    "5.2.2", "<%s>: Mailbox full", shown);
		free(maildir);
		addr_free(&rcpt);
		return;
	}

	if (s->txn.nrcpts == s->txn.cap) {
		s->txn.cap = s->txn.cap ? s->txn.cap * 2 : 8;
		s->txn.rcpts = xreallocarray(s->txn.rcpts, s->txn.cap,
		    sizeof(*s->txn.rcpts));
	}
	s->txn.rcpts[s->txn.nrcpts].address = xstrdup(rcpt.address);
	s->txn.rcpts[s->txn.nrcpts].maildir = maildir;
	s->txn.nrcpts++;
	addr_free(&rcpt);
	smtp_server_enter_state(srv, SMTP_SERVER_RCPT);
	smtp_server_reply(srv, 250, "2.1.5", "Ok");
}

/* ---- DATA and BDAT ---- */

/* The core's sink: lines into the spool, stored with LF ends. */
static void put_line(void *ctx, const char *p, size_t n, bool line_end)
{
	lmtpd_spool_put_line(ctx, p, n, line_end);
}

static void cmd_data(struct smtp_server *srv, const char *arg)
{
	struct lmtpd_session *s = session_of(srv);
	if (*arg != '\0') {
		smtp_server_reply(srv, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (s->txn.nrcpts == 0) {
		/* RFC 2033 4.2: no successful RCPT, DATA must fail. */
		smtp_server_reply(srv, 503, "5.5.1", "Error: no valid "
		    "recipients");
		return;
	}
	esmtp_reply(&s->bio, 354, NULL, true,
	    "End data with <CR><LF>.<CR><LF>");
	if (!smtp_server_flush(srv)) {
		smtp_server_io_failed(srv, BIO_ERROR);
		txn_free(s);
		return;
	}
	struct smtp_message_sink sink = { put_line, &s->spool };
	enum bio_status st = smtp_server_read_data(srv, &s->txn.msg, &sink);
	if (st != BIO_OK) {
		smtp_server_io_failed(srv, st);
		txn_free(s);
		return;
	}
	lmtpd_deliver_all(s);
	/* The replies per recipient are delivery results, not a refusal
	 * of the command: no error is counted for them. */
	srv->last_code = 250;
	smtp_server_message_done(srv);
	txn_end(s);
}

static void cmd_bdat(struct smtp_server *srv, const char *arg)
{
	struct lmtpd_session *s = session_of(srv);
	unsigned long long size;
	bool last;

	if (!esmtp_parse_bdat(arg, &size, &last)) {
		/* Without a valid size we cannot tell where the chunk ends:
		 * hang up rather than read its bytes as commands, with
		 * smtpd's (and Postfix's) 521 (RFC 7504 3). */
		smtp_server_reply(srv, 521, "5.5.4", "Syntax: BDAT count "
		    "[LAST]");
		log_info("bad BDAT syntax from %s: disconnecting", s->peer);
		smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
		return;
	}
	bool in_sequence = srv->state == SMTP_SERVER_MAIL ||
	    srv->state == SMTP_SERVER_RCPT || srv->state == SMTP_SERVER_BDAT;
	bool keep = in_sequence && s->txn.nrcpts > 0;
	struct smtp_message_sink sink = { put_line, &s->spool };
	/* RFC 3030 2: the chunk is read in every case. */
	enum bio_status st = smtp_server_read_chunk(srv, &s->txn.msg, size,
	    keep ? &sink : NULL);
	if (st != BIO_OK) {
		smtp_server_io_failed(srv, st);
		txn_free(s);
		return;
	}
	if (srv->state == SMTP_SERVER_CONNECTED) {
		smtp_server_reply(srv, 503, "5.5.1", "Error: send LHLO first");
		return;
	}
	if (!in_sequence) {
		smtp_server_reply(srv, 503, "5.5.1", "Error: need MAIL "
		    "command");
		return;
	}
	if (s->txn.nrcpts == 0) {
		/* RFC 2033 4.2, as for DATA. */
		smtp_server_reply(srv, 503, "5.5.1", "Error: no valid "
		    "recipients");
		if (last)
			txn_end(s);
		return;
	}
	if (!last) {
		smtp_server_enter_state(srv, SMTP_SERVER_BDAT);
		smtp_server_reply(srv, 250, "2.0.0", "Ok: %llu octets "
		    "received", size);
		return;
	}
	smtp_server_end_chunks(&s->txn.msg, &sink);
	lmtpd_deliver_all(s);
	/* The replies per recipient are delivery results, not a refusal
	 * of the command: no error is counted for them. */
	srv->last_code = 250;
	smtp_server_message_done(srv);
	txn_end(s);
}

/* ---- RSET, NOOP, QUIT, VRFY, HELP ---- */

static void cmd_rset(struct smtp_server *srv, const char *arg)
{
	struct lmtpd_session *s = session_of(srv);
	if (*arg != '\0') {
		smtp_server_reply(srv, 501, "5.5.4", "Syntax: RSET");
		return;
	}
	txn_end(s);
	smtp_server_reply(srv, 250, "2.0.0", "Ok");
}

static void cmd_quit(struct smtp_server *srv, const char *arg)
{
	smtp_server_reply(srv, 221, "2.0.0", "Bye");
	txn_free(session_of(srv));
	smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
}

static void cmd_help(struct smtp_server *srv, const char *arg)
{
	smtp_server_reply(srv, 214, "2.0.0", "Commands: LHLO MAIL RCPT DATA "
	    "BDAT RSET NOOP QUIT VRFY HELP");
}

/*
 * The one place that names the client, for the Received header
 * (lmtpd_deliver.c) and every log line: the peer's address, or on a Unix
 * socket "unix uid=N" with the uid the kernel vouches for (SO_PEERCRED,
 * mail/daemon.h), so mail injected by a local user can be traced to it.
 */
static void describe_peer(const struct daemon_conn *conn, char *out,
    size_t size)
{
	if (conn->peer_is_unix && conn->peer_uid != (uid_t)-1)
		snprintf(out, size, "unix uid=%lu", (unsigned long)conn->peer_uid);
	else if (conn->peer_is_unix)
		strlcpy(out, "unix", size);
	else
		snprintf(out, size, "%s", conn->peer_addr);
}

#define ANY SMTP_SERVER_ANY_STATE
#define IN(st) SMTP_SERVER_IN(SMTP_SERVER_##st)

/* RFC 2033 4.1 and RFC 5321 4.1.4: where each verb may come. */
static const struct smtp_server_command lmtpd_commands[] = {
	{ "LHLO", cmd_lhlo, SMTP_SERVER_NOT_BDAT,
	    SMTP_CMD_JUNK | SMTP_CMD_LMTP_ONLY },
	{ "HELO", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_SMTP_ONLY },
	{ "EHLO", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_SMTP_ONLY },
	{ "MAIL", cmd_mail, IN(READY), SMTP_CMD_LONG_LINE },
	{ "RCPT", cmd_rcpt, IN(MAIL) | IN(RCPT), SMTP_CMD_LONG_LINE },
	{ "DATA", cmd_data, IN(MAIL) | IN(RCPT), 0 },
	/* BDAT checks its state itself: the chunk is read in any case. */
	{ "BDAT", cmd_bdat, ANY, 0 },
	{ "RSET", cmd_rset, ANY, SMTP_CMD_JUNK },
	{ "NOOP", smtp_server_cmd_noop, ANY, SMTP_CMD_JUNK },
	{ "QUIT", cmd_quit, ANY, SMTP_CMD_NO_ERROR },
	{ "VRFY", smtp_server_cmd_vrfy, SMTP_SERVER_NOT_BDAT, SMTP_CMD_JUNK },
	{ "HELP", cmd_help, ANY, SMTP_CMD_JUNK },
	{ "EXPN", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "ETRN", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "STARTTLS", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "AUTH", NULL, ANY, SMTP_CMD_NOT_OFFERED },
};

#define NCOMMANDS (sizeof(lmtpd_commands) / sizeof(lmtpd_commands[0]))

void lmtpd_session_run(struct daemon_conn *conn)
{
	struct lmtpd_session s;

	memset(&s, 0, sizeof(s));
	s.conn = conn;
	describe_peer(conn, s.peer, sizeof(s.peer));
	bio_init(&s.bio, conn->fd, lmtpd_settings.timeout_ms);
	/*
	 * A TCP client's socket stays blocking: a command is waited for in
	 * read(2) under SO_RCVTIMEO, not in poll(2) then read(2). On a Unix
	 * socket (deliver's) that wait would be woken once more per message,
	 * when the client reads our replies: poll(2) there (bio.h).
	 */
	if (!conn->peer_is_unix)
		bio_timed_reads(&s.bio);
	else if (!bio_poll_waits(&s.bio))
		log_warning("%s: cannot make the socket non-blocking: %m; "
		    "replies are written without a deadline", s.peer);
	lmtpd_spool_init(&s.spool, lmtpd_settings.size_limit);
	smtp_server_init(&s.srv, &s, lmtpd_commands, NCOMMANDS,
	    SMTP_SERVER_LMTP, &s.bio, &s.bio, lmtpd_settings.hostname, s.peer);
	log_info("connect from %s", s.peer);
	lmtpd_metrics_connect();

	esmtp_reply(&s.bio, 220, NULL, true, "%s LMTP postern",
	    lmtpd_settings.hostname);
	smtp_server_run(&s.srv);

	struct str line;
	str_init(&line, STR_NO_MAX);
	str_appendf(&line, "disconnect from %s messages=%lu", s.peer,
	    s.messages);
	smtp_server_append_counts(&s.srv, &line);
	log_info("%s", str_cstr(&line));
	str_free(&line);
	txn_free(&s);
	smtp_server_free(&s.srv);
	lmtpd_spool_free(&s.spool);
	free(s.lhlo);
	bio_free(&s.bio);
}
