/* discover.c - find the disks worth cloning under /sys/block. It only reads sysfs and
 * asks libblkid for labels; it never opens a disk for writing. */
#define _GNU_SOURCE
#include <blkid/blkid.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "source.h"
#include "util.h"

/* The label of the live medium's data partition / ISO volume (image-build/). */
#define BOOT_MEDIUM_LABEL "COLDCLONE"

static bool skipped_name(const char *name)
{
	static const char *const prefixes[] = { "ram", "loop", "zram", "sr", "fd", "dm-", "md", "nbd", "zd" };
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static uint64_t sysfs_u64(const char *name, const char *attr)
{
	char path[300];
	unsigned long long v = 0;
	snprintf(path, sizeof path, "/sys/block/%s/%s", name, attr);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* True when the disk or one of its partitions carries the boot medium's label. */
static bool is_boot_medium(blkid_cache cache, const char *name)
{
	blkid_dev_iterate it = blkid_dev_iterate_begin(cache);
	blkid_dev dev;
	bool found = false;
	char disk[300];
	snprintf(disk, sizeof disk, "/dev/%s", name);
	blkid_dev_set_search(it, "LABEL", BOOT_MEDIUM_LABEL);
	while (!found && blkid_dev_next(it, &dev) == 0) {
		const char *devname = blkid_dev_devname(dev);
		found = strncmp(devname, disk, strlen(disk)) == 0;
	}
	blkid_dev_iterate_end(it);
	return found;
}

int source_discover(char ***paths)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	size_t n = 0;
	blkid_cache cache = NULL;
	*paths = xcalloc(1, sizeof **paths);
	if (!d)
		return error("list disks in /sys/block: %m (is /sys mounted?)");
	if (blkid_get_cache(&cache, "/dev/null") == 0)
		blkid_probe_all(cache);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || skipped_name(e->d_name))
			continue;
		if (sysfs_u64(e->d_name, "size") == 0)
			continue;  /* empty card reader or a disk without a medium */
		if (cache && is_boot_medium(cache, e->d_name))
			continue;
		*paths = xrealloc(*paths, (n + 2) * sizeof **paths);
		(*paths)[n++] = xasprintf("/dev/%s", e->d_name);
		(*paths)[n] = NULL;
	}
	closedir(d);
	if (cache)
		blkid_put_cache(cache);
	/* Stable order: sda before sdb, vda before vdb. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp((*paths)[j - 1], (*paths)[j]) > 0; j--) {
			char *t = (*paths)[j];
			(*paths)[j] = (*paths)[j - 1];
			(*paths)[j - 1] = t;
		}
	return 0;
}

void source_discover_free(char **paths)
{
	for (size_t i = 0; paths && paths[i]; i++)
		free(paths[i]);
	free(paths);
}
