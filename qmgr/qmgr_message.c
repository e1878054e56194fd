/*
 * qmgr_message.c - one message's life in the active queue: activation
 * (read, expand, route, queue jobs), recording per-recipient results in
 * place, and finishing (bounce, delay notice, removal or deferral with
 * the next-try time).
 *
 * Crash rule: a result is in the queue file before anything acts on it.
 * A recipient marked S is never delivered again; one marked F has its
 * bounce already queued (the bounce file is committed, with the full
 * acceptance durability, before the F byte is written). A recipient whose
 * bounce was not yet written is still P after a crash and is simply
 * tried again.
 *
 * Which of these writes are fsync'd: a kill -9 of any process loses
 * nothing that was written (the page cache survives it), so an fsync only
 * matters for a power cut, and a status byte or Z record that a power cut
 * loses leaves the recipient P: it is delivered (or bounced) a second
 * time, never lost. So results are written without a flush while the
 * message is active, and flushed once when the message is finished and
 * stays in the queue (deferred), where it may wait for days; a message
 * that is finished for good is removed instead, and a flush of a file
 * about to be unlinked buys nothing. The flush that is not optional is
 * the one that orders two writes: alias expansion's X records are
 * fsync'd before their parents are marked A (qmgr_resolve.c), since an A
 * that reached the disk without its children would lose recipients.
 *
 * Trusts the queue file (it was validated when it was written or picked
 * up; one that does not parse goes to corrupt/).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "qmgr.h"

size_t qmgr_active_count;
/* The messages in memory, for the control socket's hold (rare: a walk). */
static struct qmsg *active_list;

static void outcome_clear(struct qoutcome *o)
{
	free(o->dsn);
	free(o->text);
	free(o->remote_mta);
	memset(o, 0, sizeof(*o));
}

static void outcome_set(struct qoutcome *o, char what, const char *dsn,
    const char *text, const char *remote_mta)
{
	outcome_clear(o);
	o->what = what;
	o->dsn = xstrdup(dsn ? dsn : (what == 'B' ? "5.0.0" : "4.0.0"));
	o->text = xstrdup(text ? text : "");
	o->remote_mta = remote_mta ? xstrdup(remote_mta) : NULL;
}

void qmgr_message_grow(struct qmsg *msg)
{
	size_t need = msg->env.nrcpts;
	if (need <= msg->out_cap)
		return;
	size_t cap = msg->out_cap ? msg->out_cap : 8;
	while (cap < need)
		cap *= 2;
	msg->out = xreallocarray(msg->out, cap, sizeof(*msg->out));
	memset(msg->out + msg->out_cap, 0,
	    (cap - msg->out_cap) * sizeof(*msg->out));
	msg->out_cap = cap;
}

/*
 * Queue files held open between the activation and the last result of
 * their message (see msg_keep_fd). The budget is half of what the open
 * file limit leaves beside a reserve for the deliver connections and
 * the control clients (master raises the limit to the hard one), so
 * that a burst filling active/ (qmgr_active_limit, 20,000 by default)
 * never starves them: the messages beyond it reopen their file for
 * their results, as every message did before.
 */
#define KEPT_FDS_RESERVE 4096
static size_t open_fds;
static size_t kept_fds_max;

static size_t kept_budget(void)
{
	if (kept_fds_max == 0) {
		struct rlimit rl;
		rlim_t cur = getrlimit(RLIMIT_NOFILE, &rl) == 0 ?
		    rl.rlim_cur : 1024;
		kept_fds_max = cur > KEPT_FDS_RESERVE + 64 ?
		    (size_t)(cur - KEPT_FDS_RESERVE) / 2 : 32;
		if (kept_fds_max > (size_t)cfg.qmgr_active_limit)
			kept_fds_max = (size_t)cfg.qmgr_active_limit;
	}
	return kept_fds_max;
}

static void msg_close_fd(struct qmsg *msg)
{
	if (msg->fd >= 0) {
		close(msg->fd);
		open_fds--;
	}
	msg->fd = -1;
}

