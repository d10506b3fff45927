/* test-fs-ntfs.c - the NTFS mapper against volumes built by mkntfs/ntfscp: a clone made of
 * the mapped ranges only must pass ntfsfix -n and give back every file byte for byte;
 * hibernated, dirty and hostile volumes must fall back to a whole copy. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ntfs-3g/types.h>
#include <ntfs-3g/layout.h>
#include <ntfs-3g/volume.h>

#include "fs.h"
#include "test.h"
#include "util.h"

#define MIB (1024ull * 1024)

static char tmpdir[] = "/tmp/cc-test-ntfs-XXXXXX";

/* Run a shell command (stdout/stderr discarded unless asked); returns its exit status. */
__attribute__((format(printf, 1, 2)))
static int sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st)) {
		fprintf(stderr, "command failed to run: %s\n", cmd);
		free(cmd);
		return -1;
	}
	free(cmd);
	return WEXITSTATUS(st);
}

/* Output of a shell command (at most 1 MiB), or NULL. */
__attribute__((format(printf, 1, 2)))
static char *sh_out(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	FILE *f = popen(cmd, "r");
	free(cmd);
	if (!f)
		return NULL;
	size_t cap = MIB, n = 0;
	char *buf = xmalloc(cap + 1);
	size_t r;
	while (n < cap && (r = fread(buf + n, 1, cap - n, f)) > 0)
		n += r;
	buf[n] = '\0';
	pclose(f);
	return buf;
}

/* The unsigned number after `key` in text (decimal, or hex with 0x), or UINT64_MAX. */
static uint64_t field_u64(const char *text, const char *key)
{
	const char *p = text ? strstr(text, key) : NULL;
	if (!p)
		return UINT64_MAX;
	p += strlen(key);
	while (*p == ' ' || *p == '\t' || *p == ':')
		p++;
	return strtoull(p, NULL, 0);
}

/* A partition image of size bytes: random bytes first (so free space is not zero),
 * then mkntfs with the given cluster size. */
static int make_ntfs(const char *path, uint64_t size, unsigned cluster)
{
	if (sh("head -c %" PRIu64 " /dev/urandom > %s", size, path) != 0)
		return -1;
	return sh("mkntfs -F -Q -q -c %u -p 2048 -H 64 -S 32 %s >/dev/null 2>&1", cluster, path);
}

static int write_random(const char *path, uint64_t size)
{
	return sh("head -c %" PRIu64 " /dev/urandom > %s", size, path);
}

static void source_setup(struct source *s, const char *path)
{
	memset(s, 0, sizeof *s);
	s->path = (char *)path;
	s->fd = open(path, O_RDONLY);
	struct stat st;
	if (s->fd < 0 || fstat(s->fd, &st) < 0)
		abort();
	s->size = (uint64_t)st.st_size;
	s->lsec = s->psec = 512;
	s->max_unreadable = UINT64_MAX;
	extmap_init(&s->bad);
}

static int map_part(const char *path, uint64_t start, uint64_t size, struct partition *p,
		    struct extmap *m)
{
	struct source s;
	source_setup(&s, path);
	memset(p, 0, sizeof *p);
	p->number = 1;
	p->start = start;
	p->size = size;
	snprintf(p->fs, sizeof p->fs, "ntfs");
	extmap_init(m);
	int r = fs_ntfs.map(&s, p, m);
	extmap_normalize(m, s.size);
	close(s.fd);
	return r;
}

/* Copy the mapped ranges of src into a new file of the same size that is zero elsewhere. */
static int build_clone(const char *src, const char *dst, const struct extmap *m)
{
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	struct stat st;
	int ret = -1;
	uint8_t *buf = xmalloc(MIB);
	if (in < 0 || out < 0 || fstat(in, &st) < 0 || ftruncate(out, st.st_size) < 0)
		goto out;
	for (size_t i = 0; i < m->n; i++)
		for (uint64_t o = 0; o < m->v[i].len; o += MIB) {
			size_t n = (size_t)MIN(MIB, m->v[i].len - o);
			if (pread_full(in, buf, n, m->v[i].start + o) < 0 ||
			    pwrite_full(out, buf, n, m->v[i].start + o) < 0)
				goto out;
		}
	ret = 0;
out:
	free(buf);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ret;
}

