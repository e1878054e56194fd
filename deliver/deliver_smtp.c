/*
 * deliver_smtp.c - one mail transaction on an open SMTP or LMTP session:
 * MAIL, RCPT, DATA (or BDAT), the content, and the replies that decide
 * each recipient's fate.
 *
 * Rules this file carries out:
 * - PIPELINING (RFC 2920): MAIL, every RCPT and DATA leave in one write;
 *   the replies are read back in order. With CHUNKING too (RFC 3030), a
 *   message of up to 64 KiB goes with them as one BDAT LAST chunk, and
 *   every reply comes back in one read (one_trip()).
 * - SIZE (RFC 1870): a message larger than the peer's limit is not sent.
 * - SMTPUTF8 (RFC 6531 3.7.5): mail that needs it, to a peer without it,
 *   fails permanently.
 * - DSN (RFC 3461): RET, ENVID, NOTIFY, ORCPT go along when offered.
 * - 5xx to MAIL fails every recipient, 4xx defers every one; 5xx/4xx to
 *   RCPT decides that recipient; after DATA the reply applies to every
 *   accepted recipient. What a host deferred, deliver_dest.c may take to
 *   the next host. LMTP (RFC 2033 4.2): one reply per accepted
 *   recipient after the final dot.
 * - Transparency (RFC 5321 4.5.2): a line starting with "." gets another.
 * - 8BITMIME (RFC 6152 3): 8-bit content to a peer without it is
 *   converted to 7-bit MIME (deliver_mime.c), as Postfix does.
 * - DKIM (deliver_dkim.c): the signature fields, made over the content
 *   as it goes out to this peer, go before it.
 *
 * The content comes from the queue file, which qmgr trusts and so do we;
 * its bytes are copied, interpreted beyond line starts only for that
 * conversion.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "cfg.h"
#include "deliver.h"
#include "deliver_mime.h"
#include "idna.h"
#include "log.h"
#include "mem.h"

#define CONTENT_CHUNK 65536
/* Room for the DKIM-Signature fields of one message. */
#define DKIM_FIELDS_MAX (64 * 1024)

/* This transaction's DKIM-Signature fields; empty when not signed. */
static struct str dkim_fields;

static bool has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Can this envelope address go to a peer without SMTPUTF8? An ASCII
 * local part can, its domain in A-labels (RFC 6531 3.2, RFC 5891). */
static bool address_needs_utf8(const char *address)
{
	if (!has_8bit(address))
		return false;
	char *ascii = idna_address_to_ascii(address);
	bool convertible = ascii != NULL;
	free(ascii);
	return !convertible;
}

/*
 * Does this message need SMTPUTF8 from the next hop? Its envelope (but
 * for domains, which go as A-labels) or its header section carries
 * UTF-8 (RFC 6532). The body alone does not.
 */
static bool needs_smtputf8(const struct deliver_job *job)
{
	if (address_needs_utf8(job->j.sender))
		return true;
	for (size_t i = 0; i < job->nrcpts; i++)
		if (!job->rcpts[i].done &&
		    address_needs_utf8(job->rcpts[i].address))
			return true;

	char buf[CONTENT_CHUNK];
	off_t off = 0;
	int state = 0;		/* how much of CRLF CRLF we have seen */
	while (off < job->j.content_length) {
		size_t want = sizeof(buf);
		if ((off_t)want > job->j.content_length - off)
			want = (size_t)(job->j.content_length - off);
		ssize_t n = pread(job->content_fd, buf, want,
		    job->j.content_offset + off);
		if (n <= 0)
			return false;
		for (ssize_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)buf[i];
			if (c >= 0x80)
				return true;
			static const char end[] = "\r\n\r\n";
			state = c == (unsigned char)end[state] ? state + 1 :
			    c == '\r' ? 1 : 0;
			if (state == 4)
				return false;	/* end of the header section */
		}
		off += n;
	}
	return false;
}

