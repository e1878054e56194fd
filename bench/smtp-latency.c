/*
 * smtp-latency - a load client that measures how long a server takes to
 * acknowledge a message: the time from the client's end of DATA (the
 * lone "." line written) to the server's final reply. That interval holds
 * everything a durable MTA does before it may say 250: parse the rest of
 * the message, write the queue file, fsync it and its directory.
 *
 * It speaks plain SMTP like Postfix's smtp-source (no pipelining, EHLO,
 * one recipient), with S sessions in parallel (threads) sending M messages
 * in all, a new connection per message unless -d. Each message carries a
 * unique Message-Id so the counting sink can tell lost from duplicated.
 *
 * With -S every connection does STARTTLS (RFC 3207) after the first EHLO
 * and says EHLO again inside TLS, so the handshake is part of each
 * message's cost, as it is for MX traffic; with -R too, each session keeps
 * the TLS session its last connection got and offers it on the next one
 * (a ticket or a session ID, RFC 8446 2.2 / RFC 5077), as a sending MTA
 * with a session cache does. The server's certificate is not verified:
 * this measures the server, on loopback. The client's own CPU time is
 * printed (client_cpu_s) so a reader can see it was not the bottleneck.
 *
 * Trusts: the server's replies only as far as their 3-digit code; every
 * read has a timeout so a stuck server cannot hang the benchmark.
 *
 * Output: one line of key=value pairs, for bench/run:
 *   sent=500 ok=500 failed=0 seconds=1.52 rate=328.9 p50_ms=1.90 p90_ms=2.4 p99_ms=4.10 max_ms=9.8
 *   (with -S also: tls=500 resumed=0 ecdsa=0 client_cpu_s=0.80; ecdsa counts
 *   the handshakes whose server certificate had an EC key)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench_stats.h"

#define REPLY_TIMEOUT_S 120
#define RBUF_SIZE 4096
#define HDR_ROOM 1024		/* room for a message's header lines */

struct session {
	pthread_t thread;
	int id;
	int fd;
	SSL *ssl;		/* inside STARTTLS, else NULL */
	SSL_SESSION *last_session;	/* -R: offered on the next connection */
	unsigned long tls, resumed, ecdsa;	/* handshakes, of them resumed, with an EC server key */
	char rbuf[RBUF_SIZE];
	size_t rlen, rpos;
	char *msg;		/* HDR_ROOM, then the body: header written before it */
	double *lat_ms;
	size_t nlat;
	unsigned long ok, failed;
	char last_error[256];
};

static struct sockaddr_in server;
static const char *from_addr = "bench@source.bench.test";
static const char *to_addr = "bench@relay.bench.test";
static const char *helo_name = "source.bench.test";
static const char *tag = "lat";
static size_t body_len = 2048;
static long total_messages = 100;
static bool keep_connection;
static bool use_starttls;		/* -S */
static bool resume_sessions;		/* -R */
static SSL_CTX *tls_ctx;
static atomic_long next_message;
static long my_pid;		/* in every Message-Id, looked up once */
static char *body;		/* body lines, CRLF, without the final "." */
static size_t body_size;

