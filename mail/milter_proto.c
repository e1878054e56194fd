/*
 * milter_proto.c - encoding of milter commands and decoding of filter
 * replies (milter_proto.h). Pure functions over buffers: the caller owns
 * the sockets. A filter is an outside program: every reply is checked
 * for length, NUL termination and the shape of its fields before any
 * field is used, and a reply code text goes to the client only when it
 * is a valid SMTP reply of the code the filter claims (RFC 5321 4.2).
 */
#include <stdio.h>
#include <string.h>

#include "milter_proto.h"

static void put32(struct str *out, uint32_t v)
{
	unsigned char b[4] = { v >> 24, v >> 16, v >> 8, v };
	str_append(out, b, 4);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

void milter_encode(struct str *out, char cmd, const void *data, size_t len)
{
	put32(out, (uint32_t)len + 1);
	str_append_char(out, cmd);
	if (len > 0)
		str_append(out, data, len);
}

/* Start a packet whose length is patched by end_packet(). */
static size_t begin_packet(struct str *out, char cmd)
{
	size_t at = out->len;
	put32(out, 0);
	str_append_char(out, cmd);
	return at;
}

static void end_packet(struct str *out, size_t at)
{
	uint32_t len = (uint32_t)(out->len - at - 4);
	unsigned char *p = (unsigned char *)out->data + at;
	p[0] = len >> 24;
	p[1] = len >> 16;
	p[2] = len >> 8;
	p[3] = len;
}

static void put_string(struct str *out, const char *s)
{
	str_append(out, s, strlen(s) + 1);
}

void milter_encode_optneg(struct str *out, uint32_t version,
    uint32_t actions, uint32_t protocol)
{
	size_t at = begin_packet(out, MILTER_CMD_OPTNEG);
	put32(out, version);
	put32(out, actions);
	put32(out, protocol);
	end_packet(out, at);
}

void milter_encode_connect(struct str *out, const char *name, char family,
    uint16_t port, const char *addr)
{
	size_t at = begin_packet(out, MILTER_CMD_CONNECT);
	put_string(out, name);
	str_append_char(out, family);
	if (family != 'U') {
		unsigned char p[2] = { port >> 8, port };
		str_append(out, p, 2);
		put_string(out, addr);
	}
	end_packet(out, at);
}

void milter_encode_strings(struct str *out, char cmd,
    const char *const *strings, size_t n)
{
	size_t at = begin_packet(out, cmd);
	for (size_t i = 0; i < n; i++)
		put_string(out, strings[i]);
	end_packet(out, at);
}

void milter_encode_macros(struct str *out, char cmd,
    const char *const *names, const char *const *values, size_t n)
{
	size_t at = begin_packet(out, MILTER_CMD_MACRO);
	str_append_char(out, cmd);
	for (size_t i = 0; i < n; i++) {
		put_string(out, names[i]);
		put_string(out, values[i]);
	}
	end_packet(out, at);
}

void milter_encode_header(struct str *out, const char *name,
    const char *value)
{
	size_t at = begin_packet(out, MILTER_CMD_HEADER);
	put_string(out, name);
	put_string(out, value);
	end_packet(out, at);
}

bool milter_decode_length(const unsigned char head[4], uint32_t *len)
{
	*len = get32(head);
	return *len >= 1 && *len <= MILTER_PACKET_MAX;
}

/* A cursor over the data of one packet. */
struct cursor {
	const unsigned char *p;
	size_t left;
};

static bool take32(struct cursor *c, uint32_t *v)
{
	if (c->left < 4)
		return false;
	*v = get32(c->p);
	c->p += 4;
	c->left -= 4;
	return true;
}

/* The next NUL-terminated string, or NULL if there is no NUL. */
static const char *take_string(struct cursor *c)
{
	const unsigned char *nul = memchr(c->p, '\0', c->left);
	if (nul == NULL)
		return NULL;
	const char *s = (const char *)c->p;
	c->left -= (size_t)(nul - c->p) + 1;
	c->p = nul + 1;
	return s;
}

static bool fail(char *err, size_t errsize, const char *what, char cmd)
{
	if (cmd >= 0x21 && cmd < 0x7f)
		snprintf(err, errsize, "%s in reply '%c'", what, cmd);
	else
		snprintf(err, errsize, "%s in reply 0x%02x", what,
		    (unsigned char)cmd);
	return false;
}

static bool decode_optneg(struct cursor *c, struct milter_reply *r,
    char *err, size_t errsize)
{
	if (!take32(c, &r->version) || !take32(c, &r->actions) ||
	    !take32(c, &r->protocol))
		return fail(err, errsize, "short option negotiation", 'O');
	/* Version 6: then (stage, "macro names") pairs (SETSYMLIST). */
	while (c->left > 0) {
		uint32_t stage;
		const char *list;
		if (!take32(c, &stage) || (list = take_string(c)) == NULL)
			return fail(err, errsize, "bad macro list", 'O');
		if (stage >= MILTER_STAGE_COUNT)
			return fail(err, errsize, "unknown macro stage", 'O');
		r->symlist[stage] = list;
	}
	return true;
}

bool milter_reply_text_valid(const char *text, int code, char *enh,
    size_t enhsize)
{
	char want[4];
	snprintf(want, sizeof(want), "%03d", code);
	if (enhsize > 0)
		enh[0] = '\0';
	const char *line = text;
	bool first = true;
	for (;;) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len < 3 || memcmp(line, want, 3) != 0)
			return false;
		if (len > 3 && line[3] != ' ' && line[3] != '-')
			return false;
		/* "-" on every line but the last (RFC 5321 4.2.1). */
		if ((end != NULL) != (len > 3 && line[3] == '-'))
			return false;
		for (size_t i = 0; i < len; i++)
			if (line[i] == '\r' || line[i] == '\n' ||
			    (unsigned char)line[i] < 0x20)
				return false;
		if (first && len > 4) {
			/* An enhanced code: class.subject.detail (RFC 3463),
			 * its class the reply's first digit. */
			const char *e = line + 4;
			size_t n = strspn(e, "0123456789.");
			unsigned a, b, d;
			char tail;
			if (n >= 5 && n < enhsize && n < 16 &&
			    (e[n] == ' ' || e[n] == '\0' || e[n] == '\r') &&
			    sscanf(e, "%u.%u.%u%c", &a, &b, &d, &tail) >= 3 &&
			    e[0] == want[0]) {
				memcpy(enh, e, n);
				enh[n] = '\0';
			}
		}
		first = false;
		if (end == NULL)
			return true;
		line = end + 2;
	}
}

