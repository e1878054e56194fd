/*
 * Unit tests for mail/cfg.c: defaults, types, $name expansion,
 * continuation lines, and errors that name the file and line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "unit.h"

static char dir[] = "/tmp/postern-cfg-XXXXXX";

static bool load_text(const char *text, char *err, size_t errsize)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/postern.conf", dir);
	FILE *fp = fopen(path, "w");
	fputs(text, fp);
	fclose(fp);
	err[0] = '\0';
	return cfg_load(dir, false, err, errsize);
}

static void test_defaults(void)
{
	char err[512];
	CHECK(load_text("# only a comment\n\n", err, sizeof(err)));
	CHECK_STR(cfg.queue_directory, "/var/spool/postern");
	CHECK_INT(cfg.message_size_limit, 50LL * 1024 * 1024);
	CHECK_INT(cfg.smtpd_timeout, 300);
	CHECK_INT(cfg.maximal_queue_lifetime, 5 * 86400);
	CHECK_INT(cfg.smtp_listen.count, 2);
	CHECK_STR(cfg.smtp_listen.items[0], "0.0.0.0:25");
	CHECK_STR(cfg.smtp_listen.items[1], "[::]:25");
	CHECK(cfg.myhostname[0] != '\0');
	CHECK_INT(cfg.mydomains.count, 2);
	CHECK_STR(cfg.mydomains.items[0], cfg.myhostname);
	CHECK_STR(cfg.mydomains.items[1], "localhost");
	CHECK_STR(cfg.lmtp_destination, "unix:/run/postern/lmtp");
}

static void test_values_and_types(void)
{
	char err[512];
	CHECK(load_text(
	    "myhostname = mx.example.org\n"
	    "mydomains = example.org,example.net   example.com\n"
	    "message_size_limit = 20m\n"
	    "mailbox_quota = 512k\n"
	    "smtpd_timeout = 5m\n"
	    "maximal_queue_lifetime = 2d\n"
	    "smtpd_recipient_limit = 50\n"
	    "run_directory = /tmp/r\n"
	    "smtpd_banner = $myhostname ESMTP ${run_directory}x $$5\n"
	    "alias_maps = hash:$config_directory/aliases\n",
	    err, sizeof(err)));
	CHECK_STR(err, "");
	CHECK_INT(cfg.mydomains.count, 3);
	CHECK_STR(cfg.mydomains.items[2], "example.com");
	CHECK_INT(cfg.message_size_limit, 20 * 1024 * 1024);
	CHECK_INT(cfg.mailbox_quota, 512 * 1024);
	CHECK_INT(cfg.smtpd_timeout, 300);
	CHECK_INT(cfg.maximal_queue_lifetime, 2 * 86400);
	CHECK_INT(cfg.smtpd_recipient_limit, 50);
	CHECK_STR(cfg.smtpd_banner, "mx.example.org ESMTP /tmp/rx $5");
	CHECK_STR(cfg.lmtp_destination, "unix:/tmp/r/lmtp");
	char want[300];
	snprintf(want, sizeof(want), "hash:%s/aliases", dir);
	CHECK_STR(cfg.alias_maps.items[0], want);
	CHECK(cfg_list_contains_nocase(&cfg.mydomains, "EXAMPLE.NET"));
	char text[256];
	CHECK(cfg_value_text("message_size_limit", text, sizeof(text)));
	CHECK_STR(text, "20m");
	CHECK(!cfg_value_text("nope", text, sizeof(text)));
}

static void test_continuation_lines(void)
{
	char err[512];
	CHECK(load_text("mynetworks = 127.0.0.0/8,\n"
	    "    192.0.2.0/24\n"
	    "\t[2001:db8::]/32\n"
	    "# a comment between\n"
	    "smtpd_timeout = 10s\n", err, sizeof(err)));
	CHECK_STR(err, "");
	CHECK_INT(cfg.mynetworks.count, 3);
	CHECK_STR(cfg.mynetworks.items[2], "[2001:db8::]/32");
	CHECK_INT(cfg.smtpd_timeout, 10);
}

struct bad_case {
	const char *text;
	const char *want;	/* substring of the error */
};

