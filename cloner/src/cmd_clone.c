/* cmd_clone.c - `coldclone clone`: prepare (open, layout, extent map, destination),
 * copy (the pipeline), finish (seal the image, manifest, publish). Every check that can
 * fail runs in prepare, before the first data block is read. */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "dest.h"
#include "digest.h"
#include "format.h"
#include "layout.h"
#include "manifest.h"
#include "net.h"
#include "pipeline.h"
#include "progress.h"
#include "sink.h"
#include "source.h"
#include "util.h"

struct clone_opts {
	const char *source;
	const char *output;
	char *output_shown;        /* output without any password, for messages */
	const char *format;
	bool all_blocks;
	bool force;
	enum progress_mode progress;
	uint64_t max_unreadable;   /* sectors; UINT64_MAX = no limit */
	uint32_t sector_size;      /* 0 = detect */
	unsigned workers;
	int compress_level;        /* vmdk-stream deflate level; 0 = default */
	bool verify;               /* read the image back from the destination */
	struct dest_options dest;  /* TLS, credentials, S3, SSH, retries */
};

struct clone_job {
	struct clone_opts o;
	struct source src;
	struct layout layout;
	struct extmap map;
	const struct fmt_ops *fmt;
	struct sink *sink;
	struct fmt_writer w;
	struct progress prog;
	struct content_digest digest;
	struct pipeline_stats stats;
	char started[32];
	double t0;
};

/* Keep a private copy of a destination URL and blank any password in the original
 * argument, so `ps` and /proc/PID/cmdline stop showing it. (COLDCLONE_PASSWORD or
 * --password-file never expose it at all.) */
static const char *take_secret_url(char *arg)
{
	static char *copies[4];
	static size_t ncopies;
	char *copy = xstrdup(arg);
	if (ncopies < sizeof copies / sizeof copies[0])
		copies[ncopies++] = copy;  /* lives until exit, like argv */
	const char *sep = strstr(arg, "://");
	if (sep) {
		char *auth = (char *)sep + 3;
		char *end = auth + strcspn(auth, "/?#");
		char *at = NULL;
		for (char *p = auth; p < end; p++)
			if (*p == '@')
				at = p;
		char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		for (char *p = colon ? colon + 1 : at; colon && p < at; p++)
			*p = '*';
	}
	return copy;
}

static int parse_opts(int argc, char **argv, struct clone_opts *o)
{
	static const struct option longopts[] = {
		{ "source", required_argument, NULL, 's' }, { "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' }, { "all-blocks", no_argument, NULL, 'a' },
		{ "progress", required_argument, NULL, 'p' }, { "force", no_argument, NULL, 'F' },
		{ "max-unreadable", required_argument, NULL, 'm' }, { "sector-size", required_argument, NULL, 'S' },
		{ "workers", required_argument, NULL, 'w' }, { "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ "compress-level", required_argument, NULL, 'c' }, { "verify", no_argument, NULL, 'V' },
		{ "ca-file", required_argument, NULL, 'C' }, { "insecure", no_argument, NULL, 'k' },
		{ "s3-endpoint", required_argument, NULL, 'E' }, { "s3-region", required_argument, NULL, 'R' },
		{ "ssh-fingerprint", required_argument, NULL, 'P' }, { "known-hosts", required_argument, NULL, 'K' },
		{ "ssh-key", required_argument, NULL, 'i' }, { "password-file", required_argument, NULL, 'W' },
		{ "retries", required_argument, NULL, 'r' }, { "timeout", required_argument, NULL, 't' },
		{ 0 },
	};
	uint64_t v;
	int c;
	*o = (struct clone_opts){ .progress = PROGRESS_PLAIN, .max_unreadable = UINT64_MAX,
				  .dest = { .retries = 8, .timeout = 60 } };
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:o:f:ap:Fm:S:w:qvhc:i:k", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o->source = optarg; break;
		case 'o':
			o->output = take_secret_url(optarg);
			free(o->output_shown);
			o->output_shown = url_redact(o->output);
			break;
		case 'V': o->verify = true; break;
		case 'C': o->dest.ca_file = optarg; break;
		case 'k': o->dest.insecure = true; break;
		case 'E': o->dest.s3_endpoint = optarg; break;
		case 'R': o->dest.s3_region = optarg; break;
		case 'P': o->dest.ssh_fingerprint = optarg; break;
		case 'K': o->dest.known_hosts = optarg; break;
		case 'i': o->dest.ssh_key = optarg; break;
		case 'W': o->dest.password_file = optarg; break;
		case 'r':
			if (parse_u64(optarg, &v) < 0 || v > 100)
				return error("--retries takes a number from 0 to 100, not '%s'", optarg);
			o->dest.retries = (unsigned)v;
			break;
		case 't':
			if (parse_u64(optarg, &v) < 0 || v < 5 || v > 3600)
				return error("--timeout takes seconds from 5 to 3600, not '%s'", optarg);
			o->dest.timeout = (unsigned)v;
			break;
		case 'f': o->format = optarg; break;
		case 'a': o->all_blocks = true; break;
		case 'F': o->force = true; break;
		case 'q': log_verbosity = 0; break;
		case 'v': log_verbosity = 2; break;
		case 'h': print_help("clone"); return 1;
		case 'p':
			if (progress_parse_mode(optarg, &o->progress) < 0)
				return error("--progress takes plain, json or none, not '%s'", optarg);
			break;
		case 'm':
			if (parse_u64(optarg, &o->max_unreadable) < 0)
				return error("--max-unreadable takes a number of sectors, not '%s'", optarg);
			break;
		case 'S':
			if (parse_u64(optarg, &v) < 0 || (v != 512 && v != 4096))
				return error("--sector-size takes 512 or 4096, not '%s'", optarg);
			o->sector_size = (uint32_t)v;
			break;
		case 'c':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 12)
				return error("--compress-level takes 1 (fastest) to 12 (smallest), not '%s'", optarg);
			o->compress_level = (int)v;
			break;
		case 'w':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 64)
				return error("--workers takes a number from 1 to 64, not '%s'", optarg);
			o->workers = (unsigned)v;
			break;
		default:
			return error("see 'coldclone help clone'");
		}
	}
	if (optind < argc)
		return error("unexpected argument '%s': see 'coldclone help clone'", argv[optind]);
	if (!o->source || !o->output)
		return error("clone needs --source DISK and --output FILE: see 'coldclone help clone'");
	return 0;
}

