/* vhdx.c - dynamic VHDX ([MS-VHDX] v1.0) written front to back: header section, log,
 * metadata and BAT are derived from the extent map before the payload blocks follow; plus
 * a reader for verify. Not handled: fixed or differencing files, log replay (refused). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/random.h>

#include "format.h"
#include "util.h"

#define VHDX_MIB (UINT64_C(1) << 20)
/* Payload block size (§2.6.2.1). 1 MiB, the smallest allowed: it equals CHUNK_SIZE, so one
 * delivered chunk is one payload block and write() never straddles blocks; a chunk with a
 * single mapped 64 KiB block costs 1 MiB of file, not 2; and it is the size Microsoft
 * advises for Linux guests. The price, a BAT twice as large as with 2 MiB (512 MiB at
 * 64 TiB), is paid once, streamed in pieces and left as holes where nothing is allocated. */
#define VHDX_BLOCK VHDX_MIB
#define VHDX_STRUCT_SIZE (UINT64_C(64) << 10)  /* identifier, header, region table slots (§2.2) */
#define VHDX_HEADER_SIZE 4096u                 /* bytes covered by a header's checksum (§2.2.2) */
#define VHDX_HEADER1_OFF (1 * VHDX_STRUCT_SIZE)
#define VHDX_HEADER2_OFF (2 * VHDX_STRUCT_SIZE)
#define VHDX_RT1_OFF (3 * VHDX_STRUCT_SIZE)
#define VHDX_RT2_OFF (4 * VHDX_STRUCT_SIZE)
#define VHDX_LOG_OFF (1 * VHDX_MIB)
#define VHDX_LOG_LEN VHDX_MIB
#define VHDX_META_OFF (2 * VHDX_MIB)
#define VHDX_META_LEN VHDX_MIB
#define VHDX_BAT_OFF (3 * VHDX_MIB)
#define VHDX_MAX_VSIZE (UINT64_C(64) << 40)    /* §2.6.2.2 */
#define VHDX_SECTORS_PER_BITMAP (UINT64_C(1) << 23)  /* sectors one bitmap block covers (§2.4) */
#define VHDX_RT_MAX 2047u                      /* region and metadata entries (§2.2.3.1, §2.6.1.1) */
#define VHDX_META_ITEMS_OFF (UINT32_C(64) << 10)  /* items follow the 64 KiB table (§2.6.1.2) */

/* BAT entry: state in bits 0-2, FileOffsetMB in bits 20-63 (§2.5.1). */
enum {
	PAYLOAD_BLOCK_NOT_PRESENT = 0,
	PAYLOAD_BLOCK_UNDEFINED = 1,
	PAYLOAD_BLOCK_ZERO = 2,
	PAYLOAD_BLOCK_UNMAPPED = 3,
	PAYLOAD_BLOCK_FULLY_PRESENT = 6,
	PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7,
};
#define VHDX_BAT_STATE(e) ((unsigned)((e) & 7))
#define VHDX_BAT_OFFSET(e) (((e) >> 20) * VHDX_MIB)

/* GUIDs as the spec prints them; stored little-endian for the first three fields. */
struct vhdx_guid {
	uint32_t d1;
	uint16_t d2, d3;
	uint8_t d4[8];
};

static const struct vhdx_guid guid_bat = { 0x2DC27766, 0xF623, 0x4200, { 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08 } };
static const struct vhdx_guid guid_meta = { 0x8B7CA206, 0x4790, 0x4B9A, { 0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E } };
static const struct vhdx_guid guid_file_params = { 0xCAA16737, 0xFA36, 0x4D43, { 0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B } };
static const struct vhdx_guid guid_vsize = { 0x2FA54224, 0xCD1B, 0x4876, { 0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8 } };
static const struct vhdx_guid guid_page83 = { 0xBECA12AB, 0xB2E6, 0x4523, { 0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46 } };
static const struct vhdx_guid guid_lsec = { 0x8141BF1D, 0xA96F, 0x4709, { 0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F } };
static const struct vhdx_guid guid_psec = { 0xCDA348C7, 0x445D, 0x4471, { 0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56 } };

static void vhdx_put_guid(uint8_t *p, const struct vhdx_guid *g)
{
	put_le32(p, g->d1);
	put_le16(p + 4, g->d2);
	put_le16(p + 6, g->d3);
	memcpy(p + 8, g->d4, 8);
}

static bool vhdx_guid_eq(const uint8_t *p, const struct vhdx_guid *g)
{
	uint8_t b[16];
	vhdx_put_guid(b, g);
	return memcmp(p, b, 16) == 0;
}

