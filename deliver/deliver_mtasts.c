/*
 * deliver_mtasts.c - MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) in the
 * delivery agent: the policy of the domain a job's MX lookup is for
 * (TXT record, disk cache, HTTPS fetch), which MX hosts it allows, the
 * TLS level it asks of a session, and one TLS-RPT event per session.
 *
 * Who fetches is in doc/architecture.md, "MTA-STS and TLS-RPT": deliver
 * decides, resolves mta-sts.DOMAIN and keeps the cache; the HTTPS fetch
 * itself is the program mtasts-fetch, which deliver runs when a fetch is
 * due (deliver_mtasts_fetch.c). The cache and the TLS-RPT store are under
 * queue_directory/tls, the one place deliver may write
 * (mail/daemon_confine.c).
 *
 * Order of the policies (issue 16): an smtp_tls_policy_maps entry, then
 * DANE, then MTA-STS, then smtp_tls_security_level. A job routed by
 * relayhost, transport_maps "[host]" or to an LMTP server has no policy
 * domain: MTA-STS is for the MX hosts of a recipient domain only.
 *
 * Trusts the config; DNS answers, policy bodies and certificates are
 * untrusted and judged by mail/mtasts.c and mail/tls_policy.c.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <bsd/string.h>
#include <openssl/x509_vfy.h>

#include "cfg.h"
#include "deliver.h"
#include "dns.h"
#include "log.h"
#include "mem.h"
#include "mtasts.h"
#include "sock.h"
#include "tls.h"
#include "tlsrpt.h"

#define MX_SEEN_MAX 32

/* The policy of the job in hand: deliver does one job at a time. */
static struct {
	const char *queue_id;
	char domain[256];	/* the MX-looked-up domain, "" if none */
	bool have;		/* a testing or enforce policy applies */
	struct mtasts_policy pol;
	char id[MTASTS_ID_MAX + 1];
	char *mx_seen[MX_SEEN_MAX];	/* the domain's MX hosts we may use */
	size_t nmx_seen;
	bool skipped;		/* enforce left an MX host out */
} cur;

static char cache_dir[4096], rpt_dir[4096];
static bool state_ok;

void deliver_mtasts_init(void)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%s", cfg.queue_directory,
	    TLS_STATE_DIR);
	snprintf(cache_dir, sizeof(cache_dir), "%s/%s", cfg.queue_directory,
	    TLS_STATE_MTASTS);
	snprintf(rpt_dir, sizeof(rpt_dir), "%s/%s", cfg.queue_directory,
	    TLS_STATE_TLSRPT);
	/* Made here, before the confinement opens them up (deliver runs
	 * as `user`, who owns the queue). */
	state_ok = true;
	const char *dirs[] = { dir, cache_dir, rpt_dir };
	for (size_t i = 0; i < 3; i++) {
		if (mkdir(dirs[i], 0700) != 0 && errno != EEXIST) {
			log_warning("cannot make %s: %s: no MTA-STS cache, no "
			    "TLS-RPT records", dirs[i], strerror(errno));
			state_ok = false;
		}
	}
	if (cfg.smtp_mta_sts)
		deliver_mtasts_fetch_init();
}

static void forget_job(void)
{
	mtasts_policy_free(&cur.pol);
	for (size_t i = 0; i < cur.nmx_seen; i++)
		free(cur.mx_seen[i]);
	memset(&cur, 0, sizeof(cur));
}

void deliver_mtasts_job(const struct deliver_job *job)
{
	forget_job();
	cur.queue_id = job->j.queue_id;
}

static void record(const char *type, const char *result, const char *mx,
    const char *sending_ip, const char *receiving_ip, const char *info)
{
	char err[600];
	if (!cfg.smtp_tls_reporting || !state_ok || cur.domain[0] == '\0')
		return;
	struct tlsrpt_event e = {
		.policy_type = type, .domain = cur.domain, .result = result,
		.mx = mx, .sending_ip = sending_ip,
		.receiving_ip = receiving_ip, .info = info,
	};
	if (!tlsrpt_record(rpt_dir, time(NULL), &e, err, sizeof(err)))
		log_warning("%s: TLS-RPT: %s", cur.queue_id, err);
}

/*
 * The id of the domain's one STSv1 TXT record (RFC 8461 3.1: more than
 * one means none). DNS_OK with id, DNS_NOTFOUND, or DNS_TEMPFAIL.
 */