static int choose_format(struct clone_job *j)
{
	if (j->o.format) {
		j->fmt = fmt_by_name(j->o.format);
		if (!j->fmt)
			return error("unknown format '%s': use raw, qcow2, vmdk, vmdk-stream, vhdx, vhd or vhd-fixed", j->o.format);
	} else {
		j->fmt = fmt_by_path(j->o.output);
		if (!j->fmt)
			return error("cannot tell the image format from '%s': add --format (raw, qcow2, vmdk-stream, vmdk, vhdx, vhd, vhd-fixed) or use a known extension",
				     j->o.output_shown);
	}
	return 0;
}

static void describe_plan(struct clone_job *j)
{
	char line[512], used[32], size[32];
	for (size_t i = 0; i < j->layout.nparts; i++) {
		const struct partition *p = &j->layout.parts[i];
		if (p->container)
			continue;
		snprintf(line, sizeof line, "partition %u (%s, %s): %s, %s to read - %s", p->number,
			 p->fs[0] ? p->fs : "no filesystem", fmt_size(p->size, size, sizeof size),
			 copy_method_name(p->method), fmt_size(p->used_bytes, used, sizeof used), p->reason);
		progress_stage(&j->prog, "prepare", line);
		if (p->state == FS_STATE_HIBERNATED || p->state == FS_STATE_DIRTY)
			warning("partition %u of '%s' is %s: %s", p->number, j->src.path, fs_state_name(p->state), p->reason);
	}
	snprintf(line, sizeof line, "%s to read of %s (%s table), image format %s",
		 fmt_size(extmap_bytes(&j->map), used, sizeof used), fmt_size(j->src.size, size, sizeof size),
		 j->layout.table, j->fmt->name);
	progress_stage(&j->prog, "prepare", line);
}

