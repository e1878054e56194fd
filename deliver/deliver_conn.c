/*
 * deliver_conn.c - the one connection a deliver process keeps open
 * between jobs, so that the next message to the same destination skips
 * DNS, TCP, greeting, EHLO and TLS (doc/architecture.md, message flow).
 *
 * qmgr sends job after job on one socket; it groups mail by nexthop, so
 * one cached session per process is enough. The session is keyed by
 * transport and nexthop; it is closed when a job for another nexthop
 * arrives, after CONN_CACHE_IDLE_MS without work (deliver.c), or when the
 * peer has said something while idle (421, or closed the connection).
 */
#include <stdlib.h>
#include <string.h>

#include "deliver.h"
#include "log.h"
#include "mem.h"

static struct deliver_session *cached;
static char *cached_key;
/* deliver.c polled the cached socket with the job's and it was quiet. */
static bool cached_quiet;

struct deliver_session *deliver_conn_cache_take(const char *key)
{
	if (cached == NULL)
		return NULL;
	struct deliver_session *s = cached;
	bool same = strcmp(cached_key, key) == 0;
	bool quiet = cached_quiet;
	cached = NULL;
	cached_quiet = false;
	free(cached_key);
	cached_key = NULL;
	if (same && (quiet ? deliver_session_alive_quiet(s) :
	    deliver_session_alive(s))) {
		/* A new job: smtp_session_time_limit counts from here. */
		deliver_session_start_clock(s);
		return s;
	}
	if (same)
		log_debug("cached session with %s is gone", s->relay);
	deliver_session_close(s, true);
	free(s);
	return NULL;
}

void deliver_conn_cache_put(struct deliver_session *s, const char *key)
{
	deliver_conn_cache_close();
	if (!s->usable) {
		deliver_session_close(s, false);
		free(s);
		return;
	}
	cached = s;
	cached_quiet = false;
	cached_key = xstrdup(key);
}

int deliver_conn_cache_fd(void)
{
	return cached != NULL ? cached->fd : -1;
}

void deliver_conn_cache_polled(bool quiet)
{
	if (cached == NULL)
		return;
	if (!quiet) {
		log_debug("cached session with %s: the peer spoke while idle",
		    cached->relay);
		deliver_conn_cache_close();
		return;
	}
	cached_quiet = true;
}

bool deliver_conn_cache_active(void)
{
	return cached != NULL;
}

void deliver_conn_cache_close(void)
{
	if (cached == NULL)
		return;
	deliver_session_close(cached, true);
	free(cached);
	cached = NULL;
	cached_quiet = false;
	free(cached_key);
	cached_key = NULL;
}
