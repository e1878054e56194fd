/*
 * local_deliver.c - one recipient of a local job into its user's
 * mailbox, mail_spool_directory/USER, in mbox format (mail/mbox.h).
 *
 * The steps, each for a reason (Postfix's local(8) and Debian policy
 * 22.6):
 *   1. The user comes from the name service (getpwnam); one that is not
 *      a system user bounces (5.1.1).
 *   2. A message that already carries "Delivered-To: <this recipient>"
 *      has looped (RFC 5321 6.3): bounced (5.4.6), not delivered again.
 *   3. Still root: the dotlock USER.lock in the spool directory (root:mail
 *      2775 on Debian, where users cannot create files), then the
 *      mailbox is opened without following a link, created for the user
 *      (mode 0600, group mail_spool_group) when missing, and refused
 *      when it is not a plain file of that user with one link.
 *   4. A child process becomes the user (all its ids, its one group) and
 *      does all the writing through that descriptor: the fcntl lock, the
 *      "From " line, Return-Path:, Delivered-To:, the text with ">From"
 *      quoting, then fsync. On any failure it cuts the mailbox back to
 *      its size before, so a half message never stays behind, and says
 *      why on a pipe. Only after its fsync is the recipient sent (2.0.0).
 *   5. Root removes the dotlock.
 * Root's own mailbox is written as root, as local(8) does.
 *
 * With home_mailbox = "Maildir/" the child, as the user, writes
 * HOME/Maildir/ instead (tmp/, fsync, rename into new/, fsync of new/);
 * no lock is needed there.
 *
 * Trusts the config and the name service; takes nothing from the
 * message but its bytes (and the Delivered-To: fields).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "bio.h"
#include "cfg.h"
#include "local.h"
#include "local_user.h"
#include "log.h"
#include "mbox.h"
#include "mem.h"
#include "priv.h"
#include "str.h"

#define LOCK_TIMEOUT_MS 10000	/* dotlock, then fcntl lock */
#define HEADER_SCAN_MAX (256 * 1024)
#define COPY_CHUNK 65536
#define WHY_MAX 512

static gid_t spool_gid;
static bool spool_gid_known;

void local_deliver_init(const char *service)
{
	char err[256];

	if (!local_user_init(err, sizeof(err)))
		log_fatal("local_recipient_maps: %s", err);
	local_forward_init();
	spool_gid_known = priv_lookup_group(cfg.mail_spool_group, &spool_gid);
	if (!spool_gid_known)
		log_warning("mail_spool_group: no group \"%s\": new mailboxes "
		    "get their user's group", cfg.mail_spool_group);
	size_t hl = strlen(cfg.home_mailbox);
	if (hl > 0 && (cfg.home_mailbox[hl - 1] != '/' ||
	    cfg.home_mailbox[0] == '/' || strstr(cfg.home_mailbox, "..")))
		log_fatal("home_mailbox: \"%s\": only a Maildir relative to the "
		    "home directory, ending in \"/\" (Maildir/), is supported",
		    cfg.home_mailbox);
	if (!priv_is_root())
		log_info("not running as root: delivers only to the mailbox "
		    "of uid %ld", (long)getuid());
}

/* ---- the loop check ---- */

static void add_delivered_to(struct local_job *job, const char *v,
    size_t len)
{
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t' ||
	    v[len - 1] == '\r'))
		len--;
	job->delivered_to = xreallocarray(job->delivered_to,
	    job->ndelivered_to + 1, sizeof(*job->delivered_to));
	job->delivered_to[job->ndelivered_to++] = xstrndup(v, len);
}

