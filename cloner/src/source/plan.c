/* plan.c - decide how each partition is copied and build the disk's extent map.
 * The rule is conservative: the allocation map of a filesystem we understand and that is
 * clean; the whole partition for anything else; and every byte outside partitions
 * (boot code, GPT backup, gaps), whose zero stretches the pipeline then drops. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "fs.h"
#include "layout.h"
#include "util.h"

struct known_opaque {
	const char *type;
	enum fs_state state;
	const char *reason;
};

/* Signatures we recognise but cannot (or must not) map block by block. */
static const struct known_opaque opaque[] = {
	{ "crypto_LUKS", FS_STATE_ENCRYPTED, "LUKS encrypted volume: copied whole (its free space is indistinguishable from data)" },
	{ "BitLocker", FS_STATE_ENCRYPTED, "BitLocker encrypted volume: copied whole; have the recovery key ready on the new VM" },
	{ "LVM2_member", FS_STATE_UNKNOWN, "LVM physical volume: copied whole (logical volumes are not mapped yet)" },
	{ "linux_raid_member", FS_STATE_UNKNOWN, "Linux software RAID member: copied whole" },
	{ "isw_raid_member", FS_STATE_UNKNOWN, "Intel firmware RAID member: copied whole" },
	{ "ddf_raid_member", FS_STATE_UNKNOWN, "DDF RAID member: copied whole" },
	{ "zfs_member", FS_STATE_UNKNOWN, "ZFS pool member: copied whole" },
};

static void set_whole(struct partition *p, enum fs_state st, const char *reason)
{
	p->method = COPY_ALL;
	p->state = st;
	p->used_bytes = p->size;
	if (reason)
		snprintf(p->reason, sizeof p->reason, "%s", reason);
}

/* Map one partition into pmap; returns -1 only on an I/O error. */
static int plan_partition(struct source *s, struct partition *p, struct extmap *pmap)
{
	if (p->state == FS_STATE_DAMAGED || p->reason[0]) {
		set_whole(p, p->state, NULL);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(opaque); i++)
		if (strcmp(p->fs, opaque[i].type) == 0) {
			set_whole(p, opaque[i].state, opaque[i].reason);
			return 0;
		}
	const struct fs_ops *ops = fs_find(p->fs);
	if (!ops) {
		char why[160];
		if (p->fs[0])
			snprintf(why, sizeof why, "%s: no allocation map support, copied whole", p->fs);
		else
			snprintf(why, sizeof why, "no filesystem recognised: copied whole");
		set_whole(p, FS_STATE_UNKNOWN, why);
		return 0;
	}
	p->method = COPY_USED_BLOCKS;
	int r = ops->map(s, p, pmap);
	if (r < 0)
		return -1;
	if (r == FS_FALLBACK) {
		extmap_release(pmap);
		set_whole(p, p->state, NULL);
		return 0;
	}
	extmap_normalize(pmap, p->start + p->size);
	p->used_bytes = extmap_bytes_in(pmap, p->start, p->size);
	return 0;
}

/* Everything outside the non-container partitions: boot code, MBR gap, EBRs, GPT backup. */
static void add_outside(const struct source *s, const struct layout *l, struct extmap *map)
{
	uint64_t pos = 0;
	for (size_t i = 0; i < l->nparts; i++) {
		const struct partition *p = &l->parts[i];
		if (p->container)
			continue;
		if (p->start > pos)
			extmap_add(map, pos, p->start - pos);
		pos = MAX(pos, p->start + p->size);
	}
	if (pos < s->size)
		extmap_add(map, pos, s->size - pos);
}

int layout_plan(struct source *s, struct layout *l, bool all_blocks, struct extmap *map)
{
	extmap_init(map);
	if (all_blocks) {
		for (size_t i = 0; i < l->nparts; i++)
			if (!l->parts[i].container)
				set_whole(&l->parts[i], l->parts[i].state, "--all-blocks: every sector copied");
		extmap_add(map, 0, s->size);
		extmap_normalize(map, s->size);
		return 0;
	}
	add_outside(s, l, map);
	for (size_t i = 0; i < l->nparts; i++) {
		struct partition *p = &l->parts[i];
		struct extmap pmap;
		if (p->container)
			continue;
		extmap_init(&pmap);
		if (plan_partition(s, p, &pmap) < 0) {
			extmap_release(&pmap);
			extmap_release(map);
			return -1;
		}
		if (p->method == COPY_ALL)
			extmap_add(map, p->start, p->size);
		else
			extmap_add_map(map, &pmap, 0);
		extmap_release(&pmap);
	}
	extmap_normalize(map, s->size);
	return 0;
}
