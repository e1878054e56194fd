/*
 * dkim_tags.c - the DKIM tag-list parser (RFC 6376 3.2). Input from DNS
 * and from message headers, untrusted: bounded by its length and by
 * DKIM_MAX_TAGS.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_tags.h"
#include "mem.h"

/* WSP and the CR LF of folding (FWS, RFC 5322 3.2.2). */
static bool is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void dkim_tags_free(struct dkim_tags *t)
{
	for (size_t i = 0; i < t->count; i++) {
		free(t->tags[i].name);
		free(t->tags[i].value);
	}
	free(t->tags);
	t->tags = NULL;
	t->count = 0;
}

bool dkim_tags_parse(const char *s, size_t len, struct dkim_tags *out,
    char *err, size_t errsize)
{
	size_t i = 0;

	out->tags = NULL;
	out->count = 0;
	while (i < len) {
		size_t end = i;
		while (end < len && s[end] != ';')
			end++;
		/* [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS] */
		size_t a = i, b = end;
		while (a < b && is_fws(s[a]))
			a++;
		while (b > a && is_fws(s[b - 1]))
			b--;
		if (a == b) {
			/* Only a trailing ";" may leave an empty spec. */
			if (end < len) {
				snprintf(err, errsize, "empty tag");
				goto bad;
			}
			break;
		}
		size_t n = a;
		if (!isalpha((unsigned char)s[n])) {
			snprintf(err, errsize, "bad tag name");
			goto bad;
		}
		while (n < b && (isalnum((unsigned char)s[n]) || s[n] == '_'))
			n++;
		size_t name_end = n;
		while (n < b && is_fws(s[n]))
			n++;
		if (n >= b || s[n] != '=') {
			snprintf(err, errsize, "tag without \"=\"");
			goto bad;
		}
		n++;
		while (n < b && is_fws(s[n]))
			n++;
		/* tag-value: VALCHARs (%x21-3A, %x3C-7E) and inner FWS. */
		for (size_t k = n; k < b; k++) {
			unsigned char c = (unsigned char)s[k];
			if (!is_fws((char)c) && (c < 0x21 || c > 0x7e)) {
				snprintf(err, errsize, "bad character in a "
				    "tag value");
				goto bad;
			}
		}
		char *name = xstrndup(s + a, name_end - a);
		if (dkim_tags_get(out, name) != NULL ||
		    out->count == DKIM_MAX_TAGS) {
			snprintf(err, errsize, out->count == DKIM_MAX_TAGS ?
			    "too many tags" : "tag \"%.20s\" given twice",
			    name);
			free(name);
			goto bad;
		}
		out->tags = xreallocarray(out->tags, out->count + 1,
		    sizeof(*out->tags));
		out->tags[out->count].name = name;
		out->tags[out->count].value = xstrndup(s + n, b - n);
		out->count++;
		i = end + 1;
	}
	return true;
bad:
	dkim_tags_free(out);
	return false;
}

const char *dkim_tags_get(const struct dkim_tags *t, const char *name)
{
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->tags[i].name, name) == 0)
			return t->tags[i].value;
	return NULL;
}

char *dkim_tags_strip_wsp(const char *value)
{
	char *out = xstrdup(value), *w = out;
	for (const char *r = value; *r; r++)
		if (!is_fws(*r))
			*w++ = *r;
	*w = '\0';
	return out;
}
