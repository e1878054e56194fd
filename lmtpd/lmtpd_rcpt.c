/*
 * lmtpd_rcpt.c - which Maildir a recipient address stands for.
 *
 * mailbox_maps maps an address to a Maildir path relative to mailbox_base
 * ("alice@example.org  example.org/alice/"). The lookup order (full
 * address, then without +detail, then @domain) is map_list_lookup_address's,
 * so "alice+lists@example.org" lands in alice's Maildir. A key with an
 * internationalized domain matches in either spelling ("xn--" or UTF-8).
 *
 * Trusts: the tables (written by the administrator), but not so far that a
 * value may point outside mailbox_base: absolute paths and ".." are refused.
 */
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "idna.h"
#include "lmtpd.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "str.h"

static struct map_list *mailbox_maps;

void lmtpd_rcpt_init(void)
{
	char err[512];

	mailbox_maps = map_list_open(&cfg.mailbox_maps, err, sizeof(err));
	if (mailbox_maps == NULL)
		log_fatal("mailbox_maps: %s", err);
	if (map_list_count(mailbox_maps) == 0)
		log_warning("mailbox_maps is empty: every recipient is refused");
}

enum lmtpd_rcpt_result lmtpd_rcpt_lookup(const char *address, char **maildir)
{
	char *value = NULL, *matched = NULL;
	enum map_result r;

	*maildir = NULL;
	r = map_list_lookup_address(mailbox_maps, address, &value, &matched);
	if (r == MAP_NOTFOUND) {
		/* The other spelling of an internationalized domain. */
		char *other = idna_address_other_spelling(address);
		if (other != NULL)
			r = map_list_lookup_address(mailbox_maps, other, &value,
			    &matched);
		free(other);
	}
	if (r == MAP_NOTFOUND)
		return LMTPD_RCPT_UNKNOWN;
	if (r == MAP_ERROR)
		return LMTPD_RCPT_TEMPFAIL;

	*maildir = lmtpd_maildir_path(cfg.mailbox_base, value);
	if (*maildir == NULL) {
		char esc[256], key[300];
		const char *k = matched ? matched : address;
		log_warning("mailbox_maps: unusable Maildir path \"%s\" for %s "
		    "(must be relative to mailbox_base, without \"..\")",
		    log_escape(esc, sizeof(esc), value, strlen(value)),
		    log_escape(key, sizeof(key), k, strlen(k)));
	}
	free(value);
	free(matched);
	return *maildir ? LMTPD_RCPT_FOUND : LMTPD_RCPT_BADMAP;
}
