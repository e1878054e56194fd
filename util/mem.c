/*
 * mem.c - allocation wrappers: failure is fatal, logged once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"

static void out_of_memory(size_t size)
{
	log_fatal("out of memory allocating %zu bytes", size);
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		out_of_memory(size);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (p == NULL)
		out_of_memory(count * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		out_of_memory(size);
	return p;
}

void *xreallocarray(void *ptr, size_t count, size_t size)
{
	void *p = reallocarray(ptr, count ? count : 1, size ? size : 1);
	if (p == NULL) {
		if (errno == ENOMEM && size && count > (size_t)-1 / size)
			log_panic("allocation size overflow: %zu * %zu", count, size);
		out_of_memory(count * size);
	}
	return p;
}

void *xmalloc_spare(void **spare, size_t size)
{
	void *p = *spare;
	*spare = NULL;
	return p != NULL ? p : xmalloc(size);
}

void free_to_spare(void **spare, void *p)
{
	if (*spare == NULL)
		*spare = p;
	else
		free(p);
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		out_of_memory(strlen(s) + 1);
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		out_of_memory(n + 1);
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		out_of_memory(strlen(fmt));
	va_end(ap);
	return p;
}

void xfree_strv(char **strv)
{
	if (strv == NULL)
		return;
	for (char **p = strv; *p; p++)
		free(*p);
	free(strv);
}
