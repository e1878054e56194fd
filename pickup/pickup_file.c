/*
 * pickup_file.c - one maildrop file: a local user's submission, written
 * by sendmail (mode 0644, owned by that user), validated, run through
 * non_smtpd_milters (pickup_milter.c), and written into incoming/ under
 * the ID sendmail gave it, durably, before the maildrop file goes.
 *
 * The file's states, S1 and S2 of
 * doc/architecture.md, "Queue states and crash invariants":
 *   maildrop/ID  untrusted: validated, copied into incoming/ (or hold/,
 *                quarantined by a filter) with a fresh envelope, then
 *                unlinked; a crash in between gives a duplicate, never
 *                a loss. A filter's tempfail leaves it here for a later
 *                pass; a file that does not validate goes to corrupt/.
 *
 * A filter's reject bounces the message to its sender, as Postfix does
 * for non_smtpd_milters (the submitting program has long exited): the
 * message goes into incoming/ with the attribute milter_reject, and qmgr
 * bounces every recipient with the filter's reply.
 *
 * Trusts: the config. Not the file: every record is checked by
 * queue_read(), addresses by the address parser, the size against
 * message_size_limit; only what a local user may decide is copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "cfg.h"
#include "log.h"
#include "mem.h"
#include "milter_client.h"
#include "msgid.h"
#include "pickup.h"
#include "queue.h"
#include "rewrite.h"
#include "str.h"

static void maildrop_to_corrupt(const char *name, const char *why)
{
	char *from = xasprintf("%s/%s/%s", cfg.queue_directory, QUEUE_MAILDROP,
	    name);
	char *to = xasprintf("%s/%s/%s", cfg.queue_directory, QUEUE_CORRUPT,
	    name);
	char esc[128];

	log_escape(esc, sizeof(esc), name, strlen(name));
	if (rename(from, to) < 0) {
		log_warning("maildrop file %s: %s; cannot move it to %s: %m",
		    esc, why, QUEUE_CORRUPT);
		unlink(from);	/* never pick it up again and again */
	} else {
		log_warning("maildrop file %s: %s; moved to %s", esc, why,
		    QUEUE_CORRUPT);
	}
	free(from);
	free(to);
}

static bool valid_address(const char *a, bool allow_null)
{
	struct addr parsed;
	const char *why;

	if (*a == '\0')
		return allow_null;
	if (!addr_parse_mailbox(a, ADDR_ALLOW_UTF8 | ADDR_ALLOW_POSTMASTER,
	    &parsed, &why))
		return false;
	addr_free(&parsed);
	return true;
}

/* The canonical maps and masquerading (mail/rewrite.c), or NULL. */
static struct rewrite *canonical;

void pickup_file_init(void)
{
	canonical = rewrite_open_configured(REWRITE_CANONICAL);
}

/*
 * Where the content goes: the queue file, or the filters' spool. With
 * the canonical maps, the header block is held until its end and its
 * address fields rewritten first.
 */
struct sink {
	struct queue_writer *w;
	struct milter_msg *m;
	struct msgid_scan *ms;
	bool in_headers;	/* still collecting the header block */
	struct str hdr;
	bool failed;		/* a table could not be read */
};

static bool sink_emit(struct sink *s, const void *p, size_t n)
{
	msgid_scan_text(s->ms, p, n);
	return s->w != NULL ? queue_writer_write(s->w, p, n) :
	    milter_msg_write(s->m, p, n);
}

/* The header block is whole (or the message ended): rewrite, emit. */
static bool sink_headers_done(struct sink *s)
{
	size_t end = rewrite_header_end(s->hdr.data, s->hdr.len);
	size_t n = 0;
	char *block = rewrite_header_block(canonical, s->hdr.data, end, &n,
	    &s->failed);
	bool ok;

	s->in_headers = false;
	if (block != NULL) {
		ok = sink_emit(s, block, n) && sink_emit(s, s->hdr.data + end,
		    s->hdr.len - end);
		free(block);
	} else {
		ok = sink_emit(s, s->hdr.data, s->hdr.len);
	}
	str_free(&s->hdr);
	return ok;
}

static bool sink_write(struct sink *s, const void *p, size_t n)
{
	if (!s->in_headers)
		return sink_emit(s, p, n);
	size_t before = s->hdr.len;
	if (!str_append(&s->hdr, p, n))
		return false;
	/* Look again from a little before the new bytes: CRLF CRLF may
	 * straddle two writes. */
	size_t from = before > 3 ? before - 3 : 0;
	if ((s->hdr.len >= 2 && s->hdr.data[0] == '\r' &&
	    s->hdr.data[1] == '\n') ||
	    memmem(s->hdr.data + from, s->hdr.len - from, "\r\n\r\n", 4))
		return sink_headers_done(s);
	return true;
}