/* CRC-32C (Castagnoli, reflected 0x82F63B78), as every VHDX checksum (§2.2.2). The table
 * is rebuilt per call: 2 KiB of work against the 4-64 KiB it then covers, and no shared state. */
static uint32_t vhdx_crc32c(const uint8_t *p, size_t n)
{
	uint32_t table[256];
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		table[i] = c;
	}
	uint32_t crc = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

/* Checksum of a structure whose 4-byte checksum field (at offset 4) counts as zero. */
static uint32_t vhdx_struct_crc(uint8_t *p, size_t n)
{
	uint8_t saved[4];
	memcpy(saved, p + 4, 4);
	memset(p + 4, 0, 4);
	uint32_t crc = vhdx_crc32c(p, n);
	memcpy(p + 4, saved, 4);
	return crc;
}

/* Chunk ratio (§2.4): payload blocks per sector bitmap block; BAT index of payload block b. */
static uint64_t vhdx_chunk_ratio(uint32_t lsec, uint64_t block)
{
	return VHDX_SECTORS_PER_BITMAP * lsec / block;
}

/* Entries for a dynamic file (§2.5): payload entries with a bitmap entry after every full
 * chunk of them, but none after the last payload entry. */
static uint64_t vhdx_bat_entries(uint64_t nblocks, uint64_t ratio)
{
	return nblocks + (nblocks - 1) / ratio;
}

/* ---- writer ---- */

struct vhdx_w {
	uint64_t nblocks;      /* payload blocks of the virtual disk */
	uint64_t ratio;        /* chunk ratio */
	uint64_t bat_len;      /* BAT region length, multiple of 1 MiB */
	uint64_t data_off;     /* file offset of the first payload block */
	uint64_t nalloc;       /* payload blocks the BAT allocates */
	uint64_t written;      /* payload blocks written so far */
	uint64_t next_vblock;  /* first virtual block write() has not passed */
};

/* First payload block >= from that the extent map touches, or UINT64_MAX. */
static uint64_t vhdx_next_alloc(const struct fmt_writer *w, const struct vhdx_w *p, uint64_t from)
{
	if (from >= p->nblocks)
		return UINT64_MAX;
	size_t i = extmap_find(w->map, from * VHDX_BLOCK);
	if (i >= w->map->n || w->map->v[i].start >= w->vsize)
		return UINT64_MAX;
	uint64_t b = MAX(from, w->map->v[i].start / VHDX_BLOCK);
	return b < p->nblocks ? b : UINT64_MAX;
}

