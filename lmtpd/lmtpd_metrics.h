/*
 * lmtpd_metrics.h - what lmtpd counts for the metrics endpoint (one call
 * per event into lmtpd_metrics.c; mail/metrics.h says where it lives).
 */
#ifndef POSTERN_LMTPD_METRICS_H
#define POSTERN_LMTPD_METRICS_H

void lmtpd_metrics_connect(void);
/* One recipient's result as logged: "stored", "tempfail", "refused". */
void lmtpd_metrics_rcpt(const char *result);
/* A message's recipients are all answered; start: metrics_now() at the
 * end of its DATA. */
void lmtpd_metrics_message(double start);

#endif
