/*
 * test_cfg_hostname.c - myhostname's default (mail/cfg.c,
 * cfg_default_hostname()): the first word of /etc/mailname when it has
 * one, as Debian's postfix and exim4 take it; else the host's fully
 * qualified name, checked against what hostname(1) --fqdn prints (an
 * implementation of its own) on this machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "unit.h"

static char dir[] = "/tmp/test_cfg_hostname.XXXXXX";

static char *with_mailname(const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/mailname", dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return NULL;
	fputs(text, f);
	fclose(f);
	char *got = cfg_default_hostname(path);
	unlink(path);
	return got;
}

static void test_mailname(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "mail.example.org\n", "mail.example.org" },
		{ "mail.example.org", "mail.example.org" },
		{ "mx.example.net  # comment\nsecond\n", "mx.example.net" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = with_mailname(cases[i].text);
		CHECK_STR(got, cases[i].want);
		free(got);
	}
}

/* What hostname(1) says, or "" when it cannot say. */
static void hostname_fqdn(char *out, size_t size)
{
	out[0] = '\0';
	FILE *p = popen("hostname --fqdn 2>/dev/null", "r");
	if (p == NULL)
		return;
	if (fgets(out, (int)size, p) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	pclose(p);
}

static void test_fqdn_fallback(void)
{
	char want[256];
	char path[256];

	/* An empty or missing mailname: the FQDN. */
	snprintf(path, sizeof(path), "%s/none", dir);
	char *got = cfg_default_hostname(path);
	hostname_fqdn(want, sizeof(want));
	if (want[0] == '\0') {
		char host[256];
		gethostname(host, sizeof(host));
		printf("# hostname --fqdn says nothing here; host name %s\n",
		    host);
		CHECK(got != NULL && got[0] != '\0');
	} else {
		CHECK_STR(got, want);
	}
	free(got);
	got = with_mailname("\n");
	CHECK_STR(got, want[0] ? want : got);
	free(got);
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_mailname);
	RUN(test_fqdn_fallback);
	rmdir(dir);
	return unit_done();
}
