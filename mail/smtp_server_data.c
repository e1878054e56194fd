/*
 * smtp_server_data.c - the message readers of the server core: DATA
 * (RFC 5321 4.1.1.4, dot-stuffing 4.5.2) and BDAT (RFC 3030), one bare
 * CR/LF policy, and the header scan that counts hops (RFC 5321 6.3).
 *
 * Trusts nothing: the bytes are the peer's message. SMTP smuggling
 * (CVE-2023-51764 class): only CRLF "." CRLF ends DATA; bio.c never ends
 * a line at a bare CR or LF, so <LF>.<LF>, <LF>.<CR><LF> and <CR>.<CR>
 * stay inside the message, and a message holding a bare CR or LF anywhere
 * is marked for refusal (550 5.5.2 in smtpd and lmtpd alike, as Postfix's
 * smtpd_forbid_bare_newline). In SMTP_SERVER_LOCAL mode (sendmail -bs)
 * LF alone ends a line, as plain sendmail reads its input.
 *
 * The hot path stays lean: the text is read in large pieces by bio and
 * handed to the sink where it lies, a line (or a 64 KiB piece of one) at a
 * time; the header scan looks at the first bytes of header lines only and
 * stops at the end of the header section. In the body, a sink that takes
 * them gets every complete line already buffered in one piece, up to the
 * next line that starts with "." (body_block()).
 */
#include <string.h>

#include "cfg.h"
#include "smtp_server.h"

/* How much of a text line or a BDAT chunk is held in memory at once. */
#define SMTP_DATA_PIECE 65536

void smtp_message_init(struct smtp_message *m)
{
	memset(m, 0, sizeof(*m));
}

/* Does the line head (lowercased) name this field, "name" WSP* ":"? */
static bool head_is(const struct smtp_message *m, const char *name)
{
	size_t n = strlen(name);
	if (m->head_len <= n || memcmp(m->head, name, n) != 0)
		return false;
	for (size_t i = n; i < m->head_len; i++) {
		if (m->head[i] == ':')
			return true;
		if (m->head[i] != ' ' && m->head[i] != '\t')
			return false;
	}
	return false;
}

/* Follow one byte of a line until it is known what the line is. */
static void head_step(struct smtp_message *m, char c, bool first)
{
	bool wsp = c == ' ' || c == '\t';
	bool ftext = c >= 33 && c <= 126 && c != ':';

	switch (m->head_state) {
	case SMTP_HEAD_NAME:
		if (first && wsp)
			m->head_state = SMTP_HEAD_CONTINUED;
		else if (c == ':')
			m->head_state = first ? SMTP_HEAD_NOT_FIELD :
			    SMTP_HEAD_FIELD;
		else if (wsp)
			m->head_state = SMTP_HEAD_NAME_WSP;
		else if (!ftext)
			m->head_state = SMTP_HEAD_NOT_FIELD;
		break;
	case SMTP_HEAD_NAME_WSP:
		if (c == ':')
			m->head_state = SMTP_HEAD_FIELD;
		else if (!wsp)
			m->head_state = SMTP_HEAD_NOT_FIELD;
		break;
	default:
		break;		/* decided */
	}
}

void smtp_message_scan(struct smtp_message *m, const char *p, size_t n,
    bool line_end)
{
	if (m->in_body)
		return;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (m->head_state <= SMTP_HEAD_NAME_WSP)
			head_step(m, c, !m->line_open && i == 0);
		else if (m->head_len == sizeof(m->head))
			break;
		if (m->head_len < sizeof(m->head))
			m->head[m->head_len++] = c >= 'A' && c <= 'Z' ?
			    (char)(c - 'A' + 'a') : c;
	}
	if (n > 0)
		m->line_open = true;
	if (!line_end)
		return;
	if (!m->line_open || m->head_state == SMTP_HEAD_NOT_FIELD ||
	    m->head_state == SMTP_HEAD_NAME ||
	    m->head_state == SMTP_HEAD_NAME_WSP) {
		/* RFC 5322 2.1: an empty line ends the header section; so
		 * does a line that is no header field (as Postfix reads a
		 * message without the empty line). */
		m->in_body = true;
		return;
	}
	if (m->head_state == SMTP_HEAD_FIELD) {
		if (head_is(m, "received"))
			m->received++;
		else if (head_is(m, "delivered-to"))
			m->delivered_to++;
	}
	m->line_open = false;
	m->head_len = 0;
	m->head_state = SMTP_HEAD_NAME;
}

