/* test-fs-fat.c - the FAT mapper against dosfstools and mtools: volumes made on random
 * data, files copied in with mcopy and deleted with mdel; a clone made only of the mapped
 * ranges must pass fsck.vfat -n and give identical files, and deleted data must be gone.
 * Corrupt boot sectors (and a mutation fuzz) fall back; also the swap mapper and registry. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "test.h"
#include "testutil.h"
#include "util.h"

#define MIB (1024 * 1024ull)
#define MARKER TEST_MARKER

static char dir[64];  /* this run's scratch directory */



/* FAT keeps no symlinks: files, an empty file and nested directories only. */
static void make_tree(const char *tree, uint64_t big)
{
	char *p;
	test_run("rm -rf %s && mkdir -p %s/sub/deeper && echo hello > %s/hello.txt && : > %s/empty",
	    tree, tree, tree, tree);
	p = xasprintf("%s/big.bin", tree), test_write_random_file(p, big, 21), free(p);
	p = xasprintf("%s/sub/mid.bin", tree), test_write_random_file(p, 200000, 22), free(p);
	p = xasprintf("%s/sub/deeper/small.bin", tree), test_write_random_file(p, 5000, 23), free(p);
}

struct mapped {
	int r;
	struct partition p;
	struct extmap map;
};

static struct mapped map_with(const struct fs_ops *ops, const char *img, uint64_t start, uint64_t size,
			      const char *type)
{
	struct mapped m = { .p = { .number = 1, .start = start, .size = size } };
	struct stat st;
	struct source s = { .path = (char *)img, .fd = open(img, O_RDONLY), .lsec = 512 };
	snprintf(m.p.fs, sizeof m.p.fs, "%s", type);
	extmap_init(&m.map);
	if (s.fd < 0 || fstat(s.fd, &st) < 0) {
		m.r = -2;
		return m;
	}
	s.size = (uint64_t)st.st_size;
	m.r = ops->map(&s, &m.p, &m.map);
	close(s.fd);
	extmap_normalize(&m.map, start + size);
	return m;
}

/* From `fsck.vfat -n -v`: "N files, used/total clusters", bytes per cluster, FAT entry bits. */
struct fsck_info {
	uint64_t used, total, cluster_bytes;
	unsigned bits;
};

static bool fsck_info(const char *img, struct fsck_info *fi)
{
	char *cmd = xasprintf("fsck.vfat -n -v %s 2>/dev/null", img), line[512];
	FILE *f = popen(cmd, "r");
	bool ok = false;
	*fi = (struct fsck_info){ 0 };
	while (f && fgets(line, sizeof line, f)) {
		char *s = strstr(line, " files, ");
		unsigned long long u, t;
		if (s && sscanf(s, " files, %llu/%llu clusters", &u, &t) == 2)
			fi->used = u, fi->total = t, ok = true;
		if (strstr(line, " bytes per cluster") && sscanf(line, " %llu", &u) == 1)
			fi->cluster_bytes = u;
		if ((s = strstr(line, " FATs, ")) && sscanf(s, " FATs, %llu bit entries", &u) == 1)
			fi->bits = (unsigned)u;
	}
	if (f)
		pclose(f);
	free(cmd);
	return ok && fi->cluster_bytes;
}

struct fat_case {
	const char *opts;   /* mkfs.vfat options */
	uint64_t size;      /* volume bytes */
	uint64_t big;       /* size of the large file */
	unsigned bits;
};

static const struct fat_case cases[] = {
	{ "-F 32", 64 * MIB, 5 * MIB, 32 },
	{ "-F 32 -S 1024", 80 * MIB, 5 * MIB, 32 },
	{ "-F 16", 32 * MIB, 3 * MIB, 16 },
	{ "-F 16 -S 4096", 64 * MIB, 3 * MIB, 16 },
	{ "-F 12", 4 * MIB, MIB, 12 },
	{ "-F 12 -s 1", 2 * MIB, 500000, 12 },       /* odd cluster numbers straddle bytes */
};

