/*
 * test_mbox.c - mail/mbox.c: the "From " line, the body conversion with
 * its quoting (fed whole and byte by byte, so that a line start split
 * between two pieces is still seen), the dotlock and the checked open of
 * a mailbox.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mbox.h"
#include "str.h"
#include "unit.h"

static const struct {
	const char *in;
	const char *want;
} bodies[] = {
	{ "", "\n" },
	{ "a\r\n", "a\n\n" },
	{ "a\r\nb", "a\nb\n\n" },
	{ "From me\r\n", ">From me\n\n" },
	{ "x\r\nFrom me\r\nFrom\r\nFrom:\r\n", "x\n>From me\nFrom\nFrom:\n\n" },
	{ ">From x\r\n", ">From x\n\n" },		/* mboxo: not re-quoted */
	{ " From x\r\n", " From x\n\n" },
	{ "from x\r\n", "from x\n\n" },
	{ "Fro\r\n\r\nFrom \r\n", "Fro\n\n>From \n\n" },
	{ "a\rb\r\n", "a\rb\n\n" },			/* a bare CR stays */
	{ "LF only\nFrom x\n", "LF only\n>From x\n\n" },
	{ "end\r", "end\r\n\n" },
};

static char *convert(const char *in, size_t piece)
{
	struct mbox_body b;
	struct str out;
	size_t len = strlen(in);

	str_init(&out, STR_NO_MAX);
	mbox_body_init(&b);
	for (size_t i = 0; i < len; i += piece)
		mbox_body_feed(&b, in + i, len - i < piece ? len - i : piece,
		    &out);
	mbox_body_finish(&b, &out);
	return str_steal(&out);
}

static void test_body(void)
{
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		for (size_t piece = 1; piece <= 7; piece += 6) {
			char *got = convert(bodies[i].in, piece);
			CHECK_STR(got, bodies[i].want);
			free(got);
		}
	}
}

/* The Maildir form: LF line ends, nothing else changed. */
static void test_plain(void)
{
	struct mbox_body b;
	struct str out;
	str_init(&out, STR_NO_MAX);
	mbox_body_init(&b);
	b.plain = true;
	mbox_body_feed(&b, "From x\r\nend", 11, &out);
	mbox_body_finish(&b, &out);
	CHECK_STR(str_cstr(&out), "From x\nend\n");
	str_free(&out);
}

static void test_from_line(void)
{
	struct str out;
	str_init(&out, STR_NO_MAX);
	setenv("TZ", "UTC", 1);
	tzset();
	mbox_from_line(&out, "alice@example.org", 1796574305);
	CHECK_STR(str_cstr(&out), "From alice@example.org Sun Dec  6 16:25:05 "
	    "2026\n");
	str_clear(&out);
	mbox_from_line(&out, "", 1796574305);
	CHECK_STR(str_cstr(&out), "From MAILER-DAEMON Sun Dec  6 16:25:05 "
	    "2026\n");
	str_free(&out);
}

static char dir[64];
static int dirfd_;

