/*
 * qlist.h - one queued message as a type=entry ipc message, the unit of
 * a queue listing (mailq, "postern queue list").
 *
 * qmgr builds these for users who cannot read the queue (the type=list
 * reply, doc/architecture.md); postern queue builds the same message from the
 * files it reads itself, and prints both the same way, so the listing
 * does not depend on who asks. Trust: the envelope was parsed by the
 * strict queue reader; values are passed on unmasked (ipc escapes them)
 * and the printer masks control characters.
 */
#ifndef POSTERN_QLIST_H
#define POSTERN_QLIST_H

#include "ipc.h"
#include "queue.h"

/* Listing messages per loop turn of qmgr for one client. */
#define QLIST_CHUNK 200

/*
 * Fill m (initialised here) with type=entry for env found in queue
 * subdirectory subdir (QUEUE_ACTIVE, QUEUE_DEFERRED, ...):
 *   id= queue= size= arrival=<sec> sender= (empty for <>), then in
 *   display order: reason= (the last delay reason of the recipients that
 *   follow, given once for a run) and rcpt= (each pending recipient; an
 *   expanded one is shown through its children).
 */
void qlist_entry(const struct queue_envelope *env, const char *subdir,
    struct ipc_msg *m);

#endif
