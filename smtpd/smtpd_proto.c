/*
 * smtpd_proto.c - the SMTP session: command table, state machine, the
 * commands of the envelope (EHLO, HELO, MAIL, RCPT, RSET, NOOP, QUIT,
 * VRFY, HELP), replies, limits and the session's log lines.
 *
 * Every command line is untrusted: it is bounded (512 octets), must end in
 * CRLF (a bare CR or LF is never a line end, bio.c), must not hold NUL,
 * and is parsed by the strict grammar of mail/esmtp.c and mail/addr.c.
 * Replies are our own text; client text reaches a reply only after it
 * passed the address parser, and reaches the log only through log_escape.
 *
 * PIPELINING (RFC 2920): commands are read from one buffer and answered
 * in order; replies are written out only when no complete command is left
 * in the input buffer, so a pipelined group gets its replies in one write.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "smtpd.h"

struct smtpd_command {
	const char *verb;
	void (*handler)(struct smtpd_session *s, const char *arg);
	unsigned flags;
};

#define CMD_JUNK 0x01		/* counts toward smtpd_junk_command_limit */
#define CMD_NOT_OFFERED 0x02	/* known to SMTP, not offered here: 502 */

static void cmd_ehlo(struct smtpd_session *s, const char *arg);
static void cmd_helo(struct smtpd_session *s, const char *arg);
static void cmd_mail(struct smtpd_session *s, const char *arg);
static void cmd_rcpt(struct smtpd_session *s, const char *arg);
static void cmd_rset(struct smtpd_session *s, const char *arg);
static void cmd_noop(struct smtpd_session *s, const char *arg);
static void cmd_quit(struct smtpd_session *s, const char *arg);
static void cmd_vrfy(struct smtpd_session *s, const char *arg);
static void cmd_help(struct smtpd_session *s, const char *arg);
static void cmd_not_offered(struct smtpd_session *s, const char *arg);

static const struct smtpd_command smtpd_commands[] = {
	{ "EHLO", cmd_ehlo, CMD_JUNK },
	{ "HELO", cmd_helo, CMD_JUNK },
	{ "MAIL", cmd_mail, 0 },
	{ "RCPT", cmd_rcpt, 0 },
	{ "DATA", smtpd_cmd_data, 0 },
	{ "BDAT", smtpd_cmd_bdat, 0 },
	{ "RSET", cmd_rset, CMD_JUNK },
	{ "NOOP", cmd_noop, CMD_JUNK },
	{ "QUIT", cmd_quit, 0 },
	{ "VRFY", cmd_vrfy, CMD_JUNK },
	{ "HELP", cmd_help, CMD_JUNK },
	{ "STARTTLS", smtpd_cmd_starttls, CMD_JUNK },
	{ "AUTH", smtpd_cmd_auth, 0 },
	{ "EXPN", cmd_not_offered, CMD_JUNK | CMD_NOT_OFFERED },
	{ "ETRN", cmd_not_offered, CMD_JUNK | CMD_NOT_OFFERED },
	{ "TURN", cmd_not_offered, CMD_JUNK | CMD_NOT_OFFERED },
	{ "SEND", cmd_not_offered, CMD_JUNK | CMD_NOT_OFFERED },
	{ "SOML", cmd_not_offered, CMD_JUNK | CMD_NOT_OFFERED },
	{ "SAML", cmd_not_offered, CMD_JUNK | CMD_NOT_OFFERED },
};

#define NCOMMANDS (sizeof(smtpd_commands) / sizeof(smtpd_commands[0]))

static const char *const state_names[] = {
	[SMTPD_STATE_CONNECTED] = "CONNECTED",
	[SMTPD_STATE_READY] = "READY",
	[SMTPD_STATE_MAIL] = "MAIL",
	[SMTPD_STATE_RCPT] = "RCPT",
	[SMTPD_STATE_BDAT] = "BDAT",
	[SMTPD_STATE_CLOSING] = "CLOSING",
};

void smtpd_enter_state(struct smtpd_session *s, enum smtpd_state st)
{
	if (s->state != st)
		log_debug("%s: state %s -> %s", s->client_log,
		    state_names[s->state], state_names[st]);
	s->state = st;
}

