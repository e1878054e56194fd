/*
 * qmgr.h - the queue manager's internal interfaces, shared by the files of
 * qmgr/ only.
 *
 * qmgr is one long-lived process with a poll() loop. Its in-memory state
 * is a cache of the queue files: everything that matters survives in the
 * files (recipient status bytes, expansion and reason records, the
 * deferred file's mtime as its next-try time), so a restart rebuilds it
 * from the queue directories. Objects:
 *
 *   qmsg   one message in active/, with a per-recipient outcome of the
 *          current attempt and a count of its unfinished jobs
 *   qjob   some recipients of one message for one destination
 *   qdest  a destination (transport + nexthop): queue of jobs, concurrency
 *          window, dead/alive state
 *   qconn  a connection to a deliver process: the job it works on, and
 *          under a backlog up to two more of the same destination behind
 *          it, sent ahead so that deliver finds them already read
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <poll.h>
#include <time.h>

#include "map.h"
#include "queue.h"
#include "str.h"

/* Recipients per SMTP job (Postfix's default_destination_recipient_limit);
 * an LMTP job carries all local recipients of a message. */
#define QMGR_SMTP_RCPT_LIMIT 50
/* Alias chains deeper than this are treated as loops (RFC 5321 6.3). */
#define QMGR_EXPAND_DEPTH 20
/* No message grows beyond this many recipients through expansion. */
#define QMGR_EXPAND_MAX_RCPTS 10000
/* Returned in full when RET is not given and the content is this small. */
#define QMGR_BOUNCE_FULL_LIMIT 50000

/* poll() set size, and the deliver connections that fit in it beside
 * the control clients. */
#define QMGR_MAX_POLLFDS 4096
#define QMGR_MAX_DELIVER_CONNS (QMGR_MAX_POLLFDS - 128)
/* Jobs on one deliver connection at most: the one in hand and two sent
 * behind it under a backlog. More would only make a job wait behind a
 * slow one while another connection may come free. */
#define QMGR_CONN_JOBS 3

/* ---- time (qmgr.c) ---- */

/* Monotonic milliseconds, for timers. */
long long qmgr_now_ms(void);

/* ---- messages (qmgr_message.c) ---- */

/* The outcome of one recipient in the current attempt. */
struct qoutcome {
	char what;		/* 0 not yet, 'S' sent, 'B' bounce, 'D' deferred */
	char *dsn;		/* "5.1.1" */
	char *text;		/* the diagnostic */
	char *remote_mta;	/* "mx.example.net" or NULL */
	/* 'S' in memory, its status byte not yet in the file: the
	 * message's last result (qmgr_message_results), written by
	 * finish() only if the file stays. */
	bool unwritten;
};

struct qmsg {
	char id[QUEUE_ID_SIZE];
	struct queue_envelope env;
	struct qoutcome *out;	/* one per env.rcpts entry */
	size_t out_cap;
	size_t jobs_pending;	/* jobs queued or in flight */
	bool unsynced;		/* results written but not yet fsync'd */
	double active_wall;	/* when it entered active (for delays=) */
	bool hold_requested;	/* to hold/ once its jobs are back */
	/* active/ID, opened at activation and kept until the message is
	 * finished, so that its jobs' results and the finish share that
	 * open (qmgr_message.c, msg_keep_fd); beyond a budget of open
	 * files, -1 between jobs and reopened for each result. */
	int fd;
	struct qmsg *prev, *next;	/* the active messages */
};

extern size_t qmgr_active_count;

/*
 * Take the message <id> that is already in active/: read it, resolve
 * and expand its recipients and queue its jobs. Files that do not parse
 * go to corrupt/.
 */
void qmgr_message_activate(const char *id);
/* Make msg->out as long as msg->env.rcpts (after expansion). */
void qmgr_message_grow(struct qmsg *msg);
/* Decide recipient i's outcome without a delivery attempt (expansion
 * errors); recorded with the other results at activation. */
void qmgr_message_decide(struct qmsg *msg, size_t i, char what,
    const char *dsn, const char *text);
/* Set a status byte in the file and in memory. */
bool qmgr_message_set_status(struct qmsg *msg, int fd, size_t i, char st);

/* One recipient's result of an attempt. */
struct qresult {
	size_t rcpt;		/* recipient number */
	char what;		/* 'S', 'B' or 'D' */
	const char *dsn;	/* "5.1.1" */
	const char *text;	/* diagnostic */
};

