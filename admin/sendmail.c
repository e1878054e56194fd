/*
 * sendmail.c - the traditional local mail interface: sendmail, mailq
 * (sendmail -bp) and newaliases (sendmail -bi); argv[0] decides.
 * sendmail -bs speaks SMTP on standard input and output instead
 * (sendmail_smtp.c).
 *
 * Installed setgid postdrop so that any local user can drop a message
 * into maildrop/ (mode 0730); qmgr picks it up from there. Trust: nothing
 * from the caller is trusted. The environment is ignored except the
 * config directory POSTERN_CONFIG_DIR when the process runs with no
 * elevated privilege; -C DIR from an ordinary user gives up the postdrop
 * group first (setresgid: the saved GID too), so a private config cannot
 * borrow it. Addresses are parsed strictly; the message is read with a
 * size limit, its line ends made CRLF, its hops counted
 * (sendmail_message.c), and the headers RFC 5322 3.6 requires are added
 * when missing (sendmail_queue.c), as Postfix's cleanup does for local
 * mail. Exit 0 only once the queue file is committed (fsync'd, renamed).
 *
 * This file: main, the options, the modes, and submit() that ties the
 * message to the queue.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>


#include "admin.h"
#include "cfg.h"
#include "esmtp.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "queue.h"
#include "sendmail.h"
#include "smtp_server.h"
#include "str.h"

enum sendmail_mode {
	MODE_DELIVER,		/* -bm, the default */
	MODE_PRINT_QUEUE,	/* -bp, mailq */
	MODE_ALIASES,		/* -bi, newaliases */
	MODE_FLUSH,		/* -q */
	MODE_SMTP,		/* -bs: SMTP on stdin and stdout */
};

struct sendmail_opts {
	enum sendmail_mode mode;
	const char *config_dir;
	bool config_dir_from_cmdline;
	const char *sender;	/* -f/-r, NULL: the caller's login */
	const char *fullname;	/* -F */
	bool extract;		/* -t */
	bool ignore_dots;	/* -i, -oi */
	int verbose;		/* -v */
	unsigned notify;	/* -N */
	enum queue_ret ret;	/* -R */
	const char *envid;	/* -V */
	int body;		/* -B, or -1 to detect */
	char **rcpt_args;
	int rcpt_argc;
};

static const char *progname = "sendmail";

/* Tell the caller and syslog, then exit with a sysexits code. */
void sendmail_fail(int code, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", progname, text);
	log_error("%s", text);
	exit(code);
}

/* Untrusted text, made safe for a message or a log line. */
const char *sendmail_esc(const char *s)
{
	static char buf[4][300];
	static int next;
	char *out = buf[next++ % 4];
	return log_escape(out, sizeof(buf[0]), s, strlen(s));
}

/* ---- options ---- */

static unsigned parse_notify(const char *text)
{
	unsigned bits = 0;
	char *copy = xstrdup(text);
	char *save = NULL;
	for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(w, "never") == 0)
			bits |= QUEUE_NOTIFY_NEVER;
		else if (strcasecmp(w, "success") == 0)
			bits |= QUEUE_NOTIFY_SUCCESS;
		else if (strcasecmp(w, "failure") == 0)
			bits |= QUEUE_NOTIFY_FAILURE;
		else if (strcasecmp(w, "delay") == 0)
			bits |= QUEUE_NOTIFY_DELAY;
		else
			sendmail_fail(EX_USAGE, "-N: unknown DSN notification \"%s\" "
			    "(never, or success,delay,failure)", sendmail_esc(w));
	}
	free(copy);
	/* RFC 3461 4.1: NEVER stands alone. */
	if (bits == 0 || ((bits & QUEUE_NOTIFY_NEVER) && bits != QUEUE_NOTIFY_NEVER))
		sendmail_fail(EX_USAGE, "-N: use never, or any of success,delay,failure");
	return bits;
}

static bool printable_ascii(const char *s)
{
	for (; *s; s++)
		if (*s < '!' || *s > '~')
			return false;
	return true;
}

