/* vhd.c - Microsoft VHD ("Virtual Hard Disk Image Format Specification" v1.0), dynamic
 * (2 MiB blocks, Hyper-V Gen 1, XenServer) and fixed (Azure) disks, written front to back,
 * and their readers for verify. Differencing disks and other block sizes are not written. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "format.h"
#include "util.h"

#define VHD_SECTOR 512u
#define VHD_FOOTER_SIZE 512u
#define VHD_DYNHDR_SIZE 1024u
#define VHD_BLOCK (2u << 20)                /* block size we write (spec default) */
#define VHD_BITMAP_SIZE 512u                 /* 2 MiB / 512 / 8 bytes, one sector */
#define VHD_SLOT ((uint64_t)VHD_BITMAP_SIZE + VHD_BLOCK)
#define VHD_BAT_OFFSET ((uint64_t)VHD_FOOTER_SIZE + VHD_DYNHDR_SIZE)
#define VHD_MAX_SIZE (2040ull << 30)         /* spec: "up to 2040 GB" */
#define VHD_BAT_FREE 0xFFFFFFFFu
#define VHD_TYPE_FIXED 2u
#define VHD_TYPE_DYNAMIC 3u
#define VHD_TYPE_DIFF 4u
#define VHD_EPOCH 946684800                  /* 2000-01-01T00:00:00Z as Unix time */
#define VHD_BAT_BUF 4096u                    /* BAT entries generated per write */
/* Reader bounds for hostile images: block sizes a real tool might use. */
#define VHD_MIN_BLOCK 4096u
#define VHD_MAX_BLOCK (256u << 20)

/* Hard disk footer fields (spec "Hard Disk Footer Format"), byte offsets. */
enum {
	FT_COOKIE = 0, FT_FEATURES = 8, FT_VERSION = 12, FT_DATA_OFFSET = 16, FT_TIMESTAMP = 24,
	FT_CREATOR_APP = 28, FT_CREATOR_VER = 32, FT_CREATOR_OS = 36, FT_ORIG_SIZE = 40,
	FT_CUR_SIZE = 48, FT_GEOMETRY = 56, FT_TYPE = 60, FT_CHECKSUM = 64, FT_UUID = 68,
};
/* Dynamic disk header fields (spec "Dynamic Disk Header Format"). */
enum {
	DH_COOKIE = 0, DH_DATA_OFFSET = 8, DH_TABLE_OFFSET = 16, DH_VERSION = 24,
	DH_MAX_ENTRIES = 28, DH_BLOCK_SIZE = 32, DH_CHECKSUM = 36,
};

/* Creator application: QEMU's vpc driver sizes the disk from the CHS geometry (which
 * rounds down) unless the creator is one it knows records an exact current size:
 * "win " (Hyper-V), "d2v ", "CTXS", "tap", "qem2". Hyper-V is the reader this format
 * exists for and ignores the field, so we record "win " and the exact size is seen by
 * every reader. Creator version 1.0 and our own unique id still tell images apart. */
static const char vhd_creator_app[4] = { 'w', 'i', 'n', ' ' };

struct vhd_writer {
	uint8_t footer[VHD_FOOTER_SIZE];  /* built by open; dynamic disks repeat it at the end */
	uint64_t nblocks;       /* BAT entries (dynamic) */
	uint64_t data_start;    /* file offset of the first block slot (dynamic) */
	uint64_t next_blk;      /* first block whose slot is not yet emitted (dynamic) */
	uint64_t slots;         /* slots emitted so far (dynamic) */
	uint64_t cur_blk;       /* block whose slot is open, UINT64_MAX when none */
	uint64_t cur_end;       /* file offset where the open slot ends */
};

/* One's complement of the byte sum, skipping the checksum field (spec, both structures). */
static uint32_t vhd_checksum(const uint8_t *p, size_t n, size_t skip)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < n; i++)
		if (i < skip || i >= skip + 4)
			sum += p[i];
	return ~sum;
}

