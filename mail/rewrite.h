/*
 * rewrite.h - address rewriting as Postfix's cleanup and smtp do it, for
 * the satellite role (a host that sends everything through a provider):
 *
 *   canonical  sender_canonical_maps / recipient_canonical_maps, then
 *              canonical_maps, then masquerade_domains (with
 *              masquerade_exceptions): envelope and header addresses.
 *              Applied once, where mail enters: pickup for local mail,
 *              smtpd for trusted clients (mynetworks, SASL) only.
 *   generic    smtp_generic_maps: envelope and headers of mail that
 *              deliver sends out by SMTP (root@host.localdomain becomes
 *              admin@example.org on the way out, and nowhere else).
 *
 * A table's keys, in this order (canonical(5), generic(5)):
 * user+ext@domain, user@domain, user (only for a domain of mydomains or
 * myhostname), @domain. A value "@other" keeps the user part; a value
 * without "@" gets "@" myhostname; an unmatched +ext is kept.
 *
 * The header fields rewritten: From, Sender, Reply-To, Errors-To,
 * Resent-From, Resent-Sender, Resent-Reply-To (as senders); To, Cc, Bcc,
 * Resent-To, Resent-Cc, Resent-Bcc, Apparently-To (as recipients). Only
 * the addresses in them change; display names, comments, groups and the
 * folding stay as they were.
 */
#ifndef POSTERN_REWRITE_H
#define POSTERN_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

enum rewrite_role {
	REWRITE_CANONICAL,	/* canonical maps and masquerading */
	REWRITE_GENERIC,	/* smtp_generic_maps */
};

enum rewrite_class {
	REWRITE_SENDER,
	REWRITE_RECIPIENT,
};

struct rewrite;

/* Does the config ask for this role at all? */
bool rewrite_configured(enum rewrite_role role);
/* The tables of role; NULL with err when one cannot be opened. */
struct rewrite *rewrite_open(enum rewrite_role role, char *err,
    size_t errsize);
void rewrite_close(struct rewrite *rw);
/* The tables of role when the config asks for it, else NULL; a table
 * that cannot be opened ends the process (a program's start-up). */
struct rewrite *rewrite_open_configured(enum rewrite_role role);

/*
 * One address: the new one (malloc'd) or NULL when it stays. envelope:
 * an envelope recipient is not masqueraded (Postfix's default
 * masquerade_classes). *failed is set when a table could not be read
 * (the caller defers).
 */
char *rewrite_address(struct rewrite *rw, enum rewrite_class cls,
    bool envelope, const char *address, bool *failed);

/*
 * A header block (fields with CRLF line ends, as in the queue; without
 * the empty line that ends it): the rewritten block (malloc'd, length in
 * *outlen) or NULL when nothing changed.
 */
char *rewrite_header_block(struct rewrite *rw, const char *hdr, size_t len,
    size_t *outlen, bool *failed);

/* Where the header block of a message ends: the offset of the empty
 * line's CRLF (len when there is none within len). */
size_t rewrite_header_end(const char *msg, size_t len);

#endif
