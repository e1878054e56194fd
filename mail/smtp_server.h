/*
 * smtp_server.h - the one SMTP/LMTP server core under smtpd, lmtpd and
 * "sendmail -bs": the session state machine, the command table and its
 * dispatcher, the command-line reader, replies with error accounting, the
 * EHLO/LHLO extension list, and the DATA and BDAT readers with one bare
 * CR/LF policy and the hop count (smtp_server_data.c).
 *
 * Each program embeds a struct smtp_server in its own session and gives
 * it a command table; handlers get the core back and find their session
 * with SMTP_SERVER_SESSION(). Policy (relay control, mailbox lookup,
 * where the message goes) stays in the programs; how the protocol is
 * spoken is decided here, once.
 *
 * Trust: everything read from the peer is untrusted. Command lines are
 * bounded and end only at CRLF (a bare CR or LF refuses the line), except
 * in SMTP_SERVER_LOCAL mode, where the peer is a program of the local
 * user who started us (sendmail -bs) and LF alone also ends a line, as
 * plain sendmail reads its input.
 */
#ifndef POSTERN_SMTP_SERVER_H
#define POSTERN_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "bio.h"
#include "str.h"

/* RFC 5321 4.1.4 command order; one enum for the three programs. */
enum smtp_server_state {
	SMTP_SERVER_CONNECTED,	/* greeting sent, no HELO/EHLO/LHLO yet */
	SMTP_SERVER_READY,	/* greeted, no transaction */
	SMTP_SERVER_MAIL,	/* MAIL accepted, no recipient yet */
	SMTP_SERVER_RCPT,	/* at least one recipient accepted */
	SMTP_SERVER_BDAT,	/* inside a BDAT sequence (RFC 3030) */
	SMTP_SERVER_CLOSING,	/* QUIT, 421, lost peer: stop reading */
};

#define SMTP_SERVER_IN(st) (1u << (st))
#define SMTP_SERVER_ANY_STATE (SMTP_SERVER_IN(SMTP_SERVER_CONNECTED) | \
	SMTP_SERVER_IN(SMTP_SERVER_READY) | SMTP_SERVER_IN(SMTP_SERVER_MAIL) | \
	SMTP_SERVER_IN(SMTP_SERVER_RCPT) | SMTP_SERVER_IN(SMTP_SERVER_BDAT))
#define SMTP_SERVER_GREETED (SMTP_SERVER_ANY_STATE & \
	~SMTP_SERVER_IN(SMTP_SERVER_CONNECTED))
#define SMTP_SERVER_NOT_BDAT (SMTP_SERVER_ANY_STATE & \
	~SMTP_SERVER_IN(SMTP_SERVER_BDAT))

/* Dialects: the differences that are the protocol's, not policy. */
#define SMTP_SERVER_LMTP 0x01	/* RFC 2033: LHLO, replies per recipient */
#define SMTP_SERVER_LOCAL 0x02	/* sendmail -bs: LF alone ends a line */

/* Flags of a command table row. */
#define SMTP_CMD_JUNK 0x01	/* counts toward smtpd_junk_command_limit */
#define SMTP_CMD_NOT_OFFERED 0x02 /* known to SMTP, not offered: 502 5.5.1 */
#define SMTP_CMD_LONG_LINE 0x04	/* may use SMTP_SERVER_LONG_LINE_MAX */
#define SMTP_CMD_NO_ERROR 0x08	/* a refusal is not counted as an error */
#define SMTP_CMD_SMTP_ONLY 0x10	/* refused in LMTP (RFC 2033 4.1) */
#define SMTP_CMD_LMTP_ONLY 0x20	/* unknown outside LMTP */

/*
 * RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF;
 * MAIL and RCPT parameters (ORCPT alone may be 500) and AUTH's initial
 * response (RFC 4954 4) get up to 2048, as Postfix's line_length_limit.
 */
#define SMTP_SERVER_LINE_MAX 510
#define SMTP_SERVER_LONG_LINE_MAX 2046

struct smtp_server;

