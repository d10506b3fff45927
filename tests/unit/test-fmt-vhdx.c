/* test-fmt-vhdx.c - VHDX writer checked by qemu-img (check, info, compare) on synthetic
 * disks with 512- and 4096-byte sectors and a sparse 4 TiB disk; the reader round trip;
 * and the reader against damaged copies (bad header, pending log, truncation, bad BAT). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fmtdrive.h"
#include "test.h"
#include "util.h"

#define MIB (UINT64_C(1) << 20)

static char dir[] = "/tmp/cc-test-vhdx-XXXXXX";

static uint8_t *read_file(const char *path, uint64_t *len);

static int run(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Exit status of `qemu-img check`, its output kept quiet unless it fails. */
static int qemu_check(const char *path)
{
	char *cmd = xasprintf("qemu-img check -f vhdx '%s' >%s/check.out 2>&1 || { cat %s/check.out >&2; exit 1; }",
			      path, dir, dir);
	int r = run(cmd);
	free(cmd);
	return r;
}

static int qemu_compare(const char *raw, const char *img)
{
	char *cmd = xasprintf("qemu-img compare -q -f raw -F vhdx '%s' '%s'", raw, img);
	int r = run(cmd);
	free(cmd);
	return r;
}

/* "virtual-size" from `qemu-img info --output=json`, or 0. */
static uint64_t qemu_vsize(const char *path)
{
	char *cmd = xasprintf("qemu-img info -f vhdx --output=json '%s'", path);
	FILE *f = popen(cmd, "r");
	free(cmd);
	char line[512];
	unsigned long long v = 0;
	while (f && fgets(line, sizeof line, f)) {
		const char *k = strstr(line, "\"virtual-size\":");
		if (k)
			sscanf(k + 15, " %llu", &v);
	}
	if (f)
		pclose(f);
	return v;
}

/* True when QEMU reads [off, off+len) of the VHDX at path (4 KiB multiples) as want_base[off..]. */
static bool qemu_extent_equals(const char *path, const uint8_t *want_base, uint64_t off, uint64_t len)
{
	char *out = xasprintf("%s/extent.raw", dir);
	/* A raw node with offset/size over the vhdx node: QEMU reads only that window
	 * (`qemu-img dd skip=` cannot seek in 7.2). */
	char *cmd = xasprintf("qemu-img convert -O raw 'json:{\"driver\":\"raw\",\"offset\":%" PRIu64 ",\"size\":%" PRIu64
			      ",\"file\":{\"driver\":\"vhdx\",\"file\":{\"driver\":\"file\",\"filename\":\"%s\"}}}' '%s'",
			      off, len, path, out);
	unlink(out);
	bool ok = run(cmd) == 0;
	uint64_t got_len = 0;
	uint8_t *got = ok ? read_file(out, &got_len) : NULL;
	ok = got && got_len == len && memcmp(got, want_base + off, len) == 0;
	free(got);
	unlink(out);
	free(out);
	free(cmd);
	return ok;
}

/* Bitwise CRC-32C, written apart from the writer's table version, to forge damaged files. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* The disk as an image of it must read: bytes outside the map are zero. */
static uint8_t *masked(const uint8_t *disk, uint64_t vsize, const struct extmap *m)
{
	uint8_t *out = xcalloc(1, vsize);
	for (size_t i = 0; i < m->n; i++)
		memcpy(out + m->v[i].start, disk + m->v[i].start, m->v[i].len);
	return out;
}

static int write_file(const char *path, const uint8_t *buf, uint64_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int r = fd >= 0 ? pwrite_full(fd, buf, len, 0) : -1;
	if (fd >= 0)
		close(fd);
	return r;
}

/* Remove an image and the manifest fmtdrive_write published beside it. */
static void remove_image(const char *path)
{
	char *m = xasprintf("%s.manifest.json", path);
	unlink(path);
	unlink(m);
	free(m);
}

static uint8_t *read_file(const char *path, uint64_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	uint8_t *b = xmalloc((size_t)st.st_size);
	if (pread_full(fd, b, (size_t)st.st_size, 0) < 0) {
		free(b);
		b = NULL;
	}
	close(fd);
	*len = (uint64_t)st.st_size;
	return b;
}

