/*
 * queue.h - queue IDs, queue directories and the queue file format.
 *
 * The code is in one file per job: queue_id.c (IDs, paths), queue_dirs.c
 * (the directories), queue_envelope.c (the envelope in memory and the
 * field rules), queue_write.c (new files and their durable commit),
 * queue_recycle.c (reusing finished files), queue_recycle_keep.c (what
 * master keeps of recycle/ at start), queue_read.c (the strict
 * reader), queue_update.c (in-place updates, trailer records, moves);
 * queue_format.h is what they share and nobody else needs.
 *
 * One file per message, named by its queue ID. The file is text records,
 * one per line, "<letter> <value>\n", then the content, then a trailer:
 *
 *   V 1                          format version (first record, always)
 *   I <queue id>
 *   T <seconds>.<microseconds>   arrival time
 *   F <sender>                   envelope sender, empty for <>
 *   B <7BIT|8BITMIME|BINARYMIME> body type
 *   U                            SMTPUTF8 was requested
 *   E <envid>                    DSN ENVID, xtext-decoded (optional)
 *   N <FULL|HDRS>                DSN RET (optional)
 *   K <kind>                     MAIL (default), BOUNCE, DELAY, SUCCESS,
 *                                DOUBLE (bounce about a bounce): DSN-ness
 *   A <name>=<value>             attributes: client_name, client_addr,
 *                                helo, protocol, sasl_user, origin...
 *   W <0|1>                      delay warning sent (updated in place)
 *   R <st> <notify> <orcpt> <address>
 *                                one per recipient, in RCPT order; st is
 *                                one status byte updated in place; notify
 *                                is "-" or letters S F D N; orcpt is "-"
 *                                or "type;address" xtext-decoded
 *   D <20-digit content length>  patched in place at commit; until
 *                                then 20 '-' (an unfinished file)
 *   <content: the message as received, CRLF line ends, not dot-stuffed>
 *   trailer, each record "<letter> <value>\n":
 *   C <content length>           written by queue_writer_commit() right
 *                                after the content (first trailer record;
 *                                files without it are still read)
 *   records appended later by qmgr:
 *   X <parent> <st> <notify> <orcpt> <address>
 *                                a recipient produced by expanding
 *                                recipient number <parent> (alias); it
 *                                has its own in-place status byte. A
 *                                recipient with children is expanded
 *                                whatever its own status byte says.
 *   Z <rcpt> <dsn status> <text> last temporary failure of recipient
 *                                number <rcpt> (the last one wins)
 *
 * Recipient numbers count R records in order, then X records in order.
 *
 * Durability: a file is written under a temporary name ".<ID>" in its
 * directory (readers skip names that start with "."), completely, with
 * its D length and C record; then renamed to <ID>; then the file is
 * fsync'd and then its directory: only then is the message acknowledged.
 * Renaming before the fsyncs lets one journal commit carry the data and
 * the name (ext4), so the directory's fsync is nearly free: one disk
 * flush per message, not two. Acknowledged mail is exactly as durable as
 * with fsync before rename. A power cut before the fsyncs may leave an
 * unacknowledged, unfinished file under its final name: a prefix of its
 * bytes or a zero-filled tail. queue_read() reports every such file as
 * CORRUPT (the D length is not digits until commit and must fit in the
 * file; records may hold no NUL; a tail of zeros cannot end in a valid
 * record), except a cut that keeps the whole content and loses only the
 * C record, which is a complete message. qmgr moves corrupt files to
 * corrupt/ (never deletes them). A hole inside the content under a valid
 * D and C would not be seen; journaling file systems in their default
 * modes (ext4 data=ordered, XFS, btrfs) never expose one.
 *
 * Recycling: qmgr does not unlink a finished file of up to
 * QUEUE_RECYCLE_MAX_SIZE bytes; it renames it to recycle/<slot>, one of
 * QUEUE_RECYCLE_SLOTS names used in turn (a slot still holding a file is
 * passed over for the next; a rename onto the second taken slot in a row
 * frees the older file, so recycle/ never holds more). A writer into
 * incoming/ claims such a file by renaming it to its ".<ID>" and
 * overwriting it (cut to its new length at commit), instead of creating a
 * new inode. Creating and freeing an inode per message is what a busy
 * queue directory spends most of its file system time on (ext4's
 * allocator scans past recently freed inodes under the directory's lock);
 * two renames and an overwrite are cheaper on every file system. recycle/
 * is mode 0700 like the rest of the queue; its files are finished
 * messages' bytes until reused, never read. A writer takes only a regular
 * file of its own with mode 0600 and one link. recycle/ outlives a
 * restart: at start master keeps each file no queue file shares an inode
 * with, and moves or removes the other names (queue_recycle_keep()), so
 * that a fresh instance does not create its first few hundred files
 * anew. A power cut before the commit's fsyncs
 * may leave old bytes under the new name, as a new file may hold garbage:
 * their I record names another ID, which qmgr reads as corrupt.
 *
 * Stale temporaries: a writer killed before its commit (an smtpd or a
 * sendmail under kill -9) leaves its ".<ID>" file behind. Every writer
 * holds an flock on its temporary file until it closes it, so a ".<ID>"
 * file that can be locked has no writer; qmgr removes such files from
 * incoming/ and maildrop/ (queue_clean_stale(), at start and every few
 * minutes), never one whose writer still holds it. The lock is one
 * flock(2) per message on the file already open: no I/O, no fsync.
 */
