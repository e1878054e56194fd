/*
 * qmgr_metrics.c - qmgr's metrics endpoint (metrics_listen): the queue and
 * its deliveries as Prometheus text (exposition format 0.0.4), for
 * Prometheus or any scraper, validated by promtool in tests/ops_metrics.bats.
 *
 * qmgr serves it because qmgr already knows what matters: every message
 * enters active/ through it, every delivery result comes back to it, and
 * the queue directories are its own. No new process, no new IPC.
 *
 * Trusts nothing from a client: master binds the listener (loopback by
 * the admin's choice), a client gets one response to whatever it sends
 * (at most METRICS_MAX_INPUT bytes, read without blocking), a bounded
 * time and a bounded number of slots; the poll loop never waits on it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "qmgr.h"
#include "str.h"

#define METRICS_MAX_CLIENTS 4
#define METRICS_MAX_INPUT 4096
#define METRICS_TIMEOUT_MS 5000

struct metrics_client {
	int fd;
	struct str out;
	size_t out_off;
	size_t in_len;
	bool answered;
	long long deadline_ms;
};

static int metrics_fd = -1;
static struct metrics_client mclients[METRICS_MAX_CLIENTS];
static size_t nmclients;

void qmgr_metrics_init(int fd)
{
	metrics_fd = fd;
}

/*
 * The counters live in qmgr's segment from master (mail/metrics.h), so
 * they survive a restart of qmgr; without one they are not kept.
 */
void qmgr_metrics_activated(void)
{
	struct metrics_qmgr_segment *m = metrics_qmgr();
	if (m != NULL)
		metrics_add(&m->activated, 1);
}

void qmgr_metrics_result(const struct qmsg *msg, size_t rcpt, char what,
    const char *transport, const char *dsn, const char *text)
{
	struct metrics_qmgr_segment *m = metrics_qmgr();
	enum metrics_transport t = metrics_transport_of(transport);
	char line[600], addr[200], why[200];

	if (m == NULL)
		return;
	metrics_add(&m->results[t][what == 'S' ? METRICS_SENT : what == 'B' ?
	    METRICS_BOUNCED : METRICS_DEFERRED], 1);
	if (what == 'S' || what == 'B')
		metrics_observe(&m->delay[t], METRICS_HIST_DELAY,
		    qmgr_message_delay(msg));
	if (what == 'S')
		return;
	/* Deferrals and bounces, with their reason, for postern top. */
	const char *a = rcpt < msg->env.nrcpts ?
	    msg->env.rcpts[rcpt].address : "";
	log_escape(addr, sizeof(addr), a, strlen(a));
	log_escape(why, sizeof(why), text ? text : "", text ? strlen(text) : 0);
	snprintf(line, sizeof(line), "%s %s to=<%s> %s %s",
	    what == 'B' ? "bounced" : "deferred", msg->id, addr,
	    dsn ? dsn : "", why);
	metrics_event(&m->event_next, m->events, line);
}

void qmgr_metrics_notice(void)
{
	struct metrics_qmgr_segment *m = metrics_qmgr();
	if (m != NULL)
		metrics_add(&m->notices, 1);
}

/* Files in a queue directory (and deferred/'s hash subdirectories). */
static unsigned long long count_files(const char *subdir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", cfg.queue_directory, subdir);
	DIR *d = opendir(path);
	unsigned long long n = 0;
	struct dirent *e;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (e->d_type == DT_DIR) {
			int sub = openat(dirfd(d), e->d_name, O_RDONLY |
			    O_DIRECTORY | O_CLOEXEC);
			DIR *sd = sub >= 0 ? fdopendir(sub) : NULL;
			struct dirent *f;
			if (sd == NULL) {
				if (sub >= 0)
					close(sub);
				continue;
			}
			while ((f = readdir(sd)) != NULL)
				if (f->d_name[0] != '.')
					n++;
			closedir(sd);
		} else {
			n++;
		}
	}
	closedir(d);
	return n;
}

/* A label value: backslash, quote and newline escaped (exposition
 * format); our destination keys, but a nexthop may come from a table. */
static void label_value(struct str *s, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			str_appendf(s, "\\%c", *v);
		else if (*v == '\n')
			str_append_cstr(s, "\\n");
		else
			str_append_char(s, *v);
	}
}

