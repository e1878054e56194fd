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
 * Trusts nothing it shows: every text from qmgr (addresses, reasons,
 * client names) passes top_mask(), which lets only printable ASCII
 * through, so no escape sequence reaches the terminal.
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
#include "bio.h"
#include "cfg.h"
#include "ipc.h"
#include "mem.h"
#include "queue.h"
#include "sock.h"
#include "str.h"

#define TOP_TIMEOUT_MS 3000
#define TOP_MAX_ENTRIES 5000	/* messages kept for the list */
#define TOP_MAX_EVENTS 64

/* One scrape: series text ("name{labels}") and value. */
struct top_series {
	char *name;
	double value;
};

struct top_sample {
	struct top_series *s;
	size_t n, cap;
	double when;			/* monotonic seconds */
	char *busy[16], *slow[16];	/* "active limit queued dead ms jobs key" */
	size_t nbusy, nslow;
	char *events[TOP_MAX_EVENTS];	/* "TIME TEXT" */
	size_t nevents;
	bool ok;
};

struct top_state {
	struct top_sample prev, cur;
	struct ipc_msg *entries;	/* type=entry of the last listing */
	size_t nentries, total_entries;
	char *shape;			/* qshape text of the last listing */
	size_t sel;			/* selected entry */
	char sel_id[QUEUE_ID_SIZE];
	bool show;			/* the detail of the selected message */
	bool prompt;			/* typing an ID after "/" */
	char typed[QUEUE_ID_SIZE];
	char status[256];
	double interval;
	bool tty;
	int rows, cols;
};

static struct termios saved_tio;
static bool tio_saved;
static volatile sig_atomic_t top_stop;

