/*
 * dkim_canon.c - DKIM canonicalization, simple and relaxed (RFC 6376
 * 3.4). Pure functions of their input: they trust nothing in it and
 * bound nothing themselves (the caller bounds the header it holds, and
 * the body is streamed).
 */
#include <ctype.h>
#include <string.h>

#include "dkim_canon.h"

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

bool dkim_canon_header(enum dkim_canon c, const char *field, size_t len,
    struct str *out)
{
	size_t start = out->len;

	if (c == DKIM_CANON_SIMPLE) {
		/* RFC 6376 3.4.1: not changed in any way. */
		if (str_append(out, field, len) && str_append(out, "\r\n", 2))
			return true;
		str_truncate(out, start);
		return false;
	}
	/* RFC 6376 3.4.2: the name lowercased, no WSP around the colon. */
	const char *colon = memchr(field, ':', len);
	size_t namelen = colon ? (size_t)(colon - field) : len;
	while (namelen > 0 && is_wsp(field[namelen - 1]))
		namelen--;
	for (size_t i = 0; i < namelen; i++)
		if (!str_append_char(out, (char)tolower((unsigned char)field[i])))
			goto full;
	if (colon == NULL)
		goto end;
	if (!str_append_char(out, ':'))
		goto full;
	/* The value unfolded, each WSP run one SP, none at either end. */
	bool wsp = false, begun = false;
	for (size_t i = (size_t)(colon - field) + 1; i < len; i++) {
		char ch = field[i];
		if (ch == '\r' && i + 1 < len && field[i + 1] == '\n') {
			i++;
			continue;
		}
		if (is_wsp(ch)) {
			wsp = true;
			continue;
		}
		if (wsp && begun && !str_append_char(out, ' '))
			goto full;
		wsp = false;
		begun = true;
		if (!str_append_char(out, ch))
			goto full;
	}
end:
	if (str_append(out, "\r\n", 2))
		return true;
full:
	str_truncate(out, start);
	return false;
}

void dkim_body_canon_init(struct dkim_body_canon *b, enum dkim_canon c,
    dkim_canon_out_fn *out, void *ctx)
{
	memset(b, 0, sizeof(*b));
	b->canon = c;
	b->out = out;
	b->ctx = ctx;
}

/* Output goes through a small buffer: the hash wants runs, not bytes. */
static void put(struct dkim_body_canon *b, const char *p, size_t n)
{
	if (b->n + n > sizeof(b->buf)) {
		b->out(b->ctx, b->buf, b->n);
		b->n = 0;
	}
	if (n > sizeof(b->buf)) {
		b->out(b->ctx, p, n);
		return;
	}
	memcpy(b->buf + b->n, p, n);
	b->n += n;
}

/* A byte that is neither a line end nor (in relaxed form) WSP. */
static void put_byte(struct dkim_body_canon *b, char c)
{
	/* The empty lines held back were not the end after all. */
	for (; b->crlfs > 0; b->crlfs--)
		put(b, "\r\n", 2);
	if (b->wsp) {
		put(b, " ", 1);
		b->wsp = false;
	}
	put(b, &c, 1);
	b->any = true;
}

void dkim_body_canon_update(struct dkim_body_canon *b, const char *data,
    size_t len)
{
	bool relaxed = b->canon == DKIM_CANON_RELAXED;

	for (size_t i = 0; i < len; i++) {
		char c = data[i];
		if (b->cr) {
			b->cr = false;
			if (c == '\n') {
				/* A line end: held back, as is any line
				 * after it that stays empty (3.4.3, 3.4.4);
				 * relaxed drops WSP before it. */
				b->wsp = false;
				b->crlfs++;
				continue;
			}
			put_byte(b, '\r');	/* a bare CR is a byte */
		}
		if (c == '\r') {
			b->cr = true;
			continue;
		}
		if (relaxed && is_wsp(c)) {
			b->wsp = true;
			continue;
		}
		put_byte(b, c);
	}
}

void dkim_body_canon_final(struct dkim_body_canon *b)
{
	if (b->cr) {
		b->cr = false;
		put_byte(b, '\r');
	}
	/*
	 * What is left are trailing empty lines and WSP: gone. A body that
	 * had content ends in one CRLF; an empty one is CRLF in simple form
	 * and nothing in relaxed form (3.4.3, 3.4.4).
	 */
	b->crlfs = 0;
	b->wsp = false;
	if (b->any || b->canon == DKIM_CANON_SIMPLE)
		put(b, "\r\n", 2);
	if (b->n > 0)
		b->out(b->ctx, b->buf, b->n);
	b->n = 0;
}
