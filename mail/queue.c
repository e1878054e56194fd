/*
 * queue.c - queue IDs, queue directories and queue files (see queue.h for
 * the record format, which is the contract between smtpd, qmgr, deliver
 * and the admin tools).
 *
 * Trust: the writer trusts its caller's values only after checking that
 * they fit the line-oriented format (no CR, LF; no space where a field
 * ends at a space). The reader trusts nothing in the file: a file in
 * maildrop/ is written by any local user, and any file may be truncated
 * by a crash or damaged on disk. Every deviation from the format is
 * QUEUE_READ_CORRUPT with a message; the reader never reads the content.
 *
 * Durability (doc/architecture.md, "Where the fsyncs are"): a new file
 * gets exactly one fsync of itself and one of its directory, after which
 * it has its final name. In-place updates and trailer appends are not
 * synced here; qmgr decides when its bookkeeping must reach the disk.
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
#include "str.h"

#define QUEUE_WRITE_BUFFER (64 * 1024)
/* Longest record line the reader accepts (a record is never near this). */
#define QUEUE_MAX_RECORD (64 * 1024)
#define QUEUE_LENGTH_DIGITS 20
/* The D value until commit: QUEUE_LENGTH_DIGITS characters, not digits. */
#define QUEUE_LENGTH_UNSET "--------------------"
/* How often the writer picks a new ID when the name is taken. */
#define QUEUE_CREATE_TRIES 10

static const char queue_b62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const char *const queue_kind_names[] = {
	[QUEUE_KIND_MAIL] = "MAIL",
	[QUEUE_KIND_BOUNCE] = "BOUNCE",
	[QUEUE_KIND_DELAY] = "DELAY",
	[QUEUE_KIND_SUCCESS] = "SUCCESS",
	[QUEUE_KIND_DOUBLE] = "DOUBLE",
};

static const char *const queue_body_names[] = {
	[QUEUE_BODY_7BIT] = "7BIT",
	[QUEUE_BODY_8BITMIME] = "8BITMIME",
	[QUEUE_BODY_BINARYMIME] = "BINARYMIME",
};

/* ---- IDs and paths ---- */

static void queue_b62_encode(char *out, unsigned long long v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = queue_b62[v % 62];
		v /= 62;
	}
}

/*
 * 6 characters of seconds, 4 of microseconds, 4 of the process ID: fixed
 * width base 62 in ASCII order, so IDs sort by time. Within a process the
 * time never repeats or goes back: if the clock did not move (or was set
 * back), the previous time plus one microsecond is used instead.
 */
void queue_id_new(char id[QUEUE_ID_SIZE])
{
	static long long last_sec = -1;
	static long last_usec;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	long long sec = tv.tv_sec;
	long usec = tv.tv_usec;
	if (sec < last_sec || (sec == last_sec && usec <= last_usec)) {
		sec = last_sec;
		usec = last_usec + 1;
		if (usec >= 1000000) {
			sec++;
			usec = 0;
		}
	}
	last_sec = sec;
	last_usec = usec;
	queue_b62_encode(id, (unsigned long long)sec, 6);
	queue_b62_encode(id + 6, (unsigned long long)usec, 4);
	queue_b62_encode(id + 10, (unsigned long long)getpid(), 4);
	id[QUEUE_ID_LEN] = '\0';
}

static bool queue_is_b62(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	    (c >= 'a' && c <= 'z');
}

bool queue_id_valid(const char *id)
{
	if (id == NULL)
		return false;
	for (int i = 0; i < QUEUE_ID_LEN; i++)
		if (!queue_is_b62(id[i]))
			return false;
	return id[QUEUE_ID_LEN] == '\0';
}

/* The deferred/ hash digit: FNV-1a over the ID, so the spread does not
 * depend on which characters of the ID change fastest. */
