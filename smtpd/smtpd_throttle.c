/*
 * smtpd_throttle.c - AUTH throttling per client and per account, with
 * the counts kept by anvil (anvil/anvil.c) so that every smtpd process
 * sees the same ones. A failed AUTH waits smtpd_auth_failure_delay times
 * the earlier failures of its client or account (whichever has more,
 * at most ten times) before its 535; at smtpd_client_auth_rate_limit
 * failures within an hour the client (an IPv6 /64) or the account is
 * locked out for smtpd_auth_lockout_time.
 *
 * The same file asks anvil for the per-client limits (connections open
 * and per minute, messages and recipients per minute).
 *
 * Trusts: anvil's replies (our own service, checked for shape). When
 * anvil cannot be reached, sessions go on unthrottled and unlimited
 * (logged once per process): a missing counter must not stop mail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bio.h"
#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "smtpd.h"
#include "sock.h"

#define ANVIL_TIMEOUT_MS 1000

static int anvil_fd = -1;
static struct bio anvil_bio;
static bool anvil_warned;

/* The client's key: its address, or its /64 for IPv6 (RFC 6177 sites). */
static void client_key(const struct smtpd_session *s, char *key,
    size_t size)
{
	const struct sockaddr_storage *ss = &s->conn->peer;
	if (ss->ss_family == AF_INET6) {
		struct in6_addr a = ((const struct sockaddr_in6 *)ss)->sin6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&a)) {
			char text[INET6_ADDRSTRLEN];
			memset(a.s6_addr + 8, 0, 8);
			inet_ntop(AF_INET6, &a, text, sizeof(text));
			snprintf(key, size, "%s/64", text);
			return;
		}
	}
	snprintf(key, size, "%s", s->client_addr);
}

static void anvil_close(void)
{
	if (anvil_fd >= 0) {
		bio_free(&anvil_bio);
		close(anvil_fd);
		anvil_fd = -1;
	}
}

/* One request, one reply; false (logged once) when anvil is not there. */
bool smtpd_anvil_call(const struct ipc_msg *req, struct ipc_msg *reply)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (anvil_fd < 0) {
			char *path = xasprintf("%s/%s", cfg.run_directory,
			    IPC_SOCKET_ANVIL);
			anvil_fd = sock_connect_unix(path, ANVIL_TIMEOUT_MS);
			free(path);
			if (anvil_fd < 0)
				break;
			bio_init(&anvil_bio, anvil_fd, ANVIL_TIMEOUT_MS);
		}
		bool sent = ipc_send(&anvil_bio, req);
		if (sent && ipc_recv(&anvil_bio, reply) == BIO_OK) {
			if (strcmp(reply->type, "ok") == 0)
				return true;
			ipc_msg_free(reply);
		}
		/* A connection kept from an anvil that restarted: again. */
		anvil_close();
	}
	if (!anvil_warned)
		log_warning("anvil is not reachable: no AUTH throttling, "
		    "no per-client limits and no greylisting");
	anvil_warned = true;
	return false;
}

/*
 * One request without a reply (anvil's "release"): sent on the
 * connection kept open, never opening one. If it cannot be sent, the
 * connection is closed, which releases the session in anvil all the
 * same (anvil.c: client_close).
 */
static void anvil_tell(const char *type, const struct smtpd_session *s)
{
	char key[80];
	struct ipc_msg req;
	if (anvil_fd < 0)
		return;
	client_key(s, key, sizeof(key));
	ipc_msg_init(&req, type);
	ipc_add(&req, "client", "%s", key);
	if (!ipc_send(&anvil_bio, &req))
		anvil_close();
	ipc_msg_free(&req);
}

static bool anvil_ask(const char *type, const struct smtpd_session *s,
    const char *user, struct ipc_msg *reply)
{
	char key[80];
	struct ipc_msg req;
	client_key(s, key, sizeof(key));
	ipc_msg_init(&req, type);
	ipc_add(&req, "client", "%s", key);
	if (user != NULL && user[0] != '\0')
		ipc_add(&req, "user", "%s", user);
	bool ok = smtpd_anvil_call(&req, reply);
	ipc_msg_free(&req);
	return ok;
}

static long long get(const struct ipc_msg *m, const char *name)
{
	long long v = 0;
	return ipc_get_ll(m, name, &v) && v > 0 ? v : 0;
}

enum smtpd_throttle smtpd_throttle_auth_check(struct smtpd_session *s,
    const char *user)
{
	struct ipc_msg r;
	if (cfg.smtpd_client_auth_rate_limit <= 0 ||
	    !anvil_ask("auth_check", s, user, &r))
		return SMTPD_THROTTLE_OK;
	enum smtpd_throttle t = get(&r, "client_locked") > 0 ?
	    SMTPD_THROTTLE_CLIENT_LOCKED : get(&r, "user_locked") > 0 ?
	    SMTPD_THROTTLE_USER_LOCKED : SMTPD_THROTTLE_OK;
	ipc_msg_free(&r);
	return t;
}

