/*
 * daemon.c - the skeleton that every daemon started by master runs in
 * (see daemon.h for the file descriptors and environment master hands
 * over). It trusts master's file descriptors and the config file; it
 * trusts nothing that arrives on the accepted connections, which it only
 * hands to the service after privileges are dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "daemon.h"
#include "daemon_scoreboard.h"
#include "handoff.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "priv.h"
#include "sock.h"

static size_t listener_count;
static int listener_fds[DAEMON_MAX_LISTENERS];
static char *listener_names[DAEMON_MAX_LISTENERS];
static bool listener_proxy[DAEMON_MAX_LISTENERS];
static bool listener_handoff[DAEMON_MAX_LISTENERS];
/* The address a listener is bound to, when every connection it accepts
 * has that same local address (not a wildcard): kept once per process,
 * so that a connection costs no getsockname(). */
static struct sockaddr_storage listener_local[DAEMON_MAX_LISTENERS];
static socklen_t listener_local_len[DAEMON_MAX_LISTENERS];
static const char *service_name = "";
static unsigned int generation;
static bool stop_requested;
static int watched_fd = -1;

size_t daemon_listener_count(void)
{
	return listener_count;
}

int daemon_listener_fd(size_t i)
{
	return i < listener_count ? listener_fds[i] : -1;
}

const char *daemon_listener_name(size_t i)
{
	return i < listener_count ? listener_names[i] : "";
}

bool daemon_listener_proxy(size_t i)
{
	return i < listener_count && listener_proxy[i];
}

int daemon_alive_fd(void)
{
	return DAEMON_ALIVE_FD;
}

void daemon_watch_fd(int fd)
{
	watched_fd = fd;
}

const char *daemon_service_name(void)
{
	return service_name;
}

bool daemon_stop_requested(void)
{
	if (stop_requested)
		return true;
	struct pollfd pfd = { .fd = DAEMON_ALIVE_FD, .events = POLLIN };
	if (poll(&pfd, 1, 0) > 0)
		stop_requested = true;
	return stop_requested;
}

/*
 * Tell master of a change of state. Busy and idle go first to the
 * service's scoreboard (daemon_scoreboard.h), which master reads when it
 * wakes anyway; the status pipe, whose every record wakes master, only
 * when master must act now.
 */
static void report(enum daemon_state state)
{
	if (state == DAEMON_BUSY && !daemon_scoreboard_busy())
		return;
	if (state == DAEMON_IDLE && !daemon_scoreboard_idle())
		return;
	struct daemon_status st = {
		.pid = log_pid(),
		.state = (int)state,
		.generation = generation,
	};
	/* Atomic (< PIPE_BUF); if master is gone we learn it elsewhere. */
	ssize_t n = write(DAEMON_STATUS_FD, &st, sizeof(st));
	(void)n;
}

/*
 * A connection accepted on a listener bound to one address (127.0.0.1:25,
 * [2001:db8::1]:25, a Unix socket's path) has the listener's address as
 * its own; one bound to a wildcard (0.0.0.0, ::) has the address the
 * client connected to, which only getsockname() of the connection says.
 */
static void keep_listener_address(size_t i)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (getsockname(listener_fds[i], (struct sockaddr *)&ss, &len) < 0 ||
	    len > sizeof(ss))
		return;
	if (ss.ss_family == AF_INET &&
	    ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_ANY))
		return;
	if (ss.ss_family == AF_INET6 && memcmp(&((struct sockaddr_in6 *)
	    &ss)->sin6_addr, &any6, sizeof(any6)) == 0)
		return;
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 &&
	    ss.ss_family != AF_UNIX)
		return;
	listener_local[i] = ss;
	listener_local_len[i] = len;
}

