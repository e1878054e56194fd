/*
 * milter_client.c - the milter client smtpd and pickup share: the
 * filters of one list (smtpd_milters for smtpd, non_smtpd_milters for
 * local mail in pickup: inet:host:port, unix:/path), applied in order,
 * at every stage, speaking protocol version 6 (mail/milter_proto.c),
 * with Postfix's configuration names and meanings
 * (milter_default_action, the three timeouts, milter_*_macros).
 *
 * This file: the session and its stages, and verdicts;
 * milter_client_io.c: one filter's connection, packets and macros;
 * milter_client_msg.c: the message and the filters' edits. The caller
 * turns a verdict into its own reply (an SMTP reply in smtpd, a bounce
 * or a retry in pickup) and log line.
 *
 * One connection per filter per session, reused across its
 * transactions. Each filter is a small state machine: CLOSED (not
 * connected yet), READY (negotiated), DONE (it accepted the connection:
 * no more calls), FAILED (it died, timed out or broke the protocol:
 * milter_default_action stands for it for the rest of the session).
 *
 * The message: while it arrives it is spooled into an anonymous file of
 * this process (memfd), never into the queue, so that smtpd's worker
 * reads back only its own bytes
 * (doc/architecture.md, "Filters (milter)").
 * At the end of the message each filter gets the headers,
 * the body in chunks of MILTER_CHUNK_SIZE and end-of-body, and answers
 * with edits; a later filter sees the earlier ones' edits. Only when
 * all have spoken does the caller write the queue file. A filter that
 * fails at any point leaves no half-written file.
 *
 * Trust: the filters are named by root's config, but they are other
 * programs: every reply is decoded with lengths checked, a reply text
 * is kept only when it is a valid SMTP reply, header names and
 * addresses are checked before they enter the queue file.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "esmtp.h"
#include "log.h"
#include "mem.h"
#include "milter_client.h"
#include "milter_proto.h"
#include "sock.h"
#include "milter_client_int.h"


enum milter_client_default milter_client_default_action;

void milter_client_init(const struct cfg_list *specs, const char *key)
{
	const char *a = cfg.milter_default_action;
	if (strcmp(a, "tempfail") == 0)
		milter_client_default_action = MILTER_DEFAULT_TEMPFAIL;
	else if (strcmp(a, "accept") == 0)
		milter_client_default_action = MILTER_DEFAULT_ACCEPT;
	else if (strcmp(a, "reject") == 0)
		milter_client_default_action = MILTER_DEFAULT_REJECT;
	else if (strcmp(a, "quarantine") == 0)
		milter_client_default_action = MILTER_DEFAULT_QUARANTINE;
	else
		log_fatal("milter_default_action: \"%s\" is not tempfail, "
		    "accept, reject or quarantine", a);
	if (cfg.milter_protocol < 2 || cfg.milter_protocol > 6)
		log_fatal("milter_protocol: %lld is not 2 to 6",
		    cfg.milter_protocol);
	for (size_t i = 0; i < specs->count; i++) {
		const char *spec = specs->items[i];
		if (strncmp(spec, "inet:", 5) != 0 &&
		    strncmp(spec, "unix:", 5) != 0 &&
		    strncmp(spec, "local:", 6) != 0)
			log_fatal("%s: \"%s\" is not inet:host:port "
			    "or unix:/path", key, spec);
	}
}

struct milter_client *milter_client_new(const struct cfg_list *specs,
    milter_macro_fn *macro, void *ctx)
{
	if (specs->count == 0)
		return NULL;
	struct milter_client *c = xcalloc(1, sizeof(*c));
	c->n = specs->count;
	c->f = xcalloc(c->n, sizeof(*c->f));
	c->macro = macro;
	c->ctx = ctx;
	for (size_t i = 0; i < c->n; i++) {
		c->f[i].spec = specs->items[i];
		c->f[i].fd = -1;
	}
	return c;
}

/* ---- verdicts ---- */

void milter_client_verdict_set(struct milter_verdict *v,
    enum milter_action a, const char *reply)
{
	v->action = a;
	strlcpy(v->reply, reply, sizeof(v->reply));
}

/* Postfix's texts for a filter's plain reject and tempfail. */
static void milter_client_verdict_reject(struct milter_verdict *v)
{
	milter_client_verdict_set(v, MILTER_VERDICT_REJECT,
	    "550 5.7.1 Command rejected");
}

static void milter_client_verdict_tempfail(struct milter_verdict *v)
{
	milter_client_verdict_set(v, MILTER_VERDICT_TEMPFAIL,
	    "451 4.7.1 Service unavailable - try again later");
}

/* ---- the stages before the message ---- */

