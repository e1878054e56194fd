/*
 * qmgr_sched.c - destinations, jobs and delivery concurrency.
 *
 * A destination is transport + nexthop ("smtp:example.net",
 * "lmtp:unix:/run/postern/lmtp"). Each has a FIFO of jobs and a
 * concurrency window: it starts at initial_destination_concurrency, grows
 * by one with each job that reached the destination, up to
 * destination_concurrency_limit, and shrinks by one with each job that
 * could not reach it. A destination that fails before any success (or
 * keeps failing) is declared dead for minimal_backoff: its queued jobs are
 * deferred at once with the reason, and so are new ones until it revives
 * (as Postfix's qmgr throttles a dead site), so mail to a broken site does
 * not occupy delivery slots.
 *
 * Fairness: only destinations that have queued jobs and room in their
 * window are on the ready ring, and dispatch takes one job from each in
 * turn, so one slow destination holds at most its own window of deliver
 * processes and never starves the others. Dispatch is O(1) per job.
 *
 * The window counts connections (active: jobs being delivered, one per
 * connection). When no destination waits for a free deliver process
 * but one (the ring is empty, or holds only that one), the jobs that
 * still wait after dispatch go behind the current job of a connection
 * that already works for their destination (behind), a few per
 * connection (QMGR_CONN_JOBS): deliver then finds the next job read
 * when it is done with one, without a wait for qmgr. While others wait
 * for a deliver process, no connection takes jobs behind, so each comes
 * free after its jobs and goes round the ring as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "qmgr.h"

#define DEST_BUCKETS 4096
/* An idle destination (no jobs) is forgotten after this. */
#define DEST_IDLE_MS 120000
#define DEST_GC_INTERVAL_MS 30000
/* Consecutive jobs that could not reach a destination before it is dead,
 * once it has had a success (before any success: the first one). */
#define DEST_DOWN_LIMIT 3

struct qdest {
	char *key;
	char *transport;
	char *nexthop;
	struct qjob *head, *tail;
	size_t queued;
	int active;		/* jobs being delivered: connections */
	int behind;		/* jobs sent behind another on a connection */
	int limit;
	bool success_seen;
	int down_count;
	long long dead_until_ms;	/* 0: alive */
	char *dead_dsn;
	char *dead_text;
	long long idle_since_ms;
	bool on_ring;
	struct qdest *ring_next, *ring_prev;
	struct qdest *hash_next;
	struct qdest *dead_next;
	double job_seconds;		/* moving average, for the dashboard */
	unsigned long jobs_done;
};

static struct qdest *buckets[DEST_BUCKETS];
static struct qdest *ring;		/* ready destinations */
static struct qdest *dead_list;
static size_t jobs_queued;
static long long gc_due_ms;

/* Jobs of the message being activated, before qmgr_sched_commit(). */
static struct qjob **building;
static size_t nbuilding, building_cap;

const char *qmgr_dest_transport(const struct qdest *d)
{
	return d->transport;
}

const char *qmgr_dest_nexthop(const struct qdest *d)
{
	return d->nexthop;
}

const char *qmgr_dest_key(const struct qdest *d)
{
	return d->key;
}

size_t qmgr_sched_queued_jobs(void)
{
	return jobs_queued;
}

static struct qdest *dest_find(const char *transport, const char *nexthop,
    bool create)
{
	char *key = xasprintf("%s:%s", transport, nexthop);
	unsigned long h = qmgr_hash(key) % DEST_BUCKETS;
	struct qdest *d;

	for (d = buckets[h]; d != NULL; d = d->hash_next)
		if (strcasecmp(d->key, key) == 0)
			break;
	if (d != NULL || !create) {
		free(key);
		return d;
	}
	d = xcalloc(1, sizeof(*d));
	d->key = key;
	d->transport = xstrdup(transport);
	d->nexthop = xstrdup(nexthop);
	d->limit = (int)cfg.initial_destination_concurrency;
	if (d->limit < 1)
		d->limit = 1;
	d->idle_since_ms = qmgr_now_ms();
	d->hash_next = buckets[h];
	buckets[h] = d;
	return d;
}

static int dest_max(void)
{
	return cfg.destination_concurrency_limit > 0 ?
	    (int)cfg.destination_concurrency_limit : 1;
}

static void ring_remove(struct qdest *d)
{
	if (!d->on_ring)
		return;
	if (d->ring_next == d) {
		ring = NULL;
	} else {
		d->ring_prev->ring_next = d->ring_next;
		d->ring_next->ring_prev = d->ring_prev;
		if (ring == d)
			ring = d->ring_next;
	}
	d->on_ring = false;
}

/* Put d on the ready ring if it has work and room. */
static void ring_update(struct qdest *d)
{
	bool ready = d->queued > 0 && d->active < d->limit &&
	    d->dead_until_ms == 0;
	if (!ready) {
		ring_remove(d);
		return;
	}
	if (d->on_ring)
		return;
	if (ring == NULL) {
		d->ring_next = d->ring_prev = d;
		ring = d;
	} else {
		/* Insert just before the cursor: served last this round. */
		d->ring_next = ring;
		d->ring_prev = ring->ring_prev;
		ring->ring_prev->ring_next = d;
		ring->ring_prev = d;
	}
	d->on_ring = true;
}

