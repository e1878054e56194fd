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

#include "cfg.h"
#include "log.h"
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

/* Counters since qmgr started (they restart with it, as counters may). */
static unsigned long long activated, results_sent, results_deferred,
    results_bounced, notices;

void qmgr_metrics_init(int fd)
{
	metrics_fd = fd;
}

void qmgr_metrics_activated(void)
{
	activated++;
}

void qmgr_metrics_result(char what)
{
	if (what == 'S')
		results_sent++;
	else if (what == 'B')
		results_bounced++;
	else
		results_deferred++;
}

void qmgr_metrics_notice(void)
{
	notices++;
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

static void metrics_text(struct str *s)
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
	str_appendf(s, "# HELP postern_messages_activated_total Messages "
	    "that entered active/ (a retry counts again).\n"
	    "# TYPE postern_messages_activated_total counter\n"
	    "postern_messages_activated_total %llu\n", activated);
	str_appendf(s, "# HELP postern_recipient_results_total Delivery "
	    "results per recipient, by status.\n"
	    "# TYPE postern_recipient_results_total counter\n"
	    "postern_recipient_results_total{status=\"sent\"} %llu\n"
	    "postern_recipient_results_total{status=\"deferred\"} %llu\n"
	    "postern_recipient_results_total{status=\"bounced\"} %llu\n",
	    results_sent, results_deferred, results_bounced);
	str_appendf(s, "# HELP postern_notifications_total Bounce, delay "
	    "and success notices queued.\n"
	    "# TYPE postern_notifications_total counter\n"
	    "postern_notifications_total %llu\n", notices);
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
		metrics_text(&body);
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
