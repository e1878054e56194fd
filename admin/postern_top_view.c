/*
 * postern_top_view.c - the frame of "postern top": the rates and totals
 * from two scrapes of qmgr's metrics, the queue's shape, destinations,
 * recent events and the message list or one message, cut to the
 * terminal's size, in one write.
 *
 * Trusts nothing it shows: every text from qmgr (addresses, reasons,
 * client names) passes top_mask(), which lets only printable ASCII
 * through, so no escape sequence reaches the terminal.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "ipc.h"
#include "postern_top.h"
#include "str.h"

/* Only printable ASCII reaches the terminal. */
static void top_mask(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src && *src && i + 1 < size; src++)
		dst[i++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	dst[i] = '\0';
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

bool top_draw(struct top_state *st)
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
	bool ok = write(STDOUT_FILENO, f.out.data, f.out.len) >= 0;
	str_free(&f.out);
	return ok;
}
