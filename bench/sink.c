/*
 * sink - the far end of the relay benchmarks: an SMTP server that accepts
 * every message at once, keeps nothing, and counts what arrived.
 *
 * It answers EHLO/HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP and QUIT
 * (with PIPELINING and CHUNKING, as most MX hosts offer them today), so
 * that Postfix's smtp client (which uses DATA) and postern's deliver
 * (which uses BDAT for small messages) can relay to it. Every completed
 * DATA or BDAT LAST counts one message; the Message-Id header of each
 * message is remembered (as a 64-bit hash) so that the count of distinct
 * messages, and of duplicates, is exact: bench/run compares the distinct
 * count with the number of messages it sent and reports the difference
 * as lost.
 *
 * BDAT (RFC 3030 2): a chunk's octets are read whatever the reply will
 * be, so that the session stays in step; a chunk with no MAIL before it
 * gets 503, one with no recipient accepted 554, and each good chunk 250
 * (the LAST one after the message is counted). The header section is
 * read across chunk boundaries, so a Message-Id split between two
 * chunks still counts. A BDAT line that is not "BDAT size [LAST]"
 * leaves no way to find the next command: 521 and the connection is
 * closed, as smtpd does. DATA after BDAT in one transaction is 503.
 *
 * Messages from the null sender (MAIL FROM:<>) are delivery status
 * notifications: a benchmark that makes any has gone wrong, so they are
 * counted apart (bounces=N) and never as arrived messages.
 *
 * A client that sends "XCOUNT" gets one line with the counters, so the
 * driver can poll without signals or files:
 *   250 messages=N unique=N duplicates=N bounces=N recipients=N bytes=N connections=N signed=N
 *
 * signed= counts messages that carry a DKIM-Signature header field, so the
 * signing case can show that every message was signed (the signatures
 * themselves are verified by the test suite, not here).
 *
 * With -c CERT -k KEY it can speak STARTTLS (RFC 3207), offered only
 * while a client's "XTLS on" has switched it on (and "XTLS off" off
 * again), so that one sink serves the plain and the TLS relay cases;
 * tls= counts the handshakes completed. TLS runs in the same event loop,
 * non-blocking.
 *
 * Trusts: nothing that arrives on the socket (bounded buffers, no echo);
 * it is a measuring instrument for loopback use, not a mail server.
 * Single-threaded, epoll, non-blocking: the sink must never be the
 * bottleneck of a benchmark.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define IN_SIZE (64 * 1024)	/* read buffer; a longer line is consumed in pieces */
#define OUT_SIZE (16 * 1024)	/* pending replies; a pipelined group fits easily */
#define CMD_MAX 1000		/* longer command lines are answered 500 */

enum sink_state {
	SINK_COMMAND,		/* reading SMTP commands */
	SINK_DATA,		/* inside DATA, until CRLF . CRLF */
	SINK_CHUNK,		/* inside a BDAT chunk, until its octets are read */
};

struct conn {
	int fd;
	enum sink_state state;
	bool in_header;		/* DATA: still in the header section */
	bool mid_line;		/* a line was cut by the buffer: not at line start */
	bool closing;		/* close once the output is flushed */
	bool null_sender;	/* MAIL FROM:<>: a bounce, counted apart */
	uint64_t msgid_hash;	/* hash of this message's Message-Id, 0 if none */
	bool dkim_signed;	/* a DKIM-Signature header field was seen */
	bool tls_next;		/* STARTTLS answered: TLS once it is flushed */
	bool counted_tls;	/* its handshake is in counts.tls */
	SSL *ssl;		/* inside TLS, else NULL */
	unsigned int rcpts;	/* recipients of the current transaction */
	bool in_mail;		/* MAIL accepted: a transaction is open */
	bool bdat_used;		/* this transaction's content came by BDAT */
	uint64_t chunk_left;	/* octets of the current chunk still to read */
	bool chunk_last;	/* the current chunk is the LAST one */
	const char *chunk_refusal;	/* its reply when refused, else NULL */
	size_t hdr_len;		/* BDAT: the header line so far, across chunks */
	char hdr[CMD_MAX];
	uint64_t msg_bytes;
	size_t in_len;
	size_t out_len;
	char in[IN_SIZE];
	char out[OUT_SIZE];
};

static struct {
	unsigned long long messages, unique, duplicates, bounces, recipients, bytes, connections, signed_, tls;
} counts;

