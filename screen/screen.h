/*
 * screen.h - the first-contact service in front of smtpd on the port 25
 * role (screen.c the event loop and each client's state machine,
 * screen_dnsbl.c weighted DNS blocklists over asynchronous queries,
 * screen_cache.c the allowlist of clients that passed, screen_access.c
 * screen_access_list). doc/architecture.md, "First contact (screen)",
 * says how it fits between master and smtpd.
 */
#ifndef POSTERN_SCREEN_H
#define POSTERN_SCREEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* screen_dnsbl.c */
/* Parse screen_dnsbl_sites and open the UDP socket to the name server
 * (dns_servers, else the first of resolv.conf). Fatal on a bad site. */
void screen_dnsbl_init(void);
size_t screen_dnsbl_site_count(void);
const char *screen_dnsbl_site_name(size_t site);
int screen_dnsbl_site_weight(size_t site);
/* The socket to watch for answers, or -1 without sites. */
int screen_dnsbl_fd(void);
/*
 * Ask every site about client for the client in slot (of generation
 * gen): returns how many queries are out. Each ends with one call of
 * screen_dnsbl_result(), from screen_dnsbl_read() or _expire().
 */
size_t screen_dnsbl_start(unsigned slot, unsigned gen,
    const struct sockaddr *client);
void screen_dnsbl_read(long long now_ms);
void screen_dnsbl_expire(long long now_ms);
/* The earliest deadline of a query out, or 0. */
long long screen_dnsbl_next_deadline(void);
/* screen.c: one site's verdict about a client. */
void screen_dnsbl_result(unsigned slot, unsigned gen, size_t site,
    bool listed);

/* screen_cache.c */
void screen_cache_init(void);
/* Did this client pass within screen_cache_ttl? */
bool screen_cache_hit(const char *addr, long long now);
void screen_cache_add(const char *addr, long long now);
/* Drop expired entries (hourly) and write the cache out. */
void screen_cache_maintain(long long now);
void screen_cache_close(void);

/* screen_access.c */
enum screen_access {
	SCREEN_ACCESS_DUNNO,
	SCREEN_ACCESS_PERMIT,
	SCREEN_ACCESS_REJECT,
};
void screen_access_init(void);
enum screen_access screen_access_check(const struct sockaddr *client);

#endif
