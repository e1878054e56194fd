/*
 * priv.c - dropping root for good (see priv.h). Trusts the user and
 * group databases (root's files); checks every result.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"
#include "priv.h"

bool priv_is_root(void)
{
	return geteuid() == 0;
}

bool priv_lookup_user(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);
	if (pw == NULL)
		return false;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return true;
}

bool priv_lookup_group(const char *group, gid_t *gid)
{
	struct group *gr = getgrnam(group);
	if (gr == NULL)
		return false;
	*gid = gr->gr_gid;
	return true;
}

/* After the drop: every id is the user's, no group but its own. */
static bool dropped_to(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return false;
	if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid ||
	    sg != gid)
		return false;
	if (getgroups(0, NULL) != 0)
		return false;
	/* Root must be gone for good. */
	return setuid(0) < 0 && setgid(0) < 0;
}

void priv_drop(const char *user)
{
	uid_t uid;
	gid_t gid;

	if (!priv_is_root()) {
		log_debug("not started as root: running as uid %ld, no "
		    "privileges to drop", (long)getuid());
		priv_no_new_privs();
		return;
	}
	if (!priv_lookup_user(user, &uid, &gid))
		log_fatal("unknown user \"%s\": create it or set the user in "
		    "postern.conf", user);
	if (uid == 0)
		log_fatal("refusing to run as \"%s\": it has uid 0", user);
	/*
	 * Exactly one group: the user's own. Supplementary groups would
	 * carry whatever else an administrator gave that account (ssl-cert,
	 * adm...) into a process that parses the network.
	 */
	if (setgroups(0, NULL) < 0)
		log_fatal("setgroups: %m");
	if (setresgid(gid, gid, gid) < 0)
		log_fatal("setresgid(%ld): %m", (long)gid);
	if (setresuid(uid, uid, uid) < 0)
		log_fatal("setresuid(%ld): %m", (long)uid);
	if (!dropped_to(uid, gid))
		log_fatal("privileges could still be regained after dropping "
		    "to %s", user);
	priv_no_new_privs();
}

void priv_no_new_privs(void)
{
	/* No exec can give privileges back (setuid files, file caps), and
	 * a seccomp filter can be installed without CAP_SYS_ADMIN. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_fatal("prctl(PR_SET_NO_NEW_PRIVS): %m");
}
