/*
 * smtpd_door.c - smtpd's door: privilege separation inside smtpd, in the
 * OpenSSH style (doc/architecture.md, "Processes" and "Confinement").
 *
 * Each smtpd worker gets a door of its own, before it loads the TLS key
 * and before any privilege is dropped. The worker stays the network
 * worker: it drops to smtpd_user, serves connections and reports to
 * master exactly as before, so master's supervision, max_use, reload and
 * stop see nothing new. The door serves the worker's requests on a
 * SOCK_SEQPACKET socketpair the worker made, as `user` (the queue's
 * owner).
 *
 * Doors are made by a door zygote (issue 20, doorzyg): the program
 * smtpd-door (this file again, built with SMTPD_DOOR_PROGRAM: the door's
 * side below), exec'd once per smtpd zygote (smtpd_door_zygote_start(),
 * its zygote_start hook) with nothing of master's or the zygote's but
 * its request socket, SMTPD_DOOR_FD. It loads the config, maps
 * run_directory/smtpd-dirsync, drops to `user`, opens incoming/, hold/
 * and smtpd_sasl_users, confines itself as a door and says ready. A new
 * worker, still root, sends it type=door with its end of a fresh pair
 * (SCM_RIGHTS) and closes its copy of the request socket before it drops
 * root: a dropped worker has no way to ask for another door. The door
 * zygote forks a door for that pair and closes its copy: a door holds
 * nothing of another worker's. Exec'd, not forked from the worker, so
 * that a session's second process maps little (smtpd-door links libc,
 * libcrypt, libdb and our util/ and queue code, no OpenSSL); forked from
 * the door zygote, so that a door's relocated libraries, config and heap
 * are the door zygote's pages, shared until written, and a door's birth
 * is a fork rather than an exec, a config parse and a confinement. A
 * worker master forked and exec'd (no smtpd zygote) starts a door
 * zygote of its own with -1: that one serves the one request itself,
 * without a fork.
 *
 * The door zygote takes a request only from a process of root's uid or
 * its starter's (SCM_CREDENTIALS, the starter's uid in test mode), with
 * exactly one descriptor: a SOCK_SEQPACKET Unix socket that the same
 * process made (its SO_PEERCRED pid is the sender's). It answers
 * nothing on the request socket after its own ready: the new door says
 * ready on the worker's pair. It reaps its doors; when every holder of
 * the request socket is gone (the smtpd zygote ended: reload, stop, or
 * master gone) it waits for its doors and exits. When it dies, the
 * smtpd zygote sees its end hang up and exits (daemon_zygote_serve()),
 * and master starts a new zygote and door zygote.
 *
 * Requests (worker to door), one util/ipc.c message per datagram:
 *   type=open                    the door creates incoming/.ID (recycled
 *                                or new) and answers type=ok id=ID
 *                                size=N (its length: a recycled file's
 *                                old one, else 0) with the file open
 *                                O_WRONLY (SCM_RIGHTS): a recycled
 *                                file's old bytes cannot be read
 *   type=commit id=ID            the worker wrote the whole file; the
 *                                door renames it to ID, fsyncs the file
 *                                and incoming/ (an fsync of incoming/
 *                                that began after the rename, its own or
 *                                another door's: the doors share them
 *                                through run_directory/smtpd-dirsync,
 *                                mail/dirsync.c), then answers type=ok
 *   type=hold id=ID              as commit, but into hold/ (a milter's
 *                                quarantine, smtpd_milter.c): renamed
 *                                there, the file and hold/ fsync'd
 *                                (hold/'s shared as incoming/'s)
 *   type=abort id=ID             the door removes .ID; type=ok
 * The type=ok that ends a message (commit, hold, abort) carries the next
 * message's file as type=open's answer would (next=ID, size=N and the
 * descriptor),
 * made ahead: the worker keeps it for its next DATA, so that one request
 * and one answer, one round trip between the processes, cost a message
 * instead of two (open at DATA, commit at its end).
 *   type=auth user=U password=P  checked against smtpd_sasl_users;
 *                                type=ok result=yes|no|tempfail
 * Failures answer type=error reason=TEXT. SOCK_SEQPACKET keeps each
 * message whole, so a descriptor arrives with exactly its answer.
 *
 * The door makes the file after that one, its spare, once its answer is
 * out: the rename from recycle/ that makes a file waits for the journal
 * like the fsyncs do, and the client's 250 need not wait for it. The
 * spare is never sent until an answer passes it on.
 *
 * Trust: the door trusts nothing from the worker. It holds at most one
 * unfinished file the worker knows of, made by itself (passed ahead or in
 * use, the door does not care which), and acts only on that file's ID,
 * plus the spare, which the worker cannot name; the worker names no
 * path. Sizes are bounded, a malformed request is logged
 * and ends the door (the worker then finishes its session and exits,
 * and master starts a new pair). When the worker is gone (EOF: it exited
 * or was killed), the door removes its unfinished file and its spare
 * and exits.
 * The worker trusts the door's answers (its zygote or itself started the
 * door zygote, from daemon_directory, root's), but checks their shape
 * all the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "daemon.h"
#include "dirsync.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "priv.h"
#include "queue.h"
#include "resident.h"
#include "smtpd.h"
#include "str.h"

/* Large enough for a user name and a password, %-escaped. */
#define DOOR_MESSAGE_MAX (16 * 1024)
/* How long the worker waits for an answer (fsyncs, crypt). */
#define DOOR_ANSWER_TIMEOUT_MS (120 * 1000)

