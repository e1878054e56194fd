/*
 * postern_tls.c - "postern tls report [--dry-run] [--day DAY]": the
 * daily TLS-RPT reports (RFC 8460). For each policy domain deliver
 * recorded sessions for on DAY (UTC; default yesterday) and that
 * publishes a `_smtp._tls` TXT record with mailto: addresses, it makes
 * the JSON report (section 4), gzips it, wraps it in the
 * multipart/report of section 5.3 and sends it through postern itself:
 * the sendmail next to this program queues it in maildrop/. --dry-run
 * prints each report's headers and JSON instead, and sends nothing.
 * After a run that sent everything, DAY's store becomes DAY.sent, so
 * that a second run sends nothing twice.
 *
 * Trusts its invoking user (root or `user`, who may read the store) and
 * the store deliver wrote; DNS answers are untrusted (mail/tlsrpt.c
 * parses them; only mailto: addresses are used, https: is not spoken).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/nameser.h>
#include <bsd/string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "admin.h"
#include "cfg.h"
#include "dns.h"
#include "mem.h"
#include "mtasts.h"
#include "str.h"
#include "tlsrpt.h"

#define RUA_MAX 8
#define REPORT_MAX (8 * 1024 * 1024)

static int tls_usage(void)
{
	fprintf(stderr, "usage: postern tls report [--dry-run] "
	    "[--day YYYY-MM-DD|today|yesterday]\n");
	return 2;
}

/* The start of DAY (UTC) from its name; false if it is not one. */
static bool day_start(const char *name, time_t *start)
{
	time_t now = time(NULL);
	if (strcmp(name, "today") == 0 || strcmp(name, "yesterday") == 0) {
		*start = now - now % 86400 -
		    (strcmp(name, "yesterday") == 0 ? 86400 : 0);
		return true;
	}
	struct tm tm = { 0 };
	char *end = strptime(name, "%Y-%m-%d", &tm);
	if (end == NULL || *end != '\0')
		return false;
	*start = timegm(&tm);
	return *start != (time_t)-1;
}

/* The mailto: addresses of domain's TLSRPTv1 record (RFC 8460 3). */
static size_t rua_lookup(const char *domain, char rua[][256])
{
	char name[300], err[512];
	struct dns_rr *rrs;
	size_t n, count = 0;
	snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
	if (dns_lookup_rr(name, ns_t_txt, &rrs, &n, err, sizeof(err)) !=
	    DNS_OK)
		return 0;
	for (size_t i = 0; i < n && count == 0; i++)
		if (!tlsrpt_txt_parse((const char *)rrs[i].data, rua, RUA_MAX,
		    &count))
			count = 0;
	dns_rr_free(rrs, n);
	return count;
}

/* Base64 in lines of 76 (RFC 2045 6.8). */
static void base64_lines(struct str *out, const unsigned char *p, size_t n)
{
	unsigned char line[80];
	for (size_t pos = 0; pos < n; pos += 57) {
		size_t k = n - pos > 57 ? 57 : n - pos;
		int len = EVP_EncodeBlock(line, p + pos, (int)k);
		str_append(out, line, (size_t)len);
		str_append_cstr(out, "\r\n");
	}
}

