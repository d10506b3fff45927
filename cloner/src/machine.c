/* machine.c - `coldclone clone --all`: every disk of the machine, one image per disk.
 *
 * All disks are prepared first (sources opened, filesystems read, destinations checked),
 * so a problem with the third disk is reported before the first one is copied. Then each
 * disk is copied and sealed with its own manifest. Only when every disk succeeded is the
 * machine manifest (NAME.machine.json: inventory, disks, results) stored beside the
 * images, last: its presence means the whole machine was captured. */
#define _GNU_SOURCE
#include "machine.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "machinedesc.h"
#include "oshost.h"
#include "util.h"

struct machine_job {
	struct clone_opts o;
	char **found;              /* source_discover result */
	const char **disks;        /* the chosen ones */
	size_t ndisks;
	struct clone_job *jobs;
	size_t njobs;              /* initialised jobs */
	size_t ncopied;            /* jobs whose copy was attempted */
	char *name;
	struct inventory inv;
	char started[32];
};

/* The disk's serial as sysfs tells it (SCSI/SATA under device/, virtio and NVMe beside). */
static bool serial_is(const char *base, const char *want)
{
	static const char *const where[] = { "device/serial", "serial", "device/wwid" };
	for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
		CLEANUP_FREE char *path = xasprintf("/sys/block/%s/%s", base, where[i]);
		char buf[128] = "";
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		bool ok = fgets(buf, sizeof buf, f) != NULL;
		fclose(f);
		buf[strcspn(buf, "\n")] = '\0';
		if (ok && strcmp(buf, want) == 0)
			return true;
	}
	return false;
}

/* --disk / disks = words: sda, /dev/sda, or serial:XYZ. */
static bool disk_matches(const char *path, const char *want)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (strncmp(want, "serial:", 7) == 0)
		return serial_is(base, want + 7);
	return strcmp(path, want) == 0 || strcmp(base, want) == 0;
}

/* The disks of found that o selects (all, or those --disk names), in found's order, into a
 * new NULL-terminated array; *n their count. */
static const char **select_disks(char **found, const struct clone_opts *o, size_t *n)
{
	size_t total = 0;
	while (found[total])
		total++;
	const char **disks = xcalloc(total + 1, sizeof *disks);
	*n = 0;
	for (size_t i = 0; i < total; i++) {
		bool take = o->ndisks == 0;
		for (unsigned k = 0; k < o->ndisks && !take; k++)
			take = disk_matches(found[i], o->disks[k]);
		if (take)
			disks[(*n)++] = found[i];
	}
	return disks;
}

static int choose_disks(struct machine_job *m)
{
	if (source_discover(&m->found) < 0)
		return EXIT_SOURCE;
	m->disks = select_disks(m->found, &m->o, &m->ndisks);
	for (unsigned k = 0; k < m->o.ndisks; k++) {
		bool seen = false;
		for (size_t i = 0; i < m->ndisks && !seen; i++)
			seen = disk_matches(m->disks[i], m->o.disks[k]);
		if (!seen)
			return error("--disk %s: no such source disk here; 'coldclone list' shows the disks", m->o.disks[k]),
			       EXIT_USAGE;
	}
	if (m->ndisks == 0)
		return error("no source disks found: is the storage controller's driver loaded? 'coldclone list' and "
			     "the boot summary show missing drivers"),
		       EXIT_SOURCE;
	return EXIT_OK;
}

/* The OS host name on the disks, first disk first, into inv (the name's second choice). */
static void find_os_host(const char *const *disks, size_t n, struct inventory *inv)
{
	struct oshost h;
	if (oshost_find(disks, n, &h))
		inventory_set_os_host(inv, h.name, oshost_os_id(h.os));
}

void machine_find_os_host(const struct clone_opts *o, struct inventory *inv)
{
	char **found = NULL;
	if (source_discover(&found) == 0) {
		size_t n;
		CLEANUP_FREE const char **disks = select_disks(found, o, &n);
		find_os_host(disks, n, inv);
	}
	source_discover_free(found);
}

char *machine_dest_join(const char *dest, const char *file)
{
	size_t len = strstr(dest, "://") ? strcspn(dest, "?#") : strlen(dest);
	const char *sep = len && dest[len - 1] == '/' ? "" : "/";
	return xasprintf("%.*s%s%s%s", (int)len, dest, sep, file, dest + len);
}

const char *machine_image_ext(const char *format)
{
	const struct fmt_ops *f = fmt_by_name(format);
	if (!f || strcmp(f->name, "vhd-fixed") == 0)
		return "vhd";
	return f->ext;
}

char *machine_image_file(const char *name, const char *disk, const char *format)
{
	const char *base = strrchr(disk, '/') ? strrchr(disk, '/') + 1 : disk;
	return xasprintf("%s-%s.%s", name, base, machine_image_ext(format));
}

static int prepare_all(struct machine_job *m)
{
	m->jobs = xcalloc(m->ndisks, sizeof *m->jobs);
	for (size_t i = 0; i < m->ndisks; i++) {
		CLEANUP_FREE char *file = machine_image_file(m->name, m->disks[i], m->o.format);
		CLEANUP_FREE char *out = machine_dest_join(m->o.output, file);
		clonejob_init(&m->jobs[i], &m->o, m->disks[i], out, true);
		m->njobs++;
		int r = clonejob_prepare(&m->jobs[i]);
		m->jobs[i].result = r;
		if (r != EXIT_OK)
			return error("disk %zu of %zu (%s) cannot be cloned, so nothing was copied: fix the problem above "
				     "or leave the disk out with --disk",
				     i + 1, m->ndisks, m->disks[i]),
			       r;
	}
	return EXIT_OK;
}