static char queue_hash_digit(const char *id)
{
	unsigned h = 2166136261u;
	for (const char *p = id; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	return "0123456789abcdef"[h % QUEUE_DEFERRED_HASH];
}

void queue_path(char *out, size_t outsize, const char *queue_directory,
    const char *subdir, const char *id)
{
	int n;
	if (strcmp(subdir, QUEUE_DEFERRED) == 0)
		n = snprintf(out, outsize, "%s/%s/%c/%s", queue_directory,
		    subdir, queue_hash_digit(id), id);
	else
		n = snprintf(out, outsize, "%s/%s/%s", queue_directory, subdir,
		    id);
	/* A truncated path must not name some other file: make it unusable. */
	if (n < 0 || (size_t)n >= outsize) {
		if (outsize > 0)
			out[0] = '\0';
	}
}

/* The directory a queue file lives in ("deferred/7" for deferred/). */
static bool queue_dir_of(char *out, size_t outsize, const char *queue_directory,
    const char *subdir, const char *id)
{
	int n;
	if (strcmp(subdir, QUEUE_DEFERRED) == 0)
		n = snprintf(out, outsize, "%s/%s/%c", queue_directory, subdir,
		    queue_hash_digit(id));
	else
		n = snprintf(out, outsize, "%s/%s", queue_directory, subdir);
	return n >= 0 && (size_t)n < outsize;
}

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
};

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
		if ((size_t)snprintf(path, sizeof(path), "%s/%s",
		    queue_directory, d->name) >= sizeof(path)) {
			snprintf(err, errsize, "queue_directory is too long");
			return false;
		}
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

/* ---- envelope in memory ---- */

void queue_envelope_init(struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
}

void queue_envelope_free(struct queue_envelope *env)
{
	free(env->sender);
	free(env->envid);
	for (size_t i = 0; i < env->nattrs; i++) {
		free(env->attrs[i].name);
		free(env->attrs[i].value);
	}
	free(env->attrs);
	for (size_t i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i].address);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].last_dsn);
		free(env->rcpts[i].last_reason);
	}
	free(env->rcpts);
	queue_envelope_init(env);
}

/*
 * The arrays have no capacity field: they grow to the next power of two
 * (at least 8) whenever the count reaches one, so n appends cost O(n).
 */
static void *queue_grow(void *array, size_t count, size_t size)
{
	if (count == 0)
		return xreallocarray(array, 8, size);
	if (count >= 8 && (count & (count - 1)) == 0)
		return xreallocarray(array, count * 2, size);
	return array;
}