/* True when every cluster of the runlists that `ntfsinfo -v -i inode` prints is mapped. */
static bool runs_mapped(const char *img, unsigned inode, const struct extmap *m, uint64_t base,
			uint64_t cluster)
{
	char *out = sh_out("ntfsinfo -v -i %u %s 2>/dev/null", inode, img);
	bool ok = out != NULL, seen = false;
	for (const char *p = out ? strstr(out, "Runlist:") : NULL; p; p = strstr(p + 1, "Runlist:")) {
		const char *line = strchr(p, '\n');
		unsigned long long vcn, lcn, len;
		while (line && sscanf(line, " 0x%llx 0x%llx 0x%llx", &vcn, &lcn, &len) == 3) {
			seen = true;
			uint64_t off = base + lcn * cluster, n = len * cluster;
			if (extmap_bytes_in(m, off, n) != n) {
				fprintf(stderr, "inode %u run lcn %llu len %llu not mapped\n", inode, lcn, len);
				ok = false;
			}
			line = strchr(line + 1, '\n');
		}
	}
	free(out);
	return ok && seen;
}

static char *sha256_of(const char *path)
{
	char *out = sh_out("sha256sum < %s", path);
	if (out && strlen(out) > 64)
		out[64] = '\0';
	return out;
}

struct file_spec {
	const char *name;
	uint64_t size;
};

/* The full check of one clean volume: img holds the NTFS at start (size bytes). */
static void check_clean(const char *img, uint64_t start, uint64_t size, unsigned cluster,
			const struct file_spec *files, size_t nfiles)
{
	char part[128], clone[128], clone_part[128], orig[128];
	snprintf(part, sizeof part, "%s/orig-part.img", tmpdir);
	snprintf(clone, sizeof clone, "%s/clone.img", tmpdir);
	snprintf(clone_part, sizeof clone_part, "%s/clone-part.img", tmpdir);
	/* The partition alone, for the ntfsprogs tools (they want the volume at offset 0). */
	CHECK(sh("dd if=%s of=%s bs=512 skip=%" PRIu64 " count=%" PRIu64 " status=none",
		 img, part, start / 512, size / 512) == 0);

	char *sha_before = sha256_of(img);
	struct partition p;
	struct extmap m;
	CHECK_EQ_U64(map_part(img, start, size, &p, &m), FS_MAPPED);
	char *sha_after = sha256_of(img);
	CHECK(sha_before && sha_after && strcmp(sha_before, sha_after) == 0);  /* read-only */
	free(sha_before);
	free(sha_after);
	CHECK_EQ_U64(p.state, FS_STATE_CLEAN);
	CHECK_EQ_U64(p.method, COPY_USED_BLOCKS);
	CHECK(strstr(p.reason, "bitmap") != NULL);
	printf("cluster %u: used %" PRIu64 " of %" PRIu64 " bytes in %zu extents (%s)\n",
	       cluster, p.used_bytes, size, m.n, p.reason);

	/* Everything inside the partition; used_bytes is what the map holds there. */
	CHECK(m.n > 0 && m.v[0].start >= start && m.v[m.n - 1].start + m.v[m.n - 1].len <= start + size);
	CHECK_EQ_U64(extmap_bytes(&m), p.used_bytes);
	CHECK(p.used_bytes < size / 2);

	/* Filesystem size and used space as ntfsprogs count them. Bound: the map equals
	 * the volume size minus ntfscluster's free space, plus the tail past the last
	 * cluster, give or take 2 clusters. */
	char *info = sh_out("ntfsinfo -m %s 2>/dev/null", part);
	char *clu = sh_out("ntfscluster -i %s 2>/dev/null", part);
	uint64_t nr = field_u64(info, "Volume Size in Clusters"), cs = field_u64(info, "Cluster Size");
	uint64_t free_bytes = field_u64(clu, "bytes of free space");
	free(info);
	free(clu);
	CHECK_EQ_U64(cs, cluster);
	CHECK_EQ_U64(p.fs_size, nr * cs);
	if (nr != UINT64_MAX && free_bytes != UINT64_MAX) {
		uint64_t expect = nr * cs - free_bytes + (size - nr * cs);
		uint64_t diff = expect > p.used_bytes ? expect - p.used_bytes : p.used_bytes - expect;
		printf("  ntfscluster: %" PRIu64 " bytes in use (+ tail), mapper: %" PRIu64 "\n", expect, p.used_bytes);
		CHECK(diff <= 2 * (uint64_t)cluster);
	} else {
		CHECK(!"ntfsinfo/ntfscluster output not understood");
	}

	/* Boot sector, backup boot sector (last sector of the partition), $MFT, $MFTMirr, $LogFile. */
	CHECK_EQ_U64(extmap_bytes_in(&m, start, 8192), 8192);
	CHECK_EQ_U64(extmap_bytes_in(&m, start + size - 512, 512), 512);
	CHECK_EQ_U64(extmap_bytes_in(&m, start + p.fs_size, size - p.fs_size), size - p.fs_size);
	for (unsigned ino = 0; ino <= 2; ino++)
		CHECK(runs_mapped(part, ino, &m, start, cluster));

	/* The clone: zeros outside the map. */
	CHECK(build_clone(img, clone, &m) == 0);
	CHECK(sh("dd if=%s of=%s bs=512 skip=%" PRIu64 " count=%" PRIu64 " status=none",
		 clone, clone_part, start / 512, size / 512) == 0);
	CHECK(sh("cmp -s %s %s", part, clone_part) == 1);  /* free space really was dropped */
	CHECK(sh("ntfsfix -n %s >/dev/null 2>&1", clone_part) == 0);
	for (size_t i = 0; i < nfiles; i++) {
		snprintf(orig, sizeof orig, "%s/%s", tmpdir, files[i].name);
		CHECK(sh("ntfscat %s /%s 2>/dev/null | cmp -s - %s", clone_part, files[i].name, orig) == 0);
	}
	unlink(part);
	unlink(clone);
	unlink(clone_part);
	extmap_release(&m);
}

