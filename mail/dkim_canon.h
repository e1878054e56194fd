/*
 * dkim_canon.h - DKIM canonicalization (RFC 6376 3.4): the "simple" and
 * "relaxed" forms of a header field and of a message body, as the signer
 * (dkim_sign.c) and a verifier hash them.
 *
 * The body canonicalizer is a stream: bytes go in as they come (from the
 * queue file or from deliver's 7-bit conversion), canonical bytes come out
 * through a callback, and only a few bytes of state are held back (a run
 * of white space, the empty lines that may turn out to end the body).
 * Only CRLF ends a line (RFC 6376 3.4.2 speaks of CRLF; a bare CR or LF
 * is an ordinary byte here, as it is on the wire).
 */
#ifndef POSTERN_DKIM_CANON_H
#define POSTERN_DKIM_CANON_H

#include <stdbool.h>
#include <stddef.h>

#include "str.h"

enum dkim_canon {
	DKIM_CANON_SIMPLE,
	DKIM_CANON_RELAXED,
};

/*
 * One header field (name, colon, value, its folding CRLFs, without the
 * final CRLF) in canonical form, appended to out with a final CRLF
 * (RFC 6376 3.4.1, 3.4.2). false if out is full.
 */
bool dkim_canon_header(enum dkim_canon c, const char *field, size_t len,
    struct str *out);

typedef void dkim_canon_out_fn(void *ctx, const char *data, size_t len);

struct dkim_body_canon {
	enum dkim_canon canon;
	dkim_canon_out_fn *out;
	void *ctx;
	size_t crlfs;		/* line ends held back: maybe trailing */
	bool cr;		/* the last byte was a CR */
	bool wsp;		/* relaxed: a run of WSP held back */
	bool any;		/* something other than line ends went out */
	size_t n;		/* bytes in buf, not yet given to out */
	char buf[4096];
};

void dkim_body_canon_init(struct dkim_body_canon *b, enum dkim_canon c,
    dkim_canon_out_fn *out, void *ctx);
void dkim_body_canon_update(struct dkim_body_canon *b, const char *data,
    size_t len);
/* The end of the body: its last CRLF, or the one an empty body has in
 * simple form (RFC 6376 3.4.3, 3.4.4). */
void dkim_body_canon_final(struct dkim_body_canon *b);

#endif
