/*
 * addr.c - strict parser for RFC 5321 4.1.2 paths and mailboxes, domain
 * validation, and RFC 3461 xtext.
 *
 * Trusts nothing: every input is client text. The parser walks the
 * grammar of RFC 5321 4.1.2 (with the RFC 6531 3.3 UTF-8 extensions when
 * ADDR_ALLOW_UTF8 is given) and produces a canonical "local@domain" form:
 * a quoted local part that does not need its quotes loses them, so that
 * "\"alice\""@example.org and alice@example.org are one address for
 * lookups (RFC 5321 4.1.2: the two are equivalent).
 *
 * Length: RFC 5321 4.5.3.1 gives 64 octets for a local part, but SRS and
 * VERP addresses routinely exceed it and the same section asks servers to
 * avoid such limits where possible; only the path limit (256) and the
 * domain limits (255, labels 63) are enforced.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "mem.h"
#include "str.h"

/* atext of RFC 5322 3.2.3, as RFC 5321 4.1.2 uses it for Atom. */
static bool is_atext(unsigned char c)
{
	if (isalnum(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_alnum_ascii(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/*
 * Length of the well-formed UTF-8 sequence (2 to 4 bytes) of a non-ASCII
 * character at p, or 0: overlong forms, surrogates and code points past
 * U+10FFFF are refused (RFC 3629 4).
 */
static size_t utf8_seq_len(const unsigned char *p)
{
	unsigned char c = p[0];
	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = 0x80, hi = 0xbf;
		if (c == 0xe0)
			lo = 0xa0;	/* overlong */
		if (c == 0xed)
			hi = 0x9f;	/* surrogates */
		if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = 0x80, hi = 0xbf;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
		if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

/* ---- domains ---- */

/*
 * Scan a Domain (RFC 5321 4.1.2: sub-domain *("." sub-domain), sub-domain
 * = Let-dig [Ldh-str]; RFC 6531 3.3 adds U-labels) starting at p. Returns
 * the number of bytes that form the domain, or 0 with *why.
 */
static size_t scan_domain(const char *text, bool allow_utf8, bool *has_utf8,
    const char **why)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0;

	for (;;) {
		size_t label_start = i;
		bool label_utf8 = false;
		while (p[i] != '\0') {
			if (is_alnum_ascii(p[i]) || p[i] == '-') {
				i++;
			} else if (p[i] >= 0x80) {
				size_t n = allow_utf8 ? utf8_seq_len(p + i) : 0;
				if (n == 0) {
					*why = allow_utf8 ?
					    "malformed UTF-8 in domain" :
					    "non-ASCII domain without SMTPUTF8";
					return 0;
				}
				label_utf8 = true;
				i += n;
			} else {
				break;
			}
		}
		size_t len = i - label_start;
		if (len == 0) {
			*why = "empty label in domain";
			return 0;
		}
		if (p[label_start] == '-' || p[i - 1] == '-') {
			*why = "domain label begins or ends with a hyphen";
			return 0;
		}
		/* An A-label is at most 63 octets (RFC 1035 2.3.4); a U-label
		 * may take more octets in UTF-8 but the domain limit holds. */
		if (len > 63 && !label_utf8) {
			*why = "domain label longer than 63 octets";
			return 0;
		}
		if (label_utf8)
			*has_utf8 = true;
		if (p[i] != '.')
			break;
		i++;
	}
	if (i > ADDR_MAX_DOMAIN) {
		*why = "domain longer than 255 octets";
		return 0;
	}
	return i;
}

bool addr_domain_valid(const char *domain, bool allow_utf8)
{
	bool has_utf8 = false;
	const char *why;
	size_t n = scan_domain(domain, allow_utf8, &has_utf8, &why);
	return n > 0 && domain[n] == '\0';
}

/* Snum = 1*3DIGIT, value 0 through 255 (RFC 5321 4.1.3). */
static bool ipv4_literal_valid(const char *s, size_t len)
{
	int parts = 0;
	size_t i = 0;
	while (parts < 4) {
		size_t start = i;
		unsigned value = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			value = value * 10 + (unsigned)(s[i++] - '0');
		if (i == start || value > 255)
			return false;
		if (i < len && s[i] >= '0' && s[i] <= '9')
			return false;	/* four or more digits */
		parts++;
		if (parts < 4) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == len;
}

/*
 * Scan an address-literal "[...]" (RFC 5321 4.1.3) at text. Only IPv4 and
 * IPv6 literals are accepted: no General-address-literal tag has ever been
 * standardized, and mail for one could never be delivered.
 */
static size_t scan_address_literal(const char *text, const char **why)
{
	const char *close = strchr(text, ']');
	if (text[0] != '[' || close == NULL) {
		*why = "unterminated address literal";
		return 0;
	}
	const char *inner = text + 1;
	size_t len = (size_t)(close - inner);
	if (len == 0 || len > 64) {
		*why = "bad address literal";
		return 0;
	}
	if (len > 5 && strncasecmp(inner, "IPv6:", 5) == 0) {
		char buf[65];
		struct in6_addr a6;
		memcpy(buf, inner + 5, len - 5);
		buf[len - 5] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1) {
			*why = "bad IPv6 address literal";
			return 0;
		}
	} else if (!ipv4_literal_valid(inner, len)) {
		*why = "bad address literal";
		return 0;
	}
	return len + 2;
}

/* ---- local parts ---- */

/*
 * Scan a Local-part at text (Dot-string or Quoted-string). The bare
 * content (quotes and quoting backslashes removed) is appended to bare.
 */
static size_t scan_local(const char *text, bool allow_utf8, bool *has_utf8,
    struct str *bare, const char **why)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0;

	if (p[0] == '"') {
		i = 1;
		for (;;) {
			unsigned char c = p[i];
			if (c == '"')
				break;
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (p[i + 1] < 32 || p[i + 1] > 126) {
					*why = "bad quoted pair in local part";
					return 0;
				}
				str_append_char(bare, (char)p[i + 1]);
				i += 2;
			} else if (c >= 32 && c <= 126) {
				str_append_char(bare, (char)c);
				i++;
			} else if (c >= 0x80 && allow_utf8 &&
			    utf8_seq_len(p + i) > 0) {
				size_t n = utf8_seq_len(p + i);
				str_append(bare, p + i, n);
				*has_utf8 = true;
				i += n;
			} else {
				*why = c == '\0' ? "unterminated quoted local part" :
				    c >= 0x80 && !allow_utf8 ?
				    "non-ASCII local part without SMTPUTF8" :
				    "bad character in quoted local part";
				return 0;
			}
		}
		return i + 1;
	}

	bool atom_empty = true;
	for (;;) {
		unsigned char c = p[i];
		if (c < 0x80 && is_atext(c)) {
			str_append_char(bare, (char)c);
			atom_empty = false;
			i++;
		} else if (c >= 0x80) {
			size_t n = allow_utf8 ? utf8_seq_len(p + i) : 0;
			if (n == 0) {
				*why = allow_utf8 ?
				    "malformed UTF-8 in local part" :
				    "non-ASCII local part without SMTPUTF8";
				return 0;
			}
			str_append(bare, p + i, n);
			*has_utf8 = true;
			atom_empty = false;
			i += n;
		} else if (c == '.') {
			if (atom_empty) {
				*why = "empty atom in local part";
				return 0;
			}
			str_append_char(bare, '.');
			atom_empty = true;
			i++;
		} else {
			break;
		}
	}
	if (atom_empty) {
		*why = i == 0 ? "empty local part" : "local part ends with a dot";
		return 0;
	}
	return i;
}

/* Does the bare local part read as a Dot-string (so it needs no quotes)? */
static bool is_dot_string(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (c < 0x80 && !is_atext(c)) {
			return false;
		}
	}
	return true;
}

/* The canonical, minimally quoted form of a bare local part. */
static void append_canonical_local(struct str *out, const struct str *bare)
{
	const char *s = str_cstr(bare);
	if (is_dot_string(s, bare->len)) {
		str_append(out, s, bare->len);
		return;
	}
	str_append_char(out, '"');
	for (size_t i = 0; i < bare->len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			str_append_char(out, '\\');
		str_append_char(out, s[i]);
	}
	str_append_char(out, '"');
}

/* ---- mailboxes and paths ---- */

static void addr_clear(struct addr *a)
{
	memset(a, 0, sizeof(*a));
}

/*
 * Parse Mailbox = Local-part "@" ( Domain / address-literal ) at text.
 * Returns bytes used or 0 with *why; fills out on success.
 */
static size_t scan_mailbox(const char *text, unsigned flags, struct addr *out,
    const char **why)
{
	bool allow_utf8 = (flags & ADDR_ALLOW_UTF8) != 0;
	bool has_utf8 = false;
	struct str bare;
	size_t i, n;

	str_init(&bare, ADDR_MAX_PATH * 2);
	n = scan_local(text, allow_utf8, &has_utf8, &bare, why);
	if (n == 0)
		goto fail;
	i = n;
	if (text[i] != '@' && (flags & ADDR_ALLOW_LOCAL_ONLY) &&
	    (text[i] == '\0' || text[i] == '>' || text[i] == ' ')) {
		/* A local user's "bob", qualified by the caller. */
		struct str local;
		str_init(&local, STR_NO_MAX);
		append_canonical_local(&local, &bare);
		addr_clear(out);
		out->address = str_steal(&local);
		out->local = xstrndup(text, i);
		out->has_utf8 = has_utf8;
		str_free(&bare);
		return i;
	}
	if (text[i] != '@') {
		*why = text[i] == '\0' || text[i] == '>' ?
		    "no domain in address" : "bad character in local part";
		goto fail;
	}
	i++;
	size_t dstart = i;
	bool literal = text[i] == '[';
	if (literal)
		n = scan_address_literal(text + i, why);
	else
		n = scan_domain(text + i, allow_utf8, &has_utf8, why);
	if (n == 0)
		goto fail;
	i += n;

	struct str canon;
	str_init(&canon, STR_NO_MAX);
	append_canonical_local(&canon, &bare);
	str_append_char(&canon, '@');
	str_append(&canon, text + dstart, n);
	if (canon.len > ADDR_MAX_PATH - 2) {
		*why = "address longer than 256 octets";
		str_free(&canon);
		goto fail;
	}
	addr_clear(out);
	out->address = str_steal(&canon);
	out->local = xstrndup(text, dstart - 1);
	out->domain = xstrndup(text + dstart, n);
	out->has_utf8 = has_utf8;
	out->domain_is_literal = literal;
	str_free(&bare);
	return i;
fail:
	str_free(&bare);
	return 0;
}

/* A-d-l = At-domain *( "," At-domain ) ":" -- accepted and dropped. */
static size_t scan_source_route(const char *text, bool allow_utf8,
    const char **why)
{
	size_t i = 0;
	bool has_utf8 = false;
	for (;;) {
		if (text[i] != '@') {
			*why = "bad source route";
			return 0;
		}
		i++;
		size_t n = text[i] == '[' ? scan_address_literal(text + i, why) :
		    scan_domain(text + i, allow_utf8, &has_utf8, why);
		if (n == 0)
			return 0;
		i += n;
		if (text[i] == ':')
			return i + 1;
		if (text[i] != ',') {
			*why = "bad source route";
			return 0;
		}
		i++;
	}
}

bool addr_parse_path(const char *text, unsigned flags, struct addr *out,
    const char **end, const char **why)
{
	const char *p = text;
	bool bracketed = *p == '<';

	addr_clear(out);
	if (!bracketed && !(flags & ADDR_ALLOW_NO_BRACKETS)) {
		*why = "address must be enclosed in <>";
		return false;
	}
	if (bracketed)
		p++;
	if (bracketed && *p == '>') {
		if (!(flags & ADDR_ALLOW_NULL)) {
			*why = "null address not allowed here";
			return false;
		}
		out->address = xstrdup("");
		out->local = xstrdup("");
		out->is_null = true;
		*end = p + 1;
		return true;
	}
	if ((flags & ADDR_ALLOW_POSTMASTER) &&
	    strncasecmp(p, "postmaster", 10) == 0 &&
	    (bracketed ? p[10] == '>' : (p[10] == '\0' || p[10] == ' '))) {
		/* RFC 5321 4.1.1.3: "<Postmaster>" with no domain. */
		out->address = xstrdup("postmaster");
		out->local = xstrndup(p, 10);
		*end = p + 10 + (bracketed ? 1 : 0);
		return true;
	}
	if (bracketed && *p == '@') {
		size_t n = scan_source_route(p, (flags & ADDR_ALLOW_UTF8) != 0,
		    why);
		if (n == 0)
			return false;
		p += n;
	}
	size_t n = scan_mailbox(p, flags, out, why);
	if (n == 0)
		return false;
	p += n;
	if (bracketed) {
		if (*p != '>') {
			*why = "bad character after address";
			addr_free(out);
			return false;
		}
		p++;
	} else if (*p != '\0' && *p != ' ') {
		*why = "bad character after address";
		addr_free(out);
		return false;
	}
	*end = p;
	return true;
}

bool addr_parse_mailbox(const char *text, unsigned flags, struct addr *out,
    const char **why)
{
	addr_clear(out);
	if ((flags & ADDR_ALLOW_POSTMASTER) &&
	    strcasecmp(text, "postmaster") == 0) {
		out->address = xstrdup("postmaster");
		out->local = xstrdup(text);
		return true;
	}
	size_t n = scan_mailbox(text, flags, out, why);
	if (n == 0)
		return false;
	if (text[n] != '\0') {
		*why = "bad character after address";
		addr_free(out);
		return false;
	}
	return true;
}

void addr_free(struct addr *a)
{
	free(a->address);
	free(a->local);
	free(a->domain);
	addr_clear(a);
}

const char *addr_domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at ? at + 1 : NULL;
}

