/*
 * qmgr_scan.c - getting mail into the active queue: scans of incoming/
 * and deferred/, the start-up recovery, and pickup of local submissions
 * from maildrop/.
 *
 * The queue's states and how a start-up restores them:
 *   S1 maildrop/ID   a local user's submission, untrusted: validated,
 *                    rewritten into incoming/ under a new ID, then removed
 *                    (a crash in between gives a duplicate, never a loss)
 *   S2 incoming/ID   accepted, not yet taken
 *   S3 active/ID     qmgr is working on it; at start-up every active/ file
 *                    goes back to incoming/ (nothing is in flight then)
 *   S4 deferred/H/ID waiting; its mtime is the next-try time
 *   S5 corrupt/ID    did not parse; kept for the administrator
 * Names starting with "." are files still being written: never touched.
 *
 * Work per message stays constant with queue size: a directory is read
 * into a list once and the list is consumed as the active queue has room;
 * incoming/ is read again only when its list is used up, deferred/ only
 * every queue_run_delay and on flush.
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

#include "addr.h"
#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "msgid.h"
#include "qmgr.h"

/* Safety-net scan of incoming/ and maildrop/ when no wake-up came. */
#define SCAN_INCOMING_INTERVAL_MS 10000
/* The same without the inotify watch, which is then the only wake-up
 * from smtpd. */
#define SCAN_INCOMING_UNWATCHED_MS 1000
/* How often incoming/ and maildrop/ are searched for the temporary
 * files of killed writers, and how old (ctime) one must be. */
#define CLEAN_STALE_INTERVAL_MS (5 * 60 * 1000)
#define CLEAN_STALE_MIN_AGE 10
/* Pickups per pass, so that a flood of local mail cannot stall the loop. */
#define PICKUP_BATCH 200

struct idlist {
	char (*ids)[QUEUE_ID_SIZE];
	size_t count, pos, cap;
};

static struct idlist incoming_list, deferred_list;
static long long incoming_due_ms = 1;	/* scan incoming/ at this time */
static long long deferred_due_ms = 1;	/* scan deferred/ at this time */
static bool flush_pending;		/* next deferred scan takes all */
static bool prefer_deferred;		/* alternate between the lists */
static int watch_fd = -1;		/* inotify on incoming/, maildrop/ */
static long long clean_due_ms = 1;	/* look for stale temporaries */

static void watch_start(void);

static void idlist_clear(struct idlist *l)
{
	l->count = l->pos = 0;
}

static void idlist_add(struct idlist *l, const char *id)
{
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

/* ---- pickup ---- */

static void maildrop_to_corrupt(const char *name, const char *why)
{
	char *from = xasprintf("%s/%s/%s", cfg.queue_directory, QUEUE_MAILDROP,
	    name);
	char *to = xasprintf("%s/%s/%s", cfg.queue_directory, QUEUE_CORRUPT,
	    name);
	char esc[128];

	log_escape(esc, sizeof(esc), name, strlen(name));
	if (rename(from, to) < 0) {
		log_warning("maildrop file %s: %s; cannot move it to %s: %m",
		    esc, why, QUEUE_CORRUPT);
		unlink(from);	/* never pick it up again and again */
	} else {
		log_warning("maildrop file %s: %s; moved to %s", esc, why,
		    QUEUE_CORRUPT);
	}
	free(from);
	free(to);
}

static bool valid_address(const char *a, bool allow_null)
{
	struct addr parsed;
	const char *why;

	if (*a == '\0')
		return allow_null;
	if (!addr_parse_mailbox(a, ADDR_ALLOW_UTF8 | ADDR_ALLOW_POSTMASTER,
	    &parsed, &why))
		return false;
	addr_free(&parsed);
	return true;
}

/*
 * Copy the content, turning bare LF and bare CR into CRLF: the file came
 * from a local user, and a lone LF must never reach a peer that might
 * take it for a line end (SMTP smuggling). BINARYMIME is copied as is.
 */
static bool copy_content(int fd, off_t offset, off_t length, bool binary,
    struct queue_writer *w, struct msgid_scan *ms)
{
	char in[65536];
	char out[2 * sizeof(in) + 2];
	bool pending_cr = false;

	while (length > 0) {
		size_t want = length > (off_t)sizeof(in) ? sizeof(in) :
		    (size_t)length;
		ssize_t n = pread(fd, in, want, offset);
		if (n <= 0)
			return false;
		offset += n;
		length -= n;
		if (binary) {
			msgid_scan_text(ms, in, (size_t)n);
			if (!queue_writer_write(w, in, (size_t)n))
				return false;
			continue;
		}
		size_t o = 0;
		for (ssize_t i = 0; i < n; i++) {
			char c = in[i];
			if (pending_cr) {
				out[o++] = '\r';
				out[o++] = '\n';
				pending_cr = false;
				if (c == '\n')
					continue;
			}
			if (c == '\r') {
				pending_cr = true;
			} else if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
			} else {
				out[o++] = c;
			}
		}
		msgid_scan_text(ms, out, o);
		if (!queue_writer_write(w, out, o))
			return false;
	}
	if (pending_cr && !queue_writer_write(w, "\r\n", 2))
		return false;
	return true;
}

