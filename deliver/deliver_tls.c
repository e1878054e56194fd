/*
 * deliver_tls.c - STARTTLS for the SMTP/LMTP client (RFC 3207) at the
 * session's TLS security level (deliver_tls_policy.c), on top of
 * mail/tls.c and mail/tls_policy.c.
 *
 * At "may" (and "dane" without DNSSEC-validated TLSA records, RFC 7672
 * 2.2; deliver_dane.c decides) TLS is opportunistic: encrypt when the peer offers it, fall back
 * to plain text when the handshake fails. At every other level TLS is
 * required: no STARTTLS, a refused STARTTLS, a failed handshake or a
 * certificate that falls short of the level defers the mail with
 * "4.7.x TLS is required, but ..." and never goes on in plain text.
 * Implicit TLS (smtp_tls_wrappermode, or port 465: RFC 8314 3.3) starts
 * the handshake before the greeting, and is always required.
 * Each TLS session is logged as Postfix does: "Verified", "Trusted",
 * "Untrusted" or "Anonymous TLS connection established to ...".
 *
 * The certificate chain is verified against smtp_tls_CAfile and
 * smtp_tls_CApath with SSL_VERIFY_NONE: OpenSSL keeps the result, and
 * tls_peer_trust() judges it, so that an opportunistic session is not
 * broken by a certificate nobody asked to check.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>

#include "cfg.h"
#include "deliver.h"
#include "log.h"
#include "sock.h"
#include "tls.h"

static SSL_CTX *tls_ctx;

/*
 * Client session cache (RFC 8446 2.2 and 4.6.1, RFC 5077): for each
 * server and policy, the newest resumable session that any connection
 * to it brought, from a full handshake or a resumed one. In this
 * process only: qmgr sends a destination's jobs to few deliver
 * processes.
 *
 * A TLS 1.3 server sends its tickets after the handshake (OpenSSL hands
 * them to session_new(), perhaps several, with the first reply read);
 * after a resumption it may send none (Postfix's smtpd and OpenSSL's
 * default ticket callback send one only when the ticket's key is old).
 * OpenSSL marks a TLS 1.3 session it has resumed as used up (RFC 8446
 * C.4: clients SHOULD NOT reuse a ticket), so each connection is offered
 * a copy, and an entry serves until a newer session replaces it, the
 * server refuses it, it expires, or a handshake fails; as Postfix's
 * smtp(8) does with its tlsmgr cache. A newer ticket always wins, so a
 * server that sends one per connection is offered each ticket once.
 *
 * The key: the relay ("host[addr]:port": the address, and the host name
 * that is also the SNI, by which a server may pick its certificate),
 * the level and the entry's protocols and ciphers. Names, MTA-STS names
 * and fingerprints need not be in it: the certificate and its chain's
 * verdict are kept in the session, and handshake() judges them again
 * for every connection, resumed or not. DANE sessions are neither
 * offered nor kept: OpenSSL's TLSA check runs only in a full handshake.
 */
#define SESSION_CACHE_SIZE 32
#define SESSION_MAX_AGE (7 * 24 * 3600)	/* RFC 8446 4.6.1 */

static struct {
	char key[512];		/* session_key() */
	SSL_SESSION *session;
	unsigned long long used;	/* for evicting the oldest */
	unsigned long long stored;	/* tells one session from its successor */
} session_cache[SESSION_CACHE_SIZE];
static unsigned long long session_clock;

/* false when the key does not fit: such a session is not cached. */
static bool session_key(const struct deliver_session *s, char *out,
    size_t outsize)
{
	const struct tls_dest_policy *p = &s->tls_policy;
	int n = p->has_protocols ?
	    snprintf(out, outsize, "%s %s protocols=%d-%d ciphers=%s",
	    s->relay, tls_level_name(p->level), p->protocols.min_version,
	    p->protocols.max_version, p->protocols.ciphers) :
	    snprintf(out, outsize, "%s %s", s->relay, tls_level_name(p->level));
	return n > 0 && (size_t)n < outsize;
}