/*
 * Record results in the queue file before anything acts on them: S (after
 * a success DSN if one was asked for) and the Z reason of D are written
 * (fsync'd when the message stays in the queue, see qmgr_message.c); B
 * waits in memory until the message is finished, when one bounce covers
 * all of them and only then are they marked F. transport and dsn_passed
 * say which success DSN applies (RFC 3461 5.2): "lmtp" is a final
 * delivery ("delivered"); an SMTP peer that took the DSN parameters
 * reports itself (none from us); one without DSN gets "relayed". log_it:
 * qmgr decided these itself, so it logs the to= lines (deliver logs its
 * own).
 */
void qmgr_message_results(struct qmsg *msg, const struct qresult *r,
    size_t n, const char *transport, bool dsn_passed, const char *relay,
    const char *remote_mta, bool log_it);
/* Route the pending recipients from number from on: schedule their
 * jobs, record the outcome of those that cannot be routed. */
void qmgr_message_route_pending(struct qmsg *msg, size_t from);
/* One of the message's jobs is over; finishes the message after the last. */
void qmgr_message_job_done(struct qmsg *msg);
const char *qmgr_notify_letters(unsigned notify, char *buf, size_t size);
/* Seconds since arrival, for log lines. */
double qmgr_message_delay(const struct qmsg *msg);
/* The address an alias expansion of recipient i started from (the first
 * of its chain), for orig_to=; NULL if i was not expanded. */
const char *qmgr_message_orig_rcpt(const struct queue_envelope *env,
    size_t i);

enum qmgr_hold_result {
	QMGR_HOLD_DONE,		/* moved to hold/ now */
	QMGR_HOLD_LATER,	/* jobs in flight: moved when they are back */
	QMGR_HOLD_NOT_ACTIVE,	/* not in active/ (errno set) */
};
/*
 * "postern queue hold" for a message in active/: qmgr owns those files,
 * and a delivery in flight must have its result recorded in the file
 * before it leaves active/, or a release would deliver it again.
 */
enum qmgr_hold_result qmgr_message_hold(const char *id);
/* Stopping: the messages whose hold waited for their jobs go now. */
void qmgr_message_hold_on_exit(void);

/* ---- recipient resolution (qmgr_resolve.c) ---- */

struct qroute {
	enum { ROUTE_DELIVER, ROUTE_BOUNCE, ROUTE_DEFER } kind;
	char transport[8];	/* "smtp", "lmtp" */
	char *nexthop;		/* malloc'd */
	char dsn[16];		/* for BOUNCE/DEFER */
	char *text;		/* for BOUNCE/DEFER, malloc'd */
};

void qmgr_resolve_init(void);
void qmgr_route_free(struct qroute *r);
/* Where does this (already expanded) recipient go? */
void qmgr_resolve_route(const char *address, struct qroute *route);
/* Bounce: a filter of non_smtpd_milters rejected the message (pickup). */
void qmgr_resolve_rejected(const char *reply, struct qroute *route);
bool qmgr_is_local_address(const char *address);
/*
 * Expand aliases (virtual_alias_maps for every recipient, alias_maps for
 * local ones), recording the expansions in the queue file (fd) before the
 * parents are marked expanded. Recipients whose expansion fails get an
 * outcome (bounce or defer). false if the file could not be updated.
 */
bool qmgr_resolve_expand(struct qmsg *msg, int fd);
/* Does recipient i repeat the address of one of its ancestors (an alias
 * or .forward that keeps a copy for itself)? It is then delivered as is. */
bool qmgr_resolve_names_ancestor(const struct queue_envelope *env,
    size_t i);
/*
 * The local agent expanded recipient parent (.forward, or an alias with
 * commands or files) into these addresses: append them as its children,
 * fsync, write its bounce when fail_dsn says a command or file of it
 * failed for good, mark it expanded, then expand, route and schedule the
 * children. false when the file could not be updated (nothing marked).
 */
bool qmgr_resolve_adopt(struct qmsg *msg, size_t parent,
    char *const *targets, size_t count, const char *fail_dsn,
    const char *fail_text);

/* ---- scheduling (qmgr_sched.c) ---- */

struct qdest;
struct qconn;

