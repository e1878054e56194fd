/*
 * map.h - lookup tables. The one interface through which every program
 * reads alias_maps, virtual_alias_maps, transport_maps, mailbox_maps and
 * smtpd_sasl_users. A table is named "type:path"; "hash:/etc/postern/x"
 * is a Berkeley DB hash file /etc/postern/x.db built from the text file
 * /etc/postern/x by map_build(). Another backend is one new map_*.c file
 * behind this interface.
 *
 * Keys are compared case-insensitively (stored lowercased). Tables are
 * opened read-only and re-opened when the file on disk is replaced.
 */
#ifndef POSTERN_MAP_H
#define POSTERN_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

enum map_result {
	MAP_FOUND,
	MAP_NOTFOUND,
	MAP_ERROR,	/* table unreadable: a temporary failure for callers */
};

struct map;

/* Open "type:path". NULL with err if the type is unknown. A missing file
 * is not an error here: lookups report MAP_ERROR until it appears. The
 * file is opened now by root, at the first lookup or walk otherwise. */
struct map *map_open(const char *spec, char *err, size_t errsize);
void map_close(struct map *m);
const char *map_name(const struct map *m);
/* *value is malloc'd on MAP_FOUND. */
enum map_result map_lookup(struct map *m, const char *key, char **value);
/*
 * Call fn for every entry, in no particular order (for "postern map
 * list"). MAP_FOUND when every entry was seen, MAP_ERROR if the table is
 * missing or unreadable.
 */
typedef void map_walk_fn(const char *key, const char *value, void *arg);
enum map_result map_walk(struct map *m, map_walk_fn *fn, void *arg);

/* An ordered list of tables (a config list value): first match wins. */
struct map_list;
struct map_list *map_list_open(const struct cfg_list *specs, char *err,
    size_t errsize);
void map_list_close(struct map_list *ml);
size_t map_list_count(const struct map_list *ml);
enum map_result map_list_lookup(struct map_list *ml, const char *key,
    char **value);
/*
 * Address lookup in the order Postfix users expect: "user+ext@domain",
 * "user@domain", then "@domain" (catch-all); with the +ext dropped when the
 * full address is not found. *matched_key (optional, malloc'd) says which.
 */
enum map_result map_list_lookup_address(struct map_list *ml,
    const char *address, char **value, char **matched_key);

/*
 * Build type:path from its text source atomically (write aside, fsync,
 * rename). format: MAP_SOURCE_PLAIN ("key value" lines, "#" comments,
 * white-space continuation lines) or MAP_SOURCE_ALIASES ("name: a, b").
 */
enum map_source_format {
	MAP_SOURCE_PLAIN,
	MAP_SOURCE_ALIASES,
};
bool map_build(const char *spec, enum map_source_format format, char *err,
    size_t errsize);
/*
 * The same, with every entry first shown to check (key NUL-terminated and
 * folded): false with why refuses the entry, and the build fails with
 * err "source:line: key \"KEY\": why".
 */
typedef bool map_check_fn(const char *key, const char *value, void *arg,
    char *why, size_t whysize);
bool map_build_checked(const char *spec, enum map_source_format format,
    map_check_fn *check, void *arg, char *err, size_t errsize);

#endif