void local_deliver_scan_header(struct local_job *job)
{
	size_t want = job->content_length < HEADER_SCAN_MAX ?
	    (size_t)job->content_length : HEADER_SCAN_MAX;
	char *buf = xmalloc(want + 1);
	ssize_t got = pread(job->content_fd, buf, want, job->content_offset);
	if (got <= 0) {
		free(buf);
		return;
	}
	buf[got] = '\0';
	const char *tag = "Delivered-To:";
	size_t taglen = strlen(tag);
	for (char *line = buf; line < buf + got;) {
		char *nl = memchr(line, '\n', (size_t)(buf + got - line));
		size_t len = nl ? (size_t)(nl - line) : (size_t)(buf + got - line);
		if (len == 0 || (len == 1 && line[0] == '\r'))
			break;	/* the end of the header section */
		if (len > taglen && strncasecmp(line, tag, taglen) == 0)
			add_delivered_to(job, line + taglen, len - taglen);
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	free(buf);
}

static bool has_looped(const struct local_job *job, const char *address)
{
	for (size_t i = 0; i < job->ndelivered_to; i++)
		if (strcasecmp(job->delivered_to[i], address) == 0)
			return true;
	return false;
}

/* ---- the writer, running as the user ---- */

struct mbox_target {
	int fd;			/* the open mailbox */
	uid_t uid;
	gid_t gid;
	const char *name;	/* the user, for messages */
	const char *home;	/* the user's home directory */
	bool maildir;		/* home_mailbox: fd is unused */
	const char *file;	/* a "/file" target: fd is unused */
};

/* Become the user: every id, and the user's group alone. */
bool local_become_user(uid_t uid, gid_t gid, char *why, size_t whysize)
{
	if (!priv_is_root())
		return true;
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		snprintf(why, whysize, "cannot become uid %ld: %s", (long)uid,
		    strerror(errno));
		return false;
	}
	uid_t r, e, s;
	if (getresuid(&r, &e, &s) < 0 || r != uid || e != uid || s != uid) {
		snprintf(why, whysize, "cannot become uid %ld", (long)uid);
		return false;
	}
	return true;
}

/*
 * Copy the message into fd: the "From " line (mbox only), Return-Path:,
 * Delivered-To:, then the text converted by body. false with why.
 */
static bool copy_message(const struct local_job *job,
    const struct local_rcpt *r, int fd, bool mbox, char *why,
    size_t whysize)
{
	struct str out;
	struct mbox_body body;
	off_t done = 0;
	bool ok = false;

	str_init(&out, STR_NO_MAX);
	if (mbox)
		mbox_from_line(&out, job->sender, time(NULL));
	str_appendf(&out, "Return-Path: <%s>\nDelivered-To: %s\n", job->sender,
	    r->address);
	mbox_body_init(&body);
	body.plain = !mbox;
	char *chunk = xmalloc(COPY_CHUNK);
	for (;;) {
		if (out.len >= COPY_CHUNK || done == job->content_length) {
			if (done == job->content_length)
				mbox_body_finish(&body, &out);
			if (!fd_write_all(fd, out.data, out.len)) {
				snprintf(why, whysize, "cannot write %s: %s",
				    mbox ? "mailbox" : "Maildir file",
				    strerror(errno));
				break;
			}
			str_clear(&out);
			if (done == job->content_length) {
				ok = true;
				break;
			}
		}
		size_t want = job->content_length - done < COPY_CHUNK ?
		    (size_t)(job->content_length - done) : COPY_CHUNK;
		ssize_t n = pread(job->content_fd, chunk, want,
		    job->content_offset + done);
		if (n <= 0) {
			snprintf(why, whysize, "cannot read queue file: %s",
			    n == 0 ? "cut short" : strerror(errno));
			break;
		}
		mbox_body_feed(&body, chunk, (size_t)n, &out);
		done += n;
	}
	free(chunk);
	str_free(&out);
	/* Acknowledged only once it is on disk. */
	if (ok && fsync(fd) < 0) {
		snprintf(why, whysize, "cannot fsync %s: %s", mbox ? "mailbox" :
		    "Maildir file", strerror(errno));
		ok = false;
	}
	return ok;
}

