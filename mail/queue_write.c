/*
 * queue_write.c - writing a new queue file: the envelope records, the
 * content, and the durable commit (queue.h, "Durability").
 *
 * Trust: the writer trusts its caller's values only after checking that
 * they fit the line-oriented format (no CR, LF; no space where a field
 * ends at a space): queue_envelope_writable() refuses the rest before any
 * file exists. A new file gets exactly one fsync of itself and one of its
 * directory, after which it has its final name (doc/architecture.md,
 * "Where the fsyncs are"); the directory's may be another process's
 * that began after the rename (smtpd's doors share one: dirsync.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "dirsync.h"
#include "log.h"
#include "mem.h"
#include "queue.h"
#include "queue_format.h"
#include "str.h"

#define QUEUE_WRITE_BUFFER (64 * 1024)
/* How often the writer picks a new ID when the name is taken. */
#define QUEUE_CREATE_TRIES 10

/* ---- writing a new queue file ---- */

/* The last writer's buffer, kept for the next one (mem.h): a process
 * writes message after message, smtpd's worker one per session. */
static void *spare_buffer;

struct queue_writer;
void queue_writer_abort(struct queue_writer *w);

struct queue_writer {
	int fd;
	int dirfd;		/* O_PATH when the directory is not readable */
	bool dir_readable;	/* else durability comes from syncfs() */
	bool unlinked;		/* the temporary file is already gone */
	bool failed;		/* sticky write error */
	int saved_errno;
	char id[QUEUE_ID_SIZE];
	char tmpname[QUEUE_ID_SIZE + 1];
	char *dirpath;		/* for messages: where the file is */
	char *buf;
	size_t buflen;
	off_t flushed;		/* bytes of the file already written */
	off_t old_size;		/* a recycled file's length before */
	off_t length_offset;	/* offset of the D digits */
	off_t content_offset;
	bool no_replace;	/* the caller chose the ID: never replace one */
	struct queue_envelope *env;
};

static void queue_writer_drop_file(struct queue_writer *w)
{
	if (!w->unlinked) {
		if (unlinkat(w->dirfd, w->tmpname, 0) < 0 && errno != ENOENT)
			log_warning("%s: cannot remove %s/%s: %m", w->id,
			    w->dirpath, w->tmpname);
		w->unlinked = true;
	}
}

/* Writes all of iov (the buffer, maybe a piece after it) at the file's
 * end; on failure the file is dropped: disk full leaves nothing behind,
 * whatever the caller does next. */
static bool queue_writer_writev(struct queue_writer *w, struct iovec *v,
    int nv)
{
	while (nv > 0) {
		ssize_t n = writev(w->fd, v, nv);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->saved_errno = n < 0 ? errno : EIO;
			w->failed = true;
			queue_writer_drop_file(w);
			return false;
		}
		w->flushed += n;
		while (nv > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			nv--;
		}
		if (nv > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	w->buflen = 0;
	return true;
}

static bool queue_writer_flush(struct queue_writer *w)
{
	struct iovec iov = { .iov_base = w->buf, .iov_len = w->buflen };
	return queue_writer_writev(w, &iov, w->buflen > 0 ? 1 : 0);
}

static bool queue_writer_put(struct queue_writer *w, const void *p, size_t len)
{
	if (w->failed)
		return false;
	if (len == 0)
		return true;	/* p may be NULL then: no memcpy from it */
	if (w->buflen + len > QUEUE_WRITE_BUFFER) {
		/* What is buffered and the piece that does not fit go out
		 * in one writev(), the piece uncopied: a large message is a
		 * syscall per read buffer (smtp_server_data.c hands the body
		 * over in pieces that large). */
		struct iovec iov[2] = {
			{ .iov_base = w->buf, .iov_len = w->buflen },
			{ .iov_base = (void *)(uintptr_t)p, .iov_len = len },
		};
		return w->buflen > 0 ? queue_writer_writev(w, iov, 2) :
		    queue_writer_writev(w, iov + 1, 1);
	}
	memcpy(w->buf + w->buflen, p, len);
	w->buflen += len;
	return true;
}

/* The offset the next byte put will have in the file. */
static off_t queue_writer_offset(const struct queue_writer *w)
{
	return w->flushed + (off_t)w->buflen;
}

static bool queue_writer_record(struct queue_writer *w, char letter,
    const char *value)
{
	char head[2] = { letter, ' ' };
	return queue_writer_put(w, head, 2) &&
	    queue_writer_put(w, value, strlen(value)) &&
	    queue_writer_put(w, "\n", 1);
}

/* Refuse what the format cannot carry, before creating any file. */
static bool queue_envelope_writable(const struct queue_envelope *env,
    char *err, size_t errsize)
{
	if (env->sender == NULL || queue_has_line_end(env->sender)) {
		snprintf(err, errsize, "sender %s", env->sender ?
		    "contains CR or LF" : "missing");
		return false;
	}
	if (env->envid && (env->envid[0] == '\0' ||
	    queue_has_line_end(env->envid))) {
		snprintf(err, errsize, "ENVID is empty or contains CR or LF");
		return false;
	}
	if ((unsigned)env->body > QUEUE_BODY_BINARYMIME ||
	    (unsigned)env->kind > QUEUE_KIND_DOUBLE ||
	    (unsigned)env->ret > QUEUE_RET_HDRS) {
		snprintf(err, errsize, "bad body type, kind or RET value");
		return false;
	}
	for (size_t i = 0; i < env->nattrs; i++) {
		const struct queue_attr *a = &env->attrs[i];
		if (!queue_attr_name_ok(a->name, strlen(a->name)) ||
		    queue_has_line_end(a->value)) {
			snprintf(err, errsize, "attribute %zu: bad name or "
			    "value contains CR or LF", i);
			return false;
		}
	}
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		if (r->address == NULL || r->address[0] == '\0' ||
		    queue_has_line_end(r->address)) {
			snprintf(err, errsize, "recipient %zu: address empty "
			    "or contains CR or LF", i);
			return false;
		}
		if (r->orcpt && !queue_orcpt_ok(r->orcpt)) {
			snprintf(err, errsize, "recipient %zu: ORCPT is not "
			    "type;address without spaces", i);
			return false;
		}
		if (r->parent != -1 || !queue_status_ok(r->status)) {
			snprintf(err, errsize, "recipient %zu: not a new "
			    "recipient", i);
			return false;
		}
	}
	return true;
}

