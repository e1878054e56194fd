/*
 * qmgr_deliver.c - the pool of connections to deliver processes.
 *
 * master pre-forks deliver processes on run_directory/deliver; qmgr opens
 * one connection per delivery slot it wants (at most deliver_processes)
 * and sends job after job on it (doc/architecture.md: type=job, one
 * type=result). A connection whose last job went to the same destination
 * is preferred, since deliver keeps that SMTP/LMTP session open.
 * When jobs wait and no other destination waits for a free deliver
 * process (qmgr_sched.c), a connection to deliver that works for their
 * destination gets the next ones behind its current job, at most
 * QMGR_CONN_JOBS in all:
 * deliver takes them in turn and finds each already read, so under a
 * backlog it does not wait for qmgr between jobs, and qmgr sends several
 * jobs in one write. Results come back in the order of the jobs:
 * deliver answers each before it reads the next, on one stream.
 * Jobs for transport "local" go the same way to the local delivery agent
 * on run_directory/local, which speaks the same messages.
 * Everything is non-blocking; a connection that dies, sends something
 * malformed or takes too long loses its jobs, whose recipients are
 * deferred (never bounced: nothing is known about them).
 *
 * Trusts deliver no more than ipc.c's checks plus ours: every result must
 * name each recipient of the job exactly once, with a known verdict.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <bsd/string.h>

#include "addr.h"
#include "cfg.h"
#include "esmtp.h"
#include "ipc.h"
#include "job.h"
#include "log.h"
#include "mem.h"
#include "qmgr.h"

/* Close a connection that has had no job for this long. */
#define CONN_IDLE_MS 30000
/* After a failed connect, wait this long before trying again. */
#define CONNECT_RETRY_MS 1000
#define READ_CHUNK 65536

struct qconn {
	int fd;
	struct str out;
	size_t out_off;
	struct str in;
	/* jobs[0] is the one the agent works on, the others wait behind it
	 * in the agent's socket, all for one destination. */
	struct qjob *jobs[QMGR_CONN_JOBS];
	size_t njobs;
	char *last_key;
	long long idle_since_ms;
	long long deadline_ms;	/* for jobs[0]'s result */
	bool local;		/* to the local agent, not deliver */
	struct qconn *next;
};

static struct qconn *conns;
static size_t nconns;
/* [0] deliver's socket, [1] the local agent's (transport "local"). */
static char *agent_path[2];
static long long unavailable_until_ms[2];
static long long last_connect_warning_ms[2];
static struct qconn **polled;
static size_t polled_cap;

void qmgr_deliver_init(void)
{
	agent_path[0] = xasprintf("%s/%s", cfg.run_directory,
	    IPC_SOCKET_DELIVER);
	agent_path[1] = xasprintf("%s/%s", cfg.run_directory,
	    IPC_SOCKET_LOCAL);
	for (int i = 0; i < 2; i++)
		if (strlen(agent_path[i]) >=
		    sizeof(((struct sockaddr_un *)0)->sun_path))
			log_fatal("delivery agent socket path too long: %s",
			    agent_path[i]);
}

/* How long a job may take before we give up on its deliver process:
 * deliver has its own timeouts per stage, this only catches a hang. */
static long long job_timeout_ms(void)
{
	long long s = 6 * cfg.smtp_timeout + 4 * cfg.smtp_connect_timeout;
	if (s < 3600)
		s = 3600;
	return s * 1000;
}

static struct qconn *conn_open(bool local)
{
	long long now = qmgr_now_ms();
	if (now < unavailable_until_ms[local])
		return NULL;

	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	strlcpy(sun.sun_path, agent_path[local], sizeof(sun.sun_path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 &&
	    errno != EINPROGRESS)) {
		/* Rate-limited: master may simply not be ready yet. */
		if (now - last_connect_warning_ms[local] > 60000) {
			log_warning("connect to %s: %m", agent_path[local]);
			last_connect_warning_ms[local] = now;
		}
		if (fd >= 0)
			close(fd);
		unavailable_until_ms[local] = now + CONNECT_RETRY_MS;
		return NULL;
	}
	struct qconn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->local = local;
	str_init(&c->out, STR_NO_MAX);
	str_init(&c->in, IPC_MAX_MESSAGE + READ_CHUNK);
	c->idle_since_ms = now;
	c->next = conns;
	conns = c;
	nconns++;
	return c;
}

