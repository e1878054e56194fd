/*
 * metrics.h - the counters and histograms of the daemons that do not serve
 * the metrics endpoint themselves (smtpd, lmtpd), and qmgr's own, kept in
 * shared memory segments that master makes (doc/architecture.md,
 * "Operations tools").
 *
 * Why shared memory: smtpd and lmtpd are many short-lived, confined
 * processes, and counting is on the hot path. An increment here is one
 * atomic add in memory: no system call, no message to lose when qmgr is
 * busy, no file write. master makes one anonymous memory file (memfd) per
 * writing program when it starts, before any child, and owns them for its
 * whole life, so counts survive the exit of any worker, a reload and a
 * restart of qmgr. Each program maps only its own segment for writing
 * (POSTERN_METRICS_FDS); qmgr, which serves metrics_listen and the control
 * socket, maps the others read-only and renders them.
 *
 * Trust: a segment holds only fixed-size arrays of counters and short
 * texts, never an offset, a length or a pointer, so a compromised writer
 * can make its own numbers wrong but cannot make the reader misbehave.
 * The reader checks the magic and size of each segment, and treats the
 * texts of the event ring as untrusted (bounded, NUL forced, escaped by
 * whoever shows them).
 */
#ifndef POSTERN_METRICS_H
#define POSTERN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

enum metrics_segment {
	METRICS_SEG_SMTPD,
	METRICS_SEG_LMTPD,
	METRICS_SEG_QMGR,
	METRICS_NSEG
};

/* smtpd's services, as labels (service="smtp"). */
enum metrics_smtpd_service {
	METRICS_SVC_SMTP,
	METRICS_SVC_SUBMISSION,
	METRICS_SVC_SMTPS,
	METRICS_NSVC
};

/* Why smtpd refused something it logs as "reject:" (smtpd_metrics.c
 * sorts the reply into one of these). */
enum metrics_reject_reason {
	METRICS_REJECT_RELAY,
	METRICS_REJECT_UNKNOWN_RECIPIENT,
	METRICS_REJECT_DNSBL,
	METRICS_REJECT_RATE_LIMIT,
	METRICS_REJECT_SENDER,
	METRICS_REJECT_AUTH_REQUIRED,
	METRICS_REJECT_SIZE,
	METRICS_REJECT_CONTENT,		/* bare CR/LF, hop count */
	METRICS_REJECT_POLICY,		/* greylisting, SPF, DMARC, ... */
	METRICS_REJECT_TEMPFAIL,	/* a table or the queue failed */
	METRICS_REJECT_OTHER,
	METRICS_NREJECT
};

enum metrics_tls_version {
	METRICS_TLS_1_0,
	METRICS_TLS_1_1,
	METRICS_TLS_1_2,
	METRICS_TLS_1_3,
	METRICS_TLS_OTHER,
	METRICS_TLS_FAILED,		/* the handshake failed */
	METRICS_NTLS
};

enum metrics_auth_result {
	METRICS_AUTH_SUCCESS,
	METRICS_AUTH_FAILURE,		/* wrong name or password */
	METRICS_AUTH_LOCKED,		/* refused: too many failures */
	METRICS_AUTH_TEMPFAIL,		/* the table could not be read */
	METRICS_NAUTH
};

/* Delivery transports as qmgr routes them. */
enum metrics_transport {
	METRICS_TR_SMTP,
	METRICS_TR_LMTP,
	METRICS_TR_LOCAL,
	METRICS_TR_OTHER,
	METRICS_NTR
};

enum metrics_result {
	METRICS_SENT,
	METRICS_DEFERRED,
	METRICS_BOUNCED,
	METRICS_NRESULT
};

enum metrics_lmtpd_result {
	METRICS_LMTPD_STORED,
	METRICS_LMTPD_TEMPFAIL,
	METRICS_LMTPD_REFUSED,
	METRICS_NLMTPD
};

/* The histograms and their fixed bucket bounds (metrics.c). */
enum metrics_hist_kind {
	METRICS_HIST_ACCEPT,	/* end of DATA to 250, seconds */
	METRICS_HIST_DELAY,	/* arrival to a delivery result, seconds */
	METRICS_HIST_STORE,	/* lmtpd: end of DATA to the last reply */
	METRICS_NHIST
};

#define METRICS_HIST_MAX 16	/* finite buckets, +1 for +Inf */

/* Non-cumulative counts, one slot per bucket and the last for +Inf: the
 * reader sums them, so the +Inf bucket always equals the count. */
struct metrics_hist {
	uint64_t bucket[METRICS_HIST_MAX + 1];
	uint64_t sum_us;
};

/* One line of the recent events ring (rejects, deferrals). */
#define METRICS_EVENT_TEXT 232
#define METRICS_EVENTS 32
struct metrics_event {
	uint64_t seq;		/* odd while being written */
	int64_t time;		/* wall-clock seconds */
	char text[METRICS_EVENT_TEXT];
};

struct metrics_smtpd_counters {
	uint64_t connections;
	uint64_t messages;
	uint64_t bytes;
	uint64_t rejects[METRICS_NREJECT];
	uint64_t tls[METRICS_NTLS];
	uint64_t auth[METRICS_NAUTH];
	struct metrics_hist accept;
};

struct metrics_smtpd_segment {
	uint32_t magic, size;
	struct metrics_smtpd_counters svc[METRICS_NSVC];
	uint64_t event_next;
	struct metrics_event events[METRICS_EVENTS];
};

struct metrics_lmtpd_segment {
	uint32_t magic, size;
	uint64_t connections;
	uint64_t messages;
	uint64_t rcpts[METRICS_NLMTPD];
	struct metrics_hist store;
};

struct metrics_qmgr_segment {
	uint32_t magic, size;
	uint64_t activated;
	uint64_t notices;
	uint64_t results[METRICS_NTR][METRICS_NRESULT];
	struct metrics_hist delay[METRICS_NTR];
	uint64_t event_next;
	struct metrics_event events[METRICS_EVENTS];
};

/* master: make the segments (once, before the first child). */
void metrics_master_init(void);
/*
 * master, in a child before exec: put the segments program may map at
 * descriptors from next_fd on and say so in POSTERN_METRICS_FDS. Returns
 * the next free descriptor.
 */
int metrics_master_pass(const char *program, int next_fd);

/* Every daemon, at start: map what master passed (nothing: counting is
 * a no-op). */
void metrics_attach(void);

/* The writers' segments, or NULL when not mapped. */
struct metrics_smtpd_segment *metrics_smtpd(void);
struct metrics_lmtpd_segment *metrics_lmtpd(void);
struct metrics_qmgr_segment *metrics_qmgr(void);

/* Add n to a counter of a mapped segment (relaxed atomic add). */
static inline void metrics_add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* Count one observation of seconds into a histogram of that kind. */
void metrics_observe(struct metrics_hist *h, enum metrics_hist_kind kind,
    double seconds);
/* Append a line to a ring (text is cut to fit). */
void metrics_event(uint64_t *next, struct metrics_event *ring,
    const char *text);

/* Monotonic seconds, for the latencies. */
double metrics_now(void);

/* qmgr: the Prometheus text of every mapped segment. */
void metrics_render(struct str *out);
/*
 * qmgr: the recent events of every segment, oldest first, as
 * "TIME TEXT" strings given to fn (texts copied and NUL-ended).
 */
void metrics_recent(void (*fn)(void *arg, long long time, const char *text),
    void *arg);

/* Label texts. */
const char *metrics_transport_name(enum metrics_transport t);
enum metrics_transport metrics_transport_of(const char *name);

#endif
