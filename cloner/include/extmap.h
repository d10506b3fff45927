/* extmap.h - the extent map: sorted, merged byte ranges of a disk that must be read.
 * Everything outside the map reads as zero in the image. Memory is bounded by a cap on the
 * number of extents: past it, the smallest gaps are merged away (a little free space gets
 * copied, never the reverse), see extmap_normalize(). */
#ifndef COLDCLONE_EXTMAP_H
#define COLDCLONE_EXTMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct extent {
	uint64_t start;  /* byte offset on the disk */
	uint64_t len;    /* bytes, > 0 */
};

struct extmap {
	struct extent *v;  /* sorted by start, non-overlapping, non-adjacent after normalize */
	size_t n;          /* extents in use */
	size_t cap;        /* allocated */
	size_t max_extents;  /* cap on n after normalize (0 = default) */
	bool sorted;       /* true when v is normalized */
};

void extmap_init(struct extmap *m);
void extmap_release(struct extmap *m);
/* Append [start, start+len); merges with the last extent when adjacent or overlapping.
 * Extents may arrive in any order; call extmap_normalize() before querying. */
void extmap_add(struct extmap *m, uint64_t start, uint64_t len);
/* Add every extent of src shifted by delta (used to place a partition's map on the disk). */
void extmap_add_map(struct extmap *m, const struct extmap *src, uint64_t delta);
/* Sort, merge overlapping/adjacent extents, clip to [0, limit), enforce the extent cap. */
void extmap_normalize(struct extmap *m, uint64_t limit);
/* Total mapped bytes (normalized map). */
uint64_t extmap_bytes(const struct extmap *m);
/* Mapped bytes inside [off, off+len) (normalized map). */
uint64_t extmap_bytes_in(const struct extmap *m, uint64_t off, uint64_t len);
/* True when any byte of [off, off+len) is mapped (normalized map). O(log n). */
bool extmap_any(const struct extmap *m, uint64_t off, uint64_t len);
/* Index of the first extent that ends after off, or m->n when none. O(log n). */
size_t extmap_find(const struct extmap *m, uint64_t off);

#endif
