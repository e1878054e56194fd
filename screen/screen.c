/*
 * screen.c - the first contact on the port 25 role (screen = yes), as
 * Postfix's postscreen: one process, one epoll loop, that holds every
 * new SMTP client until it has shown it is a real MTA, so that idle,
 * slow and talk-before-greeting clients never hold an smtpd process.
 *
 * A client's states (one state machine, enter_state() below):
 *
 *   PROXY     a listener marked "proxy": reading the PROXY header
 *             (mail/proxy_proto.c) within smtpd_upstream_proxy_timeout
 *   GREET     not in the cache: "220-" sent, DNSBL queries out; any
 *             byte now is PREGREET (the client talks before its turn,
 *             as spamware does): 550 and close. After screen_greet_wait
 *             and the DNSBL answers: a score at screen_dnsbl_threshold
 *             gets 550 5.7.1 naming the list; else PASS NEW, the cache
 *             learns it, and the "220 " line ends the greeting.
 *   COMMAND   greeted (at once for a cached or permitted client): wait,
 *             up to screen_command_timeout, for the first command line
 *   HANDOFF   the client's socket and the bytes read are with an smtpd
 *             process (mail/handoff.h); waiting for its "type=ok"
 *
 * Before GREET: screen_access_list (reject: 554 5.7.1 and close;
 * permit: straight to COMMAND), then the allowlist cache (PASS OLD:
 * straight to COMMAND). More than screen_client_limit clients at once:
 * 421 4.3.2 at accept. Log lines are Postfix's postscreen words
 * (CONNECT, PASS NEW, PASS OLD, PREGREET, DNSBL rank, HANGUP,
 * ALLOWLISTED, DENYLISTED), which log analysers know.
 *
 * Memory: one small struct per client; input buffers only once a
 * client sends something. Timers: each state has one fixed timeout,
 * so each state's clients sit in a list in deadline order (O(1) per
 * event, however many clients are held).
 *
 * Trusts: nothing a client sends. Its bytes are only scanned for a
 * line end and passed on to smtpd, which parses them; they reach the
 * log only through log_escape(). Runs as `user` (the cache is its
 * file), confined by Landlock to reading the system and the config and
 * writing the cache's directory (mail/daemon_confine.c).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "daemon.h"
#include "handoff.h"
#include "log.h"
#include "mem.h"
#include "proxy_proto.h"
#include "screen.h"
#include "sock.h"

enum screen_state {
	ST_PROXY,
	ST_GREET,
	ST_COMMAND,
	ST_HANDOFF,
	ST_COUNT
};

static const char *const state_names[ST_COUNT] = {
	"PROXY", "GREET", "COMMAND", "HANDOFF",
};

/*
 * A client's address or ours: IPv4 or IPv6 (a Unix listener's peer is
 * kept as its family alone; only its name "unix" is ever shown). Not a
 * sockaddr_storage: 28 bytes instead of 128, twice for each of up to
 * screen_client_limit clients.
 */
union client_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
};

struct client {
	int fd;
	int handoff_fd;			/* ST_HANDOFF: to smtpd */
	unsigned slot, gen;
	enum screen_state state;
	long long connect_ms;
	long long deadline;		/* of the state; 0: none */
	struct client *prev, *next;	/* in its state's timer list */
	bool in_timer;
	union client_sockaddr peer, local;
	socklen_t peer_len, local_len;
	char addr[48];
	int port;
	char *in;			/* what the client sent, or NULL */
	size_t in_len;
	char reply[16];			/* smtpd's answer to the handoff */
	size_t reply_len;
	size_t dns_pending;
	int score;
	int best_site;			/* the heaviest listing site */
	bool greet_over;		/* screen_greet_wait has passed */
};

/*
 * epoll data: a tag in the top 4 bits; for a client, 28 bits of its
 * generation, then its slot, so that an event still pending for a
 * client freed earlier in the same batch never reaches the new client
 * in its slot.
 */
#define TAG_LISTENER 1ULL
#define TAG_ALIVE 2ULL
#define TAG_DNS 3ULL
#define TAG_CLIENT 4ULL
#define TAG_HANDOFF 5ULL
#define TAG(t, v) (((t) << 60) | (unsigned long long)(v))
#define GEN_MASK 0xfffffffULL
#define CLIENT_TAG(t, c) (((t) << 60) | \
	(((unsigned long long)(c)->gen & GEN_MASK) << 32) | (c)->slot)