void qmgr_job_free(struct qjob *job)
{
	free(job->rcpts);
	free(job);
}

/* ---- building a message's jobs ---- */

void qmgr_sched_add(struct qmsg *msg, const char *transport,
    const char *nexthop, size_t i)
{
	struct qdest *d = dest_find(transport, nexthop, true);
	struct qjob *job = NULL;
	bool lmtp = strcmp(transport, "lmtp") == 0;

	for (size_t k = nbuilding; k > 0; k--) {
		if (building[k - 1]->dest == d) {
			job = building[k - 1];
			break;
		}
	}
	if (job != NULL && !lmtp && job->nrcpts >= QMGR_SMTP_RCPT_LIMIT)
		job = NULL;
	if (job == NULL) {
		job = xcalloc(1, sizeof(*job));
		job->msg = msg;
		job->dest = d;
		if (nbuilding == building_cap) {
			building_cap = building_cap ? building_cap * 2 : 16;
			building = xreallocarray(building, building_cap,
			    sizeof(*building));
		}
		building[nbuilding++] = job;
	}
	if (job->nrcpts == job->cap) {
		job->cap = job->cap ? job->cap * 2 : 4;
		job->rcpts = xreallocarray(job->rcpts, job->cap,
		    sizeof(*job->rcpts));
	}
	job->rcpts[job->nrcpts++] = i;
}

/* Defer every recipient of a job without trying (dead destination, or
 * the delivery agent failed), and finish the job. */
static void job_defer(struct qjob *job, const char *dsn, const char *text)
{
	struct qresult *r = xcalloc(job->nrcpts, sizeof(*r));
	for (size_t k = 0; k < job->nrcpts; k++)
		r[k] = (struct qresult){ job->rcpts[k], 'D', dsn, text };
	qmgr_message_results(job->msg, r, job->nrcpts,
	    job->dest->transport, false, "none", NULL, true);
	free(r);
	struct qmsg *msg = job->msg;
	qmgr_job_free(job);
	qmgr_message_job_done(msg);
}

static void job_defer_dead(struct qjob *job)
{
	struct qdest *d = job->dest;
	char *text = xasprintf("delivery temporarily suspended: %s",
	    d->dead_text ? d->dead_text : "destination not reachable");
	job_defer(job, d->dead_dsn ? d->dead_dsn : "4.4.1", text);
	free(text);
}

void qmgr_sched_commit(struct qmsg *msg)
{
	for (size_t k = 0; k < nbuilding; k++) {
		struct qjob *job = building[k];
		struct qdest *d = job->dest;
		msg->jobs_pending++;
		if (d->dead_until_ms != 0) {
			job_defer_dead(job);
			continue;
		}
		if (d->tail)
			d->tail->next = job;
		else
			d->head = job;
		d->tail = job;
		d->queued++;
		jobs_queued++;
		ring_update(d);
	}
	nbuilding = 0;
}

/* ---- dispatch and feedback ---- */

/* The first of d's queued jobs, out of the queue. */
static struct qjob *dest_pop(struct qdest *d)
{
	struct qjob *job = d->head;
	d->head = job->next;
	if (d->head == NULL)
		d->tail = NULL;
	job->next = NULL;
	d->queued--;
	jobs_queued--;
	return job;
}

void qmgr_sched_dispatch(void)
{
	while (ring != NULL) {
		struct qdest *d = ring;
		struct qconn *conn = qmgr_deliver_get(d->key);
		if (conn == NULL)
			break;		/* no free delivery slot */
		struct qjob *job = dest_pop(d);
		d->active++;
		ring = d->ring_next;	/* round robin */
		ring_update(d);
		job->started_ms = qmgr_now_ms();
		qmgr_deliver_start(conn, job);
	}
	if (jobs_queued > 0)
		qmgr_deliver_fill();
}

struct qjob *qmgr_sched_take_waiting(struct qdest *d)
{
	if (d->queued == 0 || d->dead_until_ms != 0)
		return NULL;
	/* Not while another destination waits for a free deliver process
	 * (the ready ring): a connection that took d's next jobs would not
	 * come free for it. */
	if (ring != NULL && (ring != d || d->ring_next != d))
		return NULL;
	struct qjob *job = dest_pop(d);
	d->behind++;
	ring_update(d);
	return job;
}

void qmgr_sched_job_promoted(struct qjob *job)
{
	struct qdest *d = job->dest;

	d->behind--;
	d->active++;
	job->started_ms = qmgr_now_ms();
}

