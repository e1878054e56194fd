/*
 * master_service.c - the table of services master runs, their listening
 * sockets, and the life of their child processes: pre-forking, status
 * records from the children, reaping, and throttling a service that
 * keeps failing at start-up.
 *
 * Trusts: the config (root-owned) and the status records (written by our
 * own children, but still checked against the child list).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>

#include "cfg.h"
#include "handoff.h"
#include "ipc.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "mem.h"
#include "priv.h"
#include "sock.h"
#include "tls_ticket.h"

/* master's own descriptors live above this, so dup2 into 3.. is safe. */
#define MASTER_FD_FLOOR 64

static struct master_child *children;
static size_t nchildren;
static int tls_ticket_fd = -1;	/* mail/tls_ticket.h, for smtpd */

struct service_def {
	const char *name;
	const char *program;
	const struct cfg_list *listen;	/* NULL: a private socket */
	const char *private_socket;	/* in run_directory */
	mode_t socket_mode;
	long long max_procs;
	bool single;
	const char *socket_group;	/* NULL: the user's own group */
};

struct master_child *master_children(void)
{
	return children;
}

size_t master_child_count(void)
{
	return nchildren;
}

static int move_fd_high(int fd)
{
	int high = fcntl(fd, F_DUPFD_CLOEXEC, MASTER_FD_FLOOR);
	if (high < 0)
		log_fatal("fcntl(F_DUPFD): %m");
	close(fd);
	return high;
}

void master_tls_tickets_init(void)
{
	if (tls_ticket_fd >= 0 || cfg.smtpd_tls_ticket_rotation <= 0)
		return;
	int fd = tls_ticket_keys_create();
	if (fd >= 0)
		tls_ticket_fd = move_fd_high(fd);
}

void master_tls_tickets_rotate(void)
{
	tls_ticket_keys_rotate_due(tls_ticket_fd, cfg.smtpd_tls_ticket_rotation);
}

/*
 * Who owns a socket file: the daemon user, who connects to it (the
 * service's own processes inherit the listening descriptor and need no
 * access), and the given group or else the user's own.
 */
static bool owner_of(const char *group, struct sock_unix_owner *own,
    char *err, size_t errsize)
{
	own->uid = (uid_t)-1;
	own->gid = (gid_t)-1;
	if (!priv_is_root())
		return true;
	if (!priv_lookup_user(cfg.user, &own->uid, &own->gid)) {
		snprintf(err, errsize, "unknown user \"%s\"", cfg.user);
		return false;
	}
	/* The default names the user's group; a user without a group of
	 * its own name keeps its primary group. */
	if (group != NULL && group[0] != '\0' &&
	    !priv_lookup_group(group, &own->gid) && strcmp(group, cfg.user) != 0) {
		snprintf(err, errsize, "lmtp_socket_group: group \"%s\" does "
		    "not exist", group);
		return false;
	}
	return true;
}

