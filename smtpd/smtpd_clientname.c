/*
 * smtpd_clientname.c - the client's name: the reverse lookup, kept only
 * when the name resolves back to the same address (forward-confirmed),
 * else "unknown", as Postfix does. Loopback names come from /etc/hosts
 * without DNS.
 *
 * Each worker remembers its last answers for a few seconds: a client that
 * sends one message per connection (most MX traffic, and every bench
 * case) costs one lookup pair per SMTPD_NAME_TTL_MS instead of one per
 * message. Through glibc's resolver a pair was about 18 system calls
 * (nsswitch.conf and resolv.conf checked twice, /etc/hosts read twice)
 * before any DNS packet. A name changed in DNS is seen that much later,
 * as behind any caching resolver.
 *
 * Trusts: the resolver's answers only as far as the forward check goes;
 * the name is checked by addr_domain_valid() before it is kept.
 */
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <bsd/string.h>

#include "addr.h"
#include "cfg.h"
#include "smtpd.h"
#include "sock.h"

#define SMTPD_NAME_SLOTS 16
#define SMTPD_NAME_TTL_MS 5000

static struct {
	char addr[64];
	char name[256];
	long long until_ms;
} name_cache[SMTPD_NAME_SLOTS];
static unsigned name_cache_next;

static long long name_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A resolver's error that may pass: its answer is not kept. */
static bool name_error_temporary(int e)
{
	return e == EAI_AGAIN || e == EAI_SYSTEM || e == EAI_MEMORY;
}

/* The forward-confirmed name of the peer, or "unknown", without the
 * cache; false when a lookup failed for the moment. */
static bool name_resolve(const struct daemon_conn *c, char *out,
    size_t outsize)
{
	char host[NI_MAXHOST];
	int e;

	strlcpy(out, "unknown", outsize);
	e = getnameinfo((const struct sockaddr *)&c->peer, c->peer_len, host,
	    sizeof(host), NULL, 0, NI_NAMEREQD);
	if (e != 0)
		return !name_error_temporary(e);
	if (!addr_domain_valid(host, false))
		return true;
	struct addrinfo hints = { .ai_family = c->peer.ss_family,
	    .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	e = getaddrinfo(host, NULL, &hints, &res);
	if (e != 0)
		return !name_error_temporary(e);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char a[64];
		int port;
		sock_addr_format(ai->ai_addr, a, sizeof(a), &port);
		if (strcmp(a, c->peer_addr) == 0) {
			strlcpy(out, host, outsize);
			break;
		}
	}
	freeaddrinfo(res);
	return true;
}

void smtpd_client_name(const struct daemon_conn *c, char *out, size_t outsize)
{
	strlcpy(out, "unknown", outsize);
	if (c->peer_is_unix || !cfg.smtpd_peername_lookup)
		return;
	long long now = name_now_ms();
	for (size_t i = 0; i < SMTPD_NAME_SLOTS; i++) {
		if (name_cache[i].until_ms > now &&
		    strcmp(name_cache[i].addr, c->peer_addr) == 0) {
			strlcpy(out, name_cache[i].name, outsize);
			return;
		}
	}
	/* "unknown" is kept too (a client without a name is the same
	 * lookup pair again at its next connection), unless a lookup
	 * failed only for the moment. */
	if (!name_resolve(c, out, outsize))
		return;
	unsigned slot = name_cache_next++ % SMTPD_NAME_SLOTS;
	strlcpy(name_cache[slot].addr, c->peer_addr,
	    sizeof(name_cache[slot].addr));
	strlcpy(name_cache[slot].name, out, sizeof(name_cache[slot].name));
	name_cache[slot].until_ms = now + SMTPD_NAME_TTL_MS;
}