char *addr_domain_lower(const char *address)
{
	const char *d = addr_domain_of(address);
	if (d == NULL)
		return NULL;
	char *copy = xstrdup(d);
	for (char *p = copy; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return copy;
}

/* ---- xtext (RFC 3461 4) ---- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;	/* tolerated; RFC 3461 says upper */
	return -1;
}

/*
 * xtext = *( xchar / hexchar ); xchar is "!" to "~" except "+" and "=";
 * hexchar is "+" and two hex digits. What it encodes is US-ASCII (RFC
 * 3461 4: ENVID and rfc822 ORCPT values), so a decoded control byte (NUL,
 * CR, LF...) or 8-bit byte is refused: decoded values end up in queue
 * records and logs.
 */
char *addr_xtext_decode(const char *text)
{
	struct str out;
	str_init(&out, STR_NO_MAX);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		unsigned char c = *p;
		if (c == '+') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = (unsigned char)(hi * 16 + lo);
			if (c < 0x20 || c > 0x7e)
				goto bad;
			p += 2;
		} else if (c < '!' || c > '~' || c == '=') {
			goto bad;
		}
		str_append_char(&out, (char)c);
	}
	return str_steal(&out);
bad:
	str_free(&out);
	return NULL;
}

char *addr_xtext_encode(const char *text)
{
	struct str out;
	str_init(&out, STR_NO_MAX);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p < '!' || *p > '~' || *p == '+' || *p == '=')
			str_appendf(&out, "+%02X", *p);
		else
			str_append_char(&out, (char)*p);
	}
	return str_steal(&out);
}