static int session_slot(const char *key, bool for_new)
{
	int oldest = 0;
	for (int i = 0; i < SESSION_CACHE_SIZE; i++) {
		if (session_cache[i].session != NULL &&
		    strcmp(session_cache[i].key, key) == 0)
			return i;
		if (session_cache[i].used < session_cache[oldest].used)
			oldest = i;
	}
	return for_new ? oldest : -1;
}

static void session_drop(int i)
{
	SSL_SESSION_free(session_cache[i].session);
	session_cache[i].session = NULL;
	session_cache[i].used = 0;
}

static void session_forget(const struct deliver_session *s)
{
	char key[sizeof(session_cache[0].key)];
	int i = session_key(s, key, sizeof(key)) ? session_slot(key, false) : -1;
	if (i >= 0)
		session_drop(i);
}

/* May the session be offered? Not when OpenSSL says it cannot be
 * resumed (used up, or its connection ended with an alert), nor past
 * its lifetime: the ticket's, the session's, and 7 days at most. */
static bool session_usable(const SSL_SESSION *session)
{
	if (!SSL_SESSION_is_resumable(session))
		return false;
	long lifetime = SSL_SESSION_get_timeout(session);
	if (SSL_SESSION_has_ticket(session)) {
		unsigned long hint = SSL_SESSION_get_ticket_lifetime_hint(session);
		if (hint > 0 && hint < (unsigned long)lifetime)
			lifetime = (long)hint;
	}
	if (lifetime > SESSION_MAX_AGE)
		lifetime = SESSION_MAX_AGE;
	return time(NULL) - SSL_SESSION_get_time(session) < lifetime;
}

/* OpenSSL hands over each new session (a TLS 1.3 ticket may come after
 * the handshake, with the first reply read); the newest replaces the
 * entry. A connection without app data keeps nothing (DANE, or a
 * server that failed its check). */
static int session_new(SSL *ssl, SSL_SESSION *session)
{
	const struct deliver_session *s = SSL_get_app_data(ssl);
	char key[sizeof(session_cache[0].key)];
	if (s == NULL || !SSL_SESSION_is_resumable(session) ||
	    !session_key(s, key, sizeof(key)))
		return 0;
	int i = session_slot(key, true);
	if (session_cache[i].session != NULL)
		SSL_SESSION_free(session_cache[i].session);
	snprintf(session_cache[i].key, sizeof(session_cache[i].key), "%s", key);
	session_cache[i].session = session;
	session_cache[i].used = ++session_clock;
	session_cache[i].stored = session_clock;
	return 1;	/* ours now */
}

/*
 * Offer ssl the cached session for s, if there is a usable one; returns
 * the entry's stored stamp (0: none offered), for session_not_resumed().
 */
static unsigned long long session_offer(const struct deliver_session *s,
    SSL *ssl)
{
	char key[sizeof(session_cache[0].key)];
	int i = session_key(s, key, sizeof(key)) ? session_slot(key, false) : -1;
	if (i < 0)
		return 0;
	if (!session_usable(session_cache[i].session)) {
		session_drop(i);
		return 0;
	}
	/* A copy, for OpenSSL to use up (above). A stale or refused
	 * session only costs a full handshake. */
	SSL_SESSION *copy = SSL_SESSION_dup(session_cache[i].session);
	bool set = copy != NULL && SSL_set_session(ssl, copy) == 1;
	SSL_SESSION_free(copy);		/* ssl holds its own reference */
	if (!set) {
		ERR_clear_error();
		return 0;
	}
	session_cache[i].used = ++session_clock;
	return session_cache[i].stored;
}

/* A full handshake though a session was offered: the server refused it,
 * so drop it, unless the handshake already brought a newer one (TLS 1.2
 * hands it over during the handshake, TLS 1.3 only later). */
static void session_not_resumed(const struct deliver_session *s,
    unsigned long long offered)
{
	char key[sizeof(session_cache[0].key)];
	int i = session_key(s, key, sizeof(key)) ? session_slot(key, false) : -1;
	if (i >= 0 && session_cache[i].stored == offered)
		session_drop(i);
}

void deliver_tls_init(void)
{
	deliver_tls_policy_init();
	deliver_dane_init();
}

