/*
 * daemon.h - the skeleton every daemon that master starts runs inside.
 *
 * master forks and execs "PROGRAM -c CONFIGDIR -s SERVICE" (or clones it
 * from the service's zygote, below: the same process in every way) with:
 *   fd 3: write end of master's status pipe (struct daemon_status records)
 *   fd 4: read end of the "master alive" pipe: EOF means master is gone
 *         or wants this process to finish (reload, stop)
 *   fd 5..: listening sockets; POSTERN_LISTEN_FDS says how many
 *   (POSTERN_LISTEN_PROXY: one '1' or '0' each, "proxy" or not;
 *   POSTERN_LISTEN_HANDOFF: one '1' or '0' each, a Unix socket on which
 *   screen passes clients (mail/handoff.h), not a listener of clients)
 *   POSTERN_LISTEN_NAMES: their endpoint texts, separated by spaces
 *   POSTERN_SCOREBOARD_FD: accept services: the busy/idle page
 *   (daemon_scoreboard.h)
 * The skeleton loads the config, runs the service's pre_drop hook (still
 * root: open keys), drops privileges, runs init, and then either accepts
 * connections one at a time (serve) or hands over to run() for
 * long-running single processes such as qmgr. An accept server marks
 * itself busy or idle in its service's scoreboard (daemon_scoreboard.h),
 * which says when master must also hear it on fd 3, exits after max_use
 * connections, after max_idle without work, and when master goes away
 * (after finishing the connection in hand). If master dies (kill -9), an accept server lets go
 * of its listening sockets at once, even mid-session, so that a new
 * master can bind the same addresses while old sessions finish.
 *
 * Signals: SIGINT is ignored (a terminal's Ctrl-C reaches the whole
 * process group; master alone decides how its children stop).
 */
#ifndef POSTERN_DAEMON_H
#define POSTERN_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#define DAEMON_STATUS_FD 3
#define DAEMON_ALIVE_FD 4
#define DAEMON_LISTEN_FD_START 5
#define DAEMON_MAX_LISTENERS 32

enum daemon_state {
	DAEMON_READY = 1,	/* initialised, accepting */
	DAEMON_BUSY,		/* serving a connection */
	DAEMON_IDLE,		/* back to accepting */
};

/* One record on the status pipe; small enough to be written atomically. */
struct daemon_status {
	pid_t pid;
	int state;		/* enum daemon_state */
	unsigned int generation;
};

struct daemon_conn {
	int fd;
	const char *service;		/* "smtp", "submission", "smtps", ... */
	const char *listener;		/* endpoint text it arrived on */
	/* The listener is marked "proxy": a PROXY protocol header comes
	 * first, and the peer below is the proxy until it is read. */
	bool proxy;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct sockaddr_storage local;
	socklen_t local_len;
	bool peer_is_unix;
	char peer_addr[64];		/* "192.0.2.7", "::1", "unix" */
	int peer_port;
	/* Unix sockets: the client's uid from SO_PEERCRED (who injected
	 * this, for logs and Received); (uid_t)-1 on TCP or if unknown. */
	uid_t peer_uid;
	/* Passed on by screen (mail/handoff.h): the client has had its
	 * 220 greeting, and preread holds what it sent after it. */
	bool greeted;
	const char *preread;
	size_t preread_len;
};

struct daemon_service {
	const char *program;		/* "smtpd" */
	bool run_as_mailbox_owner;	/* lmtpd; others run as cfg.user */
	bool run_as_smtpd_user;		/* smtpd's network worker */
	/* local: keeps root and becomes each recipient in a child of
	 * its own, as Postfix's local(8) does; see doc/architecture.md,
	 * "Local delivery to system users". */
	bool keep_root;
	/* Its Landlock rules follow from the config alone, not from what
	 * pre_drop or init make: its zygote builds the ruleset once and
	 * each worker only enforces it (daemon_confine_prepare). */
	bool confine_from_zygote;
	/* In a zygote, before it serves (root, if started so): start what
	 * every worker it makes will ask (smtpd's door zygote). Returns a
	 * descriptor that reads end of file or hangs up when that is gone:
	 * the zygote then exits, and master starts a new one. May be NULL. */
	int (*zygote_start)(const char *service);
	/* Still root (if started so): open private keys, etc. May be NULL. */
	void (*pre_drop)(const char *service);
	/* After privileges are dropped. May be NULL. */
	void (*init)(const char *service);
	/* Accept server: serve one connection; the skeleton closes fd. */
	void (*serve)(struct daemon_conn *conn);
	/* Long-running process (serve == NULL): never returns normally. */
	void (*run)(const char *service);
};

