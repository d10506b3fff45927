/* oshost.c - see oshost.h. Windows: Windows\System32\config\SYSTEM read through ntfs.c's
 * read-only mount into a memfd, parsed with libhivex; Linux: /etc/hostname with libext2fs.
 * Key and value names are compared here on the hive's raw bytes, and strings decoded here,
 * never with hivex_node_name/hivex_value_key/hivex_value_string: those use iconv, whose
 * Latin-1 converter a static binary does not have. It never writes to the source. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* libntfs-3g's headers rely on the includes above. */
#include <ntfs-3g/types.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/dir.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/volume.h>

#include <ext2fs/ext2fs.h>
#include <hivex.h>

#include "fs.h"
#include "oshost.h"
#include "util.h"

#define HIVE_PATH "Windows/System32/config/SYSTEM"  /* looked up case-insensitively */
#define HIVE_MIN_BYTES 0x2000u        /* base block + one hbin: hivex refuses less */
#define HIVE_MAX_BYTES (256u << 20)   /* real SYSTEM hives are 10-100 MiB */
#define HIVE_PIECE (1u << 20)         /* hive bytes copied at a time */
#define HIVE_STRING_MAX 1024u         /* ComputerName: 15 (NetBIOS) to 63 (DNS) characters */
#define HOSTNAME_FILE_MAX 256u        /* bytes of /etc/hostname read */
#define LINUX_HOST_MAX 64u            /* HOST_NAME_MAX */

/* Registry cell layouts (hivex's lib/hivex-internal.h, "nk" and "vk" records): offsets from
 * the cell start, which is what hivex's node and value handles are (file offsets). */
#define NK_FLAGS 0x06
#define NK_NAME 0x50                  /* name bytes; hivex_node_struct_length = NK_NAME + name length */
#define NK_COMP_NAME 0x0020           /* name is Latin-1, else UTF-16LE */
#define VK_FLAGS 0x14
#define VK_NAME 0x18                  /* hivex_value_struct_length = VK_NAME + name length */
#define VK_COMP_NAME 0x0001

const char *oshost_os_name(enum oshost_os os)
{
	return os == OSHOST_WINDOWS ? "Windows" : os == OSHOST_LINUX ? "Linux" : NULL;
}

const char *oshost_os_id(enum oshost_os os)
{
	return os == OSHOST_WINDOWS ? "windows" : os == OSHOST_LINUX ? "linux" : NULL;
}

/* ---- text checks ---- */

