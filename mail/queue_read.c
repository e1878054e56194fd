/*
 * queue_read.c - parsing a queue file's envelope and trailer.
 *
 * Trust: nothing in the file. A file in maildrop/ is written by any local
 * user, and any file may be truncated by a crash or damaged on disk.
 * Every deviation from the format (queue.h) is QUEUE_READ_CORRUPT with a
 * message; the reader never reads the content.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "queue.h"
#include "queue_format.h"
#include "str.h"

/* ---- reading ---- */

/* The read buffer of the last queue_read(), for the next one (mem.h):
 * qmgr reads every message it takes, and a 64 KiB malloc and free per
 * message cost more than the read itself. */
static void *spare_inbuf;

/* Buffered record reader over pread(2): never moves the fd's offset. */
struct queue_input {
	int fd;
	off_t pos;		/* file offset of buf[0] */
	off_t end;		/* file size, -1 until a read has met the end */
	char *buf;
	size_t start, len;	/* unread bytes are buf[start..len) */
	size_t cap;
};

enum queue_line {
	QUEUE_LINE_OK,
	QUEUE_LINE_EOF,		/* clean end: no bytes left */
	QUEUE_LINE_PARTIAL,	/* bytes without a final LF at the end */
	QUEUE_LINE_TOOLONG,
	QUEUE_LINE_ERROR,	/* errno set */
};

/* Next LF-terminated line; *line points into the buffer, *off is its
 * file offset, *len excludes the LF. */
static enum queue_line queue_input_line(struct queue_input *in,
    const char **line, size_t *len, off_t *off)
{
	for (;;) {
		char *lf = memchr(in->buf + in->start, '\n',
		    in->len - in->start);
		if (lf) {
			*line = in->buf + in->start;
			*len = (size_t)(lf - *line);
			*off = in->pos + (off_t)in->start;
			in->start += *len + 1;
			return QUEUE_LINE_OK;
		}
		if (in->len - in->start > QUEUE_MAX_RECORD)
			return QUEUE_LINE_TOOLONG;
		/* Move the partial line to the front and read more. */
		in->pos += (off_t)in->start;
		memmove(in->buf, in->buf + in->start, in->len - in->start);
		in->len -= in->start;
		in->start = 0;
		off_t at = in->pos + (off_t)in->len;
		if (in->end >= 0 && at >= in->end)
			return in->len == 0 ? QUEUE_LINE_EOF : QUEUE_LINE_PARTIAL;
		size_t want = in->cap - in->len;
		if (in->end >= 0 && (off_t)want > in->end - at)
			want = (size_t)(in->end - at);
		ssize_t n = pread(in->fd, in->buf + in->len, want, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return QUEUE_LINE_ERROR;
		/* A regular file reads short only at its end: the size is
		 * known without an fstat (a small file: by the first read). */
		if ((size_t)n < want)
			in->end = at + n;
		if (n == 0)
			return in->len == 0 ? QUEUE_LINE_EOF : QUEUE_LINE_PARTIAL;
		in->len += (size_t)n;
	}
}

/* Go on reading at off: from the buffer when it holds that byte (a
 * small file is read whole by the first pread), else by a new read. */
static void queue_input_seek(struct queue_input *in, off_t off)
{
	if (off >= in->pos && off <= in->pos + (off_t)in->len) {
		in->start = (size_t)(off - in->pos);
		return;
	}
	in->pos = off;
	in->start = in->len = 0;
}

/* Strict unsigned decimal: digits only, at most maxdigits, no overflow. */
static bool queue_parse_number(const char *s, size_t len, size_t maxdigits,
    unsigned long long *out)
{
	unsigned long long v = 0;
	if (len == 0 || len > maxdigits)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* A number then one space: returns the bytes used, 0 if malformed. */
static size_t queue_parse_field_number(const char *s, size_t len,
    unsigned long long *out)
{
	const char *sp = memchr(s, ' ', len);
	if (sp == NULL || !queue_parse_number(s, (size_t)(sp - s), 9, out))
		return 0;
	return (size_t)(sp - s) + 1;
}

static bool queue_parse_notify(const char *s, size_t len, unsigned *out)
{
	*out = 0;
	if (len == 1 && s[0] == '-')
		return true;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned bit;
		switch (s[i]) {
		case 'N': bit = QUEUE_NOTIFY_NEVER; break;
		case 'S': bit = QUEUE_NOTIFY_SUCCESS; break;
		case 'F': bit = QUEUE_NOTIFY_FAILURE; break;
		case 'D': bit = QUEUE_NOTIFY_DELAY; break;
		default: return false;
		}
		if (*out & bit)
			return false;
		*out |= bit;
	}
	return true;
}

/*
 * "<st> <notify> <orcpt> <address>" of an R or X record; value starts at
 * file offset off. Fills r (which must be fresh).
 */
static bool queue_parse_rcpt_fields(const char *v, size_t len, off_t off,
    struct queue_rcpt *r, const char **why)
{
	if (len < 2 || v[1] != ' ' || !queue_status_ok(v[0])) {
		*why = "bad status byte";
		return false;
	}
	r->status = v[0];
	r->status_offset = off;
	const char *p = v + 2, *end = v + len;
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || !queue_parse_notify(p, (size_t)(sp - p), &r->notify)) {
		*why = "bad NOTIFY field";
		return false;
	}
	p = sp + 1;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || sp == p) {
		*why = "bad ORCPT field";
		return false;
	}
	if (!(sp - p == 1 && p[0] == '-')) {
		r->orcpt = xstrndup(p, (size_t)(sp - p));
		if (!queue_orcpt_ok(r->orcpt)) {
			*why = "bad ORCPT field";
			return false;
		}
	}
	p = sp + 1;
	if (p == end) {
		*why = "empty address";
		return false;
	}
	r->address = xstrndup(p, (size_t)(end - p));
	return true;
}

