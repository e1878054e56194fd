/*
 * fuzz_milter.c - libFuzzer harness for the milter reply decoder
 * (mail/milter_proto.c), which reads what a filter (another program,
 * possibly broken) sends smtpd. Built by `make fuzz`, run briefly by
 * `make fuzz-smoke`.
 *
 * The input is a stream of packets as they come off the socket (length,
 * command, data). Besides memory safety it checks what the decoder
 * promises:
 *   - every string it returns lies inside the packet and ends at a NUL
 *     inside it;
 *   - an accepted REPLYCODE has a 4xx or 5xx code matching its text,
 *     and no CR or LF but as CRLF line separators;
 *   - an accepted header name is printable ASCII without ':'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const unsigned char *p, size_t len, const char *s)
{
	if (s == NULL)
		return;
	const unsigned char *u = (const unsigned char *)s;
	if (u < p || u >= p + len)
		abort();
	if (memchr(u, '\0', (size_t)(p + len - u)) == NULL)
		abort();
}

static void check(const unsigned char *p, size_t len,
    const struct milter_reply *r)
{
	inside(p, len, r->text);
	inside(p, len, r->name);
	inside(p, len, r->value);
	inside(p, len, r->addr);
	inside(p, len, r->args);
	inside(p, len, r->reason);
	for (int i = 0; i < MILTER_STAGE_COUNT; i++)
		inside(p, len, r->symlist[i]);
	if (r->cmd == MILTER_REPLY_REPLYCODE) {
		if (r->code < 400 || r->code > 599 || r->text == NULL ||
		    (r->text[0] - '0') * 100 + (r->text[1] - '0') * 10 +
		    (r->text[2] - '0') != r->code)
			abort();
		for (const char *c = r->text; *c; c++)
			if ((*c == '\r' && c[1] != '\n') ||
			    (*c == '\n' && (c == r->text || c[-1] != '\r')))
				abort();
	}
	if (r->name != NULL)
		for (const char *c = r->name; *c; c++)
			if (*c < 0x21 || *c > 0x7e || *c == ':')
				abort();
	if (r->body != NULL && (r->body < p || r->body + r->body_len > p + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	size_t pos = 0;

	while (size - pos >= 4) {
		uint32_t len;
		if (!milter_decode_length(data + pos, &len))
			return 0;
		pos += 4;
		if (len > size - pos)
			return 0;
		/* A copy of exactly the packet, so ASan sees any overread. */
		unsigned char *p = malloc(len);
		memcpy(p, data + pos, len);
		struct milter_reply r;
		if (milter_decode_reply(p, len, &r, err, sizeof(err)))
			check(p, len, &r);
		free(p);
		pos += len;
	}
	return 0;
}
