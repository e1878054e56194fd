/*
 * deliver_tls.c - opportunistic STARTTLS for the SMTP/LMTP client
 * (RFC 3207), with OpenSSL 3.
 *
 * Opportunistic means Postfix's "may" level: encrypt when the peer offers
 * it, verify no certificate (an unauthenticated MX cannot be checked
 * without DANE or MTA-STS), and fall back to plain text when the
 * handshake fails. It protects against passive eavesdropping only; the
 * log says "Untrusted" so nobody reads more into it.
 *
 * The TLS layer plugs into struct bio through its ops table: the line
 * reader and its deadlines work unchanged above it. The socket is
 * non-blocking; SSL_read/SSL_write report what they wait for and the bio
 * polls for that.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "deliver.h"
#include "log.h"
#include "mem.h"

struct tls_conn {
	SSL *ssl;
	short want;		/* poll events SSL is waiting for */
};

static SSL_CTX *tls_ctx;

void tls_client_init(void)
{
	if (tls_ctx != NULL)
		return;
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (tls_ctx == NULL) {
		log_warning("cannot create a TLS client context: STARTTLS "
		    "disabled");
		return;
	}
	/* Opportunistic: an unverified channel beats a plain one. */
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/* Map an SSL result to read(2)/write(2) conventions for the bio. */
static ssize_t tls_result(struct tls_conn *t, int n)
{
	if (n > 0) {
		t->want = 0;
		return n;
	}
	switch (SSL_get_error(t->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		t->want = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		t->want = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;	/* close_notify: EOF */
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			return 0;	/* EOF without close_notify */
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

static ssize_t tls_read(struct bio *b, void *buf, size_t len)
{
	struct tls_conn *t = b->transport;
	errno = 0;
	ERR_clear_error();
	return tls_result(t, SSL_read(t->ssl, buf, len > INT32_MAX ?
	    INT32_MAX : (int)len));
}

static ssize_t tls_write(struct bio *b, const void *buf, size_t len)
{
	struct tls_conn *t = b->transport;
	errno = 0;
	ERR_clear_error();
	return tls_result(t, SSL_write(t->ssl, buf, len > INT32_MAX ?
	    INT32_MAX : (int)len));
}

static size_t tls_pending(struct bio *b)
{
	struct tls_conn *t = b->transport;
	return (size_t)SSL_pending(t->ssl);
}

static short tls_want(struct bio *b)
{
	struct tls_conn *t = b->transport;
	return t->want;
}

static const struct bio_ops tls_ops = {
	.read = tls_read,
	.write = tls_write,
	.pending = tls_pending,
	.want = tls_want,
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool tls_client_start(struct deliver_session *s, int timeout_ms,
    char *info, size_t infosize, char *err, size_t errsize)
{
	if (tls_ctx == NULL) {
		snprintf(err, errsize, "no TLS client context");
		return false;
	}
	struct tls_conn *t = xcalloc(1, sizeof(*t));
	t->ssl = SSL_new(tls_ctx);
	if (t->ssl == NULL || SSL_set_fd(t->ssl, s->fd) != 1) {
		snprintf(err, errsize, "cannot set up TLS");
		if (t->ssl)
			SSL_free(t->ssl);
		free(t);
		return false;
	}
	/* SNI: some servers pick their certificate by it. */
	if (s->host[0] != '\0' && strchr(s->host, '/') == NULL)
		SSL_set_tlsext_host_name(t->ssl, s->host);

	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_connect(t->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(t->ssl, r);
		short events = e == SSL_ERROR_WANT_READ ? POLLIN :
		    e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
		long long left = deadline - now_ms();
		if (events == 0 || left <= 0) {
			unsigned long code = ERR_get_error();
			if (left <= 0)
				snprintf(err, errsize, "timeout");
			else if (code != 0)
				ERR_error_string_n(code, err, errsize);
			else if (e == SSL_ERROR_SYSCALL && errno != 0)
				snprintf(err, errsize, "%s", strerror(errno));
			else
				snprintf(err, errsize, "lost connection");
			SSL_free(t->ssl);
			free(t);
			return false;
		}
		struct pollfd pfd = { .fd = s->fd, .events = events };
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			snprintf(err, errsize, "poll: %s", strerror(errno));
			SSL_free(t->ssl);
			free(t);
			return false;
		}
	}

	int alg_bits = 0;
	const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
	int bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
	snprintf(info, infosize, "%s with cipher %s (%d/%d bits)",
	    SSL_get_version(t->ssl), SSL_CIPHER_get_name(cipher), bits,
	    alg_bits);
	s->tls = t;
	s->bio.transport = t;
	s->bio.ops = &tls_ops;
	return true;
}

void tls_client_end(struct deliver_session *s)
{
	struct tls_conn *t = s->tls;
	if (t == NULL)
		return;
	/* One try at close_notify; never wait for the peer's. */
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	SSL_free(t->ssl);
	free(t);
	s->tls = NULL;
	s->bio.transport = NULL;
}