/*
 * The client context, made at the first session that would start TLS,
 * not at the process's start (issue 20): OpenSSL's initialisation and
 * the context are some 2.9 MiB of RSS and 390 KiB of heap in every
 * deliver process, and one that only speaks LMTP or to servers without
 * STARTTLS never needs them. Made once: a failure is logged once and
 * leaves STARTTLS off for this process, as it did at the start. The
 * files it reads (OpenSSL's config, smtp_tls_CAfile) are under /etc
 * or named by a key, which deliver's Landlock rules let it read.
 */
static SSL_CTX *tls_context(void)
{
	static bool tried;

	if (tried)
		return tls_ctx;
	tried = true;
	tls_ctx = tls_client_context();
	if (tls_ctx == NULL) {
		log_warning("cannot create a TLS client context: STARTTLS "
		    "disabled");
		return NULL;
	}
	/* OpenSSL's DANE verifier, used by sessions with TLSA records. */
	if (SSL_CTX_dane_enable(tls_ctx) <= 0) {
		ERR_clear_error();
		log_warning("OpenSSL refuses DANE: TLSA records cannot be "
		    "used");
	}
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	if (cfg.smtp_tls_session_cache) {
		SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_CLIENT |
		    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(tls_ctx, session_new);
	}
	const char *file = cfg.smtp_tls_CAfile[0] ? cfg.smtp_tls_CAfile : NULL;
	const char *dir = cfg.smtp_tls_CApath[0] ? cfg.smtp_tls_CApath : NULL;
	if ((file != NULL || dir != NULL) &&
	    SSL_CTX_load_verify_locations(tls_ctx, file, dir) != 1) {
		char why[256];
		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
		ERR_clear_error();
		log_warning("cannot load smtp_tls_CAfile %s or smtp_tls_CApath "
		    "%s: %s: no certificate can be verified", file ? file : "",
		    dir ? dir : "", why);
	}
	return tls_ctx;
}

/*
 * Defer with "TLS is required, but <why>" (RFC 3207 6: a client that
 * requires TLS must not go on without it), saying when it is for the
 * password's sake.
 */
