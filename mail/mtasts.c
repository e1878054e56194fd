/*
 * mtasts.c - MTA-STS (RFC 8461) without I/O beyond the cache files: the
 * TXT record, the policy file, MX patterns, and the cache on disk.
 * mtasts_fetch.c does the HTTPS part; deliver/deliver_mtasts.c decides.
 *
 * The TXT record and the policy text are untrusted (DNS, a web server):
 * a record or policy that does not parse is refused whole. The cache
 * files are ours, but a torn or foreign file only counts as no cache
 * (and a torn record of a failed fetch as no failure).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "mem.h"
#include "mtasts.h"

const char *mtasts_mode_name(enum mtasts_mode mode)
{
	return mode == MTASTS_ENFORCE ? "enforce" : mode == MTASTS_TESTING ?
	    "testing" : "none";
}

static const char *skip_wsp(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

bool mtasts_txt_parse(const char *record, char *id, size_t idsize)
{
	bool first = true, have_id = false;
	const char *p = record;

	id[0] = '\0';
	while (*p != '\0') {
		p = skip_wsp(p);
		const char *end = strchr(p, ';');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0 && end == NULL)
			break;
		const char *eq = memchr(p, '=', n);
		if (eq == NULL)
			return false;
		size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
		const char *v = eq + 1;
		/* RFC 8461 3.1: "v=STSv1" first, exactly. */
		if (first) {
			if (!(klen == 1 && p[0] == 'v' && vlen == 5 &&
			    memcmp(v, "STSv1", 5) == 0))
				return false;
			first = false;
		} else if (klen == 2 && memcmp(p, "id", 2) == 0) {
			if (vlen < 1 || vlen > MTASTS_ID_MAX || vlen >= idsize)
				return false;
			for (size_t i = 0; i < vlen; i++)
				if (!isalnum((unsigned char)v[i]))
					return false;
			memcpy(id, v, vlen);
			id[vlen] = '\0';
			have_id = true;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return !first && have_id;
}

void mtasts_policy_free(struct mtasts_policy *p)
{
	for (size_t i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	memset(p, 0, sizeof(*p));
}

/* An mx pattern: a host name, or "*." and one (RFC 8461 3.2). */
static bool mx_pattern_ok(const char *v, size_t n)
{
	if (n >= 2 && v[0] == '*' && v[1] == '.') {
		v += 2;
		n -= 2;
	}
	if (n == 0 || n > 253 || v[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && v[i] != '-' &&
		    v[i] != '.' && v[i] != '_')
			return false;
	return true;
}

bool mtasts_policy_parse(const char *text, size_t len,
    struct mtasts_policy *p, char *err, size_t errsize)
{
	bool have_version = false, have_mode = false, have_age = false;
	size_t pos = 0;

	memset(p, 0, sizeof(*p));
	if (len > MTASTS_POLICY_MAX) {
		snprintf(err, errsize, "policy over %d octets",
		    MTASTS_POLICY_MAX);
		return false;
	}
	if (memchr(text, '\0', len) != NULL) {
		snprintf(err, errsize, "policy holds a NUL octet");
		return false;
	}
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl != NULL);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		/* Trailing white space and empty lines mean nothing. */
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			n--;
		if (n == 0)
			continue;
		const char *colon = memchr(line, ':', n);
		if (colon == NULL || colon == line) {
			snprintf(err, errsize, "a line without \"key:\"");
			return false;
		}
		size_t klen = (size_t)(colon - line);
		/* The text is not NUL-terminated: stay within the line. */
		const char *v = colon + 1;
		while (v < line + n && (*v == ' ' || *v == '\t'))
			v++;
		size_t vlen = n - (size_t)(v - line);
		char value[300];
		if (vlen >= sizeof(value)) {
			snprintf(err, errsize, "a value over %zu octets",
			    sizeof(value) - 1);
			return false;
		}
		memcpy(value, v, vlen);
		value[vlen] = '\0';
#define KEY(name) (klen == sizeof(name) - 1 && memcmp(line, name, klen) == 0)
		if (KEY("version")) {
			if (strcmp(value, "STSv1") != 0) {
				snprintf(err, errsize, "version is not STSv1");
				return false;
			}
			have_version = true;
		} else if (KEY("mode")) {
			if (strcmp(value, "enforce") == 0)
				p->mode = MTASTS_ENFORCE;
			else if (strcmp(value, "testing") == 0)
				p->mode = MTASTS_TESTING;
			else if (strcmp(value, "none") == 0)
				p->mode = MTASTS_NONE;
			else {
				snprintf(err, errsize, "unknown mode");
				return false;
			}
			have_mode = true;
		} else if (KEY("max_age")) {
			char *end;
			errno = 0;
			long age = strtol(value, &end, 10);
			if (!isdigit((unsigned char)value[0]) || *end != '\0' ||
			    errno != 0 || vlen > 10) {
				snprintf(err, errsize, "max_age is not a "
				    "number");
				return false;
			}
			/* RFC 8461 3.2: at most 31557600; a larger one is
			 * taken as that. */
			p->max_age = age > MTASTS_MAX_AGE_MAX ?
			    MTASTS_MAX_AGE_MAX : age;
			have_age = true;
		} else if (KEY("mx")) {
			if (!mx_pattern_ok(value, vlen)) {
				snprintf(err, errsize, "a bad mx pattern");
				return false;
			}
			if (p->nmx == MTASTS_MX_MAX) {
				snprintf(err, errsize, "over %d mx patterns",
				    MTASTS_MX_MAX);
				return false;
			}
			p->mx[p->nmx++] = xstrdup(value);
		}
#undef KEY
		/* Other keys: RFC 8461 3.2 lets later versions add them. */
	}
	if (!have_version || !have_mode || !have_age) {
		snprintf(err, errsize, "%s is missing", !have_version ?
		    "version" : !have_mode ? "mode" : "max_age");
		return false;
	}
	if (p->mode != MTASTS_NONE && p->nmx == 0) {
		snprintf(err, errsize, "no mx pattern");
		return false;
	}
	return true;
}

