/*
 * anvil.c - the suite's per-client accounting service: one process, run
 * by master as the "anvil" service on run_directory/anvil, that counts
 * events per key for every smtpd process at once (as Postfix's anvil).
 * It counts failed AUTH attempts per client address (an IPv6 /64) and
 * per account, and says when one is locked out
 * (smtpd_client_auth_rate_limit, smtpd_auth_lockout_time); and, per
 * client address, the connections open now and the connections,
 * messages and recipients of the current minute, for the limits smtpd
 * enforces (smtpd_client_connection_count_limit, ..._rate_limit,
 * smtpd_client_message_rate_limit, smtpd_client_recipient_rate_limit).
 *
 * It also owns greylisting's memory (anvil_greylist.c), the one
 * Berkeley DB file smtpd_greylist_database, and decides there.
 *
 * Why a service and not shared memory: the counters have one owner, a
 * crashed or compromised smtpd cannot corrupt them for the others, and
 * master restarts it like any daemon (the counts are lost then: a fresh
 * start, never a lock-out of everyone).
 *
 * Trusts: nothing a client sends. The socket is mode 0666 as master
 * binds it; anvil takes requests only from root, `user` and
 * `smtpd_user` (SO_PEERCRED), so a local user cannot lock an account
 * out. Requests are ipc.c messages, one reply each (but "release", the
 * end of a session, which smtpd does not wait for); a malformed one ends
 * that client. Memory is bounded: at most ANVIL_MAX_ENTRIES keys (a key
 * past it is not counted: fail open, logged once) and ANVIL_MAX_CLIENTS
 * connections.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "anvil.h"
#include "cfg.h"
#include "daemon.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "priv.h"
#include "str.h"

#define ANVIL_MAX_CLIENTS 1000
#define ANVIL_MAX_ENTRIES 100000
#define ANVIL_BUCKETS 8192
#define ANVIL_MAX_INPUT 4096
#define ANVIL_KEY_MAX 300
#define ANVIL_WINDOW 3600	/* failures count within an hour */

#define ANVIL_RATE_UNIT 60	/* rates are per minute (Postfix's unit) */

/*
 * One counted key: "c:192.0.2.7", "c:2001:db8:1:2::/64", "u:alice" for
 * AUTH failures; "r:ADDRESS" for the per-client limits.
 */
struct anvil_entry {
	struct anvil_entry *next;
	char *key;
	long long failures;
	time_t window_start;	/* first failure of this window */
	time_t locked_until;	/* 0: not locked */
	long long connections;	/* open now */
	long long conn_events, msg_events, rcpt_events;	/* this minute */
	time_t rate_start;
	/* An episode over a limit is logged once (by smtpd, told here). */
	bool count_over, conn_rate_over, msg_rate_over, rcpt_rate_over;
};

struct anvil_client {
	int fd;
	struct str in;
	struct anvil_entry *held;	/* the session it counts as open */
};

static struct anvil_entry *buckets[ANVIL_BUCKETS];
static size_t nentries;
static bool table_full_logged;
static struct anvil_client clients[ANVIL_MAX_CLIENTS];
static size_t nclients;
static uid_t allowed_uids[3];

static unsigned long hash_key(const char *key)
{
	unsigned long h = 5381;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = h * 33 ^ *p;
	return h % ANVIL_BUCKETS;
}

/* An entry whose window and lock-out are over counts for nothing. */
static bool entry_stale(const struct anvil_entry *e, time_t now)
{
	return e->locked_until <= now && e->connections == 0 &&
	    now - e->window_start >= ANVIL_WINDOW &&
	    now - e->rate_start >= ANVIL_RATE_UNIT;
}

/* The rates count within the current minute. */
static void rates_roll(struct anvil_entry *e, time_t now)
{
	if (now - e->rate_start >= ANVIL_RATE_UNIT) {
		e->rate_start = now;
		e->conn_events = e->msg_events = e->rcpt_events = 0;
		e->conn_rate_over = e->msg_rate_over = e->rcpt_rate_over = false;
	}
}

