/*
 * smtpd_milter.c - smtpd's milter client: the filters of smtpd_milters
 * (inet:host:port, unix:/path), applied in order, at every SMTP stage,
 * speaking protocol version 6 (mail/milter_proto.c), with Postfix's
 * configuration names and meanings (milter_default_action, the three
 * timeouts, milter_*_macros).
 *
 * This file: the session and its stages, replies and log lines;
 * smtpd_milter_io.c: one filter's connection, packets and macros;
 * smtpd_milter_msg.c: the message and the filters' edits.
 *
 * One connection per filter per SMTP session, reused across its
 * transactions. Each filter is a small state machine: CLOSED (not
 * connected yet), READY (negotiated), DONE (it accepted the connection:
 * no more calls), FAILED (it died, timed out or broke the protocol:
 * milter_default_action stands for it for the rest of the session).
 *
 * The message: while it arrives it is spooled into an anonymous file of
 * this process (memfd), never into the queue, so that the worker reads
 * back only its own bytes (doc/architecture.md, "Filters (milter)").
 * At the end of the message each filter gets the headers (our Received
 * first, as Postfix sends its own), the body in chunks of
 * MILTER_CHUNK_SIZE and end-of-body, and answers with edits; a later
 * filter sees the earlier ones' edits. Only when all have spoken is the
 * queue file the door made written: envelope with the edited sender
 * and recipients, headers, body. A filter that fails at any point
 * leaves no half-written file.
 *
 * Trust: the filters are named by root's config, but they are other
 * programs: every reply is decoded with lengths checked, a reply text
 * reaches the client only when it is a valid SMTP reply, header names
 * and addresses are checked before they enter the queue file.
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
#include "milter_proto.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "sock.h"
#include "smtpd_milter_int.h"


enum smtpd_milter_default smtpd_milter_default_action;

bool smtpd_milter_enabled(void)
{
	return cfg.smtpd_milters.count > 0;
}

void smtpd_milter_init(void)
{
	const char *a = cfg.milter_default_action;
	if (strcmp(a, "tempfail") == 0)
		smtpd_milter_default_action = DEFAULT_TEMPFAIL;
	else if (strcmp(a, "accept") == 0)
		smtpd_milter_default_action = DEFAULT_ACCEPT;
	else if (strcmp(a, "reject") == 0)
		smtpd_milter_default_action = DEFAULT_REJECT;
	else if (strcmp(a, "quarantine") == 0)
		smtpd_milter_default_action = DEFAULT_QUARANTINE;
	else
		log_fatal("milter_default_action: \"%s\" is not tempfail, "
		    "accept, reject or quarantine", a);
	if (cfg.milter_protocol < 2 || cfg.milter_protocol > 6)
		log_fatal("milter_protocol: %lld is not 2 to 6",
		    cfg.milter_protocol);
	for (size_t i = 0; i < cfg.smtpd_milters.count; i++) {
		const char *spec = cfg.smtpd_milters.items[i];
		if (strncmp(spec, "inet:", 5) != 0 &&
		    strncmp(spec, "unix:", 5) != 0 &&
		    strncmp(spec, "local:", 6) != 0)
			log_fatal("smtpd_milters: \"%s\" is not inet:host:port "
			    "or unix:/path", spec);
	}
}

/* ---- verdicts ---- */

void smtpd_milter_verdict_set(struct smtpd_milter_verdict *v,
    enum smtpd_milter_action a, const char *reply)
{
	v->action = a;
	strlcpy(v->reply, reply, sizeof(v->reply));
}

/* Postfix's texts for a filter's plain reject and tempfail. */
static void smtpd_milter_verdict_reject(struct smtpd_milter_verdict *v)
{
	smtpd_milter_verdict_set(v, SMTPD_MILTER_REJECT,
	    "550 5.7.1 Command rejected");
}

static void smtpd_milter_verdict_tempfail(struct smtpd_milter_verdict *v)
{
	smtpd_milter_verdict_set(v, SMTPD_MILTER_TEMPFAIL,
	    "451 4.7.1 Service unavailable - try again later");
}

/* ---- the stages before the message ---- */

