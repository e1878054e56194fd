/*
 * mtasts.h - SMTP MTA Strict Transport Security (RFC 8461): the
 * `_mta-sts` TXT record, the policy file, MX pattern matching, the
 * policy cache on disk, and the answer of mtasts-fetch, the HTTPS fetch.
 *
 * Everything parsed here comes from the network (DNS, a web server) and
 * is untrusted: bounded, parsed strictly, refused whole when malformed.
 * The cache directory is ours (queue_directory/tls/mta-sts, owned by
 * `user`); a cache file that does not parse counts as no cache.
 */
#ifndef POSTERN_MTASTS_H
#define POSTERN_MTASTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* RFC 8461 3.2: a policy is at most 64 KiB (3.3's advice to senders). */
#define MTASTS_POLICY_MAX 65536
/* RFC 8461 3.2: max_age is at most 31557600 seconds (about a year). */
#define MTASTS_MAX_AGE_MAX 31557600L
#define MTASTS_MX_MAX 32
/* RFC 8461 3.1: id is 1 to 32 letters and digits. */
#define MTASTS_ID_MAX 32

enum mtasts_mode {
	MTASTS_NONE,
	MTASTS_TESTING,
	MTASTS_ENFORCE,
};

struct mtasts_policy {
	enum mtasts_mode mode;
	long max_age;
	char *mx[MTASTS_MX_MAX];	/* "mx.example.com" or "*.example.net" */
	size_t nmx;
};

const char *mtasts_mode_name(enum mtasts_mode mode);

/*
 * The id of a `_mta-sts.DOMAIN` TXT record ("v=STSv1; id=20160831T0;"):
 * true with id filled when the record is a valid STSv1 record (RFC 8461
 * 3.1: v first, fields separated by ";", unknown fields ignored).
 */
bool mtasts_txt_parse(const char *record, char *id, size_t idsize);

/*
 * Parse a policy body (RFC 8461 3.2: "key: value" lines ended by CRLF or
 * LF). version STSv1, mode and max_age are required, mx too unless the
 * mode is none; unknown keys are ignored. false with err on anything
 * else. p is freed with mtasts_policy_free() in both cases.
 */
bool mtasts_policy_parse(const char *text, size_t len,
    struct mtasts_policy *p, char *err, size_t errsize);
void mtasts_policy_free(struct mtasts_policy *p);

/*
 * Does the MX host name match one of the policy's mx patterns (RFC 8461
 * 4.1)? A pattern "*.example.com" matches exactly one more label on the
 * left; case and a trailing dot do not count.
 */
bool mtasts_mx_match(const struct mtasts_policy *p, const char *host);

/*
 * The cache: one file per policy domain in dir, named by the domain (A
 * labels, lowercase), holding the TXT id, the time of the fetch and the
 * policy text. mtasts_cache_read: false when there is none or it does
 * not parse; *text malloc'd. mtasts_cache_write writes aside and renames.
 */
bool mtasts_cache_read(const char *dir, const char *domain, char *id,
    size_t idsize, time_t *fetched, char **text, size_t *len);
bool mtasts_cache_write(const char *dir, const char *domain, const char *id,
    time_t fetched, const char *text, size_t len, char *err, size_t errsize);

/*
 * Failed fetches, the negative cache. RFC 8461 3.3 and 5.1 let a sender
 * that cannot fetch a policy, and has none cached, deliver as without
 * MTA-STS; how soon it tries again is left to the sender. Each failed
 * fetch is remembered in the cache directory, in "+DOMAIN" beside the
 * domain's policy file ('+' is not in a domain name), as
 * "postern-mta-sts-failed 1 ID UNTIL" and a line saying why: until
 * UNTIL no deliver process fetches that domain's policy for that TXT id
 * again. The same file is the lock of the domain's fetch, so that of
 * many deliver processes wanting the policy at once only one fetches.
 *
 * mtasts_fetch_claim: MTASTS_CLAIM_FETCH with *fd holding the lock (or
 * -1 when the file cannot be opened: fetch unguarded); BUSY when another
 * process holds it; FAILED with *f filled when a failure for this id is
 * remembered until after now. mtasts_fetch_release records the outcome
 * and drops the lock; why NULL: it worked, nothing to remember, and the
 * file is removed (a domain's file stays only while it holds a failure).
 */
enum mtasts_claim {
	MTASTS_CLAIM_FETCH,
	MTASTS_CLAIM_BUSY,
	MTASTS_CLAIM_FAILED,
};

struct mtasts_failure {
	time_t until;
	char why[512];
};

enum mtasts_claim mtasts_fetch_claim(const char *dir, const char *domain,
    const char *id, time_t now, int *fd, struct mtasts_failure *f);
void mtasts_fetch_release(const char *dir, const char *domain, int fd,
    const char *id, time_t until, const char *why);

/* Is domain fit to be a file name and a URL's host (A-labels, letters,
 * digits, '-' and '.')? */
bool mtasts_domain_ok(const char *domain);

/*
 * The HTTPS fetch of a policy (RFC 8461 3.3) is a program of its own,
 * mtasts-fetch (mtasts-fetch/mtasts_fetch.c) in daemon_directory, which
 * deliver runs when a fetch is due (deliver/deliver_mtasts_fetch.c), so
 * that only that program links libcurl:
 *
 *   mtasts-fetch -t TIMEOUT_MS [-f CAFILE] [-p CAPATH] DOMAIN ADDRS
 *
 * It GETs https://mta-sts.DOMAIN/.well-known/mta-sts.txt from ADDRS (the
 * addresses of mta-sts.DOMAIN that deliver resolved with postern's
 * resolver, comma separated, IPv6 in brackets) on port 443. Its answer,
 * on standard output, is one line and, on success, the body:
 *   "ok LEN\n" and then exactly LEN octets (LEN <= MTASTS_POLICY_MAX)
 *   "fail RESULT TEXT\n": RESULT is RFC 8460 4.3.2's
 *       sts-webpki-invalid (the certificate) or sts-policy-fetch-error
 *       (anything else), TEXT printable ASCII saying why.
 */
#define MTASTS_FETCH_PROGRAM "mtasts-fetch"
#define MTASTS_FETCH_LINE_MAX 1024	/* the answer's first line, with \n */

#endif
