/*
 * addr.h - RFC 5321 mail addresses and RFC 3461 xtext.
 *
 * addr_parse_path() is the strict parser for the reverse-path and
 * forward-path of MAIL and RCPT (RFC 5321 4.1.2): dot-atom or quoted local
 * part, a domain or an address literal, a source route that is accepted
 * and dropped (RFC 5321 C), UTF-8 only when allowed (RFC 6531).
 */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_MAX_LOCAL 64	/* RFC 5321 4.5.3.1.1 */
#define ADDR_MAX_DOMAIN 255	/* RFC 5321 4.5.3.1.2 */
#define ADDR_MAX_PATH 256	/* RFC 5321 4.5.3.1.3 */

#define ADDR_ALLOW_NULL 0x01	/* "<>" is valid (reverse-path) */
#define ADDR_ALLOW_UTF8 0x02	/* SMTPUTF8 was given on MAIL */
#define ADDR_ALLOW_POSTMASTER 0x04 /* "<postmaster>" without a domain */
#define ADDR_ALLOW_NO_BRACKETS 0x08 /* tolerate a path without <> */
#define ADDR_ALLOW_LOCAL_ONLY 0x10 /* "user" without a domain: domain NULL,
				    * for a local user's sendmail -bs */

struct addr {
	char *address;	/* "local@domain", "" for <>, "postmaster" */
	char *local;	/* as written, quotes included */
	char *domain;	/* NULL for <> and <postmaster> */
	bool is_null;
	bool has_utf8;	/* non-ASCII bytes present */
	bool domain_is_literal;	/* [192.0.2.1] / [IPv6:...] */
};

/*
 * Parse a path at the start of text. On success *end points past the
 * closing ">" (parameters follow). On failure returns false and *why says
 * what is wrong, in words fit for a 501 reply.
 */
bool addr_parse_path(const char *text, unsigned flags, struct addr *out,
    const char **end, const char **why);
/* Parse a bare mailbox "local@domain" (config files, aliases, sendmail). */
bool addr_parse_mailbox(const char *text, unsigned flags, struct addr *out,
    const char **why);
void addr_free(struct addr *a);

/* Validate a domain name (LDH labels, or U-labels with allow_utf8). */
bool addr_domain_valid(const char *domain, bool allow_utf8);
/* The domain part of "local@domain" (after the last '@'), or NULL. */
const char *addr_domain_of(const char *address);
/* Lowercased copy of the domain part for comparisons (caller frees). */
char *addr_domain_lower(const char *address);

/* RFC 3461 4: xtext. decode returns NULL on malformed input. */
char *addr_xtext_decode(const char *text);
char *addr_xtext_encode(const char *text);

#endif
