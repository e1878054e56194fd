/*
 * confine-cost.c - what postern's confinement (util/priv_confine.c)
 * costs a system call, measured in one process before and after it
 * confines itself the way the daemons do: PR_SET_NO_NEW_PRIVS, a
 * Landlock ruleset allowing one directory, and the seccomp deny filter.
 *
 *   confine-cost [DIR]    DIR: where to open files (default /tmp)
 *
 * Two loops, each the fastest of 7 rounds (the least disturbed by other
 * load): a system call the filter lets through (getppid, the bare cost
 * of running the BPF program) and open+fstat+close of a file in DIR
 * (what Landlock adds to a path walk). A daemon's cost per message is
 * these differences times its system calls per message, which bench/run
 * does not need to guess: RESULTS.md gives both. Measuring instrument
 * only; never installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "priv_confine.h"

#define ROUNDS 7
#define SYSCALLS 2000000L
#define OPENS 200000L

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ns per getppid(), fastest round */
static double time_syscall(void)
{
	double best = 1e30;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_ns();
		for (long i = 0; i < SYSCALLS; i++)
			(void)syscall(SYS_getppid);
		double per = (now_ns() - t0) / SYSCALLS;
		if (per < best)
			best = per;
	}
	return best;
}

/* ns per open+fstat+close of path, fastest round */
static double time_open(const char *path)
{
	double best = 1e30;
	struct stat st;
	for (int r = 0; r < ROUNDS; r++) {
		double t0 = now_ns();
		for (long i = 0; i < OPENS; i++) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || fstat(fd, &st) < 0) {
				perror(path);
				exit(1);
			}
			close(fd);
		}
		double per = (now_ns() - t0) / OPENS;
		if (per < best)
			best = per;
	}
	return best;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	char path[4096], err[256];

	snprintf(path, sizeof(path), "%s/confine-cost.%ld", dir, (long)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, "x\n", 2) != 2) {
		perror(path);
		return 1;
	}
	close(fd);

	double sys_before = time_syscall();
	double open_before = time_open(path);

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		perror("PR_SET_NO_NEW_PRIVS");
		return 1;
	}
	struct priv_landlock ll;
	int abi = 0;
	if (priv_landlock_begin(&ll, false, false, err, sizeof(err))) {
		if (!priv_landlock_allow(&ll, dir, PRIV_FS_READ | PRIV_FS_WRITE) ||
		    !priv_landlock_enforce(&ll, err, sizeof(err))) {
			fprintf(stderr, "Landlock: %s\n", err);
			return 1;
		}
		abi = ll.abi;
	}
	if (!priv_seccomp_deny(false, -1, err, sizeof(err))) {
		fprintf(stderr, "seccomp: %s\n", err);
		return 1;
	}

	double sys_after = time_syscall();
	double open_after = time_open(path);
	unlink(path);

	printf("confinement cost (Landlock ABI %d%s, seccomp deny filter), "
	    "fastest of %d rounds\n", abi, abi ? "" : ": unavailable", ROUNDS);
	printf("%-28s %10s %10s %10s\n", "", "before ns", "after ns", "added ns");
	printf("%-28s %10.1f %10.1f %10.1f\n", "getppid()", sys_before,
	    sys_after, sys_after - sys_before);
	printf("%-28s %10.1f %10.1f %10.1f\n", "open+fstat+close", open_before,
	    open_after, open_after - open_before);
	return 0;
}
