/*
 * Unit tests for the group commit of directory fsyncs (mail/dirsync.c):
 * which table files it trusts, and what a commit does with each state a
 * slot can be left in (a dead leader, a failed fsync, another directory
 * with its fsync running), commits by descriptor, then real concurrency
 * between forked processes renaming into one directory. The module is compiled in here
 * to reach its slots. Works in a fresh temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../mail/dirsync.c"
#include "unit.h"

static char tmpdir[] = "/tmp/test_dirsync.XXXXXX";

static void path_in(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", tmpdir, name);
}

/* A file at name with mode and size (bytes of zeros). */
static void make_file(const char *name, mode_t mode, off_t size)
{
	char p[256];
	path_in(p, sizeof(p), name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd >= 0) {
		if (ftruncate(fd, size) != 0)
			perror("ftruncate");
		fchmod(fd, mode);
		close(fd);
	}
}

/* A commit of the directory at path: open, commit by descriptor, close. */
static int commit_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = dirsync_commit_fd(fd);
	close(fd);
	return e;
}

/* Tables it must refuse (then each commit fsyncs alone). Runs first:
 * a refused attach leaves no table. */
static void test_attach_refuses(void)
{
	static const struct {
		const char *name;
		mode_t mode;
		off_t size;
	} bad[] = {
		{ "group-readable", 0640, 0 },
		{ "world-writable", 0606, 0 },
		{ "too-small", 0600, 4096 },
		{ "too-big", 0600, (off_t)sizeof(struct dirsync_table) + 64 },
	};
	char p[256], target[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make_file(bad[i].name, bad[i].mode, bad[i].size);
		path_in(p, sizeof(p), bad[i].name);
		CHECK(!dirsync_attach(p));
	}
	/* A symlink, even to a good file. */
	make_file("good-target", 0600, 0);
	path_in(target, sizeof(target), "good-target");
	path_in(p, sizeof(p), "link");
	CHECK(symlink(target, p) == 0);
	CHECK(!dirsync_attach(p));
	/* Another layout's magic. */
	make_file("other-layout", 0600, (off_t)sizeof(struct dirsync_table));
	path_in(p, sizeof(p), "other-layout");
	int fd = open(p, O_WRONLY);
	uint32_t magic = 0x32595344u;
	CHECK(pwrite(fd, &magic, sizeof(magic), 0) == sizeof(magic));
	close(fd);
	CHECK(!dirsync_attach(p));

	struct dirsync_counts c;
	CHECK(!dirsync_counts(&c));
	/* Without a table: fsync(dirfd) and nothing else, and its error. */
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	CHECK_INT(dirsync_commit_fd(dfd), 0);
	CHECK_INT(dirsync_commit_fd_known(dfd, NULL), 0);
	close(dfd);
	CHECK_INT(dirsync_commit_fd(dfd), EBADF);
	CHECK_INT(dirsync_commit_fd_known(dfd, NULL), EBADF);
}

static struct dirsync_slot *slot_of(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return NULL;
	return &table->slot[slot_index(&st)];
}

static void counts(struct dirsync_counts *c)
{
	memset(c, 0, sizeof(*c));
	dirsync_counts(c);
}

static void test_attach_and_lone_commit(void)
{
	char p[256], dir[256];
	struct dirsync_counts a, b;
	struct stat st;

	path_in(p, sizeof(p), "table");
	CHECK(dirsync_attach(p));
	CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600 &&
	    st.st_size == (off_t)sizeof(struct dirsync_table));
	/* A second process attaching finds the same table. */
	CHECK(dirsync_attach(p));
	path_in(dir, sizeof(dir), "d1");
	CHECK(mkdir(dir, 0700) == 0);
	counts(&a);
	CHECK_INT(commit_path(dir), 0);
	counts(&b);
	CHECK_INT(b.commits - a.commits, 1);
	CHECK_INT(b.fsyncs - a.fsyncs, 1);
	CHECK_INT(b.covered - a.covered, 0);
	CHECK_INT(b.alone - a.alone, 0);
	struct dirsync_slot *s = slot_of(dir);
	CHECK(s != NULL && atomic_load(&s->leader) == 0 &&
	    (atomic_load(&s->epoch) & 1) == 0 && atomic_load(&s->done) >= 1);
}