static int vhdx_random(uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = getrandom(p, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return error("write VHDX: get random bytes for GUIDs: %m");
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int vhdx_random_guid(uint8_t g[16])
{
	if (vhdx_random(g, 16) < 0)
		return -1;
	g[7] = (uint8_t)((g[7] & 0x0F) | 0x40);  /* version 4 (high nibble of Data3) */
	g[8] = (uint8_t)((g[8] & 0x3F) | 0x80);  /* RFC 4122 variant */
	return 0;
}

/* File type identifier (§2.2.1): signature and a UTF-16LE creator string. */
static int vhdx_write_ident(struct sink *s, uint8_t *buf)
{
	static const char creator[] = "coldclone";
	memset(buf, 0, VHDX_STRUCT_SIZE);
	memcpy(buf, "vhdxfile", 8);
	for (size_t i = 0; creator[i]; i++)
		put_le16(buf + 8 + 2 * i, (uint8_t)creator[i]);
	return sink_write(s, buf, VHDX_STRUCT_SIZE);
}

/* Header (§2.2.2). LogGuid stays zero: the log holds nothing to replay. */
static int vhdx_write_header(struct sink *s, uint8_t *buf, uint64_t seq, const uint8_t fw[16], const uint8_t dw[16])
{
	memset(buf, 0, VHDX_STRUCT_SIZE);
	memcpy(buf, "head", 4);
	put_le64(buf + 8, seq);
	memcpy(buf + 16, fw, 16);              /* FileWriteGuid */
	memcpy(buf + 32, dw, 16);              /* DataWriteGuid */
	put_le16(buf + 64, 0);                 /* LogVersion */
	put_le16(buf + 66, 1);                 /* Version */
	put_le32(buf + 68, (uint32_t)VHDX_LOG_LEN);
	put_le64(buf + 72, VHDX_LOG_OFF);
	put_le32(buf + 4, vhdx_struct_crc(buf, VHDX_HEADER_SIZE));
	return sink_write(s, buf, VHDX_STRUCT_SIZE);
}

/* Region table (§2.2.3): the BAT and metadata regions, both required. */
static int vhdx_write_region_table(struct sink *s, uint8_t *buf, uint64_t bat_len)
{
	memset(buf, 0, VHDX_STRUCT_SIZE);
	memcpy(buf, "regi", 4);
	put_le32(buf + 8, 2);
	uint8_t *e = buf + 16;
	vhdx_put_guid(e, &guid_bat);
	put_le64(e + 16, VHDX_BAT_OFF);
	put_le32(e + 24, (uint32_t)bat_len);
	put_le32(e + 28, 1);
	e += 32;
	vhdx_put_guid(e, &guid_meta);
	put_le64(e + 16, VHDX_META_OFF);
	put_le32(e + 24, (uint32_t)VHDX_META_LEN);
	put_le32(e + 28, 1);
	put_le32(buf + 4, vhdx_struct_crc(buf, VHDX_STRUCT_SIZE));
	return sink_write(s, buf, VHDX_STRUCT_SIZE);
}

/* Metadata table entry flags (§2.6.1.2). */
enum { META_IS_USER = 1, META_IS_VIRTUAL_DISK = 2, META_IS_REQUIRED = 4 };

/* Metadata region (§2.6): the table, then the five items packed after it. */
static int vhdx_write_metadata(struct fmt_writer *w, uint8_t *buf, const uint8_t page83[16])
{
	struct sink *s = w->sink;
	uint8_t items[48] = { 0 };
	struct { const struct vhdx_guid *id; uint32_t off, len, flags; } ent[] = {
		{ &guid_file_params, 0, 8, META_IS_REQUIRED },
		{ &guid_vsize, 8, 8, META_IS_VIRTUAL_DISK | META_IS_REQUIRED },
		{ &guid_page83, 16, 16, META_IS_VIRTUAL_DISK | META_IS_REQUIRED },
		{ &guid_lsec, 32, 4, META_IS_VIRTUAL_DISK | META_IS_REQUIRED },
		{ &guid_psec, 36, 4, META_IS_VIRTUAL_DISK | META_IS_REQUIRED },
	};
	put_le32(items + 0, (uint32_t)VHDX_BLOCK);  /* BlockSize; LeaveBlockAllocated = HasParent = 0 */
	put_le32(items + 4, 0);
	put_le64(items + 8, w->vsize);
	memcpy(items + 16, page83, 16);
	put_le32(items + 32, w->lsec);
	put_le32(items + 36, 4096);                 /* physical sector size */

	memset(buf, 0, VHDX_STRUCT_SIZE);
	memcpy(buf, "metadata", 8);
	put_le16(buf + 10, (uint16_t)ARRAY_SIZE(ent));
	for (size_t i = 0; i < ARRAY_SIZE(ent); i++) {
		uint8_t *e = buf + 32 + 32 * i;
		vhdx_put_guid(e, ent[i].id);
		put_le32(e + 16, VHDX_META_ITEMS_OFF + ent[i].off);
		put_le32(e + 20, ent[i].len);
		put_le32(e + 24, ent[i].flags);
	}
	if (sink_write(s, buf, VHDX_STRUCT_SIZE) < 0 || sink_write(s, items, sizeof items) < 0)
		return -1;
	return sink_zero(s, VHDX_META_OFF + VHDX_META_LEN - s->pos);
}

/* BAT output in 1 MiB pieces: an all-zero piece (nothing allocated) becomes a hole. */
struct vhdx_bat_out {
	struct sink *s;
	uint8_t *buf;          /* VHDX_MIB bytes */
	size_t used;           /* bytes filled */
};

static int vhdx_bat_flush(struct vhdx_bat_out *o)
{
	int r = buf_is_zero(o->buf, o->used) ? sink_zero(o->s, o->used) : sink_write(o->s, o->buf, o->used);
	o->used = 0;
	return r;
}

static int vhdx_bat_put(struct vhdx_bat_out *o, uint64_t e)
{
	put_le64(o->buf + o->used, e);
	o->used += 8;
	if (o->used < VHDX_MIB)
		return 0;
	return vhdx_bat_flush(o);
}

/* BAT (§2.5), generated piecewise: payload block b, the k-th block the map touches, lives
 * at data_off + k MiB. Untouched blocks are PAYLOAD_BLOCK_NOT_PRESENT: the state a new
 * dynamic file starts with, which Hyper-V and QEMU present as zeros (§2.5.1.1 lets a
 * dynamic file return zeros for it), and which keeps an empty BAT stretch a hole. Bitmap
 * entries stay SB_BLOCK_NOT_PRESENT, as a non-differencing file requires (§2.5.1.2). */
static int vhdx_write_bat(struct fmt_writer *w, struct vhdx_w *p)
{
	CLEANUP_FREE uint8_t *buf = xmalloc(VHDX_MIB);
	struct vhdx_bat_out o = { .s = w->sink, .buf = buf };
	uint64_t next = vhdx_next_alloc(w, p, 0);
	for (uint64_t b = 0; b < p->nblocks; b++) {
		uint64_t e = PAYLOAD_BLOCK_NOT_PRESENT;
		if (b == next) {
			uint64_t off = p->data_off + p->nalloc * VHDX_BLOCK;
			e = (off / VHDX_MIB) << 20 | PAYLOAD_BLOCK_FULLY_PRESENT;
			p->nalloc++;
			next = vhdx_next_alloc(w, p, b + 1);
		}
		if (vhdx_bat_put(&o, e) < 0)
			return -1;
		if ((b + 1) % p->ratio == 0 && b + 1 < p->nblocks && vhdx_bat_put(&o, 0) < 0)
			return -1;  /* sector bitmap entry */
	}
	if (o.used && vhdx_bat_flush(&o) < 0)
		return -1;
	return sink_zero(w->sink, VHDX_BAT_OFF + p->bat_len - w->sink->pos);
}

static int vhdx_check_geometry(const struct fmt_writer *w)
{
	if (w->lsec != 512 && w->lsec != 4096)
		return error("write VHDX: logical sector size %" PRIu32 " is not supported: VHDX records 512 or 4096", w->lsec);
	if (w->vsize == 0 || w->vsize % w->lsec)
		return error("write VHDX: disk size %" PRIu64 " is not a whole number of %" PRIu32 "-byte sectors", w->vsize, w->lsec);
	if (w->vsize > VHDX_MAX_VSIZE)
		return error("write VHDX: disk size %" PRIu64 " exceeds the format's 64 TiB limit: use qcow2", w->vsize);
	if (w->sink->pos != 0)
		return error("write VHDX: the image must start at offset 0 of '%s'", w->sink->display);
	return 0;
}

static int vhdx_open(struct fmt_writer *w)
{
	if (vhdx_check_geometry(w) < 0)
		return -1;
	struct vhdx_w *p = xcalloc(1, sizeof *p);
	w->priv = p;
	w->image_vsize = w->vsize;
	p->nblocks = DIV_ROUND_UP(w->vsize, VHDX_BLOCK);
	p->ratio = vhdx_chunk_ratio(w->lsec, VHDX_BLOCK);
	p->bat_len = ROUND_UP(vhdx_bat_entries(p->nblocks, p->ratio) * 8, VHDX_MIB);
	p->data_off = VHDX_BAT_OFF + p->bat_len;

	uint8_t fw[16], dw[16], page83[16];
	if (vhdx_random_guid(fw) < 0 || vhdx_random_guid(dw) < 0 || vhdx_random_guid(page83) < 0)
		return -1;
	struct sink *s = w->sink;
	CLEANUP_FREE uint8_t *buf = xmalloc(VHDX_STRUCT_SIZE);
	/* Two valid headers; the second, with the higher sequence number, is current. */
	if (vhdx_write_ident(s, buf) < 0 || vhdx_write_header(s, buf, 1, fw, dw) < 0 ||
	    vhdx_write_header(s, buf, 2, fw, dw) < 0 || vhdx_write_region_table(s, buf, p->bat_len) < 0 ||
	    vhdx_write_region_table(s, buf, p->bat_len) < 0)
		return -1;
	if (sink_zero(s, VHDX_LOG_OFF - s->pos) < 0 || sink_zero(s, VHDX_LOG_LEN) < 0)
		return -1;
	if (vhdx_write_metadata(w, buf, page83) < 0 || vhdx_write_bat(w, p) < 0)
		return -1;
	if (s->pos != p->data_off)
		return error("write VHDX: internal layout error, payload starts at %" PRIu64 " not %" PRIu64, s->pos, p->data_off);
	return 0;
}

static int vhdx_write(struct fmt_writer *w, const struct chunk *c)
{
	struct vhdx_w *p = w->priv;
	struct sink *s = w->sink;
	uint64_t b = c->off / VHDX_BLOCK;
	if (c->off % VHDX_BLOCK || b != vhdx_next_alloc(w, p, p->next_vblock) ||
	    c->len != MIN((uint64_t)CHUNK_SIZE, w->vsize - c->off))
		return error("write VHDX: chunk at offset %" PRIu64 " does not match the block table written from the extent map",
			     c->off);
	if (s->pos != p->data_off + p->written * VHDX_BLOCK)
		return error("write VHDX: payload block %" PRIu64 " at file offset %" PRIu64 ", expected %" PRIu64,
			     b, s->pos, p->data_off + p->written * VHDX_BLOCK);
	for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++) {
		uint32_t n = chunk_block_len(c, i);
		int r = (c->nonzero & (1u << i)) ? sink_write(s, c->data + (size_t)i * BLOCK_SIZE, n) : sink_zero(s, n);
		if (r < 0)
			return -1;
	}
	/* The last block of a disk whose size is not a block multiple still occupies a full block. */
	if (c->len < VHDX_BLOCK && sink_zero(s, VHDX_BLOCK - c->len) < 0)
		return -1;
	p->written++;
	p->next_vblock = b + 1;
	return 0;
}

static int vhdx_finish(struct fmt_writer *w)
{
	struct vhdx_w *p = w->priv;
	uint64_t missing = vhdx_next_alloc(w, p, p->next_vblock);
	if (missing != UINT64_MAX || p->written != p->nalloc)
		return error("write VHDX: %" PRIu64 " of %" PRIu64 " payload blocks written (first missing: virtual block %" PRIu64 ")",
			     p->written, p->nalloc, missing);
	if (w->sink->pos != p->data_off + p->nalloc * VHDX_BLOCK)
		return error("write VHDX: image ends at %" PRIu64 ", expected %" PRIu64, w->sink->pos,
			     p->data_off + p->nalloc * VHDX_BLOCK);
	return 0;
}

static void vhdx_free(struct fmt_writer *w)
{
	free(w->priv);
	w->priv = NULL;
}

/* ---- reader ---- */

#define VHDX_CACHE_SLOTS 64u
#define VHDX_CACHE_ENTRIES 512u  /* BAT entries per cached 4 KiB page */

struct vhdx_bat_page {
	uint64_t page;                          /* BAT page index held */
	bool valid;                             /* page holds data */
	uint64_t e[VHDX_CACHE_ENTRIES];         /* decoded entries */
};

struct vhdx_region {
	uint64_t off, len;                      /* file bytes [off, off+len) */
};

struct vhdx_r {
	uint64_t block;                         /* payload block size */
	uint64_t ratio;                         /* chunk ratio */
	uint64_t nentries;                      /* BAT entries in use */
	struct vhdx_region log, meta, bat;      /* regions payload blocks must not overlap */
	struct vhdx_bat_page cache[VHDX_CACHE_SLOTS];  /* direct-mapped BAT cache (bounded) */
};

static bool vhdx_overlap(uint64_t off, uint64_t len, const struct vhdx_region *r)
{
	return r->len && off < r->off + r->len && r->off < off + len;
}

/* Returns 1 with header fields when the header at off is valid, 0 when not, -1 on I/O error. */
static int vhdx_read_header(struct fmt_reader *r, uint64_t off, uint8_t *h)
{
	if (pread_full(r->fd, h, VHDX_HEADER_SIZE, off) < 0)
		return error("read VHDX header at offset %" PRIu64 ": %m", off);
	if (memcmp(h, "head", 4) != 0 || get_le16(h + 66) != 1)
		return 0;
	return vhdx_struct_crc(h, VHDX_HEADER_SIZE) == get_le32(h + 4);
}

/* Current header (§2.2.2.1): the valid one with the highest sequence number. */
static int vhdx_pick_header(struct fmt_reader *r, uint8_t *cur)
{
	uint8_t h1[VHDX_HEADER_SIZE], h2[VHDX_HEADER_SIZE];
	int v1 = vhdx_read_header(r, VHDX_HEADER1_OFF, h1);
	int v2 = vhdx_read_header(r, VHDX_HEADER2_OFF, h2);
	if (v1 < 0 || v2 < 0)
		return -1;
	if (!v1 && !v2)
		return error("read VHDX: neither header is valid (bad signature or checksum): the image is damaged");
	if (v1 && v2 && get_le64(h1 + 8) == get_le64(h2 + 8) && memcmp(h1, h2, VHDX_HEADER_SIZE) != 0)
		return error("read VHDX: both headers claim sequence number %" PRIu64 " but differ: the image is damaged",
			     get_le64(h1 + 8));
	bool use1 = v1 && (!v2 || get_le64(h1 + 8) >= get_le64(h2 + 8));
	memcpy(cur, use1 ? h1 : h2, VHDX_HEADER_SIZE);
	return 0;
}

static int vhdx_check_log(struct fmt_reader *r, struct vhdx_r *p, const uint8_t *h)
{
	static const uint8_t zero[16];
	if (memcmp(h + 48, zero, 16) != 0)
		return error("read VHDX: the image has a log to replay (it was not closed cleanly): "
			     "attach it once in Hyper-V or run 'qemu-img check -r all' on a copy, then verify again");
	p->log.off = get_le64(h + 72);
	p->log.len = get_le32(h + 68);
	if (p->log.len % VHDX_MIB || p->log.off % VHDX_MIB || (p->log.len && p->log.off < VHDX_MIB) ||
	    p->log.off > r->file_size || p->log.len > r->file_size - p->log.off)
		return error("read VHDX: log region %" PRIu64 "+%" PRIu64 " is misplaced: the image is damaged",
			     p->log.off, p->log.len);
	return 0;
}

/* Validate one region table entry's placement (§2.2.3.2). */
static int vhdx_check_region(struct fmt_reader *r, const struct vhdx_region *g, const char *what)
{
	if (g->off % VHDX_MIB || g->len % VHDX_MIB || g->off < VHDX_MIB || g->len == 0 ||
	    g->off > r->file_size || g->len > r->file_size - g->off)
		return error("read VHDX: %s region %" PRIu64 "+%" PRIu64 " is misplaced or beyond the end of the file (%" PRIu64 " bytes)",
			     what, g->off, g->len, r->file_size);
	return 0;
}

/* Parse a region table; 1 when valid, 0 when its checksum or signature is wrong. */
static int vhdx_parse_region_table(struct fmt_reader *r, struct vhdx_r *p, uint8_t *rt)
{
	if (memcmp(rt, "regi", 4) != 0 || vhdx_struct_crc(rt, VHDX_STRUCT_SIZE) != get_le32(rt + 4))
		return 0;
	uint32_t n = get_le32(rt + 8);
	if (n > VHDX_RT_MAX)
		return error("read VHDX: region table lists %" PRIu32 " entries, more than %u", n, VHDX_RT_MAX);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = rt + 16 + 32 * (size_t)i;
		struct vhdx_region g = { get_le64(e + 16), get_le32(e + 24) };
		struct vhdx_region *dst = vhdx_guid_eq(e, &guid_bat) ? &p->bat : vhdx_guid_eq(e, &guid_meta) ? &p->meta : NULL;
		if (!dst) {
			if (get_le32(e + 28) & 1)
				return error("read VHDX: the region table requires an unknown region: not supported");
			continue;
		}
		if (dst->len)
			return error("read VHDX: the region table lists a region twice: the image is damaged");
		if (vhdx_check_region(r, &g, dst == &p->bat ? "BAT" : "metadata") < 0)
			return -1;
		*dst = g;
	}
	if (!p->bat.len || !p->meta.len)
		return error("read VHDX: the region table lacks the BAT or metadata region: the image is damaged");
	if (vhdx_overlap(p->bat.off, p->bat.len, &p->meta) || vhdx_overlap(p->bat.off, p->bat.len, &p->log) ||
	    vhdx_overlap(p->meta.off, p->meta.len, &p->log))
		return error("read VHDX: the BAT, metadata and log regions overlap: the image is damaged");
	return 1;
}

