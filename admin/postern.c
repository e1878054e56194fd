/*
 * postern.c - the administration command.
 *
 *   postern [-c DIR] start [-f]   start master (in the foreground with -f)
 *   postern [-c DIR] stop         stop gracefully, wait until gone
 *   postern [-c DIR] reload       re-read the configuration
 *   postern [-c DIR] status       exit 0 if running, 1 if not; the
 *                      accept services' busy and idle processes
 *   postern [-c DIR] check        validate configuration and directories
 *   postern [-c DIR] config [-n|-d] [KEY...]  print effective values
 *                      (-n: set in the file, -d: defaults); -e KEY=VALUE,
 *                      -X KEY: edit postern.conf (admin/postern_config.c)
 *   postern [-c DIR] queue ...    queue inspection and control
 *   postern [-c DIR] map ...      lookup tables
 *   postern [-c DIR] dkim ...     DKIM keys (postern_dkim.c)
 *   postern [-c DIR] spf check .. an SPF result (postern_spf.c)
 *   postern [-c DIR] top          a live view of the running system
 *                      (postern_top.c)
 *   postern [-c DIR] tls report [--dry-run]  TLS-RPT reports (postern_tls.c)
 *
 * Runs as the invoking user. The config directory comes from -c, else
 * $POSTERN_CONFIG_DIR, else /etc/postern.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "priv.h"
#include "queue.h"
#include "sock.h"
#include "str.h"

static const char *config_dir = CFG_DEFAULT_DIRECTORY;

/* allow_missing: the command works on defaults without a config file. */
static void load_config(bool allow_missing)
{
	char err[512];
	if (!cfg_load(config_dir, allow_missing, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		exit(1);
	}
}

static char *master_path(void)
{
	return xasprintf("%s/master", cfg.daemon_directory);
}

/* Does process pid run daemon_directory/master (perhaps since replaced
 * by an upgrade, which the kernel shows as " (deleted)")? */
static bool runs_master(pid_t pid, char *why, size_t whysize)
{
	char link[64], exe[PATH_MAX], want[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/%ld/exe", (long)pid);
	ssize_t n = readlink(link, exe, sizeof(exe) - 1);
	if (n < 0) {
		/* Not root: a root master's exe is hidden from us, and so is
		 * the power to signal it; nothing to protect. */
		if ((errno == EACCES || errno == EPERM) && !priv_is_root())
			return true;
		snprintf(why, whysize, "pid %ld named by master.pid is not "
		    "running postern's master (%s: %s)", (long)pid, link,
		    strerror(errno));
		return false;
	}
	exe[n] = '\0';
	const char *deleted = " (deleted)";
	size_t dl = strlen(deleted);
	if ((size_t)n > dl && strcmp(exe + n - dl, deleted) == 0)
		exe[n - dl] = '\0';
	char *path = master_path();
	bool same = realpath(path, want) != NULL && strcmp(exe, want) == 0;
	free(path);
	if (!same)
		snprintf(why, whysize, "pid %ld named by master.pid is not "
		    "postern's master: it runs %s", (long)pid, exe);
	return same;
}

/*
 * The master's pid if one runs for this configuration, 0 if none runs,
 * -1 (why says it) if master.pid cannot be trusted. Nothing the daemon
 * user controls may decide which process root signals (issue 12): the
 * pid file must be in a directory of root's (ours, when not root)
 * writable by nobody else, be a plain file of the same owner, be locked
 * as a running master locks it, and name a process running the master
 * program. *starting is set (and 0 returned) for a master that holds the
 * file but has not written its pid: it writes it once its listeners are
 * bound (master/master.c).
 */
static pid_t read_master_pid(char *why, size_t whysize, bool *starting)
{
	*starting = false;
	int dfd = open(cfg.run_directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	struct stat st;
	pid_t pid = 0;
	int fd = -1;
	if (fstat(dfd, &st) < 0 || (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & 022) != 0) {
		snprintf(why, whysize, "run_directory %s belongs to another "
		    "user or is writable by others: its master.pid is not "
		    "trusted (\"postern start\" as root makes it root's)",
		    cfg.run_directory);
		pid = -1;
		goto out;
	}
	uid_t dir_owner = st.st_uid;
	fd = openat(dfd, "master.pid", O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd < 0)
		goto out;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != dir_owner) {
		snprintf(why, whysize, "%s/master.pid is not a file master "
		    "wrote", cfg.run_directory);
		pid = -1;
		goto out;
	}
	if (flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		goto out;	/* not locked: no master runs */
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	if (strchr(buf, '\n') == NULL && strspn(buf, "0123456789") == strlen(buf)) {
		*starting = true;	/* empty, or its pid half written */
		goto out;
	}
	char *end;
	long v = strtol(buf, &end, 10);
	if (v <= 1 || (*end != '\n' && *end != '\0')) {
		snprintf(why, whysize, "%s/master.pid does not hold a pid",
		    cfg.run_directory);
		pid = -1;
		goto out;
	}
	pid = runs_master((pid_t)v, why, whysize) ? (pid_t)v : -1;
out:
	if (fd >= 0)
		close(fd);
	close(dfd);
	return pid;
}

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* read_master_pid(), waiting (up to start_timeout) for a master that is
 * starting to write its pid. */
static pid_t find_master(char *why, size_t whysize)
{
	long long start = monotonic_ms();
	for (;;) {
		bool starting;
		pid_t pid = read_master_pid(why, whysize, &starting);
		if (!starting)
			return pid;
		if (monotonic_ms() - start >= cfg.start_timeout * 1000) {
			snprintf(why, whysize, "master is still starting: "
			    "%s/master.pid has no pid after %lld seconds "
			    "(start_timeout)", cfg.run_directory,
			    cfg.start_timeout);
			return -1;
		}
		usleep(100 * 1000);
	}
}

/* find_master() for commands that only need to know; untrusted is "no". */
static pid_t running_master(void)
{
	char why[PATH_MAX + 256];
	pid_t pid = find_master(why, sizeof(why));
	return pid > 0 ? pid : 0;
}

/*
 * Read what master wrote to its stderr while starting (its fatal
 * lines, master -s) into report, at most size - 1 bytes kept; false at
 * end of file.
 */
static bool read_report(int fd, char *report, size_t size, size_t *len)
{
	char buf[1024];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		size_t room = size - 1 - *len;
		size_t take = (size_t)n < room ? (size_t)n : room;
		memcpy(report + *len, buf, take);
		*len += take;
		report[*len] = '\0';
	}
}

/*
 * Wait until the master we started (child) has written its pid, which
 * it does once every listener is bound, for at most start_timeout: a
 * loaded machine can take long (a sanitized build at a load of 30 took
 * more than 10 s). A master that exits meanwhile is reported at once,
 * with what it wrote to its stderr (report_fd: its fatal error, as a
 * bind's) and its status; one still starting at the bound is left
 * running, and said to be.
 */
static int wait_for_master(pid_t child, int report_fd)
{
	char report[4096] = "";
	size_t report_len = 0;
	bool report_open = true;
	char pid_file[PATH_MAX];
	snprintf(pid_file, sizeof(pid_file), "%s/master.pid", cfg.run_directory);
	long long start = monotonic_ms(), limit = cfg.start_timeout * 1000;
	bool told = false;
	for (;;) {
		char why[PATH_MAX + 256];
		bool starting;
		pid_t pid = read_master_pid(why, sizeof(why), &starting);
		if (pid > 0) {
			printf("postern: started (master pid %ld)\n", (long)pid);
			return 0;
		}
		int status;
		if (waitpid(child, &status, WNOHANG) == child) {
			if (report_open)
				read_report(report_fd, report, sizeof(report),
				    &report_len);
			fputs(report, stderr);
			char how[96];
			if (WIFSIGNALED(status))
				snprintf(how, sizeof(how), "was killed by signal "
				    "%d (%s)", WTERMSIG(status),
				    strsignal(WTERMSIG(status)));
			else
				snprintf(how, sizeof(how), "exited with status %d",
				    WEXITSTATUS(status));
			fprintf(stderr, "postern: master (pid %ld) %s while "
			    "starting; see the mail log (or run \"postern start "
			    "-f\")\n", (long)child, how);
			return 1;
		}
		long long waited = monotonic_ms() - start;
		if (waited >= limit) {
			fputs(report, stderr);
			fprintf(stderr, "postern: master (pid %ld) did not write "
			    "%s within %lld seconds (start_timeout); it is still "
			    "running and may yet start: see the mail log and "
			    "\"postern status\"\n", (long)child, pid_file,
			    cfg.start_timeout);
			return 1;
		}
		if (waited >= 10000 && !told) {
			fprintf(stderr, "postern: waiting for master (pid %ld) to "
			    "write %s, up to %lld seconds (start_timeout)\n",
			    (long)child, pid_file, cfg.start_timeout);
			told = true;
		}
		/* Wake at once when master's stderr closes: it exited. */
		struct pollfd pfd = { .fd = report_fd, .events = POLLIN };
		if (!report_open)
			pfd.fd = -1;
		if (poll(&pfd, 1, 100) > 0)
			report_open = read_report(report_fd, report,
			    sizeof(report), &report_len);
	}
}

static int cmd_start(int argc, char **argv)
{
	bool foreground = argc > 1 && strcmp(argv[1], "-f") == 0;
	bool verbose = argc > 1 && strcmp(argv[argc - 1], "-v") == 0;
	pid_t pid = running_master();
	if (pid > 0) {
		fprintf(stderr, "postern: already running (master pid %ld)\n",
		    (long)pid);
		return 1;
	}
	char *path = master_path();
	if (access(path, X_OK) != 0) {
		fprintf(stderr, "postern: %s: %s (check daemon_directory)\n",
		    path, strerror(errno));
		free(path);
		return 1;
	}
	char *args[] = { "master", "-c", (char *)config_dir,
		foreground ? "-e" : "-s", verbose ? "-v" : NULL, NULL };
	if (foreground) {
		execv(path, args);
		fprintf(stderr, "postern: exec %s: %s\n", path, strerror(errno));
		free(path);
		return 1;
	}
	/*
	 * Background: detach, log to syslog, wait until it is up. master's
	 * stderr is a pipe to us until it has bound its listeners (-s): a
	 * fatal error on the way, as a port in use, is printed here.
	 */
	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0) {
		perror("postern: pipe");
		return 1;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("postern: fork");
		return 1;
	}
	if (child == 0) {
		setsid();
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			if (null > 2)
				close(null);
		}
		dup2(report[1], 2);
		closefrom(3);	/* nothing of ours leaks into the daemon */
		execv(path, args);
		_exit(127);
	}
	free(path);
	close(report[1]);
	fcntl(report[0], F_SETFL, O_NONBLOCK);
	int status = wait_for_master(child, report[0]);
	close(report[0]);
	return status;
}

