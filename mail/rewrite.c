/*
 * rewrite.c - address rewriting (canonical, masquerade, generic) for
 * envelopes and header fields; see rewrite.h for what and where.
 *
 * Trusts: the config and its tables. Not the header text: it is a
 * user's or a client's. The field parser only finds where addresses
 * are (RFC 5322 3.4: mailbox lists, name-addr, groups, quoted strings,
 * comments); what it does not understand it leaves as it was, and the
 * addresses it puts back come from our tables, not from the field.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "rewrite.h"
#include "str.h"

struct rewrite {
	enum rewrite_role role;
	struct map_list *sender;	/* sender_canonical_maps */
	struct map_list *recipient;	/* recipient_canonical_maps */
	struct map_list *both;	/* canonical_maps, smtp_generic_maps */
};

bool rewrite_configured(enum rewrite_role role)
{
	if (role == REWRITE_GENERIC)
		return cfg.smtp_generic_maps.count > 0;
	return cfg.canonical_maps.count > 0 ||
	    cfg.sender_canonical_maps.count > 0 ||
	    cfg.recipient_canonical_maps.count > 0 ||
	    cfg.masquerade_domains.count > 0;
}

static bool open_list(const struct cfg_list *specs, struct map_list **out,
    char *err, size_t errsize)
{
	*out = NULL;
	if (specs->count == 0)
		return true;
	*out = map_list_open(specs, err, errsize);
	return *out != NULL;
}

struct rewrite *rewrite_open(enum rewrite_role role, char *err,
    size_t errsize)
{
	struct rewrite *rw = xcalloc(1, sizeof(*rw));
	bool ok;

	rw->role = role;
	if (role == REWRITE_GENERIC)
		ok = open_list(&cfg.smtp_generic_maps, &rw->both, err, errsize);
	else
		ok = open_list(&cfg.sender_canonical_maps, &rw->sender, err,
		    errsize) &&
		    open_list(&cfg.recipient_canonical_maps, &rw->recipient,
		    err, errsize) &&
		    open_list(&cfg.canonical_maps, &rw->both, err, errsize);
	if (!ok) {
		rewrite_close(rw);
		return NULL;
	}
	return rw;
}

struct rewrite *rewrite_open_configured(enum rewrite_role role)
{
	char err[512];
	if (!rewrite_configured(role))
		return NULL;
	struct rewrite *rw = rewrite_open(role, err, sizeof(err));
	if (rw == NULL)
		log_fatal("%s: %s", role == REWRITE_CANONICAL ?
		    "canonical maps" : "smtp_generic_maps", err);
	return rw;
}

void rewrite_close(struct rewrite *rw)
{
	if (rw == NULL)
		return;
	if (rw->sender)
		map_list_close(rw->sender);
	if (rw->recipient)
		map_list_close(rw->recipient);
	if (rw->both)
		map_list_close(rw->both);
	free(rw);
}

/* ---- one address ---- */

static bool local_domain(const char *domain)
{
	return strcasecmp(domain, cfg.myhostname) == 0 ||
	    cfg_list_contains_nocase(&cfg.mydomains, domain);
}

