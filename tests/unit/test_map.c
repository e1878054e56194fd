/*
 * Unit tests for mail/map.c and the hash backend: real Berkeley DB files
 * in a temporary directory, built by map_build and read by map_open.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "map.h"
#include "mem.h"
#include "unit.h"

static char tmpdir[] = "/tmp/test_map.XXXXXX";

static char *path_in_tmp(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");
	if (fp == NULL)
		log_fatal("open %s: %m", path);
	fputs(text, fp);
	if (fclose(fp) != 0)
		log_fatal("write %s: %m", path);
	chmod(path, mode);
}

/* Write source NAME with text and build hash:NAME; returns the spec. */
static char *build(const char *name, const char *text,
    enum map_source_format format, bool *ok, char *err, size_t errsize)
{
	char *path = path_in_tmp(name);
	char *spec = xasprintf("hash:%s", path);
	write_file(path, text, 0644);
	*ok = map_build(spec, format, err, errsize);
	free(path);
	return spec;
}

static char *must_build(const char *name, const char *text,
    enum map_source_format format)
{
	char err[512] = "";
	bool ok;
	char *spec = build(name, text, format, &ok, err, sizeof(err));
	if (!ok)
		printf("# build %s: %s\n", name, err);
	CHECK(ok);
	return spec;
}

/* Lookup helper: the value, "NOTFOUND" or "ERROR" (caller frees). */
static char *look(struct map *m, const char *key)
{
	char *value;
	switch (map_lookup(m, key, &value)) {
	case MAP_FOUND:
		return value;
	case MAP_NOTFOUND:
		CHECK(value == NULL);
		return xstrdup("NOTFOUND");
	case MAP_ERROR:
		CHECK(value == NULL);
		return xstrdup("ERROR");
	}
	return xstrdup("?");
}

#define CHECK_LOOK(m, key, want) do { \
	char *got_ = look((m), (key)); \
	CHECK_STR(got_, (want)); \
	free(got_); \
} while (0)

static struct map *must_open(const char *spec)
{
	char err[512] = "";
	struct map *m = map_open(spec, err, sizeof(err));
	if (m == NULL)
		printf("# open %s: %s\n", spec, err);
	CHECK(m != NULL);
	return m;
}

/* No build leaves its temporary file behind. */
static int count_tmp_files(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".tmp") != NULL)
			n++;
	closedir(d);
	return n;
}

static void test_build_and_lookup(void)
{
	char *spec = must_build("plain", "alice@example.org   example.org/alice/\n"
	    "bob\tBob Value  \n", MAP_SOURCE_PLAIN);
	struct map *m = must_open(spec);
	CHECK_STR(map_name(m), spec);
	CHECK_LOOK(m, "alice@example.org", "example.org/alice/");
	CHECK_LOOK(m, "bob", "Bob Value");
	CHECK_LOOK(m, "carol", "NOTFOUND");
	CHECK_LOOK(m, "", "NOTFOUND");
	CHECK_LOOK(m, "alice", "NOTFOUND");
	map_close(m);
	free(spec);
	CHECK_INT(count_tmp_files(), 0);
}

static void test_case_folding(void)
{
	char *spec = must_build("fold", "Alice@Example.ORG MixedCase/Value\n",
	    MAP_SOURCE_PLAIN);
	struct map *m = must_open(spec);
	CHECK_LOOK(m, "alice@example.org", "MixedCase/Value");
	CHECK_LOOK(m, "ALICE@EXAMPLE.ORG", "MixedCase/Value");
	CHECK_LOOK(m, "aLiCe@eXaMpLe.OrG", "MixedCase/Value");
	map_close(m);
	free(spec);
}

static void test_comments_and_continuations(void)
{
	char *spec = must_build("cont",
	    "# a comment line\n"
	    "a one\n"
	    "# a comment inside an entry does not end it\n"
	    "  two\n"
	    "\n"
	    "\t three \n"
	    "   # an indented comment is a comment\n"
	    "b value # not a comment\n"
	    "c\r\n"
	    "  crlf\r\n"
	    "d last-without-newline", MAP_SOURCE_PLAIN);
	struct map *m = must_open(spec);
	CHECK_LOOK(m, "a", "one two three");
	CHECK_LOOK(m, "b", "value # not a comment");
	CHECK_LOOK(m, "c", "crlf");
	CHECK_LOOK(m, "d", "last-without-newline");
	CHECK_LOOK(m, "#", "NOTFOUND");
	map_close(m);
	free(spec);
}

