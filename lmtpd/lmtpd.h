/*
 * lmtpd.h - internal interfaces of lmtpd, the LMTP server (RFC 2033) that
 * stores mail into Maildirs. Not a contract with other programs.
 *
 *   lmtpd.c          main, configuration, one connection at a time
 *   lmtpd_proto.c    the LMTP session: lmtpd's command table for the
 *                    server core (mail/smtp_server.c) and its commands
 *   lmtpd_deliver.c  after the message: one copy and one reply per
 *                    recipient (RFC 2033 4.2), trace fields, log lines
 *   lmtpd_spool.c    message data held once per transaction (memory, then
 *                    a temporary file), lines stored with LF ends
 *   lmtpd_rcpt.c     recipient address -> Maildir path (mailbox_maps)
 *   lmtpd_maildir.c  the Maildir store: tmp/, fsync, rename into new/, quota;
 *                    new/'s fsync is a group commit (mail/dirsync.c)
 */
#ifndef POSTERN_LMTPD_H
#define POSTERN_LMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <sys/types.h>

#include "daemon.h"
#include "esmtp.h"
#include "queue.h"
#include "smtp_server.h"
#include "str.h"

/* ---- lmtpd.c: settings derived from the configuration ---- */

struct lmtpd_settings {
	const char *hostname;		/* myhostname, for the greeting */
	long long size_limit;		/* message_size_limit, 0 = none */
	long long quota;		/* mailbox_quota in bytes, 0 = none */
	bool quota_tempfail;		/* over quota: 452 4.2.2, else 552 5.2.2 */
	long long max_delivered_to;	/* loop guard */
	long long recipient_limit;	/* recipients per transaction */
	int timeout_ms;			/* per network wait */
};
extern struct lmtpd_settings lmtpd_settings;

/* ---- lmtpd_spool.c: the message data of one transaction ---- */

/*
 * Holds the message exactly once, as it will be stored: LF line ends, not
 * dot-stuffed. Small messages stay in memory; past LMTPD_SPOOL_MEMORY
 * bytes everything moves to an unlinked temporary file.
 */
#define LMTPD_SPOOL_MEMORY (1024 * 1024)

struct lmtpd_spool {
	struct str mem;
	int fd;			/* temporary file, -1 while in memory */
	off_t size;		/* bytes held (after CRLF -> LF) */
	long long limit;	/* stop storing past this size; 0 = none */
	bool too_big;		/* limit passed: the rest was counted, dropped */
	bool write_failed;	/* temporary file could not be written */
	int write_errno;
	unsigned long long received_bytes;	/* as counted before storing */
};

void lmtpd_spool_init(struct lmtpd_spool *sp, long long limit);
void lmtpd_spool_free(struct lmtpd_spool *sp);
/* Restart for a new message (keeps the memory buffer allocated). */
void lmtpd_spool_reset(struct lmtpd_spool *sp);
/*
 * Append one line of text (its CRLF already removed, dot-stuffing already
 * undone) or a piece of one: complete=false when the line continues in
 * the next call. The sink of the core's DATA and BDAT readers.
 */
void lmtpd_spool_put_line(struct lmtpd_spool *sp, const char *p, size_t len,
    bool complete);
/* End of the message: write out what is still buffered. */
void lmtpd_spool_finish(struct lmtpd_spool *sp);
/*
 * Copy the held message to fd (from its start). false with errno set on a
 * read or write error.
 */
bool lmtpd_spool_copy_to(struct lmtpd_spool *sp, int fd);
/* The same after prefix (the delivery's own header fields): a message
 * held in memory goes with the prefix in one writev. */
bool lmtpd_spool_copy_after(struct lmtpd_spool *sp, int fd,
    const char *prefix, size_t prefix_len);

/* ---- lmtpd_proto.c: the session ---- */

struct lmtpd_rcpt {
	char *address;		/* as the client gave it, after parsing */
	char *maildir;		/* absolute path, ends in "/" */
};

