/* inventory.c - see inventory.h. Reads sysfs/procfs text files under a sysroot; every
 * value is untrusted text, so lines are length-capped and parsed with sscanf/strtoul.
 * It does not run dmidecode or lspci: what sysfs cannot say is left out. */
#define _GNU_SOURCE
#include "inventory.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define LINE_MAX_LEN 512
#define NAME_MAX_LEN 64
#define MAX_DEVICES 256  /* cap on NICs and controllers: a sysroot is untrusted too */

/* First line of sysroot/rel, trailing whitespace removed; NULL when absent or empty. */
static char *read_line(const char *sysroot, const char *rel)
{
	CLEANUP_FREE char *path = xasprintf("%s/%s", sysroot, rel);
	char buf[LINE_MAX_LEN];
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *got = fgets(buf, sizeof buf, f);
	fclose(f);
	if (!got)
		return NULL;
	size_t n = strlen(buf);
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	const char *start = buf + strspn(buf, " \t");
	return *start ? xstrdup(start) : NULL;
}

/* Basename of the symlink sysroot/rel ("driver" -> "../../bus/pci/drivers/ahci"). */
static char *link_name(const char *sysroot, const char *rel)
{
	CLEANUP_FREE char *path = xasprintf("%s/%s", sysroot, rel);
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof buf - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	const char *slash = strrchr(buf, '/');
	return xstrdup(slash ? slash + 1 : buf);
}

/* "vendor:device" from the 0x-prefixed hex files of a PCI device directory. */
static char *pci_id(const char *sysroot, const char *dir)
{
	CLEANUP_FREE char *vp = xasprintf("%s/vendor", dir), *dp = xasprintf("%s/device", dir);
	CLEANUP_FREE char *v = read_line(sysroot, vp), *d = read_line(sysroot, dp);
	if (!v || !d)
		return NULL;
	unsigned long vv = strtoul(v, NULL, 16), dv = strtoul(d, NULL, 16);
	if (vv > 0xffff || dv > 0xffff)
		return NULL;
	return xasprintf("%04lx:%04lx", vv, dv);
}

/* The PCI id behind a NIC: its device itself, or the device's parent when the NIC sits
 * on a bus inside a PCI function (virtio0 under a virtio PCI device); NULL for USB. */
static char *nic_pci_id(const char *sysroot, const char *dev)
{
	CLEANUP_FREE char *sub = xasprintf("%s/subsystem", dev);
	CLEANUP_FREE char *s = link_name(sysroot, sub);
	if (!s || strcmp(s, "pci") == 0)
		return pci_id(sysroot, dev);
	CLEANUP_FREE char *parent = xasprintf("%s/..", dev);
	CLEANUP_FREE char *psub = xasprintf("%s/../subsystem", dev);
	CLEANUP_FREE char *ps = link_name(sysroot, psub);
	return ps && strcmp(ps, "pci") == 0 ? pci_id(sysroot, parent) : NULL;
}

static bool is_dir(const char *sysroot, const char *rel)
{
	CLEANUP_FREE char *path = xasprintf("%s/%s", sysroot, rel);
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void read_dmi(struct inventory *inv, const char *sysroot)
{
	inv->vendor = read_line(sysroot, "sys/class/dmi/id/sys_vendor");
	inv->product = read_line(sysroot, "sys/class/dmi/id/product_name");
	inv->serial = read_line(sysroot, "sys/class/dmi/id/product_serial");
	inv->uuid = read_line(sysroot, "sys/class/dmi/id/product_uuid");
	inv->bios_version = read_line(sysroot, "sys/class/dmi/id/bios_version");
}

/* Value after "key<spaces>: " on a cpuinfo line, or NULL when the key differs. */
static const char *cpuinfo_value(const char *line, const char *key)
{
	size_t k = strlen(key);
	if (strncmp(line, key, k) != 0)
		return NULL;
	line += k;
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line != ':')
		return NULL;
	line++;
	while (*line == ' ')
		line++;
	return line;
}

