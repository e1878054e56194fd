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

/* Free a NULL-terminated array of strings and the array itself. */
void xfree_strv(char **strv);

#endif
