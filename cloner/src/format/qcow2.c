/* qcow2.c - qcow2 version 3 writer (streamed front to back: all metadata first, computed
 * from the extent map, then one data cluster per mapped 64 KiB block) and a reader for
 * `coldclone verify`. No backing files, snapshots, compression or encryption.
 * Spec: QEMU docs/interop/qcow2.txt; section names below refer to it. */
#include <errno.h>
#include <string.h>

#include "format.h"
#include "util.h"

#define QCOW2_MAGIC 0x514649fbu                /* "QFI\xfb" */
#define QCOW2_CLUSTER_BITS 16
#define QCOW2_CLUSTER ((uint64_t)1 << QCOW2_CLUSTER_BITS)  /* = BLOCK_SIZE */
#define QCOW2_L2_ENTRIES (QCOW2_CLUSTER / 8)
#define QCOW2_L2_SPAN (QCOW2_L2_ENTRIES * QCOW2_CLUSTER)  /* 512 MiB of guest per L2 table */
#define QCOW2_REFCOUNT_ORDER 4                 /* 16-bit refcounts, qemu's default */
#define QCOW2_RB_ENTRIES (QCOW2_CLUSTER * 8 / 16)  /* clusters covered by one refcount block */
#define QCOW2_HEADER_LEN 112                   /* v3 fields through compression_type, padded */
#define QCOW2_COPIED ((uint64_t)1 << 63)       /* "refcount is exactly one" (L1/L2 entries) */
#define QCOW2_COMPRESSED ((uint64_t)1 << 62)
#define QCOW2_ZERO_FLAG ((uint64_t)1 << 0)     /* v3 standard cluster descriptor bit 0 */
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull  /* bits 9-55 */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_FEATURES 0x6803f857u
/* Incompatible feature bits ("Header", bytes 72-79). */
#define QCOW2_INCOMPAT_DIRTY (1u << 0)
#define QCOW2_INCOMPAT_CORRUPT (1u << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1u << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1u << 3)
#define QCOW2_INCOMPAT_EXTL2 (1u << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
/* qemu refuses L1 tables over 32 MiB: 4 Mi entries of 512 MiB each = 2 PiB. */
#define QCOW2_MAX_L1_ENTRIES ((uint64_t)32 << 20 >> 3)

_Static_assert(QCOW2_CLUSTER == BLOCK_SIZE, "one data cluster per extent-map block");

/* Where everything goes; counts are in clusters, offsets in bytes. */
struct qcow2_layout {
	uint64_t l1_size;       /* L1 entries: one per 512 MiB of virtual size */
	uint64_t l1_clusters;
	uint64_t rt_clusters;   /* refcount table */
	uint64_t rb_count;      /* refcount blocks */
	uint64_t l2_count;      /* L2 tables: spans with at least one mapped block */
	uint64_t data_count;    /* data clusters: mapped blocks */
	uint64_t total;         /* clusters in the file */
	uint64_t l1_off, rt_off, rb_off, l2_off, data_off;
};

struct qcow2_writer {
	struct qcow2_layout lay;
	struct fmt_block_iter it;  /* blocks still expected from write(), in order */
	uint64_t written;          /* data clusters emitted */
	uint64_t next_block;       /* L2 generation: first block index not yet given a cluster */
	uint64_t rank;             /* L2 generation: data clusters assigned so far */
	uint8_t *buf;              /* one cluster of metadata being generated */
};

/* First L2 span >= k holding a mapped block below vsize, or l1_size when none. A block
 * lies in the span of its first byte, so the first extent ending past k's start decides. */
static uint64_t qcow2_next_span(const struct fmt_writer *w, uint64_t l1_size, uint64_t k)
{
	if (k >= l1_size)
		return l1_size;
	size_t i = extmap_find(w->map, k * QCOW2_L2_SPAN);
	if (i >= w->map->n || w->map->v[i].start >= w->vsize)
		return l1_size;
	return MAX(k, w->map->v[i].start / QCOW2_L2_SPAN);
}

