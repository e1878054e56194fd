/*
 * queue_dirs.c - the queue's directories: creating them with their owners
 * and modes (master, at start) and checking them (postern check).
 *
 * Trust: the queue_directory from the config. An existing directory is
 * opened with O_NOFOLLOW and corrected through its descriptor, so a
 * symlink planted in its place is an error, never followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "queue.h"
#include "queue_format.h"
#include "str.h"

#include <bsd/string.h>

/* ---- queue directories ---- */

struct queue_dir_spec {
	const char *name;
	mode_t mode;
	bool drop_group;	/* group is gid_drop */
};

static const struct queue_dir_spec queue_dir_specs[] = {
	{ QUEUE_MAILDROP, 0730, true },
	{ QUEUE_INCOMING, 0700, false },
	{ QUEUE_ACTIVE, 0700, false },
	{ QUEUE_DEFERRED, 0700, false },
	{ QUEUE_HOLD, 0700, false },
	{ QUEUE_CORRUPT, 0700, false },
	{ QUEUE_RECYCLE, 0700, false },
	{ QUEUE_TLS, 0700, false },
};

/* path gets the directory of d under queue_directory; false
 * with err when it would not fit. */
static bool spec_path(char path[PATH_MAX], const char *queue_directory,
    const struct queue_dir_spec *d, char *err, size_t errsize)
{
	if ((size_t)snprintf(path, PATH_MAX, "%s/%s", queue_directory,
	    d->name) < PATH_MAX)
		return true;
	snprintf(err, errsize, "queue_directory is too long");
	return false;
}

/*
 * Make path a directory with this mode (and, as root, these owners). An
 * existing directory is corrected; a symlink or other file is an error.
 * The mode is set with fchmod because mkdir's mode passes through umask.
 */
static bool queue_make_dir(const char *path, mode_t mode, bool chown_it,
    uid_t uid, gid_t gid, char *err, size_t errsize)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST) {
		snprintf(err, errsize, "mkdir %s: %s", path, strerror(errno));
		return false;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "open %s: %s", path,
		    errno == ENOTDIR || errno == ELOOP ?
		    "exists and is not a directory" : strerror(errno));
		return false;
	}
	bool ok = true;
	if (chown_it && fchown(fd, uid, gid) < 0) {
		snprintf(err, errsize, "chown %s: %s", path, strerror(errno));
		ok = false;
	} else if (fchmod(fd, mode) < 0) {
		snprintf(err, errsize, "chmod %s: %s", path, strerror(errno));
		ok = false;
	}
	close(fd);
	return ok;
}

bool queue_dirs_create(const char *queue_directory, uid_t uid, gid_t gid,
    gid_t gid_drop, char *err, size_t errsize)
{
	char path[PATH_MAX];
	bool root = geteuid() == 0;

	/* The top directory belongs to whoever creates it (root in
	 * production, like /var/spool/postfix); only its subdirectories
	 * belong to the postern user. */
	if (mkdir(queue_directory, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errsize, "mkdir %s: %s", queue_directory,
		    strerror(errno));
		return false;
	}
	for (size_t i = 0; i < sizeof(queue_dir_specs) / sizeof(queue_dir_specs[0]); i++) {
		const struct queue_dir_spec *d = &queue_dir_specs[i];
		if (!spec_path(path, queue_directory, d, err, errsize))
			return false;
		if (!queue_make_dir(path, d->mode, root, uid,
		    d->drop_group ? gid_drop : gid, err, errsize))
			return false;
	}
	for (int h = 0; h < QUEUE_DEFERRED_HASH; h++) {
		snprintf(path, sizeof(path), "%s/%s/%x", queue_directory,
		    QUEUE_DEFERRED, h);
		if (!queue_make_dir(path, 0700, root, uid, gid, err, errsize))
			return false;
	}
	return true;
}

bool queue_dirs_each(const char *queue_directory, const char *skip,
    bool (*visit)(const char *path, void *arg), void *arg)
{
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof(queue_dir_specs) / sizeof(queue_dir_specs[0]); i++) {
		const struct queue_dir_spec *d = &queue_dir_specs[i];
		if (skip != NULL && strcmp(d->name, skip) == 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s",
		    queue_directory, d->name) >= sizeof(path) ||
		    !visit(path, arg))
			return false;
	}
	for (int h = 0; h < QUEUE_DEFERRED_HASH; h++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s/%x",
		    queue_directory, QUEUE_DEFERRED, h) >= sizeof(path) ||
		    !visit(path, arg))
			return false;
	}
	return true;
}

