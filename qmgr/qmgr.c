/*
 * qmgr.c - the queue manager: main() and the event loop.
 *
 * master starts one qmgr ("run" service) with its control socket
 * run_directory/qmgr as listener 0. qmgr never blocks on anything slow:
 * deliver connections and control clients are non-blocking and served
 * from one poll() loop; the only blocking work is local file I/O on the
 * queue. All state that matters lives in the queue files, so when master
 * goes away or asks us to stop (the alive pipe becomes readable) qmgr
 * simply exits. It trusts the config and the queue files it wrote;
 * deliver results and control messages are checked (ipc.c), and
 * maildrop/ files are validated on pickup (qmgr_scan.c).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "daemon.h"
#include "log.h"
#include "qmgr.h"

long long qmgr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static void qmgr_run(const char *service)
{
	static struct pollfd pfds[QMGR_MAX_POLLFDS];

	if (daemon_listener_count() < 1)
		log_fatal("no control socket from master");
	qmgr_ctl_init(daemon_listener_fd(0));
	log_info("starting: active limit %lld, deliver processes %lld",
	    cfg.qmgr_active_limit, cfg.deliver_processes);
	qmgr_scan_startup();

	for (;;) {
		long long now = qmgr_now_ms();

		/* Timers first: they may queue work for dispatch. */
		long long next = qmgr_scan_timer(now);
		next = min_deadline(next, qmgr_sched_timer(now));
		next = min_deadline(next, qmgr_deliver_timer(now));
		next = min_deadline(next, qmgr_ctl_timer(now));
		qmgr_scan_feed();
		qmgr_sched_dispatch();

		size_t n = 0;
		pfds[n].fd = daemon_alive_fd();
		pfds[n].events = POLLIN;
		pfds[n].revents = 0;
		n++;
		size_t scan_first = n;
		n += qmgr_scan_pollfds(pfds + n, QMGR_MAX_POLLFDS - n);
		size_t ctl_first = n;
		n += qmgr_ctl_pollfds(pfds + n, QMGR_MAX_POLLFDS - n);
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
			/* Master is gone or wants us to stop: the queue
			 * files hold everything, in-flight jobs are
			 * retried after restart. */
			log_info("stopping");
			qmgr_deliver_close_all();
			exit(0);
		}
		if (r == 0)
			continue;
		qmgr_scan_events(pfds + scan_first, ctl_first - scan_first);
		qmgr_ctl_events(pfds + ctl_first, dlv_first - ctl_first);
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