/* Make a volume on random data in img at [off, off+c->size), fill it, delete files. */
static int make_fat(const struct fat_case *c, const char *img, uint64_t off, const char *tree)
{
	char *vol = xasprintf("%s/vol.img", dir), *marker = xasprintf("%s/deleted.txt", dir);
	int r = test_write_random_file(vol, c->size, c->size + c->bits);
	make_tree(tree, c->big);
	test_make_marker(marker);
	if (r == 0)
		r = test_run("mkfs.vfat %s %s >/dev/null", c->opts, vol);
	if (r == 0)
		r = test_run("mcopy -i %s -s %s/* ::/ && mcopy -i %s %s ::/deleted.txt && mmd -i %s ::/frag",
			vol, tree, vol, marker, vol);
	/* Interleaved files, every other one deleted: a fragmented allocation table. */
	for (int i = 0; r == 0 && i < 24; i++) {
		char *fp = xasprintf("%s/frag/f%02d", tree, i);
		test_run("mkdir -p %s/frag", tree);
		test_write_random_file(fp, 9000 + (uint64_t)i * 1000, (uint64_t)i + 200);
		r = test_run("mcopy -i %s %s ::/frag/", vol, fp);
		free(fp);
	}
	for (int i = 1; r == 0 && i < 24; i += 2) {
		char *fp = xasprintf("%s/frag/f%02d", tree, i);
		r = test_run("mdel -i %s ::/frag/f%02d", vol, i);
		unlink(fp);
		free(fp);
	}
	if (r == 0)
		r = test_run("mdel -i %s ::/deleted.txt", vol);
	if (r == 0 && strcmp(img, vol) != 0)
		r = test_run("dd if=%s of=%s bs=64K seek=%" PRIu64 " oflag=seek_bytes conv=notrunc status=none",
			vol, img, off);
	unlink(marker);
	free(marker);
	free(vol);
	return r;
}

static void check_fat(const struct fat_case *c, const char *img, uint64_t start, uint64_t size,
		      const char *tree)
{
	char *clone = xasprintf("%s/clone.img", dir), *out = xasprintf("%s/out", dir);
	struct mapped m = map_with(&fs_fat, img, start, size, "vfat");

	printf("mkfs.vfat %s: %s, used %" PRIu64 " of %" PRIu64 ", %zu extents\n", c->opts, m.p.reason,
	       m.p.used_bytes, size, m.map.n);
	CHECK(m.r == FS_MAPPED && m.p.state == FS_STATE_CLEAN);
	CHECK_EQ_U64(m.p.fs_size, c->size);
	CHECK_EQ_U64(m.p.used_bytes, extmap_bytes(&m.map));
	char want[16];
	snprintf(want, sizeof want, "FAT%u ", c->bits);
	CHECK(strncmp(m.p.reason, want, strlen(want)) == 0);
	CHECK(test_build_clone(img, &m.map, m.p.start, m.p.size, clone) == 0);
	CHECK(test_run("fsck.vfat -n %s >/dev/null", clone) == 0);
	/* Everything but the free clusters fsck counts is mapped (plus the partition tail). */
	struct fsck_info fi;
	CHECK(fsck_info(clone, &fi));
	CHECK_EQ_U64(fi.bits, c->bits);
	CHECK_EQ_U64(m.p.used_bytes, size - (fi.total - fi.used) * fi.cluster_bytes);
	test_run("rm -rf %s && mkdir %s", out, out);
	CHECK(test_run("mcopy -i %s -s '::*' %s/", clone, out) == 0);
	CHECK(test_run("diff -r %s %s", tree, out) == 0);
	CHECK(test_file_contains(img, start, size, MARKER));
	CHECK(!test_file_contains(clone, 0, size, MARKER));
	extmap_release(&m.map);
	unlink(clone);
	test_run("rm -rf %s", out);
	free(clone);
	free(out);
}

static void test_cases(const char *tree)
{
	char *vol = xasprintf("%s/vol.img", dir);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (make_fat(&cases[i], vol, 0, tree) != 0) {
			CHECK(!"making the FAT volume failed");
			continue;
		}
		check_fat(&cases[i], vol, 0, cases[i].size, tree);
	}
	unlink(vol);
	free(vol);
}

