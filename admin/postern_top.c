/*
 * postern_top.c - "postern top": a live view of a running postern in the
 * terminal, refreshed every second: connections, messages and rejects per
 * smtpd service, LMTP and delivery rates, the queue's sizes and shape,
 * the busiest and slowest destinations, recent rejects and deferrals with
 * their reasons, and the queued messages, one of which the keys act on
 * (h hold, f flush, s show, arrows or "/" and an ID to pick, q quit).
 *
 * Where the data comes from: qmgr's control socket only. type=metrics
 * gives the same text as metrics_listen (so top works with the endpoint
 * off) and, for root and the postern user, destinations and recent
 * events; type=list gives the queue as any user may see it. top never
 * reads a queue file, as root or otherwise. "h" runs "postern queue hold
 * ID" (the audited path, which asks qmgr for a message it is working
 * on); "f" is qmgr's type=flush.
 *
 * The terminal: plain ANSI escapes and termios (raw input, the alternate
 * screen), no curses: libncurses is not among postern's dependencies.
 * Without a terminal (or with -b) it prints plain frames.
 *
 * This file talks to qmgr and to the terminal and takes the keys;
 * postern_top_view.c draws. Trusts nothing qmgr sends: an ID it acts on
 * goes to "postern queue hold" as one argument, which checks it, and
 * every text shown is masked by the view (printable ASCII only).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "admin.h"
#include "postern_top.h"
#include "bio.h"
#include "cfg.h"
#include "ipc.h"
#include "mem.h"
#include "queue.h"
#include "sock.h"
#include "str.h"

#define TOP_TIMEOUT_MS 3000
#define TOP_MAX_ENTRIES 5000	/* messages kept for the list */

static struct termios saved_tio;
static bool tio_saved;
static volatile sig_atomic_t top_stop;

static double top_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- talking to qmgr ---- */

static int top_connect(struct bio *b)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", cfg.run_directory,
	    IPC_SOCKET_QMGR);
	int fd = sock_connect_unix(path, TOP_TIMEOUT_MS);
	if (fd < 0)
		return -1;
	bio_init(b, fd, TOP_TIMEOUT_MS);
	return fd;
}

static void top_disconnect(struct bio *b)
{
	close(b->fd);
	bio_free(b);
}

/* Ask one question; the first answer in *reply (freed by the caller). */
static bool top_ask(const char *type, struct ipc_msg *reply)
{
	struct bio b;
	struct ipc_msg req;
	bool ok = false;

	if (top_connect(&b) < 0)
		return false;
	ipc_msg_init(&req, type);
	if (ipc_send(&b, &req) && ipc_recv(&b, reply) == BIO_OK)
		ok = true;
	ipc_msg_free(&req);
	top_disconnect(&b);
	return ok;
}

static void sample_free(struct top_sample *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->s[i].name);
	free(s->s);
	for (size_t i = 0; i < s->nbusy; i++)
		free(s->busy[i]);
	for (size_t i = 0; i < s->nslow; i++)
		free(s->slow[i]);
	for (size_t i = 0; i < s->nevents; i++)
		free(s->events[i]);
	memset(s, 0, sizeof(*s));
}

/* The exposition text: "name{labels} value" lines, comments skipped. */
static void parse_text(struct top_sample *s, const char *text)
{
	while (text && *text) {
		const char *end = strchr(text, '\n');
		size_t len = end ? (size_t)(end - text) : strlen(text);
		const char *sp = memrchr(text, ' ', len);
		if (text[0] != '#' && sp != NULL) {
			if (s->n == s->cap) {
				s->cap = s->cap ? s->cap * 2 : 256;
				s->s = xreallocarray(s->s, s->cap,
				    sizeof(*s->s));
			}
			s->s[s->n].name = xstrndup(text, (size_t)(sp - text));
			s->s[s->n].value = strtod(sp + 1, NULL);
			s->n++;
		}
		text = end ? end + 1 : NULL;
	}
}

