/*
 * deliver_mtasts_fetch.c - running mtasts-fetch, the program that
 * fetches an MTA-STS policy over HTTPS (mtasts-fetch/mtasts_fetch.c;
 * its arguments and answer: mail/mtasts.h), so that deliver links no
 * libcurl. A fetch is due at most once per domain and max_age, and the
 * cache, its lock and the negative cache stay in deliver_mtasts.c: this
 * file only runs the program once and reads its answer.
 *
 * The program is opened (O_PATH) in deliver's init, before confinement,
 * and run through that descriptor only (execveat with AT_EMPTY_PATH):
 * deliver's seccomp filter and Landlock rules let exactly that through
 * (mail/daemon_confine.c). smtp_mta_sts_timeout counts from before the
 * fork to the end of the answer; a fetcher that has not answered by then
 * is killed.
 *
 * Trusts the config; the answer is untrusted (the fetcher parses the
 * network's bytes): its length is bounded and its first line parsed
 * strictly, and anything else is a failed fetch, never more.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "daemon.h"
#include "deliver.h"
#include "log.h"
#include "mem.h"
#include "mtasts.h"

/* The answer at most: its line and the largest body. */
#define ANSWER_MAX (MTASTS_FETCH_LINE_MAX + MTASTS_POLICY_MAX)

static char fetcher_path[4096];
static int fetcher_fd = -1;	/* O_PATH on fetcher_path, or -1 */
static int fetcher_errno;	/* why it could not be opened */

void deliver_mtasts_fetch_init(void)
{
	snprintf(fetcher_path, sizeof(fetcher_path), "%s/%s",
	    cfg.daemon_directory, MTASTS_FETCH_PROGRAM);
	fetcher_fd = open(fetcher_path, O_PATH | O_CLOEXEC);
	if (fetcher_fd < 0) {
		fetcher_errno = errno;
		log_warning("cannot open %s: %m: MTA-STS policies cannot be "
		    "fetched", fetcher_path);
		return;
	}
	daemon_confine_exec(fetcher_fd);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child: the pipe as standard output, nothing else of deliver's
 * open, and the program. An exec that fails answers for it. */
static _Noreturn void run_fetcher(int out, char *const argv[])
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int null = open("/dev/null", O_RDONLY);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 ||
	    dup2(out, STDOUT_FILENO) < 0)
		_exit(127);
	/* deliver's job socket, its connections, master's pipes. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	syscall(SYS_execveat, fetcher_fd, "", argv, environ, AT_EMPTY_PATH);
	dprintf(STDOUT_FILENO, "fail sts-policy-fetch-error cannot run %s: "
	    "%s\n", fetcher_path, strerror(errno));
	_exit(127);
}

/* Read the answer until EOF or the deadline; its length, or -1 on a
 * timeout, -2 if it is too long. */
static ssize_t read_answer(int fd, char *buf, size_t size,
    long long deadline)
{
	size_t len = 0;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return (ssize_t)len;	/* EOF (or an error: as EOF) */
		len += (size_t)n;
		if (len == size)
			return -2;
	}
}

/* Parse an answer (mail/mtasts.h); false with err if malformed. */
static bool parse_answer(char *buf, size_t len, bool exited_ok,
    char **body, size_t *blen, const char **result_type, char *err,
    size_t errsize)
{
	char *nl = memchr(buf, '\n', len < MTASTS_FETCH_LINE_MAX ? len :
	    MTASTS_FETCH_LINE_MAX);
	if (nl == NULL)
		return false;
	*nl = '\0';
	size_t rest = len - (size_t)(nl + 1 - buf);
	if (strncmp(buf, "fail ", 5) == 0) {
		static const char *const types[] = { "sts-policy-fetch-error",
			"sts-webpki-invalid" };
		char *text = strchr(buf + 5, ' ');
		if (text == NULL || rest != 0)
			return false;
		*text++ = '\0';
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			if (strcmp(buf + 5, types[i]) == 0) {
				*result_type = types[i];
				snprintf(err, errsize, "%s", text);
				return true;
			}
		}
		return false;
	}
	char *end;
	if (!exited_ok || strncmp(buf, "ok ", 3) != 0 || buf[3] < '0' ||
	    buf[3] > '9')
		return false;
	errno = 0;
	unsigned long long n = strtoull(buf + 3, &end, 10);
	if (errno != 0 || *end != '\0' || n > MTASTS_POLICY_MAX || n != rest)
		return false;
	*body = xmalloc(rest + 1);
	memcpy(*body, nl + 1, rest);
	(*body)[rest] = '\0';
	*blen = rest;
	return true;
}

bool deliver_mtasts_fetch(const char *domain, const char *addrs,
    const char *cafile, const char *capath, long timeout_ms, char **body,
    size_t *len, const char **result_type, char *err, size_t errsize)
{
	*body = NULL;
	*len = 0;
	*result_type = "sts-policy-fetch-error";
	if (fetcher_fd < 0) {
		snprintf(err, errsize, "cannot run %s: %s", fetcher_path,
		    strerror(fetcher_errno));
		return false;
	}
	long long deadline = now_ms() + timeout_ms;
	char timeout[32];
	snprintf(timeout, sizeof(timeout), "%ld", timeout_ms);
	char *const argv[] = { MTASTS_FETCH_PROGRAM, "-t", timeout,
		"-f", (char *)cafile, "-p", (char *)capath, "--",
		(char *)domain, (char *)addrs, NULL };
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errsize, "cannot run %s: pipe: %s",
		    fetcher_path, strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid == 0)
		run_fetcher(p[1], argv);
	int fork_errno = errno;
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		snprintf(err, errsize, "cannot run %s: fork: %s",
		    fetcher_path, strerror(fork_errno));
		return false;
	}
	char *buf = xmalloc(ANSWER_MAX);
	ssize_t n = read_answer(p[0], buf, ANSWER_MAX, deadline);
	close(p[0]);
	if (n < 0)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	bool ok = false;
	if (n == -1)
		snprintf(err, errsize, "%s: no answer within %ld ms: killed",
		    MTASTS_FETCH_PROGRAM, timeout_ms);
	else if (n == -2)
		snprintf(err, errsize, "%s: an answer over %d octets: killed",
		    MTASTS_FETCH_PROGRAM, ANSWER_MAX);
	else if (parse_answer(buf, (size_t)n, WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, body, len, result_type, err, errsize))
		ok = *body != NULL;
	else if (WIFSIGNALED(status))
		snprintf(err, errsize, "%s: killed by signal %d",
		    MTASTS_FETCH_PROGRAM, WTERMSIG(status));
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		snprintf(err, errsize, "%s: exit status %d",
		    MTASTS_FETCH_PROGRAM, WEXITSTATUS(status));
	else
		snprintf(err, errsize, "%s: a malformed answer",
		    MTASTS_FETCH_PROGRAM);
	free(buf);
	return ok;
}