static void dest_kill(struct qdest *d, const char *dsn, const char *text)
{
	free(d->dead_dsn);
	free(d->dead_text);
	d->dead_dsn = xstrdup(dsn && *dsn ? dsn : "4.4.1");
	d->dead_text = xstrdup(text && *text ? text :
	    "destination not reachable");
	if (d->dead_until_ms != 0)
		return;		/* already dead: just the newest reason */
	long long pause = cfg.minimal_backoff > 0 ? cfg.minimal_backoff : 1;
	d->dead_until_ms = qmgr_now_ms() + pause * 1000;
	d->dead_next = dead_list;
	dead_list = d;
	ring_remove(d);
	log_info("destination %s is not reachable; suspended for %llds (%s)",
	    d->key, pause, d->dead_text);
	/* Its queued jobs wait for their next try instead of a slot. */
	while (d->head != NULL)
		job_defer_dead(dest_pop(d));
}

/* A job's time, into its destination's moving average (weight 1/5). */
static void dest_note_job(struct qdest *d, const struct qjob *job)
{
	double secs = (double)(qmgr_now_ms() - job->started_ms) / 1000.0;
	d->job_seconds = d->jobs_done ? 0.8 * d->job_seconds + 0.2 * secs :
	    secs;
	d->jobs_done++;
}

void qmgr_sched_each(void (*fn)(void *arg, const struct qmgr_dest_view *v),
    void *arg)
{
	for (size_t b = 0; b < DEST_BUCKETS; b++)
		for (struct qdest *d = buckets[b]; d; d = d->hash_next) {
			struct qmgr_dest_view v = {
				.key = d->key, .active = d->active,
				.limit = d->limit,
				.queued = d->queued + (size_t)d->behind,
				.dead = d->dead_until_ms != 0,
				.dead_text = d->dead_text,
				.job_seconds = d->job_seconds,
				.jobs = d->jobs_done,
			};
			fn(arg, &v);
		}
}

void qmgr_sched_job_finished(struct qjob *job, bool nexthop_ok,
    bool nexthop_down, const char *down_dsn, const char *down_text)
{
	struct qdest *d = job->dest;
	struct qmsg *msg = job->msg;

	dest_note_job(d, job);
	d->active--;
	if (nexthop_ok) {
		d->success_seen = true;
		d->down_count = 0;
		if (d->limit < dest_max())
			d->limit++;
	} else if (nexthop_down) {
		d->down_count++;
		if (d->limit > 1)
			d->limit--;
		if (!d->success_seen || d->down_count >= DEST_DOWN_LIMIT)
			dest_kill(d, down_dsn, down_text);
	}
	if (d->active == 0 && d->behind == 0 && d->queued == 0)
		d->idle_since_ms = qmgr_now_ms();
	ring_update(d);
	qmgr_job_free(job);
	qmgr_message_job_done(msg);
}

void qmgr_sched_job_lost(struct qjob *job, const char *text)
{
	struct qdest *d = job->dest;

	dest_note_job(d, job);
	d->active--;
	if (d->active == 0 && d->behind == 0 && d->queued == 0)
		d->idle_since_ms = qmgr_now_ms();
	ring_update(d);
	job_defer(job, "4.3.0", text);
}

static void dest_revive(struct qdest *d)
{
	d->dead_until_ms = 0;
	d->success_seen = false;
	d->down_count = 0;
	d->limit = (int)cfg.initial_destination_concurrency;
	if (d->limit < 1)
		d->limit = 1;
	d->idle_since_ms = qmgr_now_ms();
	ring_update(d);
}

void qmgr_sched_revive_all(void)
{
	while (dead_list != NULL) {
		struct qdest *d = dead_list;
		dead_list = d->dead_next;
		dest_revive(d);
	}
}

static void dest_gc(long long now_ms)
{
	for (size_t h = 0; h < DEST_BUCKETS; h++) {
		struct qdest **pp = &buckets[h];
		while (*pp != NULL) {
			struct qdest *d = *pp;
			if (d->queued == 0 && d->active == 0 &&
			    d->behind == 0 &&
			    d->dead_until_ms == 0 &&
			    now_ms - d->idle_since_ms > DEST_IDLE_MS) {
				*pp = d->hash_next;
				free(d->key);
				free(d->transport);
				free(d->nexthop);
				free(d->dead_dsn);
				free(d->dead_text);
				free(d);
			} else {
				pp = &d->hash_next;
			}
		}
	}
}

long long qmgr_sched_timer(long long now_ms)
{
	long long next = 0;
	struct qdest **pp = &dead_list;

	while (*pp != NULL) {
		struct qdest *d = *pp;
		if (d->dead_until_ms <= now_ms) {
			*pp = d->dead_next;
			dest_revive(d);
			continue;
		}
		if (next == 0 || d->dead_until_ms < next)
			next = d->dead_until_ms;
		pp = &d->dead_next;
	}
	if (gc_due_ms <= now_ms) {
		dest_gc(now_ms);
		gc_due_ms = now_ms + DEST_GC_INTERVAL_MS;
	}
	if (next == 0 || gc_due_ms < next)
		next = gc_due_ms;
	return next;
}
