/*
 * deliver_requiretls.c - REQUIRETLS and TLS-Required (RFC 8689) on the
 * way out.
 *
 * A message that came with "MAIL FROM:<...> REQUIRETLS" (the queue
 * file's Q record) goes only over TLS that authenticates the server
 * (DANE, or a certificate verified for the MX name that DNSSEC vouched
 * for, or for the next-hop domain; RFC 8689 4.2.1) to a server that
 * offers REQUIRETLS itself, and carries the parameter on. Where that
 * cannot be had, the host's answer is a bounce: 5.7.10 for TLS that
 * fails or does not authenticate, 5.7.30 for a server without
 * REQUIRETLS (RFC 8689 5); the next MX host is tried first, and the
 * last one's answer stands. A message without it whose header says
 * "TLS-Required: No" (RFC 8689 5) is delivered with opportunistic TLS
 * whatever the destination's TLS policy asks, except that a password
 * never goes where it would not go otherwise.
 *
 * Trusts the queue file (ours) and qmgr's job, which carries the Q
 * record; the header field is the sender's and only compared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "requiretls.h"
#include "sock.h"

/* How much of the header section is searched for TLS-Required. */
#define HEADER_SCAN_MAX (64 * 1024)

void deliver_requiretls_job(struct deliver_job *job)
{
	/* job->requiretls came with the job (qmgr read the Q record). */
	job->tls_required_no = false;
	if (job->requiretls)
		return;	/* RFC 8689 4.1: then the header is ignored */
	/* The head deliver.c read covers the header section up to
	 * HEADER_SCAN_MAX; only a longer one is read here. */
	size_t want = job->j.content_length < HEADER_SCAN_MAX ?
	    (size_t)job->j.content_length : HEADER_SCAN_MAX;
	const char *text = job->head;
	char *buf = NULL;
	ssize_t n = (ssize_t)job->head_len;
	if (job->head_len < want) {
		buf = xmalloc(want + 1);
		n = pread(job->content_fd, buf, want, job->j.content_offset);
		text = buf;
	}
	if (n > 0 && requiretls_header_says_no(text, (size_t)n)) {
		job->tls_required_no = true;
		log_info("%s: TLS-Required: No: the destination's TLS policy "
		    "is not enforced", job->j.queue_id);
	}
	free(buf);
}

void deliver_requiretls_level(struct deliver_session *s,
    const struct deliver_job *job, const char *domain)
{
	enum tls_level level = s->tls_policy.level;

	s->requiretls = job->requiretls && !s->lmtp;
	if (s->lmtp)
		return;
	if (job->tls_required_no && !job->requiretls) {
		/* RFC 8689 5: the sender prefers delivery to the policy;
		 * not so far that a password goes out unprotected. */
		if (!s->tls_for_sasl && level != TLS_LEVEL_NONE &&
		    level != TLS_LEVEL_MAY)
			deliver_tls_policy_set_level(s, TLS_LEVEL_MAY, domain);
		return;
	}
	if (!s->requiretls || tls_level_authenticates(level) ||
	    level == TLS_LEVEL_DANE)
		return;	/* dane: deliver_dane.c decides, then again below */
	/*
	 * RFC 8689 4.2.1: the server's name must be one an attacker cannot
	 * choose: the MX host when DNSSEC vouched for it, else the
	 * next-hop domain (as secure checks it).
	 */
	deliver_tls_policy_set_level(s, s->host_secure ? TLS_LEVEL_VERIFY :
	    TLS_LEVEL_SECURE, domain);
}

void deliver_requiretls_after_dane(struct deliver_session *s,
    const struct deliver_job *job)
{
	struct endpoint ep;
	char err[256];

	if (!s->requiretls || s->dane_active ||
	    tls_level_authenticates(s->tls_policy.level) ||
	    !endpoint_parse(job->j.nexthop, 25, &ep, err, sizeof(err)))
		return;
	/* DANE did not apply: PKIX as above. */
	deliver_tls_policy_set_level(s, s->host_secure ? TLS_LEVEL_VERIFY :
	    TLS_LEVEL_SECURE, ep.host);
}

bool deliver_requiretls_check(struct deliver_session *s,
    struct deliver_job *job)
{
	char text[700];

	if (!job->requiretls || s->lmtp)
		return true;
	if (s->tls == NULL || s->tls_trust != TLS_TRUST_VERIFIED) {
		snprintf(text, sizeof(text), "REQUIRETLS: the TLS session with "
		    "host %s is not authenticated", s->relay);
		deliver_fail_open(job, 'B', "5.7.10", text, text);
		return false;
	}
	if (!(s->ext & SESS_EXT_REQUIRETLS)) {
		snprintf(text, sizeof(text), "REQUIRETLS support required, but "
		    "host %s does not offer it", s->relay);
		deliver_fail_open(job, 'B', "5.7.30", text, text);
		return false;
	}
	return true;
}
