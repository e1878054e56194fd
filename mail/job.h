/*
 * job.h - the one codec of qmgr's delivery job (type=job in
 * doc/architecture.md, "IPC messages"): qmgr encodes it, deliver and the
 * local agent decode it, all through this one struct, so that the three
 * cannot drift apart.
 *
 * The decoder trusts the sender no more than a peer process: every
 * field is checked (a queue ID of letters and digits, a queue file under
 * queue_directory, addresses by addr.c's grammar, numbers in range), and
 * a job that fails a check is refused whole with a reason. The encoder
 * only borrows the strings of its struct.
 */
#ifndef POSTERN_JOB_H
#define POSTERN_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ipc.h"
#include "queue.h"

struct job_rcpt {
	long number;		/* the recipient's number in the queue file */
	char *address;		/* "user@domain" or "postmaster" */
	unsigned notify;	/* QUEUE_NOTIFY_* bits, 0 when not given */
	char *orcpt;		/* "type;address" or NULL */
	char *orig_to;		/* the address an alias expanded, or NULL */
	/* An alias or .forward named this address for itself: deliver it
	 * to its mailbox, expand it no further (local only). */
	bool noexpand;
};

struct job {
	char *transport;	/* "smtp", "smtps", "lmtp", "local" */
	char *nexthop;
	char *queue_id;
	char *queue_file;	/* relative to queue_directory */
	off_t content_offset;
	off_t content_length;
	char *sender;		/* "" for <> */
	enum queue_body body;
	bool smtputf8;
	bool requiretls;	/* MAIL FROM ... REQUIRETLS (RFC 8689) */
	char *envid;		/* NULL if none */
	char *auth;		/* AUTH= mailbox or "<>" (RFC 4954 5), or NULL */
	enum queue_ret ret;
	double arrival;		/* epoch seconds */
	double job_time;	/* when qmgr made the job */
	struct job_rcpt *rcpts;
	size_t nrcpts;
};

/* Append the type=job message for job to out. */
void job_encode(const struct job *job, struct str *out);
/*
 * Decode and check a type=job message into job (initialised here).
 * false with a reason in err; job then holds nothing to free but what
 * job_clear() frees. A missing arrival or job_time is now.
 */
bool job_decode(const struct ipc_msg *m, struct job *job, char *err,
    size_t errsize);
/* Free what job_decode() allocated (not for an encoder's borrowed
 * struct). */
void job_clear(struct job *job);
/*
 * A delivery agent: read qmgr's next message into m (the caller frees
 * it). false at the end of qmgr's stream, or after a failed read
 * (logged): the agent then ends the connection.
 */
bool job_recv(struct bio *b, struct ipc_msg *m);

#endif
