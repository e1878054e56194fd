/*
 * Unit tests for util/bio.c: the bounded line reader over a socket pair,
 * with partial reads, long lines, bare CR/LF, timeouts and EOF.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bio.h"
#include "str.h"
#include "unit.h"

struct pair {
	int reader;
	int writer;
};

static struct pair make_pair(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	return (struct pair){ sv[0], sv[1] };
}

static void put(int fd, const char *s)
{
	size_t n = strlen(s);
	if (write(fd, s, n) != (ssize_t)n)
		abort();
}

/* Write pieces with pauses from a child process: partial reads. */
static pid_t dribble(int fd, const char *const *pieces, int pause_ms)
{
	pid_t pid = fork();
	if (pid == 0) {
		for (size_t i = 0; pieces[i]; i++) {
			put(fd, pieces[i]);
			usleep((useconds_t)pause_ms * 1000);
		}
		_exit(0);
	}
	return pid;
}

static void test_simple_lines(void)
{
	struct pair p = make_pair();
	struct bio b;
	struct str line;
	unsigned flags;

	bio_init(&b, p.reader, 2000);
	str_init(&line, 512);
	put(p.writer, "EHLO a\r\nMAIL FROM:<x>\r\n\r\n");
	CHECK_INT(bio_readline(&b, &line, 512, &flags), BIO_OK);
	CHECK_STR(str_cstr(&line), "EHLO a");
	CHECK_INT(flags, 0);
	CHECK_INT(bio_readline(&b, &line, 512, &flags), BIO_OK);
	CHECK_STR(str_cstr(&line), "MAIL FROM:<x>");
	CHECK_INT(bio_readline(&b, &line, 512, &flags), BIO_OK);
	CHECK_STR(str_cstr(&line), "");
	close(p.writer);
	CHECK_INT(bio_readline(&b, &line, 512, &flags), BIO_EOF);
	str_free(&line);
	bio_free(&b);
	close(p.reader);
}