/* ---- both sides ---- */

/* Free a message that held a password, wiping every value first. */
static void door_msg_wipe(struct ipc_msg *m)
{
	for (size_t i = 0; i < m->count; i++)
		explicit_bzero(m->attrs[i].value, strlen(m->attrs[i].value));
	ipc_msg_free(m);
}

/* Send one message, with a descriptor when fd >= 0. */
static bool door_send(int sock, const struct ipc_msg *m, int fd)
{
	struct str out;
	str_init(&out, DOOR_MESSAGE_MAX);
	ipc_encode(m, &out);
	bool ok = out.len <= DOOR_MESSAGE_MAX;
	if (ok) {
		struct iovec iov = { .iov_base = out.data, .iov_len = out.len };
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (fd >= 0) {
			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = ctl.buf;
			mh.msg_controllen = sizeof(ctl.buf);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &fd, sizeof(int));
		}
		ssize_t n;
		do
			n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		ok = n == (ssize_t)out.len;
	}
	explicit_bzero(out.data, out.len);
	str_free(&out);
	return ok;
}

enum door_recv {
	DOOR_RECV_OK,
	DOOR_RECV_EOF,		/* the other side is gone */
	DOOR_RECV_BAD,		/* malformed, cut, or a stray descriptor */
	DOOR_RECV_TIMEOUT,	/* SO_RCVTIMEO passed (the worker's end) */
};

/*
 * Receive one whole message into m (initialised here on OK); *fd gets a
 * passed descriptor when fd is not NULL, else any descriptor is refused.
 * *who gets the sender's credentials when who is not NULL (the socket
 * has SO_PASSCRED: the door zygote's requests); a message without them
 * is then refused.
 */
/* Static, not on the stack: a message fills a page or so of it, while
 * a 16 KiB frame pushed the door loop's calls (a log line: 18 KiB of
 * its own) 16 KiB deeper, and the door's stack kept 40-44 KiB resident
 * after its first messages instead of 24-28. Both sides are single
 * threaded; the buffer is wiped after each message as before. */
static char door_recv_buf[DOOR_MESSAGE_MAX];

static enum door_recv door_recv(int sock, struct ipc_msg *m, int *fd,
    struct ucred *who)
{
	char *buf = door_recv_buf;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int)) +
		    CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	bool have_who = false;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(door_recv_buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	if (fd != NULL)
		*fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return DOOR_RECV_TIMEOUT;
	if (n <= 0)
		return n == 0 || errno == ECONNRESET ? DOOR_RECV_EOF :
		    DOOR_RECV_BAD;
	int passed = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	    c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_CREDENTIALS && who != NULL &&
		    c->cmsg_len == CMSG_LEN(sizeof(*who))) {
			memcpy(who, CMSG_DATA(c), sizeof(*who));
			have_who = true;
		} else if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)) && passed < 0) {
			memcpy(&passed, CMSG_DATA(c), sizeof(int));
		} else if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_RIGHTS) {
			/* More than one: close them all, refuse. */
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int extra;
				memcpy(&extra, CMSG_DATA(c) + i * sizeof(int),
				    sizeof(int));
				close(extra);
			}
			mh.msg_flags |= MSG_CTRUNC;
		}
	}
	size_t consumed = 0;
	bool bad = (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
	    (passed >= 0 && fd == NULL) || (who != NULL && !have_who);
	if (!bad) {
		enum ipc_decode_result r = ipc_decode(buf, (size_t)n, m,
		    &consumed);
		if (r == IPC_DONE && consumed != (size_t)n)
			door_msg_wipe(m);	/* trailing bytes */
		bad = r != IPC_DONE || consumed != (size_t)n;
	}
	explicit_bzero(buf, (size_t)n);
	if (bad) {
		if (passed >= 0)
			close(passed);
		return DOOR_RECV_BAD;
	}
	if (fd != NULL)
		*fd = passed;
	return DOOR_RECV_OK;
}

#ifdef SMTPD_DOOR_PROGRAM
/* ---- the door: the program smtpd-door ---- */

static struct {
	int sock;
	int dirfd;		/* incoming/ */
	int holdfd;		/* hold/ */
	int fd;			/* the unfinished file, or -1 */
	char id[QUEUE_ID_SIZE];
	off_t size;		/* its length when it was made */
	/* The file after that one, made once an answer is out, so that
	 * the rename from recycle/ (or the create) and its wait for the
	 * journal are off the path to the client's 250: the next answer
	 * that ends a message only passes it on. Never sent yet. */
	int spare_fd;
	char spare_id[QUEUE_ID_SIZE];
	off_t spare_size;
} door = { .sock = -1, .dirfd = -1, .holdfd = -1, .fd = -1,
    .spare_fd = -1 };

