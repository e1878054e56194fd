/*
 * test_local_target.c - mail/local_target.c: the targets of aliases,
 * .forward and :include: files, split and classified as aliases(5)
 * and Postfix's local(8) read them (a table of texts and the targets
 * each must give), and the kind of one raw alias target as qmgr asks.
 */
#include <stdlib.h>
#include <string.h>

#include "local_target.h"
#include "unit.h"

#define A LOCAL_TARGET_ADDRESS
#define C LOCAL_TARGET_COMMAND
#define F LOCAL_TARGET_FILE
#define I LOCAL_TARGET_INCLUDE

static const struct {
	const char *text;
	bool in_file;
	size_t count;
	struct { enum local_target_kind kind; const char *value;
		bool backslash; } want[4];
} cases[] = {
	{ "bob", false, 1, { { A, "bob", false } } },
	{ "bob, carol@example.org ,\\alice", false, 3,
	    { { A, "bob", false }, { A, "carol@example.org", false },
	      { A, "alice", true } } },
	{ "<dave@example.org>", false, 1, { { A, "dave@example.org", false } } },
	{ "\"|/usr/bin/mlmmj-receive -L /var/spool/mlmmj/list/\"", false, 1,
	    { { C, "/usr/bin/mlmmj-receive -L /var/spool/mlmmj/list/",
	      false } } },
	{ "|/bin/true", false, 1, { { C, "/bin/true", false } } },
	/* A comma inside quotes is the command's; an escaped quote too. */
	{ "\"|echo a, b \\\"c\\\"\", bob", false, 2,
	    { { C, "echo a, b \"c\"", false }, { A, "bob", false } } },
	{ "/var/mail/archive, :include:/etc/mail/staff", false, 2,
	    { { F, "/var/mail/archive", false },
	      { I, "/etc/mail/staff", false } } },
	{ ":INCLUDE: /etc/list", false, 1, { { I, "/etc/list", false } } },
	{ "\"/home/x/my file\"", false, 1, { { F, "/home/x/my file", false } } },
	/* A quoted local part stays an address, quotes and all. */
	{ "\"a b\"@example.org", false, 1,
	    { { A, "\"a b\"@example.org", false } } },
	/* .forward: lines, comments, blank lines, CRLF. */
	{ "# my forward\n\\alice\r\n\n\"|procmail\"\n/tmp/x.mbox # not a comment\n",
	    true, 3, { { A, "alice", true }, { C, "procmail", false },
	      { F, "/tmp/x.mbox # not a comment", false } } },
	/* In an alias value "#" is no comment. */
	{ "#x", false, 1, { { A, "#x", false } } },
	{ "", true, 0, { { A, NULL, false } } },
	{ " , ,\n", true, 0, { { A, NULL, false } } },
	{ "# only a comment", true, 0, { { A, NULL, false } } },
};

static void test_parse(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct local_target *t;
		size_t n = local_target_parse(cases[i].text, cases[i].in_file,
		    &t);
		if (n != cases[i].count)
			printf("# case %zu\n", i);
		CHECK_INT(n, cases[i].count);
		for (size_t k = 0; k < n && k < cases[i].count; k++) {
			CHECK_INT(t[k].kind, cases[i].want[k].kind);
			CHECK_STR(t[k].value, cases[i].want[k].value);
			CHECK_INT(t[k].backslash, cases[i].want[k].backslash);
		}
		local_target_free(t, n);
	}
}

static void test_kind(void)
{
	CHECK_INT(local_target_kind("bob"), A);
	CHECK_INT(local_target_kind("\"|cmd x\""), C);
	CHECK_INT(local_target_kind("|cmd"), C);
	CHECK_INT(local_target_kind("/file"), F);
	CHECK_INT(local_target_kind("\"/my file\""), F);
	CHECK_INT(local_target_kind(":include:/x"), I);
	CHECK_INT(local_target_kind("\"a b\"@example.org"), A);
	CHECK_INT(local_target_kind("\\bob"), A);
}

int main(void)
{
	RUN(test_parse);
	RUN(test_kind);
	return unit_done();
}