#ifndef POSTERN_QUEUE_H
#define POSTERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define QUEUE_FORMAT_VERSION 1
#define QUEUE_ID_LEN 14
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1)

/* Queue subdirectories (doc/architecture.md, "Queue directories"). */
#define QUEUE_MAILDROP "maildrop"
#define QUEUE_INCOMING "incoming"
#define QUEUE_ACTIVE "active"
#define QUEUE_DEFERRED "deferred"
#define QUEUE_HOLD "hold"
#define QUEUE_CORRUPT "corrupt"
#define QUEUE_RECYCLE "recycle"
/* deliver's MTA-STS cache and TLS-RPT store (mail/tlsrpt.h), not mail */
#define QUEUE_TLS "tls"
/* deferred/ is hashed into this many one-hex-digit subdirectories */
#define QUEUE_DEFERRED_HASH 16

/* Recipient status bytes. */
#define QUEUE_RCPT_PENDING 'P'	/* still to be delivered */
#define QUEUE_RCPT_SENT 'S'	/* delivered (and success DSN, if any, made) */
#define QUEUE_RCPT_FAILED 'F'	/* failed for good; bounce already queued */
#define QUEUE_RCPT_EXPANDED 'A'	/* replaced by its X children */

/* DSN NOTIFY bits (RFC 3461 4.1); 0 means "not given" (= FAILURE,DELAY). */
#define QUEUE_NOTIFY_NEVER 0x01
#define QUEUE_NOTIFY_SUCCESS 0x02
#define QUEUE_NOTIFY_FAILURE 0x04
#define QUEUE_NOTIFY_DELAY 0x08

enum queue_ret {
	QUEUE_RET_DEFAULT = 0,
	QUEUE_RET_FULL,
	QUEUE_RET_HDRS,
};

enum queue_body {
	QUEUE_BODY_7BIT = 0,
	QUEUE_BODY_8BITMIME,
	QUEUE_BODY_BINARYMIME,
};

enum queue_kind {
	QUEUE_KIND_MAIL = 0,
	QUEUE_KIND_BOUNCE,	/* failure DSN */
	QUEUE_KIND_DELAY,	/* delay DSN */
	QUEUE_KIND_SUCCESS,	/* success DSN */
	QUEUE_KIND_DOUBLE,	/* an undeliverable DSN sent to postmaster */
};

