/* extmap.c - sorted byte-range sets for "what to read". Unsorted input is accepted and
 * normalized once; queries use binary search. The extent cap keeps memory bounded on
 * badly fragmented filesystems by merging the smallest gaps first. */
#include "extmap.h"

#include <stdlib.h>

#include "util.h"

#define EXTMAP_DEFAULT_MAX (1u << 21)  /* 2M extents = 32 MiB */

void extmap_init(struct extmap *m)
{
	*m = (struct extmap){ .sorted = true };
}

void extmap_release(struct extmap *m)
{
	free(m->v);
	extmap_init(m);
}

void extmap_add(struct extmap *m, uint64_t start, uint64_t len)
{
	if (len == 0)
		return;
	if (m->n) {
		struct extent *last = &m->v[m->n - 1];
		if (start >= last->start && start <= last->start + last->len) {
			uint64_t end = MAX(last->start + last->len, start + len);
			last->len = end - last->start;
			return;
		}
		if (start < last->start)
			m->sorted = false;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->v = xrealloc(m->v, m->cap * sizeof *m->v);
	}
	m->v[m->n++] = (struct extent){ start, len };
}

void extmap_add_map(struct extmap *m, const struct extmap *src, uint64_t delta)
{
	for (size_t i = 0; i < src->n; i++)
		extmap_add(m, src->v[i].start + delta, src->v[i].len);
}

static int cmp_extent(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static void merge_sorted(struct extmap *m, uint64_t tolerance)
{
	size_t o = 0;
	for (size_t i = 0; i < m->n; i++) {
		struct extent e = m->v[i];
		if (o && e.start <= m->v[o - 1].start + m->v[o - 1].len + tolerance) {
			uint64_t end = MAX(m->v[o - 1].start + m->v[o - 1].len, e.start + e.len);
			m->v[o - 1].len = end - m->v[o - 1].start;
		} else {
			m->v[o++] = e;
		}
	}
	m->n = o;
}

void extmap_normalize(struct extmap *m, uint64_t limit)
{
	size_t max = m->max_extents ? m->max_extents : EXTMAP_DEFAULT_MAX;
	if (!m->sorted)
		qsort(m->v, m->n, sizeof *m->v, cmp_extent);
	m->sorted = true;
	merge_sorted(m, 0);
	while (m->n && m->v[m->n - 1].start >= limit)
		m->n--;
	if (m->n && m->v[m->n - 1].start + m->v[m->n - 1].len > limit)
		m->v[m->n - 1].len = limit - m->v[m->n - 1].start;
	/* Too fragmented: copy small stretches of free space rather than grow without bound. */
	for (uint64_t tol = 4096; m->n > max; tol *= 2)
		merge_sorted(m, tol);
}

uint64_t extmap_bytes(const struct extmap *m)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < m->n; i++)
		sum += m->v[i].len;
	return sum;
}

size_t extmap_find(const struct extmap *m, uint64_t off)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->v[mid].start + m->v[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool extmap_any(const struct extmap *m, uint64_t off, uint64_t len)
{
	size_t i = extmap_find(m, off);
	return i < m->n && m->v[i].start < off + len;
}

uint64_t extmap_bytes_in(const struct extmap *m, uint64_t off, uint64_t len)
{
	uint64_t sum = 0, end = off + len;
	for (size_t i = extmap_find(m, off); i < m->n && m->v[i].start < end; i++) {
		uint64_t s = MAX(m->v[i].start, off);
		uint64_t e = MIN(m->v[i].start + m->v[i].len, end);
		sum += e - s;
	}
	return sum;
}
