/* fat.c - allocation map of FAT12/16/32 volumes from the boot sector (BPB) and the first
 * file allocation table, parsed here since no library exposes the map. It does not read
 * directories, and copies dirty or inconsistent volumes whole. exFAT is not handled. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "fs.h"
#include "util.h"

#define FAT_PIECE ((size_t)1 << 20)  /* FAT bytes read at once: a multiple of 2 and 4 */
#define FAT_MAP_SOFT_LIMIT ((size_t)1 << 22)
#define FAT12_MAX_CLUSTERS 4084u     /* Microsoft FAT spec, "FAT Type Determination" */
#define FAT16_MAX_CLUSTERS 65524u
#define FAT32_MAX_CLUSTERS 0x0FFFFFF5u  /* highest cluster number 0x0FFFFFF6 */

struct fat_geom {
	uint32_t bps;         /* bytes per sector */
	uint32_t spc;         /* sectors per cluster */
	uint32_t clus_bytes;  /* bytes per cluster */
	uint64_t fat_off;     /* byte offset of the first FAT inside the partition */
	uint64_t data_off;    /* byte offset of cluster 2 */
	uint64_t fs_size;     /* total sectors * bytes per sector */
	uint32_t clusters;    /* count of data clusters (numbers 2 .. clusters+1) */
	unsigned bits;        /* 12, 16 or 32 */
	bool dirty;           /* boot sector "volume dirty" flag set */
};

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* Validate the BPB (spec section 3.1) and derive the layout. Returns NULL, or why the
 * boot sector cannot be trusted. */
static const char *fat_parse(const uint8_t *bs, uint64_t part_size, struct fat_geom *g)
{
	uint32_t root_ents = get_le16(bs + 17), fat16_secs = get_le16(bs + 22);
	uint32_t rsvd = get_le16(bs + 14), nfats = bs[16];
	uint64_t tot = get_le16(bs + 19) ? get_le16(bs + 19) : get_le32(bs + 32);
	uint32_t fat_secs = fat16_secs ? fat16_secs : get_le32(bs + 36);
	bool fat32_layout = fat16_secs == 0;

	*g = (struct fat_geom){ .bps = get_le16(bs + 11), .spc = bs[13] };
	if (g->bps < 512 || g->bps > 4096 || !is_pow2(g->bps))
		return "bytes per sector not 512..4096";
	if (!is_pow2(g->spc))
		return "sectors per cluster not a power of two";
	if (rsvd == 0)
		return "no reserved sectors";
	if (nfats < 1 || nfats > 4)
		return "FAT count not 1..4";
	if (fat_secs == 0 || tot == 0)
		return "FAT or volume size zero";
	if (fat32_layout && root_ents != 0)
		return "FAT32 layout with a fixed root directory";
	g->clus_bytes = g->bps * g->spc;
	g->fs_size = tot * g->bps;  /* < 2^32 * 2^12: no overflow */
	if (g->fs_size > part_size)
		return "volume larger than its partition";

	uint64_t root_secs = ((uint64_t)root_ents * 32 + g->bps - 1) / g->bps;
	uint64_t meta = rsvd + (uint64_t)nfats * fat_secs + root_secs;
	if (meta >= tot)
		return "metadata larger than the volume";
	uint64_t clusters = (tot - meta) / g->spc;
	if (clusters == 0)
		return "no data clusters";
	/* Cluster count decides the type (spec 3.5), except that a FAT32 layout (16-bit FAT
	 * size zero) keeps 32-bit entries whatever its size, as Linux and mkfs.fat do. */
	if (fat32_layout)
		g->bits = 32;
	else if (clusters <= FAT12_MAX_CLUSTERS)
		g->bits = 12;
	else if (clusters <= FAT16_MAX_CLUSTERS)
		g->bits = 16;
	else
		return "FAT12/16 layout with more clusters than FAT16 allows";
	if (clusters > FAT32_MAX_CLUSTERS)
		return "more clusters than FAT32 allows";
	g->clusters = (uint32_t)clusters;
	if ((uint64_t)fat_secs * g->bps * 8 / g->bits < clusters + 2)
		return "FAT too small for the cluster count";
	g->fat_off = (uint64_t)rsvd * g->bps;
	g->data_off = meta * g->bps;

	/* Extended boot signature 0x28/0x29 present: bit 0 of the byte before it is the
	 * "volume dirty" flag Windows NT and Linux set while mounted. */
	unsigned ext = fat32_layout ? 64 : 36;
	if ((bs[ext + 2] == 0x28 || bs[ext + 2] == 0x29) && (bs[ext + 1] & 1))
		g->dirty = true;
	return NULL;
}

static uint32_t fat_entry(const struct fat_geom *g, const uint8_t *buf, uint64_t idx)
{
	if (g->bits == 32)
		return get_le32(buf + idx * 4) & 0x0FFFFFFF;
	if (g->bits == 16)
		return get_le16(buf + idx * 2);
	uint16_t v = get_le16(buf + idx * 3 / 2);  /* FAT12: 1.5 bytes per entry */
	return idx & 1 ? v >> 4 : v & 0xFFF;
}

