/*
 * authres.c - writing the Authentication-Results header field (RFC 8601
 * 2.2) and recognizing one that claims our authserv-id (5).
 *
 * Trust: the values come from strangers (MAIL FROM, d= of a signature,
 * the From: domain) although they have passed their own parsers; each is
 * written as a token, an address or a quoted-string, and comments lose
 * what would end them, so that no value can end the field or add one.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "authres.h"

void authres_start(struct str *h, const char *authserv_id)
{
	str_appendf(h, "Authentication-Results: %s", authserv_id);
}

void authres_method(struct str *h, const char *method, const char *result,
    const char *comment)
{
	str_appendf(h, ";\r\n\t%s=%s", method, result);
	if (comment == NULL || *comment == '\0')
		return;
	str_append_cstr(h, " (");
	for (const char *p = comment; *p; p++) {
		unsigned char c = (unsigned char)*p;
		/* RFC 5322 3.2.2 ctext: no parentheses, backslash or
		 * controls; 8-bit text is dropped too (an ASCII header). */
		if (c < 0x20 || c >= 0x7f || c == '(' || c == ')' ||
		    c == '\\')
			c = ' ';
		str_append_char(h, (char)c);
	}
	str_append_char(h, ')');
}

/* atext (RFC 5322 3.2.3) and the dot: a token or a dot-atom. */
static bool is_atext(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

void authres_prop(struct str *h, const char *name, const char *value)
{
	bool plain = *value != '\0';
	size_t ats = 0;
	for (const char *p = value; *p && plain; p++) {
		if (*p == '@')
			ats++;
		else if (!is_atext((unsigned char)*p))
			plain = false;
	}
	/* RFC 8601 2.2 pvalue: a value, or [local-part] "@" domain-name. */
	if (plain && ats <= 1 && strchr(value, '=') == NULL) {
		str_appendf(h, " %s=%s", name, value);
		return;
	}
	str_appendf(h, " %s=\"", name);
	for (const char *p = value; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c >= 0x7f)
			continue;
		if (c == '"' || c == '\\')
			str_append_char(h, '\\');
		str_append_char(h, (char)c);
	}
	str_append_char(h, '"');
}

void authres_end(struct str *h, size_t nmethods)
{
	if (nmethods == 0)
		str_append_cstr(h, "; none");
	str_append_cstr(h, "\r\n");
}

bool authres_claims_id(const char *v, size_t len, const char *authserv_id)
{
	size_t i = 0;
	/* CFWS before the id: white space and comments. */
	for (;;) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' ||
		    v[i] == '\r' || v[i] == '\n'))
			i++;
		if (i >= len || v[i] != '(')
			break;
		int depth = 0;
		for (; i < len; i++) {
			if (v[i] == '\\')
				i++;
			else if (v[i] == '(')
				depth++;
			else if (v[i] == ')' && --depth == 0) {
				i++;
				break;
			}
		}
	}
	size_t start = i;
	bool quoted = i < len && v[i] == '"';
	if (quoted) {
		start = ++i;
		while (i < len && v[i] != '"')
			i++;
	} else {
		while (i < len && v[i] != ';' && v[i] != ' ' && v[i] != '\t' &&
		    v[i] != '\r' && v[i] != '\n' && v[i] != '(')
			i++;
	}
	size_t n = i - start;
	return n == strlen(authserv_id) && n > 0 &&
	    strncasecmp(v + start, authserv_id, n) == 0;
}
