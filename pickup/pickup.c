/*
 * pickup.c - the pickup service: takes local submissions (sendmail's
 * files in maildrop/) into the queue. One process, run by master as the
 * "pickup" service, as `user`, confined like qmgr (read and write the
 * queue tree) plus TCP connects for the filters of non_smtpd_milters.
 *
 * Why not qmgr: qmgr schedules every delivery from one poll() loop and
 * must never wait on a filter; a local message may wait up to the
 * milter timeouts. pickup writes what it takes into incoming/, whose
 * rename wakes qmgr through its inotify watch: no message between them.
 *
 * The loop: an inotify watch on maildrop/ (sendmail's rename into it is
 * IN_MOVED_TO), a scan every PICKUP_SCAN_MS as a safety net (every
 * second without the watch), the stale temporaries of killed sendmails
 * removed every 5 minutes. A file a filter tempfailed waits until the
 * next periodic scan. Its listener, run_directory/pickup (mode 0600,
 * owner `user`), only wakes it: a connection means "scan now, the files
 * a filter tempfailed too" (after a filter is back, say).
 *
 * Trusts: the config. maildrop/ files are a local user's: pickup_file.c
 * checks them.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "daemon.h"
#include "log.h"
#include "mem.h"
#include "pickup.h"
#include "queue.h"

/* Safety-net scan of maildrop/ when no wake-up came. */
#define PICKUP_SCAN_MS 10000
#define PICKUP_SCAN_UNWATCHED_MS 1000
/* Temporaries of killed sendmails: how often, and how old (ctime). */
#define PICKUP_CLEAN_MS (5 * 60 * 1000)
#define PICKUP_CLEAN_MIN_AGE 10
/* Files per pass, so that a flood cannot keep the loop from its timers. */
#define PICKUP_BATCH 200
/* Files a filter tempfailed, remembered until the next periodic scan. */
#define PICKUP_LATER_MAX 1024

static int watch_fd = -1;
static char (*later)[QUEUE_ID_SIZE + 64];
static size_t nlater;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_later(const char *name)
{
	for (size_t i = 0; i < nlater; i++)
		if (strcmp(later[i], name) == 0)
			return true;
	return false;
}

/*
 * One pass over maildrop/: at most PICKUP_BATCH files. periodic: also
 * the files a filter tempfailed. true if more may be waiting.
 */
static bool pickup_scan(bool periodic)
{
	char *path = xasprintf("%s/%s", cfg.queue_directory, QUEUE_MAILDROP);
	DIR *d = opendir(path);
	struct dirent *e;
	size_t done = 0;

	if (d == NULL) {
		log_warning("open directory %s: %m", path);
		free(path);
		return false;
	}
	if (periodic)
		nlater = 0;
	while (done < PICKUP_BATCH && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || is_later(e->d_name))
			continue;
		if (pickup_file(dirfd(d), e->d_name) == PICKUP_LATER &&
		    nlater < PICKUP_LATER_MAX &&
		    strlen(e->d_name) < sizeof(later[0]))
			strcpy(later[nlater++], e->d_name);
		done++;
	}
	closedir(d);
	free(path);
	return done == PICKUP_BATCH;
}

static void watch_start(void)
{
	char *path = xasprintf("%s/%s", cfg.queue_directory, QUEUE_MAILDROP);
	watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (watch_fd >= 0 && inotify_add_watch(watch_fd, path, IN_MOVED_TO |
	    IN_ONLYDIR) < 0) {
		close(watch_fd);
		watch_fd = -1;
	}
	if (watch_fd < 0)
		log_warning("cannot watch %s for new mail (%m): scanning every "
		    "%d ms", path, PICKUP_SCAN_UNWATCHED_MS);
	free(path);
}

static void pickup_init(const char *service)
{
	(void)service;
	if (pickup_milter_enabled())
		pickup_milter_init();
	pickup_file_init();
	later = xcalloc(PICKUP_LATER_MAX, sizeof(*later));
}

static void pickup_run(const char *service)
{
	long long scan_due = 1, clean_due = 1;
	bool woken = false, retry_now = false;

	(void)service;
	if (daemon_listener_count() < 1)
		log_fatal("no wake-up socket from master");
	int wake_fd = daemon_listener_fd(0);
	watch_start();
	log_info("starting: %zu filters for local mail",
	    cfg.non_smtpd_milters.count);
	for (;;) {
		long long now = now_ms();
		if (clean_due <= now) {
			queue_clean_stale(cfg.queue_directory, QUEUE_MAILDROP,
			    PICKUP_CLEAN_MIN_AGE);
			clean_due = now + PICKUP_CLEAN_MS;
		}
		if (woken || retry_now || scan_due <= now) {
			bool periodic = scan_due <= now || retry_now;
			bool more = pickup_scan(periodic);
			woken = more;
			retry_now = false;
			if (periodic)
				scan_due = now_ms() + (watch_fd >= 0 ?
				    PICKUP_SCAN_MS : PICKUP_SCAN_UNWATCHED_MS);
		}
		if (daemon_stop_requested()) {
			log_info("stopping");
			exit(0);
		}
		struct pollfd pfds[3] = {
			{ .fd = daemon_alive_fd(), .events = POLLIN },
			{ .fd = wake_fd, .events = POLLIN },
			{ .fd = watch_fd, .events = POLLIN },
		};
		long long next = scan_due < clean_due ? scan_due : clean_due;
		long long wait = woken ? 0 : next - now_ms();
		int r = poll(pfds, 3, wait < 0 ? 0 : wait > 60000 ? 60000 :
		    (int)wait);
		if (r < 0 && errno != EINTR)
			log_fatal("poll: %m");
		if (r <= 0)
			continue;
		if (pfds[0].revents) {
			log_info("stopping");
			exit(0);
		}
		if (pfds[1].revents) {
			int c = accept4(wake_fd, NULL, NULL, SOCK_CLOEXEC |
			    SOCK_NONBLOCK);
			if (c >= 0)
				close(c);
			retry_now = true;
		}
		if (watch_fd >= 0 && pfds[2].revents) {
			char buf[4096] __attribute__((aligned(
			    __alignof__(struct inotify_event))));
			while (read(watch_fd, buf, sizeof(buf)) > 0)
				;
			woken = true;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct daemon_service svc = {
		.program = "pickup",
		.init = pickup_init,
		.run = pickup_run,
	};
	daemon_main(argc, argv, &svc);
}