static int ep = -1;
static struct client **clients;	/* by slot */
static unsigned *free_slots;
static size_t nfree, nclients, client_limit;
static unsigned next_gen;
static struct client *timer_head[ST_COUNT], *timer_tail[ST_COUNT];
static long long state_timeout_ms[ST_COUNT];
static bool accepting = true;
static bool limit_logged;
static char *handoff_path;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void epoll_set(int op, int fd, unsigned events,
    unsigned long long data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	if (epoll_ctl(ep, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL)
		log_fatal("epoll_ctl: %m");
}

static void timer_remove(struct client *c)
{
	if (!c->in_timer)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		timer_head[c->state] = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		timer_tail[c->state] = c->prev;
	c->prev = c->next = NULL;
	c->in_timer = false;
}

/* Each state has one timeout, so appending keeps a list in order. */
static void timer_append(struct client *c)
{
	c->deadline = now_ms() + state_timeout_ms[c->state];
	c->prev = timer_tail[c->state];
	c->next = NULL;
	if (timer_tail[c->state])
		timer_tail[c->state]->next = c;
	else
		timer_head[c->state] = c;
	timer_tail[c->state] = c;
	c->in_timer = true;
}

static void enter_state(struct client *c, enum screen_state st)
{
	timer_remove(c);
	log_debug("screen: [%s]:%d: %s -> %s", c->addr, c->port,
	    state_names[c->state], state_names[st]);
	c->state = st;
	timer_append(c);
}

static double elapsed(const struct client *c)
{
	return (double)(now_ms() - c->connect_ms) / 1000.0;
}

/* A reply to a non-blocking socket whose send buffer is empty or
 * nearly so: written at once or not at all (the client is going). */
static void say(struct client *c, const char *text)
{
	ssize_t n = send(c->fd, text, strlen(text), MSG_NOSIGNAL);
	(void)n;
}

static void client_free(struct client *c)
{
	timer_remove(c);
	if (c->fd >= 0)
		close(c->fd);	/* also leaves the epoll set */
	if (c->handoff_fd >= 0)
		close(c->handoff_fd);
	free(c->in);
	clients[c->slot] = NULL;
	free_slots[nfree++] = c->slot;
	nclients--;
	free(c);
}

/* Reply, then FIN, so that the client reads the reply; then forget it. */
static void client_close(struct client *c, const char *reply)
{
	if (reply != NULL)
		say(c, reply);
	shutdown(c->fd, SHUT_RDWR);
	client_free(c);
}

static void greet_final(struct client *c)
{
	char line[600];
	snprintf(line, sizeof(line), "220 %s\r\n", cfg.smtpd_banner);
	say(c, line);
	enter_state(c, ST_COMMAND);
}

/* Every check of a new client is done: refuse it or greet it. */
static void decide(struct client *c)
{
	char line[600];

	/* Refused only when a site listed it (best_site), whatever the
	 * threshold. */
	if (c->best_site >= 0 && c->score >= cfg.screen_dnsbl_threshold) {
		const char *site = screen_dnsbl_site_name((size_t)c->best_site);
		log_info("DNSBL rank %d for [%s]:%d", c->score, c->addr,
		    c->port);
		log_info("NOQUEUE: reject: CONNECT from [%s]:%d: 550 5.7.1 "
		    "Service unavailable; client [%s] blocked using %s",
		    c->addr, c->port, c->addr, site);
		snprintf(line, sizeof(line), "550 5.7.1 Service unavailable; "
		    "client [%s] blocked using %s\r\n", c->addr, site);
		client_close(c, line);
		return;
	}
	log_info("PASS NEW [%s]:%d", c->addr, c->port);
	screen_cache_add(c->addr, time(NULL));
	greet_final(c);
}

/* After the PROXY header, if any: the checks start. */
static void client_start(struct client *c)
{
	char laddr[64];
	int lport;
	char line[600];

	sock_addr_format((struct sockaddr *)&c->peer, c->addr,
	    sizeof(c->addr), &c->port);
	sock_addr_format((struct sockaddr *)&c->local, laddr, sizeof(laddr),
	    &lport);
	log_info("CONNECT from [%s]:%d to [%s]:%d", c->addr, c->port, laddr,
	    lport);
	switch (screen_access_check((struct sockaddr *)&c->peer)) {
	case SCREEN_ACCESS_REJECT:
		log_info("DENYLISTED [%s]:%d", c->addr, c->port);
		/* RFC 5321 3.1: 554 for a refusal at the connection. */
		snprintf(line, sizeof(line), "554 5.7.1 Service unavailable; "
		    "client [%s] blocked by screen_access_list\r\n", c->addr);
		client_close(c, line);
		return;
	case SCREEN_ACCESS_PERMIT:
		log_info("ALLOWLISTED [%s]:%d", c->addr, c->port);
		greet_final(c);
		return;
	case SCREEN_ACCESS_DUNNO:
		break;
	}
	if (screen_cache_hit(c->addr, time(NULL))) {
		log_info("PASS OLD [%s]:%d", c->addr, c->port);
		greet_final(c);
		return;
	}
	/* The first line of a multi-line greeting: a client that talks
	 * before the last line has not waited for its turn (RFC 5321
	 * 4.3.1, 4.2.1). */
	snprintf(line, sizeof(line), "220-%s\r\n", cfg.smtpd_banner);
	say(c, line);
	c->best_site = -1;
	c->dns_pending = screen_dnsbl_start(c->slot, c->gen,
	    (struct sockaddr *)&c->peer);
	enter_state(c, ST_GREET);
}

void screen_dnsbl_result(unsigned slot, unsigned gen, size_t site,
    bool listed)
{
	struct client *c = clients[slot];
	if (c == NULL || c->gen != gen || c->state != ST_GREET)
		return;		/* gone, or already refused */
	if (c->dns_pending > 0)
		c->dns_pending--;
	if (listed) {
		int w = screen_dnsbl_site_weight(site);
		c->score += w;
		if (c->best_site < 0 || w > screen_dnsbl_site_weight(
		    (size_t)c->best_site))
			c->best_site = (int)site;
	}
	if (c->dns_pending == 0 && c->greet_over)
		decide(c);
}

/* Keep an address that fits (IPv4, IPv6); of any other, its family. */
static void client_sockaddr_set(union client_sockaddr *to, socklen_t *to_len,
    const struct sockaddr *from, socklen_t len)
{
	memset(to, 0, sizeof(*to));
	if (len <= sizeof(*to) && len >= sizeof(sa_family_t)) {
		memcpy(to, from, len);
		*to_len = len;
	} else {
		to->sa.sa_family = len >= sizeof(sa_family_t) ?
		    from->sa_family : AF_UNSPEC;
		*to_len = sizeof(sa_family_t);
	}
}

static void accept_clients(int lfd, size_t li)
{
	for (int k = 0; k < 256; k++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (nclients >= client_limit) {
			static const char busy[] = "421 4.3.2 Too many "
			    "connections; try again later\r\n";
			ssize_t n = send(fd, busy, sizeof(busy) - 1,
			    MSG_NOSIGNAL);
			(void)n;
			shutdown(fd, SHUT_RDWR);
			close(fd);
			if (!limit_logged)
				log_warning("screen: %zu clients held "
				    "(screen_client_limit): 421 4.3.2 to new "
				    "clients until one leaves", nclients);
			limit_logged = true;
			continue;
		}
		limit_logged = false;
		struct client *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->handoff_fd = -1;
		c->slot = free_slots[--nfree];
		c->gen = ++next_gen;
		c->connect_ms = now_ms();
		client_sockaddr_set(&c->peer, &c->peer_len,
		    (struct sockaddr *)&peer, plen);
		struct sockaddr_storage local;
		socklen_t llen = sizeof(local);
		if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0) {
			memset(&local, 0, sizeof(local));
			llen = sizeof(sa_family_t);
		}
		client_sockaddr_set(&c->local, &c->local_len,
		    (struct sockaddr *)&local, llen);
		clients[c->slot] = c;
		nclients++;
		sock_addr_format((struct sockaddr *)&c->peer, c->addr,
		    sizeof(c->addr), &c->port);
		epoll_set(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP,
		    CLIENT_TAG(TAG_CLIENT, c));
		if (daemon_listener_proxy(li)) {
			c->state = ST_PROXY;
			timer_append(c);
		} else {
			c->state = ST_PROXY;	/* the state it leaves */
			client_start(c);
		}
	}
}

