/*
 * master.c - postern's supervisor: reads the config, prepares the queue
 * and run directories, binds every listener while still root, pre-forks
 * and supervises the daemons, reloads on SIGHUP, stops gracefully on
 * SIGTERM, and talks to systemd. It parses no network input.
 *
 * Usage: master [-c config_dir] [-e] [-s] [-v]   (-e: log to stderr;
 * -s: fatal errors to stderr too until started, for "postern start")
 * Normally started by "postern start".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "dirsync.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "mem.h"
#include "priv.h"
#include "queue.h"

#define PID_FILE_NAME "master.pid"

static int signal_pipe[2] = { -1, -1 };
static volatile sig_atomic_t got_term, got_hup, got_chld;

static void on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGTERM || sig == SIGINT)
		got_term = sig;
	else if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGCHLD)
		got_chld = 1;
	char c = (char)sig;
	ssize_t n = write(signal_pipe[1], &c, 1);
	(void)n;
	errno = saved;
}

static void setup_signals(void)
{
	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		log_fatal("pipe: %m");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Create a directory if missing; fix owner when root. */
static void ensure_dir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		log_fatal("mkdir %s: %m", path);
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		log_fatal("%s is not a directory", path);
	if (priv_is_root() && (st.st_uid != uid || st.st_gid != gid) &&
	    chown(path, uid, gid) < 0)
		log_fatal("chown %s: %m", path);
}

/*
 * run_directory holds what root writes and later trusts: master.pid and
 * the listening sockets. It is root's and writable by root alone, so the
 * daemon user can neither plant a symlink there nor swap a socket
 * between bind and chown (issue 12); the daemons write nothing there,
 * but for the group-commit tables of lmtpd and of smtpd's doors, which
 * each makes while it is still root (mail/dirsync.c).
 * Older versions gave it to the daemon user: take it back, through the
 * descriptor, never by a path that could be swapped meanwhile.
 */
static int run_dir_fd = -1;

