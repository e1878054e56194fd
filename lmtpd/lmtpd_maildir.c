/*
 * lmtpd_maildir.c - the Maildir store.
 *
 * The Maildir convention (no RFC; as its author describes it): a message
 * is written under a unique name into tmp/, flushed to disk, then moved
 * into new/ without ever replacing a name there, and only then
 * acknowledged. We write it as an unnamed file in tmp/ (O_TMPFILE) and
 * give it its name in new/ with linkat() (store_unnamed, link_unnamed),
 * or, where that cannot be done, under its name in tmp/ moved by one
 * renameat2 with RENAME_NOREPLACE (store_named, move_to_new). Readers
 * only look at new/ and cur/ so they never see a partial file. We also
 * fsync new/ so that the new name itself survives a crash before the 250
 * goes out; that fsync is a group commit with the other lmtpd processes
 * storing into the same Maildir (mail/dirsync.c). new/ stays open
 * between copies (struct newdir): the link and the fsync go through its
 * descriptor, checked by one stat() per copy against the path.
 *
 * Trusts: the Maildir path (it comes from mailbox_maps through
 * lmtpd_rcpt.c, which refuses ".." and absolute paths). File names found in
 * new/ and cur/ are not trusted beyond reading a size from them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "dirsync.h"
#include "lmtpd.h"
#include "log.h"
#include "mem.h"
#include "str.h"

/* Attempts at a fresh name when one is taken (it should never be). */
#define MAILDIR_NAME_TRIES 5

static char maildir_host[256];
static unsigned long maildir_counter;

/*
 * new/ of the last Maildirs this process stored into, kept open: a copy
 * is linked into new/ through this descriptor and new/'s fsync is done
 * on it, so neither opens new/ again. Before each copy a stat() of the
 * path checks that new/ is still the directory held: one replaced or
 * removed (an administrator moving a Maildir) is opened again, so that a
 * copy lands in the directory the path names now, and the directory
 * fsync'd is the one that names it.
 */
#define NEWDIR_KEEP 8
struct newdir {
	char *maildir;		/* as given, ending in "/"; NULL: unused */
	int fd;
	struct stat st;		/* fd's device and inode */
};
static struct newdir newdirs[NEWDIR_KEEP];
static size_t newdir_victim;	/* the slot a Maildir not held takes */

static void newdir_forget(struct newdir *nd)
{
	if (nd->maildir == NULL)
		return;
	close(nd->fd);
	free(nd->maildir);
	nd->maildir = NULL;
}

/* maildir's new/, open: 0 with *out set, or an errno value (ENOENT when
 * new/ is missing). */
static int newdir_get(const char *maildir, struct newdir **out)
{
	char path[4096];
	struct newdir *nd = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%snew", maildir);
	for (size_t i = 0; i < NEWDIR_KEEP && nd == NULL; i++)
		if (newdirs[i].maildir != NULL &&
		    strcmp(newdirs[i].maildir, maildir) == 0)
			nd = &newdirs[i];
	if (nd != NULL) {
		if (stat(path, &st) == 0 && st.st_dev == nd->st.st_dev &&
		    st.st_ino == nd->st.st_ino) {
			*out = nd;
			return 0;
		}
	} else {
		nd = &newdirs[newdir_victim];
		newdir_victim = (newdir_victim + 1) % NEWDIR_KEEP;
	}
	newdir_forget(nd);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstat(fd, &nd->st) != 0) {
		int e = errno;
		close(fd);
		return e;
	}
	nd->fd = fd;
	nd->maildir = xstrdup(maildir);
	*out = nd;
	return 0;
}

char *lmtpd_maildir_path(const char *base, const char *value)
{
	const char *start = value, *end;
	struct str path;

	while (*start == ' ' || *start == '\t')
		start++;
	end = start + strlen(start);
	while (end > start && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (end == start || *start == '/' || base == NULL || base[0] != '/')
		return NULL;

	/* Every component must be a plain name: no "..", no ".". */
	for (const char *c = start; c < end;) {
		const char *slash = memchr(c, '/', (size_t)(end - c));
		size_t n = slash ? (size_t)(slash - c) : (size_t)(end - c);
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' &&
		    c[1] == '.'))
			return NULL;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
				return NULL;
		c += n + (slash ? 1 : 0);
	}

	str_init(&path, 4000);
	bool ok = str_append_cstr(&path, base);
	while (ok && path.len > 1 && path.data[path.len - 1] == '/')
		str_truncate(&path, path.len - 1);
	ok = ok && str_append_char(&path, '/') &&
	    str_append(&path, start, (size_t)(end - start));
	if (ok && path.data[path.len - 1] != '/')
		ok = str_append_char(&path, '/');
	/* Collapse "//" that a value like "a//b/" would leave. */
	if (ok) {
		size_t o = 0;
		for (size_t i = 0; i < path.len; i++) {
			if (path.data[i] == '/' && o > 0 &&
			    path.data[o - 1] == '/')
				continue;
			path.data[o++] = path.data[i];
		}
		str_truncate(&path, o);
	}
	if (!ok) {
		str_free(&path);
		return NULL;
	}
	return str_steal(&path);
}

