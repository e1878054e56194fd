/*
 * bio.h - buffered, bounded I/O over a socket or file descriptor.
 *
 * Every network read in postern goes through a struct bio: reads are large
 * and buffered, every wait has a deadline, every line has a maximum length.
 * Lines end only at CRLF; a bare CR or bare LF inside a line is kept as
 * data and reported in flags, never treated as a line end (RFC 5321 2.3.8,
 * and the SMTP smuggling class of bugs). Writes are buffered until
 * bio_flush(), so replies to a pipelined group leave in one write.
 *
 * A transport layer (TLS) plugs in through the ops table; the buffering
 * and line logic above it do not change.
 */
#ifndef POSTERN_BIO_H
#define POSTERN_BIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "str.h"

enum bio_status {
	BIO_OK = 0,
	BIO_EOF,	/* peer closed before a complete line / all bytes */
	BIO_TIMEOUT,	/* deadline passed */
	BIO_TOOLONG,	/* line longer than max: consumed through CRLF, dropped */
	BIO_ERROR,	/* I/O error (errno set) */
};

/* Flags describing the line just read. */
#define BIO_LINE_BARE_LF 0x01	/* an LF not preceded by CR inside the line */
#define BIO_LINE_BARE_CR 0x02	/* a CR not followed by LF inside the line */
#define BIO_LINE_PARTIAL 0x04	/* bio_readline_part: no CRLF yet, more follows */

struct bio;

/* Transport operations; the default is plain read(2)/write(2). */
struct bio_ops {
	/* Like read(2)/write(2); return -1 with errno EAGAIN to wait. */
	ssize_t (*read)(struct bio *b, void *buf, size_t len);
	ssize_t (*write)(struct bio *b, const void *buf, size_t len);
	/* Bytes the transport holds already decrypted (0 for plain). */
	size_t (*pending)(struct bio *b);
	/* Which poll events the transport waits for after EAGAIN. */
	short (*want)(struct bio *b);
};

struct bio {
	int fd;
	int timeout_ms;		/* per wait; < 0 means no deadline */
	long long hard_deadline; /* monotonic ms over every wait; 0: none */
	char *rbuf;
	size_t rpos, rlen, rcap;
	char *wbuf;
	size_t wlen, wcap;
	const struct bio_ops *ops;
	void *transport;	/* e.g. the SSL object */
	bool write_failed;	/* sticky: a write or flush failed */
	bool lf_ends_line;	/* a local peer (sendmail -bs, as a terminal
				 * or script writes): LF alone ends a line
				 * too; never for a network peer */
	/*
	 * Called before every wait and whenever a signal interrupts one
	 * (NULL: none). It may lower timeout_ms (a server told by a signal
	 * that it is under stress); the wait in progress then ends at most
	 * the new timeout_ms from that moment, and so does the rest of the
	 * read it is part of.
	 */
	void (*check_timeout)(struct bio *b);
	long long cap_deadline;	/* set by a lowered timeout; 0: none */
	/*
	 * The owner made fd O_NONBLOCK: after a read that filled all the
	 * room it was given (more is likely waiting, as in the body of a
	 * large message) the next read is tried before poll(), which then
	 * runs only if it finds nothing.
	 */
	bool fd_nonblocking;
	bool last_read_full;	/* bio's own: the last read filled its room */
	/* Timed reads (bio_timed_reads): what SO_RCVTIMEO holds now, in
	 * ms (0: no limit; < 0: not known yet). */
	long long rcvtimeo_ms;
	unsigned long long bytes_in, bytes_out;
};

void bio_init(struct bio *b, int fd, int timeout_ms);
/* Frees buffers; does not close fd. */
void bio_free(struct bio *b);
void bio_set_timeout(struct bio *b, int timeout_ms);
/*
 * A deadline over all the waits to come, however many lines they read
 * (a message trickled in line by line): ms from now; < 0 removes it.
 * Each wait still has timeout_ms too; the sooner one counts.
 */
void bio_set_deadline(struct bio *b, long long ms_from_now);

