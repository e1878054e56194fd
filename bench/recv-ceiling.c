/*
 * recv-ceiling - how fast this machine can take messages over loopback
 * TCP and store each one durably, with no mail server around the work.
 *
 * The 1 MiB case of bench/run is compared with `dd bs=1M conv=fdatasync`,
 * the disk's sequential write rate. That figure leaves out what every
 * receiver of mail over the network must also pay on this machine: the
 * load generator producing the bytes, the kernel's loopback TCP copying
 * them, one process reading them, and a new file per message. This tool
 * does only that, as fast as it can, so that the gap between dd and an
 * MTA can be split into "physically needed here" and "the MTA's own".
 *
 * It speaks just enough SMTP for Postfix's smtp-source, the load both MTAs
 * get in that case (the same client, the same connection per message, the
 * same loopback path: only the server differs): a 220 greeting, 250 to
 * EHLO/HELO/MAIL/RCPT/RSET/NOOP, 354 to DATA, 221 to QUIT. No address
 * parsing, no extensions, no limits beyond the line buffer. The message
 * body is read with one recv() per buffer, its lines found with memchr,
 * dot-stuffing undone (RFC 5321 4.5.2), and written with one write() per
 * buffer into a new file, tmp/T.N (O_EXCL); at the final "." line the
 * file is fdatasync'd, renamed into incoming/, incoming/ is fsync'd, and
 * only then does the client get its 250: the durability the MTAs promise
 * (file and directory entry on disk before 250). Files are left in place
 * (no unlink per message, cheaper than any queue); bench/run removes the
 * directory after each sample.
 *
 * Threads: -t of them (default 8) block in accept() on one listening
 * socket, each serving one connection at a time, so 4 concurrent senders
 * are served by 4 threads with no hand-off between them.
 *
 * Runs until SIGTERM or SIGINT, then prints one line for bench/run:
 *   messages=N bytes=N user_us=N sys_us=N
 * (bytes: message bytes stored; user/sys: this process's CPU).
 *
 * Trusts: nothing that arrives on the socket (bounded line buffer); it is
 * a measuring instrument for loopback use, never a mail server. Works only
 * inside the directory it is given (creates tmp/ and incoming/ there).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_THREADS 64
#define RECV_BUF (256 * 1024)	/* also the longest line accepted */

static int listen_fd = -1;
static int tmp_fd = -1;		/* dirfd of tmp/ */
static int incoming_fd = -1;	/* dirfd of incoming/ */
static atomic_uint_fast64_t stored_messages;
static atomic_uint_fast64_t stored_bytes;

/* One connection's state: the receive buffer and where its lines are. */
struct session {
	int fd;
	int thread_id;
	char *buf;
	size_t len;		/* bytes in buf */
	uint64_t file_seq;	/* this thread's message counter */
};

static void usage(void)
{
	fprintf(stderr, "usage: recv-ceiling -d DIR -p PORT [-t threads]\n");
	exit(2);
}

/* Writes all of data; false on failure. */
static bool write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		data += n;
		len -= (size_t)n;
	}
	return true;
}

static bool reply(struct session *s, const char *text)
{
	return write_all(s->fd, text, strlen(text));
}

/* Reads more into the buffer; false at end of stream, error, or when a
 * line does not fit. */
