/*
 * dns.h - the DNS lookups the SMTP client needs, through libresolv:
 * MX records (RFC 5321 5.1, RFC 7505 null MX) and A/AAAA addresses.
 * dns_servers (config) replaces the system resolver's name servers, for
 * tests and split DNS ("127.0.0.1:5353", "[::1]:53").
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cfg.h"

enum dns_result {
	DNS_OK,
	DNS_NOTFOUND,	/* NXDOMAIN, or no records of that type */
	DNS_TEMPFAIL,	/* SERVFAIL, timeout: try again later */
	DNS_NULLMX,	/* RFC 7505: the domain accepts no mail */
	DNS_FAIL,	/* permanent error (malformed name, bad answer) */
};

struct dns_mx {
	char host[256];
	int preference;
};

struct dns_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
};

/* Configure the resolver from dns_servers (empty list: system default). */
bool dns_init(const struct cfg_list *servers, char *err, size_t errsize);
/* Release the resolver state (sockets, glibc's resolv.conf copy). */
void dns_close(void);
/*
 * MX records sorted by preference, equal preferences shuffled. *mx is
 * malloc'd. DNS_NOTFOUND when the domain exists but has no MX (caller
 * falls back to its address records, RFC 5321 5.1).
 */
enum dns_result dns_lookup_mx(const char *domain, struct dns_mx **mx,
    size_t *count, char *err, size_t errsize);
/* A and AAAA records of host (port set in each); *addrs malloc'd. */
enum dns_result dns_lookup_addrs(const char *host, int port,
    struct dns_addr **addrs, size_t *count, char *err, size_t errsize);

#endif