/* The oldest job, whose result came or is lost, leaves the connection;
 * the next one is now the one the agent works on. */
static struct qjob *conn_pop(struct qconn *c)
{
	struct qjob *job = c->jobs[0];

	c->njobs--;
	memmove(c->jobs, c->jobs + 1, c->njobs * sizeof(c->jobs[0]));
	c->jobs[c->njobs] = NULL;
	if (c->njobs > 0) {
		qmgr_sched_job_promoted(c->jobs[0]);
		c->deadline_ms = qmgr_now_ms() + job_timeout_ms();
	} else {
		c->idle_since_ms = qmgr_now_ms();
	}
	return job;
}

static void conn_close(struct qconn *c, const char *why)
{
	/* Every job it held is deferred, the ones behind too: whether the
	 * agent had begun them is not known. */
	while (c->njobs > 0) {
		struct qjob *job = conn_pop(c);
		char esc[200];
		log_escape(esc, sizeof(esc), why, strlen(why));
		log_warning("%s: delivery agent for %s: %s; recipients "
		    "deferred", job->msg->id, qmgr_dest_key(job->dest), esc);
		qmgr_sched_job_lost(job, "lost connection with the delivery "
		    "agent");
	}
	for (struct qconn **pp = &conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	nconns--;
	close(c->fd);
	str_free(&c->out);
	str_free(&c->in);
	free(c->last_key);
	/* A conn may still be listed in polled[]: mark it dead there. */
	for (size_t i = 0; i < polled_cap; i++)
		if (polled[i] == c)
			polled[i] = NULL;
	free(c);
}

struct qconn *qmgr_deliver_get(const char *key)
{
	struct qconn *oldest = NULL, *other = NULL;
	bool local = strncmp(key, "local:", 6) == 0;

	for (struct qconn *c = conns; c != NULL; c = c->next) {
		if (c->njobs > 0)
			continue;
		if (c->local != local) {
			if (other == NULL ||
			    c->idle_since_ms < other->idle_since_ms)
				other = c;
			continue;
		}
		if (c->last_key != NULL && strcmp(c->last_key, key) == 0)
			return c;
		if (oldest == NULL || c->idle_since_ms < oldest->idle_since_ms)
			oldest = c;
	}
	/* A new process rather than tearing down another destination's
	 * open session; then the longest idle one. */
	if (nconns < (size_t)cfg.deliver_processes &&
	    nconns < QMGR_MAX_DELIVER_CONNS) {
		struct qconn *c = conn_open(local);
		if (c != NULL)
			return c;
	}
	/* Every slot taken and none of them to this kind of agent free:
	 * the other agent's longest idle connection makes room, or jobs
	 * for this one would wait until it closes (CONN_IDLE_MS). */
	if (oldest == NULL && other != NULL) {
		conn_close(other, "idle");
		return conn_open(local);
	}
	return oldest;
}

/* Append job to what c sends, behind the jobs it holds. */
static void conn_send(struct qconn *c, struct qjob *job)
{
	const struct qmsg *msg = job->msg;
	const struct queue_envelope *env = &msg->env;
	char queue_file[64];
	struct job j = {
		.transport = (char *)qmgr_dest_transport(job->dest),
		.nexthop = (char *)qmgr_dest_nexthop(job->dest),
		.queue_id = (char *)msg->id,
		.queue_file = queue_file,
		.content_offset = env->content_offset,
		.content_length = env->content_length,
		.sender = env->sender,
		.body = env->body,
		.smtputf8 = env->smtputf8,
		.requiretls = env->requiretls,
		.envid = env->envid,
		/* smtpd's record of the AUTH= MAIL parameter (RFC 4954 5) */
		.auth = (char *)queue_envelope_attr(env, "auth"),
		.ret = env->ret,
		.arrival = (double)env->arrival_sec + env->arrival_usec / 1e6,
		.job_time = msg->active_wall,
		.nrcpts = job->nrcpts,
	};

	snprintf(queue_file, sizeof(queue_file), "%s/%s", QUEUE_ACTIVE,
	    msg->id);
	j.rcpts = xcalloc(job->nrcpts, sizeof(*j.rcpts));
	for (size_t k = 0; k < job->nrcpts; k++) {
		const struct queue_rcpt *r = &env->rcpts[job->rcpts[k]];
		j.rcpts[k] = (struct job_rcpt){
			.number = (long)job->rcpts[k],
			.address = r->address,
			.notify = r->notify,
			.orcpt = r->orcpt,
			/* For the agent's log line (orig_to=,
			 * doc/logging.md). */
			.orig_to = (char *)qmgr_message_orig_rcpt(env,
			    job->rcpts[k]),
			.noexpand = qmgr_resolve_names_ancestor(env,
			    job->rcpts[k]),
		};
	}
	job_encode(&j, &c->out);
	free(j.rcpts);
	c->jobs[c->njobs++] = job;
}

void qmgr_deliver_start(struct qconn *c, struct qjob *job)
{
	conn_send(c, job);
	free(c->last_key);
	c->last_key = xstrdup(qmgr_dest_key(job->dest));
	c->deadline_ms = qmgr_now_ms() + job_timeout_ms();
}

void qmgr_deliver_fill(void)
{
	/* One more job per connection and pass, so that the waiting jobs
	 * spread over the connections of their destination. The local
	 * agent takes one job at a time. */
	for (size_t held = 1; held < QMGR_CONN_JOBS; held++) {
		for (struct qconn *c = conns; c != NULL; c = c->next) {
			if (c->local || c->njobs != held)
				continue;
			struct qjob *job = qmgr_sched_take_waiting(
			    c->jobs[0]->dest);
			if (job != NULL)
				conn_send(c, job);
		}
	}
}

/* "5.1.1"-shaped, class digit matching the verdict. */
static bool dsn_valid(const char *dsn, char what)
{
	char cls = what == 'S' ? '2' : what == 'D' ? '4' : '5';
	if (dsn[0] != cls || dsn[1] != '.')
		return false;
	const char *p = dsn + 2;
	for (int part = 0; part < 2; part++) {
		size_t n = strspn(p, "0123456789");
		if (n == 0 || n > 3)
			return false;
		p += n;
		if (part == 0) {
			if (*p != '.')
				return false;
			p++;
		}
	}
	return *p == '\0';
}

/* Position of recipient number n in the job (rcpts are ascending). */
static long job_index(const struct qjob *job, size_t n)
{
	size_t lo = 0, hi = job->nrcpts;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (job->rcpts[mid] == n)
			return (long)mid;
		if (job->rcpts[mid] < n)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * The local agent's "forward=NUMBER ADDRESS" attributes: the addresses a
 * .forward or an alias with commands gave recipient NUMBER, whose own
 * deliveries (commands, files) are done (S) or failed for good (B, whose
 * bounce qmgr_resolve_adopt writes at once). They become its children in
 * the queue file; the recipient is then A (expanded) and leaves the
 * result ('A' in res). One whose forwarding cannot be recorded is
 * deferred whole. Addresses are checked here again.
 */
static void adopt_forwarded(struct qjob *job, const struct ipc_msg *m,
    struct qresult *res)
{

	for (size_t k = 0; k < job->nrcpts; k++) {
		if (res[k].what != 'S' && res[k].what != 'B')
			continue;
		char **targets = NULL;
		size_t n = 0;
		bool any = false;
		for (size_t a = 0; a < m->count; a++) {
			if (strcmp(m->attrs[a].name, "forward") != 0)
				continue;
			char *end;
			const char *v = m->attrs[a].value;
			if (!isdigit((unsigned char)*v))
				continue;
			unsigned long long num = strtoull(v, &end, 10);
			if (num != job->rcpts[k] || *end != ' ')
				continue;
			any = true;
			struct addr parsed;
			const char *why;
			if (!addr_parse_mailbox(end + 1, ADDR_ALLOW_UTF8 |
			    ADDR_ALLOW_POSTMASTER, &parsed, &why)) {
				log_warning("%s: local agent forwards to a bad "
				    "address: %s; ignored", job->msg->id, why);
				continue;
			}
			addr_free(&parsed);
			targets = xreallocarray(targets, n + 1,
			    sizeof(*targets));
			targets[n++] = xstrdup(end + 1);
		}
		if (!any)
			continue;
		bool failed = res[k].what == 'B';
		if (!qmgr_resolve_adopt(job->msg, job->rcpts[k], targets, n,
		    failed ? res[k].dsn : NULL, failed ? res[k].text : NULL))
			res[k] = (struct qresult){ job->rcpts[k], 'D', "4.3.0",
			    "cannot record forwarded recipients" };
		else
			res[k].what = 'A';
		for (size_t t = 0; t < n; t++)
			free(targets[t]);
		free(targets);
	}
}

/* Check and apply one type=result. false: protocol error. */
static bool handle_result(struct qconn *c, const struct ipc_msg *m)
{
	if (c->njobs == 0 || strcmp(m->type, "result") != 0)
		return false;
	/* The oldest job's: deliver answers its jobs in order. */
	struct qjob *job = c->jobs[0];

	/* The job is freed when it finishes: keep its size. */
	size_t nrcpts = job->nrcpts;
	struct qresult *res = xcalloc(nrcpts, sizeof(*res));
	char **dsns = xcalloc(nrcpts, sizeof(char *));
	const char *first_defer_dsn = NULL, *first_defer_text = NULL;
	bool ok = true;

	for (size_t a = 0; ok && a < m->count; a++) {
		if (strcmp(m->attrs[a].name, "rcpt") != 0)
			continue;
		/* "<number> <S|D|B> <x.y.z> <diagnostic>" */
		const char *v = m->attrs[a].value;
		char *end;
		if (!isdigit((unsigned char)*v)) {
			ok = false;
			break;
		}
		unsigned long long num = strtoull(v, &end, 10);
		long k = num > job->rcpts[job->nrcpts - 1] ? -1 :
		    job_index(job, (size_t)num);
		if (k < 0 || res[k].what != 0 || end[0] != ' ' ||
		    (end[1] != 'S' && end[1] != 'D' && end[1] != 'B') ||
		    end[2] != ' ') {
			ok = false;
			break;
		}
		char what = end[1];
		const char *dsn = end + 3;
		const char *sp = strchr(dsn, ' ');
		size_t dlen = sp ? (size_t)(sp - dsn) : strlen(dsn);
		dsns[k] = xstrndup(dsn, dlen);
		if (!dsn_valid(dsns[k], what)) {
			free(dsns[k]);
			dsns[k] = xstrdup(what == 'S' ? "2.0.0" :
			    what == 'D' ? "4.0.0" : "5.0.0");
		}
		res[k] = (struct qresult){ (size_t)num, what, dsns[k],
		    sp ? sp + 1 : "" };
		if (what == 'D' && first_defer_dsn == NULL) {
			first_defer_dsn = dsns[k];
			first_defer_text = res[k].text;
		}
	}
	if (ok)
		adopt_forwarded(job, m, res);
	if (ok) {
		/* A recipient without a verdict is deferred, not lost. */
		for (size_t k = 0; k < job->nrcpts; k++) {
			if (res[k].what != 0)
				continue;
			log_warning("%s: delivery agent gave no result for "
			    "recipient %zu; deferred", job->msg->id,
			    job->rcpts[k]);
			res[k] = (struct qresult){ job->rcpts[k], 'D', "4.3.0",
			    "delivery agent reported no result" };
		}
		const char *relay = ipc_get(m, "relay");
		const char *remote = ipc_get(m, "remote_mta");
		const char *status = ipc_get(m, "nexthop_status");
		const char *dsn_passed = ipc_get(m, "dsn_passed");
		/* Expanded by the agent (what == 'A'): recorded already. */
		size_t nres = 0;
		for (size_t k = 0; k < job->nrcpts; k++)
			if (res[k].what != 'A')
				res[nres++] = res[k];
		qmgr_message_results(job->msg, res, nres,
		    qmgr_dest_transport(job->dest),
		    dsn_passed != NULL && strcmp(dsn_passed, "yes") == 0, relay,
		    remote && *remote ? remote : NULL, false);
		conn_pop(c);
		bool up = status != NULL && strcmp(status, "ok") == 0;
		bool down = status != NULL && strcmp(status, "down") == 0;
		qmgr_sched_job_finished(job, up, down, first_defer_dsn,
		    first_defer_text);
	}
	for (size_t k = 0; k < nrcpts; k++)
		free(dsns[k]);
	free(dsns);
	free(res);
	return ok;
}

size_t qmgr_deliver_pollfds(struct pollfd *pfds, size_t max)
{
	size_t n = 0;

	if (polled_cap < nconns) {
		polled_cap = nconns;
		polled = xreallocarray(polled, polled_cap, sizeof(*polled));
	}
	for (size_t i = 0; i < polled_cap; i++)
		polled[i] = NULL;
	for (struct qconn *c = conns; c != NULL && n < max; c = c->next) {
		pfds[n].fd = c->fd;
		pfds[n].events = POLLIN;
		if (c->out.len > c->out_off)
			pfds[n].events |= POLLOUT;
		pfds[n].revents = 0;
		polled[n] = c;
		n++;
	}
	return n;
}

static void conn_write(struct qconn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t w = write(c->fd, c->out.data + c->out_off,
		    c->out.len - c->out_off);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			conn_close(c, "write failed");
			return;
		}
		c->out_off += (size_t)w;
	}
	str_clear(&c->out);
	c->out_off = 0;
}

