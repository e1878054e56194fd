/*
 * smtpd_milter_int.h - what the three files of smtpd's milter client
 * share, and nobody else needs: smtpd_milter.c (the session and its
 * stages), smtpd_milter_io.c (connecting, negotiating, packets, macros),
 * smtpd_milter_msg.c (the message: spool, headers, edits, end of
 * message; replies and log lines).
 */
#ifndef POSTERN_SMTPD_MILTER_INT_H
#define POSTERN_SMTPD_MILTER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "milter_proto.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "str.h"

enum milter_state {
	MILTER_CLOSED,
	MILTER_READY,
	MILTER_DONE,		/* accepted the connection */
	MILTER_FAILED,
};

/* One filter in one SMTP session. */
struct milter_conn {
	const char *spec;	/* "inet:127.0.0.1:8891", from the config */
	enum milter_state state;
	int fd;
	uint32_t actions, protocol;
	/* Macro names per stage: the config's, or the filter's own. */
	struct cfg_list macros[MILTER_STAGE_COUNT];
	bool own_macros[MILTER_STAGE_COUNT];
	bool in_msg;		/* MAIL was sent: ABORT ends it */
	bool msg_done;		/* accepted or discarded this message */
};

struct smtpd_milter_session {
	struct milter_conn *f;
	size_t n;
	/* A reject or tempfail at connect or HELO, given at MAIL (as
	 * Postfix with smtpd_delay_reject). */
	struct smtpd_milter_verdict deferred;
};

/* milter_default_action, checked once at start (smtpd_milter_init). */
enum smtpd_milter_default {
	DEFAULT_TEMPFAIL, DEFAULT_ACCEPT, DEFAULT_REJECT, DEFAULT_QUARANTINE
};
extern enum smtpd_milter_default smtpd_milter_default_action;

/* smtpd_milter.c */
void smtpd_milter_verdict_set(struct smtpd_milter_verdict *v,
    enum smtpd_milter_action a, const char *reply);
/*
 * What one filter's reply means before end-of-message: false when the
 * verdict (reject, tempfail) ends the stage.
 */
bool smtpd_milter_judge(struct milter_conn *m, const struct milter_reply *r,
    bool connection_stage, struct smtpd_milter_verdict *v);
/* milter_default_action for a filter that failed; false: stop. */
bool smtpd_milter_default_verdict(struct smtpd_milter_verdict *v);

/* smtpd_milter_io.c */
long long smtpd_milter_timeout_ms(long long seconds);
/* Take the filter out of the session (logged); its default stands. */
void smtpd_milter_fail(struct milter_conn *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool smtpd_milter_send(struct milter_conn *m, const struct str *pkt,
    long long tmo);
/* One reply, PROGRESS skipped; false: the filter failed (marked). */
bool smtpd_milter_read_reply(struct milter_conn *m, const char *after,
    long long tmo, struct str *pkt, struct milter_reply *r);
/* Connect and negotiate; false: failed (marked). */
bool smtpd_milter_open(struct milter_conn *m);
/* Append the SMFIC_MACRO packet of this filter and stage, if any. */
void smtpd_milter_add_macros(struct smtpd_session *s, struct milter_conn *m,
    enum milter_stage st, char cmd, const char *rcpt, struct str *pkt);

#endif