/* CHS geometry exactly as in the spec's appendix "CHS Calculation". */
static uint32_t vhd_geometry(uint64_t size)
{
	uint64_t total = size / VHD_SECTOR;
	uint32_t spt, heads, cth;
	if (total > 65535ull * 16 * 255)
		total = 65535ull * 16 * 255;
	if (total >= 65535ull * 16 * 63) {
		spt = 255;
		heads = 16;
		cth = (uint32_t)(total / spt);
	} else {
		spt = 17;
		cth = (uint32_t)(total / spt);
		heads = (cth + 1023) / 1024;
		if (heads < 4)
			heads = 4;
		if (cth >= heads * 1024 || heads > 16) {
			spt = 31;
			heads = 16;
			cth = (uint32_t)(total / spt);
		}
		if (cth >= heads * 1024) {
			spt = 63;
			heads = 16;
			cth = (uint32_t)(total / spt);
		}
	}
	return (cth / heads) << 16 | heads << 8 | spt;
}

static void vhd_build_footer(uint8_t *f, uint32_t type, uint64_t data_offset, uint64_t size)
{
	time_t now = time(NULL);
	uint64_t stamp = now > VHD_EPOCH ? (uint64_t)now - VHD_EPOCH : 0;
	memset(f, 0, VHD_FOOTER_SIZE);
	memcpy(f + FT_COOKIE, "conectix", 8);
	put_be32(f + FT_FEATURES, 2);            /* "reserved" bit, must always be set */
	put_be32(f + FT_VERSION, 0x00010000);
	put_be64(f + FT_DATA_OFFSET, data_offset);
	put_be32(f + FT_TIMESTAMP, (uint32_t)MIN(stamp, (uint64_t)UINT32_MAX));
	memcpy(f + FT_CREATOR_APP, vhd_creator_app, 4);
	put_be32(f + FT_CREATOR_VER, 0x00010000);
	memcpy(f + FT_CREATOR_OS, "Wi2k", 4);
	put_be64(f + FT_ORIG_SIZE, size);
	put_be64(f + FT_CUR_SIZE, size);
	put_be32(f + FT_GEOMETRY, vhd_geometry(size));
	put_be32(f + FT_TYPE, type);
	/* Unique id: a random (version 4) UUID; a weak source only costs uniqueness. */
	if (getrandom(f + FT_UUID, 16, 0) != 16) {
		uint64_t t = (uint64_t)now ^ (uint64_t)(uintptr_t)f;
		put_be64(f + FT_UUID, t);
		put_be64(f + FT_UUID + 8, t * 0x9E3779B97F4A7C15ull);
	}
	f[FT_UUID + 6] = (uint8_t)((f[FT_UUID + 6] & 0x0F) | 0x40);
	f[FT_UUID + 8] = (uint8_t)((f[FT_UUID + 8] & 0x3F) | 0x80);
	put_be32(f + FT_CHECKSUM, vhd_checksum(f, VHD_FOOTER_SIZE, FT_CHECKSUM));
}

static int vhd_check_writer(const struct fmt_writer *w, const char *name)
{
	if (w->vsize > VHD_MAX_SIZE)
		return error("write %s image of %" PRIu64 " bytes: VHD disks are limited to 2040 GiB; "
			     "use --format vhdx (Hyper-V) or qcow2 instead", name, w->vsize);
	if (w->vsize == 0 || w->vsize % VHD_SECTOR)
		return error("write %s image: disk size %" PRIu64 " is not a positive multiple of 512 bytes",
			     name, w->vsize);
	if (w->lsec != 512 && w->lsec != 4096)
		return error("write %s image: logical sector size %u is not supported (512 or 4096)",
			     name, w->lsec);
	return 0;
}

/* Move the sink forward to file offset `to`; writers never go back. */
static int vhd_zero_to(struct sink *s, uint64_t to)
{
	if (s->pos > to)
		return error("internal: vhd writer at offset %" PRIu64 " asked to go back to %" PRIu64,
			     s->pos, to);
	return to > s->pos ? sink_zero(s, to - s->pos) : 0;
}