/* NOTIFY=... value (RFC 3461 4.1) from QUEUE_NOTIFY_* bits. */
static void notify_text(unsigned notify, char *out, size_t outsize)
{
	out[0] = '\0';
	if (notify & QUEUE_NOTIFY_NEVER) {
		snprintf(out, outsize, "NEVER");
		return;
	}
	const char *sep = "";
	static const struct { unsigned bit; const char *word; } words[] = {
		{ QUEUE_NOTIFY_SUCCESS, "SUCCESS" },
		{ QUEUE_NOTIFY_FAILURE, "FAILURE" },
		{ QUEUE_NOTIFY_DELAY, "DELAY" },
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (notify & words[i].bit) {
			size_t len = strlen(out);
			snprintf(out + len, outsize - len, "%s%s", sep,
			    words[i].word);
			sep = ",";
		}
	}
}

/* An envelope address as this peer may see it: a UTF-8 domain in
 * A-labels when the peer has no SMTPUTF8 (precheck made sure the rest
 * is ASCII). malloc'd. */
static char *envelope_address(const struct deliver_session *s,
    const char *address)
{
	if ((s->ext & SESS_EXT_SMTPUTF8) || !has_8bit(address))
		return xstrdup(address);
	char *ascii = idna_address_to_ascii(address);
	return ascii != NULL ? ascii : xstrdup(address);
}

static void queue_mail_command(struct deliver_session *s,
    const struct deliver_job *job)
{
	char *sender = envelope_address(s, deliver_generic_sender(job));
	bio_printf(&s->bio, "MAIL FROM:<%s>", sender);
	free(sender);
	if (s->ext & SESS_EXT_SIZE)
		bio_printf(&s->bio, " SIZE=%lld", (long long)job->j.content_length +
		    (long long)dkim_fields.len);
	if (job->j.body == QUEUE_BODY_8BITMIME && (s->ext & SESS_EXT_8BITMIME))
		bio_puts(&s->bio, " BODY=8BITMIME");
	else if (job->j.body == QUEUE_BODY_BINARYMIME)
		bio_puts(&s->bio, " BODY=BINARYMIME");
	if (job->j.smtputf8 && (s->ext & SESS_EXT_SMTPUTF8))
		bio_puts(&s->bio, " SMTPUTF8");
	/* RFC 8689 4.2.1: the requirement goes on with the message. */
	if (job->requiretls && (s->ext & SESS_EXT_REQUIRETLS))
		bio_puts(&s->bio, " REQUIRETLS");
	if (s->ext & SESS_EXT_DSN) {
		if (job->j.ret == QUEUE_RET_FULL)
			bio_puts(&s->bio, " RET=FULL");
		else if (job->j.ret == QUEUE_RET_HDRS)
			bio_puts(&s->bio, " RET=HDRS");
		if (job->j.envid != NULL) {
			char *x = addr_xtext_encode(job->j.envid);
			bio_printf(&s->bio, " ENVID=%s", x);
			free(x);
		}
	}
	/*
	 * RFC 4954 5: the submitter goes on to a server that supports AUTH;
	 * only to one we authenticated to, which may trust it (any other
	 * must take it as <>, and should not learn the submitter).
	 */
	if (job->j.auth != NULL && s->authenticated && (s->ext & SESS_EXT_AUTH)) {
		if (strcmp(job->j.auth, "<>") == 0) {
			bio_puts(&s->bio, " AUTH=<>");
		} else {
			char *x = addr_xtext_encode(job->j.auth);
			bio_printf(&s->bio, " AUTH=%s", x);
			free(x);
		}
	}
	bio_puts(&s->bio, "\r\n");
}