/* Reuse an old listener with the same name, or bind a new one. */
static int take_or_bind(const char *name, mode_t mode, const char *group,
    struct master_service *old, size_t old_count, char *err, size_t errsize)
{
	for (size_t i = 0; i < old_count; i++) {
		for (size_t j = 0; j < old[i].nlisteners; j++) {
			struct master_listener *l = &old[i].listeners[j];
			if (l->fd >= 0 && strcmp(l->name, name) == 0) {
				int fd = l->fd;
				l->fd = -1;
				return fd;
			}
		}
	}
	struct endpoint ep;
	if (!endpoint_parse(name, 0, &ep, err, errsize))
		return -1;
	struct sock_unix_owner own;
	if (!owner_of(group, &own, err, errsize))
		return -1;
	own.mode = mode;
	int fd = sock_listen_owned(&ep, 511, &own, err, errsize);
	if (fd < 0) {
		/* A host without IPv6 must still start on IPv4. */
		if (ep.kind == ENDPOINT_INET && strchr(ep.host, ':') &&
		    (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
			log_warning("%s: IPv6 is not available here; skipped",
			    name);
			return -2;
		}
		return -1;
	}
	return move_fd_high(fd);
}

bool master_services_setup(struct master_service **services, size_t *count,
    struct master_service *old, size_t old_count, char *err, size_t errsize)
{
	char *deliver_sock = xasprintf("unix:%s/%s", cfg.run_directory,
	    IPC_SOCKET_DELIVER);
	/* qmgr's control socket, then metrics_listen (qmgr_metrics.c). */
	char *qmgr_sock = xasprintf("unix:%s/%s%s%s", cfg.run_directory,
	    IPC_SOCKET_QMGR, cfg.metrics_listen[0] ? ", " : "",
	    cfg.metrics_listen);
	static const struct cfg_list no_listeners = { 0 };
	char *local_sock = xasprintf("unix:%s/%s", cfg.run_directory,
	    IPC_SOCKET_LOCAL);
	char *anvil_sock = xasprintf("unix:%s/%s", cfg.run_directory,
	    IPC_SOCKET_ANVIL);
	/*
	 * screen = yes: screen takes smtp_listen and passes each client
	 * that passed its checks and spoke to the "smtp" smtpd processes
	 * over this socket (mail/handoff.h); only screen (as `user`)
	 * connects to it.
	 */
	char *handoff_sock = xasprintf("unix:%s/%s", cfg.run_directory,
	    HANDOFF_SOCKET);
	char *pickup_sock = xasprintf("unix:%s/%s", cfg.run_directory,
	    IPC_SOCKET_PICKUP);
	const struct service_def defs[] = {
		{ "smtp", "smtpd", cfg.screen ? NULL : &cfg.smtp_listen,
		  handoff_sock, cfg.screen ? 0600 : 0, cfg.smtpd_processes,
		  false, NULL },
		{ "submission", "smtpd", &cfg.submission_listen, NULL, 0,
		  cfg.smtpd_processes, false, NULL },
		{ "smtps", "smtpd", &cfg.smtps_listen, NULL, 0, cfg.smtpd_processes,
		  false, NULL },
		/*
		 * Whoever connects here injects mail with no SMTP checks: our
		 * deliver (the owner) and the local MTAs of
		 * lmtp_socket_group, as Dovecot's lmtp socket is 0660.
		 */
		{ "lmtp", "lmtpd", &cfg.lmtp_listen, NULL, 0660,
		  cfg.lmtpd_processes, false, cfg.lmtp_socket_group },
		{ "deliver", "deliver", NULL, deliver_sock, 0600,
		  cfg.deliver_processes, false, NULL },
		/* Anyone may wake qmgr; it checks peers before control. */
		{ "qmgr", "qmgr", NULL, qmgr_sock, 0666, 1, true, NULL },
		/* Only qmgr (the owner) hands local jobs; local runs as root
		 * and delivers as each recipient. Started only when
		 * local_recipient_maps names local users. */
		{ "local", "local", cfg.local_recipient_maps.count > 0 ? NULL :
		  &no_listeners, local_sock, 0600, cfg.local_processes, false,
		  NULL },
		/* smtpd's shared counters; anvil checks its peers' uids. */
		{ "anvil", "anvil", NULL, anvil_sock, 0666, 1, true, NULL },
		/* The first contact on the port 25 role (screen/). */
		{ "screen", "screen", cfg.screen ? &cfg.smtp_listen :
		  &no_listeners, NULL, 0, 1, true, NULL },
		/* maildrop/ into incoming/ (pickup/); the socket only wakes
		 * it, and only the user may. */
		{ "pickup", "pickup", NULL, pickup_sock, 0600, 1, true, NULL },
	};
	size_t n = sizeof(defs) / sizeof(defs[0]);
	struct master_service *svcs = xcalloc(n, sizeof(*svcs));
	bool ok = true;

