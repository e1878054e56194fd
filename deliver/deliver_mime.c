/*
 * deliver_mime.c - 8-bit MIME to 7-bit MIME (see deliver_mime.h).
 *
 * The message is in memory (deliver maps the queue file), so the walk is
 * over byte ranges: an entity is a header section and a body; a multipart
 * body is split at its delimiter lines and each part is an entity again.
 * What is not re-encoded is written through unchanged, byte for byte.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "deliver_mime.h"

struct conv {
	deliver_mime_write_fn *out;
	void *ctx;
};

/* What an entity's header section says, and where it ends. */
struct entity {
	char type[32];		/* lower case; "" when no Content-Type */
	char subtype[64];
	char boundary[256];	/* multipart: the boundary parameter */
	char cte[32];		/* Content-Transfer-Encoding, lower case */
	bool mime_version;	/* a MIME-Version field is present */
	const char *header_end;	/* where the blank line (or the body) starts */
	const char *body;	/* after the blank line */
};

bool deliver_mime_has_8bit(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)data[i] >= 0x80)
			return true;
	return false;
}

static void put(struct conv *c, const char *data, size_t len)
{
	if (len > 0)
		c->out(c->ctx, data, len);
}

static void put_str(struct conv *c, const char *s)
{
	put(c, s, strlen(s));
}

/* The start of the next line: after the LF ending the one at p, or end. */
static const char *next_line(const char *p, const char *end)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	return lf == NULL ? end : lf + 1;
}

/* The end of the line at p without its line end (LF or CR LF). */
static const char *line_content_end(const char *p, const char *next)
{
	const char *e = next;
	if (e > p && e[-1] == '\n')
		e--;
	if (e > p && e[-1] == '\r')
		e--;
	return e;
}

/* Does the line [p, e) start a header field ("Name:")? */
static bool is_field_start(const char *p, const char *e)
{
	const char *q = p;
	while (q < e && *q != ':' && *q > ' ' && *q < 127)
		q++;
	return q > p && q < e && *q == ':';
}

/* The end of the field at p: past its continuation lines. */
static const char *field_end(const char *p, const char *end)
{
	const char *q = next_line(p, end);
	while (q < end && (*q == ' ' || *q == '\t'))
		q = next_line(q, end);
	return q;
}

static bool field_is(const char *p, const char *fend, const char *name)
{
	size_t n = strlen(name);
	return (size_t)(fend - p) > n && p[n] == ':' &&
	    strncasecmp(p, name, n) == 0;
}

/* The field's value, unfolded (line ends dropped), cut to fit. */
static void field_value(const char *p, const char *fend, char *out,
    size_t outsize)
{
	const char *v = (const char *)memchr(p, ':', (size_t)(fend - p)) + 1;
	size_t n = 0;
	for (; v < fend && n + 1 < outsize; v++)
		if (*v != '\r' && *v != '\n')
			out[n++] = *v;
	out[n] = '\0';
}

/* Skip white space and (nested) comments, RFC 5322 CFWS. */
static const char *skip_cfws(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '(')
			return s;
		int depth = 0;
		for (; *s != '\0'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			else if (*s == '(')
				depth++;
			else if (*s == ')' && --depth == 0) {
				s++;
				break;
			}
		}
	}
}

/* A MIME token (RFC 2045 5.1) into out, lower case; returns past it. */
static const char *get_token(const char *s, char *out, size_t outsize)
{
	size_t n = 0;
	while (*s > ' ' && *s < 127 && strchr("()<>@,;:\\\"/[]?=", *s) == NULL) {
		if (n + 1 < outsize)
			out[n++] = (char)tolower((unsigned char)*s);
		s++;
	}
	out[n] = '\0';
	return s;
}

