/*
 * map.c - lookup tables (see map.h): table names, noticing a replaced
 * file, ordered lists of tables, address lookups, and building a table
 * from its text source. The on-disk formats live in map_<type>.c behind
 * struct map_backend (map_backend.h).
 *
 * Storage convention, the same for building and for looking up: a key is
 * stored lowercased (ASCII letters only; other bytes as they are) and
 * without a terminating NUL; a value is stored as written in the source,
 * minus leading and trailing white space, also without a NUL.
 *
 * Trusts: the table files (built by map_build from sources the
 * administrator owns; a file that does not open is a temporary failure,
 * never a crash). The source text is checked line by line and any bad line
 * rejects the whole build, leaving the old table in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "map.h"
#include "map_backend.h"
#include "mem.h"
#include "str.h"

/* Longest logical source line (an entry with its continuation lines). */
#define MAP_SOURCE_LINE_MAX (1024 * 1024)
/* A file that failed to open is tried again at most this often. */
#define MAP_RETRY_SECONDS 1
/* The address extension delimiter ("user+ext@domain"). */
#define MAP_RECIPIENT_DELIMITER '+'

static const struct map_backend *const map_backends[] = {
	&map_backend_hash,
};

/* What identifies one version of a table file: a rebuild renames a new
 * inode into place, and chmod/chown change ctime. */
struct map_file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

struct map {
	char *name;		/* "hash:/etc/postern/aliases", as given */
	const struct map_backend *backend;
	char *file;		/* what is opened: "/etc/postern/aliases.db" */
	void *handle;		/* NULL while nothing is open */
	struct map_file_id opened;	/* the file handle reads */
	bool warned_vanished;	/* the open file's name went away */
	bool failed;		/* the last open attempt failed ... */
	struct map_file_id failed_id;	/* ... on this file ... */
	time_t failed_at;	/* ... at this time ... */
	char failed_reason[256];	/* ... for this reason */
};

struct map_list {
	struct map **maps;
	size_t count;
};

static bool map_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	    c == '\v';
}

static void map_fold(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
}

/* Split "type:path" into its backend and path. */
static bool map_parse_spec(const char *spec, const struct map_backend **be,
    const char **path, char *err, size_t errsize)
{
	const char *colon = strchr(spec, ':');

	if (colon == NULL || colon == spec || memchr(spec, '/',
	    (size_t)(colon - spec)) != NULL) {
		snprintf(err, errsize, "table \"%s\": expected type:path, "
		    "for example hash:/etc/postern/aliases", spec);
		return false;
	}
	if (colon[1] == '\0') {
		snprintf(err, errsize, "table \"%s\": no path after the type",
		    spec);
		return false;
	}
	for (size_t i = 0; i < sizeof(map_backends) / sizeof(map_backends[0]);
	    i++) {
		const struct map_backend *b = map_backends[i];
		if (strlen(b->type) == (size_t)(colon - spec) &&
		    strncmp(b->type, spec, (size_t)(colon - spec)) == 0) {
			*be = b;
			*path = colon + 1;
			return true;
		}
	}
	snprintf(err, errsize, "table \"%s\": unknown type \"%.*s\" "
	    "(known: hash)", spec, (int)(colon - spec), spec);
	return false;
}

static void map_file_id_of(const struct stat *st, struct map_file_id *id)
{
	memset(id, 0, sizeof(*id));
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
}

