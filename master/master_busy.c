/*
 * master_busy.c - the answer for SMTP clients that find every smtpd
 * process busy: when a service of smtpd has smtpd_processes processes
 * and none is idle, master itself accepts the connections that would
 * otherwise wait unseen in the listen backlog, writes "421 4.3.2 Service
 * currently unavailable" (RFC 5321 3.8, RFC 3463 X.3.2) and closes, so
 * that the client tries again later or another MX at once. Only once the
 * service has been full for BUSY_GRACE_MS: a client per message at the
 * process limit fills it for a moment each time a session ends, and a
 * process that turns idle within the grace takes the waiting client
 * from the backlog, as Postfix's would.
 *
 * Trusts: nothing from the connection, and reads nothing from it: master
 * parses no network input. The reply is a fixed string written once to
 * a fresh, non-blocking socket (its send buffer is empty), never waited
 * on.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "sock.h"

static const char busy_reply[] = "421 4.3.2 Service currently unavailable\r\n";

#define BUSY_GRACE_MS 1000

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Services of smtpd at their limit with no idle process. */
static bool service_full(const struct master_service *s)
{
	return s->enabled && !s->single && strcmp(s->program, "smtpd") == 0 &&
	    s->nprocs >= s->max_procs && s->nidle <= 0 &&
	    s->throttled_until == 0;
}

size_t master_busy_pollfds(struct master_service *services, size_t count,
    struct pollfd *pfds, struct master_listener **owners, size_t max,
    int *timeout_ms)
{
	size_t n = 0;
	long long now = monotonic_ms();
	for (size_t i = 0; i < count; i++) {
		struct master_service *s = &services[i];
		/* A full service's workers report going idle at once
		 * (master_scoreboard.c); marking it may race with one that
		 * just did: look again after the mark. */
		if (master_scoreboard_want_idle(s, service_full(s)))
			master_scoreboard_sync(services, count);
		if (s->enabled && strcmp(s->program, "smtpd") == 0)
			master_stress_update(s, service_full(s));
		if (!service_full(s)) {
			s->busy_logged = false;	/* the episode is over */
			s->full_since_ms = 0;
			continue;
		}
		if (s->full_since_ms == 0)
			s->full_since_ms = now;
		long long wait = s->full_since_ms + BUSY_GRACE_MS - now;
		if (wait > 0) {
			/* Within the grace: newcomers wait in the backlog;
			 * look again when it ends. */
			if (wait < *timeout_ms)
				*timeout_ms = (int)wait;
			continue;
		}
		for (size_t j = 0; j < s->nlisteners && n < max; j++) {
			pfds[n] = (struct pollfd){ .fd = s->listeners[j].fd,
			    .events = POLLIN };
			owners[n++] = &s->listeners[j];
		}
	}
	return n;
}

void master_busy_events(struct master_service *services, size_t count,
    struct pollfd *pfds, struct master_listener **owners, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (!(pfds[k].revents & POLLIN))
			continue;
		struct master_service *s = NULL;
		for (size_t i = 0; i < count && s == NULL; i++)
			if (owners[k] >= services[i].listeners && owners[k] <
			    services[i].listeners + services[i].nlisteners)
				s = &services[i];
		/* The status records read meanwhile may say a process is
		 * free again: it takes the connection. */
		if (s == NULL || !service_full(s))
			continue;
		/* A few at a time: the loop comes back at once if more wait,
		 * and a process that turns idle takes the next. */
		for (int taken = 0; taken < 64; taken++) {
			struct sockaddr_storage peer;
			socklen_t len = sizeof(peer);
			int fd = accept4(pfds[k].fd, (struct sockaddr *)&peer,
			    &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0)
				break;
			ssize_t w = send(fd, busy_reply, sizeof(busy_reply) - 1,
			    MSG_NOSIGNAL);
			(void)w;
			/* FIN after the reply, so the client reads it. */
			shutdown(fd, SHUT_WR);
			close(fd);
			if (!s->busy_logged) {
				char addr[64];
				int port;
				sock_addr_format((struct sockaddr *)&peer, addr,
				    sizeof(addr), &port);
				log_warning("service %s: all %d processes are "
				    "busy: 421 4.3.2 to [%s] and the others "
				    "until one is free", s->name, s->max_procs,
				    addr);
				s->busy_logged = true;
			}
		}
	}
}
