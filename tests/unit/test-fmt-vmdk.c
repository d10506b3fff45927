/* test-fmt-vmdk.c - vmdk-stream and vmdk (monolithicSparse) writers and readers against
 * qemu-img (check, info, compare, convert) on synthetic disks: compressible and random
 * data, unaligned extents, a zero chunk, a 32 MiB grain-table boundary, a partial last
 * block, and a 2 TiB sparse disk. Also: our readers on qemu's own images, and rejection
 * of damaged or unsupported VMDKs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "fmtdrive.h"
#include "test.h"
#include "util.h"

#define MiB (1ull << 20)

static char dir[] = "/tmp/cc-test-vmdk-XXXXXX";

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void fill_random(uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		p[i] = (uint8_t)rng;
	}
}

/* Compressible but not trivially so: short text-like runs. */
static void fill_pattern(uint8_t *p, uint64_t n, uint64_t base)
{
	for (uint64_t i = 0; i < n; i++)
		p[i] = (uint8_t)("coldclone vmdk test "[(base + i) % 20] + ((base + i) >> 12) % 7);
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
	if (st == -1 || !WIFEXITED(st))
		return -1;
	if (WEXITSTATUS(st))
		fprintf(stderr, "command failed (%d): %s\n", WEXITSTATUS(st), cmd);
	return WEXITSTATUS(st);
}

static int write_file(const char *path, const uint8_t *buf, uint64_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	int r = write_full(fd, buf, len);
	close(fd);
	return r;
}

/* qemu-img info --output=json: virtual size and format-specific create type. */
static void check_info(const char *img, uint64_t vsize, const char *create_type)
{
	char cmd[600], out[16384];
	snprintf(cmd, sizeof cmd, "qemu-img info -f vmdk --output=json '%s'", img);
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
	if (p)
		pclose(p);
	out[n] = 0;
	json_object *j = json_tokener_parse(out), *vs, *fs, *data, *ct;
	CHECK(j != NULL);
	if (!j)
		return;
	CHECK(json_object_object_get_ex(j, "virtual-size", &vs));
	CHECK_EQ_U64(json_object_get_int64(vs), vsize);
	CHECK(json_object_object_get_ex(j, "format-specific", &fs) &&
	      json_object_object_get_ex(fs, "data", &data) &&
	      json_object_object_get_ex(data, "create-type", &ct) &&
	      strcmp(json_object_get_string(ct), create_type) == 0);
	json_object_put(j);
}

/* read_open of ops on path: 1 / 0 / -1. */
static int probe(const struct fmt_ops *ops, const char *path)
{
	struct stat st;
	struct fmt_reader r = { .fd = open(path, O_RDONLY) };
	if (r.fd < 0 || fstat(r.fd, &st) < 0)
		return -2;
	r.file_size = (uint64_t)st.st_size;
	int k = ops->read_open(&r);
	if (k == 1)
		ops->read_close(&r);
	close(r.fd);
	return k;
}

struct disk {
	uint8_t *data;      /* source, with non-zero garbage outside the map */
	uint8_t *expected;  /* what the image must read as: mapped bytes, zeros elsewhere */
	uint64_t vsize;
	struct extmap map;
};