bool smtp_message_too_many_hops(const struct smtp_message *m)
{
	/* As Postfix: Received: and Delivered-To: fields are hops. */
	return cfg.hopcount_limit > 0 &&
	    (long long)m->received + m->delivered_to > cfg.hopcount_limit;
}

/* Hand a piece to the scan and the sink, counting its octets. */
static void emit(struct smtp_message *m, const struct smtp_message_sink *sink,
    const char *p, size_t n, bool line_end)
{
	m->size += n + (line_end ? 2 : 0);
	if (line_end)
		m->mid_line = false;
	else if (n > 0)
		m->mid_line = true;
	if (!m->in_body)
		smtp_message_scan(m, p, n, line_end);
	if (sink != NULL)
		sink->put(sink->ctx, p, n, line_end);
}

/*
 * Is there a bare CR or LF among the n bytes at p, whose CRLF pairs are
 * line ends? Each CR must be followed by LF and each LF preceded by CR:
 * one branch-free pass, in 64-byte steps the compiler vectorizes.
 */
static bool block_has_bare(const unsigned char *p, size_t n)
{
	size_t i = 0;
	unsigned char acc = 0;

	if (n == 0)
		return false;
	if (p[0] == '\n' || p[n - 1] == '\r')
		return true;
	for (; i + 65 <= n; i += 64) {
		unsigned char step = 0;
		for (size_t j = 0; j < 64; j++)
			step |= (unsigned char)((p[i + j] == '\r') ^
			    (p[i + j + 1] == '\n'));
		if (step)
			return true;
	}
	for (; i + 1 < n; i++)
		acc |= (unsigned char)((p[i] == '\r') ^ (p[i + 1] == '\n'));
	return acc != 0;
}

/*
 * The body's fast path. p (avail bytes, at a line start, p[0] not ".")
 * is what bio holds. Returns the length of the run of whole lines that
 * can go to the sink as one piece: up to (not including) the CRLF before
 * the first line that starts with "." (it is unstuffed, or ends the data,
 * on the line path), else up to the last CRLF buffered; 0 if there is no
 * CRLF at all. The CRLF after the run is consumed with it.
 */
static size_t body_block(const char *p, size_t avail)
{
	const char *end = p + avail;

	/* memchr() for the dot, not memmem() for CRLF ".": glibc's memmem
	 * was a tenth of the worker's time on a 1 MiB message. */
	for (const char *q = p + 1; q < end &&
	    (q = memchr(q, '.', (size_t)(end - q))) != NULL; q++) {
		if (q - p >= 2 && q[-1] == '\n' && q[-2] == '\r')
			return (size_t)(q - 2 - p);
	}
	for (size_t left = avail; left > 1;) {
		const char *lf = memrchr(p, '\n', left);
		if (lf == NULL || lf == p)
			return 0;
		if (lf[-1] == '\r')
			return (size_t)(lf - 1 - p);
		left = (size_t)(lf - p);
	}
	return 0;
}

enum bio_status smtp_server_read_data(struct smtp_server *srv,
    struct smtp_message *m, const struct smtp_message_sink *sink)
{
	struct str piece;
	bool line_start = true;
	bool dot_pending = false;	/* a line began with "." not yet known
					 * to be the end or a stuffed dot */
	bool local = (srv->dialect & SMTP_SERVER_LOCAL) != 0;
	enum bio_status st;