static const struct file_spec files_a[] = {
	{ "small.txt", 100 }, { "one-cluster.bin", 4096 }, { "odd.bin", 70001 },
	{ "medium.bin", 3 * MIB + 17 }, { "large.bin", 24 * MIB },
};

static int put_files(const char *img, const struct file_spec *files, size_t n)
{
	char src[128];
	for (size_t i = 0; i < n; i++) {
		snprintf(src, sizeof src, "%s/%s", tmpdir, files[i].name);
		if (write_random(src, files[i].size) != 0 ||
		    sh("ntfscp -f %s %s /%s >/dev/null 2>&1", img, src, files[i].name) != 0)
			return -1;
	}
	return 0;
}

/* A bare partition image with 4 KiB clusters. */
static void test_partition_4k(void)
{
	char img[128];
	snprintf(img, sizeof img, "%s/p4k.img", tmpdir);
	uint64_t size = 96 * MIB;
	CHECK(make_ntfs(img, size, 4096) == 0);
	CHECK(put_files(img, files_a, ARRAY_SIZE(files_a)) == 0);
	check_clean(img, 0, size, 4096, files_a, ARRAY_SIZE(files_a));
	unlink(img);
}

/* A whole MBR disk with the NTFS (64 KiB clusters) at 1 MiB and space after it. */
static void test_disk_64k(void)
{
	char img[128], part[128];
	snprintf(img, sizeof img, "%s/disk.img", tmpdir);
	snprintf(part, sizeof part, "%s/p64k.img", tmpdir);
	uint64_t start = MIB, size = 128 * MIB;
	CHECK(make_ntfs(part, size, 65536) == 0);
	CHECK(put_files(part, files_a, ARRAY_SIZE(files_a)) == 0);
	CHECK(sh("head -c %llu /dev/urandom > %s", 160 * MIB, img) == 0);
	CHECK(sh("printf 'label: dos\\nstart=2048, size=%" PRIu64 ", type=7\\n' | sfdisk -q %s >/dev/null 2>&1",
		 size / 512, img) == 0);
	CHECK(sh("dd if=%s of=%s bs=1M seek=1 conv=notrunc status=none", part, img) == 0);
	unlink(part);
	check_clean(img, start, size, 65536, files_a, ARRAY_SIZE(files_a));
	unlink(img);
}

