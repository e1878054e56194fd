/*
 * bio.c - buffered, bounded I/O with deadlines (see bio.h).
 *
 * Trusts nothing it reads: every line is bounded, every wait has a
 * deadline, and only CRLF ends a line.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bio.h"
#include "mem.h"

#define BIO_READ_SIZE 65536
#define BIO_WRITE_FLUSH 65536

/* The last read buffer of BIO_READ_SIZE given back, for the next bio
 * (mem.h): a worker serves session after session. */
static void *spare_rbuf;

static void rbuf_free(struct bio *b)
{
	if (b->rbuf != NULL && b->rcap == BIO_READ_SIZE)
		free_to_spare(&spare_rbuf, b->rbuf);
	else
		free(b->rbuf);
}

static ssize_t plain_read(struct bio *b, void *buf, size_t len)
{
	return read(b->fd, buf, len);
}

static ssize_t plain_write(struct bio *b, const void *buf, size_t len)
{
	return write(b->fd, buf, len);
}

static size_t plain_pending(struct bio *b)
{
	return 0;
}

static short plain_want(struct bio *b)
{
	return 0;
}

static const struct bio_ops plain_ops = {
	.read = plain_read,
	.write = plain_write,
	.pending = plain_pending,
	.want = plain_want,
};

/* Timed reads: the socket blocks, so a write must ask not to. */
static ssize_t timed_write(struct bio *b, const void *buf, size_t len)
{
	return send(b->fd, buf, len, MSG_DONTWAIT);
}

static const struct bio_ops timed_ops = {
	.read = plain_read,
	.write = timed_write,
	.pending = plain_pending,
	.want = plain_want,
};

void bio_init(struct bio *b, int fd, int timeout_ms)
{
	memset(b, 0, sizeof(*b));
	b->fd = fd;
	b->timeout_ms = timeout_ms;
	b->ops = &plain_ops;
}

void bio_free(struct bio *b)
{
	rbuf_free(b);
	free(b->wbuf);
	b->rbuf = b->wbuf = NULL;
	b->rpos = b->rlen = b->rcap = b->wlen = b->wcap = 0;
}