static void build_small(struct disk *d)
{
	d->vsize = 67 * MiB + 7 * 512;  /* three grain tables, last block partial */
	d->data = xmalloc(d->vsize);
	for (uint64_t i = 0; i < d->vsize; i++)
		d->data[i] = (uint8_t)(i * 7 + 3);
	fill_pattern(d->data, 2 * MiB, 0);
	fill_random(d->data + MiB + 4608, 200 << 10);
	fill_pattern(d->data + 3 * MiB, 3 * MiB, 3 * MiB);
	memset(d->data + 4 * MiB, 0, MiB);                      /* zero chunk inside the map */
	fill_random(d->data + 31 * MiB, 1536 * 1024);
	fill_pattern(d->data + 32 * MiB + 512 * 1024, 1536 * 1024, 7);
	memset(d->data + 50 * MiB, 0, 64 << 10);                /* a mapped, all-zero block */
	fill_random(d->data + d->vsize - 5000, 5000);
	extmap_init(&d->map);
	extmap_add(&d->map, 0, MiB);
	extmap_add(&d->map, MiB + 4608, (200 << 10) - 300);     /* unaligned both ends */
	extmap_add(&d->map, 3 * MiB, 3 * MiB);
	extmap_add(&d->map, 31 * MiB + 512, 3 * MiB - 1536);    /* crosses the 32 MiB table boundary */
	extmap_add(&d->map, 50 * MiB, 64 << 10);
	extmap_add(&d->map, d->vsize - 5000, 5000);             /* partial last block */
	extmap_normalize(&d->map, d->vsize);
	d->expected = xcalloc(1, d->vsize);
	for (size_t i = 0; i < d->map.n; i++)
		memcpy(d->expected + d->map.v[i].start, d->data + d->map.v[i].start, d->map.v[i].len);
}

static void check_format(const struct fmt_ops *ops, const char *create_type, const struct disk *d,
			 uint32_t lsec, const char *raw)
{
	char img[256];
	snprintf(img, sizeof img, "%s/%s-%u.vmdk", dir, ops->name, lsec);
	CHECK(fmtdrive_write(ops, img, d->data, d->vsize, lsec, &d->map, NULL) == 0);
	CHECK(run("qemu-img check -q -f vmdk '%s'", img) == 0);
	check_info(img, d->vsize, create_type);
	CHECK(run("qemu-img compare -q -f raw -F vmdk '%s' '%s'", raw, img) == 0);
	uint64_t got = 0;
	uint8_t *back = fmtdrive_read(ops, img, &got);
	CHECK(back != NULL);
	CHECK_EQ_U64(got, d->vsize);
	CHECK(back && got == d->vsize && memcmp(back, d->expected, d->vsize) == 0);
	free(back);
	/* The other VMDK reader says "not mine", it does not fail. */
	CHECK(probe(ops == &fmt_vmdk ? &fmt_vmdk_stream : &fmt_vmdk, img) == 0);
	CHECK(probe(&fmt_vmdk, img) == (ops == &fmt_vmdk));
}

/* Our readers on images qemu wrote itself (independent writer). */
static void check_qemu_images(const struct disk *d, const char *raw)
{
	static const struct { const char *sub; const struct fmt_ops *ops; } t[] = {
		{ "streamOptimized", &fmt_vmdk_stream },
		{ "monolithicSparse", &fmt_vmdk },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		char img[256];
		snprintf(img, sizeof img, "%s/qemu-%s.vmdk", dir, t[i].sub);
		CHECK(run("qemu-img convert -f raw -O vmdk -o subformat=%s '%s' '%s'", t[i].sub, raw, img) == 0);
		uint64_t got = 0;
		uint8_t *back = fmtdrive_read(t[i].ops, img, &got);
		CHECK(back && got == d->vsize && memcmp(back, d->expected, d->vsize) == 0);
		free(back);
		unlink(img);
	}
	char flat[256];
	snprintf(flat, sizeof flat, "%s/flat.vmdk", dir);
	CHECK(run("qemu-img create -q -f vmdk -o subformat=monolithicFlat '%s' 1M", flat) == 0);
	fprintf(stderr, "(an error about a descriptor file is expected next)\n");
	CHECK(probe(&fmt_vmdk_stream, flat) == 0);
	CHECK(probe(&fmt_vmdk, flat) == -1);
	run("rm -f '%s'/flat*.vmdk", dir);
}

