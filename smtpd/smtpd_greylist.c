/*
 * smtpd_greylist.c - greylisting at RCPT (smtpd_greylist = yes): the
 * first attempt of a triplet (client network, envelope sender,
 * recipient) gets "450 4.7.1 ... Greylisted, try again in N seconds"; a
 * retry after smtpd_greylist_delay passes. A real MTA retries (RFC 5321
 * 4.5.4.1); much spamware does not. anvil keeps the triplets and decides
 * (anvil/anvil_greylist.c); this file chooses whom to ask about, and
 * replies.
 *
 * Not greylisted: clients in mynetworks, authenticated clients, clients
 * in smtpd_greylist_exceptions, and local (Unix socket) peers. The
 * network of a client is its /24 (IPv4) or /64 (IPv6), since the
 * outgoing servers of one site retry from sibling addresses.
 *
 * Trusts: anvil's answers (our own service). When anvil cannot be asked
 * the recipient passes: greylisting may delay mail, never stop it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cfg.h"
#include "ipc.h"
#include "log.h"
#include "smtpd.h"
#include "sock.h"

/* The client's network: a.b.c.0/24, or its /64 for IPv6. */
static bool client_network(const struct smtpd_session *s, char *net,
    size_t size)
{
	const struct sockaddr_storage *ss = &s->conn->peer;
	char text[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		struct in_addr a = ((const struct sockaddr_in *)ss)->sin_addr;
		a.s_addr &= htonl(0xffffff00u);
		inet_ntop(AF_INET, &a, text, sizeof(text));
		snprintf(net, size, "%s/24", text);
		return true;
	}
	if (ss->ss_family != AF_INET6)
		return false;
	struct in6_addr a = ((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(&a)) {
		a.s6_addr[15] = 0;
		struct in_addr v4;
		memcpy(&v4, a.s6_addr + 12, 4);
		inet_ntop(AF_INET, &v4, text, sizeof(text));
		snprintf(net, size, "%s/24", text);
		return true;
	}
	memset(a.s6_addr + 8, 0, 8);
	inet_ntop(AF_INET6, &a, text, sizeof(text));
	snprintf(net, size, "%s/64", text);
	return true;
}

static bool exempt(const struct smtpd_session *s)
{
	return s->conn->peer_is_unix || s->client_trusted ||
	    s->auth_user != NULL || sock_addr_in_networks(
	    (const struct sockaddr *)&s->conn->peer,
	    cfg.smtpd_greylist_exceptions.items,
	    cfg.smtpd_greylist_exceptions.count);
}

int smtpd_greylist_check(struct smtpd_session *s, const char *rcpt,
    char *text, size_t size)
{
	char net[INET6_ADDRSTRLEN + 8];
	struct ipc_msg req, reply;

	if (!cfg.smtpd_greylist || s->txn == NULL || exempt(s) ||
	    !client_network(s, net, sizeof(net)))
		return 250;
	const char *sender = s->txn->sender[0] != '\0' ? s->txn->sender : "<>";
	ipc_msg_init(&req, "greylist");
	ipc_add(&req, "client", "%s", net);
	ipc_add(&req, "sender", "%s", sender);
	ipc_add(&req, "rcpt", "%s", rcpt);
	bool asked = smtpd_anvil_call(&req, &reply);
	ipc_msg_free(&req);
	if (!asked)
		return 250;
	const char *action = ipc_get(&reply, "action");
	long long seconds = 0, first = 0;
	ipc_get_ll(&reply, "seconds", &seconds);
	ipc_get_ll(&reply, "first_pass", &first);
	bool defer = action != NULL && strcmp(action, "defer") == 0;
	ipc_msg_free(&reply);
	if (defer) {
		/* RFC 3463 4.7.1: delivery not authorized, for now. */
		snprintf(text, size, "Recipient address rejected: Greylisted, "
		    "try again in %lld seconds", seconds > 0 ? seconds : 1);
		return 450;
	}
	if (first) {
		char from[300], to[300];
		log_escape(from, sizeof(from), s->txn->sender,
		    strlen(s->txn->sender));
		log_escape(to, sizeof(to), rcpt, strlen(rcpt));
		log_info("NOQUEUE: greylist: RCPT from %s: passed after %llds; "
		    "from=<%s> to=<%s>", s->client_log, seconds, from, to);
	}
	return 250;
}
