/*
 * idna.h - internationalized domain names (IDNA 2008, RFC 5890-5893,
 * with UTS #46 non-transitional mapping) through libidn2: a U-label
 * domain ("bücher.example") in its A-label spelling
 * ("xn--bcher-kva.example") for DNS and for next hops without SMTPUTF8
 * (RFC 6531 3.2), and one comparison for the two spellings of a domain.
 */
#ifndef POSTERN_IDNA_H
#define POSTERN_IDNA_H

#include <stdbool.h>

#include "cfg.h"

/*
 * domain in A-labels and lower case, malloc'd; an ASCII domain is only
 * lowered. NULL when a label is not a valid IDNA 2008 name.
 */
char *idna_domain_to_ascii(const char *domain);
/* The U-label spelling, malloc'd ("" labels stay ASCII); NULL if invalid. */
char *idna_domain_to_unicode(const char *domain);
/*
 * "local@domain" with the domain in A-labels, malloc'd. NULL when the
 * local part is not ASCII (only SMTPUTF8 can carry it) or the domain
 * is not valid. An address without "@" is copied.
 */
char *idna_address_to_ascii(const char *address);
/*
 * The address with its domain in the other spelling: A-labels for a
 * UTF-8 domain, UTF-8 for one with "xn--" labels; NULL when there is no
 * other (an ASCII domain without A-labels) or it is not valid.
 */
char *idna_address_other_spelling(const char *address);
/* Is domain in list, whichever spelling each side is written in? */
bool idna_domain_in_list(const struct cfg_list *list, const char *domain);
/* Does text hold a byte that is not ASCII? */
bool idna_has_8bit(const char *text);

#endif
