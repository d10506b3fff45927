/* imagehash.h - the image's SHA-256 (`sha256sum FILE`) computed on its own thread.
 *
 * SHA-256 is one sequential stream, so it cannot be split across workers; done on the
 * writer thread it added its full cost to every write (and, for raw images, the cost of
 * hashing every hole). Here the writer only copies bytes into a bounded set of slots
 * (IMAGE_HASH_SLOTS x IMAGE_HASH_SLOT bytes) and the hasher thread runs beside it; zero
 * runs travel as a length, not as bytes. On a machine with a single CPU it hashes inline. */
#ifndef COLDCLONE_IMAGEHASH_H
#define COLDCLONE_IMAGEHASH_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_HASH_SLOTS 16
#define IMAGE_HASH_SLOT (512u << 10)
#define IMAGE_HASH_ZERO_PIECE (64u << 20)  /* most zero bytes one slot stands for */

struct image_hash;

/* NULL with a message when OpenSSL or the thread cannot start. */
struct image_hash *image_hash_new(void);
/* Add bytes; blocks while every slot waits for the hasher. */
void image_hash_data(struct image_hash *h, const void *buf, size_t len);
/* Add len zero bytes. */
void image_hash_zeros(struct image_hash *h, uint64_t len);
/* Wait for everything added, write the digest and free h. */
void image_hash_final(struct image_hash *h, uint8_t sha256[32]);
/* This CPU's SHA-256 rate in bytes per second, measured on a few MiB (~10 ms). */
double image_hash_rate(void);
/* Stop without a digest and free h; accepts NULL. */
void image_hash_free(struct image_hash *h);

#endif
