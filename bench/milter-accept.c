/*
 * milter-accept - the filter of the milter benchmark case: a milter
 * (Sendmail's filter protocol, version 6) that asks for every stage,
 * answers "continue" to each, and at end of message adds one header and
 * accepts. It stands for the cheapest real filter, so that the case
 * measures what the MTA spends on the protocol (connection, macros,
 * headers, body chunks, the header edit applied to the queue file), not
 * what a scanner spends on content. Postfix and postern talk to the same
 * process in the same run.
 *
 *   milter-accept -p PORT     listen on 127.0.0.1:PORT, a thread per MTA connection
 *
 * At exit (SIGTERM) it prints: connections=N messages=N
 *
 * Trusts: nothing the MTA sends beyond the packet framing; packets are
 * bounded (a filter must never be the thing that falls over).
 */
#include <arpa/inet.h>
#include <errno.h>
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
#include <sys/socket.h>
#include <unistd.h>

#define PACKET_MAX (1024 * 1024)	/* body chunks are at most 64 KiB */

/* Commands (MTA to filter) and replies (filter to MTA), one letter each. */
enum {
	CMD_ABORT = 'A', CMD_BODY = 'B', CMD_CONNECT = 'C', CMD_MACRO = 'D',
	CMD_BODYEOB = 'E', CMD_HELO = 'H', CMD_QUIT_NC = 'K', CMD_HEADER = 'L',
	CMD_MAIL = 'M', CMD_EOH = 'N', CMD_OPTNEG = 'O', CMD_QUIT = 'Q',
	CMD_RCPT = 'R', CMD_DATA = 'T', CMD_UNKNOWN = 'U',
};
enum { REPLY_ACCEPT = 'a', REPLY_CONTINUE = 'c', REPLY_ADDHEADER = 'h' };
#define ACTION_ADDHDRS 0x01u

static atomic_long connections, messages;

/* All len bytes read into p (writing: written from p); -1 at an end of
 * file or error. */
static int transfer_full(int fd, char *p, size_t len, bool writing)
{
	while (len > 0) {
		ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	return transfer_full(fd, buf, len, false);
}

static int write_full(int fd, const void *buf, size_t len)
{
	return transfer_full(fd, (char *)buf, len, true);
}

static int send_packet(int fd, char cmd, const void *data, uint32_t len)
{
	char head[5];
	uint32_t n = htonl(len + 1);

	memcpy(head, &n, 4);
	head[4] = cmd;
	if (write_full(fd, head, 5) < 0)
		return -1;
	return len > 0 ? write_full(fd, data, len) : 0;
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = malloc(PACKET_MAX);

	atomic_fetch_add(&connections, 1);
	while (buf != NULL) {
		uint32_t len;
		char cmd;

		if (read_full(fd, &len, 4) < 0)
			break;
		len = ntohl(len);
		if (len < 1 || len > PACKET_MAX || read_full(fd, buf, len) < 0)
			break;
		cmd = buf[0];
		if (cmd == CMD_OPTNEG) {
			/* version 6, may add headers, wants every stage */
			uint32_t reply[3] = { htonl(6), htonl(ACTION_ADDHDRS), htonl(0) };

			if (send_packet(fd, CMD_OPTNEG, reply, sizeof(reply)) < 0)
				break;
		} else if (cmd == CMD_BODYEOB) {
			static const char header[] = "X-Bench-Milter\0passed";

			atomic_fetch_add(&messages, 1);
			if (send_packet(fd, REPLY_ADDHEADER, header, sizeof(header)) < 0 ||
			    send_packet(fd, REPLY_ACCEPT, NULL, 0) < 0)
				break;
		} else if (cmd == CMD_MACRO || cmd == CMD_ABORT || cmd == CMD_QUIT_NC) {
			/* no reply: macros precede their stage; abort and
			 * quit-new-connection reset for the next transaction */
		} else if (cmd == CMD_QUIT) {
			break;
		} else if (cmd == CMD_CONNECT || cmd == CMD_HELO || cmd == CMD_MAIL ||
		    cmd == CMD_RCPT || cmd == CMD_DATA || cmd == CMD_HEADER ||
		    cmd == CMD_EOH || cmd == CMD_BODY || cmd == CMD_UNKNOWN) {
			if (send_packet(fd, REPLY_CONTINUE, NULL, 0) < 0)
				break;
		} else {
			break;	/* unknown command: a protocol error, hang up */
		}
	}
	free(buf);
	close(fd);
	return NULL;
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sigaction sa = { .sa_handler = on_term };
	int opt, port = 0, lfd, one = 1;

	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt != 'p') {
			fprintf(stderr, "usage: milter-accept -p PORT\n");
			return 2;
		}
		port = atoi(optarg);
	}
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: milter-accept -p PORT\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: accept returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 512) < 0) {
		perror("milter-accept: listen");
		return 1;
	}
	while (!stop) {
		pthread_t t;
		pthread_attr_t attr;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0)
			close(fd);
		pthread_attr_destroy(&attr);
	}
	printf("connections=%ld messages=%ld\n", atomic_load(&connections),
	    atomic_load(&messages));
	return 0;
}
