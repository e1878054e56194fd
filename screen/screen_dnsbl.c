/*
 * screen_dnsbl.c - weighted DNS blocklists for screen, asked without
 * blocking the event loop (RFC 5782).
 *
 * screen_dnsbl_sites lists "zone", "zone=filter" or either with
 * "*weight" (Postfix's postscreen_dnsbl_sites syntax):
 * "zen.example=127.0.0.[2..11]*3, other.example*1". Every site is asked
 * about every new client at once; a site whose A records match its
 * filter adds its weight (negative weights allow) to the client's score,
 * once however many records match, and screen refuses a client whose
 * score reaches screen_dnsbl_threshold.
 *
 * The queries are plain UDP to one name server (the first of
 * dns_servers, else the first of resolv.conf), over one socket
 * connect()ed to it so that the kernel drops datagrams from anyone
 * else; an answer must carry the ID and the question we sent. A site
 * that does not answer within screen_dnsbl_timeout, or answers with an
 * error, counts as "not listed": screen fails open, as smtpd's own
 * DNSBL check does. No retransmission: a local resolver is assumed,
 * as for smtpd_dnsbl_sites.
 *
 * Trusts: nothing in an answer; parsing is libresolv's ns_parserr with
 * bounds, and mail/dns.c's filter matching.
 */
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bsd/stdlib.h>

#include "cfg.h"
#include "dns.h"
#include "log.h"
#include "mem.h"
#include "screen.h"
#include "sock.h"

#define DNSBL_TABLE 8192	/* queries out at once, at most */

struct site {
	struct dns_dnsbl list;
	int weight;
};

struct query {
	bool used;
	unsigned short id;
	unsigned slot, gen;
	size_t site;
	long long deadline;
	char *name;
	struct query *older, *newer;	/* by deadline (fixed timeout) */
};

static struct site *sites;
static size_t nsites;
static int dns_fd = -1;
static struct query table[DNSBL_TABLE];
static struct query *oldest, *newest;
static size_t outstanding;
static bool full_logged;

size_t screen_dnsbl_site_count(void)
{
	return nsites;
}

const char *screen_dnsbl_site_name(size_t site)
{
	return sites[site].list.zone;
}

int screen_dnsbl_site_weight(size_t site)
{
	return sites[site].weight;
}

int screen_dnsbl_fd(void)
{
	return dns_fd;
}

/* "zone[=filter][*weight]"; postern check has seen it already. */
static void parse_site(const char *spec, struct site *s)
{
	char err[256];
	if (!dns_dnsbl_parse_weighted(spec, &s->list, &s->weight, err,
	    sizeof(err)))
		log_fatal("screen_dnsbl_sites: %s", err);
}

/* The name server to ask: dns_servers first, else resolv.conf's. */
static bool name_server(struct sockaddr_storage *ss, socklen_t *len)
{
	if (cfg.dns_servers.count > 0) {
		struct endpoint ep;
		char err[256];
		return endpoint_parse(cfg.dns_servers.items[0],
		    NAMESERVER_PORT, &ep, err, sizeof(err)) &&
		    ep.kind == ENDPOINT_INET &&
		    sock_addr_parse(ep.host, ep.port, ss, len);
	}
	struct __res_state res;
	memset(&res, 0, sizeof(res));
	if (res_ninit(&res) != 0 || res.nscount < 1)
		return false;
	bool ok = true;
	if (res.nsaddr_list[0].sin_family == AF_INET) {
		memcpy(ss, &res.nsaddr_list[0], sizeof(struct sockaddr_in));
		*len = sizeof(struct sockaddr_in);
	} else if (res._u._ext.nsaddrs[0] != NULL) {
		memcpy(ss, res._u._ext.nsaddrs[0], sizeof(struct sockaddr_in6));
		*len = sizeof(struct sockaddr_in6);
	} else {
		ok = false;
	}
	res_nclose(&res);
	return ok;
}

void screen_dnsbl_init(void)
{
	nsites = cfg.screen_dnsbl_sites.count;
	sites = xcalloc(nsites + 1, sizeof(*sites));
	for (size_t i = 0; i < nsites; i++)
		parse_site(cfg.screen_dnsbl_sites.items[i], &sites[i]);
	if (nsites == 0)
		return;
	struct sockaddr_storage ss;
	socklen_t len;
	if (!name_server(&ss, &len))
		log_fatal("screen_dnsbl_sites: no name server to ask "
		    "(dns_servers, /etc/resolv.conf)");
	dns_fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (dns_fd < 0 || connect(dns_fd, (struct sockaddr *)&ss, len) < 0)
		log_fatal("screen: DNS socket: %m");
}

static void unlink_query(struct query *q)
{
	if (q->older)
		q->older->newer = q->newer;
	else
		oldest = q->newer;
	if (q->newer)
		q->newer->older = q->older;
	else
		newest = q->older;
	free(q->name);
	q->name = NULL;
	q->used = false;
	outstanding--;
}

static struct query *new_query(void)
{
	if (outstanding >= DNSBL_TABLE / 2)
		return NULL;	/* keep the table sparse for probing */
	for (;;) {
		unsigned short id = (unsigned short)arc4random_uniform(65536);
		/* Linear probing from the ID's bucket. */
		for (size_t k = 0; k < DNSBL_TABLE; k++) {
			struct query *q = &table[(id + k) % DNSBL_TABLE];
			if (q->used && q->id == id)
				break;	/* ID in use: draw another */
			if (!q->used) {
				memset(q, 0, sizeof(*q));
				q->used = true;
				q->id = id;
				return q;
			}
		}
	}
}

