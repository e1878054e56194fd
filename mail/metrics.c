/*
 * metrics.c - the shared metrics segments (metrics.h): made by master,
 * passed to the daemons, counted into by smtpd, lmtpd and qmgr, rendered
 * as Prometheus text by qmgr.
 *
 * Trusts master's descriptors. Reads the segments as numbers only; the
 * event texts are copied out under their sequence number, cut and
 * NUL-ended here, and escaped by whoever shows them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "log.h"
#include "metrics.h"

#define METRICS_MAGIC 0x706d7431u	/* "pmt1" */
#define METRICS_ENV "POSTERN_METRICS_FDS"

static const char *const seg_names[METRICS_NSEG] = { "smtpd", "lmtpd",
    "qmgr" };
static const size_t seg_sizes[METRICS_NSEG] = {
	sizeof(struct metrics_smtpd_segment),
	sizeof(struct metrics_lmtpd_segment),
	sizeof(struct metrics_qmgr_segment),
};

/* master: the memfds; a daemon: its mappings. */
static int seg_fd[METRICS_NSEG] = { -1, -1, -1 };
static void *seg_map[METRICS_NSEG];
static bool seg_writable[METRICS_NSEG];

/* ---- histogram buckets (upper bounds, seconds) ---- */

/* Acceptance: a commit is two fsyncs, a filter may add a round trip. */
static const double accept_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
/* Delivery delay: seconds for a healthy queue, days for a dead site. */
static const double delay_bounds[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    60, 300, 900, 3600, 14400, 86400, 432000 };

struct hist_def {
	const double *bounds;
	size_t n;
};

static const struct hist_def hist_defs[METRICS_NHIST] = {
	[METRICS_HIST_ACCEPT] = { accept_bounds,
	    sizeof(accept_bounds) / sizeof(accept_bounds[0]) },
	[METRICS_HIST_DELAY] = { delay_bounds,
	    sizeof(delay_bounds) / sizeof(delay_bounds[0]) },
	[METRICS_HIST_STORE] = { accept_bounds,
	    sizeof(accept_bounds) / sizeof(accept_bounds[0]) },
};

_Static_assert(sizeof(delay_bounds) / sizeof(delay_bounds[0]) <=
    METRICS_HIST_MAX, "too many buckets");

/* ---- master ---- */

void metrics_master_init(void)
{
	for (int i = 0; i < METRICS_NSEG; i++) {
		if (seg_fd[i] >= 0)
			continue;
		char name[32];
		snprintf(name, sizeof(name), "postern-metrics-%s",
		    seg_names[i]);
		int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0) {
			log_warning("memfd_create: %m: no metrics of %s",
			    seg_names[i]);
			continue;
		}
		/* Sealed at its size: a writer that shrank the file would
		 * make its reader (qmgr) die of SIGBUS. */
		void *p = MAP_FAILED;
		if (ftruncate(fd, (off_t)seg_sizes[i]) < 0 ||
		    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
		    F_SEAL_SEAL) < 0 ||
		    (p = mmap(NULL, seg_sizes[i], PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0)) == MAP_FAILED) {
			log_warning("metrics segment %s: %m: no metrics of "
			    "%s", seg_names[i], seg_names[i]);
			close(fd);
			continue;
		}
		uint32_t *head = p;
		head[0] = METRICS_MAGIC;
		head[1] = (uint32_t)seg_sizes[i];
		munmap(p, seg_sizes[i]);
		/* Above the range exec_child dup2()s into. */
		int high = fcntl(fd, F_DUPFD_CLOEXEC, 64);
		if (high >= 0) {
			close(fd);
			fd = high;
		}
		seg_fd[i] = fd;
	}
}

int metrics_master_pass(const char *program, int next_fd)
{
	char env[128] = "", part[32];
	bool all = strcmp(program, "qmgr") == 0;

	unsetenv(METRICS_ENV);
	for (int i = 0; i < METRICS_NSEG; i++) {
		if (seg_fd[i] < 0 || (!all && strcmp(program, seg_names[i])))
			continue;
		if (dup2(seg_fd[i], next_fd) < 0)
			continue;
		snprintf(part, sizeof(part), "%s%s:%d", env[0] ? "," : "",
		    seg_names[i], next_fd++);
		strlcat(env, part, sizeof(env));
	}
	if (env[0])
		setenv(METRICS_ENV, env, 1);
	return next_fd;
}

/* ---- daemons ---- */