static void door_answer(const char *type, const char *reason)
{
	struct ipc_msg m;
	ipc_msg_init(&m, type);
	if (reason != NULL)
		ipc_add(&m, "reason", "%s", reason);
	if (!door_send(door.sock, &m, -1))
		log_warning("door: cannot answer the worker: %m");
	ipc_msg_free(&m);
}

/* Remove an unfinished file of the door's (incoming/.ID), if any. */
static void door_remove_unfinished(int *fd, char *id)
{
	if (*fd < 0)
		return;
	char tmpname[QUEUE_ID_SIZE + 1];
	snprintf(tmpname, sizeof(tmpname), ".%s", id);
	if (unlinkat(door.dirfd, tmpname, 0) < 0 && errno != ENOENT)
		log_warning("%s: cannot remove %s/%s/%s: %m", id,
		    cfg.queue_directory, QUEUE_INCOMING, tmpname);
	close(*fd);
	*fd = -1;
	id[0] = '\0';
}

/* Remove the unfinished file the worker knows of, if any. */
static void door_drop_file(void)
{
	door_remove_unfinished(&door.fd, door.id);
}

static bool door_is_current(const struct ipc_msg *m)
{
	const char *id = ipc_get(m, "id");
	return door.fd >= 0 && id != NULL && strcmp(id, door.id) == 0;
}

/* Remove the spare file, if any. */
static void door_drop_spare(void)
{
	door_remove_unfinished(&door.spare_fd, door.spare_id);
}

/*
 * The spare, made after an answer went out, while the worker holds the
 * current file (passed ahead or in use): the next one it will need. A
 * failure is not logged here: the file is made again, and the failure
 * logged and answered, when it is asked for (door_take_file()).
 */
static void door_make_spare(void)
{
	char err[256];

	if (door.fd < 0 || door.spare_fd >= 0)
		return;
	door.spare_fd = queue_file_create(cfg.queue_directory, door.dirfd,
	    true, door.spare_id, &door.spare_size, err, sizeof(err));
	if (door.spare_fd < 0)
		door.spare_id[0] = '\0';
}

/* The door's unfinished file: the spare when there is one, else made
 * now; false (logged, errno set) when it cannot be. */
static bool door_take_file(void)
{
	char err[256];

	if (door.spare_fd >= 0) {
		door.fd = door.spare_fd;
		door.size = door.spare_size;
		strlcpy(door.id, door.spare_id, sizeof(door.id));
		door.spare_fd = -1;
		door.spare_id[0] = '\0';
		return true;
	}
	door.fd = queue_file_create(cfg.queue_directory, door.dirfd, true,
	    door.id, &door.size, err, sizeof(err));
	if (door.fd >= 0)
		return true;
	int e = errno;
	log_warning("NOQUEUE: cannot create queue file in %s/%s: %s",
	    cfg.queue_directory, QUEUE_INCOMING, err);
	door.id[0] = '\0';
	errno = e;
	return false;
}

static void door_open(void)
{
	/* One message at a time: an older unfinished one is abandoned. */
	door_drop_file();
	if (!door_take_file()) {
		/* No blocks or no inodes: the worker answers 452 4.3.1. */
		bool full = errno == ENOSPC || errno == EDQUOT;
		door_answer("error", full ? "no space" :
		    "cannot create queue file");
		return;
	}
	struct ipc_msg m;
	ipc_msg_init(&m, "ok");
	ipc_add(&m, "id", "%s", door.id);
	ipc_add(&m, "size", "%lld", (long long)door.size);
	if (!door_send(door.sock, &m, door.fd)) {
		log_warning("door: cannot pass the queue file: %m");
		door_drop_file();
	}
	ipc_msg_free(&m);
}

/*
 * type=ok at the end of a message, with the next message's file made
 * ahead (next=ID and its descriptor) when the door holds none and one can
 * be made; without it otherwise (the worker asks type=open at its next
 * DATA, and hears then why there is none).
 */
static void door_answer_ok_next(void)
{
	if (door.fd >= 0 || !door_take_file()) {
		door_answer("ok", NULL);
		return;
	}
	struct ipc_msg m;
	ipc_msg_init(&m, "ok");
	ipc_add(&m, "next", "%s", door.id);
	ipc_add(&m, "size", "%lld", (long long)door.size);
	if (!door_send(door.sock, &m, door.fd)) {
		log_warning("door: cannot pass the queue file: %m");
		door_drop_file();
	}
	ipc_msg_free(&m);
}