/* Open path with the VHDX reader: the read_open result, lsec through *lsec. */
static int reader_open(const char *path, struct fmt_reader *r)
{
	struct stat st;
	*r = (struct fmt_reader){ .fd = open(path, O_RDONLY) };
	if (r->fd < 0 || fstat(r->fd, &st) < 0)
		return -1;
	r->file_size = (uint64_t)st.st_size;
	int k = fmt_vhdx.read_open(r);
	if (k != 1) {
		close(r->fd);
		r->fd = -1;
	}
	return k;
}

static void reader_close(struct fmt_reader *r)
{
	fmt_vhdx.read_close(r);
	close(r->fd);
}

/* Rewrite a header (index 0/1) with a modifier, fixing its checksum unless told not to. */
static void forge_header(uint8_t *img, int which, const uint8_t *log_guid, bool break_crc)
{
	uint8_t *h = img + (64u << 10) * (1 + which);
	if (log_guid)
		memcpy(h + 48, log_guid, 16);
	memset(h + 4, 0, 4);
	put_le32(h + 4, crc32c_bitwise(h, 4096) ^ (break_crc ? 1u : 0u));
}

/* QEMU (7.2) refuses VHDX files with 4096-byte logical sectors ("Operation not supported").
 * To still have it check everything else, copy the image with its Logical Sector Size item
 * found by walking region table -> metadata table by GUID, here, not with the reader - set
 * to 512. The small test disk has under one chunk ratio of blocks, so the BAT layout is the
 * same for both sizes. Returns the recorded sector size (0 when not found). */
static uint32_t relabel_512(const char *path, const char *out)
{
	static const uint8_t meta_guid[16] = { 0x06, 0xA2, 0x7C, 0x8B, 0x90, 0x47, 0x9A, 0x4B,
					       0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E };
	static const uint8_t lsec_guid[16] = { 0x1D, 0xBF, 0x41, 0x81, 0x6F, 0xA9, 0x09, 0x47,
					       0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F };
	uint64_t len, meta = 0;
	uint32_t found = 0;
	uint8_t *img = read_file(path, &len);
	if (!img)
		return 0;
	const uint8_t *rt = img + 3 * (64u << 10);
	for (uint32_t i = 0; i < get_le32(rt + 8) && i < 16; i++)
		if (memcmp(rt + 16 + 32 * i, meta_guid, 16) == 0)
			meta = get_le64(rt + 16 + 32 * i + 16);
	for (unsigned i = 0; meta && meta + (64u << 10) <= len && i < get_le16(img + meta + 10) && i < 16; i++) {
		const uint8_t *e = img + meta + 32 + 32 * i;
		uint64_t item = meta + get_le32(e + 16);
		if (memcmp(e, lsec_guid, 16) == 0 && item + 4 <= len) {
			found = get_le32(img + item);
			put_le32(img + item, 512);
		}
	}
	if (found && write_file(out, img, len) < 0)
		found = 0;
	free(img);
	return found;
}

/* Damaged copies of a good image must be refused, or survive where the format allows. */
static void hostile_cases(const char *img_path, const uint8_t *expect, uint64_t vsize)
{
	uint64_t len;
	uint8_t *img = read_file(img_path, &len);
	CHECK(img != NULL);
	if (!img)
		return;
	char *bad = xasprintf("%s/bad.vhdx", dir);
	struct fmt_reader r;
	static const uint8_t log_guid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

	/* Current header (2) broken: header 1 still describes the same file. */
	uint8_t *copy = xmalloc(len);
	memcpy(copy, img, len);
	forge_header(copy, 1, NULL, true);
	CHECK(write_file(bad, copy, len) == 0);
	uint64_t got = 0;
	uint8_t *back = fmtdrive_read(&fmt_vhdx, bad, &got);
	CHECK(back && got == vsize && memcmp(back, expect, vsize) == 0);
	free(back);
	CHECK(qemu_check(bad) == 0);  /* QEMU falls back to header 1 too */

	/* Both headers broken. */
	forge_header(copy, 0, NULL, true);
	CHECK(write_file(bad, copy, len) == 0);
	CHECK(reader_open(bad, &r) == -1);

	/* A pending log (LogGuid set, checksums valid) must be refused, not read stale. */
	memcpy(copy, img, len);
	forge_header(copy, 0, log_guid, false);
	forge_header(copy, 1, log_guid, false);
	CHECK(write_file(bad, copy, len) == 0);
	CHECK(reader_open(bad, &r) == -1);

	/* Not a VHDX at all. */
	memcpy(copy, img, len);
	memcpy(copy, "vhdxfilf", 8);
	CHECK(write_file(bad, copy, len) == 0);
	CHECK(reader_open(bad, &r) == 0);

	/* Truncated inside the last payload block's data: qemu-img check and our reader notice. */
	CHECK(write_file(bad, img, len - MIB + 4096) == 0);
	CHECK(qemu_check(bad) != 0);
	back = fmtdrive_read(&fmt_vhdx, bad, &got);
	CHECK(back == NULL);
	free(back);

	/* First BAT entry pointed into the metadata region (2 MiB). */
	memcpy(copy, img, len);
	put_le64(copy + 3 * MIB, (UINT64_C(2) << 20) | 6);
	CHECK(write_file(bad, copy, len) == 0);
	CHECK(reader_open(bad, &r) == 1);
	if (r.fd >= 0) {
		uint8_t sec[512];
		CHECK(fmt_vhdx.read(&r, sec, 0, sizeof sec) == -1);
		reader_close(&r);
	}

	/* Region tables both broken. */
	memcpy(copy, img, len);
	copy[3 * (64u << 10) + 20] ^= 0xFF;
	copy[4 * (64u << 10) + 20] ^= 0xFF;
	CHECK(write_file(bad, copy, len) == 0);
	CHECK(reader_open(bad, &r) == -1);

	unlink(bad);
	free(bad);
	free(copy);
	free(img);
}

