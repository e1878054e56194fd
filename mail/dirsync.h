/*
 * dirsync.h - group commit of directory fsyncs across processes.
 *
 * Several processes that rename files into one directory each need an
 * fsync of that directory that starts after their rename. One such fsync
 * serves them all: a process whose rename completed before another
 * process's fsync of the same directory began may wait for that fsync
 * instead of issuing its own. The processes meet in a small table in a
 * shared file mapping (dirsync.c says how and why it is safe).
 *
 * lmtpd uses it for Maildir new/ (run_directory/lmtpd-dirsync), smtpd's
 * doors for incoming/ and hold/ (run_directory/smtpd-dirsync, through
 * queue_file_publish()): hence mail/, not lmtpd/.
 */
#ifndef POSTERN_DIRSYNC_H
#define POSTERN_DIRSYNC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* The tables, in run_directory: lmtpd's of Maildir new/, and smtpd's
 * doors' of incoming/ and hold/. master removes both at start. */
#define DIRSYNC_TABLE_LMTPD "lmtpd-dirsync"
#define DIRSYNC_TABLE_SMTPD_DOOR "smtpd-dirsync"

/*
 * Map the table file at path, creating it (mode 0600) when missing. Call
 * while the process can still open it (before dropping root): the file
 * lives where only root writes (run_directory). false, with a warning
 * logged, when it cannot be used; a commit then fsyncs alone.
 */
bool dirsync_attach(const char *path);
/*
 * In a child forked after dirsync_attach() (smtpd's doors, forked by
 * the door zygote): the table marks leaders and key changers by pid, so
 * the child takes its own before its first commit.
 */
void dirsync_forked(void);

/*
 * Make durable every entry this process has renamed into the directory
 * it holds open as dirfd: returns once an fsync of it that started
 * after this call began has completed, its own or another process's. 0
 * or an errno value (the fsync's failure, also when another process's
 * fsync that covered this call failed). Without a table it is
 * fsync(dirfd) and nothing else.
 */
int dirsync_commit_fd(int dirfd);

/*
 * The same where the caller knows dirfd's device and inode (st, from
 * an fstat of dirfd when it opened it: they cannot change while it is
 * open), so there is no fstat per call either: lmtpd's new/ kept open.
 */
int dirsync_commit_fd_known(int dirfd, const struct stat *st);

/* What the table's users did, summed over every process (for tests and
 * benchmarks). */
struct dirsync_counts {
	uint64_t commits;	/* dirsync_commit_fd*() calls */
	uint64_t fsyncs;	/* directory fsyncs issued by them */
	uint64_t covered;	/* commits another process's fsync served */
	uint64_t alone;		/* commits that fsynced without the table's
				 * help: slot taken by another directory,
				 * a wait past its bound, no table */
};

/* false when no table is attached. */
bool dirsync_counts(struct dirsync_counts *out);

#endif
