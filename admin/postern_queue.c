/*
 * postern_queue.c - "postern queue list|show|delete|hold|release|flush",
 * also behind mailq (sendmail -bp).
 *
 * Reads and moves queue files directly, so the caller must be root or the
 * postern user (the owner of the queue directories); flush asks qmgr over
 * its control socket, and so does list for any other user (qmgr reads the
 * queue for them: anyone may list, as with Postfix's mailq). Trust: the queue files are parsed by the strict
 * reader, and everything printed from them has control characters masked,
 * so a hostile address cannot drive the administrator's terminal; message
 * content (show) goes through the same escaper (print_escaped_len), lines
 * and tabs kept, unlike Postfix's postcat.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "admin.h"
#include "bio.h"
#include "cfg.h"
#include "esmtp.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "priv.h"
#include "qlist.h"
#include "queue.h"
#include "rfc5322.h"
#include "sock.h"

#define QUEUE_CMD "postern queue"
/* How long flush waits for qmgr's answer. */
#define QUEUE_FLUSH_TIMEOUT_MS 10000
/* How long list waits for each part of qmgr's listing. */
#define QUEUE_LIST_TIMEOUT_MS 30000

/* The queues a message can be in, in the order a message moves. */
static const char *const queue_all_dirs[] = {
	QUEUE_MAILDROP, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED,
	QUEUE_HOLD, QUEUE_CORRUPT,
};
#define QUEUE_NDIRS (sizeof(queue_all_dirs) / sizeof(queue_all_dirs[0]))
/* Listed by "list" and removed by "delete ALL": everything but corrupt/. */
#define QUEUE_NLIVE (QUEUE_NDIRS - 1)

struct queue_entry {
	char id[QUEUE_ID_SIZE];
	const char *subdir;
};

struct queue_entries {
	struct queue_entry *items;
	size_t count, cap;
};

/*
 * The one sink for untrusted text on the administrator's terminal:
 * addresses, reasons, attributes and message content come from senders
 * and peers. Valid UTF-8 is printed as it is; C0 controls (ESC among
 * them) and DEL, C1 controls (U+0080-U+009F: CSI, OSC as one code point),
 * the bidirectional overrides (U+202A-U+202E, U+2066-U+2069, which can
 * make a line read otherwise than it is) and every byte that is not part
 * of valid UTF-8 are printed as \xHH, so nothing reaches the terminal as
 * a command. keep_lines: LF and TAB pass (message content).
 */
static void print_escaped_len(FILE *out, const char *s, size_t len,
    bool keep_lines)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		if (c < 0x80) {
			if ((c == '\t' || c == '\n') && keep_lines)
				putc(c, out);
			else if (c < 0x20 || c == 0x7f)
				fprintf(out, "\\x%02x", c);
			else
				putc(c, out);
			i++;
			continue;
		}
		/* RFC 3629 4: the well-formed sequences. */
		size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ?
		    3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		unsigned lo = 0x80, hi = 0xbf;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		bool ok = n > 0 && i + n <= len && p[i + 1] >= lo &&
		    p[i + 1] <= hi;
		for (size_t k = 2; ok && k < n; k++)
			ok = p[i + k] >= 0x80 && p[i + k] <= 0xbf;
		if (!ok) {
			fprintf(out, "\\x%02x", c);
			i++;
			continue;
		}
		unsigned long cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
		for (size_t k = 1; k < n; k++)
			cp = (cp << 6) | (p[i + k] & 0x3f);
		if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069)) {
			for (size_t k = 0; k < n; k++)
				fprintf(out, "\\x%02x", p[i + k]);
		} else {
			fwrite(p + i, 1, n, out);
		}
		i += n;
	}
}

static void print_masked(FILE *out, const char *s)
{
	print_escaped_len(out, s, strlen(s), false);
}

static void add_entry(struct queue_entries *e, const char *id,
    const char *subdir)
{
	if (e->count == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->items = xreallocarray(e->items, e->cap, sizeof(*e->items));
	}
	strlcpy(e->items[e->count].id, id, QUEUE_ID_SIZE);
	e->items[e->count].subdir = subdir;
	e->count++;
}

/* Queue file names in one directory; skips temporary (".") names. */
static bool scan_dir(const char *path, const char *subdir,
    struct queue_entries *e)
{
	DIR *d = opendir(path);
	if (d == NULL) {
		fprintf(stderr, "%s: %s: %s\n", QUEUE_CMD, path, strerror(errno));
		return false;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (queue_id_valid(de->d_name))
			add_entry(e, de->d_name, subdir);
	closedir(d);
	return true;
}

static bool scan_queue(size_t ndirs, struct queue_entries *e)
{
	char path[PATH_MAX];
	bool ok = true;

	for (size_t i = 0; i < ndirs; i++) {
		const char *sub = queue_all_dirs[i];
		if (strcmp(sub, QUEUE_DEFERRED) == 0) {
			for (int h = 0; h < QUEUE_DEFERRED_HASH; h++) {
				snprintf(path, sizeof(path), "%s/%s/%x",
				    cfg.queue_directory, sub, h);
				ok = scan_dir(path, sub, e) && ok;
			}
		} else {
			snprintf(path, sizeof(path), "%s/%s",
			    cfg.queue_directory, sub);
			ok = scan_dir(path, sub, e) && ok;
		}
	}
	return ok;
}

static int compare_entries(const void *a, const void *b)
{
	const struct queue_entry *x = a, *y = b;
	return strcmp(x->id, y->id);
}

/* Which queue holds id (NULL if none); searches corrupt/ too. */
static const char *find_message(const char *id, size_t ndirs)
{
	char path[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < ndirs; i++) {
		queue_path(path, sizeof(path), cfg.queue_directory,
		    queue_all_dirs[i], id);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			return queue_all_dirs[i];
	}
	return NULL;
}

/*
 * Open and parse a queue file. Returns the fd (caller closes) or -1:
 * *gone is set when the file vanished meanwhile (qmgr moved or removed it).
 */
static int open_message(const char *subdir, const char *id,
    struct queue_envelope *env, bool *gone)
{
	char path[PATH_MAX], err[256];