/*
 * Between jobs: keep active/ID open while the budget allows, so that the
 * job's results and the finish use the descriptor of the activation (an
 * open and a close less per message). A file that "postern queue
 * delete" unlinks meanwhile is still written through it, harmlessly;
 * finish() sees the link count drop to 0 before it acts on the message.
 */
static void msg_keep_fd(struct qmsg *msg)
{
	if (open_fds > kept_budget())
		msg_close_fd(msg);
}

static void msg_free(struct qmsg *msg)
{
	msg_close_fd(msg);
	for (size_t i = 0; i < msg->out_cap; i++)
		outcome_clear(&msg->out[i]);
	free(msg->out);
	queue_envelope_free(&msg->env);
	free(msg);
}

static int open_active(const char *id)
{
	char path[4096];
	queue_path(path, sizeof(path), cfg.queue_directory, QUEUE_ACTIVE, id);
	return open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
}

/* The message's file, opened once per job (msg_close_fd ends it). */
static int msg_fd(struct qmsg *msg)
{
	if (msg->fd < 0) {
		msg->fd = open_active(msg->id);
		if (msg->fd >= 0)
			open_fds++;
	}
	return msg->fd;
}

const char *qmgr_notify_letters(unsigned notify, char *buf, size_t size)
{
	size_t o = 0;
	if (notify & QUEUE_NOTIFY_SUCCESS && o + 1 < size)
		buf[o++] = 'S';
	if (notify & QUEUE_NOTIFY_FAILURE && o + 1 < size)
		buf[o++] = 'F';
	if (notify & QUEUE_NOTIFY_DELAY && o + 1 < size)
		buf[o++] = 'D';
	if (notify & QUEUE_NOTIFY_NEVER && o + 1 < size)
		buf[o++] = 'N';
	if (o == 0 && size > 1)
		buf[o++] = '-';
	buf[o] = '\0';
	return buf;
}

double qmgr_message_delay(const struct qmsg *msg)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	double now = (double)tv.tv_sec + tv.tv_usec / 1e6;
	double arrival = (double)msg->env.arrival_sec +
	    msg->env.arrival_usec / 1e6;
	return now > arrival ? now - arrival : 0;
}

/* Is recipient i still to be delivered? Expanded ones are marked A when
 * the message is activated, so P means a pending leaf. */
static bool qmgr_message_rcpt_pending(const struct qmsg *msg, size_t i)
{
	return msg->env.rcpts[i].status == QUEUE_RCPT_PENDING;
}

void qmgr_message_decide(struct qmsg *msg, size_t i, char what,
    const char *dsn, const char *text)
{
	qmgr_message_grow(msg);
	outcome_set(&msg->out[i], what, dsn, text, NULL);
}

bool qmgr_message_set_status(struct qmsg *msg, int fd, size_t i, char st)
{
	/* Memory follows the intent even if the write fails: the file
	 * error is logged, and memory decides what we do next. */
	msg->env.rcpts[i].status = st;
	if (queue_set_rcpt_status(fd, &msg->env, i, st))
		return true;
	log_warning("%s: record status of recipient %zu: %m", msg->id, i);
	return false;
}

const char *qmgr_message_orig_rcpt(const struct queue_envelope *env,
    size_t i)
{
	const char *orig = NULL;

	/* Bounded by the count: a parent loop in a bad file ends too. */
	for (size_t steps = 0; steps < env->nrcpts && i < env->nrcpts &&
	    env->rcpts[i].parent >= 0 &&
	    (size_t)env->rcpts[i].parent < env->nrcpts; steps++) {
		i = (size_t)env->rcpts[i].parent;
		orig = env->rcpts[i].address;
	}
	return orig;
}

