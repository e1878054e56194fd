/*
 * ipc.c - typed messages between postern processes (see ipc.h).
 *
 * The peer is another postern process, but it is still checked: sizes,
 * counts, names and escapes are validated, and a bad message ends the
 * conversation rather than being guessed at.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "sock.h"

void ipc_msg_init(struct ipc_msg *m, const char *type)
{
	memset(m, 0, sizeof(*m));
	m->type = xstrdup(type ? type : "");
}

void ipc_msg_free(struct ipc_msg *m)
{
	for (size_t i = 0; i < m->count; i++) {
		free(m->attrs[i].name);
		free(m->attrs[i].value);
	}
	free(m->attrs);
	free(m->type);
	memset(m, 0, sizeof(*m));
}

static void add_owned(struct ipc_msg *m, char *name, char *value)
{
	if (m->count == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->attrs = xreallocarray(m->attrs, m->cap, sizeof(*m->attrs));
	}
	m->attrs[m->count].name = name;
	m->attrs[m->count].value = value;
	m->count++;
}

void ipc_add(struct ipc_msg *m, const char *name, const char *fmt, ...)
{
	struct str v;
	va_list ap;

	str_init(&v, STR_NO_MAX);
	va_start(ap, fmt);
	str_vappendf(&v, fmt, ap);
	va_end(ap);
	add_owned(m, xstrdup(name), str_steal(&v));
}

const char *ipc_get(const struct ipc_msg *m, const char *name)
{
	for (size_t i = 0; i < m->count; i++)
		if (strcmp(m->attrs[i].name, name) == 0)
			return m->attrs[i].value;
	return NULL;
}

bool ipc_get_ll(const struct ipc_msg *m, const char *name, long long *out)
{
	const char *v = ipc_get(m, name);
	char *end;
	if (v == NULL || *v == '\0')
		return false;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (*end != '\0' || errno == ERANGE)
		return false;
	*out = n;
	return true;
}

static bool needs_escape(unsigned char c)
{
	return c == '%' || c < 0x20 || c == 0x7f;
}

/* The value with its plain runs appended whole: a job is some 500
 * bytes, and a call per byte was most of qmgr's cost of writing one. */
static void encode_value(struct str *out, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)v;

	for (;;) {
		size_t n = 0;
		while (p[n] != '\0' && !needs_escape(p[n]))
			n++;
		str_append(out, p, n);
		p += n;
		if (*p == '\0')
			return;
		char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
		str_append(out, esc, sizeof(esc));
		p++;
	}
}

void ipc_put_type(struct str *out, const char *type)
{
	ipc_put(out, "type", type);
}

void ipc_put(struct str *out, const char *name, const char *value)
{
	str_append_cstr(out, name);
	str_append_char(out, '=');
	encode_value(out, value);
	str_append_char(out, '\n');
}

void ipc_putf(struct str *out, const char *name, const char *fmt, ...)
{
	char small[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(small)) {
		ipc_put(out, name, small);
		return;
	}
	struct str v;
	str_init(&v, STR_NO_MAX);
	va_start(ap, fmt);
	str_vappendf(&v, fmt, ap);
	va_end(ap);
	ipc_put(out, name, v.data != NULL ? v.data : "");
	str_free(&v);
}

void ipc_put_ll(struct str *out, const char *name, long long value)
{
	str_append_cstr(out, name);
	str_append_char(out, '=');
	if (value < 0)
		str_append_char(out, '-');
	str_append_uint(out, value < 0 ? -(unsigned long long)value :
	    (unsigned long long)value);
	str_append_char(out, '\n');
}

void ipc_put_end(struct str *out)
{
	str_append_char(out, '\n');
}

