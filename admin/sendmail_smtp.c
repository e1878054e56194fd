/*
 * sendmail_smtp.c - "sendmail -bs": an SMTP conversation (RFC 5321) on
 * standard input and output, for programs that submit mail that way (PHP
 * mailers, swaks --pipe). Each message goes into maildrop/ exactly as
 * "sendmail" would put it there (sendmail_enqueue), with the caller's uid.
 *
 * The caller is the local user who ran us: there is no relay control and
 * no AUTH, as with plain sendmail; the user could as well have given the
 * same envelope on the command line. Lines may end in CRLF or LF alone
 * (a person typing at a terminal). Offered: PIPELINING, SIZE, 8BITMIME,
 * SMTPUTF8, ENHANCEDSTATUSCODES. A 250 after the final dot means the
 * queue file is committed.
 *
 * States: GREETED -(HELO/EHLO)-> READY -(MAIL)-> MAIL -(RCPT)-> RCPT
 * -(DATA, the message, ".")-> READY. RSET and a new HELO/EHLO go back to
 * READY; QUIT or the end of input ends the session.
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
#include "str.h"

#define BS_LINE_MAX 2048	/* a command line; RFC 5321 4.5.3.1.4 says 512 */
#define BS_RCPT_MAX 1000
#define BS_ERRORS_MAX 20	/* bad commands before we hang up */

enum bs_state { BS_GREETED, BS_READY, BS_MAIL, BS_RCPT };

enum line_status { LINE_OK, LINE_EOF, LINE_TOOLONG };

struct bs_session {
	struct bio out;		/* standard output */
	char inbuf[8192];	/* standard input, read ahead */
	size_t inpos, inlen;
	enum bs_state state;
	bool esmtp;
	char *helo;
	int errors;
	/* The transaction, from MAIL on. */
	char *sender;
	bool sender_utf8;
	struct esmtp_mail_params params;
	struct rcpt_list rcpts;
};

