/* testutil.c - helpers shared by the unit tests that build real filesystems: run a
 * shell command, write deterministic dirty data, write an easy-to-find marker file. */
#define _GNU_SOURCE
#include "testutil.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define MIB (1024 * 1024ull)


/* Run a shell command; returns its exit status (or -1). */
int test_run(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		cmd = NULL;
	va_end(ap);
	if (!cmd)
		return -1;
	int st = system(cmd);
	if (st != 0)
		fprintf(stderr, "command exited %d: %s\n", st, cmd);
	free(cmd);
	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* xorshift: cheap non-zero "dirty" bytes, so free space in the source is never zero. */
void test_fill_random(uint8_t *buf, size_t n, uint64_t *state)
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t x = *state;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		*state = x;
		memcpy(buf + i, &x, 8);
	}
}

int test_write_random_file(const char *path, uint64_t size, uint64_t seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	uint8_t *buf = xmalloc(MIB);
	uint64_t state = seed | 1;
	int r = fd < 0 ? -1 : 0;
	for (uint64_t off = 0; r == 0 && off < size; off += MIB) {
		size_t n = (size_t)MIN(MIB, size - off);
		test_fill_random(buf, MIB, &state);
		r = write_full(fd, buf, n);
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

/* A file whose content is easy to find in a raw image after it is deleted. */
void test_make_marker(const char *path)
{
	FILE *f = fopen(path, "w");
	for (int i = 0; f && i < 8000; i++)
		fprintf(f, TEST_MARKER "-%06d\n", i);
	if (f)
		fclose(f);
}


int test_build_clone(const char *img, const struct extmap *map, uint64_t part_start,
		     uint64_t part_size, const char *clone)
{
	int in = open(img, O_RDONLY), out = open(clone, O_RDWR | O_CREAT | O_TRUNC, 0644);
	uint8_t *buf = xmalloc(MIB);
	int r = in < 0 || out < 0 || ftruncate(out, (off_t)part_size) < 0 ? -1 : 0;
	for (size_t i = 0; r == 0 && i < map->n; i++) {
		const struct extent *e = &map->v[i];
		for (uint64_t o = 0; r == 0 && o < e->len; o += MIB) {
			size_t n = (size_t)MIN(MIB, e->len - o);
			r = pread_full(in, buf, n, e->start + o);
			if (r == 0)
				r = pwrite_full(out, buf, n, e->start + o - part_start);
		}
	}
	free(buf);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

bool test_file_contains(const char *path, uint64_t off, uint64_t len, const char *needle)
{
	int fd = open(path, O_RDONLY);
	uint8_t *buf = xmalloc(len);
	bool hit = false;
	if (fd >= 0 && pread_full(fd, buf, len, off) == 0)
		hit = needle ? memmem(buf, len, needle, strlen(needle)) != NULL : !buf_is_zero(buf, len);
	free(buf);
	if (fd >= 0)
		close(fd);
	return hit;
}