void smtpd_reply(struct smtpd_session *s, int code, const char *enhanced,
    const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	esmtp_reply(&s->bio, code, enhanced, true, "%s", text);
	s->last_code = code;
	if (code >= 400)
		s->errors++;
}

bool smtpd_flush(struct smtpd_session *s)
{
	if (s->bio.wlen == 0)
		return !s->bio.write_failed;
	return bio_flush(&s->bio) == BIO_OK;
}

/* Is a whole command line already buffered (so replies may wait)? */
static bool line_buffered(const struct bio *b)
{
	size_t n = bio_buffered(b);
	return n >= 2 && memmem(b->rbuf + b->rpos, n, "\r\n", 2) != NULL;
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
	const char *after = s->last_verb ? s->last_verb : "CONNECT";
	if (st == BIO_TIMEOUT) {
		log_info("timeout after %s from %s", after, s->client_log);
		/* RFC 5321 4.5.3.2: a server may close after a timeout. */
		s->bio.write_failed = false;
		s->bio.wlen = 0;
		smtpd_reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
		    cfg.myhostname);
		smtpd_flush(s);
	} else {
		log_info("lost connection after %s from %s", after,
		    s->client_log);
	}
	smtpd_enter_state(s, SMTPD_STATE_CLOSING);
}

void smtpd_txn_free(struct smtpd_session *s)
{
	struct smtpd_txn *t = s->txn;
	if (t == NULL)
		return;
	if (t->writer != NULL) {
		queue_writer_abort(t->writer);
		queue_envelope_free(&t->env);
	}
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
	smtpd_txn_free(s);
	if (s->state != SMTPD_STATE_CONNECTED &&
	    s->state != SMTPD_STATE_CLOSING)
		smtpd_enter_state(s, SMTPD_STATE_READY);
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
	smtpd_enter_state(s, SMTPD_STATE_READY);
	return true;
}

/* The one place that lists what EHLO offers. */
static void ehlo_extensions(struct smtpd_session *s)
{
	struct bio *b = &s->bio;
	esmtp_reply(b, 250, NULL, false, "%s", cfg.myhostname);
	esmtp_reply(b, 250, NULL, false, "PIPELINING");
	if (cfg.message_size_limit > 0)
		esmtp_reply(b, 250, NULL, false, "SIZE %lld",
		    cfg.message_size_limit);
	else
		esmtp_reply(b, 250, NULL, false, "SIZE");
	/* RFC 3207 4.2: not offered again once TLS is active. */
	if (smtpd_tls_available() && !s->tls_active)
		esmtp_reply(b, 250, NULL, false, "STARTTLS");
	/* Only over TLS: doc/architecture.md, "Safety rules". */
	if (smtpd_auth_offered(s))
		esmtp_reply(b, 250, NULL, false, "AUTH PLAIN LOGIN");
	esmtp_reply(b, 250, NULL, false, "ENHANCEDSTATUSCODES");
	esmtp_reply(b, 250, NULL, false, "8BITMIME");
	esmtp_reply(b, 250, NULL, false, "DSN");
	esmtp_reply(b, 250, NULL, false, "SMTPUTF8");
	esmtp_reply(b, 250, NULL, true, "CHUNKING");
	s->last_code = 250;
}

/* The extensions whose MAIL/RCPT parameters this session accepts. */
static unsigned session_extensions(const struct smtpd_session *s)
{
	if (!s->esmtp)
		return 0;
	return ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME | ESMTP_EXT_SMTPUTF8 |
	    ESMTP_EXT_DSN | ESMTP_EXT_CHUNKING |
	    (smtpd_auth_offered(s) ? ESMTP_EXT_AUTH : 0);
}

static void cmd_ehlo(struct smtpd_session *s, const char *arg)
{
	if (!greet(s, "EHLO", arg))
		return;
	s->esmtp = true;
	ehlo_extensions(s);
}

static void cmd_helo(struct smtpd_session *s, const char *arg)
{
	if (!greet(s, "HELO", arg))
		return;
	s->esmtp = false;
	/* RFC 2034: the HELO/EHLO reply carries no enhanced code. */
	esmtp_reply(&s->bio, 250, NULL, true, "%s", cfg.myhostname);
	s->last_code = 250;
}

