/*
 * test_priv.c - the confinement primitives of util/priv_confine.c on
 * the real kernel: each case forks, confines the child, makes it try
 * something, and reads how it ended (exit code or signal).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "priv_confine.h"
#include "unit.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED true
#else
#define SANITIZED false
#endif

/* Run fn in a child; returns its wait status. */
static int in_child(int (*fn)(void *), void *arg)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(90);
		_exit(fn(arg));
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return status;
}

/* ---- seccomp: a denied call kills with SIGSYS, others go on ---- */

/* A child's wait status: killed by the filter, or a clean exit. */
static void check_killed(int st, bool killed)
{
	if (killed) {
		CHECK(WIFSIGNALED(st));
		CHECK_INT(WIFSIGNALED(st) ? WTERMSIG(st) : -1, SIGSYS);
	} else {
		CHECK(WIFEXITED(st));
		CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
	}
}

static int try_syscall(void *arg)
{
	char err[256];
	if (!priv_seccomp_deny(SANITIZED, -1, err, sizeof(err)))
		return 91;
	syscall((long)(intptr_t)arg, 0, 0, 0, 0, 0);
	return 0;
}

static void test_seccomp_kills_denied_calls(void)
{
	static const struct { long nr; bool killed; } cases[] = {
		{ SYS_unshare, true },
		{ SYS_mount, true },
		{ SYS_bpf, true },
		{ SYS_keyctl, true },
		{ SYS_io_uring_setup, true },
		{ SYS_execve, !SANITIZED },
		{ SYS_ptrace, !SANITIZED },
		{ SYS_getpid, false },
		{ SYS_sched_yield, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = in_child(try_syscall, (void *)(intptr_t)cases[i].nr);
		check_killed(st, cases[i].killed);
	}
}

/* ---- seccomp: one program may be exec'd, by its descriptor ---- */

enum exec_how { EXEC_BY_FD, EXEC_OTHER_FD, EXEC_BY_PATH };

/* Open /bin/true (O_PATH) as deliver opens mtasts-fetch, install the
 * filter for that descriptor, then exec as told: true exits 0. */
static int try_exec(void *arg)
{
	enum exec_how how = (enum exec_how)(intptr_t)arg;
	char err[256];
	char *const argv[] = { "true", NULL };
	int fd = open("/bin/true", O_PATH | O_CLOEXEC);
	int other = open("/bin/true", O_PATH | O_CLOEXEC);
	if (fd < 0 || other < 0)
		return 92;
	if (!priv_seccomp_deny(SANITIZED, fd, err, sizeof(err)))
		return 91;
	if (how == EXEC_BY_PATH)
		execv("/bin/true", argv);
	else
		syscall(SYS_execveat, how == EXEC_BY_FD ? fd : other, "", argv,
		    environ, AT_EMPTY_PATH);
	return 93;
}

static void test_seccomp_lets_one_program_run(void)
{
	static const struct { enum exec_how how; bool killed; } cases[] = {
		{ EXEC_BY_FD, false },
		{ EXEC_OTHER_FD, !SANITIZED },
		{ EXEC_BY_PATH, !SANITIZED },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = in_child(try_exec, (void *)(intptr_t)cases[i].how);
		check_killed(st, cases[i].killed);
	}
}

/* ---- Landlock: only the granted tree is reachable ---- */

struct ll_case {
	const char *allowed;	/* granted read and write */
	const char *target;	/* file the child tries to create */
};

/* A confined child's exit status for creating path: 0 made, 13 EACCES
 * (what Landlock answers), 95 any other error. */
static int create_status(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return errno == EACCES ? 13 : 95;
	close(fd);
	return 0;
}

/* A temp dir "top" with a granted subtree "top/in", and the paths of a
 * file inside and one outside it; false (and a failed check) without. */
struct ll_tree {
	char top[64], in[256], inside[300], outside[300];
};

static bool ll_tree_make(struct ll_tree *t)
{
	snprintf(t->top, sizeof(t->top), "/tmp/postern-test-priv.XXXXXX");
	if (mkdtemp(t->top) == NULL) {
		CHECK(!"mkdtemp");
		return false;
	}
	snprintf(t->in, sizeof(t->in), "%s/in", t->top);
	mkdir(t->in, 0700);
	snprintf(t->inside, sizeof(t->inside), "%s/file", t->in);
	snprintf(t->outside, sizeof(t->outside), "%s/file", t->top);
	return true;
}

static void ll_tree_remove(struct ll_tree *t)
{
	unlink(t->inside);
	rmdir(t->in);
	rmdir(t->top);
}

static int try_create(void *arg)
{
	const struct ll_case *c = arg;
	char err[256];
	struct priv_landlock ll;
	if (!priv_landlock_begin(&ll, true, false, err, sizeof(err)))
		return 92;
	if (!priv_landlock_allow(&ll, c->allowed, PRIV_FS_READ | PRIV_FS_WRITE))
		return 93;
	if (!priv_landlock_enforce(&ll, err, sizeof(err)))
		return 94;
	return create_status(c->target);
}

static void test_landlock_grants_only_its_tree(void)
{
	if (priv_landlock_abi() < 2) {
		printf("# no usable Landlock here: skipped\n");
		return;
	}
	struct ll_tree t;
	if (!ll_tree_make(&t))
		return;
	struct ll_case ok = { t.in, t.inside }, denied = { t.in, t.outside };
	int st = in_child(try_create, &ok);
	CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
	st = in_child(try_create, &denied);
	CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 13);
	CHECK(access(t.outside, F_OK) < 0);
	ll_tree_remove(&t);
}

/*
 * A zygote's ruleset (mail/daemon_confine.c, daemon_confine_prepare):
 * built once in the parent, enforced by each child it forks. Each child
 * is confined to the one tree; the parent, which only built it, is not.
 */
static struct priv_landlock built_once;

static int enforce_built_once(void *arg)
{
	char err[256];
	struct priv_landlock ll = built_once;
	if (!priv_landlock_enforce(&ll, err, sizeof(err)))
		return 94;
	/* The child's descriptor of the ruleset is gone with it. */
	if (fcntl(built_once.fd, F_GETFD) >= 0)
		return 96;
	return create_status(arg);
}

static void test_landlock_built_once_holds_in_each_child(void)
{
	char err[256];

	if (priv_landlock_abi() < 2) {
		printf("# no usable Landlock here: skipped\n");
		return;
	}
	struct ll_tree t;
	if (!ll_tree_make(&t))
		return;
	char later[300];
	snprintf(later, sizeof(later), "%s/later", t.top);
	CHECK(priv_landlock_begin(&built_once, true, false, err, sizeof(err)));
	CHECK(priv_landlock_allow(&built_once, t.in, PRIV_FS_READ |
	    PRIV_FS_WRITE));
	for (int i = 0; i < 2; i++) {
		int st = in_child(enforce_built_once, t.inside);
		CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
		unlink(t.inside);
		st = in_child(enforce_built_once, t.outside);
		CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 13);
		CHECK(access(t.outside, F_OK) < 0);
	}
	/* The parent kept its descriptor and is free. */
	CHECK(fcntl(built_once.fd, F_GETFD) >= 0);
	int fd = open(later, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	close(built_once.fd);
	unlink(later);
	ll_tree_remove(&t);
}

int main(void)
{
	RUN(test_seccomp_kills_denied_calls);
	RUN(test_seccomp_lets_one_program_run);
	RUN(test_landlock_grants_only_its_tree);
	RUN(test_landlock_built_once_holds_in_each_child);
	return unit_done();
}
