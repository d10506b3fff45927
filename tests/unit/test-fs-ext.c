/* test-fs-ext.c - the ext2/3/4 mapper against the real e2fsprogs: images filled with
 * random data, then mkfs.ext* -d and a file deleted with debugfs; a clone made only of the
 * mapped ranges must pass e2fsck -fn, hold identical files, and read zero where the
 * filesystem says blocks are free. Dirty, erroring and broken filesystems fall back. */
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


/* The tree copied into every filesystem: small, large, empty, nested, a symlink. */
static void make_tree(const char *tree)
{
	char *p;
	test_run("mkdir -p %s/sub/deeper && echo hello > %s/hello.txt && : > %s/empty && "
	    "ln -s hello.txt %s/link", tree, tree, tree, tree);
	p = xasprintf("%s/big.bin", tree), test_write_random_file(p, 3 * MIB + 123, 11), free(p);
	p = xasprintf("%s/sub/mid.bin", tree), test_write_random_file(p, 200000, 12), free(p);
	p = xasprintf("%s/sub/deeper/small.bin", tree), test_write_random_file(p, 5000, 13), free(p);
}


/* Value of "Name:" in `dumpe2fs -h`, or 0. */
static uint64_t dumpe2fs_value(const char *img, const char *name)
{
	char *cmd = xasprintf("dumpe2fs -h %s 2>/dev/null", img), line[256];
	FILE *f = popen(cmd, "r");
	uint64_t v = 0;
	size_t nl = strlen(name);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, name, nl) == 0 && line[nl] == ':')
			v = strtoull(line + nl + 1, NULL, 10);
	if (f)
		pclose(f);
	free(cmd);
	return v;
}

/* The largest "Free blocks: a-b" range of any group, as blocks [a, b]. */
static bool dumpe2fs_free_range(const char *img, uint64_t *a, uint64_t *b)
{
	char *cmd = xasprintf("dumpe2fs %s 2>/dev/null", img), line[4096];
	FILE *f = popen(cmd, "r");
	bool found = false;
	while (f && fgets(line, sizeof line, f)) {
		char *s = strstr(line, "  Free blocks: ");
		if (!s)
			continue;
		for (char *tok = strtok(s + 15, ", \n"); tok; tok = strtok(NULL, ", \n")) {
			unsigned long long x, y;
			int n = sscanf(tok, "%llu-%llu", &x, &y);
			if (n == 1)
				y = x;
			if (n >= 1 && (!found || y - x > *b - *a))
				*a = x, *b = y, found = true;
		}
	}
	if (f)
		pclose(f);
	free(cmd);
	return found;
}

struct mapped {
	int r;
	struct partition p;
	struct extmap map;
};

static struct mapped map_partition(const char *img, uint64_t start, uint64_t size, const char *type)
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
	m.r = fs_ext.map(&s, &m.p, &m.map);
	close(s.fd);
	extmap_normalize(&m.map, start + size);
	return m;
}

struct ext_case {
	const char *name;
	const char *mkfs;   /* command, then options */
	uint64_t size;      /* image bytes */
	bool bigalloc;
};

static const struct ext_case cases[] = {
	{ "ext4", "mkfs.ext4 -b 4096", 64 * MIB, false },
	{ "ext4", "mkfs.ext4 -b 4096 -O 64bit,flex_bg", 72 * MIB, false },
	{ "ext4", "mkfs.ext4 -b 4096 -O ^64bit,^flex_bg", 64 * MIB, false },
	{ "ext4", "mkfs.ext4 -b 1024", 48 * MIB, false },
	{ "ext4", "mkfs.ext4 -O bigalloc -C 65536", 96 * MIB, true },
	{ "ext4", "mkfs.ext4 -b 4096 -O bigalloc -C 65536", 128 * MIB, true },
	{ "ext3", "mkfs.ext3 -b 4096", 48 * MIB, false },
	{ "ext2", "mkfs.ext2", 40 * MIB, false },
};