static int write_all(struct session *s, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n;

		if (s->ssl != NULL) {
			int w = SSL_write(s->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

			if (w <= 0)
				return -1;
			n = w;
		} else {
			n = send(s->fd, buf, len, MSG_NOSIGNAL);
		}

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one reply (all its lines); returns its code, or -1 on error. */
static int read_reply(struct session *s)
{
	char line[1024];
	size_t llen = 0;

	for (;;) {
		if (s->rpos == s->rlen) {
			ssize_t n;

			if (s->ssl != NULL) {
				int r = SSL_read(s->ssl, s->rbuf, (int)sizeof(s->rbuf));

				n = r > 0 ? r : (SSL_get_error(s->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
			} else {
				n = recv(s->fd, s->rbuf, sizeof(s->rbuf), 0);
			}

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				snprintf(s->last_error, sizeof(s->last_error), "read: %s",
				    n == 0 ? "connection closed" : strerror(errno));
				return -1;
			}
			s->rpos = 0;
			s->rlen = (size_t)n;
		}
		char ch = s->rbuf[s->rpos++];

		if (ch != '\n') {
			if (llen < sizeof(line) - 1)
				line[llen++] = ch;
			continue;
		}
		line[llen] = '\0';
		if (llen < 3) {
			snprintf(s->last_error, sizeof(s->last_error), "short reply line");
			return -1;
		}
		if (llen >= 4 && line[3] == '-') {
			llen = 0;
			continue;	/* continuation line of a multi-line reply */
		}
		if (line[0] < '2' || line[0] > '5') {
			snprintf(s->last_error, sizeof(s->last_error), "bad reply");
			return -1;
		}
		if (line[0] >= '4') {
			if (line[llen - 1] == '\r')
				line[llen - 1] = '\0';
			snprintf(s->last_error, sizeof(s->last_error), "%.200s", line);
		}
		return atoi(line);
	}
}

/* Sends one command and checks the reply class. */
static bool command(struct session *s, const char *cmd, int want_class)
{
	int code;

	if (write_all(s, cmd, strlen(cmd)) < 0) {
		snprintf(s->last_error, sizeof(s->last_error), "write: %s", strerror(errno));
		return false;
	}
	code = read_reply(s);
	return code / 100 == want_class;
}

/*
 * -R: a new session (under TLS 1.3, a ticket arriving after the
 * handshake) replaces the one the session thread keeps; returning 1 keeps
 * the reference.
 */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct session *s = SSL_get_app_data(ssl);

	SSL_SESSION_free(s->last_session);
	s->last_session = sess;
	return 1;
}

static void disconnect(struct session *s)
{
	if (s->ssl != NULL) {
		SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->rpos = s->rlen = 0;
}

/*
 * STARTTLS and the second EHLO. Under TLS 1.3 the ticket arrives after the
 * handshake, with the server's first records: by the time the session
 * ends (QUIT's reply read) it is there for SSL_get1_session.
 */
static bool start_tls(struct session *s, const char *ehlo)
{
	if (!command(s, "STARTTLS\r\n", 2))
		return false;
	if (s->rpos != s->rlen) {
		snprintf(s->last_error, sizeof(s->last_error), "data after STARTTLS reply");
		return false;
	}
	s->ssl = SSL_new(tls_ctx);
	if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
		snprintf(s->last_error, sizeof(s->last_error), "SSL_new failed");
		return false;
	}
	SSL_set_app_data(s->ssl, s);
	if (resume_sessions && s->last_session != NULL)
		SSL_set_session(s->ssl, s->last_session);
	if (SSL_connect(s->ssl) != 1) {
		unsigned long e = ERR_get_error();

		snprintf(s->last_error, sizeof(s->last_error), "TLS handshake: %s",
		    e ? ERR_reason_error_string(e) : "failed");
		ERR_clear_error();
		return false;
	}
	s->tls++;
	if (SSL_session_reused(s->ssl))
		s->resumed++;
	X509 *peer = SSL_get0_peer_certificate(s->ssl);
	if (peer != NULL && EVP_PKEY_get_base_id(X509_get0_pubkey(peer)) == EVP_PKEY_EC)
		s->ecdsa++;
	return command(s, ehlo, 2);
}

static bool connect_session(struct session *s)
{
	struct timeval tv = { REPLY_TIMEOUT_S, 0 };
	char ehlo[300];
	int one = 1;

	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		snprintf(s->last_error, sizeof(s->last_error), "socket: %s", strerror(errno));
		return false;
	}
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* Like a real client: the lone "." must not wait for a delayed ACK. */
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&server, sizeof(server)) < 0) {
		snprintf(s->last_error, sizeof(s->last_error), "connect: %s", strerror(errno));
		disconnect(s);
		return false;
	}
	if (read_reply(s) / 100 != 2)
		goto fail;
	snprintf(ehlo, sizeof(ehlo), "EHLO %s\r\n", helo_name);
	if (!command(s, ehlo, 2))
		goto fail;
	if (use_starttls && !start_tls(s, ehlo))
		goto fail;
	return true;
fail:
	disconnect(s);
	return false;
}

