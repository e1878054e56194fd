/*
 * dmarc.c - DMARC (RFC 7489) for smtpd: the Public Suffix List and the
 * organizational domain (3.2), alignment (3.1), the policy record (6.3)
 * and policy discovery and verdict (6.6).
 *
 * Trust: the list file is the administrator's (Debian's publicsuffix
 * package); everything else - the From: field, the identifiers SPF and
 * DKIM passed, the TXT records - is a stranger's and is bounded: names
 * over 253 octets are refused, at most two DNS lookups per message.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/nameser.h>
#include <bsd/string.h>

#include "dkim_tags.h"
#include "dmarc.h"
#include "idna.h"
#include "log.h"
#include "mem.h"
#include "str.h"

/* ---- the Public Suffix List: a set of rule strings ---- */

/* Rules as written, lowered: "co.uk", "*.ck", "!www.ck". */
static char **psl_slots;
static int psl_deferred_fd = -1;	/* dmarc_psl_defer() */
static char *psl_deferred_path;
static size_t psl_cap;		/* a power of two, or 0 */
static size_t psl_count;

static unsigned long psl_hash(const char *s, size_t n)
{
	unsigned long h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static bool psl_has(const char *prefix, const char *s)
{
	char key[300];
	if (psl_cap == 0)
		return false;
	/* Not snprintf: this runs twice for each of 14,000 list lines. */
	size_t np = strlen(prefix), ns = strlen(s), n = np + ns;
	if (n >= sizeof(key))
		return false;
	memcpy(key, prefix, np);
	memcpy(key + np, s, ns + 1);
	for (size_t i = psl_hash(key, n) & (psl_cap - 1); psl_slots[i];
	    i = (i + 1) & (psl_cap - 1))
		if (strcmp(psl_slots[i], key) == 0)
			return true;
	return false;
}

static void psl_add(const char *rule)
{
	if (psl_has("", rule))
		return;
	if ((psl_count + 1) * 2 > psl_cap) {
		size_t ncap = psl_cap ? psl_cap * 2 : 1024;
		char **nslots = xcalloc(ncap, sizeof(*nslots));
		for (size_t i = 0; i < psl_cap; i++) {
			if (psl_slots[i] == NULL)
				continue;
			size_t j = psl_hash(psl_slots[i],
			    strlen(psl_slots[i])) & (ncap - 1);
			while (nslots[j])
				j = (j + 1) & (ncap - 1);
			nslots[j] = psl_slots[i];
		}
		free(psl_slots);
		psl_slots = nslots;
		psl_cap = ncap;
	}
	size_t j = psl_hash(rule, strlen(rule)) & (psl_cap - 1);
	while (psl_slots[j])
		j = (j + 1) & (psl_cap - 1);
	psl_slots[j] = xstrdup(rule);
	psl_count++;
}

void dmarc_psl_free(void)
{
	if (psl_deferred_fd >= 0) {
		close(psl_deferred_fd);
		psl_deferred_fd = -1;
	}
	free(psl_deferred_path);
	psl_deferred_path = NULL;
	for (size_t i = 0; i < psl_cap; i++)
		free(psl_slots[i]);
	free(psl_slots);
	psl_slots = NULL;
	psl_cap = psl_count = 0;
}

/* One rule line: its first word; a U-label rule is added as A-labels. */
static void psl_add_line(const char *line, size_t len)
{
	char rule[300];
	size_t n = 0;
	while (n < len && line[n] != ' ' && line[n] != '\t' &&
	    line[n] != '\r')
		n++;
	if (n == 0 || n >= sizeof(rule) || (n >= 2 && line[0] == '/' &&
	    line[1] == '/'))
		return;
	memcpy(rule, line, n);
	rule[n] = '\0';
	for (char *p = rule; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	psl_add(rule);
	if (!idna_has_8bit(rule))
		return;
	/* "!" and "*." stay in front of the name they qualify. */
	size_t skip = rule[0] == '!' ? 1 : strncmp(rule, "*.", 2) == 0 ? 2 : 0;
	char *ascii = idna_domain_to_ascii(rule + skip);
	if (ascii != NULL) {
		char both[300];
		if (snprintf(both, sizeof(both), "%.*s%s", (int)skip, rule,
		    ascii) < (int)sizeof(both))
			psl_add(both);
		free(ascii);
	}
}

bool dmarc_psl_load_text(const char *text, size_t len)
{
	dmarc_psl_free();
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		psl_add_line(p, n);
		p += n + 1;
	}
	return psl_count > 0;
}

/* Read and parse the list from fd (its owner closes it). */
static bool psl_load_fd(int fd, const char *path, char *err, size_t errsize)
{
	struct str text;
	str_init(&text, STR_NO_MAX);
	char buf[8192];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		str_append(&text, buf, (size_t)n);
	}
	bool read_ok = n == 0;
	bool ok = read_ok && dmarc_psl_load_text(text.data ? text.data : "",
	    text.len);
	str_free(&text);
	if (!ok)
		snprintf(err, errsize, "%s: %s", path, read_ok ?
		    "no public suffix rules in it" : "read error");
	return ok;
}