static enum dns_result txt_id(const char *domain, char *id, size_t idsize)
{
	char name[300], err[512];
	struct dns_rr *rrs;
	size_t n, found = 0;
	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	enum dns_result r = dns_lookup_rr(name, ns_t_txt, &rrs, &n, err,
	    sizeof(err));
	if (r != DNS_OK)
		return r == DNS_TEMPFAIL ? DNS_TEMPFAIL : DNS_NOTFOUND;
	for (size_t i = 0; i < n; i++) {
		const char *rec = (const char *)rrs[i].data;
		if (strncmp(rec, "v=STSv1", 7) != 0)
			continue;
		found++;
		if (!mtasts_txt_parse(rec, id, idsize))
			found = 99;	/* a broken STSv1 record: none */
	}
	dns_rr_free(rrs, n);
	return found == 1 ? DNS_OK : DNS_NOTFOUND;
}

/* Fetch, check and cache the policy; true with text on success, else
 * false with err saying why (logged, and recorded for TLS-RPT, here). */
static bool fetch(const char *domain, const char *id, char **text,
    size_t *len, char *err, size_t errsize)
{
	char host[300], addrs[1000] = "";
	struct dns_addr *a;
	size_t n;
	const char *result_type = "sts-policy-fetch-error";

	snprintf(host, sizeof(host), "mta-sts.%s", domain);
	enum dns_result r = dns_lookup_addrs(host, 443, &a, &n, err,
	    errsize);
	if (r == DNS_OK) {
		for (size_t i = 0; i < n; i++) {
			char one[64];
			int port;
			sock_addr_format((const struct sockaddr *)&a[i].sa, one,
			    sizeof(one), &port);
			if (strlen(addrs) + strlen(one) + 4 >= sizeof(addrs))
				break;
			if (addrs[0] != '\0')
				strlcat(addrs, ",", sizeof(addrs));
			/* libcurl's RESOLVE wants IPv6 in brackets
			 * (mtasts-fetch hands them on as they are). */
			bool v6 = strchr(one, ':') != NULL;
			strlcat(addrs, v6 ? "[" : "", sizeof(addrs));
			strlcat(addrs, one, sizeof(addrs));
			strlcat(addrs, v6 ? "]" : "", sizeof(addrs));
		}
		free(a);
	}
	bool ok = r == DNS_OK && addrs[0] != '\0';
	if (ok) {
		const char *cafile = cfg.smtp_mta_sts_CAfile[0] ?
		    cfg.smtp_mta_sts_CAfile : cfg.smtp_tls_CAfile;
		ok = deliver_mtasts_fetch(domain, addrs, cafile,
		    cfg.smtp_tls_CApath, cfg.smtp_mta_sts_timeout * 1000, text,
		    len, &result_type, err, errsize);
	}
	struct mtasts_policy pol = { 0 };
	char perr[200];
	if (ok && !mtasts_policy_parse(*text, *len, &pol, perr,
	    sizeof(perr))) {
		snprintf(err, errsize, "https://%s/.well-known/mta-sts.txt:"
		    " %s", host, perr);
		result_type = "sts-policy-invalid";
		free(*text);
		*text = NULL;
		ok = false;
	}
	mtasts_policy_free(&pol);
	if (!ok) {
		log_info("%s: MTA-STS policy of %s cannot be had: %s",
		    cur.queue_id, domain, err);
		record("sts", result_type, "", "", "", err);
		return false;
	}
	char cerr[700];
	if (!mtasts_cache_write(cache_dir, domain, id, time(NULL), *text, *len,
	    cerr, sizeof(cerr)))
		log_warning("%s: MTA-STS cache: %s", cur.queue_id, cerr);
	return true;
}

/* The domain's cached policy, while its max_age lasts (RFC 8461 5.1);
 * what the arguments held before is freed. */
static bool cache_load(const char *domain, time_t now, char *cid,
    size_t cidsize, char **ctext, size_t *clen, struct mtasts_policy *cpol)
{
	char err[200];
	time_t fetched = 0;
	free(*ctext);
	*ctext = NULL;
	mtasts_policy_free(cpol);
	return state_ok && mtasts_cache_read(cache_dir, domain, cid, cidsize,
	    &fetched, ctext, clen) &&
	    mtasts_policy_parse(*ctext, *clen, cpol, err, sizeof(err)) &&
	    fetched + cpol->max_age > now;
}

/*
 * The TXT record has an id the cache does not hold: fetch, unless
 * another deliver process is fetching it right now, or a fetch of this
 * id failed less than smtp_mta_sts_negative_cache_time ago (the record
 * in the cache directory, mtasts_fetch_claim). Either way the mail goes
 * on at once with what the cache holds, or as without a policy (RFC
 * 8461 5.1), rather than waiting for a policy host that does not
 * answer, and the host is asked once per window, not once per message.
 * Returns how the policy was had (for the log), or NULL for none.
 */
