/*
 * sendmail_smtp.c - "sendmail -bs": an SMTP conversation (RFC 5321) on
 * standard input and output, for programs that submit mail that way (PHP
 * mailers, swaks --pipe), spoken by the server core that smtpd and lmtpd
 * use (mail/smtp_server.c): the same command table shape, grammar, error
 * accounting, DATA reader and hop count. Each message goes into maildrop/
 * exactly as "sendmail" would put it there (sendmail_enqueue), with the
 * caller's uid.
 *
 * The caller is the local user who ran us: there is no relay control and
 * no AUTH, as with plain sendmail; the user could as well have given the
 * same envelope on the command line. The core runs in its local mode:
 * lines may end in CRLF or LF alone (a person typing at a terminal, as
 * plain sendmail reads), a bare CR still refuses a message. "RCPT
 * TO:<bob>" means bob@myhostname, as on the command line. Offered:
 * PIPELINING, SIZE, ENHANCEDSTATUSCODES, 8BITMIME, SMTPUTF8. A 250 after
 * the final dot means the queue file is committed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "bio.h"
#include "cfg.h"
#include "esmtp.h"
#include "log.h"
#include "mem.h"
#include "sendmail.h"
#include "smtp_server.h"
#include "str.h"

#define BS_RCPT_MAX 1000

struct bs_session {
	struct smtp_server srv;	/* the protocol core, in local mode */
	struct bio in, out;	/* standard input and output */
	bool esmtp;
	char *helo;
	char peer[64];		/* "uid 1000" for logs */
	/* The transaction, from MAIL on. */
	char *sender;
	bool sender_utf8;
	struct esmtp_mail_params params;
	struct rcpt_list rcpts;
};

static struct bs_session *session_of(struct smtp_server *srv)
{
	return SMTP_SERVER_SESSION(srv, struct bs_session);
}

static void txn_reset(struct bs_session *s)
{
	free(s->sender);
	s->sender = NULL;
	s->sender_utf8 = false;
	esmtp_mail_params_free(&s->params);
	memset(&s->params, 0, sizeof(s->params));
	sendmail_rcpt_list_free(&s->rcpts);
	if (s->srv.state != SMTP_SERVER_CONNECTED &&
	    s->srv.state != SMTP_SERVER_CLOSING)
		smtp_server_enter_state(&s->srv, SMTP_SERVER_READY);
}

static unsigned extensions(const struct bs_session *s)
{
	return s->esmtp ? ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME |
	    ESMTP_EXT_SMTPUTF8 : 0;
}

/*
 * The path of MAIL or RCPT by the one grammar, a local user's "bob"
 * qualified with @myhostname as on the command line. Returns the
 * canonical address (caller frees) or NULL after replying.
 */
static char *take_path(struct bs_session *s, const char *arg, bool rcpt,
    const char **params, bool *utf8)
{
	struct addr a;
	const char *enh;
	char text[300];
	int code;
	unsigned flags = ADDR_ALLOW_UTF8 | ADDR_ALLOW_NO_BRACKETS |
	    ADDR_ALLOW_LOCAL_ONLY | ADDR_ALLOW_POSTMASTER |
	    (rcpt ? 0 : ADDR_ALLOW_NULL);

	if (!esmtp_parse_path_arg(arg, rcpt, flags, &a, params, &code, &enh,
	    text, sizeof(text))) {
		smtp_server_reply(&s->srv, code, enh, "%s", text);
		return NULL;
	}
	*utf8 = a.has_utf8;
	char *out = a.domain == NULL && !a.is_null &&
	    strcmp(a.address, "postmaster") != 0 ?
	    xasprintf("%s@%s", a.address, cfg.myhostname) :
	    xstrdup(a.address);
	addr_free(&a);
	return out;
}

static void bs_helo(struct smtp_server *srv, const char *verb,
    const char *arg)
{
	struct bs_session *s = session_of(srv);
	if (*arg == '\0' || strchr(arg, ' ') != NULL) {
		smtp_server_reply(srv, 501, "5.5.4", "Syntax: %s hostname",
		    verb);
		return;
	}
	txn_reset(s);
	free(s->helo);
	s->helo = xstrdup(arg);
	s->esmtp = strcmp(verb, "EHLO") == 0;
	smtp_server_enter_state(srv, SMTP_SERVER_READY);
	if (!s->esmtp)
		smtp_server_reply(srv, 250, NULL, "%s", cfg.myhostname);
	else
		smtp_server_ehlo_reply(srv, extensions(s),
		    cfg.message_size_limit);
}