	*gone = false;
	queue_path(path, sizeof(path), cfg.queue_directory, subdir, id);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			*gone = true;
		else
			fprintf(stderr, "%s: %s: %s\n", QUEUE_CMD, path,
			    strerror(errno));
		return -1;
	}
	enum queue_read_result r = queue_read(fd, env, err, sizeof(err));
	if (r != QUEUE_READ_OK) {
		fprintf(stderr, "%s: %s: %s%s\n", QUEUE_CMD, path,
		    r == QUEUE_READ_CORRUPT ? "corrupt queue file: " : "", err);
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- list ---- */

/*
 * The listing is printed from type=entry messages (qlist.h), whether we
 * built them from the files or qmgr sent them: the same output either way.
 */
enum list_mode {
	LIST_TEXT,		/* mailq's table */
	LIST_JSON,		/* list --json */
	LIST_SHAPE,		/* shape */
};

struct list_state {
	long long total;
	size_t shown;
	enum list_mode mode;
	struct admin_qshape *shape;
	unsigned queues;	/* LIST_SHAPE: a bit per queue_all_dirs[] */
};

/* The bit of queue_all_dirs[] that names subdir, 0 if none. */
static unsigned queue_bit(const char *subdir)
{
	for (size_t i = 0; subdir != NULL && i < QUEUE_NDIRS; i++)
		if (strcmp(subdir, queue_all_dirs[i]) == 0)
			return 1u << i;
	return 0;
}

static void print_list_entry(const struct ipc_msg *m, struct list_state *ls)
{
	if (ls->mode == LIST_JSON) {
		admin_qjson_entry(stdout, m);
		ls->shown++;
		return;
	}
	if (ls->mode == LIST_SHAPE) {
		if (queue_bit(ipc_get(m, "queue")) & ls->queues)
			admin_qshape_add(ls->shape, m);
		ls->shown++;
		return;
	}

	char when[64];
	long long size = 0, arrival = 0;
	const char *id = ipc_get(m, "id"), *subdir = ipc_get(m, "queue");
	const char *sender = ipc_get(m, "sender");
	struct tm tm;
	char mark = ' ';

	(void)ipc_get_ll(m, "size", &size);
	(void)ipc_get_ll(m, "arrival", &arrival);
	if (subdir && strcmp(subdir, QUEUE_ACTIVE) == 0)
		mark = '*';
	else if (subdir && strcmp(subdir, QUEUE_HOLD) == 0)
		mark = '!';
	time_t t = (time_t)arrival;
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	if (ls->shown == 0)
		printf("%-*s  --Size-- ----Arrival Time--- "
		    " -Sender/Recipient-------\n", QUEUE_ID_LEN,
		    "-Queue ID-----");
	print_masked(stdout, id ? id : "?");
	printf("%c %8lld %s  ", mark, size, when);
	print_masked(stdout, sender && sender[0] ? sender : "MAILER-DAEMON");
	putchar('\n');
	for (size_t i = 0; i < m->count; i++) {
		const struct ipc_attr *a = &m->attrs[i];
		if (strcmp(a->name, "reason") == 0) {
			putchar('(');
			print_masked(stdout, a->value);
			printf(")\n");
		} else if (strcmp(a->name, "rcpt") == 0) {
			printf("%*s", QUEUE_ID_LEN + 32, "");
			print_masked(stdout, a->value);
			putchar('\n');
		}
	}
	putchar('\n');
	ls->total += size;
	ls->shown++;
}

static void print_list_end(const struct list_state *ls)
{
	if (ls->mode == LIST_SHAPE)
		admin_qshape_print(ls->shape, stdout, 0);
	if (ls->mode != LIST_TEXT)
		return;
	if (ls->shown == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %lld Kbytes in %zu Request%s.\n",
		    (ls->total + 1023) / 1024, ls->shown,
		    ls->shown == 1 ? "" : "s");
}

/* The listing from the queue files (root, the postern user). */
static int queue_list_files(struct list_state *lsp)
{
	struct queue_entries e = { 0 };
	struct list_state ls = *lsp;
	bool ok = scan_queue(QUEUE_NLIVE, &e);

	if (e.count > 0)
		qsort(e.items, e.count, sizeof(*e.items), compare_entries);
	for (size_t i = 0; i < e.count; i++) {
		struct queue_envelope env;
		struct ipc_msg m;
		bool gone;
		queue_envelope_init(&env);
		int fd = open_message(e.items[i].subdir, e.items[i].id, &env,
		    &gone);
		if (fd < 0) {
			ok = ok && gone;
			queue_envelope_free(&env);
			continue;
		}
		close(fd);
		qlist_entry(&env, e.items[i].subdir, &m);
		print_list_entry(&m, &ls);
		ipc_msg_free(&m);
		queue_envelope_free(&env);
	}
	print_list_end(&ls);
	free(e.items);
	return ok ? 0 : 1;
}

enum qmgr_request_result {
	QMGR_SENT,		/* *b is open on the request's connection */
	QMGR_UNREACHABLE,	/* no connection (errno set); *b untouched */
	QMGR_SEND_FAILED,	/* connected, the request did not go out */
};

/*
 * Connect to qmgr's control socket and send one request of the given
 * type; the caller reads the answer from *b, then closes b->fd and frees
 * b. path gets the socket's path for error messages. A request that did
 * not go out is said here, and b already closed (errno kept).
 */
static enum qmgr_request_result qmgr_request(const char *type, const char *id,
    int timeout_ms, struct bio *b, char *path, size_t pathsize)
{
	struct ipc_msg req;

	snprintf(path, pathsize, "%s/%s", cfg.run_directory, IPC_SOCKET_QMGR);
	int fd = sock_connect_unix(path, timeout_ms);
	if (fd < 0)
		return QMGR_UNREACHABLE;
	bio_init(b, fd, timeout_ms);
	ipc_msg_init(&req, type);
	if (id != NULL)
		ipc_add(&req, "id", "%s", id);
	bool sent = ipc_send(b, &req);
	int saved = errno;
	ipc_msg_free(&req);
	if (!sent) {
		fprintf(stderr, "%s: %s: sending to qmgr: %s\n", QUEUE_CMD,
		    type, strerror(saved));
		close(b->fd);
		bio_free(b);
	}
	errno = saved;
	return sent ? QMGR_SENT : QMGR_SEND_FAILED;
}

/* qmgr's one answer to a request of type (hold, flush); false with a
 * message when none came. */
static bool qmgr_answer(const char *type, struct bio *b, struct ipc_msg *reply)
{
	enum bio_status st = ipc_recv(b, reply);
	if (st == BIO_OK)
		return true;
	fprintf(stderr, "%s: %s: no answer from qmgr (%s)\n", QUEUE_CMD, type,
	    bio_status_name(st));
	return false;
}

/* qmgr said no to a request of type: its reason, masked. */
static void print_refusal(const char *type, const struct ipc_msg *reply)
{
	const char *reason = ipc_get(reply, "reason");

	fprintf(stderr, "%s: %s: qmgr refused: ", QUEUE_CMD, type);
	print_masked(stderr, reason ? reason : reply->type);
	fputc('\n', stderr);
}

/*
 * qmgr's listing (type=list, doc/architecture.md): for users who may not read
 * the queue directories. Everyone may, as Postfix's showq allows.
 */
static int queue_list_qmgr(struct list_state *lsp)
{
	char path[PATH_MAX];
	struct bio b;
	struct list_state ls = *lsp;
	int rc = 1;

	switch (qmgr_request("list", NULL, QUEUE_LIST_TIMEOUT_MS, &b, path,
	    sizeof(path))) {
	case QMGR_UNREACHABLE:
		fprintf(stderr, "%s: mail system is down: cannot reach qmgr "
		    "at %s: %s\n", QUEUE_CMD, path, strerror(errno));
		return 1;
	case QMGR_SEND_FAILED:
		return 1;
	case QMGR_SENT:
		break;
	}
	for (;;) {
		struct ipc_msg m;
		enum bio_status st = ipc_recv(&b, &m);
		if (st != BIO_OK) {
			fprintf(stderr, "%s: list: qmgr ended the listing early "
			    "(%s)\n", QUEUE_CMD, bio_status_name(st));
			break;
		}
		if (strcmp(m.type, "entry") == 0) {
			print_list_entry(&m, &ls);
			ipc_msg_free(&m);
			continue;
		}
		if (strcmp(m.type, "end") == 0) {
			print_list_end(&ls);
			rc = 0;
		} else {
			print_refusal("list", &m);
		}
		ipc_msg_free(&m);
		break;
	}
	close(b.fd);
	bio_free(&b);
	return rc;
}

/* ---- show ---- */

static const char *status_name(char st)
{
	switch (st) {
	case QUEUE_RCPT_PENDING: return "pending";
	case QUEUE_RCPT_SENT: return "sent";
	case QUEUE_RCPT_FAILED: return "failed";
	case QUEUE_RCPT_EXPANDED: return "expanded";
	}
	return "?";
}

static void print_notify(unsigned notify)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ QUEUE_NOTIFY_NEVER, "NEVER" },
		{ QUEUE_NOTIFY_SUCCESS, "SUCCESS" },
		{ QUEUE_NOTIFY_FAILURE, "FAILURE" },
		{ QUEUE_NOTIFY_DELAY, "DELAY" },
	};
	const char *sep = "";
	if (notify == 0) {
		printf("default");
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (notify & names[i].bit) {
			printf("%s%s", sep, names[i].name);
			sep = ",";
		}
	}
}