static int vhdx_read_regions(struct fmt_reader *r, struct vhdx_r *p)
{
	CLEANUP_FREE uint8_t *rt = xmalloc(VHDX_STRUCT_SIZE);
	const uint64_t offs[2] = { VHDX_RT1_OFF, VHDX_RT2_OFF };
	for (int i = 0; i < 2; i++) {
		if (pread_full(r->fd, rt, VHDX_STRUCT_SIZE, offs[i]) < 0)
			return error("read VHDX region table at offset %" PRIu64 ": %m", offs[i]);
		int k = vhdx_parse_region_table(r, p, rt);
		if (k != 0)
			return k < 0 ? -1 : 0;
	}
	return error("read VHDX: neither region table is valid (bad signature or checksum): the image is damaged");
}

/* Read a metadata item of exactly len bytes through its table entry (§2.6.1.2). */
static int vhdx_meta_item(struct fmt_reader *r, struct vhdx_r *p, const uint8_t *e, void *out, uint32_t len)
{
	uint32_t off = get_le32(e + 16), ilen = get_le32(e + 20);
	if (ilen != len || off < VHDX_META_ITEMS_OFF || off > p->meta.len || len > p->meta.len - off)
		return error("read VHDX: metadata item at %" PRIu32 "+%" PRIu32 " is malformed: the image is damaged", off, ilen);
	if (pread_full(r->fd, out, len, p->meta.off + off) < 0)
		return error("read VHDX metadata item at offset %" PRIu64 ": %m", p->meta.off + off);
	return 0;
}

