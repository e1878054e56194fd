/*
 * anvil.h - the parts of the anvil service (anvil.c: the socket, the
 * per-client counters) that live in their own files.
 */
#ifndef POSTERN_ANVIL_H
#define POSTERN_ANVIL_H

#include <stdbool.h>
#include <time.h>

/* anvil_greylist.c: greylisting's triplets (smtpd_greylist) */
enum anvil_greylist {
	ANVIL_GREYLIST_OFF,		/* no database: every triplet passes */
	ANVIL_GREYLIST_DEFER,		/* seconds: how long still to wait */
	ANVIL_GREYLIST_FIRST_PASS,	/* seconds: how long it waited */
	ANVIL_GREYLIST_PASS,		/* passed before */
	ANVIL_GREYLIST_ALLOWED,		/* the network is auto-allowed */
};
/* Open smtpd_greylist_database (in init, before confinement). */
bool anvil_greylist_open(void);
enum anvil_greylist anvil_greylist_decide(const char *net,
    const char *sender, const char *rcpt, time_t now, long long *seconds);
/* Once a minute: sync the file; once an hour: drop expired records. */
void anvil_greylist_tick(time_t now);

#endif
