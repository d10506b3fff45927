/* vmdk.c - VMware VMDK images: streamOptimized (compressed grains with markers, tables
 * after the data, footer at the end) and monolithicSparse (tables first, raw grains),
 * both written front to back, plus readers for what we write. Split, flat and
 * ESX (vmfs/seSparse) variants are neither written nor read.
 * Spec: VMware "Virtual Disk Format 5.0" technote, "Hosted Sparse Extents" and
 * "Stream-Optimized Compressed Sparse Extents". */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "format.h"
#include "util.h"

#define SECTOR 512u
#define VMDK_MAGIC 0x564d444bu            /* "KDMV" read as little-endian */
#define GRAIN_SECTORS (BLOCK_SIZE / SECTOR)  /* 128: one grain per 64 KiB block */
#define GTES_PER_GT 512u
#define GT_BYTES (GTES_PER_GT * 4u)          /* 2 KiB = 4 sectors */
#define GT_SPAN ((uint64_t)GTES_PER_GT * BLOCK_SIZE)  /* 32 MiB of disk per grain table */
#define GD_AT_END UINT64_MAX
#define DESC_SECTORS 20u                     /* room VMware and qemu expect to update in place */
#define MARKER_BYTES 12u                     /* grain marker: lba (8) + size (4) */
#define MAX_GD_ENTRIES (4u << 20)            /* reader cap: 16 MiB of directory */

/* Header flags (spec "Header and Footer"). */
#define FLAG_NL_TEST (1u << 0)
#define FLAG_RGD (1u << 1)
#define FLAG_ZERO_GTE (1u << 2)
#define FLAG_COMPRESSED (1u << 16)
#define FLAG_MARKERS (1u << 17)

/* Metadata marker types (spec "Stream-Optimized Compressed Sparse Extents"). */
enum { MARKER_EOS = 0, MARKER_GT = 1, MARKER_GD = 2, MARKER_FOOTER = 3 };

/* Byte offsets of the SparseExtentHeader fields (packed, little-endian). */
enum {
	H_MAGIC = 0, H_VERSION = 4, H_FLAGS = 8, H_CAPACITY = 12, H_GRAIN = 20,
	H_DESC_OFF = 28, H_DESC_SIZE = 36, H_NUM_GTES = 44, H_RGD = 48, H_GD = 56,
	H_OVERHEAD = 64, H_UNCLEAN = 72, H_NL = 73, H_COMPRESS = 77,
};

static int vmdk_level = 1;  /* measured: level 1 is 2.2x faster than 6 for 2.7% more bytes */

void vmdk_set_compression_level(int level)
{
	vmdk_level = level < 1 ? 1 : level > 12 ? 12 : level;
}

/* ---- shared writer pieces ---- */

struct vmdk_params {
	uint32_t version, flags;
	uint64_t rgd, gd, overhead;  /* sectors */
	uint16_t compress;
};

static void vmdk_build_header(uint8_t h[SECTOR], const struct fmt_writer *w, const struct vmdk_params *p)
{
	memset(h, 0, SECTOR);
	put_le32(h + H_MAGIC, VMDK_MAGIC);
	put_le32(h + H_VERSION, p->version);
	put_le32(h + H_FLAGS, p->flags);
	put_le64(h + H_CAPACITY, w->vsize / SECTOR);
	put_le64(h + H_GRAIN, GRAIN_SECTORS);
	put_le64(h + H_DESC_OFF, 1);
	put_le64(h + H_DESC_SIZE, DESC_SECTORS);
	put_le32(h + H_NUM_GTES, GTES_PER_GT);
	put_le64(h + H_RGD, p->rgd);
	put_le64(h + H_GD, p->gd);
	put_le64(h + H_OVERHEAD, p->overhead);
	/* The newline test bytes let a reader detect text-mode FTP damage (flag bit 0). */
	memcpy(h + H_NL, "\n \r\n", 4);
	put_le16(h + H_COMPRESS, p->compress);
}

static void vmdk_random(void *buf, size_t n)
{
	if (getrandom(buf, n, GRND_NONBLOCK) == (ssize_t)n)
		return;
	/* Identifiers only need to differ between images, not to be secret. */
	uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)buf;
	for (size_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		((uint8_t *)buf)[i] = (uint8_t)(x >> 56);
	}
}