static bool fill(struct session *s)
{
	ssize_t n;

	if (s->len == RECV_BUF)
		return false;
	do
		n = recv(s->fd, s->buf + s->len, RECV_BUF - s->len, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return false;
	s->len += (size_t)n;
	return true;
}

/* Drops the first used bytes of the buffer. */
static void consume(struct session *s, size_t used)
{
	memmove(s->buf, s->buf + used, s->len - used);
	s->len -= used;
}

/*
 * The DATA phase: stores the message up to its final "." line into a new
 * file and makes it durable. Lines are found with memchr; runs of lines
 * are written as one piece, split only where a leading dot is removed.
 * Returns false if the connection ended or the disk failed.
 */
static bool receive_message(struct session *s)
{
	char tmp_name[48], final_name[64];
	uint64_t bytes = 0;
	bool done = false;
	int fd;

	snprintf(tmp_name, sizeof tmp_name, "%d.%llu", s->thread_id,
	    (unsigned long long)s->file_seq++);
	snprintf(final_name, sizeof final_name, "m%s", tmp_name);
	fd = openat(tmp_fd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror("recv-ceiling: open");
		return false;
	}
	if (!reply(s, "354 go ahead\r\n"))
		goto fail;
	while (!done) {
		size_t pos = 0, run = 0;	/* next line; start of unwritten run */

		for (;;) {
			char *nl = memchr(s->buf + pos, '\n', s->len - pos);
			size_t line = pos;

			if (nl == NULL)
				break;
			pos = (size_t)(nl - s->buf) + 1;
			if (s->buf[line] != '.')
				continue;
			/* ".\r\n" (or ".\n") ends the message. */
			if (pos - line == 2 || (pos - line == 3 && s->buf[line + 1] == '\r')) {
				if (!write_all(fd, s->buf + run, line - run))
					goto fail;
				bytes += line - run;
				run = pos;
				done = true;
				break;
			}
			/* A stuffed dot: write up to it, skip it. */
			if (!write_all(fd, s->buf + run, line - run))
				goto fail;
			bytes += line - run;
			run = line + 1;
		}
		if (!done) {
			/* Complete lines so far go out now; the partial
			 * line stays in the buffer for the next read. */
			size_t end = pos;

			if (end > run) {
				if (!write_all(fd, s->buf + run, end - run))
					goto fail;
				bytes += end - run;
			}
			consume(s, end);
			if (!fill(s))
				goto fail;
		} else {
			consume(s, run);
		}
	}
	/* Data, then the directory entry, on disk before 250. */
	if (fdatasync(fd) < 0 ||
	    renameat(tmp_fd, tmp_name, incoming_fd, final_name) < 0 ||
	    fsync(incoming_fd) < 0) {
		perror("recv-ceiling: store");
		goto fail;
	}
	close(fd);
	atomic_fetch_add(&stored_messages, 1);
	atomic_fetch_add(&stored_bytes, bytes);
	return reply(s, "250 stored\r\n");
fail:
	close(fd);
	unlinkat(tmp_fd, tmp_name, 0);
	return false;
}

/* The command phase, one line at a time, until QUIT or the end. */
static void serve(struct session *s)
{
	if (!reply(s, "220 recv-ceiling ESMTP\r\n"))
		return;
	for (;;) {
		char *nl = memchr(s->buf, '\n', s->len);
		size_t used;

		if (nl == NULL) {
			if (!fill(s))
				return;
			continue;
		}
		used = (size_t)(nl - s->buf) + 1;
		if (used >= 4 && strncasecmp(s->buf, "DATA", 4) == 0) {
			consume(s, used);
			if (!receive_message(s))
				return;
			continue;
		}
		if (used >= 4 && strncasecmp(s->buf, "QUIT", 4) == 0) {
			reply(s, "221 bye\r\n");
			return;
		}
		if (!reply(s, "250 ok\r\n"))
			return;
		consume(s, used);
	}
}

static void *acceptor(void *arg)
{
	struct session s = { .thread_id = (int)(intptr_t)arg };
	int one = 1;

	s.buf = malloc(RECV_BUF);
	if (s.buf == NULL) {
		perror("recv-ceiling: malloc");
		exit(1);
	}
	for (;;) {
		s.fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (s.fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("recv-ceiling: accept");
			exit(1);
		}
		/* As the MTAs: replies go out at once. */
		setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		s.len = 0;
		serve(&s);
		close(s.fd);
	}
	return NULL;
}

/* Opens DIR/NAME, creating it if needed. */
static int open_subdir(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct rusage ru;
	sigset_t stop;
	pthread_t tid;
	int port = 0, threads = 8, opt, one = 1, sig;

	while ((opt = getopt(argc, argv, "d:p:t:")) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		default: usage();
		}
	}
	if (dir == NULL || port <= 0 || port > 65535 || threads < 1 || threads > MAX_THREADS)
		usage();
	tmp_fd = open_subdir(dir, "tmp");
	incoming_fd = open_subdir(dir, "incoming");

	/* SIGTERM/SIGINT are taken by sigwait below, in the main thread
	 * only: block them before any thread inherits the mask. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0) {
		perror("recv-ceiling: socket");
		return 1;
	}
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listen_fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    listen(listen_fd, 128) < 0) {
		perror("recv-ceiling: bind/listen");
		return 1;
	}
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&tid, NULL, acceptor, (void *)(intptr_t)i) != 0) {
			fprintf(stderr, "recv-ceiling: pthread_create failed\n");
			return 1;
		}
		pthread_detach(tid);
	}
	while (sigwait(&stop, &sig) != 0)
		;
	getrusage(RUSAGE_SELF, &ru);
	printf("messages=%llu bytes=%llu user_us=%lld sys_us=%lld\n",
	    (unsigned long long)atomic_load(&stored_messages),
	    (unsigned long long)atomic_load(&stored_bytes),
	    (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
	    (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	fflush(stdout);
	_exit(0);
}
