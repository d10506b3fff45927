/* dest.h - constructors of the sink implementations in src/dest/. Each fills s->ops,
 * s->display and s->priv, checks it can write (and has space for est_size bytes where
 * the destination can tell) before any data is read from the source. */
#ifndef COLDCLONE_DEST_H
#define COLDCLONE_DEST_H

#include <stdbool.h>
#include <stdint.h>

#include "sink.h"

int dest_file_open(struct sink *s, const char *path, uint64_t est_size, bool force);

#endif