/* The embedded descriptor (spec "The Descriptor File"), DESC_SECTORS long, zero padded. */
static int vmdk_write_descriptor(struct fmt_writer *w, const char *create_type)
{
	uint8_t id[4 + 16 + 16];
	char name[128] = "disk.vmdk", uuid[64], cid_long[33];
	const char *display = sink_name(w->sink);
	const char *base = display ? strrchr(display, '/') : NULL;
	base = base ? base + 1 : display;
	if (base && *base) {
		snprintf(name, sizeof name, "%s", base);
		for (char *q = name; *q; q++)
			if (*q == '"' || *q == '\n' || *q == '\r' || (unsigned char)*q < 0x20)
				*q = '_';
	}
	vmdk_random(id, sizeof id);
	hex_encode(id + 4, 16, cid_long);
	snprintf(uuid, sizeof uuid,
		 "%02x %02x %02x %02x %02x %02x %02x %02x-%02x %02x %02x %02x %02x %02x %02x %02x",
		 id[20], id[21], id[22], id[23], id[24], id[25], id[26], id[27],
		 id[28], id[29], id[30], id[31], id[32], id[33], id[34], id[35]);
	uint64_t sectors = w->vsize / SECTOR;
	uint64_t cyl = MAX(MIN(sectors / (255 * 63), 65535), 1);
	char *buf = xcalloc(DESC_SECTORS, SECTOR);
	int n = snprintf(buf, DESC_SECTORS * SECTOR,
		"# Disk DescriptorFile\n"
		"version=1\n"
		"encoding=\"UTF-8\"\n"
		"CID=%08" PRIx32 "\n"
		"parentCID=ffffffff\n"
		"createType=\"%s\"\n"
		"\n"
		"# Extent description\n"
		"RW %" PRIu64 " SPARSE \"%s\"\n"
		"\n"
		"# The Disk Data Base\n"
		"#DDB\n"
		"\n"
		"ddb.adapterType = \"lsilogic\"\n"
		"ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
		"ddb.geometry.heads = \"255\"\n"
		"ddb.geometry.sectors = \"63\"\n"
		"ddb.longContentID = \"%s\"\n"
		"ddb.uuid = \"%s\"\n"
		"ddb.virtualHWVersion = \"4\"\n",
		get_le32(id) | 1u, create_type, sectors, name, cyl, cid_long, uuid);
	int r = n > 0 && (size_t)n < DESC_SECTORS * SECTOR ? sink_write(w->sink, buf, DESC_SECTORS * SECTOR)
							     : error("build VMDK descriptor: text too long");
	free(buf);
	return r;
}

static int vmdk_check_size(const struct fmt_writer *w)
{
	if (w->vsize == 0 || w->vsize % SECTOR)
		return error("write VMDK: disk size %" PRIu64 " is not a positive multiple of 512 bytes", w->vsize);
	if (w->vsize > w->ops->max_vsize)
		return error("write VMDK: disk size %" PRIu64 " exceeds the %s limit of %" PRIu64 " bytes: use qcow2 or vhdx",
			     w->vsize, w->ops->name, w->ops->max_vsize);
	return 0;
}

/* Grain table entries and directory entries are 32-bit sector numbers (spec "Grain
 * Table"), so nothing can be placed past 2 TiB of file. */
static int vmdk_check_sector(uint64_t sector)
{
	if (sector > UINT32_MAX)
		return error("write VMDK: image data passes 2 TiB, beyond the format's 32-bit grain offsets: use qcow2 or vhdx");
	return 0;
}

/* ---- vmdk-stream writer ---- */

struct stream_state {
	uint8_t header[SECTOR];     /* copied into the footer with the real gdOffset */
	uint32_t *gd;               /* one entry per 32 MiB span; 0 = no grain table */
	uint64_t n_gd;              /* entries in gd */
	uint32_t gt[GTES_PER_GT];   /* grain table of the span being written */
	uint64_t gt_span;           /* span index of gt */
	bool gt_used;               /* gt holds at least one grain */
	uint64_t next_off;          /* disk order check: chunks arrive ascending */
};

/* Worst case for one grain: marker + zlib bound, padded to a sector (spec: every
 * grain starts on a sector boundary). */
static size_t stream_grain_bound(void)
{
	return ROUND_UP(MARKER_BYTES + libdeflate_zlib_compress_bound(NULL, BLOCK_SIZE), (size_t)SECTOR);
}

static size_t stream_out_capacity(void)
{
	return BLOCKS_PER_CHUNK * stream_grain_bound();
}

static pthread_key_t stream_key, stream_store_key;
static bool stream_key_ok;
static pthread_once_t stream_key_once = PTHREAD_ONCE_INIT;
static __thread struct libdeflate_compressor *stream_z;
static __thread struct libdeflate_compressor *stream_store;  /* level 0: stored blocks */
static __thread int stream_z_level;

static void stream_free_compressor(void *p)
{
	libdeflate_free_compressor(p);
}

static void stream_key_init(void)
{
	stream_key_ok = pthread_key_create(&stream_key, stream_free_compressor) == 0 &&
			pthread_key_create(&stream_store_key, stream_free_compressor) == 0;
}

/* One compressor per worker thread: allocating one per chunk costs more than the
 * compression itself. The key's destructor frees it when the thread ends. */
static struct libdeflate_compressor *stream_compressor(void)
{
	int level = vmdk_level;
	if (stream_z && stream_z_level == level)
		return stream_z;
	pthread_once(&stream_key_once, stream_key_init);
	libdeflate_free_compressor(stream_z);
	stream_z = libdeflate_alloc_compressor(level);
	stream_z_level = level;
	if (stream_key_ok)
		pthread_setspecific(stream_key, stream_z);
	return stream_z;
}

