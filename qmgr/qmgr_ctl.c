/*
 * qmgr_ctl.c - qmgr's control socket (doc/architecture.md, IPC messages).
 *
 * The socket is mode 0666: any local process may connect. Any user may
 * ask for the listing (type=list, qmgr_list.c), as Postfix lets anyone
 * run mailq (authorized_mailq_users = static:anyone); every other command
 * (wakeup, flush, hold) is taken only from root or from our own user,
 * type=metrics (postern top) is for anyone, with the addresses left out
 * for others (qmgr_metrics.c);
 * checked with SO_PEERCRED. A wakeup from another user (sendmail run by
 * anyone) is refused without a log line: qmgr watches maildrop/ with
 * inotify anyway (qmgr_scan.c). Clients are untrusted: messages are
 * size-checked by ipc_decode, a client gets a bounded number of messages
 * and a bounded time, one user (uid) holds at most CTL_MAX_PER_UID
 * connections, and CTL_RESERVED of the CTL_MAX_CLIENTS slots are kept for
 * root and our user, so that no local user can lock the administrator
 * out by holding connections open.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "qmgr.h"

#define CTL_MAX_CLIENTS 64
/* Connections one unprivileged uid may hold at once. */
#define CTL_MAX_PER_UID 4
/* Slots only root and our own user may take. */
#define CTL_RESERVED 8
#define CTL_MAX_INPUT 8192
#define CTL_TIMEOUT_MS 10000
/* Listings served at once; each holds the sorted names of the queue. */
#define CTL_MAX_LISTINGS 4
/* Read more envelopes for a listing only when less than this is unsent. */
#define CTL_LIST_LOW_WATER 16384

struct ctl_client {
	int fd;
	uid_t uid;
	struct str in;
	struct str out;
	size_t out_off;
	bool closing;		/* close once out is written */
	struct qmgr_list *list;	/* a listing in progress, or NULL */
	long long deadline_ms;
};

static int listen_fd = -1;
static struct ctl_client clients[CTL_MAX_CLIENTS];
static size_t nclients;
static size_t nlistings;
/* What index in clients[] each of the last pollfds belongs to. */
static int polled[CTL_MAX_CLIENTS + 1];

void qmgr_ctl_init(int fd)
{
	listen_fd = fd;
}

static void client_close(size_t i);

void qmgr_ctl_stop(void)
{
	while (nclients > 0)
		client_close(nclients - 1);
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
}

static void client_close(size_t i)
{
	close(clients[i].fd);
	if (clients[i].list != NULL) {
		qmgr_list_free(clients[i].list);
		nlistings--;
	}
	str_free(&clients[i].in);
	str_free(&clients[i].out);
	clients[i] = clients[--nclients];
	memset(&clients[nclients], 0, sizeof(clients[nclients]));
}

static void reply(struct ctl_client *c, const char *type, const char *reason)
{
	struct ipc_msg m;
	ipc_msg_init(&m, type);
	if (reason != NULL)
		ipc_add(&m, "reason", "%s", reason);
	ipc_encode(&m, &c->out);
	ipc_msg_free(&m);
}

