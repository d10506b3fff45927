/* source.h - the source disk: opened read-only (and, for a block device, set read-only
 * in the kernel for the duration), identified, and read with the bad-sector policy:
 * retry, then split down to single logical sectors; sectors that still fail read as
 * zero and are recorded. It never writes to the disk. */
#ifndef COLDCLONE_SOURCE_H
#define COLDCLONE_SOURCE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "extmap.h"

struct source {
	char *path;             /* as given by the user */
	int fd;                 /* O_RDONLY */
	uint64_t size;          /* bytes */
	uint32_t lsec;          /* logical sector size (512 or 4096) */
	uint32_t psec;          /* physical sector size */
	bool blockdev;          /* path is a block device */
	int ro_before;          /* kernel read-only flag before we set it; -1 when not changed */
	char model[128];        /* sysfs device/model, "" when unknown */
	char serial[128];       /* sysfs serial or wwid, "" when unknown */
	char vendor[64];        /* sysfs device/vendor */
	unsigned retries;       /* read attempts before splitting (default 3) */
	uint64_t max_unreadable;  /* stop when more bytes than this are unreadable; UINT64_MAX = no limit */
	pthread_mutex_t bad_lock;  /* guards bad */
	struct extmap bad;      /* unreadable byte ranges found so far */
};

/* Open path read-only, fill identity and sizes. lsec_override (0 = detect) sets the
 * logical sector size of an image file (a block device reports its own). On a block
 * device also refuses partitions mounted read-write and sets BLKROSET. */
int source_open(struct source *s, const char *path, uint32_t lsec_override);
/* Restore the kernel read-only flag and close. Safe on a zeroed struct. */
void source_close(struct source *s);
/* Read len bytes at off (both multiples of lsec, except at the end of the disk).
 * Sectors that cannot be read after retries are zero-filled and recorded in s->bad.
 * Returns 0, or -1 when the too-many-unreadable limit is crossed (message printed). */
int source_read(struct source *s, void *buf, uint64_t off, size_t len);
/* Plain read with no bad-sector policy, for metadata probing: 0 or -1 with errno. */
int source_pread(const struct source *s, void *buf, uint64_t off, size_t len);
/* Unreadable bytes recorded so far. */
uint64_t source_bad_bytes(struct source *s);

/* Candidate source disks under /sys/block: not ram, loop, zram, optical, floppy,
 * device-mapper or md devices, not empty, and not the medium this system booted from
 * (a disk holding a partition or filesystem labelled COLDCLONE). Fills a NULL-terminated
 * array of "/dev/NAME" strings; free with source_discover_free. */
int source_discover(char ***paths);
void source_discover_free(char **paths);

#endif
