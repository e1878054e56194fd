/*
 * smtpd_check.c - smtpd's policy: which HELO names, and which recipients
 * from which clients, are accepted.
 *
 * Recipients in mydomains must exist in virtual_alias_maps, alias_maps,
 * mailbox_maps or local_recipient_maps (system users), so that unknown users are refused at RCPT (550 5.1.1) and
 * never accepted and bounced later (no backscatter). A table that cannot
 * be read is a temporary failure (451 4.3.0), never a reason to accept or
 * to refuse for good. Other domains are relayed only for clients inside
 * mynetworks or after AUTH: never an open relay; the domains of
 * relay_domains from anyone (smtpd_relay.c). A client on one of
 * smtpd_dnsbl_sites (RFC 5782) gets 554 5.7.1 for every recipient but
 * postmaster, unless it is inside mynetworks or authenticated; a list
 * that cannot be asked counts as "not listed", as in Postfix, so a dead
 * list never stops mail. On submission and smtps
 * (RFC 6409 4.3, RFC 8314) MAIL needs AUTH unless the client is inside
 * mynetworks (submission_require_auth).
 *
 * Trusts the config and the lookup tables; the address it is given has
 * passed the strict parser of mail/addr.c.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "cfg.h"
#include "idna.h"
#include "dns.h"
#include "local_user.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "smtpd.h"

static struct dns_dnsbl *dnsbl_lists;	/* from smtpd_dnsbl_sites */
static size_t dnsbl_count;
static struct map_list *virtual_alias_tables;
static struct map_list *alias_tables;
static struct map_list *mailbox_tables;
static bool tables_broken;	/* a table list could not be opened */

static struct map_list *open_tables(const char *key,
    const struct cfg_list *specs)
{
	char err[256];
	if (specs->count == 0)
		return NULL;
	struct map_list *ml = map_list_open(specs, err, sizeof(err));
	if (ml == NULL) {
		/* Refuse for now rather than accept blindly: 451 at RCPT. */
		log_warning("%s: %s: local recipients get a temporary error",
		    key, err);
		tables_broken = true;
	}
	return ml;
}

/* Tables stay open for the life of the process; close them at exit so
 * Berkeley DB's buffers are released (and leak checkers stay quiet). */
static void close_tables(void)
{
	map_list_close(virtual_alias_tables);
	map_list_close(alias_tables);
	map_list_close(mailbox_tables);
	virtual_alias_tables = alias_tables = mailbox_tables = NULL;
}

void smtpd_check_init(void)
{
	atexit(close_tables);
	virtual_alias_tables = open_tables("virtual_alias_maps",
	    &cfg.virtual_alias_maps);
	alias_tables = open_tables("alias_maps", &cfg.alias_maps);
	mailbox_tables = open_tables("mailbox_maps", &cfg.mailbox_maps);
	smtpd_relay_init();

	/* postern check has parsed them already; a bad one here is skipped. */
	dnsbl_lists = xcalloc(cfg.smtpd_dnsbl_sites.count + 1,
	    sizeof(*dnsbl_lists));
	for (size_t i = 0; i < cfg.smtpd_dnsbl_sites.count; i++) {
		char err[512];
		if (dns_dnsbl_parse(cfg.smtpd_dnsbl_sites.items[i],
		    &dnsbl_lists[dnsbl_count], err, sizeof(err)))
			dnsbl_count++;
		else
			log_warning("smtpd_dnsbl_sites: %s", err);
	}
}

/*
 * Is the client on a blocklist? Asked once a session, at its first
 * recipient (as Postfix asks at RCPT), in the order of smtpd_dnsbl_sites.
 */
static int check_dnsbl(struct smtpd_session *s, const char **enhanced,
    const char **reason)
{
	if (s->dnsbl == DNSBL_UNCHECKED) {
		s->dnsbl = DNSBL_CLEAN;
		const struct sockaddr *peer =
		    (const struct sockaddr *)&s->conn->peer;
		for (size_t i = 0; i < dnsbl_count && !s->conn->peer_is_unix;
		    i++) {
			char txt[256], err[512];
			enum dns_result r = dns_dnsbl_lookup(&dnsbl_lists[i],
			    peer, txt, sizeof(txt), err, sizeof(err));
			if (r == DNS_TEMPFAIL || r == DNS_FAIL)
				log_warning("%s: DNSBL %s: %s", s->client_log,
				    dnsbl_lists[i].zone, err);
			if (r != DNS_OK)
				continue;
			s->dnsbl = DNSBL_LISTED;
			snprintf(s->dnsbl_reply, sizeof(s->dnsbl_reply),
			    "Service unavailable; Client host [%s] blocked "
			    "using %s%s%s", s->client_addr, dnsbl_lists[i].zone,
			    txt[0] ? "; " : "", txt);
			break;
		}
	}
	if (s->dnsbl != DNSBL_LISTED)
		return 250;
	*enhanced = "5.7.1";
	*reason = s->dnsbl_reply;
	return 554;
}

bool smtpd_check_helo(const char *arg, const char **why)
{
	size_t len = strlen(arg);
	if (len > SMTPD_HELO_MAX) {
		*why = "name too long";
		return false;
	}
	/* RFC 5321 4.1.1.1: a domain or an address literal. Real clients
	 * send all kinds of names (underscores, bare words), as Postfix
	 * knows; we insist only on one word of printable ASCII. */
	for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
		if (*p <= ' ' || *p >= 0x7f) {
			*why = "invalid character in name";
			return false;
		}
	}
	return true;
}