/* What one filter's reply means at a stage before end-of-message. */
bool smtpd_milter_judge(struct milter_conn *m, const struct milter_reply *r,
    bool connection_stage, struct smtpd_milter_verdict *v)
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
		smtpd_milter_verdict_reject(v);
		return false;
	case MILTER_REPLY_TEMPFAIL:
		smtpd_milter_verdict_tempfail(v);
		return false;
	case MILTER_REPLY_REPLYCODE:
		smtpd_milter_verdict_set(v, r->code >= 500 ?
		    SMTPD_MILTER_REJECT :
		    SMTPD_MILTER_TEMPFAIL, r->text);
		return false;
	case MILTER_REPLY_DISCARD:
		if (connection_stage) {
			/* Nothing to discard yet: as Postfix, ignored. */
			log_warning("milter %s: DISCARD action is not allowed "
			    "at the connection stage", m->spec);
			return true;
		}
		v->action = SMTPD_MILTER_DISCARD;
		m->msg_done = true;
		return true;
	case MILTER_REPLY_SHUTDOWN:
	case MILTER_REPLY_CONN_FAIL:
		smtpd_milter_verdict_tempfail(v);
		smtpd_milter_fail(m, "filter ended the session ('%c')", r->cmd);
		return false;
	default:
		smtpd_milter_fail(m,
		    "unexpected reply '%c' before end of message",
		    r->cmd);
		return true;
	}
}

/* The verdict of milter_default_action for a filter that failed. */
bool smtpd_milter_default_verdict(struct smtpd_milter_verdict *v)
{
	switch (smtpd_milter_default_action) {
	case DEFAULT_TEMPFAIL:
		smtpd_milter_verdict_tempfail(v);
		return false;
	case DEFAULT_REJECT:
		smtpd_milter_verdict_reject(v);
		return false;
	default:
		return true;
	}
}

/*
 * One stage before the message for every filter in order: the stage's
 * macros, then the command; stop at the first reject, tempfail.
 */
static void run_stage(struct smtpd_session *s, enum milter_stage st,
    char cmd, const struct str *command, uint32_t skip_flag,
    uint32_t noreply_flag, const char *rcpt, struct smtpd_milter_verdict *v)
{
	struct smtpd_milter_session *ms = s->milter;
	bool conn_stage = st == MILTER_STAGE_CONNECT || st == MILTER_STAGE_HELO;
	struct str pkt;
	long long tmo = smtpd_milter_timeout_ms(cmd == MILTER_CMD_CONNECT ?
	    cfg.milter_connect_timeout : cfg.milter_command_timeout);

	str_init(&pkt, MILTER_PACKET_MAX + 16);
	for (size_t i = 0; ms != NULL && i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->state == MILTER_FAILED && st == MILTER_STAGE_MAIL) {
			/* A filter that failed earlier in the session. */
			if (!smtpd_milter_default_verdict(v))
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
		smtpd_milter_add_macros(s, m, st, cmd, rcpt, &pkt);
		str_append(&pkt, command->data, command->len);
		const char *what = cmd == MILTER_CMD_CONNECT ? "SMFIC_CONNECT" :
		    cmd == MILTER_CMD_HELO ? "SMFIC_HELO" :
		    cmd == MILTER_CMD_MAIL ? "SMFIC_MAIL" :
		    cmd == MILTER_CMD_RCPT ? "SMFIC_RCPT" : "SMFIC_DATA";
		if (!smtpd_milter_send(m, &pkt, tmo)) {
			smtpd_milter_fail(m, "can't send %s: %s", what,
			    strerror(errno));
			if (!smtpd_milter_default_verdict(v))
				break;
			continue;
		}
		if (m->protocol & noreply_flag)
			continue;
		struct milter_reply r;
		if (!smtpd_milter_read_reply(m, what, tmo, &pkt, &r)) {
			if (!smtpd_milter_default_verdict(v))
				break;
			continue;
		}
		if (!smtpd_milter_judge(m, &r, conn_stage, v))
			break;
	}
	str_free(&pkt);
}

