/*
 * smtpd_metrics.h - what smtpd counts for the metrics endpoint (one call
 * per event, from smtpd's files into smtpd_metrics.c; mail/metrics.h
 * says where the counts live and who reads them).
 */
#ifndef POSTERN_SMTPD_METRICS_H
#define POSTERN_SMTPD_METRICS_H

#include <stdbool.h>

#include "metrics.h"
#include "smtpd.h"

/* A session starts (after the client limits let it in or not). */
void smtpd_metrics_connect(const struct smtpd_session *s);
/* A reject: log line (smtpd_log_reject): sorted into a reason. */
void smtpd_metrics_reject(const struct smtpd_session *s, const char *stage,
    int code, const char *enhanced, const char *text);
/* A TLS handshake ended; ok false when it failed. */
void smtpd_metrics_tls(const struct smtpd_session *s, bool ok);
void smtpd_metrics_auth(const struct smtpd_session *s,
    enum metrics_auth_result result);
/* The end of a message was read (the start of the acceptance time). */
double smtpd_metrics_message_end(void);
/* It was accepted: 250 at now, ended at end (smtpd_metrics_message_end). */
void smtpd_metrics_accepted(const struct smtpd_session *s, double end);

#endif