void metrics_attach(void)
{
	const char *env = getenv(METRICS_ENV);
	const char *me = log_program();

	if (env == NULL)
		return;
	char *copy = strdup(env), *save = NULL;
	for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
	    tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		int fd = atoi(colon + 1);
		for (int i = 0; i < METRICS_NSEG; i++) {
			if (strcmp(tok, seg_names[i]) != 0 || fd < 3 ||
			    seg_map[i] != NULL)
				continue;
			bool own = me != NULL && strcmp(me, seg_names[i]) == 0;
			void *p = mmap(NULL, seg_sizes[i], own ? PROT_READ |
			    PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
			const uint32_t *head = p;
			if (p == MAP_FAILED) {
				log_warning("metrics segment %s: %m",
				    seg_names[i]);
			} else if (head[0] != METRICS_MAGIC ||
			    head[1] != seg_sizes[i]) {
				/* A master of another version. */
				log_warning("metrics segment %s has another "
				    "layout: not counted", seg_names[i]);
				munmap(p, seg_sizes[i]);
			} else {
				seg_map[i] = p;
				seg_writable[i] = own;
			}
			close(fd);
		}
	}
	free(copy);
	unsetenv(METRICS_ENV);
}

struct metrics_smtpd_segment *metrics_smtpd(void)
{
	return seg_writable[METRICS_SEG_SMTPD] ? seg_map[METRICS_SEG_SMTPD] :
	    NULL;
}

struct metrics_lmtpd_segment *metrics_lmtpd(void)
{
	return seg_writable[METRICS_SEG_LMTPD] ? seg_map[METRICS_SEG_LMTPD] :
	    NULL;
}

struct metrics_qmgr_segment *metrics_qmgr(void)
{
	return seg_writable[METRICS_SEG_QMGR] ? seg_map[METRICS_SEG_QMGR] :
	    NULL;
}

double metrics_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void metrics_observe(struct metrics_hist *h, enum metrics_hist_kind kind,
    double seconds)
{
	const struct hist_def *d = &hist_defs[kind];
	size_t b = 0;

	if (seconds < 0)
		seconds = 0;
	while (b < d->n && seconds > d->bounds[b])
		b++;
	metrics_add(&h->bucket[b], 1);
	metrics_add(&h->sum_us, (uint64_t)(seconds * 1e6));
}

void metrics_event(uint64_t *next, struct metrics_event *ring,
    const char *text)
{
	uint64_t idx = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
	struct metrics_event *e = &ring[idx % METRICS_EVENTS];

	/* A seqlock per slot: odd while written, the reader retries. */
	__atomic_store_n(&e->seq, 2 * idx + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	e->time = (int64_t)time(NULL);
	strlcpy(e->text, text, sizeof(e->text));
	__atomic_store_n(&e->seq, 2 * idx + 2, __ATOMIC_RELEASE);
}

/* ---- rendering (qmgr) ---- */

static const char *const svc_names[METRICS_NSVC] = { "smtp", "submission",
    "smtps" };
static const char *const reject_names[METRICS_NREJECT] = { "relay",
    "unknown_recipient", "dnsbl", "rate_limit", "sender", "auth_required",
    "size", "content", "policy", "tempfail", "other" };
static const char *const tls_names[METRICS_NTLS] = { "TLSv1", "TLSv1.1",
    "TLSv1.2", "TLSv1.3", "other", "failed" };
static const char *const auth_names[METRICS_NAUTH] = { "success",
    "failure", "locked", "tempfail" };
static const char *const tr_names[METRICS_NTR] = { "smtp", "lmtp", "local",
    "other" };
static const char *const result_names[METRICS_NRESULT] = { "sent",
    "deferred", "bounced" };
static const char *const lmtpd_names[METRICS_NLMTPD] = { "stored",
    "tempfail", "refused" };

const char *metrics_transport_name(enum metrics_transport t)
{
	return tr_names[t < METRICS_NTR ? t : METRICS_TR_OTHER];
}

enum metrics_transport metrics_transport_of(const char *name)
{
	for (int t = 0; t < METRICS_TR_OTHER; t++)
		if (name != NULL && strcmp(name, tr_names[t]) == 0)
			return (enum metrics_transport)t;
	return METRICS_TR_OTHER;
}

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void head(struct str *out, const char *name, const char *type,
    const char *help)
{
	str_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* One histogram's series; labels is "" or `service="smtp",`. */
static void hist(struct str *out, const char *name, const char *labels,
    const struct metrics_hist *h, enum metrics_hist_kind kind)
{
	const struct hist_def *d = &hist_defs[kind];
	uint64_t cum = 0;
	/* Trim the trailing comma for the _sum and _count lines. */
	size_t llen = strlen(labels);
	int plain = llen > 0 ? (int)llen - 1 : 0;

	for (size_t b = 0; b <= d->n; b++) {
		cum += load(&h->bucket[b]);
		if (b < d->n)
			str_appendf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name,
			    labels, d->bounds[b], (unsigned long long)cum);
		else
			str_appendf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n",
			    name, labels, (unsigned long long)cum);
	}
	str_appendf(out, "%s_sum%s%.*s%s %.6f\n", name, plain ? "{" : "",
	    plain, labels, plain ? "}" : "", (double)load(&h->sum_us) / 1e6);
	str_appendf(out, "%s_count%s%.*s%s %llu\n", name, plain ? "{" : "",
	    plain, labels, plain ? "}" : "", (unsigned long long)cum);
}