void bio_set_timeout(struct bio *b, int timeout_ms)
{
	b->timeout_ms = timeout_ms;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A read's deadline is fixed when it first has to wait, not when it
 * starts: most reads find their bytes buffered, and the clock is not
 * worth reading for them (it was one clock_gettime per line of DATA).
 */
#define BIO_DEADLINE_UNSET (-2)

static long long deadline_for(struct bio *b)
{
	b->cap_deadline = 0;	/* a new read: timeout_ms holds as it is */
	return BIO_DEADLINE_UNSET;
}

static long long deadline_fix_at(struct bio *b, long long deadline,
    long long now)
{
	if (deadline != BIO_DEADLINE_UNSET)
		return deadline;
	long long d = b->timeout_ms < 0 ? -1 : now + b->timeout_ms;
	if (b->hard_deadline > 0 && (d < 0 || b->hard_deadline < d))
		d = b->hard_deadline;
	return d;
}

static long long deadline_fix(struct bio *b, long long deadline)
{
	return deadline == BIO_DEADLINE_UNSET ?
	    deadline_fix_at(b, deadline, now_ms()) : deadline;
}

/* The check_timeout hook lowered timeout_ms: the read in hand ends at
 * most that long from now. */
static long long apply_check(struct bio *b, long long deadline)
{
	if (b->check_timeout != NULL) {
		int before = b->timeout_ms;
		b->check_timeout(b);
		if (b->timeout_ms >= 0 && b->timeout_ms != before) {
			long long cap = now_ms() + b->timeout_ms;
			if (b->cap_deadline == 0 || cap < b->cap_deadline)
				b->cap_deadline = cap;
		}
	}
	if (b->cap_deadline > 0 && (deadline < 0 || b->cap_deadline < deadline))
		deadline = b->cap_deadline;
	return deadline;
}

/* Wait for events on the fd until deadline (ms, monotonic; < 0: none). */
static enum bio_status wait_fd(struct bio *b, short events,
    long long *read_deadline)
{
	long long deadline = *read_deadline = deadline_fix(b, *read_deadline);
	for (;;) {
		int timeout = -1;
		deadline = apply_check(b, deadline);
		if (deadline >= 0) {
			long long left = deadline - now_ms();
			if (left <= 0)
				return BIO_TIMEOUT;
			timeout = left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd pfd = { .fd = b->fd, .events = events };
		int n = poll(&pfd, 1, timeout);
		if (n > 0)
			return BIO_OK;
		if (n == 0)
			continue;	/* loop re-checks the deadline */
		if (errno != EINTR)
			return BIO_ERROR;
	}
}

void bio_set_deadline(struct bio *b, long long ms_from_now)
{
	/* 0 is "none": a monotonic clock in ms is never 0 in use. */
	b->hard_deadline = ms_from_now < 0 ? 0 : now_ms() + ms_from_now;
}

void bio_prefill(struct bio *b, const void *p, size_t len)
{
	if (len == 0)
		return;
	size_t have = b->rlen - b->rpos;
	size_t cap = have + len > BIO_READ_SIZE ? have + len : BIO_READ_SIZE;
	char *buf = xmalloc(cap);
	memcpy(buf, p, len);
	if (have > 0)
		memcpy(buf + len, b->rbuf + b->rpos, have);
	rbuf_free(b);
	b->rbuf = buf;
	b->rcap = cap;
	b->rpos = 0;
	b->rlen = have + len;
}

void bio_timed_reads(struct bio *b)
{
	b->ops = &timed_ops;
	b->rcvtimeo_ms = -1;
}

bool bio_timed_reads_end(struct bio *b)
{
	if (b->ops != &timed_ops)
		return true;
	return bio_poll_waits(b);
}

bool bio_poll_waits(struct bio *b)
{
	int on = 1;
	if (ioctl(b->fd, FIONBIO, &on) < 0)
		return false;
	b->ops = &plain_ops;
	b->fd_nonblocking = true;
	return true;
}

/*
 * SO_RCVTIMEO is set a little below a read's time left (1/64 of it), and
 * kept while it stays within 1/32 below: each command's deadline is fixed
 * a moment before its read (smtp_server.c's command deadline), a few ms
 * nearer each time, and the socket need not hear of every such change.
 * Never above the time left: a read that wakes before its deadline finds
 * it ahead and waits for the rest; none ends late.
 */
static enum bio_status arm_timed_read(struct bio *b, long long *read_deadline)
{
	long long now = now_ms();
	long long deadline = *read_deadline =
	    deadline_fix_at(b, *read_deadline, now);
	deadline = apply_check(b, deadline);
	long long left = 0;	/* 0: no limit */
	if (deadline >= 0) {
		left = deadline - now;
		if (left <= 0)
			return BIO_TIMEOUT;
	}
	long long held = b->rcvtimeo_ms;
	if (left == 0 ? held == 0 :
	    held > 0 && held <= left && left - held <= left / 32)
		return BIO_OK;
	long long set = left - left / 64;
	struct timeval tv = { .tv_sec = (time_t)(set / 1000),
	    .tv_usec = (suseconds_t)(set % 1000) * 1000 };
	if (setsockopt(b->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return BIO_ERROR;
	b->rcvtimeo_ms = set;
	return BIO_OK;
}

/* Read more input into rbuf; at least one byte or a status. */
static enum bio_status fill(struct bio *b, long long *deadline)
{
	if (b->rpos == b->rlen)
		b->rpos = b->rlen = 0;
	if (b->rcap == 0) {
		b->rcap = BIO_READ_SIZE;
		b->rbuf = xmalloc_spare(&spare_rbuf, b->rcap);
	}
	if (b->rpos > 0 && b->rlen == b->rcap) {
		memmove(b->rbuf, b->rbuf + b->rpos, b->rlen - b->rpos);
		b->rlen -= b->rpos;
		b->rpos = 0;
	}
	bool timed = b->ops == &timed_ops;
	for (;;) {
		if (timed) {
			enum bio_status st = arm_timed_read(b, deadline);
			if (st != BIO_OK)
				return st;
		}
		size_t room = b->rcap - b->rlen;
		ssize_t n = b->ops->read(b, b->rbuf + b->rlen, room);
		b->last_read_full = n > 0 && (size_t)n == room;
		if (n > 0) {
			b->rlen += (size_t)n;
			b->bytes_in += (unsigned long long)n;
			return BIO_OK;
		}
		if (n == 0)
			return BIO_EOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return BIO_ERROR;
		if (timed)
			continue;	/* SO_RCVTIMEO ran out: check again */
		short want = b->ops->want(b);
		enum bio_status st = wait_fd(b, want ? want : POLLIN, deadline);
		if (st != BIO_OK)
			return st;
	}
}

/*
 * Before blocking in read(2), a plain fd is polled first so that the
 * deadline holds even on a blocking socket; with timed reads the read
 * waits itself, under SO_RCVTIMEO.
 */
static enum bio_status fill_with_deadline(struct bio *b, long long *deadline)
{
	if (b->ops != &timed_ops && b->ops->pending(b) == 0 &&
	    !(b->fd_nonblocking && b->last_read_full)) {
		enum bio_status st = wait_fd(b, POLLIN, deadline);
		if (st != BIO_OK)
			return st;
	}
	return fill(b, deadline);
}

/* Scan buffered bytes for CRLF starting at from; returns index of CR. */
static const char *find_crlf(const char *p, size_t len)
{
	const char *end = p + len;
	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL || cr + 1 >= end)
			return NULL;
		if (cr[1] == '\n')
			return cr;
		p = cr + 1;
	}
	return NULL;
}

static unsigned scan_bare(const char *p, size_t len)
{
	unsigned flags = 0;

	/* Nearly every line holds neither: two memchr() say so at once. */
	if (memchr(p, '\r', len) == NULL && memchr(p, '\n', len) == NULL)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			flags |= BIO_LINE_BARE_LF;
		else if (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))
			flags |= BIO_LINE_BARE_CR;
	}
	return flags;
}