/* Read what the client sent into c->in (at most max in all). */
static ssize_t client_read(struct client *c, size_t max)
{
	if (c->in == NULL)
		c->in = xmalloc(max);
	if (c->in_len >= max)
		return -2;
	ssize_t n;
	do
		n = recv(c->fd, c->in + c->in_len, max - c->in_len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		c->in_len += (size_t)n;
	return n;
}

/*
 * The PROXY header, read by peeking: a whole header is consumed to its
 * last octet and no further (what follows is the client's, for smtpd);
 * bytes that are only the start of one are consumed into c->in, so
 * that the socket is not readable again until more comes (a header
 * trickled in octet by octet costs no busy loop).
 */
static void proxy_input(struct client *c)
{
	if (c->in == NULL)
		c->in = xmalloc(PROXY_MAX_HEADER);
	size_t room = PROXY_MAX_HEADER - c->in_len;
	ssize_t n = recv(c->fd, c->in + c->in_len, room, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	struct proxy_header h;
	const char *why = "";
	enum proxy_result r = proxy_parse((unsigned char *)c->in,
	    c->in_len + (size_t)n, &h, &why);
	size_t take = r == PROXY_OK ? h.length - c->in_len : (size_t)n;
	if (r == PROXY_INCOMPLETE && (size_t)n == room) {
		r = PROXY_BAD;
		why = "header too long";
	}
	if (r == PROXY_BAD) {
		log_warning("PROXY protocol from [%s]: %s; connection closed",
		    c->addr, why);
		client_close(c, NULL);
		return;
	}
	/* MSG_PEEK showed these octets: one recv returns them. */
	if (recv(c->fd, c->in + c->in_len, take, 0) != (ssize_t)take) {
		client_close(c, NULL);
		return;
	}
	c->in_len += take;
	if (r == PROXY_INCOMPLETE)
		return;
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	if (h.has_addresses) {
		client_sockaddr_set(&c->peer, &c->peer_len,
		    (struct sockaddr *)&h.source, h.source_len);
		client_sockaddr_set(&c->local, &c->local_len,
		    (struct sockaddr *)&h.destination, h.destination_len);
	}
	client_start(c);
}

static void greet_input(struct client *c)
{
	ssize_t n = client_read(c, 512);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0 && n != -2) {
		log_info("HANGUP after %.1f from [%s]:%d in tests before SMTP "
		    "handshake", elapsed(c), c->addr, c->port);
		client_free(c);
		return;
	}
	char text[120];
	log_escape(text, sizeof(text), c->in, c->in_len > 80 ? 80 :
	    c->in_len);
	log_info("PREGREET %zu after %.1f from [%s]:%d: %s", c->in_len,
	    elapsed(c), c->addr, c->port, text);
	log_info("NOQUEUE: reject: CONNECT from [%s]:%d: 550 5.5.1 "
	    "Protocol error", c->addr, c->port);
	client_close(c, "550 5.5.1 Protocol error: you spoke before the "
	    "greeting ended\r\n");
}

static void handoff(struct client *c);

static void command_input(struct client *c)
{
	ssize_t n = client_read(c, HANDOFF_MAX_DATA);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n == 0 || (n < 0 && n != -2)) {
		log_info("DISCONNECT [%s]:%d", c->addr, c->port);
		client_free(c);
		return;
	}
	char *crlf = memmem(c->in, c->in_len, "\r\n", 2);
	if (crlf == NULL && c->in_len < HANDOFF_MAX_DATA)
		return;		/* the line is not complete yet */
	/* A client that only says goodbye needs no smtpd. */
	if (crlf != NULL && crlf - c->in == 4 &&
	    strncasecmp(c->in, "QUIT", 4) == 0) {
		log_info("DISCONNECT [%s]:%d", c->addr, c->port);
		client_close(c, "221 2.0.0 Bye\r\n");
		return;
	}
	handoff(c);
}

