/*
 * master_statedir.c - the directories of the state files the services
 * keep outside the queue, made for them (they write as `user`) when the
 * feature is on and the directory is missing, as master makes the queue
 * directories: smtpd_greylist_database (anvil) and screen_cache_map
 * (screen). The missing directories above are root's, mode 0755 (the
 * defaults /var/lib/postern/greylist/ and /var/lib/postern/screen/ sit
 * in Debian's root-owned /var/lib/postern).
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

/* The directory of one state file (key names it in the log). */
static void state_dir_prepare(const char *key, const char *path)
{
	char dir[4096];
	struct stat st;

	if (strncmp(path, "hash:", 5) == 0)
		path += 5;
	strlcpy(dir, path, sizeof(dir));
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
			log_warning("%s: cannot make %s: %m: it stays unused "
			    "until it exists", key, dir);
			return;
		}
		*p = '/';
	}
	if (mkdir(dir, 0700) < 0) {
		log_warning("%s: cannot make %s: %m: it stays unused until "
		    "it exists", key, dir);
		return;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchown(fd, uid, gid) < 0)
		log_warning("%s: %s: %m", key, dir);
	if (fd >= 0)
		close(fd);
	log_info("made %s for %s", dir, key);
}

void master_state_dirs_prepare(void)
{
	if (cfg.smtpd_greylist)
		state_dir_prepare("smtpd_greylist_database",
		    cfg.smtpd_greylist_database);
	if (cfg.screen && cfg.screen_cache_map[0] != '\0')
		state_dir_prepare("screen_cache_map", cfg.screen_cache_map);
}