/* Small disk with unaligned extents, a zero chunk inside the map and a last partial block. */
static void small_case(uint32_t lsec)
{
	uint64_t vsize = 9 * MIB + 3 * 4096;  /* multiple of 4096, not of 1 MiB */
	uint8_t *disk = xmalloc(vsize);
	for (uint64_t i = 0; i < vsize; i++)
		disk[i] = (uint8_t)(i * 13 + (i >> 9) + 1);
	memset(disk + 3 * MIB, 0, MIB);
	struct extmap map;
	extmap_init(&map);
	extmap_add(&map, 0, 64 * 1024 + 100);
	extmap_add(&map, MIB + 3000, MIB + 2000);
	extmap_add(&map, 3 * MIB, MIB);                    /* all zero: allocated, holes only */
	extmap_add(&map, 5 * MIB + 200 * 1024, 512);
	extmap_add(&map, 7 * MIB - 10, 20);
	extmap_add(&map, vsize - 8192 - 700, 8192 + 700);
	extmap_normalize(&map, vsize);
	uint8_t *expect = masked(disk, vsize, &map);

	char *img = xasprintf("%s/disk%u.vhdx", dir, lsec);
	char *raw = xasprintf("%s/expect%u.raw", dir, lsec);
	CHECK(write_file(raw, expect, vsize) == 0);
	CHECK(fmtdrive_write(&fmt_vhdx, img, disk, vsize, lsec, &map, NULL) == 0);

	char *qimg = xasprintf("%s/relabelled.vhdx", dir);
	if (lsec == 4096)
		CHECK_EQ_U64(relabel_512(img, qimg), 4096);
	else
		CHECK(link(img, qimg) == 0);
	CHECK(qemu_check(qimg) == 0);
	CHECK_EQ_U64(qemu_vsize(qimg), vsize);
	CHECK(qemu_compare(raw, qimg) == 0);
	unlink(qimg);
	free(qimg);

	/* Blocks 0,1,2,3,5,6,7,9 are touched: 1 MiB each after the 3 MiB head and 1 MiB BAT. */
	struct stat st;
	CHECK(stat(img, &st) == 0);
	CHECK_EQ_U64(st.st_size, 4 * MIB + 8 * MIB);

	uint64_t got = 0;
	uint8_t *back = fmtdrive_read(&fmt_vhdx, img, &got);
	CHECK(back != NULL);
	CHECK_EQ_U64(got, vsize);
	if (back)
		CHECK(memcmp(back, expect, vsize) == 0);
	free(back);

	struct fmt_reader r;
	CHECK(reader_open(img, &r) == 1);
	if (r.fd >= 0) {
		uint8_t buf[4096];
		CHECK_EQ_U64(r.lsec, lsec);
		CHECK(fmt_vhdx.read(&r, buf, 4 * MIB + 512, sizeof buf) == 1);  /* unallocated block */
		CHECK(fmt_vhdx.read(&r, buf, 3 * MIB, sizeof buf) == 0 && buf_is_zero(buf, sizeof buf));
		CHECK(fmt_vhdx.read(&r, buf, vsize - 4096, 4096) == 0 && memcmp(buf, disk + vsize - 4096, 4096) == 0);
		CHECK(fmt_vhdx.read(&r, buf, vsize - 512, 1024) == -1);         /* past the end */
		reader_close(&r);
	}
	if (lsec == 512)
		hostile_cases(img, expect, vsize);

	remove_image(img);
	unlink(raw);
	free(img);
	free(raw);
	free(expect);
	free(disk);
	extmap_release(&map);
}

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)((off >> 20) * 31 + off * 7 + 5);
}

