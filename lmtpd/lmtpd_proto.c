/*
 * lmtpd_proto.c - one LMTP session (RFC 2033): the command table and the
 * state machine, from the greeting to QUIT.
 *
 * Trusts nothing the client sends. Command lines are bounded (RFC 5321
 * 4.5.3.1.4), end only at CRLF (bio), and are parsed with the grammar that
 * smtpd uses (esmtp.h, addr.h). Replies are our own words paired with
 * RFC 3463 codes; the only client-derived text in them is a recipient
 * address that the path parser accepted. Replies to a pipelined group are
 * flushed together, once no more input is waiting (RFC 2920 3.1).
 *
 * LMTP's one real difference from SMTP: after the message (DATA or BDAT
 * LAST) there is one reply per accepted recipient, in RCPT order, and each
 * recipient's copy succeeds or fails on its own (RFC 2033 4.2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "addr.h"
#include "bio.h"
#include "cfg.h"
#include "esmtp.h"
#include "lmtpd.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "str.h"

#define LMTP_LINE_MAX 512		/* RFC 5321 4.5.3.1.4, with CRLF */
#define LMTP_DATA_PIECE (64 * 1024)	/* bytes of a text line held at once */
#define LMTP_ERROR_LIMIT 20		/* protocol errors before we hang up */
#define LMTP_JUNK_LIMIT 100		/* commands between transactions */

/*
 * The parameters MAIL and RCPT accept. CHUNKING is announced, but not
 * BINARYMIME: a Maildir stores text with LF line ends, which binary data
 * would not survive, so BODY=BINARYMIME is refused (555) like any
 * parameter we do not offer.
 */
#define LMTP_EXTENSIONS (ESMTP_EXT_SIZE | ESMTP_EXT_8BITMIME | \
	ESMTP_EXT_SMTPUTF8)

enum lmtp_state {
	LMTP_STATE_GREETED,	/* connected, no LHLO yet */
	LMTP_STATE_READY,	/* after LHLO, no transaction */
	LMTP_STATE_MAIL,	/* MAIL accepted, no recipient yet */
	LMTP_STATE_RCPT,	/* at least one recipient accepted */
	LMTP_STATE_BDAT,	/* inside a BDAT sequence, LAST not yet seen */
	LMTP_STATE_QUIT,	/* the session is over */
};

static const char *const lmtp_state_names[] = {
	"GREETED", "READY", "MAIL", "RCPT", "BDAT", "QUIT",
};

#define STATE_BIT(s) (1u << (s))
#define ANY_STATE (STATE_BIT(LMTP_STATE_GREETED) | \
	STATE_BIT(LMTP_STATE_READY) | STATE_BIT(LMTP_STATE_MAIL) | \
	STATE_BIT(LMTP_STATE_RCPT) | STATE_BIT(LMTP_STATE_BDAT))

struct lmtp_rcpt {
	char *address;		/* as the client gave it, after parsing */
	char *maildir;		/* absolute path, ends in "/" */
};

/* One mail transaction: MAIL to the end of the message, or RSET. */
struct lmtp_txn {
	char id[QUEUE_ID_SIZE];
	char *sender;		/* "" for <> */
	struct esmtp_mail_params params;
	struct lmtp_rcpt *rcpts;
	size_t nrcpts, cap;
	struct timeval start;
};

struct lmtp_session {
	struct daemon_conn *conn;
	struct bio bio;
	enum lmtp_state state;
	char peer[80];		/* "unix" or "192.0.2.7" for logs */
	char *lhlo;		/* the client's name, sanitised */
	bool in_txn;
	struct lmtp_txn txn;
	struct lmtpd_spool spool;
	unsigned errors;
	unsigned junk;
	unsigned long messages;
};

struct lmtp_command {
	const char *verb;
	void (*handler)(struct lmtp_session *s, const char *arg);
	unsigned states;	/* where the verb is in sequence */
	bool junk;		/* counts toward LMTP_JUNK_LIMIT */
};

