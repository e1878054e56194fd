/*
 * local.h - the local delivery agent: delivers qmgr's jobs for transport
 * "local" into the mailboxes of system users (doc/architecture.md,
 * "Local delivery to system users"). local.c reads jobs and answers;
 * local_deliver.c delivers one recipient, in a child process that runs
 * as that user.
 */
#ifndef POSTERN_LOCAL_H
#define POSTERN_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct local_rcpt {
	long number;		/* the recipient's number in the queue file */
	char *address;
	char status;		/* 'S', 'D', 'B'; 0 while undecided */
	char dsn[16];
	char *text;		/* the diagnostic for qmgr, the DSN and the log */
};

struct local_job {
	char *queue_id;
	char *queue_file;	/* relative to queue_directory */
	char *sender;		/* "" for <> */
	off_t content_offset;
	off_t content_length;
	double arrival, job_time, t_received;
	struct local_rcpt *rcpts;
	size_t nrcpts;
	int content_fd;		/* the queue file, read only */
	char **delivered_to;	/* the message's Delivered-To: values */
	size_t ndelivered_to;
};

void local_rcpt_decide(struct local_rcpt *r, char status, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* local_deliver.c */
void local_deliver_init(const char *service);
/* Read the Delivered-To: fields of the message's header (loop check). */
void local_deliver_scan_header(struct local_job *job);
/* Deliver one recipient and decide its outcome. */
void local_deliver_rcpt(struct local_job *job, struct local_rcpt *r);

#endif
