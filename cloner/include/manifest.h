/* manifest.h - FILE.manifest.json: what was cloned, how, and the checksums that prove
 * it (README "Manifest"). Rendered with json-c; loaded back by `coldclone verify`. */
#ifndef COLDCLONE_MANIFEST_H
#define COLDCLONE_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>

#include "extmap.h"
#include "layout.h"
#include "source.h"

struct clone_record {
	const struct source *src;
	const struct layout *layout;
	const char *format;
	const char *image_path;       /* display form, no credentials */
	uint64_t image_size;          /* bytes of the image file */
	uint64_t image_vsize;         /* virtual size recorded in the image */
	const uint8_t *image_sha256;  /* 32 bytes */
	const char *content_digest;   /* 64 hex */
	uint64_t bytes_mapped;        /* planned reads */
	uint64_t bytes_read;
	uint64_t bytes_stored;
	const struct extmap *unreadable;
	const char *started, *finished;
	double seconds;
	bool all_blocks;
	const char *dest_kind;        /* sink type: file, http, s3, sftp, share */
	bool tls_insecure;            /* --insecure was used */
	unsigned resumes;             /* uploads resumed after dropped connections */
};

/* Returns a malloc'd JSON document (ending in a newline). */
char *manifest_render(const struct clone_record *r);

struct manifest_check {
	char format[32];
	char image_sha256[65];
	char content_digest[65];
	char digest_algorithm[128];
	uint64_t image_size;
	uint64_t virtual_size;        /* source size */
};

/* Load the fields verify needs; -1 with a message when missing or malformed. */
int manifest_load(const char *path, struct manifest_check *m);

#endif
