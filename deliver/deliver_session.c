/*
 * deliver_session.c - one client connection to an SMTP or LMTP server:
 * connect, greeting, EHLO/LHLO (HELO fallback), opportunistic STARTTLS,
 * reading replies, QUIT.
 *
 * Trusts nothing the peer sends: replies are read through the bounded
 * line reader, their codes are checked, and their text is escaped before
 * it reaches a log line. Time is bounded three ways, so that a server
 * cannot hold a deliver process by answering slowly: each wait by the
 * state's timeout (RFC 5321 4.5.3.2); a whole reply, however many lines,
 * by that same timeout (smtp_per_request_deadline, as Postfix's); and
 * everything on the connection for one job by smtp_session_time_limit.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "deliver.h"
#include "log.h"
#include "mem.h"
#include "sock.h"

#define REPLY_LINE_MAX 2048	/* RFC 5321 4.5.3.1.5 says 512; be lenient */
#define REPLY_LINES_MAX 100
#define REPLY_TEXT_MAX 4096
#define QUIT_TIMEOUT_MS 2000

/*
 * Per state: the words for "while ...", the command a reply answers, and
 * the reply deadline as a multiple of smtp_timeout in fifths. With the
 * default smtp_timeout of 300s these are RFC 5321 4.5.3.2's values:
 * greeting, MAIL, RCPT 5 min; DATA 2 min; data blocks 3 min; end of data
 * 10 min.
 */
static const struct {
	const char *name;
	const char *stage;
	const char *command;
	int fifths;
} sess_states[] = {
	[SESS_CONNECT] = { "connect", "while connecting", NULL, 5 },
	[SESS_GREETING] = { "greeting",
	    "while receiving the initial server greeting", NULL, 5 },
	[SESS_EHLO] = { "ehlo", "while performing the EHLO handshake", "EHLO", 5 },
	[SESS_HELO] = { "helo", "while performing the HELO handshake", "HELO", 5 },
	[SESS_STARTTLS] = { "starttls", "while sending STARTTLS", "STARTTLS", 5 },
	[SESS_TLS_HANDSHAKE] = { "tls", "while performing the TLS handshake",
	    NULL, 5 },
	[SESS_AUTH] = { "auth", "while authenticating", "AUTH", 5 },
	[SESS_READY] = { "ready", "while idle", NULL, 5 },
	[SESS_MAIL] = { "mail", "while sending MAIL FROM", "MAIL FROM", 5 },
	[SESS_RCPT] = { "rcpt", "while sending RCPT TO", "RCPT TO", 5 },
	[SESS_DATA] = { "data", "while sending DATA command", "DATA", 2 },
	[SESS_BODY] = { "body", "while sending message body", NULL, 3 },
	[SESS_DOT] = { "dot", "while sending end of data -- message may be "
	    "sent more than once", "end of DATA", 10 },
	[SESS_RSET] = { "rset", "while sending RSET", "RSET", 5 },
	[SESS_QUIT] = { "quit", "while sending QUIT", "QUIT", 1 },
	[SESS_CLOSED] = { "closed", "after the connection was closed", NULL, 5 },
};

void deliver_session_enter(struct deliver_session *s, enum sess_state state)
{
	if (log_verbose_level() > 0)
		log_debug("%s: state %s -> %s", s->relay,
		    sess_states[s->state].name, sess_states[state].name);
	s->state = state;
	deliver_session_set_timeout(s);
}

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The current state's timeout in ms. */
static long long stage_ms(const struct deliver_session *s)
{
	long long ms = cfg.smtp_timeout * 1000 * sess_states[s->state].fifths / 5;
	if (s->state == SESS_QUIT)
		ms = QUIT_TIMEOUT_MS;
	if (ms <= 0 || ms > 24LL * 3600 * 1000)
		ms = 24LL * 3600 * 1000;
	return ms;
}

void deliver_session_start_clock(struct deliver_session *s)
{
	long long limit = cfg.smtp_session_time_limit;
	s->deadline = limit > 0 && limit < 365LL * 86400 ?
	    monotonic_ms() + limit * 1000 : 0;
	s->expired = false;
}

