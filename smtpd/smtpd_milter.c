/*
 * smtpd_milter.c - smtpd's milter client: the filters of smtpd_milters
 * (inet:host:port, unix:/path), applied in order, at every SMTP stage,
 * speaking protocol version 6 (mail/milter_proto.c), with Postfix's
 * configuration names and meanings (milter_default_action, the three
 * timeouts, milter_*_macros).
 *
 * One connection per filter per SMTP session, reused across its
 * transactions. Each filter is a small state machine: CLOSED (not
 * connected yet), READY (negotiated), DONE (it accepted the connection:
 * no more calls), FAILED (it died, timed out or broke the protocol:
 * milter_default_action stands for it for the rest of the session).
 *
 * The message: while it arrives it is spooled into an anonymous file of
 * this process (memfd), never into the queue, so that the worker reads
 * back only its own bytes (doc/architecture.md, "Filters (milter)").
 * At the end of the message each filter gets the headers (our Received
 * first, as Postfix sends its own), the body in chunks of
 * MILTER_CHUNK_SIZE and end-of-body, and answers with edits; a later
 * filter sees the earlier ones' edits. Only when all have spoken is the
 * queue file the door made written: envelope with the edited sender
 * and recipients, headers, body. A filter that fails at any point
 * leaves no half-written file.
 *
 * Trust: the filters are named by root's config, but they are other
 * programs: every reply is decoded with lengths checked, a reply text
 * reaches the client only when it is a valid SMTP reply, header names
 * and addresses are checked before they enter the queue file.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "esmtp.h"
#include "log.h"
#include "mem.h"
#include "milter_proto.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "sock.h"

enum milter_state {
	MILTER_CLOSED,
	MILTER_READY,
	MILTER_DONE,		/* accepted the connection */
	MILTER_FAILED,
};

/* One filter in one SMTP session. */
struct milter_conn {
	const char *spec;	/* "inet:127.0.0.1:8891", from the config */
	enum milter_state state;
	int fd;
	uint32_t actions, protocol;
	/* Macro names per stage: the config's, or the filter's own. */
	struct cfg_list macros[MILTER_STAGE_COUNT];
	bool own_macros[MILTER_STAGE_COUNT];
	bool in_msg;		/* MAIL was sent: ABORT ends it */
	bool msg_done;		/* accepted or discarded this message */
};

struct smtpd_milter_session {
	struct milter_conn *f;
	size_t n;
	/* A reject or tempfail at connect or HELO, given at MAIL (as
	 * Postfix with smtpd_delay_reject). */
	struct smtpd_milter_verdict deferred;
};

/* One header field: name and the raw text after the colon. */
struct mhdr {
	char *name;
	char *raw;		/* " value\r\n\tfolded", no final CRLF */
};

struct smtpd_milter_msg {
	int door_fd;		/* the queue file, written at the end */
	int spool_fd;		/* the message as received (memfd) */
	struct str wbuf;	/* not yet written to spool_fd */
	unsigned long long spooled;
	bool write_failed;
	/* at end-of-message */
	struct mhdr *hdrs;
	size_t nhdrs, hdr_cap;
	bool separator;		/* an empty line ended the headers */
	const unsigned char *map;
	size_t map_len;
	const unsigned char *body;	/* current body: in map or new_body */
	size_t body_len;
	struct str new_body;	/* a filter's replacement, arriving */
	bool replaced_now;	/* ... this filter sent one */
	struct str cur_body;	/* the last replacement, once done */
	char *hold_reason;
	bool discard;
};

static enum {
	DEFAULT_TEMPFAIL, DEFAULT_ACCEPT, DEFAULT_REJECT, DEFAULT_QUARANTINE
} default_action;

static const struct cfg_list *configured_macros(enum milter_stage st)
{
	switch (st) {
	case MILTER_STAGE_CONNECT: return &cfg.milter_connect_macros;
	case MILTER_STAGE_HELO: return &cfg.milter_helo_macros;
	case MILTER_STAGE_MAIL: return &cfg.milter_mail_macros;
	case MILTER_STAGE_RCPT: return &cfg.milter_rcpt_macros;
	case MILTER_STAGE_DATA: return &cfg.milter_data_macros;
	case MILTER_STAGE_EOM: return &cfg.milter_end_of_data_macros;
	default: return &cfg.milter_end_of_header_macros;
	}
}

bool smtpd_milter_enabled(void)
{
	return cfg.smtpd_milters.count > 0;
}

void smtpd_milter_init(void)
{
	const char *a = cfg.milter_default_action;
	if (strcmp(a, "tempfail") == 0)
		default_action = DEFAULT_TEMPFAIL;
	else if (strcmp(a, "accept") == 0)
		default_action = DEFAULT_ACCEPT;
	else if (strcmp(a, "reject") == 0)
		default_action = DEFAULT_REJECT;
	else if (strcmp(a, "quarantine") == 0)
		default_action = DEFAULT_QUARANTINE;
	else
		log_fatal("milter_default_action: \"%s\" is not tempfail, "
		    "accept, reject or quarantine", a);
	if (cfg.milter_protocol < 2 || cfg.milter_protocol > 6)
		log_fatal("milter_protocol: %lld is not 2 to 6",
		    cfg.milter_protocol);
	for (size_t i = 0; i < cfg.smtpd_milters.count; i++) {
		const char *spec = cfg.smtpd_milters.items[i];
		if (strncmp(spec, "inet:", 5) != 0 &&
		    strncmp(spec, "unix:", 5) != 0 &&
		    strncmp(spec, "local:", 6) != 0)
			log_fatal("smtpd_milters: \"%s\" is not inet:host:port "
			    "or unix:/path", spec);
	}
}

/* ---- verdicts ---- */

static void verdict_set(struct smtpd_milter_verdict *v,
    enum smtpd_milter_action a, const char *reply)
{
	v->action = a;
	strlcpy(v->reply, reply, sizeof(v->reply));
}

/* Postfix's texts for a filter's plain reject and tempfail. */
static void verdict_reject(struct smtpd_milter_verdict *v)
{
	verdict_set(v, SMTPD_MILTER_REJECT, "550 5.7.1 Command rejected");
}

static void verdict_tempfail(struct smtpd_milter_verdict *v)
{
	verdict_set(v, SMTPD_MILTER_TEMPFAIL,
	    "451 4.7.1 Service unavailable - try again later");
}

/* ---- I/O with one filter ---- */