static void cmd_ehlo(struct smtp_server *srv, const char *arg)
{
	bs_helo(srv, "EHLO", arg);
}

static void cmd_helo(struct smtp_server *srv, const char *arg)
{
	bs_helo(srv, "HELO", arg);
}

static void cmd_mail(struct smtp_server *srv, const char *arg)
{
	struct bs_session *s = session_of(srv);
	const char *params, *why, *enh;
	bool utf8 = false;
	int code;

	char *sender = take_path(s, arg, false, &params, &utf8);
	if (sender == NULL)
		return;
	struct esmtp_mail_params mp;
	if (!esmtp_parse_mail_params(params, extensions(s), &mp, &code, &enh,
	    &why)) {
		smtp_server_reply(srv, code, enh, "%s", why);
		esmtp_mail_params_free(&mp);
		free(sender);
		return;
	}
	if (utf8 && !mp.smtputf8) {
		smtp_server_reply(srv, 553, "5.6.7", "Error: non-ASCII sender "
		    "address needs SMTPUTF8");
	} else if (cfg.message_size_limit > 0 &&
	    mp.size > cfg.message_size_limit) {
		smtp_server_reply(srv, 552, "5.3.4", "Message size exceeds "
		    "fixed limit");
	} else {
		s->sender = sender;
		s->sender_utf8 = utf8;
		s->params = mp;
		smtp_server_enter_state(srv, SMTP_SERVER_MAIL);
		smtp_server_reply(srv, 250, "2.1.0", "Ok");
		return;
	}
	esmtp_mail_params_free(&mp);
	free(sender);
}

static void cmd_rcpt(struct smtp_server *srv, const char *arg)
{
	struct bs_session *s = session_of(srv);
	const char *params, *why, *enh;
	bool utf8 = false;
	int code;

	char *rcpt = take_path(s, arg, true, &params, &utf8);
	if (rcpt == NULL)
		return;
	struct esmtp_rcpt_params rp;
	if (!esmtp_parse_rcpt_params(params, extensions(s), &rp, &code, &enh,
	    &why)) {
		smtp_server_reply(srv, code, enh, "%s", why);
	} else if (utf8 && !s->params.smtputf8) {
		smtp_server_reply(srv, 553, "5.6.7", "Error: non-ASCII "
		    "recipient address needs SMTPUTF8");
	} else if (s->rcpts.count >= BS_RCPT_MAX) {
		smtp_server_reply(srv, 452, "4.5.3", "Error: too many "
		    "recipients");
		srv->error_excused = true;
	} else {
		sendmail_rcpt_add(&s->rcpts, rcpt);
		s->rcpts.utf8 |= utf8;
		smtp_server_enter_state(srv, SMTP_SERVER_RCPT);
		smtp_server_reply(srv, 250, "2.1.5", "Ok");
	}
	esmtp_rcpt_params_free(&rp);
	free(rcpt);
}

/* The core's sink: the message in memory with CRLF line ends, up to
 * message_size_limit (str's max); past it the rest is only counted. */
struct bs_message {
	struct str text;
	bool too_big;
};

static void put_line(void *ctx, const char *p, size_t n, bool line_end)
{
	struct bs_message *msg = ctx;
	if (msg->too_big)
		return;
	if (!str_append(&msg->text, p, n) ||
	    (line_end && !str_append(&msg->text, "\r\n", 2)))
		msg->too_big = true;
}

