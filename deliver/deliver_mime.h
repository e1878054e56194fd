/*
 * deliver_mime.h - 8-bit MIME to 7-bit MIME, for a peer without 8BITMIME.
 *
 * RFC 6152 3: a client must not send 8-bit data to a server that did not
 * offer 8BITMIME; it converts the message to 7 bits or returns it. As
 * Postfix does, deliver converts: every leaf part whose body holds 8-bit
 * bytes and is labelled 7bit, 8bit or not at all is re-encoded as
 * quoted-printable (RFC 2045 6.7) and its Content-Transfer-Encoding header
 * says so; multipart (RFC 2046 5.1) and message/rfc822 parts are walked
 * into, to a depth of MIME_MAX_DEPTH. A message without MIME-Version is
 * one text part and gains "MIME-Version: 1.0". Header fields are left as
 * they are: 8-bit bytes in a header cannot be made 7-bit without
 * rewriting it (RFC 2047), which Postfix does not do either.
 */
#ifndef POSTERN_DELIVER_MIME_H
#define POSTERN_DELIVER_MIME_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_MAX_DEPTH 20

/* Where the converted message goes, in pieces, in order. */
typedef void deliver_mime_write_fn(void *ctx, const char *data, size_t len);

/* Does data hold a byte >= 0x80? */
bool deliver_mime_has_8bit(const char *data, size_t len);

/*
 * Write msg (a whole message, header and body, lines ending in CRLF or
 * LF) to out, converted to 7-bit MIME; line ends written are CRLF where
 * a part is re-encoded and as they were elsewhere.
 */
void deliver_mime_downgrade(const char *msg, size_t len,
    deliver_mime_write_fn *out, void *ctx);

#endif