static void open_run_directory(void)
{
	const char *path = cfg.run_directory;
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		log_fatal("mkdir %s: %m", path);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		log_fatal("run_directory %s: %s", path, errno == ENOTDIR ||
		    errno == ELOOP ? "not a directory" : strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		log_fatal("stat %s: %m", path);
	if (priv_is_root()) {
		if ((st.st_uid != 0 || st.st_gid != 0) && fchown(fd, 0, 0) < 0)
			log_fatal("chown %s: %m", path);
		if (st.st_uid != 0)
			log_info("run_directory %s belonged to uid %ld: now "
			    "root's", path, (long)st.st_uid);
	} else if (st.st_uid != geteuid()) {
		log_fatal("run_directory %s belongs to uid %ld, not to us",
		    path, (long)st.st_uid);
	}
	if ((st.st_mode & 07777) != 0755 && fchmod(fd, 0755) < 0)
		log_fatal("chmod %s: %m", path);
	run_dir_fd = fd;
}

/* The queue's and run_directory's directories; returns the queue's
 * owner (the "user" setting, or whoever runs master when not root). */
static uid_t prepare_directories(void)
{
	uid_t uid = getuid(), qroot_uid = getuid();
	gid_t gid = getgid(), qroot_gid = getgid(), drop_gid = getgid();
	char err[512];

	if (priv_is_root()) {
		if (!priv_lookup_user(cfg.user, &uid, &gid))
			log_fatal("user \"%s\" (setting \"user\") does not "
			    "exist: create it (see INSTALL)", cfg.user);
		uid_t mu;
		gid_t mg;
		if (!priv_lookup_user(cfg.mailbox_owner, &mu, &mg))
			log_fatal("user \"%s\" (setting \"mailbox_owner\") "
			    "does not exist: create it (see INSTALL)",
			    cfg.mailbox_owner);
		if (!priv_lookup_group(cfg.postdrop_group, &drop_gid)) {
			log_warning("group \"%s\" does not exist: local "
			    "submission with sendmail works for root only",
			    cfg.postdrop_group);
			drop_gid = gid;
		}
		qroot_uid = 0;
		qroot_gid = 0;
	}
	/* The queue root is root's (as Postfix's); its parts are user's. */
	ensure_dir(cfg.queue_directory, 0755, qroot_uid, qroot_gid);
	if (!queue_dirs_create(cfg.queue_directory, uid, gid, drop_gid, err,
	    sizeof(err)))
		log_fatal("%s", err);
	open_run_directory();
	master_state_dirs_prepare();
	return uid;
}


/*
 * The group-commit tables of directory fsyncs (mail/dirsync.c): lmtpd's
 * of new/ and smtpd's doors' of incoming/ and hold/ (dirsync.h names
 * them) outlive the processes that mapped them. A new
 * master, once it holds the pid file (no other instance runs), starts
 * its daemons on new ones: a leader's pid left in an old table could
 * have been reused by now and make a first commit wait for it.
 */
static void forget_dirsync_tables(void)
{
	static const char *const tables[] = { DIRSYNC_TABLE_LMTPD,
		DIRSYNC_TABLE_SMTPD_DOOR };

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (unlinkat(run_dir_fd, tables[i], 0) < 0 && errno != ENOENT)
			log_warning("remove %s/%s: %m", cfg.run_directory,
			    tables[i]);
}

/* A pid file we wrote: a plain file of ours with no other name. */
static bool pid_file_is_ours(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_nlink == 1 && st.st_uid == geteuid();
}

/*
 * Lock the pid file, empty; refuse a second master. The pid is written
 * only once every listener is bound (write_pid_file), so that "postern
 * start", which waits for it, hears of a failed bind; a reader that finds
 * the file locked and empty waits. O_NOFOLLOW and the checks on the open
 * file: whatever an older, daemon-owned run_directory may hold under this
 * name (a symlink to a root file, a hard link) is removed, never
 * truncated.
 */
static int take_pid_file(void)
{
	const int flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	int fd = openat(run_dir_fd, PID_FILE_NAME, flags, 0644);
	if (fd < 0 || !pid_file_is_ours(fd)) {
		if (fd >= 0)
			close(fd);
		else if (errno != ELOOP)
			log_fatal("open %s/%s: %m", cfg.run_directory,
			    PID_FILE_NAME);
		log_warning("%s/%s is not a file master wrote: replacing it",
		    cfg.run_directory, PID_FILE_NAME);
		if (unlinkat(run_dir_fd, PID_FILE_NAME, 0) < 0 && errno != ENOENT)
			log_fatal("remove %s/%s: %m", cfg.run_directory,
			    PID_FILE_NAME);
		fd = openat(run_dir_fd, PID_FILE_NAME, flags | O_EXCL, 0644);
		if (fd < 0)
			log_fatal("create %s/%s: %m", cfg.run_directory,
			    PID_FILE_NAME);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char buf[32] = "";
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_fatal("postern is already running (master pid %s, "
		    "configuration %s)", buf[0] ? buf : "unknown",
		    cfg.config_directory);
	}
	if (ftruncate(fd, 0) < 0)
		log_fatal("truncate %s/%s: %m", cfg.run_directory, PID_FILE_NAME);
	return fd;
}

/* The pid, in one write ending in a newline: a reader takes a number
 * without its newline for one still being written. */
static void write_pid_file(int fd)
{
	char pid[32];
	int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (pwrite(fd, pid, (size_t)len, 0) != len)
		log_fatal("write %s/%s: %m", cfg.run_directory, PID_FILE_NAME);
}

/* Started: "postern start" has stopped reading our stderr (-s). */
static void detach_stderr(void)
{
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, STDERR_FILENO) < 0)
		log_fatal("/dev/null: %m");
	close(null);
	log_set_fatal_to_stderr(false);
}

static void remove_pid_file(void)
{
	unlinkat(run_dir_fd, PID_FILE_NAME, 0);
}

/*
 * recycle/ outlives a restart, so that a fresh instance's writers take
 * files instead of creating them (on ext4 without a journal each create
 * scans past the inodes freed in the last minutes). Only once the pid
 * file is ours: no other master's qmgr or doors move files meanwhile.
 */