static int qcow2_plan(const struct fmt_writer *w, struct qcow2_layout *l)
{
	*l = (struct qcow2_layout){ .l1_size = DIV_ROUND_UP(w->vsize, QCOW2_L2_SPAN) };
	l->l1_clusters = DIV_ROUND_UP(l->l1_size * 8, QCOW2_CLUSTER);
	for (uint64_t k = qcow2_next_span(w, l->l1_size, 0); k < l->l1_size;
	     k = qcow2_next_span(w, l->l1_size, k + 1))
		l->l2_count++;
	l->data_count = fmt_count_blocks(w->map, w->vsize);
	/* Refcount blocks cover every cluster including themselves and the table that points
	 * at them ("Host cluster management"): grow both until they cover the total. */
	uint64_t fixed = 1 + l->l1_clusters + l->l2_count + l->data_count;
	uint64_t rb = 1, rt = 1;
	for (;;) {
		uint64_t nrb = DIV_ROUND_UP(fixed + rt + rb, QCOW2_RB_ENTRIES);
		uint64_t nrt = DIV_ROUND_UP(nrb * 8, QCOW2_CLUSTER);
		if (nrb == rb && nrt == rt)
			break;
		rb = MAX(rb, nrb);
		rt = MAX(rt, nrt);
	}
	l->rb_count = rb;
	l->rt_clusters = rt;
	l->total = fixed + rt + rb;
	l->l1_off = QCOW2_CLUSTER;
	l->rt_off = l->l1_off + l->l1_clusters * QCOW2_CLUSTER;
	l->rb_off = l->rt_off + l->rt_clusters * QCOW2_CLUSTER;
	l->l2_off = l->rb_off + l->rb_count * QCOW2_CLUSTER;
	l->data_off = l->l2_off + l->l2_count * QCOW2_CLUSTER;
	if (l->data_off + l->data_count * QCOW2_CLUSTER != l->total * QCOW2_CLUSTER)
		return error("plan qcow2 layout: cluster count mismatch (internal error)");
	return 0;
}

/* Feature name table ("Feature name table"): lets older tools name bits they lack. */
static size_t qcow2_put_features(uint8_t *p)
{
	static const struct { uint8_t type, bit; const char *name; } names[] = {
		{ 0, 0, "dirty bit" }, { 0, 1, "corrupt bit" }, { 0, 2, "external data file" },
		{ 0, 3, "compression type" }, { 0, 4, "extended L2 entries" },
		{ 1, 0, "lazy refcounts" }, { 2, 0, "bitmaps" }, { 2, 1, "raw external data" },
	};
	put_be32(p, QCOW2_EXT_FEATURES);
	put_be32(p + 4, (uint32_t)(ARRAY_SIZE(names) * 48));
	uint8_t *e = p + 8;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++, e += 48) {
		e[0] = names[i].type;
		e[1] = names[i].bit;
		memcpy(e + 2, names[i].name, strlen(names[i].name));
	}
	return (size_t)(e - p);  /* 48-byte entries keep the 8-byte alignment */
}

static int qcow2_put_header(struct fmt_writer *w, struct qcow2_writer *q)
{
	const struct qcow2_layout *l = &q->lay;
	uint8_t *h = q->buf;
	memset(h, 0, QCOW2_CLUSTER);
	put_be32(h, QCOW2_MAGIC);
	put_be32(h + 4, 3);
	put_be32(h + 20, QCOW2_CLUSTER_BITS);
	put_be64(h + 24, w->vsize);
	put_be32(h + 36, (uint32_t)l->l1_size);
	put_be64(h + 40, l->l1_off);
	put_be64(h + 48, l->rt_off);
	put_be32(h + 56, (uint32_t)l->rt_clusters);
	put_be32(h + 96, QCOW2_REFCOUNT_ORDER);
	put_be32(h + 100, QCOW2_HEADER_LEN);
	/* byte 104 compression_type = 0 (zlib), unused: nothing is compressed */
	size_t n = QCOW2_HEADER_LEN + qcow2_put_features(h + QCOW2_HEADER_LEN);
	put_be32(h + n, QCOW2_EXT_END);  /* and a zero length: 8 bytes of zeros */
	return sink_write(w->sink, h, QCOW2_CLUSTER);
}