static void session_set_state(struct lmtp_session *s, enum lmtp_state st)
{
	if (s->state != st)
		log_debug("%s: state %s -> %s", s->peer,
		    lmtp_state_names[s->state], lmtp_state_names[st]);
	s->state = st;
}

/*
 * A transaction ID for log lines and replies, shaped like a queue ID (14
 * characters of [0-9A-Za-z], sortable by time): seconds, microseconds and
 * process ID, with the microseconds made strictly increasing within the
 * process so that no two transactions on the host share one.
 */
static void txn_new_id(char id[QUEUE_ID_SIZE])
{
	static const char digits[] =
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	static long long last;
	struct timeval tv;
	unsigned long long parts[3];
	const int widths[3] = { 6, 4, 4 };
	size_t o = 0;

	gettimeofday(&tv, NULL);
	long long now = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
	if (now <= last)
		now = last + 1;
	last = now;
	parts[0] = (unsigned long long)(now / 1000000);
	parts[1] = (unsigned long long)(now % 1000000);
	parts[2] = (unsigned long long)getpid();
	for (int i = 0; i < 3; i++) {
		unsigned long long v = parts[i];
		for (int w = widths[i] - 1; w >= 0; w--) {
			id[o + (size_t)w] = digits[v % 62];
			v /= 62;
		}
		o += (size_t)widths[i];
	}
	id[o] = '\0';
}

static const char *txn_id(const struct lmtp_session *s)
{
	return s->in_txn ? s->txn.id : "NOQUEUE";
}

/* ---- transaction ---- */

static void txn_free(struct lmtp_session *s)
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
static void txn_end(struct lmtp_session *s)
{
	txn_free(s);
	session_set_state(s, LMTP_STATE_READY);
}

/* ---- small helpers ---- */

/* A recipient address fit to appear in a reply or a header: printable
 * ASCII only (a UTF-8 address is named generically). */
