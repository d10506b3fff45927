/* file.c - local file destination (a local disk, a USB disk, or a kernel-mounted share).
 * The image is written to PATH.partial with holes for zero runs, and only renamed to
 * PATH after the manifest beside it is safely on disk. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dest.h"
#include "util.h"

struct file_dest {
	int fd;
	char *path;       /* final name */
	char *tmp;        /* PATH.partial */
	uint64_t off;     /* current write offset */
	uint64_t flushed; /* writeback started up to here */
};

/* Start writeback every so often so the final fsync is short and dirty pages do not
 * pile up in the small RAM of the live image. */
#define FILE_WRITEBACK_STEP (64u << 20)

static int file_write(struct sink *s, const void *buf, size_t len)
{
	struct file_dest *f = s->priv;
	if (pwrite_full(f->fd, buf, len, f->off) < 0)
		return error("write '%s' at offset %llu: %m%s", f->tmp, (unsigned long long)f->off,
			     errno == ENOSPC ? " (destination is full: free space or choose another destination)" : "");
	f->off += len;
	if (f->off - f->flushed >= FILE_WRITEBACK_STEP) {
		sync_file_range(f->fd, (off_t)f->flushed, (off_t)(f->off - f->flushed), SYNC_FILE_RANGE_WRITE);
		f->flushed = f->off;
	}
	return 0;
}

static int file_skip(struct sink *s, uint64_t len)
{
	struct file_dest *f = s->priv;
	f->off += len;
	return 0;
}

static int fsync_dir_of(const char *path)
{
	CLEANUP_FREE char *copy = xstrdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

static int file_finish(struct sink *s)
{
	struct file_dest *f = s->priv;
	/* A trailing hole only exists once the size is set. */
	if (ftruncate(f->fd, (off_t)f->off) < 0)
		return error("set size of '%s': %m", f->tmp);
	if (fsync(f->fd) < 0)
		return error("flush '%s' to disk: %m", f->tmp);
	return 0;
}

static int write_file_atomic(const char *path, const void *buf, size_t len)
{
	CLEANUP_FREE char *tmp = xasprintf("%s.partial", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return error("create '%s': %m", tmp);
	if (write_full(fd, buf, len) < 0 || fsync(fd) < 0) {
		error("write '%s': %m", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		error("rename '%s' to '%s': %m", tmp, path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int file_publish(struct sink *s, const char *suffix, const void *buf, size_t len)
{
	struct file_dest *f = s->priv;
	CLEANUP_FREE char *beside = suffix ? xasprintf("%s%s", f->path, suffix) : NULL;
	if (beside && write_file_atomic(beside, buf, len) < 0)
		return -1;
	if (rename(f->tmp, f->path) < 0) {
		error("rename '%s' to '%s': %m", f->tmp, f->path);
		if (beside)
			unlink(beside);
		return -1;
	}
	fsync_dir_of(f->path);
	return 0;
}

static void file_abort(struct sink *s)
{
	struct file_dest *f = s->priv;
	if (f->fd >= 0 && f->tmp)
		unlink(f->tmp);
}

static int file_readback(struct sink *s, uint8_t sha256[32])
{
	struct file_dest *f = s->priv;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error("read back '%s': %m", f->path);
	/* Drop our own cached pages first, so the disk (or share) is what gets read. */
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	enum { STEP = 1 << 20 };
	CLEANUP_FREE uint8_t *buf = xmalloc(STEP);
	ssize_t n;
	while ((n = read(fd, buf, STEP)) > 0)
		EVP_DigestUpdate(md, buf, (size_t)n);
	int saved = errno;
	close(fd);
	unsigned int len = 0;
	EVP_DigestFinal_ex(md, sha256, &len);
	EVP_MD_CTX_free(md);
	errno = saved;
	return n < 0 ? error("read back '%s': %m", f->path) : 0;
}

static void file_free(struct sink *s)
{
	struct file_dest *f = s->priv;
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f->tmp);
	free(f);
	s->priv = NULL;
}

static const struct sink_ops file_ops = {
	.name = "file",
	.write = file_write,
	.skip = file_skip,
	.finish = file_finish,
	.publish = file_publish,
	.abort = file_abort,
	.readback = file_readback,
	.free = file_free,
};

static int check_space(const char *tmp, int fd, uint64_t est_size)
{
	struct statvfs st;
	char need[32], have[32];
	if (fstatvfs(fd, &st) < 0)
		return 0;  /* cannot tell: the write will say */
	uint64_t avail = (uint64_t)st.f_bavail * st.f_frsize;
	if (avail < est_size)
		return error("not enough space for '%s': need about %s, %s free; free space or choose another destination",
			     tmp, fmt_size(est_size, need, sizeof need), fmt_size(avail, have, sizeof have));
	return 0;
}

int dest_file_open(struct sink *s, const char *path, const struct dest_options *o)
{
	struct stat st;
	if (!o->force && stat(path, &st) == 0)
		return error("'%s' already exists: choose another name or pass --force to replace it", path);
	struct file_dest *f = xcalloc(1, sizeof *f);
	f->path = xstrdup(path);
	f->tmp = xasprintf("%s.partial", path);
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	s->ops = &file_ops;
	s->priv = f;
	s->display = xstrdup(path);
	if (f->fd < 0) {
		error("create '%s': %m (check the folder exists and is writable)", f->tmp);
		file_free(s);
		return -1;
	}
	if (check_space(f->tmp, f->fd, o->est_size) < 0) {
		file_abort(s);
		file_free(s);
		return -1;
	}
	return 0;
}