static void test_duplicates_keep_first(void)
{
	/* As Postfix's postmap: warn, keep the first value. */
	char *spec = must_build("dup", "k first\nK second\nk third\n",
	    MAP_SOURCE_PLAIN);
	struct map *m = must_open(spec);
	CHECK_LOOK(m, "k", "first");
	map_close(m);
	free(spec);
}

static void test_aliases_format(void)
{
	char *spec = must_build("aliases",
	    "# aliases\n"
	    "Postmaster: root\n"
	    "root: alice, bob,\n"
	    "      carol\n"
	    "\"with space\": dave\n"
	    "\"q\\\"uote\" : eve\n"
	    "list :  \"|/usr/bin/prog arg\", /var/log/file, :include:/etc/x\n",
	    MAP_SOURCE_ALIASES);
	struct map *m = must_open(spec);
	CHECK_LOOK(m, "postmaster", "root");
	CHECK_LOOK(m, "root", "alice, bob, carol");
	CHECK_LOOK(m, "with space", "dave");
	CHECK_LOOK(m, "q\"uote", "eve");
	CHECK_LOOK(m, "LIST",
	    "\"|/usr/bin/prog arg\", /var/log/file, :include:/etc/x");
	map_close(m);
	free(spec);
}

struct bad_case {
	enum map_source_format format;
	const char *text;
	const char *want_err;	/* after "DIR/bad:" */
};

static void test_errors_name_the_line(void)
{
	static const struct bad_case cases[] = {
		{ MAP_SOURCE_PLAIN, "a b\n# c\nkeyonly\n",
		    "3: expected \"key value\", found only a key" },
		{ MAP_SOURCE_PLAIN, "\n  indented first\n",
		    "2: continuation line (starts with white space) without "
		    "an entry before it" },
		{ MAP_SOURCE_PLAIN, "a b\nc d\0e\n", "2: NUL byte in the line" },
		{ MAP_SOURCE_ALIASES, "a: b\nno colon here\n",
		    "2: expected \"name: value\", found no \":\"" },
		{ MAP_SOURCE_ALIASES, "a: b\n\nc:\n", "3: no value after \"c:\"" },
		{ MAP_SOURCE_ALIASES, "two words: x\n",
		    "1: white space in the name (quote the name)" },
		{ MAP_SOURCE_ALIASES, "\"open: x\n", "1: unterminated quoted name" },
		{ MAP_SOURCE_ALIASES, "\"a\" b: x\n",
		    "1: expected \":\" after the quoted name" },
		{ MAP_SOURCE_ALIASES, ": x\n", "1: empty name" },
	};
	char *src = path_in_tmp("bad");
	char *spec = xasprintf("hash:%s", src);
	char *db = xasprintf("%s.db", src);

	/* A good table first: a failed build must leave it untouched. */
	write_file(src, "keep me\n", 0644);
	char err[512];
	CHECK(map_build(spec, MAP_SOURCE_PLAIN, err, sizeof(err)));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* write through fwrite: one case holds a NUL byte */
		size_t len = strlen(cases[i].text);
		if (strstr(cases[i].want_err, "NUL") != NULL)
			len = 10;
		FILE *fp = fopen(src, "w");
		fwrite(cases[i].text, 1, len, fp);
		fclose(fp);
		err[0] = '\0';
		CHECK(!map_build(spec, cases[i].format, err, sizeof(err)));
		char *want = xasprintf("%s:%s", src, cases[i].want_err);
		CHECK_STR(err, want);
		free(want);
	}
	struct map *m = must_open(spec);
	CHECK_LOOK(m, "keep", "me");
	map_close(m);
	CHECK_INT(count_tmp_files(), 0);

	/* A missing source names the file. */
	unlink(src);
	CHECK(!map_build(spec, MAP_SOURCE_PLAIN, err, sizeof(err)));
	CHECK(strstr(err, src) != NULL);
	CHECK(strstr(err, "No such file") != NULL);
	free(src);
	free(spec);
	free(db);
}

static void test_bad_specs(void)
{
	char err[512];
	CHECK(map_open("nosuchtype:/etc/x", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "unknown type \"nosuchtype\"") != NULL);
	CHECK(map_open("/etc/postern/aliases", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "expected type:path") != NULL);
	CHECK(map_open("hash:", err, sizeof(err)) == NULL);
	CHECK(!map_build("cdb:/x", MAP_SOURCE_PLAIN, err, sizeof(err)));
	CHECK(strstr(err, "unknown type \"cdb\"") != NULL);
}

