/*
 * deliver_generic.c - smtp_generic_maps (generic(5)): the addresses of a
 * message that leaves by SMTP, envelope and header fields, rewritten on
 * the way out only, as Postfix's smtp client does
 * (root@host.localdomain becomes admin@example.org for the world; the
 * queue, the logs and local deliveries keep the original).
 *
 * The envelope: the rewritten sender and recipients are kept beside the
 * job's own (deliver_generic_sender(), deliver_generic_rcpt()), so that
 * results, logs and DSNs still name the addresses qmgr gave.
 * The header fields: when one changes, the content with the rewritten
 * header block goes into an anonymous memory file made as a copy of the
 * queue file (the envelope records, the D length patched, the content,
 * the C record), which takes the queue file's descriptor number: every
 * later reader (DKIM signing, which must sign what leaves, the MIME
 * downgrade, BDAT, the dot-stuffing copy) reads the rewritten message
 * without knowing.
 *
 * Trusts: the queue file (qmgr's) and the config's tables; the header
 * text is parsed by mail/rewrite.c, which puts back only table values.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bio.h"
#include "deliver.h"
#include "log.h"
#include "mem.h"
#include "queue_format.h"
#include "rewrite.h"

static struct rewrite *generic;

void deliver_generic_init(void)
{
	generic = rewrite_open_configured(REWRITE_GENERIC);
}

const char *deliver_generic_sender(const struct deliver_job *job)
{
	return job->generic_sender ? job->generic_sender : job->j.sender;
}

const char *deliver_generic_rcpt(const struct deliver_rcpt *r)
{
	return r->generic ? r->generic : r->address;
}

/*
 * The queue file again in memory with a new header block: false with
 * err when it cannot be made (the caller defers).
 */
static bool swap_content(struct deliver_job *job, const char *base,
    size_t hdr_end, const char *block, size_t block_len, char *err,
    size_t errsize)
{
	const char *env = base;
	size_t env_len = (size_t)job->j.content_offset;
	const char *content = base + job->j.content_offset;
	size_t clen = (size_t)job->j.content_length;
	size_t dlen = QUEUE_LENGTH_DIGITS + 3;	/* "D " digits "\n" */

	/* The D record is the envelope's last (queue-format.md). */
	if (env_len < dlen || env[env_len - dlen] != 'D' ||
	    env[env_len - dlen + 1] != ' ' || env[env_len - 1] != '\n') {
		snprintf(err, errsize, "queue file %s: no D record before "
		    "the content", job->j.queue_file);
		return false;
	}
	size_t new_len = block_len + (clen - hdr_end);
	char digits[QUEUE_LENGTH_DIGITS + 2];
	char trailer[QUEUE_LENGTH_DIGITS + 8];
	snprintf(digits, sizeof(digits), "%0*zu", QUEUE_LENGTH_DIGITS, new_len);
	int tlen = snprintf(trailer, sizeof(trailer), "C %zu\n", new_len);
	int fd = memfd_create("postern-generic", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsize, "memfd_create: %s", strerror(errno));
		return false;
	}
	bool ok = fd_write_all(fd, env, env_len - dlen + 2) &&
	    fd_write_all(fd, digits, QUEUE_LENGTH_DIGITS) &&
	    fd_write_all(fd, "\n", 1) &&
	    fd_write_all(fd, block, block_len) &&
	    fd_write_all(fd, content + hdr_end, clen - hdr_end) &&
	    fd_write_all(fd, trailer, (size_t)tlen);
	/* The same descriptor number: whoever holds it reads the copy. */
	if (!ok || dup3(fd, job->content_fd, O_CLOEXEC) < 0) {
		snprintf(err, errsize, "cannot copy the message: %s",
		    strerror(errno));
		close(fd);
		return false;
	}
	close(fd);
	job->j.content_length = (off_t)new_len;
	/* deliver.c's head was of the old content: the copy is read. */
	free(job->head);
	job->head = NULL;
	job->head_len = 0;
	return true;
}

bool deliver_generic_prepare(struct deliver_job *job, char *err,
    size_t errsize)
{
	bool failed = false;

	if (generic == NULL || job->transport != TRANSPORT_SMTP ||
	    job->generic_done)
		return true;
	free(job->generic_sender);
	job->generic_sender = rewrite_address(generic, REWRITE_SENDER, true,
	    job->j.sender, &failed);
	for (size_t i = 0; i < job->nrcpts && !failed; i++) {
		free(job->rcpts[i].generic);
		job->rcpts[i].generic = rewrite_address(generic,
		    REWRITE_RECIPIENT, true, job->rcpts[i].address, &failed);
	}
	if (failed) {
		snprintf(err, errsize, "smtp_generic_maps: a table cannot be "
		    "read");
		return false;
	}
	if (job->j.content_length == 0) {
		job->generic_done = true;
		return true;
	}
	size_t maplen = (size_t)(job->j.content_offset + job->j.content_length);
	void *base = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE,
	    job->content_fd, 0);
	if (base == MAP_FAILED) {
		snprintf(err, errsize, "cannot read queue file %s: %s",
		    job->j.queue_file, strerror(errno));
		return false;
	}
	const char *content = (const char *)base + job->j.content_offset;
	size_t hdr_end = rewrite_header_end(content,
	    (size_t)job->j.content_length);
	size_t block_len = 0;
	char *block = rewrite_header_block(generic, content, hdr_end,
	    &block_len, &failed);
	bool ok = true;
	if (failed) {
		snprintf(err, errsize, "smtp_generic_maps: a table cannot be "
		    "read");
		ok = false;
	} else if (block != NULL) {
		ok = swap_content(job, base, hdr_end, block, block_len, err,
		    errsize);
	}
	free(block);
	munmap(base, maplen);
	if (ok)
		job->generic_done = true;
	return ok;
}
