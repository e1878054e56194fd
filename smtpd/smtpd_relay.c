/*
 * smtpd_relay.c - relay_domains: the domains this host accepts mail for
 * from anyone without being their final destination (a backup MX, or a
 * gateway in front of an internal server), and relay_recipient_maps,
 * their valid recipients. qmgr routes such mail as any other remote
 * domain: transport_maps, relayhost, else the MX records, where deliver
 * drops every MX host at or below our own preference and bounces with
 * 5.4.6 "mail for X loops back to myself" when we are the best one
 * (deliver/deliver_dest.c, RFC 5321 5.1).
 *
 * relay_domains entries: a domain ("example.org", either IDNA spelling;
 * ".example.org" for its subdomains, as Postfix writes it without
 * parent_domain_matches_subdomains) or a table ("hash:/path", looked up
 * by the domain, then by ".parent" for each parent). relay_recipient_maps
 * is looked up by address as every table of recipients (user+ext@domain,
 * user@domain, @domain): when it is set, a recipient it does not name
 * gets 550 5.1.1, so that a backup MX does not accept mail the primary
 * would bounce (backscatter).
 *
 * Trusts the config and the tables. A table that cannot be read is a
 * temporary failure (451 4.3.0), never a reason to accept or refuse.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "cfg.h"
#include "idna.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "smtpd.h"

static struct cfg_list relay_names;	/* the domains of relay_domains */
static struct map_list *relay_tables;	/* the tables of relay_domains */
static struct map_list *recipient_tables;
static bool relay_broken;		/* a table list did not open */

static bool is_table(const char *item)
{
	const char *colon = strchr(item, ':');
	return colon != NULL && colon[1] == '/';
}

static void relay_close(void)
{
	map_list_close(relay_tables);
	map_list_close(recipient_tables);
	relay_tables = recipient_tables = NULL;
	free(relay_names.items);
	relay_names.items = NULL;
	relay_names.count = 0;
}

void smtpd_relay_init(void)
{
	struct cfg_list specs = { 0 };
	char err[256];

	atexit(relay_close);
	relay_names.items = xcalloc(cfg.relay_domains.count + 1,
	    sizeof(*relay_names.items));
	specs.items = xcalloc(cfg.relay_domains.count + 1,
	    sizeof(*specs.items));
	for (size_t i = 0; i < cfg.relay_domains.count; i++) {
		char *item = cfg.relay_domains.items[i];
		if (is_table(item))
			specs.items[specs.count++] = item;
		else
			relay_names.items[relay_names.count++] = item;
	}
	if (specs.count > 0 &&
	    (relay_tables = map_list_open(&specs, err, sizeof(err))) == NULL) {
		log_warning("relay_domains: %s: their recipients get a "
		    "temporary error", err);
		relay_broken = true;
	}
	free(specs.items);
	if (cfg.relay_recipient_maps.count > 0 &&
	    (recipient_tables = map_list_open(&cfg.relay_recipient_maps, err,
	    sizeof(err))) == NULL) {
		log_warning("relay_recipient_maps: %s: relay recipients get a "
		    "temporary error", err);
		relay_broken = true;
	}
}

/* Is domain, or one of its parents as ".parent", in the table list? */
static enum map_result table_has_domain(const char *domain)
{
	char *value = NULL;
	enum map_result r = map_list_lookup(relay_tables, domain, &value);
	for (const char *p = strchr(domain, '.'); r == MAP_NOTFOUND && p;
	    p = strchr(p + 1, '.')) {
		r = map_list_lookup(relay_tables, p, &value);
	}
	free(value);
	return r;
}

/* A name, or ".parent" for a subdomain, of relay_domains' own list. */
static bool list_has_domain(const char *domain)
{
	if (idna_domain_in_list(&relay_names, domain))
		return true;
	for (const char *p = strchr(domain, '.'); p; p = strchr(p + 1, '.'))
		if (idna_domain_in_list(&relay_names, p))
			return true;
	return false;
}

enum map_result smtpd_relay_domain(const char *domain)
{
	if (domain == NULL || cfg.relay_domains.count == 0)
		return MAP_NOTFOUND;
	if (list_has_domain(domain))
		return MAP_FOUND;
	if (relay_tables == NULL)
		return relay_broken ? MAP_ERROR : MAP_NOTFOUND;
	char *ascii = idna_has_8bit(domain) ? idna_domain_to_ascii(domain) :
	    NULL;
	enum map_result r = table_has_domain(ascii ? ascii : domain);
	free(ascii);
	return r;
}

int smtpd_relay_check_rcpt(const char *address, const char **enhanced,
    const char **reason)
{
	if (cfg.relay_recipient_maps.count == 0)
		return 250;
	char *value = NULL;
	enum map_result r = recipient_tables == NULL ? MAP_ERROR :
	    map_list_lookup_address(recipient_tables, address, &value, NULL);
	free(value);
	if (r == MAP_FOUND)
		return 250;
	if (r == MAP_ERROR) {
		*enhanced = "4.3.0";
		*reason = "Recipient address rejected: Temporary lookup failure";
		return 451;
	}
	*enhanced = "5.1.1";
	*reason = "Recipient address rejected: User unknown in relay "
	    "recipient table";
	return 550;
}