static void parse_options(int argc, char **argv, struct sendmail_opts *o)
{
	int c;

	/* "+": options end at the first recipient, as in every sendmail. */
	opterr = 0;
	while ((c = getopt(argc, argv, "+B:b:C:F:f:Gh:iL:mN:no:O:qR:r:tUV:vX:")) != -1) {
		switch (c) {
		case 'B':
			{
				enum queue_body b;
				if (esmtp_body_from_name(optarg, &b) &&
				    b != QUEUE_BODY_BINARYMIME) {
					o->body = (int)b;
					break;
				}
			}
				sendmail_fail(EX_USAGE, "-B: body type must be 7BIT or "
				    "8BITMIME");
			break;
		case 'b':
			if (strcmp(optarg, "m") == 0)
				o->mode = MODE_DELIVER;
			else if (strcmp(optarg, "p") == 0)
				o->mode = MODE_PRINT_QUEUE;
			else if (strcmp(optarg, "i") == 0)
				o->mode = MODE_ALIASES;
			else if (strcmp(optarg, "s") == 0)
				o->mode = MODE_SMTP;
			else if (strcmp(optarg, "d") == 0)
				sendmail_fail(EX_USAGE, "-bd is not supported: the "
				    "daemons run under \"postern start\"");
			else
				sendmail_fail(EX_USAGE, "-b%s is not supported", sendmail_esc(optarg));
			break;
		case 'C':
			o->config_dir = optarg;
			o->config_dir_from_cmdline = true;
			break;
		case 'F':
			o->fullname = optarg;
			break;
		case 'f':
		case 'r':
			o->sender = optarg;
			break;
		case 'i':
			o->ignore_dots = true;
			break;
		case 'N':
			o->notify = parse_notify(optarg);
			break;
		case 'o':
			/* -oi as -i; -oem, -odb, -oQ... are sendmail 8
			 * tuning without meaning here. */
			if (strcmp(optarg, "i") == 0)
				o->ignore_dots = true;
			break;
		case 'q':
			o->mode = MODE_FLUSH;
			break;
		case 'R':
			if (strcasecmp(optarg, "full") == 0)
				o->ret = QUEUE_RET_FULL;
			else if (strcasecmp(optarg, "hdrs") == 0)
				o->ret = QUEUE_RET_HDRS;
			else
				sendmail_fail(EX_USAGE, "-R: use full or hdrs");
			break;
		case 't':
			o->extract = true;
			break;
		case 'V':
			if (optarg[0] == '\0' || strlen(optarg) > 100 ||
			    !printable_ascii(optarg))
				sendmail_fail(EX_USAGE, "-V: the envelope ID must be "
				    "1 to 100 printable ASCII characters");
			o->envid = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'G': case 'h': case 'L': case 'm': case 'n': case 'O':
		case 'U':
			break;	/* accepted for compatibility, no effect */
		case 'X':
			sendmail_fail(EX_USAGE, "-X (traffic log) is not supported");
		default:
			if (optopt && strchr("BbCFfhLNoORrVX", optopt))
				sendmail_fail(EX_USAGE, "option -%c needs a value", optopt);
			sendmail_fail(EX_USAGE, "unknown option -%c", optopt ? optopt : '?');
		}
	}
	o->rcpt_args = argv + optind;
	o->rcpt_argc = argc - optind;
}

/*
 * Give up the postdrop group for good: real, effective and saved GID all
 * become the caller's (setgid() as a non-root process leaves the saved
 * GID postdrop, from which the group could be taken back).
 */
static void drop_group(void)
{
	gid_t gid = getgid(), r, e, saved;
	if (setresgid(gid, gid, gid) < 0)
		sendmail_fail(EX_OSERR, "cannot give up the group: %s", strerror(errno));
	if (getresgid(&r, &e, &saved) < 0 || r != gid || e != gid ||
	    saved != gid)
		sendmail_fail(EX_OSERR, "the postdrop group was not given up");
}

/*
 * The config directory: -C, or POSTERN_CONFIG_DIR only when nothing is
 * elevated (the environment of a setgid program belongs to its caller).
 * An ordinary user's -C gives up the postdrop group before it is used.
 */
static void choose_config(struct sendmail_opts *o)
{
	bool elevated = getuid() != geteuid() || getgid() != getegid();
	bool root = getuid() == 0;

	if (o->config_dir_from_cmdline) {
		if (elevated && !root) {
			drop_group();
			uid_t uid = getuid();
			if (setresuid(uid, uid, uid) < 0)
				sendmail_fail(EX_OSERR, "cannot give up privileges: %s",
				    strerror(errno));
			if (geteuid() != uid)
				sendmail_fail(EX_OSERR, "privileges were not given up");
		}
		return;
	}
	const char *env = getenv("POSTERN_CONFIG_DIR");
	if (env && env[0] && (root || !elevated))
		o->config_dir = env;
	else
		o->config_dir = CFG_DEFAULT_DIRECTORY;
}

/* Descriptors 0-2 must be open, or a file we open could become stderr. */
static void sanitize_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) < 0) {
			int nfd = open("/dev/null", O_RDWR);
			if (nfd < 0)
				abort();
			if (nfd != fd) {
				/* a lower one was missing too; loop fixes it */
				close(nfd);
				fd = -1;
			}
		}
	}
}