static void test_hibernated(void)
{
	static const struct { const char *magic; int result; enum fs_state state; } cases[] = {
		{ "hibr", FS_FALLBACK, FS_STATE_HIBERNATED },
		{ "HIBR", FS_FALLBACK, FS_STATE_HIBERNATED },
		{ "wake", FS_MAPPED, FS_STATE_CLEAN },
	};
	char img[128], hib[128];
	snprintf(img, sizeof img, "%s/hib.img", tmpdir);
	snprintf(hib, sizeof hib, "%s/hiberfil.sys", tmpdir);
	uint64_t size = 32 * MIB;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		CHECK(make_ntfs(img, size, 4096) == 0);
		CHECK(sh("{ printf %s; head -c 4092 /dev/urandom; } > %s", cases[i].magic, hib) == 0);
		CHECK(sh("ntfscp -f %s %s /hiberfil.sys >/dev/null 2>&1", img, hib) == 0);
		CHECK(sh("ntfscat %s /hiberfil.sys | cmp -s - %s", img, hib) == 0);
		if (strcmp(cases[i].magic, "hibr") == 0)  /* ntfs-3g agrees: no read-write mount */
			CHECK(sh("ntfscp -f %s %s /again >/dev/null 2>&1", img, hib) != 0);
		struct partition p;
		struct extmap m;
		CHECK_EQ_U64(map_part(img, 0, size, &p, &m), cases[i].result);
		CHECK_EQ_U64(p.state, cases[i].state);
		if (cases[i].result == FS_FALLBACK) {
			CHECK_EQ_U64(m.n, 0);  /* nothing added: the planner copies the whole partition */
			CHECK(strstr(p.reason, "shut down") != NULL);
		}
		extmap_release(&m);
	}
	unlink(hib);
	unlink(img);
}

/* Set VOLUME_IS_DIRTY the way Windows leaves it after a crash. */
static int set_dirty(const char *img)
{
	ntfs_volume *vol = ntfs_mount(img, NTFS_MNT_NONE);
	if (!vol)
		return -1;
	int r = ntfs_volume_write_flags(vol, vol->flags | VOLUME_IS_DIRTY);
	ntfs_umount(vol, FALSE);
	return r;
}

static void test_dirty(void)
{
	char img[128];
	snprintf(img, sizeof img, "%s/dirty.img", tmpdir);
	uint64_t size = 32 * MIB;
	CHECK(make_ntfs(img, size, 4096) == 0);
	CHECK(set_dirty(img) == 0);
	char *info = sh_out("ntfsinfo -m %s 2>/dev/null", img);
	CHECK(info && (field_u64(info, "Volume Flags") & 1));  /* precondition, as ntfsprogs sees it */
	free(info);
	struct partition p;
	struct extmap m;
	CHECK_EQ_U64(map_part(img, 0, size, &p, &m), FS_FALLBACK);
	CHECK_EQ_U64(p.state, FS_STATE_DIRTY);
	CHECK(strstr(p.reason, "chkdsk") != NULL);
	CHECK_EQ_U64(m.n, 0);
	extmap_release(&m);
	unlink(img);
}

static int patch(const char *img, uint64_t off, const void *bytes, size_t n)
{
	int fd = open(img, O_WRONLY);
	int r = fd >= 0 ? pwrite_full(fd, bytes, n, off) : -1;
	if (fd >= 0)
		close(fd);
	return r;
}

