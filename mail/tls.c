/*
 * tls.c - TLS over a struct bio with OpenSSL 3 (see tls.h).
 *
 * Trusts the config (certificate and key paths, protocol and cipher
 * settings, checked when it is loaded) and OpenSSL; the peer is
 * untrusted: the handshake has a deadline, and every failure becomes a
 * message for the caller's log, never a crash. The socket is
 * non-blocking; SSL_read/SSL_write report what they wait for and the bio
 * polls for that (struct bio_ops.want).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "mem.h"
#include "tls.h"

struct tls_conn {
	SSL *ssl;
	short want;		/* poll events SSL is waiting for */
};

/* The newest OpenSSL error as text, or fallback; clears the queue. */
static void openssl_error(char *out, size_t outsize, const char *fallback)
{
	unsigned long code = ERR_get_error();
	if (code != 0)
		ERR_error_string_n(code, out, outsize);
	else
		snprintf(out, outsize, "%s", fallback);
	ERR_clear_error();
}

/* Apply a policy to ctx; false with err (OpenSSL's words) on failure. */
static bool apply_policy(SSL_CTX *ctx, const struct tls_policy *p,
    char *err, size_t errsize)
{
	char why[256];
	if (SSL_CTX_set_min_proto_version(ctx, p->min_version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, p->max_version) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, p->ciphers) != 1) {
		openssl_error(why, sizeof(why), "rejected by OpenSSL");
		snprintf(err, errsize, "cannot apply the TLS protocols or "
		    "ciphers: %s", why);
		return false;
	}
	return true;
}

/*
 * One certificate chain and its key. Called twice for a dual setup (an
 * RSA and an ECDSA certificate, as Postfix's smtpd_tls_eccert_file):
 * OpenSSL keeps one slot per key type and picks, per handshake, the one
 * the client's signature algorithms allow.
 */
static bool load_key_pair(SSL_CTX *ctx, const char *cert_file,
    const char *key_file, char *err, size_t errsize)
{
	char why[256];
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		openssl_error(why, sizeof(why), "unreadable");
		snprintf(err, errsize, "cannot load certificate %s: %s",
		    cert_file, why);
		return false;
	}
	/*
	 * The key goes to the slot of its own type, so a key of the wrong
	 * type would pass SSL_CTX_check_private_key against the other
	 * certificate: check it against this chain's leaf first.
	 */
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	EVP_PKEY *key = NULL;
	BIO *in = BIO_new_file(key_file, "r");
	if (in != NULL)
		key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	BIO_free(in);
	if (key == NULL) {
		openssl_error(why, sizeof(why), "unreadable");
		snprintf(err, errsize, "cannot load private key %s: %s",
		    key_file, why);
		return false;
	}
	bool ok = leaf != NULL && X509_check_private_key(leaf, key) == 1;
	if (!ok) {
		openssl_error(why, sizeof(why), "mismatch");
		snprintf(err, errsize, "private key %s does not match "
		    "certificate %s: %s", key_file, cert_file, why);
	} else if (SSL_CTX_use_PrivateKey(ctx, key) != 1) {
		openssl_error(why, sizeof(why), "rejected");
		snprintf(err, errsize, "cannot use private key %s: %s",
		    key_file, why);
		ok = false;
	}
	EVP_PKEY_free(key);
	return ok;
}

