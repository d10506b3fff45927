/* clonejob.c - the stages of one disk's clone (clonejob.h): prepare (open, layout,
 * extent map, destination), copy (the pipeline), finish (seal the image, manifest,
 * publish). */
#define _GNU_SOURCE
#include "clonejob.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "inventory.h"
#include "machinedesc.h"
#include "vmdesc.h"
#include "manifest.h"
#include "net.h"
#include "imagehash.h"
#include "util.h"

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
				     j->output_shown);
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

/* What will not work as expected after migration, said before copying. A hibernated
 * Windows (or one shut down with Fast Startup) is refused without --force: its clone would
 * resume a hibernated session on different hardware, and the copy is of every sector. */
static int preflight(struct clone_job *j)
{
	bool hibernated = false;
	for (size_t i = 0; i < j->layout.nparts; i++) {
		const struct partition *p = &j->layout.parts[i];
		if (p->state == FS_STATE_HIBERNATED)
			hibernated = true;
		if (strcasecmp(p->type, "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3") == 0 ||
		    strcasecmp(p->type, "AF9B60A0-1431-4F62-BC68-3311714A69AD") == 0 || strcmp(p->type, "0x42") == 0)
			warning("'%s' is a Windows dynamic disk (partition %u): copied whole; Windows in the VM "
				"imports it as a dynamic disk", j->src.path, p->number);
		if (strcasecmp(p->fs, "BitLocker") == 0)
			warning("partition %u of '%s' is BitLocker-encrypted: copied whole, still encrypted; have the "
				"recovery key ready for the first boot of the VM", p->number, j->src.path);
		if (strcmp(p->fs, "LVM2_member") == 0 || strcmp(p->fs, "linux_raid_member") == 0)
			warning("partition %u of '%s' is %s: copied whole; clone every member disk (--all) so the "
				"VM can assemble it", p->number, j->src.path, p->fs);
	}
	if (hibernated && !j->o.force)
		return error("'%s': Windows is hibernated or was shut down with Fast Startup, so its disk is not "
			     "consistent for a clone. Boot Windows and shut it down fully (shutdown /s /t 0, or turn "
			     "off Fast Startup), then clone again; --force clones it as it is (every sector)",
			     j->src.path);
	return 0;
}

/* The sink, the format writer on it, and a fresh content digest. */
/* A raw (or fixed VHD) image is as big as the disk, and its SHA-256 covers every hole: on
 * a large, mostly empty disk that costs more than copying the data, so say so up front. */
static void warn_hashing_holes(const struct clone_job *j)
{
	if (!(j->fmt->caps & FMT_FULL_SIZE))
		return;
	uint64_t data = extmap_bytes(&j->map), holes = j->src.size - MIN(data, j->src.size);
	double rate = image_hash_rate();
	if (holes < (64ull << 30) || holes < 4 * data || rate <= 0)
		return;
	char hs[32];
	info("%s image: its SHA-256 covers all of the disk, %s of it empty; hashing that adds about %.0f min "
	     "on this CPU (qcow2, vhdx and vmdk-stream hash only the data)",
	     j->fmt->name, fmt_size(holes, hs, sizeof hs), (double)holes / rate / 60 + 0.5);
}