/*
 * May a maildrop file's ID be kept? Only if no queue holds a message of
 * that ID: sendmail's IDs are unique on the host, but a member of the
 * postdrop group can name a file as it likes. Creating ".<ID>" with
 * O_EXCL and renaming without replacing (queue_writer_open_as) close
 * the rest of the race.
 */
static bool pickup_id_free(const char *id)
{
	static const char *const dirs[] = { QUEUE_INCOMING, QUEUE_ACTIVE,
	    QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT };
	char path[PATH_MAX];
	struct stat st;

	if (!queue_id_valid(id))
		return false;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		queue_path(path, sizeof(path), cfg.queue_directory, dirs[i],
		    id);
		if (lstat(path, &st) == 0 || errno != ENOENT)
			return false;
	}
	return true;
}

/* Validate one maildrop file and requeue it into incoming/. */
static void pickup_one(int dirfd_, const char *name)
{
	char err[256];
	struct queue_envelope in, out;
	struct stat st;
	int fd = openat(dirfd_, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			maildrop_to_corrupt(name, "cannot be opened");
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		maildrop_to_corrupt(name, "not a regular file");
		return;
	}
	queue_envelope_init(&in);
	enum queue_read_result rr = queue_read(fd, &in, err, sizeof(err));
	if (rr == QUEUE_READ_ERROR) {
		log_warning("maildrop file %s: read: %m", name);
		queue_envelope_free(&in);
		close(fd);
		return;
	}
	const char *bad = NULL;
	if (rr == QUEUE_READ_CORRUPT)
		bad = err;
	else if (in.nrcpts == 0)
		bad = "no recipients";
	else if (!valid_address(in.sender, true))
		bad = "bad sender address";
	else if (cfg.message_size_limit > 0 &&
	    in.content_length > cfg.message_size_limit)
		bad = "message too large";
	for (size_t i = 0; bad == NULL && i < in.nrcpts; i++) {
		if (in.rcpts[i].parent >= 0 ||
		    in.rcpts[i].status != QUEUE_RCPT_PENDING)
			bad = "recipient records not fresh";
		else if (!valid_address(in.rcpts[i].address, false))
			bad = "bad recipient address";
	}
	if (bad != NULL) {
		queue_envelope_free(&in);
		close(fd);
		maildrop_to_corrupt(name, bad);
		return;
	}

	/* A fresh envelope: only what a local user may decide. The arrival
	 * time is not one of those (a "T 1" would expire at once, past
	 * maximal_queue_lifetime): left at 0, the writer stamps it now. */
	queue_envelope_init(&out);
	out.sender = xstrdup(in.sender);
	out.body = in.body;
	out.smtputf8 = in.smtputf8;
	out.envid = in.envid ? xstrdup(in.envid) : NULL;
	out.ret = in.ret;
	out.kind = QUEUE_KIND_MAIL;
	queue_envelope_set_attr(&out, "origin", "local");
	char uid[32];
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)st.st_uid);
	queue_envelope_set_attr(&out, "uid", uid);
	for (size_t i = 0; i < in.nrcpts; i++)
		queue_envelope_add_rcpt(&out, in.rcpts[i].address,
		    in.rcpts[i].notify, in.rcpts[i].orcpt);

	struct msgid_scan ms;
	msgid_scan_init(&ms);
	/* The ID sendmail printed and logged stays the message's ID. */
	struct queue_writer *w = NULL;
	if (strcmp(name, in.id) == 0 && pickup_id_free(name))
		w = queue_writer_open_as(cfg.queue_directory, QUEUE_INCOMING,
		    name, &out, err, sizeof(err));
	if (w == NULL)
		w = queue_writer_open(cfg.queue_directory, QUEUE_INCOMING,
		    &out, err, sizeof(err));
	if (w == NULL) {
		log_warning("pickup of maildrop file %s: %s", name, err);
	} else if (!copy_content(fd, in.content_offset, in.content_length,
	    in.body == QUEUE_BODY_BINARYMIME, w, &ms)) {
		log_warning("pickup of maildrop file %s: copy failed: %m", name);
		queue_writer_abort(w);
	} else if (!queue_writer_commit(w, err, sizeof(err))) {
		log_warning("pickup of maildrop file %s: %s", name, err);
	} else {
		char esc[300];
		log_escape(esc, sizeof(esc), out.sender, strlen(out.sender));
		/* Postfix's pickup line, under the name log readers count
		 * local submissions by (doc/logging.md). */
		if (strcmp(out.id, name) == 0)
			log_info_as("pickup", "%s: uid=%s from=<%s>", out.id,
			    uid, esc);
		else
			log_info_as("pickup", "%s: uid=%s from=<%s> "
			    "(maildrop file %s)", out.id, uid, esc, name);
		/* As Postfix's cleanup: the Message-ID a user reports leads
		 * to the queue ID. */
		const char *v = msgid_scan_value(&ms);
		char msgid[MSGID_VALUE_MAX + 8];
		log_escape(msgid, sizeof(msgid), v, strlen(v));
		log_info_as("pickup", "%s: message-id=%s", out.id,
		    *v ? msgid : "<>");
		if (unlinkat(dirfd_, name, 0) < 0)
			log_warning("remove maildrop file %s: %m", name);
	}
	queue_envelope_free(&out);
	queue_envelope_free(&in);
	close(fd);
}

