/*
 * daemon_confine.c - what each daemon may still do once it has dropped
 * root: postern's confinement model (issue 12). Installed by the daemon
 * skeleton after the service's init, before the first connection is
 * accepted. Trusts the config (root's) for the paths it opens up.
 *
 * The model, in layers, each enforced by the kernel:
 *
 * 1. Identity (util/priv.c): one uid, exactly one group (no supplementary
 *    groups), real, effective and saved ids all changed and checked, and
 *    PR_SET_NO_NEW_PRIVS: no exec can give anything back. qmgr, deliver
 *    and smtpd's door run as `user`, smtpd's network worker as
 *    `smtpd_user`, lmtpd as `mailbox_owner`. local alone keeps root, as
 *    Postfix's local(8), and writes each mailbox in a child that has
 *    become the mailbox's user (local/local_deliver.c). master alone keeps
 *    root and parses no network input; root never acts on a path the
 *    daemon user controls (run_directory is root's: master(8)).
 *
 * 2. Landlock (ABI 2 or later; probed, and master logs a warning once
 *    when the kernel has none or only ABI 1, which forbids the renames
 *    across directories the queue is made of). Every file right the
 *    kernel knows is handled, and only these are granted:
 *      all daemons  read: /etc /usr /lib* /proc /sys, config_directory,
 *                   every directory a config key names and the directory
 *                   of every file a key names (maps, keys, certificates),
 *                   except the queue, the Maildirs and run_directory;
 *                   read and write: /dev/null, /dev/zero, /dev/urandom.
 *      qmgr, smtpd's door (smtpd/smtpd_door.c, "smtpd-door")
 *                   read and write the queue_directory tree; the door
 *                   may not connect over TCP.
 *      smtpd        (the network worker) nothing of the queue: it writes
 *                   the one file its door passed it, by descriptor.
 *      deliver      read the queue_directory tree (it only reads the
 *                   message it is given); read and write
 *                   queue_directory/tls, its MTA-STS cache and TLS-RPT
 *                   store (issue 16).
 *      lmtpd        read and write mailbox_base, and $TMPDIR or /tmp,
 *                   where it spools when mailbox_base cannot hold an
 *                   unnamed temporary file.
 *      screen       read and write the directory of screen_cache_map
 *                   (its allowlist cache); nothing of the queue.
 *      pickup       read and write the queue_directory tree, as qmgr;
 *                   may connect over TCP (non_smtpd_milters).
 *      local        (root, see layer 1: it becomes each recipient in a
 *                   child to read .forward files and to write) no
 *                   Landlock: homes, .forward files and /file targets
 *                   are wherever passwd and the users say; and no
 *                   seccomp filter while allow_mail_to_commands is set,
 *                   since the commands it runs would inherit it.
 *    Nothing may be executed, but for deliver's mtasts-fetch (below).
 *    No daemon may bind a TCP port (listeners
 *    come from master; ABI 4); qmgr and lmtpd may not connect over TCP
 *    either. Signals and abstract Unix sockets cannot reach outside the
 *    process's own sandbox (ABI 6): a compromised daemon cannot signal
 *    its siblings. Unix sockets by path (qmgr's, deliver's, lmtp, syslog)
 *    stay reachable, as file permissions allow.
 *    A violation is an error (EACCES) the program logs as for any other
 *    refused file.
 *
 * 3. seccomp (util/priv_confine.c): a deny list, so that no library's
 *    rare system call can break delivery. The process is killed on a
 *    call of another architecture or ABI, exec, ptrace, mount and
 *    namespaces, module and kernel loading, keyrings, BPF, perf,
 *    userfaultfd, io_uring, clock and host name changes; master logs
 *    the death as "killed by signal 31" (SIGSYS).
 *
 * deliver runs one program, mtasts-fetch, the HTTPS fetch of an MTA-STS
 * policy (deliver/deliver_mtasts_fetch.c), and only through the O_PATH
 * descriptor it opened before confinement (daemon_confine_exec): its
 * seccomp filter lets execveat on that descriptor with AT_EMPTY_PATH
 * through and still kills on every other exec, and Landlock grants
 * execute on that one file and on the ELF loader, which the kernel
 * opens with it. The fetcher inherits all of deliver's confinement (uid,
 * no new privileges, the Landlock domain, the filter) and adds its own
 * layer on top (mtasts-fetch/mtasts_fetch.c).
 *
 * A sanitizer build (make check-sanitize) relaxes two things and says so
 * here: seccomp allows exec, ptrace, personality and process_vm_readv
 * (LeakSanitizer stops the world with ptrace; reports run a symbolizer),
 * and Landlock allows executing from /usr (the symbolizer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <bsd/string.h>

#include "cfg.h"
#include "daemon.h"
#include "log.h"
#include "priv_confine.h"

struct confine_policy {
	const char *program;
	unsigned queue;		/* rights on queue_directory */
	bool mailboxes;		/* read and write mailbox_base, spool dir */
	bool tcp_connect;	/* may connect over TCP */
};

