/*
 * mtasts_fetch.c - the HTTPS fetch of an MTA-STS policy (RFC 8461 3.3)
 * with libcurl: https://mta-sts.DOMAIN/.well-known/mta-sts.txt, with the
 * name resolved by postern's own resolver (dns_servers) and handed to
 * libcurl by CURLOPT_RESOLVE, port 443 as the RFC fixes it.
 *
 * Trusts libcurl and OpenSSL for HTTP and TLS, and the CA store the
 * config names; the server and its body are untrusted: redirects are
 * refused (RFC 8461 3.3), the body is capped at 64 KiB, the status must
 * be 200 and the media type text/plain, connect and total time bounded.
 * Apart from the rest of mtasts.c so that only the program that fetches
 * (deliver) links libcurl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "mem.h"
#include "mtasts.h"

void mtasts_fetch_init(void)
{
	static bool done;
	if (!done)
		curl_global_init(CURL_GLOBAL_DEFAULT);
	done = true;
}

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

bool mtasts_fetch(const char *domain, const char *addrs, const char *cafile,
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
