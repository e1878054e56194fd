/*
 * master_status.c - run_directory/master.status: what `postern status`
 * prints of the accept services, how many processes each runs and how
 * many of them are busy. Master knows the counts from the scoreboards
 * (master_scoreboard.c); the admin command, run by anyone, cannot read
 * those (they are master's descriptors) and master reads no requests, so
 * master leaves the counts in a file of root's beside master.pid.
 *
 * The file is rewritten (beside it, then renamed over it: a reader sees
 * the old text or the new, never half) when the counts changed, at most
 * once a second: under load the counts change on every round, and a
 * write per round would cost master more than the scoreboard saved.
 * Master wakes at least once a second, so the file is at most about two
 * seconds behind. It starts with master's pid, so that a file left by a
 * master that died is not taken for the running one's.
 *
 * Format, one line each, fields separated by one space:
 *   pid PID
 *   service NAME COMMAND MAXPROC PROCESSES BUSY
 *
 * Trusts: nothing read; it only writes what it counted itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "master.h"

#define STATUS_FILE "master.status"
#define STATUS_TEMP "master.status.new"

static char written[4096];	/* the text the file holds now */
static bool tried;		/* a write was tried, at written_at */
static struct timespec written_at;

/* The status text of the accept services into buf; false if it is cut. */
static bool status_text(const struct master_service *services, size_t count,
    char *buf, size_t size)
{
	static pid_t pid;	/* asked once: getpid() is a system call */
	if (pid == 0)
		pid = getpid();
	size_t len = (size_t)snprintf(buf, size, "pid %ld\n", (long)pid);
	for (size_t i = 0; i < count && len < size; i++) {
		const struct master_service *s = &services[i];
		if (!s->enabled || s->single)
			continue;
		len += (size_t)snprintf(buf + len, size - len,
		    "service %s %s %d %d %d\n", s->name, s->program,
		    s->max_procs, s->nprocs, s->nprocs - s->nidle);
	}
	return len < size;
}

static bool second_passed(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec - written_at.tv_sec > 1 ||
	    (now.tv_sec - written_at.tv_sec == 1 &&
	    now.tv_nsec >= written_at.tv_nsec);
}

/* Write text as the file (beside it, then rename); false on failure. */
static bool status_write(int run_dir_fd, const char *text)
{
	/* run_directory is root's and writable by root alone: nobody can
	 * put a link under either name. */
	int fd = openat(run_dir_fd, STATUS_TEMP, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	size_t len = strlen(text);
	bool ok = write(fd, text, len) == (ssize_t)len;
	if (close(fd) < 0)
		ok = false;
	if (ok && renameat(run_dir_fd, STATUS_TEMP, run_dir_fd,
	    STATUS_FILE) == 0)
		return true;
	int saved = errno;
	unlinkat(run_dir_fd, STATUS_TEMP, 0);
	errno = saved;
	return false;
}

void master_status_update(int run_dir_fd, const struct master_service
    *services, size_t count)
{
	static bool warned;
	char text[sizeof(written)];
	if (!status_text(services, count, text, sizeof(text)) ||
	    strcmp(text, written) == 0 || (tried && !second_passed()))
		return;
	tried = true;
	clock_gettime(CLOCK_MONOTONIC, &written_at);
	if (!status_write(run_dir_fd, text)) {
		if (!warned)	/* tried again at the next change */
			log_warning("write %s/%s: %m: \"postern status\" "
			    "shows no process counts", cfg.run_directory,
			    STATUS_FILE);
		warned = true;
		return;
	}
	memcpy(written, text, strlen(text) + 1);
}

void master_status_remove(int run_dir_fd)
{
	if (unlinkat(run_dir_fd, STATUS_FILE, 0) < 0 && errno != ENOENT)
		log_warning("remove %s/%s: %m", cfg.run_directory,
		    STATUS_FILE);
}