/* Incompressible data (media, archives, encrypted files: half of a typical server) costs
 * deflate its full effort for nothing. Two 4 KiB samples of the grain are compressed
 * first; when neither shrinks by 3%, the grain is stored (deflate level 0: still a valid
 * zlib stream, about 100 times faster). A grain that would have compressed only past its
 * samples loses a little size, never correctness. */
#define PROBE_BYTES 4096u

static bool grain_incompressible(struct libdeflate_compressor *z, const uint8_t *src)
{
	uint8_t out[PROBE_BYTES + 64];
	for (unsigned k = 0; k < 2; k++) {
		size_t got = libdeflate_zlib_compress(z, src + k * (BLOCK_SIZE / 2), PROBE_BYTES, out, sizeof out);
		if (got && got < PROBE_BYTES - PROBE_BYTES / 32)
			return false;
	}
	return true;
}

static struct libdeflate_compressor *grain_compressor(struct libdeflate_compressor *z, const uint8_t *src)
{
	if (!grain_incompressible(z, src))
		return z;
	if (!stream_store) {
		stream_store = libdeflate_alloc_compressor(0);
		if (stream_store && stream_key_ok)
			pthread_setspecific(stream_store_key, stream_store);
	}
	return stream_store ? stream_store : z;
}

/* Compress block i into c->out at pos; returns the sector-padded bytes used, 0 on failure. */
static size_t stream_encode_block(struct libdeflate_compressor *z, struct chunk *c, unsigned i, size_t pos)
{
	uint32_t n = chunk_block_len(c, i);
	const uint8_t *src = c->data + (size_t)i * BLOCK_SIZE;
	uint8_t *padded = NULL;
	if (n < BLOCK_SIZE) {
		/* Grains are always whole: the last partial block is zero padded. */
		padded = xcalloc(1, BLOCK_SIZE);
		memcpy(padded, src, n);
		src = padded;
	}
	uint8_t *dst = c->out + pos;
	z = grain_compressor(z, src);
	size_t got = libdeflate_zlib_compress(z, src, BLOCK_SIZE, dst + MARKER_BYTES,
					      c->out_cap - pos - MARKER_BYTES);
	free(padded);
	if (got == 0)
		return 0;
	put_le64(dst, (c->off + (uint64_t)i * BLOCK_SIZE) / SECTOR);
	put_le32(dst + 8, (uint32_t)got);
	size_t total = ROUND_UP(MARKER_BYTES + got, (size_t)SECTOR);
	memset(dst + MARKER_BYTES + got, 0, total - MARKER_BYTES - got);
	return total;
}

/* Worker threads: c->out_pos[i]..[i+1] = finished grain of block i, empty for zero
 * blocks. A non-zero block left empty means compression failed; write() reports it. */
static void stream_encode(const struct fmt_writer *w, struct chunk *c)
{
	(void)w;
	struct libdeflate_compressor *z = stream_compressor();
	size_t bound = stream_grain_bound(), pos = 0;
	for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++) {
		c->out_pos[i] = (uint32_t)pos;
		if (!(c->nonzero & (1u << i)) || !z || !c->out || c->out_cap - pos < bound)
			continue;
		pos += stream_encode_block(z, c, i, pos);
	}
	c->out_pos[BLOCKS_PER_CHUNK] = (uint32_t)pos;
	c->out_len = pos;
}

static int stream_marker(struct sink *s, uint64_t sectors, uint32_t type)
{
	uint8_t m[SECTOR] = { 0 };
	put_le64(m, sectors);
	put_le32(m + 12, type);
	return sink_write(s, m, sizeof m);
}

/* GT marker + grain table of the finished span (spec: grain tables follow their grains). */
static int stream_flush_gt(struct fmt_writer *w, struct stream_state *st)
{
	if (!st->gt_used)
		return 0;
	struct sink *s = w->sink;
	if (stream_marker(s, GT_BYTES / SECTOR, MARKER_GT) < 0 || vmdk_check_sector(s->pos / SECTOR) < 0)
		return -1;
	st->gd[st->gt_span] = (uint32_t)(s->pos / SECTOR);
	uint8_t gt[GT_BYTES];
	for (unsigned i = 0; i < GTES_PER_GT; i++)
		put_le32(gt + 4 * i, st->gt[i]);
	memset(st->gt, 0, sizeof st->gt);
	st->gt_used = false;
	return sink_write(s, gt, sizeof gt);
}

