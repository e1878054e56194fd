/*
 * cfg.c - postern.conf parsing into the typed global struct cfg.
 *
 * The config file is trusted (root-owned) but may be wrong: every error
 * names the file and line. Values are expanded ($name) after the whole
 * file is read, so order in the file does not matter.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "dns.h"
#include "log.h"
#include "mem.h"
#include "sock.h"
#include "str.h"
#include "tls.h"
#include "tls_policy.h"

struct cfg cfg;

enum cfg_type {
	CFG_TYPE_STRING,
	CFG_TYPE_LIST,
	CFG_TYPE_INT,
	CFG_TYPE_SIZE,
	CFG_TYPE_DURATION,
	CFG_TYPE_BOOL,
};

struct cfg_key_def {
	const char *name;
	enum cfg_type type;
	const char *default_value;
	size_t offset;
};

static const struct cfg_key_def key_defs[] = {
#define CFG_DEF(type, name, def) \
	{ #name, CFG_TYPE_##type, def, offsetof(struct cfg, name) },
	CFG_KEYS(CFG_DEF)
#undef CFG_DEF
};

#define KEY_COUNT (sizeof(key_defs) / sizeof(key_defs[0]))

/* Expanded text of every key, kept for cfg_print and cfg_value_text. */
static char *effective_text[KEY_COUNT];
/* What the file said for each key (NULL if it did not set it), for
 * "postern config -n". */
static char *file_text[KEY_COUNT];