/* Damaged streams are refused: a wrong grain LBA, a missing footer. */
static void check_damage(void)
{
	char img[256], bad[300];
	snprintf(img, sizeof img, "%s/vmdk-stream-512.vmdk", dir);
	snprintf(bad, sizeof bad, "%s/bad.vmdk", dir);
	CHECK(run("cp '%s' '%s'", img, bad) == 0);
	int fd = open(bad, O_RDWR);
	uint8_t lba[8];
	put_le64(lba, 12345);  /* the first grain marker sits at the 64 KiB overhead */
	CHECK(fd >= 0 && pwrite_full(fd, lba, sizeof lba, 128 * 512) == 0);
	if (fd >= 0)
		close(fd);
	uint64_t got;
	fprintf(stderr, "(errors about a damaged stream are expected next)\n");
	uint8_t *back = fmtdrive_read(&fmt_vmdk_stream, bad, &got);
	CHECK(back == NULL);
	free(back);
	struct stat st;
	CHECK(stat(bad, &st) == 0 && truncate(bad, st.st_size - 512) == 0);
	CHECK(probe(&fmt_vmdk_stream, bad) == -1);
	unlink(bad);
}

/* 2 TiB virtual disk with three small extents: tables stay small, tools stay fast. */
static void check_large(const struct fmt_ops *ops, const char *create_type)
{
	const uint64_t vsize = 2ull << 40;
	const struct extent ext[] = {
		{ 0, MiB },
		{ (1ull << 40) + 5 * MiB + 4096, 300 << 10 },
		{ vsize - (100 << 10), 100 << 10 },
	};
	uint8_t *disk = mmap(NULL, vsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(disk != MAP_FAILED);
	if (disk == MAP_FAILED)
		return;
	struct extmap map;
	extmap_init(&map);
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		if (i == 1)
			fill_random(disk + ext[i].start, ext[i].len);
		else
			fill_pattern(disk + ext[i].start, ext[i].len, ext[i].start);
		extmap_add(&map, ext[i].start, ext[i].len);
	}
	extmap_normalize(&map, vsize);
	char img[256], win[300];
	snprintf(img, sizeof img, "%s/large-%s.vmdk", dir, ops->name);
	snprintf(win, sizeof win, "%s/window.raw", dir);
	double t0 = now_seconds();
	CHECK(fmtdrive_write(ops, img, disk, vsize, 512, &map, NULL) == 0);
	/* Our own cost only: qemu-img's timing depends on the machine's load. */
	double dt = now_seconds() - t0;
	printf("%s 2 TiB sparse case: written in %.1f s\n", ops->name, dt);
#ifdef __SANITIZE_ADDRESS__
	CHECK(dt < 30);  /* instrumented build */
#else
	CHECK(dt < 10);
#endif
	CHECK(run("qemu-img check -q -f vmdk '%s'", img) == 0);
	check_info(img, vsize, create_type);
	/* Compare 2 MiB windows around each extent through qemu's raw offset/size filter. */
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		uint64_t w0 = MIN(ext[i].start / MiB * MiB, vsize - 2 * MiB);
		CHECK(write_file(win, disk + w0, 2 * MiB) == 0);
		CHECK(run("qemu-img compare -q --image-opts 'driver=raw,file.driver=file,file.filename=%s' "
			  "'driver=raw,offset=%" PRIu64 ",size=%llu,file.driver=vmdk,file.file.driver=file,file.file.filename=%s'",
			  win, w0, 2 * MiB, img) == 0);
	}
	/* Our reader, on the same windows, and "unallocated" far from any extent. */
	struct stat st;
	struct fmt_reader r = { .fd = open(img, O_RDONLY) };
	CHECK(r.fd >= 0 && fstat(r.fd, &st) == 0);
	r.file_size = (uint64_t)st.st_size;
	CHECK(ops->read_open(&r) == 1);
	CHECK_EQ_U64(r.vsize, vsize);
	uint8_t *buf = xmalloc(2 * MiB);
	for (size_t i = 0; i < ARRAY_SIZE(ext); i++) {
		uint64_t w0 = MIN(ext[i].start / MiB * MiB, vsize - 2 * MiB);
		memset(buf, 0xaa, 2 * MiB);
		CHECK(ops->read(&r, buf, w0, 2 * MiB) == 0 && memcmp(buf, disk + w0, 2 * MiB) == 0);
	}
	CHECK(ops->read(&r, buf, 7ull << 30, MiB) == 1);
	ops->read_close(&r);
	close(r.fd);
	free(buf);
	CHECK(stat(img, &st) == 0 && (uint64_t)st.st_blocks * 512 < 16 * MiB);  /* tables are holes */
	if (ops == &fmt_vmdk) {
		/* A hypervisor can write into a span that had no data (tables preallocated). */
		CHECK(run("qemu-io -f vmdk -c 'write -q -P 0x5a 100G 64k' '%s' >/dev/null", img) == 0);
		CHECK(run("qemu-io -f vmdk -r -c 'read -q -P 0x5a 100G 64k' '%s' | grep -c 'verification failed' | grep -qx 0", img) == 0);
	}
	unlink(img);
	unlink(win);
	munmap(disk, vsize);
	extmap_release(&map);
}

