/* digest.h - the content digest (README "Content digest"): SHA-256 over, for each
 * 1 MiB chunk of the virtual disk that is not all zero and in disk order, the chunk's
 * 8-byte little-endian offset followed by the XXH3-128 of the chunk (16 bytes, canonical
 * big-endian order, as `xxhsum -H2` prints it). Its cost grows with the data, not the disk
 * size, and any tool that yields the raw content can check it.
 *
 * Why XXH3 per chunk: every data byte passes through this hash and, separately, through
 * the image's SHA-256 (`sha256sum`). On a CPU without SHA extensions (most servers old
 * enough to be cloned cold) SHA-256 runs ~0.3-0.5 GB/s a core, so two SHA-256 passes made
 * the CPU, not the disk, the limit; XXH3 runs at memory speed. The image SHA-256 stays the
 * cryptographic check; this one detects corruption between reading and any later decode. */
#ifndef COLDCLONE_DIGEST_H
#define COLDCLONE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"

/* Recorded in the manifest; verify refuses to compare digests of another algorithm. */
#define CONTENT_DIGEST_ALGORITHM "sha256 over (le64 offset, xxh3-128) of each non-zero 1 MiB chunk"

struct content_digest {
	void *ctx;              /* EVP_MD_CTX */
	uint64_t last_off;      /* offset of the last chunk added, for the ordering check */
	uint64_t chunks;        /* non-zero chunks added */
	uint64_t bytes;         /* bytes of those chunks */
};

/* The per-chunk hash (thread-safe). */
void chunk_hash(const uint8_t *buf, size_t len, uint8_t out[CHUNK_HASH_LEN]);

int content_digest_init(struct content_digest *d);
/* Add a non-zero chunk; offsets must increase. */
void content_digest_add(struct content_digest *d, uint64_t off, uint32_t len, const uint8_t hash[CHUNK_HASH_LEN]);
/* Finish into 64 hex chars + NUL and free the context. */
void content_digest_final(struct content_digest *d, char hex[65]);
void content_digest_release(struct content_digest *d);

#endif