static struct queue_rcpt *queue_new_rcpt(struct queue_envelope *env)
{
	env->rcpts = queue_grow(env->rcpts, env->nrcpts, sizeof(*env->rcpts));
	struct queue_rcpt *r = &env->rcpts[env->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->status = QUEUE_RCPT_PENDING;
	r->parent = -1;
	return r;
}

size_t queue_envelope_add_rcpt(struct queue_envelope *env, const char *address,
    unsigned notify, const char *orcpt)
{
	struct queue_rcpt *r = queue_new_rcpt(env);
	r->address = xstrdup(address);
	r->orcpt = orcpt ? xstrdup(orcpt) : NULL;
	r->notify = notify;
	return env->nrcpts - 1;
}

void queue_envelope_set_attr(struct queue_envelope *env, const char *name,
    const char *value)
{
	for (size_t i = 0; i < env->nattrs; i++) {
		if (strcmp(env->attrs[i].name, name) == 0) {
			free(env->attrs[i].value);
			env->attrs[i].value = xstrdup(value);
			return;
		}
	}
	env->attrs = queue_grow(env->attrs, env->nattrs, sizeof(*env->attrs));
	env->attrs[env->nattrs].name = xstrdup(name);
	env->attrs[env->nattrs].value = xstrdup(value);
	env->nattrs++;
}

const char *queue_envelope_attr(const struct queue_envelope *env,
    const char *name)
{
	for (size_t i = 0; i < env->nattrs; i++)
		if (strcmp(env->attrs[i].name, name) == 0)
			return env->attrs[i].value;
	return NULL;
}

/* ---- field checks shared by writer and reader ---- */

static bool queue_has_line_end(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

static bool queue_attr_name_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An ORCPT is "type;address" and is one space-free field of R and X. */
static bool queue_orcpt_ok(const char *s)
{
	return s[0] != '\0' && s[0] != ';' && strchr(s, ';') != NULL &&
	    strpbrk(s, " \r\n") == NULL;
}

/* RFC 3463 status code: class "." subject "." detail, 1-3 digits each. */
static bool queue_dsn_ok(const char *s, size_t len)
{
	size_t i = 0;
	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return false;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start || i - start > 3)
			return false;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == len;
}

static bool queue_status_ok(char c)
{
	return c == QUEUE_RCPT_PENDING || c == QUEUE_RCPT_SENT ||
	    c == QUEUE_RCPT_FAILED || c == QUEUE_RCPT_EXPANDED;
}

static void queue_notify_format(char out[8], unsigned notify)
{
	size_t n = 0;
	if (notify & QUEUE_NOTIFY_NEVER)
		out[n++] = 'N';
	if (notify & QUEUE_NOTIFY_SUCCESS)
		out[n++] = 'S';
	if (notify & QUEUE_NOTIFY_FAILURE)
		out[n++] = 'F';
	if (notify & QUEUE_NOTIFY_DELAY)
		out[n++] = 'D';
	if (n == 0)
		out[n++] = '-';
	out[n] = '\0';
}

/* ---- writing a new queue file ---- */

struct queue_writer {
	int fd;
	int dirfd;		/* O_PATH when the directory is not readable */
	bool dir_readable;	/* else durability comes from syncfs() */
	bool unlinked;		/* the temporary file is already gone */
	bool failed;		/* sticky write error */
	int saved_errno;
	char id[QUEUE_ID_SIZE];
	char tmpname[QUEUE_ID_SIZE + 1];
	char dirpath[PATH_MAX];
	char *buf;
	size_t buflen;
	off_t flushed;		/* bytes of the file already written */
	off_t old_size;		/* a recycled file's length before */
	off_t length_offset;	/* offset of the D digits */
	off_t content_offset;
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

static bool queue_writer_flush(struct queue_writer *w)
{
	size_t done = 0;
	while (done < w->buflen) {
		ssize_t n = write(w->fd, w->buf + done, w->buflen - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->saved_errno = n < 0 ? errno : EIO;
			w->failed = true;
			/* Disk full: leave nothing behind, whatever the
			 * caller does next. */
			queue_writer_drop_file(w);
			return false;
		}
		done += (size_t)n;
	}
	w->flushed += (off_t)w->buflen;
	w->buflen = 0;
	return true;
}

static bool queue_writer_put(struct queue_writer *w, const void *p, size_t len)
{
	if (w->failed)
		return false;
	if (len == 0)
		return true;	/* p may be NULL then: no memcpy from it */
	if (w->buflen + len > QUEUE_WRITE_BUFFER) {
		if (!queue_writer_flush(w))
			return false;
		/* Large pieces go straight out, unbuffered and uncopied. */
		if (len >= QUEUE_WRITE_BUFFER) {
			const char *cp = p;
			while (len > 0) {
				ssize_t n = write(w->fd, cp, len);
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					w->saved_errno = n < 0 ? errno : EIO;
					w->failed = true;
					queue_writer_drop_file(w);
					return false;
				}
				cp += n;
				len -= (size_t)n;
				w->flushed += n;
			}
			return true;
		}
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

/* ---- recycling (queue.h, "Recycling") ---- */

/* Claims tried per new file before creating one after all. */
#define QUEUE_RECYCLE_TRIES 8
/* How long to create new files outright after recycle/ was found empty. */
#define QUEUE_RECYCLE_BACKOFF_MS 100

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
	int fd = dup(recycle.dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	rewinddir(d);
	struct dirent *e;
	while (recycle.count < QUEUE_RECYCLE_SLOTS && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' ||
		    strlen(e->d_name) >= sizeof(recycle.names[0]))
			continue;
		strcpy(recycle.names[recycle.count++], e->d_name);
	}
	closedir(d);
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
static int queue_recycle_claim(const char *queue_directory, int dirfd,
    const char *tmpname, off_t *old_size)
{
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
		}
		const char *name = recycle.names[(recycle.start +
		    recycle.next++) % recycle.count];
		if (renameat2(recycle.dirfd, name, dirfd, tmpname,
		    RENAME_NOREPLACE) < 0) {
			if (errno == ENOENT)
				continue;	/* another writer took it */
			return -1;
		}
		int fd = openat(dirfd, tmpname, O_WRONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_uid == geteuid() && st.st_nlink == 1 &&
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

void queue_recycle_clear(const char *queue_directory)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", queue_directory,
	    QUEUE_RECYCLE) >= sizeof(path))
		return;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
		    unlinkat(fd, e->d_name, 0) < 0 && errno != ENOENT)
			log_warning("remove %s/%s: %m", path, e->d_name);
	closedir(d);
}