/* Only destinations with work: the series stay few (at most the
 * deliveries in flight and what waits for them). */
static void dest_gauge(void *arg, const struct qmgr_dest_view *v)
{
	struct str *s = arg;
	if (v->active == 0)
		return;
	str_append_cstr(s, "postern_destination_deliveries_active{"
	    "destination=\"");
	label_value(s, v->key);
	str_appendf(s, "\"} %d\n", v->active);
}

void qmgr_metrics_text(struct str *s)
{
	static const char *const queues[] = { QUEUE_MAILDROP, QUEUE_INCOMING,
	    QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT };

	str_append_cstr(s, "# HELP postern_queue_messages Messages in each "
	    "queue directory.\n# TYPE postern_queue_messages gauge\n");
	for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++)
		str_appendf(s, "postern_queue_messages{queue=\"%s\"} %llu\n",
		    queues[i], count_files(queues[i]));
	str_appendf(s, "# HELP postern_deliveries_in_flight Delivery jobs "
	    "handed to deliver and not back yet.\n"
	    "# TYPE postern_deliveries_in_flight gauge\n"
	    "postern_deliveries_in_flight %zu\n", qmgr_deliver_in_flight());
	str_append_cstr(s, "# HELP postern_destination_deliveries_active "
	    "Delivery jobs in flight, by destination (transport:nexthop), "
	    "for destinations with any.\n"
	    "# TYPE postern_destination_deliveries_active gauge\n");
	qmgr_sched_each(dest_gauge, s);
	metrics_render(s);
}

static void mclient_close(size_t i)
{
	close(mclients[i].fd);
	str_free(&mclients[i].out);
	mclients[i] = mclients[--nmclients];
	memset(&mclients[nmclients], 0, sizeof(mclients[nmclients]));
}

size_t qmgr_metrics_pollfds(struct pollfd *pfds, size_t max)
{
	size_t n = 0;

	if (metrics_fd < 0 || max == 0)
		return 0;
	/* The listener first, while there is a free slot. */
	pfds[n].fd = nmclients < METRICS_MAX_CLIENTS ? metrics_fd : -1;
	pfds[n].events = POLLIN;
	pfds[n].revents = 0;
	n++;
	for (size_t i = 0; i < nmclients && n < max; i++, n++) {
		pfds[n].fd = mclients[i].fd;
		pfds[n].events = mclients[i].answered ? POLLOUT : POLLIN;
		pfds[n].revents = 0;
	}
	return n;
}

/* false: done with this client. */
static bool mclient_event(struct metrics_client *c)
{
	if (!c->answered) {
		char buf[1024];
		ssize_t r = read(c->fd, buf, sizeof(buf));
		if (r < 0)
			return errno == EAGAIN || errno == EINTR;
		if (r == 0)
			return false;
		c->in_len += (size_t)r;
		/* The end of the request head; what it asks does not matter:
		 * there is one resource. */
		bool end = memmem(buf, (size_t)r, "\r\n\r\n", 4) != NULL ||
		    memmem(buf, (size_t)r, "\n\n", 2) != NULL;
		if (!end && c->in_len < METRICS_MAX_INPUT)
			return true;
		struct str body;
		str_init(&body, STR_NO_MAX);
		qmgr_metrics_text(&body);
		str_init(&c->out, STR_NO_MAX);
		str_appendf(&c->out, "HTTP/1.0 200 OK\r\nContent-Type: "
		    "text/plain; version=0.0.4; charset=utf-8\r\n"
		    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		    body.len);
		str_append(&c->out, body.data, body.len);
		str_free(&body);
		c->answered = true;
	}
	ssize_t w = write(c->fd, c->out.data + c->out_off,
	    c->out.len - c->out_off);
	if (w < 0)
		return errno == EAGAIN || errno == EINTR;
	c->out_off += (size_t)w;
	return c->out_off < c->out.len;
}