static void log_to_line(const struct qmsg *msg, size_t i, const char *relay,
    const char *dsn, const char *status, const char *text)
{
	const struct queue_rcpt *r = &msg->env.rcpts[i];
	char esc[600], orig[300] = "";
	const char *pa = qmgr_message_orig_rcpt(&msg->env, i);

	if (pa != NULL) {
		char e[256];
		log_escape(e, sizeof(e), pa, strlen(pa));
		snprintf(orig, sizeof(orig), ", orig_to=<%s>", e);
	}
	log_escape(esc, sizeof(esc), text, strlen(text));
	char to[300];
	log_escape(to, sizeof(to), r->address, strlen(r->address));
	log_info("%s: to=<%s>%s, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)",
	    msg->id, to, orig, relay, qmgr_message_delay(msg), dsn, status,
	    esc);
}

static bool wants(unsigned notify, unsigned bit)
{
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	if (notify == 0)	/* RFC 3461 4.1: FAILURE,DELAY by default */
		return bit != QUEUE_NOTIFY_SUCCESS;
	return (notify & bit) != 0;
}

void qmgr_message_results(struct qmsg *msg, const struct qresult *r,
    size_t n, const char *transport, bool dsn_passed, const char *relay,
    const char *remote_mta, bool log_it)
{
	bool final = strcmp(transport, "lmtp") == 0;
	struct qdsn_rcpt *succ = xcalloc(n ? n : 1, sizeof(*succ));
	size_t nsucc = 0;
	bool success_dsn_ok = true;

	for (size_t k = 0; k < n; k++) {
		size_t i = r[k].rcpt;
		outcome_set(&msg->out[i], r[k].what, r[k].dsn, r[k].text,
		    remote_mta);
		qmgr_metrics_result(msg, i, r[k].what, transport, r[k].dsn,
		    r[k].text);
		if (log_it)
			log_to_line(msg, i, relay ? relay : "none",
			    msg->out[i].dsn, r[k].what == 'S' ? "sent" :
			    r[k].what == 'B' ? "bounced" : "deferred",
			    msg->out[i].text);
		/* RFC 3461 5.2: a next hop that took NOTIFY=SUCCESS
		 * reports; we tell only about a hop that could not. */
		if (r[k].what == 'S' && (final || !dsn_passed) &&
		    wants(msg->env.rcpts[i].notify, QUEUE_NOTIFY_SUCCESS)) {
			succ[nsucc].index = i;
			succ[nsucc].dsn = msg->out[i].dsn;
			succ[nsucc].text = msg->out[i].text;
			succ[nsucc].remote_mta = msg->out[i].remote_mta;
			succ[nsucc].action = final ? QDSN_DELIVERED :
			    QDSN_RELAYED;
			nsucc++;
		}
	}
	/* The success notice goes first, then the S bytes (queue.h). */
	if (nsucc > 0)
		success_dsn_ok = qmgr_bounce_write(msg, succ[0].action, succ,
		    nsucc);
	free(succ);

	int fd = msg_fd(msg);
	if (fd < 0) {
		log_warning("%s: open to record results: %m", msg->id);
		return;
	}
	bool wrote = false;
	for (size_t k = 0; k < n; k++) {
		size_t i = r[k].rcpt;
		if (r[k].what == 'S') {
			if (!success_dsn_ok && (final || !dsn_passed) &&
			    wants(msg->env.rcpts[i].notify,
			    QUEUE_NOTIFY_SUCCESS)) {
				/* Could not queue the notice: record the
				 * delivery anyway (a second delivery is
				 * worse than a lost success notice). */
				log_warning("%s: success notification for "
				    "recipient %zu lost", msg->id, i);
			}
			/* The last job's result: finish() follows at once,
			 * and removes a message with nothing left to do
			 * without this byte (finish_unwritten()). */
			if (msg->jobs_pending == 1) {
				msg->env.rcpts[i].status = QUEUE_RCPT_SENT;
				msg->out[i].unwritten = true;
				continue;
			}
			qmgr_message_set_status(msg, fd, i, QUEUE_RCPT_SENT);
			wrote = true;
		} else if (r[k].what == 'D') {
			if (!queue_append_reason(fd, &msg->env, i,
			    msg->out[i].dsn, msg->out[i].text))
				log_warning("%s: record reason: %m", msg->id);
			wrote = true;
		}
	}
	if (wrote)
		msg->unsynced = true;
	/* fd stays open for finish(); qmgr_message_job_done() closes it. */
}