static int stream_open(struct fmt_writer *w)
{
	if (vmdk_check_size(w) < 0)
		return -1;
	w->image_vsize = w->vsize;
	struct stream_state *st = xcalloc(1, sizeof *st);
	w->priv = st;
	st->n_gd = DIV_ROUND_UP(w->vsize, GT_SPAN);
	st->gd = xcalloc(st->n_gd, sizeof *st->gd);
	struct vmdk_params p = {
		.version = 3,
		.flags = FLAG_NL_TEST | FLAG_COMPRESSED | FLAG_MARKERS,
		.gd = GD_AT_END,       /* the footer holds the real offset */
		.overhead = GRAIN_SECTORS,
		.compress = 1,         /* deflate, RFC 1950 zlib framing */
	};
	vmdk_build_header(st->header, w, &p);
	if (sink_write(w->sink, st->header, SECTOR) < 0 || vmdk_write_descriptor(w, "streamOptimized") < 0)
		return -1;
	/* The first grain starts at overHead, like VMware's and qemu's own streams. */
	return sink_pad(w->sink, BLOCK_SIZE);
}

static int stream_write(struct fmt_writer *w, const struct chunk *c)
{
	struct stream_state *st = w->priv;
	struct sink *s = w->sink;
	if (c->off < st->next_off || c->off >= w->vsize)
		return error("write VMDK stream: chunk at %" PRIu64 " out of order", c->off);
	st->next_off = c->off + c->len;
	if (!c->nonzero)
		return 0;
	uint64_t span = c->off / GT_SPAN;
	if (st->gt_used && span != st->gt_span && stream_flush_gt(w, st) < 0)
		return -1;
	st->gt_span = span;
	for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++) {
		if (!(c->nonzero & (1u << i)))
			continue;
		uint32_t a = c->out_pos[i], b = c->out_pos[i + 1];
		if (b <= a || b > c->out_len || (a - c->out_pos[0]) % SECTOR)
			return error("compress VMDK grain at %" PRIu64 ": no compressed data (out of memory?)",
				     c->off + (uint64_t)i * BLOCK_SIZE);
		uint64_t sector = (s->pos + (a - c->out_pos[0])) / SECTOR;
		if (vmdk_check_sector(sector) < 0)
			return -1;
		st->gt[(c->off / BLOCK_SIZE + i) % GTES_PER_GT] = (uint32_t)sector;
		st->gt_used = true;
	}
	uint32_t first = c->out_pos[0], end = c->out_pos[BLOCKS_PER_CHUNK];
	return sink_write(s, c->out + first, end - first);
}

static int stream_finish(struct fmt_writer *w)
{
	struct stream_state *st = w->priv;
	struct sink *s = w->sink;
	if (stream_flush_gt(w, st) < 0)
		return -1;
	/* Grain directory, then the footer (a header copy with the real gdOffset), then
	 * the end-of-stream marker (spec "Stream-Optimized ... Footer"). */
	uint64_t gd_bytes = st->n_gd * 4, gd_sectors = DIV_ROUND_UP(gd_bytes, SECTOR);
	if (stream_marker(s, gd_sectors, MARKER_GD) < 0 || vmdk_check_sector(s->pos / SECTOR) < 0)
		return -1;
	put_le64(st->header + H_GD, s->pos / SECTOR);
	uint8_t buf[SECTOR];
	for (uint64_t i = 0; i < st->n_gd; i += SECTOR / 4) {
		memset(buf, 0, sizeof buf);
		for (unsigned j = 0; j < SECTOR / 4 && i + j < st->n_gd; j++)
			put_le32(buf + 4 * j, st->gd[i + j]);
		if (sink_write(s, buf, sizeof buf) < 0)
			return -1;
	}
	if (stream_marker(s, 1, MARKER_FOOTER) < 0 || sink_write(s, st->header, SECTOR) < 0)
		return -1;
	return stream_marker(s, 0, MARKER_EOS);
}

static void stream_free(struct fmt_writer *w)
{
	struct stream_state *st = w->priv;
	if (st)
		free(st->gd);
	free(st);
	w->priv = NULL;
}

/* ---- vmdk (monolithicSparse) writer ---- */

struct sparse_state {
	uint64_t n_gt;              /* grain tables: one per 32 MiB span, all allocated */
	uint64_t gd_sectors;        /* sectors of one grain directory */
	uint64_t overhead;          /* first grain, sectors */
	uint64_t n_blocks;          /* mapped blocks = grains */
	uint64_t written;           /* grains written so far */
	struct fmt_block_iter it;   /* expected next block: a cross-check of delivery order */
};

/* One grain directory and its grain tables, at sector base. Grain k (the k-th mapped
 * block in disk order) lives at overhead + k * 128 sectors. Every span gets a grain
 * table, empty ones as holes: qemu cannot write into a span whose GD entry is 0 (it
 * only allocates grains, not tables), and VMware preallocates them for this type. */
