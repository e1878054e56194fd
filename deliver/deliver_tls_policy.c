/*
 * deliver_tls_policy.c - which TLS security level a session must reach:
 * smtp_tls_security_level, overridden per destination by
 * smtp_tls_policy_maps (Postfix's syntax and lookup order), raised for
 * a relay we hold SASL credentials for, and the names or fingerprints a
 * certificate must match at that level.
 *
 * Trusts the config and the policy tables (the administrator's). The
 * host names come from DNS (MX records) or the nexthop: as in Postfix,
 * "verify" accepts the MX name DNS gave, "secure" only the nexthop
 * domain and the names the entry lists (RFC 7672 and RFC 8461 explain
 * why an unsigned MX answer proves nothing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "deliver.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "sock.h"

static struct map_list *policy_tables;
static bool policy_broken;	/* configured, but could not be opened */

void deliver_tls_policy_init(void)
{
	char err[512];

	if (cfg.smtp_tls_policy_maps.count == 0)
		return;
	policy_tables = map_list_open(&cfg.smtp_tls_policy_maps, err,
	    sizeof(err));
	if (policy_tables == NULL) {
		log_warning("smtp_tls_policy_maps: %s: SMTP mail is deferred",
		    err);
		policy_broken = true;
	}
}

/*
 * The entry for nexthop, in Postfix's order: the nexthop as written
 * ("[relay]:587", "example.com"), without its port, then for a domain
 * its parents as ".parent" (which match subdomains only).
 */
static enum map_result policy_lookup(const char *nexthop,
    const struct endpoint *ep, char **value)
{
	enum map_result r = map_list_lookup(policy_tables, nexthop, value);
	if (r != MAP_NOTFOUND)
		return r;
	char key[300];
	snprintf(key, sizeof(key), ep->bracketed ? "[%s]" : "%s", ep->host);
	if (strcasecmp(key, nexthop) != 0) {
		r = map_list_lookup(policy_tables, key, value);
		if (r != MAP_NOTFOUND)
			return r;
	}
	if (ep->bracketed)
		return MAP_NOTFOUND;
	for (const char *dot = strchr(ep->host, '.'); dot != NULL && dot[1];
	    dot = strchr(dot + 1, '.')) {
		r = map_list_lookup(policy_tables, dot, value);
		if (r != MAP_NOTFOUND)
			return r;
	}
	return MAP_NOTFOUND;
}

/* Strength, for raising a level and never lowering it. */
static int level_rank(enum tls_level level)
{
	return level == TLS_LEVEL_NONE ? 0 : level == TLS_LEVEL_MAY ? 1 :
	    level == TLS_LEVEL_DANE ? 2 : level == TLS_LEVEL_ENCRYPT ? 3 : 4;
}

/* The match= defaults of the level, from smtp_tls_*_cert_match. */
static void default_matches(struct tls_dest_policy *p)
{
	const struct cfg_list *l = p->level == TLS_LEVEL_VERIFY ?
	    &cfg.smtp_tls_verify_cert_match : p->level == TLS_LEVEL_SECURE ?
	    &cfg.smtp_tls_secure_cert_match : NULL;
	char err[200];
	for (size_t i = 0; l != NULL && i < l->count; i++)
		(void)tls_dest_policy_add_match(p, l->items[i], err,
		    sizeof(err));
}

/* The names a certificate may carry: the tokens expanded (postconf(5)). */
static void expand_names(struct deliver_session *s, const char *domain)
{
	const struct tls_dest_policy *p = &s->tls_policy;
	s->tls_nnames = 0;
	for (size_t i = 0; i < p->nmatch && s->tls_nnames < TLS_MATCH_MAX;
	    i++) {
		const char *m = p->match[i];
		char *name;
		if (strcasecmp(m, "hostname") == 0)
			name = xstrdup(s->host);
		else if (strcasecmp(m, "nexthop") == 0)
			name = xstrdup(domain);
		else if (strcasecmp(m, "dot-nexthop") == 0)
			name = xasprintf(".%s", domain);
		else
			name = xstrdup(m);
		s->tls_names[s->tls_nnames++] = name;
	}
}

