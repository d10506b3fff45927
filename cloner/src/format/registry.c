#define _GNU_SOURCE
/* registry.c - the table of image formats and the block iterator every writer uses
 * to lay out its tables from the extent map before any data arrives. */
#include <string.h>
#include <strings.h>

#include "format.h"
#include "util.h"

const struct fmt_ops *const fmt_all[] = {
	&fmt_raw, &fmt_qcow2, &fmt_vmdk_stream, &fmt_vmdk, &fmt_vhdx, &fmt_vhd, &fmt_vhd_fixed, NULL,
};

const struct fmt_ops *fmt_by_name(const char *name)
{
	for (size_t i = 0; fmt_all[i]; i++)
		if (strcmp(fmt_all[i]->name, name) == 0)
			return fmt_all[i];
	return NULL;
}

const struct fmt_ops *fmt_by_path(const char *path)
{
	/* The first format listed for an extension wins: .vmdk -> vmdk-stream, .vhd -> vhd.
	 * A URL's query (vSphere's ?dcPath=...) is not part of the name. */
	size_t len = strstr(path, "://") ? strcspn(path, "?#") : strlen(path);
	const char *dot = memrchr(path, '.', len);
	if (!dot || memchr(dot, '/', len - (size_t)(dot - path)))
		return NULL;
	size_t elen = len - (size_t)(dot + 1 - path);
	for (size_t i = 0; fmt_all[i]; i++)
		if (strlen(fmt_all[i]->ext) == elen && strncasecmp(fmt_all[i]->ext, dot + 1, elen) == 0)
			return fmt_all[i];
	if (elen == 3 && strncasecmp(dot + 1, "img", 3) == 0)
		return &fmt_raw;
	return NULL;
}

void fmt_block_iter_init(struct fmt_block_iter *it, const struct extmap *map, uint64_t vsize)
{
	*it = (struct fmt_block_iter){ .map = map, .vsize = vsize };
}

bool fmt_block_iter_next(struct fmt_block_iter *it, uint64_t *off)
{
	const struct extmap *m = it->map;
	while (it->ext < m->n) {
		const struct extent *e = &m->v[it->ext];
		uint64_t first = e->start / BLOCK_SIZE * BLOCK_SIZE;
		uint64_t b = MAX(it->next, first);
		if (b < e->start + e->len && b < it->vsize) {
			*off = b;
			it->next = b + BLOCK_SIZE;
			return true;
		}
		it->ext++;
	}
	return false;
}

uint64_t fmt_count_blocks(const struct extmap *map, uint64_t vsize)
{
	uint64_t n = 0, next = 0;  /* next: first block index not yet counted */
	for (size_t i = 0; i < map->n && map->v[i].start < vsize; i++) {
		uint64_t first = MAX(map->v[i].start / BLOCK_SIZE, next);
		uint64_t end = DIV_ROUND_UP(MIN(map->v[i].start + map->v[i].len, vsize), BLOCK_SIZE);
		if (end > first) {
			n += end - first;
			next = end;
		}
	}
	return n;
}

uint32_t fmt_chunk_mapped_mask(const struct extmap *map, uint64_t off, uint32_t len)
{
	uint32_t mask = 0;
	for (unsigned i = 0; i < BLOCKS_PER_CHUNK && i * BLOCK_SIZE < len; i++) {
		uint64_t b = off + (uint64_t)i * BLOCK_SIZE;
		if (extmap_any(map, b, MIN((uint64_t)BLOCK_SIZE, len - i * BLOCK_SIZE)))
			mask |= 1u << i;
	}
	return mask;
}

int fmt_write_chunk_blocks(struct sink *s, const struct chunk *c)
{
	for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++) {
		uint32_t n = chunk_block_len(c, i);
		int r = (c->nonzero & (1u << i)) ? sink_write(s, c->data + (size_t)i * BLOCK_SIZE, n)
						  : sink_zero(s, n);
		if (r < 0)
			return -1;
	}
	return 0;
}