/* Pick up at most PICKUP_BATCH files; true if more may be waiting. */
static bool pickup(void)
{
	char *path = queue_subdir_path(QUEUE_MAILDROP);
	DIR *d = opendir(path);
	struct dirent *e;
	size_t done = 0;

	if (d == NULL) {
		log_warning("open directory %s: %m", path);
		free(path);
		return false;
	}
	while (done < PICKUP_BATCH && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		pickup_one(dirfd(d), e->d_name);
		done++;
	}
	closedir(d);
	free(path);
	return done == PICKUP_BATCH;
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
 * incoming/ (smtpd, qmgr) or maildrop/ (sendmail), which inotify reports
 * as IN_MOVED_TO. Writers need no wake-up call of their own, and one read
 * here covers every message committed since the last. Without the watch
 * (inotify limits reached) the periodic scan runs every second instead.
 */
static void watch_start(void)
{
	static const char *const watched[] = { QUEUE_INCOMING, QUEUE_MAILDROP };

	watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	for (size_t i = 0; watch_fd >= 0 && i < 2; i++) {
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
	if (watch_fd < 0 || room == 0)
		return 0;
	pfds[0].fd = watch_fd;
	pfds[0].events = POLLIN;
	pfds[0].revents = 0;
	return 1;
}

void qmgr_scan_events(const struct pollfd *pfds, size_t n)
{
	if (n == 0 || pfds[0].revents == 0)
		return;
	/* The events themselves do not matter (names starting with "."
	 * never come: writers rename away from them): drain and scan. */
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (read(watch_fd, buf, sizeof(buf)) > 0)
		;
	incoming_due_ms = 1;
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
		bool more = pickup();
		if (incoming_list.pos >= incoming_list.count)
			scan_incoming();
		incoming_due_ms = more ? now_ms : now_ms + (watch_fd >= 0 ?
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
		queue_clean_stale(cfg.queue_directory, QUEUE_MAILDROP,
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

/* One fsync of active/ for a batch of moves into it (qmgr_util.c). */
static void sync_active_dir(void)
{
	char *path = queue_subdir_path(QUEUE_ACTIVE);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		log_warning("fsync %s: %m", path);
	if (fd >= 0)
		close(fd);
	free(path);
}

void qmgr_scan_feed(void)
{
	size_t moved = 0;

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
	if (moved > 0)
		sync_active_dir();
	if (incoming_list.pos >= incoming_list.count && incoming_list.count) {
		/* Used up: look again soon for what arrived meanwhile. */
		idlist_clear(&incoming_list);
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
