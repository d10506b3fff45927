/* inventory.h - the hardware inventory of the machine being cloned, read from sysfs and
 * procfs: DMI identity, CPU, RAM, boot firmware, NICs and storage controllers. It only
 * reads files; it never loads modules or touches a disk.
 *
 * Call order: inventory_read() fills a zeroed struct (best effort: a missing file leaves
 * its field NULL or 0), then inventory_json() / inventory_machine_name() any number of
 * times, then inventory_release(). All strings are owned by the struct. */
#ifndef COLDCLONE_INVENTORY_H
#define COLDCLONE_INVENTORY_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct inventory_nic {
	char *name;       /* kernel name: "eno1", "enp3s0" */
	char *mac;        /* "aa:bb:cc:dd:ee:ff" as sysfs gives it, or NULL */
	char *operstate;  /* "up", "down", "unknown"..., or NULL */
	int carrier;      /* 1 link, 0 no link, -1 unknown (interface down) */
	char *driver;     /* bound kernel driver, or NULL when none */
	char *pci_id;     /* "8086:1533" (vendor:device), or NULL when not a PCI device */
	char *bus_id;     /* the parent device's name: "0000:03:00.0", "1-1:1.0" */
};

struct inventory_controller {
	char *slot;       /* PCI address "0000:00:1f.2" */
	char *pci_id;     /* "8086:2922" */
	uint32_t class;   /* PCI class code, 0x01xxxx for storage: 0x010601 is AHCI */
	char *driver;     /* bound kernel driver, or NULL when none: the missing-driver case */
};

struct inventory {
	char *vendor;            /* DMI sys_vendor, or NULL */
	char *product;           /* DMI product_name */
	char *serial;            /* DMI product_serial (root only), raw as the firmware gives it */
	char *uuid;              /* DMI product_uuid */
	char *bios_version;      /* DMI bios_version */
	char *cpu_model;         /* first "model name" of /proc/cpuinfo */
	unsigned cpus;           /* logical processors */
	unsigned sockets;        /* distinct "physical id" values; 1 when cpuinfo has none */
	uint64_t memory_bytes;   /* MemTotal: what the kernel sees, a little below installed RAM */
	bool uefi;               /* the running (live) system booted through UEFI */
	struct inventory_nic *nics;  /* physical NICs (those with a device), sorted by name */
	size_t nnics;
	struct inventory_controller *controllers;  /* PCI class 0x01 devices, sorted by slot */
	size_t ncontrollers;
	/* Not from sysfs: set by the caller with inventory_set_os_host() from the source disks. */
	char *os_hostname;       /* host name the installed OS gave itself (oshost.h), or NULL */
	char os[16];             /* "windows" or "linux" with os_hostname, else "" */
};

/* Fill *inv (zero it first) from the files under sysroot: "" for the running system, or
 * a directory laid out like / (sys/..., proc/...) for tests. Returns 0, or -1 with a
 * message when sysroot has no sys/ at all; missing individual files are not errors. */
int inventory_read(struct inventory *inv, const char *sysroot);

/* Free everything inventory_read() allocated and zero the struct; NULL is fine. */
void inventory_release(struct inventory *inv);

/* A new JSON object (caller puts it): vendor, model, serial, uuid, bios_version,
 * firmware ("uefi"|"bios"), cpu {model, logical, sockets}, memory_bytes,
 * nics [{name, mac, state, link (bool or null), driver (or null), pci_id}],
 * storage_controllers [{slot, pci_id, class ("0x010601"), driver (or null)}]. */
json_object *inventory_json(const struct inventory *inv);

/* Record the host name found on the machine's disks (oshost_find) and its OS ("windows",
 * "linux"); hostname NULL clears it. The strings are copied. */
void inventory_set_os_host(struct inventory *inv, const char *hostname, const char *os);

/* The name images and descriptors are called by, malloc'd (caller frees), never NULL:
 * override when given, else the OS host name (os_hostname), else the DMI serial unless it
 * is a placeholder ("To Be Filled By O.E.M.", "Default string", all zeros...), else
 * "coldclone-" + first MAC without colons, else "coldclone-machine". The chosen source is
 * reduced to [A-Za-z0-9._-] (other runs become one '-', no leading '.' or '-', at most 64
 * characters), so it is a safe file name; a source that reduces to nothing falls through
 * to the next one. */
char *inventory_machine_name(const struct inventory *inv, const char *override);

/* Memory for a VM of this machine in MiB: MemTotal rounded up to a whole GiB (MemTotal
 * misses the firmware- and kernel-reserved part of the installed RAM); 1024 when unknown. */
uint64_t inventory_vm_memory_mib(const struct inventory *inv);

#endif
