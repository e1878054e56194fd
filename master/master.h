/*
 * master.h - the supervisor's services and children.
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "daemon.h"

struct scoreboard_page;	/* mail/daemon_scoreboard.h */

struct master_listener {
	char *name;		/* endpoint text, e.g. "127.0.0.1:25" */
	int fd;
	bool proxy;		/* "proxy" followed it: PROXY protocol first */
	bool handoff;		/* screen passes clients here (handoff.h) */
};

struct master_service {
	const char *name;	/* "smtp", "submission", "lmtp", "qmgr"... */
	const char *program;	/* "smtpd" */
	char *path;		/* daemon_directory/program */
	bool enabled;		/* program exists and has listeners */
	bool single;		/* exactly one process (qmgr) */
	int max_procs;
	int min_idle;
	struct master_listener listeners[DAEMON_MAX_LISTENERS];
	size_t nlisteners;
	/* run-time state */
	int nprocs;		/* children of the current generation */
	int nidle;		/* of those: starting or idle */
	time_t throttled_until;
	bool throttle_logged;
	bool busy_logged;	/* master_busy.c: this episode is logged */
	long long full_since_ms; /* master_busy.c: full since (monotonic), or 0 */
	bool stressed;		/* master_stress.c: its processes were told */
	/* master_zygote.c: workers are cloned from a zygote */
	bool zygote_wanted;
	struct master_child *zygote;	/* NULL: none running */
	time_t zygote_throttled_until;
	/* master_scoreboard.c: the workers' busy/idle page */
	struct scoreboard_page *sb;	/* NULL: none, the pipe says all */
	int sb_fd;
	size_t sb_slots;
	int sb_starting;		/* children not yet ready */
	int sb_logged_procs, sb_logged_busy;	/* last logged counts */
};

struct master_child {
	pid_t pid;
	struct master_service *svc;	/* NULL once the service is retired */
	unsigned int generation;
	int state;			/* enum daemon_state, 0 while starting */
	time_t started;
	/* master_zygote.c: this child is its service's zygote (never a
	 * worker: not in nprocs or nidle), and master's end of its socket */
	bool zygote;
	int zygote_fd;
	bool cloned;		/* a worker made by the zygote */
	size_t sb_slot;		/* master_scoreboard.c: where its slot was */
	struct master_child *next;
};

/* master_service.c */
bool master_services_setup(struct master_service **services, size_t *count,
    struct master_service *old, size_t old_count, char *err, size_t errsize);
void master_services_close(struct master_service *services, size_t count);
void master_spawn_needed(struct master_service *services, size_t count,
    unsigned int generation, int status_fd, int alive_fd);
void master_reap(void);
void master_status_record(const struct daemon_status *st);
struct master_child *master_children(void);
size_t master_child_count(void);
void master_signal_children(int sig);
void master_forget_services(void);
/* The TLS session ticket keys smtpd processes share (mail/tls_ticket.h):
 * made at start, rotated every smtpd_tls_ticket_rotation. */
void master_tls_tickets_init(void);
void master_tls_tickets_rotate(void);

/* master_service.c, for master_zygote.c */
struct master_child *master_child_add(pid_t pid, struct master_service *s,
    unsigned int generation);
pid_t master_fork_exec(struct master_service *s, unsigned int generation,
    int status_fd, int alive_fd, int zygote_fd);

/*
 * master_zygote.c: one zygote per accept service (mail/daemon_zygote.c)
 * that makes its workers on request; fork+exec stays the fallback.
 */
bool master_zygote_supported(const struct master_service *s);
void master_zygote_ensure(struct master_service *s, unsigned int generation,
    int status_fd, int alive_fd);
pid_t master_zygote_spawn(struct master_service *s);
/* A new zygote has not said READY yet (for a short while): its
 * service's spawns wait; its socket is among master's pollfds. */
bool master_zygote_starting(const struct master_service *s);
size_t master_zygote_pollfds(struct master_service *services, size_t count,
    struct pollfd *pfds, size_t max);
void master_zygote_reaped(struct master_child *c, int status);
void master_zygote_worker_reaped(struct master_child *c, int status);
void master_zygote_forget(struct master_child *c);

/*
 * master_scoreboard.c: the accept services' busy/idle pages
 * (mail/daemon_scoreboard.h). create/close with the service table; pass
 * in a child before exec; sync sets each child's state and every
 * service's nidle from the pages and the status records (call it before
 * deciding anything on nidle); want_idle marks a service full (true when
 * that is new: sync again); release frees a reaped child's slot.
 */
void master_scoreboard_create(struct master_service *s);
void master_scoreboard_close(struct master_service *s);
int master_scoreboard_pass(const struct master_service *s, int next_fd);
void master_scoreboard_sync(struct master_service *services, size_t count);
bool master_scoreboard_want_idle(struct master_service *s, bool want);
void master_scoreboard_release(struct master_child *c);

/*
 * master_status.c: run_directory/master.status, the accept services'
 * processes and busy counts for `postern status`. update after a sync
 * (it writes only on a change, at most once a second); remove at exit.
 */
void master_status_update(int run_dir_fd, const struct master_service
    *services, size_t count);
void master_status_remove(int run_dir_fd);

/* master_notify.c */
void master_notify(const char *state);

/*
 * master_busy.c: while an smtpd service has all its processes busy,
 * master answers its listeners itself with 421 4.3.2 (nothing is read).
 */
size_t master_busy_pollfds(struct master_service *services, size_t count,
    struct pollfd *pfds, struct master_listener **owners, size_t max,
    int *timeout_ms);
void master_busy_events(struct master_service *services, size_t count,
    struct pollfd *pfds, struct master_listener **owners, size_t n);

/* master_stress.c: the service is full (or no longer): tell its busy
 * processes, once per episode, to shorten their timeouts. */
void master_stress_update(struct master_service *s, bool full);

/* master_statedir.c: make the directories of smtpd_greylist_database
 * and screen_cache_map. */
void master_state_dirs_prepare(void);

/* master_limits.c: raise RLIMIT_NOFILE as open_file_limit says, at
 * start, for master and every process it starts. */
void master_limits_raise(void);

#endif
