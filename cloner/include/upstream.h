/* upstream.h - one long upload (HTTP PUT, SFTP) fed piece by piece from the sink.
 *
 * libcurl pulls the body through a read callback; the pipeline pushes bytes as it makes
 * them. Between them sits a bounded ring buffer and a transfer thread, so the network
 * overlaps with reading and compressing, and a stalled network stops the pipeline
 * (backpressure) instead of growing memory. Bytes already handed to libcurl stay in the
 * ring until room is needed: after a dropped connection the protocol asks the server how
 * much it holds and, when that is still in the ring, the upload resumes from there. */
#ifndef COLDCLONE_UPSTREAM_H
#define COLDCLONE_UPSTREAM_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "dest.h"

struct upstream;

struct upstream_proto {
	/* Prepare the handle for a transfer that starts at byte `from` of the image (0: a
	 * fresh upload). Called in the transfer thread before each attempt. */
	int (*setup)(void *ctx, CURL *c, uint64_t from);
	/* After an attempt failed with a retryable error: how many bytes the server now holds
	 * (the resume point), or -1 when the protocol cannot resume. May use its own handle. */
	int64_t (*confirmed)(void *ctx);
	/* After an attempt ended: 0 when the server accepted it, else -1 with an error. Only
	 * called when libcurl reported success. */
	int (*check)(void *ctx, CURL *c);
};

/* Start the transfer thread. ring_size bytes of buffer (at least 1 MiB). */
struct upstream *upstream_start(const struct upstream_proto *p, void *ctx, const struct dest_options *o,
				const char *display, size_t ring_size);
/* Append len bytes; blocks while the ring is full. -1 when the upload has failed (the
 * error was printed). */
int upstream_push(struct upstream *u, const void *buf, size_t len);
/* No more bytes: wait for the server's answer. 0 on success. */
int upstream_finish(struct upstream *u);
/* Stop the thread (if running) and free. Safe at any point. */
void upstream_free(struct upstream *u);
/* After a failure: true when the connection was lost and the protocol could not continue
 * (as opposed to a refusal by the server): sending everything again may work. */
bool upstream_restartable(const struct upstream *u);
/* How many times the transfer was resumed (for the summary and the manifest). */
unsigned upstream_resumes(const struct upstream *u);

#endif