/*
 * One counter of smtpd's, by service and, when names is not NULL, by a
 * second label: the n values at offset in each service's counters.
 */
static void smtpd_counter(struct str *out,
    const struct metrics_smtpd_segment *m, const char *name,
    const char *help, size_t offset, const char *label,
    const char *const *names, int n)
{
	head(out, name, "counter", help);
	for (int v = 0; v < METRICS_NSVC; v++) {
		const uint64_t *c = (const uint64_t *)
		    ((const char *)&m->svc[v] + offset);
		for (int i = 0; i < n; i++) {
			unsigned long long value = load(&c[i]);
			if (names == NULL)
				str_appendf(out, "%s{service=\"%s\"} %llu\n",
				    name, svc_names[v], value);
			else
				str_appendf(out, "%s{service=\"%s\",%s=\"%s\"} "
				    "%llu\n", name, svc_names[v], label,
				    names[i], value);
		}
	}
}

#define SMTPD_AT(field) offsetof(struct metrics_smtpd_counters, field)

static void render_smtpd(struct str *out, const struct metrics_smtpd_segment *m)
{
	char lab[64];

	smtpd_counter(out, m, "postern_smtpd_connections_total",
	    "SMTP connections smtpd served, by service.",
	    SMTPD_AT(connections), NULL, NULL, 1);
	smtpd_counter(out, m, "postern_smtpd_messages_total",
	    "Messages smtpd accepted into the queue (250 after DATA).",
	    SMTPD_AT(messages), NULL, NULL, 1);
	smtpd_counter(out, m, "postern_smtpd_received_bytes_total",
	    "Octets of the messages smtpd accepted.",
	    SMTPD_AT(bytes), NULL, NULL, 1);
	smtpd_counter(out, m, "postern_smtpd_rejects_total",
	    "Commands and messages smtpd refused (the reject: log lines), "
	    "by reason.", SMTPD_AT(rejects), "reason", reject_names,
	    METRICS_NREJECT);
	smtpd_counter(out, m, "postern_smtpd_tls_sessions_total",
	    "TLS handshakes (STARTTLS or smtps), by protocol version; "
	    "\"failed\" for a handshake that failed.", SMTPD_AT(tls),
	    "version", tls_names, METRICS_NTLS);
	smtpd_counter(out, m, "postern_smtpd_auth_total",
	    "SMTP AUTH attempts, by result.", SMTPD_AT(auth), "result",
	    auth_names, METRICS_NAUTH);
	head(out, "postern_smtpd_accept_seconds", "histogram",
	    "Time from the end of the message (DATA's dot or BDAT LAST) to "
	    "the 250 reply: filters, the two fsyncs of the commit.");
	for (int v = 0; v < METRICS_NSVC; v++) {
		snprintf(lab, sizeof(lab), "service=\"%s\",", svc_names[v]);
		hist(out, "postern_smtpd_accept_seconds", lab, &m->svc[v].accept,
		    METRICS_HIST_ACCEPT);
	}
}

