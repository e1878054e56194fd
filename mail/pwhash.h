/*
 * pwhash.h - the crypt(3) password hashes smtpd_sasl_users may hold.
 *
 * One place says which schemes are strong enough (yescrypt, bcrypt,
 * sha512-crypt, sha256-crypt), so that "postern map build" refuses a
 * weak one, smtpd refuses to start on one, and smtpd's answer to an
 * unknown user costs what a known user's costs (the dummy hash has the
 * scheme and cost the table actually uses).
 */
#ifndef POSTERN_PWHASH_H
#define POSTERN_PWHASH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Is hash a strong crypt(3) hash? If not, why says so, naming the scheme
 * ("MD5-crypt ($1$) is too weak ...").
 */
bool pwhash_check(const char *hash, char *why, size_t whysize);

/*
 * The hash's cost class, scheme and work factor without salt or digest:
 * "$6$rounds=5000$", "$y$j9T$", "$2b$12$". Two hashes of one class take
 * the same time to verify. "" if hash is not a strong one.
 */
void pwhash_class(const char *hash, char *out, size_t outsize);

#endif
