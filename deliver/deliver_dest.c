/*
 * deliver_dest.c - from a job's nexthop to an open session: MX lookup
 * (RFC 5321 5.1), null MX (RFC 7505), implicit MX, address records, and
 * trying the hosts in order until one talks to us.
 *
 * nexthop comes from qmgr (doc/architecture.md): "example.net" and "host:port"
 * get an MX lookup, "[host]" and "[host]:port" do not; LMTP takes
 * "unix:/path" or "[host]:port" and never looks up MX records. A nexthop
 * may be a list ("[a]:25, [b]:25"): its hosts are tried in the order
 * written, and for SMTP smtp_fallback_relay comes after them. As in
 * Postfix, smtp_mx_address_limit bounds the addresses tried for one
 * element of that list (all its MX hosts together) and
 * smtp_mx_session_limit the sessions with it per job: each element and
 * each fallback relay gets its own turn, and no element can hold a
 * deliver process for an unbounded list of addresses.
 *
 * A failure at one host (no connection, 4xx or 5xx greeting, EHLO refused,
 * a loop) moves on to the next; only the last host's failure decides the
 * recipients' fate, as in Postfix, so that one broken MX never bounces
 * mail another MX would take.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>

#include "cfg.h"
#include "deliver.h"
#include "dns.h"
#include "idna.h"
#include "log.h"
#include "mem.h"
#include "sock.h"

struct target {
	char host[256];
	struct dns_addr addr;
	char path[108];		/* a Unix socket (LMTP), else "" */
	bool fallback;		/* from smtp_fallback_relay */
	unsigned hop;		/* which element of the next-hop list */
	bool secure;		/* MX and address DNSSEC-validated (DANE) */
};

/* Next-hop list elements with their own session count; more share the
 * last one's. */
#define DEST_HOPS_COUNTED 32

struct target_list {
	struct target *v;
	size_t count;
	bool tempfail;		/* some lookup failed for now */
	bool nullmx;		/* a domain said it takes no mail (RFC 7505) */
	bool self_mx;		/* we are an MX host of the domain */
	unsigned hops;		/* list elements seen so far */
	/* sessions made with each element (smtp_mx_session_limit) */
	unsigned sessions[DEST_HOPS_COUNTED];
	char err[512];		/* the last lookup failure */
};

static void targets_add(struct target_list *tl, const char *host,
    const struct dns_addr *addr, const char *path, bool fallback,
    bool secure)
{
	tl->v = xreallocarray(tl->v, tl->count + 1, sizeof(*tl->v));
	struct target *t = &tl->v[tl->count++];
	memset(t, 0, sizeof(*t));
	strlcpy(t->host, host, sizeof(t->host));
	if (addr != NULL)
		t->addr = *addr;
	if (path != NULL)
		strlcpy(t->path, path, sizeof(t->path));
	t->fallback = fallback;
	t->secure = secure;
	t->hop = tl->hops > 0 ? tl->hops - 1 : 0;
	if (t->hop >= DEST_HOPS_COUNTED)
		t->hop = DEST_HOPS_COUNTED - 1;
}

/* The addresses of host appended to tl, as many as *budget allows
 * (NULL or -1: no limit; smtp_mx_address_limit). mx_secure: the way to
 * host (its MX record, or none) was DNSSEC-validated; with DNSSEC
 * lookups on, the address records must be too (RFC 7672 2.2.2). */
static void targets_add_host(struct target_list *tl, const char *host,
    int port, bool fallback, long long *budget, bool mx_secure)
{
	struct dns_addr *addrs;
	size_t n;
	char err[512] = "";
	bool secure = false;

	enum dns_result r = deliver_dane_dnssec() ?
	    dns_lookup_addrs_dnssec(host, port, &addrs, &n, &secure, err,
	    sizeof(err)) :
	    dns_lookup_addrs(host, port, &addrs, &n, err, sizeof(err));
	if (r == DNS_OK && err[0] != '\0' && deliver_dane_dnssec())
		deliver_dane_address_note(host, err, mx_secure && secure);
	if (r != DNS_OK) {
		if (r == DNS_TEMPFAIL)
			tl->tempfail = true;
		strlcpy(tl->err, err, sizeof(tl->err));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (budget != NULL && *budget == 0)
			break;
		targets_add(tl, host, &addrs[i], NULL, fallback,
		    mx_secure && secure);
		if (budget != NULL && *budget > 0)
			(*budget)--;
	}
	free(addrs);
}