/* What one filter's reply means at a stage before end-of-message. */
bool milter_client_judge(struct milter_conn *m, const struct milter_reply *r,
    bool connection_stage, struct milter_verdict *v)
{
	switch (r->cmd) {
	case MILTER_REPLY_CONTINUE:
	case MILTER_REPLY_SKIP:
		return true;
	case MILTER_REPLY_ACCEPT:
		if (connection_stage)
			m->state = MILTER_DONE;
		else
			m->msg_done = true;
		return true;
	case MILTER_REPLY_REJECT:
		milter_client_verdict_reject(v);
		return false;
	case MILTER_REPLY_TEMPFAIL:
		milter_client_verdict_tempfail(v);
		return false;
	case MILTER_REPLY_REPLYCODE:
		milter_client_verdict_set(v, r->code >= 500 ?
		    MILTER_VERDICT_REJECT :
		    MILTER_VERDICT_TEMPFAIL, r->text);
		return false;
	case MILTER_REPLY_DISCARD:
		if (connection_stage) {
			/* Nothing to discard yet: as Postfix, ignored. */
			log_warning("milter %s: DISCARD action is not allowed "
			    "at the connection stage", m->spec);
			return true;
		}
		v->action = MILTER_VERDICT_DISCARD;
		m->msg_done = true;
		return true;
	case MILTER_REPLY_SHUTDOWN:
	case MILTER_REPLY_CONN_FAIL:
		milter_client_verdict_tempfail(v);
		milter_client_fail(m, "filter ended the session ('%c')", r->cmd);
		return false;
	default:
		milter_client_fail(m,
		    "unexpected reply '%c' before end of message",
		    r->cmd);
		return true;
	}
}

/* The verdict of milter_default_action for a filter that failed. */
bool milter_client_default_verdict(struct milter_verdict *v)
{
	switch (milter_client_default_action) {
	case MILTER_DEFAULT_TEMPFAIL:
		milter_client_verdict_tempfail(v);
		return false;
	case MILTER_DEFAULT_REJECT:
		milter_client_verdict_reject(v);
		return false;
	default:
		return true;
	}
}

/*
 * One stage before the message for every filter in order: the stage's
 * macros, then the command; stop at the first reject, tempfail.
 */
static void run_stage(struct milter_client *ms, enum milter_stage st,
    char cmd, const struct str *command, uint32_t skip_flag,
    uint32_t noreply_flag, const char *rcpt, struct milter_verdict *v)
{
	bool conn_stage = st == MILTER_STAGE_CONNECT || st == MILTER_STAGE_HELO;
	struct str pkt;
	long long tmo = milter_client_timeout_ms(cmd == MILTER_CMD_CONNECT ?
	    cfg.milter_connect_timeout : cfg.milter_command_timeout);

	str_init(&pkt, MILTER_PACKET_MAX + 16);
	for (size_t i = 0; ms != NULL && i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->state == MILTER_FAILED && st == MILTER_STAGE_MAIL) {
			/* A filter that failed earlier in the session. */
			if (!milter_client_default_verdict(v))
				break;
			continue;
		}
		if (m->state != MILTER_READY || (!conn_stage && m->msg_done))
			continue;
		if (st == MILTER_STAGE_MAIL)
			m->in_msg = true;
		if (m->protocol & skip_flag)
			continue;
		str_clear(&pkt);
		milter_client_add_macros(ms, m, st, cmd, rcpt, &pkt);
		str_append(&pkt, command->data, command->len);
		const char *what = cmd == MILTER_CMD_CONNECT ? "SMFIC_CONNECT" :
		    cmd == MILTER_CMD_HELO ? "SMFIC_HELO" :
		    cmd == MILTER_CMD_MAIL ? "SMFIC_MAIL" :
		    cmd == MILTER_CMD_RCPT ? "SMFIC_RCPT" : "SMFIC_DATA";
		if (!milter_client_send(m, &pkt, tmo)) {
			milter_client_fail(m, "can't send %s: %s", what,
			    strerror(errno));
			if (!milter_client_default_verdict(v))
				break;
			continue;
		}
		if (m->protocol & noreply_flag)
			continue;
		struct milter_reply r;
		if (!milter_client_read_reply(m, what, tmo, &pkt, &r)) {
			if (!milter_client_default_verdict(v))
				break;
			continue;
		}
		if (!milter_client_judge(m, &r, conn_stage, v))
			break;
	}
	str_free(&pkt);
}