/*
 * Write what dispatch has just queued, before qmgr sleeps in poll(): the
 * jobs reach deliver at once, and the loop no longer goes round a poll
 * of every connection that only says these sockets are writable (a
 * socket to an agent that has read its last job always is). What a full
 * socket does not take waits for POLLOUT, as before.
 */
void qmgr_deliver_flush(void)
{
	struct qconn *c = conns;

	while (c != NULL) {
		struct qconn *following = c->next;
		if (c->out.len > c->out_off)
			conn_write(c);
		c = following;
	}
}

static void conn_read(struct qconn *c)
{
	if (!str_reserve(&c->in, READ_CHUNK)) {
		conn_close(c, "result too large");
		return;
	}
	ssize_t r = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_close(c, "read failed");
		return;
	}
	if (r == 0) {
		conn_close(c, "connection closed");
		return;
	}
	c->in.len += (size_t)r;
	c->in.data[c->in.len] = '\0';
	for (;;) {
		struct ipc_msg m;
		size_t used = 0;
		enum ipc_decode_result dr = ipc_decode(c->in.data, c->in.len,
		    &m, &used);
		if (dr == IPC_NEED_MORE)
			return;
		if (dr == IPC_BAD) {
			conn_close(c, "malformed message");
			return;
		}
		bool good = handle_result(c, &m);
		ipc_msg_free(&m);
		if (!good) {
			conn_close(c, "unexpected or malformed result");
			return;
		}
		str_consume(&c->in, used);
	}
}

