/*
 * test_dmarc_defer.c - the deferred Public Suffix List (mail/dmarc.c,
 * dmarc_psl_defer): nothing is read until the first organizational
 * domain is asked for, the list is read through the descriptor opened at
 * start-up (so a confined smtpd worker, which could no longer open the
 * path, still gets it), a missing file is refused at once, and an empty
 * one leaves the "last two labels" fallback. Also what the load costs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmarc.h"
#include "unit.h"

#define PSL "/usr/share/publicsuffix/public_suffix_list.dat"

/* A private copy of the list, so the test can remove it. */
static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	CHECK(in != NULL && out != NULL);
	if (in == NULL || out == NULL)
		exit(1);
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		CHECK(fwrite(buf, 1, n, out) == n);
	fclose(in);
	CHECK(fclose(out) == 0);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_defer_reads_at_first_use(void)
{
	char dir[] = "/tmp/test_dmarc_defer.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[64];
	snprintf(path, sizeof(path), "%s/psl.dat", dir);
	copy_file(PSL, path);

	char err[256];
	CHECK(dmarc_psl_defer(path, err, sizeof(err)));
	CHECK_INT(dmarc_psl_rules(), 0);	/* opened, not read */
	/* The path is gone: only the open descriptor can give the list. */
	CHECK(unlink(path) == 0);
	CHECK(rmdir(dir) == 0);

	char out[256];
	double t0 = now_ms();
	dmarc_org_domain("mail.example.co.uk", out, sizeof(out));
	double load_ms = now_ms() - t0;
	CHECK_STR(out, "example.co.uk");
	size_t rules = dmarc_psl_rules();
	CHECK(rules > 5000);
	printf("# deferred list: %zu rules read in %.2f ms of CPU\n", rules,
	    load_ms);
	/* Read once: the next lookups use what is loaded. */
	dmarc_org_domain("www.city.kawasaki.jp", out, sizeof(out));
	CHECK_STR(out, "city.kawasaki.jp");
	CHECK_INT(dmarc_psl_rules(), rules);
	CHECK(dmarc_aligned("a.example.com.au", "b.example.com.au", false));
	CHECK(!dmarc_aligned("a.com.au", "b.com.au", false));
	dmarc_psl_free();
	CHECK_INT(dmarc_psl_rules(), 0);
}

static void test_defer_missing_and_empty(void)
{
	char err[256];
	CHECK(!dmarc_psl_defer("/nonexistent/psl.dat", err, sizeof(err)));
	CHECK(strstr(err, "/nonexistent/psl.dat") != NULL);

	/* An empty list: a warning at first use, then every top-level
	 * label is a suffix. */
	CHECK(dmarc_psl_defer("/dev/null", err, sizeof(err)));
	char out[256];
	dmarc_org_domain("mail.example.co.uk", out, sizeof(out));
	CHECK_STR(out, "co.uk");
	CHECK_INT(dmarc_psl_rules(), 0);
	/* A second defer replaces a loaded list and frees it. */
	CHECK(dmarc_psl_load(PSL, err, sizeof(err)));
	CHECK(dmarc_psl_rules() > 5000);
	CHECK(dmarc_psl_defer(PSL, err, sizeof(err)));
	CHECK_INT(dmarc_psl_rules(), 0);
	dmarc_org_domain("mail.example.co.uk", out, sizeof(out));
	CHECK_STR(out, "example.co.uk");
	dmarc_psl_free();
}

int main(void)
{
	RUN(test_defer_reads_at_first_use);
	RUN(test_defer_missing_and_empty);
	return unit_done();
}