static void take_listeners(void)
{
	const char *count = getenv("POSTERN_LISTEN_FDS");
	const char *names = getenv("POSTERN_LISTEN_NAMES");
	const char *gen = getenv("POSTERN_GENERATION");
	const char *proxy = getenv("POSTERN_LISTEN_PROXY");
	const char *handoff = getenv("POSTERN_LISTEN_HANDOFF");

	if (count == NULL)
		log_fatal("this program is started by master: use \"postern "
		    "start\"");
	listener_count = (size_t)strtoul(count, NULL, 10);
	if (listener_count > DAEMON_MAX_LISTENERS)
		log_fatal("bad POSTERN_LISTEN_FDS");
	generation = gen ? (unsigned)strtoul(gen, NULL, 10) : 0;
	char *copy = xstrdup(names ? names : "");
	char *save = NULL, *tok = strtok_r(copy, " ", &save);
	for (size_t i = 0; i < listener_count; i++) {
		listener_fds[i] = DAEMON_LISTEN_FD_START + (int)i;
		listener_names[i] = xstrdup(tok ? tok : "?");
		listener_proxy[i] = proxy != NULL && strlen(proxy) > i &&
		    proxy[i] == '1';
		listener_handoff[i] = handoff != NULL && strlen(handoff) > i &&
		    handoff[i] == '1';
		tok = strtok_r(NULL, " ", &save);
		fcntl(listener_fds[i], F_SETFD, FD_CLOEXEC);
	}
	free(copy);
	for (size_t i = 0; i < listener_count; i++)
		keep_listener_address(i);
	fcntl(DAEMON_STATUS_FD, F_SETFD, FD_CLOEXEC);
	fcntl(DAEMON_ALIVE_FD, F_SETFD, FD_CLOEXEC);
}

/*
 * What is known of an accepted connection; accept4() filled in the
 * peer's address (peer, peer_len). false when a network client is gone
 * already (reset between accept and here: getsockname fails, where the
 * listener's address is not known) or its address is not of the
 * listener's family: it must not be taken for a
 * local Unix-socket peer, which skips checks and limits. Whether the
 * peer is local is the listener's family, never the absence of a peer
 * address.
 */
static bool fill_conn(struct daemon_conn *conn, int fd, size_t li,
    const struct sockaddr_storage *peer, socklen_t peer_len)
{
	memset(conn, 0, sizeof(*conn));
	conn->fd = fd;
	conn->service = service_name;
	conn->listener = listener_names[li];
	conn->proxy = listener_proxy[li];
	conn->local_len = sizeof(conn->local);
	if (listener_local_len[li] > 0) {
		memcpy(&conn->local, &listener_local[li],
		    listener_local_len[li]);
		conn->local_len = listener_local_len[li];
	} else if (getsockname(fd, (struct sockaddr *)&conn->local,
	    &conn->local_len) < 0) {
		return false;
	}
	/* The address accept4() gave: a getpeername() less per connection. */
	bool have_peer = peer_len > 0 && peer_len <= sizeof(conn->peer);
	if (have_peer) {
		memcpy(&conn->peer, peer, peer_len);
		conn->peer_len = peer_len;
	}
	conn->peer_uid = (uid_t)-1;
	if (conn->local.ss_family != AF_UNIX &&
	    (!have_peer || conn->peer.ss_family != conn->local.ss_family))
		return false;
	if (conn->local.ss_family == AF_UNIX) {
		conn->peer_is_unix = true;
		strlcpy(conn->peer_addr, "unix", sizeof(conn->peer_addr));
		/* The kernel's word, taken at connect: not forgeable. */
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		    len == sizeof(cred))
			conn->peer_uid = cred.uid;
	} else {
		sock_addr_format((struct sockaddr *)&conn->peer,
		    conn->peer_addr, sizeof(conn->peer_addr), &conn->peer_port);
	}
	return true;
}

/*
 * A client screen passed on (mail/handoff.h) over the connection fd
 * accepted on a handoff listener: conn becomes that client, greeted,
 * with what screen read of it. false (logged) when the message is bad.
 */
