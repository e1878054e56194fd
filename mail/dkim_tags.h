/*
 * dkim_tags.h - DKIM tag=value lists (RFC 6376 3.2): the syntax of a
 * DKIM-Signature field's value and of a key record in DNS. Both come
 * from strangers; the parser bounds the number of tags and refuses what
 * the grammar does not allow.
 */
#ifndef POSTERN_DKIM_TAGS_H
#define POSTERN_DKIM_TAGS_H

#include <stdbool.h>
#include <stddef.h>

#define DKIM_MAX_TAGS 64

struct dkim_tag {
	char *name;
	char *value;	/* leading and trailing white space removed */
};

struct dkim_tags {
	struct dkim_tag *tags;
	size_t count;
};

/*
 * Parse s (len bytes): tag-spec *(";" tag-spec) [";"]. false with err on
 * a syntax error, a repeated tag (3.2: "the behavior is undefined": we
 * refuse it) or more than DKIM_MAX_TAGS tags.
 */
bool dkim_tags_parse(const char *s, size_t len, struct dkim_tags *out,
    char *err, size_t errsize);
/* The value of name (case-sensitive, 3.2), or NULL. */
const char *dkim_tags_get(const struct dkim_tags *t, const char *name);
void dkim_tags_free(struct dkim_tags *t);
/* A copy of value without any white space (b=, bh=, p= base64 values);
 * malloc'd. */
char *dkim_tags_strip_wsp(const char *value);

#endif
