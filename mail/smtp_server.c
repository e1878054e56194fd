/*
 * smtp_server.c - the session core shared by smtpd, lmtpd and sendmail -bs
 * (smtp_server.h): states, the command dispatcher, the command-line
 * policy, replies and error accounting, the EHLO/LHLO extension list.
 *
 * Trusts nothing it reads. A command line is bounded (RFC 5321
 * 4.5.3.1.4), holds no NUL, and ends only at CRLF: a bare CR or LF refuses
 * the whole line (RFC 5321 2.3.8), except in SMTP_SERVER_LOCAL mode where
 * the local user's program may end lines with LF alone. Reply text is
 * ours; esmtp_reply() lets nothing but printable ASCII out.
 *
 * Error accounting, one rule for the three programs, as Postfix's
 * smtpd_error_limit: every command answered with 4xx or 5xx counts one
 * error (a 452 past the recipient limit excepted, RFC 5321 4.5.3.1.10),
 * and at smtpd_error_limit the session ends with 421 4.7.0. Junk
 * commands (NOOP, VRFY, RSET, HELO...) and unknown ones count toward
 * smtpd_junk_command_limit until a message is taken.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "esmtp.h"
#include "log.h"
#include "mem.h"
#include "smtp_server.h"

static const char *const state_names[] = {
	[SMTP_SERVER_CONNECTED] = "CONNECTED",
	[SMTP_SERVER_READY] = "READY",
	[SMTP_SERVER_MAIL] = "MAIL",
	[SMTP_SERVER_RCPT] = "RCPT",
	[SMTP_SERVER_BDAT] = "BDAT",
	[SMTP_SERVER_CLOSING] = "CLOSING",
};

void smtp_server_init(struct smtp_server *srv, void *session,
    const struct smtp_server_command *commands, size_t ncommands,
    unsigned dialect, struct bio *in, struct bio *out, const char *hostname,
    const char *peer)
{
	memset(srv, 0, sizeof(*srv));
	srv->session = session;
	srv->commands = commands;
	srv->ncommands = ncommands;
	srv->counts = xcalloc(ncommands, sizeof(*srv->counts));
	srv->dialect = dialect;
	srv->in = in;
	srv->out = out;
	/* The one explicit exception to "only CRLF ends a line". */
	in->lf_ends_line = (dialect & SMTP_SERVER_LOCAL) != 0;
	srv->hostname = hostname;
	srv->peer = peer;
	srv->state = SMTP_SERVER_CONNECTED;
	str_init(&srv->line, SMTP_SERVER_LONG_LINE_MAX + 2);
}

void smtp_server_free(struct smtp_server *srv)
{
	free(srv->counts);
	srv->counts = NULL;
	str_free(&srv->line);
}

void smtp_server_enter_state(struct smtp_server *srv,
    enum smtp_server_state st)
{
	if (srv->state != st)
		log_debug("%s: state %s -> %s", srv->peer,
		    state_names[srv->state], state_names[st]);
	srv->state = st;
}