static void test_missing_then_built(void)
{
	char *src = path_in_tmp("late");
	char *spec = xasprintf("hash:%s", src);
	struct map *m = must_open(spec);	/* no .db yet: not an error */
	CHECK_LOOK(m, "x", "ERROR");
	CHECK_LOOK(m, "x", "ERROR");
	write_file(src, "x found\n", 0644);
	char err[512];
	CHECK(map_build(spec, MAP_SOURCE_PLAIN, err, sizeof(err)));
	CHECK_LOOK(m, "x", "found");	/* same handle, no re-open by us */
	map_close(m);
	free(src);
	free(spec);
}

static void test_rebuild_is_seen(void)
{
	char *spec = must_build("swap", "k old\ngone here\n", MAP_SOURCE_PLAIN);
	struct map *m = must_open(spec);
	CHECK_LOOK(m, "k", "old");
	CHECK_LOOK(m, "gone", "here");
	free(must_build("swap", "k new\nadded there\n", MAP_SOURCE_PLAIN));
	CHECK_LOOK(m, "k", "new");
	CHECK_LOOK(m, "gone", "NOTFOUND");
	CHECK_LOOK(m, "added", "there");
	map_close(m);
	free(spec);
}

/*
 * A child rebuilds the table over and over, alternating two versions,
 * while this process keeps looking up through one handle: every answer
 * must come from one complete version, never an error or a gap.
 */
static void test_rebuild_while_reading(void)
{
	enum { KEYS = 200, BUILDS = 40 };
	char *old_text, *new_text;
	size_t cap = KEYS * 40;

	old_text = xcalloc(1, cap);
	new_text = xcalloc(1, cap);
	for (int i = 0; i < KEYS; i++) {
		char line[64];
		snprintf(line, sizeof(line), "key%d old%d\n", i, i);
		strncat(old_text, line, cap - strlen(old_text) - 1);
		snprintf(line, sizeof(line), "key%d new%d\n", i, i);
		strncat(new_text, line, cap - strlen(new_text) - 1);
	}
	char *spec = must_build("race", old_text, MAP_SOURCE_PLAIN);
	char *src = path_in_tmp("race");
	struct map *m = must_open(spec);

	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char err[512];
		for (int n = 0; n < BUILDS; n++) {
			/* The source is swapped by rename, so the build never
			 * reads a half-written source. */
			char *tmp = path_in_tmp("race.src");
			write_file(tmp, n % 2 == 0 ? new_text : old_text,
			    0644);
			if (rename(tmp, src) != 0)
				_exit(2);
			if (!map_build(spec, MAP_SOURCE_PLAIN, err,
			    sizeof(err)))
				_exit(3);
			free(tmp);
		}
		/* Leave nothing behind for valgrind's leak check. */
		map_close(m);
		free(spec);
		free(src);
		free(old_text);
		free(new_text);
		_exit(0);
	}
	CHECK(pid > 0);
	int status = 0, bad = 0, seen_old = 0, seen_new = 0;
	long lookups = 0;
	bool done = false;
	/* Bounded: the child ends after BUILDS builds; 10 million lookups
	 * is a generous cap should it hang. */
	while (!done && lookups < 10000000) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			done = true;
		int i = (int)(lookups % KEYS);
		char key[32], want_old[32], want_new[32], *value;
		snprintf(key, sizeof(key), "KEY%d", i);
		snprintf(want_old, sizeof(want_old), "old%d", i);
		snprintf(want_new, sizeof(want_new), "new%d", i);
		if (map_lookup(m, key, &value) != MAP_FOUND) {
			bad++;
		} else {
			if (strcmp(value, want_old) == 0)
				seen_old++;
			else if (strcmp(value, want_new) == 0)
				seen_new++;
			else
				bad++;
			free(value);
		}
		lookups++;
	}
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	CHECK(done);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(bad, 0);
	CHECK(seen_old > 0);
	/* BUILDS is even: the last build wrote the old text again. */
	CHECK_LOOK(m, "key7", "old7");
	map_close(m);
	free(spec);
	free(src);
	free(old_text);
	free(new_text);
	(void)seen_new;
}

