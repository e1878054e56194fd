/*
 * handoff.h - an SMTP client passed from screen to an smtpd process.
 *
 * screen (screen/) holds first contacts in one event loop; once a client
 * has passed its checks and sent its first command, screen connects to
 * run_directory/HANDOFF_SOCKET, the listener of smtpd's "smtp" service
 * when `screen = yes`, and sends one message with the client's socket
 * attached (SCM_RIGHTS, on the message's first byte):
 *
 *   type=client
 *   client=192.0.2.7        client_port=N   (the real client: after PROXY)
 *   local=192.0.2.1         local_port=25
 *   data=HEX                the bytes screen read after its greeting
 *
 * The smtpd process answers "type=ok" once it holds the descriptor, and
 * serves the client as if it had accepted it itself: no greeting of its
 * own (screen sent it), the data as the first input. Anything else on
 * that connection (master's 421 when every smtpd is busy, end of file)
 * means the client was not taken, and screen answers it.
 *
 * Trusts: the socket is mode 0600, owner `user`, which only screen (and
 * root) can reach; the message is still checked in full, and a bad one
 * is logged and dropped with its descriptor.
 */
#ifndef POSTERN_HANDOFF_H
#define POSTERN_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define HANDOFF_SOCKET "screen-smtpd"
/* What screen may have read: one command line and what came with it. */
#define HANDOFF_MAX_DATA 4096
#define HANDOFF_MAX_MESSAGE (2 * HANDOFF_MAX_DATA + 1024)

struct handoff_client {
	int fd;				/* the client's socket, or -1 */
	struct sockaddr_storage peer, local;
	socklen_t peer_len, local_len;
	char *data;			/* malloc'd, data_len octets */
	size_t data_len;
};

/*
 * screen: send the client over sock (a fresh connection to the handoff
 * socket; the message fits its empty send buffer, so this does not
 * block). false with errno on failure.
 */
bool handoff_send(int sock, int client_fd, const struct sockaddr *peer,
    socklen_t peer_len, const struct sockaddr *local, socklen_t local_len,
    const char *data, size_t data_len);

/*
 * smtpd: read one message from sock within timeout_ms and answer
 * "type=ok". On false, err says why and nothing is held.
 */
bool handoff_receive(int sock, int timeout_ms, struct handoff_client *h,
    char *err, size_t errsize);
/* Free data (the fd is the caller's). */
void handoff_client_free(struct handoff_client *h);

/* screen: does the reply read so far say the client was taken? */
enum handoff_reply {
	HANDOFF_REPLY_MORE,	/* not a whole reply yet */
	HANDOFF_REPLY_TAKEN,
	HANDOFF_REPLY_REFUSED,	/* master's busy 421, or garbage */
};
enum handoff_reply handoff_reply_parse(const char *buf, size_t len);

#endif
