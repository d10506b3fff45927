/* test-vmdesc.c - VM descriptors: each renderer on a UEFI machine (two SATA disks, two NICs
 * keeping their MACs, a name full of XML/VMX/PowerShell metacharacters), a BIOS Linux one
 * (IDE boot disk, SCSI and virtio data disks, paravirtual NIC) and a Windows one with nine
 * SCSI disks; the key fields of each, and the specs each must refuse.
 * With an argument DIR it also writes every descriptor there, for
 * tests/integration/test-vmdesc.sh to check with xmllint and virt-xml-validate. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "test.h"
#include "util.h"
#include "vmdesc.h"

#define GIB (1024ull * 1024 * 1024)
#define NASTY "web & <db> \"1\" 'x'"

static const char *const macs[] = { "00:1a:2b:3c:4d:5e", "00:1a:2b:3c:4d:5f" };
static const char *outdir;

struct machine {
	const char *tag;           /* output file stem */
	struct vm_spec spec;       /* disks filled per descriptor kind */
	const char *stems[9];      /* disk file stems */
	enum vm_bus bus[9];
	const char *vhd_format[9]; /* Hyper-V format per disk (vhd or vhdx) */
};

static struct machine machines[] = {
	{ "uefi", { .name = NASTY, .cpus = 4, .memory_mib = 8190, .firmware = VM_FIRMWARE_UEFI, .ndisks = 2,
		    .nics = 2, .macs = macs },
	  { "srv-sda", "srv-sdb" }, { VM_BUS_SATA, VM_BUS_SATA }, { "vhdx", "vhd" } },
	{ "bios", { .name = "legacy01", .cpus = 1, .memory_mib = 2048, .firmware = VM_FIRMWARE_BIOS, .os = VM_OS_LINUX,
		    .ndisks = 3, .nics = 1, .nic_model = VM_NIC_PARAVIRT, .network = "lan", .libvirt_dir = "/srv/vm" },
	  { "srv-sda", "srv-sdb", "srv-sdc" }, { VM_BUS_IDE, VM_BUS_SCSI, VM_BUS_VIRTIO }, { "vhd", "vhd-fixed", "vhd" } },
	{ "win9", { .name = "win9", .cpus = 16, .memory_mib = 65536, .firmware = VM_FIRMWARE_UEFI, .os = VM_OS_WINDOWS,
		    .ndisks = 9 },
	  { "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8" },
	  { VM_BUS_SCSI, VM_BUS_SCSI, VM_BUS_SCSI, VM_BUS_SCSI, VM_BUS_SCSI, VM_BUS_SCSI, VM_BUS_SCSI, VM_BUS_SCSI,
	    VM_BUS_SCSI },
	  { "vhdx", "vhdx", "vhdx", "vhdx", "vhdx", "vhdx", "vhdx", "vhdx", "vhdx" } },
};

/* Fill m's disks for one descriptor kind: extension and format. */
static void set_disks(struct machine *m, struct vm_disk *disks, char names[][32], const char *kind)
{
	for (size_t i = 0; i < m->spec.ndisks; i++) {
		const char *fmt = strcmp(kind, "ovf") == 0 || strcmp(kind, "vmx") == 0 ? "vmdk-stream"
				  : strcmp(kind, "libvirt") == 0 ? (i ? "raw" : "qcow2") : m->vhd_format[i];
		const char *ext = strncmp(fmt, "vmdk", 4) == 0 ? "vmdk" : strncmp(fmt, "vhd-", 4) == 0 ? "vhd" : fmt;
		snprintf(names[i], 32, "%s.%s", m->stems[i], ext);
		disks[i] = (struct vm_disk){ .file = names[i], .format = fmt, .capacity = (10 + i) * GIB,
					     .file_size = 123456 + i, .bus = m->bus[i] };
	}
	m->spec.disks = disks;
}

