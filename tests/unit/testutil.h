/* testutil.h - helpers shared by unit tests (see testutil.c). */
#ifndef COLDCLONE_TESTUTIL_H
#define COLDCLONE_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "extmap.h"

#define TEST_MARKER "COLDCLONE-DELETED-MARKER"

/* Run a formatted shell command; returns its exit status, or -1. */
int test_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* xorshift bytes: cheap, non-zero "dirty" data, so free space is never zero. */
void test_fill_random(uint8_t *buf, size_t n, uint64_t *state);
/* A file of size bytes of test_fill_random data from seed; 0 or -1. */
int test_write_random_file(const char *path, uint64_t size, uint64_t seed);
/* A file whose content is easy to find in a raw image after it is deleted. */
void test_make_marker(const char *path);
/* Write the partition [part_start, +part_size) of img as a clone would see it: zeros
 * except the mapped ranges (absolute offsets). 0 or -1. */
int test_build_clone(const char *img, const struct extmap *map, uint64_t part_start,
		     uint64_t part_size, const char *clone);
/* Does [off, off+len) of path contain needle (or, with NULL, any non-zero byte)? */
bool test_file_contains(const char *path, uint64_t off, uint64_t len, const char *needle);

#endif