static bool map_file_id_equal(const struct map_file_id *a,
    const struct map_file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec &&
	    a->ctime.tv_sec == b->ctime.tv_sec &&
	    a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/*
 * Make m->handle read the file now at m->file, opening it the first time
 * and again whenever the name points to another version of the file.
 * One stat() per lookup, so a rebuilt table is seen by the very next
 * lookup. Measured on the development machine with a 100,000-entry table:
 * 1.8 us for the stat, 4 us for a whole lookup including it; nothing next
 * to the fsyncs each message costs, so no once-a-second timer. False, with
 * a reason, when there is no usable table.
 */
static bool map_refresh(struct map *m, char *err, size_t errsize)
{
	struct stat st;
	struct map_file_id id;
	char reason[256];
	void *handle;

	if (stat(m->file, &st) < 0) {
		if (m->handle != NULL) {
			/* Never happens with map_build's rename; someone
			 * removed the file. Go on with what is open. */
			if (!m->warned_vanished)
				log_warning("table %s: %s: %m; still using the "
				    "copy opened before", m->name, m->file);
			m->warned_vanished = true;
			return true;
		}
		if (errno == ENOENT)
			snprintf(err, errsize, "table %s: %s does not exist "
			    "(build it with \"postern map build %s\")",
			    m->name, m->file, m->name);
		else
			snprintf(err, errsize, "table %s: %s: %s", m->name,
			    m->file, strerror(errno));
		return false;
	}
	m->warned_vanished = false;
	map_file_id_of(&st, &id);
	if (m->handle != NULL && map_file_id_equal(&id, &m->opened))
		return true;
	if (m->failed && map_file_id_equal(&id, &m->failed_id) &&
	    time(NULL) - m->failed_at < MAP_RETRY_SECONDS) {
		snprintf(err, errsize, "table %s: %s", m->name,
		    m->failed_reason);
		return false;
	}
	handle = m->backend->open(m->file, reason, sizeof(reason));
	if (handle == NULL) {
		/* A new file that does not open is an error even if an old
		 * one is open: a process starting now could not read it
		 * either, and all processes should give the same answers. */
		m->failed = true;
		m->failed_id = id;
		m->failed_at = time(NULL);
		snprintf(m->failed_reason, sizeof(m->failed_reason), "%s",
		    reason);
		snprintf(err, errsize, "table %s: %s", m->name, reason);
		return false;
	}
	if (m->handle != NULL) {
		m->backend->close(m->handle);
		log_info("table %s: reopened %s after it changed", m->name,
		    m->file);
	}
	m->handle = handle;
	m->opened = id;
	m->failed = false;
	return true;
}

struct map *map_open(const char *spec, char *err, size_t errsize)
{
	const struct map_backend *be;
	const char *path;
	struct map *m;
	char ignored[256];

	if (!map_parse_spec(spec, &be, &path, err, errsize))
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->name = xstrdup(spec);
	m->backend = be;
	m->file = xasprintf("%s%s", path, be->suffix);
	/*
	 * Root opens now: a table it may read could be closed to the user
	 * it becomes. Any other process opens at its first lookup, as it
	 * reopens a replaced file (Landlock grants every table's
	 * directory): an smtpd worker that never looks a table up then
	 * never maps libdb's code, 1.4 MiB of its resident set. A missing
	 * file is reported by lookups either way.
	 */
	if (geteuid() == 0)
		(void)map_refresh(m, ignored, sizeof(ignored));
	return m;
}

void map_close(struct map *m)
{
	if (m == NULL)
		return;
	if (m->handle != NULL)
		m->backend->close(m->handle);
	free(m->name);
	free(m->file);
	free(m);
}

const char *map_name(const struct map *m)
{
	return m->name;
}

enum map_result map_lookup(struct map *m, const char *key, char **value)
{
	char err[512];
	char *folded;
	size_t len = strlen(key);
	enum map_result r;

	*value = NULL;
	if (!map_refresh(m, err, sizeof(err))) {
		log_warning("%s", err);
		return MAP_ERROR;
	}
	if (len == 0)
		return MAP_NOTFOUND;	/* the source cannot hold an empty key */
	folded = xstrndup(key, len);
	map_fold(folded, len);
	r = m->backend->get(m->handle, folded, len, value, err, sizeof(err));
	if (r == MAP_ERROR)
		log_warning("table %s: %s", m->name, err);
	free(folded);
	return r;
}

enum map_result map_walk(struct map *m, map_walk_fn *fn, void *arg)
{
	char err[512];

	if (!map_refresh(m, err, sizeof(err))) {
		log_warning("%s", err);
		return MAP_ERROR;
	}
	if (!m->backend->walk(m->handle, fn, arg, err, sizeof(err))) {
		log_warning("table %s: %s", m->name, err);
		return MAP_ERROR;
	}
	return MAP_FOUND;
}

/* Lists of tables */

struct map_list *map_list_open(const struct cfg_list *specs, char *err,
    size_t errsize)
{
	struct map_list *ml = xcalloc(1, sizeof(*ml));
	size_t n = specs != NULL ? specs->count : 0;

	ml->maps = xcalloc(n ? n : 1, sizeof(*ml->maps));
	for (size_t i = 0; i < n; i++) {
		ml->maps[i] = map_open(specs->items[i], err, errsize);
		if (ml->maps[i] == NULL) {
			map_list_close(ml);
			return NULL;
		}
		ml->count++;
	}
	return ml;
}

void map_list_close(struct map_list *ml)
{
	if (ml == NULL)
		return;
	for (size_t i = 0; i < ml->count; i++)
		map_close(ml->maps[i]);
	free(ml->maps);
	free(ml);
}

size_t map_list_count(const struct map_list *ml)
{
	return ml->count;
}

/* First table with the key wins; an unreadable table before that ends the
 * search with MAP_ERROR, because a later table's answer might be wrong. */
enum map_result map_list_lookup(struct map_list *ml, const char *key,
    char **value)
{
	*value = NULL;
	for (size_t i = 0; i < ml->count; i++) {
		enum map_result r = map_lookup(ml->maps[i], key, value);
		if (r != MAP_NOTFOUND)
			return r;
	}
	return MAP_NOTFOUND;
}

/*
 * Each key form is tried in every table before the next, less specific,
 * form (as Postfix does): "user+ext@domain", "user@domain", "@domain".
 * The extension starts at the first '+' of the local part, which must not
 * be its first character. An address without '@' tries "user+ext", then
 * "user".
 */
enum map_result map_list_lookup_address(struct map_list *ml,
    const char *address, char **value, char **matched_key)
{
	char *keys[3] = { NULL, NULL, NULL };
	size_t nkeys = 0;
	const char *at = strrchr(address, '@');
	size_t local_len = at != NULL ? (size_t)(at - address) :
	    strlen(address);
	const char *plus = memchr(address, MAP_RECIPIENT_DELIMITER, local_len);
	enum map_result r = MAP_NOTFOUND;

	*value = NULL;
	if (matched_key != NULL)
		*matched_key = NULL;
	if (address[0] == '\0')
		return MAP_NOTFOUND;
	keys[nkeys++] = xstrdup(address);
	if (plus != NULL && plus > address)
		keys[nkeys++] = xasprintf("%.*s%s", (int)(plus - address),
		    address, at != NULL ? at : "");
	if (at != NULL && at[1] != '\0' && at != address)
		keys[nkeys++] = xstrdup(at);
	for (size_t i = 0; i < nkeys; i++)
		map_fold(keys[i], strlen(keys[i]));

	for (size_t i = 0; i < nkeys && r == MAP_NOTFOUND; i++) {
		r = map_list_lookup(ml, keys[i], value);
		if (r == MAP_FOUND && matched_key != NULL) {
			*matched_key = keys[i];
			keys[i] = NULL;
		}
	}
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i]);
	return r;
}