static bool take_handoff(struct daemon_conn *conn, struct handoff_client *h,
    int fd, size_t li)
{
	char err[256];

	if (!handoff_receive(fd, 2000, h, err, sizeof(err))) {
		log_warning("%s: %s", listener_names[li], err);
		return false;
	}
	memset(conn, 0, sizeof(*conn));
	conn->fd = h->fd;
	conn->service = service_name;
	conn->listener = listener_names[li];
	memcpy(&conn->peer, &h->peer, sizeof(conn->peer));
	conn->peer_len = h->peer_len;
	memcpy(&conn->local, &h->local, sizeof(conn->local));
	conn->local_len = h->local_len;
	conn->peer_uid = (uid_t)-1;
	sock_addr_format((struct sockaddr *)&conn->peer, conn->peer_addr,
	    sizeof(conn->peer_addr), &conn->peer_port);
	conn->greeted = true;
	conn->preread = h->data;
	conn->preread_len = h->data_len;
	return true;
}

/*
 * Master is gone (PR_SET_PDEATHSIG): let go of the listeners now, not
 * after the session in hand, or a new master cannot bind their addresses
 * for up to smtpd_timeout (issue 12). dup2 of /dev/null over each keeps
 * the descriptor numbers taken, so that nothing the session opens next
 * lands on a number the accept loop still thinks is a listener; the loop
 * sees the alive pipe at EOF and exits after the session.
 */
static int null_fd = -1;
static volatile sig_atomic_t master_gone;

static void on_master_death(int sig)
{
	int saved = errno;
	master_gone = 1;
	for (size_t i = 0; i < listener_count; i++)
		dup2(null_fd, listener_fds[i]);
	errno = saved;
}

static void watch_master_death(void)
{
	pid_t master = getppid();
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0)
		log_fatal("open /dev/null: %m");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_master_death;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, NULL) < 0)
		log_fatal("sigaction: %m");
	/* Set after the privilege drop, which clears it; then check that
	 * master did not go before it was set. */
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0) < 0)
		log_fatal("prctl(PR_SET_PDEATHSIG): %m");
	if (getppid() != master)
		on_master_death(SIGUSR2);
}

/*
 * Accept and serve connections until max_use, max_idle or stop.
 *
 * Every idle process of a service waits on the same listeners. With
 * poll() each connection would wake all of them and all but one would
 * find accept() empty: a thundering herd that costs a context switch per
 * idle process per connection. EPOLLEXCLUSIVE wakes one (Linux >= 4.5),
 * which is what Postfix gets from its accept lock.
 */
static void accept_loop(const struct daemon_service *svc)
{
	long long served = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		log_fatal("epoll_create1: %m");
	for (size_t i = 0; i <= listener_count; i++) {
		bool alive = i == listener_count;
		struct epoll_event ev = {
			.events = alive ? EPOLLIN : EPOLLIN | EPOLLEXCLUSIVE,
			.data.u64 = i,
		};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, alive ? DAEMON_ALIVE_FD :
		    listener_fds[i], &ev) < 0)
			log_fatal("epoll_ctl: %m");
	}
	/* The helper's end: EOF when it is gone. Not exclusive: every
	 * process watches its own. */
	size_t watched = listener_count + 1;
	if (watched_fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 =
		    watched };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, watched_fd, &ev) < 0)
			log_fatal("epoll_ctl: %m");
	}

	/* A slot of its own, before master hears it is ready. */
	daemon_scoreboard_attach((int32_t)getpid());
	report(DAEMON_READY);
	for (;;) {
		if (master_gone)
			exit(0);
		struct epoll_event events[DAEMON_MAX_LISTENERS + 2];
		int timeout = cfg.max_idle > 0 ? (int)cfg.max_idle * 1000 : -1;
		int n = epoll_wait(ep, events, (int)listener_count + 2, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("epoll_wait: %m");
		}
		if (n == 0)
			exit(0);	/* idle for max_idle: master refills */
		for (int k = 0; k < n; k++)
			if (events[k].data.u64 >= listener_count)
				exit(0);	/* master gone or asks us to
						 * stop, or the helper died */
		/* One connection per wake-up, from the first ready listener:
		 * the others stay ready and are reported again. */
		size_t i = (size_t)events[0].data.u64;
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof(peer);
		int fd = accept4(listener_fds[i], (struct sockaddr *)&peer,
		    &peer_len, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warning("accept on %s: %m",
				    listener_names[i]);
			continue;
		}
		struct daemon_conn conn;
		if (listener_handoff[i]) {
			struct handoff_client h;
			bool taken = take_handoff(&conn, &h, fd, i);
			close(fd);	/* screen is done with it */
			if (!taken)
				continue;
			report(DAEMON_BUSY);
			svc->serve(&conn);
			close(conn.fd);
			handoff_client_free(&h);
			report(DAEMON_IDLE);
			if (++served >= cfg.max_use)
				exit(0);
			continue;
		}
		if (!fill_conn(&conn, fd, i, &peer, peer_len)) {
			log_debug("%s: a client left before it was served",
			    listener_names[i]);
			close(fd);
			continue;
		}
		report(DAEMON_BUSY);
		svc->serve(&conn);
		close(fd);
		report(DAEMON_IDLE);
		/* A stop from master is seen by the next epoll_wait(), which
		 * reports the alive pipe with the listeners: no poll() of it
		 * here per connection. */
		if (++served >= cfg.max_use)
			exit(0);
	}
}