static void door_commit(const struct ipc_msg *req)
{
	char err[256];
	struct stat st;

	if (!door_is_current(req)) {
		door_answer("error", "no such message");
		return;
	}
	/* Still the file the door made, with no other name. */
	if (fstat(door.fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1) {
		log_warning("%s: queue file changed under the door: removed",
		    door.id);
		door_drop_file();
		door_answer("error", "queue file changed");
		return;
	}
	bool ok = queue_file_publish(door.dirfd, true, door.id, door.fd, err,
	    sizeof(err));
	if (!ok)
		log_warning("%s: cannot queue message: %s", door.id, err);
	/* Closed after the answer: nothing the client waits for. */
	int published = door.fd;
	door.fd = -1;
	door.id[0] = '\0';
	if (ok)
		door_answer_ok_next();
	else
		door_answer("error", "cannot commit");
	close(published);
}

/*
 * A quarantined message: complete in incoming/.ID, it is renamed into
 * hold/ and made durable there (the file, then hold/), as
 * queue_file_publish() does in incoming/. qmgr never sees it in
 * incoming/; `postern queue list` shows it held.
 */
static void door_hold(const struct ipc_msg *req)
{
	char tmpname[QUEUE_ID_SIZE + 1];
	struct stat st;

	if (!door_is_current(req)) {
		door_answer("error", "no such message");
		return;
	}
	if (fstat(door.fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1) {
		log_warning("%s: queue file changed under the door: removed",
		    door.id);
		door_drop_file();
		door_answer("error", "queue file changed");
		return;
	}
	snprintf(tmpname, sizeof(tmpname), ".%s", door.id);
	bool ok = renameat(door.dirfd, tmpname, door.holdfd, door.id) == 0;
	if (!ok) {
		log_warning("%s: cannot move the message to hold: %m", door.id);
		door_drop_file();
	} else if (fsync(door.fd) < 0 ||
	    (errno = dirsync_commit_fd(door.holdfd)) != 0) {	/* its errno */
		log_warning("%s: cannot sync the held message: %m", door.id);
		unlinkat(door.holdfd, door.id, 0);
		ok = false;
	}
	if (door.fd >= 0)
		close(door.fd);
	door.fd = -1;
	door.id[0] = '\0';
	if (ok)
		door_answer_ok_next();
	else
		door_answer("error", "cannot hold");
}

static void door_auth(struct ipc_msg *req)
{
	const char *user = ipc_get(req, "user");
	const char *password = ipc_get(req, "password");
	const char *result = "no";
	if (user != NULL && password != NULL) {
		switch (smtpd_auth_door_verify(user, password)) {
		case SMTPD_DOOR_AUTH_YES:
			result = "yes";
			break;
		case SMTPD_DOOR_AUTH_NO:
			break;
		case SMTPD_DOOR_AUTH_TEMPFAIL:
			result = "tempfail";
			break;
		}
	}
	struct ipc_msg m;
	ipc_msg_init(&m, "ok");
	ipc_add(&m, "result", "%s", result);
	if (!door_send(door.sock, &m, -1))
		log_warning("door: cannot answer the worker: %m");
	ipc_msg_free(&m);
}

static void door_exit(int status) __attribute__((noreturn));
static void door_exit(int status)
{
	door_drop_file();
	door_drop_spare();
	exit(status);
}

/* Its lines go where smtpd's go. */
static enum log_dest door_log_dest(void)
{
	return getenv("POSTERN_LOG_STDERR") ? LOG_DEST_STDERR : LOG_DEST_SYSLOG;
}

/* One door: serve the worker at the other end of sock until it is gone. */
static void door_serve(int sock) __attribute__((noreturn));
static void door_serve(int sock)
{
	door.sock = sock;
	door_answer("ready", NULL);

	for (;;) {
		struct ipc_msg req;
		switch (door_recv(door.sock, &req, NULL, NULL)) {
		case DOOR_RECV_EOF:
			door_exit(0);	/* the worker is gone */
		case DOOR_RECV_BAD:
		case DOOR_RECV_TIMEOUT:	/* not set on this end */
			log_warning("door: malformed request from the worker: "
			    "closing");
			door_exit(1);
		case DOOR_RECV_OK:
			break;
		}
		if (strcmp(req.type, "open") == 0 && req.count == 0) {
			door_open();
		} else if (strcmp(req.type, "commit") == 0 && req.count == 1) {
			door_commit(&req);
		} else if (strcmp(req.type, "hold") == 0 && req.count == 1) {
			door_hold(&req);
		} else if (strcmp(req.type, "abort") == 0 && req.count == 1) {
			if (door_is_current(&req))
				door_drop_file();
			door_answer_ok_next();
		} else if (strcmp(req.type, "auth") == 0 && req.count == 2) {
			door_auth(&req);
		} else {
			door_msg_wipe(&req);
			log_warning("door: unknown request from the worker: "
			    "closing");
			door_exit(1);
		}
		door_msg_wipe(&req);
		/* The answer is out: the file after the worker's, now. */
		door_make_spare();
	}
}

/*
 * The door zygote's start, once: everything a door needs before its
 * first request, done here so that each door forked after it has it.
 */
static void door_zygote_setup(void)
{
	char path[4096];

	/* Still root: the doors' shared table of incoming/'s and hold/'s
	 * fsyncs (mail/dirsync.c), root's, in run_directory. Without it
	 * each door fsyncs alone. */
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", cfg.run_directory,
	    DIRSYNC_TABLE_SMTPD_DOOR) < sizeof(path))
		dirsync_attach(path);
	priv_drop(cfg.user);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", cfg.queue_directory,
	    QUEUE_INCOMING) >= sizeof(path))
		log_fatal("queue_directory is too long");
	door.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (door.dirfd < 0)
		log_fatal("door: open %s: %m", path);
	snprintf(path, sizeof(path), "%s/%s", cfg.queue_directory, QUEUE_HOLD);
	door.holdfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (door.holdfd < 0)
		log_fatal("door: open %s: %m", path);
	/* The table's handle is shared by the doors forked later: libdb
	 * reads it with pread(), so no door moves another's offset. */
	smtpd_auth_door_init();
	daemon_confine("smtpd-door");
	/* What its start-up ran (the config parser, the tables' checks,
	 * Landlock): only the loop's code stays mapped (util/resident.h). */
	resident_drop_startup_pages();
}

