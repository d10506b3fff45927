/* fmtdrive.h - drive an image format writer/reader serially, without the pipeline, so a
 * unit test can check one format against qemu-img on synthetic data. */
#ifndef FMTDRIVE_H
#define FMTDRIVE_H

#include <stdint.h>

#include "extmap.h"
#include "format.h"

/* Write an image of the virtual disk `disk` (vsize bytes, lsec-byte sectors) to path,
 * delivering every chunk the normalized map touches, with unmapped bytes zeroed.
 * Returns 0 or -1. The image's sha256 (hex) goes to sha_hex when not NULL. */
int fmtdrive_write(const struct fmt_ops *ops, const char *path, const uint8_t *disk,
		   uint64_t vsize, uint32_t lsec, const struct extmap *map, char sha_hex[65]);
/* Read the whole virtual disk of the image at path through ops' reader into a new
 * buffer (*vsize set). Returns the buffer or NULL. */
uint8_t *fmtdrive_read(const struct fmt_ops *ops, const char *path, uint64_t *vsize);

#endif
