/*
 * queue_format.h - what the queue_*.c files share about the record format
 * (queue.h describes it) and about each other. Private to mail/queue_*.c:
 * the rest of the suite uses queue.h only.
 */
#ifndef POSTERN_QUEUE_FORMAT_H
#define POSTERN_QUEUE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "queue.h"

/* Longest record line the reader accepts (a record is never near this). */
#define QUEUE_MAX_RECORD (64 * 1024)
#define QUEUE_LENGTH_DIGITS 20
/* The D value until commit: QUEUE_LENGTH_DIGITS characters, not digits. */
#define QUEUE_LENGTH_UNSET "--------------------"

/* Record values of K and B, indexed by enum queue_kind / queue_body
 * (queue_envelope.c). */
extern const char *const queue_kind_names[];
extern const char *const queue_body_names[];

/* ---- field rules shared by writer and reader (queue_envelope.c) ---- */

bool queue_has_line_end(const char *s);
/* An attribute name: [A-Za-z0-9_-]+. */
bool queue_attr_name_ok(const char *s, size_t len);
/* An ORCPT is "type;address" and is one space-free field of R and X. */
bool queue_orcpt_ok(const char *s);
/* RFC 3463 status code: class "." subject "." detail, 1-3 digits each. */
bool queue_dsn_ok(const char *s, size_t len);
bool queue_status_ok(char c);
/* NOTIFY bits as the R/X field: "-" or letters of N S F D. */
void queue_notify_format(char out[8], unsigned notify);
/* Append a fresh pending recipient to env (no address yet). */
struct queue_rcpt *queue_new_rcpt(struct queue_envelope *env);

/* ---- between the files ---- */

/* The directory a queue file lives in ("deferred/7" for deferred/);
 * false if the path does not fit (queue_id.c). */
bool queue_dir_of(char *out, size_t outsize, const char *queue_directory,
    const char *subdir, const char *id);
/* pwrite all of it; false with errno (EIO for a short write) (queue_update.c). */
bool queue_pwrite_all(int fd, const void *p, size_t len, off_t off);
/*
 * Rename a recycled file to dirfd/tmpname and open it for writing; -1
 * when there is none to take (queue_recycle.c). *old_size is its length
 * before, which the commit cuts it back from.
 */
int queue_recycle_claim(const char *queue_directory, int dirfd,
    const char *tmpname, off_t *old_size);

#endif
