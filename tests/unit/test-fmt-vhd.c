/* test-fmt-vhd.c - VHD dynamic and fixed writers checked by qemu-img (check, info, compare)
 * and by our own readers, on a synthetic patterned disk with holes; plus the size limit
 * and damaged-image refusals. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fmtdrive.h"
#include "test.h"
#include "util.h"

#define MIB (1ull << 20)

/* Run a shell command, its output into out (may be NULL); returns the exit status. */
static int run(const char *cmd, char *out, size_t outsz)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	if (!p)
		return -1;
	char tmp[4096];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, p)) > 0) {
		if (out && n + 1 < outsz) {
			size_t c = MIN(k, outsz - 1 - n);
			memcpy(out + n, tmp, c);
			n += c;
		}
	}
	if (out)
		out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint64_t qemu_virtual_size(const char *path)
{
	char cmd[512], out[8192];
	snprintf(cmd, sizeof cmd, "qemu-img info -f vpc --output=json '%s'", path);
	if (run(cmd, out, sizeof out) != 0)
		return 0;
	const char *p = strstr(out, "\"virtual-size\":");
	return p ? strtoull(p + 15, NULL, 10) : 0;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int write_file(const char *path, const uint8_t *buf, uint64_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	int r = write_full(fd, buf, len);
	close(fd);
	return r;
}

/* qemu-img check: 0 clean; 63 means the format has no check (older QEMU). */
static void check_qemu_check(const char *path)
{
	char cmd[512], out[4096];
	snprintf(cmd, sizeof cmd, "qemu-img check -f vpc '%s' 2>&1", path);
	int rc = run(cmd, out, sizeof out);
	if (rc == 63)
		printf("skip: qemu-img check does not support vpc (%s)\n", strtok(out, "\n"));
	else
		CHECK(rc == 0);
}

static void check_compare(const char *raw, const char *img)
{
	char cmd[768];
	snprintf(cmd, sizeof cmd, "qemu-img compare -q -f raw -F vpc '%s' '%s'", raw, img);
	CHECK(run(cmd, NULL, 0) == 0);
}

/* Patch len bytes at off of the file. */
static void patch(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0 && pwrite_full(fd, buf, len, off) == 0);
	if (fd >= 0)
		close(fd);
}

/* Remove the image and the manifest fmtdrive_write publishes beside it. */
static void remove_image(const char *img)
{
	char m[128];
	snprintf(m, sizeof m, "%s.manifest.json", img);
	unlink(img);
	unlink(m);
}

static void test_dynamic(const char *img, const char *raw, const uint8_t *disk, const uint8_t *expect,
			 uint64_t vsize, const struct extmap *map)
{
	CHECK(fmtdrive_write(&fmt_vhd, img, disk, vsize, 512, map, NULL) == 0);
	check_qemu_check(img);
	CHECK_EQ_U64(qemu_virtual_size(img), vsize);
	CHECK(write_file(raw, expect, vsize) == 0);
	check_compare(raw, img);

	/* Layout: 512 footer copy + 1024 header + BAT (5 entries -> 512) + 4 used slots of
	 * 2 MiB + 512 (block 2 is unmapped) + footer. */
	CHECK_EQ_U64(file_size(img), 2048 + 4 * (2 * MIB + 512) + 512);

	uint64_t got = 0;
	uint8_t *back = fmtdrive_read(&fmt_vhd, img, &got);
	CHECK(back != NULL);
	CHECK_EQ_U64(got, vsize);
	if (back)
		CHECK(memcmp(back, expect, vsize) == 0);
	free(back);
	CHECK(fmtdrive_read(&fmt_vhd_fixed, img, &got) == NULL);  /* the other flavour */

	/* Reader API directly: block 2 (4-6 MiB) has no BAT entry and reads as "unallocated". */
	struct fmt_reader r = { .fd = open(img, O_RDONLY), .file_size = file_size(img) };
	uint8_t *one = xmalloc(MIB);
	CHECK(fmt_vhd.read_open(&r) == 1);
	CHECK(fmt_vhd.read(&r, one, 4 * MIB, MIB) == 1);
	CHECK(fmt_vhd.read(&r, one, 0, MIB) == 0 && memcmp(one, expect, MIB) == 0);
	CHECK(fmt_vhd.read(&r, one, vsize - 512, 1024) == -1);  /* beyond the disk */
	fmt_vhd.read_close(&r);
	close(r.fd);
	free(one);

	/* Sector bitmap honoured: clear the bit of sector 2 of block 0 (MSB first, byte 0),
	 * which holds data, and it must read as zero. */
	uint8_t bm = 0xDF;
	patch(img, 2048, &bm, 1);
	back = fmtdrive_read(&fmt_vhd, img, &got);
	CHECK(back != NULL);
	if (back) {
		CHECK(buf_is_zero(back + 1024, 512));
		CHECK(memcmp(back, expect, 1024) == 0);
		CHECK(memcmp(back + 1536, expect + 1536, vsize - 1536) == 0);
	}
	free(back);

	/* A BAT entry pointing past the end of the file is refused, not followed. */
	uint8_t bad[4] = { 0x7F, 0xFF, 0xFF, 0x00 };
	patch(img, 1536, bad, 4);
	back = fmtdrive_read(&fmt_vhd, img, &got);
	CHECK(back == NULL);
	free(back);
	/* A damaged footer is refused. */
	uint8_t x = 0x55;
	patch(img, file_size(img) - 512 + 50, &x, 1);
	CHECK(fmtdrive_read(&fmt_vhd, img, &got) == NULL);
	remove_image(img);
	unlink(raw);
}

