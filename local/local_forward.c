/*
 * local_forward.c - what a local recipient is before it is a mailbox,
 * as Postfix's local(8) and aliases(5) say: an alias of alias_maps whose
 * targets include commands ("|command"), files ("/file") or
 * ":include:/path" (qmgr expands address-only aliases itself and routes
 * these here whole), or a user whose ~/.forward says where the mail
 * goes. Each target is one of:
 *
 *   address, \user    handed back to qmgr (the result's forward=), which
 *                     adds it to the queue file as a child of the
 *                     recipient; naming the recipient itself delivers to
 *                     its own mailbox (qmgr's noexpand), as in local(8)
 *   |command          run by /bin/sh -c as the user below, with a clean
 *                     environment, the message on standard input, at most
 *                     command_time_limit; exit status per sysexits(3)
 *   /file             appended to in mbox format as the user below, with
 *                     the mailbox's locks; never through a symbolic link
 *   :include:/path    read as the user below, its targets expanded in turn
 *
 * Whose rights: a .forward's targets run as its user (root's as
 * default_privs); an alias's as the owner of the alias table's file, or
 * default_privs when root owns it; an :include: file's as its includer's
 * (the file must belong to that user or root). Never as root. Which targets a source
 * may hold: allow_mail_to_commands and allow_mail_to_files (alias,
 * forward, include).
 *
 * The recipient's outcome is the worst of its targets: one deferred
 * defers it whole (the retry runs every command again, as in Postfix),
 * else one refused bounces it with that target's reason (a command's
 * first output lines in the DSN); its addresses go to qmgr unless it is
 * deferred. Loops: Delivered-To (local_deliver.c), the nesting limit
 * here, and qmgr's ancestry of forwarded recipients.
 *
 * Trusts the config and the alias tables; takes a .forward or include
 * file only when its owner is the user (or root) and no one else may
 * write it.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#include "addr.h"
#include "cfg.h"
#include "local.h"
#include "local_target.h"
#include "local_user.h"
#include "log.h"
#include "map.h"
#include "mbox.h"
#include "mem.h"
#include "priv.h"
#include "str.h"

#define FORWARD_MAX_DEPTH 10	/* nested :include: files */
#define FORWARD_FILE_MAX (64 * 1024)
#define WHY_MAX 1024

enum fwd_source { FWD_ALIAS, FWD_FORWARD, FWD_INCLUDE };
static const char *const source_names[] = { "alias", "forward", "include" };

/* Whose rights the targets of one list run with. */
struct fwd_ctx {
	struct local_privs who;
	enum fwd_source source;
	int depth;
};

/* One recipient's expansion: the worst outcome so far. */
struct fwd_run {
	struct local_job *job;
	struct local_rcpt *r;
	const char *domain;	/* qualifies bare names */
	char status;		/* 'S', 'B', 'D'; 0 while nothing ran */
	char dsn[16];
	char text[WHY_MAX];
	size_t delivered;	/* commands and files written */
};

struct alias_table {
	struct map *map;
	uid_t owner;		/* of the table's file; 0 when unknown */
};
static struct alias_table *aliases;
static size_t naliases;
static struct fwd_ctx default_ctx;

/* ---- set-up ---- */

static bool ctx_from_passwd(struct fwd_ctx *c, const struct passwd *pw)
{
	c->who.uid = pw->pw_uid;
	c->who.gid = pw->pw_gid;
	strlcpy(c->who.user, pw->pw_name, sizeof(c->who.user));
	strlcpy(c->who.home, pw->pw_dir ? pw->pw_dir : "/",
	    sizeof(c->who.home));
	strlcpy(c->who.shell, pw->pw_shell ? pw->pw_shell : "",
	    sizeof(c->who.shell));
	return true;
}

/* The rights of uid; root's become default_privs. */
static bool ctx_for_uid(struct fwd_ctx *c, uid_t uid)
{
	if (uid == 0) {
		*c = default_ctx;
		return true;
	}
	struct passwd *pw = getpwuid(uid);
	if (pw == NULL)
		return false;
	return ctx_from_passwd(c, pw);
}