bool queue_remove(const char *queue_directory, const char *path)
{
	/* Slots are used in turn, from a random start in each process. */
	static unsigned slot;
	static bool slot_set;
	struct stat st;

	if (lstat(path, &st) < 0)
		return false;
	if (S_ISREG(st.st_mode) && st.st_size <= QUEUE_RECYCLE_MAX_SIZE &&
	    st.st_uid == geteuid() && st.st_nlink == 1) {
		if (!slot_set) {
			slot = arc4random_uniform(QUEUE_RECYCLE_SLOTS);
			slot_set = true;
		}
		char to[PATH_MAX];
		if ((size_t)snprintf(to, sizeof(to), "%s/%s/%u", queue_directory,
		    QUEUE_RECYCLE, slot) < sizeof(to) && rename(path, to) == 0) {
			slot = (slot + 1) % QUEUE_RECYCLE_SLOTS;
			return true;
		}
		if (errno == ENOENT && access(path, F_OK) < 0)
			return false;
		/* recycle/ missing or unusable: an unlink does the job. */
	}
	return unlink(path) == 0;
}

struct queue_writer *queue_writer_open(const char *queue_directory,
    const char *subdir, struct queue_envelope *env, char *err, size_t errsize)
{
	if (!queue_envelope_writable(env, err, errsize)) {
		errno = EINVAL;
		return NULL;
	}
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	w->fd = -1;
	w->env = env;
	if ((size_t)snprintf(w->dirpath, sizeof(w->dirpath), "%s/%s",
	    queue_directory, subdir) >= sizeof(w->dirpath)) {
		snprintf(err, errsize, "queue directory path too long");
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
		free(w);
		errno = e;
		return NULL;
	}
	bool maildrop = strcmp(subdir, QUEUE_MAILDROP) == 0;
	bool incoming = strcmp(subdir, QUEUE_INCOMING) == 0;
	for (int tries = 0; w->fd < 0; tries++) {
		queue_id_new(w->id);
		snprintf(w->tmpname, sizeof(w->tmpname), ".%s", w->id);
		if (incoming && tries == 0)
			w->fd = queue_recycle_claim(queue_directory, w->dirfd,
			    w->tmpname, &w->old_size);
		if (w->fd < 0)
			w->fd = openat(w->dirfd, w->tmpname, O_WRONLY |
			    O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (w->fd < 0 && (errno != EEXIST || tries >= QUEUE_CREATE_TRIES)) {
			snprintf(err, errsize, "create %s/%s: %s", w->dirpath,
			    w->tmpname, strerror(errno));
			int e = errno;
			close(w->dirfd);
			free(w);
			errno = e;
			return NULL;
		}
	}
	/* qmgr (the directory's owner) must read what sendmail wrote; the
	 * directory keeps other users out. fchmod: umask must not matter. */
	if (maildrop && fchmod(w->fd, 0644) < 0) {
		snprintf(err, errsize, "chmod %s/%s: %s", w->dirpath,
		    w->tmpname, strerror(errno));
		queue_writer_abort(w);
		return NULL;
	}
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
	w->buf = xmalloc(QUEUE_WRITE_BUFFER);
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
	free(w->buf);
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

static bool queue_pwrite_all(int fd, const void *p, size_t len, off_t off)
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
	const char *step = "write";
	char digits[QUEUE_LENGTH_DIGITS + 1];
	char end[QUEUE_LENGTH_DIGITS + 4];
	const char *name = w->tmpname;
	int e;

	if (w->failed) {
		e = w->saved_errno;
		goto fail;
	}
	off_t length = queue_writer_content_length(w);
	/* The C record closes the file: a zero-filled or cut tail cannot
	 * pass for it (queue.h). */
	int endlen = snprintf(end, sizeof(end), "C %lld\n", (long long)length);
	if (!queue_writer_put(w, end, (size_t)endlen) ||
	    !queue_writer_flush(w)) {
		e = w->saved_errno;
		goto fail;
	}
	snprintf(digits, sizeof(digits), "%020lld", (long long)length);
	if (!queue_pwrite_all(w->fd, digits, QUEUE_LENGTH_DIGITS,
	    w->length_offset)) {
		e = errno;
		goto fail;
	}
	/* A recycled file may hold more of its old bytes past ours. */
	step = "truncate";
	if (w->old_size > w->flushed && ftruncate(w->fd, w->flushed) < 0) {
		e = errno;
		goto fail;
	}
	/* Everything is written: a reader that finds the final name (qmgr
	 * may, before the fsyncs) finds a complete file in the page cache. */
	step = "rename";
	if (renameat(w->dirfd, w->tmpname, w->dirfd, w->id) < 0) {
		e = errno;
		goto fail;
	}
	w->unlinked = true;	/* the name is now the final one */
	name = w->id;
	step = "fsync";
	if (fsync(w->fd) < 0)
		goto fail_renamed;
	step = "fsync directory";
	if ((w->dir_readable ? fsync(w->dirfd) : syncfs(w->fd)) < 0)
		goto fail_renamed;
	w->env->content_length = length;
	w->env->trailer_offset = w->content_offset + length;
	queue_writer_free(w);
	return true;

fail_renamed:
	e = errno;
	/* Not durable, so not acknowledged: the client will send it again,
	 * and this copy must not be delivered as well. If qmgr took it
	 * meanwhile the name is gone and a duplicate is the price (never a
	 * loss). */
	if (unlinkat(w->dirfd, w->id, 0) < 0)
		log_warning("%s: cannot remove %s/%s: %m", w->id, w->dirpath,
		    w->id);
fail:
	snprintf(err, errsize, "%s %s/%s: %s", step, w->dirpath, name,
	    strerror(e));
	queue_writer_abort(w);
	errno = e;
	return false;
}

/* ---- reading ---- */

/* Buffered record reader over pread(2): never moves the fd's offset. */
struct queue_input {
	int fd;
	off_t pos;		/* file offset of buf[0] */
	off_t end;		/* file size when reading started */
	char *buf;
	size_t start, len;	/* unread bytes are buf[start..len) */
	size_t cap;
};

enum queue_line {
	QUEUE_LINE_OK,
	QUEUE_LINE_EOF,		/* clean end: no bytes left */
	QUEUE_LINE_PARTIAL,	/* bytes without a final LF at the end */
	QUEUE_LINE_TOOLONG,
	QUEUE_LINE_ERROR,	/* errno set */
};

/* Next LF-terminated line; *line points into the buffer, *off is its
 * file offset, *len excludes the LF. */
static enum queue_line queue_input_line(struct queue_input *in,
    const char **line, size_t *len, off_t *off)
{
	for (;;) {
		char *lf = memchr(in->buf + in->start, '\n',
		    in->len - in->start);
		if (lf) {
			*line = in->buf + in->start;
			*len = (size_t)(lf - *line);
			*off = in->pos + (off_t)in->start;
			in->start += *len + 1;
			return QUEUE_LINE_OK;
		}
		if (in->len - in->start > QUEUE_MAX_RECORD)
			return QUEUE_LINE_TOOLONG;
		/* Move the partial line to the front and read more. */
		in->pos += (off_t)in->start;
		memmove(in->buf, in->buf + in->start, in->len - in->start);
		in->len -= in->start;
		in->start = 0;
		off_t at = in->pos + (off_t)in->len;
		if (at >= in->end)
			return in->len == 0 ? QUEUE_LINE_EOF : QUEUE_LINE_PARTIAL;
		size_t want = in->cap - in->len;
		if ((off_t)want > in->end - at)
			want = (size_t)(in->end - at);
		ssize_t n = pread(in->fd, in->buf + in->len, want, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return QUEUE_LINE_ERROR;
		if (n == 0)	/* the file shrank under us */
			return in->len == 0 ? QUEUE_LINE_EOF : QUEUE_LINE_PARTIAL;
		in->len += (size_t)n;
	}
}

static void queue_input_seek(struct queue_input *in, off_t off)
{
	in->pos = off;
	in->start = in->len = 0;
}

/* Strict unsigned decimal: digits only, at most maxdigits, no overflow. */
static bool queue_parse_number(const char *s, size_t len, size_t maxdigits,
    unsigned long long *out)
{
	unsigned long long v = 0;
	if (len == 0 || len > maxdigits)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* A number then one space: returns the bytes used, 0 if malformed. */
static size_t queue_parse_field_number(const char *s, size_t len,
    unsigned long long *out)
{
	const char *sp = memchr(s, ' ', len);
	if (sp == NULL || !queue_parse_number(s, (size_t)(sp - s), 9, out))
		return 0;
	return (size_t)(sp - s) + 1;
}

static bool queue_parse_notify(const char *s, size_t len, unsigned *out)
{
	*out = 0;
	if (len == 1 && s[0] == '-')
		return true;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned bit;
		switch (s[i]) {
		case 'N': bit = QUEUE_NOTIFY_NEVER; break;
		case 'S': bit = QUEUE_NOTIFY_SUCCESS; break;
		case 'F': bit = QUEUE_NOTIFY_FAILURE; break;
		case 'D': bit = QUEUE_NOTIFY_DELAY; break;
		default: return false;
		}
		if (*out & bit)
			return false;
		*out |= bit;
	}
	return true;
}

/*
 * "<st> <notify> <orcpt> <address>" of an R or X record; value starts at
 * file offset off. Fills r (which must be fresh).
 */
static bool queue_parse_rcpt_fields(const char *v, size_t len, off_t off,
    struct queue_rcpt *r, const char **why)
{
	if (len < 2 || v[1] != ' ' || !queue_status_ok(v[0])) {
		*why = "bad status byte";
		return false;
	}
	r->status = v[0];
	r->status_offset = off;
	const char *p = v + 2, *end = v + len;
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || !queue_parse_notify(p, (size_t)(sp - p), &r->notify)) {
		*why = "bad NOTIFY field";
		return false;
	}
	p = sp + 1;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || sp == p) {
		*why = "bad ORCPT field";
		return false;
	}
	if (!(sp - p == 1 && p[0] == '-')) {
		r->orcpt = xstrndup(p, (size_t)(sp - p));
		if (!queue_orcpt_ok(r->orcpt)) {
			*why = "bad ORCPT field";
			return false;
		}
	}
	p = sp + 1;
	if (p == end) {
		*why = "empty address";
		return false;
	}
	r->address = xstrndup(p, (size_t)(end - p));
	return true;
}