	for (size_t i = 0; i < n && ok; i++) {
		const struct service_def *d = &defs[i];
		struct master_service *s = &svcs[i];
		s->name = d->name;
		s->program = d->program;
		s->path = xasprintf("%s/%s", cfg.daemon_directory, d->program);
		s->single = d->single;
		s->max_procs = d->single ? 1 : (int)d->max_procs;
		s->min_idle = d->single ? 1 : (int)cfg.process_min_idle;
		s->zygote_wanted = master_zygote_supported(s);
		s->sb_fd = -1;	/* master_scoreboard_create(), if enabled */
		if (s->min_idle > s->max_procs)
			s->min_idle = s->max_procs;
		if (access(s->path, X_OK) != 0) {
			log_warning("service %s: %s is not there: not started",
			    s->name, s->path);
			continue;
		}
		struct cfg_list priv = { 0 };
		const struct cfg_list *names = d->listen;
		if (names == NULL) {
			priv = cfg_split_list(d->private_socket);
			names = &priv;
		}
		bool last_bound = false;
		for (size_t j = 0; j < names->count && ok; j++) {
			/* "proxy" marks the endpoint before it (cfg.c checked
			 * that there is one): a load balancer sends a PROXY
			 * protocol header first (smtpd/smtpd_proxy.c). */
			if (strcmp(names->items[j], "proxy") == 0) {
				if (last_bound)
					s->listeners[s->nlisteners - 1].proxy = true;
				continue;
			}
			last_bound = false;
			if (s->nlisteners == DAEMON_MAX_LISTENERS) {
				snprintf(err, errsize, "service %s: too many "
				    "listeners", s->name);
				ok = false;
				break;
			}
			int fd = take_or_bind(names->items[j], d->socket_mode ?
			    d->socket_mode : 0666, d->socket_group, old,
			    old_count, err, errsize);
			if (fd == -2)
				continue;
			if (fd < 0) {
				/* Which service: the admin's way to the key. */
				char why[512];
				strlcpy(why, err, sizeof(why));
				snprintf(err, errsize, "service %s: %s", s->name,
				    why);
				ok = false;
				break;
			}
			s->listeners[s->nlisteners].name = xstrdup(names->items[j]);
			s->listeners[s->nlisteners].fd = fd;
			s->listeners[s->nlisteners].proxy = false;
			/* screen passes its clients to smtp's smtpd here. */
			s->listeners[s->nlisteners].handoff = cfg.screen &&
			    strcmp(d->name, "smtp") == 0;
			s->nlisteners++;
			last_bound = true;
		}
		cfg_list_free(&priv);
		s->enabled = ok && s->nlisteners > 0;
		master_scoreboard_create(s);
	}
	free(deliver_sock);
	free(qmgr_sock);
	free(local_sock);
	free(anvil_sock);
	free(handoff_sock);
	free(pickup_sock);
	if (!ok) {
		master_services_close(svcs, n);
		return false;
	}
	*services = svcs;
	*count = n;
	return true;
}

void master_services_close(struct master_service *services, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		for (size_t j = 0; j < services[i].nlisteners; j++) {
			if (services[i].listeners[j].fd >= 0)
				close(services[i].listeners[j].fd);
			free(services[i].listeners[j].name);
		}
		master_scoreboard_close(&services[i]);
		free(services[i].path);
	}
	free(services);
}

/* Children of a replaced service table must not point into it (which
 * may be freed already: stop closes the services first). A zygote of
 * that table is told to go (master_zygote.c). */
void master_forget_services(void)
{
	for (struct master_child *c = children; c; c = c->next) {
		c->svc = NULL;
		if (c->zygote)
			master_zygote_forget(c);
	}
}

