/*
 * deliver_dkim.c - DKIM signatures on the way out (RFC 6376, RFC 8463):
 * the signing hook of deliver's SMTP transaction (deliver_smtp.c).
 *
 * Signed: mail whose queue file says it came from a trusted source
 * (doc/queue-format.md: "trust=sasl" or "trust=mynetworks" from smtpd,
 * "origin=local" from qmgr's pickup of sendmail's files), sent by SMTP,
 * whose From: domain has an entry in dkim_signing_maps:
 *     example.org   sel1:/etc/postern/dkim/example.org.sel1.key, sel2:...
 * one signature per key (rsa-sha256 and ed25519-sha256 side by side).
 * Relayed mail from strangers, notifications and LMTP deliveries are not.
 *
 * What is signed is what is sent: the content after deliver's own 7-bit
 * conversion when the peer lacks 8BITMIME (deliver_mime.c), which may
 * add MIME-Version and rewrite Content-Transfer-Encoding.
 *
 * Trusts the queue file (qmgr's and smtpd's), the table and the keys
 * (root's). A table or key that cannot be read defers the mail rather
 * than sending it unsigned: the administrator asked for signatures.
 * Keys live under dkim_key_directory, which the confinement opens for
 * reading (mail/daemon_confine.c); keep them mode 0640 root:$user.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include <bsd/string.h>

#include "cfg.h"
#include "deliver.h"
#include "deliver_mime.h"
#include "dkim_sign.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "queue.h"

#define KEY_CACHE_SIZE 16
#define MAX_KEYS_PER_DOMAIN 4

static struct map_list *signing_tables;
static bool tables_broken;

/* Keys once read, kept while their file stays the same. */
static struct key_slot {
	char *path;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	struct dkim_key *key;
} key_cache[KEY_CACHE_SIZE];
static size_t key_next;

void deliver_dkim_init(void)
{
	char err[512];

	if (cfg.dkim_signing_maps.count == 0)
		return;
	signing_tables = map_list_open(&cfg.dkim_signing_maps, err,
	    sizeof(err));
	if (signing_tables == NULL) {
		log_warning("dkim_signing_maps: %s: mail to sign is deferred",
		    err);
		tables_broken = true;
	}
}

static const struct dkim_key *key_get(const char *path, char *err,
    size_t errsize)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errsize, "DKIM key %s: %s", path, strerror(errno));
		return NULL;
	}
	for (size_t i = 0; i < KEY_CACHE_SIZE; i++) {
		struct key_slot *k = &key_cache[i];
		if (k->path != NULL && strcmp(k->path, path) == 0 &&
		    k->dev == st.st_dev && k->ino == st.st_ino &&
		    k->mtime.tv_sec == st.st_mtim.tv_sec &&
		    k->mtime.tv_nsec == st.st_mtim.tv_nsec)
			return k->key;
	}
	char why[600];
	struct dkim_key *key = dkim_key_load(path, why, sizeof(why));
	if (key == NULL) {
		snprintf(err, errsize, "DKIM key %s", why);
		return NULL;
	}
	struct key_slot *k = &key_cache[key_next++ % KEY_CACHE_SIZE];
	free(k->path);
	dkim_key_free(k->key);
	*k = (struct key_slot){ xstrdup(path), st.st_dev, st.st_ino,
	    st.st_mtim, key };
	return key;
}

/* Did the message come from a source whose mail we sign? */
static bool job_trusted(const struct deliver_job *job)
{
	struct queue_envelope env;
	char err[256];
	bool trusted = false;

	queue_envelope_init(&env);
	if (queue_read(job->content_fd, &env, err, sizeof(err)) ==
	    QUEUE_READ_OK) {
		const char *trust = queue_envelope_attr(&env, "trust");
		const char *origin = queue_envelope_attr(&env, "origin");
		trusted = (trust != NULL && (strcmp(trust, "sasl") == 0 ||
		    strcmp(trust, "mynetworks") == 0)) ||
		    (origin != NULL && strcmp(origin, "local") == 0);
	}
	queue_envelope_free(&env);
	return trusted;
}

struct key_ref {
	char selector[64];
	char path[4096];
};

