/*
 * postern_config.c - "postern config": the configuration as postconf(1)
 * shows and edits Postfix's main.cf.
 *
 *   postern config [KEY...]        effective values (expanded)
 *   postern config -n [KEY...]     only what postern.conf sets, as written
 *   postern config -d [KEY...]     the defaults, as written in the table
 *   postern config -e KEY=VALUE... set keys in postern.conf in place
 *   postern config -X KEY...       remove keys from postern.conf
 *
 * An edit keeps every comment, blank line and the order of the file: a
 * key's line (and its continuation lines) is replaced where it stands, a
 * new key is appended. The new text must load (cfg_load_text: known keys,
 * good values, the same checks as at start) before it replaces the file:
 * written beside it, fsync'd, renamed over it, the directory fsync'd, so
 * a crash leaves the old file or the new one, never half of one.
 *
 * Trusts: the invoking user, who may write the config file or not (the
 * kernel decides); values from the command line are checked by the
 * loader, and a value holding a line break is refused.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "cfg.h"
#include "mem.h"
#include "str.h"

#define CONFIG_CMD "postern config"

enum config_mode {
	CONFIG_EFFECTIVE,
	CONFIG_NONDEFAULT,	/* -n */
	CONFIG_DEFAULTS,	/* -d */
	CONFIG_EDIT,		/* -e */
	CONFIG_REMOVE,		/* -X */
};

/* One key's line in the chosen mode; false if -n and the file omits it. */
static bool print_key(enum config_mode mode, size_t i)
{
	const char *v;

	switch (mode) {
	case CONFIG_NONDEFAULT:
		v = cfg_key_file_text(i);
		if (v == NULL)
			return false;
		break;
	case CONFIG_DEFAULTS:
		v = cfg_key_default(i);
		break;
	default:
		v = cfg_key_effective(i);
		break;
	}
	printf("%s = %s\n", cfg_key_name(i), v);
	return true;
}

static int show(enum config_mode mode, int argc, char **argv)
{
	int rc = 0;

	if (argc == 0) {
		for (size_t i = 0; i < cfg_key_count(); i++)
			print_key(mode, i);
		return 0;
	}
	for (int a = 0; a < argc; a++) {
		int i = cfg_key_lookup(argv[a]);
		if (i < 0) {
			fprintf(stderr, "%s: unknown parameter \"%s\"\n",
			    CONFIG_CMD, argv[a]);
			rc = 1;
			continue;
		}
		print_key(mode, (size_t)i);
	}
	return rc;
}

/* ---- editing ---- */

struct config_line {
	char *text;		/* without its line end */
	bool crlf;
};

struct config_file {
	struct config_line *lines;
	size_t count, cap;
	bool final_newline;
};

static void file_add(struct config_file *f, const char *p, size_t n,
    bool crlf)
{
	if (f->count == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 64;
		f->lines = xreallocarray(f->lines, f->cap, sizeof(*f->lines));
	}
	f->lines[f->count].text = xstrndup(p, n);
	f->lines[f->count].crlf = crlf;
	f->count++;
}

static void file_free(struct config_file *f)
{
	for (size_t i = 0; i < f->count; i++)
		free(f->lines[i].text);
	free(f->lines);
}

static void file_split(struct config_file *f, const char *text, size_t len)
{
	const char *p = text, *end = text + len;

	f->final_newline = len == 0 || text[len - 1] == '\n';
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		bool crlf = n > 0 && p[n - 1] == '\r';
		file_add(f, p, crlf ? n - 1 : n, crlf);
		p = nl ? nl + 1 : end;
	}
}

static bool is_blank_or_comment(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return *s == '\0' || *s == '#';
}

/* The key a line sets ("key = ..." at the start of a line), or false. */
static bool line_key(const char *s, char *key, size_t keysize)
{
	if (isspace((unsigned char)*s) || is_blank_or_comment(s))
		return false;
	const char *eq = strchr(s, '=');
	if (eq == NULL)
		return false;
	size_t n = (size_t)(eq - s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n >= keysize)
		return false;
	memcpy(key, s, n);
	key[n] = '\0';
	return true;
}

/*
 * Remove key's lines (the key line and its continuation lines, as the
 * loader joins them: comments between stay). Returns the index where
 * they were, or -1.
 */
static long file_remove_key(struct config_file *f, const char *key)
{
	char k[128];
	long at = -1;

	for (size_t i = 0; i < f->count; i++) {
		if (f->lines[i].text == NULL ||
		    !line_key(f->lines[i].text, k, sizeof(k)) ||
		    strcmp(k, key) != 0)
			continue;
		at = (long)i;
		size_t j = i + 1;
		while (j < f->count && (f->lines[j].text == NULL ||
		    isspace((unsigned char)f->lines[j].text[0]) ||
		    is_blank_or_comment(f->lines[j].text))) {
			if (f->lines[j].text != NULL &&
			    !is_blank_or_comment(f->lines[j].text)) {
				free(f->lines[j].text);
				f->lines[j].text = NULL;	/* dropped */
			}
			j++;
		}
		free(f->lines[i].text);
		f->lines[i].text = NULL;
		break;
	}
	return at;
}

static void file_set_key(struct config_file *f, const char *key,
    const char *value)
{
	char *line = xasprintf("%s = %s", key, value);
	long at = file_remove_key(f, key);

	if (at >= 0) {
		f->lines[at].text = line;
		return;
	}
	bool crlf = f->count > 0 && f->lines[f->count - 1].crlf;
	if (!f->final_newline && f->count > 0)
		f->final_newline = true;
	file_add(f, line, strlen(line), crlf);
	free(line);
}

