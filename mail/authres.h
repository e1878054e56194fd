/*
 * authres.h - the Authentication-Results header field (RFC 8601): one
 * field written by the receiving server, with its authserv-id, and the
 * test that tells a field claiming that id (a forgery when it arrives
 * from outside, RFC 8601 5).
 */
#ifndef POSTERN_AUTHRES_H
#define POSTERN_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

#include "str.h"

/* "Authentication-Results: ID" into h (appended). */
void authres_start(struct str *h, const char *authserv_id);
/*
 * ";\r\n\tmethod=result" with an optional comment "(...)" (its text made
 * safe for a comment). Properties follow with authres_prop.
 */
void authres_method(struct str *h, const char *method, const char *result,
    const char *comment);
/* " ptype.property=value"; a value that is not a token or an address is
 * written as a quoted-string (RFC 8601 2.2). */
void authres_prop(struct str *h, const char *name, const char *value);
/* End the field: "; none" when no method was added (2.2), then CRLF. */
void authres_end(struct str *h, size_t nmethods);

/*
 * Does the value of an Authentication-Results field (after the colon,
 * possibly folded) carry authserv_id (case-insensitive, 2.5)?
 */
bool authres_claims_id(const char *value, size_t len,
    const char *authserv_id);

#endif