/* smtp_mx_address_limit as a budget: -1 for no limit. */
static long long address_budget(void)
{
	return cfg.smtp_mx_address_limit > 0 ? cfg.smtp_mx_address_limit : -1;
}

/*
 * The hosts of one SMTP next hop ("domain", "host:port", "[host]:port")
 * appended to tl: MX hosts in order of preference (RFC 5321 5.1), at
 * most smtp_mx_address_limit addresses for the lot, as Postfix counts
 * them (per next hop, not per job).
 */
static void smtp_hop_targets(const struct endpoint *ep, bool fallback,
    struct target_list *tl)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	bool literal = sock_addr_parse(ep->host, ep->port, &ss, &sslen);
	long long budget = address_budget();

	if (ep->bracketed || literal) {
		/* RFC 7672 2.2.2: no MX, the host's own records decide. */
		targets_add_host(tl, ep->host, ep->port, fallback, &budget,
		    true);
		return;
	}
	struct dns_mx *mx;
	size_t n;
	char err[512];
	bool mx_secure = false;
	enum dns_result r = deliver_dane_dnssec() ?
	    dns_lookup_mx_dnssec(ep->host, &mx, &n, &mx_secure, err,
	    sizeof(err)) :
	    dns_lookup_mx(ep->host, &mx, &n, err, sizeof(err));
	size_t before = tl->count;
	/* MTA-STS (RFC 8461): the policy of the domain, not of a relay. */
	if (!fallback && (r == DNS_OK || r == DNS_NOTFOUND))
		deliver_mtasts_domain(ep->host);
	switch (r) {
	case DNS_OK: {
		/* RFC 5321 5.1: as an MX host ourselves, only the more
		 * preferred hosts are candidates: every one at or below our
		 * own preference goes, those listed before us too (a backup
		 * MX of relay_domains must never send to itself or a peer
		 * of its own rank). */
		int own = -1;
		for (size_t i = 0; i < n && !fallback &&
		    cfg.myhostname[0] != '\0'; i++)
			if (strcasecmp(mx[i].host, cfg.myhostname) == 0 &&
			    (own < 0 || mx[i].preference < own))
				own = mx[i].preference;
		if (own >= 0)
			tl->self_mx = true;
		for (size_t i = 0; i < n && budget != 0; i++) {
			if (own >= 0 && mx[i].preference >= own)
				continue;
			if (!fallback && !deliver_mtasts_mx_allowed(mx[i].host))
				continue;
			targets_add_host(tl, mx[i].host, ep->port, fallback,
			    &budget, mx_secure);
		}
		free(mx);
		break;
	}
	case DNS_NOTFOUND:
		/* RFC 5321 5.1: the domain itself is the implicit MX;
		 * secure if the denial of the MX was. */
		if (fallback || deliver_mtasts_mx_allowed(ep->host))
			targets_add_host(tl, ep->host, ep->port, fallback,
			    &budget, mx_secure);
		break;
	case DNS_NULLMX:
		tl->nullmx = true;
		strlcpy(tl->err, err, sizeof(tl->err));
		break;
	case DNS_TEMPFAIL:
		tl->tempfail = true;
		strlcpy(tl->err, err, sizeof(tl->err));
		break;
	case DNS_FAIL:
		strlcpy(tl->err, err, sizeof(tl->err));
		break;
	}
	/* RFC 8461 5: no MX host the policy allows: the mail waits. */
	if (!fallback && tl->count == before && !tl->self_mx &&
	    deliver_mtasts_enforced(err, sizeof(err))) {
		tl->tempfail = true;
		strlcpy(tl->err, err, sizeof(tl->err));
	}
}