static double top_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Only printable ASCII reaches the terminal. */
static void top_mask(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src && *src && i + 1 < size; src++)
		dst[i++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	dst[i] = '\0';
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

/* Sum of the series of name whose labels contain every filter. */
static double sum(const struct top_sample *s, const char *name,
    const char *f1, const char *f2)
{
	size_t nl = strlen(name);
	double total = 0;
	for (size_t i = 0; i < s->n; i++) {
		const char *x = s->s[i].name;
		if (strncmp(x, name, nl) != 0 || (x[nl] != '{' && x[nl]))
			continue;
		if ((f1 && !strstr(x + nl, f1)) || (f2 && !strstr(x + nl, f2)))
			continue;
		total += s->s[i].value;
	}
	return total;
}

/* A rate per second between the last two scrapes. */
static double rate(const struct top_state *st, const char *name,
    const char *f1, const char *f2)
{
	if (!st->prev.ok || !st->cur.ok || st->cur.when <= st->prev.when)
		return 0;
	double d = sum(&st->cur, name, f1, f2) - sum(&st->prev, name, f1, f2);
	return d > 0 ? d / (st->cur.when - st->prev.when) : 0;
}

/* The mean of a histogram over the last interval, else overall (ms). */
static double mean_ms(const struct top_state *st, const char *hist,
    const char *f1)
{
	char sn[128], cn[128];
	snprintf(sn, sizeof(sn), "%s_sum", hist);
	snprintf(cn, sizeof(cn), "%s_count", hist);
	double c = sum(&st->cur, cn, f1, NULL), s = sum(&st->cur, sn, f1, NULL);
	if (st->prev.ok) {
		double dc = c - sum(&st->prev, cn, f1, NULL);
		if (dc > 0)
			return 1000 * (s - sum(&st->prev, sn, f1, NULL)) / dc;
	}
	return c > 0 ? 1000 * s / c : 0;
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

/* ---- drawing ---- */

struct top_frame {
	struct str out;
	int line, rows, cols;
	bool tty;
};

static void put(struct top_frame *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One screen line, cut at the width. */
static void put(struct top_frame *f, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (f->tty && f->line >= f->rows - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (f->cols > 0 && (int)strlen(buf) > f->cols)
		buf[f->cols] = '\0';
	str_append_cstr(&f->out, buf);
	str_append_cstr(&f->out, f->tty ? "\033[K\r\n" : "\n");
	f->line++;
}

static const char *entry_first_rcpt(const struct ipc_msg *m, size_t *n)
{
	const char *first = NULL;
	*n = 0;
	for (size_t i = 0; i < m->count; i++)
		if (strcmp(m->attrs[i].name, "rcpt") == 0) {
			if (first == NULL)
				first = m->attrs[i].value;
			(*n)++;
		}
	return first;
}

static void draw_detail(struct top_frame *f, const struct ipc_msg *m)
{
	char a[300], b[300];
	time_t now = time(NULL);
	long long arrival = 0;

	ipc_get_ll(m, "arrival", &arrival);
	top_mask(a, sizeof(a), ipc_get(m, "id"));
	top_mask(b, sizeof(b), ipc_get(m, "queue"));
	put(f, "MESSAGE %s  queue %s  size %s  age %llds", a, b,
	    ipc_get(m, "size") ? ipc_get(m, "size") : "?",
	    (long long)now - arrival);
	top_mask(a, sizeof(a), ipc_get(m, "sender"));
	put(f, "  from <%s>", a);
	for (size_t i = 0; i < m->count; i++) {
		top_mask(a, sizeof(a), m->attrs[i].value);
		if (strcmp(m->attrs[i].name, "rcpt") == 0)
			put(f, "  to   <%s>", a);
		else if (strcmp(m->attrs[i].name, "reason") == 0)
			put(f, "  why  %s", a);
	}
	put(f, "  (s: back to the list)");
}

static void draw_dests(struct top_frame *f, const char *title,
    char *const *lines, size_t n)
{
	if (n == 0)
		return;
	put(f, "%-44s %7s %7s %9s %6s", title, "active", "queued", "avg job",
	    "jobs");
	for (size_t i = 0; i < n && i < 4; i++) {
		int active = 0, limit = 0, dead = 0;
		size_t queued = 0;
		double ms = 0;
		unsigned long jobs = 0;
		int used = 0;
		char key[200];
		if (sscanf(lines[i], "%d %d %zu %d %lf %lu %n", &active, &limit,
		    &queued, &dead, &ms, &jobs, &used) < 6)
			continue;
		top_mask(key, sizeof(key), lines[i] + used);
		put(f, "  %-42.42s %4d/%-2d %7zu %7.0fms %6lu%s", key, active,
		    limit, queued, ms, jobs, dead ? "  SUSPENDED" : "");
	}
}

static void top_draw(struct top_state *st)
{
	static const char *const svcs[] = { "smtp", "submission", "smtps" };
	static const char *const queues[] = { "maildrop", "incoming",
	    "active", "deferred", "hold", "corrupt" };
	struct top_frame f = { .rows = st->rows, .cols = st->cols,
	    .tty = st->tty };
	char filt[64], when[32], host[128];
	time_t now = time(NULL);

	str_init(&f.out, STR_NO_MAX);
	if (st->tty)
		str_append_cstr(&f.out, "\033[H");
	strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
	top_mask(host, sizeof(host), cfg.myhostname);
	put(&f, "postern top - %s - %s - every %.0fs   q quit  h hold  "
	    "f flush  s show  arrows or / ID: pick", host, when,
	    st->interval);
	if (!st->cur.ok) {
		put(&f, "qmgr does not answer on %s/%s: is postern running?",
		    cfg.run_directory, IPC_SOCKET_QMGR);
		goto end;
	}
	put(&f, "%s", "");
	put(&f, "%-11s %8s %8s %8s %9s %9s %9s %9s", "SMTP", "conn/s",
	    "msg/s", "rej/s", "accept", "conns", "messages", "rejects");
	for (size_t i = 0; i < 3; i++) {
		snprintf(filt, sizeof(filt), "service=\"%s\"", svcs[i]);
		put(&f, "%-11s %8.1f %8.1f %8.1f %7.1fms %9.0f %9.0f %9.0f",
		    svcs[i],
		    rate(st, "postern_smtpd_connections_total", filt, NULL),
		    rate(st, "postern_smtpd_messages_total", filt, NULL),
		    rate(st, "postern_smtpd_rejects_total", filt, NULL),
		    mean_ms(st, "postern_smtpd_accept_seconds", filt),
		    sum(&st->cur, "postern_smtpd_connections_total", filt, NULL),
		    sum(&st->cur, "postern_smtpd_messages_total", filt, NULL),
		    sum(&st->cur, "postern_smtpd_rejects_total", filt, NULL));
	}
	put(&f, "%-11s %8.1f %8.1f %8.1f %7.1fms %9.0f %9.0f %9.0f", "lmtpd",
	    rate(st, "postern_lmtpd_connections_total", NULL, NULL),
	    rate(st, "postern_lmtpd_messages_total", NULL, NULL),
	    rate(st, "postern_lmtpd_recipients_total", "result=\"refused\"",
	    NULL),
	    mean_ms(st, "postern_lmtpd_store_seconds", NULL),
	    sum(&st->cur, "postern_lmtpd_connections_total", NULL, NULL),
	    sum(&st->cur, "postern_lmtpd_messages_total", NULL, NULL),
	    sum(&st->cur, "postern_lmtpd_recipients_total",
	    "result=\"refused\"", NULL));
	put(&f, "DELIVERY    sent %.1f/s  deferred %.1f/s  bounced %.1f/s  "
	    "in flight %.0f   totals: sent %.0f  deferred %.0f  bounced %.0f",
	    rate(st, "postern_recipient_results_total", "status=\"sent\"", NULL),
	    rate(st, "postern_recipient_results_total", "status=\"deferred\"",
	    NULL),
	    rate(st, "postern_recipient_results_total", "status=\"bounced\"",
	    NULL),
	    sum(&st->cur, "postern_deliveries_in_flight", NULL, NULL),
	    sum(&st->cur, "postern_recipient_results_total", "status=\"sent\"",
	    NULL),
	    sum(&st->cur, "postern_recipient_results_total",
	    "status=\"deferred\"", NULL),
	    sum(&st->cur, "postern_recipient_results_total",
	    "status=\"bounced\"", NULL));
	{
		char line[256] = "QUEUE      ", part[48];
		for (size_t i = 0; i < 6; i++) {
			snprintf(filt, sizeof(filt), "queue=\"%s\"", queues[i]);
			snprintf(part, sizeof(part), " %s %.0f", queues[i],
			    sum(&st->cur, "postern_queue_messages", filt, NULL));
			strlcat(line, part, sizeof(line));
		}
		put(&f, "%s", line);
	}
	{
		/* Rejects by reason, the ones seen, over all services. */
		char line[512] = "REJECTS   ", part[64];
		bool any = false;
		for (size_t i = 0; i < st->cur.n; i++) {
			const char *x = st->cur.s[i].name, *r;
			if (strncmp(x, "postern_smtpd_rejects_total{", 28) ||
			    st->cur.s[i].value == 0 ||
			    (r = strstr(x, "reason=\"")) == NULL)
				continue;
			char reason[40];
			snprintf(reason, sizeof(reason), "%.*s",
			    (int)strcspn(r + 8, "\""), r + 8);
			snprintf(filt, sizeof(filt), "reason=\"%s\"", reason);
			if (strstr(line, reason))
				continue;
			snprintf(part, sizeof(part), " %s %.0f", reason,
			    sum(&st->cur, "postern_smtpd_rejects_total", filt,
			    NULL));
			strlcat(line, part, sizeof(line));
			any = true;
		}
		if (any)
			put(&f, "%s", line);
	}
	if (st->shape != NULL) {
		put(&f, "%s", "");
		const char *p = st->shape;
		for (int k = 0; *p && k < 8; k++) {
			size_t len = strcspn(p, "\n");
			put(&f, "%.*s", (int)len, p);
			p += len + (p[len] == '\n');
		}
	}
	if (st->cur.nbusy || st->cur.nslow)
		put(&f, "%s", "");
	draw_dests(&f, "BUSIEST DESTINATIONS", st->cur.busy, st->cur.nbusy);
	draw_dests(&f, "SLOWEST DESTINATIONS", st->cur.slow, st->cur.nslow);
	if (st->cur.nevents) {
		put(&f, "%s", "");
		put(&f, "RECENT REJECTS, DEFERRALS AND BOUNCES");
		size_t first = st->cur.nevents > 6 ? st->cur.nevents - 6 : 0;
		for (size_t i = first; i < st->cur.nevents; i++) {
			char text[400], hm[16];
			long long t = strtoll(st->cur.events[i], NULL, 10);
			time_t tt = (time_t)t;
			const char *sp = strchr(st->cur.events[i], ' ');
			strftime(hm, sizeof(hm), "%H:%M:%S", localtime(&tt));
			top_mask(text, sizeof(text), sp ? sp + 1 : "");
			put(&f, "  %s %s", hm, text);
		}
	}
	put(&f, "%s", "");
	if (st->show && st->sel < st->nentries) {
		draw_detail(&f, &st->entries[st->sel]);
	} else {
		put(&f, "MESSAGES (%zu)%s", st->total_entries,
		    st->total_entries > st->nentries ? ", the oldest shown" : "");
		/* Scroll so that the selection is on screen. */
		int room = st->tty ? f.rows - 1 - f.line - 1 : 20;
		size_t first = 0;
		if (room < 1)
			room = 1;
		if (st->sel >= (size_t)room)
			first = st->sel - (size_t)room + 1;
		for (size_t i = first; i < st->nentries && (int)(i - first) <
		    room; i++) {
			const struct ipc_msg *m = &st->entries[i];
			char id[32], q[16], s[120], r[120];
			size_t nr;
			const char *r0 = entry_first_rcpt(m, &nr);
			top_mask(id, sizeof(id), ipc_get(m, "id"));
			top_mask(q, sizeof(q), ipc_get(m, "queue"));
			top_mask(s, sizeof(s), ipc_get(m, "sender"));
			top_mask(r, sizeof(r), r0);
			put(&f, "%s %-14s %-8s %8s  <%s> -> <%s>%s",
			    i == st->sel ? ">" : " ", id, q,
			    ipc_get(m, "size") ? ipc_get(m, "size") : "?", s, r,
			    nr > 1 ? " ..." : "");
		}
	}
end:
	if (st->tty) {
		/* The status line at the bottom. */
		str_append_cstr(&f.out, "\033[J");
		str_appendf(&f.out, "\033[%d;1H\033[7m", st->rows);
		char status[300];
		if (st->prompt)
			snprintf(status, sizeof(status), "queue ID: %s",
			    st->typed);
		else
			top_mask(status, sizeof(status), st->status);
		if (st->cols > 0 && (int)strlen(status) > st->cols)
			status[st->cols] = '\0';
		str_appendf(&f.out, "%s\033[K\033[0m", status);
	} else if (st->status[0]) {
		put(&f, "%s", st->status);
	}
	if (write(STDOUT_FILENO, f.out.data, f.out.len) < 0)
		top_stop = 1;
	str_free(&f.out);
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
		top_draw(&st);
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
					top_draw(&st);
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
			if (redraw && !top_stop)
				top_draw(&st);
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