static void vhd_free(struct fmt_writer *w)
{
	free(w->priv);
	w->priv = NULL;
}

/* ---- fixed: data at file offset = disk offset, then the footer (spec "Fixed Hard Disk Image") */

static int vhd_fixed_open(struct fmt_writer *w)
{
	if (vhd_check_writer(w, "vhd-fixed") < 0)
		return -1;
	/* Azure accepts only whole MiB; the extra tail reads as zero. */
	w->image_vsize = ROUND_UP(w->vsize, (uint64_t)CHUNK_SIZE);
	struct vhd_writer *v = xcalloc(1, sizeof *v);
	vhd_build_footer(v->footer, VHD_TYPE_FIXED, UINT64_MAX, w->image_vsize);
	w->priv = v;
	return 0;
}

static int vhd_fixed_write(struct fmt_writer *w, const struct chunk *c)
{
	if (vhd_zero_to(w->sink, c->off) < 0)
		return -1;
	return fmt_write_chunk_blocks(w->sink, c);
}

static int vhd_fixed_finish(struct fmt_writer *w)
{
	struct vhd_writer *v = w->priv;
	if (vhd_zero_to(w->sink, w->image_vsize) < 0)
		return -1;
	return sink_write(w->sink, v->footer, VHD_FOOTER_SIZE);
}

/* ---- dynamic: footer copy, header, BAT, block slots, footer (spec "Dynamic Hard Disk Image") */

static uint64_t vhd_block_len(const struct fmt_writer *w, uint64_t b)
{
	return MIN((uint64_t)VHD_BLOCK, w->vsize - b * VHD_BLOCK);
}

/* A block gets a slot when any byte of it is mapped, i.e. when any of its 64 KiB blocks
 * will be delivered. */
static bool vhd_block_used(const struct fmt_writer *w, uint64_t b)
{
	return extmap_any(w->map, b * VHD_BLOCK, vhd_block_len(w, b));
}

static int vhd_write_dynhdr(struct fmt_writer *w, uint64_t nblocks)
{
	uint8_t h[VHD_DYNHDR_SIZE] = { 0 };
	memcpy(h + DH_COOKIE, "cxsparse", 8);
	put_be64(h + DH_DATA_OFFSET, UINT64_MAX);  /* unused; tools expect all 64 bits set */
	put_be64(h + DH_TABLE_OFFSET, VHD_BAT_OFFSET);
	put_be32(h + DH_VERSION, 0x00010000);
	put_be32(h + DH_MAX_ENTRIES, (uint32_t)nblocks);
	put_be32(h + DH_BLOCK_SIZE, VHD_BLOCK);
	put_be32(h + DH_CHECKSUM, vhd_checksum(h, sizeof h, DH_CHECKSUM));
	return sink_write(w->sink, h, sizeof h);
}

/* BAT: slots are numbered in increasing block order, so entry k of a used block is the
 * sector of the k-th slot. Generated piecewise: memory does not grow with the disk. */
static int vhd_write_bat(struct fmt_writer *w, struct vhd_writer *v)
{
	CLEANUP_FREE uint8_t *buf = xmalloc(VHD_BAT_BUF * 4);
	uint64_t slot = 0;
	for (uint64_t b = 0; b < v->nblocks; ) {
		size_t n = 0;
		for (; n < VHD_BAT_BUF && b < v->nblocks; n++, b++) {
			uint32_t e = VHD_BAT_FREE;
			if (vhd_block_used(w, b))
				e = (uint32_t)((v->data_start + slot++ * VHD_SLOT) / VHD_SECTOR);
			put_be32(buf + n * 4, e);
		}
		if (sink_write(w->sink, buf, n * 4) < 0)
			return -1;
	}
	return sink_pad(w->sink, VHD_SECTOR);
}

