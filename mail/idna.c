/*
 * idna.c - domain names in their two spellings (idna.h), through
 * libidn2 with IDNA 2008 rules and UTS #46 non-transitional mapping
 * (IDN2_NONTRANSITIONAL: "ß" stays "ß", as the registries of .de and
 * others expect). Names come from the network (envelope addresses,
 * already checked by addr.c) or the config; libidn2 bounds and checks
 * them; nothing here is trusted to be valid.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>

#include "idna.h"
#include "mem.h"

bool idna_has_8bit(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		if (*p >= 0x80)
			return true;
	return false;
}

static char *lowered(const char *text)
{
	char *copy = xstrdup(text);
	for (char *p = copy; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return copy;
}

char *idna_domain_to_ascii(const char *domain)
{
	char *out = NULL;

	if (!idna_has_8bit(domain))
		return lowered(domain);
	if (idn2_to_ascii_8z(domain, &out, IDN2_NFC_INPUT |
	    IDN2_NONTRANSITIONAL) != IDN2_OK)
		return NULL;
	/* libidn2's memory is not ours to mix with xfree: copy it. */
	char *ours = lowered(out);
	idn2_free(out);
	return ours;
}

char *idna_domain_to_unicode(const char *domain)
{
	char *out = NULL;

	if (idn2_to_unicode_8z8z(domain, &out, 0) != IDN2_OK)
		return NULL;
	char *ours = lowered(out);
	idn2_free(out);
	return ours;
}

char *idna_address_to_ascii(const char *address)
{
	const char *at = strrchr(address, '@');
	if (at == NULL)
		return xstrdup(address);
	size_t local_len = (size_t)(at - address);
	for (size_t i = 0; i < local_len; i++)
		if ((unsigned char)address[i] >= 0x80)
			return NULL;
	char *domain = idna_domain_to_ascii(at + 1);
	if (domain == NULL)
		return NULL;
	char *out = xasprintf("%.*s@%s", (int)local_len, address, domain);
	free(domain);
	return out;
}

static bool has_alabel(const char *domain)
{
	return strncasecmp(domain, "xn--", 4) == 0 ||
	    strcasestr(domain, ".xn--") != NULL;
}

char *idna_address_other_spelling(const char *address)
{
	const char *at = strrchr(address, '@');
	if (at == NULL)
		return NULL;
	const char *domain = at + 1;
	char *other;
	if (idna_has_8bit(domain))
		other = idna_domain_to_ascii(domain);
	else if (has_alabel(domain))
		other = idna_domain_to_unicode(domain);
	else
		return NULL;
	if (other == NULL)
		return NULL;
	char *out = xasprintf("%.*s@%s", (int)(at - address), address, other);
	free(other);
	return out;
}

bool idna_domain_in_list(const struct cfg_list *list, const char *domain)
{
	/* The usual case costs no conversion: ASCII spellings are their
	 * own A-label forms. */
	bool ascii_domain = !idna_has_8bit(domain);
	char *ascii = NULL;
	bool found = false;

	for (size_t i = 0; i < list->count && !found; i++) {
		const char *item = list->items[i];
		if (strcasecmp(item, domain) == 0) {
			found = true;
			break;
		}
		if (ascii_domain && !idna_has_8bit(item))
			continue;
		if (ascii == NULL && (ascii = idna_domain_to_ascii(domain)) ==
		    NULL)
			break;
		char *other = idna_domain_to_ascii(item);
		found = other != NULL && strcmp(other, ascii) == 0;
		free(other);
	}
	free(ascii);
	return found;
}
