/*
 * requiretls.c - the TLS-Required header field of RFC 8689 5 (see
 * requiretls.h). The header section is the sender's: only compared,
 * within len, never copied beyond a few octets.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "requiretls.h"

bool requiretls_header_says_no(const char *buf, size_t len)
{
	static const char name[] = "TLS-Required:";
	size_t nlen = sizeof(name) - 1;
	size_t i = 0;
	while (i < len) {
		const char *line = buf + i;
		const char *end = memchr(line, '\n', len - i);
		size_t llen = end ? (size_t)(end - line) : len - i;
		/* An empty line ends the header section (RFC 5322 2.1). */
		if (llen == 0 || (llen == 1 && line[0] == '\r'))
			return false;
		if (llen >= nlen && strncasecmp(line, name, nlen) == 0) {
			/* The value, unfolded: only white space and "No". */
			char word[8];
			size_t w = 0;
			bool ok = true;
			size_t j = i + nlen;
			for (;;) {
				for (; j < len && buf[j] != '\n'; j++) {
					char c = buf[j];
					if (c == ' ' || c == '\t' || c == '\r')
						continue;
					if (w + 1 >= sizeof(word)) {
						ok = false;
						break;
					}
					word[w++] = c;
				}
				/* Folded onto the next line? */
				if (j + 1 < len && (buf[j + 1] == ' ' ||
				    buf[j + 1] == '\t')) {
					j++;
					continue;
				}
				break;
			}
			word[w] = '\0';
			return ok && strcasecmp(word, "no") == 0;
		}
		if (end == NULL)
			return false;
		i += llen + 1;
	}
	return false;
}