/*
 * A request the door zygote may act on: from root or its starter's uid
 * (a worker that has dropped root is refused, should it still hold the
 * request socket), with a SOCK_SEQPACKET Unix socket that the sender
 * made itself. false, with why, otherwise.
 */
static bool door_request_acceptable(int fd, const struct ucred *who,
    uid_t starter, char *why, size_t whysize)
{
	int domain = 0, type = 0;
	struct ucred maker;
	socklen_t len = sizeof(domain);

	if (who->uid != 0 && who->uid != starter) {
		snprintf(why, whysize, "from uid %ld", (long)who->uid);
		return false;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    (len = sizeof(type), getsockopt(fd, SOL_SOCKET, SO_TYPE, &type,
	    &len)) < 0 || domain != AF_UNIX || type != SOCK_SEQPACKET) {
		snprintf(why, whysize, "from pid %ld: not a socket pair",
		    (long)who->pid);
		return false;
	}
	len = sizeof(maker);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &maker, &len) < 0 ||
	    maker.pid != who->pid) {
		snprintf(why, whysize, "from pid %ld: a socket pair it did not "
		    "make", (long)who->pid);
		return false;
	}
	return true;
}

static void door_zygote_sigchld(int sig)
{
	(void)sig;	/* only ends ppoll(): the loop reaps */
}

/*
 * The door zygote's loop: a door for each acceptable request, reaped
 * when it exits. single (a worker's own door zygote): the first door is
 * this process. Ends when the request socket reads end of file, once
 * the doors are gone.
 */
static void door_zygote_serve(uid_t starter, bool single)
    __attribute__((noreturn));
static void door_zygote_serve(uid_t starter, bool single)
{
	sigset_t chld, unblocked;
	char why[256];

	/* SIGCHLD only inside ppoll(): no exit of a door is missed
	 * between the reaping and the wait. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &unblocked);
	signal(SIGCHLD, door_zygote_sigchld);
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		struct pollfd p = { .fd = SMTPD_DOOR_FD, .events = POLLIN };
		if (ppoll(&p, 1, NULL, &unblocked) < 0) {
			if (errno == EINTR)
				continue;
			log_fatal("door zygote: ppoll: %m");
		}
		struct ipc_msg req;
		struct ucred who;
		int fd;
		switch (door_recv(SMTPD_DOOR_FD, &req, &fd, &who)) {
		case DOOR_RECV_EOF:
			/* No smtpd process can ask any more. */
			while (wait(NULL) > 0 || errno == EINTR)
				;
			exit(0);
		case DOOR_RECV_BAD:
		case DOOR_RECV_TIMEOUT:
			log_warning("door zygote: malformed request: refused");
			continue;
		case DOOR_RECV_OK:
			break;
		}
		bool asks = strcmp(req.type, "door") == 0 && req.count == 0;
		ipc_msg_free(&req);
		if (!asks || fd < 0 ||
		    !door_request_acceptable(fd, &who, starter, why,
		    sizeof(why))) {
			log_warning("door zygote: request refused (%s)", asks ?
			    why : "not a request for a door");
			if (fd >= 0)
				close(fd);
			continue;
		}
		pid_t pid = single ? 0 : fork();
		if (pid == 0) {
			close(SMTPD_DOOR_FD);
			sigprocmask(SIG_SETMASK, &unblocked, NULL);
			signal(SIGCHLD, SIG_DFL);
			/* Still smtpd to ps -o comm and pgrep, as a worker's
			 * door always was. */
			prctl(PR_SET_NAME, "smtpd", 0, 0, 0);
			log_init("smtpd", door_log_dest());	/* its pid */
			dirsync_forked();	/* and the table's */
			door_serve(fd);
		}
		/* A failed fork: the worker reads end of file on its pair
		 * and says its door did not start. */
		if (pid < 0)
			log_warning("door zygote: fork: %m");
		close(fd);
	}
}

/*
 * Started by an smtpd zygote or worker, or not at all: sock must be a
 * SOCK_SEQPACKET Unix socket whose peer is this process's parent, of the
 * same uid (the parent makes the pair, then spawns us). false, with why,
 * otherwise: someone ran smtpd-door by hand.
 */