bool mtasts_mx_match(const struct mtasts_policy *p, const char *host)
{
	size_t hlen = strlen(host);
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	for (size_t i = 0; i < p->nmx; i++) {
		const char *pat = p->mx[i];
		size_t plen = strlen(pat);
		if (plen > 0 && pat[plen - 1] == '.')
			plen--;
		if (pat[0] == '*' && pat[1] == '.') {
			/* One label, not empty, before ".rest". */
			size_t rlen = plen - 1;
			if (hlen <= rlen || strncasecmp(host + hlen - rlen,
			    pat + 1, rlen) != 0)
				continue;
			if (memchr(host, '.', hlen - rlen) == NULL)
				return true;
		} else if (hlen == plen && strncasecmp(host, pat, plen) == 0) {
			return true;
		}
	}
	return false;
}

bool mtasts_domain_ok(const char *domain)
{
	size_t n = strlen(domain);
	if (n == 0 || n > 253 || domain[0] == '.' || domain[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)domain[i];
		if (!isalnum(c) && c != '-' && c != '.')
			return false;
		if (c == '.' && domain[i + 1] == '.')
			return false;
	}
	return true;
}

/* The cache file's first line: "postern-mta-sts 1 ID FETCHED". */
#define CACHE_MAGIC "postern-mta-sts 1 "

static void cache_name(char *out, size_t outsize, const char *dir,
    const char *domain, const char *prefix)
{
	char lower[256];
	strlcpy(lower, domain, sizeof(lower));
	for (char *c = lower; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	snprintf(out, outsize, "%s/%s%s", dir, prefix, lower);
}

bool mtasts_cache_read(const char *dir, const char *domain, char *id,
    size_t idsize, time_t *fetched, char **text, size_t *len)
{
	char path[4096];
	if (!mtasts_domain_ok(domain))
		return false;
	cache_name(path, sizeof(path), dir, domain, "");
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	size_t cap = MTASTS_POLICY_MAX + 200, n = 0;
	char *buf = xmalloc(cap + 1);
	ssize_t r;
	while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = '\0';
	char *nl = memchr(buf, '\n', n);
	char cid[MTASTS_ID_MAX + 2];
	long long when;
	if (nl == NULL || strncmp(buf, CACHE_MAGIC, strlen(CACHE_MAGIC)) != 0 ||
	    sscanf(buf + strlen(CACHE_MAGIC), "%33s %lld", cid, &when) != 2 ||
	    strlen(cid) >= idsize) {
		free(buf);
		return false;
	}
	strlcpy(id, cid, idsize);
	*fetched = (time_t)when;
	*len = n - (size_t)(nl + 1 - buf);
	*text = xmalloc(*len + 1);
	memcpy(*text, nl + 1, *len);
	(*text)[*len] = '\0';
	free(buf);
	return true;
}

bool mtasts_cache_write(const char *dir, const char *domain, const char *id,
    time_t fetched, const char *text, size_t len, char *err, size_t errsize)
{
	char path[4096], tmp[4096];
	if (!mtasts_domain_ok(domain)) {
		snprintf(err, errsize, "not a domain name fit for a file");
		return false;
	}
	cache_name(path, sizeof(path), dir, domain, "");
	/* Several deliver processes may write at once: each its own name. */
	char prefix[64];
	snprintf(prefix, sizeof(prefix), ".%ld.", (long)getpid());
	cache_name(tmp, sizeof(tmp), dir, domain, prefix);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errsize, "cannot create %s: %s", tmp,
		    strerror(errno));
		return false;
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(tmp);
		snprintf(err, errsize, "fdopen: %s", strerror(errno));
		return false;
	}
	fprintf(f, CACHE_MAGIC "%s %lld\n", id, (long long)fetched);
	fwrite(text, 1, len, f);
	/* A lost cache only costs a fetch: no fsync. */
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errsize, "cannot write %s: %s", path,
		    strerror(errno));
		unlink(tmp);
		return false;
	}
	return true;
}