static char *lower(const char *s, size_t n)
{
	char *r = xstrndup(s, n);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

/*
 * Look address up in ml with the keys of canonical(5): NULL when no
 * key matched, else the new address (malloc'd).
 */
static char *table_lookup(struct map_list *ml, const char *address,
    bool *failed)
{
	const char *at = strrchr(address, '@');
	size_t local_len = at ? (size_t)(at - address) : strlen(address);
	const char *domain = at ? at + 1 : "";
	const char *plus = memchr(address, '+', local_len);
	size_t user_len = plus && plus > address ? (size_t)(plus - address) :
	    local_len;
	const char *ext = user_len < local_len ? address + user_len : "";
	size_t ext_len = local_len - user_len;
	char *keys[5];
	bool drops_ext[5];
	size_t n = 0;

	if (address[0] == '\0' || local_len == 0)
		return NULL;
	keys[n] = lower(address, strlen(address));
	drops_ext[n++] = false;
	if (ext_len > 0) {
		keys[n] = xasprintf("%.*s%s%s", (int)user_len, address,
		    at ? "@" : "", domain);
		drops_ext[n++] = true;
	}
	if (at == NULL || local_domain(domain)) {
		keys[n] = xstrndup(address, local_len);
		drops_ext[n++] = false;
		if (ext_len > 0) {
			keys[n] = xstrndup(address, user_len);
			drops_ext[n++] = true;
		}
	}
	if (at != NULL && *domain) {
		keys[n] = xasprintf("@%s", domain);
		drops_ext[n++] = false;
	}
	char *value = NULL, *result = NULL;
	for (size_t i = 0; i < n && result == NULL; i++) {
		char *k = lower(keys[i], strlen(keys[i]));
		enum map_result r = map_list_lookup(ml, k, &value);
		free(k);
		if (r == MAP_ERROR) {
			*failed = true;
			break;
		}
		if (r != MAP_FOUND)
			continue;
		const char *v = value;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v == '@') {
			/* "@other": the user part (with its +ext) stays. */
			result = xasprintf("%.*s%s", (int)local_len, address, v);
		} else if (strchr(v, '@') == NULL) {
			result = xasprintf("%s@%s", v, cfg.myhostname);
		} else if (drops_ext[i] && strchr(v, '+') == NULL) {
			/* propagate_unmatched_extensions, as Postfix. */
			const char *vat = strrchr(v, '@');
			result = xasprintf("%.*s%.*s%s", (int)(vat - v), v,
			    (int)ext_len, ext, vat);
		} else {
			result = xstrdup(v);
		}
		free(value);
		value = NULL;
	}
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	return result;
}

/*
 * masquerade_domains: an address in a subdomain of a listed domain
 * becomes an address in that domain; "!sub.example.org" keeps it. The
 * first entry that matches decides. NULL when it stays.
 */
static char *masquerade(const char *address)
{
	const char *at = strrchr(address, '@');
	if (at == NULL || cfg.masquerade_domains.count == 0)
		return NULL;
	const char *domain = at + 1;
	size_t local_len = (size_t)(at - address);
	const char *plus = memchr(address, '+', local_len);
	size_t user_len = plus ? (size_t)(plus - address) : local_len;
	char *user = lower(address, user_len);
	bool excepted = cfg_list_contains_nocase(&cfg.masquerade_exceptions,
	    user);
	free(user);
	if (excepted)
		return NULL;
	size_t dlen = strlen(domain);
	for (size_t i = 0; i < cfg.masquerade_domains.count; i++) {
		const char *m = cfg.masquerade_domains.items[i];
		bool keep = m[0] == '!';
		if (keep)
			m++;
		size_t mlen = strlen(m);
		if (mlen == 0)
			continue;
		if (dlen == mlen && strcasecmp(domain, m) == 0)
			return NULL;	/* already the masquerade */
		if (dlen > mlen && domain[dlen - mlen - 1] == '.' &&
		    strcasecmp(domain + dlen - mlen, m) == 0) {
			if (keep)
				return NULL;
			return xasprintf("%.*s@%s", (int)local_len, address, m);
		}
	}
	return NULL;
}

char *rewrite_address(struct rewrite *rw, enum rewrite_class cls,
    bool envelope, const char *address, bool *failed)
{
	char *r = NULL;

	if (rw == NULL || address[0] == '\0')
		return NULL;
	if (rw->role == REWRITE_GENERIC)
		return rw->both ? table_lookup(rw->both, address, failed) : NULL;
	struct map_list *first = cls == REWRITE_SENDER ? rw->sender :
	    rw->recipient;
	if (first != NULL)
		r = table_lookup(first, address, failed);
	if (r == NULL && !*failed && rw->both != NULL)
		r = table_lookup(rw->both, address, failed);
	if (cls == REWRITE_RECIPIENT && envelope)
		return r;
	char *m = masquerade(r ? r : address);
	if (m != NULL) {
		free(r);
		r = m;
	}
	return r;
}