static struct query *find_query(unsigned short id)
{
	for (size_t k = 0; k < DNSBL_TABLE; k++) {
		struct query *q = &table[(id + k) % DNSBL_TABLE];
		if (!q->used)
			return NULL;
		if (q->id == id)
			return q;
	}
	return NULL;
}

/*
 * Deleting from a linear-probing table must not break the chains of
 * the entries after it: put back every entry of the cluster that
 * follows.
 */
static void remove_query(struct query *q)
{
	unlink_query(q);
	size_t i = (size_t)(q - table);
	for (size_t k = 1; k < DNSBL_TABLE; k++) {
		struct query *next = &table[(i + k) % DNSBL_TABLE];
		if (!next->used)
			break;
		struct query moved = *next;
		next->used = false;
		struct query *home = NULL;
		for (size_t j = 0; j < DNSBL_TABLE; j++) {
			struct query *c = &table[(moved.id + j) % DNSBL_TABLE];
			if (!c->used) {
				home = c;
				break;
			}
		}
		*home = moved;
		/* Its neighbours in the deadline list point at the old
		 * place. */
		if (home != next) {
			if (home->older)
				home->older->newer = home;
			else
				oldest = home;
			if (home->newer)
				home->newer->older = home;
			else
				newest = home;
		}
	}
}

size_t screen_dnsbl_start(unsigned slot, unsigned gen,
    const struct sockaddr *client)
{
	size_t sent = 0;

	for (size_t i = 0; i < nsites; i++) {
		char name[NS_MAXDNAME];
		unsigned char pkt[NS_PACKETSZ];
		if (!dns_dnsbl_name(&sites[i].list, client, name, sizeof(name)))
			continue;
		struct query *q = new_query();
		if (q == NULL) {
			if (!full_logged)
				log_warning("screen: %d DNS queries are out: "
				    "new clients skip the DNSBL check",
				    DNSBL_TABLE / 2);
			full_logged = true;
			break;
		}
		full_logged = false;
		int len = res_mkquery(ns_o_query, name, ns_c_in, ns_t_a, NULL,
		    0, NULL, pkt, sizeof(pkt));
		if (len < NS_HFIXEDSZ) {
			q->used = false;
			continue;
		}
		pkt[0] = (unsigned char)(q->id >> 8);
		pkt[1] = (unsigned char)(q->id & 0xff);
		if (send(dns_fd, pkt, (size_t)len, 0) != len) {
			log_warning("screen: DNS query for %s: %m", name);
			q->used = false;
			continue;
		}
		q->slot = slot;
		q->gen = gen;
		q->site = i;
		q->name = xstrdup(name);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		q->deadline = (long long)ts.tv_sec * 1000 + ts.tv_nsec /
		    1000000 + cfg.screen_dnsbl_timeout * 1000;
		q->older = newest;
		q->newer = NULL;
		if (newest)
			newest->newer = q;
		else
			oldest = q;
		newest = q;
		outstanding++;
		sent++;
	}
	return sent;
}

/* Does the answer's question name ours? */
static bool same_question(ns_msg *msg, const char *name)
{
	ns_rr rr;
	if (ns_msg_count(*msg, ns_s_qd) != 1 ||
	    ns_parserr(msg, ns_s_qd, 0, &rr) < 0)
		return false;
	return strcasecmp(ns_rr_name(rr), name) == 0 &&
	    ns_rr_type(rr) == ns_t_a && ns_rr_class(rr) == ns_c_in;
}

void screen_dnsbl_read(long long now_ms)
{
	unsigned char answer[4096];

	for (int k = 0; k < 256; k++) {
		ssize_t n = recv(dns_fd, answer, sizeof(answer), 0);
		if (n < 0)
			return;	/* EAGAIN, or an ICMP error: the timeout
				 * ends those queries */
		ns_msg msg;
		if (ns_initparse(answer, (int)n, &msg) < 0)
			continue;
		struct query *q = find_query((unsigned short)ns_msg_id(msg));
		if (q == NULL || !ns_msg_getflag(msg, ns_f_qr) ||
		    !same_question(&msg, q->name))
			continue;
		int rcode = ns_msg_getflag(msg, ns_f_rcode);
		bool listed = rcode == ns_r_noerror &&
		    dns_dnsbl_listed(&sites[q->site].list, answer, (int)n);
		if (rcode != ns_r_noerror && rcode != ns_r_nxdomain)
			log_debug("screen: DNSBL %s: rcode %d", q->name, rcode);
		unsigned slot = q->slot, gen = q->gen;
		size_t site = q->site;
		remove_query(q);
		screen_dnsbl_result(slot, gen, site, listed);
	}
	(void)now_ms;
}

void screen_dnsbl_expire(long long now_ms)
{
	while (oldest != NULL && oldest->deadline <= now_ms) {
		struct query *q = oldest;
		log_info("screen: DNSBL %s: no answer within %llds",
		    q->name, cfg.screen_dnsbl_timeout);
		unsigned slot = q->slot, gen = q->gen;
		size_t site = q->site;
		remove_query(q);
		screen_dnsbl_result(slot, gen, site, false);
	}
}

long long screen_dnsbl_next_deadline(void)
{
	return oldest ? oldest->deadline : 0;
}