static int qcow2_put_l1(struct fmt_writer *w, struct qcow2_writer *q)
{
	const struct qcow2_layout *l = &q->lay;
	uint64_t span = qcow2_next_span(w, l->l1_size, 0), idx = 0;
	for (uint64_t c = 0; c < l->l1_clusters; c++) {
		memset(q->buf, 0, QCOW2_CLUSTER);
		for (uint64_t j = 0; j < QCOW2_L2_ENTRIES; j++) {
			uint64_t k = c * QCOW2_L2_ENTRIES + j;
			if (k >= l->l1_size)
				break;
			if (k != span)
				continue;  /* 0: L2 table and its clusters unallocated */
			put_be64(q->buf + j * 8, (l->l2_off + idx++ * QCOW2_CLUSTER) | QCOW2_COPIED);
			span = qcow2_next_span(w, l->l1_size, k + 1);
		}
		if (sink_write(w->sink, q->buf, QCOW2_CLUSTER) < 0)
			return -1;
	}
	return 0;
}

static int qcow2_put_refcounts(struct fmt_writer *w, struct qcow2_writer *q)
{
	const struct qcow2_layout *l = &q->lay;
	for (uint64_t c = 0; c < l->rt_clusters; c++) {
		memset(q->buf, 0, QCOW2_CLUSTER);
		for (uint64_t j = 0; j < QCOW2_CLUSTER / 8 && c * (QCOW2_CLUSTER / 8) + j < l->rb_count; j++)
			put_be64(q->buf + j * 8, l->rb_off + (c * (QCOW2_CLUSTER / 8) + j) * QCOW2_CLUSTER);
		if (sink_write(w->sink, q->buf, QCOW2_CLUSTER) < 0)
			return -1;
	}
	/* Every cluster of the file is referenced exactly once. */
	for (uint64_t b = 0; b < l->rb_count; b++) {
		memset(q->buf, 0, QCOW2_CLUSTER);
		for (uint64_t j = 0; j < QCOW2_RB_ENTRIES && b * QCOW2_RB_ENTRIES + j < l->total; j++)
			put_be16(q->buf + j * 2, 1);
		if (sink_write(w->sink, q->buf, QCOW2_CLUSTER) < 0)
			return -1;
	}
	return 0;
}

/* Fill the L2 table of span k: mapped blocks get consecutive data clusters, in
 * virtual order, so write() can emit them as they arrive. */
static void qcow2_fill_l2(const struct fmt_writer *w, struct qcow2_writer *q, uint64_t k)
{
	const struct extmap *m = w->map;
	uint64_t lo = k * QCOW2_L2_ENTRIES, hi = lo + QCOW2_L2_ENTRIES;
	memset(q->buf, 0, QCOW2_CLUSTER);
	for (size_t i = extmap_find(m, lo * BLOCK_SIZE); i < m->n; i++) {
		const struct extent *e = &m->v[i];
		if (e->start >= w->vsize || e->start / BLOCK_SIZE >= hi)
			break;
		uint64_t first = MAX(MAX(e->start / BLOCK_SIZE, lo), q->next_block);
		uint64_t end = MIN(DIV_ROUND_UP(MIN(e->start + e->len, w->vsize), BLOCK_SIZE), hi);
		for (uint64_t b = first; b < end; b++)
			put_be64(q->buf + (b - lo) * 8,
				 (q->lay.data_off + q->rank++ * QCOW2_CLUSTER) | QCOW2_COPIED);
		if (end > first)
			q->next_block = end;
	}
}

static int qcow2_put_l2(struct fmt_writer *w, struct qcow2_writer *q)
{
	const struct qcow2_layout *l = &q->lay;
	for (uint64_t k = qcow2_next_span(w, l->l1_size, 0); k < l->l1_size;
	     k = qcow2_next_span(w, l->l1_size, k + 1)) {
		qcow2_fill_l2(w, q, k);
		if (sink_write(w->sink, q->buf, QCOW2_CLUSTER) < 0)
			return -1;
	}
	if (q->rank != l->data_count)
		return error("write qcow2 L2 tables: %llu data clusters assigned, %llu planned (internal error)",
			     (unsigned long long)q->rank, (unsigned long long)l->data_count);
	return 0;
}