static void queue_rcpt_command(struct deliver_session *s,
    const struct deliver_rcpt *r)
{
	char *rcpt = envelope_address(s, deliver_generic_rcpt(r));
	bio_printf(&s->bio, "RCPT TO:<%s>", rcpt);
	free(rcpt);
	if (s->ext & SESS_EXT_DSN) {
		char notify[64];
		notify_text(r->notify, notify, sizeof(notify));
		if (notify[0] != '\0')
			bio_printf(&s->bio, " NOTIFY=%s", notify);
		const char *semi = r->orcpt ? strchr(r->orcpt, ';') : NULL;
		if (semi != NULL) {
			/* RFC 3461 4.2: addr-type ";" xtext */
			char *x = addr_xtext_encode(semi + 1);
			bio_printf(&s->bio, " ORCPT=%.*s;%s",
			    (int)(semi - r->orcpt), r->orcpt, x);
			free(x);
		}
	}
	bio_puts(&s->bio, "\r\n");
}

/*
 * Dot-stuffing (RFC 5321 4.5.2) on the way into the session's buffer. A
 * line starts after LF, and (for peers that take a bare CR as a line
 * end) after a CR; doubling a dot there never changes a well-formed
 * message.
 */
struct stuffer {
	struct deliver_session *s;
	char prev;		/* the last byte written; '\n' at the start */
	bool failed;		/* the buffer could not be flushed */
};

static void stuff_write(void *ctx, const char *data, size_t len)
{
	struct stuffer *st = ctx;
	size_t from = 0;

	if (st->failed || len == 0)
		return;
	/* Each flush of the body within what is left of the session. */
	deliver_session_set_timeout(st->s);
	/*
	 * A dot needs its double only at a line start, that is after LF or
	 * CR: look at the dots alone (memchr), not at every byte.
	 */
	const char *dot = memchr(data, '.', len);
	while (dot != NULL) {
		size_t i = (size_t)(dot - data);
		char before = i > 0 ? data[i - 1] : st->prev;
		if (before == '\n' || before == '\r') {
			bio_write(&st->s->bio, data + from, i - from);
			bio_write(&st->s->bio, ".", 1);
			from = i;
		}
		dot = memchr(dot + 1, '.', len - i - 1);
	}
	st->prev = data[len - 1];
	if (!bio_write(&st->s->bio, data + from, len - from))
		st->failed = true;	/* the flush reports the failure */
}

/* The end of DATA: the content's last line end is the "." line's CRLF. */
static void stuff_finish(struct stuffer *st)
{
	if (st->prev != '\n')
		bio_write(&st->s->bio, "\r\n", 2);
	bio_write(&st->s->bio, ".\r\n", 3);
}

/* Copy the content, stuffed, and end it. */
static bool send_content_data(struct deliver_session *s,
    const struct deliver_job *job, char *err, size_t errsize)
{
	char buf[CONTENT_CHUNK];
	off_t off = 0;
	struct stuffer st = { s, '\n', false };

	if (dkim_fields.len > 0)
		stuff_write(&st, dkim_fields.data, dkim_fields.len);
	/* What deliver.c read already; a small message is all there. */
	if (job->head_len > 0) {
		stuff_write(&st, job->head, job->head_len);
		off = (off_t)job->head_len;
	}

	while (off < job->j.content_length && !st.failed) {
		size_t want = sizeof(buf);
		if ((off_t)want > job->j.content_length - off)
			want = (size_t)(job->j.content_length - off);
		ssize_t n = pread(job->content_fd, buf, want,
		    job->j.content_offset + off);
		if (n <= 0) {
			snprintf(err, errsize, "cannot read queue file %s: %s",
			    job->j.queue_file, n == 0 ? "file too short" :
			    strerror(errno));
			return false;
		}
		stuff_write(&st, buf, (size_t)n);
		off += n;
	}
	stuff_finish(&st);
	return true;
}

/*
 * The content mapped into memory, for the MIME conversion; NULL with err
 * set when it cannot be. *base and *maplen are for munmap.
 */
