/* ntfs.c - NTFS allocation map: opens the volume read-only with libntfs-3g through a
 * device that reads the source at the partition offset and cannot write, then turns
 * $Bitmap into byte ranges. It never replays $LogFile nor changes a flag on the volume;
 * hibernated, dirty or unreadable volumes fall back to a whole-partition copy. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* libntfs-3g's headers rely on the includes above. */
#include <ntfs-3g/types.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/device.h>
#include <ntfs-3g/dir.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/logfile.h>
#include <ntfs-3g/logging.h>
#include <ntfs-3g/volume.h>

#include "fs.h"
#include "util.h"

#define NTFS_BITMAP_PIECE (1u << 20)     /* $Bitmap bytes read at a time (8M clusters) */
#define NTFS_LOCAL_EXTENTS (1u << 20)    /* normalize the partition's map past this many extents */
#define NTFS_LOCAL_MAX (1u << 19)        /* ... down to this many (8 MiB of extents) */
#define NTFS_BOOT_AREA 8192u             /* $Boot: the first 16 sectors of 512 bytes */
#define NTFS_MAX_CLUSTER (2u << 20)      /* Windows formats clusters up to 2 MiB */

/* What the device operations need: the partition window on the source, a file position
 * for the read/seek pair, and the first real I/O error (so it is not taken for damage). */
struct ntfs_win {
	struct source *s;
	uint64_t start;   /* partition start on the disk, bytes */
	uint64_t size;    /* partition size, bytes */
	uint64_t pos;     /* position for read() after seek() */
	int io_errno;     /* first error of the source itself, 0 when none */
};

/* ---- device operations: a read-only window of the source ---- */

static struct ntfs_win *ntfs_dev_win(struct ntfs_device *dev)
{
	return dev->d_private;
}

static int ntfs_dev_open(struct ntfs_device *dev, int flags)
{
	if ((flags & O_ACCMODE) != O_RDONLY) {
		errno = EROFS;
		return -1;
	}
	if (NDevOpen(dev)) {
		errno = EBUSY;
		return -1;
	}
	/* Not NDevSetBlock: libntfs-3g would then try block-device ioctls such as BLKBSZSET. */
	NDevSetOpen(dev);
	NDevSetReadOnly(dev);
	return 0;
}

static int ntfs_dev_close(struct ntfs_device *dev)
{
	NDevClearOpen(dev);
	return 0;
}

