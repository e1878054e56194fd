/*
 * smtpd_milter.c - smtpd's side of the milter client (mail/milter_client.c,
 * shared with pickup): the filters of smtpd_milters, one connection each
 * per SMTP session, driven by the session at each SMTP stage; the macros
 * only the session knows (client, TLS, AUTH, queue ID); the queue file
 * the door made, written only once the filters have spoken; the SMTP
 * replies and log lines of a filter's verdict.
 *
 * Trust: as the client's (mail/milter_client.c): a reply text reaches
 * the client only when the codec found it a valid SMTP reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cfg.h"
#include "esmtp.h"
#include "log.h"
#include "mem.h"
#include "milter_client.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "sock.h"
#include "tls.h"

/* The message for the filters, and the queue file written after them. */
struct smtpd_milter_msg {
	struct milter_msg *msg;
	int door_fd;
};

bool smtpd_milter_enabled(void)
{
	return cfg.smtpd_milters.count > 0;
}

void smtpd_milter_init(void)
{
	milter_client_init(&cfg.smtpd_milters, "smtpd_milters");
}

/* ---- macros only the session knows ---- */

static void tls_field(const char *info, int which, char *out, size_t size)
{
	/* tls_info: "TLSv1.3 with cipher NAME (256/256 bits)" */
	out[0] = '\0';
	if (info[0] == '\0')
		return;
	if (which == 0) {
		size_t n = strcspn(info, " ");
		snprintf(out, size, "%.*s", (int)n, info);
	} else if (which == 1) {
		const char *c = strstr(info, "cipher ");
		if (c != NULL)
			snprintf(out, size, "%.*s", (int)strcspn(c + 7, " "),
			    c + 7);
	} else {
		const char *b = strchr(info, '(');
		if (b != NULL)
			snprintf(out, size, "%.*s", (int)strcspn(b + 1, "/"),
			    b + 1);
	}
}

/* The value of a macro now (milter_macro_fn), or NULL: not sent. */
static const char *session_macro(void *ctx, const char *bare,
    const char *rcpt, char *buf, size_t size)
{
	struct smtpd_session *s = ctx;
	struct smtpd_txn *t = s->txn;
	(void)rcpt;

	if (strcmp(bare, "_") == 0) {
		snprintf(buf, size, "%s [%s]", s->client_name,
		    s->client_addr);
		return buf;
	}
	if (strcmp(bare, "client_addr") == 0)
		return s->client_addr;
	if (strcmp(bare, "client_name") == 0 ||
	    strcmp(bare, "client_ptr") == 0)
		return s->client_name;
	if (strcmp(bare, "client_port") == 0) {
		snprintf(buf, size, "%d", s->conn->peer_port);
		return buf;
	}
	if (strcmp(bare, "daemon_addr") == 0 ||
	    strcmp(bare, "daemon_port") == 0) {
		int port;
		if (s->conn->local_len == 0 || s->conn->peer_is_unix)
			return NULL;
		sock_addr_format((struct sockaddr *)&s->conn->local, buf, size,
		    &port);
		if (bare[7] == 'p')
			snprintf(buf, size, "%d", port);
		return buf;
	}
	if (strcmp(bare, "tls_version") == 0 || strcmp(bare, "cipher") == 0 ||
	    strcmp(bare, "cipher_bits") == 0) {
		if (!s->tls_active)
			return NULL;
		tls_field(s->tls_info, bare[0] == 't' ? 0 :
		    strcmp(bare, "cipher") == 0 ? 1 : 2, buf, size);
		return buf[0] ? buf : NULL;
	}
	if (strcmp(bare, "cert_subject") == 0 ||
	    strcmp(bare, "cert_issuer") == 0) {
		/* Only when the client showed a certificate (Postfix
		 * sends them only then, too). */
		X509 *cert = s->tls_active ?
		    SSL_get0_peer_certificate(tls_ssl(&s->bio)) : NULL;
		if (cert == NULL)
			return NULL;
		X509_NAME_oneline(bare[5] == 's' ? X509_get_subject_name(cert) :
		    X509_get_issuer_name(cert), buf, (int)size);
		return buf[0] ? buf : NULL;
	}
	if (strcmp(bare, "auth_type") == 0)
		return s->auth_user ? s->auth_method : NULL;
	if (strcmp(bare, "auth_authen") == 0)
		return s->auth_user;
	if (strcmp(bare, "i") == 0)
		return t && t->queue_id[0] ? t->queue_id : NULL;
	if (strcmp(bare, "mail_addr") == 0)
		return s->milter_sender ? s->milter_sender :
		    t ? t->sender : NULL;
	if (strcmp(bare, "mail_host") == 0) {
		const char *snd = s->milter_sender ? s->milter_sender :
		    t ? t->sender : NULL;
		return snd ? addr_domain_of(snd) : NULL;
	}
	if (strcmp(bare, "mail_mailer") == 0 || strcmp(bare, "rcpt_mailer")
	    == 0)
		return "smtp";
	return NULL;
}