void qmgr_metrics_events(struct pollfd *pfds, size_t n)
{
	if (n == 0)
		return;
	/* Clients first, from the end, as closing moves the last one. */
	for (size_t k = n - 1; k >= 1; k--) {
		size_t i = k - 1;
		if (i < nmclients && pfds[k].revents != 0 &&
		    !mclient_event(&mclients[i]))
			mclient_close(i);
	}
	if (pfds[0].revents & POLLIN) {
		int fd = accept4(metrics_fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (fd >= 0 && nmclients < METRICS_MAX_CLIENTS) {
			mclients[nmclients] = (struct metrics_client){
				.fd = fd,
				.deadline_ms = qmgr_now_ms() + METRICS_TIMEOUT_MS,
			};
			nmclients++;
		} else if (fd >= 0) {
			close(fd);
		}
	}
}

long long qmgr_metrics_timer(long long now_ms)
{
	long long next = 0;

	for (size_t i = nmclients; i-- > 0;) {
		if (now_ms >= mclients[i].deadline_ms) {
			mclient_close(i);
			continue;
		}
		if (next == 0 || mclients[i].deadline_ms < next)
			next = mclients[i].deadline_ms;
	}
	return next;
}

/* ---- the control socket's type=metrics (postern top) ---- */

#define TOP_DESTS 8

struct dest_pick {
	struct qmgr_dest_view busy[TOP_DESTS], slow[TOP_DESTS];
	char busy_key[TOP_DESTS][160], slow_key[TOP_DESTS][160];
	size_t nbusy, nslow;
};

/* Keep the n best of a stream in a small sorted array. */
static void pick_into(struct qmgr_dest_view *arr, char keys[][160],
    size_t *n, const struct qmgr_dest_view *v, double score,
    double (*score_of)(const struct qmgr_dest_view *))
{
	size_t at = *n;
	while (at > 0 && score_of(&arr[at - 1]) < score)
		at--;
	if (at >= TOP_DESTS)
		return;
	size_t last = *n < TOP_DESTS ? *n : TOP_DESTS - 1;
	for (size_t k = last; k > at; k--) {
		arr[k] = arr[k - 1];
		memcpy(keys[k], keys[k - 1], sizeof(keys[k]));
	}
	arr[at] = *v;
	strlcpy(keys[at], v->key, sizeof(keys[at]));
	arr[at].key = keys[at];
	arr[at].dead_text = NULL;
	if (*n < TOP_DESTS)
		(*n)++;
	/* keys moved: re-point every entry at its own copy */
	for (size_t k = 0; k < *n; k++)
		arr[k].key = keys[k];
}

static double busy_score(const struct qmgr_dest_view *v)
{
	return (double)v->active + (double)v->queued;
}

static double slow_score(const struct qmgr_dest_view *v)
{
	return v->job_seconds;
}

static void dest_pick(void *arg, const struct qmgr_dest_view *v)
{
	struct dest_pick *p = arg;
	if (v->active > 0 || v->queued > 0)
		pick_into(p->busy, p->busy_key, &p->nbusy, v, busy_score(v),
		    busy_score);
	if (v->jobs > 0)
		pick_into(p->slow, p->slow_key, &p->nslow, v, slow_score(v),
		    slow_score);
}

static void add_dest(struct ipc_msg *m, const char *name,
    const struct qmgr_dest_view *v)
{
	ipc_add(m, name, "%d %d %zu %d %.0f %lu %s", v->active, v->limit,
	    v->queued, v->dead ? 1 : 0, v->job_seconds * 1000, v->jobs, v->key);
}

struct recent_arg {
	struct ipc_msg *m;
};

static void add_event(void *arg, long long when, const char *text)
{
	struct recent_arg *r = arg;
	ipc_add(r->m, "event", "%lld %s", when, text);
}

void qmgr_metrics_ctl(struct str *out, bool privileged)
{
	struct ipc_msg m;
	struct str text;

	str_init(&text, STR_NO_MAX);
	qmgr_metrics_text(&text);
	ipc_msg_init(&m, "metrics");
	ipc_add(&m, "text", "%s", str_cstr(&text));
	str_free(&text);
	/*
	 * Addresses and reasons are for the administrator: the counters
	 * are for anyone, as the queue listing is.
	 */
	if (privileged) {
		static struct dest_pick p;
		memset(&p, 0, sizeof(p));
		qmgr_sched_each(dest_pick, &p);
		for (size_t k = 0; k < p.nbusy; k++)
			add_dest(&m, "busy", &p.busy[k]);
		for (size_t k = 0; k < p.nslow; k++)
			add_dest(&m, "slow", &p.slow[k]);
		struct recent_arg r = { &m };
		metrics_recent(add_event, &r);
	}
	ipc_encode(&m, out);
	ipc_msg_free(&m);
}