SSL_CTX *tls_server_context(const char *cert_file, const char *key_file,
    char *err, size_t errsize)
{
	char why[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		openssl_error(why, sizeof(why), "out of memory");
		snprintf(err, errsize, "cannot create a TLS context: %s", why);
		return NULL;
	}
	struct tls_policy policy;
	if (!tls_policy_parse(&cfg.smtpd_tls_protocols, cfg.smtpd_tls_ciphers,
	    &policy, why, sizeof(why))) {
		snprintf(err, errsize, "smtpd_tls_protocols or "
		    "smtpd_tls_ciphers: %s", why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (!apply_policy(ctx, &policy, err, errsize)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_TICKET);
	/* Each pre-forked process would have its own ticket key and cache:
	 * resumption could not work, so offer none, unless the caller then
	 * gives the shared keys (tls_ticket_keys_use). */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/*
	 * Read what the socket holds, not a record header and then its
	 * body: one read(2) per client flight instead of two per record
	 * (tls_pending then counts the bytes read ahead, so the bio does
	 * not wait on a socket whose data OpenSSL already holds).
	 */
	SSL_CTX_set_read_ahead(ctx, 1);
	if (!load_key_pair(ctx, cert_file, key_file, err, errsize) ||
	    (cfg.tls_eccert_file[0] != '\0' && !load_key_pair(ctx,
	    cfg.tls_eccert_file, cfg.tls_eckey_file, err, errsize))) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL_CTX *tls_client_context(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		ERR_clear_error();
		return NULL;
	}
	struct tls_policy policy;
	char err[256];
	if (!tls_policy_parse(&cfg.smtp_tls_protocols, cfg.smtp_tls_ciphers,
	    &policy, err, sizeof(err)) ||
	    !apply_policy(ctx, &policy, err, sizeof(err))) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
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
	if (t == NULL) {
		errno = EPIPE;	/* after tls_end() */
		return -1;
	}
	errno = 0;
	ERR_clear_error();
	return tls_result(t, SSL_read(t->ssl, buf, len > INT32_MAX ?
	    INT32_MAX : (int)len));
}

static ssize_t tls_write(struct bio *b, const void *buf, size_t len)
{
	struct tls_conn *t = b->transport;
	if (t == NULL) {
		errno = EPIPE;
		return -1;
	}
	errno = 0;
	ERR_clear_error();
	return tls_result(t, SSL_write(t->ssl, buf, len > INT32_MAX ?
	    INT32_MAX : (int)len));
}

/*
 * Bytes SSL_read can return without waiting for the socket: decrypted
 * ones, or at least 1 if records read ahead are still undecrypted (a
 * poll on the fd would not see those and could wait forever).
 */
static size_t tls_pending(struct bio *b)
{
	struct tls_conn *t = b->transport;
	if (t == NULL)
		return 0;
	int n = SSL_pending(t->ssl);
	return n > 0 ? (size_t)n : SSL_has_pending(t->ssl) ? 1 : 0;
}

static short tls_want(struct bio *b)
{
	struct tls_conn *t = b->transport;
	return t ? t->want : 0;
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

bool tls_start(struct bio *b, SSL_CTX *ctx, enum tls_role role,
    const char *sni, int timeout_ms, char *err, size_t errsize)
{
	if (ctx == NULL) {
		snprintf(err, errsize, "no TLS context");
		return false;
	}
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL) {
		openssl_error(err, errsize, "cannot set up TLS");
		return false;
	}
	if (role == TLS_ROLE_CLIENT && sni != NULL && *sni != '\0')
		SSL_set_tlsext_host_name(ssl, sni);
	return tls_start_ssl(b, ssl, role, timeout_ms, err, errsize);
}

bool tls_start_ssl(struct bio *b, SSL *ssl, enum tls_role role,
    int timeout_ms, char *err, size_t errsize)
{
	struct tls_conn *t = xcalloc(1, sizeof(*t));
	t->ssl = ssl;
	if (SSL_set_fd(t->ssl, b->fd) != 1) {
		openssl_error(err, errsize, "cannot set up TLS");
		SSL_free(t->ssl);
		free(t);
		return false;
	}

	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int r = role == TLS_ROLE_SERVER ? SSL_accept(t->ssl) :
		    SSL_connect(t->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(t->ssl, r);
		short events = e == SSL_ERROR_WANT_READ ? POLLIN :
		    e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
		long long left = deadline - now_ms();
		if (events == 0 || left <= 0) {
			if (events != 0)
				snprintf(err, errsize, "timeout");
			else if (e == SSL_ERROR_SYSCALL && errno != 0)
				snprintf(err, errsize, "%s", strerror(errno));
			else
				openssl_error(err, errsize, "lost connection");
			ERR_clear_error();
			SSL_free(t->ssl);
			free(t);
			return false;
		}
		struct pollfd pfd = { .fd = b->fd, .events = events };
		if (poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left) < 0 &&
		    errno != EINTR) {
			snprintf(err, errsize, "poll: %s", strerror(errno));
			SSL_free(t->ssl);
			free(t);
			return false;
		}
	}
	b->transport = t;
	b->ops = &tls_ops;
	return true;
}

bool tls_active(const struct bio *b)
{
	return b->ops == &tls_ops && b->transport != NULL;
}

SSL *tls_ssl(const struct bio *b)
{
	return tls_active(b) ? ((struct tls_conn *)b->transport)->ssl : NULL;
}

void tls_describe(const struct bio *b, char *out, size_t outsize)
{
	if (!tls_active(b)) {
		if (outsize > 0)
			out[0] = '\0';
		return;
	}
	struct tls_conn *t = b->transport;
	int alg_bits = 0;
	const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
	int bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
	snprintf(out, outsize, "%s with cipher %s (%d/%d bits)",
	    SSL_get_version(t->ssl), SSL_CIPHER_get_name(cipher), bits,
	    alg_bits);
}

void tls_end(struct bio *b)
{
	if (b->ops != &tls_ops || b->transport == NULL)
		return;
	struct tls_conn *t = b->transport;
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	ERR_clear_error();
	SSL_free(t->ssl);
	free(t);
	b->transport = NULL;
}
