/*
 * log.c - syslog or stderr logging with fixed level meanings (see log.h).
 *
 * Trusts nothing in a message: the text a caller formats may hold bytes
 * from the network, and is escaped on its way out (log_emit).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "str.h"

/* An escaped message: 2047 bytes, each at worst \xNN. */
#define LOG_LINE_MAX (2047 * 4 + 1)

static char log_tag[64] = "postern";
/* The syslog ident: the tag with "[pid]", so that syslog() need not ask
 * for the pid (LOG_PID costs a getpid() per line). openlog() keeps the
 * pointer, so rewriting the buffer after a fork is enough. */
static char log_ident[96] = "postern";
static char log_other_tag[64];
static char log_other_ident[96];
static const char *log_prog = "postern";
static enum log_dest log_destination = LOG_DEST_STDERR;
static int log_verbose;
static bool log_fatal_to_stderr;
static pid_t log_cached_pid;
static bool log_atfork_set;

/* After a fork the child has a pid of its own: every cached form of it
 * is made again (pthread_atfork runs this in the child of fork()). */
static void log_pid_refresh(void)
{
	log_cached_pid = getpid();
	snprintf(log_ident, sizeof(log_ident), "%s[%ld]", log_tag,
	    (long)log_cached_pid);
	if (log_other_tag[0] != '\0')
		snprintf(log_other_ident, sizeof(log_other_ident), "%s[%ld]",
		    log_other_tag, (long)log_cached_pid);
}

pid_t log_pid(void)
{
	if (log_cached_pid == 0) {
		log_pid_refresh();
		if (!log_atfork_set && pthread_atfork(NULL, NULL,
		    log_pid_refresh) == 0)
			log_atfork_set = true;
	}
	return log_cached_pid;
}

void log_init(const char *program, enum log_dest dest)
{
	log_prog = program;
	snprintf(log_tag, sizeof(log_tag), "postern/%s", program);
	log_destination = dest;
	log_cached_pid = 0;
	(void)log_pid();
	if (dest == LOG_DEST_SYSLOG)
		openlog(log_ident, LOG_NDELAY, LOG_MAIL);
}

void log_set_verbose(int level)
{
	log_verbose = level;
}

int log_verbose_level(void)
{
	return log_verbose;
}

const char *log_program(void)
{
	return log_prog;
}

void log_set_fatal_to_stderr(bool on)
{
	log_fatal_to_stderr = on;
}

/* Append text to line (n bytes used of size), keeping a byte for the
 * line's newline. */
static void line_put(char *line, size_t size, size_t *n, const char *text)
{
	size_t len = strlen(text);
	size_t room = size - 1 - *n;

	if (len > room)
		len = room;
	memcpy(line + *n, text, len);
	*n += len;
}

/* One line to stderr in one write, so lines of many processes do not
 * mix. ident is "tag[pid]", made once per process (log_pid). */
static void stderr_line(const char *ident, const char *prefix,
    const char *safe)
{
	char line[LOG_LINE_MAX + 128];
	size_t n = 0;
	line_put(line, sizeof(line), &n, ident);
	line_put(line, sizeof(line), &n, ": ");
	line_put(line, sizeof(line), &n, prefix);
	line_put(line, sizeof(line), &n, safe);
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

/*
 * The sink: every message is escaped here, once, whatever its caller did,
 * so that text from outside (a DNSBL's TXT record, a peer's reply, a
 * client's name) can never end a log line early, forge another one or
 * reach an administrator's terminal as a control sequence.
 */
static void log_emit_tag(const char *ident, int priority,
    const char *prefix, const char *fmt, va_list ap)
{
	char text[2048];
	char safe[LOG_LINE_MAX];
	int saved_errno = errno;

	/* %m must see the caller's errno, so expand it before anything else. */
	errno = saved_errno;
	vsnprintf(text, sizeof(text), fmt, ap);
	log_escape_line(safe, sizeof(safe), text);
	if (log_destination == LOG_DEST_SYSLOG) {
		/* openlog() only keeps the pointer: ident outlives the call. */
		if (ident != log_ident)
			openlog(ident, LOG_NDELAY, LOG_MAIL);
		syslog(priority, "%s%s", prefix, safe);
		if (ident != log_ident)
			openlog(log_ident, LOG_NDELAY, LOG_MAIL);
		if (log_fatal_to_stderr && priority == LOG_CRIT)
			stderr_line(ident, prefix, safe);
	} else {
		stderr_line(ident, prefix, safe);
	}
	errno = saved_errno;
}

static void log_emit(int priority, const char *prefix, const char *fmt,
    va_list ap)
{
	(void)log_pid();	/* log_ident holds the pid from here on */
	log_emit_tag(log_ident, priority, prefix, fmt, ap);
}

void log_info_as(const char *program, const char *fmt, ...)
{
	va_list ap;

	snprintf(log_other_tag, sizeof(log_other_tag), "postern/%s", program);
	snprintf(log_other_ident, sizeof(log_other_ident), "%s[%ld]",
	    log_other_tag, (long)log_pid());
	va_start(ap, fmt);
	log_emit_tag(log_other_ident, LOG_INFO, "", fmt, ap);
	va_end(ap);
}

#define LOG_FUNCTION(name, priority, prefix) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		log_emit(priority, prefix, fmt, ap); \
		va_end(ap); \
	}

