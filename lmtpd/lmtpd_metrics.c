/*
 * lmtpd_metrics.c - lmtpd's counters in its shared metrics segment
 * (mail/metrics.h): connections, messages, recipients by result, and the
 * time from the end of DATA to the last recipient's reply. A few atomic
 * adds each; nothing without a segment. Trusts its callers (results are
 * our own words).
 */
#include <string.h>

#include "lmtpd_metrics.h"
#include "metrics.h"

void lmtpd_metrics_connect(void)
{
	struct metrics_lmtpd_segment *m = metrics_lmtpd();
	if (m != NULL)
		metrics_add(&m->connections, 1);
}

void lmtpd_metrics_rcpt(const char *result)
{
	struct metrics_lmtpd_segment *m = metrics_lmtpd();
	if (m == NULL)
		return;
	metrics_add(&m->rcpts[strcmp(result, "stored") == 0 ?
	    METRICS_LMTPD_STORED : strcmp(result, "tempfail") == 0 ?
	    METRICS_LMTPD_TEMPFAIL : METRICS_LMTPD_REFUSED], 1);
}

void lmtpd_metrics_message(double start)
{
	struct metrics_lmtpd_segment *m = metrics_lmtpd();
	if (m == NULL)
		return;
	metrics_add(&m->messages, 1);
	metrics_observe(&m->store, METRICS_HIST_STORE, metrics_now() - start);
}
