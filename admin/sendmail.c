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
 * group first, so a private config cannot borrow it. Addresses are parsed
 * strictly; the message is read with a size limit, its line ends made
 * CRLF, and the headers RFC 5322 3.6 requires are added when missing
 * (Date, From, Message-ID), as Postfix's cleanup does for local mail.
 * Exit 0 only once the queue file is committed (fsync'd and renamed).
 */
#include <ctype.h>
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
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "addr.h"
#include "admin.h"
#include "cfg.h"
#include "esmtp.h"
#include "ipc.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "queue.h"
#include "rfc5322.h"
#include "sendmail.h"
#include "smtp_server.h"
#include "str.h"

#define SENDMAIL_READ_CHUNK 65536

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
static void fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void fail(int code, const char *fmt, ...)
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
static const char *esc(const char *s)
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
			fail(EX_USAGE, "-N: unknown DSN notification \"%s\" "
			    "(never, or success,delay,failure)", esc(w));
	}
	free(copy);
	/* RFC 3461 4.1: NEVER stands alone. */
	if (bits == 0 || ((bits & QUEUE_NOTIFY_NEVER) && bits != QUEUE_NOTIFY_NEVER))
		fail(EX_USAGE, "-N: use never, or any of success,delay,failure");
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
				fail(EX_USAGE, "-B: body type must be 7BIT or "
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
				fail(EX_USAGE, "-bd is not supported: the "
				    "daemons run under \"postern start\"");
			else
				fail(EX_USAGE, "-b%s is not supported", esc(optarg));
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
				fail(EX_USAGE, "-R: use full or hdrs");
			break;
		case 't':
			o->extract = true;
			break;
		case 'V':
			if (optarg[0] == '\0' || strlen(optarg) > 100 ||
			    !printable_ascii(optarg))
				fail(EX_USAGE, "-V: the envelope ID must be "
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
			fail(EX_USAGE, "-X (traffic log) is not supported");
		default:
			if (optopt && strchr("BbCFfhLNoORrVX", optopt))
				fail(EX_USAGE, "option -%c needs a value", optopt);
			fail(EX_USAGE, "unknown option -%c", optopt ? optopt : '?');
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
		fail(EX_OSERR, "cannot give up the group: %s", strerror(errno));
	if (getresgid(&r, &e, &saved) < 0 || r != gid || e != gid ||
	    saved != gid)
		fail(EX_OSERR, "the postdrop group was not given up");
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
				fail(EX_OSERR, "cannot give up privileges: %s",
				    strerror(errno));
			if (geteuid() != uid)
				fail(EX_OSERR, "privileges were not given up");
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

/* ---- addresses ---- */

void rcpt_list_add(struct rcpt_list *l, const char *address)
{
	for (size_t i = 0; i < l->count; i++)
		if (strcmp(l->items[i], address) == 0)
			return;		/* duplicates go once */
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->items = xreallocarray(l->items, l->cap, sizeof(*l->items));
	}
	l->items[l->count++] = xstrdup(address);
}

void rcpt_list_free(struct rcpt_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* See sendmail.h. */
char *sendmail_canonical_address(const char *text, bool *utf8,
    const char **why)
{
	struct addr a;
	char *copy = xstrdup(text);
	char *p = copy;
	size_t n = strlen(p);

	while (n > 0 && isspace((unsigned char)p[n - 1]))
		p[--n] = '\0';
	while (isspace((unsigned char)*p)) {
		p++;
		n--;
	}
	if (n >= 2 && p[0] == '<' && p[n - 1] == '>') {
		p[n - 1] = '\0';
		p++;
		/* A source route "@a,@b:user@c" is dropped (RFC 5321 C). */
		if (p[0] == '@' && strchr(p, ':'))
			p = strchr(p, ':') + 1;
	}
	char *qualified = strchr(p, '@') || strcasecmp(p, "postmaster") == 0 ?
	    xstrdup(p) : xasprintf("%s@%s", p, cfg.myhostname);
	free(copy);
	if (!addr_parse_mailbox(qualified, ADDR_ALLOW_UTF8 |
	    ADDR_ALLOW_POSTMASTER, &a, why)) {
		free(qualified);
		return NULL;
	}
	free(qualified);
	if (a.has_utf8)
		*utf8 = true;
	char *out = xstrdup(a.address);
	addr_free(&a);
	return out;
}

static void add_checked(struct rcpt_list *l, const char *text,
    const char *where)
{
	const char *why = "bad address";
	char *addr = sendmail_canonical_address(text, &l->utf8, &why);
	if (addr == NULL)
		fail(EX_DATAERR, "bad recipient address \"%s\" %s: %s",
		    esc(text), where, why);
	rcpt_list_add(l, addr);
	free(addr);
}

/*
 * An RFC 5322 3.4 address list: "Name <a@b>, c@d (comment), group: e@f;".
 * Quoted strings, comments, angle brackets and domain literals are
 * skipped over when looking for the commas, colons and semicolons that
 * separate addresses; a group's display name is dropped.
 */
static void parse_address_list(struct rcpt_list *l, const char *text,
    const char *where)
{
	struct str cur, angle;
	bool in_angle = false, seen_angle = false;
	int comment = 0;

	str_init(&cur, STR_NO_MAX);
	str_init(&angle, STR_NO_MAX);
	for (const char *p = text;; p++) {
		char c = *p;
		if (c == '\0' || (!in_angle && (c == ',' || c == ';' || c == ':'))) {
			if (c == ':') {
				/* a group's name: forget it */
				str_clear(&cur);
				seen_angle = false;
				if (*p == '\0')
					break;
				continue;
			}
			const char *item = seen_angle ? str_cstr(&angle) :
			    str_cstr(&cur);
			bool blank = true;
			for (const char *q = item; *q; q++)
				if (!isspace((unsigned char)*q))
					blank = false;
			if (!blank)
				add_checked(l, item, where);
			str_clear(&cur);
			str_clear(&angle);
			seen_angle = false;
			if (c == '\0')
				break;
			continue;
		}
		if (c == '(') {		/* comment, nested, with quoted pairs */
			comment = 1;
			while (comment > 0 && p[1]) {
				p++;
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '(')
					comment++;
				else if (*p == ')')
					comment--;
			}
			continue;
		}
		struct str *dst = in_angle ? &angle : &cur;
		if (c == '"' || c == '[') {	/* quoted string, literal */
			char close = c == '"' ? '"' : ']';
			str_append_char(dst, c);
			while (p[1] && p[1] != close) {
				p++;
				if (*p == '\\' && p[1]) {
					str_append_char(dst, *p);
					p++;
				}
				str_append_char(dst, *p);
			}
			if (p[1]) {
				p++;
				str_append_char(dst, *p);
			}
			continue;
		}
		if (c == '<' && !in_angle) {
			in_angle = true;
			seen_angle = true;
			str_clear(&angle);
			continue;
		}
		if (c == '>' && in_angle) {
			in_angle = false;
			continue;
		}
		/* Outside quotes, white space is only a separator. */
		if (!isspace((unsigned char)c))
			str_append_char(dst, c);
	}
	str_free(&cur);
	str_free(&angle);
}

/* ---- the message ---- */

/*
 * Read the message from stdin into msg with CRLF line ends (an LF alone
 * becomes CRLF; CRLF stays). Without -i a line "." alone ends it.
 */
static void read_message(struct str *msg, bool ignore_dots,
    struct smtp_message *hops)
{
	char *buf = xmalloc(SENDMAIL_READ_CHUNK);
	size_t line_start = 0;
	bool done = false;

	while (!done) {
		ssize_t n = read(STDIN_FILENO, buf, SENDMAIL_READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(EX_IOERR, "reading the message: %s", strerror(errno));
		if (n == 0)
			break;
		const char *p = buf, *end = buf + n;
		while (p < end && !done) {
			const char *lf = memchr(p, '\n', (size_t)(end - p));
			size_t seg = lf ? (size_t)(lf - p) : (size_t)(end - p);
			if (!str_append(msg, p, seg))
				goto too_big;
			p += seg;
			if (lf == NULL)
				break;
			p++;	/* the LF */
			bool had_cr = msg->len > line_start &&
			    msg->data[msg->len - 1] == '\r';
			if (!str_append(msg, had_cr ? "\n" : "\r\n", had_cr ? 1 : 2))
				goto too_big;
			size_t linelen = msg->len - line_start - 2;
			if (!ignore_dots && linelen == 1 &&
			    msg->data[line_start] == '.') {
				str_truncate(msg, line_start);
				done = true;
			} else if (!hops->in_body) {
				/* The core's header scan, line by line as the
				 * header section streams past (RFC 5321 6.3). */
				smtp_message_scan(hops, msg->data + line_start,
				    linelen, true);
			}
			line_start = msg->len;
		}
	}
	/* A last line without its line end gets one. */
	if (!done && msg->len > line_start) {
		bool had_cr = msg->data[msg->len - 1] == '\r';
		if (!str_append(msg, had_cr ? "\n" : "\r\n", had_cr ? 1 : 2))
			goto too_big;
	}
	free(buf);
	return;
too_big:
	fail(EX_DATAERR, "message is larger than message_size_limit "
	    "(%lld bytes)", cfg.message_size_limit);
}

struct header {
	size_t start, len;	/* in msg, all lines with their CRLFs */
	size_t name_len;
};

struct headers {
	struct header *items;
	size_t count;
	size_t body_start;	/* first byte of the body in msg */
	bool separator;		/* an empty line ended the headers */
};

/* "Name:" with ftext characters (RFC 5322 3.6.8), or obsolete "Name :". */
static size_t header_name_len(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && line[i] >= '!' && line[i] <= '~' && line[i] != ':')
		i++;
	size_t name = i;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return name > 0 && i < len && line[i] == ':' ? name : 0;
}

static void split_headers(const struct str *msg, struct headers *h)
{
	size_t pos = 0, cap = 0;

	memset(h, 0, sizeof(*h));
	h->body_start = msg->len;
	while (pos < msg->len) {
		const char *line = msg->data + pos;
		const char *eol = memmem(line, msg->len - pos, "\r\n", 2);
		size_t len = eol ? (size_t)(eol - line) : msg->len - pos;
		size_t next = pos + len + (eol ? 2 : 0);
		if (len == 0) {
			h->separator = true;
			h->body_start = next;
			return;
		}
		if ((line[0] == ' ' || line[0] == '\t') && h->count > 0) {
			h->items[h->count - 1].len += next - pos;
			pos = next;
			continue;
		}
		size_t name = header_name_len(line, len);
		if (name == 0) {
			h->body_start = pos;	/* body without a separator */
			return;
		}
		if (h->count == cap) {
			cap = cap ? cap * 2 : 32;
			h->items = xreallocarray(h->items, cap, sizeof(*h->items));
		}
		h->items[h->count++] = (struct header){ pos, next - pos, name };
		pos = next;
	}
}

static bool header_is(const struct str *msg, const struct header *hd,
    const char *name)
{
	return hd->name_len == strlen(name) &&
	    strncasecmp(msg->data + hd->start, name, hd->name_len) == 0;
}

/* The unfolded value of a header (caller frees). */
static char *header_value(const struct str *msg, const struct header *hd)
{
	const char *p = memchr(msg->data + hd->start, ':', hd->len);
	const char *end = msg->data + hd->start + hd->len;
	struct str v;
	str_init(&v, STR_NO_MAX);
	for (p++; p < end; p++)
		if (*p != '\r' && *p != '\n')
			str_append_char(&v, *p);
	return str_steal(&v);
}

/* Headers a submission must not carry on (Postfix's message_drop_headers):
 * Bcc would show the blind copies to everyone; Return-Path is added at
 * final delivery (RFC 5321 4.4). */
static bool header_dropped(const struct str *msg, const struct header *hd)
{
	static const char *const names[] = { "Bcc", "Resent-Bcc",
	    "Return-Path", "Content-Length" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (header_is(msg, hd, names[i]))
			return true;
	return false;
}

/* -t: To, Cc, Bcc; or Resent-To, -Cc, -Bcc when the message is resent. */
static void extract_recipients(const struct str *msg, const struct headers *h,
    struct rcpt_list *l)
{
	static const char *const plain[] = { "To", "Cc", "Bcc" };
	static const char *const resent[] = { "Resent-To", "Resent-Cc",
	    "Resent-Bcc" };
	const char *const *names = plain;

	for (size_t i = 0; i < h->count; i++)
		for (int k = 0; k < 3; k++)
			if (header_is(msg, &h->items[i], resent[k]))
				names = resent;
	for (size_t i = 0; i < h->count; i++) {
		for (int k = 0; k < 3; k++) {
			if (!header_is(msg, &h->items[i], names[k]))
				continue;
			char *v = header_value(msg, &h->items[i]);
			char where[32];
			snprintf(where, sizeof(where), "in %s:", names[k]);
			parse_address_list(l, v, where);
			free(v);
		}
	}
}

/* A display name as an RFC 5322 phrase: atoms as they are, else quoted. */
static void append_phrase(struct str *out, const char *name)
{
	bool plain = true;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(" !#$%&'*+-/=?^_`{|}~",
		    *p))
			plain = false;
	if (plain) {
		str_append_cstr(out, name);
		return;
	}
	str_append_char(out, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (*p == '"' || *p == '\\')
			str_append_char(out, '\\');
		str_append_char(out, *p);
	}
	str_append_char(out, '"');
}

static bool has_8bit(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] & 0x80)
			return true;
	return false;
}