/* Render kind k for machine m; write it to outdir when set. Caller frees. */
static char *render(struct machine *m, size_t k)
{
	struct vm_disk disks[9];
	char names[9][32];
	const struct vmdesc_kind *kind = &vmdesc_kinds[k];
	set_disks(m, disks, names, kind->name);
	CHECK(vmdesc_accepts(kind, &m->spec));
	char *text = kind->render(&m->spec);
	CHECK(text != NULL);
	if (text && outdir) {
		CLEANUP_FREE char *path = xasprintf("%s/%s%s", outdir, m->tag, kind->suffix);
		FILE *f = fopen(path, "we");
		CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
	}
	m->spec.disks = NULL;
	return text;
}

static void expect(const char *text, const char *const *want, bool present)
{
	for (size_t i = 0; text && want[i]; i++)
		if (!strstr(text, want[i]) != !present) {
			fprintf(stderr, "%s: %s\n", present ? "missing" : "unexpected", want[i]);
			CHECK(!"descriptor content");
		} else
			CHECK(1);
}

#define EXPECT(text, ...) expect(text, (const char *const[]){ __VA_ARGS__, NULL }, true)
#define REFUSE(text, ...) expect(text, (const char *const[]){ __VA_ARGS__, NULL }, false)

enum { OVF, VMX, LIBVIRT, HYPERV };

static void test_uefi(void)
{
	struct machine *m = &machines[0];
	char *t = render(m, OVF);
	EXPECT(t, "<vmw:Config ovf:required=\"false\" vmw:key=\"firmware\" vmw:value=\"efi\"/>",
	       "<File ovf:id=\"file2\" ovf:href=\"srv-sdb.vmdk\" ovf:size=\"123457\"/>",
	       "ovf:fileRef=\"file2\" ovf:capacity=\"11811160064\"",
	       "ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"",
	       "<rasd:VirtualQuantity>4</rasd:VirtualQuantity>", "<rasd:VirtualQuantity>8192</rasd:VirtualQuantity>",
	       "<vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>", "vmware.sata.ahci",
	       "<Name>web &amp; &lt;db&gt; &quot;1&quot; &apos;x&apos;</Name>",
	       "<rasd:Address>00:1a:2b:3c:4d:5f</rasd:Address>", "<rasd:ResourceSubType>E1000</rasd:ResourceSubType>",
	       "<rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource>", "vmw:osType=\"otherGuest64\"",
	       "<Network ovf:name=\"VM Network\">");
	REFUSE(t, "<db>", "lsilogicsas");
	free(t);

	t = render(m, VMX);
	EXPECT(t, "firmware = \"efi\"\n", "numvcpus = \"4\"\n", "memsize = \"8192\"\n",
	       "displayName = \"web & <db> |221|22 'x'\"\n", "sata0.present = \"TRUE\"\n",
	       "sata0:1.fileName = \"srv-sdb.vmdk\"\n", "ethernet1.address = \"00:1a:2b:3c:4d:5f\"\n",
	       "ethernet1.checkMACAddress = \"FALSE\"\n", "ethernet0.virtualDev = \"e1000\"\n");
	free(t);

	t = render(m, LIBVIRT);
	EXPECT(t, "<os firmware='efi'>", "machine='q35'", "<driver name='qemu' type='qcow2'/>",
	       "<driver name='qemu' type='raw'/>", "<source file='/var/lib/libvirt/images/srv-sda.qcow2'/>",
	       "<target dev='sda' bus='sata'/>", "<target dev='sdb' bus='sata'/>",
	       "<mac address='00:1a:2b:3c:4d:5e'/>", "<model type='e1000e'/>", "<memory unit='MiB'>8190</memory>",
	       "<vcpu placement='static'>4</vcpu>", "<name>web &amp; &lt;db&gt; &quot;1&quot; &apos;x&apos;</name>",
	       "<source network='default'/>", "<feature enabled='no' name='secure-boot'/>");
	free(t);

	t = render(m, HYPERV);
	EXPECT(t, "-Generation 2 -MemoryStartupBytes 8190MB", "Set-VMProcessor -VMName $Name -Count 4\n",
	       "$Name = 'web & <db> \"1\" ''x'''\n",
	       "Convert-VHD -Path (Join-Path $Dir 'srv-sdb.vhd') -DestinationPath (Join-Path $Dir 'srv-sdb.vhdx')",
	       "-ControllerType SCSI -ControllerNumber 0 -ControllerLocation 1 -Path (Join-Path $Dir 'srv-sdb.vhdx')",
	       "-ControllerType SCSI -ControllerNumber 0 -ControllerLocation 0 -Path (Join-Path $Dir 'srv-sda.vhdx')",
	       "Set-VMFirmware -VMName $Name -EnableSecureBoot Off\n", "-StaticMacAddress '001a2b3c4d5f'",
	       "Add-VMNetworkAdapter -VMName $Name\n", "-FirstBootDevice");
	REFUSE(t, "ControllerType IDE", "Remove-VMNetworkAdapter");
	free(t);
}