struct qjob {
	struct qmsg *msg;
	struct qdest *dest;
	size_t *rcpts;		/* recipient numbers */
	size_t nrcpts;
	size_t cap;
	struct qjob *next;	/* in the destination's queue */
	long long started_ms;	/* the agent began it (for job times) */
};

/* Find or create the destination and append recipient i of msg to a job
 * for it (one job per message and destination, split for SMTP). */
void qmgr_sched_add(struct qmsg *msg, const char *transport,
    const char *nexthop, size_t i);
/* The message's jobs are complete: queue them. */
void qmgr_sched_commit(struct qmsg *msg);
/* Hand queued jobs to deliver connections while slots are free; the
 * jobs still waiting then go behind the current job of a connection
 * already working for their destination (qmgr_deliver_fill()). */
void qmgr_sched_dispatch(void);
/* The next queued job of d, for a connection that works for d (it goes
 * behind that connection's current job: d's window, which counts
 * connections, is unchanged), or NULL: none, or another destination
 * waits for a free deliver process. */
struct qjob *qmgr_sched_take_waiting(struct qdest *d);
/* The job behind another on its connection is now the one delivered
 * (its predecessor's end follows at once). */
void qmgr_sched_job_promoted(struct qjob *job);
/* A job came back (result parsed and recorded by the caller). */
void qmgr_sched_job_finished(struct qjob *job, bool nexthop_ok,
    bool nexthop_down, const char *down_dsn, const char *down_text);
/* The delivery agent failed (died, spoke nonsense, took too long): the
 * job's recipients are deferred, never bounced. */
void qmgr_sched_job_lost(struct qjob *job, const char *text);
void qmgr_job_free(struct qjob *job);
/* flush: forget dead destinations. */
void qmgr_sched_revive_all(void);
/* Work for timers: revive destinations whose dead time is over. */
long long qmgr_sched_timer(long long now_ms);
size_t qmgr_sched_queued_jobs(void);
const char *qmgr_dest_transport(const struct qdest *d);
const char *qmgr_dest_nexthop(const struct qdest *d);
const char *qmgr_dest_key(const struct qdest *d);
/* One destination as the metrics and the dashboard see it. */
struct qmgr_dest_view {
	const char *key;	/* "smtp:example.net" */
	int active;		/* jobs in flight */
	int limit;		/* its concurrency window now */
	size_t queued;		/* jobs waiting (also those sent behind
				 * another job on a connection) */
	bool dead;		/* suspended after failures */
	const char *dead_text;	/* why, or NULL */
	double job_seconds;	/* moving average of a job's time */
	unsigned long jobs;	/* jobs finished since it was made */
};
void qmgr_sched_each(void (*fn)(void *arg, const struct qmgr_dest_view *v),
    void *arg);

/* ---- deliver connections (qmgr_deliver.c) ---- */

void qmgr_deliver_init(void);
/* A connection ready for a job to this destination key, or NULL. */
struct qconn *qmgr_deliver_get(const char *key);
/* Send job on conn, which has no job (takes ownership until the
 * result). */
void qmgr_deliver_start(struct qconn *conn, struct qjob *job);
/* Connections to deliver that work for a destination with jobs waiting
 * take the next of them behind their current one (at most
 * QMGR_CONN_JOBS in all per connection). */
void qmgr_deliver_fill(void);
/* Write the jobs dispatch queued (qmgr_deliver.c). */
void qmgr_deliver_flush(void);
/* poll() plumbing: add our fds, handle their events, timers. */
size_t qmgr_deliver_pollfds(struct pollfd *pfds, size_t max);
void qmgr_deliver_events(struct pollfd *pfds, size_t n);
long long qmgr_deliver_timer(long long now_ms);
void qmgr_deliver_close_all(void);
/* Jobs handed to agents whose results are still to come. */
size_t qmgr_deliver_in_flight(void);
/* Close the connections without a job (stopping: their agents may go). */
void qmgr_deliver_close_idle(void);

/* ---- queue scans and pickup (qmgr_scan.c) ---- */

void qmgr_scan_startup(void);
/* Ask for a scan of incoming/ soon. */
void qmgr_scan_wakeup(void);
/* The inotify watch on incoming/ for the poll set. */
size_t qmgr_scan_pollfds(struct pollfd *pfds, size_t room);
void qmgr_scan_events(const struct pollfd *pfds, size_t n);
/* Make every deferred message due now (flush). */
void qmgr_scan_flush(void);
/* Move due mail into active/ while the active queue has room (new mail
 * under a steady flow in batches, see qmgr_scan.c). */