static void top_scrape(struct top_sample *s)
{
	struct ipc_msg m;

	memset(s, 0, sizeof(*s));
	s->when = top_now();
	if (!top_ask("metrics", &m))
		return;
	if (strcmp(m.type, "metrics") == 0) {
		s->ok = true;
		for (size_t i = 0; i < m.count; i++) {
			const char *n = m.attrs[i].name, *v = m.attrs[i].value;
			if (strcmp(n, "text") == 0)
				parse_text(s, v);
			else if (strcmp(n, "busy") == 0 && s->nbusy < 16)
				s->busy[s->nbusy++] = xstrdup(v);
			else if (strcmp(n, "slow") == 0 && s->nslow < 16)
				s->slow[s->nslow++] = xstrdup(v);
			else if (strcmp(n, "event") == 0) {
				if (s->nevents == TOP_MAX_EVENTS) {
					free(s->events[0]);
					memmove(s->events, s->events + 1,
					    (TOP_MAX_EVENTS - 1) *
					    sizeof(s->events[0]));
					s->nevents--;
				}
				s->events[s->nevents++] = xstrdup(v);
			}
		}
	}
	ipc_msg_free(&m);
}

static void entries_free(struct top_state *st)
{
	for (size_t i = 0; i < st->nentries; i++)
		ipc_msg_free(&st->entries[i]);
	free(st->entries);
	st->entries = NULL;
	st->nentries = st->total_entries = 0;
}

/* The queue as qmgr lists it to anyone; the shape from the same entries. */
static void top_list(struct top_state *st)
{
	struct bio b;
	struct ipc_msg req;

	if (top_connect(&b) < 0)
		return;
	ipc_msg_init(&req, "list");
	bool sent = ipc_send(&b, &req);
	ipc_msg_free(&req);
	if (!sent) {
		top_disconnect(&b);
		return;
	}
	entries_free(st);
	struct admin_qshape *shape = admin_qshape_new(time(NULL));
	for (;;) {
		struct ipc_msg m;
		if (ipc_recv(&b, &m) != BIO_OK)
			break;
		if (strcmp(m.type, "entry") != 0) {
			ipc_msg_free(&m);
			break;
		}
		const char *q = ipc_get(&m, "queue");
		if (q == NULL || strcmp(q, QUEUE_HOLD) != 0)
			admin_qshape_add(shape, &m);
		st->total_entries++;
		if (st->nentries < TOP_MAX_ENTRIES) {
			st->entries = xreallocarray(st->entries,
			    st->nentries + 1, sizeof(*st->entries));
			st->entries[st->nentries++] = m;
		} else {
			ipc_msg_free(&m);
		}
	}
	top_disconnect(&b);
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (mem != NULL) {
		admin_qshape_print(shape, mem, 6);
		fclose(mem);
		free(st->shape);
		st->shape = text;
	}
	admin_qshape_free(shape);
	/* Keep the selection on the same message when it is still there. */
	for (size_t i = 0; st->sel_id[0] && i < st->nentries; i++) {
		const char *id = ipc_get(&st->entries[i], "id");
		if (id && strcmp(id, st->sel_id) == 0) {
			st->sel = i;
			return;
		}
	}
	if (st->sel >= st->nentries)
		st->sel = st->nentries ? st->nentries - 1 : 0;
}

/* ---- actions ---- */

