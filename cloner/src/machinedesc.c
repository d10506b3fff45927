/* machinedesc.c - machine manifest and VM descriptors for `clone --all`. The VM gets the
 * source's CPU count and memory (inventory.c), its firmware from the disks (an EFI system
 * partition means UEFI: what the installed OS boots with, whatever started the stick),
 * and one virtual disk per image in source order. */
#define _GNU_SOURCE
#include "machinedesc.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "util.h"
#include "vmdesc.h"

static json_object *disk_json(const struct clone_summary *s)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "source", json_object_new_string(s->source));
	json_object_object_add(o, "model", json_object_new_string(s->model));
	json_object_object_add(o, "serial", json_object_new_string(s->serial));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)s->source_size));
	json_object_object_add(o, "logical_sector_size", json_object_new_int64(s->lsec));
	json_object_object_add(o, "partition_table", json_object_new_string(s->table));
	json_object_object_add(o, "image", json_object_new_string(s->image));
	json_object_object_add(o, "format", json_object_new_string(s->format));
	json_object_object_add(o, "image_size", json_object_new_int64((int64_t)s->image_size));
	json_object_object_add(o, "sha256", json_object_new_string(s->sha256));
	json_object_object_add(o, "exit_code", json_object_new_int(s->result));
	return o;
}

static bool any_uefi(const struct clone_job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (jobs[i].sum.uefi)
			return true;
	return false;
}

static char *machine_manifest(const char *name, const struct inventory *inv, const struct clone_job *jobs,
			      size_t n, const char *started, const char *finished, json_object *descriptors, int rc)
{
	json_object *root = json_object_new_object(), *tool = json_object_new_object();
	json_object_object_add(tool, "name", json_object_new_string("coldclone"));
	json_object_object_add(tool, "version", json_object_new_string(COLDCLONE_VERSION));
	json_object_object_add(root, "tool", tool);
	json_object_object_add(root, "machine", json_object_new_string(name));
	json_object_object_add(root, "inventory", inventory_json(inv));
	/* The host name the installed OS gave itself (oshost.c), null when none was found. */
	json_object_object_add(root, "os_hostname", inv->os_hostname ? json_object_new_string(inv->os_hostname) : NULL);
	json_object_object_add(root, "os", inv->os_hostname ? json_object_new_string(inv->os) : NULL);
	json_object_object_add(root, "firmware", json_object_new_string(any_uefi(jobs, n) ? "uefi" : "bios"));
	json_object *disks = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(disks, disk_json(&jobs[i].sum));
	json_object_object_add(root, "disks", disks);
	json_object_object_add(root, "descriptors", descriptors);
	json_object *result = json_object_new_object();
	json_object_object_add(result, "exit_code", json_object_new_int(rc));
	json_object_object_add(result, "meaning", json_object_new_string(exit_code_meaning(rc)));
	json_object_object_add(result, "complete", json_object_new_boolean(rc == EXIT_OK || rc == EXIT_UNREADABLE));
	json_object_object_add(root, "result", result);
	json_object_object_add(root, "started", json_object_new_string(started));
	json_object_object_add(root, "finished", json_object_new_string(finished));
	char *out = xasprintf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
										    JSON_C_TO_STRING_SPACED));
	json_object_put(root);
	return out;
}

static enum vm_os guess_os(const struct clone_job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (jobs[i].sum.has_ntfs)
			return VM_OS_WINDOWS;
	for (size_t i = 0; i < n; i++)
		if (jobs[i].sum.has_linux)
			return VM_OS_LINUX;
	return VM_OS_UNKNOWN;
}

/* One descriptor per hypervisor that takes the format; listed in the manifest. */
int machinedesc_vm_spec(const char *name, const struct inventory *inv, const struct clone_job *jobs, size_t n,
			struct vm_disk *disks, struct vm_spec *spec)
{
	size_t nd = MIN(n, (size_t)MACHINEDESC_MAX_DISKS);
	const struct vm_overrides *vo = &jobs[0].o.vm;
	enum vm_bus bus = VM_BUS_SATA;  /* every guest OS boots from SATA (AHCI) */
	if (vo->bus && vmdesc_bus_by_name(vo->bus, &bus) < 0)
		return -1;
	for (size_t i = 0; i < nd; i++)
		disks[i] = (struct vm_disk){ .file = jobs[i].sum.file, .format = jobs[i].sum.format,
					     .capacity = jobs[i].sum.image_vsize, .file_size = jobs[i].sum.image_size,
					     .bus = bus };
	*spec = (struct vm_spec){
		.name = name, .cpus = inv->cpus ? inv->cpus : 2, .memory_mib = inventory_vm_memory_mib(inv),
		.firmware = any_uefi(jobs, n) ? VM_FIRMWARE_UEFI : VM_FIRMWARE_BIOS, .os = guess_os(jobs, n),
		.disks = disks, .ndisks = nd, .nics = inv->nnics ? MIN(inv->nnics, (size_t)8) : 1,
		.nic_model = VM_NIC_EMULATED,
	};
	return vmdesc_override(spec, vo);
}

static void render_descriptors(const char *name, const struct inventory *inv, const struct clone_job *jobs,
			       size_t n, struct machine_files *out, json_object *list)
{
	struct vm_disk disks[MACHINEDESC_MAX_DISKS];
	struct vm_spec spec;
	if (n == 0 || machinedesc_vm_spec(name, inv, jobs, n, disks, &spec) < 0)
		return;
	for (size_t k = 0; k < vmdesc_nkinds && out->n + 1 < sizeof out->f / sizeof out->f[0]; k++) {
		const struct vmdesc_kind *kind = &vmdesc_kinds[k];
		if (!vmdesc_accepts(kind, &spec))
			continue;
		char *text = kind->render(&spec);
		if (!text) {
			warning("no %s descriptor for '%s' (see above); the images are complete", kind->name, name);
			continue;
		}
		struct machine_file *f = &out->f[out->n++];
		snprintf(f->name, sizeof f->name, "%s%s", name, kind->suffix);
		f->text = text;
		json_object_array_add(list, json_object_new_string(f->name));
	}
}

int machinedesc_render(const char *name, const struct inventory *inv, const struct clone_job *jobs, size_t n,
		       const char *started, const char *finished, struct machine_files *out)
{
	*out = (struct machine_files){ 0 };
	json_object *list = json_object_new_array();
	render_descriptors(name, inv, jobs, n, out, list);
	struct machine_file *m = &out->f[out->n++];
	snprintf(m->name, sizeof m->name, "%s.machine.json", name);
	int rc = EXIT_OK;
	for (size_t i = 0; i < n; i++)
		if (jobs[i].sum.result == EXIT_UNREADABLE)
			rc = EXIT_UNREADABLE;
	m->text = machine_manifest(name, inv, jobs, n, started, finished, list, rc);
	return 0;
}

char *machinedesc_failure(const char *name, const struct inventory *inv, const struct clone_job *jobs, size_t n,
			  const char *started, const char *finished, int rc)
{
	return machine_manifest(name, inv, jobs, n, started, finished, json_object_new_array(), rc);
}

void machinedesc_free(struct machine_files *files)
{
	for (size_t i = 0; i < files->n; i++)
		free(files->f[i].text);
	files->n = 0;
}
