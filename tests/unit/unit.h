/*
 * unit.h - a minimal table-friendly unit test harness printing TAP.
 *
 *   static void test_something(void) { CHECK(1 + 1 == 2); CHECK_STR(a, b); }
 *   int main(void) { RUN(test_something); return unit_done(); }
 *
 * Each RUN prints "ok N - name" or "not ok N - name" with the failed
 * checks as "# file:line: expression" diagnostics before it.
 */
#ifndef POSTERN_UNIT_H
#define POSTERN_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_test_number;
static int unit_failed_tests;
static int unit_current_failed;

#define CHECK(expr) do { \
	if (!(expr)) { \
		unit_current_failed++; \
		printf("# %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #expr); \
	} \
} while (0)

#define CHECK_STR(got, want) do { \
	const char *unit_g_ = (got), *unit_w_ = (want); \
	if (unit_g_ == NULL || unit_w_ == NULL ? unit_g_ != unit_w_ : \
	    strcmp(unit_g_, unit_w_) != 0) { \
		unit_current_failed++; \
		printf("# %s:%d: %s is \"%s\", want \"%s\"\n", __FILE__, \
		    __LINE__, #got, unit_g_ ? unit_g_ : "(null)", \
		    unit_w_ ? unit_w_ : "(null)"); \
	} \
} while (0)

#define CHECK_INT(got, want) do { \
	long long unit_g_ = (long long)(got), unit_w_ = (long long)(want); \
	if (unit_g_ != unit_w_) { \
		unit_current_failed++; \
		printf("# %s:%d: %s is %lld, want %lld\n", __FILE__, __LINE__, \
		    #got, unit_g_, unit_w_); \
	} \
} while (0)

#define RUN(fn) do { \
	unit_current_failed = 0; \
	fn(); \
	unit_test_number++; \
	if (unit_current_failed) unit_failed_tests++; \
	printf("%sok %d - %s\n", unit_current_failed ? "not " : "", \
	    unit_test_number, #fn); \
	fflush(stdout); \
} while (0)

static inline int unit_done(void)
{
	printf("1..%d\n", unit_test_number);
	return unit_failed_tests ? 1 : 0;
}

#endif