static long long timeout_ms(long long seconds)
{
	if (seconds <= 0 || seconds > 24 * 3600)
		seconds = 30;
	return seconds * 1000;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline; false on timeout or error. */
static bool wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return false;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (r > 0)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
	}
}

/* Take the filter out of the session; its default action stands. */
static void filter_fail(struct milter_conn *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void filter_fail(struct milter_conn *m, const char *fmt, ...)
{
	char why[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warning("milter %s: %s", m->spec, why);
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	m->state = MILTER_FAILED;
	m->in_msg = false;
}

static bool filter_send(struct milter_conn *m, const struct str *pkt,
    long long tmo)
{
	long long deadline = now_ms() + tmo;
	size_t off = 0;
	while (off < pkt->len) {
		ssize_t w = send(m->fd, pkt->data + off, pkt->len - off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    wait_fd(m->fd, POLLOUT, deadline))
			continue;
		return false;
	}
	return true;
}

static bool read_exact(int fd, void *buf, size_t len, long long deadline)
{
	size_t off = 0;
	while (off < len) {
		if (!wait_fd(fd, POLLIN, deadline))
			return false;
		ssize_t r = recv(fd, (char *)buf + off, len - off,
		    MSG_DONTWAIT);
		if (r > 0) {
			off += (size_t)r;
		} else if (r == 0) {
			errno = ECONNRESET;
			return false;
		} else if (errno != EINTR && errno != EAGAIN) {
			return false;
		}
	}
	return true;
}

/*
 * Read and decode one reply packet into pkt/r; PROGRESS restarts the
 * timer (libmilter's smfi_progress), as Postfix does. false: the filter
 * failed (and is marked so).
 */
static bool filter_reply(struct milter_conn *m, const char *after,
    long long tmo, struct str *pkt, struct milter_reply *r)
{
	char err[200];
	for (;;) {
		long long deadline = now_ms() + tmo;
		unsigned char head[4];
		uint32_t len;
		if (!read_exact(m->fd, head, 4, deadline)) {
			filter_fail(m, "can't read %s reply packet header: %s",
			    after, errno == ETIMEDOUT ? "Connection timed out"
			    : strerror(errno));
			return false;
		}
		if (!milter_decode_length(head, &len)) {
			filter_fail(m, "bad %s reply packet length %u", after,
			    (unsigned)len);
			return false;
		}
		str_clear(pkt);
		if (!str_reserve(pkt, len)) {
			filter_fail(m, "reply too long");
			return false;
		}
		if (!read_exact(m->fd, pkt->data, len, deadline)) {
			filter_fail(m, "can't read %s reply packet body: %s",
			    after, errno == ETIMEDOUT ? "Connection timed out"
			    : strerror(errno));
			return false;
		}
		pkt->len = len;
		pkt->data[len] = '\0';
		if (!milter_decode_reply((unsigned char *)pkt->data, len, r,
		    err, sizeof(err))) {
			filter_fail(m, "malformed %s reply: %s", after, err);
			return false;
		}
		if (r->cmd != MILTER_REPLY_PROGRESS)
			return true;
	}
}

/* ---- connecting and negotiating ---- */

static int filter_dial(const char *spec, long long tmo)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return sock_connect_unix(spec + 5, (int)tmo);
	if (strncmp(spec, "local:", 6) == 0)
		return sock_connect_unix(spec + 6, (int)tmo);
	struct endpoint ep;
	char err[200];
	if (!endpoint_parse(spec + 5, 0, &ep, err, sizeof(err)) ||
	    ep.kind != ENDPOINT_INET || ep.port <= 0) {
		errno = EINVAL;
		return -1;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char port[16];
	snprintf(port, sizeof(port), "%d", ep.port);
	if (getaddrinfo(ep.host, port, &hints, &res) != 0) {
		errno = EHOSTUNREACH;
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
		fd = sock_connect_sa(ai->ai_addr, ai->ai_addrlen, (int)tmo);
	freeaddrinfo(res);
	return fd;
}

/* Connect and negotiate (SMFIC_OPTNEG); false: failed. */
static bool filter_open(struct milter_conn *m)
{
	long long tmo = timeout_ms(cfg.milter_connect_timeout);
	m->fd = filter_dial(m->spec, tmo);
	if (m->fd < 0) {
		filter_fail(m, "can't connect: %s", strerror(errno));
		return false;
	}
	struct str pkt;
	str_init(&pkt, MILTER_PACKET_MAX + 16);
	milter_encode_optneg(&pkt, (uint32_t)cfg.milter_protocol,
	    MILTER_ACT_ALL, MILTER_P_OFFER);
	struct milter_reply r;
	bool ok = filter_send(m, &pkt, tmo);
	if (!ok)
		filter_fail(m, "can't send SMFIC_OPTNEG: %s", strerror(errno));
	else
		ok = filter_reply(m, "SMFIC_OPTNEG", tmo, &pkt, &r);
	if (ok && r.cmd != MILTER_REPLY_OPTNEG) {
		filter_fail(m, "unexpected reply '%c' to SMFIC_OPTNEG", r.cmd);
		ok = false;
	}
	if (ok && (r.version < 2 || r.version > MILTER_PROTO_VERSION)) {
		filter_fail(m, "protocol version %u not supported",
		    (unsigned)r.version);
		ok = false;
	}
	if (ok && (r.protocol & ~(uint32_t)MILTER_P_OFFER) != 0) {
		/* It needs steps we cannot leave out or cannot do. */
		filter_fail(m, "requests unsupported protocol options 0x%x",
		    (unsigned)(r.protocol & ~(uint32_t)MILTER_P_OFFER));
		ok = false;
	}
	if (ok) {
		m->actions = r.actions & MILTER_ACT_ALL;
		m->protocol = r.protocol;
		for (int st = 0; st < MILTER_STAGE_COUNT; st++) {
			if (r.symlist[st] != NULL &&
			    (m->actions & MILTER_ACT_SETSYMLIST)) {
				m->macros[st] = cfg_split_list(r.symlist[st]);
				m->own_macros[st] = true;
			} else {
				m->macros[st] = *configured_macros(st);
			}
		}
		m->state = MILTER_READY;
	}
	str_free(&pkt);
	return ok;
}

/* ---- macros (Postfix's names) ---- */

static void tls_field(const char *info, int which, char *out, size_t size)
{
	/* tls_info: "TLSv1.3 with cipher NAME (256/256 bits)" */
	out[0] = '\0';
	if (info[0] == '\0')
		return;
	if (which == 0) {
		size_t n = strcspn(info, " ");
		snprintf(out, size, "%.*s", (int)n, info);
	} else if (which == 1) {
		const char *c = strstr(info, "cipher ");
		if (c != NULL)
			snprintf(out, size, "%.*s", (int)strcspn(c + 7, " "),
			    c + 7);
	} else {
		const char *b = strchr(info, '(');
		if (b != NULL)
			snprintf(out, size, "%.*s", (int)strcspn(b + 1, "/"),
			    b + 1);
	}
}

/* The value of a macro now, or NULL when it has none (not sent). */
static const char *macro_value(struct smtpd_session *s, const char *name,
    const char *rcpt, char *buf, size_t size)
{
	char bare[64];
	size_t n = strlen(name);
	if (n >= 2 && name[0] == '{' && name[n - 1] == '}')
		snprintf(bare, sizeof(bare), "%.*s", (int)(n - 2), name + 1);
	else
		snprintf(bare, sizeof(bare), "%s", name);
	struct smtpd_txn *t = s->txn;

	if (strcmp(bare, "j") == 0 || strcmp(bare, "daemon_name") == 0)
		return cfg.myhostname;
	if (strcmp(bare, "v") == 0)
		return "postern";
	if (strcmp(bare, "_") == 0) {
		snprintf(buf, size, "%s [%s]", s->client_name,
		    s->client_addr);
		return buf;
	}
	if (strcmp(bare, "client_addr") == 0)
		return s->client_addr;
	if (strcmp(bare, "client_name") == 0 ||
	    strcmp(bare, "client_ptr") == 0)
		return s->client_name;
	if (strcmp(bare, "client_port") == 0) {
		snprintf(buf, size, "%d", s->conn->peer_port);
		return buf;
	}
	if (strcmp(bare, "daemon_addr") == 0) {
		int port;
		if (s->conn->local_len == 0 || s->conn->peer_is_unix)
			return NULL;
		sock_addr_format((struct sockaddr *)&s->conn->local, buf, size,
		    &port);
		return buf;
	}
	if (strcmp(bare, "tls_version") == 0 || strcmp(bare, "cipher") == 0 ||
	    strcmp(bare, "cipher_bits") == 0) {
		if (!s->tls_active)
			return NULL;
		tls_field(s->tls_info, bare[0] == 't' ? 0 :
		    strcmp(bare, "cipher") == 0 ? 1 : 2, buf, size);
		return buf[0] ? buf : NULL;
	}
	if (strcmp(bare, "auth_type") == 0)
		return s->auth_user ? s->auth_method : NULL;
	if (strcmp(bare, "auth_authen") == 0)
		return s->auth_user;
	if (strcmp(bare, "i") == 0)
		return t && t->queue_id[0] ? t->queue_id : NULL;
	if (strcmp(bare, "mail_addr") == 0)
		return t ? t->sender : NULL;
	if (strcmp(bare, "mail_host") == 0) {
		const char *d = t ? addr_domain_of(t->sender) : NULL;
		return d;
	}
	if (strcmp(bare, "mail_mailer") == 0 || strcmp(bare, "rcpt_mailer")
	    == 0)
		return "smtp";
	if (strcmp(bare, "rcpt_addr") == 0)
		return rcpt;
	if (strcmp(bare, "rcpt_host") == 0)
		return rcpt ? addr_domain_of(rcpt) : NULL;
	return NULL;
}

/* Append the SMFIC_MACRO packet for this filter and stage, if any. */
static void add_macros(struct smtpd_session *s, struct milter_conn *m,
    enum milter_stage st, char cmd, const char *rcpt, struct str *pkt)
{
	const struct cfg_list *l = &m->macros[st];
	const char *names[64], *values[64];
	char bufs[64][340];
	size_t n = 0;
	for (size_t i = 0; i < l->count && n < 64; i++) {
		const char *v = macro_value(s, l->items[i], rcpt, bufs[n],
		    sizeof(bufs[n]));
		if (v == NULL)
			continue;
		names[n] = l->items[i];
		values[n] = v;
		n++;
	}
	if (n > 0)
		milter_encode_macros(pkt, cmd, names, values, n);
}

/* ---- the stages before the message ---- */

/* What one filter's reply means at a stage before end-of-message. */
static bool judge(struct milter_conn *m, const struct milter_reply *r,
    bool connection_stage, struct smtpd_milter_verdict *v)
{
	switch (r->cmd) {
	case MILTER_REPLY_CONTINUE:
	case MILTER_REPLY_SKIP:
		return true;
	case MILTER_REPLY_ACCEPT:
		if (connection_stage)
			m->state = MILTER_DONE;
		else
			m->msg_done = true;
		return true;
	case MILTER_REPLY_REJECT:
		verdict_reject(v);
		return false;
	case MILTER_REPLY_TEMPFAIL:
		verdict_tempfail(v);
		return false;
	case MILTER_REPLY_REPLYCODE:
		verdict_set(v, r->code >= 500 ? SMTPD_MILTER_REJECT :
		    SMTPD_MILTER_TEMPFAIL, r->text);
		return false;
	case MILTER_REPLY_DISCARD:
		if (connection_stage) {
			/* Nothing to discard yet: as Postfix, ignored. */
			log_warning("milter %s: DISCARD action is not allowed "
			    "at the connection stage", m->spec);
			return true;
		}
		v->action = SMTPD_MILTER_DISCARD;
		m->msg_done = true;
		return true;
	case MILTER_REPLY_SHUTDOWN:
	case MILTER_REPLY_CONN_FAIL:
		verdict_tempfail(v);
		filter_fail(m, "filter ended the session ('%c')", r->cmd);
		return false;
	default:
		filter_fail(m, "unexpected reply '%c' before end of message",
		    r->cmd);
		return true;
	}
}

/* The verdict of milter_default_action for a filter that failed. */
static bool default_verdict(struct smtpd_milter_verdict *v)
{
	switch (default_action) {
	case DEFAULT_TEMPFAIL:
		verdict_tempfail(v);
		return false;
	case DEFAULT_REJECT:
		verdict_reject(v);
		return false;
	default:
		return true;
	}
}

/*
 * One stage before the message for every filter in order: the stage's
 * macros, then the command; stop at the first reject, tempfail.
 */
static void run_stage(struct smtpd_session *s, enum milter_stage st,
    char cmd, const struct str *command, uint32_t skip_flag,
    uint32_t noreply_flag, const char *rcpt, struct smtpd_milter_verdict *v)
{
	struct smtpd_milter_session *ms = s->milter;
	bool conn_stage = st == MILTER_STAGE_CONNECT || st == MILTER_STAGE_HELO;
	struct str pkt;
	long long tmo = timeout_ms(cmd == MILTER_CMD_CONNECT ?
	    cfg.milter_connect_timeout : cfg.milter_command_timeout);

	str_init(&pkt, MILTER_PACKET_MAX + 16);
	for (size_t i = 0; ms != NULL && i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->state == MILTER_FAILED && st == MILTER_STAGE_MAIL) {
			/* A filter that failed earlier in the session. */
			if (!default_verdict(v))
				break;
			continue;
		}
		if (m->state != MILTER_READY || (!conn_stage && m->msg_done))
			continue;
		if (st == MILTER_STAGE_MAIL)
			m->in_msg = true;
		if (m->protocol & skip_flag)
			continue;
		str_clear(&pkt);
		add_macros(s, m, st, cmd, rcpt, &pkt);
		str_append(&pkt, command->data, command->len);
		const char *what = cmd == MILTER_CMD_CONNECT ? "SMFIC_CONNECT" :
		    cmd == MILTER_CMD_HELO ? "SMFIC_HELO" :
		    cmd == MILTER_CMD_MAIL ? "SMFIC_MAIL" :
		    cmd == MILTER_CMD_RCPT ? "SMFIC_RCPT" : "SMFIC_DATA";
		if (!filter_send(m, &pkt, tmo)) {
			filter_fail(m, "can't send %s: %s", what,
			    strerror(errno));
			if (!default_verdict(v))
				break;
			continue;
		}
		if (m->protocol & noreply_flag)
			continue;
		struct milter_reply r;
		if (!filter_reply(m, what, tmo, &pkt, &r)) {
			if (!default_verdict(v))
				break;
			continue;
		}
		if (!judge(m, &r, conn_stage, v))
			break;
	}
	str_free(&pkt);
}

void smtpd_milter_connect(struct smtpd_session *s)
{
	if (!smtpd_milter_enabled())
		return;
	struct smtpd_milter_session *ms = xcalloc(1, sizeof(*ms));
	ms->n = cfg.smtpd_milters.count;
	ms->f = xcalloc(ms->n, sizeof(*ms->f));
	s->milter = ms;
	for (size_t i = 0; i < ms->n; i++) {
		ms->f[i].spec = cfg.smtpd_milters.items[i];
		ms->f[i].fd = -1;
		filter_open(&ms->f[i]);
	}
	/* Connect: host name, family, port, address (Postfix sends "L"
	 * with the path for a local client). */
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	if (s->conn->peer_is_unix)
		milter_encode_connect(&cmd, "localhost", 'L', 0, "unix");
	else
		milter_encode_connect(&cmd, s->client_name,
		    strchr(s->client_addr, ':') ? '6' : '4',
		    (uint16_t)s->conn->peer_port, s->client_addr);
	/* The packet includes its header: strip nothing, run_stage appends
	 * it whole after the macros. */
	run_stage(s, MILTER_STAGE_CONNECT, MILTER_CMD_CONNECT, &cmd,
	    MILTER_P_NOCONNECT, MILTER_P_NR_CONN, NULL, &ms->deferred);
	str_free(&cmd);
	/* A failure to connect counts at MAIL (default_verdict there). */
	if (ms->deferred.action == SMTPD_MILTER_DISCARD)
		ms->deferred.action = SMTPD_MILTER_CONTINUE;
}

void smtpd_milter_helo(struct smtpd_session *s)
{
	struct smtpd_milter_session *ms = s->milter;
	if (ms == NULL || ms->deferred.action != SMTPD_MILTER_CONTINUE)
		return;
	const char *helo = s->helo ? s->helo : "";
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	milter_encode_strings(&cmd, MILTER_CMD_HELO, &helo, 1);
	run_stage(s, MILTER_STAGE_HELO, MILTER_CMD_HELO, &cmd,
	    MILTER_P_NOHELO, MILTER_P_NR_HELO, NULL, &ms->deferred);
	str_free(&cmd);
	if (ms->deferred.action == SMTPD_MILTER_DISCARD)
		ms->deferred.action = SMTPD_MILTER_CONTINUE;
}

/* "<addr>" then each ESMTP parameter, as strings of one packet. */
static void encode_path(struct str *cmd, char which, const char *addr,
    const char *args)
{
	char *path = xasprintf("<%s>", addr);
	char *copy = xstrdup(args ? args : "");
	const char *strs[33];
	size_t n = 0;
	strs[n++] = path;
	for (char *tok = strtok(copy, " "); tok && n < 33;
	    tok = strtok(NULL, " "))
		strs[n++] = tok;
	milter_encode_strings(cmd, which, strs, n);
	free(copy);
	free(path);
}

void smtpd_milter_mail(struct smtpd_session *s, const char *sender,
    const char *args, struct smtpd_milter_verdict *v)
{
	struct smtpd_milter_session *ms = s->milter;
	memset(v, 0, sizeof(*v));
	if (ms == NULL)
		return;
	if (ms->deferred.action != SMTPD_MILTER_CONTINUE) {
		*v = ms->deferred;
		return;
	}
	for (size_t i = 0; i < ms->n; i++)
		ms->f[i].msg_done = false;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	encode_path(&cmd, MILTER_CMD_MAIL, sender, args);
	/* {mail_addr} is the sender being tried: the txn is not made yet. */
	struct smtpd_txn probe = { 0 };
	struct smtpd_txn *saved = s->txn;
	probe.sender = (char *)sender;
	s->txn = &probe;
	run_stage(s, MILTER_STAGE_MAIL, MILTER_CMD_MAIL, &cmd,
	    MILTER_P_NOMAIL, MILTER_P_NR_MAIL, NULL, v);
	s->txn = saved;
	str_free(&cmd);
}

void smtpd_milter_rcpt(struct smtpd_session *s, const char *rcpt,
    const char *args, struct smtpd_milter_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (s->milter == NULL)
		return;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	encode_path(&cmd, MILTER_CMD_RCPT, rcpt, args);
	run_stage(s, MILTER_STAGE_RCPT, MILTER_CMD_RCPT, &cmd,
	    MILTER_P_NORCPT, MILTER_P_NR_RCPT, rcpt, v);
	str_free(&cmd);
}

void smtpd_milter_data(struct smtpd_session *s, struct smtpd_milter_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (s->milter == NULL)
		return;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	milter_encode(&cmd, MILTER_CMD_DATA, NULL, 0);
	run_stage(s, MILTER_STAGE_DATA, MILTER_CMD_DATA, &cmd,
	    MILTER_P_NODATA, MILTER_P_NR_DATA, NULL, v);
	str_free(&cmd);
}

/* ABORT: the filter forgets the message; no reply (libmilter). */
void smtpd_milter_abort(struct smtpd_session *s)
{
	struct smtpd_milter_session *ms = s->milter;
	for (size_t i = 0; ms != NULL && i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->state != MILTER_READY || !m->in_msg)
			continue;
		struct str pkt;
		str_init(&pkt, STR_NO_MAX);
		milter_encode(&pkt, MILTER_CMD_ABORT, NULL, 0);
		if (!filter_send(m, &pkt, timeout_ms(cfg.milter_command_timeout)))
			filter_fail(m, "can't send SMFIC_ABORT: %s",
			    strerror(errno));
		str_free(&pkt);
		m->in_msg = false;
		m->msg_done = false;
	}
}

void smtpd_milter_quit(struct smtpd_session *s)
{
	struct smtpd_milter_session *ms = s->milter;
	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->fd >= 0) {
			struct str pkt;
			str_init(&pkt, STR_NO_MAX);
			milter_encode(&pkt, MILTER_CMD_QUIT, NULL, 0);
			(void)filter_send(m, &pkt, 1000);
			str_free(&pkt);
			close(m->fd);
		}
		for (int st = 0; st < MILTER_STAGE_COUNT; st++)
			if (m->own_macros[st])
				cfg_list_free(&m->macros[st]);
	}
	free(ms->f);
	free(ms);
	s->milter = NULL;
}