static int qcow2_open(struct fmt_writer *w)
{
	if (w->vsize == 0 || w->vsize % 512)
		return error("write qcow2: virtual size %llu is not a positive multiple of 512",
			     (unsigned long long)w->vsize);
	if (w->vsize > fmt_qcow2.max_vsize)
		return error("write qcow2: virtual size %llu exceeds the 2 PiB qcow2 limit: use raw",
			     (unsigned long long)w->vsize);
	if (w->sink->pos != 0)
		return error("write qcow2: image must start at offset 0 of the destination");
	struct qcow2_writer *q = xcalloc(1, sizeof *q);
	w->priv = q;
	w->image_vsize = w->vsize;
	q->buf = xmalloc(QCOW2_CLUSTER);
	fmt_block_iter_init(&q->it, w->map, w->vsize);
	if (qcow2_plan(w, &q->lay) < 0)
		return -1;
	debug("qcow2 layout: %llu L2 tables, %llu data clusters, %llu refcount blocks, %llu clusters in all",
	      (unsigned long long)q->lay.l2_count, (unsigned long long)q->lay.data_count,
	      (unsigned long long)q->lay.rb_count, (unsigned long long)q->lay.total);
	if (qcow2_put_header(w, q) < 0 || qcow2_put_l1(w, q) < 0 || qcow2_put_refcounts(w, q) < 0 ||
	    qcow2_put_l2(w, q) < 0)
		return -1;
	if (w->sink->pos != q->lay.data_off)
		return error("write qcow2 metadata: ended at %llu, planned %llu (internal error)",
			     (unsigned long long)w->sink->pos, (unsigned long long)q->lay.data_off);
	return 0;
}

static int qcow2_write(struct fmt_writer *w, const struct chunk *c)
{
	struct qcow2_writer *q = w->priv;
	struct sink *s = w->sink;
	for (unsigned i = 0; i < BLOCKS_PER_CHUNK; i++) {
		if (!(c->mapped & (1u << i)))
			continue;
		uint64_t off = c->off + (uint64_t)i * BLOCK_SIZE, want;
		/* The L2 tables already promised this block's cluster: any other order is a bug. */
		if (!fmt_block_iter_next(&q->it, &want) || want != off)
			return error("write qcow2: block at %llu delivered out of the planned order (internal error)",
				     (unsigned long long)off);
		uint32_t n = chunk_block_len(c, i);
		int r;
		if (c->nonzero & (1u << i)) {  /* a short last block is padded to a full cluster */
			r = sink_write(s, c->data + (size_t)i * BLOCK_SIZE, n);
			if (r == 0 && n < BLOCK_SIZE)
				r = sink_zero(s, BLOCK_SIZE - n);
		} else {
			r = sink_zero(s, BLOCK_SIZE);  /* allocated, reads as zero, stays a hole */
		}
		if (r < 0)
			return -1;
		q->written++;
	}
	return 0;
}

static int qcow2_finish(struct fmt_writer *w)
{
	struct qcow2_writer *q = w->priv;
	uint64_t end = q->lay.total * QCOW2_CLUSTER, off;
	if (q->written != q->lay.data_count || fmt_block_iter_next(&q->it, &off))
		return error("write qcow2: %llu of %llu planned data clusters delivered (internal error)",
			     (unsigned long long)q->written, (unsigned long long)q->lay.data_count);
	if (w->sink->pos > end)
		return error("write qcow2: image is %llu bytes, planned %llu (internal error)",
			     (unsigned long long)w->sink->pos, (unsigned long long)end);
	return sink_zero(w->sink, end - w->sink->pos);
}

static void qcow2_free(struct fmt_writer *w)
{
	struct qcow2_writer *q = w->priv;
	if (!q)
		return;
	free(q->buf);
	free(q);
	w->priv = NULL;
}

/* ---- reader ---- */

struct qcow2_reader {
	unsigned cluster_bits;
	uint64_t cluster;          /* bytes */
	uint64_t l2_entries;
	uint64_t l1_off;
	uint64_t l1_size;
	bool zero_flag;            /* v3: descriptor bit 0 means "reads as zero" */
	uint64_t cached_l1;        /* L1 index whose table is in l2, UINT64_MAX when none */
	bool cached_present;       /* false: that L1 entry was 0 */
	uint8_t *l2;               /* one L2 table */
};