/*
 * Set the bio's timeout to ms, or to what is left of the session if that
 * is less (then a timeout is the session's: s->expired). Never negative:
 * that would mean no deadline to the bio.
 */
static void set_wait(struct deliver_session *s, long long ms)
{
	bool session_first = false;
	if (s->deadline > 0) {
		long long left = s->deadline - monotonic_ms();
		if (left < ms) {
			ms = left;
			session_first = true;
		}
	}
	if (ms < 0)
		ms = 0;
	s->expired = session_first;
	bio_set_timeout(&s->bio, (int)ms);
}

void deliver_session_set_timeout(struct deliver_session *s)
{
	set_wait(s, stage_ms(s));
}

/* "2.1.0 Ok" -> enhanced code "2.1.0" (RFC 3463; class must match). */
static void reply_enhanced(int code, const char *text, char *out, size_t outsize)
{
	/* RFC 3463 2: class "." subject "." detail, class matching the code. */
	const char *p = text;
	size_t n1 = 0, n2 = 0;

	out[0] = '\0';
	if (p[0] - '0' != code / 100 || p[1] != '.')
		return;
	p += 2;
	while (isdigit((unsigned char)p[n1]))
		n1++;
	if (n1 < 1 || n1 > 3 || p[n1] != '.')
		return;
	const char *q = p + n1 + 1;
	while (isdigit((unsigned char)q[n2]))
		n2++;
	if (n2 < 1 || n2 > 3 || (q[n2] != ' ' && q[n2] != '\0'))
		return;
	size_t len = (size_t)(q + n2 - text);
	if (len < outsize) {
		memcpy(out, text, len);
		out[len] = '\0';
	}
}

/*
 * One reply, possibly multi-line (RFC 5321 4.2.1): every line carries the
 * same code; "-" after the code means more lines follow.
 */
bool deliver_session_read_reply(struct deliver_session *s)
{
	struct str line;
	struct smtp_reply *r = &s->reply;
	enum bio_status st;
	int lines = 0;

	/* The whole reply within the stage's timeout, not each line. */
	long long reply_end = cfg.smtp_per_request_deadline ?
	    monotonic_ms() + stage_ms(s) : 0;

	str_init(&line, REPLY_LINE_MAX);
	str_clear(&r->text);
	str_clear(&r->lines);
	r->code = 0;
	r->enhanced[0] = '\0';
	for (;;) {
		set_wait(s, reply_end > 0 ? reply_end - monotonic_ms() :
		    stage_ms(s));
		/* A line past REPLY_LINE_MAX is BIO_TOOLONG: a malformed reply. */
		st = bio_readline(&s->bio, &line, REPLY_LINE_MAX, NULL);
		if (st != BIO_OK)
			break;
		const char *l = str_cstr(&line);
		if (line.len < 3 || !isdigit((unsigned char)l[0]) ||
		    !isdigit((unsigned char)l[1]) ||
		    !isdigit((unsigned char)l[2]) || l[0] < '2' || l[0] > '5' ||
		    (line.len > 3 && l[3] != ' ' && l[3] != '-')) {
			st = BIO_TOOLONG;	/* not a reply: protocol error */
			break;
		}
		int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		if (lines > 0 && code != r->code) {
			st = BIO_TOOLONG;
			break;
		}
		const char *body = line.len > 4 ? l + 4 : "";
		/* Appends, not printf: three or four replies a message. */
		str_append_cstr(&r->lines, body);
		str_append_char(&r->lines, '\n');
		if (lines == 0) {
			r->code = code;
			reply_enhanced(code, body, r->enhanced, sizeof(r->enhanced));
			str_append(&r->text, l, 3);
		}
		/* Continuation lines: their text only, the code said once. */
		if (r->text.len + strlen(body) + 2 < REPLY_TEXT_MAX) {
			const char *t = body;
			if (lines > 0 && r->enhanced[0] != '\0' &&
			    strncmp(t, r->enhanced, strlen(r->enhanced)) == 0) {
				t += strlen(r->enhanced);
				while (*t == ' ')
					t++;
			}
			if (*t != '\0' || lines == 0) {
				str_append_char(&r->text, ' ');
				str_append_cstr(&r->text, t);
			}
		}
		lines++;
		if (line.len == 3 || l[3] == ' ')
			break;
		if (lines >= REPLY_LINES_MAX) {
			st = BIO_TOOLONG;
			break;
		}
	}
	str_free(&line);
	/* Trailing space of "250 " with no text. */
	while (r->text.len > 0 && r->text.data[r->text.len - 1] == ' ')
		str_truncate(&r->text, r->text.len - 1);
	if (st != BIO_OK) {
		r->code = 0;
		s->usable = false;
		s->last_io = st;
		return false;
	}
	return true;
}

