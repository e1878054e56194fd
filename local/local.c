/*
 * local.c - the local delivery agent, "local": serves one qmgr
 * connection on run_directory/local, takes job after job (the same
 * type=job and type=result messages as deliver, doc/architecture.md),
 * delivers each recipient into a system user's mailbox and logs one line
 * per recipient.
 *
 * It runs as root, as Postfix's local(8): a mailbox is written by a
 * child process that has become its user (local_deliver.c). Only qmgr
 * (the socket's owner) can connect; the job is still checked field by
 * field, and a malformed one ends the conversation (qmgr defers its
 * recipients). The message text is only read, from the queue file qmgr
 * names under queue_directory; nothing of it is parsed but the
 * Delivered-To: fields of its header.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "addr.h"
#include "bio.h"
#include "cfg.h"
#include "daemon.h"
#include "ipc.h"
#include "job.h"
#include "local.h"
#include "log.h"
#include "mem.h"
#include "str.h"

#define JOB_READ_TIMEOUT_MS 60000	/* a job once begun arrives whole */
#define RESULT_WRITE_TIMEOUT_MS 60000

static double now_seconds(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void local_rcpt_decide(struct local_rcpt *r, char status, const char *dsn,
    const char *fmt, ...)
{
	struct str text;
	va_list ap;

	str_init(&text, 4096);
	va_start(ap, fmt);
	str_vappendf(&text, fmt, ap);
	va_end(ap);
	free(r->text);
	r->text = str_steal(&text);
	r->status = status;
	strlcpy(r->dsn, dsn, sizeof(r->dsn));
}

/* ---- the job message ---- */

static void job_free(struct local_job *job)
{
	free(job->queue_id);
	free(job->queue_file);
	free(job->sender);
	for (size_t i = 0; i < job->nrcpts; i++) {
		free(job->rcpts[i].address);
		free(job->rcpts[i].orig_to);
		free(job->rcpts[i].text);
		for (size_t k = 0; k < job->rcpts[i].nforward; k++)
			free(job->rcpts[i].forward[k]);
		free(job->rcpts[i].forward);
	}
	free(job->rcpts);
	for (size_t i = 0; i < job->ndelivered_to; i++)
		free(job->delivered_to[i]);
	free(job->delivered_to);
	if (job->content_fd >= 0)
		close(job->content_fd);
	memset(job, 0, sizeof(*job));
	job->content_fd = -1;
}

/* The job through mail/job.c's one codec (qmgr encodes it, deliver
 * decodes it the same way). */
static bool job_parse(const struct ipc_msg *m, struct local_job *job,
    char *err, size_t errsize)
{
	struct job j;
	bool ok = false;

	memset(job, 0, sizeof(*job));
	job->content_fd = -1;
	if (!job_decode(m, &j, err, errsize))
		goto out;
	if (strcmp(j.transport, "local") != 0) {
		snprintf(err, errsize, "not a local job");
		goto out;
	}
	job->queue_id = j.queue_id;
	job->queue_file = j.queue_file;
	job->sender = j.sender;
	j.queue_id = j.queue_file = j.sender = NULL;
	job->content_offset = j.content_offset;
	job->content_length = j.content_length;
	job->arrival = j.arrival;
	job->job_time = j.job_time;
	job->t_received = now_seconds();
	job->rcpts = xcalloc(j.nrcpts, sizeof(*job->rcpts));
	job->nrcpts = j.nrcpts;
	for (size_t i = 0; i < j.nrcpts; i++) {
		struct local_rcpt *r = &job->rcpts[i];
		r->number = j.rcpts[i].number;
		r->address = j.rcpts[i].address;
		r->orig_to = j.rcpts[i].orig_to;
		r->noexpand = j.rcpts[i].noexpand;
		j.rcpts[i].address = j.rcpts[i].orig_to = NULL;
	}
	ok = true;
out:
	job_clear(&j);
	return ok;
}

/* ---- logging ---- */

/* Seconds as Postfix prints them: "0.42", "0.2", "0", "12". */
static void format_delay(double v, char *out, size_t outsize)
{
	if (v < 0)
		v = 0;
	snprintf(out, outsize, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f",
	    v);
	if (strchr(out, '.') != NULL) {
		size_t len = strlen(out);
		while (len > 0 && out[len - 1] == '0')
			out[--len] = '\0';
		if (len > 0 && out[len - 1] == '.')
			out[--len] = '\0';
	}
}

static void log_result(const struct local_job *job,
    const struct local_rcpt *r, double t_start)
{
	char delay[32], a[32], b[32], c[32], to[600];
	double t_end = now_seconds();

	format_delay(t_end - job->arrival, delay, sizeof(delay));
	format_delay(job->job_time - job->arrival, a, sizeof(a));
	format_delay(job->t_received - job->job_time, b, sizeof(b));
	format_delay(t_end - t_start, c, sizeof(c));
	log_escape(to, sizeof(to), r->address, strlen(r->address));
	log_info("%s: to=<%s>, relay=local, delay=%s, delays=%s/%s/0/%s, "
	    "dsn=%s, status=%s (%s)", job->queue_id, to, delay, a, b, c,
	    r->dsn, r->status == 'S' ? "sent" : r->status == 'B' ?
	    "bounced" : "deferred", r->text ? r->text : "");
}

/* ---- one job ---- */

static void job_run(struct local_job *job)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", cfg.queue_directory,
	    job->queue_file);
	job->content_fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (job->content_fd >= 0)
		local_deliver_scan_header(job);
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct local_rcpt *r = &job->rcpts[i];
		double t_start = now_seconds();
		if (job->content_fd < 0)
			local_rcpt_decide(r, 'D', "4.3.0", "cannot open queue "
			    "file %s: %s", job->queue_file, strerror(errno));
		else
			local_deliver_rcpt(job, r);
		if (r->status == 0)
			local_rcpt_decide(r, 'D', "4.3.0", "internal error: no "
			    "outcome");
		log_result(job, r, t_start);
	}
}

