/* registry.c - the table of filesystem allocation mappers, looked up by blkid TYPE.
 * Adding a filesystem is one entry here; anything not listed is copied whole. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"

static const struct fs_ops *const fs_all[] = { &fs_ntfs, &fs_ext, &fs_fat, &fs_swap };

const struct fs_ops *fs_find(const char *blkid_type)
{
	if (!blkid_type || !blkid_type[0])
		return NULL;
	for (size_t i = 0; i < sizeof fs_all / sizeof fs_all[0]; i++)
		for (const char *const *t = fs_all[i]->blkid_types; t && *t; t++)
			if (strcmp(*t, blkid_type) == 0)
				return fs_all[i];
	return NULL;
}

int fs_fallback(struct partition *p, enum fs_state st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof p->reason, fmt, ap);
	va_end(ap);
	p->state = st;
	return FS_FALLBACK;
}