static int open_destination(struct clone_job *j)
{
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

void clonejob_init(struct clone_job *j, const struct clone_opts *o, const char *source, const char *output,
		   bool own_output)
{
	*j = (struct clone_job){ .o = *o };
	j->o.source = source;
	if (own_output)
		output = j->output_owned = xstrdup(output);
	j->o.output = output;
	j->output_shown = url_redact(output);
	j->src.fd = -1;
	j->t0 = now_seconds();
	utc_timestamp(j->started, sizeof j->started);
}

#define COPY_FIELD(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

static void summarize_source(struct clone_job *j)
{
	struct clone_summary *m = &j->sum;
	COPY_FIELD(m->source, j->src.path);
	COPY_FIELD(m->model, j->src.model);
	COPY_FIELD(m->serial, j->src.serial);
	COPY_FIELD(m->table, j->layout.table);
	m->source_size = j->src.size;
	m->lsec = j->src.lsec;
	for (size_t i = 0; i < j->layout.nparts; i++) {
		const struct partition *p = &j->layout.parts[i];
		if (strcasecmp(p->type, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") == 0 || strcasecmp(p->type, "0xef") == 0)
			m->uefi = true;
		m->has_ntfs |= strcmp(p->fs, "ntfs") == 0;
		m->has_linux |= strncmp(p->fs, "ext", 3) == 0 || strcmp(p->fs, "xfs") == 0 || strcmp(p->fs, "swap") == 0;
	}
	COPY_FIELD(m->format, j->fmt->name);
	COPY_FIELD(m->image, j->output_shown);
	const char *slash = strrchr(j->output_shown, '/');
	COPY_FIELD(m->file, slash ? slash + 1 : j->output_shown);
	m->file[strcspn(m->file, "?#")] = '\0';
}

/* Everything that can fail before copying: source, layout, format limits, destination. */
int clonejob_prepare(struct clone_job *j)
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
	summarize_source(j);
	if (preflight(j) < 0)
		return EXIT_REFUSED;
	if (j->src.size > j->fmt->max_vsize) {
		char sz[32];
		error("'%s' is %s, larger than the %s format can hold: choose vhdx, qcow2 or vmdk-stream",
		      j->src.path, fmt_size(j->src.size, sz, sizeof sz), j->fmt->name);
		return EXIT_DEST;
	}
	if (j->src.lsec == 4096 && !(j->fmt->caps & FMT_CAN_4K))
		warning("'%s' has 4096-byte sectors but %s images are 512-byte: the guest will see 512-byte sectors and a GPT written for 4096 will not match; prefer vhdx or qcow2",
		     j->src.path, j->fmt->name);
	warn_hashing_holes(j);
	/* Space estimate: the mapped bytes plus format metadata; compressed formats need less. */
	uint64_t est = extmap_bytes(&j->map) + j->src.size / 4096 + (4u << 20);
	if (j->fmt->caps & FMT_COMPRESSED)
		est /= 2;
	j->o.dest.est_size = est;
	j->o.dest.force = j->o.force;
	progress_stage(&j->prog, "prepare", "checking the destination");
	return open_destination(j);
}

static int copy(struct clone_job *j)
{
	struct pipeline_params pp = {
		.src = &j->src, .map = &j->map, .writer = &j->w, .digest = &j->digest,
		.workers = j->o.workers, .progress = progress_update, .progress_opaque = &j->prog,
		.progress_interval = 1.0, .stop = &interrupted,
	};
	progress_stage(&j->prog, "copy", j->output_shown);
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

/* A streamOptimized VMDK sent to a vSphere datastore gets an OVF beside it, so the disk
 * can be deployed as a VM ("Deploy OVF Template", or ovftool) with the source's CPUs and
 * memory. The image is complete without it: a failure here is only a warning. */
static void store_vsphere_ovf(struct clone_job *j)
{
	const char *q = strchr(j->o.output, '?');
	if (strcmp(j->fmt->name, "vmdk-stream") != 0 || !dest_is_vsphere(j->o.output))
		return;
	struct inventory inv = { 0 };
	inventory_read(&inv, "");
	CLEANUP_FREE char *name = xstrdup(j->sum.file);
	char *dot = strrchr(name, '.');
	if (dot)
		*dot = '\0';
	struct vm_disk disk;
	struct vm_spec spec;
	CLEANUP_FREE char *ovf = machinedesc_vm_spec(name, &inv, j, 1, &disk, &spec) == 0 ? vmdesc_ovf(&spec) : NULL;
	size_t len = (size_t)(q - j->o.output);
	const char *ext = memrchr(j->o.output, '.', len), *slash = memrchr(j->o.output, '/', len);
	size_t stem = ext && ext > slash ? (size_t)(ext - j->o.output) : len;
	CLEANUP_FREE char *dest = xasprintf("%.*s.ovf%s", (int)stem, j->o.output, q);
	if (!ovf || sink_store_file(dest, ovf, strlen(ovf), &j->o.dest) < 0)
		warning("the OVF descriptor could not be stored beside '%s'; the disk image is complete", j->output_shown);
	else
		info("OVF descriptor stored beside the image: deploy it with \"Deploy OVF Template\" or ovftool");
	inventory_release(&inv);
}

int clonejob_finish(struct clone_job *j)
{
	char digest[65], finished[32];
	progress_stage(&j->prog, "finish", "writing image tables and manifest");
	if (j->fmt->finish(&j->w) < 0 || sink_finish(j->sink) < 0)
		return EXIT_DEST;
	content_digest_final(&j->digest, digest);
	j->sum.image_size = j->sink->pos;
	j->sum.image_vsize = j->w.image_vsize;
	hex_encode(j->sink->sha256, 32, j->sum.sha256);
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
	store_vsphere_ovf(j);
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
	return open_destination(j);
}

int clonejob_copy(struct clone_job *j)
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

void clonejob_release(struct clone_job *j)
{
	if (j->released)
		return;
	j->released = true;
	free(j->output_shown);
	free(j->output_owned);
	j->output_shown = j->output_owned = NULL;
	if (j->fmt && j->fmt->free)
		j->fmt->free(&j->w);
	sink_free(j->sink);  /* removes the partial image unless published */
	content_digest_release(&j->digest);
	extmap_release(&j->map);
	layout_release(&j->layout);
	source_close(&j->src);
}

