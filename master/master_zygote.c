/*
 * master_zygote.c - master's side of the zygotes (mail/daemon_zygote.c):
 * for each accept service that supports it, one process exec'd once per
 * generation, which clones the service's workers when master asks, so
 * that a worker costs a clone() instead of fork, exec, the dynamic
 * loader's relocations and a config parse, and shares the relocated
 * pages of every library with its siblings (issue 20).
 *
 * A worker cloned so is master's child (CLONE_PARENT): master records
 * it as one it forked, and its status records, reaping, throttling,
 * max_use, reload and stop are those of any worker. The zygote itself is
 * in master's child list, marked, outside nprocs and nidle. It is
 * master never waits for a zygote to start: it polls the socket of one
 * that has not said READY, holds its service's spawns for up to
 * ZYGOTE_READY_WAIT_S, and forks and execs them after that. It is
 * replaced when it dies, at the next round of spawns; one that dies
 * before it said it was ready is a broken start: workers are then
 * fork+exec'd for service_throttle_time, as they are whenever the zygote
 * cannot answer.
 *
 * Trusts: the zygote's answers only as far as they go: a pid it names
 * becomes a child record, and a pid that is not our child is never
 * reaped, so it could at worst hold a worker slot until the next reload.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "master.h"

/* How long master waits for a worker's pid: a zygote that has not
 * answered by then is stuck, and is replaced. */
#define ZYGOTE_ANSWER_MS 5000

/* How long a service waits for its new zygote's READY before master
 * forks and execs its workers after all (seconds). */
#define ZYGOTE_READY_WAIT_S 2

/* Master's descriptors live above the ones it hands to children. */
#define ZYGOTE_FD_FLOOR 64

bool master_zygote_supported(const struct master_service *s)
{
	if (!cfg.process_zygote || s->single)
		return false;
	/* Accept servers whose start-up runs in the daemon skeleton
	 * (mail/daemon.c), before anything of the worker's own. */
	return strcmp(s->program, "smtpd") == 0 ||
	    strcmp(s->program, "lmtpd") == 0 ||
	    strcmp(s->program, "deliver") == 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Master is done with this zygote: it sees EOF on its socket and exits;
 * the record stays until it is reaped. */
void master_zygote_forget(struct master_child *c)
{
	if (c->svc != NULL && c->svc->zygote == c)
		c->svc->zygote = NULL;
	if (c->zygote_fd >= 0)
		close(c->zygote_fd);
	c->zygote_fd = -1;
}

/* A zygote that fails before it was ready would fail again at once. */
static void zygote_throttle(struct master_service *s)
{
	s->zygote_throttled_until = time(NULL) + cfg.service_throttle_time;
	log_warning("service %s: its zygote fails at start-up -- workers "
	    "are started by fork and exec for %llds", s->name,
	    cfg.service_throttle_time);
}

static void zygote_drop(struct master_child *c, const char *why)
{
	struct master_service *s = c->svc;
	log_warning("service %s: zygote %ld %s: replaced", s->name,
	    (long)c->pid, why);
	kill(c->pid, SIGKILL);
	if (c->state == 0)
		zygote_throttle(s);
	master_zygote_forget(c);
	c->svc = NULL;
}

/*
 * One message from the zygote, waiting until deadline_ms (0: do not
 * wait). 1: got one, 0: none yet, -1: the zygote is gone or broken.
 */
static int zygote_read(struct master_child *c, struct daemon_zygote_msg *m,
    long long deadline_ms)
{
	for (;;) {
		ssize_t n = recv(c->zygote_fd, m, sizeof(*m), MSG_DONTWAIT);
		if (n == (ssize_t)sizeof(*m))
			return 1;
		if (n >= 0)
			return -1;	/* EOF, or not one of our messages */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		long long left = deadline_ms - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = { .fd = c->zygote_fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -1;
	}
}

/* Note a READY the zygote sent, without waiting. */
static bool zygote_take_ready(struct master_child *c)
{
	struct daemon_zygote_msg m;
	int r;
	while ((r = zygote_read(c, &m, 0)) == 1) {
		if (m.kind != DAEMON_ZYGOTE_READY)
			return false;
		c->state = DAEMON_READY;
	}
	return r == 0;
}

void master_zygote_ensure(struct master_service *s, unsigned int generation,
    int status_fd, int alive_fd)
{
	if (!s->zygote_wanted)
		return;
	if (s->zygote != NULL) {
		if (s->zygote->state == 0 && !zygote_take_ready(s->zygote))
			zygote_drop(s->zygote, "sent a bad message or is gone");
		return;
	}
	if (s->zygote_throttled_until > time(NULL))
		return;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warning("service %s: socketpair: %m", s->name);
		return;
	}
	/* Above what exec_child dup2()s into 3.., as master's own fds. */
	int mine = fcntl(sv[0], F_DUPFD_CLOEXEC, ZYGOTE_FD_FLOOR);
	int theirs = fcntl(sv[1], F_DUPFD_CLOEXEC, ZYGOTE_FD_FLOOR);
	close(sv[0]);
	close(sv[1]);
	if (mine < 0 || theirs < 0) {
		log_warning("service %s: fcntl: %m", s->name);
		if (mine >= 0)
			close(mine);
		if (theirs >= 0)
			close(theirs);
		return;
	}
	pid_t pid = master_fork_exec(s, generation, status_fd, alive_fd,
	    theirs);
	close(theirs);
	if (pid < 0) {
		close(mine);
		return;
	}
	struct master_child *c = master_child_add(pid, s, generation);
	c->zygote = true;
	c->zygote_fd = mine;
	s->zygote = c;
	log_debug("service %s: started %s pid %ld as its zygote", s->name,
	    s->path, (long)pid);
}

bool master_zygote_starting(const struct master_service *s)
{
	const struct master_child *c = s->zygote;
	return c != NULL && c->state == 0 &&
	    time(NULL) - c->started < ZYGOTE_READY_WAIT_S;
}

size_t master_zygote_pollfds(struct master_service *services, size_t count,
    struct pollfd *pfds, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < count && n < max; i++) {
		struct master_child *c = services[i].zygote;
		/* What is there already is taken now: a READY left unread
		 * would make poll return at once, round after round. */
		if (c != NULL && c->state == 0 && !zygote_take_ready(c))
			zygote_drop(c, "sent a bad message or is gone");
		c = services[i].zygote;
		if (c != NULL && c->state == 0) {
			pfds[n].fd = c->zygote_fd;
			pfds[n].events = POLLIN;
			pfds[n].revents = 0;
			n++;
		}
	}
	return n;
}