static bool door_zygote_started_by_smtpd(int sock, char *why,
    size_t whysize)
{
	int domain = 0, type = 0;
	struct ucred peer;
	socklen_t len = sizeof(domain);

	if (getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) {
		snprintf(why, whysize, "descriptor %d is not a socket", sock);
		return false;
	}
	len = sizeof(type);
	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    domain != AF_UNIX || type != SOCK_SEQPACKET) {
		snprintf(why, whysize, "descriptor %d is not smtpd's socket "
		    "pair", sock);
		return false;
	}
	len = sizeof(peer);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 ||
	    peer.pid != getppid() || peer.uid != getuid()) {
		snprintf(why, whysize, "the other end of descriptor %d is not "
		    "the parent process", sock);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	const char *config_dir = NULL;
	bool single = false;
	char err[512];
	int c;

	/* Its lines are smtpd's, as when the door was a fork. */
	log_init("smtpd", door_log_dest());
	if (getenv("POSTERN_VERBOSE"))
		log_set_verbose(atoi(getenv("POSTERN_VERBOSE")));
	/* -s: the worker's service, for ps (its args), as master gives;
	 * -1: one door only, this process (a worker's own door zygote). */
	while ((c = getopt(argc, argv, "c:s:1")) != -1 && (c == 'c' ||
	    c == 's' || c == '1'))
		if (c == 'c')
			config_dir = optarg;
		else if (c == '1')
			single = true;
	if (c != -1 || config_dir == NULL || optind != argc) {
		fprintf(stderr, "usage: smtpd-door -c config_dir -s service "
		    "[-1] (started by smtpd only)\n");
		exit(2);
	}
	if (!door_zygote_started_by_smtpd(SMTPD_DOOR_FD, err, sizeof(err))) {
		fprintf(stderr, "smtpd-door: not started by smtpd (%s): "
		    "refusing to run\n", err);
		log_error("smtpd-door: not started by smtpd (%s): refusing "
		    "to run", err);
		exit(1);
	}
	/* Who may ask for doors: root, or whoever started us (test mode,
	 * where every process is that user). */
	uid_t starter = getuid();
	int on = 1;
	if (setsockopt(SMTPD_DOOR_FD, SOL_SOCKET, SO_PASSCRED, &on,
	    sizeof(on)) < 0)
		log_fatal("door zygote: SO_PASSCRED: %m");
	prctl(PR_SET_NAME, single ? "smtpd" : "smtpd-doorzyg", 0, 0, 0);
	/* Master signals the workers alone; the door zygote follows its
	 * smtpd zygote by end of file, each door its worker. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (!cfg_load(config_dir, false, err, sizeof(err)))
		log_fatal("door: %s", err);
	door_zygote_setup();
	door.sock = SMTPD_DOOR_FD;
	door_answer("ready", NULL);
	door.sock = -1;
	door_zygote_serve(starter, single);
}
#else
/* ---- the worker's side ---- */

static int worker_sock = -1;
/* The door zygote's request socket: from smtpd_door_zygote_start() (in
 * the smtpd zygote, and so in each worker it clones) or from a worker's
 * own start, until smtpd_door_start() closes it, before the drop. */
static int zygote_sock = -1;
/* The door zygote this process started and reaps at its exit (a worker
 * exec'd by master: its own, which is its door), else -1. */
static pid_t door_zygote_pid = -1;
/* The next message's file, passed ahead with the door's last type=ok
 * (kept across connections: the door removes it when the worker goes). */
static struct {
	int fd;
	char id[QUEUE_ID_SIZE];
	off_t size;
} worker_next = { .fd = -1 };

/* A file's length as the door said it (size=N), or -1. */
static off_t door_size(const struct ipc_msg *m)
{
	const char *v = ipc_get(m, "size");
	char *end;
	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : (off_t)n;
}

/* At the worker's exit: the door sees EOF and leaves; a door this
 * worker started itself (-1) is its child: wait for it. */
static void worker_reap_door(void)
{
	if (worker_sock >= 0)
		close(worker_sock);
	worker_sock = -1;
	if (door_zygote_pid > 0)
		while (waitpid(door_zygote_pid, NULL, 0) < 0 && errno == EINTR)
			;
	door_zygote_pid = -1;
}

/*
 * One request and its answer. *rep is initialised on true; a passed
 * descriptor goes to *fd when fd is not NULL. false: the door is gone
 * or broken (logged); the worker stops using it and, through
 * daemon_watch_fd(), exits after this session.
 */
static bool worker_call(const struct ipc_msg *req, struct ipc_msg *rep,
    int *fd)
{
	static bool broken;
	if (worker_sock < 0 || broken)
		return false;
	/* Whatever goes wrong below, the door is not asked again. */
	broken = true;
	if (!door_send(worker_sock, req, -1)) {
		log_warning("door: cannot send a %s request: %m", req->type);
		return false;
	}
	/* A blocking receive bounded by SO_RCVTIMEO (smtpd_door_start()),
	 * not poll() first: one call less per request. */
	switch (door_recv(worker_sock, rep, fd, NULL)) {
	case DOOR_RECV_OK:
		broken = false;
		return true;
	case DOOR_RECV_EOF:
		log_warning("door: gone (%s request)", req->type);
		return false;
	case DOOR_RECV_TIMEOUT:
		log_warning("door: no answer to a %s request", req->type);
		return false;
	case DOOR_RECV_BAD:
		break;
	}
	log_warning("door: malformed answer to a %s request", req->type);
	return false;
}

/*
 * Start smtpd-door, the door zygote, with nothing of master's (its
 * pipes, the listeners, the TLS ticket and metrics segments) and nothing
 * of this process's but its end of the request pair, as SMTPD_DOOR_FD;
 * single (-1) when it is to be this worker's one door. posix_spawn, not
 * fork and exec: glibc's shares this process's memory with the child
 * until the exec (CLONE_VM | CLONE_VFORK), so no page table is copied.
 * Its pid, or a fatal error naming the program.
 */
static pid_t door_zygote_spawn(int sock, bool single)
{
	char path[4096];
	posix_spawn_file_actions_t actions;
	pid_t pid;

	if ((size_t)snprintf(path, sizeof(path), "%s/smtpd-door",
	    cfg.daemon_directory) >= sizeof(path))
		log_fatal("door: daemon_directory is too long");
	/* dup2 onto itself would leave close-on-exec set. */
	if (sock == SMTPD_DOOR_FD) {
		int moved = fcntl(sock, F_DUPFD_CLOEXEC, SMTPD_DOOR_FD + 1);
		if (moved < 0)
			log_fatal("door socket: %m");
		close(sock);
		sock = moved;
	}
	const char *service = daemon_service_name();
	char *const argv[] = { "smtpd-door", "-c", cfg.config_directory,
		"-s", (char *)(service != NULL ? service : "smtp"),
		single ? "-1" : NULL, NULL };
	/* fd 3 (master's status pipe here) becomes the pair; everything
	 * above it goes (fd 4, the alive pipe, the listeners, master's
	 * zygote socket, and whatever else is open without close-on-exec). */
	if (posix_spawn_file_actions_init(&actions) != 0 ||
	    posix_spawn_file_actions_adddup2(&actions, sock,
	    SMTPD_DOOR_FD) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(&actions,
	    SMTPD_DOOR_FD + 1) != 0)
		log_fatal("door: posix_spawn_file_actions: %m");
	/*
	 * The child must run no handler of this process's before the exec:
	 * told nothing, glibc's child asks each of the 64 signals' action
	 * and then sets it (124 system calls); told to default them all, it
	 * only sets (64). SIGINT and SIGPIPE stay ignored, as smtpd has them
	 * (daemon.c), until smtpd-door ignores them itself.
	 */
	posix_spawnattr_t attr;
	sigset_t defaults;
	sigfillset(&defaults);
	sigdelset(&defaults, SIGINT);
	sigdelset(&defaults, SIGPIPE);
	if (posix_spawnattr_init(&attr) != 0 ||
	    posix_spawnattr_setsigdefault(&attr, &defaults) != 0 ||
	    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF) != 0)
		log_fatal("door: posix_spawnattr: %m");
	/* A door zygote binds every call once, at its start, as master's
	 * zygotes do (LD_BIND_NOW): its doors then share those pages and
	 * bind nothing themselves. A worker's own (-1) forks none: lazily. */
	size_t n = 0;
	while (environ[n] != NULL)
		n++;
	char **envp = xreallocarray(NULL, n + 2, sizeof(*envp));
	memcpy(envp, environ, n * sizeof(*envp));
	envp[n] = single ? NULL : "LD_BIND_NOW=1";
	envp[n + 1] = NULL;
	int err = posix_spawn(&pid, path, &actions, &attr, argv, envp);
	free(envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&actions);
	if (err != 0) {
		errno = err;
		log_fatal("door: cannot run %s: %m", path);
	}
	return pid;
}