static bool sink_finish(struct sink *s)
{
	return !s->in_headers || sink_headers_done(s);
}

/*
 * Copy the content, turning bare LF and bare CR into CRLF: the file came
 * from a local user, and a lone LF must never reach a peer that might
 * take it for a line end (SMTP smuggling). BINARYMIME is copied as is.
 */
static bool copy_content(int fd, off_t offset, off_t length, bool binary,
    struct sink *out_sink)
{
	char in[65536];
	char out[2 * sizeof(in) + 2];
	bool pending_cr = false;

	while (length > 0) {
		size_t want = length > (off_t)sizeof(in) ? sizeof(in) :
		    (size_t)length;
		ssize_t n = pread(fd, in, want, offset);
		if (n <= 0)
			return false;
		offset += n;
		length -= n;
		if (binary) {
			if (!sink_write(out_sink, in, (size_t)n))
				return false;
			continue;
		}
		size_t o = 0;
		for (ssize_t i = 0; i < n; i++) {
			char c = in[i];
			if (pending_cr) {
				out[o++] = '\r';
				out[o++] = '\n';
				pending_cr = false;
				if (c == '\n')
					continue;
			}
			if (c == '\r') {
				pending_cr = true;
			} else if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
			} else {
				out[o++] = c;
			}
		}
		if (!sink_write(out_sink, out, o))
			return false;
	}
	if (pending_cr && !sink_write(out_sink, "\r\n", 2))
		return false;
	return sink_finish(out_sink);
}

/*
 * May a maildrop file's ID be kept? Only if no queue holds a message of
 * that ID: sendmail's IDs are unique on the host, but a member of the
 * postdrop group can name a file as it likes. Creating ".<ID>" with
 * O_EXCL and renaming without replacing (queue_writer_open_as) close
 * the rest of the race.
 */
static bool pickup_id_free(const char *id)
{
	static const char *const dirs[] = { QUEUE_INCOMING, QUEUE_ACTIVE,
	    QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT };
	char path[PATH_MAX];
	struct stat st;

	if (!queue_id_valid(id))
		return false;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		queue_path(path, sizeof(path), cfg.queue_directory, dirs[i],
		    id);
		if (lstat(path, &st) == 0 || errno != ENOENT)
			return false;
	}
	return true;
}

/* Validate the envelope of a maildrop file: NULL or what is wrong. */
static const char *check_envelope(enum queue_read_result rr, const char *err,
    const struct queue_envelope *in)
{
	if (rr == QUEUE_READ_CORRUPT)
		return err;
	if (in->nrcpts == 0)
		return "no recipients";
	if (!valid_address(in->sender, true))
		return "bad sender address";
	if (cfg.message_size_limit > 0 &&
	    in->content_length > cfg.message_size_limit)
		return "message too large";
	for (size_t i = 0; i < in->nrcpts; i++) {
		if (in->rcpts[i].parent >= 0 ||
		    in->rcpts[i].status != QUEUE_RCPT_PENDING)
			return "recipient records not fresh";
		if (!valid_address(in->rcpts[i].address, false))
			return "bad recipient address";
	}
	return NULL;
}

/* Open the queue file: under the maildrop ID when it is free. */
static struct queue_writer *open_writer(const char *subdir, const char *name,
    const struct queue_envelope *in, struct queue_envelope *out, char *err,
    size_t errsize)
{
	struct queue_writer *w = NULL;
	if (strcmp(name, in->id) == 0 && pickup_id_free(name))
		w = queue_writer_open_as(cfg.queue_directory, subdir, name, out,
		    err, errsize);
	if (w == NULL)
		w = queue_writer_open(cfg.queue_directory, subdir, out, err,
		    errsize);
	return w;
}

/*
 * A filter's reply as one line of printable ASCII, for the envelope and
 * the log: "X.Y.Z text", the lines of a multi-line reply joined, their
 * codes dropped ("554-5.7.1 a" CRLF "554 5.7.1 b" gives "5.7.1 a b").
 */