static void test_bios(void)
{
	struct machine *m = &machines[1];
	char *t = render(m, OVF);
	EXPECT(t, "<rasd:ResourceSubType>lsilogicsas</rasd:ResourceSubType>", "<rasd:ResourceType>5</rasd:ResourceType>",
	       "<rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>", "<rasd:Connection>lan</rasd:Connection>",
	       "vmw:osType=\"other3xLinux64Guest\"");
	REFUSE(t, "vmw:key=\"firmware\"", "vmware.sata.ahci", "<rasd:Address>00:");
	free(t);

	t = render(m, VMX);
	EXPECT(t, "firmware = \"bios\"\n", "ide0:0.fileName = \"srv-sda.vmdk\"\n", "scsi0:0.fileName = \"srv-sdb.vmdk\"\n",
	       "scsi0:1.fileName = \"srv-sdc.vmdk\"\n", "scsi0.virtualDev = \"lsisas1068\"\n",
	       "ethernet0.virtualDev = \"vmxnet3\"\n", "guestOS = \"other3xlinux-64\"\n",
	       "ethernet0.addressType = \"generated\"\n", "ethernet0.networkName = \"lan\"\n");
	REFUSE(t, "sata0", "ethernet1");
	free(t);

	t = render(m, LIBVIRT);
	EXPECT(t, "machine='pc'", "<target dev='hda' bus='ide'/>", "<target dev='sda' bus='scsi'/>",
	       "<target dev='vda' bus='virtio'/>", "model='virtio-scsi'", "<model type='virtio'/>",
	       "<source file='/srv/vm/srv-sda.qcow2'/>", "<source network='lan'/>", "<clock offset='utc'/>");
	REFUSE(t, "firmware='efi'", "<mac ");
	free(t);

	t = render(m, HYPERV);
	EXPECT(t, "-Generation 1 -MemoryStartupBytes 2048MB",
	       "-ControllerType IDE -ControllerNumber 0 -ControllerLocation 0 -Path (Join-Path $Dir 'srv-sda.vhd')",
	       "-ControllerType IDE -ControllerNumber 0 -ControllerLocation 1 -Path (Join-Path $Dir 'srv-sdb.vhd')",
	       "-ControllerType IDE -ControllerNumber 1 -ControllerLocation 1", "$Switch = 'lan'");
	REFUSE(t, "Set-VMFirmware", "Convert-VHD", "Add-VMNetworkAdapter -VMName $Name\n", "StaticMacAddress");
	free(t);
}

