/* ext.c - allocation map of ext2/ext3/ext4 from the block (cluster) bitmaps, read
 * read-only with libext2fs. It does not walk inodes or replay the journal: a filesystem
 * whose journal needs recovery or that is marked with errors is copied whole. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include <ext2fs/ext2fs.h>

#include "fs.h"
#include "util.h"

/* Trigger for normalizing the partial map so a fragmented filesystem stays bounded. */
#define EXT_MAP_SOFT_LIMIT ((size_t)1 << 22)

static const char *ext_name(const struct partition *p)
{
	return p->fs[0] ? p->fs : "ext";
}

/* Add [off, off+len) of the partition to out; returns the bytes added. */
static uint64_t ext_add(const struct partition *p, struct extmap *out, uint64_t off, uint64_t len)
{
	if (off >= p->size || len == 0)
		return 0;
	len = MIN(len, p->size - off);
	extmap_add(out, p->start + off, len);
	size_t soft = MAX(EXT_MAP_SOFT_LIMIT, 2 * out->max_extents);
	if (out->n >= soft)
		extmap_normalize(out, p->start + p->size);
	return len;
}

/* Refuse filesystems whose bitmaps may not describe every block in use. */
static int ext_check_state(ext2_filsys fs, struct partition *p)
{
	if (ext2fs_has_feature_journal_needs_recovery(fs->super))
		return fs_fallback(p, FS_STATE_DIRTY, "%s journal needs recovery: copied whole; "
				    "run 'e2fsck' on the source (or mount it once) to map used blocks only",
				    ext_name(p));
	if (fs->super->s_state & EXT2_ERROR_FS)
		return fs_fallback(p, FS_STATE_DIRTY, "%s marked with errors: copied whole; "
				    "run 'e2fsck -f' on the source to map used blocks only", ext_name(p));
	if (!(fs->super->s_state & EXT2_VALID_FS))
		return fs_fallback(p, FS_STATE_DIRTY, "%s not cleanly unmounted: copied whole; "
				    "run 'e2fsck' on the source to map used blocks only", ext_name(p));
	return 0;
}

/* Add every run of set bits in the block bitmap. With bigalloc the bitmap holds clusters
 * but the find functions take and return block numbers of cluster starts, so runs come
 * out cluster-aligned. Returns the bytes added, or sets *err. */
static uint64_t ext_map_bitmap(ext2_filsys fs, const struct partition *p, struct extmap *out,
			       errcode_t *err)
{
	ext2fs_block_bitmap bmap = fs->block_map;
	uint64_t bs = fs->blocksize, used = 0;
	blk64_t pos = fs->super->s_first_data_block;
	blk64_t last = ext2fs_blocks_count(fs->super) - 1;

	*err = 0;
	while (pos <= last) {
		blk64_t set, zero;
		errcode_t e = ext2fs_find_first_set_block_bitmap2(bmap, pos, last, &set);
		if (e == ENOENT)
			break;
		if (e) {
			*err = e;
			return used;
		}
		e = ext2fs_find_first_zero_block_bitmap2(bmap, set, last, &zero);
		if (e == ENOENT)
			zero = last + 1;
		else if (e) {
			*err = e;
			return used;
		}
		if (zero <= set) {  /* cannot happen with a sane library; never loop forever */
			*err = EXT2_ET_INVALID_ARGUMENT;
			return used;
		}
		used += ext_add(p, out, set * bs, (zero - set) * bs);
		pos = zero;
	}
	return used;
}

static int ext_map_open(ext2_filsys fs, struct partition *p, struct extmap *out)
{
	uint64_t bs = fs->blocksize, fs_size, used = 0;
	blk64_t blocks = ext2fs_blocks_count(fs->super);
	errcode_t err;

	if (blocks == 0 || blocks <= fs->super->s_first_data_block ||
	    __builtin_mul_overflow(blocks, bs, &fs_size))
		return fs_fallback(p, FS_STATE_DAMAGED, "%s superblock block count %llu invalid: copied whole",
				    ext_name(p), (unsigned long long)blocks);
	if (fs_size > p->size)
		return fs_fallback(p, FS_STATE_DAMAGED, "%s spans %" PRIu64 " bytes, more than its %"
				    PRIu64 "-byte partition: copied whole", ext_name(p), fs_size, p->size);
	int r = ext_check_state(fs, p);
	if (r)
		return r;
	err = ext2fs_read_block_bitmap(fs);
	if (err == EIO)
		return error("read %s block bitmaps of partition %u on '%s': %s", ext_name(p), p->number,
			     fs->device_name, error_message(err));
	if (err)
		return fs_fallback(p, FS_STATE_DAMAGED, "%s block bitmaps unreadable (%s): copied whole",
				    ext_name(p), error_message(err));

	/* Before s_first_data_block (1 KiB blocks: block 0, the boot sector) no bitmap bit
	 * exists, yet the boot code may live there. */
	used += ext_add(p, out, 0, (uint64_t)fs->super->s_first_data_block * bs);
	used += ext_map_bitmap(fs, p, out, &err);
	if (err == EIO)
		return error("scan %s block bitmaps of partition %u on '%s': %s", ext_name(p), p->number,
			     fs->device_name, error_message(err));
	if (err)
		return fs_fallback(p, FS_STATE_DAMAGED, "%s block bitmap scan failed (%s): copied whole",
				    ext_name(p), error_message(err));
	used += ext_add(p, out, fs_size, p->size - fs_size);  /* partition tail */

	p->state = FS_STATE_CLEAN;
	p->fs_size = fs_size;
	p->used_bytes = used;
	if (ext2fs_has_feature_bigalloc(fs->super))
		snprintf(p->reason, sizeof p->reason, "%s cluster bitmaps, %u-byte clusters of %u-byte blocks",
			 ext_name(p), (unsigned)EXT2_CLUSTER_SIZE(fs->super), fs->blocksize);
	else
		snprintf(p->reason, sizeof p->reason, "%s block bitmaps, %u-byte blocks", ext_name(p), fs->blocksize);
	return FS_MAPPED;
}

long ext_ro_open(struct source *s, const struct partition *p, ext2_filsys *fs)
{
	char opts[48];
	*fs = NULL;
	initialize_ext2_error_table();  /* error_message() texts; registers only once */
	snprintf(opts, sizeof opts, "offset=%" PRIu64, p->start);
	return ext2fs_open2(s->path, opts, EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0, unix_io_manager, fs);
}

static int ext_map(struct source *s, struct partition *p, struct extmap *out)
{
	ext2_filsys fs;
	errcode_t err = ext_ro_open(s, p, &fs);
	if (err) {
		if (err == EIO)
			return error("read %s superblock of partition %u on '%s': %s", ext_name(p), p->number,
				     s->path, error_message(err));
		return fs_fallback(p, FS_STATE_DAMAGED, "%s could not be opened (%s): copied whole",
				    ext_name(p), error_message(err));
	}
	int r = ext_map_open(fs, p, out);
	ext2fs_close_free(&fs);
	return r;
}

static const char *const ext_types[] = { "ext2", "ext3", "ext4", NULL };

const struct fs_ops fs_ext = {
	.name = "ext",
	.blkid_types = ext_types,
	.map = ext_map,
};