static int qcow2_check_header(const struct fmt_reader *r, const uint8_t *h, struct qcow2_reader *q)
{
	uint32_t version = get_be32(h + 4);
	if (version != 2 && version != 3)
		return error("read qcow2 header: version %u is not supported (2 or 3)", version);
	q->cluster_bits = get_be32(h + 20);
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		return error("read qcow2 header: cluster_bits %u outside 9..21", q->cluster_bits);
	q->cluster = (uint64_t)1 << q->cluster_bits;
	q->l2_entries = q->cluster / 8;
	if (get_be64(h + 8) != 0)
		return error("read qcow2 image: it has a backing file; verify needs a self-contained image (qemu-img convert it first)");
	if (get_be32(h + 32) != 0)
		return error("read qcow2 image: it is encrypted (method %u); not supported", get_be32(h + 32));
	if (version == 3) {
		uint64_t incompat = get_be64(h + 72);
		uint32_t hlen = get_be32(h + 100);
		if (hlen < 104 || hlen % 8 || hlen > q->cluster)
			return error("read qcow2 header: bad header_length %u", hlen);
		if (incompat & ~QCOW2_INCOMPAT_KNOWN)
			return error("read qcow2 header: unknown incompatible features 0x%llx",
				     (unsigned long long)(incompat & ~QCOW2_INCOMPAT_KNOWN));
		if (incompat & QCOW2_INCOMPAT_DATA_FILE)
			return error("read qcow2 image: it uses an external data file; not supported");
		if (incompat & QCOW2_INCOMPAT_EXTL2)
			return error("read qcow2 image: it uses extended L2 entries (subclusters); not supported");
		if (incompat & QCOW2_INCOMPAT_CORRUPT)
			return error("read qcow2 image: it is marked corrupt; run 'qemu-img check -r all' on it");
		q->zero_flag = true;
	}
	uint64_t size = get_be64(h + 24);
	if (size > (uint64_t)1 << 61)
		return error("read qcow2 header: virtual size %llu too large", (unsigned long long)size);
	uint64_t span = q->cluster * q->l2_entries;
	uint64_t need = size / span + (size % span != 0);
	q->l1_size = get_be32(h + 36);
	q->l1_off = get_be64(h + 40);
	if (q->l1_size < need || q->l1_size > QCOW2_MAX_L1_ENTRIES)
		return error("read qcow2 header: L1 table of %llu entries does not fit virtual size %llu",
			     (unsigned long long)q->l1_size, (unsigned long long)size);
	uint64_t end;
	if (q->l1_off % q->cluster || q->l1_off == 0 ||
	    __builtin_add_overflow(q->l1_off, q->l1_size * 8, &end) || end > r->file_size)
		return error("read qcow2 header: L1 table at %llu outside the file", (unsigned long long)q->l1_off);
	uint64_t rt_off = get_be64(h + 48), rt_len = (uint64_t)get_be32(h + 56) << q->cluster_bits;
	if (rt_off % q->cluster || rt_off == 0 ||
	    __builtin_add_overflow(rt_off, rt_len, &end) || end > r->file_size)
		return error("read qcow2 header: refcount table at %llu outside the file", (unsigned long long)rt_off);
	return 0;
}

static int qcow2_read_open(struct fmt_reader *r)
{
	uint8_t h[QCOW2_HEADER_LEN];
	if (r->file_size < sizeof h)
		return 0;
	if (pread_full(r->fd, h, sizeof h, 0) < 0)
		return error("read qcow2 header: %m");
	if (get_be32(h) != QCOW2_MAGIC)
		return 0;
	struct qcow2_reader *q = xcalloc(1, sizeof *q);
	if (qcow2_check_header(r, h, q) < 0) {
		free(q);
		return -1;
	}
	q->cached_l1 = UINT64_MAX;
	q->l2 = xmalloc(q->cluster);
	r->priv = q;
	r->vsize = get_be64(h + 24);
	r->lsec = 512;  /* qcow2 records no sector size */
	return 1;
}