static const char *map_content(const struct deliver_job *job, void **base,
    size_t *maplen, char *err, size_t errsize)
{
	struct stat st;
	*maplen = (size_t)(job->j.content_offset + job->j.content_length);
	if (fstat(job->content_fd, &st) != 0 || st.st_size < (off_t)*maplen) {
		snprintf(err, errsize, "cannot read queue file %s: %s",
		    job->j.queue_file, "file too short");
		return NULL;
	}
	*base = mmap(NULL, *maplen, PROT_READ, MAP_PRIVATE, job->content_fd, 0);
	if (*base == MAP_FAILED) {
		snprintf(err, errsize, "cannot map queue file %s: %s",
		    job->j.queue_file, strerror(errno));
		return NULL;
	}
	return (const char *)*base + job->j.content_offset;
}

/*
 * RFC 6152 3: 8-bit content for a peer without 8BITMIME goes as 7-bit
 * MIME (deliver_mime.c); content with no 8-bit byte goes as it is.
 */
static bool send_content_downgraded(struct deliver_session *s,
    const struct deliver_job *job, char *err, size_t errsize)
{
	if (job->j.content_length == 0)
		return send_content_data(s, job, err, errsize);
	void *base;
	size_t maplen;
	const char *msg = map_content(job, &base, &maplen, err, errsize);
	if (msg == NULL)
		return false;
	size_t len = (size_t)job->j.content_length;
	struct stuffer st = { s, '\n', false };
	if (dkim_fields.len > 0)
		stuff_write(&st, dkim_fields.data, dkim_fields.len);
	if (deliver_mime_has_8bit(msg, len))
		deliver_mime_downgrade(msg, len, stuff_write, &st);
	else
		stuff_write(&st, msg, len);
	stuff_finish(&st);
	munmap(base, maplen);
	return true;
}

/* RFC 3030: the content as one chunk, not stuffed. */
static bool send_content_bdat(struct deliver_session *s,
    const struct deliver_job *job, char *err, size_t errsize)
{
	char buf[CONTENT_CHUNK];
	off_t off = 0;

	bio_printf(&s->bio, "BDAT %lld LAST\r\n", (long long)job->j.content_length +
	    (long long)dkim_fields.len);
	if (dkim_fields.len > 0)
		bio_write(&s->bio, dkim_fields.data, dkim_fields.len);
	while (off < job->j.content_length) {
		size_t want = sizeof(buf);
		if ((off_t)want > job->j.content_length - off)
			want = (size_t)(job->j.content_length - off);
		ssize_t n = pread(job->content_fd, buf, want,
		    job->j.content_offset + off);
		if (n <= 0) {
			snprintf(err, errsize, "cannot read queue file %s: %s",
			    job->j.queue_file, n == 0 ? "file too short" :
			    strerror(errno));
			return false;
		}
		deliver_session_set_timeout(s);
		if (!bio_write(&s->bio, buf, (size_t)n))
			return true;
		off += n;
	}
	return true;
}

static void rcpt_finish(struct deliver_rcpt *r, const struct deliver_outcome *o)
{
	deliver_outcome_set(&r->out, o->status, o->dsn, o->diag, o->text);
	r->done = true;
	r->accepted = false;
}

/* Apply a reply (in the session's current state) to one recipient. */
static void rcpt_reply(struct deliver_session *s, struct deliver_rcpt *r)
{
	struct deliver_outcome o = { 0 };
	deliver_session_reply_outcome(s, &o);
	rcpt_finish(r, &o);
	deliver_outcome_free(&o);
}

/* Apply to every recipient accepted in this transaction. */
static void accepted_reply(struct deliver_session *s, struct deliver_job *job)
{
	for (size_t i = 0; i < job->nrcpts; i++)
		if (job->rcpts[i].accepted)
			rcpt_reply(s, &job->rcpts[i]);
}

/* The session broke: every open recipient is deferred. */
static void io_failure(struct deliver_session *s, struct deliver_job *job)
{
	struct deliver_outcome o = { 0 };
	deliver_session_io_failure(s, &o, s->last_io);
	deliver_fail_open(job, o.status, o.dsn, o.diag, o.text);
	deliver_outcome_free(&o);
	s->usable = false;
}

