/*
 * deliver.h - the delivery agent's private interfaces: one job from qmgr
 * (doc/architecture.md), the SMTP/LMTP client session that carries it, the one
 * cached connection, and the opportunistic TLS layer.
 *
 * A job is trusted as far as qmgr is (same user, our own socket), but
 * still checked field by field. Everything a peer says is untrusted:
 * bounded, parsed strictly, escaped before it is logged.
 */
#ifndef POSTERN_DELIVER_H
#define POSTERN_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "bio.h"
#include "dane.h"
#include "job.h"
#include "queue.h"
#include "str.h"
#include "tls_policy.h"

enum deliver_transport {
	TRANSPORT_SMTP,
	TRANSPORT_LMTP,
};

/* What happened to a recipient (or to all of a job's recipients). */
struct deliver_outcome {
	char status;		/* 'S' sent, 'D' deferred, 'B' bounced */
	char dsn[16];		/* RFC 3463 "x.y.z" */
	char *diag;		/* for qmgr: the peer's reply or our words */
	char *text;		/* for the log: "host H[A] said: ... (in reply
				   to RCPT TO command)" or our words */
};

/* One recipient of the job: what qmgr said of it (borrowed from the
 * job's struct job_rcpt, which owns the strings), and what happened. */
struct deliver_rcpt {
	long number;		/* the queue file's recipient number */
	const char *address;	/* "user@domain", no brackets */
	unsigned notify;	/* QUEUE_NOTIFY_* bits, 0 if not given */
	const char *orcpt;	/* "type;address" or NULL */
	const char *orig_to;	/* the address an alias expanded, or NULL */
	bool in_txn;		/* RCPT sent in the current transaction */
	bool accepted;		/* RCPT got 2xx in the current transaction */
	bool done;		/* outcome is final for this job */
	struct deliver_outcome out;
	char *generic;		/* smtp_generic_maps' address, or NULL */
};

struct deliver_job {
	/* qmgr's job as mail/job.c decoded it (it owns the strings;
	 * job_clear() frees them); content_length changes when
	 * smtp_generic_maps rewrote the content. */
	struct job j;
	enum deliver_transport transport;
	int content_fd;
	/* The content's first DELIVER_HEAD_MAX bytes (or all of it), read
	 * once when the job starts, for the header checks and the first
	 * chunk sent. */
	char *head;
	size_t head_len;
	double t_received;	/* when this process got it */
	double t_connected;	/* session ready (or reused) */
	struct deliver_rcpt *rcpts;
	size_t nrcpts;
	/* for the result */
	char relay[320];	/* "mx.example.net[192.0.2.4]:25" or "none" */
	char remote_mta[256];
	bool nexthop_down;
	bool dsn_passed;	/* the last peer took NOTIFY and ORCPT (DSN) */
	bool local_trouble;	/* the transaction failed on our side */
	unsigned conn_use;	/* transactions on the session, this one included */
	char tls_info[160];	/* "TLSv1.3 with cipher ..." or "" */
	/* RFC 8689 (deliver_requiretls.c) */
	bool requiretls;	/* MAIL FROM ... REQUIRETLS (queue's Q record) */
	bool tls_required_no;	/* "TLS-Required: No" in the header */
	bool implicit_tls;	/* transport smtps: TLS from the first byte */
	/* deliver_generic.c: smtp_generic_maps applied (content swapped) */
	char *generic_sender;	/* the rewritten sender, or NULL */
	bool generic_done;
};

/* ---- deliver.c ---- */
#define DELIVER_HEAD_MAX 65536
double deliver_now(void);
void deliver_outcome_set(struct deliver_outcome *o, char status,
    const char *dsn, const char *diag, const char *text);
void deliver_outcome_free(struct deliver_outcome *o);
/* Give every recipient still open this outcome. */
void deliver_fail_open(struct deliver_job *job, char status, const char *dsn,
    const char *diag, const char *text);

/* ---- deliver_session.c: one SMTP or LMTP connection ---- */

#define SESS_EXT_PIPELINING 0x001
#define SESS_EXT_SIZE 0x002
#define SESS_EXT_8BITMIME 0x004
#define SESS_EXT_SMTPUTF8 0x008
#define SESS_EXT_DSN 0x010
#define SESS_EXT_STARTTLS 0x020
#define SESS_EXT_ENHANCED 0x040
#define SESS_EXT_CHUNKING 0x080
#define SESS_EXT_BINARYMIME 0x100
#define SESS_EXT_AUTH 0x200
#define SESS_EXT_REQUIRETLS 0x400

/* SASL mechanisms a server offers in its AUTH keyword, that we speak. */
#define SESS_AUTH_PLAIN 0x1
#define SESS_AUTH_LOGIN 0x2

