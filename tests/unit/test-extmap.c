/* test-extmap.c - extent map normalisation, queries, the extent cap, and the block
 * iteration the formats use to lay out their tables. */
#include <string.h>

#include "chunk.h"
#include "extmap.h"
#include "format.h"
#include "test.h"
#include "util.h"

static void test_normalize(void)
{
	struct extmap m;
	extmap_init(&m);
	extmap_add(&m, 100, 50);   /* 100-150 */
	extmap_add(&m, 0, 10);     /* out of order */
	extmap_add(&m, 140, 20);   /* overlaps 100-150 -> 100-160 */
	extmap_add(&m, 160, 5);    /* adjacent -> 100-165 */
	extmap_add(&m, 1000, 500); /* clipped at 1200 */
	extmap_add(&m, 5000, 10);  /* dropped past the limit */
	extmap_normalize(&m, 1200);
	CHECK_EQ_U64(m.n, 3);
	CHECK_EQ_U64(m.v[0].start, 0);
	CHECK_EQ_U64(m.v[0].len, 10);
	CHECK_EQ_U64(m.v[1].start, 100);
	CHECK_EQ_U64(m.v[1].len, 65);
	CHECK_EQ_U64(m.v[2].len, 200);
	CHECK_EQ_U64(extmap_bytes(&m), 275);
	CHECK_EQ_U64(extmap_bytes_in(&m, 5, 100), 5 + 5);
	CHECK(extmap_any(&m, 9, 1));
	CHECK(!extmap_any(&m, 10, 90));
	CHECK(extmap_any(&m, 10, 91));
	CHECK_EQ_U64(extmap_find(&m, 165), 2);
	extmap_release(&m);
}

static void test_cap(void)
{
	struct extmap m;
	extmap_init(&m);
	m.max_extents = 100;
	/* 1000 one-block extents with 4 KiB gaps: the cap merges gaps, never drops data */
	for (uint64_t i = 0; i < 1000; i++)
		extmap_add(&m, i * 8192, 4096);
	extmap_normalize(&m, UINT64_MAX);
	CHECK(m.n <= 100);
	for (uint64_t i = 0; i < 1000; i++)
		CHECK_EQ_U64(extmap_bytes_in(&m, i * 8192, 4096), 4096);
	extmap_release(&m);
}

static void test_blocks(void)
{
	struct extmap m;
	struct fmt_block_iter it;
	uint64_t off, n = 0;
	uint64_t vsize = 10 * CHUNK_SIZE + 512;
	extmap_init(&m);
	extmap_add(&m, 100, 10);                        /* block 0 */
	extmap_add(&m, BLOCK_SIZE - 1, 2);              /* blocks 0 and 1 */
	extmap_add(&m, 5 * BLOCK_SIZE, 3 * BLOCK_SIZE); /* blocks 5-7 */
	extmap_add(&m, vsize - 512, 512);               /* the last, partial block */
	extmap_normalize(&m, vsize);
	uint64_t want[] = { 0, BLOCK_SIZE, 5 * BLOCK_SIZE, 6 * BLOCK_SIZE, 7 * BLOCK_SIZE, 10 * CHUNK_SIZE };
	fmt_block_iter_init(&it, &m, vsize);
	while (fmt_block_iter_next(&it, &off)) {
		if (n < ARRAY_SIZE(want))
			CHECK_EQ_U64(off, want[n]);
		n++;
	}
	CHECK_EQ_U64(n, ARRAY_SIZE(want));
	CHECK_EQ_U64(fmt_count_blocks(&m, vsize), ARRAY_SIZE(want));
	CHECK_EQ_U64(fmt_chunk_mapped_mask(&m, 0, CHUNK_SIZE), 0xe3);
	CHECK_EQ_U64(fmt_chunk_mapped_mask(&m, 10 * CHUNK_SIZE, 512), 1);
	CHECK_EQ_U64(fmt_chunk_mapped_mask(&m, CHUNK_SIZE, CHUNK_SIZE), 0);
	extmap_release(&m);
}

static void test_parse(void)
{
	uint64_t v;
	CHECK(parse_u64("42", &v) == 0 && v == 42);
	CHECK(parse_u64("2M", &v) == 0 && v == 2u << 20);
	CHECK(parse_u64("1GiB", &v) == 0 && v == 1u << 30);
	CHECK(parse_u64("", &v) < 0);
	CHECK(parse_u64("-1", &v) < 0);
	CHECK(parse_u64("12x", &v) < 0);
	CHECK(parse_u64("99999999999999999999", &v) < 0);
	CHECK(parse_u64("20000000T", &v) < 0);
	CHECK(buf_is_zero("\0\0\0", 3));
	static uint8_t big[CHUNK_SIZE];
	CHECK(buf_is_zero(big, sizeof big));
	big[CHUNK_SIZE - 1] = 1;
	CHECK(!buf_is_zero(big, sizeof big));
}

int main(void)
{
	test_normalize();
	test_cap();
	test_blocks();
	test_parse();
	return test_summary();
}
