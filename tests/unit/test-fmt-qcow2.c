/* test-fmt-qcow2.c - the qcow2 writer checked by qemu-img (check, info, compare, dd) on
 * synthetic disks, including a 3 TiB sparse one; the reader checked on our images and on
 * images qemu made (zero flags, v2, small clusters), and against hostile headers. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fmtdrive.h"
#include "test.h"
#include "util.h"

#define MiB ((uint64_t)1 << 20)
#define TiB ((uint64_t)1 << 40)

static char dir[] = "/tmp/cc-test-qcow2-XXXXXX";

/* Lazily zero-filled memory the size of a disk: only touched pages cost RAM. */
static uint8_t *big_alloc(uint64_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, n, MADV_HUGEPAGE);  /* reads of untouched memory map the huge zero page: 512x fewer faults */
	return p;
}

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)((off >> 9) * 31 + off * 7 + 1);
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int st = system(cmd);
	if (st != 0)
		fprintf(stderr, "command failed (status %d): %s\n", st, cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* virtual-size from `qemu-img info --output=json`, 0 on failure. */
static uint64_t qemu_vsize(const char *path)
{
	char cmd[512], line[512];
	uint64_t v = 0;
	snprintf(cmd, sizeof cmd, "qemu-img info -f qcow2 --output=json '%s'", path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return 0;
	while (fgets(line, sizeof line, p)) {
		const char *k = strstr(line, "\"virtual-size\":");
		if (k)
			v = strtoull(k + strlen("\"virtual-size\":"), NULL, 10);
	}
	pclose(p);
	return v;
}

/* Patterned source disk: data also around each extent (must not leak into the image). */
static void fill_disk(uint8_t *disk, uint64_t vsize, const struct extmap *map)
{
	for (size_t i = 0; i < map->n; i++) {
		uint64_t s = map->v[i].start > 70000 ? map->v[i].start - 70000 : 0;
		uint64_t e = MIN(map->v[i].start + map->v[i].len + 70000, vsize);
		for (uint64_t o = s; o < e; o++)
			disk[o] = pattern(o);
	}
}

/* What the image must read as: the disk inside the map, zero outside. */
static int write_expected(const char *path, const uint8_t *disk, uint64_t vsize, const struct extmap *map)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)vsize) < 0)
		return -1;
	for (size_t i = 0; i < map->n; i++) {
		const struct extent *e = &map->v[i];
		for (uint64_t o = e->start; o < e->start + e->len; o += BLOCK_SIZE) {
			size_t n = (size_t)MIN((uint64_t)BLOCK_SIZE, e->start + e->len - o);
			if (!buf_is_zero(disk + o, n) && pwrite_full(fd, disk + o, n, o) < 0)
				return -1;  /* zero runs stay holes: the file is sparse */
		}
	}
	return close(fd);
}

/* True when img equals the disk inside the map and is zero outside it. */
static bool matches_map(const uint8_t *img, const uint8_t *disk, uint64_t vsize, const struct extmap *map)
{
	uint64_t pos = 0;
	for (size_t i = 0; i < map->n; i++) {
		const struct extent *e = &map->v[i];
		if (!buf_is_zero(img + pos, e->start - pos) || memcmp(img + e->start, disk + e->start, e->len))
			return false;
		pos = e->start + e->len;
	}
	return buf_is_zero(img + pos, vsize - pos);
}

/* Remove an image fmtdrive_write published, with its manifest. */
static void remove_image(const char *path)
{
	char man[128];
	snprintf(man, sizeof man, "%s.manifest.json", path);
	unlink(path);
	unlink(man);
}

static uint64_t file_blocks(const char *path, uint64_t *size)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return UINT64_MAX;
	*size = (uint64_t)st.st_size;
	return (uint64_t)st.st_blocks * 512;
}

/* Several extents: unaligned ones sharing a block, a zero chunk, one crossing the 512 MiB
 * L2 boundary, a partial last block. */