void smtpd_milter_connect(struct smtpd_session *s)
{
	if (!smtpd_milter_enabled())
		return;
	struct smtpd_milter_session *ms = xcalloc(1, sizeof(*ms));
	ms->n = cfg.smtpd_milters.count;
	ms->f = xcalloc(ms->n, sizeof(*ms->f));
	s->milter = ms;
	for (size_t i = 0; i < ms->n; i++) {
		ms->f[i].spec = cfg.smtpd_milters.items[i];
		ms->f[i].fd = -1;
		smtpd_milter_open(&ms->f[i]);
	}
	/* Connect: host name, family, port, address (Postfix sends "L"
	 * with the path for a local client). */
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	if (s->conn->peer_is_unix)
		milter_encode_connect(&cmd, "localhost", 'L', 0, "unix");
	else
		milter_encode_connect(&cmd, s->client_name,
		    strchr(s->client_addr, ':') ? '6' : '4',
		    (uint16_t)s->conn->peer_port, s->client_addr);
	/* The packet includes its header: strip nothing, run_stage appends
	 * it whole after the macros. */
	run_stage(s, MILTER_STAGE_CONNECT, MILTER_CMD_CONNECT, &cmd,
	    MILTER_P_NOCONNECT, MILTER_P_NR_CONN, NULL, &ms->deferred);
	str_free(&cmd);
	/* A failure to connect counts at MAIL (smtpd_milter_default_verdict
	 * there). */
	if (ms->deferred.action == SMTPD_MILTER_DISCARD)
		ms->deferred.action = SMTPD_MILTER_CONTINUE;
}

void smtpd_milter_helo(struct smtpd_session *s)
{
	struct smtpd_milter_session *ms = s->milter;
	if (ms == NULL || ms->deferred.action != SMTPD_MILTER_CONTINUE)
		return;
	const char *helo = s->helo ? s->helo : "";
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	milter_encode_strings(&cmd, MILTER_CMD_HELO, &helo, 1);
	run_stage(s, MILTER_STAGE_HELO, MILTER_CMD_HELO, &cmd,
	    MILTER_P_NOHELO, MILTER_P_NR_HELO, NULL, &ms->deferred);
	str_free(&cmd);
	if (ms->deferred.action == SMTPD_MILTER_DISCARD)
		ms->deferred.action = SMTPD_MILTER_CONTINUE;
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

void smtpd_milter_mail(struct smtpd_session *s, const char *sender,
    const char *args, struct smtpd_milter_verdict *v)
{
	struct smtpd_milter_session *ms = s->milter;
	memset(v, 0, sizeof(*v));
	if (ms == NULL)
		return;
	if (ms->deferred.action != SMTPD_MILTER_CONTINUE) {
		*v = ms->deferred;
		return;
	}
	for (size_t i = 0; i < ms->n; i++)
		ms->f[i].msg_done = false;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	encode_path(&cmd, MILTER_CMD_MAIL, sender, args);
	/* {mail_addr} is the sender being tried: the txn is not made yet. */
	struct smtpd_txn probe = { 0 };
	struct smtpd_txn *saved = s->txn;
	probe.sender = (char *)sender;
	s->txn = &probe;
	run_stage(s, MILTER_STAGE_MAIL, MILTER_CMD_MAIL, &cmd,
	    MILTER_P_NOMAIL, MILTER_P_NR_MAIL, NULL, v);
	s->txn = saved;
	str_free(&cmd);
}

void smtpd_milter_rcpt(struct smtpd_session *s, const char *rcpt,
    const char *args, struct smtpd_milter_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (s->milter == NULL)
		return;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	encode_path(&cmd, MILTER_CMD_RCPT, rcpt, args);
	run_stage(s, MILTER_STAGE_RCPT, MILTER_CMD_RCPT, &cmd,
	    MILTER_P_NORCPT, MILTER_P_NR_RCPT, rcpt, v);
	str_free(&cmd);
}

void smtpd_milter_data(struct smtpd_session *s, struct smtpd_milter_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (s->milter == NULL)
		return;
	struct str cmd;
	str_init(&cmd, STR_NO_MAX);
	milter_encode(&cmd, MILTER_CMD_DATA, NULL, 0);
	run_stage(s, MILTER_STAGE_DATA, MILTER_CMD_DATA, &cmd,
	    MILTER_P_NODATA, MILTER_P_NR_DATA, NULL, v);
	str_free(&cmd);
}

/* ABORT: the filter forgets the message; no reply (libmilter). */
void smtpd_milter_abort(struct smtpd_session *s)
{
	struct smtpd_milter_session *ms = s->milter;
	for (size_t i = 0; ms != NULL && i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->state != MILTER_READY || !m->in_msg)
			continue;
		struct str pkt;
		str_init(&pkt, STR_NO_MAX);
		milter_encode(&pkt, MILTER_CMD_ABORT, NULL, 0);
		if (!smtpd_milter_send(m, &pkt,
		    smtpd_milter_timeout_ms(cfg.milter_command_timeout)))
			smtpd_milter_fail(m, "can't send SMFIC_ABORT: %s",
			    strerror(errno));
		str_free(&pkt);
		m->in_msg = false;
		m->msg_done = false;
	}
}