/* ---- MAIL and RCPT ---- */

/* "FROM:" / "TO:" then the path; a space after the colon is tolerated
 * (RFC 5321 has none, but many clients send one and Postfix allows it). */
static const char *path_after(const char *arg, const char *keyword)
{
	size_t n = strlen(keyword);
	if (strncasecmp(arg, keyword, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

static void cmd_mail(struct smtpd_session *s, const char *arg)
{
	struct addr a;
	const char *p, *end, *why, *enh;
	int code;
	struct esmtp_mail_params params;

	if (s->state == SMTPD_STATE_CONNECTED) {
		smtpd_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	if (s->txn != NULL) {
		smtpd_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	/* No path at all is a command syntax error (5.5.4), not a bad
	 * address (5.1.7), as Postfix answers. */
	if ((p = path_after(arg, "FROM:")) == NULL || *p == '\0') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	const char *reason;
	if ((code = smtpd_check_mail(s, &enh, &reason)) != 250) {
		smtpd_reply(s, code, enh, "%s", reason);
		char text[300];
		snprintf(text, sizeof(text), "%s", reason);
		smtpd_log_reject(s, "MAIL", NULL, code, enh, text);
		return;
	}
	/* Like Postfix with strict_rfc821_envelopes = no: a path without
	 * <> is tolerated (RFC 5321 4.1.2 requires them; old clients and
	 * scripts omit them). */
	unsigned flags = ADDR_ALLOW_NULL | ADDR_ALLOW_NO_BRACKETS |
	    (s->esmtp ? ADDR_ALLOW_UTF8 : 0);
	if (!addr_parse_path(p, flags, &a, &end, &why)) {
		smtpd_reply(s, 501, "5.1.7", "Bad sender address syntax: %s",
		    why);
		return;
	}
	if (*end != '\0' && *end != ' ') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		addr_free(&a);
		return;
	}
	if (!esmtp_parse_mail_params(end, session_extensions(s), &params,
	    &code, &enh, &why)) {
		smtpd_reply(s, code, enh, "%s", why);
		addr_free(&a);
		return;
	}
	if (a.has_utf8 && !params.smtputf8) {
		/* RFC 6531 3.5 */
		smtpd_reply(s, 553, "5.6.7", "Error: non-ASCII sender address "
		    "needs SMTPUTF8");
	} else if (cfg.message_size_limit > 0 &&
	    params.size > cfg.message_size_limit) {
		/* RFC 1870 6.1 */
		smtpd_reply(s, 552, "5.3.4", "Message size exceeds fixed "
		    "limit");
	} else {
		struct smtpd_txn *t = xcalloc(1, sizeof(*t));
		t->sender = xstrdup(a.address);
		t->sender_utf8 = a.has_utf8;
		t->params = params;
		s->txn = t;
		smtpd_enter_state(s, SMTPD_STATE_MAIL);
		smtpd_reply(s, 250, "2.1.0", "Ok");
		addr_free(&a);
		return;
	}
	esmtp_mail_params_free(&params);
	addr_free(&a);
}

static bool rcpt_already_listed(const struct smtpd_txn *t, const char *address)
{
	for (size_t i = 0; i < t->nrcpts; i++)
		if (strcasecmp(t->rcpts[i].address, address) == 0)
			return true;
	return false;
}

static void cmd_rcpt(struct smtpd_session *s, const char *arg)
{
	struct smtpd_txn *t = s->txn;
	struct addr a;
	const char *p, *end, *why, *enh, *reason;
	int code;
	struct esmtp_rcpt_params params;

	if (t == NULL) {
		smtpd_reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->state == SMTPD_STATE_BDAT) {
		smtpd_reply(s, 503, "5.5.1", "Error: RCPT inside BDAT");
		return;
	}
	if ((p = path_after(arg, "TO:")) == NULL || *p == '\0') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	unsigned flags = ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_NO_BRACKETS |
	    (s->esmtp ? ADDR_ALLOW_UTF8 : 0);
	if (!addr_parse_path(p, flags, &a, &end, &why)) {
		smtpd_reply(s, 501, "5.1.3", "Bad recipient address syntax: %s",
		    why);
		t->rcpt_rejected++;
		return;
	}
	if (*end != '\0' && *end != ' ') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		t->rcpt_rejected++;
		addr_free(&a);
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
			s->errors--;
		goto rejected;
	}
	bool about_client;
	code = smtpd_check_rcpt(s, a.address, &enh, &reason, &about_client);
	if (code != 250) {
		/* As Postfix: "<rcpt>: reason", but a blocklist's text alone. */
		char text[900];
		snprintf(text, sizeof(text), "%s%s%s%s", about_client ? "" : "<",
		    about_client ? "" : a.address, about_client ? "" : ">: ",
		    reason);
		smtpd_reply(s, code, enh, "%s", text);
		smtpd_log_reject(s, "RCPT", a.address, code, enh, text);
		goto rejected;
	}
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
	smtpd_enter_state(s, SMTPD_STATE_RCPT);
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

static void cmd_rset(struct smtpd_session *s, const char *arg)
{
	if (*arg != '\0') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: RSET");
		return;
	}
	txn_reset(s);
	smtpd_reply(s, 250, "2.0.0", "Ok");
}

static void cmd_noop(struct smtpd_session *s, const char *arg)
{
	smtpd_reply(s, 250, "2.0.0", "Ok");
}

static void cmd_quit(struct smtpd_session *s, const char *arg)
{
	smtpd_reply(s, 221, "2.0.0", "Bye");
	smtpd_enter_state(s, SMTPD_STATE_CLOSING);
}

static void cmd_vrfy(struct smtpd_session *s, const char *arg)
{
	if (*arg == '\0') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: VRFY address");
		return;
	}
	/* RFC 5321 3.5.3: 252, and never a user list. */
	smtpd_reply(s, 252, "2.0.0", "Cannot VRFY user, but will accept "
	    "message and attempt delivery");
}

static void cmd_help(struct smtpd_session *s, const char *arg)
{
	smtpd_reply(s, 214, "2.0.0", "Commands: EHLO HELO STARTTLS AUTH MAIL "
	    "RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
}

static void cmd_not_offered(struct smtpd_session *s, const char *arg)
{
	smtpd_reply(s, 502, "5.5.1", "Error: command not implemented");
}

/* ---- the loop ---- */

static void log_disconnect(struct smtpd_session *s)
{
	struct str line;
	unsigned ok = 0, total = 0;

	str_init(&line, STR_NO_MAX);
	str_appendf(&line, "disconnect from %s", s->client_log);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct smtpd_count *c = &s->counts[i];
		if (c->total == 0)
			continue;
		char verb[16];
		size_t j;
		for (j = 0; smtpd_commands[i].verb[j] && j + 1 < sizeof(verb);
		    j++)
			verb[j] = (char)(smtpd_commands[i].verb[j] | 0x20);
		verb[j] = '\0';
		if (c->ok == c->total)
			str_appendf(&line, " %s=%u", verb, c->total);
		else
			str_appendf(&line, " %s=%u/%u", verb, c->ok, c->total);
		ok += c->ok;
		total += c->total;
	}
	if (s->unknown.total) {
		str_appendf(&line, " unknown=0/%u", s->unknown.total);
		total += s->unknown.total;
	}
	if (ok == total)
		str_appendf(&line, " commands=%u", total);
	else
		str_appendf(&line, " commands=%u/%u", ok, total);
	log_info("%s", str_cstr(&line));
	str_free(&line);
}

static const struct smtpd_command *find_command(const char *verb, size_t *idx)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(smtpd_commands[i].verb, verb) == 0) {
			*idx = i;
			return &smtpd_commands[i];
		}
	}
	return NULL;
}

