/*
 * mem.h - allocation wrappers.
 *
 * Every allocation in postern goes through these: on failure they log a
 * fatal error and end the process, so protocol code never checks for NULL.
 */
#ifndef POSTERN_MEM_H
#define POSTERN_MEM_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A large buffer a process takes and gives back over and over (a read
 * buffer per session, a queue file's per message): *spare keeps the last
 * one given back, so the next take costs no malloc() and the give no
 * free() (a free() of 64 KiB or more consolidates the heap's bins and
 * checks whether to trim it). Every buffer given to one spare must have
 * the size its takes ask for; a second one given while the spare is full
 * is freed.
 */
void *xmalloc_spare(void **spare, size_t size);
void free_to_spare(void **spare, void *p);

/* Free a NULL-terminated array of strings and the array itself. */
void xfree_strv(char **strv);

#endif