static void reply_line(const char *reply, char *out, size_t size)
{
	size_t n = 0;
	bool first = true;
	const char *line = reply;

	while (*line != '\0' && n + 1 < size) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		const char *text = line;
		/* "ddd-" or "ddd ": the code goes; the first enhanced code
		 * stays, the later ones go. */
		if (len >= 4 && (line[3] == '-' || line[3] == ' ')) {
			text = line + 4;
			size_t e = strspn(text, "0123456789.");
			if (!first && e >= 5 && text[e] == ' ')
				text += e + 1;
		}
		if (!first && n + 1 < size)
			out[n++] = ' ';
		for (const char *c = text; c < line + len && n + 1 < size; c++)
			out[n++] = *c >= 0x20 && *c < 0x7f ? *c : '?';
		first = false;
		if (end == NULL)
			break;
		line = end + 2;
	}
	out[n] = '\0';
}

/* "milter-reject: STAGE from localhost[127.0.0.1]: ..." as Postfix's. */
static void log_verdict(const char *id, const char *stage,
    const struct queue_envelope *env, const struct milter_verdict *v)
{
	char text[600], from[300], to[300];
	reply_line(v->reply, text, sizeof(text));
	log_escape(from, sizeof(from), env->sender, strlen(env->sender));
	const char *rcpt = env->nrcpts > 0 ? env->rcpts[0].address : "";
	log_escape(to, sizeof(to), rcpt, strlen(rcpt));
	const char *what = v->action == MILTER_VERDICT_DISCARD ? "discard" :
	    "reject";
	const char *shown = v->action == MILTER_VERDICT_DISCARD ?
	    "milter triggers DISCARD action" : text;
	log_info_as("pickup", "%s: milter-%s: %s from localhost[127.0.0.1]: "
	    "%s; from=<%s> to=<%s>", id, what, stage, shown, from, to);
}

enum pickup_result pickup_file(int dirfd_, const char *name)
{
	char err[256];
	struct queue_envelope in, out;
	struct stat st;
	enum pickup_result result = PICKUP_DONE;
	int fd = openat(dirfd_, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			maildrop_to_corrupt(name, "cannot be opened");
		return PICKUP_DONE;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		maildrop_to_corrupt(name, "not a regular file");
		return PICKUP_DONE;
	}
	queue_envelope_init(&in);
	enum queue_read_result rr = queue_read(fd, &in, err, sizeof(err));
	if (rr == QUEUE_READ_ERROR) {
		log_warning("maildrop file %s: read: %m", name);
		queue_envelope_free(&in);
		close(fd);
		return PICKUP_LATER;
	}
	const char *bad = check_envelope(rr, err, &in);
	if (bad != NULL) {
		queue_envelope_free(&in);
		close(fd);
		maildrop_to_corrupt(name, bad);
		return PICKUP_DONE;
	}

