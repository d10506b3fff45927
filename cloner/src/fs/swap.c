/* swap.c - Linux swap: only the header page (signature, UUID, label) is worth copying,
 * since swap holds nothing across a shutdown. A swap area holding a hibernation image
 * is copied whole so the machine could still resume. It does not read swap files. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"
#include "util.h"

#define SWAP_MAX_PAGE 65536u  /* the signature sits 10 bytes before the end of a page */

struct swap_sig {
	const char *magic;
	size_t len;
	bool hibernated;
};

/* Signatures at the end of the first page (linux/swap.h and the suspend tools). */
static const struct swap_sig swap_sigs[] = {
	{ "SWAPSPACE2", 10, false },
	{ "SWAP-SPACE", 10, false },
	{ "S1SUSPEND", 9, true },   /* kernel swsusp */
	{ "S2SUSPEND", 9, true },
	{ "ULSUSPEND", 9, true },   /* uswsusp */
	{ "LINHIB0001", 10, true },
	{ "\xed\xc3\x02\xe9\x98\x56\xe5\x0c", 8, true },  /* TuxOnIce */
};

/* Find the signature and so the page size the area was made with. */
static const struct swap_sig *swap_find_sig(const uint8_t *buf, size_t have, uint32_t *page)
{
	for (uint32_t ps = 4096; ps <= SWAP_MAX_PAGE && ps <= have; ps *= 2)
		for (size_t i = 0; i < ARRAY_SIZE(swap_sigs); i++)
			if (memcmp(buf + ps - 10, swap_sigs[i].magic, swap_sigs[i].len) == 0) {
				*page = ps;
				return &swap_sigs[i];
			}
	return NULL;
}

static int swap_map(struct source *s, struct partition *p, struct extmap *out)
{
	size_t have = (size_t)MIN(p->size, SWAP_MAX_PAGE);
	CLEANUP_FREE uint8_t *buf = xmalloc(SWAP_MAX_PAGE);
	uint32_t page = 0;

	if (source_pread(s, buf, p->start, have) < 0)
		return error("read swap header of partition %u on '%s': %m", p->number, s->path);
	const struct swap_sig *sig = swap_find_sig(buf, have, &page);
	if (!sig)
		return fs_fallback(p, FS_STATE_DAMAGED, "swap signature not found: copied whole");
	if (sig->hibernated)
		return fs_fallback(p, FS_STATE_HIBERNATED,
				   "swap holds a Linux hibernation image: copied whole (resume image inside)");
	/* last_page follows the 1024 boot bytes and the version (linux/swap.h swap_header). */
	uint64_t area = ((uint64_t)get_le32(buf + 1028) + 1) * page;
	extmap_add(out, p->start, page);
	p->used_bytes = page;
	if (area > page && area < p->size) {  /* partition tail past the swap area */
		extmap_add(out, p->start + area, p->size - area);
		p->used_bytes += p->size - area;
	}
	p->fs_size = MIN(MAX(area, page), p->size);
	p->state = FS_STATE_CLEAN;
	p->method = COPY_HEADER;
	snprintf(p->reason, sizeof p->reason, "swap: header only");
	return FS_MAPPED;
}

static const char *const swap_types[] = { "swap", "swsuspend", NULL };

const struct fs_ops fs_swap = {
	.name = "swap",
	.blkid_types = swap_types,
	.map = swap_map,
};