LOG_FUNCTION(log_info, LOG_INFO, "")
LOG_FUNCTION(log_warning, LOG_WARNING, "warning: ")
LOG_FUNCTION(log_error, LOG_ERR, "error: ")

void log_debug(const char *fmt, ...)
{
	va_list ap;
	if (log_verbose <= 0)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, "debug: ", fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_CRIT, "fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void log_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_CRIT, "panic: ", fmt, ap);
	va_end(ap);
	abort();
}

/*
 * The escaped form of the character at p into piece (at most 4 bytes):
 * printable ASCII and valid UTF-8 as they are, \r \n \t, every other
 * byte (C0, DEL, C1, invalid UTF-8) as \xNN. A backslash is doubled only
 * when asked: log_escape() output must read back unambiguously, while the
 * sink must leave text already escaped by log_escape() as it is.
 * Returns how many input bytes the piece stands for.
 */
static size_t escape_piece(const unsigned char *p, size_t n, bool backslash,
    char piece[5], size_t *plen)
{
	unsigned char c = p[0];
	size_t u;

	if (c >= 0x20 && c < 0x7f && (c != '\\' || !backslash)) {
		piece[0] = (char)c;
		*plen = 1;
		return 1;
	}
	/* Valid UTF-8 as it is, but for the C1 controls (U+0080-U+009F,
	 * 0xC2 0x80-0x9F): a terminal obeys them. */
	if (c >= 0x80 && (u = str_utf8_len(p, n)) > 0 &&
	    !(c == 0xc2 && p[1] < 0xa0)) {
		memcpy(piece, p, u);
		*plen = u;
		return u;
	}
	*plen = 2;
	if (c == '\\')
		memcpy(piece, "\\\\", 2);
	else if (c == '\r')
		memcpy(piece, "\\r", 2);
	else if (c == '\n')
		memcpy(piece, "\\n", 2);
	else if (c == '\t')
		memcpy(piece, "\\t", 2);
	else {
		snprintf(piece, 5, "\\x%02x", c);
		*plen = 4;
	}
	return 1;
}

static size_t escape_into(char *out, size_t outsize, const void *in,
    size_t inlen, bool backslash)
{
	const unsigned char *p = in;
	size_t o = 0;
	size_t starts[4] = { 0 };	/* where the last pieces began */
	unsigned npieces = 0;
	bool truncated = false;

	if (outsize == 0)
		return 0;
	for (size_t i = 0; i < inlen;) {
		char piece[5];
		size_t plen;
		unsigned char c = p[i];

		/* Printable ASCII, most of every line: itself. */
		if (c >= 0x20 && c < 0x7f && (c != '\\' || !backslash)) {
			if (o + 2 > outsize) {
				truncated = true;
				break;
			}
			starts[npieces++ % 4] = o;
			out[o++] = (char)c;
			i++;
			continue;
		}
		size_t used = escape_piece(p + i, inlen - i, backslash, piece,
		    &plen);

		if (o + plen + 1 > outsize) {
			truncated = true;
			break;
		}
		starts[npieces++ % 4] = o;
		memcpy(out + o, piece, plen);
		o += plen;
		i += used;
	}
	if (truncated && outsize >= 4) {
		/* Drop whole pieces until "..." fits. */
		while (o + 4 > outsize && npieces > 0)
			o = starts[--npieces % 4];
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return o;
}

char *log_escape(char *out, size_t outsize, const void *in, size_t inlen)
{
	escape_into(out, outsize, in, inlen, true);
	return out;
}

size_t log_escape_line(char *out, size_t outsize, const char *text)
{
	return escape_into(out, outsize, text, strlen(text), false);
}