/* The next generation's fsync failed (EIO), under a live leader: a
 * commit now must fail. */
static void slot_fail_next(struct dirsync_slot *s)
{
	atomic_store(&s->fail_errno, EIO);
	atomic_store(&s->failed, atomic_load(&s->started) + 1);
	atomic_store(&s->leader, (uint32_t)getppid());	/* alive */
}

static void slot_clear_failure(struct dirsync_slot *s)
{
	atomic_store(&s->leader, 0);
	atomic_store(&s->failed, 0);
}

/* What a commit does with each state a slot can be left in. */
static void test_left_states(void)
{
	char dir[256];
	struct dirsync_counts a, b;

	path_in(dir, sizeof(dir), "d1");
	struct dirsync_slot *s = slot_of(dir);
	if (s == NULL) {
		CHECK(s != NULL);
		return;
	}

	/* A leader killed in its fsync: replaced within a slice. */
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	atomic_store(&s->leader, (uint32_t)dead);
	counts(&a);
	CHECK_INT(commit_path(dir), 0);
	counts(&b);
	CHECK_INT(b.fsyncs - a.fsyncs, 1);
	CHECK_INT(b.alone - a.alone, 0);
	CHECK_INT(atomic_load(&s->leader), 0);

	/* An fsync that covered us failed: our entry is not known to be on
	 * disk, so we fail too (never a success we cannot vouch for). */
	/* ... published before we look: the failure is for a generation
	 * past started, so it must count for our target. */
	slot_fail_next(s);
	CHECK_INT(commit_path(dir), EIO);
	slot_clear_failure(s);
	CHECK_INT(commit_path(dir), 0);

	/* The slot holds another directory whose fsync runs: no takeover,
	 * we fsync alone and leave its key. */
	uint64_t dev = atomic_load(&s->dev), ino = atomic_load(&s->ino);
	atomic_store(&s->ino, ino + 1000003);
	atomic_store(&s->leader, (uint32_t)getppid());
	counts(&a);
	CHECK_INT(commit_path(dir), 0);
	counts(&b);
	CHECK_INT(b.alone - a.alone, 1);
	CHECK(atomic_load(&s->ino) == ino + 1000003);
	/* Its fsync over: the slot is taken over, with a new even epoch. */
	atomic_store(&s->leader, 0);
	uint64_t e = atomic_load(&s->epoch);
	CHECK_INT(commit_path(dir), 0);
	CHECK(atomic_load(&s->dev) == dev && atomic_load(&s->ino) == ino);
	CHECK(atomic_load(&s->epoch) == (e | 1) + 1);

	/* A key change left half done by a dead changer (odd epoch, its
	 * pid in lock): the next commit takes the lock over. */
	pid_t gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);
	atomic_store(&s->lock, (uint32_t)gone);
	atomic_store(&s->epoch, atomic_load(&s->epoch) | 1);
	counts(&a);
	CHECK_INT(commit_path(dir), 0);
	counts(&b);
	CHECK_INT(b.alone - a.alone, 0);
	CHECK_INT(atomic_load(&s->lock), 0);
	CHECK((atomic_load(&s->epoch) & 1) == 0);

	/* The same with a live changer: left alone, we fsync alone. */
	atomic_store(&s->lock, (uint32_t)getppid());
	atomic_store(&s->epoch, atomic_load(&s->epoch) | 1);
	counts(&a);
	CHECK_INT(commit_path(dir), 0);
	counts(&b);
	CHECK_INT(b.alone - a.alone, 1);
	atomic_store(&s->lock, 0);
	atomic_store(&s->epoch, atomic_load(&s->epoch) + 1);
}

/* A commit by a descriptor kept open (smtpd's doors) meets those by one
 * opened per commit (same directory, same slot): it leads, or fails with a failed fsync that
 * covered it, exactly as they do. */