/* The host name with '/' and ':' escaped ("\057", "\072"), computed once. */
static const char *maildir_hostname(void)
{
	char raw[256];
	size_t o = 0;

	if (maildir_host[0] != '\0')
		return maildir_host;
	if (gethostname(raw, sizeof(raw)) != 0 || raw[0] == '\0')
		strlcpy(raw, "localhost", sizeof(raw));
	raw[sizeof(raw) - 1] = '\0';
	for (const char *p = raw; *p != '\0' && o + 5 < sizeof(maildir_host); p++) {
		if (*p == '/') {
			memcpy(maildir_host + o, "\\057", 4);
			o += 4;
		} else if (*p == ':') {
			memcpy(maildir_host + o, "\\072", 4);
			o += 4;
		} else {
			maildir_host[o++] = *p;
		}
	}
	maildir_host[o] = '\0';
	return maildir_host;
}

void lmtpd_maildir_name(char *out, size_t outsize, long long size)
{
	/* lmtpd never forks after its start: the pid is asked once. */
	static pid_t pid;
	struct timeval tv;

	if (pid == 0)
		pid = getpid();
	gettimeofday(&tv, NULL);
	snprintf(out, outsize, "%lld.M%ldP%ldQ%lu.%s,S=%lld",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (long)pid,
	    ++maildir_counter, maildir_hostname(), size);
}

static bool mkdir_exists_ok(const char *path)
{
	return mkdir(path, 0700) == 0 || errno == EEXIST;
}

/* mkdir -p for the Maildir itself (its parents get mode 0700 too). */
static bool mkdir_parents(const char *path)
{
	char *copy = xstrdup(path);
	bool ok = true;

	for (char *p = copy + 1; *p != '\0' && ok; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		ok = mkdir_exists_ok(copy);
		*p = '/';
	}
	if (ok)
		ok = mkdir_exists_ok(copy);
	free(copy);
	return ok;
}

bool lmtpd_maildir_create(const char *maildir, char *err, size_t errsize)
{
	static const char *const subdirs[] = { "tmp", "new", "cur" };

	for (size_t i = 0; i < 3; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s%s", maildir, subdirs[i]);
		if (mkdir_exists_ok(path))
			continue;
		if (errno != ENOENT || !mkdir_parents(maildir) ||
		    !mkdir_exists_ok(path)) {
			snprintf(err, errsize, "create %s: %s", path,
			    strerror(errno));
			return false;
		}
	}
	return true;
}

/* The size a Maildir file name carries (",S=<digits>"), or -1. */
static long long name_size(const char *name)
{
	const char *s = strstr(name, ",S=");
	long long v = 0;

	if (s == NULL)
		return -1;
	s += 3;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (1LL << 50))
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

static long long dir_usage(const char *dir)
{
	DIR *d = opendir(dir);
	long long total = 0;
	struct dirent *e;

	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		long long sz = name_size(e->d_name);
		if (sz < 0) {
			struct stat st;
			if (fstatat(dirfd(d), e->d_name, &st, 0) != 0)
				continue;	/* gone meanwhile: a reader moved it */
			sz = st.st_size;
		}
		total += sz;
	}
	closedir(d);
	return total;
}

long long lmtpd_maildir_usage(const char *maildir)
{
	char path[4096];
	long long n, c;

	snprintf(path, sizeof(path), "%snew", maildir);
	n = dir_usage(path);
	snprintf(path, sizeof(path), "%scur", maildir);
	c = dir_usage(path);
	if (n < 0 || c < 0)
		return -1;
	return n + c;
}

static enum lmtpd_store_result errno_result(int e)
{
	return (e == ENOSPC || e == EDQUOT) ? LMTPD_STORE_NOSPACE :
	    LMTPD_STORE_TEMPFAIL;
}