static size_t utf8_put(uint32_t c, char *o)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | c >> 6);
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | c >> 12);
		o[1] = (char)(0x80 | (c >> 6 & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | c >> 18);
	o[1] = (char)(0x80 | (c >> 12 & 0x3f));
	o[2] = (char)(0x80 | (c >> 6 & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* UTF-16LE up to the first NUL (REG_SZ data) as UTF-8 in out, spaces trimmed. False on an
 * unpaired surrogate, a C0/C1 control character (a name shown on a terminal), no room, or
 * nothing left. */
static bool utf16le_name(const uint8_t *in, size_t len, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i + 1 < len; i += 2) {
		uint32_t c = get_le16(in + i);
		if (c == 0)
			break;
		if (c >= 0xd800 && c <= 0xdbff) {
			uint32_t lo = i + 3 < len ? get_le16(in + i + 2) : 0;
			if (lo < 0xdc00 || lo > 0xdfff)
				return false;
			c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		} else if (c >= 0xdc00 && c <= 0xdfff) {
			return false;
		}
		if (c < 0x20 || (c >= 0x7f && c < 0xa0))
			return false;
		if (c == ' ' && o == 0)
			continue;
		char b[4];
		size_t n = utf8_put(c, b);
		if (o + n >= outsz)
			return false;
		memcpy(out + o, b, n);
		o += n;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return o > 0;
}

/* The first line of an /etc/hostname (hostname(5): '#' lines are comments) when it is a
 * valid host name as systemd's hostname_is_valid() sees it: 1-64 of [A-Za-z0-9._-], not
 * starting with '.' or '-'. A free-form text is not a host name the system would use. */
static bool linux_hostname(const char *buf, size_t len, char *out, size_t outsz)
{
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len, a = pos, b = end;
		pos = end + 1;
		while (a < b && (buf[a] == ' ' || buf[a] == '\t'))
			a++;
		while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r'))
			b--;
		if (a == b || buf[a] == '#')
			continue;
		if (b - a > LINUX_HOST_MAX || b - a >= outsz || buf[a] == '.' || buf[a] == '-')
			return false;
		for (size_t i = a; i < b; i++) {
			unsigned char c = (unsigned char)buf[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '.' || c == '-' || c == '_'))
				return false;
		}
		memcpy(out, buf + a, b - a);
		out[b - a] = '\0';
		return true;
	}
	return false;
}

/* ---- the registry hive ---- */

struct hive {
	hive_h *h;
	const uint8_t *b;  /* the same file, mapped read-only here: for names hivex would iconv */
	size_t size;
};

static char ascii_lower(unsigned c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

/* Whether the len name bytes at off (Latin-1 or UTF-16LE) are want (ASCII), any case. */
static bool hive_name_is(const struct hive *hv, size_t off, size_t len, bool latin1, const char *want)
{
	size_t n = strlen(want), unit = latin1 ? 1 : 2;
	if (off > hv->size || len > hv->size - off || len != n * unit)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned c = latin1 ? hv->b[off + i] : get_le16(hv->b + off + 2 * i);
		if (c >= 0x80 || ascii_lower(c) != ascii_lower((unsigned char)want[i]))
			return false;
	}
	return true;
}

/* The subkey of node called want, or 0. hivex checks every child is an nk cell and that
 * its name fits in the cell (hivex_node_struct_length), so only the file bounds remain. */
static hive_node_h hive_child(const struct hive *hv, hive_node_h node, const char *want)
{
	hive_node_h *kids = hivex_node_children(hv->h, node), found = 0;
	for (size_t i = 0; kids && kids[i] && !found; i++) {
		size_t sl = hivex_node_struct_length(hv->h, kids[i]);
		if (sl < NK_NAME || kids[i] > hv->size - NK_NAME)
			continue;
		bool latin1 = get_le16(hv->b + kids[i] + NK_FLAGS) & NK_COMP_NAME;
		if (hive_name_is(hv, kids[i] + NK_NAME, sl - NK_NAME, latin1, want))
			found = kids[i];
	}
	free(kids);
	return found;
}

static hive_value_h hive_value(const struct hive *hv, hive_node_h node, const char *want)
{
	hive_value_h *vals = hivex_node_values(hv->h, node), found = 0;
	for (size_t i = 0; vals && vals[i] && !found; i++) {
		size_t sl = hivex_value_struct_length(hv->h, vals[i]);
		if (sl < VK_NAME || vals[i] > hv->size - VK_NAME)
			continue;
		bool latin1 = get_le16(hv->b + vals[i] + VK_FLAGS) & VK_COMP_NAME;
		if (hive_name_is(hv, vals[i] + VK_NAME, sl - VK_NAME, latin1, want))
			found = vals[i];
	}
	free(vals);
	return found;
}

/* Size of the cell at off (its leading int32, negative when in use), 0 outside the file. */
static size_t hive_cell_len(const struct hive *hv, size_t off)
{
	if (off > hv->size || hv->size - off < 4)
		return 0;
	uint32_t v = get_le32(hv->b + off);
	uint32_t len = v & 0x80000000u ? 0u - v : v;
	return MIN((size_t)len, hv->size - off);
}

/* A value's data (malloc'd) when at most max bytes and held inline or in one cell; NULL
 * otherwise. Data spread over "db" big-data cells is refused before hivex_value_value sees
 * it: ComputerName never is, and that path trusts sizes from the file. */
static char *hive_value_data(const struct hive *hv, hive_value_h v, size_t max, hive_type *t, size_t *len)
{
	size_t dlen = 0, cell_len = 0;
	if (hivex_value_type(hv->h, v, t, &dlen) < 0 || dlen > max)
		return NULL;
	errno = 0;
	hive_value_h cell = hivex_value_data_cell_offset(hv->h, v, &cell_len);
	if (!cell && errno)
		return NULL;
	if (cell && hive_cell_len(hv, cell) < dlen + 4)
		return NULL;
	char *d = hivex_value_value(hv->h, v, t, len);
	if (d && *len > dlen) {  /* never more than was checked */
		free(d);
		return NULL;
	}
	return d;
}

/* SYSTEM hive: Select\Current names the control set (ControlSet001 when absent), whose
 * Control\ComputerName\ComputerName holds the ComputerName value (REG_SZ). */
static bool hive_computername(const struct hive *hv, char *out, size_t outsz)
{
	hive_node_h root = hivex_root(hv->h);
	if (!root)
		return false;
	hive_type t;
	size_t len = 0;
	uint32_t current = 1;
	hive_node_h n = hive_child(hv, root, "Select");
	hive_value_h v = n ? hive_value(hv, n, "Current") : 0;
	if (v) {
		CLEANUP_FREE char *d = hive_value_data(hv, v, 8, &t, &len);
		if (d && t == hive_t_REG_DWORD && len == 4)
			current = get_le32(d);
	}
	if (current == 0 || current > 999)
		return false;
	char cs[24];
	snprintf(cs, sizeof cs, "ControlSet%03" PRIu32, current);
	n = hive_child(hv, root, cs);
	n = n ? hive_child(hv, n, "Control") : 0;
	n = n ? hive_child(hv, n, "ComputerName") : 0;
	n = n ? hive_child(hv, n, "ComputerName") : 0;
	v = n ? hive_value(hv, n, "ComputerName") : 0;
	if (!v)
		return false;
	CLEANUP_FREE char *d = hive_value_data(hv, v, HIVE_STRING_MAX, &t, &len);
	if (!d || (t != hive_t_REG_SZ && t != hive_t_REG_EXPAND_SZ))
		return false;
	return utf16le_name((const uint8_t *)d, len, out, outsz);
}

/* hivex_open wants a path: a memfd seen through /proc/self/fd, else a temporary file under
 * TMPDIR that is removed as soon as hivex has opened it. */
struct hive_file {
	int fd;
	char path[PATH_MAX];
	bool tmp;          /* path is a file to remove */
};

static int hive_file_create(struct hive_file *f)
{
	f->tmp = false;
	f->fd = memfd_create("coldclone-hive", MFD_CLOEXEC);
	if (f->fd >= 0) {
		snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
		return 0;
	}
	const char *dir = getenv("TMPDIR");
	snprintf(f->path, sizeof f->path, "%s/coldclone-hive.XXXXXX", dir && *dir ? dir : "/tmp");
	f->fd = mkostemp(f->path, O_CLOEXEC);
	if (f->fd < 0)
		return -1;
	f->tmp = true;
	return 0;
}

static void hive_file_close(struct hive_file *f)
{
	if (f->tmp)
		unlink(f->path);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->tmp = false;
}

static int hive_file_write(struct hive_file *f, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = write(f->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The ComputerName of the size-byte hive in f. */
static bool hive_file_name(struct hive_file *f, size_t size, char *out, size_t outsz)
{
	if (size < HIVE_MIN_BYTES)
		return false;
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, f->fd, 0);
	if (map == MAP_FAILED)
		return false;
	hive_h *h = hivex_open(f->path, 0);  /* read-only */
	if (f->tmp) {
		unlink(f->path);
		f->tmp = false;
	}
	bool found = false;
	if (h) {
		struct hive hv = { .h = h, .b = map, .size = size };
		found = hive_computername(&hv, out, outsz);
		hivex_close(h);
	} else {
		debug("registry hive not readable: %m");
	}
	munmap(map, size);
	return found;
}

int oshost_hive_name(const void *hive, size_t len, char *out, size_t outsz)
{
	struct hive_file f;
	if (outsz == 0 || len > HIVE_MAX_BYTES || hive_file_create(&f) < 0)
		return 0;
	bool found = hive_file_write(&f, hive, len) == 0 && hive_file_name(&f, len, out, outsz);
	hive_file_close(&f);
	return found;
}

/* ---- Windows: the hive on NTFS ---- */

static bool ntfs_attr_name(ntfs_attr *na, char *out, size_t outsz)
{
	if (na->data_size < (s64)HIVE_MIN_BYTES || na->data_size > (s64)HIVE_MAX_BYTES)
		return false;
	size_t size = (size_t)na->data_size;
	struct hive_file f;
	if (hive_file_create(&f) < 0)
		return false;
	CLEANUP_FREE uint8_t *buf = xmalloc(HIVE_PIECE);
	bool ok = true;
	for (size_t off = 0; off < size && ok; off += HIVE_PIECE) {
		size_t n = MIN((size_t)HIVE_PIECE, size - off);
		ok = ntfs_attr_pread(na, (s64)off, (s64)n, buf) == (s64)n && hive_file_write(&f, buf, n) == 0;
	}
	bool found = ok && hive_file_name(&f, size, out, outsz);
	hive_file_close(&f);
	return found;
}

static bool ntfs_host(struct source *s, const struct partition *p, char *out, size_t outsz)
{
	struct ntfs_ro *r = ntfs_ro_open(s, p);
	if (!r)
		return false;
	bool found = false;
	ntfs_inode *ni = ntfs_pathname_to_inode(ntfs_ro_volume(r), NULL, HIVE_PATH);
	if (ni) {
		ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
		if (na) {
			found = ntfs_attr_name(na, out, outsz);
			ntfs_attr_close(na);
		}
		ntfs_inode_close(ni);
	}
	ntfs_ro_close(r);
	return found;
}

/* ---- Linux: /etc/hostname on ext2/3/4 ---- */

static bool ext_host(struct source *s, const struct partition *p, char *out, size_t outsz)
{
	ext2_filsys fs;
	if (ext_ro_open(s, p, &fs))
		return false;
	bool found = false;
	uint64_t fs_size;
	ext2_ino_t ino;
	struct ext2_inode inode;
	ext2_file_t file;
	/* A filesystem claiming more than its partition would read the next one. */
	if (!__builtin_mul_overflow(ext2fs_blocks_count(fs->super), (uint64_t)fs->blocksize, &fs_size) &&
	    fs_size <= p->size &&
	    ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, "etc/hostname", &ino) == 0 &&
	    ext2fs_read_inode(fs, ino, &inode) == 0 && LINUX_S_ISREG(inode.i_mode) &&
	    ext2fs_file_open(fs, ino, 0, &file) == 0) {
		char buf[HOSTNAME_FILE_MAX];
		unsigned got = 0;
		if (ext2fs_file_read(file, buf, sizeof buf, &got) == 0 && got <= sizeof buf)
			found = linux_hostname(buf, got, out, outsz);
		ext2fs_file_close(file);
	}
	ext2fs_close_free(&fs);
	return found;
}

/* ---- entry points ---- */

int oshost_probe(struct source *s, const struct partition *p, struct oshost *h)
{
	*h = (struct oshost){ 0 };
	if (p->container || p->state == FS_STATE_ENCRYPTED)
		return 0;
	if (strcmp(p->fs, "ntfs") == 0 && ntfs_host(s, p, h->name, sizeof h->name))
		h->os = OSHOST_WINDOWS;
	else if ((strcmp(p->fs, "ext2") == 0 || strcmp(p->fs, "ext3") == 0 || strcmp(p->fs, "ext4") == 0) &&
		 ext_host(s, p, h->name, sizeof h->name))
		h->os = OSHOST_LINUX;
	if (h->os == OSHOST_NONE)
		h->name[0] = '\0';
	else
		debug("%s partition %u: %s host name '%s'", s->path, p->number, oshost_os_name(h->os), h->name);
	return h->os != OSHOST_NONE;
}

int oshost_find(const char *const *paths, size_t n, struct oshost *h)
{
	*h = (struct oshost){ 0 };
	for (size_t i = 0; i < n; i++) {
		struct source s;
		struct layout l = { 0 };
		int found = 0;
		if (source_open(&s, paths[i], 0) == 0 && layout_read(&s, &l) == 0)
			for (size_t k = 0; k < l.nparts && !found; k++)
				found = oshost_probe(&s, &l.parts[k], h);
		layout_release(&l);
		source_close(&s);
		if (found)
			return 1;
	}
	return 0;
}