/* Wait, bounded, for the first message on sock: the door zygote's or a
 * door's type=ready. Fatal otherwise, naming what did not start. */
static void door_wait_ready(int sock, const char *what)
{
	struct ipc_msg m;
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, DOOR_ANSWER_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	if (n <= 0 || door_recv(sock, &m, NULL, NULL) != DOOR_RECV_OK)
		log_fatal("the %s did not start (see its messages above)",
		    what);
	bool ready = strcmp(m.type, "ready") == 0;
	ipc_msg_free(&m);
	if (!ready)
		log_fatal("the %s did not start", what);
}

/* The door zygote's request socket (this process's end), ready. */
static int door_zygote_start(bool single)
{
	int sv[2];
	uid_t uid, worker_uid;
	gid_t gid, worker_gid;

	/* Two names for one uid would undo the separation. */
	if (priv_is_root() && priv_lookup_user(cfg.user, &uid, &gid) &&
	    priv_lookup_user(cfg.smtpd_user, &worker_uid, &worker_gid) &&
	    (uid == worker_uid || gid == worker_gid))
		log_fatal("smtpd_user \"%s\" has the uid or group of user "
		    "\"%s\": give smtpd its own user and group",
		    cfg.smtpd_user, cfg.user);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		log_fatal("socketpair: %m");
	door_zygote_pid = door_zygote_spawn(sv[1], single);
	close(sv[1]);
	door_wait_ready(sv[0], "door zygote");
	zygote_sock = sv[0];
	return zygote_sock;
}