static bool queue_writer_envelope(struct queue_writer *w,
    struct queue_envelope *env)
{
	char line[64];
	char notify[8];
	bool ok = true;

	snprintf(line, sizeof(line), "%d", QUEUE_FORMAT_VERSION);
	ok = ok && queue_writer_record(w, 'V', line);
	ok = ok && queue_writer_record(w, 'I', env->id);
	snprintf(line, sizeof(line), "%lld.%06ld", env->arrival_sec,
	    env->arrival_usec);
	ok = ok && queue_writer_record(w, 'T', line);
	ok = ok && queue_writer_record(w, 'F', env->sender);
	ok = ok && queue_writer_record(w, 'B', queue_body_names[env->body]);
	if (env->smtputf8)
		ok = ok && queue_writer_put(w, "U\n", 2);
	if (env->requiretls)
		ok = ok && queue_writer_put(w, "Q\n", 2);
	if (env->envid)
		ok = ok && queue_writer_record(w, 'E', env->envid);
	if (env->ret != QUEUE_RET_DEFAULT)
		ok = ok && queue_writer_record(w, 'N',
		    env->ret == QUEUE_RET_FULL ? "FULL" : "HDRS");
	if (env->kind != QUEUE_KIND_MAIL)
		ok = ok && queue_writer_record(w, 'K',
		    queue_kind_names[env->kind]);
	for (size_t i = 0; ok && i < env->nattrs; i++) {
		const struct queue_attr *a = &env->attrs[i];
		ok = queue_writer_put(w, "A ", 2) &&
		    queue_writer_put(w, a->name, strlen(a->name)) &&
		    queue_writer_put(w, "=", 1) &&
		    queue_writer_put(w, a->value, strlen(a->value)) &&
		    queue_writer_put(w, "\n", 1);
	}
	env->delay_warned_offset = queue_writer_offset(w) + 2;
	ok = ok && queue_writer_record(w, 'W', env->delay_warned ? "1" : "0");
	for (size_t i = 0; ok && i < env->nrcpts; i++) {
		struct queue_rcpt *r = &env->rcpts[i];
		queue_notify_format(notify, r->notify);
		r->status_offset = queue_writer_offset(w) + 2;
		char head[4] = { 'R', ' ', r->status, ' ' };
		ok = queue_writer_put(w, head, 4) &&
		    queue_writer_put(w, notify, strlen(notify)) &&
		    queue_writer_put(w, " ", 1) &&
		    queue_writer_put(w, r->orcpt ? r->orcpt : "-",
		    strlen(r->orcpt ? r->orcpt : "-")) &&
		    queue_writer_put(w, " ", 1) &&
		    queue_writer_put(w, r->address, strlen(r->address)) &&
		    queue_writer_put(w, "\n", 1);
	}
	w->length_offset = queue_writer_offset(w) + 2;
	/* Not digits until commit patches it: a file the writer never
	 * finished reads as corrupt, whatever else reached the disk. */
	ok = ok && queue_writer_record(w, 'D', QUEUE_LENGTH_UNSET);
	w->content_offset = queue_writer_offset(w);
	env->content_offset = w->content_offset;
	return ok;
}

