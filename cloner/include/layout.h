/* layout.h - partition table and per-partition facts of a source disk, read with
 * libblkid, and the copy plan (method and reason) chosen for each partition.
 * Hostile input (overlaps, entries past the end) is reported and degrades to a
 * whole-partition or whole-disk copy, never a crash. */
#ifndef COLDCLONE_LAYOUT_H
#define COLDCLONE_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "extmap.h"
#include "source.h"

enum fs_state {
	FS_STATE_UNKNOWN = 0,  /* not inspected or no filesystem recognised */
	FS_STATE_CLEAN,
	FS_STATE_DIRTY,        /* needs a check / journal replay / marked dirty */
	FS_STATE_HIBERNATED,   /* Windows hibernation or Fast Startup image present */
	FS_STATE_ENCRYPTED,    /* BitLocker, LUKS */
	FS_STATE_DAMAGED,      /* metadata could not be parsed */
};

enum copy_method {
	COPY_USED_BLOCKS = 0,  /* the filesystem's allocation map */
	COPY_ALL,              /* every sector of the partition */
	COPY_HEADER,           /* only the header (swap) */
};

struct partition {
	unsigned number;       /* 1-based, as the kernel numbers it */
	uint64_t start;        /* bytes from the disk start */
	uint64_t size;         /* bytes */
	bool container;        /* MBR extended partition: its EBRs are copied as gaps */
	char type[40];         /* GPT type GUID or "0x07" style MBR type */
	char name[72];         /* GPT partition name */
	char fs[32];           /* blkid TYPE ("ntfs", "ext4", "vfat", "swap", "crypto_LUKS", ...), "" unknown */
	char fs_version[16];   /* blkid VERSION (e.g. "FAT32") */
	char label[64];
	char uuid[64];
	enum fs_state state;
	enum copy_method method;
	char reason[192];      /* why this method (shown in list, progress, manifest) */
	uint64_t used_bytes;   /* bytes the copy will read from this partition */
	uint64_t fs_size;      /* bytes the filesystem spans (0 unknown) */
};

struct layout {
	char table[8];         /* "gpt", "dos" (MBR), or "none" */
	char disk_uuid[64];    /* GPT disk GUID or MBR disk id */
	struct partition *parts;  /* sorted by start */
	size_t nparts;
	char problem[192];     /* non-empty when the table was unusable and the disk is copied whole */
};

/* Read the partition table and probe every partition's filesystem. */
int layout_read(struct source *s, struct layout *l);
void layout_release(struct layout *l);

/* Decide each partition's copy method and build the disk's extent map: everything
 * outside (non-container) partitions, plus per partition its used blocks, the whole
 * partition or its header. all_blocks maps the whole disk. */
int layout_plan(struct source *s, struct layout *l, bool all_blocks, struct extmap *map);

const char *fs_state_name(enum fs_state st);
const char *copy_method_name(enum copy_method m);

#endif