static bool send_result(struct bio *b, const struct local_job *job)
{
	struct ipc_msg m;

	ipc_msg_init(&m, "result");
	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct local_rcpt *r = &job->rcpts[i];
		ipc_add(&m, "rcpt", "%ld %c %s %s", r->number, r->status,
		    r->dsn, r->text ? r->text : "");
		/* Addresses a .forward or alias gave it: qmgr adds them
		 * to the message (only with S or B). */
		for (size_t k = 0; r->status != 'D' && k < r->nforward; k++)
			ipc_add(&m, "forward", "%ld %s", r->number,
			    r->forward[k]);
	}
	ipc_add(&m, "relay", "local");
	ipc_add(&m, "nexthop_status", "ok");
	ipc_add(&m, "dsn_passed", "no");
	bio_set_timeout(b, RESULT_WRITE_TIMEOUT_MS);
	bool ok = ipc_send(b, &m);
	ipc_msg_free(&m);
	return ok;
}

/* Wait for qmgr's next job; false when master wants us gone. */
static bool wait_for_job(struct bio *b)
{
	for (;;) {
		if (bio_buffered(b) > 0)
			return true;
		struct pollfd pfd[2] = {
			{ .fd = b->fd, .events = POLLIN },
			{ .fd = daemon_alive_fd(), .events = POLLIN },
		};
		int n = poll(pfd, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warning("poll: %m");
			return false;
		}
		if (pfd[0].revents)
			return true;
		if (pfd[1].revents)
			return false;
	}
}

static void local_serve(struct daemon_conn *conn)
{
	struct bio b;

	bio_init(&b, conn->fd, JOB_READ_TIMEOUT_MS);
	while (wait_for_job(&b)) {
		struct ipc_msg m;
		struct local_job job;
		char err[256];

		bio_set_timeout(&b, JOB_READ_TIMEOUT_MS);
		if (!job_recv(&b, &m))
			break;
		bool parsed = job_parse(&m, &job, err, sizeof(err));
		ipc_msg_free(&m);
		if (!parsed) {
			log_warning("malformed job from qmgr: %s", err);
			job_free(&job);
			break;
		}
		job_run(&job);
		bool sent = send_result(&b, &job);
		job_free(&job);
		if (!sent) {
			log_warning("cannot send a result to qmgr: %s",
			    bio_status_name(bio_flush(&b)));
			break;
		}
	}
	bio_free(&b);
}

int main(int argc, char **argv)
{
	static const struct daemon_service svc = {
		.program = "local",
		.keep_root = true,
		.init = local_deliver_init,
		.serve = local_serve,
	};
	daemon_main(argc, argv, &svc);
}
