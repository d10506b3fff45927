/* util.c - messages, allocation, full-length I/O and small formatting helpers.
 * Messages go to stderr and, when set, to the run log; they never include credentials
 * because callers only ever pass display forms of URLs. */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int log_verbosity = 1;
static FILE *log_fp;

void log_set_file(void *fp) { log_fp = fp; }

static void vreport(const char *prefix, const char *fmt, va_list ap)
{
	char msg[2048];
	int saved = errno;
	/* %m must see the caller's errno */
	errno = saved;
	vsnprintf(msg, sizeof msg, fmt, ap);
	fprintf(stderr, "coldclone: %s%s\n", prefix, msg);
	if (log_fp) {
		fprintf(log_fp, "%s%s\n", prefix, msg);
		fflush(log_fp);
	}
	errno = saved;
}

int error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("error: ", fmt, ap);
	va_end(ap);
	return -1;
}

int warning(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("warning: ", fmt, ap);
	va_end(ap);
	return 0;
}

void info(const char *fmt, ...)
{
	va_list ap;
	if (log_verbosity < 1)
		return;
	va_start(ap, fmt);
	vreport("", fmt, ap);
	va_end(ap);
}

void debug(const char *fmt, ...)
{
	va_list ap;
	if (log_verbosity < 2)
		return;
	va_start(ap, fmt);
	vreport("debug: ", fmt, ap);
	va_end(ap);
}

static void *oom(size_t n)
{
	fprintf(stderr, "coldclone: error: out of memory allocating %zu bytes: the machine needs more RAM\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	return p ? p : oom(n);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	return p ? p : oom(n * size);
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	return q ? q : oom(n);
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);
	return p ? p : oom(strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	return p ? p : oom(n);
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	int r = vasprintf(&p, fmt, ap);
	va_end(ap);
	return r < 0 ? oom(0) : p;
}

void *xaligned_alloc(size_t align, size_t n)
{
	void *p;
	if (posix_memalign(&p, align, n ? n : align) != 0)
		return oom(n);
	return p;
}

bool buf_is_zero(const void *buf, size_t n)
{
	const uint8_t *p = buf;
	/* Check a small head byte-wise, then compare the buffer with itself shifted:
	 * memcmp is vectorised by glibc and so runs at memory speed. */
	size_t head = n < 16 ? n : 16;
	for (size_t i = 0; i < head; i++)
		if (p[i])
			return false;
	return n <= 16 || memcmp(p, p + 16, n - 16) == 0;
}

int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = ENODATA;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t r = pwrite(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

const char *fmt_size(uint64_t bytes, char *buf, size_t bufsz)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, bufsz, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, bufsz, "%.1f %s", v, unit[u]);
	return buf;
}

const char *fmt_duration(double seconds, char *buf, size_t bufsz)
{
	if (seconds < 0 || seconds > 359999)
		seconds = 359999;
	unsigned s = (unsigned)seconds;
	snprintf(buf, bufsz, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
	return buf;
}

double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void utc_timestamp(char *buf, size_t bufsz)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, bufsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int parse_u64(const char *s, uint64_t *out)
{
	static const struct { const char *suffix; uint64_t mult; } units[] = {
		{ "", 1 }, { "K", 1ull << 10 }, { "KiB", 1ull << 10 }, { "M", 1ull << 20 },
		{ "MiB", 1ull << 20 }, { "G", 1ull << 30 }, { "GiB", 1ull << 30 },
		{ "T", 1ull << 40 }, { "TiB", 1ull << 40 },
	};
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (__builtin_mul_overflow((uint64_t)v, units[i].mult, out))
				return -1;
			return 0;
		}
	}
	return -1;
}
