/*
 * milter_client_msg.c - the milter client (smtpd's and pickup's), the
 * message: spooled into an anonymous file of the process while it
 * arrives, split into header
 * fields and body at its end, shown to each filter in turn (headers,
 * body chunks, end of body), edited as the filters say (headers, body,
 * sender, recipients, quarantine), and only then written into the queue
 * file by the caller (doc/architecture.md, "Filters (milter)").
 *
 * Trust: the filters' edits are checked before they enter the queue
 * file: header names by the codec, header values folded so that they
 * can neither start a field nor end the header block, addresses by the
 * address parser, ESMTP parameters by the ESMTP parser.
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


/* One header field: name and the raw text after the colon. */
struct mhdr {
	char *name;
	char *raw;		/* " value\r\n\tfolded", no final CRLF */
};

struct milter_msg {
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

/* ---- the message ---- */

struct milter_msg *milter_msg_new(void)
{
	int spool = memfd_create("postern-milter-spool", MFD_CLOEXEC);
	if (spool < 0) {
		log_warning("cannot make the milter spool: %m");
		return NULL;
	}
	struct milter_msg *m = xcalloc(1, sizeof(*m));
	m->spool_fd = spool;
	str_init(&m->new_body, STR_NO_MAX);
	str_init(&m->cur_body, STR_NO_MAX);
	str_init(&m->wbuf, STR_NO_MAX);
	return m;
}

/* Write the buffered bytes into the spool. */
static bool spool_flush(struct milter_msg *m)
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
bool milter_msg_write(struct milter_msg *m, const void *p,
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

static void free_headers(struct milter_msg *m)
{
	for (size_t i = 0; i < m->nhdrs; i++) {
		free(m->hdrs[i].name);
		free(m->hdrs[i].raw);
	}
	free(m->hdrs);
	m->hdrs = NULL;
	m->nhdrs = m->hdr_cap = 0;
}

void milter_msg_free(struct milter_msg *m)
{
	if (m == NULL)
		return;
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

static void header_insert(struct milter_msg *m, size_t at, char *name,
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
static size_t parse_headers(struct milter_msg *m, const unsigned char *p,
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
		while (pos + n < end && p[pos + n] > 0x20 &&
		    p[pos + n] < 0x7f &&
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
static long find_header(const struct milter_msg *m, const char *name,
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
static bool apply_edit(struct queue_envelope *env, const char *id,
    struct milter_conn *f, struct milter_msg *m, const struct milter_reply *r)
{
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
		a = filter_address(r->addr, true, env->smtputf8);
		if (a == NULL) {
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
static bool filter_message(struct milter_client *c, struct queue_envelope *env,
    const char *id, struct milter_conn *f, struct milter_msg *m,
    struct milter_verdict *v)
{
	long long tmo = milter_client_timeout_ms(cfg.milter_content_timeout);
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
		ok = milter_client_send(f, &pkt, tmo);
		if (ok && !(f->protocol & MILTER_P_NR_HDR)) {
			if (!milter_client_read_reply(f, what, tmo, &pkt, &r))
				goto failed;
			if (r.cmd == MILTER_REPLY_SKIP)
				break;
			if (!milter_client_judge(f, &r, false, v))
				goto judged;
			if (f->msg_done)
				goto done;
		}
	}
	if (ok && !(f->protocol & MILTER_P_NOEOH)) {
		what = "SMFIC_EOH";
		str_clear(&pkt);
		milter_client_add_macros(c, f, MILTER_STAGE_EOH,
		    MILTER_CMD_EOH, NULL, &pkt);
		milter_encode(&pkt, MILTER_CMD_EOH, NULL, 0);
		ok = milter_client_send(f, &pkt, tmo);
		if (ok && !(f->protocol & MILTER_P_NR_EOH)) {
			if (!milter_client_read_reply(f, what, tmo, &pkt, &r))
				goto failed;
			if (!milter_client_judge(f, &r, false, v))
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
		ok = milter_client_send(f, &pkt, tmo);
		if (ok && !(f->protocol & MILTER_P_NR_BODY)) {
			if (!milter_client_read_reply(f, what, tmo, &pkt, &r))
				goto failed;
			if (r.cmd == MILTER_REPLY_SKIP)
				break;
			if (!milter_client_judge(f, &r, false, v))
				goto judged;
			if (f->msg_done)
				goto done;
		}
	}
	what = "SMFIC_BODYEOB";
	if (ok) {
		str_clear(&pkt);
		milter_client_add_macros(c, f, MILTER_STAGE_EOM,
		    MILTER_CMD_BODYEOB, NULL,
		    &pkt);
		milter_encode(&pkt, MILTER_CMD_BODYEOB, NULL, 0);
		ok = milter_client_send(f, &pkt, tmo);
	}
	if (!ok) {
		milter_client_fail(f, "can't send %s: %s", what,
		    strerror(errno));
		goto failed;
	}
	/* Edits, then one final reply. */
	for (;;) {
		if (!milter_client_read_reply(f, what, tmo, &pkt, &r))
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
			milter_client_judge(f, &r, false, v);
			goto judged;
		default:
			if (!apply_edit(env, id, f, m, &r)) {
				milter_client_fail(f,
				    "action '%c' not negotiated or "
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
	return v->action == MILTER_VERDICT_CONTINUE ||
	    v->action == MILTER_VERDICT_DISCARD;
failed:
	str_free(&pkt);
	if (milter_client_default_action == MILTER_DEFAULT_QUARANTINE &&
	    m->hold_reason == NULL)
		m->hold_reason = xstrdup("milter_default_action");
	return milter_client_default_verdict(v);
}

bool milter_msg_emit(const struct milter_msg *m, struct queue_writer *w)
{
	bool ok = true;
	for (size_t i = 0; ok && i < m->nhdrs; i++)
		ok = queue_writer_write(w, m->hdrs[i].name,
		    strlen(m->hdrs[i].name)) &&
		    queue_writer_write(w, ":", 1) &&
		    queue_writer_write(w, m->hdrs[i].raw,
		    strlen(m->hdrs[i].raw)) &&
		    queue_writer_write(w, "\r\n", 2);
	if (ok && (m->separator || m->body_len > 0))
		ok = queue_writer_write(w, "\r\n", 2);
	if (ok && m->body_len > 0)
		ok = queue_writer_write(w, m->body, m->body_len);
	return ok;
}

bool milter_client_eom(struct milter_client *ms, struct milter_msg *m,
    struct queue_envelope *env, const char *id, const char *received,
    struct milter_verdict *v, const char **hold_reason)
{
	memset(v, 0, sizeof(*v));
	*hold_reason = NULL;
	spool_flush(m);
	if (m->write_failed) {
		log_warning("%s: cannot spool the message for the milters: %m",
		    id);
		milter_client_verdict_set(v, MILTER_VERDICT_TEMPFAIL,
		    "452 4.3.1 Error: insufficient system storage");
		return false;
	}
	if (m->spooled > 0) {
		void *p = mmap(NULL, m->spooled, PROT_READ, MAP_PRIVATE,
		    m->spool_fd, 0);
		if (p == MAP_FAILED) {
			log_warning("%s: cannot map the milter spool: %m",
			    id);
			milter_client_verdict_set(v, MILTER_VERDICT_TEMPFAIL,
			    "451 4.3.0 Error: queue file write error");
			return false;
		}
		m->map = p;
		m->map_len = m->spooled;
	}
	/* Our Received header first, as the filters see it in Postfix. */
	bool sep;
	if (received != NULL)
		parse_headers(m, (const unsigned char *)received,
		    strlen(received), &sep);
	size_t body_at = parse_headers(m, m->map, m->map_len, &m->separator);
	m->body = m->map ? m->map + body_at : NULL;
	m->body_len = m->map_len - body_at;

	for (size_t i = 0; ms != NULL && i < ms->n; i++) {
		struct milter_conn *f = &ms->f[i];
		if (f->state != MILTER_READY || f->msg_done)
			continue;
		str_clear(&m->new_body);
		m->replaced_now = false;
		if (!filter_message(ms, env, id, f, m, v))
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
		if (v->action == MILTER_VERDICT_DISCARD)
			break;
	}
	if (v->action == MILTER_VERDICT_DISCARD)
		return false;
	for (size_t i = 0; ms != NULL && i < ms->n; i++)
		if (ms->f[i].state == MILTER_FAILED &&
		    milter_client_default_action == MILTER_DEFAULT_QUARANTINE &&
		    m->hold_reason == NULL)
			m->hold_reason = xstrdup("milter_default_action");
	if (env->nrcpts == 0) {
		log_info("%s: milter removed all recipients: discarded",
		    id);
		v->action = MILTER_VERDICT_DISCARD;
		return false;
	}
	*hold_reason = m->hold_reason;
	if (m->hold_reason != NULL) {
		/* The reason goes into the file too (A quarantine=...), in
		 * printable ASCII as a record needs (queue.h). */
		char reason[256];
		size_t n = 0;
		for (const char *c = m->hold_reason; *c &&
		    n + 1 < sizeof(reason);
		    c++)
			reason[n++] = *c >= 0x20 && *c < 0x7f ? *c : '?';
		reason[n] = '\0';
		queue_envelope_set_attr(env, "quarantine", reason);
	}
	return true;
}