/* ---- header fields ---- */

static const char *const sender_fields[] = { "from", "sender", "reply-to",
	"errors-to", "resent-from", "resent-sender", "resent-reply-to", NULL };
static const char *const recipient_fields[] = { "to", "cc", "bcc",
	"resent-to", "resent-cc", "resent-bcc", "apparently-to", NULL };

static bool field_in(const char *name, size_t n, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strlen(list[i]) == n && strncasecmp(name, list[i], n) == 0)
			return true;
	return false;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Past a comment starting at v[i] == '(' (nested, with quoted pairs). */
static size_t skip_comment(const char *v, size_t i, size_t n)
{
	int depth = 0;
	for (; i < n; i++) {
		if (v[i] == '\\' && i + 1 < n)
			i++;
		else if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && --depth == 0)
			return i + 1;
	}
	return n;
}

/* Past a quoted string starting at v[i] == '"'. */
static size_t skip_quoted(const char *v, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		if (v[i] == '\\' && i + 1 < n)
			i++;
		else if (v[i] == '"')
			return i + 1;
	}
	return n;
}

/*
 * Append v[a..b) to out, with the one address in it rewritten. An element
 * of a list is a name-addr ("Name <a@b>") or an addr-spec, with comments
 * and white space around it.
 */
static bool rewrite_element(struct rewrite *rw, enum rewrite_class cls,
    const char *v, size_t a, size_t b, struct str *out, bool *failed)
{
	size_t lt = b, gt = b;
	for (size_t i = a; i < b; i++) {
		if (v[i] == '"') {
			i = skip_quoted(v, i, b) - 1;
		} else if (v[i] == '(') {
			i = skip_comment(v, i, b) - 1;
		} else if (v[i] == '<' && lt == b) {
			lt = i;
		} else if (v[i] == '>' && lt < b) {
			gt = i;
			break;
		}
	}
	size_t s, e;	/* the address's span */
	if (lt < b && gt < b) {
		s = lt + 1;
		e = gt;
		/* a source route "@a,@b:" stays in front */
		const char *colon = memchr(v + s, ':', e - s);
		if (v[s] == '@' && colon != NULL)
			s = (size_t)(colon - v) + 1;
	} else {
		s = a;
		e = b;
		for (;;) {
			while (s < e && is_wsp(v[s]))
				s++;
			if (s < e && v[s] == '(')
				s = skip_comment(v, s, e);
			else
				break;
		}
		for (;;) {
			while (e > s && is_wsp(v[e - 1]))
				e--;
			if (e > s && v[e - 1] == ')') {
				size_t k = e - 1;	/* find its '(' */
				int depth = 0;
				while (k > s) {
					if (v[k] == ')')
						depth++;
					else if (v[k] == '(' && --depth == 0)
						break;
					k--;
				}
				e = k;
			} else {
				break;
			}
		}
		/* A phrase with no address: leave it. */
		for (size_t i = s; i < e; i++) {
			if (v[i] == '"')
				i = skip_quoted(v, i, e) - 1;
			else if (is_wsp(v[i]) || v[i] == '(')
				e = s;
		}
	}
	while (s < e && is_wsp(v[s]))
		s++;
	while (e > s && is_wsp(v[e - 1]))
		e--;
	/* A control byte (a NUL, a line break inside a quoted string) in
	 * the address: not one of ours to rewrite. */
	for (size_t i = s; i < e; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			e = s;
	char *addr = s < e ? xstrndup(v + s, e - s) : NULL;
	char *n = addr ? rewrite_address(rw, cls, false, addr, failed) : NULL;
	free(addr);
	if (n == NULL) {
		str_append(out, v + a, b - a);
		return false;
	}
	str_append(out, v + a, s - a);
	str_append(out, n, strlen(n));
	str_append(out, v + e, b - e);
	free(n);
	return true;
}

/*
 * The value of one address field, its addresses rewritten (length in
 * *outlen: the value may hold any byte); NULL: the same.
 */
static char *rewrite_list(struct rewrite *rw, enum rewrite_class cls,
    const char *v, size_t n, size_t *outlen, bool *failed)
{
	struct str out;
	bool changed = false;
	size_t start = 0;
	int angle = 0;

	str_init(&out, STR_NO_MAX);
	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] == '"') {
			i = skip_quoted(v, i, n) - 1;
			continue;
		}
		if (i < n && v[i] == '(') {
			i = skip_comment(v, i, n) - 1;
			continue;
		}
		if (i < n && v[i] == '<')
			angle++;
		else if (i < n && v[i] == '>' && angle > 0)
			angle--;
		if (i < n && (angle > 0 || (v[i] != ',' && v[i] != ';' &&
		    v[i] != ':')))
			continue;
		if (i < n && v[i] == ':') {
			/* A group's display name: as it is. */
			str_append(&out, v + start, i + 1 - start);
			start = i + 1;
			continue;
		}
		changed |= rewrite_element(rw, cls, v, start, i, &out, failed);
		if (i < n)
			str_append_char(&out, v[i]);
		start = i + 1;
	}
	if (!changed) {
		str_free(&out);
		return NULL;
	}
	*outlen = out.len;
	return str_steal(&out);
}