int queue_file_create(const char *queue_directory, int dirfd,
    bool recycle, char id[QUEUE_ID_SIZE], off_t *size, char *err,
    size_t errsize)
{
	char tmpname[QUEUE_ID_SIZE + 1];
	int fd = -1;

	*size = 0;

	for (int tries = 0; fd < 0; tries++) {
		queue_id_new(id);
		snprintf(tmpname, sizeof(tmpname), ".%s", id);
		if (recycle && tries == 0)
			fd = queue_recycle_claim(queue_directory, dirfd,
			    tmpname, size);
		/* Write only: a recycled file holds a finished message's
		 * bytes until they are overwritten, and whoever gets this
		 * descriptor (smtpd's worker) must not read them. */
		if (fd < 0)
			fd = openat(dirfd, tmpname, O_WRONLY | O_CREAT |
			    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && (errno != EEXIST ||
		    tries >= QUEUE_CREATE_TRIES)) {
			int e = errno;
			snprintf(err, errsize, "create %s: %s", tmpname,
			    strerror(e));
			errno = e;
			return -1;
		}
	}
	/*
	 * Held until the last descriptor of the file is closed (the lock
	 * belongs to the open file, so a descriptor passed to smtpd's
	 * worker keeps it), or its holders die: a temporary file nobody
	 * holds is stale (queue_clean_stale). A fresh lock on a fresh file
	 * cannot fail; if it does, the file is only unprotected against a
	 * cleaner, which can cost a 4xx, never mail.
	 */
	(void)flock(fd, LOCK_EX | LOCK_NB);
	return fd;
}

/* The envelope into a writer whose file exists; NULL with err. */
static struct queue_writer *queue_writer_start(struct queue_writer *w,
    struct queue_envelope *env, char *err, size_t errsize)
{
	memcpy(env->id, w->id, QUEUE_ID_SIZE);
	if (env->arrival_sec == 0 && env->arrival_usec == 0) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		env->arrival_sec = tv.tv_sec;
		env->arrival_usec = tv.tv_usec;
	}
	if (env->arrival_usec < 0 || env->arrival_usec > 999999 ||
	    env->arrival_sec < 0) {
		snprintf(err, errsize, "bad arrival time");
		queue_writer_abort(w);
		errno = EINVAL;
		return NULL;
	}
	w->buf = xmalloc_spare(&spare_buffer, QUEUE_WRITE_BUFFER);
	if (!queue_writer_envelope(w, env)) {
		snprintf(err, errsize, "write %s/%s: %s", w->dirpath,
		    w->tmpname, strerror(w->saved_errno));
		int e = w->saved_errno;
		queue_writer_abort(w);
		errno = e;
		return NULL;
	}
	return w;
}

/* ".<id>" made new with O_EXCL and locked, as queue_file_create does. */
static int queue_file_create_as(int dirfd, const char *id, char *err,
    size_t errsize)
{
	char tmpname[QUEUE_ID_SIZE + 1];

	snprintf(tmpname, sizeof(tmpname), ".%s", id);
	int fd = openat(dirfd, tmpname, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errsize, "create %s: %s", tmpname, strerror(e));
		errno = e;
		return -1;
	}
	(void)flock(fd, LOCK_EX | LOCK_NB);
	return fd;
}

static struct queue_writer *queue_writer_open_id(const char *queue_directory,
    const char *subdir, const char *want_id, struct queue_envelope *env,
    char *err, size_t errsize);

struct queue_writer *queue_writer_open(const char *queue_directory,
    const char *subdir, struct queue_envelope *env, char *err, size_t errsize)
{
	return queue_writer_open_id(queue_directory, subdir, NULL, env, err,
	    errsize);
}

