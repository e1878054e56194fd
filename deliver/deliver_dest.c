/*
 * deliver_dest.c - from a job's nexthop to an open session: MX lookup
 * (RFC 5321 5.1), null MX (RFC 7505), implicit MX, address records, and
 * trying the hosts in order until one talks to us.
 *
 * nexthop comes from qmgr (doc/architecture.md): "example.net" and "host:port"
 * get an MX lookup, "[host]" and "[host]:port" do not; LMTP takes
 * "unix:/path" or "[host]:port" and never looks up MX records.
 *
 * A failure at one host (no connection, 4xx or 5xx greeting, EHLO refused,
 * a loop) moves on to the next; only the last host's failure decides the
 * recipients' fate, as in Postfix, so that one broken MX never bounces
 * mail another MX would take.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "cfg.h"
#include "deliver.h"
#include "dns.h"
#include "log.h"
#include "mem.h"
#include "sock.h"

#define DEST_MAX_ADDRESSES 10	/* addresses tried per job, all MX hosts */

struct target {
	char host[256];
	struct dns_addr addr;
};

struct target_list {
	struct target *v;
	size_t count;
	bool tempfail;		/* some lookup failed for now */
	char err[512];		/* the last lookup failure */
};

static void targets_add_host(struct target_list *tl, const char *host,
    int port)
{
	struct dns_addr *addrs;
	size_t n;
	char err[512];

	enum dns_result r = dns_lookup_addrs(host, port, &addrs, &n, err,
	    sizeof(err));
	if (r != DNS_OK) {
		if (r == DNS_TEMPFAIL)
			tl->tempfail = true;
		strlcpy(tl->err, err, sizeof(tl->err));
		return;
	}
	for (size_t i = 0; i < n && tl->count < DEST_MAX_ADDRESSES; i++) {
		tl->v = xreallocarray(tl->v, tl->count + 1, sizeof(*tl->v));
		strlcpy(tl->v[tl->count].host, host, sizeof(tl->v[0].host));
		tl->v[tl->count].addr = addrs[i];
		tl->count++;
	}
	free(addrs);
}

/* Fill tl for an SMTP nexthop; false when the job is decided already. */
static bool smtp_targets(struct deliver_job *job, const struct endpoint *ep,
    struct target_list *tl)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	bool literal = sock_addr_parse(ep->host, ep->port, &ss, &sslen);

	if (ep->bracketed || literal) {
		targets_add_host(tl, ep->host, ep->port);
	} else {
		struct dns_mx *mx;
		size_t n;
		char err[512];
		enum dns_result r = dns_lookup_mx(ep->host, &mx, &n, err,
		    sizeof(err));
		switch (r) {
		case DNS_OK:
			for (size_t i = 0; i < n; i++)
				targets_add_host(tl, mx[i].host, ep->port);
			free(mx);
			break;
		case DNS_NOTFOUND:
			/* RFC 5321 5.1: the domain itself is the implicit MX. */
			targets_add_host(tl, ep->host, ep->port);
			break;
		case DNS_NULLMX:
			deliver_fail_open(job, 'B', "5.1.10", err, err);
			return false;
		case DNS_TEMPFAIL:
			deliver_fail_open(job, 'D', "4.4.3", err, err);
			job->nexthop_down = true;
			return false;
		case DNS_FAIL:
			deliver_fail_open(job, 'B', "5.4.4", err, err);
			return false;
		}
	}
	if (tl->count == 0) {
		if (tl->tempfail) {
			deliver_fail_open(job, 'D', "4.4.3", tl->err, tl->err);
			job->nexthop_down = true;
		} else {
			deliver_fail_open(job, 'B', "5.4.4", tl->err, tl->err);
		}
		return false;
	}
	return true;
}

/*
 * Open a session to the first host from tl->v[*next] on that talks to us;
 * *next then names the host after it. When none does, the last host's
 * answer decides the recipients' fate (a 5xx there is for real).
 */
static struct deliver_session *open_next(struct deliver_job *job,
    struct target_list *tl, size_t *next)
{
	bool lmtp = job->transport == TRANSPORT_LMTP;
	struct deliver_outcome last = { 0 };
	struct deliver_session *s = xcalloc(1, sizeof(*s));

