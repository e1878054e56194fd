/*
 * Unit tests for util/log.c: the escaper every log line passes through
 * (control bytes, C1, DEL, ESC and invalid UTF-8 escaped; valid UTF-8
 * kept), that text log_escape() made passes the sink unchanged, and that
 * a message with a newline leaves the sink as one line.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

static const struct {
	const char *in;
	const char *line;	/* log_escape_line(): the sink */
	const char *field;	/* log_escape(): backslash doubled */
} escape_cases[] = {
	{ "plain text", "plain text", "plain text" },
	{ "a\r\nb\x01", "a\\r\\nb\\x01", "a\\r\\nb\\x01" },
	{ "tab\there", "tab\\there", "tab\\there" },
	{ "esc\x1b[31mred", "esc\\x1b[31mred", "esc\\x1b[31mred" },
	{ "del\x7f", "del\\x7f", "del\\x7f" },
	{ "back\\slash", "back\\slash", "back\\\\slash" },
	/* Valid UTF-8 as it is: SMTPUTF8 addresses read as sent. */
	{ "j\xc3\xb6rg@b\xc3\xbc" "cher.example", "j\xc3\xb6rg@b\xc3\xbc"
	    "cher.example", "j\xc3\xb6rg@b\xc3\xbc" "cher.example" },
	{ "\xe2\x82\xac \xf0\x9f\x93\xa7", "\xe2\x82\xac \xf0\x9f\x93\xa7",
	    "\xe2\x82\xac \xf0\x9f\x93\xa7" },
	/* C1 controls, as raw bytes and UTF-8 encoded (U+009B is CSI). */
	{ "c1\x9b" "2J", "c1\\x9b2J", "c1\\x9b2J" },
	{ "c1\xc2\x9b" "2J", "c1\\xc2\\x9b2J", "c1\\xc2\\x9b2J" },
	/* Invalid UTF-8: lone continuation, overlong, surrogate, cut short. */
	{ "\x80x", "\\x80x", "\\x80x" },
	{ "\xc0\xaf", "\\xc0\\xaf", "\\xc0\\xaf" },
	{ "\xe0\x80\xaf", "\\xe0\\x80\\xaf", "\\xe0\\x80\\xaf" },
	{ "\xed\xa0\x80", "\\xed\\xa0\\x80", "\\xed\\xa0\\x80" },
	{ "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80", "\\xf4\\x90\\x80\\x80" },
	{ "cut\xe2\x82", "cut\\xe2\\x82", "cut\\xe2\\x82" },
	{ "\xff\xfe", "\\xff\\xfe", "\\xff\\xfe" },
};

static void test_escape_table(void)
{
	char out[128];

	for (size_t i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]);
	    i++) {
		const char *in = escape_cases[i].in;
		log_escape_line(out, sizeof(out), in);
		CHECK_STR(out, escape_cases[i].line);
		CHECK_STR(log_escape(out, sizeof(out), in, strlen(in)),
		    escape_cases[i].field);
	}
}

/* What a caller escaped already passes the sink as it is. */
static void test_no_double_escaping(void)
{
	char field[128], line[256];

	for (size_t i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]);
	    i++) {
		const char *in = escape_cases[i].in;
		log_escape(field, sizeof(field), in, strlen(in));
		log_escape_line(line, sizeof(line), field);
		CHECK_STR(line, field);
	}
}

static void test_truncation(void)
{
	char small[8];

	CHECK_STR(log_escape(small, sizeof(small), "0123456789", 10), "0123...");
	CHECK_STR(log_escape(small, sizeof(small), "0123456", 7), "0123456");
	CHECK_STR(log_escape(small, sizeof(small), "\x01\x02", 2), "\\x01...");
	/* A UTF-8 character is never cut in half. */
	CHECK_STR(log_escape(small, sizeof(small), "ab\xf0\x9f\x93\xa7zzz", 9),
	    "ab...");
	CHECK_INT(log_escape_line(small, sizeof(small), "abc"), 3);
}

/* The sink itself: a message with a newline stays one line on stderr. */
static void test_sink_one_line(void)
{
	int fds[2];
	char got[512];

	CHECK(pipe(fds) == 0);
	int saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	log_init("test", LOG_DEST_STDERR);
	log_info("NOQUEUE: reject: %s", "listed\npostern/smtpd[1]: forged\x1b");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	ssize_t n = read(fds[0], got, sizeof(got) - 1);
	close(fds[0]);
	CHECK(n > 0);
	got[n > 0 ? n : 0] = '\0';
	const char *text = strstr(got, "]: ");
	CHECK(text != NULL);
	CHECK_STR(text ? text + 3 : NULL, "NOQUEUE: reject: listed\\n"
	    "postern/smtpd[1]: forged\\x1b\n");
	CHECK(strchr(got, '\n') == got + n - 1);
}

int main(void)
{
	RUN(test_escape_table);
	RUN(test_no_double_escaping);
	RUN(test_truncation);
	RUN(test_sink_one_line);
	return unit_done();
}