static uint32_t fat_bad_marker(const struct fat_geom *g)
{
	return g->bits == 32 ? 0x0FFFFFF7 : g->bits == 16 ? 0xFFF7 : 0xFF7;
}

/* FAT[1] carries the clean-shutdown bit on FAT16/32 (spec 4.2): clear means dirty. */
static bool fat_entry1_dirty(const struct fat_geom *g, uint32_t e1)
{
	if (g->bits == 32)
		return !(e1 & 0x08000000);
	if (g->bits == 16)
		return !(e1 & 0x8000);
	return false;
}

struct fat_run {
	const struct partition *p;
	struct extmap *out;
	uint64_t start, len;  /* pending run, partition-relative bytes */
	uint64_t used;
};

static void fat_flush(struct fat_run *r)
{
	if (!r->len)
		return;
	uint64_t len = MIN(r->len, r->p->size - MIN(r->start, r->p->size));
	if (len) {
		extmap_add(r->out, r->p->start + r->start, len);
		r->used += len;
	}
	r->len = 0;
	size_t soft = MAX(FAT_MAP_SOFT_LIMIT, 2 * r->out->max_extents);
	if (r->out->n >= soft)
		extmap_normalize(r->out, r->p->start + r->p->size);
}

static void fat_add(struct fat_run *r, uint64_t off, uint64_t len)
{
	if (r->len && r->start + r->len == off) {
		r->len += len;
		return;
	}
	fat_flush(r);
	r->start = off;
	r->len = len;
}

/* Read the first FAT piece by piece and add every allocated cluster. */
static int fat_map_clusters(struct source *s, const struct partition *p, const struct fat_geom *g,
			    struct fat_run *r, bool *dirty)
{
	uint64_t entries = (uint64_t)g->clusters + 2;
	uint64_t need = g->bits == 12 ? (entries * 3 + 1) / 2 : entries * g->bits / 8;
	uint32_t bad = fat_bad_marker(g);
	size_t esz = g->bits / 8;  /* FAT12 fits in one piece: at most 6.2 KB */
	CLEANUP_FREE uint8_t *buf = xmalloc(FAT_PIECE + 1);

	for (uint64_t done = 0; done < need;) {
		size_t n = (size_t)MIN(need - done, FAT_PIECE);
		uint64_t off = p->start + g->fat_off + done;
		if (source_pread(s, buf, off, n) < 0)
			return error("read FAT of partition %u on '%s' at %" PRIu64 ": %m", p->number, s->path, off);
		buf[n] = 0;
		uint64_t first = g->bits == 12 ? 0 : done / esz;
		uint64_t last = g->bits == 12 ? entries : (done + n) / esz;
		for (uint64_t c = first; c < last; c++) {
			uint32_t v = fat_entry(g, buf, c - first);
			if (c == 1 && fat_entry1_dirty(g, v))
				*dirty = true;
			if (c < 2 || v == 0 || v == bad)
				continue;
			fat_add(r, g->data_off + (c - 2) * g->clus_bytes, g->clus_bytes);
		}
		done += n;
	}
	fat_flush(r);
	return 0;
}

/* A volume mounted when the machine went down may have clusters in use that its FAT
 * does not show yet. */
static int fat_dirty(struct partition *p, const struct fat_geom *g)
{
	return fs_fallback(p, FS_STATE_DIRTY, "FAT%u volume not cleanly unmounted: copied whole; "
			    "run 'fsck.vfat' on the source to map used clusters only", g->bits);
}

static int fat_map(struct source *s, struct partition *p, struct extmap *out)
{
	uint8_t bs[512];
	struct fat_geom g;

	if (p->size < sizeof bs)
		return fs_fallback(p, FS_STATE_DAMAGED, "FAT partition smaller than a boot sector: copied whole");
	if (source_pread(s, bs, p->start, sizeof bs) < 0)
		return error("read FAT boot sector of partition %u on '%s': %m", p->number, s->path);
	const char *why = fat_parse(bs, p->size, &g);
	if (why)
		return fs_fallback(p, FS_STATE_DAMAGED, "FAT boot sector invalid (%s): copied whole", why);

	if (g.dirty)
		return fat_dirty(p, &g);
	struct fat_run r = { .p = p, .out = out };
	bool dirty = false;
	fat_add(&r, 0, g.data_off);  /* reserved sectors, every FAT, FAT12/16 root directory */
	if (fat_map_clusters(s, p, &g, &r, &dirty) < 0)
		return -1;
	if (dirty)
		return fat_dirty(p, &g);
	/* Sectors past the last whole cluster and the partition tail past the volume. */
	uint64_t end = g.data_off + (uint64_t)g.clusters * g.clus_bytes;
	if (end < p->size)
		fat_add(&r, end, p->size - end);
	fat_flush(&r);

	p->state = FS_STATE_CLEAN;
	p->fs_size = g.fs_size;
	p->used_bytes = r.used;
	snprintf(p->reason, sizeof p->reason, "FAT%u allocation table, %u-byte clusters", g.bits, g.clus_bytes);
	return FS_MAPPED;
}

static const char *const fat_types[] = { "vfat", "msdos", NULL };

const struct fs_ops fs_fat = {
	.name = "fat",
	.blkid_types = fat_types,
	.map = fat_map,
};
