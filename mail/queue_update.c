/*
 * queue_update.c - changing a queued file: status bytes and the delay
 * flag in place, trailer records appended (qmgr is their only writer),
 * and moves between the queue's directories.
 *
 * Trust: the caller's envelope, read from this very file by
 * queue_read(); every offset written to comes from it. Nothing here is
 * fsync'd except what queue_move() is asked to sync: qmgr decides when
 * its bookkeeping must reach the disk (qmgr_message.c).
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

bool queue_pwrite_all(int fd, const void *p, size_t len, off_t off)
{
	const char *cp = p;
	while (len > 0) {
		ssize_t n = pwrite(fd, cp, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return false;
		}
		cp += n;
		len -= (size_t)n;
		off += n;
	}
	return true;
}

/* ---- in-place updates and trailer appends ---- */

bool queue_set_rcpt_status(int fd, struct queue_envelope *env, size_t i,
    char status)
{
	if (i >= env->nrcpts || !queue_status_ok(status) ||
	    env->rcpts[i].status_offset <= 0) {
		errno = EINVAL;
		return false;
	}
	if (!queue_pwrite_all(fd, &status, 1, env->rcpts[i].status_offset))
		return false;
	env->rcpts[i].status = status;
	return true;
}

bool queue_set_delay_warned(int fd, struct queue_envelope *env)
{
	if (env->delay_warned_offset <= 0) {
		errno = EINVAL;
		return false;
	}
	if (!queue_pwrite_all(fd, "1", 1, env->delay_warned_offset))
		return false;
	env->delay_warned = true;
	return true;
}

/*
 * Trailer records go at the current end of the file in one pwrite, so
 * that a crash leaves either all of them or a partial last record (which
 * the reader reports as corrupt rather than silently losing recipients).
 * qmgr is the only writer, so fstat's size is the end.
 */
static bool queue_append(int fd, const struct str *rec, off_t *at)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return false;
	*at = st.st_size;
	return queue_pwrite_all(fd, rec->data, rec->len, st.st_size);
}

bool queue_append_expansion(int fd, struct queue_envelope *env, size_t parent,
    const char *const *addresses, size_t count)
{
	struct str rec;
	char notify[8];
	off_t at;

	if (parent >= env->nrcpts) {
		errno = EINVAL;
		return false;
	}
	for (size_t i = 0; i < count; i++) {
		if (addresses[i][0] == '\0' || queue_has_line_end(addresses[i])) {
			errno = EINVAL;
			return false;
		}
	}
	if (count == 0)
		return true;
	/* Children inherit NOTIFY and ORCPT: DSNs about them are reported
	 * against the recipient the client gave (RFC 3461 5.2.1). */
	const struct queue_rcpt *p = &env->rcpts[parent];
	unsigned pnotify = p->notify;
	char *porcpt = p->orcpt ? xstrdup(p->orcpt) : NULL;
	queue_notify_format(notify, pnotify);
	off_t *offsets = xreallocarray(NULL, count, sizeof(*offsets));
	str_init(&rec, STR_NO_MAX);
	for (size_t i = 0; i < count; i++) {
		str_appendf(&rec, "X %zu ", parent);
		offsets[i] = (off_t)rec.len;	/* the status byte */
		str_appendf(&rec, "%c %s %s %s\n", QUEUE_RCPT_PENDING, notify,
		    porcpt ? porcpt : "-", addresses[i]);
	}
	bool ok = queue_append(fd, &rec, &at);
	if (ok) {
		for (size_t i = 0; i < count; i++) {
			struct queue_rcpt *r = queue_new_rcpt(env);
			r->address = xstrdup(addresses[i]);
			r->orcpt = porcpt ? xstrdup(porcpt) : NULL;
			r->notify = pnotify;
			r->parent = (int)parent;
			r->status_offset = at + offsets[i];
		}
	}
	str_free(&rec);
	free(offsets);
	free(porcpt);
	return ok;
}

bool queue_append_reason(int fd, struct queue_envelope *env, size_t rcpt,
    const char *dsn_status, const char *text)
{
	struct str rec;
	off_t at;

	if (rcpt >= env->nrcpts || !queue_dsn_ok(dsn_status, strlen(dsn_status))) {
		errno = EINVAL;
		return false;
	}
	str_init(&rec, STR_NO_MAX);
	str_appendf(&rec, "Z %zu %s ", rcpt, dsn_status);
	size_t text_at = rec.len;
	str_append_cstr(&rec, text);
	/* A reason is one line: CR and LF from a peer's reply become spaces. */
	for (size_t i = text_at; i < rec.len; i++)
		if (rec.data[i] == '\r' || rec.data[i] == '\n')
			rec.data[i] = ' ';
	str_append_char(&rec, '\n');
	bool ok = queue_append(fd, &rec, &at);
	if (ok) {
		struct queue_rcpt *r = &env->rcpts[rcpt];
		free(r->last_dsn);
		free(r->last_reason);
		r->last_dsn = xstrdup(dsn_status);
		r->last_reason = xstrndup(rec.data + text_at,
		    rec.len - text_at - 1);
	}
	str_free(&rec);
	return ok;
}

/*
 * Why qmgr's moves need no fsync of the directory each (sync_dir false): fsync only matters for a power cut, since the page cache survives
 * a kill -9 of any process. On a file system that makes a rename atomic
 * across a power cut (any journaling one: ext4 with its journal, XFS,
 * btrfs), a rename that a power cut undoes leaves the file in the
 * directory it came from, whole: the queue file itself was made durable
 * when it was accepted. qmgr's start-up takes everything in incoming/ and
 * active/ and the due part of deferred/, so a message found back there is
 * simply tried again (at worst a second delivery, never a loss). Without
 * a journal a rename is two directory writes that reach the disk in any
 * order, so the callers that take files out of incoming/ still flush
 * active/ once per batch of moves (qmgr_scan_feed), which keeps that
 * window as short as it was with one fsync per move.
 */
bool queue_move(const char *queue_directory, const char *from_subdir,
    const char *to_subdir, const char *id, bool sync_dir, char *err,
    size_t errsize)
{
	char from[PATH_MAX], to[PATH_MAX], todir[PATH_MAX];

	if (!queue_id_valid(id)) {
		snprintf(err, errsize, "bad queue ID");
		errno = EINVAL;
		return false;
	}
	queue_path(from, sizeof(from), queue_directory, from_subdir, id);
	queue_path(to, sizeof(to), queue_directory, to_subdir, id);
	if (!queue_dir_of(todir, sizeof(todir), queue_directory, to_subdir, id) ||
	    from[0] == '\0' || to[0] == '\0') {
		snprintf(err, errsize, "queue path too long");
		errno = ENAMETOOLONG;
		return false;
	}
	if (rename(from, to) < 0) {
		int e = errno;
		snprintf(err, errsize, "rename %s to %s: %s", from, to,
		    strerror(e));
		errno = e;
		return false;
	}
	if (!sync_dir)
		return true;
	int dfd = open(todir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		int e = errno;
		snprintf(err, errsize, "fsync %s: %s", todir, strerror(e));
		if (dfd >= 0)
			close(dfd);
		errno = e;
		return false;
	}
	close(dfd);
	return true;
}