/* One transaction; records the end-of-DATA latency on success. */
static bool send_message(struct session *s, long seq)
{
	char cmd[600];
	char *body_at = s->msg + HDR_ROOM;
	double t0, t1;
	int code;

	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\n", from_addr);
	if (!command(s, cmd, 2))
		return false;
	snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", to_addr);
	if (!command(s, cmd, 2))
		return false;
	if (!command(s, "DATA\r\n", 3))
		return false;
	/*
	 * Header and body leave in one write (one TLS record, one segment),
	 * as a client with a send buffer writes them; the lone "." stays a
	 * write of its own, where the latency starts.
	 */
	char hdr[HDR_ROOM];
	int hlen = snprintf(hdr, sizeof(hdr),
	    "From: <%s>\r\nTo: <%s>\r\nSubject: bench %s %ld\r\n"
	    "Message-Id: <%s.%ld.%ld@source.bench.test>\r\n\r\n",
	    from_addr, to_addr, tag, seq, tag, my_pid, seq);
	if (hlen < 0 || hlen >= HDR_ROOM) {
		snprintf(s->last_error, sizeof(s->last_error), "header too long");
		return false;
	}
	memcpy(body_at - hlen, hdr, (size_t)hlen);
	if (write_all(s, body_at - hlen, (size_t)hlen + body_size) < 0) {
		snprintf(s->last_error, sizeof(s->last_error), "write: %s", strerror(errno));
		return false;
	}
	t0 = now_s();
	if (write_all(s, ".\r\n", 3) < 0) {
		snprintf(s->last_error, sizeof(s->last_error), "write: %s", strerror(errno));
		return false;
	}
	code = read_reply(s);
	t1 = now_s();
	if (code / 100 != 2)
		return false;
	s->lat_ms[s->nlat++] = (t1 - t0) * 1000.0;
	return true;
}

static void *session_main(void *arg)
{
	struct session *s = arg;

	s->fd = -1;
	for (;;) {
		long seq = atomic_fetch_add(&next_message, 1);

		if (seq >= total_messages)
			break;
		if (s->fd < 0 && !connect_session(s)) {
			s->failed++;
			continue;
		}
		if (send_message(s, seq)) {
			s->ok++;
		} else {
			s->failed++;
			disconnect(s);
			continue;
		}
		if (!keep_connection) {
			command(s, "QUIT\r\n", 2);
			disconnect(s);
		}
	}
	if (s->fd >= 0) {
		command(s, "QUIT\r\n", 2);
		disconnect(s);
	}
	return NULL;
}

/* Body of about body_len octets: lines of 76 'X' (and one shorter). */
static void build_body(void)
{
	size_t lines = body_len / 78 + 2, pos = 0;

	body = malloc(lines * 78 + 1);
	if (body == NULL) {
		fprintf(stderr, "smtp-latency: out of memory\n");
		exit(1);
	}
	while (pos < body_len) {
		size_t n = body_len - pos >= 78 ? 76 : (body_len - pos > 2 ? body_len - pos - 2 : 1);

		memset(body + pos, 'X', n);
		memcpy(body + pos + n, "\r\n", 2);
		pos += n + 2;
	}
	body_size = pos;
}