/* Back to a clean state after a failed transaction (RFC 5321 4.1.1.5). */
static void reset(struct deliver_session *s)
{
	deliver_session_enter(s, SESS_RSET);
	bio_puts(&s->bio, "RSET\r\n");
	if (!deliver_session_flush(s) || !deliver_session_read_reply(s) ||
	    s->reply.code / 100 != 2)
		s->usable = false;
	deliver_session_enter(s, SESS_READY);
}

/* Checks before MAIL: what the peer announced rules some mail out. */
static bool precheck(struct deliver_session *s, struct deliver_job *job)
{
	char text[700];

	if ((s->ext & SESS_EXT_SIZE) && s->size_limit > 0 &&
	    job->j.content_length > s->size_limit) {
		snprintf(text, sizeof(text), "message size %lld exceeds size "
		    "limit %lld of server %s", (long long)job->j.content_length,
		    s->size_limit, s->relay);
		deliver_fail_open(job, 'B', "5.3.4", text, text);
		return false;
	}
	if (job->j.smtputf8 && !(s->ext & SESS_EXT_SMTPUTF8) &&
	    needs_smtputf8(job)) {
		snprintf(text, sizeof(text), "SMTPUTF8 is required, but was "
		    "not offered by host %s", s->relay);
		deliver_fail_open(job, 'B', "5.6.7", text, text);
		return false;
	}
	if (job->j.body == QUEUE_BODY_BINARYMIME &&
	    (s->ext & (SESS_EXT_CHUNKING | SESS_EXT_BINARYMIME)) !=
	    (SESS_EXT_CHUNKING | SESS_EXT_BINARYMIME)) {
		snprintf(text, sizeof(text), "message is BINARYMIME, but host "
		    "%s does not offer CHUNKING and BINARYMIME", s->relay);
		deliver_fail_open(job, 'B', "5.6.3", text, text);
		return false;
	}
	return deliver_requiretls_check(s, job);
}

/*
 * Can the whole transaction, content included, go in one write and its
 * replies come back in one read (RFC 2920 with RFC 3030 2's pipelined
 * BDAT LAST)? One round trip per message instead of two: the wait for
 * 354, and a wake-up of deliver, go. Only for a message deliver.c read
 * whole (DELIVER_HEAD_MAX, 64 KiB): a server that refuses every
 * recipient has been sent the content for nothing, and 64 KiB is a few
 * milliseconds on a WAN link, less than the round trip saved; a larger
 * message waits for the RCPT replies before it is sent.
 * Content that would need a 7-bit downgrade (8-bit, a peer without
 * 8BITMIME) keeps DATA, where the conversion lives. To SMTP servers
 * only while smtp_chunking is on (a peer that offers CHUNKING and
 * mishandles BDAT).
 */
static bool one_trip(const struct deliver_session *s,
    const struct deliver_job *job)
{
	unsigned need = SESS_EXT_PIPELINING | SESS_EXT_CHUNKING;
	if ((s->ext & need) != need || (!s->lmtp && !cfg.smtp_chunking) ||
	    job->j.body == QUEUE_BODY_BINARYMIME ||
	    job->head_len != (size_t)job->j.content_length)
		return false;
	return (s->ext & SESS_EXT_8BITMIME) ||
	    !deliver_mime_has_8bit(job->head, job->head_len);
}

/*
 * The content, already in memory, as one BDAT LAST chunk (RFC 3030 2),
 * not stuffed. A last line without CRLF gets one, as the DATA path's
 * end of data gives it: the server stores the same bytes either way.
 */
