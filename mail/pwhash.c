/*
 * pwhash.c - which crypt(3) hashes smtpd_sasl_users may hold (see
 * pwhash.h).
 *
 * Trusts nothing in a hash string: it comes from a table an administrator
 * built, perhaps by pasting, so every field is checked before it is used.
 * The schemes and their syntax are libxcrypt's (crypt(5)).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pwhash.h"

/* Accepted: memory-hard or with a tunable, high work factor. */
static const struct {
	const char *prefix;
	const char *name;
} strong[] = {
	{ "$y$", "yescrypt" },
	{ "$2b$", "bcrypt" },
	{ "$2y$", "bcrypt" },
	{ "$2a$", "bcrypt" },
	{ "$6$", "sha512-crypt" },
	{ "$5$", "sha256-crypt" },
};

/* Refused, by name, so that the message says what was found. */
static const struct {
	const char *prefix;
	const char *name;
} weak[] = {
	{ "$1$", "MD5-crypt ($1$)" },
	{ "$md5", "Sun MD5-crypt ($md5)" },
	{ "$sha1$", "NetBSD SHA1-crypt ($sha1$)" },
	{ "$3$", "NT hash ($3$)" },
	{ "$gy$", "gost-yescrypt ($gy$)" },
	{ "$7$", "scrypt ($7$)" },
	{ "_", "BSDi extended DES (_)" },
};

#define SCHEMES "use yescrypt, sha512-crypt, sha256-crypt or bcrypt " \
	"(mkpasswd -m yescrypt, or openssl passwd -6)"

/* crypt(3)'s base64 alphabet. */
static bool crypt64(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '/'))
			return false;
	}
	return true;
}

/*
 * The length of the class part of a strong hash ("$6$rounds=N$",
 * "$y$params$", "$2b$NN$"), or 0 when the hash is not well formed.
 */
static size_t class_length(const char *hash, size_t *scheme)
{
	*scheme = sizeof(strong) / sizeof(strong[0]);
	for (size_t i = 0; i < sizeof(strong) / sizeof(strong[0]); i++)
		if (strncmp(hash, strong[i].prefix, strlen(strong[i].prefix)) == 0)
			*scheme = i;
	if (*scheme == sizeof(strong) / sizeof(strong[0]))
		return 0;
	const char *p = hash + strlen(strong[*scheme].prefix);
	const char *end = strrchr(hash, '$');
	switch (hash[1]) {
	case 'y': {		/* $y$params$salt$digest */
		size_t n = strcspn(p, "$");
		if (n == 0 || p[n] != '$' || !crypt64(p, n) || end == p + n ||
		    !crypt64(end + 1, strlen(end + 1)) || end[1] == '\0')
			return 0;
		return (size_t)(p + n + 1 - hash);
	}
	case '2':		/* $2b$NN$ + 22 salt + 31 digest */
		if (strlen(p) != 2 + 1 + 53 || p[0] < '0' || p[0] > '3' ||
		    p[1] < '0' || p[1] > '9' || p[2] != '$' ||
		    !crypt64(p + 3, 53) || atoi(p) < 4 || atoi(p) > 31)
			return 0;
		return (size_t)(p + 3 - hash);
	default: {		/* $6$[rounds=N$]salt$digest */
		const char *q = p;
		if (strncmp(q, "rounds=", 7) == 0) {
			q += 7;
			size_t n = strspn(q, "0123456789");
			if (n == 0 || n > 9 || q[n] != '$')
				return 0;
			q += n + 1;
		}
		size_t salt = strcspn(q, "$");
		if (salt == 0 || salt > 16 || q[salt] != '$' ||
		    end != q + salt || !crypt64(end + 1, strlen(end + 1)) ||
		    strlen(end + 1) != (hash[1] == '6' ? 86u : 43u))
			return 0;
		return (size_t)(q - hash);
	}
	}
}

bool pwhash_check(const char *hash, char *why, size_t whysize)
{
	size_t scheme;

	for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
		if (strncmp(hash, weak[i].prefix, strlen(weak[i].prefix)) == 0) {
			snprintf(why, whysize, "%s is a weak password hash; "
			    SCHEMES, weak[i].name);
			return false;
		}
	}
	if (hash[0] != '$') {
		/* Traditional DES: 13 characters, 8-character passwords. */
		snprintf(why, whysize, "%s; " SCHEMES, strlen(hash) == 13 &&
		    crypt64(hash, 13) ? "traditional DES crypt is a weak "
		    "password hash" : "not a crypt(3) password hash");
		return false;
	}
	if (class_length(hash, &scheme) == 0) {
		if (scheme < sizeof(strong) / sizeof(strong[0]))
			snprintf(why, whysize, "malformed %s hash",
			    strong[scheme].name);
		else
			snprintf(why, whysize, "unknown password hash scheme; "
			    SCHEMES);
		return false;
	}
	return true;
}

void pwhash_class(const char *hash, char *out, size_t outsize)
{
	size_t scheme;
	size_t n = class_length(hash, &scheme);

	if (outsize == 0)
		return;
	/* "$6$salt$": the default rounds are a class of their own. */
	if (n >= outsize)
		n = 0;
	memcpy(out, hash, n);
	out[n] = '\0';
}
