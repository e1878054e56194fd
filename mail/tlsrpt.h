/*
 * tlsrpt.h - SMTP TLS Reporting (RFC 8460): the daily store of TLS
 * session results that deliver appends to, the aggregate report in the
 * JSON of RFC 8460 section 4, its gzip wrapping, and the `_smtp._tls`
 * TXT record that says where reports go.
 *
 * The store is ours (queue_directory/tls/tlsrpt, owned by `user`), but a
 * line that does not parse is skipped, never trusted. Names and texts in
 * it came from DNS and from remote servers: they are cleaned of control
 * characters before they are stored, and escaped in the JSON.
 */
#ifndef POSTERN_TLSRPT_H
#define POSTERN_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "str.h"

/* queue_directory/tls and its two parts. */
#define TLS_STATE_DIR "tls"
#define TLS_STATE_MTASTS "tls/mta-sts"
#define TLS_STATE_TLSRPT "tls/tlsrpt"

/* One TLS session (or policy fetch) as deliver saw it. result is
 * "success" or an RFC 8460 4.3 result type; the others may be "". */
struct tlsrpt_event {
	const char *policy_type;	/* "sts", "tlsa", "no-policy-found" */
	const char *domain;		/* the policy domain */
	const char *result;
	const char *mx;			/* receiving-mx-hostname */
	const char *sending_ip;
	const char *receiving_ip;
	const char *info;		/* additional-information */
};

/* The store's file for the UTC day of when: dir/YYYY-MM-DD. */
void tlsrpt_day_path(char *out, size_t outsize, const char *dir, time_t when);

/* Append one event as one line (O_APPEND: several deliver processes
 * write the same file). */
bool tlsrpt_record(const char *dir, time_t when, const struct tlsrpt_event *e,
    char *err, size_t errsize);

struct tlsrpt_failure {
	char *result, *mx, *sending_ip, *receiving_ip, *info;
	long count;
};

/* The sessions of one policy of one domain, in a day. */
struct tlsrpt_policy {
	char *domain;
	char *policy_type;
	long successes;
	long failures;
	struct tlsrpt_failure *fail;
	size_t nfail;
};

struct tlsrpt_day {
	struct tlsrpt_policy *v;	/* sorted by domain, then type */
	size_t count;
};

/* Read and add up one day's file; false (errno) if it cannot be read. */
bool tlsrpt_day_read(const char *path, struct tlsrpt_day *day);
void tlsrpt_day_free(struct tlsrpt_day *day);

/*
 * Where a domain's reports go: the rua= of a `_smtp._tls` TXT record
 * ("v=TLSRPTv1; rua=mailto:tls@example.com,https://..."), RFC 8460 3.
 * The mailto: addresses (at most max, each without "mailto:") into
 * mailto[]; false when the record is not a TLSRPTv1 record.
 */
bool tlsrpt_txt_parse(const char *record, char mailto[][256], size_t max,
    size_t *count);

/* What the report says about its author and its day. */
struct tlsrpt_meta {
	const char *organization;
	const char *contact;		/* "" for none */
	const char *report_id;
	time_t start, end;		/* the day: 00:00:00 and 23:59:59 UTC */
};

/*
 * The JSON report (RFC 8460 4.4) of the policies v[0..n) of one domain
 * into out. policy_text, when not NULL, is the domain's MTA-STS policy
 * (for "policy-string" and "mx-host" of its "sts" entry).
 */
void tlsrpt_json(struct str *out, const struct tlsrpt_meta *meta,
    const struct tlsrpt_policy *v, size_t n, const char *policy_text);

/* in[0..len) as a gzip member (RFC 1952) of stored deflate blocks. */
void tlsrpt_gzip(struct str *out, const void *in, size_t len, time_t mtime);

#endif