/* ---- the message ---- */

struct smtpd_milter_msg *smtpd_milter_msg_new(int door_fd)
{
	int spool = memfd_create("postern-milter-spool", MFD_CLOEXEC);
	if (spool < 0) {
		log_warning("cannot make the milter spool: %m");
		return NULL;
	}
	struct smtpd_milter_msg *m = xcalloc(1, sizeof(*m));
	m->door_fd = door_fd;
	m->spool_fd = spool;
	str_init(&m->new_body, STR_NO_MAX);
	str_init(&m->cur_body, STR_NO_MAX);
	str_init(&m->wbuf, STR_NO_MAX);
	return m;
}

/* Write the buffered bytes into the spool. */
static bool spool_flush(struct smtpd_milter_msg *m)
{
	const char *c = m->wbuf.data;
	size_t n = m->wbuf.len;
	while (n > 0 && !m->write_failed) {
		ssize_t w = write(m->spool_fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			m->write_failed = true;
			break;
		}
		c += w;
		n -= (size_t)w;
		m->spooled += (size_t)w;
	}
	str_clear(&m->wbuf);
	return !m->write_failed;
}

/* Buffered: the core hands over a line at a time (DESIGN.md: never a
 * system call per line). */
bool smtpd_milter_msg_write(struct smtpd_milter_msg *m, const void *p,
    size_t n)
{
	if (m->write_failed || !str_append(&m->wbuf, p, n)) {
		m->write_failed = true;
		return false;
	}
	if (m->wbuf.len >= 65536)
		return spool_flush(m);
	return true;
}

