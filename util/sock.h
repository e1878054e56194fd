/*
 * sock.h - endpoints ("host:port", "[ipv6]:port", "unix:/path"), listening
 * and connecting sockets, address formatting and network matching.
 */
#ifndef POSTERN_SOCK_H
#define POSTERN_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

enum endpoint_kind {
	ENDPOINT_INET,		/* host is an IP literal or a name */
	ENDPOINT_UNIX,
};

struct endpoint {
	enum endpoint_kind kind;
	char host[256];		/* without brackets */
	bool bracketed;		/* written as [host]: no MX lookup (relayhost) */
	int port;		/* 0 if none was given and no default */
	char path[108];		/* ENDPOINT_UNIX */
};

/* Parse an endpoint; default_port is used when none is written. */
bool endpoint_parse(const char *text, int default_port, struct endpoint *ep,
    char *err, size_t errsize);
/* Format back into the config syntax. */
void endpoint_format(const struct endpoint *ep, char *out, size_t outsize);

/*
 * Create, bind and listen. IPv6 sockets are IPV6_V6ONLY so that 0.0.0.0
 * and [::] can be bound side by side. A stale Unix socket is replaced and
 * the new one is created with unix_mode (through the umask: never a chmod
 * by path). The socket is non-blocking and close-on-exec.
 */
int sock_listen(const struct endpoint *ep, int backlog, mode_t unix_mode,
    char *err, size_t errsize);

/* Who a Unix socket's file belongs to; (uid_t)-1 / (gid_t)-1: the caller. */
struct sock_unix_owner {
	uid_t uid;
	gid_t gid;
	mode_t mode;
};

/*
 * sock_listen, and when root a Unix socket also gets the owner and group
 * in own: by fchownat() relative to its directory when that directory is
 * root's and writable by root alone, else by binding with own's uid and
 * gid as the file system identity. No path is followed that another user
 * could have swapped.
 */
int sock_listen_owned(const struct endpoint *ep, int backlog,
    const struct sock_unix_owner *own, char *err, size_t errsize);

/* Connect with a deadline; returns a blocking fd or -1 (errno set). */
int sock_connect_sa(const struct sockaddr *sa, socklen_t salen, int timeout_ms);
int sock_connect_unix(const char *path, int timeout_ms);

/* "192.0.2.7" / "2001:db8::1" and the port of a socket address. */
void sock_addr_format(const struct sockaddr *sa, char *addr, size_t addrsize,
    int *port);
/* Parse an IP literal (no brackets) into a sockaddr with the given port. */
bool sock_addr_parse(const char *text, int port, struct sockaddr_storage *ss,
    socklen_t *len);

/*
 * Is this address inside one of the networks ("127.0.0.0/8",
 * "[::1]/128", "192.0.2.7", "::1")? IPv4-mapped IPv6 addresses match
 * IPv4 networks.
 */
bool sock_addr_in_networks(const struct sockaddr *sa,
    char *const *networks, size_t count);
/* Validate one network entry (for config checks). */
bool sock_network_valid(const char *text);

#endif
