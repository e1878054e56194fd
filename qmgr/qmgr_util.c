/*
 * qmgr_util.c - small helpers for qmgr: a set of lowercased strings (for
 * duplicate elimination during alias expansion), a string hash, RFC 5322
 * dates. Trusts its callers.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "mem.h"
#include "qmgr.h"
#include "rfc5322.h"

unsigned long qmgr_hash(const char *s)
{
	/* FNV-1a over the lowercased bytes: keys compare case-insensitively. */
	unsigned long h = 2166136261UL;
	for (; *s; s++) {
		h ^= (unsigned char)tolower((unsigned char)*s);
		h *= 16777619UL;
	}
	return h;
}

void qmgr_set_init(struct qset *s)
{
	s->cap = 64;
	s->count = 0;
	s->slots = xcalloc(s->cap, sizeof(*s->slots));
}

void qmgr_set_free(struct qset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i]);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

static size_t qmgr_set_find(char **slots, size_t cap, const char *key)
{
	size_t i = qmgr_hash(key) & (cap - 1);
	while (slots[i] != NULL && strcasecmp(slots[i], key) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

bool qmgr_set_has(const struct qset *s, const char *key)
{
	return s->slots[qmgr_set_find(s->slots, s->cap, key)] != NULL;
}

bool qmgr_set_add(struct qset *s, const char *key)
{
	if ((s->count + 1) * 2 > s->cap) {
		size_t ncap = s->cap * 2;
		char **n = xcalloc(ncap, sizeof(*n));
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i] != NULL)
				n[qmgr_set_find(n, ncap, s->slots[i])] = s->slots[i];
		free(s->slots);
		s->slots = n;
		s->cap = ncap;
	}
	size_t i = qmgr_set_find(s->slots, s->cap, key);
	if (s->slots[i] != NULL)
		return false;
	s->slots[i] = xstrdup(key);
	s->count++;
	return true;
}

void qmgr_rfc5322_date(time_t t, char *out, size_t size)
{
	rfc5322_date(t, out, size);
}