pid_t master_zygote_spawn(struct master_service *s)
{
	struct master_child *c = s->zygote;
	struct daemon_zygote_msg m = { .kind = DAEMON_ZYGOTE_SPAWN };

	if (c == NULL || c->state != DAEMON_READY)
		return -1;	/* not there, or not yet: fork and exec */
	if (send(c->zygote_fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) !=
	    (ssize_t)sizeof(m)) {
		zygote_drop(c, "does not take requests");
		return -1;
	}
	/* The worker's pid before anything else: master must know it
	 * before it reaps, however short the worker's life. The zygote is
	 * ready and waits for this: the answer is a clone away. */
	long long deadline = now_ms() + ZYGOTE_ANSWER_MS;
	int r = zygote_read(c, &m, deadline);
	if (r <= 0) {
		zygote_drop(c, r == 0 ? "does not answer" : "is gone");
		return -1;
	}
	if (m.kind != DAEMON_ZYGOTE_SPAWNED) {
		zygote_drop(c, "sent a bad message");
		return -1;
	}
	if (m.pid > 0)
		return m.pid;
	log_warning("service %s: zygote %ld: clone: %s", s->name,
	    (long)c->pid, strerror(m.err));
	return -1;
}

void master_zygote_reaped(struct master_child *c, int status)
{
	struct master_service *s = c->svc;
	if (s == NULL || s->zygote != c)
		return;		/* retired or replaced: expected */
	if (WIFSIGNALED(status))
		log_warning("service %s: zygote %ld killed by signal %d",
		    s->name, (long)c->pid, WTERMSIG(status));
	else
		log_warning("service %s: zygote %ld exit status %d", s->name,
		    (long)c->pid, WEXITSTATUS(status));
	if (c->state == 0)
		zygote_throttle(s);
	master_zygote_forget(c);
}

/*
 * Every worker of a zygote has the zygote's address layout and stack
 * protector canary, where exec'd workers had each their own: an attacker
 * who crashes worker after worker could guess them a byte at a time.
 * A worker that crashed (killed by a signal neither master nor an admin
 * sends to stop it) makes master replace the zygote, so that the next
 * worker is laid out afresh.
 */
void master_zygote_worker_reaped(struct master_child *c, int status)
{
	struct master_service *s = c->svc;
	if (!WIFSIGNALED(status) || WTERMSIG(status) == SIGTERM ||
	    WTERMSIG(status) == SIGKILL || s->zygote == NULL)
		return;
	log_warning("service %s: zygote %ld: a worker it made was killed by "
	    "signal %d: replaced, so that the next worker is laid out anew",
	    s->name, (long)s->zygote->pid, WTERMSIG(status));
	kill(s->zygote->pid, SIGKILL);
	master_zygote_forget(s->zygote);
}
