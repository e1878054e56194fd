/*
 * fuzz_feed.h - a bio transport that reads a fuzzer's input in small,
 * varying pieces, for the harnesses of readers that must not care where
 * the reads are cut (fuzz_bio.c, fuzz_ipc.c). Writes are swallowed; it
 * always says something is pending, so the bio never polls a descriptor.
 *
 * cut seeds the read sizes: 0 gives the whole input at once, other values
 * cycle through sizes from 1 up, so that lines and messages straddle
 * reads in different places.
 */
#ifndef POSTERN_FUZZ_FEED_H
#define POSTERN_FUZZ_FEED_H

#include <string.h>

#include "bio.h"

struct fuzz_feed {
	const uint8_t *data;
	size_t len, pos;
	uint8_t cut;		/* seed of the read sizes */
};

static ssize_t fuzz_feed_read(struct bio *b, void *buf, size_t len)
{
	struct fuzz_feed *f = b->transport;
	if (f->pos == f->len)
		return 0;
	size_t n = 1 + ((f->cut + f->pos) % 7) * (f->cut % 5 + 1);
	if (f->cut == 0)
		n = f->len;
	if (n > len)
		n = len;
	if (n > f->len - f->pos)
		n = f->len - f->pos;
	memcpy(buf, f->data + f->pos, n);
	f->pos += n;
	return (ssize_t)n;
}

static ssize_t fuzz_feed_write(struct bio *b, const void *buf, size_t len)
{
	return (ssize_t)len;
}

static size_t fuzz_feed_pending(struct bio *b)
{
	return 1;
}

static short fuzz_feed_want(struct bio *b)
{
	return 0;
}

static const struct bio_ops fuzz_feed_ops = {
	.read = fuzz_feed_read,
	.write = fuzz_feed_write,
	.pending = fuzz_feed_pending,
	.want = fuzz_feed_want,
};

#endif