/* 4 TiB virtual, a few small extents, one across the 4 GiB chunk-ratio boundary where the
 * BAT interleaves its first sector bitmap entry. The source is a lazily backed mapping. */
static void large_case(void)
{
	const uint64_t vsize = UINT64_C(4) << 40;
	uint8_t *disk = mmap(NULL, vsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (disk == MAP_FAILED) {
		printf("large case skipped: cannot reserve 4 TiB of address space\n");
		return;
	}
	const struct extent ext[] = {
		{ 0, MIB },
		{ (UINT64_C(4) << 30) - 70000, 140000 },
		{ (UINT64_C(2) << 40) + 12345, 100000 },
		{ vsize - 5000, 5000 },
	};
	struct extmap map;
	extmap_init(&map);
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		for (uint64_t o = ext[i].start; o < ext[i].start + ext[i].len; o++)
			disk[o] = pattern(o);
		extmap_add(&map, ext[i].start, ext[i].len);
	}
	extmap_normalize(&map, vsize);

	char *img = xasprintf("%s/large.vhdx", dir);
	double t0 = now_seconds();
	CHECK(fmtdrive_write(&fmt_vhdx, img, disk, vsize, 512, &map, NULL) == 0);
	double t1 = now_seconds();
	CHECK(qemu_check(img) == 0);
	CHECK_EQ_U64(qemu_vsize(img), vsize);
	/* QEMU's VHDX driver reports no block status, so `qemu-img compare` would read all
	 * 4 TiB: have QEMU read each extent (4 KiB aligned) and a gap instead. */
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		uint64_t s = ext[i].start / 4096, n = DIV_ROUND_UP(ext[i].start + ext[i].len, 4096) - s;
		CHECK(qemu_extent_equals(img, disk, s * 4096, n * 4096));
	}
	CHECK(qemu_extent_equals(img, disk, UINT64_C(3) << 40, 2 * MIB));
	printf("large case: write %.1f s, qemu-img checks %.1f s\n", t1 - t0, now_seconds() - t1);

	/* BAT: 4 Mi payload entries + 1023 bitmap entries -> 33 MiB region; 5 blocks touched. */
	struct stat st;
	CHECK(stat(img, &st) == 0);
	CHECK_EQ_U64(st.st_size, 3 * MIB + 33 * MIB + 5 * MIB);

	struct fmt_reader r;
	CHECK(reader_open(img, &r) == 1);
	if (r.fd >= 0) {
		CHECK_EQ_U64(r.vsize, vsize);
		uint8_t *buf = xmalloc(2 * MIB);
		for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
			uint64_t s = ext[i].start / 512 * 512, e = MIN(vsize, ROUND_UP(ext[i].start + ext[i].len, 512));
			CHECK(fmt_vhdx.read(&r, buf, s, e - s) == 0);
			CHECK(memcmp(buf + (ext[i].start - s), disk + ext[i].start, ext[i].len) == 0);
		}
		CHECK(fmt_vhdx.read(&r, buf, UINT64_C(3) << 40, 2 * MIB) == 1);
		free(buf);
		reader_close(&r);
	}
	remove_image(img);
	free(img);
	extmap_release(&map);
	munmap(disk, vsize);
}

int main(void)
{
	static const uint8_t check[] = "123456789";
	CHECK(crc32c_bitwise(check, 9) == 0xE3069283u);  /* the CRC-32C check value */
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (run("qemu-img --version >/dev/null 2>&1") != 0) {
		printf("qemu-img not found: skipped\n");
		rmdir(dir);
		return test_summary();
	}
	small_case(512);
	small_case(4096);
	large_case();
	char *f = xasprintf("%s/check.out", dir);
	unlink(f);
	free(f);
	rmdir(dir);
	return test_summary();
}