enum bio_status bio_readline_part(struct bio *b, struct str *out, size_t max,
    unsigned *flags)
{
	long long deadline = deadline_for(b);
	size_t taken = 0;
	unsigned f = 0;

	for (;;) {
		size_t avail = b->rlen - b->rpos;
		if (avail == 0 && max > taken) {
			/* Nothing buffered (rbuf may not exist yet): read. */
			enum bio_status st = fill_with_deadline(b, &deadline);
			if (st != BIO_OK)
				return st;
			continue;
		}
		const char *start = b->rbuf + b->rpos;
		const char *cr = avail ? find_crlf(start, avail) : NULL;
		size_t eol = 2;
		if (b->lf_ends_line && avail > 0) {
			/* A local peer: LF alone ends a line, CRLF too. */
			const char *lf = memchr(start, '\n', avail);
			cr = lf;
			eol = 1;
			if (lf != NULL && lf > start && lf[-1] == '\r') {
				cr = lf - 1;
				eol = 2;
			}
		}
		if (cr != NULL && (size_t)(cr - start) <= max - taken) {
			size_t n = (size_t)(cr - start);
			f |= scan_bare(start, n);
			if (!str_append(out, start, n))
				return BIO_TOOLONG;
			b->rpos += n + eol;
			if (flags)
				*flags = f;
			return BIO_OK;
		}
		/*
		 * No CRLF within reach. Hand out what we have if the line
		 * already holds max bytes; keep a trailing CR back, it may be
		 * the first half of a CRLF.
		 */
		size_t usable = avail;
		if (usable > 0 && start[usable - 1] == '\r')
			usable--;
		if (usable > max - taken)
			usable = max - taken;
		/* A full buffer without CRLF must be handed out too. */
		bool buffer_full = b->rcap > 0 && avail == b->rcap;
		if (buffer_full && usable == 0)
			usable = avail;
		if (taken + usable >= max || (buffer_full && usable > 0)) {
			f |= scan_bare(start, usable) | BIO_LINE_PARTIAL;
			if (!str_append(out, start, usable))
				return BIO_TOOLONG;
			b->rpos += usable;
			if (flags)
				*flags = f;
			return BIO_OK;
		}
		enum bio_status st = fill_with_deadline(b, &deadline);
		if (st != BIO_OK)
			return st;
	}
}

enum bio_status bio_readline(struct bio *b, struct str *line, size_t max,
    unsigned *flags)
{
	unsigned f = 0;
	str_clear(line);
	enum bio_status st = bio_readline_part(b, line, max, &f);
	if (st != BIO_OK)
		return st;
	if (!(f & BIO_LINE_PARTIAL)) {
		if (flags)
			*flags = f;
		return BIO_OK;
	}
	/*
	 * Too long, unless the line holds exactly max octets and its CRLF
	 * simply came in a later read: then the rest is an empty piece.
	 * Otherwise swallow the rest of the line and keep nothing.
	 */
	struct str rest;
	unsigned rest_flags = 0;
	bool exact = line->len == max;
	str_init(&rest, 4096);
	do {
		str_clear(&rest);
		st = bio_readline_part(b, &rest, 4096, &rest_flags);
		if (rest.len > 0 || (rest_flags & BIO_LINE_PARTIAL))
			exact = false;
	} while (st == BIO_OK && (rest_flags & BIO_LINE_PARTIAL));
	str_free(&rest);
	if (st == BIO_OK && exact) {
		if (flags)
			*flags = f & ~BIO_LINE_PARTIAL;
		return BIO_OK;
	}
	str_clear(line);
	return st == BIO_OK ? BIO_TOOLONG : st;
}

