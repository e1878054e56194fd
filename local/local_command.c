/*
 * local_command.c - a "|command" target of an alias or .forward
 * (local_forward.c says whose rights it runs with): /bin/sh -c in a
 * process group of its own, as that user, in the user's home, with the
 * clean environment of Postfix's local(8), the message on standard
 * input, and at most command_time_limit; its exit status read as
 * sysexits(3) says, and the first OUTPUT_KEEP bytes of what it printed
 * kept (made printable) for the log and the DSN.
 *
 * Trusts nothing the command does: its output is bounded, its time is
 * limited, and it never holds a descriptor of ours but its three pipes
 * (closefrom) or runs with root's ids.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "local.h"
#include "log.h"
#include "mbox.h"
#include "mem.h"
#include "priv.h"
#include "str.h"

#define OUTPUT_KEEP 512		/* a command's output kept for the DSN */
#define WHY_MAX 1024
#define CHUNK 65536

static char outcome(char status, const char *dsn, char *dsn_out,
    size_t dsnsize, char *text, size_t textsize, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static char outcome(char status, const char *dsn, char *dsn_out,
    size_t dsnsize, char *text, size_t textsize, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, textsize, fmt, ap);
	va_end(ap);
	strlcpy(dsn_out, dsn, dsnsize);
	return status;
}
#define OUT(status, dsn, ...) \
	outcome(status, dsn, dsn_out, dsnsize, text, textsize, __VA_ARGS__)

/* sysexits(3) as Postfix maps them: which are worth a retry. */
static void exit_status(int code, char *status, const char **dsn)
{
	switch (code) {
	case 0: *status = 'S'; *dsn = "2.0.0"; break;
	case 67: *status = 'B'; *dsn = "5.1.1"; break;	/* EX_NOUSER */
	case 68: *status = 'B'; *dsn = "5.1.2"; break;	/* EX_NOHOST */
	case 65: *status = 'B'; *dsn = "5.6.0"; break;	/* EX_DATAERR */
	case 73: *status = 'B'; *dsn = "5.2.0"; break;	/* EX_CANTCREAT */
	case 76: *status = 'B'; *dsn = "5.5.0"; break;	/* EX_PROTOCOL */
	case 77: *status = 'B'; *dsn = "5.7.0"; break;	/* EX_NOPERM */
	case 78: *status = 'B'; *dsn = "5.3.5"; break;	/* EX_CONFIG */
	case 71: case 75:				/* EX_OSERR, EX_TEMPFAIL */
		*status = 'D'; *dsn = "4.3.0"; break;
	default: *status = 'B'; *dsn = "5.3.0"; break;
	}
}

/* The command's output for the DSN: printable, lines joined, bounded. */
static void clean_output(const char *in, size_t len, char *out,
    size_t outsize)
{
	size_t o = 0;
	bool space = false;
	for (size_t i = 0; i < len && o + 2 < outsize; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
			space = o > 0;
			continue;
		}
		if (space) {
			out[o++] = ' ';
			space = false;
		}
		out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[o] = '\0';
}

static void env_add(char ***env, size_t *n, const char *name,
    const char *value)
{
	*env = xreallocarray(*env, *n + 2, sizeof(**env));
	(*env)[(*n)++] = xasprintf("%s=%s", name, value);
	(*env)[*n] = NULL;
}

/* The clean environment of local(8). */
static char **command_env(const struct local_job *job,
    const struct local_rcpt *r, const struct local_privs *ctx)
{
	char **env = NULL;
	size_t n = 0;
	const char *address = r->address;
	const char *at = strrchr(address, '@');
	char *local = xstrndup(address, at ? (size_t)(at - address) :
	    strlen(address));
	char *plus = strchr(local, '+');

	env_add(&env, &n, "PATH", "/usr/bin:/bin");
	env_add(&env, &n, "SENDER", job->sender);
	env_add(&env, &n, "RECIPIENT", address);
	env_add(&env, &n, "LOCAL", local);
	env_add(&env, &n, "DOMAIN", at ? at + 1 : cfg.myhostname);
	if (plus != NULL && plus != local)
		env_add(&env, &n, "EXTENSION", plus + 1);
	env_add(&env, &n, "HOME", ctx->home);
	env_add(&env, &n, "USER", ctx->user);
	env_add(&env, &n, "LOGNAME", ctx->user);
	env_add(&env, &n, "SHELL", ctx->shell);
	free(local);
	return env;
}

/* The message as a command reads it: "From " line, Return-Path:,
 * Delivered-To:, the text with LF line ends, unquoted. */
struct feed {
	struct str buf;
	size_t off;
	off_t done;
	struct mbox_body body;
	bool finished;
};

