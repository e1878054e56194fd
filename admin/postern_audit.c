/*
 * postern_audit.c - the mail log's record of what an administrator did
 * to the queue: "QID: removed", "placed on hold", "released from hold",
 * "requeued", with who did it, as Postfix's postsuper logs its actions.
 *
 * The line is written by qmgr (type=admin on its control socket,
 * doc/architecture.md): qmgr's log is the mail log whether it goes to
 * syslog or to master's standard error, and qmgr takes the uid from the
 * kernel (SO_PEERCRED), not from us. When qmgr is down the line goes to
 * syslog from here. Either way the administrator's terminal gets it too.
 *
 * Trusts: the IDs and queue names its callers pass (checked by them);
 * SUDO_USER only as a name to show next to the uid the kernel reports.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "admin.h"
#include "bio.h"
#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "sock.h"

#define AUDIT_TIMEOUT_MS 5000

static struct bio audit_bio;
static bool audit_connected;
static bool audit_tried;
static char audit_user[80];

/* "root", or "root (sudo alice)": the login behind a sudo is what an
 * administrator looking at the log wants to know. */
static const char *acting_user(void)
{
	if (audit_user[0] != '\0')
		return audit_user;
	struct passwd *pw = getpwuid(getuid());
	const char *name = pw != NULL ? pw->pw_name : "unknown";
	const char *sudo = getuid() == 0 ? getenv("SUDO_USER") : NULL;
	char esc[40];
	if (sudo != NULL && *sudo != '\0' && strcmp(sudo, name) != 0)
		snprintf(audit_user, sizeof(audit_user), "%s (sudo %s)", name,
		    log_escape(esc, sizeof(esc), sudo, strlen(sudo)));
	else
		snprintf(audit_user, sizeof(audit_user), "%s", name);
	return audit_user;
}

static void audit_connect(void)
{
	char path[512];

	audit_tried = true;
	/* qmgr may close the connection (its client time limit): a write
	 * then fails with EPIPE and the line goes to syslog instead. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(path, sizeof(path), "%s/%s", cfg.run_directory,
	    IPC_SOCKET_QMGR);
	int fd = sock_connect_unix(path, AUDIT_TIMEOUT_MS);
	if (fd < 0)
		return;
	bio_init(&audit_bio, fd, AUDIT_TIMEOUT_MS);
	audit_connected = true;
}

/* qmgr is down (or went away): syslog, facility mail, as postsuper. */
static void audit_syslog(const char *id, const char *action,
    const char *queue)
{
	openlog("postern/postern", LOG_PID, LOG_MAIL);
	syslog(LOG_INFO, "%s: %s, user=%s, uid=%lu, queue=%s", id, action,
	    acting_user(), (unsigned long)getuid(), queue);
	closelog();
}

void admin_audit(const char *id, const char *action, const char *queue)
{
	log_info("%s: %s, user=%s, uid=%lu, queue=%s", id, action,
	    acting_user(), (unsigned long)getuid(), queue);
	if (!audit_tried)
		audit_connect();
	if (audit_connected) {
		struct ipc_msg m;
		ipc_msg_init(&m, "admin");
		ipc_add(&m, "id", "%s", id);
		ipc_add(&m, "action", "%s", action);
		ipc_add(&m, "queue", "%s", queue);
		ipc_add(&m, "user", "%s", acting_user());
		bool sent = ipc_send(&audit_bio, &m);
		ipc_msg_free(&m);
		if (sent)
			return;
		admin_audit_close();
	}
	audit_syslog(id, action, queue);
}

void admin_audit_close(void)
{
	if (audit_connected) {
		close(audit_bio.fd);
		bio_free(&audit_bio);
		audit_connected = false;
	}
}