static void free_headers(struct smtpd_milter_msg *m)
{
	for (size_t i = 0; i < m->nhdrs; i++) {
		free(m->hdrs[i].name);
		free(m->hdrs[i].raw);
	}
	free(m->hdrs);
	m->hdrs = NULL;
	m->nhdrs = m->hdr_cap = 0;
}

void smtpd_milter_msg_free(struct smtpd_milter_msg *m)
{
	if (m == NULL)
		return;
	if (m->door_fd >= 0)
		close(m->door_fd);
	if (m->map != NULL)
		munmap((void *)m->map, m->map_len);
	close(m->spool_fd);
	free_headers(m);
	str_free(&m->new_body);
	str_free(&m->cur_body);
	str_free(&m->wbuf);
	free(m->hold_reason);
	free(m);
}

static void header_insert(struct smtpd_milter_msg *m, size_t at, char *name,
    char *raw)
{
	if (m->nhdrs == m->hdr_cap) {
		m->hdr_cap = m->hdr_cap ? m->hdr_cap * 2 : 32;
		m->hdrs = xreallocarray(m->hdrs, m->hdr_cap, sizeof(*m->hdrs));
	}
	if (at > m->nhdrs)
		at = m->nhdrs;
	memmove(&m->hdrs[at + 1], &m->hdrs[at],
	    (m->nhdrs - at) * sizeof(*m->hdrs));
	m->hdrs[at] = (struct mhdr){ name, raw };
	m->nhdrs++;
}