bool dmarc_psl_load(const char *path, char *err, size_t errsize)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "%s: %m", path);
		return false;
	}
	bool ok = psl_load_fd(fd, path, err, errsize);
	close(fd);
	return ok;
}

/*
 * The deferred list: opened at start-up (before a daemon is confined, so
 * that Landlock need not allow its path), read at the first lookup. Most
 * smtpd workers never need it (trusted and authenticated clients skip
 * the checks), and reading its 14,000 lines costs 28 million
 * instructions (10 ms on a slow core) and 0.7 MiB of heap.
 */
bool dmarc_psl_defer(const char *path, char *err, size_t errsize)
{
	dmarc_psl_free();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "%s: %m", path);
		return false;
	}
	psl_deferred_fd = fd;
	psl_deferred_path = xstrdup(path);
	return true;
}

/* Load a deferred list now; a failure is logged once and leaves no list. */
static void psl_ready(void)
{
	if (psl_deferred_fd < 0)
		return;
	/* Ours now: loading the text frees the old list and these. */
	int fd = psl_deferred_fd;
	char *path = psl_deferred_path;
	psl_deferred_fd = -1;
	psl_deferred_path = NULL;
	char err[512];
	if (!psl_load_fd(fd, path, err, sizeof(err)))
		log_warning("public_suffix_list: %s: DMARC takes the last "
		    "two labels of a domain as its organizational domain",
		    err);
	close(fd);
	free(path);
}

size_t dmarc_psl_rules(void)
{
	return psl_count;
}

/* domain lowered, without a final dot; false if it is too long. */
static bool lowered(const char *domain, char *out, size_t outsize)
{
	size_t n = strlen(domain);
	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n >= outsize)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)domain[i]);
	out[n] = '\0';
	return true;
}

/*
 * RFC 7489 3.2, with the list's own algorithm: the longest matching rule
 * wins, an exception rule over all, "*" when nothing matches.
 */
void dmarc_org_domain(const char *domain, char *out, size_t outsize)
{
	char d[256];
	const char *label[128];
	size_t nlabels = 0;

	if (!lowered(domain, d, sizeof(d))) {
		strlcpy(out, domain, outsize);
		return;
	}
	psl_ready();
	for (const char *p = d; p != NULL && nlabels < 128;) {
		label[nlabels++] = p;
		p = strchr(p, '.');
		if (p != NULL)
			p++;
	}
	size_t suffix_labels = 1;	/* the default rule "*" */
	bool found = false;
	for (size_t i = 0; i < nlabels && !found; i++)
		if (psl_has("!", label[i])) {
			suffix_labels = nlabels - i - 1;
			found = true;
		}
	for (size_t i = 0; i < nlabels && !found; i++)
		if (psl_has("", label[i]) || (i + 1 < nlabels &&
		    psl_has("*.", label[i + 1]))) {
			suffix_labels = nlabels - i;
			found = true;
		}
	if (suffix_labels >= nlabels)
		strlcpy(out, d, outsize);	/* a suffix itself */
	else
		strlcpy(out, label[nlabels - suffix_labels - 1], outsize);
}

bool dmarc_aligned(const char *a, const char *b, bool strict)
{
	char la[256], lb[256];
	if (a == NULL || b == NULL || !lowered(a, la, sizeof(la)) ||
	    !lowered(b, lb, sizeof(lb)))
		return false;
	if (strcmp(la, lb) == 0)
		return true;
	if (strict)
		return false;
	char oa[256], ob[256];
	dmarc_org_domain(la, oa, sizeof(oa));
	dmarc_org_domain(lb, ob, sizeof(ob));
	return strcmp(oa, ob) == 0;
}

/* ---- the record ---- */

const char *dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_POLICY_QUARANTINE: return "quarantine";
	case DMARC_POLICY_REJECT: return "reject";
	default: return "none";
	}
}