static void keep_recycled(uid_t queue_owner)
{
	struct queue_recycle_kept done;
	char err[512];

	if (!queue_recycle_keep(cfg.queue_directory, queue_owner, &done, err,
	    sizeof(err))) {
		remove_pid_file();
		log_fatal("%s", err);
	}
	if (done.removed > 0 || done.set_aside > 0)
		log_info("%s/%s: %zu files kept for reuse, %zu removed, %zu "
		    "moved to %s/", cfg.queue_directory, QUEUE_RECYCLE,
		    done.kept, done.removed, done.set_aside, QUEUE_CORRUPT);
}

struct master_state {
	struct master_service *services;
	size_t nservices;
	unsigned int generation;
	int status_pipe[2];	/* children write, master reads */
	int alive_pipe[2];	/* master keeps the write end */
};

static void new_alive_pipe(struct master_state *ms)
{
	if (pipe2(ms->alive_pipe, O_CLOEXEC) < 0)
		log_fatal("pipe: %m");
}

static void read_status(struct master_state *ms)
{
	struct daemon_status st[64];
	for (;;) {
		ssize_t n = read(ms->status_pipe[0], st, sizeof(st));
		if (n <= 0)
			return;
		for (size_t i = 0; i < (size_t)n / sizeof(st[0]); i++)
			master_status_record(&st[i]);
	}
}

static bool reload(struct master_state *ms)
{
	char err[512];
	char *dir = xstrdup(cfg.config_directory);
	struct master_service *svcs;
	size_t n;

	master_notify("RELOADING=1");
	if (!cfg_load(dir, false, err, sizeof(err))) {
		log_error("reload failed, keeping the running configuration: %s",
		    err);
		free(dir);
		master_notify("READY=1");
		return false;
	}
	free(dir);
	master_state_dirs_prepare();
	if (!master_services_setup(&svcs, &n, ms->services, ms->nservices, err,
	    sizeof(err))) {
		log_error("reload failed: %s", err);
		master_notify("READY=1");
		return false;
	}
	/*
	 * Retire the old generation: closing the alive pipe tells each old
	 * child to finish the session in hand and exit.
	 */
	close(ms->alive_pipe[0]);
	close(ms->alive_pipe[1]);
	master_forget_services();
	master_services_close(ms->services, ms->nservices);
	ms->services = svcs;
	ms->nservices = n;
	ms->generation++;
	new_alive_pipe(ms);
	log_info("reload -- configuration %s", cfg.config_directory);
	master_notify("READY=1");
	return true;
}