/* Read and answer one command line. */
static void one_command(struct smtpd_session *s)
{
	unsigned flags = 0;
	enum bio_status st;

	if (!line_buffered(&s->bio) && !smtpd_flush(s)) {
		smtpd_io_failed(s, BIO_ERROR);
		return;
	}
	st = bio_readline(&s->bio, &s->line, SMTPD_LONG_LINE_MAX, &flags);
	if (st == BIO_TOOLONG) {
		/* RFC 5321 4.5.3.1.4 */
		smtpd_reply(s, 500, "5.5.2", "Error: line too long");
		s->unknown.total++;
		return;
	}
	if (st != BIO_OK) {
		smtpd_io_failed(s, st);
		return;
	}
	const char *line = str_cstr(&s->line);
	if (memchr(line, '\0', s->line.len) != NULL) {
		smtpd_reply(s, 500, "5.5.2", "Error: NUL character in command");
		s->unknown.total++;
		return;
	}
	if (flags & (BIO_LINE_BARE_CR | BIO_LINE_BARE_LF)) {
		/* Never a line end (RFC 5321 2.3.8): refuse the whole line. */
		log_info("warning: bare <%s> in command from %s",
		    (flags & BIO_LINE_BARE_LF) ? "LF" : "CR", s->client_log);
		smtpd_reply(s, 500, "5.5.2", "Error: bare <CR> or <LF> "
		    "received in command");
		s->unknown.total++;
		return;
	}

	struct esmtp_command cmd;
	size_t idx = 0;
	esmtp_split_command(line, &cmd);
	if (s->line.len > SMTPD_LINE_MAX && strcmp(cmd.verb, "MAIL") != 0 &&
	    strcmp(cmd.verb, "RCPT") != 0 && strcmp(cmd.verb, "AUTH") != 0) {
		smtpd_reply(s, 500, "5.5.2", "Error: line too long");
		s->unknown.total++;
		return;
	}
	const struct smtpd_command *c = find_command(cmd.verb, &idx);
	if (c == NULL) {
		smtpd_reply(s, 500, "5.5.2", "Error: command not recognized");
		s->unknown.total++;
		s->junk++;
		return;
	}
	s->last_verb = c->verb;
	s->last_code = 0;
	if (c->flags & CMD_JUNK)
		s->junk++;
	c->handler(s, cmd.arg);
	s->counts[idx].total++;
	if (s->last_code > 0 && s->last_code < 400)
		s->counts[idx].ok++;
}

