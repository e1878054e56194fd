/*
 * smtpd_sender.c - who may use which envelope sender, at MAIL:
 * smtpd_sender_login_maps with Postfix's reject_sender_login_mismatch
 * semantics, and the submission rule for unauthenticated clients.
 *
 * - An authenticated client may send only as an address the table gives
 *   to its login (the table maps a sender, or @domain, to its owners'
 *   logins): anything else is 553 5.7.1 "Sender address rejected: not
 *   owned by user LOGIN". <> is looked up as "<>".
 * - On submission and smtps, a client that has not authenticated (and
 *   is outside mynetworks) may not use a sender in one of mydomains, nor
 *   one the table gives an owner: 553 5.7.1 "Sender address rejected:
 *   not logged in".
 *
 * Also the AUTH= parameter of MAIL (RFC 4954 5), recorded in the queue
 * file as the attribute auth= and passed on by deliver.
 *
 * Trusts: the table (root's) and the login name, which the door checked
 * against smtpd_sasl_users. The sender is the parsed, canonical address.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "cfg.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "smtpd.h"

static struct map_list *login_tables;
static bool login_tables_broken;

static void close_login_tables(void)
{
	map_list_close(login_tables);
	login_tables = NULL;
}

void smtpd_sender_init(void)
{
	char err[256];

	if (cfg.smtpd_sender_login_maps.count == 0)
		return;
	atexit(close_login_tables);
	login_tables = map_list_open(&cfg.smtpd_sender_login_maps, err,
	    sizeof(err));
	if (login_tables == NULL) {
		log_warning("smtpd_sender_login_maps: %s: senders get a "
		    "temporary error", err);
		login_tables_broken = true;
	}
}

/* The owners of a sender: *owners malloc'd on MAP_FOUND. */
static enum map_result owners_of(const char *sender, char **owners)
{
	if (login_tables_broken)
		return MAP_ERROR;
	if (login_tables == NULL)
		return MAP_NOTFOUND;
	if (sender[0] == '\0')
		return map_list_lookup(login_tables, "<>", owners);
	return map_list_lookup_address(login_tables, sender, owners, NULL);
}

/* Is login one of the owners (a list split at commas and white space)? */
static bool owned_by(const char *owners, const char *login)
{
	struct cfg_list l = cfg_split_list(owners);
	bool found = false;
	for (size_t i = 0; i < l.count && !found; i++)
		found = strcasecmp(l.items[i], login) == 0;
	cfg_list_free(&l);
	return found;
}

int smtpd_sender_check(struct smtpd_session *s, const char *sender,
    const char **enhanced, char *reason, size_t reason_size)
{
	bool submission = s->submission || s->implicit_tls;
	char *owners = NULL;

	if (s->auth_user == NULL && (!submission || s->client_trusted))
		return 250;
	if (s->auth_user != NULL && login_tables == NULL &&
	    !login_tables_broken)
		return 250;
	enum map_result r = owners_of(sender, &owners);
	if (r == MAP_ERROR) {
		*enhanced = "4.3.0";
		snprintf(reason, reason_size, "<%s>: Sender address rejected: "
		    "Temporary lookup failure", sender);
		return 451;
	}
	int code = 250;
	if (s->auth_user != NULL) {
		/* reject_authenticated_sender_login_mismatch */
		if (r != MAP_FOUND || !owned_by(owners, s->auth_user)) {
			code = 553;
			snprintf(reason, reason_size, "<%s>: Sender address "
			    "rejected: not owned by user %s", sender,
			    s->auth_user);
		}
	} else {
		/* reject_unauthenticated_sender_login_mismatch, and a local
		 * domain claimed without a login on a submission port */
		const char *domain = addr_domain_of(sender);
		if (r == MAP_FOUND || (domain != NULL &&
		    cfg_list_contains_nocase(&cfg.mydomains, domain))) {
			code = 553;
			snprintf(reason, reason_size, "<%s>: Sender address "
			    "rejected: not logged in", sender);
		}
	}
	free(owners);
	if (code != 250)
		*enhanced = "5.7.1";
	return code;
}

/*
 * RFC 4954 5: a mailbox asserted by a client we authenticated is kept;
 * from any other client it is as if AUTH=<> had been given. A value the
 * queue file cannot hold as one word (a space or control byte, from
 * xtext) is not trusted either.
 */
const char *smtpd_sender_auth_param(const struct smtpd_session *s)
{
	const char *v = s->txn ? s->txn->params.auth : NULL;

	if (v == NULL)
		return NULL;
	if (s->auth_user == NULL || v[0] == '\0' || strlen(v) > 512)
		return "<>";
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return "<>";
	return v;
}