/*
 * Open a session to the first host from tl->v[*next] on that talks to us;
 * *next then names the host after it. When none does, the last host's
 * answer decides the recipients' fate (a 5xx there is for real).
 * smtp_mx_session_limit: after that many sessions with one element of
 * the next-hop list (a session: greeting and EHLO done, as Postfix
 * counts them), its other hosts are skipped for the next element or the
 * fallback relays.
 */
/* May target i be tried, or has its element had its sessions? */
static bool target_open(const struct deliver_job *job,
    const struct target_list *tl, size_t i)
{
	long long limit = job->transport == TRANSPORT_LMTP ? 0 :
	    cfg.smtp_mx_session_limit;
	return limit <= 0 || tl->sessions[tl->v[i].hop] < limit;
}

/* Is a host left to try from next on? */
static bool targets_left(const struct deliver_job *job,
    const struct target_list *tl, size_t next)
{
	for (size_t i = next; i < tl->count; i++)
		if (target_open(job, tl, i))
			return true;
	return false;
}

static struct deliver_session *open_next(struct deliver_job *job,
    struct target_list *tl, size_t *next)
{
	bool lmtp = job->transport == TRANSPORT_LMTP;
	struct deliver_outcome last = { 0 };
	struct deliver_session *s = xcalloc(1, sizeof(*s));

	for (size_t i = *next; i < tl->count; i++) {
		struct target *t = &tl->v[i];
		if (!target_open(job, tl, i))
			continue;
		deliver_outcome_free(&last);
		enum sess_open_result r = t->path[0] != '\0' ?
		    deliver_session_open(s, job, NULL, 0, "localhost", t->path,
		    true, false, &last) :
		    deliver_session_open(s, job, (struct sockaddr *)&t->addr.sa,
		    t->addr.salen, t->host, NULL, lmtp, t->secure, &last);
		if (r == SESS_OPEN_OK) {
			tl->sessions[t->hop]++;
			deliver_outcome_free(&last);
			*next = i + 1;
			return s;
		}
		if (targets_left(job, tl, i + 1))
			log_info("%s: %s; trying the next host", job->j.queue_id,
			    last.text);
	}
	*next = tl->count;
	free(s);
	if (last.status == 0)
		return NULL;	/* no host was left to try */
	job->nexthop_down = last.status != 'B';
	deliver_fail_open(job, last.status, last.dsn, last.diag, last.text);
	deliver_outcome_free(&last);
	return NULL;
}

/* "host", "host:port", "[host]" or "[host]:port" with host in A-labels;
 * NULL when host is not a valid name. */
static char *hop_to_ascii(const char *hop)
{
	bool bracketed = hop[0] == '[';
	const char *start = hop + bracketed;
	const char *end = bracketed ? strchr(start, ']') : strrchr(start, ':');
	if (end == NULL)
		end = start + strlen(start);
	char *host = xstrndup(start, (size_t)(end - start));
	char *ascii = idna_domain_to_ascii(host);
	free(host);
	if (ascii == NULL)
		return NULL;
	char *out = xasprintf("%s%s%s", bracketed ? "[" : "", ascii, end);
	free(ascii);
	return out;
}

/* One element of a next-hop list into tl; false (err set) if malformed. */
static bool hop_targets(const char *hop, bool lmtp, bool fallback,
    struct target_list *tl, char *err, size_t errsize)
{
	struct endpoint ep;

	/* A host written in UTF-8 is looked up as A-labels (IDNA 2008). */
	char *ascii_hop = NULL;
	if (idna_has_8bit(hop) && (ascii_hop = hop_to_ascii(hop)) == NULL) {
		snprintf(err, errsize, "not a valid domain name");
		return false;
	}
	bool parsed = endpoint_parse(ascii_hop ? ascii_hop : hop,
	    lmtp ? 24 : 25, &ep, err, errsize);
	free(ascii_hop);
	if (!parsed)
		return false;
	tl->hops++;
	if (ep.kind == ENDPOINT_UNIX) {
		if (!lmtp) {
			snprintf(err, errsize,
			    "SMTP needs a host, not a Unix socket");
			return false;
		}
		targets_add(tl, "localhost", NULL, ep.path, fallback, false);
	} else if (lmtp) {
		targets_add_host(tl, ep.host, ep.port, fallback, NULL, false);
	} else {
		smtp_hop_targets(&ep, fallback, tl);
	}
	return true;
}