/* The file a table spec reads: "hash:/etc/aliases" is /etc/aliases.db. */
static uid_t table_owner(const char *spec)
{
	const char *colon = strchr(spec, ':');
	const char *path = colon ? colon + 1 : spec;
	char db[4096];
	struct stat st;

	snprintf(db, sizeof(db), "%s%s", path, colon &&
	    strncmp(spec, "hash:", 5) == 0 ? ".db" : "");
	if (stat(db, &st) == 0 || stat(path, &st) == 0)
		return st.st_uid;
	return 0;
}

void local_forward_init(void)
{
	struct passwd *pw = getpwnam(cfg.default_privs);
	if (pw == NULL)
		log_fatal("default_privs: no user \"%s\"", cfg.default_privs);
	if (pw->pw_uid == 0)
		log_fatal("default_privs: \"%s\" is root", cfg.default_privs);
	ctx_from_passwd(&default_ctx, pw);
	aliases = xcalloc(cfg.alias_maps.count + 1, sizeof(*aliases));
	for (size_t i = 0; i < cfg.alias_maps.count; i++) {
		char err[256];
		struct map *m = map_open(cfg.alias_maps.items[i], err,
		    sizeof(err));
		if (m == NULL)
			log_fatal("alias_maps: %s", err);
		aliases[naliases].map = m;
		aliases[naliases].owner = table_owner(cfg.alias_maps.items[i]);
		naliases++;
	}
}

/* ---- outcomes ---- */

static int severity(char status)
{
	return status == 'D' ? 3 : status == 'B' ? 2 : status == 'S' ? 1 : 0;
}

