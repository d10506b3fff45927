/* cmd_verify.c - `coldclone digest` (content digest of raw content from a file or
 * stdin) and `coldclone verify` (decode one of our images itself and check both the
 * image SHA-256 and the content digest against the manifest beside it). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "chunk.h"
#include "commands.h"
#include "digest.h"
#include "format.h"
#include "manifest.h"
#include "util.h"

/* Read up to n bytes, looping over short reads (pipes); returns bytes read or -1. */
static ssize_t read_some(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* A sparse file's holes read as zero: skip whole chunks of hole without reading them,
 * so the digest of a mostly empty image costs what its data costs. */
static bool chunk_is_hole(int fd, uint64_t off, uint64_t file_size)
{
	if (off >= file_size)
		return false;  /* a pipe (size 0), or the end: read normally */
	off_t data = lseek(fd, (off_t)off, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO;  /* no data after off */
	return (uint64_t)data >= off + CHUNK_SIZE;
}

static ssize_t pread_or_read(int fd, uint8_t *buf, size_t n, uint64_t off)
{
	if (lseek(fd, (off_t)off, SEEK_SET) < 0 && errno != ESPIPE)
		return -1;
	return read_some(fd, buf, n);
}

static void digest_chunk(struct content_digest *d, uint64_t off, const uint8_t *buf, size_t len)
{
	uint8_t h[CHUNK_HASH_LEN];
	if (buf_is_zero(buf, len))
		return;
	chunk_hash(buf, len, h);
	content_digest_add(d, off, (uint32_t)len, h);
}

int cmd_digest(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "-";
	if (argc > 2 || strcmp(path, "--help") == 0) {
		print_help("digest");
		return argc > 2 ? EXIT_USAGE : EXIT_OK;
	}
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		error("open '%s': %m", path);
		return EXIT_SOURCE;
	}
	struct content_digest d;
	if (content_digest_init(&d) < 0)
		return EXIT_INTERNAL;
	struct stat st;
	uint64_t file_size = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	uint8_t *buf = xaligned_alloc(4096, CHUNK_SIZE);
	uint64_t off = 0;
	int r = EXIT_OK;
	for (;;) {
		if (chunk_is_hole(fd, off, file_size)) {
			off += CHUNK_SIZE;
			continue;
		}
		ssize_t n = pread_or_read(fd, buf, CHUNK_SIZE, off);
		if (n < 0) {
			error("read '%s' at offset %llu: %m", path, (unsigned long long)off);
			r = EXIT_SOURCE;
			break;
		}
		if (n == 0)
			break;
		digest_chunk(&d, off, buf, (size_t)n);
		off += (uint64_t)n;
		if ((size_t)n < CHUNK_SIZE)
			break;
	}
	free(buf);
	if (fd != STDIN_FILENO)
		close(fd);
	if (r != EXIT_OK) {
		content_digest_release(&d);
		return r;
	}
	char hex[65];
	content_digest_final(&d, hex);
	printf("%s\n", hex);
	return EXIT_OK;
}

static int file_sha256(int fd, char hex[65])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = xmalloc(CHUNK_SIZE), md[32];
	unsigned int mdlen;
	uint64_t off = 0;
	int r = 0;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (;;) {
		ssize_t n = pread(fd, buf, CHUNK_SIZE, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = error("read image at offset %llu: %m", (unsigned long long)off);
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += (uint64_t)n;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	hex_encode(md, 32, hex);
	EVP_MD_CTX_free(ctx);
	free(buf);
	return r;
}

/* Detect which of our formats fd holds; raw is the fallback. */
static const struct fmt_ops *detect_format(struct fmt_reader *r, const char *path)
{
	for (size_t i = 0; fmt_all[i]; i++) {
		const struct fmt_ops *ops = fmt_all[i];
		if (ops == &fmt_raw || !ops->read_open)
			continue;
		int k = ops->read_open(r);
		if (k < 0) {
			error("'%s' looks like %s but is damaged", path, ops->name);
			return NULL;
		}
		if (k == 1)
			return ops;
	}
	return fmt_raw.read_open(r) == 1 ? &fmt_raw : NULL;
}

static int image_content_digest(const struct fmt_ops *ops, struct fmt_reader *r, char hex[65])
{
	struct content_digest d;
	uint8_t *buf = xaligned_alloc(4096, CHUNK_SIZE);
	int ret = 0;
	if (content_digest_init(&d) < 0) {
		free(buf);
		return -1;
	}
	for (uint64_t off = 0; off < r->vsize; off += CHUNK_SIZE) {
		size_t len = (size_t)MIN((uint64_t)CHUNK_SIZE, r->vsize - off);
		int k = ops->read(r, buf, off, len);
		if (k < 0) {
			ret = -1;
			break;
		}
		if (k == 0)
			digest_chunk(&d, off, buf, len);
	}
	free(buf);
	if (ret < 0)
		content_digest_release(&d);
	else
		content_digest_final(&d, hex);
	return ret;
}

int cmd_verify(int argc, char **argv)
{
	if (argc < 2 || argc > 3 || strcmp(argv[1], "--help") == 0) {
		print_help("verify");
		return argc == 2 ? EXIT_OK : EXIT_USAGE;
	}
	const char *image = argv[1];
	CLEANUP_FREE char *mpath = argc == 3 ? xstrdup(argv[2]) : xasprintf("%s.manifest.json", image);
	struct manifest_check m = { 0 };
	if (manifest_load(mpath, &m) < 0)
		return EXIT_VERIFY;
	struct stat st;
	struct fmt_reader r = { .fd = open(image, O_RDONLY | O_CLOEXEC) };
	if (r.fd < 0 || fstat(r.fd, &st) < 0) {
		error("open image '%s': %m", image);
		return EXIT_SOURCE;
	}
	r.file_size = (uint64_t)st.st_size;
	char sha[65], digest[65];
	int rc = EXIT_VERIFY;
	const struct fmt_ops *ops = detect_format(&r, image);
	if (!ops)
		goto out;
	if (strcmp(ops->name, m.format) != 0 && !(strcmp(m.format, "vhd-fixed") == 0 && ops == &fmt_vhd_fixed))
		warning("'%s' decodes as %s but the manifest says %s", image, ops->name, m.format);
	/* A manifest from a coldclone whose digest algorithm differs: its image SHA-256 still
	 * proves the file, but comparing digests would report a false mismatch. */
	bool same_algorithm = strcmp(m.digest_algorithm, CONTENT_DIGEST_ALGORITHM) == 0;
	if (file_sha256(r.fd, sha) < 0 || (same_algorithm && image_content_digest(ops, &r, digest) < 0))
		goto close;
	bool sha_ok = strcmp(sha, m.image_sha256) == 0 && r.file_size == m.image_size;
	bool digest_ok = !same_algorithm || strcmp(digest, m.content_digest) == 0;
	printf("image sha256   %s  %s\n", sha, sha_ok ? "OK" : "MISMATCH");
	if (same_algorithm)
		printf("content digest %s  %s\n", digest, digest_ok ? "OK" : "MISMATCH");
	else
		printf("content digest not checked: the manifest's is '%s', this coldclone computes '%s'\n",
		       m.digest_algorithm, CONTENT_DIGEST_ALGORITHM);
	if (!sha_ok)
		error("'%s': image SHA-256 (or size) differs from the manifest: the file was changed or damaged in transfer; copy it again", image);
	if (!digest_ok)
		error("'%s': disk content differs from the manifest's digest: do not use this image", image);
	rc = sha_ok && digest_ok ? EXIT_OK : EXIT_VERIFY;
close:
	ops->read_close(&r);
out:
	close(r.fd);
	return rc;
}
