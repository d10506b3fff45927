/* source.c - open the source disk read-only, identify it, and read it with the
 * bad-sector policy (split a failed read down to single sectors, retry those, zero and
 * record what still fails). Nothing in this file can write to the source. */
#define _GNU_SOURCE
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "util.h"

/* Read a one-line sysfs attribute into buf, trimmed; "" when absent. */
static void sysfs_read(const char *path, char *buf, size_t bufsz)
{
	buf[0] = '\0';
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	if (!fgets(buf, (int)bufsz, f))
		buf[0] = '\0';
	fclose(f);
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	size_t lead = strspn(buf, " ");
	memmove(buf, buf + lead, n - lead + 1);
}

static void identify_blockdev(struct source *s, dev_t rdev)
{
	char base[96], path[160];
	snprintf(base, sizeof base, "/sys/dev/block/%u:%u", major(rdev), minor(rdev));
	snprintf(path, sizeof path, "%s/device/model", base);
	sysfs_read(path, s->model, sizeof s->model);
	snprintf(path, sizeof path, "%s/device/vendor", base);
	sysfs_read(path, s->vendor, sizeof s->vendor);
	/* SCSI/SATA disks expose the serial in the VPD page 80; virtio and NVMe directly. */
	static const char *const serial_attrs[] = { "serial", "device/serial", "device/wwid", "wwid" };
	for (size_t i = 0; i < ARRAY_SIZE(serial_attrs) && !s->serial[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", base, serial_attrs[i]);
		sysfs_read(path, s->serial, sizeof s->serial);
	}
	if (!s->serial[0]) {
		snprintf(path, sizeof path, "%s/device/vpd_pg80", base);
		char raw[128];
		sysfs_read(path, raw, sizeof raw);
		/* VPD page 0x80: 4-byte header, then the ASCII serial */
		size_t j = 0;
		for (size_t i = 4; raw[0] && i < strlen(raw) && j + 1 < sizeof s->serial; i++)
			if (raw[i] > ' ' && raw[i] < 127)
				s->serial[j++] = raw[i];
		s->serial[j] = '\0';
	}
}

/* Refuse a disk with a partition mounted read-write: copying a live filesystem gives an
 * inconsistent image, and the whole point of a cold clone is that nothing runs on it. */
static int check_not_mounted(const struct source *s, dev_t rdev)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int r = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		unsigned maj, mn;
		char mnt[1024], opts[512];
		if (sscanf(line, "%*u %*u %u:%u %*s %1023s %511s", &maj, &mn, mnt, opts) != 4)
			continue;
		char devpath[160], self[96];
		/* Is maj:mn this disk or one of its partitions? Partitions have a "partition"
		 * attribute and their parent directory is the disk. */
		snprintf(devpath, sizeof devpath, "/sys/dev/block/%u:%u", maj, mn);
		snprintf(self, sizeof self, "/sys/dev/block/%u:%u", major(rdev), minor(rdev));
		char *real_dev = realpath(devpath, NULL), *real_self = realpath(self, NULL);
		size_t n = real_self ? strlen(real_self) : 0;
		bool ours = real_dev && real_self && strncmp(real_dev, real_self, n) == 0 &&
			    (real_dev[n] == '/' || real_dev[n] == '\0');
		free(real_dev);
		free(real_self);
		if (!ours)
			continue;
		if (strncmp(opts, "rw", 2) == 0 && (opts[2] == ',' || opts[2] == '\0')) {
			r = error("'%s': it or one of its partitions (%u:%u) is mounted read-write at '%s': unmount it first (a cold clone must not copy a live filesystem)",
				  s->path, maj, mn, mnt);
			break;
		}
		warning("'%s': it or one of its partitions (%u:%u) is mounted read-only at '%s'", s->path, maj, mn, mnt);
	}
	fclose(f);
	return r;
}

static int open_blockdev(struct source *s, const struct stat *st)
{
	uint64_t size = 0;
	int lsec = 0, psec = 0, ro = 0;
	if (ioctl(s->fd, BLKGETSIZE64, &size) < 0)
		return error("get size of '%s': %m", s->path);
	if (ioctl(s->fd, BLKSSZGET, &lsec) < 0 || lsec < 512)
		lsec = 512;
	if (ioctl(s->fd, BLKPBSZGET, &psec) < 0 || psec < lsec)
		psec = lsec;
	s->size = size;
	s->lsec = (uint32_t)lsec;
	s->psec = (uint32_t)psec;
	identify_blockdev(s, st->st_rdev);
	if (check_not_mounted(s, st->st_rdev) < 0)
		return -1;
	/* Ask the kernel to refuse writes to the disk while we work; restored on close. */
	if (ioctl(s->fd, BLKROGET, &ro) == 0) {
		int one = 1;
		if (!ro && ioctl(s->fd, BLKROSET, &one) == 0)
			s->ro_before = 0;
		else if (!ro)
			warning("could not set '%s' read-only in the kernel: %m (it is still only opened for reading)", s->path);
	}
	return 0;
}

/* An image file of a 4Kn disk carries its GPT header at byte 4096 instead of 512. */
static uint32_t guess_image_sector_size(const struct source *s)
{
	char sig[8];
	if (source_pread(s, sig, 512, 8) == 0 && memcmp(sig, "EFI PART", 8) == 0)
		return 512;
	if (s->size >= 8192 && source_pread(s, sig, 4096, 8) == 0 && memcmp(sig, "EFI PART", 8) == 0)
		return 4096;
	return 512;
}