/* Root or the user qmgr runs as (the owner of the queue). */
static bool privileged(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/*
 * type=admin: an administrator's tool (postern queue, admin/postern_audit.c)
 * acted on a message itself and wants it in the mail log, in the shape of
 * Postfix's postsuper lines. The uid is the kernel's; the user name is the
 * privileged client's word, escaped.
 */
static void qmgr_ctl_log_admin(uid_t uid, const struct ipc_msg *m)
{
	static const char *const actions[] = { "removed", "placed on hold",
	    "released from hold", "requeued" };
	static const char *const queues[] = { QUEUE_MAILDROP, QUEUE_INCOMING,
	    QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT };
	const char *id = ipc_get(m, "id"), *action = ipc_get(m, "action");
	const char *queue = ipc_get(m, "queue"), *user = ipc_get(m, "user");
	const char *a = NULL, *q = NULL;
	char esc[80];

	for (size_t i = 0; action && i < sizeof(actions) / sizeof(*actions); i++)
		if (strcmp(action, actions[i]) == 0)
			a = actions[i];
	for (size_t i = 0; queue && i < sizeof(queues) / sizeof(*queues); i++)
		if (strcmp(queue, queues[i]) == 0)
			q = queues[i];
	if (id == NULL || !queue_id_valid(id) || a == NULL || q == NULL) {
		log_warning("malformed admin record from uid %lu",
		    (unsigned long)uid);
		return;
	}
	log_escape(esc, sizeof(esc), user ? user : "", user ? strlen(user) : 0);
	log_info("%s: %s, user=%s, uid=%lu, queue=%s", id, a,
	    esc[0] ? esc : "unknown", (unsigned long)uid, q);
}

static void handle(struct ctl_client *c, const struct ipc_msg *m)
{
	bool known = strcmp(m->type, "wakeup") == 0 ||
	    strcmp(m->type, "flush") == 0 || strcmp(m->type, "hold") == 0 ||
	    strcmp(m->type, "admin") == 0;
	if (known && !privileged(c->uid)) {
		if (strcmp(m->type, "wakeup") != 0)
			log_warning("%s refused for uid %lu", m->type,
			    (unsigned long)c->uid);
		reply(c, "error", "permission denied");
		c->closing = true;
		return;
	}
	if (strcmp(m->type, "wakeup") == 0) {
		qmgr_scan_wakeup();
	} else if (strcmp(m->type, "flush") == 0) {
		log_info("flush requested by uid %lu", (unsigned long)c->uid);
		qmgr_sched_revive_all();
		qmgr_scan_flush();
		reply(c, "ok", NULL);
	} else if (strcmp(m->type, "hold") == 0) {
		const char *id = ipc_get(m, "id");
		if (id == NULL || !queue_id_valid(id)) {
			reply(c, "error", "bad queue ID");
			return;
		}
		switch (qmgr_message_hold(id)) {
		case QMGR_HOLD_DONE:
			reply(c, "ok", NULL);
			break;
		case QMGR_HOLD_LATER:
			reply(c, "ok", "after the deliveries in flight");
			break;
		case QMGR_HOLD_NOT_ACTIVE:
			reply(c, "error", "not in active");
			break;
		}
	} else if (strcmp(m->type, "admin") == 0) {
		/* No reply: postern sends one per message it acted on, and
		 * keeps the connection as long as it keeps sending. */
		qmgr_ctl_log_admin(c->uid, m);
		c->deadline_ms = qmgr_now_ms() + CTL_TIMEOUT_MS;
	} else if (strcmp(m->type, "metrics") == 0) {
		/* Counters for anyone; the rest for privileged() only. */
		qmgr_metrics_ctl(&c->out, privileged(c->uid));
		c->deadline_ms = qmgr_now_ms() + CTL_TIMEOUT_MS;
	} else if (strcmp(m->type, "list") == 0) {
		/* No uid check: the listing is for everyone (see above). */
		if (c->list != NULL || nlistings == CTL_MAX_LISTINGS) {
			reply(c, "error", c->list ? "one listing at a time" :
			    "busy: too many listings, try again");
			c->closing = true;
			return;
		}
		c->list = qmgr_list_start();
		nlistings++;
		/* The entries follow as the client reads (client_event). */
	} else {
		reply(c, "error", "unknown command");
		c->closing = true;
	}
}

/*
 * Room for one more connection of uid? Refused ones are closed at once:
 * a busy qmgr owes an unprivileged client nothing, and the
 * administrator's tools always find a reserved slot.
 */
static bool may_connect(uid_t uid)
{
	if (nclients == CTL_MAX_CLIENTS)
		return false;
	if (privileged(uid))
		return true;
	if (nclients >= CTL_MAX_CLIENTS - CTL_RESERVED)
		return false;
	size_t mine = 0;
	for (size_t i = 0; i < nclients; i++)
		if (clients[i].uid == uid)
			mine++;
	if (mine >= CTL_MAX_PER_UID) {
		static long long last_log_ms;
		long long now = qmgr_now_ms();
		if (now - last_log_ms > 60000) {	/* no log flood */
			log_warning("control socket: uid %lu holds %zu "
			    "connections; more refused", (unsigned long)uid,
			    mine);
			last_log_ms = now;
		}
		return false;
	}
	return true;
}

static void accept_clients(void)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warning("accept on control socket: %m");
			return;
		}
		struct ucred cred;
		socklen_t len = sizeof(cred);
		uid_t uid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred,
		    &len) == 0 ? cred.uid : (uid_t)-1;
		if (!may_connect(uid)) {
			close(fd);
			continue;
		}
		struct ctl_client *c = &clients[nclients++];
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->uid = uid;
		str_init(&c->in, CTL_MAX_INPUT);
		str_init(&c->out, STR_NO_MAX);
		c->deadline_ms = qmgr_now_ms() + CTL_TIMEOUT_MS;
	}
}