bool deliver_tls_policy_get(struct deliver_session *s,
    const struct deliver_job *job, struct deliver_outcome *out)
{
	char err[512], text[800];
	struct tls_dest_policy *p = &s->tls_policy;
	struct endpoint ep;

	memset(p, 0, sizeof(*p));
	s->tls_nnames = 0;
	s->tls_for_sasl = false;
	/* Postfix's lmtp_tls_* are another story: LMTP stays opportunistic. */
	if (s->lmtp || !tls_level_parse(cfg.smtp_tls_security_level,
	    &p->level))
		p->level = TLS_LEVEL_MAY;
	if (!endpoint_parse(job->j.nexthop, 25, &ep, err, sizeof(err)))
		return true;	/* deliver_dest.c has refused it already */
	if (s->lmtp)
		return true;

	if (policy_broken) {
		deliver_outcome_set(out, 'D', "4.3.0", "cannot read "
		    "smtp_tls_policy_maps", "cannot read smtp_tls_policy_maps");
		return false;
	}
	char *value = NULL;
	enum map_result r = policy_tables == NULL ? MAP_NOTFOUND :
	    policy_lookup(job->j.nexthop, &ep, &value);
	if (r == MAP_ERROR) {
		deliver_outcome_set(out, 'D', "4.3.0", "cannot read "
		    "smtp_tls_policy_maps", "cannot read smtp_tls_policy_maps");
		return false;
	}
	if (r == MAP_FOUND) {
		bool ok = tls_dest_policy_parse(value, p, err, sizeof(err));
		free(value);
		if (!ok) {
			snprintf(text, sizeof(text), "smtp_tls_policy_maps: bad "
			    "entry for %s: %s", job->j.nexthop, err);
			log_warning("%s: %s", job->j.queue_id, text);
			deliver_outcome_set(out, 'D', "4.3.5", text, text);
			p->level = TLS_LEVEL_MAY;
			return false;
		}
	}

	/*
	 * A password goes only where the server is who it says (issue 16):
	 * without an entry of its own, a relay we authenticate to gets
	 * smtp_sasl_tls_security_level, unless clear text is allowed.
	 */
	enum tls_level sasl_level;
	if (!p->from_map && !cfg.smtp_sasl_allow_plaintext &&
	    deliver_auth_wanted(s, job) &&
	    tls_level_parse(cfg.smtp_sasl_tls_security_level, &sasl_level) &&
	    level_rank(sasl_level) > level_rank(p->level)) {
		p->level = sasl_level;
		s->tls_for_sasl = true;
	}
	/* MTA-STS, below an entry of the map (deliver_mtasts.c). */
	deliver_mtasts_tls_policy(s, p);
	if (p->level == TLS_LEVEL_FINGERPRINT && p->nmatch == 0) {
		snprintf(text, sizeof(text), "TLS is required, but the "
		    "fingerprint level for %s has no match= fingerprints",
		    job->j.nexthop);
		deliver_outcome_set(out, 'D', "4.7.5", text, text);
		return false;
	}
	if (p->nmatch == 0)
		default_matches(p);
	expand_names(s, ep.host);
	deliver_requiretls_level(s, job, ep.host);
	return true;
}

/*
 * "dane" found no usable TLSA for this host and fell back to "may"
 * (deliver_dane.c): the domain's MTA-STS policy, which DANE would have
 * overruled, applies now.
 */
void deliver_tls_policy_after_dane(struct deliver_session *s,
    const struct deliver_job *job)
{
	struct endpoint ep;
	char err[512];
	/* dane_why is set only where a dane level found nothing. */
	if (s->lmtp || s->dane_active || s->dane_why[0] == '\0' ||
	    s->tls_policy.from_map ||
	    !endpoint_parse(job->j.nexthop, 25, &ep, err, sizeof(err)))
		return;
	enum tls_level before = s->tls_policy.level;
	deliver_mtasts_tls_policy(s, &s->tls_policy);
	if (s->tls_policy.level != before || s->tls_policy.nmatch > 0)
		expand_names(s, ep.host);
}

void deliver_tls_policy_set_level(struct deliver_session *s,
    enum tls_level level, const char *domain)
{
	struct tls_dest_policy *p = &s->tls_policy;
	if (p->level == level)
		return;
	p->level = level;
	/* The entry's match= were for its own level. */
	tls_dest_policy_free(p);
	for (size_t i = 0; i < s->tls_nnames; i++)
		free(s->tls_names[i]);
	s->tls_nnames = 0;
	default_matches(p);
	expand_names(s, domain);
}

void deliver_tls_policy_free(struct deliver_session *s)
{
	tls_dest_policy_free(&s->tls_policy);
	for (size_t i = 0; i < s->tls_nnames; i++)
		free(s->tls_names[i]);
	s->tls_nnames = 0;
}
