/*
 * lmtpd_spool.c - the message data of one LMTP transaction, held once and
 * copied into every recipient's Maildir.
 *
 * Trusts nothing about the bytes: they are the client's message, as the
 * server core's readers hand it over line by line (mail/smtp_server_data.c
 * holds the bare CR/LF policy and counts the hops). What it does to them
 * is what the Maildir convention asks: lines end in LF. It stops storing
 * past the size limit while still counting, so the client gets one clean
 * 552 at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bio.h"
#include "cfg.h"
#include "lmtpd.h"
#include "log.h"
#include "mem.h"
#include "str.h"

/* Once in a temporary file, writes are gathered into this many bytes. */
#define SPOOL_WRITE_CHUNK (64 * 1024)

void lmtpd_spool_init(struct lmtpd_spool *sp, long long limit)
{
	memset(sp, 0, sizeof(*sp));
	str_init(&sp->mem, STR_NO_MAX);
	sp->fd = -1;
	sp->limit = limit;
}

void lmtpd_spool_free(struct lmtpd_spool *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	str_free(&sp->mem);
}

void lmtpd_spool_reset(struct lmtpd_spool *sp)
{
	struct str keep = sp->mem;
	long long limit = sp->limit;

	if (sp->fd >= 0)
		close(sp->fd);
	str_clear(&keep);
	memset(sp, 0, sizeof(*sp));
	sp->mem = keep;
	sp->fd = -1;
	sp->limit = limit;
}

/* An unlinked file for a large message: in mailbox_base, else /tmp. */
static int spool_open_file(void)
{
	const char *dirs[] = { cfg.mailbox_base, getenv("TMPDIR"), "/tmp" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (dirs[i] == NULL || dirs[i][0] != '/')
			continue;
		int fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		/* File systems without O_TMPFILE: a named file, unlinked. */
		char *path = xasprintf("%s/.lmtpd-spool.XXXXXX", dirs[i]);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
		free(path);
		if (fd >= 0)
			return fd;
	}
	return -1;
}

static void spool_flush(struct lmtpd_spool *sp)
{
	if (sp->fd < 0 || sp->mem.len == 0)
		return;
	if (!sp->write_failed &&
	    !fd_write_all(sp->fd, sp->mem.data, sp->mem.len)) {
		sp->write_failed = true;
		sp->write_errno = errno;
	}
	str_clear(&sp->mem);
}

/* Store bytes that are already in their final (LF) form. */
static void spool_store(struct lmtpd_spool *sp, const char *p, size_t len)
{
	if (sp->too_big || sp->write_failed || len == 0)
		return;
	if (sp->limit > 0 && (long long)sp->size + (long long)len > sp->limit) {
		/* Keep nothing more: the message will be refused as a whole. */
		sp->too_big = true;
		return;
	}
	if (sp->fd < 0 && sp->mem.len + len > LMTPD_SPOOL_MEMORY) {
		sp->fd = spool_open_file();
		if (sp->fd < 0) {
			sp->write_failed = true;
			sp->write_errno = errno;
			log_warning("cannot create a temporary spool file: %m");
			return;
		}
	}
	if (!str_append(&sp->mem, p, len))
		log_panic("lmtpd_spool: memory buffer limit");
	sp->size += (off_t)len;
	if (sp->fd >= 0 && sp->mem.len >= SPOOL_WRITE_CHUNK)
		spool_flush(sp);
}

void lmtpd_spool_put_line(struct lmtpd_spool *sp, const char *p, size_t len,
    bool complete)
{
	sp->received_bytes += len + (complete ? 2 : 0);
	spool_store(sp, p, len);
	if (complete)
		spool_store(sp, "\n", 1);
}

void lmtpd_spool_finish(struct lmtpd_spool *sp)
{
	spool_flush(sp);
}

/* Two buffers in as few writes as the kernel takes them. */
static bool writev_all(int fd, const char *a, size_t alen, const char *b,
    size_t blen)
{
	while (alen > 0) {
		struct iovec iov[2] = {
			{ (void *)a, alen }, { (void *)b, blen },
		};
		ssize_t n = writev(fd, iov, 2);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if ((size_t)n < alen) {
			a += n;
			alen -= (size_t)n;
		} else {
			b += (size_t)n - alen;
			blen -= (size_t)n - alen;
			alen = 0;
		}
	}
	return fd_write_all(fd, b, blen);
}

bool lmtpd_spool_copy_to(struct lmtpd_spool *sp, int fd)
{
	return lmtpd_spool_copy_after(sp, fd, "", 0);
}

bool lmtpd_spool_copy_after(struct lmtpd_spool *sp, int fd,
    const char *prefix, size_t prefix_len)
{
	if (sp->write_failed) {
		errno = sp->write_errno;
		return false;
	}
	if (sp->fd < 0)
		return writev_all(fd, prefix, prefix_len, str_cstr(&sp->mem),
		    sp->mem.len);
	if (!fd_write_all(fd, prefix, prefix_len))
		return false;
	spool_flush(sp);
	if (sp->write_failed) {
		errno = sp->write_errno;
		return false;
	}

	char buf[SPOOL_WRITE_CHUNK];
	off_t off = 0;
	while (off < sp->size) {
		ssize_t n = pread(sp->fd, buf, sizeof(buf), off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (n == 0) {
			errno = EIO;	/* the file is shorter than we wrote */
			return false;
		}
		if (!fd_write_all(fd, buf, (size_t)n))
			return false;
		off += n;
	}
	return true;
}
