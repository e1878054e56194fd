/*
 * fuzz_queue.c - libFuzzer harness for the queue file reader (queue_read
 * in mail/queue_*.c). The reader must return OK or CORRUPT for any bytes,
 * never crash, leak or read out of bounds; a file it accepts must have
 * offsets that lie inside the file and status bytes where it says.
 *
 * `make fuzz` builds it into build/fuzz/fuzz_queue; `make fuzz-smoke`
 * runs it briefly over tests/fuzz/corpus_queue (real queue files, as a
 * test queue's incoming/ holds them); for a longer run:
 *
 *   mkdir -p /tmp/corpus && build/fuzz/fuzz_queue -max_total_time=600 \
 *       /tmp/corpus tests/fuzz/corpus_queue
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct queue_envelope env;
	char err[256];

	if (fd < 0 && (fd = memfd_create("fuzz_queue", 0)) < 0)
		abort();
	if (ftruncate(fd, 0) < 0 ||
	    (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();

	queue_envelope_init(&env);
	enum queue_read_result r = queue_read(fd, &env, err, sizeof(err));
	if (r == QUEUE_READ_OK) {
		off_t end = (off_t)size;
		if (env.content_offset > end || env.trailer_offset > end ||
		    env.trailer_offset != env.content_offset + env.content_length ||
		    env.delay_warned_offset <= 0 ||
		    env.delay_warned_offset >= env.content_offset ||
		    !queue_id_valid(env.id) || env.sender == NULL)
			abort();
		for (size_t i = 0; i < env.nrcpts; i++) {
			const struct queue_rcpt *rc = &env.rcpts[i];
			if (rc->status_offset <= 0 || rc->status_offset >= end ||
			    data[rc->status_offset] != (uint8_t)rc->status ||
			    rc->address == NULL || rc->address[0] == '\0' ||
			    rc->parent >= (int)i)
				abort();
		}
		/* In-place updates of an accepted file stay in bounds. */
		if (env.nrcpts > 0 &&
		    !queue_set_rcpt_status(fd, &env, env.nrcpts - 1,
		    QUEUE_RCPT_SENT))
			abort();
	} else if (r == QUEUE_READ_CORRUPT) {
		if (env.nrcpts != 0 || env.sender != NULL || err[0] == '\0')
			abort();
	} else {
		abort();
	}
	queue_envelope_free(&env);
	return 0;
}
