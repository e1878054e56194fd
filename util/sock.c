/*
 * sock.c - endpoints, listening and connecting sockets, network matching.
 *
 * Trusts its callers' endpoints; trusts no directory entry it did not
 * check: Unix sockets are created and owned through the descriptor of
 * their directory, never by a path another user could swap.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <bsd/string.h>

#include "sock.h"

static bool parse_port(const char *text, int *port)
{
	char *end;
	if (!isdigit((unsigned char)*text))	/* strtol takes " +25" */
		return false;
	long v = strtol(text, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535)
		return false;
	*port = (int)v;
	return true;
}

bool endpoint_parse(const char *text, int default_port, struct endpoint *ep,
    char *err, size_t errsize)
{
	memset(ep, 0, sizeof(*ep));
	if (strncmp(text, "unix:", 5) == 0) {
		const char *path = text + 5;
		if (path[0] != '/') {
			snprintf(err, errsize, "\"%s\": a Unix socket path must "
			    "be absolute", text);
			return false;
		}
		if (strlcpy(ep->path, path, sizeof(ep->path)) >= sizeof(ep->path)) {
			snprintf(err, errsize, "\"%s\": path too long", text);
			return false;
		}
		ep->kind = ENDPOINT_UNIX;
		return true;
	}
	ep->kind = ENDPOINT_INET;
	ep->port = default_port;
	const char *port_text = NULL;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close == text + 1) {
			snprintf(err, errsize, "\"%s\": missing ']'", text);
			return false;
		}
		size_t len = (size_t)(close - text - 1);
		if (len >= sizeof(ep->host)) {
			snprintf(err, errsize, "\"%s\": host too long", text);
			return false;
		}
		memcpy(ep->host, text + 1, len);
		ep->host[len] = '\0';
		ep->bracketed = true;
		if (close[1] == ':')
			port_text = close + 2;
		else if (close[1] != '\0') {
			snprintf(err, errsize, "\"%s\": junk after ']'", text);
			return false;
		}
	} else {
		const char *colon = strrchr(text, ':');
		if (colon != NULL && strchr(text, ':') != colon) {
			snprintf(err, errsize, "\"%s\": write IPv6 addresses "
			    "in brackets, like [::1]:25", text);
			return false;
		}
		size_t len = colon ? (size_t)(colon - text) : strlen(text);
		if (len == 0 || len >= sizeof(ep->host)) {
			snprintf(err, errsize, "\"%s\": missing or too long host",
			    text);
			return false;
		}
		memcpy(ep->host, text, len);
		ep->host[len] = '\0';
		if (colon)
			port_text = colon + 1;
	}
	if (port_text != NULL && !parse_port(port_text, &ep->port)) {
		snprintf(err, errsize, "\"%s\": bad port", text);
		return false;
	}
	for (const char *p = ep->host; *p; p++) {
		if (*p <= ' ' || *p == '/' || *p == '[' || *p == ']') {
			snprintf(err, errsize, "\"%s\": bad host", text);
			return false;
		}
	}
	return true;
}

void endpoint_format(const struct endpoint *ep, char *out, size_t outsize)
{
	if (ep->kind == ENDPOINT_UNIX)
		snprintf(out, outsize, "unix:%s", ep->path);
	else if (strchr(ep->host, ':') || ep->bracketed)
		snprintf(out, outsize, "[%s]:%d", ep->host, ep->port);
	else
		snprintf(out, outsize, "%s:%d", ep->host, ep->port);
}

static int set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/*
 * A directory root may act in by name: owned by root (or by us when not
 * root) and writable by nobody else, so no other user can swap one of
 * its entries between our calls.
 */
