/*
 * smtpd_proto.c - the SMTP session: smtpd's command table for the server
 * core (mail/smtp_server.c), the commands of the envelope (EHLO, HELO,
 * MAIL, RCPT, RSET, NOOP, QUIT, VRFY, HELP) and the session's log lines.
 *
 * Every command line is untrusted: the core bounds it, refuses NUL and
 * bare CR/LF, checks the state and counts errors; the arguments are
 * parsed by the strict grammar of mail/esmtp.c and mail/addr.c. Replies
 * are our own text; client text reaches a reply only after it passed the
 * address parser, and reaches the log only through log_escape.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <strings.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "smtpd.h"
#include "smtpd_metrics.h"
#include "smtpd_milter.h"

static void cmd_ehlo(struct smtp_server *srv, const char *arg);
static void cmd_helo(struct smtp_server *srv, const char *arg);
/*
 * Room in the queue file system for one more message, checked at MAIL so
 * that a client learns it before it uploads the message, as Postfix's
 * queue_minfree: the space must stay above queue_minfree plus the
 * announced SIZE, and above 1.5 times message_size_limit; a file system
 * out of inodes has no room either. When it cannot be told, the answer
 * is yes, and the queue file's write says the rest.
 *
 * The answer of statvfs() is kept for a second while the file system has
 * more than twice the room asked for and more than QUEUE_ROOM_INODES
 * inodes: a busy worker then asks once a second, not at every MAIL, and
 * close to the limit it asks every time, so the refusal comes as soon as
 * it would have without the cache.
 */
#define QUEUE_ROOM_TTL_NS 1000000000LL
#define QUEUE_ROOM_INODES 10000ULL

static bool queue_has_room(long long announced)
{
	static struct statvfs sv;
	static long long checked_ns = -1;
	static unsigned long long checked_need;
	struct timespec now;
	long long now_ns;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	now_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
	unsigned long long minfree = cfg.queue_minfree > 0 ?
	    (unsigned long long)cfg.queue_minfree : 0;
	unsigned long long limit = cfg.message_size_limit > 0 ?
	    (unsigned long long)cfg.message_size_limit : 0;
	unsigned long long need = minfree + limit + limit / 2 +
	    (announced > 0 ? (unsigned long long)announced : 0);
	if (checked_ns < 0 || now_ns - checked_ns >= QUEUE_ROOM_TTL_NS ||
	    need > checked_need) {
		if (statvfs(cfg.queue_directory, &sv) < 0) {
			checked_ns = -1;
			return true;
		}
		unsigned long long have =
		    (unsigned long long)sv.f_bavail * sv.f_frsize;
		bool roomy = have / 2 > need && (sv.f_files == 0 ||
		    sv.f_favail > QUEUE_ROOM_INODES);
		/* Kept only while roomy, for requests up to what it was
		 * checked for; else asked again next time. */
		checked_ns = roomy ? now_ns : -1;
		checked_need = need;
	}
	unsigned long long free_bytes =
	    (unsigned long long)sv.f_bavail * sv.f_frsize;
	if (announced > 0 &&
	    free_bytes < minfree + (unsigned long long)announced)
		return false;
	if (free_bytes < minfree || free_bytes < limit + limit / 2)
		return false;
	/* f_files is 0 on file systems without an inode limit. */
	if (sv.f_files > 0 && sv.f_favail == 0)
		return false;
	return true;
}

static void cmd_mail(struct smtp_server *srv, const char *arg);
static void cmd_rcpt(struct smtp_server *srv, const char *arg);
static void cmd_rset(struct smtp_server *srv, const char *arg);
static void cmd_quit(struct smtp_server *srv, const char *arg);
static void cmd_help(struct smtp_server *srv, const char *arg);

#define ANY SMTP_SERVER_ANY_STATE
#define IN(st) SMTP_SERVER_IN(SMTP_SERVER_##st)

