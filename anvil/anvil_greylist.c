/*
 * anvil_greylist.c - greylisting's memory (smtpd_greylist): which
 * triplets (client network, envelope sender, recipient) smtpd has seen
 * and when, and which client networks have retried often enough to be
 * let through without delay. Kept in a Berkeley DB hash file,
 * smtpd_greylist_database, that this one process owns.
 *
 * Why anvil owns it: greylisting needs one memory shared by every smtpd
 * process, written at every recipient. anvil is already that one process,
 * reachable by every smtpd worker on its socket (which the worker, whose
 * confinement lets it write no file at all, could not do itself), and
 * with a single writer the file needs no Berkeley DB environment, no
 * locks and no second owner: the decision (defer or pass) is taken here,
 * where the record is, in one step. smtpd only asks and replies. The file
 * is opened in init, before the confinement, and kept open: no Landlock
 * rule is needed for it.
 *
 * Records (keys are lowercased; values are this file's structs, with a
 * magic number, in host order: the file is a cache of this host's, never
 * moved elsewhere; a value of another shape counts as absent):
 *   "t NET\nSENDER\nRCPT"  struct gl_triplet
 *   "n NET"                struct gl_net
 *
 * Trusts: smtpd's requests only as far as anvil.c checked the peer; the
 * addresses are opaque bytes here (bounded). The file: a record that does
 * not have our shape is replaced. Losing the file loses nothing but
 * memory: senders are greylisted once more. So a new triplet is written
 * out with the minute's sync; a pass (and an auto-allowed network), what
 * lets mail through, at once.
 */
#include <db.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "anvil.h"
#include "cfg.h"
#include "log.h"
#include "mem.h"

#define GL_MAGIC_TRIPLET 0x676c7431u	/* "glt1" */
#define GL_MAGIC_NET 0x676c6e31u	/* "gln1" */
#define GL_SWEEP_EVERY 3600		/* expired records go once an hour */
#define GL_LOCK_WAIT_MS 10000		/* for the anvil before us to go */

struct gl_triplet {
	uint32_t magic;
	uint32_t passed;	/* it came back after the delay */
	int64_t first;		/* first attempt */
	int64_t last;		/* last attempt */
};

struct gl_net {
	uint32_t magic;
	uint32_t retries;	/* triplets that passed */
	int64_t allowed_until;	/* 0: not allowed yet */
	int64_t last;
};

/* The sweep reads "last" without knowing which of the two it has. */
_Static_assert(sizeof(struct gl_triplet) == sizeof(struct gl_net) &&
    offsetof(struct gl_triplet, last) == offsetof(struct gl_net, last),
    "greylist records share their size and the place of last");

static DB *gl_db;
static int gl_lock_fd = -1;
static time_t last_sweep;

static void gl_errcall(const DB_ENV *env, const char *prefix,
    const char *msg)
{
	log_warning("smtpd_greylist_database: %s", msg);
}

static void gl_close(void)
{
	if (gl_db != NULL) {
		gl_db->close(gl_db, 0);
		gl_db = NULL;
	}
	if (gl_lock_fd >= 0)
		close(gl_lock_fd);	/* the next anvil may open the file */
	gl_lock_fd = -1;
}

/*
 * One writer at a time, across a reload too: the anvil of the old
 * generation leaves as soon as master closes its pipe, but the new one
 * may start first. An flock(2) on the file itself, held for life, makes
 * the new one wait for it (as qmgr's lock on active/).
 */
