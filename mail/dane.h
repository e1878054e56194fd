/*
 * dane.h - DANE for SMTP (RFC 7672): the TLSA records of one server
 * (RFC 6698 2.1), which of them an SMTP client may use, whether DNSSEC
 * vouches for them, and whether the resolver that says so is trusted.
 *
 * Trusts the config (smtp_dnssec_trusted_resolvers) and, through it, the
 * AD bit of a trusted resolver; every record is the network's and is
 * parsed with its lengths checked.
 */
#ifndef POSTERN_DANE_H
#define POSTERN_DANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

/* RFC 6698 2.1.1-2.1.3, RFC 7218's names. */
#define DANE_USAGE_PKIX_TA 0
#define DANE_USAGE_PKIX_EE 1
#define DANE_USAGE_DANE_TA 2
#define DANE_USAGE_DANE_EE 3
#define DANE_SELECTOR_CERT 0
#define DANE_SELECTOR_SPKI 1
#define DANE_MTYPE_FULL 0
#define DANE_MTYPE_SHA256 1
#define DANE_MTYPE_SHA512 2

struct dane_tlsa {
	uint8_t usage;
	uint8_t selector;
	uint8_t mtype;
	unsigned char *data;
	size_t len;
};

/* The usable TLSA records of one server (RFC 7672 2.2). */
struct dane_tlsa_set {
	struct dane_tlsa *v;
	size_t count;
	size_t unusable;	/* validated records left out */
};

enum dane_status {
	DANE_USABLE,	/* validated TLSA records, some usable: DANE applies */
	DANE_UNUSABLE,	/* validated TLSA records, none usable (RFC 7672
			   2.2: TLS without authentication) */
	DANE_NO_TLSA,	/* validated denial: the server publishes none */
	DANE_INSECURE,	/* the answer is not DNSSEC-validated */
	DANE_LOOKUP_FAILED, /* no answer, or bogus (SERVFAIL from a
			   validating resolver): the server cannot be used now */
};

/* Parse one TLSA RDATA (usage, selector, matching type, data). */
bool dane_tlsa_parse(const unsigned char *rdata, size_t len,
    struct dane_tlsa *out);
/*
 * May an SMTP client use this record? DANE-TA(2) and DANE-EE(3) only
 * (RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable), a known
 * selector, a known matching type with a digest of its length.
 */
bool dane_tlsa_usable(const struct dane_tlsa *t);
/* "3 1 1 ab12...ef90": the record, its data shortened to fit. */
void dane_tlsa_format(uint8_t usage, uint8_t selector, uint8_t mtype,
    const unsigned char *data, size_t len, char *out, size_t outsize);

/*
 * The TLSA records at _PORT._tcp.HOST (RFC 7672 2.2.3), kept in set
 * when DANE_USABLE (the usable ones only). err says why for
 * DANE_LOOKUP_FAILED.
 */
enum dane_status dane_lookup(const char *host, int port,
    struct dane_tlsa_set *set, char *err, size_t errsize);
void dane_tlsa_set_free(struct dane_tlsa_set *set);

/*
 * May the AD bit be believed? Only when every resolver the queries go to
 * is inside trusted (smtp_dnssec_trusted_resolvers; RFC 4035 4.9.3: the
 * path to the resolver must be secure, which loopback is). why names the
 * first one that is not.
 */
bool dane_resolvers_trusted(const struct cfg_list *trusted, char *why,
    size_t whysize);

#endif