void qmgr_deliver_events(struct pollfd *pfds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct qconn *c = polled[i];
		if (c == NULL || pfds[i].revents == 0)
			continue;
		if (pfds[i].revents & POLLOUT)
			conn_write(c);
		if (polled[i] == NULL)
			continue;	/* closed by the write */
		if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))
			conn_read(c);
	}
}

long long qmgr_deliver_timer(long long now_ms)
{
	long long next = 0;
	struct qconn *c = conns;

	while (c != NULL) {
		struct qconn *following = c->next;
		long long due;
		if (c->njobs > 0) {
			due = c->deadline_ms;
			if (due <= now_ms) {
				conn_close(c, "no result in time");
				c = following;
				continue;
			}
		} else {
			due = c->idle_since_ms + CONN_IDLE_MS;
			if (due <= now_ms) {
				conn_close(c, "idle");
				c = following;
				continue;
			}
		}
		if (next == 0 || due < next)
			next = due;
		c = following;
	}
	for (int i = 0; i < 2; i++)
		if (unavailable_until_ms[i] > now_ms &&
		    qmgr_sched_queued_jobs() > 0 &&
		    (next == 0 || unavailable_until_ms[i] < next))
			next = unavailable_until_ms[i];
	return next;
}

void qmgr_deliver_close_all(void)
{
	while (conns != NULL) {
		struct qconn *c = conns;
		conns = c->next;
		close(c->fd);
	}
}

size_t qmgr_deliver_in_flight(void)
{
	size_t n = 0;
	for (struct qconn *c = conns; c != NULL; c = c->next)
		n += c->njobs;
	return n;
}

void qmgr_deliver_close_idle(void)
{
	struct qconn *c = conns;
	while (c != NULL) {
		struct qconn *following = c->next;
		if (c->njobs == 0)
			conn_close(c, "stopping");
		c = following;
	}
}
