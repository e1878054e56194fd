/*
 * test_smtp_data_blocks.c - the DATA reader's body fast path
 * (mail/smtp_server_data.c, smtp_message.sink_takes_blocks) against its
 * line path: for every input the bytes a sink stores (each piece, CRLF
 * after each line end), the size, the bare CR/LF verdict, the status and
 * what is left unread after the final dot must be the same whether the
 * body comes a line at a time or in blocks. The inputs are edge cases
 * (dots at read boundaries, CR LF split across reads, bare CR and LF next
 * to CRLF, lines longer than a read) and seeded random texts larger than
 * bio's 64 KiB read buffer, written by a child so reads end anywhere.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "smtp_server.h"
#include "str.h"
#include "unit.h"

struct stored {
	struct str bytes;
	unsigned puts;
};

/* As smtpd stores: the piece, then CRLF if it ends a line. */
static void put_stored(void *ctx, const char *p, size_t n, bool line_end)
{
	struct stored *s = ctx;

	str_append(&s->bytes, p, n);
	if (line_end)
		str_append(&s->bytes, "\r\n", 2);
	s->puts++;
}

struct outcome {
	enum bio_status st;
	struct stored out;
	unsigned long long size;
	bool bare;
	struct str rest;	/* what follows the final dot */
};

/* Feed in through a socketpair from a child, in writes of `step` octets
 * (0: all at once), and read it as DATA. */
static void read_as_data(const char *in, size_t len, size_t step, bool blocks,
    struct outcome *o)
{
	int fds[2];
	struct smtp_server srv;
	struct smtp_message m;
	struct bio b;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		for (size_t off = 0; off < len;) {
			size_t n = step == 0 || len - off < step ? len - off :
			    step;
			ssize_t w = write(fds[1], in + off, n);
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		_exit(0);
	}
	close(fds[1]);
	bio_init(&b, fds[0], 5000);
	smtp_server_init(&srv, NULL, NULL, 0, 0, &b, &b, "test", "peer");
	smtp_message_init(&m);
	m.sink_takes_blocks = blocks;
	memset(o, 0, sizeof(*o));
	str_init(&o->out.bytes, STR_NO_MAX);
	str_init(&o->rest, STR_NO_MAX);
	struct smtp_message_sink sink = { put_stored, &o->out };
	o->st = smtp_server_read_data(&srv, &m, &sink);
	o->size = m.size;
	o->bare = m.bare_newline;
	const char *p;
	size_t n = bio_peek(&b, &p);
	str_append(&o->rest, p, n);
	char buf[4096];
	ssize_t r;
	while ((r = read(fds[0], buf, sizeof(buf))) > 0)
		str_append(&o->rest, buf, (size_t)r);
	smtp_server_free(&srv);
	bio_free(&b);
	close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
}

static void outcome_free(struct outcome *o)
{
	str_free(&o->out.bytes);
	str_free(&o->rest);
}

/* Both paths over one input; returns the block path's put count. */
static unsigned check_same(const char *in, size_t len, size_t step)
{
	struct outcome lines, blocks;

	read_as_data(in, len, step, false, &lines);
	read_as_data(in, len, step, true, &blocks);
	CHECK_INT(blocks.st, lines.st);
	CHECK_INT(blocks.out.bytes.len, lines.out.bytes.len);
	CHECK(blocks.out.bytes.len == lines.out.bytes.len &&
	    memcmp(blocks.out.bytes.data, lines.out.bytes.data,
	    lines.out.bytes.len) == 0);
	CHECK_INT(blocks.size, lines.size);
	CHECK_INT(blocks.bare, lines.bare);
	CHECK(blocks.rest.len == lines.rest.len && (lines.rest.len == 0 ||
	    memcmp(blocks.rest.data, lines.rest.data, lines.rest.len) == 0));
	unsigned puts = blocks.out.puts;
	outcome_free(&lines);
	outcome_free(&blocks);
	return puts;
}

static void test_edge_cases(void)
{
	static const char *const cases[] = {
		"S: x\r\n\r\nbody\r\n.\r\nNEXT",
		"S: x\r\n\r\n..stuffed\r\nplain\r\n..\r\n.\r\nQUIT\r\n",
		"S: x\r\n\r\na\nb\r\nc\rd\r\n\r\r\n\n\r\n.\r\n",
		"S: x\r\n\r\nline\r\n.x\r\n.\r\n",
		"S: x\r\n\r\n\r\n\r\n.\r\n",
		"S: x\r\n\r\nend\r\r\n.\r\n",
		"S: x\r\n\r\nlf.\n.\r\n.\r\n",
		"S: x\r\n\r\nno final dot\r\n",
		"no header line\r\nbody\r\n..\r\n.\r\n",
		"S: x\r\nMessage-ID: <a@b>\r\n\r\nb\r\n.\r\n",
	};
	static const size_t steps[] = { 0, 1, 2, 3, 7 };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t j = 0; j < sizeof(steps) / sizeof(steps[0]); j++)
			check_same(cases[i], strlen(cases[i]), steps[j]);
}

/* A text of n octets from an alphabet rich in what matters here. */
static char *random_text(unsigned *seed, size_t n, bool plain)
{
	static const char rich[] = "aaaaaaaa.\r\n\r\n\r\n: \r\n.";
	char *t = malloc(n + 64);
	size_t o = 0;

	o += (size_t)sprintf(t, "Subject: r\r\n\r\n");
	for (; o < n; o++) {
		*seed = *seed * 1103515245u + 12345u;
		unsigned r = (*seed >> 16) & 0x7fff;
		t[o] = plain ? (r % 80 == 0 ? '\r' : 'x') :
		    rich[r % (sizeof(rich) - 1)];
		if (plain && t[o] == '\r')
			t[++o] = '\n';
	}
	memcpy(t + o, "\r\n.\r\nQUIT\r\n", 12);	/* with its NUL */
	return t;
}

static void test_random_texts(void)
{
	unsigned seed = 20;
	static const size_t sizes[] = { 100, 5000, 70000, 300000 };
	static const size_t steps[] = { 0, 1000, 65536 + 7 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (size_t j = 0; j < sizeof(steps) / sizeof(steps[0]); j++)
			for (int plain = 0; plain < 2; plain++) {
				char *t = random_text(&seed, sizes[i], plain);
				check_same(t, strlen(t), steps[j]);
				free(t);
			}
}

/* The fast path is taken: a 1 MiB body of 80-octet lines reaches the
 * sink in a few dozen pieces, not 13,000. */
static void test_blocks_are_used(void)
{
	unsigned seed = 1;
	char *t = random_text(&seed, 1 << 20, true);
	unsigned puts = check_same(t, strlen(t), 0);
	CHECK(puts < 200);
	free(t);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_edge_cases);
	RUN(test_random_texts);
	RUN(test_blocks_are_used);
	return unit_done();
}
