/*
 * spf.c - SPF records and macros (RFC 7208 4.6, 7, 12): the parser and
 * the macro expander. Input comes from DNS and from SMTP clients and is
 * not trusted: every length is checked, the number of terms is bounded,
 * and a syntax error is a result (permerror), never a crash.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "spf.h"

const char *spf_result_name(enum spf_result r)
{
	static const char *const names[] = {
		[SPF_NONE] = "none", [SPF_NEUTRAL] = "neutral",
		[SPF_PASS] = "pass", [SPF_FAIL] = "fail",
		[SPF_SOFTFAIL] = "softfail", [SPF_TEMPERROR] = "temperror",
		[SPF_PERMERROR] = "permerror",
	};
	return names[r];
}

bool spf_is_record(const char *txt, size_t len)
{
	/* RFC 7208 4.5: "v=spf1" exactly, then a space or the end. */
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 &&
	    (len == 6 || txt[6] == ' ');
}

static bool is_delimiter(char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

/*
 * Check one macro-expand at s ("%{...}", "%%", "%_", "%-"); its length
 * in *n. RFC 7208 7.1.
 */
static bool macro_syntax(const char *s, size_t len, bool exp, size_t *n)
{
	if (len < 2 || s[0] != '%')
		return false;
	if (s[1] == '%' || s[1] == '_' || s[1] == '-') {
		*n = 2;
		return true;
	}
	if (s[1] != '{' || len < 4)
		return false;
	char letter = (char)tolower((unsigned char)s[2]);
	if (strchr(exp ? "slodiphcrtv" : "slodiphv", letter) == NULL ||
	    letter == '\0')
		return false;
	size_t i = 3;
	bool nonzero = false;
	while (i < len && isdigit((unsigned char)s[i]))
		nonzero |= s[i++] != '0';
	/* 7.1: a digit transformer, if any, is not zero. */
	if (i > 3 && !nonzero)
		return false;
	if (i < len && (s[i] == 'r' || s[i] == 'R'))
		i++;
	while (i < len && is_delimiter(s[i]))
		i++;
	if (i >= len || s[i] != '}')
		return false;
	*n = i + 1;
	return true;
}

/* A macro-string: macro-expands and literals %x21-24 / %x26-7E (7.1). */
static bool macro_string_ok(const char *s, size_t len, bool exp,
    bool *ends_in_macro)
{
	*ends_in_macro = false;
	for (size_t i = 0; i < len;) {
		size_t n;
		if (s[i] == '%') {
			if (!macro_syntax(s + i, len - i, exp, &n))
				return false;
			i += n;
			*ends_in_macro = s[i - 1] == '}';
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e)
			return false;
		*ends_in_macro = false;
		i++;
	}
	return true;
}

/* toplabel (RFC 7208 12, RFC 3696 2): letters, digits, inner hyphens,
 * not all digits. */
static bool toplabel_ok(const char *s, size_t len)
{
	bool alpha = false;
	if (len == 0 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (isalpha((unsigned char)s[i]))
			alpha = true;
		else if (s[i] == '-')
			alpha = true;	/* 1*alphanum "-" ... alphanum */
		else if (!isdigit((unsigned char)s[i]))
			return false;
	}
	return alpha;
}

/* domain-spec = macro-string domain-end (RFC 7208 12). */
static bool domain_spec_ok(const char *s, size_t len)
{
	bool ends_in_macro;
	if (len == 0 || !macro_string_ok(s, len, false, &ends_in_macro))
		return false;
	if (ends_in_macro)
		return true;
	if (s[len - 1] == '.')
		len--;
	const char *dot = NULL;
	for (size_t i = len; i-- > 0;)
		if (s[i] == '.') {
			dot = s + i;
			break;
		}
	if (dot == NULL)
		return false;
	return toplabel_ok(dot + 1, (size_t)(s + len - dot - 1));
}

/* "/N" with N in 0..max, no leading zero (RFC 7208 5.6). */
static bool cidr_parse(const char **p, const char *end, int max, int *out)
{
	const char *s = *p + 1;
	if (s >= end || !isdigit((unsigned char)*s) ||
	    (s[0] == '0' && s + 1 < end && isdigit((unsigned char)s[1])))
		return false;
	int v = 0;
	while (s < end && isdigit((unsigned char)*s)) {
		v = v * 10 + (*s++ - '0');
		if (v > max)
			return false;
	}
	*out = v;
	*p = s;
	return true;
}

/*
 * Where the dual-cidr-length ("/N", "//N", "/N//N") at the end of an a or
 * mx argument begins, or end. A domain-spec may hold '/' and ':' itself
 * (RFC 7208 7.1, macro-literal), so the split is found from the right.
 */
static const char *dual_cidr_start(const char *s, const char *end)
{
	const char *p = end;
	for (int part = 0; part < 2; part++) {
		const char *q = p;
		while (q > s && isdigit((unsigned char)q[-1]))
			q--;
		if (q == p || q == s || q[-1] != '/')
			break;
		q--;
		bool ip6 = q > s && q[-1] == '/';
		if (ip6)
			q--;
		p = q;
		if (!ip6)
			break;	/* the ip4-cidr-length comes first */
	}
	return p;
}

static bool term_parse(const char *t, size_t len, struct spf_record *rec,
    char *err, size_t errsize)
{
	char name[16];
	size_t i = 0;

	/* A modifier: name "=" macro-string (RFC 7208 6). */
	const char *eq = memchr(t, '=', len);
	const char *colon = memchr(t, ':', len);
	const char *slash = memchr(t, '/', len);
	if (eq != NULL && (colon == NULL || eq < colon) &&
	    (slash == NULL || eq < slash) && isalpha((unsigned char)t[0])) {
		size_t nl = (size_t)(eq - t);
		for (size_t k = 0; k < nl; k++)
			if (!isalnum((unsigned char)t[k]) && t[k] != '-' &&
			    t[k] != '_' && t[k] != '.')
				goto bad;
		const char *v = eq + 1;
		size_t vl = len - nl - 1;
		bool redirect = nl == 8 && strncasecmp(t, "redirect", 8) == 0;
		bool exp = nl == 3 && strncasecmp(t, "exp", 3) == 0;
		if (redirect || exp) {
			char **slot = redirect ? &rec->redirect : &rec->exp;
			if (*slot != NULL) {
				snprintf(err, errsize, "%s given twice",
				    redirect ? "redirect" : "exp");
				return false;
			}
			if (!domain_spec_ok(v, vl))
				goto bad;
			*slot = xstrndup(v, vl);
			if (redirect)
				rec->dns_terms++;
			return true;
		}
		bool ends;
		if (!macro_string_ok(v, vl, false, &ends))
			goto bad;
		return true;	/* unknown modifiers are ignored (6) */
	}

	struct spf_term term = { .qualifier = SPF_PASS, .cidr4 = 32,
		.cidr6 = 128 };
	switch (t[0]) {
	case '+': term.qualifier = SPF_PASS; i++; break;
	case '-': term.qualifier = SPF_FAIL; i++; break;
	case '~': term.qualifier = SPF_SOFTFAIL; i++; break;
	case '?': term.qualifier = SPF_NEUTRAL; i++; break;
	}
	size_t nl = 0;
	while (i + nl < len && isalnum((unsigned char)t[i + nl]))
		nl++;
	if (nl == 0 || nl >= sizeof(name))
		goto bad;
	memcpy(name, t + i, nl);
	name[nl] = '\0';
	i += nl;
	static const struct {
		const char *name;
		enum spf_mech mech;
	} mechs[] = {
		{ "all", SPF_ALL }, { "include", SPF_INCLUDE }, { "a", SPF_A },
		{ "mx", SPF_MX }, { "ptr", SPF_PTR }, { "ip4", SPF_IP4 },
		{ "ip6", SPF_IP6 }, { "exists", SPF_EXISTS },
	};
	size_t m;
	for (m = 0; m < sizeof(mechs) / sizeof(mechs[0]); m++)
		if (strcasecmp(name, mechs[m].name) == 0)
			break;
	if (m == sizeof(mechs) / sizeof(mechs[0])) {
		snprintf(err, errsize, "unknown mechanism \"%.40s\"", name);
		return false;
	}
	term.mech = mechs[m].mech;
	const char *p = t + i, *end = t + len;

	switch (term.mech) {
	case SPF_ALL:
		if (p != end)
			goto bad;
		break;
	case SPF_INCLUDE:
	case SPF_EXISTS:
	case SPF_A:
	case SPF_MX:
	case SPF_PTR: {
		bool needs = term.mech == SPF_INCLUDE || term.mech == SPF_EXISTS;
		bool cidr = term.mech == SPF_A || term.mech == SPF_MX;
		if (p < end && *p == ':') {
			const char *ds = p + 1, *de = end;
			/* The dual-cidr-length at the end belongs to a/mx. */
			if (cidr)
				de = dual_cidr_start(ds, end);
			if (!domain_spec_ok(ds, (size_t)(de - ds)))
				goto bad;
			term.domain_spec = xstrndup(ds, (size_t)(de - ds));
			p = de;
		} else if (needs) {
			goto bad;
		}
		if (cidr && p < end && *p == '/' && !(p + 1 < end &&
		    p[1] == '/')) {
			if (!cidr_parse(&p, end, 32, &term.cidr4))
				goto bad_term;
		}
		if (cidr && p + 1 < end && p[0] == '/' && p[1] == '/') {
			p++;
			if (!cidr_parse(&p, end, 128, &term.cidr6))
				goto bad_term;
		}
		if (p != end)
			goto bad_term;
		rec->dns_terms++;
		break;
	}
	case SPF_IP4:
	case SPF_IP6: {
		bool v4 = term.mech == SPF_IP4;
		if (p >= end || *p != ':')
			goto bad;
		p++;
		const char *s = memchr(p, '/', (size_t)(end - p));
		const char *ae = s ? s : end;
		char addr[64];
		if ((size_t)(ae - p) >= sizeof(addr))
			goto bad;
		memcpy(addr, p, (size_t)(ae - p));
		addr[ae - p] = '\0';
		if (inet_pton(v4 ? AF_INET : AF_INET6, addr, term.ip) != 1)
			goto bad;
		p = ae;
		if (p < end && !cidr_parse(&p, end, v4 ? 32 : 128,
		    v4 ? &term.cidr4 : &term.cidr6))
			goto bad;
		if (p != end)
			goto bad;
		break;
	}
	}
	if (rec->nterms == SPF_MAX_TERMS) {
		free(term.domain_spec);
		snprintf(err, errsize, "more than %d terms", SPF_MAX_TERMS);
		return false;
	}
	rec->terms = xreallocarray(rec->terms, rec->nterms + 1,
	    sizeof(*rec->terms));
	rec->terms[rec->nterms++] = term;
	return true;
bad_term:
	free(term.domain_spec);
bad:
	snprintf(err, errsize, "bad term \"%.*s\"", (int)(len > 60 ? 60 : len),
	    t);
	return false;
}

bool spf_record_parse(const char *txt, size_t len, struct spf_record *rec,
    char *err, size_t errsize)
{
	memset(rec, 0, sizeof(*rec));
	if (!spf_is_record(txt, len)) {
		snprintf(err, errsize, "not an SPF record");
		return false;
	}
	/* Terms are separated by one or more spaces (RFC 7208 12). */
	for (size_t i = 6; i < len;) {
		while (i < len && txt[i] == ' ')
			i++;
		size_t start = i;
		while (i < len && txt[i] != ' ')
			i++;
		if (i > start && !term_parse(txt + start, i - start, rec, err,
		    errsize)) {
			spf_record_free(rec);
			return false;
		}
	}
	return true;
}

void spf_record_free(struct spf_record *rec)
{
	for (size_t i = 0; i < rec->nterms; i++)
		free(rec->terms[i].domain_spec);
	free(rec->terms);
	free(rec->redirect);
	free(rec->exp);
	memset(rec, 0, sizeof(*rec));
}

/* ---- macros ---- */

/* The value of macro letter c, before transformers (RFC 7208 7.3). */
static void macro_value(char c, const struct spf_macro_ctx *ctx,
    struct str *v)
{
	const char *at = ctx->sender ? strrchr(ctx->sender, '@') : NULL;
	char buf[INET6_ADDRSTRLEN];

	switch (c) {
	case 's':
		str_append_cstr(v, ctx->sender ? ctx->sender : "");
		break;
	case 'l':
		/* 4.3: an empty local part is "postmaster". */
		if (at == NULL || at == ctx->sender)
			str_append_cstr(v, "postmaster");
		else
			str_append(v, ctx->sender, (size_t)(at - ctx->sender));
		break;
	case 'o':
		str_append_cstr(v, at ? at + 1 : ctx->sender ? ctx->sender : "");
		break;
	case 'd':
		str_append_cstr(v, ctx->domain ? ctx->domain : "");
		break;
	case 'h':
		str_append_cstr(v, ctx->helo ? ctx->helo : "");
		break;
	case 'p':
		str_append_cstr(v, ctx->validated_name ? ctx->validated_name :
		    "unknown");
		break;
	case 'r':
		str_append_cstr(v, ctx->receiver ? ctx->receiver : "unknown");
		break;
	case 't':
		str_appendf(v, "%lld", ctx->now);
		break;
	case 'v':
		str_append_cstr(v, ctx->client && ctx->client->sa_family ==
		    AF_INET6 ? "ip6" : "in-addr");
		break;
	case 'i':
	case 'c':
		if (ctx->client == NULL)
			break;
		if (ctx->client->sa_family == AF_INET) {
			const struct sockaddr_in *s4 =
			    (const struct sockaddr_in *)ctx->client;
			inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
			str_append_cstr(v, buf);
		} else if (ctx->client->sa_family == AF_INET6) {
			const struct sockaddr_in6 *s6 =
			    (const struct sockaddr_in6 *)ctx->client;
			if (c == 'c') {
				inet_ntop(AF_INET6, &s6->sin6_addr, buf,
				    sizeof(buf));
				str_append_cstr(v, buf);
				break;
			}
			/* %{i} of IPv6: dot-separated nibbles (7.3). */
			for (int k = 0; k < 16; k++)
				str_appendf(v, "%s%x.%x", k ? "." : "",
				    s6->sin6_addr.s6_addr[k] >> 4,
				    s6->sin6_addr.s6_addr[k] & 15);
		}
		break;
	}
}

/* URL-escape what is not unreserved (RFC 3986 2.3), for an upper-case
 * macro letter (RFC 7208 7.3). */
static void url_escape(const char *s, size_t len, struct str *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			str_append_char(out, (char)c);
		else
			str_appendf(out, "%%%02X", c);
	}
}