/* A FAT16 at 1 MiB in an MBR disk, 4 MiB smaller than its partition. */
static void test_offset(const char *tree)
{
	const struct fat_case c = { "-F 16", 20 * MIB, 2 * MIB, 16 };
	char *disk = xasprintf("%s/disk.img", dir);
	CHECK(test_write_random_file(disk, 32 * MIB, 99) == 0);
	CHECK(test_run("echo 'start=2048, size=49152, type=6' | sfdisk -q %s >/dev/null", disk) == 0);
	CHECK(make_fat(&c, disk, MIB, tree) == 0);
	struct mapped m = map_with(&fs_fat, disk, MIB, 24 * MIB, "vfat");
	CHECK(m.r == FS_MAPPED);
	CHECK_EQ_U64(extmap_bytes_in(&m.map, 21 * MIB, 4 * MIB), 4 * MIB);  /* tail */
	CHECK(m.map.n && m.map.v[0].start == MIB);
	CHECK(m.map.n && m.map.v[m.map.n - 1].start + m.map.v[m.map.n - 1].len == 25 * MIB);
	extmap_release(&m.map);
	/* The clone of the partition must still check and read back. */
	check_fat(&c, disk, MIB, 24 * MIB, tree);
	unlink(disk);
	free(disk);
}

struct corruption {
	const char *what;
	unsigned off;      /* byte in the boot sector */
	unsigned len;      /* 1, 2 or 4 */
	uint32_t value;
	enum fs_state state;
};

static const struct corruption corruptions[] = {
	{ "bytes per sector 0", 11, 2, 0, FS_STATE_DAMAGED },
	{ "bytes per sector 768", 11, 2, 768, FS_STATE_DAMAGED },
	{ "sectors per cluster 3", 13, 1, 3, FS_STATE_DAMAGED },
	{ "sectors per cluster 0", 13, 1, 0, FS_STATE_DAMAGED },
	{ "no reserved sectors", 14, 2, 0, FS_STATE_DAMAGED },
	{ "no FATs", 16, 1, 0, FS_STATE_DAMAGED },
	{ "9 FATs", 16, 1, 9, FS_STATE_DAMAGED },
	{ "volume past the partition", 19, 2, 65535, FS_STATE_DAMAGED },
	{ "FAT of one sector", 22, 2, 1, FS_STATE_DAMAGED },
	{ "metadata fills the volume", 14, 2, 65000, FS_STATE_DAMAGED },
	{ "dirty flag", 37, 1, 1, FS_STATE_DIRTY },
};

static void patch(const char *img, uint64_t off, const void *buf, size_t len)
{
	int fd = open(img, O_WRONLY);
	CHECK(fd >= 0 && pwrite_full(fd, buf, len, off) == 0);
	if (fd >= 0)
		close(fd);
}

/* Broken boot sectors fall back; a mutation fuzz never crashes or maps outside. */
static void test_corrupt(const char *tree)
{
	const struct fat_case c = { "-F 16", 16 * MIB, MIB, 16 };
	char *vol = xasprintf("%s/vol.img", dir);
	uint8_t orig[512], bs[512];
	int fd;

	CHECK(make_fat(&c, vol, 0, tree) == 0);
	fd = open(vol, O_RDONLY);
	CHECK(fd >= 0 && pread_full(fd, orig, sizeof orig, 0) == 0);
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < ARRAY_SIZE(corruptions); i++) {
		const struct corruption *k = &corruptions[i];
		memcpy(bs, orig, sizeof bs);
		for (unsigned b = 0; b < k->len; b++)
			bs[k->off + b] = (uint8_t)(k->value >> (8 * b));
		patch(vol, 0, bs, sizeof bs);
		struct mapped m = map_with(&fs_fat, vol, 0, c.size, "vfat");
		printf("%s: %s\n", k->what, m.p.reason);
		CHECK(m.r == FS_FALLBACK && m.p.state == k->state);
		extmap_release(&m.map);
	}
	/* FAT[1] without the clean-shutdown bit (0x8000) is dirty too. */
	patch(vol, 0, orig, sizeof orig);
	uint8_t e1[2] = { 0xff, 0x7f };
	patch(vol, get_le16(orig + 14) * 512ull + 2, e1, 2);
	struct mapped m = map_with(&fs_fat, vol, 0, c.size, "vfat");
	CHECK(m.r == FS_FALLBACK && m.p.state == FS_STATE_DIRTY);
	extmap_release(&m.map);

	/* Mutation fuzz over the BPB: any verdict, but never a map outside the partition. */
	uint64_t st = 12345;
	unsigned mapped = 0;
	for (int it = 0; it < 3000; it++) {
		memcpy(bs, orig, sizeof bs);
		for (int k = 0; k < 1 + it % 4; k++) {
			st ^= st << 13, st ^= st >> 7, st ^= st << 17;
			bs[11 + st % 60] = (uint8_t)(st >> 32);
		}
		patch(vol, 0, bs, sizeof bs);
		m = map_with(&fs_fat, vol, 0, c.size, "vfat");
		CHECK(m.r == FS_MAPPED || m.r == FS_FALLBACK);
		if (m.r == FS_MAPPED) {
			mapped++;
			CHECK(m.map.n == 0 || m.map.v[m.map.n - 1].start + m.map.v[m.map.n - 1].len <= c.size);
			CHECK(m.p.used_bytes <= c.size);
		}
		extmap_release(&m.map);
	}
	printf("fuzz: %u of 3000 mutated boot sectors still mapped\n", mapped);
	unlink(vol);
	free(vol);
}

