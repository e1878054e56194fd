/*
 * mbox.h - the pieces of a Unix mailbox delivery that can be tested
 * alone: the "From " separator line, the body with "From " quoting, the
 * dotlock and the checked open of a mailbox file (local/ delivers with
 * them; tests/unit/test_mbox.c checks them).
 *
 * The format is the traditional one that mail(1) (bsd-mailx) and mutt
 * read: each message begins with "From SENDER DATE" and ends with an
 * empty line; a body line that begins with "From " is written ">From "
 * (mboxo, as Postfix's local(8) writes it), lines end in LF.
 *
 * Locking follows Debian policy 22.6: a dotlock "NAME.lock" in the spool
 * directory (created with O_EXCL; a lock older than MBOX_DOTLOCK_STALE
 * seconds is removed as stale, as liblockfile does), plus an fcntl(2)
 * write lock on the mailbox itself.
 */
#ifndef POSTERN_MBOX_H
#define POSTERN_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "str.h"

#define MBOX_DOTLOCK_STALE 300	/* seconds, liblockfile's value */

/* "From SENDER Sun Dec  6 16:18:25 2026\n"; "MAILER-DAEMON" for <>. */
void mbox_from_line(struct str *out, const char *sender, time_t when);

/* The message text (CRLF or LF lines) turned into an mbox body, fed in
 * pieces of any size. */
struct mbox_body {
	bool pending_cr;	/* a CR ended the last piece */
	size_t head_len;	/* bytes of a line start held back ... */
	char head[5];		/* ... to see whether it is "From " */
	bool in_line;		/* past the start of the current line */
	bool plain;		/* for a Maildir file: LF line ends only,
				 * no quoting, no separator line */
};

void mbox_body_init(struct mbox_body *b);
void mbox_body_feed(struct mbox_body *b, const char *in, size_t len,
    struct str *out);
/* The end: a last line without a line end gets one; then the empty line
 * that separates messages. */
void mbox_body_finish(struct mbox_body *b, struct str *out);

/* Take the dotlock NAME.lock in dirfd, trying for up to timeout_ms.
 * false with a reason in err (busy, or a system error). */
bool mbox_dotlock(int dirfd, const char *name, int timeout_ms, char *err,
    size_t errsize);
void mbox_dotunlock(int dirfd, const char *name);

enum mbox_open_result {
	MBOX_OPEN_OK,
	MBOX_OPEN_UNSAFE,	/* a symlink, hard links, another owner... */
	MBOX_OPEN_ERROR,	/* a system error */
};

/*
 * Open mailbox NAME in dirfd for appending, never through a symbolic
 * link (O_NOFOLLOW), creating it (mode 0600, owner uid, group gid) when
 * missing. Refused: anything but a regular file, more than one link, an
 * owner other than uid. *fd is the open mailbox on MBOX_OPEN_OK.
 */
enum mbox_open_result mbox_open(int dirfd, const char *name, uid_t uid,
    gid_t gid, int *fd, char *err, size_t errsize);

/* fcntl(2) write lock on the whole file, trying for up to timeout_ms. */
bool mbox_fcntl_lock(int fd, int timeout_ms, char *err, size_t errsize);

#endif
