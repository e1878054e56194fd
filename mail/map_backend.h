/*
 * map_backend.h - the operations one table type provides to map.c.
 * Private to mail/map*.c: programs use map.h only.
 *
 * A backend knows how to read and write one on-disk file format; map.c
 * does everything else (names, source parsing, atomic replacement,
 * noticing a replaced file, lists, address lookups). A new type ("lmdb",
 * "cdb") is one map_<type>.c file defining one struct map_backend and one
 * row in map.c's table. Keys reach the backend already lowercased, as
 * keylen bytes to store without a terminating NUL (for get, key[keylen]
 * is a NUL all the same); values likewise.
 */
#ifndef POSTERN_MAP_BACKEND_H
#define POSTERN_MAP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "map.h"

/* Result of adding one entry while building. */
enum map_put_result {
	MAP_PUT_STORED,
	MAP_PUT_DUPLICATE,	/* key already present: nothing changed */
	MAP_PUT_ERROR,
};

struct map_backend {
	const char *type;	/* the part before ':' in "type:path" */
	const char *suffix;	/* appended to path to name the file: ".db" */

	/* Open file read-only. NULL on failure, with errno set (ENOENT when
	 * the file does not exist) and a reason in err. */
	void *(*open)(const char *file, char *err, size_t errsize);
	void (*close)(void *handle);
	enum map_result (*get)(void *handle, const char *key, size_t keylen,
	    char **value, char *err, size_t errsize);
	/* Every entry, in the backend's order; false on a read error. */
	bool (*walk)(void *handle, map_walk_fn *fn, void *arg, char *err,
	    size_t errsize);

	/* Writing: file exists and is empty (made by mkstemp); commit
	 * flushes everything to the file and frees the writer, abort only
	 * frees it (map.c removes the file). The first value of a key stays
	 * (as Postfix's postmap does). */
	void *(*create)(const char *file, char *err, size_t errsize);
	enum map_put_result (*put)(void *writer, const char *key,
	    size_t keylen, const char *value, size_t valuelen, char *err,
	    size_t errsize);
	bool (*commit)(void *writer, char *err, size_t errsize);
	void (*abort)(void *writer);
};

extern const struct map_backend map_backend_hash;	/* map_hash.c */

#endif