/* Copy the content to stdout with CRLF shown as LF. */
/* The content, or only its header section (up to the empty line). */
static bool print_content(int fd, const struct queue_envelope *env,
    bool headers_only)
{
	char buf[65536];
	off_t off = env->content_offset, left = env->content_length;
	bool cr_pending = false, line_start = true, header_end = false;

	while (left > 0) {
		size_t want = left < (off_t)sizeof(buf) ? (size_t)left : sizeof(buf);
		ssize_t n = pread(fd, buf, want, off);
		if (n <= 0) {
			fprintf(stderr, "%s: read content: %s\n", QUEUE_CMD,
			    n < 0 ? strerror(errno) : "file is shorter than "
			    "its envelope says");
			return false;
		}
		/* CRLF is shown as LF; everything else through the
		 * escaper, a sequence cut by the buffer's end included
		 * (shown escaped: rare, and never unsafe). */
		char line[2 * sizeof(buf)];
		size_t o = 0;
		for (ssize_t i = 0; i < n && !header_end; i++) {
			if (cr_pending && buf[i] != '\n') {
				line[o++] = '\r';
				line_start = false;
			}
			cr_pending = buf[i] == '\r';
			if (cr_pending)
				continue;
			/* RFC 5322 2.1: the first empty line ends the header. */
			if (headers_only && line_start && buf[i] == '\n') {
				header_end = true;
				break;
			}
			line[o++] = buf[i];
			line_start = buf[i] == '\n';
		}
		print_escaped_len(stdout, line, o, true);
		if (header_end)
			return true;
		off += n;
		left -= n;
	}
	if (cr_pending)
		print_escaped_len(stdout, "\r", 1, true);
	return true;
}