/* Where the client is in the conversation; names the "while ..." texts. */
enum sess_state {
	SESS_CONNECT,
	SESS_GREETING,
	SESS_EHLO,
	SESS_HELO,
	SESS_STARTTLS,
	SESS_TLS_HANDSHAKE,
	SESS_AUTH,
	SESS_READY,		/* between transactions */
	SESS_MAIL,
	SESS_RCPT,
	SESS_DATA,
	SESS_BODY,
	SESS_DOT,		/* waiting for the reply(ies) to end of data */
	SESS_RSET,
	SESS_QUIT,
	SESS_CLOSED,
};

struct smtp_reply {
	int code;		/* 0 if none could be read */
	char enhanced[16];	/* "" if the reply carried none */
	struct str text;	/* "250 2.0.0 Ok" lines joined by a space */
	struct str lines;	/* each line's text after the code, '\n' ended */
};

struct deliver_session {
	enum sess_state state;
	bool lmtp;
	int fd;
	struct bio bio;
	void *tls;		/* deliver_tls.c state, NULL when plain */
	char host[256];		/* the name we looked up (MX host) */
	char addr[64];		/* "192.0.2.4", or the Unix socket path */
	int port;		/* 0 for Unix sockets */
	char relay[320];	/* "host[addr]:port" or "host[path]" */
	char greeting_name[256]; /* first word of the greeting */
	unsigned ext;		/* SESS_EXT_* the peer announced */
	unsigned auth_mechs;	/* SESS_AUTH_* in its AUTH keyword */
	long long size_limit;	/* SIZE n, 0 if none */
	unsigned uses;		/* transactions completed on it */
	bool usable;		/* in sync, may carry another transaction */
	bool authenticated;	/* our AUTH was accepted (deliver_auth.c) */
	enum bio_status last_io; /* why the last read or flush failed */
	long long deadline;	/* monotonic ms: smtp_session_time_limit */
	bool expired;		/* that deadline, not a stage's, ended a wait */
	struct smtp_reply reply;
	struct tls_dest_policy tls_policy; /* the level this session must reach */
	char *tls_names[TLS_MATCH_MAX];	/* names a certificate may carry */
	size_t tls_nnames;
	bool tls_for_sasl;	/* level raised for smtp_sasl_password_maps */
	/* DANE (deliver_dane.c) */
	struct dane_tlsa_set dane_tlsa;	/* the server's usable TLSA records */
	bool dane_active;	/* they decide: TLS required and checked by them */
	char dane_why[300];	/* why DANE does not apply, for dane-only */
	char dane_base[256];	/* the TLSA base domain: host, or its CNAME
				 * expansion (RFC 7672 2.2.2) */
	bool host_secure;	/* MX and address DNSSEC-validated */
	enum tls_trust tls_trust; /* how the handshake judged the server */
	bool requiretls;	/* this job's mail needs REQUIRETLS here */
	bool implicit_tls;	/* the job's transport is smtps */
};

/* Result of opening a session to one address. */
enum sess_open_result {
	SESS_OPEN_OK,
	SESS_OPEN_FAILED,	/* *out says why: try the next address */
};

/* host_secure: host's address (and MX) records were DNSSEC-validated. */
enum sess_open_result deliver_session_open(struct deliver_session *s,
    struct deliver_job *job, const struct sockaddr *sa, socklen_t salen,
    const char *host, const char *unix_path, bool lmtp, bool host_secure,
    struct deliver_outcome *out);
void deliver_session_enter(struct deliver_session *s, enum sess_state state);
/* Send one command line and read its reply; false on I/O failure. */
bool deliver_session_command(struct deliver_session *s, enum sess_state state,
    const char *line);
/* Read one (possibly multi-line) reply into s->reply. */
bool deliver_session_read_reply(struct deliver_session *s);
/* Send what is buffered; false on failure. */
bool deliver_session_flush(struct deliver_session *s);
/* Failure texts for I/O trouble in the current state. */
void deliver_session_io_failure(struct deliver_session *s,
    struct deliver_outcome *o, enum bio_status st);
/* An outcome from the peer's reply in the current state. */
void deliver_session_reply_outcome(struct deliver_session *s,
    struct deliver_outcome *o);
/* The bio's deadline for the next wait: the stage's, within the session's. */
void deliver_session_set_timeout(struct deliver_session *s);
/* Start the session's clock (smtp_session_time_limit) again: a new job. */
void deliver_session_start_clock(struct deliver_session *s);
/* QUIT politely (short wait) and close. */
void deliver_session_close(struct deliver_session *s, bool say_quit);
/* Is a cached, idle session still there (no 421, no EOF pending)? */
bool deliver_session_alive(struct deliver_session *s);
/* The same when its socket was just polled quiet: only what is
 * buffered (in the bio or the TLS layer) is checked. */
bool deliver_session_alive_quiet(struct deliver_session *s);