/* ---- submission ---- */

/* See sendmail.h. */
bool sendmail_enqueue(const struct local_submission *m, const struct str *msg,
    char *id, size_t idsize, char *err, size_t errsize)
{
	struct queue_envelope env;
	struct headers h;
	struct str head;
	char date[64];
	uid_t uid = getuid();

	split_headers(msg, &h);
	queue_envelope_init(&env);
	env.sender = xstrdup(m->sender);
	env.ret = m->ret;
	env.envid = m->envid ? xstrdup(m->envid) : NULL;
	env.body = m->body >= 0 ? (enum queue_body)m->body :
	    has_8bit(msg->data, msg->len) ? QUEUE_BODY_8BITMIME :
	    QUEUE_BODY_7BIT;
	/* UTF-8 in the envelope or the headers needs SMTPUTF8 (RFC 6531,
	 * 6532); Postfix autodetects it the same way for sendmail. */
	env.smtputf8 = m->smtputf8 || m->rcpts->utf8 ||
	    has_8bit(msg->data, h.body_start);
	queue_envelope_set_attr(&env, "origin", "local");
	char uidtext[32];
	snprintf(uidtext, sizeof(uidtext), "%ld", (long)uid);
	queue_envelope_set_attr(&env, "uid", uidtext);
	for (size_t i = 0; i < m->rcpts->count; i++)
		queue_envelope_add_rcpt(&env, m->rcpts->items[i], m->notify,
		    NULL);

	struct queue_writer *w = queue_writer_open(cfg.queue_directory,
	    QUEUE_MAILDROP, &env, err, errsize);
	if (w == NULL) {
		free(h.items);
		queue_envelope_free(&env);
		return false;
	}

	/* Our trace header first, then the caller's headers, then those
	 * RFC 5322 3.6 requires and the message lacks. */
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	rfc5322_date(now, date, sizeof(date));
	str_init(&head, STR_NO_MAX);
	str_append_cstr(&head, "Received: ");
	if (m->helo != NULL)
		str_appendf(&head, "from %s ", esc(m->helo));
	str_appendf(&head, "by %s (postern, from userid %ld)\r\n\t",
	    cfg.myhostname, (long)uid);
	if (m->protocol != NULL)
		str_appendf(&head, "with %s ", m->protocol);
	str_appendf(&head, "id %s; %s\r\n", env.id, date);
	bool have_from = false, have_date = false, have_msgid = false;
	for (size_t i = 0; i < h.count; i++) {
		const struct header *hd = &h.items[i];
		have_from |= header_is(msg, hd, "From");
		have_date |= header_is(msg, hd, "Date");
		have_msgid |= header_is(msg, hd, "Message-ID");
		if (!header_dropped(msg, hd))
			str_append(&head, msg->data + hd->start, hd->len);
	}
	if (!have_date)
		str_appendf(&head, "Date: %s\r\n", date);
	if (!have_msgid) {
		char stamp[32];
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		str_appendf(&head, "Message-ID: <%s.%s@%s>\r\n", stamp, env.id,
		    cfg.myhostname);
	}
	if (!have_from) {
		const char *from = m->sender[0] ? m->sender : "MAILER-DAEMON";
		str_append_cstr(&head, "From: ");
		if (m->fullname && m->fullname[0]) {
			append_phrase(&head, m->fullname);
			str_appendf(&head, " <%s>\r\n", from);
		} else {
			str_appendf(&head, "%s\r\n", from);
		}
	}
	str_append_cstr(&head, "\r\n");

	const char *body = msg->data ? msg->data + h.body_start : "";
	size_t body_len = msg->len - h.body_start;
	bool ok = queue_writer_write(w, head.data, head.len) &&
	    queue_writer_write(w, body, body_len);
	if (!ok) {
		snprintf(err, errsize, "write: %s", strerror(errno));
		queue_writer_abort(w);
	} else {
		off_t size = queue_writer_content_length(w);
		ok = queue_writer_commit(w, err, errsize);
		if (ok) {
			log_info("%s: uid=%ld from=<%s> size=%lld nrcpt=%zu",
			    env.id, (long)uid, esc(m->sender), (long long)size,
			    m->rcpts->count);
			strlcpy(id, env.id, idsize);
			ipc_wake_qmgr(cfg.run_directory);
		}
	}
	str_free(&head);
	free(h.items);
	queue_envelope_free(&env);	/* frees its sender */
	return ok;
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
				fail(EX_USAGE, "bad sender address \"%s\": %s",
				    esc(o->sender), why);
		}
	} else {
		if (pw == NULL)
			fail(EX_OSERR, "uid %ld has no user name; use -f",
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
	read_message(&msg, o->ignore_dots, &hops);
	if (smtp_message_too_many_hops(&hops))
		fail(EX_DATAERR, "message has too many Received: and "
		    "Delivered-To: header fields (%u, hopcount_limit is %lld): "
		    "a mail loop? Nothing was queued", hops.received +
		    hops.delivered_to, cfg.hopcount_limit);

	for (int i = 0; i < o->rcpt_argc; i++)
		parse_address_list(&rcpts, o->rcpt_args[i], "on the command line");
	if (o->extract) {
		split_headers(&msg, &h);
		extract_recipients(&msg, &h, &rcpts);
		free(h.items);
	}
	if (rcpts.count == 0)
		fail(EX_USAGE, "no recipients: give them as arguments or use "
		    "-t to take them from the To, Cc and Bcc headers");

	struct local_submission m = {
		.sender = sender, .fullname = fullname, .rcpts = &rcpts,
		.notify = o->notify, .ret = o->ret, .envid = o->envid,
		.body = o->body, .smtputf8 = utf8,
	};
	if (!sendmail_enqueue(&m, &msg, id, sizeof(id), err, sizeof(err)))
		fail(EX_TEMPFAIL, "cannot queue the message: %s", err);
	if (o->verbose)
		fprintf(stderr, "%s: queued as %s\n", progname, id);

	str_free(&msg);
	free(sender);
	free(fullname);
	rcpt_list_free(&rcpts);
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
		fail(EX_CONFIG, "%s", err);

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