/* Open-addressing set of 64-bit Message-Id hashes (0 = empty slot). */
static uint64_t *seen;
static size_t seen_cap, seen_len;

static volatile sig_atomic_t stop_flag;
static const char *hostname = "sink.bench.test";
static SSL_CTX *tls_ctx;	/* -c/-k given */
static bool tls_offered;	/* XTLS on */

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "sink: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

static void seen_grow(void);

/* Adds h to the set; returns false if it was already there. */
static bool seen_add(uint64_t h)
{
	size_t i;

	if ((seen_len + 1) * 2 > seen_cap)
		seen_grow();
	for (i = h & (seen_cap - 1); seen[i] != 0; i = (i + 1) & (seen_cap - 1))
		if (seen[i] == h)
			return false;
	seen[i] = h;
	seen_len++;
	return true;
}

static void seen_grow(void)
{
	uint64_t *old = seen;
	size_t old_cap = seen_cap;

	seen_cap = old_cap ? old_cap * 2 : 4096;
	seen = calloc(seen_cap, sizeof(*seen));
	if (seen == NULL)
		die("calloc");
	seen_len = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i] != 0)
			seen_add(old[i]);
	free(old);
}

static void reply(struct conn *c, const char *text)
{
	size_t n = strlen(text);

	if (c->out_len + n > OUT_SIZE) {
		/* A client that pipelines this much without reading is broken. */
		c->closing = true;
		return;
	}
	memcpy(c->out + c->out_len, text, n);
	c->out_len += n;
}

static void reply_counts(struct conn *c)
{
	char line[512];

	snprintf(line, sizeof(line),
	    "250 messages=%llu unique=%llu duplicates=%llu bounces=%llu "
	    "recipients=%llu bytes=%llu connections=%llu signed=%llu tls=%llu\r\n",
	    counts.messages, counts.unique, counts.duplicates, counts.bounces,
	    counts.recipients, counts.bytes, counts.connections, counts.signed_,
	    counts.tls);
	reply(c, line);
}

static bool verb_is(const char *line, size_t len, const char *verb)
{
	size_t n = strlen(verb);

	return len >= n && strncasecmp(line, verb, n) == 0 &&
	    (len == n || line[n] == ' ' || line[n] == ':');
}

/* True for the argument of "MAIL" that names the null sender: FROM:<> */
static bool is_null_sender(const char *arg, size_t len)
{
	static const char from[] = " FROM:";
	size_t n = sizeof(from) - 1;

	if (len < n || strncasecmp(arg, from, n) != 0)
		return false;
	arg += n;
	len -= n;
	while (len > 0 && *arg == ' ') {
		arg++;
		len--;
	}
	return len >= 2 && arg[0] == '<' && arg[1] == '>';
}

/* A message's content begins (DATA, or its first BDAT chunk). */
static void start_message(struct conn *c)
{
	c->in_header = true;
	c->msgid_hash = 0;
	c->dkim_signed = false;
	c->msg_bytes = 0;
	c->hdr_len = 0;
}

static void start_chunk(struct conn *c, const char *arg, size_t len);

