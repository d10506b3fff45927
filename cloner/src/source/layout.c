/* layout.c - read the partition table and each partition's filesystem signature with
 * libblkid, and sanity-check the result (entries past the end, overlaps). It does not
 * decide what to copy: plan.c does. */
#define _GNU_SOURCE
#include "layout.h"

#include <blkid/blkid.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

const char *fs_state_name(enum fs_state st)
{
	static const char *const names[] = {
		[FS_STATE_UNKNOWN] = "unknown", [FS_STATE_CLEAN] = "clean", [FS_STATE_DIRTY] = "dirty",
		[FS_STATE_HIBERNATED] = "hibernated", [FS_STATE_ENCRYPTED] = "encrypted",
		[FS_STATE_DAMAGED] = "damaged",
	};
	return st < ARRAY_SIZE(names) ? names[st] : "unknown";
}

const char *copy_method_name(enum copy_method m)
{
	static const char *const names[] = {
		[COPY_USED_BLOCKS] = "used-blocks", [COPY_ALL] = "all-blocks", [COPY_HEADER] = "header-only",
	};
	return m < ARRAY_SIZE(names) ? names[m] : "all-blocks";
}

static void copy_value(blkid_probe pr, const char *name, char *dst, size_t dstsz)
{
	const char *v = NULL;
	dst[0] = '\0';
	if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v)
		snprintf(dst, dstsz, "%s", v);
}

/* Probe the filesystem (or other signature) inside [start, start+size). */
static void probe_filesystem(const struct source *s, struct partition *p)
{
	blkid_probe pr = blkid_new_probe();
	if (!pr)
		return;
	if (blkid_probe_set_device(pr, s->fd, (blkid_loff_t)p->start, (blkid_loff_t)p->size) == 0) {
		blkid_probe_set_sectorsize(pr, s->lsec);
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL |
							  BLKID_SUBLKS_UUID | BLKID_SUBLKS_VERSION);
		blkid_probe_enable_partitions(pr, 0);
		int r = blkid_do_safeprobe(pr);
		if (r == 0) {
			copy_value(pr, "TYPE", p->fs, sizeof p->fs);
			copy_value(pr, "LABEL", p->label, sizeof p->label);
			copy_value(pr, "UUID", p->uuid, sizeof p->uuid);
			copy_value(pr, "VERSION", p->fs_version, sizeof p->fs_version);
		} else if (r == -2) {
			snprintf(p->reason, sizeof p->reason, "several filesystem signatures found: copied whole");
		}
	}
	blkid_free_probe(pr);
}

static void add_partition(struct layout *l, const struct partition *p)
{
	l->parts = xrealloc(l->parts, (l->nparts + 1) * sizeof *l->parts);
	l->parts[l->nparts++] = *p;
}

static void read_entry(blkid_partition par, struct partition *p)
{
	const char *v;
	*p = (struct partition){ 0 };
	int no = blkid_partition_get_partno(par);
	p->number = no > 0 ? (unsigned)no : 0;
	/* libblkid counts in 512-byte units whatever the logical sector size */
	p->start = (uint64_t)blkid_partition_get_start(par) * 512;
	p->size = (uint64_t)blkid_partition_get_size(par) * 512;
	p->container = blkid_partition_is_extended(par);
	if ((v = blkid_partition_get_type_string(par)))
		snprintf(p->type, sizeof p->type, "%s", v);
	else
		snprintf(p->type, sizeof p->type, "0x%02x", (unsigned)blkid_partition_get_type(par));
	if ((v = blkid_partition_get_name(par)))
		snprintf(p->name, sizeof p->name, "%s", v);
}

static int cmp_part(const void *a, const void *b)
{
	const struct partition *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Entries that run past the disk or overlap another are kept but marked: plan.c copies
 * them whole (clipped to the disk), which is always safe. */
static void check_entries(const struct source *s, struct layout *l)
{
	qsort(l->parts, l->nparts, sizeof *l->parts, cmp_part);
	for (size_t i = 0; i < l->nparts; i++) {
		struct partition *p = &l->parts[i];
		if (p->start >= s->size || p->size > s->size - p->start) {
			warning("'%s': partition %u runs past the end of the disk (truncated disk or corrupt table): copying what exists of it whole",
			     s->path, p->number);
			p->size = p->start < s->size ? s->size - p->start : 0;
			p->state = FS_STATE_DAMAGED;
			snprintf(p->reason, sizeof p->reason, "partition runs past the end of the disk: copied whole");
		}
		for (size_t j = i + 1; j < l->nparts; j++) {
			struct partition *q = &l->parts[j];
			if (p->container || q->container || q->start >= p->start + p->size)
				continue;
			warning("'%s': partitions %u and %u overlap (corrupt table?): copying both whole",
			     s->path, p->number, q->number);
			p->state = q->state = FS_STATE_DAMAGED;
			snprintf(p->reason, sizeof p->reason, "overlaps partition %u: copied whole", q->number);
			snprintf(q->reason, sizeof q->reason, "overlaps partition %u: copied whole", p->number);
		}
	}
}

static int read_table(const struct source *s, struct layout *l)
{
	blkid_probe pr = blkid_new_probe();
	int ret = 0;
	if (!pr)
		return error("libblkid: cannot allocate a probe");
	if (blkid_probe_set_device(pr, s->fd, 0, (blkid_loff_t)s->size) < 0) {
		blkid_free_probe(pr);
		return error("probe '%s': libblkid cannot use the device", s->path);
	}
	blkid_probe_set_sectorsize(pr, s->lsec);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	blkid_probe_enable_superblocks(pr, 0);
	blkid_partlist ls = blkid_probe_get_partitions(pr);
	blkid_parttable tab = ls ? blkid_partlist_get_table(ls) : NULL;
	if (tab) {
		const char *type = blkid_parttable_get_type(tab), *id = blkid_parttable_get_id(tab);
		snprintf(l->table, sizeof l->table, "%s", type ? type : "none");
		snprintf(l->disk_uuid, sizeof l->disk_uuid, "%s", id ? id : "");
		int n = blkid_partlist_numof_partitions(ls);
		for (int i = 0; i < n; i++) {
			struct partition p;
			read_entry(blkid_partlist_get_partition(ls, i), &p);
			if (p.size)
				add_partition(l, &p);
		}
	}
	blkid_free_probe(pr);
	return ret;
}

/* No partition table: the disk may still hold one filesystem (or LUKS, LVM...) directly. */
static void whole_disk_filesystem(const struct source *s, struct layout *l)
{
	struct partition p = { .number = 0, .start = 0, .size = s->size };
	probe_filesystem(s, &p);
	if (p.fs[0])
		add_partition(l, &p);
}

int layout_read(struct source *s, struct layout *l)
{
	*l = (struct layout){ .table = "none" };
	if (read_table(s, l) < 0)
		return -1;
	if (strcmp(l->table, "none") == 0) {
		whole_disk_filesystem(s, l);
		return 0;
	}
	check_entries(s, l);
	for (size_t i = 0; i < l->nparts; i++)
		if (!l->parts[i].container && l->parts[i].size && !l->parts[i].reason[0])
			probe_filesystem(s, &l->parts[i]);
	return 0;
}

void layout_release(struct layout *l)
{
	free(l->parts);
	*l = (struct layout){ 0 };
}