/* ---- finishing ---- */

static time_t next_try_time(const struct qmsg *msg, time_t now)
{
	long long age = (long long)now - msg->env.arrival_sec;
	long long backoff = age;
	/* Waiting as long again as the message has already waited doubles
	 * the interval each time, within the configured bounds. */
	if (backoff < cfg.minimal_backoff)
		backoff = cfg.minimal_backoff;
	if (backoff > cfg.maximal_backoff)
		backoff = cfg.maximal_backoff;
	if (backoff < 1)
		backoff = 1;
	return now + (time_t)backoff;
}

static void forget(struct qmsg *msg)
{
	if (msg->prev != NULL)
		msg->prev->next = msg->next;
	else
		active_list = msg->next;
	if (msg->next != NULL)
		msg->next->prev = msg->prev;
	qmgr_active_count--;
	msg_free(msg);
}

static bool any_pending(const struct qmsg *msg)
{
	for (size_t i = 0; i < msg->env.nrcpts; i++)
		if (qmgr_message_rcpt_pending(msg, i))
			return true;
	return false;
}

/* Has the file behind fd lost its name (an administrator's delete)? */
static bool unlinked(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && st.st_nlink == 0;
}

/*
 * The S bytes the last result left in memory (qmgr_message_results): a
 * message with nothing left to do is removed without them, since neither
 * they nor the remove would be synced (a crash before the remove sends
 * those recipients again either way, as doc/architecture.md says in
 * "Queue states and crash invariants"); one that stays in the queue
 * writes them before anything else happens to the file. true when any
 * was written.
 */
static bool finish_unwritten(struct qmsg *msg, int fd, bool stays)
{
	bool wrote = false;
	for (size_t i = 0; i < msg->env.nrcpts; i++) {
		if (!msg->out[i].unwritten)
			continue;
		msg->out[i].unwritten = false;
		if (stays && fd >= 0) {
			qmgr_message_set_status(msg, fd, i, QUEUE_RCPT_SENT);
			wrote = true;
		}
	}
	return wrote;
}