static void random_hex(char *out, size_t bytes)
{
	unsigned char r[32];
	if (bytes > sizeof(r))
		bytes = sizeof(r);
	if (RAND_bytes(r, (int)bytes) != 1)
		for (size_t i = 0; i < bytes; i++)
			r[i] = (unsigned char)(rand() & 0xff);
	for (size_t i = 0; i < bytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* The submitter's domain (RFC 8460 5.1's "sender" of the file name). */
static const char *submitter_domain(void)
{
	const char *at = strrchr(cfg.tls_rpt_sender, '@');
	return at != NULL ? at + 1 : cfg.myhostname;
}

/* The message of RFC 8460 5.3 around the gzipped report. */
static void make_message(struct str *msg, const char *domain,
    char rua[][256], size_t nrua, const char *report_id, time_t start,
    const struct str *gz)
{
	char date[64], boundary[40], uniq[17];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	random_hex(uniq, 8);
	snprintf(boundary, sizeof(boundary), "tlsrpt-%s", uniq);

	str_appendf(msg, "From: %s\r\nTo: ", cfg.tls_rpt_sender);
	for (size_t i = 0; i < nrua; i++)
		str_appendf(msg, "%s%s", i ? ", " : "", rua[i]);
	/* RFC 8460 5.3: the submitter is named by its domain here. */
	str_appendf(msg, "\r\nSubject: Report Domain: %s Submitter: %s "
	    "Report-ID: <%s>\r\n", domain, submitter_domain(), report_id);
	str_appendf(msg, "TLS-Report-Domain: %s\r\n", domain);
	str_appendf(msg, "TLS-Report-Submitter: %s\r\n", submitter_domain());
	str_appendf(msg, "Date: %s\r\nMessage-ID: <%s>\r\n", date, report_id);
	str_appendf(msg, "MIME-Version: 1.0\r\nContent-Type: multipart/report;"
	    " report-type=\"tlsrpt\";\r\n\tboundary=\"%s\"\r\n\r\n",
	    boundary);
	str_appendf(msg, "This is a multi-part message in MIME format.\r\n"
	    "\r\n--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "This is an aggregate TLS report (RFC 8460) from %s\r\n"
	    "about mail to %s for one day.\r\n\r\n", boundary,
	    cfg.tls_rpt_organization, domain);
	/* RFC 8460 5.1: sender!policy-domain!begin!end!unique-id.json.gz */
	str_appendf(msg, "--%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\nContent-Disposition: "
	    "attachment;\r\n\tfilename=\"%s!%s!%lld!%lld!%s.json.gz\"\r\n\r\n",
	    boundary, submitter_domain(), domain, (long long)start,
	    (long long)start + 86399, uniq);
	base64_lines(msg, (const unsigned char *)gz->data, gz->len);
	str_appendf(msg, "\r\n--%s--\r\n", boundary);
}

/* Queue msg through the sendmail next to this program. */
static bool send_message(const struct str *msg, char rua[][256], size_t nrua)
{
	char self[PATH_MAX], path[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		fprintf(stderr, "postern tls: cannot find myself: %s\n",
		    strerror(errno));
		return false;
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/sendmail", self);
	int fds[2];
	if (pipe(fds) != 0)
		return false;
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return false;
	}
	if (pid == 0) {
		char *argv[8 + RUA_MAX];
		size_t a = 0;
		argv[a++] = "sendmail";
		argv[a++] = "-C";
		argv[a++] = cfg.config_directory;
		argv[a++] = "-i";
		argv[a++] = "-f";
		argv[a++] = cfg.tls_rpt_sender;
		argv[a++] = "--";
		for (size_t i = 0; i < nrua; i++)
			argv[a++] = rua[i];
		argv[a] = NULL;
		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execv(path, argv);
		fprintf(stderr, "postern tls: %s: %s\n", path, strerror(errno));
		_exit(75);
	}
	close(fds[0]);
	/* sendmail reads lines ended by LF. */
	bool ok = true;
	for (size_t i = 0; i < msg->len && ok; i++) {
		if (msg->data[i] == '\r' && i + 1 < msg->len &&
		    msg->data[i + 1] == '\n')
			continue;
		ok = write(fds[1], msg->data + i, 1) == 1;
	}
	close(fds[1]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/*
 * The store keeps a week: older days (sent or not) are removed, so that
 * it cannot grow without end when reports are not sent.
 */
#define STORE_KEEP_DAYS 7

static void store_expire(const char *dir, time_t now)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char name[16];
		time_t day;
		if (strlen(e->d_name) < 10 || e->d_name[0] == '.')
			continue;
		strlcpy(name, e->d_name, 11);
		if (!day_start(name, &day) ||
		    day > now - STORE_KEEP_DAYS * 86400)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) != 0)
			fprintf(stderr, "postern tls: cannot remove %s/%s: %s\n",
			    dir, e->d_name, strerror(errno));
	}
	closedir(d);
}