static void render_lmtpd(struct str *out, const struct metrics_lmtpd_segment *m)
{
	head(out, "postern_lmtpd_connections_total", "counter",
	    "LMTP connections lmtpd served.");
	str_appendf(out, "postern_lmtpd_connections_total %llu\n",
	    (unsigned long long)load(&m->connections));
	head(out, "postern_lmtpd_messages_total", "counter",
	    "Messages lmtpd received to the end of DATA.");
	str_appendf(out, "postern_lmtpd_messages_total %llu\n",
	    (unsigned long long)load(&m->messages));
	head(out, "postern_lmtpd_recipients_total", "counter",
	    "Recipients of received messages, by what lmtpd did.");
	for (int r = 0; r < METRICS_NLMTPD; r++)
		str_appendf(out, "postern_lmtpd_recipients_total{result="
		    "\"%s\"} %llu\n", lmtpd_names[r],
		    (unsigned long long)load(&m->rcpts[r]));
	head(out, "postern_lmtpd_store_seconds", "histogram",
	    "Time from the end of DATA to the last recipient's reply "
	    "(every Maildir copy written and fsync'd).");
	hist(out, "postern_lmtpd_store_seconds", "", &m->store,
	    METRICS_HIST_STORE);
}

static void render_qmgr(struct str *out, const struct metrics_qmgr_segment *m)
{
	char lab[64];

	head(out, "postern_messages_activated_total", "counter",
	    "Messages that entered active/ (a retry counts again).");
	str_appendf(out, "postern_messages_activated_total %llu\n",
	    (unsigned long long)load(&m->activated));
	head(out, "postern_notifications_total", "counter",
	    "Bounce, delay and success notices queued.");
	str_appendf(out, "postern_notifications_total %llu\n",
	    (unsigned long long)load(&m->notices));
	head(out, "postern_recipient_results_total", "counter",
	    "Delivery results per recipient, by transport and status.");
	for (int t = 0; t < METRICS_NTR; t++)
		for (int r = 0; r < METRICS_NRESULT; r++)
			str_appendf(out, "postern_recipient_results_total{"
			    "transport=\"%s\",status=\"%s\"} %llu\n",
			    tr_names[t], result_names[r],
			    (unsigned long long)load(&m->results[t][r]));
	head(out, "postern_delivery_delay_seconds", "histogram",
	    "Time from a message's arrival to a recipient's final result "
	    "(sent or bounced), by transport.");
	for (int t = 0; t < METRICS_NTR; t++) {
		snprintf(lab, sizeof(lab), "transport=\"%s\",", tr_names[t]);
		hist(out, "postern_delivery_delay_seconds", lab, &m->delay[t],
		    METRICS_HIST_DELAY);
	}
}

void metrics_render(struct str *out)
{
	if (seg_map[METRICS_SEG_QMGR] != NULL)
		render_qmgr(out, seg_map[METRICS_SEG_QMGR]);
	if (seg_map[METRICS_SEG_SMTPD] != NULL)
		render_smtpd(out, seg_map[METRICS_SEG_SMTPD]);
	if (seg_map[METRICS_SEG_LMTPD] != NULL)
		render_lmtpd(out, seg_map[METRICS_SEG_LMTPD]);
}

struct recent_line {
	uint64_t order;
	long long time;
	char text[METRICS_EVENT_TEXT];
};

static int by_time(const void *a, const void *b)
{
	const struct recent_line *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Copy out the settled lines of one ring. */
static size_t ring_copy(const uint64_t *next_p,
    const struct metrics_event *ring, struct recent_line *out)
{
	uint64_t next = __atomic_load_n(next_p, __ATOMIC_ACQUIRE);
	uint64_t first = next > METRICS_EVENTS ? next - METRICS_EVENTS : 0;
	size_t n = 0;

	for (uint64_t idx = first; idx < next; idx++) {
		const struct metrics_event *e = &ring[idx % METRICS_EVENTS];
		uint64_t s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
		if (s1 != 2 * idx + 2)
			continue;	/* being written, or overwritten */
		out[n].time = e->time;
		memcpy(out[n].text, e->text, sizeof(out[n].text));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) != s1)
			continue;
		out[n].text[sizeof(out[n].text) - 1] = '\0';
		out[n].order = idx;
		n++;
	}
	return n;
}

void metrics_recent(void (*fn)(void *arg, long long time, const char *text),
    void *arg)
{
	static struct recent_line lines[2 * METRICS_EVENTS];
	size_t n = 0;
	const struct metrics_smtpd_segment *s = seg_map[METRICS_SEG_SMTPD];
	const struct metrics_qmgr_segment *q = seg_map[METRICS_SEG_QMGR];

	if (s != NULL)
		n += ring_copy(&s->event_next, s->events, lines + n);
	if (q != NULL)
		n += ring_copy(&q->event_next, q->events, lines + n);
	qsort(lines, n, sizeof(lines[0]), by_time);
	for (size_t i = 0; i < n; i++)
		fn(arg, lines[i].time, lines[i].text);
}