static int key_index(const char *name, size_t len)
{
	for (size_t i = 0; i < KEY_COUNT; i++)
		if (strlen(key_defs[i].name) == len &&
		    memcmp(key_defs[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

bool cfg_key_exists(const char *key)
{
	return key_index(key, strlen(key)) >= 0;
}

/* ---- value parsers ---- */

static bool parse_number(const char *text, long long *out, const char **unit)
{
	char *end;
	errno = 0;
	while (isspace((unsigned char)*text))
		text++;
	if (!isdigit((unsigned char)*text))
		return false;
	long long v = strtoll(text, &end, 10);
	if (errno == ERANGE || v < 0)
		return false;
	*out = v;
	*unit = end;
	return true;
}

static bool scale(long long v, long long factor, long long *out)
{
	if (v > LLONG_MAX / factor)
		return false;
	*out = v * factor;
	return true;
}

bool cfg_parse_size(const char *text, long long *out)
{
	long long v;
	const char *unit;
	if (!parse_number(text, &v, &unit))
		return false;
	long long factor = 1;
	switch (tolower((unsigned char)*unit)) {
	case '\0':
		break;
	case 'k':
		factor = 1024;
		break;
	case 'm':
		factor = 1024LL * 1024;
		break;
	case 'g':
		factor = 1024LL * 1024 * 1024;
		break;
	default:
		return false;
	}
	if (*unit && unit[1] != '\0' && !(tolower((unsigned char)unit[1]) == 'b' &&
	    unit[2] == '\0'))
		return false;
	return scale(v, factor, out);
}

bool cfg_parse_duration(const char *text, long long *out)
{
	long long v;
	const char *unit;
	if (!parse_number(text, &v, &unit))
		return false;
	long long factor = 1;
	switch (*unit) {
	case '\0':
	case 's':
		break;
	case 'm':
		factor = 60;
		break;
	case 'h':
		factor = 3600;
		break;
	case 'd':
		factor = 86400;
		break;
	case 'w':
		factor = 7 * 86400;
		break;
	default:
		return false;
	}
	if (*unit && unit[1] != '\0')
		return false;
	return scale(v, factor, out);
}

bool cfg_parse_bool(const char *text, bool *out)
{
	if (strcasecmp(text, "yes") == 0 || strcasecmp(text, "true") == 0 ||
	    strcmp(text, "1") == 0) {
		*out = true;
		return true;
	}
	if (strcasecmp(text, "no") == 0 || strcasecmp(text, "false") == 0 ||
	    strcmp(text, "0") == 0) {
		*out = false;
		return true;
	}
	return false;
}

struct cfg_list cfg_split_list(const char *text)
{
	struct cfg_list list = { .items = xcalloc(1, sizeof(char *)), .count = 0 };
	const char *p = text;

	for (;;) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		const char *start = p;
		while (*p && *p != ',' && !isspace((unsigned char)*p))
			p++;
		list.items = xreallocarray(list.items, list.count + 2,
		    sizeof(char *));
		list.items[list.count++] = xstrndup(start, (size_t)(p - start));
		list.items[list.count] = NULL;
	}
	return list;
}

void cfg_list_free(struct cfg_list *list)
{
	xfree_strv(list->items);
	list->items = NULL;
	list->count = 0;
}

bool cfg_list_contains_nocase(const struct cfg_list *list, const char *s)
{
	for (size_t i = 0; i < list->count; i++)
		if (strcasecmp(list->items[i], s) == 0)
			return true;
	return false;
}

/* ---- loading ---- */

struct raw_value {
	char *text;	/* as written, NULL if not set */
	int line;
};

struct loader {
	struct raw_value raw[KEY_COUNT];
	char *expanded[KEY_COUNT];
	bool expanding[KEY_COUNT];
	const char *file;
	const char *config_directory;
	char *err;
	size_t errsize;
};

static bool fail(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(struct loader *ld, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(ld->err, ld->errsize, "%s:%d: %s", ld->file, line, msg);
	else
		snprintf(ld->err, ld->errsize, "%s: %s", ld->file, msg);
	return false;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static bool store_line(struct loader *ld, char *logical, int line)
{
	char *eq = strchr(logical, '=');
	if (eq == NULL)
		return fail(ld, line, "missing '=' in \"%.60s\"", logical);
	*eq = '\0';
	char *key = trim(logical);
	char *value = trim(eq + 1);
	if (*key == '\0')
		return fail(ld, line, "missing parameter name before '='");
	int idx = key_index(key, strlen(key));
	if (idx < 0)
		return fail(ld, line, "unknown parameter \"%.60s\"", key);
	if (ld->raw[idx].text != NULL)
		return fail(ld, line, "parameter \"%s\" already set at line %d",
		    key, ld->raw[idx].line);
	ld->raw[idx].text = xstrdup(value);
	ld->raw[idx].line = line;
	return true;
}

/* Split text (len bytes) into logical lines and store each. */
static bool parse_text(struct loader *ld, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	int lineno = 0, logical_line = 0;
	struct str logical, physical;
	bool ok = true;

	str_init(&logical, 64 * 1024);
	str_init(&physical, STR_NO_MAX);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		lineno++;
		if (memchr(p, '\0', n) != NULL) {
			ok = fail(ld, lineno, "NUL byte in line");
			break;
		}
		str_clear(&physical);
		str_append(&physical, p, n);
		p = nl ? nl + 1 : end;
		char *buf = physical.data ? physical.data : (char *)"";
		while (n > 0 && buf[n - 1] == '\r')
			buf[--n] = '\0';
		char *t = trim(buf);
		if (*t == '#' || *t == '\0')
			continue;
		if (isspace((unsigned char)buf[0])) {
			if (logical.len == 0) {
				ok = fail(ld, lineno,
				    "continuation line without a parameter");
				break;
			}
			if (!str_append_char(&logical, ' ') ||
			    !str_append_cstr(&logical, t)) {
				ok = fail(ld, lineno, "value too long");
				break;
			}
			continue;
		}
		if (logical.len > 0 &&
		    !store_line(ld, logical.data, logical_line)) {
			ok = false;
			break;
		}
		if (!str_set(&logical, t)) {
			ok = fail(ld, lineno, "value too long");
			break;
		}
		logical_line = lineno;
	}
	if (ok && logical.len > 0)
		ok = store_line(ld, logical.data, logical_line);
	str_free(&logical);
	str_free(&physical);
	return ok;
}

/* The whole file into out; false with errno on a read error. */
static bool slurp(FILE *fp, struct str *out)
{
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		str_append(out, chunk, n);
	return !ferror(fp);
}

static const char *raw_text(struct loader *ld, size_t i)
{
	return ld->raw[i].text ? ld->raw[i].text : key_defs[i].default_value;
}

static int raw_line(struct loader *ld, size_t i)
{
	return ld->raw[i].text ? ld->raw[i].line : 0;
}

/*
 * myhostname when not set: Debian's /etc/mailname when there is one (as
 * Debian's postfix and exim4 take it), else the host's fully qualified
 * name as hostname -f finds it (the canonical name of gethostname()
 * through getaddrinfo, AI_CANONNAME), else the bare host name.
 */
char *cfg_default_hostname(const char *mailname_path)
{
	char host[256];
	FILE *mailname = fopen(mailname_path, "re");
	if (mailname != NULL) {
		bool got = fgets(host, sizeof(host), mailname) != NULL;
		fclose(mailname);
		host[strcspn(host, " \t\r\n")] = '\0';
		if (got && host[0] != '\0')
			return xstrdup(host);
	}
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		return xstrdup("localhost");
	host[sizeof(host) - 1] = '\0';
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
		.ai_flags = AI_CANONNAME }, *res = NULL;
	if (strchr(host, '.') == NULL &&
	    getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL &&
	    res->ai_canonname != NULL && res->ai_canonname[0] != '\0' &&
	    strlen(res->ai_canonname) < sizeof(host))
		strlcpy(host, res->ai_canonname, sizeof(host));
	if (res != NULL)
		freeaddrinfo(res);
	return xstrdup(host);
}

static bool expand_key(struct loader *ld, size_t i, int depth);

#define CFG_SYSTEM_ALIASES "/etc/aliases"

/* Is local_recipient_maps given, and not empty? */
static bool system_users_on(struct loader *ld)
{
	const char *text = ld->raw[key_index("local_recipient_maps",
	    strlen("local_recipient_maps"))].text;
	if (text == NULL)
		return false;
	for (; *text; text++)
		if (*text != ' ' && *text != '\t' && *text != ',')
			return true;
	return false;
}

/* Expand $name and ${name} in text; "$$" is a literal '$'. */
static bool expand_text(struct loader *ld, size_t owner, const char *text,
    int depth, char **out)
{
	struct str s;
	str_init(&s, 64 * 1024);
	for (const char *p = text; *p; p++) {
		if (*p != '$') {
			str_append_char(&s, *p);
			continue;
		}
		if (p[1] == '$') {
			str_append_char(&s, '$');
			p++;
			continue;
		}
		bool braced = p[1] == '{';
		const char *name = p + 1 + braced;
		size_t len = 0;
		while (name[len] == '_' || isalnum((unsigned char)name[len]))
			len++;
		if (len == 0 || (braced && name[len] != '}')) {
			str_free(&s);
			return fail(ld, raw_line(ld, owner),
			    "%s: bad \"$\" reference", key_defs[owner].name);
		}
		if (len == strlen("config_directory") &&
		    memcmp(name, "config_directory", len) == 0) {
			str_append_cstr(&s, ld->config_directory);
		} else {
			int ref = key_index(name, len);
			if (ref < 0) {
				str_free(&s);
				return fail(ld, raw_line(ld, owner),
				    "%s: unknown parameter \"$%.*s\"",
				    key_defs[owner].name, (int)len, name);
			}
			if (!expand_key(ld, (size_t)ref, depth + 1)) {
				str_free(&s);
				return false;
			}
			str_append_cstr(&s, ld->expanded[ref]);
		}
		p = name + len - 1 + braced;
	}
	*out = str_steal(&s);
	return true;
}

static bool expand_key(struct loader *ld, size_t i, int depth)
{
	if (ld->expanded[i] != NULL)
		return true;
	if (ld->expanding[i] || depth > 20)
		return fail(ld, raw_line(ld, i),
		    "%s: recursive \"$\" reference", key_defs[i].name);
	ld->expanding[i] = true;
	const char *text = raw_text(ld, i);
	char *out = NULL;
	if (strcmp(key_defs[i].name, "myhostname") == 0 && *text == '\0') {
		out = cfg_default_hostname("/etc/mailname");
	} else if (strcmp(key_defs[i].name, "alias_maps") == 0 &&
	    ld->raw[i].text == NULL && system_users_on(ld) &&
	    access(CFG_SYSTEM_ALIASES, F_OK) == 0) {
		/* Debian's aliases, once the host's users get mail. */
		out = xstrdup("hash:" CFG_SYSTEM_ALIASES);
	} else if (!expand_text(ld, i, text, depth, &out)) {
		ld->expanding[i] = false;
		return false;
	}
	ld->expanding[i] = false;
	ld->expanded[i] = out;
	return true;
}

/* Type check and store one key's expanded value into dst. */
static bool convert(struct loader *ld, size_t i, struct cfg *dst)
{
	const struct cfg_key_def *def = &key_defs[i];
	const char *text = ld->expanded[i];
	void *field = (char *)dst + def->offset;
	int line = raw_line(ld, i);
	long long v;

	switch (def->type) {
	case CFG_TYPE_STRING:
		*(char **)field = xstrdup(text);
		return true;
	case CFG_TYPE_LIST:
		*(struct cfg_list *)field = cfg_split_list(text);
		return true;
	case CFG_TYPE_INT: {
		char *end;
		errno = 0;
		v = strtoll(text, &end, 10);
		if (*text == '\0' || *end != '\0' || errno == ERANGE)
			return fail(ld, line, "%s: \"%.60s\" is not a number",
			    def->name, text);
		*(long long *)field = v;
		return true;
	}
	case CFG_TYPE_SIZE:
		if (!cfg_parse_size(text, &v))
			return fail(ld, line, "%s: \"%.60s\" is not a size "
			    "(like 4096, 512k, 20m, 1g)", def->name, text);
		*(long long *)field = v;
		return true;
	case CFG_TYPE_DURATION:
		if (!cfg_parse_duration(text, &v))
			return fail(ld, line, "%s: \"%.60s\" is not a duration "
			    "(like 30s, 5m, 4h, 5d)", def->name, text);
		*(long long *)field = v;
		return true;
	case CFG_TYPE_BOOL:
		if (!cfg_parse_bool(text, (bool *)field))
			return fail(ld, line, "%s: \"%.60s\" is not yes or no",
			    def->name, text);
		return true;
	}
	return false;
}

/* screen's keys (screen/): the DNSBL sites and the access list. */
static bool check_screen(struct loader *ld, const struct cfg *c)
{
	char err[256];
	int weight;

	for (size_t j = 0; j < c->screen_dnsbl_sites.count; j++) {
		struct dns_dnsbl list;
		if (!dns_dnsbl_parse_weighted(c->screen_dnsbl_sites.items[j],
		    &list, &weight, err, sizeof(err)))
			return fail(ld, raw_line(ld, (size_t)key_index(
			    "screen_dnsbl_sites", 18)), "screen_dnsbl_sites: "
			    "%s", err);
	}
	for (size_t j = 0; j < c->screen_access_list.count; j++) {
		const char *item = c->screen_access_list.items[j];
		if (strcmp(item, "permit_mynetworks") != 0 &&
		    strncmp(item, "cidr:/", 6) != 0)
			return fail(ld, raw_line(ld, (size_t)key_index(
			    "screen_access_list", 18)), "screen_access_list: "
			    "\"%s\" is not permit_mynetworks or cidr:/path",
			    item);
	}
	if (c->screen_dnsbl_threshold < 1)
		return fail(ld, raw_line(ld, (size_t)key_index(
		    "screen_dnsbl_threshold", 22)), "screen_dnsbl_threshold: "
		    "must be 1 or more");
	if (c->screen_client_limit < 1)
		return fail(ld, raw_line(ld, (size_t)key_index(
		    "screen_client_limit", 19)), "screen_client_limit: must "
		    "be 1 or more");
	return true;
}

/* Checks that need more than the type: endpoints, networks, ranges. */
static bool check_semantics(struct loader *ld, const struct cfg *c)
{
	static const char *const endpoint_lists[] = {
		"smtp_listen", "submission_listen", "smtps_listen", "lmtp_listen",
	};
	char err[256];

	for (size_t k = 0; k < sizeof(endpoint_lists) / sizeof(*endpoint_lists); k++) {
		int i = key_index(endpoint_lists[k], strlen(endpoint_lists[k]));
		const struct cfg_list *l =
		    (const struct cfg_list *)((const char *)c + key_defs[i].offset);
		bool after_tcp = false;
		for (size_t j = 0; j < l->count; j++) {
			struct endpoint ep;
			/* "ENDPOINT proxy": smtpd reads a PROXY protocol
			 * header first (smtpd/smtpd_proxy.c); TCP only. */
			if (strcmp(l->items[j], "proxy") == 0) {
				if (!after_tcp || k == 3)
					return fail(ld, raw_line(ld, (size_t)i),
					    "%s: \"proxy\" must follow a TCP "
					    "endpoint of smtpd", key_defs[i].name);
				after_tcp = false;
				continue;
			}
			if (!endpoint_parse(l->items[j], 0, &ep, err, sizeof(err)))
				return fail(ld, raw_line(ld, (size_t)i), "%s: %s",
				    key_defs[i].name, err);
			if (ep.kind == ENDPOINT_INET && ep.port == 0)
				return fail(ld, raw_line(ld, (size_t)i),
				    "%s: \"%s\" needs a port", key_defs[i].name,
				    l->items[j]);
			after_tcp = ep.kind == ENDPOINT_INET;
		}
	}
	for (size_t j = 0; j < c->mynetworks.count; j++) {
		if (!sock_network_valid(c->mynetworks.items[j]))
			return fail(ld, raw_line(ld, (size_t)key_index("mynetworks",
			    10)), "mynetworks: \"%s\" is not a network "
			    "(like 192.0.2.0/24 or [2001:db8::]/32)",
			    c->mynetworks.items[j]);
	}
	for (size_t j = 0; j < c->dns_servers.count; j++) {
		struct endpoint ep;
		struct sockaddr_storage ss;
		socklen_t sslen;
		if (!endpoint_parse(c->dns_servers.items[j], 53, &ep, err,
		    sizeof(err)) || ep.kind != ENDPOINT_INET ||
		    !sock_addr_parse(ep.host, ep.port, &ss, &sslen))
			return fail(ld, raw_line(ld, (size_t)key_index("dns_servers",
			    11)), "dns_servers: \"%s\" is not an IP address "
			    "(like 127.0.0.1, 127.0.0.1:5353 or [::1]:53)",
			    c->dns_servers.items[j]);
	}
	for (size_t j = 0; j < c->smtpd_dnsbl_sites.count; j++) {
		struct dns_dnsbl list;
		if (!dns_dnsbl_parse(c->smtpd_dnsbl_sites.items[j], &list, err,
		    sizeof(err)))
			return fail(ld, raw_line(ld, (size_t)key_index(
			    "smtpd_dnsbl_sites", 17)), "smtpd_dnsbl_sites: %s",
			    err);
	}
	/* TLS settings: checked here so that "postern check" names them. */
	static const char *const tls_keys[][2] = {
		{ "smtpd_tls_protocols", "smtpd_tls_ciphers" },
		{ "smtp_tls_protocols", "smtp_tls_ciphers" },
	};
	for (size_t k = 0; k < 2; k++) {
		struct tls_policy policy;
		const struct cfg_list *protocols = k == 0 ?
		    &c->smtpd_tls_protocols : &c->smtp_tls_protocols;
		const char *grade = k == 0 ? c->smtpd_tls_ciphers :
		    c->smtp_tls_ciphers;
		if (!tls_policy_parse(protocols, grade, &policy, err,
		    sizeof(err))) {
			/* Which of the two: the grade error names a grade. */
			const char *key = strstr(err, "cipher grade") ?
			    tls_keys[k][1] : tls_keys[k][0];
			return fail(ld, raw_line(ld, (size_t)key_index(key,
			    strlen(key))), "%s: %s", key, err);
		}
	}
	/* The SMTP client's TLS levels (mail/tls_policy.c). */
	static const char *const level_keys[] = { "smtp_tls_security_level",
	    "smtp_sasl_tls_security_level" };
	for (size_t k = 0; k < 2; k++) {
		enum tls_level level;
		const char *v = k == 0 ? c->smtp_tls_security_level :
		    c->smtp_sasl_tls_security_level;
		if (!tls_level_parse(v, &level))
			return fail(ld, raw_line(ld, (size_t)key_index(
			    level_keys[k], strlen(level_keys[k]))), "%s: \"%s\" "
			    "is not a TLS security level (none, may, encrypt, "
			    "dane, dane-only, fingerprint, verify, secure)",
			    level_keys[k], v);
	}
	if (c->lmtp_destination[0] != '\0') {
		/* One destination or a list tried in order (failover). */
		struct cfg_list hops = cfg_split_list(c->lmtp_destination);
		bool ok = true;
		for (size_t i = 0; ok && i < hops.count; i++) {
			struct endpoint ep;
			ok = endpoint_parse(hops.items[i], 24, &ep, err,
			    sizeof(err));
		}
		cfg_list_free(&hops);
		if (!ok)
			return fail(ld, raw_line(ld, (size_t)key_index(
			    "lmtp_destination", 16)), "lmtp_destination: %s", err);
	}
	struct { const char *name; long long value; long long min; } ranges[] = {
		{ "smtpd_processes", c->smtpd_processes, 1 },
		{ "lmtpd_processes", c->lmtpd_processes, 1 },
		{ "deliver_processes", c->deliver_processes, 1 },
		{ "max_use", c->max_use, 1 },
		{ "process_min_idle", c->process_min_idle, 0 },
		{ "smtpd_recipient_limit", c->smtpd_recipient_limit, 1 },
		{ "qmgr_active_limit", c->qmgr_active_limit, 1 },
		{ "destination_concurrency_limit", c->destination_concurrency_limit, 1 },
		{ "initial_destination_concurrency", c->initial_destination_concurrency, 1 },
		{ "smtpd_timeout", c->smtpd_timeout, 1 },
		{ "minimal_backoff", c->minimal_backoff, 1 },
	};
	for (size_t k = 0; k < sizeof(ranges) / sizeof(*ranges); k++) {
		if (ranges[k].value < ranges[k].min) {
			int i = key_index(ranges[k].name, strlen(ranges[k].name));
			return fail(ld, raw_line(ld, (size_t)i),
			    "%s: must be at least %lld", ranges[k].name,
			    ranges[k].min);
		}
	}
	if (c->maximal_backoff < c->minimal_backoff)
		return fail(ld, raw_line(ld, (size_t)key_index("maximal_backoff",
		    15)), "maximal_backoff is less than minimal_backoff");
	/* Milters (smtpd/smtpd_milter.c), as Postfix writes them. */
	for (size_t k = 0; k < 2; k++) {
		const char *key = k == 0 ? "smtpd_milters" : "non_smtpd_milters";
		const struct cfg_list *l = k == 0 ? &c->smtpd_milters :
		    &c->non_smtpd_milters;
		for (size_t j = 0; j < l->count; j++) {
			const char *m = l->items[j];
			struct endpoint ep;
			bool ok = (strncmp(m, "unix:/", 6) == 0 && strlen(m) < 6 +
			    sizeof(ep.path)) || (strncmp(m, "local:/", 7) == 0 &&
			    strlen(m) < 7 + sizeof(ep.path)) ||
			    (strncmp(m, "inet:", 5) == 0 &&
			    endpoint_parse(m + 5, 0, &ep, err, sizeof(err)) &&
			    ep.kind == ENDPOINT_INET && ep.port > 0);
			if (!ok)
				return fail(ld, raw_line(ld, (size_t)key_index(key,
				    strlen(key))), "%s: \"%s\" is not "
				    "inet:host:port or unix:/path", key, m);
		}
	}
	if (strcmp(c->milter_default_action, "tempfail") != 0 &&
	    strcmp(c->milter_default_action, "accept") != 0 &&
	    strcmp(c->milter_default_action, "reject") != 0 &&
	    strcmp(c->milter_default_action, "quarantine") != 0)
		return fail(ld, raw_line(ld, (size_t)key_index(
		    "milter_default_action", 21)), "milter_default_action: "
		    "\"%s\" is not tempfail, accept, reject or quarantine",
		    c->milter_default_action);
	if (c->milter_protocol < 2 || c->milter_protocol > 6)
		return fail(ld, raw_line(ld, (size_t)key_index("milter_protocol",
		    15)), "milter_protocol: must be 2 to 6");
	/* Mail authentication checks (smtpd/smtpd_authcheck.c). */
	if (strcmp(c->smtpd_spf, "no") != 0 &&
	    strcmp(c->smtpd_spf, "record") != 0 &&
	    strcmp(c->smtpd_spf, "enforce") != 0)
		return fail(ld, raw_line(ld, (size_t)key_index("smtpd_spf", 9)),
		    "smtpd_spf: \"%s\" is not no, record or enforce",
		    c->smtpd_spf);
	if (strcmp(c->dmarc_enforce, "no") != 0 &&
	    strcmp(c->dmarc_enforce, "quarantine") != 0 &&
	    strcmp(c->dmarc_enforce, "reject") != 0)
		return fail(ld, raw_line(ld, (size_t)key_index("dmarc_enforce",
		    13)), "dmarc_enforce: \"%s\" is not no, quarantine or "
		    "reject", c->dmarc_enforce);
	if (c->smtpd_dkim_max_signatures < 0)
		return fail(ld, raw_line(ld, (size_t)key_index(
		    "smtpd_dkim_max_signatures", 25)),
		    "smtpd_dkim_max_signatures: must be at least 0");
	/* DANE (deliver/deliver_dane.c): Postfix's words for DNSSEC. */
	if (strcmp(c->smtp_dns_support_level, "enabled") != 0 &&
	    strcmp(c->smtp_dns_support_level, "dnssec") != 0)
		return fail(ld, raw_line(ld, (size_t)key_index(
		    "smtp_dns_support_level", 22)), "smtp_dns_support_level: "
		    "\"%s\" is not enabled or dnssec", c->smtp_dns_support_level);
	for (size_t j = 0; j < c->smtp_dnssec_trusted_resolvers.count; j++) {
		if (!sock_network_valid(c->smtp_dnssec_trusted_resolvers.items[j]))
			return fail(ld, raw_line(ld, (size_t)key_index(
			    "smtp_dnssec_trusted_resolvers", 29)),
			    "smtp_dnssec_trusted_resolvers: \"%s\" is not a "
			    "network (like 127.0.0.0/8 or [::1]/128)",
			    c->smtp_dnssec_trusted_resolvers.items[j]);
	}
	if (!check_screen(ld, c))
		return false;
	/* Greylisting (smtpd/smtpd_greylist.c): networks only. */
	for (size_t j = 0; j < c->smtpd_greylist_exceptions.count; j++) {
		if (!sock_network_valid(c->smtpd_greylist_exceptions.items[j]))
			return fail(ld, raw_line(ld, (size_t)key_index(
			    "smtpd_greylist_exceptions", 25)),
			    "smtpd_greylist_exceptions: \"%s\" is not a network "
			    "(like 192.0.2.0/24 or [2001:db8::]/32)",
			    c->smtpd_greylist_exceptions.items[j]);
	}
	if (c->smtpd_greylist && c->smtpd_greylist_database[0] != '/')
		return fail(ld, raw_line(ld, (size_t)key_index(
		    "smtpd_greylist_database", 23)), "smtpd_greylist_database: "
		    "must be an absolute path");
	return true;
}

static void cfg_free_fields(struct cfg *c)
{
	for (size_t i = 0; i < KEY_COUNT; i++) {
		void *field = (char *)c + key_defs[i].offset;
		if (key_defs[i].type == CFG_TYPE_STRING) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (key_defs[i].type == CFG_TYPE_LIST) {
			cfg_list_free((struct cfg_list *)field);
		}
	}
	free(c->config_directory);
	free(c->config_file);
	c->config_directory = c->config_file = NULL;
}

static void loader_free(struct loader *ld)
{
	for (size_t i = 0; i < KEY_COUNT; i++) {
		free(ld->raw[i].text);
		free(ld->expanded[i]);
	}
}

bool cfg_load(const char *config_directory, bool allow_missing, char *err,
    size_t errsize)
{
	char *file = xasprintf("%s/%s", config_directory, CFG_FILE_NAME);
	struct str text;
	bool ok = true;

	str_init(&text, STR_NO_MAX);
	FILE *fp = fopen(file, "re");
	if (fp == NULL) {
		if (!(errno == ENOENT && allow_missing)) {
			snprintf(err, errsize, "%s: %s", file, strerror(errno));
			ok = false;
		}
	} else {
		if (!slurp(fp, &text)) {
			snprintf(err, errsize, "%s: %s", file, strerror(errno));
			ok = false;
		}
		fclose(fp);
	}
	if (ok)
		ok = cfg_load_text(config_directory, file, text.data ?
		    text.data : "", text.len, err, errsize);
	str_free(&text);
	free(file);
	return ok;
}

bool cfg_load_text(const char *config_directory, const char *file,
    const char *text, size_t len, char *err, size_t errsize)
{
	struct loader ld;
	struct cfg fresh;
	bool ok;

	memset(&ld, 0, sizeof(ld));
	memset(&fresh, 0, sizeof(fresh));
	ld.file = file;
	ld.config_directory = config_directory;
	ld.err = err;
	ld.errsize = errsize;

	ok = parse_text(&ld, text, len);
	for (size_t i = 0; ok && i < KEY_COUNT; i++)
		ok = expand_key(&ld, i, 0);
	for (size_t i = 0; ok && i < KEY_COUNT; i++)
		ok = convert(&ld, i, &fresh);
	if (ok)
		ok = check_semantics(&ld, &fresh);
	if (!ok) {
		cfg_free_fields(&fresh);
		loader_free(&ld);
		return false;
	}
	cfg_free_fields(&cfg);
	cfg = fresh;
	cfg.config_directory = xstrdup(config_directory);
	cfg.config_file = xstrdup(file);
	for (size_t i = 0; i < KEY_COUNT; i++) {
		free(effective_text[i]);
		effective_text[i] = ld.expanded[i];
		ld.expanded[i] = NULL;
		free(file_text[i]);
		file_text[i] = ld.raw[i].text ? xstrdup(ld.raw[i].text) : NULL;
	}
	loader_free(&ld);
	return true;
}

void cfg_print(FILE *out)
{
	for (size_t i = 0; i < KEY_COUNT; i++)
		fprintf(out, "%s = %s\n", key_defs[i].name,
		    effective_text[i] ? effective_text[i] : "");
}

bool cfg_value_text(const char *key, char *out, size_t outsize)
{
	int i = key_index(key, strlen(key));
	if (i < 0)
		return false;
	strlcpy(out, effective_text[i] ? effective_text[i] : "", outsize);
	return true;
}

size_t cfg_key_count(void)
{
	return KEY_COUNT;
}

const char *cfg_key_name(size_t i)
{
	return i < KEY_COUNT ? key_defs[i].name : NULL;
}

const char *cfg_key_default(size_t i)
{
	return i < KEY_COUNT ? key_defs[i].default_value : NULL;
}

const char *cfg_key_file_text(size_t i)
{
	return i < KEY_COUNT ? file_text[i] : NULL;
}

const char *cfg_key_effective(size_t i)
{
	return i < KEY_COUNT && effective_text[i] ? effective_text[i] : "";
}

int cfg_key_lookup(const char *key)
{
	return key_index(key, strlen(key));
}