bool deliver_session_flush(struct deliver_session *s)
{
	deliver_session_set_timeout(s);
	enum bio_status st = bio_flush(&s->bio);
	if (st != BIO_OK) {
		s->usable = false;
		s->last_io = st;
		return false;
	}
	return true;
}

/* The peer's reply, made safe for our log and for qmgr. */
static char *reply_text_safe(const struct deliver_session *s)
{
	char buf[REPLY_TEXT_MAX + 64];
	log_escape(buf, sizeof(buf), s->reply.text.data ? s->reply.text.data : "",
	    s->reply.text.len);
	return xstrdup(buf);
}

void deliver_session_io_failure(struct deliver_session *s,
    struct deliver_outcome *o, enum bio_status st)
{
	char text[1024];
	const char *stage = sess_states[s->state].stage;

	if (st == BIO_TIMEOUT && s->expired)
		snprintf(text, sizeof(text), "conversation with %s exceeded "
		    "smtp_session_time_limit (%llds) %s", s->relay,
		    cfg.smtp_session_time_limit, stage);
	else if (st == BIO_TIMEOUT)
		snprintf(text, sizeof(text), "conversation with %s timed out %s",
		    s->relay, stage);
	else if (st == BIO_TOOLONG)
		snprintf(text, sizeof(text), "%s sent a malformed reply %s",
		    s->relay, stage);
	else
		snprintf(text, sizeof(text), "lost connection with %s %s",
		    s->relay, stage);
	deliver_outcome_set(o, 'D', "4.4.2", text, text);
}

void deliver_session_reply_outcome(struct deliver_session *s,
    struct deliver_outcome *o)
{
	struct smtp_reply *r = &s->reply;
	char dsn[16], text[REPLY_TEXT_MAX + 512];
	char *safe = reply_text_safe(s);
	const char *command = sess_states[s->state].command;

	if (r->enhanced[0] != '\0')
		strlcpy(dsn, r->enhanced, sizeof(dsn));
	else
		snprintf(dsn, sizeof(dsn), "%d.0.0", r->code / 100);
	if (r->code / 100 == 2)
		snprintf(text, sizeof(text), "%s", safe);
	else if (command != NULL)
		snprintf(text, sizeof(text), "host %s said: %s (in reply to %s "
		    "command)", s->relay, safe, s->lmtp && s->state == SESS_EHLO ?
		    "LHLO" : command);
	else
		snprintf(text, sizeof(text), "host %s refused to talk to me: %s",
		    s->relay, safe);
	char status = r->code / 100 == 2 ? 'S' : r->code / 100 == 5 ? 'B' : 'D';
	deliver_outcome_set(o, status, dsn, safe, text);
	free(safe);
}

/* The mechanisms after "AUTH" to the end of the line. */
static void parse_auth_mechs(struct deliver_session *s, const char *p)
{
	while (*p != '\0' && *p != '\n') {
		p += strspn(p, " =");
		size_t n = strcspn(p, " \n");
		if (n == 5 && strncasecmp(p, "PLAIN", 5) == 0)
			s->auth_mechs |= SESS_AUTH_PLAIN;
		else if (n == 5 && strncasecmp(p, "LOGIN", 5) == 0)
			s->auth_mechs |= SESS_AUTH_LOGIN;
		p += n;
	}
}

