/*
 * fuzz_bio.c - libFuzzer harness for the bounded line reader (util/bio.c:
 * bio_readline and bio_readline_part), against a model of what it must
 * do. Built by `make fuzz`, run briefly by `make fuzz-smoke`.
 *
 * The first three input bytes choose the maximum line length, the size of
 * the read buffer (a few bytes, or the real 64 KB) and how the stream is
 * cut into reads; the rest is the stream, served through the bio's
 * transport ops as a peer would send it in segments. Whatever the cuts:
 *   - bio_readline returns each CRLF-terminated line of at most max
 *     octets exactly, with BIO_LINE_BARE_CR/LF set as the line holds a
 *     CR or LF; a longer line is BIO_TOOLONG and the next call starts
 *     after its CRLF; an unterminated tail is BIO_EOF (RFC 5321 2.3.8:
 *     only CRLF ends a line);
 *   - bio_readline_part hands out pieces of at most max octets that join
 *     up to the same line, the last without BIO_LINE_PARTIAL.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bio.h"
#include "fuzz_feed.h"
#include "mem.h"
#include "str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The model: the next line of the stream from *pos. */
struct model_line {
	bool complete;		/* ended by CRLF */
	size_t start, len;	/* content, without the CRLF */
	unsigned flags;
};

static struct model_line model_next(const uint8_t *s, size_t len, size_t pos)
{
	struct model_line m = { .start = pos };
	for (size_t i = pos; i < len; i++) {
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
			m.complete = true;
			m.len = i - pos;
			return m;
		}
		if (s[i] == '\r')
			m.flags |= BIO_LINE_BARE_CR;
		if (s[i] == '\n')
			m.flags |= BIO_LINE_BARE_LF;
	}
	m.len = len - pos;
	return m;
}

static void fail(const char *what, size_t at)
{
	fprintf(stderr, "fuzz_bio: %s (line at stream offset %zu)\n", what, at);
	abort();
}

static void check_readline(struct bio *b, const uint8_t *s, size_t len,
    size_t max)
{
	struct str line;
	size_t pos = 0;

	str_init(&line, max);
	for (;;) {
		struct model_line m = model_next(s, len, pos);
		unsigned flags = 0xff;
		enum bio_status st = bio_readline(b, &line, max, &flags);
		if (!m.complete) {
			if (st != BIO_EOF)
				fail("unterminated tail is not BIO_EOF", pos);
			break;
		}
		if (m.len > max) {
			if (st != BIO_TOOLONG)
				fail("long line is not BIO_TOOLONG", pos);
			if (line.len != 0)
				fail("long line leaves data", pos);
		} else {
			if (st != BIO_OK)
				fail("line within max is not BIO_OK", pos);
			if (line.len != m.len ||
			    memcmp(str_cstr(&line), s + m.start, m.len) != 0)
				fail("line content differs", pos);
			if (flags != m.flags)
				fail("bare CR/LF flags differ", pos);
			if (line.data != NULL && line.data[line.len] != '\0')
				fail("line not NUL-terminated", pos);
		}
		pos = m.start + m.len + 2;
	}
	str_free(&line);
}

static void check_readline_part(struct bio *b, const uint8_t *s, size_t len,
    size_t max)
{
	struct str whole, part;
	size_t pos = 0;

	str_init(&whole, STR_NO_MAX);
	str_init(&part, STR_NO_MAX);
	for (;;) {
		struct model_line m = model_next(s, len, pos);
		unsigned flags, all = 0;
		enum bio_status st;
		str_clear(&whole);
		do {
			str_clear(&part);
			flags = 0;
			st = bio_readline_part(b, &part, max, &flags);
			if (st != BIO_OK)
				break;
			if (part.len > max)
				fail("part longer than max", pos);
			if ((flags & BIO_LINE_PARTIAL) && part.len == 0 &&
			    max > 0)
				fail("empty partial piece: no progress", pos);
			str_append(&whole, part.data, part.len);
			all |= flags & ~BIO_LINE_PARTIAL;
		} while (flags & BIO_LINE_PARTIAL);
		if (!m.complete) {
			if (st != BIO_EOF)
				fail("unterminated tail is not BIO_EOF", pos);
			break;
		}
		if (st != BIO_OK)
			fail("complete line is not BIO_OK", pos);
		if (whole.len != m.len ||
		    memcmp(str_cstr(&whole), s + m.start, m.len) != 0)
			fail("pieces do not join up to the line", pos);
		if (all != m.flags)
			fail("bare CR/LF flags differ", pos);
		pos = m.start + m.len + 2;
	}
	str_free(&whole);
	str_free(&part);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	/* max from 1 to 256, or the real command and text limits. */
	size_t max = data[0] == 0xfe ? 512 : data[0] == 0xff ? 1000 :
	    (size_t)data[0] + 1;
	/*
	 * Read buffer: 2 to 65 bytes, or the real one when 0. bio_readline
	 * needs room for a whole line and its CRLF (the real buffer has it
	 * for every limit postern uses); the pieces of bio_readline_part
	 * work with any buffer.
	 */
	size_t rcap = (data[1] & 0x7f) == 0 ? 0 : 2 + (data[1] & 0x3f);
	bool part_mode = (data[1] & 0x80) != 0;
	if (!part_mode && rcap > 0 && rcap < max + 2)
		rcap = 0;
	struct fuzz_feed f = { .data = data + 3, .len = size - 3, .cut = data[2] };

	struct bio b;
	bio_init(&b, -1, -1);
	b.ops = &fuzz_feed_ops;
	b.transport = &f;
	if (rcap > 0) {
		b.rbuf = xmalloc(rcap);
		b.rcap = rcap;
	}
	if (part_mode)
		check_readline_part(&b, f.data, f.len, max);
	else
		check_readline(&b, f.data, f.len, max);
	bio_free(&b);
	return 0;
}
