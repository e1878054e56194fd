/*
 * screen_cache.c - the allowlist of clients that passed screen's checks
 * (Postfix's postscreen_cache_map): a Berkeley DB hash file,
 * screen_cache_map, owned by `user` (screen runs as `user`), one entry
 * per client address holding the time until which it may skip the
 * checks (now + screen_cache_ttl at its last pass). A client found
 * there gets the 220 at once, without the greeting wait and without
 * DNSBL queries.
 *
 * The cache is a speed-up, never a reason to refuse: a file that cannot
 * be opened (its directory missing or not `user`'s) is logged once and
 * screen checks every client. Writes go to the library's buffer and
 * reach the file at the hourly maintenance and at exit; a crash loses
 * the passes since, which only means those clients are checked again.
 *
 * Trusts: the file is ours (mode 0600); a value that does not parse is
 * treated as expired.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <db.h>

#include "cfg.h"
#include "log.h"
#include "screen.h"

#define SWEEP_INTERVAL 3600	/* seconds between sweeps */

static DB *cache;
static long long last_sweep;

void screen_cache_init(void)
{
	const char *path = cfg.screen_cache_map;
	if (strncmp(path, "hash:", 5) == 0)
		path += 5;
	if (path[0] == '\0')
		return;
	int ret = db_create(&cache, NULL, 0);
	if (ret == 0)
		ret = cache->open(cache, NULL, path, NULL, DB_HASH, DB_CREATE,
		    0600);
	if (ret != 0) {
		log_warning("screen_cache_map %s: %s: no allowlist cache, "
		    "every client is checked", path, db_strerror(ret));
		if (cache)
			cache->close(cache, 0);
		cache = NULL;
	}
}

static void key_of(const char *addr, DBT *key)
{
	memset(key, 0, sizeof(*key));
	key->data = (void *)addr;
	key->size = (u_int32_t)strlen(addr);
}

bool screen_cache_hit(const char *addr, long long now)
{
	if (cache == NULL)
		return false;
	DBT key, val;
	char text[32];
	key_of(addr, &key);
	memset(&val, 0, sizeof(val));
	if (cache->get(cache, NULL, &key, &val, 0) != 0)
		return false;
	size_t n = val.size < sizeof(text) - 1 ? val.size : sizeof(text) - 1;
	memcpy(text, val.data, n);
	text[n] = '\0';
	char *end;
	long long until = strtoll(text, &end, 10);
	if (*end == '\0' && n > 0 && until > now)
		return true;
	cache->del(cache, NULL, &key, 0);
	return false;
}

void screen_cache_add(const char *addr, long long now)
{
	if (cache == NULL)
		return;
	DBT key, val;
	char text[32];
	int n = snprintf(text, sizeof(text), "%lld", now +
	    cfg.screen_cache_ttl);
	key_of(addr, &key);
	memset(&val, 0, sizeof(val));
	val.data = text;
	val.size = (u_int32_t)n;
	int ret = cache->put(cache, NULL, &key, &val, 0);
	if (ret != 0)
		log_warning("screen_cache_map: %s", db_strerror(ret));
}

void screen_cache_maintain(long long now)
{
	if (cache == NULL || now - last_sweep < SWEEP_INTERVAL)
		return;
	last_sweep = now;
	DBC *cur;
	if (cache->cursor(cache, NULL, &cur, 0) != 0)
		return;
	DBT key, val;
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	size_t dropped = 0;
	while (cur->get(cur, &key, &val, DB_NEXT) == 0) {
		char text[32];
		size_t n = val.size < sizeof(text) - 1 ? val.size :
		    sizeof(text) - 1;
		memcpy(text, val.data, n);
		text[n] = '\0';
		if (strtoll(text, NULL, 10) <= now) {
			cur->del(cur, 0);
			dropped++;
		}
	}
	cur->close(cur);
	cache->sync(cache, 0);
	if (dropped > 0)
		log_info("screen: cache: dropped %zu expired entries", dropped);
}

void screen_cache_close(void)
{
	if (cache != NULL)
		cache->close(cache, 0);
	cache = NULL;
}
