/*
 * qmgr_resolve.c - where each recipient goes: alias expansion and routing.
 *
 * Expansion (before scheduling): virtual_alias_maps for every recipient
 * ("user+ext@domain", "user@domain", "@domain"), then alias_maps for
 * local ones (keyed by the local part, as aliases(5); "user+ext" falls
 * back to "user"). Expansion is recursive and loop-safe: a target equal to
 * the recipient itself or to one of its ancestors is delivered to that
 * mailbox as is (so "alice: alice, bob" keeps a copy for alice), and a
 * target already present in the message is dropped (duplicate
 * elimination). Bare targets ("bob") are qualified with the domain of the
 * address being expanded. Each level of expansion is appended to the
 * queue file and fsync'd before the parents are marked expanded (A), so
 * a crash can repeat an expansion but never lose one (queue.h).
 *
 * Routing of a recipient that is left: transport_maps first (address,
 * domain, parent domains ".example.org", "*"), for local domains too;
 * then a domain in mydomains (or no domain) goes to the local delivery
 * agent when local_recipient_maps knows its user (mail/local_user.h),
 * else to LMTP at lmtp_destination; other domains go to relayhost, else
 * to MX lookup of the domain (deliver smtp). A next hop may be a list
 * tried in order ("[a]:25, [b]:25", "unix:/x, [y]:24"); it is passed on
 * normalized, so that one list is one destination.
 *
 * Trusts the config and the tables (the administrator wrote them), but
 * still validates every address an expansion produces.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/string.h>

#include "addr.h"
#include "cfg.h"
#include "idna.h"
#include "log.h"
#include "local_target.h"
#include "local_user.h"
#include "map.h"
#include "mem.h"
#include "qmgr.h"
#include "sock.h"

static struct map_list *alias_maps;
static struct map_list *virtual_maps;
static struct map_list *transport_maps;
static char *lmtp_nexthop;
static char *relay_nexthop;	/* relayhost as a list, "" if none */

/* "unix:/path" stays; "host:port" and "[host]:port" become "[host]:port". */
static char *lmtp_hop_of(const char *text, char *err, size_t errsize)
{
	struct endpoint ep;
	if (!endpoint_parse(text, 24, &ep, err, errsize))
		return NULL;
	if (ep.kind == ENDPOINT_UNIX)
		return xasprintf("unix:%s", ep.path);
	if (ep.port == 0)
		ep.port = 24;
	return xasprintf("[%s]:%d", ep.host, ep.port);
}

/*
 * An LMTP next hop, one host or a list tried in order ("unix:/a,
 * [b]:24"), in the one spelling deliver reads: elements normalized and
 * joined by ", ", so that equal lists are one destination.
 */
static char *lmtp_nexthop_of(const char *text, char *err, size_t errsize)
{
	struct cfg_list hops = cfg_split_list(text);
	struct str out;

	if (hops.count == 0) {
		snprintf(err, errsize, "no destination given");
		cfg_list_free(&hops);
		return NULL;
	}
	str_init(&out, STR_NO_MAX);
	for (size_t i = 0; i < hops.count; i++) {
		char *hop = lmtp_hop_of(hops.items[i], err, errsize);
		if (hop == NULL) {
			str_free(&out);
			cfg_list_free(&hops);
			return NULL;
		}
		str_appendf(&out, "%s%s", i > 0 ? ", " : "", hop);
		free(hop);
	}
	cfg_list_free(&hops);
	return str_steal(&out);
}

/* An SMTP next-hop list in one spelling: "[a]:25, [b]:25". */
static char *smtp_nexthop_of(const char *text)
{
	struct cfg_list hops = cfg_split_list(text);
	struct str out;

	str_init(&out, STR_NO_MAX);
	for (size_t i = 0; i < hops.count; i++)
		str_appendf(&out, "%s%s", i > 0 ? ", " : "", hops.items[i]);
	cfg_list_free(&hops);
	return str_steal(&out);
}

static struct map_list *open_list(const char *name,
    const struct cfg_list *specs)
{
	char err[256];
	struct map_list *ml = map_list_open(specs, err, sizeof(err));
	if (ml == NULL)
		log_fatal("%s: %s", name, err);
	return ml;
}