/*
 * The hosts of job's nexthop into tl, replacing what it held: a list
 * ("[a]:25, [b]:25", "unix:/x, [h]:24") is tried in the order written,
 * then, for SMTP, smtp_fallback_relay (never when we are an MX host of
 * the domain: that would loop). False when the job is decided: its
 * recipients have their outcome.
 */
static bool dest_targets(struct deliver_job *job, struct target_list *tl)
{
	bool lmtp = job->transport == TRANSPORT_LMTP;
	char err[512];
	struct cfg_list hops = cfg_split_list(job->j.nexthop);
	bool parsed = hops.count > 0;

	free(tl->v);
	memset(tl, 0, sizeof(*tl));
	deliver_mtasts_job(job);
	deliver_dane_job(job);
	if (!parsed)
		snprintf(err, sizeof(err), "empty next hop");
	for (size_t i = 0; parsed && i < hops.count; i++)
		parsed = hop_targets(hops.items[i], lmtp, false, tl, err,
		    sizeof(err));
	cfg_list_free(&hops);
	if (!parsed) {
		char text[700];
		snprintf(text, sizeof(text), "bad nexthop \"%s\" for %s: %s",
		    job->j.nexthop, lmtp ? "lmtp" : "smtp", err);
		log_warning("%s: %s", job->j.queue_id, text);
		deliver_fail_open(job, 'D', "4.3.5", text, text);
		return false;
	}
	/* RFC 7505: a null MX is final; no fallback relay may change it. */
	if (tl->nullmx && tl->count == 0) {
		deliver_fail_open(job, 'B', "5.1.10", tl->err, tl->err);
		return false;
	}
	if (!lmtp && tl->self_mx && tl->count == 0) {
		char text[600];
		snprintf(text, sizeof(text), "mail for %s loops back to myself",
		    job->j.nexthop);
		deliver_fail_open(job, 'B', "5.4.6", text, text);
		return false;
	}
	size_t primary = tl->count;
	bool primary_tempfail = tl->tempfail;
	if (!lmtp && !tl->self_mx) {
		for (size_t i = 0; i < cfg.smtp_fallback_relay.count; i++) {
			char ferr[256];
			if (!hop_targets(cfg.smtp_fallback_relay.items[i], false,
			    true, tl, ferr, sizeof(ferr)))
				log_warning("%s: smtp_fallback_relay \"%s\": "
				    "%s", job->j.queue_id,
				    cfg.smtp_fallback_relay.items[i], ferr);
		}
	}
	if (tl->count == 0) {
		if (tl->tempfail) {
			deliver_fail_open(job, 'D', "4.4.3", tl->err, tl->err);
			job->nexthop_down = true;
		} else {
			/* LMTP back ends are ours: a name that does not
			 * resolve is a configuration slip, not a bounce. */
			deliver_fail_open(job, lmtp ? 'D' : 'B',
			    lmtp ? "4.4.3" : "5.4.4", tl->err, tl->err);
			job->nexthop_down = lmtp;
		}
		return false;
	}
	if (primary == 0)
		log_info("%s: %s%s; trying the fallback relays", job->j.queue_id,
		    tl->err, primary_tempfail ? " (for now)" : "");
	return true;
}

/*
 * A session to the first host of job's nexthop that talks to us, with
 * the list in tl and *next naming the host after it. NULL when the job
 * is decided.
 */
static struct deliver_session *dest_open(struct deliver_job *job,
    struct target_list *tl, size_t *next)
{
	*next = 0;
	if (!dest_targets(job, tl))
		return NULL;
	return open_next(job, tl, next);
}

/*
 * Where a cached session's host stands in job's list: *next is set past
 * it, so that what the host deferred goes to the others. False when no
 * other host is left (or the list cannot be had now).
 */