static int submit(struct sendmail_opts *o)
{
	struct rcpt_list rcpts = { 0 };
	struct headers h;
	struct str msg;
	char err[512], id[QUEUE_ID_LEN + 1];
	char *sender, *fullname = NULL;
	uid_t uid = getuid();
	bool utf8 = false;

	/* The sender: -f, or the caller's login at this host. */
	struct passwd *pw = getpwuid(uid);
	if (o->sender) {
		if (o->sender[0] == '\0' || strcmp(o->sender, "<>") == 0) {
			sender = xstrdup("");
		} else {
			const char *why = "bad address";
			sender = sendmail_canonical_address(o->sender, &utf8,
			    &why);
			if (sender == NULL)
				sendmail_fail(EX_USAGE, "bad sender address \"%s\": %s",
				    sendmail_esc(o->sender), why);
		}
	} else {
		if (pw == NULL)
			sendmail_fail(EX_OSERR, "uid %ld has no user name; use -f",
			    (long)uid);
		sender = xasprintf("%s@%s", pw->pw_name, cfg.myhostname);
	}
	if (o->fullname)
		fullname = xstrdup(o->fullname);
	else if (!o->sender && pw && pw->pw_gecos && pw->pw_gecos[0]) {
		/* The GECOS full name is its first comma-separated field. */
		fullname = xstrndup(pw->pw_gecos, strcspn(pw->pw_gecos, ","));
	}

	size_t limit = cfg.message_size_limit > 0 ?
	    (size_t)cfg.message_size_limit : STR_NO_MAX;
	str_init(&msg, limit);
	struct smtp_message hops;
	smtp_message_init(&hops);
	sendmail_read_message(&msg, o->ignore_dots, &hops);
	if (smtp_message_too_many_hops(&hops))
		sendmail_fail(EX_DATAERR, "message has too many Received: and "
		    "Delivered-To: header fields (%u, hopcount_limit is %lld): "
		    "a mail loop? Nothing was queued", hops.received +
		    hops.delivered_to, cfg.hopcount_limit);

	for (int i = 0; i < o->rcpt_argc; i++)
		sendmail_parse_address_list(&rcpts, o->rcpt_args[i], "on the command line");
	if (o->extract) {
		sendmail_split_headers(&msg, &h);
		sendmail_extract_recipients(&msg, &h, &rcpts);
		free(h.items);
	}
	if (rcpts.count == 0)
		sendmail_fail(EX_USAGE, "no recipients: give them as arguments or use "
		    "-t to take them from the To, Cc and Bcc headers");

	struct local_submission m = {
		.sender = sender, .fullname = fullname, .rcpts = &rcpts,
		.notify = o->notify, .ret = o->ret, .envid = o->envid,
		.body = o->body, .smtputf8 = utf8,
	};
	if (!sendmail_enqueue(&m, &msg, id, sizeof(id), err, sizeof(err)))
		sendmail_fail(EX_TEMPFAIL, "cannot queue the message: %s", err);
	if (o->verbose)
		fprintf(stderr, "%s: queued as %s\n", progname, id);

	str_free(&msg);
	free(sender);
	free(fullname);
	sendmail_rcpt_list_free(&rcpts);
	return EX_OK;
}

/* ---- other modes ---- */


/* newaliases: rebuild every table of alias_maps from its source. */
static int build_aliases(int verbose)
{
	int rc = EX_OK;
	char err[1024];

	if (cfg.alias_maps.count == 0) {
		fprintf(stderr, "%s: alias_maps is empty: no alias table to "
		    "build\n", progname);
		return EX_OK;
	}
	for (size_t i = 0; i < cfg.alias_maps.count; i++) {
		const char *spec = cfg.alias_maps.items[i];
		if (!map_build(spec, MAP_SOURCE_ALIASES, err, sizeof(err))) {
			fprintf(stderr, "%s: %s\n", progname, err);
			log_error("%s", err);
			rc = EX_UNAVAILABLE;
		} else if (verbose) {
			fprintf(stderr, "%s: built %s\n", progname, spec);
		}
	}
	return rc;
}

static int print_queue(void)
{
	char *args[] = { "queue", "list", NULL };
	int rc = admin_queue_main(2, args);
	return rc == 0 ? EX_OK : EX_UNAVAILABLE;
}

static int flush_queue(void)
{
	char *args[] = { "queue", "flush", NULL };
	return admin_queue_main(2, args) == 0 ? EX_OK : EX_UNAVAILABLE;
}

int main(int argc, char **argv)
{
	struct sendmail_opts o = { .mode = MODE_DELIVER, .body = -1 };
	char err[1024];

	sanitize_fds();
	umask(077);
	if (argc > 0 && argv[0]) {
		const char *base = strrchr(argv[0], '/');
		base = base ? base + 1 : argv[0];
		if (strcmp(base, "mailq") == 0) {
			progname = "mailq";
			o.mode = MODE_PRINT_QUEUE;
		} else if (strcmp(base, "newaliases") == 0) {
			progname = "newaliases";
			o.mode = MODE_ALIASES;
		}
	}
	log_init(progname, LOG_DEST_SYSLOG);
	if (argc > 0)
		parse_options(argc, argv, &o);
	choose_config(&o);
	if (!cfg_load(o.config_dir, false, err, sizeof(err)))
		sendmail_fail(EX_CONFIG, "%s", err);

	if (o.mode != MODE_DELIVER && o.mode != MODE_SMTP)
		drop_group();
	switch (o.mode) {
	case MODE_PRINT_QUEUE:
		return print_queue();
	case MODE_FLUSH:
		return flush_queue();
	case MODE_ALIASES:
		return build_aliases(o.verbose);
	case MODE_SMTP:
		return sendmail_smtp();
	case MODE_DELIVER:
		break;
	}
	return submit(&o);
}
