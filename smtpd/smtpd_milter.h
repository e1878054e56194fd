/*
 * smtpd_milter.h - smtpd's milter hooks (smtpd_milter.c): the filters
 * of smtpd_milters, one connection each per SMTP session, driven by the
 * session at each SMTP stage, over the shared client of
 * mail/milter_client.h.
 */
#ifndef POSTERN_SMTPD_MILTER_H
#define POSTERN_SMTPD_MILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "milter_client.h"

struct smtpd_session;
struct smtpd_txn;

/* The message being filtered and its queue file (smtpd_milter.c). */
struct smtpd_milter_msg;

/* Are filters configured for this session? */
bool smtpd_milter_enabled(void);
/* Check the milter keys (smtpd's init); fatal on a bad value. */
void smtpd_milter_init(void);

/* Connect to every filter and run the connect stage (session start). */
void smtpd_milter_connect(struct smtpd_session *s);
void smtpd_milter_helo(struct smtpd_session *s);
/* MAIL: sender (canonical), args the ESMTP parameters as sent. */
void smtpd_milter_mail(struct smtpd_session *s, const char *sender,
    const char *args, struct milter_verdict *v);
void smtpd_milter_rcpt(struct smtpd_session *s, const char *rcpt,
    const char *args, struct milter_verdict *v);
/* DATA, once the queue ID is known. */
void smtpd_milter_data(struct smtpd_session *s, struct milter_verdict *v);
/* The transaction ends without end-of-message (RSET, rejection...). */
void smtpd_milter_abort(struct smtpd_session *s);
/* The session ends: QUIT to every filter, close. */
void smtpd_milter_quit(struct smtpd_session *s);

/*
 * The message: spooled into an anonymous file of this process while it
 * arrives; door_fd is the queue file the door made, written only after
 * the filters have spoken (smtpd_milter_eom).
 */
struct smtpd_milter_msg *smtpd_milter_msg_new(int door_fd);
bool smtpd_milter_msg_write(struct smtpd_milter_msg *m, const void *p,
    size_t n);
void smtpd_milter_msg_free(struct smtpd_milter_msg *m);

/*
 * End of message: send headers, body and end-of-body to each filter,
 * apply their edits to the envelope and the message, and on
 * MILTER_VERDICT_CONTINUE attach t->writer to the queue file with the
 * filtered envelope, Received header, headers and body written (not yet
 * finished: the caller commits). *hold_reason is set (owned by the
 * message) when a filter quarantined it. false with the verdict set
 * otherwise, or on a local write error (452 in v).
 */
bool smtpd_milter_eom(struct smtpd_session *s, const char *received,
    struct milter_verdict *v, const char **hold_reason);

/* Send the verdict's reply to the client (multi-line as the filter). */
void smtpd_milter_reply(struct smtpd_session *s,
    const struct milter_verdict *v);
/* "milter-reject: STAGE from client: ...; from=<> to=<> proto= helo=<>" */
void smtpd_milter_log(struct smtpd_session *s, const char *stage,
    const char *sender, const char *rcpt,
    const struct milter_verdict *v);

#endif