void milter_client_connect(struct milter_client *ms, const char *hostname,
    char family, uint16_t port, const char *addr)
{
	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++)
		milter_client_open(&ms->f[i]);
	/* Connect: host name, family, port, address (Postfix sends "L"
	 * with the path for a local client). */
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	milter_encode_connect(&cmd, hostname, family, port, addr);
	run_stage(ms, MILTER_STAGE_CONNECT, MILTER_CMD_CONNECT, &cmd,
	    MILTER_P_NOCONNECT, MILTER_P_NR_CONN, NULL, &ms->deferred);
	str_free(&cmd);
	/* A failure to connect counts at MAIL (milter_client_default_verdict
	 * there). */
	if (ms->deferred.action == MILTER_VERDICT_DISCARD)
		ms->deferred.action = MILTER_VERDICT_CONTINUE;
}

void milter_client_helo(struct milter_client *ms, const char *helo)
{
	if (ms == NULL || ms->deferred.action != MILTER_VERDICT_CONTINUE)
		return;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	milter_encode_strings(&cmd, MILTER_CMD_HELO, &helo, 1);
	run_stage(ms, MILTER_STAGE_HELO, MILTER_CMD_HELO, &cmd,
	    MILTER_P_NOHELO, MILTER_P_NR_HELO, NULL, &ms->deferred);
	str_free(&cmd);
	if (ms->deferred.action == MILTER_VERDICT_DISCARD)
		ms->deferred.action = MILTER_VERDICT_CONTINUE;
}

/* "<addr>" then each ESMTP parameter, as strings of one packet. */
static void encode_path(struct str *cmd, char which, const char *addr,
    const char *args)
{
	char *path = xasprintf("<%s>", addr);
	char *copy = xstrdup(args ? args : "");
	const char *strs[33];
	size_t n = 0;
	strs[n++] = path;
	for (char *tok = strtok(copy, " "); tok && n < 33;
	    tok = strtok(NULL, " "))
		strs[n++] = tok;
	milter_encode_strings(cmd, which, strs, n);
	free(copy);
	free(path);
}

void milter_client_mail(struct milter_client *ms, const char *sender,
    const char *args, struct milter_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (ms == NULL)
		return;
	if (ms->deferred.action != MILTER_VERDICT_CONTINUE) {
		*v = ms->deferred;
		return;
	}
	for (size_t i = 0; i < ms->n; i++)
		ms->f[i].msg_done = false;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	encode_path(&cmd, MILTER_CMD_MAIL, sender, args);
	run_stage(ms, MILTER_STAGE_MAIL, MILTER_CMD_MAIL, &cmd,
	    MILTER_P_NOMAIL, MILTER_P_NR_MAIL, NULL, v);
	str_free(&cmd);
}

void milter_client_rcpt(struct milter_client *ms, const char *rcpt,
    const char *args, struct milter_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (ms == NULL)
		return;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	encode_path(&cmd, MILTER_CMD_RCPT, rcpt, args);
	run_stage(ms, MILTER_STAGE_RCPT, MILTER_CMD_RCPT, &cmd,
	    MILTER_P_NORCPT, MILTER_P_NR_RCPT, rcpt, v);
	str_free(&cmd);
}

void milter_client_data(struct milter_client *ms, struct milter_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (ms == NULL)
		return;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	milter_encode(&cmd, MILTER_CMD_DATA, NULL, 0);
	run_stage(ms, MILTER_STAGE_DATA, MILTER_CMD_DATA, &cmd,
	    MILTER_P_NODATA, MILTER_P_NR_DATA, NULL, v);
	str_free(&cmd);
}

/* ABORT: the filter forgets the message; no reply (libmilter). */
void milter_client_abort(struct milter_client *ms)
{
	for (size_t i = 0; ms != NULL && i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->state != MILTER_READY || !m->in_msg)
			continue;
		struct str pkt;
		str_init(&pkt, STR_NO_MAX);
		milter_encode(&pkt, MILTER_CMD_ABORT, NULL, 0);
		if (!milter_client_send(m, &pkt,
		    milter_client_timeout_ms(cfg.milter_command_timeout)))
			milter_client_fail(m, "can't send SMFIC_ABORT: %s",
			    strerror(errno));
		str_free(&pkt);
		m->in_msg = false;
		m->msg_done = false;
	}
}

void milter_client_quit(struct milter_client *ms)
{
	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->fd >= 0) {
			struct str pkt;
			str_init(&pkt, STR_NO_MAX);
			milter_encode(&pkt, MILTER_CMD_QUIT, NULL, 0);
			(void)milter_client_send(m, &pkt, 1000);
			str_free(&pkt);
			close(m->fd);
		}
		for (int st = 0; st < MILTER_STAGE_COUNT; st++)
			if (m->own_macros[st])
				cfg_list_free(&m->macros[st]);
	}
	free(ms->f);
	free(ms);
}
