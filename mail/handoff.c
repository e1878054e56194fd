/*
 * handoff.c - the message that passes an SMTP client from screen to
 * smtpd (handoff.h says what it holds and who may send it).
 *
 * Trusts: nothing in the message without checking it: every attribute
 * is parsed, the data is bounded, and exactly one descriptor, a stream
 * socket, must come with it; any other descriptor is closed.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <stdio.h>

#include "handoff.h"
#include "ipc.h"
#include "mem.h"
#include "sock.h"
#include "str.h"

static const char reply_ok[] = "type=ok\n\n";

bool handoff_send(int sock, int client_fd, const struct sockaddr *peer,
    socklen_t peer_len, const struct sockaddr *local, socklen_t local_len,
    const char *data, size_t data_len)
{
	static const char hex[] = "0123456789abcdef";
	char addr[64], laddr[64];
	int port = 0, lport = 0;

	if (data_len > HANDOFF_MAX_DATA) {
		errno = EMSGSIZE;
		return false;
	}
	sock_addr_format(peer, addr, sizeof(addr), &port);
	sock_addr_format(local, laddr, sizeof(laddr), &lport);
	char *hexdata = xmalloc(2 * data_len + 1);
	for (size_t i = 0; i < data_len; i++) {
		hexdata[2 * i] = hex[(unsigned char)data[i] >> 4];
		hexdata[2 * i + 1] = hex[(unsigned char)data[i] & 15];
	}
	hexdata[2 * data_len] = '\0';

	struct ipc_msg m;
	ipc_msg_init(&m, "client");
	ipc_add(&m, "client", "%s", addr);
	ipc_add(&m, "client_port", "%d", port);
	ipc_add(&m, "local", "%s", laddr);
	ipc_add(&m, "local_port", "%d", lport);
	ipc_add(&m, "data", "%s", hexdata);
	free(hexdata);
	struct str out;
	str_init(&out, STR_NO_MAX);
	ipc_encode(&m, &out);
	ipc_msg_free(&m);
	(void)peer_len;
	(void)local_len;

	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { .iov_base = (void *)str_cstr(&out),
	    .iov_len = out.len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &client_fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	bool ok = n == (ssize_t)out.len;
	if (n >= 0 && !ok)
		errno = EAGAIN;	/* a fresh socket takes a few KB at once */
	str_free(&out);
	return ok;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The descriptors a control message brought: keep the first, close
 * the rest. */
static void take_fds(struct msghdr *msg, int *fd, int *count)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL;
	    c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*fd < 0)
				*fd = f;
			else
				close(f);
			(*count)++;
		}
	}
}

static bool parse_message(const struct ipc_msg *m, struct handoff_client *h,
    char *err, size_t errsize)
{
	long long port, lport;
	const char *client = ipc_get(m, "client");
	const char *local = ipc_get(m, "local");
	const char *data = ipc_get(m, "data");

	if (strcmp(m->type, "client") != 0 || client == NULL ||
	    local == NULL || data == NULL ||
	    !ipc_get_ll(m, "client_port", &port) ||
	    !ipc_get_ll(m, "local_port", &lport) ||
	    port < 0 || port > 65535 || lport < 0 || lport > 65535) {
		snprintf(err, errsize, "malformed handoff message");
		return false;
	}
	if (!sock_addr_parse(client, (int)port, &h->peer, &h->peer_len) ||
	    !sock_addr_parse(local, (int)lport, &h->local, &h->local_len)) {
		snprintf(err, errsize, "bad address in handoff message");
		return false;
	}
	size_t hl = strlen(data);
	if (hl % 2 != 0 || hl / 2 > HANDOFF_MAX_DATA) {
		snprintf(err, errsize, "bad data in handoff message");
		return false;
	}
	h->data = xmalloc(hl / 2 + 1);
	for (size_t i = 0; i < hl / 2; i++) {
		int hi = hexval(data[2 * i]), lo = hexval(data[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			snprintf(err, errsize, "bad data in handoff message");
			return false;
		}
		h->data[i] = (char)(hi << 4 | lo);
	}
	h->data_len = hl / 2;
	return true;
}

bool handoff_receive(int sock, int timeout_ms, struct handoff_client *h,
    char *err, size_t errsize)
{
	char *buf = xmalloc(HANDOFF_MAX_MESSAGE);
	size_t have = 0;
	int nfds = 0;
	long long deadline = now_ms() + timeout_ms;
	bool ok = false;

	memset(h, 0, sizeof(*h));
	h->fd = -1;
	for (;;) {
		union {
			struct cmsghdr c;
			char buf[CMSG_SPACE(4 * sizeof(int))];
		} ctl;
		struct iovec iov = { .iov_base = buf + have,
		    .iov_len = HANDOFF_MAX_MESSAGE - have };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
		    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		if (iov.iov_len == 0) {
			snprintf(err, errsize, "handoff message too long");
			break;
		}
		ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC |
		    MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			long long left = deadline - now_ms();
			struct pollfd p = { .fd = sock, .events = POLLIN };
			if (left > 0 && poll(&p, 1, (int)left) >= 0)
				continue;
			snprintf(err, errsize, "timeout reading the handoff");
			break;
		}
		if (n <= 0) {
			snprintf(err, errsize, n == 0 ? "screen closed the "
			    "handoff early" : "handoff read error");
			break;
		}
		take_fds(&msg, &h->fd, &nfds);
		have += (size_t)n;
		struct ipc_msg m;
		size_t used;
		enum ipc_decode_result r = ipc_decode(buf, have, &m, &used);
		if (r == IPC_NEED_MORE)
			continue;
		if (r == IPC_BAD || used != have) {
			if (r == IPC_DONE)
				ipc_msg_free(&m);
			snprintf(err, errsize, "malformed handoff message");
			break;
		}
		ok = parse_message(&m, h, err, errsize);
		ipc_msg_free(&m);
		break;
	}
	free(buf);
	if (ok && nfds != 1) {
		snprintf(err, errsize, "handoff message with %d descriptors",
		    nfds);
		ok = false;
	}
	if (ok) {
		int type = 0;
		socklen_t tl = sizeof(type);
		if (getsockopt(h->fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
		    type != SOCK_STREAM) {
			snprintf(err, errsize, "handoff descriptor is not a "
			    "stream socket");
			ok = false;
		}
	}
	if (ok && send(sock, reply_ok, sizeof(reply_ok) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)(sizeof(reply_ok) - 1)) {
		snprintf(err, errsize, "screen is gone before the handoff "
		    "was acknowledged");
		ok = false;
	}
	if (!ok) {
		if (h->fd >= 0)
			close(h->fd);
		h->fd = -1;
		handoff_client_free(h);
	}
	return ok;
}

void handoff_client_free(struct handoff_client *h)
{
	free(h->data);
	h->data = NULL;
	h->data_len = 0;
}

enum handoff_reply handoff_reply_parse(const char *buf, size_t len)
{
	size_t ok_len = sizeof(reply_ok) - 1;
	size_t cmp = len < ok_len ? len : ok_len;
	if (memcmp(buf, reply_ok, cmp) != 0)
		return HANDOFF_REPLY_REFUSED;
	return len >= ok_len ? HANDOFF_REPLY_TAKEN : HANDOFF_REPLY_MORE;
}