static void test_small(void)
{
	uint64_t vsize = 515 * MiB + 4608;
	char img[64], raw[64];
	snprintf(img, sizeof img, "%s/a.qcow2", dir);
	snprintf(raw, sizeof raw, "%s/a.raw", dir);
	struct extmap map;
	extmap_init(&map);
	extmap_add(&map, 0, 3 * MiB);
	extmap_add(&map, 5 * MiB + 1000, 200000);
	extmap_add(&map, 5 * MiB + 210000, 5000);  /* same 64 KiB block as the previous end */
	extmap_add(&map, 511 * MiB - 12345, 2 * MiB + 12345 + 777);
	extmap_add(&map, vsize - 4608, 4608);
	extmap_normalize(&map, vsize);
	uint8_t *disk = big_alloc(vsize);
	CHECK(disk != NULL);
	if (!disk)
		return;
	fill_disk(disk, vsize, &map);
	memset(disk + MiB, 0, MiB);  /* an all-zero chunk inside the map */
	CHECK(write_expected(raw, disk, vsize, &map) == 0);

	CHECK(fmtdrive_write(&fmt_qcow2, img, disk, vsize, 512, &map, NULL) == 0);
	CHECK(run("qemu-img check -q -f qcow2 '%s'", img) == 0);
	CHECK_EQ_U64(qemu_vsize(img), vsize);
	CHECK(run("qemu-img compare -q -f raw -F qcow2 '%s' '%s'", raw, img) == 0);
	/* Negative control: a changed byte inside an extent must be seen by compare. */
	int fd = open(raw, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, "\xAA", 1, 5 * MiB + 1500) == 1);
	close(fd);
	fprintf(stderr, "(a failed compare is expected next)\n");
	CHECK(run("qemu-img compare -q -f raw -F qcow2 '%s' '%s' 2>/dev/null", raw, img) == 1);

	uint64_t got = 0, size = 0;
	uint8_t *back = fmtdrive_read(&fmt_qcow2, img, &got);
	CHECK(back != NULL);
	CHECK_EQ_U64(got, vsize);
	if (back && got == vsize)
		CHECK(matches_map(back, disk, vsize, &map));
	free(back);
	/* Metadata plus at most the mapped blocks; the zero chunk is a hole. */
	uint64_t used = file_blocks(img, &size);
	CHECK(size <= 16 * BLOCK_SIZE + ROUND_UP(extmap_bytes(&map) + 4 * BLOCK_SIZE, BLOCK_SIZE));
	CHECK(size % BLOCK_SIZE == 0);
	CHECK(used + MiB <= size);
	remove_image(img);
	unlink(raw);
	munmap(disk, vsize);
	extmap_release(&map);
}

/* A 3 TiB disk with small extents at the start, middle and end: small sparse file. */
static void test_large(void)
{
	uint64_t vsize = 3 * TiB;
	char img[64], raw[64], part[64];
	snprintf(img, sizeof img, "%s/b.qcow2", dir);
	snprintf(raw, sizeof raw, "%s/b.raw", dir);
	snprintf(part, sizeof part, "%s/b.part", dir);
	struct extmap map;
	extmap_init(&map);
	extmap_add(&map, 0, MiB + 4096);
	extmap_add(&map, 3 * TiB / 2 + 12800, 300000);
	extmap_add(&map, vsize - 70144, 70144);
	extmap_normalize(&map, vsize);
	uint8_t *disk = big_alloc(vsize);
	CHECK(disk != NULL);
	if (!disk)
		return;
	fill_disk(disk, vsize, &map);
	CHECK(write_expected(raw, disk, vsize, &map) == 0);

	double t0 = now_seconds();
	CHECK(fmtdrive_write(&fmt_qcow2, img, disk, vsize, 512, &map, NULL) == 0);
	CHECK(run("qemu-img check -q -f qcow2 '%s'", img) == 0);
	CHECK_EQ_U64(qemu_vsize(img), vsize);
	CHECK(run("qemu-img compare -q -f raw -F qcow2 '%s' '%s'", raw, img) == 0);
	/* The middle extent through a second qemu path, byte for byte. */
	uint64_t mid = 3 * TiB / 2 + 12800;
	uint64_t sectors = 300000 / 512 + 1, end = 0;
	/* qemu-img dd (7.2) counts the skipped blocks in count= */
	CHECK(run("qemu-img dd -f qcow2 -O raw bs=512 skip=%" PRIu64 " count=%" PRIu64 " if='%s' of='%s'",
		  mid / 512, mid / 512 + sectors, img, part) == 0);
	file_blocks(part, &end);
	CHECK_EQ_U64(end, sectors * 512);
	uint8_t *got = xcalloc(1, 300000);
	int fd = open(part, O_RDONLY);
	CHECK(fd >= 0 && pread_full(fd, got, 300000, 0) == 0);
	close(fd);
	CHECK(memcmp(got, disk + mid, 300000) == 0);
	free(got);

	/* Our reader: data where mapped, "unallocated" far from it. */
	struct fmt_reader r = { .fd = open(img, O_RDONLY) };
	uint64_t size = 0, used = file_blocks(img, &size);
	r.file_size = size;
	CHECK(fmt_qcow2.read_open(&r) == 1);
	CHECK_EQ_U64(r.vsize, vsize);
	uint8_t *buf = xmalloc(MiB);
	CHECK(fmt_qcow2.read(&r, buf, TiB, MiB) == 1);
	CHECK(fmt_qcow2.read(&r, buf, vsize - MiB, MiB) == 0);
	CHECK(memcmp(buf + MiB - 70144, disk + vsize - 70144, 70144) == 0 && buf_is_zero(buf, MiB - 70144));
	fprintf(stderr, "(an error about a range past the virtual size is expected next)\n");
	CHECK(fmt_qcow2.read(&r, buf, vsize - 512, 1024) == -1);
	fmt_qcow2.read_close(&r);
	close(r.fd);
	free(buf);

	CHECK(size < 2 * MiB && used < 2 * MiB);
	CHECK(now_seconds() - t0 < 10);
	remove_image(img);
	unlink(raw);
	unlink(part);
	munmap(disk, vsize);
	extmap_release(&map);
}