/* One mail transaction: MAIL to the end of the message, or RSET. */
struct lmtpd_txn {
	char id[QUEUE_ID_SIZE];	/* queue_id_new(): unique on the host */
	char *sender;		/* "" for <> */
	struct esmtp_mail_params params;
	struct lmtpd_rcpt *rcpts;
	size_t nrcpts, cap;
	struct timeval start;
	struct smtp_message msg;	/* what the core's readers saw */
};

struct lmtpd_session {
	struct smtp_server srv;	/* the protocol core */
	struct daemon_conn *conn;
	struct bio bio;
	/*
	 * Who the client is, the one place the Received header and the log
	 * lines take it from: "unix" or "192.0.2.7" (the peer's uid goes
	 * here once daemon.h's connection carries it).
	 */
	char peer[80];
	char *lhlo;		/* the client's name, sanitised */
	bool in_txn;
	struct lmtpd_txn txn;
	struct lmtpd_spool spool;
	unsigned long messages;
};

/* Serve one LMTP connection to its end. */
void lmtpd_session_run(struct daemon_conn *conn);
/* The transaction's ID for log lines, "NOQUEUE" outside one. */
const char *lmtpd_txn_id(const struct lmtpd_session *s);
/* A recipient address fit for a reply: printable ASCII, else generic. */
const char *lmtpd_printable_address(const char *address);

/* ---- lmtpd_deliver.c ---- */

/* The message is complete: one copy and one reply per recipient, in
 * RCPT order (RFC 2033 4.2). */
void lmtpd_deliver_all(struct lmtpd_session *s);

/* ---- lmtpd_rcpt.c: which mailbox an address stands for ---- */

enum lmtpd_rcpt_result {
	LMTPD_RCPT_FOUND,
	LMTPD_RCPT_UNKNOWN,	/* 550 5.1.1 */
	LMTPD_RCPT_TEMPFAIL,	/* table unreadable: 451 4.3.0 */
	LMTPD_RCPT_BADMAP,	/* table gives an unusable path: 451 4.3.5 */
};

/* Open mailbox_maps; fatal on a bad specification. */
void lmtpd_rcpt_init(void);
/*
 * Find the Maildir of address ("user+detail@domain" finds user@domain's).
 * On FOUND *maildir is the absolute path, ending in "/" (caller frees).
 */
enum lmtpd_rcpt_result lmtpd_rcpt_lookup(const char *address, char **maildir);
/* ---- lmtpd_maildir.c: the store ---- */

enum lmtpd_store_result {
	LMTPD_STORE_OK,
	LMTPD_STORE_QUOTA,	/* would pass mailbox_quota */
	LMTPD_STORE_NOSPACE,	/* ENOSPC / EDQUOT from the file system */
	LMTPD_STORE_TEMPFAIL,	/* any other error: try again later */
};

/*
 * Join mailbox_base and a relative table value into an absolute Maildir
 * path ending in "/". NULL if the value is absolute, empty, or climbs out
 * with "..".
 */
char *lmtpd_maildir_path(const char *base, const char *value);
/* Create maildir/ and its tmp/ new/ cur/ when missing (mode 0700). */
bool lmtpd_maildir_create(const char *maildir, char *err, size_t errsize);
/*
 * Bytes in the mailbox: the sum of the ",S=<size>" of every file in new/
 * and cur/ (stat() for files whose name lacks it). -1 on error.
 */
long long lmtpd_maildir_usage(const char *maildir);
/*
 * A new unique file name: "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>",
 * host with '/' and ':' escaped as the Maildir convention says.
 */
void lmtpd_maildir_name(char *out, size_t outsize, long long size);
/*
 * Store one copy: header (our trace fields) then the spooled message, into
 * an unnamed file in maildir/tmp/ (or one by name where that cannot be),
 * fsync, link (or rename) into maildir/new/ (never replacing a name),
 * fsync new/ (or wait for another lmtpd's fsync of it that started
 * after the link: mail/dirsync.c). quota > 0
 * refuses a copy that would take the mailbox past it. On success name
 * (optional) gets the file name in new/.
 */
enum lmtpd_store_result lmtpd_maildir_store(const char *maildir,
    const char *header, size_t header_len, struct lmtpd_spool *sp,
    long long quota, char *name, size_t namesize, char *err, size_t errsize);

#endif
