/*
 * daemon_zygote.c - the zygote of an accept service: one process per
 * service and generation that master execs once, that loads what every
 * worker loads before it knows who it will be (the dynamic loader's
 * relocations of every library, the config), and that then makes the
 * workers, by clone(CLONE_PARENT), when master asks. A worker made so is
 * master's child as one master forked and exec'd would be (status pipe,
 * waitpid, PR_SET_PDEATHSIG, max_use, reload and stop all unchanged),
 * but its relocated pages are the zygote's, shared until written: no
 * exec, no relocation, no config parse per worker (issue 20).
 *
 * Why clone(CLONE_PARENT) and not a double fork under a subreaper: the
 * worker's parent is master from its first instruction, so master reaps
 * it with the same waitpid, its SIGCHLD is master's, and the
 * PR_SET_PDEATHSIG the skeleton sets names master; with a double fork
 * the worker would first be the zygote's child and reach master only by
 * reparenting, after which PDEATHSIG no longer names master and a
 * worker that died before the reparenting would be the zygote's zombie.
 *
 * clone() by syscall runs no fork handlers, and glibc has no wrapper that
 * takes CLONE_PARENT without a new stack. What that leaves in the child:
 * glibc's thread descriptor keeps the zygote's tid, which only
 * priority-inheritance and robust mutexes and pthread_kill of another
 * thread use (nothing here; raise() asks the kernel for the tid); the
 * zygote is single-threaded and holds no lock when it clones, so malloc
 * and stdio are consistent; util/log.c's cached pid is made again by
 * log_init(), as log.h asks of a raw clone. OpenSSL and everything with a
 * random state are initialised after the clone, in the worker.
 *
 * Trusts: master, the only peer of its request socket (a socketpair
 * master made and passed by descriptor, never a path); it never reads
 * what a client sends: it accepts nothing, and holds only what a worker
 * holds before its pre_drop hook (root, the config, master's fds).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/sched.h>

#include "daemon.h"
#include "log.h"

int daemon_zygote_fd(void)
{
	const char *v = getenv(DAEMON_ZYGOTE_ENV);
	if (v == NULL || *v == '\0')
		return -1;
	char *end;
	long fd = strtol(v, &end, 10);
	if (*end != '\0' || fd < DAEMON_LISTEN_FD_START || fd > 1024)
		log_fatal("bad %s", DAEMON_ZYGOTE_ENV);
	return (int)fd;
}

static void zygote_send(int fd, int kind, pid_t pid, int err)
{
	struct daemon_zygote_msg m = { .kind = kind, .pid = pid, .err = err };
	if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m))
		exit(0);	/* master is gone, or replaced us */
}

/* One worker, master's child; 0 in the worker, as fork(). */
static pid_t zygote_clone(void)
{
	/* The child's exit signal is the zygote's own (SIGCHLD, as master
	 * forked it): the kernel takes it for CLONE_PARENT. */
	return (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD),
	    NULL, NULL, NULL, 0UL);
}

void daemon_zygote_serve(int fd, const char *program, int helper_fd)
{
	pid_t master = getppid();
	char name[16];

	/* Told apart from its workers in ps and /proc (PR_SET_NAME keeps
	 * 15 bytes); each worker takes the program's name back. */
	snprintf(name, sizeof(name), "%s-zygote", program);
	prctl(PR_SET_NAME, name, 0, 0, 0);

	/* Gone with master, as its workers are. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		log_fatal("prctl(PR_SET_PDEATHSIG): %m");
	if (getppid() != master)
		exit(0);
	zygote_send(fd, DAEMON_ZYGOTE_READY, getpid(), 0);
	log_debug("zygote ready");
	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = DAEMON_ALIVE_FD, .events = POLLIN },
			{ .fd = helper_fd, .events = POLLIN },
		};
		if (poll(pfd, helper_fd >= 0 ? 3 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %m");
		}
		/* The alive pipe at EOF: master stops or reloads. */
		if (pfd[1].revents)
			exit(0);
		/* Its helper (smtpd's door zygote) is gone: the workers made
		 * now could not start, so this generation ends here, loudly,
		 * and master starts a new zygote and helper. */
		if (helper_fd >= 0 && pfd[2].revents) {
			log_warning("zygote: its helper process is gone: "
			    "exiting, to be replaced");
			exit(1);
		}
		struct daemon_zygote_msg m;
		ssize_t n = recv(fd, &m, sizeof(m), 0);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			exit(0);	/* master closed our socket */
		if (n < 0)
			continue;
		if (n != (ssize_t)sizeof(m) || m.kind != DAEMON_ZYGOTE_SPAWN)
			log_fatal("zygote: bad request from master");
		/* Nothing buffered may be written twice. */
		fflush(NULL);
		pid_t pid = zygote_clone();
		if (pid == 0) {
			close(fd);
			prctl(PR_SET_NAME, program, 0, 0, 0);
			return;
		}
		if (pid < 0)
			log_warning("zygote: clone: %m");
		zygote_send(fd, DAEMON_ZYGOTE_SPAWNED, pid < 0 ? -1 : pid,
		    pid < 0 ? errno : 0);
	}
}