static void shutdown_children(struct master_state *ms)
{
	master_notify("STOPPING=1");
	/* Stop accepting: close listeners, tell children to finish. */
	master_services_close(ms->services, ms->nservices);
	ms->services = NULL;
	ms->nservices = 0;
	master_forget_services();
	close(ms->alive_pipe[1]);
	close(ms->alive_pipe[0]);

	time_t deadline = time(NULL) + cfg.shutdown_timeout;
	bool termed = false;
	while (master_child_count() > 0) {
		master_reap();
		read_status(ms);
		if (master_child_count() == 0)
			break;
		time_t now = time(NULL);
		if (now >= deadline && !termed) {
			log_warning("sessions still running after %llds: "
			    "terminating them", cfg.shutdown_timeout);
			master_signal_children(SIGTERM);
			termed = true;
			deadline = now + 5;
		} else if (now >= deadline && termed) {
			master_signal_children(SIGKILL);
			deadline = now + 5;
		}
		struct pollfd pfd = { .fd = signal_pipe[0], .events = POLLIN };
		if (poll(&pfd, 1, 200) > 0) {
			char buf[64];
			while (read(signal_pipe[0], buf, sizeof(buf)) > 0)
				;
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: master [-c config_dir] [-e] [-s] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *config_dir = CFG_DEFAULT_DIRECTORY;
	bool to_stderr = false, start_report = false;
	int verbose = 0, c;
	char err[512];

	while ((c = getopt(argc, argv, "c:esv")) != -1) {
		switch (c) {
		case 'c':
			config_dir = optarg;
			break;
		case 'e':
			to_stderr = true;
			break;
		case 's':
			start_report = true;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	log_init("master", to_stderr ? LOG_DEST_STDERR : LOG_DEST_SYSLOG);
	log_set_verbose(verbose);
	log_set_fatal_to_stderr(start_report && !to_stderr);
	if (to_stderr)
		setenv("POSTERN_LOG_STDERR", "1", 1);
	else
		unsetenv("POSTERN_LOG_STDERR");
	if (verbose) {
		char v[16];
		snprintf(v, sizeof(v), "%d", verbose);
		setenv("POSTERN_VERBOSE", v, 1);
	}
	if (!cfg_load(config_dir, false, err, sizeof(err)))
		log_fatal("%s", err);
	umask(022);
	master_limits_raise();

	uid_t queue_owner = prepare_directories();
	int pid_fd = take_pid_file();
	forget_dirsync_tables();
	keep_recycled(queue_owner);
	daemon_confine_probe();
	setup_signals();

	struct master_state ms;
	memset(&ms, 0, sizeof(ms));
	if (pipe2(ms.status_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		log_fatal("pipe: %m");
	new_alive_pipe(&ms);
	if (!master_services_setup(&ms.services, &ms.nservices, NULL, 0, err,
	    sizeof(err))) {
		remove_pid_file();
		log_fatal("%s", err);
	}
	if (!priv_is_root())
		log_info("not running as root: every process runs as uid %ld",
		    (long)getuid());
	master_tls_tickets_init();
	metrics_master_init();	/* mail/metrics.h: before the first child */
	write_pid_file(pid_fd);
	if (start_report && !to_stderr)
		detach_stderr();
	log_info("daemon started -- configuration %s", cfg.config_directory);
	master_notify("READY=1");

	while (!got_term) {
		master_tls_tickets_rotate();
		/* What the workers' scoreboards say now: master is woken
		 * per connection only when it must act (master_scoreboard.c),
		 * else by its one-second timer. */
		master_scoreboard_sync(ms.services, ms.nservices);
		master_spawn_needed(ms.services, ms.nservices, ms.generation,
		    ms.status_pipe[1], ms.alive_pipe[0]);
		struct pollfd pfds[2 + 3 * DAEMON_MAX_LISTENERS + 16] = {
			{ .fd = signal_pipe[0], .events = POLLIN },
			{ .fd = ms.status_pipe[0], .events = POLLIN },
		};
		struct master_listener *busy_owner[3 * DAEMON_MAX_LISTENERS];
		int timeout_ms = 1000;
		size_t nbusy = master_busy_pollfds(ms.services, ms.nservices,
		    pfds + 2, busy_owner, 3 * DAEMON_MAX_LISTENERS, &timeout_ms);
		/* Zygotes still starting (master_zygote.c): their READY ends
		 * the wait, and the next round spawns from them. */
		size_t nzyg = master_zygote_pollfds(ms.services, ms.nservices,
		    pfds + 2 + nbusy, 16);
		int n = poll(pfds, 2 + nbusy + nzyg, timeout_ms);
		if (n < 0 && errno != EINTR)
			log_fatal("poll: %m");
		if (pfds[0].revents) {
			char buf[64];
			while (read(signal_pipe[0], buf, sizeof(buf)) > 0)
				;
		}
		read_status(&ms);
		if (got_chld) {
			got_chld = 0;
			master_reap();
		}
		master_scoreboard_sync(ms.services, ms.nservices);
		master_status_update(run_dir_fd, ms.services, ms.nservices);
		/* After the status records: a process that just turned idle
		 * takes the connection itself. */
		if (n > 0 && nbusy > 0)
			master_busy_events(ms.services, ms.nservices, pfds + 2,
			    busy_owner, nbusy);
		if (got_hup) {
			got_hup = 0;
			reload(&ms);
		}
	}
	log_info("terminating on signal %d", (int)got_term);
	shutdown_children(&ms);
	master_status_remove(run_dir_fd);
	remove_pid_file();
	close(pid_fd);
	log_info("stopped");
	return 0;
}
