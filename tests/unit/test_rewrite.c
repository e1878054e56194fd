/*
 * Unit tests for mail/rewrite.c: the keys and values of canonical(5) and
 * generic(5), masquerading, and the address fields of a header block
 * (display names, comments, groups, folding kept). Real Berkeley DB
 * tables in a temporary directory, a config loaded from text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "rewrite.h"
#include "unit.h"

static char tmpdir[] = "/tmp/test_rewrite.XXXXXX";

static char *table(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	char *spec = xasprintf("hash:%s", path);
	char err[512];
	FILE *fp = fopen(path, "w");
	if (fp == NULL)
		log_fatal("open %s: %m", path);
	fputs(text, fp);
	fclose(fp);
	if (!map_build(spec, MAP_SOURCE_PLAIN, err, sizeof(err)))
		log_fatal("build %s: %s", spec, err);
	free(path);
	return spec;
}

static void test_addresses(void)
{
	static const struct {
		enum rewrite_role role;
		enum rewrite_class cls;
		bool envelope;
		const char *in, *out;	/* out NULL: unchanged */
	} cases[] = {
		/* sender_canonical_maps first, then canonical_maps */
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "root@box.example.org", "admin@example.org" },
		{ REWRITE_CANONICAL, REWRITE_RECIPIENT, true, "root@box.example.org", "postmaster@example.org" },
		/* user alone matches only in a local domain */
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "alice@postern.test", "alice.liddell@example.org" },
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "alice@elsewhere.test", NULL },
		/* +ext: unmatched extension propagated */
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "alice+news@postern.test", "alice.liddell+news@example.org" },
		/* @domain with @other keeps the user part */
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "bob@old.test", "bob@new.test" },
		/* masquerade: subdomains, exceptions, !excluded */
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "carol@host.example.org", "carol@example.org" },
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "carol@example.org", NULL },
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "daemon@host.example.org", NULL },
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "carol@keep.example.org", NULL },
		/* envelope recipients are not masqueraded (Postfix default) */
		{ REWRITE_CANONICAL, REWRITE_RECIPIENT, true, "carol@host.example.org", NULL },
		{ REWRITE_CANONICAL, REWRITE_RECIPIENT, false, "carol@host.example.org", "carol@example.org" },
		{ REWRITE_CANONICAL, REWRITE_SENDER, true, "", NULL },
		/* generic */
		{ REWRITE_GENERIC, REWRITE_SENDER, true, "root@host.localdomain", "admin@example.org" },
		{ REWRITE_GENERIC, REWRITE_RECIPIENT, true, "ROOT@Host.LocalDomain", "admin@example.org" },
		{ REWRITE_GENERIC, REWRITE_SENDER, true, "someone@host.localdomain", "someone@example.org" },
		{ REWRITE_GENERIC, REWRITE_SENDER, true, "x@other.test", NULL },
	};
	char err[512];
	struct rewrite *can = rewrite_open(REWRITE_CANONICAL, err, sizeof(err));
	struct rewrite *gen = rewrite_open(REWRITE_GENERIC, err, sizeof(err));
	CHECK(can != NULL && gen != NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool failed = false;
		char *r = rewrite_address(cases[i].role == REWRITE_GENERIC ?
		    gen : can, cases[i].cls, cases[i].envelope, cases[i].in,
		    &failed);
		CHECK(!failed);
		CHECK_STR(r ? r : "(same)", cases[i].out ? cases[i].out :
		    "(same)");
		free(r);
	}
	rewrite_close(can);
	rewrite_close(gen);
}

static void test_headers(void)
{
	static const struct {
		const char *in, *out;	/* out NULL: unchanged */
	} cases[] = {
		{ "From: root@box.example.org\r\n",
		  "From: admin@example.org\r\n" },
		{ "From: \"Root, the admin\" <root@box.example.org> (cron)\r\n",
		  "From: \"Root, the admin\" <admin@example.org> (cron)\r\n" },
		{ "To: carol@host.example.org (Carol), Bob <bob@old.test>,\r\n"
		  "\tnobody@elsewhere.test\r\n",
		  "To: carol@example.org (Carol), Bob <bob@new.test>,\r\n"
		  "\tnobody@elsewhere.test\r\n" },
		{ "Cc: friends: bob@old.test, x@y.test;, z@elsewhere.test\r\n",
		  "Cc: friends: bob@new.test, x@y.test;, z@elsewhere.test\r\n" },
		{ "Subject: root@box.example.org\r\nX-Other: bob@old.test\r\n",
		  NULL },
		{ "To: undisclosed-recipients:;\r\n", NULL },
		{ "From: <>\r\n", NULL },
		{ "Reply-To: Name Only\r\n", NULL },
	};
	char err[512];
	struct rewrite *can = rewrite_open(REWRITE_CANONICAL, err, sizeof(err));
	CHECK(can != NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool failed = false;
		size_t n = 0;
		char *r = rewrite_header_block(can, cases[i].in,
		    strlen(cases[i].in), &n, &failed);
		CHECK(!failed);
		char *got = r ? xstrndup(r, n) : xstrdup("(same)");
		CHECK_STR(got, cases[i].out ? cases[i].out : "(same)");
		free(got);
		free(r);
	}
	rewrite_close(can);
	CHECK_INT((int)rewrite_header_end("A: b\r\n\r\nbody", 13), 6);
	CHECK_INT((int)rewrite_header_end("\r\nbody", 6), 0);
	CHECK_INT((int)rewrite_header_end("A: b\r\n", 6), 6);
}

int main(void)
{
	char err[512];

	if (mkdtemp(tmpdir) == NULL)
		log_fatal("mkdtemp: %m");
	char *sc = table("sender_canonical",
	    "root@box.example.org admin@example.org\n");
	char *cm = table("canonical",
	    "root@box.example.org postmaster@example.org\n"
	    "alice alice.liddell@example.org\n"
	    "@old.test @new.test\n");
	char *gm = table("generic",
	    "root@host.localdomain admin@example.org\n"
	    "@host.localdomain @example.org\n");
	char *text = xasprintf("myhostname = mx.postern.test\n"
	    "mydomains = postern.test\n"
	    "sender_canonical_maps = %s\n"
	    "canonical_maps = %s\n"
	    "masquerade_domains = !keep.example.org, example.org\n"
	    "masquerade_exceptions = daemon\n"
	    "smtp_generic_maps = %s\n", sc, cm, gm);
	if (!cfg_load_text(tmpdir, "test", text, strlen(text), err,
	    sizeof(err)))
		log_fatal("config: %s", err);
	CHECK(rewrite_configured(REWRITE_CANONICAL));
	CHECK(rewrite_configured(REWRITE_GENERIC));
	RUN(test_addresses);
	RUN(test_headers);
	char *cmd = xasprintf("rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", tmpdir);
	free(cmd);
	free(text);
	free(sc);
	free(cm);
	free(gm);
	return unit_done();
}
