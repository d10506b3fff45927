/* format.h - image formats (src/format/<name>.c), one table of operations each.
 * A writer emits its image strictly front to back through a sink: everything that must
 * precede the data (headers, tables) is computed from the extent map, which says in
 * advance which blocks will be delivered. A delivered block that turns out to be all
 * zero is left as a hole (sink_zero) or marked zero, never stored as data.
 * A reader decodes images this program wrote, for `coldclone verify`. */
#ifndef COLDCLONE_FORMAT_H
#define COLDCLONE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "extmap.h"
#include "sink.h"

enum {
	FMT_CAN_4K = 1u << 0,      /* can record a 4096-byte logical sector size */
	FMT_COMPRESSED = 1u << 1,  /* encode() compresses (CPU heavy) */
	FMT_FULL_SIZE = 1u << 2,   /* the file is as big as the disk: holes are part of its SHA-256 */
};

struct fmt_writer {
	const struct fmt_ops *ops;
	struct sink *sink;
	uint64_t vsize;            /* virtual size, bytes (the source size) */
	uint32_t lsec;             /* logical sector size of the source */
	const struct extmap *map;  /* normalized; chunks are delivered for every 1 MiB chunk it touches */
	uint64_t image_vsize;      /* virtual size recorded in the image (vhd-fixed rounds up), set by open */
	void *priv;                /* format state */
};

struct fmt_reader {
	int fd;
	uint64_t file_size;
	uint64_t vsize;            /* set by read_open */
	uint32_t lsec;             /* set by read_open when the format records it, else 512 */
	void *priv;
};

struct fmt_ops {
	const char *name;          /* --format value */
	const char *ext;           /* file extension that selects it, without dot */
	const char *description;   /* one line for help: which hypervisor takes it */
	unsigned caps;
	uint64_t max_vsize;        /* largest virtual disk it can describe */
	/* Worker output bytes needed per chunk (0: no encode step). */
	size_t (*out_capacity)(void);
	/* Write everything before the first data block. w->map tells which 64 KiB blocks
	 * will be delivered: chunk c delivers block i when bit i of c->mapped is set. */
	int (*open)(struct fmt_writer *w);
	/* Optional, runs in worker threads in any order: fill c->out from c->data (e.g.
	 * compress). Must only read w. Blocks with nonzero bit clear need no encoding. */
	void (*encode)(const struct fmt_writer *w, struct chunk *c);
	/* Serial, in disk order, for every chunk with c->mapped != 0. */
	int (*write)(struct fmt_writer *w, const struct chunk *c);
	/* Write what follows the data (footers, tables). */
	int (*finish)(struct fmt_writer *w);
	void (*free)(struct fmt_writer *w);  /* accepts w->priv == NULL */

	/* Reader: 1 when fd holds this format (fills r->vsize), 0 when not, -1 on a
	 * damaged image (message printed). */
	int (*read_open)(struct fmt_reader *r);
	/* Virtual bytes [off, off+len) into buf. Returns 0 with data, 1 when the whole range
	 * is unallocated (reads as zero; buf may be left untouched), -1 on error. */
	int (*read)(struct fmt_reader *r, void *buf, uint64_t off, size_t len);
	void (*read_close)(struct fmt_reader *r);
};

/* Compression level of vmdk-stream grains (libdeflate 1..12, default 1: fastest, and
 * only ~3% larger than level 6 on mixed data). */
void vmdk_set_compression_level(int level);

extern const struct fmt_ops fmt_raw, fmt_qcow2, fmt_vmdk, fmt_vmdk_stream, fmt_vhdx, fmt_vhd, fmt_vhd_fixed;

const struct fmt_ops *fmt_by_name(const char *name);
/* Format implied by a file name's extension (".vmdk" -> vmdk-stream), or NULL. */
const struct fmt_ops *fmt_by_path(const char *path);
/* All formats, NULL-terminated, for help and for verify's detection. */
extern const struct fmt_ops *const fmt_all[];

/* Helpers for writers: iterate the 64 KiB blocks the extent map touches, in order. */
struct fmt_block_iter {
	const struct extmap *map;
	uint64_t vsize;
	size_t ext;                /* current extent index */
	uint64_t next;             /* next block offset to consider */
};
void fmt_block_iter_init(struct fmt_block_iter *it, const struct extmap *map, uint64_t vsize);
/* Next mapped block's offset (multiple of BLOCK_SIZE) into *off; false at the end. */
bool fmt_block_iter_next(struct fmt_block_iter *it, uint64_t *off);
/* Number of mapped 64 KiB blocks. */
uint64_t fmt_count_blocks(const struct extmap *map, uint64_t vsize);
/* Emit the chunk's blocks at the sink's current position: non-zero blocks as data,
 * everything else as zeros (holes on a file). For formats that store data flat. */
int fmt_write_chunk_blocks(struct sink *s, const struct chunk *c);
/* Mask of mapped blocks for the chunk at off (what the reader will set in c->mapped). */
uint32_t fmt_chunk_mapped_mask(const struct extmap *map, uint64_t off, uint32_t len);

#endif
