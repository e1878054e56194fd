/*
 * smtpd_proxy.c - the PROXY protocol header on listeners marked "proxy"
 * (smtp_listen = 0.0.0.0:25 proxy): a load balancer such as HAProxy
 * connects to us and names the real client in a v1 or v2 header before
 * the client's first byte (haproxy's doc/proxy-protocol.txt). We read
 * it before the greeting, within smtpd_upstream_proxy_timeout, and from
 * then on the session's client is the one the header names: in the
 * checks (mynetworks, DNSBL, reverse name), the logs and Received.
 *
 * Trusts: the header only because the administrator marked the listener
 * (whoever can reach that port unproxied can claim any address: say so
 * in postern.conf(5)). Its bytes are parsed by mail/proxy_proto.c. We
 * never read past the header: what follows is the client's SMTP or its
 * TLS ClientHello, which the session reads from the socket itself.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <bsd/string.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "proxy_proto.h"
#include "smtpd.h"
#include "sock.h"

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the socket has input; false on timeout or error. */
static bool wait_readable(int fd, long long deadline, bool *timed_out)
{
	for (;;) {
		long long left = deadline - monotonic_ms();
		if (left <= 0) {
			*timed_out = true;
			return false;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return true;
		if (n < 0 && errno != EINTR)
			return false;
	}
}

/*
 * Take n octets that MSG_PEEK showed us: they are in the socket buffer,
 * so one recv returns them all.
 */
static bool consume(int fd, unsigned char *buf, size_t n)
{
	while (n > 0) {
		ssize_t got = recv(fd, buf, n, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		buf += got;
		n -= (size_t)got;
	}
	return true;
}

/*
 * Read the header by peeking: a whole header is consumed to its last
 * octet and no further; bytes that are only the start of one (the
 * parser says INCOMPLETE: all of them belong to the header) are
 * consumed before we wait for more, so poll never wakes on old bytes.
 */
static enum proxy_result read_header(int fd, struct proxy_header *h,
    const char **why)
{
	unsigned char *buf = xmalloc(PROXY_MAX_HEADER);
	size_t have = 0;
	long long timeout = cfg.smtpd_upstream_proxy_timeout * 1000;
	long long deadline = monotonic_ms() + (timeout > 0 ? timeout : 5000);
	enum proxy_result r = PROXY_BAD;

	for (;;) {
		ssize_t n = recv(fd, buf + have, PROXY_MAX_HEADER - have,
		    MSG_PEEK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			bool timed_out = false;
			if (wait_readable(fd, deadline, &timed_out))
				continue;
			*why = timed_out ? "timeout before the header ended" :
			    "read error";
			break;
		}
		if (n <= 0) {
			*why = n == 0 ? "lost connection before the header ended" :
			    "read error";
			break;
		}
		r = proxy_parse(buf, have + (size_t)n, h, why);
		if (r == PROXY_OK) {
			if (!consume(fd, buf + have, h->length - have)) {
				*why = "read error";
				r = PROXY_BAD;
			}
			break;
		}
		if (r == PROXY_BAD)
			break;
		if (!consume(fd, buf + have, (size_t)n)) {
			*why = "read error";
			r = PROXY_BAD;
			break;
		}
		have += (size_t)n;
		r = PROXY_BAD;
	}
	free(buf);
	return r;
}

bool smtpd_proxy_accept(struct daemon_conn *conn)
{
	struct proxy_header h;
	const char *why = "";

	if (read_header(conn->fd, &h, &why) != PROXY_OK) {
		log_warning("PROXY protocol from [%s]: %s; connection closed",
		    conn->peer_addr, why);
		return false;
	}
	/* LOCAL (a health check), UNKNOWN, UNSPEC: the proxy itself is the
	 * client, as the specification asks. */
	if (!h.has_addresses)
		return true;
	memcpy(&conn->peer, &h.source, sizeof(conn->peer));
	conn->peer_len = h.source_len;
	memcpy(&conn->local, &h.destination, sizeof(conn->local));
	conn->local_len = h.destination_len;
	sock_addr_format((struct sockaddr *)&conn->peer, conn->peer_addr,
	    sizeof(conn->peer_addr), &conn->peer_port);
	return true;
}
