/*
 * qmgr_util.c - small helpers for qmgr: a set of lowercased strings (for
 * duplicate elimination during alias expansion), a string hash, RFC 5322
 * dates and moves between queue directories. Trusts its callers.
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

void qset_init(struct qset *s)
{
	s->cap = 64;
	s->count = 0;
	s->slots = xcalloc(s->cap, sizeof(*s->slots));
}

void qset_free(struct qset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i]);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

static size_t qset_find(char **slots, size_t cap, const char *key)
{
	size_t i = qmgr_hash(key) & (cap - 1);
	while (slots[i] != NULL && strcasecmp(slots[i], key) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

bool qset_has(const struct qset *s, const char *key)
{
	return s->slots[qset_find(s->slots, s->cap, key)] != NULL;
}

bool qset_add(struct qset *s, const char *key)
{
	if ((s->count + 1) * 2 > s->cap) {
		size_t ncap = s->cap * 2;
		char **n = xcalloc(ncap, sizeof(*n));
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i] != NULL)
				n[qset_find(n, ncap, s->slots[i])] = s->slots[i];
		free(s->slots);
		s->slots = n;
		s->cap = ncap;
	}
	size_t i = qset_find(s->slots, s->cap, key);
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

/*
 * Why qmgr's moves need no fsync of the directory each (queue_move() does
 * one): fsync only matters for a power cut, since the page cache survives
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
bool qmgr_move(const char *from_subdir, const char *to_subdir,
    const char *id, char *err, size_t errsize)
{
	char from[4096], to[4096];

	if (!queue_id_valid(id)) {
		snprintf(err, errsize, "bad queue ID");
		errno = EINVAL;
		return false;
	}
	queue_path(from, sizeof(from), cfg.queue_directory, from_subdir, id);
	queue_path(to, sizeof(to), cfg.queue_directory, to_subdir, id);
	if (from[0] == '\0' || to[0] == '\0') {
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
	return true;
}