/* Content-Type: type "/" subtype *(";" parameter); keeps boundary. */
static void parse_content_type(const char *value, struct entity *e)
{
	const char *s = skip_cfws(value);
	s = get_token(s, e->type, sizeof(e->type));
	s = skip_cfws(s);
	if (*s == '/')
		s = get_token(skip_cfws(s + 1), e->subtype, sizeof(e->subtype));
	for (;;) {
		s = skip_cfws(s);
		if (*s != ';')
			return;
		char name[32], val[sizeof(e->boundary)];
		s = get_token(skip_cfws(s + 1), name, sizeof(name));
		s = skip_cfws(s);
		if (*s != '=')
			continue;
		s = skip_cfws(s + 1);
		size_t n = 0;
		if (*s == '"') {
			for (s++; *s != '\0' && *s != '"'; s++) {
				if (*s == '\\' && s[1] != '\0')
					s++;
				if (n + 1 < sizeof(val))
					val[n++] = *s;
			}
			if (*s == '"')
				s++;
		} else {
			/* Case kept: a boundary is compared as it is. */
			while (*s > ' ' && *s < 127 && *s != ';' && *s != '(') {
				if (n + 1 < sizeof(val))
					val[n++] = *s;
				s++;
			}
		}
		val[n] = '\0';
		if (strcmp(name, "boundary") == 0)
			memcpy(e->boundary, val, n + 1);
	}
}

/*
 * Read the header section at p. It ends at a blank line or, for a part
 * without one, at the first line that is not a header field.
 */
static void parse_entity(const char *p, const char *end, struct entity *e)
{
	char value[2048];

	memset(e, 0, sizeof(*e));
	while (p < end) {
		const char *next = next_line(p, end);
		const char *ce = line_content_end(p, next);
		if (ce == p) {
			e->header_end = p;
			e->body = next;
			return;
		}
		if (!is_field_start(p, ce))
			break;
		const char *fend = field_end(p, end);
		if (field_is(p, fend, "content-type")) {
			field_value(p, fend, value, sizeof(value));
			parse_content_type(value, e);
		} else if (field_is(p, fend, "content-transfer-encoding")) {
			field_value(p, fend, value, sizeof(value));
			get_token(skip_cfws(value), e->cte, sizeof(e->cte));
		} else if (field_is(p, fend, "mime-version")) {
			e->mime_version = true;
		}
		p = fend;
	}
	e->header_end = p;
	e->body = p;
}

/* The header fields, but for Content-Transfer-Encoding ones. */
static void put_header_without_cte(struct conv *c, const char *p,
    const char *header_end)
{
	while (p < header_end) {
		const char *fend = field_end(p, header_end);
		if (!field_is(p, fend, "content-transfer-encoding"))
			put(c, p, (size_t)(fend - p));
		p = fend;
	}
}

/*
 * The blank line between header and body, for a part that gained a
 * header field; CRLF when it had none (its body began at a line that is
 * not a field).
 */
static void put_separator(struct conv *c, const struct entity *e)
{
	if (e->body > e->header_end)
		put(c, e->header_end, (size_t)(e->body - e->header_end));
	else
		put_str(c, "\r\n");
}

/* RFC 2045 6.7: lines of at most 76 characters, line ends kept. */
static void put_quoted_printable(struct conv *c, const char *p,
    const char *end)
{
	static const char hex[] = "0123456789ABCDEF";
	char buf[1024];
	size_t n = 0;

	while (p < end) {
		const char *next = next_line(p, end);
		const char *ce = line_content_end(p, next);
		int col = 0;
		for (const char *q = p; q < ce; q++) {
			unsigned char b = (unsigned char)*q;
			bool last = q + 1 == ce;
			bool literal = (b > ' ' && b < 127 && b != '=') ||
			    ((b == ' ' || b == '\t') && !last);
			int width = literal ? 1 : 3;
			if (n + 8 > sizeof(buf)) {
				put(c, buf, n);
				n = 0;
			}
			if (col + width > 75) {
				memcpy(buf + n, "=\r\n", 3);
				n += 3;
				col = 0;
			}
			/*
			 * A line begun by a soft break must not start with
			 * "-": it could read as a boundary delimiter.
			 */
			if (col == 0 && q > p && b == '-') {
				literal = false;
				width = 3;
			}
			if (literal) {
				buf[n++] = (char)b;
			} else {
				buf[n++] = '=';
				buf[n++] = hex[b >> 4];
				buf[n++] = hex[b & 15];
			}
			col += width;
		}
		if (n + 2 > sizeof(buf)) {
			put(c, buf, n);
			n = 0;
		}
		if (ce < next) {
			memcpy(buf + n, "\r\n", 2);
			n += 2;
		}
		p = next;
	}
	put(c, buf, n);
}

