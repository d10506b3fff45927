/* test-fmt-raw.c - raw writer/reader round trip on synthetic data, with holes. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fmtdrive.h"
#include "test.h"
#include "util.h"

int main(void)
{
	uint64_t vsize = 5 * CHUNK_SIZE + 4096 + 512;  /* not a multiple of a block */
	uint8_t *disk = xcalloc(1, vsize);
	struct extmap map;
	char path[] = "/tmp/cc-test-raw-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	for (uint64_t i = 0; i < vsize; i++)
		disk[i] = (uint8_t)(i * 7 + 3);
	memset(disk + 2 * CHUNK_SIZE, 0, CHUNK_SIZE);  /* a zero chunk inside the map */
	extmap_init(&map);
	extmap_add(&map, 0, 3 * CHUNK_SIZE);
	extmap_add(&map, vsize - 4096, 4096 + 512);
	extmap_normalize(&map, vsize);

	CHECK(fmtdrive_write(&fmt_raw, path, disk, vsize, 512, &map, NULL) == 0);
	uint64_t got_size = 0;
	uint8_t *back = fmtdrive_read(&fmt_raw, path, &got_size);
	CHECK(back != NULL);
	CHECK_EQ_U64(got_size, vsize);
	if (back) {
		CHECK(memcmp(back, disk, 3 * CHUNK_SIZE) == 0);
		CHECK(buf_is_zero(back + 3 * CHUNK_SIZE, vsize - 4096 - 3 * CHUNK_SIZE));
		CHECK(memcmp(back + vsize - 4096, disk + vsize - 4096, 4096) == 0);
	}
	struct stat st;
	CHECK(stat(path, &st) == 0 && (uint64_t)st.st_blocks * 512 < vsize / 2);  /* sparse */
	unlink(path);
	free(back);
	free(disk);
	extmap_release(&map);
	return test_summary();
}