static int worse(int a, int b)
{
	if (a == EXIT_OK)
		return b;
	if (b == EXIT_OK || b == EXIT_UNREADABLE)
		return a;
	return a == EXIT_UNREADABLE ? b : a;
}

static int copy_all(struct machine_job *m)
{
	int worst = EXIT_OK;
	for (size_t i = 0; i < m->ndisks && !interrupted; i++) {
		struct clone_job *j = &m->jobs[i];
		info("disk %zu of %zu: %s -> %s", i + 1, m->ndisks, j->o.source, j->output_shown);
		m->ncopied = i + 1;
		int r = clonejob_copy(j);
		if (r == EXIT_OK)
			r = clonejob_finish(j);
		j->result = j->sum.result = r;
		worst = worse(worst, r);
		if (r != EXIT_OK && r != EXIT_UNREADABLE)
			error("disk %s failed (exit %d); continuing with the other disks", j->o.source, r);
		/* Each disk's destination is released as soon as it is done. */
		clonejob_release(j);
	}
	if (interrupted)
		return EXIT_INTERRUPTED;
	return worst;
}

static int store_machine_files(struct machine_job *m)
{
	char finished[32];
	utc_timestamp(finished, sizeof finished);
	struct machine_files files;
	if (machinedesc_render(m->name, &m->inv, m->jobs, m->njobs, m->started, finished, &files) < 0)
		return EXIT_INTERNAL;
	int r = EXIT_OK;
	for (size_t i = 0; i < files.n && r == EXIT_OK; i++) {
		CLEANUP_FREE char *dest = machine_dest_join(m->o.output, files.f[i].name);
		if (sink_store_file(dest, files.f[i].text, strlen(files.f[i].text), &m->o.dest) < 0)
			r = EXIT_DEST;
	}
	if (r == EXIT_OK)
		info("machine '%s': %zu disk%s captured; %s stored beside the images", m->name, m->ndisks,
		     m->ndisks == 1 ? "" : "s", files.f[files.n - 1].name);
	machinedesc_free(&files);
	return r;
}

/* After a failed copy: what happened, beside the images that did complete (best effort:
 * the destination may be what failed). Never named like the machine manifest. */
static void store_failure(struct machine_job *m, int rc)
{
	char finished[32];
	utc_timestamp(finished, sizeof finished);
	CLEANUP_FREE char *text = machinedesc_failure(m->name, &m->inv, m->jobs, m->njobs, m->started, finished, rc);
	CLEANUP_FREE char *file = xasprintf("%s.failed.json", m->name);
	CLEANUP_FREE char *dest = machine_dest_join(m->o.output, file);
	struct dest_options quick = m->o.dest;
	quick.retries = MIN(quick.retries, 1u);
	if (sink_store_file(dest, text, strlen(text), &quick) == 0)
		info("machine '%s' is not complete (exit %d): %s stored beside the images", m->name, rc, file);
}

static void machine_release(struct machine_job *m)
{
	for (size_t i = 0; i < m->njobs; i++)
		clonejob_release(&m->jobs[i]);
	free(m->jobs);
	free(m->disks);
	source_discover_free(m->found);
	free(m->name);
	inventory_release(&m->inv);
}

static void keep_outcome(const struct machine_job *m, struct machine_outcome *out)
{
	out->ndisks = m->ncopied;
	out->disks = m->ncopied ? xcalloc(m->ncopied, sizeof *out->disks) : NULL;
	for (size_t i = 0; i < m->ncopied; i++)
		out->disks[i] = m->jobs[i].sum;
}

void machine_outcome_free(struct machine_outcome *out)
{
	free(out->disks);
	*out = (struct machine_outcome){ 0 };
}

int machine_clone(const struct clone_opts *o, struct machine_outcome *out)
{
	struct machine_job m = { .o = *o };
	if (!m.o.format)
		m.o.format = "vmdk-stream";
	utc_timestamp(m.started, sizeof m.started);
	int r = choose_disks(&m);
	if (r == EXIT_OK) {
		if (inventory_read(&m.inv, "") < 0)
			warning("no hardware inventory: /sys is not readable");
		find_os_host(m.disks, m.ndisks, &m.inv);
		m.name = inventory_machine_name(&m.inv, o->name);
		info("machine '%s': %zu disk%s to clone", m.name, m.ndisks, m.ndisks == 1 ? "" : "s");
		r = prepare_all(&m);
	}
	if (r == EXIT_OK) {
		r = copy_all(&m);
		if (r != EXIT_OK && r != EXIT_UNREADABLE && r != EXIT_INTERRUPTED)
			store_failure(&m, r);
	}
	if (r == EXIT_OK || r == EXIT_UNREADABLE) {
		int s = store_machine_files(&m);
		r = s == EXIT_OK ? r : s;
	}
	if (out)
		keep_outcome(&m, out);
	machine_release(&m);
	return r;
}
