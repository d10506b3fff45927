/* oshost.h - the host name the installed operating system gave itself, read from its
 * system partition: Windows' ComputerName from the SYSTEM registry hive on NTFS, Linux's
 * /etc/hostname on ext2/3/4. Read-only and best effort: a missing file, a damaged or
 * hostile hive, an unreadable volume are all "not found", never an error.
 *
 * Call order: any function, any time after source_open()/layout_read(); nothing to free. */
#ifndef COLDCLONE_OSHOST_H
#define COLDCLONE_OSHOST_H

#include <stddef.h>

#include "layout.h"
#include "source.h"

enum oshost_os { OSHOST_NONE = 0, OSHOST_WINDOWS, OSHOST_LINUX };

#define OSHOST_NAME_MAX 256

struct oshost {
	enum oshost_os os;             /* OSHOST_NONE when nothing was found */
	char name[OSHOST_NAME_MAX];    /* UTF-8 without control characters, trimmed; "" when none */
};

/* Look on partition p of s (NTFS: the hive; ext2/3/4: /etc/hostname; anything else: not
 * looked at). 1 found (*h filled), 0 not found (*h zeroed). */
int oshost_probe(struct source *s, const struct partition *p, struct oshost *h);

/* The first found on the disks paths[0..n), in that order, partitions in table order; each
 * disk opened read-only here and closed again. 1 found, 0 not found (*h zeroed). */
int oshost_find(const char *const *paths, size_t n, struct oshost *h);

/* ComputerName of the current control set of a SYSTEM hive given as bytes (the parser's
 * fuzz entry: hive may hold anything). 1 found (out filled), 0 not. */
int oshost_hive_name(const void *hive, size_t len, char *out, size_t outsz);

/* "Windows", "Linux" (text), or "windows", "linux" (JSON, lower); NULL for OSHOST_NONE. */
const char *oshost_os_name(enum oshost_os os);
const char *oshost_os_id(enum oshost_os os);

#endif