static void make_dir(void)
{
	strcpy(dir, "/tmp/test_mbox.XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
}

static void test_dotlock(void)
{
	char err[256];
	struct stat st;

	CHECK(mbox_dotlock(dirfd_, "alice", 0, err, sizeof(err)));
	CHECK(fstatat(dirfd_, "alice.lock", &st, 0) == 0);
	/* Held: a second taker gives up at its deadline. */
	CHECK(!mbox_dotlock(dirfd_, "alice", 200, err, sizeof(err)));
	CHECK(strstr(err, "alice.lock exists") != NULL);
	/* A child holding the lock, released while we wait. */
	pid_t pid = fork();
	if (pid == 0) {
		poll(NULL, 0, 300);
		mbox_dotunlock(dirfd_, "alice");
		_exit(0);
	}
	CHECK(mbox_dotlock(dirfd_, "alice", 5000, err, sizeof(err)));
	waitpid(pid, NULL, 0);
	mbox_dotunlock(dirfd_, "alice");
	CHECK(fstatat(dirfd_, "alice.lock", &st, 0) < 0);
	/* A stale lock is taken away. */
	CHECK(mbox_dotlock(dirfd_, "bob", 0, err, sizeof(err)));
	struct timespec old[2] = { { time(NULL) - MBOX_DOTLOCK_STALE - 10, 0 },
		{ time(NULL) - MBOX_DOTLOCK_STALE - 10, 0 } };
	CHECK(utimensat(dirfd_, "bob.lock", old, 0) == 0);
	CHECK(mbox_dotlock(dirfd_, "bob", 0, err, sizeof(err)));
	mbox_dotunlock(dirfd_, "bob");
	/* A symlink named like the lock is not followed. */
	CHECK(symlinkat("/tmp/nowhere-mbox-test", dirfd_, "eve.lock") == 0);
	CHECK(!mbox_dotlock(dirfd_, "eve", 0, err, sizeof(err)));
	CHECK(access("/tmp/nowhere-mbox-test", F_OK) < 0);
	unlinkat(dirfd_, "eve.lock", 0);
}

static void test_fcntl_lock(void)
{
	char err[256];
	int fd = openat(dirfd_, "locked", O_RDWR | O_CREAT, 0600);
	CHECK(mbox_fcntl_lock(fd, 0, err, sizeof(err)));
	pid_t pid = fork();
	if (pid == 0) {
		int fd2 = openat(dirfd_, "locked", O_RDWR);
		_exit(mbox_fcntl_lock(fd2, 200, err, sizeof(err)) ? 1 : 0);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	unlinkat(dirfd_, "locked", 0);
}

static void test_open(void)
{
	char err[256];
	int fd;
	struct stat st;
	uid_t me = geteuid();

	/* Created when missing, mode 0600, ours. */
	CHECK_INT(mbox_open(dirfd_, "carol", me, getegid(), &fd, err,
	    sizeof(err)), MBOX_OPEN_OK);
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0600 &&
	    st.st_uid == me);
	CHECK(write(fd, "x", 1) == 1);
	close(fd);
	CHECK_INT(mbox_open(dirfd_, "carol", me, getegid(), &fd, err,
	    sizeof(err)), MBOX_OPEN_OK);
	close(fd);
	/* Refused: a symlink, a second link, a directory, another owner. */
	CHECK(symlinkat("carol", dirfd_, "dave") == 0);
	CHECK_INT(mbox_open(dirfd_, "dave", me, getegid(), &fd, err,
	    sizeof(err)), MBOX_OPEN_UNSAFE);
	CHECK(strstr(err, "symbolic link") != NULL);
	CHECK(linkat(dirfd_, "carol", dirfd_, "erin", 0) == 0);
	CHECK_INT(mbox_open(dirfd_, "erin", me, getegid(), &fd, err,
	    sizeof(err)), MBOX_OPEN_UNSAFE);
	CHECK(strstr(err, "2 links") != NULL);
	unlinkat(dirfd_, "erin", 0);
	CHECK(mkdirat(dirfd_, "frank", 0700) == 0);
	CHECK_INT(mbox_open(dirfd_, "frank", me, getegid(), &fd, err,
	    sizeof(err)), MBOX_OPEN_UNSAFE);
	unlinkat(dirfd_, "frank", AT_REMOVEDIR);
	CHECK_INT(mbox_open(dirfd_, "carol", me + 1, getegid(), &fd, err,
	    sizeof(err)), MBOX_OPEN_UNSAFE);
	CHECK(strstr(err, "belongs to uid") != NULL);
	CHECK(mkfifoat(dirfd_, "gina", 0600) == 0);
	CHECK_INT(mbox_open(dirfd_, "gina", me, getegid(), &fd, err,
	    sizeof(err)), MBOX_OPEN_ERROR);	/* ENXIO: no reader, no hang */
	unlinkat(dirfd_, "gina", 0);
	unlinkat(dirfd_, "dave", 0);
	unlinkat(dirfd_, "carol", 0);
}

int main(void)
{
	make_dir();
	RUN(test_body);
	RUN(test_plain);
	RUN(test_from_line);
	RUN(test_dotlock);
	RUN(test_fcntl_lock);
	RUN(test_open);
	close(dirfd_);
	rmdir(dir);
	return unit_done();
}
