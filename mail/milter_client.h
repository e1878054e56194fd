/*
 * milter_client.h - the milter client smtpd and pickup share: the
 * filters of one list (smtpd_milters, non_smtpd_milters), one connection
 * each per session, driven stage by stage by the caller (connect, HELO,
 * MAIL, RCPT, DATA, the message, its end, ABORT, QUIT). The protocol
 * codec is mail/milter_proto.c; the files are milter_client.c (session,
 * stages, verdicts), milter_client_io.c (one filter's connection,
 * packets, macros) and milter_client_msg.c (the message and the edits).
 *
 * The caller knows its session (client address, TLS, AUTH) and gives
 * the values of the macros through a function; the client knows the
 * generic ones (j, {daemon_name}, v, {rcpt_addr}, ...).
 */
#ifndef POSTERN_MILTER_CLIENT_H
#define POSTERN_MILTER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "queue.h"

/* What the filters decided at one stage. */
enum milter_action {
	MILTER_VERDICT_CONTINUE = 0,
	MILTER_VERDICT_REJECT,	/* 5xx: the reply in text */
	MILTER_VERDICT_TEMPFAIL,	/* 4xx: the reply in text */
	MILTER_VERDICT_DISCARD,	/* accept the message, deliver nothing */
};

struct milter_verdict {
	enum milter_action action;
	/* The whole SMTP reply, "550 5.7.1 text" lines joined by CRLF. */
	char reply[1024];
};

/*
 * The value of macro name (without braces) now, or NULL when it has
 * none (not sent). rcpt is the recipient at the RCPT stage. buf is the
 * caller's room for a value it formats.
 */
typedef const char *milter_macro_fn(void *ctx, const char *name,
    const char *rcpt, char *buf, size_t size);

/* The filters of one session (milter_client.c owns it). */
struct milter_client;
/* The message being filtered: spool and edits. */
struct milter_msg;

/*
 * Check milter_default_action, milter_protocol and the specs of key
 * (inet:host:port, unix:/path); fatal on a bad value. Once per process.
 */
void milter_client_init(const struct cfg_list *specs, const char *key);

/* A session over specs (NULL when the list is empty); connects later. */
struct milter_client *milter_client_new(const struct cfg_list *specs,
    milter_macro_fn *macro, void *ctx);
/*
 * Connect to every filter and run the connect stage. family is '4',
 * '6' or 'L' (a local client: addr is then the path, port 0). A reject
 * or tempfail here and at HELO is kept and given at MAIL, as Postfix
 * does with smtpd_delay_reject.
 */
void milter_client_connect(struct milter_client *c, const char *hostname,
    char family, uint16_t port, const char *addr);
void milter_client_helo(struct milter_client *c, const char *helo);
/* MAIL: sender (canonical, "" for <>), args the ESMTP parameters. */
void milter_client_mail(struct milter_client *c, const char *sender,
    const char *args, struct milter_verdict *v);
void milter_client_rcpt(struct milter_client *c, const char *rcpt,
    const char *args, struct milter_verdict *v);
/* DATA, once the queue ID is known (the i macro). */
void milter_client_data(struct milter_client *c, struct milter_verdict *v);
/* The transaction ends without end-of-message (RSET, rejection...). */
void milter_client_abort(struct milter_client *c);
/* The session ends: QUIT to every filter, close, free c. */
void milter_client_quit(struct milter_client *c);

/* The message spooled into an anonymous memory file while it arrives. */
struct milter_msg *milter_msg_new(void);
bool milter_msg_write(struct milter_msg *m, const void *p, size_t n);
void milter_msg_free(struct milter_msg *m);

/*
 * End of message: send headers (received first, if not NULL: our own
 * Received field, as Postfix shows its own), body and end-of-body to
 * each filter, and apply their edits to env (sender, recipients) and to
 * the message. true: write it (milter_msg_emit), quarantined when
 * *hold_reason is set (owned by m; also put into env as the
 * "quarantine" attribute). false with v set otherwise (reject, tempfail,
 * discard; a local error is a 4xx in v). id names the message in logs.
 */
bool milter_client_eom(struct milter_client *c, struct milter_msg *m,
    struct queue_envelope *env, const char *id, const char *received,
    struct milter_verdict *v, const char **hold_reason);
/* Write the filtered header block and body through w. */
bool milter_msg_emit(const struct milter_msg *m, struct queue_writer *w);

#endif