struct queue_rcpt {
	char *address;		/* "user@domain" or "postmaster"; no brackets */
	char *orcpt;		/* "rfc822;user@domain" or NULL */
	unsigned notify;	/* QUEUE_NOTIFY_* bits */
	char status;		/* QUEUE_RCPT_* */
	int parent;		/* -1, or the recipient this was expanded from */
	off_t status_offset;	/* file offset of the status byte (reader) */
	char *last_dsn;		/* from the last Z record, or NULL */
	char *last_reason;
};

struct queue_attr {
	char *name;
	char *value;
};

struct queue_envelope {
	char id[QUEUE_ID_SIZE];
	long long arrival_sec;
	long arrival_usec;
	char *sender;		/* "" for the null sender */
	enum queue_body body;
	bool smtputf8;
	bool requiretls;	/* MAIL FROM ... REQUIRETLS (RFC 8689) */
	char *envid;		/* NULL if none */
	enum queue_ret ret;
	enum queue_kind kind;
	bool delay_warned;
	off_t delay_warned_offset;	/* of the W digit (reader) */
	struct queue_attr *attrs;
	size_t nattrs;
	struct queue_rcpt *rcpts;
	size_t nrcpts;
	off_t content_offset;	/* reader: where the content starts */
	off_t content_length;
	off_t trailer_offset;	/* reader: content_offset + content_length */
};

/* ---- IDs and paths ---- */

/*
 * A new queue ID: 14 characters from [0-9A-Za-z], sortable by arrival
 * time, unique on this host (time to the microsecond plus process ID,
 * never repeated within a process).
 */
void queue_id_new(char id[QUEUE_ID_SIZE]);
bool queue_id_valid(const char *id);

/*
 * The path of a queue file: "<queue_directory>/<subdir>/<id>", with the
 * hash subdirectory for deferred/ ("deferred/7/<id>").
 */
void queue_path(char *out, size_t outsize, const char *queue_directory,
    const char *subdir, const char *id);

/*
 * Create any missing queue subdirectories with owner uid/gid (or leave
 * owners alone when not root) and mode 0700 (maildrop/: 0730 group gid_drop,
 * so setgid sendmail can write). false with a message in err on failure.
 */
bool queue_dirs_create(const char *queue_directory, uid_t uid, gid_t gid,
    gid_t gid_drop, char *err, size_t errsize);
/* Report (in err) the first missing directory or wrong owner/mode. */
bool queue_dirs_check(const char *queue_directory, uid_t uid, char *err,
    size_t errsize);
/*
 * Call visit(path, arg) for each directory queue_dirs_create() makes (the
 * deferred/ hash subdirectories too) but the one named skip (NULL: none);
 * false as soon as visit returns false, or when a path would not fit.
 */
bool queue_dirs_each(const char *queue_directory, const char *skip,
    bool (*visit)(const char *path, void *arg), void *arg);
struct str;
/*
 * For postern check, before or after the first start: what
 * queue_dirs_create() would do, one line each appended to note (missing
 * directories it creates, owners and modes it corrects), and false with
 * err for what it cannot fix (a file where a directory belongs, a
 * missing parent of queue_directory, a directory of another user when
 * not root).
 */
bool queue_dirs_plan(const char *queue_directory, uid_t uid, struct str *note,
    char *err, size_t errsize);

/* ---- envelope in memory ---- */

void queue_envelope_init(struct queue_envelope *env);
void queue_envelope_free(struct queue_envelope *env);
/* Copies the strings. orcpt may be NULL. Returns the recipient's number. */
size_t queue_envelope_add_rcpt(struct queue_envelope *env, const char *address,
    unsigned notify, const char *orcpt);
void queue_envelope_set_attr(struct queue_envelope *env, const char *name,
    const char *value);
/* NULL if absent. */
const char *queue_envelope_attr(const struct queue_envelope *env,
    const char *name);