struct vhdx_meta {
	uint8_t params[8], vsize[8], lsec[4], psec[4], page83[16];
};

static int vhdx_read_meta_table(struct fmt_reader *r, struct vhdx_r *p, struct vhdx_meta *m)
{
	CLEANUP_FREE uint8_t *t = xmalloc(VHDX_STRUCT_SIZE);
	if (pread_full(r->fd, t, VHDX_STRUCT_SIZE, p->meta.off) < 0)
		return error("read VHDX metadata table at offset %" PRIu64 ": %m", p->meta.off);
	if (memcmp(t, "metadata", 8) != 0)
		return error("read VHDX: metadata table signature missing: the image is damaged");
	unsigned n = get_le16(t + 10), seen = 0;
	if (n > VHDX_RT_MAX)
		return error("read VHDX: metadata table lists %u entries, more than %u", n, VHDX_RT_MAX);
	const struct { const struct vhdx_guid *id; uint8_t *out; uint32_t len; } known[] = {
		{ &guid_file_params, m->params, 8 }, { &guid_vsize, m->vsize, 8 }, { &guid_lsec, m->lsec, 4 },
		{ &guid_psec, m->psec, 4 }, { &guid_page83, m->page83, 16 },
	};
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *e = t + 32 + 32 * (size_t)i;
		size_t k = 0;
		while (k < ARRAY_SIZE(known) && !vhdx_guid_eq(e, known[k].id))
			k++;
		if (k == ARRAY_SIZE(known)) {
			if (get_le32(e + 24) & META_IS_REQUIRED)
				return error("read VHDX: a required metadata item is unknown (parent locator of a differencing disk?): not supported");
			continue;
		}
		if (seen & (1u << k))
			return error("read VHDX: a metadata item appears twice: the image is damaged");
		seen |= 1u << k;
		if (vhdx_meta_item(r, p, e, known[k].out, known[k].len) < 0)
			return -1;
	}
	if (seen != (1u << ARRAY_SIZE(known)) - 1)
		return error("read VHDX: a required metadata item is missing: the image is damaged");
	return 0;
}