static void refuse_busy(struct client *c, const char *why)
{
	log_warning("NOQUEUE: reject: CONNECT from [%s]:%d: 421 4.3.2 %s",
	    c->addr, c->port, why);
	client_close(c, "421 4.3.2 Service currently unavailable\r\n");
}

/* Pass the client to an smtpd process (mail/handoff.h). */
static void handoff(struct client *c)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	strlcpy(sun.sun_path, handoff_path, sizeof(sun.sun_path));
	if (s < 0 || connect(s, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		/* EAGAIN: smtpd's backlog is full. */
		char why[128];
		snprintf(why, sizeof(why), "no smtpd process: %s",
		    strerror(errno));
		if (s >= 0)
			close(s);
		refuse_busy(c, why);
		return;
	}
	if (!handoff_send(s, c->fd, (struct sockaddr *)&c->peer, c->peer_len,
	    (struct sockaddr *)&c->local, c->local_len, c->in, c->in_len)) {
		char why[128];
		snprintf(why, sizeof(why), "cannot pass the client to smtpd: "
		    "%s", strerror(errno));
		close(s);
		refuse_busy(c, why);
		return;
	}
	/* The client's later bytes are smtpd's now: stop watching it. */
	epoll_set(EPOLL_CTL_DEL, c->fd, 0, 0);
	c->handoff_fd = s;
	epoll_set(EPOLL_CTL_ADD, s, EPOLLIN | EPOLLRDHUP,
	    CLIENT_TAG(TAG_HANDOFF, c));
	enter_state(c, ST_HANDOFF);
}

