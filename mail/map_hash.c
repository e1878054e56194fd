/*
 * map_hash.c - the "hash:" table type: a Berkeley DB 5.3 hash file.
 *
 * Readers open the file with DB_RDONLY and no environment: no locking is
 * needed because a file is never changed in place once it has its final
 * name (map.c builds aside and renames). Keys and values are stored as
 * their bytes without a terminating NUL. Tables written by Postfix's
 * postmap/postalias (keys and values ending in a NUL byte on Linux) are
 * read too, so existing .db files keep working during a migration. Trusts
 * the file only as far as Berkeley DB checks it; values are copied out and
 * NUL-terminated here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <db.h>

#include "map_backend.h"
#include "mem.h"

/*
 * Berkeley DB reports details through a callback, not through its return
 * codes. Keep the last message so that a failure can say why; the
 * processes using maps are single-threaded.
 */
static char hash_last_message[256];

static void hash_errcall(const DB_ENV *env, const char *prefix,
    const char *message)
{
	(void)env;
	(void)prefix;
	snprintf(hash_last_message, sizeof(hash_last_message), "%s", message);
}

/* err = "what file: reason"; file may be NULL. */
static void hash_error(char *err, size_t errsize, const char *what,
    const char *file, int ret)
{
	snprintf(err, errsize, "%s%s%s: %s%s%s%s", what, file ? " " : "",
	    file ? file : "", db_strerror(ret),
	    hash_last_message[0] ? " (" : "", hash_last_message,
	    hash_last_message[0] ? ")" : "");
	hash_last_message[0] = '\0';
}

static DB *hash_handle(const char *file, u_int32_t flags, int mode,
    char *err, size_t errsize)
{
	DB *db;
	int ret;

	hash_last_message[0] = '\0';
	if ((ret = db_create(&db, NULL, 0)) != 0) {
		hash_error(err, errsize, "cannot create a handle for", file,
		    ret);
		errno = ret > 0 ? ret : EIO;
		return NULL;
	}
	db->set_errcall(db, hash_errcall);
	ret = db->open(db, NULL, file, NULL, DB_HASH, flags, mode);
	if (ret != 0) {
		hash_error(err, errsize, "cannot open", file, ret);
		db->close(db, 0);	/* required even after a failed open */
		errno = ret > 0 ? ret : EINVAL;
		return NULL;
	}
	hash_last_message[0] = '\0';
	return db;
}

/* A reader. Until a lookup succeeds we do not know whether the file's
 * keys carry a NUL (Postfix) or not (ours); the first hit settles it. */
struct hash_reader {
	DB *db;
	bool try_plain;
	bool try_nul;
};

static void *hash_open(const char *file, char *err, size_t errsize)
{
	DB *db = hash_handle(file, DB_RDONLY, 0, err, errsize);
	struct hash_reader *r;

	if (db == NULL)
		return NULL;
	r = xmalloc(sizeof(*r));
	r->db = db;
	r->try_plain = true;
	r->try_nul = true;
	return r;
}

static void hash_close(void *handle)
{
	struct hash_reader *r = handle;
	r->db->close(r->db, 0);
	free(r);
}

/* One get; 0 found, DB_NOTFOUND, or another error. */
static int hash_get_form(DB *db, const char *key, size_t keylen, DBT *v)
{
	DBT k;

	memset(&k, 0, sizeof(k));
	memset(v, 0, sizeof(*v));
	k.data = (void *)key;
	k.size = (u_int32_t)keylen;
	return db->get(db, NULL, &k, v, 0);
}

static enum map_result hash_get(void *handle, const char *key,
    size_t keylen, char **value, char *err, size_t errsize)
{
	struct hash_reader *r = handle;
	DBT v;
	int ret = DB_NOTFOUND;

	if (r->try_plain) {
		ret = hash_get_form(r->db, key, keylen, &v);
		if (ret == 0)
			r->try_nul = false;
	}
	if (ret == DB_NOTFOUND && r->try_nul) {
		/* key is a C string: its NUL is there to include. */
		ret = hash_get_form(r->db, key, keylen + 1, &v);
		if (ret == 0)
			r->try_plain = false;
	}
	if (ret == DB_NOTFOUND)
		return MAP_NOTFOUND;
	if (ret != 0) {
		hash_error(err, errsize, "cannot read", NULL, ret);
		return MAP_ERROR;
	}
	/* v.data belongs to the handle until its next call: copy it now
	 * (xstrndup also drops a Postfix-style trailing NUL). */
	*value = xstrndup(v.data, v.size);
	return MAP_FOUND;
}

static bool hash_walk(void *handle, map_walk_fn *fn, void *arg, char *err,
    size_t errsize)
{
	DB *db = ((struct hash_reader *)handle)->db;
	DBC *cursor;
	DBT k, v;
	int ret;

	if ((ret = db->cursor(db, NULL, &cursor, 0)) != 0) {
		hash_error(err, errsize, "cannot walk", NULL, ret);
		return false;
	}
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	while ((ret = cursor->get(cursor, &k, &v, DB_NEXT)) == 0) {
		char *key = xstrndup(k.data, k.size);
		char *value = xstrndup(v.data, v.size);
		fn(key, value, arg);
		free(key);
		free(value);
	}
	cursor->close(cursor);
	if (ret != DB_NOTFOUND) {
		hash_error(err, errsize, "cannot walk", NULL, ret);
		return false;
	}
	return true;
}

static void *hash_create(const char *file, char *err, size_t errsize)
{
	/* Berkeley DB turns an existing empty file into a new database; the
	 * complaint it logs while finding out is not an error. */
	return hash_handle(file, DB_CREATE, 0600, err, errsize);
}

static enum map_put_result hash_put(void *writer, const char *key,
    size_t keylen, const char *value, size_t valuelen, char *err,
    size_t errsize)
{
	DB *db = writer;
	DBT k, v;
	int ret;

	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.data = (void *)key;
	k.size = (u_int32_t)keylen;
	v.data = (void *)value;
	v.size = (u_int32_t)valuelen;
	ret = db->put(db, NULL, &k, &v, DB_NOOVERWRITE);
	if (ret == DB_KEYEXIST)
		return MAP_PUT_DUPLICATE;
	if (ret != 0) {
		hash_error(err, errsize, "cannot write", NULL, ret);
		return MAP_PUT_ERROR;
	}
	return MAP_PUT_STORED;
}

static bool hash_commit(void *writer, char *err, size_t errsize)
{
	DB *db = writer;
	int ret;

	hash_last_message[0] = '\0';
	ret = db->sync(db, 0);
	if (ret != 0) {
		hash_error(err, errsize, "cannot write", NULL, ret);
		db->close(db, DB_NOSYNC);
		return false;
	}
	ret = db->close(db, 0);
	if (ret != 0) {
		hash_error(err, errsize, "cannot close", NULL, ret);
		return false;
	}
	return true;
}

static void hash_abort(void *writer)
{
	DB *db = writer;
	db->close(db, DB_NOSYNC);
}

const struct map_backend map_backend_hash = {
	.type = "hash",
	.suffix = ".db",
	.open = hash_open,
	.close = hash_close,
	.get = hash_get,
	.walk = hash_walk,
	.create = hash_create,
	.put = hash_put,
	.commit = hash_commit,
	.abort = hash_abort,
};