/* Building a table from its source */

struct map_builder {
	const char *source;	/* the source file's name, for messages */
	enum map_source_format format;
	const struct map_backend *backend;
	void *writer;
	map_check_fn *check;	/* NULL: every entry is fine */
	void *check_arg;
	char *err;
	size_t errsize;
};

/* "key value": the key ends at the first white space. */
static bool map_parse_plain(struct map_builder *b, char *line,
    unsigned long lineno, char **key, size_t *keylen, char **value)
{
	size_t k = 0;

	while (line[k] != '\0' && !map_is_space(line[k]))
		k++;
	*key = line;
	*keylen = k;
	while (map_is_space(line[k]))
		k++;
	if (line[k] == '\0') {
		snprintf(b->err, b->errsize, "%s:%lu: expected \"key value\", "
		    "found only a key", b->source, lineno);
		return false;
	}
	*value = line + k;
	return true;
}

/*
 * "name: value". The name may be quoted ("a b": ...), with backslash
 * escaping the next character inside the quotes; an unquoted name ends at
 * the first ':' and cannot contain white space.
 */
static bool map_parse_alias(struct map_builder *b, char *line,
    unsigned long lineno, char **key, size_t *keylen, char **value)
{
	char *p = line;
	size_t n = 0;

	if (*p == '"') {
		char *out = line;	/* unescape in place */
		p++;
		while (*p != '\0' && *p != '"') {
			if (*p == '\\' && p[1] != '\0')
				p++;
			out[n++] = *p++;
		}
		if (*p != '"') {
			snprintf(b->err, b->errsize, "%s:%lu: unterminated "
			    "quoted name", b->source, lineno);
			return false;
		}
		p++;
		while (map_is_space(*p))
			p++;
		if (*p != ':') {
			snprintf(b->err, b->errsize, "%s:%lu: expected \":\" "
			    "after the quoted name", b->source, lineno);
			return false;
		}
	} else {
		char *colon = strchr(line, ':');
		if (colon == NULL) {
			snprintf(b->err, b->errsize, "%s:%lu: expected "
			    "\"name: value\", found no \":\"", b->source,
			    lineno);
			return false;
		}
		n = (size_t)(colon - line);
		while (n > 0 && map_is_space(line[n - 1]))
			n--;
		for (size_t i = 0; i < n; i++) {
			if (map_is_space(line[i])) {
				snprintf(b->err, b->errsize, "%s:%lu: white "
				    "space in the name (quote the name)",
				    b->source, lineno);
				return false;
			}
		}
		p = colon;
	}
	if (n == 0) {
		snprintf(b->err, b->errsize, "%s:%lu: empty name", b->source,
		    lineno);
		return false;
	}
	p++;	/* the ':' */
	while (map_is_space(*p))
		p++;
	if (*p == '\0') {
		char shown[80];
		snprintf(b->err, b->errsize, "%s:%lu: no value after \"%s:\"",
		    b->source, lineno, log_escape(shown, sizeof(shown), line, n));
		return false;
	}
	*key = line;
	*keylen = n;
	*value = p;
	return true;
}

