/* pipeline.h - the copy stage: reader -> workers -> writer over a fixed pool of chunk
 * slots, so memory is the same for any disk size. The reader reads mapped ranges in
 * disk order; workers detect zero blocks, hash and encode in parallel; the calling
 * thread writes chunks in order to the format and folds hashes into the content digest. */
#ifndef COLDCLONE_PIPELINE_H
#define COLDCLONE_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "extmap.h"
#include "format.h"
#include "source.h"

struct pipeline_stats {
	uint64_t bytes_total;     /* mapped bytes to read */
	uint64_t bytes_read;      /* mapped bytes read so far */
	uint64_t bytes_stored;    /* bytes of non-zero blocks handed to the format */
	uint64_t chunks_written;
	bool source_failed;       /* the error came from reading the source */
};

/* Called by the writer thread about every progress_interval seconds and at the end. */
typedef void (*pipeline_progress_fn)(const struct pipeline_stats *st, void *opaque, int final);

struct pipeline_params {
	struct source *src;
	const struct extmap *map;       /* normalized */
	struct fmt_writer *writer;      /* opened */
	struct content_digest *digest;  /* initialised */
	unsigned workers;               /* 0 = one per online CPU */
	pipeline_progress_fn progress;  /* may be NULL */
	void *progress_opaque;
	double progress_interval;       /* seconds */
	volatile sig_atomic_t *stop;    /* set by a signal handler to interrupt */
};

/* Returns 0, -1 on an error (message printed), or -2 when interrupted via *stop. */
int pipeline_run(const struct pipeline_params *pp, struct pipeline_stats *st);

#endif