int daemon_main(int argc, char **argv, const struct daemon_service *svc)
    __attribute__((noreturn));

/* For run() services: the inherited listening sockets. */
size_t daemon_listener_count(void);
int daemon_listener_fd(size_t i);
const char *daemon_listener_name(size_t i);
/* Was listener i marked "proxy" (a PROXY protocol header comes first)? */
bool daemon_listener_proxy(size_t i);
/* fd that becomes readable (EOF) when master is gone or asks us to stop. */
int daemon_alive_fd(void);
/* True once master has gone away or asked us to stop (non-blocking). */
bool daemon_stop_requested(void);
/*
 * An accept server's helper process (smtpd's door) is gone when fd
 * becomes readable: the accept loop then exits as when master asks it
 * to, after the connection in hand. One such fd.
 */
void daemon_watch_fd(int fd);
/* The service name given with -s. */
const char *daemon_service_name(void);

/*
 * daemon_zygote.c: master may exec an accept service once as its zygote
 * (POSTERN_ZYGOTE_FD names the zygote's end of a SOCK_SEQPACKET
 * socketpair with master); the zygote loads the config and then makes
 * each worker by clone(CLONE_PARENT) on master's request, so that the
 * worker is master's child and skips exec, relocation and the config
 * parse. Messages are struct daemon_zygote_msg, one per packet: the
 * zygote sends READY once (pid: its own), master sends SPAWN, the zygote
 * answers SPAWNED (pid: the worker's, or -1 and err).
 */
#define DAEMON_ZYGOTE_ENV "POSTERN_ZYGOTE_FD"

enum daemon_zygote_kind {
	DAEMON_ZYGOTE_READY = 1,
	DAEMON_ZYGOTE_SPAWN,
	DAEMON_ZYGOTE_SPAWNED,
};

struct daemon_zygote_msg {
	int kind;		/* enum daemon_zygote_kind */
	pid_t pid;
	int err;		/* errno of a failed SPAWN */
};

/* The zygote's request socket, or -1 in a process started normally. */
int daemon_zygote_fd(void);
/* Serve master's requests; returns only in a new worker (fd closed).
 * The zygote is named "PROGRAM-zygote" in ps; the worker PROGRAM. It
 * exits when helper_fd (-1: none) hangs up or becomes readable. */
void daemon_zygote_serve(int fd, const char *program, int helper_fd);

/*
 * daemon_confine.c: confine this process to what program's job needs
 * (Landlock and seccomp; the model is at the top of that file). The
 * skeleton calls it after init; fatal if it cannot be installed.
 */
void daemon_confine(const char *program);
/*
 * In a zygote, before its first clone: build program's Landlock ruleset
 * now, so that daemon_confine() in each worker enforces it (and closes
 * the worker's descriptor of it) instead of building its own. The
 * zygote keeps the ruleset; it reads no network input.
 */
void daemon_confine_prepare(const char *program);
/* For master: warn once if the kernel cannot confine the daemons. */
void daemon_confine_probe(void);
/*
 * The one program this process may exec once confined: fd is open
 * (O_PATH) on it, made before daemon_confine(), which lets exactly that
 * through (execveat on fd with AT_EMPTY_PATH; Landlock's execute right
 * on the file and its loader). deliver's mtasts-fetch.
 */
void daemon_confine_exec(int fd);

#endif