static void handoff_input(struct client *c)
{
	if (c->handoff_fd < 0)
		return;
	ssize_t n = recv(c->handoff_fd, c->reply + c->reply_len,
	    sizeof(c->reply) - c->reply_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		c->reply_len += (size_t)n;
	enum handoff_reply r = n > 0 ? handoff_reply_parse(c->reply,
	    c->reply_len) : HANDOFF_REPLY_REFUSED;
	if (r == HANDOFF_REPLY_MORE)
		return;
	if (r == HANDOFF_REPLY_TAKEN) {
		log_debug("screen: [%s]:%d passed to smtpd", c->addr, c->port);
		client_free(c);	/* our copy of the socket only */
		return;
	}
	/* master's busy answer (master_busy.c), or smtpd went away. */
	refuse_busy(c, "all smtpd processes are busy");
}

static void client_event(struct client *c, unsigned events, bool on_handoff)
{
	if (on_handoff) {
		handoff_input(c);
		return;
	}
	switch (c->state) {
	case ST_PROXY:
		proxy_input(c);
		break;
	case ST_GREET:
		greet_input(c);
		break;
	case ST_COMMAND:
		command_input(c);
		break;
	case ST_HANDOFF:
	case ST_COUNT:
		break;
	}
	(void)events;
}

static void expire(struct client *c)
{
	switch (c->state) {
	case ST_PROXY:
		log_warning("PROXY protocol from [%s]: timeout before the "
		    "header ended; connection closed", c->addr);
		client_close(c, NULL);
		break;
	case ST_GREET:
		timer_remove(c);
		c->greet_over = true;
		if (c->dns_pending == 0)
			decide(c);
		/* else the last DNSBL answer (or its timeout) decides */
		break;
	case ST_COMMAND: {
		char line[600];
		log_info("HANGUP after %.1f from [%s]:%d: no command within "
		    "%llds", elapsed(c), c->addr, c->port,
		    cfg.screen_command_timeout);
		snprintf(line, sizeof(line), "421 4.4.2 %s Error: timeout "
		    "exceeded\r\n", cfg.myhostname);
		client_close(c, line);
		break;
	}
	case ST_HANDOFF:
		refuse_busy(c, "no smtpd process took the client in time");
		break;
	case ST_COUNT:
		break;
	}
}

static void expire_all(long long now)
{
	for (int st = 0; st < ST_COUNT; st++)
		while (timer_head[st] != NULL && timer_head[st]->deadline <= now)
			expire(timer_head[st]);
	screen_dnsbl_expire(now);
}

static int next_timeout(long long now)
{
	long long next = 0;
	for (int st = 0; st < ST_COUNT; st++)
		if (timer_head[st] != NULL && (next == 0 ||
		    timer_head[st]->deadline < next))
			next = timer_head[st]->deadline;
	long long dns = screen_dnsbl_next_deadline();
	if (dns != 0 && (next == 0 || dns < next))
		next = dns;
	if (next == 0)
		return 60000;	/* the hourly cache maintenance */
	long long ms = next - now;
	return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms + 1;
}

/*
 * One descriptor per client, a few for the rest, and a second one for
 * each client whose handoff is under way (until smtpd takes it). Those
 * are few whatever the number of clients held: an smtpd process takes
 * them one at a time, and the rest wait in the handoff socket's listen
 * backlog (511, master_service.c) or get master's 421 at once. So the
 * reserve is the backlog plus smtpd_processes, not one per client:
 * 10,000 idle clients fit in about 10,700 open files. Raise the soft
 * limit to the hard one (no privilege needed; master raised the hard
 * one as open_file_limit says), and hold fewer clients if even that is
 * too low.
 */
#define SCREEN_FD_OTHERS 64
#define HANDOFF_BACKLOG 512

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_fatal("getrlimit: %m");
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warning("setrlimit(RLIMIT_NOFILE): %m");
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	client_limit = cfg.screen_client_limit > 0 ?
	    (size_t)cfg.screen_client_limit : 1;
	rlim_t reserve = SCREEN_FD_OTHERS + HANDOFF_BACKLOG +
	    (rlim_t)(cfg.smtpd_processes > 0 ? cfg.smtpd_processes : 0);
	rlim_t room = rl.rlim_cur > reserve + 1 ? rl.rlim_cur - reserve : 1;
	if (rl.rlim_cur != RLIM_INFINITY && client_limit > room) {
		log_warning("screen_client_limit %zu is more than %llu open "
		    "files allow: holding at most %llu clients (raise "
		    "open_file_limit, or the hard limit, to %llu)",
		    client_limit, (unsigned long long)rl.rlim_cur,
		    (unsigned long long)room,
		    (unsigned long long)(client_limit + reserve));
		client_limit = room;
	}
}

