/*
 * milter_client_int.h - what the three files of the milter client
 * share, and nobody else needs: milter_client.c (the session and its
 * stages), milter_client_io.c (connecting, negotiating, packets,
 * macros), milter_client_msg.c (the message: spool, headers, edits, end
 * of message).
 */
#ifndef POSTERN_MILTER_CLIENT_INT_H
#define POSTERN_MILTER_CLIENT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "milter_client.h"
#include "milter_proto.h"
#include "str.h"

enum milter_state {
	MILTER_CLOSED,
	MILTER_READY,
	MILTER_DONE,		/* accepted the connection */
	MILTER_FAILED,
};

/* One filter in one session. */
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

struct milter_client {
	struct milter_conn *f;
	size_t n;
	/* A reject or tempfail at connect or HELO, given at MAIL (as
	 * Postfix with smtpd_delay_reject). */
	struct milter_verdict deferred;
	milter_macro_fn *macro;
	void *ctx;
};

/* milter_default_action, checked once at start (milter_client_init). */
enum milter_client_default {
	MILTER_DEFAULT_TEMPFAIL, MILTER_DEFAULT_ACCEPT, MILTER_DEFAULT_REJECT,
	MILTER_DEFAULT_QUARANTINE
};
extern enum milter_client_default milter_client_default_action;

/* milter_client.c */
void milter_client_verdict_set(struct milter_verdict *v,
    enum milter_action a, const char *reply);
/*
 * What one filter's reply means before end-of-message: false when the
 * verdict (reject, tempfail) ends the stage.
 */
bool milter_client_judge(struct milter_conn *m, const struct milter_reply *r,
    bool connection_stage, struct milter_verdict *v);
/* milter_default_action for a filter that failed; false: stop. */
bool milter_client_default_verdict(struct milter_verdict *v);

/* milter_client_io.c */
long long milter_client_timeout_ms(long long seconds);
/* Take the filter out of the session (logged); its default stands. */
void milter_client_fail(struct milter_conn *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool milter_client_send(struct milter_conn *m, const struct str *pkt,
    long long tmo);
/* One reply, PROGRESS skipped; false: the filter failed (marked). */
bool milter_client_read_reply(struct milter_conn *m, const char *after,
    long long tmo, struct str *pkt, struct milter_reply *r);
/* Connect and negotiate; false: failed (marked). */
bool milter_client_open(struct milter_conn *m);
/* Append the SMFIC_MACRO packet of this filter and stage, if any. */
void milter_client_add_macros(struct milter_client *c, struct milter_conn *m,
    enum milter_stage st, char cmd, const char *rcpt, struct str *pkt);

#endif
