/*
 * qmgr_scan.c - getting mail into the active queue: scans of incoming/
 * and deferred/, and the start-up recovery. maildrop/ is pickup's
 * (pickup/), which writes what it takes into incoming/.
 *
 * The queue's states and how a start-up restores them:
 *   S2 incoming/ID   accepted, not yet taken
 *   S3 active/ID     qmgr is working on it; at start-up every active/ file
 *                    goes back to incoming/ (nothing is in flight then)
 *   S4 deferred/H/ID waiting; its mtime is the next-try time
 *   S5 corrupt/ID    did not parse; kept for the administrator
 * Names starting with "." are files still being written: never touched.
 *
 * Work per message stays constant with queue size: a directory is read
 * into a list once and the list is consumed as the active queue has room;
 * incoming/ is read at start-up, then only as a safety net every 10 s
 * (when its list is used up), on a wake-up, and when inotify lost events:
 * the watch's events name each new file, which joins the list as it is.
 * deferred/ is read every queue_run_delay and on flush.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "qmgr.h"

/* Safety-net scan of incoming/ when no wake-up came. */
#define SCAN_INCOMING_INTERVAL_MS 10000
/* The same without the inotify watch, which is then the only wake-up
 * from smtpd. */
#define SCAN_INCOMING_UNWATCHED_MS 1000
/* How often incoming/ is searched for the temporary files of killed
 * writers, and how old (ctime) one must be (pickup does maildrop/). */
#define CLEAN_STALE_INTERVAL_MS (5 * 60 * 1000)
#define CLEAN_STALE_MIN_AGE 10

struct idlist {
	char (*ids)[QUEUE_ID_SIZE];
	size_t count, pos, cap;
};

static struct idlist incoming_list, deferred_list;
static long long incoming_due_ms = 1;	/* scan incoming/ at this time */
static long long deferred_due_ms = 1;	/* scan deferred/ at this time */
static bool flush_pending;		/* next deferred scan takes all */
static bool prefer_deferred;		/* alternate between the lists */
static int watch_fd = -1;		/* inotify on incoming/ */
static long long clean_due_ms = 1;	/* look for stale temporaries */

static void watch_start(void);
static void watch_read(void);

/*
 * Gathering: under a steady flow of new mail, incoming/ is taken in
 * batches at most FEED_GATHER_MS apart instead of one message per
 * inotify event. A name that arrives within that time of the last batch
 * waits, unwatched, for the rest of it: qmgr then wakes once for the
 * batch, not once per message, and moves it into active/ with one fsync
 * of the directory (the rename and its fsync stay together, in the same
 * feed: the wait is before both). A message after a quiet spell is
 * taken at once; none waits longer than FEED_GATHER_MS.
 */
#define FEED_GATHER_MS 20
static long long last_feed_ms;		/* when the last batch was moved */
static long long gather_until_ms;	/* 0: not gathering */

static void idlist_clear(struct idlist *l)
{
	l->count = l->pos = 0;
}

static void idlist_add(struct idlist *l, const char *id)
{
	if (l->count == l->cap && l->pos > 0) {
		/* Drop what was consumed before growing. */
		memmove(l->ids, l->ids + l->pos, (l->count - l->pos) *
		    sizeof(*l->ids));
		l->count -= l->pos;
		l->pos = 0;
	}
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->ids = xreallocarray(l->ids, l->cap, sizeof(*l->ids));
	}
	memcpy(l->ids[l->count++], id, QUEUE_ID_SIZE);
}