/* "sel:/path, sel2:/path2" into refs; false with why. */
static bool parse_entry(const char *value, struct key_ref *refs, size_t *n,
    char *why, size_t whysize)
{
	char *copy = xstrdup(value), *save = NULL;
	bool ok = true;

	*n = 0;
	for (char *item = strtok_r(copy, ", \t", &save); item != NULL;
	    item = strtok_r(NULL, ", \t", &save)) {
		char *colon = strchr(item, ':');
		if (colon == NULL || colon == item || colon[1] != '/' ||
		    *n == MAX_KEYS_PER_DOMAIN) {
			snprintf(why, whysize, "bad entry \"%.100s\" (want "
			    "selector:/path/key.pem, at most %d)", item,
			    MAX_KEYS_PER_DOMAIN);
			ok = false;
			break;
		}
		*colon = '\0';
		/* RFC 6376 3.1: a selector is a sub-domain. */
		for (const char *p = item; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' &&
			    *p != '.' && *p != '_')
				ok = false;
		if (!ok || strlen(item) >= sizeof(refs->selector) ||
		    strlen(colon + 1) >= sizeof(refs->path)) {
			snprintf(why, whysize, "bad selector or path in "
			    "\"%.100s\"", item);
			ok = false;
			break;
		}
		strlcpy(refs[*n].selector, item, sizeof(refs->selector));
		strlcpy(refs[*n].path, colon + 1, sizeof(refs->path));
		(*n)++;
	}
	if (ok && *n == 0) {
		snprintf(why, whysize, "empty entry");
		ok = false;
	}
	free(copy);
	return ok;
}

bool deliver_dkim_sign(const struct deliver_job *job, bool downgrade,
    struct str *out, char *err, size_t errsize)
{
	if (job->transport != TRANSPORT_SMTP || cfg.dkim_signing_maps.count
	    == 0 || job->j.content_length == 0 || !job_trusted(job))
		return true;
	if (tables_broken) {
		snprintf(err, errsize, "DKIM signing table unavailable");
		return false;
	}

	/* The content as it will go out. */
	size_t maplen = (size_t)(job->j.content_offset + job->j.content_length);
	struct stat st;
	if (fstat(job->content_fd, &st) != 0 || st.st_size < (off_t)maplen) {
		/* Mapped beyond its end, the file would kill us (SIGBUS). */
		snprintf(err, errsize, "cannot read queue file %s: %s",
		    job->j.queue_file, "file too short");
		return false;
	}
	void *base = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE,
	    job->content_fd, 0);
	if (base == MAP_FAILED) {
		snprintf(err, errsize, "cannot map queue file %s: %s",
		    job->j.queue_file, strerror(errno));
		return false;
	}
	const char *msg = (const char *)base + job->j.content_offset;
	size_t len = (size_t)job->j.content_length;
	struct dkim_signer *signer = dkim_signer_new();
	if (downgrade && deliver_mime_has_8bit(msg, len))
		deliver_mime_downgrade(msg, len, dkim_signer_update, signer);
	else
		dkim_signer_update(signer, msg, len);
	munmap(base, maplen);

	bool ok = true;
	const char *domain = dkim_signer_from_domain(signer);
	char *value = NULL;
	enum map_result r = domain ? map_list_lookup(signing_tables, domain,
	    &value) : MAP_NOTFOUND;
	if (r == MAP_ERROR) {
		snprintf(err, errsize, "DKIM signing table unavailable");
		ok = false;
	} else if (r == MAP_FOUND) {
		struct key_ref refs[MAX_KEYS_PER_DOMAIN];
		size_t n;
		char why[300];
		if (!parse_entry(value, refs, &n, why, sizeof(why))) {
			snprintf(err, errsize, "dkim_signing_maps %s: %s",
			    domain, why);
			ok = false;
		}
		time_t now = time(NULL);
		for (size_t i = 0; ok && i < n; i++) {
			const struct dkim_key *key = key_get(refs[i].path, err,
			    errsize);
			ok = key != NULL && dkim_signer_sign(signer, domain,
			    refs[i].selector, key, now, out, err, errsize);
			if (ok)
				log_info("%s: dkim=signed d=%s s=%s a=%s",
				    job->j.queue_id, domain, refs[i].selector,
				    dkim_alg_name(dkim_key_alg(key)));
		}
	}
	free(value);
	dkim_signer_free(signer);
	if (!ok)
		str_clear(out);
	return ok;
}