static int sparse_write_tables(struct fmt_writer *w, const struct sparse_state *st, uint64_t base)
{
	struct sink *s = w->sink;
	uint8_t buf[GT_BYTES];
	uint64_t gt0 = base + st->gd_sectors;
	for (uint64_t i = 0; i < st->n_gt; i += SECTOR / 4) {
		memset(buf, 0, SECTOR);
		for (unsigned j = 0; j < SECTOR / 4 && i + j < st->n_gt; j++)
			put_le32(buf + 4 * j, (uint32_t)(gt0 + (i + j) * (GT_BYTES / SECTOR)));
		if (sink_write(s, buf, SECTOR) < 0)
			return -1;
	}
	struct fmt_block_iter it;
	uint64_t off, k = 0, span = 0;  /* span: grain table that buf is (or will be) */
	bool filled = false;
	memset(buf, 0, sizeof buf);
	fmt_block_iter_init(&it, w->map, w->vsize);
	while (fmt_block_iter_next(&it, &off)) {
		uint64_t sp = off / GT_SPAN;
		if (filled && sp != span) {
			if (sink_write(s, buf, sizeof buf) < 0)
				return -1;
			memset(buf, 0, sizeof buf);
			span++;
			filled = false;
		}
		if (sp > span) {
			if (sink_zero(s, (sp - span) * GT_BYTES) < 0)
				return -1;
			span = sp;
		}
		put_le32(buf + 4 * ((off / BLOCK_SIZE) % GTES_PER_GT), (uint32_t)(st->overhead + k * GRAIN_SECTORS));
		filled = true;
		k++;
	}
	if (filled) {
		if (sink_write(s, buf, sizeof buf) < 0)
			return -1;
		span++;
	}
	return span < st->n_gt ? sink_zero(s, (st->n_gt - span) * GT_BYTES) : 0;
}

static int sparse_open(struct fmt_writer *w)
{
	if (vmdk_check_size(w) < 0)
		return -1;
	w->image_vsize = w->vsize;
	struct sparse_state *st = xcalloc(1, sizeof *st);
	w->priv = st;
	st->n_gt = DIV_ROUND_UP(w->vsize, GT_SPAN);
	st->gd_sectors = DIV_ROUND_UP(st->n_gt * 4, SECTOR);
	uint64_t meta = st->gd_sectors + st->n_gt * (GT_BYTES / SECTOR);
	uint64_t rgd = 1 + DESC_SECTORS, gd = rgd + meta;
	st->overhead = ROUND_UP(gd + meta, GRAIN_SECTORS);
	st->n_blocks = fmt_count_blocks(w->map, w->vsize);
	fmt_block_iter_init(&st->it, w->map, w->vsize);
	if (st->n_blocks && vmdk_check_sector(st->overhead + (st->n_blocks - 1) * GRAIN_SECTORS) < 0)
		return -1;
	/* Version 1: qemu opens version 3 uncompressed extents read-only (CBT, KB 2064959). */
	struct vmdk_params p = {
		.version = 1, .flags = FLAG_NL_TEST | FLAG_RGD, .rgd = rgd, .gd = gd, .overhead = st->overhead,
	};
	uint8_t h[SECTOR];
	vmdk_build_header(h, w, &p);
	if (sink_write(w->sink, h, SECTOR) < 0 || vmdk_write_descriptor(w, "monolithicSparse") < 0)
		return -1;
	/* Redundant copy first: the spec places it before the primary directory. */
	if (sparse_write_tables(w, st, rgd) < 0 || sparse_write_tables(w, st, gd) < 0)
		return -1;
	return sink_zero(w->sink, st->overhead * SECTOR - w->sink->pos);
}

static int sparse_write(struct fmt_writer *w, const struct chunk *c)
{
	struct sparse_state *st = w->priv;
	struct sink *s = w->sink;
	for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++) {
		if (!(c->mapped & (1u << i)))
			continue;
		uint64_t off = c->off + (uint64_t)i * BLOCK_SIZE, want;
		if (!fmt_block_iter_next(&st->it, &want) || want != off)
			return error("write VMDK: block at %" PRIu64 " delivered out of map order", off);
		uint32_t n = chunk_block_len(c, i);
		int r = (c->nonzero & (1u << i))
			? sink_write(s, c->data + (size_t)i * BLOCK_SIZE, n) : sink_zero(s, n);
		/* Mapped zero blocks stay allocated (the table points at them) but are holes. */
		if (r < 0 || (n < BLOCK_SIZE && sink_zero(s, BLOCK_SIZE - n) < 0))
			return -1;
		st->written++;
	}
	return 0;
}

static int sparse_finish(struct fmt_writer *w)
{
	struct sparse_state *st = w->priv;
	if (st->written != st->n_blocks)
		return error("write VMDK: %" PRIu64 " of %" PRIu64 " mapped blocks delivered", st->written, st->n_blocks);
	return 0;
}

static void sparse_free(struct fmt_writer *w)
{
	free(w->priv);
	w->priv = NULL;
}

/* ---- readers ---- */

struct vmdk_rd {
	bool stream;                /* compressed grains with markers */
	uint32_t flags;
	uint32_t grain_sectors;
	uint64_t grain_bytes;
	uint64_t n_gd;
	uint32_t *gd;
	uint32_t gt[GTES_PER_GT];
	uint64_t gt_index;          /* GD index held in gt, UINT64_MAX when none */
	uint8_t *grain;             /* last decompressed grain (stream) */
	uint64_t grain_index;       /* its index, UINT64_MAX when none */
	uint8_t *cbuf;              /* compressed grain buffer (stream) */
	size_t cbuf_size;
	struct libdeflate_decompressor *dz;
};