const char *dmarc_result_name(enum dmarc_result r)
{
	switch (r) {
	case DMARC_PASS: return "pass";
	case DMARC_FAIL: return "fail";
	case DMARC_TEMPERROR: return "temperror";
	case DMARC_PERMERROR: return "permerror";
	default: return "none";
	}
}

bool dmarc_is_record(const char *txt)
{
	/* 6.4: "v=DMARC1" first, then ";" or the end (white space around). */
	while (*txt == ' ' || *txt == '\t')
		txt++;
	if (strncmp(txt, "v", 1) != 0)
		return false;
	txt++;
	while (*txt == ' ' || *txt == '\t')
		txt++;
	if (*txt++ != '=')
		return false;
	while (*txt == ' ' || *txt == '\t')
		txt++;
	if (strncmp(txt, "DMARC1", 6) != 0)
		return false;
	txt += 6;
	while (*txt == ' ' || *txt == '\t')
		txt++;
	return *txt == ';' || *txt == '\0';
}

static bool policy_parse(const char *v, enum dmarc_policy *p)
{
	if (strcasecmp(v, "none") == 0)
		*p = DMARC_POLICY_NONE;
	else if (strcasecmp(v, "quarantine") == 0)
		*p = DMARC_POLICY_QUARANTINE;
	else if (strcasecmp(v, "reject") == 0)
		*p = DMARC_POLICY_REJECT;
	else
		return false;
	return true;
}

bool dmarc_record_parse(const char *txt, struct dmarc_record *rec)
{
	struct dkim_tags t;
	char err[128];

	if (!dmarc_is_record(txt) ||
	    !dkim_tags_parse(txt, strlen(txt), &t, err, sizeof(err)))
		return false;
	*rec = (struct dmarc_record){ .pct = 100 };
	const char *p = dkim_tags_get(&t, "p"), *sp = dkim_tags_get(&t, "sp");
	const char *rua = dkim_tags_get(&t, "rua");
	const char *adkim = dkim_tags_get(&t, "adkim");
	const char *aspf = dkim_tags_get(&t, "aspf");
	const char *pct = dkim_tags_get(&t, "pct");
	bool p_ok = p != NULL && policy_parse(p, &rec->p);
	rec->sp = rec->p;
	bool sp_ok = sp == NULL || policy_parse(sp, &rec->sp);
	bool ok = true;
	if (!p_ok || !sp_ok) {
		/* 6.6.3 step 6: a rua= makes it a p=none record. */
		ok = rua != NULL && strncasecmp(rua, "mailto:", 7) == 0;
		rec->p = rec->sp = DMARC_POLICY_NONE;
	}
	rec->adkim_strict = adkim != NULL && strcasecmp(adkim, "s") == 0;
	rec->aspf_strict = aspf != NULL && strcasecmp(aspf, "s") == 0;
	if (pct != NULL) {
		char *e;
		long v = strtol(pct, &e, 10);
		/* A bad pct= is ignored, as the tag's default (6.3). */
		if (*e == '\0' && e != pct && v >= 0 && v <= 100)
			rec->pct = (int)v;
	}
	dkim_tags_free(&t);
	return ok;
}

/* ---- the verdict ---- */

enum dns_result dmarc_lookup_dns(void *ctx, const char *name, char *txt,
    size_t txtsize)
{
	struct dns_rr *rrs = NULL;
	size_t count = 0, found = 0;
	char err[256];

	(void)ctx;
	enum dns_result r = dns_lookup_rr(name, ns_t_txt, &rrs, &count, err,
	    sizeof(err));
	if (r != DNS_OK)
		return r == DNS_TEMPFAIL ? DNS_TEMPFAIL : DNS_NOTFOUND;
	for (size_t i = 0; i < count; i++) {
		const char *t = (const char *)rrs[i].data;
		if (strlen(t) != rrs[i].len || !dmarc_is_record(t))
			continue;
		if (found++ == 0)
			strlcpy(txt, t, txtsize);
	}
	dns_rr_free(rrs, count);
	return found == 1 ? DNS_OK : DNS_NOTFOUND;
}