void smtp_server_reply(struct smtp_server *srv, int code,
    const char *enhanced, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	const char *text = esmtp_reply_format(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	smtp_server_reply_text(srv, code, enhanced, text);
}

void smtp_server_reply_text(struct smtp_server *srv, int code,
    const char *enhanced, const char *text)
{
	esmtp_reply_text(srv->out, code, enhanced, true, text);
	srv->last_code = code;
}

void smtp_server_cmd_noop(struct smtp_server *srv, const char *arg)
{
	smtp_server_reply(srv, 250, "2.0.0", "Ok");
}

void smtp_server_cmd_vrfy(struct smtp_server *srv, const char *arg)
{
	if (*arg == '\0') {
		smtp_server_reply(srv, 501, "5.5.4", "Syntax: VRFY address");
		return;
	}
	smtp_server_reply(srv, 252, "2.0.0", "Cannot VRFY user, but will "
	    "accept message and attempt delivery");
}

bool smtp_server_flush(struct smtp_server *srv)
{
	if (srv->out->wlen == 0)
		return !srv->out->write_failed;
	return bio_flush(srv->out) == BIO_OK;
}

/* The one place that lists what EHLO and LHLO offer, in one order. */
void smtp_server_ehlo_reply(struct smtp_server *srv, unsigned ext,
    long long size_limit)
{
	struct bio *b = srv->out;

	esmtp_reply(b, 250, NULL, false, "%s", srv->hostname);
	esmtp_reply(b, 250, NULL, false, "PIPELINING");
	if (ext & ESMTP_EXT_SIZE) {
		if (size_limit > 0)
			esmtp_reply(b, 250, NULL, false, "SIZE %lld",
			    size_limit);
		else
			esmtp_reply(b, 250, NULL, false, "SIZE");
	}
	/* RFC 3207 4.2: not offered again once TLS is active. */
	if (ext & SMTP_SERVER_OFFER_STARTTLS)
		esmtp_reply(b, 250, NULL, false, "STARTTLS");
	if (ext & SMTP_SERVER_OFFER_AUTH)
		esmtp_reply(b, 250, NULL, false, "AUTH PLAIN LOGIN");
	/* RFC 8689 2: only where TLS is up (the caller's to decide). */
	if (ext & ESMTP_EXT_REQUIRETLS)
		esmtp_reply(b, 250, NULL, false, "REQUIRETLS");
	esmtp_reply(b, 250, NULL, false, "ENHANCEDSTATUSCODES");
	if (ext & ESMTP_EXT_8BITMIME)
		esmtp_reply(b, 250, NULL, false, "8BITMIME");
	if (ext & ESMTP_EXT_DSN)
		esmtp_reply(b, 250, NULL, false, "DSN");
	if (ext & ESMTP_EXT_SMTPUTF8)
		esmtp_reply(b, 250, NULL, !(ext & ESMTP_EXT_CHUNKING),
		    "SMTPUTF8");
	if (ext & ESMTP_EXT_CHUNKING)
		esmtp_reply(b, 250, NULL, true, "CHUNKING");
	srv->last_code = 250;
}

void smtp_server_io_failed(struct smtp_server *srv, enum bio_status st)
{
	const char *after = srv->last_verb ? srv->last_verb : "CONNECT";
	if (st == BIO_TIMEOUT) {
		log_info("timeout after %s from %s", after, srv->peer);
		/* RFC 5321 4.5.3.2: a server may close after a timeout. */
		srv->out->write_failed = false;
		srv->out->wlen = 0;
		smtp_server_reply(srv, 421, "4.4.2", "%s Error: timeout "
		    "exceeded", srv->hostname);
		smtp_server_flush(srv);
	} else {
		log_info("lost connection after %s from %s", after, srv->peer);
	}
	smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
}

void smtp_server_message_done(struct smtp_server *srv)
{
	srv->junk = 0;
}

/* " name=ok" when every one succeeded, else " name=ok/total": the
 * disconnect line's counts, made once per session without printf. */
static void append_count(struct str *line, const char *name, unsigned ok,
    unsigned total)
{
	str_append_char(line, ' ');
	str_append_cstr(line, name);
	str_append_char(line, '=');
	str_append_uint(line, ok);
	if (ok != total) {
		str_append_char(line, '/');
		str_append_uint(line, total);
	}
}

void smtp_server_append_counts(const struct smtp_server *srv,
    struct str *line)
{
	unsigned ok = 0, total = 0;

	for (size_t i = 0; i < srv->ncommands; i++) {
		const struct smtp_server_count *c = &srv->counts[i];
		if (c->total == 0)
			continue;
		char verb[16];
		size_t j;
		for (j = 0; srv->commands[i].verb[j] && j + 1 < sizeof(verb);
		    j++)
			verb[j] = (char)(srv->commands[i].verb[j] | 0x20);
		verb[j] = '\0';
		append_count(line, verb, c->ok, c->total);
		ok += c->ok;
		total += c->total;
	}
	if (srv->unknown.total) {
		append_count(line, "unknown", 0, srv->unknown.total);
		total += srv->unknown.total;
	}
	append_count(line, "commands", ok, total);
}

/* Is a whole command line already buffered (so replies may wait)? */
static bool line_buffered(const struct smtp_server *srv)
{
	const struct bio *b = srv->in;
	size_t n = bio_buffered(b);
	if (srv->dialect & SMTP_SERVER_LOCAL)
		return n >= 1 && memchr(b->rbuf + b->rpos, '\n', n) != NULL;
	return n >= 2 && memmem(b->rbuf + b->rpos, n, "\r\n", 2) != NULL;
}

/* A line that is no command: 500, counted as unknown and as an error. */
static void refuse_line(struct smtp_server *srv, const char *text)
{
	smtp_server_reply(srv, 500, "5.5.2", "%s", text);
	srv->unknown.total++;
	srv->errors++;
}

/* Out of sequence (RFC 5321 4.1.4): Postfix's words for each case. */
static void refuse_sequence(struct smtp_server *srv, const char *verb)
{
	bool lmtp = (srv->dialect & SMTP_SERVER_LMTP) != 0;
	bool is_mail = strcmp(verb, "MAIL") == 0;
	bool is_rcpt = strcmp(verb, "RCPT") == 0;
	bool is_data = strcmp(verb, "DATA") == 0;
	const char *text;

	if (srv->state == SMTP_SERVER_CONNECTED && !is_rcpt)
		text = lmtp ? "Error: send LHLO first" :
		    "Error: send HELO/EHLO first";
	else if (is_mail)
		text = "Error: nested MAIL command";
	else if (is_rcpt && srv->state == SMTP_SERVER_BDAT)
		text = "Error: RCPT inside BDAT";
	else if (is_rcpt)
		text = "Error: need MAIL command";
	else if (is_data && srv->state == SMTP_SERVER_BDAT)
		text = "Error: DATA after BDAT";
	else if (is_data)
		text = "Error: need RCPT command";
	else if (srv->state == SMTP_SERVER_BDAT)
		text = "Error: only BDAT, RSET, NOOP or QUIT may follow BDAT";
	else
		text = "Error: bad sequence of commands";
	smtp_server_reply(srv, 503, "5.5.1", "%s", text);
}

static const struct smtp_server_command *find_command(
    const struct smtp_server *srv, const char *verb, size_t *idx)
{
	for (size_t i = 0; i < srv->ncommands; i++) {
		if (strcmp(srv->commands[i].verb, verb) == 0) {
			*idx = i;
			return &srv->commands[i];
		}
	}
	return NULL;
}

/* Read one line and answer it. */
static void one_command_read(struct smtp_server *srv)
{
	unsigned flags = 0;
	enum bio_status st;

	if (!line_buffered(srv) && !smtp_server_flush(srv)) {
		smtp_server_io_failed(srv, BIO_ERROR);
		return;
	}
	st = bio_readline(srv->in, &srv->line, SMTP_SERVER_LONG_LINE_MAX,
	    &flags);
	if (st == BIO_TOOLONG) {
		refuse_line(srv, "Error: line too long");
		return;
	}
	if (st != BIO_OK) {
		smtp_server_io_failed(srv, st);
		return;
	}
	const char *line = str_cstr(&srv->line);
	if (memchr(line, '\0', srv->line.len) != NULL) {
		refuse_line(srv, "Error: NUL character in command");
		return;
	}
	if (flags & (BIO_LINE_BARE_CR | BIO_LINE_BARE_LF)) {
		/* Never a line end (RFC 5321 2.3.8): refuse the whole line. */
		log_info("warning: bare <%s> in command from %s",
		    (flags & BIO_LINE_BARE_LF) ? "LF" : "CR", srv->peer);
		refuse_line(srv, "Error: bare <CR> or <LF> received in "
		    "command");
		return;
	}

	struct esmtp_command cmd;
	size_t idx = 0;
	esmtp_split_command(line, &cmd);
	const struct smtp_server_command *c = find_command(srv, cmd.verb,
	    &idx);
	if (c != NULL && (c->flags & SMTP_CMD_LMTP_ONLY) &&
	    !(srv->dialect & SMTP_SERVER_LMTP))
		c = NULL;
	if (srv->line.len > SMTP_SERVER_LINE_MAX &&
	    (c == NULL || !(c->flags & SMTP_CMD_LONG_LINE))) {
		refuse_line(srv, "Error: line too long");
		return;
	}
	if (c == NULL) {
		refuse_line(srv, "Error: command not recognized");
		srv->junk++;
		return;
	}
	srv->last_verb = c->verb;
	srv->last_code = 0;
	srv->error_excused = false;
	if (c->flags & SMTP_CMD_JUNK)
		srv->junk++;
	if ((c->flags & SMTP_CMD_SMTP_ONLY) &&
	    (srv->dialect & SMTP_SERVER_LMTP)) {
		/* RFC 2033 4.1: an LMTP server must not accept HELO/EHLO. */
		smtp_server_reply(srv, 500, "5.5.1", "Error: this is LMTP: "
		    "use LHLO");
	} else if (c->flags & SMTP_CMD_NOT_OFFERED) {
		smtp_server_reply(srv, 502, "5.5.1", "Error: command not "
		    "implemented");
	} else if (!(c->states & SMTP_SERVER_IN(srv->state))) {
		refuse_sequence(srv, c->verb);
	} else {
		c->handler(srv, cmd.arg);
	}
	srv->counts[idx].total++;
	if (srv->last_code > 0 && srv->last_code < 400)
		srv->counts[idx].ok++;
	else if (srv->last_code >= 400 && !srv->error_excused &&
	    !(c->flags & SMTP_CMD_NO_ERROR))
		srv->errors++;
}

/*
 * One command, with its deadline: a client that trickles the bytes of
 * a command, or the lines of an AUTH exchange, cannot hold the session
 * past timeout_ms (RFC 5321 4.5.3.2 bounds each wait; this bounds the
 * whole command). A deadline already set (BDAT's, across its chunks)
 * stands; one the handler sets (DATA's) is the handler's to lift.
 */
static void one_command(struct smtp_server *srv)
{
	long long ours = 0;
	if (srv->command_deadline && srv->in->hard_deadline == 0 &&
	    srv->in->timeout_ms > 0) {
		bio_set_deadline(srv->in, srv->in->timeout_ms);
		ours = srv->in->hard_deadline;
	}
	one_command_read(srv);
	if (ours != 0 && srv->in->hard_deadline == ours)
		bio_set_deadline(srv->in, -1);
}

void smtp_server_command(struct smtp_server *srv)
{
	one_command(srv);
	if (srv->state == SMTP_SERVER_CLOSING)
		return;
	const char *after = srv->last_verb ? srv->last_verb : "CONNECT";
	if (cfg.smtpd_error_limit > 0 &&
	    srv->errors >= (unsigned)cfg.smtpd_error_limit) {
		log_info("too many errors after %s from %s", after, srv->peer);
		smtp_server_reply(srv, 421, "4.7.0", "%s Error: too many "
		    "errors", srv->hostname);
		smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
	} else if (cfg.smtpd_junk_command_limit > 0 &&
	    srv->junk > (unsigned)cfg.smtpd_junk_command_limit) {
		log_info("too many junk commands after %s from %s", after,
		    srv->peer);
		smtp_server_reply(srv, 421, "4.7.0", "%s Error: too many "
		    "commands without mail", srv->hostname);
		smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
	}
}

void smtp_server_run(struct smtp_server *srv)
{
	while (srv->state != SMTP_SERVER_CLOSING)
		smtp_server_command(srv);
	smtp_server_flush(srv);
}