static const char *fetch_guarded(const char *domain, const char *txtid,
    bool *cached, char *cid, size_t cidsize, char **ctext, size_t *clen,
    struct mtasts_policy *cpol, char **text, size_t *len)
{
	struct mtasts_failure failed;
	char why[700];
	int lock = -1;
	time_t now = time(NULL);
	enum mtasts_claim claim = state_ok ? mtasts_fetch_claim(cache_dir,
	    domain, txtid, now, &lock, &failed) : MTASTS_CLAIM_FETCH;

	switch (claim) {
	case MTASTS_CLAIM_BUSY:
		log_info("%s: MTA-STS policy of %s is being fetched by another "
		    "deliver process: %s", cur.queue_id, domain, *cached ?
		    "the cached one is used" : "none for this delivery");
		return *cached ? "from the cache (a new one is being fetched)" :
		    NULL;
	case MTASTS_CLAIM_FAILED:
		log_info("%s: MTA-STS policy of %s: its fetch failed, not tried "
		    "again for %llds (%s): %s", cur.queue_id, domain,
		    (long long)(failed.until - now), failed.why, *cached ?
		    "the cached one is used" : "none for this delivery");
		return *cached ? "from the cache (the last fetch failed)" :
		    NULL;
	case MTASTS_CLAIM_FETCH:
		break;
	}
	/* The lock is ours: another process may have fetched it while we
	 * looked. */
	if (lock >= 0) {
		*cached = cache_load(domain, now, cid, cidsize, ctext, clen,
		    cpol);
		if (*cached && strcmp(cid, txtid) == 0) {
			mtasts_fetch_release(cache_dir, domain, lock, txtid, 0,
			    NULL);
			return "from the cache (just fetched by another deliver "
			    "process)";
		}
	}
	bool ok = fetch(domain, txtid, text, len, why, sizeof(why));
	mtasts_fetch_release(cache_dir, domain, lock, txtid, time(NULL) +
	    cfg.smtp_mta_sts_negative_cache_time, ok ? NULL : why);
	if (ok)
		return "fetched";
	if (lock >= 0)
		log_info("%s: MTA-STS policy of %s: not fetched again for %llds",
		    cur.queue_id, domain,
		    (long long)cfg.smtp_mta_sts_negative_cache_time);
	return *cached ? "from the cache (the fetch failed)" : NULL;
}

void deliver_mtasts_domain(const char *domain)
{
	char txtid[MTASTS_ID_MAX + 1] = "", cid[MTASTS_ID_MAX + 1] = "";
	char err[200];
	char *text = NULL, *ctext = NULL;
	size_t len = 0, clen = 0;
	struct mtasts_policy cpol = { 0 };

	if (!mtasts_domain_ok(domain) || strlen(domain) >= sizeof(cur.domain))
		return;
	strlcpy(cur.domain, domain, sizeof(cur.domain));
	if (!cfg.smtp_mta_sts)
		return;
	/* RFC 8461 5.1: a policy in the cache counts until max_age ends. */
	bool cached = cache_load(domain, time(NULL), cid, sizeof(cid), &ctext,
	    &clen, &cpol);
	enum dns_result r = txt_id(domain, txtid, sizeof(txtid));
	const char *how;
	const char *id;
	if (r == DNS_OK && !(cached && strcmp(cid, txtid) == 0)) {
		/* RFC 8461 3.3 and 5.1: a new id (or none cached): fetch. A
		 * failed fetch keeps the cached policy. */
		how = fetch_guarded(domain, txtid, &cached, cid, sizeof(cid),
		    &ctext, &clen, &cpol, &text, &len);
		if (how == NULL)
			goto none;
		id = text != NULL || strcmp(cid, txtid) == 0 ? txtid : cid;
	} else if (cached) {
		how = r == DNS_OK ? "from the cache" :
		    "from the cache (no TXT record now)";
		id = cid;
	} else {
		goto none;
	}
	if (text != NULL) {
		mtasts_policy_free(&cpol);
		if (!mtasts_policy_parse(text, len, &cpol, err, sizeof(err)))
			goto none;	/* fetch() checked it */
	}
	strlcpy(cur.id, id, sizeof(cur.id));
	log_info("%s: MTA-STS policy of %s: mode %s, id %s, %s", cur.queue_id,
	    domain, mtasts_mode_name(cpol.mode), cur.id, how);
	if (cpol.mode != MTASTS_NONE) {
		cur.pol = cpol;
		cur.have = true;
		memset(&cpol, 0, sizeof(cpol));
	}
none:
	mtasts_policy_free(&cpol);
	free(text);
	free(ctext);
}