static void test_partial_reads(void)
{
	struct pair p = make_pair();
	const char *const pieces[] = { "QU", "IT\r", "\nNO", "OP\r\n", NULL };
	pid_t pid = dribble(p.writer, pieces, 20);
	struct bio b;
	struct str line;

	bio_init(&b, p.reader, 2000);
	str_init(&line, 512);
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_STR(str_cstr(&line), "QUIT");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_STR(str_cstr(&line), "NOOP");
	waitpid(pid, NULL, 0);
	str_free(&line);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

static void test_bare_lf_and_cr_are_not_line_ends(void)
{
	struct pair p = make_pair();
	struct bio b;
	struct str line;
	unsigned flags;

	bio_init(&b, p.reader, 2000);
	str_init(&line, 512);
	/* The smuggling shapes: none of these may end a line. */
	put(p.writer, "a\nb\r\nc\rd\r\n.\n.\r\nx\r.\r\r\n");
	CHECK_INT(bio_readline(&b, &line, 512, &flags), BIO_OK);
	CHECK_INT(line.len, 3);
	CHECK(memcmp(line.data, "a\nb", 3) == 0);
	CHECK_INT(flags, BIO_LINE_BARE_LF);
	CHECK_INT(bio_readline(&b, &line, 512, &flags), BIO_OK);
	CHECK(line.len == 3 && memcmp(line.data, "c\rd", 3) == 0);
	CHECK_INT(flags, BIO_LINE_BARE_CR);
	CHECK_INT(bio_readline(&b, &line, 512, &flags), BIO_OK);
	CHECK(line.len == 3 && memcmp(line.data, ".\n.", 3) == 0);
	CHECK_INT(flags, BIO_LINE_BARE_LF);
	CHECK_INT(bio_readline(&b, &line, 512, &flags), BIO_OK);
	CHECK(line.len == 4 && memcmp(line.data, "x\r.\r", 4) == 0);
	CHECK_INT(flags, BIO_LINE_BARE_CR);
	str_free(&line);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

static void test_too_long_is_consumed(void)
{
	struct pair p = make_pair();
	struct bio b;
	struct str line;
	char big[2000];

	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	bio_init(&b, p.reader, 2000);
	str_init(&line, 512);
	put(p.writer, big);
	put(p.writer, "\r\nNEXT\r\n");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_TOOLONG);
	CHECK_INT(line.len, 0);
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_STR(str_cstr(&line), "NEXT");
	/* Exactly max bytes is fine. */
	memset(big, 'y', 512);
	big[512] = '\0';
	put(p.writer, big);
	put(p.writer, "\r\n");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_INT(line.len, 512);
	str_free(&line);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

static void test_readline_part_hands_out_long_lines(void)
{
	struct pair p = make_pair();
	struct bio b;
	struct str out;
	unsigned flags;
	char big[3001];

	memset(big, 'z', 3000);
	big[3000] = '\0';
	bio_init(&b, p.reader, 2000);
	str_init(&out, 1 << 20);
	put(p.writer, big);
	put(p.writer, "\r\n");
	size_t total = 0;
	int parts = 0;
	do {
		str_clear(&out);
		CHECK_INT(bio_readline_part(&b, &out, 1000, &flags), BIO_OK);
		total += out.len;
		parts++;
	} while ((flags & BIO_LINE_PARTIAL) && parts < 10);
	CHECK_INT(total, 3000);
	CHECK_INT(parts, 3);	/* 1000, 1000, then 1000 with its CRLF */
	str_free(&out);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

static void test_cr_split_from_lf_across_reads(void)
{
	struct pair p = make_pair();
	const char *const pieces[] = { "abc\r", "\n", NULL };
	pid_t pid = dribble(p.writer, pieces, 50);
	struct bio b;
	struct str out;
	unsigned flags;

	bio_init(&b, p.reader, 2000);
	str_init(&out, 100);
	CHECK_INT(bio_readline_part(&b, &out, 3, &flags), BIO_OK);
	CHECK_STR(str_cstr(&out), "abc");
	CHECK(flags & BIO_LINE_PARTIAL);
	str_clear(&out);
	CHECK_INT(bio_readline_part(&b, &out, 3, &flags), BIO_OK);
	CHECK_STR(str_cstr(&out), "");
	CHECK(!(flags & BIO_LINE_PARTIAL));
	CHECK(!(flags & BIO_LINE_BARE_CR));
	waitpid(pid, NULL, 0);
	str_free(&out);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

static void test_timeout(void)
{
	struct pair p = make_pair();
	struct bio b;
	struct str line;

	bio_init(&b, p.reader, 100);
	str_init(&line, 512);
	put(p.writer, "no end of line");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_TIMEOUT);
	str_free(&line);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

static void test_read_exact_and_write(void)
{
	struct pair p = make_pair();
	struct bio r, w;
	struct str out;

	bio_init(&r, p.reader, 2000);
	bio_init(&w, p.writer, 2000);
	str_init(&out, 100);
	CHECK(bio_puts(&w, "250-first\r\n"));
	CHECK(bio_printf(&w, "250 %s\r\n", "second"));
	CHECK_INT(bio_buffered(&r), 0);
	CHECK_INT(bio_flush(&w), BIO_OK);
	CHECK_INT(bio_read_exact(&r, &out, 11), BIO_OK);
	CHECK_STR(str_cstr(&out), "250-first\r\n");
	CHECK_INT(bio_skip_exact(&r, 4), BIO_OK);
	str_clear(&out);
	CHECK_INT(bio_readline(&r, &out, 100, NULL), BIO_OK);
	CHECK_STR(str_cstr(&out), "second");
	close(p.writer);
	str_clear(&out);
	CHECK_INT(bio_read_exact(&r, &out, 1), BIO_EOF);
	str_free(&out);
	bio_free(&r);
	bio_free(&w);
	close(p.reader);
}

/* An empty string (data still NULL) written to a fresh bio: no bytes, and
 * no memcpy from or to NULL (UBSan in make check-sanitize). */
static void test_write_nothing(void)
{
	struct pair p = make_pair();
	struct bio w;
	struct str empty;

	bio_init(&w, p.writer, 2000);
	str_init(&empty, 100);
	CHECK(bio_write(&w, empty.data, empty.len));
	CHECK_INT(bio_flush(&w), BIO_OK);
	CHECK(bio_write(&w, "x", 1));
	CHECK(bio_write(&w, NULL, 0));
	CHECK_INT(bio_flush(&w), BIO_OK);
	str_free(&empty);
	bio_free(&w);
	close(p.writer);
	close(p.reader);
}

static void test_discard_input(void)
{
	struct pair p = make_pair();
	struct bio b;
	struct str line;

	bio_init(&b, p.reader, 2000);
	str_init(&line, 100);
	put(p.writer, "STARTTLS\r\nMAIL FROM:<evil>\r\n");
	CHECK_INT(bio_readline(&b, &line, 100, NULL), BIO_OK);
	CHECK(bio_buffered(&b) > 0);
	bio_discard_input(&b);
	CHECK_INT(bio_buffered(&b), 0);
	str_free(&line);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

/* What SO_RCVTIMEO holds on fd, in ms (0: no limit): the kernel keeps
 * it in jiffies, rounded up (4 ms at HZ 250). */
static long long rcvtimeo_ms(int fd)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);
	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) < 0)
		return -1;
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void lower_to_50ms(struct bio *b)
{
	b->timeout_ms = 50;
}

/*
 * Timed reads on a blocking socket: lines whole or in pieces, the
 * socket's SO_RCVTIMEO at the read's timeout, a silent peer's timeout,
 * a lowered timeout (check_timeout) that cuts the wait in progress, and
 * the socket left blocking. alarm() turns a read that would wait for
 * ever into a failed run.
 */
static void test_timed_reads(void)
{
	struct pair p = make_pair();
	struct bio b;
	struct str line;

	alarm(20);
	bio_init(&b, p.reader, 2000);
	bio_timed_reads(&b);
	str_init(&line, 512);
	put(p.writer, "EHLO a\r\n");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_STR(str_cstr(&line), "EHLO a");
	CHECK(rcvtimeo_ms(p.reader) >= 2000 - 2000 / 64 &&
	    rcvtimeo_ms(p.reader) <= 2000 - 2000 / 64 + 10);
	const char *const pieces[] = { "QU", "IT\r", "\nNO", "OP\r\n", NULL };
	pid_t pid = dribble(p.writer, pieces, 20);
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_STR(str_cstr(&line), "QUIT");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_STR(str_cstr(&line), "NOOP");
	waitpid(pid, NULL, 0);
	CHECK_INT(fcntl(p.reader, F_GETFL) & O_NONBLOCK, 0);

	/* A peer that stops mid-line. */
	bio_set_timeout(&b, 100);
	put(p.writer, "no end of line");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_TIMEOUT);
	bio_discard_input(&b);

	/* SO_RCVTIMEO a little under the time left (1,477 ms of 1,500),
	 * kept for a read with 1,510 ms left: that read wakes early, waits
	 * for the rest, and ends at its deadline, not before. */
	bio_set_timeout(&b, 1500);
	put(p.writer, "NOOP\r\n");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK(rcvtimeo_ms(p.reader) >= 1477 && rcvtimeo_ms(p.reader) <= 1487);
	bio_set_timeout(&b, 1510);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 1500);

	/* A deadline over the whole read ends it before timeout_ms. */
	bio_set_timeout(&b, 5000);
	bio_set_deadline(&b, 100);
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_TIMEOUT);
	bio_set_deadline(&b, -1);

	/* Stress: the hook lowers timeout_ms before the wait. */
	b.check_timeout = lower_to_50ms;
	bio_set_timeout(&b, 5000);
	alarm(3);
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_TIMEOUT);
	CHECK_INT(b.timeout_ms, 50);
	alarm(0);
	str_free(&line);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

