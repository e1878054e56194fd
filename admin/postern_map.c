/*
 * postern_map.c - "postern map": build, query and list lookup tables.
 *
 *   postern map build [-a] FILE|type:FILE...   build FILE.db from FILE
 *   postern map query FILE|type:FILE KEY       print KEY's value
 *   postern map list [-a] FILE|type:FILE       print every entry
 *
 * A name without a type means hash:. -a reads (build) or writes (list)
 * the aliases format "name: value". query prints nothing and exits 1 when
 * the key is not there, like postmap -q; 2 means a usage error or an
 * unreadable table. Trusts its invoking user: it reads and writes with
 * that user's rights only. A table named in smtpd_sasl_users is built
 * only if every password hash in it is a strong one (mail/pwhash.h).
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cfg.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "pwhash.h"

enum {
	MAP_EXIT_OK = 0,
	MAP_EXIT_NOTFOUND = 1,	/* query: no such key; build: a build failed */
	MAP_EXIT_USAGE = 2,	/* also: the table could not be read */
};

static int map_usage(void)
{
	fprintf(stderr,
	    "usage: postern map build [-a] FILE|type:FILE...\n"
	    "       postern map query FILE|type:FILE KEY\n"
	    "       postern map list [-a] FILE|type:FILE\n"
	    "FILE alone means hash:FILE; -a is the aliases format "
	    "(name: value).\n");
	return MAP_EXIT_USAGE;
}

/* "hash:/x" stays; "/x" or "x" becomes "hash:x". A type is letters and
 * digits before the first ':'. */
static char *map_spec_of(const char *arg)
{
	const char *colon = strchr(arg, ':');
	bool typed = colon != NULL && colon != arg;

	for (const char *p = arg; typed && p < colon; p++)
		if (!isalnum((unsigned char)*p))
			typed = false;
	return typed ? xstrdup(arg) : xasprintf("hash:%s", arg);
}

/* The same file, whichever way the two names spell it. */
static bool map_same_spec(const char *a, const char *b)
{
	const char *ca = strchr(a, ':'), *cb = strchr(b, ':');
	char ra[PATH_MAX], rb[PATH_MAX];

	if (ca == NULL || cb == NULL || ca - a != cb - b ||
	    strncmp(a, b, (size_t)(ca - a)) != 0)
		return false;
	if (strcmp(ca, cb) == 0)
		return true;
	return realpath(ca + 1, ra) != NULL && realpath(cb + 1, rb) != NULL &&
	    strcmp(ra, rb) == 0;
}

static bool map_is_sasl_users(const char *spec)
{
	bool found = false;

	for (size_t i = 0; i < cfg.smtpd_sasl_users.count && !found; i++) {
		char *s = map_spec_of(cfg.smtpd_sasl_users.items[i]);
		found = map_same_spec(s, spec);
		free(s);
	}
	return found;
}

/* smtpd_sasl_users: user name to a strong crypt(3) hash. */
static bool map_check_sasl_entry(const char *key, const char *value,
    void *arg, char *why, size_t whysize)
{
	return pwhash_check(value, why, whysize);
}

static int map_cmd_build(int argc, char **argv)
{
	enum map_source_format format = MAP_SOURCE_PLAIN;
	int i = 1, status = MAP_EXIT_OK;

	if (i < argc && strcmp(argv[i], "-a") == 0) {
		format = MAP_SOURCE_ALIASES;
		i++;
	}
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc)
		return map_usage();
	for (; i < argc; i++) {
		char err[1024];
		char *spec = map_spec_of(argv[i]);
		map_check_fn *check = format == MAP_SOURCE_PLAIN &&
		    map_is_sasl_users(spec) ? map_check_sasl_entry : NULL;
		if (!map_build_checked(spec, format, check, NULL, err,
		    sizeof(err))) {
			log_error("%s", err);
			status = MAP_EXIT_NOTFOUND;
		}
		free(spec);
	}
	return status;
}