/* ---- writing a new queue file ---- */

#define QUEUE_RECYCLE_SLOTS 256
#define QUEUE_RECYCLE_MAX_SIZE (64 * 1024)

struct queue_writer;

/*
 * Start a new file in <queue_directory>/<subdir>/ (incoming or maildrop):
 * picks a new queue ID into env->id, creates ".<ID>" with O_EXCL and mode
 * 0600 (in incoming/, claims a recycled file when there is one), writes
 * the envelope records. NULL with err on failure.
 */
struct queue_writer *queue_writer_open(const char *queue_directory,
    const char *subdir, struct queue_envelope *env, char *err, size_t errsize);
/* Append content bytes (buffered). false on write error (disk full). */
bool queue_writer_write(struct queue_writer *w, const void *p, size_t len);
off_t queue_writer_content_length(const struct queue_writer *w);
/*
 * Write the C record, patch the content length, rename the file into
 * place, fsync it, fsync the directory. Only after true may the message
 * be acknowledged. Frees w either way; on false the file is gone (unless
 * qmgr took it between the rename and a failed fsync: then a duplicate).
 */
bool queue_writer_commit(struct queue_writer *w, char *err, size_t errsize);
/* Throw the message away: close and unlink the temporary file. Frees w. */
void queue_writer_abort(struct queue_writer *w);
/*
 * Remove the temporary files in <queue_directory>/<subdir> that no
 * writer holds and that are at least min_age seconds old (see "Stale
 * temporaries" above); logs each. Returns how many were removed.
 */
size_t queue_clean_stale(const char *queue_directory, const char *subdir,
    time_t min_age);

/*
 * queue_writer_open under an ID the caller chose (qmgr's pickup keeps the
 * ID sendmail printed and logged): fails (EEXIST) when ".<id>" exists,
 * and its commit fails rather than replace a file named id.
 */
struct queue_writer *queue_writer_open_as(const char *queue_directory,
    const char *subdir, const char *id, struct queue_envelope *env,
    char *err, size_t errsize);

/*
 * The same file made by one process and written by another (smtpd's
 * door and worker, smtpd/smtpd_door.c). The maker creates the file with
 * queue_file_create() and publishes it with queue_file_publish(); the
 * writer, which has no right on the queue directory, gets the descriptor
 * and writes through queue_writer_attach() and queue_writer_finish().
 *
 * queue_file_create: a new queue ID into id and "<dirfd>/.<ID>" open for
 * writing only (O_WRONLY: a recycled file still holds a finished message
 * until it is overwritten), claimed from recycle/ when recycle is true,
 * else created with O_EXCL and mode 0600. -1 with err and errno. *size
 * gets the file's length (a recycled file's old one, else 0).
 */
int queue_file_create(const char *queue_directory, int dirfd, bool recycle,
    char id[QUEUE_ID_SIZE], off_t *size, char *err, size_t errsize);
/*
 * Rename "<dirfd>/.<ID>" to ID, fsync fd (the file), then the directory
 * (syncfs when dir_readable is false), as queue_writer_commit() does. The
 * directory's fsync is dirsync_commit_fd()'s: one that began after the
 * rename, shared with other processes when this one attached a table
 * (smtpd's doors: mail/dirsync.h), else its own.
 * On false the file is gone under both names (unless qmgr took it
 * between the rename and a failed fsync: then a duplicate, never a loss).
 */
bool queue_file_publish(int dirfd, bool dir_readable, const char *id, int fd,
    char *err, size_t errsize);
/*
 * Write env's records into fd, a file another process made as ".<id>"
 * (takes fd; it may be open for writing only: the writer never reads).
 * The content follows with queue_writer_write(). NULL with err.
 */
struct queue_writer *queue_writer_attach(int fd, const char *id,
    struct queue_envelope *env, char *err, size_t errsize);
/* The same when the file's length is known (the maker's *size from
 * queue_file_create()): no fstat(); size < 0 is unknown. */