static struct anvil_entry *entry_find(const char *key, bool create,
    time_t now)
{
	unsigned long h = hash_key(key);
	for (struct anvil_entry *e = buckets[h]; e; e = e->next) {
		if (strcmp(e->key, key) == 0) {
			if (entry_stale(e, now)) {
				e->failures = 0;
				e->window_start = now;
				e->locked_until = 0;
			}
			rates_roll(e, now);
			return e;
		}
	}
	if (!create)
		return NULL;
	if (nentries >= ANVIL_MAX_ENTRIES) {
		if (!table_full_logged)
			log_warning("%d keys counted: new ones are not counted "
			    "until old ones expire", ANVIL_MAX_ENTRIES);
		table_full_logged = true;
		return NULL;
	}
	struct anvil_entry *e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->window_start = now;
	e->rate_start = now;
	e->next = buckets[h];
	buckets[h] = e;
	nentries++;
	return e;
}

/* Drop stale entries (every minute), so the table follows the traffic. */
static void entries_sweep(time_t now)
{
	for (size_t h = 0; h < ANVIL_BUCKETS; h++) {
		struct anvil_entry **pp = &buckets[h];
		while (*pp) {
			struct anvil_entry *e = *pp;
			if (entry_stale(e, now)) {
				*pp = e->next;
				free(e->key);
				free(e);
				nentries--;
			} else {
				pp = &e->next;
			}
		}
	}
	if (nentries < ANVIL_MAX_ENTRIES)
		table_full_logged = false;
}

static long long locked_for(const struct anvil_entry *e, time_t now)
{
	return e != NULL && e->locked_until > now ?
	    (long long)(e->locked_until - now) : 0;
}

/* A failure of one key: count it, lock it out at the limit. */
static struct anvil_entry *count_failure(const char *key, time_t now)
{
	struct anvil_entry *e = entry_find(key, true, now);
	if (e == NULL)
		return NULL;
	e->failures++;
	if (cfg.smtpd_client_auth_rate_limit > 0 &&
	    e->failures >= cfg.smtpd_client_auth_rate_limit &&
	    e->locked_until <= now) {
		e->locked_until = now + (time_t)cfg.smtpd_auth_lockout_time;
		log_info("%s %s: %lld failed AUTH attempts: locked out for "
		    "%llds", key[0] == 'c' ? "client" : "account", key + 2,
		    e->failures, cfg.smtpd_auth_lockout_time);
	}
	return e;
}

static bool key_ok(const char *v)
{
	return v != NULL && v[0] != '\0' && strlen(v) < ANVIL_KEY_MAX - 2 &&
	    strpbrk(v, " \t\r\n") == NULL;
}

/*
 * Send reply r to the client and free it; false when it did not go out
 * whole. Replies are small; a client that does not read them is gone.
 */
static bool send_reply(struct anvil_client *c, struct ipc_msg *r)
{
	struct str out;
	str_init(&out, STR_NO_MAX);
	ipc_encode(r, &out);
	ipc_msg_free(r);
	ssize_t w = write(c->fd, out.data, out.len);
	bool sent = w == (ssize_t)out.len;
	str_free(&out);
	return sent;
}

static bool reply_counts(struct anvil_client *c, const struct anvil_entry *e,
    bool new_episode)
{
	struct ipc_msg r;
	ipc_msg_init(&r, "ok");
	ipc_add(&r, "new_episode", "%d", new_episode ? 1 : 0);
	ipc_add(&r, "connections", "%lld", e ? e->connections : 0);
	ipc_add(&r, "connection_rate", "%lld", e ? e->conn_events : 0);
	ipc_add(&r, "message_rate", "%lld", e ? e->msg_events : 0);
	ipc_add(&r, "recipient_rate", "%lld", e ? e->rcpt_events : 0);
	return send_reply(c, &r);
}

static void release_held(struct anvil_client *c)
{
	if (c->held != NULL && c->held->connections > 0)
		c->held->connections--;
	if (c->held != NULL &&
	    c->held->connections <= cfg.smtpd_client_connection_count_limit)
		c->held->count_over = false;
	c->held = NULL;
}

/* Past limit (> 0) for the first time in this episode? */
static bool crossed(long long value, long long limit, bool *over)
{
	if (limit <= 0 || value <= limit || *over)
		return false;
	*over = true;
	return true;
}

/*
 * The per-client limits: connect, disconnect, message, rcpt with
 * client=KEY. An smtpd process serves one session at a time, so its
 * connection to us holds at most one open session: a new connect, a
 * disconnect or the end of the connection (the process died) closes it.
 */