static int queue_show(int argc, char **argv)
{
	static const char *const kinds[] = { "MAIL", "BOUNCE", "DELAY",
	    "SUCCESS", "DOUBLE" };
	static const char *const rets[] = { "default", "FULL", "HDRS" };

	bool body = argc == 3 && strcmp(argv[2], "--body") == 0;
	if (argc != 2 && !body) {
		fprintf(stderr, "usage: %s show ID [--body]\n", QUEUE_CMD);
		return 1;
	}
	const char *id = argv[1];
	if (!queue_id_valid(id)) {
		fprintf(stderr, "%s: not a queue ID: ", QUEUE_CMD);
		print_masked(stderr, id);
		fputc('\n', stderr);
		return 1;
	}
	const char *subdir = find_message(id, QUEUE_NDIRS);
	if (subdir == NULL) {
		fprintf(stderr, "%s: %s: no such message in the queue\n",
		    QUEUE_CMD, id);
		return 1;
	}
	struct queue_envelope env;
	bool gone;
	queue_envelope_init(&env);
	int fd = open_message(subdir, id, &env, &gone);
	if (fd < 0) {
		if (gone)
			fprintf(stderr, "%s: %s: the message left the queue\n",
			    QUEUE_CMD, id);
		queue_envelope_free(&env);
		return 1;
	}
	char when[64];
	time_t t = (time_t)env.arrival_sec;
	struct tm tm;
	localtime_r(&t, &tm);
	rfc5322_date(t, when, sizeof(when));

	printf("*** ENVELOPE %s ***\n", env.id);
	printf("queue: %s\n", subdir);
	printf("arrival: %s\n", when);
	printf("sender: <");
	print_masked(stdout, env.sender);
	printf(">\n");
	printf("size: %lld\n", (long long)env.content_length);
	printf("body: %s\n", esmtp_body_name(env.body));
	printf("smtputf8: %s\n", env.smtputf8 ? "yes" : "no");
	if (env.envid) {
		printf("envid: ");
		print_masked(stdout, env.envid);
		putchar('\n');
	}
	printf("ret: %s\n", rets[env.ret]);
	printf("kind: %s\n", kinds[env.kind]);
	printf("delay warning sent: %s\n", env.delay_warned ? "yes" : "no");
	for (size_t i = 0; i < env.nattrs; i++) {
		printf("attribute: %s=", env.attrs[i].name);
		print_masked(stdout, env.attrs[i].value);
		putchar('\n');
	}
	for (size_t i = 0; i < env.nrcpts; i++) {
		const struct queue_rcpt *r = &env.rcpts[i];
		printf("recipient %zu: <", i);
		print_masked(stdout, r->address);
		printf("> status=%s notify=", status_name(r->status));
		print_notify(r->notify);
		if (r->orcpt) {
			printf(" orcpt=");
			print_masked(stdout, r->orcpt);
		}
		if (r->parent >= 0)
			printf(" expanded-from=%d", r->parent);
		putchar('\n');
		if (r->last_dsn) {
			printf("  last reason: %s ", r->last_dsn);
			print_masked(stdout, r->last_reason);
			putchar('\n');
		}
	}
	printf("*** CONTENT %s ***\n", env.id);
	fflush(stdout);
	bool ok = print_content(fd, &env, !body);
	printf("*** END %s ***\n", env.id);
	close(fd);
	queue_envelope_free(&env);
	return ok ? 0 : 1;
}

/* ---- delete, hold, release ---- */