static int vhd_dyn_open(struct fmt_writer *w)
{
	if (vhd_check_writer(w, "vhd") < 0)
		return -1;
	w->image_vsize = w->vsize;
	struct vhd_writer *v = xcalloc(1, sizeof *v);
	w->priv = v;
	v->nblocks = DIV_ROUND_UP(w->vsize, VHD_BLOCK);
	v->data_start = VHD_BAT_OFFSET + ROUND_UP(v->nblocks * 4, VHD_SECTOR);
	v->cur_blk = UINT64_MAX;
	/* Every slot's sector number must fit the 32-bit BAT entry (true below 2040 GiB). */
	if ((v->data_start + v->nblocks * VHD_SLOT) / VHD_SECTOR > UINT32_MAX)
		return error("write vhd image: %" PRIu64 " bytes do not fit 32-bit block addresses",
			     w->vsize);
	vhd_build_footer(v->footer, VHD_TYPE_DYNAMIC, VHD_FOOTER_SIZE, w->vsize);
	if (w->sink->pos != 0)
		return error("internal: vhd image must start at offset 0 of its destination");
	if (sink_write(w->sink, v->footer, VHD_FOOTER_SIZE) < 0 || vhd_write_dynhdr(w, v->nblocks) < 0)
		return -1;
	return vhd_write_bat(w, v);
}

static int vhd_close_slot(struct fmt_writer *w, struct vhd_writer *v)
{
	if (v->cur_blk == UINT64_MAX)
		return 0;
	v->cur_blk = UINT64_MAX;
	return vhd_zero_to(w->sink, v->cur_end);  /* also pads the disk's last, partial block */
}

/* Sector bitmap all ones: the spec marks sectors holding data; since every byte of the
 * slot not delivered is written as zero, "all valid" reads the same as a per-sector map,
 * costs nothing to compute, and is what Hyper-V and QEMU write for allocated blocks. */
static int vhd_open_slot(struct fmt_writer *w, struct vhd_writer *v, uint64_t b)
{
	static const uint8_t ones[VHD_BITMAP_SIZE] = { [0 ... VHD_BITMAP_SIZE - 1] = 0xFF };
	if (w->sink->pos != v->data_start + v->slots * VHD_SLOT)
		return error("internal: vhd slot %" PRIu64 " at offset %" PRIu64 " instead of %" PRIu64,
			     v->slots, w->sink->pos, v->data_start + v->slots * VHD_SLOT);
	if (sink_write(w->sink, ones, sizeof ones) < 0)
		return -1;
	v->slots++;
	v->cur_blk = b;
	v->cur_end = w->sink->pos + VHD_BLOCK;
	v->next_blk = b + 1;
	return 0;
}

/* Emit slots of used blocks before `end` that received no chunk (empty slots), so the
 * file always matches the BAT written by open. */
static int vhd_fill_slots(struct fmt_writer *w, struct vhd_writer *v, uint64_t end)
{
	for (uint64_t b = v->next_blk; b < end; b++) {
		if (!vhd_block_used(w, b))
			continue;
		if (vhd_open_slot(w, v, b) < 0 || vhd_close_slot(w, v) < 0)
			return -1;
	}
	v->next_blk = MAX(v->next_blk, end);
	return 0;
}

static int vhd_dyn_write(struct fmt_writer *w, const struct chunk *c)
{
	struct vhd_writer *v = w->priv;
	uint64_t b = c->off / VHD_BLOCK;  /* 1 MiB chunks never straddle 2 MiB blocks */
	if (b != v->cur_blk) {
		if (b < v->next_blk || !vhd_block_used(w, b))
			return error("internal: vhd chunk at %" PRIu64 " out of order or outside the map", c->off);
		if (vhd_close_slot(w, v) < 0 || vhd_fill_slots(w, v, b) < 0 || vhd_open_slot(w, v, b) < 0)
			return -1;
	}
	if (vhd_zero_to(w->sink, v->cur_end - VHD_BLOCK + (c->off - b * VHD_BLOCK)) < 0)
		return -1;
	return fmt_write_chunk_blocks(w->sink, c);
}