	for (size_t i = *next; i < tl->count; i++) {
		deliver_outcome_free(&last);
		if (deliver_session_open(s, job, (struct sockaddr *)&tl->v[i].addr.sa,
		    tl->v[i].addr.salen, tl->v[i].host, NULL, lmtp, &last) ==
		    SESS_OPEN_OK) {
			deliver_outcome_free(&last);
			*next = i + 1;
			return s;
		}
		if (i + 1 < tl->count)
			log_info("%s: %s; trying the next host", job->queue_id,
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

/* A session over the Unix socket at path (LMTP), or NULL when decided. */
static struct deliver_session *open_unix(struct deliver_job *job,
    const char *path)
{
	struct deliver_outcome last = { 0 };
	struct deliver_session *s = xcalloc(1, sizeof(*s));

	if (deliver_session_open(s, job, NULL, 0, "localhost", path, true, &last) ==
	    SESS_OPEN_OK) {
		deliver_outcome_free(&last);
		return s;
	}
	job->nexthop_down = true;
	deliver_fail_open(job, last.status, last.dsn, last.diag, last.text);
	deliver_outcome_free(&last);
	free(s);
	return NULL;
}

/*
 * The hosts of job's nexthop into tl, replacing what it held. A Unix
 * socket (LMTP) leaves tl empty (ep says where). False when the job
 * is decided: its recipients have their outcome.
 */
static bool dest_targets(struct deliver_job *job, struct target_list *tl,
    struct endpoint *ep)
{
	bool lmtp = job->transport == TRANSPORT_LMTP;
	char err[512];

	free(tl->v);
	memset(tl, 0, sizeof(*tl));
	bool parsed = endpoint_parse(job->nexthop, lmtp ? 24 : 25, ep, err,
	    sizeof(err));
	if (parsed && !lmtp && ep->kind == ENDPOINT_UNIX) {
		snprintf(err, sizeof(err), "SMTP needs a host, not a Unix socket");
		parsed = false;
	}
	if (!parsed) {
		char text[700];
		snprintf(text, sizeof(text), "bad nexthop \"%s\" for %s: %s",
		    job->nexthop, lmtp ? "lmtp" : "smtp", err);
		log_warning("%s: %s", job->queue_id, text);
		deliver_fail_open(job, 'D', "4.3.5", text, text);
		return false;
	}
	if (ep->kind == ENDPOINT_UNIX)
		return true;
	if (lmtp)
		targets_add_host(tl, ep->host, ep->port);
	if (lmtp && tl->count == 0) {
		deliver_fail_open(job, 'D', "4.4.3", tl->err, tl->err);
		job->nexthop_down = true;
		return false;
	}
	return lmtp || smtp_targets(job, ep, tl);
}

/*
 * A session to the first host of job's nexthop that talks to us, with
 * the list in tl and *next naming the host after it. NULL when the job
 * is decided.
 */
static struct deliver_session *dest_open(struct deliver_job *job,
    struct target_list *tl, size_t *next)
{
	struct endpoint ep;

	*next = 0;
	if (!dest_targets(job, tl, &ep))
		return NULL;
	if (ep.kind == ENDPOINT_UNIX)
		return open_unix(job, ep.path);
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
	struct endpoint ep;

	*next = 0;
	if (!dest_targets(job, tl, &ep))
		return false;
	for (size_t i = 0; i < tl->count; i++) {
		char addr[64];
		int port;
		sock_addr_format((const struct sockaddr *)&tl->v[i].addr.sa,
		    addr, sizeof(addr), &port);
		if (strcmp(addr, s->addr) == 0 && port == s->port)
			*next = i + 1;
	}
	return *next < tl->count;
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
	snprintf(out, outsize, "%s:%s", job->transport == TRANSPORT_LMTP ?
	    "lmtp" : "smtp", job->nexthop);
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
			log_info("%s: %s; trying the next host", job->queue_id,
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
			    "reconnecting", job->queue_id, s->relay);
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
		    skip_cached_host(job, s, &tl, &next) : next < tl.count;
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
