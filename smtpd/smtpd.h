/*
 * smtpd.h - the SMTP server's session and transaction, shared by the
 * files of smtpd/ (smtpd.c service entry, smtpd_proto.c command table
 * and envelope commands, smtpd_check.c policy, smtpd_data.c message body
 * and queueing). The protocol itself (states, dispatch, line policy,
 * readers, error accounting) is the server core, mail/smtp_server.h,
 * embedded in the session as srv.
 *
 * The session lives for one connection; the transaction (MAIL to the end
 * of the message) is a separate object freed by RSET, EHLO, HELO and the
 * end of each message, never together with the session.
 */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "bio.h"
#include "daemon.h"
#include "esmtp.h"
#include "map.h"
#include "msgid.h"
#include "queue.h"
#include "smtp_server.h"
#include "str.h"

#define SMTPD_HELO_MAX 255
/* 452s past smtpd_recipient_limit that are not counted as errors. */
#define SMTPD_RCPT_OVERSHOOT_MAX 1000

/* One recipient accepted at RCPT. */
struct smtpd_rcpt {
	char *address;
	unsigned notify;
	char *orcpt;
};

/* One mail transaction: MAIL FROM to the end of the message. */
struct smtpd_txn {
	char *sender;			/* canonical, "" for <> */
	struct esmtp_mail_params params;
	bool sender_utf8;
	struct smtpd_rcpt *rcpts;
	size_t nrcpts, rcpt_cap;
	size_t rcpt_rejected;		/* RCPTs refused in this transaction */
	size_t rcpt_overshoot;		/* of them, past smtpd_recipient_limit */
	/* the message being received (DATA or BDAT) */
	struct queue_envelope env;	/* valid while writer != NULL */
	struct queue_writer *writer;
	char queue_id[QUEUE_ID_SIZE];
	unsigned long long size;	/* content octets so far */
	bool too_big;			/* passed message_size_limit */
	bool write_failed;		/* queue file write error */
	struct smtp_message msg;	/* what the core's readers saw */
	struct msgid_scan msgid;	/* its Message-ID, for the log */
	bool bdat_failed;		/* a BDAT chunk got an error reply */
	bool bdat_deadline;		/* smtpd_data_deadline runs (BDAT) */
	int bdat_fail_code;		/* ... and this is the reply */
	const char *bdat_fail_enh, *bdat_fail_text;
	/* smtpd_milter.c: the message spooled for the filters, or NULL */
	struct smtpd_milter_msg *milter_msg;
	bool milter_discard;		/* a filter discarded it before DATA */
	/* smtpd_authcheck.c: SPF, DKIM, DMARC results, or NULL */
	struct smtpd_authcheck *auth;
	/* smtpd_rewrite.c: the header block held for rewriting, or NULL */
	struct str *held_headers;
};

struct smtpd_session {
	struct smtp_server srv;		/* the protocol core */
	struct bio bio;
	struct daemon_conn *conn;
	bool submission;		/* port 587 role */
	bool implicit_tls;		/* smtps: port 465 role (RFC 8314) */
	char client_name[256];		/* verified reverse name or "unknown" */
	char client_addr[64];
	char client_log[330];		/* "name[addr]" for logs */
	bool client_trusted;		/* inside mynetworks */
	enum { DNSBL_UNCHECKED, DNSBL_CLEAN, DNSBL_LISTED } dnsbl;
	char dnsbl_reply[768];		/* the 554 text when listed */
	bool esmtp;			/* EHLO (not HELO) was used */
	char *helo;			/* as given, validated; NULL before */
	bool tls_active;		/* STARTTLS done, or smtps */
	char tls_info[160];		/* "TLSv1.3 with cipher ..." */
	char *auth_user;		/* authenticated user, NULL if none */
	const char *auth_method;	/* "PLAIN", "LOGIN" */
	struct smtpd_txn *txn;		/* NULL outside a transaction */
	struct milter_client *milter;	/* smtpd_milters, or NULL */
	const char *milter_sender;	/* {mail_addr} while MAIL is tried */
	bool milter_discard_next;	/* a filter discarded at MAIL */
	bool limits_counted;		/* anvil counts this session open */
	/* smtpd_authcheck.c: SPF of the HELO identity, or NULL */
	struct smtpd_authcheck_helo *auth_helo;
};