static const char *printable_address(const char *address)
{
	for (const char *p = address; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return "recipient";
	return address;
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

/* "FROM:" / "TO:" and the text after it, tolerating spaces after ':'. */
static const char *after_keyword(const char *arg, const char *keyword)
{
	size_t n = strlen(keyword);
	if (strncasecmp(arg, keyword, n) != 0)
		return NULL;
	arg += n;
	while (*arg == ' ')
		arg++;
	return arg;
}

static void reply_error(struct lmtp_session *s, int code, const char *enh,
    const char *text)
{
	s->errors++;
	esmtp_reply(&s->bio, code, enh, true, "%s", text);
}

/* ---- LHLO, HELO/EHLO ---- */

static void cmd_lhlo(struct lmtp_session *s, const char *arg)
{
	if (*arg == '\0') {
		reply_error(s, 501, "5.5.4", "Syntax: LHLO hostname");
		return;
	}
	/* RFC 5321 4.1.4: a new greeting resets the transaction. */
	txn_end(s);
	free(s->lhlo);
	s->lhlo = sanitise_lhlo(arg);
	esmtp_reply(&s->bio, 250, NULL, false, "%s", lmtpd_settings.hostname);
	esmtp_reply(&s->bio, 250, NULL, false, "PIPELINING");
	esmtp_reply(&s->bio, 250, NULL, false, "ENHANCEDSTATUSCODES");
	esmtp_reply(&s->bio, 250, NULL, false, "8BITMIME");
	if (lmtpd_settings.size_limit > 0)
		esmtp_reply(&s->bio, 250, NULL, false, "SIZE %lld",
		    lmtpd_settings.size_limit);
	else
		esmtp_reply(&s->bio, 250, NULL, false, "SIZE");
	esmtp_reply(&s->bio, 250, NULL, false, "SMTPUTF8");
	esmtp_reply(&s->bio, 250, NULL, true, "CHUNKING");
}

/* RFC 2033 4.1: an LMTP server must not accept HELO or EHLO. */
static void cmd_helo(struct lmtp_session *s, const char *arg)
{
	reply_error(s, 500, "5.5.1", "This is LMTP: use LHLO");
}

/* ---- MAIL ---- */

static void cmd_mail(struct lmtp_session *s, const char *arg)
{
	const char *path = after_keyword(arg, "FROM:");
	const char *end, *why, *enh;
	struct addr sender;
	struct esmtp_mail_params params;
	int code;

	if (s->state == LMTP_STATE_GREETED) {
		reply_error(s, 503, "5.5.1", "Send LHLO first");
		return;
	}
	if (path == NULL) {
		reply_error(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	if (!addr_parse_path(path, ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8, &sender,
	    &end, &why)) {
		esmtp_reply(&s->bio, 501, "5.1.7", true, "Bad sender address: %s",
		    why);
		s->errors++;
		return;
	}
	if (!esmtp_parse_mail_params(end, LMTP_EXTENSIONS, &params, &code,
	    &enh, &why)) {
		addr_free(&sender);
		reply_error(s, code, enh, why);
		return;
	}
	if (sender.has_utf8 && !params.smtputf8) {
		/* RFC 6531 3.4: UTF-8 in a path needs the SMTPUTF8 parameter. */
		addr_free(&sender);
		esmtp_mail_params_free(&params);
		reply_error(s, 553, "5.6.7",
		    "UTF-8 address without the SMTPUTF8 parameter");
		return;
	}
	if (lmtpd_settings.size_limit > 0 &&
	    params.size > lmtpd_settings.size_limit) {
		/* RFC 1870 6.1 */
		addr_free(&sender);
		esmtp_mail_params_free(&params);
		reply_error(s, 552, "5.3.4", "Message size exceeds fixed limit");
		return;
	}

	s->in_txn = true;
	txn_new_id(s->txn.id);
	s->txn.sender = xstrdup(sender.address);
	s->txn.params = params;
	gettimeofday(&s->txn.start, NULL);
	addr_free(&sender);
	s->junk = 0;
	session_set_state(s, LMTP_STATE_MAIL);
	esmtp_reply(&s->bio, 250, "2.1.0", true, "Ok");
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

static void cmd_rcpt(struct lmtp_session *s, const char *arg)
{
	const char *path = after_keyword(arg, "TO:");
	const char *end, *why, *enh;
	struct addr rcpt;
	struct esmtp_rcpt_params params;
	char *maildir = NULL;
	int code;
	unsigned flags = ADDR_ALLOW_POSTMASTER;

	if (path == NULL) {
		reply_error(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	if (s->txn.params.smtputf8)
		flags |= ADDR_ALLOW_UTF8;
	if (!addr_parse_path(path, flags, &rcpt, &end, &why)) {
		esmtp_reply(&s->bio, 501, "5.1.3", true,
		    "Bad recipient address: %s", why);
		s->errors++;
		return;
	}
	if (!esmtp_parse_rcpt_params(end, LMTP_EXTENSIONS, &params, &code,
	    &enh, &why)) {
		addr_free(&rcpt);
		reply_error(s, code, enh, why);
		return;
	}
	esmtp_rcpt_params_free(&params);

	const char *shown = printable_address(rcpt.address);
	if ((long long)s->txn.nrcpts >= lmtpd_settings.recipient_limit) {
		/* RFC 5321 4.5.3.1.10 */
		esmtp_reply(&s->bio, 452, "4.5.3", true, "Too many recipients");
		addr_free(&rcpt);
		return;
	}

	switch (lmtpd_rcpt_lookup(rcpt.address, &maildir)) {
	case LMTPD_RCPT_FOUND:
		break;
	case LMTPD_RCPT_UNKNOWN:
		log_info("%s: reject: RCPT from %s: 550 5.1.1 <%s>: "
		    "mailbox unknown", txn_id(s), s->peer, shown);
		esmtp_reply(&s->bio, 550, "5.1.1", true,
		    "<%s>: Mailbox unknown", shown);
		s->errors++;
		addr_free(&rcpt);
		return;
	case LMTPD_RCPT_TEMPFAIL:
		log_warning("%s: RCPT from %s: <%s>: mailbox_maps lookup "
		    "failed", txn_id(s), s->peer, shown);
		esmtp_reply(&s->bio, 451, "4.3.0", true,
		    "<%s>: Mailbox lookup failed, try again later", shown);
		addr_free(&rcpt);
		return;
	case LMTPD_RCPT_BADMAP:
		esmtp_reply(&s->bio, 451, "4.3.5", true,
		    "<%s>: Mailbox misconfigured, try again later", shown);
		addr_free(&rcpt);
		return;
	}

	if (rcpt_over_quota(maildir)) {
		bool temp = lmtpd_settings.quota_tempfail;
		log_info("%s: reject: RCPT from %s: %s <%s>: mailbox full",
		    txn_id(s), s->peer, temp ? "452 4.2.2" : "552 5.2.2",
		    shown);
		esmtp_reply(&s->bio, temp ? 452 : 552, temp ? "4.2.2" : "5.2.2",
		    true, "<%s>: Mailbox full", shown);
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
	session_set_state(s, LMTP_STATE_RCPT);
	esmtp_reply(&s->bio, 250, "2.1.5", true, "Ok");
}

/* ---- delivery after the message ---- */

/* Our trace fields for one recipient's copy: LF line ends, as stored. */
static void build_header(struct lmtp_session *s, const struct lmtp_rcpt *r,
    struct str *h)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	const char *proto = s->txn.params.smtputf8 ? "UTF8LMTP" : "LMTP";

	localtime_r(&now, &tm);
	/* RFC 5322 3.3 date-time */
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	str_clear(h);
	/* RFC 5321 4.4: Return-Path at delivery, the envelope sender. */
	str_appendf(h, "Return-Path: <%s>\n", s->txn.sender);
	str_appendf(h, "Delivered-To: %s\n", r->address);
	/* RFC 5321 4.4 trace field; RFC 3848 / 6531 protocol keyword. */
	str_appendf(h, "Received: from %s (%s)\n\tby %s (postern) with %s "
	    "id %s\n\tfor <%s>; %s\n", s->lhlo ? s->lhlo : "unknown", s->peer,
	    lmtpd_settings.hostname, proto, s->txn.id, r->address, date);
}

static double elapsed_since(const struct timeval *start)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_usec - start->tv_usec) / 1e6;
}

/* Addresses came from the client: escaped before they are logged. */
static const char *log_addr(char *buf, size_t size, const char *address)
{
	return log_escape(buf, size, address, strlen(address));
}

static void log_delivery(struct lmtp_session *s, const struct lmtp_rcpt *r,
    const char *dsn, const char *status, const char *why)
{
	char addr[600];
	log_info("%s: to=<%s>, relay=local, maildir=%s, delay=%.2f, "
	    "dsn=%s, status=%s (%s)", s->txn.id,
	    log_addr(addr, sizeof(addr), r->address), r->maildir,
	    elapsed_since(&s->txn.start), dsn, status, why);
}

/* Store one recipient's copy and queue its reply (RFC 2033 4.2). */
static void deliver_one(struct lmtp_session *s, const struct lmtp_rcpt *r,
    struct str *header)
{
	const char *shown = printable_address(r->address);
	struct lmtpd_spool *sp = &s->spool;
	char name[512], err[600];

	if (sp->too_big) {
		/* RFC 1870 6.3 */
		log_delivery(s, r, "5.3.4", "bounced", "message too big");
		esmtp_reply(&s->bio, 552, "5.3.4", true,
		    "<%s>: Message size exceeds fixed limit", shown);
		return;
	}
	if ((long long)sp->delivered_to > lmtpd_settings.max_delivered_to) {
		/* RFC 5321 6.3: a message that keeps coming back is a loop. */
		log_delivery(s, r, "5.4.6", "bounced", "mail forwarding loop: "
		    "too many Delivered-To header fields");
		esmtp_reply(&s->bio, 554, "5.4.6", true,
		    "<%s>: Mail forwarding loop detected", shown);
		return;
	}
	if (sp->write_failed) {
		log_delivery(s, r, "4.3.0", "deferred",
		    "temporary spool file not writable");
		esmtp_reply(&s->bio, 451, "4.3.0", true,
		    "<%s>: Temporary failure, try again later", shown);
		return;
	}

	build_header(s, r, header);
	err[0] = '\0';
	enum lmtpd_store_result res = lmtpd_maildir_store(r->maildir,
	    str_cstr(header), header->len, sp, lmtpd_settings.quota, name,
	    sizeof(name), err, sizeof(err));
	switch (res) {
	case LMTPD_STORE_OK:
		log_delivery(s, r, "2.0.0", "sent", "delivered to maildir");
		esmtp_reply(&s->bio, 250, "2.0.0", true, "<%s> Delivered (%s)",
		    shown, s->txn.id);
		return;
	case LMTPD_STORE_QUOTA:
		if (lmtpd_settings.quota_tempfail) {
			log_delivery(s, r, "4.2.2", "deferred", err);
			esmtp_reply(&s->bio, 452, "4.2.2", true,
			    "<%s>: Mailbox full", shown);
		} else {
			log_delivery(s, r, "5.2.2", "bounced", err);
			esmtp_reply(&s->bio, 552, "5.2.2", true,
			    "<%s>: Mailbox full", shown);
		}
		return;
	case LMTPD_STORE_NOSPACE:
		log_delivery(s, r, "4.3.1", "deferred", err);
		esmtp_reply(&s->bio, 452, "4.3.1", true,
		    "<%s>: Insufficient system storage", shown);
		return;
	case LMTPD_STORE_TEMPFAIL:
		log_delivery(s, r, "4.3.0", "deferred", err);
		esmtp_reply(&s->bio, 451, "4.3.0", true,
		    "<%s>: Cannot store the message, try again later", shown);
		return;
	}
}

/* The message is complete: one reply per accepted recipient, in order. */
static void deliver_all(struct lmtp_session *s)
{
	struct str header;
	char sender[600];

	lmtpd_spool_finish(&s->spool);
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu, client=%s", s->txn.id,
	    log_addr(sender, sizeof(sender), s->txn.sender),
	    s->spool.received_bytes, s->txn.nrcpts, s->peer);
	str_init(&header, STR_NO_MAX);
	for (size_t i = 0; i < s->txn.nrcpts; i++)
		deliver_one(s, &s->txn.rcpts[i], &header);
	str_free(&header);
	s->messages++;
	txn_end(s);
}

/* ---- DATA ---- */

/*
 * Read the message text up to CRLF.CRLF, undoing dot-stuffing (RFC 5321
 * 4.5.2). Lines of any length are taken in pieces. false if the session
 * broke (EOF, timeout): there is nobody to reply to.
 */
static bool read_data(struct lmtp_session *s)
{
	struct str piece;
	bool line_start = true, dot_line = false;
	size_t line_len = 0;
	enum bio_status st;

	str_init(&piece, LMTP_DATA_PIECE);
	for (;;) {
		unsigned flags = 0;
		str_clear(&piece);
		st = bio_readline_part(&s->bio, &piece, LMTP_DATA_PIECE, &flags);
		if (st != BIO_OK)
			break;
		const char *p = str_cstr(&piece);
		size_t n = piece.len;
		bool complete = !(flags & BIO_LINE_PARTIAL);
		if (line_start) {
			if (n == 0 && !complete)
				continue;
			line_start = false;
			line_len = 0;
			dot_line = n > 0 && p[0] == '.';
			if (dot_line) {
				p++;
				n--;
			}
		}
		line_len += n;
		if (complete && dot_line && line_len == 0) {
			str_free(&piece);
			return true;	/* the lone "." */
		}
		lmtpd_spool_put_line(&s->spool, p, n, complete);
		if (complete)
			line_start = true;
	}
	str_free(&piece);
	log_info("%s: lost connection after DATA from %s (%s)", txn_id(s),
	    s->peer, bio_status_name(st));
	if (st == BIO_TIMEOUT)
		esmtp_reply(&s->bio, 421, "4.4.2", true,
		    "%s Error: timeout exceeded", lmtpd_settings.hostname);
	return false;
}

static void cmd_data(struct lmtp_session *s, const char *arg)
{
	if (*arg != '\0') {
		reply_error(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (s->state == LMTP_STATE_MAIL) {
		/* RFC 2033 4.2: no successful RCPT, DATA must fail. */
		reply_error(s, 503, "5.5.1", "No valid recipients");
		return;
	}
	esmtp_reply(&s->bio, 354, NULL, true,
	    "End data with <CR><LF>.<CR><LF>");
	if (bio_flush(&s->bio) != BIO_OK) {
		session_set_state(s, LMTP_STATE_QUIT);
		return;
	}
	if (!read_data(s)) {
		txn_free(s);
		session_set_state(s, LMTP_STATE_QUIT);
		return;
	}
	deliver_all(s);
}

/* ---- BDAT (RFC 3030) ---- */

/* "<size> [LAST]"; false on a syntax error. */
static bool parse_bdat(const char *arg, unsigned long long *size, bool *last)
{
	unsigned long long v = 0;
	size_t digits = 0;

	while (arg[digits] >= '0' && arg[digits] <= '9') {
		if (digits >= 18)
			return false;
		v = v * 10 + (unsigned long long)(arg[digits] - '0');
		digits++;
	}
	if (digits == 0)
		return false;
	arg += digits;
	*last = false;
	if (*arg == '\0') {
		*size = v;
		return true;
	}
	if (*arg != ' ')
		return false;
	while (*arg == ' ')
		arg++;
	if (strcasecmp(arg, "LAST") != 0)
		return false;
	*last = true;
	*size = v;
	return true;
}

/* Take size bytes of chunk data into the spool (or drop them). */
static bool read_chunk(struct lmtp_session *s, unsigned long long size,
    bool keep)
{
	struct str buf;
	enum bio_status st = BIO_OK;

	if (!keep) {
		st = bio_skip_exact(&s->bio, (size_t)size);
	} else {
		str_init(&buf, LMTP_DATA_PIECE);
		while (size > 0 && st == BIO_OK) {
			size_t n = size > LMTP_DATA_PIECE ? LMTP_DATA_PIECE :
			    (size_t)size;
			str_clear(&buf);
			st = bio_read_exact(&s->bio, &buf, n);
			if (st == BIO_OK)
				lmtpd_spool_put_crlf(&s->spool, buf.data, n);
			size -= n;
		}
		str_free(&buf);
	}
	if (st != BIO_OK) {
		log_info("%s: lost connection after BDAT from %s (%s)",
		    txn_id(s), s->peer, bio_status_name(st));
		if (st == BIO_TIMEOUT)
			esmtp_reply(&s->bio, 421, "4.4.2", true,
			    "%s Error: timeout exceeded",
			    lmtpd_settings.hostname);
		return false;
	}
	return true;
}

static void cmd_bdat(struct lmtp_session *s, const char *arg)
{
	unsigned long long size;
	bool last;

	if (!parse_bdat(arg, &size, &last)) {
		/*
		 * Without a valid size we cannot tell where the chunk ends;
		 * reading its bytes as commands would be worse than hanging
		 * up (RFC 3030 2: the chunk is always consumed).
		 */
		reply_error(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		esmtp_reply(&s->bio, 421, "4.5.0", true,
		    "%s Closing connection", lmtpd_settings.hostname);
		session_set_state(s, LMTP_STATE_QUIT);
		return;
	}
	bool in_sequence = s->state == LMTP_STATE_MAIL ||
	    s->state == LMTP_STATE_RCPT || s->state == LMTP_STATE_BDAT;
	bool keep = in_sequence && s->txn.nrcpts > 0;
	if (!read_chunk(s, size, keep)) {
		txn_free(s);
		session_set_state(s, LMTP_STATE_QUIT);
		return;
	}
	if (!in_sequence) {
		reply_error(s, 503, "5.5.1", "Send MAIL first");
		return;
	}
	if (s->txn.nrcpts == 0) {
		/* RFC 2033 4.2, as for DATA; the transaction stays. */
		reply_error(s, 503, "5.5.1", "No valid recipients");
		if (last)
			txn_end(s);
		return;
	}
	if (!last) {
		session_set_state(s, LMTP_STATE_BDAT);
		esmtp_reply(&s->bio, 250, "2.0.0", true, "%llu octets received",
		    size);
		return;
	}
	deliver_all(s);
}

/* ---- RSET, NOOP, QUIT, VRFY ---- */

static void cmd_rset(struct lmtp_session *s, const char *arg)
{
	if (s->state != LMTP_STATE_GREETED)
		txn_end(s);
	esmtp_reply(&s->bio, 250, "2.0.0", true, "Ok");
}

static void cmd_noop(struct lmtp_session *s, const char *arg)
{
	esmtp_reply(&s->bio, 250, "2.0.0", true, "Ok");
}

static void cmd_quit(struct lmtp_session *s, const char *arg)
{
	esmtp_reply(&s->bio, 221, "2.0.0", true, "Bye");
	txn_free(s);
	session_set_state(s, LMTP_STATE_QUIT);
}

static void cmd_vrfy(struct lmtp_session *s, const char *arg)
{
	/* RFC 5321 3.5.3: 252 when we will not verify but would try. */
	esmtp_reply(&s->bio, 252, "2.5.2", true,
	    "Send some mail, I'll try my best");
}

static const struct lmtp_command lmtp_commands[] = {
	{ "LHLO", cmd_lhlo, ANY_STATE & ~STATE_BIT(LMTP_STATE_BDAT), true },
	{ "HELO", cmd_helo, ANY_STATE, true },
	{ "EHLO", cmd_helo, ANY_STATE, true },
	{ "MAIL", cmd_mail, STATE_BIT(LMTP_STATE_GREETED) |
	    STATE_BIT(LMTP_STATE_READY), false },
	{ "RCPT", cmd_rcpt, STATE_BIT(LMTP_STATE_MAIL) |
	    STATE_BIT(LMTP_STATE_RCPT), false },
	{ "DATA", cmd_data, STATE_BIT(LMTP_STATE_MAIL) |
	    STATE_BIT(LMTP_STATE_RCPT), false },
	/* BDAT checks its state itself: the chunk must be read anyway. */
	{ "BDAT", cmd_bdat, ANY_STATE, false },
	{ "RSET", cmd_rset, ANY_STATE, true },
	{ "NOOP", cmd_noop, ANY_STATE, true },
	{ "QUIT", cmd_quit, ANY_STATE, false },
	{ "VRFY", cmd_vrfy, ANY_STATE & ~STATE_BIT(LMTP_STATE_BDAT), true },
};

/* Out of sequence: say what is expected (RFC 5321 4.1.4, RFC 3030 3). */
static void reply_bad_sequence(struct lmtp_session *s, const char *verb)
{
	if (s->state == LMTP_STATE_BDAT)
		reply_error(s, 503, "5.5.1", "Only BDAT, RSET, NOOP or QUIT "
		    "may follow BDAT");
	else if (strcmp(verb, "MAIL") == 0)
		reply_error(s, 503, "5.5.1", "Nested MAIL command");
	else
		reply_error(s, 503, "5.5.1", "Send MAIL first");
}

static void dispatch(struct lmtp_session *s, const char *line)
{
	struct esmtp_command cmd;
	const struct lmtp_command *c = NULL;

	esmtp_split_command(line, &cmd);
	for (size_t i = 0; i < sizeof(lmtp_commands) / sizeof(lmtp_commands[0]);
	    i++) {
		if (strcmp(cmd.verb, lmtp_commands[i].verb) == 0) {
			c = &lmtp_commands[i];
			break;
		}
	}
	if (c == NULL) {
		s->junk++;
		reply_error(s, 500, "5.5.2", "Command not recognized");
		return;
	}
	if (c->junk)
		s->junk++;
	if (!(c->states & STATE_BIT(s->state))) {
		reply_bad_sequence(s, c->verb);
		return;
	}
	c->handler(s, cmd.arg);
}

void lmtpd_session_run(struct daemon_conn *conn)
{
	struct lmtp_session s;
	struct str line;

	memset(&s, 0, sizeof(s));
	s.conn = conn;
	s.state = LMTP_STATE_GREETED;
	if (conn->peer_is_unix)
		strlcpy(s.peer, "unix", sizeof(s.peer));
	else
		snprintf(s.peer, sizeof(s.peer), "%s", conn->peer_addr);
	bio_init(&s.bio, conn->fd, lmtpd_settings.timeout_ms);
	lmtpd_spool_init(&s.spool, lmtpd_settings.size_limit);
	str_init(&line, LMTP_LINE_MAX);
	log_info("connect from %s", s.peer);

	esmtp_reply(&s.bio, 220, NULL, true, "%s LMTP postern",
	    lmtpd_settings.hostname);
	while (s.state != LMTP_STATE_QUIT) {
		/* Replies to a pipelined group leave together (RFC 2920). */
		if (bio_buffered(&s.bio) == 0 && bio_flush(&s.bio) != BIO_OK)
			break;
		unsigned flags = 0;
		enum bio_status st = bio_readline(&s.bio, &line,
		    LMTP_LINE_MAX - 2, &flags);
		if (st == BIO_TOOLONG) {
			reply_error(&s, 500, "5.5.2", "Line too long");
		} else if (st != BIO_OK) {
			if (st == BIO_TIMEOUT)
				esmtp_reply(&s.bio, 421, "4.4.2", true,
				    "%s Error: timeout exceeded",
				    lmtpd_settings.hostname);
			else if (s.in_txn)
				log_info("%s: lost connection after %s from "
				    "%s", txn_id(&s),
				    lmtp_state_names[s.state], s.peer);
			break;
		} else if (line.len != strlen(str_cstr(&line)) ||
		    (flags & (BIO_LINE_BARE_CR | BIO_LINE_BARE_LF))) {
			/* NUL, bare CR or LF in a command: not a command. */
			reply_error(&s, 500, "5.5.2", "Bad command syntax");
		} else {
			dispatch(&s, str_cstr(&line));
		}
		if (s.state != LMTP_STATE_QUIT &&
		    (s.errors >= LMTP_ERROR_LIMIT || s.junk > LMTP_JUNK_LIMIT)) {
			log_info("%s: too many errors or commands from %s",
			    txn_id(&s), s.peer);
			esmtp_reply(&s.bio, 421, "4.7.0", true,
			    "%s Error: too many errors", lmtpd_settings.hostname);
			session_set_state(&s, LMTP_STATE_QUIT);
		}
	}
	bio_flush(&s.bio);
	log_info("disconnect from %s messages=%lu", s.peer, s.messages);
	txn_free(&s);
	lmtpd_spool_free(&s.spool);
	free(s.lhlo);
	str_free(&line);
	bio_free(&s.bio);
}
