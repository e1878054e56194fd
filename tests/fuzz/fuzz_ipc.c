/*
 * fuzz_ipc.c - libFuzzer harness for the IPC decoders (util/ipc.c):
 * ipc_decode on a buffer, as event loops use it, and ipc_recv over a bio,
 * as the blocking peers do. Built by `make fuzz`, run briefly by
 * `make fuzz-smoke`.
 *
 * The peer is another postern process, but a bug or a stray client on
 * qmgr's socket (any local user may connect) must not crash the reader.
 * Besides memory safety it checks what a decoder promises:
 *   - the two decoders agree on the first message: both accept it with
 *     the same type and attributes, or both refuse it;
 *   - an accepted message encodes again (ipc_encode) to bytes that
 *     decode to the same message, and consumed never passes the input;
 *   - names are [a-z0-9_]+ (values may hold any byte but NUL: an
 *     escaped CR or LF is data, and encodes back to its escape).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bio.h"
#include "fuzz_feed.h"
#include "ipc.h"
#include "str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_ipc: %s\n", what);
	abort();
}

static bool same_msg(const struct ipc_msg *a, const struct ipc_msg *b)
{
	if (strcmp(a->type, b->type) != 0 || a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (strcmp(a->attrs[i].name, b->attrs[i].name) != 0 ||
		    strcmp(a->attrs[i].value, b->attrs[i].value) != 0)
			return false;
	return true;
}

static void check_well_formed(const struct ipc_msg *m)
{
	for (size_t i = 0; i < m->count; i++) {
		const char *n = m->attrs[i].name;
		if (*n == '\0')
			fail("empty attribute name");
		for (; *n; n++)
			if (!((*n >= 'a' && *n <= 'z') ||
			    (*n >= '0' && *n <= '9') || *n == '_'))
				fail("attribute name outside [a-z0-9_]");
	}
	if (m->count > IPC_MAX_ATTRS)
		fail("more attributes than IPC_MAX_ATTRS");
}

/* Encode m and decode it again: the same message, all bytes used. */
static void check_round_trip(const struct ipc_msg *m)
{
	struct str enc;
	struct ipc_msg again;
	size_t used = 0;

	str_init(&enc, STR_NO_MAX);
	ipc_encode(m, &enc);
	if (ipc_decode(enc.data, enc.len, &again, &used) != IPC_DONE)
		fail("encoded message does not decode");
	if (used != enc.len)
		fail("encoded message not consumed exactly");
	if (!same_msg(m, &again))
		fail("round trip changes the message");
	ipc_msg_free(&again);
	str_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct ipc_msg m, r;
	size_t consumed = 0;

	enum ipc_decode_result dr = ipc_decode(buf, size, &m, &consumed);
	if (dr == IPC_DONE) {
		if (consumed == 0 || consumed > size)
			fail("consumed outside the input");
		check_well_formed(&m);
		check_round_trip(&m);
	}

	/* The blocking reader over the same bytes. */
	/* cut 6: reads of 1 to 13 bytes, so messages straddle them */
	struct fuzz_feed f = { .data = data, .len = size, .cut = 6 };
	struct bio b;
	bio_init(&b, -1, -1);
	b.ops = &fuzz_feed_ops;
	b.transport = &f;
	enum bio_status st = ipc_recv(&b, &r);
	if (st == BIO_OK) {
		check_well_formed(&r);
		if (dr != IPC_DONE)
			fail("ipc_recv accepts what ipc_decode refuses");
		if (!same_msg(&m, &r))
			fail("ipc_recv and ipc_decode disagree");
		if (b.bytes_in - bio_buffered(&b) != consumed)
			fail("ipc_recv and ipc_decode consume differently");
		ipc_msg_free(&r);
	} else if (dr == IPC_DONE) {
		fail("ipc_decode accepts what ipc_recv refuses");
	}
	bio_free(&b);
	if (dr == IPC_DONE)
		ipc_msg_free(&m);
	return 0;
}