static void test_windows(void)
{
	struct machine *m = &machines[2];
	char *t = render(m, OVF);
	/* SCSI ID 7 is the controller's: the eighth disk goes to 8 */
	EXPECT(t, "<rasd:AddressOnParent>6</rasd:AddressOnParent>", "<rasd:AddressOnParent>8</rasd:AddressOnParent>",
	       "<rasd:AddressOnParent>9</rasd:AddressOnParent>", "vmw:osType=\"windows9Server64Guest\"");
	REFUSE(t, "<rasd:AddressOnParent>7</rasd:AddressOnParent>", "NetworkSection", "ResourceType>10<");
	free(t);
	t = render(m, VMX);
	EXPECT(t, "scsi0:8.fileName = \"d7.vmdk\"\n", "guestOS = \"windows9srv-64\"\n");
	REFUSE(t, "scsi0:7.", "ethernet0");
	free(t);
	t = render(m, LIBVIRT);
	EXPECT(t, "<target dev='sdi' bus='scsi'/>", "<clock offset='localtime'/>");
	REFUSE(t, "<interface");
	free(t);
	t = render(m, HYPERV);
	EXPECT(t, "-Generation 2", "-ControllerLocation 8 -Path (Join-Path $Dir 'd8.vhdx')",
	       "Remove-VMNetworkAdapter -VMName $Name\n", "Secure Boot stays on");
	REFUSE(t, "EnableSecureBoot Off");
	free(t);
}

static void test_refused(void)
{
	const struct vm_disk qcow = { .file = "a.qcow2", .format = "qcow2", .capacity = GIB };
	const struct vm_disk vmdk = { .file = "a.vmdk", .format = "vmdk", .capacity = GIB };
	const struct vm_disk stream = { .file = "a.vmdk", .format = "vmdk-stream", .capacity = GIB };
	const struct vm_disk ide[5] = { [0 ... 4] = { .file = "a.vmdk", .format = "vmdk-stream", .bus = VM_BUS_IDE } };
	const char *const bad_mac[] = { "00:1a:2b:3c:4d" };
	struct vm_spec s = { .name = "x", .cpus = 1, .memory_mib = 512, .disks = &qcow, .ndisks = 1 };
	CHECK(vmdesc_ovf(&s) == NULL && vmdesc_vmx(&s) == NULL && vmdesc_hyperv_ps1(&s) == NULL);
	s.disks = &vmdk;
	CHECK(vmdesc_ovf(&s) == NULL && vmdesc_libvirt(&s) == NULL);
	CHECK(!vmdesc_accepts(&vmdesc_kinds[OVF], &s) && vmdesc_accepts(&vmdesc_kinds[VMX], &s));
	s.disks = ide, s.ndisks = 5;
	CHECK(vmdesc_ovf(&s) == NULL && vmdesc_vmx(&s) == NULL);
	s.disks = &stream, s.ndisks = 1, s.nics = 1, s.macs = bad_mac;
	CHECK(vmdesc_check(&s) == -1 && vmdesc_ovf(&s) == NULL);
	s.nics = 0, s.macs = NULL, s.cpus = 0;
	CHECK(vmdesc_check(&s) == -1);
	s.cpus = 1, s.ndisks = 0;
	CHECK(vmdesc_check(&s) == -1 && !vmdesc_accepts(&vmdesc_kinds[OVF], &s));
	s.ndisks = 1, s.name = "";
	CHECK(vmdesc_check(&s) == -1);
	s.name = "x", s.disks = &qcow, s.libvirt_dir = "images";
	CHECK(vmdesc_libvirt(&s) == NULL);
	s.libvirt_dir = NULL, s.nics = 9;
	CHECK(vmdesc_check(&s) == 0);
	s.macs = NULL;
	const struct vm_disk vhdx = { .file = "a.vhdx", .format = "vhdx", .capacity = GIB };
	s.disks = &vhdx;
	CHECK(vmdesc_hyperv_ps1(&s) == NULL);
	s.nics = 8;
	char *t = vmdesc_hyperv_ps1(&s);
	CHECK(t != NULL);
	free(t);
}

int main(int argc, char **argv)
{
	outdir = argc > 1 ? argv[1] : NULL;
	test_uefi();
	test_bios();
	test_windows();
	test_refused();
	return test_summary();
}