/* Envelope records in the order they must appear; A and R repeat. */
static const char queue_record_order[] = "VITFBUENKAWRD";

static int queue_record_rank(char letter)
{
	const char *p = letter ? strchr(queue_record_order, letter) : NULL;
	return p ? (int)(p - queue_record_order) : -1;
}

static bool queue_match_name(const char *v, size_t len,
    const char *const *names, size_t count, unsigned *out)
{
	for (size_t i = 0; i < count; i++) {
		if (strlen(names[i]) == len && memcmp(v, names[i], len) == 0) {
			*out = (unsigned)i;
			return true;
		}
	}
	return false;
}

/* One envelope record; *why is set on a format error. */
static bool queue_parse_envelope_record(struct queue_envelope *env,
    char letter, const char *v, size_t vlen, off_t voff, const char **why)
{
	unsigned long long n;
	unsigned u;

	switch (letter) {
	case 'V':
		if (!queue_parse_number(v, vlen, 9, &n) ||
		    n != QUEUE_FORMAT_VERSION) {
			*why = "unsupported format version";
			return false;
		}
		return true;
	case 'I':
		if (vlen != QUEUE_ID_LEN) {
			*why = "bad queue ID";
			return false;
		}
		memcpy(env->id, v, QUEUE_ID_LEN);
		env->id[QUEUE_ID_LEN] = '\0';
		if (!queue_id_valid(env->id)) {
			*why = "bad queue ID";
			return false;
		}
		return true;
	case 'T': {
		const char *dot = memchr(v, '.', vlen);
		unsigned long long usec;
		if (dot == NULL ||
		    !queue_parse_number(v, (size_t)(dot - v), 18, &n) ||
		    v + vlen - (dot + 1) != 6 ||
		    !queue_parse_number(dot + 1, 6, 6, &usec)) {
			*why = "bad arrival time";
			return false;
		}
		env->arrival_sec = (long long)n;
		env->arrival_usec = (long)usec;
		return true;
	}
	case 'F':
		env->sender = xstrndup(v, vlen);
		return true;
	case 'B':
		if (!queue_match_name(v, vlen, queue_body_names, 3, &u)) {
			*why = "bad body type";
			return false;
		}
		env->body = (enum queue_body)u;
		return true;
	case 'U':
		env->smtputf8 = true;
		return true;
	case 'E':
		if (vlen == 0) {
			*why = "empty ENVID";
			return false;
		}
		env->envid = xstrndup(v, vlen);
		return true;
	case 'N':
		if (vlen == 4 && memcmp(v, "FULL", 4) == 0)
			env->ret = QUEUE_RET_FULL;
		else if (vlen == 4 && memcmp(v, "HDRS", 4) == 0)
			env->ret = QUEUE_RET_HDRS;
		else {
			*why = "bad RET value";
			return false;
		}
		return true;
	case 'K':
		if (!queue_match_name(v, vlen, queue_kind_names, 5, &u)) {
			*why = "bad message kind";
			return false;
		}
		env->kind = (enum queue_kind)u;
		return true;
	case 'A': {
		const char *eq = memchr(v, '=', vlen);
		if (eq == NULL || !queue_attr_name_ok(v, (size_t)(eq - v))) {
			*why = "bad attribute";
			return false;
		}
		char *name = xstrndup(v, (size_t)(eq - v));
		char *value = xstrndup(eq + 1, vlen - (size_t)(eq + 1 - v));
		bool dup = queue_envelope_attr(env, name) != NULL;
		if (!dup)
			queue_envelope_set_attr(env, name, value);
		free(name);
		free(value);
		if (dup) {
			*why = "repeated attribute";
			return false;
		}
		return true;
	}
	case 'W':
		if (vlen != 1 || (v[0] != '0' && v[0] != '1')) {
			*why = "bad delay warning flag";
			return false;
		}
		env->delay_warned = v[0] == '1';
		env->delay_warned_offset = voff;
		return true;
	case 'R': {
		struct queue_rcpt *r = queue_new_rcpt(env);
		return queue_parse_rcpt_fields(v, vlen, voff, r, why);
	}
	case 'D':
		if (vlen == QUEUE_LENGTH_DIGITS &&
		    memcmp(v, QUEUE_LENGTH_UNSET, vlen) == 0) {
			*why = "unfinished file (content length never set)";
			return false;
		}
		if (vlen != QUEUE_LENGTH_DIGITS ||
		    !queue_parse_number(v, vlen, QUEUE_LENGTH_DIGITS, &n) ||
		    n > (unsigned long long)LLONG_MAX) {
			*why = "bad content length";
			return false;
		}
		env->content_length = (off_t)n;
		return true;
	}
	*why = "unknown record";
	return false;
}