static void tls_required(const struct deliver_session *s,
    struct deliver_outcome *out, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void tls_required(const struct deliver_session *s,
    struct deliver_outcome *out, const char *dsn, const char *fmt, ...)
{
	char why[700], text[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(text, sizeof(text), "TLS is required, but %s%s%s", why,
	    s->tls_for_sasl ? " (SASL credentials go only over a channel of "
	    "smtp_sasl_tls_security_level)" : "",
	    s->requiretls ? " (the message requires TLS: REQUIRETLS)" : "");
	/* RFC 8689 5: a REQUIRETLS message bounces with 5.7.10. */
	deliver_outcome_set(out, s->requiretls ? 'B' : 'D',
	    s->requiretls ? "5.7.10" : dsn, text, text);
}

/* A new SSL for s: SNI, the destination's protocols and ciphers, and
 * at DANE the server's TLSA records (nexthop: the next-hop domain);
 * else the cached session, if any (offered: session_offer()). */
static SSL *session_ssl(struct deliver_session *s, const char *nexthop,
    unsigned long long *offered)
{
	*offered = 0;
	SSL *ssl = SSL_new(tls_ctx);
	if (ssl == NULL)
		return NULL;
	/* SNI: some servers pick their certificate by it. */
	if (s->host[0] != '\0' && strchr(s->host, '/') == NULL)
		SSL_set_tlsext_host_name(ssl, s->host);
	const struct tls_dest_policy *p = &s->tls_policy;
	if (p->has_protocols &&
	    (SSL_set_min_proto_version(ssl, p->protocols.min_version) != 1 ||
	    SSL_set_max_proto_version(ssl, p->protocols.max_version) != 1 ||
	    SSL_set_cipher_list(ssl, p->protocols.ciphers) != 1)) {
		ERR_clear_error();
		SSL_free(ssl);
		return NULL;
	}
	if (s->dane_active) {
		/* No resumption: a resumed session skips the TLSA check,
		 * and the records may have changed since. */
		if (!deliver_dane_ssl(s, ssl, nexthop)) {
			SSL_free(ssl);
			return NULL;
		}
		return ssl;
	}
	SSL_set_app_data(ssl, (void *)s);
	*offered = session_offer(s, ssl);
	return ssl;
}

/*
 * The handshake on s's connection and the check of the certificate at
 * s's level; required: a failure defers instead of falling back.
 */
static enum deliver_tls_step handshake(struct deliver_session *s,
    struct deliver_job *job, bool required, struct deliver_outcome *out)
{
	enum tls_level level = s->tls_policy.level;
	deliver_session_enter(s, SESS_TLS_HANDSHAKE);
	char err[256];
	struct endpoint ep;
	bool have_ep = endpoint_parse(job->j.nexthop, 25, &ep, err, sizeof(err));
	unsigned long long offered;
	SSL *ssl = session_ssl(s, have_ep ? ep.host : NULL, &offered);
	if (ssl == NULL) {
		snprintf(err, sizeof(err), s->dane_active ? "OpenSSL takes none "
		    "of the TLSA records" : "the protocols or ciphers of its "
		    "smtp_tls_policy_maps entry are refused by OpenSSL");
	}
	/* The handshake waits in poll(2) on a non-blocking socket: an LMTP
	 * session's timed reads (deliver_session.c) end here. */
	if (ssl != NULL && !bio_timed_reads_end(&s->bio)) {
		snprintf(err, sizeof(err), "%s", strerror(errno));
		SSL_free(ssl);
		ssl = NULL;
	}
	if (ssl == NULL || !tls_start_ssl(&s->bio, ssl, TLS_ROLE_CLIENT,
	    s->bio.timeout_ms, err, sizeof(err))) {
		/* Whatever failed, the next try starts afresh. */
		session_forget(s);
		deliver_tlsrpt_note(s, "validation-failure", err);
		if (!required) {
			log_info("%s: TLS handshake failed with %s: %s; trying "
			    "again without TLS", job->j.queue_id, s->relay, err);
			return DELIVER_TLS_RETRY_PLAIN;
		}
		s->usable = false;	/* half a handshake: no QUIT */
		tls_required(s, out, "4.7.5", "the TLS handshake with host %s "
		    "failed: %s", s->relay, err);
		return DELIVER_TLS_FAILED;
	}
	s->tls = s->bio.transport;
	if (offered != 0 && !SSL_session_reused(tls_ssl(&s->bio)))
		session_not_resumed(s, offered);
	tls_describe(&s->bio, job->tls_info, sizeof(job->tls_info));

	const struct tls_dest_policy *p = &s->tls_policy;
	bool fp = level == TLS_LEVEL_FINGERPRINT;
	char why[512], matched[300] = "";
	enum tls_trust trust = s->dane_active ?
	    deliver_dane_trust(s, tls_ssl(&s->bio), matched, sizeof(matched),
	    why, sizeof(why)) :
	    tls_peer_trust(tls_ssl(&s->bio),
	    fp ? NULL : s->tls_names, fp ? 0 : s->tls_nnames,
	    fp ? p->match : NULL, fp ? p->nmatch : 0, why, sizeof(why));
	/* Postfix's words: "reused" for a resumed session. */
	log_info("%s: %s TLS connection %s to %s: %s%s", job->j.queue_id,
	    tls_trust_name(trust), SSL_session_reused(tls_ssl(&s->bio)) ?
	    "reused" : "established", s->relay, job->tls_info,
	    s->dane_active ? " (DANE)" : "");
	if (matched[0] != '\0')
		log_info("%s: DANE %s of %s", job->j.queue_id, matched, s->relay);
	s->tls_trust = trust;
	deliver_tlsrpt_trust(s, tls_ssl(&s->bio), trust, why);
	if ((tls_level_authenticates(level) || s->dane_active) &&
	    trust != TLS_TRUST_VERIFIED) {
		/* Keep no session of a server that failed its check. */
		SSL_set_app_data(tls_ssl(&s->bio), NULL);
		log_info("%s: server certificate not verified for %s at level "
		    "%s%s: %s", job->j.queue_id, s->relay, tls_level_name(level),
		    s->dane_active ? " (TLSA records)" : "", why);
		tls_required(s, out, "4.7.5", "the certificate of host %s "
		    "could not be verified (level %s): %s", s->relay,
		    tls_level_name(level), why);
		return DELIVER_TLS_FAILED;
	}
	return DELIVER_TLS_OK;
}

enum deliver_tls_step deliver_tls_negotiate(struct deliver_session *s,
    struct deliver_job *job, struct deliver_outcome *out)
{
	enum tls_level level = s->tls_policy.level;
	/* RFC 7672 2.2: usable TLSA records make TLS a must. */
	bool required = !tls_level_optional(level) || s->dane_active;

	if (level == TLS_LEVEL_NONE || s->tls != NULL)
		return DELIVER_TLS_PLAIN;	/* none, or implicit TLS is up */
	if (level == TLS_LEVEL_DANE_ONLY && !s->dane_active) {
		/* RFC 7672 2.2: no DNSSEC-validated TLSA, no DANE. */
		tls_required(s, out, "4.7.5", "no DNSSEC-validated TLSA records "
		    "were found for host %s%s%s%s", s->relay,
		    s->dane_why[0] ? " (" : "", s->dane_why,
		    s->dane_why[0] ? ")" : "");
		return DELIVER_TLS_FAILED;
	}
	if (!(s->ext & SESS_EXT_STARTTLS)) {
		deliver_tlsrpt_note(s, "starttls-not-supported", "STARTTLS "
		    "was not offered");
		if (!required)
			return DELIVER_TLS_PLAIN;
		tls_required(s, out, "4.7.4", "was not offered by host %s",
		    s->relay);
		return DELIVER_TLS_FAILED;
	}
	if (tls_context() == NULL) {
		if (!required)
			return DELIVER_TLS_PLAIN;
		tls_required(s, out, "4.7.5", "no TLS client context could be "
		    "made (see deliver's log)");
		return DELIVER_TLS_FAILED;
	}
	if (!deliver_session_command(s, SESS_STARTTLS, "STARTTLS")) {
		deliver_session_io_failure(s, out, s->last_io);
		return DELIVER_TLS_FAILED;
	}
	if (s->reply.code != 220) {
		deliver_tlsrpt_note(s, "starttls-not-supported", "STARTTLS "
		    "was refused");
		if (!required)
			return DELIVER_TLS_PLAIN;
		char said[300];
		log_escape(said, sizeof(said), s->reply.text.data,
		    s->reply.text.len);
		tls_required(s, out, "4.7.5", "host %s refused to start TLS: %s",
		    s->relay, said);
		return DELIVER_TLS_FAILED;
	}
	/* RFC 3207 4.2: nothing the server sent before TLS counts. */
	bio_discard_input(&s->bio);
	return handshake(s, job, required, out);
}

bool deliver_tls_implicit(const struct deliver_session *s)
{
	/* RFC 8314 3.3: port 465 is TLS from the first byte. */
	return !s->lmtp && s->port != 0 && (cfg.smtp_tls_wrappermode ||
	    s->port == 465 || s->implicit_tls);
}

enum deliver_tls_step deliver_tls_wrap(struct deliver_session *s,
    struct deliver_job *job, struct deliver_outcome *out)
{
	if (tls_context() == NULL) {
		tls_required(s, out, "4.7.5", "no TLS client context could be "
		    "made (see deliver's log)");
		return DELIVER_TLS_FAILED;
	}
	if (s->tls_policy.level == TLS_LEVEL_DANE_ONLY && !s->dane_active) {
		tls_required(s, out, "4.7.5", "no DNSSEC-validated TLSA records "
		    "were found for host %s%s%s%s", s->relay,
		    s->dane_why[0] ? " (" : "", s->dane_why,
		    s->dane_why[0] ? ")" : "");
		return DELIVER_TLS_FAILED;
	}
	/* No plain text to fall back to: TLS is required at every level. */
	return handshake(s, job, true, out);
}

void deliver_tls_end(struct deliver_session *s)
{
	if (s->tls == NULL)
		return;
	tls_end(&s->bio);
	s->tls = NULL;
}
