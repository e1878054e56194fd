/*
 * priv.c - dropping root for good (see priv.h).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
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

void priv_drop(const char *user)
{
	uid_t uid;
	gid_t gid;

	if (!priv_is_root()) {
		log_debug("not started as root: running as uid %ld, no "
		    "privileges to drop", (long)getuid());
		return;
	}
	if (!priv_lookup_user(user, &uid, &gid))
		log_fatal("unknown user \"%s\": create it or set the user in "
		    "postern.conf", user);
	if (uid == 0)
		log_fatal("refusing to run as \"%s\": it has uid 0", user);
	if (initgroups(user, gid) < 0)
		log_fatal("initgroups(%s): %m", user);
	if (setgid(gid) < 0)
		log_fatal("setgid(%ld): %m", (long)gid);
	if (setuid(uid) < 0)
		log_fatal("setuid(%ld): %m", (long)uid);
	/* Verify: root must be gone for good. */
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0)
		log_fatal("privileges could still be regained after dropping "
		    "to %s", user);
}
