/* vmdesc.c - see vmdesc.h. Text rendering only; every string from the spec is escaped
 * for the target syntax (XML, VMX "|XX", PowerShell single quotes). References: DMTF
 * DSP0243 (OVF 1.0) and the CIM RASD ResourceType values; libvirt's domain schema
 * (virt-xml-validate); VMware's .vmx keys as Workstation writes them. */
#define _GNU_SOURCE
#include "vmdesc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define STREAM_OPTIMIZED "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
#define SCSI_RESERVED_UNIT 7  /* the controller's own SCSI ID */
#define IDE_MAX_DISKS 4       /* two channels, master and slave */

/* ---- growable text ---- */

struct sb {
	char *s;
	size_t len, cap;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (b->len + (size_t)n + 1 > b->cap) {
		b->cap = MAX(b->cap * 2, b->len + (size_t)n + 1 + 1024);
		b->s = xrealloc(b->s, b->cap);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* ---- escaping ---- */

/* Length of the valid UTF-8 sequence at s, or 0 (XML rejects invalid UTF-8 outright). */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* XML text and attribute values: the five entities; control characters and invalid
 * UTF-8 (which XML 1.0 cannot carry even escaped) become '?'. */
static char *xml_escape(const char *in)
{
	struct sb b = { 0 };
	sb_printf(&b, "%s", "");
	for (const unsigned char *s = (const unsigned char *)in; s && *s; s++) {
		size_t u = *s >= 0x80 ? utf8_len(s) : 1;
		if (*s == '&') sb_printf(&b, "&amp;");
		else if (*s == '<') sb_printf(&b, "&lt;");
		else if (*s == '>') sb_printf(&b, "&gt;");
		else if (*s == '"') sb_printf(&b, "&quot;");
		else if (*s == '\'') sb_printf(&b, "&apos;");
		else if (u == 0 || (*s < 0x20 && *s != '\t'))
			sb_printf(&b, "?");
		else {
			sb_printf(&b, "%.*s", (int)u, (const char *)s);
			s += u - 1;
		}
	}
	return b.s;
}

/* A .vmx value inside double quotes: VMware writes '"', '|', '#' and control
 * characters as "|XX" (hex). */
static char *vmx_escape(const char *in)
{
	struct sb b = { 0 };
	sb_printf(&b, "%s", "");
	for (const unsigned char *s = (const unsigned char *)in; s && *s; s++)
		if (*s < 0x20 || *s == '"' || *s == '|' || *s == '#')
			sb_printf(&b, "|%02X", *s);
		else
			sb_printf(&b, "%c", *s);
	return b.s;
}

/* A PowerShell single-quoted string body: PowerShell also takes U+2018..U+201B as
 * single quotes, so each of them is doubled as an ASCII pair; control characters go. */
static char *ps_escape(const char *in)
{
	struct sb b = { 0 };
	sb_printf(&b, "%s", "");
	for (const unsigned char *s = (const unsigned char *)in; s && *s; s++) {
		if (*s == '\'')
			sb_printf(&b, "''");
		else if (s[0] == 0xe2 && s[1] == 0x80 && s[2] >= 0x98 && s[2] <= 0x9b) {
			sb_printf(&b, "''");
			s += 2;
		} else if (*s >= 0x20)
			sb_printf(&b, "%c", *s);
	}
	return b.s;
}

/* ---- checks and disk placement ---- */

static bool format_in(const char *format, const char *const *formats)
{
	for (size_t i = 0; format && formats[i]; i++)
		if (strcmp(format, formats[i]) == 0)
			return true;
	return false;
}

static int check_mac(const char *mac)
{
	unsigned v[6];
	char end;
	if (!mac || sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6 ||
	    strlen(mac) != 17)
		return error("vm descriptor: bad MAC address '%s': expected aa:bb:cc:dd:ee:ff", mac ? mac : "");
	return 0;
}

int vmdesc_bus_by_name(const char *name, enum vm_bus *bus)
{
	static const struct { const char *name; enum vm_bus bus; } buses[] = {
		{ "sata", VM_BUS_SATA }, { "scsi", VM_BUS_SCSI }, { "ide", VM_BUS_IDE }, { "virtio", VM_BUS_VIRTIO },
	};
	for (size_t i = 0; i < ARRAY_SIZE(buses); i++)
		if (strcmp(name, buses[i].name) == 0) {
			*bus = buses[i].bus;
			return 0;
		}
	return error("VM disk bus '%s' is not sata, scsi, ide or virtio", name);
}

int vmdesc_override(struct vm_spec *spec, const struct vm_overrides *o)
{
	if (o->cpus)
		spec->cpus = o->cpus;
	if (o->memory_mib)
		spec->memory_mib = o->memory_mib;
	if (o->nics)
		spec->nics = o->nics;
	if (!o->firmware)
		return 0;
	if (strcmp(o->firmware, "bios") == 0)
		spec->firmware = VM_FIRMWARE_BIOS;
	else if (strcmp(o->firmware, "uefi") == 0)
		spec->firmware = VM_FIRMWARE_UEFI;
	else
		return error("VM firmware '%s' is not bios or uefi", o->firmware);
	return 0;
}

int vmdesc_check(const struct vm_spec *spec)
{
	if (!spec->name || !*spec->name)
		return error("vm descriptor: the VM has no name");
	if (spec->cpus < 1 || spec->cpus > 768)
		return error("vm descriptor: %u CPUs: expected 1 to 768", spec->cpus);
	if (spec->memory_mib < 4 || spec->memory_mib > (24ull << 20))
		return error("vm descriptor: %" PRIu64 " MiB of memory: expected 4 MiB to 24 TiB", spec->memory_mib);
	if (spec->ndisks < 1 || spec->ndisks > VMDESC_MAX_DISKS)
		return error("vm descriptor: %zu disks: expected 1 to %d", spec->ndisks, VMDESC_MAX_DISKS);
	if (spec->nics > VMDESC_MAX_NICS)
		return error("vm descriptor: %zu NICs: expected at most %d", spec->nics, VMDESC_MAX_NICS);
	for (size_t i = 0; i < spec->ndisks; i++)
		if (!spec->disks[i].file || !*spec->disks[i].file || !spec->disks[i].format)
			return error("vm descriptor: disk %zu has no file name or format", i + 1);
	for (size_t i = 0; spec->macs && i < spec->nics; i++)
		if (check_mac(spec->macs[i]) < 0)
			return -1;
	return 0;
}

/* Checks common to a renderer: the spec, and every disk format the target takes. */
static int check_for(const struct vm_spec *spec, const char *what, const char *const *formats)
{
	if (vmdesc_check(spec) < 0)
		return -1;
	for (size_t i = 0; i < spec->ndisks; i++) {
		if (format_in(spec->disks[i].format, formats))
			continue;
		struct sb list = { 0 };
		for (size_t f = 0; formats[f]; f++)
			sb_printf(&list, "%s%s", f ? ", " : "", formats[f]);
		error("%s descriptor: disk '%s' is %s, which %s cannot use (it takes %s)", what,
		      spec->disks[i].file, spec->disks[i].format, what, list.s);
		free(list.s);
		return -1;
	}
	return 0;
}

/* Where a disk sits: bus (virtio already mapped for targets without it), controller
 * number on that bus and unit on the controller. */
struct slot {
	enum vm_bus bus;
	unsigned ctrl, unit;
};

static int place_disks(const struct vm_spec *spec, bool has_virtio, struct slot *slots)
{
	unsigned count[4] = { 0 };
	for (size_t i = 0; i < spec->ndisks; i++) {
		enum vm_bus bus = spec->disks[i].bus;
		if (bus == VM_BUS_VIRTIO && !has_virtio)
			bus = VM_BUS_SCSI;
		unsigned k = count[bus]++;
		slots[i].bus = bus;
		slots[i].ctrl = bus == VM_BUS_IDE ? k / 2 : 0;
		slots[i].unit = bus == VM_BUS_IDE ? k % 2 : k;
		if (bus == VM_BUS_SCSI && k >= SCSI_RESERVED_UNIT)
			slots[i].unit++;
	}
	if (count[VM_BUS_IDE] > IDE_MAX_DISKS)
		return error("vm descriptor: %u disks on IDE: at most %d fit", count[VM_BUS_IDE], IDE_MAX_DISKS);
	return 0;
}

static bool bus_used(const struct slot *slots, size_t n, enum vm_bus bus, unsigned ctrl)
{
	for (size_t i = 0; i < n; i++)
		if (slots[i].bus == bus && slots[i].ctrl == ctrl)
			return true;
	return false;
}

/* ---- OVF 1.0 ---- */

static const char *ovf_os(enum vm_os os, const char **vmw)
{
	/* CIM_OperatingSystem OsType values, and VMware's guest id for the same thing */
	switch (os) {
	case VM_OS_WINDOWS: *vmw = "windows9Server64Guest"; return "103";
	case VM_OS_LINUX: *vmw = "other3xLinux64Guest"; return "101";
	default: *vmw = "otherGuest64"; return "102";
	}
}

static void ovf_head(struct sb *b, const struct vm_spec *spec, const char *net)
{
	sb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		  "<!-- Written by coldclone %s. Import: vSphere \"Deploy OVF Template\", ovftool, or "
		  "VirtualBox \"Import Appliance\". -->\n"
		  "<Envelope ovf:version=\"1.0\" xml:lang=\"en-US\" xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\"\n"
		  "  xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\"\n"
		  "  xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\"\n"
		  "  xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\"\n"
		  "  xmlns:vmw=\"http://www.vmware.com/schema/ovf\"\n"
		  "  xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
		  "  <References>\n", COLDCLONE_VERSION);
	for (size_t i = 0; i < spec->ndisks; i++) {
		CLEANUP_FREE char *href = xml_escape(spec->disks[i].file);
		sb_printf(b, "    <File ovf:id=\"file%zu\" ovf:href=\"%s\"", i + 1, href);
		if (spec->disks[i].file_size)
			sb_printf(b, " ovf:size=\"%" PRIu64 "\"", spec->disks[i].file_size);
		sb_printf(b, "/>\n");
	}
	sb_printf(b, "  </References>\n  <DiskSection>\n    <Info>Virtual disk information</Info>\n");
	for (size_t i = 0; i < spec->ndisks; i++)
		sb_printf(b, "    <Disk ovf:diskId=\"vmdisk%zu\" ovf:fileRef=\"file%zu\" ovf:capacity=\"%" PRIu64
			  "\" ovf:capacityAllocationUnits=\"byte\" ovf:format=\"" STREAM_OPTIMIZED "\"/>\n",
			  i + 1, i + 1, spec->disks[i].capacity);
	sb_printf(b, "  </DiskSection>\n");
	if (spec->nics)
		sb_printf(b, "  <NetworkSection>\n    <Info>The logical networks used</Info>\n"
			  "    <Network ovf:name=\"%s\">\n      <Description>The %s network</Description>\n"
			  "    </Network>\n  </NetworkSection>\n", net, net);
}

static void ovf_system(struct sb *b, const struct vm_spec *spec, const char *name)
{
	const char *vmw, *id = ovf_os(spec->os, &vmw);
	uint64_t mem = ROUND_UP(spec->memory_mib, 4);
	sb_printf(b, "  <VirtualSystem ovf:id=\"%s\">\n    <Info>A virtual machine cloned by coldclone</Info>\n"
		  "    <Name>%s</Name>\n"
		  "    <OperatingSystemSection ovf:id=\"%s\" vmw:osType=\"%s\">\n"
		  "      <Info>The kind of installed guest operating system</Info>\n    </OperatingSystemSection>\n"
		  "    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n"
		  "      <System>\n        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
		  "        <vssd:InstanceID>0</vssd:InstanceID>\n"
		  "        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>\n"
		  "        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>\n      </System>\n",
		  name, name, id, vmw, name);
	/* RASD elements stay in the schema's (alphabetical) order */
	sb_printf(b, "      <Item>\n        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"
		  "        <rasd:Description>Number of Virtual CPUs</rasd:Description>\n"
		  "        <rasd:ElementName>%u virtual CPU(s)</rasd:ElementName>\n"
		  "        <rasd:InstanceID>1</rasd:InstanceID>\n        <rasd:ResourceType>3</rasd:ResourceType>\n"
		  "        <rasd:VirtualQuantity>%u</rasd:VirtualQuantity>\n      </Item>\n", spec->cpus, spec->cpus);
	sb_printf(b, "      <Item>\n        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n"
		  "        <rasd:Description>Memory Size</rasd:Description>\n"
		  "        <rasd:ElementName>%" PRIu64 " MB of memory</rasd:ElementName>\n"
		  "        <rasd:InstanceID>2</rasd:InstanceID>\n        <rasd:ResourceType>4</rasd:ResourceType>\n"
		  "        <rasd:VirtualQuantity>%" PRIu64 "</rasd:VirtualQuantity>\n      </Item>\n", mem, mem);
}

/* Controller InstanceIDs: SATA 3, SCSI 4, IDE 5 and 6 (only those in use are written). */
static unsigned ovf_ctrl_id(enum vm_bus bus, unsigned ctrl)
{
	return bus == VM_BUS_SATA ? 3 : bus == VM_BUS_SCSI ? 4 : 5 + ctrl;
}

static void ovf_controllers(struct sb *b, const struct slot *slots, size_t n)
{
	static const struct { enum vm_bus bus; unsigned ctrl; const char *desc, *sub; int type; } c[] = {
		{ VM_BUS_SATA, 0, "SATA Controller", "vmware.sata.ahci", 20 },
		{ VM_BUS_SCSI, 0, "SCSI Controller", "lsilogicsas", 6 },
		{ VM_BUS_IDE, 0, "IDE Controller", NULL, 5 },
		{ VM_BUS_IDE, 1, "IDE Controller", NULL, 5 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		if (!bus_used(slots, n, c[i].bus, c[i].ctrl))
			continue;
		sb_printf(b, "      <Item>\n        <rasd:Address>%u</rasd:Address>\n"
			  "        <rasd:Description>%s</rasd:Description>\n"
			  "        <rasd:ElementName>%s %u</rasd:ElementName>\n"
			  "        <rasd:InstanceID>%u</rasd:InstanceID>\n",
			  c[i].ctrl, c[i].desc, c[i].desc, c[i].ctrl, ovf_ctrl_id(c[i].bus, c[i].ctrl));
		if (c[i].sub)
			sb_printf(b, "        <rasd:ResourceSubType>%s</rasd:ResourceSubType>\n", c[i].sub);
		sb_printf(b, "        <rasd:ResourceType>%d</rasd:ResourceType>\n      </Item>\n", c[i].type);
	}
}

static void ovf_disks(struct sb *b, const struct vm_spec *spec, const struct slot *slots)
{
	for (size_t i = 0; i < spec->ndisks; i++)
		sb_printf(b, "      <Item>\n        <rasd:AddressOnParent>%u</rasd:AddressOnParent>\n"
			  "        <rasd:ElementName>Hard Disk %zu</rasd:ElementName>\n"
			  "        <rasd:HostResource>ovf:/disk/vmdisk%zu</rasd:HostResource>\n"
			  "        <rasd:InstanceID>%zu</rasd:InstanceID>\n        <rasd:Parent>%u</rasd:Parent>\n"
			  "        <rasd:ResourceType>17</rasd:ResourceType>\n      </Item>\n",
			  slots[i].unit, i + 1, i + 1, 10 + i, ovf_ctrl_id(slots[i].bus, slots[i].ctrl));
}

static void ovf_nics(struct sb *b, const struct vm_spec *spec, const char *net)
{
	const char *model = spec->nic_model == VM_NIC_PARAVIRT ? "VmxNet3" : "E1000";
	for (size_t i = 0; i < spec->nics; i++) {
		sb_printf(b, "      <Item>\n");
		if (spec->macs)
			sb_printf(b, "        <rasd:Address>%s</rasd:Address>\n", spec->macs[i]);
		sb_printf(b, "        <rasd:AddressOnParent>%zu</rasd:AddressOnParent>\n"
			  "        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n"
			  "        <rasd:Connection>%s</rasd:Connection>\n"
			  "        <rasd:Description>%s ethernet adapter on &quot;%s&quot;</rasd:Description>\n"
			  "        <rasd:ElementName>Network adapter %zu</rasd:ElementName>\n"
			  "        <rasd:InstanceID>%zu</rasd:InstanceID>\n"
			  "        <rasd:ResourceSubType>%s</rasd:ResourceSubType>\n"
			  "        <rasd:ResourceType>10</rasd:ResourceType>\n      </Item>\n",
			  7 + i, net, model, net, i + 1, 10 + VMDESC_MAX_DISKS + i, model);
	}
}

static const char *const ovf_formats[] = { "vmdk-stream", NULL };

char *vmdesc_ovf(const struct vm_spec *spec)
{
	struct slot slots[VMDESC_MAX_DISKS];
	if (check_for(spec, "ovf", ovf_formats) < 0 || place_disks(spec, false, slots) < 0)
		return NULL;
	CLEANUP_FREE char *name = xml_escape(spec->name);
	CLEANUP_FREE char *net = xml_escape(spec->network ? spec->network : "VM Network");
	struct sb b = { 0 };
	ovf_head(&b, spec, net);
	ovf_system(&b, spec, name);
	ovf_controllers(&b, slots, spec->ndisks);
	ovf_disks(&b, spec, slots);
	ovf_nics(&b, spec, net);
	if (spec->firmware == VM_FIRMWARE_UEFI)
		sb_printf(&b, "      <vmw:Config ovf:required=\"false\" vmw:key=\"firmware\" vmw:value=\"efi\"/>\n");
	sb_printf(&b, "    </VirtualHardwareSection>\n  </VirtualSystem>\n</Envelope>\n");
	return b.s;
}

/* ---- VMX ---- */

static const char *vmx_guest(enum vm_os os)
{
	return os == VM_OS_WINDOWS ? "windows9srv-64" : os == VM_OS_LINUX ? "other3xlinux-64" : "other-64";
}

static void vmx_head(struct sb *b, const struct vm_spec *spec)
{
	CLEANUP_FREE char *name = vmx_escape(spec->name);
	sb_printf(b, ".encoding = \"UTF-8\"\n"
		  "# Written by coldclone %s. Workstation/Player: open this file. ESXi cannot run\n"
		  "# monolithicSparse or streamOptimized disks in place: upload, then per disk\n"
		  "#   vmkfstools -i DISK.vmdk -d thin DISK-esx.vmdk  and point the fileName below at it.\n"
		  "config.version = \"8\"\nvirtualHW.version = \"13\"\n"
		  "displayName = \"%s\"\nguestOS = \"%s\"\nfirmware = \"%s\"\n"
		  "numvcpus = \"%u\"\nmemsize = \"%" PRIu64 "\"\n"
		  "pciBridge0.present = \"TRUE\"\n", COLDCLONE_VERSION, name, vmx_guest(spec->os),
		  spec->firmware == VM_FIRMWARE_UEFI ? "efi" : "bios", spec->cpus, ROUND_UP(spec->memory_mib, 4));
	for (int i = 4; i <= 7; i++)  /* PCIe root ports, as Workstation writes them */
		sb_printf(b, "pciBridge%d.present = \"TRUE\"\npciBridge%d.virtualDev = \"pcieRootPort\"\n"
			  "pciBridge%d.functions = \"8\"\n", i, i, i);
}

static void vmx_disks(struct sb *b, const struct vm_spec *spec, const struct slot *slots)
{
	static const char *const prefix[] = { [VM_BUS_SATA] = "sata", [VM_BUS_SCSI] = "scsi", [VM_BUS_IDE] = "ide" };
	if (bus_used(slots, spec->ndisks, VM_BUS_SATA, 0))
		sb_printf(b, "sata0.present = \"TRUE\"\n");
	if (bus_used(slots, spec->ndisks, VM_BUS_SCSI, 0))
		sb_printf(b, "scsi0.present = \"TRUE\"\nscsi0.virtualDev = \"lsisas1068\"\n");
	for (size_t i = 0; i < spec->ndisks; i++) {
		CLEANUP_FREE char *file = vmx_escape(spec->disks[i].file);
		const char *p = prefix[slots[i].bus];
		unsigned c = slots[i].ctrl, u = slots[i].unit;
		sb_printf(b, "%s%u:%u.present = \"TRUE\"\n%s%u:%u.fileName = \"%s\"\n", p, c, u, p, c, u, file);
	}
}

static void vmx_nics(struct sb *b, const struct vm_spec *spec)
{
	CLEANUP_FREE char *net = vmx_escape(spec->network ? spec->network : "VM Network");
	for (size_t i = 0; i < spec->nics; i++) {
		sb_printf(b, "ethernet%zu.present = \"TRUE\"\nethernet%zu.virtualDev = \"%s\"\n"
			  "ethernet%zu.networkName = \"%s\"\nethernet%zu.connectionType = \"bridged\"\n",
			  i, i, spec->nic_model == VM_NIC_PARAVIRT ? "vmxnet3" : "e1000", i, net, i);
		if (spec->macs)  /* the source's MAC is outside VMware's range: allow it */
			sb_printf(b, "ethernet%zu.addressType = \"static\"\nethernet%zu.address = \"%s\"\n"
				  "ethernet%zu.checkMACAddress = \"FALSE\"\n", i, i, spec->macs[i], i);
		else
			sb_printf(b, "ethernet%zu.addressType = \"generated\"\n", i);
	}
}

static const char *const vmx_formats[] = { "vmdk", "vmdk-stream", NULL };

char *vmdesc_vmx(const struct vm_spec *spec)
{
	struct slot slots[VMDESC_MAX_DISKS];
	if (check_for(spec, "vmx", vmx_formats) < 0 || place_disks(spec, false, slots) < 0)
		return NULL;
	struct sb b = { 0 };
	vmx_head(&b, spec);
	vmx_disks(&b, spec, slots);
	vmx_nics(&b, spec);
	return b.s;
}

/* ---- libvirt ---- */

static void libvirt_head(struct sb *b, const struct vm_spec *spec, bool ide)
{
	CLEANUP_FREE char *name = xml_escape(spec->name);
	sb_printf(b, "<!-- Written by coldclone %s. Put the disk images in the directory named below, then:\n"
		  "     virsh define THIS-FILE && virsh start NAME -->\n"
		  "<domain type='kvm'>\n  <name>%s</name>\n"
		  "  <memory unit='MiB'>%" PRIu64 "</memory>\n  <vcpu placement='static'>%u</vcpu>\n",
		  COLDCLONE_VERSION, name, spec->memory_mib, spec->cpus);
	/* q35 has no IDE controller; i440fx ("pc") does */
	const char *machine = ide ? "pc" : "q35";
	if (spec->firmware == VM_FIRMWARE_UEFI)
		sb_printf(b, "  <os firmware='efi'>\n    <type arch='x86_64' machine='%s'>hvm</type>\n"
			  "    <firmware>\n      <!-- the clone's boot loader may not be signed for the "
			  "enrolled keys -->\n      <feature enabled='no' name='secure-boot'/>\n    </firmware>\n"
			  "  </os>\n", machine);
	else
		sb_printf(b, "  <os>\n    <type arch='x86_64' machine='%s'>hvm</type>\n  </os>\n", machine);
	sb_printf(b, "  <features>\n    <acpi/>\n    <apic/>\n  </features>\n  <cpu mode='host-model'/>\n"
		  "  <clock offset='%s'/>\n  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n"
		  "  <on_crash>destroy</on_crash>\n  <devices>\n",
		  spec->os == VM_OS_WINDOWS ? "localtime" : "utc");
}

static void libvirt_disks(struct sb *b, const struct vm_spec *spec, const struct slot *slots)
{
	static const char *const bus[] = { [VM_BUS_SATA] = "sata", [VM_BUS_SCSI] = "scsi",
					   [VM_BUS_IDE] = "ide", [VM_BUS_VIRTIO] = "virtio" };
	CLEANUP_FREE char *dir = xml_escape(spec->libvirt_dir ? spec->libvirt_dir : "/var/lib/libvirt/images");
	unsigned sd = 0, hd = 0, vd = 0;  /* sata and scsi share the sdX names */
	bool scsi = bus_used(slots, spec->ndisks, VM_BUS_SCSI, 0);
	for (size_t i = 0; i < spec->ndisks; i++) {
		CLEANUP_FREE char *file = xml_escape(spec->disks[i].file);
		enum vm_bus bb = slots[i].bus;
		char dev[8];
		snprintf(dev, sizeof dev, "%s%c", bb == VM_BUS_IDE ? "hd" : bb == VM_BUS_VIRTIO ? "vd" : "sd",
			 'a' + (bb == VM_BUS_IDE ? hd++ : bb == VM_BUS_VIRTIO ? vd++ : sd++));
		sb_printf(b, "    <disk type='file' device='disk'>\n      <driver name='qemu' type='%s'/>\n"
			  "      <source file='%s/%s'/>\n      <target dev='%s' bus='%s'/>\n",
			  spec->disks[i].format, dir, file, dev, bus[bb]);
		if (i == 0)
			sb_printf(b, "      <boot order='1'/>\n");
		sb_printf(b, "    </disk>\n");
	}
	if (scsi)  /* LSI SAS is not in QEMU; virtio-scsi needs a driver in Windows */
		sb_printf(b, "    <controller type='scsi' index='0' model='virtio-scsi'/>\n");
}

static void libvirt_nics(struct sb *b, const struct vm_spec *spec)
{
	CLEANUP_FREE char *net = xml_escape(spec->network ? spec->network : "default");
	for (size_t i = 0; i < spec->nics; i++) {
		sb_printf(b, "    <interface type='network'>\n");
		if (spec->macs)
			sb_printf(b, "      <mac address='%s'/>\n", spec->macs[i]);
		sb_printf(b, "      <source network='%s'/>\n      <model type='%s'/>\n    </interface>\n", net,
			  spec->nic_model == VM_NIC_PARAVIRT ? "virtio" : "e1000e");
	}
}

static const char *const libvirt_formats[] = { "qcow2", "raw", NULL };

char *vmdesc_libvirt(const struct vm_spec *spec)
{
	struct slot slots[VMDESC_MAX_DISKS];
	if (check_for(spec, "libvirt", libvirt_formats) < 0 || place_disks(spec, true, slots) < 0)
		return NULL;
	if (spec->libvirt_dir && spec->libvirt_dir[0] != '/')
		return error("libvirt descriptor: image directory '%s' is not absolute", spec->libvirt_dir), NULL;
	struct sb b = { 0 };
	libvirt_head(&b, spec, bus_used(slots, spec->ndisks, VM_BUS_IDE, 0));
	libvirt_disks(&b, spec, slots);
	libvirt_nics(&b, spec);
	sb_printf(&b, "    <serial type='pty'/>\n    <console type='pty'/>\n"
		  "    <input type='tablet' bus='usb'/>\n    <graphics type='vnc' port='-1' autoport='yes'/>\n"
		  "    <video>\n      <model type='vga'/>\n    </video>\n  </devices>\n</domain>\n");
	return b.s;
}

/* ---- Hyper-V PowerShell ---- */

static bool is_vhd(const char *format)
{
	return strcmp(format, "vhd") == 0 || strcmp(format, "vhd-fixed") == 0;
}

static void ps_head(struct sb *b, const struct vm_spec *spec, int gen)
{
	CLEANUP_FREE char *name = ps_escape(spec->name);
	CLEANUP_FREE char *sw = ps_escape(spec->network ? spec->network : "");
	sb_printf(b, "# Written by coldclone %s: creates the Hyper-V VM '%s' from the disk files beside\n"
		  "# this script. Run it in an elevated PowerShell on the Hyper-V host:\n"
		  "#   powershell -ExecutionPolicy Bypass -File .\\THIS-SCRIPT.ps1\n"
		  "# Generation %d: the source booted through %s.\n"
		  "$ErrorActionPreference = 'Stop'\n$Name = '%s'\n$Dir = $PSScriptRoot\n"
		  "$Switch = '%s'  # a virtual switch name, or '' to leave the adapters unconnected\n\n",
		  COLDCLONE_VERSION, name, gen, gen == 2 ? "UEFI" : "BIOS", name, sw);
	uint64_t mem = ROUND_UP(spec->memory_mib, 2);  /* Hyper-V wants a multiple of 2 MB */
	sb_printf(b, "New-VM -Name $Name -Generation %d -MemoryStartupBytes %" PRIu64 "MB -NoVHD -Path $Dir | Out-Null\n"
		  "Set-VMMemory -VMName $Name -DynamicMemoryEnabled $false\n"
		  "Set-VMProcessor -VMName $Name -Count %u\n", gen, mem, spec->cpus);
}

/* Gen 1 boots only from IDE: the boot disk at IDE 0:0, the next at 0:1 and 1:1 (1:0 holds
 * the DVD drive), the rest on the SCSI controller (needs integration services). */
static void ps_disk_slot(struct sb *b, int gen, size_t i, unsigned *scsi)
{
	static const unsigned ide[][2] = { { 0, 0 }, { 0, 1 }, { 1, 1 } };
	if (gen == 1 && i < ARRAY_SIZE(ide))
		sb_printf(b, "-ControllerType IDE -ControllerNumber %u -ControllerLocation %u", ide[i][0], ide[i][1]);
	else
		sb_printf(b, "-ControllerType SCSI -ControllerNumber 0 -ControllerLocation %u", (*scsi)++);
}

static void ps_disks(struct sb *b, const struct vm_spec *spec, int gen)
{
	unsigned scsi = 0;
	if (gen == 1 && spec->ndisks > 3)
		sb_printf(b, "if (-not (Get-VMScsiController -VMName $Name)) { Add-VMScsiController -VMName $Name }\n");
	for (size_t i = 0; i < spec->ndisks; i++) {
		const struct vm_disk *d = &spec->disks[i];
		CLEANUP_FREE char *file = ps_escape(d->file);
		CLEANUP_FREE char *vhdx = NULL;
		if (gen == 2 && is_vhd(d->format)) {
			vhdx = xasprintf("%sx", file);
			sb_printf(b, "# Generation 2 takes only VHDX: convert (a copy; the .vhd stays)\n"
				  "Convert-VHD -Path (Join-Path $Dir '%s') -DestinationPath (Join-Path $Dir '%s') "
				  "-VHDType Dynamic\n", file, vhdx);
		}
		sb_printf(b, "Add-VMHardDiskDrive -VMName $Name ");
		ps_disk_slot(b, gen, i, &scsi);
		sb_printf(b, " -Path (Join-Path $Dir '%s')\n", vhdx ? vhdx : file);
	}
}

static void ps_firmware(struct sb *b, const struct vm_spec *spec)
{
	sb_printf(b, "Set-VMFirmware -VMName $Name -FirstBootDevice "
		  "(Get-VMHardDiskDrive -VMName $Name -ControllerType SCSI -ControllerNumber 0 -ControllerLocation 0)\n");
	if (spec->os == VM_OS_WINDOWS)
		sb_printf(b, "# Secure Boot stays on (template MicrosoftWindows): Windows boot loaders are signed by "
			  "Microsoft.\n");
	else
		sb_printf(b, "# Secure Boot off: this clone's boot loader (%s) may not be signed for Hyper-V's\n"
			  "# default MicrosoftWindows template. A Linux booting through shim also works with\n"
			  "#   Set-VMFirmware -VMName $Name -EnableSecureBoot On -SecureBootTemplate "
			  "MicrosoftUEFICertificateAuthority\n"
			  "Set-VMFirmware -VMName $Name -EnableSecureBoot Off\n",
			  spec->os == VM_OS_LINUX ? "Linux shim/GRUB" : "operating system not identified");
}

static void ps_nics(struct sb *b, const struct vm_spec *spec)
{
	/* New-VM made one adapter */
	if (spec->nics == 0)
		sb_printf(b, "Remove-VMNetworkAdapter -VMName $Name\n");
	for (size_t i = 1; i < spec->nics; i++)
		sb_printf(b, "Add-VMNetworkAdapter -VMName $Name\n");
	if (spec->nics)
		sb_printf(b, "if ($Switch) { Get-VMNetworkAdapter -VMName $Name | Connect-VMNetworkAdapter -SwitchName "
			  "$Switch }\n");
	for (size_t i = 0; spec->macs && i < spec->nics; i++) {
		char mac[13];
		const char *m = spec->macs[i];
		snprintf(mac, sizeof mac, "%.2s%.2s%.2s%.2s%.2s%.2s", m, m + 3, m + 6, m + 9, m + 12, m + 15);
		sb_printf(b, "Set-VMNetworkAdapter -VMNetworkAdapter (Get-VMNetworkAdapter -VMName $Name)[%zu] "
			  "-StaticMacAddress '%s'\n", i, mac);
	}
	if (spec->nics)
		sb_printf(b, "# Guests without Hyper-V integration services (Windows Server 2003, old Linux) need\n"
			  "#   Add-VMNetworkAdapter -VMName $Name -IsLegacy $true   (Generation 1 only)\n");
}

static const char *const hyperv_formats[] = { "vhdx", "vhd", "vhd-fixed", NULL };

char *vmdesc_hyperv_ps1(const struct vm_spec *spec)
{
	if (check_for(spec, "hyperv", hyperv_formats) < 0)
		return NULL;
	if (spec->nics > 8)
		return error("hyperv descriptor: %zu NICs: a Hyper-V VM takes at most 8", spec->nics), NULL;
	int gen = spec->firmware == VM_FIRMWARE_UEFI ? 2 : 1;
	struct sb b = { 0 };
	ps_head(&b, spec, gen);
	ps_disks(&b, spec, gen);
	if (gen == 2)
		ps_firmware(&b, spec);
	ps_nics(&b, spec);
	sb_printf(&b, "Write-Host (\"created VM '{0}': start it with  Start-VM -Name '{0}'\" -f $Name)\n");
	return b.s;
}

/* ---- table ---- */

const struct vmdesc_kind vmdesc_kinds[] = {
	{ .name = "ovf", .suffix = ".ovf", .formats = ovf_formats, .render = vmdesc_ovf },
	{ .name = "vmx", .suffix = ".vmx", .formats = vmx_formats, .render = vmdesc_vmx },
	{ .name = "libvirt", .suffix = ".xml", .formats = libvirt_formats, .render = vmdesc_libvirt },
	{ .name = "hyperv", .suffix = ".ps1", .formats = hyperv_formats, .render = vmdesc_hyperv_ps1 },
};
const size_t vmdesc_nkinds = ARRAY_SIZE(vmdesc_kinds);

bool vmdesc_accepts(const struct vmdesc_kind *kind, const struct vm_spec *spec)
{
	for (size_t i = 0; i < spec->ndisks; i++)
		if (!format_in(spec->disks[i].format, kind->formats))
			return false;
	return spec->ndisks > 0;
}
