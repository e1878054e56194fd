/*
 * requiretls.h - RFC 8689 5: does a message's header section carry
 * "TLS-Required: No" (the sender prefers delivery to TLS policy)? The
 * field name in any case, the value "No" in any case with white space
 * and folding around it; anything else (another value, a value too
 * long) is not "No". The search stops at the empty line that ends the
 * header section, or at len.
 */
#ifndef POSTERN_REQUIRETLS_H
#define POSTERN_REQUIRETLS_H

#include <stdbool.h>
#include <stddef.h>

bool requiretls_header_says_no(const char *buf, size_t len);

#endif