/* EHLO keywords (RFC 5321 4.1.1.1) we use; the rest are ignored. */
static void parse_extensions(struct deliver_session *s)
{
	static const struct {
		const char *keyword;
		unsigned bit;
	} known[] = {
		{ "PIPELINING", SESS_EXT_PIPELINING },
		{ "SIZE", SESS_EXT_SIZE },
		{ "8BITMIME", SESS_EXT_8BITMIME },
		{ "SMTPUTF8", SESS_EXT_SMTPUTF8 },
		{ "DSN", SESS_EXT_DSN },
		{ "STARTTLS", SESS_EXT_STARTTLS },
		{ "ENHANCEDSTATUSCODES", SESS_EXT_ENHANCED },
		{ "CHUNKING", SESS_EXT_CHUNKING },
		{ "BINARYMIME", SESS_EXT_BINARYMIME },
		{ "AUTH", SESS_EXT_AUTH },
		{ "REQUIRETLS", SESS_EXT_REQUIRETLS },
	};
	const char *p = str_cstr(&s->reply.lines);

	s->ext = 0;
	s->auth_mechs = 0;
	s->size_limit = 0;
	p = strchr(p, '\n');	/* the first line is the server's name */
	while (p != NULL && *++p != '\0') {
		size_t n = strcspn(p, " =\n");
		/* "AUTH PLAIN LOGIN", or the old "AUTH=PLAIN LOGIN". */
		if (n == 4 && strncasecmp(p, "AUTH", 4) == 0)
			parse_auth_mechs(s, p + 4);
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
			if (strlen(known[i].keyword) != n ||
			    strncasecmp(p, known[i].keyword, n) != 0)
				continue;
			s->ext |= known[i].bit;
			/* RFC 1870 4: "SIZE 0" or no number means no limit. */
			if (known[i].bit == SESS_EXT_SIZE && p[n] == ' ')
				s->size_limit = strtoll(p + n + 1, NULL, 10);
		}
		p = strchr(p, '\n');
	}
	if (s->size_limit < 0)
		s->size_limit = 0;
}