/* ---- the stages ---- */

void smtpd_milter_connect(struct smtpd_session *s)
{
	s->milter = milter_client_new(&cfg.smtpd_milters, session_macro, s);
	if (s->milter == NULL)
		return;
	if (s->conn->peer_is_unix)
		milter_client_connect(s->milter, "localhost", 'L', 0, "unix");
	else
		milter_client_connect(s->milter, s->client_name,
		    strchr(s->client_addr, ':') ? '6' : '4',
		    (uint16_t)s->conn->peer_port, s->client_addr);
}

void smtpd_milter_helo(struct smtpd_session *s)
{
	milter_client_helo(s->milter, s->helo ? s->helo : "");
}

void smtpd_milter_mail(struct smtpd_session *s, const char *sender,
    const char *args, struct milter_verdict *v)
{
	/* {mail_addr} is the sender being tried: the txn is not made yet. */
	s->milter_sender = sender;
	milter_client_mail(s->milter, sender, args, v);
	s->milter_sender = NULL;
}

void smtpd_milter_rcpt(struct smtpd_session *s, const char *rcpt,
    const char *args, struct milter_verdict *v)
{
	milter_client_rcpt(s->milter, rcpt, args, v);
}

void smtpd_milter_data(struct smtpd_session *s, struct milter_verdict *v)
{
	milter_client_data(s->milter, v);
}

void smtpd_milter_abort(struct smtpd_session *s)
{
	milter_client_abort(s->milter);
}

void smtpd_milter_quit(struct smtpd_session *s)
{
	milter_client_quit(s->milter);
	s->milter = NULL;
}

/* ---- the message ---- */

struct smtpd_milter_msg *smtpd_milter_msg_new(int door_fd)
{
	struct milter_msg *msg = milter_msg_new();
	if (msg == NULL)
		return NULL;
	struct smtpd_milter_msg *m = xcalloc(1, sizeof(*m));
	m->msg = msg;
	m->door_fd = door_fd;
	return m;
}

bool smtpd_milter_msg_write(struct smtpd_milter_msg *m, const void *p,
    size_t n)
{
	return milter_msg_write(m->msg, p, n);
}

void smtpd_milter_msg_free(struct smtpd_milter_msg *m)
{
	if (m == NULL)
		return;
	if (m->door_fd >= 0)
		close(m->door_fd);
	milter_msg_free(m->msg);
	free(m);
}

bool smtpd_milter_eom(struct smtpd_session *s, const char *received,
    struct milter_verdict *v, const char **hold_reason)
{
	struct smtpd_txn *t = s->txn;
	struct smtpd_milter_msg *m = t->milter_msg;
	char err[512];

	if (!milter_client_eom(s->milter, m->msg, &t->env, t->queue_id,
	    received, v, hold_reason))
		return false;
	t->writer = queue_writer_attach(m->door_fd, t->queue_id, &t->env, err,
	    sizeof(err));
	m->door_fd = -1;	/* the writer owns it now */
	if (t->writer == NULL) {
		log_warning("%s: cannot write queue file: %s", t->queue_id,
		    err);
		v->action = MILTER_VERDICT_TEMPFAIL;
		strlcpy(v->reply, "452 4.3.1 Error: insufficient system storage",
		    sizeof(v->reply));
		return false;
	}
	if (!milter_msg_emit(m->msg, t->writer)) {
		log_warning("%s: queue file write error: %m", t->queue_id);
		v->action = MILTER_VERDICT_TEMPFAIL;
		strlcpy(v->reply, "452 4.3.1 Error: insufficient system storage",
		    sizeof(v->reply));
		return false;
	}
	return true;
}

/* ---- replies and logs ---- */

void smtpd_milter_reply(struct smtpd_session *s,
    const struct milter_verdict *v)
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
    const struct milter_verdict *v)
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
	const char *what = v->action == MILTER_VERDICT_DISCARD ? "discard" :
	    "reject";
	/* At END-OF-MESSAGE Postfix's cleanup logs the text without the
	 * three-digit code. */
	const char *shown = text;
	if (v->action == MILTER_VERDICT_DISCARD)
		shown = "milter triggers DISCARD action";
	else if (strcmp(stage, "END-OF-MESSAGE") == 0 && strlen(text) > 4)
		shown = text + 4;
	log_info("%s: milter-%s: %s from %s: %s;%s%s%s%s%s%s proto=%s "
	    "helo=<%s>", t && t->queue_id[0] ? t->queue_id : "NOQUEUE", what,
	    stage, s->client_log, shown, sender ? " from=<" : "",
	    sender ? from : "", sender ? ">" : "", rcpt ? " to=<" : "",
	    rcpt ? to : "", rcpt ? ">" : "", smtpd_protocol_name(s), helo);
}