static void queue_content_chunk(struct deliver_session *s,
    const struct deliver_job *job)
{
	bool end_line = job->head_len > 0 &&
	    job->head[job->head_len - 1] != '\n';
	bio_printf(&s->bio, "BDAT %zu LAST\r\n", dkim_fields.len +
	    job->head_len + (end_line ? 2 : 0));
	if (dkim_fields.len > 0)
		bio_write(&s->bio, dkim_fields.data, dkim_fields.len);
	bio_write(&s->bio, job->head, job->head_len);
	if (end_line)
		bio_write(&s->bio, "\r\n", 2);
}

/*
 * The replies to the end of the content: one (SMTP), or one per accepted
 * recipient (LMTP, RFC 2033 4.2). False when the connection broke.
 */
static bool end_of_data_replies(struct deliver_session *s,
    struct deliver_job *job)
{
	deliver_session_enter(s, SESS_DOT);
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct deliver_rcpt *r = &job->rcpts[i];
		if (!r->accepted)
			continue;
		if (!deliver_session_read_reply(s))
			return false;
		if (s->lmtp) {
			rcpt_reply(s, r);
		} else {
			accepted_reply(s, job);
			break;
		}
	}
	s->uses++;
	deliver_session_enter(s, SESS_READY);
	return true;
}

/*
 * The replies after the pipelined BDAT LAST. MAIL refused or no
 * recipient accepted: the server reads the chunk all the same (its
 * octets follow the command whatever the reply, RFC 3030 2) and refuses
 * it (503, 554); that reply only keeps us in step. Otherwise one reply
 * per accepted recipient (LMTP, RFC 2033 4.2) or one for all (SMTP),
 * which decides them as the reply to DATA's final dot would. A refused
 * BDAT fails the transaction (RFC 3030 2), in a state the RFC does not
 * spell out: RSET, as after its other BDAT errors.
 */
static bool one_trip_replies(struct deliver_session *s,
    struct deliver_job *job, bool mail_ok, size_t naccepted)
{
	deliver_session_enter(s, SESS_DOT);
	if (!mail_ok || naccepted == 0) {
		if (!deliver_session_read_reply(s))
			return false;
		reset(s);
		return true;
	}
	if (!end_of_data_replies(s, job))
		return false;
	if (!s->lmtp && s->reply.code / 100 != 2)
		reset(s);
	return true;
}

bool deliver_smtp_transaction(struct deliver_session *s,
    struct deliver_job *job, bool may_retry)
{
	bool pipelining = (s->ext & SESS_EXT_PIPELINING) != 0;
	bool bdat = job->j.body == QUEUE_BODY_BINARYMIME;
	bool whole = false;	/* one_trip(), decided after the signing */
	size_t naccepted = 0;
	char err[512];

	job->local_trouble = false;
	if (!precheck(s, job))
		return true;
	/* smtp_generic_maps before the signature, which must cover the
	 * header fields as they leave. */
	if (!deliver_generic_prepare(job, err, sizeof(err))) {
		log_warning("%s: %s", job->j.queue_id, err);
		deliver_fail_open(job, 'D', "4.3.0", err, err);
		job->local_trouble = true;
		return true;
	}
	/* Signed before MAIL: a key that cannot be read defers the mail
	 * without a transaction begun. */
	if (dkim_fields.max == 0)
		str_init(&dkim_fields, DKIM_FIELDS_MAX);
	str_clear(&dkim_fields);
	if (!deliver_dkim_sign(job, !bdat && !(s->ext & SESS_EXT_8BITMIME),
	    &dkim_fields, err, sizeof(err))) {
		log_warning("%s: %s", job->j.queue_id, err);
		deliver_fail_open(job, 'D', "4.3.0", err, err);
		job->local_trouble = true;
		return true;
	}
	for (size_t i = 0; i < job->nrcpts; i++) {
		job->rcpts[i].in_txn = !job->rcpts[i].done;
		job->rcpts[i].accepted = false;
	}