static int vhd_dyn_finish(struct fmt_writer *w)
{
	struct vhd_writer *v = w->priv;
	if (vhd_close_slot(w, v) < 0 || vhd_fill_slots(w, v, v->nblocks) < 0)
		return -1;
	return sink_write(w->sink, v->footer, VHD_FOOTER_SIZE);
}

/* ---- readers */

struct vhd_reader {
	uint32_t type;          /* VHD_TYPE_FIXED or VHD_TYPE_DYNAMIC */
	uint64_t bat_offset;    /* file offset of the BAT (dynamic) */
	uint32_t bat_entries;   /* max table entries (dynamic) */
	uint32_t block_size;    /* bytes per block (dynamic) */
	uint32_t bitmap_size;   /* bytes of sector bitmap before each block, sector aligned */
	uint64_t bitmap_blk;    /* block whose bitmap is cached, UINT64_MAX when none */
	uint8_t *bitmap;        /* bitmap_size bytes */
};

/* Footer at the end of the file: 1 valid (type in *type), 0 not a VHD, -1 damaged. */
static int vhd_read_footer(struct fmt_reader *r, uint8_t *f, uint32_t *type)
{
	if (r->file_size < VHD_FOOTER_SIZE)
		return 0;
	if (pread_full(r->fd, f, VHD_FOOTER_SIZE, r->file_size - VHD_FOOTER_SIZE) < 0)
		return error("read vhd footer: %m");
	if (memcmp(f + FT_COOKIE, "conectix", 8) != 0)
		return 0;
	if (get_be32(f + FT_CHECKSUM) != vhd_checksum(f, VHD_FOOTER_SIZE, FT_CHECKSUM))
		return error("vhd footer checksum mismatch: the image is damaged");
	if (get_be32(f + FT_VERSION) >> 16 != 1)
		return error("vhd footer: unsupported format version 0x%08x", get_be32(f + FT_VERSION));
	*type = get_be32(f + FT_TYPE);
	if (*type == VHD_TYPE_DIFF)
		return error("vhd: differencing disks are not supported (merge it into its parent first)");
	if (*type != VHD_TYPE_FIXED && *type != VHD_TYPE_DYNAMIC)
		return error("vhd footer: unknown disk type %u", *type);
	uint64_t size = get_be64(f + FT_CUR_SIZE);
	if (size == 0 || size % VHD_SECTOR || size > VHD_MAX_SIZE)
		return error("vhd footer: invalid current size %" PRIu64, size);
	return 1;
}

static int vhd_read_dynhdr(struct fmt_reader *r, struct vhd_reader *v, const uint8_t *f)
{
	uint8_t copy[VHD_FOOTER_SIZE], h[VHD_DYNHDR_SIZE];
	uint64_t body = r->file_size - VHD_FOOTER_SIZE;  /* bytes before the footer */
	uint64_t hoff = get_be64(f + FT_DATA_OFFSET), end;
	if (pread_full(r->fd, copy, sizeof copy, 0) < 0)
		return error("read vhd footer copy: %m");
	if (memcmp(copy, f, VHD_FOOTER_SIZE) != 0)
		return error("vhd: the footer copy at offset 0 differs from the footer: the image is damaged");
	if (hoff < VHD_FOOTER_SIZE || __builtin_add_overflow(hoff, VHD_DYNHDR_SIZE, &end) || end > body)
		return error("vhd: dynamic header offset %" PRIu64 " outside the file", hoff);
	if (pread_full(r->fd, h, sizeof h, hoff) < 0)
		return error("read vhd dynamic header: %m");
	if (memcmp(h + DH_COOKIE, "cxsparse", 8) != 0)
		return error("vhd: no dynamic disk header (cxsparse) at offset %" PRIu64, hoff);
	if (get_be32(h + DH_CHECKSUM) != vhd_checksum(h, sizeof h, DH_CHECKSUM))
		return error("vhd dynamic header checksum mismatch: the image is damaged");
	if (get_be32(h + DH_VERSION) != 0x00010000)
		return error("vhd dynamic header: unsupported version 0x%08x", get_be32(h + DH_VERSION));
	v->block_size = get_be32(h + DH_BLOCK_SIZE);
	if (v->block_size < VHD_MIN_BLOCK || v->block_size > VHD_MAX_BLOCK ||
	    (v->block_size & (v->block_size - 1)))
		return error("vhd dynamic header: unsupported block size %u", v->block_size);
	v->bitmap_size = ROUND_UP(v->block_size / VHD_SECTOR / 8, VHD_SECTOR);
	v->bat_entries = get_be32(h + DH_MAX_ENTRIES);
	if ((uint64_t)v->bat_entries * v->block_size < r->vsize)
		return error("vhd dynamic header: %u blocks cannot hold %" PRIu64 " bytes", v->bat_entries, r->vsize);
	v->bat_offset = get_be64(h + DH_TABLE_OFFSET);
	if (v->bat_offset < VHD_FOOTER_SIZE ||
	    __builtin_add_overflow(v->bat_offset, (uint64_t)v->bat_entries * 4, &end) || end > body)
		return error("vhd: block allocation table at %" PRIu64 " outside the file", v->bat_offset);
	v->bitmap = xmalloc(v->bitmap_size);
	v->bitmap_blk = UINT64_MAX;
	return 0;
}