void smtpd_throttle_auth_ok(struct smtpd_session *s, const char *user)
{
	struct ipc_msg r;
	if (cfg.smtpd_client_auth_rate_limit > 0 &&
	    anvil_ask("auth_ok", s, user, &r))
		ipc_msg_free(&r);
}

void smtpd_throttle_auth_failed(struct smtpd_session *s, const char *user)
{
	struct ipc_msg r;
	if (cfg.smtpd_client_auth_rate_limit <= 0 ||
	    !anvil_ask("auth_fail", s, user, &r))
		return;
	long long before = get(&r, "client_failures");
	long long uf = get(&r, "user_failures");
	ipc_msg_free(&r);
	if (uf > before)
		before = uf;
	before = before > 0 ? before - 1 : 0;	/* the earlier ones */
	if (before > 10)
		before = 10;
	long long delay_ms = before * cfg.smtpd_auth_failure_delay * 1000;
	/* Make the guesser wait, not us: nothing to read meanwhile. */
	while (delay_ms > 0) {
		long long step = delay_ms > 1000 ? 1000 : delay_ms;
		if (poll(NULL, 0, (int)step) < 0 && errno != EINTR)
			break;
		delay_ms -= step;
	}
}

/* ---- per-client limits (anvil's "r:" keys) ---- */

/* smtpd_client_event_limit_exceptions (default $mynetworks). */
static bool limits_exempt(const struct smtpd_session *s)
{
	return s->conn->peer_is_unix || sock_addr_in_networks(
	    (const struct sockaddr *)&s->conn->peer,
	    cfg.smtpd_client_event_limit_exceptions.items,
	    cfg.smtpd_client_event_limit_exceptions.count);
}

bool smtpd_limits_wanted(const struct smtpd_session *s)
{
	return (cfg.smtpd_client_connection_count_limit > 0 ||
	    cfg.smtpd_client_connection_rate_limit > 0 ||
	    cfg.smtpd_client_message_rate_limit > 0 ||
	    cfg.smtpd_client_recipient_rate_limit > 0) && !limits_exempt(s);
}

int smtpd_limits_connect(struct smtpd_session *s, char *text, size_t size)
{
	struct ipc_msg r;
	if (!smtpd_limits_wanted(s) || !anvil_ask("connect", s, NULL, &r))
		return 250;
	s->limits_counted = true;
	long long count = get(&r, "connections");
	long long rate = get(&r, "connection_rate");
	bool new_episode = get(&r, "new_episode") > 0;
	ipc_msg_free(&r);
	long long count_limit = cfg.smtpd_client_connection_count_limit;
	long long rate_limit = cfg.smtpd_client_connection_rate_limit;
	const char *what = NULL;
	long long n = 0;
	if (count_limit > 0 && count > count_limit) {
		what = "concurrency";
		n = count;
	} else if (rate_limit > 0 && rate > rate_limit) {
		what = "rate";
		n = rate;
	}
	if (what == NULL)
		return 250;
	/* Once per episode, as anvil tells. */
	if (new_episode)
		log_warning("Connection %s limit exceeded: %lld from %s for "
		    "service %s", what, n, s->client_log, s->conn->service);
	snprintf(text, size, "%s Error: too many connections from %s",
	    cfg.myhostname, s->client_addr);
	return 421;
}

/* The session's end: told, not asked, so that the worker does not wait
 * for anvil between its 221 and its next client. */
void smtpd_limits_disconnect(struct smtpd_session *s)
{
	if (s->limits_counted)
		anvil_tell("release", s);
	s->limits_counted = false;
}

int smtpd_limits_event(struct smtpd_session *s, bool recipient, char *text,
    size_t size)
{
	long long limit = recipient ? cfg.smtpd_client_recipient_rate_limit :
	    cfg.smtpd_client_message_rate_limit;
	struct ipc_msg r;
	if (limit <= 0 || !smtpd_limits_wanted(s) ||
	    !anvil_ask(recipient ? "rcpt" : "message", s, NULL, &r))
		return 250;
	long long rate = get(&r, recipient ? "recipient_rate" :
	    "message_rate");
	bool new_episode = get(&r, "new_episode") > 0;
	ipc_msg_free(&r);
	if (rate <= limit)
		return 250;
	if (new_episode)
		log_warning("%s rate limit exceeded: %lld from %s for service "
		    "%s", recipient ? "Recipient address" : "Message delivery request",
		    rate, s->client_log, s->conn->service);
	snprintf(text, size, "Error: too many %s from %s", recipient ?
	    "recipients" : "messages", s->client_addr);
	return 450;
}