enum hold_by_qmgr {
	HOLD_BY_QMGR_OK,
	HOLD_BY_QMGR_FAILED,	/* with a message; errno ENOENT if gone */
	HOLD_BY_QMGR_DOWN,	/* qmgr not reachable */
};

/*
 * A message in active/ belongs to qmgr, and a delivery of it may be in
 * flight: moving the file away would lose that delivery's result and a
 * release would deliver it again. qmgr holds it once the result is in
 * the file (type=hold, ipc.h).
 */
static enum hold_by_qmgr hold_by_qmgr(const char *id)
{
	char path[PATH_MAX];
	struct bio b;
	struct ipc_msg reply = { 0 };
	enum hold_by_qmgr rc = HOLD_BY_QMGR_FAILED;

	switch (qmgr_request("hold", id, QUEUE_FLUSH_TIMEOUT_MS, &b, path,
	    sizeof(path))) {
	case QMGR_UNREACHABLE:
		return HOLD_BY_QMGR_DOWN;
	case QMGR_SEND_FAILED:
		return HOLD_BY_QMGR_FAILED;
	case QMGR_SENT:
		break;
	}
	if (!qmgr_answer("hold", &b, &reply)) {
		errno = EIO;
		goto out;
	}
	const char *reason = ipc_get(&reply, "reason");
	if (strcmp(reply.type, "ok") == 0) {
		if (reason != NULL) {
			printf("%s: on hold ", id);
			print_masked(stdout, reason);
			putchar('\n');
		}
		rc = HOLD_BY_QMGR_OK;
	} else if (reason != NULL && strcmp(reason, "not in active") == 0) {
		errno = ENOENT;	/* moved on meanwhile: look again */
	} else {
		print_refusal("hold", &reply);
		errno = EPERM;
	}
out:
	ipc_msg_free(&reply);
	close(b.fd);
	bio_free(&b);
	return rc;
}

enum queue_op {
	QUEUE_OP_DELETE,
	QUEUE_OP_HOLD,
	QUEUE_OP_RELEASE,
	QUEUE_OP_REQUEUE,	/* postsuper -r: to incoming/, resolved anew */
	QUEUE_OP_FLUSH,		/* postqueue -i: a deferred one tried now */
};

/*
 * Apply op to one message found in subdir; false with a message (none if
 * quiet_gone and the file was already gone: qmgr finished it meanwhile).
 */
static bool apply_op(enum queue_op op, const char *id, const char *subdir,
    bool quiet_gone)
{
	char path[PATH_MAX], err[512];

	switch (op) {
	case QUEUE_OP_DELETE:
		queue_path(path, sizeof(path), cfg.queue_directory, subdir, id);
		if (unlink(path) < 0) {
			if (errno == ENOENT && quiet_gone)
				return false;
			fprintf(stderr, "%s: delete %s: %s\n", QUEUE_CMD, path,
			    strerror(errno));
			return false;
		}
		admin_audit(id, "removed", subdir);
		return true;
	case QUEUE_OP_HOLD:
		if (strcmp(subdir, QUEUE_ACTIVE) == 0) {
			enum hold_by_qmgr h = hold_by_qmgr(id);
			if (h == HOLD_BY_QMGR_OK) {
				admin_audit(id, "placed on hold", subdir);
				return true;
			}
			if (h == HOLD_BY_QMGR_FAILED)
				return false;
			/* qmgr is not running: nothing is in flight. */
		}
		/* FALLTHROUGH */
	case QUEUE_OP_RELEASE:
	case QUEUE_OP_REQUEUE:
	case QUEUE_OP_FLUSH: {
		const char *to = op == QUEUE_OP_HOLD ? QUEUE_HOLD :
		    QUEUE_INCOMING;
		if (!queue_move(cfg.queue_directory, subdir, to, id, true,
		    err, sizeof(err))) {
			if (errno == ENOENT && quiet_gone)
				return false;
			fprintf(stderr, "%s: %s\n", QUEUE_CMD, err);
			return false;
		}
		/* A flush only moves the time of the next try: no record. */
		if (op != QUEUE_OP_FLUSH)
			admin_audit(id, op == QUEUE_OP_HOLD ? "placed on hold" :
			    op == QUEUE_OP_RELEASE ? "released from hold" :
			    "requeued", subdir);
		return true;
	}
	}
	return false;
}

/* Where op may find a message: hold takes what qmgr has not finished. */
static const char *op_source(enum queue_op op, const char *id)
{
	static const char *const holdable[] = { QUEUE_INCOMING, QUEUE_ACTIVE,
	    QUEUE_DEFERRED };
	char path[PATH_MAX];
	struct stat st;

	switch (op) {
	case QUEUE_OP_DELETE:
		return find_message(id, QUEUE_NDIRS);
	case QUEUE_OP_HOLD:
		for (size_t i = 0; i < 3; i++) {
			queue_path(path, sizeof(path), cfg.queue_directory,
			    holdable[i], id);
			if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
				return holdable[i];
		}
		return NULL;
	case QUEUE_OP_RELEASE:
	case QUEUE_OP_FLUSH: {
		const char *dir = op == QUEUE_OP_RELEASE ? QUEUE_HOLD :
		    QUEUE_DEFERRED;
		queue_path(path, sizeof(path), cfg.queue_directory, dir, id);
		return lstat(path, &st) == 0 && S_ISREG(st.st_mode) ?
		    dir : NULL;
	}
	case QUEUE_OP_REQUEUE:
		/* What waits: deferred, or on hold (which it releases, as
		 * postsuper -r does). active/ is qmgr's. */
		for (size_t i = 0; i < 2; i++) {
			const char *dir = i == 0 ? QUEUE_DEFERRED : QUEUE_HOLD;
			queue_path(path, sizeof(path), cfg.queue_directory,
			    dir, id);
			if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
				return dir;
		}
		return NULL;
	}
	return NULL;
}