static bool dir_is_ours(int dfd)
{
	struct stat st;
	if (fstat(dfd, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	return st.st_uid == geteuid() && (st.st_mode & 022) == 0;
}

/*
 * Bind a Unix socket and give it its owner and mode without ever naming
 * the path again as root: the mode comes from the umask at bind (the
 * kernel creates the node atomically), and the owner either from
 * fchownat() relative to the directory we checked, when nobody else can
 * write that directory, or else from binding with that owner as the file
 * system identity. Every step works on the directory's descriptor, so a
 * symlink swapped in by the daemon user is never followed (issue 12).
 */
static int bind_unix(int fd, const struct endpoint *ep,
    const struct sock_unix_owner *own, char *err, size_t errsize)
{
	char dir[sizeof(ep->path)], name[sizeof(ep->path)];
	const char *slash = strrchr(ep->path, '/');

	/* endpoint_parse guarantees an absolute path. */
	size_t dlen = slash && slash > ep->path ? (size_t)(slash - ep->path) : 1;
	memcpy(dir, ep->path, dlen);
	dir[dlen] = '\0';
	strlcpy(name, slash ? slash + 1 : ep->path, sizeof(name));
	if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		snprintf(err, errsize, "unix:%s: not a socket name", ep->path);
		errno = EINVAL;
		return -1;
	}
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(err, errsize, "unix:%s: %s: %s", ep->path, dir,
		    strerror(errno));
		return -1;
	}
	int rc = -1, cwd = -1;
	bool root = geteuid() == 0;
	bool chown_it = root && (own->uid != (uid_t)-1 || own->gid != (gid_t)-1);
	bool ours = dir_is_ours(dfd);
	/* Replace a stale socket (or a symlink: unlinking one never touches
	 * its target), but never a regular file. */
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISSOCK(st.st_mode) && !S_ISLNK(st.st_mode)) {
			snprintf(err, errsize, "unix:%s: exists and is not a "
			    "socket", ep->path);
			errno = EEXIST;
			goto out;
		}
		unlinkat(dfd, name, 0);
	}
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || fchdir(dfd) < 0)
		goto fail;
	/* Not our directory: create the node as its future owner, with no
	 * privilege over the files that directory's owner may put there. */
	uid_t old_uid = (uid_t)-1;
	gid_t old_gid = (gid_t)-1;
	if (chown_it && !ours) {
		old_gid = (gid_t)setfsgid(own->gid);
		old_uid = (uid_t)setfsuid(own->uid);
		if ((uid_t)setfsuid((uid_t)-1) != own->uid ||
		    (gid_t)setfsgid((gid_t)-1) != own->gid) {
			setfsuid(old_uid);
			setfsgid(old_gid);
			errno = EPERM;
			goto fail_back;
		}
	}
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	strlcpy(sun.sun_path, name, sizeof(sun.sun_path));
	mode_t old_mask = umask(0777 & ~own->mode);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	int saved = errno;
	umask(old_mask);
	if (old_uid != (uid_t)-1) {
		setfsuid(old_uid);
		setfsgid(old_gid);
	}
	errno = saved;
	if (r < 0)
		goto fail_back;
	if (chown_it && ours && fchownat(dfd, name, own->uid, own->gid,
	    AT_SYMLINK_NOFOLLOW) < 0)
		goto fail_back;
	if (fchdir(cwd) < 0)
		goto fail;
	rc = 0;
	goto out;
fail_back:
	saved = errno;
	if (fchdir(cwd) < 0) {
		/* Nothing sane is left to do in this process. */
		abort();
	}
	errno = saved;
fail:
	snprintf(err, errsize, "unix:%s: %s", ep->path, strerror(errno));
out:
	saved = errno;
	if (cwd >= 0)
		close(cwd);
	close(dfd);
	errno = saved;
	return rc;
}

int sock_listen(const struct endpoint *ep, int backlog, mode_t unix_mode,
    char *err, size_t errsize)
{
	const struct sock_unix_owner own = { (uid_t)-1, (gid_t)-1, unix_mode };
	return sock_listen_owned(ep, backlog, &own, err, errsize);
}

int sock_listen_owned(const struct endpoint *ep, int backlog,
    const struct sock_unix_owner *own, char *err, size_t errsize)
{
	int fd;
	char name[300];

	endpoint_format(ep, name, sizeof(name));
	if (ep->kind == ENDPOINT_UNIX) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0)
			goto fail;
		if (bind_unix(fd, ep, own, err, errsize) < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
	} else {
		struct sockaddr_storage ss;
		socklen_t len;
		if (!sock_addr_parse(ep->host, ep->port, &ss, &len)) {
			snprintf(err, errsize, "%s: listen address must be an "
			    "IP address", name);
			return -1;
		}
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		if (fd < 0)
			goto fail;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		/*
		 * No Nagle on what this listener accepts (Linux copies the
		 * option into each accepted socket: no call per connection).
		 * Our replies are written whole, so it never merges anything
		 * useful; what it did was hold back the second of two small
		 * writes until the peer's ACK of the first, and a lockstep
		 * client delays that ACK by 40 ms: after STARTTLS, the EHLO
		 * reply waited behind OpenSSL's session ticket
		 * (doc/architecture.md, "TCP_NODELAY").
		 */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, len) < 0)
			goto fail_close;
	}
	if (listen(fd, backlog) < 0 || set_nonblock_cloexec(fd) < 0)
		goto fail_close;
	return fd;
