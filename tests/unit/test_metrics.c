/*
 * test_metrics.c - mail/metrics.c: the segments as master makes and
 * passes them and qmgr maps them; which bucket an observation lands in
 * (a value on a bound belongs to that bound's bucket, "le"), the rendered
 * histogram (cumulative, +Inf equal to _count, the sum), and the recent
 * events ring (the last 32, oldest first, texts cut to fit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "str.h"
#include "unit.h"

/* Map the segments as qmgr does: its own writable, the others not. */
static void attach_as_qmgr(void)
{
	log_init("qmgr", LOG_DEST_STDERR);
	metrics_master_init();
	int next = metrics_master_pass("qmgr", 40);
	CHECK_INT(next, 43);
	CHECK(getenv("POSTERN_METRICS_FDS") != NULL);
	metrics_attach();
	CHECK(getenv("POSTERN_METRICS_FDS") == NULL);
}

/* The value of one series line of text, or -1. */
static double series(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

static void test_segments(void)
{
	attach_as_qmgr();
	CHECK(metrics_qmgr() != NULL);
	/* qmgr reads smtpd's and lmtpd's, never writes them. */
	CHECK(metrics_smtpd() == NULL);
	CHECK(metrics_lmtpd() == NULL);
}

static void test_histogram(void)
{
	static const struct {
		double seconds;
		const char *bucket;	/* the smallest "le" holding it */
	} cases[] = {
		{ 0.0, "0.1" },
		{ 0.1, "0.1" },		/* on the bound: le */
		{ 0.1000001, "0.25" },
		{ 3, "5" },
		{ 86400, "86400" },
		{ 432001, "+Inf" },
	};
	struct metrics_qmgr_segment *m = metrics_qmgr();
	char name[128];

	if (m == NULL)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct str before, after;
		str_init(&before, STR_NO_MAX);
		str_init(&after, STR_NO_MAX);
		metrics_render(&before);
		metrics_observe(&m->delay[METRICS_TR_LOCAL], METRICS_HIST_DELAY,
		    cases[i].seconds);
		metrics_render(&after);
		/* Exactly the buckets from the expected one up grew by one. */
		static const char *const les[] = { "0.1", "0.25", "0.5", "1",
		    "2.5", "5", "10", "30", "60", "300", "900", "3600", "14400",
		    "86400", "432000", "+Inf" };
		bool reached = false;
		for (size_t b = 0; b < sizeof(les) / sizeof(les[0]); b++) {
			snprintf(name, sizeof(name),
			    "postern_delivery_delay_seconds_bucket{transport="
			    "\"local\",le=\"%s\"}", les[b]);
			reached |= strcmp(les[b], cases[i].bucket) == 0;
			double d = series(str_cstr(&after), name) -
			    series(str_cstr(&before), name);
			if (d != (reached ? 1 : 0))
				printf("# %g: bucket %s grew by %g\n",
				    cases[i].seconds, les[b], d);
			CHECK(d == (reached ? 1 : 0));
		}
		str_free(&before);
		str_free(&after);
	}
	struct str out;
	str_init(&out, STR_NO_MAX);
	metrics_render(&out);
	CHECK(series(str_cstr(&out), "postern_delivery_delay_seconds_count"
	    "{transport=\"local\"}") == 6);
	CHECK(series(str_cstr(&out), "postern_delivery_delay_seconds_bucket"
	    "{transport=\"local\",le=\"+Inf\"}") == 6);
	double sum = series(str_cstr(&out),
	    "postern_delivery_delay_seconds_sum{transport=\"local\"}");
	/* Microseconds: 0.1000001 counts as 0.1. */
	CHECK(sum > 518404.19 && sum < 518404.21);
	/* Other transports are untouched. */
	CHECK(series(str_cstr(&out), "postern_delivery_delay_seconds_count"
	    "{transport=\"smtp\"}") == 0);
	str_free(&out);
}

static void collect(void *arg, long long when, const char *text)
{
	struct str *s = arg;
	str_appendf(s, "%s\n", text);
}

static void test_events(void)
{
	struct metrics_qmgr_segment *m = metrics_qmgr();
	char text[400];

	if (m == NULL)
		return;
	for (int i = 0; i < 40; i++) {
		snprintf(text, sizeof(text), "event %d", i);
		metrics_event(&m->event_next, m->events, text);
	}
	struct str got;
	str_init(&got, STR_NO_MAX);
	metrics_recent(collect, &got);
	/* The last METRICS_EVENTS, oldest first. */
	const char *s = str_cstr(&got);
	CHECK(strncmp(s, "event 8\n", 8) == 0);
	CHECK(strstr(s, "event 7\n") == NULL);
	size_t len = strlen(s);
	CHECK(len >= 9 && strcmp(s + len - 9, "event 39\n") == 0);
	/* A long text is cut, never overflows its slot. */
	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	metrics_event(&m->event_next, m->events, text);
	str_clear(&got);
	metrics_recent(collect, &got);
	s = str_cstr(&got);
	const char *cut = strstr(s, "event 39\n");
	CHECK(cut != NULL && strlen(cut + 9) == METRICS_EVENT_TEXT - 1 + 1);
	str_free(&got);
}

int main(void)
{
	RUN(test_segments);
	RUN(test_histogram);
	RUN(test_events);
	return unit_done();
}
