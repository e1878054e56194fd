/*
 * local_target.c - splitting and classifying the targets of aliases and
 * .forward files (see local_target.h). Trusts nothing in the text: it
 * only cuts and copies, bounded by the text's own length.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local_target.h"
#include "mem.h"

/* A target quoted whole ("|cmd args") without its quotes, unescaped;
 * else a copy as it is. */
static char *unquote(const char *start, size_t len)
{
	if (len < 2 || start[0] != '"' || start[len - 1] != '"')
		return xstrndup(start, len);
	char *out = xmalloc(len);
	size_t o = 0;
	for (size_t i = 1; i + 1 < len; i++) {
		if (start[i] == '\\' && i + 2 < len)
			i++;
		out[o++] = start[i];
	}
	out[o] = '\0';
	/* A quoted address ("a b"@example.org) keeps its quotes. */
	if (out[0] != '|' && out[0] != '/' && strncasecmp(out, ":include:",
	    9) != 0) {
		free(out);
		return xstrndup(start, len);
	}
	return out;
}

static enum local_target_kind classify(const char *t, const char **value,
    bool *backslash)
{
	*backslash = false;
	if (t[0] == '|') {
		*value = t + 1;
		return LOCAL_TARGET_COMMAND;
	}
	if (t[0] == '/') {
		*value = t;
		return LOCAL_TARGET_FILE;
	}
	if (strncasecmp(t, ":include:", 9) == 0) {
		for (t += 9; *t == ' ' || *t == '\t'; t++)
			;
		*value = t;
		return LOCAL_TARGET_INCLUDE;
	}
	if (t[0] == '\\') {
		*backslash = true;
		t++;
	}
	*value = t;
	return LOCAL_TARGET_ADDRESS;
}

enum local_target_kind local_target_kind(const char *raw)
{
	const char *value;
	bool backslash;
	char *t = unquote(raw, strlen(raw));
	enum local_target_kind kind = classify(t, &value, &backslash);
	free(t);
	return kind;
}

size_t local_target_parse(const char *text, bool in_file,
    struct local_target **out)
{
	struct local_target *v = NULL;
	size_t n = 0;
	const char *p = text;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n' ||
		    *p == '\r')
			p++;
		if (in_file && *p == '#') {
			while (*p && *p != '\n')
				p++;
			continue;
		}
		const char *start = p;
		bool quoted = false;
		while (*p && (quoted || (*p != ',' && *p != '\n'))) {
			if (*p == '"')
				quoted = !quoted;
			else if (*p == '\\' && quoted && p[1])
				p++;
			p++;
		}
		const char *end = p;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (end > start + 1 && *start == '<' && end[-1] == '>') {
			start++;
			end--;
		}
		if (end == start)
			continue;
		char *t = unquote(start, (size_t)(end - start));
		const char *value;
		bool backslash;
		enum local_target_kind kind = classify(t, &value, &backslash);
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n].kind = kind;
		v[n].value = xstrdup(value);
		v[n].backslash = backslash;
		n++;
		free(t);
	}
	*out = v;
	return n;
}

void local_target_free(struct local_target *targets, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(targets[i].value);
	free(targets);
}
