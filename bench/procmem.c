/*
 * procmem - peak memory of a whole process tree, sampled while it works.
 *
 * Every interval it walks /proc, finds the root process (a PID, or the PID
 * read from a pid file at each sample, so a restarted master is followed)
 * and all of its descendants, and sums their resident set (VmRSS, from
 * /proc/PID/statm) and, with -p, their proportional set (Pss, from
 * /proc/PID/smaps_rollup: shared pages divided among the processes that
 * share them, so a pre-forked daemon's libraries count once). The peak of
 * each sum over the run is the figure: the memory the server needed at
 * its busiest moment. Sums of VmHWM would add peaks that never coexisted.
 *
 * With -s PORT it also counts, at each sample, the server's established
 * TCP connections on local port PORT (sock_diag, IPv4 and IPv6):
 * the sessions open at that moment, so that memory per session divides
 * by the sessions that were open at the peak, not by the ones the load
 * generator meant to keep open (with a connection per message, some of
 * them are always between connections).
 *
 * Runs until SIGTERM or SIGINT, then prints one line for bench/run:
 *   peak_rss_kb=N peak_pss_kb=N procs_at_peak=N max_procs=N samples=N
 * and with -s: sessions_at_peak=N (at the RSS peak) sessions_at_pss_peak=N
 * max_sessions=N
 *
 * Trusts: /proc and the kernel's sock_diag answers. Reads only; never
 * signals the processes it watches.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define MAX_PROCS 65536

struct proc {
	int pid;
	int ppid;
};

static volatile sig_atomic_t stop_flag;
static struct proc procs[MAX_PROCS];

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* Parent PID from /proc/PID/stat (the command name may hold spaces). */
static int read_ppid(int pid)
{
	char path[64], buf[1024], *rp;
	FILE *f;
	int ppid = -1;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	if (rp == NULL || sscanf(rp + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

static long read_rss_kb(int pid)
{
	char path[64];
	FILE *f;
	long size, resident;

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long read_pss_kb(int pid)
{
	char path[64], line[256];
	FILE *f;
	long pss = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Pss: %ld kB", &pss) == 1)
			break;
	fclose(f);
	return pss;
}

static int read_pidfile(const char *path)
{
	FILE *f = fopen(path, "re");
	int pid = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%d", &pid) != 1)
		pid = -1;
	fclose(f);
	return pid;
}

/* Collects every PID with its parent; returns how many. */
static size_t scan_procs(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < MAX_PROCS) {
		int pid, ppid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = atoi(de->d_name);
		ppid = read_ppid(pid);
		if (ppid < 0)
			continue;
		procs[n].pid = pid;
		procs[n].ppid = ppid;
		n++;
	}
	closedir(d);
	return n;
}

/*
 * Established TCP connections whose local port is port, asked of the
 * kernel through sock_diag (the interface ss(8) uses) with the state
 * filter ESTABLISHED: the kernel skips the TIME_WAIT sockets, of which a
 * connection per message leaves one for 60 s, and formats nothing. Reading
 * /proc/net/tcp instead walked and printed every one of them ten times a
 * second, a cost that grew through a case on both systems.
 */
static int count_sessions_family(int family, unsigned port)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	char buf[32768];
	int fd, n = 0;
	bool done = false;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return 0;
	memset(&msg, 0, sizeof(msg));
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	msg.req.sdiag_family = (unsigned char)family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = 1U << TCP_ESTABLISHED;
	if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel,
	    sizeof(kernel)) < 0) {
		close(fd);
		return 0;
	}
	while (!done) {
		ssize_t got = recv(fd, buf, sizeof(buf), 0);

		if (got <= 0)
			break;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf;
		    NLMSG_OK(h, (size_t)got); h = NLMSG_NEXT(h, got)) {
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
				done = true;
				break;
			}
			const struct inet_diag_msg *d = NLMSG_DATA(h);

			if (ntohs(d->id.idiag_sport) == port)
				n++;
		}
	}
	close(fd);
	return n;
}

static int count_sessions(unsigned port)
{
	return count_sessions_family(AF_INET, port) +
	    count_sessions_family(AF_INET6, port);
}

/* True if pid is root or descends from it. */
static bool in_tree(int pid, int root, size_t n)
{
	for (int depth = 0; depth < 64 && pid > 1; depth++) {
		if (pid == root)
			return true;
		int parent = -1;

		for (size_t i = 0; i < n; i++)
			if (procs[i].pid == pid) {
				parent = procs[i].ppid;
				break;
			}
		pid = parent;
	}
	return pid == root;
}

int main(int argc, char **argv)
{
	const char *pidfile = NULL;
	int root = -1, opt, interval_ms = 200;
	bool want_pss = false;
	long peak_rss = 0, peak_pss = 0;
	int procs_at_peak = 0, max_procs = 0;
	int port = 0, sessions_at_peak = 0, sessions_at_pss_peak = 0, max_sessions = 0;
	unsigned long samples = 0;
	struct sigaction sa;

	while ((opt = getopt(argc, argv, "f:P:i:ps:")) != -1) {
		switch (opt) {
		case 'f':
			pidfile = optarg;
			break;
		case 'P':
			root = atoi(optarg);
			break;
		case 'i':
			interval_ms = atoi(optarg);
			break;
		case 'p':
			want_pss = true;
			break;
		case 's':
			port = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: procmem (-P pid | -f pidfile) [-i ms] [-p] [-s port]\n");
			return 2;
		}
	}
	if ((pidfile == NULL) == (root < 0) || interval_ms < 10 || port < 0 || port > 65535) {
		fprintf(stderr, "usage: procmem (-P pid | -f pidfile) [-i ms] [-p] [-s port]\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	while (!stop_flag) {
		int r = pidfile ? read_pidfile(pidfile) : root;

		if (r > 0) {
			size_t n = scan_procs();
			long rss = 0, pss = 0;
			int count = 0, sessions = port > 0 ? count_sessions((unsigned)port) : 0;

			for (size_t i = 0; i < n; i++) {
				if (!in_tree(procs[i].pid, r, n))
					continue;
				count++;
				rss += read_rss_kb(procs[i].pid);
				if (want_pss)
					pss += read_pss_kb(procs[i].pid);
			}
			if (count > 0) {
				samples++;
				if (rss > peak_rss) {
					peak_rss = rss;
					procs_at_peak = count;
					sessions_at_peak = sessions;
				}
				if (pss > peak_pss) {
					peak_pss = pss;
					sessions_at_pss_peak = sessions;
				}
				if (count > max_procs)
					max_procs = count;
				if (sessions > max_sessions)
					max_sessions = sessions;
			}
		}
		struct timespec ts = { interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	printf("peak_rss_kb=%ld peak_pss_kb=%ld procs_at_peak=%d max_procs=%d samples=%lu",
	    peak_rss, peak_pss, procs_at_peak, max_procs, samples);
	if (port > 0)
		printf(" sessions_at_peak=%d sessions_at_pss_peak=%d max_sessions=%d",
		    sessions_at_peak, sessions_at_pss_peak, max_sessions);
	printf("\n");
	return 0;
}
