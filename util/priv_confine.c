/*
 * priv_confine.c - Landlock rules and a seccomp filter, with raw system
 * calls (see priv_confine.h). Trusts its caller's paths and rights; the
 * kernel's answers decide what is used: a kernel without Landlock, or
 * with an older ABI, gets the rights it knows, or none and a message.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "priv_confine.h"

/* Rights and fields newer than the system's headers (kernel ABI 3-6). */
#define LL_FS_TRUNCATE		(1ULL << 14)	/* ABI 3 */
#define LL_FS_IOCTL_DEV		(1ULL << 15)	/* ABI 5 */
#define LL_NET_BIND_TCP		(1ULL << 0)	/* ABI 4 */
#define LL_NET_CONNECT_TCP	(1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX	(1ULL << 0)	/* ABI 6 */
#define LL_SCOPE_SIGNAL		(1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; older kernels take a prefix. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define LL_FS_ABI1 (LANDLOCK_ACCESS_FS_EXECUTE | \
	LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | \
	LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | \
	LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | \
	LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | \
	LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)
/* Rights that apply to a file itself (a rule on a non-directory). */
#define LL_FS_FILE (LANDLOCK_ACCESS_FS_EXECUTE | \
	LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

int priv_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : (int)abi;
}

bool priv_landlock_begin(struct priv_landlock *ll, bool deny_tcp_bind,
    bool deny_tcp_connect, char *err, size_t errsize)
{
	ll->fd = -1;
	ll->abi = priv_landlock_abi();
	if (ll->abi < 2) {
		snprintf(err, errsize, ll->abi == 0 ? "the kernel has no "
		    "Landlock (or it is disabled)" : "the kernel's Landlock "
		    "ABI 1 forbids renaming across directories");
		return false;
	}
	struct ll_ruleset_attr attr = { 0 };
	size_t size = sizeof(attr.handled_access_fs);
	attr.handled_access_fs = LL_FS_ABI1 | LANDLOCK_ACCESS_FS_REFER;
	if (ll->abi >= 3)
		attr.handled_access_fs |= LL_FS_TRUNCATE;
	if (ll->abi >= 5)
		attr.handled_access_fs |= LL_FS_IOCTL_DEV;
	if (ll->abi >= 4) {
		size = offsetof(struct ll_ruleset_attr, scoped);
		if (deny_tcp_bind)
			attr.handled_access_net |= LL_NET_BIND_TCP;
		if (deny_tcp_connect)
			attr.handled_access_net |= LL_NET_CONNECT_TCP;
	}
	if (ll->abi >= 6) {
		size = sizeof(attr);
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
	}
	long fd = syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (fd < 0) {
		snprintf(err, errsize, "landlock_create_ruleset: %s",
		    strerror(errno));
		return false;
	}
	ll->fd = (int)fd;
	ll->handled_fs = attr.handled_access_fs;
	return true;
}

bool priv_landlock_allow(struct priv_landlock *ll, const char *path,
    unsigned rights)
{
	int pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0)
		return false;
	bool ok = priv_landlock_allow_fd(ll, pfd, rights);
	int saved = errno;
	close(pfd);
	errno = saved;
	return ok;
}

bool priv_landlock_allow_fd(struct priv_landlock *ll, int pfd,
    unsigned rights)
{
	uint64_t want = 0;
	if (rights & PRIV_FS_READ)
		want |= LANDLOCK_ACCESS_FS_READ_FILE |
		    LANDLOCK_ACCESS_FS_READ_DIR;
	if (rights & PRIV_FS_WRITE)
		want |= LANDLOCK_ACCESS_FS_WRITE_FILE |
		    LANDLOCK_ACCESS_FS_REMOVE_DIR |
		    LANDLOCK_ACCESS_FS_REMOVE_FILE |
		    LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
		    LANDLOCK_ACCESS_FS_REFER | LL_FS_TRUNCATE;
	if (rights & PRIV_FS_EXEC)
		want |= LANDLOCK_ACCESS_FS_EXECUTE;
	struct stat st;
	if (fstat(pfd, &st) < 0)
		return false;
	if (!S_ISDIR(st.st_mode))
		want &= LL_FS_FILE;
	struct landlock_path_beneath_attr rule = {
		.allowed_access = want & ll->handled_fs,
		.parent_fd = pfd,
	};
	return syscall(SYS_landlock_add_rule, ll->fd,
	    LANDLOCK_RULE_PATH_BENEATH, &rule, 0) == 0;
}