/* Apply transformers and delimiters to value into out. */
static void transform(const char *value, size_t vlen, long keep,
    bool reverse, const char *delims, struct str *out, bool escape)
{
	/* The parts, as many as the value has (7.3 sets no limit). */
	size_t n = 1;
	for (size_t i = 0; i < vlen; i++)
		if (strchr(delims, value[i]) != NULL)
			n++;
	const char **parts = xcalloc(n, sizeof(*parts));
	size_t *lens = xcalloc(n, sizeof(*lens));
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= vlen; i++) {
		if (i < vlen && strchr(delims, value[i]) == NULL)
			continue;
		parts[k] = value + start;
		lens[k++] = i - start;
		start = i + 1;
	}
	size_t from = 0;
	if (keep > 0 && (size_t)keep < n)
		from = n - (size_t)keep;
	struct str joined;
	str_init(&joined, STR_NO_MAX);
	/* Reverse first, then keep the rightmost parts (7.3). */
	for (k = from; k < n; k++) {
		size_t idx = reverse ? n - 1 - k : k;
		if (k > from)
			str_append_char(&joined, '.');
		str_append(&joined, parts[idx], lens[idx]);
	}
	if (escape)
		url_escape(str_cstr(&joined), joined.len, out);
	else
		str_append(out, str_cstr(&joined), joined.len);
	str_free(&joined);
	free(parts);
	free(lens);
}

