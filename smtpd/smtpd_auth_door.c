/*
 * smtpd_auth_door.c - the door's half of SMTP AUTH: smtpd_sasl_users
 * opened and checked in smtpd's door (smtpd/smtpd_door.c, the program
 * smtpd-door), never in the network worker, which only asks
 * (smtpd_auth.c).
 *
 * smtpd_sasl_users maps a user name to a crypt(3) hash; crypt_r computes
 * the hash of what the client sent and the two are compared in constant
 * time. An unknown user costs the same hashing as a known one: it is
 * checked against a dummy of the scheme and cost most of the table's
 * hashes have, so timing does not tell which names exist. A weak hash
 * (DES, MD5: mail/pwhash.h) in the table stops the door at start, and so
 * smtpd, naming the table and the user.
 *
 * Linked into smtpd-door, which maps no OpenSSL (issue 20: what a
 * session's processes map): hence the comparison below rather than
 * CRYPTO_memcmp. Trusts the config; the user name and password come from
 * the worker and are only looked up and hashed.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "cfg.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "pwhash.h"
#include "smtpd.h"

static struct map_list *sasl_tables;
static bool sasl_broken;	/* the table list could not be opened */

/* Hashed when the user is unknown, so the reply takes as long. */
static char dummy_hash[CRYPT_OUTPUT_SIZE];

static void close_tables(void)
{
	map_list_close(sasl_tables);
	sasl_tables = NULL;
}

/* The cost classes of a table's hashes, to pick the dummy's. */
struct hash_census {
	const char *table;
	struct {
		char class[64];
		char *example;	/* one hash of the class */
		size_t count;
	} v[16];
	size_t n;
};

static void census_add(const char *user, const char *hash, void *arg)
{
	struct hash_census *c = arg;
	char why[256], class[64], name[300];

	if (!pwhash_check(hash, why, sizeof(why)))
		log_fatal("smtpd_sasl_users %s: user \"%s\": %s (postern map "
		    "build refuses it)", c->table, log_escape(name,
		    sizeof(name), user, strlen(user)), why);
	pwhash_class(hash, class, sizeof(class));
	for (size_t i = 0; i < c->n; i++) {
		if (strcmp(c->v[i].class, class) == 0) {
			c->v[i].count++;
			return;
		}
	}
	if (c->n == sizeof(c->v) / sizeof(c->v[0]))
		return;		/* more classes than anyone keeps */
	strlcpy(c->v[c->n].class, class, sizeof(c->v[0].class));
	c->v[c->n].example = xstrdup(hash);
	c->v[c->n].count = 1;
	c->n++;
}

/*
 * Walk every table: refuse weak hashes, and take as the dummy a hash of
 * the class most users have (ties: the first class in byte order), so an
 * unknown name costs what most known ones cost. A stored hash serves as a
 * crypt(3) setting; its digest is never compared for an unknown name.
 */
static void choose_dummy(void)
{
	struct hash_census c = { .n = 0 };
	char err[256];

	for (size_t t = 0; t < cfg.smtpd_sasl_users.count; t++) {
		struct map *m = map_open(cfg.smtpd_sasl_users.items[t], err,
		    sizeof(err));
		if (m == NULL)
			continue;
		c.table = cfg.smtpd_sasl_users.items[t];
		map_walk(m, census_add, &c);
		map_close(m);
	}
	size_t best = c.n;
	for (size_t i = 0; i < c.n; i++)
		if (best == c.n || c.v[i].count > c.v[best].count ||
		    (c.v[i].count == c.v[best].count &&
		    strcmp(c.v[i].class, c.v[best].class) < 0))
			best = i;
	if (best < c.n)
		strlcpy(dummy_hash, c.v[best].example, sizeof(dummy_hash));
	for (size_t i = 0; i < c.n; i++) {
		explicit_bzero(c.v[i].example, strlen(c.v[i].example));
		free(c.v[i].example);
	}
}

/* In the door (smtpd_door.c): the worker never opens the tables. */
void smtpd_auth_door_init(void)
{
	char err[256];

	if (cfg.smtpd_sasl_users.count == 0)
		return;
	atexit(close_tables);
	sasl_tables = map_list_open(&cfg.smtpd_sasl_users, err, sizeof(err));
	if (sasl_tables == NULL) {
		log_warning("smtpd_sasl_users: %s: AUTH gets a temporary "
		    "error", err);
		sasl_broken = true;
	}
	choose_dummy();
	if (dummy_hash[0] != '\0')
		return;
	/* An empty or unreadable table: crypt_gensalt's default kind. */
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *setting = crypt_gensalt_rn(NULL, 0, NULL, 0,
	    cd->setting, sizeof(cd->setting));
	const char *h = setting ? crypt_r("postern", setting, cd) : NULL;
	if (h != NULL && h[0] != '*')
		strlcpy(dummy_hash, h, sizeof(dummy_hash));
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
}

/* Equal or not, in a time that depends on n alone. */
static bool same_bytes(const char *a, const char *b, size_t n)
{
	volatile unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
	return diff == 0;
}

/* In the door: check a name and password against smtpd_sasl_users. */
enum smtpd_door_auth smtpd_auth_door_verify(const char *user,
    const char *password)
{
	char *hash = NULL;
	if (cfg.smtpd_sasl_users.count == 0)
		return SMTPD_DOOR_AUTH_NO;
	enum map_result r = sasl_broken ? MAP_ERROR :
	    map_list_lookup(sasl_tables, user, &hash);
	if (r == MAP_ERROR)
		return SMTPD_DOOR_AUTH_TEMPFAIL;
	const char *setting = r == MAP_FOUND ? hash : dummy_hash;
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *got = crypt_r(password, setting, cd);
	bool ok = false;
	if (r == MAP_FOUND && got != NULL && got[0] != '*' && hash[0] != '\0') {
		size_t n = strlen(hash);
		ok = strlen(got) == n && same_bytes(got, hash, n);
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	free(hash);
	return ok ? SMTPD_DOOR_AUTH_YES : SMTPD_DOOR_AUTH_NO;
}