static void vhd_read_close(struct fmt_reader *r)
{
	struct vhd_reader *v = r->priv;
	if (v)
		free(v->bitmap);
	free(v);
	r->priv = NULL;
}

/* A fixed disk is its data followed by the footer, nothing else. */
static int vhd_check_fixed(const struct fmt_reader *r)
{
	if (r->vsize != r->file_size - VHD_FOOTER_SIZE)
		return error("vhd fixed: size %" PRIu64 " does not match the file (%" PRIu64 " bytes before the footer)",
			     r->vsize, r->file_size - VHD_FOOTER_SIZE);
	return 0;
}

static int vhd_read_open_type(struct fmt_reader *r, uint32_t want)
{
	uint8_t f[VHD_FOOTER_SIZE];
	uint32_t type = 0;
	int k = vhd_read_footer(r, f, &type);
	if (k <= 0)
		return k;
	if (type != want)
		return 0;  /* the other VHD flavour: its own ops take it */
	r->vsize = get_be64(f + FT_CUR_SIZE);
	r->lsec = 512;
	struct vhd_reader *v = xcalloc(1, sizeof *v);
	v->type = type;
	r->priv = v;
	if (type == VHD_TYPE_FIXED ? vhd_check_fixed(r) < 0 : vhd_read_dynhdr(r, v, f) < 0) {
		vhd_read_close(r);
		return -1;
	}
	return 1;
}

static int vhd_dyn_read_open(struct fmt_reader *r)
{
	return vhd_read_open_type(r, VHD_TYPE_DYNAMIC);
}

static int vhd_fixed_read_open(struct fmt_reader *r)
{
	return vhd_read_open_type(r, VHD_TYPE_FIXED);
}

static int vhd_check_range(const struct fmt_reader *r, uint64_t off, size_t len)
{
	uint64_t end;
	if (__builtin_add_overflow(off, (uint64_t)len, &end) || end > r->vsize)
		return error("read vhd image: range %" PRIu64 "+%zu beyond the disk size %" PRIu64, off, len, r->vsize);
	return 0;
}

static int vhd_fixed_read(struct fmt_reader *r, void *buf, uint64_t off, size_t len)
{
	if (vhd_check_range(r, off, len) < 0)
		return -1;
	if (pread_full(r->fd, buf, len, off) < 0)
		return error("read vhd image at offset %" PRIu64 ": %m", off);
	return 0;
}

