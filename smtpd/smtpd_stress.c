/*
 * smtpd_stress.c - stress-adaptive timeouts. When every process of an
 * smtpd service is busy, master (master/master_stress.c) sends SIGUSR1
 * to each of them; from then on, for the rest of its session, a process
 * waits for its client at most smtpd_stress_timeout instead of
 * smtpd_timeout, the wait in progress included (an idle client is cut
 * at once with 421 4.4.2, "timeout after VERB" in the log), so that
 * slow and idle clients give their processes back to the clients that
 * queue behind them. Postfix writes the same idea as
 * smtpd_timeout = ${stress?10}${stress:300}s; one key of its own is the
 * simpler form, since nothing else in postern has a stress value.
 *
 * The signal handler only sets a flag; the session's bio asks for it
 * before each wait and when a signal interrupts one (bio.check_timeout),
 * which is where the timeout is lowered. SA_RESTART: every other call
 * carries on as if nothing happened (poll() returns EINTR, and each of
 * smtpd's poll loops goes round again).
 *
 * Trusts: only master sends this signal (SIGUSR1 comes from the same
 * uid or root; another process of ours has no reason to). A stray one
 * costs one session its patience, nothing more.
 */
#include <signal.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "smtpd.h"

static volatile sig_atomic_t stress_signalled;
static bool session_stressed;
static const char *session_service;
static const char *session_client;

static void on_stress(int sig)
{
	stress_signalled = 1;
}

void smtpd_stress_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stress;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		log_fatal("sigaction: %m");
}

static void check_timeout(struct bio *b)
{
	if (!stress_signalled || session_stressed)
		return;
	session_stressed = true;
	long long ms = cfg.smtpd_stress_timeout * 1000;
	if (ms <= 0 || (b->timeout_ms >= 0 && ms >= b->timeout_ms))
		return;
	b->timeout_ms = (int)ms;
	log_info("stress: service %s is full: %s gets %llds to answer "
	    "(smtpd_stress_timeout)", session_service, session_client,
	    cfg.smtpd_stress_timeout);
}

void smtpd_stress_session_begin(struct smtpd_session *s)
{
	session_service = s->conn->service;
	session_client = s->client_log;
	s->bio.check_timeout = check_timeout;
}

/* Before the process reports itself idle: the next session starts
 * unstressed, unless master signals again. */
void smtpd_stress_session_end(void)
{
	stress_signalled = 0;
	session_stressed = false;
	session_service = session_client = NULL;
}