static void read_cpuinfo(struct inventory *inv, const char *sysroot)
{
	CLEANUP_FREE char *path = xasprintf("%s/proc/cpuinfo", sysroot);
	uint64_t seen[4] = { 0 };  /* bitmap of physical ids 0..255 */
	char line[LINE_MAX_LEN];
	const char *v;
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		if (cpuinfo_value(line, "processor"))
			inv->cpus++;
		else if (!inv->cpu_model && (v = cpuinfo_value(line, "model name")) && *v)
			inv->cpu_model = xstrdup(v);
		else if ((v = cpuinfo_value(line, "physical id"))) {
			unsigned long id = strtoul(v, NULL, 10);
			if (id < 256 && !(seen[id / 64] & (1ull << (id % 64)))) {
				seen[id / 64] |= 1ull << (id % 64);
				inv->sockets++;
			}
		}
	}
	fclose(f);
	if (inv->cpus && !inv->sockets)
		inv->sockets = 1;
}

static void read_meminfo(struct inventory *inv, const char *sysroot)
{
	CLEANUP_FREE char *path = xasprintf("%s/proc/meminfo", sysroot);
	char line[LINE_MAX_LEN];
	unsigned long long kib;
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1 && kib < (1ull << 50)) {
			inv->memory_bytes = kib * 1024;
			break;
		}
	fclose(f);
}

