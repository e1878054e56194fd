/*
 * queue_recycle.c - recycling finished queue files (queue.h,
 * "Recycling"): qmgr parks them in recycle/, a writer into incoming/
 * claims one instead of creating a new inode. What master keeps of it
 * at start is queue_recycle_keep.c's.
 *
 * Trust: recycle/ belongs to the postern user; a writer still takes only
 * a regular file of its own with mode 0600 and one link, and removes
 * anything else rather than writing into it.
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

#include <bsd/stdlib.h>
#include <bsd/string.h>
#include <dirent.h>

#include "log.h"
#include "mem.h"
#include "queue.h"
#include "queue_format.h"
#include "str.h"

/* ---- recycling (queue.h, "Recycling") ---- */

/* Claims tried per new file before creating one after all. */
#define QUEUE_RECYCLE_TRIES 8
/* How long to create new files outright after recycle/ was found empty. */
#define QUEUE_RECYCLE_BACKOFF_MS 100
/* Slots tried in turn for a finished file before one is replaced. */
#define QUEUE_RECYCLE_PLACE_TRIES 2

/*
 * A writer process's view of recycle/: the names it read last time, tried
 * from a random start so that many writers do not race for the same ones.
 * Another writer may have taken a name since: its rename fails with
 * ENOENT and the next name is tried.
 */
static struct {
	char path[PATH_MAX];	/* the recycle/ directory dirfd is open on */
	int dirfd;
	char names[QUEUE_RECYCLE_SLOTS][8];
	size_t count, start, next;
	long long empty_until_ms;	/* found empty: do not look before */
} recycle = { .dirfd = -1 };

static long long queue_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool queue_recycle_refill(const char *queue_directory)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", queue_directory,
	    QUEUE_RECYCLE) >= sizeof(path))
		return false;
	if (recycle.dirfd < 0 || strcmp(path, recycle.path) != 0) {
		if (recycle.dirfd >= 0)
			close(recycle.dirfd);
		recycle.dirfd = open(path, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (recycle.dirfd < 0)
			return false;
		strlcpy(recycle.path, path, sizeof(recycle.path));
	}
	recycle.count = recycle.next = 0;
	/*
	 * One getdents64() on the open directory from its start, not
	 * fdopendir() on a dup (eight calls where two do: this runs for
	 * every new message while recycle/ is empty). One buffer holds far
	 * more names than the slots; a partial look is as good as any, the
	 * names being tried in turn and refused when gone.
	 */
	_Alignas(struct dirent64) char buf[8192];
	if (lseek(recycle.dirfd, 0, SEEK_SET) < 0)
		return false;
	ssize_t got = getdents64(recycle.dirfd, buf, sizeof(buf));
	if (got < 0)
		return false;
	for (ssize_t off = 0; off < got &&
	    recycle.count < QUEUE_RECYCLE_SLOTS;) {
		const struct dirent64 *e = (const void *)(buf + off);
		off += e->d_reclen;
		if (e->d_reclen == 0)
			break;
		if (e->d_name[0] == '.' ||
		    strlen(e->d_name) >= sizeof(recycle.names[0]))
			continue;
		strcpy(recycle.names[recycle.count++], e->d_name);
	}
	if (recycle.count == 0)
		return false;
	recycle.start = arc4random_uniform((uint32_t)recycle.count);
	return true;
}

/*
 * Rename a recycled file to dirfd/tmpname and open it; -1 when there is
 * none to take (the caller creates a file). The new message overwrites
 * the old bytes from the start and the commit cuts the file to its new
 * length (*old_size says whether it must): no block is freed and
 * allocated again for a message of the same size, and freeing blocks is
 * not cheap (a file system mounted with "discard" and no journal trims
 * them on the spot). A file that is not what qmgr leaves there (a
 * regular file of ours, mode 0600, one link) is removed, never written.
 */