/* The next len bytes, appended to out, or passed over when out is NULL. */
static enum bio_status take_exact(struct bio *b, struct str *out, size_t len)
{
	long long deadline = deadline_for(b);
	if (out != NULL && !str_reserve(out, len))
		return BIO_TOOLONG;
	while (len > 0) {
		size_t avail = b->rlen - b->rpos;
		if (avail == 0) {
			enum bio_status st = fill_with_deadline(b, &deadline);
			if (st != BIO_OK)
				return st;
			continue;
		}
		size_t n = avail < len ? avail : len;
		if (out != NULL)
			str_append(out, b->rbuf + b->rpos, n);
		b->rpos += n;
		len -= n;
	}
	return BIO_OK;
}

enum bio_status bio_read_exact(struct bio *b, struct str *out, size_t len)
{
	return take_exact(b, out, len);
}

enum bio_status bio_skip_exact(struct bio *b, size_t len)
{
	return take_exact(b, NULL, len);
}

size_t bio_buffered(const struct bio *b)
{
	return b->rlen - b->rpos;
}

size_t bio_peek(const struct bio *b, const char **p)
{
	*p = b->rbuf != NULL ? b->rbuf + b->rpos : NULL;
	return b->rlen - b->rpos;
}

void bio_consume(struct bio *b, size_t n)
{
	if (n > b->rlen - b->rpos)
		n = b->rlen - b->rpos;
	b->rpos += n;
}

void bio_discard_input(struct bio *b)
{
	b->rpos = b->rlen = 0;
}

enum bio_status bio_read_ready(struct bio *b)
{
	long long deadline = BIO_DEADLINE_UNSET;
	return fill(b, &deadline);
}

bool bio_input_ready(struct bio *b, int timeout_ms)
{
	if (bio_buffered(b) > 0 || b->ops->pending(b) > 0)
		return true;
	struct pollfd pfd = { .fd = b->fd, .events = POLLIN };
	return poll(&pfd, 1, timeout_ms) > 0;
}

bool bio_write(struct bio *b, const void *p, size_t len)
{
	if (b->write_failed)
		return false;
	if (len == 0)
		return true;	/* wbuf and p may be NULL: no memcpy */
	if (b->wlen + len > b->wcap) {
		size_t cap = b->wcap ? b->wcap : 4096;
		while (cap < b->wlen + len)
			cap *= 2;
		b->wbuf = xrealloc(b->wbuf, cap);
		b->wcap = cap;
	}
	memcpy(b->wbuf + b->wlen, p, len);
	b->wlen += len;
	if (b->wlen >= BIO_WRITE_FLUSH)
		return bio_flush(b) == BIO_OK;
	return true;
}

bool bio_puts(struct bio *b, const char *s)
{
	return bio_write(b, s, strlen(s));
}

bool bio_printf(struct bio *b, const char *fmt, ...)
{
	struct str s;
	va_list ap;

	str_init(&s, STR_NO_MAX);
	va_start(ap, fmt);
	str_vappendf(&s, fmt, ap);
	va_end(ap);
	bool ok = bio_write(b, s.data ? s.data : "", s.len);
	str_free(&s);
	return ok;
}

enum bio_status bio_flush(struct bio *b)
{
	long long deadline = deadline_for(b);
	size_t off = 0;

	if (b->write_failed)
		return BIO_ERROR;
	while (off < b->wlen) {
		ssize_t n = b->ops->write(b, b->wbuf + off, b->wlen - off);
		if (n > 0) {
			off += (size_t)n;
			b->bytes_out += (unsigned long long)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			short want = b->ops->want(b);
			enum bio_status st = wait_fd(b, want ? want : POLLOUT,
			    &deadline);
			if (st != BIO_OK) {
				b->write_failed = true;
				return st;
			}
			continue;
		}
		b->write_failed = true;
		return BIO_ERROR;
	}
	b->wlen = 0;
	return BIO_OK;
}

const char *bio_status_name(enum bio_status st)
{
	switch (st) {
	case BIO_OK:
		return "ok";
	case BIO_EOF:
		return "lost connection";
	case BIO_TIMEOUT:
		return "timeout";
	case BIO_TOOLONG:
		return "line too long";
	case BIO_ERROR:
		return "I/O error";
	}
	return "unknown";
}

bool fd_write_all(int fd, const void *p, size_t len)
{
	const char *c = p;
	while (len > 0) {
		ssize_t n = write(fd, c, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		c += n;
		len -= (size_t)n;
	}
	return true;
}