/* BAT entry of block b as a file offset of its bitmap, 0 when unallocated. */
static int vhd_bat_lookup(struct fmt_reader *r, struct vhd_reader *v, uint64_t b, uint64_t *slot)
{
	uint8_t e[4];
	if (pread_full(r->fd, e, 4, v->bat_offset + b * 4) < 0)
		return error("read vhd block allocation table: %m");
	uint32_t sec = get_be32(e);
	*slot = 0;
	if (sec == VHD_BAT_FREE)
		return 0;
	uint64_t start = (uint64_t)sec * VHD_SECTOR;
	uint64_t end = start + v->bitmap_size + v->block_size;
	/* A block lives between the header copy and the footer (spec: never over metadata). */
	if (start < VHD_FOOTER_SIZE || end > r->file_size - VHD_FOOTER_SIZE)
		return error("vhd block %" PRIu64 " at offset %" PRIu64 " outside the file: the image is damaged",
			     b, start);
	*slot = start;
	return 0;
}

/* Zero the sectors of [boff, boff+n) of block b whose bitmap bit is clear: for a dynamic
 * disk those were never written and read as zero. Bit order: sector 0 is the MSB. */
static int vhd_apply_bitmap(struct fmt_reader *r, struct vhd_reader *v, uint64_t b, uint64_t slot,
			    uint8_t *out, uint32_t boff, size_t n)
{
	if (v->bitmap_blk != b) {
		if (pread_full(r->fd, v->bitmap, v->bitmap_size, slot) < 0)
			return error("read vhd sector bitmap of block %" PRIu64 ": %m", b);
		v->bitmap_blk = b;
	}
	for (uint32_t s = boff / VHD_SECTOR; (uint64_t)s * VHD_SECTOR < boff + n; s++) {
		if (v->bitmap[s / 8] & (0x80u >> (s % 8)))
			continue;
		uint64_t lo = MAX((uint64_t)s * VHD_SECTOR, (uint64_t)boff);
		uint64_t hi = MIN((uint64_t)(s + 1) * VHD_SECTOR, (uint64_t)boff + n);
		memset(out + (lo - boff), 0, hi - lo);
	}
	return 0;
}

static int vhd_dyn_read(struct fmt_reader *r, void *buf, uint64_t off, size_t len)
{
	struct vhd_reader *v = r->priv;
	uint8_t *out = buf;
	bool any = false;
	if (vhd_check_range(r, off, len) < 0)
		return -1;
	while (len) {
		uint64_t b = off / v->block_size, slot = 0;
		uint32_t boff = (uint32_t)(off % v->block_size);
		size_t n = (size_t)MIN((uint64_t)len, (uint64_t)(v->block_size - boff));
		if (vhd_bat_lookup(r, v, b, &slot) < 0)
			return -1;
		if (!slot) {
			memset(out, 0, n);
		} else {
			any = true;
			if (pread_full(r->fd, out, n, slot + v->bitmap_size + boff) < 0)
				return error("read vhd block %" PRIu64 ": %m", b);
			if (vhd_apply_bitmap(r, v, b, slot, out, boff, n) < 0)
				return -1;
		}
		out += n;
		off += n;
		len -= n;
	}
	return any ? 0 : 1;
}

const struct fmt_ops fmt_vhd = {
	.name = "vhd",
	.ext = "vhd",
	.description = "VHD dynamic (Hyper-V Gen 1, Citrix/XenServer, Virtual PC)",
	.caps = 0,
	.max_vsize = VHD_MAX_SIZE,
	.open = vhd_dyn_open,
	.write = vhd_dyn_write,
	.finish = vhd_dyn_finish,
	.free = vhd_free,
	.read_open = vhd_dyn_read_open,
	.read = vhd_dyn_read,
	.read_close = vhd_read_close,
};

const struct fmt_ops fmt_vhd_fixed = {
	.name = "vhd-fixed",
	.ext = "vhd-fixed",
	.description = "VHD fixed, size rounded up to 1 MiB (Azure)",
	.caps = FMT_FULL_SIZE,
	.max_vsize = VHD_MAX_SIZE,
	.open = vhd_fixed_open,
	.write = vhd_fixed_write,
	.finish = vhd_fixed_finish,
	.free = vhd_free,
	.read_open = vhd_fixed_read_open,
	.read = vhd_fixed_read,
	.read_close = vhd_read_close,
};
