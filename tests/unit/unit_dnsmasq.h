/*
 * unit_dnsmasq.h - a real dnsmasq on a free loopback port for unit tests
 * that resolve through mail/dns.c (test_spf.c's check_host() cases).
 *
 *   const char *zone[] = { "--txt-record=a.test,v=spf1 -all", NULL };
 *   if (!unit_dnsmasq_start(zone, "a.test")) skip;  ... unit_dnsmasq_stop();
 *
 * It listens on 127.0.0.1:unit_dnsmasq_port (and where zone's own
 * --listen-address options say), answers only for .test and in-addr.arpa
 * (anything else there is NXDOMAIN) and becomes dns_servers of this
 * process. Killed by its PID only.
 */
#ifndef POSTERN_UNIT_DNSMASQ_H
#define POSTERN_UNIT_DNSMASQ_H

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "dns.h"

static pid_t unit_dnsmasq_pid = -1;
static int unit_dnsmasq_port;

/* A UDP and TCP port free on 127.0.0.1 right now, or -1. */
static int unit_free_port(void)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t len = sizeof(sin);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (u < 0 || bind(u, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
		    getsockname(u, (struct sockaddr *)&sin, &len) != 0) {
			if (u >= 0)
				close(u);
			continue;
		}
		int t = socket(AF_INET, SOCK_STREAM, 0);
		int ok = t >= 0 &&
		    bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0;
		int port = ntohs(sin.sin_port);
		if (t >= 0)
			close(t);
		close(u);
		if (ok)
			return port;
	}
	return -1;
}

static void unit_dnsmasq_stop(void)
{
	if (unit_dnsmasq_pid > 0) {
		kill(unit_dnsmasq_pid, SIGTERM);
		waitpid(unit_dnsmasq_pid, NULL, 0);
		unit_dnsmasq_pid = -1;
	}
	dns_close();
}

/*
 * Start dnsmasq with the records of zone (dnsmasq options, NULL ended, at
 * most 32) and wait, about five seconds at most, until it answers TXT for
 * probe. false when dnsmasq is missing or does not answer.
 */
static bool unit_dnsmasq_start(const char *const *zone, const char *probe)
{
	char port_arg[32], server[64], err[256];
	const char *argv[48];
	size_t n = 0;

	int port = unit_dnsmasq_port = unit_free_port();
	if (port < 0 || access("/usr/sbin/dnsmasq", X_OK) != 0)
		return false;
	snprintf(port_arg, sizeof(port_arg), "--port=%d", port);
	const char *fixed[] = { "dnsmasq", "--no-daemon", port_arg,
		"--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--pid-file=", "--local=/test/", "--local=/in-addr.arpa/",
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		argv[n++] = fixed[i];
	for (size_t i = 0; zone[i] != NULL && i < 32; i++)
		argv[n++] = zone[i];
	argv[n] = NULL;

	unit_dnsmasq_pid = fork();
	if (unit_dnsmasq_pid < 0)
		return false;
	if (unit_dnsmasq_pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv("/usr/sbin/dnsmasq", (char *const *)argv);
		_exit(127);
	}

	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	char *items[1] = { server };
	struct cfg_list list = { items, 1 };
	if (!dns_init(&list, err, sizeof(err)))
		return false;
	for (int i = 0; i < 100; i++) {
		struct dns_rr *rrs;
		size_t count;
		if (dns_lookup_rr(probe, ns_t_txt, &rrs, &count, err,
		    sizeof(err)) == DNS_OK) {
			dns_rr_free(rrs, count);
			return true;
		}
		if (waitpid(unit_dnsmasq_pid, NULL, WNOHANG) == unit_dnsmasq_pid) {
			unit_dnsmasq_pid = -1;
			return false;
		}
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return false;
}

#endif