/* Over 32768 clusters, so the refcounts need a second refcount block. The source is mostly
 * zero, so the data clusters stay holes and this stays fast. */
static void test_many_clusters(void)
{
	uint64_t vsize = 2 * 1024 * MiB + 64 * MiB;
	char img[64], raw[64];
	snprintf(img, sizeof img, "%s/c.qcow2", dir);
	snprintf(raw, sizeof raw, "%s/c.raw", dir);
	struct extmap map;
	extmap_init(&map);
	extmap_add(&map, 4096, vsize - 32 * MiB);
	extmap_normalize(&map, vsize);
	uint8_t *disk = big_alloc(vsize);
	CHECK(disk != NULL);
	if (!disk)
		return;
	for (uint64_t o = 4096; o < 3 * MiB; o++)
		disk[o] = pattern(o);
	for (uint64_t o = vsize - 32 * MiB - 100000; o < vsize - 32 * MiB + 4096; o++)
		disk[o] = pattern(o);
	CHECK(write_expected(raw, disk, vsize, &map) == 0);
	CHECK(fmtdrive_write(&fmt_qcow2, img, disk, vsize, 512, &map, NULL) == 0);
	CHECK(run("qemu-img check -q -f qcow2 '%s'", img) == 0);
	CHECK(run("qemu-img compare -q -f raw -F qcow2 '%s' '%s'", raw, img) == 0);
	uint64_t size = 0;
	file_blocks(img, &size);
	CHECK(size > 32768 * BLOCK_SIZE);  /* really past one refcount block */
	remove_image(img);
	unlink(raw);
	munmap(disk, vsize);
	extmap_release(&map);
}

/* Read a qemu-made image whole and compare with what qemu-io wrote. */
static void check_qemu_image(const char *img, const uint8_t *expect, uint64_t vsize)
{
	uint64_t got = 0;
	uint8_t *back = fmtdrive_read(&fmt_qcow2, img, &got);
	CHECK(back != NULL);
	CHECK_EQ_U64(got, vsize);
	if (back && got == vsize)
		CHECK(memcmp(back, expect, vsize) == 0);
	free(back);
}

static void test_reader_foreign(void)
{
	char img[64];
	uint64_t vsize = 8 * MiB;
	uint8_t *expect = xcalloc(1, vsize);
	snprintf(img, sizeof img, "%s/q.qcow2", dir);

	/* v3, 64 KiB clusters: data, then zero-flag clusters written over part of it. */
	memset(expect, 0x5a, MiB);
	memset(expect + 256 * 1024, 0, 128 * 1024);
	memset(expect + 5 * MiB + 1024, 0x33, 4096);
	CHECK(run("qemu-img create -q -f qcow2 '%s' 8M && qemu-io -f qcow2 -c 'write -q -P 0x5a 0 1M' "
		  "-c 'write -q -z 256k 128k' -c 'write -q -P 0x33 5243904 4096' '%s'", img, img) == 0);
	check_qemu_image(img, expect, vsize);

	/* v2 (compat 0.10) with 4 KiB clusters: another cluster_bits, no zero flag. */
	remove_image(img);
	memset(expect, 0, vsize);
	memset(expect + 3 * MiB + 512, 0x77, 3 * MiB);
	CHECK(run("qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 '%s' 8M && "
		  "qemu-io -f qcow2 -c 'write -q -P 0x77 3146240 3M' '%s'", img, img) == 0);
	check_qemu_image(img, expect, vsize);

	/* Compressed clusters are refused with an error, not misread. */
	remove_image(img);
	CHECK(run("qemu-img create -q -f qcow2 '%s' 8M && qemu-io -f qcow2 -c 'write -q -c -P 0x11 0 64k' '%s'",
		  img, img) == 0);
	fprintf(stderr, "(an error about a compressed cluster is expected next)\n");
	uint64_t got = 0;
	uint8_t *back = fmtdrive_read(&fmt_qcow2, img, &got);
	CHECK(back == NULL);
	free(back);
	remove_image(img);
	free(expect);
}