	/* A fresh envelope: only what a local user may decide. The arrival
	 * time is not one of those (a "T 1" would expire at once, past
	 * maximal_queue_lifetime): left at 0, the writer stamps it now. */
	queue_envelope_init(&out);
	out.sender = xstrdup(in.sender);
	out.body = in.body;
	out.smtputf8 = in.smtputf8;
	out.envid = in.envid ? xstrdup(in.envid) : NULL;
	out.ret = in.ret;
	out.kind = QUEUE_KIND_MAIL;
	queue_envelope_set_attr(&out, "origin", "local");
	char uid[32];
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)st.st_uid);
	queue_envelope_set_attr(&out, "uid", uid);
	for (size_t i = 0; i < in.nrcpts; i++)
		queue_envelope_add_rcpt(&out, in.rcpts[i].address,
		    in.rcpts[i].notify, in.rcpts[i].orcpt);

	/* The canonical maps, as Postfix's cleanup applies them to local
	 * mail: the envelope sender and recipients here, the header
	 * fields as the content is copied (the sink). */
	bool failed = false;
	if (canonical != NULL) {
		char *a = rewrite_address(canonical, REWRITE_SENDER, true,
		    out.sender, &failed);
		if (a != NULL) {
			free(out.sender);
			out.sender = a;
		}
		for (size_t i = 0; i < out.nrcpts; i++) {
			a = rewrite_address(canonical, REWRITE_RECIPIENT, true,
			    out.rcpts[i].address, &failed);
			if (a != NULL) {
				free(out.rcpts[i].address);
				out.rcpts[i].address = a;
			}
		}
	}

	struct msgid_scan ms;
	msgid_scan_init(&ms);
	struct sink sink = { .ms = &ms, .in_headers = canonical != NULL };
	str_init(&sink.hdr, STR_NO_MAX);
	const char *subdir = QUEUE_INCOMING;
	bool copied = true;
	bool drop = false;	/* discarded: nothing to queue */

	if (failed) {
		log_warning("pickup of maildrop file %s: a canonical table "
		    "cannot be read; tried again later", name);
		result = PICKUP_LATER;
	}
	if (result == PICKUP_DONE && pickup_milter_enabled()) {
		/* The filters see the whole message before anything is
		 * queued: their edits change the envelope, which comes
		 * first in the file. */
		struct milter_verdict v;
		const char *hold_reason = NULL, *stage = "";
		const char *id = strcmp(name, in.id) == 0 &&
		    queue_id_valid(name) ? name : "NOQUEUE";
		sink.m = milter_msg_new();
		copied = sink.m != NULL && copy_content(fd, in.content_offset,
		    in.content_length, in.body == QUEUE_BODY_BINARYMIME, &sink);
		if (copied && sink.failed) {
			log_warning("pickup of maildrop file %s: a canonical "
			    "table cannot be read; tried again later", name);
			result = PICKUP_LATER;
		} else if (copied && !pickup_milter_run(&out, id, uid, sink.m, &v,
		    &hold_reason, &stage)) {
			log_verdict(id, stage, &out, &v);
			if (v.action == MILTER_VERDICT_DISCARD) {
				drop = true;
			} else if (v.action == MILTER_VERDICT_TEMPFAIL) {
				result = PICKUP_LATER;
			} else {
				char reply[600];
				reply_line(v.reply, reply, sizeof(reply));
				queue_envelope_set_attr(&out, "milter_reject",
				    reply);
			}
		} else if (copied && hold_reason != NULL) {
			subdir = QUEUE_HOLD;
		}
	}

	struct queue_writer *w = NULL;
	if (!copied) {
		log_warning("pickup of maildrop file %s: copy failed: %m", name);
		result = PICKUP_LATER;
	} else if (result == PICKUP_DONE && !drop) {
		w = open_writer(subdir, name, &in, &out, err, sizeof(err));
		if (w == NULL) {
			log_warning("pickup of maildrop file %s: %s", name, err);
			result = PICKUP_LATER;
		}
	}
	if (w != NULL) {
		bool ok;
		if (sink.m != NULL) {
			ok = milter_msg_emit(sink.m, w);
		} else {
			sink.w = w;
			ok = copy_content(fd, in.content_offset,
			    in.content_length, in.body == QUEUE_BODY_BINARYMIME,
			    &sink);
		}
		if (!ok || sink.failed) {
			if (sink.failed)
				log_warning("pickup of maildrop file %s: a "
				    "canonical table cannot be read; tried "
				    "again later", name);
			else
				log_warning("pickup of maildrop file %s: copy "
				    "failed: %m", name);
			queue_writer_abort(w);
			result = PICKUP_LATER;
		} else if (!queue_writer_commit(w, err, sizeof(err))) {
			log_warning("pickup of maildrop file %s: %s", name, err);
			result = PICKUP_LATER;
		}
	}
	if (result == PICKUP_DONE) {
		char esc[300];
		/* The sender as submitted: Postfix's pickup logs before its
		 * cleanup's filters. */
		log_escape(esc, sizeof(esc), in.sender, strlen(in.sender));
		const char *id = drop ? name : out.id;
		/* Postfix's pickup line, under the name log readers count
		 * local submissions by (doc/logging.md). */
		if (strcmp(id, name) == 0)
			log_info_as("pickup", "%s: uid=%s from=<%s>", id, uid,
			    esc);
		else
			log_info_as("pickup", "%s: uid=%s from=<%s> "
			    "(maildrop file %s)", id, uid, esc, name);
		/* As Postfix's cleanup: the Message-ID a user reports leads
		 * to the queue ID. */
		const char *v = msgid_scan_value(&ms);
		char msgid[MSGID_VALUE_MAX + 8];
		log_escape(msgid, sizeof(msgid), v, strlen(v));
		log_info_as("pickup", "%s: message-id=%s", id, *v ? msgid :
		    "<>");
		if (strcmp(subdir, QUEUE_HOLD) == 0)
			log_info_as("pickup", "%s: milter-hold: END-OF-MESSAGE "
			    "from localhost[127.0.0.1]: milter triggers HOLD "
			    "action; from=<%s>", id, esc);
		if (unlinkat(dirfd_, name, 0) < 0)
			log_warning("remove maildrop file %s: %m", name);
	}
	milter_msg_free(sink.m);
	str_free(&sink.hdr);
	queue_envelope_free(&out);
	queue_envelope_free(&in);
	close(fd);
	return result;
}
