/*
 * cfg.h - postern.conf: parsing, typed values, defaults.
 *
 * The file is "key = value" lines; "#" starts a comment line; a line that
 * begins with white space continues the previous one. Values may refer to
 * other keys as $name or ${name}. An unknown key, a repeated key or a bad
 * value is an error naming the file and line. After cfg_load() every
 * program reads its settings from the global struct cfg (read-only).
 */
#ifndef POSTERN_CFG_H
#define POSTERN_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cfg_keys.h"

/* A list value: count entries, also NULL-terminated. */
struct cfg_list {
	char **items;
	size_t count;
};

#define CFG_CTYPE_STRING char *
#define CFG_CTYPE_LIST struct cfg_list
#define CFG_CTYPE_INT long long
#define CFG_CTYPE_SIZE long long
#define CFG_CTYPE_DURATION long long
#define CFG_CTYPE_BOOL bool

struct cfg {
	char *config_directory;	/* from -c; not a key of the file */
	char *config_file;	/* config_directory/postern.conf */
#define CFG_FIELD(type, name, def) CFG_CTYPE_##type name;
	CFG_KEYS(CFG_FIELD)
#undef CFG_FIELD
};

extern struct cfg cfg;

#define CFG_DEFAULT_DIRECTORY "/etc/postern"
#define CFG_FILE_NAME "postern.conf"

/*
 * Load config_directory/postern.conf (a missing file means all defaults
 * only if allow_missing). On error, fills err (file:line: message) and
 * returns false; cfg is then unchanged.
 */
bool cfg_load(const char *config_directory, bool allow_missing,
    char *err, size_t errsize);
/*
 * The same from len bytes of config text already in memory (cfg_load
 * reads the file and calls this); file names the text in error messages.
 */
bool cfg_load_text(const char *config_directory, const char *file,
    const char *text, size_t len, char *err, size_t errsize);

/* Print every effective value as "key = value" lines. */
void cfg_print(FILE *out);

/* Look up one key's effective value as text (for "postern config KEY"). */
bool cfg_value_text(const char *key, char *out, size_t outsize);
bool cfg_key_exists(const char *key);

/*
 * The key table, for "postern config" (admin/postern_config.c): key i's
 * name, its default as written in cfg_keys.h (unexpanded, "$myhostname"),
 * the text the loaded file gave it (NULL if none), its effective value.
 * cfg_key_lookup: the index of a key, -1 if there is no such key.
 */
size_t cfg_key_count(void);
const char *cfg_key_name(size_t i);
const char *cfg_key_default(size_t i);
const char *cfg_key_file_text(size_t i);
const char *cfg_key_effective(size_t i);
int cfg_key_lookup(const char *key);

/* Value parsers, shared with other code that reads such values. */
bool cfg_parse_size(const char *text, long long *out);
bool cfg_parse_duration(const char *text, long long *out);
bool cfg_parse_bool(const char *text, bool *out);
/* Split at commas and white space into a NULL-terminated vector. */
struct cfg_list cfg_split_list(const char *text);
void cfg_list_free(struct cfg_list *list);
bool cfg_list_contains_nocase(const struct cfg_list *list, const char *s);
/* The default of myhostname: the first word of mailname_path
 * (/etc/mailname), else the FQDN (hostname -f), else the host name. */
char *cfg_default_hostname(const char *mailname_path);

#endif
