/* fmtdrive.c - see fmtdrive.h. */
#define _GNU_SOURCE
#include "fmtdrive.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "chunk.h"
#include "dest.h"
#include "util.h"

static int deliver(struct fmt_writer *w, const uint8_t *disk, uint64_t vsize, struct chunk *c, size_t cap)
{
	for (uint64_t off = 0; off < vsize; off += CHUNK_SIZE) {
		uint32_t len = (uint32_t)MIN((uint64_t)CHUNK_SIZE, vsize - off);
		uint32_t mask = fmt_chunk_mapped_mask(w->map, off, len);
		if (!mask)
			continue;
		memset(c->data, 0, CHUNK_SIZE);
		for (size_t i = extmap_find(w->map, off); i < w->map->n && w->map->v[i].start < off + len; i++) {
			uint64_t s = MAX(w->map->v[i].start, off);
			uint64_t e = MIN(w->map->v[i].start + w->map->v[i].len, off + len);
			memcpy(c->data + (s - off), disk + s, e - s);
		}
		c->off = off;
		c->len = len;
		c->mapped = mask;
		c->out_cap = cap;
		c->out_len = 0;
		chunk_analyze(c);
		if (w->ops->encode)
			w->ops->encode(w, c);
		if (w->ops->write(w, c) < 0)
			return -1;
		c->seq++;
	}
	return 0;
}

int fmtdrive_write(const struct fmt_ops *ops, const char *path, const uint8_t *disk,
		   uint64_t vsize, uint32_t lsec, const struct extmap *map, char sha_hex[65])
{
	struct sink *sink;
	unlink(path);
	if (sink_open(&sink, path, &(struct dest_options){ .force = true }) < 0)
		return -1;
	struct fmt_writer w = { .ops = ops, .sink = sink, .vsize = vsize, .lsec = lsec, .map = map };
	size_t cap = ops->out_capacity ? ops->out_capacity() : 0;
	struct chunk c = { .data = xmalloc(CHUNK_SIZE), .out = cap ? xmalloc(cap) : NULL };
	int r = -1;
	if (ops->open(&w) < 0 || deliver(&w, disk, vsize, &c, cap) < 0 || ops->finish(&w) < 0)
		goto out;
	if (sink_finish(sink) < 0 || sink_publish(sink, ".manifest.json", "{}\n", 3) < 0)
		goto out;
	if (sha_hex)
		hex_encode(sink->sha256, 32, sha_hex);
	r = 0;
out:
	if (ops->free)
		ops->free(&w);
	sink_free(sink);
	free(c.data);
	free(c.out);
	return r;
}

uint8_t *fmtdrive_read(const struct fmt_ops *ops, const char *path, uint64_t *vsize)
{
	struct stat st;
	struct fmt_reader r = { .fd = open(path, O_RDONLY) };
	if (r.fd < 0 || fstat(r.fd, &st) < 0) {
		error("open '%s': %m", path);
		return NULL;
	}
	r.file_size = (uint64_t)st.st_size;
	if (ops->read_open(&r) != 1) {
		error("'%s' not recognised as %s", path, ops->name);
		close(r.fd);
		return NULL;
	}
	uint8_t *buf = xcalloc(1, r.vsize);
	for (uint64_t off = 0; off < r.vsize; off += CHUNK_SIZE) {
		size_t len = (size_t)MIN((uint64_t)CHUNK_SIZE, r.vsize - off);
		int k = ops->read(&r, buf + off, off, len);
		if (k < 0) {
			free(buf);
			buf = NULL;
			break;
		}
		if (k == 1)
			memset(buf + off, 0, len);
	}
	*vsize = r.vsize;
	ops->read_close(&r);
	close(r.fd);
	return buf;
}