struct queue_writer *queue_writer_attach_sized(int fd, const char *id,
    off_t size, struct queue_envelope *env, char *err, size_t errsize);
/*
 * For an attached writer: the C record, the D length, the cut of a
 * recycled file; not fsync'd, not renamed (the maker publishes it).
 * Frees w either way. queue_writer_abort() of an attached writer only
 * closes it: the maker removes the file.
 */
bool queue_writer_finish(struct queue_writer *w, char *err, size_t errsize);

/* ---- reading and updating ---- */

enum queue_read_result {
	QUEUE_READ_OK = 0,
	QUEUE_READ_CORRUPT,	/* does not parse: move to corrupt/ */
	QUEUE_READ_ERROR,	/* I/O error, errno set */
};

/*
 * Parse envelope and trailer of an open queue file. On CORRUPT, err says
 * what is wrong. env must be initialised; it is filled in.
 */
enum queue_read_result queue_read(int fd, struct queue_envelope *env,
    char *err, size_t errsize);

/* Set recipient number i's status byte in place (no fsync). */
bool queue_set_rcpt_status(int fd, struct queue_envelope *env, size_t i,
    char status);
/* Set the delay-warning flag in place (no fsync). */
bool queue_set_delay_warned(int fd, struct queue_envelope *env);
/*
 * Append X records for recipients expanded from recipient parent; they are
 * added to env with their status offsets. No fsync.
 */
bool queue_append_expansion(int fd, struct queue_envelope *env, size_t parent,
    const char *const *addresses, size_t count);
/* Append a Z record (last temporary failure). No fsync. */
bool queue_append_reason(int fd, struct queue_envelope *env, size_t rcpt,
    const char *dsn_status, const char *text);

/*
 * Move a queue file between subdirectories by rename. With sync_dir, the
 * target directory is fsync'd too (admin's moves, corrupt/). qmgr's moves
 * between incoming/, active/ and deferred/ pass false: a rename that a
 * power cut undoes leaves the file, whole, in the directory it came
 * from, and qmgr's start-up scan takes it from there again (at worst a
 * second delivery, never a loss); qmgr_scan_feed() flushes active/ once
 * per batch for file systems without a journal. errno set and a message
 * in err on failure.
 */
bool queue_move(const char *queue_directory, const char *from_subdir,
    const char *to_subdir, const char *id, bool sync_dir, char *err,
    size_t errsize);

/*
 * Remove a finished queue file (path, anywhere in the queue): recycled
 * when it is small enough (see "Recycling" above), else unlinked. No
 * fsync: a removal lost in a power cut means a duplicate, never a loss.
 * fd: the file open at path, whose fstat spares a lookup of the path,
 * or -1. false with errno when the file could not be removed (ENOENT
 * when it is gone, also when it was unlinked behind fd).
 */
bool queue_remove(const char *queue_directory, const char *path, int fd);
/*
 * What master does with recycle/ at start, before any writer runs
 * (queue_recycle_keep.c): a file qmgr could have left there (a regular
 * file of owner's, mode 0600, one link, a slot's name, at most
 * QUEUE_RECYCLE_MAX_SIZE bytes) whose inode no other queue directory
 * names is kept for the writers. Any other name is unlinked when the
 * inode's link count covers every name the queue has for it, which frees
 * no inode a queue file names; else (a rename cut short by a power cut,
 * on a file system that fsck has not checked since) it is moved into
 * corrupt/ as "recycle.<inode>.<n>", logged. false with err when a queue
 * directory cannot be read; nothing is removed then.
 */
struct queue_recycle_kept {
	size_t kept;		/* files left for the writers */
	size_t removed;		/* names unlinked */
	size_t set_aside;	/* names moved into corrupt/ */
};
bool queue_recycle_keep(const char *queue_directory, uid_t owner,
    struct queue_recycle_kept *done, char *err, size_t errsize);

#endif