/* Every entry reaches the walker once. */
static void count_entry(const char *key, const char *value, void *arg)
{
	int *n = arg;
	if (strcmp(key, "a") == 0 && strcmp(value, "1") == 0)
		n[0]++;
	else if (strcmp(key, "b") == 0 && strcmp(value, "two words") == 0)
		n[1]++;
	else
		n[2]++;
}

static void test_walk(void)
{
	char *spec = must_build("walk", "A 1\nb two words\n", MAP_SOURCE_PLAIN);
	struct map *m = must_open(spec);
	int n[3] = { 0, 0, 0 };
	CHECK_INT(map_walk(m, count_entry, n), MAP_FOUND);
	CHECK_INT(n[0], 1);
	CHECK_INT(n[1], 1);
	CHECK_INT(n[2], 0);
	map_close(m);
	free(spec);

	m = must_open("hash:/nonexistent/dir/x");
	CHECK_INT(map_walk(m, count_entry, n), MAP_ERROR);
	map_close(m);
}

/* The table keeps the source's read permissions: secrets stay secret. */
static void test_mode_follows_source(void)
{
	char *src = path_in_tmp("secret");
	char *spec = xasprintf("hash:%s", src);
	char *db = xasprintf("%s.db", src);
	char err[512];
	struct stat st;

	write_file(src, "user hash\n", 0640);
	CHECK(map_build(spec, MAP_SOURCE_PLAIN, err, sizeof(err)));
	CHECK(stat(db, &st) == 0);
	CHECK_INT(st.st_mode & 07777, 0640);
	write_file(src, "user hash\n", 0664);
	CHECK(map_build(spec, MAP_SOURCE_PLAIN, err, sizeof(err)));
	CHECK(stat(db, &st) == 0);
	CHECK_INT(st.st_mode & 07777, 0644);
	free(src);
	free(spec);
	free(db);
}

static struct cfg_list list_of(char **items, size_t n)
{
	struct cfg_list l = { items, n };
	return l;
}

struct addr_case {
	const char *address;
	enum map_result result;
	const char *value;
	const char *matched;
};