/* One logical line (continuations joined, right-trimmed) into the table. */
static bool map_add_entry(struct map_builder *b, char *line,
    unsigned long lineno)
{
	char *key, *value;
	size_t keylen;
	char shown[128];
	char reason[256];
	bool parsed;

	if (b->format == MAP_SOURCE_ALIASES)
		parsed = map_parse_alias(b, line, lineno, &key, &keylen, &value);
	else
		parsed = map_parse_plain(b, line, lineno, &key, &keylen, &value);
	if (!parsed)
		return false;
	map_fold(key, keylen);
	if (b->check != NULL) {
		char *k = xstrndup(key, keylen);
		bool ok = b->check(k, value, b->check_arg, reason,
		    sizeof(reason));
		if (!ok)
			snprintf(b->err, b->errsize, "%s:%lu: key \"%s\": %s",
			    b->source, lineno, log_escape(shown, sizeof(shown),
			    key, keylen), reason);
		free(k);
		if (!ok)
			return false;
	}
	switch (b->backend->put(b->writer, key, keylen, value, strlen(value),
	    reason, sizeof(reason))) {
	case MAP_PUT_STORED:
		return true;
	case MAP_PUT_DUPLICATE:
		/* Postfix's postmap and postalias keep the first entry and
		 * warn; we do the same so that moving a table over keeps
		 * its meaning. */
		log_warning("%s:%lu: duplicate key \"%s\" ignored: the first "
		    "entry for it stays", b->source, lineno,
		    log_escape(shown, sizeof(shown), key, keylen));
		return true;
	case MAP_PUT_ERROR:
		break;
	}
	snprintf(b->err, b->errsize, "%s:%lu: %s", b->source, lineno, reason);
	return false;
}

/*
 * Read the source into logical lines: a line that starts with white space
 * continues the entry before it (the line break and the leading white
 * space become one space); lines that are blank or whose first non-blank
 * character is '#' are skipped and do not end an entry (as in Postfix's
 * table files).
 */
