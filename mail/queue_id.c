/*
 * queue_id.c - queue IDs and the paths of queue files.
 *
 * Trust: IDs come from queue_id_new() or from outside (a command line, a
 * directory entry); queue_id_valid() is what every caller checks before an
 * ID becomes part of a path, so no path built here leaves its directory.
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

/*
 * The digits of new IDs: letters and digits without the vowels, in ASCII
 * order, as Postfix's long queue IDs, so that the log tools written for
 * those (logwatch's postfix script with long queue IDs) take ours, and no
 * ID spells a word. 52^6 seconds last until the year 2596, 52^4 holds a
 * microsecond count and Linux's largest process ID (4194304).
 */
static const char queue_digits[] =
    "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";
#define QUEUE_ID_BASE (sizeof(queue_digits) - 1)

/* ---- IDs and paths ---- */

static void queue_id_encode(char *out, unsigned long long v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = queue_digits[v % QUEUE_ID_BASE];
		v /= QUEUE_ID_BASE;
	}
}

/*
 * 6 characters of seconds, 4 of microseconds, 4 of the process ID: fixed
 * width base 52 in ASCII order, so IDs sort by time. Within a process the
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
	queue_id_encode(id, (unsigned long long)sec, 6);
	queue_id_encode(id + 6, (unsigned long long)usec, 4);
	queue_id_encode(id + 10, (unsigned long long)log_pid(), 4);
	id[QUEUE_ID_LEN] = '\0';
}

/* Any letter or digit: IDs made before the vowels were left out (files
 * still queued from an older postern) stay valid. */
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

/* Append n bytes of p at *at within out; false when they do not fit. */
static bool path_put(char *out, size_t outsize, size_t *at, const char *p,
    size_t n)
{
	if (n >= outsize - *at)
		return false;
	memcpy(out + *at, p, n);
	*at += n;
	return true;
}

/* By memcpy, not snprintf: qmgr makes a few of these per message. */
void queue_path(char *out, size_t outsize, const char *queue_directory,
    const char *subdir, const char *id)
{
	size_t at = 0;
	bool deferred = strcmp(subdir, QUEUE_DEFERRED) == 0;
	char hash[2] = { deferred ? queue_hash_digit(id) : '0', '/' };
	bool ok = outsize > 0 &&
	    path_put(out, outsize, &at, queue_directory,
	    strlen(queue_directory)) &&
	    path_put(out, outsize, &at, "/", 1) &&
	    path_put(out, outsize, &at, subdir, strlen(subdir)) &&
	    path_put(out, outsize, &at, "/", 1) &&
	    (!deferred || path_put(out, outsize, &at, hash, sizeof(hash))) &&
	    path_put(out, outsize, &at, id, strlen(id));
	/* A truncated path must not name some other file: make it unusable. */
	if (outsize > 0)
		out[ok ? at : 0] = '\0';
}

/* The directory a queue file lives in ("deferred/7" for deferred/). */
bool queue_dir_of(char *out, size_t outsize, const char *queue_directory,
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