static s64 ntfs_dev_pread(struct ntfs_device *dev, void *buf, s64 count, s64 offset)
{
	struct ntfs_win *w = ntfs_dev_win(dev);
	if (count < 0 || offset < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((uint64_t)offset >= w->size || count == 0)
		return 0;  /* end of the partition reads as end of file */
	uint64_t n = MIN((uint64_t)count, w->size - (uint64_t)offset);
	if (source_pread(w->s, buf, w->start + (uint64_t)offset, (size_t)n) < 0) {
		/* ENODATA is a partition running past the end of the disk: damage, not I/O. */
		if (!w->io_errno && errno != ENODATA)
			w->io_errno = errno ? errno : EIO;
		errno = EIO;
		return -1;
	}
	return (s64)n;
}

static s64 ntfs_dev_read(struct ntfs_device *dev, void *buf, s64 count)
{
	struct ntfs_win *w = ntfs_dev_win(dev);
	s64 r = ntfs_dev_pread(dev, buf, count, (s64)w->pos);
	if (r > 0)
		w->pos += (uint64_t)r;
	return r;
}

static s64 ntfs_dev_seek(struct ntfs_device *dev, s64 offset, int whence)
{
	struct ntfs_win *w = ntfs_dev_win(dev);
	s64 base;
	switch (whence) {
	case SEEK_SET: base = 0; break;
	case SEEK_CUR: base = (s64)w->pos; break;
	case SEEK_END: base = (s64)w->size; break;
	default: errno = EINVAL; return -1;
	}
	s64 pos;
	if (__builtin_add_overflow(base, offset, &pos) || pos < 0) {
		errno = EINVAL;
		return -1;
	}
	w->pos = (uint64_t)pos;
	return pos;
}

static s64 ntfs_dev_write(struct ntfs_device *dev, const void *buf, s64 count)
{
	(void)dev, (void)buf, (void)count;
	errno = EROFS;
	return -1;
}

static s64 ntfs_dev_pwrite(struct ntfs_device *dev, const void *buf, s64 count, s64 offset)
{
	(void)dev, (void)buf, (void)count, (void)offset;
	errno = EROFS;
	return -1;
}

static int ntfs_dev_sync(struct ntfs_device *dev)
{
	(void)dev;
	return 0;  /* nothing is ever written */
}

static int ntfs_dev_stat(struct ntfs_device *dev, struct stat *st)
{
	struct ntfs_win *w = ntfs_dev_win(dev);
	memset(st, 0, sizeof *st);
	st->st_mode = S_IFREG | 0444;
	st->st_size = (off_t)w->size;
	st->st_blksize = (blksize_t)w->s->lsec;
	return 0;
}

/* Answer the two size queries of device.c (ntfs_device_size_get, _sector_size_get);
 * refuse everything else, notably BLKBSZSET, which would change the real device. */
static int ntfs_dev_ioctl(struct ntfs_device *dev, unsigned long request, void *argp)
{
	struct ntfs_win *w = ntfs_dev_win(dev);
	if (request == BLKGETSIZE64) {
		uint64_t v = w->size;
		memcpy(argp, &v, sizeof v);
		return 0;
	}
	if (request == BLKSSZGET) {
		int v = (int)w->s->lsec;
		memcpy(argp, &v, sizeof v);
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

static struct ntfs_device_operations ntfs_dev_ops = {
	.open = ntfs_dev_open,
	.close = ntfs_dev_close,
	.seek = ntfs_dev_seek,
	.read = ntfs_dev_read,
	.write = ntfs_dev_write,
	.pread = ntfs_dev_pread,
	.pwrite = ntfs_dev_pwrite,
	.sync = ntfs_dev_sync,
	.stat = ntfs_dev_stat,
	.ioctl = ntfs_dev_ioctl,
};

/* ---- libntfs-3g logging: print nothing, keep the last two errors as the reason ---- */

/* libntfs-3g's log handler is process-wide; mapping runs single-threaded in Prepare.
 * The last error says what failed ("Failed to load $MFT"), the one before it why. */
static struct {
	char prev[96];
	char last[96];
	char reason[96 + 2 + 96];
} ntfs_log;

__attribute__((format(printf, 6, 0)))
static int ntfs_log_capture(const char *function, const char *file, int line, u32 level,
			    void *data, const char *format, va_list args)
{
	(void)function, (void)file, (void)line, (void)data;
	int saved = errno;
	char msg[sizeof ntfs_log.last];
	int n = vsnprintf(msg, sizeof msg, format, args);
	if (n < 0)
		return 0;
	size_t len = strnlen(msg, sizeof msg);
	while (len && (msg[len - 1] == '\n' || msg[len - 1] == '.'))
		msg[--len] = '\0';
	if (level & NTFS_LOG_LEVEL_PERROR)
		snprintf(msg + len, sizeof msg - len, ": %s", strerror(saved));
	debug("libntfs-3g: %s", msg);
	if (level & (NTFS_LOG_LEVEL_ERROR | NTFS_LOG_LEVEL_PERROR | NTFS_LOG_LEVEL_CRITICAL)) {
		memcpy(ntfs_log.prev, ntfs_log.last, sizeof ntfs_log.prev);
		memcpy(ntfs_log.last, msg, sizeof ntfs_log.last);
	}
	errno = saved;
	return n;
}

static void ntfs_log_start(void)
{
	memset(&ntfs_log, 0, sizeof ntfs_log);
	ntfs_log_set_handler(ntfs_log_capture);
}

static void ntfs_log_stop(void)
{
	ntfs_log_set_handler(ntfs_log_handler_null);
}

/* What libntfs-3g said went wrong, or fallback when it said nothing. */
static const char *ntfs_log_reason(const char *fallback)
{
	if (!ntfs_log.last[0])
		return fallback;
	if (!ntfs_log.prev[0])
		return ntfs_log.last;
	snprintf(ntfs_log.reason, sizeof ntfs_log.reason, "%s; %s", ntfs_log.prev, ntfs_log.last);
	return ntfs_log.reason;
}

/* ---- outcomes ---- */

static int ntfs_io_error(const struct source *s, const struct partition *p, int err)
{
	errno = err;
	return error("read NTFS metadata of '%s' partition %u: %m; check the disk, or copy it "
		     "whole with --all-blocks", s->path ? s->path : "source", p->number);
}

/* ---- boot sector sanity, before libntfs-3g sees it ---- */

/* Cluster size from the boot sector (bytes per sector at 0x0B, sectors per cluster at
 * 0x0D: 1..128, or 0xF4..0xFF meaning 2^(256-v) for clusters past 64 KiB), 0 if absurd. */
static uint32_t ntfs_boot_cluster_size(const uint8_t *bs)
{
	uint32_t bps = get_le16(bs + 0x0b);
	uint32_t v = bs[0x0d], spc;
	if (bps < 256 || bps > 4096 || (bps & (bps - 1)))
		return 0;
	if (v >= 1 && v <= 128 && !(v & (v - 1)))
		spc = v;
	else if (v >= 0xf4)
		spc = 1u << (256 - v);
	else
		return 0;
	uint32_t cs = bps * spc;
	return cs <= NTFS_MAX_CLUSTER ? cs : 0;
}

/* MFT record (0x40) and index block (0x44) size: c > 0 is clusters, c < 0 is 2^-c bytes.
 * libntfs-3g accepts up to 2^31 bytes and would allocate that; Windows uses 1 or 4 KiB. */
static bool ntfs_boot_record_ok(int8_t c, uint32_t cluster_size)
{
	if (c < 0)
		return c >= -16 && c <= -8;
	return c > 0 && c <= 64 && !(c & (c - 1)) && (uint32_t)c * cluster_size <= 65536;
}

/* The first absurd value of the boot sector bs (offsets: Microsoft's NTFS BPB), or NULL. */
static const char *ntfs_boot_problem(const uint8_t *bs, uint64_t part_size)
{
	if (memcmp(bs + 3, "NTFS    ", 8) != 0)
		return "no NTFS signature in the boot sector";
	uint32_t cs = ntfs_boot_cluster_size(bs);
	if (!cs)
		return "NTFS boot sector has an impossible sector or cluster size";
	if (!ntfs_boot_record_ok((int8_t)bs[0x40], cs) || !ntfs_boot_record_ok((int8_t)bs[0x44], cs))
		return "NTFS boot sector has an impossible MFT record or index block size";
	uint64_t bytes;
	if (__builtin_mul_overflow(get_le64(bs + 0x28), (uint64_t)get_le16(bs + 0x0b), &bytes) ||
	    bytes > part_size || bytes < cs)
		return "NTFS volume size in the boot sector does not fit its partition";
	uint64_t clusters = bytes / cs;
	if (get_le64(bs + 0x30) >= clusters || get_le64(bs + 0x38) >= clusters)
		return "NTFS boot sector places $MFT or $MFTMirr outside the volume";
	return NULL;
}

/* Returns 0 when plausible; otherwise FS_FALLBACK with the reason set, or -1 on I/O error. */
static int ntfs_check_boot(struct source *s, struct partition *p)
{
	uint8_t bs[512];
	const char *bad = NULL;
	if (p->size < sizeof bs)
		bad = "partition too small for NTFS";
	else if (source_pread(s, bs, p->start, sizeof bs) == 0)
		bad = ntfs_boot_problem(bs, p->size);
	else if (errno == ENODATA)
		bad = "NTFS boot sector past the end of the disk";
	else
		return ntfs_io_error(s, p, errno);
	return bad ? fs_fallback(p, FS_STATE_DAMAGED, "%s: copied whole", bad) : 0;
}

/* ---- volume state ---- */

/* Windows writes "hibr" (hibernation) or "HIBR" (Fast Startup) at the start of
 * hiberfil.sys and clears it on resume ("wake" or zeros). 1 hibernated, 0 not, -1 unreadable. */
static int ntfs_hibernated(ntfs_volume *vol)
{
	ntfs_inode *ni = ntfs_pathname_to_inode(vol, NULL, "hiberfil.sys");
	if (!ni)
		return errno == ENOENT ? 0 : -1;
	int ret = 0;
	ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
	if (!na) {
		ret = -1;
	} else {
		char magic[4];
		if (na->data_size >= (s64)sizeof magic) {
			if (ntfs_attr_pread(na, 0, sizeof magic, magic) != (s64)sizeof magic)
				ret = -1;
			else
				ret = strncasecmp(magic, "hibr", sizeof magic) == 0;
		}
		ntfs_attr_close(na);
	}
	ntfs_inode_close(ni);
	return ret;
}

/* An unclean $LogFile holds changes Windows has not yet applied (the on-disk $Bitmap may
 * miss clusters they allocate). Read-only check: 1 clean, 0 not clean, -1 unreadable. */
static int ntfs_logfile_clean(ntfs_volume *vol)
{
	ntfs_inode *ni = ntfs_inode_open(vol, FILE_LogFile);
	if (!ni)
		return -1;
	int ret = -1;
	ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
	if (na) {
		RESTART_PAGE_HEADER *rp = NULL;
		ret = ntfs_check_logfile(na, &rp) && ntfs_is_logfile_clean(na, rp);
		free(rp);
		ntfs_attr_close(na);
	}
	ntfs_inode_close(ni);
	return ret;
}

/* FS_MAPPED (0) when the volume may be mapped; FS_FALLBACK with the reason otherwise. */
static int ntfs_check_state(ntfs_volume *vol, struct partition *p)
{
	int h = ntfs_hibernated(vol);
	if (h < 0)
		return fs_fallback(p, FS_STATE_DAMAGED, "cannot read NTFS hiberfil.sys (%s): copied whole",
				     ntfs_log_reason(strerror(errno)));
	if (h)
		return fs_fallback(p, FS_STATE_HIBERNATED,
				     "Windows is hibernated or used Fast Startup: copied whole; boot Windows and "
				     "shut down fully (shutdown /s /t 0, or disable Fast Startup) for a used-blocks copy");
	if (vol->flags & VOLUME_IS_DIRTY)
		return fs_fallback(p, FS_STATE_DIRTY,
				     "NTFS marked dirty (Windows did not shut down cleanly): copied whole; "
				     "run chkdsk after migration");
	int lc = ntfs_logfile_clean(vol);
	if (lc <= 0)
		return fs_fallback(p, FS_STATE_DIRTY,
				     "NTFS journal ($LogFile) %s: copied whole; run chkdsk after migration",
				     lc < 0 ? "unreadable" : "holds unapplied changes");
	return FS_MAPPED;
}

/* ---- $Bitmap to byte ranges ---- */

struct ntfs_runs {
	struct extmap *m;    /* partition-relative ranges */
	uint8_t bits;        /* log2 of the cluster size */
	bool in_run;
	uint64_t run_start;  /* first cluster of the open run */
};

static void ntfs_emit(struct ntfs_runs *r, uint64_t end)
{
	extmap_add(r->m, r->run_start << r->bits, (end - r->run_start) << r->bits);
	r->in_run = false;
	if (r->m->n >= NTFS_LOCAL_EXTENTS)
		extmap_normalize(r->m, UINT64_MAX);  /* merges the smallest gaps: bounded memory */
}

/* One 64-cluster word of $Bitmap (bit k = cluster c0 + k, $Bitmap is little-endian). */
static void ntfs_scan_word(struct ntfs_runs *r, uint64_t w, uint64_t c0)
{
	unsigned pos = 0;
	while (pos < 64) {
		uint64_t x = (r->in_run ? ~w : w) >> pos;
		if (!x)
			return;
		pos += (unsigned)__builtin_ctzll(x);
		if (r->in_run) {
			ntfs_emit(r, c0 + pos);
		} else {
			r->in_run = true;
			r->run_start = c0 + pos;
		}
	}
}

static int ntfs_map_bitmap(ntfs_volume *vol, struct ntfs_win *win, struct partition *p,
			   struct extmap *m)
{
	uint64_t clusters = (uint64_t)vol->nr_clusters;
	uint64_t nbytes = DIV_ROUND_UP(clusters, 8);
	ntfs_attr *na = vol->lcnbmp_na;
	/* Bits past nr_clusters (Windows 10/11 sets some) are never read. */
	if (!na || na->data_size < 0 || (uint64_t)na->data_size < nbytes)
		return fs_fallback(p, FS_STATE_DAMAGED, "NTFS $Bitmap shorter than the volume: copied whole");
	CLEANUP_FREE uint8_t *buf = xmalloc(NTFS_BITMAP_PIECE);
	struct ntfs_runs r = { .m = m, .bits = vol->cluster_size_bits };
	for (uint64_t off = 0; off < nbytes; off += NTFS_BITMAP_PIECE) {
		size_t n = (size_t)MIN((uint64_t)NTFS_BITMAP_PIECE, nbytes - off);
		if (ntfs_attr_pread(na, (s64)off, (s64)n, buf) != (s64)n) {
			if (win->io_errno)
				return ntfs_io_error(win->s, p, win->io_errno);
			return fs_fallback(p, FS_STATE_DAMAGED, "cannot read NTFS $Bitmap (%s): copied whole",
					     ntfs_log_reason("short read"));
		}
		if (off + n == nbytes && clusters % 8)
			buf[n - 1] &= (uint8_t)((1u << (clusters % 8)) - 1);
		size_t padded = ROUND_UP(n, 8);
		memset(buf + n, 0, padded - n);
		for (size_t i = 0; i < padded; i += 8)
			ntfs_scan_word(&r, get_le64(buf + i), (off + i) * 8);
	}
	if (r.in_run)
		ntfs_emit(&r, clusters);
	return FS_MAPPED;
}

/* ---- the mapper ---- */

/* Mounted-volume part of the map: state checks, $Bitmap, boot area and tail. */
static int ntfs_map_volume(ntfs_volume *vol, struct ntfs_win *win, struct partition *p,
			   struct extmap *m)
{
	uint64_t nr = vol->nr_clusters > 0 ? (uint64_t)vol->nr_clusters : 0;
	uint64_t fs_size = nr << vol->cluster_size_bits;
	if (!nr || fs_size >> vol->cluster_size_bits != nr || fs_size > p->size)
		return fs_fallback(p, FS_STATE_DAMAGED, "NTFS volume larger than its partition: copied whole");
	p->fs_size = fs_size;
	int r = ntfs_check_state(vol, p);
	if (r == FS_MAPPED)
		r = ntfs_map_bitmap(vol, win, p, m);
	if (r == FS_FALLBACK && win->io_errno)
		return ntfs_io_error(win->s, p, win->io_errno);  /* the disk failed, not NTFS */
	if (r != FS_MAPPED)
		return r;
	/* $Boot (in $Bitmap anyway) and the tail past the last cluster, which holds the
	 * backup boot sector (fs.h). */
	extmap_add(m, 0, MIN(ROUND_UP((uint64_t)NTFS_BOOT_AREA, vol->cluster_size), fs_size));
	extmap_add(m, fs_size, p->size - fs_size);
	extmap_normalize(m, p->size);
	p->used_bytes = extmap_bytes(m);
	p->state = FS_STATE_CLEAN;
	snprintf(p->reason, sizeof p->reason, "NTFS allocation bitmap, %" PRIu32 "-byte clusters",
		 vol->cluster_size);
	/* TODO: pagefile.sys, hiberfil.sys and swapfile.sys hold nothing worth copying
	 * (DESIGN.md); their clusters could be left out here. Copying them is safe. */
	return FS_MAPPED;
}

static int ntfs_map(struct source *s, struct partition *p, struct extmap *out)
{
	int r = ntfs_check_boot(s, p);
	if (r != 0)
		return r;
	struct ntfs_win win = { .s = s, .start = p->start, .size = p->size };
	CLEANUP_FREE char *name = xasprintf("%s partition %u", s->path ? s->path : "source", p->number);
	struct ntfs_device *dev = ntfs_device_alloc(name, 0, &ntfs_dev_ops, &win);
	if (!dev)
		return error("open NTFS on '%s': %m", name);
	ntfs_log_start();
	/* Read-only: libntfs-3g then neither checks nor resets $LogFile nor sets the dirty flag. */
	ntfs_volume *vol = ntfs_device_mount(dev, NTFS_MNT_RDONLY);
	if (!vol) {
		int err = errno;
		ntfs_device_free(dev);
		ntfs_log_stop();
		if (win.io_errno)
			return ntfs_io_error(s, p, win.io_errno);
		return fs_fallback(p, FS_STATE_DAMAGED, "cannot open NTFS (%s): copied whole",
				     ntfs_log_reason(strerror(err)));
	}
	struct extmap m;
	extmap_init(&m);
	m.max_extents = NTFS_LOCAL_MAX;
	r = ntfs_map_volume(vol, &win, p, &m);
	ntfs_umount(vol, FALSE);  /* also frees dev */
	ntfs_log_stop();
	if (r == FS_MAPPED)
		extmap_add_map(out, &m, p->start);
	extmap_release(&m);
	return r;
}

/* ---- read-only mount for reading a few files (fs.h, oshost.c) ---- */

struct ntfs_ro {
	struct ntfs_win win;   /* the device's d_private: lives as long as the volume */
	ntfs_volume *vol;
	char name[96];         /* "/dev/sda partition 2", for libntfs-3g's messages */
};

struct ntfs_ro *ntfs_ro_open(struct source *s, const struct partition *p)
{
	uint8_t bs[512];
	if (p->size < sizeof bs || source_pread(s, bs, p->start, sizeof bs) < 0 || ntfs_boot_problem(bs, p->size))
		return NULL;
	struct ntfs_ro *r = xcalloc(1, sizeof *r);
	r->win = (struct ntfs_win){ .s = s, .start = p->start, .size = p->size };
	snprintf(r->name, sizeof r->name, "%s partition %u", s->path ? s->path : "source", p->number);
	struct ntfs_device *dev = ntfs_device_alloc(r->name, 0, &ntfs_dev_ops, &r->win);
	if (!dev) {
		free(r);
		return NULL;
	}
	ntfs_log_start();  /* stays on until ntfs_ro_close: lookups log too */
	r->vol = ntfs_device_mount(dev, NTFS_MNT_RDONLY);
	if (!r->vol) {
		debug("open NTFS on '%s' to read files: %s", r->name, ntfs_log_reason("cannot mount"));
		ntfs_device_free(dev);
		ntfs_log_stop();
		free(r);
		return NULL;
	}
	/* Look names up as Windows does: case-insensitively (except POSIX-namespace names). */
	if (ntfs_set_ignore_case(r->vol) < 0)
		debug("NTFS on '%s': case-insensitive lookups unavailable", r->name);
	return r;
}

struct _ntfs_volume *ntfs_ro_volume(struct ntfs_ro *r)
{
	return r->vol;
}

void ntfs_ro_close(struct ntfs_ro *r)
{
	if (!r)
		return;
	ntfs_umount(r->vol, FALSE);  /* also frees the device */
	ntfs_log_stop();
	free(r);
}

static const char *const ntfs_types[] = { "ntfs", NULL };

const struct fs_ops fs_ntfs = {
	.name = "ntfs",
	.blkid_types = ntfs_types,
	.map = ntfs_map,
};