static int vhdx_read_metadata(struct fmt_reader *r, struct vhdx_r *p)
{
	struct vhdx_meta m;
	if (vhdx_read_meta_table(r, p, &m) < 0)
		return -1;
	uint32_t bs = get_le32(m.params), flags = get_le32(m.params + 4);
	uint32_t lsec = get_le32(m.lsec), psec = get_le32(m.psec);
	uint64_t vsize = get_le64(m.vsize);
	if (flags & 2)
		return error("read VHDX: differencing disks (with a parent) are not supported");
	if (bs < VHDX_MIB || bs > (256u << 20) || (bs & (bs - 1)))
		return error("read VHDX: block size %" PRIu32 " is invalid: the image is damaged", bs);
	if ((lsec != 512 && lsec != 4096) || (psec != 512 && psec != 4096))
		return error("read VHDX: sector sizes %" PRIu32 "/%" PRIu32 " are invalid: the image is damaged", lsec, psec);
	if (vsize == 0 || vsize > VHDX_MAX_VSIZE || vsize % lsec)
		return error("read VHDX: virtual size %" PRIu64 " is invalid: the image is damaged", vsize);
	p->block = bs;
	p->ratio = vhdx_chunk_ratio(lsec, bs);
	p->nentries = vhdx_bat_entries(DIV_ROUND_UP(vsize, bs), p->ratio);
	if (p->nentries > p->bat.len / 8)
		return error("read VHDX: BAT region of %" PRIu64 " bytes is too small for %" PRIu64 " entries: the image is damaged",
			     p->bat.len, p->nentries);
	r->vsize = vsize;
	r->lsec = lsec;
	return 0;
}