size_t qmgr_ctl_pollfds(struct pollfd *pfds, size_t max)
{
	size_t n = 0;
	if (max == 0 || listen_fd < 0)
		return 0;
	pfds[n].fd = listen_fd;
	pfds[n].events = POLLIN;
	pfds[n].revents = 0;
	polled[n++] = -1;
	for (size_t i = 0; i < nclients && n < max; i++) {
		struct ctl_client *c = &clients[i];
		pfds[n].fd = c->fd;
		pfds[n].events = c->out.len > c->out_off || c->list ? POLLOUT :
		    c->closing ? 0 : POLLIN;
		pfds[n].revents = 0;
		polled[n++] = (int)i;
	}
	return n;
}

/* Serve client i; false once it is to be closed. */
static bool client_event(struct ctl_client *c, short revents)
{
	if ((revents & POLLOUT) && c->list != NULL &&
	    c->out.len - c->out_off < CTL_LIST_LOW_WATER &&
	    !qmgr_list_more(c->list, &c->out)) {
		/* type=end is queued: one listing per connection. */
		qmgr_list_free(c->list);
		c->list = NULL;
		nlistings--;
		c->closing = true;
	}
	if ((revents & POLLOUT) && c->out.len > c->out_off) {
		ssize_t w = write(c->fd, c->out.data + c->out_off,
		    c->out.len - c->out_off);
		if (w < 0)
			return errno == EAGAIN || errno == EINTR;
		c->out_off += (size_t)w;
		/* A client that keeps reading keeps its connection. */
		c->deadline_ms = qmgr_now_ms() + CTL_TIMEOUT_MS;
		if (c->out_off == c->out.len) {
			str_clear(&c->out);
			c->out_off = 0;
			if (c->closing)
				return false;
		}
		return true;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return true;
	char buf[4096];
	ssize_t r = read(c->fd, buf, sizeof(buf));
	if (r < 0)
		return errno == EAGAIN || errno == EINTR;
	if (r == 0)
		return false;
	if (!str_append(&c->in, buf, (size_t)r))
		return false;	/* more than any command needs */
	for (;;) {
		struct ipc_msg m;
		size_t used;
		enum ipc_decode_result dr = ipc_decode(c->in.data, c->in.len,
		    &m, &used);
		if (dr == IPC_NEED_MORE)
			return true;
		if (dr == IPC_BAD) {
			log_warning("malformed message on control socket");
			return false;
		}
		handle(c, &m);
		ipc_msg_free(&m);
		str_consume(&c->in, used);
		if (c->closing)
			return true;
	}
}

void qmgr_ctl_events(struct pollfd *pfds, size_t n)
{
	bool accept_now = false;
	bool drop[CTL_MAX_CLIENTS] = { false };

	for (size_t k = 0; k < n; k++) {
		if (pfds[k].revents == 0)
			continue;
		if (polled[k] < 0) {
			accept_now = true;
			continue;
		}
		struct ctl_client *c = &clients[polled[k]];
		if (!client_event(c, pfds[k].revents))
			drop[polled[k]] = true;
	}
	/* Close from the end: client_close moves the last one into place. */
	for (size_t i = nclients; i > 0; i--)
		if (drop[i - 1])
			client_close(i - 1);
	if (accept_now)
		accept_clients();
}

long long qmgr_ctl_timer(long long now_ms)
{
	long long next = 0;
	for (size_t i = nclients; i > 0; i--) {
		struct ctl_client *c = &clients[i - 1];
		if (c->deadline_ms <= now_ms) {
			client_close(i - 1);
			continue;
		}
		if (next == 0 || c->deadline_ms < next)
			next = c->deadline_ms;
	}
	return next;
}
