/*
 * master_greylist.c - the directory of smtpd_greylist_database, made
 * for anvil (which writes the file as `user`) when greylisting is on and
 * the directory is missing, as master makes the queue directories; the
 * missing directories above it are root's, mode 0755 (the default
 * /var/lib/postern/greylist/ sits in Debian's root-owned
 * /var/lib/postern).
 *
 * Trusts the config (root's). Root acts here only on the directory it
 * has just made: it is opened with O_NOFOLLOW and changed through that
 * descriptor, so that nothing put under its name meanwhile is changed.
 * A directory that exists already is the administrator's and is left
 * as it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "log.h"
#include "master.h"
#include "priv.h"

void master_greylist_prepare(void)
{
	char dir[4096];
	struct stat st;

	if (!cfg.smtpd_greylist)
		return;
	strlcpy(dir, cfg.smtpd_greylist_database, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return;
	*slash = '\0';
	if (lstat(dir, &st) == 0 || errno != ENOENT)
		return;
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (priv_is_root() && !priv_lookup_user(cfg.user, &uid, &gid))
		return;		/* prepare_directories() said so already */
	/* The parents first, root's (or the invoking user's), 0755. */
	for (char *p = strchr(dir + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			log_warning("smtpd_greylist_database: cannot make %s: "
			    "%m: greylisting stays off until it exists", dir);
			return;
		}
		*p = '/';
	}
	if (mkdir(dir, 0700) < 0) {
		log_warning("smtpd_greylist_database: cannot make %s: %m: "
		    "greylisting stays off until it exists", dir);
		return;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchown(fd, uid, gid) < 0)
		log_warning("smtpd_greylist_database: %s: %m", dir);
	if (fd >= 0)
		close(fd);
	log_info("made %s for smtpd_greylist_database", dir);
}