/* ---- deliver_smtp.c: one mail transaction on an open session ---- */

/*
 * Run MAIL/RCPT/DATA (or BDAT) for the job's open recipients. Returns
 * false when the session broke before any recipient was accepted, so the
 * caller may retry on a fresh connection (a cached one can die unseen).
 */
bool deliver_smtp_transaction(struct deliver_session *s,
    struct deliver_job *job, bool may_retry);

/* ---- deliver_dest.c: from nexthop to a session ---- */

/*
 * Deliver the job's recipients: reuse the cached session for its nexthop
 * or open a new one, run the transaction, keep the session for the next
 * job. Every recipient has an outcome afterwards.
 */
void deliver_dest_send(struct deliver_job *job);

/* ---- deliver_conn.c: the one cached connection ---- */

/* The cached session for key, if it is still alive; else closes it. */
struct deliver_session *deliver_conn_cache_take(const char *key);
/* Keep s for the next job to key (closes any other cached session). */
void deliver_conn_cache_put(struct deliver_session *s, const char *key);
bool deliver_conn_cache_active(void);
void deliver_conn_cache_close(void);
/* The cached session's socket, to watch between jobs; -1 if none. */
int deliver_conn_cache_fd(void);
/* Between jobs the cached socket was polled with the job's: quiet
 * (nothing from the peer: the next take need not poll it again), or
 * not (the peer spoke while idle, 421 or EOF: closed now). */
void deliver_conn_cache_polled(bool quiet);

/* ---- deliver_tls.c: STARTTLS at the session's security level ---- */

void deliver_tls_init(void);
enum deliver_tls_step {
	DELIVER_TLS_OK,		/* TLS is up: say EHLO again */
	DELIVER_TLS_PLAIN,	/* go on in plain text (optional levels) */
	DELIVER_TLS_RETRY_PLAIN, /* handshake failed: reconnect, no TLS */
	DELIVER_TLS_FAILED,	/* *out says why; try the next host */
};
/* After EHLO: STARTTLS, handshake and certificate check as s's level
 * demands. */
enum deliver_tls_step deliver_tls_negotiate(struct deliver_session *s,
    struct deliver_job *job, struct deliver_outcome *out);
/* Implicit TLS for s: smtp_tls_wrappermode, or port 465 (RFC 8314)? */
bool deliver_tls_implicit(const struct deliver_session *s);
/* Right after the connect: the handshake, TLS required at any level. */
enum deliver_tls_step deliver_tls_wrap(struct deliver_session *s,
    struct deliver_job *job, struct deliver_outcome *out);
void deliver_tls_end(struct deliver_session *s);

/* ---- deliver_tls_policy.c: the level for a session ---- */

void deliver_tls_policy_init(void);
/* Fill s->tls_policy for job's nexthop and s->host; false with *out
 * when the mail must wait (unreadable or bad policy table). */
bool deliver_tls_policy_get(struct deliver_session *s,
    const struct deliver_job *job, struct deliver_outcome *out);
void deliver_tls_policy_free(struct deliver_session *s);
/* Change s's level after the fact (REQUIRETLS, TLS-Required), with
 * the level's default names; domain: the next-hop domain. */
/* After deliver_dane_prepare: MTA-STS where DANE found nothing. */
void deliver_tls_policy_after_dane(struct deliver_session *s,
    const struct deliver_job *job);
void deliver_tls_policy_set_level(struct deliver_session *s,
    enum tls_level level, const char *domain);

/* ---- deliver_requiretls.c: RFC 8689 ---- */

/* Read the job's REQUIRETLS (Q record) and TLS-Required header. */
void deliver_requiretls_job(struct deliver_job *job);
/* The level REQUIRETLS or TLS-Required: No leaves s (after the policy). */
void deliver_requiretls_level(struct deliver_session *s,
    const struct deliver_job *job, const char *domain);
/* After deliver_dane.c: PKIX for a REQUIRETLS message DANE did not take. */
void deliver_requiretls_after_dane(struct deliver_session *s,
    const struct deliver_job *job);
/* Before MAIL: may this session carry the job's mail? false: bounced. */
bool deliver_requiretls_check(struct deliver_session *s,
    struct deliver_job *job);

/* ---- deliver_dane.c: DANE (RFC 7672) at the levels dane, dane-only ---- */

void deliver_dane_init(void);
/* Are lookups made with DNSSEC, and their AD bit believed? */
bool deliver_dane_dnssec(void);
/*
 * After the level is known: at dane or dane-only, the TLSA records of
 * s's server, and the level they leave (may, encrypt, or DANE with
 * s->dane_active). false with *out when this host must not be used now
 * (a failed or bogus TLSA lookup).
 */
bool deliver_dane_prepare(struct deliver_session *s,
    const struct deliver_job *job, bool host_secure,
    struct deliver_outcome *out);
