/*
 * queue_recycle_keep.c - what master keeps of recycle/ at start (queue.h,
 * "Recycling"): every file a writer may take again, and no name whose
 * inode a queue file also has.
 *
 * Why not keep everything: on a file system without a journal, a power
 * cut can leave a rename out of recycle/ (a writer's claim) or into it
 * (qmgr's removal) on disk in part: one inode named in recycle/ and in a
 * queue directory. After fsck its link count is 2 and the writer's
 * one-link check refuses it; without fsck the count is still 1, a writer
 * would overwrite the queued message, and an unlink of the recycle/ name
 * would free the inode under it. So a recycle/ name is kept only when no
 * other queue directory names its inode; it is unlinked only when its
 * link count covers every name the queue has for it (the unlink then
 * frees nothing a queue file names); otherwise it is moved into corrupt/,
 * where no writer looks and no program unlinks, until an administrator
 * has run fsck.
 *
 * Trust: master runs this as root, holding the pid file's lock, before
 * it starts any daemon. recycle/ belongs to the postern user: its names
 * and files are checked, never followed, opened or read. A directory
 * entry's d_ino is its inode number (ext4, XFS, btrfs, tmpfs); one
 * getdents64() pass per directory, no stat of a queue file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "log.h"
#include "mem.h"
#include "queue.h"

/* One getdents64() reads about a thousand queue names. */
#define KEEP_DIRENT_BUFFER 32768
/* Names tried in corrupt/ for one set-aside file. */
#define KEEP_ASIDE_TRIES 100

struct recycle_entry {
	char *name;
	ino_t ino;		/* the entry's d_ino */
	size_t queue_names;	/* names of ino in the queue's other
				 * directories (counted on the first
				 * entry of an inode's run only) */
};

struct recycle_list {
	struct recycle_entry *v;
	size_t count, size;
};

struct keep_scan {
	struct recycle_list *list;
	char *err;
	size_t errsize;
};

/*
 * Call fn for every entry of the directory open at fd but "." and "..",
 * in getdents64()'s large reads; false with errno when it cannot be read.
 */
static bool dir_entries(int fd, void (*fn)(const struct dirent64 *e,
    void *arg), void *arg)
{
	_Alignas(struct dirent64) char buf[KEEP_DIRENT_BUFFER];

	for (;;) {
		ssize_t got = getdents64(fd, buf, sizeof(buf));
		if (got <= 0)
			return got == 0;
		for (ssize_t off = 0; off < got;) {
			const struct dirent64 *e = (const void *)(buf + off);
			if (e->d_reclen == 0) {
				errno = EIO;
				return false;
			}
			off += e->d_reclen;
			if (strcmp(e->d_name, ".") != 0 &&
			    strcmp(e->d_name, "..") != 0)
				fn(e, arg);
		}
	}
}

static void add_recycle_name(const struct dirent64 *e, void *arg)
{
	struct recycle_list *l = arg;
	if (l->count == l->size) {
		l->size = l->size ? 2 * l->size : 64;
		l->v = xreallocarray(l->v, l->size, sizeof(*l->v));
	}
	l->v[l->count++] = (struct recycle_entry){ .name = xstrdup(e->d_name),
		.ino = (ino_t)e->d_ino };
}

static int by_inode(const void *a, const void *b)
{
	ino_t x = ((const struct recycle_entry *)a)->ino;
	ino_t y = ((const struct recycle_entry *)b)->ino;
	return x < y ? -1 : x > y;
}

/* A queue directory's entry: one more name for a recycle/ inode? */
static void count_queue_name(const struct dirent64 *e, void *arg)
{
	struct recycle_list *l = arg;
	size_t lo = 0, hi = l->count;	/* the first entry with ino >= */

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->v[mid].ino < (ino_t)e->d_ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < l->count && l->v[lo].ino == (ino_t)e->d_ino)
		l->v[lo].queue_names++;
}