/* RFC 5321 4.1.4: where each verb may come; the core says the rest. */
static const struct smtp_server_command smtpd_commands[] = {
	{ "EHLO", cmd_ehlo, ANY, SMTP_CMD_JUNK },
	{ "HELO", cmd_helo, ANY, SMTP_CMD_JUNK },
	{ "MAIL", cmd_mail, IN(READY), SMTP_CMD_LONG_LINE },
	{ "RCPT", cmd_rcpt, IN(MAIL) | IN(RCPT), SMTP_CMD_LONG_LINE },
	{ "DATA", smtpd_cmd_data, IN(MAIL) | IN(RCPT), 0 },
	/* BDAT checks its state itself: the chunk is read in any case. */
	{ "BDAT", smtpd_cmd_bdat, ANY, 0 },
	{ "RSET", cmd_rset, ANY, SMTP_CMD_JUNK },
	{ "NOOP", smtp_server_cmd_noop, ANY, SMTP_CMD_JUNK },
	{ "QUIT", cmd_quit, ANY, SMTP_CMD_NO_ERROR },
	{ "VRFY", smtp_server_cmd_vrfy, ANY, SMTP_CMD_JUNK },
	{ "HELP", cmd_help, ANY, SMTP_CMD_JUNK },
	{ "STARTTLS", smtpd_cmd_starttls, ANY, SMTP_CMD_JUNK },
	{ "AUTH", smtpd_cmd_auth_row, ANY, SMTP_CMD_LONG_LINE },
	{ "EXPN", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "ETRN", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "TURN", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "SEND", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "SOML", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "SAML", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
};

#define NCOMMANDS (sizeof(smtpd_commands) / sizeof(smtpd_commands[0]))

static struct smtpd_session *session_of(struct smtp_server *srv)
{
	return SMTP_SERVER_SESSION(srv, struct smtpd_session);
}

void smtpd_enter_state(struct smtpd_session *s, enum smtp_server_state st)
{
	smtp_server_enter_state(&s->srv, st);
}

void smtpd_reply(struct smtpd_session *s, int code, const char *enhanced,
    const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	const char *text = esmtp_reply_format(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	smtp_server_reply_text(&s->srv, code, enhanced, text);
}

bool smtpd_flush(struct smtpd_session *s)
{
	return smtp_server_flush(&s->srv);
}

void smtpd_cmd_auth_row(struct smtp_server *srv, const char *arg)
{
	smtpd_cmd_auth(session_of(srv), arg);
}

const char *smtpd_protocol_name(const struct smtpd_session *s)
{
	/* RFC 3848 and RFC 6531 3.7.3 keywords for the Received header. */
	bool utf8 = s->txn != NULL && s->txn->params.smtputf8;
	bool tls = s->tls_active, auth = s->auth_user != NULL;
	if (!s->esmtp)
		return "SMTP";
	if (utf8)
		return tls && auth ? "UTF8SMTPSA" : tls ? "UTF8SMTPS" :
		    auth ? "UTF8SMTPA" : "UTF8SMTP";
	return tls && auth ? "ESMTPSA" : tls ? "ESMTPS" : auth ? "ESMTPA" :
	    "ESMTP";
}

void smtpd_io_failed(struct smtpd_session *s, enum bio_status st)
{
	smtp_server_io_failed(&s->srv, st);
}

void smtpd_txn_free(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	if (t == NULL)
		return;
	smtpd_message_discard(t);
	smtpd_authcheck_free(t->auth);
	free(t->sender);
	esmtp_mail_params_free(&t->params);
	for (size_t i = 0; i < t->nrcpts; i++) {
		free(t->rcpts[i].address);
		free(t->rcpts[i].orcpt);
	}
	free(t->rcpts);
	free(t);
	s->txn = NULL;
}

/* End the transaction; the session goes back to READY. */
static void txn_reset(struct smtpd_session *s)
{
	if (s->txn != NULL)
		smtpd_milter_abort(s);
	bio_set_deadline(&s->bio, -1);	/* smtpd_data_deadline (BDAT) */
	smtpd_txn_free(s);
	if (s->srv.state != SMTP_SERVER_CONNECTED &&
	    s->srv.state != SMTP_SERVER_CLOSING)
		smtpd_enter_state(s, SMTP_SERVER_READY);
}

void smtpd_log_reject(struct smtpd_session *s, const char *stage,
    const char *recipient, int code, const char *enhanced, const char *text)
{
	char from[300], to[300], helo[300];
	const char *sender = s->txn ? s->txn->sender : NULL;

	log_escape(helo, sizeof(helo), s->helo ? s->helo : "",
	    s->helo ? strlen(s->helo) : 0);
	if (sender != NULL)
		log_escape(from, sizeof(from), sender, strlen(sender));
	if (recipient != NULL)
		log_escape(to, sizeof(to), recipient, strlen(recipient));
	log_info("%s: reject: %s from %s: %d %s %s;%s%s%s%s%s%s proto=%s "
	    "helo=<%s>", s->txn && s->txn->queue_id[0] ? s->txn->queue_id :
	    "NOQUEUE", stage, s->client_log, code, enhanced, text,
	    sender ? " from=<" : "", sender ? from : "", sender ? ">" : "",
	    recipient ? " to=<" : "", recipient ? to : "",
	    recipient ? ">" : "", smtpd_protocol_name(s), helo);
	smtpd_metrics_reject(s, stage, code, enhanced, text);
}

/* ---- HELO and EHLO ---- */

/* Common part of HELO and EHLO: validate, remember, reset (RFC 5321
 * 4.1.4: EHLO in the middle of a session is an implicit RSET). */
static bool greet(struct smtpd_session *s, const char *verb, const char *arg)
{
	const char *why;
	size_t len = strlen(arg);
	while (len > 0 && arg[len - 1] == ' ')
		len--;
	char *name = xstrndup(arg, len);
	if (len == 0) {
		smtpd_reply(s, 501, "5.5.4", "Syntax: %s hostname", verb);
		free(name);
		return false;
	}
	if (!smtpd_check_helo(name, &why)) {
		smtpd_reply(s, 501, "5.5.2", "Syntax: %s hostname: %s", verb,
		    why);
		free(name);
		return false;
	}
	txn_reset(s);
	free(s->helo);
	s->helo = name;
	smtpd_enter_state(s, SMTP_SERVER_READY);
	smtpd_milter_helo(s);
	return true;
}

/* The extensions whose MAIL/RCPT parameters this session accepts. */
static unsigned session_extensions(const struct smtpd_session *s)
{
	if (!s->esmtp)
		return 0;
	return ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME | ESMTP_EXT_SMTPUTF8 |
	    ESMTP_EXT_DSN | ESMTP_EXT_CHUNKING |
	    (smtpd_auth_offered(s) ? ESMTP_EXT_AUTH : 0) |
	    (s->tls_active ? ESMTP_EXT_REQUIRETLS : 0);
}

static void cmd_ehlo(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = session_of(srv);
	if (!greet(s, "EHLO", arg))
		return;
	s->esmtp = true;
	/*
	 * doc/architecture.md, "Safety rules": never a password in clear
	 * text, so AUTH only over TLS (smtpd_auth_offered).
	 */
	smtp_server_ehlo_reply(srv, ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME |
	    ESMTP_EXT_DSN | ESMTP_EXT_SMTPUTF8 | ESMTP_EXT_CHUNKING |
	    (smtpd_tls_available() && !s->tls_active ?
	    SMTP_SERVER_OFFER_STARTTLS : 0) |
	    (smtpd_auth_offered(s) ? SMTP_SERVER_OFFER_AUTH : 0) |
	    (s->tls_active ? ESMTP_EXT_REQUIRETLS : 0),
	    cfg.message_size_limit);
}

static void cmd_helo(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = session_of(srv);
	if (!greet(s, "HELO", arg))
		return;
	s->esmtp = false;
	/* RFC 2034: the HELO/EHLO reply carries no enhanced code. */
	smtp_server_reply(srv, 250, NULL, "%s", cfg.myhostname);
}

/* ---- MAIL and RCPT ---- */

/*
 * The filters' word on MAIL (smtpd_milter.c): true when they refused
 * it (the reply is queued and logged). A DISCARD marks the coming
 * transaction.
 */
static bool milter_refused_mail(struct smtpd_session *s, const char *sender,
    const char *params)
{
	struct milter_verdict v;

	smtpd_milter_mail(s, sender, params, &v);
	if (v.action == MILTER_VERDICT_DISCARD)
		s->milter_discard_next = true;
	if (v.action != MILTER_VERDICT_REJECT &&
	    v.action != MILTER_VERDICT_TEMPFAIL)
		return false;
	smtpd_milter_reply(s, &v);
	smtpd_milter_log(s, "MAIL", sender, NULL, &v);
	smtpd_milter_abort(s);
	return true;
}

static void cmd_mail(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = session_of(srv);
	struct addr a;
	const char *params, *why, *enh, *reason;
	char text[300];
	int code, check_code;
	struct esmtp_mail_params mp;
	struct smtpd_authcheck *auth = NULL;

	/* Like Postfix with strict_rfc821_envelopes = no: a path without
	 * <> is tolerated (RFC 5321 4.1.2 requires them; old clients and
	 * scripts omit them). */
	unsigned flags = ADDR_ALLOW_NULL | ADDR_ALLOW_NO_BRACKETS |
	    (s->esmtp ? ADDR_ALLOW_UTF8 : 0);
	bool parsed = esmtp_parse_path_arg(arg, false, flags, &a, &params,
	    &code, &enh, text, sizeof(text));
	if (!parsed && strcmp(enh, "5.5.4") == 0) {
		/* No path at all is a command syntax error, as Postfix. */
		smtpd_reply(s, code, enh, "%s", text);
		return;
	}
	if ((check_code = smtpd_check_mail(s, &enh, &reason)) != 250) {
		if (parsed)
			addr_free(&a);
		smtpd_reply(s, check_code, enh, "%s", reason);
		snprintf(text, sizeof(text), "%s", reason);
		smtpd_log_reject(s, "MAIL", NULL, check_code, enh, text);
		return;
	}
	if (!parsed) {
		smtpd_reply(s, code, "5.1.7", "%s", text);
		return;
	}
	if (!esmtp_parse_mail_params(params, session_extensions(s), &mp,
	    &code, &enh, &why)) {
		smtpd_reply(s, code, enh, "%s", why);
		addr_free(&a);
		return;
	}
	if (a.has_utf8 && !mp.smtputf8) {
		/* RFC 6531 3.5 */
		smtpd_reply(s, 553, "5.6.7", "Error: non-ASCII sender address "
		    "needs SMTPUTF8");
	} else if (cfg.message_size_limit > 0 &&
	    mp.size > cfg.message_size_limit) {
		/* RFC 1870 6.1 */
		smtpd_reply(s, 552, "5.3.4", "Message size exceeds fixed "
		    "limit");
	} else if ((check_code = smtpd_sender_check(s, a.address, &enh,
	    text, sizeof(text))) != 250) {
		/* smtpd_sender.c: the sender's owner, as Postfix's
		 * reject_sender_login_mismatch */
		smtpd_reply(s, check_code, enh, "%s", text);
		smtpd_log_reject(s, "MAIL", NULL, check_code, enh, text);
	} else if ((check_code = smtpd_limits_event(s, false, text,
	    sizeof(text))) != 250) {
		/* smtpd_client_message_rate_limit */
		smtpd_reply(s, check_code, "4.7.1", "%s", text);
		smtpd_log_reject(s, "MAIL", NULL, check_code, "4.7.1", text);
	} else if (!queue_has_room(mp.size)) {
		/* RFC 1870 6.2, RFC 3463 X.3.1: try again later. */
		log_warning("NOQUEUE: reject: MAIL from %s: 452 4.3.1 "
		    "insufficient system storage in %s", s->client_log,
		    cfg.queue_directory);
		smtpd_reply(s, 452, "4.3.1", "Error: insufficient system "
		    "storage");
	} else if ((check_code = smtpd_authcheck_mail(s, a.address, &auth,
	    &enh, text, sizeof(text))) != 250) {
		/* smtpd_spf = enforce (smtpd_authcheck.c) */
		smtpd_reply(s, check_code, enh, "%s", text);
		smtpd_log_reject(s, "MAIL", NULL, check_code, enh, text);
	} else if (milter_refused_mail(s, a.address, params)) {
		smtpd_authcheck_free(auth);
	} else {
		struct smtpd_txn *t = xcalloc(1, sizeof(*t));
		t->auth = auth;
		t->milter_discard = s->milter_discard_next;
		s->milter_discard_next = false;
		t->sender = xstrdup(a.address);
		t->sender_utf8 = a.has_utf8;
		t->params = mp;
		s->txn = t;
		smtpd_enter_state(s, SMTP_SERVER_MAIL);
		smtpd_reply(s, 250, "2.1.0", "Ok");
		addr_free(&a);
		return;
	}
	esmtp_mail_params_free(&mp);
	addr_free(&a);
}

static bool rcpt_already_listed(const struct smtpd_txn *t, const char *address)
{
	for (size_t i = 0; i < t->nrcpts; i++)
		if (strcasecmp(t->rcpts[i].address, address) == 0)
			return true;
	return false;
}

static void cmd_rcpt(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = session_of(srv);
	struct smtpd_txn *t = s->txn;
	struct addr a;
	const char *end, *why, *enh, *reason;
	char text[300];
	int code;
	struct esmtp_rcpt_params params;

	unsigned flags = ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_NO_BRACKETS |
	    (s->esmtp ? ADDR_ALLOW_UTF8 : 0);
	if (!esmtp_parse_path_arg(arg, true, flags, &a, &end, &code, &enh,
	    text, sizeof(text))) {
		smtpd_reply(s, code, enh, "%s", text);
		if (strcmp(enh, "5.5.4") != 0)
			t->rcpt_rejected++;
		return;
	}
	if (!esmtp_parse_rcpt_params(end, session_extensions(s), &params,
	    &code, &enh, &why)) {
		smtpd_reply(s, code, enh, "%s", why);
		t->rcpt_rejected++;
		addr_free(&a);
		return;
	}
	if (a.has_utf8 && !t->params.smtputf8) {
		smtpd_reply(s, 553, "5.6.7", "Error: non-ASCII recipient "
		    "address needs SMTPUTF8");
		goto rejected;
	}
	if (cfg.smtpd_recipient_limit > 0 &&
	    t->nrcpts >= (size_t)cfg.smtpd_recipient_limit) {
		/*
		 * RFC 5321 4.5.3.1.10: the client sends the rest in another
		 * transaction. Not an error, so a client that pipelined more
		 * is not cut off, for SMTPD_RCPT_OVERSHOOT_MAX of them (as
		 * Postfix's smtpd_recipient_overshoot_limit).
		 */
		smtpd_reply(s, 452, "4.5.3", "Error: too many recipients");
		if (++t->rcpt_overshoot <= SMTPD_RCPT_OVERSHOOT_MAX)
			srv->error_excused = true;
		goto rejected;
	}
	bool about_client;
	code = smtpd_check_rcpt(s, a.address, &enh, &reason, &about_client);
	if (code != 250) {
		/* As Postfix: "<rcpt>: reason", but a blocklist's text alone. */
		char rtext[900];
		snprintf(rtext, sizeof(rtext), "%s%s%s%s", about_client ? "" :
		    "<", about_client ? "" : a.address, about_client ? "" :
		    ">: ", reason);
		smtpd_reply(s, code, enh, "%s", rtext);
		smtpd_log_reject(s, "RCPT", a.address, code, enh, rtext);
		goto rejected;
	}
	char limit_text[300];
	if ((code = smtpd_greylist_check(s, a.address, limit_text,
	    sizeof(limit_text))) != 250) {
		/* smtpd_greylist.c: come back later (RFC 5321 4.5.4.1) */
		char rtext[400];
		snprintf(rtext, sizeof(rtext), "<%s>: %s", a.address,
		    limit_text);
		smtpd_reply(s, code, "4.7.1", "%s", rtext);
		smtpd_log_reject(s, "RCPT", a.address, code, "4.7.1", rtext);
		goto rejected;
	}
	if ((code = smtpd_limits_event(s, true, limit_text,
	    sizeof(limit_text))) != 250) {
		/* smtpd_client_recipient_rate_limit */
		smtpd_reply(s, code, "4.7.1", "%s", limit_text);
		smtpd_log_reject(s, "RCPT", a.address, code, "4.7.1",
		    limit_text);
		goto rejected;
	}
	struct milter_verdict mv;
	smtpd_milter_rcpt(s, a.address, end, &mv);
	if (mv.action == MILTER_VERDICT_REJECT ||
	    mv.action == MILTER_VERDICT_TEMPFAIL) {
		smtpd_milter_reply(s, &mv);
		smtpd_milter_log(s, "RCPT", NULL, a.address, &mv);
		goto rejected;
	}
	if (mv.action == MILTER_VERDICT_DISCARD)
		t->milter_discard = true;
	if (!rcpt_already_listed(t, a.address)) {
		if (t->nrcpts == t->rcpt_cap) {
			t->rcpt_cap = t->rcpt_cap ? t->rcpt_cap * 2 : 8;
			t->rcpts = xreallocarray(t->rcpts, t->rcpt_cap,
			    sizeof(*t->rcpts));
		}
		struct smtpd_rcpt *r = &t->rcpts[t->nrcpts++];
		r->address = xstrdup(a.address);
		r->notify = params.notify;
		r->orcpt = params.orcpt;
		params.orcpt = NULL;
	}
	smtpd_enter_state(s, SMTP_SERVER_RCPT);
	smtpd_reply(s, 250, "2.1.5", "Ok");
	esmtp_rcpt_params_free(&params);
	addr_free(&a);
	return;
rejected:
	t->rcpt_rejected++;
	esmtp_rcpt_params_free(&params);
	addr_free(&a);
}

/* ---- the rest ---- */

static void cmd_rset(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = session_of(srv);
	if (*arg != '\0') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: RSET");
		return;
	}
	txn_reset(s);
	smtpd_reply(s, 250, "2.0.0", "Ok");
}

static void cmd_quit(struct smtp_server *srv, const char *arg)
{
	smtp_server_reply(srv, 221, "2.0.0", "Bye");
	smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
}

/* HELP names the commands this session can use now, as EHLO offers them. */
static void cmd_help(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = session_of(srv);
	bool starttls = smtpd_tls_available() && !s->tls_active;

	smtp_server_reply(srv, 214, "2.0.0", "Commands: EHLO HELO%s%s MAIL "
	    "RCPT DATA BDAT RSET NOOP QUIT VRFY HELP",
	    starttls ? " STARTTLS" : "", smtpd_auth_offered(s) ? " AUTH" : "");
}

/* ---- the session ---- */

static void log_disconnect(struct smtpd_session *s)
{
	struct str line;

	str_init(&line, STR_NO_MAX);
	str_appendf(&line, "disconnect from %s", s->client_log);
	smtp_server_append_counts(&s->srv, &line);
	log_info("%s", str_cstr(&line));
	str_free(&line);
}

/* RFC 5321 4.3.1: the greeting; no enhanced code (RFC 2034). screen
 * (mail/handoff.h) has greeted a client it passes on. */
static void send_greeting(struct smtpd_session *s)
{
	if (!s->conn->greeted)
		esmtp_reply(&s->bio, 220, NULL, true, "%s", cfg.smtpd_banner);
}

/*
 * Does the greeting go out before the connect line is written? In a plain
 * session, where nothing is asked before it (no anvil limit, no TLS
 * handshake, no milter's connect verdict): the client waits for the 220,
 * no one for the log line. The line stays the session's first either way.
 */
static bool greeting_first(const struct smtpd_session *s)
{
	return !s->implicit_tls && !smtpd_limits_wanted(s) &&
	    cfg.smtpd_milters.count == 0;
}

void smtpd_session_run(struct smtpd_session *s)
{
	bool greeted_first = greeting_first(s);
	if (greeted_first) {
		send_greeting(s);
		smtpd_flush(s);
	}
	log_info("connect from %s", s->client_log);
	smtpd_metrics_connect(s);
	/* smtpd_throttle.c: per-client limits counted by anvil. */
	char limit_text[400];
	if (smtpd_limits_connect(s, limit_text, sizeof(limit_text)) != 250) {
		esmtp_reply(&s->bio, 421, "4.7.0", true, "%s", limit_text);
		smtpd_flush(s);
		smtpd_limits_disconnect(s);
		log_disconnect(s);
		return;
	}
	/* RFC 8314 3.3: on smtps the handshake comes before the greeting. */
	if (s->implicit_tls && !smtpd_tls_handshake(s)) {
		smtpd_limits_disconnect(s);
		log_disconnect(s);
		return;
	}
	if (!greeted_first)
		send_greeting(s);
	smtpd_milter_connect(s);
	smtp_server_run(&s->srv);
	smtpd_txn_free(s);
	smtpd_authcheck_session_end(s);
	smtpd_milter_quit(s);
	smtpd_limits_disconnect(s);
	log_disconnect(s);
}

void smtpd_session_init(struct smtpd_session *s)
{
	smtp_server_init(&s->srv, s, smtpd_commands, NCOMMANDS, 0, &s->bio,
	    &s->bio, cfg.myhostname, s->client_log);
	/* smtpd_timeout bounds each command as a whole (smtp_server.c). */
	s->srv.command_deadline = true;
	smtpd_stress_session_begin(s);
}

void smtpd_txn_end(struct smtpd_session *s, bool queued)
{
	if (queued)
		smtp_server_message_done(&s->srv);
	txn_reset(s);
}