/* Envelope records in the order they must appear; A and R repeat. */
static const char queue_record_order[] = "VITFBUQENKAWRD";

static int queue_record_rank(char letter)
{
	const char *p = letter ? strchr(queue_record_order, letter) : NULL;
	return p ? (int)(p - queue_record_order) : -1;
}

static bool queue_match_name(const char *v, size_t len,
    const char *const *names, size_t count, unsigned *out)
{
	for (size_t i = 0; i < count; i++) {
		if (strlen(names[i]) == len && memcmp(v, names[i], len) == 0) {
			*out = (unsigned)i;
			return true;
		}
	}
	return false;
}

/* One envelope record; *why is set on a format error. */
static bool queue_parse_envelope_record(struct queue_envelope *env,
    char letter, const char *v, size_t vlen, off_t voff, const char **why)
{
	unsigned long long n;
	unsigned u;

	switch (letter) {
	case 'V':
		if (!queue_parse_number(v, vlen, 9, &n) ||
		    n != QUEUE_FORMAT_VERSION) {
			*why = "unsupported format version";
			return false;
		}
		return true;
	case 'I':
		if (vlen != QUEUE_ID_LEN) {
			*why = "bad queue ID";
			return false;
		}
		memcpy(env->id, v, QUEUE_ID_LEN);
		env->id[QUEUE_ID_LEN] = '\0';
		if (!queue_id_valid(env->id)) {
			*why = "bad queue ID";
			return false;
		}
		return true;
	case 'T': {
		const char *dot = memchr(v, '.', vlen);
		unsigned long long usec;
		if (dot == NULL ||
		    !queue_parse_number(v, (size_t)(dot - v), 18, &n) ||
		    v + vlen - (dot + 1) != 6 ||
		    !queue_parse_number(dot + 1, 6, 6, &usec)) {
			*why = "bad arrival time";
			return false;
		}
		env->arrival_sec = (long long)n;
		env->arrival_usec = (long)usec;
		return true;
	}
	case 'F':
		env->sender = xstrndup(v, vlen);
		return true;
	case 'B':
		if (!queue_match_name(v, vlen, queue_body_names, 3, &u)) {
			*why = "bad body type";
			return false;
		}
		env->body = (enum queue_body)u;
		return true;
	case 'U':
		env->smtputf8 = true;
		return true;
	case 'Q':
		env->requiretls = true;
		return true;
	case 'E':
		if (vlen == 0) {
			*why = "empty ENVID";
			return false;
		}
		env->envid = xstrndup(v, vlen);
		return true;
	case 'N':
		if (vlen == 4 && memcmp(v, "FULL", 4) == 0)
			env->ret = QUEUE_RET_FULL;
		else if (vlen == 4 && memcmp(v, "HDRS", 4) == 0)
			env->ret = QUEUE_RET_HDRS;
		else {
			*why = "bad RET value";
			return false;
		}
		return true;
	case 'K':
		if (!queue_match_name(v, vlen, queue_kind_names, 5, &u)) {
			*why = "bad message kind";
			return false;
		}
		env->kind = (enum queue_kind)u;
		return true;
	case 'A': {
		const char *eq = memchr(v, '=', vlen);
		if (eq == NULL || !queue_attr_name_ok(v, (size_t)(eq - v))) {
			*why = "bad attribute";
			return false;
		}
		char *name = xstrndup(v, (size_t)(eq - v));
		char *value = xstrndup(eq + 1, vlen - (size_t)(eq + 1 - v));
		bool dup = queue_envelope_attr(env, name) != NULL;
		if (!dup)
			queue_envelope_set_attr(env, name, value);
		free(name);
		free(value);
		if (dup) {
			*why = "repeated attribute";
			return false;
		}
		return true;
	}
	case 'W':
		if (vlen != 1 || (v[0] != '0' && v[0] != '1')) {
			*why = "bad delay warning flag";
			return false;
		}
		env->delay_warned = v[0] == '1';
		env->delay_warned_offset = voff;
		return true;
	case 'R': {
		struct queue_rcpt *r = queue_new_rcpt(env);
		return queue_parse_rcpt_fields(v, vlen, voff, r, why);
	}
	case 'D':
		if (vlen == QUEUE_LENGTH_DIGITS &&
		    memcmp(v, QUEUE_LENGTH_UNSET, vlen) == 0) {
			*why = "unfinished file (content length never set)";
			return false;
		}
		if (vlen != QUEUE_LENGTH_DIGITS ||
		    !queue_parse_number(v, vlen, QUEUE_LENGTH_DIGITS, &n) ||
		    n > (unsigned long long)LLONG_MAX) {
			*why = "bad content length";
			return false;
		}
		env->content_length = (off_t)n;
		return true;
	}
	*why = "unknown record";
	return false;
}