/* One domain's report: policies v[0..n). */
static bool report_domain(const struct tlsrpt_policy *v, size_t n,
    time_t start, bool dry_run)
{
	const char *domain = v[0].domain;
	char rua[RUA_MAX][256];
	size_t nrua = rua_lookup(domain, rua);
	if (nrua == 0) {
		printf("# %s: no TLSRPTv1 record with a mailto: address at "
		    "_smtp._tls.%s: no report\n", domain, domain);
		return true;
	}
	char cache[4096], id[MTASTS_ID_MAX + 1];
	char *policy_text = NULL;
	size_t plen;
	time_t fetched;
	snprintf(cache, sizeof(cache), "%s/%s", cfg.queue_directory,
	    TLS_STATE_MTASTS);
	(void)mtasts_cache_read(cache, domain, id, sizeof(id), &fetched,
	    &policy_text, &plen);

	char day[16], hex[17], report_id[400];
	struct tm tm;
	gmtime_r(&start, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	random_hex(hex, 8);
	snprintf(report_id, sizeof(report_id), "%s.%s.%s@%s", day, hex,
	    domain, cfg.myhostname);
	struct tlsrpt_meta meta = {
		.organization = cfg.tls_rpt_organization,
		.contact = cfg.tls_rpt_contact[0] ? cfg.tls_rpt_contact :
		    cfg.tls_rpt_sender,
		.report_id = report_id,
		.start = start,
		.end = start + 86399,
	};
	struct str json, gz, msg;
	str_init(&json, REPORT_MAX);
	str_init(&gz, REPORT_MAX);
	str_init(&msg, 2 * REPORT_MAX);
	tlsrpt_json(&json, &meta, v, n, policy_text);
	tlsrpt_gzip(&gz, json.data, json.len, time(NULL));
	make_message(&msg, domain, rua, nrua, report_id, start, &gz);
	bool ok = true;
	if (dry_run) {
		printf("# report for %s to", domain);
		for (size_t i = 0; i < nrua; i++)
			printf(" %s", rua[i]);
		printf(" (%zu octets of JSON, %zu gzipped, %zu of mail)\n",
		    json.len, gz.len, msg.len);
		/* The headers, then the report as it is inside the gzip. */
		const char *end = strstr(str_cstr(&msg), "\r\n\r\n");
		size_t hlen = end ? (size_t)(end - msg.data) : 0;
		for (const char *l = msg.data; l < msg.data + hlen;) {
			const char *nl = strstr(l, "\r\n");
			if (nl == NULL || nl > msg.data + hlen)
				nl = msg.data + hlen;
			printf("# %.*s\n", (int)(nl - l), l);
			l = nl + 2;
		}
		fwrite(json.data, 1, json.len, stdout);
	} else {
		ok = send_message(&msg, rua, nrua);
		printf("%s: report %s %s\n", domain, report_id, ok ? "queued" :
		    "NOT queued");
	}
	str_free(&json);
	str_free(&gz);
	str_free(&msg);
	free(policy_text);
	return ok;
}

int admin_tls_main(int argc, char **argv)
{
	bool dry_run = false;
	time_t start;
	char err[512];

	if (argc < 2 || strcmp(argv[1], "report") != 0)
		return tls_usage();
	if (!day_start("yesterday", &start))
		return tls_usage();
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0 ||
		    strcmp(argv[i], "-n") == 0)
			dry_run = true;
		else if (strcmp(argv[i], "--day") == 0 && i + 1 < argc) {
			if (!day_start(argv[++i], &start))
				return tls_usage();
		} else
			return tls_usage();
	}
	char dir[4096], path[4200];
	snprintf(dir, sizeof(dir), "%s/%s", cfg.queue_directory,
	    TLS_STATE_TLSRPT);
	tlsrpt_day_path(path, sizeof(path), dir, start);
	if (!dry_run)
		store_expire(dir, time(NULL));
	struct tlsrpt_day day;
	if (!tlsrpt_day_read(path, &day)) {
		if (errno != ENOENT) {
			fprintf(stderr, "postern tls: %s: %s\n", path,
			    strerror(errno));
			return 1;
		}
		printf("# no TLS-RPT records in %s\n", path);
		return 0;
	}
	if (!dns_init(&cfg.dns_servers, err, sizeof(err))) {
		fprintf(stderr, "postern tls: %s\n", err);
		tlsrpt_day_free(&day);
		return 1;
	}
	bool all_ok = true;
	for (size_t i = 0; i < day.count;) {
		size_t k = i;
		while (k < day.count && strcmp(day.v[k].domain,
		    day.v[i].domain) == 0)
			k++;
		if (!report_domain(&day.v[i], k - i, start, dry_run))
			all_ok = false;
		i = k;
	}
	tlsrpt_day_free(&day);
	if (!dry_run && all_ok) {
		char done[4300];
		snprintf(done, sizeof(done), "%s.sent", path);
		if (rename(path, done) != 0)
			fprintf(stderr, "postern tls: cannot rename %s: %s\n",
			    path, strerror(errno));
	}
	return all_ok ? 0 : 1;
}