static bool scan_queue_dir(const char *path, void *arg)
{
	struct keep_scan *s = arg;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !dir_entries(fd, count_queue_name, s->list)) {
		snprintf(s->err, s->errsize, "read %s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	return true;
}

/* One of qmgr's slot names: "0" to QUEUE_RECYCLE_SLOTS - 1, as
 * queue_remove() writes them. */
static bool slot_name(const char *name)
{
	char *end;
	char canonical[16];

	if (name[0] < '0' || name[0] > '9')
		return false;
	unsigned long slot = strtoul(name, &end, 10);
	snprintf(canonical, sizeof(canonical), "%lu", slot);
	return *end == '\0' && slot < QUEUE_RECYCLE_SLOTS &&
	    strcmp(canonical, name) == 0;
}

/* What qmgr leaves in recycle/ and a writer takes (queue_recycle_claim). */
static bool reusable(const struct stat *st, uid_t owner, const char *name)
{
	return S_ISREG(st->st_mode) && st->st_nlink == 1 &&
	    st->st_uid == owner && (st->st_mode & 07777) == 0600 &&
	    st->st_size <= QUEUE_RECYCLE_MAX_SIZE && slot_name(name);
}

/*
 * Move recycle/name into corrupt/ as "recycle.<inode>.<n>" (a rename:
 * the link count does not change, no inode is freed); to gets the new
 * name. Not synced: a rename a power cut undoes is done again at the
 * next start.
 */
static bool set_aside(int rfd, int cfd, const char *name, ino_t ino,
    char *to, size_t tosize)
{
	struct stat st;

	for (unsigned n = 0; n < KEEP_ASIDE_TRIES; n++) {
		snprintf(to, tosize, "recycle.%ju.%u", (uintmax_t)ino, n);
		int r = renameat2(rfd, name, cfd, to, RENAME_NOREPLACE);
		/* Without RENAME_NOREPLACE: nothing else writes corrupt/
		 * before the daemons start. */
		if (r < 0 && errno == EINVAL &&
		    fstatat(cfd, to, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno == ENOENT)
			r = renameat(rfd, name, cfd, to);
		if (r == 0)
			return true;
		if (errno != EEXIST)
			return false;
	}
	errno = EEXIST;
	return false;
}

/* recycle/name into corrupt/, logged with why (the rest of a line). */
static void keep_aside(int rfd, int cfd, const char *queue_directory,
    const struct recycle_entry *e, const char *why,
    struct queue_recycle_kept *done)
{
	char to[64];

	if (set_aside(rfd, cfd, e->name, e->ino, to, sizeof(to))) {
		log_warning("%s/%s/%s: %s; moved to %s/%s/%s, where nothing "
		    "reuses or removes it", queue_directory, QUEUE_RECYCLE,
		    e->name, why, queue_directory, QUEUE_CORRUPT, to);
		done->set_aside++;
		return;
	}
	if (errno == ENOENT)
		return;		/* gone already */
	/* A writer's checks are all that stand in the way now. */
	log_warning("%s/%s/%s: %s; cannot move it to %s/: %m",
	    queue_directory, QUEUE_RECYCLE, e->name, why, QUEUE_CORRUPT);
}

/*
 * The inode of recycle/ entries first to last-1 (one inode, every name
 * recycle/ has for it): kept, its names unlinked, or moved to corrupt/.
 */
static void keep_inode(int rfd, int cfd, const char *queue_directory,
    uid_t owner, const struct recycle_entry *first,
    const struct recycle_entry *last, struct queue_recycle_kept *done)
{
	char why[256];
	struct stat st;
	size_t names = first->queue_names + (size_t)(last - first);

	if (fstatat(rfd, first->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return;
		snprintf(why, sizeof(why), "cannot tell whether a queue file "
		    "shares its inode (stat: %s)", strerror(errno));
		for (const struct recycle_entry *e = first; e < last; e++)
			keep_aside(rfd, cfd, queue_directory, e, why, done);
		return;
	}
	if (st.st_ino != first->ino) {
		snprintf(why, sizeof(why), "cannot tell whether a queue file "
		    "shares its inode (directory entry says %ju, stat %ju)",
		    (uintmax_t)first->ino, (uintmax_t)st.st_ino);
		for (const struct recycle_entry *e = first; e < last; e++)
			keep_aside(rfd, cfd, queue_directory, e, why, done);
		return;
	}
	if (names == 1 && reusable(&st, owner, first->name)) {
		done->kept++;
		return;
	}
	/*
	 * The count covers every name seen: dropping the recycle/ ones
	 * leaves each queue name its link (and frees the inode only when
	 * the queue has none). A directory has no other name.
	 */
	if (S_ISDIR(st.st_mode) || (uintmax_t)st.st_nlink >= names) {
		if (first->queue_names > 0)
			log_info("%s/%s/%s: a second name of a queue file's "
			    "inode %ju (a rename cut short by a crash): name "
			    "removed, the file kept", queue_directory,
			    QUEUE_RECYCLE, first->name, (uintmax_t)st.st_ino);
		for (const struct recycle_entry *e = first; e < last; e++) {
			int flags = S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0;
			if (unlinkat(rfd, e->name, flags) == 0)
				done->removed++;
			else if (errno != ENOENT)	/* a full directory */
				keep_aside(rfd, cfd, queue_directory, e,
				    "cannot be removed", done);
		}
		return;
	}
	/* An unlink would free an inode another name still has. */
	snprintf(why, sizeof(why), "inode %ju has %zu name(s) in the queue "
	    "but a link count of %ju: a rename cut short by a crash, on a "
	    "file system not checked since (run fsck, then remove it)",
	    (uintmax_t)st.st_ino, names, (uintmax_t)st.st_nlink);
	for (const struct recycle_entry *e = first; e < last; e++)
		keep_aside(rfd, cfd, queue_directory, e, why, done);
}

bool queue_recycle_keep(const char *queue_directory, uid_t owner,
    struct queue_recycle_kept *done, char *err, size_t errsize)
{
	char path[PATH_MAX];
	struct recycle_list list = { 0 };
	int rfd = -1, cfd = -1;
	bool ok = false;

	memset(done, 0, sizeof(*done));
	snprintf(err, errsize, "queue_directory is too long");
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", queue_directory,
	    QUEUE_RECYCLE) >= sizeof(path))
		return false;
	rfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0 || !dir_entries(rfd, add_recycle_name, &list)) {
		snprintf(err, errsize, "read %s: %s", path, strerror(errno));
		goto out;
	}
	if (list.count == 0) {
		ok = true;
		goto out;
	}
	qsort(list.v, list.count, sizeof(*list.v), by_inode);
	struct keep_scan scan = { .list = &list, .err = err,
		.errsize = errsize };
	if (!queue_dirs_each(queue_directory, QUEUE_RECYCLE, scan_queue_dir,
	    &scan))
		goto out;
	/* Where a name that may not stay goes (keep_aside()). */
	snprintf(path, sizeof(path), "%s/%s", queue_directory, QUEUE_CORRUPT);
	cfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0) {
		snprintf(err, errsize, "open %s: %s", path, strerror(errno));
		goto out;
	}
	for (size_t i = 0, j; i < list.count; i = j) {
		for (j = i + 1; j < list.count && list.v[j].ino == list.v[i].ino;
		    j++)
			;
		keep_inode(rfd, cfd, queue_directory, owner, &list.v[i],
		    &list.v[j], done);
	}
	ok = true;
out:
	for (size_t i = 0; i < list.count; i++)
		free(list.v[i].name);
	free(list.v);
	if (rfd >= 0)
		close(rfd);
	if (cfd >= 0)
		close(cfd);
	return ok;
}