static void usage(void)
{
	fprintf(stderr, "usage: smtp-latency [-dSR] [-s sessions] [-m messages] [-l bytes]\n"
	    "    [-f from] [-t to] [-M helo] [-T tag] host:port\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int nsessions = 1, opt;
	struct session *sessions;
	char host[256], *colon;
	double t0, elapsed, *all;
	size_t nall = 0;
	unsigned long ok = 0, failed = 0;

	while ((opt = getopt(argc, argv, "dSRs:m:l:f:t:M:T:")) != -1) {
		switch (opt) {
		case 'd':
			keep_connection = true;
			break;
		case 'S':
			use_starttls = true;
			break;
		case 'R':
			resume_sessions = true;
			break;
		case 's':
			nsessions = atoi(optarg);
			break;
		case 'm':
			total_messages = atol(optarg);
			break;
		case 'l':
			body_len = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			from_addr = optarg;
			break;
		case 't':
			to_addr = optarg;
			break;
		case 'M':
			helo_name = optarg;
			break;
		case 'T':
			tag = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || nsessions < 1 || nsessions > 10000 ||
	    total_messages < 1 || body_len > 512 * 1024 * 1024 ||
	    strlen(from_addr) > 256 || strlen(to_addr) > 256 || strlen(tag) > 64)
		usage();
	snprintf(host, sizeof(host), "%s", argv[optind]);
	colon = strrchr(host, ':');
	if (colon == NULL)
		usage();
	*colon = '\0';
	server.sin_family = AF_INET;
	server.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &server.sin_addr) != 1)
		usage();

	if (resume_sessions && !use_starttls)
		usage();
	if (use_starttls) {
		tls_ctx = SSL_CTX_new(TLS_client_method());
		if (tls_ctx == NULL) {
			fprintf(stderr, "smtp-latency: SSL_CTX_new failed\n");
			return 1;
		}
		SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
		/* Whole flights per read(2), not a record header and then its
		 * body: the load's own system calls compete for the cores. */
		SSL_CTX_set_read_ahead(tls_ctx, 1);
		/* Sessions are kept per thread (-R) by the callback, not in
		 * OpenSSL's shared cache: a sending MTA keeps one per peer. */
		if (resume_sessions) {
			SSL_CTX_set_session_cache_mode(tls_ctx,
			    SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
			SSL_CTX_sess_set_new_cb(tls_ctx, on_new_session);
		} else {
			SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
		}
	}
	build_body();
	my_pid = (long)getpid();
	sessions = calloc((size_t)nsessions, sizeof(*sessions));
	if (sessions == NULL) {
		fprintf(stderr, "smtp-latency: out of memory\n");
		return 1;
	}
	for (int i = 0; i < nsessions; i++) {
		sessions[i].id = i;
		sessions[i].lat_ms = calloc((size_t)total_messages, sizeof(double));
		sessions[i].msg = malloc(HDR_ROOM + body_size);
		if (sessions[i].lat_ms == NULL || sessions[i].msg == NULL) {
			fprintf(stderr, "smtp-latency: out of memory\n");
			return 1;
		}
		memcpy(sessions[i].msg + HDR_ROOM, body, body_size);
	}
	t0 = now_s();
	for (int i = 0; i < nsessions; i++)
		if (pthread_create(&sessions[i].thread, NULL, session_main, &sessions[i]) != 0) {
			fprintf(stderr, "smtp-latency: pthread_create failed\n");
			return 1;
		}
	for (int i = 0; i < nsessions; i++)
		pthread_join(sessions[i].thread, NULL);
	elapsed = now_s() - t0;

	all = calloc((size_t)total_messages, sizeof(double));
	if (all == NULL) {
		fprintf(stderr, "smtp-latency: out of memory\n");
		return 1;
	}
	for (int i = 0; i < nsessions; i++) {
		memcpy(all + nall, sessions[i].lat_ms, sessions[i].nlat * sizeof(double));
		nall += sessions[i].nlat;
		ok += sessions[i].ok;
		failed += sessions[i].failed;
		if (sessions[i].failed > 0)
			fprintf(stderr, "smtp-latency: session %d: %lu failed, last: %s\n",
			    i, sessions[i].failed, sessions[i].last_error);
	}
	sort_samples(all, nall);
	printf("sent=%ld ok=%lu failed=%lu seconds=%.2f rate=%.1f p50_ms=%.2f "
	    "p90_ms=%.2f p99_ms=%.2f max_ms=%.2f",
	    total_messages, ok, failed, elapsed, (double)ok / elapsed,
	    percentile(all, nall, 50), percentile(all, nall, 90),
	    percentile(all, nall, 99), nall ? all[nall - 1] : 0.0);
	if (use_starttls) {
		unsigned long tls = 0, resumed = 0, ecdsa = 0;
		struct rusage ru;

		for (int i = 0; i < nsessions; i++) {
			tls += sessions[i].tls;
			resumed += sessions[i].resumed;
			ecdsa += sessions[i].ecdsa;
		}
		getrusage(RUSAGE_SELF, &ru);
		printf(" tls=%lu resumed=%lu ecdsa=%lu client_cpu_s=%.2f", tls, resumed, ecdsa,
		    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	}
	printf("\n");
	return failed > 0;
}