struct queue_writer *queue_writer_open_as(const char *queue_directory,
    const char *subdir, const char *id, struct queue_envelope *env,
    char *err, size_t errsize)
{
	if (!queue_id_valid(id)) {
		snprintf(err, errsize, "bad queue ID");
		errno = EINVAL;
		return NULL;
	}
	return queue_writer_open_id(queue_directory, subdir, id, env, err,
	    errsize);
}

static struct queue_writer *queue_writer_open_id(const char *queue_directory,
    const char *subdir, const char *want_id, struct queue_envelope *env,
    char *err, size_t errsize)
{
	if (!queue_envelope_writable(env, err, errsize)) {
		errno = EINVAL;
		return NULL;
	}
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	w->fd = -1;
	w->env = env;
	w->dirpath = xasprintf("%s/%s", queue_directory, subdir);
	if (strlen(w->dirpath) >= PATH_MAX) {
		snprintf(err, errsize, "queue directory path too long");
		free(w->dirpath);
		free(w);
		errno = ENAMETOOLONG;
		return NULL;
	}
	/*
	 * sendmail runs setgid postdrop and may only write and search
	 * maildrop/ (mode 0730), not read it: it cannot open the directory
	 * to fsync it and uses syncfs() on the committed file instead.
	 */
	w->dirfd = open(w->dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	w->dir_readable = w->dirfd >= 0;
	if (w->dirfd < 0 && errno == EACCES)
		w->dirfd = open(w->dirpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		snprintf(err, errsize, "open %s: %s", w->dirpath,
		    strerror(errno));
		int e = errno;
		free(w->dirpath);
		free(w);
		errno = e;
		return NULL;
	}
	bool maildrop = strcmp(subdir, QUEUE_MAILDROP) == 0;
	bool incoming = strcmp(subdir, QUEUE_INCOMING) == 0;
	char cerr[256];
	off_t size = 0;		/* a new file's, or a recycled one's old */
	if (want_id != NULL) {
		strlcpy(w->id, want_id, sizeof(w->id));
		w->no_replace = true;
		w->fd = queue_file_create_as(w->dirfd, want_id, cerr,
		    sizeof(cerr));
	} else {
		w->fd = queue_file_create(queue_directory, w->dirfd, incoming,
		    w->id, &size, cerr, sizeof(cerr));
	}
	if (w->fd < 0) {
		int e = errno;
		snprintf(err, errsize, "%s in %s", cerr, w->dirpath);
		close(w->dirfd);
		free(w->dirpath);
		free(w);
		errno = e;
		return NULL;
	}
	snprintf(w->tmpname, sizeof(w->tmpname), ".%s", w->id);
	w->old_size = size;	/* a recycled file is cut to length at the end */
	/* qmgr (the directory's owner) must read what sendmail wrote; the
	 * directory keeps other users out. fchmod: umask must not matter. */
	if (maildrop && fchmod(w->fd, 0644) < 0) {
		snprintf(err, errsize, "chmod %s/%s: %s", w->dirpath,
		    w->tmpname, strerror(errno));
		queue_writer_abort(w);
		return NULL;
	}
	return queue_writer_start(w, env, err, errsize);
}

struct queue_writer *queue_writer_attach(int fd, const char *id,
    struct queue_envelope *env, char *err, size_t errsize)
{
	return queue_writer_attach_sized(fd, id, -1, env, err, errsize);
}

struct queue_writer *queue_writer_attach_sized(int fd, const char *id,
    off_t size, struct queue_envelope *env, char *err, size_t errsize)
{
	struct stat st;

	if (!queue_id_valid(id)) {
		snprintf(err, errsize, "bad queue ID");
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	if (size >= 0)
		st.st_size = size;	/* the maker said: one call less */
	if (!queue_envelope_writable(env, err, errsize) ||
	    (size < 0 && fstat(fd, &st) < 0)) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	w->fd = fd;
	w->dirfd = -1;		/* the file's maker owns its name */
	w->unlinked = true;
	w->env = env;
	w->old_size = st.st_size;
	memcpy(w->id, id, QUEUE_ID_SIZE);
	w->tmpname[0] = '.';
	memcpy(w->tmpname + 1, w->id, QUEUE_ID_SIZE);
	w->dirpath = xstrdup(QUEUE_INCOMING);
	return queue_writer_start(w, env, err, errsize);
}

bool queue_writer_write(struct queue_writer *w, const void *p, size_t len)
{
	if (!queue_writer_put(w, p, len)) {
		errno = w->saved_errno;
		return false;
	}
	return true;
}

off_t queue_writer_content_length(const struct queue_writer *w)
{
	return queue_writer_offset(w) - w->content_offset;
}

static void queue_writer_free(struct queue_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	if (w->buf != NULL)
		free_to_spare(&spare_buffer, w->buf);
	free(w->dirpath);
	free(w);
}

void queue_writer_abort(struct queue_writer *w)
{
	if (w == NULL)
		return;
	int e = errno;
	queue_writer_drop_file(w);
	queue_writer_free(w);
	errno = e;
}

/*
 * The order of the durable steps (queue.h, "Durability"): the complete
 * file is renamed to its final name first and then fsync'd, then its
 * directory. On ext4 with a journal the file's fsync commits the rename
 * in the same journal transaction; without one, the fsync of a new file
 * writes its directory too. Either way the directory's fsync finds
 * nothing left to write. Nothing is acknowledged before both
 * fsyncs succeed, so acknowledged mail is as durable as with a temporary
 * name; a crash before them may leave an unfinished file under its final
 * name, which queue_read() reports as CORRUPT (the D record, the C record
 * and the file's size catch every truncation and zero-filled tail).
 */
/*
 * The bytes of a complete file: the C record after the content, the D
 * length patched in place, a recycled file cut to length. Never reads the
 * file: it may be open for writing only. false with errno and err.
 */
static bool queue_writer_complete(struct queue_writer *w, const char **step)
{
	char digits[QUEUE_LENGTH_DIGITS + 1];
	char end[QUEUE_LENGTH_DIGITS + 4];

	*step = "write";
	if (w->failed) {
		errno = w->saved_errno;
		return false;
	}
	off_t length = queue_writer_content_length(w);
	/* The C record closes the file: a zero-filled or cut tail cannot
	 * pass for it (queue.h). */
	int endlen = snprintf(end, sizeof(end), "C %lld\n", (long long)length);
	snprintf(digits, sizeof(digits), "%020lld", (long long)length);
	/* A message that fit in the buffer gets its length before its one
	 * write: no pwrite() after it. The file still holds no digits
	 * before it holds the C record too. */
	bool patched = w->length_offset >= w->flushed;
	if (patched)
		memcpy(w->buf + (w->length_offset - w->flushed), digits,
		    QUEUE_LENGTH_DIGITS);
	if (!queue_writer_put(w, end, (size_t)endlen) ||
	    !queue_writer_flush(w)) {
		errno = w->saved_errno;
		return false;
	}
	if (!patched && !queue_pwrite_all(w->fd, digits, QUEUE_LENGTH_DIGITS,
	    w->length_offset))
		return false;
	/* A recycled file may hold more of its old bytes past ours. */
	*step = "truncate";
	if (w->old_size > w->flushed && ftruncate(w->fd, w->flushed) < 0)
		return false;
	/* Start sending the bytes to the disk now, without waiting: the
	 * fsync that makes them durable (smtpd's door, a round trip later;
	 * queue_file_publish()) then finds them under way. That fsync
	 * waits for them and reports any error, so this result does not
	 * matter. */
	(void)sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	w->env->content_length = length;
	w->env->trailer_offset = w->content_offset + length;
	return true;
}

bool queue_writer_finish(struct queue_writer *w, char *err, size_t errsize)
{
	const char *step;
	bool ok = queue_writer_complete(w, &step);
	int e = errno;
	if (!ok)
		snprintf(err, errsize, "%s %s/%s: %s", step, w->dirpath,
		    w->tmpname, strerror(e));
	queue_writer_free(w);
	errno = e;
	return ok;
}

static bool queue_file_publish_flags(int dirfd, bool dir_readable,
    const char *id, int fd, unsigned flags, char *err, size_t errsize);

bool queue_file_publish(int dirfd, bool dir_readable, const char *id, int fd,
    char *err, size_t errsize)
{
	return queue_file_publish_flags(dirfd, dir_readable, id, fd, 0, err,
	    errsize);
}

/* flags: 0, or RENAME_NOREPLACE for an ID the caller chose. */
static bool queue_file_publish_flags(int dirfd, bool dir_readable,
    const char *id, int fd, unsigned flags, char *err, size_t errsize)
{
	char tmpname[QUEUE_ID_SIZE + 1];
	const char *step = "rename";

	snprintf(tmpname, sizeof(tmpname), ".%s", id);
	/* Everything is written: a reader that finds the final name (qmgr
	 * may, before the fsyncs) finds a complete file in the page cache. */
	if (renameat2(dirfd, tmpname, dirfd, id, flags) < 0) {
		int e = errno;
		snprintf(err, errsize, "rename %s: %s", tmpname, strerror(e));
		unlinkat(dirfd, tmpname, 0);
		errno = e;
		return false;
	}
	step = "fsync";
	if (fsync(fd) < 0)
		goto fail_renamed;
	step = "fsync directory";
	/* An fsync of the directory that began after the rename: ours, or
	 * another door's when the process shares a table (mail/dirsync.h;
	 * without one, fsync(dirfd) alone). */
	if (dir_readable) {
		int e = dirsync_commit_fd(dirfd);
		if (e != 0) {
			errno = e;
			goto fail_renamed;
		}
	} else if (syncfs(fd) < 0) {
		goto fail_renamed;
	}
	return true;

fail_renamed:;
	int e = errno;
	/* Not durable, so not acknowledged: the client will send it again,
	 * and this copy must not be delivered as well. If qmgr took it
	 * meanwhile the name is gone and a duplicate is the price (never a
	 * loss). */
	if (unlinkat(dirfd, id, 0) < 0)
		log_warning("%s: cannot remove it after a failed %s: %m", id,
		    step);
	snprintf(err, errsize, "%s %s: %s", step, id, strerror(e));
	errno = e;
	return false;
}

/*
 * Stale temporary files (queue.h, "Stale temporaries"): a writer holds
 * an flock on its ".<ID>" file from the moment it has it until it closes
 * it, and the kernel drops the lock when the writer dies. A temporary
 * file that can be locked and whose ctime (set by its creation, by the
 * recycling rename and by every write) is older than min_age has no
 * writer: remove it. min_age only covers the microseconds between a
 * writer's open and its flock; even a writer stalled there longer loses
 * nothing acknowledged: its commit's rename fails and the client gets a
 * 4xx. Returns how many files were removed.
 */
size_t queue_clean_stale(const char *queue_directory, const char *subdir,
    time_t min_age)
{
	char path[PATH_MAX];
	size_t removed = 0;
	time_t now = time(NULL);

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", queue_directory,
	    subdir) >= sizeof(path))
		return 0;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (d == NULL) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (e->d_name[0] != '.' || !queue_id_valid(e->d_name + 1))
			continue;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || now - st.st_ctime < min_age)
			continue;
		int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat again;
		/* Locked: a writer is at work. Same name, other inode:
		 * not the file we looked at. */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    fstat(fd, &again) == 0 && again.st_ino == st.st_ino &&
		    now - again.st_ctime >= min_age) {
			if (unlinkat(dfd, e->d_name, 0) == 0) {
				log_info("removed stale temporary file %s/%s "
				    "(%lld bytes; its writer is gone)", path,
				    e->d_name, (long long)again.st_size);
				removed++;
			} else if (errno != ENOENT) {
				log_warning("remove stale temporary file "
				    "%s/%s: %m", path, e->d_name);
			}
		}
		close(fd);
	}
	closedir(d);
	return removed;
}