bool spf_macro_expand(const char *spec, const struct spf_macro_ctx *ctx,
    bool exp, struct str *out, char *err, size_t errsize)
{
	size_t len = strlen(spec);
	size_t start = out->len;

	for (size_t i = 0; i < len;) {
		size_t n;
		if (spec[i] != '%') {
			str_append_char(out, spec[i++]);
			continue;
		}
		if (!macro_syntax(spec + i, len - i, exp, &n)) {
			snprintf(err, errsize, "bad macro in \"%.60s\"", spec);
			str_truncate(out, start);
			return false;
		}
		const char *m = spec + i;
		i += n;
		if (m[1] == '%') {
			str_append_char(out, '%');
			continue;
		}
		if (m[1] == '_') {
			str_append_char(out, ' ');
			continue;
		}
		if (m[1] == '-') {
			str_append(out, "%20", 3);
			continue;
		}
		char letter = m[2];
		const char *q = m + 3;
		long keep = 0;
		bool digits = false;
		while (isdigit((unsigned char)*q)) {
			digits = true;
			if (keep < 1000)
				keep = keep * 10 + (*q - '0');
			q++;
		}
		/* 7.1: a digit transformer of 0 is an error. */
		if (digits && keep == 0) {
			snprintf(err, errsize, "macro keeps 0 parts in "
			    "\"%.60s\"", spec);
			str_truncate(out, start);
			return false;
		}
		bool reverse = *q == 'r' || *q == 'R';
		if (reverse)
			q++;
		char delims[16];
		size_t nd = 0;
		while (*q != '}' && nd + 1 < sizeof(delims))
			delims[nd++] = *q++;
		delims[nd] = '\0';
		if (nd == 0)
			strcpy(delims, ".");
		struct str value;
		str_init(&value, STR_NO_MAX);
		macro_value((char)tolower((unsigned char)letter), ctx, &value);
		transform(str_cstr(&value), value.len, keep, reverse, delims,
		    out, isupper((unsigned char)letter));
		str_free(&value);
	}
	/* 7.3: a domain name over 253 octets loses labels on the left. */
	if (!exp) {
		while (out->len - start > 253) {
			char *dot = memchr(out->data + start, '.',
			    out->len - start);
			if (dot == NULL)
				break;
			size_t drop = (size_t)(dot - (out->data + start)) + 1;
			memmove(out->data + start, out->data + start + drop,
			    out->len - start - drop);
			str_truncate(out, out->len - drop);
		}
	}
	return true;
}