/* Make a filesystem image from the tree, delete the marker file with debugfs. */
static int make_fs(const struct ext_case *c, const char *img, const char *tree)
{
	char *marker = xasprintf("%s/deleted.txt", tree), *cmds = xasprintf("%s/rm.cmds", dir);
	FILE *f = fopen(cmds, "w");
	int r = test_write_random_file(img, c->size, c->size ^ 0x5eed);
	test_make_marker(marker);
	/* Files laid out one after another; deleting every other one fragments the map. */
	test_run("mkdir -p %s/frag", tree);
	for (int i = 0; i < 40; i++) {
		char *fp = xasprintf("%s/frag/f%02d", tree, i);
		test_write_random_file(fp, 70000, (uint64_t)i + 100);
		if (i % 2 && f)
			fprintf(f, "rm /frag/f%02d\n", i);
		free(fp);
	}
	if (f)
		fprintf(f, "rm /deleted.txt\n"), fclose(f);
	if (r == 0)
		r = test_run("%s -F -q -E nodiscard -d %s %s >/dev/null", c->mkfs, tree, img);
	/* The tree now matches the filesystem after the rm commands below. */
	unlink(marker);
	test_run("rm -f %s/frag/f?[13579]", tree);
	if (r == 0)
		r = test_run("debugfs -w -f %s %s >/dev/null 2>&1", cmds, img);
	unlink(cmds);
	free(cmds);
	free(marker);
	return r;
}

/* Map partition [start, start+size) of img, clone it, and check the clone. */
static void check_mapped(const char *what, const char *img, uint64_t start, uint64_t size,
			 const char *fsimg, const char *type, const char *tree, uint64_t cluster)
{
	char *clone = xasprintf("%s/clone.img", dir), *out = xasprintf("%s/out", dir);
	struct mapped m = map_partition(img, start, size, type);
	uint64_t blocks = dumpe2fs_value(fsimg, "Block count");
	uint64_t freeb = dumpe2fs_value(fsimg, "Free blocks");
	uint64_t bs = dumpe2fs_value(fsimg, "Block size");
	uint64_t fs_bytes = blocks * bs, expect = (blocks - freeb) * bs + (size - fs_bytes);
	uint64_t a = 0, b = 0;

	printf("%s: %s, used %" PRIu64 " of %" PRIu64 ", %zu extents\n", what, m.p.reason,
	       m.p.used_bytes, size, m.map.n);
	CHECK(m.r == FS_MAPPED);
	CHECK(m.p.state == FS_STATE_CLEAN);
	CHECK_EQ_U64(m.p.fs_size, fs_bytes);
	CHECK_EQ_U64(m.p.used_bytes, extmap_bytes(&m.map));
	/* Tolerance: one cluster (= one block without bigalloc), for a partial last cluster. */
	CHECK(m.p.used_bytes + cluster >= expect && m.p.used_bytes <= expect + cluster);
	if (m.p.used_bytes > expect + cluster || m.p.used_bytes + cluster < expect)
		fprintf(stderr, "%s: used %" PRIu64 ", dumpe2fs says %" PRIu64 "\n", what, m.p.used_bytes, expect);
	CHECK(m.map.n > 0 && m.map.v[0].start == start);  /* boot sector and superblock */
	CHECK(m.map.n > 0 && m.map.v[m.map.n - 1].start + m.map.v[m.map.n - 1].len <= start + size);
	size_t misaligned = 0;  /* runs start on cluster boundaries of the filesystem */
	for (size_t i = 0; i < m.map.n; i++)
		misaligned += (m.map.v[i].start - start) % cluster != 0 || m.map.v[i].len % 512 != 0;
	CHECK_EQ_U64(misaligned, 0);
	CHECK(test_build_clone(img, &m.map, m.p.start, m.p.size, clone) == 0);
	CHECK(test_run("e2fsck -fn %s >/dev/null 2>&1", clone) == 0);
	test_run("rm -rf %s && mkdir %s", out, out);
	CHECK(test_run("debugfs -R 'rdump / %s' %s >/dev/null 2>&1", out, clone) == 0);
	CHECK(test_run("diff -r -x lost+found %s %s", tree, out) == 0);
	CHECK(test_run("cmp -s %s/big.bin %s/big.bin", tree, out) == 0);
	/* The deleted file's data is in the source but not in the clone. */
	CHECK(test_file_contains(img, start, size, MARKER));
	CHECK(!test_file_contains(clone, 0, size, MARKER));
	/* The largest free range: dirty (random) in the source, zero in the clone. */
	CHECK(dumpe2fs_free_range(fsimg, &a, &b) && b > a);
	CHECK(test_file_contains(img, start + a * bs, (b - a + 1) * bs, NULL));
	CHECK(!test_file_contains(clone, a * bs, (b - a + 1) * bs, NULL));
	/* The partition tail past the filesystem is copied as is. */
	if (size > fs_bytes)
		CHECK(test_run("cmp -s -i %" PRIu64 ":%" PRIu64 " -n %" PRIu64 " %s %s", start + fs_bytes, fs_bytes,
			  size - fs_bytes, img, clone) == 0);
	extmap_release(&m.map);
	unlink(clone);
	test_run("rm -rf %s", out);
	free(clone);
	free(out);
}

