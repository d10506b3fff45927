/* machine.h - `coldclone clone --all`: every disk of the machine in one job, one image per
 * disk named after the machine, a machine manifest with the hardware inventory, and VM
 * descriptors beside the images. */
#ifndef COLDCLONE_MACHINE_H
#define COLDCLONE_MACHINE_H

#include "clonejob.h"
#include "inventory.h"

/* What each disk came to, for a result screen: the disks that reached the copy stage. */
struct machine_outcome {
	struct clone_summary *disks;  /* .source, .image (shown form), .result */
	size_t ndisks;
};

/* Returns an EXIT_* code: the worst of the disks'. out (may be NULL) receives each copied
 * disk's summary; free it with machine_outcome_free. */
int machine_clone(const struct clone_opts *o, struct machine_outcome *out);
void machine_outcome_free(struct machine_outcome *out);

/* The OS host name (oshost.h) on the disks o selects (--disk, else all), first disk in
 * order, recorded in inv: what `run` names the machine by before machine_clone. */
void machine_find_os_host(const struct clone_opts *o, struct inventory *inv);

/* DEST (a folder path or URL; a URL's ?query stays at the end) joined with FILE. */
char *machine_dest_join(const char *dest, const char *file);
/* File extension of a format's images: vhd-fixed images are .vhd. */
const char *machine_image_ext(const char *format);
/* The image of one disk: NAME-DISK.EXT, DISK the device's base name (sda). */
char *machine_image_file(const char *name, const char *disk, const char *format);

#endif