/* The first line of a failed fetch's record: "... ID UNTIL". */
#define FAILED_MAGIC "postern-mta-sts-failed 1 "

/*
 * Open and lock "+DOMAIN" without waiting: the descriptor, or -1 with
 * *busy set when another process holds it (else it cannot be had). A
 * fetch that worked removes the file while it holds the lock (release):
 * a process that locked it after that holds a file with no name, no
 * longer the domain's lock, and opens the name again.
 */
static int lock_open(const char *path, bool *busy)
{
	*busy = false;
	for (int tries = 0; tries < 3; tries++) {
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0600);
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			*busy = errno == EWOULDBLOCK;
			close(fd);
			return -1;
		}
		struct stat st;
		if (fstat(fd, &st) == 0 && st.st_nlink > 0)
			return fd;
		close(fd);	/* removed under us: the name is free again */
	}
	/* Three fetches ended while we looked: a policy was just had. */
	*busy = true;
	return -1;
}

enum mtasts_claim mtasts_fetch_claim(const char *dir, const char *domain,
    const char *id, time_t now, int *fd, struct mtasts_failure *f)
{
	char path[4096];
	*fd = -1;
	if (!mtasts_domain_ok(domain))
		return MTASTS_CLAIM_FETCH;
	cache_name(path, sizeof(path), dir, domain, "+");
	bool busy;
	int lfd = lock_open(path, &busy);
	if (lfd < 0)
		return busy ? MTASTS_CLAIM_BUSY : MTASTS_CLAIM_FETCH;
	char buf[700];
	ssize_t n = pread(lfd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	char fid[MTASTS_ID_MAX + 2];
	long long until;
	char *nl = strchr(buf, '\n');
	if (nl != NULL && strncmp(buf, FAILED_MAGIC,
	    strlen(FAILED_MAGIC)) == 0 &&
	    sscanf(buf + strlen(FAILED_MAGIC), "%33s %lld", fid, &until) == 2 &&
	    strcmp(fid, id) == 0 && (time_t)until > now) {
		/* Remembered: this id failed, and not long ago. */
		char *end = strchr(nl + 1, '\n');
		if (end != NULL)
			*end = '\0';
		f->until = (time_t)until;
		strlcpy(f->why, nl + 1, sizeof(f->why));
		close(lfd);	/* drops the lock */
		return MTASTS_CLAIM_FAILED;
	}
	*fd = lfd;
	return MTASTS_CLAIM_FETCH;
}

void mtasts_fetch_release(const char *dir, const char *domain, int fd,
    const char *id, time_t until, const char *why)
{
	if (fd < 0)
		return;
	if (why == NULL) {
		/* Nothing to remember: the file goes, under the lock, so
		 * that the cache directory does not keep an empty one per
		 * domain ever fetched (lock_open sees it went). */
		char path[4096];
		cache_name(path, sizeof(path), dir, domain, "+");
		if (unlink(path) != 0)
			(void)!ftruncate(fd, 0);
		close(fd);
		return;
	}
	/* Rewritten in place under the lock: the next holder reads it
	 * whole. A crash in between leaves a torn record: no failure. */
	if (ftruncate(fd, 0) == 0) {
		char buf[700];
		int n = snprintf(buf, sizeof(buf), FAILED_MAGIC "%s %lld\n",
		    id, (long long)until);
		for (const char *p = why; *p && n < (int)sizeof(buf) - 2; p++)
			buf[n++] = *p == '\n' || *p == '\r' ? ' ' : *p;
		buf[n++] = '\n';
		/* Like the cache, a lost record only costs a fetch: no
		 * fsync. */
		(void)!pwrite(fd, buf, (size_t)n, 0);
	}
	close(fd);
}