void smtpd_session_run(struct smtpd_session *s)
{
	s->counts = xcalloc(NCOMMANDS, sizeof(*s->counts));
	log_info("connect from %s", s->client_log);
	s->state = SMTPD_STATE_CONNECTED;
	/* RFC 8314 3.3: on smtps the handshake comes before the greeting. */
	if (s->implicit_tls && !smtpd_tls_handshake(s)) {
		log_disconnect(s);
		return;
	}
	/* RFC 5321 4.3.1: the greeting; no enhanced code (RFC 2034). */
	esmtp_reply(&s->bio, 220, NULL, true, "%s", cfg.smtpd_banner);

	while (s->state != SMTPD_STATE_CLOSING) {
		one_command(s);
		if (s->state == SMTPD_STATE_CLOSING)
			break;
		if (cfg.smtpd_error_limit > 0 &&
		    s->errors >= (unsigned)cfg.smtpd_error_limit) {
			log_info("too many errors after %s from %s",
			    s->last_verb ? s->last_verb : "CONNECT",
			    s->client_log);
			smtpd_reply(s, 421, "4.7.0", "%s Error: too many errors",
			    cfg.myhostname);
			smtpd_enter_state(s, SMTPD_STATE_CLOSING);
		} else if (cfg.smtpd_junk_command_limit > 0 &&
		    s->junk > (unsigned)cfg.smtpd_junk_command_limit) {
			log_info("too many junk commands after %s from %s",
			    s->last_verb ? s->last_verb : "CONNECT",
			    s->client_log);
			smtpd_reply(s, 421, "4.7.0", "%s Error: too many "
			    "commands without mail", cfg.myhostname);
			smtpd_enter_state(s, SMTPD_STATE_CLOSING);
		}
	}
	smtpd_flush(s);
	log_disconnect(s);
}

void smtpd_txn_end(struct smtpd_session *s, bool queued)
{
	if (queued)
		s->junk = 0;
	txn_reset(s);
}