static void finish(struct qmsg *msg)
{
	char path[4096];

	/* Deleted meanwhile ("postern queue delete"): nothing to record.
	 * A file opened here is in active/; one held since the activation
	 * (msg_keep_fd) may have been unlinked since, which its link count
	 * says. That is asked only when the finish would act on the file
	 * (a bounce, a delay notice, a deferral): a message whose every
	 * recipient is done is removed, and a remove of a file that is gone
	 * already finds that out by itself. */
	queue_path(path, sizeof(path), cfg.queue_directory, QUEUE_ACTIVE,
	    msg->id);
	bool held = msg->fd >= 0;
	int fd = msg_fd(msg);
	if ((fd < 0 && errno == ENOENT) ||
	    (held && any_pending(msg) && unlinked(fd))) {
		log_info("%s: no longer in %s; forgotten", msg->id,
		    QUEUE_ACTIVE);
		forget(msg);
		return;
	}
	if (fd < 0)
		log_warning("%s: open to finish: %m", msg->id);
	if (finish_unwritten(msg, fd, any_pending(msg)))
		msg->unsynced = true;

	time_t now = time(NULL);
	long long age = (long long)now - msg->env.arrival_sec;
	size_t nr = msg->env.nrcpts;
	struct qdsn_rcpt *fail = xcalloc(nr ? nr : 1, sizeof(*fail));
	size_t nfail = 0, nfail_notify = 0, npending = 0;
	char **expired_text = xcalloc(nr ? nr : 1, sizeof(char *));

	for (size_t i = 0; i < nr; i++)
		if (qmgr_message_rcpt_pending(msg, i) &&
		    msg->out[i].what != 'B' && msg->out[i].what != 'S')
			npending++;
	bool expired = npending > 0 && age >= cfg.maximal_queue_lifetime;
	if (expired) {
		char esc[300];
		log_escape(esc, sizeof(esc), msg->env.sender,
		    strlen(msg->env.sender));
		log_info("%s: from=<%s>, status=expired, returned to sender",
		    msg->id, esc);
	}

	/* Failed recipients, the expired ones included: one bounce. */
	for (size_t i = 0; i < nr; i++) {
		if (!qmgr_message_rcpt_pending(msg, i))
			continue;
		struct qoutcome *o = &msg->out[i];
		if (o->what == 'S')
			continue;
		if (o->what != 'B') {
			if (!expired)
				continue;
			const char *last = o->text ? o->text :
			    msg->env.rcpts[i].last_reason;
			expired_text[i] = xasprintf("delivery time expired%s%s",
			    last && *last ? "; last error: " : "",
			    last ? last : "");
			fail[nfail].dsn = "5.4.7";
			fail[nfail].text = expired_text[i];
			fail[nfail].remote_mta = o->remote_mta;
		} else {
			fail[nfail].dsn = o->dsn;
			fail[nfail].text = o->text;
			fail[nfail].remote_mta = o->remote_mta;
		}
		fail[nfail].index = i;
		fail[nfail].action = QDSN_FAILED;
		nfail++;
	}
	/* Notify only those who did not refuse it (RFC 3461 4.1); the
	 * others are marked failed all the same. */
	struct qdsn_rcpt *notify = xcalloc(nfail ? nfail : 1, sizeof(*notify));
	for (size_t k = 0; k < nfail; k++)
		if (wants(msg->env.rcpts[fail[k].index].notify,
		    QUEUE_NOTIFY_FAILURE))
			notify[nfail_notify++] = fail[k];
	bool bounce_ok = nfail_notify == 0 ||
	    qmgr_bounce_write(msg, QDSN_FAILED, notify, nfail_notify);
	free(notify);

	bool wrote = false;
	if (fd >= 0 && bounce_ok) {
		for (size_t k = 0; k < nfail; k++) {
			qmgr_message_set_status(msg, fd, fail[k].index,
			    QUEUE_RCPT_FAILED);
			wrote = true;
		}
	}

	/* What is left waits for its next try. */
	npending = 0;
	for (size_t i = 0; i < nr; i++)
		if (qmgr_message_rcpt_pending(msg, i))
			npending++;
	if (fd >= 0 && npending > 0 && !expired && cfg.delay_warning_time > 0 &&
	    !msg->env.delay_warned && age >= cfg.delay_warning_time) {
		struct qdsn_rcpt *late = xcalloc(npending, sizeof(*late));
		size_t nlate = 0;
		for (size_t i = 0; i < nr; i++) {
			if (!qmgr_message_rcpt_pending(msg, i) ||
			    !wants(msg->env.rcpts[i].notify,
			    QUEUE_NOTIFY_DELAY))
				continue;
			struct qoutcome *o = &msg->out[i];
			late[nlate].index = i;
			late[nlate].dsn = o->dsn ? o->dsn :
			    msg->env.rcpts[i].last_dsn;
			late[nlate].text = o->text ? o->text :
			    msg->env.rcpts[i].last_reason;
			late[nlate].remote_mta = o->remote_mta;
			late[nlate].action = QDSN_DELAYED;
			nlate++;
		}
		if (nlate == 0 ||
		    qmgr_bounce_write(msg, QDSN_DELAYED, late, nlate)) {
			if (!queue_set_delay_warned(fd, &msg->env))
				log_warning("%s: record delay notice: %m",
				    msg->id);
			wrote = true;
		}
		free(late);
	}
	for (size_t i = 0; i < nr; i++)
		free(expired_text[i]);
	free(expired_text);
	free(fail);

	/* Staying in the queue: its records go to disk now (see the top). */
	if (fd >= 0 && npending > 0 && (wrote || msg->unsynced) &&
	    fsync(fd) < 0)
		log_warning("%s: fsync: %m", msg->id);
	/* The descriptor stays open until forget(): queue_remove() asks it,
	 * not the path, what the file is. */
	if (npending == 0) {
		if (queue_remove(cfg.queue_directory, path, fd))
			log_info("%s: removed", msg->id);
		else if (errno == ENOENT)
			log_info("%s: no longer in %s; forgotten", msg->id,
			    QUEUE_ACTIVE);
		else
			log_warning("%s: remove %s: %m", msg->id, path);
	} else if (msg->hold_requested) {
		char err[512];
		if (queue_move(cfg.queue_directory, QUEUE_ACTIVE, QUEUE_HOLD,
		    msg->id, true, err, sizeof(err)))
			log_info("%s: placed on hold (its deliveries in flight "
			    "are recorded)", msg->id);
		else
			log_warning("%s: hold: %s", msg->id, err);
	} else {
		qmgr_scan_defer(msg->id, next_try_time(msg, now));
	}
	forget(msg);
}