static const struct confine_policy policies[] = {
	/* smtpd's worker reaches the queue only through its door. Its
	 * TCP connects serve DNS and the milters of smtpd_milters; a unix:
	 * milter needs no rule (Landlock does not govern connecting to a
	 * socket by path). */
	{ "smtpd", 0, false, true },
	{ "smtpd-door", PRIV_FS_READ | PRIV_FS_WRITE, false, false },
	{ "qmgr", PRIV_FS_READ | PRIV_FS_WRITE, false, false },
	{ "deliver", PRIV_FS_READ, false, true },
	{ "lmtpd", 0, true, false },
	/* local keeps root (it becomes each recipient to write): Landlock
	 * still holds it to the queue (read) and the mail spool. */
	{ "local", PRIV_FS_READ, false, false },
	/* screen (screen/screen.c): no queue; its DNSBL queries are UDP,
	 * which Landlock does not govern; it writes only the directory of
	 * screen_cache_map (below). */
	{ "screen", 0, false, false },
	/* pickup moves maildrop/ into incoming/ (or hold/); its TCP
	 * connects serve the filters of non_smtpd_milters. */
	{ "pickup", PRIV_FS_READ | PRIV_FS_WRITE, false, true },
};

/* The places no config key opens up by itself: each policy decides. */
static bool is_private_place(const char *key)
{
	return strcmp(key, "queue_directory") == 0 ||
	    strcmp(key, "mailbox_base") == 0 ||
	    strcmp(key, "run_directory") == 0 ||
	    strcmp(key, "mail_spool_directory") == 0;
}

/*
 * Read access for what a config value names: "/path" or "type:/path"
 * (hash:/etc/postern/aliases, unix:/run/postern/lmtp). A directory is
 * opened itself; for a file, its directory, since tables are replaced
 * by rename and a rule on the old file would not cover the new one.
 */
static void allow_named(struct priv_landlock *ll, const char *key,
    const char *value)
{
	if (value == NULL || is_private_place(key))
		return;
	const char *path = value;
	if (path[0] != '/') {
		const char *colon = strchr(path, ':');
		if (colon == NULL || colon[1] != '/')
			return;
		path = colon + 1;
	}
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		priv_landlock_allow(ll, path, PRIV_FS_READ);
		return;
	}
	char dir[4096];
	strlcpy(dir, path, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		return;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	/* Never the whole file system, or the private places, this way. */
	if (strcmp(dir, "/") == 0 || strcmp(dir, cfg.queue_directory) == 0 ||
	    strcmp(dir, cfg.mailbox_base) == 0)
		return;
	priv_landlock_allow(ll, dir, PRIV_FS_READ);
}

