/*
 * rfc5322.c - RFC 5322 formats written by several programs (rfc5322.h).
 * Trusts its caller; reads nothing from outside.
 */
#include <time.h>

#include "rfc5322.h"

void rfc5322_date(time_t t, char *out, size_t size)
{
	struct tm tm;

	if (size == 0)
		return;
	localtime_r(&t, &tm);
	/* RFC 5322 3.3: day-name, date, time, numeric zone (%z). */
	if (strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		out[0] = '\0';
}