/* Swap: the header page only; a hibernation image means the whole partition. */
static void test_swap(void)
{
	char *img = xasprintf("%s/swap.img", dir), *clone = xasprintf("%s/swapclone.img", dir);
	const char *uuid = "0b3e7f5c-8a61-4d2b-9b1e-2f4c6d8e0a13";
	CHECK(test_write_random_file(img, 16 * MIB, 5) == 0);
	chmod(img, 0600);
	CHECK(test_run("mkswap -L cc-swap -U %s %s >/dev/null", uuid, img) == 0);
	CHECK(test_run("truncate -s %llu %s", 16 * MIB + 8192, img) == 0);  /* partition 2 pages longer */
	struct mapped m = map_with(&fs_swap, img, 0, 16 * MIB + 8192, "swap");
	printf("swap: %s, used %" PRIu64 "\n", m.p.reason, m.p.used_bytes);
	CHECK(m.r == FS_MAPPED && m.p.method == COPY_HEADER && m.p.state == FS_STATE_CLEAN);
	CHECK(strcmp(m.p.reason, "swap: header only") == 0);
	CHECK(m.map.n == 2 && m.map.v[0].start == 0 && m.map.v[0].len == 4096);
	CHECK(m.map.n == 2 && m.map.v[1].start == 16 * MIB && m.map.v[1].len == 8192);
	CHECK_EQ_U64(m.p.used_bytes, 4096 + 8192);
	CHECK_EQ_U64(m.p.fs_size, 16 * MIB);
	CHECK(test_build_clone(img, &m.map, m.p.start, m.p.size, clone) == 0);
	char *cmd = xasprintf("blkid -p -o value -s UUID %s", clone), line[128] = "";
	FILE *f = popen(cmd, "r");
	if (f && fgets(line, sizeof line, f))
		line[strcspn(line, "\n")] = 0;
	if (f)
		pclose(f);
	CHECK(strcmp(line, uuid) == 0);  /* blkid still sees the same swap area in the clone */
	extmap_release(&m.map);

	patch(img, 4086, "S1SUSPEND", 9);
	m = map_with(&fs_swap, img, 0, 16 * MIB, "swsuspend");
	printf("hibernated: %s\n", m.p.reason);
	CHECK(m.r == FS_FALLBACK && m.p.state == FS_STATE_HIBERNATED);
	extmap_release(&m.map);
	patch(img, 4086, "NOTASWAP!!", 10);
	m = map_with(&fs_swap, img, 0, 16 * MIB, "swap");
	CHECK(m.r == FS_FALLBACK && m.p.state == FS_STATE_DAMAGED);
	extmap_release(&m.map);
	unlink(img);
	unlink(clone);
	free(cmd);
	free(img);
	free(clone);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/cc-test-fs-fat-XXXXXX");
	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	setenv("MTOOLS_SKIP_CHECK", "1", 1);
	char *tree = xasprintf("%s/tree", dir);
	test_cases(tree);
	test_offset(tree);
	test_corrupt(tree);
	test_swap();

	CHECK(fs_find("vfat") == &fs_fat && fs_find("msdos") == &fs_fat);
	CHECK(fs_find("swap") == &fs_swap && fs_find("swsuspend") == &fs_swap);
	CHECK(fs_find("ntfs") == &fs_ntfs && fs_find("exfat") == NULL && fs_find("") == NULL);
	test_run("rm -rf %s", dir);
	free(tree);
	return test_summary();
}