static int vhdx_read_open(struct fmt_reader *r)
{
	uint8_t sig[8];
	if (r->file_size < sizeof sig || pread_full(r->fd, sig, sizeof sig, 0) < 0 || memcmp(sig, "vhdxfile", 8) != 0)
		return 0;
	if (r->file_size < VHDX_MIB)
		return error("read VHDX: file of %" PRIu64 " bytes is shorter than the 1 MiB header section: truncated", r->file_size);
	struct vhdx_r *p = xcalloc(1, sizeof *p);
	r->priv = p;
	uint8_t h[VHDX_HEADER_SIZE];
	if (vhdx_pick_header(r, h) < 0 || vhdx_check_log(r, p, h) < 0 || vhdx_read_regions(r, p) < 0 ||
	    vhdx_read_metadata(r, p) < 0) {
		free(p);
		r->priv = NULL;
		return -1;
	}
	return 1;
}

static int vhdx_bat_entry(struct fmt_reader *r, struct vhdx_r *p, uint64_t idx, uint64_t *out)
{
	if (idx >= p->nentries)
		return error("read VHDX: BAT index %" PRIu64 " out of range", idx);
	uint64_t page = idx / VHDX_CACHE_ENTRIES;
	struct vhdx_bat_page *c = &p->cache[page % VHDX_CACHE_SLOTS];
	if (!c->valid || c->page != page) {
		uint8_t raw[VHDX_CACHE_ENTRIES * 8];
		uint64_t off = p->bat.off + page * sizeof raw;  /* bat.len is a MiB multiple: pages fit */
		c->valid = false;
		if (pread_full(r->fd, raw, sizeof raw, off) < 0)
			return error("read VHDX BAT at offset %" PRIu64 ": %m", off);
		for (unsigned i = 0; i < VHDX_CACHE_ENTRIES; i++)
			c->e[i] = get_le64(raw + 8 * i);
		c->page = page;
		c->valid = true;
	}
	*out = c->e[idx % VHDX_CACHE_ENTRIES];
	return 0;
}

