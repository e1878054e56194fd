/*
 * smtpd_tls.c - the server side of TLS for smtpd: STARTTLS (RFC 3207) on
 * the smtp and submission services, and implicit TLS (RFC 8314) on smtps,
 * on top of mail/tls.c.
 *
 * The certificate and key are loaded while the process is still root
 * (daemon_service.pre_drop), so the key file may be readable by root
 * alone; a file that cannot be loaded ends the process at start-up with
 * its name in the log. The peer is untrusted: the handshake has the
 * session's deadline, and anything the client pipelined behind STARTTLS
 * is thrown away unread (RFC 3207 4.2; CVE-2011-0411 class), because it
 * arrived before the channel was protected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "smtpd.h"
#include "smtpd_metrics.h"
#include "tls.h"
#include "tls_ticket.h"

static SSL_CTX *server_ctx;

static void free_context(void)
{
	SSL_CTX_free(server_ctx);
	server_ctx = NULL;
}

void smtpd_tls_init(void)
{
	char err[512];
	bool have_cert = cfg.tls_cert_file[0] != '\0';
	bool have_key = cfg.tls_key_file[0] != '\0';

	if (!have_cert && !have_key)
		return;
	if (!have_cert || !have_key)
		log_fatal("TLS needs both tls_cert_file and tls_key_file "
		    "(only %s is set)", have_cert ? "tls_cert_file" :
		    "tls_key_file");
	server_ctx = tls_server_context(cfg.tls_cert_file, cfg.tls_key_file,
	    err, sizeof(err));
	if (server_ctx == NULL)
		log_fatal("%s", err);
	/* Tickets only with master's shared keys: any process resumes. */
	const char *ticket_fd = getenv("POSTERN_TLS_TICKET_FD");
	if (ticket_fd != NULL && !tls_ticket_keys_use(server_ctx,
	    atoi(ticket_fd)))
		log_warning("cannot use the TLS session ticket keys: no "
		    "session resumption");
	atexit(free_context);
}

bool smtpd_tls_available(void)
{
	return server_ctx != NULL;
}

bool smtpd_tls_handshake(struct smtpd_session *s)
{
	char err[256];

	/* The handshake and TLS's records wait in poll(2). */
	if (!bio_timed_reads_end(&s->bio)) {
		log_info("SSL_accept error from %s: O_NONBLOCK: %m",
		    s->client_log);
		smtpd_metrics_tls(s, false);
		return false;
	}
	if (!tls_start(&s->bio, server_ctx, TLS_ROLE_SERVER, NULL,
	    s->bio.timeout_ms, err, sizeof(err))) {
		log_info("SSL_accept error from %s: %s", s->client_log, err);
		smtpd_metrics_tls(s, false);
		return false;
	}
	s->tls_active = true;
	smtpd_metrics_tls(s, true);
	tls_describe(&s->bio, s->tls_info, sizeof(s->tls_info));
	log_info("Anonymous TLS connection %s from %s: %s",
	    SSL_session_reused(tls_ssl(&s->bio)) ? "reused" : "established",
	    s->client_log, s->tls_info);
	return true;
}

void smtpd_tls_end(struct smtpd_session *s)
{
	if (s->tls_active)
		tls_end(&s->bio);
}

void smtpd_cmd_starttls(struct smtp_server *srv, const char *arg)
{
	struct smtpd_session *s = SMTP_SERVER_SESSION(srv, struct smtpd_session);

	if (server_ctx == NULL) {
		smtpd_reply(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (s->tls_active) {
		smtpd_reply(s, 554, "5.5.1", "Error: TLS already active");
		return;
	}
	if (*arg != '\0') {
		smtpd_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if (s->srv.state == SMTP_SERVER_CONNECTED) {
		smtpd_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	if (s->txn != NULL) {
		smtpd_reply(s, 503, "5.5.1", "Error: MAIL transaction in "
		    "progress");
		return;
	}
	smtpd_reply(s, 220, "2.0.0", "Ready to start TLS");
	if (!smtpd_flush(s)) {
		smtpd_io_failed(s, BIO_ERROR);
		return;
	}
	/* RFC 3207 4.2: nothing sent before the handshake may count. */
	size_t pipelined = bio_buffered(&s->bio);
	if (pipelined > 0) {
		log_info("warning: %s: discarding %zu bytes of input pipelined "
		    "after STARTTLS", s->client_log, pipelined);
		bio_discard_input(&s->bio);
	}
	if (!smtpd_tls_handshake(s)) {
		smtpd_enter_state(s, SMTP_SERVER_CLOSING);
		return;
	}
	/* RFC 3207 4.2: the session starts over; the client must EHLO
	 * again, and nothing learnt in clear text is kept. */
	smtpd_txn_free(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	smtpd_enter_state(s, SMTP_SERVER_CONNECTED);
}
