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
	char *orig_to;		/* the address an alias expanded, or NULL */
	bool noexpand;		/* no alias, no .forward: its own mailbox */
	char **forward;		/* addresses it forwards to (qmgr adds them) */
	size_t nforward;
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

/* Become uid and gid (all ids, one group); false with why. */
bool local_become_user(uid_t uid, gid_t gid, char *why, size_t whysize);
/* Append the message to the file path as uid/gid, with the mailbox's
 * format and locks: 'S', 'D' (why) or 'B' (refused: why). */
char local_deliver_file(const struct local_job *job,
    const struct local_rcpt *r, uid_t uid, gid_t gid, const char *path,
    char *why, size_t whysize);

/* Whose rights a command or file target runs with (never root's). */
struct local_privs {
	uid_t uid;
	gid_t gid;
	char user[64];
	char home[1024];
	char shell[256];
};

/* local_command.c: run a "|command" target as who; 'S', 'D' or 'B',
 * with the RFC 3463 status and the reason for the log and the DSN. */
char local_command_run(const struct local_job *job,
    const struct local_rcpt *r, const struct local_privs *who,
    const char *command, char *dsn, size_t dsnsize, char *text,
    size_t textsize);

/* local_forward.c: aliases with commands and files, ~/.forward */
void local_forward_init(void);
/* Is r an alias of alias_maps? Then it is expanded, its commands and
 * files delivered, its addresses put in r->forward, and r decided. */
bool local_forward_alias(struct local_job *job, struct local_rcpt *r);
/* Has the user pw a ~/.forward? Then the same, as that user. */
struct passwd;
bool local_forward_dotforward(struct local_job *job, struct local_rcpt *r,
    const struct passwd *pw);

#endif