void ipc_encode(const struct ipc_msg *m, struct str *out)
{
	ipc_put_type(out, m->type);
	for (size_t i = 0; i < m->count; i++)
		ipc_put(out, m->attrs[i].name, m->attrs[i].value);
	ipc_put_end(out);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static char *decode_value(const char *p, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '%') {
			int hi = i + 2 < len ? hexval(p[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(p[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if ((unsigned char)p[i] < 0x20) {
			free(out);
			return NULL;
		} else {
			out[o++] = p[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* Parse one "name=value" line into m (or its type). */
static bool parse_line(const char *line, size_t len, struct ipc_msg *m,
    bool first)
{
	const char *eq = memchr(line, '=', len);
	if (eq == NULL || eq == line)
		return false;
	size_t nlen = (size_t)(eq - line);
	for (size_t i = 0; i < nlen; i++)
		if (!(islower((unsigned char)line[i]) ||
		    isdigit((unsigned char)line[i]) || line[i] == '_'))
			return false;
	char *value = decode_value(eq + 1, len - nlen - 1);
	if (value == NULL)
		return false;
	if (first) {
		if (nlen != 4 || memcmp(line, "type", 4) != 0) {
			free(value);
			return false;
		}
		free(m->type);
		m->type = value;
		return true;
	}
	if (m->count >= IPC_MAX_ATTRS) {
		free(value);
		return false;
	}
	add_owned(m, xstrndup(line, nlen), value);
	return true;
}

enum ipc_decode_result ipc_decode(const char *buf, size_t len,
    struct ipc_msg *m, size_t *consumed)
{
	/* Find the end: an empty line ("\n\n", or "\n" at the very start). */
	const char *end = NULL;
	if (len > 0 && buf[0] == '\n')
		return IPC_BAD;
	for (size_t i = 1; i < len; i++) {
		if (buf[i] == '\n' && buf[i - 1] == '\n') {
			end = buf + i;
			break;
		}
	}
	if (end == NULL)
		return len > IPC_MAX_MESSAGE ? IPC_BAD : IPC_NEED_MORE;
	if ((size_t)(end - buf) > IPC_MAX_MESSAGE)
		return IPC_BAD;
	ipc_msg_init(m, "");
	const char *p = buf;
	bool first = true;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p) + 1);
		if (!parse_line(p, (size_t)(nl - p), m, first)) {
			ipc_msg_free(m);
			return IPC_BAD;
		}
		first = false;
		p = nl + 1;
		if (p == end)
			break;
	}
	*consumed = (size_t)(end - buf) + 1;
	return IPC_DONE;
}

bool ipc_send(struct bio *b, const struct ipc_msg *m)
{
	struct str out;
	str_init(&out, STR_NO_MAX);
	ipc_encode(m, &out);
	bool ok = bio_write(b, out.data, out.len) && bio_flush(b) == BIO_OK;
	str_free(&out);
	return ok;
}

/* One line through its LF into line (bounded by its maximum). */
static enum bio_status read_line(struct bio *b, struct str *line)
{
	for (;;) {
		const char *p;
		size_t avail = bio_peek(b, &p);
		if (avail == 0) {
			/* Nothing buffered: wait for input, with the bio's
			 * deadline, and take its first byte. */
			enum bio_status st = bio_read_exact(b, line, 1);
			if (st != BIO_OK)
				return st;
			if (line->data[line->len - 1] == '\n')
				return BIO_OK;
			continue;
		}
		const char *nl = memchr(p, '\n', avail);
		size_t n = nl != NULL ? (size_t)(nl - p) + 1 : avail;
		if (!str_append(line, p, n))
			return BIO_TOOLONG;
		bio_consume(b, n);
		if (nl != NULL)
			return BIO_OK;
	}
}

enum bio_status ipc_recv(struct bio *b, struct ipc_msg *m)
{
	struct str line;
	size_t total = 0;
	bool first = true;
	enum bio_status st;

	str_init(&line, IPC_MAX_MESSAGE);
	ipc_msg_init(m, "");
	for (;;) {
		/* Lines are LF-terminated here: read through the LF, a
		 * buffered run at a time. */
		str_clear(&line);
		st = read_line(b, &line);
		if (st != BIO_OK)
			break;
		total += line.len;
		if (total > IPC_MAX_MESSAGE) {
			st = BIO_TOOLONG;
			break;
		}
		if (line.len == 1) {	/* the empty line ends the message */
			if (first)
				st = BIO_TOOLONG;
			break;
		}
		if (!parse_line(line.data, line.len - 1, m, first)) {
			st = BIO_TOOLONG;
			break;
		}
		first = false;
	}
	str_free(&line);
	if (st != BIO_OK)
		ipc_msg_free(m);
	return st;
}

void ipc_wake_qmgr(const char *run_directory)
{
	char *path = xasprintf("%s/%s", run_directory, IPC_SOCKET_QMGR);
	int fd = sock_connect_unix(path, 1000);
	free(path);
	if (fd < 0)
		return;		/* qmgr's periodic scan will find the mail */
	static const char wake[] = "type=wakeup\n\n";
	ssize_t n = write(fd, wake, sizeof(wake) - 1);
	(void)n;
	close(fd);
}
