/* digest.h - the content digest (README "Content digest"): SHA-256 over, for each
 * 1 MiB chunk of the virtual disk that is not all zero and in disk order, the chunk's
 * 8-byte little-endian offset followed by the SHA-256 of the chunk. Its cost grows with
 * the data, not the disk size, and any tool that yields the raw content can check it. */
#ifndef COLDCLONE_DIGEST_H
#define COLDCLONE_DIGEST_H

#include <stdint.h>

struct content_digest {
	void *ctx;              /* EVP_MD_CTX */
	uint64_t last_off;      /* offset of the last chunk added, for the ordering check */
	uint64_t chunks;        /* non-zero chunks added */
	uint64_t bytes;         /* bytes of those chunks */
};

int content_digest_init(struct content_digest *d);
/* Add a non-zero chunk; offsets must increase. */
void content_digest_add(struct content_digest *d, uint64_t off, uint32_t len, const uint8_t sha256[32]);
/* Finish into 64 hex chars + NUL and free the context. */
void content_digest_final(struct content_digest *d, char hex[65]);
void content_digest_release(struct content_digest *d);

#endif
