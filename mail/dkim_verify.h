/*
 * dkim_verify.h - DKIM verification (RFC 6376 6; rsa-sha256, and
 * ed25519-sha256 of RFC 8463) of a message held in memory. Everything in
 * the message and in the key records is untrusted: at most
 * DKIM_MAX_SIGNATURES signatures are looked at, one key lookup each, RSA
 * keys under 1024 bits are refused (RFC 8301 3.2), rsa-sha1 is not
 * accepted, and the body is hashed once per canonicalization and length.
 */
#ifndef POSTERN_DKIM_VERIFY_H
#define POSTERN_DKIM_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "dns.h"

#define DKIM_MAX_SIGNATURES 5

/* Results as RFC 8601 2.7.1 names them. */
enum dkim_verdict {
	DKIM_PASS,
	DKIM_FAIL,
	DKIM_NEUTRAL,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
};

struct dkim_result {
	enum dkim_verdict verdict;
	char domain[256];		/* d= */
	char selector[64];		/* s= */
	char alg[24];			/* a= */
	char identity[256];		/* i=, "" when absent */
	char b_prefix[16];		/* b='s first 8 characters (RFC 6008) */
	char why[200];
};

/* Fetch the TXT record of name into txt (the strings joined). */
typedef enum dns_result dkim_key_lookup_fn(void *ctx, const char *name,
    char *txt, size_t txtsize, char *err, size_t errsize);

const char *dkim_verdict_name(enum dkim_verdict v);
/*
 * Verify every DKIM-Signature of msg (CRLF line ends), at most max (and
 * DKIM_MAX_SIGNATURES) of them, in order; returns how many results were
 * written.
 */
size_t dkim_verify_message(const char *msg, size_t len, time_t now,
    dkim_key_lookup_fn *lookup, void *ctx, struct dkim_result *results,
    size_t max);

#endif