size_t rewrite_header_end(const char *msg, size_t len)
{
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 0;
	const char *p = memmem(msg, len, "\r\n\r\n", 4);
	return p ? (size_t)(p - msg) + 2 : len;
}

char *rewrite_header_block(struct rewrite *rw, const char *hdr, size_t len,
    size_t *outlen, bool *failed)
{
	struct str out;
	bool changed = false;
	size_t pos = 0;

	if (rw == NULL)
		return NULL;
	str_init(&out, STR_NO_MAX);
	while (pos < len) {
		/* One field: its first line and its continuation lines. */
		size_t end = pos;
		for (;;) {
			const char *crlf = memmem(hdr + end, len - end, "\r\n", 2);
			end = crlf ? (size_t)(crlf - hdr) + 2 : len;
			if (end >= len || (hdr[end] != ' ' && hdr[end] != '\t'))
				break;
		}
		const char *colon = memchr(hdr + pos, ':', end - pos);
		size_t name_len = colon ? (size_t)(colon - hdr) - pos : 0;
		enum rewrite_class cls = REWRITE_SENDER;
		bool known = false;
		if (colon != NULL) {
			if (field_in(hdr + pos, name_len, sender_fields)) {
				known = true;
			} else if (field_in(hdr + pos, name_len,
			    recipient_fields)) {
				cls = REWRITE_RECIPIENT;
				known = true;
			}
		}
		char *nv = NULL;
		size_t nvlen = 0;
		size_t vs = pos + name_len + 1, ve = end;
		if (known) {
			/* The value without the field's last CRLF. */
			if (ve >= vs + 2 && hdr[ve - 2] == '\r' &&
			    hdr[ve - 1] == '\n')
				ve -= 2;
			nv = rewrite_list(rw, cls, hdr + vs, ve - vs, &nvlen,
			    failed);
		}
		if (nv != NULL) {
			str_append(&out, hdr + pos, name_len + 1);
			str_append(&out, nv, nvlen);
			str_append(&out, hdr + ve, end - ve);
			free(nv);
			changed = true;
		} else {
			str_append(&out, hdr + pos, end - pos);
		}
		pos = end;
	}
	if (!changed) {
		str_free(&out);
		return NULL;
	}
	*outlen = out.len;
	return str_steal(&out);
}