/* Absurd boot sectors and a wrecked $MFT: whole copy with DAMAGED, never a crash. */
static void test_hostile(void)
{
	char good[128], img[128];
	snprintf(good, sizeof good, "%s/good.img", tmpdir);
	snprintf(img, sizeof img, "%s/bad.img", tmpdir);
	uint64_t size = 16 * MIB;
	CHECK(make_ntfs(good, size, 4096) == 0);
	uint8_t bs[512];
	int fd = open(good, O_RDONLY);
	CHECK(fd >= 0 && pread_full(fd, bs, sizeof bs, 0) == 0);
	if (fd >= 0)
		close(fd);
	uint64_t mft_off = get_le64(bs + 0x30) * 4096, mirr_off = get_le64(bs + 0x38) * 4096;

	static const struct { const char *what; uint32_t off; uint8_t len; uint64_t value; } cases[] = {
		{ "sectors per cluster 0", 0x0d, 1, 0 },
		{ "sectors per cluster 3", 0x0d, 1, 3 },
		{ "bytes per sector 0", 0x0b, 2, 0 },
		{ "bytes per sector 1000", 0x0b, 2, 1000 },
		{ "total sectors huge", 0x28, 8, UINT64_MAX / 2 },
		{ "total sectors past the partition", 0x28, 8, 16 * MIB / 512 + 1 },
		{ "total sectors 0", 0x28, 8, 0 },
		{ "$MFT past the end", 0x30, 8, 1ull << 40 },
		{ "$MFTMirr past the end", 0x38, 8, 1ull << 40 },
		{ "clusters per MFT record -40", 0x40, 1, 0xd8 },
		{ "clusters per MFT record 0", 0x40, 1, 0 },
		{ "MFT record of 2 GiB", 0x40, 1, 0xe1 },
		{ "index block of 1 GiB", 0x44, 1, 0xe2 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t v[8];
		put_le64(v, cases[i].value);
		CHECK(sh("cp %s %s", good, img) == 0);
		CHECK(patch(img, cases[i].off, v, cases[i].len) == 0);
		struct partition p;
		struct extmap m;
		int r = map_part(img, 0, size, &p, &m);
		if (r != FS_FALLBACK || p.state != FS_STATE_DAMAGED)
			fprintf(stderr, "hostile case '%s': result %d state %d\n", cases[i].what, r, p.state);
		CHECK_EQ_U64(r, FS_FALLBACK);
		CHECK_EQ_U64(p.state, FS_STATE_DAMAGED);
		CHECK(p.reason[0] != '\0');
		CHECK_EQ_U64(m.n, 0);
		extmap_release(&m);
	}

	/* $MFT and its mirror overwritten: libntfs-3g's own checks refuse the volume. */
	CHECK(sh("cp %s %s", good, img) == 0);
	uint8_t junk[4096];
	memset(junk, 0xa5, sizeof junk);
	CHECK(patch(img, mft_off, junk, sizeof junk) == 0 && patch(img, mirr_off, junk, sizeof junk) == 0);
	struct partition p;
	struct extmap m;
	CHECK_EQ_U64(map_part(img, 0, size, &p, &m), FS_FALLBACK);
	CHECK_EQ_U64(p.state, FS_STATE_DAMAGED);
	printf("wrecked $MFT: %s\n", p.reason);
	CHECK(strstr(p.reason, "MFT") != NULL);  /* libntfs-3g's reason is passed on */
	extmap_release(&m);

	/* Random bytes in the boot sector fields: any answer but a crash or an I/O error. */
	srand(12345);
	for (int i = 0; i < 150; i++) {
		uint8_t b[512];
		memcpy(b, bs, sizeof b);
		for (int k = 0; k < 4; k++)
			b[0x0b + rand() % (0x50 - 0x0b)] = (uint8_t)rand();
		CHECK(sh("cp %s %s", good, img) == 0);
		CHECK(patch(img, 0, b, sizeof b) == 0);
		int r = map_part(img, 0, size, &p, &m);
		CHECK(r == FS_MAPPED || r == FS_FALLBACK);
		if (r == FS_MAPPED)
			CHECK(m.n > 0 && m.v[m.n - 1].start + m.v[m.n - 1].len <= size);
		extmap_release(&m);
	}
	unlink(img);
	unlink(good);
}

/* LCN of the first run `ntfsinfo -v -i inode` prints, or UINT64_MAX. */
static uint64_t first_lcn(const char *img, unsigned inode)
{
	char *out = sh_out("ntfsinfo -v -i %u %s 2>/dev/null", inode, img);
	const char *p = out ? strstr(out, "Runlist:") : NULL;
	unsigned long long vcn, lcn, len;
	uint64_t r = UINT64_MAX;
	if (p && (p = strchr(p, '\n')) && sscanf(p, " 0x%llx 0x%llx 0x%llx", &vcn, &lcn, &len) == 3)
		r = lcn;
	free(out);
	return r;
}

/* Windows 10/11 may set $Bitmap bits past the last cluster: they are ignored, not
 * taken for damage, and nothing lands past the partition. */
static void test_bitmap_tail(void)
{
	char img[128];
	snprintf(img, sizeof img, "%s/tail.img", tmpdir);
	uint64_t size = 16 * MIB + 8192;  /* 4097 clusters: $Bitmap has 520 bytes, 63 spare bits */
	CHECK(make_ntfs(img, size, 4096) == 0);
	struct partition p0, p1;
	struct extmap m0, m1;
	CHECK_EQ_U64(map_part(img, 0, size, &p0, &m0), FS_MAPPED);
	uint64_t nr = p0.fs_size / 4096, lcn = first_lcn(img, 6);
	CHECK_EQ_U64(nr, 4097);
	CHECK(lcn != UINT64_MAX);
	if (lcn != UINT64_MAX && nr == 4097) {
		uint8_t ones[520 - 4097 / 8];
		memset(ones, 0xff, sizeof ones);
		ones[0] = (uint8_t)(0xff << (nr % 8));  /* cluster 4096 is real: keep its bit */
		CHECK(patch(img, lcn * 4096 + nr / 8, ones, sizeof ones) == 0);
		CHECK_EQ_U64(map_part(img, 0, size, &p1, &m1), FS_MAPPED);
		CHECK_EQ_U64(p1.used_bytes, p0.used_bytes);
		CHECK(m1.n == m0.n && memcmp(m1.v, m0.v, m0.n * sizeof *m0.v) == 0);
		CHECK(sh("ntfsfix -n %s >/dev/null 2>&1", img) == 0);
		extmap_release(&m1);
	}
	extmap_release(&m0);
	unlink(img);
}

/* A source that cannot be read is an I/O error (-1), not a damaged filesystem. */
static void test_io_error(void)
{
	struct source s;
	memset(&s, 0, sizeof s);
	s.path = tmpdir;
	s.fd = open(tmpdir, O_RDONLY | O_DIRECTORY);  /* pread fails with EISDIR */
	s.size = 16 * MIB;
	s.lsec = 512;
	struct partition p = { .number = 1, .start = 0, .size = 16 * MIB };
	struct extmap m;
	extmap_init(&m);
	CHECK_EQ_U64(fs_ntfs.map(&s, &p, &m), (unsigned long long)-1);
	CHECK_EQ_U64(m.n, 0);
	close(s.fd);
	extmap_release(&m);
}

int main(void)
{
	if (sh("command -v mkntfs ntfscp ntfscat ntfsfix ntfsinfo ntfscluster sfdisk >/dev/null") != 0) {
		printf("skipped: ntfs-3g tools or sfdisk missing\n");
		return 0;
	}
	if (!mkdtemp(tmpdir))
		return 1;
	CHECK(fs_ntfs.blkid_types && strcmp(fs_ntfs.blkid_types[0], "ntfs") == 0 && !fs_ntfs.blkid_types[1]);
	test_partition_4k();
	test_disk_64k();
	test_hibernated();
	test_dirty();
	test_hostile();
	test_bitmap_tail();
	test_io_error();
	sh("rm -rf %s", tmpdir);
	return test_summary();
}