struct smtp_server_command {
	const char *verb;
	void (*handler)(struct smtp_server *srv, const char *arg);
	unsigned states;	/* SMTP_SERVER_IN() bits where it may come */
	unsigned flags;		/* SMTP_CMD_* */
};

/* Per-command counters for the disconnect log line. */
struct smtp_server_count {
	unsigned ok, total;
};

struct smtp_server {
	struct bio *in, *out;	/* the same bio, except for sendmail -bs */
	unsigned dialect;	/* SMTP_SERVER_LMTP, SMTP_SERVER_LOCAL */
	/*
	 * A deadline per command (smtpd): the command's line and all its
	 * handler reads (AUTH's answers) within the input's timeout_ms, as
	 * a whole, unless the handler sets a deadline of its own (DATA and
	 * BDAT: smtpd_data_deadline).
	 */
	bool command_deadline;
	enum smtp_server_state state;
	const char *hostname;	/* ours, for 421 replies */
	const char *peer;	/* "name[addr]" for logs */
	const struct smtp_server_command *commands;
	size_t ncommands;
	struct smtp_server_count *counts;	/* one per table row */
	struct smtp_server_count unknown;
	unsigned errors;	/* error replies counted (smtpd_error_limit) */
	unsigned junk;		/* junk commands since the last message */
	int last_code;		/* of the last reply */
	bool error_excused;	/* this refusal does not count (RFC 5321
				 * 4.5.3.1.10 recipient overshoot) */
	const char *last_verb;	/* for "lost connection after X" */
	struct str line;
	void *session;		/* the program's session */
};

#define SMTP_SERVER_SESSION(srv, type) ((type *)(srv)->session)

void smtp_server_init(struct smtp_server *srv, void *session,
    const struct smtp_server_command *commands, size_t ncommands,
    unsigned dialect, struct bio *in, struct bio *out, const char *hostname,
    const char *peer);
void smtp_server_free(struct smtp_server *srv);

/* The one function that enters a state (and traces it). */
void smtp_server_enter_state(struct smtp_server *srv,
    enum smtp_server_state st);

/*
 * Queue a reply: basic and enhanced code always paired (RFC 2034; NULL
 * only where RFC 2034 has none: 220, 354, the HELO/EHLO/LHLO reply).
 */