/*
 * With timed reads the socket blocks, yet a write to a peer that reads
 * nothing still ends at the deadline (MSG_DONTWAIT, then poll);
 * bio_timed_reads_end() makes the socket non-blocking for TLS.
 */
/* Small socket buffers, so that a write of 60,000 bytes to a peer that
 * reads nothing must wait: it ends at the bio's deadline (alarm(): a
 * write that blocks for ever fails the run). */
static void check_write_times_out(struct bio *b, const struct pair *p)
{
	int small = 4096;

	setsockopt(p->reader, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(p->writer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	alarm(20);
	char *big = calloc(1, 60000);
	CHECK(big != NULL);
	CHECK(bio_write(b, big, 60000));
	CHECK_INT(bio_flush(b), BIO_TIMEOUT);
	free(big);
	alarm(0);
}

static void test_timed_reads_write_deadline(void)
{
	struct pair p = make_pair();
	struct bio b;

	bio_init(&b, p.reader, 100);
	bio_timed_reads(&b);
	check_write_times_out(&b, &p);
	CHECK(bio_timed_reads_end(&b));
	CHECK(fcntl(p.reader, F_GETFL) & O_NONBLOCK);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

/*
 * bio_poll_waits() (lmtpd's Unix sockets): the socket becomes
 * non-blocking, a read waits in poll and ends at its deadline, and a
 * write to a peer that reads nothing does too (without O_NONBLOCK it
 * would block for ever: alarm() fails the run).
 */
static void test_poll_waits(void)
{
	struct pair p = make_pair();
	struct bio b;
	struct str line;

	bio_init(&b, p.reader, 100);
	CHECK(bio_poll_waits(&b));
	CHECK(fcntl(p.reader, F_GETFL) & O_NONBLOCK);
	str_init(&line, 1000);
	put(p.writer, "LHLO x\r\n");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK(strcmp(str_cstr(&line), "LHLO x") == 0);
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_TIMEOUT);
	check_write_times_out(&b, &p);
	str_free(&line);
	bio_free(&b);
	close(p.reader);
	close(p.writer);
}

/*
 * bio_read_ready(): what the caller's own poll found waiting is read into
 * the bio's buffer, the same buffer job after job (deliver's next job:
 * it was a read into the stack and a new 64 KiB buffer per job), and
 * end of file is a status, not a change.
 */
static void test_read_ready_keeps_buffer(void)
{
	struct pair p = make_pair();
	struct bio b;
	const char *first, *second;

	bio_init(&b, p.reader, 2000);
	put(p.writer, "type=job\n\n");
	CHECK_INT(bio_read_ready(&b), BIO_OK);
	CHECK_INT(bio_peek(&b, &first), 10);
	CHECK(memcmp(first, "type=job\n\n", 10) == 0);
	bio_consume(&b, 10);
	put(p.writer, "type=job\nid=2\n\n");
	CHECK_INT(bio_read_ready(&b), BIO_OK);
	CHECK_INT(bio_peek(&b, &second), 15);
	CHECK(memcmp(second, "type=job\nid=2\n\n", 15) == 0);
	CHECK(second == first);
	bio_consume(&b, 15);
	close(p.writer);
	CHECK_INT(bio_read_ready(&b), BIO_EOF);
	CHECK_INT(bio_buffered(&b), 0);
	bio_free(&b);
	close(p.reader);
}

/*
 * A transport that hands out scripted reads, one piece per read(2), so a
 * test decides exactly where the peer's segments end (no timing).
 */
struct script {
	const char *const *pieces;
	size_t next;
};

static ssize_t script_read(struct bio *b, void *buf, size_t len)
{
	struct script *sc = b->transport;
	const char *piece = sc->pieces[sc->next];
	if (piece == NULL)
		return 0;
	size_t n = strlen(piece);
	if (n > len)
		abort();
	memcpy(buf, piece, n);
	sc->next++;
	return (ssize_t)n;
}

static ssize_t script_write(struct bio *b, const void *buf, size_t len)
{
	return (ssize_t)len;
}

static size_t script_pending(struct bio *b)
{
	return 1;	/* never poll the (absent) fd */
}

static short script_want(struct bio *b)
{
	return 0;
}

static const struct bio_ops script_ops = {
	.read = script_read,
	.write = script_write,
	.pending = script_pending,
	.want = script_want,
};

/*
 * A line of exactly max octets is a line, whichever read brings its CRLF
 * (found by tests/fuzz/fuzz_bio.c: it was "too long" when the CRLF came
 * in a later segment than the line).
 */
static void test_line_of_exactly_max_octets(void)
{
	static const struct {
		const char *pieces[5];
		size_t max;
		enum bio_status want[3];
		const char *line[3];
	} cases[] = {
		{ { "ABCD\r\n", "EF\r\n", NULL }, 4,
		  { BIO_OK, BIO_OK, BIO_EOF }, { "ABCD", "EF", "" } },
		{ { "ABCD", "\r\nEF\r\n", NULL }, 4,
		  { BIO_OK, BIO_OK, BIO_EOF }, { "ABCD", "EF", "" } },
		{ { "ABCD", "\r", "\n", "EF\r\n", NULL }, 4,
		  { BIO_OK, BIO_OK, BIO_EOF }, { "ABCD", "EF", "" } },
		{ { "ABC\r", "\r\nEF\r\n", NULL }, 4,
		  { BIO_OK, BIO_OK, BIO_EOF }, { "ABC\r", "EF", "" } },
		{ { "ABCD", "E\r\nEF\r\n", NULL }, 4,
		  { BIO_TOOLONG, BIO_OK, BIO_EOF }, { "", "EF", "" } },
		{ { "ABCD", "\rE\r\nEF\r\n", NULL }, 4,
		  { BIO_TOOLONG, BIO_OK, BIO_EOF }, { "", "EF", "" } },
		{ { "ABCD", NULL }, 4,
		  { BIO_EOF, BIO_EOF, BIO_EOF }, { "", "", "" } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct script sc = { cases[i].pieces, 0 };
		struct bio b;
		struct str line;
		bio_init(&b, -1, 2000);
		b.ops = &script_ops;
		b.transport = &sc;
		str_init(&line, 512);
		for (size_t k = 0; k < 3; k++) {
			unsigned flags = 0;
			enum bio_status st = bio_readline(&b, &line,
			    cases[i].max, &flags);
			CHECK_INT(st, cases[i].want[k]);
			if (st == BIO_OK)
				CHECK_STR(str_cstr(&line), cases[i].line[k]);
			if (st != cases[i].want[k])
				printf("# case %zu, line %zu\n", i, k);
			CHECK(!(flags & BIO_LINE_PARTIAL));
		}
		str_free(&line);
		bio_free(&b);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_simple_lines);
	RUN(test_partial_reads);
	RUN(test_bare_lf_and_cr_are_not_line_ends);
	RUN(test_too_long_is_consumed);
	RUN(test_readline_part_hands_out_long_lines);
	RUN(test_cr_split_from_lf_across_reads);
	RUN(test_timeout);
	RUN(test_read_exact_and_write);
	RUN(test_write_nothing);
	RUN(test_discard_input);
	RUN(test_read_ready_keeps_buffer);
	RUN(test_line_of_exactly_max_octets);
	RUN(test_timed_reads);
	RUN(test_timed_reads_write_deadline);
	RUN(test_poll_waits);
	return unit_done();
}
