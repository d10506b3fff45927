/* chunk.c - the per-chunk work every worker does whatever the format: find the
 * non-zero blocks and hash the chunk for the content digest. */
#include "chunk.h"

#include <string.h>

#include "digest.h"
#include "util.h"

void chunk_analyze(struct chunk *c)
{
	c->nonzero = 0;
	for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++) {
		uint32_t n = chunk_block_len(c, i);
		if (n && (c->mapped & (1u << i)) && !buf_is_zero(c->data + (size_t)i * BLOCK_SIZE, n))
			c->nonzero |= 1u << i;
	}
	if (c->nonzero)
		chunk_hash(c->data, c->len, c->hash);
	else
		memset(c->hash, 0, sizeof c->hash);
}