static bool handle_limits(struct anvil_client *c, const struct ipc_msg *m,
    const char *client, time_t now)
{
	char key[ANVIL_KEY_MAX];
	snprintf(key, sizeof(key), "r:%s", client);
	if (strcmp(m->type, "disconnect") == 0) {
		release_held(c);
		return reply_counts(c, NULL, false);
	}
	/* The same, unanswered: the worker does not wait for us at the
	 * end of its session (one round trip less), and its next request
	 * on this connection comes after it. */
	if (strcmp(m->type, "release") == 0) {
		release_held(c);
		return true;
	}
	struct anvil_entry *e = entry_find(key, true, now);
	bool new_episode = false;
	if (e != NULL) {
		if (strcmp(m->type, "connect") == 0) {
			release_held(c);
			e->connections++;
			e->conn_events++;
			c->held = e;
			new_episode = crossed(e->connections,
			    cfg.smtpd_client_connection_count_limit,
			    &e->count_over);
			new_episode |= crossed(e->conn_events,
			    cfg.smtpd_client_connection_rate_limit,
			    &e->conn_rate_over);
		} else if (strcmp(m->type, "message") == 0) {
			e->msg_events++;
			new_episode = crossed(e->msg_events,
			    cfg.smtpd_client_message_rate_limit,
			    &e->msg_rate_over);
		} else {
			e->rcpt_events++;
			new_episode = crossed(e->rcpt_events,
			    cfg.smtpd_client_recipient_rate_limit,
			    &e->rcpt_rate_over);
		}
	}
	return reply_counts(c, e, new_episode);
}

/* Addresses for greylisting: any bytes (ipc.c escapes them), bounded. */
static bool address_ok(const char *v)
{
	return v != NULL && v[0] != '\0' && strlen(v) <= 1024;
}

/*
 * greylist: client=NETWORK sender=ADDRESS rcpt=ADDRESS (sender "<>" for
 * the null sender). Answer: action=defer|pass, seconds=N (defer: still
 * to wait; the first pass: how long it waited), first_pass=0|1.
 */
static bool handle_greylist(struct anvil_client *c, const struct ipc_msg *m,
    const char *client, time_t now)
{
	const char *sender = ipc_get(m, "sender");
	const char *rcpt = ipc_get(m, "rcpt");
	if (!address_ok(sender) || !address_ok(rcpt)) {
		log_warning("malformed greylist request from an smtpd: ended");
		return false;
	}
	long long seconds = 0;
	enum anvil_greylist g = anvil_greylist_decide(client, sender, rcpt,
	    now, &seconds);
	struct ipc_msg r;
	ipc_msg_init(&r, "ok");
	ipc_add(&r, "action", "%s", g == ANVIL_GREYLIST_DEFER ? "defer" :
	    "pass");
	ipc_add(&r, "seconds", "%lld", seconds);
	ipc_add(&r, "first_pass", "%d", g == ANVIL_GREYLIST_FIRST_PASS);
	return send_reply(c, &r);
}

/*
 * auth_check, auth_fail, auth_ok: client=KEY [user=NAME]. Every reply
 * gives the failures and lock-outs of both keys.
 */
static bool handle(struct anvil_client *c, const struct ipc_msg *m)
{
	const char *client = ipc_get(m, "client");
	const char *user = ipc_get(m, "user");
	time_t now = time(NULL);
	char key[ANVIL_KEY_MAX];

	if (!key_ok(client) || (user != NULL && !key_ok(user))) {
		log_warning("malformed request from an smtpd: ended");
		return false;
	}
	if (strcmp(m->type, "connect") == 0 ||
	    strcmp(m->type, "disconnect") == 0 ||
	    strcmp(m->type, "release") == 0 ||
	    strcmp(m->type, "message") == 0 || strcmp(m->type, "rcpt") == 0)
		return handle_limits(c, m, client, now);
	if (strcmp(m->type, "greylist") == 0)
		return handle_greylist(c, m, client, now);
	struct anvil_entry *ce = NULL, *ue = NULL;
	bool fail = strcmp(m->type, "auth_fail") == 0;
	bool ok = strcmp(m->type, "auth_ok") == 0;
	if (!fail && !ok && strcmp(m->type, "auth_check") != 0) {
		log_warning("unknown request \"%.40s\" from an smtpd: ended",
		    m->type);
		return false;
	}
	snprintf(key, sizeof(key), "c:%s", client);
	ce = fail ? count_failure(key, now) : entry_find(key, false, now);
	if (user != NULL) {
		snprintf(key, sizeof(key), "u:%s", user);
		ue = fail ? count_failure(key, now) :
		    entry_find(key, false, now);
	}
	/* A login that worked clears the counts of its client and account
	 * (a lock-out stands: the check comes first). */
	if (ok) {
		if (ce != NULL && locked_for(ce, now) == 0)
			ce->failures = 0;
		if (ue != NULL && locked_for(ue, now) == 0)
			ue->failures = 0;
	}
	struct ipc_msg r;
	ipc_msg_init(&r, "ok");
	ipc_add(&r, "client_failures", "%lld", ce ? ce->failures : 0);
	ipc_add(&r, "client_locked", "%lld", locked_for(ce, now));
	ipc_add(&r, "user_failures", "%lld", ue ? ue->failures : 0);
	ipc_add(&r, "user_locked", "%lld", locked_for(ue, now));
	return send_reply(c, &r);
}