void qmgr_scan_feed(void);
/* When the batch being gathered is due (0: none). */
long long qmgr_scan_gather_deadline(void);
long long qmgr_scan_timer(long long now_ms);
/* Move a message out of active/ into deferred/ with its next-try time. */
bool qmgr_scan_defer(const char *id, time_t next_try);

/* ---- bounces and other DSNs (qmgr_bounce.c) ---- */

enum qdsn_kind {
	QDSN_FAILED,		/* non-delivery: bounce */
	QDSN_DELAYED,		/* delay notice */
	QDSN_DELIVERED,		/* success: final delivery (LMTP) */
	QDSN_RELAYED,		/* success: handed to an MTA that may not
				 * report further */
};

struct qdsn_rcpt {
	size_t index;		/* recipient number in the original */
	const char *dsn;	/* "5.1.1" */
	const char *text;	/* the diagnostic */
	const char *remote_mta;	/* or NULL */
	enum qdsn_kind action;
};

/*
 * Write a DSN (RFC 3464) about msg for the given recipients into
 * incoming/. For ordinary mail it goes to the sender; for a DSN or mail
 * from <> it goes to postmaster (kind DOUBLE, non-delivery only); a DOUBLE
 * never produces another message. Returns false if it could not be
 * written (then the caller must not record the recipients as done); true
 * also when no message was needed.
 */
bool qmgr_bounce_write(struct qmsg *msg, enum qdsn_kind kind,
    const struct qdsn_rcpt *rcpts, size_t count);

/* ---- control socket (qmgr_ctl.c) ---- */

void qmgr_ctl_init(int listen_fd);
/* Stop serving: close the listener (the next qmgr's now) and the clients. */
void qmgr_ctl_stop(void);
size_t qmgr_ctl_pollfds(struct pollfd *pfds, size_t max);
void qmgr_ctl_events(struct pollfd *pfds, size_t n);
long long qmgr_ctl_timer(long long now_ms);

/* ---- metrics endpoint, metrics_listen (qmgr_metrics.c) ---- */

void qmgr_metrics_init(int listen_fd);
size_t qmgr_metrics_pollfds(struct pollfd *pfds, size_t max);
void qmgr_metrics_events(struct pollfd *pfds, size_t n);
long long qmgr_metrics_timer(long long now_ms);
/* What the counters count: a message entering active/, one recipient's
 * result ('S', 'D', 'B'), a notification queued. */
void qmgr_metrics_activated(void);
void qmgr_metrics_result(const struct qmsg *msg, size_t rcpt, char what,
    const char *transport, const char *dsn, const char *text);
void qmgr_metrics_notice(void);
/* The Prometheus text (also the control socket's type=metrics). */
void qmgr_metrics_text(struct str *out);
/* The control socket's answer to type=metrics (for postern top): the
 * text, and for root and our user the busiest and slowest destinations
 * and the recent rejects, deferrals and bounces. */
void qmgr_metrics_ctl(struct str *out, bool privileged);

/* ---- queue listing for any local user (qmgr_list.c) ---- */

struct qmgr_list;
/* Collect and sort the names of the listed messages (no file is read). */
struct qmgr_list *qmgr_list_start(void);
/*
 * Append the next QLIST_CHUNK type=entry messages to out, then type=end
 * after the last; false once type=end has been appended before.
 */
bool qmgr_list_more(struct qmgr_list *l, struct str *out);
void qmgr_list_free(struct qmgr_list *l);

/* ---- small helpers (qmgr_util.c) ---- */

/* A set of lowercased strings (open addressing). */
struct qset {
	char **slots;
	size_t cap;
	size_t count;
};
void qmgr_set_init(struct qset *s);
void qmgr_set_free(struct qset *s);
/* false if already present. */
bool qmgr_set_add(struct qset *s, const char *key);
bool qmgr_set_has(const struct qset *s, const char *key);
unsigned long qmgr_hash(const char *s);
/* RFC 5322 3.3 date-time for a wall-clock time. */
void qmgr_rfc5322_date(time_t t, char *out, size_t size);

#endif