/*
 * The order of the durable steps (queue.h, "Durability"): the complete
 * file is renamed to its final name first and then fsync'd, then its
 * directory. On ext4 with a journal the file's fsync commits the rename
 * in the same journal transaction; without one, the fsync of a new file
 * writes its directory too. Either way the directory's fsync finds
 * nothing left to write. Nothing is acknowledged before both
 * fsyncs succeed, so acknowledged mail is as durable as with a temporary
 * name; a crash before them may leave an unfinished file under its final
 * name, which queue_read() reports as CORRUPT (the D record, the C record
 * and the file's size catch every truncation and zero-filled tail).
 */
bool queue_writer_commit(struct queue_writer *w, char *err, size_t errsize)
{
	const char *step;
	char perr[256];

	if (!queue_writer_complete(w, &step)) {
		int e = errno;
		snprintf(err, errsize, "%s %s/%s: %s", step, w->dirpath,
		    w->tmpname, strerror(e));
		queue_writer_abort(w);
		errno = e;
		return false;
	}
	if (!queue_file_publish_flags(w->dirfd, w->dir_readable, w->id, w->fd,
	    w->no_replace ? RENAME_NOREPLACE : 0, perr, sizeof(perr))) {
		int e = errno;
		snprintf(err, errsize, "%s in %s", perr, w->dirpath);
		/* The temporary name is gone either way. */
		w->unlinked = true;
		queue_writer_abort(w);
		errno = e;
		return false;
	}
	queue_writer_free(w);
	return true;
}