/* Make the L2 table of L1 index l1i current. */
static int qcow2_load_l2(struct fmt_reader *r, struct qcow2_reader *q, uint64_t l1i)
{
	uint8_t e[8];
	if (q->cached_l1 == l1i)
		return 0;
	q->cached_l1 = UINT64_MAX;
	if (pread_full(r->fd, e, 8, q->l1_off + l1i * 8) < 0)
		return error("read qcow2 L1 entry %llu: %m", (unsigned long long)l1i);
	uint64_t off = get_be64(e) & QCOW2_OFFSET_MASK, end;
	q->cached_present = off != 0;
	if (off) {
		if (off % q->cluster || __builtin_add_overflow(off, q->cluster, &end) || end > r->file_size)
			return error("read qcow2 image: L2 table %llu at %llu outside the file or misaligned",
				     (unsigned long long)l1i, (unsigned long long)off);
		if (pread_full(r->fd, q->l2, q->cluster, off) < 0)
			return error("read qcow2 L2 table at %llu: %m", (unsigned long long)off);
	}
	q->cached_l1 = l1i;
	return 0;
}

/* Read [off, off+n) within one guest cluster; 1 when it reads as zero without data. */
static int qcow2_read_piece(struct fmt_reader *r, struct qcow2_reader *q, uint8_t *buf, uint64_t off, size_t n)
{
	uint64_t vc = off >> q->cluster_bits;
	if (qcow2_load_l2(r, q, vc / q->l2_entries) < 0)
		return -1;
	uint64_t entry = q->cached_present ? get_be64(q->l2 + (vc % q->l2_entries) * 8) : 0;
	if (entry & QCOW2_COMPRESSED)
		return error("read qcow2 image: compressed cluster at virtual offset %llu; not supported (qemu-img convert it first)",
			     (unsigned long long)(vc << q->cluster_bits));
	uint64_t host = entry & QCOW2_OFFSET_MASK, pos, end;
	if (host == 0 || (q->zero_flag && (entry & QCOW2_ZERO_FLAG))) {
		memset(buf, 0, n);
		return 1;
	}
	pos = host + (off & (q->cluster - 1));
	if (host % q->cluster || __builtin_add_overflow(pos, n, &end) || end > r->file_size)
		return error("read qcow2 image: cluster for virtual offset %llu at %llu outside the file or misaligned",
			     (unsigned long long)off, (unsigned long long)host);
	if (pread_full(r->fd, buf, n, pos) < 0)
		return error("read qcow2 data at %llu: %m", (unsigned long long)pos);
	return 0;
}

static int qcow2_read(struct fmt_reader *r, void *buf, uint64_t off, size_t len)
{
	struct qcow2_reader *q = r->priv;
	uint64_t end;
	if (__builtin_add_overflow(off, len, &end) || end > r->vsize)
		return error("read qcow2 image: range at %llu past the virtual size", (unsigned long long)off);
	int all_zero = 1;
	for (size_t done = 0; done < len; ) {
		uint64_t pos = off + done;
		size_t n = (size_t)MIN((uint64_t)(len - done), q->cluster - (pos & (q->cluster - 1)));
		int k = qcow2_read_piece(r, q, (uint8_t *)buf + done, pos, n);
		if (k < 0)
			return -1;
		all_zero &= k;
		done += n;
	}
	return all_zero;
}

static void qcow2_read_close(struct fmt_reader *r)
{
	struct qcow2_reader *q = r->priv;
	if (!q)
		return;
	free(q->l2);
	free(q);
	r->priv = NULL;
}

const struct fmt_ops fmt_qcow2 = {
	.name = "qcow2",
	.ext = "qcow2",
	.description = "qcow2 v3 (KVM/libvirt, OpenStack, Proxmox)",
	.caps = FMT_CAN_4K,  /* qcow2 records no sector size: the guest keeps its own */
	.max_vsize = QCOW2_MAX_L1_ENTRIES * QCOW2_L2_SPAN,
	.open = qcow2_open,
	.write = qcow2_write,
	.finish = qcow2_finish,
	.free = qcow2_free,
	.read_open = qcow2_read_open,
	.read = qcow2_read,
	.read_close = qcow2_read_close,
};
