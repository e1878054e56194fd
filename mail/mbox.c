/*
 * mbox.c - the Unix mailbox format and its locks (see mbox.h for what
 * the format and Debian's locking rules are). Trusts nothing on disk: a
 * mailbox or lock that is not what it should be is refused, never
 * written through.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mbox.h"

void mbox_from_line(struct str *out, const char *sender, time_t when)
{
	struct tm tm;
	char date[64];

	/* asctime's layout, which every mbox reader parses. */
	localtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
	str_appendf(out, "From %s %s\n", sender[0] ? sender : "MAILER-DAEMON",
	    date);
}

void mbox_body_init(struct mbox_body *b)
{
	memset(b, 0, sizeof(*b));
}

/* One byte of LF-ended text: hold the first bytes of each line back
 * until they show whether the line begins with "From ". */
static void body_put(struct mbox_body *b, char c, struct str *out)
{
	if (b->in_line) {
		str_append_char(out, c);
		if (c == '\n')
			b->in_line = false;
		return;
	}
	if (c == '\n') {
		str_append(out, b->head, b->head_len);
		str_append_char(out, '\n');
		b->head_len = 0;
		return;
	}
	b->head[b->head_len++] = c;
	if (b->head_len < sizeof(b->head))
		return;
	if (!b->plain && memcmp(b->head, "From ", sizeof(b->head)) == 0)
		str_append_char(out, '>');
	str_append(out, b->head, b->head_len);
	b->head_len = 0;
	b->in_line = true;
}

void mbox_body_feed(struct mbox_body *b, const char *in, size_t len,
    struct str *out)
{
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (b->pending_cr) {
			b->pending_cr = false;
			if (c == '\n') {
				body_put(b, '\n', out);
				continue;
			}
			body_put(b, '\r', out);
		}
		if (c == '\r') {
			b->pending_cr = true;
			continue;
		}
		body_put(b, c, out);
	}
}

void mbox_body_finish(struct mbox_body *b, struct str *out)
{
	if (b->pending_cr) {
		b->pending_cr = false;
		body_put(b, '\r', out);
	}
	if (b->head_len > 0) {
		str_append(out, b->head, b->head_len);
		b->head_len = 0;
		b->in_line = true;
	}
	if (b->in_line)
		str_append_char(out, '\n');
	b->in_line = false;
	if (!b->plain)
		str_append_char(out, '\n');
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool mbox_dotlock(int dirfd, const char *name, int timeout_ms, char *err,
    size_t errsize)
{
	char lock[512];
	long long deadline = now_ms() + timeout_ms;

	if ((size_t)snprintf(lock, sizeof(lock), "%s.lock", name) >=
	    sizeof(lock)) {
		snprintf(err, errsize, "mailbox name too long");
		return false;
	}
	for (;;) {
		int fd = openat(dirfd, lock, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			/* liblockfile writes the holder's pid. */
			char pid[32];
			int n = snprintf(pid, sizeof(pid), "%ld\n",
			    (long)getpid());
			ssize_t w = write(fd, pid, (size_t)n);
			(void)w;
			close(fd);
			return true;
		}
		if (errno != EEXIST) {
			snprintf(err, errsize, "cannot create lock file %s: %s",
			    lock, strerror(errno));
			return false;
		}
		/* A holder that died leaves its lock: policy 22.6 lets a
		 * lock that old be taken away. */
		struct stat st;
		if (fstatat(dirfd, lock, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    time(NULL) - st.st_mtime > MBOX_DOTLOCK_STALE) {
			unlinkat(dirfd, lock, 0);
			continue;
		}
		if (now_ms() >= deadline) {
			snprintf(err, errsize, "mailbox is locked (%s exists)",
			    lock);
			return false;
		}
		poll(NULL, 0, 100);
	}
}

void mbox_dotunlock(int dirfd, const char *name)
{
	char lock[512];
	if ((size_t)snprintf(lock, sizeof(lock), "%s.lock", name) <
	    sizeof(lock))
		unlinkat(dirfd, lock, 0);
}

enum mbox_open_result mbox_open(int dirfd, const char *name, uid_t uid,
    gid_t gid, int *fd_out, char *err, size_t errsize)
{
	/* O_NONBLOCK: a FIFO in the mailbox's place must not hang us. */
	const int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NOCTTY |
	    O_NONBLOCK | O_CLOEXEC;
	struct stat st;
	int fd = -1;

	*fd_out = -1;
	for (int attempt = 0; fd < 0 && attempt < 2; attempt++) {
		fd = openat(dirfd, name, flags);
		if (fd >= 0 || errno != ENOENT)
			break;
		fd = openat(dirfd, name, flags | O_CREAT | O_EXCL, 0600);
		if (fd >= 0) {
			if (fchown(fd, uid, gid) < 0 && geteuid() != uid) {
				snprintf(err, errsize, "cannot give new "
				    "mailbox %s to uid %ld: %s", name,
				    (long)uid, strerror(errno));
				close(fd);
				unlinkat(dirfd, name, 0);
				return MBOX_OPEN_ERROR;
			}
			break;
		}
		if (errno != EEXIST)
			break;
	}
	if (fd < 0) {
		if (errno == ELOOP) {
			snprintf(err, errsize, "mailbox %s is a symbolic link: "
			    "refused", name);
			return MBOX_OPEN_UNSAFE;
		}
		if (errno == EISDIR) {
			snprintf(err, errsize, "mailbox %s is a directory: "
			    "refused", name);
			return MBOX_OPEN_UNSAFE;
		}
		snprintf(err, errsize, "cannot open mailbox %s: %s", name,
		    strerror(errno));
		return MBOX_OPEN_ERROR;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errsize, "cannot stat mailbox %s: %s", name,
		    strerror(errno));
		close(fd);
		return MBOX_OPEN_ERROR;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsize, "mailbox %s is not a regular file: "
		    "refused", name);
		close(fd);
		return MBOX_OPEN_UNSAFE;
	}
	/* Another name for the same file could be anywhere. */
	if (st.st_nlink != 1) {
		snprintf(err, errsize, "mailbox %s has %ld links: refused",
		    name, (long)st.st_nlink);
		close(fd);
		return MBOX_OPEN_UNSAFE;
	}
	if (st.st_uid != uid) {
		snprintf(err, errsize, "mailbox %s belongs to uid %ld, not to "
		    "its user (uid %ld): refused", name, (long)st.st_uid,
		    (long)uid);
		close(fd);
		return MBOX_OPEN_UNSAFE;
	}
	fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
	*fd_out = fd;
	return MBOX_OPEN_OK;
}

bool mbox_fcntl_lock(int fd, int timeout_ms, char *err, size_t errsize)
{
	long long deadline = now_ms() + timeout_ms;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	for (;;) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return true;
		if (errno != EACCES && errno != EAGAIN) {
			snprintf(err, errsize, "cannot lock mailbox: %s",
			    strerror(errno));
			return false;
		}
		if (now_ms() >= deadline) {
			snprintf(err, errsize, "mailbox is locked by another "
			    "process (fcntl)");
			return false;
		}
		poll(NULL, 0, 100);
	}
}
