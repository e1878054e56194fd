/*
 * smtpd.c - postern's SMTP server: main() and the per-connection entry.
 *
 * master pre-forks this program for the services "smtp" (port 25 role),
 * "submission" (587) and "smtps" (465, implicit TLS). Each process gets
 * its door first (smtpd_door.c: the queue and smtpd_sasl_users, as
 * `user`, forked by the door zygote that smtpd's zygote started); the
 * daemon skeleton then drops this process, the network
 * worker, to smtpd_user and hands over one accepted connection at a
 * time. Everything that arrives on a connection is untrusted; the config
 * and the inherited sockets are trusted.
 */
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <bsd/string.h>

#include "cfg.h"
#include "daemon.h"
#include "dns.h"
#include "log.h"
#include "mem.h"
#include "smtpd.h"
#include "smtpd_milter.h"
#include "sock.h"

static void smtpd_serve(struct daemon_conn *conn)
{
	struct smtpd_session s;

	memset(&s, 0, sizeof(s));
	s.conn = conn;
	s.submission = strcmp(conn->service, "submission") == 0;
	s.implicit_tls = strcmp(conn->service, "smtps") == 0;
	if (s.implicit_tls && !smtpd_tls_available()) {
		/* postern check refuses this config; never fall back to a
		 * plaintext session on a port where clients expect TLS. */
		log_warning("smtps: no tls_cert_file/tls_key_file: closing "
		    "the connection from [%s]", conn->peer_addr);
		return;
	}
	/*
	 * A plain session on a socket accepted here keeps it blocking and
	 * waits for each command in read(2) itself, under SO_RCVTIMEO
	 * (bio_timed_reads): no poll(2) per command. What reads the
	 * socket before the bio (the PROXY header, smtps' handshake) and
	 * a descriptor screen passed on get O_NONBLOCK and wait in poll,
	 * as STARTTLS does from its handshake on (smtpd_tls.c). Writes to
	 * a stalled client time out either way.
	 */
	bool timed_reads = !conn->greeted && !conn->proxy && !s.implicit_tls;
	int on = 1;
	bool nonblocking = !timed_reads &&
	    ioctl(conn->fd, FIONBIO, &on) == 0;
	/* Behind a load balancer: the real client, before anything uses
	 * the peer's address. */
	if (conn->proxy && !smtpd_proxy_accept(conn))
		return;
	long long timeout_ms = cfg.smtpd_timeout * 1000;
	if (timeout_ms <= 0 || timeout_ms > 24LL * 3600 * 1000)
		timeout_ms = 300 * 1000;
	bio_init(&s.bio, conn->fd, (int)timeout_ms);
	if (timed_reads)
		bio_timed_reads(&s.bio);
	s.bio.fd_nonblocking = nonblocking;
	/* Passed on by screen: its client's first bytes come first. */
	bio_prefill(&s.bio, conn->preread, conn->preread_len);
	strlcpy(s.client_addr, conn->peer_addr, sizeof(s.client_addr));
	/* smtpd_clientname.c */
	smtpd_client_name(conn, s.client_name, sizeof(s.client_name));
	snprintf(s.client_log, sizeof(s.client_log), "%s[%s]", s.client_name,
	    s.client_addr);
	s.client_trusted = !conn->peer_is_unix &&
	    sock_addr_in_networks((struct sockaddr *)&conn->peer,
	    cfg.mynetworks.items, cfg.mynetworks.count);

	smtpd_session_init(&s);
	smtpd_session_run(&s);

	smtpd_stress_session_end();
	smtpd_tls_end(&s);
	smtpd_txn_free(&s);
	free(s.helo);
	free(s.auth_user);
	smtp_server_free(&s.srv);
	bio_free(&s.bio);
}

/*
 * Still root. The door first (made by the door zygote, which never holds
 * the TLS key), then the key, which may be readable by root alone.
 */
static void smtpd_pre_drop(const char *service)
{
	smtpd_door_start();
	smtpd_tls_init();
}

static void smtpd_init(const char *service)
{
	char err[512];

	if (cfg.myhostname == NULL || *cfg.myhostname == '\0')
		log_fatal("myhostname is not set");
	if (!dns_init(&cfg.dns_servers, err, sizeof(err)))
		log_fatal("%s", err);
	smtpd_check_init();
	smtpd_milter_init();
	smtpd_rewrite_init();
	smtpd_sender_init();
	smtpd_authcheck_init();
	smtpd_stress_init();
	smtpd_door_wait_ready();
}

static const struct daemon_service smtpd_service = {
	.program = "smtpd",
	.run_as_smtpd_user = true,
	.confine_from_zygote = true,
	.zygote_start = smtpd_door_zygote_start,
	.pre_drop = smtpd_pre_drop,
	.init = smtpd_init,
	.serve = smtpd_serve,
};

int main(int argc, char **argv)
{
	daemon_main(argc, argv, &smtpd_service);
}