static bool skip_cached_host(struct deliver_job *job,
    const struct deliver_session *s, struct target_list *tl, size_t *next)
{
	*next = 0;
	if (!dest_targets(job, tl))
		return false;
	for (size_t i = 0; i < tl->count; i++) {
		char addr[108];
		int port = 0;
		if (tl->v[i].path[0] != '\0')
			strlcpy(addr, tl->v[i].path, sizeof(addr));
		else
			sock_addr_format((const struct sockaddr *)
			    &tl->v[i].addr.sa, addr, sizeof(addr), &port);
		if (strcmp(addr, s->addr) == 0 && port == s->port) {
			*next = i + 1;
			tl->sessions[tl->v[i].hop] = 1;
		}
	}
	return targets_left(job, tl, *next);
}

/*
 * The peer for the result: remote_mta (a DSN's Remote-MTA) is the name the
 * server gave in its greeting, else the name we looked up.
 */
static void note_peer(struct deliver_job *job, const struct deliver_session *s)
{
	strlcpy(job->relay, s->relay, sizeof(job->relay));
	strlcpy(job->remote_mta, s->greeting_name[0] ? s->greeting_name :
	    s->host, sizeof(job->remote_mta));
}

static void dest_key(const struct deliver_job *job, char *out, size_t outsize)
{
	/* A session made for REQUIRETLS or TLS-Required: No has another
	 * TLS level than the destination's (deliver_requiretls.c). */
	snprintf(out, outsize, "%s:%s%s", job->transport == TRANSPORT_LMTP ?
	    "lmtp" : job->implicit_tls ? "smtps" : "smtp", job->j.nexthop,
	    job->requiretls ? " requiretls" :
	    job->tls_required_no ? " tls-required-no" : "");
}

/* Did this transaction defer a recipient (a 4xx reply, a broken session)? */
static bool deferred_in_txn(const struct deliver_job *job)
{
	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct deliver_rcpt *r = &job->rcpts[i];
		if (r->in_txn && r->done && r->out.status == 'D')
			return true;
	}
	return false;
}

/*
 * Recipients this transaction deferred are open again for the next host:
 * as Postfix does, a soft failure is taken to be this host's, not the
 * message's. The first reason goes to the log, as a refused greeting's
 * does.
 */
static void reopen_deferred(struct deliver_job *job)
{
	bool logged = false;
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct deliver_rcpt *r = &job->rcpts[i];
		if (!r->in_txn || !r->done || r->out.status != 'D')
			continue;
		if (!logged)
			log_info("%s: %s; trying the next host", job->j.queue_id,
			    r->out.text);
		logged = true;
		deliver_outcome_free(&r->out);
		r->done = false;
	}
}

void deliver_dest_send(struct deliver_job *job)
{
	char key[600];
	struct target_list tl = { 0 };
	size_t next = 0;
	dest_key(job, key, sizeof(key));

	struct deliver_session *s = deliver_conn_cache_take(key);
	bool reused = s != NULL;
	if (s == NULL)
		s = dest_open(job, &tl, &next);
	while (s != NULL) {
		job->t_connected = deliver_now();
		note_peer(job, s);
		job->conn_use = s->uses + 1;
		if (!deliver_smtp_transaction(s, job, reused)) {
			/* The cached connection died unseen: once more,
			 * fresh. */
			log_info("%s: cached connection to %s was lost; "
			    "reconnecting", job->j.queue_id, s->relay);
			deliver_session_close(s, false);
			free(s);
			reused = false;
			s = dest_open(job, &tl, &next);
			continue;
		}
		/*
		 * What this host deferred goes to the next one; the last
		 * host's answer stands. A cached session came without the
		 * list: look it up and go on after the session's host.
		 */
		if (job->local_trouble || !deferred_in_txn(job))
			break;
		bool more_hosts = reused ?
		    skip_cached_host(job, s, &tl, &next) :
		    targets_left(job, &tl, next);
		if (!more_hosts)
			break;
		reopen_deferred(job);
		deliver_session_close(s, true);
		free(s);
		reused = false;
		s = open_next(job, &tl, &next);
	}
	free(tl.v);
	if (s != NULL)
		deliver_conn_cache_put(s, key);
}