static void screen_init(const char *service)
{
	if (cfg.myhostname == NULL || *cfg.myhostname == '\0')
		log_fatal("myhostname is not set");
	raise_fd_limit();
	clients = xcalloc(client_limit, sizeof(*clients));
	free_slots = xcalloc(client_limit, sizeof(*free_slots));
	for (size_t i = 0; i < client_limit; i++)
		free_slots[nfree++] = (unsigned)(client_limit - 1 - i);
	state_timeout_ms[ST_PROXY] = cfg.smtpd_upstream_proxy_timeout * 1000;
	state_timeout_ms[ST_GREET] = cfg.screen_greet_wait * 1000;
	state_timeout_ms[ST_COMMAND] = cfg.screen_command_timeout * 1000;
	state_timeout_ms[ST_HANDOFF] = cfg.screen_handoff_timeout * 1000;
	handoff_path = xasprintf("%s/%s", cfg.run_directory, HANDOFF_SOCKET);
	screen_access_init();
	screen_dnsbl_init();
	screen_cache_init();
}

static void screen_run(const char *service)
{
	struct epoll_event events[256];

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		log_fatal("epoll_create1: %m");
	for (size_t i = 0; i < daemon_listener_count(); i++)
		epoll_set(EPOLL_CTL_ADD, daemon_listener_fd(i), EPOLLIN,
		    TAG(TAG_LISTENER, i));
	epoll_set(EPOLL_CTL_ADD, daemon_alive_fd(), EPOLLIN, TAG(TAG_ALIVE, 0));
	if (screen_dnsbl_fd() >= 0)
		epoll_set(EPOLL_CTL_ADD, screen_dnsbl_fd(), EPOLLIN,
		    TAG(TAG_DNS, 0));
	log_info("screen: holding up to %zu clients", client_limit);

	/* After master goes or asks us to stop: no new clients; those held
	 * finish (each state has its timeout), then exit. */
	while (accepting || nclients > 0) {
		int n = epoll_wait(ep, events, 256, next_timeout(now_ms()));
		if (n < 0 && errno != EINTR)
			log_fatal("epoll_wait: %m");
		long long now = now_ms();
		for (int k = 0; k < n; k++) {
			unsigned long long tag = events[k].data.u64 >> 60;
			unsigned long long v = events[k].data.u64 &
			    ((1ULL << 60) - 1);
			if (tag == TAG_LISTENER && accepting) {
				accept_clients(daemon_listener_fd((size_t)v),
				    (size_t)v);
			} else if (tag == TAG_ALIVE && accepting) {
				accepting = false;
				epoll_set(EPOLL_CTL_DEL, daemon_alive_fd(), 0, 0);
				for (size_t i = 0; i < daemon_listener_count();
				    i++)
					close(daemon_listener_fd(i));
			} else if (tag == TAG_DNS) {
				screen_dnsbl_read(now);
			} else if (tag == TAG_CLIENT || tag == TAG_HANDOFF) {
				unsigned slot = (unsigned)(v & 0xffffffffULL);
				struct client *c = slot < client_limit ?
				    clients[slot] : NULL;
				if (c != NULL && (c->gen & GEN_MASK) == v >> 32 &&
				    (tag == TAG_CLIENT) == (c->state != ST_HANDOFF))
					client_event(c, events[k].events,
					    tag == TAG_HANDOFF);
			}
		}
		expire_all(now_ms());
		screen_cache_maintain(time(NULL));
	}
	screen_cache_close();
}

int main(int argc, char **argv)
{
	static const struct daemon_service svc = {
		.program = "screen",
		.init = screen_init,
		.run = screen_run,
	};
	daemon_main(argc, argv, &svc);
}