/* smtpd_proto.c */
/* Set up the core (after client_log is known); run the session. */
void smtpd_session_init(struct smtpd_session *s);
void smtpd_session_run(struct smtpd_session *s);
void smtpd_enter_state(struct smtpd_session *s, enum smtp_server_state st);
/* Queue a reply (smtp_server_reply); the core counts errors. */
void smtpd_reply(struct smtpd_session *s, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Send buffered replies now. false if the client is gone. */
bool smtpd_flush(struct smtpd_session *s);
/* Log "timeout/lost connection after VERB from client" and close. */
void smtpd_io_failed(struct smtpd_session *s, enum bio_status st);
const char *smtpd_protocol_name(const struct smtpd_session *s);
void smtpd_txn_free(struct smtpd_session *s);
/* The message is done (queued or refused): back to READY. */
void smtpd_txn_end(struct smtpd_session *s, bool queued);
/* Log one rejection in the Postfix shape (NOQUEUE: reject: ...). */
void smtpd_log_reject(struct smtpd_session *s, const char *stage,
    const char *recipient, int code, const char *enhanced, const char *text);

/* smtpd_check.c */
void smtpd_check_init(void);
/* Is the HELO/EHLO argument acceptable? why for the 501 reply. */
bool smtpd_check_helo(const char *arg, const char **why);
/*
 * Decide about one recipient. Returns 250 or an error code with the
 * enhanced code and the reason (our text, for the reply and the log).
 * *about_client is set when the reason is the client, not the address
 * (a DNS blocklist): the reply then does not name the recipient.
 */
int smtpd_check_rcpt(struct smtpd_session *s, const char *address,
    const char **enhanced, const char **reason, bool *about_client);

/*
 * Submission and smtps without AUTH (submission_require_auth): 250, or
 * 530 with the enhanced code and reason.
 */
int smtpd_check_mail(struct smtpd_session *s, const char **enhanced,
    const char **reason);

/* smtpd_tls.c */
/* Load tls_cert_file and tls_key_file if set (still root); fatal if bad. */
void smtpd_tls_init(void);
bool smtpd_tls_available(void);
/* Server handshake on the session's connection; logs either way. */
bool smtpd_tls_handshake(struct smtpd_session *s);
void smtpd_tls_end(struct smtpd_session *s);
void smtpd_cmd_starttls(struct smtp_server *srv, const char *arg);

/* smtpd_auth.c */
/* Is AUTH advertised (and accepted) in this session? */
bool smtpd_auth_offered(const struct smtpd_session *s);
void smtpd_cmd_auth(struct smtpd_session *s, const char *arg);
/* The command table's row for AUTH (smtpd_auth.c keeps its signature). */
void smtpd_cmd_auth_row(struct smtp_server *srv, const char *arg);

/* smtpd_auth_door.c, run in the door only (smtpd-door, smtpd_door.c) */
enum smtpd_door_auth {
	SMTPD_DOOR_AUTH_YES,
	SMTPD_DOOR_AUTH_NO,
	SMTPD_DOOR_AUTH_TEMPFAIL,
};
/* Open smtpd_sasl_users, refuse weak hashes (fatal), pick the dummy. */
void smtpd_auth_door_init(void);
/* Check a name and password against smtpd_sasl_users. */
enum smtpd_door_auth smtpd_auth_door_verify(const char *user,
    const char *password);

/* smtpd_door.c: the door process and the worker's requests to it */
/* The descriptor smtpd-door finds its request socket on. */
#define SMTPD_DOOR_FD 3
/* smtpd's zygote, before it serves (its zygote_start hook): start the
 * door zygote, smtpd-door; its request socket, which the zygote watches
 * and each worker it clones inherits. */
int smtpd_door_zygote_start(const char *service);
/* Worker, still root, before the TLS key is loaded: ask the door zygote
 * (the zygote's, or one of its own) for a door, and close the request
 * socket. */
void smtpd_door_start(void);
/* Worker, after its drop: wait for the door to be ready; fatal if not. */
void smtpd_door_wait_ready(void);
/* A new incoming/.ID open for writing only, ID into id, its length into
 * *size (-1: unknown); -1 on failure. The file the door passed ahead
 * with its last answer, if any: then no request. */
int smtpd_door_open(char id[QUEUE_ID_SIZE], off_t *size);
/* The file is complete: have it renamed and fsync'd. false: not queued.
 * The answer may pass the next message's file ahead. */
bool smtpd_door_commit(const char *id);
/* Have the unfinished file removed (the answer may pass the next). */
void smtpd_door_abort(const char *id);
enum smtpd_door_auth smtpd_door_auth(const char *user, const char *password);

/* smtpd_proxy.c */
/*
 * A listener marked "proxy": read the PROXY protocol header (before the
 * greeting) and make its client the connection's peer. false: missing,
 * malformed or late; logged, and the connection is to be closed.
 */
bool smtpd_proxy_accept(struct daemon_conn *conn);

/* smtpd_sender.c */
/* Open smtpd_sender_login_maps (before confinement). */
void smtpd_sender_init(void);
/*
 * May this session use sender (canonical, "" for <>)? 250, or 553 5.7.1
 * (not owned by the login, or not logged in on submission) or 451 4.3.0
 * (table unreadable), with the reply text in reason.
 */
int smtpd_sender_check(struct smtpd_session *s, const char *sender,
    const char **enhanced, char *reason, size_t reason_size);

/*
 * The AUTH= MAIL parameter to record (RFC 4954 5): the client's mailbox
 * when it has authenticated, "<>" when it has not; NULL when it gave none.
 */
const char *smtpd_sender_auth_param(const struct smtpd_session *s);

/* smtpd_throttle.c: AUTH throttling, counted by anvil */
enum smtpd_throttle {
	SMTPD_THROTTLE_OK,
	SMTPD_THROTTLE_CLIENT_LOCKED,	/* the client (or its /64) */
	SMTPD_THROTTLE_USER_LOCKED,	/* the account */
};
/* Is the client, or the account (user may be NULL), locked out? */
enum smtpd_throttle smtpd_throttle_auth_check(struct smtpd_session *s,
    const char *user);
/* Count a failure, then wait the growing delay before the 535. */
void smtpd_throttle_auth_failed(struct smtpd_session *s, const char *user);
/* A login worked: the failures of its client and account are cleared. */
void smtpd_throttle_auth_ok(struct smtpd_session *s, const char *user);

/*
 * Per-client limits, counted by anvil across smtpd processes, for
 * clients outside smtpd_client_event_limit_exceptions: 250, or 421 (too
 * many connections: close) or 450 (too many messages or recipients)
 * with the reply text. smtpd_limits_wanted: does anvil count this client
 * at all (a limit is set and the client is not exempt)?
 */
bool smtpd_limits_wanted(const struct smtpd_session *s);
int smtpd_limits_connect(struct smtpd_session *s, char *text, size_t size);
void smtpd_limits_disconnect(struct smtpd_session *s);
int smtpd_limits_event(struct smtpd_session *s, bool recipient, char *text,
    size_t size);

/* smtpd_throttle.c: one request to anvil, one reply (type ok); false
 * when anvil cannot be asked (logged once per process). */
struct ipc_msg;
bool smtpd_anvil_call(const struct ipc_msg *req, struct ipc_msg *reply);

/* smtpd_relay.c: relay_domains and relay_recipient_maps */
void smtpd_relay_init(void);
/* Is domain one of relay_domains? MAP_ERROR: a table cannot be read. */
enum map_result smtpd_relay_domain(const char *domain);
/* relay_recipient_maps, when set: 250, 550 5.1.1 or 451 4.3.0. */
int smtpd_relay_check_rcpt(const char *address, const char **enhanced,
    const char **reason);

/* smtpd_greylist.c */
/*
 * Greylisting of one recipient (smtpd_greylist): 250, or 450 with the
 * reply text (after "<rcpt>: ") for a triplet seen too recently.
 */
int smtpd_greylist_check(struct smtpd_session *s, const char *rcpt,
    char *text, size_t size);

/* smtpd_stress.c: shorter timeouts while master says the service is
 * full (SIGUSR1, smtpd_stress_timeout) */
void smtpd_stress_init(void);
void smtpd_stress_session_begin(struct smtpd_session *s);
void smtpd_stress_session_end(void);

/* smtpd_data.c */
void smtpd_cmd_data(struct smtp_server *srv, const char *arg);
void smtpd_cmd_bdat(struct smtp_server *srv, const char *arg);
/* Throw away a message being written (no-op without one). */
void smtpd_message_discard(struct smtpd_txn *t);
/* Our Received header for the message being received, CRLF ended. */
void smtpd_received_header(struct smtpd_session *s, struct str *h);
/* smtpd_door.c: commit into hold/ (a filter's quarantine). */
bool smtpd_door_commit_hold(const char *id);

/* smtpd_authcheck.c: SPF, DKIM, DMARC and Authentication-Results */
struct smtpd_authcheck;
/* Read public_suffix_list (before confinement). */
void smtpd_authcheck_init(void);
/*
 * At MAIL: SPF for the sender (or HELO when it is null) and for the
 * HELO name (once a session). 250 with *out set to the transaction's
 * checks (NULL when none apply: mynetworks, AUTH, a local socket, all
 * checks off); with smtpd_spf = enforce 550 5.7.23 for a fail of either
 * or 451 4.7.24 for a MAIL FROM temperror, the text in text.
 */
int smtpd_authcheck_mail(struct smtpd_session *s, const char *sender,
    struct smtpd_authcheck **out, const char **enhanced, char *text,
    size_t size);
void smtpd_authcheck_free(struct smtpd_authcheck *a);
/* The session ends: forget its HELO result. */
void smtpd_authcheck_session_end(struct smtpd_session *s);
/* DATA: spool the text; door_fd (the queue file, -1 with milters)
 * is written at the end. false: no spool (451). */
bool smtpd_authcheck_spool(struct smtpd_authcheck *a, int door_fd);
bool smtpd_authcheck_spooling(const struct smtpd_authcheck *a);
bool smtpd_authcheck_write(struct smtpd_authcheck *a, const void *p,
    size_t n, bool line_end);
/* Drop the spool and the door's descriptor (the message is discarded). */
void smtpd_authcheck_spool_end(struct smtpd_authcheck *a);
enum smtpd_authcheck_action {
	SMTPD_AUTHCHECK_ACCEPT,
	SMTPD_AUTHCHECK_HOLD,		/* dmarc_enforce: into hold/ */
	SMTPD_AUTHCHECK_REJECT,		/* dmarc_enforce = reject: 550 5.7.1 */
	SMTPD_AUTHCHECK_FAILED,		/* local error: 452 */
};
/*
 * End of message: verify, decide, and write the message less the fields
 * forging our authserv-id: without milters into the queue file with our
 * Received and Authentication-Results fields first, with milters into
 * the filters' spool (t->milter_msg). why: the reply text (REJECT) or
 * the hold reason (HOLD).
 */
enum smtpd_authcheck_action smtpd_authcheck_eom(struct smtpd_session *s,
    char *why, size_t whysize);
/* Our Authentication-Results field (CRLF ended), "" before the end. */
const char *smtpd_authcheck_header(const struct smtpd_authcheck *a);
/* The results line of the message: "ID: spf=... dkim=... dmarc=...". */
void smtpd_authcheck_log(struct smtpd_session *s);
/* ---- smtpd_rewrite.c: canonical maps for trusted clients ---- */
void smtpd_rewrite_init(void);
/* Is the client trusted (mynetworks, AUTH) and rewriting configured? */
bool smtpd_rewrite_applies(const struct smtpd_session *s);
/* The queue file's envelope rewritten; false: a table failed (4xx). */
bool smtpd_rewrite_envelope(struct smtpd_session *s,
    struct queue_envelope *env);
/* Hold the header block of this message for rewriting (if it applies). */
void smtpd_rewrite_hold_start(struct smtpd_session *s, struct smtpd_txn *t);
/* A line of content: true when it was held (header block). */
bool smtpd_rewrite_hold(struct smtpd_txn *t, const char *p, size_t n,
    bool line_end);
/* End of data with the block still held: rewrite and store it. */
void smtpd_rewrite_hold_end(struct smtpd_txn *t);
/* smtpd_data.c: store content bytes as they are (queue file or spool). */
void smtpd_store_content(struct smtpd_txn *t, const char *p, size_t n);

/* smtpd_clientname.c: the client's forward-confirmed name or "unknown",
 * remembered by the worker for a few seconds. */
void smtpd_client_name(const struct daemon_conn *c, char *out,
    size_t outsize);

#endif