/* Everything that can fail before copying: source, layout, format limits, destination. */
static int prepare(struct clone_job *j)
{
	progress_init(&j->prog, j->o.progress, j->o.source);
	if (choose_format(j) < 0)
		return EXIT_USAGE;
	if (j->o.compress_level)
		vmdk_set_compression_level(j->o.compress_level);
	if (source_open(&j->src, j->o.source, j->o.sector_size) < 0)
		return EXIT_SOURCE;
	if (j->o.max_unreadable != UINT64_MAX)
		j->src.max_unreadable = j->o.max_unreadable * j->src.lsec;
	progress_stage(&j->prog, "prepare", "reading partition table and filesystem allocation maps");
	if (layout_read(&j->src, &j->layout) < 0 || layout_plan(&j->src, &j->layout, j->o.all_blocks, &j->map) < 0)
		return EXIT_SOURCE;
	describe_plan(j);
	if (j->src.size > j->fmt->max_vsize) {
		char sz[32];
		error("'%s' is %s, larger than the %s format can hold: choose vhdx, qcow2 or vmdk-stream",
		      j->src.path, fmt_size(j->src.size, sz, sizeof sz), j->fmt->name);
		return EXIT_DEST;
	}
	if (j->src.lsec == 4096 && !(j->fmt->caps & FMT_CAN_4K))
		warning("'%s' has 4096-byte sectors but %s images are 512-byte: the guest will see 512-byte sectors and a GPT written for 4096 will not match; prefer vhdx or qcow2",
		     j->src.path, j->fmt->name);
	/* Space estimate: the mapped bytes plus format metadata; compressed formats need less. */
	uint64_t est = extmap_bytes(&j->map) + j->src.size / 4096 + (4u << 20);
	if (j->fmt->caps & FMT_COMPRESSED)
		est /= 2;
	j->o.dest.est_size = est;
	j->o.dest.force = j->o.force;
	progress_stage(&j->prog, "prepare", "checking the destination");
	if (sink_open(&j->sink, j->o.output, &j->o.dest) < 0)
		return EXIT_DEST;
	j->w = (struct fmt_writer){ .ops = j->fmt, .sink = j->sink, .vsize = j->src.size,
				    .lsec = j->src.lsec, .map = &j->map };
	if (j->fmt->open(&j->w) < 0)
		return EXIT_DEST;
	if (content_digest_init(&j->digest) < 0)
		return EXIT_INTERNAL;
	return EXIT_OK;
}

static int copy(struct clone_job *j)
{
	struct pipeline_params pp = {
		.src = &j->src, .map = &j->map, .writer = &j->w, .digest = &j->digest,
		.workers = j->o.workers, .progress = progress_update, .progress_opaque = &j->prog,
		.progress_interval = 1.0, .stop = &interrupted,
	};
	progress_stage(&j->prog, "copy", j->o.output_shown);
	int r = pipeline_run(&pp, &j->stats);
	if (r == -2) {
		error("interrupted: the partial image was removed, nothing was left under '%s'", sink_name(j->sink));
		return EXIT_INTERRUPTED;
	}
	if (r < 0) {
		if (j->src.max_unreadable != UINT64_MAX && source_bad_bytes(&j->src) > j->src.max_unreadable)
			return EXIT_TOO_UNREADABLE;
		return j->stats.source_failed ? EXIT_SOURCE : EXIT_DEST;
	}
	return EXIT_OK;
}

/* --verify: read the image back from where it landed and compare with what was sent. */
static int verify_at_destination(struct clone_job *j)
{
	uint8_t back[32];
	char want[65], got[65];
	progress_stage(&j->prog, "verify", "reading the image back from the destination");
	if (!j->sink->ops->readback) {
		warning("--verify: reading back is not available for %s destinations; check with sha256sum "
			"against the manifest there", j->sink->ops->name);
		return 0;
	}
	if (j->sink->ops->readback(j->sink, back) < 0)
		return -1;
	hex_encode(j->sink->sha256, 32, want);
	hex_encode(back, 32, got);
	if (memcmp(back, j->sink->sha256, 32) != 0)
		return error("verify '%s': the image read back has SHA-256 %s but %s was sent: the copy at the "
			     "destination is damaged; run the clone again", sink_name(j->sink), got, want);
	info("verified: '%s' read back, SHA-256 %s matches", sink_name(j->sink), got);
	return 0;
}