/*
 * Split p[0..len) into header fields (RFC 5322 2.2: name ":" value, with
 * folded lines starting with SP or HT) appended to m's list; returns
 * where the body starts. A line that is not a field ends the headers
 * without being taken (it is the body's first line).
 */
static size_t parse_headers(struct smtpd_milter_msg *m, const unsigned char *p,
    size_t len, bool *separator)
{
	size_t pos = 0;
	*separator = false;
	while (pos < len) {
		const unsigned char *crlf = memmem(p + pos, len - pos, "\r\n",
		    2);
		size_t end = crlf ? (size_t)(crlf - p) : len;
		size_t next = crlf ? end + 2 : len;
		if (end == pos) {
			*separator = true;
			return next;
		}
		if ((p[pos] == ' ' || p[pos] == '\t') && m->nhdrs > 0) {
			struct mhdr *h = &m->hdrs[m->nhdrs - 1];
			char *raw = xasprintf("%s\r\n%.*s", h->raw,
			    (int)(end - pos), p + pos);
			free(h->raw);
			h->raw = raw;
			pos = next;
			continue;
		}
		size_t n = 0;
		while (pos + n < end && p[pos + n] > 0x20 && p[pos + n] < 0x7f &&
		    p[pos + n] != ':')
			n++;
		if (n == 0 || pos + n >= end || p[pos + n] != ':' || !crlf)
			return pos;
		header_insert(m, m->nhdrs, xstrndup((const char *)p + pos, n),
		    xstrndup((const char *)p + pos + n + 1, end - pos - n - 1));
		pos = next;
	}
	return pos;
}

/* The value as a filter sees it: no leading space, LF line ends. */
static char *value_for_filter(const struct milter_conn *f, const char *raw)
{
	if (!(f->protocol & MILTER_P_HDR_LEADSPC) && raw[0] == ' ')
		raw++;
	char *v = xstrdup(raw);
	char *o = v;
	for (const char *i = raw; *i; i++)
		if (!(i[0] == '\r' && i[1] == '\n'))
			*o++ = *i;
	*o = '\0';
	return v;
}

