/*
 * qmgr.c - the queue manager: main() and the event loop.
 *
 * master starts one qmgr ("run" service) with its control socket
 * run_directory/qmgr as listener 0. qmgr never blocks on anything slow:
 * deliver connections and control clients are non-blocking and served
 * from one poll() loop; the only blocking work is local file I/O on the
 * queue. All state that matters lives in the queue files. When master
 * goes away, reloads or asks us to stop (the alive pipe becomes readable),
 * qmgr hands over (qmgr_run): it takes no new work, waits for the results
 * of the deliveries in flight and records them, then exits; the next
 * qmgr, started by master at once, waits for the lock on active/ that
 * the old one holds until then, so only one qmgr ever works on active/.
 * Exiting at once lost those results ("cannot send a result to qmgr" in
 * deliver) and the new qmgr delivered them again. It trusts the config
 * and the queue files it wrote;
 * deliver results and control messages are checked (ipc.c). maildrop/
 * is pickup's (pickup/), not qmgr's: qmgr never waits on a filter.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "daemon.h"
#include "log.h"
#include "mem.h"
#include "qmgr.h"

long long qmgr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How often a waiting qmgr tries the lock on active/ again. */
#define QMGR_LOCK_POLL_MS 200

static long long min_deadline(long long a, long long b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

static void qmgr_init(const char *service)
{
	qmgr_resolve_init();
	qmgr_deliver_init();
}

/*
 * One qmgr at a time works on active/: the lock on the directory is held
 * for the life of the process (the kernel drops it when qmgr dies, even
 * by kill -9). A qmgr started by a reload waits here while the previous
 * one finishes its deliveries in flight. false: master wants us gone.
 */
static bool qmgr_lock_active(void)
{
	char *path = xasprintf("%s/%s", cfg.queue_directory, QUEUE_ACTIVE);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		log_fatal("open %s: %m", path);
	free(path);
	bool logged = false;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			log_fatal("lock %s: %m", QUEUE_ACTIVE);
		if (!logged) {
			log_info("waiting for the previous qmgr to finish its "
			    "deliveries in flight");
			logged = true;
		}
		struct pollfd alive = { .fd = daemon_alive_fd(),
		    .events = POLLIN };
		if (poll(&alive, 1, QMGR_LOCK_POLL_MS) > 0)
			return false;
	}
	return true;	/* fd stays open: the lock lives with the process */
}

static void qmgr_run(const char *service)
{
	static struct pollfd pfds[QMGR_MAX_POLLFDS];
	bool draining = false;
	long long drain_deadline = 0;

	if (daemon_listener_count() < 1)
		log_fatal("no control socket from master");
	if (!qmgr_lock_active()) {
		log_info("stopping before start");
		exit(0);
	}
	qmgr_ctl_init(daemon_listener_fd(0));
	/* metrics_listen, when set, is the second listener (master). */
	if (daemon_listener_count() > 1)
		qmgr_metrics_init(daemon_listener_fd(1));
	log_info("starting: active limit %lld, deliver processes %lld",
	    cfg.qmgr_active_limit, cfg.deliver_processes);
	qmgr_scan_startup();

	for (;;) {
		long long now = qmgr_now_ms();

		if (draining && (qmgr_deliver_in_flight() == 0 ||
		    now >= drain_deadline)) {
			size_t left = qmgr_deliver_in_flight();
			if (left > 0)
				log_warning("stopping with %zu deliveries still in "
				    "flight after shutdown_timeout: they will be "
				    "tried again", left);
			else
				log_info("stopping: every delivery in flight is "
				    "recorded");
			qmgr_deliver_close_all();
			qmgr_message_hold_on_exit();
			exit(0);
		}
		/* Timers first: they may queue work for dispatch. While
		 * draining, no new work is taken or handed out. */
		long long next = draining ? drain_deadline :
		    qmgr_scan_timer(now);
		next = min_deadline(next, qmgr_sched_timer(now));
		next = min_deadline(next, qmgr_deliver_timer(now));
		next = min_deadline(next, qmgr_ctl_timer(now));
		next = min_deadline(next, qmgr_metrics_timer(now));
		if (!draining) {
			qmgr_scan_feed();
			qmgr_sched_dispatch();
			qmgr_deliver_flush();
			next = min_deadline(next, qmgr_scan_gather_deadline());
		}

		size_t n = 0;
		pfds[n].fd = draining ? -1 : daemon_alive_fd();
		pfds[n].events = POLLIN;
		pfds[n].revents = 0;
		n++;
		size_t scan_first = n;
		if (!draining)
			n += qmgr_scan_pollfds(pfds + n, QMGR_MAX_POLLFDS - n);
		size_t ctl_first = n;
		n += qmgr_ctl_pollfds(pfds + n, QMGR_MAX_POLLFDS - n);
		size_t met_first = n;
		if (!draining)
			n += qmgr_metrics_pollfds(pfds + n, QMGR_MAX_POLLFDS - n);
		size_t dlv_first = n;
		n += qmgr_deliver_pollfds(pfds + n, QMGR_MAX_POLLFDS - n);

		int timeout = -1;
		if (next > 0) {
			long long wait = next - qmgr_now_ms();
			timeout = wait < 0 ? 0 : wait > 60000 ? 60000 :
			    (int)wait;
		}
		int r = poll(pfds, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("poll: %m");
		}
		if (pfds[0].revents) {
			/* Master is gone, reloads or wants us to stop: hand
			 * over (see the top). The control socket is the next
			 * qmgr's; idle delivery agents may go. */
			draining = true;
			drain_deadline = qmgr_now_ms() +
			    cfg.shutdown_timeout * 1000;
			qmgr_ctl_stop();
			qmgr_deliver_close_idle();
			log_info("stopping: waiting for %zu deliveries in "
			    "flight", qmgr_deliver_in_flight());
			continue;
		}
		if (r == 0)
			continue;
		qmgr_scan_events(pfds + scan_first, ctl_first - scan_first);
		qmgr_ctl_events(pfds + ctl_first, met_first - ctl_first);
		qmgr_metrics_events(pfds + met_first, dlv_first - met_first);
		qmgr_deliver_events(pfds + dlv_first, n - dlv_first);
	}
}

int main(int argc, char **argv)
{
	static const struct daemon_service svc = {
		.program = "qmgr",
		.init = qmgr_init,
		.run = qmgr_run,
	};
	daemon_main(argc, argv, &svc);
}