static int map_cmd_query(int argc, char **argv)
{
	char err[1024];
	char *spec, *value;
	struct map *m;
	int status;

	if (argc != 3)
		return map_usage();
	spec = map_spec_of(argv[1]);
	m = map_open(spec, err, sizeof(err));
	free(spec);
	if (m == NULL) {
		log_error("%s", err);
		return MAP_EXIT_USAGE;
	}
	switch (map_lookup(m, argv[2], &value)) {
	case MAP_FOUND:
		printf("%s\n", value);
		free(value);
		status = MAP_EXIT_OK;
		break;
	case MAP_NOTFOUND:
		status = MAP_EXIT_NOTFOUND;
		break;
	case MAP_ERROR:
	default:
		status = MAP_EXIT_USAGE;	/* map_lookup logged why */
		break;
	}
	map_close(m);
	if (fflush(stdout) != 0)
		status = MAP_EXIT_USAGE;
	return status;
}

struct map_entries {
	char **keys;
	char **values;
	size_t count;
	size_t cap;
};

static void map_collect(const char *key, const char *value, void *arg)
{
	struct map_entries *e = arg;

	if (e->count == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->keys = xreallocarray(e->keys, e->cap, sizeof(*e->keys));
		e->values = xreallocarray(e->values, e->cap,
		    sizeof(*e->values));
	}
	e->keys[e->count] = xstrdup(key);
	e->values[e->count] = xstrdup(value);
	e->count++;
}

static struct map_entries *map_sort_entries;

static int map_compare_index(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	return strcmp(map_sort_entries->keys[i], map_sort_entries->keys[j]);
}

/* An alias name that would not read back as itself is quoted. */
static void map_print_alias_name(const char *name)
{
	bool quote = false;

	for (const char *p = name; *p != '\0'; p++)
		if (isspace((unsigned char)*p) || *p == ':' || *p == '"' ||
		    *p == '\\' || *p == '#')
			quote = true;
	if (!quote) {
		fputs(name, stdout);
		return;
	}
	putchar('"');
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			putchar('\\');
		putchar(*p);
	}
	putchar('"');
}

/* Sorted by key, so that two listings compare with diff. */
static int map_cmd_list(int argc, char **argv)
{
	bool aliases = false;
	struct map_entries e = { NULL, NULL, 0, 0 };
	char err[1024];
	char *spec;
	struct map *m;
	size_t *order;
	int status = MAP_EXIT_OK;
	int i = 1;

	if (i < argc && strcmp(argv[i], "-a") == 0) {
		aliases = true;
		i++;
	}
	if (argc - i != 1)
		return map_usage();
	spec = map_spec_of(argv[i]);
	m = map_open(spec, err, sizeof(err));
	free(spec);
	if (m == NULL) {
		log_error("%s", err);
		return MAP_EXIT_USAGE;
	}
	if (map_walk(m, map_collect, &e) != MAP_FOUND)
		status = MAP_EXIT_USAGE;	/* map_walk logged why */
	map_close(m);
	order = xcalloc(e.count ? e.count : 1, sizeof(*order));
	for (size_t k = 0; k < e.count; k++)
		order[k] = k;
	map_sort_entries = &e;
	qsort(order, e.count, sizeof(*order), map_compare_index);
	for (size_t k = 0; status == MAP_EXIT_OK && k < e.count; k++) {
		size_t n = order[k];
		if (aliases) {
			map_print_alias_name(e.keys[n]);
			printf(": %s\n", e.values[n]);
		} else {
			printf("%s\t%s\n", e.keys[n], e.values[n]);
		}
	}
	for (size_t k = 0; k < e.count; k++) {
		free(e.keys[k]);
		free(e.values[k]);
	}
	free(e.keys);
	free(e.values);
	free(order);
	if (fflush(stdout) != 0)
		status = MAP_EXIT_USAGE;
	return status;
}

int admin_map_main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
		{ "build", map_cmd_build },
		{ "query", map_cmd_query },
		{ "list", map_cmd_list },
	};

	if (argc < 2)
		return map_usage();
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	return map_usage();
}