/*
 * A filter's header value as it goes into the file: a leading space
 * (unless the filter speaks HDR_LEADSPC), CRLF line ends, and every
 * continuation line folded with a tab if the filter did not, so that a
 * value can never start a header field or end the header block.
 */
static char *value_from_filter(const struct milter_conn *f, const char *v)
{
	struct str out;
	str_init(&out, STR_NO_MAX);
	if (!(f->protocol & MILTER_P_HDR_LEADSPC))
		str_append_char(&out, ' ');
	for (const char *i = v; *i; i++) {
		if (*i == '\r')
			continue;
		if (*i == '\n') {
			str_append(&out, "\r\n", 2);
			if (i[1] != ' ' && i[1] != '\t')
				str_append_char(&out, '\t');
			continue;
		}
		str_append_char(&out, *i);
	}
	return str_steal(&out);
}

/* The n-th (1-based) field named name, or -1. */
static long find_header(const struct smtpd_milter_msg *m, const char *name,
    uint32_t nth)
{
	uint32_t seen = 0;
	for (size_t i = 0; i < m->nhdrs; i++)
		if (strcasecmp(m->hdrs[i].name, name) == 0 && ++seen == nth)
			return (long)i;
	return -1;
}

/* An address a filter gave: "<a@b>" or "a@b"; canonical or NULL. */
static char *filter_address(const char *text, bool sender, bool utf8)
{
	struct addr a;
	const char *end, *why;
	unsigned flags = ADDR_ALLOW_NO_BRACKETS | ADDR_ALLOW_POSTMASTER |
	    (sender ? ADDR_ALLOW_NULL : 0) | (utf8 ? ADDR_ALLOW_UTF8 : 0);
	if (!addr_parse_path(text, flags, &a, &end, &why))
		return NULL;
	char *r = *end == '\0' ? xstrdup(a.address) : NULL;
	addr_free(&a);
	return r;
}

static void rcpt_delete(struct queue_envelope *env, const char *address)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (strcasecmp(env->rcpts[i].address, address) != 0)
			continue;
		free(env->rcpts[i].address);
		free(env->rcpts[i].orcpt);
		memmove(&env->rcpts[i], &env->rcpts[i + 1],
		    (env->nrcpts - i - 1) * sizeof(*env->rcpts));
		env->nrcpts--;
		return;
	}
}

/* Normalise a replaced body to CRLF line ends (the queue's form). */
static void body_to_crlf(struct str *b)
{
	struct str out;
	str_init(&out, STR_NO_MAX);
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r'))
			str_append_char(&out, '\r');
		str_append_char(&out, b->data[i]);
	}
	str_free(b);
	*b = out;
}

/*
 * Apply one modification of filter f to the message. false: the filter
 * did what it had not negotiated (a protocol error).
 */
static bool apply_edit(struct smtpd_session *s, struct milter_conn *f,
    struct smtpd_milter_msg *m, const struct milter_reply *r)
{
	struct smtpd_txn *t = s->txn;
	struct queue_envelope *env = &t->env;
	const char *id = t->queue_id;
	char *a;

	switch (r->cmd) {
	case MILTER_REPLY_ADDHEADER:
		if (!(f->actions & MILTER_ACT_ADDHDRS))
			return false;
		header_insert(m, m->nhdrs, xstrdup(r->name),
		    value_from_filter(f, r->value));
		return true;
	case MILTER_REPLY_INSHEADER:
		if (!(f->actions & MILTER_ACT_ADDHDRS))
			return false;
		header_insert(m, r->index, xstrdup(r->name),
		    value_from_filter(f, r->value));
		return true;
	case MILTER_REPLY_CHGHEADER: {
		if (!(f->actions & MILTER_ACT_CHGHDRS))
			return false;
		long i = find_header(m, r->name, r->index ? r->index : 1);
		if (i < 0) {
			/* Sendmail's rule: changing a missing field adds it. */
			if (r->value[0] != '\0')
				header_insert(m, m->nhdrs, xstrdup(r->name),
				    value_from_filter(f, r->value));
			return true;
		}
		if (r->value[0] == '\0') {
			free(m->hdrs[i].name);
			free(m->hdrs[i].raw);
			memmove(&m->hdrs[i], &m->hdrs[i + 1],
			    (m->nhdrs - (size_t)i - 1) * sizeof(*m->hdrs));
			m->nhdrs--;
		} else {
			free(m->hdrs[i].raw);
			m->hdrs[i].raw = value_from_filter(f, r->value);
		}
		return true;
	}
	case MILTER_REPLY_REPLBODY:
		if (!(f->actions & MILTER_ACT_CHGBODY))
			return false;
		/* The first chunk replaces, the next ones append. */
		m->replaced_now = true;
		if (!str_append(&m->new_body, r->body, r->body_len))
			return false;
		return true;
	case MILTER_REPLY_ADDRCPT:
	case MILTER_REPLY_ADDRCPT_PAR: {
		if (!(f->actions & (r->cmd == MILTER_REPLY_ADDRCPT ?
		    MILTER_ACT_ADDRCPT : MILTER_ACT_ADDRCPT_PAR)))
			return false;
		if ((a = filter_address(r->addr, false, env->smtputf8)) ==
		    NULL || a[0] == '\0') {
			log_warning("%s: milter %s: bad recipient to add: "
			    "ignored", id, f->spec);
			free(a);
			return true;
		}
		struct esmtp_rcpt_params p = { 0 };
		int code;
		const char *enh, *why;
		if (r->args != NULL && !esmtp_parse_rcpt_params(r->args,
		    ESMTP_EXT_DSN, &p, &code, &enh, &why)) {
			log_warning("%s: milter %s: bad parameters of an added "
			    "recipient: %s: ignored", id, f->spec, why);
			esmtp_rcpt_params_free(&p);
			p = (struct esmtp_rcpt_params){ 0 };
		}
		rcpt_delete(env, a);	/* no duplicate */
		queue_envelope_add_rcpt(env, a, p.notify, p.orcpt);
		log_info("%s: milter %s: add recipient <%s>", id, f->spec, a);
		esmtp_rcpt_params_free(&p);
		free(a);
		return true;
	}
	case MILTER_REPLY_DELRCPT:
		if (!(f->actions & MILTER_ACT_DELRCPT))
			return false;
		if ((a = filter_address(r->addr, false, true)) != NULL) {
			rcpt_delete(env, a);
			log_info("%s: milter %s: delete recipient <%s>", id,
			    f->spec, a);
			free(a);
		}
		return true;
	case MILTER_REPLY_CHGFROM:
		if (!(f->actions & MILTER_ACT_CHGFROM))
			return false;
		if ((a = filter_address(r->addr, true, env->smtputf8)) == NULL) {
			log_warning("%s: milter %s: bad sender: ignored", id,
			    f->spec);
			return true;
		}
		/* ESMTP parameters of the new sender are not kept: the
		 * envelope keeps the client's BODY, RET and ENVID. */
		free(env->sender);
		env->sender = a;
		log_info("%s: milter %s: change sender to <%s>", id, f->spec,
		    a);
		return true;
	case MILTER_REPLY_QUARANTINE:
		if (!(f->actions & MILTER_ACT_QUARANTINE))
			return false;
		free(m->hold_reason);
		m->hold_reason = xstrdup(r->reason);
		return true;
	default:
		return false;
	}
}