/* Give ssl the server's TLSA records and reference names; false when
 * OpenSSL takes none of them. */
bool deliver_dane_ssl(struct deliver_session *s, SSL *ssl,
    const char *nexthop);
/* After the handshake: did a TLSA record match? matched names it. */
enum tls_trust deliver_dane_trust(struct deliver_session *s, SSL *ssl,
    char *matched, size_t matchedsize, char *why, size_t whysize);
void deliver_dane_free(struct deliver_session *s);
/* The job whose lookups follow (for the log lines below). */
void deliver_dane_job(const struct deliver_job *job);
/* host's addresses were found, but the lookup of one family failed
 * (what): log that only the other family is used, and how secure. */
void deliver_dane_address_note(const char *host, const char *what,
    bool secure);

/* deliver_auth.c: SMTP AUTH as a client (RFC 4954). */
void deliver_auth_init(void);
/*
 * Authenticate s when smtp_sasl_password_maps has credentials for it;
 * true when done or not wanted, false with *out saying why not.
 */
bool deliver_session_authenticate(struct deliver_session *s,
    struct deliver_job *job, struct deliver_outcome *out);
/* Does smtp_sasl_password_maps hold (or might it hold) credentials
 * for s? */
bool deliver_auth_wanted(const struct deliver_session *s,
    const struct deliver_job *job);

/* ---- deliver_dkim.c: DKIM signatures on the way out ---- */

void deliver_dkim_init(void);
/*
 * The DKIM-Signature fields for this job's content as it will go out
 * (downgrade: converted to 7-bit MIME), appended to out; nothing when
 * the job is not to be signed. false with err: defer the mail.
 */
bool deliver_dkim_sign(const struct deliver_job *job, bool downgrade,
    struct str *out, char *err, size_t errsize);

/* ---- deliver_generic.c: smtp_generic_maps ---- */
void deliver_generic_init(void);
/*
 * Rewrite the envelope (kept beside the job's) and the header fields
 * (the content becomes a rewritten copy) of an SMTP job, once; false
 * with err when a table cannot be read (defer).
 */
bool deliver_generic_prepare(struct deliver_job *job, char *err,
    size_t errsize);
/* The addresses to send in MAIL FROM and RCPT TO. */
const char *deliver_generic_sender(const struct deliver_job *job);
const char *deliver_generic_rcpt(const struct deliver_rcpt *r);
/* ---- deliver_mtasts.c: MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) ---- */

/* Make queue_directory/tls and open mtasts-fetch (before the
 * confinement). */
void deliver_mtasts_init(void);
/* A new job: forget the last one's policy. */
void deliver_mtasts_job(const struct deliver_job *job);
/* The policy of the domain whose MX hosts the job goes to (TXT, cache,
 * fetch); logs which. */
void deliver_mtasts_domain(const char *domain);
/* May this MX host be used (enforce: only those the policy names)? */
bool deliver_mtasts_mx_allowed(const char *mx);
/* Does an enforced policy explain why no MX host is left? why says so. */
bool deliver_mtasts_enforced(char *why, size_t whysize);
/* Raise s's level for an MX host the policy names (below a policy map
 * entry and DANE); in testing mode only the name to check is added. */
void deliver_mtasts_tls_policy(struct deliver_session *s,
    struct tls_dest_policy *p);
/* One TLS-RPT event for s's session: "success" or an RFC 8460 4.3
 * result type; in testing mode, a failure is logged. */
void deliver_tlsrpt_note(const struct deliver_session *s, const char *result,
    const char *info);
/* The same with the policy type given: "tlsa" and its result types
 * (tlsa-invalid, dnssec-invalid, dane-required) are DANE's to record. */
void deliver_tlsrpt_event(const struct deliver_session *s,
    const char *policy_type, const char *result, const char *info);
/* The event for a finished handshake, from the certificate's judgement. */
void deliver_tlsrpt_trust(const struct deliver_session *s, SSL *ssl,
    enum tls_trust trust, const char *why);

/* ---- deliver_mtasts_fetch.c: running mtasts-fetch (mail/mtasts.h) ---- */

/* Open daemon_directory/mtasts-fetch and let the confinement run it. */
void deliver_mtasts_fetch_init(void);
/*
 * Fetch domain's policy from addrs ("192.0.2.1,[2001:db8::1]") within
 * timeout_ms, fetcher's start included: true with *body (malloc'd, NUL
 * ended) and *len, else false with *result_type (RFC 8460 4.3.2:
 * "sts-webpki-invalid" or "sts-policy-fetch-error") and err. A fetcher
 * that is missing, crashes, answers badly or late is a failed fetch.
 */
bool deliver_mtasts_fetch(const char *domain, const char *addrs,
    const char *cafile, const char *capath, long timeout_ms, char **body,
    size_t *len, const char **result_type, char *err, size_t errsize);

#endif
