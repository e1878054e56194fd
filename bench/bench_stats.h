/*
 * bench_stats.h - the clock and the latency percentiles that the
 * measuring tools (fsync-ceiling, smtp-latency) report the same way.
 * Each tool is one .c file; this header holds what two of them share.
 */
#ifndef POSTERN_BENCH_STATS_H
#define POSTERN_BENCH_STATS_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sort n samples for percentile(). */
static inline void sort_samples(double *v, size_t n)
{
	qsort(v, n, sizeof(double), cmp_double);
}

/* Nearest-rank percentile of a sorted array. */
static inline double percentile(const double *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0.0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

#endif