int daemon_main(int argc, char **argv, const struct daemon_service *svc)
{
	const char *config_dir = CFG_DEFAULT_DIRECTORY;
	int c;
	char err[512];

	enum log_dest dest = getenv("POSTERN_LOG_STDERR") ? LOG_DEST_STDERR :
	    LOG_DEST_SYSLOG;
	log_init(svc->program, dest);
	if (getenv("POSTERN_VERBOSE"))
		log_set_verbose(atoi(getenv("POSTERN_VERBOSE")));
	while ((c = getopt(argc, argv, "c:s:v")) != -1) {
		switch (c) {
		case 'c':
			config_dir = optarg;
			break;
		case 's':
			service_name = optarg;
			break;
		case 'v':
			log_set_verbose(log_verbose_level() + 1);
			break;
		default:
			log_fatal("usage: %s -c config_dir -s service",
			    svc->program);
		}
	}
	take_listeners();
	metrics_attach();	/* metrics.h: the segments master passed */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	if (!cfg_load(config_dir, false, err, sizeof(err)))
		log_fatal("%s", err);
	/*
	 * Started as a zygote (daemon_zygote.c): everything above is done
	 * once for all the workers; each worker returns here, in a process
	 * of its own, and goes on as one master exec'd would.
	 */
	int zygote_fd = daemon_zygote_fd();
	if (zygote_fd >= 0 && svc->serve != NULL) {
		pid_t zygote = getpid();
		unsetenv(DAEMON_ZYGOTE_ENV);
		/* master's, for the zygote's own start: the workers' doors
		 * and whatever they exec bind lazily again. */
		unsetenv("LD_BIND_NOW");
		if (svc->confine_from_zygote)
			daemon_confine_prepare(svc->program);
		int helper_fd = svc->zygote_start != NULL ?
		    svc->zygote_start(service_name) : -1;
		daemon_zygote_serve(zygote_fd, svc->program, helper_fd);
		log_init(svc->program, dest);	/* log.h: after a raw clone */
		log_debug("worker made by zygote %ld", (long)zygote);
	}
	if (svc->pre_drop)
		svc->pre_drop(service_name);
	if (!svc->keep_root)
		priv_drop(svc->run_as_mailbox_owner ? cfg.mailbox_owner :
		    svc->run_as_smtpd_user ? cfg.smtpd_user : cfg.user);
	if (svc->init)
		svc->init(service_name);
	daemon_confine(svc->program);
	if (svc->serve == NULL) {
		report(DAEMON_READY);
		svc->run(service_name);
		exit(0);
	}
	watch_master_death();
	accept_loop(svc);
	exit(0);
}
