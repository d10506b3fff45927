/* fs.h - one allocation mapper per filesystem (src/fs/<name>.c), found by blkid TYPE.
 * A mapper reads the filesystem read-only and adds the byte ranges in use to a map.
 * It must treat every on-disk value as hostile and never write to the source. */
#ifndef COLDCLONE_FS_H
#define COLDCLONE_FS_H

#include "extmap.h"
#include "layout.h"
#include "source.h"

enum fs_result {
	FS_MAPPED = 0,    /* out holds the used ranges; p->state, p->used_bytes, p->fs_size set */
	FS_FALLBACK = 1,  /* copy the whole partition; p->state and p->reason say why */
};

struct fs_ops {
	const char *name;                 /* for messages */
	const char *const *blkid_types;   /* NULL-terminated blkid TYPE values handled */
	/* Map partition p of disk s. Ranges added to out are absolute disk byte offsets and
	 * must lie inside the partition. Anything the filesystem does not describe (e.g. the
	 * tail past its last block, where NTFS keeps its backup boot sector) must be added
	 * too. Returns FS_MAPPED, FS_FALLBACK, or -1 on an I/O error (message printed);
	 * a parse failure of on-disk data is FS_FALLBACK with state FS_STATE_DAMAGED. */
	int (*map)(struct source *s, struct partition *p, struct extmap *out);
};

extern const struct fs_ops fs_ntfs;
extern const struct fs_ops fs_ext;
extern const struct fs_ops fs_fat;
extern const struct fs_ops fs_swap;

/* Set p->state and p->reason (printf-style) and return FS_FALLBACK: the one way a mapper
 * says "copy this partition whole". */
int fs_fallback(struct partition *p, enum fs_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The mapper for a blkid TYPE, or NULL. */
const struct fs_ops *fs_find(const char *blkid_type);

/* ntfs.c's read-only mount, for reading a few files (oshost.c): the mapper's device that
 * cannot write and its boot-sector sanity checks, case-insensitive name lookups, and
 * libntfs-3g's messages in debug output only until ntfs_ro_close. NULL when the volume
 * cannot be mounted (no message: callers treat it as "not there"). ntfs_ro_volume gives
 * libntfs-3g's ntfs_volume; s must stay open until ntfs_ro_close, which accepts NULL. */
struct ntfs_ro;
struct _ntfs_volume;
struct ntfs_ro *ntfs_ro_open(struct source *s, const struct partition *p);
struct _ntfs_volume *ntfs_ro_volume(struct ntfs_ro *r);
void ntfs_ro_close(struct ntfs_ro *r);

/* Open the ext2/3/4 filesystem of partition p read-only (no EXT2_FLAG_RW: the unix io
 * manager opens O_RDONLY and closing writes nothing); 0 or libext2fs's error code.
 * Close with ext2fs_close_free. */
struct struct_ext2_filsys;
long ext_ro_open(struct source *s, const struct partition *p, struct struct_ext2_filsys **fs);

#endif
