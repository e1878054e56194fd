/*
 * daemon_scoreboard.h - the busy/idle scoreboard of an accept service:
 * one shared page per service and generation, made by master
 * (master/master_scoreboard.c) before the service's first process, in
 * which each worker keeps its own slot (its pid and whether it is
 * serving a connection). Master reads it whenever it wakes for any
 * reason and on its one-second timer; a worker writes to the status
 * pipe (daemon.h) only when master must act at once (doc/architecture.md,
 * "Busy and idle without a wake-up per connection"):
 *   - it goes busy and leaves fewer than max(process_min_idle, 1) idle
 *     or starting processes: master must start more, or mark the service
 *     full (master_busy.c);
 *   - it goes idle while master marked the service full (want_idle):
 *     master stops answering 421 and ends the stress episode;
 *   - it has no slot (no scoreboard passed, all slots taken): every
 *     change, as before the scoreboard.
 *
 * The page is a sealed memfd (it can be neither shrunk nor grown, so a
 * reader never faults past its end); master passes it as the descriptor
 * named by POSTERN_SCOREBOARD_FD, and a zygote's workers inherit it.
 *
 * Trust: every worker of the service can write the whole page. Nobody
 * indexes with a value read from it: the number of slots is the size of
 * the memfd, master looks a child's slot up by the pid it knows and
 * counts each of its own children once, so a worker writing garbage can
 * at worst make its own service's counts wrong within [0, processes]
 * and cost master wake-ups; the header's fields are hints to workers.
 * The fields are C11 atomics: no system call, nothing the seccomp filter
 * needs to allow.
 */
#ifndef POSTERN_DAEMON_SCOREBOARD_H
#define POSTERN_DAEMON_SCOREBOARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCOREBOARD_ENV "POSTERN_SCOREBOARD_FD"
#define SCOREBOARD_MAGIC 0x50534231u	/* "PSB1" */
/* Bound on the slots whatever the size says (smtpd_processes and its
 * siblings are far below). */
#define SCOREBOARD_MAX_SLOTS 65536

enum scoreboard_state {
	SCOREBOARD_FREE = 0,	/* no worker (master clears it at reaping) */
	SCOREBOARD_IDLE,
	SCOREBOARD_BUSY,
};

struct scoreboard_slot {
	_Atomic int32_t pid;		/* the worker's, 0: free */
	_Atomic int32_t state;		/* enum scoreboard_state */
};

/* Written by master (hints for the workers), before the slots. */
struct scoreboard_head {
	uint32_t magic;
	uint32_t reserved;
	_Atomic int32_t min_idle;	/* the service's process_min_idle */
	_Atomic int32_t starting;	/* started, not yet in a slot */
	_Atomic int32_t want_idle;	/* full: report going idle */
	int32_t pad;
};

struct scoreboard_page {
	struct scoreboard_head head;
	struct scoreboard_slot slot[];
};

/* Bytes of a page with nslots slots. */
static inline size_t daemon_scoreboard_size(size_t nslots)
{
	return sizeof(struct scoreboard_head) +
	    nslots * sizeof(struct scoreboard_slot);
}

/*
 * Worker side (daemon_scoreboard.c), run by the accept loop.
 * attach: map the page passed by master and take a free slot as pid,
 * idle; false when there is none (the status pipe carries every change).
 * busy/idle: mark the slot; true when master must be told on the pipe.
 */
bool daemon_scoreboard_attach(int32_t pid);
bool daemon_scoreboard_busy(void);
bool daemon_scoreboard_idle(void);

#endif