/* The child's work; its exit status is 0 or EX_TEMPFAIL (75). */
static int write_as_user(const struct local_job *job,
    const struct local_rcpt *r, const struct mbox_target *t, char *why,
    size_t whysize)
{
	struct stat st;

	if (!local_become_user(t->uid, t->gid, why, whysize))
		return 75;
	if (!mbox_fcntl_lock(t->fd, LOCK_TIMEOUT_MS, why, whysize))
		return 75;
	if (fstat(t->fd, &st) < 0) {
		snprintf(why, whysize, "cannot stat mailbox: %s",
		    strerror(errno));
		return 75;
	}
	if (!copy_message(job, r, t->fd, true, why, whysize)) {
		/* Never leave half a message: readers would see a broken
		 * one, and the retry would add a whole one after it. */
		if (ftruncate(t->fd, st.st_size) < 0 || fsync(t->fd) < 0)
			log_warning("%s: cannot cut mailbox of %s back to %lld "
			    "bytes: %m", job->queue_id, t->name,
			    (long long)st.st_size);
		return 75;
	}
	return 0;
}

/*
 * home_mailbox = "Maildir/": as the user, HOME/Maildir/tmp/NAME (O_EXCL),
 * fsync, rename into new/, fsync new/. Missing directories are made
 * (0700), as lmtpd makes them.
 */
static int write_maildir_as_user(const struct local_job *job,
    const struct local_rcpt *r, const struct mbox_target *t, char *why,
    size_t whysize)
{
	static unsigned counter;
	char dir[4096], tmp[4200], new[4200], host[256];

	if (!local_become_user(t->uid, t->gid, why, whysize))
		return 75;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", t->home,
	    cfg.home_mailbox) >= sizeof(dir)) {
		snprintf(why, whysize, "Maildir path too long");
		return 75;
	}
	size_t len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		dir[--len] = '\0';
	const char *subs[] = { "", "/tmp", "/new", "/cur" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(tmp, sizeof(tmp), "%s%s", dir, subs[i]);
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
			snprintf(why, whysize, "cannot make %.300s: %s", tmp,
			    strerror(errno));
			return 75;
		}
	}
	if (gethostname(host, sizeof(host)) < 0)
		strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == ':')
			*p = '_';
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	char name[512];
	snprintf(name, sizeof(name), "%lld.M%ldP%ldQ%u.%s",
	    (long long)now.tv_sec, now.tv_nsec / 1000, (long)getpid(),
	    counter++, host);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name) >=
	    sizeof(tmp) || (size_t)snprintf(new, sizeof(new), "%s/new/%s",
	    dir, name) >= sizeof(new)) {
		snprintf(why, whysize, "Maildir path too long: %.300s", dir);
		return 75;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, whysize, "cannot create %.300s: %s", tmp,
		    strerror(errno));
		return 75;
	}
	bool ok = copy_message(job, r, fd, false, why, whysize);
	close(fd);
	if (ok && rename(tmp, new) < 0) {
		snprintf(why, whysize, "cannot move into %.300s/new: %s", dir,
		    strerror(errno));
		ok = false;
	}
	if (!ok) {
		unlink(tmp);
		return 75;
	}
	snprintf(tmp, sizeof(tmp), "%s/new", dir);
	int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		/* The file is there: a second copy beats a lost one. */
		snprintf(why, whysize, "cannot fsync %.300s: %s", tmp,
		    strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return 75;
	}
	close(dfd);
	return 0;
}

/*
 * A "/file" target of an alias or .forward, as the user t names: opened
 * by the user (never through a symbolic link, created 0600 when
 * missing), refused when not a regular file with one link (EX_NOPERM,
 * a bounce), then written as a mailbox is, with the same locks (the
 * dotlock only where the user may create it).
 */
