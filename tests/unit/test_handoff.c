/*
 * test_handoff.c - mail/handoff.c, the message that passes a client from
 * screen to smtpd, over real socket pairs: the descriptor, the addresses
 * and the bytes read arrive intact (NUL, CR, LF and 8-bit octets too),
 * the receiver acknowledges, and malformed messages are refused with
 * nothing held. Also util/bio.c's bio_prefill, which puts those bytes in
 * front of smtpd's input.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bio.h"
#include "handoff.h"
#include "sock.h"
#include "unit.h"

static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 256; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static void test_round_trip(void)
{
	static const struct {
		const char *peer, *local;
		int peer_port, local_port;
		const char *data;
		size_t len;
	} cases[] = {
		{ "192.0.2.7", "192.0.2.1", 41234, 25, "EHLO x\r\n", 8 },
		{ "2001:db8::5", "2001:db8::1", 1, 25, "", 0 },
		{ "127.0.0.2", "127.0.0.1", 65535, 2525,
		  "EHLO a\r\nMAIL\0FROM\xff\r\n", 21 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int link[2], client[2];
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, link) == 0);
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, client) == 0);
		struct sockaddr_storage p, l;
		socklen_t pl, ll;
		CHECK(sock_addr_parse(cases[i].peer, cases[i].peer_port, &p,
		    &pl));
		CHECK(sock_addr_parse(cases[i].local, cases[i].local_port, &l,
		    &ll));
		CHECK(handoff_send(link[0], client[0], (struct sockaddr *)&p,
		    pl, (struct sockaddr *)&l, ll, cases[i].data,
		    cases[i].len));
		struct handoff_client h;
		char err[256] = "";
		CHECK(handoff_receive(link[1], 1000, &h, err, sizeof(err)));
		CHECK_STR(err, "");
		char addr[64];
		int port;
		sock_addr_format((struct sockaddr *)&h.peer, addr, sizeof(addr),
		    &port);
		CHECK_STR(addr, cases[i].peer);
		CHECK_INT(port, cases[i].peer_port);
		sock_addr_format((struct sockaddr *)&h.local, addr,
		    sizeof(addr), &port);
		CHECK_STR(addr, cases[i].local);
		CHECK_INT(port, cases[i].local_port);
		CHECK_INT(h.data_len, cases[i].len);
		CHECK(h.data_len == 0 ||
		    memcmp(h.data, cases[i].data, h.data_len) == 0);
		/* The descriptor is the client's socket: what we write
		 * through it reaches the other end. */
		CHECK(write(h.fd, "hi", 2) == 2);
		char buf[8] = "";
		CHECK(read(client[1], buf, sizeof(buf)) == 2);
		CHECK_STR(buf, "hi");
		/* And screen reads the acknowledgement. */
		char reply[32];
		ssize_t n = read(link[0], reply, sizeof(reply));
		CHECK(n > 0 && handoff_reply_parse(reply, (size_t)n) ==
		    HANDOFF_REPLY_TAKEN);
		handoff_client_free(&h);
		close(h.fd);
		close(link[0]);
		close(link[1]);
		close(client[0]);
		close(client[1]);
	}
}

/* Messages that must be refused, with no descriptor left open. */
static void test_refused(void)
{
	static const struct {
		const char *text;
		bool with_fd;
	} cases[] = {
		{ "type=client\nclient=192.0.2.7\nclient_port=1\nlocal=192.0.2.1"
		  "\nlocal_port=25\ndata=\n\n", false },
		{ "type=client\nclient=192.0.2.7\nclient_port=1\nlocal=192.0.2.1"
		  "\nlocal_port=25\ndata=4\n\n", true },
		{ "type=client\nclient=192.0.2.7\nclient_port=1\nlocal=192.0.2.1"
		  "\nlocal_port=25\ndata=zz\n\n", true },
		{ "type=client\nclient=not-an-address\nclient_port=1\nlocal="
		  "192.0.2.1\nlocal_port=25\ndata=\n\n", true },
		{ "type=client\nclient=192.0.2.7\nclient_port=70000\nlocal="
		  "192.0.2.1\nlocal_port=25\ndata=\n\n", true },
		{ "type=other\n\n", true },
		{ "type=client\nclient=192.0.2.7\n", true },	/* cut short */
	};
	int before = open_fds();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int link[2], client[2];
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, link) == 0);
		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, client) == 0);
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl;
		memset(&ctl, 0, sizeof(ctl));
		struct iovec iov = { .iov_base = (void *)cases[i].text,
		    .iov_len = strlen(cases[i].text) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (cases[i].with_fd) {
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
			struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &client[0], sizeof(int));
		}
		CHECK(sendmsg(link[0], &msg, 0) == (ssize_t)iov.iov_len);
		shutdown(link[0], SHUT_WR);
		struct handoff_client h;
		char err[256] = "";
		CHECK(!handoff_receive(link[1], 200, &h, err, sizeof(err)));
		CHECK(err[0] != '\0');
		CHECK_INT(h.fd, -1);
		close(link[0]);
		close(link[1]);
		close(client[0]);
		close(client[1]);
	}
	CHECK_INT(open_fds(), before);
}

static void test_reply_parse(void)
{
	static const struct {
		const char *text;
		enum handoff_reply want;
	} cases[] = {
		{ "type=ok\n\n", HANDOFF_REPLY_TAKEN },
		{ "type=o", HANDOFF_REPLY_MORE },
		{ "", HANDOFF_REPLY_MORE },
		{ "421 4.3.2 Service currently unavailable\r\n",
		  HANDOFF_REPLY_REFUSED },
		{ "type=error\n\n", HANDOFF_REPLY_REFUSED },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(handoff_reply_parse(cases[i].text,
		    strlen(cases[i].text)), cases[i].want);
}

/* What screen read comes first, then what the socket brings. */
static void test_bio_prefill(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK(write(sv[1], "MAIL FROM:<a@b>\r\n", 17) == 17);
	struct bio b;
	bio_init(&b, sv[0], 1000);
	bio_prefill(&b, "EHLO x\r\nNO", 10);
	struct str line;
	str_init(&line, 1000);
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_STR(str_cstr(&line), "EHLO x");
	CHECK_INT(bio_readline(&b, &line, 512, NULL), BIO_OK);
	CHECK_STR(str_cstr(&line), "NOMAIL FROM:<a@b>");
	bio_prefill(&b, NULL, 0);	/* nothing read: no change */
	str_free(&line);
	bio_free(&b);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_refused);
	RUN(test_reply_parse);
	RUN(test_bio_prefill);
	return unit_done();
}