void smtp_server_reply(struct smtp_server *srv, int code,
    const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with the text as it is, no format: no printf. */
void smtp_server_reply_text(struct smtp_server *srv, int code,
    const char *enhanced, const char *text);
/* Send buffered replies now; false if the peer is gone. */
bool smtp_server_flush(struct smtp_server *srv);

/*
 * Handlers every dialect shares, for the programs' command tables: NOOP,
 * and VRFY, which never verifies (RFC 5321 3.5.3: 252 2.0.0, as
 * Postfix answers), so no user list leaks through it.
 */
void smtp_server_cmd_noop(struct smtp_server *srv, const char *arg);
void smtp_server_cmd_vrfy(struct smtp_server *srv, const char *arg);

/*
 * The EHLO/LHLO reply: our name, then the extensions in ext (ESMTP_EXT_*
 * of esmtp.h and the SMTP_SERVER_OFFER_* below), always in one order.
 */
#define SMTP_SERVER_OFFER_STARTTLS 0x1000
#define SMTP_SERVER_OFFER_AUTH 0x2000	/* "AUTH PLAIN LOGIN" */
void smtp_server_ehlo_reply(struct smtp_server *srv, unsigned ext,
    long long size_limit);

/*
 * Read one command line and run it: the line policy (length, NUL, bare
 * CR/LF), the table lookup, the state check, the handler, the counters
 * and error accounting, then the error and junk limits (421 4.7.0 and
 * CLOSING). Replies to a pipelined group leave together (RFC 2920).
 */
void smtp_server_command(struct smtp_server *srv);
/* Until CLOSING; the caller sent the greeting. Flushes at the end. */
void smtp_server_run(struct smtp_server *srv);

/* Log "timeout/lost connection after VERB from peer", 421 on timeout. */
void smtp_server_io_failed(struct smtp_server *srv, enum bio_status st);

/* The "helo=1 mail=1/2 ... commands=N/M" part of the disconnect line. */
void smtp_server_append_counts(const struct smtp_server *srv,
    struct str *line);

/* The message was taken: junk commands start over (Postfix). */
void smtp_server_message_done(struct smtp_server *srv);

/* ---- smtp_server_data.c: the message ---- */

/*
 * Where the text of a message goes, a piece at a time: put() gets the
 * bytes of one line (dot-stuffing undone, without its line end) in one or
 * more pieces; line_end says this piece ends the line, whose end the sink
 * writes as it stores lines (CRLF in the queue, LF in a Maildir).
 */
struct smtp_message_sink {
	void (*put)(void *ctx, const char *p, size_t n, bool line_end);
	void *ctx;
};

/* What the readers learn about a message while it streams past. */
struct smtp_message {
	unsigned long long size;	/* octets, line ends as CRLF */
	/*
	 * Set by the caller after smtp_message_init(): its sink's put()
	 * takes several whole lines of the body at once, the CRLFs between
	 * them left inside the piece (smtpd stores CRLF as it came). DATA
	 * then hands the body over in pieces as large as the read buffer,
	 * not a call per line. lmtpd, which makes LF of CRLF, does not.
	 */
	bool sink_takes_blocks;
	bool bare_newline;		/* a bare CR or LF was seen */
	bool mid_line;			/* the last piece ended no line */
	unsigned received;		/* Received: header fields */
	unsigned delivered_to;		/* Delivered-To: header fields */
	/* the header scan (RFC 5322 2.2) */
	bool in_body;
	bool line_open;			/* a line has begun, no end yet */
	enum {
		SMTP_HEAD_NAME,		/* field name so far (or empty) */
		SMTP_HEAD_NAME_WSP,	/* "Name " before the colon (obs) */
		SMTP_HEAD_FIELD,	/* "Name:" seen: a header field */
		SMTP_HEAD_CONTINUED,	/* began with WSP: folded field */
		SMTP_HEAD_NOT_FIELD,	/* no header field: the body began */
	} head_state;
	char head[16];			/* its first bytes, lowercased */
	size_t head_len;
	/* BDAT: chunks are not lines */
	bool pending_cr;		/* a chunk ended in CR */
};

void smtp_message_init(struct smtp_message *m);

/*
 * Follow the header section (RFC 5322 2.2) a piece at a time and count
 * Received: and Delivered-To: fields (RFC 5321 6.3 loop detection); only
 * the first bytes of each line are looked at. The readers call it; plain
 * sendmail calls it on the lines it reads itself.
 */
void smtp_message_scan(struct smtp_message *m, const char *p, size_t n,
    bool line_end);
/* More hops than hopcount_limit: 554 5.4.6 at the end of the data. */
bool smtp_message_too_many_hops(const struct smtp_message *m);

/*
 * DATA: the text up to CRLF "." CRLF, dots unstuffed (RFC 5321 4.5.2).
 * A bare CR or LF is never a line end (no SMTP smuggling) and marks the
 * message (bare_newline) for refusal; in SMTP_SERVER_LOCAL mode LF is a
 * line end. BIO_OK once the final dot was read.
 */
enum bio_status smtp_server_read_data(struct smtp_server *srv,
    struct smtp_message *m, const struct smtp_message_sink *sink);

/*
 * BDAT: one chunk of size octets (RFC 3030 2), taken as lines: CRLF ends
 * a line even across chunks; a CR or LF alone marks bare_newline. sink
 * NULL reads and drops the chunk.
 */
enum bio_status smtp_server_read_chunk(struct smtp_server *srv,
    struct smtp_message *m, unsigned long long size,
    const struct smtp_message_sink *sink);
/* After BDAT LAST: a CR held back is bare; an open last line is ended. */
void smtp_server_end_chunks(struct smtp_message *m,
    const struct smtp_message_sink *sink);

#endif