/* One command line, without its line end. */
static void do_command(struct conn *c, const char *line, size_t len)
{
	char buf[256];

	if (len > CMD_MAX) {
		reply(c, "500 5.5.2 Line too long\r\n");
	} else if (verb_is(line, len, "EHLO") || verb_is(line, len, "LHLO")) {
		snprintf(buf, sizeof(buf), "250-%s\r\n250-PIPELINING\r\n"
		    "250-SIZE 0\r\n250-8BITMIME\r\n250-CHUNKING\r\n"
		    "%s250 ENHANCEDSTATUSCODES\r\n",
		    hostname, tls_offered && c->ssl == NULL ? "250-STARTTLS\r\n" : "");
		reply(c, buf);
	} else if (verb_is(line, len, "STARTTLS") && tls_offered && c->ssl == NULL) {
		reply(c, "220 2.0.0 Ready to start TLS\r\n");
		c->tls_next = true;
		c->rcpts = 0;
		c->in_mail = false;
	} else if (verb_is(line, len, "XTLS")) {
		if (tls_ctx == NULL) {
			reply(c, "454 4.7.0 no certificate (-c, -k)\r\n");
		} else {
			tls_offered = len >= 7 && strncasecmp(line + 5, "on", 2) == 0;
			reply(c, tls_offered ? "250 2.0.0 STARTTLS offered\r\n" :
			    "250 2.0.0 STARTTLS not offered\r\n");
		}
	} else if (verb_is(line, len, "HELO")) {
		snprintf(buf, sizeof(buf), "250 %s\r\n", hostname);
		reply(c, buf);
	} else if (verb_is(line, len, "MAIL")) {
		c->rcpts = 0;
		c->in_mail = true;
		c->bdat_used = false;
		c->null_sender = is_null_sender(line + 4, len - 4);
		reply(c, "250 2.1.0 Ok\r\n");
	} else if (verb_is(line, len, "RCPT")) {
		c->rcpts++;
		reply(c, "250 2.1.5 Ok\r\n");
	} else if (verb_is(line, len, "BDAT")) {
		start_chunk(c, line + 4, len - 4);
	} else if (verb_is(line, len, "DATA")) {
		if (c->bdat_used) {
			reply(c, "503 5.5.1 DATA after BDAT\r\n");
			return;
		}
		if (c->rcpts == 0) {
			reply(c, "554 5.5.1 No valid recipients\r\n");
			return;
		}
		c->state = SINK_DATA;
		start_message(c);
		reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
	} else if (verb_is(line, len, "RSET")) {
		c->rcpts = 0;
		c->in_mail = false;
		c->bdat_used = false;
		reply(c, "250 2.0.0 Ok\r\n");
	} else if (verb_is(line, len, "NOOP")) {
		reply(c, "250 2.0.0 Ok\r\n");
	} else if (verb_is(line, len, "XCOUNT")) {
		reply_counts(c);
	} else if (verb_is(line, len, "QUIT")) {
		reply(c, "221 2.0.0 Bye\r\n");
		c->closing = true;
	} else {
		reply(c, "502 5.5.2 Command not recognized\r\n");
	}
}

static void end_of_message(struct conn *c)
{
	counts.recipients += c->rcpts;
	counts.bytes += c->msg_bytes;
	if (c->null_sender) {
		counts.bounces++;
	} else {
		counts.messages++;
		if (c->dkim_signed)
			counts.signed_++;
		if (c->msgid_hash == 0 || seen_add(c->msgid_hash))
			counts.unique++;
		else
			counts.duplicates++;
	}
	c->state = SINK_COMMAND;
	c->rcpts = 0;
	c->in_mail = false;
	c->bdat_used = false;
	reply(c, "250 2.0.0 Ok: queued\r\n");
}

/* One line of the header section (without line end), from DATA or BDAT. */
static void header_line(struct conn *c, const char *line, size_t len)
{
	static const char hdr[] = "Message-Id:";
	static const char dkim[] = "DKIM-Signature:";
	size_t hlen = sizeof(hdr) - 1;

	if (len == 0) {
		c->in_header = false;
	} else if (len >= sizeof(dkim) - 1 && strncasecmp(line, dkim, sizeof(dkim) - 1) == 0) {
		c->dkim_signed = true;
	} else if (len > hlen && strncasecmp(line, hdr, hlen) == 0) {
		const char *v = line + hlen;
		size_t vlen = len - hlen;

		while (vlen > 0 && isspace((unsigned char)*v)) {
			v++;
			vlen--;
		}
		c->msgid_hash = fnv1a(v, vlen);
	}
}

/* One DATA line (without line end); start says it began at a line start. */
static void do_data_line(struct conn *c, const char *line, size_t len, bool start)
{
	if (start && len == 1 && line[0] == '.') {
		end_of_message(c);
		return;
	}
	c->msg_bytes += len + 2;
	if (c->in_header && start)
		header_line(c, line, len);
}

/*
 * Octets of a BDAT chunk: not stuffed, no end marker. Header lines are
 * gathered in c->hdr, which a chunk boundary does not clear; the
 * first CMD_MAX octets of a longer line are enough for what is counted.
 */
static void chunk_data(struct conn *c, const char *data, size_t len)
{
	c->msg_bytes += len;
	while (len > 0 && c->in_header) {
		const char *lf = memchr(data, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - data) : len;
		size_t room = sizeof(c->hdr) - c->hdr_len;

		memcpy(c->hdr + c->hdr_len, data, n < room ? n : room);
		c->hdr_len += n < room ? n : room;
		if (lf == NULL)
			return;
		if (c->hdr_len > 0 && c->hdr[c->hdr_len - 1] == '\r')
			c->hdr_len--;
		header_line(c, c->hdr, c->hdr_len);
		c->hdr_len = 0;
		data += n + 1;
		len -= n + 1;
	}
}

