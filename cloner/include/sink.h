/* sink.h - where image bytes go: a byte stream written strictly front to back.
 * The sink hashes everything it emits (the image's SHA-256 = `sha256sum FILE` at the
 * destination) and keeps the image under a temporary name until sink_commit().
 * One implementation per destination in src/dest/. */
#ifndef COLDCLONE_SINK_H
#define COLDCLONE_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sink;
struct image_hash;

struct sink_ops {
	const char *name;
	/* Write len bytes at the current end. */
	int (*write)(struct sink *s, const void *buf, size_t len);
	/* Advance by len zero bytes; NULL means zeros are written. A file leaves a hole. */
	int (*skip)(struct sink *s, uint64_t len);
	/* All bytes are in: flush and make them durable, still under the temporary name. */
	int (*finish)(struct sink *s);
	/* Store a small file beside the image (the manifest) atomically, then move the image
	 * to its final name: an interrupted clone never leaves a finished-looking image.
	 * suffix NULL: no file beside, only the move (sink_store_file). */
	int (*publish)(struct sink *s, const char *suffix, const void *buf, size_t len);
	/* Remove whatever was written (temporary name). Safe after a failure. */
	void (*abort)(struct sink *s);
	/* Optional (--verify): read the published image back from the destination and
	 * compute its SHA-256. */
	int (*readback)(struct sink *s, uint8_t sha256[32]);
	/* Free resources; after publish or abort. */
	void (*free)(struct sink *s);
};

struct sink {
	const struct sink_ops *ops;
	uint64_t pos;           /* bytes emitted so far */
	struct image_hash *sha; /* SHA-256 of everything emitted (imagehash.h) */
	uint8_t sha256[32];     /* set by sink_finish */
	char *display;          /* destination for messages, without credentials */
	bool finished;          /* sink_finish succeeded */
	bool published;         /* sink_publish succeeded: nothing to clean up */
	bool tls_insecure;      /* TLS verification was off (--insecure): the manifest says so */
	unsigned resumes;       /* uploads resumed after a dropped connection */
	bool restartable;       /* the upload was lost and cannot be continued, but sending
	                         * the whole image again may work (HTTP PUT) */
	void *priv;
};

struct dest_options;
/* Open a destination (path or URL) for writing an image of about o->est_size bytes:
 * connects, authenticates and checks space before returning. */
int sink_open(struct sink **out, const char *dest, const struct dest_options *o);
int sink_write(struct sink *s, const void *buf, size_t len);
int sink_zero(struct sink *s, uint64_t len);
/* Pad with zeros up to the next multiple of align. */
int sink_pad(struct sink *s, uint64_t align);
int sink_finish(struct sink *s);
int sink_publish(struct sink *s, const char *suffix, const void *buf, size_t len);
/* Store a small whole file (a VM descriptor, a machine manifest) at dest, through the
 * same destination code as images: written under a temporary name, then moved. */
int sink_store_file(const char *dest, const void *buf, size_t len, const struct dest_options *o);
/* Final name of the image for the manifest (display form). */
const char *sink_name(const struct sink *s);
/* Abort (when not published) and free; accepts NULL. */
void sink_free(struct sink *s);

#endif