/* Patch bytes of a valid image and check read_open's verdict. */
static int open_patched(const char *img, uint64_t off, const void *bytes, size_t n)
{
	int fd = open(img, O_RDWR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || pwrite_full(fd, bytes, n, off) < 0)
		return -2;
	struct fmt_reader r = { .fd = fd, .file_size = (uint64_t)st.st_size };
	int k = fmt_qcow2.read_open(&r);
	if (k == 1)
		fmt_qcow2.read_close(&r);
	close(fd);
	return k;
}

static void test_reader_hostile(void)
{
	char img[64];
	snprintf(img, sizeof img, "%s/h.qcow2", dir);
	static const struct {
		uint64_t off;
		uint8_t bytes[8];
		size_t n;
		int want;
	} cases[] = {
		{ 0, { 'Q', 'F', 'I', 0xfb }, 4, 1 },                   /* untouched */
		{ 0, { 'Q', 'F', 'J', 0xfb }, 4, 0 },                   /* not qcow2 */
		{ 4, { 0, 0, 0, 4 }, 4, -1 },                           /* version */
		{ 20, { 0, 0, 0, 30 }, 4, -1 },                         /* cluster_bits */
		{ 32, { 0, 0, 0, 1 }, 4, -1 },                          /* encrypted */
		{ 36, { 0, 0, 0, 0 }, 4, -1 },                          /* L1 too small for size */
		{ 40, { 0, 0, 0, 0x10, 0, 0, 0, 0 }, 8, -1 },           /* L1 past the end */
		{ 72, { 0, 0, 0, 0, 0, 0, 0, 0x20 }, 8, -1 },           /* unknown incompatible bit */
		{ 72, { 0, 0, 0, 0, 0, 0, 0, 0x04 }, 8, -1 },           /* external data file */
		{ 24, { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 8, -1 },  /* huge size */
	};
	uint64_t vsize = 4 * MiB;
	uint8_t *disk = xcalloc(1, vsize);
	struct extmap map;
	extmap_init(&map);
	extmap_add(&map, 0, MiB);
	extmap_normalize(&map, vsize);
	fill_disk(disk, vsize, &map);
	fprintf(stderr, "(errors about damaged headers are expected next)\n");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		CHECK(fmtdrive_write(&fmt_qcow2, img, disk, vsize, 512, &map, NULL) == 0);
		int k = open_patched(img, cases[i].off, cases[i].bytes, cases[i].n);
		if (k != cases[i].want)
			fprintf(stderr, "hostile case %zu: read_open %d, expected %d\n", i, k, cases[i].want);
		CHECK(k == cases[i].want);
	}
	/* An L2 entry pointing past the end of the file fails the read, not the process. */
	CHECK(fmtdrive_write(&fmt_qcow2, img, disk, vsize, 512, &map, NULL) == 0);
	uint8_t l1[8], bad[8] = { 0, 0, 0, 0x10, 0, 0, 0, 0 };
	int fd = open(img, O_RDWR);
	CHECK(fd >= 0 && pread_full(fd, l1, 8, 4 * BLOCK_SIZE) == 0);  /* header, L1, RT, RB, then L2 */
	CHECK(get_be64(l1) >> 63 == 1 && pwrite_full(fd, bad, 8, 4 * BLOCK_SIZE) == 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	struct fmt_reader r = { .fd = fd, .file_size = (uint64_t)st.st_size };
	uint8_t buf[512];
	CHECK(fmt_qcow2.read_open(&r) == 1);
	fprintf(stderr, "(an error about a cluster outside the file is expected next)\n");
	CHECK(fmt_qcow2.read(&r, buf, 0, sizeof buf) == -1);
	fmt_qcow2.read_close(&r);
	close(fd);
	remove_image(img);
	free(disk);
	extmap_release(&map);
}

int main(void)
{
	if (system("qemu-img --version >/dev/null 2>&1 && qemu-io --version >/dev/null 2>&1") != 0) {
		printf("checks: 0 passed, 0 failed, 1 skipped (qemu-img/qemu-io not installed)\n");
		return 0;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_small();
	test_large();
	test_many_clusters();
	test_reader_foreign();
	test_reader_hostile();
	rmdir(dir);
	return test_summary();
}
