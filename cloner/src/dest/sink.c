/* sink.c - the destination-independent half of a sink: the running SHA-256 of the
 * image, position tracking, zero runs, and choosing the implementation by URL scheme. */
#include "sink.h"

#include <string.h>
#include <strings.h>

#include "dest.h"
#include "imagehash.h"
#include "util.h"

typedef int (*dest_open_fn)(struct sink *s, const char *dest, const struct dest_options *o);

static const struct {
	const char *prefix;
	dest_open_fn open;
} schemes[] = {
	{ "http://", dest_http_open },   { "https://", dest_http_open }, { "s3://", dest_s3_open },
	{ "sftp://", dest_sftp_open },   { "smb://", dest_share_open },  { "cifs://", dest_share_open },
	{ "nfs://", dest_share_open },
};

static dest_open_fn pick_destination(const char **dest)
{
	if (strncmp(*dest, "file://", 7) == 0) {
		*dest += 7;
		return dest_file_open;
	}
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
		if (strncasecmp(*dest, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
			return schemes[i].open;
	return strstr(*dest, "://") ? NULL : dest_file_open;
}

int sink_open(struct sink **out, const char *dest, const struct dest_options *o)
{
	*out = NULL;
	dest_open_fn open_fn = pick_destination(&dest);
	if (!open_fn) {
		const char *colon = strstr(dest, "://");
		return error("destination '%.*s://...' is not supported: use a local path, http(s)://, s3://, "
			     "sftp://, smb:// or nfs://",
			     (int)(colon - dest), dest);
	}
	struct sink *s = xcalloc(1, sizeof *s);
	if (open_fn(s, dest, o) < 0) {
		free(s->display);
		free(s);
		return -1;
	}
	s->sha = image_hash_new();
	if (!s->sha) {
		sink_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

int sink_write(struct sink *s, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (s->ops->write(s, buf, len) < 0)
		return -1;
	image_hash_data(s->sha, buf, len);
	s->pos += len;
	return 0;
}

static const uint8_t zeros[1 << 16];

int sink_zero(struct sink *s, uint64_t len)
{
	if (s->ops->skip) {
		if (s->ops->skip(s, len) < 0)
			return -1;
		image_hash_zeros(s->sha, len);
		s->pos += len;
		return 0;
	}
	for (uint64_t left = len; left; ) {
		size_t n = (size_t)MIN(left, sizeof zeros);
		if (sink_write(s, zeros, n) < 0)
			return -1;
		left -= n;
	}
	return 0;
}

int sink_pad(struct sink *s, uint64_t align)
{
	uint64_t r = s->pos % align;
	return r ? sink_zero(s, align - r) : 0;
}

int sink_finish(struct sink *s)
{
	if (s->ops->finish(s) < 0)
		return -1;
	image_hash_final(s->sha, s->sha256);
	s->sha = NULL;
	s->finished = true;
	return 0;
}

int sink_publish(struct sink *s, const char *suffix, const void *buf, size_t len)
{
	if (!s->finished)
		return error("internal: publish before finish on '%s'", s->display);
	if (s->ops->publish(s, suffix, buf, len) < 0)
		return -1;
	s->published = true;
	return 0;
}

int sink_store_file(const char *dest, const void *buf, size_t len, const struct dest_options *o)
{
	struct dest_options small = *o;
	small.est_size = len;
	struct sink *s;
	if (sink_open(&s, dest, &small) < 0)
		return -1;
	int r = sink_write(s, buf, len) < 0 || sink_finish(s) < 0 || sink_publish(s, NULL, NULL, 0) < 0 ? -1 : 0;
	sink_free(s);
	return r;
}

const char *sink_name(const struct sink *s)
{
	return s->display;
}

void sink_free(struct sink *s)
{
	if (!s)
		return;
	if (!s->published)
		s->ops->abort(s);
	s->ops->free(s);
	image_hash_free(s->sha);
	free(s->display);
	free(s);
}