int source_open(struct source *s, const char *path, uint32_t lsec_override)
{
	struct stat st;
	*s = (struct source){ .fd = -1, .ro_before = -1, .retries = 3, .max_unreadable = UINT64_MAX };
	s->path = xstrdup(path);
	pthread_mutex_init(&s->bad_lock, NULL);
	extmap_init(&s->bad);
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0)
		return error("open source '%s': %m%s", path,
			     errno == ENOENT ? " (run 'coldclone list' to see the disks)" : "");
	if (fstat(s->fd, &st) < 0)
		return error("stat '%s': %m", path);
	if (S_ISBLK(st.st_mode)) {
		s->blockdev = true;
		if (open_blockdev(s, &st) < 0)
			return -1;
	} else if (S_ISREG(st.st_mode)) {
		s->size = (uint64_t)st.st_size;
		s->lsec = lsec_override ? lsec_override : guess_image_sector_size(s);
		s->psec = s->lsec;
	} else {
		return error("source '%s' is neither a disk nor an image file", path);
	}
	if (lsec_override && s->blockdev && lsec_override != s->lsec)
		warning("'%s' reports %u-byte sectors; ignoring --sector-size %u", path, s->lsec, lsec_override);
	if (s->lsec != 512 && s->lsec != 4096)
		return error("'%s': unsupported logical sector size %u (expected 512 or 4096)", path, s->lsec);
	if (s->size == 0)
		return error("source '%s' is empty (size 0): no medium?", path);
	if (s->size % 512)
		return error("source '%s' is %llu bytes, not a whole number of 512-byte sectors: truncated image?",
			     path, (unsigned long long)s->size);
	posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

void source_close(struct source *s)
{
	if (s->fd >= 0) {
		if (s->blockdev && s->ro_before == 0) {
			int zero = 0;
			if (ioctl(s->fd, BLKROSET, &zero) < 0)
				warning("could not restore '%s' to read-write in the kernel: %m", s->path);
		}
		close(s->fd);
	}
	if (s->path) {
		pthread_mutex_destroy(&s->bad_lock);
		extmap_release(&s->bad);
	}
	free(s->path);
	*s = (struct source){ .fd = -1, .ro_before = -1 };
}

int source_pread(const struct source *s, void *buf, uint64_t off, size_t len)
{
	if (off > s->size || len > s->size - off) {
		errno = EINVAL;
		return -1;
	}
	return pread_full(s->fd, buf, len, off);
}

uint64_t source_bad_bytes(struct source *s)
{
	pthread_mutex_lock(&s->bad_lock);
	uint64_t n = extmap_bytes(&s->bad);
	pthread_mutex_unlock(&s->bad_lock);
	return n;
}

/* Record an unreadable range; the message is printed once per source_read() call. */
static void record_bad(struct source *s, uint64_t off, size_t len)
{
	pthread_mutex_lock(&s->bad_lock);
	extmap_add(&s->bad, off, len);
	extmap_normalize(&s->bad, UINT64_MAX);
	pthread_mutex_unlock(&s->bad_lock);
}

/* Read one range; on an I/O error split it in halves (on sector boundaries) so a single
 * bad sector costs log2(len/lsec) extra reads, and retry single sectors s->retries times. */
static int read_split(struct source *s, uint8_t *buf, uint64_t off, size_t len)
{
	if (pread_full(s->fd, buf, len, off) == 0)
		return 0;
	if (errno != EIO && errno != ENODATA && errno != ENXIO && errno != EILSEQ)
		return error("read '%s' at offset %llu: %m", s->path, (unsigned long long)off);
	if (len > s->lsec) {
		size_t half = len / 2 / s->lsec * s->lsec;
		if (half == 0)
			half = s->lsec;
		if (read_split(s, buf, off, half) < 0)
			return -1;
		return read_split(s, buf + half, off + half, len - half);
	}
	for (unsigned i = 1; i < s->retries; i++)
		if (pread_full(s->fd, buf, len, off) == 0)
			return 0;
	memset(buf, 0, len);
	record_bad(s, off, len);
	return 0;
}

int source_read(struct source *s, void *buf, uint64_t off, size_t len)
{
	if (off > s->size || len > s->size - off)
		return error("internal: read of '%s' past its end (offset %llu, %zu bytes)", s->path,
			     (unsigned long long)off, len);
	uint64_t bad_before = source_bad_bytes(s);
	if (read_split(s, buf, off, len) < 0)
		return -1;
	uint64_t bad_after = source_bad_bytes(s);
	if (bad_after == bad_before)
		return 0;
	warning("unreadable: '%s' has %llu bad sector(s) between sectors %llu and %llu: they read as zero in the image and are listed in the manifest",
	     s->path, (unsigned long long)((bad_after - bad_before) / s->lsec), (unsigned long long)(off / s->lsec),
	     (unsigned long long)((off + len) / s->lsec - 1));
	if (bad_after > s->max_unreadable)
		return error("'%s': %llu bytes unreadable, more than the --max-unreadable limit: stopping; the disk is failing, image it with a tool that retries harder or replace the cable/controller first",
			     s->path, (unsigned long long)bad_after);
	return 0;
}