static int queue_op_main(enum queue_op op, int argc, char **argv);
static int queue_flush(void);
static bool may_use_queue(bool quiet);

/*
 * Messages chosen by what they hold, not by ID: "delete --deferred
 * --sender RE --recipient RE", "flush --domain D". Every test given must
 * hold (a recipient test: for some pending recipient).
 */
struct selection {
	unsigned queues;		/* bits of queue_all_dirs[] */
	bool have_sender, have_rcpt;
	regex_t sender, rcpt;
	const char *domain;		/* a pending recipient's domain */
};

static bool selection_matches(const struct selection *sel,
    const struct queue_envelope *env)
{
	if (sel->have_sender &&
	    regexec(&sel->sender, env->sender, 0, NULL, 0) != 0)
		return false;
	if (!sel->have_rcpt && sel->domain == NULL)
		return true;
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		if (r->status != QUEUE_RCPT_PENDING)
			continue;
		const char *at = strrchr(r->address, '@');
		if (sel->domain != NULL &&
		    (at == NULL || strcasecmp(at + 1, sel->domain) != 0))
			continue;
		if (sel->have_rcpt &&
		    regexec(&sel->rcpt, r->address, 0, NULL, 0) != 0)
			continue;
		return true;
	}
	return false;
}

/* Apply op to every message sel picks; the queues are read once. */
static int queue_op_selected(enum queue_op op, const struct selection *sel)
{
	struct queue_entries e = { 0 };
	bool ok = scan_queue(QUEUE_NLIVE, &e);
	size_t done = 0;

	for (size_t i = 0; i < e.count; i++) {
		if (!(queue_bit(e.items[i].subdir) & sel->queues))
			continue;
		struct queue_envelope env;
		bool gone;
		queue_envelope_init(&env);
		int fd = open_message(e.items[i].subdir, e.items[i].id, &env,
		    &gone);
		if (fd < 0) {
			ok = ok && gone;
			queue_envelope_free(&env);
			continue;
		}
		close(fd);
		bool match = selection_matches(sel, &env);
		queue_envelope_free(&env);
		if (!match)
			continue;
		if (apply_op(op, e.items[i].id, e.items[i].subdir, true))
			done++;
		else if (errno != ENOENT)
			ok = false;
	}
	free(e.items);
	admin_audit_close();
	if (op == QUEUE_OP_FLUSH && done > 0)
		ipc_wake_qmgr(cfg.run_directory);
	printf("%s: %zu message%s\n", op == QUEUE_OP_DELETE ? "deleted" :
	    "flushed", done, done == 1 ? "" : "s");
	return ok ? 0 : 1;
}

/*
 * The options of a selection: --incoming, --active, --deferred, --hold
 * (none: every queue), --sender RE, --recipient RE (POSIX extended,
 * case-insensitive), --domain D. Returns the index of the first argument
 * left, or -1 after a message.
 */
static int parse_selection(int argc, char **argv, struct selection *sel,
    bool domain_only)
{
	int a = 1;

	memset(sel, 0, sizeof(*sel));
	for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
		const char *opt = argv[a] + 2;
		unsigned bit = domain_only ? 0 : queue_bit(opt);
		if (bit != 0 && strcmp(opt, QUEUE_MAILDROP) != 0 &&
		    strcmp(opt, QUEUE_CORRUPT) != 0) {
			sel->queues |= bit;
			continue;
		}
		if (a + 1 >= argc)
			break;
		const char *arg = argv[++a];
		if (domain_only && strcmp(opt, "domain") == 0) {
			sel->domain = arg;
			continue;
		}
		bool is_sender = !domain_only && strcmp(opt, "sender") == 0;
		bool is_rcpt = !domain_only && strcmp(opt, "recipient") == 0;
		if (!is_sender && !is_rcpt)
			break;
		regex_t *re = is_sender ? &sel->sender : &sel->rcpt;
		int rc = regcomp(re, arg, REG_EXTENDED | REG_ICASE | REG_NOSUB);
		if (rc != 0) {
			char why[256];
			regerror(rc, re, why, sizeof(why));
			fprintf(stderr, "%s: bad pattern \"", QUEUE_CMD);
			print_masked(stderr, arg);
			fprintf(stderr, "\": %s\n", why);
			return -1;
		}
		if (is_sender)
			sel->have_sender = true;
		else
			sel->have_rcpt = true;
	}
	if (a < argc && strncmp(argv[a], "--", 2) == 0) {
		fprintf(stderr, "%s: %s: unknown option or missing value\n",
		    QUEUE_CMD, argv[a]);
		return -1;
	}
	if (sel->queues == 0)
		sel->queues = domain_only ? queue_bit(QUEUE_DEFERRED) :
		    (1u << QUEUE_NLIVE) - 1;
	return a;
}