int queue_recycle_claim(const char *queue_directory, int dirfd,
    const char *tmpname, off_t *old_size)
{
	static uid_t euid = (uid_t)-1;
	bool fresh = false;	/* the names were read during this claim */

	if (euid == (uid_t)-1)
		euid = geteuid();	/* at worst stale: a file refused, not taken */
	for (int tries = 0; tries < QUEUE_RECYCLE_TRIES; tries++) {
		if (recycle.next == recycle.count) {
			long long now = queue_now_ms();
			if (now < recycle.empty_until_ms)
				return -1;
			if (!queue_recycle_refill(queue_directory)) {
				recycle.empty_until_ms = now +
				    QUEUE_RECYCLE_BACKOFF_MS;
				return -1;
			}
			fresh = true;
		}
		const char *name = recycle.names[(recycle.start +
		    recycle.next++) % recycle.count];
		if (renameat2(recycle.dirfd, name, dirfd, tmpname,
		    RENAME_NOREPLACE) < 0) {
			if (errno != ENOENT)
				return -1;
			/*
			 * Another writer took it since the names were read.
			 * With many writers (smtpd's doors, one per session)
			 * a list read a few messages ago is mostly gone and
			 * trying its names one by one ends in a new file:
			 * read it again, once per claim.
			 */
			if (!fresh)
				recycle.next = recycle.count;
			continue;
		}
		int fd = openat(dirfd, tmpname, O_WRONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_uid == euid && st.st_nlink == 1 &&
		    (st.st_mode & 07777) == 0600) {
			*old_size = st.st_size;
			return fd;
		}
		if (fd >= 0)
			close(fd);
		unlinkat(dirfd, tmpname, 0);
	}
	return -1;
}

bool queue_remove(const char *queue_directory, const char *path, int fd)
{
	/* Slots are used in turn, from a random start in each process. */
	static unsigned slot;
	static bool slot_set;
	/* Asked once: the remover (qmgr) has dropped its privileges for
	 * good before it removes anything. */
	static uid_t euid;
	static bool euid_set;
	struct stat st;

	if ((fd >= 0 ? fstat(fd, &st) : lstat(path, &st)) < 0)
		return false;
	if (!euid_set) {
		euid = geteuid();
		euid_set = true;
	}
	/* A file unlinked behind the descriptor has no link: not ours to
	 * recycle, and the unlink below finds it gone (ENOENT). */
	if (S_ISREG(st.st_mode) && st.st_size <= QUEUE_RECYCLE_MAX_SIZE &&
	    st.st_uid == euid && st.st_nlink == 1) {
		if (!slot_set) {
			slot = arc4random_uniform(QUEUE_RECYCLE_SLOTS);
			slot_set = true;
		}
		/*
		 * A slot whose file no writer has claimed yet is passed over
		 * for the next one, and only the last slot tried is taken
		 * whatever it holds (which frees the file there, so that
		 * recycle/ never holds more than its slots). A free
		 * inode is dear: with many writers recycle/ is nearly empty
		 * yet a slot in turn may still hold a file, and replacing
		 * it freed an inode that a writer then had to create again
		 * (ext4 without a journal scans past every inode freed in
		 * the last five minutes for each create; bench/RESULTS.md,
		 * "acc100's CPU per message").
		 */
		bool placed = false;
		for (int tries = 0; tries < QUEUE_RECYCLE_PLACE_TRIES; tries++) {
			char to[PATH_MAX];
			if ((size_t)snprintf(to, sizeof(to), "%s/%s/%u",
			    queue_directory, QUEUE_RECYCLE, slot) >= sizeof(to))
				break;
			bool last = tries == QUEUE_RECYCLE_PLACE_TRIES - 1;
			int r = renameat2(AT_FDCWD, path, AT_FDCWD, to,
			    last ? 0 : RENAME_NOREPLACE);
			/* A file system without RENAME_NOREPLACE: replace. */
			if (r < 0 && errno == EINVAL && !last)
				r = rename(path, to);
			slot = (slot + 1) % QUEUE_RECYCLE_SLOTS;
			if (r == 0) {
				placed = true;
				break;
			}
			if (errno != EEXIST)
				break;
		}
		if (placed)
			return true;
		if (errno == ENOENT && access(path, F_OK) < 0)
			return false;
		/* recycle/ missing or unusable: an unlink does the job. */
	}
	return unlink(path) == 0;
}