static void reply(struct bs_session *s, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reply(struct bs_session *s, int code, const char *enhanced,
    const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	esmtp_reply(&s->out, code, enhanced, true, "%s", text);
	if (code >= 500)
		s->errors++;
}

/*
 * One line from standard input, without its LF or CRLF. The replies
 * written so far leave first when we are about to wait for input, so a
 * pipelined group of commands gets its replies in one write.
 */
static enum line_status read_line(struct bs_session *s, struct str *line,
    size_t max)
{
	bool toolong = false;

	str_clear(line);
	for (;;) {
		if (s->inpos == s->inlen) {
			bio_flush(&s->out);
			ssize_t n = read(STDIN_FILENO, s->inbuf,
			    sizeof(s->inbuf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return LINE_EOF;
			s->inpos = 0;
			s->inlen = (size_t)n;
		}
		const char *p = s->inbuf + s->inpos;
		size_t avail = s->inlen - s->inpos;
		const char *lf = memchr(p, '\n', avail);
		size_t take = lf ? (size_t)(lf - p) : avail;
		if (!toolong && line->len + take <= max)
			str_append(line, p, take);
		else
			toolong = true;
		s->inpos += take + (lf ? 1 : 0);
		if (lf == NULL)
			continue;
		if (toolong)
			return LINE_TOOLONG;
		if (line->len > 0 && line->data[line->len - 1] == '\r')
			str_truncate(line, line->len - 1);
		return LINE_OK;
	}
}

static void txn_reset(struct bs_session *s)
{
	free(s->sender);
	s->sender = NULL;
	s->sender_utf8 = false;
	esmtp_mail_params_free(&s->params);
	memset(&s->params, 0, sizeof(s->params));
	rcpt_list_free(&s->rcpts);
	if (s->state != BS_GREETED)
		s->state = BS_READY;
}

static unsigned extensions(const struct bs_session *s)
{
	return s->esmtp ? ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME |
	    ESMTP_EXT_SMTPUTF8 : 0;
}

/*
 * The path after "FROM:" or "TO:": "<...>" (quotes may hold ">") or a
 * bare address up to a space. Returns it (caller frees) and sets *rest
 * to the parameters; NULL when there is none.
 */
static char *take_path(const char *arg, const char *keyword,
    const char **rest)
{
	size_t n = strlen(keyword);
	if (strncasecmp(arg, keyword, n) != 0)
		return NULL;
	const char *p = arg + n;
	while (*p == ' ')
		p++;
	const char *start = p;
	if (*p == '<') {
		bool quoted = false;
		for (p++; *p != '\0' && (quoted || *p != '>'); p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				quoted = !quoted;
		}
		if (*p != '>')
			return NULL;
		p++;
	} else {
		while (*p != '\0' && *p != ' ')
			p++;
	}
	if (p == start || (*p != '\0' && *p != ' '))
		return NULL;
	*rest = p;
	return xstrndup(start, (size_t)(p - start));
}

static void cmd_helo(struct bs_session *s, const char *verb, const char *arg)
{
	if (*arg == '\0' || strchr(arg, ' ') != NULL) {
		reply(s, 501, "5.5.4", "Syntax: %s hostname", verb);
		return;
	}
	txn_reset(s);
	free(s->helo);
	s->helo = xstrdup(arg);
	s->esmtp = strcmp(verb, "EHLO") == 0;
	s->state = BS_READY;
	if (!s->esmtp) {
		esmtp_reply(&s->out, 250, NULL, true, "%s", cfg.myhostname);
		return;
	}
	esmtp_reply(&s->out, 250, NULL, false, "%s", cfg.myhostname);
	esmtp_reply(&s->out, 250, NULL, false, "PIPELINING");
	if (cfg.message_size_limit > 0)
		esmtp_reply(&s->out, 250, NULL, false, "SIZE %lld",
		    cfg.message_size_limit);
	else
		esmtp_reply(&s->out, 250, NULL, false, "SIZE");
	esmtp_reply(&s->out, 250, NULL, false, "8BITMIME");
	esmtp_reply(&s->out, 250, NULL, false, "SMTPUTF8");
	esmtp_reply(&s->out, 250, NULL, true, "ENHANCEDSTATUSCODES");
}

static void cmd_mail(struct bs_session *s, const char *arg)
{
	const char *rest, *why = "bad address", *enh;
	int code;

	if (s->state == BS_GREETED) {
		reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	if (s->state != BS_READY) {
		reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	char *path = take_path(arg, "FROM:", &rest);
	if (path == NULL) {
		reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	char *sender;
	bool utf8 = false;
	if (strcmp(path, "<>") == 0)
		sender = xstrdup("");
	else
		sender = sendmail_canonical_address(path, &utf8, &why);
	free(path);
	if (sender == NULL) {
		reply(s, 501, "5.1.7", "Bad sender address syntax: %s", why);
		return;
	}
	struct esmtp_mail_params params;
	if (!esmtp_parse_mail_params(rest, extensions(s), &params, &code,
	    &enh, &why)) {
		reply(s, code, enh, "%s", why);
		esmtp_mail_params_free(&params);
		free(sender);
		return;
	}
	if (utf8 && !params.smtputf8) {
		reply(s, 553, "5.6.7", "Error: non-ASCII sender address needs "
		    "SMTPUTF8");
	} else if (cfg.message_size_limit > 0 &&
	    params.size > cfg.message_size_limit) {
		reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
	} else {
		s->sender = sender;
		s->sender_utf8 = utf8;
		s->params = params;
		s->state = BS_MAIL;
		reply(s, 250, "2.1.0", "Ok");
		return;
	}
	esmtp_mail_params_free(&params);
	free(sender);
}

static void cmd_rcpt(struct bs_session *s, const char *arg)
{
	const char *rest, *why = "bad address", *enh;
	int code;

	if (s->state != BS_MAIL && s->state != BS_RCPT) {
		reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	char *path = take_path(arg, "TO:", &rest);
	if (path == NULL) {
		reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	bool utf8 = false;
	char *rcpt = sendmail_canonical_address(path, &utf8, &why);
	free(path);
	if (rcpt == NULL) {
		reply(s, 501, "5.1.3", "Bad recipient address syntax: %s", why);
		return;
	}
	struct esmtp_rcpt_params params;
	if (!esmtp_parse_rcpt_params(rest, extensions(s), &params, &code,
	    &enh, &why)) {
		reply(s, code, enh, "%s", why);
	} else if (utf8 && !s->params.smtputf8) {
		reply(s, 553, "5.6.7", "Error: non-ASCII recipient address "
		    "needs SMTPUTF8");
	} else if (s->rcpts.count >= BS_RCPT_MAX) {
		reply(s, 452, "4.5.3", "Error: too many recipients");
	} else {
		rcpt_list_add(&s->rcpts, rcpt);
		s->rcpts.utf8 |= utf8;
		s->state = BS_RCPT;
		reply(s, 250, "2.1.5", "Ok");
	}
	esmtp_rcpt_params_free(&params);
	free(rcpt);
}

/*
 * The message after 354, to the line "."; a leading dot is removed
 * (RFC 5321 4.5.2) and every line ends in CRLF. False at the end of
 * input: the message is incomplete and must not be queued.
 */
static bool read_data(struct bs_session *s, struct str *msg, bool *toobig)
{
	struct str line;
	bool complete = false;

	str_init(&line, STR_NO_MAX);
	*toobig = false;
	for (;;) {
		enum line_status st = read_line(s, &line, 1 << 20);
		if (st == LINE_EOF)
			break;
		if (st == LINE_TOOLONG) {
			*toobig = true;	/* over 1 MiB without a line end */
			continue;
		}
		if (line.len == 1 && line.data[0] == '.') {
			complete = true;
			break;
		}
		const char *p = line.data ? line.data : "";
		size_t n = line.len;
		if (n > 0 && p[0] == '.') {
			p++;
			n--;
		}
		if (!*toobig && (!str_append(msg, p, n) ||
		    !str_append(msg, "\r\n", 2)))
			*toobig = true;
	}
	str_free(&line);
	return complete;
}

/* False when the input ended inside the message. */
static bool cmd_data(struct bs_session *s, const char *arg)
{
	if (*arg != '\0') {
		reply(s, 501, "5.5.4", "Syntax: DATA");
		return true;
	}
	if (s->state != BS_RCPT) {
		reply(s, 503, "5.5.1", s->state == BS_MAIL ?
		    "Error: need RCPT command" : "Error: need MAIL command");
		return true;
	}
	esmtp_reply(&s->out, 354, NULL, true,
	    "End data with <CR><LF>.<CR><LF>");

	struct str msg;
	bool toobig;
	size_t limit = cfg.message_size_limit > 0 ?
	    (size_t)cfg.message_size_limit : STR_NO_MAX;
	str_init(&msg, limit);
	if (!read_data(s, &msg, &toobig)) {
		log_warning("sendmail -bs: input ended inside a message from "
		    "<%s>: nothing queued", s->sender);
		str_free(&msg);
		return false;
	}
	if (toobig) {
		reply(s, 552, "5.3.4", "Error: message file too big");
	} else {
		char id[QUEUE_ID_SIZE], err[512];
		struct local_submission m = {
			.sender = s->sender, .rcpts = &s->rcpts,
			.ret = s->params.ret, .envid = s->params.envid,
			.body = s->params.body_given ? (int)s->params.body : -1,
			.smtputf8 = s->sender_utf8 || s->params.smtputf8,
			.helo = s->helo,
			.protocol = s->esmtp ? "ESMTP" : "SMTP",
		};
		if (sendmail_enqueue(&m, &msg, id, sizeof(id), err,
		    sizeof(err))) {
			reply(s, 250, "2.0.0", "Ok: queued as %s", id);
		} else {
			log_error("sendmail -bs: cannot queue the message: %s",
			    err);
			reply(s, 451, "4.3.0", "Error: queue file write error");
		}
	}
	str_free(&msg);
	txn_reset(s);
	return true;
}

int sendmail_smtp(void)
{
	struct bs_session s = { .state = BS_GREETED };
	struct str line;
	struct esmtp_command cmd;
	bool more = true;

	bio_init(&s.out, STDOUT_FILENO, -1);
	str_init(&line, STR_NO_MAX);
	esmtp_reply(&s.out, 220, NULL, true, "%s ESMTP postern",
	    cfg.myhostname);
	while (more) {
		if (s.errors >= BS_ERRORS_MAX) {
			esmtp_reply(&s.out, 421, "4.7.0", true,
			    "%s Error: too many errors", cfg.myhostname);
			break;
		}
		enum line_status st = read_line(&s, &line, BS_LINE_MAX);
		if (st == LINE_EOF)
			break;
		if (st == LINE_TOOLONG) {
			reply(&s, 500, "5.5.2", "Error: line too long");
			continue;
		}
		esmtp_split_command(str_cstr(&line), &cmd);
		if (strcmp(cmd.verb, "EHLO") == 0 ||
		    strcmp(cmd.verb, "HELO") == 0) {
			cmd_helo(&s, cmd.verb, cmd.arg);
		} else if (strcmp(cmd.verb, "MAIL") == 0) {
			cmd_mail(&s, cmd.arg);
		} else if (strcmp(cmd.verb, "RCPT") == 0) {
			cmd_rcpt(&s, cmd.arg);
		} else if (strcmp(cmd.verb, "DATA") == 0) {
			more = cmd_data(&s, cmd.arg);
		} else if (strcmp(cmd.verb, "RSET") == 0) {
			txn_reset(&s);
			reply(&s, 250, "2.0.0", "Ok");
		} else if (strcmp(cmd.verb, "NOOP") == 0) {
			reply(&s, 250, "2.0.0", "Ok");
		} else if (strcmp(cmd.verb, "VRFY") == 0) {
			reply(&s, 252, "2.0.0", "Send some mail, I'll try my "
			    "best");
		} else if (strcmp(cmd.verb, "HELP") == 0) {
			reply(&s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT "
			    "DATA RSET NOOP VRFY HELP QUIT");
		} else if (strcmp(cmd.verb, "QUIT") == 0) {
			reply(&s, 221, "2.0.0", "Bye");
			more = false;
		} else if (strcmp(cmd.verb, "STARTTLS") == 0 ||
		    strcmp(cmd.verb, "AUTH") == 0 ||
		    strcmp(cmd.verb, "BDAT") == 0 ||
		    strcmp(cmd.verb, "EXPN") == 0 ||
		    strcmp(cmd.verb, "ETRN") == 0) {
			reply(&s, 502, "5.5.1", "Error: command not "
			    "implemented");
		} else {
			reply(&s, 500, "5.5.2", "Error: command not "
			    "recognized");
		}
	}
	bio_flush(&s.out);
	bio_free(&s.out);
	str_free(&line);
	txn_reset(&s);
	free(s.helo);
	return 0;
}