static void client_close(size_t i)
{
	release_held(&clients[i]);
	close(clients[i].fd);
	str_free(&clients[i].in);
	clients[i] = clients[--nclients];
}

static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return false;
	for (size_t i = 0; i < sizeof(allowed_uids) / sizeof(*allowed_uids);
	    i++)
		if (cred.uid == allowed_uids[i])
			return true;
	return false;
}

static void accept_clients(int listen_fd)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (nclients == ANVIL_MAX_CLIENTS || !peer_allowed(fd)) {
			close(fd);
			continue;
		}
		clients[nclients].fd = fd;
		clients[nclients].held = NULL;
		str_init(&clients[nclients].in, ANVIL_MAX_INPUT);
		nclients++;
	}
}

/* Read what client i sent and answer every whole request. */
static bool client_event(struct anvil_client *c)
{
	char buf[4096];
	ssize_t r = read(c->fd, buf, sizeof(buf));
	if (r < 0)
		return errno == EAGAIN || errno == EINTR;
	if (r == 0 || !str_append(&c->in, buf, (size_t)r))
		return false;
	for (;;) {
		struct ipc_msg m;
		size_t used;
		enum ipc_decode_result dr = ipc_decode(c->in.data, c->in.len,
		    &m, &used);
		if (dr == IPC_NEED_MORE)
			return true;
		if (dr == IPC_BAD) {
			log_warning("malformed message from an smtpd: ended");
			return false;
		}
		bool keep = handle(c, &m);
		ipc_msg_free(&m);
		str_consume(&c->in, used);
		if (!keep)
			return false;
	}
}

static void anvil_init(const char *service)
{
	gid_t gid;
	allowed_uids[0] = 0;
	allowed_uids[1] = allowed_uids[2] = getuid();
	/* After the drop we run as `user`; smtpd's worker as smtpd_user. */
	if (!priv_lookup_user(cfg.smtpd_user, &allowed_uids[2], &gid))
		allowed_uids[2] = getuid();
	/* Still outside the confinement: the file stays open for life. */
	anvil_greylist_open();
}

static void anvil_run(const char *service)
{
	static struct pollfd pfds[ANVIL_MAX_CLIENTS + 2];

	if (daemon_listener_count() < 1)
		log_fatal("no socket from master");
	int listen_fd = daemon_listener_fd(0);
	time_t last_sweep = time(NULL);

	for (;;) {
		size_t n = 0;
		pfds[n++] = (struct pollfd){ .fd = daemon_alive_fd(),
		    .events = POLLIN };
		pfds[n++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		for (size_t i = 0; i < nclients; i++)
			pfds[n++] = (struct pollfd){ .fd = clients[i].fd,
			    .events = POLLIN };
		int r = poll(pfds, n, 60000);
		if (r < 0 && errno != EINTR)
			log_fatal("poll: %m");
		if (r > 0 && pfds[0].revents)
			exit(0);	/* master is gone or wants us to stop */
		time_t now = time(NULL);
		if (now - last_sweep >= 60) {
			entries_sweep(now);
			anvil_greylist_tick(now);
			last_sweep = now;
		}
		if (r <= 0)
			continue;
		/* Clients first, from the end: client_close moves the last
		 * one into the freed slot. */
		for (size_t k = n; k > 2; k--) {
			size_t i = k - 3;
			if (pfds[k - 1].revents && !client_event(&clients[i]))
				client_close(i);
		}
		if (pfds[1].revents)
			accept_clients(listen_fd);
	}
}

int main(int argc, char **argv)
{
	static const struct daemon_service svc = {
		.program = "anvil",
		.init = anvil_init,
		.run = anvil_run,
	};
	daemon_main(argc, argv, &svc);
}