static void vmdk_rd_free(struct vmdk_rd *v)
{
	if (!v)
		return;
	free(v->gd);
	free(v->grain);
	free(v->cbuf);
	if (v->dz)
		libdeflate_free_decompressor(v->dz);
	free(v);
}

/* createType="..." of the embedded descriptor into out; 0 found, -1 not. */
static int vmdk_create_type(const char *desc, char *out, size_t outsz)
{
	const char *p = strstr(desc, "createType");
	if (!p)
		return -1;
	p += strlen("createType");
	p += strspn(p, " \t");
	if (*p++ != '=')
		return -1;
	p += strspn(p, " \t\"");
	size_t n = strcspn(p, "\"\r\n \t");
	if (n == 0 || n >= outsz)
		return -1;
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

static int vmdk_check_desc(struct fmt_reader *r, const uint8_t *h, const char *want)
{
	uint64_t off = get_le64(h + H_DESC_OFF), size = get_le64(h + H_DESC_SIZE), end;
	char type[64];
	if (off == 0 || size == 0)
		return error("VMDK image: sparse extent without an embedded descriptor (part of a split image), not supported: convert it with qemu-img convert -O vmdk -o subformat=%s", want);
	if (size > 2048 || __builtin_add_overflow(off, size, &end) || __builtin_mul_overflow(end, SECTOR, &end) ||
	    end > r->file_size)
		return error("VMDK image: descriptor at sector %" PRIu64 " (%" PRIu64 " sectors) is outside the file", off, size);
	char *desc = xmalloc(size * SECTOR + 1);
	int rc = pread_full(r->fd, desc, size * SECTOR, off * SECTOR);
	desc[size * SECTOR] = 0;
	if (rc < 0)
		rc = error("read VMDK descriptor: %m");
	else if (vmdk_create_type(desc, type, sizeof type) < 0)
		rc = error("VMDK image: descriptor has no createType");
	else if (strcmp(type, want) != 0)
		rc = error("VMDK image: create type '%s' is not supported (only monolithicSparse and streamOptimized): convert it with qemu-img convert -O vmdk -o subformat=%s", type, want);
	free(desc);
	return rc;
}

/* The footer of a stream (spec: footer marker, footer, end-of-stream marker). */
static int vmdk_read_footer(struct fmt_reader *r, uint8_t h[SECTOR])
{
	uint8_t f[3 * SECTOR];
	if (r->file_size < 4 * SECTOR || r->file_size % SECTOR)
		return error("VMDK stream: file size %" PRIu64 " leaves no room for a footer", r->file_size);
	if (pread_full(r->fd, f, sizeof f, r->file_size - sizeof f) < 0)
		return error("read VMDK stream footer: %m");
	const uint8_t *fm = f, *ft = f + SECTOR, *eos = f + 2 * SECTOR;
	if (get_le32(fm + 8) != 0 || get_le32(fm + 12) != MARKER_FOOTER || get_le32(ft) != VMDK_MAGIC ||
	    get_le64(eos) != 0 || get_le32(eos + 8) != 0 || get_le32(eos + 12) != MARKER_EOS)
		return error("VMDK stream: invalid footer or end-of-stream marker (truncated upload?)");
	memcpy(h, ft, SECTOR);
	return 0;
}

static int vmdk_validate(struct fmt_reader *r, struct vmdk_rd *v, const uint8_t *h)
{
	uint32_t version = get_le32(h + H_VERSION);
	uint64_t grain = get_le64(h + H_GRAIN), cap = get_le64(h + H_CAPACITY), end;
	uint64_t gd = get_le64(h + H_GD), rgd = get_le64(h + H_RGD);
	if (version < 1 || version > 3)
		return error("VMDK image: unsupported version %" PRIu32, version);
	if (grain < 8 || grain > 128 || (grain & (grain - 1)))
		return error("VMDK image: grain size %" PRIu64 " sectors is not a power of two in 8..128", grain);
	if (get_le32(h + H_NUM_GTES) != GTES_PER_GT)
		return error("VMDK image: %" PRIu32 " entries per grain table, expected 512", get_le32(h + H_NUM_GTES));
	if (cap == 0 || __builtin_mul_overflow(cap, SECTOR, &r->vsize))
		return error("VMDK image: invalid capacity %" PRIu64 " sectors", cap);
	if (v->stream && get_le16(h + H_COMPRESS) != 1)
		return error("VMDK stream: compression algorithm %u is not deflate", get_le16(h + H_COMPRESS));
	v->grain_sectors = (uint32_t)grain;
	v->grain_bytes = grain * SECTOR;
	v->n_gd = DIV_ROUND_UP(cap, grain * GTES_PER_GT);
	if (v->n_gd > MAX_GD_ENTRIES)
		return error("VMDK image: %" PRIu64 " grain directory entries, more than this reader handles", v->n_gd);
	if (__builtin_mul_overflow(gd, SECTOR, &end) || __builtin_add_overflow(end, v->n_gd * 4, &end) || end > r->file_size)
		return error("VMDK image: grain directory at sector %" PRIu64 " is outside the file", gd);
	if ((v->flags & FLAG_RGD) && !v->stream &&
	    (__builtin_mul_overflow(rgd, SECTOR, &end) || __builtin_add_overflow(end, v->n_gd * 4, &end) || end > r->file_size))
		return error("VMDK image: redundant grain directory at sector %" PRIu64 " is outside the file", rgd);
	if (get_le64(h + H_OVERHEAD) > r->file_size / SECTOR)
		return error("VMDK image: overhead of %" PRIu64 " sectors is past the end of the file", get_le64(h + H_OVERHEAD));
	return 0;
}

static int vmdk_load(struct fmt_reader *r, struct vmdk_rd *v, const uint8_t *h)
{
	if (vmdk_validate(r, v, h) < 0)
		return -1;
	uint8_t *raw = xmalloc(v->n_gd * 4);
	int rc = pread_full(r->fd, raw, v->n_gd * 4, get_le64(h + H_GD) * SECTOR);
	if (rc == 0) {
		v->gd = xmalloc(v->n_gd * sizeof *v->gd);
		for (uint64_t i = 0; i < v->n_gd; i++)
			v->gd[i] = get_le32(raw + 4 * i);
	}
	free(raw);
	if (rc < 0)
		return error("read VMDK grain directory: %m");
	if (v->stream) {
		v->dz = libdeflate_alloc_decompressor();
		v->grain = xmalloc(v->grain_bytes);
		v->cbuf_size = MARKER_BYTES + libdeflate_zlib_compress_bound(NULL, v->grain_bytes);
		v->cbuf = xmalloc(v->cbuf_size);
		if (!v->dz)
			return error("allocate deflate decompressor: out of memory");
	}
	r->lsec = SECTOR;
	return 0;
}

static int vmdk_open_common(struct fmt_reader *r, bool stream)
{
	uint8_t h[SECTOR] = { 0 };
	r->priv = NULL;
	if (r->file_size < 4 || pread_full(r->fd, h, MIN(r->file_size, (uint64_t)SECTOR), 0) < 0)
		return 0;
	if (get_le32(h) != VMDK_MAGIC || r->file_size < SECTOR) {
		/* A text descriptor with separate extent files: the plain reader says why. */
		if (!stream && memcmp(h, "# Disk DescriptorFile", 21) == 0)
			return error("VMDK image: descriptor file with separate extents (split or flat), not supported: convert it with qemu-img convert -O vmdk -o subformat=monolithicSparse");
		return 0;
	}
	uint32_t flags = get_le32(h + H_FLAGS);
	bool compressed = (flags & FLAG_COMPRESSED) != 0;
	if (compressed != stream)
		return 0;
	if (stream && !(flags & FLAG_MARKERS))
		return error("VMDK image: compressed without grain markers, not a streamOptimized image this reader handles");
	if (vmdk_check_desc(r, h, stream ? "streamOptimized" : "monolithicSparse") < 0)
		return -1;
	if (stream && get_le64(h + H_GD) == GD_AT_END && vmdk_read_footer(r, h) < 0)
		return -1;
	struct vmdk_rd *v = xcalloc(1, sizeof *v);
	v->stream = stream;
	v->flags = get_le32(h + H_FLAGS);
	v->gt_index = v->grain_index = UINT64_MAX;
	if (vmdk_load(r, v, h) < 0) {
		vmdk_rd_free(v);
		return -1;
	}
	r->priv = v;
	return 1;
}

/* Grain table entry of grain g: a sector number, 0 when unallocated. */
static int vmdk_gte(struct fmt_reader *r, struct vmdk_rd *v, uint64_t g, uint32_t *out)
{
	uint64_t gi = g / GTES_PER_GT;
	if (gi >= v->n_gd)
		return error("VMDK image: grain %" PRIu64 " is past the grain directory", g);
	if (v->gd[gi] == 0) {
		*out = 0;
		return 0;
	}
	if (v->gt_index != gi) {
		uint8_t raw[GT_BYTES];
		uint64_t off = (uint64_t)v->gd[gi] * SECTOR;
		v->gt_index = UINT64_MAX;
		if (off + GT_BYTES > r->file_size)
			return error("VMDK image: grain table at sector %" PRIu32 " is outside the file", v->gd[gi]);
		if (pread_full(r->fd, raw, GT_BYTES, off) < 0)
			return error("read VMDK grain table at sector %" PRIu32 ": %m", v->gd[gi]);
		for (unsigned i = 0; i < GTES_PER_GT; i++)
			v->gt[i] = get_le32(raw + 4 * i);
		v->gt_index = gi;
	}
	*out = v->gt[g % GTES_PER_GT];
	return 0;
}

/* Decompress grain g (marker at sector gte) into v->grain, checking its marker LBA. */
static int vmdk_load_grain(struct fmt_reader *r, struct vmdk_rd *v, uint64_t g, uint32_t gte)
{
	if (v->grain_index == g)
		return 0;
	v->grain_index = UINT64_MAX;
	uint64_t off = (uint64_t)gte * SECTOR;
	uint8_t m[MARKER_BYTES];
	if (off + MARKER_BYTES > r->file_size || pread_full(r->fd, m, MARKER_BYTES, off) < 0)
		return error("read VMDK grain marker at sector %" PRIu32 ": outside the file or unreadable", gte);
	uint64_t lba = get_le64(m);
	uint32_t size = get_le32(m + 8);
	if (lba != g * v->grain_sectors)
		return error("VMDK stream: grain at sector %" PRIu32 " is marked for LBA %" PRIu64 ", expected %" PRIu64,
			     gte, lba, g * v->grain_sectors);
	if (size == 0 || size > v->cbuf_size - MARKER_BYTES || off + MARKER_BYTES + size > r->file_size)
		return error("VMDK stream: grain at sector %" PRIu32 " has invalid size %" PRIu32, gte, size);
	if (pread_full(r->fd, v->cbuf, size, off + MARKER_BYTES) < 0)
		return error("read VMDK grain at sector %" PRIu32 ": %m", gte);
	size_t got = 0;
	uint64_t need = MIN(v->grain_bytes, r->vsize - g * v->grain_bytes);
	enum libdeflate_result res = libdeflate_zlib_decompress(v->dz, v->cbuf, size, v->grain, v->grain_bytes, &got);
	if ((res != LIBDEFLATE_SUCCESS && res != LIBDEFLATE_SHORT_OUTPUT) || got < need)
		return error("VMDK stream: grain at sector %" PRIu32 " does not decompress (zlib error %d)", gte, (int)res);
	memset(v->grain + got, 0, v->grain_bytes - got);
	v->grain_index = g;
	return 0;
}

static int vmdk_read(struct fmt_reader *r, void *buf, uint64_t off, size_t len)
{
	struct vmdk_rd *v = r->priv;
	uint8_t *out = buf;
	bool any = false;
	if (off > r->vsize || len > r->vsize - off)
		return error("read VMDK image: range at %" PRIu64 " is past the disk end", off);
	while (len) {
		uint64_t g = off / v->grain_bytes, in = off % v->grain_bytes;
		size_t n = (size_t)MIN((uint64_t)len, v->grain_bytes - in);
		uint32_t gte;
		if (vmdk_gte(r, v, g, &gte) < 0)
			return -1;
		if (gte == 0 || (gte == 1 && (v->flags & FLAG_ZERO_GTE))) {
			memset(out, 0, n);
		} else if (v->stream) {
			if (vmdk_load_grain(r, v, g, gte) < 0)
				return -1;
			memcpy(out, v->grain + in, n);
			any = true;
		} else {
			uint64_t at = (uint64_t)gte * SECTOR + in;
			if (at + n > r->file_size)
				return error("VMDK image: grain at sector %" PRIu32 " is outside the file", gte);
			if (pread_full(r->fd, out, n, at) < 0)
				return error("read VMDK grain at sector %" PRIu32 ": %m", gte);
			any = true;
		}
		out += n;
		off += n;
		len -= n;
	}
	return any ? 0 : 1;
}

static int stream_read_open(struct fmt_reader *r)
{
	return vmdk_open_common(r, true);
}

static int sparse_read_open(struct fmt_reader *r)
{
	return vmdk_open_common(r, false);
}

static void vmdk_read_close(struct fmt_reader *r)
{
	vmdk_rd_free(r->priv);
	r->priv = NULL;
}

const struct fmt_ops fmt_vmdk_stream = {
	.name = "vmdk-stream",
	.ext = "vmdk",
	.description = "VMDK streamOptimized (vSphere OVF import, datastore upload)",
	.caps = FMT_COMPRESSED,
	.max_vsize = 64ull << 40,  /* grain directory 8 MiB in memory */
	.out_capacity = stream_out_capacity,
	.open = stream_open,
	.encode = stream_encode,
	.write = stream_write,
	.finish = stream_finish,
	.free = stream_free,
	.read_open = stream_read_open,
	.read = vmdk_read,
	.read_close = vmdk_read_close,
};

const struct fmt_ops fmt_vmdk = {
	.name = "vmdk",
	.ext = "vmdk",
	.description = "VMDK monolithicSparse (VMware Workstation, ESXi after vmkfstools -i)",
	.caps = 0,
	.max_vsize = 8ull << 40,   /* VMware's largest hosted disk; tables 1 GiB of holes */
	.open = sparse_open,
	.write = sparse_write,
	.finish = sparse_finish,
	.free = sparse_free,
	.read_open = sparse_read_open,
	.read = vmdk_read,
	.read_close = vmdk_read_close,
};
