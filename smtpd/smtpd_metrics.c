/*
 * smtpd_metrics.c - smtpd's counters in its shared metrics segment
 * (mail/metrics.h): connections, accepted messages and their octets,
 * rejects by reason, TLS handshakes by version, AUTH results, and the
 * histogram of the time from the end of a message to its 250.
 *
 * Each call is a few atomic adds in memory, no system call, so the
 * per-message cost stays out of sight; without a segment (master did not
 * pass one) each call does nothing. Trusts the session it is given; the
 * reject texts are ours, with client text already escaped for the log
 * (smtpd_log_reject), and go to the recent events ring as they are.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

#include "smtpd_metrics.h"
#include "tls.h"

static struct metrics_smtpd_counters *counters(const struct smtpd_session *s)
{
	struct metrics_smtpd_segment *m = metrics_smtpd();
	if (m == NULL)
		return NULL;
	return &m->svc[s->implicit_tls ? METRICS_SVC_SMTPS : s->submission ?
	    METRICS_SVC_SUBMISSION : METRICS_SVC_SMTP];
}

void smtpd_metrics_connect(const struct smtpd_session *s)
{
	struct metrics_smtpd_counters *c = counters(s);
	if (c != NULL)
		metrics_add(&c->connections, 1);
}

/*
 * The reason of a refusal, from what the reply says: its enhanced code
 * (RFC 3463) first, the words of our own texts where a code is shared
 * (X.7.1 is relaying, a blocklist and a policy alike).
 */
static enum metrics_reject_reason reject_reason(int code,
    const char *enhanced, const char *text)
{
	const char *e = enhanced ? enhanced : "";
	const char *t = text ? text : "";

	if (strstr(t, "Relay access denied"))
		return METRICS_REJECT_RELAY;
	if (strstr(t, "blocked using"))
		return METRICS_REJECT_DNSBL;
	if (strstr(t, "too many connections from") ||
	    strstr(t, "Error: too many messages from") ||
	    strstr(t, "Error: too many recipients from"))
		return METRICS_REJECT_RATE_LIMIT;
	if (strstr(t, "Sender address rejected"))
		return METRICS_REJECT_SENDER;
	if (code == 530)
		return METRICS_REJECT_AUTH_REQUIRED;
	if (strcmp(e + 1, ".1.1") == 0)
		return METRICS_REJECT_UNKNOWN_RECIPIENT;
	if (strcmp(e + 1, ".3.4") == 0 || strcmp(e + 1, ".2.3") == 0)
		return METRICS_REJECT_SIZE;
	if (strcmp(e, "5.5.2") == 0 || strcmp(e, "5.4.6") == 0)
		return METRICS_REJECT_CONTENT;
	if (e[0] == '4' && strncmp(e + 1, ".3.", 3) == 0)
		return METRICS_REJECT_TEMPFAIL;
	if (strncmp(e + 1, ".7.", 3) == 0 || strcmp(e + 1, ".2.0") == 0)
		return METRICS_REJECT_POLICY;	/* greylisting, SPF, DMARC */
	return METRICS_REJECT_OTHER;
}

void smtpd_metrics_reject(const struct smtpd_session *s, const char *stage,
    int code, const char *enhanced, const char *text)
{
	struct metrics_smtpd_counters *c = counters(s);
	struct metrics_smtpd_segment *m = metrics_smtpd();
	char line[1200];	/* cut to METRICS_EVENT_TEXT by metrics_event */

	if (c == NULL)
		return;
	metrics_add(&c->rejects[reject_reason(code, enhanced, text)], 1);
	snprintf(line, sizeof(line), "reject %s from %s: %d %s %s", stage,
	    s->client_log, code, enhanced ? enhanced : "", text ? text : "");
	metrics_event(&m->event_next, m->events, line);
}

void smtpd_metrics_tls(const struct smtpd_session *s, bool ok)
{
	struct metrics_smtpd_counters *c = counters(s);
	enum metrics_tls_version v = METRICS_TLS_FAILED;

	if (c == NULL)
		return;
	if (ok) {
		switch (SSL_version(tls_ssl(&s->bio))) {
		case TLS1_VERSION:
			v = METRICS_TLS_1_0;
			break;
		case TLS1_1_VERSION:
			v = METRICS_TLS_1_1;
			break;
		case TLS1_2_VERSION:
			v = METRICS_TLS_1_2;
			break;
		case TLS1_3_VERSION:
			v = METRICS_TLS_1_3;
			break;
		default:
			v = METRICS_TLS_OTHER;
		}
	}
	metrics_add(&c->tls[v], 1);
}

void smtpd_metrics_auth(const struct smtpd_session *s,
    enum metrics_auth_result result)
{
	struct metrics_smtpd_counters *c = counters(s);
	if (c != NULL && result < METRICS_NAUTH)
		metrics_add(&c->auth[result], 1);
}

double smtpd_metrics_message_end(void)
{
	return metrics_now();
}

void smtpd_metrics_accepted(const struct smtpd_session *s, double end)
{
	struct metrics_smtpd_counters *c = counters(s);
	if (c == NULL)
		return;
	metrics_add(&c->messages, 1);
	if (s->txn != NULL)
		metrics_add(&c->bytes, s->txn->size);
	metrics_observe(&c->accept, METRICS_HIST_ACCEPT, metrics_now() - end);
}
