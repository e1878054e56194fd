/*
 * pickup.h - the pickup service's files: pickup.c (main, the loop that
 * watches maildrop/), pickup_file.c (one maildrop file: validated,
 * filtered, written into incoming/), pickup_milter.c (non_smtpd_milters
 * for one local message).
 */
#ifndef POSTERN_PICKUP_H
#define POSTERN_PICKUP_H

#include <stdbool.h>

#include "milter_client.h"
#include "queue.h"

/* What became of one maildrop file. */
enum pickup_result {
	PICKUP_DONE,		/* queued, bounced, discarded or set aside */
	PICKUP_LATER,		/* a filter said "try again later": left */
};

/* pickup_file.c: open the canonical maps (fatal when it cannot). */
void pickup_file_init(void);
/* Take maildrop/name (dirfd is maildrop/). */
enum pickup_result pickup_file(int dirfd, const char *name);

/*
 * pickup_milter.c: run the filters of non_smtpd_milters over one local
 * message (env: the fresh envelope, edited in place; id: the queue ID it
 * will have; msg: its content). The verdict as milter_client_eom's; on
 * true, *hold_reason says whether a filter quarantined it.
 */
bool pickup_milter_enabled(void);
void pickup_milter_init(void);
bool pickup_milter_run(struct queue_envelope *env, const char *id,
    const char *uid, struct milter_msg *msg, struct milter_verdict *v,
    const char **hold_reason, const char **stage);

#endif
