/*
 * spf.h - SPF (RFC 7208) records and macros: the parser of a "v=spf1"
 * record (RFC 7208 4.6, 12) and the macro expander (7.3), the pieces
 * check_host() (4) is built on. The record comes from DNS and the sender
 * and HELO from the SMTP client: nothing in them is trusted.
 */
#ifndef POSTERN_SPF_H
#define POSTERN_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "str.h"

/* RFC 7208 4.6.4: at most 10 mechanisms and modifiers that look up DNS. */
#define SPF_MAX_DNS_TERMS 10
/* A record of more terms than this is refused (a TXT record is <= 64 KiB). */
#define SPF_MAX_TERMS 64

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

enum spf_mech {
	SPF_ALL,
	SPF_INCLUDE,
	SPF_A,
	SPF_MX,
	SPF_PTR,
	SPF_IP4,
	SPF_IP6,
	SPF_EXISTS,
};

struct spf_term {
	enum spf_result qualifier;	/* PASS, FAIL, SOFTFAIL or NEUTRAL */
	enum spf_mech mech;
	char *domain_spec;		/* NULL: the current domain */
	int cidr4, cidr6;		/* prefix lengths; 32 and 128 if none */
	unsigned char ip[16];		/* ip4 (first 4 bytes), ip6 */
};

struct spf_record {
	struct spf_term *terms;
	size_t nterms;
	char *redirect;			/* domain-spec, or NULL */
	char *exp;			/* domain-spec, or NULL */
	unsigned dns_terms;		/* include, a, mx, ptr, exists, redirect */
};

/* "pass", "fail", ... (RFC 8601 result names). */
const char *spf_result_name(enum spf_result r);

/* Is txt an SPF record at all ("v=spf1" then a space or the end)? */
bool spf_is_record(const char *txt, size_t len);
/*
 * Parse an SPF record. false (a permerror, RFC 7208 4.6) with err on a
 * syntax error, an unknown mechanism, a repeated redirect or exp.
 */
bool spf_record_parse(const char *txt, size_t len, struct spf_record *rec,
    char *err, size_t errsize);
void spf_record_free(struct spf_record *rec);

/* What the macros (RFC 7208 7.2) expand to. */
struct spf_macro_ctx {
	const char *sender;		/* local-part@domain ("postmaster@HELO"
					 * when MAIL FROM was empty) */
	const char *domain;		/* the current domain, %{d} */
	const char *helo;		/* %{h} */
	const struct sockaddr *client;	/* %{i}, %{v}, %{c} */
	const char *validated_name;	/* %{p}; NULL: "unknown" */
	const char *receiver;		/* %{r} (exp only) */
	long long now;			/* %{t} (exp only) */
};

/*
 * Expand a macro-string (RFC 7208 7.1, 7.3) into out. exp: the letters
 * c, r and t are allowed (an explanation string). A domain-spec longer
 * than 253 octets loses labels from the left (7.3). false (a permerror)
 * with err on bad syntax.
 */
bool spf_macro_expand(const char *spec, const struct spf_macro_ctx *ctx,
    bool exp, struct str *out, char *err, size_t errsize);

/* ---- spf_check.c: check_host() (RFC 7208 4) ---- */

/* RFC 7208 4.6.4: lookups that find nothing, at most. */
#define SPF_MAX_VOID 2

struct spf_check {
	/* in */
	const struct sockaddr *client;	/* AF_INET or AF_INET6 */
	const char *sender;		/* MAIL FROM, or postmaster@HELO */
	const char *helo;
	/* state and out */
	unsigned char ip[16];
	size_t iplen;			/* 4 or 16 */
	unsigned dns_terms, voids;
	char why[300];			/* what decided, for the log */
};

/*
 * check_host(client, domain, sender): the SPF result for domain (the
 * sender's domain, or the HELO name for the HELO identity, RFC 7208
 * 2.3, 2.4). Lookups go through mail/dns.c (dns_servers).
 */
enum spf_result spf_check_host(struct spf_check *c, const char *domain);

#endif