static int id_compare(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* qsort's array must not be NULL even when empty (C17 7.22.5). */
static void idlist_sort(struct idlist *l)
{
	if (l->count > 1)
		qsort(l->ids, l->count, QUEUE_ID_SIZE, id_compare);
}

static char *queue_subdir_path(const char *subdir)
{
	return xasprintf("%s/%s", cfg.queue_directory, subdir);
}

/* Read the queue IDs of one directory into l (IDs sort by arrival). */
static void scan_dir_ids(const char *dirpath, struct idlist *l, bool only_due,
    time_t now)
{
	DIR *d = opendir(dirpath);
	struct dirent *e;

	if (d == NULL) {
		log_warning("open directory %s: %m", dirpath);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (!queue_id_valid(e->d_name)) {
			log_warning("%s: ignoring unexpected file %s", dirpath,
			    e->d_name);
			continue;
		}
		if (only_due) {
			struct stat st;
			if (fstatat(dirfd(d), e->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0 || st.st_mtime > now)
				continue;
		}
		idlist_add(l, e->d_name);
	}
	closedir(d);
}

static void scan_incoming(void)
{
	char *path = queue_subdir_path(QUEUE_INCOMING);
	idlist_clear(&incoming_list);
	scan_dir_ids(path, &incoming_list, false, 0);
	free(path);
	idlist_sort(&incoming_list);
}

/* deferred/ is hashed: read every subdirectory. */
static void scan_deferred(bool all)
{
	char *top = queue_subdir_path(QUEUE_DEFERRED);
	DIR *d = opendir(top);
	struct dirent *e;
	time_t now = time(NULL);

	idlist_clear(&deferred_list);
	if (d == NULL) {
		log_warning("open directory %s: %m", top);
		free(top);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *sub = xasprintf("%s/%s", top, e->d_name);
		struct stat st;
		if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			scan_dir_ids(sub, &deferred_list, !all, now);
		free(sub);
	}
	closedir(d);
	free(top);
	idlist_sort(&deferred_list);
	if (all && deferred_list.count > 0)
		log_info("flush: %zu deferred messages", deferred_list.count);
}

/* ---- the public side ---- */

void qmgr_scan_startup(void)
{
	/* S3 at start-up: nothing is in flight, so everything in active/
	 * is simply taken again from the start. */
	char *path = queue_subdir_path(QUEUE_ACTIVE);
	struct idlist stranded = { 0 };
	char err[256];

	scan_dir_ids(path, &stranded, false, 0);
	free(path);
	for (size_t i = 0; i < stranded.count; i++)
		if (!queue_move(cfg.queue_directory, QUEUE_ACTIVE,
		    QUEUE_INCOMING, stranded.ids[i], false, err, sizeof(err)))
			log_warning("%s: %s", stranded.ids[i], err);
	if (stranded.count > 0)
		log_info("recovered %zu messages from %s", stranded.count,
		    QUEUE_ACTIVE);
	free(stranded.ids);
	watch_start();
	incoming_due_ms = 1;
	deferred_due_ms = 1;
}

/*
 * New mail announces itself: a queue writer's last step is a rename into
 * incoming/ (smtpd, pickup, qmgr), which inotify reports as IN_MOVED_TO. Writers need no wake-up call of their own, and one read
 * here covers every message committed since the last. Without the watch
 * (inotify limits reached) the periodic scan runs every second instead.
 */
static void watch_start(void)
{
	static const char *const watched[] = { QUEUE_INCOMING };

	watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	for (size_t i = 0; watch_fd >= 0 && i < 1; i++) {
		char *path = queue_subdir_path(watched[i]);
		if (inotify_add_watch(watch_fd, path, IN_MOVED_TO |
		    IN_ONLYDIR) < 0) {
			close(watch_fd);
			watch_fd = -1;
		}
		free(path);
	}
	if (watch_fd < 0)
		log_warning("cannot watch the queue for new mail (%m): "
		    "scanning incoming/ every %d ms", SCAN_INCOMING_UNWATCHED_MS);
}

size_t qmgr_scan_pollfds(struct pollfd *pfds, size_t room)
{
	/* Gathering: the events wait in the kernel for the batch. */
	if (watch_fd < 0 || room == 0 || gather_until_ms != 0)
		return 0;
	pfds[0].fd = watch_fd;
	pfds[0].events = POLLIN;
	pfds[0].revents = 0;
	return 1;
}

/*
 * Each IN_MOVED_TO names a file a writer has just committed: it joins
 * the incoming list as it is, with no read of the directory. A name seen
 * twice (a scan and its event) is harmless: the second move finds
 * nothing (ENOENT) and is skipped. Lost events (IN_Q_OVERFLOW) make the
 * next timer read the whole directory again.
 */
void qmgr_scan_events(const struct pollfd *pfds, size_t n)
{
	if (n == 0 || pfds[0].revents == 0)
		return;
	watch_read();
}

/*
 * The names the watch has queued since its last read. A read returns
 * every whole event that fits, so one that left room for the longest
 * event has emptied the queue: no second read to hear EAGAIN. What
 * arrives later makes the watch readable for the next poll.
 */
static void watch_read(void)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	const ssize_t longest = sizeof(struct inotify_event) + NAME_MAX + 1;
	bool lost = false;
	ssize_t len;
	do {
		len = read(watch_fd, buf, sizeof(buf));
		for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <=
		    len;) {
			const struct inotify_event *ev =
			    (const struct inotify_event *)(buf + off);
			off += (ssize_t)(sizeof(*ev) + ev->len);
			if (ev->mask & IN_Q_OVERFLOW) {
				lost = true;
				continue;
			}
			/* Names starting with "." never come (writers rename
			 * away from them); anything else odd is for the scan
			 * to report. */
			if (!(ev->mask & IN_MOVED_TO) || ev->len == 0 ||
			    ev->name[0] == '.' || !queue_id_valid(ev->name))
				continue;
			idlist_add(&incoming_list, ev->name);
		}
	} while (len > (ssize_t)sizeof(buf) - longest);
	if (lost) {
		idlist_clear(&incoming_list);
		incoming_due_ms = 1;
	}
}

void qmgr_scan_wakeup(void)
{
	incoming_due_ms = 1;
}

void qmgr_scan_flush(void)
{
	flush_pending = true;
	deferred_due_ms = 1;
	incoming_due_ms = 1;
}