static int write_file_as_user(const struct local_job *job,
    const struct local_rcpt *r, const struct mbox_target *t, char *why,
    size_t whysize)
{
	char dir[4096];
	struct stat st;

	if (!local_become_user(t->uid, t->gid, why, whysize))
		return 75;
	umask(077);
	int fd = open(t->file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, whysize, "cannot open file %.300s: %s%s",
		    t->file, strerror(errno), errno == ELOOP ?
		    " (a symbolic link: refused)" : "");
		return errno == ELOOP || errno == EISDIR || errno == EACCES ||
		    errno == ENOENT || errno == ENOTDIR ? 77 : 75;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		snprintf(why, whysize, "file %.300s is not a regular file with "
		    "one link: refused", t->file);
		close(fd);
		return 77;
	}
	fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
	strlcpy(dir, t->file, sizeof(dir));
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : dir;
	if (slash == dir)
		dir[1] = '\0', base = t->file + 1;
	else if (slash != NULL)
		*slash = '\0';
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool dotlocked = false;
	if (dirfd >= 0) {
		char lockwhy[WHY_MAX];
		dotlocked = mbox_dotlock(dirfd, base, LOCK_TIMEOUT_MS, lockwhy,
		    sizeof(lockwhy));
		/* A directory the user may not write has no dotlock. */
		if (!dotlocked && strstr(lockwhy, "is locked") != NULL) {
			strlcpy(why, lockwhy, whysize);
			close(dirfd);
			close(fd);
			return 75;
		}
	}
	struct mbox_target ft = *t;
	ft.fd = fd;
	int status = write_as_user(job, r, &ft, why, whysize);
	if (dotlocked)
		mbox_dotunlock(dirfd, base);
	if (dirfd >= 0)
		close(dirfd);
	close(fd);
	return status;
}

/* Fork the writer; read its reason; wait for it. true: written;
 * *code (optional) the writer's exit status: 75 temporary, 77 refused. */
static bool run_writer(const struct local_job *job,
    const struct local_rcpt *r, const struct mbox_target *t, char *why,
    size_t whysize, int *code)
{
	if (code != NULL)
		*code = 75;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(why, whysize, "pipe: %s", strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whysize, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return false;
	}
	if (pid == 0) {
		char reason[WHY_MAX] = "";
		close(p[0]);
		signal(SIGPIPE, SIG_IGN);
		int status = t->file != NULL ?
		    write_file_as_user(job, r, t, reason, sizeof(reason)) :
		    t->maildir ?
		    write_maildir_as_user(job, r, t, reason, sizeof(reason)) :
		    write_as_user(job, r, t, reason, sizeof(reason));
		if (status != 0) {
			ssize_t w = write(p[1], reason, strlen(reason));
			(void)w;
		}
		_exit(status);
	}
	close(p[1]);
	char reason[WHY_MAX];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(p[0], reason + got, sizeof(reason) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (got += (size_t)n) == sizeof(reason) - 1)
			break;
	}
	reason[got] = '\0';
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && code != NULL)
		*code = WEXITSTATUS(status);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (got > 0)
		strlcpy(why, reason, whysize);
	else
		snprintf(why, whysize, "mailbox writer failed (status %d)",
		    status);
	return false;
}

char local_deliver_file(const struct local_job *job,
    const struct local_rcpt *r, uid_t uid, gid_t gid, const char *path,
    char *why, size_t whysize)
{
	struct mbox_target t = { -1, uid, gid, "", "", false, path };
	int code;

	if (run_writer(job, r, &t, why, whysize, &code))
		return 'S';
	return code == 77 ? 'B' : 'D';
}