static void test_errors_name_file_and_line(void)
{
	static const struct bad_case cases[] = {
		{ "smtpd_timeout = 1s\nbogus = 1\n", "postern.conf:2: unknown parameter \"bogus\"" },
		{ "\n\nno equals sign\n", "postern.conf:3: missing '='" },
		{ "message_size_limit = 10x\n", "postern.conf:1: message_size_limit: \"10x\" is not a size" },
		{ "smtpd_timeout = soon\n", "postern.conf:1: smtpd_timeout: \"soon\" is not a duration" },
		{ "smtpd_recipient_limit = many\n", "postern.conf:1: smtpd_recipient_limit: \"many\" is not a number" },
		{ "smtpd_timeout = 1s\nsmtpd_timeout = 2s\n", "postern.conf:2: parameter \"smtpd_timeout\" already set at line 1" },
		{ "smtpd_banner = $nosuch\n", "postern.conf:1: smtpd_banner: unknown parameter \"$nosuch\"" },
		{ "myhostname = $mydomains\nmydomains = $myhostname\n", "recursive" },
		{ "  indented = 1\n", "continuation line without a parameter" },
		{ "smtp_listen = 127.0.0.1\n", "postern.conf:1: smtp_listen: \"127.0.0.1\" needs a port" },
		{ "smtp_listen = 127.0.0.1:99999\n", "bad port" },
		{ "mynetworks = 10.0.0.0/33\n", "postern.conf:1: mynetworks: \"10.0.0.0/33\" is not a network" },
		{ "\n\n\nsmtpd_processes = 0\n", "postern.conf:4: smtpd_processes: must be at least 1" },
		{ "lmtp_listen = unix:relative\n", "must be absolute" },
		{ "dns_servers = ns.example.org\n", "postern.conf:1: dns_servers: \"ns.example.org\" is not an IP address" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512];
		CHECK(!load_text(cases[i].text, err, sizeof(err)));
		if (strstr(err, cases[i].want) == NULL) {
			printf("# case %zu: error \"%s\" lacks \"%s\"\n", i, err,
			    cases[i].want);
			unit_current_failed++;
		}
	}
}

static void test_failed_load_keeps_old_values(void)
{
	char err[512];
	CHECK(load_text("smtpd_timeout = 42s\n", err, sizeof(err)));
	CHECK(!load_text("smtpd_timeout = 43s\nbogus = 1\n", err, sizeof(err)));
	CHECK_INT(cfg.smtpd_timeout, 42);
}

static void test_missing_file(void)
{
	char err[512];
	CHECK(!cfg_load("/nonexistent-postern", false, err, sizeof(err)));
	CHECK(strstr(err, "/nonexistent-postern/postern.conf") != NULL);
	CHECK(cfg_load("/nonexistent-postern", true, err, sizeof(err)));
}

static void test_parsers(void)
{
	long long v;
	bool b;
	CHECK(cfg_parse_size("0", &v) && v == 0);
	CHECK(cfg_parse_size("1g", &v) && v == 1024LL * 1024 * 1024);
	CHECK(cfg_parse_size("10MB", &v) && v == 10LL * 1024 * 1024);
	CHECK(!cfg_parse_size("-1", &v));
	CHECK(!cfg_parse_size("99999999999999999999", &v));
	CHECK(!cfg_parse_size("9999999999999g", &v));
	CHECK(cfg_parse_duration("1w", &v) && v == 7 * 86400);
	CHECK(cfg_parse_duration("90", &v) && v == 90);
	CHECK(!cfg_parse_duration("5 m", &v));
	CHECK(!cfg_parse_duration("5ms", &v));
	CHECK(cfg_parse_bool("yes", &b) && b);
	CHECK(cfg_parse_bool("No", &b) && !b);
	CHECK(!cfg_parse_bool("maybe", &b));
	struct cfg_list l = cfg_split_list(" a, b ,,c\td ");
	CHECK_INT(l.count, 4);
	CHECK_STR(l.items[3], "d");
	CHECK(l.items[4] == NULL);
	cfg_list_free(&l);
}

/*
 * A value over 64 KB on its first line is an error with its line number
 * (it was dropped silently, or reported as a repeat of the key before).
 */
static void test_value_too_long(void)
{
	static const char *const before[] = { "", "myhostname = a\n" };
	for (size_t k = 0; k < 2; k++) {
		char err[512];
		size_t big = 70 * 1024;
		char *text = malloc(big + 100);
		int n = snprintf(text, 100, "%smydomains = ", before[k]);
		memset(text + n, 'x', big);
		strcpy(text + n + big, "\nsmtpd_banner = b\n");
		CHECK(!load_text(text, err, sizeof(err)));
		CHECK(strstr(err, "value too long") != NULL);
		CHECK(strstr(err, k == 0 ? "postern.conf:1:" :
		    "postern.conf:2:") != NULL);
		if (strstr(err, "value too long") == NULL)
			printf("# err: %s\n", err);
		free(text);
	}
	/* The same text from memory: cfg_load_text names what it is given. */
	char err[512];
	CHECK(!cfg_load_text("/etc/postern", "inline", "mydomains\n", 10, err,
	    sizeof(err)));
	CHECK_STR(err, "inline:1: missing '=' in \"mydomains\"");
	CHECK(cfg_load_text("/etc/postern", "inline", "smtpd_timeout = 7s", 18,
	    err, sizeof(err)));
	CHECK_INT(cfg.smtpd_timeout, 7);
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 2;
	RUN(test_defaults);
	RUN(test_values_and_types);
	RUN(test_continuation_lines);
	RUN(test_errors_name_file_and_line);
	RUN(test_failed_load_keeps_old_values);
	RUN(test_missing_file);
	RUN(test_parsers);
	RUN(test_value_too_long);
	char path[300];
	snprintf(path, sizeof(path), "%s/postern.conf", dir);
	unlink(path);
	rmdir(dir);
	return unit_done();
}
