/*
 * fuzz_server.c - libFuzzer harness for the SMTP/LMTP server core
 * (mail/smtp_server.c, mail/smtp_server_data.c): the command reader and
 * its line policy, the table lookup and state checks, error and junk
 * accounting, and the DATA and BDAT readers, driven by a whole client
 * session. `make fuzz` builds it into build/fuzz/fuzz_server;
 * `make fuzz-smoke` runs it briefly.
 *
 * The first input byte picks the dialect (SMTP, LMTP, or sendmail -bs's
 * local mode) and whether DATA's sink takes the body in runs of whole
 * lines (smtp_message.sink_takes_blocks); the rest is what the client
 * sends, through a socketpair, ended by the client's close. The
 * handlers are the smallest that exercise the core the way smtpd, lmtpd
 * and sendmail -bs do: they use the core's parsers and readers and keep
 * no policy.
 *
 * Checks, besides memory safety: a handler only ever runs in a state its
 * table row allows; a CR or LF inside a line piece (SMTP and LMTP) is
 * data, never a line end, and a message that carried one is marked
 * bare_newline for refusal (no smuggling); the session always ends in
 * SMTP_SERVER_CLOSING.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "bio.h"
#include "cfg.h"
#include "esmtp.h"
#include "smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ANY SMTP_SERVER_ANY_STATE
#define IN(st) SMTP_SERVER_IN(SMTP_SERVER_##st)

struct fuzz_session {
	struct smtp_message msg;
	bool local;			/* LF alone ends a line */
	bool saw_newline;		/* a piece held a bare CR or LF */
	bool blocks;			/* DATA's body in runs of lines */
};

static const struct smtp_server_command *row_of(struct smtp_server *srv,
    void (*handler)(struct smtp_server *, const char *))
{
	for (size_t i = 0; i < srv->ncommands; i++)
		if (srv->commands[i].handler == handler)
			return &srv->commands[i];
	abort();
}

/* The dispatcher must have checked the row's states. */
static void check_state(struct smtp_server *srv,
    void (*handler)(struct smtp_server *, const char *))
{
	if (!(row_of(srv, handler)->states & SMTP_SERVER_IN(srv->state)))
		abort();
}

static void sink_put(void *ctx, const char *p, size_t n, bool line_end)
{
	struct fuzz_session *fs = ctx;
	if (!fs->blocks) {
		if (memchr(p, '\r', n) != NULL || memchr(p, '\n', n) != NULL)
			fs->saw_newline = true;
		return;
	}
	/* A run of body lines (sink_takes_blocks) holds CRLF pairs, and
	 * never a CRLF followed by "." (that line goes the line path). */
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
			if (i + 2 < n && p[i + 2] == '.')
				abort();
			i++;
		} else if (p[i] == '\r' || p[i] == '\n') {
			fs->saw_newline = true;
		}
	}
}

/* A CR or LF that reached the text must have marked the message. */
static void check_marked(struct fuzz_session *fs)
{
	if (!fs->local && fs->saw_newline && !fs->msg.bare_newline)
		abort();
	fs->saw_newline = false;
}

static void cmd_hello(struct smtp_server *srv, const char *arg)
{
	check_state(srv, cmd_hello);
	smtp_server_enter_state(srv, SMTP_SERVER_READY);
	smtp_server_ehlo_reply(srv, ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME |
	    ESMTP_EXT_CHUNKING, 1 << 20);
}

static void cmd_mail(struct smtp_server *srv, const char *arg)
{
	struct addr a;
	const char *params, *enh;
	char text[256];
	int code;

	check_state(srv, cmd_mail);
	if (!esmtp_parse_path_arg(arg, false, 0, &a, &params, &code, &enh,
	    text, sizeof(text))) {
		smtp_server_reply(srv, code, enh, "%s", text);
		return;
	}
	addr_free(&a);
	smtp_server_enter_state(srv, SMTP_SERVER_MAIL);
	smtp_server_reply(srv, 250, "2.1.0", "Ok");
}

static void cmd_rcpt(struct smtp_server *srv, const char *arg)
{
	struct addr a;
	const char *params, *enh;
	char text[256];
	int code;

	check_state(srv, cmd_rcpt);
	if (!esmtp_parse_path_arg(arg, true, 0, &a, &params, &code, &enh,
	    text, sizeof(text))) {
		smtp_server_reply(srv, code, enh, "%s", text);
		return;
	}
	addr_free(&a);
	smtp_server_enter_state(srv, SMTP_SERVER_RCPT);
	smtp_server_reply(srv, 250, "2.1.5", "Ok");
}

static void message_end(struct smtp_server *srv)
{
	smtp_server_enter_state(srv, SMTP_SERVER_READY);
	smtp_server_reply(srv, 250, "2.0.0", "Ok");
	smtp_server_message_done(srv);
}

static void cmd_data(struct smtp_server *srv, const char *arg)
{
	struct fuzz_session *fs = SMTP_SERVER_SESSION(srv,
	    struct fuzz_session);
	struct smtp_message_sink sink = { sink_put, fs };

	check_state(srv, cmd_data);
	if (srv->state != SMTP_SERVER_RCPT) {
		smtp_server_reply(srv, 503, "5.5.1", "Error: need RCPT");
		return;
	}
	esmtp_reply(srv->out, 354, NULL, true, "go ahead");
	smtp_message_init(&fs->msg);
	fs->msg.sink_takes_blocks = fs->blocks;
	fs->saw_newline = false;
	enum bio_status st = smtp_server_read_data(srv, &fs->msg, &sink);
	if (st != BIO_OK) {
		smtp_server_io_failed(srv, st);
		return;
	}
	check_marked(fs);
	message_end(srv);
}

