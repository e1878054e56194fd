/*
 * mtasts_fetch.c - mtasts-fetch, the HTTPS fetch of an MTA-STS policy
 * (RFC 8461 3.3) with libcurl: https://mta-sts.DOMAIN/.well-known/
 * mta-sts.txt, one fetch a run, the answer on standard output (the
 * arguments and the answer: mail/mtasts.h). deliver runs it when a
 * fetch is due (deliver/deliver_mtasts_fetch.c), so that no deliver
 * process maps libcurl and the libraries it brings (gnutls, krb5, ldap,
 * ssh...), nor relocates them at its start (why and how:
 * doc/architecture.md, "MTA-STS and TLS-RPT").
 *
 * The name is resolved by deliver with postern's own resolver
 * (dns_servers) and handed to libcurl by CURLOPT_RESOLVE, port 443 as
 * the RFC fixes it. Trusts its arguments (deliver's), libcurl and
 * OpenSSL for HTTP and TLS, and the CA store named; the server and its
 * body are untrusted: redirects are refused (RFC 8461 3.3), the body is
 * capped at 64 KiB, the status must be 200 and the media type
 * text/plain, connect and total time bounded.
 *
 * Confinement: it runs with everything of deliver's (its uid, no new
 * privileges, its Landlock domain and seccomp filter, which the kernel
 * keeps across exec), and before it touches the network adds its own
 * layer: Landlock lets it read the system's files and the CA store and
 * write nothing (not the queue, not deliver's MTA-STS cache), and a
 * second seccomp filter kills it on any exec.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <bsd/string.h>
#include <curl/curl.h>

#include "bio.h"
#include "mem.h"
#include "mtasts.h"
#include "priv_confine.h"

struct body {
	char *data;
	size_t len;
	bool too_big;
};

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	if (b->len + n > MTASTS_POLICY_MAX) {
		b->too_big = true;
		return 0;	/* libcurl ends the transfer */
	}
	b->data = xrealloc(b->data, b->len + n + 1);
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* CURLE_* codes that say the server's certificate was the trouble. */
static bool pki_error(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION ||
	    rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR ||
	    rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

/*
 * GET the policy of domain from addrs; true with *body (malloc'd) and
 * *len, else false with *result_type (RFC 8460 4.3.2) and err.
 */
static bool fetch(const char *domain, const char *addrs, const char *cafile,
    const char *capath, long timeout_ms, char **body, size_t *len,
    const char **result_type, char *err, size_t errsize)
{
	char url[400], resolve[1200], curl_err[CURL_ERROR_SIZE] = "";
	struct body b = { 0 };
	bool ok = false;

	*body = NULL;
	*len = 0;
	*result_type = "sts-policy-fetch-error";
	if (!mtasts_domain_ok(domain)) {
		snprintf(err, errsize, "not a domain name");
		return false;
	}
	snprintf(url, sizeof(url), "https://mta-sts.%s/.well-known/"
	    "mta-sts.txt", domain);
	snprintf(resolve, sizeof(resolve), "mta-sts.%s:443:%s", domain, addrs);
	CURL *c = curl_easy_init();
	if (c == NULL) {
		snprintf(err, errsize, "cannot make a libcurl handle");
		return false;
	}
	struct curl_slist *res = curl_slist_append(NULL, resolve);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, res);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (cafile != NULL && cafile[0] != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO, cafile);
	if (capath != NULL && capath[0] != '\0')
		curl_easy_setopt(c, CURLOPT_CAPATH, capath);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms / 2 > 0 ?
	    timeout_ms / 2 : timeout_ms);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)MTASTS_POLICY_MAX);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "postern (MTA-STS)");

	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	char *ctype = NULL;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
	if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(err, errsize, "%s: the policy is over %d octets", url,
		    MTASTS_POLICY_MAX);
	} else if (rc != CURLE_OK) {
		if (pki_error(rc))
			*result_type = "sts-webpki-invalid";
		snprintf(err, errsize, "%s: %s", url, curl_err[0] ? curl_err :
		    curl_easy_strerror(rc));
	} else if (status >= 300 && status < 400) {
		/* RFC 8461 3.3: "HTTP 3xx redirects MUST NOT be followed". */
		snprintf(err, errsize, "%s: HTTP %ld: redirects are refused",
		    url, status);
	} else if (status != 200) {
		snprintf(err, errsize, "%s: HTTP %ld", url, status);
	} else if (ctype == NULL || strncasecmp(ctype, "text/plain", 10) != 0 ||
	    (ctype[10] != '\0' && ctype[10] != ';' && ctype[10] != ' ')) {
		/* RFC 8461 3.2: the policy is served as text/plain. */
		snprintf(err, errsize, "%s: the media type is not text/plain",
		    url);
	} else {
		*body = b.data != NULL ? b.data : xstrdup("");
		*len = b.len;
		b.data = NULL;
		ok = true;
	}
	free(b.data);
	curl_slist_free_all(res);
	curl_easy_cleanup(c);
	return ok;
}