/* Directory entry names of sysroot/rel, sorted, without dot entries; NULL-terminated. */
static char **list_dir(const char *sysroot, const char *rel, size_t *n)
{
	CLEANUP_FREE char *path = xasprintf("%s/%s", sysroot, rel);
	char **v = xcalloc(1, sizeof *v);
	struct dirent *e;
	DIR *d = opendir(path);
	*n = 0;
	if (!d)
		return v;
	while ((e = readdir(d)) && *n < MAX_DEVICES) {
		if (e->d_name[0] == '.' || strlen(e->d_name) > NAME_MAX_LEN)
			continue;
		v = xrealloc(v, (*n + 2) * sizeof *v);
		v[(*n)++] = xstrdup(e->d_name);
		v[*n] = NULL;
	}
	closedir(d);
	for (size_t i = 1; i < *n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v;
}

static void free_list(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Fill one NIC; false for interfaces without a device behind them (lo, bridges, bonds,
 * VLANs, veth, tun: all under /sys/devices/virtual). */
static bool read_nic(struct inventory_nic *nic, const char *sysroot, const char *name)
{
	CLEANUP_FREE char *dev = xasprintf("sys/class/net/%s/device", name);
	if (strcmp(name, "lo") == 0 || !is_dir(sysroot, dev))
		return false;
	CLEANUP_FREE char *mac = xasprintf("sys/class/net/%s/address", name);
	CLEANUP_FREE char *oper = xasprintf("sys/class/net/%s/operstate", name);
	CLEANUP_FREE char *carrier = xasprintf("sys/class/net/%s/carrier", name);
	CLEANUP_FREE char *drv = xasprintf("%s/driver", dev);
	CLEANUP_FREE char *c = read_line(sysroot, carrier);
	nic->name = xstrdup(name);
	nic->mac = read_line(sysroot, mac);
	nic->operstate = read_line(sysroot, oper);
	nic->carrier = c ? (c[0] == '1') : -1;
	nic->driver = link_name(sysroot, drv);
	nic->pci_id = nic_pci_id(sysroot, dev);
	nic->bus_id = link_name(sysroot, dev);
	return true;
}

static void read_nics(struct inventory *inv, const char *sysroot)
{
	size_t n;
	char **names = list_dir(sysroot, "sys/class/net", &n);
	inv->nics = xcalloc(n ? n : 1, sizeof *inv->nics);
	for (size_t i = 0; i < n; i++)
		if (read_nic(&inv->nics[inv->nnics], sysroot, names[i]))
			inv->nnics++;
	free_list(names);
}

static void read_controllers(struct inventory *inv, const char *sysroot)
{
	size_t n;
	char **slots = list_dir(sysroot, "sys/bus/pci/devices", &n);
	inv->controllers = xcalloc(n ? n : 1, sizeof *inv->controllers);
	for (size_t i = 0; i < n; i++) {
		CLEANUP_FREE char *dir = xasprintf("sys/bus/pci/devices/%s", slots[i]);
		CLEANUP_FREE char *classp = xasprintf("%s/class", dir);
		CLEANUP_FREE char *drv = xasprintf("%s/driver", dir);
		CLEANUP_FREE char *cls = read_line(sysroot, classp);
		unsigned long class = cls ? strtoul(cls, NULL, 16) : 0;
		if (class >> 16 != 0x01 || class > 0xffffff)
			continue;
		struct inventory_controller *c = &inv->controllers[inv->ncontrollers++];
		c->slot = xstrdup(slots[i]);
		c->class = (uint32_t)class;
		c->pci_id = pci_id(sysroot, dir);
		c->driver = link_name(sysroot, drv);
	}
	free_list(slots);
}

int inventory_read(struct inventory *inv, const char *sysroot)
{
	*inv = (struct inventory){ 0 };
	if (!sysroot)
		sysroot = "";
	if (!is_dir(sysroot, "sys"))
		return error("read hardware inventory: no '%s/sys' (is /sys mounted?)", sysroot);
	read_dmi(inv, sysroot);
	read_cpuinfo(inv, sysroot);
	read_meminfo(inv, sysroot);
	inv->uefi = is_dir(sysroot, "sys/firmware/efi");
	read_nics(inv, sysroot);
	read_controllers(inv, sysroot);
	return 0;
}

void inventory_release(struct inventory *inv)
{
	if (!inv)
		return;
	free(inv->vendor);
	free(inv->product);
	free(inv->serial);
	free(inv->uuid);
	free(inv->bios_version);
	free(inv->cpu_model);
	for (size_t i = 0; i < inv->nnics; i++) {
		struct inventory_nic *n = &inv->nics[i];
		free(n->name);
		free(n->mac);
		free(n->operstate);
		free(n->driver);
		free(n->pci_id);
		free(n->bus_id);
	}
	free(inv->nics);
	for (size_t i = 0; i < inv->ncontrollers; i++) {
		free(inv->controllers[i].slot);
		free(inv->controllers[i].pci_id);
		free(inv->controllers[i].driver);
	}
	free(inv->controllers);
	free(inv->os_hostname);
	memset(inv, 0, sizeof *inv);
}

/* ---- JSON ---- */

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

/* A string, or JSON null when absent (a missing driver must stand out). */
static void add_str_or_null(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static json_object *nic_json(const struct inventory_nic *n)
{
	json_object *o = json_object_new_object();
	add_str(o, "name", n->name);
	add_str(o, "mac", n->mac);
	add_str(o, "state", n->operstate);
	json_object_object_add(o, "link", n->carrier < 0 ? NULL : json_object_new_boolean(n->carrier));
	add_str_or_null(o, "driver", n->driver);
	add_str_or_null(o, "pci_id", n->pci_id);
	return o;
}

static json_object *controller_json(const struct inventory_controller *c)
{
	char cls[16];
	json_object *o = json_object_new_object();
	snprintf(cls, sizeof cls, "0x%06x", (unsigned)c->class);
	add_str(o, "slot", c->slot);
	add_str_or_null(o, "pci_id", c->pci_id);
	add_str(o, "class", cls);
	add_str_or_null(o, "driver", c->driver);
	return o;
}

json_object *inventory_json(const struct inventory *inv)
{
	json_object *root = json_object_new_object(), *cpu = json_object_new_object(), *a;
	add_str(root, "vendor", inv->vendor);
	add_str(root, "model", inv->product);
	add_str(root, "serial", inv->serial);
	add_str(root, "uuid", inv->uuid);
	add_str(root, "bios_version", inv->bios_version);
	add_str(root, "firmware", inv->uefi ? "uefi" : "bios");
	add_str(cpu, "model", inv->cpu_model);
	json_object_object_add(cpu, "logical", json_object_new_int64(inv->cpus));
	json_object_object_add(cpu, "sockets", json_object_new_int64(inv->sockets));
	json_object_object_add(root, "cpu", cpu);
	json_object_object_add(root, "memory_bytes", json_object_new_int64((int64_t)inv->memory_bytes));
	a = json_object_new_array();
	for (size_t i = 0; i < inv->nnics; i++)
		json_object_array_add(a, nic_json(&inv->nics[i]));
	json_object_object_add(root, "nics", a);
	a = json_object_new_array();
	for (size_t i = 0; i < inv->ncontrollers; i++)
		json_object_array_add(a, controller_json(&inv->controllers[i]));
	json_object_object_add(root, "storage_controllers", a);
	return root;
}

/* ---- machine name ---- */

/* Placeholders firmware vendors leave in the serial field (compared case-insensitively). */
static const char *const junk_serials[] = {
	"To Be Filled By O.E.M.", "To be filled by O.E.M.", "Default string", "System Serial Number",
	"Not Specified", "Not Applicable", "None", "N/A", "NA", "OEM", "O.E.M.", "Default",
	"0123456789", "123456789", "1234567890", "Serial", "SerialNumber", "Chassis Serial Number",
	"Unknown", "INVALID", "Empty",
};

static bool junk_serial(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(junk_serials); i++)
		if (strcasecmp(s, junk_serials[i]) == 0)
			return true;
	/* all zeros and spaces, or one character repeated ("XXXXXXXX", "........") */
	size_t n = strlen(s);
	if (n == strspn(s, "0 "))
		return true;
	return n == strspn(s, (char[]){ s[0], '\0' });
}

/* s reduced to [A-Za-z0-9._-], runs of anything else as one '-', no leading '.'/'-',
 * no trailing '-', at most NAME_MAX_LEN characters; NULL when nothing is left. */
static char *sanitize(const char *s)
{
	char *out = xmalloc(NAME_MAX_LEN + 1);
	size_t n = 0;
	for (; *s && n < NAME_MAX_LEN; s++) {
		unsigned char c = (unsigned char)*s;
		bool ok = isascii(c) && (isalnum(c) || c == '.' || c == '_' || c == '-');
		if (!ok)
			c = '-';
		if ((n == 0 && (c == '.' || c == '-')) || (c == '-' && out[n - 1] == '-'))
			continue;
		out[n++] = (char)c;
	}
	while (n > 0 && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	if (n == 0) {
		free(out);
		return NULL;
	}
	return out;
}

static char *mac_name(const struct inventory *inv)
{
	for (size_t i = 0; i < inv->nnics; i++) {
		const char *m = inv->nics[i].mac;
		char hex[NAME_MAX_LEN];
		size_t n = 0;
		for (; m && *m && n < sizeof hex - 1; m++)
			if (isxdigit((unsigned char)*m))
				hex[n++] = (char)tolower((unsigned char)*m);
		hex[n] = '\0';
		if (n == 12 && strspn(hex, "0") != n)
			return xasprintf("coldclone-%s", hex);
	}
	return NULL;
}

void inventory_set_os_host(struct inventory *inv, const char *hostname, const char *os)
{
	free(inv->os_hostname);
	inv->os_hostname = hostname ? xstrdup(hostname) : NULL;
	snprintf(inv->os, sizeof inv->os, "%s", hostname && os ? os : "");
}

char *inventory_machine_name(const struct inventory *inv, const char *override)
{
	char *name = override ? sanitize(override) : NULL;
	if (!name && inv->os_hostname)
		name = sanitize(inv->os_hostname);
	if (!name && inv->serial && !junk_serial(inv->serial))
		name = sanitize(inv->serial);
	if (!name)
		name = mac_name(inv);
	return name ? name : xstrdup("coldclone-machine");
}

uint64_t inventory_vm_memory_mib(const struct inventory *inv)
{
	if (!inv->memory_bytes)
		return 1024;
	return DIV_ROUND_UP(inv->memory_bytes, 1ull << 30) * 1024;
}