/* One trailer record (X or Z). */
static bool queue_parse_trailer_record(struct queue_envelope *env,
    char letter, const char *v, size_t vlen, off_t voff, const char **why)
{
	unsigned long long n;
	size_t used = queue_parse_field_number(v, vlen, &n);

	if (letter == 'C') {
		/* Only the writer's own first trailer record. */
		if (voff - 2 != env->trailer_offset ||
		    !queue_parse_number(v, vlen, QUEUE_LENGTH_DIGITS, &n) ||
		    n != (unsigned long long)env->content_length) {
			*why = "bad C record";
			return false;
		}
		return true;
	}
	if (letter != 'X' && letter != 'Z') {
		*why = "unknown trailer record";
		return false;
	}
	if (used == 0 || n >= env->nrcpts) {
		*why = "trailer record names no existing recipient";
		return false;
	}
	v += used;
	vlen -= used;
	voff += (off_t)used;
	if (letter == 'X') {
		struct queue_rcpt *r = queue_new_rcpt(env);
		r->parent = (int)n;
		return queue_parse_rcpt_fields(v, vlen, voff, r, why);
	}
	const char *sp = memchr(v, ' ', vlen);
	if (sp == NULL || !queue_dsn_ok(v, (size_t)(sp - v))) {
		*why = "bad DSN status in reason record";
		return false;
	}
	struct queue_rcpt *r = &env->rcpts[n];
	free(r->last_dsn);
	free(r->last_reason);
	r->last_dsn = xstrndup(v, (size_t)(sp - v));
	r->last_reason = xstrndup(sp + 1, vlen - (size_t)(sp + 1 - v));
	return true;
}