void smtpd_milter_quit(struct smtpd_session *s)
{
	struct smtpd_milter_session *ms = s->milter;
	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *m = &ms->f[i];
		if (m->fd >= 0) {
			struct str pkt;
			str_init(&pkt, STR_NO_MAX);
			milter_encode(&pkt, MILTER_CMD_QUIT, NULL, 0);
			(void)smtpd_milter_send(m, &pkt, 1000);
			str_free(&pkt);
			close(m->fd);
		}
		for (int st = 0; st < MILTER_STAGE_COUNT; st++)
			if (m->own_macros[st])
				cfg_list_free(&m->macros[st]);
	}
	free(ms->f);
	free(ms);
	s->milter = NULL;
}

/* ---- replies and logs ---- */

void smtpd_milter_reply(struct smtpd_session *s,
    const struct smtpd_milter_verdict *v)
{
	/* Each line "ddd-x.y.z text": split off the codes, as the core's
	 * reply helper puts them back. */
	const char *line = v->reply;
	for (;;) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		int code = atoi(line);
		const char *text = len > 4 ? line + 4 : "";
		size_t tlen = len > 4 ? len - 4 : 0;
		char enh[16] = "";
		size_t e = strspn(text, "0123456789.");
		if (e >= 5 && e < sizeof(enh) && e < tlen && text[e] == ' ') {
			memcpy(enh, text, e);
			enh[e] = '\0';
			text += e + 1;
			tlen -= e + 1;
		}
		if (enh[0] == '\0')
			snprintf(enh, sizeof(enh), "%c.7.1", line[0]);
		if (end == NULL) {
			smtpd_reply(s, code, enh, "%.*s", (int)tlen, text);
			return;
		}
		esmtp_reply(&s->bio, code, enh, false, "%.*s", (int)tlen, text);
		line = end + 2;
	}
}

void smtpd_milter_log(struct smtpd_session *s, const char *stage,
    const char *sender, const char *rcpt,
    const struct smtpd_milter_verdict *v)
{
	char text[600], from[300], to[300], helo[300];
	struct smtpd_txn *t = s->txn;
	if (sender == NULL && t != NULL)
		sender = t->sender;

	log_escape_line(text, sizeof(text), v->reply);
	log_escape(helo, sizeof(helo), s->helo ? s->helo : "",
	    s->helo ? strlen(s->helo) : 0);
	if (sender != NULL)
		log_escape(from, sizeof(from), sender, strlen(sender));
	if (rcpt == NULL && t != NULL && t->nrcpts > 0 &&
	    strcmp(stage, "END-OF-MESSAGE") == 0)
		rcpt = t->rcpts[0].address;
	if (rcpt != NULL)
		log_escape(to, sizeof(to), rcpt, strlen(rcpt));
	const char *what = v->action == SMTPD_MILTER_DISCARD ? "discard" :
	    "reject";
	/* At END-OF-MESSAGE Postfix's cleanup logs the text without the
	 * three-digit code. */
	const char *shown = text;
	if (v->action == SMTPD_MILTER_DISCARD)
		shown = "milter triggers DISCARD action";
	else if (strcmp(stage, "END-OF-MESSAGE") == 0 && strlen(text) > 4)
		shown = text + 4;
	log_info("%s: milter-%s: %s from %s: %s;%s%s%s%s%s%s proto=%s "
	    "helo=<%s>", t && t->queue_id[0] ? t->queue_id : "NOQUEUE", what,
	    stage, s->client_log, shown, sender ? " from=<" : "",
	    sender ? from : "", sender ? ">" : "", rcpt ? " to=<" : "",
	    rcpt ? to : "", rcpt ? ">" : "", smtpd_protocol_name(s), helo);
}

