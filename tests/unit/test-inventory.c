/* test-inventory.c - the hardware inventory read from a fake sysroot laid out like a real
 * server's sysfs/procfs (DMI, cpuinfo, meminfo, a PCI NIC with a driver, a second NIC down,
 * lo and a bridge to skip, an AHCI controller and a SAS controller without a driver), its
 * JSON, and the machine-name rules (placeholder serials, sanitising, MAC fallback, the OS
 * host name found on the disks before the serial). */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"
#include "test.h"
#include "testutil.h"
#include "util.h"

static char root[64];

static void put(const char *rel, const char *text)
{
	CLEANUP_FREE char *path = xasprintf("%s/%s", root, rel);
	test_run("mkdir -p \"$(dirname '%s')\"", path);
	FILE *f = fopen(path, "we");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* ln -s TARGET ROOT/REL (the target relative, as sysfs has it). */
static void link_to(const char *rel, const char *target)
{
	test_run("mkdir -p \"$(dirname '%s/%s')\" && ln -s '%s' '%s/%s'", root, rel, target, root, rel);
}

#define PCI "sys/devices/pci0000:00/"

static void pci_dev(const char *slot, const char *vendor, const char *device, const char *class, const char *driver)
{
	CLEANUP_FREE char *v = xasprintf(PCI "%s/vendor", slot), *d = xasprintf(PCI "%s/device", slot);
	CLEANUP_FREE char *c = xasprintf(PCI "%s/class", slot), *bus = xasprintf("sys/bus/pci/devices/%s", slot);
	CLEANUP_FREE char *target = xasprintf("../../../devices/pci0000:00/%s", slot);
	put(v, vendor);
	put(d, device);
	put(c, class);
	link_to(bus, target);
	CLEANUP_FREE char *sub = xasprintf(PCI "%s/subsystem", slot);
	link_to(sub, "../../../bus/pci");
	if (driver) {
		CLEANUP_FREE char *drv = xasprintf(PCI "%s/driver", slot);
		CLEANUP_FREE char *dt = xasprintf("../../../bus/pci/drivers/%s", driver);
		link_to(drv, dt);
	}
}

static void build_tree(void)
{
	put("sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
	put("sys/class/dmi/id/product_name", "PowerEdge R710  \n");
	put("sys/class/dmi/id/product_serial", " 7XK 9/2J1\n");
	put("sys/class/dmi/id/product_uuid", "4c4c4544-0058-4b10-8039-b7c04f394a31\n");
	put("sys/class/dmi/id/bios_version", "6.6.0\n");
	put("proc/cpuinfo",
	    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU X5650 @ 2.67GHz\nphysical id\t: 0\n\n"
	    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU X5650 @ 2.67GHz\nphysical id\t: 0\n\n"
	    "processor\t: 2\nmodel name\t: Intel(R) Xeon(R) CPU X5650 @ 2.67GHz\nphysical id\t: 1\n\n"
	    "processor\t: 3\nmodel name\t: Intel(R) Xeon(R) CPU X5650 @ 2.67GHz\nphysical id\t: 1\n\n");
	put("proc/meminfo", "MemFree:         1000 kB\nMemTotal:       16318000 kB\nSwapTotal: 0 kB\n");
	put("sys/firmware/efi/fw_platform_size", "64\n");
	/* NIC eno1: up with link, igb driver; eno2: down (carrier unreadable), no driver */
	pci_dev("0000:03:00.0", "0x8086\n", "0x1533\n", "0x020000\n", "igb");
	pci_dev("0000:03:00.1", "0x8086\n", "0x1533\n", "0x020000\n", NULL);
	put(PCI "0000:03:00.0/net/eno1/address", "00:1a:2b:3c:4d:5e\n");
	put(PCI "0000:03:00.0/net/eno1/operstate", "up\n");
	put(PCI "0000:03:00.0/net/eno1/carrier", "1\n");
	link_to(PCI "0000:03:00.0/net/eno1/device", "../../../0000:03:00.0");
	link_to("sys/class/net/eno1", "../../devices/pci0000:00/0000:03:00.0/net/eno1");
	put(PCI "0000:03:00.1/net/eno2/address", "00:1a:2b:3c:4d:5f\n");
	put(PCI "0000:03:00.1/net/eno2/operstate", "down\n");
	link_to(PCI "0000:03:00.1/net/eno2/device", "../../../0000:03:00.1");
	link_to("sys/class/net/eno2", "../../devices/pci0000:00/0000:03:00.1/net/eno2");
	/* ens3: virtio-net, whose device is virtio0 inside the PCI function 0000:00:03.0 */
	pci_dev("0000:00:03.0", "0x1af4\n", "0x1000\n", "0x020000\n", "virtio-pci");
	put(PCI "0000:00:03.0/virtio0/vendor", "0x1af4\n");
	put(PCI "0000:00:03.0/virtio0/device", "0x0001\n");
	link_to(PCI "0000:00:03.0/virtio0/subsystem", "../../../../bus/virtio");
	link_to(PCI "0000:00:03.0/virtio0/driver", "../../../../bus/virtio/drivers/virtio_net");
	put(PCI "0000:00:03.0/virtio0/net/ens3/address", "52:54:00:12:34:56\n");
	link_to(PCI "0000:00:03.0/virtio0/net/ens3/device", "../../../virtio0");
	link_to("sys/class/net/ens3", "../../devices/pci0000:00/0000:00:03.0/virtio0/net/ens3");
	put("sys/devices/virtual/net/lo/address", "00:00:00:00:00:00\n");
	link_to("sys/class/net/lo", "../../devices/virtual/net/lo");
	put("sys/devices/virtual/net/br0/address", "02:00:00:00:00:01\n");
	link_to("sys/class/net/br0", "../../devices/virtual/net/br0");
	/* storage: AHCI with its driver, a PERC (LSI SAS2008) nobody drives */
	pci_dev("0000:00:1f.2", "0x8086\n", "0x2922\n", "0x010601\n", "ahci");
	pci_dev("0000:05:00.0", "0x1000\n", "0x0073\n", "0x010400\n", NULL);
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : NULL;
}

static bool jnull(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && v == NULL;
}

static void test_read(void)
{
	struct inventory inv = { 0 };
	CHECK(inventory_read(&inv, root) == 0);
	CHECK(inv.vendor && strcmp(inv.vendor, "Dell Inc.") == 0);
	CHECK(inv.product && strcmp(inv.product, "PowerEdge R710") == 0);
	CHECK(inv.serial && strcmp(inv.serial, "7XK 9/2J1") == 0);
	CHECK(inv.cpu_model && strstr(inv.cpu_model, "X5650"));
	CHECK_EQ_U64(inv.cpus, 4);
	CHECK_EQ_U64(inv.sockets, 2);
	CHECK_EQ_U64(inv.memory_bytes, 16318000ull * 1024);
	CHECK_EQ_U64(inventory_vm_memory_mib(&inv), 16384);
	CHECK(inv.uefi);
	CHECK_EQ_U64(inv.nnics, 3);
	if (inv.nnics == 3) {
		const struct inventory_nic *a = &inv.nics[0], *b = &inv.nics[1];
		CHECK(strcmp(a->name, "eno1") == 0 && strcmp(b->name, "eno2") == 0);
		CHECK(a->mac && strcmp(a->mac, "00:1a:2b:3c:4d:5e") == 0);
		CHECK(a->carrier == 1 && b->carrier == -1);
		CHECK(a->operstate && strcmp(a->operstate, "up") == 0);
		CHECK(a->driver && strcmp(a->driver, "igb") == 0 && b->driver == NULL);
		CHECK(a->pci_id && strcmp(a->pci_id, "8086:1533") == 0);
		CHECK(a->bus_id && strcmp(a->bus_id, "0000:03:00.0") == 0);
		const struct inventory_nic *v = &inv.nics[2];
		CHECK(strcmp(v->name, "ens3") == 0 && v->driver && strcmp(v->driver, "virtio_net") == 0);
		CHECK(v->pci_id && strcmp(v->pci_id, "1af4:1000") == 0);
		CHECK(v->bus_id && strcmp(v->bus_id, "virtio0") == 0);
	}
	CHECK_EQ_U64(inv.ncontrollers, 2);
	if (inv.ncontrollers == 2) {
		const struct inventory_controller *a = &inv.controllers[0], *b = &inv.controllers[1];
		CHECK(strcmp(a->slot, "0000:00:1f.2") == 0 && a->class == 0x010601);
		CHECK(a->driver && strcmp(a->driver, "ahci") == 0);
		CHECK(strcmp(b->slot, "0000:05:00.0") == 0 && b->pci_id && strcmp(b->pci_id, "1000:0073") == 0);
		CHECK(b->driver == NULL);
	}

	json_object *j = inventory_json(&inv), *o, *e;
	CHECK(strcmp(jstr(j, "firmware"), "uefi") == 0 && strcmp(jstr(j, "model"), "PowerEdge R710") == 0);
	CHECK(json_object_object_get_ex(j, "cpu", &o) && json_object_get_int(json_object_object_get(o, "sockets")) == 2);
	CHECK(json_object_get_int64(json_object_object_get(j, "memory_bytes")) == 16318000ll * 1024);
	CHECK(json_object_object_get_ex(j, "nics", &o) && json_object_array_length(o) == 3);
	e = json_object_array_get_idx(o, 1);
	CHECK(e && jnull(e, "link") && jnull(e, "driver") && strcmp(jstr(e, "state"), "down") == 0);
	e = json_object_array_get_idx(o, 0);
	CHECK(e && json_object_get_boolean(json_object_object_get(e, "link")));
	CHECK(json_object_object_get_ex(j, "storage_controllers", &o) && json_object_array_length(o) == 2);
	e = json_object_array_get_idx(o, 1);
	CHECK(e && jnull(e, "driver") && strcmp(jstr(e, "class"), "0x010400") == 0 &&
	      strcmp(jstr(e, "pci_id"), "1000:0073") == 0);
	json_object_put(j);
	inventory_release(&inv);
	CHECK(inv.nics == NULL && inv.vendor == NULL);
}

/* Without /sys/firmware/efi it is BIOS; with no /sys at all, an error. */
static void test_bios_and_missing(void)
{
	struct inventory inv = { 0 };
	test_run("rm -rf '%s/sys/firmware/efi'", root);
	CHECK(inventory_read(&inv, root) == 0 && !inv.uefi);
	inventory_release(&inv);
	CLEANUP_FREE char *empty = xasprintf("%s/empty", root);
	test_run("mkdir -p '%s'", empty);
	CHECK(inventory_read(&inv, empty) == -1);
	inventory_release(&inv);
}

struct name_case {
	const char *override, *serial, *mac, *want;
};

static const struct name_case names[] = {
	{ NULL, "7XK 9/2J1", "00:1a:2b:3c:4d:5e", "7XK-9-2J1" },
	{ NULL, "To Be Filled By O.E.M.", "00:1A:2B:3C:4D:5E", "coldclone-001a2b3c4d5e" },
	{ NULL, "Default string", "00:1a:2b:3c:4d:5e", "coldclone-001a2b3c4d5e" },
	{ NULL, "0123456789", "00:1a:2b:3c:4d:5e", "coldclone-001a2b3c4d5e" },
	{ NULL, "00000000", "00:1a:2b:3c:4d:5e", "coldclone-001a2b3c4d5e" },
	{ NULL, "0 0 0", "00:1a:2b:3c:4d:5e", "coldclone-001a2b3c4d5e" },
	{ NULL, "XXXXXXXX", "00:1a:2b:3c:4d:5e", "coldclone-001a2b3c4d5e" },
	{ NULL, "system serial number", "00:1a:2b:3c:4d:5e", "coldclone-001a2b3c4d5e" },
	{ NULL, NULL, "00:1a:2b:3c:4d:5e", "coldclone-001a2b3c4d5e" },
	{ NULL, NULL, "00:00:00:00:00:00", "coldclone-machine" },
	{ NULL, NULL, NULL, "coldclone-machine" },
	{ NULL, "..hidden/../x", NULL, "hidden-..-x" },
	{ NULL, "CZ3\xc3\xa9" "4", NULL, "CZ3-4" },
	{ "web server #1", "7XK92J1", NULL, "web-server-1" },
	{ "db.example-01_a", "7XK92J1", NULL, "db.example-01_a" },
	{ "///", "7XK92J1", NULL, "7XK92J1" },
	{ "", "7XK92J1", NULL, "7XK92J1" },
	{ NULL, "ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJ0123456789", NULL,
	  "ABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJABCDEFGHIJ0123" },
};

static void test_names(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct inventory_nic nic = { .name = (char *)"eno1", .mac = (char *)names[i].mac };
		struct inventory inv = { .serial = (char *)names[i].serial, .nics = &nic, .nnics = names[i].mac ? 1 : 0 };
		char *got = inventory_machine_name(&inv, names[i].override);
		if (strcmp(got, names[i].want) != 0) {
			fprintf(stderr, "name case %zu: got '%s', expected '%s'\n", i, got, names[i].want);
			CHECK(!"machine name");
		} else
			CHECK(1);
		free(got);
	}
	struct inventory none = { 0 };
	CHECK_EQ_U64(inventory_vm_memory_mib(&none), 1024);
	none.memory_bytes = 1ull << 30;
	CHECK_EQ_U64(inventory_vm_memory_mib(&none), 1024);
}

/* The host name found on the disks comes after --name and before the DMI serial. */
struct host_case {
	const char *override, *hostname, *serial, *want;
};

static const struct host_case host_names[] = {
	{ NULL, "SRV-FIN-01", "7XK92J1", "SRV-FIN-01" },
	{ "web1", "SRV-FIN-01", "7XK92J1", "web1" },
	{ "///", "SRV-FIN-01", "7XK92J1", "SRV-FIN-01" },
	{ NULL, NULL, "7XK92J1", "7XK92J1" },
	{ NULL, "SRV-M\xc3\x9c" "NCHEN", "7XK92J1", "SRV-M-NCHEN" },
	{ NULL, "db01.example.com", NULL, "db01.example.com" },
	{ NULL, "--", "7XK92J1", "7XK92J1" },
	{ NULL, "SRV-FIN-01", "To Be Filled By O.E.M.", "SRV-FIN-01" },
	{ NULL, NULL, "To Be Filled By O.E.M.", "coldclone-001a2b3c4d5e" },
};

static void test_host_names(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(host_names); i++) {
		const struct host_case *c = &host_names[i];
		struct inventory_nic nic = { .name = (char *)"eno1", .mac = (char *)"00:1a:2b:3c:4d:5e" };
		struct inventory inv = { .serial = (char *)c->serial, .nics = &nic, .nnics = 1 };
		inventory_set_os_host(&inv, c->hostname, "windows");
		CHECK(c->hostname ? strcmp(inv.os, "windows") == 0 : inv.os[0] == '\0' && !inv.os_hostname);
		char *got = inventory_machine_name(&inv, c->override);
		if (strcmp(got, c->want) != 0) {
			fprintf(stderr, "host name case %zu: got '%s', expected '%s'\n", i, got, c->want);
			CHECK(!"machine name with host name");
		} else
			CHECK(1);
		free(got);
		inventory_set_os_host(&inv, NULL, NULL);
		CHECK(inv.os_hostname == NULL && inv.os[0] == '\0');
	}
}

int main(void)
{
	snprintf(root, sizeof root, "/tmp/cc-inventory.XXXXXX");
	if (!mkdtemp(root))
		return perror("mkdtemp"), 1;
	build_tree();
	test_read();
	test_bios_and_missing();
	test_names();
	test_host_names();
	test_run("rm -rf '%s'", root);
	return test_summary();
}