void dmarc_evaluate(const struct dmarc_input *in, dmarc_lookup_fn *lookup,
    void *ctx, struct dmarc_verdict *out)
{
	char from[256], org[256], name[300], txt[2048];

	memset(out, 0, sizeof(*out));
	if (in->from_domain == NULL || !lowered(in->from_domain, from,
	    sizeof(from))) {
		out->result = DMARC_PERMERROR;
		return;
	}
	/* 6.6.3: the From: domain's record, else its org domain's. */
	snprintf(name, sizeof(name), "_dmarc.%s", from);
	enum dns_result r = lookup(ctx, name, txt, sizeof(txt));
	bool at_org = false;
	if (r == DNS_NOTFOUND) {
		dmarc_org_domain(from, org, sizeof(org));
		if (strcmp(org, from) != 0) {
			snprintf(name, sizeof(name), "_dmarc.%s", org);
			r = lookup(ctx, name, txt, sizeof(txt));
			at_org = true;
		}
	}
	if (r == DNS_TEMPFAIL) {
		out->result = DMARC_TEMPERROR;
		return;
	}
	if (r != DNS_OK || !dmarc_record_parse(txt, &out->rec)) {
		out->result = DMARC_NONE;
		return;
	}
	out->have_record = true;
	strlcpy(out->record_domain, name + 7, sizeof(out->record_domain));
	out->used_sp = at_org;
	out->policy = at_org ? out->rec.sp : out->rec.p;

	/* 3.1.1, 3.1.2: a passing identifier aligned with From:. */
	out->spf_aligned = in->spf_pass && dmarc_aligned(in->spf_domain, from,
	    out->rec.aspf_strict);
	for (size_t i = 0; i < in->ndkim && !out->dkim_aligned; i++)
		out->dkim_aligned = dmarc_aligned(in->dkim_pass_domains[i],
		    from, out->rec.adkim_strict);
	if (out->spf_aligned || out->dkim_aligned) {
		out->result = DMARC_PASS;
		out->disposition = DMARC_POLICY_NONE;
		return;
	}
	out->result = DMARC_FAIL;
	out->disposition = out->policy;
	/* 6.6.4: outside pct=, the next less strict policy. */
	if (in->pct_roll >= out->rec.pct && out->disposition !=
	    DMARC_POLICY_NONE)
		out->disposition = out->disposition == DMARC_POLICY_REJECT ?
		    DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
}

/* ---- the From: field ---- */

/* The domain of the one address in a From: value (unfolded). */
static bool value_domain(const char *v, size_t len, char *out,
    size_t outsize)
{
	/* Comments, quoted strings and the address; a comma outside them
	 * separates two authors. */
	char addr[512];
	size_t an = 0;
	bool angle = false, had_angle = false;
	int depth = 0;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (depth > 0) {
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '(') {
			depth = 1;
		} else if (c == '"') {
			for (i++; i < len && v[i] != '"'; i++)
				if (v[i] == '\\')
					i++;
			if (!angle)
				an = 0;	/* a display name */
		} else if (c == '<') {
			if (had_angle)
				return false;
			angle = had_angle = true;
			an = 0;
		} else if (c == '>') {
			angle = false;
		} else if (c == ',') {
			return false;
		} else if (c == ':' && !angle) {
			return false;	/* a group */
		} else if (c != ' ' && c != '\t' && c != '\r' && c != '\n' &&
		    (angle || !had_angle)) {
			if (an + 1 >= sizeof(addr))
				return false;
			addr[an++] = c;
		}
	}
	addr[an] = '\0';
	const char *at = strrchr(addr, '@');
	if (at == NULL || at[1] == '\0')
		return false;
	/* A domain name: LDH labels, or UTF-8 ones (RFC 6532). */
	for (const char *p = at + 1; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' &&
		    (unsigned char)*p < 0x80)
			return false;
	return lowered(at + 1, out, outsize) && strlen(at + 1) < outsize;
}

bool dmarc_from_domain(const char *h, size_t len, char *out, size_t outsize)
{
	const char *p = h, *end = h + len;
	const char *fv = NULL;
	size_t fvlen = 0;

	while (p < end && !(p[0] == '\r' || p[0] == '\n')) {
		/* One field: up to a line end not followed by WSP. */
		const char *f = p;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			p = nl ? nl + 1 : end;
			if (p >= end || (*p != ' ' && *p != '\t'))
				break;
		}
		if (p - f > 5 && strncasecmp(f, "from", 4) == 0) {
			const char *c = f + 4;
			while (c < p && (*c == ' ' || *c == '\t'))
				c++;
			if (c < p && *c == ':') {
				if (fv != NULL)
					return false;	/* two From: */
				fv = c + 1;
				fvlen = (size_t)(p - fv);
			}
		}
	}
	return fv != NULL && value_domain(fv, fvlen, out, outsize);
}