bool deliver_mtasts_mx_allowed(const char *mx)
{
	bool match = !cur.have || mtasts_mx_match(&cur.pol, mx);
	if (!match) {
		bool enforce = cur.pol.mode == MTASTS_ENFORCE;
		log_info("%s: MX host %s is not in the MTA-STS policy of %s "
		    "(mode %s)%s", cur.queue_id, mx, cur.domain,
		    mtasts_mode_name(cur.pol.mode), enforce ? ": skipped" :
		    ": used anyway");
		if (enforce) {
			cur.skipped = true;
			return false;
		}
	}
	if (cur.domain[0] != '\0' && cur.nmx_seen < MX_SEEN_MAX)
		cur.mx_seen[cur.nmx_seen++] = xstrdup(mx);
	return true;
}

bool deliver_mtasts_enforced(char *why, size_t whysize)
{
	if (!cur.have || cur.pol.mode != MTASTS_ENFORCE || !cur.skipped)
		return false;
	snprintf(why, whysize, "no MX host of %s is in its MTA-STS policy "
	    "(mode enforce)", cur.domain);
	return true;
}

/* Is s a session with one of the job domain's MX hosts? */
static bool domain_session(const struct deliver_session *s)
{
	if (cur.domain[0] == '\0' || s->lmtp)
		return false;
	for (size_t i = 0; i < cur.nmx_seen; i++)
		if (strcasecmp(cur.mx_seen[i], s->host) == 0)
			return true;
	return false;
}

/* Does the policy govern s (an MX host it names)? */
static bool sts_session(const struct deliver_session *s)
{
	return cur.have && domain_session(s) && mtasts_mx_match(&cur.pol,
	    s->host);
}

void deliver_mtasts_tls_policy(struct deliver_session *s,
    struct tls_dest_policy *p)
{
	char err[200];
	/* An explicit entry wins, and so does DANE (RFC 8461 2): at the
	 * dane levels this runs only once DANE found nothing to apply
	 * (deliver_tls_policy_after_dane). */
	if (p->from_map || p->level == TLS_LEVEL_DANE_ONLY ||
	    p->level == TLS_LEVEL_DANE || !sts_session(s))
		return;
	if (tls_level_authenticates(p->level))
		return;	/* verify, secure, fingerprint: already as strict */
	/* RFC 8461 4.2: a PKIX-valid certificate for the MX name. */
	if (cur.pol.mode == MTASTS_ENFORCE)
		p->level = TLS_LEVEL_VERIFY;
	/* testing: the level stays, the name is checked for the log. */
	for (size_t i = 0; i < p->nmatch; i++)
		free(p->match[i]);
	p->nmatch = 0;
	(void)tls_dest_policy_add_match(p, "hostname", err, sizeof(err));
}

/* The local address of s's connection, for sending-mta-ip. */
static void local_ip(const struct deliver_session *s, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int port;
	out[0] = '\0';
	if (s->fd >= 0 && getsockname(s->fd, (struct sockaddr *)&ss,
	    &len) == 0)
		sock_addr_format((struct sockaddr *)&ss, out, n, &port);
}

void deliver_tlsrpt_event(const struct deliver_session *s,
    const char *policy_type, const char *result, const char *info)
{
	if (!domain_session(s))
		return;
	char ip[64];
	local_ip(s, ip, sizeof(ip));
	record(policy_type, result, s->host, ip, s->addr,
	    strcmp(result, "success") == 0 ? "" : info);
}

void deliver_tlsrpt_note(const struct deliver_session *s, const char *result,
    const char *info)
{
	bool sts = sts_session(s);
	if (sts && cur.pol.mode == MTASTS_TESTING &&
	    strcmp(result, "success") != 0)
		log_info("%s: MTA-STS policy of %s (mode testing) would refuse "
		    "%s: %s: %s", cur.queue_id, cur.domain, s->relay, result,
		    info);
	deliver_tlsrpt_event(s, sts ? "sts" : "no-policy-found", result, info);
}

void deliver_tlsrpt_trust(const struct deliver_session *s, SSL *ssl,
    enum tls_trust trust, const char *why)
{
	const char *result = "success";
	bool sts = sts_session(s);
	/* RFC 8460 4.3.1: what fell short, in its words. Without a policy
	 * an encrypted session is a success. */
	if (sts && trust != TLS_TRUST_VERIFIED) {
		long v = SSL_get_verify_result(ssl);
		if (trust == TLS_TRUST_TRUSTED || v == X509_V_OK)
			result = "certificate-host-mismatch";
		else if (v == X509_V_ERR_CERT_HAS_EXPIRED)
			result = "certificate-expired";
		else if (v == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
		    v == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
		    v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
		    v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
		    v == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE)
			result = "certificate-not-trusted";
		else
			result = "validation-failure";
	}
	deliver_tlsrpt_note(s, result, why);
}