/* "postern queue hold ID": its first line of output is our status. */
static void top_hold(struct top_state *st, const char *id)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(st->status, sizeof(st->status), "hold: pipe: %s",
		    strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		char *argv[] = { "postern", "-c", cfg.config_directory, "queue",
			"hold", (char *)id, NULL };
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(p[1]);
	char out[512];
	size_t len = 0;
	ssize_t r;
	while (pid > 0 && len + 1 < sizeof(out) &&
	    (r = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(p[0]);
	int wst = 0;
	if (pid > 0)
		waitpid(pid, &wst, 0);
	out[strcspn(out, "\n")] = '\0';
	if (pid > 0 && WIFEXITED(wst) && WEXITSTATUS(wst) == 0)
		snprintf(st->status, sizeof(st->status), "%.20s: placed on "
		    "hold%s%.200s", id, out[0] ? ": " : "", out);
	else
		snprintf(st->status, sizeof(st->status), "hold %.20s failed: "
		    "%.200s", id, out[0] ? out : "see the mail log");
}

static void top_flush(struct top_state *st)
{
	struct ipc_msg m;
	if (!top_ask("flush", &m)) {
		snprintf(st->status, sizeof(st->status), "flush: qmgr does "
		    "not answer");
		return;
	}
	const char *reason = ipc_get(&m, "reason");
	if (strcmp(m.type, "ok") == 0)
		snprintf(st->status, sizeof(st->status), "flush: qmgr is "
		    "retrying every deferred message now");
	else
		snprintf(st->status, sizeof(st->status), "flush refused: %s",
		    reason ? reason : m.type);
	ipc_msg_free(&m);
}

static const char *selected_id(struct top_state *st)
{
	if (st->sel >= st->nentries)
		return NULL;
	return ipc_get(&st->entries[st->sel], "id");
}

static void select_entry(struct top_state *st, size_t i)
{
	const char *id;
	st->sel = i;
	id = selected_id(st);
	strlcpy(st->sel_id, id ? id : "", sizeof(st->sel_id));
}

/* One key (or an arrow's escape sequence, n 3); true: redraw. */
static bool top_key(struct top_state *st, const char *k, size_t n)
{
	if (st->prompt) {
		if (k[0] == '\r' || k[0] == '\n') {
			st->prompt = false;
			for (size_t i = 0; i < st->nentries; i++) {
				const char *id = ipc_get(&st->entries[i], "id");
				if (id && strcmp(id, st->typed) == 0) {
					select_entry(st, i);
					st->show = true;
					return true;
				}
			}
			snprintf(st->status, sizeof(st->status), "%s: not in "
			    "the queue", st->typed);
		} else if (k[0] == 0x1b) {
			st->prompt = false;
		} else if ((k[0] == 0x7f || k[0] == 0x08) && st->typed[0]) {
			st->typed[strlen(st->typed) - 1] = '\0';
		} else if (((k[0] >= '0' && k[0] <= '9') ||
		    (k[0] >= 'A' && k[0] <= 'Z') ||
		    (k[0] >= 'a' && k[0] <= 'z')) &&
		    strlen(st->typed) + 1 < sizeof(st->typed)) {
			size_t l = strlen(st->typed);
			st->typed[l] = k[0];
			st->typed[l + 1] = '\0';
		}
		return true;
	}
	if (n >= 3 && k[0] == 0x1b && k[1] == '[') {
		if (k[2] == 'A' && st->sel > 0)
			select_entry(st, st->sel - 1);
		else if (k[2] == 'B' && st->sel + 1 < st->nentries)
			select_entry(st, st->sel + 1);
		return true;
	}
	switch (k[0]) {
	case 'q':
	case 'Q':
		top_stop = 1;
		return false;
	case 'k':
		if (st->sel > 0)
			select_entry(st, st->sel - 1);
		return true;
	case 'j':
		if (st->sel + 1 < st->nentries)
			select_entry(st, st->sel + 1);
		return true;
	case 's':
		st->show = !st->show && st->sel < st->nentries;
		if (st->show)
			select_entry(st, st->sel);
		return true;
	case 'f':
		top_flush(st);
		return true;
	case 'h': {
		const char *id = selected_id(st);
		if (id == NULL) {
			snprintf(st->status, sizeof(st->status), "hold: no "
			    "message selected");
			return true;
		}
		char copy[QUEUE_ID_SIZE];
		strlcpy(copy, id, sizeof(copy));
		top_hold(st, copy);
		top_list(st);
		return true;
	}
	case '/':
		st->prompt = true;
		st->typed[0] = '\0';
		return true;
	}
	return false;
}

/* ---- the terminal ---- */

static void top_restore(void)
{
	if (!tio_saved)
		return;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	/* Cursor back, the normal screen back. */
	if (write(STDOUT_FILENO, "\033[?25h\033[?1049l", 14) < 0)
		return;
	tio_saved = false;
}

static void on_signal(int sig)
{
	top_stop = 1;
}

static void on_winch(int sig)
{
}

static bool top_raw(void)
{
	struct termios t;
	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return false;
	t = saved_tio;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0)
		return false;
	tio_saved = true;
	atexit(top_restore);
	/* The alternate screen, no cursor. */
	return write(STDOUT_FILENO, "\033[?1049h\033[?25l\033[2J", 18) == 18;
}

static void top_size(struct top_state *st)
{
	struct winsize ws;
	st->rows = 24;
	st->cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
		st->rows = ws.ws_row;
		st->cols = ws.ws_col;
	}
}