static int signal_master(int sig, const char *what, pid_t *signalled)
{
	char why[PATH_MAX + 256];
	pid_t pid = find_master(why, sizeof(why));
	if (pid < 0) {
		fprintf(stderr, "postern: %s: %s\n", what, why);
		return 1;
	}
	if (pid == 0) {
		fprintf(stderr, "postern: not running\n");
		return 1;
	}
	if (kill(pid, sig) < 0) {
		fprintf(stderr, "postern: %s: kill %ld: %s\n", what, (long)pid,
		    strerror(errno));
		return 1;
	}
	if (signalled != NULL)
		*signalled = pid;
	return 0;
}

/* Has the process gone: no such pid, or a zombie its parent has not
 * reaped yet? */
static bool process_gone(pid_t pid)
{
	char path[64], stat[256];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kill(pid, 0) < 0 && errno == ESRCH;
	ssize_t n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return true;
	stat[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	const char *end = strrchr(stat, ')');
	return end != NULL && end[1] == ' ' && (end[2] == 'Z' || end[2] == 'X');
}

static int cmd_stop(int argc, char **argv)
{
	pid_t pid;
	if (signal_master(SIGTERM, "stop", &pid) != 0)
		return 1;
	/*
	 * Wait for master to finish sessions and exit (bounded). Its pid
	 * file goes before its last steps (closing the listeners at exit
	 * among them), so "stopped" waits for the process itself: a start
	 * right after must find the ports free.
	 */
	long long limit = (cfg.shutdown_timeout + 15) * 10;
	for (long long i = 0; i < limit; i++) {
		if (running_master() == 0 && process_gone(pid)) {
			printf("postern: stopped\n");
			return 0;
		}
		usleep(100 * 1000);
	}
	fprintf(stderr, "postern: master still running\n");
	return 1;
}

static int cmd_reload(int argc, char **argv)
{
	char err[512];
	/* Refuse to send a config that master would reject. */
	if (!cfg_load(config_dir, false, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	if (signal_master(SIGHUP, "reload", NULL) != 0)
		return 1;
	printf("postern: reloading\n");
	return 0;
}

/*
 * The accept services' processes, from the counts master leaves in
 * run_directory/master.status (master/master_status.c; at most about two
 * seconds old), under the names of master.cf's columns. Nothing when the
 * file is not the running master's (pid), is not a plain file of the
 * directory's owner, or is not there yet.
 */
static void print_service_counts(pid_t master_pid)
{
	int dfd = open(cfg.run_directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = dfd < 0 ? -1 : openat(dfd, "master.status", O_RDONLY |
	    O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat dst, st;
	FILE *f = NULL;
	if (fd >= 0 && fstat(dfd, &dst) == 0 && fstat(fd, &st) == 0 &&
	    S_ISREG(st.st_mode) && st.st_uid == dst.st_uid)
		f = fdopen(fd, "r");
	if (dfd >= 0)
		close(dfd);
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	char line[512];
	long pid = 0;
	if (fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "pid %ld", &pid) != 1 || pid != (long)master_pid) {
		fclose(f);
		return;
	}
	printf("%-12s %-8s %7s %9s %5s %5s\n", "service", "command",
	    "maxproc", "processes", "busy", "idle");
	while (fgets(line, sizeof(line), f) != NULL) {
		char name[64], command[64];
		int maxproc, procs, busy;
		if (sscanf(line, "service %63s %63s %d %d %d", name, command,
		    &maxproc, &procs, &busy) == 5)
			printf("%-12s %-8s %7d %9d %5d %5d\n", name, command,
			    maxproc, procs, busy, procs - busy);
	}
	fclose(f);
}

static int cmd_status(int argc, char **argv)
{
	pid_t pid = running_master();
	if (pid > 0) {
		printf("postern is running (master pid %ld)\n", (long)pid);
		print_service_counts(pid);
		return 0;
	}
	printf("postern is not running\n");
	return 1;
}

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{ "start", cmd_start, "start [-f]      start postern (-f: foreground)" },
	{ "stop", cmd_stop, "stop            stop postern gracefully" },
	{ "reload", cmd_reload, "reload          re-read the configuration" },
	{ "status", cmd_status, "status          is postern running? its busy and idle processes" },
	{ "check", admin_check_main, "check           validate configuration and directories" },
	{ "config", admin_config_main, "config [-n|-d] [KEY...] | -e KEY=VALUE... | -X KEY...\n"
	    "                  print the configuration, or edit postern.conf" },
	{ "queue", admin_queue_main, "queue ...       list, show, delete, hold, release, flush the queue" },
	{ "map", admin_map_main, "map ...         build, query and list lookup tables" },
	{ "dkim", admin_dkim_main, "dkim ...        make DKIM keys, check their DNS records" },
	{ "spf", admin_spf_main, "spf check IP SENDER [HELO]  the SPF result for a client" },
	{ "top", admin_top_main, "top [-b] [-d SECONDS] [-n COUNT]  a live view: rates, queue, destinations" },
	{ "tls", admin_tls_main, "tls report [--dry-run] [--day DAY]  send (or print) the TLS-RPT reports" },
};

static void usage(void)
{
	fprintf(stderr, "usage: postern [-c config_dir] command [args]\n"
	    "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "  %s\n", commands[i].help);
	exit(2);
}

int main(int argc, char **argv)
{
	int i = 1;
	const char *env = getenv("POSTERN_CONFIG_DIR");

	log_init("postern", LOG_DEST_STDERR);
	if (env && *env)
		config_dir = env;
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			config_dir = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2]) {
			config_dir = argv[i] + 2;
			i++;
		} else {
			usage();
		}
	}
	if (i >= argc)
		usage();
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(argv[i], commands[k].name) == 0) {
			load_config(commands[k].run == admin_map_main ||
			    commands[k].run == admin_config_main);
			return commands[k].run(argc - i, argv + i);
		}
	}
	fprintf(stderr, "postern: unknown command \"%s\"\n", argv[i]);
	usage();
}
