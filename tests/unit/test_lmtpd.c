/*
 * Unit tests for lmtpd's message spool and Maildir store (lmtpd/lmtpd_spool.c,
 * lmtpd/lmtpd_maildir.c: the unnamed O_TMPFILE way, named in new/ by its
 * descriptor or through /proc, and the named one; new/ kept open
 * between copies). The program's files are compiled in here: they
 * are not part of libmail or libutil. Works in a fresh temporary directory.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lmtpd/lmtpd_maildir.c"
#include "../../lmtpd/lmtpd_spool.c"
#include "unit.h"

static char tmpdir[] = "/tmp/test_lmtpd.XXXXXX";

/* Read a whole file into a malloc'd string (NULL if unreadable). */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		return NULL;
	char *buf = malloc((size_t)st.st_size + 1);
	ssize_t n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	if (len)
		*len = n < 0 ? 0 : (size_t)n;
	return buf;
}

/* The spool's content, via lmtpd_spool_copy_to into a scratch file. */
static char *spool_text(struct lmtpd_spool *sp, size_t *len)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/copy", tmpdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	bool ok = lmtpd_spool_copy_to(sp, fd);
	close(fd);
	return ok ? slurp(path, len) : NULL;
}

/* Names in a directory (not . and ..). */
static int count_files(const char *dir, char *first, size_t firstsize)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first)
			snprintf(first, firstsize, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

static void test_spool_lines(void)
{
	struct lmtpd_spool sp;
	size_t len;
	lmtpd_spool_init(&sp, 0);
	lmtpd_spool_put_line(&sp, "Subject: hi", 11, true);
	lmtpd_spool_put_line(&sp, "", 0, true);
	lmtpd_spool_put_line(&sp, "long ", 5, false);	/* continues */
	lmtpd_spool_put_line(&sp, "line", 4, true);
	lmtpd_spool_finish(&sp);
	char *t = spool_text(&sp, &len);
	CHECK_STR(t, "Subject: hi\n\nlong line\n");
	CHECK_INT(sp.size, 23);
	CHECK_INT(sp.received_bytes, 13 + 2 + 5 + 6);
	free(t);
	lmtpd_spool_free(&sp);
}

static void test_spool_limit(void)
{
	struct lmtpd_spool sp;
	lmtpd_spool_init(&sp, 10);
	lmtpd_spool_put_line(&sp, "12345678", 8, true);	/* 9 bytes */
	CHECK(!sp.too_big);
	lmtpd_spool_put_line(&sp, "12", 2, true);
	CHECK(sp.too_big);
	lmtpd_spool_put_line(&sp, "more", 4, true);
	CHECK(sp.too_big);
	CHECK_INT(sp.received_bytes, 10 + 4 + 6);
	lmtpd_spool_free(&sp);
}

static void test_spool_large_goes_to_file(void)
{
	struct lmtpd_spool sp;
	char line[1000];
	size_t len;
	const size_t lines = 3000;	/* ~3 MB: past LMTPD_SPOOL_MEMORY */

	memset(line, 'x', sizeof(line));
	lmtpd_spool_init(&sp, 0);
	for (size_t i = 0; i < lines; i++) {
		line[0] = (char)('a' + i % 26);
		lmtpd_spool_put_line(&sp, line, sizeof(line) - 1, true);
	}
	lmtpd_spool_finish(&sp);
	CHECK(sp.fd >= 0);
	CHECK(!sp.write_failed);
	CHECK_INT(sp.size, (long long)(lines * sizeof(line)));
	char *t = spool_text(&sp, &len);
	CHECK(t != NULL);
	CHECK_INT(len, lines * sizeof(line));
	bool same = t != NULL;
	for (size_t i = 0; same && i < lines; i++) {
		const char *l = t + i * sizeof(line);
		same = l[0] == (char)('a' + i % 26) && l[1] == 'x' &&
		    l[sizeof(line) - 1] == '\n';
	}
	CHECK(same);
	free(t);
	/* A second copy reads the same file again from its start. */
	t = spool_text(&sp, &len);
	CHECK_INT(len, lines * sizeof(line));
	free(t);
	lmtpd_spool_free(&sp);
}

static void test_maildir_path(void)
{
	char *p;
	p = lmtpd_maildir_path("/var/vmail", "example.org/alice/");
	CHECK_STR(p, "/var/vmail/example.org/alice/");
	free(p);
	p = lmtpd_maildir_path("/var/vmail/", " example.org//bob ");
	CHECK_STR(p, "/var/vmail/example.org/bob/");
	free(p);
	p = lmtpd_maildir_path("/srv/mail", "Maildir");
	CHECK_STR(p, "/srv/mail/Maildir/");
	free(p);
	CHECK(lmtpd_maildir_path("/var/vmail", "/etc/") == NULL);
	CHECK(lmtpd_maildir_path("/var/vmail", "a/../../etc/") == NULL);
	CHECK(lmtpd_maildir_path("/var/vmail", "../x/") == NULL);
	CHECK(lmtpd_maildir_path("/var/vmail", "a/./b/") == NULL);
	CHECK(lmtpd_maildir_path("/var/vmail", "") == NULL);
	CHECK(lmtpd_maildir_path("/var/vmail", "a\nb/") == NULL);
	CHECK(lmtpd_maildir_path("relative", "a/") == NULL);
	/* ".." inside a name is just a name. */
	p = lmtpd_maildir_path("/m", "a..b/");
	CHECK_STR(p, "/m/a..b/");
	free(p);
}

static void test_maildir_name(void)
{
	char a[300], b[300];
	lmtpd_maildir_name(a, sizeof(a), 1234);
	lmtpd_maildir_name(b, sizeof(b), 1234);
	CHECK(strcmp(a, b) != 0);
	CHECK(strstr(a, ",S=1234") != NULL);
	CHECK(strchr(a, '/') == NULL);
	CHECK(strchr(a, ':') == NULL);
	CHECK_INT(name_size(a), 1234);
	CHECK_INT(name_size("123.x,S=77:2,S"), 77);
	CHECK_INT(name_size("123.x"), -1);
	CHECK_INT(name_size("123.x,S=abc"), -1);
}

static void test_maildir_store_and_quota(void)
{
	char maildir[256], dir[300], name[512], first[512], err[512], path[900];
	struct lmtpd_spool sp;
	const char header[] = "Return-Path: <s@example.org>\n"
	    "Delivered-To: alice@example.org\n";

	snprintf(maildir, sizeof(maildir), "%s/mail/example.org/alice/",
	    tmpdir);
	lmtpd_spool_init(&sp, 0);
	lmtpd_spool_put_line(&sp, "Subject: t", 10, true);
	lmtpd_spool_put_line(&sp, "", 0, true);
	lmtpd_spool_put_line(&sp, "body", 4, true);
	lmtpd_spool_finish(&sp);

	/* The Maildir and its parents are created on first delivery. */
	CHECK_INT(lmtpd_maildir_store(maildir, header, strlen(header), &sp, 0,
	    name, sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
	snprintf(dir, sizeof(dir), "%snew", maildir);
	CHECK_INT(count_files(dir, first, sizeof(first)), 1);
	CHECK_STR(first, name);
	snprintf(dir, sizeof(dir), "%stmp", maildir);
	CHECK_INT(count_files(dir, NULL, 0), 0);
	snprintf(dir, sizeof(dir), "%scur", maildir);
	CHECK_INT(count_files(dir, NULL, 0), 0);

	snprintf(path, sizeof(path), "%snew/%s", maildir, name);
	size_t len;
	char *t = slurp(path, &len);
	CHECK_STR(t, "Return-Path: <s@example.org>\n"
	    "Delivered-To: alice@example.org\n"
	    "Subject: t\n\nbody\n");
	long long size = (long long)len;
	CHECK_INT(name_size(name), size);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	free(t);

	/* Usage counts new/ and cur/, by the sizes in the names. */
	CHECK_INT(lmtpd_maildir_usage(maildir), size);
	char curpath[900];
	snprintf(curpath, sizeof(curpath), "%scur/%s:2,S", maildir, name);
	CHECK(rename(path, curpath) == 0);
	CHECK_INT(lmtpd_maildir_usage(maildir), size);

	/* Quota: room for exactly one more copy, then refused. */
	CHECK_INT(lmtpd_maildir_store(maildir, header, strlen(header), &sp,
	    2 * size, name, sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
	CHECK_INT(lmtpd_maildir_usage(maildir), 2 * size);
	CHECK_INT(lmtpd_maildir_store(maildir, header, strlen(header), &sp,
	    2 * size, name, sizeof(name), err, sizeof(err)), LMTPD_STORE_QUOTA);
	snprintf(dir, sizeof(dir), "%snew", maildir);
	CHECK_INT(count_files(dir, NULL, 0), 1);
	snprintf(dir, sizeof(dir), "%stmp", maildir);
	CHECK_INT(count_files(dir, NULL, 0), 0);

	/* A file without ",S=" is measured with stat(). */
	snprintf(path, sizeof(path), "%scur/legacy", maildir);
	FILE *f = fopen(path, "w");
	fputs("0123456789", f);
	fclose(f);
	CHECK_INT(lmtpd_maildir_usage(maildir), 2 * size + 10);

	/* A Maildir that lost new/ and cur/ is made whole again. */
	snprintf(dir, sizeof(dir), "%snew", maildir);
	snprintf(path, sizeof(path), "rm -rf '%snew' '%scur'", maildir,
	    maildir);
	CHECK(system(path) == 0);
	CHECK_INT(lmtpd_maildir_store(maildir, header, strlen(header), &sp, 0,
	    name, sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
	CHECK_INT(count_files(dir, first, sizeof(first)), 1);
	CHECK_STR(first, name);
	snprintf(dir, sizeof(dir), "%scur", maildir);
	CHECK_INT(count_files(dir, NULL, 0), 0);
	snprintf(dir, sizeof(dir), "%stmp", maildir);
	CHECK_INT(count_files(dir, NULL, 0), 0);
	lmtpd_spool_free(&sp);
}

/* Where O_TMPFILE or linkat() through /proc cannot be used: the copy
 * goes by name through tmp/, with the same result. */
static void test_maildir_store_by_name(void)
{
	char maildir[256], dir[300], name[512], first[512], err[512], path[900];
	struct lmtpd_spool sp;

	snprintf(maildir, sizeof(maildir), "%s/mail/example.org/bob/", tmpdir);
	lmtpd_spool_init(&sp, 0);
	lmtpd_spool_put_line(&sp, "body", 4, true);
	lmtpd_spool_finish(&sp);
	unnamed_refused = true;
	CHECK_INT(lmtpd_maildir_store(maildir, "H: 1\n", 5, &sp, 0, name,
	    sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
	unnamed_refused = false;
	snprintf(dir, sizeof(dir), "%snew", maildir);
	CHECK_INT(count_files(dir, first, sizeof(first)), 1);
	CHECK_STR(first, name);
	snprintf(dir, sizeof(dir), "%stmp", maildir);
	CHECK_INT(count_files(dir, NULL, 0), 0);
	snprintf(path, sizeof(path), "%snew/%s", maildir, name);
	char *t = slurp(path, NULL);
	CHECK_STR(t, "H: 1\nbody\n");
	free(t);
	lmtpd_spool_free(&sp);
}

/* The copy's name in new/ through /proc/self/fd, where the kernel does
 * not let linkat() take the descriptor itself (before Linux 6.10). */
static void test_maildir_store_through_proc(void)
{
	char maildir[256], dir[300], name[512], err[512];
	struct lmtpd_spool sp;

	snprintf(maildir, sizeof(maildir), "%s/mail/example.org/carol/",
	    tmpdir);
	lmtpd_spool_init(&sp, 0);
	lmtpd_spool_put_line(&sp, "body", 4, true);
	lmtpd_spool_finish(&sp);
	flink = FLINK_NO;
	CHECK_INT(lmtpd_maildir_store(maildir, "H: 1\n", 5, &sp, 0, name,
	    sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
	flink = FLINK_UNKNOWN;
	CHECK(!unnamed_refused);
	snprintf(dir, sizeof(dir), "%snew", maildir);
	CHECK_INT(count_files(dir, NULL, 0), 1);
	lmtpd_spool_free(&sp);
}

/*
 * Where /proc is not mounted (a chroot, a confinement) the copy still
 * never has a name in tmp/: linkat() names it by its descriptor. Run in a
 * child with a mount namespace of its own where an empty tmpfs hides
 * /proc; inotify on tmp/ sees any name made there. The child's exit
 * status: 0 passed, 1 failed, 2 skipped: no namespace here (not root),
 * or a kernel before 6.10, which links no descriptor for its opener.
 */
static int store_without_proc(const char *maildir)
{
	char dir[300], name[512], err[512], buf[4096];
	struct lmtpd_spool sp;

	if (!lmtpd_maildir_create(maildir, err, sizeof(err)))
		return 1;
	snprintf(dir, sizeof(dir), "%stmp", maildir);
	int probe = open(dir, O_WRONLY | O_TMPFILE, 0600);
	snprintf(name, sizeof(name), "%sprobe", maildir);
	if (probe < 0 || linkat(probe, "", AT_FDCWD, name, AT_EMPTY_PATH) != 0)
		return 2;
	close(probe);
	unlink(name);
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("none", "/proc", "tmpfs", 0, NULL) != 0)
		return 2;
	if (access("/proc/self/fd", F_OK) == 0)
		return 1;
	int in = inotify_init1(IN_NONBLOCK);
	if (in < 0 || inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_FROM) < 0)
		return 1;
	lmtpd_spool_init(&sp, 0);
	lmtpd_spool_put_line(&sp, "body", 4, true);
	lmtpd_spool_finish(&sp);
	enum lmtpd_store_result res = lmtpd_maildir_store(maildir, "H: 1\n", 5,
	    &sp, 0, name, sizeof(name), err, sizeof(err));
	/* new/ gone under a Maildir that keeps tmp/: made again, and the
	 * copy still goes unnamed (the ENOENT is new/'s, not the kernel's). */
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%snew'", maildir);
	if (res == LMTPD_STORE_OK && system(cmd) == 0)
		res = lmtpd_maildir_store(maildir, "H: 1\n", 5, &sp, 0, name,
		    sizeof(name), err, sizeof(err));
	lmtpd_spool_free(&sp);
	if (res != LMTPD_STORE_OK) {
		fprintf(stderr, "store: %s\n", err);
		return 1;
	}
	if (read(in, buf, sizeof(buf)) > 0) {
		fprintf(stderr, "a name was made in %s\n", dir);
		return 1;
	}
	snprintf(dir, sizeof(dir), "%snew", maildir);
	return count_files(dir, NULL, 0) == 1 ? 0 : 1;
}

static void test_maildir_store_without_proc(void)
{
	char maildir[256];
	int status;

	snprintf(maildir, sizeof(maildir), "%s/mail/example.org/dave/",
	    tmpdir);
	pid_t pid = fork();
	if (pid == 0)
		_exit(store_without_proc(maildir));
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status));
	if (WEXITSTATUS(status) == 2) {
		printf("# skipped: no mount namespace (not root) or a kernel "
		    "before 6.10\n");
		return;
	}
	CHECK_INT(WEXITSTATUS(status), 0);
}

/* Open descriptors of this process that are directories. */
static int open_dirs(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++) {
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
			n++;
	}
	return n;
}

/*
 * new/ is kept open between copies (struct newdir), and a new/ that an
 * administrator replaced meanwhile is not the one written: the copy goes
 * into the directory the path names now, unnamed and by name alike.
 */
static void test_maildir_newdir_kept(void)
{
	char maildir[256], dir[300], old[300], name[512], err[512];
	struct lmtpd_spool sp;

	snprintf(maildir, sizeof(maildir), "%s/mail/example.org/erin/",
	    tmpdir);
	snprintf(dir, sizeof(dir), "%snew", maildir);
	snprintf(old, sizeof(old), "%snew.old", maildir);
	lmtpd_spool_init(&sp, 0);
	lmtpd_spool_put_line(&sp, "body", 4, true);
	lmtpd_spool_finish(&sp);
	for (int by_name = 0; by_name < 2; by_name++) {
		unnamed_refused = by_name;
		CHECK_INT(lmtpd_maildir_store(maildir, "H: 1\n", 5, &sp, 0,
		    name, sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
		/* The same descriptor serves the next copy. */
		struct newdir *held = NULL;
		for (size_t i = 0; i < NEWDIR_KEEP; i++)
			if (newdirs[i].maildir != NULL &&
			    strcmp(newdirs[i].maildir, maildir) == 0)
				held = &newdirs[i];
		CHECK(held != NULL);
		int fd = held != NULL ? held->fd : -1;
		CHECK_INT(lmtpd_maildir_store(maildir, "H: 1\n", 5, &sp, 0,
		    name, sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
		CHECK(held != NULL && held->fd == fd);
		CHECK_INT(count_files(dir, NULL, 0), 2);

		/* new/ moved away and made again while it is held. */
		CHECK(rename(dir, old) == 0 && mkdir(dir, 0700) == 0);
		CHECK_INT(lmtpd_maildir_store(maildir, "H: 1\n", 5, &sp, 0,
		    name, sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
		CHECK_INT(count_files(dir, NULL, 0), 1);
		CHECK_INT(count_files(old, NULL, 0), 2);
		char cmd[700];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, old);
		CHECK(system(cmd) == 0);
	}
	unnamed_refused = false;

	/* More Maildirs than are kept: each copy still lands, and no more
	 * than NEWDIR_KEEP directories stay open. */
	int before = open_dirs();
	for (int i = 0; i < NEWDIR_KEEP + 3; i++) {
		snprintf(maildir, sizeof(maildir), "%s/mail/many/u%d/", tmpdir,
		    i);
		CHECK_INT(lmtpd_maildir_store(maildir, "H: 1\n", 5, &sp, 0,
		    name, sizeof(name), err, sizeof(err)), LMTPD_STORE_OK);
		snprintf(dir, sizeof(dir), "%snew", maildir);
		CHECK_INT(count_files(dir, NULL, 0), 1);
	}
	CHECK(open_dirs() <= before + NEWDIR_KEEP);
	lmtpd_spool_free(&sp);
}

static void test_maildir_unwritable(void)
{
	char maildir[256], err[512];
	struct lmtpd_spool sp;

	if (geteuid() == 0)
		return;		/* root writes anywhere: nothing to see */
	snprintf(maildir, sizeof(maildir), "%s/ro/", tmpdir);
	mkdir(maildir, 0500);
	snprintf(maildir, sizeof(maildir), "%s/ro/box/", tmpdir);
	lmtpd_spool_init(&sp, 0);
	lmtpd_spool_put_line(&sp, "x", 1, true);
	CHECK_INT(lmtpd_maildir_store(maildir, "", 0, &sp, 0, NULL, 0, err,
	    sizeof(err)), LMTPD_STORE_TEMPFAIL);
	CHECK(strstr(err, "Permission denied") != NULL);
	lmtpd_spool_free(&sp);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	cfg.mailbox_base = tmpdir;
	RUN(test_spool_lines);
	RUN(test_spool_limit);
	RUN(test_spool_large_goes_to_file);
	RUN(test_maildir_path);
	RUN(test_maildir_name);
	RUN(test_maildir_store_and_quota);
	RUN(test_maildir_store_by_name);
	RUN(test_maildir_store_through_proc);
	RUN(test_maildir_store_without_proc);
	RUN(test_maildir_newdir_kept);
	RUN(test_maildir_unwritable);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return 2;
	return unit_done();
}