void qmgr_message_job_done(struct qmsg *msg)
{
	if (msg->jobs_pending == 0)
		log_panic("%s: job count underflow", msg->id);
	if (--msg->jobs_pending == 0)
		finish(msg);
	else
		msg_keep_fd(msg);
}

/* ---- activation ---- */

static void to_corrupt(const char *id, const char *why)
{
	char err[256];
	if (queue_move(cfg.queue_directory, QUEUE_ACTIVE, QUEUE_CORRUPT, id,
	    true, err, sizeof(err)))
		log_warning("%s: corrupt queue file: %s; moved to %s", id, why,
		    QUEUE_CORRUPT);
	else
		log_warning("%s: corrupt queue file: %s; %s", id, why, err);
}

void qmgr_message_route_pending(struct qmsg *msg, size_t from)
{
	/* Route every recipient that is still to be delivered. */
	struct qresult *decided = xcalloc(msg->env.nrcpts + 1,
	    sizeof(*decided));
	struct qroute *routes = xcalloc(msg->env.nrcpts + 1, sizeof(*routes));
	size_t ndecided = 0;
	for (size_t i = from; i < msg->env.nrcpts; i++) {
		if (!qmgr_message_rcpt_pending(msg, i))
			continue;
		struct qoutcome *o = &msg->out[i];
		if (o->what != 0) {	/* decided during expansion */
			decided[ndecided++] = (struct qresult){ i, o->what,
			    o->dsn, o->text };
			continue;
		}
		/* A local submission a filter rejected (pickup/): every
		 * recipient bounces with the filter's reply. */
		const char *rejected = queue_envelope_attr(&msg->env,
		    "milter_reject");
		if (rejected != NULL)
			qmgr_resolve_rejected(rejected, &routes[i]);
		else
			qmgr_resolve_route(msg->env.rcpts[i].address,
			    &routes[i]);
		if (routes[i].kind == ROUTE_DELIVER) {
			qmgr_sched_add(msg, routes[i].transport,
			    routes[i].nexthop, i);
		} else {
			decided[ndecided++] = (struct qresult){ i,
			    routes[i].kind == ROUTE_BOUNCE ? 'B' : 'D',
			    routes[i].dsn, routes[i].text };
		}
	}
	/* Copy: results overwrite the outcome strings they point into. */
	for (size_t k = 0; k < ndecided; k++) {
		decided[k].dsn = xstrdup(decided[k].dsn);
		decided[k].text = xstrdup(decided[k].text);
	}
	if (ndecided > 0)
		qmgr_message_results(msg, decided, ndecided, "", false, NULL,
		    NULL, true);
	for (size_t k = 0; k < ndecided; k++) {
		free((char *)decided[k].dsn);
		free((char *)decided[k].text);
	}
	for (size_t i = 0; i < msg->env.nrcpts; i++)
		qmgr_route_free(&routes[i]);
	free(routes);
	free(decided);
	qmgr_sched_commit(msg);
}

