/*
 * idle-hold - holds N idle SMTP connections open to one server, for the
 * idle-connection case of bench/run (idle10k).
 *
 * It opens N TCP connections to HOST:PORT, at most -c of them still
 * connecting or greeting at a time (the server's listen backlog is
 * finite), from the source addresses FIRST, FIRST+1, ... (-s, -a: one
 * address may be counted against a per-client connection limit), each
 * bound to its address with an ephemeral port chosen at connect time
 * (IP_BIND_ADDRESS_NO_PORT). With -g each one reads the whole greeting
 * (up to its last line, "220 "), so that it has passed the server's
 * first-contact checks and is in the state where a real client would
 * send its first command; then it says nothing more. A connection that
 * is not held within -G seconds is closed and opened again (a server
 * whose accept queue overflowed drops the last ACK of a handshake: the
 * client sees a connection the server never will), at most -r times.
 *
 * When every connection is open (or has failed, or the setup deadline
 * -T has passed) it prints one line and flushes it:
 *   held=H failed=F retried=R setup_ms=T
 * then keeps them open, silent, and counts the ones the server closes
 * or writes to (a timeout reply is a drop: the server let one go), until
 * SIGTERM/SIGINT or the lifetime -t (bounded, so a forgotten holder
 * goes away), and prints at exit:
 *   held=H dropped=D
 *
 * Trusts: nothing the server sends; it reads at most a line's first
 * four octets for the reply code. Raises its own RLIMIT_NOFILE (the
 * hard limit too when it runs as root) to fit N descriptors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 200000
#define MAX_LIFETIME 3600

enum conn_state { C_FREE, C_CONNECTING, C_GREETING, C_HELD };

struct conn {
	int fd;
	uint32_t started_ms;	/* since the start, of this try */
	uint8_t tries;
	uint8_t state;
	uint8_t linepos;	/* octets of the current line seen, max 4 */
	char code[4];		/* the line's first four octets */
};

static struct conn *conns;
static int ep = -1;
static size_t nconns, started, pending, held, failed, dropped, retried;
static size_t oldest;		/* no connection below it is pending */
static bool want_greeting;
static long long t0_ms, setup_timeout_ms = 30000;
static int max_tries = 3;
static struct sockaddr_in dst;
static struct in_addr src0;
static long naddr = 1;
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(void)
{
	fprintf(stderr, "usage: idle-hold -n N -p PORT [-H HOST] [-s FIRST_SOURCE] "
	    "[-a ADDRESSES] [-c PARALLEL] [-g] [-G CONN_SETUP_S] [-r TRIES] "
	    "[-t LIFETIME_S] [-T SETUP_S]\n");
	exit(2);
}

static void fit_fd_limit(size_t n)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)n + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		rl.rlim_max = need;	/* root only: else the next call fails */
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return;
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		perror("idle-hold: setrlimit");
	if (rl.rlim_cur < need)
		fprintf(stderr, "idle-hold: only %llu open files allowed\n",
		    (unsigned long long)rl.rlim_cur);
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	c->fd = -1;
	c->state = C_FREE;
}

/* A connection that ends before it is held counts as failed. */
static void setup_failed(struct conn *c)
{
	conn_close(c);
	pending--;
	failed++;
}

static void now_held(struct conn *c)
{
	c->state = C_HELD;
	pending--;
	held++;
}

/* Open connection i (again, on a retry) from its source address. */
static void start_one(size_t i)
{
	struct conn *c = &conns[i];
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(ntohl(src0.s_addr) +
	    (uint32_t)(i % (size_t)naddr)) };
	int one = 1;
	c->tries++;
	c->started_ms = (uint32_t)(now_ms() - t0_ms);
	c->linepos = 0;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		failed++;
		return;
	}
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	    sizeof(one));
	if (bind(c->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    (connect(c->fd, (const struct sockaddr *)&dst, sizeof(dst)) < 0 &&
	    errno != EINPROGRESS)) {
		close(c->fd);
		c->fd = -1;
		failed++;
		return;
	}
	c->state = C_CONNECTING;
	pending++;
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
	    .data.u64 = (uint64_t)i };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		perror("idle-hold: epoll_ctl");
		exit(1);
	}
}

/* Connections not held within the setup timeout: again, or failed. */
static void expire_pending(void)
{
	long long now = now_ms() - t0_ms;
	while (oldest < started && (conns[oldest].state == C_HELD ||
	    conns[oldest].state == C_FREE))
		oldest++;
	for (size_t i = oldest; i < started; i++) {
		struct conn *c = &conns[i];
		if ((c->state != C_CONNECTING && c->state != C_GREETING) ||
		    now - c->started_ms < setup_timeout_ms)
			continue;
		close(c->fd);
		c->fd = -1;
		c->state = C_FREE;
		pending--;
		if (c->tries < max_tries) {
			retried++;
			start_one(i);
		} else {
			failed++;
		}
	}
}

