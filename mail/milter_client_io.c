/*
 * milter_client_io.c - the milter client (smtpd's and pickup's), one
 * filter's connection: dialing inet:host:port or unix:/path, option
 * negotiation (SMFIC_OPTNEG: actions, protocol steps, the filter's own
 * macro lists), packets out and replies in with deadlines, and the
 * macros Postfix sends (milter_client.c drives it; the codec is
 * mail/milter_proto.c).
 *
 * Trust: a filter is another program. Every reply is decoded by the
 * codec with its lengths checked; a filter that times out, closes or
 * breaks the protocol is marked failed and never read again.
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

#include "addr.h"
#include "cfg.h"
#include "esmtp.h"
#include "log.h"
#include "mem.h"
#include "milter_client.h"
#include "milter_proto.h"
#include "sock.h"
#include "milter_client_int.h"


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

/* ---- I/O with one filter ---- */

long long milter_client_timeout_ms(long long seconds)
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
void milter_client_fail(struct milter_conn *m, const char *fmt, ...)
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

bool milter_client_send(struct milter_conn *m, const struct str *pkt,
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
bool milter_client_read_reply(struct milter_conn *m, const char *after,
    long long tmo, struct str *pkt, struct milter_reply *r)
{
	char err[200];
	for (;;) {
		long long deadline = now_ms() + tmo;
		unsigned char head[4];
		uint32_t len;
		if (!read_exact(m->fd, head, 4, deadline)) {
			milter_client_fail(m,
			    "can't read %s reply packet header: %s",
			    after, errno == ETIMEDOUT ? "Connection timed out"
			    : strerror(errno));
			return false;
		}
		if (!milter_decode_length(head, &len)) {
			milter_client_fail(m, "bad %s reply packet length %u",
			    after,
			    (unsigned)len);
			return false;
		}
		str_clear(pkt);
		if (!str_reserve(pkt, len)) {
			milter_client_fail(m, "reply too long");
			return false;
		}
		if (!read_exact(m->fd, pkt->data, len, deadline)) {
			milter_client_fail(m,
			    "can't read %s reply packet body: %s",
			    after, errno == ETIMEDOUT ? "Connection timed out"
			    : strerror(errno));
			return false;
		}
		pkt->len = len;
		pkt->data[len] = '\0';
		if (!milter_decode_reply((unsigned char *)pkt->data, len, r,
		    err, sizeof(err))) {
			milter_client_fail(m, "malformed %s reply: %s", after,
			    err);
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
bool milter_client_open(struct milter_conn *m)
{
	long long tmo = milter_client_timeout_ms(cfg.milter_connect_timeout);
	m->fd = filter_dial(m->spec, tmo);
	if (m->fd < 0) {
		milter_client_fail(m, "can't connect: %s", strerror(errno));
		return false;
	}
	struct str pkt;
	str_init(&pkt, MILTER_PACKET_MAX + 16);
	milter_encode_optneg(&pkt, (uint32_t)cfg.milter_protocol,
	    MILTER_ACT_ALL, MILTER_P_OFFER);
	struct milter_reply r;
	bool ok = milter_client_send(m, &pkt, tmo);
	if (!ok)
		milter_client_fail(m, "can't send SMFIC_OPTNEG: %s",
		    strerror(errno));
	else
		ok = milter_client_read_reply(m, "SMFIC_OPTNEG", tmo, &pkt, &r);
	if (ok && r.cmd != MILTER_REPLY_OPTNEG) {
		milter_client_fail(m, "unexpected reply '%c' to SMFIC_OPTNEG",
		    r.cmd);
		ok = false;
	}
	if (ok && (r.version < 2 || r.version > MILTER_PROTO_VERSION)) {
		milter_client_fail(m, "protocol version %u not supported",
		    (unsigned)r.version);
		ok = false;
	}
	if (ok && (r.protocol & ~(uint32_t)MILTER_P_OFFER) != 0) {
		/* It needs steps we cannot leave out or cannot do. */
		milter_client_fail(m,
		    "requests unsupported protocol options 0x%x",
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

/*
 * The value of a macro now, or NULL when it has none (not sent): the
 * generic ones here, the session's from the caller.
 */
static const char *macro_value(struct milter_client *c, const char *name,
    const char *rcpt, char *buf, size_t size)
{
	char bare[64];
	size_t n = strlen(name);
	if (n >= 2 && name[0] == '{' && name[n - 1] == '}')
		snprintf(bare, sizeof(bare), "%.*s", (int)(n - 2), name + 1);
	else
		snprintf(bare, sizeof(bare), "%s", name);

	if (strcmp(bare, "j") == 0 || strcmp(bare, "daemon_name") == 0)
		return cfg.myhostname;
	if (strcmp(bare, "v") == 0)
		return "postern";
	if (strcmp(bare, "rcpt_addr") == 0)
		return rcpt;
	if (strcmp(bare, "rcpt_host") == 0)
		return rcpt ? addr_domain_of(rcpt) : NULL;
	return c->macro != NULL ? c->macro(c->ctx, bare, rcpt, buf, size) :
	    NULL;
}

/* Append the SMFIC_MACRO packet for this filter and stage, if any. */
void milter_client_add_macros(struct milter_client *c, struct milter_conn *m,
    enum milter_stage st, char cmd, const char *rcpt, struct str *pkt)
{
	const struct cfg_list *l = &m->macros[st];
	const char *names[64], *values[64];
	char bufs[64][340];
	size_t n = 0;
	for (size_t i = 0; i < l->count && n < 64; i++) {
		const char *v = macro_value(c, l->items[i], rcpt, bufs[n],
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