/*
 * Landlock: read the system's files and the CA store, write nothing;
 * seccomp: no exec. On top of deliver's, never instead of it. A
 * sanitizer build keeps deliver's Landlock rules only: its runtime reads
 * the suppressions and writes reports where the test suite says.
 */
static bool confine(const char *cafile, const char *capath, char *err,
    size_t errsize)
{
	struct priv_landlock ll;
	if (!PRIV_SANITIZED && priv_landlock_begin(&ll, true, false, err,
	    errsize)) {
		const char *ro[] = { "/etc", "/usr", "/lib", "/lib32",
			"/lib64", "/proc", "/sys", "/dev/null", "/dev/urandom" };
		for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
			priv_landlock_allow(&ll, ro[i], PRIV_FS_READ);
		if (cafile[0] == '/') {
			char dir[4096];
			strlcpy(dir, cafile, sizeof(dir));
			char *slash = strrchr(dir, '/');
			slash[slash == dir ? 1 : 0] = '\0';
			priv_landlock_allow(&ll, dir, PRIV_FS_READ);
		}
		if (capath[0] == '/')
			priv_landlock_allow(&ll, capath, PRIV_FS_READ);
		if (!priv_landlock_enforce(&ll, err, errsize))
			return false;
	}
	/* No Landlock (or ABI 1): deliver's filter and uid still hold. */
	return priv_seccomp_deny(PRIV_SANITIZED, -1, err, errsize);
}

/* "fail RESULT TEXT\n", TEXT made printable and short enough. */
static int answer_fail(const char *result_type, const char *text)
{
	char line[MTASTS_FETCH_LINE_MAX];
	int n = snprintf(line, sizeof(line) - 1, "fail %s %s", result_type,
	    text);
	size_t len = n < 0 ? 0 : (size_t)n >= sizeof(line) - 1 ?
	    sizeof(line) - 2 : (size_t)n;
	for (size_t i = 0; i < len; i++)
		if (line[i] < 0x20 || line[i] > 0x7e)
			line[i] = '?';
	line[len++] = '\n';
	return fd_write_all(STDOUT_FILENO, line, len) ? 0 : 1;
}

static _Noreturn void usage(void)
{
	fprintf(stderr, "usage: %s -t TIMEOUT_MS [-f CAFILE] [-p CAPATH] "
	    "DOMAIN ADDRS\n(run by deliver; the answer: mail/mtasts.h)\n",
	    MTASTS_FETCH_PROGRAM);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cafile = "", *capath = "";
	long timeout_ms = 0;
	int c;
	char err[700];

	while ((c = getopt(argc, argv, "t:f:p:")) != -1) {
		switch (c) {
		case 't':
			timeout_ms = strtol(optarg, NULL, 10);
			break;
		case 'f':
			cafile = optarg;
			break;
		case 'p':
			capath = optarg;
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 2 || timeout_ms <= 0)
		usage();
	const char *domain = argv[optind], *addrs = argv[optind + 1];

	/* Before the confinement: OpenSSL reads its configuration. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return answer_fail("sts-policy-fetch-error",
		    "cannot start libcurl");
	if (!confine(cafile, capath, err, sizeof(err)))
		return answer_fail("sts-policy-fetch-error", err);

	char *body, head[64];
	size_t len;
	const char *result_type;
	int status;
	if (fetch(domain, addrs, cafile, capath, timeout_ms, &body, &len,
	    &result_type, err, sizeof(err))) {
		int n = snprintf(head, sizeof(head), "ok %zu\n", len);
		status = fd_write_all(STDOUT_FILENO, head, (size_t)n) &&
		    fd_write_all(STDOUT_FILENO, body, len) ? 0 : 1;
		free(body);
	} else {
		status = answer_fail(result_type, err);
	}
	curl_global_cleanup();
	return status;
}