/* Scan the greeting for its last line ("220 "); false: a refusal. */
static bool greeting_input(struct conn *c, const char *buf, size_t n,
    bool *done)
{
	for (size_t i = 0; i < n; i++) {
		if (c->linepos < 4)
			c->code[c->linepos] = buf[i];
		if (c->linepos < 255)
			c->linepos++;
		if (buf[i] != '\n')
			continue;
		bool last = c->linepos > 4 && c->code[3] == ' ';
		c->linepos = 0;
		if (last) {
			*done = true;
			return c->code[0] == '2';
		}
	}
	return true;
}

static void conn_event(struct conn *c, uint32_t events)
{
	char buf[1024];
	ssize_t n;

	switch (c->state) {
	case C_CONNECTING: {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
		    err != 0) {
			setup_failed(c);
			return;
		}
		if (!(events & EPOLLOUT) && !(events & EPOLLIN))
			return;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
		    .data.u64 = (uint64_t)(c - conns) };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		if (!want_greeting) {
			now_held(c);
			return;
		}
		c->state = C_GREETING;
		if (!(events & EPOLLIN))
			return;
	}
		/* FALLTHROUGH */
	case C_GREETING: {
		bool done = false;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0 || !greeting_input(c, buf, (size_t)n, &done)) {
			setup_failed(c);
			return;
		}
		if (done)
			now_held(c);
		return;
	}
	case C_HELD:
		/* The server spoke (a timeout reply) or closed: a drop. */
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_close(c);
		held--;
		dropped++;
		return;
	case C_FREE:
		return;
	}
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *first_src = "127.0.0.2";
	long port = 0, parallel = 64, lifetime = 600, setup_s = 120,
	    conn_setup_s = 30, tries = 3;
	int opt;

	while ((opt = getopt(argc, argv, "n:p:H:s:a:c:gG:r:t:T:")) != -1) {
		switch (opt) {
		case 'n': nconns = strtoul(optarg, NULL, 10); break;
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'H': host = optarg; break;
		case 's': first_src = optarg; break;
		case 'a': naddr = strtol(optarg, NULL, 10); break;
		case 'c': parallel = strtol(optarg, NULL, 10); break;
		case 'g': want_greeting = true; break;
		case 'G': conn_setup_s = strtol(optarg, NULL, 10); break;
		case 'r': tries = strtol(optarg, NULL, 10); break;
		case 't': lifetime = strtol(optarg, NULL, 10); break;
		case 'T': setup_s = strtol(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (nconns == 0 || nconns > MAX_CONNS || port <= 0 || port > 65535 ||
	    naddr < 1 || naddr > 65536 || parallel < 1 || lifetime < 1 ||
	    setup_s < 1 || conn_setup_s < 1 || tries < 1 || tries > 100)
		usage();
	if (lifetime > MAX_LIFETIME)
		lifetime = MAX_LIFETIME;

	setup_timeout_ms = conn_setup_s * 1000;
	max_tries = (int)tries;
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 ||
	    inet_pton(AF_INET, first_src, &src0) != 1)
		usage();

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	fit_fd_limit(nconns);
	conns = calloc(nconns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (conns == NULL || ep < 0) {
		perror("idle-hold");
		return 1;
	}

	long long t0 = t0_ms = now_ms();
	long long setup_end = t0 + setup_s * 1000;
	long long life_end = t0 + lifetime * 1000;
	bool reported = false;
	struct epoll_event events[512];

	while (!stop_flag && now_ms() < life_end) {
		expire_pending();
		while (started < nconns && pending < (size_t)parallel)
			start_one(started++);
		if (!reported && ((started == nconns && pending == 0) ||
		    now_ms() >= setup_end)) {
			printf("held=%zu failed=%zu retried=%zu setup_ms=%lld\n",
			    held, failed + pending, retried, now_ms() - t0);
			fflush(stdout);
			reported = true;
		}
		int n = epoll_wait(ep, events, 512, reported ? 1000 : 100);
		if (n < 0 && errno != EINTR) {
			perror("idle-hold: epoll_wait");
			return 1;
		}
		for (int k = 0; k < n; k++)
			conn_event(&conns[events[k].data.u64], events[k].events);
	}
	if (!reported)
		printf("held=%zu failed=%zu retried=%zu setup_ms=%lld\n", held,
		    failed + pending, retried, now_ms() - t0);
	printf("held=%zu dropped=%zu\n", held, dropped);
	fflush(stdout);
	return 0;
}