static bool feed_more(struct feed *f, const struct local_job *job,
    char *why, size_t whysize)
{
	char chunk[CHUNK];

	str_clear(&f->buf);
	f->off = 0;
	if (f->done == job->content_length) {
		mbox_body_finish(&f->body, &f->buf);
		f->finished = true;
		return true;
	}
	size_t want = job->content_length - f->done < CHUNK ?
	    (size_t)(job->content_length - f->done) : CHUNK;
	ssize_t n = pread(job->content_fd, chunk, want,
	    job->content_offset + f->done);
	if (n <= 0) {
		snprintf(why, whysize, "cannot read queue file: %s", n == 0 ?
		    "cut short" : strerror(errno));
		return false;
	}
	mbox_body_feed(&f->body, chunk, (size_t)n, &f->buf);
	f->done += n;
	return true;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char local_command_run(const struct local_job *job,
    const struct local_rcpt *r, const struct local_privs *ctx,
    const char *command, char *dsn_out, size_t dsnsize, char *text,
    size_t textsize)
{
	char esc[200], why[WHY_MAX] = "";
	int in[2], out[2];

	log_escape(esc, sizeof(esc), command, strlen(command));
	if (pipe2(in, O_CLOEXEC) < 0) {
		return OUT('D', "4.3.0", "pipe: %s", strerror(errno));
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return OUT('D', "4.3.0", "pipe: %s", strerror(errno));
	}
	char **env = command_env(job, r, ctx);
	pid_t pid = fork();
	if (pid == 0) {
		char err[256];
		setpgid(0, 0);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 ||
		    dup2(out[1], 2) < 0)
			_exit(71);
		closefrom(3);
		if (!priv_is_root() ? false :
		    !local_become_user(ctx->uid, ctx->gid, err, sizeof(err))) {
			dprintf(2, "%s\n", err);
			_exit(75);
		}
		if (chdir(ctx->home) < 0 && chdir("/") < 0)
			_exit(71);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		umask(077);
		execle("/bin/sh", "sh", "-c", command, (char *)NULL, env);
		dprintf(2, "cannot run /bin/sh: %s\n", strerror(errno));
		_exit(71);
	}
	for (size_t i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		close(in[1]);
		close(out[0]);
		return OUT('D', "4.3.0", "fork: %s", strerror(errno));
	}
	setpgid(pid, pid);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);

	struct feed f = { .off = 0 };
	str_init(&f.buf, STR_NO_MAX);
	mbox_body_init(&f.body);
	f.body.plain = true;
	mbox_from_line(&f.buf, job->sender, time(NULL));
	str_appendf(&f.buf, "Return-Path: <%s>\nDelivered-To: %s\n",
	    job->sender, r->address);

	char output[OUTPUT_KEEP];
	size_t outlen = 0;
	bool in_open = true, out_open = true, timed_out = false;
	long long deadline = now_ms() + cfg.command_time_limit * 1000;
	while (out_open && !timed_out) {
		struct pollfd p[2] = {
			{ .fd = out_open ? out[0] : -1, .events = POLLIN },
			{ .fd = in_open ? in[1] : -1, .events = POLLOUT },
		};
		long long left = deadline - now_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		int n = poll(p, 2, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (p[0].revents) {
			char buf[4096];
			ssize_t got = read(out[0], buf, sizeof(buf));
			if (got > 0) {
				size_t take = (size_t)got < sizeof(output) -
				    outlen ? (size_t)got : sizeof(output) -
				    outlen;
				memcpy(output + outlen, buf, take);
				outlen += take;
			} else if (got == 0 || errno != EAGAIN) {
				out_open = false;
			}
		}
		if (in_open && p[1].revents) {
			if (f.off == f.buf.len && !f.finished &&
			    !feed_more(&f, job, why, sizeof(why))) {
				kill(-pid, SIGKILL);
				break;
			}
			if (f.off < f.buf.len) {
				ssize_t w = write(in[1], f.buf.data + f.off,
				    f.buf.len - f.off);
				if (w > 0)
					f.off += (size_t)w;
				else if (errno != EAGAIN)
					in_open = false; /* EPIPE: it stopped
							    reading */
			}
			if (in_open && f.finished && f.off == f.buf.len)
				in_open = false;
			if (!in_open)
				close(in[1]);
		}
	}
	if (in_open)
		close(in[1]);
	close(out[0]);
	str_free(&f.buf);

	/* Its output is closed; wait for it within the same limit. */
	int wstatus = 0;
	pid_t done = 0;
	while (!timed_out && (done = waitpid(pid, &wstatus, WNOHANG)) == 0) {
		if (now_ms() >= deadline)
			timed_out = true;
		else
			poll(NULL, 0, 20);
	}
	if (timed_out || done != pid) {
		kill(-pid, SIGKILL);
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
	}
	char shown[OUTPUT_KEEP + 1];
	clean_output(output, outlen, shown, sizeof(shown));
	if (why[0] != '\0')
		return OUT('D', "4.3.0", "%s", why);
	if (timed_out)
		return OUT('D', "4.3.0", "command \"%s\" killed: time limit of "
		    "%lld s exceeded", esc, cfg.command_time_limit);
	if (WIFSIGNALED(wstatus))
		return OUT('D', "4.3.0", "command \"%s\" died with signal %d%s%s",
		    esc, WTERMSIG(wstatus), outlen ? ": " : "", shown);
	char status;
	const char *dsn;
	int code = WEXITSTATUS(wstatus);
	exit_status(code, &status, &dsn);
	if (status == 'S')
		return OUT('S', dsn, "delivered to command: %s", esc);
	return OUT(status, dsn, "command \"%s\" failed with status %d%s%s",
	    esc, code, outlen ? ": " : "", shown);
}