/* The first word after the code: the name a server gives itself. */
static void reply_first_word(const struct deliver_session *s, char *out,
    size_t outsize)
{
	const char *p = str_cstr(&s->reply.text);
	p += strlen(p) >= 4 ? 4 : strlen(p);
	size_t n = strcspn(p, " ");
	if (n >= outsize)
		n = outsize - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

/*
 * RFC 5321 6.3 (and Postfix's rule): an SMTP peer that is us means a
 * loop. Not for LMTP: our own lmtpd is the usual final destination, and
 * it rightly gives our name.
 */
static bool names_myself(const struct deliver_session *s, const char *name)
{
	return !s->lmtp && cfg.myhostname[0] != '\0' &&
	    strcasecmp(name, cfg.myhostname) == 0;
}

static void loop_outcome(struct deliver_job *job, struct deliver_outcome *o)
{
	char text[600];
	snprintf(text, sizeof(text), "mail for %s loops back to myself",
	    job->j.nexthop);
	deliver_outcome_set(o, 'B', "5.4.6", text, text);
}

/* Send a command line and read its reply. */
bool deliver_session_command(struct deliver_session *s, enum sess_state state,
    const char *line)
{
	deliver_session_enter(s, state);
	bio_printf(&s->bio, "%s\r\n", line);
	return deliver_session_flush(s) && deliver_session_read_reply(s);
}

/* EHLO or LHLO, with a HELO fallback for old SMTP servers. */
static bool hello(struct deliver_session *s, struct deliver_job *job,
    struct deliver_outcome *out)
{
	char line[300], name[256];

	snprintf(line, sizeof(line), "%s %s", s->lmtp ? "LHLO" : "EHLO",
	    cfg.myhostname);
	if (!deliver_session_command(s, SESS_EHLO, line)) {
		deliver_session_io_failure(s, out, s->last_io);
		return false;
	}
	if (s->reply.code / 100 == 2) {
		reply_first_word(s, name, sizeof(name));
		if (names_myself(s, name)) {
			loop_outcome(job, out);
			return false;
		}
		parse_extensions(s);
		return true;
	}
	/* RFC 5321 4.1.4: a server that does not know EHLO says 5xx. */
	if (s->lmtp || s->reply.code / 100 != 5) {
		deliver_session_reply_outcome(s, out);
		return false;
	}
	snprintf(line, sizeof(line), "HELO %s", cfg.myhostname);
	if (!deliver_session_command(s, SESS_HELO, line)) {
		deliver_session_io_failure(s, out, s->last_io);
		return false;
	}
	if (s->reply.code / 100 != 2) {
		deliver_session_reply_outcome(s, out);
		return false;
	}
	s->ext = 0;
	s->size_limit = 0;
	return true;
}

enum open_step {
	OPEN_OK,
	OPEN_FAILED,
	OPEN_TLS_FAILED,	/* try the same address again without TLS */
};

static enum open_step open_once(struct deliver_session *s,
    struct deliver_job *job, const struct sockaddr *sa, socklen_t salen,
    const char *unix_path, bool try_tls, struct deliver_outcome *out)
{
	long long connect_ms = cfg.smtp_connect_timeout * 1000;
	if (connect_ms <= 0 || connect_ms > 3600 * 1000)
		connect_ms = 3600 * 1000;
	if (s->deadline > 0 && s->deadline - monotonic_ms() < connect_ms)
		connect_ms = s->deadline - monotonic_ms() > 0 ?
		    s->deadline - monotonic_ms() : 1;

	deliver_session_enter(s, SESS_CONNECT);
	s->fd = unix_path != NULL ? sock_connect_unix(unix_path, (int)connect_ms) :
	    sock_connect_sa(sa, salen, (int)connect_ms);
	if (s->fd < 0) {
		char text[600];
		snprintf(text, sizeof(text), "connect to %s: %s", s->relay,
		    strerror(errno));
		deliver_outcome_set(out, 'D', "4.4.1", text, text);
		return OPEN_FAILED;
	}
	/* A server answered: from now on it is the relay of the log line. */
	strlcpy(job->relay, s->relay, sizeof(job->relay));
	bio_init(&s->bio, s->fd, 0);
	if (s->lmtp && unix_path == NULL) {
		/*
		 * LMTP over TCP: the socket stays blocking, a reply is waited
		 * for in read(2) under SO_RCVTIMEO, not in poll(2) then
		 * read(2), and a write still has its deadline (bio.h). With
		 * one round trip per message (one_trip()) that is one call
		 * less per message; MAIL's timeout, the stage of that wait,
		 * is set once a connection. Not on a Unix socket, where each
		 * wait in read(2) is woken once more, nor to SMTP servers,
		 * whose waits alternate between the stages' timeouts. A TLS
		 * handshake switches back (handshake(), deliver_tls.c).
		 */
		bio_timed_reads(&s->bio);
	} else {
		/* Non-blocking, so that writes too honour the bio's
		 * deadlines. */
		int fl = fcntl(s->fd, F_GETFL);
		if (fl >= 0)
			fcntl(s->fd, F_SETFL, fl | O_NONBLOCK);
	}
	s->usable = true;
	if (deliver_tls_implicit(s) &&
	    deliver_tls_wrap(s, job, out) != DELIVER_TLS_OK)
		return OPEN_FAILED;

	deliver_session_enter(s, SESS_GREETING);
	if (!deliver_session_read_reply(s)) {
		deliver_session_io_failure(s, out, s->last_io);
		return OPEN_FAILED;
	}
	if (s->reply.code / 100 != 2) {
		deliver_session_reply_outcome(s, out);
		return OPEN_FAILED;
	}
	reply_first_word(s, s->greeting_name, sizeof(s->greeting_name));
	if (names_myself(s, s->greeting_name)) {
		loop_outcome(job, out);
		return OPEN_FAILED;
	}
	if (!hello(s, job, out))
		return OPEN_FAILED;

	if (try_tls) {
		switch (deliver_tls_negotiate(s, job, out)) {
		case DELIVER_TLS_FAILED:
			return OPEN_FAILED;
		case DELIVER_TLS_RETRY_PLAIN:
			return OPEN_TLS_FAILED;
		case DELIVER_TLS_OK:
			/* RFC 3207 4.2: the session starts over; ask again. */
			if (!hello(s, job, out))
				return OPEN_FAILED;
			break;
		case DELIVER_TLS_PLAIN:
			break;
		}
	}
	return deliver_session_authenticate(s, job, out) ? OPEN_OK : OPEN_FAILED;
}

static void session_reset_fields(struct deliver_session *s)
{
	s->state = SESS_CLOSED;
	s->fd = -1;
	s->tls = NULL;
	s->ext = 0;
	s->size_limit = 0;
	s->uses = 0;
	s->usable = false;
	s->greeting_name[0] = '\0';
}

enum sess_open_result deliver_session_open(struct deliver_session *s,
    struct deliver_job *job, const struct sockaddr *sa, socklen_t salen,
    const char *host, const char *unix_path, bool lmtp, bool host_secure,
    struct deliver_outcome *out)
{
	memset(s, 0, sizeof(*s));
	session_reset_fields(s);
	deliver_session_start_clock(s);
	s->lmtp = lmtp;
	strlcpy(s->host, host, sizeof(s->host));
	if (unix_path != NULL) {
		strlcpy(s->addr, unix_path, sizeof(s->addr));
		s->port = 0;
		snprintf(s->relay, sizeof(s->relay), "%s[%s]", host, unix_path);
	} else {
		sock_addr_format(sa, s->addr, sizeof(s->addr), &s->port);
		snprintf(s->relay, sizeof(s->relay), "%s[%s]:%d", host, s->addr,
		    s->port);
	}
	job->tls_info[0] = '\0';

	str_init(&s->reply.text, REPLY_TEXT_MAX + 64);
	str_init(&s->reply.lines, REPLY_TEXT_MAX + 64);
	s->host_secure = host_secure;
	s->implicit_tls = job->implicit_tls;
	if (!deliver_tls_policy_get(s, job, out) ||
	    !deliver_dane_prepare(s, job, host_secure, out)) {
		deliver_session_close(s, false);
		return SESS_OPEN_FAILED;
	}
	if (!s->dane_active)
		deliver_tls_policy_after_dane(s, job);
	deliver_requiretls_after_dane(s, job);
	enum open_step step = open_once(s, job, sa, salen, unix_path, true, out);
	if (step == OPEN_TLS_FAILED) {
		/* Only optional levels come here; keep the policy. */
		struct tls_dest_policy keep = s->tls_policy;
		s->tls_policy.nmatch = 0;
		size_t nnames = s->tls_nnames;
		s->tls_nnames = 0;
		char dane_why[sizeof(s->dane_why)];
		memcpy(dane_why, s->dane_why, sizeof(dane_why));
		deliver_session_close(s, false);
		s->tls_policy = keep;
		s->tls_nnames = nnames;
		memcpy(s->dane_why, dane_why, sizeof(dane_why));
		session_reset_fields(s);
		str_init(&s->reply.text, REPLY_TEXT_MAX + 64);
		str_init(&s->reply.lines, REPLY_TEXT_MAX + 64);
		step = open_once(s, job, sa, salen, unix_path, false, out);
	}
	if (step != OPEN_OK) {
		deliver_session_close(s, s->fd >= 0 && s->usable);
		return SESS_OPEN_FAILED;
	}
	deliver_session_enter(s, SESS_READY);
	return SESS_OPEN_OK;
}

void deliver_session_close(struct deliver_session *s, bool say_quit)
{
	if (s->fd >= 0) {
		if (say_quit && s->usable) {
			/* A courtesy: do not wait long for "221". */
			deliver_session_command(s, SESS_QUIT, "QUIT");
		}
		deliver_tls_end(s);
		bio_free(&s->bio);
		close(s->fd);
		s->fd = -1;
	}
	s->usable = false;
	s->state = SESS_CLOSED;
	deliver_tls_policy_free(s);
	deliver_dane_free(s);
	str_free(&s->reply.text);
	str_free(&s->reply.lines);
}

bool deliver_session_alive_quiet(struct deliver_session *s)
{
	return s->fd >= 0 && s->usable && bio_buffered(&s->bio) == 0 &&
	    s->bio.ops->pending(&s->bio) == 0;
}

bool deliver_session_alive(struct deliver_session *s)
{
	/* An idle server says nothing; anything pending is 421 or EOF. */
	return s->fd >= 0 && s->usable && !bio_input_ready(&s->bio, 0);
}
