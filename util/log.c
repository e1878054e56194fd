/*
 * log.c - syslog or stderr logging with fixed level meanings (see log.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static char log_tag[64] = "postern";
static const char *log_prog = "postern";
static enum log_dest log_destination = LOG_DEST_STDERR;
static int log_verbose;

void log_init(const char *program, enum log_dest dest)
{
	log_prog = program;
	snprintf(log_tag, sizeof(log_tag), "postern/%s", program);
	log_destination = dest;
	if (dest == LOG_DEST_SYSLOG)
		openlog(log_tag, LOG_PID | LOG_NDELAY, LOG_MAIL);
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

static void log_emit(int priority, const char *prefix, const char *fmt,
    va_list ap)
{
	char text[2048];
	int saved_errno = errno;

	/* %m must see the caller's errno, so expand it before anything else. */
	errno = saved_errno;
	vsnprintf(text, sizeof(text), fmt, ap);
	if (log_destination == LOG_DEST_SYSLOG) {
		syslog(priority, "%s%s", prefix, text);
	} else {
		/* One write per line, so lines of many processes do not mix. */
		char line[2200];
		int n = snprintf(line, sizeof(line), "%s[%ld]: %s%s\n", log_tag,
		    (long)getpid(), prefix, text);
		if (n > (int)sizeof(line) - 1) {
			n = (int)sizeof(line) - 1;
			line[n - 1] = '\n';
		}
		ssize_t w = write(STDERR_FILENO, line, (size_t)n);
		(void)w;
	}
	errno = saved_errno;
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

char *log_escape(char *out, size_t outsize, const void *in, size_t inlen)
{
	const unsigned char *p = in;
	size_t o = 0;
	size_t starts[4] = { 0 };	/* where the last pieces began */
	unsigned npieces = 0;
	bool truncated = false;

	if (outsize == 0)
		return out;
	for (size_t i = 0; i < inlen; i++) {
		char piece[5];
		size_t plen = 2;
		unsigned char c = p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			piece[0] = (char)c;
			plen = 1;
		} else if (c == '\\') {
			memcpy(piece, "\\\\", 2);
		} else if (c == '\r') {
			memcpy(piece, "\\r", 2);
		} else if (c == '\n') {
			memcpy(piece, "\\n", 2);
		} else if (c == '\t') {
			memcpy(piece, "\\t", 2);
		} else {
			snprintf(piece, sizeof(piece), "\\x%02x", c);
			plen = 4;
		}
		if (o + plen + 1 > outsize) {
			truncated = true;
			break;
		}
		starts[npieces++ % 4] = o;
		memcpy(out + o, piece, plen);
		o += plen;
	}
	if (truncated && outsize >= 4) {
		/* Drop whole pieces until "..." fits. */
		while (o + 4 > outsize && npieces > 0)
			o = starts[--npieces % 4];
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}
