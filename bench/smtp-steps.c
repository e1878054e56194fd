/*
 * smtp-steps - where a connection's time goes, step by step, as acc1's
 * client sees it: one client, a new connection per message, EHLO, no
 * pipelining, a 2 KiB message (smtp-source -s 1 -l 2048's dialogue).
 * Each step is timed from the client's side, from the write of its
 * command to the read of the whole reply: connect (connect(2) itself),
 * 220 (connected to greeting), EHLO, MAIL, RCPT, DATA (to the 354), body
 * (the text and its "." to the 250), QUIT (to the 221), close (close(2)
 * itself). Prints the median, 10th and 90th percentiles and the mean of
 * each step in microseconds, and the mean time a message took.
 *
 *   smtp-steps [-n CONNECTIONS] [-t RCPT] HOST-IPV4 PORT
 *
 * Trusts: the server's replies only as far as their 3-digit code; a
 * reply that is not the expected one ends the run with exit 1.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum step { CONNECT, GREETING, EHLO, MAIL, RCPT, DATA, BODY, QUIT, CLOSE,
	NSTEPS };
static const char *const step_names[NSTEPS] = { "connect", "220", "EHLO",
	"MAIL", "RCPT", "DATA", "body", "QUIT", "close" };

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Read one whole reply (its last line has a space after the code);
 * return the code, or -1 on end of file, error or timeout. */
static int read_reply(int fd)
{
	static char buf[8192];
	size_t len = 0;

	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (len < 2 || buf[len - 2] != '\r' || buf[len - 1] != '\n')
			continue;
		char *last = buf + len - 2;
		while (last > buf && last[-1] != '\n')
			last--;
		if (buf + len - last >= 6 && last[3] == ' ')
			return atoi(last);
		if (len == sizeof(buf) - 1)
			return -1;
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Send a command (or the text) and time it to its reply. */
static long long step(int fd, const char *text, size_t len, int want)
{
	long long t0 = now_ns();
	if (write_all(fd, text, len) < 0 || read_reply(fd) != want)
		return -1;
	return now_ns() - t0;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = 600, opt;
	const char *rcpt = "bench@remote.bench.test";

	while ((opt = getopt(argc, argv, "n:t:")) != -1) {
		if (opt == 'n')
			n = atoi(optarg);
		else if (opt == 't')
			rcpt = optarg;
		else
			goto usage;
	}
	if (argc - optind != 2 || n < 10)
		goto usage;
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((unsigned short)atoi(argv[optind + 1])) };
	if (inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1)
		goto usage;

	long long *t[NSTEPS];
	for (int i = 0; i < NSTEPS; i++)
		if ((t[i] = calloc((size_t)n, sizeof(long long))) == NULL)
			return 1;
	char rcpt_cmd[300], body[2300];
	snprintf(rcpt_cmd, sizeof(rcpt_cmd), "RCPT TO:<%s>\r\n", rcpt);
	struct timeval tv = { .tv_sec = 30 };

	for (int m = 0; m < n; m++) {
		long long t0 = now_ns();
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
		    sizeof(tv)) < 0 || connect(fd, (struct sockaddr *)&sa,
		    sizeof(sa)) < 0) {
			perror("smtp-steps: connect");
			return 1;
		}
		long long t1 = now_ns();
		t[CONNECT][m] = t1 - t0;
		if (read_reply(fd) != 220)
			goto failed;
		t[GREETING][m] = now_ns() - t1;
		/* A unique Message-Id for the sink; 2 KiB in all. */
		int len = snprintf(body, sizeof(body), "From: <src@client."
		    "bench.test>\r\nTo: <%s>\r\nMessage-Id: <%lld.%d@steps>\r\n"
		    "Subject: steps\r\n\r\n", rcpt, t0, m);
		if (len < 0 || (size_t)len >= sizeof(body))
			return 1;
		static const char line[] = "abcdefghijklmnopqrstuvwxyz"
		    "0123456789abcdefghijklmnopqrstuvwxyz0123456789\r\n";
		while ((size_t)len + sizeof(line) - 1 <= 2048) {
			memcpy(body + len, line, sizeof(line) - 1);
			len += (int)sizeof(line) - 1;
		}
		memcpy(body + len, ".\r\n", 3);
		len += 3;
		static const char ehlo[] = "EHLO client.bench.test\r\n",
		    mail[] = "MAIL FROM:<src@client.bench.test>\r\n",
		    data[] = "DATA\r\n", quit[] = "QUIT\r\n";
		if ((t[EHLO][m] = step(fd, ehlo, sizeof(ehlo) - 1, 250)) < 0 ||
		    (t[MAIL][m] = step(fd, mail, sizeof(mail) - 1, 250)) < 0 ||
		    (t[RCPT][m] = step(fd, rcpt_cmd, strlen(rcpt_cmd),
		    250)) < 0 ||
		    (t[DATA][m] = step(fd, data, sizeof(data) - 1, 354)) < 0 ||
		    (t[BODY][m] = step(fd, body, (size_t)len, 250)) < 0 ||
		    (t[QUIT][m] = step(fd, quit, sizeof(quit) - 1, 221)) < 0)
			goto failed;
		long long t2 = now_ns();
		close(fd);
		t[CLOSE][m] = now_ns() - t2;
	}

	double total = 0;
	printf("step     p50_us  p10_us  p90_us  mean_us\n");
	for (int i = 0; i < NSTEPS; i++) {
		double sum = 0;
		for (int k = 0; k < n; k++)
			sum += (double)t[i][k];
		qsort(t[i], (size_t)n, sizeof(long long), cmp_ll);
		printf("%-8s %7.1f %7.1f %7.1f %8.1f\n", step_names[i],
		    (double)t[i][n / 2] / 1e3, (double)t[i][n / 10] / 1e3,
		    (double)t[i][n * 9 / 10] / 1e3, sum / n / 1e3);
		total += sum / n;
	}
	printf("mean per message %.1f us (%.1f msgs/s)\n", total / 1e3,
	    1e9 / total);
	return 0;
failed:
	fprintf(stderr, "smtp-steps: unexpected reply or none\n");
	return 1;
usage:
	fprintf(stderr, "usage: smtp-steps [-n CONNECTIONS] [-t RCPT] "
	    "HOST-IPV4 PORT\n");
	return 2;
}