static void allow_config(struct priv_landlock *ll)
{
#define CONFINE_STRING(name) allow_named(ll, #name, cfg.name);
#define CONFINE_LIST(name) \
	for (size_t i = 0; i < cfg.name.count; i++) \
		allow_named(ll, #name, cfg.name.items[i]);
#define CONFINE_INT(name)
#define CONFINE_SIZE(name)
#define CONFINE_DURATION(name)
#define CONFINE_BOOL(name)
#define CONFINE_KEY(type, name, def) CONFINE_##type(name)
	CFG_KEYS(CONFINE_KEY)
#undef CONFINE_KEY
#undef CONFINE_STRING
#undef CONFINE_LIST
#undef CONFINE_INT
#undef CONFINE_SIZE
#undef CONFINE_DURATION
#undef CONFINE_BOOL
}

/* The one program this process may run once confined (an O_PATH
 * descriptor, daemon_confine_exec), -1 for none. */
static int exec_fd = -1;

void daemon_confine_exec(int fd)
{
	exec_fd = fd;
}

static const struct confine_policy *policy_of(const char *program)
{
	static const struct confine_policy strictest = { "", 0, false, false };
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		if (strcmp(policies[i].program, program) == 0)
			return &policies[i];
	return &strictest;
}

/*
 * The rules of a program whose zygote built them (daemon_confine_prepare),
 * -1 where none: each worker enforces the zygote's ruleset instead of
 * building its own (18 rules, each an open, fstat, add and close).
 */
static struct priv_landlock prepared = { .fd = -1 };

/* A ruleset for p with every rule added; false where p runs without
 * Landlock (local, or a kernel without it). */
static bool confine_landlock_rules(const struct confine_policy *p,
    struct priv_landlock *ll)
{
	char err[256];

	/* local reads ~/.forward, writes /file targets and Maildirs in
	 * every home: wherever passwd and the users say. The uid of the
	 * child that reads or writes is the confinement (issue 13). */
	if (strcmp(p->program, "local") == 0) {
		log_debug("no Landlock confinement: local works as each user");
		return false;
	}

	if (!priv_landlock_begin(ll, true, !p->tcp_connect, err,
	    sizeof(err))) {
		/* master warns once at start; each process only notes it. */
		log_debug("no Landlock confinement: %s", err);
		return false;
	}
	const char *system_ro[] = { "/etc", "/usr", "/lib", "/lib32",
		"/lib64", "/proc", "/sys" };
	for (size_t i = 0; i < sizeof(system_ro) / sizeof(system_ro[0]); i++)
		priv_landlock_allow(ll, system_ro[i], PRIV_FS_READ |
		    (PRIV_SANITIZED && strcmp(system_ro[i], "/usr") == 0 ?
		    PRIV_FS_EXEC : 0));
	const char *devices[] = { "/dev/null", "/dev/zero", "/dev/urandom" };
	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
		priv_landlock_allow(ll, devices[i], PRIV_FS_READ |
		    PRIV_FS_WRITE);
	priv_landlock_allow(ll, cfg.config_directory, PRIV_FS_READ);
	allow_config(ll);
	if (p->queue)
		priv_landlock_allow(ll, cfg.queue_directory, p->queue);
	if (p->mailboxes) {
		priv_landlock_allow(ll, cfg.mailbox_base, PRIV_FS_READ |
		    PRIV_FS_WRITE);
		const char *tmp = getenv("TMPDIR");
		priv_landlock_allow(ll, tmp && tmp[0] == '/' ? tmp : "/tmp",
		    PRIV_FS_READ | PRIV_FS_WRITE);
	}
	/* The mail spool is local's alone. */
	if (strcmp(p->program, "local") == 0)
		priv_landlock_allow(ll, cfg.mail_spool_directory,
		    PRIV_FS_READ | PRIV_FS_WRITE);
	/* screen's allowlist cache: a Berkeley DB file it creates and
	 * rewrites in its directory. */
	if (strcmp(p->program, "screen") == 0 && cfg.screen_cache_map[0]) {
		const char *path = cfg.screen_cache_map;
		if (strncmp(path, "hash:", 5) == 0)
			path += 5;
		char dir[4096];
		strlcpy(dir, path, sizeof(dir));
		char *slash = strrchr(dir, '/');
		if (slash != NULL && slash != dir) {
			*slash = '\0';
			struct stat st;
			if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
				priv_landlock_allow(ll, dir, PRIV_FS_READ |
				    PRIV_FS_WRITE);
		}
	}
	/* deliver writes its MTA-STS policy cache and TLS-RPT store under
	 * queue_directory/tls (issue 16; deliver/deliver_mtasts.c makes it
	 * in its init, before this). */
	if (strcmp(p->program, "deliver") == 0) {
		char tls_state[4096];
		snprintf(tls_state, sizeof(tls_state), "%s/tls",
		    cfg.queue_directory);
		priv_landlock_allow(ll, tls_state, PRIV_FS_READ |
		    PRIV_FS_WRITE);
	}
	/* deliver's mtasts-fetch: that file and its loader may be
	 * executed (the kernel opens both), no other. */
	if (exec_fd >= 0) {
		priv_landlock_allow_fd(ll, exec_fd, PRIV_FS_READ |
		    PRIV_FS_EXEC);
		const char *interp = priv_interpreter();
		if (interp != NULL)
			priv_landlock_allow(ll, interp, PRIV_FS_READ |
			    PRIV_FS_EXEC);
	}
	return true;
}

static void confine_landlock(const struct confine_policy *p)
{
	char err[256];
	struct priv_landlock ll;

	if (prepared.fd >= 0) {
		ll = prepared;
		prepared.fd = -1;
	} else if (!confine_landlock_rules(p, &ll)) {
		return;
	}
	/* Closes this process's descriptor of the ruleset either way. */
	if (!priv_landlock_enforce(&ll, err, sizeof(err)))
		log_fatal("%s", err);
	log_debug("confined: Landlock ABI %d", ll.abi);
}

void daemon_confine_prepare(const char *program)
{
	/* Where there is no ruleset (false), prepared.fd stays -1. */
	if (prepared.fd < 0)
		(void)confine_landlock_rules(policy_of(program), &prepared);
}

void daemon_confine(const char *program)
{
	char err[256];

	confine_landlock(policy_of(program));
	/* local's children run the commands of aliases and .forward files
	 * (any program, which may be setgid or use any system call): a
	 * filter would be inherited by them, so local runs without one
	 * when commands are allowed, as Postfix's local(8) does. */
	if (strcmp(program, "local") == 0 &&
	    cfg.allow_mail_to_commands.count > 0) {
		log_debug("no seccomp filter: local runs commands");
		return;
	}
	/* A kernel built without seccomp filters: say so, and serve. */
	if (!priv_seccomp_deny(PRIV_SANITIZED, exec_fd, err,
	    sizeof(err)))
		log_warning("no seccomp filter: %s", err);
}

void daemon_confine_probe(void)
{
	int abi = priv_landlock_abi();
	if (abi < 2)
		log_warning("the kernel has %s: the daemons run without "
		    "Landlock file confinement (seccomp still applies)",
		    abi == 0 ? "no Landlock" : "only Landlock ABI 1");
}