long long qmgr_scan_timer(long long now_ms)
{
	if (incoming_due_ms > 0 && incoming_due_ms <= now_ms) {
		if (incoming_list.pos >= incoming_list.count)
			scan_incoming();
		incoming_due_ms = now_ms + (watch_fd >= 0 ?
		    SCAN_INCOMING_INTERVAL_MS : SCAN_INCOMING_UNWATCHED_MS);
	}
	if (deferred_due_ms > 0 && deferred_due_ms <= now_ms) {
		/* A flush takes everything; otherwise read only when the
		 * last list is used up, so no ID is listed twice. */
		if (flush_pending || deferred_list.pos >= deferred_list.count)
			scan_deferred(flush_pending);
		flush_pending = false;
		deferred_due_ms = now_ms + cfg.queue_run_delay * 1000;
	}
	if (clean_due_ms <= now_ms) {
		queue_clean_stale(cfg.queue_directory, QUEUE_INCOMING,
		    CLEAN_STALE_MIN_AGE);
		clean_due_ms = now_ms + CLEAN_STALE_INTERVAL_MS;
	}
	long long next = incoming_due_ms;
	if (deferred_due_ms < next)
		next = deferred_due_ms;
	if (clean_due_ms < next)
		next = clean_due_ms;
	return next;
}

/* Take one message from a list into active/. false if the list is empty. */
static bool feed_from(struct idlist *l, const char *subdir)
{
	char err[256];

	while (l->pos < l->count) {
		const char *id = l->ids[l->pos++];
		if (queue_move(cfg.queue_directory, subdir, QUEUE_ACTIVE, id,
		    false, err, sizeof(err))) {
			qmgr_message_activate(id);
			return true;
		}
		/* Gone meanwhile (deleted, held, or already taken). */
		if (errno != ENOENT)
			log_warning("%s: %s", id, err);
	}
	return false;
}

/*
 * One fsync of active/ for a batch of moves into it. Its descriptor is
 * opened once and kept: at a light load a batch is one message, and an
 * open and a close of the directory per message cost as much again.
 * The queue's directories are never replaced while qmgr runs.
 */
static void sync_active_dir(void)
{
	static int active_fd = -1;

	if (active_fd < 0) {
		char *path = queue_subdir_path(QUEUE_ACTIVE);
		active_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (active_fd < 0)
			log_warning("open %s: %m", path);
		free(path);
	}
	if (active_fd >= 0 && fsync(active_fd) < 0)
		log_warning("fsync %s/%s: %m", cfg.queue_directory,
		    QUEUE_ACTIVE);
}

long long qmgr_scan_gather_deadline(void)
{
	return gather_until_ms;
}

void qmgr_scan_feed(void)
{
	size_t moved = 0;
	long long now = qmgr_now_ms();

	if (gather_until_ms != 0) {
		if (now < gather_until_ms)
			return;
		gather_until_ms = 0;
		watch_read();	/* what came while the watch was not polled */
	} else if (watch_fd >= 0 && incoming_list.pos < incoming_list.count &&
	    now - last_feed_ms < FEED_GATHER_MS &&
	    qmgr_active_count < (size_t)cfg.qmgr_active_limit) {
		gather_until_ms = last_feed_ms + FEED_GATHER_MS;
		return;
	}

	while (qmgr_active_count < (size_t)cfg.qmgr_active_limit) {
		bool took;
		if (prefer_deferred)
			took = feed_from(&deferred_list, QUEUE_DEFERRED) ||
			    feed_from(&incoming_list, QUEUE_INCOMING);
		else
			took = feed_from(&incoming_list, QUEUE_INCOMING) ||
			    feed_from(&deferred_list, QUEUE_DEFERRED);
		if (!took)
			break;
		moved++;
		prefer_deferred = !prefer_deferred;
	}
	if (moved > 0) {
		sync_active_dir();
		last_feed_ms = now;
	}
	if (incoming_list.pos >= incoming_list.count && incoming_list.count) {
		idlist_clear(&incoming_list);
		/* Used up: without the watch, look again soon for what
		 * arrived meanwhile; with it, its events say. */
		if (watch_fd < 0)
			incoming_due_ms = 1;
	}
}

bool qmgr_scan_defer(const char *id, time_t next_try)
{
	char path[4096], err[256];
	struct timespec times[2];

	queue_path(path, sizeof(path), cfg.queue_directory, QUEUE_ACTIVE, id);
	times[0].tv_sec = next_try;
	times[0].tv_nsec = 0;
	times[1] = times[0];
	if (utimensat(AT_FDCWD, path, times, 0) < 0)
		log_warning("%s: set next try time: %m", id);
	if (!queue_move(cfg.queue_directory, QUEUE_ACTIVE, QUEUE_DEFERRED, id,
	    false, err, sizeof(err))) {
		log_warning("%s: %s", id, err);
		return false;
	}
	return true;
}