	str_init(&piece, SMTP_DATA_PIECE + 2);
	for (;;) {
		unsigned flags = 0;
		const char *buffered;
		size_t avail;

		if (line_start && !dot_pending && !local && m->in_body &&
		    m->sink_takes_blocks && sink != NULL &&
		    (avail = bio_peek(srv->in, &buffered)) > 0 &&
		    buffered[0] != '.') {
			size_t n = body_block(buffered, avail);
			if (n > 0) {
				if (block_has_bare((const unsigned char *)
				    buffered, n))
					m->bare_newline = true;
				emit(m, sink, buffered, n, true);
				bio_consume(srv->in, n + 2);
				continue;
			}
		}
		str_clear(&piece);
		st = bio_readline_part(srv->in, &piece, SMTP_DATA_PIECE,
		    &flags);
		if (st != BIO_OK)
			break;
		bool complete = !(flags & BIO_LINE_PARTIAL);
		const char *p = str_cstr(&piece);
		size_t n = piece.len;
		if (flags & BIO_LINE_BARE_CR)
			m->bare_newline = true;
		if ((flags & BIO_LINE_BARE_LF) && !local)
			m->bare_newline = true;
		if (dot_pending) {
			dot_pending = false;
			if (complete && n == 0)
				break;		/* "." CRLF after all */
		} else if (line_start && n > 0 && p[0] == '.') {
			if (complete && n == 1)
				break;		/* end of data */
			if (n == 1) {
				dot_pending = true;
				line_start = false;
				continue;
			}
			p++;
			n--;
		}
		emit(m, sink, p, n, complete);
		line_start = complete;
	}
	str_free(&piece);
	return st;
}

/* Split a piece of a chunk at its CRLFs (RFC 3030: chunks are not
 * lines, so a CRLF may straddle two chunks). */
static void chunk_lines(struct smtp_message *m,
    const struct smtp_message_sink *sink, const char *p, size_t n)
{
	size_t start = 0;

	if (n == 0)
		return;
	if (m->pending_cr) {
		m->pending_cr = false;
		if (p[0] == '\n') {
			emit(m, sink, "", 0, true);
			start = 1;
		} else {
			m->bare_newline = true;
			emit(m, sink, "\r", 1, false);
		}
	}
	for (size_t i = start; i < n; i++) {
		if (p[i] == '\n') {
			m->bare_newline = true;		/* LF without CR */
			continue;
		}
		if (p[i] != '\r')
			continue;
		if (i + 1 == n) {
			/* The LF may come with the next chunk. */
			emit(m, sink, p + start, i - start, false);
			m->pending_cr = true;
			return;
		}
		if (p[i + 1] == '\n') {
			emit(m, sink, p + start, i - start, true);
			start = i + 2;
			i++;
		} else {
			m->bare_newline = true;		/* CR without LF */
		}
	}
	if (start < n)
		emit(m, sink, p + start, n - start, false);
}

enum bio_status smtp_server_read_chunk(struct smtp_server *srv,
    struct smtp_message *m, unsigned long long size,
    const struct smtp_message_sink *sink)
{
	if (sink == NULL)
		return bio_skip_exact(srv->in, (size_t)size);

	struct str piece;
	enum bio_status st = BIO_OK;
	str_init(&piece, SMTP_DATA_PIECE);
	while (size > 0) {
		size_t want = size > SMTP_DATA_PIECE ? SMTP_DATA_PIECE :
		    (size_t)size;
		str_clear(&piece);
		st = bio_read_exact(srv->in, &piece, want);
		if (st != BIO_OK)
			break;
		chunk_lines(m, sink, piece.data, piece.len);
		size -= want;
	}
	str_free(&piece);
	return st;
}

void smtp_server_end_chunks(struct smtp_message *m,
    const struct smtp_message_sink *sink)
{
	if (m->pending_cr) {
		/* The text ends in a CR that no LF followed. */
		m->pending_cr = false;
		m->bare_newline = true;
		emit(m, sink, "\r", 1, false);
	}
	if (m->mid_line) {
		/* The last line had no CRLF: end it, without counting. */
		emit(m, sink, "", 0, true);
		m->size -= 2;
	}
}
