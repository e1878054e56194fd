/*
 * priv_confine.h - confining a process that has dropped root: Landlock
 * rules for the file hierarchies it may touch, and a seccomp filter that
 * kills it on a system call no daemon makes. Raw system calls, no
 * library. What each program may do is decided by its caller
 * (mail/daemon_confine.c); this module only builds and installs.
 */
#ifndef POSTERN_PRIV_CONFINE_H
#define POSTERN_PRIV_CONFINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a rule grants beneath a path. */
#define PRIV_FS_READ	0x1u	/* read files, list directories */
#define PRIV_FS_WRITE	0x2u	/* create, write, rename, remove */
#define PRIV_FS_EXEC	0x4u	/* execute (deliver's mtasts-fetch, and the
				 * sanitizers' symbolizers) */

/* A sanitizer build (make check-sanitize), whose runtime execs a
 * symbolizer and stops the world with ptrace. */
#if defined(__SANITIZE_ADDRESS__)
#define PRIV_SANITIZED true
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PRIV_SANITIZED true
#endif
#endif
#ifndef PRIV_SANITIZED
#define PRIV_SANITIZED false
#endif

struct priv_landlock {
	int fd;			/* the ruleset; -1: Landlock unavailable */
	int abi;		/* the kernel's Landlock ABI, 0 if none */
	uint64_t handled_fs;	/* every file right this ABI knows */
};

/*
 * The kernel's Landlock ABI version, 0 if it has none (not built in,
 * disabled at boot, or a seccomp filter of a container refuses it).
 */
int priv_landlock_abi(void);

/*
 * Start a ruleset that handles every file access right the kernel knows,
 * and, when asked (ABI >= 4), TCP bind and connect, which then no rule
 * allows. Signals to, and abstract Unix sockets of, processes outside
 * the sandbox are refused where the kernel can (ABI >= 6). false (err
 * set, ll->fd -1) if Landlock is missing or too old: ABI 1 refuses every
 * rename across directories, which the queue lives on.
 */
bool priv_landlock_begin(struct priv_landlock *ll, bool deny_tcp_bind,
    bool deny_tcp_connect, char *err, size_t errsize);
/* Allow rights beneath path (or on it, for a file). false if path is
 * missing (errno ENOENT) or the rule was refused. */
bool priv_landlock_allow(struct priv_landlock *ll, const char *path,
    unsigned rights);
/* The same for the file or directory pfd is open on (O_PATH will do):
 * a rule for the very file a process opened before confinement. */
bool priv_landlock_allow_fd(struct priv_landlock *ll, int pfd,
    unsigned rights);
/*
 * This program's ELF interpreter (PT_INTERP, "/lib64/ld-linux-x86-64.so.2"),
 * NULL for a static one: a program exec'd under Landlock needs the right
 * to execute its interpreter too, which the kernel opens as it opens the
 * program. Our programs are built by one toolchain, so it is theirs too.
 */
const char *priv_interpreter(void);
/* Apply to this process (and its future children), for good. */
bool priv_landlock_enforce(struct priv_landlock *ll, char *err,
    size_t errsize);

/*
 * Install the seccomp filter: the process is killed (SIGSYS, which
 * master logs) on any system call of another architecture or ABI, and on
 * the calls no postern daemon makes after start-up: exec, ptrace, mount
 * and namespaces, module and kernel loading, keyrings, BPF, perf,
 * userfaultfd, io_uring, clock and host name changes... A sanitizer build
 * (sanitizer true) keeps exec, ptrace, personality and
 * process_vm_readv: LeakSanitizer stops the world with ptrace and the
 * reports run a symbolizer. exec_fd >= 0 lets one program through:
 * execveat(exec_fd, "", argv, envp, AT_EMPTY_PATH), with the descriptor
 * the caller opened on it before confinement (deliver's mtasts-fetch);
 * every other exec still kills. Needs PR_SET_NO_NEW_PRIVS (priv_drop
 * sets it).
 */
bool priv_seccomp_deny(bool sanitizer, int exec_fd, char *err,
    size_t errsize);

#endif
