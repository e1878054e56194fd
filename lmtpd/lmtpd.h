/*
 * lmtpd.h - internal interfaces of lmtpd, the LMTP server (RFC 2033) that
 * stores mail into Maildirs. Not a contract with other programs.
 *
 *   lmtpd.c          main, configuration, one connection at a time
 *   lmtpd_proto.c    the LMTP session: command table and state machine
 *   lmtpd_spool.c    message data held once per transaction (memory, then
 *                    a temporary file), CRLF turned into LF, headers counted
 *   lmtpd_rcpt.c     recipient address -> Maildir path (mailbox_maps)
 *   lmtpd_maildir.c  the Maildir store: tmp/, fsync, link into new/, quota
 */
#ifndef POSTERN_LMTPD_H
#define POSTERN_LMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "daemon.h"
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

/* ---- lmtpd_proto.c ---- */

/* Serve one LMTP connection to its end. */
void lmtpd_session_run(struct daemon_conn *conn);

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
	bool pending_cr;	/* CRLF mode: a CR ended the last chunk */
	/* header scan: where we are in the header section */
	bool in_headers;
	bool line_start_seen;	/* the current line has begun */
	char line_head[16];	/* first bytes of the current line, lowercased */
	size_t line_head_len;
	unsigned delivered_to;	/* Delivered-To header fields seen */
	unsigned long long received_bytes;	/* as counted before storing */
};

void lmtpd_spool_init(struct lmtpd_spool *sp, long long limit);
void lmtpd_spool_free(struct lmtpd_spool *sp);
/* Restart for a new message (keeps the memory buffer allocated). */
void lmtpd_spool_reset(struct lmtpd_spool *sp);
/*
 * DATA: append one line of text (its CRLF already removed, dot-stuffing
 * already undone). complete=false when the line continues in the next call.
 */
void lmtpd_spool_put_line(struct lmtpd_spool *sp, const char *p, size_t len,
    bool complete);
/* BDAT: append raw bytes; CRLF pairs become LF, even across chunks. */
void lmtpd_spool_put_crlf(struct lmtpd_spool *sp, const char *p, size_t len);
/* End of the message: flush a CR held back by put_crlf. */
void lmtpd_spool_finish(struct lmtpd_spool *sp);
/*
 * Copy the held message to fd (from its start). false with errno set on a
 * read or write error.
 */
bool lmtpd_spool_copy_to(struct lmtpd_spool *sp, int fd);

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
 * maildir/tmp/, fsync, link into maildir/new/, fsync new/. quota > 0
 * refuses a copy that would take the mailbox past it. On success name
 * (optional) gets the file name in new/.
 */
enum lmtpd_store_result lmtpd_maildir_store(const char *maildir,
    const char *header, size_t header_len, struct lmtpd_spool *sp,
    long long quota, char *name, size_t namesize, char *err, size_t errsize);

#endif