static bool map_read_source(struct map_builder *b, FILE *fp)
{
	struct str logical;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t got;
	unsigned long lineno = 0, start = 0;
	bool ok = true;

	str_init(&logical, MAP_SOURCE_LINE_MAX);
	while (ok && (got = getline(&buf, &cap, fp)) >= 0) {
		size_t len = (size_t)got, lead = 0;

		lineno++;
		if (memchr(buf, '\0', len) != NULL) {
			snprintf(b->err, b->errsize, "%s:%lu: NUL byte in the "
			    "line", b->source, lineno);
			ok = false;
			break;
		}
		while (len > 0 && map_is_space(buf[len - 1]))
			len--;
		while (lead < len && map_is_space(buf[lead]))
			lead++;
		if (lead == len || buf[lead] == '#')
			continue;
		if (lead > 0) {
			if (start == 0) {
				snprintf(b->err, b->errsize, "%s:%lu: "
				    "continuation line (starts with white "
				    "space) without an entry before it",
				    b->source, lineno);
				ok = false;
			} else if (!str_append_char(&logical, ' ') ||
			    !str_append(&logical, buf + lead, len - lead)) {
				snprintf(b->err, b->errsize, "%s:%lu: entry "
				    "longer than %d bytes", b->source, start,
				    MAP_SOURCE_LINE_MAX);
				ok = false;
			}
			continue;
		}
		if (start != 0 && !map_add_entry(b, logical.data, start)) {
			ok = false;
			break;
		}
		str_clear(&logical);
		start = lineno;
		if (!str_append(&logical, buf, len)) {
			snprintf(b->err, b->errsize, "%s:%lu: entry longer "
			    "than %d bytes", b->source, lineno,
			    MAP_SOURCE_LINE_MAX);
			ok = false;
		}
	}
	if (ok && ferror(fp)) {
		snprintf(b->err, b->errsize, "cannot read %s: %s", b->source,
		    strerror(errno));
		ok = false;
	}
	if (ok && start != 0)
		ok = map_add_entry(b, logical.data, start);
	free(buf);
	str_free(&logical);
	return ok;
}

/* fsync the directory holding path, so that a rename there is durable. */
static bool map_sync_directory(const char *path, char *err, size_t errsize)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL ? xstrdup(".") :
	    slash == path ? xstrdup("/") :
	    xstrndup(path, (size_t)(slash - path));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool ok = fd >= 0 && fsync(fd) == 0;

	if (!ok)
		snprintf(err, errsize, "cannot sync directory %s: %s", dir,
		    strerror(errno));
	if (fd >= 0)
		close(fd);
	free(dir);
	return ok;
}

/*
 * Build aside as FILE.tmpXXXXXX in the table's directory, flush, fsync,
 * then rename over FILE and fsync the directory: readers see the old table
 * or the new one, never a mix, and a crash leaves the old one. The new
 * file gets the source's read permissions (mode & 0644) and, when root
 * builds it, the source's owner, so a secret source stays secret.
 */
bool map_build(const char *spec, enum map_source_format format, char *err,
    size_t errsize)
{
	return map_build_checked(spec, format, NULL, NULL, err, errsize);
}

bool map_build_checked(const char *spec, enum map_source_format format,
    map_check_fn *check, void *arg, char *err, size_t errsize)
{
	const struct map_backend *be;
	const char *path;
	struct map_builder b;
	struct stat st;
	FILE *fp;
	char *file, *tmp;
	int fd;
	bool ok = false;

	if (!map_parse_spec(spec, &be, &path, err, errsize))
		return false;
	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errsize, "cannot open %s: %s", path,
		    strerror(errno));
		return false;
	}
	if (fstat(fileno(fp), &st) < 0) {
		snprintf(err, errsize, "cannot stat %s: %s", path,
		    strerror(errno));
		fclose(fp);
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsize, "%s: not a regular file", path);
		fclose(fp);
		return false;
	}
	file = xasprintf("%s%s", path, be->suffix);
	tmp = xasprintf("%s.tmpXXXXXX", file);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		snprintf(err, errsize, "cannot create %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	memset(&b, 0, sizeof(b));
	b.source = path;
	b.format = format;
	b.backend = be;
	b.check = check;
	b.check_arg = arg;
	b.err = err;
	b.errsize = errsize;
	if ((b.writer = be->create(tmp, err, errsize)) == NULL)
		goto fail;
	if (!map_read_source(&b, fp)) {
		be->abort(b.writer);
		goto fail;
	}
	if (!be->commit(b.writer, err, errsize))
		goto fail;
	if (fchmod(fd, st.st_mode & 0644) < 0 || (geteuid() == 0 &&
	    fchown(fd, st.st_uid, st.st_gid) < 0)) {
		snprintf(err, errsize, "cannot set the owner or mode of %s: %s",
		    tmp, strerror(errno));
		goto fail;
	}
	if (fsync(fd) < 0) {
		snprintf(err, errsize, "cannot sync %s: %s", tmp,
		    strerror(errno));
		goto fail;
	}
	if (rename(tmp, file) < 0) {
		snprintf(err, errsize, "cannot rename %s to %s: %s", tmp, file,
		    strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	ok = map_sync_directory(file, err, errsize);
	goto out;
fail:
	unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	fclose(fp);
	free(file);
	free(tmp);
	return ok;
}