enum queue_read_result queue_read(int fd, struct queue_envelope *env,
    char *err, size_t errsize)
{
	struct queue_input in = { .fd = fd };
	const char *line, *why = NULL;
	size_t len = 0;
	off_t off = 0;
	int last_rank = -1;
	bool done = false;
	enum queue_line lr = QUEUE_LINE_OK;

	queue_envelope_free(env);
	/* No fstat: the reads find the size (queue_input_line), and a
	 * directory or a FIFO fails the first one (see bad:). */
	in.end = -1;
	in.cap = QUEUE_MAX_RECORD + 2;
	in.buf = xmalloc_spare(&spare_inbuf, in.cap);

	/* Envelope: records in queue_record_order, up to and including D. */
	while (!done) {
		lr = queue_input_line(&in, &line, &len, &off);
		if (lr != QUEUE_LINE_OK) {
			why = lr == QUEUE_LINE_TOOLONG ? "record too long" :
			    "envelope ends before the D record";
			goto bad;
		}
		if (len == 0 || memchr(line, '\0', len) || memchr(line, '\r', len)) {
			why = "empty record or NUL or CR in a record";
			goto bad;
		}
		char letter = line[0];
		int rank = queue_record_rank(letter);
		if (rank < 0) {
			why = "unknown envelope record";
			goto bad;
		}
		if (last_rank < 0 && letter != 'V') {
			why = "first record is not the format version";
			goto bad;
		}
		bool repeats = letter == 'A' || letter == 'R';
		if (rank < last_rank || (rank == last_rank && !repeats)) {
			why = "envelope record out of order or repeated";
			goto bad;
		}
		/* Required records may not be skipped over. */
		for (int k = last_rank + 1; k < rank; k++) {
			if (strchr("VITFBWD", queue_record_order[k])) {
				why = "required envelope record missing";
				goto bad;
			}
		}
		last_rank = rank;
		if (letter == 'U' || letter == 'Q') {
			if (len != 1) {
				why = letter == 'U' ? "U record has a value" :
				    "Q record has a value";
				goto bad;
			}
		} else if (len < 2 || line[1] != ' ') {
			why = "record without a value";
			goto bad;
		}
		const char *v = len > 2 ? line + 2 : "";
		size_t vlen = len > 2 ? len - 2 : 0;
		if (!queue_parse_envelope_record(env, letter, v, vlen, off + 2,
		    &why))
			goto bad;
		done = letter == 'D';
	}
	env->content_offset = off + (off_t)len + 1;
	if (in.end < 0) {
		/* Larger than the buffer: its size only now matters. */
		struct stat st;
		if (fstat(fd, &st) < 0) {
			snprintf(err, errsize, "fstat: %s", strerror(errno));
			free_to_spare(&spare_inbuf, in.buf);
			queue_envelope_free(env);
			return QUEUE_READ_ERROR;
		}
		in.end = st.st_size;
	}
	if (env->content_length > in.end - env->content_offset) {
		why = "content length goes beyond the end of the file";
		goto bad;
	}
	env->trailer_offset = env->content_offset + env->content_length;

	/* Trailer: X and Z records up to the end of the file. */
	queue_input_seek(&in, env->trailer_offset);
	for (;;) {
		lr = queue_input_line(&in, &line, &len, &off);
		if (lr == QUEUE_LINE_EOF)
			break;
		if (lr != QUEUE_LINE_OK) {
			why = lr == QUEUE_LINE_TOOLONG ? "trailer record too long" :
			    lr == QUEUE_LINE_PARTIAL ?
			    "trailer ends in a partial record" : NULL;
			goto bad;
		}
		if (len < 2 || line[1] != ' ' || memchr(line, '\0', len) ||
		    memchr(line, '\r', len)) {
			why = "bad trailer record";
			goto bad;
		}
		if (!queue_parse_trailer_record(env, line[0], line + 2, len - 2,
		    off + 2, &why))
			goto bad;
	}
	free_to_spare(&spare_inbuf, in.buf);
	return QUEUE_READ_OK;

bad:
	free_to_spare(&spare_inbuf, in.buf);
	if (lr == QUEUE_LINE_ERROR && (errno == EISDIR || errno == ESPIPE ||
	    errno == EINVAL)) {
		snprintf(err, errsize, "not a regular file");
		queue_envelope_free(env);
		return QUEUE_READ_CORRUPT;
	}
	if (lr == QUEUE_LINE_ERROR) {
		int e = errno;
		snprintf(err, errsize, "read: %s", strerror(e));
		queue_envelope_free(env);
		errno = e;
		return QUEUE_READ_ERROR;
	}
	if (why == NULL)
		why = "unreadable record";
	snprintf(err, errsize, "%s (at offset %lld)", why,
	    (long long)(lr == QUEUE_LINE_OK ? off : in.pos + (off_t)in.start));
	queue_envelope_free(env);
	return QUEUE_READ_CORRUPT;
}