static void record(struct fwd_run *run, char status, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Keep the first reason of the worst outcome. */
static void record(struct fwd_run *run, char status, const char *dsn,
    const char *fmt, ...)
{
	if (severity(status) <= severity(run->status))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(run->text, sizeof(run->text), fmt, ap);
	va_end(ap);
	run->status = status;
	strlcpy(run->dsn, dsn, sizeof(run->dsn));
}

static bool allowed(const struct cfg_list *list, enum fwd_source source)
{
	return cfg_list_contains_nocase(list, source_names[source]);
}

/* ---- commands (local_command.c) ---- */

static void run_command(struct fwd_run *run, const struct fwd_ctx *ctx,
    const char *command)
{
	char dsn[16], text[WHY_MAX];
	char status = local_command_run(run->job, run->r, &ctx->who, command,
	    dsn, sizeof(dsn), text, sizeof(text));
	if (status == 'S')
		run->delivered++;
	record(run, status, dsn, "%s", text);
}

/* ---- files ---- */

static void deliver_file(struct fwd_run *run, const struct fwd_ctx *ctx,
    const char *path)
{
	char why[WHY_MAX], esc[300];

	log_escape(esc, sizeof(esc), path, strlen(path));
	if (path[strlen(path) - 1] == '/') {
		record(run, 'B', "5.3.0", "cannot deliver to %s: a Maildir "
		    "target is not supported", esc);
		return;
	}
	char status = local_deliver_file(run->job, run->r, ctx->who.uid, ctx->who.gid,
	    path, why, sizeof(why));
	if (status == 'S') {
		run->delivered++;
		record(run, 'S', "2.0.0", "delivered to file: %s", esc);
	} else {
		record(run, status, status == 'B' ? "5.2.0" : "4.2.0",
		    "cannot append to %s: %s", esc, why);
	}
}

/* ---- lists of targets ---- */

static void expand_text(struct fwd_run *run, const struct fwd_ctx *ctx,
    const char *text);

/*
 * Read a .forward or :include: file as ctx's user (file system ids
 * only: local is single-threaded root). Taken only when it is a
 * regular file of that user or root that no one else may write.
 * NULL with why (and *missing when there is none).
 */
static char *read_as(const struct fwd_ctx *ctx, const char *path,
    struct stat *st, bool *missing, char *why, size_t whysize)
{
	*missing = false;
	setfsgid(ctx->who.gid);
	setfsuid(ctx->who.uid);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int e = errno;
	setfsuid(0);
	setfsgid(0);
	if (fd < 0) {
		*missing = e == ENOENT;
		snprintf(why, whysize, "cannot open %.300s: %s", path,
		    strerror(e));
		return NULL;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) ||
	    (st->st_uid != ctx->who.uid && st->st_uid != 0) ||
	    (st->st_mode & 022) != 0) {
		snprintf(why, whysize, "%.300s is not a regular file of %s or "
		    "root that only its owner may write: ignored", path,
		    ctx->who.user);
		close(fd);
		return NULL;
	}
	char *buf = xmalloc(FORWARD_FILE_MAX + 1);
	ssize_t n = read(fd, buf, FORWARD_FILE_MAX);
	close(fd);
	if (n < 0) {
		snprintf(why, whysize, "cannot read %.300s: %s", path,
		    strerror(errno));
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static void include_file(struct fwd_run *run, const struct fwd_ctx *ctx,
    const char *path)
{
	char why[WHY_MAX], esc[300];
	struct stat st;
	bool missing;

	log_escape(esc, sizeof(esc), path, strlen(path));
	if (path[0] != '/') {
		record(run, 'B', "5.3.0", ":include: of a relative path: %s",
		    esc);
		return;
	}
	if (ctx->depth >= FORWARD_MAX_DEPTH) {
		record(run, 'B', "5.4.6", ":include: nested too deeply at %s "
		    "(mail loop?)", esc);
		return;
	}
	char *text = read_as(ctx, path, &st, &missing, why, sizeof(why));
	if (text == NULL) {
		/* A missing list is the admin's to fix: wait for it. */
		record(run, 'D', "4.3.0", "%s", why);
		return;
	}
	/* read_as() took it only from the includer's user or root: its
	 * targets run with the includer's rights. */
	struct fwd_ctx inner = *ctx;
	inner.source = FWD_INCLUDE;
	inner.depth = ctx->depth + 1;
	expand_text(run, &inner, text);
	free(text);
}

static void add_forward(struct fwd_run *run, const char *target)
{
	struct local_rcpt *r = run->r;
	char *full = strchr(target, '@') ? xstrdup(target) :
	    xasprintf("%s@%s", target, run->domain);
	struct addr a;
	const char *why;

	if (!addr_parse_mailbox(full, ADDR_ALLOW_UTF8 | ADDR_ALLOW_POSTMASTER,
	    &a, &why)) {
		char esc[300];
		log_escape(esc, sizeof(esc), target, strlen(target));
		log_warning("%s: forwarding target \"%s\" of <%s>: %s; ignored",
		    run->job->queue_id, esc, r->address, why);
		free(full);
		return;
	}
	addr_free(&a);
	for (size_t k = 0; k < r->nforward; k++) {
		if (strcasecmp(r->forward[k], full) == 0) {
			free(full);
			return;
		}
	}
	r->forward = xreallocarray(r->forward, r->nforward + 1,
	    sizeof(*r->forward));
	r->forward[r->nforward++] = full;
}

/* Each target of text (mail/local_target.c's grammar) in turn. */
static void expand_text(struct fwd_run *run, const struct fwd_ctx *ctx,
    const char *text)
{
	struct local_target *targets;
	size_t n = local_target_parse(text, ctx->source != FWD_ALIAS,
	    &targets);

	for (size_t i = 0; i < n; i++) {
		const char *v = targets[i].value;
		switch (targets[i].kind) {
		case LOCAL_TARGET_COMMAND:
			if (!allowed(&cfg.allow_mail_to_commands, ctx->source))
				record(run, 'B', "5.7.1", "mail to command is "
				    "restricted (allow_mail_to_commands has no "
				    "%s)", source_names[ctx->source]);
			else
				run_command(run, ctx, v);
			break;
		case LOCAL_TARGET_FILE:
			if (!allowed(&cfg.allow_mail_to_files, ctx->source))
				record(run, 'B', "5.7.1", "mail to file is "
				    "restricted (allow_mail_to_files has no %s)",
				    source_names[ctx->source]);
			else
				deliver_file(run, ctx, v);
			break;
		case LOCAL_TARGET_INCLUDE:
			include_file(run, ctx, v);
			break;
		case LOCAL_TARGET_ADDRESS:
			/* "\user" too: qmgr sees it names the recipient
			 * itself and delivers it to that mailbox. */
			add_forward(run, v);
			break;
		}
	}
	local_target_free(targets, n);
}

/* Decide r from the run. */
static void finish(struct fwd_run *run, const char *what)
{
	struct local_rcpt *r = run->r;

	if (run->status == 'D' || run->status == 'B') {
		local_rcpt_decide(r, run->status, run->dsn, "%s", run->text);
	} else if (run->status == 'S' && r->nforward == 0) {
		local_rcpt_decide(r, 'S', run->dsn, "%s", run->text);
	} else if (r->nforward > 0) {
		local_rcpt_decide(r, 'S', "2.0.0", "%s%sforwarded by %s to %zu "
		    "address%s", run->delivered ? run->text : "",
		    run->delivered ? "; " : "", what, r->nforward,
		    r->nforward == 1 ? "" : "es");
	} else {
		local_rcpt_decide(r, 'B', "5.1.1", "%s expands to no "
		    "deliverable address", what);
	}
}

/* ---- the two entries ---- */

bool local_forward_alias(struct local_job *job, struct local_rcpt *r)
{
	char *value = NULL;
	size_t table = 0;
	enum map_result mr = MAP_NOTFOUND;
	char *user = local_user_name(r->address, NULL);

	/* The local part, then without its +extension (aliases(5)). */
	const char *at = strrchr(r->address, '@');
	char *full = xstrndup(r->address, at ? (size_t)(at - r->address) :
	    strlen(r->address));
	for (char *p = full; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (table = 0; table < naliases && mr == MAP_NOTFOUND; table++) {
		mr = map_lookup(aliases[table].map, full, &value);
		if (mr == MAP_NOTFOUND && user != NULL &&
		    strcmp(user, full) != 0)
			mr = map_lookup(aliases[table].map, user, &value);
	}
	free(full);
	free(user);
	if (mr == MAP_NOTFOUND)
		return false;
	if (mr == MAP_ERROR) {
		local_rcpt_decide(r, 'D', "4.3.0", "alias table lookup failed");
		return true;
	}
	struct fwd_ctx ctx;
	if (!ctx_for_uid(&ctx, aliases[table - 1].owner)) {
		free(value);
		local_rcpt_decide(r, 'D', "4.3.0", "no user for the owner (uid "
		    "%ld) of the alias table", (long)aliases[table - 1].owner);
		return true;
	}
	ctx.source = FWD_ALIAS;
	ctx.depth = 0;
	struct fwd_run run = { .job = job, .r = r };
	run.domain = at ? at + 1 : cfg.myhostname;
	expand_text(&run, &ctx, value);
	free(value);
	finish(&run, "alias");
	return true;
}

bool local_forward_dotforward(struct local_job *job, struct local_rcpt *r,
    const struct passwd *pw)
{
	char path[1200], why[WHY_MAX];
	struct stat st;
	bool missing;
	struct fwd_ctx ctx;

	if (!priv_is_root() && pw->pw_uid != getuid())
		return false;
	ctx_from_passwd(&ctx, pw);
	if (snprintf(path, sizeof(path), "%s/.forward", pw->pw_dir) >=
	    (int)sizeof(path))
		return false;
	char *text = read_as(&ctx, path, &st, &missing, why, sizeof(why));
	if (text == NULL) {
		/* No .forward, or one we may not trust: the mailbox. */
		if (!missing)
			log_warning("%s: %s", job->queue_id, why);
		return false;
	}
	/* Root's commands and files run as default_privs, as local(8). */
	if (pw->pw_uid == 0)
		ctx = default_ctx;
	ctx.source = FWD_FORWARD;
	ctx.depth = 0;
	struct fwd_run run = { .job = job, .r = r };
	const char *at = strrchr(r->address, '@');
	run.domain = at ? at + 1 : cfg.myhostname;
	expand_text(&run, &ctx, text);
	free(text);
	if (run.status == 0 && r->nforward == 0)
		return false;	/* empty: the mailbox */
	finish(&run, ".forward");
	return true;
}