static bool queue_check_dir(const char *path, mode_t mode, uid_t uid,
    char *err, size_t errsize)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errsize, "%s: not a directory", path);
		return false;
	}
	if (st.st_uid != uid) {
		snprintf(err, errsize, "%s: owned by uid %ld, should be %ld",
		    path, (long)st.st_uid, (long)uid);
		return false;
	}
	if ((st.st_mode & 07777) != mode) {
		snprintf(err, errsize, "%s: mode %04o, should be %04o", path,
		    (unsigned)(st.st_mode & 07777), (unsigned)mode);
		return false;
	}
	return true;
}

bool queue_dirs_check(const char *queue_directory, uid_t uid, char *err,
    size_t errsize)
{
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof(queue_dir_specs) / sizeof(queue_dir_specs[0]); i++) {
		const struct queue_dir_spec *d = &queue_dir_specs[i];
		snprintf(path, sizeof(path), "%s/%s", queue_directory, d->name);
		if (!queue_check_dir(path, d->mode, uid, err, errsize))
			return false;
	}
	for (int h = 0; h < QUEUE_DEFERRED_HASH; h++) {
		snprintf(path, sizeof(path), "%s/%s/%x", queue_directory,
		    QUEUE_DEFERRED, h);
		if (!queue_check_dir(path, 0700, uid, err, errsize))
			return false;
	}
	return true;
}

/*
 * What master's queue_dirs_create() will make of path: nothing to do,
 * something to create or correct (a line appended to note), or an error
 * it cannot get past (false, err).
 */
static bool queue_plan_dir(const char *path, mode_t mode, uid_t uid, bool root,
    struct str *note, char *err, size_t errsize)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT) {
			snprintf(err, errsize, "%s: %s", path, strerror(errno));
			return false;
		}
		str_appendf(note, "%s: missing; start creates it\n", path);
		return true;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errsize, "%s: exists and is not a directory",
		    path);
		return false;
	}
	if (st.st_uid != uid && !root) {
		/* Not root, start can neither chown it nor chmod it. */
		snprintf(err, errsize, "%s: owned by uid %ld, should be %ld",
		    path, (long)st.st_uid, (long)uid);
		return false;
	}
	if (st.st_uid != uid || (st.st_mode & 07777) != mode)
		str_appendf(note, "%s: owner or mode not as start sets them "
		    "(uid %ld, %04o); start corrects them\n", path, (long)uid,
		    (unsigned)mode);
	return true;
}

bool queue_dirs_plan(const char *queue_directory, uid_t uid, struct str *note,
    char *err, size_t errsize)
{
	char path[PATH_MAX];
	struct stat st;
	bool root = geteuid() == 0;

	if (lstat(queue_directory, &st) < 0) {
		if (errno != ENOENT) {
			snprintf(err, errsize, "%s: %s", queue_directory,
			    strerror(errno));
			return false;
		}
		/* start makes the top directory, not its parents. */
		strlcpy(path, queue_directory, sizeof(path));
		char *slash = strrchr(path, '/');
		if (slash != NULL && slash != path)
			*slash = '\0';
		else if (slash == path)
			path[1] = '\0';
		else
			strlcpy(path, ".", sizeof(path));
		if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(err, errsize, "%s: missing, and start cannot "
			    "create it: %s is not a directory", queue_directory,
			    path);
			return false;
		}
		str_appendf(note, "%s: missing; start creates it and the queue "
		    "directories in it\n", queue_directory);
		return true;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errsize, "%s: exists and is not a directory",
		    queue_directory);
		return false;
	}
	for (size_t i = 0; i < sizeof(queue_dir_specs) / sizeof(queue_dir_specs[0]); i++) {
		const struct queue_dir_spec *d = &queue_dir_specs[i];
		if (!spec_path(path, queue_directory, d, err, errsize))
			return false;
		if (!queue_plan_dir(path, d->mode, uid, root, note, err,
		    errsize))
			return false;
		/* A missing deferred/ brings its hash subdirectories. */
		if (strcmp(d->name, QUEUE_DEFERRED) != 0 ||
		    lstat(path, &st) < 0)
			continue;
		for (int h = 0; h < QUEUE_DEFERRED_HASH; h++) {
			snprintf(path, sizeof(path), "%s/%s/%x", queue_directory,
			    QUEUE_DEFERRED, h);
			if (!queue_plan_dir(path, 0700, uid, root, note, err,
			    errsize))
				return false;
		}
	}
	return true;
}