/* "xn--" and U-label spellings of a local domain are the same (IDNA). */
static bool domain_is_local(const char *domain)
{
	return domain != NULL && idna_domain_in_list(&cfg.mydomains, domain);
}

/* Combine one lookup into the running verdict. */
static void note(enum map_result r, bool *found, bool *error)
{
	if (r == MAP_FOUND)
		*found = true;
	else if (r == MAP_ERROR)
		*error = true;
}

/* alias_maps are keyed by local part ("postmaster: root"), with the
 * +extension dropped when the full local part is not there. */
static enum map_result alias_lookup(const char *address)
{
	const char *at = strrchr(address, '@');
	size_t llen = at ? (size_t)(at - address) : strlen(address);
	char *local = xstrndup(address, llen);
	char *value = NULL;
	enum map_result r = map_list_lookup(alias_tables, local, &value);
	if (r == MAP_NOTFOUND) {
		char *plus = strchr(local, '+');
		if (plus != NULL && plus != local) {
			*plus = '\0';
			r = map_list_lookup(alias_tables, local, &value);
		}
	}
	free(value);
	free(local);
	return r;
}

/* Is a recipient in one of our domains known to some table? */
static int check_local_recipient(const char *address, const char **enhanced,
    const char **reason)
{
	bool found = false, error = tables_broken;
	char *value = NULL;

	if (virtual_alias_tables == NULL && alias_tables == NULL &&
	    mailbox_tables == NULL && !local_user_enabled() &&
	    !tables_broken) {
		/* No recipient tables at all: every local name is taken,
		 * as Postfix does with an empty local_recipient_maps. */
		return 250;
	}
	if (virtual_alias_tables != NULL) {
		note(map_list_lookup_address(virtual_alias_tables, address,
		    &value, NULL), &found, &error);
		free(value);
		value = NULL;
	}
	if (!found && alias_tables != NULL)
		note(alias_lookup(address), &found, &error);
	if (!found && mailbox_tables != NULL) {
		note(map_list_lookup_address(mailbox_tables, address, &value,
		    NULL), &found, &error);
		free(value);
		value = NULL;
		/* As lmtpd looks it up: either spelling of an IDN domain. */
		char *other = found ? NULL :
		    idna_address_other_spelling(address);
		if (other != NULL) {
			note(map_list_lookup_address(mailbox_tables, other,
			    &value, NULL), &found, &error);
			free(value);
			free(other);
		}
	}
	/* System users (local_recipient_maps), and postmaster, which qmgr
	 * gives to root when no alias names it (RFC 5321 4.5.1). */
	if (!found && local_user_enabled()) {
		note(local_user_lookup(address), &found, &error);
		char *user = local_user_name(address, NULL);
		if (user != NULL && strcmp(user, "postmaster") == 0)
			found = true;
		free(user);
	}
	if (found)
		return 250;
	if (error) {
		*enhanced = "4.3.0";
		*reason = "Recipient address rejected: Temporary lookup failure";
		return 451;
	}
	*enhanced = "5.1.1";
	*reason = "Recipient address rejected: User unknown in local "
	    "recipient table";
	return 550;
}

int smtpd_check_rcpt(struct smtpd_session *s, const char *address,
    const char **enhanced, const char **reason, bool *about_client)
{
	*about_client = false;
	/* RFC 5321 4.5.1: postmaster is always accepted. */
	if (strcasecmp(address, "postmaster") == 0)
		return 250;
	const char *domain = addr_domain_of(address);
	if (domain_is_local(domain)) {
		size_t llen = (size_t)(domain - 1 - address);
		if (llen == 10 && strncasecmp(address, "postmaster", 10) == 0)
			return 250;
		if (!s->client_trusted && s->auth_user == NULL) {
			int code = check_dnsbl(s, enhanced, reason);
			if (code != 250) {
				*about_client = true;
				return code;
			}
		}
		return check_local_recipient(address, enhanced, reason);
	}
	/* relay_domains (smtpd_relay.c): from anyone, as a backup MX. */
	enum map_result relay = smtpd_relay_domain(domain);
	if (relay == MAP_FOUND) {
		if (!s->client_trusted && s->auth_user == NULL) {
			int code = check_dnsbl(s, enhanced, reason);
			if (code != 250) {
				*about_client = true;
				return code;
			}
		}
		return smtpd_relay_check_rcpt(address, enhanced, reason);
	}
	/* Relaying: only for our own networks, or after AUTH. */
	if (s->client_trusted || s->auth_user != NULL)
		return 250;
	if (relay == MAP_ERROR) {
		*enhanced = "4.3.0";
		*reason = "Recipient address rejected: Temporary lookup failure";
		return 451;
	}
	*enhanced = "5.7.1";
	*reason = "Relay access denied";
	return 554;
}

int smtpd_check_mail(struct smtpd_session *s, const char **enhanced,
    const char **reason)
{
	if (!(s->submission || s->implicit_tls) ||
	    !cfg.submission_require_auth || s->auth_user != NULL ||
	    s->client_trusted)
		return 250;
	*enhanced = "5.7.0";
	/* RFC 4954 6: 530 5.7.0; say what is missing first. */
	*reason = smtpd_tls_available() && !s->tls_active ?
	    "Must issue a STARTTLS command first" : "Authentication required";
	return 530;
}