static void file_join(const struct config_file *f, struct str *out)
{
	for (size_t i = 0; i < f->count; i++) {
		if (f->lines[i].text == NULL)
			continue;
		str_append_cstr(out, f->lines[i].text);
		if (i + 1 < f->count || f->final_newline)
			str_append_cstr(out, f->lines[i].crlf ? "\r\n" : "\n");
	}
}

/* Replace path by text: a file beside it, fsync, rename, fsync dir. */
static bool replace_file(const char *path, const struct str *text,
    const struct stat *old)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else
		strcpy(dir, ".");
	char *tmp = xasprintf("%s/.%s.XXXXXX", dir,
	    slash ? slash + 1 : path);
	bool ok = false;
	int fd = mkstemp(tmp);

	if (fd < 0) {
		fprintf(stderr, "%s: create %s: %s\n", CONFIG_CMD, tmp,
		    strerror(errno));
		goto out;
	}
	/* The new file gets the old one's mode and owners. */
	if (fchmod(fd, old->st_mode & 07777) < 0 ||
	    (geteuid() == 0 && fchown(fd, old->st_uid, old->st_gid) < 0) ||
	    write(fd, text->data ? text->data : "", text->len) !=
	    (ssize_t)text->len || fsync(fd) < 0) {
		fprintf(stderr, "%s: write %s: %s\n", CONFIG_CMD, tmp,
		    strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		fprintf(stderr, "%s: rename %s to %s: %s\n", CONFIG_CMD, tmp,
		    path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	ok = true;
out:
	free(tmp);
	free(dir);
	return ok;
}

static int edit(enum config_mode mode, int argc, char **argv)
{
	/* Copies: loading the new text replaces cfg and its strings. */
	char *path = xstrdup(cfg.config_file);
	char *config_dir = xstrdup(cfg.config_directory);
	struct config_file f = { 0 };
	struct str text, out;
	struct stat st;
	char err[512];
	int rc = 1;

	if (argc == 0) {
		fprintf(stderr, "usage: %s %s\n", CONFIG_CMD, mode == CONFIG_EDIT ?
		    "-e KEY=VALUE..." : "-X KEY...");
		free(path);
		free(config_dir);
		return 2;
	}
	str_init(&text, STR_NO_MAX);
	str_init(&out, STR_NO_MAX);
	FILE *fp = fopen(path, "re");
	if (fp == NULL || fstat(fileno(fp), &st) < 0) {
		fprintf(stderr, "%s: %s: %s\n", CONFIG_CMD, path,
		    strerror(errno));
		if (fp != NULL)
			fclose(fp);
		goto out;
	}
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		str_append(&text, chunk, n);
	bool read_error = ferror(fp);
	fclose(fp);
	if (read_error) {
		fprintf(stderr, "%s: read %s\n", CONFIG_CMD, path);
		goto out;
	}
	file_split(&f, text.data ? text.data : "", text.len);
	for (int a = 0; a < argc; a++) {
		char *arg = argv[a];
		char *eq = mode == CONFIG_EDIT ? strchr(arg, '=') : NULL;
		if (mode == CONFIG_EDIT && eq == NULL) {
			fprintf(stderr, "%s: -e wants KEY=VALUE, not \"%s\"\n",
			    CONFIG_CMD, arg);
			goto out;
		}
		char *key = xstrndup(arg, eq ? (size_t)(eq - arg) : strlen(arg));
		size_t kn = strlen(key);
		while (kn > 0 && isspace((unsigned char)key[kn - 1]))
			key[--kn] = '\0';
		const char *value = eq ? eq + 1 : "";
		while (isspace((unsigned char)*value))
			value++;
		bool known = cfg_key_lookup(key) >= 0;
		bool multiline = strpbrk(value, "\r\n") != NULL;
		if (!known || multiline) {
			fprintf(stderr, known ? "%s: a value is one line: %s\n" :
			    "%s: unknown parameter \"%s\"\n", CONFIG_CMD, key);
			free(key);
			goto out;
		}
		if (mode == CONFIG_EDIT)
			file_set_key(&f, key, value);
		else
			(void)file_remove_key(&f, key);
		free(key);
	}
	file_join(&f, &out);
	/* What master would refuse at start never replaces the file. */
	if (!cfg_load_text(config_dir, path, out.data ? out.data :
	    "", out.len, err, sizeof(err))) {
		fprintf(stderr, "%s: not changed: %s\n", CONFIG_CMD, err);
		goto out;
	}
	if (replace_file(path, &out, &st))
		rc = 0;
out:
	file_free(&f);
	free(path);
	free(config_dir);
	str_free(&text);
	str_free(&out);
	return rc;
}

int admin_config_main(int argc, char **argv)
{
	enum config_mode mode = CONFIG_EFFECTIVE;
	int a = 1;

	if (a < argc && argv[a][0] == '-' && argv[a][1] != '\0' &&
	    argv[a][2] == '\0') {
		switch (argv[a][1]) {
		case 'n': mode = CONFIG_NONDEFAULT; break;
		case 'd': mode = CONFIG_DEFAULTS; break;
		case 'e': mode = CONFIG_EDIT; break;
		case 'X': mode = CONFIG_REMOVE; break;
		default:
			fprintf(stderr, "usage: %s [-n | -d] [KEY...] | -e "
			    "KEY=VALUE... | -X KEY...\n", CONFIG_CMD);
			return 2;
		}
		a++;
	}
	if (mode == CONFIG_EDIT || mode == CONFIG_REMOVE)
		return edit(mode, argc - a, argv + a);
	return show(mode, argc - a, argv + a);
}