void qmgr_message_activate(const char *id)
{
	char err[256];
	int fd = open_active(id);

	if (fd < 0) {
		log_warning("%s: open: %m", id);
		return;
	}
	struct qmsg *msg = xcalloc(1, sizeof(*msg));
	msg->fd = -1;
	memcpy(msg->id, id, QUEUE_ID_SIZE);
	queue_envelope_init(&msg->env);
	enum queue_read_result rr = queue_read(fd, &msg->env, err, sizeof(err));
	if (rr == QUEUE_READ_OK && strcmp(msg->env.id, id) != 0) {
		snprintf(err, sizeof(err), "queue ID %s inside", msg->env.id);
		rr = QUEUE_READ_CORRUPT;
	}
	if (rr != QUEUE_READ_OK) {
		if (rr == QUEUE_READ_CORRUPT) {
			to_corrupt(id, err);
		} else {
			log_warning("%s: read: %m", id);
			qmgr_scan_defer(id, time(NULL) + cfg.minimal_backoff);
		}
		close(fd);
		msg_free(msg);
		return;
	}
	qmgr_message_grow(msg);
	struct timeval tv;
	gettimeofday(&tv, NULL);
	msg->active_wall = (double)tv.tv_sec + tv.tv_usec / 1e6;
	qmgr_active_count++;
	msg->next = active_list;
	if (active_list != NULL)
		active_list->prev = msg;
	active_list = msg;

	size_t nrcpt = 0;
	for (size_t i = 0; i < msg->env.nrcpts; i++)
		if (msg->env.rcpts[i].parent < 0)
			nrcpt++;
	char esc[300];
	log_escape(esc, sizeof(esc), msg->env.sender, strlen(msg->env.sender));
	qmgr_metrics_activated();
	log_info("%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)", id, esc,
	    (long long)msg->env.content_length, nrcpt);

	/* Expansion first: it may add recipients (and decide some). */
	bool expanded_ok = qmgr_resolve_expand(msg, fd);
	/* Kept for the results decided here, a finish at once, and
	 * while the budget allows for the results of its jobs. */
	msg->fd = fd;
	open_fds++;
	if (!expanded_ok) {
		/* The file could not be updated: try the whole message
		 * again later rather than deliver half-recorded work. */
		log_warning("%s: cannot record alias expansion; deferred", id);
		qmgr_scan_defer(id, time(NULL) + cfg.minimal_backoff);
		forget(msg);
		return;
	}
	qmgr_message_grow(msg);

	msg->jobs_pending++;	/* hold: finish only after everything below */
	qmgr_message_route_pending(msg, 0);
	qmgr_message_job_done(msg);
}

enum qmgr_hold_result qmgr_message_hold(const char *id)
{
	char err[512];

	for (struct qmsg *msg = active_list; msg != NULL; msg = msg->next) {
		if (strcmp(msg->id, id) == 0) {
			msg->hold_requested = true;
			log_info("%s: hold requested; placed on hold when its "
			    "deliveries in flight are back", id);
			return QMGR_HOLD_LATER;
		}
	}
	/* In active/ but not in memory (a stranded file not yet taken):
	 * nothing is in flight, so it can go now. */
	if (!queue_move(cfg.queue_directory, QUEUE_ACTIVE, QUEUE_HOLD, id, true,
	    err, sizeof(err)))
		return QMGR_HOLD_NOT_ACTIVE;
	log_info("%s: placed on hold by the administrator", id);
	return QMGR_HOLD_DONE;
}

void qmgr_message_hold_on_exit(void)
{
	char err[512];

	/* Their deliveries in flight are recorded (qmgr.c drains first);
	 * the rest of their jobs never started. */
	for (struct qmsg *msg = active_list; msg != NULL; msg = msg->next) {
		if (!msg->hold_requested)
			continue;
		if (queue_move(cfg.queue_directory, QUEUE_ACTIVE, QUEUE_HOLD,
		    msg->id, true, err, sizeof(err)))
			log_info("%s: placed on hold (qmgr stopping)", msg->id);
		else
			log_warning("%s: hold: %s", msg->id, err);
	}
}