static void test_case(const struct ext_case *c, const char *tree)
{
	char *img = xasprintf("%s/fs.img", dir);
	if (make_fs(c, img, tree) != 0) {
		CHECK(!"mkfs failed");
		free(img);
		return;
	}
	uint64_t cluster = c->bigalloc ? 65536 : dumpe2fs_value(img, "Block size");
	check_mapped(c->mkfs, img, 0, c->size, img, c->name, tree, cluster);
	unlink(img);
	free(img);
}

/* An ext4 at 1 MiB in an MBR disk, 16 MiB smaller than its partition. */
static void test_offset(const char *tree)
{
	const struct ext_case c = { "ext4", "mkfs.ext4 -b 4096", 64 * MIB, false };
	char *img = xasprintf("%s/fs.img", dir), *disk = xasprintf("%s/disk.img", dir);
	CHECK(make_fs(&c, img, tree) == 0);
	CHECK(test_write_random_file(disk, 100 * MIB, 77) == 0);
	CHECK(test_run("echo 'start=2048, size=163840, type=83' | sfdisk -q %s >/dev/null", disk) == 0);
	CHECK(test_run("dd if=%s of=%s bs=1M seek=1 conv=notrunc status=none", img, disk) == 0);
	check_mapped("ext4 at 1 MiB in MBR", disk, MIB, 80 * MIB, img, "ext4", tree, 4096);
	unlink(disk);
	unlink(img);
	free(disk);
	free(img);
}

/* Filesystems whose bitmaps cannot be trusted are copied whole. */
static void test_fallbacks(const char *tree)
{
	const struct ext_case c = { "ext4", "mkfs.ext4 -b 4096", 32 * MIB, false };
	char *img = xasprintf("%s/fs.img", dir);
	struct mapped m;

	CHECK(make_fs(&c, img, tree) == 0);
	CHECK(test_run("debugfs -w -R 'feature needs_recovery' %s >/dev/null 2>&1", img) == 0);
	m = map_partition(img, 0, c.size, "ext4");
	printf("needs_recovery: %s\n", m.p.reason);
	CHECK(m.r == FS_FALLBACK && m.p.state == FS_STATE_DIRTY && strstr(m.p.reason, "e2fsck"));
	extmap_release(&m.map);

	CHECK(make_fs(&c, img, tree) == 0);
	CHECK(test_run("debugfs -w -R 'ssv state 3' %s >/dev/null 2>&1", img) == 0);
	m = map_partition(img, 0, c.size, "ext4");
	printf("errors: %s\n", m.p.reason);
	CHECK(m.r == FS_FALLBACK && m.p.state == FS_STATE_DIRTY);
	extmap_release(&m.map);

	/* No superblock magic: libext2fs refuses, the reason quotes it. */
	CHECK(make_fs(&c, img, tree) == 0);
	CHECK(test_run("printf '\\000\\000' | dd of=%s bs=1 seek=1080 conv=notrunc status=none", img) == 0);
	m = map_partition(img, 0, c.size, "ext4");
	printf("bad magic: %s\n", m.p.reason);
	CHECK(m.r == FS_FALLBACK && m.p.state == FS_STATE_DAMAGED && strstr(m.p.reason, "magic"));
	extmap_release(&m.map);

	/* A filesystem larger than its partition (truncated) is not trusted. */
	CHECK(make_fs(&c, img, tree) == 0);
	m = map_partition(img, 0, c.size - MIB, "ext4");
	printf("truncated: %s\n", m.p.reason);
	CHECK(m.r == FS_FALLBACK && m.p.state == FS_STATE_DAMAGED);
	extmap_release(&m.map);
	unlink(img);
	free(img);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/cc-test-fs-ext-XXXXXX");
	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	char *tree = xasprintf("%s/tree", dir);
	make_tree(tree);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		test_case(&cases[i], tree);
	test_offset(tree);
	test_fallbacks(tree);

	CHECK(fs_find("ext4") == &fs_ext && fs_find("ext2") == &fs_ext && fs_find("ext3") == &fs_ext);
	CHECK(fs_find("xfs") == NULL && fs_find(NULL) == NULL);
	test_run("rm -rf %s", dir);
	free(tree);
	return test_summary();
}