static void top_usage(void)
{
	fprintf(stderr, "usage: postern top [-b] [-d SECONDS] [-n COUNT]\n");
}

int admin_top_main(int argc, char **argv)
{
	struct top_state st;
	bool batch = false;
	long count = 0;
	int c;

	memset(&st, 0, sizeof(st));
	st.interval = 1;
	optind = 1;
	while ((c = getopt(argc, argv, "bd:n:")) != -1) {
		switch (c) {
		case 'b':
			batch = true;
			break;
		case 'd':
			st.interval = strtod(optarg, NULL);
			if (st.interval < 0.2 || st.interval > 3600) {
				top_usage();
				return 1;
			}
			break;
		case 'n':
			count = strtol(optarg, NULL, 10);
			break;
		default:
			top_usage();
			return 1;
		}
	}
	if (optind != argc) {
		top_usage();
		return 1;
	}
	st.tty = !batch && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (st.tty && !top_raw()) {
		fprintf(stderr, "postern top: cannot set up the terminal\n");
		return 1;
	}
	double next_list = 0;
	for (long frame = 0; !top_stop; frame++) {
		sample_free(&st.prev);
		st.prev = st.cur;
		top_scrape(&st.cur);
		/* The listing is the heavier question: every other second. */
		if (top_now() >= next_list) {
			top_list(&st);
			next_list = top_now() + 2 * st.interval - 0.05;
		}
		if (st.tty)
			top_size(&st);
		if (!top_draw(&st))
			top_stop = 1;
		if (count > 0 && frame + 1 >= count)
			break;
		double due = top_now() + st.interval;
		while (!top_stop) {
			int wait = (int)((due - top_now()) * 1000);
			if (wait <= 0)
				break;
			struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
			int r = poll(&p, st.tty ? 1 : 0, wait);
			if (r < 0 && errno == EINTR) {
				if (st.tty) {
					top_size(&st);
					if (!top_draw(&st))
						top_stop = 1;
				}
				continue;
			}
			if (r <= 0)
				break;
			char k[16];
			ssize_t n = read(STDIN_FILENO, k, sizeof(k));
			if (n <= 0) {
				top_stop = 1;
				break;
			}
			/* What came at once (a pasted ID, keys sent
			 * together), key by key. */
			bool redraw = false;
			for (ssize_t i = 0; i < n && !top_stop;) {
				size_t len = k[i] == 0x1b && i + 2 < n &&
				    k[i + 1] == '[' ? 3 : 1;
				redraw |= top_key(&st, k + i, len);
				i += (ssize_t)len;
			}
			if (redraw && !top_stop && !top_draw(&st))
				top_stop = 1;
		}
		if (!st.tty && write(STDOUT_FILENO, "\n", 1) < 0)
			top_stop = 1;
	}
	top_restore();
	sample_free(&st.prev);
	sample_free(&st.cur);
	entries_free(&st);
	free(st.shape);
	return 0;
}
