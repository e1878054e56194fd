/*
 * deliver.c - the delivery agent: "deliver" serves one qmgr connection on
 * run_directory/deliver, takes jobs (doc/architecture.md), delivers each
 * by SMTP or LMTP, logs one line per recipient and answers with one result
 * per recipient.
 *
 * Trusts qmgr as a peer process of the same user, but checks every job
 * field before use; a malformed job ends the conversation (qmgr then
 * treats its recipients as not delivered). Between jobs the process keeps
 * at most one session open for the next job to the same nexthop.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "addr.h"
#include "cfg.h"
#include "daemon.h"
#include "deliver.h"
#include "dns.h"
#include "esmtp.h"
#include "ipc.h"
#include "job.h"
#include "log.h"
#include "mem.h"

#define CONN_CACHE_IDLE_MS 5000	/* close a cached session after this */
#define JOB_READ_TIMEOUT_MS 60000 /* a job once begun arrives whole */
#define RESULT_WRITE_TIMEOUT_MS 60000

double deliver_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void deliver_outcome_set(struct deliver_outcome *o, char status,
    const char *dsn, const char *diag, const char *text)
{
	char *d = xstrdup(diag), *t = xstrdup(text);	/* may alias o's */
	deliver_outcome_free(o);
	o->status = status;
	strlcpy(o->dsn, dsn, sizeof(o->dsn));
	o->diag = d;
	o->text = t;
}

void deliver_outcome_free(struct deliver_outcome *o)
{
	free(o->diag);
	free(o->text);
	o->diag = o->text = NULL;
	o->status = 0;
	o->dsn[0] = '\0';
}

void deliver_fail_open(struct deliver_job *job, char status, const char *dsn,
    const char *diag, const char *text)
{
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct deliver_rcpt *r = &job->rcpts[i];
		if (r->done)
			continue;
		deliver_outcome_set(&r->out, status, dsn, diag, text);
		r->done = true;
		r->accepted = false;
	}
}

/* ---- the job message ---- */

/* What job_parse() and the session added; the job's own strings go
 * with job_clear(). */
static void job_free(struct deliver_job *job)
{
	for (size_t i = 0; i < job->nrcpts; i++) {
		free(job->rcpts[i].generic);
		deliver_outcome_free(&job->rcpts[i].out);
	}
	free(job->rcpts);
	free(job->generic_sender);
	free(job->head);
	if (job->content_fd >= 0)
		close(job->content_fd);
	job_clear(&job->j);
	memset(job, 0, sizeof(*job));
	job->content_fd = -1;
}

/* The job through mail/job.c's one codec; deliver adds to it what the
 * session needs (outcomes, relay, TLS). */
static bool job_parse(const struct ipc_msg *m, struct deliver_job *job,
    char *err, size_t errsize)
{
	memset(job, 0, sizeof(*job));
	job->content_fd = -1;
	if (!job_decode(m, &job->j, err, errsize))
		return false;
	if (strcmp(job->j.transport, "smtp") == 0)
		job->transport = TRANSPORT_SMTP;
	else if (strcmp(job->j.transport, "lmtp") == 0)
		job->transport = TRANSPORT_LMTP;
	else if (strcmp(job->j.transport, "smtps") == 0) {
		/* SMTP with implicit TLS (RFC 8314 3.3; qmgr's "smtps:"). */
		job->transport = TRANSPORT_SMTP;
		job->implicit_tls = true;
	} else {
		snprintf(err, errsize, "bad transport");
		return false;
	}
	job->requiretls = job->j.requiretls;
	job->t_received = deliver_now();
	job->rcpts = xcalloc(job->j.nrcpts, sizeof(*job->rcpts));
	job->nrcpts = job->j.nrcpts;
	for (size_t i = 0; i < job->j.nrcpts; i++) {
		const struct job_rcpt *jr = &job->j.rcpts[i];
		struct deliver_rcpt *r = &job->rcpts[i];
		r->number = jr->number;
		r->notify = jr->notify;
		r->address = jr->address;
		r->orcpt = jr->orcpt;
		r->orig_to = jr->orig_to;
	}
	strlcpy(job->relay, "none", sizeof(job->relay));
	return true;
}