/* One trailer record (X or Z). */
static bool queue_parse_trailer_record(struct queue_envelope *env,
    char letter, const char *v, size_t vlen, off_t voff, const char **why)
{
	unsigned long long n;
	size_t used = queue_parse_field_number(v, vlen, &n);

	if (letter == 'C') {
		/* Only the writer's own first trailer record. */
		if (voff - 2 != env->trailer_offset ||
		    !queue_parse_number(v, vlen, QUEUE_LENGTH_DIGITS, &n) ||
		    n != (unsigned long long)env->content_length) {
			*why = "bad C record";
			return false;
		}
		return true;
	}
	if (letter != 'X' && letter != 'Z') {
		*why = "unknown trailer record";
		return false;
	}
	if (used == 0 || n >= env->nrcpts) {
		*why = "trailer record names no existing recipient";
		return false;
	}
	v += used;
	vlen -= used;
	voff += (off_t)used;
	if (letter == 'X') {
		struct queue_rcpt *r = queue_new_rcpt(env);
		r->parent = (int)n;
		return queue_parse_rcpt_fields(v, vlen, voff, r, why);
	}
	const char *sp = memchr(v, ' ', vlen);
	if (sp == NULL || !queue_dsn_ok(v, (size_t)(sp - v))) {
		*why = "bad DSN status in reason record";
		return false;
	}
	struct queue_rcpt *r = &env->rcpts[n];
	free(r->last_dsn);
	free(r->last_reason);
	r->last_dsn = xstrndup(v, (size_t)(sp - v));
	r->last_reason = xstrndup(sp + 1, vlen - (size_t)(sp + 1 - v));
	return true;
}