/*
 * fd is a blocking socket: a read that must wait waits in read(2)
 * itself, bounded by SO_RCVTIMEO a little under the time left to its
 * deadline (set when the socket holds more, or much less: about once
 * per connection), instead of poll(2) then read(2): one call per wait
 * where there were two. A read that wakes before its deadline waits again for
 * the rest; every deadline and check_timeout hold as with poll. Writes
 * go with MSG_DONTWAIT and wait in poll(2), as on a non-blocking socket,
 * so a peer that stops reading still times out. The plain transport
 * only: bio_timed_reads_end() before TLS. TCP sockets: on a Unix-domain
 * one, bio_poll_waits().
 */
void bio_timed_reads(struct bio *b);
/* Back to waiting in poll(2) on fd, made O_NONBLOCK (what TLS needs);
 * false when that fails. A bio without timed reads is left as it is. */
bool bio_timed_reads_end(struct bio *b);
/*
 * Every wait in poll(2) on fd, made O_NONBLOCK here, so that writes have
 * their deadline too; false when that fails. For a Unix-domain stream
 * socket, where timed reads cost a wake-up: a reader asleep in read(2)
 * is woken each time the peer takes in what it sent (the kernel's
 * unix_write_space wakes every sleeper on the socket), a poll(2) for
 * POLLIN is not.
 */
bool bio_poll_waits(struct bio *b);

/*
 * Read one line, without its CRLF, into line (replacing its contents).
 * A line longer than max bytes is consumed through its CRLF and dropped:
 * BIO_TOOLONG. *flags gets BIO_LINE_* bits (may be NULL).
 */
enum bio_status bio_readline(struct bio *b, struct str *line, size_t max,
    unsigned *flags);

/*
 * Read at most max bytes of a line, appending to out. If the CRLF was
 * reached it is consumed and not stored; otherwise BIO_LINE_PARTIAL is set
 * and the rest of the line comes with the next call. For message bodies,
 * whose lines may legitimately exceed what we want to hold at once.
 */
enum bio_status bio_readline_part(struct bio *b, struct str *out, size_t max,
    unsigned *flags);

/* Read exactly len bytes, appending to out (BDAT chunks). */
enum bio_status bio_read_exact(struct bio *b, struct str *out, size_t len);
/* Read exactly len bytes and throw them away. */
enum bio_status bio_skip_exact(struct bio *b, size_t len);

/* Bytes already read from the peer and buffered, not yet consumed. */
size_t bio_buffered(const struct bio *b);
/*
 * The buffered input as it lies, without reading: *p points at it (valid
 * until the next read call) and the count is returned. bio_consume()
 * then takes n of those bytes, so that a caller scanning large pieces
 * (the body of DATA) needs no copy and no call per line.
 */
size_t bio_peek(const struct bio *b, const char **p);
void bio_consume(struct bio *b, size_t n);
/*
 * Put len bytes in front of the input, as if read from fd: what another
 * process read from this connection before it passed the descriptor on
 * (screen's first command, mail/handoff.h).
 */
void bio_prefill(struct bio *b, const void *p, size_t len);
/* Throw away buffered input (after STARTTLS, RFC 3207 4.2). */
void bio_discard_input(struct bio *b);
/* Wait up to timeout_ms for input to be available (0: just check). */
bool bio_input_ready(struct bio *b, int timeout_ms);
/*
 * One read into the input buffer, for a caller whose own poll of several
 * descriptors found this one readable: no poll of its own, and the bio's
 * buffer, kept from read to read, takes the bytes (deliver's next job).
 */
enum bio_status bio_read_ready(struct bio *b);

/* Buffer output; false once a write has failed. */
bool bio_write(struct bio *b, const void *p, size_t len);
bool bio_puts(struct bio *b, const char *s);
bool bio_printf(struct bio *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Send everything buffered; BIO_OK or BIO_TIMEOUT/BIO_ERROR. */
enum bio_status bio_flush(struct bio *b);

const char *bio_status_name(enum bio_status st);

/*
 * Unbuffered: write all len bytes of p to a blocking fd (a file, a
 * pipe), again after EINTR and short writes. false with errno when a
 * write fails.
 */
bool fd_write_all(int fd, const void *p, size_t len);

#endif