static void cmd_bdat(struct smtp_server *srv, const char *arg)
{
	struct fuzz_session *fs = SMTP_SERVER_SESSION(srv,
	    struct fuzz_session);
	struct smtp_message_sink sink = { sink_put, fs };
	unsigned long long size;
	bool last;

	check_state(srv, cmd_bdat);
	if (!esmtp_parse_bdat(arg, &size, &last)) {
		smtp_server_reply(srv, 521, "5.5.4", "Syntax: BDAT");
		smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
		return;
	}
	bool open = srv->state == SMTP_SERVER_RCPT ||
	    srv->state == SMTP_SERVER_BDAT;
	if (srv->state == SMTP_SERVER_RCPT) {
		smtp_message_init(&fs->msg);
		fs->saw_newline = false;
	}
	enum bio_status st = smtp_server_read_chunk(srv, &fs->msg, size,
	    open ? &sink : NULL);
	if (st != BIO_OK) {
		smtp_server_io_failed(srv, st);
		return;
	}
	if (!open) {
		smtp_server_reply(srv, 503, "5.5.1", "Error: need RCPT");
		return;
	}
	if (!last) {
		smtp_server_enter_state(srv, SMTP_SERVER_BDAT);
		smtp_server_reply(srv, 250, "2.0.0", "Ok");
		return;
	}
	smtp_server_end_chunks(&fs->msg, &sink);
	check_marked(fs);
	message_end(srv);
}

static void cmd_rset(struct smtp_server *srv, const char *arg)
{
	check_state(srv, cmd_rset);
	if (srv->state != SMTP_SERVER_CONNECTED)
		smtp_server_enter_state(srv, SMTP_SERVER_READY);
	smtp_server_reply(srv, 250, "2.0.0", "Ok");
}

static void cmd_quit(struct smtp_server *srv, const char *arg)
{
	smtp_server_reply(srv, 221, "2.0.0", "Bye");
	smtp_server_enter_state(srv, SMTP_SERVER_CLOSING);
}

static const struct smtp_server_command commands[] = {
	{ "EHLO", cmd_hello, SMTP_SERVER_NOT_BDAT,
	    SMTP_CMD_JUNK | SMTP_CMD_SMTP_ONLY },
	{ "HELO", cmd_hello, SMTP_SERVER_NOT_BDAT,
	    SMTP_CMD_JUNK | SMTP_CMD_SMTP_ONLY },
	{ "LHLO", cmd_hello, SMTP_SERVER_NOT_BDAT,
	    SMTP_CMD_JUNK | SMTP_CMD_LMTP_ONLY },
	{ "MAIL", cmd_mail, IN(READY), SMTP_CMD_LONG_LINE },
	{ "RCPT", cmd_rcpt, IN(MAIL) | IN(RCPT), SMTP_CMD_LONG_LINE },
	{ "DATA", cmd_data, IN(MAIL) | IN(RCPT), 0 },
	{ "BDAT", cmd_bdat, ANY, 0 },
	{ "RSET", cmd_rset, ANY, SMTP_CMD_JUNK },
	{ "NOOP", smtp_server_cmd_noop, ANY, SMTP_CMD_JUNK },
	{ "VRFY", smtp_server_cmd_vrfy, ANY, SMTP_CMD_JUNK },
	{ "QUIT", cmd_quit, ANY, SMTP_CMD_NO_ERROR },
	{ "ETRN", NULL, ANY, SMTP_CMD_NOT_OFFERED },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned dialects[] = { 0, SMTP_SERVER_LMTP,
	    SMTP_SERVER_LOCAL };
	int sv[2];

	/* What one socket buffer holds: the writer never blocks. */
	if (size < 1 || size > 48 * 1024)
		return 0;
	unsigned dialect = dialects[data[0] % 3];
	cfg.smtpd_error_limit = 20;
	cfg.smtpd_junk_command_limit = 100;
	cfg.hopcount_limit = 50;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	int one = 256 * 1024;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
	if (size > 1 && write(sv[0], data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	shutdown(sv[0], SHUT_WR);
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (devnull < 0)
		abort();

	/* The next choice in the first byte: a sink that takes the body
	 * in runs of whole lines, as smtpd's does. */
	struct fuzz_session fs = { .local = dialect == SMTP_SERVER_LOCAL,
	    .blocks = (data[0] / 3) % 2 == 1 };
	struct bio in, out;
	bio_init(&in, sv[1], 1000);
	bio_init(&out, devnull, 1000);
	if (fs.local)
		in.lf_ends_line = true;
	struct smtp_server srv;
	smtp_server_init(&srv, &fs, commands,
	    sizeof(commands) / sizeof(commands[0]), dialect, &in, &out,
	    "fuzz.test", "fuzz[127.0.0.1]");
	smtp_server_run(&srv);
	if (srv.state != SMTP_SERVER_CLOSING)
		abort();
	smtp_server_free(&srv);
	bio_free(&in);
	bio_free(&out);
	close(sv[0]);
	close(sv[1]);
	close(devnull);
	return 0;
}