static void test_address_lookup_order(void)
{
	char *full = must_build("addr1",
	    "user+ext@example.org full\n"
	    "user@example.org plain\n"
	    "@example.org catchall\n"
	    "other@example.org other\n"
	    "local local-only\n", MAP_SOURCE_PLAIN);
	char *second = must_build("addr2",
	    "user+ext@example.org from-second\n"
	    "x@example.net second-table\n"
	    "@example.net second-catchall\n", MAP_SOURCE_PLAIN);
	char *items[] = { full, second, NULL };
	struct cfg_list specs = list_of(items, 2);
	char err[512];
	struct map_list *ml = map_list_open(&specs, err, sizeof(err));
	CHECK(ml != NULL);
	CHECK_INT(map_list_count(ml), 2);

	static const struct addr_case cases[] = {
		{ "user+ext@example.org", MAP_FOUND, "full",
		    "user+ext@example.org" },
		{ "USER+EXT@Example.ORG", MAP_FOUND, "full",
		    "user+ext@example.org" },
		{ "user+other@example.org", MAP_FOUND, "plain",
		    "user@example.org" },
		{ "user+a+b@example.org", MAP_FOUND, "plain",
		    "user@example.org" },
		{ "user@example.org", MAP_FOUND, "plain", "user@example.org" },
		{ "nobody@example.org", MAP_FOUND, "catchall", "@example.org" },
		{ "nobody+x@example.org", MAP_FOUND, "catchall",
		    "@example.org" },
		{ "other+x@example.org", MAP_FOUND, "other",
		    "other@example.org" },
		/* A later table's exact match beats an earlier catch-all:
		 * each form is tried in every table before the next form. */
		{ "x@example.net", MAP_FOUND, "second-table", "x@example.net" },
		{ "y@example.net", MAP_FOUND, "second-catchall",
		    "@example.net" },
		{ "user@example.com", MAP_NOTFOUND, NULL, NULL },
		{ "+ext@example.com", MAP_NOTFOUND, NULL, NULL },
		{ "local", MAP_FOUND, "local-only", "local" },
		{ "Local+ext", MAP_FOUND, "local-only", "local" },
		{ "", MAP_NOTFOUND, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *value = NULL, *matched = NULL;
		enum map_result r = map_list_lookup_address(ml,
		    cases[i].address, &value, &matched);
		if (r != cases[i].result)
			printf("# address %s\n", cases[i].address);
		CHECK_INT(r, cases[i].result);
		CHECK_STR(value, cases[i].value);
		CHECK_STR(matched, cases[i].matched);
		free(value);
		free(matched);
	}
	char *value;
	CHECK_INT(map_list_lookup(ml, "x@example.net", &value), MAP_FOUND);
	CHECK_STR(value, "second-table");
	free(value);
	CHECK_INT(map_list_lookup(ml, "user+ext@example.org", &value),
	    MAP_FOUND);
	CHECK_STR(value, "full");	/* the first table wins */
	free(value);
	CHECK_INT(map_list_lookup(ml, "none", &value), MAP_NOTFOUND);
	CHECK(value == NULL);
	map_list_close(ml);

	/* A missing table before the match: temporary failure, not a guess
	 * from a later table. matched_key may be NULL. */
	char *missing = path_in_tmp("never-built");
	char *missing_spec = xasprintf("hash:%s", missing);
	char *items2[] = { missing_spec, full, NULL };
	specs = list_of(items2, 2);
	ml = map_list_open(&specs, err, sizeof(err));
	CHECK(ml != NULL);
	CHECK_INT(map_list_lookup_address(ml, "user@example.org", &value,
	    NULL), MAP_ERROR);
	CHECK(value == NULL);
	map_list_close(ml);

	/* A bad spec in a list fails the whole list, naming it. */
	char *items3[] = { full, "bogus:/x", NULL };
	specs = list_of(items3, 2);
	CHECK(map_list_open(&specs, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "bogus") != NULL);

	/* An empty list finds nothing. */
	specs = list_of(items3, 0);
	ml = map_list_open(&specs, err, sizeof(err));
	CHECK(ml != NULL);
	CHECK_INT(map_list_count(ml), 0);
	CHECK_INT(map_list_lookup_address(ml, "a@b", &value, NULL),
	    MAP_NOTFOUND);
	map_list_close(ml);

	free(missing);
	free(missing_spec);
	free(full);
	free(second);
}

/* A file that is not a table is a temporary failure, and a good rebuild
 * over it is picked up. */
static void test_corrupt_file_then_fixed(void)
{
	char *src = path_in_tmp("corrupt");
	char *spec = xasprintf("hash:%s", src);
	char *db = xasprintf("%s.db", src);
	char err[512];

	write_file(db, "this is not a Berkeley DB file\n", 0644);
	struct map *m = must_open(spec);
	CHECK_LOOK(m, "a", "ERROR");
	write_file(src, "a fixed\n", 0644);
	CHECK(map_build(spec, MAP_SOURCE_PLAIN, err, sizeof(err)));
	CHECK_LOOK(m, "a", "fixed");
	map_close(m);
	free(src);
	free(spec);
	free(db);
}

/* A table removed under a running reader keeps answering from the copy
 * already open (map_build never removes; an administrator might). A
 * replacement that does not open is an error, even with an old copy open,
 * so every process gives the same answer. */
static void test_removed_and_broken_replacement(void)
{
	char *spec = must_build("vanish", "k v\n", MAP_SOURCE_PLAIN);
	char *db = path_in_tmp("vanish.db");
	struct map *m = must_open(spec);

	CHECK_LOOK(m, "k", "v");
	CHECK(unlink(db) == 0);
	CHECK_LOOK(m, "k", "v");
	write_file(db, "garbage, not a table\n", 0644);
	CHECK_LOOK(m, "k", "ERROR");
	map_close(m);
	free(spec);
	free(db);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	log_init("test_map", LOG_DEST_STDERR);
	if (mkdtemp(tmpdir) == NULL)
		log_fatal("mkdtemp: %m");
	RUN(test_build_and_lookup);
	RUN(test_case_folding);
	RUN(test_comments_and_continuations);
	RUN(test_duplicates_keep_first);
	RUN(test_aliases_format);
	RUN(test_errors_name_the_line);
	RUN(test_bad_specs);
	RUN(test_missing_then_built);
	RUN(test_rebuild_is_seen);
	RUN(test_rebuild_while_reading);
	RUN(test_walk);
	RUN(test_mode_follows_source);
	RUN(test_address_lookup_order);
	RUN(test_corrupt_file_then_fixed);
	RUN(test_removed_and_broken_replacement);
	nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return unit_done();
}