/* Send this filter the message as it now is and read its end reply. */
static bool filter_message(struct smtpd_session *s, struct milter_conn *f,
    struct smtpd_milter_msg *m, struct smtpd_milter_verdict *v)
{
	long long tmo = timeout_ms(cfg.milter_content_timeout);
	struct str pkt;
	struct milter_reply r;
	bool ok = true;
	const char *what = "SMFIC_HEADER";

	str_init(&pkt, MILTER_PACKET_MAX + 16);
	for (size_t i = 0; ok && !(f->protocol & MILTER_P_NOHDRS) &&
	    i < m->nhdrs; i++) {
		str_clear(&pkt);
		char *val = value_for_filter(f, m->hdrs[i].raw);
		milter_encode_header(&pkt, m->hdrs[i].name, val);
		free(val);
		ok = filter_send(f, &pkt, tmo);
		if (ok && !(f->protocol & MILTER_P_NR_HDR)) {
			if (!filter_reply(f, what, tmo, &pkt, &r))
				goto failed;
			if (r.cmd == MILTER_REPLY_SKIP)
				break;
			if (!judge(f, &r, false, v))
				goto judged;
			if (f->msg_done)
				goto done;
		}
	}
	if (ok && !(f->protocol & MILTER_P_NOEOH)) {
		what = "SMFIC_EOH";
		str_clear(&pkt);
		add_macros(s, f, MILTER_STAGE_EOH, MILTER_CMD_EOH, NULL, &pkt);
		milter_encode(&pkt, MILTER_CMD_EOH, NULL, 0);
		ok = filter_send(f, &pkt, tmo);
		if (ok && !(f->protocol & MILTER_P_NR_EOH)) {
			if (!filter_reply(f, what, tmo, &pkt, &r))
				goto failed;
			if (!judge(f, &r, false, v))
				goto judged;
			if (f->msg_done)
				goto done;
		}
	}
	what = "SMFIC_BODY";
	for (size_t off = 0; ok && !(f->protocol & MILTER_P_NOBODY) &&
	    off < m->body_len; off += MILTER_CHUNK_SIZE) {
		size_t n = m->body_len - off;
		if (n > MILTER_CHUNK_SIZE)
			n = MILTER_CHUNK_SIZE;
		str_clear(&pkt);
		milter_encode(&pkt, MILTER_CMD_BODY, m->body + off, n);
		ok = filter_send(f, &pkt, tmo);
		if (ok && !(f->protocol & MILTER_P_NR_BODY)) {
			if (!filter_reply(f, what, tmo, &pkt, &r))
				goto failed;
			if (r.cmd == MILTER_REPLY_SKIP)
				break;
			if (!judge(f, &r, false, v))
				goto judged;
			if (f->msg_done)
				goto done;
		}
	}
	what = "SMFIC_BODYEOB";
	if (ok) {
		str_clear(&pkt);
		add_macros(s, f, MILTER_STAGE_EOM, MILTER_CMD_BODYEOB, NULL,
		    &pkt);
		milter_encode(&pkt, MILTER_CMD_BODYEOB, NULL, 0);
		ok = filter_send(f, &pkt, tmo);
	}
	if (!ok) {
		filter_fail(f, "can't send %s: %s", what, strerror(errno));
		goto failed;
	}
	/* Edits, then one final reply. */
	for (;;) {
		if (!filter_reply(f, what, tmo, &pkt, &r))
			goto failed;
		switch (r.cmd) {
		case MILTER_REPLY_ACCEPT:
		case MILTER_REPLY_CONTINUE:
			goto done;
		case MILTER_REPLY_DISCARD:
		case MILTER_REPLY_REJECT:
		case MILTER_REPLY_TEMPFAIL:
		case MILTER_REPLY_REPLYCODE:
		case MILTER_REPLY_SHUTDOWN:
		case MILTER_REPLY_CONN_FAIL:
			judge(f, &r, false, v);
			goto judged;
		default:
			if (!apply_edit(s, f, m, &r)) {
				filter_fail(f, "action '%c' not negotiated or "
				    "not allowed at end of message", r.cmd);
				goto failed;
			}
		}
	}
done:
	f->in_msg = false;
	str_free(&pkt);
	return true;
judged:
	f->in_msg = false;
	str_free(&pkt);
	return v->action == SMTPD_MILTER_CONTINUE ||
	    v->action == SMTPD_MILTER_DISCARD;
failed:
	str_free(&pkt);
	if (default_action == DEFAULT_QUARANTINE && m->hold_reason == NULL)
		m->hold_reason = xstrdup("milter_default_action");
	return default_verdict(v);
}

static bool write_message(struct smtpd_session *s, struct smtpd_milter_msg *m,
    struct smtpd_milter_verdict *v)
{
	struct smtpd_txn *t = s->txn;
	char err[512];

	t->writer = queue_writer_attach(m->door_fd, t->queue_id, &t->env, err,
	    sizeof(err));
	m->door_fd = -1;	/* the writer owns it now */
	if (t->writer == NULL) {
		log_warning("%s: cannot write queue file: %s", t->queue_id,
		    err);
		verdict_set(v, SMTPD_MILTER_TEMPFAIL,
		    "452 4.3.1 Error: insufficient system storage");
		return false;
	}
	bool ok = true;
	for (size_t i = 0; ok && i < m->nhdrs; i++)
		ok = queue_writer_write(t->writer, m->hdrs[i].name,
		    strlen(m->hdrs[i].name)) &&
		    queue_writer_write(t->writer, ":", 1) &&
		    queue_writer_write(t->writer, m->hdrs[i].raw,
		    strlen(m->hdrs[i].raw)) &&
		    queue_writer_write(t->writer, "\r\n", 2);
	if (ok && (m->separator || m->body_len > 0))
		ok = queue_writer_write(t->writer, "\r\n", 2);
	if (ok && m->body_len > 0)
		ok = queue_writer_write(t->writer, m->body, m->body_len);
	if (!ok) {
		log_warning("%s: queue file write error: %m", t->queue_id);
		verdict_set(v, SMTPD_MILTER_TEMPFAIL,
		    "452 4.3.1 Error: insufficient system storage");
	}
	return ok;
}