static int finish(struct clone_job *j)
{
	char digest[65], finished[32];
	progress_stage(&j->prog, "finish", "writing image tables and manifest");
	if (j->fmt->finish(&j->w) < 0 || sink_finish(j->sink) < 0)
		return EXIT_DEST;
	content_digest_final(&j->digest, digest);
	utc_timestamp(finished, sizeof finished);
	struct clone_record rec = {
		.src = &j->src, .layout = &j->layout, .format = j->fmt->name, .image_path = sink_name(j->sink),
		.image_size = j->sink->pos, .image_vsize = j->w.image_vsize, .image_sha256 = j->sink->sha256,
		.content_digest = digest, .bytes_mapped = j->stats.bytes_total, .bytes_read = j->stats.bytes_read,
		.bytes_stored = j->stats.bytes_stored, .unreadable = &j->src.bad, .started = j->started,
		.finished = finished, .seconds = now_seconds() - j->t0, .all_blocks = j->o.all_blocks,
		.dest_kind = j->sink->ops->name, .tls_insecure = j->sink->tls_insecure, .resumes = j->sink->resumes,
	};
	CLEANUP_FREE char *json = manifest_render(&rec);
	if (sink_publish(j->sink, ".manifest.json", json, strlen(json)) < 0)
		return EXIT_DEST;
	if (j->o.verify && verify_at_destination(j) < 0)
		return EXIT_VERIFY;
	char sz[32], st[32];
	info("done: '%s' (%s, %s stored of %s read) in %.1f s; content digest %s", sink_name(j->sink), j->fmt->name,
	     fmt_size(j->stats.bytes_stored, st, sizeof st), fmt_size(j->stats.bytes_read, sz, sizeof sz),
	     rec.seconds, digest);
	if (j->w.image_vsize != j->src.size)
		info("note: the %s image's virtual size is %" PRIu64 " bytes, rounded up from the source's %" PRIu64,
		     j->fmt->name, j->w.image_vsize, j->src.size);
	if (j->src.bad.n) {
		warning("%zu unreadable range(s), %" PRIu64 " bytes, read as zero in the image: listed in the manifest",
		     j->src.bad.n, extmap_bytes(&j->src.bad));
		return EXIT_UNREADABLE;
	}
	return EXIT_OK;
}

/* HTTP PUT cannot continue a lost upload: send the whole image again, a bounded number
 * of times, reading the source again (it is not changing: nothing runs on it). */
#define WHOLE_RETRIES 2

static int restart_copy(struct clone_job *j, unsigned attempt)
{
	warning("'%s': the upload was lost and this server cannot continue it; copying again from the "
		"start (whole retry %u of %u)", sink_name(j->sink), attempt, WHOLE_RETRIES);
	if (j->fmt->free)
		j->fmt->free(&j->w);
	sink_free(j->sink);  /* deletes what was uploaded */
	j->sink = NULL;
	content_digest_release(&j->digest);
	pthread_mutex_lock(&j->src.bad_lock);
	extmap_release(&j->src.bad);
	extmap_init(&j->src.bad);
	pthread_mutex_unlock(&j->src.bad_lock);
	j->stats = (struct pipeline_stats){ 0 };
	j->o.dest.force = true;  /* what exists now is our own partial upload */
	if (sink_open(&j->sink, j->o.output, &j->o.dest) < 0)
		return EXIT_DEST;
	j->w = (struct fmt_writer){ .ops = j->fmt, .sink = j->sink, .vsize = j->src.size,
				    .lsec = j->src.lsec, .map = &j->map };
	if (j->fmt->open(&j->w) < 0)
		return EXIT_DEST;
	if (content_digest_init(&j->digest) < 0)
		return EXIT_INTERNAL;
	return EXIT_OK;
}

static int copy_with_retries(struct clone_job *j)
{
	int r = copy(j);
	for (unsigned attempt = 1; r == EXIT_DEST && j->sink->restartable && !interrupted; attempt++) {
		if (attempt > WHOLE_RETRIES) {
			error("'%s': gave up after %u whole retries: the connection keeps dropping; check the network, "
			      "or clone to SFTP, S3 or a share, which continue where they stopped",
			      sink_name(j->sink), WHOLE_RETRIES);
			break;
		}
		r = restart_copy(j, attempt);
		if (r == EXIT_OK)
			r = copy(j);
	}
	return r;
}

static void release(struct clone_job *j)
{
	free(j->o.output_shown);
	if (j->fmt && j->fmt->free)
		j->fmt->free(&j->w);
	sink_free(j->sink);  /* removes the partial image unless published */
	content_digest_release(&j->digest);
	extmap_release(&j->map);
	layout_release(&j->layout);
	source_close(&j->src);
}

int cmd_clone(int argc, char **argv)
{
	struct clone_job j = { 0 };
	int pr = parse_opts(argc, argv, &j.o);
	if (pr) {
		free(j.o.output_shown);
		return pr > 0 ? EXIT_OK : EXIT_USAGE;
	}
	j.src.fd = -1;
	j.t0 = now_seconds();
	utc_timestamp(j.started, sizeof j.started);
	int r = prepare(&j);
	if (r == EXIT_OK)
		r = copy_with_retries(&j);
	if (r == EXIT_OK)
		r = finish(&j);
	if (r != EXIT_OK && r != EXIT_UNREADABLE && interrupted)
		r = EXIT_INTERRUPTED;
	release(&j);
	return r;
}