static bool gl_lock(void)
{
	gl_lock_fd = open(cfg.smtpd_greylist_database, O_RDWR | O_CREAT |
	    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (gl_lock_fd < 0) {
		log_warning("greylisting is off: cannot open %s: %m",
		    cfg.smtpd_greylist_database);
		return false;
	}
	for (int waited = 0; flock(gl_lock_fd, LOCK_EX | LOCK_NB) < 0;
	    waited += 100) {
		if (waited >= GL_LOCK_WAIT_MS) {
			log_warning("greylisting is off: %s stays locked by "
			    "another process", cfg.smtpd_greylist_database);
			close(gl_lock_fd);
			gl_lock_fd = -1;
			return false;
		}
		poll(NULL, 0, 100);
	}
	return true;
}

bool anvil_greylist_open(void)
{
	DB *db;
	int ret;

	if (!cfg.smtpd_greylist)
		return true;
	atexit(gl_close);
	if (!gl_lock())
		return false;
	if ((ret = db_create(&db, NULL, 0)) != 0) {
		log_warning("greylisting is off: %s", db_strerror(ret));
		return false;
	}
	db->set_errcall(db, gl_errcall);
	ret = db->open(db, NULL, cfg.smtpd_greylist_database, NULL, DB_HASH,
	    DB_CREATE, 0600);
	if (ret != 0) {
		/* Fail open: greylisting delays mail, it must never stop it. */
		log_warning("greylisting is off: cannot open %s: %s",
		    cfg.smtpd_greylist_database, db_strerror(ret));
		db->close(db, 0);
		return false;
	}
	gl_db = db;
	last_sweep = time(NULL);
	return true;
}

static void key_lower(char *k, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (k[i] >= 'A' && k[i] <= 'Z')
			k[i] = (char)(k[i] - 'A' + 'a');
}

/* One record: true and *out filled when present with our shape. */
static bool gl_get(const char *key, size_t klen, void *out, size_t size,
    uint32_t magic)
{
	DBT k = { .data = (void *)key, .size = (u_int32_t)klen };
	DBT v;
	memset(&v, 0, sizeof(v));
	if (gl_db->get(gl_db, NULL, &k, &v, 0) != 0 || v.size != size)
		return false;
	memcpy(out, v.data, size);
	return *(const uint32_t *)out == magic;
}

static void gl_put(const char *key, size_t klen, const void *val,
    size_t size)
{
	DBT k = { .data = (void *)key, .size = (u_int32_t)klen };
	DBT v = { .data = (void *)val, .size = (u_int32_t)size };
	int ret = gl_db->put(gl_db, NULL, &k, &v, 0);
	if (ret != 0)
		log_warning("smtpd_greylist_database: cannot write: %s",
		    db_strerror(ret));
}

enum anvil_greylist anvil_greylist_decide(const char *net,
    const char *sender, const char *rcpt, time_t now, long long *seconds)
{
	char *tkey, *nkey;
	struct gl_triplet t;
	struct gl_net n;
	long long delay = cfg.smtpd_greylist_delay;
	long long expiry = cfg.smtpd_greylist_expiry;
	enum anvil_greylist verdict;

	*seconds = 0;
	if (gl_db == NULL)
		return ANVIL_GREYLIST_OFF;
	size_t tlen = strlen(net) + strlen(sender) + strlen(rcpt) + 4;
	tkey = xmalloc(tlen + 1);
	snprintf(tkey, tlen + 1, "t %s\n%s\n%s", net, sender, rcpt);
	tlen = strlen(tkey);
	key_lower(tkey, tlen);
	nkey = xasprintf("n %s", net);
	key_lower(nkey, strlen(nkey));

	bool have_net = gl_get(nkey, strlen(nkey), &n, sizeof(n),
	    GL_MAGIC_NET);
	if (!have_net || now - n.last >= expiry)
		n = (struct gl_net){ .magic = GL_MAGIC_NET };
	if (n.allowed_until > now) {
		/* Auto-allowed: it stays so while it keeps coming. */
		n.last = now;
		n.allowed_until = now + expiry;
		gl_put(nkey, strlen(nkey), &n, sizeof(n));
		verdict = ANVIL_GREYLIST_ALLOWED;
		goto done;
	}
	if (!gl_get(tkey, tlen, &t, sizeof(t), GL_MAGIC_TRIPLET) ||
	    now - t.last >= expiry || t.first > now) {
		/* New (or forgotten): defer for the whole delay. */
		t = (struct gl_triplet){ .magic = GL_MAGIC_TRIPLET,
		    .first = now, .last = now };
		gl_put(tkey, tlen, &t, sizeof(t));
		*seconds = delay;
		verdict = ANVIL_GREYLIST_DEFER;
		goto done;
	}
	t.last = now;
	/*
	 * Back too soon: the delay counts from the first attempt. Times are
	 * whole seconds, so an equal count can be up to a second short of
	 * the delay: only more than the delay lets it through.
	 */
	if (!t.passed && now - t.first <= delay) {
		gl_put(tkey, tlen, &t, sizeof(t));
		*seconds = delay - (now - t.first);
		if (*seconds < 1)
			*seconds = 1;
		verdict = ANVIL_GREYLIST_DEFER;
		goto done;
	}
	verdict = ANVIL_GREYLIST_PASS;
	if (!t.passed) {
		/* A real MTA that came back: count it for its network. */
		t.passed = 1;
		*seconds = now - t.first;
		verdict = ANVIL_GREYLIST_FIRST_PASS;
		n.retries++;
		n.last = now;
		if (cfg.smtpd_greylist_auto_allow > 0 &&
		    n.retries >= (uint32_t)cfg.smtpd_greylist_auto_allow) {
			n.allowed_until = now + expiry;
			log_info("greylist: client network %s: %u successful "
			    "retries: no more greylisting for it",
			    net, n.retries);
		}
		gl_put(nkey, strlen(nkey), &n, sizeof(n));
		gl_put(tkey, tlen, &t, sizeof(t));
		/* What lets mail through is written out at once (rare: once
		 * per triplet); new triplets wait for the minute's sync. */
		gl_db->sync(gl_db, 0);
		goto done;
	}
	gl_put(tkey, tlen, &t, sizeof(t));
done:
	free(tkey);
	free(nkey);
	return verdict;
}

/* Every minute: write the file out; once an hour, drop what expired. */
void anvil_greylist_tick(time_t now)
{
	if (gl_db == NULL)
		return;
	if (now - last_sweep >= GL_SWEEP_EVERY) {
		last_sweep = now;
		DBC *c;
		DBT k, v;
		size_t dropped = 0;
		if (gl_db->cursor(gl_db, NULL, &c, 0) == 0) {
			memset(&k, 0, sizeof(k));
			memset(&v, 0, sizeof(v));
			while (c->get(c, &k, &v, DB_NEXT) == 0) {
				int64_t last = -1;
				if (v.size == sizeof(struct gl_triplet)) {
					/* last is at the same place in both */
					memcpy(&last, (const char *)v.data +
					    offsetof(struct gl_triplet, last),
					    sizeof(last));
				}
				if (last < 0 || now - last >= cfg.smtpd_greylist_expiry) {
					c->del(c, 0);
					dropped++;
				}
			}
			c->close(c);
		}
		if (dropped > 0)
			log_info("greylist: %zu expired records removed",
			    dropped);
	}
	gl_db->sync(gl_db, 0);
}
