/*
 * dmarc.h - DMARC (RFC 7489): the organizational domain from the Public
 * Suffix List (3.2), identifier alignment (3.1), the policy record
 * (6.3, 6.6.3) and the verdict of one message (6.6). The From: domain,
 * the SPF and DKIM results and the records in DNS all come from
 * strangers; the list file is trusted (the administrator's).
 */
#ifndef POSTERN_DMARC_H
#define POSTERN_DMARC_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

/* ---- the Public Suffix List ---- */

/*
 * Load the list (public_suffix_list.dat's format: one rule a line,
 * "//" comments, "*." wildcards and "!" exceptions; rules in U-labels are
 * kept in A-labels too). Once per process: a second load replaces the
 * first. false with err when the file cannot be read or holds no rule.
 */
bool dmarc_psl_load(const char *path, char *err, size_t errsize);
/*
 * Open the list now and read it at the first dmarc_org_domain() (a
 * daemon calls this before it is confined: only the open needs the
 * path). false with err when it cannot be opened; a list that turns out
 * unreadable or empty later is logged as a warning and leaves no rules.
 */
bool dmarc_psl_defer(const char *path, char *err, size_t errsize);
/* How many rules are loaded (0 while a deferred list is still unread). */
size_t dmarc_psl_rules(void);
/* The same from text in memory (tests). */
bool dmarc_psl_load_text(const char *text, size_t len);
void dmarc_psl_free(void);

/*
 * The organizational domain of domain (RFC 7489 3.2): its public suffix
 * plus one label, in lower case, into out; a public suffix itself is its
 * own. Without a loaded list every top-level label is a suffix.
 */
void dmarc_org_domain(const char *domain, char *out, size_t outsize);

/* Are the two domains aligned (3.1): equal, or (relaxed) same org? */
bool dmarc_aligned(const char *a, const char *b, bool strict);

/* ---- the policy record ---- */

enum dmarc_policy {
	DMARC_POLICY_NONE,
	DMARC_POLICY_QUARANTINE,
	DMARC_POLICY_REJECT,
};

struct dmarc_record {
	enum dmarc_policy p, sp;	/* sp is p when not given */
	bool adkim_strict, aspf_strict;
	int pct;			/* 0-100 */
};

const char *dmarc_policy_name(enum dmarc_policy p);
/*
 * Parse a TXT record that starts with "v=DMARC1" (6.3, 6.4). A missing
 * or bad p= (or a bad sp=) is taken as p=none when rua= is there (6.6.3
 * step 6) and makes the record unusable (false) otherwise; unknown tags
 * are ignored (6.3).
 */
bool dmarc_record_parse(const char *txt, struct dmarc_record *rec);
/* Does txt start with the DMARC version tag ("v=DMARC1", 6.4)? */
bool dmarc_is_record(const char *txt);

/* ---- the verdict ---- */

enum dmarc_result {
	DMARC_NONE,		/* no policy published */
	DMARC_PASS,
	DMARC_FAIL,
	DMARC_TEMPERROR,	/* the policy could not be fetched */
	DMARC_PERMERROR,	/* no usable From: domain */
};

const char *dmarc_result_name(enum dmarc_result r);

/*
 * Fetch the one DMARC record of name ("_dmarc.example.org") into txt:
 * DNS_NOTFOUND when there is none or more than one (6.6.3 step 4),
 * DNS_TEMPFAIL when DNS could not answer.
 */
typedef enum dns_result dmarc_lookup_fn(void *ctx, const char *name,
    char *txt, size_t txtsize);
/* The lookup through mail/dns.c (dns_servers). */
enum dns_result dmarc_lookup_dns(void *ctx, const char *name, char *txt,
    size_t txtsize);

/* One passing DKIM signature's d= (only passes count for DMARC). */
struct dmarc_input {
	const char *from_domain;	/* the RFC5322.From domain */
	bool spf_pass;
	const char *spf_domain;		/* MAIL FROM's domain, or HELO */
	const char *const *dkim_pass_domains;
	size_t ndkim;
	int pct_roll;			/* 0-99: below pct means "applies" */
};

struct dmarc_verdict {
	enum dmarc_result result;
	bool have_record;
	struct dmarc_record rec;
	bool used_sp;			/* the org domain's sp= applied */
	enum dmarc_policy policy;	/* p= or sp= that applies */
	enum dmarc_policy disposition;	/* what to do: after pct= (6.6.4) */
	bool spf_aligned, dkim_aligned;
	char record_domain[256];	/* where the record was found */
};

/*
 * The DMARC verdict of one message (6.6.2, 6.6.3): the record at the
 * From: domain or else at its organizational domain, then alignment of
 * the passing SPF and DKIM identifiers. At most two lookups.
 */
void dmarc_evaluate(const struct dmarc_input *in, dmarc_lookup_fn *lookup,
    void *ctx, struct dmarc_verdict *out);

/*
 * The domain of the one author in a header section's From: field
 * (RFC 7489 6.6.1, RFC 5322 3.6.2), lowered, into out. false when there
 * is no From:, more than one, several addresses or no domain.
 */
bool dmarc_from_domain(const char *headers, size_t len, char *out,
    size_t outsize);

#endif