static void test_fixed(const char *img, const char *raw, const uint8_t *disk, const uint8_t *expect,
		       uint64_t vsize, const struct extmap *map)
{
	uint64_t rounded = ROUND_UP(vsize, MIB);
	uint8_t *padded = xcalloc(1, rounded);
	memcpy(padded, expect, vsize);
	CHECK(fmtdrive_write(&fmt_vhd_fixed, img, disk, vsize, 4096, map, NULL) == 0);
	check_qemu_check(img);
	CHECK_EQ_U64(qemu_virtual_size(img), rounded);
	CHECK_EQ_U64(file_size(img), rounded + 512);
	CHECK(write_file(raw, padded, rounded) == 0);
	check_compare(raw, img);

	uint64_t got = 0;
	uint8_t *back = fmtdrive_read(&fmt_vhd_fixed, img, &got);
	CHECK(back != NULL);
	CHECK_EQ_U64(got, rounded);
	if (back)
		CHECK(memcmp(back, padded, rounded) == 0);
	free(back);
	CHECK(fmtdrive_read(&fmt_vhd, img, &got) == NULL);

	struct stat st;
	CHECK(stat(img, &st) == 0 && (uint64_t)st.st_blocks * 512 < rounded);  /* holes */
	/* Truncated fixed image: size no longer matches the footer. */
	CHECK(truncate(img, (off_t)rounded) == 0);
	CHECK(fmtdrive_read(&fmt_vhd_fixed, img, &got) == NULL);
	remove_image(img);
	unlink(raw);
	free(padded);
}

/* Over the 2040 GiB limit: open() refuses with a message, nothing is left behind. */
static void test_too_big(const char *img)
{
	struct extmap empty;
	extmap_init(&empty);
	extmap_normalize(&empty, 0);
	uint64_t big = (2040ull << 30) + 512;
	CHECK(fmtdrive_write(&fmt_vhd, img, NULL, big, 512, &empty, NULL) == -1);
	CHECK(access(img, F_OK) != 0);
	CHECK(fmtdrive_write(&fmt_vhd_fixed, img, NULL, big, 512, &empty, NULL) == -1);
	CHECK(access(img, F_OK) != 0);
	CHECK_EQ_U64(fmt_vhd.max_vsize, 2040ull << 30);
	CHECK(!(fmt_vhd.caps & FMT_CAN_4K) && !(fmt_vhd_fixed.caps & FMT_CAN_4K));
	extmap_release(&empty);
}

int main(void)
{
	/* 5 blocks of 2 MiB, the last partial; a multiple of 512, not of 1 MiB. */
	uint64_t vsize = 9 * MIB + 7 * 512;
	uint8_t *disk = xmalloc(vsize), *expect = xcalloc(1, vsize);
	struct extmap map;
	char img[64], raw[64];
	snprintf(img, sizeof img, "/tmp/cc-test-vhd-%d.vhd", (int)getpid());
	snprintf(raw, sizeof raw, "/tmp/cc-test-vhd-%d.raw", (int)getpid());
	for (uint64_t i = 0; i < vsize; i++)
		disk[i] = (uint8_t)(i * 7 + 3 + (i >> 12));
	memset(disk + 2 * MIB, 0, MIB);  /* a zero chunk inside the map */
	extmap_init(&map);
	extmap_add(&map, 1000, 3 * MIB + 12345);            /* blocks 0-1, unaligned ends */
	extmap_add(&map, 6 * MIB + 70000, 5000);             /* small extent in block 3 */
	extmap_add(&map, vsize - 4096 - 300, 4096 + 300);   /* last partial block */
	extmap_normalize(&map, vsize);
	/* Expected disk: what the pipeline delivers, i.e. only mapped bytes survive. */
	for (size_t i = 0; i < map.n; i++)
		memcpy(expect + map.v[i].start, disk + map.v[i].start, map.v[i].len);

	test_dynamic(img, raw, disk, expect, vsize, &map);
	test_fixed(img, raw, disk, expect, vsize, &map);
	test_too_big(img);

	extmap_release(&map);
	free(disk);
	free(expect);
	return test_summary();
}