static void cmd_data(struct smtp_server *srv, const char *arg)
{
	struct bs_session *s = session_of(srv);
	if (*arg != '\0') {
		smtp_server_reply(srv, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (s->rcpts.count == 0) {
		smtp_server_reply(srv, 503, "5.5.1", "Error: need RCPT "
		    "command");
		return;
	}
	esmtp_reply(&s->out, 354, NULL, true,
	    "End data with <CR><LF>.<CR><LF>");
	if (!smtp_server_flush(srv)) {
		smtp_server_io_failed(srv, BIO_ERROR);
		return;
	}

	struct bs_message msg = { .too_big = false };
	struct smtp_message m;
	size_t limit = cfg.message_size_limit > 0 ?
	    (size_t)cfg.message_size_limit : STR_NO_MAX;
	str_init(&msg.text, limit);
	smtp_message_init(&m);
	struct smtp_message_sink sink = { put_line, &msg };
	enum bio_status st = smtp_server_read_data(srv, &m, &sink);
	if (st != BIO_OK) {
		log_warning("sendmail -bs: input ended inside a message from "
		    "<%s>: nothing queued", s->sender);
		smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
		str_free(&msg.text);
		return;
	}
	if (m.bare_newline) {
		smtp_server_reply(srv, 550, "5.5.2", "Error: bare <CR> "
		    "received in message text");
	} else if (msg.too_big) {
		smtp_server_reply(srv, 552, "5.3.4", "Error: message file too "
		    "big");
	} else if (smtp_message_too_many_hops(&m)) {
		/* RFC 5321 6.3, as smtpd and lmtpd. */
		smtp_server_reply(srv, 554, "5.4.6", "Error: Too many hops");
	} else {
		char id[QUEUE_ID_SIZE], err[512];
		struct local_submission ls = {
			.sender = s->sender, .rcpts = &s->rcpts,
			.ret = s->params.ret, .envid = s->params.envid,
			.body = s->params.body_given ? (int)s->params.body : -1,
			.smtputf8 = s->sender_utf8 || s->params.smtputf8,
			.helo = s->helo,
			.protocol = s->esmtp ? "ESMTP" : "SMTP",
		};
		if (sendmail_enqueue(&ls, &msg.text, id, sizeof(id), err,
		    sizeof(err))) {
			smtp_server_reply(srv, 250, "2.0.0", "Ok: queued as %s",
			    id);
			smtp_server_message_done(srv);
		} else {
			log_error("sendmail -bs: cannot queue the message: %s",
			    err);
			smtp_server_reply(srv, 451, "4.3.0", "Error: queue file "
			    "write error");
		}
	}
	str_free(&msg.text);
	txn_reset(s);
}

static void cmd_rset(struct smtp_server *srv, const char *arg)
{
	txn_reset(session_of(srv));
	smtp_server_reply(srv, 250, "2.0.0", "Ok");
}

static void cmd_help(struct smtp_server *srv, const char *arg)
{
	smtp_server_reply(srv, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT "
	    "DATA RSET NOOP VRFY HELP QUIT");
}

static void cmd_quit(struct smtp_server *srv, const char *arg)
{
	smtp_server_reply(srv, 221, "2.0.0", "Bye");
	smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
}

#define ANY SMTP_SERVER_ANY_STATE
#define IN(st) SMTP_SERVER_IN(SMTP_SERVER_##st)

static const struct smtp_server_command bs_commands[] = {
	{ "EHLO", cmd_ehlo, ANY, SMTP_CMD_JUNK },
	{ "HELO", cmd_helo, ANY, SMTP_CMD_JUNK },
	{ "MAIL", cmd_mail, IN(READY), SMTP_CMD_LONG_LINE },
	{ "RCPT", cmd_rcpt, IN(MAIL) | IN(RCPT), SMTP_CMD_LONG_LINE },
	{ "DATA", cmd_data, IN(MAIL) | IN(RCPT), 0 },
	{ "RSET", cmd_rset, ANY, SMTP_CMD_JUNK },
	{ "NOOP", smtp_server_cmd_noop, ANY, SMTP_CMD_JUNK },
	{ "VRFY", smtp_server_cmd_vrfy, ANY, SMTP_CMD_JUNK },
	{ "HELP", cmd_help, ANY, SMTP_CMD_JUNK },
	{ "QUIT", cmd_quit, ANY, SMTP_CMD_NO_ERROR },
	/* No TLS, AUTH or CHUNKING on a pipe. */
	{ "STARTTLS", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "AUTH", NULL, ANY, SMTP_CMD_NOT_OFFERED },
	{ "BDAT", NULL, ANY, SMTP_CMD_NOT_OFFERED },
	{ "EXPN", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
	{ "ETRN", NULL, ANY, SMTP_CMD_JUNK | SMTP_CMD_NOT_OFFERED },
};

int sendmail_smtp(void)
{
	struct bs_session s;

	memset(&s, 0, sizeof(s));
	snprintf(s.peer, sizeof(s.peer), "local uid %ld", (long)getuid());
	bio_init(&s.in, STDIN_FILENO, -1);
	bio_init(&s.out, STDOUT_FILENO, -1);
	smtp_server_init(&s.srv, &s, bs_commands,
	    sizeof(bs_commands) / sizeof(bs_commands[0]), SMTP_SERVER_LOCAL,
	    &s.in, &s.out, cfg.myhostname, s.peer);
	esmtp_reply(&s.out, 220, NULL, true, "%s ESMTP postern",
	    cfg.myhostname);
	smtp_server_run(&s.srv);
	txn_reset(&s);
	smtp_server_free(&s.srv);
	bio_free(&s.in);
	bio_free(&s.out);
	free(s.helo);
	return 0;
}