/* The current chunk is read: its reply, and the message's end after LAST. */
static void end_chunk(struct conn *c)
{
	char buf[96];

	c->state = SINK_COMMAND;
	c->mid_line = false;
	if (c->chunk_refusal != NULL) {
		reply(c, c->chunk_refusal);
	} else if (c->chunk_last) {
		if (c->in_header && c->hdr_len > 0)
			header_line(c, c->hdr, c->hdr_len);
		end_of_message(c);
	} else {
		snprintf(buf, sizeof(buf), "250 2.0.0 %llu octets received\r\n",
		    (unsigned long long)c->msg_bytes);
		reply(c, buf);
	}
}

/* "BDAT size [LAST]" (RFC 3030 2); arg is what follows the verb. */
static void start_chunk(struct conn *c, const char *arg, size_t len)
{
	uint64_t size = 0;
	size_t i = 0, digits = 0;

	while (i < len && arg[i] == ' ')
		i++;
	for (; i < len && isdigit((unsigned char)arg[i]); i++, digits++)
		size = size * 10 + (uint64_t)(arg[i] - '0');
	while (i < len && arg[i] == ' ')
		i++;
	bool last = len - i == 4 && strncasecmp(arg + i, "LAST", 4) == 0;
	if (digits == 0 || digits > 15 || (i < len && !last)) {
		reply(c, "521 5.5.4 Syntax: BDAT size [LAST]; closing\r\n");
		c->closing = true;
		return;
	}
	c->chunk_refusal = !c->in_mail ? "503 5.5.1 Error: send MAIL first\r\n" :
	    c->rcpts == 0 ? "554 5.5.1 No valid recipients\r\n" : NULL;
	if (c->chunk_refusal == NULL && !c->bdat_used) {
		c->bdat_used = true;
		start_message(c);
	}
	c->state = SINK_CHUNK;
	c->chunk_left = size;
	c->chunk_last = last;
	if (size == 0)
		end_chunk(c);
}

/* Consumes the complete lines in c->in; keeps a partial line for later. */
static void process_input(struct conn *c)
{
	size_t pos = 0;

	while (pos < c->in_len && !c->closing && !c->tls_next) {
		char *start = c->in + pos;
		if (c->state == SINK_CHUNK) {
			size_t n = c->in_len - pos;
			if ((uint64_t)n > c->chunk_left)
				n = (size_t)c->chunk_left;
			if (c->chunk_refusal == NULL)
				chunk_data(c, start, n);
			pos += n;
			c->chunk_left -= n;
			if (c->chunk_left == 0)
				end_chunk(c);
			continue;
		}
		char *lf = memchr(start, '\n', c->in_len - pos);
		size_t len;
		bool at_start = !c->mid_line;

		if (lf == NULL) {
			if (pos > 0 || c->in_len < IN_SIZE)
				break;
			/* A full buffer without a line end: use it as a piece. */
			len = c->in_len;
			if (c->state == SINK_DATA)
				do_data_line(c, start, len, at_start);
			c->mid_line = true;
			pos = c->in_len;
			break;
		}
		len = (size_t)(lf - start);
		pos += len + 1;
		c->mid_line = false;
		if (len > 0 && start[len - 1] == '\r')
			len--;
		if (c->state == SINK_DATA)
			do_data_line(c, start, len, at_start);
		else if (at_start)
			do_command(c, start, len);
		else
			reply(c, "500 5.5.2 Line too long\r\n");
	}
	if (c->tls_next)
		pos = c->in_len;	/* RFC 3207 4.2: nothing sent before TLS counts */
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
}

/* What SSL_read or SSL_write returning n comes to, as read(2) and
 * write(2) say it: -1 with errno EAGAIN to try again when the socket is
 * ready, 0 for the peer's close_notify (a read's end of file). */
static ssize_t ssl_result(struct conn *c, int n)
{
	if (n > 0)
		return n;
	int e = SSL_get_error(c->ssl, n);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	errno = EIO;
	return -1;
}