bool smtpd_milter_eom(struct smtpd_session *s, const char *received,
    struct smtpd_milter_verdict *v, const char **hold_reason)
{
	struct smtpd_txn *t = s->txn;
	struct smtpd_milter_msg *m = t->milter_msg;
	struct smtpd_milter_session *ms = s->milter;

	memset(v, 0, sizeof(*v));
	*hold_reason = NULL;
	spool_flush(m);
	if (m->write_failed) {
		log_warning("%s: cannot spool the message for the milters: %m",
		    t->queue_id);
		verdict_set(v, SMTPD_MILTER_TEMPFAIL,
		    "452 4.3.1 Error: insufficient system storage");
		return false;
	}
	if (m->spooled > 0) {
		void *p = mmap(NULL, m->spooled, PROT_READ, MAP_PRIVATE,
		    m->spool_fd, 0);
		if (p == MAP_FAILED) {
			log_warning("%s: cannot map the milter spool: %m",
			    t->queue_id);
			verdict_set(v, SMTPD_MILTER_TEMPFAIL,
			    "451 4.3.0 Error: queue file write error");
			return false;
		}
		m->map = p;
		m->map_len = m->spooled;
	}
	/* Our Received header first, as the filters see it in Postfix. */
	bool sep;
	parse_headers(m, (const unsigned char *)received, strlen(received),
	    &sep);
	size_t body_at = parse_headers(m, m->map, m->map_len, &m->separator);
	m->body = m->map ? m->map + body_at : NULL;
	m->body_len = m->map_len - body_at;

	for (size_t i = 0; ms != NULL && i < ms->n; i++) {
		struct milter_conn *f = &ms->f[i];
		if (f->state != MILTER_READY || f->msg_done)
			continue;
		str_clear(&m->new_body);
		m->replaced_now = false;
		if (!filter_message(s, f, m, v))
			return false;
		if (m->replaced_now) {
			/* A later filter and the queue file see it. */
			body_to_crlf(&m->new_body);
			str_free(&m->cur_body);
			m->cur_body = m->new_body;
			str_init(&m->new_body, STR_NO_MAX);
			m->body = (const unsigned char *)m->cur_body.data;
			m->body_len = m->cur_body.len;
		}
		if (v->action == SMTPD_MILTER_DISCARD)
			break;
	}
	if (v->action == SMTPD_MILTER_DISCARD)
		return false;
	for (size_t i = 0; ms != NULL && i < ms->n; i++)
		if (ms->f[i].state == MILTER_FAILED &&
		    default_action == DEFAULT_QUARANTINE &&
		    m->hold_reason == NULL)
			m->hold_reason = xstrdup("milter_default_action");
	if (t->env.nrcpts == 0) {
		log_info("%s: milter removed all recipients: discarded",
		    t->queue_id);
		v->action = SMTPD_MILTER_DISCARD;
		return false;
	}
	*hold_reason = m->hold_reason;
	return write_message(s, m, v);
}

/* ---- replies and logs ---- */

void smtpd_milter_reply(struct smtpd_session *s,
    const struct smtpd_milter_verdict *v)
{
	/* Each line "ddd-x.y.z text": split off the codes, as the core's
	 * reply helper puts them back. */
	const char *line = v->reply;
	for (;;) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		int code = atoi(line);
		const char *text = len > 4 ? line + 4 : "";
		size_t tlen = len > 4 ? len - 4 : 0;
		char enh[16] = "";
		size_t e = strspn(text, "0123456789.");
		if (e >= 5 && e < sizeof(enh) && e < tlen && text[e] == ' ') {
			memcpy(enh, text, e);
			enh[e] = '\0';
			text += e + 1;
			tlen -= e + 1;
		}
		if (enh[0] == '\0')
			snprintf(enh, sizeof(enh), "%c.7.1", line[0]);
		if (end == NULL) {
			smtpd_reply(s, code, enh, "%.*s", (int)tlen, text);
			return;
		}
		esmtp_reply(&s->bio, code, enh, false, "%.*s", (int)tlen, text);
		line = end + 2;
	}
}

void smtpd_milter_log(struct smtpd_session *s, const char *stage,
    const char *sender, const char *rcpt,
    const struct smtpd_milter_verdict *v)
{
	char text[600], from[300], to[300], helo[300];
	struct smtpd_txn *t = s->txn;
	if (sender == NULL && t != NULL)
		sender = t->sender;

	log_escape_line(text, sizeof(text), v->reply);
	log_escape(helo, sizeof(helo), s->helo ? s->helo : "",
	    s->helo ? strlen(s->helo) : 0);
	if (sender != NULL)
		log_escape(from, sizeof(from), sender, strlen(sender));
	if (rcpt == NULL && t != NULL && t->nrcpts > 0 &&
	    strcmp(stage, "END-OF-MESSAGE") == 0)
		rcpt = t->rcpts[0].address;
	if (rcpt != NULL)
		log_escape(to, sizeof(to), rcpt, strlen(rcpt));
	const char *what = v->action == SMTPD_MILTER_DISCARD ? "discard" :
	    "reject";
	/* At END-OF-MESSAGE Postfix's cleanup logs the text without the
	 * three-digit code. */
	const char *shown = text;
	if (v->action == SMTPD_MILTER_DISCARD)
		shown = "milter triggers DISCARD action";
	else if (strcmp(stage, "END-OF-MESSAGE") == 0 && strlen(text) > 4)
		shown = text + 4;
	log_info("%s: milter-%s: %s from %s: %s;%s%s%s%s%s%s proto=%s "
	    "helo=<%s>", t && t->queue_id[0] ? t->queue_id : "NOQUEUE", what,
	    stage, s->client_log, shown, sender ? " from=<" : "",
	    sender ? from : "", sender ? ">" : "", rcpt ? " to=<" : "",
	    rcpt ? to : "", rcpt ? ">" : "", smtpd_protocol_name(s), helo);
}
