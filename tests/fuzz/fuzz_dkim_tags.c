/*
 * fuzz_dkim_tags.c - libFuzzer harness for the DKIM tag-list parser
 * (mail/dkim_tags.c): DKIM-Signature values and key records, from any
 * sender and any DNS zone.
 *
 * Besides crashes and sanitizer reports it checks that a list that
 * parses has at most DKIM_MAX_TAGS tags, distinct names of [A-Za-z0-9_]
 * starting with a letter, values without white space at either end or
 * control characters, and that printing it as "name=value;" again
 * parses to the same tags.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_tags.h"
#include "str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_tags t, again;
	char err[128];

	if (!dkim_tags_parse((const char *)data, size, &t, err, sizeof(err)))
		return 0;
	if (t.count > DKIM_MAX_TAGS)
		abort();
	struct str s;
	str_init(&s, STR_NO_MAX);
	for (size_t i = 0; i < t.count; i++) {
		const char *n = t.tags[i].name, *v = t.tags[i].value;
		if (!isalpha((unsigned char)n[0]))
			abort();
		for (const char *p = n; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '_')
				abort();
		size_t vl = strlen(v);
		if (vl > 0 && (isspace((unsigned char)v[0]) ||
		    isspace((unsigned char)v[vl - 1])))
			abort();
		for (size_t j = i + 1; j < t.count; j++)
			if (strcmp(n, t.tags[j].name) == 0)
				abort();
		str_appendf(&s, "%s=%s;", n, v);
	}
	if (!dkim_tags_parse(s.data ? s.data : "", s.len, &again, err,
	    sizeof(err)) || again.count != t.count)
		abort();
	for (size_t i = 0; i < t.count; i++)
		if (strcmp(t.tags[i].name, again.tags[i].name) != 0 ||
		    strcmp(t.tags[i].value, again.tags[i].value) != 0)
			abort();
	str_free(&s);
	dkim_tags_free(&t);
	dkim_tags_free(&again);
	return 0;
}