static void selection_free(struct selection *sel)
{
	if (sel->have_sender)
		regfree(&sel->sender);
	if (sel->have_rcpt)
		regfree(&sel->rcpt);
}

/* delete --...: by what the messages hold; delete ID...|ALL otherwise. */
static int queue_delete_main(int argc, char **argv)
{
	if (argc < 2 || strncmp(argv[1], "--", 2) != 0)
		return queue_op_main(QUEUE_OP_DELETE, argc, argv);
	struct selection sel;
	int a = parse_selection(argc, argv, &sel, false);
	if (a < 0 || a != argc) {
		if (a >= 0)
			fprintf(stderr, "%s: delete takes IDs or options, "
			    "not both\n", QUEUE_CMD);
		selection_free(&sel);
		return 1;
	}
	int rc = queue_op_selected(QUEUE_OP_DELETE, &sel);
	selection_free(&sel);
	return rc;
}

/* flush: every deferred message (qmgr), one by ID, or one site's. */
static int queue_flush_main(int argc, char **argv)
{
	if (argc == 1)
		return queue_flush();
	if (!may_use_queue(false))
		return 1;
	if (strncmp(argv[1], "--", 2) != 0)
		return queue_op_main(QUEUE_OP_FLUSH, argc, argv);
	struct selection sel;
	int a = parse_selection(argc, argv, &sel, true);
	if (a < 0 || a != argc || sel.domain == NULL) {
		if (a >= 0)
			fprintf(stderr, "usage: %s flush [ID... | --domain "
			    "DOMAIN]\n", QUEUE_CMD);
		return 1;
	}
	return queue_op_selected(QUEUE_OP_FLUSH, &sel);
}

static int queue_op_main(enum queue_op op, int argc, char **argv)
{
	static const char *const verbs[] = { "deleted", "placed on hold",
	    "released from hold", "requeued", "flushed" };
	static const char *const where[] = { "in the queue",
	    "in incoming, active or deferred", "on hold",
	    "in deferred or hold", "in deferred" };
	size_t done = 0;
	bool ok = true;

	if (argc < 2) {
		fprintf(stderr, "usage: %s %s ID...%s\n", QUEUE_CMD, argv[0],
		    op == QUEUE_OP_HOLD || op == QUEUE_OP_FLUSH ? "" : "|ALL");
		return 1;
	}
	if (argc == 2 && strcmp(argv[1], "ALL") == 0 && op != QUEUE_OP_HOLD &&
	    op != QUEUE_OP_FLUSH) {
		struct queue_entries e = { 0 };
		ok = scan_queue(op == QUEUE_OP_DELETE ? QUEUE_NLIVE : QUEUE_NDIRS,
		    &e);
		for (size_t i = 0; i < e.count; i++) {
			if (op == QUEUE_OP_RELEASE &&
			    strcmp(e.items[i].subdir, QUEUE_HOLD) != 0)
				continue;
			/* requeue ALL: what is deferred (postsuper -r ALL
			 * deferred); a held one is requeued by its ID. */
			if (op == QUEUE_OP_REQUEUE &&
			    strcmp(e.items[i].subdir, QUEUE_DEFERRED) != 0)
				continue;
			if (apply_op(op, e.items[i].id, e.items[i].subdir, true))
				done++;
			else if (errno != ENOENT)	/* gone meanwhile: fine */
				ok = false;
		}
		free(e.items);
	} else {
		for (int i = 1; i < argc; i++) {
			const char *id = argv[i];
			if (!queue_id_valid(id)) {
				fprintf(stderr, "%s: not a queue ID: ", QUEUE_CMD);
				print_masked(stderr, id);
				fputc('\n', stderr);
				ok = false;
				continue;
			}
			/*
			 * qmgr may move the file between our lookup and our
			 * rename (active/ to deferred/): look again, a few
			 * times, before calling it gone.
			 */
			bool applied = false, failed = false;
			for (int attempt = 0; attempt < 5 && !applied && !failed;
			    attempt++) {
				const char *subdir = op_source(op, id);
				if (subdir == NULL)
					break;
				if (apply_op(op, id, subdir, true))
					applied = true;
				else if (errno != ENOENT)
					failed = true;
			}
			if (applied) {
				done++;
			} else {
				if (!failed)
					fprintf(stderr, "%s: %s: no such message "
					    "%s\n", QUEUE_CMD, id, where[op]);
				ok = false;
			}
		}
	}
	admin_audit_close();
	if (op != QUEUE_OP_DELETE && op != QUEUE_OP_HOLD && done > 0)
		ipc_wake_qmgr(cfg.run_directory);
	printf("%s: %zu message%s\n", verbs[op], done, done == 1 ? "" : "s");
	return ok ? 0 : 1;
}

/* ---- flush ---- */

