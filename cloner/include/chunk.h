/* chunk.h - the unit of work of the copy pipeline: one 1 MiB aligned piece of the
 * virtual disk, split into 64 KiB blocks for allocation and zero detection.
 * Chunks are delivered to the image format in disk order. */
#ifndef COLDCLONE_CHUNK_H
#define COLDCLONE_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#define CHUNK_SIZE (1u << 20)          /* also the content-digest unit (README) */
#define BLOCK_SIZE (64u << 10)         /* allocation / zero-detect granularity */
#define BLOCKS_PER_CHUNK (CHUNK_SIZE / BLOCK_SIZE)
#define CHUNK_HASH_LEN 16              /* XXH3-128, canonical (big-endian) bytes */

struct chunk {
	uint64_t seq;          /* position in the delivery order */
	uint64_t off;          /* virtual disk offset, multiple of CHUNK_SIZE */
	uint32_t len;          /* CHUNK_SIZE, less for the last chunk of the disk */
	uint32_t mapped;       /* bit i: block i intersects the extent map (reader) */
	uint32_t nonzero;      /* bit i: block i holds a non-zero byte (worker); subset of mapped */
	uint8_t *data;         /* len bytes; unmapped and unreadable parts are zero */
	uint8_t hash[CHUNK_HASH_LEN]; /* content-digest hash of data[0..len) when nonzero != 0 (worker) */
	uint8_t *out;          /* format's encoded bytes (worker, fmt_ops.encode), may be NULL */
	size_t out_cap;        /* capacity of out */
	size_t out_len;        /* bytes used in out */
	uint32_t out_pos[BLOCKS_PER_CHUNK + 1];  /* per block: start of its encoding in out */
};

/* Block i of a chunk spans [i*BLOCK_SIZE, min((i+1)*BLOCK_SIZE, len)). */
static inline uint32_t chunk_block_len(const struct chunk *c, unsigned i)
{
	uint32_t start = i * BLOCK_SIZE;
	if (start >= c->len)
		return 0;
	return c->len - start < BLOCK_SIZE ? c->len - start : BLOCK_SIZE;
}

/* Set c->nonzero from c->data (only mapped blocks can be non-zero) and, when any
 * block is non-zero, c->hash. Thread-safe. */
void chunk_analyze(struct chunk *c);

#endif