static void test_commit_fd(void)
{
	char dir[256];
	struct dirsync_counts a, b;

	path_in(dir, sizeof(dir), "d1");
	struct dirsync_slot *s = slot_of(dir);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (s == NULL || dfd < 0) {
		CHECK(s != NULL && dfd >= 0);
		return;
	}
	uint64_t done = atomic_load(&s->done);
	counts(&a);
	CHECK_INT(dirsync_commit_fd(dfd), 0);
	counts(&b);
	CHECK_INT(b.commits - a.commits, 1);
	CHECK_INT(b.fsyncs - a.fsyncs, 1);
	CHECK_INT(b.alone - a.alone, 0);
	CHECK(atomic_load(&s->done) == done + 1);

	/* With the device and inode given (lmtpd's new/): the same slot,
	 * no fstat. */
	struct stat st;
	CHECK(fstat(dfd, &st) == 0);
	counts(&a);
	CHECK_INT(dirsync_commit_fd_known(dfd, &st), 0);
	counts(&b);
	CHECK_INT(b.commits - a.commits, 1);
	CHECK_INT(b.fsyncs - a.fsyncs, 1);
	CHECK_INT(b.alone - a.alone, 0);
	CHECK(atomic_load(&s->done) == done + 2);

	slot_fail_next(s);
	CHECK_INT(dirsync_commit_fd(dfd), EIO);
	slot_clear_failure(s);
	slot_fail_next(s);
	CHECK_INT(dirsync_commit_fd_known(dfd, &st), EIO);
	slot_clear_failure(s);
	close(dfd);
}

#define WRITERS 6
#define RENAMES 40

/* Forked writers each rename files into one directory and commit each:
 * every commit succeeds, and is either an fsync or covered by one. */
static void test_concurrent_writers(void)
{
	char dir[256], tmp[256];
	struct dirsync_counts a, b;

	path_in(dir, sizeof(dir), "shared");
	path_in(tmp, sizeof(tmp), "shared-tmp");
	CHECK(mkdir(dir, 0700) == 0 && mkdir(tmp, 0700) == 0);
	counts(&a);
	pid_t kids[WRITERS];
	for (int k = 0; k < WRITERS; k++) {
		kids[k] = fork();
		if (kids[k] != 0)
			continue;
		/* By a descriptor opened per commit, by one kept (the
		 * doors), by one kept with its stat (lmtpd). */
		int dfd = open(dir, O_RDONLY | O_DIRECTORY);
		struct stat st;
		if (fstat(dfd, &st) != 0)
			_exit(1);
		for (int i = 0; i < RENAMES; i++) {
			char from[512], to[512];
			snprintf(from, sizeof(from), "%s/%d.%d", tmp, k, i);
			snprintf(to, sizeof(to), "%s/%d.%d", dir, k, i);
			int fd = open(from, O_WRONLY | O_CREAT | O_EXCL, 0600);
			if (fd < 0 || write(fd, "x\n", 2) != 2 || fsync(fd) != 0 ||
			    close(fd) != 0 || rename(from, to) != 0 ||
			    (k % 3 == 0 ? commit_path(dir) : k % 3 == 1 ?
			    dirsync_commit_fd(dfd) :
			    dirsync_commit_fd_known(dfd, &st)) != 0)
				_exit(1);
		}
		_exit(0);
	}
	int failed = 0;
	for (int k = 0; k < WRITERS; k++) {
		int status;
		if (waitpid(kids[k], &status, 0) != kids[k] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	CHECK_INT(failed, 0);
	counts(&b);
	uint64_t commits = b.commits - a.commits;
	CHECK_INT(commits, WRITERS * RENAMES);
	CHECK_INT(b.fsyncs - a.fsyncs + b.covered - a.covered, commits);
	printf("# %d writers: %llu commits, %llu fsyncs, %llu covered, "
	    "%llu alone\n", WRITERS, (unsigned long long)commits,
	    (unsigned long long)(b.fsyncs - a.fsyncs),
	    (unsigned long long)(b.covered - a.covered),
	    (unsigned long long)(b.alone - a.alone));
	struct dirsync_slot *s = slot_of(dir);
	CHECK(s != NULL && atomic_load(&s->leader) == 0);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_attach_refuses);
	RUN(test_attach_and_lone_commit);
	RUN(test_left_states);
	RUN(test_commit_fd);
	RUN(test_concurrent_writers);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		perror("rm");
	return unit_done();
}