static void deliver_mbox(struct local_job *job, struct local_rcpt *r,
    const char *user, uid_t uid, gid_t gid)
{
	char why[WHY_MAX];
	int spool = open(cfg.mail_spool_directory, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	if (spool < 0) {
		local_rcpt_decide(r, 'D', "4.3.0", "cannot open mail spool "
		    "directory %s: %s", cfg.mail_spool_directory,
		    strerror(errno));
		return;
	}
	/* Say so when a mail reader holds the lock: the wait is visible. */
	bool locked = mbox_dotlock(spool, user, 0, why, sizeof(why));
	if (!locked && strstr(why, "is locked") != NULL) {
		log_info("%s: mailbox %s/%s is locked; waiting up to %d s",
		    job->queue_id, cfg.mail_spool_directory, user,
		    LOCK_TIMEOUT_MS / 1000);
		locked = mbox_dotlock(spool, user, LOCK_TIMEOUT_MS, why,
		    sizeof(why));
	}
	if (!locked) {
		local_rcpt_decide(r, 'D', "4.2.0", "cannot update mailbox "
		    "%s/%s for user %s: %s", cfg.mail_spool_directory, user,
		    user, why);
		close(spool);
		return;
	}
	int fd;
	switch (mbox_open(spool, user, uid, spool_gid_known ? spool_gid : gid,
	    &fd, why, sizeof(why))) {
	case MBOX_OPEN_OK: {
		struct mbox_target t = { fd, uid, gid, user, "", false,
		    NULL };
		if (run_writer(job, r, &t, why, sizeof(why), NULL))
			local_rcpt_decide(r, 'S', "2.0.0", "delivered to "
			    "mailbox");
		else
			local_rcpt_decide(r, 'D', "4.2.0", "cannot update "
			    "mailbox %s/%s for user %s: %s",
			    cfg.mail_spool_directory, user, user, why);
		close(fd);
		break;
	}
	case MBOX_OPEN_UNSAFE:
		/* As local(8): a mailbox that is not what it must be is a
		 * permanent refusal (5.2.0), never written through. */
		local_rcpt_decide(r, 'B', "5.2.0", "cannot update mailbox "
		    "%s/%s for user %s: %s", cfg.mail_spool_directory, user,
		    user, why);
		break;
	case MBOX_OPEN_ERROR:
		local_rcpt_decide(r, 'D', errno == EDQUOT ? "4.2.2" : "4.2.0",
		    "cannot update mailbox %s/%s for user %s: %s",
		    cfg.mail_spool_directory, user, user, why);
		break;
	}
	mbox_dotunlock(spool, user);
	close(spool);
}

void local_deliver_rcpt(struct local_job *job, struct local_rcpt *r)
{
	if (has_looped(job, r->address)) {
		local_rcpt_decide(r, 'B', "5.4.6", "mail forwarding loop for "
		    "%s", r->address);
		return;
	}
	/* An alias with commands, files or :include: (qmgr sent it here
	 * whole), as local(8) expands it. */
	if (!r->noexpand && local_forward_alias(job, r))
		return;
	char *user = local_user_name(r->address, NULL);
	if (user == NULL) {
		local_rcpt_decide(r, 'B', "5.1.1", "no such user here");
		return;
	}
	struct passwd pw, *found = NULL;
	char buf[4096];
	int e = getpwnam_r(user, &pw, buf, sizeof(buf), &found);
	if (found == NULL) {
		if (e != 0 && e != ENOENT && e != ESRCH && e != EBADF &&
		    e != EPERM)
			local_rcpt_decide(r, 'D', "4.3.0", "cannot look up "
			    "user %s: %s", user, strerror(e));
		else
			local_rcpt_decide(r, 'B', "5.1.1", "unknown user: "
			    "\"%s\"", user);
		free(user);
		return;
	}
	if (!r->noexpand && local_forward_dotforward(job, r, &pw)) {
		free(user);
		return;
	}
	if (!priv_is_root() && pw.pw_uid != getuid()) {
		local_rcpt_decide(r, 'D', "4.3.0", "not running as root: "
		    "cannot deliver as user %s", user);
		free(user);
		return;
	}
	if (cfg.home_mailbox[0] != '\0') {
		char why[WHY_MAX];
		struct mbox_target t = { -1, pw.pw_uid, pw.pw_gid, user,
			pw.pw_dir, true, NULL };
		if (run_writer(job, r, &t, why, sizeof(why), NULL))
			local_rcpt_decide(r, 'S', "2.0.0", "delivered to "
			    "maildir");
		else
			local_rcpt_decide(r, 'D', "4.2.0", "cannot deliver to "
			    "%s/%s for user %s: %s", pw.pw_dir,
			    cfg.home_mailbox, user, why);
	} else {
		deliver_mbox(job, r, user, pw.pw_uid, pw.pw_gid);
	}
	free(user);
}