/* ---- logging ---- */

/* Seconds as Postfix prints them: "0.42", "0.2", "0", "12", "3.1". */
static void format_delay(double v, char *out, size_t outsize)
{
	if (v < 0)
		v = 0;
	if (v >= 100)
		snprintf(out, outsize, "%.0f", v);
	else
		snprintf(out, outsize, v >= 10 ? "%.1f" : "%.2f", v);
	if (strchr(out, '.') != NULL) {
		size_t len = strlen(out);
		while (len > 0 && out[len - 1] == '0')
			out[--len] = '\0';
		if (len > 0 && out[len - 1] == '.')
			out[--len] = '\0';
	}
}

static void log_results(const struct deliver_job *job, double t_end)
{
	char delay[32], a[32], b[32], c[32], d[32], conn_use[32] = "";
	double t_conn = job->t_connected > 0 ? job->t_connected : t_end;

	format_delay(t_end - job->j.arrival, delay, sizeof(delay));
	format_delay(job->j.job_time - job->j.arrival, a, sizeof(a));
	format_delay(job->t_received - job->j.job_time, b, sizeof(b));
	format_delay(t_conn - job->t_received, c, sizeof(c));
	format_delay(t_end - t_conn, d, sizeof(d));
	if (job->conn_use > 1)
		snprintf(conn_use, sizeof(conn_use), "conn_use=%u, ",
		    job->conn_use);
	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct deliver_rcpt *r = &job->rcpts[i];
		char to[600];
		log_escape(to, sizeof(to), r->address, strlen(r->address));
		/* Postfix's orig_to=: when an alias changed the address. */
		char orig[320] = "";
		if (r->orig_to != NULL && strcmp(r->orig_to, r->address) != 0) {
			char e[300];
			log_escape(e, sizeof(e), r->orig_to, strlen(r->orig_to));
			snprintf(orig, sizeof(orig), ", orig_to=<%s>", e);
		}
		const char *status = r->out.status == 'S' ? "sent" :
		    r->out.status == 'B' ? "bounced" : "deferred";
		log_info("%s: to=<%s>%s, relay=%s, %sdelay=%s, "
		    "delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)", job->j.queue_id,
		    to, orig, job->relay, conn_use, delay, a, b, c, d,
		    r->out.dsn, status, r->out.text ? r->out.text : "");
	}
}

/* ---- one job ---- */

/* The content's head in one read: for a small message all of it, so
 * that the checks and the send read the file no more. */
static bool read_head(struct deliver_job *job)
{
	size_t want = job->j.content_length < DELIVER_HEAD_MAX ?
	    (size_t)job->j.content_length : DELIVER_HEAD_MAX;
	job->head = xmalloc(want + 1);
	size_t got = 0;
	errno = 0;
	while (got < want) {
		ssize_t n = pread(job->content_fd, job->head + got, want - got,
		    job->j.content_offset + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	job->head_len = got;
	return true;
}

static void job_run(struct deliver_job *job)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", cfg.queue_directory,
	    job->j.queue_file);
	job->content_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (job->content_fd < 0) {
		char text[600];
		snprintf(text, sizeof(text), "cannot open queue file %s: %s",
		    job->j.queue_file, strerror(errno));
		log_warning("%s: %s", job->j.queue_id, text);
		deliver_fail_open(job, 'D', "4.3.0", text, text);
	} else if (!read_head(job)) {
		char text[600];
		snprintf(text, sizeof(text), "cannot read queue file %s: %s",
		    job->j.queue_file, errno ? strerror(errno) : "file too short");
		log_warning("%s: %s", job->j.queue_id, text);
		deliver_fail_open(job, 'D', "4.3.0", text, text);
	} else {
		deliver_requiretls_job(job);
		deliver_dest_send(job);
	}
	/* Every recipient has its outcome; make sure of it. */
	deliver_fail_open(job, 'D', "4.3.0", "internal error: no outcome",
	    "internal error: no outcome");
	log_results(job, deliver_now());
}

