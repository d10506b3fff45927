/* util.h - error reporting, cleanup helpers, checked arithmetic, little-endian access.
 * Every module reports a failure once, where it happens, through error(); callers
 * only propagate -1. Nothing here exits: only main.c does. */
#ifndef COLDCLONE_UTIL_H
#define COLDCLONE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define ROUND_UP(n, d) (DIV_ROUND_UP(n, d) * (d))

/* Print "coldclone: error: <msg>" (with %m support) to stderr and the log; returns -1. */
int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "coldclone: warning: <msg>"; returns 0. */
int warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print an informational line (suppressed by --quiet). */
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Set by main: 0 quiet, 1 normal, 2 verbose (debug() prints). */
extern int log_verbosity;
void debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Messages also go to this stream when non-NULL (the run log); set by main. */
void log_set_file(void *fp);

/* Allocation that never returns NULL: out of memory is not recoverable here
 * (memory is bounded by design, so running out means the machine is too small). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Aligned buffer for O_DIRECT-friendly I/O; free with free(). */
void *xaligned_alloc(size_t align, size_t n);

static inline void cleanup_free(void *p) { free(*(void **)p); }
static inline void cleanup_close(int *fd) { if (*fd >= 0) close(*fd); }
#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))

/* Little-endian and big-endian field access for on-disk structures. */
static inline uint16_t get_le16(const void *p) { const uint8_t *b = p; return (uint16_t)(b[0] | b[1] << 8); }
static inline uint32_t get_le32(const void *p) { const uint8_t *b = p; return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }
static inline uint64_t get_le64(const void *p) { const uint8_t *b = p; return get_le32(b) | (uint64_t)get_le32(b + 4) << 32; }
static inline uint16_t get_be16(const void *p) { const uint8_t *b = p; return (uint16_t)(b[0] << 8 | b[1]); }
static inline uint32_t get_be32(const void *p) { const uint8_t *b = p; return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }
static inline uint64_t get_be64(const void *p) { const uint8_t *b = p; return (uint64_t)get_be32(b) << 32 | get_be32(b + 4); }
static inline void put_le16(void *p, uint16_t v) { uint8_t *b = p; b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); }
static inline void put_le32(void *p, uint32_t v) { uint8_t *b = p; for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i)); }
static inline void put_le64(void *p, uint64_t v) { uint8_t *b = p; for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i)); }
static inline void put_be16(void *p, uint16_t v) { uint8_t *b = p; b[0] = (uint8_t)(v >> 8); b[1] = (uint8_t)v; }
static inline void put_be32(void *p, uint32_t v) { uint8_t *b = p; for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (24 - 8 * i)); }
static inline void put_be64(void *p, uint64_t v) { uint8_t *b = p; for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (56 - 8 * i)); }

/* True when all n bytes are zero; fast for large aligned buffers. */
bool buf_is_zero(const void *buf, size_t n);

/* Full pread/pwrite: loop over short transfers and EINTR. Return 0, or -1 with errno set
 * (EIO etc.; a short read at end of file sets errno to ENODATA). No message printed. */
int pread_full(int fd, void *buf, size_t n, uint64_t off);
int pwrite_full(int fd, const void *buf, size_t n, uint64_t off);
int write_full(int fd, const void *buf, size_t n);

/* "1.5 GiB" style sizes and "0:03:12" durations into caller buffers. */
const char *fmt_size(uint64_t bytes, char *buf, size_t bufsz);
const char *fmt_duration(double seconds, char *buf, size_t bufsz);
/* Monotonic seconds. */
double now_seconds(void);
/* ISO 8601 UTC timestamp "2026-11-22T06:07:27Z". */
void utc_timestamp(char *buf, size_t bufsz);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);

/* Parse a decimal or size with suffix (K, M, G, T; KiB etc.), 0 ok, -1 bad. */
int parse_u64(const char *s, uint64_t *out);

#endif