/* File offset of payload block b, 0 when it reads as zero, -1 on a damaged entry. */
static int64_t vhdx_block_offset(struct fmt_reader *r, struct vhdx_r *p, uint64_t b)
{
	uint64_t e;
	if (vhdx_bat_entry(r, p, b + b / p->ratio, &e) < 0)
		return -1;
	switch (VHDX_BAT_STATE(e)) {
	case PAYLOAD_BLOCK_NOT_PRESENT:
	case PAYLOAD_BLOCK_UNDEFINED:
	case PAYLOAD_BLOCK_ZERO:
	case PAYLOAD_BLOCK_UNMAPPED:
		return 0;  /* no parent: zeros (§2.5.1.1) */
	case PAYLOAD_BLOCK_FULLY_PRESENT:
		break;
	default:
		return error("read VHDX: payload block %" PRIu64 " has state %u, invalid for a dynamic disk", b, VHDX_BAT_STATE(e));
	}
	uint64_t off = VHDX_BAT_OFFSET(e);
	if (off < VHDX_MIB || off > r->file_size || p->block > r->file_size - off || vhdx_overlap(off, p->block, &p->log) ||
	    vhdx_overlap(off, p->block, &p->meta) || vhdx_overlap(off, p->block, &p->bat))
		return error("read VHDX: payload block %" PRIu64 " at file offset %" PRIu64 " is out of place or beyond the end of the file",
			     b, off);
	return (int64_t)off;
}

static int vhdx_read(struct fmt_reader *r, void *buf, uint64_t off, size_t len)
{
	struct vhdx_r *p = r->priv;
	uint64_t end;
	if (__builtin_add_overflow(off, (uint64_t)len, &end) || end > r->vsize)
		return error("read VHDX: range %" PRIu64 "+%zu beyond the virtual size %" PRIu64, off, len, r->vsize);
	uint8_t *dst = buf;
	bool hole = true;
	while (off < end) {
		uint64_t b = off / p->block, in = off % p->block;
		size_t n = (size_t)MIN(end - off, p->block - in);
		int64_t fo = vhdx_block_offset(r, p, b);
		if (fo < 0)
			return -1;
		if (fo == 0) {
			memset(dst, 0, n);
		} else {
			if (pread_full(r->fd, dst, n, (uint64_t)fo + in) < 0)
				return error("read VHDX payload at offset %" PRIu64 ": %m", (uint64_t)fo + in);
			hole = false;
		}
		dst += n;
		off += n;
	}
	return hole ? 1 : 0;
}

static void vhdx_read_close(struct fmt_reader *r)
{
	free(r->priv);
	r->priv = NULL;
}

const struct fmt_ops fmt_vhdx = {
	.name = "vhdx",
	.ext = "vhdx",
	.description = "VHDX dynamic (Hyper-V, Azure Stack HCI)",
	.caps = FMT_CAN_4K,
	.max_vsize = VHDX_MAX_VSIZE,
	.open = vhdx_open,
	.write = vhdx_write,
	.finish = vhdx_finish,
	.free = vhdx_free,
	.read_open = vhdx_read_open,
	.read = vhdx_read,
	.read_close = vhdx_read_close,
};