static bool send_result(struct bio *b, const struct deliver_job *job)
{
	struct str out;

	str_init(&out, STR_NO_MAX);
	ipc_put_type(&out, "result");
	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct deliver_rcpt *r = &job->rcpts[i];
		ipc_putf(&out, "rcpt", "%ld %c %s %s", r->number, r->out.status,
		    r->out.dsn, r->out.diag ? r->out.diag : "");
	}
	ipc_put(&out, "relay", job->relay);
	if (job->remote_mta[0] != '\0')
		ipc_put(&out, "remote_mta", job->remote_mta);
	ipc_put(&out, "nexthop_status", job->nexthop_down ? "down" : "ok");
	ipc_put(&out, "dsn_passed", job->dsn_passed ? "yes" : "no");
	ipc_put_end(&out);
	bio_set_timeout(b, RESULT_WRITE_TIMEOUT_MS);
	bool ok = bio_write(b, out.data, out.len) && bio_flush(b) == BIO_OK;
	str_free(&out);
	return ok;
}

/*
 * Wait for qmgr's next job. A cached session is closed after
 * CONN_CACHE_IDLE_MS without one, or when its peer says something while
 * idle (421 or EOF): its socket is watched in the same poll, which
 * spares the next job's take a poll of its own. false: master wants us
 * gone, and between jobs is the moment to go.
 */
static bool wait_for_job(struct bio *b)
{
	for (;;) {
		if (bio_buffered(b) > 0)
			return true;
		struct pollfd pfd[3] = {
			{ .fd = b->fd, .events = POLLIN },
			{ .fd = daemon_alive_fd(), .events = POLLIN },
			{ .fd = deliver_conn_cache_fd(), .events = POLLIN },
		};
		int n = poll(pfd, pfd[2].fd >= 0 ? 3 : 2,
		    deliver_conn_cache_active() ? CONN_CACHE_IDLE_MS : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warning("poll: %m");
			return false;
		}
		if (n == 0) {
			deliver_conn_cache_close();
			continue;
		}
		if (pfd[2].fd >= 0)
			deliver_conn_cache_polled(pfd[2].revents == 0);
		if (pfd[0].revents & POLLIN) {
			/* Read at once into the bio's own buffer: bio polls
			 * before each read it makes, and this poll has waited.
			 * A longer job is read on by job_recv(), which also
			 * finds an error or end of file. */
			(void)bio_read_ready(b);
			return true;
		}
		if (pfd[0].revents)
			return true;
		if (pfd[1].revents)
			return false;
	}
}

static void deliver_serve(struct daemon_conn *conn)
{
	struct bio b;

	bio_init(&b, conn->fd, JOB_READ_TIMEOUT_MS);
	while (wait_for_job(&b)) {
		struct ipc_msg m;
		struct deliver_job job;
		char err[256];

		bio_set_timeout(&b, JOB_READ_TIMEOUT_MS);
		if (!job_recv(&b, &m))
			break;
		if (!job_parse(&m, &job, err, sizeof(err))) {
			log_warning("malformed job from qmgr: %s", err);
			ipc_msg_free(&m);
			job_free(&job);
			break;
		}
		ipc_msg_free(&m);
		job_run(&job);
		bool sent = send_result(&b, &job);
		job_free(&job);
		if (!sent) {
			log_warning("cannot send a result to qmgr: %s",
			    bio_status_name(bio_flush(&b)));
			break;
		}
	}
	deliver_conn_cache_close();
	bio_free(&b);
}

static void deliver_init(const char *service)
{
	char err[512];

	if (!dns_init(&cfg.dns_servers, err, sizeof(err)))
		log_fatal("%s", err);
	deliver_tls_init();
	deliver_auth_init();
	deliver_dkim_init();
	deliver_generic_init();
	deliver_mtasts_init();
}

int main(int argc, char **argv)
{
	static const struct daemon_service svc = {
		.program = "deliver",
		.init = deliver_init,
		.serve = deliver_serve,
	};
	daemon_main(argc, argv, &svc);
}