/* Write one copy into tmp/name and flush it to disk. */
static bool write_copy(const char *tmppath, const char *header,
    size_t header_len, struct lmtpd_spool *sp)
{
	int fd = open(tmppath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;

	bool ok = lmtpd_spool_copy_after(sp, fd, header, header_len) &&
	    fsync(fd) == 0;
	int saved = errno;
	if (close(fd) != 0 && ok) {
		ok = false;	/* NFS and friends report late write errors here */
		saved = errno;
	}
	if (!ok) {
		unlink(tmppath);
		errno = saved;
	}
	return ok;
}

/*
 * tmp/name -> new/name without ever replacing a file there (the Maildir
 * rule that qmail meets with link() and unlink()): one rename with
 * RENAME_NOREPLACE, or link and unlink where the file system lacks it,
 * or a plain rename where it lacks hard links too. 0 with *nd set (new/
 * held open), or an errno value; on failure tmp/name is still there.
 */
static int move_to_new(const char *tmppath, const char *maildir,
    const char *name, struct newdir **nd)
{
	int e = newdir_get(maildir, nd);
	if (e != 0)
		return e;
	int newfd = (*nd)->fd;
	if (renameat2(AT_FDCWD, tmppath, newfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return errno;
	if (linkat(AT_FDCWD, tmppath, newfd, name, 0) == 0) {
		unlink(tmppath);
		return 0;
	}
	e = errno;
	if ((e == EPERM || e == ENOTSUP || e == EXDEV) &&
	    renameat(AT_FDCWD, tmppath, newfd, name) == 0)
		return 0;
	return e;
}

/* linkat() through /proc was refused once (no /proc, a confinement that
 * forbids it): every later copy goes by name at once. */
static bool unnamed_refused;

/* Whether linkat(fd, "", AT_EMPTY_PATH) names a file for its opener
 * here: Linux 6.10 and later; before, it wants CAP_DAC_READ_SEARCH and
 * says ENOENT. */
static enum { FLINK_UNKNOWN, FLINK_YES, FLINK_NO } flink;

/*
 * Give the unnamed file fd the name new/name (newfd is new/): 0 or an
 * errno value. By the descriptor itself where the kernel allows it,
 * else through /proc/self/fd/N, which costs a walk of that path, a read
 * of the link and a ptrace check per copy (about a third of linkat's
 * time in lmtpd).
 */
static int link_unnamed(int fd, int newfd, const char *name)
{
	char proc[64];

	if (flink != FLINK_NO) {
		if (linkat(fd, "", newfd, name, AT_EMPTY_PATH) == 0) {
			flink = FLINK_YES;
			return 0;
		}
		/* Once it worked, ENOENT means what it says (new/ gone). */
		if (flink == FLINK_YES || errno != ENOENT)
			return errno;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, newfd, name, AT_SYMLINK_FOLLOW) != 0)
		return errno;
	/* ENOENT above was the kernel's refusal, not a missing new/. */
	flink = FLINK_NO;
	return 0;
}

/*
 * The copy as an unnamed file in tmp/ (O_TMPFILE), written and flushed,
 * then given its name in new/ by linkat(), which never replaces a file
 * (the Maildir rule, as link() in qmail). Why unnamed: on ext4 without a
 * journal the fsync of a file made by name also writes the directory
 * that names it (tmp/), one more disk write and wait per copy; a crash
 * leaves nothing in tmp/ either. 0 (the copy is new/file, *nd the new/
 * it is in), an errno value (ENOENT: tmp/ or new/ missing), or
 * EOPNOTSUPP when this way is not open here (the file system has no
 * O_TMPFILE or hard links, /proc is missing): then by name.
 */
static int store_unnamed(const char *maildir, const char *header,
    size_t header_len, struct lmtpd_spool *sp, long long size, char *file,
    size_t filesize, struct newdir **nd)
{
	char tmpdir[4096];

	if (unnamed_refused)
		return EOPNOTSUPP;
	snprintf(tmpdir, sizeof(tmpdir), "%stmp", maildir);
	int fd = open(tmpdir, O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == ENOENT ? ENOENT : errno == EACCES ||
		    errno == ENOSPC || errno == EDQUOT || errno == EMFILE ||
		    errno == ENFILE ? errno : EOPNOTSUPP;
	if (!lmtpd_spool_copy_after(sp, fd, header, header_len) ||
	    fsync(fd) != 0) {
		int e = errno;
		close(fd);	/* unnamed: nothing to remove */
		return e;
	}
	/* new/ checked after the file's fsync, the nearest to the link. */
	int e = newdir_get(maildir, nd);
	if (e != 0) {
		close(fd);
		return e;
	}
	e = EEXIST;
	for (int attempt = 0; attempt < MAILDIR_NAME_TRIES && e == EEXIST;
	    attempt++) {
		lmtpd_maildir_name(file, filesize, size);
		e = link_unnamed(fd, (*nd)->fd, file);
	}
	if (e == 0 && close(fd) != 0) {
		e = errno;	/* a late write error: not known to be stored */
		unlinkat((*nd)->fd, file, 0);
		return e;
	}
	if (e != 0)
		close(fd);
	/* Refused by the file system or by a confinement (Landlock says
	 * EXDEV or EACCES), or no way to name it (an older kernel without
	 * /proc): by name from now on, which reports a real permission
	 * problem of new/ itself. */
	if (e == EXDEV || e == EPERM || e == ENOTSUP || e == EMLINK ||
	    e == EACCES || (e == ENOENT && flink != FLINK_YES &&
	    access("/proc/self/fd", F_OK) != 0)) {
		unnamed_refused = true;
		return EOPNOTSUPP;
	}
	return e;
}

/*
 * By name, where store_unnamed() cannot go: tmp/NAME, fsync, then the
 * move into new/ (move_to_new). LMTPD_STORE_OK with file and *nd set
 * as by store_unnamed(), else a failure explained in err.
 */
static enum lmtpd_store_result store_named(const char *maildir,
    const char *header, size_t header_len, struct lmtpd_spool *sp,
    long long size, bool *created, char *file, size_t filesize,
    struct newdir **nd, char *err, size_t errsize)
{
	char tmppath[4096];

	for (int attempt = 0; attempt < MAILDIR_NAME_TRIES; attempt++) {
		lmtpd_maildir_name(file, filesize, size);
		snprintf(tmppath, sizeof(tmppath), "%stmp/%s", maildir, file);

		bool ok = write_copy(tmppath, header, header_len, sp);
		if (!ok && errno == ENOENT && !*created) {
			/* The first delivery: make the Maildir, then again. */
			if (!lmtpd_maildir_create(maildir, err, errsize))
				return errno_result(errno);
			*created = true;
			ok = write_copy(tmppath, header, header_len, sp);
		}
		if (!ok) {
			if (errno == EEXIST)
				continue;
			snprintf(err, errsize, "write %s: %s", tmppath,
			    strerror(errno));
			return errno_result(errno);
		}
		int e = move_to_new(tmppath, maildir, file, nd);
		if (e == ENOENT && !*created) {
			/* new/ is missing: make the Maildir whole again. */
			if (!lmtpd_maildir_create(maildir, err, errsize)) {
				unlink(tmppath);
				return errno_result(errno);
			}
			*created = true;
			e = move_to_new(tmppath, maildir, file, nd);
		}
		if (e == EEXIST) {
			unlink(tmppath);
			continue;
		}
		if (e != 0) {
			unlink(tmppath);
			snprintf(err, errsize, "rename to %snew/%s: %s",
			    maildir, file, strerror(e));
			return errno_result(e);
		}
		return LMTPD_STORE_OK;
	}
	snprintf(err, errsize, "no unique file name in %stmp", maildir);
	return LMTPD_STORE_TEMPFAIL;
}

enum lmtpd_store_result lmtpd_maildir_store(const char *maildir,
    const char *header, size_t header_len, struct lmtpd_spool *sp,
    long long quota, char *name, size_t namesize, char *err, size_t errsize)
{
	long long size = (long long)header_len + (long long)sp->size;
	char file[512];
	struct newdir *nd = NULL;

	if (quota > 0) {
		long long used = lmtpd_maildir_usage(maildir);
		if (used < 0) {
			snprintf(err, errsize, "read %s: %s", maildir,
			    strerror(errno));
			return LMTPD_STORE_TEMPFAIL;
		}
		if (used + size > quota) {
			snprintf(err, errsize, "mailbox %s holds %lld of %lld "
			    "bytes, message is %lld", maildir, used, quota, size);
			return LMTPD_STORE_QUOTA;
		}
	}

	bool created = false;	/* lmtpd_maildir_create() ran already */
	int e = store_unnamed(maildir, header, header_len, sp, size, file,
	    sizeof(file), &nd);
	if (e == ENOENT) {
		/* The first delivery, or a Maildir missing a part. */
		if (!lmtpd_maildir_create(maildir, err, errsize))
			return errno_result(errno);
		created = true;
		e = store_unnamed(maildir, header, header_len, sp, size, file,
		    sizeof(file), &nd);
	}
	if (e == EOPNOTSUPP) {
		enum lmtpd_store_result res = store_named(maildir, header,
		    header_len, sp, size, &created, file, sizeof(file), &nd,
		    err, errsize);
		if (res != LMTPD_STORE_OK)
			return res;
	} else if (e != 0) {
		snprintf(err, errsize, "store into %s: %s", maildir,
		    strerror(e));
		return errno_result(e);
	}

	/*
	 * new/'s fsync, shared with the other lmtpd processes that store
	 * into this Maildir now: one that started after our link or rename
	 * and succeeded is as good as our own.
	 */
	e = dirsync_commit_fd_known(nd->fd, &nd->st);
	if (e != 0) {
		/* Not known to be on disk: take it back, try later. */
		unlinkat(nd->fd, file, 0);
		snprintf(err, errsize, "fsync %snew: %s", maildir, strerror(e));
		return errno_result(e);
	}
	if (name != NULL)
		strlcpy(name, file, namesize);
	return LMTPD_STORE_OK;
}
