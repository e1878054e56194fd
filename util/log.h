/*
 * log.h - the one logging interface.
 *
 * Lines go to syslog (facility mail) as "postern/PROGRAM[pid]: text", or to
 * stderr in that same shape when running in the foreground. Levels have
 * fixed meanings: info (normal events), warning (something is wrong but we
 * go on), error (a request failed), fatal (logs, then exit(1)), panic
 * (a broken invariant: logs, then abort()). Use "%m" for strerror(errno).
 *
 * Every message is escaped at the sink (log_escape_line()): control bytes
 * (C0 including TAB, DEL, C1) and invalid UTF-8 become \xNN (\r, \n, \t
 * as such); printable ASCII and valid UTF-8 stay as they are, so SMTPUTF8
 * addresses read as sent. Callers need not escape for safety; they use
 * log_escape() to cut untrusted text to a field's size, and its output
 * passes the sink unchanged (no double escaping).
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum log_dest {
	LOG_DEST_SYSLOG,
	LOG_DEST_STDERR,
};

/* program is the short name ("smtpd"); the tag becomes "postern/smtpd". */
void log_init(const char *program, enum log_dest dest);
void log_set_verbose(int level);
int log_verbose_level(void);
const char *log_program(void);
/*
 * While on, a process logging to syslog also writes its fatal and panic
 * lines to stderr, in the stderr shape: master's start-up, whose stderr
 * "postern start" reads to say why a start failed (master(8), -s).
 */
void log_set_fatal_to_stderr(bool on);
/*
 * This process's pid, cached: fetched once and again in the child of
 * every fork() (pthread_atfork), so a log line or a queue ID costs no
 * getpid() call. A child made by a raw clone() must call log_init().
 */
pid_t log_pid(void);

/*
 * An info line under another program's tag ("postern/pickup"): for a job
 * one program does that log readers know by another name (qmgr's pickup
 * of local submissions, which pflogsumm counts from "pickup" lines).
 */
void log_info_as(const char *program, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copy untrusted bytes into out for a log line or a diagnostic: printable
 * ASCII and valid UTF-8 are kept, a backslash is doubled, everything else
 * becomes \xNN (\r, \n, \t as such); truncated with "..." to fit. out
 * is always NUL-terminated. Returns out.
 */
char *log_escape(char *out, size_t outsize, const void *in, size_t inlen);
/*
 * What the sink does to every message: as log_escape(), but a backslash
 * stays single, so that text log_escape() made passes unchanged. Returns
 * the length written.
 */
size_t log_escape_line(char *out, size_t outsize, const char *text);

#endif