static int queue_flush(void)
{
	char path[PATH_MAX];
	struct bio b;
	struct ipc_msg reply = { 0 };	/* ipc_recv fills it in */
	int rc = 1;

	switch (qmgr_request("flush", NULL, QUEUE_FLUSH_TIMEOUT_MS, &b, path,
	    sizeof(path))) {
	case QMGR_UNREACHABLE:
		fprintf(stderr, "%s: flush: cannot reach qmgr at %s: %s "
		    "(is postern running?)\n", QUEUE_CMD, path, strerror(errno));
		return 1;
	case QMGR_SEND_FAILED:
		return 1;
	case QMGR_SENT:
		break;
	}
	if (!qmgr_answer("flush", &b, &reply))
		goto out;
	if (strcmp(reply.type, "ok") == 0) {
		printf("flush: qmgr is retrying every deferred message now\n");
		rc = 0;
	} else {
		print_refusal("flush", &reply);
	}
out:
	ipc_msg_free(&reply);
	close(b.fd);
	bio_free(&b);
	return rc;
}

/* ---- entry ---- */

/* Root or the queue's owner (the postern user); anyone else gets a clear
 * message (unless quiet) rather than a scatter of "Permission denied". */
static bool may_use_queue(bool quiet)
{
	uid_t uid, euid = geteuid();
	gid_t gid;
	struct stat st;
	char path[PATH_MAX];

	if (euid == 0)
		return true;
	if (priv_lookup_user(cfg.user, &uid, &gid) && uid == euid)
		return true;
	/* Developer mode: the queue belongs to whoever runs the suite. */
	snprintf(path, sizeof(path), "%s/%s", cfg.queue_directory,
	    QUEUE_INCOMING);
	if (stat(path, &st) == 0 && st.st_uid == euid)
		return true;
	if (quiet)
		return false;
	fprintf(stderr, "%s: permission denied: run this as root or as the "
	    "user \"%s\"\n", QUEUE_CMD, cfg.user);
	return false;
}

static void queue_usage(void)
{
	fprintf(stderr,
	    "usage: %s list [--json]\n"
	    "       %s show ID [--body]\n"
	    "       %s delete ID...|ALL\n"
	    "       %s delete [--incoming] [--active] [--deferred] [--hold]"
	    " [--sender RE] [--recipient RE]\n"
	    "       %s hold ID...\n"
	    "       %s release ID...|ALL\n"
	    "       %s requeue ID...|ALL\n"
	    "       %s flush [ID... | --domain DOMAIN]\n"
	    "       %s shape [incoming] [active] [deferred] [hold]\n",
	    QUEUE_CMD, QUEUE_CMD, QUEUE_CMD, QUEUE_CMD, QUEUE_CMD, QUEUE_CMD,
	    QUEUE_CMD, QUEUE_CMD, QUEUE_CMD);
}

int admin_queue_main(int argc, char **argv)
{
	if (argc < 2) {
		queue_usage();
		return 1;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "flush") == 0)
		return queue_flush_main(argc - 1, argv + 1);
	bool known = strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0 ||
	    strcmp(sub, "delete") == 0 || strcmp(sub, "hold") == 0 ||
	    strcmp(sub, "release") == 0 || strcmp(sub, "requeue") == 0 ||
	    strcmp(sub, "shape") == 0;
	if (!known) {
		fprintf(stderr, "%s: unknown subcommand \"", QUEUE_CMD);
		print_masked(stderr, sub);
		fprintf(stderr, "\"\n");
		queue_usage();
		return 1;
	}
	if (strcmp(sub, "list") == 0 || strcmp(sub, "shape") == 0) {
		struct list_state ls = { 0 };
		if (strcmp(sub, "list") == 0) {
			if (argc > 3 || (argc == 3 &&
			    strcmp(argv[2], "--json") != 0)) {
				queue_usage();
				return 1;
			}
			ls.mode = argc == 3 ? LIST_JSON : LIST_TEXT;
		} else {
			ls.mode = LIST_SHAPE;
			for (int a = 2; a < argc; a++) {
				unsigned bit = queue_bit(argv[a]);
				if (bit == 0 || strcmp(argv[a],
				    QUEUE_CORRUPT) == 0) {
					queue_usage();
					return 1;
				}
				ls.queues |= bit;
			}
			/* As qshape: what waits for delivery. */
			if (ls.queues == 0)
				ls.queues = queue_bit(QUEUE_INCOMING) |
				    queue_bit(QUEUE_ACTIVE) |
				    queue_bit(QUEUE_DEFERRED);
			ls.shape = admin_qshape_new(time(NULL));
		}
		/* Read the files when we may, else ask qmgr, as anyone may. */
		int rc = may_use_queue(true) ? queue_list_files(&ls) :
		    queue_list_qmgr(&ls);
		admin_qshape_free(ls.shape);
		return rc;
	}
	if (!may_use_queue(false))
		return 1;
	if (strcmp(sub, "show") == 0)
		return queue_show(argc - 1, argv + 1);
	if (strcmp(sub, "delete") == 0)
		return queue_delete_main(argc - 1, argv + 1);
	if (strcmp(sub, "requeue") == 0)
		return queue_op_main(QUEUE_OP_REQUEUE, argc - 1, argv + 1);
	if (strcmp(sub, "hold") == 0)
		return queue_op_main(QUEUE_OP_HOLD, argc - 1, argv + 1);
	return queue_op_main(QUEUE_OP_RELEASE, argc - 1, argv + 1);
}