static void exec_child(struct master_service *s, unsigned int generation,
    int status_fd, int alive_fd, int zygote_fd)
{
	char names[4096] = "";
	char proxy[DAEMON_MAX_LISTENERS + 1] = "";
	char handoff[DAEMON_MAX_LISTENERS + 1] = "";
	char num[32];

	/* Descriptors: 3 status, 4 alive, 5.. listeners (daemon.h). */
	if (dup2(status_fd, DAEMON_STATUS_FD) < 0 ||
	    dup2(alive_fd, DAEMON_ALIVE_FD) < 0)
		_exit(127);
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (dup2(s->listeners[i].fd, DAEMON_LISTEN_FD_START + (int)i) < 0)
			_exit(127);
		if (i)
			strlcat(names, " ", sizeof(names));
		strlcat(names, s->listeners[i].name, sizeof(names));
		proxy[i] = s->listeners[i].proxy ? '1' : '0';
		proxy[i + 1] = '\0';
		handoff[i] = s->listeners[i].handoff ? '1' : '0';
		handoff[i + 1] = '\0';
	}
	int next_fd = DAEMON_LISTEN_FD_START + (int)s->nlisteners;
	unsetenv("POSTERN_TLS_TICKET_FD");
	if (tls_ticket_fd >= 0 && strcmp(s->program, "smtpd") == 0) {
		/* The shared TLS ticket keys (mail/tls_ticket.h). */
		if (dup2(tls_ticket_fd, next_fd) < 0)
			_exit(127);
		snprintf(num, sizeof(num), "%d", next_fd++);
		setenv("POSTERN_TLS_TICKET_FD", num, 1);
	}
	next_fd = metrics_master_pass(s->program, next_fd);	/* metrics.h */
	unsetenv(DAEMON_ZYGOTE_ENV);
	if (zygote_fd >= 0) {
		/* Its end of master's socket (mail/daemon_zygote.c). */
		if (dup2(zygote_fd, next_fd) < 0)
			_exit(127);
		snprintf(num, sizeof(num), "%d", next_fd++);
		setenv(DAEMON_ZYGOTE_ENV, num, 1);
		/*
		 * The loader binds every library's calls at the zygote's
		 * start, libc's and libdb's lazy ones too: a worker cloned
		 * later would otherwise bind them on first use, each time
		 * reading the symbol tables of every library (and the
		 * loader's code) into its own page tables, about 500 KiB
		 * of RSS per worker. The zygote unsets it (daemon.c).
		 */
		setenv("LD_BIND_NOW", "1", 1);
	}
	/* The busy/idle page (mail/daemon_scoreboard.h). */
	next_fd = master_scoreboard_pass(s, next_fd);
	closefrom(next_fd);
	snprintf(num, sizeof(num), "%zu", s->nlisteners);
	setenv("POSTERN_LISTEN_FDS", num, 1);
	setenv("POSTERN_LISTEN_NAMES", names, 1);
	setenv("POSTERN_LISTEN_PROXY", proxy, 1);
	setenv("POSTERN_LISTEN_HANDOFF", handoff, 1);
	snprintf(num, sizeof(num), "%u", generation);
	setenv("POSTERN_GENERATION", num, 1);

	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	/* A terminal's Ctrl-C reaches the whole process group: master
	 * alone stops its children. Ignored from here, it stays ignored
	 * across exec, so even a child not yet in main() survives it. */
	signal(SIGINT, SIG_IGN);

	char *argv[] = { (char *)s->program, "-c", cfg.config_directory, "-s",
		(char *)s->name, NULL };
	execv(s->path, argv);
	log_error("exec %s: %m", s->path);
	_exit(127);
}

pid_t master_fork_exec(struct master_service *s, unsigned int generation,
    int status_fd, int alive_fd, int zygote_fd)
{
	pid_t pid = fork();
	if (pid < 0)
		log_warning("service %s: fork: %m", s->name);
	else if (pid == 0)
		exec_child(s, generation, status_fd, alive_fd, zygote_fd);
	return pid;
}

struct master_child *master_child_add(pid_t pid, struct master_service *s,
    unsigned int generation)
{
	struct master_child *c = xcalloc(1, sizeof(*c));
	c->pid = pid;
	c->svc = s;
	c->generation = generation;
	c->started = time(NULL);
	c->zygote_fd = -1;
	c->next = children;
	children = c;
	nchildren++;
	return c;
}

