/*
 * rfc5322.h - the message-format pieces every program writes the same
 * way: the RFC 5322 3.3 date-time of Date: and Received: fields.
 */
#ifndef POSTERN_RFC5322_H
#define POSTERN_RFC5322_H

#include <stddef.h>
#include <time.h>

/* Room for "Mon, 23 Nov 2026 16:31:06 +0000" and then some. */
#define RFC5322_DATE_SIZE 64

/* t as local time, "Mon, 23 Nov 2026 16:31:06 +0000"; "" if it fails. */
void rfc5322_date(time_t t, char *out, size_t size);

#endif