/* The connection's reads and writes, through TLS once it is on. */
static ssize_t conn_read(struct conn *c, void *buf, size_t len)
{
	if (c->ssl == NULL)
		return read(c->fd, buf, len);
	return ssl_result(c, SSL_read(c->ssl, buf, (int)len));
}

static ssize_t conn_write(struct conn *c, const void *buf, size_t len)
{
	if (c->ssl == NULL)
		return write(c->fd, buf, len);
	return ssl_result(c, SSL_write(c->ssl, buf, (int)len));
}

/* The 220 to STARTTLS is out: the server side of the handshake starts
 * (driven by the reads that follow). */
static bool start_tls(struct conn *c)
{
	c->tls_next = false;
	c->ssl = SSL_new(tls_ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		return false;
	SSL_set_accept_state(c->ssl);
	c->mid_line = false;
	c->state = SINK_COMMAND;
	return true;
}

/* Writes what is pending; false when the connection should be closed. */
static bool flush_output(int ep, struct conn *c)
{
	while (c->out_len > 0) {
		ssize_t n = conn_write(c, c->out, c->out_len);

		if (n == 0)
			return false;	/* the peer closed TLS */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };

				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				return true;
			}
			return false;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	if (c->closing)
		return false;
	if (c->tls_next && !start_tls(c))
		return false;
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	return true;
}

static void close_conn(struct conn *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	close(c->fd);
	free(c);
}

static void accept_all(int ep, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;
		struct conn *c;
		struct epoll_event ev;
		char banner[256];

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				fprintf(stderr, "sink: accept: %s\n", strerror(errno));
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			die("calloc");
		c->fd = fd;
		counts.connections++;
		snprintf(banner, sizeof(banner), "220 %s ESMTP bench sink\r\n", hostname);
		reply(c, banner);
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			die("epoll_ctl");
		if (!flush_output(ep, c))
			close_conn(c);
	}
}

static void handle_readable(int ep, struct conn *c)
{
	for (;;) {
		ssize_t n = conn_read(c, c->in + c->in_len, IN_SIZE - c->in_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			close_conn(c);
			return;
		}
		if (n == 0) {
			close_conn(c);
			return;
		}
		if (c->ssl != NULL && !c->counted_tls &&
		    SSL_is_init_finished(c->ssl)) {
			c->counted_tls = true;
			counts.tls++;
		}
		c->in_len += (size_t)n;
		process_input(c);
		if (c->closing || c->tls_next)
			break;
	}
	if (!flush_output(ep, c))
		close_conn(c);
}

static int listen_on(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		die("socket");
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "sink: bad IPv4 address %s\n", addr);
		exit(2);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		die("bind");
	if (listen(fd, 1024) < 0)
		die("listen");
	return fd;
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int port = 0, opt, lfd, ep;
	struct epoll_event ev;
	struct sigaction sa;

	const char *cert = NULL, *key = NULL;

	while ((opt = getopt(argc, argv, "a:p:n:c:k:")) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'n':
			hostname = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		default:
			fprintf(stderr, "usage: sink -p port [-a ipv4addr] [-n hostname] [-c cert -k key]\n");
			return 2;
		}
	}
	if (cert != NULL && key != NULL) {
		tls_ctx = SSL_CTX_new(TLS_server_method());
		if (tls_ctx == NULL ||
		    SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1) {
			fprintf(stderr, "sink: cannot load %s and %s\n", cert, key);
			return 1;
		}
	}
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: sink -p port [-a ipv4addr] [-n hostname]\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	seen_grow();

	lfd = listen_on(addr, port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;	/* NULL marks the listener */
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl");

	while (!stop_flag) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 500);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c == NULL)
				accept_all(ep, lfd);
			else if (evs[i].events & EPOLLIN)
				handle_readable(ep, c);
			else if (evs[i].events & (EPOLLERR | EPOLLHUP))
				close_conn(c);
			else if (!flush_output(ep, c))
				close_conn(c);
		}
	}
	printf("messages=%llu unique=%llu duplicates=%llu bounces=%llu recipients=%llu "
	    "bytes=%llu connections=%llu signed=%llu tls=%llu\n",
	    counts.messages, counts.unique, counts.duplicates, counts.bounces,
	    counts.recipients, counts.bytes, counts.connections, counts.signed_,
	    counts.tls);
	return 0;
}
