/*
 * postern_check.c - "postern check": find before the start what would
 * break at run time, and make the queue that master would make.
 *
 *   the config (already parsed by cfg_load), daemon_directory/master,
 *   the users (user, smtpd_user, mailbox_owner), the queue directories
 *   (created or corrected as root, as "postfix check" does, so that
 *   sendmail works before the first start), the run directory, the
 *   lookup tables (a hash: table whose .db is missing, or older than
 *   its source), the TLS certificate and key (loaded as smtpd loads
 *   them), relayhost and the next hops of transport_maps (host syntax,
 *   port).
 *
 * Trusts the config and the files it names; reads the tables and keys
 * with the rights of the caller. As root it changes nothing but the
 * queue directories. Not root, on a system install whose queue belongs
 * to someone else, it stops at once with "must be run as root": nothing
 * it could say then would be right, and suggesting a chown would be
 * wrong (issue 13).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <bsd/string.h>

#include "admin.h"
#include "cfg.h"
#include "map.h"
#include "mem.h"
#include "priv.h"
#include "queue.h"
#include "sock.h"
#include "str.h"
#include "tls.h"

/* What was found: errors fail the check, warnings are only printed. */
struct check_result {
	int errors;
	int warnings;
};

static void check_error(struct check_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void check_warning(struct check_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void check_error(struct check_result *res, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("postern: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	res->errors++;
}

static void check_warning(struct check_result *res, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("postern: warning: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	res->warnings++;
}

/*
 * Not root on a queue that is not ours (a packaged install): true, and
 * the check stops. The queue_directory, or the nearest existing parent
 * of a missing one, decides.
 */
static bool check_needs_root(char *why, size_t whysize)
{
	if (priv_is_root())
		return false;
	char path[PATH_MAX];
	struct stat st;
	strlcpy(path, cfg.queue_directory, sizeof(path));
	for (;;) {
		if (stat(path, &st) == 0)
			break;
		char *slash = strrchr(path, '/');
		if (slash == NULL || slash == path)
			return false;
		*slash = '\0';
	}
	bool missing = strcmp(path, cfg.queue_directory) != 0;
	if (!missing && st.st_uid != geteuid()) {
		snprintf(why, whysize, "queue_directory %s belongs to uid %ld",
		    cfg.queue_directory, (long)st.st_uid);
		return true;
	}
	if (missing && access(path, W_OK) != 0) {
		snprintf(why, whysize, "queue_directory %s is missing and only "
		    "root can create it in %s", cfg.queue_directory, path);
		return true;
	}
	return false;
}

static void check_user(struct check_result *res, const char *key,
    const char *name, uid_t *uid, gid_t *gid)
{
	if (!priv_lookup_user(name, uid, gid))
		check_error(res, "%s: \"%s\" does not exist", key, name);
}

/*
 * The note of queue_dirs_plan() said in the past tense, once check has
 * done what it announced: "X: missing; start creates it" becomes
 * "X: missing; created".
 */
static void print_done(const struct str *note)
{
	const char *p = note->data, *end = note->data + note->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *start = memmem(p, len, "; start ", 8);
		if (start == NULL)
			printf("postern: %.*s\n", (int)len, p);
		else if (memmem(start, len - (size_t)(start - p), "creates", 7))
			printf("postern: %.*s; created\n", (int)(start - p), p);
		else
			printf("postern: %.*s; corrected\n", (int)(start - p), p);
		p += len + (nl != NULL);
	}
}

/* The queue: created or corrected as master does, when root. */
static void check_queue(struct check_result *res, bool users_ok, uid_t uid,
    gid_t gid)
{
	char err[512];
	struct str note;
	str_init(&note, STR_NO_MAX);
	if (!queue_dirs_plan(cfg.queue_directory, uid, &note, err,
	    sizeof(err))) {
		check_error(res, "queue_directory: %s", err);
	} else if (note.len > 0 && priv_is_root() && users_ok) {
		struct group *gr = getgrnam(cfg.postdrop_group);
		if (gr == NULL)
			check_error(res, "postdrop_group: \"%s\" does not exist",
			    cfg.postdrop_group);
		else if (!queue_dirs_create(cfg.queue_directory, uid, gid,
		    gr->gr_gid, err, sizeof(err)))
			check_error(res, "queue_directory: %s", err);
		else
			print_done(&note);
	} else if (note.len > 0) {
		/* Not root (a private instance): start does it. */
		printf("%.*s", (int)note.len, note.data);
	}
	str_free(&note);
}

static void check_dir(struct check_result *res, const char *what,
    const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT)
			check_error(res, "%s %s: %s", what, path,
			    strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		check_error(res, "%s %s is not a directory", what, path);
	}
}

/* ---- lookup tables ---- */

/* The keys whose values are lists of tables. */
static const struct {
	const char *key;
	const struct cfg_list *tables;
	const char *rebuild;	/* the command that builds one */
} check_table_keys[] = {
	{ "alias_maps", &cfg.alias_maps, "newaliases" },
	{ "virtual_alias_maps", &cfg.virtual_alias_maps, "postern map build" },
	{ "transport_maps", &cfg.transport_maps, "postern map build" },
	{ "mailbox_maps", &cfg.mailbox_maps, "postern map build" },
	{ "smtpd_sasl_users", &cfg.smtpd_sasl_users, "postern map build" },
	{ "smtp_sasl_password_maps", &cfg.smtp_sasl_password_maps,
	    "postern map build" },
};

/* A hash: table must have its .db, no older than its text source. */
static void check_table(struct check_result *res, const char *key,
    const char *spec, const char *rebuild)
{
	if (strncmp(spec, "hash:", 5) != 0)
		return;	/* another backend: nothing built from a source */
	const char *source = spec + 5;
	char *db = xasprintf("%s.db", source);
	struct stat sst, dst;
	bool have_source = stat(source, &sst) == 0;
	bool have_db = stat(db, &dst) == 0;
	const char *how = strcmp(rebuild, "newaliases") == 0 ? "" : source;

	if (!have_db && have_source)
		check_error(res, "%s: %s is missing: run \"%s%s%s\"", key, db,
		    rebuild, *how ? " " : "", how);
	else if (!have_db)
		check_error(res, "%s: neither %s nor %s exists", key, source,
		    db);
	else if (have_source && (sst.st_mtim.tv_sec > dst.st_mtim.tv_sec ||
	    (sst.st_mtim.tv_sec == dst.st_mtim.tv_sec &&
	    sst.st_mtim.tv_nsec > dst.st_mtim.tv_nsec)))
		check_warning(res, "%s: %s is older than %s: run \"%s%s%s\"",
		    key, db, source, rebuild, *how ? " " : "", how);
	else if (access(db, R_OK) != 0)
		check_error(res, "%s: %s: %s", key, db, strerror(errno));
	free(db);
}

/* ---- next hops ---- */

/* A host name of letters, digits, '-' and '_' labels (RFC 1123 2.1),
 * or an IP address. */
static bool check_host_syntax(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1)
		return true;
	size_t len = strlen(host);
	if (len == 0 || len > 253)
		return false;
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		char c = host[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || host[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-' && c != '_')
			return false;
		if (label == 0 && c == '-')
			return false;
		label++;
	}
	/* All digits and dots is a mistyped address, not a name. */
	return strspn(host, "0123456789.") != len;
}

/* A next hop for deliver smtp or lmtp: "[host]:port", "host:port",
 * "host", "unix:/path"; false with why. */
static bool check_nexthop(const char *text, int default_port, char *why,
    size_t whysize)
{
	struct endpoint ep;
	if (!endpoint_parse(text, default_port, &ep, why, whysize))
		return false;
	if (ep.kind == ENDPOINT_UNIX)
		return true;
	if (!check_host_syntax(ep.host)) {
		snprintf(why, whysize, "\"%s\": \"%s\" is not a host name or "
		    "address", text, ep.host);
		return false;
	}
	return true;
}

struct check_transport_walk {
	struct check_result *res;
	const char *spec;
};

/* One transport_maps entry: "transport:nexthop", as qmgr reads it. */
static void check_transport_entry(const char *key, const char *value,
    void *arg)
{
	struct check_transport_walk *w = arg;
	char why[512];
	const char *colon = strchr(value, ':');
	size_t tlen = colon ? (size_t)(colon - value) : strlen(value);
	const char *nexthop = colon ? colon + 1 : "";
	while (*nexthop == ' ')
		nexthop++;
	int port;
	if ((tlen == 4 && strncasecmp(value, "smtp", 4) == 0) ||
	    (tlen == 5 && strncasecmp(value, "relay", 5) == 0))
		port = 25;
	else if ((tlen == 4 && strncasecmp(value, "lmtp", 4) == 0) ||
	    (tlen == 5 && strncasecmp(value, "local", 5) == 0))
		port = 24;
	else if ((tlen == 5 && strncasecmp(value, "error", 5) == 0) ||
	    (tlen == 5 && strncasecmp(value, "retry", 5) == 0))
		return;
	else {
		check_error(w->res, "transport_maps: %s: %s: unknown transport "
		    "\"%.*s\"", w->spec, key, (int)tlen, value);
		return;
	}
	if (*nexthop != '\0' && !check_nexthop(nexthop, port, why,
	    sizeof(why)))
		check_error(w->res, "transport_maps: %s: %s: %s", w->spec, key,
		    why);
}

static void check_routes(struct check_result *res)
{
	char why[512];
	if (cfg.relayhost[0] != '\0' && !check_nexthop(cfg.relayhost, 25, why,
	    sizeof(why)))
		check_error(res, "relayhost: %s", why);
	for (size_t i = 0; i < cfg.transport_maps.count; i++) {
		const char *spec = cfg.transport_maps.items[i];
		char err[256];
		/* A hash: table without its .db was named by check_table(). */
		if (strncmp(spec, "hash:", 5) == 0) {
			char *db = xasprintf("%s.db", spec + 5);
			bool have_db = access(db, F_OK) == 0;
			free(db);
			if (!have_db)
				continue;
		}
		struct map *m = map_open(spec, err, sizeof(err));
		if (m == NULL) {
			check_error(res, "transport_maps: %s", err);
			continue;
		}
		struct check_transport_walk w = { res, spec };
		if (map_walk(m, check_transport_entry, &w) != MAP_FOUND)
			check_error(res, "transport_maps: %s cannot be read",
			    spec);
		map_close(m);
	}
}

/* ---- TLS ---- */

/* The certificate and key, loaded as smtpd loads them before it drops
 * root (smtpd/smtpd_tls.c): a file missing, unreadable or not matching
 * stops smtpd at start. */
static void check_tls(struct check_result *res)
{
	bool have_cert = cfg.tls_cert_file[0] != '\0';
	bool have_key = cfg.tls_key_file[0] != '\0';
	if (cfg.smtps_listen.count > 0 && (!have_cert || !have_key)) {
		check_error(res, "smtps_listen needs tls_cert_file and "
		    "tls_key_file");
		return;
	}
	if (!have_cert && !have_key)
		return;
	if ((cfg.tls_eccert_file[0] != '\0') != (cfg.tls_eckey_file[0] != '\0')) {
		check_error(res, "tls_eccert_file and tls_eckey_file go together");
		return;
	}
	if (!have_cert || !have_key) {
		check_error(res, "TLS needs both tls_cert_file and tls_key_file "
		    "(only %s is set)", have_cert ? "tls_cert_file" :
		    "tls_key_file");
		return;
	}
	const char *files[] = { cfg.tls_cert_file, cfg.tls_key_file,
		cfg.tls_eccert_file, cfg.tls_eckey_file };
	const char *keys[] = { "tls_cert_file", "tls_key_file",
		"tls_eccert_file", "tls_eckey_file" };
	for (int i = 0; i < 4; i++) {
		if (files[i][0] == '\0')
			continue;
		if (access(files[i], R_OK) != 0) {
			check_error(res, "%s: %s: %s", keys[i], files[i],
			    strerror(errno));
			return;
		}
	}
	char err[512];
	SSL_CTX *ctx = tls_server_context(cfg.tls_cert_file, cfg.tls_key_file,
	    err, sizeof(err));
	if (ctx == NULL)
		check_error(res, "%s", err);
	SSL_CTX_free(ctx);
}

int admin_check_main(int argc, char **argv)
{
	struct check_result res = { 0, 0 };
	char why[PATH_MAX + 128];

	if (check_needs_root(why, sizeof(why))) {
		fprintf(stderr, "postern: check must be run as root (%s)\n",
		    why);
		return 1;
	}
	/* The config itself was checked by cfg_load(). */
	char *path = xasprintf("%s/master", cfg.daemon_directory);
	if (access(path, X_OK) != 0)
		check_error(&res, "daemon_directory: %s: %s", path,
		    strerror(errno));
	free(path);

	uid_t uid = getuid();
	gid_t gid = getgid();
	int errors_before_users = res.errors;
	if (priv_is_root()) {
		uid_t u;
		gid_t g;
		check_user(&res, "user", cfg.user, &uid, &gid);
		check_user(&res, "smtpd_user", cfg.smtpd_user, &u, &g);
		check_user(&res, "mailbox_owner", cfg.mailbox_owner, &u, &g);
	}
	/* What start creates or corrects is done (root) or a note, not an
	 * error: INSTALL has a newcomer run check before the first start. */
	check_queue(&res, res.errors == errors_before_users, uid, gid);
	check_dir(&res, "run_directory", cfg.run_directory);
	if (cfg.smtp_listen.count + cfg.submission_listen.count +
	    cfg.smtps_listen.count == 0)
		check_warning(&res, "no SMTP listeners (smtp_listen, "
		    "submission_listen, smtps_listen)");
	for (size_t k = 0; k < sizeof(check_table_keys) /
	    sizeof(check_table_keys[0]); k++)
		for (size_t i = 0; i < check_table_keys[k].tables->count; i++)
			check_table(&res, check_table_keys[k].key,
			    check_table_keys[k].tables->items[i],
			    check_table_keys[k].rebuild);
	check_routes(&res);
	check_tls(&res);
	if (res.errors == 0)
		printf("postern: configuration %s is valid\n", cfg.config_file);
	return res.errors ? 1 : 0;
}