enum queue_read_result queue_read(int fd, struct queue_envelope *env,
    char *err, size_t errsize)
{
	struct stat st;
	struct queue_input in = { .fd = fd };
	const char *line, *why = NULL;
	size_t len = 0;
	off_t off = 0;
	int last_rank = -1;
	bool done = false;
	enum queue_line lr = QUEUE_LINE_OK;

	queue_envelope_free(env);
	if (fstat(fd, &st) < 0) {
		snprintf(err, errsize, "fstat: %s", strerror(errno));
		return QUEUE_READ_ERROR;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsize, "not a regular file");
		return QUEUE_READ_CORRUPT;
	}
	in.end = st.st_size;
	in.cap = QUEUE_MAX_RECORD + 2;
	in.buf = xmalloc(in.cap);

	/* Envelope: records in queue_record_order, up to and including D. */
	while (!done) {
		lr = queue_input_line(&in, &line, &len, &off);
		if (lr != QUEUE_LINE_OK) {
			why = lr == QUEUE_LINE_TOOLONG ? "record too long" :
			    "envelope ends before the D record";
			goto bad;
		}
		if (len == 0 || memchr(line, '\0', len) || memchr(line, '\r', len)) {
			why = "empty record or NUL or CR in a record";
			goto bad;
		}
		char letter = line[0];
		int rank = queue_record_rank(letter);
		if (rank < 0) {
			why = "unknown envelope record";
			goto bad;
		}
		if (last_rank < 0 && letter != 'V') {
			why = "first record is not the format version";
			goto bad;
		}
		bool repeats = letter == 'A' || letter == 'R';
		if (rank < last_rank || (rank == last_rank && !repeats)) {
			why = "envelope record out of order or repeated";
			goto bad;
		}
		/* Required records may not be skipped over. */
		for (int k = last_rank + 1; k < rank; k++) {
			if (strchr("VITFBWD", queue_record_order[k])) {
				why = "required envelope record missing";
				goto bad;
			}
		}
		last_rank = rank;
		if (letter == 'U') {
			if (len != 1) {
				why = "U record has a value";
				goto bad;
			}
		} else if (len < 2 || line[1] != ' ') {
			why = "record without a value";
			goto bad;
		}
		const char *v = len > 2 ? line + 2 : "";
		size_t vlen = len > 2 ? len - 2 : 0;
		if (!queue_parse_envelope_record(env, letter, v, vlen, off + 2,
		    &why))
			goto bad;
		done = letter == 'D';
	}
	env->content_offset = off + (off_t)len + 1;
	if (env->content_length > in.end - env->content_offset) {
		why = "content length goes beyond the end of the file";
		goto bad;
	}
	env->trailer_offset = env->content_offset + env->content_length;

	/* Trailer: X and Z records up to the end of the file. */
	queue_input_seek(&in, env->trailer_offset);
	for (;;) {
		lr = queue_input_line(&in, &line, &len, &off);
		if (lr == QUEUE_LINE_EOF)
			break;
		if (lr != QUEUE_LINE_OK) {
			why = lr == QUEUE_LINE_TOOLONG ? "trailer record too long" :
			    lr == QUEUE_LINE_PARTIAL ?
			    "trailer ends in a partial record" : NULL;
			goto bad;
		}
		if (len < 2 || line[1] != ' ' || memchr(line, '\0', len) ||
		    memchr(line, '\r', len)) {
			why = "bad trailer record";
			goto bad;
		}
		if (!queue_parse_trailer_record(env, line[0], line + 2, len - 2,
		    off + 2, &why))
			goto bad;
	}
	free(in.buf);
	return QUEUE_READ_OK;

bad:
	free(in.buf);
	if (lr == QUEUE_LINE_ERROR) {
		int e = errno;
		snprintf(err, errsize, "read: %s", strerror(e));
		queue_envelope_free(env);
		errno = e;
		return QUEUE_READ_ERROR;
	}
	if (why == NULL)
		why = "unreadable record";
	snprintf(err, errsize, "%s (at offset %lld)", why,
	    (long long)(lr == QUEUE_LINE_OK ? off : in.pos + (off_t)in.start));
	queue_envelope_free(env);
	return QUEUE_READ_CORRUPT;
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

bool queue_move(const char *queue_directory, const char *from_subdir,
    const char *to_subdir, const char *id, char *err, size_t errsize)
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
