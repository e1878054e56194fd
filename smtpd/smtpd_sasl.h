/*
 * smtpd_sasl.h - the pure decoding behind SMTP AUTH (smtpd_auth.c): the
 * strict base64 of RFC 4648 4, the PLAIN message of RFC 4616 2, and the
 * rule for a user name we accept. No I/O and no tables here, so unit
 * tests and tests/fuzz/fuzz_auth.c call them on any bytes.
 */
#ifndef POSTERN_SMTPD_SASL_H
#define POSTERN_SMTPD_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SMTPD_SASL_NAME_MAX 255

/*
 * Decode len octets of base64 into a malloc'd buffer (*outlen octets and
 * a NUL after them); false if malformed: white space, a length that is
 * not a multiple of 4, padding anywhere but at the end.
 */
bool smtpd_sasl_b64_decode(const char *in, size_t len, char **out,
    size_t *outlen);

/* A user name we are willing to look up, log and queue. */
bool smtpd_sasl_name_ok(const char *name, size_t len);

/* RFC 4616 2: [authzid] NUL authcid NUL passwd, pointers into msg. */
struct smtpd_sasl_plain {
	const char *authzid;	/* NUL-terminated, maybe "" */
	const char *authcid;	/* authcid_len octets, NUL after them */
	size_t authcid_len;
	const char *password;	/* password_len octets (NUL after, from
				 * the decoder), may hold NUL bytes */
	size_t password_len;
};

/* Split a decoded PLAIN message (len octets, NUL after them); false if
 * it has fewer than two NUL separators. */
bool smtpd_sasl_plain_split(const char *msg, size_t len,
    struct smtpd_sasl_plain *plain);

#endif
