/*
 * dkim_sign.h - DKIM signatures (RFC 6376) made with rsa-sha256 and
 * ed25519-sha256 (RFC 8463), relaxed/relaxed, without l=.
 *
 * A signer takes one message as a stream of bytes, exactly as it will go
 * out: it keeps the header section (bounded by DKIM_MAX_HEADER) and
 * hashes the body once, whatever the number of keys it then signs with.
 * dkim_signer_sign() adds one "DKIM-Signature:" field per key; they go
 * before the message.
 */
#ifndef POSTERN_DKIM_SIGN_H
#define POSTERN_DKIM_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "str.h"

/* A header section larger than this is not signed. */
#define DKIM_MAX_HEADER (1024 * 1024)

enum dkim_alg {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,
};

/* A private key as `openssl genpkey` writes it (PEM, RSA or Ed25519). */
struct dkim_key;
struct dkim_key *dkim_key_load(const char *path, char *err, size_t errsize);
/* A new key: RSA of bits bits, or Ed25519 (bits ignored). */
struct dkim_key *dkim_key_generate(enum dkim_alg alg, int bits, char *err,
    size_t errsize);
/* Write it as PKCS#8 PEM to fd. */
bool dkim_key_write_pem(const struct dkim_key *k, int fd, char *err,
    size_t errsize);
void dkim_key_free(struct dkim_key *k);
enum dkim_alg dkim_key_alg(const struct dkim_key *k);
/* "rsa-sha256" or "ed25519-sha256" (the a= tag). */
const char *dkim_alg_name(enum dkim_alg alg);
/* The DNS key record's p= value (RFC 6376 3.6.1, RFC 8463 4.2), and its
 * k= (rsa or ed25519); malloc'd. */
char *dkim_key_public_b64(const struct dkim_key *k);
const char *dkim_key_type_name(const struct dkim_key *k);

struct dkim_signer;
struct dkim_signer *dkim_signer_new(void);
void dkim_signer_free(struct dkim_signer *s);
/* The message, in pieces, in order, CRLF line ends. */
void dkim_signer_update(void *signer, const char *data, size_t len);
/*
 * After the whole message: the domain of the From: field's address,
 * lowercased, or NULL (no From:, several, no address, header too large).
 */
const char *dkim_signer_from_domain(struct dkim_signer *s);
/*
 * Append one DKIM-Signature field (with its CRLF) for domain d, selector
 * s, signed with key at time now. false with err.
 */
bool dkim_signer_sign(struct dkim_signer *s, const char *domain,
    const char *selector, const struct dkim_key *key, time_t now,
    struct str *out, char *err, size_t errsize);

#endif