int smtpd_door_zygote_start(const char *service)
{
	(void)service;	/* daemon_service_name() names it */
	return door_zygote_start(false);
}

void smtpd_door_start(void)
{
	int sv[2];

	/* A worker master exec'd: a door zygote of its own, its one door.
	 * A cloned one asks its zygote's (and reaps none: not its child). */
	if (zygote_sock < 0)
		(void)door_zygote_start(true);
	else
		door_zygote_pid = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		log_fatal("socketpair: %m");
	struct ipc_msg req;
	ipc_msg_init(&req, "door");
	bool sent = door_send(zygote_sock, &req, sv[1]);
	int sent_errno = errno;
	ipc_msg_free(&req);
	close(sv[1]);
	/* Still root: after this no request for a door can be made from
	 * this process, whatever it runs once it has dropped root. */
	close(zygote_sock);
	zygote_sock = -1;
	if (!sent) {
		errno = sent_errno;
		log_fatal("door: the door zygote is gone (%m): no door for "
		    "this worker");
	}
	/* The worker waits for each answer at most this long. */
	struct timeval answer_timeout = {
		.tv_sec = DOOR_ANSWER_TIMEOUT_MS / 1000,
		.tv_usec = (DOOR_ANSWER_TIMEOUT_MS % 1000) * 1000,
	};
	if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &answer_timeout,
	    sizeof(answer_timeout)) < 0)
		log_fatal("door socket: SO_RCVTIMEO: %m");
	worker_sock = sv[0];
	atexit(worker_reap_door);
}

void smtpd_door_wait_ready(void)
{
	door_wait_ready(worker_sock, "door process");
	daemon_watch_fd(worker_sock);
}
int smtpd_door_open(char id[QUEUE_ID_SIZE], off_t *size)
{
	struct ipc_msg req, rep;
	int fd = -1;

	*size = -1;
	if (worker_next.fd >= 0) {
		/* Made ahead: no request at all. */
		fd = worker_next.fd;
		*size = worker_next.size;
		strlcpy(id, worker_next.id, QUEUE_ID_SIZE);
		worker_next.fd = -1;
		worker_next.id[0] = '\0';
		return fd;
	}
	ipc_msg_init(&req, "open");
	bool ok = worker_call(&req, &rep, &fd);
	ipc_msg_free(&req);
	if (!ok)
		return -1;
	const char *got = ipc_get(&rep, "id");
	if (strcmp(rep.type, "ok") == 0 && fd >= 0 && got != NULL &&
	    queue_id_valid(got)) {
		strlcpy(id, got, QUEUE_ID_SIZE);
		*size = door_size(&rep);
	} else {
		const char *why = ipc_get(&rep, "reason");
		if (fd >= 0)
			close(fd);
		fd = -1;
		errno = why != NULL && strcmp(why, "no space") == 0 ?
		    ENOSPC : EIO;
	}
	ipc_msg_free(&rep);
	return fd;
}

/*
 * One request that ends a message ("commit", "hold", "abort"): true when
 * the door answered "ok". Its ok may carry the next message's file
 * (next=ID), kept for smtpd_door_open().
 */
static bool file_request(const char *type, const char *id)
{
	struct ipc_msg req, rep;
	int fd = -1;

	ipc_msg_init(&req, type);
	ipc_add(&req, "id", "%s", id);
	bool ok = worker_call(&req, &rep, &fd);
	ipc_msg_free(&req);
	if (!ok)
		return false;
	ok = strcmp(rep.type, "ok") == 0;
	const char *next = ipc_get(&rep, "next");
	if (ok && fd >= 0 && next != NULL && queue_id_valid(next) &&
	    worker_next.fd < 0) {
		worker_next.fd = fd;
		worker_next.size = door_size(&rep);
		strlcpy(worker_next.id, next, sizeof(worker_next.id));
	} else if (fd >= 0) {
		close(fd);
	}
	ipc_msg_free(&rep);
	return ok;
}

bool smtpd_door_commit(const char *id)
{
	return file_request("commit", id);
}

bool smtpd_door_commit_hold(const char *id)
{
	return file_request("hold", id);
}

void smtpd_door_abort(const char *id)
{
	(void)file_request("abort", id);
}

enum smtpd_door_auth smtpd_door_auth(const char *user, const char *password)
{
	struct ipc_msg req, rep;
	enum smtpd_door_auth r = SMTPD_DOOR_AUTH_TEMPFAIL;

	ipc_msg_init(&req, "auth");
	ipc_add(&req, "user", "%s", user);
	ipc_add(&req, "password", "%s", password);
	bool ok = worker_call(&req, &rep, NULL);
	door_msg_wipe(&req);
	if (!ok)
		return r;
	const char *result = ipc_get(&rep, "result");
	if (strcmp(rep.type, "ok") == 0 && result != NULL) {
		if (strcmp(result, "yes") == 0)
			r = SMTPD_DOOR_AUTH_YES;
		else if (strcmp(result, "no") == 0)
			r = SMTPD_DOOR_AUTH_NO;
	}
	ipc_msg_free(&rep);
	return r;
}
#endif