fail_close: {
		int saved = errno;
		close(fd);
		errno = saved;
	}
fail:
	snprintf(err, errsize, "%s: %s", name, strerror(errno));
	return -1;
}

/* Wait for a non-blocking connect to finish. */
static int finish_connect(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int n;
	do {
		n = poll(&pfd, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (n < 0)
		return -1;
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -1;
	if (soerr != 0) {
		errno = soerr;
		return -1;
	}
	return 0;
}

static int connect_with_deadline(int fd, const struct sockaddr *sa,
    socklen_t salen, int timeout_ms)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	if (connect(fd, sa, salen) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN)
			return -1;
		if (finish_connect(fd, timeout_ms) < 0)
			return -1;
	}
	return fcntl(fd, F_SETFL, fl);
}

int sock_connect_sa(const struct sockaddr *sa, socklen_t salen, int timeout_ms)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect_with_deadline(fd, sa, salen, timeout_ms) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		/* doc/architecture.md: no delayed ACK for the lone ".". */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

int sock_connect_unix(const char *path, int timeout_ms)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return sock_connect_sa((struct sockaddr *)&sun, sizeof(sun), timeout_ms);
}

void sock_addr_format(const struct sockaddr *sa, char *addr, size_t addrsize,
    int *port)
{
	int p = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)addrsize);
		p = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr,
			    (socklen_t)addrsize);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, addr,
			    (socklen_t)addrsize);
		p = ntohs(sin6->sin6_port);
	} else {
		strlcpy(addr, "unix", addrsize);
	}
	if (port)
		*port = p;
}

bool sock_addr_parse(const char *text, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return true;
	}
	const char *v6 = text;
	if (strncasecmp(v6, "IPv6:", 5) == 0)
		v6 += 5;
	if (inet_pton(AF_INET6, v6, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return true;
	}
	return false;
}

/* Parse "net/bits" or "[v6net]/bits" or a bare address. */
static bool parse_network(const char *text, int *family, unsigned char *net,
    int *bits)
{
	char host[128];
	const char *slash;
	const char *h = text;
	size_t hlen;

	if (*h == '[') {
		const char *close = strchr(h, ']');
		if (close == NULL)
			return false;
		h++;
		hlen = (size_t)(close - h);
		slash = close[1] == '/' ? close + 1 : NULL;
		if (close[1] != '\0' && close[1] != '/')
			return false;
	} else {
		slash = strchr(h, '/');
		hlen = slash ? (size_t)(slash - h) : strlen(h);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	int max;
	if (inet_pton(AF_INET, host, net) == 1) {
		*family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, net) == 1) {
		*family = AF_INET6;
		max = 128;
	} else {
		return false;
	}
	*bits = max;
	if (slash) {
		char *end;
		long b = strtol(slash + 1, &end, 10);
		if (!isdigit((unsigned char)slash[1]) || *end != '\0' ||
		    b < 0 || b > max)
			return false;
		*bits = (int)b;
	}
	return true;
}

bool sock_network_valid(const char *text)
{
	int family, bits;
	unsigned char net[16];
	return parse_network(text, &family, net, &bits);
}

static bool prefix_match(const unsigned char *a, const unsigned char *b,
    int bits)
{
	int bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool sock_addr_in_networks(const struct sockaddr *sa,
    char *const *networks, size_t count)
{
	unsigned char addr[16];
	int family;

	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(addr, &a6->s6_addr[12], 4);
			family = AF_INET;
		} else {
			memcpy(addr, a6, 16);
			family = AF_INET6;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < count; i++) {
		int nfamily, bits;
		unsigned char net[16];
		if (!parse_network(networks[i], &nfamily, net, &bits))
			continue;
		if (nfamily == family && prefix_match(addr, net, bits))
			return true;
	}
	return false;
}
