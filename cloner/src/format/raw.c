/* raw.c - raw disk image: byte i of the file is byte i of the disk. Zero and unmapped
 * blocks become holes, so the file is sparse; the size is set at the end. Its reader
 * accepts any file, so it must be tried last. */
#include <errno.h>
#include <string.h>

#include "format.h"
#include "util.h"

static int raw_open(struct fmt_writer *w)
{
	w->image_vsize = w->vsize;
	return 0;
}

static int raw_write(struct fmt_writer *w, const struct chunk *c)
{
	struct sink *s = w->sink;
	if (c->off > s->pos && sink_zero(s, c->off - s->pos) < 0)
		return -1;
	return fmt_write_chunk_blocks(s, c);
}

static int raw_finish(struct fmt_writer *w)
{
	return w->vsize > w->sink->pos ? sink_zero(w->sink, w->vsize - w->sink->pos) : 0;
}

static int raw_read_open(struct fmt_reader *r)
{
	r->vsize = r->file_size;
	r->lsec = 512;
	return 1;
}

static int raw_read(struct fmt_reader *r, void *buf, uint64_t off, size_t len)
{
	if (pread_full(r->fd, buf, len, off) < 0)
		return error("read raw image at offset %llu: %m", (unsigned long long)off);
	return 0;
}

static void raw_read_close(struct fmt_reader *r)
{
	(void)r;
}

const struct fmt_ops fmt_raw = {
	.name = "raw",
	.ext = "raw",
	.description = "raw sparse disk image (KVM, OpenStack, dd to a disk)",
	.caps = FMT_CAN_4K | FMT_FULL_SIZE,
	.max_vsize = UINT64_MAX / 2,
	.open = raw_open,
	.write = raw_write,
	.finish = raw_finish,
	.read_open = raw_read_open,
	.read = raw_read,
	.read_close = raw_read_close,
};
