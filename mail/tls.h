/*
 * tls.h - TLS over a struct bio, with OpenSSL 3, for both ends: the
 * server side of smtpd (STARTTLS, implicit TLS on smtps) and the client
 * side of deliver (opportunistic STARTTLS).
 *
 * After a successful tls_start() the bio reads and writes through TLS:
 * the line reader, its bounds and its deadlines work unchanged above it.
 * The caller owns the policy (which context, what to verify, what to
 * log); this module owns the plumbing (non-blocking handshake with a
 * deadline, the bio ops, the "TLSv1.3 with cipher ..." description).
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "bio.h"
#include "cfg.h"

/*
 * What a context may negotiate, from Postfix-style settings:
 * *_tls_protocols (">=TLSv1.2", "<=TLSv1.3", "!SSLv3, !TLSv1" or bare
 * names, mixed as Postfix allows) and *_tls_ciphers (a grade: "high" or
 * "medium"; see postern.conf(5) for what each admits). The protocols must
 * form one unbroken range; SSLv2 and SSLv3 are never offered.
 */
struct tls_policy {
	int min_version;	/* e.g. TLS1_2_VERSION */
	int max_version;	/* 0: the newest OpenSSL has */
	const char *ciphers;	/* OpenSSL cipher list for TLS 1.2 and older */
};

bool tls_policy_parse(const struct cfg_list *protocols, const char *grade,
    struct tls_policy *policy, char *err, size_t errsize);

/*
 * A server context: certificate chain and private key from PEM files,
 * smtpd_tls_protocols and smtpd_tls_ciphers (by default TLS 1.2 and 1.3,
 * forward-secret AEAD suites only), the server's cipher preference, no
 * compression, no renegotiation, no session tickets unless the caller
 * gives the keys all pre-forked processes share (tls_ticket.h). NULL with err naming the file or key that failed.
 * It reads ahead (a client's flight in one read(2)); the bio's pending
 * op counts the records so held, so nothing waits on the socket for them.
 */
SSL_CTX *tls_server_context(const char *cert_file, const char *key_file,
    char *err, size_t errsize);

/* A client context with smtp_tls_protocols and smtp_tls_ciphers;
 * verification is the caller's. NULL if those are not valid. */
SSL_CTX *tls_client_context(void);

enum tls_role {
	TLS_ROLE_CLIENT,
	TLS_ROLE_SERVER,
};

/*
 * Handshake on b's (non-blocking) fd within timeout_ms. sni is the server
 * name a client sends (NULL: none). On success b reads and writes through
 * TLS; on failure b is untouched and err says why.
 */
bool tls_start(struct bio *b, SSL_CTX *ctx, enum tls_role role,
    const char *sni, int timeout_ms, char *err, size_t errsize);

/*
 * The same with an SSL the caller made from its context and set up
 * (names to verify, per-destination protocols); owns ssl from here on,
 * also on failure.
 */
bool tls_start_ssl(struct bio *b, SSL *ssl, enum tls_role role,
    int timeout_ms, char *err, size_t errsize);

/* Is b running over TLS? */
bool tls_active(const struct bio *b);

/* The SSL under b, to judge its peer; NULL if b is plain. */
SSL *tls_ssl(const struct bio *b);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", the shape
 * Postfix logs and writes into Received headers; "" if b is plain. */
void tls_describe(const struct bio *b, char *out, size_t outsize);

/* One try at close_notify (never waits for the peer's), then free the
 * TLS state; b afterwards fails every read and write. */
void tls_end(struct bio *b);

#endif