bool milter_decode_reply(const unsigned char *packet, size_t len,
    struct milter_reply *r, char *err, size_t errsize)
{
	memset(r, 0, sizeof(*r));
	if (len < 1)
		return fail(err, errsize, "empty packet", '?');
	r->cmd = (char)packet[0];
	struct cursor c = { packet + 1, len - 1 };

	switch (r->cmd) {
	case MILTER_REPLY_OPTNEG:
		return decode_optneg(&c, r, err, errsize);
	case MILTER_REPLY_ACCEPT:
	case MILTER_REPLY_CONTINUE:
	case MILTER_REPLY_DISCARD:
	case MILTER_REPLY_REJECT:
	case MILTER_REPLY_TEMPFAIL:
	case MILTER_REPLY_PROGRESS:
	case MILTER_REPLY_SKIP:
	case MILTER_REPLY_SHUTDOWN:
	case MILTER_REPLY_CONN_FAIL:
		/* libmilter sends no data; tolerate none but a stray NUL. */
		if (c.left > 1 || (c.left == 1 && c.p[0] != '\0'))
			return fail(err, errsize, "unexpected data", r->cmd);
		return true;
	case MILTER_REPLY_REPLYCODE: {
		const char *t = take_string(&c);
		if (t == NULL || c.left != 0 || strlen(t) < 3)
			return fail(err, errsize, "bad reply code", r->cmd);
		if ((t[0] != '4' && t[0] != '5') || t[1] < '0' ||
		    t[1] > '9' || t[2] < '0' || t[2] > '9')
			return fail(err, errsize, "reply code not 4xx/5xx",
			    r->cmd);
		r->code = (t[0] - '0') * 100 + (t[1] - '0') * 10 +
		    (t[2] - '0');
		char enh[16];
		if (!milter_reply_text_valid(t, r->code, enh, sizeof(enh)))
			return fail(err, errsize, "malformed reply text",
			    r->cmd);
		r->text = t;
		return true;
	}
	case MILTER_REPLY_INSHEADER:
	case MILTER_REPLY_CHGHEADER:
		if (!take32(&c, &r->index))
			return fail(err, errsize, "no header index", r->cmd);
		/* FALLTHROUGH */
	case MILTER_REPLY_ADDHEADER:
		if ((r->name = take_string(&c)) == NULL ||
		    (r->value = take_string(&c)) == NULL || c.left != 0)
			return fail(err, errsize, "bad header", r->cmd);
		/* RFC 5322 2.2: a field name is printable ASCII but ':'. */
		if (r->name[0] == '\0')
			return fail(err, errsize, "empty header name", r->cmd);
		for (const char *p = r->name; *p; p++)
			if (*p < 0x21 || *p > 0x7e || *p == ':')
				return fail(err, errsize, "bad header name",
				    r->cmd);
		return true;
	case MILTER_REPLY_ADDRCPT:
	case MILTER_REPLY_DELRCPT:
	case MILTER_REPLY_ADDRCPT_PAR:
	case MILTER_REPLY_CHGFROM:
		if ((r->addr = take_string(&c)) == NULL)
			return fail(err, errsize, "no address", r->cmd);
		if (c.left > 0 && r->cmd != MILTER_REPLY_ADDRCPT &&
		    r->cmd != MILTER_REPLY_DELRCPT) {
			if ((r->args = take_string(&c)) == NULL)
				return fail(err, errsize, "bad arguments",
				    r->cmd);
		}
		if (c.left != 0)
			return fail(err, errsize, "trailing data", r->cmd);
		return true;
	case MILTER_REPLY_QUARANTINE:
		if ((r->reason = take_string(&c)) == NULL || c.left != 0)
			return fail(err, errsize, "bad reason", r->cmd);
		return true;
	case MILTER_REPLY_REPLBODY:
		r->body = c.p;
		r->body_len = c.left;
		return true;
	default:
		return fail(err, errsize, "unknown command", r->cmd);
	}
}
