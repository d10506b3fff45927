/* test.h - assertions for unit tests that stay on in release builds, and the
 * per-program summary line that tests/run.sh adds up. */
#ifndef COLDCLONE_TEST_H
#define COLDCLONE_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int test_failures, test_checks;

#define CHECK(cond) do { \
	test_checks++; \
	if (!(cond)) { \
		test_failures++; \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_EQ_U64(a, b) do { \
	unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
	test_checks++; \
	if (a_ != b_) { \
		test_failures++; \
		fprintf(stderr, "%s:%d: %s == %llu, expected %s == %llu\n", __FILE__, __LINE__, #a, a_, #b, b_); \
	} \
} while (0)

/* Print "checks: N passed, N failed" and return the exit status. */
static inline int test_summary(void)
{
	printf("checks: %d passed, %d failed\n", test_checks - test_failures, test_failures);
	return test_failures ? 1 : 0;
}

#endif