static void convert_entity(struct conv *c, const char *p, const char *end,
    int depth, bool top, bool digest_part);

/*
 * Is the line [p, ce) a delimiter of boundary? Set *close for the
 * closing one ("--boundary--"). Transport padding may follow.
 */
static bool is_delimiter(const char *p, const char *ce, const char *boundary,
    bool *close)
{
	size_t blen = strlen(boundary);
	if ((size_t)(ce - p) < blen + 2 || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, boundary, blen) != 0)
		return false;
	const char *rest = p + 2 + blen;
	*close = ce - rest >= 2 && rest[0] == '-' && rest[1] == '-';
	if (*close)
		return true;
	for (; rest < ce; rest++)
		if (*rest != ' ' && *rest != '\t')
			return false;
	return true;
}

/* RFC 2046 5.1.1: preamble, parts between delimiters, epilogue. */
static void walk_multipart(struct conv *c, const char *p, const char *end,
    const char *boundary, int depth, bool digest)
{
	const char *part = NULL;	/* the part being read, NULL before the first */
	const char *unwritten = p;

	while (p < end) {
		const char *next = next_line(p, end);
		bool close;
		if (is_delimiter(p, line_content_end(p, next), boundary,
		    &close)) {
			if (part != NULL)
				convert_entity(c, part, p, depth + 1, false,
				    digest);
			else
				put(c, unwritten, (size_t)(p - unwritten));
			put(c, p, (size_t)(next - p));
			if (close) {
				put(c, next, (size_t)(end - next));
				return;
			}
			part = next;
		}
		p = next;
	}
	if (part != NULL)
		convert_entity(c, part, end, depth + 1, false, digest);
	else
		put(c, unwritten, (size_t)(end - unwritten));
}

static void convert_entity(struct conv *c, const char *p, const char *end,
    int depth, bool top, bool digest_part)
{
	struct entity e;

	if (depth > MIME_MAX_DEPTH) {
		put(c, p, (size_t)(end - p));
		return;
	}
	parse_entity(p, end, &e);
	if (e.type[0] == '\0' && digest_part) {
		strcpy(e.type, "message");
		strcpy(e.subtype, "rfc822");
	}
	/* Without MIME-Version a message is plain text (RFC 2045 4). */
	bool mime = !top || e.mime_version;
	bool identity = e.cte[0] == '\0' || strcmp(e.cte, "7bit") == 0 ||
	    strcmp(e.cte, "8bit") == 0;
	bool multipart = mime && strcmp(e.type, "multipart") == 0 &&
	    e.boundary[0] != '\0';
	bool message = mime && strcmp(e.type, "message") == 0 &&
	    strcmp(e.subtype, "rfc822") == 0;

	if ((multipart || message) && identity) {
		/* A composite's label tells of its parts, soon all 7-bit. */
		if (strcmp(e.cte, "8bit") == 0) {
			put_header_without_cte(c, p, e.header_end);
			put_str(c, "Content-Transfer-Encoding: 7bit\r\n");
		} else {
			put(c, p, (size_t)(e.header_end - p));
		}
		put(c, e.header_end, (size_t)(e.body - e.header_end));
		if (multipart)
			walk_multipart(c, e.body, end, e.boundary, depth,
			    strcmp(e.subtype, "digest") == 0);
		else
			convert_entity(c, e.body, end, depth + 1, false, false);
		return;
	}
	if (multipart || message || !identity ||
	    !deliver_mime_has_8bit(e.body, (size_t)(end - e.body))) {
		put(c, p, (size_t)(end - p));
		return;
	}
	put_header_without_cte(c, p, e.header_end);
	if (!mime)
		put_str(c, "MIME-Version: 1.0\r\n");
	put_str(c, "Content-Transfer-Encoding: quoted-printable\r\n");
	put_separator(c, &e);
	put_quoted_printable(c, e.body, end);
}

void deliver_mime_downgrade(const char *msg, size_t len,
    deliver_mime_write_fn *out, void *ctx)
{
	struct conv c = { out, ctx };
	convert_entity(&c, msg, msg + len, 0, true, false);
}
