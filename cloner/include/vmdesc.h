/* vmdesc.h - VM descriptors written beside the disk images, so a clone imports as a
 * machine: OVF (vSphere, VirtualBox), VMX (Workstation/ESXi), libvirt domain XML (KVM)
 * and a Hyper-V PowerShell script. Pure text rendering from a struct vm_spec: nothing
 * here reads the disks or writes files.
 *
 * Each renderer returns malloc'd text (caller frees), or NULL after error() when the spec
 * cannot be described in that form (a qcow2 disk in an OVF, 5 IDE disks...). */
#ifndef COLDCLONE_VMDESC_H
#define COLDCLONE_VMDESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMDESC_MAX_DISKS 15  /* one SCSI/SATA controller's worth; IDE takes 4 at most */
#define VMDESC_MAX_NICS 10   /* a Hyper-V VM takes 8 synthetic NICs; OVF/VMX 10 */

enum vm_firmware { VM_FIRMWARE_BIOS, VM_FIRMWARE_UEFI };
/* Guest OS family, when the lead found it on the system disk: picks guest types, the
 * Hyper-V Secure Boot setting and the libvirt clock. */
enum vm_os { VM_OS_UNKNOWN, VM_OS_WINDOWS, VM_OS_LINUX };
/* Disk bus. SATA is the default because every Windows since Vista has an AHCI driver
 * inbox; virtio needs drivers in the guest. OVF and VMX have no virtio: they use SCSI. */
enum vm_bus { VM_BUS_SATA, VM_BUS_SCSI, VM_BUS_IDE, VM_BUS_VIRTIO };
/* NIC model: emulated Intel (E1000 for VMware, e1000e for KVM) works without guest
 * drivers; paravirtual (VmxNet3, virtio) is faster but needs them. Hyper-V is always
 * its synthetic adapter. */
enum vm_nic_model { VM_NIC_EMULATED, VM_NIC_PARAVIRT };

struct vm_disk {
	const char *file;     /* image file name relative to the descriptor ("srv1-sda.vmdk") */
	const char *format;   /* vmdk-stream, vmdk, vhdx, vhd, vhd-fixed, qcow2 or raw */
	uint64_t capacity;    /* virtual disk size in bytes */
	uint64_t file_size;   /* size of the image file in bytes; 0 = unknown (OVF omits ovf:size) */
	enum vm_bus bus;
};

/* A view: every pointer is the caller's and must outlive the render call. */
struct vm_spec {
	const char *name;            /* VM name (inventory_machine_name() gives a safe one) */
	unsigned cpus;               /* virtual CPUs, >= 1 */
	uint64_t memory_mib;         /* >= 4; VMware rounds up to a multiple of 4 */
	enum vm_firmware firmware;
	enum vm_os os;
	const struct vm_disk *disks; /* the boot disk first */
	size_t ndisks;               /* 1..VMDESC_MAX_DISKS */
	size_t nics;                 /* 0..VMDESC_MAX_NICS */
	const char *const *macs;     /* nics entries "aa:bb:cc:dd:ee:ff" to keep the source's
				      * MACs (licences bound to them), or NULL for new ones */
	enum vm_nic_model nic_model;
	const char *network;         /* network / port group / switch; NULL: "VM Network" (OVF,
				      * VMX), "default" (libvirt), not connected (Hyper-V) */
	const char *libvirt_dir;     /* absolute directory the images will sit in on the KVM host
				      * (libvirt wants absolute paths); NULL: /var/lib/libvirt/images */
};

/* Check a spec before rendering (the renderers call it too); 0 or -1 with a message. */
/* What the technician sets instead of the source's values (clone --vm-*, vm-* job keys):
 * 0 and NULL mean "as the source". */
struct vm_overrides {
	unsigned cpus;
	uint64_t memory_mib;
	const char *firmware;   /* "bios" or "uefi" */
	const char *bus;        /* "sata", "scsi", "ide" or "virtio" */
	unsigned nics;
};
/* Apply o's CPUs, memory, firmware and NIC count to spec; -1 with a message when a value
 * is not understood. The bus applies per disk: vmdesc_bus_by_name. */
int vmdesc_override(struct vm_spec *spec, const struct vm_overrides *o);
int vmdesc_bus_by_name(const char *name, enum vm_bus *bus);

int vmdesc_check(const struct vm_spec *spec);

/* OVF 1.0 envelope (.ovf) for vSphere and VirtualBox: disks must be vmdk-stream, the only
 * vmdk vSphere imports from an OVF. UEFI is vmw:Config firmware=efi. */
char *vmdesc_ovf(const struct vm_spec *spec);
/* VMware .vmx for Workstation/ESXi (virtualHW 13): disks vmdk (monolithicSparse) or
 * vmdk-stream. ESXi runs neither in place: the .vmx says to vmkfstools -i them first. */
char *vmdesc_vmx(const struct vm_spec *spec);
/* libvirt domain XML (virsh define FILE): disks qcow2 or raw, q35 machine (pc when a disk
 * is on IDE), <os firmware='efi'> for UEFI. */
char *vmdesc_libvirt(const struct vm_spec *spec);
/* Hyper-V PowerShell script creating the VM from the vhdx/vhd files in the script's folder:
 * Generation 2 for UEFI (VHD disks converted to VHDX first), 1 for BIOS (boot disk on IDE). */
char *vmdesc_hyperv_ps1(const struct vm_spec *spec);

/* The descriptors as a table, for "write every descriptor the formats allow". */
struct vmdesc_kind {
	const char *name;                       /* "ovf", "vmx", "libvirt", "hyperv" */
	const char *suffix;                     /* file name suffix: ".ovf", ".vmx", ".xml", ".ps1" */
	const char *const *formats;             /* disk formats it takes, NULL-terminated */
	char *(*render)(const struct vm_spec *spec);
};
extern const struct vmdesc_kind vmdesc_kinds[];
extern const size_t vmdesc_nkinds;

/* True when every disk of spec is in a format kind takes. */
bool vmdesc_accepts(const struct vmdesc_kind *kind, const struct vm_spec *spec);

#endif