void qmgr_resolve_init(void)
{
	char err[256];

	alias_maps = open_list("alias_maps", &cfg.alias_maps);
	virtual_maps = open_list("virtual_alias_maps", &cfg.virtual_alias_maps);
	transport_maps = open_list("transport_maps", &cfg.transport_maps);
	lmtp_nexthop = lmtp_nexthop_of(cfg.lmtp_destination, err, sizeof(err));
	if (lmtp_nexthop == NULL)
		log_fatal("lmtp_destination: %s", err);
	relay_nexthop = smtp_nexthop_of(cfg.relayhost);
	if (!local_user_init(err, sizeof(err)))
		log_fatal("local_recipient_maps: %s", err);
}

void qmgr_route_free(struct qroute *r)
{
	free(r->nexthop);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

bool qmgr_is_local_address(const char *address)
{
	const char *domain = addr_domain_of(address);
	if (domain == NULL)
		return true;	/* "postmaster" */
	/* "xn--" and U-label spellings are the same domain (IDNA 2008). */
	return idna_domain_in_list(&cfg.mydomains, domain);
}

/* ---- aliases the local agent expands ---- */

static size_t split_targets(const char *value, char ***out);
static char *local_part(const char *address, bool strip_ext);

/* "|command", "/file", ":include:/path": targets only the local agent
 * can deliver (as a user), as in aliases(5). */
static bool is_local_target(const char *t)
{
	return local_target_kind(t) != LOCAL_TARGET_ADDRESS;
}

/* alias_maps for a local address: "user+ext", then "user". */
static enum map_result alias_lookup(const char *address, char **value)
{
	enum map_result mr;
	char *key = local_part(address, false);

	mr = map_list_lookup(alias_maps, key, value);
	free(key);
	if (mr == MAP_NOTFOUND && (key = local_part(address, true))) {
		mr = map_list_lookup(alias_maps, key, value);
		free(key);
	}
	return mr;
}

/*
 * Is address an alias with a command, file or :include: target? Such an
 * alias is not expanded here but routed whole to the local agent (when
 * there is one), which expands it as Postfix's local(8) does, runs what
 * must run as a user and hands the addresses back (local/local_forward.c).
 */
static bool alias_wants_local_agent(const char *address)
{
	char *value = NULL, **targets;
	bool found = false;

	if (!local_user_enabled() || map_list_count(alias_maps) == 0 ||
	    !qmgr_is_local_address(address) ||
	    alias_lookup(address, &value) != MAP_FOUND)
		return false;
	size_t n = split_targets(value, &targets);
	for (size_t k = 0; k < n; k++) {
		found = found || is_local_target(targets[k]);
		free(targets[k]);
	}
	free(targets);
	free(value);
	return found;
}

/* ---- routing ---- */

static void route_fail(struct qroute *r, bool permanent, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void route_fail(struct qroute *r, bool permanent, const char *dsn,
    const char *fmt, ...)
{
	struct str text;
	va_list ap;

	r->kind = permanent ? ROUTE_BOUNCE : ROUTE_DEFER;
	strlcpy(r->dsn, dsn, sizeof(r->dsn));
	str_init(&text, STR_NO_MAX);
	va_start(ap, fmt);
	str_vappendf(&text, fmt, ap);
	va_end(ap);
	r->text = str_steal(&text);
}

static void route_to(struct qroute *r, const char *transport,
    const char *nexthop)
{
	r->kind = ROUTE_DELIVER;
	strlcpy(r->transport, transport, sizeof(r->transport));
	r->nexthop = xstrdup(nexthop);
}

/* "x.y.z text" -> dsn and text; the class digit must be `cls`. */
static void split_status_text(const char *value, char cls, char *dsn,
    size_t dsnsize, const char **text)
{
	const char *p = value;
	while (*p == ' ')
		p++;
	size_t n = strspn(p, "0123456789.");
	int dots = 0;
	for (size_t k = 0; k < n; k++)
		dots += p[k] == '.';
	if (n >= 5 && n < dsnsize && dots == 2 && p[0] == cls && p[1] == '.' &&
	    (p[n] == ' ' || p[n] == '\0')) {
		memcpy(dsn, p, n);
		dsn[n] = '\0';
		p += n;
		while (*p == ' ')
			p++;
	} else {
		snprintf(dsn, dsnsize, "%c.0.0", cls);
	}
	*text = p;
}

/*
 * "smtps:[host]", "smtps:[host]:port" (Postfix's name for SMTP with
 * implicit TLS, RFC 8314 3.3): transport "smtps" for deliver, which
 * then speaks TLS first; port 465 when none is written.
 */
static void route_smtps(struct qroute *r, const char *nexthop)
{
	struct cfg_list hops = cfg_split_list(nexthop);
	struct str out;
	char err[256];
	bool ok = hops.count > 0;

	str_init(&out, STR_NO_MAX);
	for (size_t i = 0; ok && i < hops.count; i++) {
		struct endpoint ep;
		ok = endpoint_parse(hops.items[i], 465, &ep, err, sizeof(err)) &&
		    ep.kind == ENDPOINT_INET;
		if (ok)
			str_appendf(&out, "%s%s%s%s:%d", i > 0 ? ", " : "",
			    ep.bracketed ? "[" : "", ep.host,
			    ep.bracketed ? "]" : "", ep.port);
	}
	cfg_list_free(&hops);
	if (ok) {
		route_to(r, "smtps", str_cstr(&out));
	} else {
		log_warning("transport_maps: bad smtps next hop \"%s\"",
		    nexthop);
		route_fail(r, false, "4.3.5", "%s",
		    "mail transport configuration error");
	}
	str_free(&out);
}

/* A transport_maps value: "smtp:[host]:port", "lmtp:unix:/path",
 * "error:5.1.1 text", "retry:4.x.y text", "local". */
static void route_by_value(const char *value, const char *domain,
    struct qroute *r)
{
	char transport[32];
	const char *colon = strchr(value, ':');
	size_t tlen = colon ? (size_t)(colon - value) : strlen(value);
	const char *nexthop = colon ? colon + 1 : "";
	char err[256];

	if (tlen >= sizeof(transport))
		tlen = sizeof(transport) - 1;
	memcpy(transport, value, tlen);
	transport[tlen] = '\0';
	while (*nexthop == ' ')
		nexthop++;

	if (strcasecmp(transport, "error") == 0 ||
	    strcasecmp(transport, "retry") == 0) {
		bool perm = tolower((unsigned char)transport[0]) == 'e';
		const char *text;
		char dsn[16];
		split_status_text(nexthop, perm ? '5' : '4', dsn, sizeof(dsn),
		    &text);
		route_fail(r, perm, dsn, "%s", *text ? text :
		    (perm ? "delivery refused by transport table" :
		    "delivery postponed by transport table"));
	} else if (strcasecmp(transport, "smtp") == 0 ||
	    strcasecmp(transport, "relay") == 0) {
		char *nh = smtp_nexthop_of(nexthop);
		route_to(r, "smtp", *nh ? nh : domain);
		free(nh);
	} else if (strcasecmp(transport, "smtps") == 0) {
		route_smtps(r, *nexthop ? nexthop : domain);
	} else if (strcasecmp(transport, "lmtp") == 0 ||
	    strcasecmp(transport, "local") == 0) {
		if (*nexthop == '\0') {
			route_to(r, "lmtp", lmtp_nexthop);
			return;
		}
		char *nh = lmtp_nexthop_of(nexthop, err, sizeof(err));
		if (nh == NULL) {
			log_warning("transport_maps: bad lmtp destination "
			    "\"%s\": %s", nexthop, err);
			route_fail(r, false, "4.3.5", "%s",
			    "mail transport configuration error");
			return;
		}
		route_to(r, "lmtp", nh);
		free(nh);
	} else {
		log_warning("transport_maps: unknown transport \"%s\"",
		    transport);
		route_fail(r, false, "4.3.5", "unknown mail transport %s",
		    transport);
	}
}

/*
 * A local message a filter of non_smtpd_milters rejected (pickup/,
 * attribute milter_reject = the filter's reply): every recipient
 * bounces with that reply, as Postfix's cleanup bounces such mail.
 */
void qmgr_resolve_rejected(const char *reply, struct qroute *r)
{
	const char *text;
	char dsn[16];

	memset(r, 0, sizeof(*r));
	/* "5.7.1 text" (pickup dropped the basic code). */
	split_status_text(reply, '5', dsn, sizeof(dsn), &text);
	if (dsn[0] != '5')
		strlcpy(dsn, "5.7.1", sizeof(dsn));
	route_fail(r, true, dsn, "%s", *text ? text : "rejected by a filter");
}

/* transport_maps: address, domain, ".parent" domains, then "*". */
static enum map_result lookup_transport(const char *address,
    const char *domain, char **value)
{
	enum map_result mr;
	char *lower = xstrdup(address);

	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	mr = map_list_lookup(transport_maps, lower, value);
	free(lower);
	if (mr != MAP_NOTFOUND || domain == NULL)
		return mr;
	mr = map_list_lookup(transport_maps, domain, value);
	for (const char *d = domain; mr == MAP_NOTFOUND && d != NULL;) {
		d = strchr(d + 1, '.');
		if (d != NULL)
			mr = map_list_lookup(transport_maps, d, value);
	}
	if (mr == MAP_NOTFOUND)
		mr = map_list_lookup(transport_maps, "*", value);
	return mr;
}

/*
 * transport_maps first, for every address, local ones too (as Postfix's
 * trivial-rewrite): a site can send some users of its own domains to
 * another back end ("alice@example.org lmtp:[store2]:24"). Then a local
 * domain goes to lmtp_destination, others to relayhost or MX lookup.
 */
void qmgr_resolve_route(const char *address, struct qroute *r)
{
	memset(r, 0, sizeof(*r));
	char *domain = addr_domain_lower(address);
	if (domain != NULL && *domain == '\0') {
		free(domain);
		domain = NULL;
	}
	/* DNS and the tables see the A-label spelling (RFC 5891 5). */
	if (domain != NULL && idna_has_8bit(domain)) {
		char *ascii = idna_domain_to_ascii(domain);
		free(domain);
		if (ascii == NULL) {
			route_fail(r, true, "5.1.2", "%s", "bad destination "
			    "domain: not a valid internationalized name");
			return;
		}
		domain = ascii;
	}
	if (map_list_count(transport_maps) > 0) {
		char *value = NULL;
		enum map_result mr = lookup_transport(address, domain, &value);
		if (mr == MAP_FOUND) {
			route_by_value(value, domain ? domain : cfg.myhostname,
			    r);
			free(value);
			free(domain);
			return;
		}
		if (mr == MAP_ERROR) {
			route_fail(r, false, "4.3.0", "%s",
			    "transport table lookup failed");
			free(domain);
			return;
		}
	}
	if (qmgr_is_local_address(address)) {
		/* System users first: the local agent, as each user; and
		 * the aliases only it can expand. */
		switch (!local_user_enabled() ? MAP_NOTFOUND :
		    alias_wants_local_agent(address) ? MAP_FOUND :
		    local_user_lookup(address)) {
		case MAP_FOUND:
			route_to(r, "local", cfg.myhostname);
			break;
		case MAP_ERROR:
			route_fail(r, false, "4.3.0", "%s",
			    "local recipient table lookup failed");
			break;
		case MAP_NOTFOUND:
			route_to(r, "lmtp", lmtp_nexthop);
			break;
		}
	} else if (domain == NULL) {
		route_fail(r, true, "5.1.3", "%s", "bad recipient address");
	} else if (relay_nexthop[0] != '\0') {
		route_to(r, "smtp", relay_nexthop);
	} else {
		route_to(r, "smtp", domain);
	}
	free(domain);
}

/* ---- expansion ---- */

/* Split an alias value "a, b, \"x y\"@z" at commas outside quotes. */
static size_t split_targets(const char *value, char ***out)
{
	size_t n = 0, cap = 4;
	char **v = xcalloc(cap, sizeof(*v));
	const char *p = value;

	while (*p) {
		bool quoted = false;
		const char *start = p;
		while (*p && (quoted || *p != ',')) {
			if (*p == '"')
				quoted = !quoted;
			else if (*p == '\\' && quoted && p[1])
				p++;
			p++;
		}
		const char *end = p;
		while (start < end && isspace((unsigned char)*start))
			start++;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (end > start + 1 && *start == '<' && end[-1] == '>') {
			start++;
			end--;
		}
		if (end > start) {
			if (n + 1 >= cap) {
				cap *= 2;
				v = xreallocarray(v, cap, sizeof(*v));
			}
			v[n++] = xstrndup(start, (size_t)(end - start));
		}
		if (*p == ',')
			p++;
	}
	v[n] = NULL;
	*out = v;
	return n;
}

/* The local part of "user@domain" (lowercased), and without "+ext". */
static char *local_part(const char *address, bool strip_ext)
{
	const char *at = strrchr(address, '@');
	size_t len = at ? (size_t)(at - address) : strlen(address);
	char *lp = xstrndup(address, len);
	for (char *p = lp; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (strip_ext) {
		char *plus = strchr(lp, '+');
		if (plus == NULL || plus == lp) {
			free(lp);
			return NULL;
		}
		*plus = '\0';
	}
	return lp;
}

/* Is address the same as recipient i or one of its ancestors? */
static bool is_ancestor(const struct queue_envelope *env, size_t i,
    const char *address, size_t *depth)
{
	size_t d = 0;
	bool found = false;
	for (long j = (long)i; j >= 0 && (size_t)j < env->nrcpts;
	    j = env->rcpts[j].parent) {
		if (!found && strcasecmp(env->rcpts[j].address, address) == 0)
			found = true;
		if (++d > QMGR_EXPAND_DEPTH + 1)
			break;
	}
	if (depth)
		*depth = d;
	return found;
}

bool qmgr_resolve_names_ancestor(const struct queue_envelope *env, size_t i)
{
	const struct queue_rcpt *r = &env->rcpts[i];
	return r->parent >= 0 && (size_t)r->parent < env->nrcpts &&
	    is_ancestor(env, (size_t)r->parent, r->address, NULL);
}

enum expand_result {
	EXPAND_NONE,		/* not an alias: deliver as is */
	EXPAND_LIST,		/* *targets holds the validated expansion */
	EXPAND_DECIDED,		/* failed: the outcome is set */
};

/* Look recipient i up in the alias tables. */
static enum expand_result expand_one(struct qmsg *msg, size_t i,
    char ***targets, size_t *ntargets)
{
	const struct queue_rcpt *r = &msg->env.rcpts[i];
	const char *address = r->address;
	char *value = NULL;
	const char *qualify_domain;
	enum map_result mr = MAP_NOTFOUND;
	size_t depth;

	/* A child that names an ancestor is that mailbox itself. */
	if (r->parent >= 0 && is_ancestor(&msg->env, (size_t)r->parent,
	    address, NULL))
		return EXPAND_NONE;
	is_ancestor(&msg->env, i, address, &depth);
	if (depth > QMGR_EXPAND_DEPTH) {
		qmgr_message_decide(msg, i, 'B', "5.4.6",
		    "alias expansion nested too deeply (mail loop?)");
		return EXPAND_DECIDED;
	}

	if (map_list_count(virtual_maps) > 0) {
		mr = map_list_lookup_address(virtual_maps, address, &value,
		    NULL);
		if (mr == MAP_ERROR) {
			qmgr_message_decide(msg, i, 'D', "4.3.0",
			    "virtual alias table lookup failed");
			return EXPAND_DECIDED;
		}
	}
	qualify_domain = addr_domain_of(address);
	if (mr == MAP_NOTFOUND && map_list_count(alias_maps) > 0 &&
	    qmgr_is_local_address(address)) {
		mr = alias_lookup(address, &value);
		if (mr == MAP_ERROR) {
			qmgr_message_decide(msg, i, 'D', "4.3.0",
			    "alias table lookup failed");
			return EXPAND_DECIDED;
		}
	}
	/* RFC 5321 4.5.1: postmaster must exist. With system users and no
	 * alias for it, it is root's, as in Debian's /etc/aliases. */
	if (mr == MAP_NOTFOUND && local_user_enabled() &&
	    qmgr_is_local_address(address)) {
		char *key = local_part(address, false);
		if (strcmp(key, "postmaster") == 0 &&
		    local_user_lookup(address) == MAP_NOTFOUND) {
			value = xstrdup("root");
			mr = MAP_FOUND;
		}
		free(key);
	}
	if (mr != MAP_FOUND)
		return EXPAND_NONE;
	if (qualify_domain == NULL)
		qualify_domain = cfg.myhostname;

	char **raw;
	size_t nraw = split_targets(value, &raw);
	/* Commands, files, :include:: the local agent expands the whole
	 * alias, as the user it must run them as (routed there). */
	for (size_t k = 0; local_user_enabled() && k < nraw; k++) {
		if (!is_local_target(raw[k]))
			continue;
		for (size_t j = 0; j < nraw; j++)
			free(raw[j]);
		free(raw);
		free(value);
		return EXPAND_NONE;
	}
	char **good = xcalloc(nraw + 1, sizeof(*good));
	size_t ngood = 0;
	for (size_t k = 0; k < nraw; k++) {
		char *t = raw[k];
		char esc[300];
		log_escape(esc, sizeof(esc), t, strlen(t));
		if (is_local_target(t)) {
			log_warning("%s: alias target \"%s\" of <%s> needs "
			    "the local delivery agent (local_recipient_maps "
			    "is empty); ignored", msg->id, esc, address);
			continue;
		}
		char *full = strchr(t, '@') ? xstrdup(t) :
		    xasprintf("%s@%s", t, qualify_domain);
		struct addr parsed;
		const char *why;
		if (!addr_parse_mailbox(full, ADDR_ALLOW_UTF8 |
		    ADDR_ALLOW_POSTMASTER, &parsed, &why)) {
			log_warning("%s: alias target \"%s\" of <%s>: %s; "
			    "ignored", msg->id, esc, address, why);
			free(full);
			continue;
		}
		addr_free(&parsed);
		good[ngood++] = full;
	}
	for (size_t k = 0; k < nraw; k++)
		free(raw[k]);
	free(raw);
	free(value);
	if (ngood == 0) {
		free(good);
		qmgr_message_decide(msg, i, 'B', "5.1.1",
		    "alias expands to no deliverable address");
		return EXPAND_DECIDED;
	}
	*targets = good;
	*ntargets = ngood;
	return EXPAND_LIST;
}

struct pending_expansion {
	size_t parent;
	char **targets;
	size_t count;
};

bool qmgr_resolve_expand(struct qmsg *msg, int fd)
{
	struct queue_envelope *env = &msg->env;
	struct qset present, selves;
	bool ok = true;

	/* Repair the crash case "children written, parent not yet marked":
	 * a recipient with children is expanded whatever its byte says. */
	for (size_t i = 0; i < env->nrcpts; i++) {
		long p = env->rcpts[i].parent;
		if (p >= 0 && (size_t)p < env->nrcpts &&
		    env->rcpts[p].status != QUEUE_RCPT_EXPANDED)
			qmgr_message_set_status(msg, fd, (size_t)p,
			    QUEUE_RCPT_EXPANDED);
	}
	if (map_list_count(virtual_maps) == 0 &&
	    map_list_count(alias_maps) == 0 && !local_user_enabled())
		return true;

	/* present: every address of the message (duplicates of these are
	 * dropped); selves: targets that name their own ancestor and are
	 * delivered to that mailbox, once. */
	qmgr_set_init(&present);
	qmgr_set_init(&selves);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		qmgr_set_add(&present, r->address);
		if (r->parent >= 0 && is_ancestor(env, (size_t)r->parent,
		    r->address, NULL))
			qmgr_set_add(&selves, r->address);
	}

	/* One level per pass: append, fsync, then mark the parents. */
	size_t start = 0;
	while (ok && start < env->nrcpts) {
		size_t end = env->nrcpts;
		struct pending_expansion *pe = xcalloc(end - start,
		    sizeof(*pe));
		size_t npe = 0;
		bool appended = false;

		for (size_t i = start; i < end; i++) {
			char **targets;
			size_t nt;
			if (env->rcpts[i].status != QUEUE_RCPT_PENDING)
				continue;
			if (expand_one(msg, i, &targets, &nt) != EXPAND_LIST)
				continue;
			/* Keep the targets that add something. */
			size_t keep = 0;
			for (size_t k = 0; k < nt; k++) {
				bool self = is_ancestor(env, i, targets[k],
				    NULL);
				bool add = self ?
				    qmgr_set_add(&selves, targets[k]) :
				    qmgr_set_add(&present, targets[k]);
				if (add)
					targets[keep++] = targets[k];
				else
					free(targets[k]);
			}
			if (env->nrcpts + keep > QMGR_EXPAND_MAX_RCPTS) {
				for (size_t k = 0; k < keep; k++)
					free(targets[k]);
				free(targets);
				qmgr_message_decide(msg, i, 'B', "5.5.3",
				    "too many recipients after alias "
				    "expansion");
				continue;
			}
			pe[npe].parent = i;
			pe[npe].targets = targets;
			pe[npe].count = keep;
			npe++;
		}
		for (size_t k = 0; ok && k < npe; k++) {
			if (pe[k].count == 0)
				continue;
			if (!queue_append_expansion(fd, env, pe[k].parent,
			    (const char *const *)pe[k].targets, pe[k].count)) {
				log_warning("%s: append expansion: %m",
				    msg->id);
				ok = false;
			}
			appended = true;
		}
		if (ok && appended && fsync(fd) < 0) {
			log_warning("%s: fsync: %m", msg->id);
			ok = false;
		}
		for (size_t k = 0; k < npe; k++) {
			if (ok) {
				const char *pa = env->rcpts[pe[k].parent].address;
				char esc[300];
				log_escape(esc, sizeof(esc), pa, strlen(pa));
				log_info("%s: <%s> expanded to %zu "
				    "recipient%s", msg->id, esc, pe[k].count,
				    pe[k].count == 1 ? "" : "s");
				qmgr_message_set_status(msg, fd, pe[k].parent,
				    QUEUE_RCPT_EXPANDED);
			}
			for (size_t t = 0; t < pe[k].count; t++)
				free(pe[k].targets[t]);
			free(pe[k].targets);
		}
		free(pe);
		qmgr_message_grow(msg);
		start = end;
	}
	qmgr_set_free(&present);
	qmgr_set_free(&selves);
	return ok;
}

bool qmgr_resolve_adopt(struct qmsg *msg, size_t parent,
    char *const *targets, size_t count, const char *fail_dsn,
    const char *fail_text)
{
	struct queue_envelope *env = &msg->env;
	char path[4096];
	const char **keep = xcalloc(count + 1, sizeof(*keep));
	size_t nkeep = 0, first = env->nrcpts;
	bool ok = false;

	/* As for aliases: a target naming the recipient or an ancestor is
	 * that mailbox (once); any other already in the message is a
	 * duplicate. */
	for (size_t k = 0; k < count; k++) {
		bool self = is_ancestor(env, parent, targets[k], NULL);
		bool dup = false;
		for (size_t i = 0; !dup && i < env->nrcpts; i++)
			dup = strcasecmp(env->rcpts[i].address,
			    targets[k]) == 0 && (!self ||
			    qmgr_resolve_names_ancestor(env, i));
		for (size_t j = 0; !dup && j < nkeep; j++)
			dup = strcasecmp(keep[j], targets[k]) == 0;
		if (!dup)
			keep[nkeep++] = targets[k];
	}
	if (env->nrcpts + nkeep > QMGR_EXPAND_MAX_RCPTS) {
		log_warning("%s: too many recipients after forwarding of "
		    "recipient %zu", msg->id, parent);
		free(keep);
		return false;
	}
	queue_path(path, sizeof(path), cfg.queue_directory, QUEUE_ACTIVE,
	    msg->id);
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		log_warning("%s: open to record forwarding: %m", msg->id);
		free(keep);
		return false;
	}
	/* The children on disk before the parent's A (queue.h). */
	if (nkeep > 0 && (!queue_append_expansion(fd, env, parent,
	    (const char *const *)keep, nkeep) || fsync(fd) < 0)) {
		log_warning("%s: record forwarding: %m", msg->id);
		goto out;
	}
	/* A command or file of it failed for good: its bounce now, since
	 * a recipient with children is expanded, never bounced later. */
	unsigned notify = env->rcpts[parent].notify;
	if (fail_dsn != NULL && !(notify & QUEUE_NOTIFY_NEVER) &&
	    (notify == 0 || (notify & QUEUE_NOTIFY_FAILURE))) {
		struct qdsn_rcpt d = { parent, fail_dsn, fail_text, NULL,
			QDSN_FAILED };
		if (!qmgr_bounce_write(msg, QDSN_FAILED, &d, 1))
			log_warning("%s: bounce for recipient %zu lost",
			    msg->id, parent);
	}
	qmgr_message_set_status(msg, fd, parent, QUEUE_RCPT_EXPANDED);
	const char *pa = env->rcpts[parent].address;
	char esc[300];
	log_escape(esc, sizeof(esc), pa, strlen(pa));
	log_info("%s: <%s> forwarded to %zu recipient%s", msg->id, esc, nkeep,
	    nkeep == 1 ? "" : "s");
	qmgr_message_grow(msg);
	/* The new ones may be aliases themselves. */
	if (!qmgr_resolve_expand(msg, fd))
		log_warning("%s: cannot record alias expansion of forwarded "
		    "recipients", msg->id);
	qmgr_message_grow(msg);
	ok = true;
out:
	close(fd);
	free(keep);
	if (ok)
		qmgr_message_route_pending(msg, first);
	return ok;
}
