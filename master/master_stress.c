/*
 * master_stress.c - tells the processes of an smtpd service that it is
 * full. At the moment a service reaches smtpd_processes with none idle
 * (the state in which master_busy.c answers newcomers with 421 4.3.2),
 * master sends SIGUSR1 to each of its busy processes, which then give
 * their clients smtpd_stress_timeout instead of smtpd_timeout for the
 * rest of the session (smtpd/smtpd_stress.c). Once per episode: the
 * episode ends when a process is idle again, and a new one begins the
 * next time the service is full.
 *
 * Why a signal and not a flag in shared memory: an smtpd process spends
 * the stress in poll(), waiting for a slow or silent client, and the
 * point is to cut that wait short; a signal wakes it there, a flag would
 * be read only after the wait. Only busy processes are signalled: an
 * idle one has nothing to shorten, and a starting one may not have its
 * handler yet (SIGUSR1 would end it).
 *
 * Trusts nothing from outside: the children list is master's own.
 */
#include <signal.h>

#include "cfg.h"
#include "log.h"
#include "master.h"

void master_stress_update(struct master_service *s, bool full)
{
	if (full == s->stressed)
		return;
	s->stressed = full;
	if (!full || cfg.smtpd_stress_timeout <= 0)
		return;
	int told = 0;
	for (struct master_child *c = master_children(); c; c = c->next) {
		if (c->svc == s && c->state == DAEMON_BUSY &&
		    kill(c->pid, SIGUSR1) == 0)
			told++;
	}
	log_warning("service %s: all %d processes are busy: stress: %d "
	    "sessions get %llds to answer (smtpd_stress_timeout)", s->name,
	    s->max_procs, told, cfg.smtpd_stress_timeout);
}