static void spawn(struct master_service *s, unsigned int generation,
    int status_fd, int alive_fd)
{
	/* From the zygote if there is one; else, or if it failed, as
	 * always. */
	pid_t pid = s->zygote != NULL ? master_zygote_spawn(s) : -1;
	bool cloned = pid > 0;
	if (!cloned)
		pid = master_fork_exec(s, generation, status_fd, alive_fd, -1);
	if (pid < 0)
		return;
	master_child_add(pid, s, generation)->cloned = cloned;
	s->nprocs++;
	s->nidle++;		/* starting counts as idle: no over-forking */
	log_debug("service %s: started %s pid %ld%s", s->name, s->path,
	    (long)pid, cloned ? " from its zygote" : "");
}

void master_spawn_needed(struct master_service *services, size_t count,
    unsigned int generation, int status_fd, int alive_fd)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < count; i++) {
		struct master_service *s = &services[i];
		if (!s->enabled)
			continue;
		if (s->throttled_until > now)
			continue;
		if (s->throttled_until != 0) {
			log_info("service %s: throttle ends, trying again",
			    s->name);
			s->throttled_until = 0;
			s->throttle_logged = false;
			master_zygote_ensure(s, generation, status_fd,
			    alive_fd);
			/* One try: if it fails at start-up we throttle again. */
			if (s->nprocs < s->max_procs)
				spawn(s, generation, status_fd, alive_fd);
			continue;
		}
		master_zygote_ensure(s, generation, status_fd, alive_fd);
		if (master_zygote_starting(s))
			continue;	/* its READY wakes master */
		while (s->nprocs < s->max_procs &&
		    (s->single ? s->nprocs < 1 : s->nidle < s->min_idle))
			spawn(s, generation, status_fd, alive_fd);
	}
}

static struct master_child *find_child(pid_t pid, struct master_child ***link)
{
	for (struct master_child **pp = &children; *pp; pp = &(*pp)->next) {
		if ((*pp)->pid == pid) {
			if (link)
				*link = pp;
			return *pp;
		}
	}
	return NULL;
}

/* The counts follow in master_scoreboard_sync(), where a child's slot,
 * if it has one, has the last word. */
void master_status_record(const struct daemon_status *st)
{
	struct master_child *c = find_child(st->pid, NULL);
	if (c == NULL || c->zygote || st->state < DAEMON_READY || st->state > DAEMON_IDLE)
		return;
	c->state = st->state;
}

void master_reap(void)
{
	int status;
	pid_t pid;
	time_t now = time(NULL);

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct master_child **link;
		struct master_child *c = find_child(pid, &link);
		if (c == NULL)
			continue;
		*link = c->next;
		nchildren--;
		if (c->zygote) {
			master_zygote_reaped(c, status);
			free(c);
			continue;
		}
		struct master_service *s = c->svc;
		bool idle = c->state != DAEMON_BUSY;
		bool abnormal = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		const char *name = s ? s->name : "retired";
		if (WIFSIGNALED(status))
			log_warning("service %s: process %ld killed by signal %d",
			    name, (long)pid, WTERMSIG(status));
		else if (abnormal)
			log_warning("service %s: process %ld exit status %d",
			    name, (long)pid, WEXITSTATUS(status));
		if (s != NULL && c->cloned)
			master_zygote_worker_reaped(c, status);
		master_scoreboard_release(c);
		if (s != NULL) {
			s->nprocs--;
			if (idle)
				s->nidle--;
			/*
			 * A process that dies before it ever got ready is a
			 * broken installation or config: retrying at once
			 * would only spin. Wait service_throttle_time.
			 */
			if (abnormal && c->state == 0) {
				s->throttled_until = now + cfg.service_throttle_time;
				if (!s->throttle_logged)
					log_warning("service %s: %s fails at "
					    "start-up -- throttling for %llds",
					    s->name, s->path,
					    cfg.service_throttle_time);
				s->throttle_logged = true;
			}
		}
		free(c);
	}
}

void master_signal_children(int sig)
{
	for (struct master_child *c = children; c; c = c->next)
		kill(c->pid, sig);
}