/* encode() runs in worker threads with a compressor per thread: the output must not
 * depend on the thread, and each thread's compressor is freed when it ends (LSan). */
struct enc_job {
	const struct disk *d;
	struct chunk c;
};

static void *enc_thread(void *arg)
{
	struct enc_job *j = arg;
	struct fmt_writer w = { .ops = &fmt_vmdk_stream, .vsize = j->d->vsize, .map = &j->d->map };
	fmt_vmdk_stream.encode(&w, &j->c);
	return NULL;
}

static void check_threads(const struct disk *d)
{
	size_t cap = fmt_vmdk_stream.out_capacity();
	struct enc_job jobs[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		struct chunk *c = &jobs[i].c;
		jobs[i].d = d;
		*c = (struct chunk){ .off = 31 * MiB, .len = CHUNK_SIZE, .data = d->expected + 31 * MiB,
				     .out = xmalloc(cap), .out_cap = cap };
		c->mapped = fmt_chunk_mapped_mask(&d->map, c->off, c->len);
		chunk_analyze(c);
		CHECK(pthread_create(&t[i], NULL, enc_thread, &jobs[i]) == 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(jobs[0].c.out_len > 0 && jobs[0].c.out_len % 512 == 0);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_U64(jobs[i].c.out_len, jobs[0].c.out_len);
		CHECK(memcmp(jobs[i].c.out, jobs[0].c.out, jobs[0].c.out_len) == 0);
		CHECK(memcmp(jobs[i].c.out_pos, jobs[0].c.out_pos, sizeof jobs[0].c.out_pos) == 0);
	}
	for (int i = 0; i < 4; i++)
		free(jobs[i].c.out);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	struct disk d;
	char raw[256];
	build_small(&d);
	snprintf(raw, sizeof raw, "%s/expected.raw", dir);
	CHECK(write_file(raw, d.expected, d.vsize) == 0);

	check_format(&fmt_vmdk_stream, "streamOptimized", &d, 512, raw);
	check_format(&fmt_vmdk, "monolithicSparse", &d, 512, raw);
	check_format(&fmt_vmdk_stream, "streamOptimized", &d, 4096, raw);  /* any lsec: same bytes */
	vmdk_set_compression_level(9);
	check_format(&fmt_vmdk_stream, "streamOptimized", &d, 512, raw);
	vmdk_set_compression_level(6);
	check_threads(&d);
	check_qemu_images(&d, raw);
	check_damage();
	check_large(&fmt_vmdk_stream, "streamOptimized");
	check_large(&fmt_vmdk, "monolithicSparse");

	run("rm -rf '%s'", dir);
	free(d.data);
	free(d.expected);
	extmap_release(&d.map);
	return test_summary();
}
