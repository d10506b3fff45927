/* machinedesc.h - the files stored beside a whole-machine clone: VM descriptors for the
 * hypervisors that take the image format (OVF and VMX for VMDK, libvirt XML for qcow2/raw,
 * a Hyper-V PowerShell script for VHDX/VHD), and last the machine manifest
 * (NAME.machine.json) with the hardware inventory and every disk's result. */
#ifndef COLDCLONE_MACHINEDESC_H
#define COLDCLONE_MACHINEDESC_H

#include <stddef.h>

#include "clonejob.h"
#include "inventory.h"

struct machine_file {
	char name[256];  /* file name beside the images */
	char *text;      /* malloc'd content */
};

struct machine_files {
	struct machine_file f[8];
	size_t n;        /* the machine manifest is always the last */
};

/* The VM for jobs[0..n) (n >= 1): the source's CPUs, memory and NIC count from inv, UEFI
 * when a disk has an EFI system partition, the guest OS guessed from the filesystems, one
 * disk per image (at most MACHINEDESC_MAX_DISKS, into disks[]), then jobs[0].o.vm's
 * overrides. -1 with a message when an override is not understood. */
#define MACHINEDESC_MAX_DISKS 16
int machinedesc_vm_spec(const char *name, const struct inventory *inv, const struct clone_job *jobs, size_t n,
			struct vm_disk *disks, struct vm_spec *spec);
/* Render the files for jobs[0..n) (their summaries). -1 on failure (printed). */
int machinedesc_render(const char *name, const struct inventory *inv, const struct clone_job *jobs, size_t n,
		       const char *started, const char *finished, struct machine_files *out);
void machinedesc_free(struct machine_files *files);
/* The report of a machine job that did not complete (NAME.failed.json): the same fields
 * as the machine manifest, with each disk's exit code and the job's result. */
char *machinedesc_failure(const char *name, const struct inventory *inv, const struct clone_job *jobs, size_t n,
			  const char *started, const char *finished, int rc);

#endif