	/* MAIL, then RCPT for each open recipient, then DATA (or the
	 * content itself, one_trip()). */
	deliver_session_enter(s, SESS_MAIL);
	/* The DSN parameters go along (RFC 3461 4.1): this peer reports. */
	job->dsn_passed = (s->ext & SESS_EXT_DSN) != 0;
	whole = one_trip(s, job);
	queue_mail_command(s, job);
	if (pipelining) {
		for (size_t i = 0; i < job->nrcpts; i++)
			if (job->rcpts[i].in_txn)
				queue_rcpt_command(s, &job->rcpts[i]);
		if (whole)
			queue_content_chunk(s, job);
		else if (!bdat)
			bio_puts(&s->bio, "DATA\r\n");
	}
	if (!deliver_session_flush(s) || !deliver_session_read_reply(s))
		goto broken_early;

	/* The MAIL reply is in hand. */
	bool mail_ok = s->reply.code / 100 == 2;
	if (!mail_ok) {
		struct deliver_outcome o = { 0 };
		deliver_session_reply_outcome(s, &o);
		deliver_fail_open(job, o.status, o.dsn, o.diag, o.text);
		deliver_outcome_free(&o);
		if (!pipelining) {
			reset(s);
			return true;
		}
	}

	/*
	 * RCPT replies; without pipelining each command goes out first.
	 * After a failed MAIL the pipelined replies are read only to stay in
	 * step with the server.
	 */
	deliver_session_enter(s, SESS_RCPT);
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct deliver_rcpt *r = &job->rcpts[i];
		if (!r->in_txn)
			continue;
		if (!pipelining) {
			queue_rcpt_command(s, r);
			if (!deliver_session_flush(s))
				goto broken;
		}
		if (!deliver_session_read_reply(s))
			goto broken;
		if (!mail_ok)
			continue;
		if (s->reply.code / 100 == 2) {
			r->accepted = true;
			naccepted++;
		} else {
			rcpt_reply(s, r);
		}
	}

	if (whole) {
		if (!one_trip_replies(s, job, mail_ok, naccepted))
			goto broken;
		return true;
	}

	/* DATA */
	deliver_session_enter(s, SESS_DATA);
	if (!bdat) {
		if (!pipelining) {
			if (naccepted == 0) {
				reset(s);
				return true;
			}
			bio_puts(&s->bio, "DATA\r\n");
			if (!deliver_session_flush(s))
				goto broken;
		}
		if (!deliver_session_read_reply(s))
			goto broken;
		if (s->reply.code != 354) {
			if (mail_ok)
				accepted_reply(s, job);
			reset(s);
			return true;
		}
		if (naccepted == 0) {
			/*
			 * RFC 2920 3.1: a server that said 354 although no
			 * recipient was accepted gets an empty message.
			 */
			deliver_session_enter(s, SESS_DOT);
			bio_puts(&s->bio, ".\r\n");
			if (!deliver_session_flush(s) || !deliver_session_read_reply(s))
				goto broken;
			reset(s);
			return true;
		}
	} else if (naccepted == 0 || !mail_ok) {
		reset(s);
		return true;
	}

	/* The content. */
	deliver_session_enter(s, SESS_BODY);
	bool read_ok;
	if (bdat)
		read_ok = send_content_bdat(s, job, err, sizeof(err));
	else if (!(s->ext & SESS_EXT_8BITMIME))
		read_ok = send_content_downgraded(s, job, err, sizeof(err));
	else
		read_ok = send_content_data(s, job, err, sizeof(err));
	if (!read_ok) {
		/* Our own trouble: do not let a partial message through. */
		log_warning("%s: %s", job->j.queue_id, err);
		deliver_fail_open(job, 'D', "4.3.0", err, err);
		job->local_trouble = true;
		deliver_session_close(s, false);
		return true;
	}
	if (!deliver_session_flush(s))
		goto broken;

	if (!end_of_data_replies(s, job))
		goto broken;
	return true;

broken_early:
	/* Nothing accepted yet: a cached connection may just have died. */
	if (may_retry) {
		s->usable = false;
		return false;
	}
broken:
	io_failure(s, job);
	return true;
}
