/*
 * lmtpd.c - the LMTP delivery server: main and service entry.
 *
 * master pre-forks lmtpd on lmtp_listen (a Unix socket and/or TCP); each
 * process runs as mailbox_owner, serves one connection at a time and stores
 * mail into Maildirs under mailbox_base. Any MTA can use it as its LMTP
 * delivery target (Postfix: "mailbox_transport = lmtp:unix:/run/postern/lmtp").
 *
 * Trusts the configuration and the tables it names; trusts nothing that
 * arrives on a connection (lmtpd_proto.c).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cfg.h"
#include "daemon.h"
#include "dirsync.h"
#include "lmtpd.h"
#include "log.h"

struct lmtpd_settings lmtpd_settings;

static void lmtpd_init(const char *service)
{
	lmtpd_settings.hostname = cfg.myhostname[0] ? cfg.myhostname :
	    "localhost";
	lmtpd_settings.size_limit = cfg.message_size_limit;
	lmtpd_settings.quota = cfg.mailbox_quota;
	lmtpd_settings.quota_tempfail = cfg.mailbox_quota_tempfail;
	lmtpd_settings.max_delivered_to = cfg.lmtpd_max_delivered_to;
	lmtpd_settings.recipient_limit = cfg.lmtpd_recipient_limit > 0 ?
	    cfg.lmtpd_recipient_limit : 1;
	lmtpd_settings.timeout_ms = cfg.lmtpd_timeout > 0 ?
	    (int)(cfg.lmtpd_timeout * 1000) : -1;
	if (cfg.mailbox_base[0] != '/')
		log_fatal("mailbox_base must be an absolute path: %s",
		    cfg.mailbox_base);
	lmtpd_rcpt_init();
}

/*
 * Still root: map the group-commit table of new/'s fsyncs
 * (mail/dirsync.c), a root file in run_directory that no process of
 * mailbox_owner can open, shared by every lmtpd of this master.
 */
static void lmtpd_pre_drop(const char *service)
{
	char path[4096];

	(void)service;
	snprintf(path, sizeof(path), "%s/%s", cfg.run_directory,
	    DIRSYNC_TABLE_LMTPD);
	dirsync_attach(path);
}

static void lmtpd_serve(struct daemon_conn *conn)
{
	lmtpd_session_run(conn);
}

int main(int argc, char **argv)
{
	static const struct daemon_service service = {
		.program = "lmtpd",
		.run_as_mailbox_owner = true,
		.pre_drop = lmtpd_pre_drop,
		.init = lmtpd_init,
		.serve = lmtpd_serve,
	};

	daemon_main(argc, argv, &service);
}