const char *priv_interpreter(void)
{
	const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
	size_t n = getauxval(AT_PHNUM);
	uintptr_t base = 0;
	/* The load address: where PT_PHDR landed against its p_vaddr. */
	for (size_t i = 0; ph != NULL && i < n; i++)
		if (ph[i].p_type == PT_PHDR)
			base = (uintptr_t)ph - ph[i].p_vaddr;
	for (size_t i = 0; ph != NULL && i < n; i++)
		if (ph[i].p_type == PT_INTERP)
			return (const char *)(base + ph[i].p_vaddr);
	return NULL;
}

bool priv_landlock_enforce(struct priv_landlock *ll, char *err,
    size_t errsize)
{
	long r = syscall(SYS_landlock_restrict_self, ll->fd, 0);
	int saved = errno;
	close(ll->fd);
	ll->fd = -1;
	if (r < 0) {
		snprintf(err, errsize, "landlock_restrict_self: %s",
		    strerror(saved));
		return false;
	}
	return true;
}

/* ---- seccomp ---- */

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* The low 32 bits of a 64-bit system call argument. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LOW 0
#else
#define ARG_LOW 4
#endif

/* No daemon makes these after start-up; a compromised one would. */
static const int denied[] = {
#ifdef SYS_mount
	SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot,
#endif
#ifdef SYS_open_tree
	SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig, SYS_fsmount,
	SYS_fspick,
#endif
#ifdef SYS_mount_setattr
	SYS_mount_setattr,
#endif
	SYS_unshare, SYS_setns,
	SYS_init_module, SYS_finit_module, SYS_delete_module,
	SYS_kexec_load,
#ifdef SYS_kexec_file_load
	SYS_kexec_file_load,
#endif
	SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct, SYS_quotactl,
	SYS_bpf, SYS_perf_event_open, SYS_userfaultfd,
	SYS_keyctl, SYS_add_key, SYS_request_key,
	SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
	SYS_open_by_handle_at, SYS_name_to_handle_at,
	SYS_fanotify_init, SYS_kcmp,
	SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime,
	SYS_adjtimex, SYS_sethostname, SYS_setdomainname,
	SYS_syslog, SYS_vhangup,
#ifdef SYS_iopl
	SYS_iopl, SYS_ioperm,
#endif
};

/* Denied too, except in a sanitizer build (priv_confine.h); execveat
 * is let through for the one program exec_fd names. */
static const int denied_unsanitized[] = {
	SYS_execve, SYS_execveat, SYS_ptrace, SYS_personality,
	SYS_process_vm_readv, SYS_process_vm_writev,
};

bool priv_seccomp_deny(bool sanitizer, int exec_fd, char *err,
    size_t errsize)
{
#ifndef NATIVE_ARCH
	snprintf(err, errsize, "no seccomp filter for this architecture");
	return false;
#else
	enum { MAX = 16 + 2 * (sizeof(denied) / sizeof(denied[0]) +
	    sizeof(denied_unsanitized) / sizeof(denied_unsanitized[0])) };
	struct sock_filter f[MAX];
	size_t n = 0;
	const uint32_t kill = SECCOMP_RET_KILL_PROCESS;

	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    NATIVE_ARCH, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, kill);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
	/* The x32 ABI: the same numbers with bit 30 set. */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
	    0x40000000, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, kill);
#endif
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    (uint32_t)denied[i], 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, kill);
	}
	if (!sanitizer && exec_fd >= 0) {
		/* execveat(exec_fd, "", ..., AT_EMPTY_PATH), and no other:
		 * the descriptor, opened before confinement, names the file
		 * (both arguments are ints: the low 32 bits are all the
		 * kernel reads). Anything else falls to the kill below. */
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    SYS_execveat, 0, 6);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, args[0]) + ARG_LOW);
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    (uint32_t)exec_fd, 0, 2);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, args[4]) + ARG_LOW);
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    AT_EMPTY_PATH, 1, 0);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, kill);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
		    SECCOMP_RET_ALLOW);
	}
	for (size_t i = 0; !sanitizer && i < sizeof(denied_unsanitized) /
	    sizeof(denied_unsanitized[0]); i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    (uint32_t)denied_unsanitized[i], 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, kill);
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_ALLOW);

	struct sock_fprog prog = { .len = (unsigned short)n, .filter = f };
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) {
		snprintf(err, errsize, "seccomp: %s", strerror(errno));
		return false;
	}
	return true;
#endif
}
